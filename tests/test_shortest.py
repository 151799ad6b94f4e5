"""A float32 in the json and csv reports is written with NumPy's shortest digits (its `str`, the
digits of `astype(str)`), read as a double: 0.1 is 0.1, not 0.10000000149011612.

json_array gets those digits from orjson, in C (from NumPy itself for a few numbers); these
tests hold it to NumPy's own text over the bit patterns where shortest-digit algorithms part
ways: subnormals, every binade's edges, powers of ten, exact ties, integers around 2**24,
random bit patterns."""

import json

import numpy as np
import pytest

from gradcalc.report.formats import json_array


def numpy_text(array: np.ndarray) -> str:
    """What the report must write for the array, from NumPy's digits of each element."""
    def number(text: str) -> object:
        value = float(text)
        if np.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if np.isinf(value) else value

    numbers = np.frompyfunc(number, 1, 1)(array.astype(str))  # a 0-d array gives the number itself
    return json.dumps(numbers.tolist() if isinstance(numbers, np.ndarray) else numbers)


def assert_numpy_digits(array: np.ndarray) -> None:
    got = json.dumps(json_array(array))
    want = numpy_text(array)
    if got == want:
        return
    flat = array.reshape(-1)
    got_items, want_items = json_array(flat), json.loads(numpy_text(flat))
    bad = [(repr(v), g, w) for v, g, w in zip(flat.tolist(), got_items, want_items) if json.dumps(g) != json.dumps(w)]
    pytest.fail(f"{len(bad)} numbers differ from NumPy's digits, e.g.\n" + "\n".join(map(str, bad[:10])))


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
    assert_numpy_digits(SPECIAL)
    assert_numpy_digits(with_neighbours(SPECIAL[np.isfinite(SPECIAL)], k=5))


def test_signed_zero_nan_inf_and_whole_numbers():
    values = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -3.0, 16777216.0], dtype=np.float32)
    assert json.dumps(json_array(values)) == '[0.0, -0.0, "inf", "-inf", "nan", "nan", 1.0, -3.0, 16777216.0]'


def test_smallest_subnormals():
    values = from_bits(np.arange(0, 4096))
    assert_numpy_digits(np.concatenate([values, -values]))


def test_powers_of_two_and_neighbours():
    # every float32 exponent, its power of two and neighbours, plus the mantissa extremes
    exponents = np.arange(0, 255, dtype=np.int64) << 23
    offsets = np.array([-3, -2, -1, 0, 1, 2, 3, 0x3FFFFF, 0x400000, 0x7FFFFC, 0x7FFFFD])
    bits = (exponents[:, None] + offsets).ravel()
    bits = bits[(bits > 0) & (bits < 0x7F800000)]
    values = from_bits(bits)
    assert_numpy_digits(np.concatenate([values, -values]))


def test_powers_of_ten_and_neighbours():
    tens = np.array([float(f"1e{k}") for k in range(-45, 39)], dtype=np.float32)
    halves = np.array([float(f"5e{k}") for k in range(-45, 38)], dtype=np.float32)
    assert_numpy_digits(with_neighbours(np.concatenate([tens, halves]), k=4))


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
    assert_numpy_digits(ints.astype(np.float32))


def test_tie_binade():
    # [2**21, 2**22) has spacing 1/4: half of its values are exact ties between two 8-digit
    # candidates; NumPy takes the even last digit.
    start = np.float32(2**21).view(np.uint32).astype(np.int64)
    rng = np.random.default_rng(2)
    bits = np.concatenate(
        [np.arange(start, start + 20_000), rng.integers(start, start + 2**23, 20_000)]
    )
    assert_numpy_digits(from_bits(bits))


def test_random_bit_patterns():
    values = np.random.default_rng(0).integers(0, 2**32, 200_000, dtype=np.uint32).view(np.float32)
    assert_numpy_digits(values)


def test_uniform_and_rounded():
    rng = np.random.default_rng(3)
    values = rng.uniform(-5, 5, 200_000).astype(np.float32)
    assert_numpy_digits(values)
    assert_numpy_digits(np.round(values, 3))
    assert_numpy_digits(np.round(values.astype(np.float64), 3).astype(np.float32))


def test_wide_magnitudes():
    rng = np.random.default_rng(4)
    scales = 10.0 ** rng.uniform(-44, 38, 100_000)
    values = (rng.standard_normal(100_000) * scales).astype(np.float32)
    assert_numpy_digits(values)


@pytest.mark.parametrize(
    "array",
    [
        np.array(0.1, dtype=np.float32),
        np.array(-0.0, dtype=np.float32),
        np.array(np.nan, dtype=np.float32),
        np.array(-np.inf, dtype=np.float32),
        np.zeros((0,), dtype=np.float32),
        np.zeros((3, 0), dtype=np.float32),
        np.zeros((0, 3), dtype=np.float32),
        np.arange(12, dtype=np.float32).reshape(3, 4) / np.float32(7),
        (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / np.float32(3)).transpose(2, 0, 1),
        np.linspace(-1, 1, 40, dtype=np.float32)[::3],
        np.array([[0.1, np.nan], [-np.inf, -0.0]], dtype=np.float32),
        (np.arange(600, dtype=np.float32).reshape(20, 30) / np.float32(7)).T,
        np.linspace(-1, 1, 900, dtype=np.float32)[::-2],
        np.where(np.arange(400) % 7 == 0, np.nan, np.arange(400, dtype=np.float32) / np.float32(3)).astype(np.float32),
        np.full((2, 3, 50), -np.inf, dtype=np.float32),
    ],
)
def test_shapes(array):
    got = json_array(array)
    assert np.shape(got) == array.shape or array.size == 0
    assert_numpy_digits(array)


def test_other_dtypes_keep_their_own_digits():
    assert json_array(np.array([0.1, 1e-05], dtype=np.float64)) == [0.1, 1e-05]
    assert json_array(np.array(0.1, dtype=np.float32).astype(np.float64)) == 0.10000000149011612
    assert json_array(np.array([2, -1])) == [2.0, -1.0]
