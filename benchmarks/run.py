"""gradcalc against the equivalent PyTorch script, side by side, in one run (run by hand, not in CI).

    python benchmarks/run.py [--quick] [--repeat N] [--only CASE ...] [--out FILE.md]

Every measurement is a whole, fresh process: gradcalc runs as `sys.executable -m gradcalc ...`
and PyTorch as `sys.executable script.py`, both with the interpreter running this script (so
use the venv's python, e.g. `.venv/bin/python benchmarks/run.py`). For each case the two are
alternated (gradcalc, PyTorch, gradcalc, PyTorch, ...) N times (default 5; --quick: 3), after
one untimed warm-up of each, and the table reports:

- the median wall time of each (time.perf_counter around spawning the process and reaping it);
- the ratio gradcalc/PyTorch of those medians (below 1: gradcalc is faster);
- the peak resident memory of each whole process, the largest over the N runs: the child's
  own ru_maxrss, read with os.wait4 when it is reaped (not RUSAGE_CHILDREN, whose maximum
  only ever grows);
- the target and whether this run met it.

The cases (targets are gradcalc/PyTorch ratios of the same run unless said otherwise):

1. start-up: README's reference case, `gradcalc eval "a = x + 2*y; b = a + z/2" --x 2,1
   --y 1,3 --z 5,2 --seed 1,1 --retain a --format torch`, against the SPEC's PyTorch program.
   "first call (cold cache)" gives each gradcalc run a fresh, empty XDG_CACHE_HOME (ratio
   <= 0.35); "repeated call" reuses one XDG_CACHE_HOME after a warm-up call (ratio <= 0.15).
   Both: gradcalc's peak memory <= 100 MB, and its output the same bytes as PyTorch's.
2. size: 10**6-element float32 x, y, z (--quick: 10**5) in one .npz, `--values FILE.npz
   --format torch`, a program ending in `.mean()`: the reference sums and a transcendental
   one; PyTorch loads the same .npz with numpy. Ratio <= 1.0.
3. depth: a chain of 10**2, 10**3, 10**4 statements (--quick: 10**2, 10**3)
   `a_k = sin(a_{k-1})*x + a_{k-1}*y; c = a_n.sum()`, passed as `@FILE`, against the same
   PyTorch loop. gradcalc at 10**4 under 10 s; seconds per 1000 statements show the growth.
4. batch: `--batch FILE.jsonl` of 100,000 rows (--quick: 20,000) of the reference program
   against a PyTorch loop over the rows (capped at 20,000 rows; --quick: 5,000). gradcalc
   >= 100,000 rows/s, counted over the whole process, start-up included. gradcalc runs with its
   default --jobs (the rows computed by a pool of worker processes, one per CPU, at most 4); a
   note gives the median of as many runs with --jobs 1 (one process) after the alternation.

`--only startup size depth batch` runs only the cases named (e.g. `--only batch`).

Outputs are compared once per case: start-up must match byte for byte (a mismatch is
reported, the case is not met, and the script exits 1 after printing the table); the other
cases print a warning with the first differing line.

gradcalc's bytecode is compiled first (`python -m compileall`), as `pip install` does for an
installed package; see compile_bytecode.

All inputs, outputs and cache directories live in one temporary directory, removed at the
end. size, depth and batch run gradcalc with XDG_CACHE_HOME inside it too (warmed by the
warm-up run), so a real ~/.cache is never touched. Progress goes to stderr; the Markdown
report to stdout, and to --out FILE.md when given. Linux (ru_maxrss in KiB).
"""

from __future__ import annotations

# Keep this process small: a child's ru_maxrss starts from the resident size of the process
# that spawned it, so numpy and torch are only ever imported in children.
import argparse
import json
import os
import platform
import random
import shlex
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

# Run-to-run noise of a whole process's time on a shared machine (seconds).
NOISE_SECONDS = 0.1

REPO = Path(__file__).resolve().parent.parent

REFERENCE = "a = x + 2*y; b = a + z/2"
START_ARGS = ["--x", "2,1", "--y", "1,3", "--z", "5,2", "--seed", "1,1", "--retain", "a", "--format", "torch"]
START_TORCH = """\
import torch
x = torch.Tensor([2, 1]).requires_grad_(); y = torch.Tensor([1, 3]).requires_grad_()
z = torch.Tensor([5, 2]).requires_grad_()
a = x + y*2; a.retain_grad(); b = a + z/2; b.backward(torch.ones_like(x))
print(x.data, x.grad); print(y.data, y.grad); print(z.data, z.grad); print(a.data, a.grad)
"""

SIZE_PROGRAMS = {  # name: (gradcalc program, the same in torch)
    "reference": ("a = x + 2*y; b = a + z/2; c = b.mean()",
                  "a = x + 2*y; b = a + z/2; c = b.mean()"),
    "transcendental": ("b = tanh(sin(x)*exp(y/10))*z + sqrt(abs(y)); c = b.mean()",
                       "b = torch.tanh(torch.sin(x)*torch.exp(y/10))*z + torch.sqrt(torch.abs(y)); c = b.mean()"),
}
SIZE_TORCH = """\
import sys
import numpy as np
import torch
values = np.load(sys.argv[1])
x = torch.from_numpy(values["x"]).requires_grad_()
y = torch.from_numpy(values["y"]).requires_grad_()
z = torch.from_numpy(values["z"]).requires_grad_()
{program}
c.backward()
print(x.data, x.grad); print(y.data, y.grad); print(z.data, z.grad)
"""
MAKE_NPZ = """\
import sys
import numpy as np
rng = np.random.default_rng(0)
n = int(sys.argv[2])
np.savez(sys.argv[1], **{name: rng.uniform(0.5, 2, n).astype(np.float32) for name in "xyz"})
"""

DEPTH_X, DEPTH_Y = "0.5", "0.9"
DEPTH_TORCH = f"""\
import sys
import torch
n = int(sys.argv[1])
x = torch.tensor({DEPTH_X}).requires_grad_(); y = torch.tensor({DEPTH_Y}).requires_grad_()
a = torch.sin(x)*x + x*y
for _ in range(n - 1):
    a = torch.sin(a)*x + a*y
c = a.sum()
c.backward()
print(x.data, x.grad); print(y.data, y.grad)
"""

BATCH_TORCH = """\
import json
import sys
import torch
path, limit = sys.argv[1], int(sys.argv[2])
write = sys.stdout.write
with open(path) as rows:
    for number, line in enumerate(rows):
        if number == limit:
            break
        row = json.loads(line)
        x = torch.tensor(row["x"], requires_grad=True)
        y = torch.tensor(row["y"], requires_grad=True)
        z = torch.tensor(row["z"], requires_grad=True)
        a = x + 2*y
        b = a + z/2
        b.backward(torch.ones_like(b))
        write(json.dumps({"x": x.grad.tolist(), "y": y.grad.tolist(), "z": z.grad.tolist(),
                          "a": a.detach().tolist(), "b": b.detach().tolist()}) + "\\n")
"""

GRADCALC_TIMEOUT = 180.0   # seconds for one gradcalc process before it is killed
TORCH_TIMEOUT = 300.0
PREVIEW_BYTES = 1 << 20    # how much of a child's stdout is kept for comparisons


# ---------------------------------------------------------------------------------------------
# One child process: wall time and its own peak memory.

@dataclass
class Run:
    seconds: float
    maxrss_kb: int
    returncode: int
    timed_out: bool
    stdout: bytes       # the first PREVIEW_BYTES
    lines: int          # newlines in the whole stdout
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def failure(self) -> str:
        if self.timed_out:
            return f"timeout after {self.seconds:.0f} s"
        # stderr's last line, or rather its last line that names an error: gradcalc may follow
        # "error: ..." with the source line, a caret or a hint
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        last = (errors or lines or ["(no stderr)"])[-1]
        return f"exit {self.returncode}: {last[:300]}"


def run_child(argv: list[str], *, env: dict, cwd: Path, scratch: Path, timeout: float) -> Run:
    """Spawn argv, wait for it with os.wait4 (its own rusage), time it with perf_counter.
    stdout and stderr go to files so large outputs never sit in this process's memory."""
    out_path, err_path = scratch / "child.stdout", scratch / "child.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd)
        lock, state = threading.Lock(), {"reaped": False, "killed": False}

        def kill() -> None:  # only this child, by its pid, and only while it is not yet reaped
            with lock:
                if not state["reaped"]:
                    state["killed"] = True
                    os.kill(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            with lock:
                state["reaped"] = True
            timer.cancel()
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss_kb = usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss
    with open(out_path, "rb") as f:
        preview = f.read(PREVIEW_BYTES)
        lines = preview.count(b"\n")
        while chunk := f.read(PREVIEW_BYTES):
            lines += chunk.count(b"\n")
    stderr = err_path.read_bytes()[-20000:].decode("utf-8", "replace")
    return Run(seconds, maxrss_kb, proc.returncode, state["killed"], preview, lines, stderr)


# ---------------------------------------------------------------------------------------------
# One case: gradcalc and PyTorch alternated.

@dataclass
class Side:
    runs: list[Run] = field(default_factory=list)
    error: str | None = None
    first: Run | None = None     # the first successful timed run, for comparisons

    @property
    def median(self) -> float | None:
        return statistics.median(r.seconds for r in self.runs) if self.runs and not self.error else None

    @property
    def peak_mb(self) -> float | None:
        return max(r.maxrss_kb for r in self.runs) / 1024 if self.runs else None


@dataclass
class Measured:
    gradcalc: Side
    torch: Side


class Bench:
    def __init__(self, tmp: Path, repeat: int):
        self.tmp, self.repeat = tmp, repeat
        self.scratch = tmp / "scratch"
        self.scratch.mkdir()
        self.shared_cache = tmp / "cache-shared"
        self.shared_cache.mkdir()
        self.env = dict(os.environ)
        self.env["XDG_CACHE_HOME"] = str(self.shared_cache)

    def gradcalc(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "gradcalc", *args]

    def script(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def run(self, argv: list[str], env: dict | None = None, timeout: float = GRADCALC_TIMEOUT) -> Run:
        return run_child(argv, env=env or self.env, cwd=self.tmp, scratch=self.scratch, timeout=timeout)

    def measure(self, label: str, gradcalc_argv: list[str], torch_argv: list[str],
                gradcalc_env: Callable[[], dict] = lambda: {}, warmup: bool = True) -> Measured:
        """One untimed warm-up of each side, then repeat x (gradcalc, PyTorch). A side that
        fails or times out is not run again in this case."""
        g, t = Side(), Side()
        log(f"{label}: ", end="")
        if warmup:
            for side, argv, env, timeout in ((g, gradcalc_argv, gradcalc_env, GRADCALC_TIMEOUT),
                                             (t, torch_argv, lambda: {}, TORCH_TIMEOUT)):
                run = self.run(argv, {**self.env, **env()}, timeout)
                if not run.ok:
                    side.error, side.runs = run.failure(), [run]
            log("w ", end="")
        for _ in range(self.repeat):
            for side, argv, env, timeout, mark in ((g, gradcalc_argv, gradcalc_env, GRADCALC_TIMEOUT, "g"),
                                                   (t, torch_argv, lambda: {}, TORCH_TIMEOUT, "t")):
                if side.error:
                    continue
                run = self.run(argv, {**self.env, **env()}, timeout)
                side.runs.append(run)
                if not run.ok:
                    side.error = run.failure()
                elif side.first is None:
                    side.first = run
                log(f"{mark}{run.seconds:.2f} ", end="")
        log("")
        for name, side in (("gradcalc", g), ("PyTorch", t)):
            if side.error:
                warn(f"{label}: {name} failed: {side.error}")
        return Measured(g, t)


# ---------------------------------------------------------------------------------------------
# The report.

@dataclass
class Row:
    case: str
    m: Measured
    target: str
    met: str                            # yes / no / —
    gradcalc_note: str = ""             # appended to the time cell, e.g. rows/s
    torch_note: str = ""
    ratio: float | None = None       # default: gradcalc median / PyTorch median

    def cells(self) -> list[str]:
        g, t = self.m.gradcalc, self.m.torch
        ratio = self.ratio if self.ratio is not None else (
            g.median / t.median if g.median is not None and t.median else None)
        return [self.case, time_cell(g, self.gradcalc_note), time_cell(t, self.torch_note),
                "—" if ratio is None else f"{ratio:.2f}", mb(g.peak_mb), mb(t.peak_mb), self.target, self.met]


def time_cell(side: Side, note: str) -> str:
    if side.error:
        return f"failed ({side.error})"
    if side.median is None:
        return "—"
    return f"{side.median:.3f}" + (f" ({note})" if note else "")


def mb(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def markdown_table(rows: list[Row]) -> str:
    header = ["case", "gradcalc (median s)", "PyTorch (median s)", "ratio (gradcalc/PyTorch)",
              "gradcalc peak MB", "PyTorch peak MB", "target", "met?"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in row.cells()) + " |")
    return "\n".join(lines)


def log(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


WARNINGS: list[str] = []


def warn(text: str) -> None:
    WARNINGS.append(text)
    log(f"WARNING: {text}")


def first_difference(a: bytes, b: bytes) -> str | None:
    if a == b:
        return None
    la, lb = a.decode("utf-8", "replace").splitlines(), b.decode("utf-8", "replace").splitlines()
    for n in range(max(len(la), len(lb))):
        x = la[n] if n < len(la) else "(no line)"
        y = lb[n] if n < len(lb) else "(no line)"
        if x != y:
            return f"line {n + 1}: gradcalc {x!r} vs PyTorch {y!r}"
    return "same lines, different bytes (line endings or trailing newline)"


def yes(ok: bool) -> str:
    return "yes" if ok else "no"


def ok_both(m: Measured) -> bool:
    return m.gradcalc.median is not None and m.torch.median is not None


# ---------------------------------------------------------------------------------------------
# The cases.

def case_startup(bench: Bench, rows: list[Row], failures: list[str]) -> None:
    torch_argv = [sys.executable, str(bench.script("startup_torch.py", START_TORCH))]
    argv = bench.gradcalc("eval", REFERENCE, *START_ARGS)
    cold_root = bench.tmp / "cache-cold"
    cold_root.mkdir()
    counter = iter(range(10**6))

    def fresh_cache() -> dict:
        path = cold_root / str(next(counter))
        path.mkdir()
        return {"XDG_CACHE_HOME": str(path)}

    warm = bench.tmp / "cache-warm"
    warm.mkdir()
    # the warm-up call of "repeated call" fills `warm`; the cold variant's warm-up only warms
    # the OS's file cache, its XDG_CACHE_HOME is a fresh directory each time as well
    for label, env, limit in (("start-up: first call (cold cache)", fresh_cache, 0.35),
                              ("start-up: repeated call", lambda: {"XDG_CACHE_HOME": str(warm)}, 0.15)):
        m = bench.measure(label, argv, torch_argv, env)
        same = None
        if m.gradcalc.first and m.torch.first:
            diff = first_difference(m.gradcalc.first.stdout, m.torch.first.stdout)
            same = diff is None
            if diff:
                failures.append(f"{label}: gradcalc's output is not PyTorch's: {diff}")
                warn(failures[-1])
        met = (ok_both(m) and same is True and m.gradcalc.median / m.torch.median <= limit
               and m.gradcalc.peak_mb <= 100)
        rows.append(Row(label, m, f"ratio <= {limit}; gradcalc peak <= 100 MB; same bytes",
                        yes(met) + ("" if same is not False else " (output differs)")))


def case_size(bench: Bench, rows: list[Row], n: int) -> None:
    npz = bench.tmp / "values.npz"
    made = bench.run([sys.executable, "-c", MAKE_NPZ, str(npz), str(n)], timeout=TORCH_TIMEOUT)
    if not made.ok:
        warn(f"size: could not write the .npz: {made.failure()}")
        return
    for name, (program, torch_program) in SIZE_PROGRAMS.items():
        label = f"size: {n:,} elements, {name}"
        script = bench.script(f"size_{name}.py", SIZE_TORCH.format(program=torch_program))
        m = bench.measure(label, bench.gradcalc("eval", program, "--values", str(npz), "--format", "torch"),
                          [sys.executable, str(script), str(npz)])
        compare_warn(label, m)
        met = ok_both(m) and m.gradcalc.median / m.torch.median <= 1.0
        rows.append(Row(label, m, "ratio <= 1.0", yes(met)))


def compare_warn(label: str, m: Measured) -> None:
    if m.gradcalc.first and m.torch.first:
        diff = first_difference(m.gradcalc.first.stdout, m.torch.first.stdout)
        if diff:
            warn(f"{label}: output differs from PyTorch's, first at {diff}")


def case_depth(bench: Bench, rows: list[Row], sizes: list[int], notes: list[str]) -> None:
    script = bench.script("depth_torch.py", DEPTH_TORCH)
    medians: dict[int, float | None] = {}
    for n in sizes:
        path = bench.tmp / f"depth_{n}.gc"
        statements = ["a1 = sin(x)*x + x*y"]
        statements += [f"a{k} = sin(a{k - 1})*x + a{k - 1}*y" for k in range(2, n + 1)]
        statements.append(f"c = a{n}.sum()")
        path.write_text("\n".join(statements) + "\n")
        label = f"depth: {n:,} statements"
        m = bench.measure(label,
                          bench.gradcalc("eval", f"@{path}", "--x", DEPTH_X, "--y", DEPTH_Y, "--format", "torch"),
                          [sys.executable, str(script), str(n)])
        compare_warn(label, m)
        medians[n] = m.gradcalc.median
        per = ["" if side.median is None else f"{side.median / n * 1000:.3f} s/1k stmts"
               for side in (m.gradcalc, m.torch)]
        if n == 10**4:
            target, met = "gradcalc < 10 s", yes(m.gradcalc.median is not None and m.gradcalc.median < 10)
        else:
            target, met = "— (growth: see notes)", "—"
        rows.append(Row(label, m, target, met, *per))
    # growth: seconds per 1000 statements between consecutive sizes (start-up cancels out)
    known = [(n, t) for n, t in medians.items() if t is not None]
    slopes = []
    for (n0, t0), (n1, t1) in zip(known, known[1:]):
        slope = (t1 - t0) / (n1 - n0) * 1000
        slopes.append(slope)
        notes.append(f"depth growth, gradcalc: {n0:,} -> {n1:,} statements adds {t1 - t0:.3f} s, "
                     f"{slope:.3f} s per 1000 statements")
    if len(slopes) >= 2:
        # The first increment (100 -> 1,000) is near the run-to-run noise of a process start
        # (about 0.1 s here): it counts as at least that much, or noise would read as growth.
        (n0, _), (n1, _) = known[0], known[1]
        first = max(slopes[0], NOISE_SECONDS / (n1 - n0) * 1000)
        linear = slopes[-1] <= 2 * first
        notes.append(f"depth growth looks {'linear' if linear else 'SUPERLINEAR'} "
                     f"(last increment's s/1k is {slopes[-1] / first:.1f}x the first's, the first taken as at "
                     f"least {NOISE_SECONDS} s of noise; linear if <= 2x)")


def case_batch(bench: Bench, rows: list[Row], n: int, torch_cap: int, notes: list[str]) -> None:
    path = bench.tmp / "rows.jsonl"
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(n):
            row = {name: [round(rng.uniform(-5, 5), 3), round(rng.uniform(-5, 5), 3)] for name in "xyz"}
            f.write(json.dumps(row) + "\n")
    torch_rows = min(n, torch_cap)
    script = bench.script("batch_torch.py", BATCH_TORCH)
    label = f"batch: {n:,} rows (PyTorch: {torch_rows:,})"
    m = bench.measure(label, bench.gradcalc("eval", REFERENCE, "--seed", "1,1", "--batch", str(path)),
                      [sys.executable, str(script), str(path), str(torch_rows)])
    g, t = m.gradcalc, m.torch
    for name, side, expected in (("gradcalc", g, n), ("PyTorch", t, torch_rows)):
        if side.first and side.first.lines != expected:
            warn(f"{label}: {name} wrote {side.first.lines:,} lines for {expected:,} rows")
    if g.first and t.first:
        compare_batch_row(label, g.first.stdout, t.first.stdout)
    g_rate = n / g.median if g.median else None
    t_rate = torch_rows / t.median if t.median else None
    ratio = (g.median / n) / (t.median / torch_rows) if g_rate and t_rate else None
    rows.append(Row(label, m, "gradcalc >= 100,000 rows/s [^batch]",
                    yes(g_rate is not None and g_rate >= 100_000),
                    "" if g_rate is None else f"{g_rate:,.0f} rows/s",
                    "" if t_rate is None else f"{t_rate:,.0f} rows/s", ratio))
    # The default computes the rows in a pool of processes (one per CPU, at most 4): one process alone too.
    alone = [bench.run(bench.gradcalc("eval", REFERENCE, "--seed", "1,1", "--batch", str(path), "--jobs", "1"))
             for _ in range(bench.repeat)]
    if all(run.ok for run in alone):
        seconds = statistics.median(run.seconds for run in alone)
        workers = min(len(os.sched_getaffinity(0)), 4) if hasattr(os, "sched_getaffinity") else 1
        notes.append(f"batch: the table's gradcalc computes the rows in {workers} worker processes (its default, "
                     f"one per CPU, at most 4); in one process (`--jobs 1`, {len(alone)} runs after the "
                     f"table's) it took a median {seconds:.3f} s, {n / seconds:,.0f} rows/s.")
    notes.append("[^batch]: batch's times are whole processes (start-up included) over different row "
                 "counts; its ratio is gradcalc's seconds per row / PyTorch's seconds per row "
                 "(below 1: gradcalc is faster per row).")


def as_float32(values) -> list:
    values = values if isinstance(values, list) else [values]
    return [struct.unpack("f", struct.pack("f", v))[0] if isinstance(v, (int, float)) else v for v in values]


def compare_batch_row(label: str, gradcalc_out: bytes, torch_out: bytes) -> None:
    """Row 1: gradcalc's x/y/z grads and a/b data against PyTorch's."""
    try:
        document = json.loads(gradcalc_out.split(b"\n", 1)[0])
        expected = json.loads(torch_out.split(b"\n", 1)[0])
        tensors = {t["name"]: t for t in document["tensors"]}
        got = {"x": tensors["x"]["grad"], "y": tensors["y"]["grad"], "z": tensors["z"]["grad"],
               "a": tensors["a"]["data"], "b": tensors["b"]["data"]}
    except (ValueError, KeyError, TypeError) as e:
        warn(f"{label}: could not read row 1 of the outputs: {e!r}")
        return
    for key in "xyzab":  # PyTorch's tolist() widens float32 to float64: compare as float32
        if as_float32(got[key]) != as_float32(expected[key]):
            what = "grad" if key in "xyz" else "data"
            warn(f"{label}: row 1 {key}.{what} differs: gradcalc {got[key]} vs PyTorch {expected[key]}")
            return


# ---------------------------------------------------------------------------------------------

def versions() -> str:
    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"
    return (f"gradcalc {v('gradcalc')}, torch {v('torch')}, numpy {v('numpy')}, "
            f"Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
            f"{os.cpu_count()} CPUs")


def compile_bytecode() -> None:
    """Compile gradcalc's modules to bytecode first, as `pip install` does for an installed
    package. An editable install does it at its first import, unless PYTHONDONTWRITEBYTECODE
    is set (as on our CI machines): then every run would compile gradcalc's sources again,
    about 50 ms, while torch's and numpy's bytecode was written when pip installed them."""
    where = subprocess.run([sys.executable, "-c", "import gradcalc, os; print(os.path.dirname(gradcalc.__file__))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "compileall", "-q", where], check=True)
    log(f"compiled the bytecode of {where}")


CASES = ("startup", "size", "depth", "batch")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 repeats and smaller sizes (about 2-3 minutes)")
    parser.add_argument("--repeat", type=int, help="timed runs of each side per case (default 5; --quick: 3)")
    parser.add_argument("--only", nargs="+", choices=CASES, metavar="CASE",
                        help=f"run only these cases ({', '.join(CASES)}; default: all)")
    parser.add_argument("--out", metavar="FILE.md", help="also write the Markdown report to FILE.md")
    args = parser.parse_args()
    only = set(args.only or CASES)
    repeat = args.repeat or (3 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    size_n = 10**5 if args.quick else 10**6
    depths = [10**2, 10**3] if args.quick else [10**2, 10**3, 10**4]
    batch_n, torch_cap = (20_000, 5_000) if args.quick else (100_000, 20_000)

    command = shlex.join([sys.executable, os.path.relpath(__file__, REPO), *sys.argv[1:]])
    reproduce = f"cd {shlex.quote(str(REPO))} && {command}"
    log(f"reproduce with: {reproduce}")
    started = time.perf_counter()
    rows: list[Row] = []
    notes: list[str] = []
    failures: list[str] = []
    compile_bytecode()
    with tempfile.TemporaryDirectory(prefix="gradcalc-bench-") as tmp:
        bench = Bench(Path(tmp), repeat)
        floor = bench.run([sys.executable, "-c", "pass"])
        if "startup" in only:
            case_startup(bench, rows, failures)
        if "size" in only:
            case_size(bench, rows, size_n)
        if "depth" in only:
            case_depth(bench, rows, depths, notes)
        if "batch" in only:
            case_batch(bench, rows, batch_n, torch_cap, notes)
    total = time.perf_counter() - started

    report = [
        f"## gradcalc vs PyTorch ({'quick, ' if args.quick else ''}median of {repeat} runs each)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {versions()}.",
        "",
        markdown_table(rows),
        "",
        "Every time is one whole fresh process (`python -m gradcalc ...` vs `python script.py`), "
        "alternated, after an untimed warm-up of each. Peak MB is the largest ru_maxrss (MiB) of "
        f"the process over the runs; a bare `python -c pass` measures {floor.maxrss_kb / 1024:.1f} MB here.",
        *[f"\n{note}" if note.startswith("[^") else f"- {note}" for note in notes],
        "",
        "Output comparisons (once per case; batch: row 1's grads and data as float32):",
        "",
        *([f"- WARNING: {w}" for w in WARNINGS] or ["- gradcalc printed what PyTorch printed in every compared case."]),
        "",
        f"Total benchmark time: {total:.0f} s. Reproduce with:",
        "",
        f"    {reproduce}",
        "",
    ]
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
