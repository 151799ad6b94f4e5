"""rows/nn.py and the core rows softplus(beta, threshold), clamp's overloads and add/sub's
alpha, against torch written out directly: values, grads, grad_fn names and graphs, edge
points (0, -0., the kinks, +-inf, nan, the thresholds themselves), torch's vector loop and
its scalar tail (a tensor of 40 float32 elements is 32 in vector lanes and 8 in the tail),
broadcasting, keywords and errors.

Bit-identity is asserted where torch's result depends on no libm (masks, min/max, products
by parameters, FMAs); elsewhere within a few ulps (torch's vectorised libm is Sleef's)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from gradcalc.api import evaluate, parse
from gradcalc.cli import app
from gradcalc.engine.grad_fns import grad_graph
from gradcalc.engine.kernels import cpu_capability
from gradcalc.engine.ops import OPS
from gradcalc.errors import GradcalcError

DTYPES = {"float32": torch.float32, "float64": torch.float64}
NAN, INF = math.nan, math.inf
# The edges of every row below, and values either side of each kink.
EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 3.0, -3.0, 6.0, -6.0, 2.0, -2.0, 20.0, 21.0, -90.0,
         1e-30, -1e-30, 1e30, -1e30, NAN, INF, -INF, 0.4, -0.4, 0.3, -0.7, 2.5, -2.5]


def ulps(a, b) -> np.ndarray:
    """Elementwise distance in units in the last place (nan to nan 0, -0. to 0. inf)."""
    a, b = np.asarray(a), np.asarray(b).astype(np.asarray(a).dtype)
    itype = np.int32 if a.dtype == np.float32 else np.int64

    def ordered(x):
        i = x.view(itype).astype(np.int64)
        return np.where(i < 0, np.iinfo(itype).min - i, i)

    d = np.abs(ordered(a) - ordered(b)).astype(np.float64)
    both_zero = (a == 0) & (b == 0)
    d = np.where(both_zero & (np.signbit(a) != np.signbit(b)), np.inf, np.where(both_zero, 0, d))
    return np.where(np.isnan(a) & np.isnan(b), 0, np.where(np.isnan(a) | np.isnan(b), np.inf, d))


def run(program: str, values: dict, dtype: str = "float32", seed=None):
    """gradcalc's graph after backward (seed ones of the last tensor's shape by default)."""
    graph = evaluate(program, values, dtype=dtype, run_backward=False).graph
    shape = graph.bindings[graph.last_assigned].shape
    seeds = [] if shape == () else [np.ones(shape) if seed is None else seed]
    return evaluate(program, values, dtype=dtype, seeds=seeds).graph


def torch_leaf(values, dtype: str, requires_grad: bool = True) -> torch.Tensor:
    return torch.tensor(np.asarray(values, dtype=np.float64), dtype=DTYPES[dtype]).requires_grad_(requires_grad)


def backward(out: torch.Tensor) -> None:
    out.backward(torch.ones_like(out))


def assert_matches(graph, name: str, tensor: torch.Tensor, *, value_ulps: float = 0, grad_ulps: float = 0,
                   grad_of: torch.Tensor | None = None, grad_name: str = "x") -> None:
    node = graph.bindings[name]
    want = tensor.detach().numpy()
    assert node.value.dtype == want.dtype and node.shape == want.shape
    far = ulps(node.value, want) > value_ulps
    assert not far.any(), (f"{name}: {node.value[far] if node.value.ndim else node.value} != torch "
                           f"{want[far] if want.ndim else want}")
    assert node.grad_fn == (None if tensor.grad_fn is None else type(tensor.grad_fn).__name__)
    assert node.requires_grad == tensor.requires_grad and node.is_leaf == tensor.is_leaf
    if grad_of is not None:
        got, want_grad = graph.bindings[grad_name].grad, grad_of.grad.numpy()
        far = ulps(got, want_grad) > grad_ulps
        assert not far.any(), f"{grad_name}.grad at {np.flatnonzero(far)}: {got[far]} != torch {want_grad[far]}"


# ---------------------------------------------------------------------------------------
# Elementwise activations: every edge, in scalar code (a few elements) and in vector lanes

# (program, torch, value ulps, grad ulps): 0 where torch's result depends on no libm
ACTIVATIONS = [
    ("leaky_relu(x)", lambda t: F.leaky_relu(t), 0, 0),
    ("F.leaky_relu(x, negative_slope=0.2)", lambda t: F.leaky_relu(t, 0.2), 0, 0),
    ("leaky_relu(x, -0.5)", lambda t: F.leaky_relu(t, -0.5), 0, 0),
    ("elu(x)", lambda t: F.elu(t), 1, 2),
    ("elu(x, alpha=0.5)", lambda t: F.elu(t, alpha=0.5), 1, 2),
    ("selu(x)", torch.selu, 1, 2),
    ("celu(x, 0.3)", lambda t: F.celu(t, 0.3), 1, 2),
    ("celu(x, alpha=2.5)", lambda t: F.celu(t, alpha=2.5), 1, 2),
    ("hardtanh(x)", F.hardtanh, 0, 0),
    ("hardtanh(x, -0.5, 2.)", lambda t: F.hardtanh(t, -0.5, 2.0), 0, 0),
    ("F.hardtanh(x, min_val=0., max_val=0.)", lambda t: F.hardtanh(t, 0.0, 0.0), 0, 0),
    ("relu6(x)", F.relu6, 0, 0),
    ("hardswish(x)", F.hardswish, 0, 0),
    ("softsign(x)", F.softsign, 0, 0),
    ("softshrink(x)", F.softshrink, 0, 0),
    ("softshrink(x, lambd=2.)", lambda t: F.softshrink(t, 2.0), 0, 0),
    ("hardshrink(x)", F.hardshrink, 0, 0),
    ("hardshrink(x, 3)", lambda t: F.hardshrink(t, 3.0), 0, 0),
    ("threshold(x, 0.5, -7.)", lambda t: F.threshold(t, 0.5, -7.0), 0, 0),
    ("F.threshold(x, threshold=-1, value=2)", lambda t: F.threshold(t, -1.0, 2.0), 0, 0),
    ("softplus(x, 2., 1.)", lambda t: F.softplus(t, 2.0, 1.0), 1, 1),
    ("softplus(x, beta=0.5)", lambda t: F.softplus(t, beta=0.5), 1, 1),
    ("softplus(x, threshold=3)", lambda t: F.softplus(t, threshold=3), 1, 1),
    ("x.clamp(min=0.5)", lambda t: t.clamp(min=0.5), 0, 0),
    ("x.clamp(max=-0.)", lambda t: t.clamp(max=-0.0), 0, 0),
    ("clamp(x, None, 1)", lambda t: torch.clamp(t, None, 1), 0, 0),
    ("x.clip(min=-0.5)", lambda t: t.clip(min=-0.5), 0, 0),
    ("clamp(x, -1, 1)", lambda t: torch.clamp(t, -1, 1), 0, 0),
    ("x.clamp_min(0.)", lambda t: t.clamp_min(0.0), 0, 0),
    ("torch.clamp_max(x, -0.)", lambda t: torch.clamp_max(t, -0.0), 0, 0),
    ("x.add(x * x, alpha=0.3)", lambda t: t.add(t * t, alpha=0.3), 0, 0),
    ("x.sub(0.1, alpha=3)", lambda t: t.sub(0.1, alpha=3), 0, 0),
    ("torch.add(x, 2.5, alpha=-0.7)", lambda t: torch.add(t, 2.5, alpha=-0.7), 0, 0),
    ("x.masked_fill(x < 0.5, -2.)", lambda t: t.masked_fill(t < 0.5, -2.0), 0, 0),
    ("where(x > 0, x * x, 0.)", lambda t: torch.where(t > 0, t * t, 0.0), 0, 0),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", ["scalar code", "vector lanes"])
@pytest.mark.parametrize("program, fn, value_ulps, grad_ulps", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_on_every_edge_as_torch(program, fn, value_ulps, grad_ulps, size, dtype):
    """Values, grads (seed ones), grad_fn, requires_grad and is_leaf, at every edge point. In
    vector lanes, each edge value lands in the vector loop and in its scalar tail."""
    if size == "scalar code":
        values = EDGES[:14]
    else:   # 40 elements: the first 32 (16 in float64) in vector lanes, the rest in the tail
        values = (EDGES * 2)[:40]
        values[-8:] = EDGES[-8:]
    graph = run(f"b = {program}", {"x": values}, dtype)
    x = torch_leaf(values, dtype)
    b = fn(x)
    backward(b)
    assert_matches(graph, "b", b, value_ulps=value_ulps, grad_ulps=grad_ulps, grad_of=x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("program, fn", [
    ("hardtanh(x)", F.hardtanh), ("relu6(x)", F.relu6), ("softshrink(x)", F.softshrink),
    ("hardshrink(x)", F.hardshrink), ("elu(x)", F.elu), ("selu(x)", torch.selu), ("celu(x)", F.celu),
    ("hardswish(x)", F.hardswish)])
@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 31, 32, 33, 40, 64, 65])
def test_nan_grads_follow_torchs_vector_and_scalar_loops(program, fn, n, dtype):
    """At nan, hardtanh's and the shrinks' backward is 0 in vector lanes and the grad in the
    scalar tail; elu's and hardswish's (kernels torch also builds for AVX-512) nan in vector
    lanes. Softshrink's zeros are +0. in vector lanes and keep the sign in the tail."""
    values = [NAN if i % 3 else -0.5 for i in range(n)]
    graph = run(f"b = {program}", {"x": values}, dtype)
    x = torch_leaf(values, dtype)
    b = fn(x)
    backward(b)
    assert_matches(graph, "b", b, value_ulps=1, grad_ulps=0, grad_of=x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softshrink_signed_zeros_by_lane(dtype):
    values = [-0.5, -0.0, 0.25, -1e-30] * 9   # 36: a tail of 4 in both dtypes
    graph = run("b = softshrink(x)", {"x": values}, dtype)
    b = F.softshrink(torch_leaf(values, dtype))
    want = b.detach().numpy()
    assert np.array_equal(np.signbit(graph.bindings["b"].value), np.signbit(want))
    assert np.signbit(want[-1]) and not np.signbit(want[0])   # the tail keeps -0., the lanes do not


def test_selu_coefficient_rounds_alike():
    """SELU's negative coefficient alpha * scale: the float product (torch's float32 kernel)
    is the double product rounded, so one double serves both dtypes in the backward formula."""
    from gradcalc.engine.rows.nn import SELU_ALPHA, SELU_SCALE

    assert np.float32(SELU_ALPHA * SELU_SCALE) == np.float32(SELU_ALPHA) * np.float32(SELU_SCALE)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_celu_backward_scales_by_one_over_alpha_in_float32(dtype):
    """derivatives.yaml: celu's backward takes 1.0 / alpha.toFloat(): in float64 too, its grad
    is not the forward's derivative when alpha is not a float (0.1)."""
    values = [-1.0, -2.0, -0.3, 0.5]
    graph = run("b = celu(x, 0.1)", {"x": values}, dtype)
    x = torch_leaf(values, dtype)
    backward(F.celu(x, 0.1))
    assert np.array_equal(graph.bindings["x"].grad, x.grad.numpy())
    if dtype == "float64":
        assert graph.bindings["x"].grad[0] != math.exp(-10)   # the exact derivative's value


# ---------------------------------------------------------------------------------------
# gelu

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_of_one_element_is_atens_scalar_code(approximate, dtype):
    for v in [-3.0, -1.0, -0.0, 0.0, 0.5, 2.0, 5.0, -6.0, 30.0]:
        graph = run(f"b = gelu(x, approximate='{approximate}')", {"x": [v]}, dtype)
        x = torch_leaf([v], dtype)
        b = F.gelu(x, approximate=approximate)
        backward(b)
        # a libm's last ulp of tanh, twice that once 1 + tanh cancels
        assert_matches(graph, "b", b, value_ulps=4, grad_ulps=4, grad_of=x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_tanh_in_vector_lanes(dtype):
    """torch's vector loop (Sleef's tanh, which is +-1 past |x| > 8.66 in float32) and the FMAs
    of its kernel; the tail is the C library's tanh."""
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(-8, 8, 200), [-5.134997, -6.0, 5.2, -7.17, 0.0, -0.0, NAN, INF, -INF]])
    graph = run("b = F.gelu(x, approximate='tanh')", {"x": values}, dtype)
    x = torch_leaf(values, dtype)
    b = F.gelu(x, approximate="tanh")
    backward(b)
    # 1 + tanh cancels near x = -2: a libm's last ulp there is many of the result's (more in
    # torch's default build, which rounds the inner polynomial twice, with no FMA)
    bound = 128 if cpu_capability() == "default" else 16
    assert_matches(graph, "b", b, value_ulps=bound, grad_ulps=bound, grad_of=x)
    assert np.array_equal(graph.bindings["b"].value[200:202], b.detach().numpy()[200:202])   # -0. where Sleef saturates


def test_gelu_float64_is_within_erfs_ulps():
    values = np.linspace(-8, 8, 401)
    graph = run("b = gelu(x)", {"x": values}, "float64")
    x = torch_leaf(values, "float64")
    b = F.gelu(x)
    backward(b)
    # 1 + erf(x / sqrt(2)) cancels for x < 0: an ulp of erf (Sleef's in torch's vector lanes,
    # the C library's in gradcalc) is up to ~100 ulps of gelu near x = -2.7
    assert_matches(graph, "b", b, value_ulps=128, grad_ulps=128, grad_of=x)


def test_gelu_float32_of_two_or_more_elements_is_onednns_within_its_error():
    """torch computes a float32 gelu (approximate='none') of two or more elements with oneDNN
    (eltwise_gelu_erf), whose erf is an approximation; gradcalc computes erf (ATen's scalar
    code, and torch's float64 and one-element results). They differ by up to ~1.3e-4 relative
    near x = -3 in the value, absolutely ~1e-7 in erf (-1.49e-6 and -1.19e-6 at x = -5); oneDNN's shape of the formula,
    (x * (1 + erf)) * 0.5, is gradcalc's: nan at +-inf, overflow past 1.7e38."""
    values = np.concatenate([np.linspace(-5.5, 5.5, 221), [INF, -INF, 3e38, -3e38, 1e30, NAN, 10.0, -10.0]])
    graph = run("b = gelu(x)", {"x": values}, "float32")
    x = torch_leaf(values, "float32")
    b = F.gelu(x)
    backward(b)
    got, want = graph.bindings["b"].value, b.detach().numpy()
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    # oneDNN's erf is within ~1e-7 of erf: absolutely, x / 2 times that; relatively ~1e-4
    assert np.all(np.abs(got[finite] - want[finite]) <= 1e-6 + 2e-4 * np.abs(want[finite]))
    grad, want_grad = graph.bindings["x"].grad, x.grad.numpy()
    finite = np.isfinite(want_grad)
    assert np.all(np.abs(grad[finite] - want_grad[finite]) <= 1e-5 + 2e-4 * np.abs(want_grad[finite]))


@pytest.mark.xfail(strict=True, reason="torch's float32 gelu of 2+ elements is oneDNN's, whose erf "
                                       "approximation (piecewise minimax on AVX-512) gradcalc does not reproduce")
def test_gelu_float32_of_two_or_more_elements_is_bit_identical():
    values = [-3.0, -1.0, 0.5]
    graph = run("b = gelu(x)", {"x": values}, "float32")
    assert np.array_equal(graph.bindings["b"].value, F.gelu(torch_leaf(values, "float32")).detach().numpy())


def test_gelu_approximate_is_keyword_only_and_checked():
    with pytest.raises(GradcalcError, match="takes 1 argument"):
        parse("b = gelu(x, 'tanh')")
    with pytest.raises(GradcalcError, match="must be one of 'none', 'tanh'"):
        parse("b = gelu(x, approximate='sigmoid')")


# ---------------------------------------------------------------------------------------
# softmax, log_softmax, normalize

SOFTMAX_CASES = [((5,), 0), ((5,), -1), ((3, 4), 1), ((3, 4), 0), ((3, 4), -2), ((2, 3, 4), 1),
                 ((2, 40), 1), ((40, 3), 0), ((3, 17), -1), ((2, 3, 20), 2), ((), 0), ((1,), 0)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", SOFTMAX_CASES, ids=[f"{s}-{d}" for s, d in SOFTMAX_CASES])
def test_softmax_matches_torch(name, shape, dim, dtype):
    rng = np.random.default_rng(len(shape) * 10 + dim)
    values = rng.normal(0, 3, shape)
    weights = rng.normal(0, 1, shape)
    graph = run(f"a = {name}(x, dim={dim}); b = (a * w).sum()", {"x": values, "w": weights}, dtype)
    x, w = torch_leaf(values, dtype), torch_leaf(weights, dtype, requires_grad=False)
    a = getattr(torch, name)(x, dim)
    (a * w).sum().backward()
    assert_matches(graph, "a", a, value_ulps=4, grad_ulps=64, grad_of=x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_edges(dtype):
    values = [[0.0, -INF, 1.0, 2.0], [INF, 1.0, 2.0, 3.0], [NAN, 0.0, 1.0, 2.0], [1e30, -1e30, 0.0, 1e30]]
    for name in ("softmax", "log_softmax"):
        for dim in (0, 1):
            graph = run(f"b = {name}(x, {dim})", {"x": values}, dtype, seed=np.ones((4, 4)))
            x = torch_leaf(values, dtype)
            b = getattr(torch, name)(x, dim)
            backward(b)
            assert_matches(graph, "b", b, value_ulps=2, grad_ulps=8, grad_of=x)


def test_softmax_forms_and_errors():
    x = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
    for program in ("b = x.softmax(1)", "b = torch.softmax(x, dim=-1)", "b = F.softmax(x, dim=1)",
                    "b = x.log_softmax(-1)", "b = F.log_softmax(x, 1)"):
        graph = run(program, {"x": x})
        assert graph.bindings["b"].grad_fn in ("SoftmaxBackward0", "LogSoftmaxBackward0")
    with pytest.raises(GradcalcError, match=r"Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)"):
        run("b = softmax(x, 2)", {"x": x})
    with pytest.raises(GradcalcError, match="missing required argument 'dim'"):
        parse("b = softmax(x)")
    with pytest.raises(GradcalcError) as error:
        parse("b = softmax(x, 1, dtype=1)")
    assert "unexpected keyword argument 'dtype'" in error.value.message
    assert "softmax(input, dim)" in (error.value.hint or "")


def test_cross_entropy_written_out():
    """p = softmax(z, dim=1); loss = -(log(p) * y).sum(dim=1).mean()"""
    if "sum_dim" not in OPS:
        pytest.skip("sum(dim=) is not a row yet")
    z = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0], [0.3, 0.3, -2.0]]
    y = [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    for dtype in DTYPES:
        graph = run("p = softmax(z, dim=1); loss = -(log(p) * y).sum(dim=1).mean()", {"z": z, "y": y}, dtype)
        zt, yt = torch_leaf(z, dtype), torch_leaf(y, dtype)
        loss = -(torch.log(torch.softmax(zt, dim=1)) * yt).sum(dim=1).mean()
        loss.backward()
        assert_matches(graph, "loss", loss, value_ulps=2, grad_ulps=4, grad_of=zt, grad_name="z")
        assert np.allclose(graph.bindings["y"].grad, yt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("program, fn", [
    ("normalize(x)", lambda t: F.normalize(t)),
    ("F.normalize(x, dim=0)", lambda t: F.normalize(t, dim=0)),
    ("normalize(x, p=1, dim=-1, eps=0.5)", lambda t: F.normalize(t, p=1.0, dim=-1, eps=0.5)),
])
def test_normalize_is_torchs_composite(program, fn, dtype):
    values = [[0.5, -1.0, 2.0], [0.0, 0.0, 0.0], [1e-20, 3.0, -4.0]]
    graph = run(f"b = {program}", {"x": values}, dtype)
    x = torch_leaf(values, dtype)
    b = fn(x)
    backward(b)
    assert_matches(graph, "b", b, value_ulps=2, grad_ulps=8, grad_of=x)
    labels = [n.grad_fn for n in grad_graph(graph, "b").nodes]
    assert labels == ["DivBackward0", "ExpandBackward0", "ClampMinBackward0", "LinalgVectorNormBackward0",
                      "AccumulateGrad"]


def _torch_chain(t: torch.Tensor) -> list[str]:
    seen, order, stack = set(), [], [t.grad_fn]
    while stack:
        f = stack.pop(0)
        if f is None or f in seen:
            continue
        seen.add(f)
        order.append(type(f).__name__)
        stack.extend(g for g, _ in f.next_functions)
    return order


@pytest.mark.parametrize("program, fn", [("softsign(x)", F.softsign), ("tanhshrink(x)", F.tanhshrink),
                                         ("x.clamp(min=y)", lambda t: t.clamp(min=torch.tensor([0.0, 1.0, 0.5]))),
                                         ("x.clamp(max=y)", lambda t: t.clamp(max=torch.tensor([0.0, 1.0, 0.5])))])
def test_composites_have_torchs_graph(program, fn):
    """softsign is x / (x.abs() + 1), tanhshrink x - x.tanh(): torch's Python code, whose
    grad_fn graph gradcalc's lowering reproduces (the 1 a number: a None edge)."""
    values = {"x": [-1.5, 0.25, 2.0], "y": [0.0, 1.0, 0.5]}
    graph = evaluate(f"b = {program}", values if "y" in program else {"x": values["x"]}, seeds=[np.ones(3)],
                     no_grad=("y",) if "y" in program else ()).graph
    x = torch_leaf(values["x"], "float32")
    b = fn(x)
    names = sorted(n.grad_fn for n in grad_graph(graph, "b").nodes if n.grad_fn != "AccumulateGrad")
    assert names == sorted(n for n in _torch_chain(b) if n != "AccumulateGrad")
    backward(b)
    assert np.allclose(graph.bindings["x"].grad, x.grad.numpy(), rtol=1e-6)


# ---------------------------------------------------------------------------------------
# clamp's overloads, clamp_min, clamp_max: grad_fn names, nan bounds, ties of 0. and -0.

CLAMPS = [
    ("x.clamp(min=0)", lambda x, y: x.clamp(min=0), "ClampBackward1"),
    ("x.clamp(max=1)", lambda x, y: x.clamp(max=1), "ClampBackward1"),
    ("x.clamp(0, 1)", lambda x, y: x.clamp(0, 1), "ClampBackward1"),
    ("x.clamp(min=y)", lambda x, y: x.clamp(min=y), "ClampBackward0"),
    ("x.clamp(max=y)", lambda x, y: x.clamp(max=y), "ClampBackward0"),
    ("x.clamp(y, y + 1)", lambda x, y: x.clamp(y, y + 1), "ClampBackward0"),
    ("x.clamp_min(0)", lambda x, y: x.clamp_min(0), "ClampMinBackward0"),
    ("x.clamp_min(y)", lambda x, y: x.clamp_min(y), "ClampMinBackward1"),
    ("x.clamp_max(0.5)", lambda x, y: x.clamp_max(0.5), "ClampMaxBackward0"),
    ("torch.clamp_max(x, y)", lambda x, y: torch.clamp_max(x, y), "ClampMaxBackward1"),
    ("x.clamp(min=nan)", lambda x, y: x.clamp(min=NAN), "ClampBackward1"),
    ("x.clamp(0., nan)", lambda x, y: x.clamp(0.0, NAN), "ClampBackward1"),
    ("x.clamp_min(nan)", lambda x, y: x.clamp_min(NAN), "ClampMinBackward0"),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("program, fn, grad_fn", CLAMPS, ids=[c[0] for c in CLAMPS])
def test_clamps_as_torch(program, fn, grad_fn, dtype):
    """40 elements: ties of 0. and -0. and nan bounds in vector lanes and in the tail."""
    xs = [NAN, 1.0, -0.0, 0.0, 2.0, NAN, -1.0, 0.5, 0.0, -0.0] * 4
    ys = [0.0, NAN, 0.0, -0.0, 1.0, NAN, -1.0, 0.5, -0.0, 0.0] * 4
    # the language has no nan literal: 0. / 0. is a nan number
    source = f"b = {program.replace('nan', '(0. / 0.)')}"
    graph = run(source, {"x": xs, "y": ys} if "y" in program else {"x": xs}, dtype)
    x, y = torch_leaf(xs, dtype), torch_leaf(ys, dtype)
    b = fn(x, y)
    backward(b)
    assert_matches(graph, "b", b, grad_of=x)
    assert graph.bindings["b"].grad_fn == grad_fn
    if y.grad is not None:
        assert np.array_equal(graph.bindings["y"].grad, y.grad.numpy(), equal_nan=True)


def test_clamp_of_a_number_and_mixed_bounds():
    with pytest.raises(GradcalcError, match="argument 'input' must be a tensor"):
        run("b = torch.clamp_min(2., x)", {"x": [1.0, 2.0]})
    # torch.clamp(x, y, 1) is a TypeError of torch's argument parser; gradcalc takes the number
    # as a 0-d tensor (tests/test_methods.py's `torch.clip(x, y, 1.5)`)
    graph = run("b = x.clamp(y, 1)", {"x": [1.0, -2.0], "y": [0.0, 0.0]})
    assert graph.bindings["b"].grad_fn == "ClampBackward0"
    x, y = torch_leaf([1.0, -2.0], "float32"), torch_leaf([0.0, 0.0], "float32")
    b = x.clamp(y, torch.tensor(1.0))
    backward(b)
    assert_matches(graph, "b", b, grad_of=x)


def test_clamp_listing_names_every_overload():
    with pytest.raises(GradcalcError) as error:
        parse("b = x.clamp(lo=0)")
    assert "clamp(input, min, max)" in error.value.hint and "clamp(input, min, max=None)" in error.value.hint


# ---------------------------------------------------------------------------------------
# add and sub with alpha

def test_alpha_overloads_leave_the_operators_alone():
    graph = run("a = x + y; b = x.add(y); c = x.add(y, alpha=2); d = x - y; e = x.sub(y, alpha=0.5); f = (a + b + c + d + e).sum()",
                {"x": [1.0, 2.0], "y": [0.1, 0.2]})
    ops = {name: graph.bindings[name].op.name for name in "abcde"}
    assert ops == {"a": "add", "b": "add", "c": "add_alpha", "d": "sub", "e": "sub_alpha"}
    with pytest.raises(GradcalcError, match="takes 2 arguments"):
        parse("b = x.add(y, 2)")   # alpha is keyword-only


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 7, 9, 15, 16, 20, 31, 40])
def test_alpha_rounds_as_torchs_add_kernel(n, dtype):
    """self + alpha * other with one rounding (vec::fmadd); with a number other, torch's scalar
    tail adds a rounded alpha * other except at the elements its compiler left unvectorised."""
    rng = np.random.default_rng(n)
    xs, ys = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    x, y = torch_leaf(xs, dtype), torch_leaf(ys, dtype)
    for program, b in (("x.add(y, alpha=0.1)", x.add(y, alpha=0.1)), ("x.sub(0.1, alpha=3)", x.sub(0.1, alpha=3)),
                       ("torch.add(x, 0.3, alpha=0.7)", torch.add(x, 0.3, alpha=0.7))):
        graph = run(f"b = {program}", {"x": xs, "y": ys} if "y" in program else {"x": xs}, dtype)
        assert np.array_equal(graph.bindings["b"].value, b.detach().numpy()), program


def test_alpha_grads_and_graph():
    graph = run("b = (x.add(y, alpha=3) + x.sub(y, alpha=0.5)).sum()", {"x": [1.0, 2.0], "y": [0.5, -1.0]})
    assert graph.bindings["y"].grad.tolist() == [2.5, 2.5]
    assert graph.bindings["x"].grad.tolist() == [2.0, 2.0]


# ---------------------------------------------------------------------------------------
# comparisons, where, masked_fill

@pytest.mark.parametrize("op, fn", [("<", torch.lt), ("<=", torch.le), (">", torch.gt), (">=", torch.ge),
                                    ("==", torch.eq), ("!=", torch.ne)])
def test_comparisons_are_bool_tensors_as_torch(op, fn):
    xs, ys = [[0.0, -0.0, 1.0, NAN], [2.0, INF, -INF, 0.5]], [1.0, 0.0, NAN, 0.5]
    graph = run(f"a = x {op} y; c = x {op} 0.5; d = 0.5 {op} x; b = where(a, x, y).sum()", {"x": xs, "y": ys})
    x, y = torch_leaf(xs, "float32"), torch_leaf(ys, "float32")
    for name, want in (("a", fn(x, y)), ("c", fn(x, 0.5)), ("d", fn(torch.tensor(0.5), x))):
        node = graph.bindings[name]
        assert node.value.dtype == np.bool_ and np.array_equal(node.value, want.numpy())
        assert not node.requires_grad and node.is_leaf and node.grad_fn is None and node.grad is None
    result = CliRunner().invoke(app, ["eval", f"a = x {op} y; b = where(a, x, y).sum()",
                                      "--x", "[[0,-0.,1,nan],[2,inf,-inf,0.5]]", "--y", "[1,0,nan,0.5]",
                                      "--format", "torch"])
    assert result.exit_code == 0, result.stderr
    assert f"{fn(x, y)} None" in result.stdout   # a bool tensor, printed as torch prints it


def test_comparison_method_and_torch_names():
    graph = run("a = x.lt(y); c = torch.greater_equal(x, y); d = x.ne(1); b = where(a, x, 0.).sum()",
                {"x": [1.0, 2.0], "y": [1.5, 1.5]})
    assert graph.bindings["a"].value.tolist() == [True, False]
    assert graph.bindings["c"].value.tolist() == [False, True]
    assert graph.bindings["d"].value.tolist() == [False, True]


def test_comparisons_broadcast_with_torchs_error():
    with pytest.raises(GradcalcError, match=r"The size of tensor a \(2\) must match the size of tensor b \(3\) "
                                            r"at non-singleton dimension 0"):
        run("a = x < y; b = where(a, x, 0.).sum()", {"x": [1.0, 2.0], "y": [1.0, 2.0, 3.0]})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_where_and_masked_fill_as_torch(dtype):
    xs, ys = [[1.0, -2.0, 3.0], [NAN, 0.5, -0.0]], [0.5, 0.5, -1.0]
    graph = run("c = x > y; a = where(c, x * 2, y); m = x.masked_fill(c, 7.); b = (a * m).sum()",
                {"x": xs, "y": ys}, dtype)
    x, y = torch_leaf(xs, dtype), torch_leaf(ys, dtype)
    c = x > y
    a = torch.where(c, x * 2, y)
    m = x.masked_fill(c, 7.0)
    (a * m).sum().backward()
    assert_matches(graph, "a", a, grad_of=x)
    assert_matches(graph, "m", m)
    assert np.array_equal(graph.bindings["y"].grad, y.grad.numpy(), equal_nan=True)
    assert graph.bindings["a"].grad_fn == "WhereBackward0" and graph.bindings["m"].grad_fn == "MaskedFillBackward0"


def test_where_and_masked_fill_want_bool_tensors():
    with pytest.raises(GradcalcError, match="where expected condition to be a boolean tensor, but got a tensor "
                                            "with dtype Float"):
        run("b = where(x, x, 0.).sum()", {"x": [1.0, 2.0]})
    with pytest.raises(GradcalcError, match="masked_fill_ only supports boolean masks, but got mask with dtype float"):
        run("b = x.masked_fill(x, 0.).sum()", {"x": [1.0, 2.0]})
    with pytest.raises(RuntimeError, match="masked_fill_ only supports boolean masks, but got mask with dtype float"):
        torch.ones(2).masked_fill(torch.ones(2), 0.0)


@pytest.mark.parametrize("program, fn", [
    ("b = torch.where(x > 0, x, 0.)", lambda x, y: torch.where(x > 0, x, 0.0)),
    ("b = torch.where(x > 0, 1., x)", lambda x, y: torch.where(x > 0, 1.0, x)),
    ("b = torch.where(x > y, x, y)", lambda x, y: torch.where(x > y, x, y)),
    ("b = x.masked_fill(x > y, 2.)", lambda x, y: x.masked_fill(x > y, 2.0)),
    ("b = x.clamp(min=y)", lambda x, y: x.clamp(min=y)),
    ("b = x.clamp(max=y)", lambda x, y: x.clamp(max=y)),
    ("b = softsign(x)", lambda x, y: F.softsign(x)),
    ("b = x.add(2, alpha=3)", lambda x, y: x.add(2, alpha=3)),
    ("b = torch.add(2, x, alpha=3)", lambda x, y: torch.add(2, x, alpha=3)),
    ("b = x.sub(y, alpha=0.5)", lambda x, y: x.sub(y, alpha=0.5)),
])
def test_next_functions_as_torchs(program, fn):
    """The condition and the mask are no edge at all; a number is a None edge where torch's
    Tensor overload wraps it (where's other), and the undefined bound of clamp is one."""
    values = {"x": [1.0, -2.0, 0.5], "y": [0.0, 0.25, 3.0]}
    graph = evaluate(program, values if "y" in program else {"x": values["x"]}, seeds=[np.ones(3)]).graph
    nodes = grad_graph(graph, "b")
    edges = nodes.next_functions()
    root = nodes.nodes[0]
    labels = {n.id: n.grad_fn for n in nodes.nodes}
    got = [None if e.child is None else labels[e.child] for e in edges[root.id]]
    x, y = torch_leaf(values["x"], "float32"), torch_leaf(values["y"], "float32")
    b = fn(x, y)
    want = [None if f is None else type(f).__name__ for f, _ in b.grad_fn.next_functions]
    assert got == want


def test_where_of_numbers_requires_no_grad():
    graph = evaluate("c = x > 1; b = where(c, 1., 0.)", {"x": [1.0, 2.0]}, run_backward=False).graph
    b = graph.bindings["b"]
    assert b.value.tolist() == [0.0, 1.0] and b.value.dtype == np.float32 and not b.requires_grad


# ---------------------------------------------------------------------------------------
# keywords and errors, with torch's words

@pytest.mark.parametrize("program, message, hint", [
    ("b = leaky_relu(x, slope=0.1)", "leaky_relu() got an unexpected keyword argument 'slope'",
     "leaky_relu(input, negative_slope=0.01)"),
    ("b = elu(x, a=1)", "elu() got an unexpected keyword argument 'a'", "elu(input, alpha=1.0)"),
    ("b = hardtanh(x, min=0)", "hardtanh() got an unexpected keyword argument 'min'",
     "hardtanh(input, min_val=-1.0, max_val=1.0)"),
    ("b = softshrink(x, lambda_=1)", "softshrink() got an unexpected keyword argument 'lambda_'",
     "softshrink(input, lambd=0.5)"),
    ("b = threshold(x, 1)", "threshold() takes 3 arguments, got 2", "threshold(input, threshold, value)"),
    ("b = threshold(x, 1, val=2)", "threshold() got an unexpected keyword argument 'val'",
     "threshold(input, threshold, value)"),
    ("b = normalize(x, q=2)", "normalize() got an unexpected keyword argument 'q'",
     "normalize(input, p=2.0, dim=1, eps=1e-12)"),
])
def test_keyword_errors_name_the_signature(program, message, hint):
    with pytest.raises(GradcalcError) as error:
        parse(program)
    assert error.value.message == message
    assert hint in (error.value.hint or "")


@pytest.mark.parametrize("program, values, fn", [
    ("b = softshrink(x, -0.5)", [1.0], lambda t: F.softshrink(t, -0.5)),
    ("b = celu(x, 0)", [1.0], lambda t: F.celu(t, 0.0)),
    ("b = softmax(x, 1)", [1.0, 2.0], lambda t: torch.softmax(t, 1)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_errors_are_torchs(program, values, fn, dtype):
    with pytest.raises((RuntimeError, IndexError)) as torch_error:
        fn(torch_leaf(values, dtype))
    with pytest.raises(GradcalcError) as error:
        run(program, {"x": values}, dtype)
    assert error.value.message == str(torch_error.value).splitlines()[0]


def test_hardtanh_bounds_as_torchs_python_check():
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(torch.ones(2), 1.0, -1.0)
    with pytest.raises(GradcalcError, match="min_val cannot be greater than max_val"):
        run("b = hardtanh(x, 1, -1)", {"x": [1.0, 2.0]})


def test_number_parameter_is_not_a_tensor():
    with pytest.raises(GradcalcError, match="argument 'negative_slope' must be a number, not a tensor"):
        run("b = leaky_relu(x, x)", {"x": [1.0, 2.0]})


# ---------------------------------------------------------------------------------------
# the other features: --format torch, --hessian, --exact

def test_format_torch_prints_torchs_lines():
    result = CliRunner().invoke(app, ["eval", "a = F.leaky_relu(x, 0.2); a.retain_grad(); b = softmax(a, 0)[0]",
                                      "--x", "[-1, 2, 0.5]", "--format", "torch"])
    assert result.exit_code == 0, result.stderr
    x = torch.tensor([-1.0, 2.0, 0.5], requires_grad=True)
    a = F.leaky_relu(x, 0.2)
    a.retain_grad()
    torch.softmax(a, 0)[0].backward()
    assert result.stdout.splitlines()[:2] == [f"{x.data} {x.grad}", f"{a.data} {a.grad}"]


@pytest.mark.parametrize("program, fn", [
    ("elu(x, 0.5)", lambda t: F.elu(t, 0.5)), ("gelu(x, approximate='tanh')", lambda t: F.gelu(t, approximate="tanh")),
    ("hardswish(x)", F.hardswish), ("celu(x, 2.)", lambda t: F.celu(t, 2.0)), ("softsign(x)", F.softsign),
    ("leaky_relu(x, 0.1)", lambda t: F.leaky_relu(t, 0.1)), ("softplus(x, 2, 3)", lambda t: F.softplus(t, 2, 3)),
])
def test_hessian_of_activations(program, fn):
    values = [-1.3, 0.4, 2.2]
    result = CliRunner().invoke(app, ["eval", f"b = ({program} * x).sum()", "--x", str(values), "--hessian",
                                      "--format", "json", "--dtype", "float64"])
    assert result.exit_code == 0, result.stderr
    import json

    got = np.asarray(json.loads(result.stdout)["hessian"]["x"]["x"])
    want = torch.autograd.functional.hessian(lambda t: (fn(t) * t).sum(), torch.tensor(values, dtype=torch.float64))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("program, fn", [
    ("(softmax(x, 0) * x).sum()", lambda t: (torch.softmax(t, 0) * t).sum()),
    ("(log_softmax(x, 0) * x * x).sum()", lambda t: (torch.log_softmax(t, 0) * t * t).sum()),
    ("(normalize(x, dim=0) * x).sum()", lambda t: (F.normalize(t, dim=0) * t).sum()),
])
def test_hessian_through_softmax(program, fn):
    values = [0.5, 1.0, -0.5]
    result = CliRunner().invoke(app, ["eval", f"b = {program}", "--x", str(values), "--hessian", "--format", "json",
                                      "--dtype", "float64"])
    assert result.exit_code == 0, result.stderr
    import json

    got = np.asarray(json.loads(result.stdout)["hessian"]["x"]["x"])
    want = torch.autograd.functional.hessian(fn, torch.tensor(values, dtype=torch.float64))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("program", ["b = celu(x, 0.1).sum()", "b = selu(x).sum()", "b = (softmax(x, 0) * x).sum()",
                                     "b = (log_softmax(x, 0) * x).sum()", "b = hardtanh(x, -1, 0.5).sum()"])
def test_exact_agrees_with_float64(program):
    values = {"x": [-1.5, 0.25, 2.0]}
    exact = evaluate(program, values, dtype="exact").graph
    floats = evaluate(program, values, dtype="float64").graph
    for name in ("b", "x"):
        e, f = exact.bindings[name], floats.bindings[name]
        np.testing.assert_allclose(np.array([float(v) for v in np.ravel(e.value)]), np.ravel(f.value), rtol=1e-12)
        if f.grad is not None:
            np.testing.assert_allclose(np.array([float(v) for v in np.ravel(e.grad)]), np.ravel(f.grad), rtol=1e-12)
