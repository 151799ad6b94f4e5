"""THE op table: every primitive of the language, declared once, in one row.

A row holds every fact about its op: the NumPy forward (torch's CPU results), PyTorch's
`grad_fn` name (which may depend on whether each operand is a tensor or a number), the
backward rule, the exact forward, the second-order rule or the declaration it follows from,
and what the display shows. An elementwise op's row gives its SymPy `form` (its exact
forward and its display; SymPy derives its partials) and, where PyTorch's backward formula
differs from grad * that derivative, PyTorch's formula in the formula language. Reductions
and linear algebra carry hand-written rules (`rules.py`). The parser's vocabulary, the graph,
the backward pass, the exact and tangent interpreters, the display, batch and the grad_fn
graph all read this table; nothing else names an operation.

SymPy forms are functions of the `sympy` module and canonical symbols, called lazily, so
importing this module imports neither SymPy nor anything slow.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from gradcalc.engine.formula import call, const, where
from gradcalc.engine.kernels import LIBM, erf, kernel_fma, torch_pow, torch_sign, vector_lanes
from gradcalc.engine.row import GradFnName, Kind, Lowering, Op, SecondOrder, no_long
from gradcalc.engine.rows import index
from gradcalc.errors import TorchError
from gradcalc.lang.syntax import Param, ParamKind, Signature, Vocabulary

__all__ = ["OPS", "VOCABULARY", "build_index", "GradFnName", "Kind", "Lowering", "Op", "SecondOrder"]


def _by_kinds(tt: str, tn: str, nt: str) -> Callable[[tuple[bool, ...]], str]:
    """grad_fn name for a binary op by operand kinds: tensor-tensor, tensor-number, number-tensor."""

    def name(kinds: tuple[bool, ...]) -> str:
        names: dict[tuple[bool, ...], str] = {(True, True): tt, (True, False): tn, (False, True): nt}
        return names[kinds]

    return name


def _rdiv_lowering(kinds, shapes) -> tuple | None:
    # torch evaluates `2 / x` as `x.reciprocal() * 2`: MulBackward0 over ReciprocalBackward0.
    if kinds == (False, True):
        return ("mul", (("reciprocal", (1,)), 0))
    return None


def _pow_vjps(g, r, a, b):
    # pow_backward_self masks where the exponent is 0 (a true zero, even for a nan grad);
    # pow_backward_exponent multiplies by a mask that is 0 where the base is 0 and exponent >= 0.
    return {
        0: where(b == 0, 0, g * (b * a ** (b - 1))),
        1: g * where((a == 0) & (b >= 0), 0, r * call("log", a)),
    }


def _maximum_vjps(g, r, a, b):
    # Ties halve the gradient; the smaller operand gets a true 0.
    return {0: where(a < b, 0, where(a == b, g / 2, g)), 1: where(a > b, 0, where(a == b, g / 2, g))}


def _minimum_vjps(g, r, a, b):
    return {0: where(a > b, 0, where(a == b, g / 2, g)), 1: where(a < b, 0, where(a == b, g / 2, g))}


def _clamp_vjps(g, r, x, lo, hi):
    # clamp_backward(_min_max): the gradient passes at the bounds themselves.
    return {0: where((x >= lo) & (x <= hi), g, 0),
            1: where((x < lo) & (lo < hi), g, 0),
            2: where((x > hi) | (hi < lo), g, 0)}


def _maximum(a, b):
    return _tie_aware(a, b, np.where(a < b, b, a), np.where(b < a, a, b))


def _minimum(a, b):
    return _tie_aware(a, b, np.where(b < a, b, a), np.where(a < b, a, b))


def _tie_aware(a, b, scalar_result, vector_result):
    """torch's maximum/minimum on ties of 0. and -0.: its scalar loop keeps the first operand,
    its vector loop (AVX max/min) the second; nan propagates either way."""
    vector = vector_lanes(np.broadcast_shapes(np.shape(a), np.shape(b)), (np.shape(a), np.shape(b)),
                          np.result_type(a, b))
    result = np.where(vector, vector_result, scalar_result)
    return np.where(np.isnan(a), a, np.where(np.isnan(b), b, result))


def _clamp(x, lo, hi):
    """torch.clamp. Number bounds: std::min(std::max(x, lo), hi) (a nan x stays nan,
    clamp(0., -0., -0.) is 0.; torch's vector loop, vec::clamp, breaks ties alike), and a nan
    bound fills the result with nan. Tensor bounds: the scalar loop is that, nan where a bound
    is nan; the vector loop is minimum(maximum(x, lo), hi), which propagates nan and on a tie
    of 0. and -0. keeps the bound."""
    low = np.where(x < lo, lo, x)
    scalar = np.where(hi < low, hi, low)
    if not isinstance(lo, np.ndarray) and not isinstance(hi, np.ndarray):
        if (math.isnan(lo) or math.isnan(hi)) and np.result_type(x).kind == "f":
            return np.full(np.shape(x), np.nan, dtype=np.result_type(x))
        return scalar
    if np.result_type(x, lo, hi).kind != "f":
        return scalar
    nan = np.asarray(np.nan, dtype=np.result_type(x, lo, hi))
    scalar = np.where(np.isnan(lo) | np.isnan(hi), nan, scalar)
    high = np.where(np.isnan(x) | np.isnan(lo), nan, np.where(lo < x, x, lo))
    vector = np.where(np.isnan(high) | np.isnan(hi), nan, np.where(high < hi, high, hi))
    shapes = (np.shape(x), np.shape(lo), np.shape(hi))
    lanes = vector_lanes(np.broadcast_shapes(*shapes), shapes, np.result_type(x, lo, hi))
    return np.where(lanes, vector, scalar)


def _clamp_bounds(kinds: tuple[bool, ...]) -> bool:
    """A tensor bound makes both bounds tensors (a number one a 0-d tensor). (torch itself has
    no clamp(Tensor, min=Tensor, max=Number): its argument parser's TypeError.)"""
    return kinds[1] or kinds[2]


def _alpha_dtype(dtypes, float_dtype, written=(), **params):
    """add/sub with alpha: torch's error for a float alpha with integral tensors (then the
    usual promotion). `written`: per operand, whether a number was written as an integer (alpha
    is one, or a wrapped 0-d tensor: int64 where written as an integer)."""
    alpha_is_float = written[2] is False or (dtypes[2] is not None and dtypes[2].kind == "f")
    if all(d is not None and d.kind in "iub" for d in dtypes[:2]) and alpha_is_float:
        raise TorchError("For integral input tensors, argument alpha must not be a floating point number.",
                         hint="give alpha as an integer, or make the tensors float")
    return None


def _add_alpha(a, b, alpha, sign=1):
    """self + alpha * other: torch's add kernel, vec::fmadd(other, alpha, self), each operand
    in the result's dtype (an integer result in integers).

    With a number (or 0-d) `other`, torch's scalar loop (the tail after the vector blocks)
    adds `alpha * other` computed once, rounded, except where the compiler left an element
    to plain scalar code, which fuses it: the tail's first element, and the last ones after
    the 16-byte groups of its SSE loop."""
    arrays = [x for x in (a, b) if isinstance(x, np.ndarray) and x.ndim] or \
        [x for x in (a, b) if isinstance(x, np.ndarray)]
    dtype = np.result_type(*arrays) if arrays else np.dtype(np.float64)
    if dtype.kind != "f":
        return np.asarray(a) + sign * np.asarray(alpha) * np.asarray(b)
    a_, b_, alpha_ = (np.asarray(v, dtype=dtype) for v in (a, b, sign * np.asarray(alpha)))
    fused = kernel_fma(b_, alpha_, a_)
    if np.ndim(b) or np.ndim(a) == 0:
        return fused
    shape = np.shape(a)
    lanes = vector_lanes(shape, (shape,), dtype).reshape(-1)
    tail = int(lanes.size - np.count_nonzero(lanes))
    group = 16 // dtype.itemsize
    unfused = np.zeros(lanes.size, dtype=bool)
    start = lanes.size - tail + 1
    unfused[start:start + (tail - 1) // group * group] = True
    return np.where(unfused.reshape(shape), a_ + b_ * alpha_, fused)


def _atan2_vjps(g, r, a, b):
    # atan2_backward: the reciprocal is masked to 0 where both operands are 0.
    denominator = a * a + b * b
    recip = where(denominator == 0, 0, 1 / denominator)
    return {0: g * b * recip, 1: g * -a * recip}


def _softplus(x):
    # beta 1, threshold 20: linear above the threshold, as torch.nn.functional.softplus.
    with np.errstate(over="ignore"):
        return np.where(x > 20, x, LIBM["log1p"](LIBM["exp"](x)))


def _softplus_vjps(g, r, a):
    z = call("exp", a)
    return {0: where(a > 20, g, g * z / (z + 1))}


def _softplus_beta(x, beta, threshold):
    """softplus_kernel: (x * beta) > threshold ? x : log1p(exp(x * beta)) / beta, beta and
    threshold in the tensor's dtype."""
    dtype = np.result_type(x)
    beta, threshold = np.asarray(beta, dtype=dtype), np.asarray(threshold, dtype=dtype)
    scaled = x * beta
    with np.errstate(over="ignore"):
        return np.where(scaled > threshold, x, LIBM["log1p"](LIBM["exp"](scaled)) / beta)


def _softplus_beta_vjps(g, r, a, beta, threshold):
    # softplus_backward: z = exp(x * beta); (x * beta) > threshold ? grad : grad * z / (z + 1)
    z = call("exp", a * beta)
    return {0: where(a * beta > threshold, g, g * z / (z + 1))}


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + LIBM["exp"](-x))


def _silu(x):
    with np.errstate(over="ignore"):
        return x / (1 + LIBM["exp"](-x))


def _silu_vjps(g, r, a):
    # silu_backward: sigmoid * (1 + x * (1 - sigmoid)), the sigmoid computed again
    s = 1 / (1 + call("exp", -a))
    return {0: g * s * (1 + a * (1 - s))}


def _mish(x):
    with np.errstate(over="ignore"):
        return x * LIBM["tanh"](LIBM["log1p"](LIBM["exp"](x)))


def _mish_vjps(g, r, a):
    s = 1 / (1 + call("exp", -a))
    t = call("tanh", call("log1p", call("exp", a)))
    return {0: g * (t + a * s * (1 - t * t))}


def _logsigmoid(x):
    # log_sigmoid: min(0, x) - log1p(exp(-|x|)), which never overflows
    return np.minimum(np.zeros_like(x), x) - LIBM["log1p"](LIBM["exp"](-np.abs(x)))


def _logsigmoid_vjps(g, r, a):
    z = call("exp", -call("abs", a))
    return {0: g * (where(a < 0, 1, 0) - where(a < 0, 1, -1) * (z / (1 + z)))}


def _hardsigmoid(x):
    return np.minimum(np.maximum(x + 3, 0), 6) / 6


def _unary(name, forward, form, grad_fn, **extra) -> Op:
    return Op(name=name, arity=1, forward=forward, form=form, grad_fn=grad_fn, **extra)


_ALPHA_SIGNATURE = (Param("input", ParamKind.TENSOR), Param("other", ParamKind.TENSOR),
                    Param("alpha", ParamKind.NUMBER, default=1, keyword_only=True))

_CORE: tuple[Op, ...] = (
    # operators: derivatives.yaml's formulas, so that plain arithmetic needs no SymPy at run time
    Op("add", 2, np.add, "AddBackward0", form=lambda sp, a, b: a + b, function=False, number_edges=True,
       torch_vjps=lambda g, r, a, b: {0: g, 1: g}, method=True, integers=True),
    Op("sub", 2, np.subtract, _by_kinds("SubBackward0", "SubBackward0", "RsubBackward1"),
       form=lambda sp, a, b: a - b, function=False, torch_vjps=lambda g, r, a, b: {0: g, 1: -g},
       number_edges=lambda kinds: kinds != (False, True), method=True, aliases=("subtract",), integers=True),
    # x.add(y, alpha=2), torch.sub(x, y, alpha=2): self + alpha * other with one rounding (torch's
    # vec::fmadd), grads grad and grad * alpha; overloads of the methods add and sub, tried after
    # them, so that `a + b` and x.add(y) stay the two-operand rows
    # (numbers are torch's wrapped 0-d tensors: a None edge in their place, none for alpha)
    Op("add_alpha", 3, _add_alpha, "AddBackward0", form=lambda sp, a, b, alpha: a + alpha * b, function=False,
       tensor_args=True, nondifferentiable=(2,), torch_vjps=lambda g, r, a, b, alpha: {0: g, 1: g * alpha},
       aliases=("add",), integers=True, signature=_ALPHA_SIGNATURE, layout_dependent=True, result_dtype=_alpha_dtype),
    Op("sub_alpha", 3, lambda a, b, alpha: _add_alpha(a, b, alpha, -1), "SubBackward0",
       form=lambda sp, a, b, alpha: a - alpha * b, function=False, tensor_args=True, nondifferentiable=(2,),
       torch_vjps=lambda g, r, a, b, alpha: {0: g, 1: -g * alpha}, aliases=("sub", "subtract"),
       integers=True, signature=_ALPHA_SIGNATURE, layout_dependent=True, result_dtype=_alpha_dtype),
    Op("mul", 2, np.multiply, "MulBackward0", form=lambda sp, a, b: a * b, function=False, number_edges=True,
       torch_vjps=lambda g, r, a, b: {0: g * b, 1: g * a}, method=True, aliases=("multiply",), integers=True),
    Op("div", 2, np.divide, _by_kinds("DivBackward0", "DivBackward0", "MulBackward0"),
       form=lambda sp, a, b: a / b, function=False, lower=_rdiv_lowering, number_edges=True,
       torch_vjps=lambda g, r, a, b: {0: g / b, 1: -g * ((a / b) / b)}, method=True, aliases=("divide", "true_divide")),
    Op("pow", 2, torch_pow, _by_kinds("PowBackward1", "PowBackward0", "PowBackward2"),
       form=lambda sp, a, b: a**b, torch_vjps=_pow_vjps, integers=True),
    _unary("neg", np.negative, lambda sp, a: -a, "NegBackward0", function=False,
           torch_vjps=lambda g, r, a: {0: -g}, method=True, aliases=("negative",), integers=True),
    _unary("pos", lambda a: a, lambda sp, a: a, None, kind=Kind.IDENTITY, function=False, aliases=("positive",),
           integers=True),
    # elementwise functions
    _unary("abs", np.abs, lambda sp, a: sp.Abs(a), "AbsBackward0", aliases=("absolute",), integers=True),
    _unary("sign", torch_sign, lambda sp, a: sp.sign(a), "SignBackward0",
           torch_vjps=lambda g, r, a: {0: 0}, integers=True),
    _unary("sqrt", np.sqrt, lambda sp, a: sp.sqrt(a), "SqrtBackward0",
           torch_vjps=lambda g, r, a: {0: g / (2 * r)}),
    _unary("rsqrt", lambda a: 1 / np.sqrt(a), lambda sp, a: 1 / sp.sqrt(a), "RsqrtBackward0",
           torch_vjps=lambda g, r, a: {0: -0.5 * g * r**3}),
    # torch.square is pow(x, 2): PowBackward0.
    _unary("square", lambda a: a * a, lambda sp, a: a**2, "PowBackward0",
           torch_vjps=lambda g, r, a: {0: g * (2 * a)}, integers=True),
    _unary("reciprocal", np.reciprocal, lambda sp, a: 1 / a, "ReciprocalBackward0",
           torch_vjps=lambda g, r, a: {0: -g * (r * r)}),
    _unary("exp", LIBM["exp"], lambda sp, a: sp.exp(a), "ExpBackward0",
           torch_vjps=lambda g, r, a: {0: g * r}),
    _unary("expm1", LIBM["expm1"], lambda sp, a: sp.exp(a) - 1, "Expm1Backward0",
           torch_vjps=lambda g, r, a: {0: g * (r + 1)}),
    _unary("log", LIBM["log"], lambda sp, a: sp.log(a), "LogBackward0"),
    _unary("log1p", LIBM["log1p"], lambda sp, a: sp.log(1 + a), "Log1PBackward0",
           torch_vjps=lambda g, r, a: {0: g / (a + 1)}),
    _unary("log2", LIBM["log2"], lambda sp, a: sp.log(a, 2), "Log2Backward0",
           torch_vjps=lambda g, r, a: {0: g / (a * const("ln2"))}),
    _unary("log10", LIBM["log10"], lambda sp, a: sp.log(a, 10), "Log10Backward0",
           torch_vjps=lambda g, r, a: {0: g / (a * const("ln10"))}),
    _unary("sin", LIBM["sin"], lambda sp, a: sp.sin(a), "SinBackward0"),
    _unary("cos", LIBM["cos"], lambda sp, a: sp.cos(a), "CosBackward0"),
    _unary("tan", LIBM["tan"], lambda sp, a: sp.tan(a), "TanBackward0",
           torch_vjps=lambda g, r, a: {0: g * (1 + r**2)}),
    _unary("asin", LIBM["arcsin"], lambda sp, a: sp.asin(a), "AsinBackward0",
           torch_vjps=lambda g, r, a: {0: g * (-a * a + 1) ** -0.5}, aliases=("arcsin",)),
    _unary("acos", LIBM["arccos"], lambda sp, a: sp.acos(a), "AcosBackward0",
           torch_vjps=lambda g, r, a: {0: g * -((-a * a + 1) ** -0.5)}, aliases=("arccos",)),
    _unary("atan", LIBM["arctan"], lambda sp, a: sp.atan(a), "AtanBackward0",
           torch_vjps=lambda g, r, a: {0: g / (a * a + 1)}, aliases=("arctan",)),
    _unary("sinh", LIBM["sinh"], lambda sp, a: sp.sinh(a), "SinhBackward0"),
    _unary("cosh", LIBM["cosh"], lambda sp, a: sp.cosh(a), "CoshBackward0"),
    _unary("tanh", LIBM["tanh"], lambda sp, a: sp.tanh(a), "TanhBackward0",
           torch_vjps=lambda g, r, a: {0: g * (1 - r * r)}),
    _unary("sigmoid", _sigmoid, lambda sp, a: 1 / (1 + sp.exp(-a)), "SigmoidBackward0",
           torch_vjps=lambda g, r, a: {0: g * (1 - r) * r}),
    # threshold_backward(grad, result, 0): a true 0 where relu(x) <= 0, x = 0 included.
    _unary("relu", lambda a: np.where(a < 0, np.zeros_like(a), a), lambda sp, a: sp.Max(0, a),
           "ReluBackward0", torch_vjps=lambda g, r, a: {0: where(r <= 0, 0, g)}, integers=True),
    _unary("softplus", _softplus, lambda sp, a: sp.log(1 + sp.exp(a)), "SoftplusBackward0",
           torch_vjps=_softplus_vjps, integer_error=no_long("softplus_cpu")),
    # softplus(x, beta, threshold): an overload of softplus(x), tried after it
    Op("softplus_beta", 3, _softplus_beta, "SoftplusBackward0",
       form=lambda sp, a, beta, threshold: sp.Piecewise((a, beta * a > threshold),
                                                        (sp.log(1 + sp.exp(beta * a)) / beta, True)),
       torch_vjps=_softplus_beta_vjps,
       call_as="softplus", signature=(Param("input", ParamKind.TENSOR), Param("beta", ParamKind.NUMBER, default=1.0),
                                      Param("threshold", ParamKind.NUMBER, default=20.0)),
       integer_error=no_long("softplus_cpu")),
    _unary("erf", erf, lambda sp, a: sp.erf(a), "ErfBackward0",
           torch_vjps=lambda g, r, a: {0: const("2/sqrt(pi)") * call("exp", -(a**2)) * g}),
    # activations (torch.nn.functional's), each torch's kernel and backward formula
    _unary("silu", _silu, lambda sp, a: a / (1 + sp.exp(-a)), "SiluBackward0", torch_vjps=_silu_vjps,
           integer_error=no_long("silu_cpu")),
    _unary("mish", _mish, lambda sp, a: a * sp.tanh(sp.log(1 + sp.exp(a))), "MishBackward0",
           torch_vjps=_mish_vjps, integer_error=no_long("mish_cpu")),
    _unary("logsigmoid", _logsigmoid, lambda sp, a: -sp.log(1 + sp.exp(-a)), "LogSigmoidBackward0",
           torch_vjps=_logsigmoid_vjps, integer_error=no_long("log_sigmoid_cpu")),
    _unary("hardsigmoid", _hardsigmoid, lambda sp, a: sp.Min(sp.Max(a + 3, 0), 6) / 6, "HardsigmoidBackward0",
           torch_vjps=lambda g, r, a: {0: where((a > -3) & (a < 3), g * const("1/6 in float32"), 0)},
           twice_differentiable=False, integer_error=no_long("hardsigmoid_cpu")),
    Op("maximum", 2, _maximum, "MaximumBackward0", form=lambda sp, a, b: sp.Max(a, b),
       torch_vjps=_maximum_vjps, tensor_args=True, layout_dependent=True, integers=True),
    Op("minimum", 2, _minimum, "MinimumBackward0", form=lambda sp, a, b: sp.Min(a, b),
       torch_vjps=_minimum_vjps, tensor_args=True, layout_dependent=True, integers=True),
    Op("atan2", 2, LIBM["arctan2"], "Atan2Backward0", form=lambda sp, a, b: sp.atan2(a, b),
       torch_vjps=_atan2_vjps, tensor_args=True, aliases=("arctan2",)),
    # Number bounds: ClampBackward1; tensor bounds: ClampBackward0. One bound: rows/nn.py's overloads.
    Op("clamp", 3, _clamp,
       lambda kinds: "ClampBackward0" if kinds[1] or kinds[2] else "ClampBackward1",
       form=lambda sp, x, lo, hi: sp.Min(sp.Max(x, lo), hi), torch_vjps=_clamp_vjps,
       tensor_args=_clamp_bounds, aliases=("clip",), integers=True),
    # graph
    _unary("detach", lambda a: a, None, None, kind=Kind.DETACH),
)

# The table: the core rows above, then each section's (gradcalc/engine/rows/), in this order
# (overloads of a name are tried in it), each with its title in `gradcalc functions`.
_SECTIONS: tuple[tuple[str, str], ...] = (
    ("reductions", "Reductions"),
    ("linalg", "Linear algebra"),
    ("shapes", "Indexing, slicing, joining and reshaping"),
    ("nn", "Activations, softmax and comparisons (torch.nn.functional, torch)"),
    ("losses", "Losses (torch.nn.functional)"),
    ("constructors", "Creation"),
)
_CORE_TITLE = "Pointwise math and operators"
# A section is imported when a program first names one of its rows (the reference case
# imports none): `rows/index.py` says which section declares each name, and is generated from
# the table itself (`python -m gradcalc.engine.ops`; a test keeps it current).
_CORE_OPS: dict[str, Op] = {row.name: row for row in _CORE}


@functools.cache
def _section(module: str) -> tuple[Op, ...]:
    return importlib.import_module(f"gradcalc.engine.rows.{module}").ROWS


def _rows_of(sections) -> list[Op]:
    """The core rows, then those of the given sections, in table order."""
    wanted = set(sections)
    return [*_CORE, *(row for module, _ in _SECTIONS if module in wanted for row in _section(module))]


class _Table(Mapping[str, Op]):
    """OPS: every row by name; a section's rows are imported on first use."""

    def __getitem__(self, name: str) -> Op:
        row = _CORE_OPS.get(name)
        if row is not None:
            return row
        module = index.ROWS.get(name)
        if module is None:
            raise KeyError(name)
        return next(r for r in _section(module) if r.name == name)

    def __contains__(self, name: object) -> bool:
        return name in _CORE_OPS or name in index.ROWS

    def __iter__(self) -> Iterator[str]:
        return (row.name for row in _rows_of(m for m, _ in _SECTIONS))

    def __len__(self) -> int:
        return len(_CORE_OPS) + len(index.ROWS)


class _Names(Mapping[str, tuple[Signature, ...]]):
    """A vocabulary's names, each with its overloads; the sections that declare a name are
    imported when its signatures are first asked for, not to tell whether it is one."""

    def __init__(self, kind: str, names: Mapping[str, tuple[str, ...]]):
        self.kind, self.names = kind, names
        self.cache: dict[str, tuple[Signature, ...]] = {}

    def __getitem__(self, name: str) -> tuple[Signature, ...]:
        if name not in self.cache:
            if name not in self.names:
                raise KeyError(name)
            self.cache[name] = _signatures(self.kind, name, _rows_of(self.names[name]))
        return self.cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def _signatures(kind: str, name: str, rows: list[Op]) -> tuple[Signature, ...]:
    """A name's overloads among `rows`, in table order: as a function (bare, with torch's
    prefixes and as a method), or as a method only (operators' `x.mul(y)`, aliases)."""
    out = []
    for row in rows:
        if kind == "functions" and row.function and (row.call_as or row.name) == name:
            out.append(Signature(name, row.name, row.params, row.outputs))
        if kind == "methods" and ((row.method and row.name == name) or name in row.aliases):
            out.append(Signature(name, row.name, row.params, row.outputs))
    return tuple(out)


def build_index(rows: tuple[Op, ...] | None = None) -> dict[str, dict]:
    """Which section declares each row, function, method and attribute name (core: "")."""
    def module_of(row: Op) -> str:
        return next((m for m, _ in _SECTIONS if row in _section(m)), "")

    table = rows if rows is not None else tuple(_rows_of(m for m, _ in _SECTIONS))
    out: dict[str, dict] = {"ROWS": {}, "FUNCTIONS": {}, "METHODS": {}, "ATTRIBUTES": {}}
    for row in table:
        module = module_of(row)
        if module:
            out["ROWS"][row.name] = module
        names = []
        if row.function:
            names.append(("FUNCTIONS", row.call_as or row.name))
        if row.method:
            names.append(("METHODS", row.name))
        names += [("METHODS", alias) for alias in row.aliases]
        for kind, name in names:
            sections = out[kind].setdefault(name, ())
            if module and module not in sections:
                out[kind][name] = (*sections, module)
        if row.attribute:
            out["ATTRIBUTES"][row.attribute] = (row.name, module)
    return out


VOCABULARY = Vocabulary(_Names("functions", index.FUNCTIONS), _Names("methods", index.METHODS),
                        {name: row for name, (row, _) in index.ATTRIBUTES.items()})
OPS: Mapping[str, Op] = _Table()


def __getattr__(name: str):
    """The whole table, for what lists it all (`gradcalc functions`, the tests): imports every
    section. ROWS: every row in table order; SECTIONS: (title, rows) by section; FUNCTIONS:
    each callable name's first row."""
    if name == "ROWS":
        return tuple(_rows_of(m for m, _ in _SECTIONS))
    if name == "SECTIONS":
        return ((_CORE_TITLE, _CORE), *((title, _section(module)) for module, title in _SECTIONS))
    if name == "FUNCTIONS":
        return {n: OPS[VOCABULARY.functions[n][0].op] for n in VOCABULARY.functions}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _write_index(path: str) -> None:
    data = build_index()
    lines = ['"""Which section of the op table declares each name: generated from the table by',
             '`python -m gradcalc.engine.ops` (tests/test_ops.py checks it is current). Do not edit."""', "",
             "from __future__ import annotations", ""]
    for key in ("ROWS", "FUNCTIONS", "METHODS", "ATTRIBUTES"):
        lines.append(f"{key}: dict = {{")
        lines += [f"    {name!r}: {value!r}," for name, value in data[key].items()]
        lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    _write_index(__file__.replace("ops.py", "rows/index.py"))
