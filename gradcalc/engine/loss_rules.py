"""torch.nn.functional's losses: their CPU kernels, backward formulas, second-order, exact and
display rules, and the lowerings that build the composite ones out of other rows.

The kernels and backward formulas are PyTorch's (aten/src/ATen/native/Loss.cpp, LossNLL.cpp,
cpu/BinaryOpsKernel.cpp, cpu/PointwiseOpsKernel.cpp; derivatives.yaml, FunctionsManual.cpp),
in their order of operations: a float32 loss rounds as torch's does. Each vector-Jacobian rule
takes the number backend `nums` (floats or exact) and runs in either.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gradcalc.engine.kernels import LIBM, infer_size, vector_lanes
from gradcalc.engine.summation import torch_sum
from gradcalc.errors import InputError, ShapeError, TorchError

REDUCTIONS = ("none", "mean", "sum")
# binary_cross_entropy's `constexpr float EPSILON = 1e-12`: a float, in double kernels too.
_BCE_EPSILON = float(np.float32(1e-12))
# binary_cross_entropy's double backward adds a double 1e-12.
_BCE_DOUBLE_EPSILON = 1e-12


# -- numbers ----------------------------------------------------------------------------

def _float_dtype(*xs) -> np.dtype:
    floats = [np.asarray(x).dtype for x in xs if np.asarray(x).dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.dtype(np.float32)


def _floats(a, b) -> tuple[np.ndarray, np.ndarray]:
    """The operands in one float dtype, as torch promotes an integer target."""
    dtype = _float_dtype(a, b)
    return np.asarray(a).astype(dtype, copy=False), np.asarray(b).astype(dtype, copy=False)


def _norm(nums, k: float, mean: int | None, dtype: np.dtype):
    """A backward kernel's `norm`: k / numel for the mean, else k (a double, then scalar_t)."""
    if mean == 0:  # an empty input: 2. / 0 is inf in torch's double
        return nums.number(math.inf) if nums.exact else dtype.type(math.inf)
    if nums.exact:
        return nums.number(k) / nums.number(mean) if mean is not None else nums.number(k)
    return dtype.type(k / mean if mean is not None else k)


def _per_mean(value, nums, mean: int | None):
    """`grad_input.div_(input.numel())` where the reduction is the mean."""
    if mean is None:
        return value
    if nums.exact:
        return value / nums.number(mean)
    value = np.asarray(value)
    with np.errstate(divide="ignore", invalid="ignore"):
        return value / value.dtype.type(mean)


def _exact_number(sp, x: float):
    """A static float argument (beta=0.1) as the exact number it was written as."""
    return sp.Integer(int(x)) if float(x).is_integer() else sp.Rational(repr(float(x)))


def _elementwise(fn, *operands) -> np.ndarray:
    return np.asarray(np.frompyfunc(fn, len(operands), 1)(*operands), dtype=object)


def _where(cond, then, otherwise):
    return np.where(np.asarray(cond, dtype=bool), then, otherwise)


def _indicator(cond, value, nums, dtype: np.dtype):
    """value where cond holds, else 0: in the backend's numbers."""
    if nums.exact:
        return _where(cond, value, nums.number(0))
    return np.where(np.asarray(cond, dtype=bool), dtype.type(value), dtype.type(0))


def _scalar_type(dtype: np.dtype) -> str:
    """torch's name of a dtype, as its messages spell it."""
    return {"float32": "Float", "float64": "Double", "int64": "Long", "bool": "Bool"}.get(np.dtype(dtype).name,
                                                                                         str(dtype))


def _integral(dtype) -> bool:
    return dtype is not None and np.dtype(dtype).kind in "iub"


def kernel_dtypes(kernel: str, input_integral=None, target_integral=None):
    """A one-kernel loss's dtype checks, as torch makes them before it computes: both operands
    integral, the kernel's "not implemented for 'Long'"; only the input (or only the target),
    that error message, a function of (input dtype, target dtype), or none (None: the float
    operand's dtype is the result's); `input_integral="kernel"`: the kernel's error too."""

    def error(x, t) -> str | None:
        if _integral(x) and (_integral(t) or input_integral == "kernel"):
            return f"\"{kernel}\" not implemented for '{_scalar_type(x)}'"
        if _integral(x) and input_integral is not None:
            return input_integral(_scalar_type(x), _scalar_type(t))
        if _integral(t) and target_integral is not None:
            return target_integral(_scalar_type(x), _scalar_type(t))
        return None

    return error


def _sigmoid(x, nums):
    if nums.exact:
        return 1 / (1 + nums.call("exp", -x))
    with np.errstate(over="ignore"):
        return 1 / (1 + LIBM["exp"](-x))


# -- reductions (torch's apply_loss_reduction) -----------------------------------------------

def reduce_values(values: np.ndarray, reduction: str) -> np.ndarray:
    """mean() or sum() of the unreduced loss, in torch's order of addition; or the values."""
    if reduction == "none":
        return values
    total = torch_sum(values)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / np.asarray(values.size, dtype=values.dtype))


def reduce_exact(sp, values: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return values
    flat = list(np.asarray(values, dtype=object).reshape(-1))
    total = sp.Add(*flat)
    result = np.empty((), dtype=object)
    result[()] = total if reduction == "sum" else (total / len(flat) if flat else sp.nan)
    return result


def _mean_count(a, reduction: str) -> int | None:
    return int(np.size(a)) if reduction == "mean" else None


# -- losses computed element by element, then reduced ----------------------------------------

@dataclass(frozen=True)
class Pointwise:
    """A loss of (input, target) element by element: torch's forward kernel, its backward
    kernels for both operands, their tangents, the exact and the displayed forms.

    `grads(g, a, b, nums, mean, **p)` and `tangents(i, g, dg, a, b, da, db, nums, mean, **p)`
    take `mean` as the count the mean divides by, None for sum and none."""

    kernel: Callable[..., np.ndarray]
    form: Callable[..., object]
    grads: Callable[..., tuple]
    tangents: Callable[..., object]
    partials: Callable[..., tuple]
    check_values: Callable[..., None] | None = None
    # (input dtype, target dtype) -> None, or torch's error for integral operands
    dtype_error: Callable[..., str | None] | None = None

    def forward(self, a, b, reduction: str = "mean", **params) -> np.ndarray:
        a, b = _floats(a, b)
        if self.check_values is not None:
            self.check_values(*np.broadcast_arrays(a, b))
        with np.errstate(all="ignore"):
            return reduce_values(np.asarray(self.kernel(a, b, **params)), reduction)

    def exact(self, sp, a, b, reduction: str = "mean", **params) -> np.ndarray:
        if self.check_values is not None:
            self.check_values(*np.broadcast_arrays(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
        values = _elementwise(lambda u, v: self.form(sp, u, v, **params), a, b)
        return reduce_exact(sp, values, reduction)

    def vjp(self, grad, args, result, nums, reduction: str = "mean", **params) -> tuple:
        a, b = args
        if not nums.exact:
            a, b = _floats(a, b)
        return self.grads(grad, a, b, nums, _mean_count(a, reduction), **params)

    def tangent(self, i, g, dg, args, dargs, r, dr, nums, reduction: str = "mean", **params):
        (a, b), (da, db) = args, dargs
        return self.tangents(i, g, dg, a, b, da, db, nums, _mean_count(a, reduction), **params)

    def display_partials(self, sp, exprs, shapes, reduction: str = "mean", **params) -> tuple:
        a, b = exprs
        partials = self.partials(sp, a, b, **params)
        if reduction != "mean":
            return partials
        count = max(1, math.prod(shapes[0]))
        return tuple(p / count for p in partials)

    def display_value(self, sp, exprs, reduction: str = "none", **params):
        """reduction='none': the loss of each element, as a formula of the operands."""
        a, b = exprs
        return self.form(sp, a, b, **params)


# mse_loss: mse_kernel (a - b)^2; mse_loss_backward: norm * (self - target) * grad, norm 2 or 2/n

def _mse_kernel(a, b):
    d = a - b
    return d * d


def _mse_grads(g, a, b, nums, mean):
    norm = _norm(nums, 2, mean, _float_dtype(g, a))
    return norm * (a - b) * g, norm * (b - a) * g


def _mse_tangents(i, g, dg, a, b, da, db, nums, mean):
    norm = _norm(nums, 2, mean, _float_dtype(g, a))
    d, dd = (a - b, da - db) if i == 0 else (b - a, db - da)
    return norm * (dd * g + d * dg)


MSE = Pointwise(
    kernel=_mse_kernel,
    form=lambda sp, a, b: (a - b) ** 2,
    grads=_mse_grads,
    tangents=_mse_tangents,
    partials=lambda sp, a, b: (2 * (a - b), -2 * (a - b)),
    dtype_error=kernel_dtypes("mse_cpu"),
)


# smooth_l1_loss: 0.5 z^2 / beta below beta, z - 0.5 beta above (z = |a - b|). The backward's
# vector loop takes x / beta in scalar_t; its scalar loop (a block's tail) compares and divides
# by the double beta.

def _smooth_l1_kernel(a, b, beta: float = 1.0):
    z = np.abs(a - b)
    bf = z.dtype.type(beta)
    return np.where(z < bf, 0.5 * z * z / bf, z - 0.5 * bf)


def _smooth_l1_backward(g, x, norm, beta: float, nums):
    """smooth_l1_backward_cpu_kernel for x = input - target."""
    if nums.exact:
        beta_e = nums.number(beta)
        unit = _where(np.abs(x) >= beta_e, _where(x > 0, 1, -1), x / beta_e)
        return norm * unit * g
    dtype = _float_dtype(g, x)
    bf = dtype.type(beta)
    g = np.asarray(g, dtype=dtype)
    shape = np.broadcast_shapes(x.shape, g.shape)
    one = np.where(x > 0, dtype.type(1), dtype.type(-1))
    vector = norm * np.where(np.abs(x) >= bf, one, x / bf) * g
    wide = x.astype(np.float64)
    inner = ((norm * x * g).astype(np.float64) / beta).astype(dtype)
    scalar = np.where(wide <= -beta, -norm * g, np.where(wide >= beta, norm * g, inner))
    lanes = vector_lanes(shape, (x.shape, x.shape, g.shape), dtype)
    return np.where(lanes, vector, scalar)


def _smooth_l1_grads(g, a, b, nums, mean, beta: float = 1.0):
    norm = _norm(nums, 1, mean, _float_dtype(g, a))
    return _smooth_l1_backward(g, a - b, norm, beta, nums), _smooth_l1_backward(g, b - a, norm, beta, nums)


def _smooth_l1_tangents(i, g, dg, a, b, da, db, nums, mean, beta: float = 1.0):
    # smooth_l1_loss_double_backward: grad * (|x| < beta) / beta, and linear in grad_output
    dtype = _float_dtype(g, a)
    norm = _norm(nums, 1, mean, dtype)
    x, dx = (a - b, da - db) if i == 0 else (b - a, db - da)
    beta_n = nums.number(beta) if nums.exact else dtype.type(beta)
    curvature = _indicator(np.abs(x) < beta_n, 1 / beta_n, nums, dtype)
    return _smooth_l1_backward(dg, x, norm, beta, nums) + norm * curvature * dx * g


def _smooth_l1_form(sp, a, b, beta: float = 1.0):
    beta_e = _exact_number(sp, beta)
    z = sp.Abs(a - b)
    return sp.Piecewise((z**2 / (2 * beta_e), z < beta_e), (z - beta_e / 2, True))


def _smooth_l1_partials(sp, a, b, beta: float = 1.0):
    beta_e = _exact_number(sp, beta)
    d = sp.Piecewise(((a - b) / beta_e, sp.Abs(a - b) < beta_e), (sp.sign(a - b), True))
    return d, -d


SMOOTH_L1 = Pointwise(
    kernel=_smooth_l1_kernel,
    form=_smooth_l1_form,
    grads=_smooth_l1_grads,
    tangents=_smooth_l1_tangents,
    partials=_smooth_l1_partials,
    dtype_error=kernel_dtypes("smooth_l1_cpu"),
)


# huber_loss: 0.5 z^2 below delta, delta (z - 0.5 delta) above. The backward's scalar loop
# multiplies by the double delta.

def _huber_kernel(a, b, delta: float = 1.0):
    z = np.abs(a - b)
    df = z.dtype.type(delta)
    return np.where(z < df, 0.5 * z * z, df * (z - 0.5 * df))


def _huber_backward(g, x, norm, delta: float, nums):
    """huber_backward_cpu_kernel for x = input - target."""
    if nums.exact:
        delta_e = nums.number(delta)
        clamped = _where(x <= -delta_e, -delta_e, _where(x >= delta_e, delta_e, x))
        return norm * clamped * g
    dtype = _float_dtype(g, x)
    df = dtype.type(delta)
    g = np.asarray(g, dtype=dtype)
    shape = np.broadcast_shapes(x.shape, g.shape)
    one = np.where(x > 0, dtype.type(1), dtype.type(-1))
    vector = norm * np.where(np.abs(x) >= df, one * df, x) * g
    wide = x.astype(np.float64)
    low = ((-norm * g).astype(np.float64) * delta).astype(dtype)
    high = ((norm * g).astype(np.float64) * delta).astype(dtype)
    scalar = np.where(wide <= -delta, low, np.where(wide >= delta, high, norm * x * g))
    lanes = vector_lanes(shape, (x.shape, x.shape, g.shape), dtype)
    return np.where(lanes, vector, scalar)


def _huber_grads(g, a, b, nums, mean, delta: float = 1.0):
    norm = _norm(nums, 1, mean, _float_dtype(g, a))
    return _huber_backward(g, a - b, norm, delta, nums), _huber_backward(g, b - a, norm, delta, nums)


def _huber_tangents(i, g, dg, a, b, da, db, nums, mean, delta: float = 1.0):
    # huber_loss_double_backward: grad * (|x| < delta), and linear in grad_output
    dtype = _float_dtype(g, a)
    norm = _norm(nums, 1, mean, dtype)
    x, dx = (a - b, da - db) if i == 0 else (b - a, db - da)
    delta_n = nums.number(delta) if nums.exact else dtype.type(delta)
    inside = _indicator(np.abs(x) < delta_n, 1, nums, dtype)
    return _huber_backward(dg, x, norm, delta, nums) + norm * inside * dx * g


def _huber_form(sp, a, b, delta: float = 1.0):
    delta_e = _exact_number(sp, delta)
    z = sp.Abs(a - b)
    return sp.Piecewise((z**2 / 2, z < delta_e), (delta_e * (z - delta_e / 2), True))


def _huber_partials(sp, a, b, delta: float = 1.0):
    delta_e = _exact_number(sp, delta)
    d = sp.Piecewise((a - b, sp.Abs(a - b) < delta_e), (delta_e * sp.sign(a - b), True))
    return d, -d


HUBER = Pointwise(
    kernel=_huber_kernel,
    form=_huber_form,
    grads=_huber_grads,
    tangents=_huber_tangents,
    partials=_huber_partials,
    dtype_error=kernel_dtypes("huber_cpu",
                              lambda x, t: f"result type {t} can't be cast to the desired output type {x}"),
)


# binary_cross_entropy: (t - 1) max(log1p(-x), -100) - t max(log(x), -100); backward
# grad (x - t) / max((1 - x) x, EPSILON), target -logit(x) grad; both / numel for the mean.

def _bce_check(x, t) -> None:
    """The kernel's checks, element by element in order: the input's, then the target's."""
    bad_input = ~np.asarray((x >= 0) & (x <= 1), dtype=bool)
    bad = (bad_input | ~np.asarray((t >= 0) & (t <= 1), dtype=bool)).reshape(-1)
    if bad.any():
        first = int(np.argmax(bad))
        which = "input" if bad_input.reshape(-1)[first] else "target"
        raise TorchError(f"all elements of {which} should be between 0 and 1",
                         hint="binary_cross_entropy takes probabilities; for logits use "
                              "binary_cross_entropy_with_logits")


def _bce_kernel(x, t):
    floor = x.dtype.type(-100)
    return ((t - 1) * np.maximum(LIBM["log1p"](-x), floor)
            - t * np.maximum(LIBM["log"](x), floor))


def _bce_grads(g, x, t, nums, mean):
    if nums.exact:
        eps = nums.number(_BCE_EPSILON)
        denominator = _elementwise(lambda v: v if v > eps else eps, (1 - x) * x)
        logit = nums.call("log", x / (1 - x))
    else:
        dtype = _float_dtype(g, x)
        denominator = np.maximum((1 - x) * x, dtype.type(_BCE_EPSILON))
        logit = LIBM["log"](x / (1 - x))
    return (_per_mean(g * (x - t) / denominator, nums, mean),
            _per_mean(-logit * g, nums, mean))


def _bce_tangents(i, g, dg, x, t, dx, dt, nums, mean):
    if i == 0:
        # binary_cross_entropy_double_backward (input), _target, and linear in grad_output
        eps = nums.number(_BCE_DOUBLE_EPSILON) if nums.exact else _BCE_DOUBLE_EPSILON
        floor = nums.number(_BCE_EPSILON) if nums.exact else _BCE_EPSILON
        dinput = (x * x - 2 * x * t + t) / ((x + eps) ** 2 * (1 - x + eps) ** 2) * g
        clamped = _elementwise(lambda v: v if v > floor else floor, (1 - x) * x) if nums.exact \
            else np.maximum((1 - x) * x, floor)
        dtarget = -g / clamped
        return _per_mean(_bce_grads(dg, x, t, nums, None)[0] + dinput * dx + dtarget * dt, nums, mean)
    # the target's gradient -logit(x) * grad, differentiated as autograd does (LogitBackward0)
    return _per_mean(_bce_grads(dg, x, t, nums, None)[1] - g / (x * (1 - x)) * dx, nums, mean)


def _clamped_log(sp, v):
    return sp.Integer(-100) if v == 0 else sp.Max(sp.log(v), -100)


BCE = Pointwise(
    kernel=_bce_kernel,
    form=lambda sp, x, t: (t - 1) * _clamped_log(sp, 1 - x) - t * _clamped_log(sp, x),
    grads=_bce_grads,
    tangents=_bce_tangents,
    partials=lambda sp, x, t: ((x - t) / (x * (1 - x)), -sp.log(x / (1 - x))),
    check_values=_bce_check,
    dtype_error=kernel_dtypes("binary_cross_entropy", lambda x, t: f"Found dtype {t} but expected {x}",
                              lambda x, t: f"Found dtype {t} but expected {x}"),
)


# binary_cross_entropy_with_logits: (1 - t) x - log_sigmoid(x); backward (sigmoid(x) - t) grad,
# target -x grad; both / numel for the mean.

def _log_sigmoid(x):
    # log_sigmoid's kernel: min(x, 0) - log1p(exp(-|x|))
    return np.minimum(x, x.dtype.type(0)) - LIBM["log1p"](LIBM["exp"](-np.abs(x)))


def _bce_logits_grads(g, x, t, nums, mean):
    return (_per_mean((_sigmoid(x, nums) - t) * g, nums, mean),
            _per_mean(-x * g, nums, mean))


def _bce_logits_tangents(i, g, dg, x, t, dx, dt, nums, mean):
    if i == 0:
        s = _sigmoid(x, nums)
        return _per_mean((s - t) * dg + g * ((1 - s) * s) * dx - g * dt, nums, mean)
    return _per_mean(-x * dg - dx * g, nums, mean)


BCE_WITH_LOGITS = Pointwise(
    kernel=lambda x, t: (1 - t) * x - _log_sigmoid(x),
    form=lambda sp, x, t: (1 - t) * x + sp.log(1 + sp.exp(-x)),
    grads=_bce_logits_grads,
    tangents=_bce_logits_tangents,
    partials=lambda sp, x, t: (1 / (1 + sp.exp(-x)) - t, -x),
    dtype_error=kernel_dtypes("log_sigmoid_cpu", "kernel",
                              lambda x, t: f"result type {x} can't be cast to the desired output type {t}"),
)


# -- nll_loss: class-index targets -----------------------------------------------------------

def _classes(t, x) -> np.ndarray:
    """The class indices of an nll_loss target (torch's dtype and size checks), flat."""
    t = np.asarray(t)
    if t.dtype == object:  # exact numbers: integral values are class indices
        if not all(float(v).is_integer() for v in t.reshape(-1)):
            raise TorchError("expected target dtype to be Long or Byte, but got Float")
        t = np.array([int(v) for v in t.reshape(-1)], dtype=np.int64).reshape(t.shape)
    elif t.dtype.kind not in "iu":
        raise TorchError(f"expected target dtype to be Long or Byte, but got {_scalar_type(t.dtype)}",
                         hint="class targets are integers: pass an int64 tensor such as tensor([0, 2, 1])")
    if np.ndim(x) == 1 and t.ndim == 1 and t.size != 1:
        raise ShapeError(f"For 1D input, 1D target must have size 1, but got target size: {t.size}")
    return t.reshape(-1).astype(np.int64)


def _check_class(c: int, n_classes: int) -> None:
    if not 0 <= c < n_classes:
        raise TorchError(f"Target {c} is out of bounds.", hint=f"class indices go from 0 to {n_classes - 1}")


def _picked(x: np.ndarray, classes: np.ndarray, ignore_index: int) -> list[tuple[int, int | None]]:
    """(row, class) for each sample in order, class None where ignored; bounds checked in order."""
    n_classes = x.shape[-1]
    picked: list[tuple[int, int | None]] = []
    for row, c in enumerate(classes.tolist()):
        if c == ignore_index:
            picked.append((row, None))
            continue
        _check_class(c, n_classes)
        picked.append((row, c))
    return picked


def _cascade_sum(values: list, dtype: np.dtype, batch: int):
    """nll_loss's cascade: `loss_partial_sums[0] -= data`, folded up every 16 samples
    (8 levels), then the levels added from 0. Ignored samples (None) add nothing."""
    levels = 8
    power = max(4, _ceil_log2(batch) // levels)
    mask = (1 << power) - 1
    zero = dtype.type(0)
    partial = [zero] * levels
    for b, value in enumerate(values):
        if value is None:
            continue
        partial[0] = partial[0] - value
        for j in range(levels - 1):
            if b & (mask << (j * power)):
                break
            partial[j + 1] = partial[j + 1] + partial[j]
            partial[j] = zero
    total = zero
    for p in partial:
        total = total + p
    return total


def _ceil_log2(n: int) -> int:
    # c10's CeilLog2: 1 up to 2, else the bit length of n - 1
    return 1 if n <= 2 else (n - 1).bit_length()


def nll_forward(x, t, ignore_index: int = -100, reduction: str = "mean") -> np.ndarray:
    x = np.asarray(x)
    classes = _classes(t, x)
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    picked = _picked(rows, classes, ignore_index)
    if reduction == "none" and x.ndim == 2:
        out = np.zeros(len(picked), dtype=x.dtype)
        for row, c in picked:
            if c is not None:
                out[row] = -rows[row, c] * x.dtype.type(1)
        return out
    if not picked:
        return np.asarray(np.nan if reduction == "mean" else 0, dtype=x.dtype)
    total = _cascade_sum([None if c is None else rows[row, c] for row, c in picked], x.dtype, len(picked))
    if reduction == "mean":
        count = x.dtype.type(sum(1 for _, c in picked if c is not None))
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total / count
    return np.asarray(total, dtype=x.dtype)


def nll_exact(sp, x, t, ignore_index: int = -100, reduction: str = "mean") -> np.ndarray:
    x = np.asarray(x, dtype=object)
    classes = _classes(t, x)
    rows = x.reshape(1, -1) if x.ndim == 1 else x
    picked = _picked(rows, classes, ignore_index)
    if reduction == "none" and x.ndim == 2:
        out = np.empty(len(picked), dtype=object)
        for row, c in picked:
            out[row] = sp.Integer(0) if c is None else -rows[row, c]
        return out
    terms = [-rows[row, c] for row, c in picked if c is not None]
    total = sp.Add(*terms)
    result = np.empty((), dtype=object)
    if reduction == "mean":
        result[()] = total / len(terms) if terms else sp.nan
    else:
        result[()] = total
    return result


def nll_vjp(grad, args, result, nums, ignore_index: int = -100, reduction: str = "mean") -> tuple:
    """nll_loss_backward: -grad at each sample's class (divided by the count for the mean)."""
    x, t = args
    x = np.asarray(x)
    if not (x.ndim == 1 and np.ndim(t) == 0) and x.shape[0] != np.shape(t)[0]:
        # the backward's own check, stricter than the forward's (input [3], target [1])
        raise TorchError(f"size mismatch (got input: {list(x.shape)}, target: {list(np.shape(t))})".replace(",]", "]"))
    classes = _classes(t, x)
    out = nums.tensor(np.zeros(x.shape))
    rows = out.reshape(1, -1) if x.ndim == 1 else out
    picked = _picked(rows, classes, ignore_index)
    grad = np.asarray(grad)
    if reduction == "none" and x.ndim == 2:
        for row, c in picked:
            if c is not None:
                rows[row, c] = -grad[row]
        return out, None
    if reduction == "mean":
        count = sum(1 for _, c in picked if c is not None)
        total = nums.number(count) if nums.exact else grad.dtype.type(count)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = -(grad[()] / total)
    else:
        value = -grad[()]
    for row, c in picked:
        if c is not None:
            rows[row, c] = value
    return out, None


def nll_display(sp, exprs, shapes, ignore_index: int = -100, reduction: str = "mean") -> tuple:
    """-1 at the element of each sample's class (δ(class, target)), over the count for the mean."""
    x, t = exprs
    partial = -sp.KroneckerDelta(sp.Symbol("class", integer=True), t)
    if reduction == "mean" and len(shapes[0]) == 2:
        partial = partial / max(1, shapes[0][0])
    return partial, sp.Integer(0)


# -- rows cross_entropy and the losses lower to ---------------------------------------------

def expand_forward(x, shape: tuple | None = None) -> np.ndarray:
    return np.array(np.broadcast_to(x, np.shape(x) if shape is None else shape))


def expand_vjp(grad, args, result, nums, shape: tuple | None = None) -> tuple:
    """ExpandBackward0: at::sum_to(grad, self's sizes), one sum over the added and stretched dims."""
    (x,) = args
    target = np.shape(x)
    grad = np.asarray(grad)
    leading = grad.ndim - len(target)
    dims = tuple(range(leading)) + tuple(leading + i for i, n in enumerate(target)
                                         if n == 1 and grad.shape[leading + i] != 1)
    if not dims:
        return (grad.reshape(target),)
    if nums.exact:
        return (np.sum(grad, axis=dims, keepdims=True).reshape(target),)
    if not target:
        return (torch_sum(grad),)
    from gradcalc.engine.dim_kernels import sum_dim

    return (sum_dim(grad, dims, keepdim=True).reshape(target),)


def sum_dim_forward(x, dim: int = 0) -> np.ndarray:
    from gradcalc.engine.dim_kernels import sum_dim

    return sum_dim(x, dim)


def sum_dim_exact(sp, x, dim: int = 0) -> np.ndarray:
    return np.asarray(np.sum(np.asarray(x, dtype=object), axis=dim), dtype=object)


def sum_dim_vjp(grad, args, result, nums, dim: int = 0) -> tuple:
    """SumBackward1: the gradient unsqueezed at dim and expanded to the operand's shape."""
    (x,) = args
    return (np.broadcast_to(np.expand_dims(np.asarray(grad), dim), np.shape(x)),)


def count_div_forward(x, count: int = 1) -> np.ndarray:
    x = np.asarray(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / (x.dtype.type(count) if x.dtype.kind == "f" else count)


def count_div_vjp(grad, args, result, nums, count: int = 1) -> tuple:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (count_div_forward(grad, count),)


def prob_mul_forward(logp, target) -> np.ndarray:
    """The product of cross_entropy's probability targets, after its dtype check."""
    if np.asarray(target).dtype.kind in "iub":
        raise TorchError("Expected floating point type for target with class probabilities, got Long",
                         hint="class-index targets have one fewer dimension than the input")
    return np.multiply(logp, target)


# -- lowerings: the checks torch makes on shapes, and the rows a loss is made of ---------------

def tensors_only(name: str, kinds: tuple[bool, ...]) -> None:
    for param, is_tensor in zip(("input", "target"), kinds):
        if not is_tensor:
            raise InputError(f"{name}(): argument '{param}' must be a tensor, not a number",
                             hint=f"torch.nn.functional.{name} takes tensors; write the number as a tensor input")


def broadcast_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """torch.broadcast_tensors(input, target)'s shape, or torch's infer_size error."""
    from gradcalc.lang.values import MAX_ELEMENTS

    result = infer_size(a, b)
    if math.prod(result) > MAX_ELEMENTS:
        raise ShapeError(f"the result would have {math.prod(result):,} elements; the limit is {MAX_ELEMENTS:,}")
    return result


def expanded(shapes: tuple, shape: tuple[int, ...]) -> tuple:
    """The operands as torch.broadcast_tensors leaves them: an ExpandBackward0 on each one
    whose shape is not the common shape (the others are themselves)."""
    return tuple(i if s == shape else ("loss_expand", (i,), {"shape": shape}) for i, s in enumerate(shapes))


def reduced(call: tuple, reduction: str) -> tuple:
    """apply_loss_reduction of a composite loss: mean() or sum() of the unreduced loss."""
    if reduction == "none":
        return call
    return ("mean" if reduction == "mean" else "sum", (call,))


def torch_size(shape: tuple[int, ...]) -> str:
    return f"torch.Size([{', '.join(str(n) for n in shape)}])"
