"""`eval --hessian`: second derivatives of a scalar output, as torch.autograd.functional.hessian.

Forward over reverse: each Hessian column is the tangent of the gradient along one input
element. Tangents run through the same graph and the same backward formulas as the numbers:
an elementwise op's forward tangent is its own vector-Jacobian tree applied to the operand's
tangent (the tree is linear in the incoming gradient), and every backward formula is
differentiated node by node of its expression tree. No whole-program expression is formed.
"""

from __future__ import annotations

import math

import numpy as np

from gradcalc.engine import numeric
from gradcalc.engine.backward import initial_grad, local_vjps, unbroadcast
from gradcalc.engine.derive import vjp_tree
from gradcalc.engine.graph import Graph, Node
from gradcalc.engine.ops import Kind
from gradcalc.errors import InputError


def hessian(graph: Graph, output: Node, inputs: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """{a: {b: d²out / da db}} of shape a.shape + b.shape, for inputs that require grad."""
    if output.value.size != 1:
        raise InputError("--hessian needs a scalar output",
                         hint="reduce it, e.g. with .sum(), as torch.autograd.functional.hessian requires")
    leaves = {n: graph.bindings[n] for n in inputs
              if isinstance(graph.bindings[n], Node) and graph.bindings[n].requires_grad}
    columns = {a: {b: [] for b in leaves} for a in leaves}
    with np.errstate(all="ignore"):
        for b, leaf in leaves.items():
            for index in range(leaf.value.size):
                direction = np.zeros(leaf.value.size, dtype=leaf.value.dtype)
                direction[index] = 1
                tangents = _forward_tangents(graph, output, {leaf.id: direction.reshape(leaf.shape)})
                grad_tangents = _backward_tangents(graph, output, tangents)
                for a, other in leaves.items():
                    columns[a][b].append(grad_tangents.get(other.id, np.zeros_like(other.value)))
    return {a: {b: _stack(columns[a][b], leaves[a], leaves[b]) for b in leaves} for a in leaves}


def _stack(column_list, a: Node, b: Node) -> np.ndarray:
    # Columns run over b's elements; torch's layout is a.shape + b.shape.
    stacked = np.stack([np.broadcast_to(c, a.shape) for c in column_list], axis=-1)
    return stacked.reshape(a.shape + b.shape)


# -- forward mode over the graph --------------------------------------------------------

def _forward_tangents(graph: Graph, output: Node, seeds: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    tangents = dict(seeds)
    for node in graph.nodes[: output.id + 1]:
        if node.op is None or node.is_leaf:
            continue
        args = [a.value for a in node.args]
        dargs = [tangents.get(a.id) if isinstance(a, Node) else None for a in node.args]
        if all(d is None for d in dargs):
            continue
        tangents[node.id] = _node_tangent(node, args, dargs)
    return tangents


def _node_tangent(node: Node, args: list, dargs: list) -> np.ndarray:
    op, dtype = node.op, node.value.dtype
    if op.kind is Kind.ELEMENTWISE:
        # Each vjp tree is g * partial_i with g free: fed the tangent, it is partial_i * dx_i.
        terms = [numeric.evaluate(vjp_tree(op.name, i), d, args, dtype, node.value)
                 for i, d in enumerate(dargs) if d is not None]
        return np.broadcast_to(sum(terms[1:], terms[0]), node.shape).astype(dtype)
    if op.kind is Kind.REDUCTION:
        (partials,) = op.vjp(np.ones((), dtype=dtype), args, node.value)
        return np.asarray(np.sum(partials * dargs[0]), dtype=dtype)
    # Linear algebra: linear or bilinear in its operands.
    if len(args) == 1:
        return np.asarray(op.forward(dargs[0]), dtype=dtype)
    a, b = args
    da, db = (np.zeros_like(x) if d is None else d for x, d in zip(args, dargs))
    return np.asarray(op.forward(da, b) + op.forward(a, db), dtype=dtype)


# -- the reverse pass, with tangents ----------------------------------------------------

def _backward_tangents(graph: Graph, output: Node, tangents: dict) -> dict[int, np.ndarray]:
    grads = {output.id: initial_grad(output, None, graph.dtype)}
    dgrads = {output.id: np.zeros_like(output.value)}
    leaf_tangents: dict[int, np.ndarray] = {}
    for node in reversed(graph.nodes[: output.id + 1]):
        if node.id not in grads:
            continue
        grad, dgrad = grads.pop(node.id), dgrads.pop(node.id)
        if node.is_leaf:
            leaf_tangents[node.id] = dgrad
            continue
        values = local_vjps(node, grad)
        for i, (arg, value) in enumerate(zip(node.args, values)):
            if value is None:
                continue
            dvalue = unbroadcast(np.broadcast_to(_vjp_tangent(node, i, grad, dgrad, tangents), node.shape
                                                 if node.op.kind is Kind.ELEMENTWISE else arg.shape),
                                 arg.shape)
            value = unbroadcast(value, arg.shape)
            if arg.id in grads:
                grads[arg.id] = grads[arg.id] + value
                dgrads[arg.id] = dgrads[arg.id] + dvalue
            else:
                grads[arg.id], dgrads[arg.id] = value, dvalue
    return leaf_tangents


def _vjp_tangent(node: Node, i: int, grad, dgrad, tangents: dict) -> np.ndarray:
    """The tangent of node's i-th vector-Jacobian product, given the tangents of its inputs."""
    dtype = node.value.dtype
    args = [a.value for a in node.args]
    dargs = [_tangent(a, tangents) for a in node.args]
    dresult = _tangent(node, tangents)
    op = node.op
    if op.kind is Kind.ELEMENTWISE:
        env = {"g": (grad, dgrad), "result": (node.value, dresult)}
        _, d = _jvp(vjp_tree(op.name, i), env, list(zip(args, dargs)), dtype)
        return np.asarray(d, dtype=dtype)
    return _rule_tangent(op.name, i, grad, dgrad, args, dargs, node.value, dresult, dtype)


def _tangent(binding, tangents: dict):
    if isinstance(binding, Node):
        t = tangents.get(binding.id)
        return np.zeros_like(binding.value) if t is None else t
    return 0.0


def _rule_tangent(name, i, g, dg, args, dargs, r, dr, dtype) -> np.ndarray:
    zero = np.zeros_like(np.asarray(args[i], dtype=dtype))
    if name in ("sum", "mean", "max", "min", "unsqueeze0", "squeeze0"):
        from gradcalc.engine.ops import OPS

        return OPS[name].vjp(dg, args, r)[i]  # linear in the gradient; masks are fixed
    if name == "norm":
        (x,), (dx,) = args, dargs
        if r == 0:
            return zero
        return dg * (x / r) + g * (dx / r - x * dr / (r * r))
    if name == "prod":
        (x,), (dx,) = args, dargs
        flat, dflat = x.reshape(-1), np.asarray(dx).reshape(-1)
        others = np.array([np.prod(np.delete(flat, k)) for k in range(flat.size)], dtype=dtype)
        dothers = np.array([sum(dflat[m] * np.prod(np.delete(flat, [k, m])) for m in range(flat.size) if m != k)
                            for k in range(flat.size)], dtype=dtype)
        return (dg * others + g * dothers).reshape(x.shape) if x.ndim else np.asarray(dg, dtype=dtype)
    a, b = args
    da, db = dargs
    if name == "dot":
        return dg * b + g * db if i == 0 else dg * a + g * da
    if name == "mv":
        return np.outer(dg, b) + np.outer(g, db) if i == 0 else a.T @ dg + da.T @ g
    if name == "mm":
        return dg @ b.T + g @ db.T if i == 0 else a.T @ dg + da.T @ g
    raise NotImplementedError(f"no second-order rule for {name}")


# -- differentiating an expression tree -------------------------------------------------

_LN2, _LN10 = math.log(2), math.log(10)


def _jvp(tree, env: dict, args: list, dtype):
    """(value, tangent) of a backward-formula tree, by the rules of calculus per node."""
    def go(t):
        return _jvp(t, env, args, dtype)

    tag = tree[0]
    if tag in ("g", "result"):
        return env[tag]
    if tag == "arg":
        return args[tree[1]]
    if tag in ("num", "true", "cmp", "and", "or", "not"):
        return numeric.evaluate(tree, env["g"][0], [a for a, _ in args], dtype, env["result"][0]), 0.0
    if tag in ("add", "mul"):
        value, tangent = go(tree[1][0])
        for t in tree[1][1:]:
            v, d = go(t)
            value, tangent = ((value + v, tangent + d) if tag == "add"
                              else (value * v, tangent * v + value * d))
        return value, tangent
    if tag == "sub":
        (a, da), (b, db) = go(tree[1]), go(tree[2])
        return a - b, da - db
    if tag == "div":
        (a, da), (b, db) = go(tree[1]), go(tree[2])
        q = a / b
        return q, (da - q * db) / b
    if tag == "neg":
        a, da = go(tree[1])
        return -a, -da
    if tag == "pow":
        (a, da), (b, db) = go(tree[1]), go(tree[2])
        value = numeric.torch_pow(a, b)
        tangent = 0.0
        if np.any(da != 0):
            tangent = tangent + da * b * numeric.torch_pow(a, b - 1)
        if np.any(db != 0):
            tangent = tangent + db * value * np.log(a)
        return value, tangent
    if tag == "call":
        pairs = [go(t) for t in tree[2]]
        value = numeric.apply_function(tree[1], *(v for v, _ in pairs))
        return value, _call_tangent(tree[1], pairs, value)
    if tag == "where":
        conds = [numeric.evaluate(c, env["g"][0], [a for a, _ in args], dtype, env["result"][0])
                 for c, _ in tree[1]]
        pairs = [go(v) for _, v in tree[1]]
        value, tangent = pairs[-1]
        for cond, (v, d) in zip(reversed(conds[:-1]), reversed(pairs[:-1])):
            value, tangent = np.where(cond, v, value), np.where(cond, d, tangent)
        return value, tangent
    raise ValueError(f"unknown expression tree node {tag!r}")


def _call_tangent(name: str, pairs: list, value):
    (x, dx), *rest = pairs
    derivative = {
        "exp": lambda: value, "expm1": lambda: value + 1, "log": lambda: 1 / x,
        "log1p": lambda: 1 / (1 + x), "log2": lambda: 1 / (x * _LN2), "log10": lambda: 1 / (x * _LN10),
        "sin": lambda: np.cos(x), "cos": lambda: -np.sin(x), "tan": lambda: 1 + value * value,
        "sinh": lambda: np.cosh(x), "cosh": lambda: np.sinh(x), "tanh": lambda: 1 - value * value,
        "arctan": lambda: 1 / (1 + x * x), "arcsin": lambda: 1 / np.sqrt(1 - x * x),
        "arccos": lambda: -1 / np.sqrt(1 - x * x), "sqrt": lambda: 1 / (2 * value),
        "abs": lambda: np.sign(x), "sign": lambda: 0.0,
        "erf": lambda: 2 / math.sqrt(math.pi) * np.exp(-x * x),
    }
    if name == "arctan2":
        (y, dy), ((x2, dx2),) = (x, dx), rest
        return (x2 * dy - y * dx2) / (x2 * x2 + y * y)
    return derivative[name]() * dx
