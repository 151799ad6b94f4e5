"""Reductions: sum, mean, prod, max, min, norm, logsumexp, ..."""

from __future__ import annotations

import numpy as np

from gradcalc.engine import rules
from gradcalc.engine.row import Kind, Op, SecondOrder
from gradcalc.engine.summation import torch_sum


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


ROWS: tuple[Op, ...] = (
    # reductions
    _reduction("sum", torch_sum, "SumBackward0", rules.sum_vjp, rules.one_display,
               lambda sp, xs: sp.Add(*xs), SecondOrder.MULTILINEAR),
    _reduction("mean", rules.mean_forward, "MeanBackward0", rules.mean_vjp, rules.mean_display,
               lambda sp, xs: sp.Add(*xs) / len(xs) if xs else sp.nan, SecondOrder.MULTILINEAR),
    _reduction("prod", rules.reduce_forward(np.prod), "ProdBackward0", rules.prod_vjp, rules.prod_display,
               lambda sp, xs: sp.Mul(*xs), SecondOrder.STATED, tangent=rules.prod_tangent),
    _reduction("max", rules.reduce_forward(np.max), "MaxBackward1", rules.extremum_vjp,
               rules.extremum_display("max"), lambda sp, xs: sp.Max(*xs), SecondOrder.LINEAR_IN_GRAD,
               check=rules.extremum_check("max")),
    _reduction("min", rules.reduce_forward(np.min), "MinBackward1", rules.extremum_vjp,
               rules.extremum_display("min"), lambda sp, xs: sp.Min(*xs), SecondOrder.LINEAR_IN_GRAD,
               check=rules.extremum_check("min")),
    _reduction("norm", rules.norm_forward, "LinalgVectorNormBackward0", rules.norm_vjp, rules.norm_display,
               lambda sp, xs: sp.sqrt(sp.Add(*(x * x for x in xs))), SecondOrder.STATED,
               tangent=rules.norm_tangent),
    # torch.logsumexp(x, dim) over every dim; no NumPy routine rounds as torch's does.
    _reduction("logsumexp", rules.logsumexp_forward, "LogsumexpBackward0", rules.logsumexp_vjp,
               rules.logsumexp_display, lambda sp, xs: sp.log(sp.Add(*(sp.exp(x) for x in xs))),
               SecondOrder.STATED, tangent=rules.logsumexp_tangent),
)
