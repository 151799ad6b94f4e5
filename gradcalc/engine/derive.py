"""Local partials of elementwise ops: derived once with SymPy, kept as small expression trees.

`vjp_tree(op, i)` is `grad * d op / d arg_i` as nested tuples that `numeric.evaluate` runs
with NumPy: PyTorch's formula where the op's row states one, else SymPy's derivative of
the row's form. Only canonical symbols `a0, a1, ...` and `g` reach SymPy: never user text.
"""

from __future__ import annotations

from functools import lru_cache

from gradcalc import cache
from gradcalc.engine.numeric import RESULT, G, arg_terms, lift
from gradcalc.engine.ops import OPS

# SymPy function classes and the numeric.evaluate name of each.
_FUNCTIONS = {
    "exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tan": "tan",
    "asin": "arcsin", "acos": "arccos", "atan": "arctan", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "Abs": "abs", "sign": "sign", "erf": "erf", "atan2": "arctan2",
    "Max": "maximum", "Min": "minimum",
}
_COMPARISONS = {"Equality": "==", "Unequality": "!=", "StrictLessThan": "<",
                "LessThan": "<=", "StrictGreaterThan": ">", "GreaterThan": ">="}


def symbols(sp, n: int) -> list:
    return [sp.Symbol(f"a{i}", real=True) for i in range(n)]


@lru_cache(maxsize=None)
def derivative(op_name: str, i: int):
    """SymPy's derivative of the op's form by its i-th argument, on canonical symbols."""
    import sympy as sp

    row = OPS[op_name]
    args = symbols(sp, row.arity)
    return sp.diff(row.form(sp, *args), args[i])


@lru_cache(maxsize=None)
def display_partial(op_name: str, i: int):
    """The derivative as shown: d(a**b)/da as b*a**(b - 1), not SymPy's a**b*b/a."""
    import sympy as sp

    return sp.powsimp(derivative(op_name, i))


def vjp_tree(op_name: str, i: int) -> tuple:
    """`g * partial_i` for an elementwise op, as an expression tree over ("g",) and ("arg", k).

    PyTorch's formula where the row states one; else SymPy's derivative, kept in the
    program's cache entry so that a repeated call need not import SymPy."""
    stated = _stated_vjp_tree(op_name, i)
    if stated is not None:
        return stated
    return cache.current().get("vjp", f"{op_name}/{i}", lambda: _derived_vjp_tree(op_name, i), decode=as_tree)


@lru_cache(maxsize=None)
def _stated_vjp_tree(op_name: str, i: int) -> tuple | None:
    row = OPS[op_name]
    if row.torch_vjps is not None:
        formulas = row.torch_vjps(G, RESULT, *arg_terms(row.arity))
        if i in formulas:
            return lift(formulas[i]).tree
    return None


def as_tree(value) -> tuple:
    """A tree read back from JSON (lists) as the nested tuples `numeric.evaluate` takes; only
    the shapes `_tree` makes pass (a cache file is data: it names no other function)."""
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise ValueError("not an expression tree")
    tree = _tuples(value)
    _check_tree(tree)
    return tree


_CALLS = frozenset(_FUNCTIONS.values()) | {"sqrt"}
_ARITY = {"g": 0, "result": 0, "true": 0, "neg": 1, "sub": 2, "div": 2, "pow": 2}


def _check_tree(tree) -> None:
    stack = [tree]
    while stack:
        t = stack.pop()
        if not isinstance(t, tuple) or not t or not isinstance(t[0], str):
            raise ValueError("not an expression tree")
        tag, rest = t[0], t[1:]
        if tag in _ARITY and len(rest) == _ARITY[tag]:
            stack.extend(rest)
        elif tag == "arg" and len(rest) == 1 and type(rest[0]) is int and 0 <= rest[0] < 3:
            pass
        elif tag == "num" and len(rest) == 1 and type(rest[0]) in (int, float):
            pass
        elif tag in ("add", "mul", "and", "or", "not") and len(rest) == 1 and isinstance(rest[0], tuple):
            stack.extend(rest[0])
        elif tag == "call" and len(rest) == 2 and rest[0] in _CALLS and isinstance(rest[1], tuple):
            stack.extend(rest[1])
        elif tag == "cmp" and len(rest) == 3 and rest[0] in _COMPARISONS.values():
            stack.extend(rest[1:])
        elif tag == "where" and len(rest) == 1 and all(isinstance(b, tuple) and len(b) == 2 for b in rest[0]):
            stack.extend(x for branch in rest[0] for x in branch)
        else:
            raise ValueError(f"not an expression tree node: {tag!r}")


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


@lru_cache(maxsize=None)
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
