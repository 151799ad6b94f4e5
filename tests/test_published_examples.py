"""Programs as published PyTorch examples write them, through the command line, against the
same program run by torch: `--format torch` prints what `print(t.data, t.grad)` prints."""

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from gradcalc.cli import app

X23 = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
W43 = [[0.1, 0.2, 0.3], [-0.4, 0.5, 0.6], [0.7, -0.8, 0.9], [1.0, 1.1, -1.2]]


def _cross_entropy():
    x = torch.tensor(X23, requires_grad=True)
    W = torch.tensor(W43, requires_grad=True)
    b = torch.tensor([0.1, -0.2, 0.3, 0.0], requires_grad=True)
    t = torch.tensor([3, 0])
    F.cross_entropy(x @ W.T + b, t).backward()
    return x, W, b, t


def _softmax():
    z = torch.tensor(X23, requires_grad=True)
    y = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], requires_grad=True)
    p = torch.softmax(z, dim=1)
    (-(torch.log(p) * y).sum(dim=1).mean()).backward()
    return z, y


def _slices():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    A = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    (x[1:].sum() + x[0] * A[:, 1].mean()).backward()
    return x, A


def _stack():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, -1.0], requires_grad=True)
    (torch.stack([x, 2 * x]).T @ w).backward(torch.tensor([1.0, -2.0, 0.5]))
    return x, w


def _regression():
    X = torch.linspace(-1, 1, 20).reshape(10, 2).requires_grad_()
    w = torch.tensor([0.5, -1.0], requires_grad=True)
    y = torch.linspace(0, 1, 10).requires_grad_()
    ((X @ w - y) ** 2).mean().backward()
    return X, w, y


EXAMPLES = {
    "cross entropy of a linear layer": (
        ["loss = F.cross_entropy(x @ W.T + b, t)", "--x", str(X23), "--W", str(W43), "--b", "0.1,-0.2,0.3,0",
         "--t", "tensor([3, 0])"], _cross_entropy),
    "softmax and a loss along dim 1": (
        ["p = softmax(z, dim=1); loss = -(log(p) * y).sum(dim=1).mean()", "--z", str(X23),
         "--y", "[[0,0,1],[1,0,0]]"], _softmax),
    "slices and a column": (
        ["y = x[1:].sum() + x[0] * A[:, 1].mean()", "--x", "1,2,3", "--A", "[[1,2],[3,4],[5,6]]"], _slices),
    "stack, transpose, matmul": (
        ["h = torch.stack([x, 2*x]).T @ w", "--x", "1,2,3", "--w", "0.5,-1", "--seed", "1,-2,0.5"], _stack),
    "least squares over linspace": (
        ["loss = ((X @ w - y)**2).mean()", "--X", "linspace(-1, 1, 20).reshape(10, 2)", "--w", "0.5,-1",
         "--y", "linspace(0, 1, 10)"], _regression),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("example", EXAMPLES.values(), ids=EXAMPLES.keys())
def test_published_example_prints_what_pytorch_prints(example, dtype):
    args, torch_program = example
    with _default_dtype(getattr(torch, dtype)):
        tensors = torch_program()
    want = io.StringIO()
    with contextlib.redirect_stdout(want):
        for t in tensors:
            print(t.data, t.grad)
    result = CliRunner().invoke(app, ["eval", *args, "--format", "torch", "--dtype", dtype])
    assert result.exit_code == 0, result.output
    assert result.stdout == want.getvalue()


@contextlib.contextmanager
def _default_dtype(dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
