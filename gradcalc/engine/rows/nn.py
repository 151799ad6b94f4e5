"""Activations with parameters, softmax, log_softmax, normalize; comparisons and where.

Each activation is torch's CPU kernel (aten/src/ATen/native/cpu/Activation.cpp) and its
backward formula (derivatives.yaml: leaky_relu_backward, elu_backward, gelu_backward,
hardtanh_backward, hardswish_backward, shrink backward, threshold_backward), edge masks
included. A number parameter (negative_slope, alpha, lambd, min_val ...) is a NUMBER operand
with torch's default, so the elementwise machinery (forms, backward formulas, --exact,
--hessian, the display) takes it as any other operand.

Where torch's vector loop and its scalar loop (the tail shorter than a block) differ at an
edge (hardtanh's grad at nan is 0 in vector lanes and the grad in scalar ones), the formula
asks which elements are in vector lanes (`lanes`, `lanes512` for kernels torch also builds
for AVX-512). Composites of torch.nn.functional (softsign, tanhshrink, normalize) lower into
the rows torch's Python code calls, so that their grad_fn graphs are torch's.
"""

from __future__ import annotations

import math

import numpy as np

from gradcalc.engine import dim_kernels
from gradcalc.engine.formula import call, where
from gradcalc.engine.kernels import LIBM, erf, infer_size, kernel_fma, sleef_tanh, vector_lane_mask
from gradcalc.engine.row import Kind, Op, SecondOrder, no_long
from gradcalc.errors import InputError, ShapeError, TorchError
from gradcalc.lang.syntax import Param, ParamKind

INPUT = Param("input", ParamKind.TENSOR)


# -- which elements torch's loops compute in vector lanes -----------------------------------

def _in_vector_lanes(x, avx512: bool = False):
    return call("lanes512" if avx512 else "lanes", x)


# -- elementwise activations ---------------------------------------------------------------

def _number(name: str, default: float) -> Param:
    return Param(name, ParamKind.NUMBER, default=default)


def _dtype_of(x) -> np.dtype:
    return np.asarray(x).dtype


def _leaky_relu(x, slope):
    # a > 0 ? a : a * negval (the vector loop's a * blendv(negval, 1, a > 0) is the same)
    return np.where(x > 0, x, x * slope)


def _leaky_relu_vjps(g, r, x, slope):
    return {0: where(x > 0, g, g * slope)}


def _elu_forward(x, alpha, scale=1.0, input_scale=1.0):
    """elu_kernel (aten/src/ATen/native/cpu/Elu.h): a < 0 ? expm1(a * input_scale) * (alpha *
    scale) : a * scale, each coefficient a Scalar converted to the tensor's dtype."""
    dtype = _dtype_of(x)
    negcoef = np.asarray(alpha, dtype=dtype) * np.asarray(scale, dtype=dtype)
    negative = LIBM["expm1"](x * np.asarray(input_scale, dtype=dtype)) * negcoef
    return np.where(x < 0, negative, x * np.asarray(scale, dtype=dtype))


def _elu_vjps_of(g, x, negcoef, poscoef, input_scale):
    """elu_backward(is_result=False): b <= 0 ? a * input_scale * negcoef * exp(b * input_scale)
    : a * poscoef; torch's vector loop (also built for AVX-512) blends on b > 0, so a nan
    input takes the negative branch there: a nan grad, where the scalar loop passes a * poscoef."""
    negative = g * input_scale * negcoef * call("exp", x * input_scale)
    positive = g * poscoef
    scalar = where(x <= 0, negative, positive)
    vector = where(x > 0, positive, negative)
    return where(_in_vector_lanes(x, avx512=True), vector, scalar)


# torch's SELU constants (at::native::SELU_ALPHA, SELU_SCALE), as doubles
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _celu_check(alpha):
    if np.any(np.asarray(alpha) == 0):
        raise TorchError("ZeroDivisionError: alpha cannot be 0 for CELU",
                         hint="celu divides by alpha: pick a nonzero alpha")


def _celu_forward(x, alpha):
    # at::celu is at::elu(self, alpha, 1.0, 1.0 / alpha) with 1.0 / alpha a double
    _celu_check(alpha)
    return _elu_forward(x, alpha, 1.0, 1.0 / np.asarray(alpha, dtype=np.float64))


def _celu_vjps(g, r, x, alpha):
    # derivatives.yaml: elu_backward(grad, alpha, 1, 1.0/alpha.toFloat(), false, self): the
    # input scale of the backward is 1 / (alpha rounded to float32), in float64 too.
    input_scale = 1 / call("float32", alpha)
    return {0: _elu_vjps_of(g, x, alpha, 1, input_scale)}


def _gelu_forward(x, approximate="none"):
    """scalar_gelu: x * 0.5 * (1 + erf(x * M_SQRT1_2)), erf the C library's.

    torch's float32 gelu of a tensor of two or more elements runs oneDNN's kernel instead
    (eltwise_gelu_erf): (x * (1 + erf)) * 0.5, so that it overflows past 1.7e38, nan at
    +-inf; its erf is an approximation, which gradcalc does not reproduce (up to ~1e-4
    relative near x = -3: see tests/test_nn.py)."""
    x = np.asarray(x)
    dtype = x.dtype
    alpha, half = np.asarray(math.sqrt(0.5), dtype=dtype), np.asarray(0.5, dtype=dtype)
    e = erf(x * alpha)
    if dtype == np.float32 and x.size >= 2:
        return np.where(np.isinf(x), np.asarray(np.nan, dtype=dtype), (x * (1 + e)) * half)
    return x * half * (1 + e)


def _gelu_vjps(g, r, x):
    # GeluBackwardKernelImpl: cdf = 0.5 * (1 + erf(x * kAlpha)), pdf = kBeta * exp(x * x * -0.5),
    # grad * (cdf + x * pdf), with kBeta = M_2_SQRTPI * M_SQRT1_2 * 0.5
    cdf = 0.5 * (1 + call("erf", x * math.sqrt(0.5)))
    pdf = (2 / math.sqrt(math.pi) * math.sqrt(0.5) * 0.5) * call("exp", x * x * -0.5)
    return {0: g * (cdf + x * pdf)}


_GELU_BETA = math.sqrt(2) * (2 / math.sqrt(math.pi)) * 0.5   # M_SQRT2 * M_2_SQRTPI * 0.5
_GELU_KAPPA = 0.044715


def _gelu_tanh_forward(x):
    """scalar_gelu_approximated_with_tanh: 0.5 * x * (1 + tanh(kBeta * (x + kKappa * x**3))),
    x + kKappa * x**3 an FMA (contracted in the scalar loop as in the vector one)."""
    dtype = _dtype_of(x)
    beta, kappa = np.asarray(_GELU_BETA, dtype=dtype), np.asarray(_GELU_KAPPA, dtype=dtype)
    inner = beta * kernel_fma(kappa, x * x * x, x)
    return np.asarray(0.5, dtype=dtype) * x * (1 + sleef_tanh(inner))


def _gelu_tanh_vjps(g, r, x):
    # GeluBackwardKernelImpl (tanh), its a * b + c contracted to FMAs
    square = x * x
    t = call("tanh_lanes512", _GELU_BETA * call("fma", _GELU_KAPPA, square * x, x))
    left = 0.5 * x
    left_derivative = 0.5 * (1 + t)
    tanh_derivative = call("fma", -t, t, 1)
    # scalar_t(3) * kKappa is a product in the tensor's dtype: 3 as a tensor of that dtype
    three = where(x != x, 3, 3)
    inner_derivative = _GELU_BETA * call("fma", three * _GELU_KAPPA, square, 1)
    right_derivative = left * tanh_derivative * inner_derivative
    return {0: g * (left_derivative + right_derivative)}


def _gelu_lowering(kinds, shapes, approximate="none"):
    return ("gelu_tanh", (0,)) if approximate == "tanh" else None


def _clamp_numbers(x, lo, hi):
    """std::min(std::max(a, min), max) with number bounds (torch's vector loop, vec::clamp,
    breaks ties alike); a nan bound fills the result with nan."""
    low = np.where(x < lo, lo, x)
    result = np.where(hi < low, hi, low)
    return np.where(np.isnan(lo) | np.isnan(hi), np.asarray(np.nan, dtype=result.dtype), result)


def _hardtanh_check(lo, hi):
    if np.any(np.asarray(lo) > hi):
        raise InputError("min_val cannot be greater than max_val",
                         hint="hardtanh(input, min_val, max_val) needs min_val <= max_val")


def _hardtanh(x, lo, hi):
    if not isinstance(lo, np.ndarray) and not isinstance(hi, np.ndarray):   # (numbers, as programs pass them)
        _hardtanh_check(lo, hi)
    return _clamp_numbers(x, lo, hi)


def _hardtanh_grad(g, x, lo, hi):
    """hardtanh_backward: (x <= min || x >= max) ? 0 : grad in the scalar loop,
    ((x > min) & (x < max)) & grad in vector lanes: at nan, grad and 0."""
    scalar = where((x <= lo) | (x >= hi), 0, g)
    vector = where((x > lo) & (x < hi), g, 0)
    return where(_in_vector_lanes(x), vector, scalar)


def _hardswish(x):
    # x * min(max(x + 3, 0), 6) / 6 (std::min/max propagate a nan x as vec::minimum/maximum do)
    return x * np.minimum(np.maximum(x + 3, 0), 6) / 6


def _hardswish_vjps(g, r, x):
    # hardswish_backward: x <= -3 ? 0 : x < 3 ? grad * (x / 3 + 0.5) : grad; the vector loop
    # (also built for AVX-512) blends x >= 3 first: a nan input gives grad * nan there.
    middle = g * (x / 3 + 0.5)
    scalar = where(x <= -3, 0, where(x < 3, middle, g))
    vector = where(x <= -3, 0, where(x >= 3, g, middle))
    return {0: where(_in_vector_lanes(x, avx512=True), vector, scalar)}


def _softshrink_check(x, lambd):
    if not np.all(np.asarray(lambd) >= 0):
        big, name = ("3.40282e+38", "Float") if _dtype_of(x) == np.float32 else ("1.79769e+308", "Double")
        found = float(np.min(lambd)) if not np.isnan(lambd).any() else math.nan
        raise TorchError(f"lambda must be in range [0, {big}] for input dtype {name}, but found {found:g}",
                         hint="softshrink's lambd is a threshold: zero or more")


def _softshrink(x, lambd):
    """a > l ? a - l : (a < -l ? a + l : a * 0) in the scalar loop; in vector lanes
    ((a > l) | isnan(a)) & (a - l) | ((a < -l) | isnan(a)) & (a + l), whose zeros are +0."""
    _softshrink_check(x, lambd)
    x = np.asarray(x)
    dtype = x.dtype
    lo = np.asarray(lambd, dtype=dtype)
    scalar = np.where(x > lo, x - lo, np.where(x < -lo, x + lo, x * 0))
    vector = np.where(x > lo, x - lo, np.where(x < -lo, x + lo, np.where(np.isnan(x), x, 0)))
    return np.where(vector_lane_mask(x.shape, dtype), vector, scalar).astype(dtype)


def _shrink_grad(g, x, lambd):
    """shrink backward: (x >= -l && x <= l) ? 0 : grad in the scalar loop,
    ((x < -l) | (x > l)) & grad in vector lanes: at nan, grad and 0."""
    scalar = where((x >= -lambd) & (x <= lambd), 0, g)
    vector = where((x < -lambd) | (x > lambd), g, 0)
    return where(_in_vector_lanes(x), vector, scalar)


def _hardshrink(x, lambd):
    # (a >= -l && a <= l) ? 0 : a, alike in both loops
    return np.where((x >= -lambd) & (x <= lambd), np.zeros((), dtype=_dtype_of(x)), x)


def _threshold(x, threshold, value):
    # threshold_kernel: x <= threshold ? value : x
    dtype = _dtype_of(x)
    return np.where(x <= np.asarray(threshold, dtype=dtype), np.asarray(value, dtype=dtype), x)


def _scalar_tensor(*, value, float_dtype, **params):
    """A Python number as torch wraps it into a 0-d tensor that requires no grad."""
    return np.asarray(value, dtype=float_dtype)


def _wrapped_number(value: float) -> tuple:
    """A lowering's call for a number torch wraps as a tensor (`x.abs() + 1`)."""
    return ("scalar_tensor", (), (("value", value),))


_WRAPPED = Op("scalar_tensor", 0, _scalar_tensor, None, kind=Kind.CONSTANT, function=False, internal=True,
              display_value=lambda sp, args, value, **params: sp.sympify(value),
              signature=(Param("value", ParamKind.FLOAT),))


def _softsign_lowering(kinds, shapes):
    # F.softsign: input / (input.abs() + 1)
    return ("div", (0, ("add", (("abs", (0,)), _wrapped_number(1.0)))))


def _tanhshrink_lowering(kinds, shapes):
    # F.tanhshrink: input - input.tanh()
    return ("sub", (0, ("tanh", (0,))))


def _elementwise(name, arity, forward, form, grad_fn, vjps, *, signature=None, **extra) -> Op:
    return Op(name=name, arity=arity, forward=forward, form=form, grad_fn=grad_fn, torch_vjps=vjps,
              signature=signature, **extra)


# Rows whose results (or grads) depend on which elements torch's vector loop computes, or on
# the tensor's size (gelu's float32 kernel): a batch evaluates them row by row, not stacked.
_BY_LAYOUT = {"layout_dependent": True}


def _dtype_of_input(dtypes, float_dtype, **params):
    """hardtanh's: its input's dtype (an int64 tensor clamped by float bounds stays int64)."""
    first = dtypes[0]
    return first if first is not None and first.kind in "iu" else float_dtype


_ACTIVATIONS: tuple[Op, ...] = (
    _elementwise("leaky_relu", 2, _leaky_relu,
                 lambda sp, x, s: sp.Piecewise((x, x > 0), (s * x, True)), "LeakyReluBackward0",
                 _leaky_relu_vjps, signature=(INPUT, _number("negative_slope", 0.01)),
                 integer_error=no_long("leaky_relu_cpu")),
    _elementwise("elu", 2, lambda x, alpha: _elu_forward(x, alpha),
                 lambda sp, x, alpha: sp.Piecewise((alpha * (sp.exp(x) - 1), x <= 0), (x, True)), "EluBackward0",
                 lambda g, r, x, alpha: {0: _elu_vjps_of(g, x, alpha, 1, 1)},
                 signature=(INPUT, _number("alpha", 1.0)), integer_error=no_long("elu_cpu"), **_BY_LAYOUT),
    # at::selu is elu(self, SELU_ALPHA, SELU_SCALE): its grad_fn is EluBackward0
    _elementwise("selu", 1, lambda x: _elu_forward(x, SELU_ALPHA, SELU_SCALE),
                 lambda sp, x: sp.Rational(repr(SELU_SCALE)) * sp.Piecewise(
                     (sp.Rational(repr(SELU_ALPHA)) * (sp.exp(x) - 1), x <= 0), (x, True)),
                 "EluBackward0",
                 # negcoef = alpha * scale in the tensor's dtype: in float32 the float product
                 # is the double product rounded (checked in tests/test_nn.py)
                 lambda g, r, x: {0: _elu_vjps_of(g, x, SELU_ALPHA * SELU_SCALE, SELU_SCALE, 1)},
                 integer_error=no_long("elu_cpu"), **_BY_LAYOUT),
    _elementwise("celu", 2, _celu_forward,
                 lambda sp, x, alpha: sp.Piecewise((alpha * (sp.exp(x / alpha) - 1), x <= 0), (x, True)),
                 "CeluBackward0", _celu_vjps, signature=(INPUT, _number("alpha", 1.0)),
                 integer_error=no_long("elu_cpu"), **_BY_LAYOUT),
    _elementwise("gelu", 1, _gelu_forward,
                 lambda sp, x: x / 2 * (1 + sp.erf(x / sp.sqrt(2))), "GeluBackward0",
                 lambda g, r, x: _gelu_vjps(g, r, x), lower=_gelu_lowering,
                 signature=(INPUT, Param("approximate", ParamKind.CHOICE, default="none",
                                         choices=("none", "tanh"), keyword_only=True)),
                 integer_error=no_long("GeluKernelImpl"), **_BY_LAYOUT),
    # gelu(x, approximate='tanh'), reached through gelu's lowering
    _elementwise("gelu_tanh", 1, _gelu_tanh_forward,
                 lambda sp, x: x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 10**6) * x**3))),
                 "GeluBackward0", _gelu_tanh_vjps, function=False, internal=True, **_BY_LAYOUT),
    _elementwise("hardtanh", 3, _hardtanh,
                 lambda sp, x, lo, hi: sp.Min(sp.Max(x, lo), hi), "HardtanhBackward0",
                 lambda g, r, x, lo, hi: {0: _hardtanh_grad(g, x, lo, hi)},
                 signature=(INPUT, _number("min_val", -1.0), _number("max_val", 1.0)),
                 result_dtype=_dtype_of_input, **_BY_LAYOUT),
    # at::relu6 is hardtanh(self, 0, 6)
    _elementwise("relu6", 1, lambda x: _clamp_numbers(x, 0.0, 6.0),
                 lambda sp, x: sp.Min(sp.Max(x, 0), 6), "HardtanhBackward0",
                 lambda g, r, x: {0: _hardtanh_grad(g, x, 0, 6)}, result_dtype=_dtype_of_input, **_BY_LAYOUT),
    _elementwise("hardswish", 1, _hardswish,
                 lambda sp, x: x * sp.Min(sp.Max(x + 3, 0), 6) / 6, "HardswishBackward0", _hardswish_vjps,
                 integer_error=no_long("hardswish_cpu"), **_BY_LAYOUT),
    # lowered: the grad_fn named is the lowering's root's
    _elementwise("softsign", 1, lambda x: x / (np.abs(x) + 1),
                 lambda sp, x: x / (sp.Abs(x) + 1), "DivBackward0", None, lower=_softsign_lowering),
    _elementwise("tanhshrink", 1, lambda x: x - LIBM["tanh"](x),
                 lambda sp, x: x - sp.tanh(x), "SubBackward0", None, lower=_tanhshrink_lowering),
    _elementwise("softshrink", 2, _softshrink,
                 lambda sp, x, l: sp.Piecewise((x - l, x > l), (x + l, x < -l), (0, True)), "SoftshrinkBackward0",
                 lambda g, r, x, l: {0: _shrink_grad(g, x, l)},
                 signature=(INPUT, _number("lambd", 0.5)), layout_dependent=True,
                 integer_error=no_long("softshrink_check")),
    _elementwise("hardshrink", 2, _hardshrink,
                 lambda sp, x, l: sp.Piecewise((x, (x > l) | (x < -l)), (0, True)), "HardshrinkBackward0",
                 lambda g, r, x, l: {0: _shrink_grad(g, x, l)},
                 signature=(INPUT, _number("lambd", 0.5)), integer_error=no_long("hardshrink_cpu"), **_BY_LAYOUT),
    _elementwise("threshold", 3, _threshold,
                 lambda sp, x, th, v: sp.Piecewise((v, x <= th), (x, True)), "ThresholdBackward0",
                 # threshold_backward(grad, self, threshold): x <= threshold ? 0 : grad
                 lambda g, r, x, th, v: {0: where(x <= th, 0, g)},
                 signature=(INPUT, Param("threshold", ParamKind.NUMBER), Param("value", ParamKind.NUMBER)),
                 result_dtype=_dtype_of_input),
)


# -- clamp with one bound, clamp_min, clamp_max ----------------------------------------------

def _tie_aware(x, bound, pick_bound, lanes_keep_bound):
    """torch.maximum / minimum of two tensors (clamp with a tensor bound): nan from either,
    and on a tie of 0. and -0. the scalar loop keeps `x`, the vector loop (AVX max/min) the
    bound. `pick_bound`: where the bound wins outright."""
    x, bound = np.asarray(x), np.asarray(bound)
    shape = np.broadcast_shapes(x.shape, bound.shape)
    dtype = np.result_type(x, bound)
    scalar = np.where(pick_bound, bound, x)
    vector = np.where(pick_bound | lanes_keep_bound, bound, x)
    result = np.where(vector_lane_mask(shape, dtype), vector, scalar)
    return np.where(np.isnan(x), x, np.where(np.isnan(bound), bound, result))


def _clamp_min(x, lo):
    """clamp_min: with a number, std::max(a, min) (a nan min fills nan); with a tensor,
    torch.maximum's kernel."""
    if not isinstance(lo, np.ndarray):
        result = np.where(x < lo, lo, x)
        if result.dtype.kind != "f":  # (integers: no nan bound)
            return result
        return np.where(np.isnan(lo), np.asarray(np.nan, dtype=result.dtype), result)
    return _tie_aware(x, lo, x < lo, x == lo)


def _clamp_max(x, hi):
    if not isinstance(hi, np.ndarray):
        result = np.where(hi < x, hi, x)
        if result.dtype.kind != "f":  # (integers: no nan bound)
            return result
        return np.where(np.isnan(hi), np.asarray(np.nan, dtype=result.dtype), result)
    return _tie_aware(x, hi, hi < x, x == hi)


def _clamp_min_vjps(g, r, x, lo):
    # ClampMinBackward0/1: self where(self >= min, grad, 0); min where(self < min, grad, 0)
    return {0: where(x >= lo, g, 0), 1: where(x < lo, g, 0)}


def _clamp_max_vjps(g, r, x, hi):
    # ClampMaxBackward0/1: self where(self <= max, grad, 0); max where(self > max, grad, 0)
    return {0: where(x <= hi, g, 0), 1: where(x > hi, g, 0)}


def _one_bound_lowering(side: str):
    """clamp(x, min=t) with a tensor bound is torch's clamp.Tensor with an undefined max:
    ClampBackward0, whose next_functions hold a None for the missing bound. The internal row
    takes a placeholder there (a wrapped number, which requires no grad: the None edge)."""

    def lower(kinds, shapes, **params):
        if not kinds[1]:
            return None
        missing = _wrapped_number(0.0)
        return ("clamp_min_tensor", (0, 1, missing)) if side == "min" else ("clamp_max_tensor", (0, missing, 1))

    return lower


def _clamp_lower_forward(x, lo, **params):
    return _clamp_min(x, lo)


def _clamp_upper_forward(x, hi, **params):
    return _clamp_max(x, hi)


def _input_is_a_tensor(name: str):
    """torch takes no number as the input of `name` (`torch.clamp_min(2., x)` is a TypeError);
    a number bound stays a number (a Scalar)."""

    def check(kinds: tuple[bool, ...]) -> bool:
        if not kinds[0]:
            raise InputError(f"{name}(): argument 'input' must be a tensor, not a number",
                             hint=f"{name}(x, bound) bounds the tensor x")
        return False

    return check


def _clamp_grad_fn(kinds, **params):
    return "ClampBackward0" if kinds[1] else "ClampBackward1"


_CLAMPS: tuple[Op, ...] = (
    # clamp(x, min) and clamp(x, max=...): one bound (the other None); overloads of the core
    # row clamp(input, min, max), tried after it
    Op("clamp_lower", 2, _clamp_lower_forward, _clamp_grad_fn, form=lambda sp, x, lo: sp.Max(x, lo),
       torch_vjps=lambda g, r, x, lo: {0: where(x >= lo, g, 0)}, lower=_one_bound_lowering("min"),
       call_as="clamp", aliases=("clip",), integers=True,
       signature=(INPUT, Param("min", ParamKind.TENSOR), Param("max", ParamKind.FLOAT, default=None, optional=True))),
    Op("clamp_upper", 2, _clamp_upper_forward, _clamp_grad_fn, form=lambda sp, x, hi: sp.Min(x, hi),
       torch_vjps=lambda g, r, x, hi: {0: where(x <= hi, g, 0)}, lower=_one_bound_lowering("max"),
       call_as="clamp", aliases=("clip",), integers=True,
       signature=(INPUT, Param("min", ParamKind.FLOAT, default=None, optional=True), Param("max", ParamKind.TENSOR))),
    # clamp(x, min=t), clamp(x, max=t): clamp_backward_min_max with one bound undefined; the
    # placeholder operand (the undefined bound's None edge) takes no part
    Op("clamp_min_tensor", 3, lambda x, lo, missing: _clamp_min(x, lo), "ClampBackward0",
       form=lambda sp, x, lo, missing: sp.Max(x, lo),
       torch_vjps=lambda g, r, x, lo, missing: _clamp_min_vjps(g, r, x, lo),
       layout_dependent=True, function=False, internal=True),
    Op("clamp_max_tensor", 3, lambda x, missing, hi: _clamp_max(x, hi), "ClampBackward0",
       form=lambda sp, x, missing, hi: sp.Min(x, hi),
       torch_vjps=lambda g, r, x, missing, hi: {0: where(x <= hi, g, 0), 2: where(x > hi, g, 0)},
       layout_dependent=True, function=False, internal=True),
    Op("clamp_min", 2, _clamp_min, lambda kinds: "ClampMinBackward1" if kinds[1] else "ClampMinBackward0",
       form=lambda sp, x, lo: sp.Max(x, lo), torch_vjps=_clamp_min_vjps, layout_dependent=True,
       tensor_args=_input_is_a_tensor("clamp_min"), signature=(INPUT, Param("min", ParamKind.TENSOR)), integers=True),
    Op("clamp_max", 2, _clamp_max, lambda kinds: "ClampMaxBackward1" if kinds[1] else "ClampMaxBackward0",
       form=lambda sp, x, hi: sp.Min(x, hi), torch_vjps=_clamp_max_vjps, layout_dependent=True,
       tensor_args=_input_is_a_tensor("clamp_max"), signature=(INPUT, Param("max", ParamKind.TENSOR)), integers=True),
)


# -- softmax, log_softmax ------------------------------------------------------------------

def _wrap_dim(ndim: int, dim: int) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise TorchError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def _check_dim(shapes, dim, **params):
    _wrap_dim(len(shapes[0]), dim)


def _integer_softmax_error(kernel: str):
    """torch's message for an integer input: its kernel along the last dim, or the other one."""

    def message(shapes, dim):
        rank = len(shapes[0])
        last = rank == 0 or _wrap_dim(rank, dim) == rank - 1
        return no_long(f"{kernel}_{'lastdim_' if last else ''}kernel_impl")

    return message


def _softmax_forward(x, dim):
    return dim_kernels.softmax(x, dim)


def _log_softmax_forward(x, dim):
    return dim_kernels.log_softmax(x, dim)


def _last(a, d: int) -> np.ndarray:
    """`a` with dim d last (a 0-d tensor as one element)."""
    a = np.asarray(a)
    return np.moveaxis(a.reshape(1) if a.ndim == 0 else a, d, -1)


def _back(a, d: int, shape) -> np.ndarray:
    return np.moveaxis(a, -1, d).reshape(shape)


def _row_sums(values: np.ndarray, last_dim: bool) -> np.ndarray:
    """The sum along the last axis as torch's softmax backward kernels add: the last dim by
    vec::reduce_all (vector lanes, then a shuffle tree), another dim in order from 0."""
    if last_dim:
        lanes = dim_kernels.softmax_lanes(values.dtype)
        tree = values.dtype == np.float32 and dim_kernels.cpu_capability() != "default"
        return dim_kernels.reduce_all_lanes(values, lambda a, b: a + b, lanes, tree)
    total = np.zeros(values.shape[:-1], dtype=values.dtype)
    for i in range(values.shape[-1]):
        total = total + values[..., i]
    return total


def _softmax_vjp(grad, args, result, nums, dim):
    """_softmax_backward_data: grad_input = (grad - sum(grad * output)) * output, along dim."""
    (x,) = args
    shape = np.shape(x)
    d = _wrap_dim(len(shape), dim)
    if np.size(grad) == 0:  # along an empty dim: an empty grad, as torch's
        return (np.zeros(shape, dtype=np.asarray(result).dtype),)
    g, y = _last(grad, d), _last(result, d)
    if nums.exact:
        total = np.sum(g * y, axis=-1, keepdims=True)
        return (_back((g - total) * y, d, shape),)
    with np.errstate(all="ignore"):
        last = len(shape) == 0 or d == len(shape) - 1
        total = _row_sums(np.asarray(g * y), last)[..., None]
        out = (g - total) * y if last else y * (g - total)
    return (_back(out, d, shape),)


def _log_softmax_vjp(grad, args, result, nums, dim):
    """_log_softmax_backward_data: grad_input = grad - exp(output) * sum(grad), along dim."""
    (x,) = args
    shape = np.shape(x)
    d = _wrap_dim(len(shape), dim)
    if np.size(grad) == 0:  # along an empty dim: an empty grad, as torch's
        return (np.zeros(shape, dtype=np.asarray(result).dtype),)
    g, y = _last(grad, d), _last(result, d)
    if nums.exact:
        total = np.sum(g, axis=-1, keepdims=True)
        return (_back(g - nums.call("exp", y) * total, d, shape),)
    with np.errstate(all="ignore"):
        total = _row_sums(np.array(g), len(shape) == 0 or d == len(shape) - 1)[..., None]
        out = g - LIBM["exp"](y) * total
    return (_back(out, d, shape),)


def _softmax_exact(sp, x, dim):
    shape = np.shape(x)
    d = _wrap_dim(len(shape), dim)
    e = np.frompyfunc(sp.exp, 1, 1)(_last(x, d))
    return _back(e / np.sum(e, axis=-1, keepdims=True), d, shape)


def _log_softmax_exact(sp, x, dim):
    shape = np.shape(x)
    d = _wrap_dim(len(shape), dim)
    rows = _last(x, d)
    total = np.sum(np.frompyfunc(sp.exp, 1, 1)(rows), axis=-1, keepdims=True)
    return _back(rows - np.frompyfunc(sp.log, 1, 1)(total), d, shape)


def _softmax_tangent(i, g, dg, args, dargs, r, dr, nums, dim):
    """The tangent of (g - sum(g * y)) * y given those of g and of y."""
    d = _wrap_dim(np.ndim(args[0]), dim)
    shape = np.shape(args[0])
    g, dg, y, dy = (_last(np.broadcast_to(a, shape), d) for a in (g, dg, r, dr))
    total = np.sum(g * y, axis=-1, keepdims=True)
    dtotal = np.sum(dg * y + g * dy, axis=-1, keepdims=True)
    return _back(dy * (g - total) + y * (dg - dtotal), d, shape)


def _log_softmax_tangent(i, g, dg, args, dargs, r, dr, nums, dim):
    """The tangent of g - exp(y) * sum(g) given those of g and of y."""
    d = _wrap_dim(np.ndim(args[0]), dim)
    shape = np.shape(args[0])
    g, dg, y, dy = (_last(np.broadcast_to(a, shape), d) for a in (g, dg, r, dr))
    e = nums.call("exp", y)
    total, dtotal = np.sum(g, axis=-1, keepdims=True), np.sum(dg, axis=-1, keepdims=True)
    return _back(dg - e * dy * total - e * dtotal, d, shape)


def softmax_jvp(args, dargs, result, nums, dim):
    """The tangent of softmax's value: y * (dx - sum(y * dx))."""
    shape = np.shape(args[0])
    d = _wrap_dim(len(shape), dim)
    y, dx = _last(result, d), _last(np.broadcast_to(dargs[0], shape), d)
    return _back(y * (dx - np.sum(y * dx, axis=-1, keepdims=True)), d, shape)


def log_softmax_jvp(args, dargs, result, nums, dim):
    """The tangent of log_softmax's value: dx - sum(softmax * dx)."""
    shape = np.shape(args[0])
    d = _wrap_dim(len(shape), dim)
    y, dx = _last(result, d), _last(np.broadcast_to(dargs[0], shape), d)
    return _back(dx - np.sum(nums.call("exp", y) * dx, axis=-1, keepdims=True), d, shape)


def _softmax_display(sp, exprs, shapes, dim):
    s = sp.Function("softmax")(exprs[0])
    return (s * (1 - s),)


def _log_softmax_display(sp, exprs, shapes, dim):
    return (1 - sp.exp(sp.Function("log_softmax")(exprs[0])),)


_DIM = Param("dim", ParamKind.INT)

_SOFTMAX: tuple[Op, ...] = (
    Op("softmax", 1, _softmax_forward, "SoftmaxBackward0", kind=Kind.LINALG, vjp=_softmax_vjp,
       exact=_softmax_exact, second_order=SecondOrder.STATED, tangent=_softmax_tangent,
       display_partials=_softmax_display, display_value=lambda sp, args, dim: sp.Function("softmax")(*args),
       check=_check_dim, signature=(INPUT, _DIM), integer_error=_integer_softmax_error("softmax")),
    Op("log_softmax", 1, _log_softmax_forward, "LogSoftmaxBackward0", kind=Kind.LINALG, vjp=_log_softmax_vjp,
       exact=_log_softmax_exact, second_order=SecondOrder.STATED, tangent=_log_softmax_tangent,
       display_partials=_log_softmax_display,
       display_value=lambda sp, args, dim: sp.Function("log_softmax")(*args),
       check=_check_dim, signature=(INPUT, _DIM), integer_error=_integer_softmax_error("log_softmax")),
)


# -- F.normalize ---------------------------------------------------------------------------

def _normalize_lowering(kinds, shapes, p=2.0, dim=1):
    """F.normalize: input / input.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(input),
    expand_as(input) being expand(input.shape); norm and expand are rows/reductions.py's and
    rows/shapes.py's."""
    _wrap_dim(len(shapes[0]), dim)
    norm = (("p", p), ("dim", dim), ("keepdim", True))
    denominator = ("clamp_min", (("norm", (0,), norm), 1))
    return ("div", (0, ("expand", (denominator,), (("size", tuple(shapes[0])),))))


_NORMALIZE = Op("normalize", 2, lambda x, eps, **params: x, None, kind=Kind.LINALG, lower=_normalize_lowering,
                signature=(INPUT, Param("p", ParamKind.FLOAT, default=2.0), Param("dim", ParamKind.INT, default=1),
                           _number("eps", 1e-12)))


# -- comparisons, where, masked_fill -------------------------------------------------------

_TORCH_DTYPE = {"float32": "Float", "float64": "Double", "int64": "Long", "bool": "Bool", "object": "Float"}


def _broadcast_check(shapes, **params):
    """torch's infer_size error, as the graph gives it for the elementwise ops."""
    if len(shapes) < 2 or shapes[0] == shapes[1]:
        return
    infer_size(shapes[0], shapes[1])


def _mask_broadcast_check(shapes, **params):
    """masked_fill broadcasts the mask with the input: torch's infer_size names the mask a."""
    if len(shapes) >= 2 and shapes[0] != shapes[1]:
        try:
            infer_size(shapes[1], shapes[0])
        except ShapeError as error:
            error.hint = "the mask must broadcast with the input: sizes must match or be 1, aligned from the right"
            raise


def _bool_result(dtypes, float_dtype, **params):
    return np.dtype(bool)


def _comparison(name: str, symbol: str, compare, aliases: tuple[str, ...]) -> Op:
    def exact(sp, a, b):
        def one(u, v):
            if u is sp.nan or v is sp.nan:
                return symbol == "!="
            return bool(compare(u, v))

        return np.asarray(np.frompyfunc(one, 2, 1)(a, b), dtype=object)

    return Op(name, 2, compare, None, kind=Kind.NONDIFF, function=False, method=True, aliases=aliases,
              result_dtype=_bool_result, check=_broadcast_check, exact=exact)


_COMPARISONS: tuple[Op, ...] = (
    _comparison("lt", "<", np.less, ("less",)),
    _comparison("le", "<=", np.less_equal, ("less_equal",)),
    _comparison("gt", ">", np.greater, ("greater",)),
    _comparison("ge", ">=", np.greater_equal, ("greater_equal",)),
    _comparison("eq", "==", np.equal, ()),
    _comparison("ne", "!=", np.not_equal, ("not_equal",)),
)


_TYPE_META = {"float32": "float", "float64": "double", "int64": "long int", "bool": "bool"}


def _bool_operand(index: int, what: str, message: str, names: dict = _TORCH_DTYPE, then=None):
    """A result_dtype rule (the backends call it with the operands' dtypes, None for a
    number) that refuses an operand that is not a bool tensor, in torch's words; then the
    result's dtype is `then`'s (None: torch's promotion of the other operands, as for `+`:
    where(c, x, 2) of an int64 x is int64)."""

    def dtype(dtypes, float_dtype, **params):
        given = dtypes[index]
        if given is None:
            raise InputError(f"{what} must be a bool tensor, not a number",
                             hint="make one with a comparison, as in x > 0")
        if given != np.dtype(bool) and given != np.dtype(object):
            raise TorchError(message.format(dtype=names.get(str(given), str(given))),
                             hint="make one with a comparison, as in x > 0")
        return None if then is None else then(dtypes, float_dtype)

    return dtype


def _where_forward(condition, input, other):
    return np.where(condition, input, other)


def _piecewise(sp, c, a, b):
    if isinstance(c, (bool, np.bool_)) or c in (sp.true, sp.false):
        return a if bool(c) else b
    return sp.Piecewise((a, sp.Ne(c, 0)), (b, True))


def _masked_fill_forward(x, mask, value):
    return np.where(mask, np.asarray(value, dtype=_dtype_of(x)), x)


_SELECTIONS: tuple[Op, ...] = (
    # where(condition, input, other): WhereBackward0, grads where(c, grad, 0) and where(c, 0, grad)
    Op("where", 3, _where_forward, "WhereBackward0", form=_piecewise,
       torch_vjps=lambda g, r, c, a, b: {1: where(c, g, 0), 2: where(c, 0, g)}, nondifferentiable=(0,),
       # a number is torch's wrapped 0-d tensor: a None edge in its place (where(c, 1., x): None, x)
       tensor_args=True, integers=True,
       result_dtype=_bool_operand(0, "where(): argument 'condition'", "where expected condition to be a boolean "
                                  "tensor, but got a tensor with dtype {dtype}"),
       signature=(Param("condition", ParamKind.TENSOR), INPUT,
                                              Param("other", ParamKind.TENSOR))),
    # x.where(condition, other) is torch.where(condition, x, other): the receiver is the input
    Op("where_method", 3, lambda x, c, y: _where_forward(c, x, y), None, kind=Kind.LINALG, function=False,
       aliases=("where",), internal=True, lower=lambda kinds, shapes: ("where", (1, 0, 2)),
       signature=(INPUT, Param("condition", ParamKind.TENSOR), Param("other", ParamKind.TENSOR))),
    # x.masked_fill(mask, value): MaskedFillBackward0, grad.masked_fill(mask, 0)
    Op("masked_fill", 3, _masked_fill_forward, "MaskedFillBackward0",
       form=lambda sp, x, m, v: _piecewise(sp, m, v, x),
       torch_vjps=lambda g, r, x, m, v: {0: where(m, 0, g)}, nondifferentiable=(1,),
       result_dtype=_bool_operand(1, "masked_fill(): argument 'mask'", "masked_fill_ only supports boolean masks, "
                                  "but got mask with dtype {dtype}", _TYPE_META, then=_dtype_of_input),
       tensor_args=_input_is_a_tensor("masked_fill"), check=_mask_broadcast_check,
       signature=(INPUT, Param("mask", ParamKind.TENSOR), Param("value", ParamKind.NUMBER))),
)


ROWS: tuple[Op, ...] = (*_ACTIVATIONS, _WRAPPED, *_CLAMPS, *_SOFTMAX, _NORMALIZE, *_COMPARISONS, *_SELECTIONS)
