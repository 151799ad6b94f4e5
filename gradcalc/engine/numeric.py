"""Expression trees for backward formulas, and their evaluation with NumPy in the tensors' dtype.

A tree is nested tuples: ("g",) the incoming gradient, ("result",) the op's output,
("arg", i) its i-th operand, ("num", v), and operations over those. `Term` builds trees
with Python operators, so that a row of the op table can state PyTorch's formula as
PyTorch writes it: `-g * ((a / b) / b)`.
"""

from __future__ import annotations

import functools
import math
import operator

import numpy as np

_CMP = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
        ">": np.greater, ">=": np.greater_equal}

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """The error function elementwise, in x's dtype (NumPy has none)."""
    x = np.asarray(x)
    return np.asarray(_erf(x), dtype=np.float64).astype(x.dtype if x.dtype.kind == "f" else np.float64)


class Term:
    """A tree under construction: `g * b`, `where(r <= 0, 0, g)`."""

    __slots__ = ("tree",)

    def __init__(self, tree: tuple):
        self.tree = tree

    def _bin(self, tag, other, swap=False):
        a, b = (lift(other), self) if swap else (self, lift(other))
        return Term((tag, a.tree, b.tree))

    def __add__(self, o): return Term(("add", (self.tree, lift(o).tree)))
    def __radd__(self, o): return Term(("add", (lift(o).tree, self.tree)))
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, swap=True)
    def __mul__(self, o): return Term(("mul", (self.tree, lift(o).tree)))
    def __rmul__(self, o): return Term(("mul", (lift(o).tree, self.tree)))
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, swap=True)
    def __pow__(self, o): return self._bin("pow", o)
    def __neg__(self): return Term(("neg", self.tree))
    def __eq__(self, o): return Term(("cmp", "==", self.tree, lift(o).tree))  # type: ignore[override]
    def __ne__(self, o): return Term(("cmp", "!=", self.tree, lift(o).tree))  # type: ignore[override]
    def __lt__(self, o): return Term(("cmp", "<", self.tree, lift(o).tree))
    def __le__(self, o): return Term(("cmp", "<=", self.tree, lift(o).tree))
    def __gt__(self, o): return Term(("cmp", ">", self.tree, lift(o).tree))
    def __ge__(self, o): return Term(("cmp", ">=", self.tree, lift(o).tree))
    def __and__(self, o): return Term(("and", (self.tree, lift(o).tree)))
    def __or__(self, o): return Term(("or", (self.tree, lift(o).tree)))
    __hash__ = None  # type: ignore[assignment]


def lift(x) -> Term:
    return x if isinstance(x, Term) else Term(("num", float(x)))


def where(cond: Term, then, otherwise) -> Term:
    return Term(("where", ((cond.tree, lift(then).tree), (("true",), lift(otherwise).tree))))


def call(name: str, *args) -> Term:
    return Term(("call", name, tuple(lift(a).tree for a in args)))


G, RESULT = Term(("g",)), Term(("result",))


def arg_terms(n: int) -> list[Term]:
    return [Term(("arg", i)) for i in range(n)]


def torch_pow(base, exponent):
    """x ** e as torch computes it on the CPU: special kernels for a Python-number exponent."""
    if np.asarray(base).dtype == object or np.asarray(exponent).dtype == object:
        from gradcalc.engine.exact import elementwise

        return elementwise(lambda a, b: a**b, base, exponent)  # `--exact`: SymPy numbers
    if isinstance(exponent, float):
        e = exponent
        if e == 0.5:
            return np.sqrt(base)
        if e == -0.5:
            return np.asarray(1, dtype=np.result_type(base)) / np.sqrt(base)
        if e == -1:
            return np.asarray(1, dtype=np.result_type(base)) / base
        if e == 2:
            return base * base
        if e == 3:
            return base * base * base
        if e == -2:
            return np.asarray(1, dtype=np.result_type(base)) / (base * base)
        return np.power(base, e)
    if np.ndim(exponent) == 0:
        # A 0-d exponent tensor: torch's elementwise pow, not NumPy's scalar shortcuts
        # (NumPy's sqrt for 0.5 gives -0. at -0.; pow gives 0.).
        exponent = np.full(np.shape(base) or (1,), exponent, dtype=np.result_type(exponent))
        return np.power(base, exponent).reshape(np.broadcast_shapes(np.shape(base), ()))
    return np.power(base, exponent)


def torch_sign(x):
    """torch's sign: (0 < x) - (x < 0), so 0 for nan and for -0."""
    dtype = np.result_type(x)
    return np.asarray(x > 0, dtype=dtype) - np.asarray(x < 0, dtype=dtype)


def _wide(fn, *, float64_too: bool = True):
    """fn evaluated one precision up and rounded back: float32 via float64, float64 via the
    80-bit long double. torch's vectorised libm is within an ulp of the correctly rounded
    result, which this lands on far more often than NumPy's own float32 functions (exp: 1%
    of inputs differ from torch instead of 39%)."""
    wider = {np.dtype(np.float32): np.float64}
    if float64_too:
        wider[np.dtype(np.float64)] = np.longdouble

    def wide(*xs):
        dtype = np.result_type(*xs)
        if dtype not in wider:
            return fn(*xs)
        return fn(*(np.asarray(x, dtype=wider[dtype]) for x in xs)).astype(dtype)

    wide.__name__ = fn.__name__
    return wide


# Transcendental functions as forward rows and backward formulas compute them.
LIBM = {name: _wide(getattr(np, name)) for name in (
    "exp", "log", "log2", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arctan", "arctan2")}
# In float64 these agree with torch more often as NumPy computes them.
LIBM.update({name: _wide(getattr(np, name), float64_too=False)
             for name in ("arcsin", "arccos", "expm1", "log1p")})

_FUNCTIONS = {"erf": erf, "sign": torch_sign, **LIBM}


# Elements per iteration of torch's vectorised elementwise loops on x86-64 (two AVX2 vectors).
VECTOR_BLOCK = {4: 16, 8: 8}


def vector_lanes(shape: tuple, operand_shapes, dtype) -> np.ndarray:
    """Which elements torch's elementwise loop computes with vector instructions (the rest, a
    tail shorter than a block, with scalar code): over the whole tensor when the operands
    coalesce to one dimension, else along the innermost dimension."""
    block = VECTOR_BLOCK.get(np.dtype(dtype).itemsize, 1)
    size = int(np.prod(shape, dtype=np.int64))
    if all(s == shape or int(np.prod(s, dtype=np.int64)) == 1 for s in operand_shapes):
        return (np.arange(size) < size // block * block).reshape(shape)
    inner = shape[-1]
    return np.broadcast_to(np.arange(inner) < inner // block * block, shape)


def apply_function(name: str, *xs):
    if any(np.asarray(x).dtype == object for x in xs):
        from gradcalc.engine.exact import function

        return function(name)(*xs)
    value = _FUNCTIONS[name](*xs) if name in _FUNCTIONS else getattr(np, name)(*xs)
    # A function of Python numbers stays a Python number, as torch's Scalar math does.
    return float(value) if all(isinstance(x, float) for x in xs) else value


def evaluate(tree: tuple, g, args: list, dtype, result=None):
    """The value of `tree` with ("g",), ("result",) and ("arg", i) bound.

    Operands that are numbers in the program are Python floats, as in torch: `x ** 0.5`
    takes torch's sqrt kernel, and arithmetic on numbers alone happens in double.
    """
    return _compiled(tree)(g, args, dtype, result)


@functools.cache
def _compiled(tree: tuple):
    """The tree as nested closures, made once per tree: evaluating a node's formula then
    costs the NumPy operations and a call each, not a walk of the tree's tags. The
    operations and their order are the tree's own."""
    tag = tree[0]
    if tag == "g":
        return lambda g, args, dtype, result: g
    if tag == "arg":
        index = tree[1]
        return lambda g, args, dtype, result: args[index]
    if tag == "result":
        return lambda g, args, dtype, result: result
    if tag == "num":
        number = tree[1]

        def num(g, args, dtype, result):
            if dtype == object:
                from gradcalc.engine.exact import constant

                return constant(number)
            return number  # a Python number: NumPy casts it to the tensor's dtype, as torch a Scalar
        return num
    if tag == "true":
        return lambda g, args, dtype, result: np.asarray(True)
    if tag in ("add", "mul"):
        combine = operator.add if tag == "add" else operator.mul
        first, *rest = [_compiled(t) for t in tree[1]]

        def fold(g, args, dtype, result):
            value = first(g, args, dtype, result)
            for part in rest:
                value = combine(value, part(g, args, dtype, result))
            return value
        return fold
    if tag in ("sub", "div", "pow"):
        combine = {"sub": operator.sub, "div": operator.truediv, "pow": torch_pow}[tag]
        left, right = _compiled(tree[1]), _compiled(tree[2])
        return lambda g, args, dtype, result: combine(left(g, args, dtype, result), right(g, args, dtype, result))
    if tag == "neg":
        inner = _compiled(tree[1])
        return lambda g, args, dtype, result: -inner(g, args, dtype, result)
    if tag == "call":
        name, parts = tree[1], [_compiled(t) for t in tree[2]]
        return lambda g, args, dtype, result: apply_function(name, *(p(g, args, dtype, result) for p in parts))
    if tag == "cmp":
        compare, left, right = _CMP[tree[1]], _compiled(tree[2]), _compiled(tree[3])
        return lambda g, args, dtype, result: compare(left(g, args, dtype, result), right(g, args, dtype, result))
    if tag in ("and", "or"):
        combine = np.logical_and if tag == "and" else np.logical_or
        parts = [_compiled(t) for t in tree[1]]
        return lambda g, args, dtype, result: functools.reduce(combine, (p(g, args, dtype, result) for p in parts))
    if tag == "not":
        inner = _compiled(tree[1][0])
        return lambda g, args, dtype, result: np.logical_not(inner(g, args, dtype, result))
    if tag == "where":
        branches = [(_compiled(c), _compiled(v)) for c, v in tree[1]]

        def where(g, args, dtype, result):
            conds = [c(g, args, dtype, result) for c, _ in branches]
            values = [v(g, args, dtype, result) for _, v in branches]
            return _where(conds, values, g, dtype)
        return where
    raise ValueError(f"unknown expression tree node {tag!r}")


def _where(conds: list, values: list, g, dtype):
    """Piecewise: the first branch whose condition holds; a zero branch is a true zero."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in conds + values + [g]))
    result = np.broadcast_to(values[-1], shape).astype(dtype, copy=True)
    for cond, value in zip(reversed(conds[:-1]), reversed(values[:-1])):
        result = np.where(cond, value, result)
    return result.astype(dtype, copy=False)
