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

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from gradcalc.engine import rules
from gradcalc.engine.formula import call, const, where
from gradcalc.engine.kernels import LIBM, erf, torch_pow, torch_sign, vector_lanes
from gradcalc.engine.summation import torch_sum


class Kind(str, Enum):
    ELEMENTWISE = "elementwise"  # broadcasting; partials derived from `form`
    REDUCTION = "reduction"      # to a 0-d tensor; hand-written `vjp`
    LINALG = "linalg"            # hand-written `vjp`
    DETACH = "detach"            # a new leaf that requires no grad
    IDENTITY = "identity"        # returns its operand itself, as torch's `+x` does


class SecondOrder(str, Enum):
    """How a non-elementwise row's second derivatives follow from its first (for `--hessian`).
    An elementwise row needs no declaration: its formulas are differentiated node by node."""

    MULTILINEAR = "multilinear"      # linear in each operand alone (sum, mean, dot, mm, reshapes)
    LINEAR_IN_GRAD = "linear in the gradient"  # the rule depends on the operands through masks only (max)
    STATED = "stated"                # the row's `tangent` rule


# grad_fn: a fixed name, or a function of which operands are tensors (True) or numbers.
GradFnName = str | Callable[[tuple[bool, ...]], str]
# A rewrite into other rows by operand kinds (tensor or number) and shapes (None for a
# number): (op name, args) where an arg is an operand index or a nested (op name, args)
# call; None keeps the row as it is.
Lowering = Callable[[tuple[bool, ...], tuple], tuple | None]


@dataclass(frozen=True)
class Op:
    name: str
    arity: int
    forward: Callable[..., np.ndarray]
    grad_fn: GradFnName | None
    kind: Kind = Kind.ELEMENTWISE
    # Elementwise: (sympy, *symbols) -> the op's value as a SymPy expression: its exact forward,
    # its display, and the derivative SymPy takes where `torch_vjps` states none.
    form: Callable | None = None
    # Elementwise: (g, result, *args) -> {arg index: PyTorch's backward formula}, as formula
    # `Term`s, where it differs from grad * SymPy's derivative at edge points (masks, 0**0) or
    # in float rounding (the order of operations). The display keeps SymPy's derivative.
    torch_vjps: Callable | None = None
    # Non-elementwise: (grad, args, result, nums) -> one gradient per argument.
    vjp: Callable | None = None
    # Reductions: (sympy, flat list of exact elements) -> the exact value.
    exact: Callable[[Any, list], Any] | None = None
    # Non-elementwise: how second derivatives follow (and `tangent`, for STATED).
    second_order: SecondOrder | None = None
    tangent: Callable | None = None
    # Non-elementwise: (sympy, arg exprs, arg shapes) -> one display partial per argument,
    # and (sympy, arg exprs) -> the display value (default: a function call `name(args)`).
    display_partials: Callable | None = None
    display_value: Callable | None = None
    # Operand shapes -> None, or a ShapeError worded as torch words it.
    check: Callable | None = None
    # Numbers become 0-d tensors (torch.tensor(2.)) where torch takes tensors only.
    tensor_args: bool | Callable[[tuple[bool, ...]], bool] = False
    # torch's grad_fn keeps a None edge in next_functions for a number operand (`x * 2`).
    number_edges: bool | Callable[[tuple[bool, ...]], bool] = False
    # The forward's result depends on the tensor's layout (torch's vector and scalar loops
    # differ), so rows of a batch are not evaluated stacked.
    layout_dependent: bool = False
    # torch has no derivative of this op's backward (its Hessian is torch's error, not zeros).
    twice_differentiable: bool = True
    # False for operators (`+`, unary `-`, ...) and internal rows: not callable by name.
    function: bool = True
    # An operator callable as a method or with torch's prefix (`x.mul(y)`, `torch.add(x, y)`);
    # and torch's other names for the op, callable so too (`x.clip(0, 1)`, `torch.absolute(x)`).
    method: bool = False
    aliases: tuple[str, ...] = ()
    lower: Lowering | None = None
    # Reached only through another row's lowering (matmul -> mv, mm, ...), never written.
    internal: bool = False

    def grad_fn_name(self, tensor_args: tuple[bool, ...]) -> str | None:
        if callable(self.grad_fn):
            return self.grad_fn(tensor_args)
        return self.grad_fn

    def wants_tensors(self, kinds: tuple[bool, ...]) -> bool:
        return self.tensor_args(kinds) if callable(self.tensor_args) else self.tensor_args

    def keeps_number_edges(self, kinds: tuple[bool, ...]) -> bool:
        return self.number_edges(kinds) if callable(self.number_edges) else self.number_edges


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
    # std::min(std::max(x, lo), hi): a nan x stays nan, and clamp(0., -0., -0.) is 0.
    low = np.where(x < lo, lo, x)
    return np.where(hi < low, hi, low)


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


def _reduction(name, forward, grad_fn, vjp, display, exact, second_order, **extra) -> Op:
    return Op(name=name, arity=1, forward=forward, grad_fn=grad_fn, kind=Kind.REDUCTION, vjp=vjp,
              display_partials=display, exact=exact, second_order=second_order, **extra)


def _linalg(name, forward, grad_fn, vjp, check, **extra) -> Op:
    return Op(name=name, arity=2, forward=forward, grad_fn=grad_fn, kind=Kind.LINALG, vjp=vjp,
              display_partials=rules.other_factor_display, check=check, tensor_args=True,
              second_order=SecondOrder.MULTILINEAR, **extra)


ROWS: tuple[Op, ...] = (
    # operators: derivatives.yaml's formulas, so that plain arithmetic needs no SymPy at run time
    Op("add", 2, np.add, "AddBackward0", form=lambda sp, a, b: a + b, function=False, number_edges=True,
       torch_vjps=lambda g, r, a, b: {0: g, 1: g}, method=True),
    Op("sub", 2, np.subtract, _by_kinds("SubBackward0", "SubBackward0", "RsubBackward1"),
       form=lambda sp, a, b: a - b, function=False, torch_vjps=lambda g, r, a, b: {0: g, 1: -g},
       number_edges=lambda kinds: kinds != (False, True), method=True, aliases=("subtract",)),
    Op("mul", 2, np.multiply, "MulBackward0", form=lambda sp, a, b: a * b, function=False, number_edges=True,
       torch_vjps=lambda g, r, a, b: {0: g * b, 1: g * a}, method=True, aliases=("multiply",)),
    Op("div", 2, np.divide, _by_kinds("DivBackward0", "DivBackward0", "MulBackward0"),
       form=lambda sp, a, b: a / b, function=False, lower=_rdiv_lowering, number_edges=True,
       torch_vjps=lambda g, r, a, b: {0: g / b, 1: -g * ((a / b) / b)}, method=True, aliases=("divide", "true_divide")),
    Op("pow", 2, torch_pow, _by_kinds("PowBackward1", "PowBackward0", "PowBackward2"),
       form=lambda sp, a, b: a**b, torch_vjps=_pow_vjps),
    _unary("neg", np.negative, lambda sp, a: -a, "NegBackward0", function=False,
           torch_vjps=lambda g, r, a: {0: -g}, method=True, aliases=("negative",)),
    _unary("pos", lambda a: a, lambda sp, a: a, None, kind=Kind.IDENTITY, function=False, aliases=("positive",)),
    # elementwise functions
    _unary("abs", np.abs, lambda sp, a: sp.Abs(a), "AbsBackward0", aliases=("absolute",)),
    _unary("sign", torch_sign, lambda sp, a: sp.sign(a), "SignBackward0",
           torch_vjps=lambda g, r, a: {0: 0}),
    _unary("sqrt", np.sqrt, lambda sp, a: sp.sqrt(a), "SqrtBackward0",
           torch_vjps=lambda g, r, a: {0: g / (2 * r)}),
    _unary("rsqrt", lambda a: 1 / np.sqrt(a), lambda sp, a: 1 / sp.sqrt(a), "RsqrtBackward0",
           torch_vjps=lambda g, r, a: {0: -0.5 * g * r**3}),
    # torch.square is pow(x, 2): PowBackward0.
    _unary("square", lambda a: a * a, lambda sp, a: a**2, "PowBackward0",
           torch_vjps=lambda g, r, a: {0: g * (2 * a)}),
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
           "ReluBackward0", torch_vjps=lambda g, r, a: {0: where(r <= 0, 0, g)}),
    _unary("softplus", _softplus, lambda sp, a: sp.log(1 + sp.exp(a)), "SoftplusBackward0",
           torch_vjps=_softplus_vjps),
    _unary("erf", erf, lambda sp, a: sp.erf(a), "ErfBackward0",
           torch_vjps=lambda g, r, a: {0: const("2/sqrt(pi)") * call("exp", -(a**2)) * g}),
    # activations (torch.nn.functional's), each torch's kernel and backward formula
    _unary("silu", _silu, lambda sp, a: a / (1 + sp.exp(-a)), "SiluBackward0", torch_vjps=_silu_vjps),
    _unary("mish", _mish, lambda sp, a: a * sp.tanh(sp.log(1 + sp.exp(a))), "MishBackward0",
           torch_vjps=_mish_vjps),
    _unary("logsigmoid", _logsigmoid, lambda sp, a: -sp.log(1 + sp.exp(-a)), "LogSigmoidBackward0",
           torch_vjps=_logsigmoid_vjps),
    _unary("hardsigmoid", _hardsigmoid, lambda sp, a: sp.Min(sp.Max(a + 3, 0), 6) / 6, "HardsigmoidBackward0",
           torch_vjps=lambda g, r, a: {0: where((a > -3) & (a < 3), g * const("1/6 in float32"), 0)},
           twice_differentiable=False),
    Op("maximum", 2, _maximum, "MaximumBackward0", form=lambda sp, a, b: sp.Max(a, b),
       torch_vjps=_maximum_vjps, tensor_args=True, layout_dependent=True),
    Op("minimum", 2, _minimum, "MinimumBackward0", form=lambda sp, a, b: sp.Min(a, b),
       torch_vjps=_minimum_vjps, tensor_args=True, layout_dependent=True),
    Op("atan2", 2, LIBM["arctan2"], "Atan2Backward0", form=lambda sp, a, b: sp.atan2(a, b),
       torch_vjps=_atan2_vjps, tensor_args=True, aliases=("arctan2",)),
    # Number bounds: ClampBackward1; a tensor bound makes both bounds tensors: ClampBackward0.
    Op("clamp", 3, _clamp,
       lambda kinds: "ClampBackward0" if kinds[1] or kinds[2] else "ClampBackward1",
       form=lambda sp, x, lo, hi: sp.Min(sp.Max(x, lo), hi), torch_vjps=_clamp_vjps,
       tensor_args=lambda kinds: kinds[1] or kinds[2], aliases=("clip",)),
    # reductions
    _reduction("sum", torch_sum, "SumBackward0", rules.sum_vjp, rules.one_display,
               lambda sp, xs: sp.Add(*xs), SecondOrder.MULTILINEAR),
    _reduction("mean", rules.mean_forward, "MeanBackward0", rules.mean_vjp, rules.mean_display,
               lambda sp, xs: sp.Add(*xs) / len(xs) if xs else sp.nan, SecondOrder.MULTILINEAR),
    _reduction("prod", rules.reduce_forward(np.prod), "ProdBackward0", rules.prod_vjp, rules.prod_display,
               lambda sp, xs: sp.Mul(*xs), SecondOrder.STATED, tangent=rules.prod_tangent),
    _reduction("max", rules.reduce_forward(np.max), "MaxBackward1", rules.extremum_vjp,
               rules.extremum_display("max"), lambda sp, xs: sp.Max(*xs), SecondOrder.LINEAR_IN_GRAD,
               check=rules.extremum_check("max")),
    _reduction("min", rules.reduce_forward(np.min), "MinBackward1", rules.extremum_vjp,
               rules.extremum_display("min"), lambda sp, xs: sp.Min(*xs), SecondOrder.LINEAR_IN_GRAD,
               check=rules.extremum_check("min")),
    _reduction("norm", rules.norm_forward, "LinalgVectorNormBackward0", rules.norm_vjp, rules.norm_display,
               lambda sp, xs: sp.sqrt(sp.Add(*(x * x for x in xs))), SecondOrder.STATED,
               tangent=rules.norm_tangent),
    # torch.logsumexp(x, dim) over every dim; no NumPy routine rounds as torch's does.
    _reduction("logsumexp", rules.logsumexp_forward, "LogsumexpBackward0", rules.logsumexp_vjp,
               rules.logsumexp_display, lambda sp, xs: sp.log(sp.Add(*(sp.exp(x) for x in xs))),
               SecondOrder.STATED, tangent=rules.logsumexp_tangent),
    # linear algebra: `@` and matmul dispatch by rank to the rows below it, as torch.matmul does
    Op("matmul", 2, np.matmul, None, kind=Kind.LINALG, tensor_args=True, lower=rules.matmul_lowering),
    _linalg("dot", rules.dot_forward, "DotBackward0", rules.dot_vjp, rules.dot_check),
    _linalg("mv", rules.mv_forward, "MvBackward0", rules.mv_vjp, rules.mv_check, function=False, internal=True),
    _linalg("mm", rules.mm_forward, "MmBackward0", rules.mm_vjp, rules.mm_check, function=False, internal=True),
    _unary("unsqueeze0", lambda a: a[np.newaxis], None, "UnsqueezeBackward0", kind=Kind.LINALG,
           vjp=rules.reshape_vjp, display_partials=rules.one_display, second_order=SecondOrder.MULTILINEAR,
           display_value=rules.identity_value, function=False, internal=True),
    _unary("squeeze0", lambda a: a[0], None, "SqueezeBackward4", kind=Kind.LINALG,
           vjp=rules.reshape_vjp, display_partials=rules.one_display, second_order=SecondOrder.MULTILINEAR,
           display_value=rules.identity_value, function=False, internal=True),
    # graph
    _unary("detach", lambda a: a, None, None, kind=Kind.DETACH),
)

OPS: dict[str, Op] = {row.name: row for row in ROWS}

# What a program may call by name (`exp(x)`, `x.exp()`), for the parser and its hints.
FUNCTIONS: dict[str, Op] = {name: row for name, row in OPS.items() if row.function}
# The language's vocabulary for the parser: each callable name and its arity; and the names
# callable only as a method or with torch's prefix, with the op each calls. These leave their
# names free for the program's tensors (`sub = x - y`, `negative = -x`).
ARITIES: dict[str, int] = {name: row.arity for name, row in FUNCTIONS.items()}
METHODS: dict[str, tuple[str, int]] = {
    **{row.name: (row.name, row.arity) for row in ROWS if row.method},
    **{alias: (row.name, row.arity) for row in ROWS for alias in row.aliases},
}
