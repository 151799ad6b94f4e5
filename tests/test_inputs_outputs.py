"""Values from NumPy files and the csv report."""

import csv
import io

import numpy as np
from typer.testing import CliRunner

from gradcalc.cli.commands import app


def run(*args, input=None):
    return CliRunner().invoke(app, list(args), input=input)


def test_npz_values_of_a_million_elements(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "v.npz"
    x, y = rng.standard_normal(10**6), rng.standard_normal(10**6)
    np.savez(path, x=x.astype(np.float32), y=y.astype(np.float32))
    result = run("eval", "b = (x * y).mean()", "--values", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    import json

    doc = json.loads(result.stdout)
    grads = {t["name"]: t["grad"] for t in doc["tensors"]}
    np.testing.assert_allclose(grads["x"], y.astype(np.float32) / 10**6, rtol=1e-6)


def test_one_large_input_from_npy(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.array([2.0, 1.0]))
    result = run("eval", "b = x * 2", "--x", f"@{path}", "--seed", "1,1", "--format", "torch")
    assert result.stdout == "tensor([2., 1.]) tensor([2., 2.])\n"
    result = run("eval", "b = x * 2", "--var", f"x=@{path}", "--seed", "1,1", "--format", "torch")
    assert result.stdout == "tensor([2., 1.]) tensor([2., 2.])\n"


def test_numpy_files_are_never_unpickled(tmp_path):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = run("eval", "b = x * 2", "--x", f"@{path}", "--seed", "1")
    assert result.exit_code == 2 and "cannot read NumPy file" in result.stderr


def test_bad_npz_entries_name_the_input(tmp_path):
    path = tmp_path / "v.npz"
    np.savez(path, x=np.array(["a", "b"]))
    result = run("eval", "b = x.sum()", "--values", str(path))
    assert result.exit_code == 2 and "input 'x'" in result.stderr


def test_csv_has_a_row_per_element():
    result = run("eval", "a = x + 2*y; b = (a*s).sum()", "--x", "2,1", "--y", "[1,3]", "--s", "0.1",
                 "--format", "csv")
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["name", "index", "data", "grad"]
    assert ["x", "0", "2.0", "0.1"] in rows and ["s", "", "0.1", "11.0"] in rows
    assert ["a", "1", "7.0", ""] in rows
    assert len(rows) == 1 + 2 + 2 + 1 + 2 + 1
