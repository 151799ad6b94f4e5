"""The chain rule over the user's names: local partials on named edges, composed per input.

`b = a + z/2; a = x + 2*y` has the edges ∂b/∂a = 1, ∂b/∂z = 1/2, ∂a/∂x = 1, ∂a/∂y = 2, and
∂b/∂y = ∂b/∂a · ∂a/∂y = 1 · 2 = 2. Unnamed intermediates (the `2*y` above) are folded into
the edge that crosses them. Display only: numbers come from `backward`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gradcalc.engine.graph import Graph, Node
from gradcalc.symbolic.partials import Symbolic

# Beyond this many paths from the output to an input, only the summed result is shown.
MAX_PATHS = 12


@dataclass
class Edge:
    parent: str     # the named tensor computed ...
    child: str      # ... from this named tensor
    partial: object  # SymPy: ∂parent/∂child, over the user's names


@dataclass
class Chain:
    input: str
    paths: list[list[Edge]] = field(default_factory=list)  # empty when there are too many
    total: object | None = None                          # over the inputs; None: not joined
    too_many_paths: bool = False


@dataclass
class Derivation:
    output: str
    edges: list[Edge]
    chains: list[Chain]


def derive(graph: Graph, output: Node, wrt: list[str], output_name: str | None = None) -> Derivation:
    """The local partials and chains of `output`, shown under `output_name` (the name the user
    asked for, which may be an alias of another tensor: `b = +x` binds b to x itself)."""
    by_name = Symbolic(graph, by_name=True)
    expanded = Symbolic(graph)
    labels = by_name.labels
    named = [n for n in graph.nodes[: output.id + 1] if n.id in labels and n.requires_grad]
    edges: dict[str, list[Edge]] = {}
    ordered: list[Edge] = []
    reached = {output.id}
    for node in reversed(named):
        if node.is_leaf or node.id not in reached:
            continue
        local = by_name.partials(node, stop_at_names=True)
        for child_id in sorted(local):
            if child_id != node.id and child_id in labels:
                edge = Edge(labels[node.id], labels[child_id], local[child_id])
                edges.setdefault(edge.parent, []).append(edge)
                ordered.append(edge)
                reached.add(child_id)
    totals = expanded.partials(output)
    chains = []
    for name in wrt:
        binding = graph.bindings.get(name)
        chain = Chain(name, total=totals.get(binding.id) if isinstance(binding, Node) else None)
        if isinstance(binding, Node) and chain.total is not None and binding is not output:
            # (the output by itself needs no chain)
            chain.paths, chain.too_many_paths = _paths(labels[output.id], labels[binding.id], edges)
        chains.append(chain)
    return Derivation(output_name or labels[output.id], ordered, chains)


def _paths(start: str, goal: str, edges: dict[str, list[Edge]]) -> tuple[list[list[Edge]], bool]:
    """Every path of named edges from start to goal, depth first without recursion."""
    found: list[list[Edge]] = []
    stack: list[tuple[str, list[Edge]]] = [(start, [])]
    steps = 0
    while stack:
        steps += 1
        if steps > 100 * MAX_PATHS * MAX_PATHS:
            return [], True
        name, path = stack.pop()
        if name == goal:
            found.append(path)
            if len(found) > MAX_PATHS:
                return [], True
            continue
        for edge in reversed(edges.get(name, [])):
            stack.append((edge.child, path + [edge]))
    return found, False
