"""THE op table: every primitive of the language, declared once, in one row.

A row gives the NumPy forward, the SymPy form (from which the local partials of an
elementwise op are derived, once), PyTorch's `grad_fn` name (which may depend on whether
each operand is a tensor or a number), and, only where SymPy's derivative and PyTorch's
backward formula part ways, PyTorch's formula. Reductions and linear algebra carry a
hand-written vector-Jacobian product instead. The parser, the graph, the backward pass
and the symbolic display all read this table; nothing else names an operation.

SymPy forms are functions of the `sympy` module and canonical symbols, called lazily, so
importing this module imports neither SymPy nor anything slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Optional, Union

import numpy as np

from gradcalc.numeric import call, torch_pow, where


class Kind(str, Enum):
    ELEMENTWISE = "elementwise"  # broadcasting; partials derived from `form`
    REDUCTION = "reduction"      # to a 0-d tensor; hand-written `vjp`
    LINALG = "linalg"            # hand-written `vjp`
    DETACH = "detach"            # a new leaf that requires no grad
    IDENTITY = "identity"        # returns its operand itself, as torch's `+x` does


# grad_fn: a fixed name, or a function of which operands are tensors (True) or numbers.
GradFnName = Union[str, Callable[[tuple[bool, ...]], str]]
# A rewrite by operand kinds into other rows: returns (op name, args) where an arg is an
# operand index or a nested (op name, args) call; None keeps the row as it is.
Lowering = Callable[[tuple[bool, ...]], Optional[tuple]]


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    forward: Callable[..., np.ndarray]
    grad_fn: Optional[GradFnName]
    kind: Kind = Kind.ELEMENTWISE
    # Elementwise: (sympy, *symbols) -> the op's value as a SymPy expression.
    form: Optional[Callable] = None
    # Elementwise: (g, result, *args) -> {arg index: PyTorch's backward formula}, as
    # `numeric.Term`s, where it differs from grad * SymPy's derivative at edge points
    # (masks, 0**0) or in float rounding (the order of operations). Used for numbers only;
    # the display keeps SymPy's derivative.
    torch_vjps: Optional[Callable] = None
    # Non-elementwise: (grad, args, result) -> one gradient (or None) per argument.
    vjp: Optional[Callable] = None
    # Non-elementwise: (sympy, arg exprs, arg shapes) -> one display partial per argument.
    display_partials: Optional[Callable] = None
    # False for operators (`+`, unary `-`, ...): not callable by name in a program.
    function: bool = True
    lower: Optional[Lowering] = None

    def grad_fn_name(self, tensor_args: tuple[bool, ...]) -> Optional[str]:
        if callable(self.grad_fn):
            return self.grad_fn(tensor_args)
        return self.grad_fn


def _by_kinds(tt: str, tn: str, nt: str) -> Callable[[tuple[bool, ...]], str]:
    """grad_fn name for a binary op by operand kinds: tensor-tensor, tensor-number, number-tensor."""

    def name(kinds: tuple[bool, ...]) -> str:
        return {(True, True): tt, (True, False): tn, (False, True): nt}[kinds]

    return name


def _rdiv_lowering(kinds: tuple[bool, ...]) -> Optional[tuple]:
    # torch evaluates `2 / x` as `x.reciprocal() * 2`: MulBackward0 over ReciprocalBackward0.
    if kinds == (False, True):
        return ("mul", (("reciprocal", (1,)), 0))
    return None


def _pow_vjps(g, r, a, b):
    # pow_backward_self masks where the exponent is 0 (a true zero, even for a nan grad);
    # pow_backward_exponent multiplies by a mask that is 0 where the base is 0 and exponent >= 0.
    return {
        0: where(b == 0, 0, g * (b * a ** (b - 1))),
        1: g * where((a == 0) & (b >= 0), 0, r * call("log", a)),
    }


def _sum_vjp(grad, args, result):
    (x,) = args
    return (np.broadcast_to(grad, np.shape(x)),)


def _mean_vjp(grad, args, result):
    (x,) = args
    n = np.size(x)
    return (np.broadcast_to(grad / np.asarray(n, dtype=grad.dtype), np.shape(x)),)


def _sum_display(sp, exprs, shapes):
    return (sp.Integer(1),)


def _mean_display(sp, exprs, shapes):
    return (sp.Rational(1, int(np.prod(shapes[0], dtype=np.int64))),)


def _reduce(fn):
    def forward(x):
        return np.asarray(fn(x), dtype=np.asarray(x).dtype)

    return forward


def _unary(name, forward, form, grad_fn, **extra) -> Op:
    return Op(name=name, arity=1, forward=forward, form=form, grad_fn=grad_fn, **extra)


ROWS: tuple[Op, ...] = (
    # operators
    Op("add", 2, np.add, "AddBackward0", form=lambda sp, a, b: a + b, function=False),
    Op("sub", 2, np.subtract, _by_kinds("SubBackward0", "SubBackward0", "RsubBackward1"),
       form=lambda sp, a, b: a - b, function=False),
    Op("mul", 2, np.multiply, "MulBackward0", form=lambda sp, a, b: a * b, function=False),
    Op("div", 2, np.divide, _by_kinds("DivBackward0", "DivBackward0", "MulBackward0"),
       form=lambda sp, a, b: a / b, function=False, lower=_rdiv_lowering,
       torch_vjps=lambda g, r, a, b: {1: -g * ((a / b) / b)}),
    Op("pow", 2, torch_pow, _by_kinds("PowBackward1", "PowBackward0", "PowBackward2"),
       form=lambda sp, a, b: a**b, torch_vjps=_pow_vjps),
    _unary("neg", np.negative, lambda sp, a: -a, "NegBackward0", function=False),
    _unary("pos", lambda a: a, lambda sp, a: a, None, kind=Kind.IDENTITY, function=False),
    # elementwise functions
    _unary("exp", np.exp, lambda sp, a: sp.exp(a), "ExpBackward0",
           torch_vjps=lambda g, r, a: {0: g * r}),
    _unary("log", np.log, lambda sp, a: sp.log(a), "LogBackward0"),
    _unary("sin", np.sin, lambda sp, a: sp.sin(a), "SinBackward0"),
    _unary("cos", np.cos, lambda sp, a: sp.cos(a), "CosBackward0"),
    _unary("reciprocal", np.reciprocal, lambda sp, a: 1 / a, "ReciprocalBackward0",
           torch_vjps=lambda g, r, a: {0: -g * (r * r)}),
    # threshold_backward(grad, result, 0): a true 0 where relu(x) <= 0, x = 0 included.
    _unary("relu", lambda a: np.where(a < 0, np.zeros_like(a), a), lambda sp, a: sp.Max(0, a),
           "ReluBackward0", torch_vjps=lambda g, r, a: {0: where(r <= 0, 0, g)}),
    # reductions
    _unary("sum", _reduce(np.sum), None, "SumBackward0", kind=Kind.REDUCTION,
           vjp=_sum_vjp, display_partials=_sum_display),
    _unary("mean", _reduce(np.mean), None, "MeanBackward0", kind=Kind.REDUCTION,
           vjp=_mean_vjp, display_partials=_mean_display),
    # graph
    _unary("detach", lambda a: a, None, None, kind=Kind.DETACH),
)

OPS: dict[str, Op] = {row.name: row for row in ROWS}

# What a program may call by name (`exp(x)`, `x.exp()`), for the parser and its hints.
FUNCTIONS: dict[str, Op] = {name: row for name, row in OPS.items() if row.function}
