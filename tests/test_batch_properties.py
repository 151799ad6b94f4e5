"""Property test: whatever the lines, and wherever the pieces end, a batch gives every line what
the line gives as the only row.

Lines are drawn from plain rows (random numbers: signed zeros, tiny, huge, integers, nan as a
string), rows with the names in another order or other spacing, rows with another shape or a
missing input, and broken text (half objects, two objects on a line, blank lines, CRs, and
two bad lines that read as two good rows when joined).
The pieces are made small, so that plain and broken lines share pieces and pieces end anywhere.
Examples: GRADCALC_FUZZ_EXAMPLES (150 by default; GRADCALC_FUZZ_RANDOM=1 for new ones each run).
"""

from __future__ import annotations

import json
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradcalc.analysis.batch
from gradcalc.analysis.batch import run_batch
from gradcalc.api import parse

EXAMPLES = int(os.environ.get("GRADCALC_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("GRADCALC_FUZZ_RANDOM"),
                    suppress_health_check=list(HealthCheck))

PROGRAMS = [("a = x * y; b = a + x", [np.ones(2)]), ("b = (x * y).sum()", [])]  # (program, seeds)
NUMBERS = st.one_of(st.sampled_from([0.0, -0.0, 1, -3, 1e-7, 1e20, 2.5, 123456789012]),
                    st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 3)))


def plain(x, y, order, compact):
    row = {"x": x, "y": y} if order else {"y": y, "x": x}
    return json.dumps(row, separators=(",", ":") if compact else None)


LINES = st.one_of(
    st.builds(plain, st.lists(NUMBERS, min_size=2, max_size=2), NUMBERS, st.just(True), st.just(False)),
    st.builds(plain, st.lists(NUMBERS, min_size=2, max_size=2), NUMBERS, st.booleans(), st.booleans()),
    st.builds(plain, st.lists(NUMBERS, min_size=0, max_size=3), st.one_of(NUMBERS, st.just("nan")),
              st.booleans(), st.booleans()),
    st.sampled_from(['{"x": [1, 2]}', '{"x": [1, 2], "y": 1, "z": 0}', '{"x": [1, 2], "y": true}',
                     '{"x": [1, 2], "y": 1}, {"x": [3, 4], "y": 1}', '{"x": [1, 2], "y": [1', '2]}',
                     '{"x": [1, 2], "y": 1}\r', ' {"x": [1, 2], "y": 1}', "", "  ", "[]", "{}", "not json",
                     '{"x": [1, 2], "y": 1e400}', '{"x": [[1, 2]], "y": 1}', '{"x": [1, 2], "y": {"v": 1}}']),
)


# Two bad lines that, joined by a comma, read as two good objects.
HALVES = ['{"x": [1, 2], "y": 1}, {"x": [3, 4]', '"y": 2}']


@SETTINGS
@given(st.lists(st.one_of(LINES.map(lambda line: [line]), st.just(HALVES)), min_size=1, max_size=30),
       st.integers(20, 400), st.sampled_from(PROGRAMS), st.sampled_from(["float32", "float64"]))
def test_a_batch_gives_each_line_what_it_gives_alone(groups, piece, program, dtype):
    lines = [line for group in groups for line in group]
    source, seeds = program
    program, options = parse(source), {"seeds": seeds, "dtype": dtype}
    saved = gradcalc.analysis.batch.PIECE
    gradcalc.analysis.batch.PIECE = piece
    try:
        together = list(run_batch(program, lines, **options))
    finally:
        gradcalc.analysis.batch.PIECE = saved
    alone = []
    for number, line in enumerate(lines, 1):
        for result in run_batch(program, [line], **options):
            error = result.error and result.error.replace("line 1:", f"line {number}:", 1)
            alone.append(result._replace(line=number, error=error))
    assert together == alone
    DOCUMENTS.append(sum(r.document is not None for r in together))


DOCUMENTS: list[int] = []


def test_the_property_saw_good_rows():
    assert sum(DOCUMENTS) > 100 or not DOCUMENTS
