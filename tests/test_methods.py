"""Operators as methods and torch's other names for an op (`x.mul(y)`, `torch.clip(x, 0, 1)`):
callable as a method or with torch's prefix, never bare, so that their names stay free for
the program's tensors. Each is run by torch under its own name and compared."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gradcalc.api import evaluate, parse
from gradcalc.cli import app
from gradcalc.engine.graph import find_inputs
from gradcalc.engine.ops import _CORE, OPS, VOCABULARY
from gradcalc.errors import ParseError

METHODS = VOCABULARY.methods

X, Y = [0.5, -1.5, 2.0], [2.0, 0.25, -3.0]

# (gradcalc's program for b, the same in torch) over x and y
CASES = {
    "add": ("b = x.add(y)", lambda x, y: x.add(y)),
    "add number": ("b = x.add(2)", lambda x, y: x.add(2)),
    "sub": ("b = x.sub(y)", lambda x, y: x.sub(y)),
    "sub number": ("b = x.sub(2)", lambda x, y: x.sub(2)),
    "subtract": ("b = torch.subtract(x, y)", lambda x, y: torch.subtract(x, y)),
    "mul": ("b = torch.mul(x, y)", lambda x, y: torch.mul(x, y)),
    "multiply": ("b = x.multiply(y)", lambda x, y: x.multiply(y)),
    "div": ("b = x.div(y)", lambda x, y: x.div(y)),
    "divide": ("b = torch.divide(x, 2)", lambda x, y: torch.divide(x, 2)),
    "true_divide": ("b = x.true_divide(y)", lambda x, y: x.true_divide(y)),
    "neg": ("b = x.neg()", lambda x, y: x.neg()),
    "negative": ("b = torch.negative(x)", lambda x, y: torch.negative(x)),
    "positive": ("b = x.positive() * y", lambda x, y: x.positive() * y),
    "absolute": ("b = x.absolute()", lambda x, y: x.absolute()),
    "arctan": ("b = torch.arctan(x)", lambda x, y: torch.arctan(x)),
    "arcsin": ("b = x.arcsin()", lambda x, y: x.arcsin()),
    "arccos": ("b = torch.arccos(x)", lambda x, y: torch.arccos(x)),
    "arctan2": ("b = torch.arctan2(x, y)", lambda x, y: torch.arctan2(x, y)),
    "clip": ("b = x.clip(-1, 1)", lambda x, y: x.clip(-1, 1)),
    "clip tensors": ("b = torch.clip(x, y, 1.5)", lambda x, y: torch.clip(x, y, torch.tensor(1.5))),
}


def test_every_method_name_of_the_core_rows_is_a_case():
    """The operators' and elementwise aliases' method names (other sections' method names,
    comparisons' `x.ne(y)`, shapes' `x.view(...)`, are tested in those sections' files)."""
    core = {name for name, sigs in METHODS.items() if any(OPS[s.op] in _CORE for s in sigs)}
    covered = {source.split("(")[0].split(".")[-1] for source, _ in CASES.values()}
    assert core <= covered, sorted(core - covered)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_method_and_alias_match_torch(case, dtype):
    source, fn = case
    seed = np.array([1.0, -2.0, 0.5])
    inputs = {n: np.array(v) for n, v in (("x", X), ("y", Y)) if n in find_inputs(parse(source))}
    ev = evaluate(source, inputs, seeds=[seed], dtype=dtype)
    tdtype = getattr(torch, dtype)
    x = torch.tensor(X, dtype=tdtype, requires_grad=True)
    y = torch.tensor(Y, dtype=tdtype, requires_grad=True)
    b = fn(x, y)
    b.backward(torch.tensor(seed, dtype=tdtype))
    got = ev.graph.bindings
    assert got["b"].grad_fn == type(b.grad_fn).__name__
    np.testing.assert_array_equal(got["b"].value, b.detach().numpy())
    for name, leaf in ((n, {"x": x, "y": y}[n]) for n in inputs):
        want = None if leaf.grad is None else leaf.grad.numpy()
        have = got[name].grad
        assert (have is None) == (want is None), name
        if want is not None:
            np.testing.assert_allclose(have, want, rtol=2e-7 if dtype == "float32" else 1e-15, err_msg=name)


@pytest.mark.parametrize("name", sorted(set(METHODS) - set(VOCABULARY.functions)))
def test_a_method_name_is_free_for_a_tensor_and_not_callable_bare(name):
    program = parse(f"{name} = x * 2; b = {name} + 1")
    assert [s.target for s in program.statements] == [name, "b"]
    signature = METHODS[name][0]
    with pytest.raises(ParseError) as info:
        parse(f"b = {name}({', '.join(['x'] * len(signature.params))})")
    assert info.value.message == f"unknown function '{name}'"
    assert name not in VOCABULARY.functions and signature.op in OPS


def test_a_bare_alias_says_how_to_call_it():
    result = CliRunner().invoke(app, ["eval", "b = clip(x, 0, 1)", "--x", "1"])
    assert result.exit_code == 2
    assert "hint: it is a method, or torch's function: x.clip(...) or torch.clip(...)" in result.stderr
