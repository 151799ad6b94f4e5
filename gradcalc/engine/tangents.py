"""Second order: the tangent of a node's value and of its vector-Jacobian products, given
its operands' tangents, by what the op's row declares (`ops.SecondOrder`). An elementwise
row needs no declaration: its formulas are differentiated node by node (`formula.tangent`).
"""

from __future__ import annotations

import numpy as np

from gradcalc.engine.backends import Exact, Floats
from gradcalc.engine.derive import vjp_tree
from gradcalc.engine.formula import run, tangent
from gradcalc.engine.graph import Node
from gradcalc.engine.ops import Kind, Op, SecondOrder
from gradcalc.errors import TorchError


def value_tangent(node: Node, args: list, dargs: list, nums: Floats | Exact) -> np.ndarray:
    """d node given d operands (None for an operand without a tangent)."""
    op, dtype = _op(node), node.value.dtype
    if op.kind is Kind.ELEMENTWISE:
        # Each vjp tree is g * partial_i with g free: fed the tangent, it is partial_i * dx_i.
        terms = [run(vjp_tree(op.name, i), d, args, nums, node.value) for i, d in enumerate(dargs) if d is not None]
        return np.broadcast_to(sum(terms[1:], terms[0]), node.shape).astype(dtype)
    if op.kind is Kind.REDUCTION and node.value.ndim == 0:  # a scalar: its Jacobian is the gradient of 1
        assert op.vjp is not None
        partials = op.vjp(np.ones((), dtype=dtype), args, node.value, nums, **node.params)
        terms = [np.sum(p * d) for p, d in zip(partials, dargs) if p is not None and d is not None]
        return np.asarray(sum(terms[1:], terms[0]) if terms else 0, dtype=dtype)
    if op.second_order is SecondOrder.MULTILINEAR:  # the sum of the op over one tangent each
        parts = [nums.forward(op, args[:k] + [d] + args[k + 1:], node.params)
                 for k, d in enumerate(dargs) if d is not None]
        return np.asarray(sum(parts[1:], parts[0]), dtype=dtype)
    if op.vjp is not None:  # J d, a row of the Jacobian at a time: the vjp of each unit vector
        return _jacobian_times(node, args, dargs, nums)
    raise NotImplementedError(f"the op table's row {op.name!r} declares no second-order rule")


def _jacobian_times(node: Node, args: list, dargs: list, nums: Floats | Exact) -> np.ndarray:
    """J d for an op whose only rule is its vector-Jacobian product (softmax, the losses):
    element k of the result is <vjp(e_k), d>, summed over the operands with a tangent."""
    op, dtype = _op(node), node.value.dtype
    assert op.vjp is not None
    size = node.value.size
    flat = np.empty(size, dtype=dtype)
    for k in range(size):
        unit = np.zeros(size, dtype=dtype)
        unit[k] = nums.number(1.0) if nums.exact else 1
        partials = op.vjp(unit.reshape(node.shape), args, node.value, nums, **node.params)
        terms = [np.sum(np.asarray(p) * d) for p, d in zip(partials, dargs) if p is not None and d is not None]
        flat[k] = sum(terms[1:], terms[0]) if terms else 0
    return flat.reshape(node.shape)


def vjp_tangent(node: Node, i: int, grad, dgrad, args: list, dargs: list, dresult, nums: Floats | Exact):
    """The tangent of node's i-th vector-Jacobian product, given the tangents of the incoming
    gradient (dgrad), of the operands (dargs: zeros where none) and of the result."""
    op, dtype = _op(node), node.value.dtype
    if not op.twice_differentiable:  # only where the reverse pass reaches it, as in torch
        raise TorchError(f"derivative for aten::{op.name}_backward is not implemented",
                         hint=f"torch cannot differentiate {op.name}'s backward, so it has no Hessian")
    if op.kind is Kind.ELEMENTWISE:
        env = {"g": (grad, dgrad), "result": (node.value, dresult)}
        _, d = tangent(vjp_tree(op.name, i), env, list(zip(args, dargs)), nums)
        return np.asarray(d, dtype=dtype)
    assert op.vjp is not None
    if op.second_order is SecondOrder.LINEAR_IN_GRAD:  # masks are locally constant
        return op.vjp(dgrad, args, node.value, nums, **node.params)[i]
    if op.second_order is SecondOrder.MULTILINEAR:
        total = op.vjp(dgrad, args, node.value, nums, **node.params)[i]
        for j in range(len(args)):
            if j != i:  # the rule is linear in each other operand
                total = total + op.vjp(grad, args[:j] + [dargs[j]] + args[j + 1:], node.value, nums,
                                       **node.params)[i]
        return total
    if op.second_order is SecondOrder.STATED and op.tangent is not None:
        return op.tangent(i, grad, dgrad, args, dargs, node.value, dresult, nums, **node.params)
    raise NotImplementedError(f"the op table's row {op.name!r} declares no second-order rule")


def _op(node: Node) -> Op:
    assert node.op is not None
    return node.op
