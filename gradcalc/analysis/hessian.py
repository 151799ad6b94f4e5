"""`eval --hessian`: second derivatives of a scalar output, as torch.autograd.functional.hessian.

Forward over reverse: each Hessian column is the tangent of the gradient along one input
element. Tangents run through the same graph and the same backward formulas as the numbers,
by each op row's second-order rule (`engine/tangents.py`). No whole-program expression is formed.
"""

from __future__ import annotations

import numpy as np

from gradcalc.engine.backward import initial_grad, local_vjps, operands, unbroadcast
from gradcalc.engine.graph import Graph, Node
from gradcalc.engine.ops import Kind
from gradcalc.engine.tangents import value_tangent, vjp_tangent
from gradcalc.errors import InputError


def hessian(graph: Graph, output: Node, inputs: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """{a: {b: d²out / da db}} of shape a.shape + b.shape, for inputs that require grad."""
    if output.value.size != 1:
        raise InputError("--hessian needs a scalar output",
                         hint="reduce it, e.g. with .sum(), as torch.autograd.functional.hessian requires")
    leaves = graph.grad_leaves(inputs)
    columns: dict[str, dict[str, list[np.ndarray]]] = {a: {b: [] for b in leaves} for a in leaves}
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
        dargs = [tangents.get(a.id) if isinstance(a, Node) else None for a in node.args]
        if all(d is None for d in dargs):
            continue
        tangents[node.id] = value_tangent(node, operands(node, graph.numbers), dargs, graph.numbers)
    return tangents


# -- the reverse pass, with tangents ----------------------------------------------------

def _backward_tangents(graph: Graph, output: Node, tangents: dict) -> dict[int, np.ndarray]:
    nums = graph.numbers
    grads = {output.id: initial_grad(output, None, nums)}
    dgrads = {output.id: np.zeros_like(output.value)}
    leaf_tangents: dict[int, np.ndarray] = {}
    for node in reversed(graph.nodes[: output.id + 1]):
        if node.id not in grads:
            continue
        grad, dgrad = grads.pop(node.id), dgrads.pop(node.id)
        if node.is_leaf:
            leaf_tangents[node.id] = dgrad
            continue
        args = operands(node, nums)
        dargs = [_tangent(a, tangents) for a in node.args]
        dresult = _tangent(node, tangents)
        elementwise = node.op is not None and node.op.kind is Kind.ELEMENTWISE
        for i, (arg, value) in enumerate(zip(node.args, local_vjps(node, grad, nums))):
            if value is None:
                continue
            d = vjp_tangent(node, i, grad, dgrad, args, dargs, dresult, nums)
            dvalue = unbroadcast(np.broadcast_to(d, node.shape if elementwise else arg.shape), arg.shape)
            value = unbroadcast(value, arg.shape)
            if arg.id in grads:
                grads[arg.id] = grads[arg.id] + value
                dgrads[arg.id] = dgrads[arg.id] + dvalue
            else:
                grads[arg.id], dgrads[arg.id] = value, dvalue
    return leaf_tangents


def _tangent(binding, tangents: dict):
    if isinstance(binding, Node):
        t = tangents.get(binding.id)
        return np.zeros_like(binding.value) if t is None else t
    return 0.0
