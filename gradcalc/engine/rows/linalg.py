"""Linear algebra: matmul as torch.matmul dispatches it by rank, dot, mv, mm, ..."""

from __future__ import annotations

import numpy as np

from gradcalc.engine import rules
from gradcalc.engine.row import Kind, Op, SecondOrder


def _linalg(name, forward, grad_fn, vjp, check, **extra) -> Op:
    return Op(name=name, arity=2, forward=forward, grad_fn=grad_fn, kind=Kind.LINALG, vjp=vjp,
              display_partials=rules.other_factor_display, check=check, tensor_args=True,
              second_order=SecondOrder.MULTILINEAR, **extra)



def _unary(name, forward, form, grad_fn, **extra) -> Op:
    return Op(name=name, arity=1, forward=forward, form=form, grad_fn=grad_fn, **extra)


ROWS: tuple[Op, ...] = (
    # linear algebra: `@` and matmul dispatch by rank to the rows below it, as torch.matmul does
    Op("matmul", 2, np.matmul, None, kind=Kind.LINALG, tensor_args=True, lower=rules.matmul_lowering),
    _linalg("dot", rules.dot_forward, "DotBackward0", rules.dot_vjp, rules.dot_check),
    _linalg("mv", rules.mv_forward, "MvBackward0", rules.mv_vjp, rules.mv_check, function=False, internal=True),
    _linalg("mm", rules.mm_forward, "MmBackward0", rules.mm_vjp, rules.mm_check, function=False, internal=True),
    _unary("unsqueeze0", lambda a: a[np.newaxis], None, "UnsqueezeBackward0", kind=Kind.LINALG,
           vjp=rules.reshape_vjp, display_partials=rules.one_display, second_order=SecondOrder.MULTILINEAR,
           display_value=rules.identity_value, function=False, internal=True),
    _unary("squeeze0", lambda a: a[0], None, "SqueezeBackward4", kind=Kind.LINALG,
           vjp=rules.reshape_vjp, display_partials=rules.one_display, second_order=SecondOrder.MULTILINEAR,
           display_value=rules.identity_value, function=False, internal=True),)
