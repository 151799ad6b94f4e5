"""Property tests: whatever the text, only gradcalc's own error type leaves the library.

Random token streams (mostly nonsense, sometimes a program) go through the parser; random
valid programs, with random values of random shapes, go through evaluation, backward and
every report. Any other exception (IndexError, RecursionError, a NumPy error...) is a bug.
`GRADCALC_FUZZ_EXAMPLES=5000` runs more of them (`GRADCALC_FUZZ_RANDOM=1`: new ones each run);
tests/fuzz/ holds a coverage-guided fuzzer.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcalc.api import evaluate, parse
from gradcalc.engine.ops import FUNCTIONS
from gradcalc.errors import GradcalcError
from gradcalc.report.formats import evaluation_json, render_csv, render_table, render_torch

EXAMPLES = int(os.environ.get("GRADCALC_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("GRADCALC_FUZZ_RANDOM"),
                    suppress_health_check=list(HealthCheck))

NAMES = ["x", "y", "z", "a", "b", "pi", "retain_grad", "detach", "lambda", "__import__", "_", "x1"]
TOKENS = (NAMES + sorted(FUNCTIONS) + [
    "+", "-", "*", "/", "**", "^", "@", "(", ")", ",", ".", "=", ";", "\n", "#", " ", "\t",
    "0", "1", "2.5", ".5", "1e-3", "1e400", "1e", "0x1", "9" * 40, "'", '"', "[", "]", "{", "}", ":",
    "\\", "`", "!", "?", "%", "&", "|", "~", "<", ">", "$", "@x", "\x00", "\u202e", "\u00d7", "\u2212",
    "\uff58", "é", "𝗑", "\r", "\x0b", "**-", "--", "++",
])


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_streams_raise_only_gradcalc_errors(tokens):
    try:
        parse("".join(tokens))
    except GradcalcError:
        pass


@SETTINGS
@given(st.text(max_size=60))
def test_random_text_raises_only_gradcalc_errors(text):
    try:
        parse(text)
    except GradcalcError:
        pass


# -- random valid programs -----------------------------------------------------------------

UNARY = sorted(n for n, r in FUNCTIONS.items() if r.arity == 1)
BINARY = sorted(n for n, r in FUNCTIONS.items() if r.arity == 2)
NUMBERS = st.sampled_from(["0", "1", "2", "0.5", "1e-3", "1e30", "pi", "3"])


def expressions(names):
    leaves = st.one_of(st.sampled_from(names), NUMBERS)

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "**", "@"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(UNARY), inner).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(BINARY), inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            st.tuples(inner, inner, inner).map(lambda t: f"clamp({t[0]}, {t[1]}, {t[2]})"),
            inner.map(lambda e: f"-{e}"),
            inner.map(lambda e: f"({e}).detach()"),
        )

    return st.recursive(leaves, extend, max_leaves=8)


@st.composite
def programs(draw):
    names = ["x", "y"]
    lines = []
    for i in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(["a", "b", "c", "x"])) if i else "a"
        lines.append(f"{target} = {draw(expressions(names))}")
        names.append(target)
        if draw(st.booleans()):
            lines.append(f"{target}.retain_grad()")
    return "\n".join(lines)


SHAPES = st.sampled_from([(), (1,), (2,), (3,), (2, 2), (2, 3), (3, 2), (0,), (1, 2)])


@st.composite
def values(draw):
    out = {}
    for name in ("x", "y"):
        shape = draw(SHAPES)
        numbers = draw(st.lists(st.sampled_from([0.0, -0.0, 1.0, -2.5, 0.5, 1e30, -1e-30, float("nan"), float("inf")]),
                                min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        out[name] = np.array(numbers, dtype=np.float64).reshape(shape)
    return out


@SETTINGS
@given(programs(), values(), st.sampled_from(["float32", "float64"]), st.booleans())
def test_random_programs_raise_only_gradcalc_errors(source, inputs, dtype, seeded):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy warning escaping is a bug too
        try:
            evaluation = evaluate(source, inputs, dtype=dtype, seeds=[np.ones(1)] if seeded else ())
        except GradcalcError:
            return
        render_torch(evaluation)
        evaluation_json(evaluation)
        render_csv(evaluation)
        from rich.console import Console

        Console(file=io.StringIO(), width=100).print(render_table(evaluation))
