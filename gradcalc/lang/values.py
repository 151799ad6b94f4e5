"""Input values from the command line (`2,1`, `[[1,2],[3,4]]`, `nan`, or an expression of the
program language such as `linspace(-3, 3, 2000)`) and JSON files."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcalc.errors import InputError

_TOKEN = re.compile(r"\s*(?:(?P<punct>[\[\],])|(?P<number>[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
                    r"(?:[eE][+-]?[0-9]+)?|nan|infinity|inf))|(?P<bad>\S))", re.IGNORECASE)
MAX_ELEMENTS = 50_000_000
# NumPy 1.x's limit of dimensions (2.x allows 64): deeper input is a mistake or an attack.
MAX_DIMS = 32


def parse_value(text: str, what: str) -> np.ndarray:
    """`3` (0-d), `2,1` or `[2,1]` (1-d), `[[1,2],[3,4]]` (n-d), as a float64 array."""
    tokens = _tokens(text, what)
    if not tokens:
        raise InputError(f"{what}: empty value")
    if tokens[0] != "[" and "," in tokens:
        tokens = ["[", *tokens, "]"]
    nested, end = _parse(tokens, 0, what)
    if end != len(tokens):
        raise InputError(f"{what}: unexpected '{tokens[end]}' in value {text!r}")
    return to_array(nested, what)


def _tokens(text: str, what: str) -> list:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.group("bad"):
            bad = text[m.start("bad")] if m else text[pos]
            raise InputError(f"{what}: cannot read {bad!r} in value {text!r}",
                             hint="a value is a number, a comma-separated list, or nested [lists]")
        tokens.append(m.group("punct") or float(m.group("number")))
        pos = m.end()
    return tokens


def _parse(tokens: list, i: int, what: str) -> tuple[Any, int]:
    """One element or bracketed list starting at tokens[i]; lists are parsed with a stack."""
    if tokens[i] != "[":
        if isinstance(tokens[i], str):
            raise InputError(f"{what}: expected a number, found '{tokens[i]}'")
        return tokens[i], i + 1
    stack: list[list] = []
    while True:
        tok = tokens[i] if i < len(tokens) else None
        if tok == "[":
            stack.append([])
            i += 1
            if i >= len(tokens) or tokens[i] != "]":
                continue
        elif isinstance(tok, float):
            stack[-1].append(tok)
            i += 1
        else:
            raise InputError(f"{what}: expected a number or '[', found {_show(tok)}")
        while i < len(tokens) and tokens[i] == "]":
            done = stack.pop()
            i += 1
            if not stack:
                return done, i
            stack[-1].append(done)
        if i >= len(tokens):
            raise InputError(f"{what}: unclosed '['")
        if tokens[i] != ",":
            raise InputError(f"{what}: expected ',' or ']', found {_show(tokens[i])}")
        i += 1


def _show(tok) -> str:
    return "the end of the value" if tok is None else f"'{tok}'"


def cast(value, dtype) -> np.ndarray:
    """A value in the tensors' dtype; out-of-range numbers become inf, as torch.Tensor([1e39])."""
    with np.errstate(over="ignore"):
        return np.asarray(value, dtype=dtype)


def to_array(nested: Any, what: str) -> np.ndarray:
    """A rectangular nested list of numbers as a float64 array, or an error naming `what`."""
    shape = _shape(nested, what)
    check_shape(shape, what)
    return np.array(nested, dtype=np.float64).reshape(shape)


def _shape(nested: Any, what: str) -> tuple[int, ...]:
    shape: list[int] = []
    level = [nested]
    while level and isinstance(level[0], list):
        if len(shape) == MAX_DIMS:
            raise InputError(f"{what}: more than {MAX_DIMS} nested levels (dimensions)")
        sizes = {len(x) if isinstance(x, list) else -1 for x in level}
        if len(sizes) != 1 or -1 in sizes:
            raise InputError(f"{what}: ragged nested list (sub-lists of different lengths at depth {len(shape) + 1})")
        shape.append(sizes.pop())
        level = [y for x in level for y in x]
    if any(isinstance(x, list) for x in level):
        raise InputError(f"{what}: ragged nested list at depth {len(shape) + 1}")
    for x in level:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            hint = ("a value expression such as eye(3) is read from --NAME and --var options only; "
                    "here values are numbers") if isinstance(x, str) and is_expression(x) else None
            raise InputError(f"{what}: {json.dumps(x)} is not a number", hint=hint)
    return tuple(shape)


_JSON_SPECIALS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
                  "-infinity": -math.inf}


def parse_json_values(text: str, source: str) -> dict[str, np.ndarray]:
    """`{"x": [2, 1], "s": 3}`; "nan", "inf" and "-inf" may be strings, as gradcalc's json prints them."""
    try:
        data = json.loads(text, parse_constant=lambda c: float(c.replace("Infinity", "inf")))
    except (ValueError, RecursionError) as e:
        raise InputError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a JSON object of input values, like {{\"x\": [2, 1]}}")
    return {name: to_array(_specials(v), f"{source}: input '{name}'") for name, v in data.items()}


def _specials(value: Any) -> Any:
    if isinstance(value, str):
        return _JSON_SPECIALS.get(value.lower(), value)
    if isinstance(value, list):
        return [_specials(v) for v in value]
    return value


# An input's value: an array, or a ValueExpression still to be evaluated (NumPy evaluates one
# through its __array__, so that any consumer of values may take it as an array).
InputValue = Any


def value_argument(text: str, what: str) -> InputValue:
    """A value as the command line gives it: `2,1`, `@FILE.npy` for a large array, or an
    expression of the program language (`eye(3)`, `arange(6).reshape(2, 3)`: it starts with
    a letter), which the engine evaluates (a ValueExpression, see gradcalc.api)."""
    if text.startswith("@"):
        return load_npy(text[1:], what)
    if is_expression(text):
        return ValueExpression(text, what)
    return parse_value(text, what)


_NUMBER_WORD = re.compile(r"\s*[+-]?(?:nan|infinity|inf)\b", re.IGNORECASE)


def is_expression(text: str) -> bool:
    """A value that starts with a letter (or `_`) and is not nan or inf: `linspace(0, 1, 5)`."""
    stripped = text.lstrip()
    return bool(stripped) and (stripped[0].isalpha() or stripped[0] == "_") and not _NUMBER_WORD.match(text)


@dataclass(frozen=True)
class ValueExpression:
    """A value written as an expression of the program language: constructors and shape and
    arithmetic operations over numbers (`linspace(-3, 3, 2000)`, `tensor([0, 2, 1])`), never
    names. The language layer only marks it: gradcalc.api evaluates it with the engine, in the
    evaluation's dtype, before the graph is built (never Python's eval). `what` names it in
    errors (`--X`)."""

    text: str
    what: str


class ValueExpressionError(InputError):
    """An error in a value expression, shown under the value itself: `--X: message`, the
    value, and a caret under the column (1-based) where it is."""

    def __init__(self, what: str, text: str, col: int, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.what, self.text, self.value_col = what, text, col

    def render(self) -> str:
        text, col = self.text, max(1, self.value_col)
        before, after = text[: col - 1], text[col - 1:]
        if len(before) > _SHOWN_CONTEXT:
            before = "…" + before[-_SHOWN_CONTEXT:]
        if len(after) > _SHOWN_CONTEXT:
            after = after[:_SHOWN_CONTEXT] + "…"
        out = f"{self.what}: {self.message}\n  {before}{after}\n  {' ' * len(before)}^"
        return out if self.hint is None else f"{out}\nhint: {self.hint}"


_SHOWN_CONTEXT = 60  # characters of a long value shown on each side of the caret


def load_npy(path: str, what: str) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            _check_declared_size(f, f"{what} ({path})")
    except OSError as e:
        raise InputError(f"{what}: cannot read NumPy file {path!r}: {e.strerror}") from None
    array = _numpy_file(path, what)
    if not isinstance(array, np.ndarray):
        raise InputError(f"{what}: {path} holds several arrays; use --values {path}")
    return _checked_array(array, f"{what} ({path})")


def load_values_file(path: str, read_text) -> dict[str, np.ndarray]:
    """--values FILE: a NumPy .npz (one array per input name) or a JSON object; `-` is JSON on stdin."""
    if path.endswith(".npz"):
        archive = _numpy_file(path, "--values")
        if isinstance(archive, np.ndarray):
            raise InputError(f"--values {path}: expected an .npz archive of named arrays")
        with archive:
            values = {}
            for name in archive.files:
                what = f"--values {path}: input '{name}'"
                with archive.zip.open(f"{name}.npy") as member:
                    _check_declared_size(member, what)  # before anything is decompressed
                values[name] = _checked_array(archive[name], what)
            return values
    return parse_json_values(read_text(path), path)


def _numpy_file(path: str, what: str):
    try:
        return np.load(path, allow_pickle=False)  # never unpickle: a file is data, not code
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{what}: cannot read NumPy file {path!r}: {e}") from None


def check_shape(shape: tuple[int, ...], what: str) -> None:
    """An input's limits: at most MAX_DIMS dimensions and MAX_ELEMENTS elements."""
    if len(shape) > MAX_DIMS:
        raise InputError(f"{what}: {len(shape)} dimensions is more than the limit of {MAX_DIMS}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise InputError(f"{what}: {math.prod(shape):,} elements is more than the limit of {MAX_ELEMENTS:,}")


def _check_declared_size(f, what: str) -> None:
    """Refuse an array whose .npy header declares too many elements or dimensions, before a
    byte of it is read: a 10^9-element file is an error at once, not minutes of reading."""
    from numpy.lib import format as npy

    try:
        major, _ = npy.read_magic(f)
        shape, _, _ = (npy.read_array_header_1_0 if major == 1 else npy.read_array_header_2_0)(f)
    except (ValueError, OSError, EOFError):
        return  # not a plain .npy: np.load reports it
    check_shape(shape, what)


def _checked_array(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in "fiub":
        raise InputError(f"{what}: expected numbers, got an array of dtype {array.dtype}")
    check_shape(array.shape, what)
    return array.astype(np.float64, copy=False) if array.dtype.kind != "f" else array
