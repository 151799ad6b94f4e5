"""`gradcalc check`: expectations on values and grads, and gradcheck by finite differences.

Tolerances follow torch.testing.assert_close (float32: rtol 1.3e-6, atol 1e-5; float64:
rtol 1e-7, atol 1e-7); gradcheck follows torch.autograd.gradcheck (float64, eps 1e-6,
atol 1e-5, rtol 1e-3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from gradcalc.engine.graph import Const, Node
from gradcalc.errors import InputError

DEFAULT_TOLERANCES = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}
GRADCHECK = {"eps": 1e-6, "atol": 1e-5, "rtol": 1e-3}
MAX_ROWS = 10

_EXPECT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)(\.grad)?\s*=(.*)$", re.DOTALL)


@dataclass
class Expectation:
    name: str
    grad: bool
    expected: np.ndarray | None  # None: the grad must be None

    @property
    def label(self) -> str:
        return f"{self.name}.grad" if self.grad else self.name


def parse_expectation(text: str) -> Expectation:
    """`x.grad=1,1`, `a=[4,7]`, `a.grad=None`."""
    from gradcalc.lang.values import parse_value

    m = _EXPECT.match(text)
    if not m:
        raise InputError(f"--expect {text!r}: expected NAME=VALUE or NAME.grad=VALUE")
    name, grad, value = m.group(1), bool(m.group(2)), m.group(3).strip()
    if value == "None":
        if not grad:
            raise InputError(f"--expect {text!r}: only a grad can be None")
        return Expectation(name, grad, None)
    return Expectation(name, grad, parse_value(value, f"--expect {m.group(1)}{m.group(2) or ''}"))


@dataclass
class Failure:
    label: str
    message: str
    rows: list[tuple[str, float, float, float]] = field(default_factory=list)  # index, expected, got, |diff|

    def render(self) -> str:
        lines = [f"FAIL {self.label}: {self.message}"]
        if self.rows:
            lines.append(f"  {'index':<12} {'expected':>14} {'got':>14} {'|diff|':>12}")
            lines += [f"  {i:<12} {e:>14.7g} {g:>14.7g} {d:>12.3g}" for i, e, g, d in self.rows[:MAX_ROWS]]
            if len(self.rows) > MAX_ROWS:
                lines.append(f"  ... and {len(self.rows) - MAX_ROWS} more")
        return "\n".join(lines)


def check_expectations(graph, expectations: list[Expectation], rtol: float, atol: float) -> list[Failure]:
    failures = []
    for e in expectations:
        binding = graph.bindings.get(e.name)
        if binding is None:
            raise InputError(f"--expect {e.label}: the program has no tensor named '{e.name}'")
        got = _observed(binding, e.grad)
        failure = compare(e.label, e.expected, got, rtol, atol)
        if failure is not None:
            failures.append(failure)
    return failures


def _observed(binding, grad: bool) -> np.ndarray | None:
    if isinstance(binding, Const):
        return None if grad else np.asarray(binding.value)
    return binding.grad if grad else binding.value


def compare(label: str, expected, got, rtol: float, atol: float) -> Failure | None:
    """None when `got` is close to `expected` (nan matches nan), else what differs, worst first."""
    if expected is None or got is None:
        if expected is None and got is None:
            return None
        return Failure(label, f"expected {'None' if expected is None else 'a tensor'}, "
                              f"got {'None' if got is None else 'a tensor'}")
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return Failure(label, f"expected shape {list(expected.shape)}, got {list(got.shape)}")
    close = close_enough(got, expected, rtol, atol)
    if close.all():
        return None
    with np.errstate(invalid="ignore"):
        diff = np.abs(got - expected)
    bad = np.argwhere(~close)
    order = sorted(bad.tolist(), key=lambda i: -np.nan_to_num(diff[tuple(i)], nan=np.inf))
    rows = [(str([int(j) for j in i]), expected[tuple(i)], got[tuple(i)], diff[tuple(i)]) for i in order]
    return Failure(label, f"{len(rows)} of {got.size} elements differ (rtol {rtol:g}, atol {atol:g})", rows)


def close_enough(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        close = np.abs(got - expected) <= atol + rtol * np.abs(expected)
    return close | (np.isnan(got) & np.isnan(expected)) | (got == expected)


@dataclass
class CheckReport:
    lines: list[str]
    failures: list[Failure]
    checks: int

    @property
    def passed(self) -> bool:
        return not self.failures

    def render(self) -> str:
        """`check`'s output: the failures and notes, then `ok: N checks passed` or `FAILED: ...`."""
        summary = (f"FAILED: {len(self.failures)} of {self.checks} checks" if self.failures
                   else f"ok: {self.checks} check{'s' if self.checks != 1 else ''} passed")
        return "\n".join([*self.lines, summary]) + "\n"


def run_check(program, inputs: dict, expectations: list[Expectation], *, seeds=(), outputs=(),
              retain=(), no_grad=(), dtype="float32", rtol=None, atol=None,
              with_gradcheck=False) -> CheckReport:
    """Evaluate as `eval` does, then hold every expectation (and gradcheck) against it."""
    from gradcalc.api import evaluate

    evaluation = evaluate(program, inputs, outputs=outputs, seeds=seeds, retain=retain,
                          no_grad=no_grad, dtype=dtype)
    default_rtol, default_atol = DEFAULT_TOLERANCES[dtype]
    failures = check_expectations(evaluation.graph, expectations,
                                  default_rtol if rtol is None else rtol, default_atol if atol is None else atol)
    lines = [f.render() for f in failures]
    checks = len(expectations)
    if with_gradcheck:
        for result in gradcheck(program, inputs, outputs=evaluation.outputs, seeds=seeds,
                                no_grad=no_grad, retain=retain):
            checks += 1
            if result.kinks:
                lines.append(f"note {result.name}.grad: at a kink (one-sided derivatives differ) at "
                             f"{', '.join(result.kinks)}: not compared there")
            if result.failure is not None:
                failures.append(result.failure)
                lines.append(result.failure.render())
    return CheckReport(lines, failures, checks)


# -- gradcheck --------------------------------------------------------------------------

@dataclass
class GradcheckResult:
    name: str
    failure: Failure | None
    kinks: list[str]


def gradcheck(program, values: dict, *, outputs, seeds, no_grad, retain=()) -> list[GradcheckResult]:
    """Analytical grads (float64) against central differences of sum(seed * output)."""
    from gradcalc.api import evaluate, output_node

    # float inputs in float64; integer ones (class targets, arange) stay integers, as in torch
    values64 = {k: np.asarray(v) if np.asarray(v).dtype.kind in "iub" else np.asarray(v, dtype=np.float64)
                for k, v in values.items()}
    ev = evaluate(program, values64, outputs=outputs, seeds=seeds, no_grad=no_grad, retain=retain,
                  dtype="float64")
    seeds64 = [np.ones_like(output_node(ev.graph, o).value) if s is None else np.asarray(s, np.float64)
               for o, s in zip(ev.outputs, ev.seeds)]

    def objective(vals: dict) -> float:
        run = evaluate(program, vals, outputs=ev.outputs, no_grad=no_grad, dtype="float64",
                       run_backward=False)
        with np.errstate(all="ignore"):
            return float(sum(np.sum(s * output_node(run.graph, o).value) for o, s in zip(ev.outputs, seeds64)))

    eps = GRADCHECK["eps"]
    results = []
    for name in ev.graph.inputs:
        leaf = ev.graph.bindings[name]
        if not isinstance(leaf, Node) or not leaf.requires_grad or leaf.op is not None:
            continue
        numeric = np.zeros_like(values64[name])
        kinks = []
        flat = values64[name].reshape(-1)
        for k in range(flat.size):
            f = {}
            for step in (-eps, 0.0, eps):
                bumped = flat.copy()
                bumped[k] += step
                f[step] = objective({**values64, name: bumped.reshape(values64[name].shape)})
            numeric.reshape(-1)[k] = (f[eps] - f[-eps]) / (2 * eps)
            left, right = (f[0.0] - f[-eps]) / eps, (f[eps] - f[0.0]) / eps
            if not close_enough(np.array(left), np.array(right), GRADCHECK["rtol"], GRADCHECK["atol"]):
                kinks.append(_index(values64[name].shape, k))
        analytical = leaf.grad if leaf.grad is not None else np.zeros_like(numeric)
        failure = compare(f"{name}.grad (gradcheck)", numeric, analytical, GRADCHECK["rtol"], GRADCHECK["atol"])
        if failure is not None:
            failure.rows = [r for r in failure.rows if r[0] not in kinks]
            if not failure.rows and kinks:
                failure = None
            elif failure is not None:
                failure.message = (f"analytical and numerical gradients differ at {len(failure.rows)} of "
                                   f"{numeric.size} elements (eps {eps:g}, rtol {GRADCHECK['rtol']:g}, "
                                   f"atol {GRADCHECK['atol']:g}); 'expected' is the numerical one")
        results.append(GradcheckResult(name, failure, kinks))
    return results


def _index(shape, k: int) -> str:
    return str([int(i) for i in np.unravel_index(k, shape)]) if shape else "[]"
