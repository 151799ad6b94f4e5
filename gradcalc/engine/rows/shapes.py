"""Indexing and shapes: x[0], x[1:3], reshape, view, transpose, permute, cat, stack, ...

Data movement as torch does it, views included. Each row's forward returns its result laid
out with the strides torch gives it (`laid_out`): whether torch's reshape is a view, an alias
or a copy (ViewBackward0, ReshapeAliasBackward0, UnsafeViewBackward0 over CloneBackward0),
and whether matmul folds a batch into one matrix product, depend on the operand's strides,
which a lowering reads from the operand's values (`strides_of`). Subscripts lower into
torch's chain of select, slice, unsqueeze and alias, as torch's `applySlicing` applies them.

Every row here is linear: its second derivatives are zero (MULTILINEAR, one operand), and its
local partial is 1 on each element it moves (what the display shows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import as_strided

from gradcalc.engine.row import Kind, Op, SecondOrder
from gradcalc.errors import InputError, ShapeError, TorchError
from gradcalc.lang import syntax
from gradcalc.lang.syntax import Param, ParamKind

Shape = tuple[int, ...]

# -- torch's layouts ------------------------------------------------------------------------


def contiguous_strides(shape: Sequence[int]) -> Shape:
    """The strides of a contiguous tensor of this shape, as torch computes them (a size 0 or
    1 counts as 1)."""
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * max(shape[i + 1], 1)
    return tuple(strides)


def is_contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """torch's compute_contiguous: every dim of size > 1 strided as in row-major order."""
    if math.prod(shape) == 0:
        return True
    expected = 1
    for n, s in zip(reversed(shape), reversed(strides)):
        if n != 1:
            if s != expected:
                return False
            expected *= n
    return True


def _is_dense(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """torch's is_non_overlapping_and_dense: some order of the dims is contiguous."""
    dims = sorted((i for i in range(len(shape)) if shape[i] != 1), key=lambda i: strides[i])
    expected = 1
    for i in dims:
        if strides[i] != expected:
            return False
        expected *= shape[i]
    return True


def compute_stride(old_shape: Sequence[int], old_strides: Sequence[int], new_shape: Sequence[int]) -> Shape | None:
    """torch's computeStride: the strides of a view of this layout in `new_shape`, or None
    where no view has it (a dimension would span two contiguous subspaces)."""
    if not old_shape:
        return tuple(1 for _ in new_shape)
    numel = math.prod(old_shape)
    if numel == 0 and tuple(old_shape) == tuple(new_shape):
        return tuple(old_strides)
    new_strides = [0] * len(new_shape)
    if numel == 0:
        for d in range(len(new_shape) - 1, -1, -1):
            new_strides[d] = 1 if d == len(new_shape) - 1 else max(new_shape[d + 1], 1) * new_strides[d + 1]
        return tuple(new_strides)
    view_d = len(new_shape) - 1
    chunk_base_stride = old_strides[-1]
    tensor_numel = 1
    view_numel = 1
    for tensor_d in range(len(old_shape) - 1, -1, -1):
        tensor_numel *= old_shape[tensor_d]
        if tensor_d == 0 or (old_shape[tensor_d - 1] != 1
                             and old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride):
            while view_d >= 0 and (view_numel < tensor_numel or new_shape[view_d] == 1):
                new_strides[view_d] = view_numel * chunk_base_stride
                view_numel *= new_shape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = old_strides[tensor_d - 1]
                tensor_numel = 1
                view_numel = 1
    if view_d != -1:
        return None
    return tuple(new_strides)


def strides_of(value) -> Shape:
    """A value's strides in elements, as torch's tensor of it has them."""
    array = np.asarray(value)
    return tuple(s // array.itemsize for s in array.strides)


def laid_out(value, strides: Sequence[int]) -> np.ndarray:
    """The value with torch's strides (in elements). Strides of dims of size 1 never move in
    memory, so only they are set in place; otherwise the elements are copied into a buffer
    laid out so (an expanded dim of stride 0 holds one element)."""
    value = np.asarray(value)
    strides = tuple(strides)
    current = strides_of(value)
    if current == strides:
        return value
    itemsize = value.itemsize
    if value.size <= 1 or all(n == 1 or a == b for n, a, b in zip(value.shape, current, strides)):
        return as_strided(value, value.shape, tuple(s * itemsize for s in strides))
    extent = 1 + sum((n - 1) * s for n, s in zip(value.shape, strides))
    buffer = np.empty(extent, dtype=value.dtype)
    out = as_strided(buffer, value.shape, tuple(s * itemsize for s in strides))
    out[...] = value
    return out


def contiguous(value) -> np.ndarray:
    """A new tensor of the value, contiguous (torch's clone in MemoryFormat::Contiguous)."""
    array = np.array(value, order="C", copy=True)
    return laid_out(array, contiguous_strides(array.shape))


# -- dims, sizes and torch's words for them -------------------------------------------------


def wrap_dim(dim: int, ndim: int) -> int:
    """torch's maybe_wrap_dim: a negative dim counts from the end; a 0-d tensor has dims 0, -1."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise ShapeError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim + n if dim < 0 else dim


def _wrap_dims(dims: Sequence[int], ndim: int) -> tuple[int, ...]:
    """Dims of a list (flip, squeeze): each wrapped, none twice."""
    seen: list[int] = []
    for d in dims:
        w = wrap_dim(d, ndim)
        if w in seen:
            raise ShapeError(f"dim {w} appears multiple times in the list of dims")
        seen.append(w)
    return tuple(seen)


def _list(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(n) for n in shape) + "]"


def _check_result_size(shape: Sequence[int]) -> None:
    from gradcalc.lang.values import MAX_ELEMENTS

    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        shown = "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ShapeError(f"the result would have {size:,} elements (shape {shown}); the limit is {MAX_ELEMENTS:,}")


def infer_size(shape: Sequence[int], numel: int) -> Shape:
    """torch's infer_size: a shape with at most one -1, for a tensor of `numel` elements."""
    infer = None
    known = 1
    for i, n in enumerate(shape):
        if n == -1:
            if infer is not None:
                raise ShapeError("only one dimension can be inferred")
            infer = i
        elif n >= 0:
            known *= n
        else:
            raise ShapeError(f"invalid shape dimension {n} at index {i} of shape {_list(shape)}")
    if infer is None:
        if known == numel:
            return tuple(shape)
    elif known == 0:
        if numel == 0:
            raise ShapeError(f"cannot reshape tensor of 0 elements into shape {_list(shape)} because the "
                             "unspecified dimension size -1 can be any value and is ambiguous")
    elif numel % known == 0:
        out = list(shape)
        out[infer] = numel // known
        return tuple(out)
    raise ShapeError(f"shape '{_list(shape)}' is invalid for input of size {numel}")


def _torch_type(value) -> str:
    """torch's legacy type name of a tensor of this value (its errors name it so)."""
    kind = np.asarray(value).dtype
    return {np.dtype(np.float32): "torch.FloatTensor", np.dtype(np.int64): "torch.LongTensor",
            np.dtype(np.bool_): "torch.BoolTensor"}.get(kind, "torch.DoubleTensor")


def _zeros(shape: Sequence[int], like, nums) -> np.ndarray:
    """Zeros of a gradient's dtype (exact zeros for exact numbers)."""
    dtype = np.asarray(like).dtype
    if dtype.kind == "O":
        return np.full(tuple(shape), nums.number(0.0), dtype=object)
    return np.zeros(tuple(shape), dtype=dtype)


# -- the layout of each view ------------------------------------------------------------------


def unsqueeze_geometry(shape: Sequence[int], strides: Sequence[int], dim: int) -> tuple[Shape, Shape]:
    """torch's inferUnsqueezeGeometry: the new dim's stride is the size times the stride of
    the dim it goes before (1 at the end)."""
    stride = 1 if dim >= len(shape) else shape[dim] * strides[dim]
    return (tuple(shape[:dim]) + (1,) + tuple(shape[dim:]), tuple(strides[:dim]) + (stride,) + tuple(strides[dim:]))


def expand_geometry(value_type: str, shape: Sequence[int], strides: Sequence[int],
                    sizes: Sequence[int]) -> tuple[Shape, Shape]:
    """torch's inferExpandGeometry, with its errors: sizes of -1 keep a dim, new leading dims
    and dims of size 1 are expanded with stride 0."""
    ndim = len(sizes)
    if ndim < len(shape):
        raise ShapeError(f"expand({value_type}{{{_list(shape)}}}, size={_list(sizes)}): the number of sizes provided "
                         f"({ndim}) must be greater or equal to the number of dimensions in the tensor ({len(shape)})")
    if not shape and 0 not in sizes and any(n < 0 for n in sizes):
        # a 0-d tensor is expanded without inferExpandGeometry: torch's numel check of the sizes
        # (as unsigned) overflows first
        raise ShapeError("numel: integer multiplication overflow", hint="a 0-d tensor has no size to keep: "
                         "give every size of expand() as a number >= 0")
    out_shape = [0] * ndim
    out_strides = [0] * ndim
    for i in range(ndim - 1, -1, -1):
        offset = ndim - 1 - i
        d = len(shape) - 1 - offset
        size = shape[d] if d >= 0 else 1
        stride = strides[d] if d >= 0 else (out_shape[i + 1] * out_strides[i + 1] if i < ndim - 1 else 1)
        target = sizes[i]
        if target == -1:
            if d < 0:
                raise ShapeError(f"The expanded size of the tensor (-1) isn't allowed in a leading, "
                                 f"non-existing dimension {i}")
            target = size
        if size != target:
            if size != 1:
                raise ShapeError(f"The expanded size of the tensor ({target}) must match the existing size ({size}) "
                                 f"at non-singleton dimension {i}.  Target sizes: {_list(sizes)}.  "
                                 f"Tensor sizes: {_list(shape)}")
            size, stride = target, 0
        out_shape[i], out_strides[i] = size, stride
    for n in out_shape:
        if n < 0:
            raise ShapeError(f"Trying to create tensor with negative dimension {n}: {_list(out_shape)}")
    return tuple(out_shape), tuple(out_strides)


# -- row helpers --------------------------------------------------------------------------------

INPUT = Param("input", ParamKind.TENSOR)

# cat and stack are linear in their operands together, not in each alone (not MULTILINEAR):
# their gradients depend on the operands' shapes only (LINEAR_IN_GRAD), and the engine takes
# their value's tangent as J d from the vector-Jacobian rule.
JOINTLY_LINEAR = SecondOrder.LINEAR_IN_GRAD


def _one(sp, exprs, shapes, **params):
    """The local partial of data movement: 1 on each element it moves."""
    return tuple(sp.Integer(1) for _ in exprs)


def _shown(expr) -> str:
    text = str(expr)
    return text if getattr(expr, "is_Atom", False) or getattr(expr, "is_Function", False) else f"({text})"


def _method_value(name: str, *keys: str, star: bool = False):
    """The display of a data-movement row's value: `x.name(args)`, a symbol of that text."""

    def value(sp, exprs, **params):
        shown: list[str] = []
        for key in keys:
            v = params[key]
            if star and isinstance(v, tuple):
                shown.extend(str(n) for n in v)
            else:
                shown.append(str(v))
        return sp.Symbol(f"{_shown(exprs[0])}.{name}({', '.join(shown)})", real=True)

    return value


def _row(name: str, forward, grad_fn, vjp, *, signature=None, arity: int = 1, **extra) -> Op:
    extra.setdefault("display_partials", _one)
    extra.setdefault("second_order", SecondOrder.MULTILINEAR)
    extra.setdefault("integers", True)
    return Op(name=name, arity=arity, forward=forward, grad_fn=grad_fn, kind=Kind.LINALG, vjp=vjp,
              signature=signature, **extra)


def _shape_of(args) -> Shape:
    return np.shape(args[0])


# -- indexing: x[0], x[1:3], x[:, 0], x[None] ---------------------------------------------------


def _step_checks(item: syntax.Slice) -> None:
    if item.step == 0:
        raise TorchError("slice step cannot be zero")
    if item.step is not None and item.step < 0:
        raise TorchError("step must be greater than zero")


def _slice_params(item: syntax.Slice, size: int, dim: int) -> dict:
    """torch's slice(dim, start, end, step) bounds: negative ends count from the end, then
    both are clamped to [0, size] and the end to no less than the start."""
    start = 0 if item.start is None else item.start
    stop = size if item.stop is None else item.stop
    step = 1 if item.step is None else item.step
    if start < 0:
        start += size
    if stop < 0:
        stop += size
    start = min(max(start, 0), size)
    stop = min(max(stop, start), size)
    return {"dim": dim, "start": start, "stop": stop, "step": step}


def index_lowering(kinds, shapes, index):
    """`x[items]` as torch's indexing applies it: a lone item (`x[0]`, `x[1:3]`, `x[None]`)
    is one select, slice or unsqueeze; a tuple of items is applied item by item, a slice of
    the whole dim with step 1 left out, and nothing applied is an alias of the tensor."""
    shape = list(shapes[0])
    if len(index) == 1:
        (item,) = index
        if item is None:
            return ("unsqueeze", (0,), {"dim": 0})
        if isinstance(item, syntax.Slice):
            _step_checks(item)
            if not shape:
                raise TorchError("slice() cannot be applied to a 0-dim tensor.")
            return ("slice", (0,), _slice_params(item, shape[0], 0))
        if not shape and item == 0:
            raise TorchError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                             "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")
        _select_bounds(item, shape[0] if shape else 0, 0)
        return ("select", (0,), {"dim": 0, "index": item})
    specified = sum(1 for item in index if item is not None)
    if specified > len(shape):
        raise TorchError(f"too many indices for tensor of dimension {len(shape)}")
    call: object = 0
    dim = 0
    for position, item in enumerate(index):
        if item is None:
            call = ("unsqueeze", (call,), {"dim": dim})
            shape.insert(dim, 1)
            dim += 1
        elif isinstance(item, syntax.Slice):
            _step_checks(item)
            size = shape[dim]
            whole = (item.start in (None, 0) and (item.stop is None or item.stop >= size)
                     and item.step in (None, 1))
            if not whole:
                params = _slice_params(item, size, dim)
                call = ("slice", (call,), params)
                shape[dim] = len(range(params["start"], params["stop"], params["step"]))
            dim += 1
        else:
            _select_bounds(item, shape[dim], position)
            call = ("select", (call,), {"dim": dim, "index": item})
            shape.pop(dim)
    if call == 0:
        return ("alias", (0,))
    return call


def _select_bounds(index: int, size: int, dim: int) -> None:
    if not (size > -1 - index and size > index):
        raise TorchError(f"index {index} is out of bounds for dimension {dim} with size {size}")


def _index_forward(x, index):
    items = tuple(slice(i.start, i.stop, i.step) if isinstance(i, syntax.Slice) else i for i in index)
    return np.asarray(x)[items[0] if len(items) == 1 else items]


def _select_forward(x, dim, index):
    x = np.asarray(x)
    d = wrap_dim(dim, x.ndim)
    return x[(slice(None),) * d + (index,)]


def _select_vjp(grad, args, result, nums, dim, index):
    shape = _shape_of(args)
    d = wrap_dim(dim, len(shape))
    out = _zeros(shape, grad, nums)
    out[(slice(None),) * d + (index,)] = grad
    return (out,)


def _select_check(shapes, dim, index):
    (shape,) = shapes
    if not shape:
        raise TorchError("select() cannot be applied to a 0-dim tensor.")
    d = wrap_dim(dim, len(shape))
    if not (-shape[d] <= index < shape[d]):
        raise TorchError(f"select(): index {index} out of range for tensor of size {_list(shape)} at dimension {d}")


def _select_value(sp, exprs, dim, index):
    return sp.Symbol(f"{_shown(exprs[0])}[{':, ' * dim}{index}]", real=True)


def _slice_forward(x, dim, start, stop, step):
    return np.asarray(x)[(slice(None),) * dim + (slice(start, stop, step),)]


def _slice_vjp(grad, args, result, nums, dim, start, stop, step):
    out = _zeros(_shape_of(args), grad, nums)
    out[(slice(None),) * dim + (slice(start, stop, step),)] = grad
    return (out,)


def _slice_value(sp, exprs, dim, start, stop, step):
    text = f"{start}:{stop}" + (f":{step}" if step != 1 else "")
    return sp.Symbol(f"{_shown(exprs[0])}[{':, ' * dim}{text}]", real=True)


def _same_grad(grad, args, result, nums, **params):
    return (grad,)


def _reshaped_grad(grad, args, result, nums, **params):
    return (np.reshape(grad, _shape_of(args)),)


def _identity_value(sp, exprs, **params):
    return exprs[0]


# -- unsqueeze, squeeze ---------------------------------------------------------------------------


def _unsqueeze_forward(x, dim):
    x = np.asarray(x)
    d = wrap_dim(dim, x.ndim + 1)
    shape, strides = unsqueeze_geometry(x.shape, strides_of(x), d)
    return laid_out(np.expand_dims(x, d), strides)


def _unsqueeze_check(shapes, dim):
    wrap_dim(dim, len(shapes[0]) + 1)


def _squeeze_dims(shape: Sequence[int], dim) -> tuple[int, ...]:
    """The dims squeeze takes out: every dim of size 1, or those of the given ones."""
    if dim is None:
        return tuple(i for i, n in enumerate(shape) if n == 1)
    dims = _wrap_dims(dim, len(shape)) if isinstance(dim, tuple) else (wrap_dim(dim, len(shape)),)
    return tuple(d for d in dims if shape and shape[d] == 1)


def _squeeze_forward(x, dim=None):
    x = np.asarray(x)
    return np.squeeze(x, axis=_squeeze_dims(x.shape, dim))


def _squeeze_check(shapes, dim=None):
    _squeeze_dims(shapes[0], dim)


def _squeeze_grad_fn(kinds, dim=None):
    return "SqueezeBackward0" if dim is None else "SqueezeBackward2" if isinstance(dim, tuple) else "SqueezeBackward1"


def _squeeze_value(sp, exprs, dim=None):
    shown = "" if dim is None else str(dim)
    return sp.Symbol(f"{_shown(exprs[0])}.squeeze({shown})", real=True)


# -- reshape, view, flatten, contiguous --------------------------------------------------------


def operand_strides(shapes, values, i: int) -> Shape:
    """The i-th operand's strides: its value's, or a contiguous layout where no value is given."""
    if values is not None and values[i] is not None:
        return strides_of(values[i])
    return contiguous_strides(shapes[i])


def reshape_call(part, shape: Shape, strides: Shape, new_shape: Shape) -> tuple:
    """torch's reshape of a tensor of this layout: a view where it is contiguous, an alias
    where its layout has a view of the new shape, else a contiguous copy viewed so."""
    if is_contiguous(shape, strides):
        return ("view", (part,), {"size": new_shape})
    if compute_stride(shape, strides, new_shape) is not None:
        return ("_reshape_alias", (part,), {"shape": new_shape})
    return ("_unsafe_view", (("_clone", (part,)),), {"shape": new_shape})


def _reshape_lowering(kinds, shapes, shape, values=None, requires_grad=None):
    new_shape = infer_size(shape, math.prod(shapes[0]))
    strides = operand_strides(shapes, values, 0)
    if is_contiguous(shapes[0], strides):
        return None  # the row itself: ViewBackward0
    return reshape_call(0, shapes[0], strides, new_shape)


_reshape_lowering.wants_operands = True  # type: ignore[attr-defined]


def _view_forward(x, size=None, shape=None):
    """A view (or alias) of x in the new shape, with the strides computeStride gives it."""
    x = np.asarray(x)
    new_shape = infer_size(size if size is not None else shape, x.size)
    strides = compute_stride(x.shape, strides_of(x), new_shape)
    value = np.reshape(x, new_shape)
    return laid_out(value, strides if strides is not None else contiguous_strides(new_shape))


def _reshape_forward(x, shape):
    return _view_forward(x, shape=shape)


def _view_check(shapes, size):
    infer_size(size, math.prod(shapes[0]))


def _view_lowering(kinds, shapes, size, values=None, requires_grad=None):
    new_shape = infer_size(size, math.prod(shapes[0]))
    if compute_stride(shapes[0], operand_strides(shapes, values, 0), new_shape) is None:
        raise TorchError("view size is not compatible with input tensor's size and stride (at least one dimension "
                         "spans across two contiguous subspaces). Use .reshape(...) instead.")
    return None


_view_lowering.wants_operands = True  # type: ignore[attr-defined]


def _reshape_check(shapes, shape):
    infer_size(shape, math.prod(shapes[0]))


def _flatten_shape(shape: Shape, start_dim: int, end_dim: int) -> tuple[int, int, Shape]:
    start = wrap_dim(start_dim, len(shape))
    end = wrap_dim(end_dim, len(shape))
    if start > end:
        raise TorchError("flatten() has invalid args: start_dim cannot come after end_dim")
    if not shape:
        return start, end, (1,)
    return start, end, shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]


def _flatten_lowering(kinds, shapes, start_dim, end_dim, values=None, requires_grad=None):
    """torch's flatten: a 0-d tensor is reshaped to (1,); flattening one dim is the tensor
    itself; otherwise a reshape (the row itself where it is a view of a contiguous tensor)."""
    start, end, new_shape = _flatten_shape(shapes[0], start_dim, end_dim)
    if shapes[0] and start == end:
        return ("pos", (0,))
    strides = operand_strides(shapes, values, 0)
    if is_contiguous(shapes[0], strides):
        return None
    return reshape_call(0, shapes[0], strides, new_shape)


_flatten_lowering.wants_operands = True  # type: ignore[attr-defined]


def _flatten_forward(x, start_dim=0, end_dim=-1):
    x = np.asarray(x)
    return _view_forward(x, shape=_flatten_shape(x.shape, start_dim, end_dim)[2])


def _flatten_value(sp, exprs, start_dim=0, end_dim=-1):
    args = "" if (start_dim, end_dim) == (0, -1) else f"{start_dim}, {end_dim}"
    return sp.Symbol(f"{_shown(exprs[0])}.flatten({args})", real=True)


def _contiguous_lowering(kinds, shapes, values=None, requires_grad=None):
    """x.contiguous(): x itself where it is contiguous, else a contiguous copy (CloneBackward0)."""
    if is_contiguous(shapes[0], operand_strides(shapes, values, 0)):
        return ("pos", (0,))
    return None


_contiguous_lowering.wants_operands = True  # type: ignore[attr-defined]


def _shape_value(name: str):
    def value(sp, exprs, shape=None, size=None):
        shown = shape if shape is not None else size
        return sp.Symbol(f"{_shown(exprs[0])}.{name}({', '.join(str(n) for n in shown)})", real=True)

    return value


# -- transpose, t, T, mT, permute -------------------------------------------------------------


def _transpose_forward(x, dim0, dim1):
    x = np.asarray(x)
    a, b = wrap_dim(dim0, x.ndim), wrap_dim(dim1, x.ndim)
    return np.swapaxes(x, a, b) if x.ndim else x.view()


def _transpose_check(shapes, dim0, dim1):
    wrap_dim(dim0, len(shapes[0]))
    wrap_dim(dim1, len(shapes[0]))


def _transpose_vjp(grad, args, result, nums, dim0, dim1):
    return (_transpose_forward(grad, dim0, dim1),)


def _t_forward(x):
    x = np.asarray(x)
    return x.T if x.ndim == 2 else x.view()


def _t_check(shapes):
    if len(shapes[0]) > 2:
        raise TorchError(f"t() expects a tensor with <= 2 dimensions, but self is {len(shapes[0])}D")


def _t_vjp(grad, args, result, nums):
    return (_t_forward(grad),)


def _big_t_forward(x):
    return np.transpose(np.asarray(x))


def _big_t_vjp(grad, args, result, nums):
    return (np.transpose(grad),)


def _mt_lowering(kinds, shapes):
    ndim = len(shapes[0])
    if ndim == 1:
        raise TorchError("tensor.mT is only supported on matrices or batches of matrices. Got 1-D tensor.")
    if ndim == 0:
        return ("pos", (0,))
    return ("transpose", (0,), {"dim0": -2, "dim1": -1})


def _permute_forward(x, dims):
    x = np.asarray(x)
    return np.transpose(x, tuple(wrap_dim(d, x.ndim) for d in dims)) if x.ndim else x.view()


def _permute_check(shapes, dims):
    (shape,) = shapes
    if len(dims) != len(shape):
        raise TorchError("permute(sparse_coo): number of dimensions in the tensor input does not match the length "
                         f"of the desired ordering of dimensions i.e. input.dim() = {len(shape)} is not equal to "
                         f"len(dims) = {len(dims)}")
    wrapped = [wrap_dim(d, len(shape)) for d in dims]
    if len(set(wrapped)) != len(wrapped):
        raise TorchError("permute(): duplicate dims are not allowed.")


def _permute_vjp(grad, args, result, nums, dims):
    ndim = np.ndim(grad)
    if not ndim:
        return (grad,)
    wrapped = [wrap_dim(d, ndim) for d in dims]
    return (np.transpose(grad, np.argsort(wrapped)),)


# -- expand, repeat ------------------------------------------------------------------------------


def _expand_forward(x, size):
    x = np.asarray(x)
    shape, strides = expand_geometry(_torch_type(x), x.shape, strides_of(x), size)
    _check_result_size(shape)
    return laid_out(np.broadcast_to(x, shape), strides)


def _expand_check(shapes, size):
    if len(size) < len(shapes[0]):
        return  # the forward says it, naming the tensor's type
    shape, _ = expand_geometry("", shapes[0], contiguous_strides(shapes[0]), size)
    _check_result_size(shape)


def sum_to(grad, shape: Sequence[int]) -> np.ndarray:
    """torch's sum_to: the gradient summed over the leading dims expanding added and over
    the dims that were of size 1."""
    grad = np.asarray(grad)
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if dims:
        grad = grad.sum(axis=dims, keepdims=True)
    return grad


def _expand_vjp(grad, args, result, nums, size):
    return (sum_to(grad, _shape_of(args)),)


def _repeat_forward(x, repeats):
    x = np.asarray(x)
    _repeat_check((x.shape,), repeats)
    return np.tile(x, repeats) if len(repeats) else np.array(x)


def _repeat_check(shapes, repeats):
    (shape,) = shapes
    if len(repeats) < len(shape):
        raise TorchError("Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor")
    padded = (1,) * (len(repeats) - len(shape)) + tuple(shape)
    out = tuple(n * r for n, r in zip(padded, repeats))
    for n in out:
        if n < 0:
            raise TorchError(f"Trying to create tensor with negative dimension {n}: {_list(out)}")
    _check_result_size(out)


def _repeat_vjp(grad, args, result, nums, repeats):
    """repeat_backward: zeros where a repeat is 0, else the gradient summed over the copies."""
    shape = _shape_of(args)
    if 0 in repeats:
        return (_zeros(shape, grad, nums),)
    grad = np.asarray(grad)
    lead = grad.ndim - len(shape)
    for _ in range(lead):
        grad = grad.sum(axis=0)
    sizes: list[int] = []
    sum_dims: list[int] = []
    for d, n in enumerate(shape):
        r = repeats[d + lead]
        if r != 1:
            sizes.append(r)
            sum_dims.append(len(sizes) - 1)
        sizes.append(n)
    if sum_dims:
        grad = np.reshape(grad, sizes).sum(axis=tuple(sum_dims))
    return (np.reshape(grad, shape),)


# -- cat, stack ----------------------------------------------------------------------------------


def _skipped(shape: Shape) -> bool:
    """cat's legacy rule: a 1-D tensor of no elements is left out."""
    return shape == (0,)


def _cat_geometry(shapes: Sequence[Shape], dim: int) -> tuple[int, Shape]:
    for i, shape in enumerate(shapes):
        if not shape:
            raise TorchError(f"zero-dimensional tensor (at position {i}) cannot be concatenated")
    kept = [(i, s) for i, s in enumerate(shapes) if not _skipped(s)]
    if not kept:
        return wrap_dim(dim, 1), (0,)
    first_i, first = kept[0]
    d = wrap_dim(dim, len(first))
    total = 0
    for i, shape in kept:
        if len(shape) != len(first):
            raise TorchError(f"Tensors must have same number of dimensions: got {len(first)} and {len(shape)}")
        for k in range(len(first)):
            if k != d and shape[k] != first[k]:
                raise TorchError(f"Sizes of tensors must match except in dimension {d}. Expected size {first[k]} "
                                 f"but got size {shape[k]} for tensor number {i} in the list.")
        total += shape[d]
    return d, first[:d] + (total,) + first[d + 1:]


def _cat_lowering(kinds, shapes, dim=0):
    if not all(kinds):
        position = kinds.index(False)
        raise InputError(f"cat(): expected a tensor as element {position} of argument 'tensors', not a number",
                         hint="torch.cat joins tensors; make a number a tensor first")
    return None


def _cat_check(shapes, dim=0):
    _, shape = _cat_geometry(shapes, dim)
    _check_result_size(shape)


def _cat_forward(*tensors, dim=0):
    arrays = [np.asarray(t) for t in tensors]
    d, shape = _cat_geometry([a.shape for a in arrays], dim)
    kept = [a for a in arrays if not _skipped(a.shape)]
    if not kept:
        return np.concatenate(arrays)
    return np.concatenate(kept, axis=d)


def _cat_vjp(grad, args, result, nums, dim=0):
    shapes = [np.shape(a) for a in args]
    d, _ = _cat_geometry(shapes, dim)
    out = []
    offset = 0
    for shape in shapes:
        if _skipped(shape) and np.ndim(grad) != 1:
            out.append(_zeros(shape, grad, nums))
            continue
        n = shape[d]
        out.append(np.asarray(grad)[(slice(None),) * d + (slice(offset, offset + n),)])
        offset += n
    return tuple(out)


def _stack_lowering(kinds, shapes, dim=0):
    if not all(kinds):
        position = kinds.index(False)
        raise InputError(f"stack(): expected a tensor as element {position} of argument 'tensors', not a number",
                         hint="torch.stack joins tensors; make a number a tensor first")
    return None


def _stack_check(shapes, dim=0):
    first = shapes[0]
    wrap_dim(dim, len(first) + 1)
    for i, shape in enumerate(shapes):
        if shape != first:
            raise TorchError(f"stack expects each tensor to be equal size, but got {_list(first)} at entry 0 and "
                             f"{_list(shape)} at entry {i}")
    _check_result_size((len(shapes),) + tuple(first))


def _stack_forward(*tensors, dim=0):
    arrays = [np.asarray(t) for t in tensors]
    return np.stack(arrays, axis=wrap_dim(dim, arrays[0].ndim + 1))


def _stack_vjp(grad, args, result, nums, dim=0):
    d = wrap_dim(dim, np.ndim(args[0]) + 1)
    grad = np.asarray(grad)
    return tuple(grad[(slice(None),) * d + (k,)] for k in range(len(args)))


def _join_value(name: str):
    def value(sp, exprs, dim=0):
        items = ", ".join(str(e) for e in exprs)
        suffix = f", {dim}" if dim != 0 else ""
        return sp.Symbol(f"{name}([{items}]{suffix})", real=True)

    return value


# -- flip, diag, trace, tril, triu -----------------------------------------------------------------


def _flip_forward(x, dims):
    x = np.asarray(x)
    axes = _wrap_dims(dims, x.ndim) if x.ndim else ()
    flipped = np.flip(x, axis=axes) if axes else x
    # a new tensor laid out as x is (empty_like's preserve format), contiguous if x is not dense
    strides = strides_of(x) if _is_dense(x.shape, strides_of(x)) else contiguous_strides(x.shape)
    return laid_out(np.array(flipped, copy=True), strides)


def _flip_check(shapes, dims):
    _wrap_dims(dims, len(shapes[0]))


def _flip_vjp(grad, args, result, nums, dims):
    grad = np.asarray(grad)
    axes = _wrap_dims(dims, grad.ndim) if grad.ndim else ()
    return (np.flip(grad, axis=axes) if axes else grad,)


def _diag_lowering(kinds, shapes, diagonal=0):
    ndim = len(shapes[0])
    if ndim == 1:
        return ("_diag_embed", (0,), {"diagonal": diagonal})
    if ndim == 2:
        return ("_diagonal_copy", (0,), {"diagonal": diagonal})
    raise TorchError(f"diag(): Supports 1D or 2D tensors. Got {ndim}D")


def _diag_forward(x, diagonal=0):
    return contiguous(np.diag(np.asarray(x), diagonal))


def _diag_check(shapes, diagonal=0):
    (shape,) = shapes
    if len(shape) == 1:
        n = shape[0] + abs(diagonal)
        _check_result_size((n, n))


def _diag_embed_vjp(grad, args, result, nums, diagonal=0):
    return (np.array(np.diagonal(np.asarray(grad), diagonal)),)


def _diagonal_vjp(grad, args, result, nums, diagonal=0):
    shape = _shape_of(args)
    out = _zeros(shape, grad, nums)
    rows, cols = _diagonal_positions(shape, diagonal)
    out[rows, cols] = grad
    return (out,)


def _diagonal_positions(shape: Shape, diagonal: int) -> tuple[np.ndarray, np.ndarray]:
    m, n = shape
    if diagonal >= 0:
        k = max(0, min(m, n - diagonal))
        rows = np.arange(k)
        return rows, rows + diagonal
    k = max(0, min(m + diagonal, n))
    cols = np.arange(k)
    return cols - diagonal, cols


def _diag_value(sp, exprs, diagonal=0):
    suffix = f", {diagonal}" if diagonal else ""
    return sp.Symbol(f"diag({exprs[0]}{suffix})", real=True)


def _trace_check(shapes):
    if len(shapes[0]) != 2:
        raise TorchError(f"trace: expected a matrix, but got tensor with dim {len(shapes[0])}")


def _trace_forward(x):
    """trace_cpu: the diagonal added in order, in double for a float32 tensor (its acc_type)."""
    x = np.asarray(x)
    diagonal = np.diagonal(x)
    if x.dtype.kind == "O":
        total = sum(diagonal[1:], diagonal[0]) if diagonal.size else 0
        return np.asarray(total, dtype=object)
    acc = np.float64 if x.dtype.kind == "f" else x.dtype.type
    total = acc(0)
    for value in diagonal.astype(acc):
        total = total + value
    return np.asarray(total, dtype=x.dtype)


def _trace_exact(sp, x):
    diagonal = list(np.diagonal(np.asarray(x, dtype=object)))
    result = np.empty((), dtype=object)
    result[()] = sp.Add(*diagonal)
    return result


def _trace_vjp(grad, args, result, nums):
    shape = _shape_of(args)
    out = _zeros(shape, grad, nums)
    k = min(shape)
    out[np.arange(k), np.arange(k)] = grad
    return (out,)


def _trace_display(sp, exprs, shapes):
    i, j = sp.symbols("i j", integer=True)
    return (sp.KroneckerDelta(i, j),)


def _triangle_check(name: str):
    def check(shapes, diagonal=0):
        if len(shapes[0]) < 2:
            raise TorchError(f"{name}: input tensor must have at least 2 dimensions")

    return check


def _triangle_forward(fn):
    def forward(x, diagonal=0):
        x = np.asarray(x)
        if x.dtype.kind == "O":  # exact numbers: SymPy's zero above (or below) the diagonal
            import sympy

            keep = fn(np.ones(x.shape[-2:], dtype=bool), diagonal)
            return contiguous(np.where(keep, x, sympy.Integer(0)))
        return contiguous(fn(x, diagonal))

    return forward


def _triangle_vjp(fn):
    def vjp(grad, args, result, nums, diagonal=0):
        grad = np.asarray(grad)
        keep = fn(np.ones(grad.shape[-2:], dtype=bool), diagonal)
        return (np.where(keep, grad, _zeros(grad.shape, grad, nums)),)

    return vjp


def _diagonal_value(name: str):
    def value(sp, exprs, diagonal=0):
        suffix = f"{diagonal}" if diagonal else ""
        return sp.Symbol(f"{_shown(exprs[0])}.{name}({suffix})", real=True)

    return value


# -- outer ---------------------------------------------------------------------------------------


def _outer_lowering(kinds, shapes, values=None, requires_grad=None):
    """torch's outer: input.reshape(n, 1) * vec2 (MulBackward0 over the reshape)."""
    for name, shape in (("self", shapes[0]), ("vec2", shapes[1])):
        if len(shape) != 1:
            raise TorchError(f"outer: Expected 1-D argument {name}, but got {len(shape)}-D")
    n = shapes[0][0]
    strides = operand_strides(shapes, values, 0)
    return ("mul", (reshape_call(0, shapes[0], strides, (n, 1)), 1))


_outer_lowering.wants_operands = True  # type: ignore[attr-defined]


# -- the rows ------------------------------------------------------------------------------------

DIM = Param("dim", ParamKind.INT)
SHAPE = Param("shape", ParamKind.INTS, varargs=True)
SIZE = Param("size", ParamKind.INTS, varargs=True)
DIAGONAL = Param("diagonal", ParamKind.INT, default=0)


def _internal(name, forward, grad_fn, vjp, params: tuple[Param, ...], **extra) -> Op:
    return _row(name, forward, grad_fn, vjp, signature=(INPUT, *params), function=False, internal=True, **extra)


ROWS: tuple[Op, ...] = (
    # subscripts: x[0], x[-1], A[:, 0], x[1:3], x[::2], x[None], lowered into torch's chain
    _row("index", _index_forward, None, None, signature=(INPUT, Param("index", ParamKind.INDEX)),
         function=False, lower=index_lowering),
    _row("select", _select_forward, "SelectBackward0", _select_vjp,
         signature=(INPUT, DIM, Param("index", ParamKind.INT)), function=False, method=True,
         check=_select_check, display_value=_select_value),
    _internal("slice", _slice_forward, "SliceBackward0", _slice_vjp,
              (DIM, Param("start", ParamKind.INT), Param("stop", ParamKind.INT), Param("step", ParamKind.INT)),
              display_value=_slice_value),
    _internal("alias", lambda x: np.asarray(x).view(), "AliasBackward0", _same_grad, (), display_value=_identity_value),
    # dims of size 1
    _row("unsqueeze", _unsqueeze_forward, "UnsqueezeBackward0", _reshaped_grad, signature=(INPUT, DIM),
         check=_unsqueeze_check, display_value=_method_value("unsqueeze", "dim")),
    _row("squeeze", _squeeze_forward, _squeeze_grad_fn, _reshaped_grad,
         signature=(INPUT, Param("dim", ParamKind.INTS, default=None, optional=True)),
         check=_squeeze_check, display_value=_squeeze_value),
    # matmul's in-place squeeze_(0) of a vector @ matrix product
    _internal("squeeze_", _squeeze_forward, "SqueezeBackward4", _reshaped_grad, (DIM,),
              check=_squeeze_check, display_value=_identity_value),
    # reshapes: a view of a contiguous tensor; else an alias, or a contiguous copy viewed
    _row("reshape", _reshape_forward, "ViewBackward0", _reshaped_grad, signature=(INPUT, SHAPE),
         check=_reshape_check, lower=_reshape_lowering, display_value=_shape_value("reshape")),
    _row("view", _view_forward, "ViewBackward0", _reshaped_grad, signature=(INPUT, SIZE), function=False,
         method=True, check=_view_check, lower=_view_lowering, display_value=_shape_value("view")),
    _internal("_reshape_alias", _reshape_forward, "ReshapeAliasBackward0", _reshaped_grad, (SHAPE,),
              display_value=_shape_value("reshape")),
    _internal("_unsafe_view", _reshape_forward, "UnsafeViewBackward0", _reshaped_grad, (SHAPE,),
              display_value=_shape_value("reshape")),
    _row("contiguous", contiguous, "CloneBackward0", _same_grad, function=False, method=True,
         lower=_contiguous_lowering, display_value=_identity_value),
    _internal("_clone", contiguous, "CloneBackward0", _same_grad, (), display_value=_identity_value),
    _row("flatten", _flatten_forward, "ViewBackward0", _reshaped_grad,
         signature=(INPUT, Param("start_dim", ParamKind.INT, default=0), Param("end_dim", ParamKind.INT, default=-1)),
         lower=_flatten_lowering, display_value=_flatten_value),
    # dims reordered: views
    _row("transpose", _transpose_forward, "TransposeBackward0", _transpose_vjp,
         signature=(INPUT, Param("dim0", ParamKind.INT), Param("dim1", ParamKind.INT)), check=_transpose_check,
         display_value=_method_value("transpose", "dim0", "dim1")),
    _row("t", _t_forward, "TBackward0", _t_vjp, check=_t_check, display_value=_method_value("t")),
    _row("T", _big_t_forward, "PermuteBackward0", _big_t_vjp, function=False, attribute="T",
         display_value=lambda sp, exprs: sp.Symbol(f"{_shown(exprs[0])}.T", real=True)),
    _row("mT", _transpose_forward, None, None, function=False, attribute="mT", lower=_mt_lowering),
    _row("permute", _permute_forward, "PermuteBackward0", _permute_vjp,
         signature=(INPUT, Param("dims", ParamKind.INTS, varargs=True)), check=_permute_check,
         display_value=_method_value("permute", "dims", star=True)),
    # copies and views of more elements
    _row("expand", _expand_forward, "ExpandBackward0", _expand_vjp, signature=(INPUT, SIZE), function=False,
         method=True, check=_expand_check, display_value=_shape_value("expand")),
    _row("repeat", _repeat_forward, "RepeatBackward0", _repeat_vjp,
         signature=(INPUT, Param("repeats", ParamKind.INTS, varargs=True)), function=False, method=True,
         check=_repeat_check, display_value=_method_value("repeat", "repeats", star=True)),
    # joins: any number of tensors, each an edge of the grad_fn
    _row("cat", _cat_forward, "CatBackward0", _cat_vjp,
         signature=(Param("tensors", ParamKind.TENSORS), Param("dim", ParamKind.INT, default=0)),
         aliases=("concat", "concatenate"), lower=_cat_lowering, check=_cat_check,
         second_order=JOINTLY_LINEAR, display_value=_join_value("cat")),
    _row("stack", _stack_forward, "StackBackward0", _stack_vjp,
         signature=(Param("tensors", ParamKind.TENSORS), Param("dim", ParamKind.INT, default=0)),
         lower=_stack_lowering, check=_stack_check,
         second_order=JOINTLY_LINEAR, display_value=_join_value("stack")),
    _row("flip", _flip_forward, "FlipBackward0", _flip_vjp,
         signature=(INPUT, Param("dims", ParamKind.INTS, varargs=True)), check=_flip_check,
         display_value=_method_value("flip", "dims", star=True)),
    # diagonals and triangles
    _row("diag", _diag_forward, None, None, signature=(INPUT, DIAGONAL), lower=_diag_lowering,
         display_value=_diag_value),
    _internal("_diag_embed", _diag_forward, "DiagEmbedBackward0", _diag_embed_vjp, (DIAGONAL,),
              check=_diag_check, display_value=_diag_value),
    _internal("_diagonal_copy", _diag_forward, "DiagonalBackward0_copy", _diagonal_vjp, (DIAGONAL,),
              display_value=_diag_value),
    _row("trace", _trace_forward, "TraceBackward0", _trace_vjp, check=_trace_check, exact=_trace_exact,
         display_partials=_trace_display),
    _row("tril", _triangle_forward(np.tril), "TrilBackward0", _triangle_vjp(np.tril), signature=(INPUT, DIAGONAL),
         check=_triangle_check("tril"), display_value=_diagonal_value("tril")),
    _row("triu", _triangle_forward(np.triu), "TriuBackward0", _triangle_vjp(np.triu), signature=(INPUT, DIAGONAL),
         check=_triangle_check("triu"), display_value=_diagonal_value("triu")),
    _row("outer", lambda a, b: np.multiply.outer(a, b), None, None, arity=2,
         signature=(INPUT, Param("vec2", ParamKind.TENSOR)), lower=_outer_lowering, tensor_args=True),
)
