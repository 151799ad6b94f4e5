"""Linear algebra: matmul as torch.matmul dispatches it by rank, dot, mv, mm, bmm."""

from __future__ import annotations

import numpy as np

from gradcalc.engine import rules
from gradcalc.engine.row import Kind, Op, SecondOrder
from gradcalc.lang.syntax import Param, ParamKind

INPUT = Param("input", ParamKind.TENSOR)


def _linalg(name, forward, grad_fn, vjp, check, other: str, **extra) -> Op:
    return Op(name=name, arity=2, forward=forward, grad_fn=grad_fn, kind=Kind.LINALG, vjp=vjp,
              display_partials=rules.other_factor_display, check=check, tensor_args=True,
              second_order=SecondOrder.MULTILINEAR, signature=(INPUT, Param(other, ParamKind.TENSOR)),
              integers=True, **extra)


ROWS: tuple[Op, ...] = (
    # `@` and matmul: torch's _matmul_impl, lowered into the rows below and torch's views
    # (unsqueeze, squeeze_, expand, view, _reshape_alias, _unsafe_view, transpose, t, _clone)
    Op("matmul", 2, np.matmul, None, kind=Kind.LINALG, tensor_args=True, lower=rules.matmul_lowering,
       signature=(INPUT, Param("other", ParamKind.TENSOR)), integers=True),
    _linalg("dot", rules.dot_forward, "DotBackward0", rules.dot_vjp, rules.dot_check, "tensor"),
    _linalg("mv", rules.mv_forward, "MvBackward0", rules.mv_vjp, rules.mv_check, "vec"),
    _linalg("mm", rules.mm_forward, "MmBackward0", rules.mm_vjp, rules.mm_check, "mat2"),
    _linalg("bmm", rules.bmm_forward, "BmmBackward0", rules.bmm_vjp, rules.bmm_check, "mat2"),
)
