"""Activations with parameters, softmax, log_softmax, normalize; comparisons and where."""

from __future__ import annotations

from gradcalc.engine.row import Op

ROWS: tuple[Op, ...] = ()
