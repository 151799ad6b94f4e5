"""`eval --explain`: the chain rule behind each grad, and why a grad is None."""

import json

from typer.testing import CliRunner

from gradcalc.cli.commands import app

VALUES = ["--x", "2,1", "--y", "1,3", "--z", "5,2", "--seed", "1,1"]


def run(args):
    return CliRunner().invoke(app, args)


def test_chain_with_the_seed_and_the_resulting_grad():
    result = run(["eval", "a=x+2*y; b=a+z/2", *VALUES, "--explain"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "y.grad → tensor([2., 2.]): ∂b/∂y = ∂b/∂a · ∂a/∂y = 1 · 2 = 2, times the seed tensor([1., 1.])" in out
    assert "a.grad is None: 'a' is not a leaf (AddBackward0)" in out and "--retain a" in out


def test_every_reason_for_none():
    program = "a = x + 2*y; a.retain_grad(); a = a.detach(); b = a + z/2; c = w*2"
    result = run(["eval", program, *VALUES, "--w", "1", "--output", "b", "--no-grad", "y",
                  "--format", "torch", "--explain"])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 5  # torch's lines only on stdout
    err = result.stderr
    assert "x.grad is None: 'x' is not reached from b: its path is cut by detach() at line 1" in err
    assert "w.grad is None: 'w' is not reached from b: no path of grad-requiring operations" in err
    assert "y.grad is None: 'y' is an input that does not require grad (--no-grad y)" in err
    assert "a.grad is None: 'a' was detached at line 1" in err
    assert "z.grad → tensor([0.5000, 0.5000]): ∂b/∂z = 1/2" in err


def test_numbers_at_scalar_inputs_and_json():
    result = run(["eval", "a = sin(x); b = a*a + x*s", "--x", "0.5", "--s", "2", "--explain", "--format", "json"])
    doc = json.loads(result.stdout)
    x = doc["tensors"][0]
    assert x["explanation"].startswith("x.grad → tensor(2.8415): ∂b/∂x = ∂b/∂x + ∂b/∂a · ∂a/∂x")
    assert x["explanation"].endswith("= 2.84147")
