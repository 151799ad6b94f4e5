"""dim_kernels against torch itself: reductions along dims, softmax, var, norms, cumsum.

Bit for bit where torch's result does not depend on the CPU (sequential scalar loops: max and
min with their indices, cumsum, cumprod, the norms that only add or compare, amax's values,
and anything of values whose sums are exact). Elsewhere (the cascade's vector lanes, the FMA of
torch's AVX2 code, Sleef's and MKL's libm) within a few ulps, and the share of results that are
torch's very bits is printed at the end of the module, not asserted: on x86-64 it is all of them
but where a libm call differs from LIBM's. The tests that pin an x86-64 order exactly are
xfail elsewhere (arm64's 4-lane vectors), as tests/test_torch_kernels.py's are.
"""

import math
import platform

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcalc.engine import dim_kernels as dk
from gradcalc.errors import TorchError

torch = pytest.importorskip("torch")

# torch warns of a var over fewer elements than the correction; the cases are meant.
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
layout_dependent = pytest.mark.xfail(not X86_64, strict=False,
                                     reason="gradcalc models x86-64's vector width, not this CPU's")

DTYPES = [np.float32, np.float64]
SHAPES = [(), (5,), (3, 4), (2, 3, 4), (2, 1, 5), (7, 33), (40, 300)]
# 36,000 elements: past torch's grain size (32,768), so split between threads.
BIG = (120, 300)
ALL_SHAPES = SHAPES + [BIG]
EDGES = [0.0, -0.0, 1.0, -1.0, math.nan, math.inf, -math.inf, 2.5]

# (op, dtype) -> [bit-identical results, results]; printed by the last test.
SHARES: dict[tuple[str, str], list[int]] = {}


@pytest.fixture(autouse=True)
def torchs_threads(monkeypatch):
    """Long reductions split as torch's threads split them: give gradcalc torch's thread count."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))


def dims_of(shape):
    """None, each dim (and -1), and a pair of dims, as far as the shape has them."""
    n = len(shape)
    if n == 0:
        return [None, 0, -1]
    return [None, *range(n), -1] + ([(0, 2)] if n >= 3 else [(0, 1)] if n == 2 else [])


def data(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return np.asarray(rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)


def t(x):
    return torch.from_numpy(np.array(x, order="C"))


def tdims(x, dim):
    return tuple(range(np.ndim(x))) if dim is None else dim


def same_bits(a, b) -> np.ndarray:
    """Elementwise: the same value, the same sign of zero, nan where nan (its bits aside)."""
    a, b = np.asarray(a), np.asarray(b)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore"):
        return (nan_a & nan_b) | ((a == b) & (np.signbit(a) == np.signbit(b)) & ~nan_a)


def record(op, dtype, equal) -> None:
    share = SHARES.setdefault((op, np.dtype(dtype).name), [0, 0])
    share[0] += int(np.count_nonzero(equal))
    share[1] += int(np.size(equal))


def check_exact(what, got, want, op=None, dtype=None):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.shape} {got.dtype} vs {want.shape} {want.dtype}"
    equal = same_bits(got, want)
    if op:
        record(op, dtype or want.dtype, equal)
    assert equal.all(), f"{what}: {got[~equal][:5]} vs torch {want[~equal][:5]}"


def check_within(what, got, want, ulps, scale=None, op=None):
    """|got - want| <= ulps ulps of `scale` (default: of want; never below the smallest normal),
    with nan and infinities where torch has them."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.shape} {got.dtype} vs {want.shape} {want.dtype}"
    equal = same_bits(got, want)
    record(op or what.split()[0], want.dtype, equal)
    scale = np.abs(want if scale is None else np.asarray(scale, dtype=want.dtype))
    unit = np.spacing(np.maximum(scale, np.finfo(want.dtype).tiny).astype(want.dtype))
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(want)
        close = np.where(finite, np.abs(got.astype(np.float64) - want) <= ulps * unit, equal)
    far = ~(close | equal)
    assert not far.any(), (f"{what}: {got[far][:5]} vs torch {want[far][:5]} "
                           f"({(np.abs(got[far].astype(np.float64) - want[far]) / unit[far])[:5]} ulps)")


# -- sums ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_sum_and_mean_are_torchs_within_4_ulps_of_the_magnitude(shape, dtype):
    """Within 4 ulps of sum(|x|) (a different order's error; x86-64 has torch's, 0 ulps)."""
    x = data(shape, dtype, sum(shape))
    for dim in dims_of(shape):
        for keepdim in (False, True):
            d = tdims(x, dim)
            magnitude = t(np.abs(x)).sum(d, keepdim=keepdim).numpy()
            count = x.size // magnitude.size
            check_within(f"sum dim={dim} keepdim={keepdim}", dk.sum_dim(x, dim, keepdim),
                         t(x).sum(d, keepdim=keepdim).numpy(), 4, magnitude)
            check_within(f"mean dim={dim} keepdim={keepdim}", dk.mean_dim(x, dim, keepdim),
                         t(x).mean(d, keepdim=keepdim).numpy(), 4, magnitude / np.asarray(count, dtype))


@layout_dependent
@pytest.mark.parametrize("dtype", DTYPES)
def test_cancellation_follows_torchs_order(dtype):
    """[1, 1e20, 0, -1e20, 0.5] adds to 0 in torch's order (rows of a 2-D tensor, each way)."""
    row = np.array([1, 1e20, 0, -1e20, 0.5], dtype=dtype)
    x = np.stack([row, row[::-1], row * 2])
    for dim in (1, -1, None):
        check_exact(f"sum dim={dim}", dk.sum_dim(x, dim), t(x).sum(tdims(x, dim)).numpy())
    check_exact("sum of columns", dk.sum_dim(x.T.copy(), 0), t(x.T.copy()).sum(0).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_prod_is_torchs_within_an_ulp_per_factor(shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = np.asarray((1 + 0.01 * rng.standard_normal(shape)) * rng.choice([-1, 1], shape)).astype(dtype)
    for dim in [None, *range(len(shape)), -1] if shape else [None, 0, -1]:
        for keepdim in (False, True) if dim is not None else (False,):
            want = (t(x).prod() if dim is None else t(x).prod(dim, keepdim=keepdim)).numpy()
            check_within(f"prod dim={dim} keepdim={keepdim}", dk.prod_dim(x, dim, keepdim), want, x.size // want.size)


# -- extrema ------------------------------------------------------------------------------

def ties(shape, dtype, seed):
    """Few distinct values, so that maxima tie; some nan."""
    rng = np.random.default_rng(seed)
    return np.asarray(rng.choice([0.0, -0.0, 1.0, -1.0, 2.0, 2.0, math.nan, -math.inf], shape)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_max_and_min_with_indices_are_torchs_bits(shape, dtype):
    """The first of equal extrema (0. and -0. equal), the first nan: values and indices exactly."""
    for x in (data(shape, dtype, 1), ties(shape, dtype, 2), np.abs(ties(shape, dtype, 3))):
        for dim in [0, -1] + list(range(1, len(shape))):
            for keepdim in (False, True):
                for name in ("max", "min"):
                    values, indices = getattr(dk, f"{name}_dim")(x, dim, keepdim)
                    want = getattr(torch, name)(t(x), dim, keepdim)
                    check_exact(f"{name} dim={dim}", values, want.values.numpy(), op=name)
                    check_exact(f"arg{name} dim={dim}", indices, want.indices.numpy(), op=f"arg{name}", dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_amax_and_amin_values_are_torchs(shape, dtype):
    """The extreme value, nan where there is one (which of 0. and -0.: the next test)."""
    for x in (data(shape, dtype, 4), ties(shape, dtype, 5)):
        for dim in dims_of(shape):
            for keepdim in (False, True):
                for name in ("amax", "amin"):
                    got = getattr(dk, f"{name}_dim")(x, dim, keepdim)
                    want = getattr(torch, name)(t(x), tdims(x, dim), keepdim).numpy()
                    assert got.shape == want.shape and got.dtype == want.dtype
                    np.testing.assert_array_equal(got, want, err_msg=f"{name} dim={dim}")


@layout_dependent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(9,), (3, 40), (40, 3), (2, 33, 5), BIG], ids=str)
def test_amax_ties_of_signed_zeros_as_torchs_vectors(shape, dtype):
    """Vector max keeps the later of 0. and -0., scalar max the earlier: torch's order decides."""
    rng = np.random.default_rng(len(shape))
    x = np.asarray(rng.choice([0.0, -0.0], shape)).astype(dtype)
    for dim in dims_of(shape):
        for name in ("amax", "amin"):
            check_exact(f"{name} dim={dim}", getattr(dk, f"{name}_dim")(x, dim),
                        getattr(torch, name)(t(x), tdims(x, dim)).numpy(), op=name)


# -- logsumexp, softmax, log_softmax ------------------------------------------------------

def exps(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return np.asarray(rng.standard_normal(shape) * rng.choice([1, 10, 100], shape)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_logsumexp_is_torchs_within_2_ulps_of_its_terms(shape, dtype):
    """log(sum) + max: 2 ulps of the larger term (LIBM's exp and log, not MKL's)."""
    x = exps(shape, dtype, 6)
    for dim in dims_of(shape):
        for keepdim in (False, True):
            d = tdims(x, dim)
            want = torch.logsumexp(t(x), d, keepdim).numpy()
            terms = np.maximum(np.abs(want), np.abs(t(x).amax(d, keepdim).numpy()))
            check_within(f"logsumexp dim={dim} keepdim={keepdim}", dk.logsumexp_dim(x, dim, keepdim), want, 2, terms)


@layout_dependent
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7, 33), (2, 3, 4), BIG], ids=str)
def test_logsumexp_with_torchs_exp_and_log_is_torchs_bits(shape, dtype, monkeypatch):
    """Given torch's own exp and log, the rest (max, the sum's order, the add) is torch's exactly."""
    monkeypatch.setattr(dk, "LIBM", {name: (lambda a, f=getattr(torch, name): f(t(a)).numpy()) for name in ("exp", "log")})
    x = exps(shape, dtype, 7)
    for dim in dims_of(shape):
        check_exact(f"logsumexp dim={dim}", dk.logsumexp_dim(x, dim), torch.logsumexp(t(x), tdims(x, dim)).numpy())


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES + [(9, 70, 5)], ids=str)
def test_softmax_is_torchs_within_a_few_ulps(shape, dtype, name):
    """Each dim, the last one's vector path and the others' column path: softmax within 4 ulps,
    log_softmax within 2 ulps of max(|result|, 1) (Sleef's exp and log are not LIBM's)."""
    x = exps(shape, dtype, 8)
    for dim in range(-1, max(len(shape), 1)):
        want = getattr(torch, name)(t(x), dim).numpy()
        got = getattr(dk, name)(x, dim)
        if name == "softmax":
            check_within(f"softmax dim={dim}", got, want, 4)
        else:
            check_within(f"log_softmax dim={dim}", got, want, 2, np.maximum(np.abs(want), 1))


@layout_dependent
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmaxs_sum_adds_in_torchs_lanes(dtype):
    """softmax's sum over a row (vec::reduce_all: lanes, then a shuffle tree) is torch's to the bit:
    log_softmax's backward at output 0 returns grad - sum, which shows that sum."""
    for n in [*range(1, 40), 63, 64, 65, 300]:
        grad = data((50, n), dtype, n)
        grad[:, 0] = 0
        back = torch.ops.aten._log_softmax_backward_data(t(grad), t(np.zeros_like(grad)), 1, t(grad).dtype).numpy()
        lanes = dk.softmax_lanes(np.dtype(dtype))
        tree = dtype == np.float32 and dk.cpu_capability() != "default"
        check_exact(f"reduce_all of {n}", dk.reduce_all_lanes(grad, dk._add, lanes, tree), 0 - back[:, 0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_of_one_element_and_of_0_d(dtype):
    for x in (np.asarray(3.5, dtype), np.array([3.5], dtype), np.array([[-2.0], [7.0]], dtype)):
        for dim in (0, -1):
            check_exact(f"softmax {x.shape}", dk.softmax(x, dim), torch.softmax(t(x), dim).numpy())
            check_exact(f"log_softmax {x.shape}", dk.log_softmax(x, dim), torch.log_softmax(t(x), dim).numpy())
    for value in (math.inf, -math.inf, math.nan):
        x = np.asarray(value, dtype)
        check_exact(f"softmax({value})", dk.softmax(x, 0), torch.softmax(t(x), 0).numpy())
        check_exact(f"log_softmax({value})", dk.log_softmax(x, 0), torch.log_softmax(t(x), 0).numpy())


# -- var and std --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_var_and_std_are_torchs_within_2_ulps(shape, dtype):
    """Welford per output or two passes to one element, in double: 2 ulps (0 on x86-64)."""
    x = data(shape, dtype, 10) + np.asarray(3, dtype)  # a mean far from 0: cancellation
    for dim in dims_of(shape):
        for keepdim in (False, True):
            for correction in (1, 0, 2.5):
                d = tdims(x, dim)
                with np.errstate(all="ignore"):
                    check_within(f"var dim={dim} correction={correction}", dk.var_dim(x, dim, correction, keepdim),
                                 torch.var(t(x), d, correction=correction, keepdim=keepdim).numpy(), 2)
                    check_within(f"std dim={dim} correction={correction}", dk.std_dim(x, dim, correction, keepdim),
                                 torch.std(t(x), d, correction=correction, keepdim=keepdim).numpy(), 2)


# -- norms --------------------------------------------------------------------------------

EXACT_ORDS = [1, 0, math.inf, -math.inf]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_vector_norms_are_torchs(shape, dtype):
    """p = 1, 0, inf, -inf only add or compare in order: torch's bits. p = 2 (lanes, FMA) and
    the pow norms within 2 ulps."""
    x = data(shape, dtype, 11)
    x.reshape(-1)[::7] = 0
    for dim in dims_of(shape):
        for keepdim in (False, True):
            for p in [2, *EXACT_ORDS, 3, 0.5, -1.5]:
                with np.errstate(all="ignore"):
                    got = dk.norm_dim(x, p, dim, keepdim)
                want = torch.linalg.vector_norm(t(x), p, dim, keepdim).numpy()
                if p in EXACT_ORDS:
                    check_exact(f"norm p={p} dim={dim}", got, want, op="norm")
                else:
                    check_within(f"norm p={p} dim={dim}", got, want, 2, op="norm")


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_of_0_d_reduces_only_when_a_dim_is_named(dtype):
    """torch.norm(x) of a 0-d x is |x|; with dim=0 it is sqrt(x*x), which overflows."""
    for value in (1e30 if dtype == np.float32 else 1e300, -3.0, 0.0, -0.0, math.nan):
        x = np.asarray(value, dtype)
        for p in (2, 3, 1, 0, math.inf):
            for dim in (None, 0, -1, (0,)):
                with np.errstate(all="ignore"):
                    got = dk.norm_dim(x, p, dim)
                check_within(f"norm({value}, p={p}, dim={dim})", got,
                             torch.linalg.vector_norm(t(x), p, dim).numpy(), 1, op="norm")


# -- cumulative ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALL_SHAPES, ids=str)
def test_cumsum_and_cumprod_are_torchs_bits(shape, dtype):
    """In order along dim, in double for float32: exactly torch's, -0. included."""
    rng = np.random.default_rng(12)
    for x in (data(shape, dtype, 13), np.asarray(1 + 0.1 * rng.standard_normal(shape)).astype(dtype),
              ties(shape, dtype, 14)):
        for dim in range(-1, max(len(shape), 1)):
            check_exact(f"cumsum dim={dim}", dk.cumsum(x, dim), torch.cumsum(t(x), dim).numpy(), op="cumsum")
            check_exact(f"cumprod dim={dim}", dk.cumprod(x, dim), torch.cumprod(t(x), dim).numpy(), op="cumprod")


# -- zeros, nan, infinities ---------------------------------------------------------------

EXACT_OPS = {
    "sum": (dk.sum_dim, lambda x, d, k: x.sum(d, keepdim=k)),
    "mean": (dk.mean_dim, lambda x, d, k: x.mean(d, keepdim=k)),
    "var": (lambda x, d, k: dk.var_dim(x, d, keepdim=k), lambda x, d, k: x.var(d, keepdim=k)),
    "std": (lambda x, d, k: dk.std_dim(x, d, 0, k), lambda x, d, k: x.std(d, correction=0, keepdim=k)),
    "norm2": (lambda x, d, k: dk.norm_dim(x, 2, d, k), lambda x, d, k: torch.linalg.vector_norm(x, 2, d, k)),
    "norm1": (lambda x, d, k: dk.norm_dim(x, 1, d, k), lambda x, d, k: torch.linalg.vector_norm(x, 1, d, k)),
    "norminf": (lambda x, d, k: dk.norm_dim(x, math.inf, d, k), lambda x, d, k: torch.linalg.vector_norm(x, math.inf, d, k)),
}


@settings(max_examples=40)
@given(st.data())
def test_edge_values_as_torch(draw):
    """0., -0., ±1, 2.5, nan and infinities: sums of these are exact in any order, so every
    reduction is torch's bits (amax: up to the sign of a zero); softmax's within its ulps."""
    dtype = draw.draw(st.sampled_from(DTYPES))
    shape = draw.draw(st.sampled_from([(1,), (5,), (3, 4), (2, 3, 4), (2, 1, 5), (4, 17), (3, 40)]))
    pool = draw.draw(st.sampled_from([EDGES, [0.0, -0.0], [0.0, -0.0, 2.5, math.nan], [-math.inf, 1.0, -0.0]]))
    rng = np.random.default_rng(draw.draw(st.integers(0, 2**16)))
    x = np.asarray(rng.choice(pool, shape)).astype(dtype)
    for dim in dims_of(shape):
        keepdim = draw.draw(st.booleans())
        d = tdims(x, dim)
        with np.errstate(all="ignore"):
            for name, (ours, theirs) in EXACT_OPS.items():
                check_exact(f"{name} dim={dim} of {x.tolist()}", ours(x, dim, keepdim), theirs(t(x), d, keepdim).numpy(), op="edges")
            for name in ("amax", "amin"):
                np.testing.assert_array_equal(getattr(dk, f"{name}_dim")(x, dim, keepdim),
                                              getattr(torch, name)(t(x), d, keepdim).numpy())
            check_within(f"logsumexp dim={dim}", dk.logsumexp_dim(x, dim, keepdim), torch.logsumexp(t(x), d, keepdim).numpy(), 2,
                         np.maximum(np.abs(torch.logsumexp(t(x), d, keepdim).numpy()), 1), op="edges")
            if isinstance(dim, int):
                check_exact(f"prod dim={dim}", dk.prod_dim(x, dim, keepdim), t(x).prod(dim, keepdim).numpy(), op="edges")
                for name in ("max", "min"):
                    values, indices = getattr(dk, f"{name}_dim")(x, dim, keepdim)
                    want = getattr(torch, name)(t(x), dim, keepdim)
                    check_exact(f"{name} dim={dim}", values, want.values.numpy(), op="edges")
                    check_exact(f"arg{name} dim={dim}", indices, want.indices.numpy(), op="edges", dtype=dtype)
                check_exact(f"cumsum dim={dim}", dk.cumsum(x, dim), torch.cumsum(t(x), dim).numpy(), op="edges")
                check_exact(f"cumprod dim={dim}", dk.cumprod(x, dim), torch.cumprod(t(x), dim).numpy(), op="edges")
                check_within(f"softmax dim={dim}", dk.softmax(x, dim), torch.softmax(t(x), dim).numpy(), 4, op="edges")
                want = torch.log_softmax(t(x), dim).numpy()
                check_within(f"log_softmax dim={dim}", dk.log_softmax(x, dim), want, 2, np.maximum(np.abs(want), 1), op="edges")


# -- what torch refuses -------------------------------------------------------------------

EMPTY_CASES = [
    ("sum", lambda x, d: dk.sum_dim(x, d), lambda x, d: x.sum(d)),
    ("mean", lambda x, d: dk.mean_dim(x, d), lambda x, d: x.mean(d)),
    ("prod", lambda x, d: dk.prod_dim(x, d), lambda x, d: x.prod(d)),
    ("amax", lambda x, d: dk.amax_dim(x, d), lambda x, d: x.amax(d)),
    ("amin", lambda x, d: dk.amin_dim(x, d), lambda x, d: x.amin(d)),
    ("max", lambda x, d: dk.max_dim(x, d)[0], lambda x, d: x.max(d).values),
    ("argmin", lambda x, d: dk.min_dim(x, d)[1], lambda x, d: x.min(d).indices),
    ("logsumexp", lambda x, d: dk.logsumexp_dim(x, d), lambda x, d: torch.logsumexp(x, d)),
    ("softmax", lambda x, d: dk.softmax(x, d), lambda x, d: torch.softmax(x, d)),
    ("log_softmax", lambda x, d: dk.log_softmax(x, d), lambda x, d: torch.log_softmax(x, d)),
    ("var", lambda x, d: dk.var_dim(x, d), lambda x, d: x.var(d)),
    ("std", lambda x, d: dk.std_dim(x, d), lambda x, d: x.std(d)),
    ("norm", lambda x, d: dk.norm_dim(x, 2, d), lambda x, d: torch.linalg.vector_norm(x, 2, d)),
    ("norm inf", lambda x, d: dk.norm_dim(x, math.inf, d), lambda x, d: torch.linalg.vector_norm(x, math.inf, d)),
    ("norm -1", lambda x, d: dk.norm_dim(x, -1, d), lambda x, d: torch.linalg.vector_norm(x, -1, d)),
    ("norm 0", lambda x, d: dk.norm_dim(x, 0, d), lambda x, d: torch.linalg.vector_norm(x, 0, d)),
    ("cumsum", lambda x, d: dk.cumsum(x, d), lambda x, d: torch.cumsum(x, d)),
    ("cumprod", lambda x, d: dk.cumprod(x, d), lambda x, d: torch.cumprod(x, d)),
]


@pytest.mark.parametrize("name, ours, theirs", EMPTY_CASES, ids=[c[0] for c in EMPTY_CASES])
def test_empty_dims_and_bad_dims_as_torch(name, ours, theirs):
    """Where torch reduces an empty dim (sum 0, prod 1, mean and var nan, norm 0, logsumexp
    -inf), the same; where it refuses (amax, max, the inf and negative norms over an empty dim; a
    dim out of range or named twice), a TorchError, never a crash."""
    cases = [((3, 0), 1), ((3, 0), 0), ((0,), 0), ((2, 0, 3), -1), ((3, 4), 2), ((3, 4), -3), ((), 1)]
    if name not in ("max", "argmin", "softmax", "log_softmax", "cumsum", "cumprod", "prod"):
        cases += [((3, 0), None), ((3, 4), (0, 0)), ((3, 4), (1, -1)), ((0, 4), (0, 1))]
    for shape, dim in cases:
        x = np.zeros(shape, np.float32)
        try:
            want = theirs(t(x), tdims(x, dim))
        except (RuntimeError, IndexError, TypeError):
            with pytest.raises((TorchError, TypeError)):
                ours(x, dim)
            continue
        with np.errstate(all="ignore"):
            check_exact(f"{name} of {shape} dim={dim}", ours(x, dim), want.numpy())


def test_logsumexp_over_no_dims_fails_as_torch():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(RuntimeError):
        torch.logsumexp(t(x), ())
    with pytest.raises(TorchError, match="doesn't match the broadcast shape"):
        dk.logsumexp_dim(x, ())


def test_cpu_capability_is_torchs():
    if not X86_64:
        pytest.skip("gradcalc models x86-64's capabilities only")
    assert dk.cpu_capability() == torch.backends.cpu.get_cpu_capability().lower()


# -- the share of torch's very bits -------------------------------------------------------

def test_report_the_share_of_torchs_bits(capsys, request):
    """Not a check: how many results above were torch's very bits (on x86-64: all but where
    Sleef's or MKL's exp and log differ from LIBM's)."""
    if not SHARES:
        pytest.skip("no comparisons ran")
    lines = [f"{op} {dtype}: {100 * equal / total:.2f}% of {total:,}" for (op, dtype), (equal, total) in sorted(SHARES.items())]
    capability = torch.backends.cpu.get_cpu_capability()
    with capsys.disabled():
        print(f"\ndim_kernels results bit-identical to torch (CPU capability {capability}):\n  " + "\n  ".join(lines))
    if getattr(request.config, "cache", None) is not None:
        request.config.cache.set("gradcalc/dim-kernels-bit-identical",
                                 {"capability": capability, "shares": {f"{op} {dtype}": share for (op, dtype), share in SHARES.items()}})
