"""The reverse pass: PyTorch's `output.backward(seed)`, node by node."""

from __future__ import annotations

import numpy as np

from gradcalc.engine.derive import vjp_tree
from gradcalc.engine.graph import Const, Graph, Node, exact_constant
from gradcalc.engine.numeric import evaluate
from gradcalc.engine.ops import Kind
from gradcalc.errors import ShapeError, TorchError


def backward(graph: Graph, output: Node, seed: np.ndarray | None = None) -> None:
    """Accumulate d output / d leaf into each reached leaf's `.grad` (and retained nodes')."""
    grads = {output.id: initial_grad(output, seed, graph.dtype)}
    with np.errstate(all="ignore"):  # inf - inf is nan, silently, as in torch
        _reverse_walk(graph, output, grads)


def _reverse_walk(graph: Graph, output: Node, grads: dict) -> None:
    for node in reversed(graph.nodes[: output.id + 1]):
        grad = grads.pop(node.id, None)
        if grad is None:
            continue
        if node.is_leaf or node.retains_grad:
            node.grad = grad.copy() if node.grad is None else node.grad + grad
        if node.is_leaf:
            continue
        for arg, contribution in zip(node.args, local_vjps(node, grad)):
            if contribution is None:
                continue
            contribution = unbroadcast(contribution, arg.shape)
            grads[arg.id] = contribution if arg.id not in grads else grads[arg.id] + contribution


def local_vjps(node: Node, grad: np.ndarray) -> list[np.ndarray | None]:
    """grad * d node / d arg for each argument that requires grad (None for the others)."""
    wanted = [isinstance(a, Node) and a.requires_grad for a in node.args]
    exact = node.value.dtype == object
    operands = [exact_constant(a) if exact and isinstance(a, Const) else a.value for a in node.args]
    if node.op.kind is Kind.ELEMENTWISE:
        dtype = node.value.dtype
        return [_broadcast(evaluate(vjp_tree(node.op.name, i), grad, operands, dtype, node.value),
                           node.shape, dtype) if want else None
                for i, want in enumerate(wanted)]
    results = node.op.vjp(grad, operands, node.value)
    return [np.asarray(r, node.value.dtype) if want else None for r, want in zip(results, wanted)]


def _broadcast(value, shape, dtype) -> np.ndarray:
    array = np.asarray(value, dtype=dtype)
    return array if array.shape == shape else np.broadcast_to(array, shape)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a gradient back to its operand's shape, over the dimensions broadcasting added."""
    if grad.shape == shape:
        return np.array(grad)
    extra = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else np.array(grad)


def initial_grad(output: Node, seed: np.ndarray | None, dtype) -> np.ndarray:
    """torch's _make_grads, in its order: the seed's shape first, then requires_grad."""
    if seed is not None:
        seed = np.asarray(seed, dtype=dtype)
        if seed.shape != output.shape:
            raise ShapeError(f"Mismatch in shape: grad_output[0] has a shape of {_torch_size(seed.shape)} "
                             f"and output[0] has a shape of {_torch_size(output.shape)}.",
                             hint=f"the seed must have the output's shape, {_torch_size(output.shape)}")
    elif output.requires_grad and output.value.size != 1:
        raise TorchError("grad can be implicitly created only for scalar outputs",
                         hint="pass --seed with the output's shape, or reduce it with .sum()")
    if not output.requires_grad:
        raise TorchError("element 0 of tensors does not require grad and does not have a grad_fn",
                         hint="the output depends on no input that requires grad (detached or --no-grad)")
    seed = np.ones_like(output.value) if seed is None else seed
    if seed.dtype == object:  # `--exact`: 1, not Python's int 1 (whose 1/3 is a float)
        from gradcalc.engine.exact import to_exact

        seed = to_exact(seed)
    return seed


def _torch_size(shape: tuple[int, ...]) -> str:
    return f"torch.Size([{', '.join(str(n) for n in shape)}])"
