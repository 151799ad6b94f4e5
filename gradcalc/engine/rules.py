"""Hand-written forward, vector-Jacobian, second-order and display rules for reductions and
linear algebra, which the op table's rows name.

Each vector-Jacobian rule follows PyTorch's backward formula (derivatives.yaml /
FunctionsManual.cpp), ties, zeros and nan included, and takes the number backend `nums`
(floats or exact) as its last argument. Elementwise ops need none of this: their partials
are formulas in the op table.
"""

from __future__ import annotations

import math

import numpy as np

from gradcalc.engine.summation import torch_sum
from gradcalc.errors import ShapeError


def _in_dtype(value, like) -> np.ndarray:
    return np.asarray(value, dtype=np.asarray(like).dtype)


# -- reductions to a 0-d tensor ---------------------------------------------------------

def reduce_forward(fn):
    def forward(x):
        return _in_dtype(fn(x), x)

    return forward


def mean_forward(x):
    """torch's mean: the sum (in torch's order), divided by the count."""
    x = np.asarray(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        return torch_sum(x) / _in_dtype(x.size, x)


def sum_vjp(grad, args, result, nums):
    (x,) = args
    return (np.broadcast_to(grad, np.shape(x)),)


def mean_vjp(grad, args, result, nums):
    (x,) = args
    return (np.broadcast_to(grad / _in_dtype(np.size(x), grad), np.shape(x)),)


def prod_vjp(grad, args, result, nums):
    """prod_backward: result / x without zeros; products of the others with one zero; else 0."""
    (x,) = args
    x = np.asarray(x)
    if x.ndim == 0:
        return (grad,)
    zeros = np.count_nonzero(x == 0)
    if zeros == 0:
        return (grad * (result / x),)
    if zeros > 1:
        return (np.zeros_like(x),)
    flat = x.reshape(-1)
    one = np.ones(1, dtype=x.dtype)
    before = np.cumprod(np.concatenate([one, flat[:-1]]))
    after = np.cumprod(np.concatenate([one, flat[::-1][:-1]]))[::-1]
    return ((grad * (before * after)).reshape(x.shape),)


def extremum_vjp(grad, args, result, nums):
    """evenly_distribute_backward: the gradient split evenly over the elements equal to the result."""
    (x,) = args
    x = np.asarray(x)
    mask = nums.isnan(x) if nums.isnan(result) else np.asarray(x == result, dtype=bool)
    out = np.zeros_like(x)
    out[mask] = grad / _in_dtype(np.count_nonzero(mask), grad)
    return (out,)


def extremum_check(name):
    def check(shapes):
        if math.prod(shapes[0]) == 0:
            raise ShapeError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                             "Specify the reduction dim with the 'dim' argument.")

    return check


def norm_forward(x):
    """sqrt of the sum of squares; of one element, torch's norm is its absolute value (no overflow)."""
    x = np.asarray(x)
    if x.size == 1:
        return np.abs(x.reshape(()))
    with np.errstate(over="ignore", under="ignore"):
        return _in_dtype(np.sqrt(torch_sum(x * x)), x)


def norm_vjp(grad, args, result, nums):
    """norm_backward for p=2: grad * (x / norm), with x / norm masked to 0 where the norm is 0."""
    (x,) = args
    return (grad * np.where(result == 0, _in_dtype(0, x), x / result),)


def logsumexp_forward(x):
    """torch's logsumexp: log(sum(exp(x - m))) + m with m the largest element, taken as 0
    where it is infinite (so that inf - inf never makes a nan)."""
    from gradcalc.engine.kernels import LIBM

    x = np.asarray(x)
    if x.size == 0:
        return _in_dtype(LIBM["log"](torch_sum(LIBM["exp"](x))), x)
    with np.errstate(all="ignore"):
        m = np.max(x)
        m = np.where(np.abs(m) == np.inf, _in_dtype(0, x), m)
        return _in_dtype(LIBM["log"](torch_sum(LIBM["exp"](x - m))) + m, x)


def logsumexp_vjp(grad, args, result, nums):
    """logsumexp_backward: grad * exp(x - result), the softmax of x times the gradient."""
    (x,) = args
    return (grad * nums.call("exp", x - result),)


# -- second order: the tangent of a vector-Jacobian product ------------------------------
# (i, g, dg, args, dargs, result, dresult, nums) -> the tangent of the i-th rule's result,
# for rows that are neither multilinear nor linear in the gradient alone (see ops.Op).

def prod_tangent(i, g, dg, args, dargs, r, dr, nums):
    (x,), (dx,) = args, dargs
    dtype = np.asarray(x).dtype
    if np.ndim(x) == 0:
        return np.asarray(dg, dtype=dtype)
    flat, dflat = x.reshape(-1), np.asarray(dx).reshape(-1)
    others = np.array([np.prod(np.delete(flat, k)) for k in range(flat.size)], dtype=dtype)
    dothers = np.array([sum(dflat[m] * np.prod(np.delete(flat, [k, m])) for m in range(flat.size) if m != k)
                        for k in range(flat.size)], dtype=dtype)
    return (dg * others + g * dothers).reshape(x.shape)


def norm_tangent(i, g, dg, args, dargs, r, dr, nums):
    (x,), (dx,) = args, dargs
    if r == 0:
        return np.zeros_like(x)
    return dg * (x / r) + g * (dx / r - x * dr / (r * r))


def logsumexp_tangent(i, g, dg, args, dargs, r, dr, nums):
    (x,), (dx,) = args, dargs
    softmax = nums.call("exp", x - r)
    return dg * softmax + g * softmax * (dx - dr)


def one_display(sp, exprs, shapes):
    return (sp.Integer(1),)


def mean_display(sp, exprs, shapes):
    return (sp.Rational(1, max(1, math.prod(shapes[0]))),)


def prod_display(sp, exprs, shapes):
    (x,) = exprs
    return (sp.Function("prod")(x) / x,)


def extremum_display(name):
    def display(sp, exprs, shapes):
        (x,) = exprs
        return (sp.KroneckerDelta(x, sp.Function(name)(x)),)

    return display


def norm_display(sp, exprs, shapes):
    (x,) = exprs
    return (x / sp.Function("norm")(x),)


def logsumexp_display(sp, exprs, shapes):
    (x,) = exprs
    return (sp.exp(x - sp.Function("logsumexp")(x)),)


# -- linear algebra ---------------------------------------------------------------------

def _dims(shapes) -> str:
    return " and ".join(f"{len(s)}D" for s in shapes)


def _by(shape) -> str:
    return "x".join(str(n) for n in shape)


def matmul_lowering(kinds, shapes):
    """torch.matmul's dispatch by rank: dot, mv, mm, or unsqueeze-mm-squeeze for vector @ matrix."""
    ranks = tuple(len(s) for s in shapes)
    if 0 in ranks:
        raise ShapeError(f"both arguments to matmul need to be at least 1D, but they are {_dims(shapes)} tensors")
    if ranks == (1, 1):
        return ("dot", (0, 1))
    if ranks == (2, 1):
        return ("mv", (0, 1))
    if ranks == (2, 2):
        return ("mm", (0, 1))
    if ranks == (1, 2):
        return ("squeeze0", (("mm", (("unsqueeze0", (0,)), 1)),))
    raise ShapeError(f"matmul of {_dims(shapes)} tensors: gradcalc supports 1-D and 2-D operands only")


def mm_forward(a, b):
    # A (m x 1) @ (1 x n) product with m, n > 1 is torch's outer product itself: -0. stays -0.
    # (a single row or column goes through a matrix-vector kernel that starts from +0.).
    outer = a.shape[1] == 1 and a.shape[0] > 1 and b.shape[1] > 1
    return a * b if outer else _from_zero(np.matmul(a, b))


def _from_zero(products: np.ndarray) -> np.ndarray:
    """A sum of products as BLAS accumulates it, from +0.: an all -0. sum is 0., not -0."""
    return products + products.dtype.type(0)


def dot_forward(a, b):
    return _from_zero(np.asarray(np.dot(a, b)))


def mv_forward(m, v):
    return _from_zero(np.matmul(m, v))


def dot_check(shapes):
    a, b = shapes
    if len(a) != 1 or len(b) != 1:
        raise ShapeError(f"1D tensors expected, but got {_dims(shapes)} tensors",
                         hint="dot() takes two vectors; for matrices use @")
    if a[0] != b[0]:
        raise ShapeError(f"inconsistent tensor size, expected tensor [{a[0]}] and src [{b[0]}] to have "
                         f"the same number of elements, but got {a[0]} and {b[0]} elements respectively",
                         hint="both vectors of a dot product need the same length")


def mv_check(shapes):
    m, v = shapes
    if m[1] != v[0]:
        raise ShapeError(f"size mismatch, got input ({m[0]}), mat ({_by(m)}), vec ({v[0]})",
                         hint=f"a ({_by(m)}) matrix times a vector needs a vector of length {m[1]}")


def mm_check(shapes):
    a, b = shapes
    if a[1] != b[0]:
        raise ShapeError(f"mat1 and mat2 shapes cannot be multiplied ({_by(a)} and {_by(b)})",
                         hint=f"the left operand's columns ({a[1]}) must equal the right operand's rows ({b[0]})")


def dot_vjp(grad, args, result, nums):
    a, b = args
    return (grad * b, grad * a)


def mv_vjp(grad, args, result, nums):
    m, v = args
    return (np.outer(grad, v), mv_forward(m.T, grad))


def mm_vjp(grad, args, result, nums):
    a, b = args
    return (mm_forward(grad, b.T), mm_forward(a.T, grad))


def reshape_vjp(grad, args, result, nums):
    """The gradient of a reshaping op (squeeze, unsqueeze): the same numbers in the operand's shape."""
    return (grad.reshape(np.shape(args[0])),)


def other_factor_display(sp, exprs, shapes):
    a, b = exprs
    return (b, a)


def identity_value(sp, exprs):
    return exprs[0]
