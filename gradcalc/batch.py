"""`eval --batch FILE.jsonl`: one JSON object of values per line in, one SPEC §5 document per line out.

The program is parsed once and its partials derived once; the symbolic partials are computed
once per distinct set of input shapes. A bad row is reported with its line number and the
others go on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from gradcalc.errors import GradcalcError


@dataclass
class RowResult:
    line: int
    document: Optional[str]   # one line of JSON, or None for a bad row
    error: Optional[str]


def run_batch(program, lines: Iterable[str], *, outputs=(), seeds=(), retain=(), no_grad=(),
              dtype="float32") -> Iterator[RowResult]:
    from gradcalc.render import json_document, symbolic_partials
    from gradcalc.session import evaluate
    from gradcalc.values import parse_json_values

    partials_by_shapes: dict[tuple, dict] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            values = parse_json_values(line, f"line {number}")
            evaluation = evaluate(program, values, outputs=outputs, seeds=seeds, retain=retain,
                                  no_grad=no_grad, dtype=dtype)
            key = tuple(sorted((name, v.shape) for name, v in values.items()))
            if key not in partials_by_shapes:
                partials_by_shapes[key] = symbolic_partials(evaluation)
            document = json_document(evaluation, partials=partials_by_shapes[key])
            yield RowResult(number, json.dumps(document, allow_nan=False, ensure_ascii=False), None)
        except GradcalcError as e:
            yield RowResult(number, None, f"line {number}: {e.render()}")
