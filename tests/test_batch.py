"""`eval --batch`: one document per good row, bad rows on stderr with their line numbers."""

import json

from typer.testing import CliRunner

from gradcalc.cli.commands import app

PROGRAM = "a = x + 2*y; b = (a + z/2).sum()"


def run(*args, input=None):
    return CliRunner().invoke(app, ["eval", PROGRAM, *args], input=input)


ROWS = "\n".join([
    '{"x": [2, 1], "y": [1, 3], "z": [5, 2]}',
    '{"x": [1, 1], "y": [0, 0]}',
    "",
    '{"x": 1, "y": 2, "z": 3}',
    '{"x": [1, 2, 3], "y": [1, 2], "z": 1}',
    "not json",
]) + "\n"


def test_good_rows_are_kept_and_bad_rows_reported(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(ROWS)
    result = run("--batch", str(path))
    assert result.exit_code == 2
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 2
    x = documents[0]["tensors"][0]
    assert x["name"] == "x" and x["grad"] == [1.0, 1.0]
    assert documents[1]["tensors"][2]["grad"] == 0.5
    errors = result.stderr.splitlines()
    assert [e.split(":")[1].strip() for e in errors if e.startswith("error:")] == ["line 2", "line 5", "line 6"]


def test_rows_from_stdin_and_a_clean_exit():
    result = run("--batch", "-", input='{"x": [2, 1], "y": [1, 3], "z": [5, 2]}\n' * 3)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3


def test_batch_takes_no_value_options():
    result = run("--batch", "-", "--x", "1", input="{}\n")
    assert result.exit_code == 2 and "from its rows" in result.stderr


# -- stacked rows give each row exactly what it gives alone --------------------------------

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from gradcalc.analysis.batch import _elementwise_only, run_batch  # noqa: E402
from gradcalc.api import evaluate, parse  # noqa: E402
from gradcalc.engine.ops import FUNCTIONS, Kind  # noqa: E402
from gradcalc.report.formats import json_document, symbolic_partials  # noqa: E402

# (rows whose results depend on torch's vector lanes are never stacked: batch runs them row by row)
UNARY = sorted(n for n, r in FUNCTIONS.items() if r.kind is Kind.ELEMENTWISE and r.arity == 1 and not r.layout_dependent)
STACKED_PROGRAMS = [
    "a = x + 2*y; b = a + z/2",
    "a = x * y - 2 / z; a.retain_grad(); b = a ** 2 + pow(z, x) - (y ** x)",
    "a = (x + y).detach(); b = a * z + clamp(x, -0.5, 0.5) * atan2(y, z)",
    " + ".join(f"{name}(x)" for name in UNARY).join(["b = ", " * z + y"]),
]


def rows(rng, n, nan):
    out = []
    for _ in range(n):
        out.append({"x": rng.uniform(-0.9, 0.9, size=(2, 3)).round(3).tolist(),
                    "y": float(np.round(rng.uniform(0.1, 2), 3)),
                    "z": rng.uniform(0.5, 2, size=(3,)).round(3).tolist()})
    if nan:  # a "nan" string: the rows take the grouped path, not the uniform one
        out[1]["x"][0][0] = float("nan")
    else:  # plain numbers only, some results infinite or nan all the same
        out[2]["x"][0][0] = out[3]["z"][1] = 0
        out[4]["x"][1][2] = 1e30
    return out


@pytest.mark.parametrize("nan", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("source", STACKED_PROGRAMS)
def test_stacked_rows_match_rows_alone(source, dtype, nan):
    program = parse(source)
    assert _elementwise_only(program)
    data = rows(np.random.default_rng(len(source)), 7, nan)
    lines = [json.dumps(r).replace("NaN", '"nan"') for r in data]
    seeds = [np.full((2, 3), 0.5)]
    batched = [r.document for r in run_batch(program, lines, seeds=seeds, no_grad=["y"], dtype=dtype)]
    for line, got in zip(lines, batched):
        from gradcalc.lang.values import parse_json_values

        alone = evaluate(program, parse_json_values(line, "row"), seeds=seeds, no_grad=["y"], dtype=dtype)
        want = json.dumps(json_document(alone, partials=symbolic_partials(alone)), allow_nan=False,
                          ensure_ascii=False)
        assert got == want


def test_programs_with_reductions_are_not_stacked():
    assert not _elementwise_only(parse("b = (x * y).sum()"))
    assert not _elementwise_only(parse("b = maximum(x, y)"))
    assert not _elementwise_only(parse("b = x @ y"))


def test_rows_that_are_not_plain_numbers_take_the_checked_path():
    text = "\n".join(['{"x": [1, true], "y": 1}', '{"x": [1, 2], "y": 1}', '{"x": [1, "nan"], "y": 1}',
                      '{"x": [[1], 2], "y": 1}', '{"x": [1, 2], "y": 2}']) + "\n"
    result = CliRunner().invoke(app, ["eval", "b = x*y", "--seed", "1,1", "--batch", "-"], input=text)
    assert result.exit_code == 2
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["tensors"][0]["data"] for d in documents] == [[1.0, 2.0], [1.0, "nan"], [1.0, 2.0]]
    assert [d["tensors"][0]["grad"] for d in documents] == [[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: line 1: input 'x': true is not a number",
                      "error: line 4: input 'x': ragged nested list (sub-lists of different lengths at depth 2)"]


# -- a progress display on a terminal never takes the documents off stdout -----------------

def test_batch_with_a_terminal_on_stderr_keeps_every_document_on_stdout():
    rows_text = '{"x": [2, 1], "y": [1, 3], "z": [5, 2]}\n' * 3000 + '{"x": [1]}\n'
    from terminal import run_with_terminal_stderr

    proc, terminal = run_with_terminal_stderr(["eval", PROGRAM, "--batch", "-"], rows_text)
    assert proc.returncode == 2
    assert len(proc.stdout.splitlines()) == 3000
    assert "line 3001: no value for input" in terminal and "error:" in terminal and "rows" in terminal


def test_batch_numbers_are_written_as_json_dumps_writes_them():
    """orjson's digits stand in for repr's in the stacked rows: the same text for every double
    json.dumps writes without an exponent; the others (and nan, inf) go the dict path."""
    from gradcalc.analysis.batch import _fill, _plain_numbers

    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**64, 200_000, dtype=np.uint64).view(np.float64)
    float32_digits = rng.integers(0, 2**32, 100_000, dtype=np.uint32).view(np.float32).astype(str).astype(np.float64)
    edges = np.array([0.0, -0.0, 1e-4, -1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0, 1e15, 123456789.0,
                      0.1, 1 / 3, 2.5, float("nan"), float("inf"), -float("inf"), 5e-324, 1.7976931348623157e308])
    numbers = np.concatenate([bits, float32_digits, edges, rng.uniform(-5, 5, 100_000).round(3)])
    numbers = numbers[: len(numbers) // 2 * 2].reshape(-1, 2)
    plain = _plain_numbers(numbers)
    documents = _fill(['{"v": ', ', "%s": 1}'], [numbers[plain]], int(plain.sum())).split("\n")
    assert documents.pop() == ""
    assert documents == [json.dumps({"v": row, "%s": 1}) for row in numbers[plain].tolist()]
    for row in numbers[~plain].tolist():
        assert not all(np.isfinite(row)) or any("e" in repr(v) for v in row)
    assert plain.sum() > len(numbers) // 10


def test_batch_float32_numbers_are_written_with_their_shortest_digits():
    """In stacked float32 rows orjson writes each float32 itself: the digits must be those the
    single documents write (NumPy's shortest digits, read as a double, written by json.dumps)."""
    from gradcalc.analysis.batch import _fill, _plain_numbers

    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**32, 400_000, dtype=np.uint32).view(np.float32)
    edges = np.array([0.0, -0.0, 1e-4, 1e12, 999999.94, 0.1, 1 / 3, 16777217.0, 3.4e38, 1e-45], dtype=np.float32)
    neighbours = np.concatenate([np.nextafter(edges, np.float32(np.inf)), np.nextafter(edges, np.float32(-np.inf))])
    numbers = np.concatenate([bits, edges, neighbours, rng.uniform(-5, 5, 100_000).astype(np.float32)])
    numbers = numbers[: len(numbers) // 2 * 2].reshape(-1, 2)
    plain = _plain_numbers(numbers)
    documents = _fill(["", ""], [numbers[plain]], int(plain.sum())).split("\n")[:-1]
    assert documents == [json.dumps(row) for row in numbers[plain].astype(str).astype(np.float64).tolist()]
    assert plain.sum() > 50_000


def test_a_chunk_of_rows_is_stacked_only_when_every_row_is_like_the_first():
    from gradcalc.analysis.batch import _column

    assert _column([[1, 2], [3, 4.5]]).tolist() == [[1.0, 2.0], [3.0, 4.5]]
    assert _column([1, 2.5, -3]).tolist() == [1.0, 2.5, -3.0]
    assert _column([[[1], [2]], [[3], [4]]]).shape == (2, 2, 1)
    assert _column([[], []]).shape == (2, 0)
    assert _column([[1, 2], [3]]) is None
    for unlike in ([[1, 2], [[3], 4]], [1, [2]], [[1], 2], [[[1]], [2]]):
        with pytest.raises((ValueError, TypeError)):  # the chunk then takes the checked path
            _column(unlike)


# -- rows read a piece of text at a time: each line is one row, wherever the pieces end ------

def test_lines_that_are_not_one_object_each_are_bad_rows_even_when_together_they_parse():
    """'{"x": [1, 2]}, {"x": [3' and '4]}' are two bad lines, though joined by a comma they read
    as two good objects."""
    text = '{"x": [1, 2]}, {"x": [3\n4]}\n{"x": [5, 6]}\n'
    result = CliRunner().invoke(app, ["eval", "b = x*2", "--seed", "1,1", "--batch", "-"], input=text)
    assert result.exit_code == 2
    assert [json.loads(line)["tensors"][0]["data"] for line in result.stdout.splitlines()] == [[5.0, 6.0]]
    errors = [line.split(":")[1].strip() for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["line 1", "line 2"]


TRICKY_LINES = [
    '{"x": [1, 2], "y": 0.0}', '{"x": [3, 4], "y": -0.0}',        # grads of x: 0.0 and -0.0
    '{"y": 2, "x": [5, 6]}',                                        # the names in another order
    '', '   ', '{"x": [1, 2], "y": 1}\r', ' {"x": [1, 2], "y": 1}',  # blank, CR, leading space
    '{"x": [1, 2], "y": 1}, {"x": [1, 2], "y": 1}', '{"x": [1, 2], "y": 1, "z": 1}',
    '{"x": [1, 2], "y": 1e400}', '{"x": [1, 2], "y": 1e-7}', '{"x": [1, 2], "y": 12345678901234567890123}',
    '{"x": [1, 2], "y": true}', '{"x": [1, 2], "y": "nan"}', '{"x": [1, 2]}', '{"x": [1, 2, 3], "y": 1}',
    '{"{": 1, "x": [1, 2], "y": 1}', '[1, 2]', '{}', '{"x": [1, 2], "y": [1, 1]}',
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_row_of_a_batch_gives_what_it_gives_alone(dtype):
    """Rows with the same grad in every row but for a sign of zero, names in another order,
    blank lines, lines that are not one object, and rows that are bad in every way, mixed with
    plain rows: each line's result is what the line gives as the only row."""
    program = parse("a = x * y; b = a + x")
    rng = np.random.default_rng(3)
    plain = [json.dumps({"x": rng.uniform(-2, 2, 2).round(2).tolist(), "y": round(float(rng.uniform(-2, 2)), 2)})
             for _ in range(40)]
    lines = plain[:20] + TRICKY_LINES + plain[20:]
    options = {"seeds": [np.ones(2)], "dtype": dtype}
    together = list(run_batch(program, lines, **options))
    alone = []
    for number, line in enumerate(lines, 1):
        for result in run_batch(program, [line], **options):
            alone.append(result._replace(line=number, error=result.error and result.error.replace(
                "line 1:", f"line {number}:", 1)))
    assert together == alone
    assert sum(r.document is not None for r in together) > 40


def test_rows_read_in_small_blocks_and_pieces_give_the_same_results(monkeypatch):
    import gradcalc.analysis.batch
    import gradcalc.analysis.batch_input

    rng = np.random.default_rng(4)
    lines = [json.dumps({"x": rng.uniform(-2, 2, 2).round(2).tolist(), "y": round(float(rng.uniform(-2, 2)), 2)})
             for _ in range(300)]
    lines[7], lines[150], lines[299] = "", '{"x": [1, 2]}', "not json"
    text = "\n".join(lines) + "\n"
    args = ["eval", "a = x * y; b = a + x", "--seed", "1,1", "--batch", "-"]
    whole = CliRunner().invoke(app, args, input=text)
    monkeypatch.setattr(gradcalc.analysis.batch_input, "BLOCK_CHARS", 100)
    monkeypatch.setattr(gradcalc.analysis.batch, "PIECE", 250)
    small = CliRunner().invoke(app, args, input=text)
    assert whole.exit_code == small.exit_code == 2
    assert whole.stdout == small.stdout and len(whole.stdout.splitlines()) == 297
    assert whole.stderr == small.stderr
    assert [e.split(":")[1].strip() for e in small.stderr.splitlines() if e.startswith("error:")] == \
        ["line 151", "line 300"]


@pytest.mark.parametrize("zeros", [["0.0", "-0.0"], ["0.0", "0.0"], ["-0.0", "-0.0"]])
def test_a_grad_alike_in_every_row_but_its_zero_sign_is_written_row_by_row(zeros):
    """The stacked rows' template holds what is the same, bit for bit, in every row: a grad of
    0.0 in one row and -0.0 in another stays in each row's own text."""
    program = parse("b = x * y")
    lines = [f'{{"x": [1, 2], "y": {zeros[i % 2]}}}' for i in range(6)]
    together = [r.document for r in run_batch(program, lines, seeds=[np.ones(2)])]
    alone = [next(run_batch(program, [line], seeds=[np.ones(2)])).document for line in lines]
    assert together == alone
    assert [json.loads(d)["tensors"][0]["grad"][0] for d in together][:2] == [float(z) for z in zeros]
    assert json.loads(together[1])["tensors"][0]["grad"] == [float(zeros[1])] * 2


def test_a_row_that_is_not_utf8_is_a_bad_row_and_the_others_go_on(tmp_path):
    text = b'{"x": [1, 2]}\n{"x": [\xff, 2]}\n{"x": [3, 4]}\n{"x": [5, 6], "\xc3\xa9": 1}\n'
    path = tmp_path / "rows.jsonl"
    path.write_bytes(text)
    for source, stdin in ((str(path), None), ("-", text)):
        result = CliRunner().invoke(app, ["eval", "b = x*2", "--seed", "1,1", "--batch", source], input=stdin)
        assert result.exit_code == 2
        assert [json.loads(line)["tensors"][0]["data"] for line in result.stdout.splitlines()] == [[1.0, 2.0],
                                                                                                   [3.0, 4.0]]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert errors[0] == "error: line 2: not valid UTF-8"
        assert errors[1].startswith("error: line 4: ") and "é" in errors[1]
