"""A batch file shared by forked workers (gradcalc.analysis.turns): the same bytes as one process.

These run gradcalc as a whole process, its stdout and stderr real files: the workers write to
the descriptors themselves (under CliRunner there is one process only). Pieces are made small
(gradcalc.analysis.batch.PIECE) so that a small file has many, and every worker has several."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")

# gradcalc's command line with small pieces, and optionally a piece that fails in a worker.
LAUNCH = """
import os, sys
import gradcalc.analysis.batch
gradcalc.analysis.batch.PIECE = int(os.environ["PIECE"])
if os.environ.get("FAIL_LINE"):  # a bug in a worker: its first piece from that line on raises
    run, main_pid = gradcalc.analysis.batch._Job.run, os.getpid()
    def failing(self, first, count, text):
        if first >= int(os.environ["FAIL_LINE"]) and os.getpid() != main_pid:
            raise RuntimeError("boom")
        return run(self, first, count, text)
    gradcalc.analysis.batch._Job.run = failing
from gradcalc.cli.commands import main
sys.exit(main(sys.argv[1:]))
"""


def gradcalc(tmp_path, args, piece=2000, env=None, stdout=None):
    out = tmp_path / "stdout"
    with open(out, "wb") as f:
        proc = subprocess.run([sys.executable, "-c", LAUNCH, *args], stdout=stdout or f, stderr=subprocess.PIPE,
                              env={**os.environ, "PIECE": str(piece), "GRADCALC_NO_CACHE": "1", **(env or {})},
                              timeout=120)
    return proc.returncode, out.read_bytes(), proc.stderr.decode()


def rows_file(tmp_path, n=3000, bad=True):
    rng = np.random.default_rng(11)
    lines = [json.dumps({"x": rng.uniform(-2, 2, 2).round(3).tolist(), "y": round(float(rng.uniform(-2, 2)), 3)})
             for _ in range(n)]
    if bad:  # bad rows and blank lines here and there, so in the pieces of different workers
        for i in range(5, n, 397):
            lines[i] = '{"x": [1, 2]}' if i % 2 else "not json"
        for i in range(17, n, 811):
            lines[i] = ""
        lines[100] = '{"x": [1, 2], "y": "nan"}'   # a row that takes the checked path
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("program", ["a = x * y; b = a + x", "b = (x * y).sum() + y"])
def test_shared_batch_writes_the_bytes_of_one_process(tmp_path, program):
    n = 1500 if "sum" in program else 3000
    path = rows_file(tmp_path, n=n)
    seed = [] if "sum" in program else ["--seed", "1,1"]
    alone = gradcalc(tmp_path, ["eval", program, *seed, "--batch", str(path), "--jobs", "1"])
    assert alone[0] == 2 and alone[1].count(b"\n") > 1000
    assert alone[2].count("error: line") == len(range(5, n, 397))
    for jobs in ("2", "3"):
        shared = gradcalc(tmp_path, ["eval", program, *seed, "--batch", str(path), "--jobs", jobs])
        assert shared == alone


def test_shared_batch_of_good_rows_exits_0_and_of_one_piece_does_not_fork(tmp_path):
    path = rows_file(tmp_path, bad=False)
    args = ["eval", "a = x * y; b = a + x", "--seed", "1,1", "--batch", str(path)]
    alone = gradcalc(tmp_path, [*args, "--jobs", "1"])
    shared = gradcalc(tmp_path, [*args, "--jobs", "4"])
    assert shared == alone and alone[0] == 0 and alone[2] == ""
    assert gradcalc(tmp_path, [*args, "--jobs", "2"], piece=10**8) == alone


def test_a_closed_output_ends_every_worker_quietly(tmp_path):
    path = rows_file(tmp_path, n=20_000, bad=False)
    args = [sys.executable, "-c", LAUNCH, "eval", "a = x * y; b = a + x", "--seed", "1,1", "--batch", str(path)]
    for jobs in ("1", "2"):
        proc = subprocess.Popen([*args, "--jobs", jobs], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "PIECE": "2000", "GRADCALC_NO_CACHE": "1"})
        proc.stdout.read(5000)
        proc.stdout.close()  # as `| head -c 5000` does
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 1, (jobs, stderr)
        assert b"Traceback" not in stderr and b"error" not in stderr


@pytest.mark.parametrize("jobs", ["2", "3"])
@pytest.mark.parametrize("line", [1800, 2900])
def test_a_worker_that_fails_is_reported_and_nothing_hangs(tmp_path, line, jobs):
    path = rows_file(tmp_path, bad=False)
    args = ["eval", "a = x * y; b = a + x", "--seed", "1,1", "--batch", str(path)]
    code, stdout, stderr = gradcalc(tmp_path, [*args, "--jobs", jobs], env={"FAIL_LINE": str(line)})
    assert code == 2
    stopped = re.search(r"error: internal error in batch worker (\d): RuntimeError: boom", stderr)
    assert stopped, stderr
    assert f"error: batch worker {stopped[1]} stopped (exit status 70)" in stderr and "--jobs 1" in stderr
    assert "Traceback" not in stderr
    written = stdout.decode().splitlines()
    assert line <= len(written) < line + 100  # the rows before the failing piece, in order
    assert written == gradcalc(tmp_path, [*args, "--jobs", "1"])[1].decode().splitlines()[:len(written)]


def test_jobs_is_for_batch_only_and_not_negative(tmp_path):
    code, _, stderr = gradcalc(tmp_path, ["eval", "b = x * 2", "--x", "1", "--jobs", "2"])
    assert code == 2 and stderr.startswith("error: --jobs is for --batch")
    code, _, stderr = gradcalc(tmp_path, ["eval", "b = x * 2", "--batch", "-", "--jobs", "-1"])
    assert code == 2 and stderr.startswith("error:") and "Traceback" not in stderr
