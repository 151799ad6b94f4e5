"""The program as plain data: what the parser produces and the graph consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class Pos:
    """A 1-based line and column in the program text."""

    line: int
    col: int


@dataclass(frozen=True)
class Number:
    """A numeric literal or the constant `pi`; `text` is what the user wrote."""

    value: float
    text: str
    pos: Pos


@dataclass(frozen=True)
class Name:
    id: str
    pos: Pos


@dataclass(frozen=True)
class Slice:
    """`start:stop:step` inside a subscript; None where omitted."""

    start: int | None
    stop: int | None
    step: int | None


# A static argument: what a keyword like `dim=(0, 1)`, `keepdim=True`, `reduction='sum'`, a
# subscript's items, or a `tensor([[1, 2]])` literal's data holds. Never an expression.
Static = int | float | bool | str | None | Slice | tuple


@dataclass(frozen=True)
class Call:
    """An operation of the op table applied to arguments.

    Operators are calls too: `x + y` is Call("add", (x, y)), `-x` is Call("neg", (x,)),
    `x ** y` and `x ^ y` are Call("pow", ...), `x @ y` is Call("matmul", ...), and a
    method `x.exp()` is Call("exp", (x,)), its receiver first. `args` are the operands
    (tensors or numbers); `params` the static arguments by name, every one of the row's
    signature present (defaults filled in): `x.sum(1)` is Call("sum", (x,), (("dim", 1),
    ("keepdim", False))), `x[1:]` is Call("index", (x,), (("index", (Slice(1, None, None),)),)).
    """

    op: str
    args: tuple[Expr, ...]
    pos: Pos
    params: tuple[tuple[str, Static], ...] = ()


Expr = Number | Name | Call


@dataclass(frozen=True)
class Assign:
    target: str
    value: Expr
    pos: Pos


@dataclass(frozen=True)
class RetainGrad:
    """`NAME.retain_grad()` as a statement."""

    name: str
    pos: Pos


Statement = Assign | RetainGrad


@dataclass(frozen=True)
class Program:
    statements: tuple[Statement, ...]
    source: str


# -- signatures: how a function's arguments are written, declared by the op table ------------

class ParamKind(str, Enum):
    TENSOR = "tensor"       # an operand: any expression, a tensor or a number
    NUMBER = "number"       # an operand that is a number (negative_slope=0.01), never a tensor
    TENSORS = "tensors"     # a list literal of operands, `[x, 2*x]` (cat, stack)
    INT = "int"             # an integer literal (dim=1, diagonal=-1)
    INTS = "ints"           # an integer or a tuple of them (dim=(0, 1)); see Param.varargs
    FLOAT = "float"         # a number literal (p=2, start=-1.5)
    BOOL = "bool"           # True or False
    CHOICE = "choice"       # one of Param.choices, as a string ('mean')
    DATA = "data"           # a nested list of number literals, tensor([[1, 2], [3, 4]])
    INDEX = "index"         # a subscript's items: ints, slices, None


REQUIRED = object()  # a parameter without a default


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind
    default: object = REQUIRED
    choices: tuple[str, ...] = ()
    # The rest of the positional arguments are this one's items: reshape(2, 3) is reshape((2, 3)).
    varargs: bool = False
    keyword_only: bool = False
    optional: bool = False  # None is allowed (dim=None)

    @property
    def operand(self) -> bool:
        return self.kind in (ParamKind.TENSOR, ParamKind.NUMBER, ParamKind.TENSORS)

    def __str__(self) -> str:
        text = ("*" if self.varargs else "") + self.name
        if self.default is not REQUIRED:
            text += f"={self.default!r}"
        return text


@dataclass(frozen=True)
class Signature:
    """One way to call a function: `op` is the op table row it calls; `outputs` name the
    parts of a tuple result (`values`, `indices`) and the row each part is."""

    name: str
    op: str
    params: tuple[Param, ...]
    outputs: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        shown, star = [], False
        for p in self.params:
            if p.keyword_only and not star:
                shown.append("*")
                star = True
            shown.append(str(p))
        return f"{self.name}({', '.join(shown)})"


@dataclass(frozen=True)
class Vocabulary:
    """What a program may call, from the op table: `functions` by bare name too, `methods`
    only as `x.name(...)` or `torch.name(...)` (their names stay free for tensors), each a
    name's overloads in the order they are tried; `attributes` such as `x.T`, each a row."""

    functions: Mapping[str, tuple[Signature, ...]]
    methods: Mapping[str, tuple[Signature, ...]] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)
