"""Number backends, chosen once at the top (`backend(dtype)`): floats in a NumPy dtype, as
torch computes, or exact SymPy numbers (`eval --exact`: 1/3 stays 1/3). The graph, the
backward pass and the formula interpreters do their arithmetic through one of these and
never ask which.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from gradcalc.engine.formula import CONSTANTS, FUNCTIONS
from gradcalc.engine.kernels import torch_pow
from gradcalc.engine.row import Kind
from gradcalc.errors import TorchError
from gradcalc.lang import syntax
from gradcalc.lang.values import cast


class _WrittenIntegers:
    """Which program numbers the program wrote as integers (`2`, `2*3`; not `2.`, `1/2`, `pi`):
    torch's type promotion keeps an integer tensor times `2` integral, times `2.` float.

    A number reaches `forward` as the very object `program_number` returned for its Const
    (graph.Const keeps one float per number), so the backend notes each one it hands out,
    keyed by identity; the object is kept in the entry, so its id is never reused."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[Any, int]] = {}

    def note(self, number: Any, const) -> Any:
        value = integer_written(const.expr)
        if value is None:
            self.entries.pop(id(number), None)
        else:
            self.entries[id(number)] = (number, value)
        return number

    def value(self, number: Any) -> int | None:
        """The Python int `number` was written as, or None (a float, or not a program number)."""
        entry = self.entries.get(id(number))
        return entry[1] if entry is not None and entry[0] is number else None


class Floats:
    """torch's arithmetic: tensors of one float dtype, Python numbers as torch's Scalars."""

    exact = False

    def __init__(self, dtype: Any):
        self.dtype = np.dtype(dtype)
        self.integers = _WrittenIntegers()

    def tensor(self, value) -> np.ndarray:
        """An input's value as a tensor of this backend: floats in its dtype; an integer or bool
        tensor stays one (class targets, `arange(3)`), as torch.tensor keeps int64."""
        array = np.asarray(value)
        if array.dtype.kind in "iu":
            return array.astype(np.int64, copy=False)
        if array.dtype.kind == "b":
            return array
        return cast(array, self.dtype)

    def program_number(self, const) -> Any:
        """A number of the program (a graph.Const) as an operand: a Python float."""
        return self.integers.note(const.value, const)

    def number(self, x: float) -> Any:
        return x  # a Python number: NumPy casts it to the tensor's dtype, as torch a Scalar

    def constant(self, name: str) -> Any:
        return CONSTANTS[name].value

    def call(self, name: str, *xs) -> Any:
        value = FUNCTIONS[name].numpy(*xs)
        # A function of Python numbers stays a Python number, as torch's Scalar math does.
        return float(value) if all(isinstance(x, float) for x in xs) else value

    def pow(self, base, exponent) -> Any:
        return torch_pow(base, exponent)

    def isnan(self, x) -> Any:
        return np.isnan(x)

    def forward(self, op, operands: list, params: dict | None = None) -> np.ndarray:
        params = params or {}
        if op.kind is Kind.CONSTANT:  # the row gives its dtype: int64 for arange(5), ones(2) floats
            return np.asarray(op.forward(*constructor_numbers(operands, self.integers), float_dtype=self.dtype,
                                         **params))
        if op.integer_error is not None and any(isinstance(x, np.ndarray) and x.dtype.kind in "iub"
                                                for x in operands):
            error = op.integer_error
            raise TorchError(error(tuple(np.shape(x) for x in operands), **params) if callable(error) else error)
        if op.result_dtype is None and _all_floats(operands):  # the common case: floats in, floats out
            dtype = self.dtype
        else:
            dtype, own = result_dtype(op, operands, params, self.integers, self.dtype)
            operands = promoted(op, operands, dtype, own, self.integers, self.dtype)
        with np.errstate(all="ignore"):
            value = op.forward(*operands, **params)
        return np.asarray(value, dtype=dtype)


class Exact:
    """Exact arithmetic: object arrays of SymPy numbers. Values are the rationals they were
    written as (`0.1` is 1/10), each op's forward is its exact form, and the backward
    formulas of the op table run unchanged, their constants and functions made exact."""

    exact = True
    dtype = np.dtype(object)

    def __init__(self) -> None:
        import sympy

        self.sp = sympy
        self.integers = _WrittenIntegers()

    def tensor(self, value) -> np.ndarray:
        """Floats as the exact numbers they were written as; an integer or bool tensor stays one."""
        array = np.asarray(value)
        if array.dtype.kind in "iub":
            return array.astype(np.int64, copy=False) if array.dtype.kind != "b" else array
        with np.errstate(invalid="ignore"):
            return np.asarray(np.frompyfunc(self.number, 1, 1)(array), dtype=object).reshape(array.shape)

    def exact_tensor(self, array: np.ndarray) -> np.ndarray:
        """Any tensor as exact numbers: an integer tensor's elements as SymPy Integers."""
        if array.dtype.kind in "iub":
            integer = self.sp.Integer
            return np.asarray(np.frompyfunc(lambda v: integer(int(v)), 1, 1)(array), dtype=object).reshape(array.shape)
        return self.tensor(array)

    def program_number(self, const) -> Any:
        # (SymPy shares its small Integers: `2` and `2.` in one operation are told apart by
        # the last one handed out, which decides only an integer result's dtype.)
        return self.integers.note(program_constant(self.sp, const), const)

    def number(self, x) -> Any:
        """A float as the exact number it was written as (repr: 0.1 -> 1/10), nan and oo kept."""
        sp = self.sp
        if isinstance(x, sp.Basic):
            return x
        x = float(x)
        if math.isnan(x):
            return sp.nan
        if math.isinf(x):
            return sp.oo if x > 0 else -sp.oo
        return sp.Rational(repr(x))

    def constant(self, name: str) -> Any:
        return CONSTANTS[name].exact(self.sp)

    def call(self, name: str, *xs) -> Any:
        return elementwise(FUNCTIONS[name].exact(self.sp), *xs)

    def pow(self, base, exponent) -> Any:
        return elementwise(lambda a, b: a**b, base, exponent)

    def isnan(self, x) -> Any:
        nan = self.sp.nan

        def one(v) -> bool:
            return v is nan or (isinstance(v, float) and math.isnan(v))

        return np.asarray(np.frompyfunc(one, 1, 1)(np.asarray(x, dtype=object)), dtype=bool)

    def forward(self, op, operands: list, params: dict | None = None) -> np.ndarray:
        """An op's exact value: elementwise by its form, reductions by their exact rule, the
        rest (shapes, indexing) by its forward on arrays of exact numbers. Integer results
        (int64 + int64, arange(5)) stay NumPy integers, as in the float backends."""
        params = params or {}
        if op.kind is Kind.CONSTANT:
            value = np.asarray(op.forward(*constructor_numbers(operands, self.integers),
                                          float_dtype=np.dtype(np.float64), **params))
            if value.dtype.kind != "f":
                return value
            if op.exact is not None:  # linspace(0, 1, 4) is 0, 1/3, 2/3, 1
                return np.asarray(op.exact(self.sp, *operands, **params), dtype=object)
            return self.tensor(value)
        dtype, own = result_dtype(op, operands, params, self.integers, np.dtype(object))
        if dtype.kind in "iub" and not own:
            ints = [x if isinstance(x, np.ndarray) else _int64(self.integers.value(x)) for x in operands]
            return np.asarray(op.forward(*ints, **params), dtype=dtype)
        if not own and op.kind is Kind.ELEMENTWISE:  # integers among exact numbers
            operands = [self.exact_tensor(x) if isinstance(x, np.ndarray) and x.dtype.kind in "iub" else x
                        for x in operands]
        if op.form is not None:
            return elementwise(lambda *a: op.form(self.sp, *a), *operands)
        if op.exact is not None:
            return np.asarray(op.exact(self.sp, *operands, **params), dtype=object)
        value = op.forward(*operands, **params)
        return np.asarray(value, dtype=object)


def _all_floats(operands: list) -> bool:
    """Every operand a float tensor, or a number and a float tensor among them (no promotion)."""
    tensor = False
    for x in operands:
        if isinstance(x, np.ndarray):
            if x.dtype.kind != "f":
                return False
            tensor = True
    return tensor


def result_dtype(op, operands: list, params: dict, integers: _WrittenIntegers,
                 float_dtype) -> tuple[np.dtype, bool]:
    """torch's type promotion for the op, and whether the row's own rule gave it: the row's rule
    where it states one (comparisons: bool; it may raise torch's dtype error, or return None
    for the rule below; it is given the operands' dtypes, None for a number, and `written`:
    whether each number was written as an integer); else int64 where the row keeps integers and every tensor operand is
    an integer (or bool) tensor and every number was written as an integer (int64 + int64,
    int64 * 2; int64 * 2. is float); else the float dtype."""
    dtypes = [x.dtype if isinstance(x, np.ndarray) else None for x in operands]
    if op.result_dtype is not None:
        written = tuple(None if isinstance(x, np.ndarray) else integers.value(x) is not None for x in operands)
        own = op.result_dtype(dtypes, float_dtype, written=written, **params)
        if own is not None:
            return np.dtype(own), True
    tensors = [d for d in dtypes if d is not None]
    numbers = [x for x, d in zip(operands, dtypes) if d is None]
    if (op.integers and tensors and all(d.kind in "iub" for d in tensors)
            and all(integers.value(x) is not None for x in numbers)):
        return np.dtype(np.int64), False
    return np.dtype(float_dtype), False


def promoted(op, operands: list, dtype: np.dtype, own: bool, integers: _WrittenIntegers, float_dtype) -> list:
    """The operands as the op computes on them: for an integer result, numbers as Python ints;
    for an elementwise op's float result, integer tensors cast to the float dtype first (torch's
    common dtype: `arange(3) * 0.5` is float32(0, 1, 2) * 0.5, `arange(3) / 2` divides floats).
    A row whose own result_dtype rule gave the dtype (comparisons) and a non-elementwise row
    (whose integer operands may be indices or class targets) take their operands as they are."""
    if own:
        return operands
    if dtype.kind in "iub":
        return [x if isinstance(x, np.ndarray) else _int64(integers.value(x)) for x in operands]
    if op.kind is not Kind.ELEMENTWISE or not any(isinstance(x, np.ndarray) and x.dtype.kind in "iub"
                                                  for x in operands):
        return operands
    return [x.astype(float_dtype) if isinstance(x, np.ndarray) and x.dtype.kind in "iub" else x
            for x in operands]


def constructor_numbers(operands: list, integers: _WrittenIntegers) -> list:
    """A constructor's number operands as Python numbers: an int where the program wrote one
    (`arange(5)` is int64, `arange(5.)` float), else a float; tensors (ones_like's) as they are."""
    result: list[Any] = []
    for x in operands:
        if isinstance(x, np.ndarray):
            result.append(x)
            continue
        written = integers.value(x)
        result.append(written if written is not None else float(x))
    return result


def _int64(value: int | None) -> int:
    """A number of an integer result, as torch converts a Python int to int64_t (one of
    [2**63, 2**64) is a uint64 Scalar, which wraps: arange(3) + 2**63 starts at -2**63)."""
    assert value is not None
    if 2**63 <= value < 2**64:
        return value - 2**64
    if not -(2**63) <= value < 2**63:
        raise TorchError("value cannot be converted to type int64_t without overflow",
                         hint="an integer tensor holds 64-bit integers")
    return value


def integer_written(expr) -> int | None:
    """The Python int a program number is where Python computes it as one: a literal written
    without a point or exponent (`2`, not `2.` or `1e3`), and `+`, `-`, `*` of such and `**` to
    a power >= 0; None for a float (`2.`, `1/2`, `pi`, a function's value). Magnitudes past
    2**64 are kept as 2**64 with their sign (out of int64's range all the same)."""
    cap = 2**64
    # post-order without recursion: a folded `1+1+...+1` may be thousands deep
    stack: list[tuple[Any, bool]] = [(expr, False)]
    done: list[int | None] = []
    while stack:
        e, expanded = stack.pop()
        if isinstance(e, syntax.Number):
            text = e.text
            if text == "pi" or any(c in text for c in ".eE"):
                done.append(None)
            else:  # (a 5,000-digit literal is past int64 all the same)
                digits = text.lstrip("0") or "0"
                done.append(int(digits) if len(digits) <= 20 else cap)
        elif isinstance(e, syntax.Call) and e.op in _INTEGER_OPS and len(e.args) == _INTEGER_OPS[e.op]:
            if not expanded:
                stack.append((e, True))
                stack.extend((a, False) for a in reversed(e.args))
                continue
            args = done[len(done) - len(e.args):]
            del done[len(done) - len(e.args):]
            done.append(_integer_op(e.op, args, cap))
        else:
            done.append(None)
    return done[0]


_INTEGER_OPS = {"add": 2, "sub": 2, "mul": 2, "pow": 2, "neg": 1, "pos": 1}


def _integer_op(op: str, args: list, cap: int) -> int | None:
    if any(a is None for a in args):
        return None
    if op == "neg":
        return -args[0]
    if op == "pos":
        return args[0]
    a, b = args
    if op == "pow":
        if b < 0:
            return None  # 2 ** -1 is 0.5
        if abs(a) <= 1 or b <= 128:  # small: computed (a is at most 2**64 here)
            value = a**b
        else:
            value = cap if a > 0 or b % 2 == 0 else -cap
    else:
        value = a + b if op == "add" else a - b if op == "sub" else a * b
    return max(-cap, min(cap, value))


def backend(dtype: str) -> Floats | Exact:
    """The backend for a dtype name: "float32", "float64", or "exact"."""
    return Exact() if dtype == "exact" else Floats(dtype)


def elementwise(fn, *operands) -> np.ndarray:
    result = np.frompyfunc(fn, len(operands), 1)(*operands)
    return np.asarray(result, dtype=object)


def program_constant(sp, const) -> Any:
    """A folded number (a graph.Const), exact where the program wrote it exactly (`1/2`,
    `pi`), else a Float."""
    return _exact_number(sp, const.expr, const.value)


def _exact_number(sp, expr, value: float) -> Any:
    if isinstance(expr, syntax.Number):
        if expr.text == "pi":
            return sp.pi
        if len(expr.text) <= 20 and math.isfinite(value):
            return sp.Rational(expr.text) if any(c in expr.text for c in ".eE") else sp.Integer(expr.text)
    elif isinstance(expr, syntax.Call) and _small_exact(expr):
        from gradcalc.engine.ops import OPS

        args = [_exact_number(sp, a, 0.0) for a in expr.args]
        row = OPS[expr.op]
        if row.form is not None:
            return row.form(sp, *args)
    if value.is_integer() and abs(value) < 2**53:
        return sp.Integer(int(value))
    return sp.Float(value)


def _small_exact(expr: syntax.Call) -> bool:
    """Exact arithmetic only on a few short literals with small exponents: no SymPy bombs."""
    nodes = 0
    stack: list[syntax.Expr] = [expr]
    while stack:
        e = stack.pop()
        nodes += 1
        if nodes > 20:
            return False
        if isinstance(e, syntax.Number) and (len(e.text) > 12 or not math.isfinite(e.value)):
            return False
        if isinstance(e, syntax.Call):
            if e.op == "pow" and not (isinstance(e.args[1], syntax.Number) and abs(e.args[1].value) <= 64):
                return False
            stack.extend(e.args)
    return True
