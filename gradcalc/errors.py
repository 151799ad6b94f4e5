"""The one exception family gradcalc raises, and its exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    INTERNAL = 70  # a bug in gradcalc (sysexits' EX_SOFTWARE), not bad input


class GradcalcError(Exception):
    """Bad input of any kind; the CLI prints `error: <message>` and exits 2."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.source: str | None = None  # the program and the place in it, where known
        self.line = 0
        self.col = 0

    def at(self, source: str, line: int, col: int) -> GradcalcError:
        """This error, placed at a 1-based line and column of the program (the operation that
        raised it); a placed error keeps its first place."""
        if self.source is None:
            self.source, self.line, self.col = source, line, col
        return self

    def render(self) -> str:
        """The text after `error: `, possibly several lines (caret, hint)."""
        if self.source is not None:
            return _caret(self.source, self.line, self.col, self.message, self.hint)
        return self.message if self.hint is None else f"{self.message}\nhint: {self.hint}"


class ParseError(GradcalcError):
    """A syntax error at a 1-based line and column of the program text."""

    def __init__(self, message: str, source: str, line: int, col: int, hint: str | None = None):
        super().__init__(message, hint)
        self.at(source, line, col)


def _caret(source: str, line: int, col: int, message: str, hint: str | None) -> str:
    """`line L, column C: message`, the line, a caret under the column, and the hint."""
    lines = source.splitlines() or [""]
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    before, after = text[: col - 1], text[col - 1:]
    if len(before) > _CONTEXT:  # a long line is shown around the column, not whole
        before = "…" + before[-_CONTEXT:]
    if len(after) > _CONTEXT:
        after = after[:_CONTEXT] + "…"
    shown = "".join(_printable(ch) for ch in before + after)
    caret_pad = "".join(" " * len(_printable(ch)) if ch != "\t" else "\t" for ch in before)
    out = f"line {line}, column {col}: {message}\n  {shown}\n  {caret_pad}^"
    return out if hint is None else f"{out}\nhint: {hint}"


class InputError(GradcalcError):
    """A missing, unknown or malformed input value, seed or option."""


class MissingInput(InputError):
    """An input the program reads and no value names; `name` is the input."""

    def __init__(self, name: str):
        super().__init__(f"no value for input '{name}'", hint=f"pass --{name} VALUE (or --var {name}=VALUE)")
        self.name = name


class ShapeError(GradcalcError):
    """Shapes that do not broadcast, or a seed that does not fit its output."""


class TorchError(GradcalcError):
    """One of PyTorch's runtime errors, worded as PyTorch words it."""


_CONTEXT = 60  # characters shown on each side of the column of a syntax error


def _printable(ch: str) -> str:
    """Show control, format (bidi) and other invisible characters as escapes."""
    import unicodedata

    if ch == "\t" or (ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Zl", "Zp")):
        return ch
    return ch.encode("unicode_escape").decode("ascii")
