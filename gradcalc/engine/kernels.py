"""torch's CPU kernels where their results differ from NumPy's: pow's special exponents,
sign, a libm computed one precision up, and which elements torch's loops vectorise.

(Summation order, the largest of these, is `summation.py`.)
"""

from __future__ import annotations

import functools
import math
import os
import platform
from typing import Any

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """The error function elementwise, in x's dtype (NumPy has none)."""
    x = np.asarray(x)
    return np.asarray(_erf(x), dtype=np.float64).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def _integral(x) -> bool:
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, np.ndarray) and x.dtype.kind in "iu")


def integer_pow(base, exponent) -> np.ndarray:
    """torch's pow of integers (powi): int64 products that wrap; a negative exponent gives
    1 for a base 1, +-1 for -1 and 0 otherwise, but a negative Python-number exponent is an
    error."""
    from gradcalc.errors import TorchError

    if not isinstance(exponent, np.ndarray) and exponent < 0:
        raise TorchError("Integers to negative integer powers are not allowed.",
                         hint="write the exponent as a float (x ** -1.) to compute in floats")
    b, e = np.broadcast_arrays(np.asarray(base, dtype=np.int64), np.asarray(exponent, dtype=np.int64))
    negative = e < 0
    with np.errstate(over="ignore"):
        result = np.power(b, np.where(negative, 0, e))
    if negative.any():
        reciprocal = np.where(b == 1, 1, np.where(b == -1, np.where(e % 2 == 0, 1, -1), 0))
        result = np.where(negative, reciprocal, result)
    return result


def torch_pow(base, exponent):
    """x ** e as torch computes it on the CPU: special kernels for a Python-number exponent."""
    if _integral(base) and _integral(exponent):
        return integer_pow(base, exponent)
    if isinstance(exponent, float):
        e = exponent
        if e == 0.5:
            return np.sqrt(base)
        if e == -0.5:
            return np.asarray(1, dtype=np.result_type(base)) / np.sqrt(base)
        if e == -1:
            return np.asarray(1, dtype=np.result_type(base)) / base
        if e == 2:
            return base * base
        if e == 3:
            return base * base * base
        if e == -2:
            return np.asarray(1, dtype=np.result_type(base)) / (base * base)
        return np.power(base, e)
    if np.ndim(exponent) == 0:
        # A 0-d exponent tensor: torch's elementwise pow, not NumPy's scalar shortcuts
        # (NumPy's sqrt for 0.5 gives -0. at -0.; pow gives 0.).
        exponent = np.full(np.shape(base) or (1,), exponent, dtype=np.result_type(exponent))
        return np.power(base, exponent).reshape(np.broadcast_shapes(np.shape(base), ()))
    return np.power(base, exponent)


def torch_sign(x):
    """torch's sign: (0 < x) - (x < 0), so 0 for nan and for -0."""
    dtype = np.result_type(x)
    return np.asarray(x > 0, dtype=dtype) - np.asarray(x < 0, dtype=dtype)


def _wide(fn, *, float64_too: bool = True):
    """fn evaluated one precision up and rounded back: float32 via float64, float64 via the
    80-bit long double. torch's vectorised libm is within an ulp of the correctly rounded
    result, which this lands on far more often than NumPy's own float32 functions (exp: 1%
    of inputs differ from torch instead of 39%)."""
    wider: dict[np.dtype, Any] = {np.dtype(np.float32): np.float64}
    if float64_too:
        wider[np.dtype(np.float64)] = np.longdouble

    def wide(*xs):
        dtype = np.result_type(*xs)
        if dtype not in wider:
            return fn(*xs)
        return fn(*(np.asarray(x, dtype=wider[dtype]) for x in xs)).astype(dtype)

    wide.__name__ = fn.__name__
    return wide


# Transcendental functions as forward rows and backward formulas compute them.
LIBM = {name: _wide(getattr(np, name)) for name in (
    "exp", "log", "log2", "log10", "sin", "cos", "tan", "sinh", "cosh", "tanh", "arctan", "arctan2")}
# In float64 these agree with torch more often as NumPy computes them.
LIBM.update({name: _wide(getattr(np, name), float64_too=False)
             for name in ("arcsin", "arccos", "expm1", "log1p")})


# Elements per iteration of torch's vectorised elementwise loops on x86-64 (two AVX2 vectors).
VECTOR_BLOCK = {4: 16, 8: 8}


def vector_lanes(shape: tuple, operand_shapes, dtype) -> np.ndarray:
    """Which elements torch's elementwise loop computes with vector instructions (the rest, a
    tail shorter than a block, with scalar code): over the whole tensor when the operands
    coalesce to one dimension, else along the innermost dimension."""
    block = VECTOR_BLOCK.get(np.dtype(dtype).itemsize, 1)
    size = int(np.prod(shape, dtype=np.int64))
    if all(s == shape or int(np.prod(s, dtype=np.int64)) == 1 for s in operand_shapes):
        return (np.arange(size) < size // block * block).reshape(shape)
    inner = shape[-1]
    return np.broadcast_to(np.arange(inner) < inner // block * block, shape)


# -- which CPU kernels torch runs, and which elements its loops compute in vector lanes --------

CAPABILITIES = ("default", "avx2", "avx512")


def cpu_capability() -> str:
    """torch's kernels here, "avx512", "avx2" or "default", chosen from the CPU's flags as torch
    does (or ATEN_CPU_CAPABILITY's, if lower); "default" off x86-64, which is not modelled."""
    best = _best_capability()
    wanted = os.environ.get("ATEN_CPU_CAPABILITY", "")
    if wanted in CAPABILITIES and CAPABILITIES.index(wanted) < CAPABILITIES.index(best):
        return wanted
    return best


@functools.lru_cache(maxsize=1)
def _best_capability() -> str:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "default"
    flags: set[str] = {"avx2", "fma"}  # without /proc/cpuinfo: what torch's x86-64 wheels target
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((set(line.split(":", 1)[1].split()) for line in info if line.startswith("flags")), flags)
    except OSError:
        pass
    if not {"avx2", "fma"} <= flags:
        return "default"
    return "avx512" if {"avx512vl", "avx512bw", "avx512dq"} <= flags else "avx2"


def _block(dtype: np.dtype, avx512: bool) -> int:
    """Elements per iteration of torch's vectorised loop: two vectors of AVX2 width, or of
    AVX-512 width for the kernels torch also builds for AVX-512 (where the CPU has it)."""
    block = VECTOR_BLOCK.get(np.dtype(dtype).itemsize, 1)
    if avx512 and cpu_capability() == "avx512":
        block *= 2
    return block


def vector_lane_mask(shape: tuple, dtype, avx512: bool = False) -> np.ndarray:
    """The elements of a contiguous tensor of `shape` that torch's elementwise loop computes
    with vector instructions; the rest (a tail shorter than a block) with scalar code."""
    size = math.prod(shape)
    block = _block(dtype, avx512)
    return (np.arange(size) < size // block * block).reshape(shape)


def lanes_of(avx512: bool):
    def lanes(x):
        x = np.asarray(x)
        if x.dtype.kind != "f":
            return np.zeros(x.shape, dtype=bool)
        return vector_lane_mask(x.shape, x.dtype, avx512)

    return lanes


# |x| past which Sleef's tanh (Sleef_tanhf16_u10, Sleef_tanhd8_u10) returns +-1
_SLEEF_TANH_ONE = {4: 8.664339742, 8: 18.714973875}


def sleef_tanh(x):
    """tanh as a kernel built for AVX-512 computes it: Sleef's in vector lanes, which is +-1
    for |x| > 8.664339742 (float32) or 18.714973875 (float64); the C library's (correctly
    rounded, or nearly) in the scalar tail, and everywhere in the default build (no Sleef)."""
    value = LIBM["tanh"](x)
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim == 0 or cpu_capability() == "default":
        return value
    saturated = (np.abs(x) > _SLEEF_TANH_ONE[x.dtype.itemsize]) & vector_lane_mask(x.shape, x.dtype, avx512=True)
    return np.where(saturated, np.sign(x).astype(x.dtype), value)


def float32_scalar(x):
    """A Python number as torch's `Scalar::toFloat()` rounds it (a double of that float)."""
    rounded = np.asarray(x, dtype=np.float32).astype(np.float64)
    return float(rounded) if rounded.ndim == 0 else rounded


# -- fused multiply-add, as torch's AVX2/AVX-512 builds compute `a + b * c` ---------------

def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    c = 134217729.0 * a  # 2**27 + 1: Veltkamp's split into two halves of 26 bits
    high = c - (c - a)
    return high, a - high


def _two_product(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _round_to_odd_sum(a, b):
    """a + b rounded to odd: an inexact sum takes the neighbour whose last bit is 1."""
    s, e = _two_sum(a, b)
    fix = (e != 0) & ((s.view(np.int64) & 1) == 0) & np.isfinite(s)
    return np.where(fix, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)


def fma_in(a, b, c, dtype: np.dtype) -> np.ndarray:
    """a * b + c rounded once to `dtype` (C's fma, which the compiler makes of `c + a * b`), of
    operands in that dtype. float32: the product exact in float64, the sum rounded to odd,
    then to float32; float64: Boldo and Melquiond's emulation (the exact product and sum, the
    low parts rounded to odd)."""
    with np.errstate(all="ignore"):
        a, b, c = (np.asarray(x, dtype=np.float64) for x in (a, b, c))
        naive = a * b + c
        if dtype == np.float32:
            result = _round_to_odd_sum(a * b, c)
        else:
            uh, ul = _two_product(a, b)
            th, tl = _two_sum(c, uh)
            v = _round_to_odd_sum(tl, ul)
            result = np.where(v == 0, th, th + v)
        return np.where(np.isfinite(naive), result, naive).astype(dtype)



def fma(a, b, c):
    """a * b + c rounded once, in the dtype of the arrays among them (Python numbers are
    torch's Scalars, cast to it): torch's vec::fmadd, and its scalar loops' `a * b + c`, which
    the compiler contracts to an FMA instruction."""
    arrays = [v for v in (a, b, c) if isinstance(v, np.ndarray)]
    if not arrays:
        return a * b + c
    dtype = np.result_type(*arrays)
    x, y, z = (np.asarray(v, dtype=dtype) for v in (a, b, c))
    return fma_in(x, y, z, dtype)


def infer_size(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """The shape two shapes broadcast to, or torch's infer_size error (it compares from the
    last dimension, and names the first mismatch it meets so)."""
    from gradcalc.errors import ShapeError

    ndim = max(len(a), len(b))
    shape = []
    for i in range(ndim - 1, -1, -1):
        offset = ndim - 1 - i
        size_a = a[len(a) - 1 - offset] if offset < len(a) else 1
        size_b = b[len(b) - 1 - offset] if offset < len(b) else 1
        if size_a != size_b and size_a != 1 and size_b != 1:
            raise ShapeError(f"The size of tensor a ({size_a}) must match the size of tensor b ({size_b}) "
                             f"at non-singleton dimension {i}")
        shape.append(size_a if size_b == 1 else size_b)
    return tuple(reversed(shape))


def kernel_fma(a, b, c):
    """a * b + c as torch's elementwise kernels compute it: one rounding (vec::fmadd, or the
    compiler's contraction of the scalar loop) in the kernels built for AVX2 and AVX-512; two
    in the default build, whose baseline x86-64 has no FMA instruction."""
    if cpu_capability() == "default":
        return a * b + c
    return fma(a, b, c)


def kernel_fma_in(a, b, c, dtype: np.dtype) -> np.ndarray:
    """fma_in as torch's kernels compute it: fused in the AVX2/AVX-512 builds, `a * b + c`
    rounded twice (in `dtype`) in the default build."""
    if cpu_capability() == "default":
        with np.errstate(all="ignore"):
            x, y, z = (np.asarray(v, dtype=dtype) for v in (a, b, c))
            return np.asarray(x * y + z, dtype=dtype)
    return fma_in(a, b, c, dtype)
