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
from collections.abc import Iterator, Mapping
from typing import NoReturn

from gradcalc.errors import InputError, ParseError
from gradcalc.lang.syntax import Assign, Call, Expr, Name, Number, Pos, Program, RetainGrad, Statement

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
}
_UNARY = {"-": "neg", "+": "pos"}
_UNARY_PREC = 3  # unary operators are the only ones at this level
_POW_PREC = 4  # the only right-associative level
# For the hint on `add(x, y)`: the symbol of each operator's op (`**` rather than `^`).
_SYMBOL_OF = {op: symbol for symbol, op in _UNARY.items()} | {
    op: symbol for symbol, (op, _) in reversed(_BINARY.items())
}

_KEYWORDS = frozenset(keyword.kwlist)  # soft keywords (`match`, `case`, `_`) remain names
_STATEMENT_END = (";", "newline", "eof")

# A token is (kind, text, line, col); an operator's kind is its own text. Operators that are
# a prefix of an unsupported one (`*` of `*=`, `/` of `//`, `=` of `==`) stop short of it, so
# that `bad` reports the whole unsupported operator; a `.` before a digit starts a number.
_Token = tuple[str, str, int, int]
_TOKEN = re.compile(
    r"""[ \t]*(?:
     (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>\*\*(?!=)|\*(?![*=])|[-+@^](?!=)|/(?![/=])|=(?!=)|\.(?![0-9])|[(),;])
    |(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?P<numtail>[A-Za-z0-9_.]+)?
    |(?P<newline>\r\n?|\n)
    |(?P<comment>\#[^\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*)
    |(?P<bad>\*\*=|//=?|<<=?|>>=?|[=!<>:]=|[-+*/@^%&|]=|[<>%&|~:!])
    |(?P<other>[^ \t])
    )""",
    re.VERBOSE,
)

_LOOKALIKES = {
    "×": "*", "·": "*", "⋅": "*", "∗": "*", "−": "-", "–": "-", "—": "-", "÷": "/", "∕": "/",
    "²": "**2", "³": "**3",
}

_SHOWN = 40  # longest piece of user text quoted in a message


def parse(source: str, functions: Mapping[str, int],
          methods: Mapping[str, tuple[str, int]] | None = None) -> Program:
    """Parse a whole program; raise `ParseError` at the first offending line and column.

    `functions` is the vocabulary: each function's name and arity (the op table's, given by
    `gradcalc.api.parse`), so that the language layer knows no operation of its own. `methods`
    are the names callable only as a method or with torch's prefix (`x.mul(y)`,
    `torch.clip(x, 0, 1)`), each with the op it calls and its arity: their names stay free
    for the program's tensors."""
    # A long program makes millions of small acyclic objects; cycle collection passes over
    # them would take most of the time and free nothing.
    if len(source) > MAX_PROGRAM_CHARS:
        raise InputError(f"the program is longer than {MAX_PROGRAM_CHARS:,} characters",
                         hint="a program this long is a mistake or an attack; split the work up")
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Parser(source, functions, methods or {}).program()
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
            if text in _KEYWORDS:
                raise ParseError(f"'{text}' is a Python keyword, not a name", source, line, col)
            yield ("name", text, line, col)
        elif kind == "number":
            yield ("number", text, line, col)
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
        return "strings are not allowed", None
    if ch in "[]":
        return f"'{ch}' is not allowed: subscripts and lists are not supported", None
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


class _Parser:
    def __init__(self, source: str, functions: Mapping[str, int], methods: Mapping[str, tuple[str, int]]):
        self.source = source
        self.functions = functions
        self.methods = methods
        # `F.relu(x)` is torch.nn.functional's relu, as in a PyTorch script, unless the program
        # also uses F as a tensor (`F = m * a`): then `F.sum()` is a method of that tensor.
        self.f_is_a_tensor = _used_as_a_value(source, "F")
        self.tokens = _tokenize(source)
        self.next_token = self.tokens.__next__
        self.open_parens: list[_Token] = []  # the "(" tokens of the groups and calls being read
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
            statements.append(self._statement())
        if not statements:
            self._error("empty program", self.tok, "write an assignment, such as y = x * 2")
        return Program(tuple(statements), self.source)

    def _statement(self) -> Statement:
        first = self.tok
        if first[0] == "name":
            self._advance()
            if self.tok[0] == "=":
                return self._assign(first)
            if self.tok[0] == ".":
                self._advance()
                if self.tok[0] == "name" and self.tok[1] == "retain_grad":
                    return self._retain_grad(first)
                if self.tok[0] == "name" and difflib.get_close_matches(self.tok[1], ["retain_grad"]):
                    self._error("expected an assignment NAME = EXPR", first, "did you mean 'retain_grad'?")
        elif first[0] == ")":
            self._error("unmatched ')'", first)
        self._error("expected an assignment NAME = EXPR", first, "a statement is NAME = EXPR or NAME.retain_grad()")

    def _assign(self, target: _Token) -> Assign:
        name = target[1]
        if name == "pi":
            self._error("cannot assign to the constant 'pi'", target)
        if name in self.functions:
            self._error(f"cannot assign to '{name}': it is a function", target, "choose another name")
        self._advance()
        value = self._expression(0)
        self._end_of_statement()
        return Assign(name, value, Pos(target[2], target[3]))

    def _retain_grad(self, target: _Token) -> RetainGrad:
        name = target[1]
        if name == "pi":
            self._error("cannot call retain_grad() on the constant 'pi'", target)
        if name in self.functions:
            self._function_as_value(target)
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
        tok = self.tok
        while True:
            while tok[0] in _UNARY:
                operators.append((_UNARY[tok[0]], _UNARY_PREC, Pos(tok[2], tok[3])))
                tok = self.tok = next_token()
            if tok[0] == "number":
                operand: Expr = Number(float(tok[1]), tok[1], Pos(tok[2], tok[3]))
                tok = self.tok = next_token()
            else:
                operand = self._atom(depth)
                tok = self.tok
            while tok[0] == ".":
                operand = self._method(operand, depth)
                tok = self.tok
            operands.append(operand)
            binary = _BINARY.get(tok[0])
            if binary is None:
                break
            op, prec = binary
            while operators and (operators[-1][1] > prec or (operators[-1][1] == prec and prec != _POW_PREC)):
                self._reduce(operands, operators)
            operators.append((op, prec, Pos(tok[2], tok[3])))
            tok = self.tok = next_token()
        while operators:
            self._reduce(operands, operators)
        return operands[0]

    def _atom(self, depth: int) -> Expr:
        """A name, the constant `pi`, a function call or a parenthesised expression."""
        tok = self.tok
        if tok[0] == "name":
            name = tok[1]
            self._advance()
            if self.tok[0] == "(":
                return self._call(tok, None, depth)
            if name == "torch" and self.tok[0] == ".":
                return self._torch_call(depth)
            if name in self.functions:
                if self.tok[0] == "=" and self.open_parens:
                    self._error("keyword arguments are not supported", tok, "pass arguments by position")
                self._function_as_value(tok)
            if name == "pi":
                return Number(math.pi, "pi", Pos(tok[2], tok[3]))
            return Name(name, Pos(tok[2], tok[3]))
        if tok[0] == "(":
            self._open(depth)
            if self.tok[0] == ")":
                self._error("empty parentheses: expected an expression before ')'", self.tok)
            expr = self._expression(depth + 1)
            if self.tok[0] != ")":
                self._expect_close("expected an operator or ')'")
            self._close()
            return expr
        self._unexpected("expected an expression")

    def _open(self, depth: int) -> None:
        if depth >= MAX_DEPTH:
            self._error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", self.tok)
        self.open_parens.append(self.tok)
        self._advance()

    def _close(self) -> None:
        self.open_parens.pop()
        self._advance()

    def _arguments(self, depth: int) -> list[Expr]:
        self._open(depth)
        args: list[Expr] = []
        while self.tok[0] != ")":
            start = self.tok
            args.append(self._expression(depth + 1))
            if self.tok[0] == "=":
                self._error("keyword arguments are not supported", start, "pass arguments by position")
            if self.tok[0] == ",":
                self._advance()
            elif self.tok[0] != ")":
                self._expect_close("expected ',' or ')' after an argument")
        self._close()
        return args

    def _call(self, name_tok: _Token, receiver: Expr | None, depth: int, prefix: str = "") -> Call:
        """`f(args)`, or the method form `receiver.f(args)` with the receiver as first argument;
        `prefix` is the module path written before f (`torch.`, `torch.nn.functional.`)."""
        name = name_tok[1]
        op, arity = name, self.functions.get(name)
        if arity is None and name in self.methods and (receiver is not None or prefix == "torch."):
            op, arity = self.methods[name]
        if arity is None:
            self._unknown_function(name_tok, method=receiver is not None, prefix=prefix)
        args = self._arguments(depth)
        functional = (isinstance(receiver, Name) and receiver.id == "F" and not self.f_is_a_tensor
                      and len(args) == arity and name in self.functions)
        if receiver is not None and not functional:
            args.insert(0, receiver)
        if len(args) != arity:
            hint = None
            if receiver is not None:
                hint = f"the receiver counts: x.{name}(...) is {name}(x, ...)"
            self._error(f"{name}() takes {_plural(arity, 'argument')}, got {len(args)}", name_tok, hint)
        self._count_operation(name_tok)
        return Call(op, tuple(args), Pos(name_tok[2], name_tok[3]))

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

    def _method(self, receiver: Expr, depth: int) -> Call:
        self._advance()
        tok = self.tok
        if tok[0] != "name":
            self._unexpected("expected a method name after '.'")
        name = tok[1]
        self._advance()
        if name == "retain_grad":
            self._error("retain_grad() is only allowed as a whole statement: NAME.retain_grad()", tok)
        if self.tok[0] != "(":
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
