"""What a command prints, decided here and written by the CLI: plain text for stdout, what a
console lays out at the terminal's width (a Rich table, texts wrapped as a table is), and
lines for stderr, in that order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gradcalc.api import Evaluation
from gradcalc.choices import Format
from gradcalc.report.derivatives import Derivatives


@dataclass
class Printout:
    stdout: str = ""
    laid_out: list[Any] = field(default_factory=list)  # Rich renderables, for the stdout console
    stderr: str = ""


def evaluation_printout(evaluation: Evaluation, format: Format, explain: bool) -> Printout:
    """The report; with --explain, the explanations after a table, inside the json, and on
    stderr for the torch format (whose stdout is torch's lines and nothing else)."""
    from rich.text import Text

    from gradcalc.report import formats

    notes = {}
    if explain:
        from gradcalc.report.explain import explanations

        notes = explanations(evaluation)
    if format is Format.table:
        table = formats.render_table(evaluation)
        texts = [Text(line) for line in notes.values()]
        return Printout(table, texts) if isinstance(table, str) else Printout(laid_out=[table, *texts])
    if format is Format.json:
        return Printout(formats.evaluation_json(evaluation, notes))
    if format is Format.torch:
        return Printout(formats.render_torch(evaluation), stderr="".join(line + "\n" for line in notes.values()))
    return Printout(formats.render_csv(evaluation))


def derivatives_printout(derived: Derivatives, format: Format) -> Printout:
    """--jacobian (--hessian): `NAME: tensor(...)` lines as torch prints the result per input, a
    json document, or (table, csv) a titled tensor per input."""
    from rich.text import Text

    from gradcalc.report.derivatives import derivatives_json, derivatives_table, derivatives_torch

    if format is Format.json:
        return Printout(derivatives_json(derived))
    if format is Format.torch:
        return Printout(derivatives_torch(derived))
    return Printout(laid_out=[Text(text) for text in derivatives_table(derived)])
