"""`gradcalc graph` and `eval --jacobian` through the command line, against torch where it has an answer."""

import pytest
from typer.testing import CliRunner

from gradcalc.cli.commands import app

torch = pytest.importorskip("torch")


def run(args):
    return CliRunner().invoke(app, args)


def test_graph_tree_of_the_reference_program():
    result = run(["graph", "a = x + 2*y; b = a + z/2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "b: AddBackward0"
    assert any("a: AddBackward0" in line for line in lines)
    assert sum("AccumulateGrad" in line for line in lines) == 3


@pytest.mark.parametrize("fmt, start", [("dot", "digraph grad_fn {"), ("mermaid", "flowchart TD")])
def test_graph_formats(fmt, start):
    result = run(["graph", "a = x + 2*y; b = a + z/2", "--format", fmt])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(start)


def test_graph_with_values_shows_grads():
    result = run(["graph", "b = (x * y).sum()", "--x", "1,2", "--y", "3,4"])
    assert "grad: tensor([3., 4.])" in result.stdout


def test_graph_errors():
    result = run(["graph", "b = x.detach() * 2"])
    assert result.exit_code == 2 and "does not require grad" in result.stderr


JACOBIAN_CASES = [
    ("b = x * y + sin(x)", {"x": [1.0, 2.0], "y": [3.0, 4.0]}, lambda x, y: x * y + torch.sin(x)),
    ("b = A @ x", {"A": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "x": [1.0, 2.0]}, lambda A, x: A @ x),
    ("b = (x * x).sum()", {"x": [1.0, -2.0, 3.0]}, lambda x: (x * x).sum()),
    ("b = x.max() * s", {"x": [1.0, 3.0, 3.0], "s": 2.0}, lambda x, s: x.max() * s),
    ("b = clamp(x, 0, 1) / (x + y)", {"x": [0.5, 2.0], "y": 1.0}, lambda x, y: torch.clamp(x, 0, 1) / (x + y)),
]


@pytest.mark.parametrize("program, values, fn", JACOBIAN_CASES, ids=[c[0] for c in JACOBIAN_CASES])
def test_jacobian_matches_torch_autograd_functional(program, values, fn):
    args = ["eval", program, "--jacobian", "--format", "torch"]
    for name, value in values.items():
        args += ["--var", f"{name}={value}"]
    result = run(args)
    assert result.exit_code == 0, result.output
    tensors = tuple(torch.tensor(v) for v in values.values())
    want = torch.autograd.functional.jacobian(fn, tensors)
    want_lines = [f"{name}: {j!s}" for name, j in zip(values, want)]  # str(): f"{t}" of a 0-d tensor is "3.0"
    assert result.stdout.splitlines() == "\n".join(want_lines).splitlines()
