"""Check suites: many `check` cases from one TOML file, run in one process, with JUnit XML."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from gradcalc.errors import ExitCode, GradcalcError, InputError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

CASE_KEYS = {"name", "program", "values", "seed", "output", "retain", "no_grad", "dtype", "rtol",
             "atol", "gradcheck", "expect"}


@dataclass
class Case:
    name: str
    fields: dict


@dataclass
class CaseResult:
    name: str
    passed: bool
    error: bool          # bad input (exit 2 territory), not a failed expectation
    text: str
    seconds: float


def read_suite(path: str) -> list[Case]:
    from gradcalc.lang.inputs import read_file

    return load_suite(path, read_file(path, "suite file"))


def load_suite(path: str, text: str) -> list[Case]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML ({e})") from None
    cases = document.get("case")
    if not isinstance(cases, list) or not cases:
        raise InputError(f"{path}: expected [[case]] tables", hint='each with name, program, values and expect')
    result = []
    for k, fields in enumerate(cases, 1):
        unknown = set(fields) - CASE_KEYS
        if unknown:
            raise InputError(f"{path}: case {k}: unknown key(s) {', '.join(sorted(unknown))}")
        if "program" not in fields:
            raise InputError(f"{path}: case {k}: no program")
        result.append(Case(str(fields.get("name", f"case {k}")), fields))
    return result


def run_suite(cases: list[Case], progress=None, use_cache: bool = False) -> list[CaseResult]:
    """Every case in order; `progress` (a Rich Progress with one task, or None) advances a case at a time."""
    results = []
    with progress or contextlib.nullcontext():
        for case in cases:
            results.append(_run_case(case, use_cache))
            if progress is not None:
                progress.advance(progress.task_ids[0])
    return results


def summary(results: list[CaseResult]) -> str:
    """Each case that did not pass under a `--- NAME` line, then `N passed, M failed`."""
    failed = sum(not r.passed for r in results)
    errors = sum(r.error for r in results)
    counts = f"{len(results) - failed} passed, {failed} failed" + (f" ({errors} with bad input)" if errors else "")
    return "".join(f"--- {r.name}\n{r.text}\n" for r in results if not r.passed) + counts + "\n"


def exit_status(results: list[CaseResult]) -> ExitCode:
    """2 if a case had bad input, else 1 if one failed, else 0."""
    if any(r.error for r in results):
        return ExitCode.BAD_INPUT
    return ExitCode.CHECK_FAILED if any(not r.passed for r in results) else ExitCode.OK


def _run_case(case: Case, use_cache: bool = False) -> CaseResult:
    from gradcalc import cache
    from gradcalc.analysis.checking import run_check
    from gradcalc.lang.values import to_array

    start = time.perf_counter()
    f = case.fields
    try:
        values = {name: to_array(_numbers(v), f"input '{name}'") for name, v in f.get("values", {}).items()}
        expectations = [_expectation(key, value) for key, value in f.get("expect", {}).items()]
        if not expectations and not f.get("gradcheck"):
            raise InputError("nothing to check: give expect or gradcheck = true")
        seeds = [to_array(_numbers(s), "seed") for s in _listed(f.get("seed"), nested=True)]
        with cache.program(f["program"], enabled=use_cache):
            report = run_check(f["program"], values, expectations, seeds=seeds,
                               outputs=_listed(f.get("output")), retain=_listed(f.get("retain")),
                               no_grad=_listed(f.get("no_grad")), dtype=f.get("dtype", "float32"),
                               rtol=f.get("rtol"), atol=f.get("atol"), with_gradcheck=bool(f.get("gradcheck")))
        text = "\n".join(report.lines)
        return CaseResult(case.name, report.passed, False, text, time.perf_counter() - start)
    except GradcalcError as e:
        return CaseResult(case.name, False, True, f"error: {e.render()}", time.perf_counter() - start)


def _expectation(key: str, value: Any):
    from gradcalc.analysis.checking import Expectation
    from gradcalc.lang.values import to_array

    name, _, attribute = key.partition(".")
    if attribute not in ("", "grad"):
        raise InputError(f"expect key {key!r}: expected NAME or NAME.grad")
    if value == "None":
        return Expectation(name, True, None)
    return Expectation(name, attribute == "grad", to_array(_numbers(value), f"expect {key}"))


def _numbers(value: Any) -> Any:
    from gradcalc.lang.values import _specials

    return _specials(value)


def _listed(value: Any | None, nested: bool = False) -> list:
    """A TOML scalar or list as a list (a seed list of lists stays per output)."""
    if value is None:
        return []
    if nested:
        # one seed: a number or a flat/nested list; several: a list whose items are lists per output
        return [value]
    return value if isinstance(value, list) else [value]


def write_junit(results: list[CaseResult], path: str, *, suite_name: str) -> None:
    import xml.etree.ElementTree as ET

    failures = sum(not r.passed and not r.error for r in results)
    errors = sum(r.error for r in results)
    suite = ET.Element("testsuite", name=suite_name, tests=str(len(results)), failures=str(failures),
                       errors=str(errors), time=f"{sum(r.seconds for r in results):.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="gradcalc", name=r.name, time=f"{r.seconds:.3f}")
        if not r.passed:
            tag = "error" if r.error else "failure"
            node = ET.SubElement(case, tag, message=r.text.splitlines()[0] if r.text else tag)
            node.text = r.text
    root = ET.Element("testsuites")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    try:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    except OSError as e:
        raise InputError(f"--junit {path}: cannot write: {e.strerror}") from None
