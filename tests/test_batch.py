"""`eval --batch`: one document per good row, bad rows on stderr with their line numbers."""

import json

from typer.testing import CliRunner

from gradcalc.cli import app

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
