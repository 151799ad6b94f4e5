"""Program + input values -> tensor nodes with PyTorch's leaf / requires_grad / grad_fn semantics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gradcalc.engine.backends import Exact, Floats, backend, integer_written
from gradcalc.engine.kernels import infer_size
from gradcalc.engine.ops import OPS, VOCABULARY, Kind, Op
from gradcalc.errors import GradcalcError, InputError, MissingInput, ShapeError, TorchError
from gradcalc.lang import syntax


@dataclass(frozen=True)
class Const:
    """A Python number, as torch sees `2` in `x * 2`: folded in float64, never a tensor."""

    value: float
    expr: syntax.Expr  # kept for the exact symbolic display (`1/2`, `pi`)


@dataclass(eq=False)
class Node:
    """One tensor. Program order is a topological order: args are always older nodes."""

    id: int
    value: np.ndarray
    requires_grad: bool
    op: Op | None = None                     # None for an input or a detached leaf
    args: tuple = ()                            # Node | Const
    grad_fn: str | None = None
    name: str | None = None                  # the name the program bound it to, if any
    line: int | None = None
    detached_from: Node | None = None
    constant: Const | None = None            # a number made a 0-d tensor, as torch.tensor(2.)
    retains_grad: bool = False
    grad: np.ndarray | None = None
    params: dict = field(default_factory=dict)  # the op's static arguments (dim=1, keepdim=False)

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape


Binding = Node | Const


@dataclass
class Graph:
    nodes: list[Node]
    bindings: dict[str, Binding]   # each name's final binding
    inputs: list[str]              # names read before any assignment, in order of first appearance
    assigned: list[str]            # other assigned names, in order of their final assignment
    last_assigned: str | None
    numbers: Floats | Exact        # the number backend every tensor of the graph is in
    program: syntax.Program | None = field(repr=False, default=None)

    @property
    def dtype(self) -> np.dtype:
        return self.numbers.dtype

    def grad_leaves(self, names: list[str]) -> dict[str, Node]:
        """The named tensors among `names` that require grad (numbers are not tensors)."""
        return {name: b for name in names if isinstance(b := self.bindings[name], Node) and b.requires_grad}

    @property
    def names(self) -> list[str]:
        """Report order: inputs first, then assigned names by final assignment."""
        return self.inputs + self.assigned


def output_node(graph: Graph, name: str) -> Node:
    """The tensor `name` is bound to, where an output must be one."""
    binding = graph.bindings.get(name)
    if binding is None:
        raise InputError(f"--output {name}: the program has no tensor named '{name}'")
    if isinstance(binding, Const):
        raise InputError(f"--output {name}: '{name}' is a number, not a tensor")
    return binding


def structure_key(graph: Graph, outputs) -> str:
    """A digest of everything about a graph but its values: ops, edges, shapes, flags, names."""
    import hashlib

    def ref(a):  # a number by its value and place: the entry is the program text's already
        return a.id if isinstance(a, Node) else ("const", repr(a.value), a.expr.pos.line, a.expr.pos.col)

    parts = [str(graph.dtype), list(outputs)]
    for n in graph.nodes:
        parts.append((n.id, n.op.name if n.op else None, sorted(n.params.items()), [ref(a) for a in n.args],
                      n.shape, str(n.value.dtype), n.requires_grad,
                      n.grad_fn, n.name, n.detached_from.id if n.detached_from else None,
                      ref(n.constant) if n.constant else None, n.retains_grad))
    parts.append(sorted((name, ref(b)) for name, b in graph.bindings.items()))
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def find_inputs(program: syntax.Program) -> list[str]:
    """Names read before any assignment, in order of first appearance."""
    assigned: set[str] = set()
    inputs: dict[str, None] = {}
    for statement in program.statements:
        if isinstance(statement, syntax.RetainGrad):
            read = [statement.name]
        else:
            read = [e.id for e in walk(statement.value) if isinstance(e, syntax.Name)]
        for name in read:
            if name not in assigned:
                inputs.setdefault(name)
        if isinstance(statement, syntax.Assign):
            assigned.add(statement.target)
    return list(inputs)


def walk(expr: syntax.Expr):
    """Sub-expressions in evaluation order (left to right), without recursion."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, syntax.Call):
            stack.extend(reversed(e.args))


def build(program: syntax.Program, values: dict[str, np.ndarray], *, dtype: str = "float32",
          no_grad: frozenset[str] = frozenset(), retain: tuple[str, ...] = ()) -> Graph:
    """The program's tensors, in the number backend of `dtype` ("float32", "float64", "exact")."""
    numbers = backend(dtype)
    inputs = find_inputs(program)
    _check_values(program, inputs, values, no_grad)
    builder = _Builder(numbers, program.source)
    bindings = builder.bindings
    for name in inputs:
        value = numbers.tensor(values[name])
        # An integer tensor (class targets, arange) cannot require grad, as in torch.
        leaf = builder.node(value, requires_grad=name not in no_grad and _floating(value))
        leaf.name = name
        bindings[name] = leaf
    order: dict[str, None] = {}
    for statement in program.statements:
        if isinstance(statement, syntax.RetainGrad):
            retain_grad(bindings[statement.name], statement.name)
            continue
        result = builder.expression(statement.value)
        if isinstance(result, Node) and result.name is None:
            result.name, result.line = statement.target, statement.pos.line
        bindings[statement.target] = result
        order.pop(statement.target, None)
        order[statement.target] = None
    for name in retain:
        if name not in bindings:
            raise InputError(f"--retain {name}: the program has no tensor named '{name}'")
        retain_grad(bindings[name], name)
    assigned = [n for n in order if n not in inputs]
    last = next(iter(reversed(order)), None)
    return Graph(builder.nodes, bindings, inputs, assigned, last, numbers, program)


def retain_grad(binding: Binding, name: str) -> None:
    """`name.retain_grad()`: a no-op on a leaf, an error without requires_grad, as torch."""
    if isinstance(binding, Const):
        raise InputError(f"'{name}' is a number, not a tensor: it has no grad to retain")
    if not binding.requires_grad:
        raise TorchError("can't retain_grad on Tensor that has requires_grad=False",
                         hint=f"'{name}' does not require grad (detached, --no-grad, "
                              "or computed only from such tensors)")
    if not binding.is_leaf:
        binding.retains_grad = True


def _check_values(program, inputs: list[str], values: dict, no_grad) -> None:
    missing = [n for n in inputs if n not in values]
    if missing:
        error = MissingInput(missing[0])
        if missing[0] in VOCABULARY.functions:
            error.hint = f"{error.hint}; or, to call the function {missing[0]}, write {missing[0]}(...)"
        raise error
    for name in values:
        if name not in inputs:
            what = "assigned by the program" if _assigns(program, name) else "not read by the program"
            raise InputError(f"a value was given for '{name}', which is {what}")
    for name in no_grad:
        if name not in inputs:
            raise InputError(f"--no-grad {name}: '{name}' is not an input of the program")


def _assigns(program, name: str) -> bool:
    return any(isinstance(s, syntax.Assign) and s.target == name for s in program.statements)


class _Builder:
    def __init__(self, numbers: Floats | Exact, source: str):
        self.numbers = numbers
        self.source = source
        self.nodes: list[Node] = []
        self.bindings: dict[str, Binding] = {}

    def node(self, value: np.ndarray, requires_grad: bool, **fields) -> Node:
        n = Node(id=len(self.nodes), value=value, requires_grad=requires_grad, **fields)
        self.nodes.append(n)
        return n

    def expression(self, expr: syntax.Expr) -> Binding:
        """Post-order evaluation with an explicit stack: deep expressions never recurse."""
        done: list[Binding] = []
        stack: list[tuple[syntax.Expr, bool]] = [(expr, False)]
        while stack:
            e, expanded = stack.pop()
            if isinstance(e, syntax.Number):
                done.append(Const(e.value, e))
            elif isinstance(e, syntax.Name):
                done.append(self.bindings[e.id])
            elif not expanded:
                stack.append((e, True))
                stack.extend((a, False) for a in reversed(e.args))
            else:
                args = done[len(done) - len(e.args):]
                del done[len(done) - len(e.args):]
                try:
                    done.append(self.apply(OPS[e.op], tuple(args), e, dict(e.params)))
                except GradcalcError as error:  # torch's words, under the operation that raised them
                    if error.hint is None and isinstance(error, (ShapeError, TorchError)):
                        error.hint = _operand_shapes(e, args)
                    raise error.at(self.source, e.pos.line, e.pos.col) from None
        return done[0]

    def apply(self, op: Op, args: tuple, expr: syntax.Call, params: dict) -> Binding:
        kinds = tuple(isinstance(a, Node) for a in args)
        if op.kind is Kind.CONSTANT:
            return self._constant(op, args, expr, params)
        if not any(kinds):
            return _fold(op, args, expr, params)
        _check_numbers(op, args, expr)
        if op.wants_tensors(kinds):
            args = tuple(a if isinstance(a, Node) else self._tensor(a, op.integers) for a in args)
            kinds = (True,) * len(args)
        if op.lower is not None:
            context = {}
            if getattr(op.lower, "wants_operands", False):  # a layout-dependent dispatch (reshape, matmul)
                context = {"values": tuple(a.value if isinstance(a, Node) else None for a in args),
                           "requires_grad": tuple(isinstance(a, Node) and a.requires_grad for a in args)}
            lowered = op.lower(kinds, tuple(a.shape if isinstance(a, Node) else None for a in args), **context,
                               **params)
            if lowered is not None:
                return self._apply_lowered(lowered, args, expr)
        if op.kind is Kind.IDENTITY:
            return args[0]
        (first,) = [a for a in args if isinstance(a, Node)][:1]
        if op.kind is Kind.DETACH:
            return self.node(first.value, requires_grad=False, detached_from=first, line=expr.pos.line)
        shapes = [a.shape for a in args if isinstance(a, Node)]
        if op.check is not None:  # (first: a row's own order of the shapes in torch's message)
            op.check(shapes, **params)
        if op.kind is Kind.ELEMENTWISE:
            _check_broadcast(shapes)
        if op.kind is Kind.LINALG and len(shapes) == 2:  # (m, k) @ (k, n) is m * n
            _check_size(shapes[0][:-1] + shapes[1][1:])
        value = self.numbers.forward(op, [self.numbers.program_number(a) if isinstance(a, Const) else a.value
                                          for a in args], params)
        requires_grad = (op.kind is not Kind.NONDIFF and _floating(value)
                         and any(a.requires_grad for a in args if isinstance(a, Node)))
        return self.node(value, requires_grad, op=op, args=args,
                         grad_fn=op.grad_fn_name(kinds, params) if requires_grad else None,
                         line=expr.pos.line, params=params)

    def _constant(self, op: Op, args: tuple, expr: syntax.Call, params: dict) -> Node:
        """A constructor (ones(2, 3), arange(5), tensor([[1, 2]]), zeros_like(x)): a new leaf,
        which requires grad only where the program says requires_grad=True."""
        operands = [a.value if isinstance(a, Node) else self.numbers.program_number(a) for a in args]
        value = self.numbers.forward(op, operands, params)
        _check_size(value.shape)
        requires_grad = bool(params.get("requires_grad", False))
        if requires_grad and not _floating(value):
            raise TorchError("Only Tensors of floating point and complex dtype can require gradients",
                             hint="write the values as floats (1.) or pass dtype=float")
        return self.node(value, requires_grad, op=op, line=expr.pos.line, params=params)

    def _tensor(self, const: Const, integers: bool = False) -> Node:
        """A number where torch takes a tensor: torch's wrapped number, which requires no grad;
        int64 where it was written as an integer and the op keeps integers (where(c, x, 2) of
        an int64 x is int64), else in the float dtype."""
        value = self.numbers.program_number(const)
        written = integer_written(const.expr) if integers else None
        if written is not None and -(2**63) <= written < 2**63:
            return self.node(np.asarray(written, dtype=np.int64), requires_grad=False, constant=const)
        return self.node(np.asarray(value, dtype=self.numbers.dtype), requires_grad=False, constant=const)

    def _apply_lowered(self, call: tuple, args: tuple, expr: syntax.Call) -> Binding:
        """A lowering's call: (row, parts) or (row, parts, params), each part an operand's
        index or a nested call."""
        name, parts, *rest = call
        resolved = tuple(args[p] if isinstance(p, int) else self._apply_lowered(p, args, expr)
                         for p in parts)
        return self.apply(OPS[name], resolved, expr, dict(rest[0]) if rest else {})


def _operand_shapes(expr: syntax.Call, args: list) -> str | None:
    """The operands' shapes in the program's names, for a hint: `x has shape (2, 3), W has shape (2, 3)`."""
    parts = []
    for written, arg in zip(expr.args, args):
        if isinstance(arg, Node):
            label = written.id if isinstance(written, syntax.Name) else arg.name
            what = f"'{label}'" if label else "the operand"
            parts.append(f"{what} has shape {_shape_text(arg.shape)}")
    return ", ".join(parts) or None


def _floating(value: np.ndarray) -> bool:
    return value.dtype.kind in "fO"  # float, or exact numbers


def _check_numbers(op: Op, args: tuple, expr: syntax.Call) -> None:
    """A parameter that is a number (negative_slope=0.01) may not be given a tensor."""
    for i, param in op.number_params:
        if i < len(args) and isinstance(args[i], Node):
            raise InputError(f"{op.call_as or op.name}(): argument '{param.name}' must be a number, not a tensor",
                             hint=f"{param.name} is a Python number in torch, as in {param.name}={param.default!r}")


def _fold(op: Op, args: tuple, expr: syntax.Call, params: dict) -> Const:
    """Numbers only: Python arithmetic, in float64 (overflow is inf, as in torch's float math)."""
    if op.kind in (Kind.LINALG, Kind.NONDIFF) or op.static_params:
        raise InputError(f"{op.call_as or op.name}() of numbers: it takes tensors",
                         hint="operations other than elementwise math need a tensor, e.g. --x 1,2")
    with np.errstate(all="ignore"):
        value = op.forward(*(np.float64(a.value) for a in args), **params)
    # Built from the operands' own expressions, so that a Const never refers to a name.
    folded = syntax.Call(op.name, tuple(a.expr for a in args), expr.pos)
    number = float(value)
    if number == 0 and math.copysign(1.0, number) < 0 and integer_written(folded) is not None:
        number = 0.0  # Python's int: -0 is 0 (x * -0 is x * 0, not x * -0.)
    return Const(number, folded)


def _check_broadcast(shapes: list[tuple[int, ...]]) -> None:
    """torch's infer_size error, for the first operands whose shapes do not broadcast."""
    if not shapes:
        return
    a = shapes[0]
    if all(b == a for b in shapes):  # the common case: nothing to broadcast, nothing bigger
        return
    for b in shapes[1:]:
        try:
            a = infer_size(a, b)
        except ShapeError as error:
            error.hint = (f"shapes {_shape_text(a)} and {_shape_text(b)} do not broadcast: sizes must "
                          "match or be 1, aligned from the right")
            raise
    _check_size(a)


def _check_size(shape: tuple[int, ...]) -> None:
    """A result may be no larger than an input may be: two small inputs that broadcast to a
    huge one (x of 10^5 elements times y of shape (10^5, 1)) are refused before any work."""
    from gradcalc.lang.values import MAX_ELEMENTS

    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        raise ShapeError(f"the result would have {size:,} elements (shape {_shape_text(shape)}); "
                         f"the limit is {MAX_ELEMENTS:,}")


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
