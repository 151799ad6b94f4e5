"""Reductions along dimensions, rounded as torch's CPU kernels round them (float32 and float64).

torch reduces through a TensorIterator: the reduced dimensions go first (fastest), sorted by
stride, adjacent dimensions merge, and the kernel's inner loop sees two dimensions at a time;
which of its paths runs (a cascade along contiguous rows, or down columns; four vector
accumulators or one scalar) follows from that layout, and so does the order of the additions.
`_layout` rebuilds the layout, `_reduce` runs a kernel's loop body over it as `parallel_reduce`
does (serially below the grain size, else split between `torch_threads()` threads), and each
body adds in its kernel's order. The input is read as a C-contiguous tensor.

The vector width is that of torch's AVX2 kernels (8 float / 4 double lanes) for the reductions
registered without an AVX-512 variant (sum, prod, amax, norm), on every x86-64 capability;
softmax and log_softmax run AVX-512 code too, 16 / 8 lanes, where `cpu_capability()` is avx512.

exp and log are `kernels.LIBM`'s, within an ulp of torch's (Sleef's or MKL's), not always its
bits; pow is libm's own powf / pow, through ctypes, as torch calls it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from gradcalc.engine.kernels import LIBM, cpu_capability, fma
from gradcalc.engine.summation import GRAIN, LANES, multi_row_sums, row_sums, torch_threads
from gradcalc.errors import TorchError

Dim = int | Sequence[int] | None
# A binary op on arrays, elementwise (acc, value) -> acc.
BinOp = Callable[[np.ndarray, np.ndarray], np.ndarray]

ILP = 4  # vector accumulators of binary_kernel_reduce_vec's inner loop (Reduce.h)


# -- torch's CPU capability --------------------------------------------------------------

def softmax_lanes(dtype: np.dtype) -> int:
    lanes = LANES[dtype.itemsize]
    return 2 * lanes if cpu_capability() == "avx512" else lanes


# -- dims and shapes ---------------------------------------------------------------------

def _dims(ndim: int, dim: Dim) -> tuple[int, ...]:
    """The reduced dims, sorted; None or () is all of them (torch's make_dim_mask)."""
    if dim is None:
        return tuple(range(ndim))
    given = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    wrapped: list[int] = []
    for d in given:
        wrapped.append(_wrap(ndim, int(d)))
        if wrapped.count(wrapped[-1]) > 1:
            raise TorchError(f"dim {wrapped[-1]} appears multiple times in the list of dims")
    if ndim == 0 or not wrapped:
        return tuple(range(ndim))
    return tuple(sorted(wrapped))


def _wrap(ndim: int, d: int) -> int:
    n = max(ndim, 1)
    if not -n <= d < n:
        raise TorchError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {d})")
    return d % n


def _out_shape(shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    if keepdim:
        return tuple(1 if d in dims else s for d, s in enumerate(shape))
    return tuple(s for d, s in enumerate(shape) if d not in dims)


def _contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * max(shape[d + 1], 1)
    return strides


def _float_array(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"expected a float32 or float64 array, got {x.dtype}")
    return x


# -- the TensorIterator of a reduction ----------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """A reduction's iteration space as torch's TensorIterator builds it: dims fastest first,
    strides in elements of the input and of the (C-contiguous) output."""

    shape: tuple[int, ...]
    in_strides: tuple[int, ...]
    out_strides: tuple[int, ...]
    in_offset: int = 0
    out_offset: int = 0

    def reduced(self, d: int) -> bool:
        return self.out_strides[d] == 0 and self.shape[d] > 1


def _layout(shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool) -> _Layout:
    """reorder_dimensions (reduced dims first, then by strides, insertion-sorted with torch's
    ambiguous comparisons) and coalesce_dimensions, for a contiguous input."""
    n = len(shape)
    if n == 0:
        return _Layout((1,), (0,), (0,))
    in_st = _contiguous_strides(shape)
    if keepdim:
        kept = [1 if d in dims else s for d, s in enumerate(shape)]
        out_st = [0 if kept[d] == 1 and shape[d] != 1 else s for d, s in enumerate(_contiguous_strides(kept))]
    else:
        rest = iter(_contiguous_strides([s for d, s in enumerate(shape) if d not in dims]))
        out_st = [0 if d in dims else next(rest) for d in range(n)]

    def should_swap(a: int, b: int) -> int:
        for strides, is_output in ((out_st, True), (in_st, False)):
            s0, s1 = strides[a], strides[b]
            if is_output and (s0 == 0) != (s1 == 0):
                return 1 if s1 == 0 else -1
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[a] > shape[b]:
                return 1
        return 0

    perm = list(range(n - 1, -1, -1))
    for i in range(1, n):
        dim1 = i
        for dim0 in range(i - 1, -1, -1):
            comparison = should_swap(perm[dim0], perm[dim1])
            if comparison > 0:
                perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
                dim1 = dim0
            elif comparison < 0:
                break
    sizes = [shape[p] for p in perm]
    strides = [[in_st[p] for p in perm], [out_st[p] for p in perm]]
    prev = 0
    for d in range(1, n):
        if sizes[prev] == 1 or sizes[d] == 1 or all(sizes[prev] * st[prev] == st[d] for st in strides):
            if sizes[prev] == 1:
                for st in strides:
                    st[prev] = st[d]
            sizes[prev] *= sizes[d]
        else:
            prev += 1
            sizes[prev] = sizes[d]
            for st in strides:
                st[prev] = st[d]
    return _Layout(tuple(sizes[:prev + 1]), tuple(strides[0][:prev + 1]), tuple(strides[1][:prev + 1]))


def _narrow(layout: _Layout, d: int, begin: int, end: int) -> _Layout:
    shape = list(layout.shape)
    shape[d] = end - begin
    return replace(layout, shape=tuple(shape), in_offset=layout.in_offset + begin * layout.in_strides[d],
                   out_offset=layout.out_offset + begin * layout.out_strides[d])


# A loop body: (values (batch, size0, size1), output positions (same shape), input strides of
# dims 0 and 1, their output strides, the output) -> stores into the output as torch's does.
Body = Callable[[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int], np.ndarray], None]


def _serial(layout: _Layout, flat: np.ndarray, out: np.ndarray, body: Body) -> None:
    """serial_for_each: the body on dims 0 and 1, for every index of the outer dims (dim 2
    fastest). Outer dims that are not reduced are batched: they write distinct outputs."""
    shape, in_st, out_st = list(layout.shape), list(layout.in_strides), list(layout.out_strides)
    while len(shape) < 2:
        shape.append(1)
        in_st.append(0)
        out_st.append(0)
    item = flat.itemsize
    values = np.lib.stride_tricks.as_strided(flat[layout.in_offset:], shape=shape,
                                             strides=[s * item for s in in_st], writeable=False)
    positions = np.full(shape, layout.out_offset, dtype=np.int64)
    for d, (size, stride) in enumerate(zip(shape, out_st)):
        positions = positions + (np.arange(size, dtype=np.int64) * stride).reshape(
            [size if k == d else 1 for k in range(len(shape))])
    outer = range(2, len(shape))
    red = [d for d in outer if out_st[d] == 0 and shape[d] > 1]
    keep = [d for d in outer if d not in red]
    order = red[::-1] + keep + [0, 1]
    batch = (math.prod(shape[d] for d in red), math.prod(shape[d] for d in keep), shape[0], shape[1])
    values = values.transpose(order).reshape(batch)
    positions = positions.transpose(order).reshape(batch)
    for r in range(batch[0]):
        body(values[r], positions[r], (in_st[0], in_st[1]), (out_st[0], out_st[1]), out)


def _chunks(n: int, grain: int, threads: int) -> list[tuple[int, int]]:
    """at::parallel_for's split of range(n) between OpenMP threads (invoke_parallel)."""
    used = min(threads, -(-n // grain)) if grain > 0 else threads
    size = -(-n // used)
    return [(b, min(n, b + size)) for b in range(0, n, size)]


def _reduce(x: np.ndarray, dims: tuple[int, ...], keepdim: bool, body: Body, ident: float) -> np.ndarray:
    """TensorIterator::parallel_reduce of `body` over x's reduction to `dims`, from outputs
    filled with `ident`: serial below the grain size; else a reduction to one element is split
    in chunks whose partials are reduced again (two_pass_reduction), and any other is split
    along its outermost non-reduced dim, in columns rounded to 128 bytes (parallel_dim_reduction)."""
    out_shape = _out_shape(x.shape, dims, keepdim)
    out = np.full(math.prod(out_shape), ident, dtype=x.dtype)
    if x.size == 0:
        return out.reshape(out_shape)
    layout = _layout(x.shape, dims, keepdim)
    flat = np.ascontiguousarray(x).reshape(-1)
    threads = torch_threads()
    if x.size < GRAIN or threads == 1:
        _serial(layout, flat, out, body)
    elif out.size == 1 and len(layout.shape) == 1:
        buffer = np.full(threads, ident, dtype=x.dtype)
        for t, (b, e) in enumerate(_chunks(x.size, GRAIN, threads)):
            chunk = _Layout((e - b,), (1,), (0,), in_offset=b, out_offset=t)
            _serial(chunk, flat, buffer, body)
        _serial(_Layout((threads,), (1,), (0,)), buffer, out, body)
    else:
        split = len(layout.shape) - 1
        for d in range(len(layout.shape) - 1, -1, -1):
            if layout.reduced(d):
                break
            if layout.shape[d] >= threads:
                split = d
                break
            if layout.shape[d] > layout.shape[split]:
                split = d
        cols = layout.shape[split]
        per_128 = 128 // x.itemsize if layout.in_strides[split] == 1 else 1
        for b, e in _chunks(cols, 1, threads):
            b -= b % per_128
            if e != cols:
                e -= e % per_128
            if b < e:
                _serial(_narrow(layout, split, b, e), flat, out, body)
    return out.reshape(out_shape)


def _reduced_rows(x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """x as (outputs, reduced elements), each row in the order torch's per-output reductions
    read it (memory order of a contiguous input)."""
    rest = [d for d in range(x.ndim) if d not in dims]
    moved = np.transpose(x, rest + list(dims)) if x.ndim else x
    return np.ascontiguousarray(moved).reshape(math.prod(x.shape[d] for d in rest), -1)


# -- sum and mean ------------------------------------------------------------------------

def _sum_body(lanes: int) -> Body:
    """cascade_sum's loop (SumKernel.cpp): reduce along dim 0; a contiguous row is summed in
    vector lanes (row_sum of vectors, then the scalar tail, then the lanes), contiguous columns
    in groups of 4 vectors by multi_row_sum, others by row_sum; each sum is added to the output."""

    def body(values, positions, in_st, out_st, out):
        (a0, a1), (o0, o1) = in_st, out_st
        if o0 != 0 and o1 == 0:  # the reduction goes to dim 0
            values, positions = values.transpose(0, 2, 1), positions.transpose(0, 2, 1)
            a0, a1, o0, o1 = a1, a0, o1, o0
        if o0 != 0 and o1 != 0:  # no dim reduced here: out + in
            out[positions] = out[positions] + values
            return
        batch, size0, size1 = values.shape
        cols = values.transpose(1, 0, 2).reshape(size0, batch * size1)
        if a0 == 1 and size0 >= lanes:
            sums = _vector_row_sums(cols, lanes)
        else:
            if a1 == 1 and size1 >= lanes:
                grouped = size1 // (ILP * lanes) * ILP * lanes
            elif a0 < a1:
                grouped = 0
            else:
                grouped = size1 // ILP * ILP
            by_column = cols.reshape(size0, batch, size1)
            sums = np.empty((batch, size1), dtype=cols.dtype)
            if grouped:
                sums[:, :grouped] = multi_row_sums(by_column[:, :, :grouped].reshape(size0, -1)).reshape(batch, -1)
            if grouped < size1:
                sums[:, grouped:] = row_sums(by_column[:, :, grouped:].reshape(size0, -1)).reshape(batch, -1)
        _add_in_order(out, positions[:, 0, :], sums.reshape(batch, size1), same=o1 == 0)

    return body


def _vector_row_sums(cols: np.ndarray, lanes: int) -> np.ndarray:
    """vectorized_inner_sum of each column: row_sum of its whole vectors, then 0 + the scalar
    tail + lane 0 + ... + the last lane."""
    size, width = cols.shape
    whole = size // lanes
    partial = row_sums(cols[:whole * lanes].reshape(whole, lanes * width)).reshape(lanes, width)
    total = np.zeros(width, dtype=cols.dtype)
    for row in cols[whole * lanes:]:
        total = total + row
    for lane in partial:
        total = total + lane
    return total


def _add_in_order(out: np.ndarray, positions: np.ndarray, sums: np.ndarray, same: bool) -> None:
    """out[p] += sum for each column of a batch, in column order (they share one output when
    its stride is 0)."""
    if same:
        for j in range(sums.shape[1]):
            out[positions[:, j]] = out[positions[:, j]] + sums[:, j]
    else:
        out[positions] = out[positions] + sums


def sum_dim(x, dim: Dim = None, keepdim: bool = False) -> np.ndarray:
    """torch.sum(x, dim, keepdim): each output is 0 + the cascade_sum of its elements, in
    SumKernel.cpp's order for the iterator's layout (lanes, four accumulators, levels, threads)."""
    x = _float_array(x)
    dims = _dims(x.ndim, dim)
    with np.errstate(over="ignore", invalid="ignore"):
        return _reduce(x, dims, keepdim, _sum_body(LANES[x.itemsize]), 0)


def mean_dim(x, dim: Dim = None, keepdim: bool = False) -> np.ndarray:
    """torch.mean on the CPU: sum_dim, then divided by the number of elements summed (0/0 is nan)."""
    x = _float_array(x)
    dims = _dims(x.ndim, dim)
    count = math.prod(x.shape[d] for d in dims)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(sum_dim(x, dim, keepdim) / np.asarray(count, dtype=x.dtype))


# -- prod, amax, amin: binary_kernel_reduce_vec ------------------------------------------

def _vec_body(op: BinOp, vop: BinOp, lanes: int) -> Body:
    """binary_kernel_reduce_vec's loop (Reduce.h). A contiguous row: four vector accumulators
    over blocks of 4 vectors, combined (0 op 1) op (2 op 3), lanes folded 0..V-1, then the
    scalar tail. Contiguous columns: down each column in vectors of 4 lanes-groups, `vop(acc,
    out)` at the end, the remaining columns scalar. Otherwise scalar, out = op(out, in)."""

    def body(values, positions, in_st, out_st, out):
        (a0, a1), (o0, o1) = in_st, out_st
        batch, size0, size1 = values.shape
        if o0 == 0 and a0 == 1:
            cols = values.transpose(1, 0, 2).reshape(size0, batch * size1)
            block = ILP * lanes
            count = size0 // block
            items: list[np.ndarray] = []
            if count:
                accs = [cols[k * lanes:(k + 1) * lanes] for k in range(ILP)]
                for i in range(1, count):
                    accs = [vop(accs[k], cols[i * block + k * lanes:i * block + (k + 1) * lanes]) for k in range(ILP)]
                folded = vop(vop(accs[0], accs[1]), vop(accs[2], accs[3]))
                first = folded[0]
                for lane in folded[1:]:
                    first = op(first, lane)
                items.append(first)
            items.extend(cols[count * block:])
            _fold_in_order(out, positions[:, 0, :], [item.reshape(batch, size1) for item in items], op, same=o1 == 0)
        elif o0 == 0 and o1 == 1 and a1 == 1:
            grouped = size1 // (ILP * lanes) * ILP * lanes
            if grouped:
                pos = positions[:, 0, :grouped]
                acc = values[:, 0, :grouped]
                for i in range(1, size0):
                    acc = vop(acc, values[:, i, :grouped])
                out[pos] = vop(acc, out[pos])
            if grouped < size1:
                pos = positions[:, 0, grouped:]
                acc = out[pos]
                for i in range(size0):
                    acc = op(acc, values[:, i, grouped:])
                out[pos] = acc
        elif o0 == 0 and o1 == 0:
            for j in range(size1):
                pos = positions[:, 0, j]
                acc = out[pos]
                for i in range(size0):
                    acc = op(acc, values[:, i, j])
                out[pos] = acc
        elif o0 == 0:
            pos = positions[:, 0, :]
            acc = out[pos]
            for i in range(size0):
                acc = op(acc, values[:, i, :])
            out[pos] = acc
        elif o1 == 0:
            pos = positions[:, :, 0]
            acc = out[pos]
            for j in range(size1):
                acc = op(acc, values[:, :, j])
            out[pos] = acc
        else:
            out[positions] = op(out[positions], values)

    return body


def _fold_in_order(out: np.ndarray, positions: np.ndarray, items: list[np.ndarray], op: BinOp, same: bool) -> None:
    """out = op(out, item) for each item, per column; columns in order when they share an output."""
    if same:
        for j in range(positions.shape[1]):
            acc = out[positions[:, j]]
            for item in items:
                acc = op(acc, item[:, j])
            out[positions[:, j]] = acc
    else:
        acc = out[positions]
        for item in items:
            acc = op(acc, item)
        out[positions] = acc


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a * b


def _nan_or(a: np.ndarray, b: np.ndarray, value: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a) | np.isnan(b), np.asarray(np.nan, dtype=value.dtype), value)


# max_impl / min_impl (zmath.h): nan, else std::max / std::min, which keep `a` on a tie;
# AVX's vmaxps / vminps (vec::maximum / minimum) give `b` on a tie (0. and -0.).
def _max_scalar(a, b):
    return _nan_or(a, b, np.where(a < b, b, a))


def _max_vector(a, b):
    return _nan_or(a, b, np.where(a > b, a, b))


def _min_scalar(a, b):
    return _nan_or(a, b, np.where(b < a, b, a))


def _min_vector(a, b):
    return _nan_or(a, b, np.where(a < b, a, b))


def prod_dim(x, dim: int | None = None, keepdim: bool = False) -> np.ndarray:
    """torch.prod(x[, dim, keepdim]) (one dim or all): binary_kernel_reduce_vec of a * b from 1,
    in its order (four vector accumulators along a contiguous row, sequential elsewhere)."""
    x = _float_array(x)
    if dim is not None and not isinstance(dim, (int, np.integer)):
        raise TypeError("prod() takes one dim (an int), as torch.prod does")
    dims = _dims(x.ndim, dim)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return _reduce(x, dims, keepdim, _vec_body(_multiply, _multiply, LANES[x.itemsize]), 1)


def _check_nonempty(name: str, x: np.ndarray, dim: Dim, dims: tuple[int, ...]) -> None:
    if x.size:
        return
    if dim is None or (not isinstance(dim, (int, np.integer)) and not tuple(dim)) or x.ndim == 0:
        raise TorchError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. "
                         "Specify the reduction dim with the 'dim' argument.")
    for d in dims:
        if x.shape[d] == 0:
            raise TorchError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def amax_dim(x, dim: Dim = None, keepdim: bool = False) -> np.ndarray:
    """torch.amax: binary_kernel_reduce_vec of max from -inf; nan propagates, and which of 0.
    and -0. wins follows its order (vector max keeps the later, scalar max the earlier)."""
    x = _float_array(x)
    dims = _dims(x.ndim, dim)
    _check_nonempty("amax", x, dim, dims)
    with np.errstate(invalid="ignore"):
        return _reduce(x, dims, keepdim, _vec_body(_max_scalar, _max_vector, LANES[x.itemsize]), -np.inf)


def amin_dim(x, dim: Dim = None, keepdim: bool = False) -> np.ndarray:
    """torch.amin: binary_kernel_reduce_vec of min from inf; nan propagates, ties of 0. and -0.
    as amax_dim's."""
    x = _float_array(x)
    dims = _dims(x.ndim, dim)
    _check_nonempty("amin", x, dim, dims)
    with np.errstate(invalid="ignore"):
        return _reduce(x, dims, keepdim, _vec_body(_min_scalar, _min_vector, LANES[x.itemsize]), np.inf)


# -- max and min with indices ------------------------------------------------------------

def _extremum_dim(name: str, x, dim: int, keepdim: bool, pick) -> tuple[np.ndarray, np.ndarray]:
    x = _float_array(x)
    if not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}() takes one dim (an int)")
    if x.ndim == 0:
        _wrap(0, int(dim))
        return x.copy(), np.zeros((), dtype=np.int64)
    d = _wrap(x.ndim, int(dim))
    shape = _out_shape(x.shape, (d,), keepdim)
    if x.shape[d] == 0:
        raise TorchError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    if x.size == 0:
        return np.empty(shape, dtype=x.dtype), np.empty(shape, dtype=np.int64)
    index = pick(x, axis=d, keepdims=True)
    values = np.take_along_axis(x, index, axis=d)
    return values.reshape(shape), index.astype(np.int64).reshape(shape)


def max_dim(x, dim: int, keepdim: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """torch.max(x, dim) -> (values, indices): a scan along dim that takes a value unless it is
    <= the best so far, so the first of equal maxima (0. and -0. are equal) and the first nan."""
    return _extremum_dim("max", x, dim, keepdim, np.argmax)


def min_dim(x, dim: int, keepdim: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """torch.min(x, dim) -> (values, indices): the first of equal minima, the first nan."""
    return _extremum_dim("min", x, dim, keepdim, np.argmin)


# -- logsumexp, softmax, log_softmax -----------------------------------------------------

def logsumexp_dim(x, dim: Dim = None, keepdim: bool = False) -> np.ndarray:
    """torch.logsumexp: m = amax(x, dim, keepdim=True) with infinite m taken as 0, then
    log(sum_dim(exp(x - m))) + m, each op in x's dtype (dim=None: all dims)."""
    x = _float_array(x)
    if dim is not None and not isinstance(dim, (int, np.integer)) and not tuple(dim) and x.ndim:
        raise TorchError(f"output with shape [] doesn't match the broadcast shape [{', '.join(['1'] * x.ndim)}]")
    dims = _dims(x.ndim, dim)
    with np.errstate(all="ignore"):
        if x.size == 0:
            return np.asarray(LIBM["log"](sum_dim(LIBM["exp"](x), dims, keepdim)))
        m = amax_dim(x, dims, keepdim=True)
        m = np.where(np.abs(m) == np.inf, np.zeros((), dtype=x.dtype), m)
        total = sum_dim(np.asarray(LIBM["exp"](x - m)), dims, keepdim)
        return np.asarray(LIBM["log"](total) + m.reshape(total.shape))


def reduce_all_lanes(values: np.ndarray, fn: BinOp, lanes: int, tree: bool) -> np.ndarray:
    """vec::reduce_all along the last axis: one vector accumulator over whole vectors, the
    partial last vector into its first lanes, then the lanes folded (an xor-shuffle tree for
    float on AVX2/AVX-512, else lane 0 op 1 op 2 ...); fewer elements than lanes: in order."""
    size = values.shape[-1]
    if size < lanes:
        acc = values[..., 0]
        for i in range(1, size):
            acc = fn(acc, values[..., i])
        return acc
    vec = values[..., :lanes]
    whole = size // lanes * lanes
    for d in range(lanes, whole, lanes):
        vec = fn(vec, values[..., d:d + lanes])
    if whole < size:
        tail = size - whole
        vec = np.concatenate([fn(vec[..., :tail], values[..., whole:]), vec[..., tail:]], axis=-1)
    if tree:
        step = lanes // 2
        while step:
            vec = fn(vec, vec[..., np.arange(lanes) ^ step])
            step //= 2
        return vec[..., 0]
    acc = vec[..., 0]
    for i in range(1, lanes):
        acc = fn(acc, vec[..., i])
    return acc


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a + b


def _rows_last(x: np.ndarray, d: int) -> np.ndarray:
    return np.moveaxis(x, d, -1)


def softmax(x, dim: int) -> np.ndarray:
    """torch.softmax: e = exp(x - max); last dim (and 0-d): e * (1 / sum e), the sum in vector
    lanes then a shuffle tree (vec::reduce_all); other dims: e / (0 + e0 + e1 + ...) in order."""
    x = _float_array(x)
    d = _wrap(x.ndim, int(dim))
    if x.size == 0:
        return x.copy()
    rows = _rows_last(x.reshape(1) if x.ndim == 0 else x, d)
    with np.errstate(all="ignore"):
        if x.ndim == 0 or d == x.ndim - 1:
            lanes = softmax_lanes(x.dtype)
            tree = x.dtype == np.float32 and cpu_capability() != "default"
            top = reduce_all_lanes(rows, _max_vector, lanes, tree)
            e = LIBM["exp"](rows - top[..., None])
            scale = np.asarray(1, dtype=x.dtype) / reduce_all_lanes(e, _add, lanes, tree)
            out = e * scale[..., None]
        else:
            top = np.max(rows, axis=-1, keepdims=True)
            e = LIBM["exp"](rows - top)
            out = e / _sequential_sum(e)[..., None]
    return np.moveaxis(out, -1, d).reshape(x.shape)


def _sequential_sum(values: np.ndarray) -> np.ndarray:
    """0 + v0 + v1 + ... along the last axis (of terms >= +0, so the leading 0 changes nothing):
    NumPy's accumulate adds in order, unlike its pairwise sum."""
    return np.add.accumulate(values, axis=-1)[..., -1]


def log_softmax(x, dim: int) -> np.ndarray:
    """torch.log_softmax: (x - max) - log(sum exp(x - max)); last dim: the sum in lanes then a
    shuffle tree; other dims: max from -inf skipping nan, the sum 0 + e0 + e1 + ... in order."""
    x = _float_array(x)
    d = _wrap(x.ndim, int(dim))
    if x.size == 0:
        return x.copy()
    rows = _rows_last(x.reshape(1) if x.ndim == 0 else x, d)
    with np.errstate(all="ignore"):
        if x.ndim == 0 or d == x.ndim - 1:
            lanes = softmax_lanes(x.dtype)
            tree = x.dtype == np.float32 and cpu_capability() != "default"
            top = reduce_all_lanes(rows, _max_vector, lanes, tree)[..., None]
            total = reduce_all_lanes(LIBM["exp"](rows - top), _add, lanes, tree)
        else:
            top = np.full(rows.shape[:-1], -np.inf, dtype=x.dtype)
            for i in range(rows.shape[-1]):
                top = np.where(rows[..., i] > top, rows[..., i], top)
            top = top[..., None]
            total = _sequential_sum(LIBM["exp"](rows - top))
        out = rows - top - LIBM["log"](total)[..., None]
    return np.moveaxis(out, -1, d).reshape(x.shape)


# -- var and std -------------------------------------------------------------------------

def _var(x, dim: Dim, correction: float, keepdim: bool, take_sqrt: bool) -> np.ndarray:
    x = _float_array(x)
    dims = _dims(x.ndim, dim)
    shape = _out_shape(x.shape, dims, keepdim)
    if x.size == 0:
        return np.full(shape, np.nan, dtype=x.dtype)
    correction = float(correction)
    with np.errstate(all="ignore"):
        if math.prod(shape) == 1:
            var = np.asarray(_var_all(x, correction))
        else:
            var = _welford(_reduced_rows(x, dims), correction)
        return np.asarray(np.sqrt(var) if take_sqrt else var).astype(x.dtype).reshape(shape)


def _var_all(x: np.ndarray, correction: float) -> float:
    """std_var_all_cpu: mean = x.mean() (in x's dtype), then sum((double(x) - mean)**2) in
    order, in chunks per thread (added 0 + chunk 0 + chunk 1 ...), / max(0, n - correction)."""
    mean = float(mean_dim(x))
    flat = np.ascontiguousarray(x).reshape(-1).astype(np.float64)
    threads = torch_threads()
    spans = _chunks(flat.size, GRAIN, threads) if flat.size > GRAIN and threads > 1 else [(0, flat.size)]
    total = 0.0
    for b, e in spans:
        dx = flat[b:e] - mean
        total = total + float(np.add.accumulate(dx * dx)[-1])
    return float(np.float64(total) / np.float64(max(0.0, flat.size - correction)))


def _welford(rows: np.ndarray, correction: float) -> np.ndarray:
    """WelfordOps (SharedReduceOps.h) per row, in double, element by element in order."""
    data = rows.astype(np.float64)
    mean = np.zeros(data.shape[0])
    m2 = np.zeros(data.shape[0])
    for i in range(data.shape[1]):
        value = data[:, i]
        delta = value - mean
        mean = mean + delta / float(i + 1)
        m2 = m2 + delta * (value - mean)
    n = float(data.shape[1])
    return m2 / (n - correction if n > correction else 0.0)


def var_dim(x, dim: Dim = None, correction: float = 1, keepdim: bool = False) -> np.ndarray:
    """torch.var: to one element, two passes in double (x.mean(), then the squared deviations
    in order, per thread chunk); else Welford in double per output, in memory order."""
    return _var(x, dim, correction, keepdim, take_sqrt=False)


def std_dim(x, dim: Dim = None, correction: float = 1, keepdim: bool = False) -> np.ndarray:
    """torch.std: var_dim's variance, its square root taken in double before the cast."""
    return _var(x, dim, correction, keepdim, take_sqrt=True)


# -- norms -------------------------------------------------------------------------------

def norm_dim(x, p: float = 2, dim: Dim = None, keepdim: bool = False) -> np.ndarray:
    """torch.linalg.vector_norm / torch.norm: p=2 along one contiguous run adds squares in 8/4
    vector lanes, lanes in order, then the tail (by FMA on AVX2); else per output, in order from
    0: |x|**p (libm's pow), |x|, x*x, x != 0, or max / min |x|; then the p-th root."""
    x = _float_array(x)
    p = float(p)
    dims = _dims(x.ndim, dim)
    shape = _out_shape(x.shape, dims, keepdim)
    # Over size-1 dims (or all dims of a 0-d x, if no dim is named) torch takes |x|; a 0-d x
    # with a dim named goes through the reduction (sqrt(x*x) overflows where |x| does not).
    named = dim is not None and (isinstance(dim, (int, np.integer)) or len(tuple(dim)) > 0)
    if all(x.shape[d] == 1 for d in dims) and not (x.ndim == 0 and named):
        kept = x.reshape(shape)
        return (kept != 0).astype(x.dtype) if p == 0 else np.abs(kept)
    if p < 0 or p == np.inf:
        for d in dims:
            if x.shape[d] == 0:
                raise TorchError(f"linalg.vector_norm cannot compute the {_ord_text(p)} norm on the dimension {d}"
                                 "because this dimension is empty and the operation does not have an identity")
    if x.size == 0:
        return np.zeros(shape, dtype=x.dtype)
    layout = _layout(x.shape, dims, keepdim)
    rows = _reduced_rows(x, dims)
    with np.errstate(all="ignore"):
        reduced = [d for d in range(len(layout.shape)) if layout.reduced(d)]
        if p == 2 and reduced == [0] and layout.in_strides[0] == 1:
            return _norm2_lastdim(rows).reshape(shape)
        threads = torch_threads()
        if rows.shape[0] == 1 and x.size >= GRAIN and threads > 1:
            spans = _chunks(x.size, GRAIN, threads)
        else:
            spans = [(0, rows.shape[1])]
        return _norm_ops(rows, p, spans, threads).reshape(shape)


def _ord_text(p: float) -> str:
    return ("-" if p < 0 else "") + "inf" if math.isinf(p) else f"{p:g}"


def _norm_ops(rows: np.ndarray, p: float, spans: list[tuple[int, int]], threads: int) -> np.ndarray:
    """binary_kernel_reduce with Norm*Ops per row: each span reduced in order from the
    identity, the spans' partials combined 0 + ... in thread order, then projected."""
    dtype = rows.dtype
    absolute = np.abs(rows)
    if p == np.inf or p == -np.inf:
        part = np.max if p > 0 else np.min
        return part(absolute, axis=1)  # nan propagates; one order, one result
    if p == 0:
        terms = (rows != 0).astype(dtype)
    elif p == 1:
        terms = absolute
    elif p == 2:
        terms = rows * rows
    else:
        terms = _powf(absolute, np.asarray(p, dtype=dtype))
    total = np.zeros(rows.shape[0], dtype=dtype)
    partials = [_sequential_sum(terms[:, b:e]) for b, e in spans]
    if len(spans) > 1:
        partials += [np.zeros_like(total)] * (threads - len(spans))
    for partial in partials:
        total = total + partial
    if p in (0, 1):
        return total
    if p == 2:
        return np.sqrt(total)
    return _powf(total, np.asarray(1, dtype=dtype) / np.asarray(p, dtype=dtype))


def _powf(base: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """std::pow in the dtype, elementwise: libm's powf / pow, as torch calls them (else pow one
    precision up, rounded: glibc's powf is not always the correctly rounded result)."""
    libm_pow = _LIBM_POW.get(base.dtype.itemsize)
    if libm_pow is not None:
        return np.asarray(libm_pow(base, exponent), dtype=np.float64).astype(base.dtype)
    wider = np.float64 if base.dtype == np.float32 else np.longdouble
    return np.power(base.astype(wider), exponent.astype(wider)).astype(base.dtype)


def _load_libm_pow() -> dict[int, np.ufunc]:
    try:
        libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        powf, pow_ = libm.powf, libm.pow
    except (OSError, AttributeError):
        return {}
    powf.restype, powf.argtypes = ctypes.c_float, [ctypes.c_float, ctypes.c_float]
    pow_.restype, pow_.argtypes = ctypes.c_double, [ctypes.c_double, ctypes.c_double]
    return {4: np.frompyfunc(powf, 2, 1), 8: np.frompyfunc(pow_, 2, 1)}


_LIBM_POW = _load_libm_pow()


def _norm2_lastdim(rows: np.ndarray) -> np.ndarray:
    """The p=2 fast path (binary_kernel_reduce_lastdim): squares added into 8 (float) / 4
    (double) vector lanes, lane 0 + 1 + ... + the last, then the tail, sqrt. On AVX2 GCC's
    code adds the tail's first 4 floats' rounded squares in order and the rest by FMA (all of a
    double tail by FMA); the default kernel has no FMA."""
    dtype = rows.dtype
    lanes = LANES[dtype.itemsize]
    size = rows.shape[1]
    whole = size // lanes * lanes
    acc = np.zeros((rows.shape[0], lanes), dtype=dtype)
    for d in range(0, whole, lanes):
        block = rows[:, d:d + lanes]
        acc = acc + block * block
    total = acc[:, 0]
    for lane in range(1, lanes):
        total = total + acc[:, lane]
    tail = size - whole
    if cpu_capability() == "default":
        plain = tail
    else:
        plain = tail // 4 * 4 if dtype == np.float32 else 0
    for i in range(whole, whole + plain):
        total = total + rows[:, i] * rows[:, i]
    for i in range(whole + plain, size):
        total = fma(rows[:, i], rows[:, i], total)
    return np.sqrt(total)


# -- cumulative sums and products --------------------------------------------------------

def _cumulative(x, dim: int, fn) -> np.ndarray:
    x = _float_array(x)
    if x.ndim == 0:
        _wrap(0, int(dim))
        return x.copy()
    d = _wrap(x.ndim, int(dim))
    if x.size == 0:
        return x.copy()
    wide = np.float64 if x.dtype == np.float32 else x.dtype
    with np.errstate(all="ignore"):
        return fn(x.astype(wide), d).astype(x.dtype)


def cumsum(x, dim: int) -> np.ndarray:
    """torch.cumsum: along dim in order, acc = 0 + x0 + x1 ... in the accumulate type (double
    for float32), each partial rounded to x's dtype; a 0-d x is returned as is."""
    return _cumulative(x, dim, lambda w, d: np.cumsum(w, axis=d) + 0.0)


def cumprod(x, dim: int) -> np.ndarray:
    """torch.cumprod: along dim in order, acc = 1 * x0 * x1 ... in the accumulate type (double
    for float32), each partial rounded to x's dtype."""
    return _cumulative(x, dim, lambda w, d: np.cumprod(w, axis=d))


__all__ = ["Dim", "amax_dim", "amin_dim", "cpu_capability", "cumprod", "cumsum", "log_softmax", "logsumexp_dim",
           "max_dim", "mean_dim", "min_dim", "norm_dim", "prod_dim", "softmax", "std_dim", "sum_dim", "var_dim"]

