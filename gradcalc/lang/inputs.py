"""What the command line reads: program and values text within their size limits, and input
values from `--NAME V`, `--var NAME=V` and `--values FILE`. A value given as an expression
(`--x 'linspace(-3, 3, 2000)'`) is a ValueExpression, which gradcalc.api evaluates."""

from __future__ import annotations

import re
from typing import TextIO

from gradcalc.errors import InputError
from gradcalc.lang.parser import MAX_PROGRAM_CHARS
from gradcalc.lang.values import InputValue, load_values_file, value_argument

# Values text read from a file or stdin: past this size (some ten million numbers) the input
# is refused before it is read further; larger inputs come as .npy or .npz, read in C.
MAX_VALUES_TEXT = 1 << 27

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME_OPTION = re.compile(rf"--({_NAME})(?:=(.*))?$", re.DOTALL)


def read_program(argument: str, stdin: TextIO) -> str:
    """The program text: the argument itself, `@FILE`, or `-` for stdin."""
    if argument == "-":
        return read_stream(stdin, "the program on stdin", MAX_PROGRAM_CHARS)
    if argument.startswith("@"):
        return read_file(argument[1:], "program file", MAX_PROGRAM_CHARS)
    return argument


def read_file(path: str, what: str, limit: int | None = None) -> str:
    """A UTF-8 file of at most `limit` characters (default MAX_VALUES_TEXT)."""
    try:
        with open(path, encoding="utf-8") as f:
            return read_stream(f, f"{what} {path!r}", MAX_VALUES_TEXT if limit is None else limit)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what} {path!r}: {getattr(e, 'strerror', None) or e}") from None


def read_stream(stream: TextIO, what: str, limit: int) -> str:
    """At most `limit` characters; more is an error."""
    text = stream.read(limit + 1)
    if len(text) > limit:
        raise InputError(f"{what} is longer than {limit:,} characters")
    return text


def open_text(path: str, what: str) -> TextIO:
    """A text file of lines; bytes that are not UTF-8 are kept (as lone surrogates) for the
    line that holds them to be reported, not the whole file."""
    try:
        return open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise InputError(f"cannot read {what} {path!r}: {e.strerror}") from None


def split_names(items: list[str]) -> list[str]:
    """Names given as repeated options, each possibly comma-separated (`--retain a,b --retain c`)."""
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def input_values(options: list[str], var: list[str], values_file: str | None,
                 stdin: TextIO) -> dict[str, InputValue]:
    """Input values from --values FILE, then --var NAME=V, then --NAME V (`options`, the
    arguments the command line did not know); later wins. Each is an array, or (--NAME and
    --var only) a ValueExpression for gradcalc.api to evaluate."""
    texts = _name_options(options)
    for item in var:
        name, sep, text = item.partition("=")
        if not sep or not re.fullmatch(_NAME, name.strip()):
            raise InputError(f"--var {item!r}: expected NAME=VALUE")
        texts.setdefault(name.strip(), text)
    result: dict[str, InputValue] = {}
    if values_file is not None:
        result.update(load_values_file(values_file, lambda path: read_stream(stdin, "stdin", MAX_VALUES_TEXT)
                                       if path == "-" else read_file(path, "values file")))
    result.update({name: value_argument(text, f"--{name}") for name, text in texts.items()})
    return result


def _name_options(options: list[str]) -> dict[str, str]:
    """{NAME: V} of `--NAME V` and `--NAME=V` arguments."""
    texts: dict[str, str] = {}
    i = 0
    while i < len(options):
        m = _NAME_OPTION.match(options[i])
        if not m:
            raise InputError(f"unexpected argument {options[i]!r}",
                             hint="give input values as --NAME VALUE, e.g. --x 2,1")
        name, inline = m.group(1), m.group(2)
        if inline is None:
            if i + 1 >= len(options):
                raise InputError(f"--{name}: missing value", hint=f"as in --{name} 2,1")
            inline = options[i + 1]
            i += 1
        texts[name] = inline
        i += 1
    return texts
