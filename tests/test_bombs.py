"""Bombs end fast: each gives an answer (float semantics: overflow is inf, as in torch) or a
clear limit error, never a hang, a MemoryError or a RecursionError; legitimate large
programs keep working.

The tests check the outcomes (with a generous hang guard, not a speed target). Their times,
each as a whole `gradcalc eval` process with the default table report, are measured by hand:

    python tests/test_bombs.py        # prints a table of seconds per bomb (target: under 5 s)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

HANG_GUARD = 60  # seconds: a hang, not a slow machine


def _program(text: str, *extra: str):
    """The program from a file (argv cannot hold it all), then the other arguments."""
    return lambda tmp: ["@" + str(_write(tmp, "program.txt", text)), *extra]


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _huge_npy(tmp: Path) -> list[str]:
    """A .npy whose header declares 10^9 float64 elements (a sparse 8 GB file)."""
    from numpy.lib import format as npy

    path = tmp / "huge.npy"
    with path.open("wb") as f:
        npy.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
        f.truncate(f.tell() + 8 * 10**9)
    return ["b = x.sum()", "--x", f"@{path}"]


def _broadcast(tmp: Path) -> list[str]:
    import numpy as np

    np.save(tmp / "row.npy", np.ones(100_000))
    np.save(tmp / "column.npy", np.ones((100_000, 1)))
    return ["b = (x * y).sum()", "--x", f"@{tmp / 'row.npy'}", "--y", f"@{tmp / 'column.npy'}"]


def _matmul(tmp: Path) -> list[str]:
    import numpy as np

    np.save(tmp / "column.npy", np.ones((100_000, 1)))
    np.save(tmp / "row.npy", np.ones((1, 100_000)))
    return ["b = (y @ x).sum()", "--x", f"@{tmp / 'row.npy'}", "--y", f"@{tmp / 'column.npy'}"]


CHAIN = "\n".join(["a0 = x"] + [f"a{i} = sin(a{i - 1})*x + a{i - 1}*y" for i in range(1, 10_001)]
                  + ["c = a10000.sum()"])

# (id, arguments after `eval` (or a function of a temporary directory giving them),
#  expected exit code, a substring of stderr (exit 2) or of the json (exit 0))
BOMBS = [
    ("2**10**10", ["b = x * 2**10**10", "--x", "1"], 0, '"data": "inf"'),
    ("x**(10**100)", ["b = x**(10**100)", "--x", "2"], 0, '"grad": "inf"'),
    ("5,000-digit literal", ["b = x * " + "9" * 5000, "--x", "1"], 0, '"data": "inf"'),
    ("5,000 nested parentheses", ["b = " + "(" * 5000 + "x" + ")" * 5000, "--x", "1"], 2, "nested too deeply"),
    ("50,000 unary minus signs", _program("b = " + "-" * 50_000 + "x", "--x", "2"),
     0, '"data": 2.0'),
    ("x**x**... 3,000 deep", _program("b = " + "**".join(["x"] * 3000), "--x", "1.0001"),
     0, '"name": "b"'),
    ("100,000-term product", _program("b = " + "*".join(["x"] * 100_000), "--x", "1"),
     0, '"grad": 100000.0'),
    ("10 MB program", _program("b = x\n" * 2_000_000, "--x", "1"),
     2, "longer than 1,000,000 characters"),
    ("200,000 operations", _program("b = " + "+".join(["x"] * 200_000), "--x", "1"),
     2, "more than 150,000 operations"),
    ("10^9-element value", _huge_npy, 2, "1,000,000,000 elements"),
    ("broadcast to 10^10 elements", _broadcast, 2, "the result would have 10,000,000,000 elements"),
    ("matmul to 10^10 elements", _matmul, 2, "the result would have"),
    ("deeply nested constant", ["b = x * " + "-" * 3000 + "2", "--x", "1"], 0, '"data": 2.0'),
    ("10,000-term sum", _program("b = " + "+".join(["x"] * 10_000), "--x", "1"),
     0, '"grad": 10000.0'),
    ("10,000-statement chain", _program(CHAIN, "--x", "0.5", "--y", "0.9"),
     0, '"name": "a10000"'),
]


def arguments(bomb, tmp: Path) -> list[str]:
    args = bomb[1]
    return args(tmp) if callable(args) else list(args)


@pytest.mark.parametrize("bomb", BOMBS, ids=[b[0] for b in BOMBS])
def test_bomb_ends_with_an_answer_or_a_limit(bomb, tmp_path):
    from typer.testing import CliRunner

    from gradcalc.cli.commands import app

    _, _, code, expected = bomb
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["eval", *arguments(bomb, tmp_path), "--format", "json"])
    assert time.perf_counter() - start < HANG_GUARD
    assert result.exit_code == code, (result.stdout[-500:], result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    if code == 0:
        json.loads(result.stdout)
        assert expected in result.stdout.replace("\n", " ")
    else:
        assert result.stderr.startswith("error: ") and expected in result.stderr
        assert result.stdout == ""


if __name__ == "__main__":  # the by-hand timing: a whole process per bomb, default report
    import tempfile

    print("| bomb | exit | seconds |\n| --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for bomb in BOMBS:
            args = arguments(bomb, Path(tmp))
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "gradcalc", "eval", *args], capture_output=True,
                                  timeout=HANG_GUARD)
            print(f"| {bomb[0]} | {proc.returncode} | {time.perf_counter() - start:.2f} |")
