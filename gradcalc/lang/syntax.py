"""The program as plain data: what the parser produces and the graph consumes."""

from __future__ import annotations

from dataclasses import dataclass


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
class Call:
    """An operation of the op table applied to arguments.

    Operators are calls too: `x + y` is Call("add", (x, y)), `-x` is Call("neg", (x,)),
    `x ** y` and `x ^ y` are Call("pow", ...), `x @ y` is Call("matmul", ...), and a
    method `x.exp()` is Call("exp", (x,)), its receiver first.
    """

    op: str
    args: tuple[Expr, ...]
    pos: Pos


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
