"""PyTorch's tensor text (``repr(t)``) for float32/float64, int64 and bool NumPy arrays,
without torch.

Follows the rules of ``torch/_tensor_str.py`` under torch's default print options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PrintOptions:
    """Torch's default print options (``torch.set_printoptions(profile="default")``)."""

    precision: int = 4
    threshold: int = 1000
    edgeitems: int = 3
    linewidth: int = 80


PRINT_OPTIONS = PrintOptions()

_PREFIX = "tensor("
# The suffix of a tensor with elements: none for torch's default dtypes (float32, int64, bool).
_DTYPE_SUFFIXES = {np.dtype(np.float32): None, np.dtype(np.float64): "dtype=torch.float64",
                   np.dtype(np.int64): None, np.dtype(np.bool_): None}
# An empty tensor names every dtype but the default float one: no element shows which it is.
_EMPTY_SUFFIXES = {np.dtype(np.float32): None, np.dtype(np.float64): "dtype=torch.float64",
                   np.dtype(np.int64): "dtype=torch.int64", np.dtype(np.bool_): "dtype=torch.bool"}


class _Formatter:
    """Decides integer mode, scientific mode and column width from the values shown.

    As in torch, only nonzero finite values count, so ``nan``, ``-inf`` or ``-0.`` may be
    wider than the column.
    """

    def __init__(self, values: np.ndarray, precision: int):
        self.precision = precision
        self.int_mode = True
        self.sci_mode = False
        self.width = 1
        nonzero = values[np.isfinite(values) & (values != 0)]
        if nonzero.size == 0:
            return
        magnitude = np.abs(nonzero).astype(np.float64)
        smallest, largest = float(magnitude.min()), float(magnitude.max())
        self.int_mode = bool(np.all(nonzero == np.ceil(nonzero)))
        self.sci_mode = largest / smallest > 1000.0 or largest > 1.0e8 or smallest < 1.0e-4
        self.width = max(len(self._text(v)) for v in nonzero.tolist())

    def _text(self, value: float) -> str:
        if self.sci_mode:
            return f"{value:.{self.precision}e}"
        if self.int_mode:
            return f"{value:.0f}" + ("." if math.isfinite(value) else "")
        return f"{value:.{self.precision}f}"

    def format(self, value: float) -> str:
        return self._text(value).rjust(self.width)


class _PlainFormatter:
    """An integer or bool tensor's formatter: each value as Python writes it (`-3`, `True`),
    right-aligned to the widest of the values shown (at least 1)."""

    def __init__(self, values: np.ndarray):
        texts = [str(v) for v in values.reshape(-1).tolist()]
        self.width = max([1, *map(len, texts)])

    def format(self, value) -> str:
        return str(value).rjust(self.width)


def _summarise(arr: np.ndarray, opts: PrintOptions) -> tuple[np.ndarray, tuple[bool, ...]]:
    """The values torch shows, and which axes lose their middle to an ellipsis."""
    if arr.size <= opts.threshold:
        return arr, (False,) * arr.ndim
    edge = opts.edgeitems
    cut = tuple(n > 2 * edge for n in arr.shape)
    kept = [np.r_[0:edge, n - edge : n] if c else np.arange(n) for n, c in zip(arr.shape, cut)]
    return arr[np.ix_(*kept)], cut


def _vector_str(
    vec: np.ndarray, cut: bool, indent: int, fmt: _Formatter | _PlainFormatter, opts: PrintOptions
) -> str:
    items = [fmt.format(v) for v in vec.tolist()]
    if cut:
        items.insert(opts.edgeitems, " ...")
    per_line = max(1, (opts.linewidth - indent) // (fmt.width + 2))
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(
    arr: np.ndarray, cut: tuple[bool, ...], indent: int, fmt: _Formatter | _PlainFormatter, opts: PrintOptions
) -> str:
    if arr.ndim == 0:
        return fmt.format(arr.item())
    if arr.ndim == 1:
        return _vector_str(arr, cut[0], indent, fmt, opts)
    parts = [_nested_str(sub, cut[1:], indent + 1, fmt, opts) for sub in arr]
    if cut[0]:
        parts.insert(opts.edgeitems, "...")
    return "[" + ("," + "\n" * (arr.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _add_suffixes(text: str, suffixes: list[str], indent: int, opts: PrintOptions) -> str:
    # Torch's count of the last line's length is two more than its true length.
    line_len = len(text) - text.rfind("\n") + 1
    parts = [text]
    for suffix in suffixes:
        if line_len + len(suffix) + 2 > opts.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            line_len = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            line_len += len(suffix) + 2
    return "".join(parts) + ")"


def tensor_repr(
    value: np.ndarray, *, requires_grad: bool = False, grad_fn: str | None = None
) -> str:
    """What ``repr`` (and ``str``) of the torch tensor holding ``value`` prints.

    ``grad_fn`` names the node of a non-leaf (``"AddBackward0"``); ``requires_grad``
    marks a leaf that requires grad and is ignored when ``grad_fn`` is given, as in torch.
    """
    arr = np.asarray(value)
    if arr.dtype == object:  # `eval --exact`: SymPy numbers
        return exact_repr(arr)
    if arr.dtype not in _DTYPE_SUFFIXES:
        raise TypeError(f"tensor_repr expects float32, float64, int64 or bool values, got {arr.dtype}")
    opts = PRINT_OPTIONS
    indent = len(_PREFIX)
    suffixes = []
    if arr.size == 0:
        body = "[]"
        if arr.ndim != 1:
            suffixes.append(f"size={tuple(arr.shape)}")
        dtype_suffix = _EMPTY_SUFFIXES[arr.dtype]
    else:
        shown, cut = _summarise(arr, opts)
        plain = arr.dtype.kind in "ib"
        fmt = _PlainFormatter(shown) if plain else _Formatter(shown, opts.precision)
        body = _nested_str(shown, cut, indent, fmt, opts)
        dtype_suffix = _DTYPE_SUFFIXES[arr.dtype]
    if dtype_suffix:
        suffixes.append(dtype_suffix)
    if grad_fn is not None:
        suffixes.append(f"grad_fn=<{grad_fn}>")
    elif requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(_PREFIX + body, suffixes, indent, opts)


def exact_repr(array) -> str:
    """torch's layout for exact numbers: `tensor([1/3, 1/2])`, rows aligned, n-d nested."""
    array = np.asarray(array, dtype=object)
    if array.ndim == 0:
        return f"tensor({array.item()})"
    texts = np.frompyfunc(str, 1, 1)(array)
    width = max((len(t) for t in texts.reshape(-1)), default=0)
    return "tensor(" + _nested_exact(texts, width, indent=8) + ")"


def _nested_exact(texts, width: int, indent: int) -> str:
    if texts.ndim == 1:
        return "[" + ", ".join(t.rjust(width) for t in texts) + "]"
    separator = "," + "\n" * (texts.ndim - 1) + " " * indent
    return "[" + separator.join(_nested_exact(t, width, indent + 1) for t in texts) + "]"
