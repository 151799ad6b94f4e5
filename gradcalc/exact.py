"""`eval --exact`: tensors of SymPy numbers instead of floats (1/3 stays 1/3).

Values become exact rationals (`0.1` is 1/10), each op's forward is its SymPy form, and the
backward formulas of the op table run unchanged over object arrays, their constants and
functions made exact. Printed in torch's layout: `tensor([1/3, 1/2])`.
"""

from __future__ import annotations

import math

import numpy as np

EXACT = np.dtype(object)


def is_exact(value) -> bool:
    return np.asarray(value).dtype == EXACT


def number(x):
    """A float as the exact number it was written as (repr: 0.1 -> 1/10), nan and oo kept."""
    import sympy

    if isinstance(x, sympy.Basic):
        return x
    x = float(x)
    if math.isnan(x):
        return sympy.nan
    if math.isinf(x):
        return sympy.oo if x > 0 else -sympy.oo
    return sympy.Rational(repr(x))


def to_exact(value) -> np.ndarray:
    array = np.asarray(value)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.frompyfunc(number, 1, 1)(array), dtype=object).reshape(array.shape)


def elementwise(fn, *operands) -> np.ndarray:
    result = np.frompyfunc(fn, len(operands), 1)(*operands)
    return np.asarray(result, dtype=object)


def forward(op, operands: list) -> np.ndarray:
    """An op's exact value: elementwise by its SymPy form, reductions by SymPy sums and products."""
    import sympy

    from gradcalc.ops import Kind

    if op.kind is Kind.ELEMENTWISE:
        return elementwise(lambda *a: op.form(sympy, *a), *operands)
    if op.kind is Kind.REDUCTION:
        flat = list(np.asarray(operands[0], dtype=object).reshape(-1))
        value = REDUCTIONS[op.name](sympy, flat)
        return np.asarray(value, dtype=object).reshape(())
    return np.asarray(op.forward(*operands), dtype=object)


REDUCTIONS = {
    "sum": lambda sp, xs: sp.Add(*xs),
    "mean": lambda sp, xs: sp.Add(*xs) / len(xs) if xs else sp.nan,
    "prod": lambda sp, xs: sp.Mul(*xs),
    "max": lambda sp, xs: sp.Max(*xs),
    "min": lambda sp, xs: sp.Min(*xs),
    "norm": lambda sp, xs: sp.sqrt(sp.Add(*(x * x for x in xs))),
}


def function(name: str):
    """The exact counterpart of a NumPy function named in a backward formula."""
    import sympy as sp

    table = {
        "exp": sp.exp, "log": sp.log, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sinh": sp.sinh,
        "cosh": sp.cosh, "tanh": sp.tanh, "arctan": sp.atan, "arcsin": sp.asin, "arccos": sp.acos,
        "arctan2": sp.atan2, "expm1": lambda x: sp.exp(x) - 1, "log1p": lambda x: sp.log(1 + x),
        "log2": lambda x: sp.log(x, 2), "log10": lambda x: sp.log(x, 10), "sqrt": sp.sqrt,
        "abs": sp.Abs, "sign": sp.sign, "erf": sp.erf,
    }
    fn = table[name]
    return lambda *xs: elementwise(fn, *xs)


def constant(x: float):
    """A constant of a backward formula, exact: 2, 1/2, log(2), 2/sqrt(pi)."""
    import sympy as sp

    known = {0.6931471805599453: sp.log(2), 2.3025850929940456: sp.log(10),
             2 / math.sqrt(math.pi): 2 / sp.sqrt(sp.pi)}
    return known.get(x, number(x))


def is_nan(x) -> bool:
    import sympy

    return x is sympy.nan if isinstance(x, sympy.Basic) else bool(np.isnan(x))


def exact_repr(array) -> str:
    """torch's layout for exact numbers: `tensor([1/3, 1/2])`, rows aligned, n-d nested."""
    array = np.asarray(array, dtype=object)
    if array.ndim == 0:
        return f"tensor({array.item()})"
    texts = np.frompyfunc(str, 1, 1)(array)
    width = max((len(t) for t in texts.reshape(-1)), default=0)
    return "tensor(" + _nested(texts, width, indent=8) + ")"


def _nested(texts, width: int, indent: int) -> str:
    if texts.ndim == 1:
        return "[" + ", ".join(t.rjust(width) for t in texts) + "]"
    separator = "," + "\n" * (texts.ndim - 1) + " " * indent
    return "[" + separator.join(_nested(t, width, indent + 1) for t in texts) + "]"
