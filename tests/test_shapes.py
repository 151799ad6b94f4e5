"""Indexing, shape operations and matmul of any rank, against PyTorch code written directly.

Each case is a gradcalc program and the same computation written in torch: the output's
value (bit for bit: data movement copies numbers), dtype, grad_fn, is_leaf and
requires_grad, the whole grad_fn graph (`next_functions`, as `gradcalc graph` shows it),
and every input's grad, in float32 and float64; errors carry torch's own message.

Where torch's dispatch depends on an operand's strides or on which operands require grad
(reshape of a transposed tensor, matmul's folding), the lowering reads the operands' values
and requires_grad (`wants_operands`); those cases are checked on the lowerings directly,
and end to end once the graph passes them (`LAYOUT_WIRED`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gradcalc.api import evaluate
from gradcalc.cli import app
from gradcalc.engine import rules
from gradcalc.engine.backends import Floats
from gradcalc.engine.grad_fns import grad_graph
from gradcalc.engine.ops import OPS
from gradcalc.engine.rows import shapes as S
from gradcalc.errors import GradcalcError

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
DTYPES = ["float32", "float64"]

# Values exact in float32, no two alike.
X = [1.5, -2.0, 0.25]
Y = [0.75, -0.5]
S0 = 2.5
A = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]                       # 2 x 3
M = [[1.0, 2.0, -3.0], [0.5, -0.25, 4.0], [-1.5, 3.5, 0.125]]   # 3 x 3
B = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 11.5) / 4  # 2 x 3 x 4
C = (np.arange(40, dtype=np.float64).reshape(2, 4, 5) * 0.375 - 7)  # 2 x 4 x 5
C1 = C[:1]                                                        # 1 x 4 x 5
D = (np.arange(30, dtype=np.float64).reshape(2, 1, 3, 5) - 14) / 8  # 2 x 1 x 3 x 5
W = (np.arange(20, dtype=np.float64).reshape(4, 5) - 9.5) / 2       # 4 x 5
U = [0.5, -1.5, 2.0, 1.0]                                         # 4
SEED = [1.0, -0.5, 2.0, 0.25, -1.5, 0.75, 3.0]


def seed_for(shape) -> np.ndarray | None:
    return None if shape == () else np.resize(np.array(SEED), shape)


# ---------------------------------------------------------------------------------------
# gradcalc and torch, side by side


def torch_tree(fn):
    """A grad_fn and its next_functions, recursively: (name, children), None for (None, 0)."""
    if fn is None:
        return None
    return (type(fn).__name__, tuple(torch_tree(child) for child, _ in fn.next_functions))


def gradcalc_tree(graph, name: str):
    g = grad_graph(graph, name)
    nodes = {n.id: n for n in g.nodes}
    children = g.next_functions()

    def tree(i):
        return (nodes[i].grad_fn, tuple(None if e.child is None else tree(e.child) for e in children[i]))

    return tree(g.root.id)


def run_gradcalc(program: str, values: dict, dtype: str, seed=None, no_grad=()):
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    return evaluate(program, arrays, seeds=[] if seed is None else [seed], dtype=dtype, no_grad=no_grad).graph


def run_torch(fn, values: dict, dtype: str, seed=None, no_grad=()):
    leaves = {k: torch.tensor(np.asarray(v, dtype=np.float64), dtype=TORCH_DTYPES[dtype]).requires_grad_(k not in no_grad)
              for k, v in values.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # x.T of a tensor that is not 2-D
        out = fn(**leaves)
    if out.requires_grad:
        out.backward(None if seed is None else torch.tensor(seed, dtype=out.dtype))
    return out, leaves


def compare(program: str, values: dict, fn, dtype: str, *, no_grad=(), rtol=0.0):
    """The program's last tensor and every input against torch's; rtol 0: bit for bit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shape = tuple(fn(**{k: torch.tensor(np.asarray(v, dtype=np.float64)) for k, v in values.items()}).shape)
    seed = seed_for(shape)
    out, leaves = run_torch(fn, values, dtype, seed, no_grad)
    graph = run_gradcalc(program, values, dtype, seed, no_grad)
    node = graph.bindings[graph.last_assigned]
    assert node.value.dtype == out.detach().numpy().dtype
    _same(node.value, out.detach().numpy(), rtol, f"{program}: value")
    assert node.requires_grad == out.requires_grad, program
    assert node.is_leaf == out.is_leaf, program
    assert node.grad_fn == (None if out.grad_fn is None else type(out.grad_fn).__name__), program
    if out.grad_fn is not None:
        assert gradcalc_tree(graph, graph.last_assigned) == torch_tree(out.grad_fn), program
    for name, leaf in leaves.items():
        got = graph.bindings[name].grad
        assert (got is None) == (leaf.grad is None), f"{program}: {name}.grad"
        if leaf.grad is not None:
            _same(got, leaf.grad.numpy(), rtol, f"{program}: {name}.grad")


def _same(got, want, rtol: float, label: str) -> None:
    got = np.asarray(got)
    assert got.shape == want.shape, (label, got.shape, want.shape)
    if rtol == 0:
        np.testing.assert_array_equal(got, want, err_msg=label)
        assert np.array_equal(np.signbit(got), np.signbit(want)), label
    else:
        scale = np.max(np.abs(want)) if want.size else 0.0
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=label)


# ---------------------------------------------------------------------------------------
# Indexing

INDEX_CASES = [
    ("b = x[0]", {"x": X}, lambda x: x[0]),
    ("b = x[-1]", {"x": X}, lambda x: x[-1]),
    ("b = A[1, :]", {"A": A}, lambda A: A[1, :]),
    ("b = A[:, 0]", {"A": A}, lambda A: A[:, 0]),
    ("b = A[:, -1]", {"A": A}, lambda A: A[:, -1]),
    ("b = A[0, 1]", {"A": A}, lambda A: A[0, 1]),
    ("b = x[1:3]", {"x": X}, lambda x: x[1:3]),
    ("b = x[::2]", {"x": X}, lambda x: x[::2]),
    ("b = x[:]", {"x": X}, lambda x: x[:]),
    ("b = x[3:]", {"x": X}, lambda x: x[3:]),
    ("b = x[2:1]", {"x": X}, lambda x: x[2:1]),
    ("b = x[-5:10]", {"x": X}, lambda x: x[-5:10]),
    ("b = A[1:1]", {"A": A}, lambda A: A[1:1]),
    ("b = x[None]", {"x": X}, lambda x: x[None]),
    ("b = s[None]", {"s": S0}, lambda s: s[None]),
    ("b = A[None, 1]", {"A": A}, lambda A: A[None, 1]),
    ("b = A[1:, None, 0]", {"A": A}, lambda A: A[1:, None, 0]),
    ("b = B[:, 1, ::2]", {"B": B}, lambda B: B[:, 1, ::2]),
    ("b = B[-1, :, None, 1:3]", {"B": B}, lambda B: B[-1, :, None, 1:3]),
    ("b = A[:, :]", {"A": A}, lambda A: A[:, :]),
    ("b = A[:2, :]", {"A": A}, lambda A: A[:2, :]),
    ("b = A[0:5:1, 0:]", {"A": A}, lambda A: A[0:5:1, 0:]),
    ("b = A[-2:, 1]", {"A": A}, lambda A: A[-2:, 1]),
    ("b = A.select(1, -1)", {"A": A}, lambda A: A.select(1, -1)),
    ("b = torch.select(B, 0, 1)", {"B": B}, lambda B: torch.select(B, 0, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("program, values, fn", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_indexing_matches_torch(program, values, fn, dtype):
    compare(program, values, fn, dtype)


def test_index_chain_of_a_combined_subscript_is_torchs():
    """A[1:, None, 0]: slice, then unsqueeze, then select, each a node of the graph."""
    graph = run_gradcalc("b = A[1:, None, 0]", {"A": A}, "float32", seed=[[1.0]])
    assert gradcalc_tree(graph, "b") == ("SelectBackward0", (("UnsqueezeBackward0", (
        ("SliceBackward0", (("AccumulateGrad", ()),)),)),))


# ---------------------------------------------------------------------------------------
# Shapes

SHAPE_CASES = [
    ("b = x.reshape(3, 1)", {"x": X}, lambda x: x.reshape(3, 1)),
    ("b = A.reshape(-1)", {"A": A}, lambda A: A.reshape(-1)),
    ("b = A.reshape((3, 2))", {"A": A}, lambda A: A.reshape((3, 2))),
    ("b = torch.reshape(A, (2, -1))", {"A": A}, lambda A: torch.reshape(A, (2, -1))),
    ("b = s.reshape(1)", {"s": S0}, lambda s: s.reshape(1)),
    ("b = A.view(3, 2)", {"A": A}, lambda A: A.view(3, 2)),
    ("b = A.view(-1)", {"A": A}, lambda A: A.view(-1)),
    ("b = A[1:].view(3)", {"A": A}, lambda A: A[1:].view(3)),
    ("b = A.flatten()", {"A": A}, lambda A: A.flatten()),
    ("b = B.flatten(1)", {"B": B}, lambda B: B.flatten(1)),
    ("b = B.flatten(-2, -1)", {"B": B}, lambda B: B.flatten(-2, -1)),
    ("b = torch.flatten(B, start_dim=0, end_dim=1)", {"B": B}, lambda B: torch.flatten(B, 0, 1)),
    ("b = x.flatten()", {"x": X}, lambda x: x.flatten()),
    ("b = s.flatten()", {"s": S0}, lambda s: s.flatten()),
    ("b = A.contiguous()", {"A": A}, lambda A: A.contiguous()),
    ("b = A[None].squeeze()", {"A": A}, lambda A: A[None].squeeze()),
    ("b = A[None].squeeze(0)", {"A": A}, lambda A: A[None].squeeze(0)),
    ("b = A.squeeze(-1)", {"A": A}, lambda A: A.squeeze(-1)),
    ("b = A[None, :, None].squeeze((0, 2))", {"A": A}, lambda A: A[None, :, None].squeeze((0, 2))),
    ("b = s.squeeze()", {"s": S0}, lambda s: s.squeeze()),
    ("b = A.unsqueeze(-1)", {"A": A}, lambda A: A.unsqueeze(-1)),
    ("b = torch.unsqueeze(A, 1)", {"A": A}, lambda A: torch.unsqueeze(A, 1)),
    ("b = s.unsqueeze(0)", {"s": S0}, lambda s: s.unsqueeze(0)),
    ("b = A.transpose(0, 1)", {"A": A}, lambda A: A.transpose(0, 1)),
    ("b = B.transpose(-1, 0)", {"B": B}, lambda B: B.transpose(-1, 0)),
    ("b = s.transpose(0, -1)", {"s": S0}, lambda s: s.transpose(0, -1)),
    ("b = A.t()", {"A": A}, lambda A: A.t()),
    ("b = torch.t(x)", {"x": X}, lambda x: torch.t(x)),
    ("b = A.T", {"A": A}, lambda A: A.T),
    ("b = x.T", {"x": X}, lambda x: x.T),
    ("b = B.T", {"B": B}, lambda B: B.T),
    ("b = B.mT", {"B": B}, lambda B: B.mT),
    ("b = A.mT", {"A": A}, lambda A: A.mT),
    ("b = B.permute(2, 0, 1)", {"B": B}, lambda B: B.permute(2, 0, 1)),
    ("b = torch.permute(B, (1, -1, 0))", {"B": B}, lambda B: torch.permute(B, (1, -1, 0))),
    ("b = x.expand(2, 3)", {"x": X}, lambda x: x.expand(2, 3)),
    ("b = x.expand(2, -1)", {"x": X}, lambda x: x.expand(2, -1)),
    ("b = x.expand(3)", {"x": X}, lambda x: x.expand(3)),
    ("b = A[:, None].expand(2, 4, 3)", {"A": A}, lambda A: A[:, None].expand(2, 4, 3)),
    ("b = x.expand(0, 3)", {"x": X}, lambda x: x.expand(0, 3)),
    ("b = x.repeat(2)", {"x": X}, lambda x: x.repeat(2)),
    ("b = A.repeat(2, 1, 2)", {"A": A}, lambda A: A.repeat(2, 1, 2)),
    ("b = s.repeat(3)", {"s": S0}, lambda s: s.repeat(3)),
    ("b = x.repeat(0)", {"x": X}, lambda x: x.repeat(0)),
    ("b = cat([x, 2 * x])", {"x": X}, lambda x: torch.cat([x, 2 * x])),
    ("b = torch.cat([A, A * 2], 1)", {"A": A}, lambda A: torch.cat([A, A * 2], 1)),
    ("b = torch.cat(tensors=[A, A], dim=-1)", {"A": A}, lambda A: torch.cat([A, A], dim=-1)),
    ("b = torch.concat([x, x[:1]])", {"x": X}, lambda x: torch.concat([x, x[:1]])),
    ("b = cat([A, e])", {"A": A, "e": np.zeros(0)}, lambda A, e: torch.cat([A, e])),
    ("b = cat([x])", {"x": X}, lambda x: torch.cat([x])),
    ("b = stack([x, 2 * x])", {"x": X}, lambda x: torch.stack([x, 2 * x])),
    ("b = stack([x, x], 1)", {"x": X}, lambda x: torch.stack([x, x], 1)),
    ("b = torch.stack([A, A], -1)", {"A": A}, lambda A: torch.stack([A, A], -1)),
    ("b = stack([s, s * 2])", {"s": S0}, lambda s: torch.stack([s, s * 2])),
    ("b = x.flip(0)", {"x": X}, lambda x: x.flip(0)),
    ("b = A.flip(0, 1)", {"A": A}, lambda A: A.flip(0, 1)),
    ("b = torch.flip(A, (-1,))", {"A": A}, lambda A: torch.flip(A, (-1,))),
    ("b = diag(x)", {"x": X}, lambda x: torch.diag(x)),
    ("b = diag(x, -1)", {"x": X}, lambda x: torch.diag(x, -1)),
    ("b = diag(A)", {"A": A}, lambda A: torch.diag(A)),
    ("b = A.diag(1)", {"A": A}, lambda A: A.diag(1)),
    ("b = diag(A, diagonal=-5)", {"A": A}, lambda A: torch.diag(A, -5)),
    ("b = outer(x, y)", {"x": X, "y": Y}, lambda x, y: torch.outer(x, y)),
    ("b = torch.outer(x, x)", {"x": X}, lambda x: torch.outer(x, x)),
    ("b = trace(A)", {"A": A}, lambda A: torch.trace(A)),
    ("b = M.trace()", {"M": M}, lambda M: M.trace()),
    ("b = A.tril()", {"A": A}, lambda A: A.tril()),
    ("b = A.triu(1)", {"A": A}, lambda A: A.triu(1)),
    ("b = torch.tril(B, -1)", {"B": B}, lambda B: torch.tril(B, -1)),
    ("b = torch.triu(M, diagonal=-1)", {"M": M}, lambda M: torch.triu(M, -1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("program, values, fn", SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_op_matches_torch(program, values, fn, dtype):
    compare(program, values, fn, dtype)


# Views keep torch's strides: what a later reshape or matmul decides by.
STRIDE_CASES = [
    ("b = A[None]", lambda A, x, B: A[None]), ("b = A[:, None]", lambda A, x, B: A[:, None]),
    ("b = A.unsqueeze(2)", lambda A, x, B: A.unsqueeze(2)), ("b = A[:, 0]", lambda A, x, B: A[:, 0]),
    ("b = A.t()", lambda A, x, B: A.t()), ("b = A.T[None]", lambda A, x, B: A.T[None]),
    ("b = x.expand(2, 3)", lambda A, x, B: x.expand(2, 3)),
    ("b = A[None].expand(2, 2, 3)", lambda A, x, B: A[None].expand(2, 2, 3)),
    ("b = B.mT", lambda A, x, B: B.mT), ("b = B[:, 1:, ::2]", lambda A, x, B: B[:, 1:, ::2]),
    ("b = x[1:1]", lambda A, x, B: x[1:1]), ("b = A.flip(0)", lambda A, x, B: A.flip(0)),
    ("b = A.t().flip(0)", lambda A, x, B: A.t().flip(0)), ("b = B.permute(2, 0, 1)", lambda A, x, B: B.permute(2, 0, 1)),
    ("b = A[None, None]", lambda A, x, B: A[None, None]), ("b = torch.stack([A, A])", lambda A, x, B: torch.stack([A, A])),
    ("b = A.t().tril()", lambda A, x, B: A.t().tril()), ("b = x.T", lambda A, x, B: x.T),
    ("b = A[1:].reshape(3, 1)", lambda A, x, B: A[1:].reshape(3, 1)),
    ("b = A.t() * 2", lambda A, x, B: A.t() * 2),
]


@pytest.mark.parametrize("program, fn", STRIDE_CASES, ids=[c[0] for c in STRIDE_CASES])
def test_views_have_torchs_strides(program, fn):
    """A view's value has torch's strides, dims of size 1 and 0 included: what later
    reshapes and matmuls decide by."""
    from gradcalc.api import parse
    from gradcalc.engine.graph import build, find_inputs

    values = {"A": A, "x": X, "B": B}
    parsed = parse(program)
    graph = build(parsed, {k: np.asarray(values[k], dtype=np.float64) for k in find_inputs(parsed)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = fn(**{k: torch.tensor(np.asarray(v, dtype=np.float32)) for k, v in values.items()})
    got = graph.bindings["b"].value
    assert got.shape == tuple(want.shape)
    assert S.strides_of(got) == want.stride()


def test_data_movement_keeps_integer_tensors_integer():
    """int64 in, int64 out, as torch's (arange(6).reshape(2, 3)[1] is a LongTensor)."""
    numbers = Floats(np.float32)
    ints = np.arange(6, dtype=np.int64)
    value = numbers.forward(OPS["reshape"], [ints], {"shape": (2, 3)})
    assert value.dtype == np.int64
    for row, params in [("select", {"dim": 0, "index": 1}), ("transpose", {"dim0": 0, "dim1": 1}),
                        ("flip", {"dims": (0,)}), ("expand", {"size": (2, 2, 3)}), ("repeat", {"repeats": (1, 2)}),
                        ("tril", {"diagonal": 0}), ("trace", {})]:
        out = numbers.forward(OPS[row], [value], params)
        assert out.dtype == np.int64, row
        want = {"select": lambda t: t.select(0, 1), "transpose": lambda t: t.transpose(0, 1),
                "flip": lambda t: t.flip(0), "expand": lambda t: t.expand(2, 2, 3),
                "repeat": lambda t: t.repeat(1, 2), "tril": lambda t: t.tril(), "trace": torch.trace}[row](
            torch.arange(6).reshape(2, 3))
        assert want.dtype == torch.int64
        np.testing.assert_array_equal(out, want.numpy())
    joined = numbers.forward(OPS["cat"], [ints, ints], {"dim": 0})
    assert joined.dtype == np.int64


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_slices_pass_zero_grads(dtype):
    compare("b = x[3:].sum() + A[1:1].sum() + x[::2][5:].sum()", {"x": X, "A": A},
            lambda x, A: x[3:].sum() + A[1:1].sum() + x[::2][5:].sum(), dtype)


# ---------------------------------------------------------------------------------------
# matmul of any rank, and bmm, mm, mv by name

MATMUL_CASES = [
    ("b = x @ x", {"x": X}, lambda x: x @ x),
    ("b = A @ x", {"A": A, "x": X}, lambda A, x: A @ x),
    ("b = y @ A", {"y": Y, "A": A}, lambda y, A: y @ A),
    ("b = A @ M", {"A": A, "M": M}, lambda A, M: A @ M),
    ("b = B @ C", {"B": B, "C": C}, lambda B, C: B @ C),             # bmm over expanded views
    ("b = B[:1] @ C", {"B": B, "C": C}, lambda B, C: B[:1] @ C),     # a batch of one squeezed
    ("b = B @ C1", {"B": B, "C1": C1}, lambda B, C1: B @ C1),
    ("b = B @ W", {"B": B, "W": W}, lambda B, W: B @ W),             # folded into one mm
    ("b = M @ B", {"M": M, "B": B}, lambda M, B: M @ B),             # 2-D @ 3-D: mm of the transposes
    ("b = A @ B[:1]", {"A": A, "B": B}, lambda A, B: A @ B[:1]),
    ("b = U @ C", {"U": U, "C": C}, lambda U, C: U @ C),             # vector @ batch: mv
    ("b = B @ U", {"B": B, "U": U}, lambda B, U: B @ U),
    ("b = D @ C.mT", {"D": D, "C": C}, lambda D, C: D @ C.mT),       # 4-D @ 3-D, batch dims broadcast
    ("b = torch.matmul(x, D)", {"x": X, "D": D}, lambda x, D: torch.matmul(x, D)),
    ("b = bmm(B, C)", {"B": B, "C": C}, lambda B, C: torch.bmm(B, C)),
    ("b = torch.bmm(B, C[:, :, :1])", {"B": B, "C": C}, lambda B, C: torch.bmm(B, C[:, :, :1])),
    ("b = mm(A, M)", {"A": A, "M": M}, lambda A, M: torch.mm(A, M)),
    ("b = A.mm(mat2=M.t())", {"A": A, "M": M}, lambda A, M: A.mm(M.t())),
    ("b = mv(A, x)", {"A": A, "x": X}, lambda A, x: torch.mv(A, x)),
    ("b = torch.dot(x, tensor=x)", {"x": X}, lambda x: torch.dot(x, x)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("program, values, fn", MATMUL_CASES, ids=[c[0] for c in MATMUL_CASES])
def test_matmul_matches_torch(program, values, fn, dtype):
    """Sums of products are BLAS kernels in torch (and NumPy): a few ulps, not bits."""
    compare(program, values, fn, dtype, rtol=1e-6 if dtype == "float32" else 1e-14)


def test_small_bmm_adds_in_torchs_order():
    """Below 400 multiply-adds a matrix, torch's bmm adds each entry's products in order."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((3, 5, 7)).astype(np.float32)
    b = rng.standard_normal((3, 7, 11)).astype(np.float32)
    want = torch.bmm(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(rules.bmm_forward(a, b), want, rtol=2e-6, atol=2e-6 * np.abs(want).max())


# ---------------------------------------------------------------------------------------
# Errors: torch's words

E0 = np.zeros((0, 3))
ERROR_CASES = [
    ("b = x[5]", {"x": X}, lambda x: x[5]),
    ("b = x[-4]", {"x": X}, lambda x: x[-4]),
    ("b = x[::-1]", {"x": X}, lambda x: x[::-1]),
    ("b = x[::0]", {"x": X}, lambda x: x[::0]),
    ("b = x[0, 0]", {"x": X}, lambda x: x[0, 0]),
    ("b = s[0]", {"s": S0}, lambda s: s[0]),
    ("b = s[1]", {"s": S0}, lambda s: s[1]),
    ("b = s[:]", {"s": S0}, lambda s: s[:]),
    ("b = A[None, 5]", {"A": A}, lambda A: A[None, 5]),
    ("b = B[1, :, 7]", {"B": B}, lambda B: B[1, :, 7]),
    ("b = A[5, ::-1]", {"A": A}, lambda A: A[5, ::-1]),
    ("b = A[::-1, 5]", {"A": A}, lambda A: A[::-1, 5]),
    ("b = A[0, 0, 0]", {"A": A}, lambda A: A[0, 0, 0]),
    ("b = A.select(1, 5)", {"A": A}, lambda A: A.select(1, 5)),
    ("b = A.select(2, 0)", {"A": A}, lambda A: A.select(2, 0)),
    ("b = x.reshape(4)", {"x": X}, lambda x: x.reshape(4)),
    ("b = x.reshape(-1, -1)", {"x": X}, lambda x: x.reshape(-1, -1)),
    ("b = x.reshape(-2, 3)", {"x": X}, lambda x: x.reshape(-2, 3)),
    ("b = A.view(4, -1)", {"A": A}, lambda A: A.view(4, -1)),
    ("b = e.reshape(-1, 0)", {"e": E0}, lambda e: e.reshape(-1, 0)),
    ("b = x.flatten(1)", {"x": X}, lambda x: x.flatten(1)),
    ("b = B.flatten(2, 1)", {"B": B}, lambda B: B.flatten(2, 1)),
    ("b = A.squeeze(2)", {"A": A}, lambda A: A.squeeze(2)),
    ("b = A.squeeze((0, 0))", {"A": A}, lambda A: A.squeeze((0, 0))),
    ("b = A.unsqueeze(3)", {"A": A}, lambda A: A.unsqueeze(3)),
    ("b = A.unsqueeze(-4)", {"A": A}, lambda A: A.unsqueeze(-4)),
    ("b = A.transpose(0, 2)", {"A": A}, lambda A: A.transpose(0, 2)),
    ("b = B.t()", {"B": B}, lambda B: B.t()),
    ("b = x.mT", {"x": X}, lambda x: x.mT),
    ("b = B.permute(0, 1)", {"B": B}, lambda B: B.permute(0, 1)),
    ("b = B.permute(0, 0, 1)", {"B": B}, lambda B: B.permute(0, 0, 1)),
    ("b = B.permute(0, 1, 3)", {"B": B}, lambda B: B.permute(0, 1, 3)),
    ("b = x.expand(2, 4)", {"x": X}, lambda x: x.expand(2, 4)),
    ("b = A.expand(3)", {"A": A}, lambda A: A.expand(3)),
    ("b = x.expand(-1, 3)", {"x": X}, lambda x: x.expand(-1, 3)),
    ("b = x.expand(-2)", {"x": X}, lambda x: x.expand(-2)),
    ("b = A.repeat(2)", {"A": A}, lambda A: A.repeat(2)),
    ("b = x.repeat(-1)", {"x": X}, lambda x: x.repeat(-1)),
    ("b = cat([x, A])", {"x": X, "A": A}, lambda x, A: torch.cat([x, A])),
    ("b = cat([A, B[0]])", {"A": A, "B": B}, lambda A, B: torch.cat([A, B[0]])),
    ("b = cat([A, A], 2)", {"A": A}, lambda A: torch.cat([A, A], 2)),
    ("b = cat([s, s])", {"s": S0}, lambda s: torch.cat([s, s])),
    ("b = stack([x, y])", {"x": X, "y": Y}, lambda x, y: torch.stack([x, y])),
    ("b = stack([A, A], 3)", {"A": A}, lambda A: torch.stack([A, A], 3)),
    ("b = x.flip(1)", {"x": X}, lambda x: x.flip(1)),
    ("b = A.flip(0, 0)", {"A": A}, lambda A: A.flip(0, 0)),
    ("b = diag(B)", {"B": B}, lambda B: torch.diag(B)),
    ("b = diag(s)", {"s": S0}, lambda s: torch.diag(s)),
    ("b = outer(A, x)", {"A": A, "x": X}, lambda A, x: torch.outer(A, x)),
    ("b = outer(x, A)", {"A": A, "x": X}, lambda A, x: torch.outer(x, A)),
    ("b = trace(x)", {"x": X}, lambda x: torch.trace(x)),
    ("b = x.tril()", {"x": X}, lambda x: x.tril()),
    ("b = s.triu()", {"s": S0}, lambda s: s.triu()),
    ("b = s @ x", {"s": S0, "x": X}, lambda s, x: s @ x),
    ("b = mm(x, A)", {"A": A, "x": X}, lambda A, x: torch.mm(x, A)),
    ("b = mm(A, x)", {"A": A, "x": X}, lambda A, x: torch.mm(A, x)),
    ("b = mm(A, A)", {"A": A}, lambda A: torch.mm(A, A)),
    ("b = mv(A, A)", {"A": A}, lambda A: torch.mv(A, A)),
    ("b = mv(A, y)", {"A": A, "y": Y}, lambda A, y: torch.mv(A, y)),
    ("b = bmm(B, A)", {"A": A, "B": B}, lambda A, B: torch.bmm(B, A)),
    ("b = bmm(A, B)", {"A": A, "B": B}, lambda A, B: torch.bmm(A, B)),
    ("b = bmm(B, B)", {"B": B}, lambda B: torch.bmm(B, B)),
    ("b = B @ A", {"A": A, "B": B}, lambda A, B: B @ A),
    ("b = B @ x", {"x": X, "B": B}, lambda x, B: B @ x),
    ("b = B @ C.mT", {"B": B, "C": C}, lambda B, C: B @ C.mT),
    ("b = D @ B", {"D": D, "B": B}, lambda D, B: D @ B),
    ("b = B @ D.mT", {"D": D, "B": B}, lambda D, B: B @ D.mT),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("program, values, fn", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_is_torchs(program, values, fn, dtype):
    tensors = {k: torch.tensor(np.asarray(v, dtype=np.float64), dtype=TORCH_DTYPES[dtype]).requires_grad_()
               for k, v in values.items()}
    with pytest.raises((RuntimeError, IndexError, ValueError)) as torch_error:
        fn(**tensors)
    with pytest.raises(GradcalcError) as error:
        run_gradcalc(program, values, dtype)
    assert error.value.message == str(torch_error.value).splitlines()[0]


def test_error_is_placed_under_the_subscript():
    result = CliRunner().invoke(app, ["eval", "b = x[5] * 2", "--x", "1,2,3"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: line 1, column 6: index 5 is out of bounds for dimension 0 with size 3"
    assert lines[2] == "       ^"


def test_numbers_in_a_list_of_tensors_are_refused():
    with pytest.raises(GradcalcError, match="expected a tensor as element 1"):
        run_gradcalc("b = cat([x, 2])", {"x": X}, "float32")


# ---------------------------------------------------------------------------------------
# The issue's programs, through the command line, against the same torch program's prints


def _printed(*tensors) -> str:
    return " ".join(str(t) for t in tensors)


def _cli(program: str, values: dict, dtype: str, extra=()) -> str:
    args = ["eval", program]
    for name, value in values.items():
        args += [f"--{name}", _text(np.asarray(value, dtype=np.float64))]
    args += [*extra, "--format", "torch"]
    if dtype != "float32":
        args += ["--dtype", dtype]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def _text(a: np.ndarray) -> str:
    return repr(float(a)) if a.ndim == 0 else "[" + ",".join(_text(v) for v in a) + "]"


@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_program_subscripts(dtype):
    x0, A0 = [1.5, -2.0, 0.25], [[0.5, -1.0], [2.0, 1.5], [0.25, -0.75]]
    td = TORCH_DTYPES[dtype]
    x = torch.tensor(x0, dtype=td, requires_grad=True)
    A_ = torch.tensor(A0, dtype=td, requires_grad=True)
    y = x[1:].sum() + x[0] * A_[:, 1].mean()
    y.backward()
    want = "\n".join([_printed(x.data, x.grad), _printed(A_.data, A_.grad)]) + "\n"
    program = "y = x[1:].sum() + x[0] * A[:, 1].mean()"
    assert _cli(program, {"x": x0, "A": A0}, dtype) == want
    graph = run_gradcalc(program, {"x": x0, "A": A0}, dtype)
    assert gradcalc_tree(graph, "y") == torch_tree(y.grad_fn)


@pytest.mark.parametrize("w0", [[0.5, -1.5], [[0.5, -1.0], [2.0, 0.25]]], ids=["vector", "matrix"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_issue_program_stack_transpose_matmul(dtype, w0):
    x0 = [1.5, -2.0, 0.25]
    td = TORCH_DTYPES[dtype]
    x = torch.tensor(x0, dtype=td, requires_grad=True)
    w = torch.tensor(w0, dtype=td, requires_grad=True)
    h = torch.stack([x, 2 * x]).T @ w
    h.retain_grad()
    seed = torch.tensor(np.resize(np.array(SEED), tuple(h.shape)), dtype=td)
    h.backward(seed)
    want = "\n".join([_printed(x.data, x.grad), _printed(w.data, w.grad), _printed(h.data, h.grad)]) + "\n"
    program = "h = torch.stack([x, 2*x]).T @ w"
    got = _cli(program, {"x": x0, "w": w0}, dtype, ["--seed", _text(seed.double().numpy()), "--retain", "h"])
    assert got == want
    graph = run_gradcalc(program, {"x": x0, "w": w0}, dtype, seed=seed.double().numpy())
    assert gradcalc_tree(graph, "h") == torch_tree(h.grad_fn)


def test_graph_command_shows_torchs_chain():
    """`gradcalc graph` of the issue's second program: torch's grad_fns, root first, the
    leaves' AccumulateGrad named."""
    x = torch.tensor([1.5, -2.0, 0.25], requires_grad=True)
    w = torch.tensor([[0.5, -1.0], [2.0, 0.25]], requires_grad=True)
    h = torch.stack([x, 2 * x]).T @ w
    result = CliRunner().invoke(app, ["graph", "h = torch.stack([x, 2*x]).T @ w", "--x", "1.5,-2,0.25",
                                      "--w", "[[0.5,-1],[2,0.25]]"])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "Backward" in line or "AccumulateGrad" in line]
    shown = [line.strip("│├└─ ").split(": ")[-1] for line in lines]
    names, stack = [], [h.grad_fn]
    while stack:  # torch's graph depth first, as the tree lists it
        fn = stack.pop()
        names.append(type(fn).__name__)
        stack.extend(reversed([c for c, _ in fn.next_functions if c is not None]))
    assert shown == names
    assert lines[0] == "h: MmBackward0"


# ---------------------------------------------------------------------------------------
# Layouts and requires_grad: reshape and matmul decide by them, as torch does

def lowered_tree(call, requires_grad: tuple[bool, ...]):
    """The grad_fn graph of a lowering's call over leaves, by the rows' grad_fn names."""
    if isinstance(call, int):
        return ("AccumulateGrad", ()) if requires_grad[call] else None
    name, parts, *rest = call
    params = dict(rest[0]) if rest else {}
    children = tuple(lowered_tree(p, requires_grad) for p in parts)
    if all(c is None for c in children):
        return None
    row = OPS[name]
    if name == "pos":
        return children[0]
    return (row.grad_fn_name((True,) * len(parts), params), children)


def strided(shape, order) -> np.ndarray:
    """A float32 array of this shape laid out with its dims in `order` (outermost first)."""
    stored = tuple(shape[d] for d in order)
    base = (np.arange(int(np.prod(stored)), dtype=np.float32) % 7 - 3).reshape(stored)
    return np.transpose(base, np.argsort(order))


def torch_leaf(array: np.ndarray, requires_grad: bool) -> torch.Tensor:
    strides = S.strides_of(array)
    t = torch.empty_strided(array.shape, strides, dtype=torch.float32)
    t.copy_(torch.from_numpy(np.ascontiguousarray(array)))
    assert t.stride() == strides or t.numel() == 0
    return t.requires_grad_(requires_grad)


LAYOUTS = [((2, 3, 4), (0, 1, 2)), ((2, 3, 4), (1, 0, 2)), ((2, 3, 4), (0, 2, 1)), ((3, 4), (1, 0)), ((3, 4), (0, 1)),
           ((4,), (0,)), ((1, 3, 4), (0, 2, 1)), ((2, 4, 5), (0, 1, 2)), ((2, 4, 5), (2, 0, 1)), ((4, 5), (1, 0)),
           ((4, 5), (0, 1)), ((1, 4, 5), (0, 2, 1)), ((2, 1, 3, 4), (0, 1, 2, 3))]
MATMUL_LAYOUT_CASES = [(a, b) for a in LAYOUTS for b in LAYOUTS
                       if a[0][-1] == (b[0][-2] if len(b[0]) > 1 else b[0][0]) and max(len(a[0]), len(b[0])) >= 3]


@pytest.mark.parametrize("left, right", MATMUL_LAYOUT_CASES)
def test_matmul_lowering_follows_strides_and_requires_grad(left, right):
    """torch's _matmul_impl folds or broadcasts by which operands require grad and by their
    strides: the lowering's graph is torch's for every combination."""
    a, b = strided(*left), strided(*right)
    for requires in [(True, True), (True, False), (False, True)]:
        ta, tb = torch_leaf(a, requires[0]), torch_leaf(b, requires[1])
        try:
            want = torch_tree((ta @ tb).grad_fn)
        except RuntimeError as e:
            with pytest.raises(GradcalcError) as error:
                rules.matmul_lowering((True, True), (a.shape, b.shape), values=(a, b), requires_grad=requires)
            assert error.value.message == str(e).splitlines()[0]
            continue
        call = rules.matmul_lowering((True, True), (a.shape, b.shape), values=(a, b), requires_grad=requires)
        assert lowered_tree(call, requires) == want, (left, right, requires)


RESHAPE_LAYOUT_CASES = [((2, 3), (1, 0), (6,)), ((2, 3), (1, 0), (3, 2)), ((2, 3), (0, 1), (3, 2)),
                        ((2, 3, 4), (0, 2, 1), (6, 4)), ((2, 3, 4), (0, 2, 1), (2, 12)), ((2, 3, 4), (1, 0, 2), (2, 12)),
                        ((2, 3, 4), (1, 0, 2), (3, 2, 2, 2)), ((1, 4), (1, 0), (4,)), ((4, 1), (1, 0), (2, 2))]


@pytest.mark.parametrize("shape, order, new", RESHAPE_LAYOUT_CASES)
def test_reshape_is_a_view_an_alias_or_a_copy_by_strides(shape, order, new):
    a = strided(shape, order)
    want = torch_tree(torch_leaf(a, True).reshape(new).grad_fn)
    call = S._reshape_lowering((True,), (a.shape,), new, values=(a,)) or ("reshape", (0,), {"shape": new})
    assert lowered_tree(call, (True,)) == want
    value = Floats(np.float32).forward(OPS[call[0]], [a], call[2]) if call[0] != "_unsafe_view" else None
    if value is not None:  # a view's strides, as torch's
        assert S.strides_of(value) == torch_leaf(a, True).reshape(new).stride()


def _layout_wired() -> bool:
    graph = run_gradcalc("b = A.t().reshape(6)", {"A": A}, "float32", seed=np.ones(6))
    return graph.bindings["b"].grad_fn == "UnsafeViewBackward0"


LAYOUT_WIRED = _layout_wired()
needs_wiring = pytest.mark.skipif(not LAYOUT_WIRED, reason="the graph does not pass operand values and requires_grad "
                                                          "to lowerings that want them (wants_operands)")

WIRED_CASES = [
    ("b = A.t().reshape(6)", {"A": A}, lambda A: A.t().reshape(6)),
    ("b = A.T.reshape(6)", {"A": A}, lambda A: A.T.reshape(6)),
    ("b = A.t().reshape(3, 2)", {"A": A}, lambda A: A.t().reshape(3, 2)),
    ("b = x[::2].reshape(2, 1)", {"x": X}, lambda x: x[::2].reshape(2, 1)),
    ("b = A.t().flatten()", {"A": A}, lambda A: A.t().flatten()),
    ("b = A.t().contiguous()", {"A": A}, lambda A: A.t().contiguous()),
    ("b = outer(x[::2], y)", {"x": X, "y": Y}, lambda x, y: torch.outer(x[::2], y)),
    ("b = B.transpose(0, 1) @ W", {"B": B, "W": W}, lambda B, W: B.transpose(0, 1) @ W),
    ("b = B.transpose(0, 1) @ U", {"B": B, "U": U}, lambda B, U: B.transpose(0, 1) @ U),
    ("b = C.mT @ U[:, None]", {"C": C, "U": U}, lambda C, U: C.mT @ U[:, None]),
    ("b = torch.matmul(U, D.mT[:, :, :4])", {"U": U, "D": D}, lambda U, D: torch.matmul(U, D.mT[:, :, :4])),
]


@needs_wiring
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("program, values, fn", WIRED_CASES, ids=[c[0] for c in WIRED_CASES])
def test_layout_dependent_program_matches_torch(program, values, fn, dtype):
    compare(program, values, fn, dtype, rtol=1e-6 if dtype == "float32" else 1e-14)


@needs_wiring
@pytest.mark.parametrize("no_grad", [("B",), ("C",), ("W",), ("U",)])
def test_matmul_without_grad_on_one_operand_matches_torch(no_grad):
    for program, values, fn in MATMUL_CASES:
        if no_grad[0] in values and len(values) == 2:
            compare(program, values, fn, "float64", no_grad=no_grad, rtol=1e-14)


@needs_wiring
def test_view_of_a_transposed_tensor_is_torchs_error():
    with pytest.raises(GradcalcError) as error:
        run_gradcalc("b = A.t().view(6)", {"A": A}, "float32")
    with pytest.raises(RuntimeError) as torch_error:
        torch.tensor(A).t().view(6)
    assert error.value.message == str(torch_error.value)


# ---------------------------------------------------------------------------------------
# Second derivatives, exact numbers, display


@pytest.mark.parametrize("program, values", [
    ("b = (x[1:] * x[:2]).sum() + x[0] * A[:, 1].mean() ** 2", {"x": X, "A": A}),
    ("b = ((A.t() @ A).flatten()[:6] * A.reshape(-1)).sum()", {"A": A}),
    ("b = (outer(x, x).triu() * diag(x)).sum()", {"x": X}),
])
def test_hessian_through_data_movement_matches_torch(program, values):
    from gradcalc.analysis.hessian import hessian
    from gradcalc.api import parse
    from gradcalc.engine.graph import build

    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    graph = build(parse(program), arrays, dtype="float64")
    names = list(values)
    got = hessian(graph, graph.bindings["b"], names)

    table = {
        "b = (x[1:] * x[:2]).sum() + x[0] * A[:, 1].mean() ** 2":
            lambda x, A: (x[1:] * x[:2]).sum() + x[0] * A[:, 1].mean() ** 2,
        "b = ((A.t() @ A).flatten()[:6] * A.reshape(-1)).sum()":
            lambda A: ((A.t() @ A).flatten()[:6] * A.reshape(-1)).sum(),
        "b = (outer(x, x).triu() * diag(x)).sum()": lambda x: (torch.outer(x, x).triu() * torch.diag(x)).sum(),
    }
    want = torch.autograd.functional.hessian(table[program], tuple(torch.tensor(arrays[n]) for n in names))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            np.testing.assert_allclose(got[a][b], want[i][j].numpy(), rtol=1e-12, atol=1e-12)


def test_hessian_through_cat_and_stack_matches_torch():
    """cat and stack are linear in their operands together (each alone is not multilinear)."""
    from gradcalc.analysis.hessian import hessian
    from gradcalc.api import parse
    from gradcalc.engine.graph import build

    program = "b = (cat([x, 2 * x]) * stack([x, x * x]).flatten()).sum()"
    graph = build(parse(program), {"x": np.array(X)}, dtype="float64")
    got = hessian(graph, graph.bindings["b"], ["x"])["x"]["x"]
    want = torch.autograd.functional.hessian(
        lambda x: (torch.cat([x, 2 * x]) * torch.stack([x, x * x]).flatten()).sum(), torch.tensor(X, dtype=torch.float64))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


def test_exact_values_and_grads_through_indexing_and_matmul():
    """--exact: the same program in rationals; 1/3 stays 1/3."""
    import sympy

    graph = evaluate("b = (A[:, 1:] @ x[:2]).sum() / 3", {"A": np.array(A), "x": np.array(X)}, dtype="exact").graph
    R = sympy.Rational
    assert graph.bindings["b"].value[()] == R(-29, 24)
    assert list(graph.bindings["x"].grad) == [R(-1, 4), R(5, 12), 0]
    assert graph.bindings["A"].grad.tolist() == [[0, R(1, 2), R(-2, 3)], [0, R(1, 2), R(-2, 3)]]


def test_diff_shows_the_subscripts_and_their_partials():
    result = CliRunner().invoke(app, ["diff", "y = x[1:].sum() + x[0] * A[:, 1].mean()", "--x", "1,2,3",
                                      "--A", "[[1,2],[3,4]]"])
    assert result.exit_code == 0, result.stderr
    assert "x[0]" in result.stdout and "A[:, 1]" in result.stdout
