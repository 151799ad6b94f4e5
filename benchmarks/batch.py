"""Rows per second of `gradcalc eval --batch` on the reference program (run by hand, not in CI).

    python benchmarks/batch.py [ROWS]

Writes ROWS rows (default 100,000) of random values to a temporary JSON-lines file, runs the
installed `gradcalc` on it as a whole process, and prints the wall time and rows per second.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROGRAM = "a = x + 2*y; b = a + z/2"


def main(rows: int) -> None:
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        with path.open("w") as f:
            for _ in range(rows):
                row = {name: [round(rng.uniform(-5, 5), 3), round(rng.uniform(-5, 5), 3)] for name in "xyz"}
                f.write(json.dumps(row) + "\n")
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "gradcalc", "eval", PROGRAM, "--seed", "1,1",
                               "--batch", str(path)], capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"gradcalc failed: {proc.stderr[:500]}")
    written = len(proc.stdout.splitlines())
    print(f"| batch | {rows:,} rows | {seconds:.2f} s | {written / seconds:,.0f} rows/s |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
