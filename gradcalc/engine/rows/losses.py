"""torch.nn.functional's losses, with `reduction`."""

from __future__ import annotations

from gradcalc.engine.row import Op

ROWS: tuple[Op, ...] = ()
