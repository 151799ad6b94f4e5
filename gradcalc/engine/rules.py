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

from gradcalc.engine.kernels import infer_size
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
    # torch's cumprod of floats accumulates in double and rounds each element to x's dtype
    wide = np.float64 if x.dtype.kind == "f" else x.dtype
    before = np.cumprod(np.concatenate([one, flat[:-1]]).astype(wide)).astype(x.dtype)
    after = np.cumprod(np.concatenate([one, flat[::-1][:-1]]).astype(wide))[::-1].astype(x.dtype)
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
    if x.dtype.kind in "iub":  # an integer tensor is computed in floats (the result is the float dtype)
        x = x.astype(np.float64)
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


class _Operand:
    """A tensor of matmul's dispatch, as torch's _matmul_impl sees it: the call that makes it
    (an operand's index or a lowering call), its shape, strides and whether it requires grad."""

    __slots__ = ("call", "shape", "strides", "requires_grad")

    def __init__(self, call, shape, strides, requires_grad: bool):
        self.call, self.shape, self.strides, self.requires_grad = call, tuple(shape), tuple(strides), requires_grad

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def then(self, row: str, params: dict, shape, strides, *others: _Operand) -> _Operand:
        """The result of a row applied to this tensor (and others), laid out as given."""
        calls = (self.call, *(o.call for o in others))
        requires_grad = self.requires_grad or any(o.requires_grad for o in others)
        return _Operand((row, calls, params) if params else (row, calls), shape, strides, requires_grad)

    def product(self, row: str, other: _Operand, shape) -> _Operand:
        """mm, mv, bmm, dot: a new contiguous tensor."""
        from gradcalc.engine.rows.shapes import contiguous_strides

        return self.then(row, {}, shape, contiguous_strides(shape), other)

    def transpose(self, d0: int, d1: int, row: str = "transpose") -> _Operand:
        shape, strides = list(self.shape), list(self.strides)
        shape[d0], shape[d1] = shape[d1], shape[d0]
        strides[d0], strides[d1] = strides[d1], strides[d0]
        params = {"dim0": d0 - self.ndim, "dim1": d1 - self.ndim} if row == "transpose" else {}
        return self.then(row, params, shape, strides)

    def squeeze(self, dim: int, row: str = "squeeze") -> _Operand:
        d = dim % self.ndim
        if self.shape[d] != 1:
            return self.then(row, {"dim": dim}, self.shape, self.strides)
        shape, strides = self.shape[:d] + self.shape[d + 1:], self.strides[:d] + self.strides[d + 1:]
        return self.then(row, {"dim": dim}, shape, strides)

    def unsqueeze(self, dim: int) -> _Operand:
        from gradcalc.engine.rows.shapes import unsqueeze_geometry

        shape, strides = unsqueeze_geometry(self.shape, self.strides, dim)
        return self.then("unsqueeze", {"dim": dim}, shape, strides)

    def expand(self, sizes) -> _Operand:
        from gradcalc.engine.rows.shapes import expand_geometry

        shape, strides = expand_geometry("", self.shape, self.strides, sizes)
        return self.then("expand", {"size": tuple(sizes)}, shape, strides)

    def reshape(self, shape) -> _Operand:
        """torch's reshape: a view, an alias, or a contiguous copy viewed (`shapes.reshape_call`)."""
        from gradcalc.engine.rows import shapes as S

        shape = tuple(shape)
        row, _, params = S.reshape_call(self.call, self.shape, self.strides, shape)
        if row == "_unsafe_view":
            return self.contiguous().then("_unsafe_view", {"shape": shape}, shape, S.contiguous_strides(shape))
        strides = S.compute_stride(self.shape, self.strides, shape)
        return self.then(row, params, shape, strides)

    def unsafe_view(self, shape) -> _Operand:
        from gradcalc.engine.rows.shapes import compute_stride, contiguous_strides

        strides = compute_stride(self.shape, self.strides, shape) or contiguous_strides(shape)
        return self.then("_unsafe_view", {"shape": tuple(shape)}, shape, strides)

    def contiguous(self) -> _Operand:
        from gradcalc.engine.rows.shapes import contiguous_strides, is_contiguous

        if is_contiguous(self.shape, self.strides):
            return self
        return self.then("_clone", {}, self.shape, contiguous_strides(self.shape))


def matmul_lowering(kinds, shapes, values=None, requires_grad=None):
    """torch.matmul as its _matmul_impl dispatches it by rank: dot, mv, mm, vector @ matrix as
    unsqueeze, mm and squeeze_; a batch folded into one mm or mv where should_fold allows it;
    else the batch dims broadcast, expanded and flattened into one bmm, its result viewed back.
    What torch does depends on which operands require grad and on their strides, so the
    lowering reads both (all operands require grad, contiguous, when they are not given)."""
    from gradcalc.engine.rows.shapes import operand_strides

    operands = [_Operand(i, shapes[i], operand_strides(shapes, values, i),
                         True if requires_grad is None else bool(requires_grad[i])) for i in range(2)]
    return _matmul(*operands).call


matmul_lowering.wants_operands = True  # type: ignore[attr-defined]


def _should_fold(t1: _Operand, t2: _Operand) -> bool:
    """torch's should_fold: fold the larger tensor's batch into the rows of one matrix where
    the smaller one requires grad, or where the fold is a view (no copy)."""
    larger = t1 if t1.ndim >= t2.ndim else t2.transpose(t2.ndim - 2, t2.ndim - 1)
    smaller = t2 if t1.ndim >= t2.ndim else t1
    if not (larger.ndim >= 3 and smaller.ndim <= 2):
        return False
    if smaller.requires_grad:
        return True
    if t1.ndim == 2:
        return False
    if math.prod(larger.shape) == 0:
        return True
    return all(larger.strides[i] == larger.strides[i + 1] * larger.shape[i + 1] for i in range(larger.ndim - 2))


def _matmul(t1: _Operand, t2: _Operand) -> _Operand:
    d1, d2 = t1.ndim, t2.ndim
    if d1 == 0 or d2 == 0:
        raise ShapeError(f"both arguments to matmul need to be at least 1D, but they are {d1}D and {d2}D")
    if d1 == 1 and d2 == 1:
        return t1.product("dot", t2, ())
    if d1 == 2 and d2 == 1:
        return t1.product("mv", t2, t1.shape[:1])
    if d1 == 1 and d2 == 2:
        return t1.unsqueeze(0).product("mm", t2, (1, t2.shape[1])).squeeze(0, row="squeeze_")
    if d1 == 2 and d2 == 2:
        return t1.product("mm", t2, (t1.shape[0], t2.shape[1]))
    if _should_fold(t1, t2):
        transpose = d2 > d1
        a = t2.transpose(d2 - 2, d2 - 1) if transpose else t1
        b = t2 if not transpose else t1.transpose(0, 1, row="t") if d1 == 2 else t1
        output_shape = a.shape[:-1]
        folded = math.prod(output_shape)
        if b.ndim == 2:
            output_shape += (b.shape[1],)
        a_folded = a.reshape((folded, a.shape[-1]))
        if b.ndim == 2:
            _mm_shapes(a_folded.shape, b.shape)
            output = a_folded.product("mm", b, (folded, b.shape[1])).unsafe_view(output_shape)
            return output.transpose(output.ndim - 2, output.ndim - 1).contiguous() if transpose else output
        _mv_shapes(a_folded.shape, b.shape)
        return a_folded.product("mv", b, (folded,)).unsafe_view(output_shape)
    n = t1.shape[-2] if d1 > 1 else 1
    m1 = t1.shape[-1]
    batch1 = t1.shape[:max(d1 - 2, 0)]
    m2 = t2.shape[-2] if d2 > 1 else t2.shape[0]
    p = t2.shape[-1] if d2 > 1 else 1
    batch2 = t2.shape[:max(d2 - 2, 0)]
    if d1 == 3 and d2 == 3 and batch1[0] != batch2[0]:
        if batch1[0] == 1 and t1.requires_grad:
            return _matmul(t1.squeeze(0), t2)
        if batch2[0] == 1 and t2.requires_grad:
            return _matmul(t1, t2.squeeze(0))
    batch = _broadcast_batch(batch1, batch2)
    size = math.prod(batch)
    t1_expanded = t1.expand(batch + (n, m1)).reshape((size, n, m1))
    if d2 == 1:
        t2_expanded = t2.expand(batch + (m2,)).reshape((size, m2)).unsqueeze(2)
    else:
        t2_expanded = t2.expand(batch + (m2, p)).reshape((size, m2, p))
    output_shape = batch + ((n,) if d1 > 1 else ()) + ((p,) if d2 > 1 else ())
    _bmm_shapes(t1_expanded.shape, t2_expanded.shape)
    product = t1_expanded.product("bmm", t2_expanded, (size, n, t2_expanded.shape[2]))
    if d2 == 1:
        product = product.squeeze(-1)
    return product.unsafe_view(output_shape)


def _broadcast_batch(a, b) -> tuple[int, ...]:
    """torch's infer_size of the batch dims, with its error."""
    return infer_size(tuple(a), tuple(b))


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


# bmm_out_or_baddbmm_: below this many multiply-adds a matrix, torch's own loop adds each
# entry's products in order; above, a BLAS kernel.
BMM_LOOP_LIMIT = 400


def bmm_forward(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape[2] == 0:
        return np.zeros((a.shape[0], a.shape[1], b.shape[2]), dtype=np.result_type(a, b))
    if a.shape[2] * a.shape[1] * b.shape[2] < BMM_LOOP_LIMIT and a.dtype.kind != "O":
        total = np.zeros((a.shape[0], a.shape[1], b.shape[2]), dtype=np.result_type(a, b))
        for k in range(a.shape[2]):
            total = total + a[:, :, k, None] * b[:, None, k, :]
        return total
    return _from_zero(np.matmul(a, b))


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
    if not m:
        raise ShapeError("Dimension specified as 0 but tensor has no dimensions")
    if len(m) != 2 or len(v) != 1:
        raise ShapeError(f"vector + matrix @ vector expected, got 1, {len(m)}, {len(v)}")
    _mv_shapes(m, v)


def _mv_shapes(m, v):
    if m[1] != v[0]:
        raise ShapeError(f"size mismatch, got input ({m[0]}), mat ({_by(m)}), vec ({v[0]})",
                         hint=f"a ({_by(m)}) matrix times a vector needs a vector of length {m[1]}")


def mm_check(shapes):
    a, b = shapes
    if len(a) != 2:
        raise ShapeError("self must be a matrix")
    if len(b) != 2:
        raise ShapeError("mat2 must be a matrix")
    _mm_shapes(a, b)


def _mm_shapes(a, b):
    if a[1] != b[0]:
        raise ShapeError(f"mat1 and mat2 shapes cannot be multiplied ({_by(a)} and {_by(b)})",
                         hint=f"the left operand's columns ({a[1]}) must equal the right operand's rows ({b[0]})")


def bmm_check(shapes):
    a, b = shapes
    if len(a) != 3:
        raise ShapeError("batch1 must be a 3D tensor")
    if len(b) != 3:
        raise ShapeError("batch2 must be a 3D tensor")
    _bmm_shapes(a, b)


def _bmm_shapes(a, b):
    if b[0] != a[0] or b[1] != a[2]:
        raise ShapeError(f"Expected size for first two dimensions of batch2 tensor to be: [{a[0]}, {a[2]}] "
                         f"but got: [{b[0]}, {b[1]}].")


def dot_vjp(grad, args, result, nums):
    a, b = args
    return (grad * b, grad * a)


def mv_vjp(grad, args, result, nums):
    m, v = args
    return (np.outer(grad, v), mv_forward(m.T, grad))


def mm_vjp(grad, args, result, nums):
    a, b = args
    return (mm_forward(grad, b.T), mm_forward(a.T, grad))


def bmm_vjp(grad, args, result, nums):
    """bmm's backward: grad.bmm(mat2.transpose(1, 2)) and self.transpose(1, 2).bmm(grad)."""
    a, b = args
    return (bmm_forward(grad, np.swapaxes(b, 1, 2)), bmm_forward(np.swapaxes(a, 1, 2), grad))


def reshape_vjp(grad, args, result, nums):
    """The gradient of a reshaping op (squeeze, unsqueeze): the same numbers in the operand's shape."""
    return (grad.reshape(np.shape(args[0])),)


def other_factor_display(sp, exprs, shapes):
    a, b = exprs
    return (b, a)


def identity_value(sp, exprs):
    return exprs[0]
