"""The op table's row type: every fact about one primitive, in one `Op`.

A row holds the NumPy forward (torch's CPU results), PyTorch's `grad_fn` name (which may
depend on whether each operand is a tensor or a number, and on static arguments), the
signature the program writes it with, the backward rule, the exact forward, the
second-order rule or the declaration it follows from, and what the display shows. The
table itself is `ops.py`, assembled from its sections in `rows/`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from gradcalc.lang.syntax import Param, ParamKind


class Kind(str, Enum):
    ELEMENTWISE = "elementwise"  # broadcasting; partials derived from `form`
    REDUCTION = "reduction"      # to a 0-d tensor; hand-written `vjp`
    LINALG = "linalg"            # hand-written `vjp`
    DETACH = "detach"            # a new leaf that requires no grad
    IDENTITY = "identity"        # returns its operand itself, as torch's `+x` does
    CONSTANT = "constant"        # a new leaf from static arguments (ones, arange, tensor([...]))
    NONDIFF = "nondifferentiable"  # a result that never requires grad (argmax, comparisons)


class SecondOrder(str, Enum):
    """How a non-elementwise row's second derivatives follow from its first (for `--hessian`).
    An elementwise row needs no declaration: its formulas are differentiated node by node."""

    MULTILINEAR = "multilinear"      # linear in each operand alone (sum, mean, dot, mm, reshapes)
    LINEAR_IN_GRAD = "linear in the gradient"  # the rule depends on the operands through masks only (max)
    STATED = "stated"                # the row's `tangent` rule


# grad_fn: a fixed name, or a function of which operands are tensors (True) or numbers
# (and, for a row with static parameters, of those: `kinds, **params`).
GradFnName = str | Callable[..., str]
# A rewrite into other rows by operand kinds (tensor or number) and shapes (None for a
# number): (op name, args) where an arg is an operand index or a nested (op name, args)
# call; None keeps the row as it is.
Lowering = Callable[[tuple[bool, ...], tuple], tuple | None]


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    forward: Callable[..., np.ndarray]
    grad_fn: GradFnName | None
    kind: Kind = Kind.ELEMENTWISE
    # Elementwise: (sympy, *symbols) -> the op's value as a SymPy expression: its exact forward,
    # its display, and the derivative SymPy takes where `torch_vjps` states none.
    form: Callable | None = None
    # Elementwise: (g, result, *args) -> {arg index: PyTorch's backward formula}, as formula
    # `Term`s, where it differs from grad * SymPy's derivative at edge points (masks, 0**0) or
    # in float rounding (the order of operations). The display keeps SymPy's derivative.
    torch_vjps: Callable | None = None
    # Non-elementwise: (grad, args, result, nums) -> one gradient per argument.
    vjp: Callable | None = None
    # (sympy, *operands as object arrays of exact numbers, **params) -> the exact value, where
    # running `forward` on exact numbers does not give it (reductions, whose forwards are
    # torch's float kernels).
    exact: Callable[..., Any] | None = None
    # Non-elementwise: how second derivatives follow (and `tangent`, for STATED).
    second_order: SecondOrder | None = None
    tangent: Callable | None = None
    # Non-elementwise: (sympy, arg exprs, arg shapes) -> one display partial per argument,
    # and (sympy, arg exprs) -> the display value (default: a function call `name(args)`).
    display_partials: Callable | None = None
    display_value: Callable | None = None
    # Operand shapes -> None, or a ShapeError worded as torch words it.
    check: Callable | None = None
    # Numbers become 0-d tensors (torch.tensor(2.)) where torch takes tensors only.
    tensor_args: bool | Callable[[tuple[bool, ...]], bool] = False
    # torch's error for an integer (or bool) tensor operand where its kernel has no integer
    # version (`no_long("silu_cpu")`): the message, or (operand shapes, **params) -> it.
    integer_error: str | Callable[..., str] | None = None
    # Operand positions torch declares non-differentiable (nll_loss's target, where's
    # condition): their grad_fn lists no edge for them at all, not even None.
    nondifferentiable: tuple[int, ...] = ()
    # torch's grad_fn keeps a None edge in next_functions for a number operand (`x * 2`).
    number_edges: bool | Callable[[tuple[bool, ...]], bool] = False
    # The forward's result depends on the tensor's layout (torch's vector and scalar loops
    # differ), so rows of a batch are not evaluated stacked.
    layout_dependent: bool = False
    # torch has no derivative of this op's backward (its Hessian is torch's error, not zeros).
    twice_differentiable: bool = True
    # False for operators (`+`, unary `-`, ...) and internal rows: not callable by name.
    function: bool = True
    # An operator callable as a method or with torch's prefix (`x.mul(y)`, `torch.add(x, y)`);
    # and torch's other names for the op, callable so too (`x.clip(0, 1)`, `torch.absolute(x)`).
    method: bool = False
    aliases: tuple[str, ...] = ()
    lower: Lowering | None = None
    # Reached only through another row's lowering (matmul -> mv, mm, ...), never written.
    internal: bool = False
    # How the function is written, as torch documents it: its parameters in order, operands
    # (tensors, numbers) and static ones (dim, keepdim, ...). None: `arity` tensors, by position.
    # Static parameters reach every rule of the row as keyword arguments (`forward(x, dim=1,
    # keepdim=False)`, `vjp(grad, args, result, nums, dim=1, keepdim=False)`, `check`, `lower`,
    # `grad_fn`, displays and tangents alike).
    signature: tuple[Param, ...] | None = None
    # The name the row is called by where it is one overload of a function (row `max_dim`
    # is `max(input, dim, keepdim=False)`); overloads are tried in table order.
    call_as: str | None = None
    # A tuple result's parts, each a row: (("values", "max_dim"), ("indices", "argmax_dim")).
    outputs: tuple[tuple[str, str], ...] = ()
    # An attribute that is this op (`x.T`).
    attribute: str | None = None
    # Integer tensors in, integer tensor out (add, sum, reshape, ...); else the result is float.
    integers: bool = False
    # (operand dtypes (None for a number), float dtype, **params) -> the result's dtype, where
    # it is neither of the above (comparisons: bool; argmax: int64; arange: by its arguments).
    result_dtype: Callable[..., Any] | None = None

    def grad_fn_name(self, tensor_args: tuple[bool, ...], params: dict | None = None) -> str | None:
        if callable(self.grad_fn):
            return self.grad_fn(tensor_args, **(params or {}))
        return self.grad_fn

    # (cached: the graph asks for every node; a frozen row's properties never change)
    @functools.cached_property
    def params(self) -> tuple[Param, ...]:
        if self.signature is not None:
            return self.signature
        names = _OPERAND_NAMES.get(self.arity, tuple(f"input{i}" for i in range(self.arity)))
        return tuple(Param(n, ParamKind.TENSOR) for n in names)

    @functools.cached_property
    def static_params(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if not p.operand)

    @functools.cached_property
    def number_params(self) -> tuple[tuple[int, Param], ...]:
        """The operand positions that must be numbers (negative_slope=0.01), with their params."""
        operands = [p for p in self.params if p.operand]
        return tuple((i, p) for i, p in enumerate(operands) if p.kind is ParamKind.NUMBER)

    def wants_tensors(self, kinds: tuple[bool, ...]) -> bool:
        return self.tensor_args(kinds) if callable(self.tensor_args) else self.tensor_args

    def keeps_number_edges(self, kinds: tuple[bool, ...]) -> bool:
        return self.number_edges(kinds) if callable(self.number_edges) else self.number_edges


_OPERAND_NAMES = {1: ("input",), 2: ("input", "other"), 3: ("input", "min", "max")}


def no_long(kernel: str) -> str:
    """torch's dispatch error for an int64 tensor given to a kernel that has no integer version."""
    return f"\"{kernel}\" not implemented for 'Long'"
