import atexit
import os
import shutil
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Rich output at a fixed width and without colour, whatever terminal runs the tests.
os.environ.setdefault("COLUMNS", "120")
os.environ["NO_COLOR"] = "1"
# The cache of derived partials goes to a directory of this run, never the user's own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="gradcalc-test-cache-")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], True)

# Property tests draw the same examples on every run and machine, and nothing depends on
# time (no deadline, no too-slow health check: CI machines are shared): a failure is a
# finding, never bad luck. `--hypothesis-profile=random` draws new examples (and keeps the
# failing ones in .hypothesis/). A test's own settings win over the profile's.
_UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "print_blob": True}
settings.register_profile("derandomized", derandomize=True, database=None, **_UNTIMED)
settings.register_profile("random", **_UNTIMED)
settings.load_profile("derandomized")


# ---------------------------------------------------------------------------------------
# Which results are torch's exact bits depends on the CPU (torch's vectorised libm): the
# tests assert a bound and report the share here, in the terminal summary and in pytest's
# cache (`.pytest_cache/v/gradcalc/bit-identical`).

_EXACT = pytest.StashKey[dict]()


@pytest.fixture
def record_exact_share(request):
    """record(op, dtype, values_equal, grads_equal): boolean arrays, one element per input."""
    shares = request.config.stash.setdefault(_EXACT, {})

    def record(op: str, dtype: str, values_equal, grads_equal) -> None:
        shares[op, dtype] = (float(np.mean(values_equal)), float(np.mean(grads_equal)), int(np.size(values_equal)))

    return record


def pytest_terminal_summary(terminalreporter, config):
    shares = config.stash.get(_EXACT, {})
    if not shares:
        return
    torch = sys.modules.get("torch")
    capability = torch.backends.cpu.get_cpu_capability() if torch is not None else "?"
    write = terminalreporter.write_line
    terminalreporter.section(f"bit-identical to torch (unary ops' sweep, torch CPU capability {capability})")
    report = {"capability": capability, "shares": {}}
    for dtype in sorted({d for _, d in shares}):
        rows = {op: s for (op, d), s in sorted(shares.items()) if d == dtype}
        n = sum(s[2] for s in rows.values())
        values = sum(s[0] * s[2] for s in rows.values()) / n
        grads = sum(s[1] * s[2] for s in rows.values()) / n
        below = [f"{op} {100 * v:.1f}/{100 * g:.1f}" for op, (v, g, _) in rows.items() if min(v, g) < 0.99]
        write(f"{dtype}: values {100 * values:.1f}%, grads {100 * grads:.1f}% of {n:,} "
              f"({len(rows)} ops); below 99% (values/grads %): {', '.join(below) or 'none'}")
        report["shares"][dtype] = {op: {"values": v, "grads": g, "n": k} for op, (v, g, k) in rows.items()}
    if getattr(config, "cache", None) is not None:
        config.cache.set("gradcalc/bit-identical", report)
