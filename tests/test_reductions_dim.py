"""Reductions along dims (sum, mean, prod, max, min, amax, amin, argmax, argmin, logsumexp,
norm, std, var) and the scans cumsum, cumprod, against PyTorch written out directly.

Each case is a gradcalc program `b = ...` over x and the same computation in torch; both run
in float32 and float64 on ordinary values, ties, zeros, nan and infinities, and the value of
b, its grad_fn, and x's grad are compared (within a few ulps: torch's reductions run in
vector lanes). Then the tuple results of max/min, errors in torch's words, the exact
backend, second derivatives, and the command line's `--format torch` lines.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch_oracle import run_torch
from typer.testing import CliRunner

from gradcalc.api import evaluate, parse
from gradcalc.cli import app
from gradcalc.engine.graph import build
from gradcalc.errors import GradcalcError
from gradcalc.symbolic.partials import Symbolic

NAN, INF = math.nan, math.inf
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom is <= 0:UserWarning")

# 3 x 4 inputs: plain; with ties; with zeros (a row with two, a row with one); with nan and
# infinities; with signed zeros.
PLAIN = [[0.5, -1.25, 2.0, 3.5], [1.5, 0.25, -0.75, 2.0], [-2.0, 4.0, 0.125, -3.0]]
TIES = [[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1.0, 5.0, -1.0, 5.0]]
ZEROS = [[0.0, 2.0, 3.0, 0.0], [1.5, 0.0, 4.0, -2.0], [2.0, 3.0, 0.5, 5.0]]
NANS = [[NAN, 1.0, 2.0, 3.0], [1.0, -INF, 5.0, INF], [0.0, 1.0, NAN, 3.0]]
SIGNED = [[0.0, -0.0, 1.0, -1.0], [-0.0, 0.0, -0.0, 0.0], [2.0, -2.0, 0.0, -0.0]]
INPUTS = {"plain": PLAIN, "ties": TIES, "zeros": ZEROS, "nans": NANS, "signed": SIGNED}
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# (program, torch function of x, the inputs it runs on)
ALL = tuple(INPUTS)
CASES = [
    # sum, mean: int, negative, tuple, None, () dims; keepdim
    ("x.sum(1)", lambda x: x.sum(1), ALL),
    ("x.sum(dim=0)", lambda x: x.sum(dim=0), ALL),
    ("torch.sum(x, -1, keepdim=True)", lambda x: torch.sum(x, -1, keepdim=True), ALL),
    ("x.sum((0, 1))", lambda x: x.sum((0, 1)), ALL),
    ("x.sum(dim=(1, 0), keepdim=True)", lambda x: x.sum(dim=(1, 0), keepdim=True), ("plain",)),
    ("x.sum(dim=None)", lambda x: x.sum(dim=None), ("plain",)),
    ("x.sum([])", lambda x: x.sum(()), ("plain",)),
    ("sum(x, -2)", lambda x: torch.sum(x, -2), ("plain",)),
    ("x.sum()", lambda x: x.sum(), ("plain",)),
    ("x.mean(1)", lambda x: x.mean(1), ALL),
    ("x.mean((0, -1))", lambda x: x.mean((0, -1)), ("plain", "nans")),
    ("torch.mean(x, 0, True)", lambda x: torch.mean(x, 0, True), ("plain",)),
    ("x.mean(dim=None)", lambda x: x.mean(dim=None), ("plain",)),
    ("x.mean([])", lambda x: x.mean(()), ("plain",)),
    ("x.mean()", lambda x: x.mean(), ("plain",)),
    # prod: one dim; zeros take prod_safe_zeros_backward for every slice
    ("x.prod(1)", lambda x: x.prod(1), ALL),
    ("x.prod(0, keepdim=True)", lambda x: x.prod(0, keepdim=True), ALL),
    ("torch.prod(x, -1)", lambda x: torch.prod(x, -1), ("plain", "zeros")),
    ("x.prod()", lambda x: x.prod(), ("plain", "zeros")),
    # max, min with a dim: values (the grad to the first of equal maxima), whole: MaxBackward1
    ("x.max(1).values", lambda x: x.max(1).values, ALL),
    ("x.max(dim=0).values", lambda x: x.max(dim=0).values, ALL),
    ("torch.max(x, 1, True).values", lambda x: torch.max(x, 1, True).values, ("plain", "ties")),
    ("x.min(-1).values", lambda x: x.min(-1).values, ALL),
    ("x.min(0, keepdim=True).values", lambda x: x.min(0, keepdim=True).values, ("plain", "ties", "nans")),
    ("x.max()", lambda x: x.max(), ("plain", "ties")),
    # amax, amin: the grad split evenly among ties (a nan slice's grad is nan)
    ("x.amax(1)", lambda x: x.amax(1), ALL),
    ("x.amax((0, 1))", lambda x: x.amax((0, 1)), ("plain", "ties")),
    ("x.amax()", lambda x: x.amax(), ("plain", "ties")),
    ("x.amin(0, keepdim=True)", lambda x: x.amin(0, keepdim=True), ALL),
    ("torch.amin(x, dim=-1)", lambda x: torch.amin(x, dim=-1), ("plain", "ties")),
    # logsumexp
    ("x.logsumexp(1)", lambda x: x.logsumexp(1), ALL),
    ("torch.logsumexp(x, (0, 1))", lambda x: torch.logsumexp(x, (0, 1)), ("plain", "nans")),
    ("x.logsumexp(-1, keepdim=True)", lambda x: x.logsumexp(-1, keepdim=True), ("plain",)),
    ("x.logsumexp(dim=0)", lambda x: x.logsumexp(dim=0), ("plain", "ties")),
    ("logsumexp(x)", lambda x: x.logsumexp((0, 1)), ("plain",)),
    # norm: p = 2, 1, 0, inf, -inf, p < 1, 1 < p < 2, p > 2, negative p; dims and keepdim
    ("x.norm(dim=1)", lambda x: x.norm(dim=1), ALL),
    ("x.norm(1, 1)", lambda x: x.norm(1, 1), ALL),
    ("x.norm(p=0, dim=1)", lambda x: x.norm(p=0, dim=1), ("plain", "zeros")),
    ("x.norm(1e400, 1)", lambda x: x.norm(INF, 1), ("plain", "ties", "zeros", "signed")),
    ("x.norm(-1e400, dim=0)", lambda x: x.norm(-INF, dim=0), ("plain", "ties")),
    ("x.norm(p=3, dim=0)", lambda x: x.norm(p=3, dim=0), ("plain", "zeros")),
    ("x.norm(0.5, -1)", lambda x: x.norm(0.5, -1), ("plain", "zeros")),
    ("x.norm(1.5, 1)", lambda x: x.norm(1.5, 1), ("plain", "zeros")),
    ("x.norm(-1, 1)", lambda x: x.norm(-1, 1), ("plain",)),
    ("x.norm(dim=(0, 1), keepdim=True)", lambda x: x.norm(dim=(0, 1), keepdim=True), ("plain", "zeros")),
    ("torch.norm(x, 2, 1, True)", lambda x: torch.norm(x, 2, 1, True), ("plain",)),
    ("x.norm()", lambda x: x.norm(), ("plain",)),
    ("x.norm(3)", lambda x: x.norm(3), ("plain",)),
    # var, std: dims, correction (float too), keepdim; the legacy unbiased overloads
    ("x.var(1)", lambda x: x.var(1), ALL),
    ("x.std(0)", lambda x: x.std(0), ("plain", "ties", "nans")),
    ("x.var(1, keepdim=True)", lambda x: x.var(1, keepdim=True), ("plain",)),
    ("x.std(dim=(0, 1))", lambda x: x.std(dim=(0, 1)), ("plain",)),
    ("x.var(correction=0)", lambda x: x.var(correction=0), ("plain",)),
    ("x.var(1, correction=2)", lambda x: x.var(1, correction=2), ("plain",)),
    ("x.std(0, correction=1.5)", lambda x: x.std(0, correction=1.5), ("plain",)),
    ("x.var(0, correction=3)", lambda x: x.var(0, correction=3), ("plain",)),
    ("x.var(1, True)", lambda x: x.var(1, True), ("plain",)),
    ("x.std(1, False, True)", lambda x: x.std(1, False, True), ("plain",)),
    ("x.var(False)", lambda x: x.var(False), ("plain",)),
    ("x.std(unbiased=False)", lambda x: x.std(unbiased=False), ("plain",)),
    ("x.var(dim=1, unbiased=False, keepdim=True)", lambda x: x.var(dim=1, unbiased=False, keepdim=True), ("plain",)),
    ("x.var()", lambda x: x.var(), ("plain", "ties")),
    ("x.std()", lambda x: x.std(), ("plain",)),
    ("x.var([])", lambda x: x.var(()), ("plain",)),  # torch's grad here is inf: followed
    ("x.var(correction=12)", lambda x: x.var(correction=12), ("plain",)),
    # cumsum, cumprod
    ("x.cumsum(1)", lambda x: x.cumsum(1), ALL),
    ("x.cumsum(dim=0)", lambda x: x.cumsum(dim=0), ("plain",)),
    ("torch.cumsum(x, -1)", lambda x: torch.cumsum(x, -1), ("plain",)),
    ("x.cumprod(1)", lambda x: x.cumprod(1), ALL),
    ("x.cumprod(0)", lambda x: x.cumprod(0), ("plain", "zeros")),
    # broadcasting after keepdim, and a loss
    ("x - x.mean(1, keepdim=True)", lambda x: x - x.mean(1, keepdim=True), ("plain",)),
    ("(x - x.amax(1, keepdim=True)).exp() / (x - x.amax(1, keepdim=True)).exp().sum(1, keepdim=True)",
     lambda x: (x - x.amax(1, keepdim=True)).exp() / (x - x.amax(1, keepdim=True)).exp().sum(1, keepdim=True),
     ("plain", "ties")),
    ("x / x.norm(dim=1, keepdim=True)", lambda x: x / x.norm(dim=1, keepdim=True), ("plain",)),
    ("(x - x.mean(0)) / x.std(0)", lambda x: (x - x.mean(0)) / x.std(0), ("plain",)),
]

ULPS = 4  # torch's kernels add and multiply in vector lanes; libm's exp and pow


def _case_ids():
    return [f"{program}|{name}|{dtype}" for program, _, names in CASES for name in names for dtype in DTYPES]


def _cases():
    return [(program, fn, name, dtype) for program, fn, names in CASES for name in names for dtype in DTYPES]


def _seed(shape) -> np.ndarray:
    pattern = np.array([1.0, -0.5, 2.0, 0.25, -1.5, 3.0])
    return np.resize(pattern, shape) if shape else np.array(1.0)


def assert_close(got, want, what: str, ulps: int = ULPS) -> None:
    """Equal nan and infinity positions, finite elements within `ulps` of torch's (relative to
    the larger of the pair), zeros of the same sign."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == want.dtype, (what, got.dtype, want.dtype)
    if got.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: nan\n{got}\n{want}")
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)], err_msg=what)
    g, w = got[finite], want[finite]
    scale = np.maximum(np.abs(g), np.abs(w))
    tolerance = ulps * np.spacing(scale.astype(want.dtype)).astype(np.float64) + np.finfo(want.dtype).tiny
    bad = np.abs(g.astype(np.float64) - w.astype(np.float64)) > tolerance
    assert not bad.any(), f"{what}: gradcalc\n{got}\ntorch\n{want}"
    zeros = (w == 0) & (g == 0)
    np.testing.assert_array_equal(np.signbit(g[zeros]), np.signbit(w[zeros]), err_msg=f"{what}: signed zeros")


@pytest.mark.parametrize("program, fn, name, dtype", _cases(), ids=_case_ids())
def test_matches_torch(program, fn, name, dtype):
    values = np.array(INPUTS[name], dtype=np.float64)
    x = torch.tensor(values, dtype=DTYPES[dtype], requires_grad=True)
    out = fn(x)
    seed = _seed(tuple(out.shape))
    out.backward(torch.tensor(seed, dtype=DTYPES[dtype]))
    graph = evaluate(f"b = {program}", {"x": values}, seeds=[seed] if out.dim() else [], dtype=dtype).graph
    b, gx = graph.bindings["b"], graph.bindings["x"]
    assert_close(b.value, out.detach().numpy(), f"{program} value")
    assert b.grad_fn == type(out.grad_fn).__name__, program
    assert b.requires_grad and not b.is_leaf and gx.is_leaf
    if x.grad is None:  # torch's norm_backward for p=0 is an undefined grad: gradcalc's zeros
        assert "p=0" in program and not gx.grad.any()
        return
    assert_close(gx.grad, x.grad.numpy(), f"{program} x.grad")


# -- 0-d and 1-d inputs -------------------------------------------------------------------

SMALL = [
    ("s.sum(0)", lambda s: s.sum(0)), ("s.sum(-1, True)", lambda s: s.sum(-1, True)), ("s.mean(0)", lambda s: s.mean(0)),
    ("s.prod(0)", lambda s: s.prod(0)), ("s.max(0).values", lambda s: s.max(0).values),
    ("s.min(dim=-1).values", lambda s: s.min(dim=-1).values), ("s.amax()", lambda s: s.amax()),
    ("s.amin(0)", lambda s: s.amin(0)), ("s.logsumexp(0)", lambda s: s.logsumexp(0)),
("s.norm(dim=0)", lambda s: s.norm(dim=0)),
    ("s.norm(3, 0)", lambda s: s.norm(3, 0)), ("s.var(0, correction=0)", lambda s: s.var(0, correction=0)),
    ("s.cumsum(0)", lambda s: s.cumsum(0)), ("s.cumprod(-1)", lambda s: s.cumprod(-1)),
    ("s.sum([]) * s.argmax()", lambda s: s.sum(()) * s.argmax()),
]



@pytest.mark.parametrize("value", [[2.5], [-1.5, 0.0, 3.0, 3.0, -4.0]], ids=["0-d", "1-d"])
@pytest.mark.parametrize("program, fn", SMALL, ids=[p for p, _ in SMALL])
def test_small_inputs_match_torch(program, fn, value):
    values = np.array(value[0] if len(value) == 1 else value)
    s = torch.tensor(values, dtype=torch.float32, requires_grad=True)
    out = fn(s)
    seed = _seed(tuple(out.shape))
    out.backward(torch.tensor(seed, dtype=torch.float32))
    graph = evaluate(f"b = {program}", {"s": values}, seeds=[seed] if out.dim() else []).graph
    b = graph.bindings["b"]
    assert_close(b.value, out.detach().numpy(), program)
    assert b.grad_fn == type(out.grad_fn).__name__, program
    assert_close(graph.bindings["s"].grad, s.grad.numpy(), f"{program} grad")


def test_zero_d_takes_the_empty_dim_list_and_index_0():
    s = torch.tensor(2.5, requires_grad=True)
    out = s.logsumexp(()) + (s.argmin(0) + s.max(0).indices)
    out.backward()
    graph = evaluate("b = s.logsumexp([]) + (s.argmin(0) + s.max(0).indices)", {"s": np.array(2.5)}).graph
    assert_close(graph.bindings["b"].value, out.detach().numpy(), "value")
    assert_close(graph.bindings["s"].grad, s.grad.numpy(), "grad")


def test_empty_dims_match_torch():
    e = torch.zeros(2, 0, requires_grad=True)
    for program, fn in [("e.sum(1)", lambda e: e.sum(1)), ("e.mean(1)", lambda e: e.mean(1)),
                        ("e.prod(1)", lambda e: e.prod(1)), ("e.logsumexp(1)", lambda e: e.logsumexp(1)),
                        ("e.norm(dim=1)", lambda e: e.norm(dim=1)), ("e.amax(0)", lambda e: e.amax(0)),
                        ("e.cumsum(1)", lambda e: e.cumsum(1))]:
        out = fn(e)
        graph = evaluate(f"b = {program}", {"e": np.zeros((2, 0))}, seeds=[np.ones(tuple(out.shape))]).graph
        assert_close(graph.bindings["b"].value, out.detach().numpy(), program)
        assert graph.bindings["e"].grad.shape == (2, 0)


# -- tuple results: max/min with a dim ----------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", ["plain", "ties", "nans", "signed"])
@pytest.mark.parametrize("fn", ["max", "min"])
def test_values_and_indices(fn, name, dtype):
    values = np.array(INPUTS[name])
    program = f"v, i = x.{fn}(1, keepdim=False); b = v * 2; j = x.{fn}(dim=0).indices"
    graph = evaluate(program, {"x": values}, outputs=["b"], seeds=[np.array([1.0, -2.0, 0.5])], dtype=dtype).graph
    x = torch.tensor(values, dtype=DTYPES[dtype], requires_grad=True)
    v, i = getattr(x, fn)(1, keepdim=False)
    (v * 2).backward(torch.tensor([1.0, -2.0, 0.5], dtype=DTYPES[dtype]))
    j = getattr(x, fn)(dim=0).indices
    got_v, got_i, got_j = (graph.bindings[n] for n in "vij")
    assert_close(got_v.value, v.detach().numpy(), "values")
    assert got_i.value.dtype == np.int64 and got_j.value.dtype == np.int64
    np.testing.assert_array_equal(got_i.value, i.numpy())
    np.testing.assert_array_equal(got_j.value, j.numpy())
    assert got_v.grad_fn == f"{fn.capitalize()}Backward0"
    assert got_i.grad_fn is None and not got_i.requires_grad and got_i.is_leaf
    assert_close(graph.bindings["x"].grad, x.grad.numpy(), "x.grad")


def test_keepdim_tuple_and_function_forms():
    values = np.array(TIES)
    x = torch.tensor(values, dtype=torch.float32, requires_grad=True)
    for program, want in [("b = torch.max(x, 1, True).indices", torch.max(x, 1, True).indices),
                          ("b = max(x, dim=-1, keepdim=True).values", max_values := torch.max(x, -1, True).values),
                          ("b = x.min(0).indices", x.min(0).indices),
                          ("b = x.argmax()", x.argmax()), ("b = x.argmax(1)", x.argmax(1)),
                          ("b = torch.argmin(x, 0, True)", torch.argmin(x, 0, True)),
                          ("b = x.argmax(keepdim=True)", x.argmax(keepdim=True)),
                          ("b = argmin(x, dim=None)", torch.argmin(x, dim=None))]:
        graph = evaluate(program, {"x": values}, run_backward=False).graph
        np.testing.assert_array_equal(graph.bindings["b"].value, want.detach().numpy(), err_msg=program)
        assert graph.bindings["b"].value.dtype == want.detach().numpy().dtype, program
    assert max_values.grad_fn is not None


def test_max_of_two_tensors_is_maximum():
    x, y = np.array([1.0, 5.0, 2.0]), np.array([[3.0, 5.0, 0.0], [0.0, 9.0, 2.0]])
    graph = evaluate("b = max(x, y); c = x.min(y)", {"x": x, "y": y}, outputs=["b", "c"],
                     seeds=[np.ones((2, 3)), np.ones((2, 3))]).graph
    tx, ty = torch.tensor(x, dtype=torch.float32, requires_grad=True), torch.tensor(y, dtype=torch.float32,
                                                                                    requires_grad=True)
    b, c = torch.max(tx, ty), tx.min(ty)
    b.backward(torch.ones(2, 3))
    c.backward(torch.ones(2, 3))
    assert graph.bindings["b"].grad_fn == "MaximumBackward0" == type(b.grad_fn).__name__
    assert graph.bindings["c"].grad_fn == "MinimumBackward0" == type(c.grad_fn).__name__
    assert_close(graph.bindings["x"].grad, tx.grad.numpy(), "x.grad")
    assert_close(graph.bindings["y"].grad, ty.grad.numpy(), "y.grad")


def test_integer_tensors_stay_integers():
    values = np.array(TIES)
    x = torch.tensor(values)
    i = x.argmax(1)
    for program, want in [("b = x.argmax(1).sum()", i.sum()), ("b = x.argmax(1).sum(0)", i.sum(0)),
                          ("b = x.argmax(1).prod(0)", i.prod(0)), ("b = x.argmax(1).max()", i.max()),
                          ("b = x.argmax(1).cumsum(0)", i.cumsum(0)), ("b = x.argmax(1).amax(0)", i.amax(0)),
                          ("b = x.argmax(1).max(0).values", i.max(0).values)]:
        graph = evaluate(program, {"x": values}, run_backward=False).graph
        got = graph.bindings["b"].value
        assert got.dtype == np.int64, program
        np.testing.assert_array_equal(got, want.numpy(), err_msg=program)


# -- the loss of a classifier ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cross_entropy_by_hand(dtype):
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    y = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    graph = evaluate("loss = -(log(p) * y).sum(dim=1).mean()", {"p": p, "y": y}, no_grad=["y"], dtype=dtype).graph
    tp = torch.tensor(p, dtype=DTYPES[dtype], requires_grad=True)
    loss = -(torch.log(tp) * torch.tensor(y, dtype=DTYPES[dtype])).sum(dim=1).mean()
    loss.backward()
    assert_close(graph.bindings["loss"].value, loss.detach().numpy(), "loss", ulps=2)
    assert graph.bindings["loss"].grad_fn == type(loss.grad_fn).__name__ == "NegBackward0"
    mean = evaluate("loss = (-(log(p) * y).sum(dim=1)).mean()", {"p": p, "y": y}, no_grad=["y"]).graph
    assert mean.bindings["loss"].grad_fn == "MeanBackward0"
    assert_close(graph.bindings["p"].grad, tp.grad.numpy(), "p.grad", ulps=2)


# -- errors in torch's words -------------------------------------------------------------------

ERRORS = [
    ("x.sum(2)", lambda x: x.sum(2)),
    ("x.sum((0, 0))", lambda x: x.sum((0, 0))),
    ("x.mean((1, -1))", lambda x: x.mean((1, -1))),
    ("x.prod(-3)", lambda x: x.prod(-3)),
    ("x.max(2).values", lambda x: x.max(2).values),
    ("x.amax(5)", lambda x: x.amax(5)),
    ("x.argmax(2)", lambda x: x.argmax(2)),
    ("x.cumsum(-3)", lambda x: x.cumsum(-3)),
    ("x.cumprod(2)", lambda x: x.cumprod(2)),
    ("x.logsumexp([])", lambda x: x.logsumexp(())),
    ("x.norm(dim=(1, 1))", lambda x: x.norm(dim=(1, 1))),
    ("x.var(4)", lambda x: x.var(4)),
    ("e.max(1).values", lambda e: e.max(1).values),
    ("e.amax(1)", lambda e: e.amax(1)),
    ("e.amax()", lambda e: e.amax()),
    ("e.max()", lambda e: e.max()),
    ("e.argmax()", lambda e: e.argmax()),
    ("e.argmin(1)", lambda e: e.argmin(1)),
    ("e.norm(1e400, dim=1)", lambda e: e.norm(INF, dim=1)),
    ("e.norm(-1)", lambda e: e.norm(-1)),
    ("s.sum(1)", lambda s: s.sum(1)),
    ("s.max(1).values", lambda s: s.max(1).values),
]


@pytest.mark.parametrize("program, fn", ERRORS, ids=[p for p, _ in ERRORS])
def test_errors_in_torchs_words(program, fn):
    name = program[0]
    value = {"x": np.array(PLAIN), "e": np.zeros((2, 0)), "s": np.array(1.5)}[name]
    with pytest.raises((RuntimeError, IndexError)) as caught:
        fn(torch.tensor(value, dtype=torch.float32, requires_grad=True))
    with pytest.raises(GradcalcError) as error:
        evaluate(f"b = {program}", {name: value})
    assert error.value.message == str(caught.value).splitlines()[0]
    assert error.value.line == 1  # placed under the operation that raised it


@pytest.mark.parametrize("program, message", [
    ("b = x.argmax(1).mean()", "mean(): could not infer output dtype. Input dtype must be either a floating point "
                               "or complex dtype. Got: Long"),
    ("b = x.argmax(1).std()", "std and var only support floating point and complex dtypes"),
    ("b = x.argmax(1).norm()", "linalg.vector_norm: Expected a floating point or complex tensor as input. Got Long"),
])
def test_integer_errors(program, message):
    with pytest.raises(GradcalcError) as error:
        evaluate(program, {"x": np.array(PLAIN)})
    assert error.value.message == message


@pytest.mark.parametrize("program, fragment", [
    ("b = max(x, 2.0)", "takes two tensors"),
    ("b = x.prod((0, 1))", "must be an integer"),
    ("b = x.max((0, 1))", "max("),
    ("b = x.sum(keepdim=True)", "missing required argument 'dim'"),
    ("b = x.max(1)", "returns a tuple (values, indices)"),
    ("b = logsumexp(x, dim=None)", "logsumexp"),
    ("b = x.cumsum()", "cumsum() missing required argument 'dim'"),
    ("b = sum(2, 1)", "takes tensors"),
])
def test_misuse_is_an_error(program, fragment):
    with pytest.raises(GradcalcError) as error:
        evaluate(program, {"x": np.array(PLAIN)} if "x" in program else {})
    assert fragment in error.value.message, error.value.message


# -- the exact backend -------------------------------------------------------------------------

EXACT = ["x.sum(1)", "x.mean((0, 1))", "x.prod(1)", "x.prod(0)", "x.max(1).values", "x.min(0).values",
         "x.amax(1)", "x.amin(0, keepdim=True)", "x.logsumexp(1)", "x.norm(dim=1)", "x.norm(1, 0)",
         "x.norm(3, 1)", "x.norm(1e400, 1)", "x.var(1)", "x.std(0)", "x.var(correction=0)", "x.cumsum(1)",
         "x.cumprod(1)", "x.cumprod(0)", "x.sum(1) * x.argmax(1)", "x.max(1).indices * x.sum(1)"]


@pytest.mark.parametrize("name", ["plain", "ties", "zeros"])
@pytest.mark.parametrize("program", EXACT)
def test_exact_agrees_with_float64(program, name):
    values = np.array(INPUTS[name])
    seed = _seed(tuple(evaluate(f"b = {program}", {"x": values}, run_backward=False).graph.bindings["b"].shape))
    seeds = [seed] if seed.ndim else []
    exact = evaluate(f"b = {program}", {"x": values}, seeds=seeds, dtype="exact").graph
    floats = evaluate(f"b = {program}", {"x": values}, seeds=seeds, dtype="float64").graph
    for n in ("b", "x"):
        for what in ("value", "grad"):
            want = getattr(floats.bindings[n], what)
            if want is None:
                continue
            got = np.array([float(v) for v in np.asarray(getattr(exact.bindings[n], what)).ravel()]).reshape(want.shape)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, err_msg=f"{program} {n}.{what}")


def test_exact_keeps_fractions():
    graph = evaluate("b = x.mean(1)", {"x": np.array([[1.0, 2.0, 2.0], [0.5, 0.25, 1.0]])},
                     seeds=[np.ones(2)], dtype="exact").graph
    assert [str(v) for v in graph.bindings["b"].value] == ["5/3", "7/12"]
    assert {str(v) for v in graph.bindings["x"].grad.ravel()} == {"1/3"}


# -- second derivatives ------------------------------------------------------------------------

HESSIAN = [
    ("x.sum(1)", lambda x: x.sum(1)), ("x.mean(0)", lambda x: x.mean(0)), ("x.prod(1)", lambda x: x.prod(1)),
    ("x.max(1).values", lambda x: x.max(1).values), ("x.amin(0)", lambda x: x.amin(0)),
    ("x.logsumexp(1)", lambda x: x.logsumexp(1)), ("x.norm(dim=1)", lambda x: x.norm(dim=1)),
    ("x.norm(1, 1)", lambda x: x.norm(1, 1)), ("x.norm(3, 0)", lambda x: x.norm(3, 0)),
    ("x.norm(1.5, 1)", lambda x: x.norm(1.5, 1)), ("x.norm(0.5, 0)", lambda x: x.norm(0.5, 0)),
    ("x.norm(1e400, 1)", lambda x: x.norm(INF, 1)), ("x.var(1)", lambda x: x.var(1)),
    ("x.std(0, keepdim=True)", lambda x: x.std(0, keepdim=True)), ("x.std()", lambda x: x.std()),
    ("x.cumsum(1)", lambda x: x.cumsum(1)), ("x.cumprod(1)", lambda x: x.cumprod(1)),
    ("x.prod(0)", lambda x: x.prod(0)),
]


@pytest.mark.parametrize("program, fn", HESSIAN, ids=[p for p, _ in HESSIAN])
def test_hessian_matches_torch(program, fn):
    values = np.array([[0.5, -1.25, 2.0], [1.5, 0.25, -0.75]])
    out_shape = tuple(fn(torch.tensor(values)).shape)
    weights = np.resize(np.array([0.7, -1.3, 0.4, 1.1]), out_shape)
    w_text = json.dumps(weights.tolist())
    result = CliRunner().invoke(app, ["eval", f"b = (({program}) * w).sum()", "--var", f"x={json.dumps(values.tolist())}",
                                      "--var", f"w={w_text}", "--no-grad", "w", "--hessian", "--format", "json",
                                      "--dtype", "float64"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    w = torch.tensor(weights)
    want = torch.autograd.functional.hessian(lambda x: (fn(x) * w).sum(), torch.tensor(values))
    np.testing.assert_allclose(np.asarray(doc["hessian"]["x"]["x"], dtype=np.float64), want.numpy(),
                               rtol=1e-9, atol=1e-12, err_msg=program)


# -- the command line: torch's printed lines -----------------------------------------------


CLI = [
    ("loss = -(log(p) * y).sum(dim=1).mean()", {"p": [[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]],
                                                  "y": [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]}),
    ("m = x.max(1).values; b = (m * x.sum(1)).sum()", {"x": TIES}),
    ("a = x.amax(0, keepdim=True); b = (x - a).exp().sum(0).log().sum()", {"x": TIES}),
    ("n = x.norm(dim=1, keepdim=True); b = (x / n).sum()", {"x": PLAIN}),
    ("b = (x.var(1) + x.std(1, keepdim=True).sum() + x.cumsum(1).sum(1) + x.cumprod(0).sum(1)).sum()", {"x": PLAIN}),
    ("b = x.prod(1).sum() + x.logsumexp(0).sum() + x.mean((0, 1))", {"x": ZEROS}),
    ("v, i = x.max(1); b = (v * i).sum()", {"x": TIES}),
    ("j = x.argmin(0); k = x.min(dim=0).indices; b = (x.amin(0) * j + k).sum()", {"x": NANS}),
]


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("program, values", CLI, ids=[p for p, _ in CLI])
def test_format_torch_prints_what_torch_prints(program, values, dtype):
    args = ["eval", program, "--format", "torch", "--dtype", dtype]
    for name, value in values.items():
        args += ["--var", f"{name}={json.dumps(value)}"]
    if "y" in values:
        args += ["--no-grad", "y"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    arrays = {k: np.array(v) for k, v in values.items()}
    oracle = run_torch(program, arrays, dtype=dtype, no_grad=["y"] if "y" in values else [])
    assert oracle.error is None, oracle.error
    assert result.stdout == oracle.stdout


@pytest.mark.parametrize("program", ["b = x.sum(1).sum()", "v, i = x.max(1); b = v.sum()", "b = x.norm(3, 1).sum()",
                                     "b = x.var(1).sum()", "b = x.cumprod(1).sum()", "b = x.amax(1).sum()"])
def test_diff_and_explain_show_partials(program):
    values = ["--var", f"x={json.dumps(PLAIN)}"]
    diff = CliRunner().invoke(app, ["diff", program, *values])
    assert diff.exit_code == 0, diff.stderr
    assert "∂b/∂x = " in diff.stdout
    explain = CliRunner().invoke(app, ["eval", program, *values, "--explain", "--format", "torch"])
    assert explain.exit_code == 0, explain.stderr


def test_display_names_the_dims():
    graph = build(parse("a = x.sum(1); c = x.norm(3, 1); d = x.var(0, correction=0); e = x.amax((0, 1))"),
                  {"x": np.array(PLAIN)})
    shown = {name: str(Symbolic(graph).of(graph.bindings[name])) for name in "acde"}
    assert shown == {"a": "sum(x, 1)", "c": "norm(x, p=3, dim=1)", "d": "var(x, 0, correction=0)",
                     "e": "amax(x, (0, 1))"}
