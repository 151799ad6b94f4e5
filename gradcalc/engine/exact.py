"""`eval --exact`: tensors of SymPy numbers instead of floats (1/3 stays 1/3).

Values become exact rationals (`0.1` is 1/10), each op's forward is its SymPy form, and the
backward formulas of the op table run unchanged over object arrays, their constants and
functions made exact. Printed in torch's layout: `tensor([1/3, 1/2])`.
"""

from __future__ import annotations

import math

import numpy as np

from gradcalc.lang import syntax

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

    from gradcalc.engine.ops import Kind

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


def program_constant(sp, const):
    """A folded number (a graph.Const), exact where the program wrote it exactly (`1/2`,
    `pi`), else a Float."""
    return _exact_number(sp, const.expr, const.value)


def _exact_number(sp, expr, value: float):
    if isinstance(expr, syntax.Number):
        if expr.text == "pi":
            return sp.pi
        if len(expr.text) <= 20 and math.isfinite(value):
            return sp.Rational(expr.text) if any(c in expr.text for c in ".eE") else sp.Integer(expr.text)
    elif isinstance(expr, syntax.Call) and _small_exact(expr):
        args = [_exact_number(sp, a, 0.0) for a in expr.args]
        from gradcalc.engine.ops import OPS, Kind

        row = OPS[expr.op]
        if row.kind is Kind.ELEMENTWISE or row.kind is Kind.IDENTITY:
            return row.form(sp, *args) if row.form else args[0]
    if value.is_integer() and abs(value) < 2**53:
        return sp.Integer(int(value))
    return sp.Float(value)


def _small_exact(expr: syntax.Call) -> bool:
    """Exact arithmetic only on a few short literals with small exponents: no SymPy bombs."""
    nodes = 0
    stack = [expr]
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
