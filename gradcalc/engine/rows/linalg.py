"""Linear algebra: matmul as torch.matmul dispatches it by rank, dot, mv, mm, bmm."""

from __future__ import annotations

import numpy as np

from gradcalc.engine import rules
from gradcalc.engine.row import Kind, Op, SecondOrder
from gradcalc.errors import TorchError
from gradcalc.lang.syntax import Param, ParamKind

INPUT = Param("input", ParamKind.TENSOR)

_SCALAR_TYPE = {"float32": "Float", "float64": "Double", "int64": "Long", "bool": "Bool"}
_TYPE_META = {"float32": "float", "float64": "double", "int64": "long int", "bool": "bool"}


def _same_dtype(message):
    """A result_dtype rule: torch's error where the two operands' dtypes differ (an int64
    matrix times a float vector), worded by `message(first, second)` from the dtypes' names;
    else the usual promotion (int64 @ int64 is int64)."""

    def dtype(dtypes, float_dtype, **params):
        # (--exact holds floats as object arrays: named float32's way)
        a, b = ("float32" if str(d) == "object" else str(d) for d in dtypes)
        if a != b:
            raise TorchError(message(a, b), hint="both operands of a matrix product need one dtype")
        return None

    return dtype


_DTYPE_ERRORS = {
    "dot": lambda a, b: f"dot : expected both vectors to have same dtype, but found {_SCALAR_TYPE[a]} and "
                        f"{_SCALAR_TYPE[b]}",
    # addmv names its result (the vector's dtype), the matrix and the vector
    "mv": lambda a, b: f"addmv input tensors must have the same dtype, but got {_SCALAR_TYPE[b]}, "
                       f"{_SCALAR_TYPE[a]}, and {_SCALAR_TYPE[b]}",
    "mm": lambda a, b: f"expected m1 and m2 to have the same dtype, but got: {_TYPE_META[a]} != {_TYPE_META[b]}",
    "bmm": lambda a, b: f"expected scalar type {_SCALAR_TYPE[a]} but found {_SCALAR_TYPE[b]}",
}


def _linalg(name, forward, grad_fn, vjp, check, other: str, **extra) -> Op:
    return Op(name=name, arity=2, forward=forward, grad_fn=grad_fn, kind=Kind.LINALG, vjp=vjp,
              display_partials=rules.other_factor_display, check=check, tensor_args=True,
              second_order=SecondOrder.MULTILINEAR, signature=(INPUT, Param(other, ParamKind.TENSOR)),
              integers=True, result_dtype=_same_dtype(_DTYPE_ERRORS[name]), **extra)


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
