"""Symbolic partials for display: d output / d tensor over the user's names, via the chain rule.

Each node's local partial comes from the op table (SymPy's derivative of the row's form);
the chain rule multiplies and sums them along grad-requiring paths, as backward does with
numbers. Nothing here feeds a number: the values come from `backward` alone.
"""

from __future__ import annotations

import functools
import heapq

from gradcalc.engine.backends import program_constant as constant
from gradcalc.engine.derive import derivative, symbols
from gradcalc.engine.graph import Binding, Const, Graph, Node
from gradcalc.engine.ops import Kind

# Beyond this many SymPy nodes an expression is shown by its name instead of expanded:
# a value as the tensor's name, a partial as the symbol ∂out/∂name.
VALUE_BUDGET = 40
PARTIAL_BUDGET = 120
# Past this many operations a graph's partials are not expanded at all: each is shown as the
# symbol ∂out/∂name. SymPy's work is about a millisecond a node: a 100,000-term product would
# take minutes to display partials nobody can read.
GRAPH_BUDGET = 2_000


@functools.cache
def display_partial(op_name: str, i: int):
    """An elementwise op's derivative as shown: d(a**b)/da as b*a**(b - 1), not SymPy's a**b*b/a."""
    import sympy as sp

    return sp.powsimp(derivative(op_name, i))


def over_budget(graph: Graph) -> bool:
    return sum(1 for n in graph.nodes if n.op is not None) > GRAPH_BUDGET


def reached(graph: Graph, output: Node) -> set[int]:
    """The nodes joined to `output` by grad-requiring operations (those with a partial)."""
    if not output.requires_grad:
        return set()
    seen, stack = {output.id}, [output]
    while stack:
        node = stack.pop()
        if node.is_leaf:
            continue
        for arg in node.args:
            if isinstance(arg, Node) and arg.requires_grad and arg.id not in seen:
                seen.add(arg.id)
                stack.append(arg)
    return seen


class Symbolic:
    """The SymPy value of every node of a graph, over input names (budgeted)."""

    def __init__(self, graph: Graph, *, by_name: bool = False):
        """by_name: a named tensor's value is its name (`a`), so that local partials read
        over the user's names (∂b/∂a = 2*a) instead of over the inputs."""
        import sympy

        self.sp = sympy
        self.graph = graph
        self.by_name = by_name
        self.labels = labels(graph)
        self.values: dict[int, object] = {}
        for node in graph.nodes:
            self.values[node.id] = self._value(node)

    def of(self, binding: Binding):
        if isinstance(binding, Const):
            return constant(self.sp, binding)
        return self.values[binding.id]

    def _value(self, node: Node):
        sp = self.sp
        if node.op is None:
            if node.detached_from is not None:
                return self.values[node.detached_from.id]
            if node.constant is not None:
                return constant(sp, node.constant)
            return sp.Symbol(self.labels[node.id], real=True)
        if self.by_name and node.id in self.labels:
            return sp.Symbol(self.labels[node.id], real=True)
        args = [self.of(a) for a in node.args]
        op = node.op
        if op.form is not None:
            value = op.form(sp, *args)
        elif op.display_value is not None:
            value = op.display_value(sp, args, **node.params)
        else:
            value = sp.Function(op.name)(*args)
        if _size(value, VALUE_BUDGET) > VALUE_BUDGET:
            return sp.Symbol(node.name or f"t{node.id}", real=True)
        return value

    def local_partial(self, node: Node, i: int):
        sp = self.sp
        args = [self.of(a) for a in node.args]
        op = node.op
        assert op is not None
        if op.kind is Kind.ELEMENTWISE:
            canonical = symbols(sp, op.arity)
            return display_partial(op.name, i).xreplace(dict(zip(canonical, args)))
        shapes = [a.shape if isinstance(a, Node) else () for a in node.args]
        assert op.display_partials is not None
        return op.display_partials(sp, args, shapes, **node.params)[i]

    def partials(self, output: Node, *, stop_at_names: bool = False) -> dict[int, object]:
        """d output / d node for every node joined to the output by grad-requiring operations;
        with stop_at_names, only through unnamed intermediates (the local partials of `diff`).

        Terms are collected in lists and added once per node: linear, where adding them one
        by one into a SymPy Add would be quadratic in the number of paths."""
        if not output.requires_grad:
            return {}
        sp = self.sp
        nodes = self.graph.nodes
        terms: dict[int, list] = {output.id: [sp.Integer(1)]}
        pending = [-output.id]  # a max-heap of node ids: program order is topological
        result = {}
        while pending:
            node = nodes[-heapq.heappop(pending)]
            upstream = result[node.id] = sp.Add(*terms.pop(node.id))
            if node.is_leaf or (stop_at_names and node is not output and node.id in self.labels):
                continue
            if _size(upstream, PARTIAL_BUDGET) > PARTIAL_BUDGET:
                label = output.name or f"t{output.id}"
                upstream = sp.Symbol(f"∂{label}/∂{node.name or f't{node.id}'}")
            for i, arg in enumerate(node.args):
                if isinstance(arg, Node) and arg.requires_grad:
                    if arg.id not in terms:
                        terms[arg.id] = []
                        heapq.heappush(pending, -arg.id)
                    terms[arg.id].append(upstream * self.local_partial(node, i))
        return result


def labels(graph: Graph) -> dict[int, str]:
    """Each named tensor's label: its name, or `name@line` for a binding the name later lost."""
    final = {b.id for b in graph.bindings.values() if isinstance(b, Node)}
    return {n.id: n.name if n.id in final or n.line is None else f"{n.name}@{n.line}"
            for n in graph.nodes if n.name is not None}


def _size(expr, limit: int) -> int:
    """The number of nodes of a SymPy expression, counting no further than past `limit`."""
    count = 0
    stack = [expr]
    while stack and count <= limit:
        e = stack.pop()
        count += 1
        stack.extend(e.args)
    return count


def text(expr) -> str:
    """SymPy's string of an expression; a large one unsorted, since sorting the terms of a
    sum of thousands costs seconds and the order carries no meaning."""
    from sympy.printing.str import sstr

    return sstr(expr, order="none") if _size(expr, PARTIAL_BUDGET) > PARTIAL_BUDGET else str(expr)
