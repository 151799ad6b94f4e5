"""float32_shortest must equal, bit for bit, the slow reference astype(str).astype(float64)."""

import numpy as np
import pytest

from gradcalc.report.shortest import _float32_shortest, float32_shortest


def reference(array: np.ndarray) -> np.ndarray:
    return array.astype(str).astype(np.float64)


def assert_bit_identical(array: np.ndarray) -> None:
    got = float32_shortest(array)
    want = reference(array)
    assert got.dtype == np.float64
    assert got.shape == array.shape
    got_nan, want_nan = np.isnan(got), np.isnan(want)
    np.testing.assert_array_equal(got_nan, want_nan)
    got_bits = got[~got_nan].view(np.uint64)
    want_bits = want[~want_nan].view(np.uint64)
    bad = np.flatnonzero(got_bits != want_bits)
    if bad.size:
        values = array[~want_nan][bad[:10]]
        lines = [f"{v!r} {str(v)!r}: got {g!r}, want {w!r}"
                 for v, g, w in zip(values, got[~got_nan][bad[:10]], want[~want_nan][bad[:10]])]
        pytest.fail(f"{bad.size} mismatches, e.g.\n" + "\n".join(lines))


def from_bits(bits) -> np.ndarray:
    return np.asarray(bits, dtype=np.int64).astype(np.uint32).view(np.float32)


def with_neighbours(values: np.ndarray, k: int = 3) -> np.ndarray:
    """The float32 values and the k float32s on each side of each (same sign), both signs."""
    bits = np.abs(values.astype(np.float32)).view(np.uint32).astype(np.int64)
    bits = (bits[:, None] + np.arange(-k, k + 1)).ravel()
    bits = bits[(bits >= 0) & (bits <= 0x7F800000)]
    positive = from_bits(bits)
    return np.concatenate([positive, -positive])


SPECIAL = np.array(
    [
        0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan,
        from_bits(1)[()],  # smallest subnormal
        from_bits(0x007FFFFF)[()],  # largest subnormal
        from_bits(0x00800000)[()],  # smallest normal
        np.finfo(np.float32).max, -np.finfo(np.float32).max,
        0.1, 0.2, 0.3, 0.5, 1.0, 1 / 3, 2 / 3, 123456789.0, 1e-5, 1e7, 3.14159265, 2.718281828,
        16777216.0, 16777217.0, 16777218.0, 33554432.0, 1e10, 1e20, 1e30, 1e38, 1e-38, 1e-40,
        1e-45, 203143.625, 2744867.75, 2744868.25,  # the last three: exact ties
    ],
    dtype=np.float32,
)


def test_special_values():
    assert_bit_identical(SPECIAL)
    assert_bit_identical(with_neighbours(SPECIAL[np.isfinite(SPECIAL)], k=5))


def test_signed_zero_nan_inf():
    got = float32_shortest(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=np.float32))
    assert np.signbit(got[1]) and not np.signbit(got[0])
    assert got[2] == np.inf and got[3] == -np.inf and np.isnan(got[4])


def test_smallest_subnormals():
    bits = np.arange(0, 4096)
    values = from_bits(bits)
    assert_bit_identical(np.concatenate([values, -values]))


def test_powers_of_two_and_neighbours():
    # every float32 exponent, its power of two and neighbours, plus the mantissa extremes
    exponents = np.arange(0, 255, dtype=np.int64) << 23
    offsets = np.array([-3, -2, -1, 0, 1, 2, 3, 0x3FFFFF, 0x400000, 0x7FFFFC, 0x7FFFFD])
    bits = (exponents[:, None] + offsets).ravel()
    bits = bits[(bits > 0) & (bits < 0x7F800000)]
    values = from_bits(bits)
    assert_bit_identical(np.concatenate([values, -values]))


def test_powers_of_ten_and_neighbours():
    tens = np.array([float(f"1e{k}") for k in range(-45, 39)], dtype=np.float32)
    halves = np.array([float(f"5e{k}") for k in range(-45, 38)], dtype=np.float32)
    assert_bit_identical(with_neighbours(np.concatenate([tens, halves]), k=4))


def test_integers():
    rng = np.random.default_rng(1)
    ints = np.concatenate(
        [
            np.arange(0, 70_000),
            np.arange(2**24 - 3000, 2**24 + 3000),
            rng.integers(0, 2**24, 50_000),
            rng.integers(2**24, 2**31, 50_000),
            2 ** np.arange(0, 63),
            10 ** np.arange(0, 19),
        ]
    )
    assert_bit_identical(ints.astype(np.float32))


def test_tie_binade():
    # [2**21, 2**22) has spacing 1/4: half of its values are exact ties between two 8-digit
    # candidates; Dragon4 takes the even last digit.
    start = np.float32(2**21).view(np.uint32).astype(np.int64)
    rng = np.random.default_rng(2)
    bits = np.concatenate(
        [np.arange(start, start + 20_000), rng.integers(start, start + 2**23, 20_000)]
    )
    assert_bit_identical(from_bits(bits))


def test_random_bit_patterns():
    values = np.random.default_rng(0).integers(0, 2**32, 200_000, dtype=np.uint32).view(np.float32)
    assert_bit_identical(values)


def test_uniform_and_rounded():
    rng = np.random.default_rng(3)
    values = rng.uniform(-5, 5, 200_000).astype(np.float32)
    assert_bit_identical(values)
    assert_bit_identical(np.round(values, 3))
    assert_bit_identical(np.round(values.astype(np.float64), 3).astype(np.float32))
    # the fast path decides nearly everything: the fallback is rare
    assert _float32_shortest(values)[1] < 50


def test_wide_magnitudes():
    rng = np.random.default_rng(4)
    scales = 10.0 ** rng.uniform(-44, 38, 100_000)
    values = (rng.standard_normal(100_000) * scales).astype(np.float32)
    assert_bit_identical(values)


@pytest.mark.parametrize(
    "array",
    [
        np.array(0.1, dtype=np.float32),
        np.array(-0.0, dtype=np.float32),
        np.array(np.nan, dtype=np.float32),
        np.zeros((0,), dtype=np.float32),
        np.zeros((3, 0), dtype=np.float32),
        np.arange(12, dtype=np.float32).reshape(3, 4) / np.float32(7),
        (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / np.float32(3)).transpose(2, 0, 1),
        np.linspace(-1, 1, 40, dtype=np.float32)[::3],
        np.array([[0.1, np.nan], [-np.inf, -0.0]], dtype=np.float32),
        np.array([1.5, 0.1, 3e38], dtype=">f4"),
    ],
)
def test_shapes(array):
    got = float32_shortest(array)
    assert got.shape == array.shape
    assert_bit_identical(array.astype(np.float32))


def test_rejects_other_dtypes():
    with pytest.raises(TypeError):
        float32_shortest(np.array([0.1], dtype=np.float64))
