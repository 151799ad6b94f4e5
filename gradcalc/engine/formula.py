"""The backward-formula language: expression trees, the one table of their functions, and
their two interpreters (a value, and a value with its tangent for second order), both over a
number backend (floats in a dtype, or exact SymPy numbers).

A tree is nested tuples: ("g",) the incoming gradient, ("result",) the op's output,
("arg", i) its i-th operand, ("num", v) a number, ("const", name) a named constant, and
operations over those (`TAGS`). `Term` builds trees with Python operators, so that a row of
the op table states PyTorch's formula as PyTorch writes it: `-g * ((a / b) / b)`.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gradcalc.engine.kernels import LIBM, erf, float32_scalar, kernel_fma, lanes_of, sleef_tanh, torch_sign

# -- building trees -----------------------------------------------------------------------


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
    def __eq__(self, o): return Term(("cmp", "==", self.tree, lift(o).tree))
    def __ne__(self, o): return Term(("cmp", "!=", self.tree, lift(o).tree))
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


def const(name: str) -> Term:
    return Term(("const", name))


G, RESULT = Term(("g",)), Term(("result",))


def arg_terms(n: int) -> list[Term]:
    return [Term(("arg", i)) for i in range(n)]


# -- the one table of named constants and functions ---------------------------------------

@dataclass(frozen=True)
class Constant:
    value: float                    # torch's double, digit for digit
    exact: Callable[[Any], Any]     # sympy -> the exact number


CONSTANTS: dict[str, Constant] = {
    "ln2": Constant(0.6931471805599453, lambda sp: sp.log(2)),
    # 2.302585092994046 is another double: this is the one torch's formulas use.
    "ln10": Constant(2.3025850929940456, lambda sp: sp.log(10)),
    "2/sqrt(pi)": Constant(2 / math.sqrt(math.pi), lambda sp: 2 / sp.sqrt(sp.pi)),
    # hardsigmoid's `1.0f / 6.0f`: computed in float, in float64 too, so its exact value is that float's
    "1/6 in float32": Constant(0.1666666716337204, lambda sp: sp.Rational(0.1666666716337204)),
}


@dataclass(frozen=True)
class Function:
    """A function a formula may call: its float kernel, its exact counterpart, and its
    partial derivatives (Terms over its arguments ("arg", k) and its value ("result",)),
    from which the tangent interpreter differentiates a call."""

    numpy: Callable[..., Any]
    exact: Callable[[Any], Callable[..., Any]]       # sympy -> the exact function
    partials: Callable[..., tuple[Term, ...]]         # (value, *args) -> one Term per argument
    sympy_class: str | None = None                    # the SymPy class a derivative shows it as


def _atan2_partials(v: Term, a: Term, b: Term) -> tuple[Term, Term]:
    denominator = a * a + b * b
    return b / denominator, -a / denominator


FUNCTIONS: dict[str, Function] = {
    "exp": Function(LIBM["exp"], lambda sp: sp.exp, lambda v, x: (v,), "exp"),
    "expm1": Function(LIBM["expm1"], lambda sp: lambda x: sp.exp(x) - 1, lambda v, x: (v + 1,)),
    "log": Function(LIBM["log"], lambda sp: sp.log, lambda v, x: (1 / x,), "log"),
    "log1p": Function(LIBM["log1p"], lambda sp: lambda x: sp.log(1 + x), lambda v, x: (1 / (1 + x),)),
    "log2": Function(LIBM["log2"], lambda sp: lambda x: sp.log(x, 2), lambda v, x: (1 / (x * const("ln2")),)),
    "log10": Function(LIBM["log10"], lambda sp: lambda x: sp.log(x, 10),
                      lambda v, x: (1 / (x * const("ln10")),)),
    "sin": Function(LIBM["sin"], lambda sp: sp.sin, lambda v, x: (call("cos", x),), "sin"),
    "cos": Function(LIBM["cos"], lambda sp: sp.cos, lambda v, x: (-call("sin", x),), "cos"),
    "tan": Function(LIBM["tan"], lambda sp: sp.tan, lambda v, x: (1 + v * v,), "tan"),
    "arcsin": Function(LIBM["arcsin"], lambda sp: sp.asin, lambda v, x: (1 / call("sqrt", 1 - x * x),), "asin"),
    "arccos": Function(LIBM["arccos"], lambda sp: sp.acos, lambda v, x: (-1 / call("sqrt", 1 - x * x),), "acos"),
    "arctan": Function(LIBM["arctan"], lambda sp: sp.atan, lambda v, x: (1 / (1 + x * x),), "atan"),
    "arctan2": Function(LIBM["arctan2"], lambda sp: sp.atan2, _atan2_partials, "atan2"),
    "sinh": Function(LIBM["sinh"], lambda sp: sp.sinh, lambda v, x: (call("cosh", x),), "sinh"),
    "cosh": Function(LIBM["cosh"], lambda sp: sp.cosh, lambda v, x: (call("sinh", x),), "cosh"),
    "tanh": Function(LIBM["tanh"], lambda sp: sp.tanh, lambda v, x: (1 - v * v,), "tanh"),
    "sqrt": Function(np.sqrt, lambda sp: sp.sqrt, lambda v, x: (1 / (2 * v),)),
    "abs": Function(np.abs, lambda sp: sp.Abs, lambda v, x: (call("sign", x),), "Abs"),
    "sign": Function(torch_sign, lambda sp: sp.sign, lambda v, x: (lift(0),), "sign"),
    "erf": Function(erf, lambda sp: sp.erf, lambda v, x: (const("2/sqrt(pi)") * call("exp", -(x * x)),), "erf"),
    "maximum": Function(np.maximum, lambda sp: sp.Max,
                        lambda v, a, b: (where(a >= b, 1, 0), where(a >= b, 0, 1)), "Max"),
    "minimum": Function(np.minimum, lambda sp: sp.Min,
                        lambda v, a, b: (where(a <= b, 1, 0), where(a <= b, 0, 1)), "Min"),
    # which elements torch's loops compute in vector lanes (AVX2 blocks; AVX-512 blocks for the
    # kernels torch also builds so): a mask, no derivative; exact numbers are in no lane
    "lanes": Function(lanes_of(False), lambda sp: lambda x: False, lambda v, x: (lift(0),)),
    "lanes512": Function(lanes_of(True), lambda sp: lambda x: False, lambda v, x: (lift(0),)),
    # a Python number as torch's Scalar::toFloat() rounds it (celu's backward takes 1 / alpha)
    "float32": Function(float32_scalar, lambda sp: lambda x: sp.Rational(repr(float32_scalar(float(x)))),
                        lambda v, x: (lift(0),)),
    # tanh as the vector loop of a kernel built for AVX-512 computes it (Sleef's, +-1 past a
    # threshold below the point where tanh rounds to +-1)
    "tanh_lanes512": Function(sleef_tanh, lambda sp: sp.tanh, lambda v, x: (1 - v * v,)),
    # a * b + c rounded once: torch's vec::fmadd
    "fma": Function(kernel_fma, lambda sp: lambda a, b, c: a * b + c, lambda v, a, b, c: (b, a, lift(1))),
}

COMPARISONS = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
               ">": np.greater, ">=": np.greater_equal}

# Each tag and its operands: a count of subtrees, or the shape a checker verifies below.
TAGS = {"g": 0, "result": 0, "true": 0, "neg": 1, "sub": 2, "div": 2, "pow": 2}


def check_tree(tree, arity: int = 3) -> tuple:
    """The tree, if it is one of this language over `arity` operands; else ValueError. A tree
    read from a cache file is data: it names nothing outside these tables."""
    stack = [tree]
    while stack:
        t = stack.pop()
        if not isinstance(t, tuple) or not t or not isinstance(t[0], str):
            raise ValueError("not an expression tree")
        tag, rest = t[0], t[1:]
        if tag in TAGS and len(rest) == TAGS[tag]:
            stack.extend(rest)
        elif tag == "arg" and len(rest) == 1 and type(rest[0]) is int and 0 <= rest[0] < arity:
            pass
        elif tag == "num" and len(rest) == 1 and type(rest[0]) in (int, float):
            pass
        elif tag == "const" and len(rest) == 1 and rest[0] in CONSTANTS:
            pass
        elif tag in ("add", "mul", "and", "or", "not") and len(rest) == 1 and isinstance(rest[0], tuple):
            stack.extend(rest[0])
        elif tag == "call" and len(rest) == 2 and rest[0] in FUNCTIONS and isinstance(rest[1], tuple):
            stack.extend(rest[1])
        elif tag == "cmp" and len(rest) == 3 and rest[0] in COMPARISONS:
            stack.extend(rest[1:])
        elif tag == "where" and len(rest) == 1 and all(isinstance(b, tuple) and len(b) == 2 for b in rest[0]):
            stack.extend(x for branch in rest[0] for x in branch)
        else:
            raise ValueError(f"not an expression tree node: {tag!r}")
    return tree


# -- number backends ----------------------------------------------------------------------

class Numbers(Protocol):
    """What the interpreters need of a number backend (see `backends.py`)."""

    dtype: np.dtype

    def number(self, x: float) -> Any: ...
    def constant(self, name: str) -> Any: ...
    def call(self, name: str, *xs) -> Any: ...
    def pow(self, base, exponent) -> Any: ...


# -- the value interpreter ----------------------------------------------------------------

def run(tree: tuple, g, args: list, nums: Numbers, result=None):
    """The value of `tree` with ("g",), ("result",) and ("arg", i) bound.

    Operands that are numbers in the program are Python floats, as in torch: `x ** 0.5`
    takes torch's sqrt kernel, and arithmetic on numbers alone happens in double.
    """
    return _compiled(tree)(g, args, result, nums)


@functools.cache
def _compiled(tree: tuple):
    """The tree as nested closures, made once per tree: evaluating a node's formula then
    costs the NumPy operations and a call each, not a walk of the tree's tags. The
    operations and their order are the tree's own."""
    tag = tree[0]
    if tag == "g":
        return lambda g, args, result, nums: g
    if tag == "arg":
        index = tree[1]
        return lambda g, args, result, nums: args[index]
    if tag == "result":
        return lambda g, args, result, nums: result
    if tag == "num":
        number = tree[1]
        return lambda g, args, result, nums: nums.number(number)
    if tag == "const":
        name = tree[1]
        return lambda g, args, result, nums: nums.constant(name)
    if tag == "true":
        return lambda g, args, result, nums: np.asarray(True)
    if tag in ("add", "mul"):
        combine = operator.add if tag == "add" else operator.mul
        first, *rest = [_compiled(t) for t in tree[1]]

        def fold(g, args, result, nums):
            value = first(g, args, result, nums)
            for part in rest:
                value = combine(value, part(g, args, result, nums))
            return value
        return fold
    if tag in ("sub", "div"):
        combine = operator.sub if tag == "sub" else operator.truediv
        left, right = _compiled(tree[1]), _compiled(tree[2])
        return lambda g, args, result, nums: combine(left(g, args, result, nums), right(g, args, result, nums))
    if tag == "pow":
        base, exponent = _compiled(tree[1]), _compiled(tree[2])
        return lambda g, args, result, nums: nums.pow(base(g, args, result, nums), exponent(g, args, result, nums))
    if tag == "neg":
        inner = _compiled(tree[1])
        return lambda g, args, result, nums: -inner(g, args, result, nums)
    if tag == "call":
        name, parts = tree[1], [_compiled(t) for t in tree[2]]
        return lambda g, args, result, nums: nums.call(name, *(p(g, args, result, nums) for p in parts))
    if tag == "cmp":
        compare, left, right = COMPARISONS[tree[1]], _compiled(tree[2]), _compiled(tree[3])
        return lambda g, args, result, nums: compare(left(g, args, result, nums), right(g, args, result, nums))
    if tag in ("and", "or"):
        logical = np.logical_and if tag == "and" else np.logical_or
        parts = [_compiled(t) for t in tree[1]]
        return lambda g, args, result, nums: functools.reduce(logical, (p(g, args, result, nums) for p in parts))
    if tag == "not":
        inner = _compiled(tree[1][0])
        return lambda g, args, result, nums: np.logical_not(inner(g, args, result, nums))
    if tag == "where":
        branches = [(_compiled(c), _compiled(v)) for c, v in tree[1]]

        def choose(g, args, result, nums):
            conds = [c(g, args, result, nums) for c, _ in branches]
            values = [v(g, args, result, nums) for _, v in branches]
            return _where(conds, values, g, nums.dtype)
        return choose
    raise ValueError(f"unknown expression tree node {tag!r}")


def _where(conds: list, values: list, g, dtype):
    """Piecewise: the first branch whose condition holds; a zero branch is a true zero."""
    shape = np.broadcast_shapes(*(np.shape(x) for x in conds + values + [g]))
    result = np.broadcast_to(values[-1], shape).astype(dtype, copy=True)
    for cond, value in zip(reversed(conds[:-1]), reversed(values[:-1])):
        result = np.where(cond, value, result)
    return result.astype(dtype, copy=False)


# -- the tangent interpreter --------------------------------------------------------------

def tangent(tree: tuple, env: dict, args: list, nums: Numbers):
    """(value, tangent) of a formula, by the rules of calculus node by node: `env` binds "g"
    and "result", and `args` the operands, each to a (value, tangent) pair."""
    def go(t):
        return tangent(t, env, args, nums)

    tag = tree[0]
    slope: Any
    if tag in ("g", "result"):
        return env[tag]
    if tag == "arg":
        return args[tree[1]]
    if tag in ("num", "const", "true", "cmp", "and", "or", "not"):
        return run(tree, env["g"][0], [a for a, _ in args], nums, env["result"][0]), 0.0
    if tag in ("add", "mul"):
        value, slope = go(tree[1][0])
        for t in tree[1][1:]:
            v, d = go(t)
            value, slope = (value + v, slope + d) if tag == "add" else (value * v, slope * v + value * d)
        return value, slope
    if tag == "sub":
        (a, da), (b, db) = go(tree[1]), go(tree[2])
        return a - b, da - db
    if tag == "div":
        (a, da), (b, db) = go(tree[1]), go(tree[2])
        q = a / b
        return q, (da - q * db) / b
    if tag == "neg":
        a, da = go(tree[1])
        return -a, -da
    if tag == "pow":
        (a, da), (b, db) = go(tree[1]), go(tree[2])
        value = nums.pow(a, b)
        slope = 0.0
        if np.any(da != 0):
            slope = slope + da * b * nums.pow(a, b - 1)
        if np.any(db != 0):
            slope = slope + db * value * nums.call("log", a)
        return value, slope
    if tag == "call":
        pairs = [go(t) for t in tree[2]]
        values = [v for v, _ in pairs]
        value = nums.call(tree[1], *values)
        slope = 0.0
        for partial, (_, d) in zip(_partial_trees(tree[1], len(values)), pairs):
            slope = slope + run(partial, None, values, nums, value) * d
        return value, slope
    if tag == "where":
        plain = [a for a, _ in args]
        conds = [run(c, env["g"][0], plain, nums, env["result"][0]) for c, _ in tree[1]]
        pairs = [go(v) for _, v in tree[1]]
        value, slope = pairs[-1]
        for cond, (v, d) in zip(reversed(conds[:-1]), reversed(pairs[:-1])):
            value, slope = np.where(cond, v, value), np.where(cond, d, slope)
        return value, slope
    raise ValueError(f"unknown expression tree node {tag!r}")


@functools.cache
def _partial_trees(name: str, arity: int) -> tuple[tuple, ...]:
    return tuple(p.tree for p in FUNCTIONS[name].partials(RESULT, *arg_terms(arity)))
