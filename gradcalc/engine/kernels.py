"""torch's CPU kernels where their results differ from NumPy's: pow's special exponents,
sign, a libm computed one precision up, and which elements torch's loops vectorise.

(Summation order, the largest of these, is `summation.py`.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    """The error function elementwise, in x's dtype (NumPy has none)."""
    x = np.asarray(x)
    return np.asarray(_erf(x), dtype=np.float64).astype(x.dtype if x.dtype.kind == "f" else np.float64)


def torch_pow(base, exponent):
    """x ** e as torch computes it on the CPU: special kernels for a Python-number exponent."""
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
