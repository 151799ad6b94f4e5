"""Program text → `syntax.Program`: a hand-written tokenizer and operator-precedence parser.

The text is only ever read, never executed: there is a handler for each construct of the
language and one clear `ParseError` for everything else. No SymPy here.
"""

from __future__ import annotations

import difflib
import gc
import itertools
import keyword
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from gradcalc.errors import InputError, ParseError
from gradcalc.lang.syntax import (
    REQUIRED,
    Assign,
    Call,
    Expr,
    Name,
    Number,
    Param,
    ParamKind,
    Pos,
    Program,
    RetainGrad,
    Signature,
    Slice,
    Statement,
    Static,
    Vocabulary,
)

MAX_DEPTH = 100
# Limits that keep any program to seconds (see the README): a 10 MB program is refused at
# once, a 100,000-term product or a 10,000-statement chain is evaluated.
MAX_PROGRAM_CHARS = 1_000_000
MAX_OPERATIONS = 150_000

# Binary operators: symbol → (op name, precedence). Python's table: `+ -` < `* / @` < unary < `**`.
_BINARY = {
    "+": ("add", 1),
    "-": ("sub", 1),
    "*": ("mul", 2),
    "/": ("div", 2),
    "@": ("matmul", 2),
    "**": ("pow", 4),
    "^": ("pow", 4),
    "<": ("lt", 0),
    "<=": ("le", 0),
    ">": ("gt", 0),
    ">=": ("ge", 0),
    "==": ("eq", 0),
    "!=": ("ne", 0),
}
_COMPARISON_PREC = 0  # comparisons do not chain here: `a < b < c` is an error
_UNARY = {"-": "neg", "+": "pos"}
_UNARY_PREC = 3  # unary operators are the only ones at this level
_POW_PREC = 4  # the only right-associative level
# The op a subscript `x[...]` calls, its items in the static argument `index`.
SUBSCRIPT_OP = "index"
# For the hint on `add(x, y)` and `gradcalc functions`: the symbol of each operator's op
# (`**` rather than `^`).
SYMBOL_OF = _SYMBOL_OF = {op: symbol for symbol, op in _UNARY.items()} | {
    op: symbol for symbol, (op, _) in reversed(_BINARY.items())
}

_KEYWORDS = frozenset(keyword.kwlist)  # soft keywords (`match`, `case`, `_`) remain names
# Keywords that are values of static arguments (keepdim=True, dim=None) and nothing else.
_STATIC_KEYWORDS = {"True": True, "False": False, "None": None}
_STATEMENT_END = (";", "newline", "eof")

# A token is (kind, text, line, col); an operator's kind is its own text. Operators that are
# a prefix of an unsupported one (`*` of `*=`, `/` of `//`, `=` of `==`) stop short of it, so
# that `bad` reports the whole unsupported operator; a `.` before a digit starts a number.
_Token = tuple[str, str, int, int]
_TOKEN = re.compile(
    r"""[ \t]*(?:
     (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>\*\*(?!=)|\*(?![*=])|[-+@^](?!=)|/(?![/=])|==|!=|<=|>=|[<>](?![<>=])|=(?!=)|\.(?![0-9])|:(?!=)|[(),;\[\]])
    |(?P<string>'[^'\\\r\n]*'|"[^"\\\r\n]*")
    |(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?P<numtail>[A-Za-z0-9_.]+)?
    |(?P<newline>\r\n?|\n)
    |(?P<comment>\#[^\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*)
    |(?P<bad>\*\*=|//=?|<<=?|>>=?|:=|[-+*/@^%&|]=|[%&|~!])
    |(?P<other>[^ \t])
    )""",
    re.VERBOSE,
)

_LOOKALIKES = {
    "×": "*", "·": "*", "⋅": "*", "∗": "*", "−": "-", "–": "-", "—": "-", "÷": "/", "∕": "/",
    "²": "**2", "³": "**3",
}

_SHOWN = 40  # longest piece of user text quoted in a message


def parse(source: str, vocabulary: Vocabulary) -> Program:
    """Parse a whole program; raise `ParseError` at the first offending line and column.

    `vocabulary` is what may be called, with each function's signatures (the op table's,
    given by `gradcalc.api.parse`), so that the language layer knows no operation of its own."""
    # A long program makes millions of small acyclic objects; cycle collection passes over
    # them would take most of the time and free nothing.
    if len(source) > MAX_PROGRAM_CHARS:
        raise InputError(f"the program is longer than {MAX_PROGRAM_CHARS:,} characters",
                         hint="a program this long is a mistake or an attack; split the work up")
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Parser(source, vocabulary).program()
    finally:
        if collecting:
            gc.enable()


# ---------------------------------------------------------------------------------------
# Tokenizer


def _tokenize(source: str) -> Iterator[_Token]:
    """Yield tokens, ending with "eof"; newlines inside parentheses are whitespace.

    Raises `ParseError` when it reaches a character or word the language does not have, so
    an error earlier in the text is always reported first.
    """
    line, line_start = 1, 0
    depth = 0
    last_newline = (1, 1)
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        assert kind is not None  # every alternative of _TOKEN is a named group
        text = m.group(kind)
        col = m.start(kind) - line_start + 1
        if kind == "op":
            if text == "(":
                depth += 1
            elif text == ")" and depth:
                depth -= 1
            yield (text, text, line, col)
        elif kind == "name":
            if text in _STATIC_KEYWORDS:
                yield ("static", text, line, col)
                continue
            if text in _KEYWORDS:
                raise ParseError(f"'{text}' is a Python keyword, not a name", source, line, col)
            yield ("name", text, line, col)
        elif kind in ("number", "string"):
            yield (kind, text, line, col)
        elif kind == "newline":
            last_newline = (line, col)
            if not depth:
                yield ("newline", text, line, col)
            line, line_start = line + 1, m.end()
        elif kind == "comment":
            continue
        else:
            if kind == "numtail":
                col = m.start("number") - line_start + 1
                message, hint = _bad_number(m.group("number"), text)
            elif kind == "bad":
                message, hint = _bad_operator(text)
            else:
                message, hint = _bad_character(text)
            raise ParseError(message, source, line, col, hint)
    if source.endswith(("\n", "\r")):
        yield ("eof", "", *last_newline)
    else:
        yield ("eof", "", line, len(source) - line_start + 1)


def _bad_number(number: str, tail: str) -> tuple[str, str | None]:
    message = f"invalid number {_quote(number + tail)}"
    if number == "0" and tail[0] in "xXoObB":
        return message, "hexadecimal, octal and binary literals are not supported"
    if tail[0] in "eE" and "e" not in number.lower() and (len(tail) == 1 or not tail[1].isalpha()):
        return message, "an exponent needs digits, as in 1e-3"
    if tail[0] == "_":
        return message, "digit separators '_' are not supported"
    if tail[0] == ".":
        return message, "a number has at most one decimal point"
    if tail[0].isalpha():
        name = re.match("[A-Za-z_][A-Za-z0-9_]*", tail).group()  # type: ignore[union-attr]  # tail[0] is a letter
        return message, f"to multiply, write {_shorten(number)}*{_shorten(name)}"
    return message, None


def _bad_operator(text: str) -> tuple[str, str | None]:
    if text == "//":
        return "'//' (floor division) is not supported", "use '/' for division"
    if text in ("==", "!=", "<", ">", "<=", ">="):
        return f"comparison operator '{text}' is not supported", None
    if text in ("<<", ">>"):
        return f"shift operator '{text}' is not supported", None
    if text in ("&", "|", "~"):
        return f"bitwise operator '{text}' is not supported", None
    if text == "%":
        return "operator '%' is not supported", None
    if text == ":=":
        return "':=' (assignment expression) is not supported", "assign with a statement: NAME = EXPR"
    if text.endswith("="):
        return f"augmented assignment '{text}' is not supported", "write it out: NAME = NAME + EXPR"
    return f"'{text}' is not allowed", None


def _bad_character(ch: str) -> tuple[str, str | None]:
    if ch in "'\"":
        return "unterminated string", "a string is one line between quotes, as in reduction='sum'"
    if ch == "\\":
        return "'\\' is not allowed", "inside parentheses an expression may continue on the next line"
    code = f"U+{ord(ch):04X}"
    if ord(ch) < 128:
        if ch.isprintable():
            return f"'{ch}' is not allowed", None
        return f"control character {code} is not allowed", None
    name = unicodedata.name(ch, "")
    described = f"{code} {name}" if name else code
    shown = f"'{ch}' ({described})" if ch.isprintable() and unicodedata.category(ch)[0] != "C" else described
    hint = None
    if ch in _LOOKALIKES:
        hint = f"use '{_LOOKALIKES[ch]}' instead"
    elif ch in "\x85\u2028\u2029":
        hint = "use a plain newline"
    elif ch.isspace():
        hint = "use a plain space"
    elif ch.isalpha() or ch.isdigit():
        hint = "names and numbers are written in ASCII letters, digits and '_'"
    return f"non-ASCII character {shown} is not allowed", hint


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _quote(text: str) -> str:
    return f"'{_shorten(text)}'"


def _describe(tok: _Token) -> str:
    kind = tok[0]
    if kind == "name":
        return f"name {_quote(tok[1])}"
    if kind == "number":
        return f"number {_quote(tok[1])}"
    if kind == "string":
        return f"string {_shorten(tok[1])}"
    if kind == "static":
        return f"'{tok[1]}'"
    if kind == "newline":
        return "end of line"
    if kind == "eof":
        return "end of input"
    return f"'{tok[1]}'"


def _used_as_a_value(source: str, name: str) -> bool:
    """Whether the program uses `name` other than before a '.' (as a module prefix)."""
    if name not in source:
        return False
    try:
        tokens = list(_tokenize(source))
    except ParseError:
        return False  # the parse itself reports it
    return any(tok[0] == "name" and tok[1] == name and after[0] != "." for tok, after in zip(tokens, tokens[1:]))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------------------------------
# Parser


class _TokenStream:
    """The tokens, with a token pushed back read again first (the parser reads one name ahead
    to tell a keyword argument `dim=1` from an expression)."""

    def __init__(self, tokens: Iterator[_Token]):
        self.tokens = tokens
        self.next = tokens.__next__
        self.back: list[_Token] = []

    def __iter__(self) -> _TokenStream:
        return self

    def __next__(self) -> _Token:
        return self.back.pop() if self.back else self.next()

    def push(self, tok: _Token) -> None:
        self.back.append(tok)


@dataclass(frozen=True)
class _Tuple:
    """`(0, 1)`: only a static argument (dim=(0, 1)) may be one."""

    items: tuple[Expr, ...]
    pos: Pos


@dataclass(frozen=True)
class _Failure:
    """Why arguments do not fit a signature; `rank` says how close they came (a wrong count 0,
    an unknown keyword 1, a missing argument 2, a value of the wrong kind 3)."""

    message: str
    tok: _Token
    hint: str | None
    rank: int


@dataclass(frozen=True)
class _Unpack:
    assigns: tuple[Assign, ...]


_FAIL = "fail"


def _count(low: int, high: int) -> str:
    return _plural(low, "argument") if low == high else f"{low} to {high} arguments"


def _literal(expr) -> int | float | None:
    """The number an argument writes out (`2`, `-1`, `0.5`, `pi`), an int where written as
    one; None for anything else (a name, a call)."""
    sign = 1
    while isinstance(expr, Call) and expr.op in ("neg", "pos") and len(expr.args) == 1:
        sign = -sign if expr.op == "neg" else sign
        expr = expr.args[0]
    if not isinstance(expr, Number):
        return None
    if expr.text != "pi" and not any(c in expr.text for c in ".eE"):
        return sign * int(expr.text)
    return sign * expr.value


def _raw_kind(raw) -> str:
    kind, value, _ = raw
    if kind == "str":
        return "a string"
    if kind == "static":
        return f"{value}"
    if kind == "list":
        return "a list"
    if isinstance(value, _Tuple):
        return "a tuple"
    if isinstance(value, Number):
        return f"the number {value.text}"
    if isinstance(value, Name):
        return f"the name '{value.id}'"
    return "an expression"


# A raw argument before it is matched to a parameter: an expression (or tuple), a list literal
# `[...]` of raw arguments, a string, or True/False/None; with its first token.
_Raw = tuple[str, object, "_Token"]


class _Parser:
    def __init__(self, source: str, vocabulary: Vocabulary):
        self.source = source
        self.functions = vocabulary.functions
        self.methods = vocabulary.methods
        self.attributes = vocabulary.attributes
        # `F.relu(x)` is torch.nn.functional's relu, as in a PyTorch script, unless the program
        # also uses F as a tensor (`F = m * a`): then `F.sum()` is a method of that tensor.
        self.f_is_a_tensor = _used_as_a_value(source, "F")
        # Names that are tensors in this program (assigned, or read as inputs) and names called
        # as functions: a function's name (`t`, `var`, `eye`) may name a tensor, as in Python,
        # but not both in one program.
        self.shadowed: set[str] = set()
        self.called: dict[str, _Token] = {}
        self.tokens = _TokenStream(_tokenize(source))
        self.next_token = self.tokens.__next__
        self.open_parens: list[_Token] = []  # the "(" tokens of the groups and calls being read
        # Calls of the statement being read that return a tuple no part of which is taken yet:
        # id(call) -> (function name, ((part, row), ...), position).
        self.outputs: dict[int, tuple[str, tuple[tuple[str, str], ...], Pos]] = {}
        self.operations = 0  # operators applied and functions called so far
        self.tok = self.next_token()

    def _advance(self) -> None:
        self.tok = self.next_token()

    def _reduce(self, operands: list[Expr], operators: list[tuple[str, int, Pos]]) -> None:
        """Apply the operator on top of the stack to the operands on top of theirs."""
        op, prec, pos = operators.pop()
        self._count_operation(("operator", op, pos.line, pos.col))
        if prec == _UNARY_PREC:
            operands[-1] = Call(op, (operands[-1],), pos)
        else:
            right = operands.pop()
            operands[-1] = Call(op, (operands[-1], right), pos)

    def _count_operation(self, tok: _Token) -> None:
        self.operations += 1
        if self.operations > MAX_OPERATIONS:
            self._error(f"more than {MAX_OPERATIONS:,} operations", tok,
                        "a program this long is a mistake or an attack; split the work up")

    # -- errors

    def _error(self, message: str, tok: _Token, hint: str | None = None) -> NoReturn:
        raise ParseError(message, self.source, tok[2], tok[3], hint)

    def _unexpected(self, expected: str, hint: str | None = None) -> NoReturn:
        """An error at the current token, which is not one that `expected` describes."""
        tok = self.tok
        if tok[0] == "eof" and self.open_parens:
            self._error("'(' was never closed", self.open_parens[-1])
        if tok[0] == ")" and not self.open_parens:
            self._error("unmatched ')'", tok)
        self._error(f"{expected}, found {_describe(tok)}", tok, hint)

    def _expect_close(self, expected: str) -> NoReturn:
        if self.tok[0] != "eof" and not self._closed_later():
            self._error("'(' was never closed", self.open_parens[-1])
        self._unexpected(expected)

    def _closed_later(self) -> bool:
        """Whether the innermost open parenthesis is closed further on (reads the rest)."""
        level = 0
        try:
            for kind, *_ in itertools.chain([self.tok], self.tokens):
                if kind == "(":
                    level += 1
                elif kind == ")":
                    if not level:
                        return True
                    level -= 1
        except ParseError:
            return True  # unknown past a bad character: do not blame the parenthesis
        return False

    # -- statements

    def program(self) -> Program:
        statements: list[Statement] = []
        while True:
            while self.tok[0] in (";", "newline"):
                self._advance()
            if self.tok[0] == "eof":
                break
            statement = self._statement()
            if isinstance(statement, _Unpack):
                statements.extend(statement.assigns)
            else:
                statements.append(statement)
        if not statements:
            self._error("empty program", self.tok, "write an assignment, such as y = x * 2")
        return Program(tuple(statements), self.source)

    def _statement(self) -> Statement | _Unpack:
        first = self.tok
        if first[0] == "name":
            self._advance()
            if self.tok[0] == "=":
                return self._assign(first)
            if self.tok[0] == ",":
                return self._unpack(first)
            if self.tok[0] == ".":
                self._advance()
                if self.tok[0] == "name" and self.tok[1] == "retain_grad":
                    return self._retain_grad(first)
                if self.tok[0] == "name" and difflib.get_close_matches(self.tok[1], ["retain_grad"]):
                    self._error("expected an assignment NAME = EXPR", first, "did you mean 'retain_grad'?")
        elif first[0] == ")":
            self._error("unmatched ')'", first)
        elif first[0] == "static":
            self._error(f"'{first[1]}' is a Python keyword, not a name", first)
        self._error("expected an assignment NAME = EXPR", first, "a statement is NAME = EXPR or NAME.retain_grad()")

    def _assign(self, target: _Token) -> Assign:
        self._check_target(target)
        self._advance()
        value = self._value()
        self._end_of_statement()
        self._check_outputs_taken(value)
        self._bind_name(target)
        return Assign(target[1], value, Pos(target[2], target[3]))

    def _check_target(self, target: _Token) -> None:
        name = target[1]
        if name == "pi":
            self._error("cannot assign to the constant 'pi'", target)
        if name in self.called:
            self._error(f"cannot assign to '{name}': it is called as a function above", target,
                        f"choose another name, or call torch's: torch.{name}(...)")

    def _bind_name(self, target: _Token) -> None:
        """`target` names a tensor from here on: a function of the same name (`t`, `var`) is then
        callable only as torch's (`torch.t(x)`) or as a method, as in a PyTorch script."""
        self.shadowed.add(target[1])

    def _value(self) -> Expr:
        """The expression on the right of `=`: a tensor or a number, not a tuple."""
        start = self.tok
        value = self._expression(0)
        if isinstance(value, _Tuple):
            self._error("a tuple is not a tensor", start, "tuples are for arguments such as dim=(0, 1)")
        return value

    def _unpack(self, first: _Token) -> _Unpack:
        """`v, i = x.max(1)`: one assignment per part of a tuple result."""
        targets = [first]
        while self.tok[0] == ",":
            self._advance()
            if self.tok[0] != "name":
                self._unexpected("expected a name to assign to")
            targets.append(self.tok)
            self._advance()
        if self.tok[0] != "=":
            self._unexpected("expected '=' after the names to assign to")
        for target in targets:
            self._check_target(target)
        self._advance()
        start = self.tok
        value = self._value()
        self._end_of_statement()
        pending = self.outputs.pop(id(value), None) if isinstance(value, Call) else None
        if pending is None:
            self._error(f"cannot unpack into {len(targets)} names: the value is one tensor", start,
                        "only a function returning a tuple unpacks, as in v, i = x.max(1)")
        parts = pending[1]
        if len(parts) != len(targets):
            self._error(f"cannot unpack {len(parts)} values ({', '.join(n for n, _ in parts)}) into "
                        f"{len(targets)} names", start)
        self._check_outputs_taken(value)
        assert isinstance(value, Call)
        for target in targets:
            self._bind_name(target)
        return _Unpack(tuple(Assign(t[1], Call(row, value.args, value.pos, value.params), Pos(t[2], t[3]))
                             for t, (_, row) in zip(targets, parts)))

    def _check_outputs_taken(self, value: Expr) -> None:
        """A call returning a tuple is one only where a part is taken or it is unpacked."""
        if self.outputs:
            name, parts, pos = next(iter(self.outputs.values()))
            names = ", ".join(n for n, _ in parts)
            raise ParseError(f"{name}() with these arguments returns a tuple ({names})", self.source,
                             pos.line, pos.col, f"take a part, as in .{parts[0][0]}, or unpack it: {names} = ...")

    def _retain_grad(self, target: _Token) -> RetainGrad:
        name = target[1]
        if name == "pi":
            self._error("cannot call retain_grad() on the constant 'pi'", target)
        if name in self.called:
            self._function_as_value(target)
        self._bind_name(target)
        self._advance()
        if self.tok[0] != "(":
            self._unexpected("expected '(' after 'retain_grad'", "write NAME.retain_grad()")
        self.open_parens.append(self.tok)
        self._advance()
        if self.tok[0] != ")":
            if self.tok[0] == "eof":
                self._unexpected("")
            self._error("retain_grad() takes no arguments", self.tok)
        self._close()
        self._end_of_statement("expected ';' or a newline after retain_grad()")
        return RetainGrad(name, Pos(target[2], target[3]))

    def _end_of_statement(self, expected: str = "expected an operator, ';' or a newline") -> None:
        if self.tok[0] not in _STATEMENT_END:
            hint = "chained assignment is not supported" if self.tok[0] == "=" else None
            self._unexpected(expected, hint)

    # -- expressions

    def _expression(self, depth: int) -> Expr:
        """Operator precedence by explicit stacks, so long chains and prefixes need no recursion.

        `depth` counts the parentheses around the expression; only they recurse.
        """
        next_token = self.next_token
        operands: list[Expr] = []
        operators: list[tuple[str, int, Pos]] = []  # (op name, precedence, pos), unary ones too
        compared = False
        tok = self.tok
        while True:
            while tok[0] in _UNARY:
                operators.append((_UNARY[tok[0]], _UNARY_PREC, Pos(tok[2], tok[3])))
                tok = self.tok = next_token()
            start = tok
            if tok[0] == "number":
                operand: Expr = Number(float(tok[1]), tok[1], Pos(tok[2], tok[3]))
                tok = self.tok = next_token()
            else:
                operand = self._atom(depth)
                tok = self.tok
            while tok[0] in (".", "["):
                operand = self._method(operand, depth) if tok[0] == "." else self._subscript(operand, depth)
                tok = self.tok
            binary = _BINARY.get(tok[0])
            if isinstance(operand, _Tuple) and (operators or operands or binary):
                self._error("a tuple is not a tensor", start, "tuples are for arguments such as dim=(0, 1)")
            operands.append(operand)
            if binary is None:
                break
            op, prec = binary
            if prec == _COMPARISON_PREC:
                if compared:
                    self._error("comparisons do not chain here", tok, "compare two at a time: (a < b)")
                compared = True
            while operators and (operators[-1][1] > prec or (operators[-1][1] == prec and prec != _POW_PREC)):
                self._reduce(operands, operators)
            operators.append((op, prec, Pos(tok[2], tok[3])))
            tok = self.tok = next_token()
        while operators:
            self._reduce(operands, operators)
        return operands[0]

    def _atom(self, depth: int) -> Expr:
        """A name, the constant `pi`, a function call or a parenthesised expression (or tuple)."""
        tok = self.tok
        if tok[0] == "name":
            name = tok[1]
            self._advance()
            if self.tok[0] == "(":
                if name in self.shadowed:
                    self._error(f"'{name}' is a tensor in this program, not a function", tok,
                                f"call torch's: torch.{name}(...), or the method: x.{name}(...)")
                self.called.setdefault(name, tok)
                return self._call(tok, None, depth)
            if name == "torch" and self.tok[0] == ".":
                return self._torch_call(depth)
            if name in self.called:
                self._function_as_value(tok)
            self._bind_name(tok)
            if name == "pi":
                return Number(math.pi, "pi", Pos(tok[2], tok[3]))
            return Name(name, Pos(tok[2], tok[3]))
        if tok[0] == "(":
            self._open(depth)
            if self.tok[0] == ")":
                self._error("empty parentheses: expected an expression before ')'", self.tok)
            expr = self._expression(depth + 1)
            if self.tok[0] == ",":
                items = [expr]
                while self.tok[0] == ",":
                    self._advance()
                    if self.tok[0] == ")":
                        break
                    items.append(self._expression(depth + 1))
                expr = _Tuple(tuple(items), Pos(tok[2], tok[3]))  # type: ignore[assignment]
            if self.tok[0] != ")":
                self._expect_close("expected an operator or ')'")
            self._close()
            return expr
        if tok[0] == "[":
            self._error("a list is not a tensor", tok,
                        "lists are arguments of cat, stack and tensor: torch.stack([x, y]), tensor([1, 2])")
        if tok[0] == "string":
            self._error("a string is not a tensor", tok, "strings are keyword choices, as in reduction='sum'")
        if tok[0] == "static":
            self._error(f"'{tok[1]}' is not a tensor", tok,
                        "True, False and None are values of arguments, as in keepdim=True")
        self._unexpected("expected an expression")

    def _open(self, depth: int) -> None:
        if depth >= MAX_DEPTH:
            self._error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", self.tok)
        self.open_parens.append(self.tok)
        self._advance()

    def _close(self) -> None:
        self.open_parens.pop()
        self._advance()

    # -- arguments

    def _raw(self, depth: int) -> _Raw:
        """One argument as written, before it is matched to a parameter."""
        tok = self.tok
        if tok[0] == "string":
            self._advance()
            return ("str", tok[1][1:-1], tok)
        if tok[0] == "static":
            self._advance()
            return ("static", _STATIC_KEYWORDS[tok[1]], tok)
        if tok[0] == "[":
            self._open(depth)
            items: list[_Raw] = []
            while self.tok[0] != "]":
                items.append(self._raw(depth + 1))
                if self.tok[0] == ",":
                    self._advance()
                elif self.tok[0] != "]":
                    self._unexpected("expected ',' or ']' in a list")
            self.open_parens.pop()
            self._advance()
            return ("list", items, tok)
        return ("expr", self._expression(depth + 1), tok)

    def _arguments(self, depth: int) -> tuple[list[_Raw], list[tuple[_Token, _Raw]]]:
        """Positional and keyword arguments, Python's way: no positional after a keyword."""
        self._open(depth)
        positional: list[_Raw] = []
        keywords: list[tuple[_Token, _Raw]] = []
        while self.tok[0] != ")":
            start = self.tok
            if start[0] == "name":
                self._advance()
                if self.tok[0] == "=":
                    self._advance()
                    if any(k[0][1] == start[1] for k in keywords):
                        self._error(f"keyword argument repeated: {start[1]}", start)
                    keywords.append((start, self._raw(depth)))
                else:
                    positional.append(("expr", self._continue_expression(start, depth), start))
                    if keywords:
                        self._error("positional argument follows keyword argument", start)
            else:
                raw = self._raw(depth)
                if keywords:
                    self._error("positional argument follows keyword argument", start)
                positional.append(raw)
            if self.tok[0] == ",":
                self._advance()
            elif self.tok[0] != ")":
                self._expect_close("expected ',' or ')' after an argument")
        self._close()
        return positional, keywords

    def _continue_expression(self, name_tok: _Token, depth: int) -> Expr:
        """An expression whose first token, a name, was already read (to look for `=`)."""
        self.tokens.push(self.tok)
        self.tok = name_tok
        return self._expression(depth + 1)

    def _call(self, name_tok: _Token, receiver: Expr | None, depth: int, prefix: str = "") -> Call:
        """`f(args)`, or the method form `receiver.f(args)` with the receiver as first argument;
        `prefix` is the module path written before f (`torch.`, `torch.nn.functional.`)."""
        name = name_tok[1]
        overloads = self.functions.get(name)
        if name in self.methods and receiver is not None:  # a method's own signature first (x.where)
            overloads = self.methods[name] + (overloads or ())
        elif overloads is None and name in self.methods and prefix == "torch.":
            overloads = self.methods[name]
        if overloads is None:
            self._unknown_function(name_tok, method=receiver is not None, prefix=prefix)
        positional, keywords = self._arguments(depth)
        self._count_operation(name_tok)
        pos = Pos(name_tok[2], name_tok[3])
        # `F.relu(x)` is torch.nn.functional's relu, unless F is a tensor of the program; and
        # `F.sum()`, which F.sum cannot mean, is the method of a tensor F.
        functional = (isinstance(receiver, Name) and receiver.id == "F" and not self.f_is_a_tensor
                      and name in self.functions)
        # (arguments as written, the overloads that take them): a method's own signatures first
        tries = [(positional, overloads)] if receiver is None else [([("expr", receiver, name_tok), *positional],
                                                                      overloads)]
        if functional:
            tries.insert(0, (positional, self.functions[name]))
        failures: list[_Failure] = []
        for signature, args_written in ((s, p) for p, sigs in tries for s in sigs):
            bound = self._bind(signature, args_written, keywords, name_tok, args_written is not positional)
            if isinstance(bound, _Failure):
                failures.append(bound)
                continue
            args, params = bound
            call = Call(signature.op, args, pos, params)
            if signature.outputs:
                self.outputs[id(call)] = (name, signature.outputs, pos)
            return call
        # The overload the arguments came closest to fitting says what is wrong; all are shown.
        best = max(failures, key=lambda f: f.rank)  # the first of the closest
        hint = best.hint if len(overloads) == 1 else f"{name} takes {'; '.join(str(s) for s in overloads)}"
        self._error(best.message, best.tok, hint)

    def _bind(self, signature: Signature, positional: list[_Raw], keywords: list[tuple[_Token, _Raw]],
              name_tok: _Token, method: bool):
        """(operands, static params) for this signature, or the _Failure to fit it."""
        name = signature.name
        params = signature.params
        if (not keywords and len(positional) == len(params)
                and all(p.kind is ParamKind.TENSOR and not p.varargs and not p.keyword_only for p in params)
                and all(raw[0] == "expr" and not isinstance(raw[1], _Tuple) for raw in positional)):
            return tuple(raw[1] for raw in positional), ()  # the common case: tensors by position
        hint = f"{'the receiver counts: ' if method else ''}{signature}"
        values: dict[str, tuple[Param, object]] = {}
        slots = [p for p in params if not p.keyword_only]
        k = 0
        for slot in slots:
            if k >= len(positional):
                break
            if slot.varargs:
                rest = positional[k:]
                if len(rest) == 1 and rest[0][0] in ("list",) or (len(rest) == 1 and isinstance(rest[0][1], _Tuple)):
                    values[slot.name] = (slot, rest[0])
                else:
                    values[slot.name] = (slot, ("varargs", rest, rest[0][2]))
                k = len(positional)
                break
            values[slot.name] = (slot, positional[k])
            k += 1
        if k < len(positional):
            low = sum(1 for p in slots if p.default is REQUIRED)
            return _Failure(f"{name}() takes {_count(low, len(slots))}, got {len(positional)}", name_tok, hint, 0)
        by_name = {p.name: p for p in params}
        for key_tok, raw in keywords:
            param = by_name.get(key_tok[1])
            if param is None:
                return _Failure(f"{name}() got an unexpected keyword argument '{key_tok[1]}'", key_tok, hint, 1)
            if param.name in values:
                return _Failure(f"{name}() got multiple values for argument '{param.name}'", key_tok, hint, 1)
            values[param.name] = (param, raw)
        converted: dict[str, object] = {}
        for param_name, (param, written) in values.items():
            value = self._convert(param, written, name)
            if isinstance(value, tuple) and len(value) == 3 and value[0] == _FAIL:
                return _Failure(value[1], value[2], hint, 3)
            converted[param_name] = value
        operands: list[Expr] = []
        statics: list[tuple[str, Static]] = []
        for param in params:
            if param.name not in converted:
                if param.default is REQUIRED:
                    if param.operand and not keywords and param.kind is not ParamKind.TENSORS:
                        low = sum(1 for p in slots if p.default is REQUIRED)
                        return _Failure(f"{name}() takes {_count(low, len(slots))}, got {len(positional)}",
                                        name_tok, hint, 0)
                    return _Failure(f"{name}() missing required argument '{param.name}'", name_tok, hint, 2)
                if param.kind is ParamKind.NUMBER:
                    default = param.default
                    assert isinstance(default, (int, float))
                    operands.append(Number(float(default), repr(default), Pos(name_tok[2], name_tok[3])))
                elif not param.operand:
                    statics.append((param.name, param.default))  # type: ignore[arg-type]
                continue
            value = converted[param.name]
            if param.kind is ParamKind.TENSORS:
                operands.extend(value)  # type: ignore[arg-type]
            elif param.operand:
                operands.append(value)  # type: ignore[arg-type]
            else:
                statics.append((param.name, value))  # type: ignore[arg-type]
        return tuple(operands), tuple(statics)

    def _convert(self, param: Param, raw, name: str):
        """A raw argument as the parameter's kind, or (_FAIL, message, token)."""
        kind, value, tok = raw
        what = f"{name}(): argument '{param.name}'"
        if value is None and kind == "static" and param.optional:
            return None
        if param.kind in (ParamKind.TENSOR, ParamKind.NUMBER):
            if kind != "expr" or isinstance(value, _Tuple):
                return (_FAIL, f"{what} must be a {'number' if param.kind is ParamKind.NUMBER else 'tensor'}, "
                        f"not {_raw_kind(raw)}", tok)
            return value
        if param.kind is ParamKind.TENSORS:
            items = value.items if isinstance(value, _Tuple) else value if kind == "list" else None
            if items is None:
                return (_FAIL, f"{what} must be a list of tensors, as in [x, y]", tok)
            out = []
            for item in items:
                if isinstance(item, tuple):
                    if item[0] != "expr":
                        return (_FAIL, f"{what} must be a list of tensors, not of {_raw_kind(item)}s", item[2])
                    item = item[1]
                out.append(item)
            if not out:
                return (_FAIL, f"{what} must be a non-empty list of tensors", tok)
            return tuple(out)
        if param.kind in (ParamKind.INT, ParamKind.FLOAT):
            number = _literal(value) if kind == "expr" else None
            if number is None or (param.kind is ParamKind.INT and not isinstance(number, int)):
                noun = "an integer" if param.kind is ParamKind.INT else "a number"
                return (_FAIL, f"{what} must be {noun} written in the program, not {_raw_kind(raw)}", tok)
            return float(number) if param.kind is ParamKind.FLOAT else number
        if param.kind is ParamKind.INTS:
            if kind == "varargs":
                items = list(value)
            elif kind == "list":
                items = list(value)
            elif isinstance(value, _Tuple):
                items = [("expr", v, tok) for v in value.items]
            else:
                number = _literal(value) if kind == "expr" else None
                if isinstance(number, int):
                    return (number,) if param.varargs else number
                return (_FAIL, f"{what} must be an integer or a tuple of integers, not {_raw_kind(raw)}", tok)
            ints = []
            for item in items:
                number = _literal(item[1]) if item[0] == "expr" else None
                if not isinstance(number, int):
                    return (_FAIL, f"{what} must be integers, not {_raw_kind(item)}", item[2])
                ints.append(number)
            return tuple(ints)
        if param.kind is ParamKind.BOOL:
            if kind != "static" or not isinstance(value, bool):
                return (_FAIL, f"{what} must be True or False, not {_raw_kind(raw)}", tok)
            return value
        if param.kind is ParamKind.CHOICE:
            if kind != "str" or value not in param.choices:
                shown = ", ".join(f"'{c}'" for c in param.choices)
                got = f"'{value}'" if kind == "str" else _raw_kind(raw)
                return (_FAIL, f"{what} must be one of {shown}, not {got}", tok)
            return value
        if param.kind is ParamKind.DATA:
            return self._data(raw, what)
        raise AssertionError(param.kind)

    def _data(self, raw, what: str):
        """A nested list of number literals as nested tuples of ints and floats."""
        kind, value, tok = raw
        if kind == "list":
            items = [self._data(item, what) for item in value]
            for item in items:
                if isinstance(item, tuple) and len(item) == 3 and item[0] == _FAIL:
                    return item
            return tuple(items)
        number = _literal(value) if kind == "expr" else None
        if number is None:
            return (_FAIL, f"{what}: a tensor literal holds numbers written out, not {_raw_kind(raw)}", tok)
        return number

    def _subscript(self, receiver: Expr, depth: int) -> Call:
        """`x[0]`, `A[:, 1]`, `x[1:3]`, `x[::2]`, `x[None]`: integers and slices written out."""
        bracket = self.tok
        self._open(depth)
        items: list[Static] = []
        while self.tok[0] != "]":
            items.append(self._index_item(depth))
            if self.tok[0] == ",":
                self._advance()
            elif self.tok[0] != "]":
                self._unexpected("expected ',' or ']' in a subscript")
        if not items:
            self._error("empty subscript", bracket)
        self.open_parens.pop()
        self._advance()
        self._count_operation(bracket)
        return Call(SUBSCRIPT_OP, (receiver,), Pos(bracket[2], bracket[3]), (("index", tuple(items)),))

    def _index_item(self, depth: int) -> Static:
        parts: list[int | None] = []
        while True:
            if self.tok[0] in (":", ",", "]"):
                parts.append(None)
            elif self.tok[0] == "static" and self.tok[1] == "None" and not parts:
                self._advance()
                return None
            else:
                tok = self.tok
                expr = self._expression(depth + 1)
                number = _literal(expr)
                if not isinstance(number, int):
                    self._error("an index is an integer or a slice written in the program", tok,
                                "indexing with a tensor or a name is not supported: write x[0], x[1:3]")
                parts.append(number)
            if self.tok[0] != ":" or len(parts) == 3:
                break
            self._advance()
        if len(parts) == 1:
            return parts[0]
        while len(parts) < 3:
            parts.append(None)
        return Slice(*parts)

    def _torch_call(self, depth: int) -> Expr:
        """`torch.f(args)` or `torch.nn.functional.f(args)`: the function f itself; `torch.pi`."""
        path = "torch."
        while True:
            self._advance()  # the "."
            tok = self.tok
            if tok[0] != "name":
                self._unexpected(f"expected a function name after '{path}'")
            self._advance()
            if self.tok[0] == "." and (path, tok[1]) in (("torch.", "nn"), ("torch.nn.", "functional")):
                path += tok[1] + "."
                continue
            if path == "torch.nn.":
                self._error(f"unknown function {_quote(path + tok[1])}", tok,
                            f"torch.nn's functions are torch.nn.functional's: torch.nn.functional.{_shorten(tok[1])}")
            if path == "torch." and tok[1] == "pi" and self.tok[0] != "(":
                return Number(math.pi, "pi", Pos(tok[2], tok[3]))
            if self.tok[0] != "(":
                hint = f"call it: {path}{tok[1]}(...)" if tok[1] in self.functions else None
                self._error(f"attribute access is not supported: '{_shorten(path + tok[1])}'", tok, hint)
            return self._call(tok, None, depth, prefix=path)

    def _method(self, receiver: Expr, depth: int) -> Expr:
        self._advance()
        tok = self.tok
        if tok[0] != "name":
            self._unexpected("expected a method name after '.'")
        name = tok[1]
        self._advance()
        if name == "retain_grad":
            self._error("retain_grad() is only allowed as a whole statement: NAME.retain_grad()", tok)
        if self.tok[0] != "(":
            pending = self.outputs.get(id(receiver))
            if pending is not None and isinstance(receiver, Call):
                rows = dict(pending[1])
                if name in rows:
                    del self.outputs[id(receiver)]
                    return Call(rows[name], receiver.args, receiver.pos, receiver.params)
            if name in self.attributes:
                self._count_operation(tok)
                return Call(self.attributes[name], (receiver,), Pos(tok[2], tok[3]))
            hint = f"call it: .{name}()" if name in self.functions or name in self.methods else None
            self._error(f"attribute access is not supported: '.{_shorten(name)}'", tok, hint)
        return self._call(tok, receiver, depth)

    def _function_as_value(self, tok: _Token) -> NoReturn:
        name = tok[1]
        self._error(f"'{name}' is a function, not a value", tok, f"call it: {name}(...)")

    def _unknown_function(self, tok: _Token, method: bool, prefix: str = "") -> NoReturn:
        name = tok[1]
        if prefix:
            known = list(self.functions) + (list(self.methods) if prefix == "torch." else [])
            close = difflib.get_close_matches(name, known, n=1)
            self._error(f"unknown function {_quote(prefix + name)}", tok,
                        f"did you mean '{prefix}{close[0]}'?" if close else None)
        what = "method" if method else "function"
        if name == "pi" and not method:
            self._error("'pi' is a constant, not a function", tok, "to multiply, write pi*(...)")
        if name == "retain_grad" and not method:
            self._error("retain_grad is a method: write NAME.retain_grad() as a statement", tok)
        if name in _SYMBOL_OF:
            self._error(f"unknown {what} '{name}'", tok, f"use the operator '{_SYMBOL_OF[name]}'")
        if name in self.methods:
            self._error(f"unknown function '{name}'", tok,
                        f"it is a method, or torch's function: x.{name}(...) or torch.{name}(...)")
        candidates = list(self.functions)
        if method:
            candidates += ["retain_grad", *self.methods]
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f"did you mean '{close[0]}'?" if close else None
        self._error(f"unknown {what} {_quote(name)}", tok, hint)
