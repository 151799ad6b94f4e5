"""Indexing and shapes: x[0], x[1:3], reshape, view, transpose, permute, cat, stack, ..."""

from __future__ import annotations

from gradcalc.engine.row import Op

ROWS: tuple[Op, ...] = ()
