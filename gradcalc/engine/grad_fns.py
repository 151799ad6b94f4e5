"""An output's `grad_fn` graph as PyTorch's `next_functions` show it: each operation's
backward node, AccumulateGrad at the leaves, the program's names on each (its text formats
are `report/graphs.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gradcalc.engine.graph import Graph, Node, output_node
from gradcalc.errors import TorchError

ACCUMULATE_GRAD = "AccumulateGrad"



@dataclass(frozen=True)
class GradNode:
    id: int                      # the tensor's node id in the gradcalc graph
    label: str                   # "a: AddBackward0", "x: AccumulateGrad", "MulBackward0"
    grad_fn: str                 # the grad_fn's class name, or "AccumulateGrad" for a leaf
    name: str | None          # the program's name(s) for the tensor, "a" or "a, c"
    shape: tuple[int, ...]
    value: np.ndarray
    grad: np.ndarray | None   # a leaf's .grad, a retained grad, else None

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn == ACCUMULATE_GRAD


@dataclass(frozen=True)
class GradEdge:
    parent: int
    child: int | None         # None where next_functions shows (None, 0)
    index: int                   # the position in the parent's next_functions


@dataclass
class GradGraph:
    nodes: list[GradNode]        # the output's node first, then a topological order
    edges: list[GradEdge]        # each parent's next_functions, in order

    @property
    def root(self) -> GradNode:
        return self.nodes[0]

    def next_functions(self) -> dict[int, list[GradEdge]]:
        out: dict[int, list[GradEdge]] = {n.id: [] for n in self.nodes}
        for edge in self.edges:
            out[edge.parent].append(edge)
        return out


def grad_graph(graph: Graph, output_name: str) -> GradGraph:
    """The graph `backward()` on `output_name` walks (torch's error if there is none)."""
    output = output_node(graph, output_name)
    if not output.requires_grad:
        raise TorchError("element 0 of tensors does not require grad and does not have a grad_fn",
                         hint=f"'{output_name}' depends on no input that requires grad "
                              "(detached or --no-grad)")
    reached = _reachable(output)
    names = _names(graph)
    nodes = [_grad_node(reached[i], names.get(i, ())) for i in sorted(reached, reverse=True)]
    edges = [GradEdge(n.id, None if child is None else child.id, index)
             for n in nodes for index, child in enumerate(_next_functions(reached[n.id]))]
    return GradGraph(nodes, edges)


def _next_functions(node: Node) -> list[Node | None]:
    """The tensors behind `node.grad_fn.next_functions`: None for those without grad."""
    if node.is_leaf:
        return []
    skipped = node.op.nondifferentiable if node.op is not None else ()
    tensors = [a if a.requires_grad else None for i, a in enumerate(node.args)
               if isinstance(a, Node) and i not in skipped]
    numbers = sum(1 for a in node.args if not isinstance(a, Node))
    # A number operand: a Tensor overload takes it as a wrapped 0-d tensor that requires no
    # grad, a `None` after the tensor (`2 * x` is `x.mul(2)`); a Scalar overload (`2 - x` is
    # RsubBackward1, `x ** 2` PowBackward0) lists no entry for it. The op's row says which.
    kinds = tuple(isinstance(a, Node) for a in node.args)
    return tensors + [None] * numbers if node.op is not None and node.op.keeps_number_edges(kinds) else tensors


def _reachable(output: Node) -> dict[int, Node]:
    reached = {output.id: output}
    stack = [output]
    while stack:
        for child in _next_functions(stack.pop()):
            if child is not None and child.id not in reached:
                reached[child.id] = child
                stack.append(child)
    return reached


def _names(graph: Graph) -> dict[int, tuple[str, ...]]:
    """Each node's program names: the one it was bound to first, then its aliases."""
    names: dict[int, list[str]] = {n.id: [n.name] for n in graph.nodes if n.name is not None}
    for name, binding in graph.bindings.items():
        if isinstance(binding, Node) and name != binding.name:
            names.setdefault(binding.id, []).append(name)
    return {i: tuple(ns) for i, ns in names.items()}


def _grad_node(node: Node, names: tuple[str, ...]) -> GradNode:
    grad_fn = ACCUMULATE_GRAD if node.grad_fn is None else node.grad_fn
    name = ", ".join(names) or None
    grad = node.grad if node.is_leaf or node.retains_grad else None
    return GradNode(node.id, grad_fn if name is None else f"{name}: {grad_fn}", grad_fn, name,
                    node.shape, node.value, grad)
