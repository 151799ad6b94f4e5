"""The closed sets of names a user chooses from: the report formats and the dtypes. Kept apart,
importing nothing, so that `--help` lists them without loading NumPy or the engine."""

from __future__ import annotations

from enum import Enum


class Format(str, Enum):
    """`eval --format`."""

    table = "table"
    torch = "torch"
    json = "json"
    csv = "csv"


class DiffFormat(str, Enum):
    """`diff --format`."""

    text = "text"
    latex = "latex"
    json = "json"


class GraphFormat(str, Enum):
    """`graph --format`."""

    tree = "tree"
    dot = "dot"
    mermaid = "mermaid"


class ListFormat(str, Enum):
    """`functions --format`."""

    text = "text"
    json = "json"


class DType(str, Enum):
    """The tensors' dtype (`api.evaluate` also takes "exact": SymPy rationals)."""

    float32 = "float32"
    float64 = "float64"
