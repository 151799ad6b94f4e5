"""Local partials of elementwise ops: derived once with SymPy, kept as formula trees.

`vjp_tree(op, i)` is `grad * d op / d arg_i` as a tree of the formula language (`formula.py`):
PyTorch's formula where the op's row states one, else SymPy's derivative of the row's form.
Only canonical symbols `a0, a1, ...` and `g` reach SymPy: never user text.
"""

from __future__ import annotations

import functools

from gradcalc import cache
from gradcalc.engine.formula import FUNCTIONS, RESULT, G, arg_terms, check_tree, lift
from gradcalc.engine.ops import OPS

# SymPy function classes and the formula function each is.
_FUNCTIONS = {f.sympy_class: name for name, f in FUNCTIONS.items() if f.sympy_class is not None}
_COMPARISONS = {"Equality": "==", "Unequality": "!=", "StrictLessThan": "<",
                "LessThan": "<=", "StrictGreaterThan": ">", "GreaterThan": ">="}


def symbols(sp, n: int) -> list:
    return [sp.Symbol(f"a{i}", real=True) for i in range(n)]


@functools.cache
def derivative(op_name: str, i: int):
    """SymPy's derivative of the op's form by its i-th argument, on canonical symbols."""
    import sympy as sp

    row = OPS[op_name]
    assert row.form is not None, f"{op_name} is not elementwise"
    args = symbols(sp, row.arity)
    return sp.diff(row.form(sp, *args), args[i])


def vjp_tree(op_name: str, i: int) -> tuple:
    """`g * partial_i` for an elementwise op, as an expression tree over ("g",) and ("arg", k).

    PyTorch's formula where the row states one; else SymPy's derivative, kept in the
    program's cache entry so that a repeated call need not import SymPy."""
    stated = _stated_vjp_tree(op_name, i)
    if stated is not None:
        return stated
    tree = cache.current().get("vjp", f"{op_name}/{i}", lambda: _derived_vjp_tree(op_name, i), decode=as_tree)
    return tree  # type: ignore[return-value]  # as_tree decodes it, or it was computed


@functools.cache
def _stated_vjp_tree(op_name: str, i: int) -> tuple | None:
    row = OPS[op_name]
    if row.torch_vjps is not None:
        formulas = row.torch_vjps(G, RESULT, *arg_terms(row.arity))
        if i in formulas:
            return lift(formulas[i]).tree
    return None


def as_tree(value) -> tuple:
    """A tree read back from JSON (lists) as the nested tuples the interpreters take; only
    trees of the formula language pass (a cache file is data: it names no other function)."""
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise ValueError("not an expression tree")
    return check_tree(_tuples(value))


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@functools.cache
def _derived_vjp_tree(op_name: str, i: int) -> tuple:
    import sympy as sp

    row = OPS[op_name]

    args = symbols(sp, row.arity)
    g = sp.Symbol("g", real=True)
    return _tree(sp, g * derivative(op_name, i), args, g)


def _tree(sp, e, args, g) -> tuple:
    if e == g:
        return ("g",)
    if e.is_Symbol:
        return ("arg", args.index(e))
    if e.is_Number or e in (sp.pi, sp.E):
        return ("num", float(e))
    if e is sp.true:
        return ("true",)
    if e.is_Add:
        return ("add", tuple(_tree(sp, t, args, g) for t in e.args))
    if e.is_Mul:
        return _product(sp, e, args, g)
    if e.is_Pow:
        return _power(sp, e.base, e.exp, args, g)
    if isinstance(e, sp.Piecewise):
        return ("where", tuple((_tree(sp, c, args, g), _tree(sp, v, args, g)) for v, c in e.args))
    if isinstance(e, sp.Heaviside):
        x = _tree(sp, e.args[0], args, g)
        h0 = _tree(sp, e.args[1], args, g) if len(e.args) > 1 else ("num", 0.5)
        return ("where", ((("cmp", ">", x, ("num", 0.0)), ("num", 1.0)),
                          (("cmp", "<", x, ("num", 0.0)), ("num", 0.0)), (("true",), h0)))
    kind = type(e).__name__
    if kind in _COMPARISONS:
        return ("cmp", _COMPARISONS[kind], _tree(sp, e.lhs, args, g), _tree(sp, e.rhs, args, g))
    if kind in ("And", "Or", "Not"):
        return (kind.lower(), tuple(_tree(sp, a, args, g) for a in e.args))
    if kind in _FUNCTIONS:
        return ("call", _FUNCTIONS[kind], tuple(_tree(sp, a, args, g) for a in e.args))
    raise NotImplementedError(f"no numeric form for {kind}")  # a bug in the op table


def _product(sp, e, args, g) -> tuple:
    """A product as PyTorch writes its backward: grad * (the other factors) / denominators."""
    has_g = g in e.args
    numer, denom = [], []
    for factor in e.args:
        if factor == g:
            continue
        if factor.is_Pow and factor.exp.is_Number and factor.exp < 0:
            denom.append(_power(sp, factor.base, -factor.exp, args, g))
        else:
            numer.append(_tree(sp, factor, args, g))
    top = _chain(numer)
    if has_g:
        top = ("g",) if top is None else ("mul", (("g",), top))
    if top is None:
        top = ("num", 1.0)
    return ("div", top, _chain(denom)) if denom else top


def _chain(factors: list) -> tuple | None:
    if not factors:
        return None
    return factors[0] if len(factors) == 1 else ("mul", tuple(factors))


def _power(sp, base, exp, args, g) -> tuple:
    b = _tree(sp, base, args, g)
    if exp == 1:
        return b
    if exp == sp.Rational(1, 2):
        return ("call", "sqrt", (b,))
    if exp.is_Number and exp < 0:
        return ("div", ("num", 1.0), _power(sp, base, -exp, args, g))
    return ("pow", b, _tree(sp, exp, args, g))
