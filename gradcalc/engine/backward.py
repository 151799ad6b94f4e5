"""The reverse pass: PyTorch's `output.backward(seed)`, node by node."""

from __future__ import annotations

import numpy as np

from gradcalc.engine.backends import Exact, Floats
from gradcalc.engine.derive import vjp_tree
from gradcalc.engine.formula import run
from gradcalc.engine.graph import Const, Graph, Node
from gradcalc.engine.ops import Kind
from gradcalc.errors import ShapeError, TorchError


def backward(graph: Graph, output: Node, seed: np.ndarray | None = None) -> None:
    """Accumulate d output / d leaf into each reached leaf's `.grad` (and retained nodes')."""
    grads = {output.id: initial_grad(output, seed, graph.numbers)}
    with np.errstate(all="ignore"):  # inf - inf is nan, silently, as in torch
        _reverse_walk(graph, output, grads)


def _reverse_walk(graph: Graph, output: Node, grads: dict) -> None:
    nums = graph.numbers
    for node in reversed(graph.nodes[: output.id + 1]):
        grad = grads.pop(node.id, None)
        if grad is None:
            continue
        if node.is_leaf or node.retains_grad:
            node.grad = grad.copy() if node.grad is None else node.grad + grad
        if node.is_leaf:
            continue
        for arg, contribution in zip(node.args, local_vjps(node, grad, nums)):
            if contribution is None:
                continue
            contribution = unbroadcast(contribution, arg.shape)
            grads[arg.id] = contribution if arg.id not in grads else grads[arg.id] + contribution


def operands(node: Node, nums: Floats | Exact) -> list:
    """The node's operands as its rules take them: tensors' values, and program numbers."""
    return [nums.program_number(a) if isinstance(a, Const) else a.value for a in node.args]


def local_vjps(node: Node, grad: np.ndarray, nums: Floats | Exact) -> list[np.ndarray | None]:
    """grad * d node / d arg for each argument that requires grad (None for the others)."""
    wanted = [isinstance(a, Node) and a.requires_grad for a in node.args]
    args = operands(node, nums)
    op = node.op
    assert op is not None
    dtype = node.value.dtype
    if op.kind is Kind.ELEMENTWISE:
        return [_broadcast(run(vjp_tree(op.name, i), grad, args, nums, node.value), node.shape, dtype)
                if want else None
                for i, want in enumerate(wanted)]
    assert op.vjp is not None
    results = op.vjp(grad, args, node.value, nums, **node.params)
    # A rule's None is torch's undefined gradient (norm with p=0): nothing flows back.
    return [np.asarray(r, dtype) if want and r is not None else None for r, want in zip(results, wanted)]


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


def initial_grad(output: Node, seed: np.ndarray | None, nums: Floats | Exact) -> np.ndarray:
    """torch's _make_grads, in its order: the seed's shape first, then requires_grad."""
    if seed is not None:
        seed = np.asarray(seed, dtype=nums.dtype)
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
    # `--exact`: SymPy's 1, not Python's int 1 (whose 1/3 is a float)
    return nums.tensor(np.ones_like(output.value) if seed is None else seed)


def _torch_size(shape: tuple[int, ...]) -> str:
    return f"torch.Size([{', '.join(str(n) for n in shape)}])"
