"""torch's summation order, checked against torch's own sums."""

import numpy as np
import pytest

from gradcalc.summation import torch_sum

torch = pytest.importorskip("torch")

SIZES = [0, 1, 2, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 255, 256, 257, 1000, 1023,
         4095, 4097, 32767, 32768, 32769, 65537, 100003]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
def test_sums_round_exactly_as_torchs(n, dtype):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 8, n)).astype(dtype)
    assert float(torch_sum(x)) == torch.from_numpy(x).sum().item()


def test_cancellation_follows_torch_not_numpy():
    x = np.array([1, 1e20, 0, -1e20, 0.5], dtype=np.float32)
    assert float(torch_sum(x)) == torch.from_numpy(x).sum().item() == 0.0
    assert float(np.sum(x)) == 0.5


def test_n_d_tensors_sum_as_their_flattening():
    x = np.random.default_rng(0).standard_normal((3, 40, 7)).astype(np.float32)
    assert float(torch_sum(x)) == torch.from_numpy(x).sum().item()
