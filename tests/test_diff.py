"""`gradcalc diff`: local partials on named edges and the chain rule, in three formats."""

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from gradcalc.cli.commands import app

REFERENCE = "a = x + 2*y; b = a + z/2"


def run(args):
    return CliRunner().invoke(app, args)


def test_reference_derivation_matches_the_hand_derivation():
    result = run(["diff", REFERENCE])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for line in ("∂b/∂a = 1", "∂a/∂x = 1", "∂a/∂y = 2", "∂b/∂z = 1/2",
                 "∂b/∂x = ∂b/∂a · ∂a/∂x = 1 · 1 = 1",
                 "∂b/∂y = ∂b/∂a · ∂a/∂y = 1 · 2 = 2"):
        assert line in out, out
    assert "  ∂b/∂z = 1/2\n" in out.split("chain rule:")[1]


def test_several_paths_are_summed():
    out = run(["diff", "a = sin(x); b = a*a + x"]).stdout
    assert "∂b/∂x = ∂b/∂x + ∂b/∂a · ∂a/∂x = 1 + 2*a · cos(x) = 2*sin(x)*cos(x) + 1" in out


def test_wrt_output_and_unjoined_inputs():
    out = run(["diff", "a = x*y; b = a + z.detach(); c = b*2", "--output", "b", "--wrt", "x,z"]).stdout
    assert "∂b/∂x = ∂b/∂a · ∂a/∂x = 1 · y = y" in out
    assert "∂b/∂z: no path of grad-requiring operations joins them" in out


def test_json_format():
    doc = json.loads(run(["diff", REFERENCE, "--format", "json"]).stdout)
    assert doc["output"] == "b"
    assert {(e["of"], e["wrt"], e["partial"]) for e in doc["edges"]} == {
        ("b", "a", "1"), ("a", "x", "1"), ("a", "y", "2"), ("b", "z", "1/2")}
    chains = {c["wrt"]: c for c in doc["chains"]}
    assert chains["y"]["paths"] == [["b", "a", "y"]] and chains["y"]["factors"] == [["1", "2"]]
    assert chains["y"]["partial"] == "2"


def test_shapes_from_values_fix_mean():
    out = run(["diff", "b = (x*y).mean()", "--x", "1,2,3,4"]).stdout
    assert "∂b/∂x = y/4" in out


def test_latex_is_valid(tmp_path):
    tex = run(["diff", REFERENCE, "--format", "latex"]).stdout
    assert r"\frac{\partial b}{\partial x}" in tex and tex.count(r"\begin{align*}") == 1
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    doc = tmp_path / "d.tex"
    doc.write_text("\\documentclass{article}\\usepackage{amsmath}\\begin{document}\n" + tex + "\\end{document}\n")
    subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                   check=True, capture_output=True, timeout=60)


def test_a_200_statement_program_is_derived_with_budgets():
    lines = ["a0 = x"] + [f"a{i} = sin(a{i - 1})*x + a{i - 1}*y" for i in range(1, 201)]
    result = run(["diff", "\n".join(lines)])
    assert result.exit_code == 0, result.output
    assert "∂a200/∂x = " in result.stdout


@pytest.mark.parametrize("args, message", [
    (["diff", "b = x*2", "--wrt", "q"], "no tensor named 'q'"),
    (["diff", "b = x*2", "--format", "html"], "Invalid value for '--format': 'html' is not one of 'text', 'latex', 'json'."),
    (["diff", "b = x.detach()*2"], "depends on no input that requires grad"),
    (["diff", "b = x +"], "line 1"),
])
def test_bad_input(args, message):
    result = run(args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error:") and message in result.stderr, result.stderr
