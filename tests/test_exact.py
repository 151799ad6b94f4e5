"""`eval --exact`: SymPy numbers through the same graph and backward formulas as floats."""

import numpy as np
import pytest
from typer.testing import CliRunner

from gradcalc.api import evaluate
from gradcalc.cli.commands import app
from gradcalc.engine.backends import Exact
from gradcalc.engine.ops import FUNCTIONS, Kind
from gradcalc.lang.syntax import REQUIRED, ParamKind
from gradcalc.report.tensor_str import exact_repr

to_exact = Exact().tensor


def test_thirds_stay_thirds():
    result = CliRunner().invoke(app, ["eval", "a = x + 2*y; b = a + z/3", "--x", "2,1", "--y", "1,3",
                                      "--z", "5,0.1", "--seed", "1,1", "--retain", "a", "--format", "torch",
                                      "--exact"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[2] == "tensor([   5, 1/10]) tensor([1/3, 1/3])"


def test_layout_follows_torch():
    assert exact_repr(to_exact(np.array(0.5))) == "tensor(1/2)"
    assert exact_repr(to_exact(np.array([[1.0, 0.5], [0.25, 2.0]]))) == "tensor([[  1, 1/2],\n        [1/4,   2]])"


# Elementwise functions of float tensors (number parameters at their defaults; where's and
# masked_fill's boolean masks are in their own files' tests).
ELEMENTWISE = sorted(n for n, row in FUNCTIONS.items() if row.kind is Kind.ELEMENTWISE and not row.nondifferentiable)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_exact_agrees_with_float64(name):
    row = FUNCTIONS[name]
    names = iter(["x", "y", "z"])
    args = ", ".join(next(names) if p.kind is ParamKind.TENSOR else "0.5"
                     for p in row.params if p.operand and p.default is REQUIRED)
    program = f"b = ({name}({args}) * x).sum()"
    values = {"x": np.array([0.3, 0.6]), "y": np.array([0.7, 0.2]), "z": np.array([0.9, 0.8])}
    used = {k: v for k, v in values.items() if k in args or k == "x"}
    exact = evaluate(program, used, dtype="exact").graph
    floats = evaluate(program, used, dtype="float64").graph
    for n in used:
        got = np.array([float(v.evalf(30)) for v in exact.bindings[n].grad.ravel()])
        np.testing.assert_allclose(got, floats.bindings[n].grad, rtol=1e-12, err_msg=f"{name} d/d{n}")


@pytest.mark.parametrize("program", ["b = (A @ x).sum()", "b = x @ A @ x", "b = prod(x) + max(x) + min(x) + norm(x) + mean(x)"])
def test_exact_reductions_and_products(program):
    values = {"x": np.array([0.5, 2.0]), "A": np.array([[1.0, 0.25], [3.0, 4.0]])}
    used = {k: v for k, v in values.items() if k in program}
    exact = evaluate(program, used, dtype="exact").graph
    floats = evaluate(program, used, dtype="float64").graph
    for n in used:
        got = np.array([float(v) for v in exact.bindings[n].grad.ravel()]).reshape(floats.bindings[n].grad.shape)
        np.testing.assert_allclose(got, floats.bindings[n].grad, rtol=1e-12)
