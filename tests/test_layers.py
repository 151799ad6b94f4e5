"""The package's layers: what importing a layer loads, and no import cycle between modules.

import-linter's contracts in pyproject.toml (run by `.ci/run`) check that imports point only
down; these tests check what a layer really loads at run time, and that no two modules reach
each other (grimp's graph counts imports inside functions too).
"""

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]

ENGINE = ["gradcalc.engine.ops", "gradcalc.engine.graph", "gradcalc.engine.backward",
          "gradcalc.engine.tangents", "gradcalc.engine.backends", "gradcalc.api"]


def _loaded_after(imports: list[str]) -> set[str]:
    code = (f"import sys; import {', '.join(imports)}; "
            "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in ('gradcalc', 'sympy', 'typer', "
            "'click', 'rich'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_the_engine_loads_nothing_above_it_and_no_sympy():
    loaded = _loaded_after(ENGINE)
    above = {m for m in loaded if m.startswith(("gradcalc.symbolic", "gradcalc.report", "gradcalc.analysis",
                                                "gradcalc.cli"))}
    assert not above, above
    assert not {m for m in loaded if m.split(".")[0] in ("sympy", "typer", "click", "rich")}


def test_the_language_loads_only_itself():
    loaded = _loaded_after(["gradcalc.lang.parser", "gradcalc.lang.values"])
    assert {m for m in loaded if m.startswith("gradcalc.")} <= {
        "gradcalc.lang", "gradcalc.lang.parser", "gradcalc.lang.syntax", "gradcalc.lang.values", "gradcalc.errors"}


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("gradcalc")


def test_no_import_cycle_between_modules(graph):
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append(" -> ".join(graph.find_shortest_chain(importer=imported, imported=module)) +
                              f" -> {imported}")
    assert not cycles, "\n".join(cycles)
