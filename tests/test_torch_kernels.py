"""Where torch's CPU kernels round or break ties in their own way, checked against torch itself.

gradcalc models torch's x86-64 kernels: 256-bit vectors (8 float lanes; with AVX-512 torch runs
these kernels' AVX2 code, and its default path has the same width) and AVX's max/min, which
give the second operand on a tie of 0. and -0. Checked with ATEN_CPU_CAPABILITY=default, avx2
and avx512. torch's arm64 (NEON) kernels have 128-bit vectors and FMAX/FMIN (+0. > -0.), which
gradcalc does not model: there these tests may fail (xfail, not strict).
"""

import platform

import numpy as np
import pytest

from gradcalc.engine.ops import OPS
from gradcalc.engine.summation import torch_sum

torch = pytest.importorskip("torch")

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
layout_dependent = pytest.mark.xfail(not X86_64, strict=False,
                                     reason="gradcalc models x86-64's vector width and max/min, not this CPU's")


@pytest.fixture
def torchs_threads(monkeypatch):
    """gradcalc's sum splits a long tensor as torch's threads do: give it torch's thread count
    (torch may use fewer threads than OMP_NUM_THREADS or the CPUs: its physical cores)."""
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))

SIZES = [0, 1, 2, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 255, 256, 257, 1000, 1023,
         4095, 4097, 32767, 32768, 32769, 65537, 100003]


@layout_dependent
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_sums_round_exactly_as_torchs(n, dtype, torchs_threads):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 8, n)).astype(dtype)
    assert float(torch_sum(x)) == torch.from_numpy(x).sum().item()


def test_cancellation_follows_torch_not_numpy():
    x = np.array([1, 1e20, 0, -1e20, 0.5], dtype=np.float32)
    assert float(torch_sum(x)) == torch.from_numpy(x).sum().item() == 0.0
    assert float(np.sum(x)) == 0.5


@layout_dependent
def test_n_d_tensors_sum_as_their_flattening():
    x = np.random.default_rng(0).standard_normal((3, 40, 7)).astype(np.float32)
    assert float(torch_sum(x)) == torch.from_numpy(x).sum().item()


TIE_SHAPES = [((n,), (n,)) for n in (1, 5, 8, 9, 16, 17, 33, 40)] + [
    ((40,), ()), ((20, 3), (3,)), ((2, 17), (17,)), ((4, 16), (1,)), ((3, 20), (3, 20))]


@layout_dependent
@pytest.mark.parametrize("name", ["maximum", "minimum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", TIE_SHAPES, ids=str)
def test_ties_of_signed_zeros_as_torch(name, dtype, shapes):
    rng = np.random.default_rng(len(shapes[0]))
    a, b = (rng.choice([0.0, -0.0, 1.0, np.nan], size=s).astype(dtype) for s in shapes)
    want = getattr(torch, name)(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    got = OPS[name].forward(a, b)
    np.testing.assert_array_equal(got, want)
    numbers = ~np.isnan(want)  # a nan's sign bit is not part of what torch shows
    np.testing.assert_array_equal(np.signbit(got)[numbers], np.signbit(want)[numbers])
