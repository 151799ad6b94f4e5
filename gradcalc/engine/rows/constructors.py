"""Constructors: ones, zeros, full, eye, arange, linspace, *_like, tensor([...]), torch.Tensor([...]).

Each is a new leaf (Kind.CONSTANT) that requires grad only where the program passes
`requires_grad=True`. A row's forward takes its number operands as Python numbers, an int
where the program wrote one (`arange(5)` is int64, `arange(5.)` float), and `float_dtype`,
the float dtype of the evaluation (torch's default dtype; `--dtype float64` makes it
float64), and returns its array in the dtype torch gives it. The values are torch's CPU
kernels' (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp), their rounding included.
"""

from __future__ import annotations

import math

import numpy as np

from gradcalc.engine.kernels import kernel_fma_in
from gradcalc.engine.row import Kind, Op
from gradcalc.errors import InputError, ShapeError, TorchError
from gradcalc.lang.syntax import Param, ParamKind
from gradcalc.lang.values import MAX_DIMS, MAX_ELEMENTS

_REQUIRES_GRAD = Param("requires_grad", ParamKind.BOOL, default=False, keyword_only=True)


# -- sizes and numbers ----------------------------------------------------------------------

def _shape(size, name: str) -> tuple[int, ...]:
    """A size as torch checks it, refused past the element limit before anything is allocated."""
    shape = tuple(size)
    negative = next((n for n in shape if n < 0), None)
    if negative is not None:
        raise TorchError(f"Trying to create tensor with negative dimension {negative}: "
                         f"[{', '.join(str(n) for n in shape)}]")
    _check_size(shape, name)
    return shape


def _check_size(shape: tuple[int, ...], name: str) -> None:
    if len(shape) > MAX_DIMS:
        raise InputError(f"{name}(): {len(shape)} dimensions is more than the limit of {MAX_DIMS}")
    size = math.prod(shape)
    if size > MAX_ELEMENTS:
        shown = "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ShapeError(f"the result would have {size:,} elements (shape {shown}); "
                         f"the limit is {MAX_ELEMENTS:,}")


def _number(x, name: str, param: str):
    """A number operand (a tensor is refused: gradcalc's constructors take numbers)."""
    if isinstance(x, np.ndarray):
        raise InputError(f"{name}(): argument '{param}' must be a number, not a tensor",
                         hint=f"write the number itself, as in {name}(3)")
    return x


def _tensor(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise InputError(f"{name}(): argument 'input' must be a tensor, not a number",
                         hint=f"{name} makes a tensor of its input's shape: {name}(x)")
    return x


def _int64(value: int) -> int:
    """A Python int as torch converts it to int64_t."""
    if not -(2**63) <= value < 2**63:
        raise TorchError("value cannot be converted to type int64_t without overflow")
    return value


def _scalar(value, dtype: np.dtype):
    """Scalar::to<dtype>: an int converted, a double rounded to float32 (a finite one past
    float32's range is torch's error; inf and nan stay)."""
    if isinstance(value, int):
        return np.asarray(_int64(value), dtype=np.int64).astype(dtype)[()]
    with np.errstate(over="ignore"):
        converted = dtype.type(value)
    if math.isfinite(value) and not np.isfinite(converted):
        raise TorchError(f"value cannot be converted to type {_C_TYPES.get(dtype.name, dtype.name)} without overflow")
    return converted


_C_TYPES = {"float32": "float", "float64": "double"}


# -- the kernels --------------------------------------------------------------------------

def _arange_size(start, end, step) -> int:
    """compute_arange_size (RangeUtils.h): its checks, then the size in double (int64
    arithmetic where every argument is an integer)."""
    dstart, dend, dstep = float(start), float(end), float(step)
    if not (dstep > 0 or dstep < 0):
        raise TorchError("step must be nonzero")
    if not (math.isfinite(dstart) and math.isfinite(dend)):
        raise TorchError(f"unsupported range: {_c_double(dstart)} -> {_c_double(dend)}")
    if not ((dstep > 0 and dend >= dstart) or (dstep < 0 and dend <= dstart)):
        raise TorchError("upper bound and lower bound inconsistent with step sign")
    if all(isinstance(x, int) for x in (start, end, step)):
        sign = (step > 0) - (step < 0)
        size = float(_trunc_div(end - start + step - sign, step))
    else:
        with np.errstate(all="ignore"):
            size = float(np.ceil((dend - dstart) / dstep))
    if not (0 <= size <= float(2**63 - 1)):
        raise TorchError("invalid size, possible overflow?")
    return int(size)


def _trunc_div(a: int, b: int) -> int:
    """C++'s integer division: toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _c_double(x: float) -> str:
    """A double as C++'s ostream writes it (six significant digits)."""
    return f"{x:g}"


def arange_values(start, step, n: int, dtype: np.dtype, threads: int = 1) -> np.ndarray:
    """torch's arange kernel in a float dtype: the accumulation in double; two vectors of an
    AVX2 register's lanes at a time (8 floats, 4 doubles), each vector from its first
    element's `start + step * i` plus `k * step` per lane, the tail element by element; every
    `a + b * c` a fused multiply-add, as torch's AVX2 and AVX-512 builds compute it.

    Above 32,768 elements (at::internal::GRAIN_SIZE) torch splits the range among `threads`
    threads, each part restarting the vectors, so the last bits there depend on torch's
    thread count; gradcalc gives one thread's (torch.set_num_threads(1)) results."""
    out = np.empty(n, dtype=dtype)
    parts = min(threads, -(-n // _GRAIN_SIZE)) if threads > 1 and n >= _GRAIN_SIZE else 1
    chunk = -(-n // parts) if n else 0
    for begin in range(0, n, chunk or 1):
        end = min(n, begin + chunk)
        out[begin:end] = _arange_part(start, step, begin, end, dtype)
    return out


_GRAIN_SIZE = 32768


def _arange_part(start, step, begin: int, end: int, dtype: np.dtype) -> np.ndarray:
    lanes = 32 // dtype.itemsize
    vector = begin + (end - begin) // (2 * lanes) * (2 * lanes)
    out = np.empty(end - begin, dtype=dtype)
    if vector > begin:
        firsts = np.arange(begin, vector, lanes, dtype=np.float64)
        base = kernel_fma_in(step, firsts, start, np.dtype(np.float64))
        base = base.astype(dtype).astype(np.float64)  # Vectorized<scalar_t>::arange(scalar_t base, ...)
        k = np.arange(lanes, dtype=np.float64)
        lanes_values = kernel_fma_in(k[None, :], step, base[:, None], np.dtype(np.float64))
        lanes_values[:, 0] = base
        out[:vector - begin] = lanes_values.reshape(-1).astype(dtype)  # double, then rounded to the dtype
    tail = np.arange(vector, end, dtype=np.float64)
    out[vector - begin:] = kernel_fma_in(step, tail, start, np.dtype(np.float64)).astype(dtype)
    return out


def _arange_forward(*numbers, float_dtype, **params) -> np.ndarray:
    start, end, step = numbers if len(numbers) == 3 else (0, numbers[0], 1)
    for value, param in zip((start, end, step), ("start", "end", "step")):
        _number(value, "arange", param)
    n = _arange_size(start, end, step)
    _check_size((n,), "arange")
    if all(isinstance(x, int) for x in (start, end, step)):
        with np.errstate(over="ignore"):
            return np.int64(_int64(start)) + np.int64(_int64(step)) * np.arange(n, dtype=np.int64)
    return arange_values(float(start), float(step), n, np.dtype(float_dtype))


def _arange_exact(sp, *numbers, **params):
    start, end, step = numbers if len(numbers) == 3 else (sp.Integer(0), numbers[0], sp.Integer(1))
    n = _arange_size(float(start), float(end), float(step))
    return np.array([start + step * i for i in range(n)], dtype=object).reshape(n)


def linspace_values(start, end, steps: int, dtype: np.dtype) -> np.ndarray:
    """torch's linspace kernel: the step (end - start) / (steps - 1) in the dtype, the first
    half `start + step * i` and the second `end - step * (steps - i - 1)`, each a fused
    multiply-add (torch's AVX2 and AVX-512 builds)."""
    s, e = _scalar(start, dtype), _scalar(end, dtype)
    if steps == 1:
        return np.full(1, s, dtype=dtype)
    with np.errstate(all="ignore"):
        step = (e - s) / dtype.type(steps - 1)
    half = steps // 2
    i = np.arange(steps, dtype=np.int64)
    return np.concatenate([kernel_fma_in(step, i[:half].astype(dtype), s, dtype),
                           kernel_fma_in(-step, (steps - i[half:] - 1).astype(dtype), e, dtype)])


def _linspace_forward(start, end, *, float_dtype, steps, **params) -> np.ndarray:
    _number(start, "linspace", "start")
    _number(end, "linspace", "end")
    if steps < 0:
        raise TorchError("number of steps must be non-negative")
    _check_size((steps,), "linspace")
    dtype = np.dtype(float_dtype)
    if steps == 0:
        return np.empty(0, dtype=dtype)
    return linspace_values(start, end, steps, dtype)


def _linspace_exact(sp, start, end, *, steps, **params):
    if steps == 1:
        return np.array([start], dtype=object)
    return np.array([start + (end - start) * sp.Rational(i, steps - 1) for i in range(steps)],
                    dtype=object).reshape(steps)


def _filled(name: str, fill):
    def forward(*, float_dtype, size, **params) -> np.ndarray:
        return np.full(_shape(size, name), fill, dtype=float_dtype)

    return forward


def _full_forward(fill_value, *, float_dtype, size, **params) -> np.ndarray:
    _number(fill_value, "full", "fill_value")
    if isinstance(size, int):
        raise InputError("full(): argument 'size' (position 1) must be tuple of ints, not int",
                         hint=f"write the size as a tuple: full(({size},), ...)")
    shape = _shape(size, "full")
    if isinstance(fill_value, int):  # torch.full((2,), 3) is int64
        return np.full(shape, _int64(fill_value), dtype=np.int64)
    dtype = np.dtype(float_dtype)
    return np.full(shape, _scalar(fill_value, dtype), dtype=dtype)


def _full_exact(sp, fill_value, *, size, **params):
    result = np.empty(tuple(size), dtype=object)
    result.fill(fill_value)
    return result


def _like(name: str, fill):
    def forward(input, *, float_dtype, **params) -> np.ndarray:
        x = _tensor(input, name)
        return np.full(x.shape, fill, dtype=x.dtype if x.dtype.kind in "iub" else float_dtype)

    return forward


def _full_like_forward(input, fill_value, *, float_dtype, **params) -> np.ndarray:
    x = _tensor(input, "full_like")
    _number(fill_value, "full_like", "fill_value")
    if x.dtype.kind == "b":
        return np.full(x.shape, bool(fill_value))
    if x.dtype.kind in "iu":  # the value converted as C++ converts it: toward zero
        if isinstance(fill_value, float) and not math.isfinite(fill_value):
            raise TorchError("value cannot be converted to type int64_t without overflow")
        return np.full(x.shape, _int64(int(fill_value)), dtype=np.int64)
    dtype = np.dtype(float_dtype)
    return np.full(x.shape, _scalar(fill_value, dtype), dtype=dtype)


def _full_like_exact(sp, input, fill_value, **params):
    result = np.empty(np.shape(input), dtype=object)
    result.fill(fill_value)
    return result


def _eye_forward(*, float_dtype, n, m, **params) -> np.ndarray:
    if n < 0:
        raise TorchError(f"n must be greater or equal to 0, got {n}")
    columns = n if m is None else m
    if columns < 0:
        raise TorchError(f"m must be greater or equal to 0, got {columns}")
    _check_size((n, columns), "eye")
    return np.eye(n, columns, dtype=float_dtype)


def _data_shape(data, name: str) -> tuple[int, ...]:
    """torch.tensor's shape: the lengths along the first elements, every other sequence
    checked against them (torch's words for a ragged list)."""
    shape: list[int] = []
    probe = data
    while isinstance(probe, tuple):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    if len(shape) > MAX_DIMS:
        raise InputError(f"{name}(): more than {MAX_DIMS} nested levels (dimensions)")
    if 0 in shape:
        return tuple(shape)  # nothing is filled in, so nothing more is checked
    level = [data]
    for dim in range(len(shape) + 1):
        for item in level:
            if dim == len(shape):
                if isinstance(item, tuple):
                    raise InputError("'list' object cannot be interpreted as an integer"
                                     if _all_ints(data) else "must be real number, not list")
            elif not isinstance(item, tuple):
                raise InputError("not a sequence")
            elif len(item) != shape[dim]:
                raise InputError(f"expected sequence of length {shape[dim]} at dim {dim} (got {len(item)})")
        if dim < len(shape):
            level = [x for item in level for x in item]
    return tuple(shape)


def _leaves(data) -> list:
    out, stack = [], [data]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _all_ints(data) -> bool:
    return all(isinstance(x, int) and not isinstance(x, bool) for x in _leaves(data))


def _literal_forward(name: str, integers: bool):
    def forward(*, float_dtype, data, **params) -> np.ndarray:
        if name == "Tensor" and not isinstance(data, tuple):
            raise InputError("torch.Tensor(n) is an uninitialized tensor of n elements",
                             hint="write its values, torch.Tensor([2., 1.]), or use torch.zeros(n)")
        shape = _data_shape(data, name)
        leaves = _leaves(data)
        _check_size(shape, name)
        if integers and leaves and _all_ints(data):  # torch.tensor([0, 2, 1]) is int64
            for x in leaves:
                if not -(2**63) <= x < 2**63:
                    raise InputError("Overflow when unpacking long long")
            return np.array(leaves, dtype=np.int64).reshape(shape)
        dtype = np.dtype(float_dtype)
        with np.errstate(over="ignore"):  # torch.tensor([1e39]) is inf in float32
            return np.array([float(x) for x in leaves], dtype=np.float64).astype(dtype).reshape(shape)

    return forward


# -- display ------------------------------------------------------------------------------

def _display(name: str, fill=None):
    """A constructor in a displayed expression: its value where it is one number everywhere
    (ones: 1, full((2,), 2.5): 2.5), a 0-d tensor literal's number, else a call of it
    (`eye(3)`, `arange(5)`). (The graph keeps no operands of a new leaf: where the number
    operands are not given, the call shows `...` for them.)"""

    def display(sp, exprs, **params):
        if fill is not None:
            return sp.Integer(fill)
        if name in ("tensor", "Tensor"):
            data = params["data"]
            if not isinstance(data, tuple):
                return sp.Integer(data) if isinstance(data, int) else sp.Rational(repr(float(data)))
            text = _data_text(data)
            return sp.Symbol(f"{name}({text})" if len(text) <= 40 else f"{name}(...)", real=True)
        numbers = list(exprs)
        if name in ("full", "full_like") and numbers and numbers[-1] is not None:
            return numbers[-1]
        statics = [sp.Integer(params[p]) for p in ("n", "m", "steps") if params.get(p) is not None]
        if name in ("full", "arange", "linspace") and not numbers:
            shown = ", ".join(["...", *(str(s) for s in statics)])
            return sp.Symbol(f"{name}({shown})", real=True)
        return sp.Function(name)(*numbers, *statics)

    return display


def _data_text(data) -> str:
    if isinstance(data, tuple):
        return "[" + ", ".join(_data_text(x) for x in data) + "]"
    return repr(data)


# -- the rows -----------------------------------------------------------------------------

def _constant(name: str, arity: int, forward, signature, **extra) -> Op:
    extra.setdefault("display_value", _display(extra.pop("display_name", name)))
    return Op(name=name, arity=arity, forward=forward, grad_fn=None, kind=Kind.CONSTANT,
              signature=signature, **extra)


_SIZE = Param("size", ParamKind.INTS, varargs=True)
_INPUT = Param("input", ParamKind.TENSOR)

ROWS: tuple[Op, ...] = (
    _constant("ones", 0, _filled("ones", 1), (_SIZE, _REQUIRES_GRAD), display_value=_display("ones", 1)),
    _constant("zeros", 0, _filled("zeros", 0), (_SIZE, _REQUIRES_GRAD), display_value=_display("zeros", 0)),
    # full((2, 3), 1.5): the fill value's type gives the dtype (an int: int64)
    _constant("full", 1, _full_forward, (Param("size", ParamKind.INTS), Param("fill_value", ParamKind.NUMBER),
                                         _REQUIRES_GRAD), exact=_full_exact),
    _constant("eye", 0, _eye_forward, (Param("n", ParamKind.INT), Param("m", ParamKind.INT, default=None,
                                                                     optional=True), _REQUIRES_GRAD)),
    # arange(end) and arange(start, end, step=1): int64 where every argument is an integer
    _constant("arange", 1, _arange_forward, (Param("end", ParamKind.NUMBER), _REQUIRES_GRAD), exact=_arange_exact),
    _constant("arange_range", 3, _arange_forward,
              (Param("start", ParamKind.NUMBER), Param("end", ParamKind.NUMBER),
               Param("step", ParamKind.NUMBER, default=1), _REQUIRES_GRAD),
              call_as="arange", exact=_arange_exact, display_name="arange"),
    _constant("linspace", 2, _linspace_forward,
              (Param("start", ParamKind.NUMBER), Param("end", ParamKind.NUMBER), Param("steps", ParamKind.INT),
               _REQUIRES_GRAD), exact=_linspace_exact),
    _constant("ones_like", 1, _like("ones_like", 1), (_INPUT, _REQUIRES_GRAD), display_value=_display("ones", 1)),
    _constant("zeros_like", 1, _like("zeros_like", 0), (_INPUT, _REQUIRES_GRAD),
              display_value=_display("zeros", 0)),
    _constant("full_like", 2, _full_like_forward, (_INPUT, Param("fill_value", ParamKind.NUMBER), _REQUIRES_GRAD),
              exact=_full_like_exact, display_value=_display("full")),
    # tensor([[1, 2], [3, 4]]): int64 where every number is an integer, else the float dtype
    _constant("tensor", 0, _literal_forward("tensor", integers=True), (Param("data", ParamKind.DATA),
                                                                       _REQUIRES_GRAD)),
    # torch.Tensor([2, 1]): always the float dtype
    _constant("Tensor", 0, _literal_forward("Tensor", integers=False), (Param("data", ParamKind.DATA),)),
)
