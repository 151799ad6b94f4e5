"""`gradcalc check`: exit codes 0/1/2, readable diffs, and gradcheck by finite differences."""

import dataclasses

import pytest
from typer.testing import CliRunner

from gradcalc.cli.commands import app
from gradcalc.engine import derive, ops
from gradcalc.engine.formula import call
from gradcalc.engine.ops import OPS

REFERENCE = ["a = x + 2*y; b = a + z/2", "--x", "2,1", "--y", "1,3", "--z", "5,2", "--seed", "1,1"]


def check(*args):
    return CliRunner().invoke(app, ["check", *args])


def test_expectations_that_hold_exit_0():
    result = check(*REFERENCE, "--expect", "x.grad=1,1", "--expect", "z.grad=[0.5,0.5]",
                   "--expect", "a=4,7", "--expect", "a.grad=None", "--gradcheck")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("ok: 7 checks passed")  # 4 expectations, 3 gradchecks


def test_a_failing_expectation_exits_1_with_the_worst_element_first():
    result = check(*REFERENCE, "--expect", "x.grad=1.5,3")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAIL x.grad: 2 of 2 elements differ")
    assert lines[2].split()[0] == "[1]" and lines[3].split()[0] == "[0]"  # |diff| 2 before 0.5
    assert lines[-1] == "FAILED: 1 of 1 checks"


def test_tolerances_can_be_loosened():
    assert check(*REFERENCE, "--expect", "x.grad=1.001,1").exit_code == 1
    assert check(*REFERENCE, "--expect", "x.grad=1.001,1", "--rtol", "1e-2").exit_code == 0


@pytest.mark.parametrize("expect, message", [
    ("a.grad=1,1", "expected a tensor, got None"),
    ("x.grad=None", "expected None, got a tensor"),
    ("x.grad=[[1,1]]", "expected shape [1, 2], got [2]"),
])
def test_none_and_shape_mismatches(expect, message):
    result = check(*REFERENCE, "--expect", expect)
    assert result.exit_code == 1 and message in result.stdout


@pytest.mark.parametrize("args, message", [
    ([*REFERENCE], "nothing to check"),
    ([*REFERENCE, "--expect", "q=1"], "no tensor named 'q'"),
    ([*REFERENCE, "--expect", "x.grad"], "expected NAME=VALUE"),
    ([*REFERENCE, "--expect", "x=None"], "only a grad can be None"),
    (["b = x +", "--expect", "b=1"], "line 1"),
])
def test_bad_input_exits_2(args, message):
    result = check(*args)
    assert result.exit_code == 2 and result.stderr.startswith("error:") and message in result.stderr


def test_gradcheck_reports_kinks_instead_of_failing():
    result = check("b = relu(x).sum() + abs(y).sum()", "--x", "0,1,-1", "--y", "0,2", "--gradcheck")
    assert result.exit_code == 0, result.output
    assert "note x.grad: at a kink" in result.stdout and "[0]" in result.stdout


def test_gradcheck_catches_a_wrong_rule(monkeypatch):
    wrong = dataclasses.replace(OPS["sin"], torch_vjps=lambda g, r, a: {0: g * call("sin", a)})
    monkeypatch.setitem(ops._CORE_OPS, "sin", wrong)  # the core rows, by name
    derive._stated_vjp_tree.cache_clear()
    try:
        result = check("b = (sin(x) * y).sum()", "--x", "0.5,1.5", "--y", "2,3", "--gradcheck")
    finally:
        derive._stated_vjp_tree.cache_clear()
    assert result.exit_code == 1, result.output
    assert "FAIL x.grad (gradcheck): analytical and numerical gradients differ at 2 of 2 elements" in result.stdout
