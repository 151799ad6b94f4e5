"""A batch shared by a pool of worker processes (gradcalc.analysis.batch.run_pieces): the same
bytes as one process.

Most of these run gradcalc as a whole process, as a user does; the last ones call run_pieces
in this process (its workers are forks of pytest's process: they only run pieces). Pieces are
made small (gradcalc.analysis.batch.PIECE) so that a small file has many, and every worker has
several."""

import json
import multiprocessing
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from gradcalc.analysis import batch
from gradcalc.api import parse

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


def gradcalc(tmp_path, args, piece=2000, env=None, stdout=None, stdin=None):
    out = tmp_path / "stdout"
    with open(out, "wb") as f:
        proc = subprocess.run([sys.executable, "-c", LAUNCH, *args], stdout=stdout or f, stderr=subprocess.PIPE,
                              stdin=stdin,
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


def test_shared_batch_from_stdin_writes_the_bytes_of_one_process(tmp_path):
    path = rows_file(tmp_path)
    args = ["eval", "a = x * y; b = a + x", "--seed", "1,1", "--batch", "-"]
    with open(path, "rb") as rows:
        alone = gradcalc(tmp_path, [*args, "--jobs", "1"], stdin=rows)
    with open(path, "rb") as rows:
        shared = gradcalc(tmp_path, [*args, "--jobs", "3"], stdin=rows)
    assert shared == alone and alone[0] == 2 and alone[1].count(b"\n") > 2000


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
    assert code == 70  # a bug (EX_SOFTWARE), not bad input
    stopped = re.fullmatch(r"error: internal error in a batch worker, at lines (\d+)-\d+: RuntimeError: boom\n"
                           r"hint: run the batch in one process: --jobs 1\n", stderr)
    assert stopped, stderr  # reported once, and nothing else
    written = stdout.decode().splitlines()
    assert len(written) == int(stopped[1]) - 1 and line <= int(stopped[1]) < line + 100  # the rows before it
    assert written == gradcalc(tmp_path, [*args, "--jobs", "1"])[1].decode().splitlines()[:len(written)]


def test_jobs_is_for_batch_only_and_not_negative(tmp_path):
    code, _, stderr = gradcalc(tmp_path, ["eval", "b = x * 2", "--x", "1", "--jobs", "2"])
    assert code == 2 and stderr.startswith("error: --jobs is for --batch")
    code, _, stderr = gradcalc(tmp_path, ["eval", "b = x * 2", "--batch", "-", "--jobs", "-1"])
    assert code == 2 and stderr.startswith("error:") and "Traceback" not in stderr


# run_pieces itself, in this process: the chunks, in order, whatever the workers.

PROGRAM = "a = x * y; b = a + x"


def blocks(tmp_path, **kwargs):
    return [rows_file(tmp_path, **kwargs).read_text().rstrip("\n")]


def chunks_text(chunks) -> tuple:
    chunks = list(chunks)
    return ("".join(c.text for c in chunks), [e for c in chunks for e in c.errors], [n for c in chunks for n in c.lines])


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(batch, "PIECE", 2000)


def test_run_pieces_gives_the_chunks_of_one_process_in_order(tmp_path, small_pieces):
    job = batch.batch_job(parse(PROGRAM), seeds=[np.ones(2)])
    alone = chunks_text(batch.run_pieces(job, blocks(tmp_path), 1))
    assert alone[2] == sorted(alone[2]) and sum(e is not None for e in alone[1]) == len(range(5, 3000, 397))
    for workers in (2, 3):
        assert chunks_text(batch.run_pieces(job, blocks(tmp_path), workers)) == alone


def test_run_pieces_stops_its_workers_when_closed_early(tmp_path, small_pieces):
    job = batch.batch_job(parse(PROGRAM), seeds=[np.ones(2)])
    chunks = batch.run_pieces(job, blocks(tmp_path, n=20_000, bad=False), 2)
    for _ in zip(range(10), chunks):
        pass
    assert len(multiprocessing.active_children()) == 2
    chunks.close()  # as the command line does when its output is closed (contextlib.closing)
    assert multiprocessing.active_children() == []


def test_run_pieces_reports_a_failing_worker_once_after_the_pieces_before_it(tmp_path, small_pieces, monkeypatch):
    run, main_pid = batch._Job.run, os.getpid()

    def failing(self, first, count, text):
        if first >= 1800 and os.getpid() != main_pid:
            raise RuntimeError("boom")
        return run(self, first, count, text)

    monkeypatch.setattr(batch._Job, "run", failing)
    job = batch.batch_job(parse(PROGRAM), seeds=[np.ones(2)])
    got = []
    with pytest.raises(batch.WorkerStopped, match=r"internal error in a batch worker, at lines (\d+)-\d+: "
                                                   r"RuntimeError: boom") as stopped:
        for chunk in batch.run_pieces(job, blocks(tmp_path, bad=False), 2):
            got.extend(chunk.lines)
    first_failing = int(re.search(r"lines (\d+)", stopped.value.message)[1])
    assert got == list(range(1, first_failing)) and 1800 <= first_failing < 1900
    assert stopped.value.hint == "run the batch in one process: --jobs 1"
