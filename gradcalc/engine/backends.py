"""Number backends, chosen once at the top (`backend(dtype)`): floats in a NumPy dtype, as
torch computes, or exact SymPy numbers (`eval --exact`: 1/3 stays 1/3). The graph, the
backward pass and the formula interpreters do their arithmetic through one of these and
never ask which.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradcalc.engine.formula import CONSTANTS, FUNCTIONS
from gradcalc.engine.kernels import torch_pow
from gradcalc.lang import syntax
from gradcalc.lang.values import cast


class Floats:
    """torch's arithmetic: tensors of one float dtype, Python numbers as torch's Scalars."""

    exact = False

    def __init__(self, dtype: Any):
        self.dtype = np.dtype(dtype)

    def tensor(self, value) -> np.ndarray:
        """An input's value as a tensor of this backend."""
        return cast(value, self.dtype)

    def program_number(self, const) -> Any:
        """A number of the program (a graph.Const) as an operand: a Python float."""
        return const.value

    def number(self, x: float) -> Any:
        return x  # a Python number: NumPy casts it to the tensor's dtype, as torch a Scalar

    def constant(self, name: str) -> Any:
        return CONSTANTS[name].value

    def call(self, name: str, *xs) -> Any:
        value = FUNCTIONS[name].numpy(*xs)
        # A function of Python numbers stays a Python number, as torch's Scalar math does.
        return float(value) if all(isinstance(x, float) for x in xs) else value

    def pow(self, base, exponent) -> Any:
        return torch_pow(base, exponent)

    def isnan(self, x) -> Any:
        return np.isnan(x)

    def forward(self, op, operands: list, params: dict | None = None) -> np.ndarray:
        params = params or {}
        with np.errstate(all="ignore"):
            value = op.forward(*operands, **params)
        return np.asarray(value, dtype=self.result_dtype(op, operands, params))

    def result_dtype(self, op, operands: list, params: dict) -> np.dtype:
        """The dtype torch gives the op's result: the float dtype, but integers where the row
        keeps them (int64 + int64) and whatever the row states (comparisons: bool)."""
        dtypes = [np.asarray(x).dtype if isinstance(x, np.ndarray) else None for x in operands]
        if op.result_dtype is not None:
            return np.dtype(op.result_dtype(dtypes, self.dtype, **params))
        tensors = [d for d in dtypes if d is not None]
        numbers = [x for x, d in zip(operands, dtypes) if d is None]
        if (op.integers and tensors and all(d.kind in "iub" for d in tensors)
                and all(float(x).is_integer() and isinstance(x, int) for x in numbers)):
            return np.dtype(np.int64)
        return self.dtype


class Exact:
    """Exact arithmetic: object arrays of SymPy numbers. Values are the rationals they were
    written as (`0.1` is 1/10), each op's forward is its exact form, and the backward
    formulas of the op table run unchanged, their constants and functions made exact."""

    exact = True
    dtype = np.dtype(object)

    def __init__(self) -> None:
        import sympy

        self.sp = sympy

    def tensor(self, value) -> np.ndarray:
        array = np.asarray(value)
        with np.errstate(invalid="ignore"):
            return np.asarray(np.frompyfunc(self.number, 1, 1)(array), dtype=object).reshape(array.shape)

    def program_number(self, const) -> Any:
        return program_constant(self.sp, const)

    def number(self, x) -> Any:
        """A float as the exact number it was written as (repr: 0.1 -> 1/10), nan and oo kept."""
        sp = self.sp
        if isinstance(x, sp.Basic):
            return x
        x = float(x)
        if math.isnan(x):
            return sp.nan
        if math.isinf(x):
            return sp.oo if x > 0 else -sp.oo
        return sp.Rational(repr(x))

    def constant(self, name: str) -> Any:
        return CONSTANTS[name].exact(self.sp)

    def call(self, name: str, *xs) -> Any:
        return elementwise(FUNCTIONS[name].exact(self.sp), *xs)

    def pow(self, base, exponent) -> Any:
        return elementwise(lambda a, b: a**b, base, exponent)

    def isnan(self, x) -> Any:
        nan = self.sp.nan

        def one(v) -> bool:
            return v is nan or (isinstance(v, float) and math.isnan(v))

        return np.asarray(np.frompyfunc(one, 1, 1)(np.asarray(x, dtype=object)), dtype=bool)

    def forward(self, op, operands: list, params: dict | None = None) -> np.ndarray:
        """An op's exact value: elementwise by its form, reductions by their exact rule, the
        rest (shapes, indexing) by its forward on arrays of exact numbers."""
        params = params or {}
        if op.form is not None:
            return elementwise(lambda *a: op.form(self.sp, *a), *operands)
        if op.exact is not None:
            return np.asarray(op.exact(self.sp, *operands, **params), dtype=object)
        value = op.forward(*operands, **params)
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub" and op.kind.value == "constant":
            return self.tensor(value)
        return np.asarray(value, dtype=object)


def backend(dtype: str) -> Floats | Exact:
    """The backend for a dtype name: "float32", "float64", or "exact"."""
    return Exact() if dtype == "exact" else Floats(dtype)


def elementwise(fn, *operands) -> np.ndarray:
    result = np.frompyfunc(fn, len(operands), 1)(*operands)
    return np.asarray(result, dtype=object)


def program_constant(sp, const) -> Any:
    """A folded number (a graph.Const), exact where the program wrote it exactly (`1/2`,
    `pi`), else a Float."""
    return _exact_number(sp, const.expr, const.value)


def _exact_number(sp, expr, value: float) -> Any:
    if isinstance(expr, syntax.Number):
        if expr.text == "pi":
            return sp.pi
        if len(expr.text) <= 20 and math.isfinite(value):
            return sp.Rational(expr.text) if any(c in expr.text for c in ".eE") else sp.Integer(expr.text)
    elif isinstance(expr, syntax.Call) and _small_exact(expr):
        from gradcalc.engine.ops import OPS

        args = [_exact_number(sp, a, 0.0) for a in expr.args]
        row = OPS[expr.op]
        if row.form is not None:
            return row.form(sp, *args)
    if value.is_integer() and abs(value) < 2**53:
        return sp.Integer(int(value))
    return sp.Float(value)


def _small_exact(expr: syntax.Call) -> bool:
    """Exact arithmetic only on a few short literals with small exponents: no SymPy bombs."""
    nodes = 0
    stack: list[syntax.Expr] = [expr]
    while stack:
        e = stack.pop()
        nodes += 1
        if nodes > 20:
            return False
        if isinstance(e, syntax.Number) and (len(e.text) > 12 or not math.isfinite(e.value)):
            return False
        if isinstance(e, syntax.Call):
            if e.op == "pow" and not (isinstance(e.args[1], syntax.Number) and abs(e.args[1].value) <= 64):
                return False
            stack.extend(e.args)
    return True
