"""Constructors: ones, zeros, full, eye, arange, linspace, *_like, tensor([...])."""

from __future__ import annotations

from gradcalc.engine.row import Op

ROWS: tuple[Op, ...] = ()
