"""`eval --hessian` against torch.autograd.functional.hessian."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from gradcalc.analysis.hessian import hessian
from gradcalc.api import evaluate, output_node
from gradcalc.cli.commands import app

torch = pytest.importorskip("torch")
F = torch.nn.functional

CASES = [
    ("b = (x*x*y).sum() + sin(x).sum()", {"x": [1.0, 2.0], "y": [3.0, 4.0]},
     lambda x, y: (x * x * y).sum() + torch.sin(x).sum()),
    ("b = (x / y + y ** x).sum()", {"x": [0.5, 1.5], "y": [2.0, 3.0]}, lambda x, y: (x / y + y ** x).sum()),
    ("b = (exp(x) * log(y) + tanh(x*y)).sum()", {"x": [0.3, -0.7], "y": [1.5, 2.5]},
     lambda x, y: (torch.exp(x) * torch.log(y) + torch.tanh(x * y)).sum()),
    ("b = (sigmoid(x) + softplus(x) + erf(x) + atan2(x, y)).sum()", {"x": [0.3, -0.7], "y": [1.5, -2.5]},
     lambda x, y: (torch.sigmoid(x) + F.softplus(x) + torch.erf(x) + torch.atan2(x, y)).sum()),
    ("b = (sqrt(y) + reciprocal(y) + square(x) + rsqrt(y) + x**3).sum()", {"x": [0.3, -0.7], "y": [1.5, 2.5]},
     lambda x, y: (torch.sqrt(y) + torch.reciprocal(y) + torch.square(x) + torch.rsqrt(y) + x ** 3).sum()),
    ("b = (relu(x) * x + abs(x) * y + maximum(x, y) * x + clamp(x, -0.5, 0.5) * y).sum()",
     {"x": [0.3, -0.7], "y": [1.5, -2.5]},
     lambda x, y: (torch.relu(x) * x + torch.abs(x) * y + torch.maximum(x, y) * x
                   + torch.clamp(x, -0.5, 0.5) * y).sum()),
    ("b = prod(x) + mean(x * x) + max(x) * min(x) + norm(x)", {"x": [0.5, -2.0, 3.0]},
     lambda x: x.prod() + (x * x).mean() + x.max() * x.min() + x.norm()),
    ("b = x @ A @ x + dot(x, x) * (A @ x).sum() + (A @ B).sum() * (x @ A).sum()",
     {"x": [0.5, -2.0], "A": [[1.0, 2.0], [3.0, -4.0]], "B": [[0.5, 1.0], [2.0, 0.25]]},
     lambda x, A, B: x @ A @ x + torch.dot(x, x) * (A @ x).sum() + (A @ B).sum() * (x @ A).sum()),
    ("b = (x * s + s * s / x).sum()", {"x": [0.5, -2.0], "s": 3.0}, lambda x, s: (x * s + s * s / x).sum()),
]


@pytest.mark.parametrize("program, values, fn", CASES, ids=[c[0] for c in CASES])
def test_hessian_matches_torch(program, values, fn):
    arrays = {k: np.asarray(v) for k, v in values.items()}
    ev = evaluate(program, arrays, dtype="float64", run_backward=False)
    got = hessian(ev.graph, output_node(ev.graph, ev.outputs[0]), ev.graph.inputs)
    want = torch.autograd.functional.hessian(fn, tuple(torch.tensor(v, dtype=torch.float64)
                                                        for v in values.values()))
    names = list(values)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            np.testing.assert_allclose(got[a][b], want[i][j].numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"d2/d{a}d{b}")


def test_hessian_prints_as_torch():
    result = CliRunner().invoke(app, ["eval", "b = (x*x*y).sum() + sin(x).sum()", "--x", "1,2", "--y", "3,4",
                                      "--hessian", "--format", "torch"])
    assert result.exit_code == 0, result.output
    want = torch.autograd.functional.hessian(lambda x, y: (x * x * y).sum() + torch.sin(x).sum(),
                                             (torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])))
    assert result.stdout == f"x: {want[0]!s}\ny: {want[1]!s}\n"


def test_single_input_prints_one_tensor():
    result = CliRunner().invoke(app, ["eval", "b = (x ** 3).sum()", "--x", "1,2", "--hessian", "--format", "torch"])
    want = torch.autograd.functional.hessian(lambda x: (x ** 3).sum(), torch.tensor([1.0, 2.0]))
    assert result.stdout == f"x: {want!s}\n"


def test_hessian_needs_a_scalar_output():
    result = CliRunner().invoke(app, ["eval", "b = x * x", "--x", "1,2", "--hessian"])
    assert result.exit_code == 2 and "scalar output" in result.stderr


@pytest.mark.parametrize("source, refused", [
    ("a = hardsigmoid(x); b = (x*x*x).sum()", False),   # not on the output's path: torch has a Hessian
    ("b = (hardsigmoid(x) * x).sum()", True),
])
def test_an_op_torch_cannot_differentiate_twice_only_matters_on_the_path(source, refused):
    result = CliRunner().invoke(app, ["eval", source, "--x", "1,2", "--hessian", "--format", "json",
                                      "--dtype", "float64"])
    F = torch.nn.functional

    def fn(x):
        return (x * x * x).sum() if not refused else (F.hardsigmoid(x) * x).sum()

    try:
        want = torch.autograd.functional.hessian(fn, torch.tensor([1.0, 2.0], dtype=torch.float64))
    except RuntimeError as e:
        assert refused and result.exit_code == 2 and result.stderr.startswith(f"error: {e}")
        return
    assert not refused and result.exit_code == 0, result.output
    np.testing.assert_allclose(json.loads(result.stdout)["hessian"]["x"]["x"], want.numpy())
