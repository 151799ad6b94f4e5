"""Every feature over every row of the op table.

The programs come from `OPS` itself: a row declared in the table is tested by every feature
(`--exact`, `--hessian`, `--jacobian`, `--batch`, `diff`, `graph`, `--explain`) the moment it
is declared. A row a user cannot write (an operator, an internal row) is reached through the
programs that lower to it; `test_every_row_is_reached_by_a_program` fails for a row that no
program reaches, and names it.

Each program is run through the command line (CliRunner: the real parser, op table and
backward pass) and compared with PyTorch running the same program (the program's IR
interpreted with `torch_oracle.ORACLE_OPS`, never `eval`), inside each op's domain and away
from its kinks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest
import torch
from torch_oracle import ORACLE_OPS, run_torch, torch_repr
from typer.testing import CliRunner

from gradcalc.api import evaluate, parse
from gradcalc.cli import app
from gradcalc.engine.graph import build, find_inputs
from gradcalc.engine.ops import OPS, Kind, Op
from gradcalc.lang import syntax

# ---------------------------------------------------------------------------------------
# The programs: one or two per row, inside the row's domain

# Elementwise operands: positive and below 1 (log, sqrt, acos, asin, log1p, reciprocal, pow
# are all defined there), pairwise apart (maximum, minimum take no ties), no two equal.
X = [0.3, 0.55, 0.8]
Y = [0.65, 0.25, 0.45]
Z = [0.9, 0.35, 0.6]
# Rows with a kink at 0 also get a negative operand, away from the kink.
SIGNED = [-0.6, 0.3, 0.8]
A = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]   # 2 x 3
V = [0.4, -1.2]                               # 2: v @ A
# Seeds and the Hessian's weights: exact in float32, of the output's shape.
SEED = [1.0, -0.5, 2.0, 0.25]
WEIGHTS = [0.7, -1.3, 0.4, 1.1]

# Rows written with a symbol, not a name: the operators, as the parser spells them.
OPERATORS = {
    "add": ["x + y"], "sub": ["x - y", "2 - x"], "mul": ["x * y"], "div": ["x / y", "2 / x"],
    "neg": ["-x"], "pos": ["+x"],
}
# Rows whose first program is not `name(x, ...)` over the default operands.
SPECIAL = {
    "abs": [("abs(x)", {"x": SIGNED})],
    "sign": [("sign(x)", {"x": SIGNED})],
    "relu": [("relu(x)", {"x": SIGNED})],
    # number bounds (ClampBackward1): the three regions of clamp at once; tensor bounds
    # (ClampBackward0): x below y, above z, above z
    "clamp": [("clamp(x, 0.4, 0.7)", {"x": X}), ("clamp(x, y, z)", {"x": X, "y": Y, "z": Z})],
    # two tensors (PowBackward1), a number exponent (PowBackward0)
    "pow": [("pow(x, y)", {"x": X, "y": Y}), ("x ** 2", {"x": X})],
    # matmul dispatches by rank: A @ x is mv; v @ A is unsqueeze0, mm, squeeze0; x @ y is dot
    "matmul": [("A @ x", {"A": A, "x": X}), ("v @ A", {"v": V, "A": A})],
    "detach": [("x * detach(x)", {"x": X})],
    # -- section rows/reductions.py (new entries here)
    # along dims: A (2 x 3) has no ties, zeros or ties of |x|, also after the batch's ±0.05
    "sum_dim": [("x.sum(1)", {"x": A}), ("torch.sum(x, (0, -1), keepdim=True)", {"x": A})],
    "mean_dim": [("x.mean(dim=0)", {"x": A}), ("x.mean((0, 1))", {"x": A})],
    "prod_dim": [("x.prod(1)", {"x": A}), ("torch.prod(x, 0, keepdim=True)", {"x": A})],
    "max_dim": [("x.max(1).values", {"x": A}), ("torch.max(x, 0, True).values", {"x": A})],
    "max_dim_indices": [("x.sum(1) * x.max(dim=1).indices", {"x": A})],
    "max_other": [("max(x, y)", {"x": X, "y": Y})],
    "min_dim": [("x.min(-1).values", {"x": A}), ("torch.min(x, dim=0, keepdim=True).values", {"x": A})],
    "min_dim_indices": [("x.sum(0) * x.min(0).indices", {"x": A})],
    "min_other": [("torch.min(x, y)", {"x": X, "y": Y})],
    "argmax": [("x.sum(1) * x.argmax(1)", {"x": A}), ("x * x.argmax()", {"x": A})],
    "argmin": [("x.sum(0) * argmin(x, 0, keepdim=True)", {"x": A})],
    "amax": [("x.amax(1)", {"x": A}), ("x.amax()", {"x": A})],
    "amin": [("torch.amin(x, dim=0, keepdim=True)", {"x": A})],
    "logsumexp_dim": [("x.logsumexp(1)", {"x": A}), ("torch.logsumexp(x, (0, 1), keepdim=True)", {"x": A})],
    "norm": [("norm(x)", {"x": X}), ("x.norm(dim=1)", {"x": A}), ("x.norm(1, 1)", {"x": A}),
             ("x.norm(3, 0, True)", {"x": A}), ("x.norm(1.5, 1)", {"x": A}), ("x.norm(0.5, 1)", {"x": A}),
             ("x.norm(1e400, 1)", {"x": A})],
    "var": [("x.var(1)", {"x": A}), ("x.var(correction=0)", {"x": A})],
    "std": [("x.std(0, keepdim=True)", {"x": A}), ("torch.std(x)", {"x": A})],
    "var_unbiased": [("x.var(False)", {"x": A})],
    "std_unbiased": [("x.std(True)", {"x": A})],
    "var_dim_unbiased": [("x.var(1, False, True)", {"x": A})],
    "std_dim_unbiased": [("x.std(0, unbiased=True)", {"x": A})],
    "cumsum": [("x.cumsum(1)", {"x": A}), ("torch.cumsum(x, dim=0)", {"x": A})],
    "cumprod": [("x.cumprod(1)", {"x": A}), ("torch.cumprod(x, 0)", {"x": A})],
    # -- section rows/shapes.py and rows/linalg.py (new entries here)
    # subscripts lower into torch's chain: select, slice, unsqueeze; nothing taken is an alias
    "index": [("x[0]", {"x": X}), ("A[:, 1]", {"A": A}), ("x[::2]", {"x": X}), ("A[None, 1:, ::2]", {"A": A}),
              ("A[:, :]", {"A": A}), ("x[1:].sum() + x[0] * A[:, 1].mean()", {"x": X, "A": A})],
    "select": [("A.select(1, -1)", {"A": A})],
    "unsqueeze": [("A.unsqueeze(0)", {"A": A}), ("torch.unsqueeze(x, -1)", {"x": X})],
    "squeeze": [("x[None].squeeze()", {"x": X}), ("A[:1].squeeze(0)", {"A": A}), ("x[None].squeeze((0, 1))", {"x": X})],
    "reshape": [("A.reshape(3, 2)", {"A": A}), ("torch.reshape(A, (-1,))", {"A": A})],
    "view": [("A.view(-1, 2)", {"A": A})],
    "contiguous": [("A.contiguous() * 2", {"A": A})],
    "flatten": [("A.flatten()", {"A": A}), ("x.flatten() * 2", {"x": X})],
    "transpose": [("A.transpose(0, 1)", {"A": A})],
    "t": [("A.t()", {"A": A})],
    "T": [("A.T", {"A": A}), ("A.T @ v", {"A": A, "v": V})],
    "mT": [("A.mT", {"A": A})],
    "permute": [("A[None].permute(0, 2, 1)", {"A": A}), ("A.permute(-1, 0)", {"A": A})],
    "expand": [("x.expand(2, 3)", {"x": X})],
    "repeat": [("A.repeat(2, 1)", {"A": A})],
    "cat": [("cat([x, 2 * x])", {"x": X}), ("torch.cat([A, A.flip(1)], 1)", {"A": A})],
    "stack": [("stack([x, 2 * x])", {"x": X}), ("torch.stack([x, x * x], -1)", {"x": X})],
    "flip": [("A.flip(0, 1)", {"A": A})],
    "diag": [("diag(x)", {"x": X}), ("diag(A, 1)", {"A": A})],
    "trace": [("trace(A)", {"A": A})],
    "tril": [("A.tril()", {"A": A})],
    "triu": [("torch.triu(A, 1)", {"A": A})],
    "outer": [("outer(x, v)", {"x": X, "v": V})],
    "mv": [("mv(A, x)", {"A": A, "x": X})],
    "mm": [("mm(A, A.t())", {"A": A})],
    # matmul of any rank: a batch of matrices (bmm over expanded views), a 2-D @ 3-D product
    # folded into one mm (UnsafeViewBackward0, CloneBackward0), a batch of one
    # (ReshapeAliasBackward0), a vector @ batch; inputs and printed results at most 2-D or
    # of a leading 1 (the printouts' helpers read no blank lines)
    "bmm": [
        ("bmm(A[None], n[:3][None])",
         {"A": A, "n": [[0.4, -1.2], [0.9, 0.35], [0.6, -0.45], [1.1, 0.2], [-0.3, 0.75], [0.5, 1.5]]}),
        ("(A.reshape(2, 1, 3) @ n.reshape(2, 3, 2)).flatten(1)",
         {"A": A, "n": [[0.4, -1.2], [0.9, 0.35], [0.6, -0.45], [1.1, 0.2], [-0.3, 0.75], [0.5, 1.5]]}),
        ("(A @ n.reshape(2, 3, 2)).flatten(0, 1)",
         {"A": A, "n": [[0.4, -1.2], [0.9, 0.35], [0.6, -0.45], [1.1, 0.2], [-0.3, 0.75], [0.5, 1.5]]}),
        ("A @ n.reshape(2, 3, 2)[:1]",
         {"A": A, "n": [[0.4, -1.2], [0.9, 0.35], [0.6, -0.45], [1.1, 0.2], [-0.3, 0.75], [0.5, 1.5]]}),
        ("x @ n.reshape(2, 3, 2) + A.reshape(2, 1, 3) @ x",
         {"x": X, "A": A, "n": [[0.4, -1.2], [0.9, 0.35], [0.6, -0.45], [1.1, 0.2], [-0.3, 0.75], [0.5, 1.5]]})],
    # -- section rows/nn.py (new entries here)
    "where_method": [("x.where(x > 0.5, z)", {"x": X, "z": Z})],
    # activations with their number parameters, each side of their kinks (none at a kink)
    "leaky_relu": [("leaky_relu(x)", {"x": SIGNED}), ("F.leaky_relu(x, negative_slope=0.2)", {"x": SIGNED})],
    "elu": [("elu(x)", {"x": SIGNED}), ("elu(x, 0.5)", {"x": SIGNED})],
    "selu": [("selu(x)", {"x": SIGNED})],
    "celu": [("celu(x, 0.7)", {"x": SIGNED})],
    # gelu(x, approximate='tanh') is the internal row gelu_tanh
    "gelu": [("gelu(x)", {"x": SIGNED}), ("gelu(x, approximate='tanh')", {"x": SIGNED})],
    "hardtanh": [("hardtanh(x, -0.5, 0.5)", {"x": SIGNED})],
    "relu6": [("relu6(x * 10)", {"x": SIGNED})],
    "hardswish": [("hardswish(x * 6)", {"x": SIGNED})],
    # lowered: div(x, add(abs(x), 1)) with the 1 a wrapped number (row scalar_tensor); sub(x, tanh(x))
    "softsign": [("softsign(x)", {"x": SIGNED})],
    "tanhshrink": [("tanhshrink(x)", {"x": SIGNED})],
    "softshrink": [("softshrink(x, 0.4)", {"x": SIGNED})],
    "hardshrink": [("hardshrink(x, 0.4)", {"x": SIGNED})],
    "threshold": [("threshold(x, 0.5, -1.)", {"x": SIGNED})],
    "softplus_beta": [("softplus(x, 2, 1)", {"x": SIGNED})],
    "add_alpha": [("x.add(y, alpha=2)", {"x": X, "y": Y}), ("x.add(2, alpha=3)", {"x": X})],
    "sub_alpha": [("torch.sub(x, y, alpha=0.5)", {"x": X, "y": Y}), ("x.sub(1.5, alpha=2)", {"x": X})],
    # one bound: a number (ClampBackward1), a tensor (ClampBackward0, lowered to clamp with a
    # wrapped inf for the other bound)
    "clamp_lower": [("x.clamp(min=0.5)", {"x": X}), ("x.clamp(min=y)", {"x": X, "y": Y})],
    "clamp_upper": [("x.clamp(max=0.5)", {"x": X}), ("clamp(x, None, y)", {"x": X, "y": Y})],
    "clamp_min": [("x.clamp_min(0.5)", {"x": X}), ("torch.clamp_min(x, y)", {"x": X, "y": Y})],
    "clamp_max": [("x.clamp_max(0.5)", {"x": X}), ("torch.clamp_max(x, y)", {"x": X, "y": Y})],
    "softmax": [("softmax(A, dim=1)", {"A": A}), ("A.softmax(0)", {"A": A})],
    "log_softmax": [("log_softmax(A, 1)", {"A": A}), ("F.log_softmax(A, dim=0)", {"A": A})],
    "normalize": [("normalize(A)", {"A": A}), ("F.normalize(x, dim=0)", {"x": SIGNED})],
    # comparisons give bool tensors, which require no grad: each chooses between tensors
    "lt": [("where(x < y, x, y)", {"x": X, "y": Y})],
    "le": [("where(x <= 0.5, x, y)", {"x": X, "y": Y})],
    "gt": [("where(x > y, x, y)", {"x": X, "y": Y})],
    "ge": [("where(x >= 0.5, x, 2 * x)", {"x": X})],
    "eq": [("where(x == y, x, y)", {"x": X, "y": Y})],
    "ne": [("where(x != 0.55, x, y)", {"x": X, "y": Y})],
    "where": [("where(x > 0.5, x, y)", {"x": X, "y": Y}), ("torch.where(x > 0.5, x, 0.)", {"x": X})],
    "masked_fill": [("x.masked_fill(x > 0.5, 2.)", {"x": X})],
    # -- section rows/losses.py (new entries here)
    # mean and sum are the loss's own row; 'none' its internal row; a target of another shape is
    # expanded (ExpandBackward0); smooth_l1 thresholds away from every |x - y|
    "mse_loss": [("mse_loss(x, y)", {"x": X, "y": Y}), ("F.mse_loss(A, z, reduction='none')", {"A": A, "z": Z})],
    "l1_loss": [("l1_loss(x, y, reduction='sum')", {"x": X, "y": Y}),
                ("l1_loss(A, z, reduction='none')", {"A": A, "z": Z})],
    "smooth_l1_loss": [("smooth_l1_loss(x, y, beta=0.32)", {"x": X, "y": Y}),
                       ("smooth_l1_loss(A, z, reduction='none')", {"A": A, "z": Z}),
                       ("smooth_l1_loss(x, y, reduction='sum', beta=0.0)", {"x": X, "y": Y})],
    "huber_loss": [("huber_loss(x, y, 'sum', 0.32)", {"x": X, "y": Y}),
                   ("huber_loss(A, z, reduction='none')", {"A": A, "z": Z})],
    "binary_cross_entropy": [("binary_cross_entropy(x, y)", {"x": X, "y": Y}),
                             ("binary_cross_entropy(x, z, reduction='none')", {"x": X, "z": Z})],
    "binary_cross_entropy_with_logits": [
        ("binary_cross_entropy_with_logits(s, y)", {"s": SIGNED, "y": Y}),
        ("binary_cross_entropy_with_logits(A, B, reduction='none')", {"A": A, "B": [X, Z]})],
    # probability targets (log_softmax, mul, sum, neg, div); class indices (nll_loss over log_softmax)
    "cross_entropy": [("cross_entropy(A, B)", {"A": A, "B": [X, Z]}),
                      ("cross_entropy(A, B, reduction='none')", {"A": A, "B": [X, Z]}),
                      ("cross_entropy(x, y, reduction='sum')", {"x": X, "y": Y}),
                      ("cross_entropy(A, tensor([2, 0]))", {"A": A})],
    "nll_loss": [("nll_loss(A, tensor([2, 0]), reduction='sum')", {"A": A}),
                 ("nll_loss(A, tensor([1, 2]), reduction='none')", {"A": A}),
                 ("nll_loss(x, tensor(1))", {"x": X})],
    "kl_div": [("kl_div(x, y)", {"x": X, "y": Y}), ("kl_div(A, z, reduction='none')", {"A": A, "z": Z}),
               ("kl_div(A, B, reduction='batchmean', log_target=True)", {"A": A, "B": [SIGNED, Y]})],
    # -- section rows/constructors.py (new entries here)
    # constructors: values exact in float32, elementwise with x (the oracle makes them in
    # torch's default float32, which x of float64 promotes), an int64 arange times a float
    # tensor (a constant that requires grad is tests/test_constructors.py's: torch_graph here
    # names the leaves of inputs only)
    "ones": [("x * ones(3)", {"x": X}), ("(x * ones(2, 3)).sum()", {"x": X})],
    "zeros": [("x + zeros(3)", {"x": X})],
    "full": [("x * full((3,), 2.5)", {"x": X}), ("x * full((3,), 2)", {"x": X})],
    "eye": [("x * eye(3)", {"x": X}), ("x * eye(2, 3)", {"x": X})],
    "arange": [("x * arange(3)", {"x": X}), ("x * arange(3.)", {"x": X})],
    "arange_range": [("x * arange(1, 4)", {"x": X}), ("x * arange(0.5, 2, 0.5)", {"x": X}),
                     ("x + arange(3, 0, -1) / 2", {"x": X})],
    "linspace": [("x * linspace(-1, 1, 3)", {"x": X})],
    "ones_like": [("x * ones_like(x)", {"x": X})],
    "zeros_like": [("x + zeros_like(x)", {"x": X})],
    "full_like": [("x * full_like(x, 0.5)", {"x": X})],
    "tensor": [("x * tensor([1., -2., 0.5])", {"x": X}), ("x * tensor([1, 2, 3])", {"x": X}),
               ("(x * tensor(2.5)).sum()", {"x": X})],
    "Tensor": [("x * torch.Tensor([1, 2, 3])", {"x": X})],
}


@dataclass
class Program:
    row: str                       # the row this program is written for
    expr: str                      # the right-hand side of `b = ...`
    values: dict[str, list]
    out_shape: tuple = field(default=())
    error: str | None = None       # the program could not even be run (no oracle entry, ...)

    @property
    def source(self) -> str:
        return f"b = {self.expr}"

    @property
    def id(self) -> str:
        return f"{self.row}:{self.expr}"

    @property
    def scalar(self) -> bool:
        return self.out_shape == ()

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}

    def seed(self) -> np.ndarray | None:
        return None if self.scalar else np.resize(np.array(SEED), self.out_shape)

    def value_args(self) -> list[str]:
        args = []
        for name, value in self.values.items():
            args += ["--var", f"{name}={value_text(value)}"]
        return args

    def seed_args(self) -> list[str]:
        return [] if self.scalar else ["--seed", value_text(self.seed())]

    def hessian_program(self) -> tuple[str, dict[str, np.ndarray]]:
        """A scalar program built from the op: the op itself when it is scalar, else
        `(op * w).sum()` with a fixed weight `w` that requires no grad."""
        if self.scalar:
            return self.source, self.arrays()
        weights = np.resize(np.array(WEIGHTS), self.out_shape)
        return f"b = (({self.expr}) * w).sum()", {**self.arrays(), "w": weights}


def value_text(value) -> str:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return repr(float(array))
    return "[" + ",".join(value_text(v) for v in array) + "]"


def _default_program(row: Op) -> list[tuple[str, dict]]:
    """`name(x, ...)` for a row callable by name, with operands its kind takes."""
    names = ["x", "y", "z"][: row.arity]
    call = f"{row.name}({', '.join(names)})"
    if row.kind is Kind.ELEMENTWISE:
        return [(call, dict(zip(names, [X, Y, Z])))]
    if row.kind is Kind.REDUCTION:  # a 1-d operand of length 3, max not at the end
        return [(call, {"x": [0.3, 0.8, 0.55]})]
    if row.kind is Kind.LINALG:     # vectors of length 3 (dot); other shapes go in SPECIAL
        return [(call, dict(zip(names, [X, Y])))]
    return []


def internal(row: Op) -> bool:
    """Reached only through another row's lowering (matmul -> mv, mm, ...), never written."""
    return getattr(row, "internal", not row.function and row.name not in OPERATORS)


def programs_for(row: Op) -> list[Program]:
    if row.name in SPECIAL:          # (an internal row's own programs: a part of a tuple result)
        specs = SPECIAL[row.name]
    elif internal(row):
        return []                    # reached through the rows that lower to it
    elif row.name in OPERATORS:
        specs = [(expr, {k: v for k, v in {"x": X, "y": Y}.items() if re.search(rf"\b{k}\b", expr)})
                 for expr in OPERATORS[row.name]]
    elif row.function:
        specs = _default_program(row)
    else:
        specs = []                   # an operator without a spelling: the coverage test fails
    programs = []
    for expr, values in specs:
        p = Program(row.name, expr, values)
        try:
            p.out_shape = tuple(torch_run(p.source, p.arrays(), "float64").shape)
        except Exception as e:  # each test of the program fails with it, the others run
            p.error = f"{p.source} in torch: {type(e).__name__}: {e}"
        programs.append(p)
    return programs


# ---------------------------------------------------------------------------------------
# The oracle: the same program in PyTorch


def torch_function(source: str):
    """The program as a function of its inputs (in order of first appearance) to the last
    assigned tensor: gradcalc's IR interpreted with torch_oracle's ops, never `eval`."""
    program = parse(source)
    inputs = find_inputs(program)

    def evaluate_expr(expr, env, dtype):
        if isinstance(expr, syntax.Number):
            return float(expr.value)
        if isinstance(expr, syntax.Name):
            return env[expr.id]
        args = [evaluate_expr(a, env, dtype) for a in expr.args]
        if expr.op not in ORACLE_OPS:
            raise KeyError(f"tests/torch_oracle.py has no ORACLE_OPS entry for row {expr.op!r}")
        op = ORACLE_OPS[expr.op]
        if op.tensor_args:
            args = [a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=dtype) for a in args]
        return op.apply(*args, **dict(expr.params))

    def fn(*tensors):
        env = dict(zip(inputs, tensors))
        last = None
        for statement in program.statements:
            if isinstance(statement, syntax.Assign):
                env[statement.target] = evaluate_expr(statement.value, env, tensors[0].dtype)
                last = statement.target
        return env[last]

    return fn, inputs


def torch_run(source: str, values: dict[str, np.ndarray], dtype: str, requires_grad=None):
    fn, inputs = torch_function(source)
    tdtype = {"float32": torch.float32, "float64": torch.float64}[dtype]
    tensors = [torch.tensor(values[n], dtype=tdtype).requires_grad_(
        requires_grad is None or n in requires_grad) for n in inputs]
    return fn(*tensors)


def torch_graph(source: str, values: dict[str, np.ndarray]) -> tuple[str, set[str], set[str]]:
    """(root grad_fn name, every node's name, the names of the leaves at AccumulateGrad)."""
    fn, inputs = torch_function(source)
    tensors = [torch.tensor(values[n], dtype=torch.float32).requires_grad_() for n in inputs]
    out = fn(*tensors)
    by_id = {id(t): n for n, t in zip(inputs, tensors)}
    if out.grad_fn is None:
        return "AccumulateGrad", {"AccumulateGrad"}, {by_id[id(out)]}
    seen, stack, kinds, leaves = {out.grad_fn}, [out.grad_fn], set(), set()
    while stack:
        fn_ = stack.pop()
        kinds.add(type(fn_).__name__)
        if hasattr(fn_, "variable"):
            leaves.add(by_id[id(fn_.variable)])
        for child, _ in fn_.next_functions:
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return type(out.grad_fn).__name__, kinds, leaves


# ---------------------------------------------------------------------------------------
# The programs, collected from the table

@cache
def all_programs() -> tuple[Program, ...]:
    return tuple(p for row in OPS.values() for p in programs_for(row))


PROGRAMS = all_programs()
IDS = [p.id for p in PROGRAMS]


def runnable(p: Program) -> None:
    assert p.error is None, p.error


def run(args, input=None):
    return CliRunner().invoke(app, args, input=input)


def ok(result):
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr,
                                   result.exception)
    return result


def test_every_row_is_reached_by_a_program():
    """Every row of OPS is written in some program (a function by its name, an operator by
    its symbol) or is an op of some program's graph (an internal row, through a lowering)."""
    reached: dict[str, list[str]] = {}
    for p in PROGRAMS:
        program = parse(p.source)
        for statement in program.statements:
            if isinstance(statement, syntax.Assign):
                for op in _calls(statement.value):
                    reached.setdefault(op, []).append(p.id)
        for node in build(program, p.arrays()).nodes:
            if node.op is not None:
                reached.setdefault(node.op.name, []).append(p.id)
    missing = sorted(set(OPS) - set(reached))
    assert not missing, (f"rows no program of tests/test_every_row.py reaches: {missing}; "
                         "add a spelling to OPERATORS or a program to SPECIAL")
    written = {p.row for p in PROGRAMS}
    unwritten = sorted(n for n, r in OPS.items() if not internal(r) and n not in written)
    assert not unwritten, f"rows without a program of their own: {unwritten}"
    lowered = {node.op.name for p in PROGRAMS for node in build(parse(p.source), p.arrays()).nodes
               if node.op is not None}
    # (an internal row a program writes itself, x.where(c, y), is reached by its own program)
    unreached = sorted(n for n, r in OPS.items() if internal(r) and n not in lowered and n not in SPECIAL)
    assert not unreached, f"internal rows no lowering reaches: {unreached}"


def _calls(expr) -> list[str]:
    if not isinstance(expr, syntax.Call):
        return []
    return [expr.op] + [op for a in expr.args for op in _calls(a)]


# ---------------------------------------------------------------------------------------
# --jacobian


@pytest.mark.parametrize("p", PROGRAMS, ids=IDS)
def test_jacobian_matches_torch(p: Program):
    runnable(p)
    result = ok(run(["eval", p.source, *p.value_args(), "--jacobian", "--format", "json",
                     "--dtype", "float64"]))
    doc = json.loads(result.stdout)
    fn, inputs = torch_function(p.source)
    arrays = p.arrays()
    want = torch.autograd.functional.jacobian(
        fn, tuple(torch.tensor(arrays[n], dtype=torch.float64) for n in inputs))
    assert list(doc["jacobian"]) == inputs
    for name, j in zip(inputs, want):
        np.testing.assert_allclose(np.asarray(doc["jacobian"][name], dtype=np.float64), j.numpy(),
                                   rtol=1e-6, atol=1e-12, err_msg=f"d{p.source}/d{name}")


# ---------------------------------------------------------------------------------------
# --hessian


@pytest.mark.parametrize("p", PROGRAMS, ids=IDS)
def test_hessian_matches_torch(p: Program):
    runnable(p)
    source, arrays = p.hessian_program()
    args = ["eval", source, "--hessian", "--format", "json", "--dtype", "float64"]
    for name, value in arrays.items():
        args += ["--var", f"{name}={value_text(value)}"]
    if "w" in arrays:
        args += ["--no-grad", "w"]
    result = run(args)
    fn, inputs = torch_function(source)
    grad_inputs = [n for n in inputs if n != "w"]
    constants = {n: torch.tensor(arrays[n], dtype=torch.float64) for n in inputs if n == "w"}

    def scalar(*tensors):
        env = {**dict(zip(grad_inputs, tensors)), **constants}
        return fn(*(env[n] for n in inputs))

    try:
        want = torch.autograd.functional.hessian(
            scalar, tuple(torch.tensor(arrays[n], dtype=torch.float64) for n in grad_inputs))
    except RuntimeError as e:  # torch has no second derivative of this op: gradcalc says so too
        assert result.exit_code == 2 and result.stderr.startswith(f"error: {e}"), (result.stderr, str(e))
        return
    doc = json.loads(ok(result).stdout)
    assert list(doc["hessian"]) == grad_inputs
    for i, a in enumerate(grad_inputs):
        for j, b in enumerate(grad_inputs):
            np.testing.assert_allclose(np.asarray(doc["hessian"][a][b], dtype=np.float64),
                                       want[i][j].numpy(), rtol=1e-6, atol=1e-12,
                                       err_msg=f"{source}: d2/d{a}d{b}")


# ---------------------------------------------------------------------------------------
# --exact

TENSOR_TEXT = re.compile(r"tensor\((.*)\)", re.DOTALL)


def split_printed(line: str) -> list[str]:
    """`print(t.data, t.grad)`'s line as its two objects: tensor texts, or None."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(line):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            assert depth >= 0, f"unbalanced parentheses in {line!r}"
        elif c == " " and depth == 0:
            parts.append(line[start:i])
            start = i + 1
    parts.append(line[start:])
    assert depth == 0, f"unbalanced parentheses in {line!r}"
    return parts


def exact_elements(text: str, shape: tuple) -> list[str]:
    """The element texts of an exact `tensor(...)`, its nesting checked against `shape`."""
    m = TENSOR_TEXT.fullmatch(text)
    assert m, f"not a tensor(...) text: {text!r}"
    body = m.group(1)
    if not shape:
        assert not body.startswith("["), text
        return [body]

    def nested(s: str, dims: tuple) -> list[str]:
        s = s.strip()
        assert s.startswith("[") and s.endswith("]"), f"{s!r} in {text!r}"
        inner, items, depth, start = s[1:-1], [], 0, 0
        for i, c in enumerate(inner):
            if c in "[(":
                depth += 1
            elif c in "])":
                depth -= 1
            if c == "," and depth == 0:
                items.append(inner[start:i])
                start = i + 1
        items.append(inner[start:])
        assert len(items) == dims[0], f"{len(items)} items for a dimension of {dims[0]}: {text!r}"
        if len(dims) == 1:
            return [item.strip() for item in items]
        return [e for item in items for e in nested(item, dims[1:])]

    return nested(body, shape)


def printed_lines(stdout: str) -> list[str]:
    """`--format torch`'s print lines, an n-d tensor's continuation lines joined to theirs."""
    lines: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(" ") and lines:
            lines[-1] += "\n" + line
        else:
            lines.append(line)
    return lines


@pytest.mark.parametrize("p", PROGRAMS, ids=IDS)
def test_exact_agrees_with_float64(p: Program):
    runnable(p)
    seeds = [] if p.scalar else [p.seed()]
    exact = evaluate(p.source, p.arrays(), seeds=seeds, dtype="exact").graph
    floats = evaluate(p.source, p.arrays(), seeds=seeds, dtype="float64").graph
    oracle = run_torch(p.source, p.arrays(), seeds=seeds, dtype="float64")
    assert oracle.error is None, oracle.error
    for name in floats.names:
        e, f = exact.bindings[name], floats.bindings[name]
        for what in ("value", "grad"):
            got, want = getattr(e, what), getattr(f, what)
            assert (got is None) == (want is None), f"{name}.{what}"
            if want is None:
                continue
            got = np.array([float(v) for v in np.asarray(got).ravel()]).reshape(np.shape(want))
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300, err_msg=f"{name}.{what}")
            torch_value = oracle[name].data if what == "value" else oracle[name].grad
            np.testing.assert_allclose(got, torch_value, rtol=1e-12, atol=1e-300,
                                       err_msg=f"{name}.{what} against torch")
    # the printout: torch's lines, each `tensor(...)` with an element per element
    args = ["eval", p.source, *p.value_args(), *p.seed_args(), "--exact", "--format", "torch"]
    lines = printed_lines(ok(run(args)).stdout)
    printed = [n for n in exact.names if exact.bindings[n].is_leaf or exact.bindings[n].retains_grad]
    assert len(lines) == len(printed), lines
    for name, line in zip(printed, lines):
        binding = exact.bindings[name]
        data, grad = split_printed(line)
        want_data = [str(v) for v in np.asarray(binding.value).ravel()]
        assert exact_elements(data, binding.shape) == want_data, (name, line)
        if binding.grad is None:
            assert grad == "None", (name, line)
        else:
            want_grad = [str(v) for v in np.asarray(binding.grad).ravel()]
            assert exact_elements(grad, binding.shape) == want_grad, (name, line)


# ---------------------------------------------------------------------------------------
# --batch


def batch_rows(p: Program) -> list[dict[str, np.ndarray]]:
    """The program's values and two neighbours (each element moved by ±0.05: still inside
    every domain above, on the same side of every kink and tie)."""
    base = p.arrays()
    return [base, {k: v + 0.05 for k, v in base.items()}, {k: v - 0.05 for k, v in base.items()}]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("p", PROGRAMS, ids=IDS)
def test_batch_rows_give_what_each_gives_alone(p: Program, dtype, tmp_path):
    """As tests/test_batch.py: each batch line is, byte for byte, the document the row gives
    alone (`eval --format json`, written on one line)."""
    runnable(p)
    rows = batch_rows(p)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({k: v.tolist() for k, v in r.items()}) + "\n" for r in rows))
    options = [*p.seed_args(), "--dtype", dtype]
    batch = ok(run(["eval", p.source, *options, "--batch", str(path)]))
    lines = batch.stdout.splitlines()
    assert len(lines) == len(rows), batch.stdout
    for line, values in zip(lines, rows):
        args = ["eval", p.source, *options, "--format", "json"]
        for name, value in values.items():
            args += ["--var", f"{name}={value_text(value)}"]
        alone = json.loads(ok(run(args)).stdout)
        assert line == json.dumps(alone, allow_nan=False, ensure_ascii=False)


# ---------------------------------------------------------------------------------------
# diff


@pytest.mark.parametrize("p", PROGRAMS, ids=IDS)
def test_diff_shows_a_partial_for_each_input(p: Program):
    runnable(p)
    inputs = list(p.values)
    text = ok(run(["diff", p.source, *p.value_args()])).stdout
    assert "chain rule:" in text, text
    chains = text.split("chain rule:")[1]
    for name in inputs:
        assert re.search(rf"^  ∂b/∂{name} = \S", chains, re.MULTILINE), (name, text)
    doc = json.loads(ok(run(["diff", p.source, *p.value_args(), "--format", "json"])).stdout)
    assert doc["output"] == "b"
    by_input = {c["wrt"]: c for c in doc["chains"]}
    assert sorted(by_input) == sorted(inputs), doc
    for name in inputs:
        assert by_input[name]["partial"], (name, doc)


# ---------------------------------------------------------------------------------------
# graph

GRAD_FN = re.compile(r"\b([A-Z][A-Za-z0-9]*Backward[0-9]+(?:_copy)?|AccumulateGrad)\b")
LEAF = re.compile(r"([A-Za-z_]\w*(?:, [A-Za-z_]\w*)*): AccumulateGrad")


@pytest.mark.parametrize("fmt", ["tree", "dot", "mermaid"])
@pytest.mark.parametrize("p", PROGRAMS, ids=IDS)
def test_graph_matches_torch_grad_fn(p: Program, fmt):
    runnable(p)
    root, kinds, leaves = torch_graph(p.source, p.arrays())
    out = ok(run(["graph", p.source, *p.value_args(), "--format", fmt])).stdout
    lines = out.splitlines()
    if fmt == "tree":
        first = lines[0]
    else:  # the first node declared is the root
        first = next(ln for ln in lines if ("[label=" if fmt == "dot" else '["') in ln)
    assert GRAD_FN.search(first).group(1) == root, (first, root)
    assert set(GRAD_FN.findall(out)) == kinds, (out, kinds)
    labelled = {name for m in LEAF.finditer(out) for name in m.group(1).split(", ")}
    assert leaves <= labelled and labelled <= leaves | {"b"}, (out, leaves)


# ---------------------------------------------------------------------------------------
# --explain


@pytest.mark.parametrize("p", PROGRAMS, ids=IDS)
def test_explain_one_line_per_tensor(p: Program):
    runnable(p)
    seeds = [] if p.scalar else [p.seed()]
    oracle = run_torch(p.source, p.arrays(), seeds=seeds)
    assert oracle.error is None, oracle.error
    result = ok(run(["eval", p.source, *p.value_args(), *p.seed_args(), "--explain", "--format", "torch"]))
    assert result.stdout == oracle.stdout
    doc = json.loads(ok(run(["eval", p.source, *p.value_args(), *p.seed_args(), "--explain",
                             "--format", "json"])).stdout)
    names = [t["name"] for t in doc["tensors"]]
    assert names == oracle.names
    # one explanation a tensor; a matrix's text continues on indented lines, as torch prints it
    lines = printed_lines(result.stderr)
    assert len(lines) == len(names), result.stderr
    for name, line, tensor in zip(names, lines, doc["tensors"]):
        assert tensor["explanation"] == line
        grad = oracle[name].grad
        if grad is None:
            assert line.startswith(f"{name}.grad is None: "), line
            continue
        head = f"{name}.grad → {torch_repr(grad)}: ∂b/∂{name} = "
        assert line.startswith(head), (line, head)
        steps = line[len(head):].split(", times the seed")[0]
        assert all(s.strip() for s in steps.split(" = ")), f"an empty step in {line!r}"
