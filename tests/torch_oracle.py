"""The differential tests' oracle: a gradcalc program run in real PyTorch.

The program text is parsed by gradcalc's own parser and the IR is interpreted with torch
operations, never `eval`/`exec`: operators act as Python operators on tensors and Python
floats (so `2 - x` is torch's `RsubBackward1`), numbers stay Python floats, `detach` is
`.detach()`. The result is what the equivalent PyTorch program reports for every name.
"""

from __future__ import annotations

import contextlib
import io
import operator
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from gradcalc.api import parse
from gradcalc.lang import syntax

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class OracleOp:
    """How torch computes one op of gradcalc's table.

    `apply` takes tensors and Python floats exactly as a PyTorch program would pass them;
    ops whose torch function only takes tensors (`torch.maximum(x, 2)` is a TypeError) set
    `tensor_args`, and the oracle wraps a number operand as a 0-d tensor of the program's dtype.
    """

    apply: Callable
    tensor_args: bool = False


def _method(name: str) -> Callable:
    return lambda t: getattr(t, name)()


# Keyed by the op names of `gradcalc.engine.ops.OPS`. Entries for ops the SPEC promises but the
# table does not declare yet are harmless; a declared op without an entry fails a test.
ORACLE_OPS: dict[str, OracleOp] = {
    # operators, as Python evaluates them on tensors and floats
    "add": OracleOp(operator.add),
    "sub": OracleOp(operator.sub),
    "mul": OracleOp(operator.mul),
    "div": OracleOp(operator.truediv),
    "pow": OracleOp(operator.pow),
    "neg": OracleOp(operator.neg),
    "pos": OracleOp(operator.pos),
    "matmul": OracleOp(operator.matmul, tensor_args=True),
    # elementwise functions
    **{name: OracleOp(getattr(torch, name)) for name in (
        "abs", "sign", "sqrt", "rsqrt", "square", "reciprocal", "exp", "expm1", "log", "log1p",
        "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
        "sigmoid", "relu", "erf")},
    "softplus": OracleOp(torch.nn.functional.softplus),
    **{name: OracleOp(getattr(torch.nn.functional, name)) for name in (
        "silu", "mish", "logsigmoid", "hardsigmoid")},
    "maximum": OracleOp(torch.maximum, tensor_args=True),
    "minimum": OracleOp(torch.minimum, tensor_args=True),
    "atan2": OracleOp(torch.atan2, tensor_args=True),
    "clamp": OracleOp(torch.clamp),
    # reductions to a 0-d tensor
    **{name: OracleOp(_method(name)) for name in ("sum", "mean", "prod", "max", "min", "norm")},
    # gradcalc's logsumexp(x) reduces every dim, as torch's needs them named
    "logsumexp": OracleOp(lambda t: t.logsumexp(dim=tuple(range(t.dim())) or 0)),
    # linear algebra
    "dot": OracleOp(torch.dot, tensor_args=True),
    # graph
    "detach": OracleOp(_method("detach")),
    # -- section rows/reductions.py (new entries here)
    "sum_dim": OracleOp(lambda t, dim, keepdim: torch.sum(t, dim, keepdim)),
    "mean_dim": OracleOp(lambda t, dim, keepdim: torch.mean(t, dim, keepdim)),
    "prod_dim": OracleOp(lambda t, dim, keepdim: torch.prod(t, dim, keepdim)),
    "max_dim": OracleOp(lambda t, dim, keepdim: torch.max(t, dim, keepdim).values),
    "max_dim_indices": OracleOp(lambda t, dim, keepdim: torch.max(t, dim, keepdim).indices),
    "max_other": OracleOp(lambda a, b: torch.max(a, b)),
    "min_dim": OracleOp(lambda t, dim, keepdim: torch.min(t, dim, keepdim).values),
    "min_dim_indices": OracleOp(lambda t, dim, keepdim: torch.min(t, dim, keepdim).indices),
    "min_other": OracleOp(lambda a, b: torch.min(a, b)),
    "argmax": OracleOp(lambda t, dim, keepdim: torch.argmax(t, dim, keepdim)),
    "argmin": OracleOp(lambda t, dim, keepdim: torch.argmin(t, dim, keepdim)),
    "amax": OracleOp(lambda t, dim, keepdim: torch.amax(t, dim, keepdim)),
    "amin": OracleOp(lambda t, dim, keepdim: torch.amin(t, dim, keepdim)),
    "logsumexp_dim": OracleOp(lambda t, dim, keepdim: torch.logsumexp(t, dim, keepdim)),
    # norm(x, p=2, dim=None, keepdim=False): torch.norm with a number p (linalg.vector_norm);
    # torch.norm(2.0) fails in Python (AttributeError), raised here as the oracle's Python error
    "norm": OracleOp(lambda t, p, dim, keepdim: torch.norm(t, p, dim, keepdim) if isinstance(t, torch.Tensor)
                     else (_ for _ in ()).throw(_PythonError("torch.norm() of a Python number"))),
    "var": OracleOp(lambda t, dim, correction, keepdim: torch.var(t, dim, correction=correction, keepdim=keepdim)),
    "std": OracleOp(lambda t, dim, correction, keepdim: torch.std(t, dim, correction=correction, keepdim=keepdim)),
    "var_unbiased": OracleOp(lambda t, unbiased: torch.var(t, unbiased)),
    "std_unbiased": OracleOp(lambda t, unbiased: torch.std(t, unbiased)),
    "var_dim_unbiased": OracleOp(lambda t, dim, unbiased, keepdim: torch.var(t, dim, unbiased, keepdim)),
    "std_dim_unbiased": OracleOp(lambda t, dim, unbiased, keepdim: torch.std(t, dim, unbiased, keepdim)),
    "cumsum": OracleOp(lambda t, dim: torch.cumsum(t, dim)),
    "cumprod": OracleOp(lambda t, dim: torch.cumprod(t, dim)),
    # -- section rows/shapes.py and rows/linalg.py (new entries here)
    # a subscript's items as Python writes them: x[0], x[1:3], x[None] alone, else a tuple
    "index": OracleOp(lambda t, index: t[(lambda items: items[0] if len(items) == 1 else items)(
        tuple(slice(i.start, i.stop, i.step) if isinstance(i, syntax.Slice) else i for i in index))]),
    "select": OracleOp(lambda t, dim, index: t.select(dim, index)),
    "unsqueeze": OracleOp(lambda t, dim: t.unsqueeze(dim)),
    "squeeze": OracleOp(lambda t, dim: t.squeeze() if dim is None else t.squeeze(dim)),
    "reshape": OracleOp(lambda t, shape: t.reshape(shape)),
    "view": OracleOp(lambda t, size: t.view(size)),
    "contiguous": OracleOp(lambda t: t.contiguous()),
    "flatten": OracleOp(lambda t, start_dim, end_dim: t.flatten(start_dim, end_dim)),
    "transpose": OracleOp(lambda t, dim0, dim1: t.transpose(dim0, dim1)),
    "t": OracleOp(torch.t),
    "T": OracleOp(lambda t: t.T),
    "mT": OracleOp(lambda t: t.mT),
    "permute": OracleOp(lambda t, dims: t.permute(dims)),
    "expand": OracleOp(lambda t, size: t.expand(size)),
    "repeat": OracleOp(lambda t, repeats: t.repeat(repeats)),
    "cat": OracleOp(lambda *tensors, dim: torch.cat(tensors, dim)),
    "stack": OracleOp(lambda *tensors, dim: torch.stack(tensors, dim)),
    "flip": OracleOp(lambda t, dims: t.flip(dims)),
    "diag": OracleOp(lambda t, diagonal: torch.diag(t, diagonal)),
    "trace": OracleOp(torch.trace),
    "tril": OracleOp(lambda t, diagonal: torch.tril(t, diagonal)),
    "triu": OracleOp(lambda t, diagonal: torch.triu(t, diagonal)),
    "outer": OracleOp(torch.outer, tensor_args=True),
    "mv": OracleOp(torch.mv, tensor_args=True),
    "mm": OracleOp(torch.mm, tensor_args=True),
    "bmm": OracleOp(torch.bmm, tensor_args=True),
    # -- section rows/nn.py (new entries here)
    "where_method": OracleOp(lambda x, c, y: x.where(c, y)),
    "softplus_beta": OracleOp(lambda t, beta, threshold: torch.nn.functional.softplus(t, beta, threshold)),
    "add_alpha": OracleOp(lambda a, b, alpha: torch.add(a, b, alpha=alpha)),
    "sub_alpha": OracleOp(lambda a, b, alpha: torch.sub(a, b, alpha=alpha)),
    "leaky_relu": OracleOp(lambda t, slope: torch.nn.functional.leaky_relu(t, slope)),
    "elu": OracleOp(lambda t, alpha: torch.nn.functional.elu(t, alpha)),
    "selu": OracleOp(torch.selu),
    "celu": OracleOp(lambda t, alpha: torch.nn.functional.celu(t, alpha)),
    "gelu": OracleOp(lambda t, approximate: torch.nn.functional.gelu(t, approximate=approximate)),
    "gelu_tanh": OracleOp(lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
    "hardtanh": OracleOp(lambda t, lo, hi: torch.nn.functional.hardtanh(t, lo, hi)),
    "relu6": OracleOp(torch.nn.functional.relu6),
    "hardswish": OracleOp(torch.nn.functional.hardswish),
    "softsign": OracleOp(torch.nn.functional.softsign),
    "tanhshrink": OracleOp(torch.nn.functional.tanhshrink),
    "softshrink": OracleOp(lambda t, lambd: torch.nn.functional.softshrink(t, lambd)),
    "hardshrink": OracleOp(lambda t, lambd: torch.nn.functional.hardshrink(t, lambd)),
    "threshold": OracleOp(lambda t, threshold, value: torch.nn.functional.threshold(t, threshold, value)),
    "clamp_lower": OracleOp(lambda t, bound, max: torch.clamp(t, min=bound)),
    "clamp_upper": OracleOp(lambda t, bound, min: torch.clamp(t, max=bound)),
    "clamp_min": OracleOp(torch.clamp_min),
    "clamp_max": OracleOp(torch.clamp_max),
    "softmax": OracleOp(lambda t, dim: torch.softmax(t, dim)),
    "log_softmax": OracleOp(lambda t, dim: torch.log_softmax(t, dim)),
    "normalize": OracleOp(lambda t, eps, p, dim: torch.nn.functional.normalize(t, p, dim, eps)),
    "lt": OracleOp(operator.lt),
    "le": OracleOp(operator.le),
    "gt": OracleOp(operator.gt),
    "ge": OracleOp(operator.ge),
    "eq": OracleOp(operator.eq),
    "ne": OracleOp(operator.ne),
    "where": OracleOp(torch.where),
    "masked_fill": OracleOp(lambda t, mask, value: t.masked_fill(mask, value)),
    # -- section rows/losses.py (new entries here)
    # torch.nn.functional's losses also raise ValueError and IndexError (their shape and class
    # checks): the oracle reports these as torch's errors too, message for message.
    **(lambda F, torch_errors: {
        "mse_loss": OracleOp(torch_errors(lambda x, y, reduction: F.mse_loss(x, y, reduction=reduction))),
        "l1_loss": OracleOp(torch_errors(lambda x, y, reduction: F.l1_loss(x, y, reduction=reduction))),
        "smooth_l1_loss": OracleOp(torch_errors(
            lambda x, y, reduction, beta: F.smooth_l1_loss(x, y, reduction=reduction, beta=beta))),
        "huber_loss": OracleOp(torch_errors(
            lambda x, y, reduction, delta: F.huber_loss(x, y, reduction=reduction, delta=delta))),
        "binary_cross_entropy": OracleOp(torch_errors(
            lambda x, y, reduction: F.binary_cross_entropy(x, y, reduction=reduction))),
        "binary_cross_entropy_with_logits": OracleOp(torch_errors(
            lambda x, y, reduction: F.binary_cross_entropy_with_logits(x, y, reduction=reduction))),
        "cross_entropy": OracleOp(torch_errors(lambda x, y, ignore_index, reduction: F.cross_entropy(
            x, y, ignore_index=ignore_index, reduction=reduction))),
        "nll_loss": OracleOp(torch_errors(lambda x, y, ignore_index, reduction: F.nll_loss(
            x, y, ignore_index=ignore_index, reduction=reduction))),
        "kl_div": OracleOp(torch_errors(lambda x, y, reduction, log_target: F.kl_div(
            x, y, reduction=reduction, log_target=log_target))),
    })(torch.nn.functional, type("TorchErrors", (contextlib.ContextDecorator,), {
        "__enter__": lambda self: self,
        "__exit__": lambda self, kind, error, traceback: isinstance(error, (ValueError, IndexError)) and (
            _ for _ in ()).throw(RuntimeError(str(error))),
    })()),
    # -- section rows/constructors.py (new entries here)
    # gradcalc's program numbers reach the oracle as floats: an integral one is an int here
    # (arange(3) is int64), so these entries are written with integer-valued numbers as ints.
    "ones": OracleOp(lambda *, size, requires_grad: torch.ones(size, requires_grad=requires_grad)),
    "zeros": OracleOp(lambda *, size, requires_grad: torch.zeros(size, requires_grad=requires_grad)),
    "full": OracleOp(lambda fill_value, *, size, requires_grad: torch.full(
        size, int(fill_value) if float(fill_value).is_integer() else fill_value, requires_grad=requires_grad)),
    "eye": OracleOp(lambda *, n, m, requires_grad: torch.eye(n, n if m is None else m, requires_grad=requires_grad)),
    "arange": OracleOp(lambda end, *, requires_grad: torch.arange(
        int(end) if float(end).is_integer() else end, requires_grad=requires_grad)),
    "arange_range": OracleOp(lambda start, end, step, *, requires_grad: torch.arange(
        *(int(v) if float(v).is_integer() else v for v in (start, end, step)), requires_grad=requires_grad)),
    "linspace": OracleOp(lambda start, end, *, steps, requires_grad: torch.linspace(
        start, end, steps, requires_grad=requires_grad)),
    "ones_like": OracleOp(lambda t, *, requires_grad: torch.ones_like(t, requires_grad=requires_grad)),
    "zeros_like": OracleOp(lambda t, *, requires_grad: torch.zeros_like(t, requires_grad=requires_grad)),
    "full_like": OracleOp(lambda t, fill_value, *, requires_grad: torch.full_like(
        t, fill_value, requires_grad=requires_grad)),
    "tensor": OracleOp(lambda *, data, requires_grad: torch.tensor(data, requires_grad=requires_grad)),
    "Tensor": OracleOp(lambda *, data: torch.Tensor(data)),
}


@dataclass
class TensorReport:
    """What PyTorch says about one name's final binding."""

    name: str
    is_tensor: bool
    data: np.ndarray | float          # a float for a name bound to a Python number
    grad: np.ndarray | None = None
    requires_grad: bool = False
    is_leaf: bool = True
    grad_fn: str | None = None
    retains_grad: bool = False
    printed: str | None = None           # `print(t.data, t.grad)` without the newline
    # With run_torch(grad_scales=True): the sum of |each contribution| accumulated into the
    # grad, the scale of its rounding error where contributions cancel (see GradScales).
    grad_scale: np.ndarray | None = None
    tensor: torch.Tensor | None = field(default=None, repr=False)


@dataclass
class OracleError:
    """`torch`: a RuntimeError of PyTorch (gradcalc must raise with the same message).
    `python`: the PyTorch program would fail in Python itself (a number where a tensor is
    needed, an unknown name); gradcalc must raise a GradcalcError, its wording is its own."""

    kind: str
    message: str


@dataclass
class OracleResult:
    names: list[str]                          # report order: inputs, then assigned names
    tensors: dict[str, TensorReport]
    error: OracleError | None = None
    stdout: str = ""                          # `--format torch`: the print lines, in order

    def __getitem__(self, name: str) -> TensorReport:
        return self.tensors[name]


class _PythonError(Exception):
    pass


def report_order(program: syntax.Program) -> tuple[list[str], list[str]]:
    """(inputs in order of first appearance, other names in order of their final assignment)."""
    inputs: dict[str, None] = {}
    assigned: dict[str, None] = {}
    for statement in program.statements:
        if isinstance(statement, syntax.RetainGrad):
            reads = [statement.name]
        else:
            reads = [e.id for e in _preorder(statement.value) if isinstance(e, syntax.Name)]
        for name in reads:
            if name not in assigned and name not in inputs:
                inputs[name] = None
        if isinstance(statement, syntax.Assign):
            assigned.pop(statement.target, None)
            assigned[statement.target] = None
    return list(inputs), [n for n in assigned if n not in inputs]


def _preorder(expr: syntax.Expr):
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        if isinstance(e, syntax.Call):
            stack.extend(reversed(e.args))


def run_torch(source: str | syntax.Program, values: dict[str, np.ndarray], *,
              outputs: Sequence[str] = (), seeds: Sequence[np.ndarray | None] = (),
              retain: Sequence[str] = (), no_grad: Sequence[str] = (),
              dtype: str = "float32",
              overrides: dict[str, OracleOp] | None = None,
              grad_scales: bool = False) -> OracleResult:
    """Run the program as the PyTorch program it stands for, then `backward` on each output.

    `overrides` replaces some ops' torch entries (the tests model known gradcalc bugs so);
    `grad_scales` records each grad's `grad_scale`.
    """
    ops = {**ORACLE_OPS, **(overrides or {})}
    program = parse(source) if isinstance(source, str) else source
    tdtype = TORCH_DTYPES[dtype]
    inputs, assigned = report_order(program)
    env: dict[str, object] = {}
    for name in inputs:
        if name not in values:
            raise ValueError(f"the oracle needs a value for input {name!r}")
        t = torch.tensor(np.asarray(values[name], dtype=np.float64), dtype=tdtype)
        env[name] = t.requires_grad_(name not in no_grad)
    error = None
    try:
        _run_statements(program, env, tdtype, ops)
        for name in retain:
            _retain_grad(env, name)
        last = next((s.target for s in reversed(program.statements)
                     if isinstance(s, syntax.Assign)), None)
        outs = list(outputs) or ([last] if last is not None else [])
        if not outs or len(seeds) > len(outs):
            raise _PythonError("no output, or more seeds than outputs")
        padded = list(seeds) + [None] * (len(outs) - len(seeds))
        scales = GradScales() if grad_scales else None
        for name, seed in zip(outs, padded):
            out = env.get(name)
            if not isinstance(out, torch.Tensor):
                raise _PythonError(f"output {name!r} is not a tensor")
            gradient = None if seed is None else torch.tensor(
                np.asarray(seed, dtype=np.float64), dtype=tdtype)
            if scales is not None:
                scales.watch(out, gradient)
            out.backward(gradient, retain_graph=True)
    except (RuntimeError, ValueError, IndexError) as e:  # torch raises all three (x[::-1], x[5])
        error = OracleError("torch", str(e).splitlines()[0] if str(e) else "")
    except _PythonError as e:
        error = OracleError("python", str(e))
    names = inputs + assigned
    tensors = {name: _report(name, env[name]) for name in names if name in env}
    if grad_scales and error is None:
        for report in tensors.values():
            if report.grad is not None:
                report.grad_scale = scales.of(report.tensor)
    stdout = "".join(t.printed + "\n" for t in (tensors[n] for n in names if n in tensors)
                     if t.printed is not None)
    return OracleResult(names, tensors, error, stdout)


class GradScales:
    """For each tensor, the sum of the absolute values of the gradient contributions the
    backward pass accumulates into it (through every consumer, over every backward call).
    Where contributions cancel (`x/x`: g/x - g*(x/x)/x), the grad's rounding error scales with
    this sum, not with the grad itself. Recorded with post-hooks on the autograd graph's nodes."""

    def __init__(self):
        self.sums: dict[object, np.ndarray] = {}
        self.hooked: set = set()
        self.leaf_nodes: dict[int, object] = {}

    def watch(self, out: torch.Tensor, seed: torch.Tensor | None) -> None:
        if seed is not None and seed.shape != out.shape:
            return                               # backward() raises torch's "Mismatch in shape"
        start = out.grad_fn
        if start is None:
            self._add(("leaf", id(out)), torch.ones_like(out) if seed is None else seed)
            return
        self._add(start, torch.ones_like(out) if seed is None else seed)
        stack = [start]
        while stack:
            node = stack.pop()
            if node is None or node in self.hooked:
                continue
            self.hooked.add(node)
            if hasattr(node, "variable"):       # AccumulateGrad: a leaf's
                self.leaf_nodes[id(node.variable)] = node
            node.register_hook(self._hook(node))
            stack.extend(next_fn for next_fn, _ in node.next_functions)

    def _hook(self, node):
        def record(grad_inputs, grad_outputs):
            for (next_fn, _), grad in zip(node.next_functions, grad_inputs):
                if next_fn is not None and grad is not None:
                    self._add(next_fn, grad)
        return record

    def _add(self, key, grad: torch.Tensor) -> None:
        magnitude = np.abs(grad.detach().numpy().astype(np.float64))
        previous = self.sums.get(key)
        if previous is not None and np.shape(previous) != magnitude.shape:
            # A hook sees a grad before the engine sums it back over broadcasting.
            if magnitude.size > np.size(previous):
                magnitude = _sum_to(magnitude, np.shape(previous))
            else:
                previous = _sum_to(np.asarray(previous), magnitude.shape)
        self.sums[key] = (0.0 if previous is None else previous) + magnitude

    def of(self, t: torch.Tensor) -> np.ndarray | None:
        key = self.leaf_nodes.get(id(t)) if t.is_leaf else t.grad_fn
        total = 0.0
        for k in (key, ("leaf", id(t))):
            if k is not None and k in self.sums:
                total = total + self.sums[k]
        return None if np.ndim(total) == 0 and total == 0.0 else np.broadcast_to(total, t.shape)


def _run_statements(program: syntax.Program, env: dict, tdtype: torch.dtype, ops: dict) -> None:
    for statement in program.statements:
        if isinstance(statement, syntax.RetainGrad):
            _retain_grad(env, statement.name)
        else:
            env[statement.target] = _evaluate(statement.value, env, tdtype, ops)


def _retain_grad(env: dict, name: str) -> None:
    t = env.get(name)
    if not isinstance(t, torch.Tensor):
        raise _PythonError(f"{name!r} is not a tensor: it has no retain_grad()")
    t.retain_grad()


def _evaluate(expr: syntax.Expr, env: dict, tdtype: torch.dtype, ops: dict):
    if isinstance(expr, syntax.Number):   # a Python number, as Python reads it: `2` an int, `2.` a float
        text = expr.text
        return int(text) if text != "pi" and not any(c in text for c in ".eE") else float(expr.value)
    if isinstance(expr, syntax.Name):
        if expr.id not in env:
            raise _PythonError(f"name {expr.id!r} is not defined")
        return env[expr.id]
    args = [_evaluate(a, env, tdtype, ops) for a in expr.args]
    op = ops.get(expr.op)
    if op is None:
        raise KeyError(f"torch_oracle has no entry for op {expr.op!r}: add one to ORACLE_OPS")
    params = dict(expr.params)  # static arguments (dim=1, keepdim=True), as keywords
    if args and not params and not any(isinstance(a, torch.Tensor) for a in args):
        return fold(op, args, expr.op)
    if op.tensor_args:
        # (a Python int as torch wraps it: int64, which promotes with a float tensor to its dtype)
        args = [a if isinstance(a, torch.Tensor) else torch.tensor(a) if type(a) is int else torch.tensor(a, dtype=tdtype)
                for a in args]
    try:
        return op.apply(*args, **params)
    except (TypeError, AttributeError) as e:  # a number where torch takes a tensor: Python's error
        raise _PythonError(f"{expr.op}: {e}") from None


_INT_ARITHMETIC = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
                   "neg": lambda a: -a, "pos": lambda a: a, "pow": lambda a, b: a**b}


def fold(op: OracleOp, numbers: Sequence[float], name: str = "") -> float:
    """An op on Python numbers only: Python's int arithmetic where Python keeps ints (`2 * 3`,
    `-0` is 0, `2 ** 3`; not `2 ** -1`), else IEEE double arithmetic, as a float (`1/0` is inf,
    not Python's ZeroDivisionError; `(-8)**(1/3)` is nan, not a complex number)."""
    rule = _INT_ARITHMETIC.get(name)
    if rule is not None and all(type(n) is int for n in numbers) and not (name == "pow" and numbers[1] < 0):
        return rule(*numbers)
    tensors = [torch.tensor(float(n), dtype=torch.float64) for n in numbers]
    return float(op.apply(*tensors))


def _report(name: str, value) -> TensorReport:
    if not isinstance(value, torch.Tensor):
        return TensorReport(name, is_tensor=False, data=float(value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .grad of a non-leaf: None, as torch warns
        grad = value.grad
    printed = None
    if value.is_leaf or value.retains_grad:
        printed = printed_line(value.data, grad)
    return TensorReport(
        name, is_tensor=True, data=value.detach().numpy().copy(),
        grad=None if grad is None else grad.detach().numpy().copy(),
        requires_grad=value.requires_grad, is_leaf=value.is_leaf,
        grad_fn=None if value.grad_fn is None else type(value.grad_fn).__name__,
        retains_grad=value.retains_grad, printed=printed, tensor=value)


def printed_line(*objects) -> str:
    """Exactly what `print(*objects)` writes, without the final newline."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        print(*objects)
    text = buffer.getvalue()
    assert text.endswith("\n")
    return text[:-1]


def torch_repr(array: np.ndarray) -> str:
    """torch's text of a tensor holding `array` (float32 or float64), as `print` shows it."""
    return printed_line(torch.from_numpy(np.array(array)))


def _sum_to(a: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `a` down to a shape it was broadcast from."""
    extra = a.ndim - len(shape)
    if extra > 0:
        a = a.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a
