"""Coverage-guided fuzzing of gradcalc's parser and evaluation with atheris (not part of the
default test run: it runs until stopped).

    pip install atheris
    mkdir -p /tmp/fuzz-work   # libFuzzer adds what it finds to the first directory
    python tests/fuzz/fuzz_eval.py /tmp/fuzz-work tests/fuzz/corpus -max_total_time=600 -timeout=10 -rss_limit_mb=4096

Each input is a program's text, plus a few bytes that choose the inputs' shapes and values;
the same text also goes to the value parsers (`--x TEXT`, `--values` JSON), and its lines to
`--batch` as rows, in pieces of a size the bytes choose: each line must get what it gets as
the only row. Whatever the input, only gradcalc's own error type may come out, and no input
may take more than the libFuzzer timeout. The seed corpus holds the hostile-input cases of the tests and
some valid programs (`python tests/fuzz/fuzz_eval.py --write-corpus` rewrites it).
"""

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["gradcalc"]):
    import gradcalc.analysis.batch
    from gradcalc.analysis.batch import run_batch
    from gradcalc.api import evaluate, parse
    from gradcalc.engine.graph import find_inputs
    from gradcalc.errors import GradcalcError
    from gradcalc.lang.values import parse_json_values, parse_value
    from gradcalc.report.formats import evaluation_json, render_csv, render_torch

import numpy as np

SHAPES = [(), (1,), (2,), (3,), (2, 2), (2, 3), (0,)]
NUMBERS = [0.0, -0.0, 1.0, -2.5, 0.5, 3.0, 1e30, -1e-30, float("nan"), float("inf")]


# (program, seeds) for batch rows: one that is stacked, one that runs row by row
BATCH = [("a = x * y; b = a + x", [np.ones(2)]), ("b = (x * y).sum()", [])]


def batch_rows(text: str, choices: bytes) -> None:
    """The text's lines as batch rows: each line gets what it gets as the only row."""
    source, seeds = BATCH[choices[1] % 2 if len(choices) > 1 else 0]
    program, lines = parse(source), text.split("\n")[:40]
    gradcalc.analysis.batch.PIECE = 8 + (choices[2] if len(choices) > 2 else 0)
    together = list(run_batch(program, lines, seeds=seeds))
    alone = []
    for number, line in enumerate(lines, 1):
        for result in run_batch(program, [line], seeds=seeds):
            alone.append(result._replace(line=number, error=result.error and result.error.replace(
                "line 1:", f"line {number}:", 1)))
    assert together == alone, (together, alone)


def TestOneInput(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    choices = fdp.ConsumeBytes(4)
    text = fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes())
    batch_rows(text, choices)
    for parse_values in (lambda t: parse_value(t, "--x"), lambda t: parse_json_values(t, "--values")):
        try:  # the same text as a value, and as a JSON object of values
            parse_values(text)
        except GradcalcError:
            pass
    try:
        program = parse(text)
    except GradcalcError:
        return
    values = {}
    for i, name in enumerate(find_inputs(program)):
        pick = choices[i % len(choices)] if choices else 0
        shape = SHAPES[pick % len(SHAPES)]
        count = int(np.prod(shape))
        values[name] = np.array([NUMBERS[(pick + k) % len(NUMBERS)] for k in range(count)]).reshape(shape)
    dtype = "float64" if choices[:1] == b"\x01" else "float32"
    try:
        evaluation = evaluate(program, values, dtype=dtype)
    except GradcalcError:
        return
    render_torch(evaluation)
    evaluation_json(evaluation)
    render_csv(evaluation)


SEEDS = [
    "a = x + 2*y; b = a + z/2",
    "b = (tanh(sin(x)*exp(y/10))*z + sqrt(abs(y))).mean()",
    "a = x @ w; b = (relu(a) ** 2 + softplus(a) / (1 + erf(a))).sum()",
    "b = atan2(x, y) * clamp(x, -1, 1) + maximum(x, y) - prod(x) * norm(y); b.retain_grad(); c = b.sum()",
    "a = x.detach(); b = a * y\nc = (b - x).max()",
    "b = x ** y ** 2 - -x; c = dot(b, y) / minimum(x, y).min()",
    '{"x": [1, 2], "y": 3}\n{"x": [-0.0, 1e-7], "y": 0.0}\n\n{"y": -0.0, "x": [2, 1e20]}\n{"x": [1, "nan"], "y": 1}',
    '{"x": [1, 2], "y": 1}, {"x": [3, 4]\n"y": 2}\n{"x":[1,2],"y":1}\r\n{"x": [1, 2], "y": [1\n2]}',
]


def write_corpus(directory: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from test_hostile import PROGRAMS, VALUE_CASES

    directory.mkdir(parents=True, exist_ok=True)
    programs = SEEDS + [case[1] for case in PROGRAMS] + [case[1] for case in VALUE_CASES]
    for i, program in enumerate(dict.fromkeys(programs)):
        (directory / f"seed-{i:03d}").write_bytes(b"\x00\x01\x02\x03" + program.encode("utf-8", "surrogatepass"))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-corpus"]:
        write_corpus(Path(__file__).parent / "corpus")
    else:
        atheris.Setup(sys.argv, TestOneInput)
        atheris.Fuzz()
