"""Reductions: sum, mean, prod, max, min over the whole tensor or along dims, amax, amin,
argmax, argmin, logsumexp, norm, std, var; and the scans cumsum, cumprod.

Where torch's grad_fn differs between the whole-tensor call and the call with dims
(`x.sum()` is SumBackward0, `x.sum(1)` SumBackward1; `x.max()` a tensor, `x.max(1)` a tuple),
each is a row of its own, the second an overload of the first's name (`call_as`); where it
does not (norm, std, var, amax, argmax), one row takes `dim=None`.
"""

from __future__ import annotations

import numpy as np

from gradcalc.engine import reduce_rules as R
from gradcalc.engine import rules
from gradcalc.engine.row import Kind, Op, SecondOrder
from gradcalc.engine.summation import torch_sum
from gradcalc.lang.syntax import Param, ParamKind

INPUT = Param("input", ParamKind.TENSOR)
KEEPDIM = Param("keepdim", ParamKind.BOOL, default=False)
DIMS = Param("dim", ParamKind.INTS, optional=True)                       # required; None allowed
DIMS_OR_ALL = Param("dim", ParamKind.INTS, default=None, optional=True)  # dim=None: every dim
DIM = Param("dim", ParamKind.INT)
DIM_OR_ALL = Param("dim", ParamKind.INT, default=None, optional=True)


def _reduction(name, forward, grad_fn, vjp, display, exact, second_order, **extra) -> Op:
    return Op(name=name, arity=1, forward=forward, grad_fn=grad_fn, kind=Kind.REDUCTION, vjp=vjp,
              display_partials=display, exact=_over_all(exact), second_order=second_order, **extra)


def _over_all(exact):
    """An exact rule over the flat list of elements, as the row's exact forward (0-d)."""

    def forward(sp, x, **params):
        result = np.empty((), dtype=object)
        result[()] = exact(sp, list(np.asarray(x, dtype=object).reshape(-1)))
        return result

    return forward


def _sum_forward(x):
    x = np.asarray(x)
    return np.sum(x.astype(np.int64)) if x.dtype.kind in "iub" else torch_sum(x)


def _along(name, forward, grad_fn, vjp, exact, second_order, display, *, signature,
           value=None, **extra) -> Op:
    """A row with static dims (and keepdim, p, correction ...): its rules take them as keywords."""
    value = value or R.call_value(extra.get("call_as") or name)
    return Op(name=name, arity=1, forward=forward, grad_fn=grad_fn, kind=Kind.REDUCTION, vjp=vjp, exact=exact,
              second_order=second_order, display_partials=display(value), display_value=value,
              signature=signature, **extra)


def _plain(display):
    return lambda value: display


_SUM_VALUE, _MEAN_VALUE = R.call_value("sum"), R.call_value("mean")
_PROD_VALUE = R.call_value("prod")
_NORM_VALUE = R.call_value("norm", keywords={"p": 2.0, "dim": None})
_VAR_VALUE = R.call_value("var", keywords={"correction": 1.0})
_STD_VALUE = R.call_value("std", keywords={"correction": 1.0})


def _extremum_rows(name: str, largest: bool) -> tuple[Op, ...]:
    """max(input), max(input, dim, keepdim=False) -> (values, indices), max(input, other)."""
    title = name.capitalize()
    value = R.call_value(name)
    return (
        _reduction(name, rules.reduce_forward(np.max if largest else np.min), f"{title}Backward1",
                   rules.extremum_vjp, rules.extremum_display(name),
                   (lambda sp, xs: sp.Max(*xs)) if largest else (lambda sp, xs: sp.Min(*xs)),
                   SecondOrder.LINEAR_IN_GRAD, check=rules.extremum_check(name),
                   result_dtype=R.keep_integers(bools_stay=True)),
        _along(f"{name}_dim", R.extremum_dim_forward(largest), f"{title}Backward0",
               R.extremum_dim_vjp(largest), R.extremum_dim_exact(largest), SecondOrder.LINEAR_IN_GRAD,
               R.selected_display, value=value, call_as=name, signature=(INPUT, DIM, KEEPDIM),
               check=R.check_extremum_dim(name), result_dtype=R.keep_integers(bools_stay=True),
               outputs=(("values", f"{name}_dim"), ("indices", f"{name}_dim_indices"))),
        # The indices of max(input, dim): reached as `.indices` or by unpacking, never by name.
        Op(f"{name}_dim_indices", 1, R.extremum_dim_indices(largest), None, kind=Kind.NONDIFF,
           exact=R.extremum_dim_indices_exact(largest), signature=(INPUT, DIM, KEEPDIM),
           check=R.check_extremum_dim(name), result_dtype=R.int64_result, function=False, internal=True,
           display_value=R.call_value("argmax" if largest else "argmin")),
        # max(input, other) is torch.maximum for two tensors.
        Op(f"{name}_other", 2, R.refuse_numbers(name), None, kind=Kind.LINALG, call_as=name,
           lower=R.extremum_other_lowering(name)),
    )


def _unbiased_rows(name: str) -> tuple[Op, ...]:
    """The legacy overloads var(input, unbiased) and var(input, dim, unbiased, keepdim=False)."""
    unbiased = Param("unbiased", ParamKind.BOOL)
    lower = R.unbiased_lowering(name)
    forward = R.refuse_numbers(name)
    return (
        Op(f"{name}_unbiased", 1, forward, None, kind=Kind.REDUCTION, call_as=name, lower=lower,
           signature=(INPUT, unbiased)),
        Op(f"{name}_dim_unbiased", 1, forward, None, kind=Kind.REDUCTION, call_as=name, lower=lower,
           signature=(INPUT, DIMS, unbiased, KEEPDIM)),
    )


ROWS: tuple[Op, ...] = (
    # sum(input) and sum(input, dim, keepdim=False)
    _reduction("sum", _sum_forward, "SumBackward0", rules.sum_vjp, rules.one_display,
               lambda sp, xs: sp.Add(*xs), SecondOrder.MULTILINEAR, result_dtype=R.keep_integers()),
    _along("sum_dim", R.sum_dim_forward, "SumBackward1", R.sum_dim_vjp, R.sum_dim_exact, SecondOrder.MULTILINEAR,
           _plain(R.one_display), value=_SUM_VALUE, call_as="sum", signature=(INPUT, DIMS, KEEPDIM),
           result_dtype=R.keep_integers()),
    # mean(input) and mean(input, dim, keepdim=False)
    _reduction("mean", R.mean_forward, "MeanBackward0", rules.mean_vjp, rules.mean_display,
               lambda sp, xs: sp.Add(*xs) / len(xs) if xs else sp.nan, SecondOrder.MULTILINEAR,
               result_dtype=R.float_result),
    _along("mean_dim", R.mean_dim_forward, "MeanBackward1", R.mean_dim_vjp, R.mean_dim_exact,
           SecondOrder.MULTILINEAR, _plain(R.mean_display), value=_MEAN_VALUE, call_as="mean",
           signature=(INPUT, DIMS, KEEPDIM), result_dtype=R.float_result),
    # prod(input) and prod(input, dim, keepdim=False): one dim only
    _reduction("prod", rules.reduce_forward(np.prod), "ProdBackward0", rules.prod_vjp, rules.prod_display,
               lambda sp, xs: sp.Mul(*xs), SecondOrder.STATED, tangent=rules.prod_tangent,
               result_dtype=R.keep_integers()),
    _along("prod_dim", R.prod_dim_forward, "ProdBackward1", R.prod_dim_vjp, R.prod_dim_exact, SecondOrder.STATED,
           R.ratio_display, value=_PROD_VALUE, call_as="prod", signature=(INPUT, DIM, KEEPDIM),
           tangent=R.prod_dim_tangent, result_dtype=R.keep_integers()),
    # max, min: of every element (MaxBackward1), along a dim (values, indices), of two tensors
    *_extremum_rows("max", largest=True),
    *_extremum_rows("min", largest=False),
    # argmax, argmin: int64 indices, no grad
    *(Op(name, 1, R.arg_extremum_forward(largest), None, kind=Kind.NONDIFF, exact=R.arg_extremum_exact(largest),
         signature=(INPUT, DIM_OR_ALL, KEEPDIM), check=R.check_arg_extremum(name), result_dtype=R.int64_result,
         display_value=R.call_value(name))
      for name, largest in (("argmax", True), ("argmin", False))),
    # amax, amin: the grad split evenly among ties
    *(_along(name, R.amax_forward(largest), f"{name.capitalize()}Backward0", R.amax_vjp, R.amax_exact(largest),
             SecondOrder.LINEAR_IN_GRAD, R.selected_display,
             signature=(INPUT, Param("dim", ParamKind.INTS, default=()), KEEPDIM), check=R.check_amax(name),
             result_dtype=R.keep_integers(bools_stay=True))
      for name, largest in (("amax", True), ("amin", False))),
    # logsumexp(input) over every dim (torch names them), and logsumexp(input, dim, keepdim=False)
    _reduction("logsumexp", rules.logsumexp_forward, "LogsumexpBackward0", rules.logsumexp_vjp,
               rules.logsumexp_display, lambda sp, xs: sp.log(sp.Add(*(sp.exp(x) for x in xs))),
               SecondOrder.STATED, tangent=rules.logsumexp_tangent),
    _along("logsumexp_dim", R.logsumexp_dim_forward, "LogsumexpBackward0", R.logsumexp_dim_vjp,
           R.logsumexp_dim_exact, SecondOrder.STATED, R.logsumexp_display, call_as="logsumexp",
           signature=(INPUT, Param("dim", ParamKind.INTS), KEEPDIM), tangent=R.logsumexp_dim_tangent,
           check=R.check_logsumexp),
    # norm(input, p=2, dim=None, keepdim=False): torch.linalg.vector_norm for a number p
    _along("norm", R.norm_forward, "LinalgVectorNormBackward0", R.norm_vjp, R.norm_exact, SecondOrder.STATED,
           R.norm_display, value=_NORM_VALUE, tangent=R.norm_tangent, check=R.check_norm,
           result_dtype=R.float_result,
           signature=(INPUT, Param("p", ParamKind.FLOAT, default=2.0), DIMS_OR_ALL, KEEPDIM)),
    # var, std (input, dim=None, *, correction=1, keepdim=False), and the legacy `unbiased`
    *(_along(name, forward, grad_fn, vjp, exact, SecondOrder.STATED, lambda v, std=name == "std": R.var_display(v, std),
             value=value, tangent=tangent, result_dtype=R.float_result,
             signature=(INPUT, DIMS_OR_ALL, Param("correction", ParamKind.FLOAT, default=1.0, keyword_only=True),
                        Param("keepdim", ParamKind.BOOL, default=False, keyword_only=True)))
      for name, forward, grad_fn, vjp, exact, tangent, value in (
          ("var", R.var_forward, "VarBackward0", R.var_vjp, R.var_exact, R.var_tangent, _VAR_VALUE),
          ("std", R.std_forward, "StdBackward0", R.std_vjp, R.std_exact, R.std_tangent, _STD_VALUE))),
    *_unbiased_rows("var"),
    *_unbiased_rows("std"),
    # cumsum, cumprod (input, dim)
    _along("cumsum", R.cumsum_forward, "CumsumBackward0", R.cumsum_vjp, R.cumsum_exact, SecondOrder.MULTILINEAR,
           _plain(R.one_display), signature=(INPUT, DIM), result_dtype=R.keep_integers()),
    _along("cumprod", R.cumprod_forward, "CumprodBackward0", R.cumprod_vjp, R.cumprod_exact, SecondOrder.STATED,
           R.ratio_display, signature=(INPUT, DIM), tangent=R.cumprod_tangent, result_dtype=R.keep_integers()),
)

