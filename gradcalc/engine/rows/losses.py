"""torch.nn.functional's losses, with `reduction`.

A loss torch computes in one kernel (mse_loss, smooth_l1_loss, huber_loss, the binary cross
entropies, nll_loss) is one row, with torch's grad_fn; its `reduction='none'` is an internal
row of the same grad_fn whose result has the operands' shape. A loss torch composes of other
operations is lowered into their rows, so that its grad_fn graph is torch's: l1_loss is
(input - target).abs().mean(), kl_div is xlogy(t, t) - t * input, cross_entropy is nll_loss
over log_softmax (or, with probability targets, -(log_softmax * target).sum() / N).
Operands of different shapes are broadcast as `torch.broadcast_tensors` does, with an
ExpandBackward0 on the one that grows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradcalc.engine import loss_rules as L
from gradcalc.engine.formula import call, where
from gradcalc.engine.kernels import LIBM
from gradcalc.engine.row import Kind, Op, SecondOrder
from gradcalc.errors import InputError, ShapeError, TorchError
from gradcalc.lang.syntax import Param, ParamKind

_OPERANDS = (Param("input", ParamKind.TENSOR), Param("target", ParamKind.TENSOR))


def _reduction(*, keyword_only: bool = True, choices: tuple[str, ...] = L.REDUCTIONS) -> Param:
    return Param("reduction", ParamKind.CHOICE, default="mean", choices=choices, keyword_only=keyword_only)


_IGNORE_INDEX = Param("ignore_index", ParamKind.INT, default=-100, keyword_only=True)
_NLL_SIGNATURE = (*_OPERANDS, _IGNORE_INDEX, _reduction())


def _lowered_only(*operands, **params):
    raise AssertionError("a composite loss is always lowered into other rows")


# -- losses of one kernel: the row for mean and sum, an internal row for reduction='none' ----

def _float_result(dtypes, float_dtype, **params):
    """The float dtype, the operands passed as they are (an integer target's own checks)."""
    return float_dtype


def _kernel_dtype(loss: L.Pointwise):
    """A one-kernel loss's result_dtype: torch's error for integral operands, else the float
    dtype (an integral target is promoted by the kernel)."""

    def dtype(dtypes, float_dtype, **params):
        error = loss.dtype_error(*dtypes) if loss.dtype_error is not None else None
        if error is not None:
            raise TorchError(error, hint="this loss computes in floats: give float tensors")
        return float_dtype

    return dtype


def _kernel_rows(name: str, loss: L.Pointwise, grad_fn: str, signature: tuple[Param, ...], lower) -> tuple[Op, Op]:
    def row(row_name: str, kind: Kind, **extra: Any) -> Op:
        return Op(row_name, 2, loss.forward, grad_fn, kind=kind, vjp=loss.vjp, exact=loss.exact,
                  second_order=SecondOrder.STATED, tangent=loss.tangent,
                  display_partials=loss.display_partials, signature=signature,
                  result_dtype=_kernel_dtype(loss), **extra)

    return (row(name, Kind.REDUCTION, lower=lower),
            row(f"{name}_none", Kind.LINALG, display_value=loss.display_value, function=False, internal=True))


def _internal(name: str, arity: int, forward, grad_fn: str, **fields: Any) -> Op:
    """A row reached only through a loss's lowering, never written."""
    return Op(name, arity, forward, grad_fn, function=False, internal=True, **fields)


def _nll(name: str, kind: Kind, **fields: Any) -> Op:
    return Op(name, 2, L.nll_forward, "NllLossBackward0", kind=kind, vjp=L.nll_vjp, exact=L.nll_exact,
              second_order=SecondOrder.LINEAR_IN_GRAD, display_partials=L.nll_display,
              signature=_NLL_SIGNATURE, result_dtype=_float_result, nondifferentiable=(1,), **fields)


def _broadcasting(name: str, check=None):
    """F.mse_loss and friends: torch.broadcast_tensors(input, target), then the kernel."""

    def lower(kinds, shapes, reduction="mean", **params):
        L.tensors_only(name, kinds)
        shape = L.broadcast_shape(*shapes)
        if check is not None:
            replaced = check(shapes, shape, reduction, **params)
            if replaced is not None:
                return replaced
        if any(s != shape for s in shapes):
            return (name, L.expanded(shapes, shape), {"reduction": reduction, **params})
        if reduction == "none":
            return (f"{name}_none", (0, 1), {"reduction": reduction, **params})
        return None

    return lower


def _smooth_l1_check(shapes, shape, reduction, beta=1.0):
    if beta < 0:
        raise TorchError("smooth_l1_loss does not support negative values for beta.")
    if beta == 0:  # F.smooth_l1_loss with beta=0 is l1_loss
        return _l1(shapes, shape, reduction)
    return None


def _huber_check(shapes, shape, reduction, delta=1.0):
    if delta <= 0:
        raise TorchError("huber_loss does not support non-positive values for delta.")
    return None


def _same_shape(name: str, message):
    """The binary cross entropies: target and input of one shape, else torch's ValueError."""

    def lower(kinds, shapes, reduction="mean"):
        L.tensors_only(name, kinds)
        if shapes[0] != shapes[1]:
            raise ShapeError(message(L.torch_size(shapes[1]), L.torch_size(shapes[0])),
                             hint="input and target must have the same shape")
        if reduction == "none":
            return (f"{name}_none", (0, 1), {"reduction": reduction})
        return None

    return lower


# -- composite losses ------------------------------------------------------------------------

def _l1(shapes, shape, reduction) -> tuple:
    return L.reduced(("abs", (("sub", L.expanded(shapes, shape)),)), reduction)


def _l1_lowering(kinds, shapes, reduction="mean"):
    L.tensors_only("l1_loss", kinds)
    return _l1(shapes, L.broadcast_shape(*shapes), reduction)


def _kl_div_lowering(kinds, shapes, reduction="mean", log_target=False, values=None, requires_grad=None):
    # at::kl_div: exp(t) * (t - input) for log targets, else xlogy(t, t) - t * input
    L.tensors_only("kl_div", kinds)
    if values is not None and any(np.asarray(v).dtype.kind in "iub" for v in values):
        raise TorchError("kl_div: Integral inputs not supported.", hint="give kl_div float tensors")
    if log_target:
        loss: tuple = ("mul", (("exp", (1,)), ("sub", (1, 0))))
    else:
        loss = ("sub", (("kl_xlogy", (1, 1)), ("mul", (1, 0))))
    if reduction != "batchmean":
        return L.reduced(loss, reduction)
    total = ("sum", (loss,))
    if not shapes[0]:  # F.kl_div divides by the batch size only where the input has one
        return total
    # `reduced / input.size()[0]`: DivBackward0, whose Python-number divisor shows as a None edge
    return ("kl_batchmean_div", (total, ("detach", (0,))), {"count": shapes[0][0]})


_kl_div_lowering.wants_operands = True  # type: ignore[attr-defined]


def _log_softmax(part, dim: int) -> tuple:
    """torch.nn.functional.log_softmax's row (rows/nn.py)."""
    return ("log_softmax", (part,), {"dim": dim})


def _nll_lowering(kinds, shapes, ignore_index=-100, reduction="mean"):
    """nll_loss_nd's and nll_loss's shape checks; the dtype and class checks are the kernel's."""
    L.tensors_only("nll_loss", kinds)
    x, t = shapes
    if not x:
        raise ShapeError("Expected 1 or more dimensions (got 0)",
                         hint="nll_loss takes log-probabilities of shape (C) or (N, C)")
    if len(x) != 1 and x[0] != (t[0] if t else 0):
        raise ShapeError(f"Expected input batch_size ({x[0]}) to match target batch_size ({t[0] if t else 0}).",
                         hint="one class index per row of the input")
    if len(x) > 2:
        raise InputError(f"nll_loss of a {len(x)}-D input is not supported",
                         hint="gradcalc takes input of shape (C) or (N, C) with class indices of shape () or (N,)")
    if len(t) > 1:
        raise TorchError("0D or 1D target tensor expected, multi-target not supported")
    if reduction == "none" and len(x) == 2:
        return ("nll_loss_none", (0, 1), {"ignore_index": ignore_index, "reduction": reduction})
    return None


def _cross_entropy_lowering(kinds, shapes, ignore_index=-100, reduction="mean"):
    L.tensors_only("cross_entropy", kinds)
    x, t = shapes
    class_dim = 0 if len(x) == 1 else 1
    if x == t:  # probabilities, one per class (cross_entropy_loss_prob_target)
        if ignore_index >= 0:
            raise TorchError("ignore_index is not supported for floating point target")
        if not x:
            raise TorchError("Dimension specified as 1 but tensor has no dimensions")
        product = ("loss_prob_mul", (_log_softmax(0, class_dim), 1))
        if reduction == "none":
            return ("neg", (("loss_sum_dim", (product,), {"dim": class_dim}),))
        total = ("neg", (("sum", (product,)),))
        if reduction == "sum":
            return total
        return ("loss_count_div", (total,), {"count": math.prod(x) // x[class_dim] if x[class_dim] else 0})
    if not x:
        raise TorchError("Dimension out of range (expected to be in range of [-1, 0], but got 1)")
    return ("nll_loss", (_log_softmax(0, class_dim), 1), {"ignore_index": ignore_index, "reduction": reduction})


# -- internal rows the composite losses lower to ---------------------------------------------

def _xlogy(x, y):
    # xlogy's kernel: nan where y is nan, else 0 where x is 0, else x * log(y)
    with np.errstate(all="ignore"):
        out = x * LIBM["log"](y)
    return np.where(np.isnan(y), y, np.where(x == 0, np.zeros_like(out), out))


def _xlogy_vjps(g, r, a, b):
    # self: xlogy(grad, other).masked_fill((self == 0) & (other <= 0), 0); other: grad * self / other
    xlogy_g = where(b != b, b, where(g == 0, 0, g * call("log", b)))
    return {0: where((a == 0) & (b <= 0), 0, xlogy_g), 1: g * a / b}


def _batchmean_forward(total, x, count: int = 1):
    total = np.asarray(total)
    return total / (total.dtype.type(count) if total.dtype.kind == "f" else count)


def _batchmean_vjp(grad, args, result, nums, count: int = 1):
    return (_batchmean_forward(grad, None, count), nums.tensor(np.zeros(np.shape(args[1]))))


def _one(sp, exprs, shapes, **params):
    return (sp.Integer(1),) + (sp.Integer(0),) * (len(exprs) - 1)


_MSE, _MSE_NONE = _kernel_rows("mse_loss", L.MSE, "MseLossBackward0", (*_OPERANDS, _reduction()),
                               _broadcasting("mse_loss"))
_SMOOTH_L1, _SMOOTH_L1_NONE = _kernel_rows(
    "smooth_l1_loss", L.SMOOTH_L1, "SmoothL1LossBackward0",
    (*_OPERANDS, _reduction(), Param("beta", ParamKind.FLOAT, default=1.0, keyword_only=True)),
    _broadcasting("smooth_l1_loss", _smooth_l1_check))
_HUBER, _HUBER_NONE = _kernel_rows(
    "huber_loss", L.HUBER, "HuberLossBackward0",
    (*_OPERANDS, _reduction(keyword_only=False), Param("delta", ParamKind.FLOAT, default=1.0)),
    _broadcasting("huber_loss", _huber_check))
_BCE, _BCE_NONE = _kernel_rows(
    "binary_cross_entropy", L.BCE, "BinaryCrossEntropyBackward0", (*_OPERANDS, _reduction()),
    _same_shape("binary_cross_entropy", lambda t, x: f"Using a target size ({t}) that is different to the "
                f"input size ({x}) is deprecated. Please ensure they have the same size."))
_BCE_LOGITS, _BCE_LOGITS_NONE = _kernel_rows(
    "binary_cross_entropy_with_logits", L.BCE_WITH_LOGITS, "BinaryCrossEntropyWithLogitsBackward0",
    (*_OPERANDS, _reduction()),
    _same_shape("binary_cross_entropy_with_logits",
                lambda t, x: f"Target size ({t}) must be the same as input size ({x})"))


ROWS: tuple[Op, ...] = (
    _MSE,
    Op("l1_loss", 2, _lowered_only, None, kind=Kind.REDUCTION, lower=_l1_lowering,
       signature=(*_OPERANDS, _reduction())),
    _SMOOTH_L1,
    _HUBER,
    _BCE,
    _BCE_LOGITS,
    Op("cross_entropy", 2, _lowered_only, None, kind=Kind.REDUCTION, lower=_cross_entropy_lowering,
       signature=_NLL_SIGNATURE),
    _nll("nll_loss", Kind.REDUCTION, lower=_nll_lowering),
    Op("kl_div", 2, _lowered_only, None, kind=Kind.REDUCTION, lower=_kl_div_lowering,
       signature=(*_OPERANDS, _reduction(choices=("none", "batchmean", "sum", "mean")),
                  Param("log_target", ParamKind.BOOL, default=False, keyword_only=True))),
    # reduction='none' of the one-kernel losses
    _MSE_NONE, _SMOOTH_L1_NONE, _HUBER_NONE, _BCE_NONE, _BCE_LOGITS_NONE,
    _nll("nll_loss_none", Kind.LINALG, function=False, internal=True),
    # what the composite losses are made of, beside the table's other rows
    _internal("loss_expand", 1, L.expand_forward, "ExpandBackward0", kind=Kind.LINALG, vjp=L.expand_vjp,
              second_order=SecondOrder.MULTILINEAR, display_partials=_one,
              display_value=lambda sp, exprs, **params: exprs[0],
              signature=(Param("input", ParamKind.TENSOR),
                         Param("shape", ParamKind.INTS, default=None, optional=True))),
    _internal("kl_xlogy", 2, _xlogy, "XlogyBackward0",
              form=lambda sp, a, b: sp.Piecewise((0, sp.Eq(a, 0)), (a * sp.log(b), True)),
              torch_vjps=_xlogy_vjps, result_dtype=_float_result),
    _internal("kl_batchmean_div", 2, _batchmean_forward, "DivBackward0", kind=Kind.LINALG, vjp=_batchmean_vjp,
              second_order=SecondOrder.LINEAR_IN_GRAD,
              display_partials=lambda sp, exprs, shapes, count=1: (sp.Rational(1, max(count, 1)), sp.Integer(0)),
              display_value=lambda sp, exprs, count=1: exprs[0] / count,
              signature=(*_OPERANDS, Param("count", ParamKind.INT, default=1))),
    _internal("loss_prob_mul", 2, L.prob_mul_forward, "MulBackward0", form=lambda sp, a, b: a * b,
              torch_vjps=lambda g, r, a, b: {0: g * b, 1: g * a}, result_dtype=_float_result),
    _internal("loss_sum_dim", 1, L.sum_dim_forward, "SumBackward1", kind=Kind.LINALG, vjp=L.sum_dim_vjp,
              exact=L.sum_dim_exact, second_order=SecondOrder.MULTILINEAR, display_partials=_one,
              signature=(Param("input", ParamKind.TENSOR), Param("dim", ParamKind.INT, default=0))),
    _internal("loss_count_div", 1, L.count_div_forward, "DivBackward1", kind=Kind.LINALG, vjp=L.count_div_vjp,
              second_order=SecondOrder.MULTILINEAR,
              display_partials=lambda sp, exprs, shapes, count=1: (sp.Rational(1, max(count, 1)),),
              display_value=lambda sp, exprs, count=1: exprs[0] / count,
              signature=(Param("input", ParamKind.TENSOR), Param("count", ParamKind.INT, default=1))),
)
