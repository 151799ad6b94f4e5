"""Rules of the reductions along dimensions (sum, mean, prod, max, min, amax, amin, argmax,
argmin, logsumexp, norm, std, var) and of the scans cumsum and cumprod.

Dims are torch's: an int or a tuple of them, negative from the end, wrapped as if a 0-d
tensor had one dim; None (and for most, the empty tuple) reduces every dim. Each backward
rule is PyTorch's (derivatives.yaml, FunctionsManual.cpp, ReduceOps.cpp), ties, zeros and nan
included, with the float sums, products and scans run by torch's own kernels
(`dim_kernels`) so that they round as torch's do; with the exact backend (`nums.exact`) the
same rules run on object arrays of SymPy numbers. SymPy is imported inside functions only.
"""

from __future__ import annotations

import math

import numpy as np

from gradcalc.engine import dim_kernels as K
from gradcalc.engine import rules
from gradcalc.engine.kernels import LIBM, torch_sign
from gradcalc.errors import InputError, TorchError

# -- dims and shapes ----------------------------------------------------------------------


def wrap(ndim: int, d: int) -> int:
    """A dim in [0, ndim), or torch's error; a 0-d tensor takes dims -1 and 0."""
    n = max(ndim, 1)
    if not -n <= d < n:
        raise TorchError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})")
    return d % n if ndim else 0


def dims_of(ndim: int, dim, *, empty_is_all: bool = True) -> tuple[int, ...]:
    """The reduced dims, sorted: None (and () where `empty_is_all`) is every dim."""
    if dim is None:
        return tuple(range(ndim))
    given = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    wrapped: list[int] = []
    for d in given:
        w = wrap(ndim, int(d))
        if w in wrapped:
            raise TorchError(f"dim {w} appears multiple times in the list of dims")
        wrapped.append(w)
    if ndim == 0:
        return ()
    if not wrapped and empty_is_all:
        return tuple(range(ndim))
    return tuple(sorted(wrapped))


def kept_shape(shape: tuple[int, ...], dims: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if d in dims else s for d, s in enumerate(shape))


def out_shape(shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    return kept_shape(shape, dims) if keepdim else tuple(s for d, s in enumerate(shape) if d not in dims)


def restore(t, shape: tuple[int, ...], dims: tuple[int, ...]):
    """A reduction's result (or its grad) with the reduced dims back as size 1
    (restore_reduced_dims / unsqueeze_multiple)."""
    return np.reshape(t, kept_shape(shape, dims))


def _size(shape, dims) -> int:
    return math.prod(shape[d] for d in dims)


# -- the number backend's sums, products and scans ---------------------------------------


def _exact(nums) -> bool:
    return bool(getattr(nums, "exact", False))


def _zeros(shape, like, nums):
    if _exact(nums):
        return nums.tensor(np.zeros(shape))
    return np.zeros(shape, dtype=np.asarray(like).dtype)


def _sum(a, dims, keepdim, nums):
    a = np.asarray(a)
    if _exact(nums):
        return _exact_reduce(a, dims, keepdim, lambda sp, xs: sp.Add(*xs))
    return K.sum_dim(a, dims if dims else None, keepdim) if a.ndim else _zero_plus(a)


def _zero_plus(a: np.ndarray) -> np.ndarray:
    """A 0-d tensor's sum or mean: torch's reduction starts from 0, so 0 + x (-0. gives 0.)."""
    return a + a.dtype.type(0) if a.dtype.kind == "f" else a.copy()


def _mean(a, dims, keepdim, nums):
    a = np.asarray(a)
    if _exact(nums):
        return _exact_reduce(a, dims, keepdim, _exact_mean)
    return K.mean_dim(a, dims if dims else None, keepdim) if a.ndim else _zero_plus(a)


def _cumsum(a, d: int, nums):
    return np.cumsum(a, axis=d) if _exact(nums) else K.cumsum(a, d)


def _cumprod(a, d: int, nums):
    return np.cumprod(a, axis=d) if _exact(nums) else K.cumprod(a, d)


def _isnan(a, nums):
    return np.asarray(nums.isnan(a), dtype=bool)


def _count(mask: np.ndarray, dims, grad, nums):
    """A boolean mask's count over dims (kept), in the grad's number type."""
    counts = mask.sum(axis=dims, keepdims=True) if dims else mask.sum(keepdims=True)
    return counts.astype(object) if _exact(nums) else counts.astype(np.asarray(grad).dtype)


def _as_numbers(mask: np.ndarray, like, nums):
    return mask.astype(np.int64).astype(object) if _exact(nums) else mask.astype(np.asarray(like).dtype)


# -- integer tensors: torch keeps them for sum, prod, max, cumsum ... --------------------


def _integral(x) -> bool:
    return np.asarray(x).dtype.kind in "iub"


def keep_integers(bools_stay: bool = False):
    """result_dtype: an int (or bool) tensor's reduction stays int64 (max/min/amax keep bool)."""

    def dtype(dtypes, float_dtype, **params):
        d = dtypes[0]
        if d is not None and d.kind in "iu":
            return np.dtype(np.int64)
        if d is not None and d.kind == "b":
            return np.dtype(bool) if bools_stay else np.dtype(np.int64)
        return float_dtype

    return dtype


def int64_result(dtypes, float_dtype, **params):
    return np.dtype(np.int64)


def float_result(dtypes, float_dtype, **params):
    """The float dtype, the operand taken as it is: an integer tensor reaches the forward,
    which raises torch's error (mean, norm, std and var take floats only)."""
    return float_dtype


def _torch_dtype(x) -> str:
    return {"b": "Bool", "i": "Long", "u": "Byte"}.get(np.asarray(x).dtype.kind, str(np.asarray(x).dtype))


def _floats_only(x, message: str) -> np.ndarray:
    x = np.asarray(x)
    if _integral(x):
        raise TorchError(message.format(dtype=_torch_dtype(x)))
    return x


# -- exact reductions (object arrays of SymPy numbers) -----------------------------------


def _exact_rows(x: np.ndarray, dims: tuple[int, ...]):
    """x as (outputs..., reduced elements), over object arrays."""
    x = np.asarray(x, dtype=object)
    rest = [d for d in range(x.ndim) if d not in dims]
    moved = np.transpose(x, rest + list(dims)) if x.ndim else x
    shape = tuple(x.shape[d] for d in rest)
    return moved.reshape(shape + (_size(x.shape, dims),)), shape


def _exact_reduce(x, dims, keepdim, fn):
    import sympy as sp

    x = np.asarray(x, dtype=object)
    rows, shape = _exact_rows(x, dims)
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        out[index] = fn(sp, list(rows[index]))
    return out.reshape(out_shape(x.shape, dims, keepdim))


def _exact_mean(sp, xs):
    return sp.Add(*xs) / len(xs) if xs else sp.nan


def _is_nan(sp, v) -> bool:
    return v is sp.nan or (isinstance(v, float) and math.isnan(v))


def _exact_extremum(sp, xs, largest: bool):
    if any(_is_nan(sp, v) for v in xs):
        return sp.nan
    return sp.Max(*xs) if largest else sp.Min(*xs)


def _exact_pick(sp, xs, largest: bool) -> int:
    """torch's index of the max (min): the first nan, else the first of equal extremes."""
    best = 0
    for i, v in enumerate(xs):
        if _is_nan(sp, v):
            return i
        if (v > xs[best]) if largest else (v < xs[best]):
            best = i
    return best


def _exact_number(sp, value: float):
    if math.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    return sp.Integer(int(value)) if float(value).is_integer() else sp.Rational(repr(float(value)))


# -- sum, mean -------------------------------------------------------------------------------


def sum_dim_forward(x, dim, keepdim):
    x = np.asarray(x)
    if _integral(x):
        dims = dims_of(x.ndim, dim)
        return np.sum(x.astype(np.int64), axis=dims, keepdims=keepdim) if x.ndim else x.astype(np.int64)
    dims_of(x.ndim, dim)
    return K.sum_dim(x, dim, keepdim) if x.ndim else x + x.dtype.type(0)  # 0 + x: -0. sums to 0.


def sum_dim_exact(sp, x, dim, keepdim):
    return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim, lambda sp, xs: sp.Add(*xs))


def sum_dim_vjp(grad, args, result, nums, dim, keepdim):
    """sum_backward: the grad with the reduced dims put back, expanded to the input's shape."""
    (x,) = args
    shape = np.shape(x)
    return (np.broadcast_to(restore(grad, shape, dims_of(len(shape), dim)), shape),)


MEAN_DTYPE = ("mean(): could not infer output dtype. Input dtype must be either a floating point or "
              "complex dtype. Got: {dtype}")


def mean_forward(x):
    """torch.mean(x): floats only."""
    return rules.mean_forward(_floats_only(x, MEAN_DTYPE))


def mean_dim_forward(x, dim, keepdim):
    x = _floats_only(x, MEAN_DTYPE)
    dims_of(x.ndim, dim)
    return K.mean_dim(x, dim, keepdim) if x.ndim else x + x.dtype.type(0)


def mean_dim_exact(sp, x, dim, keepdim):
    x = _floats_only(x, MEAN_DTYPE)
    return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim, _exact_mean)


def mean_count(shape, dim) -> int:
    """mean_backward's divisor: the number of elements when every dim is reduced (dim None or
    ()), else the product of the reduced sizes (1 for a 0-d input)."""
    if dim is None or (not isinstance(dim, (int, np.integer)) and not tuple(dim)):
        return math.prod(shape)
    return _size(shape, dims_of(len(shape), dim)) if shape else 1


def mean_dim_vjp(grad, args, result, nums, dim, keepdim):
    """mean_backward: sum_backward's grad divided by the count."""
    (x,) = args
    shape = np.shape(x)
    expanded = np.broadcast_to(restore(grad, shape, dims_of(len(shape), dim)), shape)
    count = mean_count(shape, dim)
    return (expanded / (count if _exact(nums) else np.asarray(count, dtype=np.asarray(grad).dtype)),)


# -- prod ------------------------------------------------------------------------------------


def prod_dim_forward(x, dim, keepdim):
    x = np.asarray(x)
    d = wrap(x.ndim, dim)
    if _integral(x):
        return np.prod(x.astype(np.int64), axis=d, keepdims=keepdim) if x.ndim else x.astype(np.int64)
    return K.prod_dim(x, dim, keepdim) if x.ndim else x.copy()


def prod_dim_exact(sp, x, dim, keepdim):
    return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim, lambda sp, xs: sp.Mul(*xs))


def _exclusive_products(x, d: int, nums):
    """prod_safe_zeros_backward's factor: for each element the product of the others of its
    slice along d, as exclusive cumprods from each end (torch's cumprod kernel)."""
    n = x.shape[d]
    ones = np.take(x, [0], axis=d)
    ones = nums.tensor(np.ones(ones.shape)) if _exact(nums) else np.ones_like(ones)
    before = _cumprod(np.concatenate([ones, np.take(x, range(n - 1), axis=d)], axis=d), d, nums)
    after_rev = np.concatenate([ones, np.flip(np.take(x, range(1, n), axis=d), axis=d)], axis=d)
    after = np.flip(_cumprod(after_rev, d, nums), axis=d)
    return before * after


def prod_dim_vjp(grad, args, result, nums, dim, keepdim):
    """prod_backward (dim): grad * result / x when the input has no zero at all, else the
    products of the others along dim (prod_safe_zeros_backward), for every slice."""
    (x,) = args
    x = np.asarray(x)
    if x.ndim == 0:
        return (grad,)
    d = wrap(x.ndim, dim)
    g = restore(grad, x.shape, (d,))
    r = restore(result, x.shape, (d,))
    if x.size == 0:
        return (np.broadcast_to(g, x.shape),)
    if not np.any(x == 0):
        return (g * (r / x),)
    if x.shape[d] == 1:
        return (np.broadcast_to(g, x.shape),)
    return (g * _exclusive_products(x, d, nums),)


def _others_and_their_tangents(x, dx, d: int):
    """For each element, the product of the others of its slice along d, and that product's
    tangent along dx (sums over every other element's tangent)."""
    xm, dxm = np.moveaxis(np.asarray(x), d, -1), np.moveaxis(np.asarray(dx), d, -1)
    n = xm.shape[-1]
    others = np.empty_like(xm)
    dothers = np.empty_like(xm)
    for k in range(n):
        rest = [m for m in range(n) if m != k]
        others[..., k] = _product(xm[..., rest], xm[..., k])
        total = None
        for m in rest:
            term = dxm[..., m] * _product(xm[..., [i for i in rest if i != m]], xm[..., k])
            total = term if total is None else total + term
        dothers[..., k] = total if total is not None else dxm[..., k] * 0
    return np.moveaxis(others, -1, d), np.moveaxis(dothers, -1, d)


def _product(parts: np.ndarray, like: np.ndarray):
    out = like * 0 + 1
    for i in range(parts.shape[-1]):
        out = out * parts[..., i]
    return out


def prod_dim_tangent(i, g, dg, args, dargs, r, dr, nums, dim, keepdim):
    (x,), (dx,) = args, dargs
    x = np.asarray(x)
    if x.ndim == 0:
        return np.asarray(dg, dtype=x.dtype)
    d = wrap(x.ndim, dim)
    others, dothers = _others_and_their_tangents(x, dx, d)
    g, dg = restore(g, x.shape, (d,)), restore(dg, x.shape, (d,))
    return dg * others + g * dothers


# -- max and min along a dim: (values, indices) -------------------------------------------


def _extremum_dim(largest: bool, x, dim, keepdim):
    x = np.asarray(x)
    d = wrap(x.ndim, dim)
    if x.ndim == 0:
        return x.copy(), np.zeros((), dtype=np.int64)
    if _integral(x):
        pick = np.argmax if largest else np.argmin
        index = pick(x, axis=d, keepdims=True)
        values = np.take_along_axis(x, index, axis=d)
        shape = out_shape(x.shape, (d,), keepdim)
        return values.reshape(shape), index.astype(np.int64).reshape(shape)
    return (K.max_dim if largest else K.min_dim)(x, dim, keepdim)


def extremum_dim_forward(largest: bool):
    def forward(x, dim, keepdim):
        return _extremum_dim(largest, x, dim, keepdim)[0]

    return forward


def extremum_dim_indices(largest: bool):
    def forward(x, dim, keepdim):
        return _extremum_dim(largest, x, dim, keepdim)[1]

    return forward


def _exact_extremum_dim(largest: bool, x, dim, keepdim):
    import sympy as sp

    x = np.asarray(x, dtype=object)
    dims = dims_of(x.ndim, dim)
    rows, shape = _exact_rows(x, dims)
    values, indices = np.empty(shape, dtype=object), np.empty(shape, dtype=object)
    for index in np.ndindex(shape):
        xs = list(rows[index])
        k = _exact_pick(sp, xs, largest)
        values[index], indices[index] = xs[k], k
    final = out_shape(x.shape, dims, keepdim)
    return values.reshape(final), indices.reshape(final)


def extremum_dim_exact(largest: bool):
    def exact(sp, x, dim, keepdim):
        return _exact_extremum_dim(largest, x, dim, keepdim)[0]

    return exact


def extremum_dim_indices_exact(largest: bool):
    def exact(sp, x, dim, keepdim):
        return _exact_extremum_dim(largest, x, dim, keepdim)[1]

    return exact


def extremum_dim_vjp(largest: bool):
    """value_selecting_reduction_backward: the grad scattered to the selected index along dim."""

    def vjp(grad, args, result, nums, dim, keepdim):
        (x,) = args
        x = np.asarray(x)
        if x.ndim == 0:
            return (grad,)
        d = wrap(x.ndim, dim)
        if _exact(nums):
            indices = _exact_extremum_dim(largest, x, dim, True)[1].astype(np.int64)
        else:
            indices = _extremum_dim(largest, x, dim, True)[1]
        out = _zeros(x.shape, grad, nums)
        np.put_along_axis(out, indices, restore(grad, x.shape, (d,)), axis=d)
        return (out,)

    return vjp


def check_extremum_dim(name: str):
    def check(shapes, dim, keepdim):
        (shape,) = shapes
        d = wrap(len(shape), dim)
        if shape and shape[d] == 0:
            raise TorchError(f"{name}(): Expected reduction dim {d} to have non-zero size.")

    return check


def extremum_other_lowering(name: str):
    """max(input, other) with a tensor other is maximum(input, other), as torch dispatches it."""

    def lower(kinds, shapes):
        if not all(kinds):
            raise InputError(f"{name}() received an invalid combination of arguments: '{name}(input, other)' "
                             "takes two tensors, not a number",
                             hint=f"for a number bound use clamp(x, {'min' if name == 'max' else 'max'}=...)")
        return ("maximum" if name == "max" else "minimum", (0, 1))

    return lower


def refuse_numbers(name: str):
    def forward(*operands):
        raise InputError(f"{name}() of numbers: it takes tensors",
                         hint="operations other than elementwise math need a tensor, e.g. --x 1,2")

    return forward


# -- argmax, argmin --------------------------------------------------------------------------


def arg_extremum_forward(largest: bool):
    def forward(x, dim, keepdim):
        x = np.asarray(x)
        pick = np.argmax if largest else np.argmin
        if dim is None:
            index = np.asarray(pick(x.reshape(-1)) if x.size else 0, dtype=np.int64)
            return index.reshape((1,) * x.ndim) if keepdim else index
        if x.ndim == 0:
            wrap(0, dim)
            return np.zeros((), dtype=np.int64)
        d = wrap(x.ndim, dim)
        return np.asarray(pick(x, axis=d, keepdims=keepdim), dtype=np.int64)

    return forward


def arg_extremum_exact(largest: bool):
    def exact(sp, x, dim, keepdim):
        x = np.asarray(x, dtype=object)
        if dim is None:
            flat = x.reshape(-1)
            index = np.empty((), dtype=object)
            index[()] = _exact_pick(sp, list(flat), largest)
            return index.reshape((1,) * x.ndim) if keepdim else index
        return _exact_extremum_dim(largest, x, dim, keepdim)[1]

    return exact


def check_arg_extremum(name: str):
    def check(shapes, dim, keepdim):
        (shape,) = shapes
        if dim is None:
            if math.prod(shape) == 0:
                raise TorchError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
            return
        d = wrap(len(shape), dim)
        if shape and shape[d] == 0:
            raise TorchError(f"{name}(): Expected reduction dim {d} to have non-zero size.")

    return check


# -- amax, amin ------------------------------------------------------------------------------


def amax_forward(largest: bool):
    def forward(x, dim, keepdim):
        x = np.asarray(x)
        dims = dims_of(x.ndim, dim)
        if x.ndim == 0:
            return x.copy()
        if _integral(x):
            return (np.max if largest else np.min)(x, axis=dims, keepdims=keepdim)
        return (K.amax_dim if largest else K.amin_dim)(x, dim, keepdim)

    return forward


def amax_exact(largest: bool):
    def exact(sp, x, dim, keepdim):
        return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim,
                             lambda sp, xs: _exact_extremum(sp, xs, largest))

    return exact


def amax_vjp(grad, args, result, nums, dim, keepdim):
    """scale_grad_by_count: the grad split evenly over the elements equal to the result (a nan
    result matches none: its slice's grad is nan)."""
    (x,) = args
    x = np.asarray(x)
    shape = x.shape
    dims = dims_of(len(shape), dim)
    g, r = restore(grad, shape, dims), restore(result, shape, dims)
    mask = np.asarray(r == x, dtype=bool)
    if _exact(nums):
        mask &= ~_isnan(x, nums)
    value = (g / _count(mask, dims, grad, nums)) * _as_numbers(mask, g, nums)
    if not shape and dim not in (None, ()) and not keepdim and not _exact(nums):
        # torch restores a 0-d grad along the dim to shape (1,), which autograd sums back to
        # (): 0 + g (a seed -0. gives 0.)
        value = value + value.dtype.type(0)
    return (value,)


def check_amax(name: str):
    def check(shapes, dim, keepdim):
        (shape,) = shapes
        dims_of(len(shape), dim)  # (its "Dimension out of range" first)
        if math.prod(shape) == 0:
            if not shape or dim is None or (not isinstance(dim, int) and not tuple(dim)):
                raise TorchError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                                 "Specify the reduction dim with the 'dim' argument.")
            # (amax names the dim as written: -1, where max(x, -1) says 1)
            for written in ((dim,) if isinstance(dim, int) else tuple(dim)):
                if shape[written % len(shape)] == 0:
                    raise TorchError(f"{name}(): Expected reduction dim {written} to have non-zero size.")

    return check


# -- logsumexp -------------------------------------------------------------------------------


def logsumexp_dim_forward(x, dim, keepdim):
    x = np.asarray(x)
    if _integral(x):
        x = x.astype(np.float64)
    dims = dims_of(x.ndim, dim)
    if x.ndim == 0:  # log(exp(x - x)) + x: 0 + x
        return x + x.dtype.type(0)
    if x.size == 0:
        with np.errstate(all="ignore"):
            return LIBM["log"](K.sum_dim(LIBM["exp"](x), dims, keepdim))
    return K.logsumexp_dim(x, dims, keepdim)


def logsumexp_dim_exact(sp, x, dim, keepdim):
    return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim,
                         lambda sp, xs: sp.log(sp.Add(*(sp.exp(v) for v in xs))))


def check_logsumexp(shapes, dim, keepdim):
    (shape,) = shapes
    dims_of(len(shape), dim)
    if shape and not isinstance(dim, int) and not tuple(dim) and math.prod(shape):
        raise TorchError(f"output with shape [] doesn't match the broadcast shape [{', '.join(['1'] * len(shape))}]")


def logsumexp_dim_vjp(grad, args, result, nums, dim, keepdim):
    """logsumexp_backward: grad * exp(x - result), the reduced dims put back on both."""
    (x,) = args
    shape = np.shape(x)
    dims = dims_of(len(shape), dim)
    g, r = restore(grad, shape, dims), restore(result, shape, dims)
    return (g * nums.call("exp", x - r),)


def logsumexp_dim_tangent(i, g, dg, args, dargs, r, dr, nums, dim, keepdim):
    (x,), (dx,) = args, dargs
    shape = np.shape(x)
    dims = dims_of(len(shape), dim)
    g, dg, r, dr = (restore(t, shape, dims) for t in (g, dg, r, dr))
    softmax = nums.call("exp", x - r)
    return dg * softmax + g * (softmax * (dx - dr))


# -- norm ------------------------------------------------------------------------------------


NORM_DTYPE = "linalg.vector_norm: Expected a floating point or complex tensor as input. Got {dtype}"


def _ord_text(p: float) -> str:
    if math.isinf(p):
        return "inf" if p > 0 else "-inf"
    return f"{p:g}"


def norm_forward(x, p, dim, keepdim):
    x = _floats_only(x, NORM_DTYPE)
    dims_of(x.ndim, dim)
    if x.ndim == 0:
        return (x != 0).astype(x.dtype) if p == 0 else np.abs(x)
    return K.norm_dim(x, p, dim, keepdim)


def norm_exact(sp, x, p, dim, keepdim):
    x = _floats_only(x, NORM_DTYPE)
    q = _exact_number(sp, p)

    def one(sp, xs):
        absolute = [sp.Abs(v) for v in xs]
        if any(_is_nan(sp, v) for v in xs):
            return sp.nan
        if p == 0:
            return sp.Integer(sum(1 for v in xs if v != 0))
        if math.isinf(p):
            return sp.Max(*absolute) if p > 0 else sp.Min(*absolute)
        if p == 1:
            return sp.Add(*absolute)
        if p == 2:
            return sp.sqrt(sp.Add(*(v * v for v in xs)))
        return sp.Add(*(a**q for a in absolute)) ** (1 / q)

    return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim, one)


def check_norm(shapes, p, dim, keepdim):
    (shape,) = shapes
    dims = dims_of(len(shape), dim)
    if p < 0 or math.isinf(p):
        if shape and dim is None and math.prod(shape) == 0:
            raise TorchError(f"linalg.vector_norm cannot compute the {_ord_text(p)} norm on an empty tensor "
                             "because the operation does not have an identity")
        for d in dims:
            if shape[d] == 0:
                raise TorchError(f"linalg.vector_norm cannot compute the {_ord_text(p)} norm on the dimension {d}"
                                 "because this dimension is empty and the operation does not have an identity")


def _norm_parts(x, result, grad, dim, keepdim):
    """x's shape, the reduced dims, and the grad and norm with those dims put back (unsqueezed
    only where keepdim is False and x is not 0-d, as norm_backward does)."""
    shape = np.shape(x)
    dims = dims_of(len(shape), dim) if dim is not None else tuple(range(len(shape)))
    return dims, restore(grad, shape, dims), restore(result, shape, dims)


def _pow(nums, base, exponent: float):
    return nums.pow(base, _exponent(nums, exponent))


def _exponent(nums, e: float):
    if _exact(nums):
        import sympy as sp

        return _exact_number(sp, e)
    return float(e)


def _masked(value, mask, nums):
    """value.masked_fill_(mask, 0)."""
    zero = _zeros(np.shape(value), value, nums)
    return np.where(mask, zero, value)


def norm_vjp(grad, args, result, nums, p, dim, keepdim):
    """norm_backward (linalg_vector_norm_backward) for p = 0, 1, 2, ±inf, p < 1, p < 2, else."""
    (x,) = args
    x = np.asarray(x)
    dims, g, n = _norm_parts(x, result, grad, dim, keepdim)
    sign = _sgn(x, nums)
    absolute = np.abs(x) if not _exact(nums) else nums.call("abs", x)
    if p == 0:
        return (_zeros(x.shape, g, nums),)
    if p == 1:
        return (sign * g,)
    if p == 2:
        return (g * _masked(x / n, np.asarray(n == 0, dtype=bool) & np.ones(x.shape, dtype=bool), nums),)
    if math.isinf(p):
        mask = np.asarray(absolute == n, dtype=bool) | _isnan(absolute, nums)
        return (sign * ((g / _count(mask, dims, g, nums)) * _as_numbers(mask, g, nums)),)
    if p < 1:
        scaled = sign * _masked(_pow(nums, absolute, p - 1), np.asarray(x == 0, dtype=bool), nums)
        return (scaled * g * _pow(nums, n, 1 - p),)
    scaled = sign * _pow(nums, absolute, p - 1) if p < 2 else x * _pow(nums, absolute, p - 2)
    scale = _masked(g / _pow(nums, n, p - 1), np.asarray(n == 0, dtype=bool), nums)
    return (scaled * scale,)


def _sgn(x, nums):
    return nums.call("sign", x) if _exact(nums) else torch_sign(x)


def _moves_a_zero(x, dx, nums) -> bool:
    """Whether the tangent moves an element that is 0."""
    return bool(np.any(np.asarray(x == 0, dtype=bool) & ~np.asarray(np.asarray(dx) == 0, dtype=bool)))


def _exact_nan():
    import sympy as sp

    return sp.nan


def norm_tangent(i, g, dg, args, dargs, r, dr, nums, p, dim, keepdim):
    (x,), (dx,) = args, dargs
    x = np.asarray(x)
    dims, g, n = _norm_parts(x, r, g, dim, keepdim)
    dg, dn = restore(dg, x.shape, dims), restore(dr, x.shape, dims)
    sign = _sgn(x, nums)
    absolute = np.abs(x) if not _exact(nums) else nums.call("abs", x)
    if p == 0:
        return _zeros(x.shape, g, nums)
    if p == 1:
        return sign * dg
    zero_norm = np.asarray(n == 0, dtype=bool) & np.ones(x.shape, dtype=bool)
    if p == 2:
        return _masked(dg * (x / n) + g * (dx / n - x * dn / (n * n)), zero_norm, nums)
    if math.isinf(p):
        mask = np.asarray(absolute == n, dtype=bool) | _isnan(absolute, nums)
        return sign * ((dg / _count(mask, dims, g, nums)) * _as_numbers(mask, g, nums))
    if p < 3 and _moves_a_zero(x, dx, nums):
        # torch's double backward differentiates |x|.pow(p - 1) (p - 2 above 2) at x = 0, where
        # its derivative is infinite, times a zero grad: nan, in every element of the column.
        return _zeros(x.shape, g, nums) + (nums.number(math.nan) if not _exact(nums) else _exact_nan())
    at_zero = np.asarray(x == 0, dtype=bool)
    # d(sgn(x) |x|^(p-1)) = d(x |x|^(p-2)) = (p - 1) |x|^(p-2) dx; 0 where x is 0 (not moved)
    dscaled = _masked(_exponent(nums, p - 1) * _pow(nums, absolute, p - 2), at_zero, nums) * dx
    if p < 1:
        scaled = sign * _masked(_pow(nums, absolute, p - 1), at_zero, nums)
        n_power = _pow(nums, n, 1 - p)
        dn_power = _exponent(nums, 1 - p) * _pow(nums, n, -p) * dn
        return dscaled * g * n_power + scaled * dg * n_power + scaled * g * dn_power
    scaled = sign * _pow(nums, absolute, p - 1) if p < 2 else x * _pow(nums, absolute, p - 2)
    scale = g / _pow(nums, n, p - 1)
    dscale = dg / _pow(nums, n, p - 1) - g * (_exponent(nums, p - 1) * _pow(nums, n, -p) * dn)
    return _masked(dscaled * scale + scaled * dscale, zero_norm, nums)


# -- var, std --------------------------------------------------------------------------------


VAR_DTYPE = "std and var only support floating point and complex dtypes"


def var_forward(x, dim, correction, keepdim):
    x = _floats_only(x, VAR_DTYPE)
    dims_of(x.ndim, dim)
    if x.ndim == 0:
        with np.errstate(all="ignore"):
            return _var_scalar(x, correction)
    return K.var_dim(x, dim, correction, keepdim)


def std_forward(x, dim, correction, keepdim):
    x = _floats_only(x, VAR_DTYPE)
    dims_of(x.ndim, dim)
    if x.ndim == 0:
        with np.errstate(all="ignore"):
            return np.sqrt(_var_scalar(x, correction))
    return K.std_dim(x, dim, correction, keepdim)


def _var_scalar(x, correction):
    dof = max(0.0, 1 - float(correction))
    value = np.float64(0.0) * (np.float64(x) - np.float64(x)) / np.float64(dof)
    return np.asarray(value, dtype=x.dtype)


def _exact_var(sp, xs, correction):
    if not xs:
        return sp.nan
    if any(_is_nan(sp, v) for v in xs):
        return sp.nan
    mean = sp.Add(*xs) / len(xs)
    total = sp.Add(*((v - mean) ** 2 for v in xs))
    dof = len(xs) - _exact_number(sp, correction)
    if dof <= 0:
        return sp.nan if total == 0 else sp.oo
    return total / dof


def var_exact(sp, x, dim, correction, keepdim):
    x = _floats_only(x, VAR_DTYPE)
    return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim, lambda sp, xs: _exact_var(sp, xs, correction))


def std_exact(sp, x, dim, correction, keepdim):
    x = _floats_only(x, VAR_DTYPE)
    return _exact_reduce(x, dims_of(np.ndim(x), dim), keepdim,
                         lambda sp, xs: sp.sqrt(_exact_var(sp, xs, correction)))


def _whole(x, dim) -> bool:
    """var_backward's `self.dim() == 0 || !dim_opt.has_value()`."""
    return np.ndim(x) == 0 or dim is None


def _var_scale(nums, numerator: float, dof: float, like):
    """(2.0 / dof) in double, as torch's Scalar: then cast to the tensor's dtype."""
    if _exact(nums):
        import sympy as sp

        dof_exact = _exact_number(sp, dof)
        return sp.zoo if dof_exact == 0 else sp.Integer(2) / dof_exact
    with np.errstate(divide="ignore"):
        value = np.float64(numerator) / np.float64(dof)
    return np.asarray(value, dtype=np.asarray(like).dtype)


def _var_geometry(x, dim, correction, keepdim):
    shape = np.shape(x)
    if _whole(x, dim):
        return tuple(range(len(shape))), math.prod(shape) - float(correction)
    dims = dims_of(len(shape), dim, empty_is_all=False)
    return dims, _size(shape, dims) - float(correction)


def var_vjp(grad, args, result, nums, dim, correction, keepdim):
    """var_backward: (2 / dof) * grad * (x - mean), the mean over the reduced dims (kept); the
    whole tensor with dof <= 0: grad * (nan where x is the mean, else inf)."""
    (x,) = args
    x = np.asarray(x)
    dims, dof = _var_geometry(x, dim, correction, keepdim)
    return (_var_backward(grad, x, dim, dims, dof, nums),)


def _var_backward(grad, x, dim, dims, dof, nums):
    shape = x.shape
    whole = _whole(x, dim)
    if whole:
        mean = _mean(x, tuple(range(x.ndim)), False, nums)
        if dof <= 0:
            if _exact(nums):
                import sympy as sp

                fill = np.where(np.asarray(x == mean, dtype=bool), sp.nan, sp.oo)
            else:
                fill = np.where(x == mean, np.asarray(np.nan, dtype=x.dtype), np.asarray(np.inf, dtype=x.dtype))
            return grad * fill
        return (_var_scale(nums, 2.0, dof, grad) * grad) * (x - mean)
    g = _var_grad(grad, shape, dims)
    mean = _mean(x, dims if dims else tuple(range(x.ndim)), True, nums)
    return (_var_scale(nums, 2.0, dof, grad) * g) * (x - mean)


def _var_grad(grad, shape, dims):
    """var_backward's grad: unsqueezed at the reduced dims for an input of 2 or more dims (an
    empty dim list leaves it 0-d, to broadcast)."""
    return restore(grad, shape, dims) if len(shape) > 1 and dims else grad


def _std_grad_var(grad, result, nums):
    """std_backward's grad for var_backward: grad / (2 * std), 0 where std is 0."""
    r = np.asarray(result)
    value = grad / (r * 2)
    return _masked(value, np.asarray(r == 0, dtype=bool) & np.ones(np.shape(value), dtype=bool), nums)


def std_vjp(grad, args, result, nums, dim, correction, keepdim):
    (x,) = args
    x = np.asarray(x)
    dims, dof = _var_geometry(x, dim, correction, keepdim)
    return (_var_backward(_std_grad_var(grad, result, nums), x, dim, dims, dof, nums),)


def _var_backward_tangent(g, dg, x, dx, dim, dims, dof, nums):
    """The tangent of _var_backward's result (g and dg: the grad and its tangent)."""
    whole = _whole(x, dim)
    if whole:
        mean, dmean = _mean(x, tuple(range(x.ndim)), False, nums), _mean(dx, tuple(range(x.ndim)), False, nums)
        if dof <= 0:
            return _var_backward(dg, x, dim, dims, dof, nums)
    else:
        g, dg = _var_grad(g, x.shape, dims), _var_grad(dg, x.shape, dims)
        every = dims if dims else tuple(range(x.ndim))
        mean, dmean = _mean(x, every, True, nums), _mean(dx, every, True, nums)
    scale = _var_scale(nums, 2.0, dof, g)
    return (scale * dg) * (x - mean) + (scale * g) * (dx - dmean)


def var_tangent(i, g, dg, args, dargs, r, dr, nums, dim, correction, keepdim):
    (x,), (dx,) = args, dargs
    x = np.asarray(x)
    dims, dof = _var_geometry(x, dim, correction, keepdim)
    return _var_backward_tangent(g, dg, x, dx, dim, dims, dof, nums)


def std_tangent(i, g, dg, args, dargs, r, dr, nums, dim, correction, keepdim):
    (x,), (dx,) = args, dargs
    x = np.asarray(x)
    dims, dof = _var_geometry(x, dim, correction, keepdim)
    r = np.asarray(r)
    zero = np.asarray(r == 0, dtype=bool) & np.ones(np.shape(g / (r * 2)), dtype=bool)
    gv = _masked(g / (r * 2), zero, nums)
    dgv = _masked(dg / (r * 2) - g * dr / (r * r * 2), zero, nums)
    return _var_backward_tangent(gv, dgv, x, dx, dim, dims, dof, nums)


def unbiased_lowering(name: str):
    """The legacy overloads var(input, unbiased) and var(input, dim, unbiased, keepdim=False):
    var with correction 1 (unbiased) or 0."""

    def lower(kinds, shapes, unbiased, dim=None, keepdim=False):
        return (name, (0,), {"dim": dim, "correction": 1.0 if unbiased else 0.0, "keepdim": keepdim})

    return lower


# -- cumsum, cumprod -------------------------------------------------------------------------


def cumsum_forward(x, dim):
    x = np.asarray(x)
    d = wrap(x.ndim, dim)
    if _integral(x):
        return np.cumsum(x.astype(np.int64), axis=d) if x.ndim else x.astype(np.int64)
    return K.cumsum(x, dim) if x.ndim else x.copy()


def cumprod_forward(x, dim):
    x = np.asarray(x)
    d = wrap(x.ndim, dim)
    if _integral(x):
        return np.cumprod(x.astype(np.int64), axis=d) if x.ndim else x.astype(np.int64)
    return K.cumprod(x, dim) if x.ndim else x.copy()


def cumsum_exact(sp, x, dim):
    x = np.asarray(x, dtype=object)
    return np.cumsum(x, axis=wrap(x.ndim, dim)) if x.ndim else x.copy()


def cumprod_exact(sp, x, dim):
    x = np.asarray(x, dtype=object)
    return np.cumprod(x, axis=wrap(x.ndim, dim)) if x.ndim else x.copy()


def _reversed_cumsum(w, d: int, nums):
    return np.flip(_cumsum(np.flip(w, axis=d), d, nums), axis=d)


def cumsum_vjp(grad, args, result, nums, dim):
    """cumsum_backward: grad.flip(dim).cumsum(dim).flip(dim)."""
    grad = np.asarray(grad)
    if grad.size <= 1 or grad.shape[wrap(grad.ndim, dim)] == 1:
        return (grad,)
    return (_reversed_cumsum(grad, wrap(grad.ndim, dim), nums),)


def cumprod_vjp(grad, args, result, nums, dim):
    """cumprod_backward (ReduceOps.cpp): reversed_cumsum(result * grad) / x without zeros; with
    zeros the same before a slice's first zero, at the first zero the products up to it times
    the sum of grad * cumprod of what follows it up to the second zero, and 0 after."""
    (x,) = args
    x, grad = np.asarray(x), np.asarray(grad)
    if x.size <= 1:
        return (grad,)
    d = wrap(x.ndim, dim)
    if x.shape[d] == 1:
        return (grad,)
    y = np.asarray(result)
    w = y * grad
    is_zero = np.asarray(x == 0, dtype=bool)
    if not is_zero.any():
        return (_reversed_cumsum(w, d, nums) / x,)
    out = _zeros(x.shape, grad, nums)
    zeros_so_far = np.cumsum(is_zero, axis=d)
    before = zeros_so_far == 0
    with np.errstate(all="ignore"):
        part = _reversed_cumsum(np.where(before, w, _zeros(w.shape, w, nums)), d, nums) / x
    out = np.where(before, part, out)
    between = zeros_so_far == 1
    first = np.argmax(between, axis=d, keepdims=True)
    first_mask = np.zeros_like(between)
    np.put_along_axis(first_mask, first, True, axis=d)
    first_mask &= between
    after_first = between & ~first_mask
    ones = nums.tensor(np.ones(x.shape)) if _exact(nums) else np.ones_like(x)
    products = _cumprod(np.where(after_first, x, ones), d, nums)
    grads_between = np.where(zeros_so_far != 1, _zeros(grad.shape, grad, nums), grad)
    total = _sum(products * grads_between, (d,), True, nums)
    earlier = np.take_along_axis(y, np.maximum(first - 1, 0), axis=d)
    earlier = np.where(first == 0, np.ones_like(earlier) if not _exact(nums) else nums.tensor(np.ones(earlier.shape)),
                       earlier)
    out = np.where(first_mask, np.broadcast_to(total * earlier, x.shape), out)
    return (out,)


def cumprod_tangent(i, g, dg, args, dargs, r, dr, nums, dim):
    """d/dt of sum_{j >= k} g_j prod_{i <= j, i != k} x_i: the rule on dg, plus g_j times the
    tangent of each omitted product."""
    (x,), (dx,) = args, dargs
    x = np.asarray(x)
    if x.ndim == 0:
        return np.asarray(dg)
    d = wrap(x.ndim, dim)
    xm, dxm = np.moveaxis(x, d, -1), np.moveaxis(np.asarray(dx), d, -1)
    gm, dgm = np.moveaxis(np.asarray(g), d, -1), np.moveaxis(np.asarray(dg), d, -1)
    n = xm.shape[-1]
    out = np.empty_like(xm)
    for k in range(n):
        total = xm[..., k] * 0
        for j in range(k, n):
            rest = [m for m in range(j + 1) if m != k]
            total = total + dgm[..., j] * _product(xm[..., rest], xm[..., k])
            for m in rest:
                others = [i2 for i2 in rest if i2 != m]
                total = total + gm[..., j] * dxm[..., m] * _product(xm[..., others], xm[..., k])
        out[..., k] = total
    return np.moveaxis(out, -1, d)


# -- displays --------------------------------------------------------------------------------


def _dim_expr(sp, dim):
    if dim is None:
        return None
    if isinstance(dim, (int, np.integer)):
        return sp.Integer(int(dim))
    # a tuple of dims as one commutative atom (SymPy takes an expression with a Tuple in it
    # for one that is never zero: KroneckerDelta(x, amax(x, (0, 1))) would be 0)
    return sp.Symbol(str(tuple(int(d) for d in dim)))


def call_value(name: str, *, keywords: dict | None = None):
    """The display value as torch writes the call: `sum(x, 1)`, `amax(x, (0, 1))`; with
    `keywords` ({name: default}), every parameter that is not its default as a keyword
    (`norm(x, p=3, dim=1)`, `var(x, 1, correction=0)`)."""

    def value(sp, exprs, **params):
        parts = list(exprs)
        dim = _dim_expr(sp, params.get("dim"))
        named = keywords or {}
        if dim is not None and "dim" not in named:
            parts.append(dim)
        for key, default in named.items():
            if key == "dim" and dim is not None:
                parts.append(sp.Symbol(f"dim={dim}"))
            elif key != "dim" and key in params and params[key] != default:
                parts.append(sp.Symbol(f"{key}={_number_text(params[key])}"))
        return sp.Function(name)(*parts)

    return value


def _number_text(v) -> str:
    if isinstance(v, bool):
        return str(v)
    return _ord_text(float(v))


def one_display(sp, exprs, shapes, **params):
    return (sp.Integer(1),)


def mean_display(sp, exprs, shapes, dim, keepdim):
    return (sp.Rational(1, max(1, mean_count(tuple(shapes[0]), dim))),)


def ratio_display(value):
    """d prod / dx = prod(...) / x: the value over the element (prod, cumprod)."""

    def display(sp, exprs, shapes, **params):
        return (value(sp, exprs, **params) / exprs[0],)

    return display


def selected_display(value):
    """max/min/amax/amin: 1 where the element is the one selected (ties: see the grad)."""

    def display(sp, exprs, shapes, **params):
        return (sp.KroneckerDelta(exprs[0], value(sp, exprs, **params)),)

    return display


def logsumexp_display(value):
    def display(sp, exprs, shapes, **params):
        return (sp.exp(exprs[0] - value(sp, exprs, **params)),)

    return display


def norm_display(value):
    def display(sp, exprs, shapes, p, dim, keepdim):
        (x,) = exprs
        n = value(sp, exprs, p=p, dim=dim, keepdim=keepdim)
        if p == 0:
            return (sp.Integer(0),)
        if p == 1:
            return (sp.sign(x),)
        if p == 2:
            return (x / n,)
        if math.isinf(p):
            return (sp.sign(x) * sp.KroneckerDelta(sp.Abs(x), n),)
        q = sp.Rational(repr(float(p)))
        return (sp.sign(x) * sp.Abs(x) ** (q - 1) / n ** (q - 1),)

    return display


def var_display(value, std: bool):
    def display(sp, exprs, shapes, dim, correction, keepdim):
        (x,) = exprs
        shape = tuple(shapes[0])
        dims = tuple(range(len(shape))) if dim is None else dims_of(len(shape), dim)
        count = _size(shape, dims) if shape else 1
        mean = sp.Function("mean")(x, _dim_expr(sp, dim)) if dim is not None else sp.Function("mean")(x)
        dof = count - sp.Rational(repr(float(correction)))
        partial = 2 * (x - mean) / dof
        if std:
            partial = partial / (2 * value(sp, exprs, dim=dim, correction=correction, keepdim=keepdim))
        return (partial,)

    return display
