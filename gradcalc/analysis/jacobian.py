"""`eval --jacobian`: d output / d input for every element, as torch.autograd.functional.jacobian.

One backward pass per element of the output, seeded with a one-hot tensor, as torch does
without vectorisation; inputs the output does not depend on get zeros (strict=False).
"""

from __future__ import annotations

import numpy as np

from gradcalc.engine.backward import backward
from gradcalc.engine.graph import Graph, Node


def jacobian(graph: Graph, output: Node, inputs: list[str]) -> dict[str, np.ndarray]:
    """{input: array of shape output.shape + input.shape}, for inputs that require grad."""
    leaves = graph.grad_leaves(inputs)
    saved = [(node, node.grad) for node in graph.nodes]
    rows: dict[str, list[np.ndarray]] = {name: [] for name in leaves}
    try:
        for index in range(output.value.size):
            for node in graph.nodes:
                node.grad = None
            seed = np.zeros(output.value.size, dtype=output.value.dtype)
            seed[index] = 1
            backward(graph, output, seed.reshape(output.shape))
            for name, leaf in leaves.items():
                rows[name].append(np.zeros_like(leaf.value) if leaf.grad is None else leaf.grad)
    finally:
        for node, grad in saved:
            node.grad = grad
    return {name: np.stack(rows[name]).reshape(output.shape + leaves[name].shape) if rows[name]
            else np.zeros(output.shape + leaves[name].shape, dtype=leaves[name].value.dtype)
            for name in leaves}
