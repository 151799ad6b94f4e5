"""`eval --explain`: why each tensor's grad is what it is, or why it is None.

For a grad: the chain rule that produced it (the symbolic chain of `diff`, with numbers when
the inputs are scalars), times the seed. For None: the reason in plain words, with the fix.
"""

from __future__ import annotations

import numpy as np

from gradcalc.api import Evaluation, output_node
from gradcalc.engine.graph import Const, Node
from gradcalc.engine.ops import Kind
from gradcalc.symbolic.partials import text


def explanations(evaluation: Evaluation) -> dict[str, str]:
    """{name: one paragraph} for every name of the program."""
    from gradcalc.report.diff import chain_text
    from gradcalc.symbolic.chain import derive

    graph = evaluation.graph
    derivations = []
    for out in dict.fromkeys(evaluation.outputs):
        node = output_node(graph, out)
        derivations.append((out, derive(graph, node, list(graph.names), out)))
    numbers = _scalar_inputs(evaluation)
    result = {}
    for name in graph.names:
        binding = graph.bindings[name]
        reason = none_reason(evaluation, name, binding)
        if reason is not None:
            result[name] = f"{name}.grad is None: {reason}"
            continue
        assert isinstance(binding, Node)  # only a tensor with a grad has no reason
        steps = []
        for (_, derivation), seed in zip(derivations, evaluation.seeds):
            chain = next(c for c in derivation.chains if c.input == name)
            if chain.total is None:
                continue
            line = chain_text(derivation, chain)
            value = _at(chain.total, numbers)
            if value is not None and value != text(chain.total):
                line += f" = {value}"
            if seed is not None:
                line += f", times the seed {_tensor_text(seed)}"
            steps.append(line)
        result[name] = f"{name}.grad → {_tensor_text(binding.grad)}: " + "; plus ".join(steps)
    return result


def none_reason(evaluation: Evaluation, name: str, binding) -> str | None:
    """Why PyTorch leaves this tensor's grad as None, or None when it has a grad."""
    if isinstance(binding, Const):
        return f"'{name}' is a number, not a tensor"
    if binding.grad is not None:
        return None
    if not binding.requires_grad:
        if binding.detached_from is not None:
            return (f"'{name}' was detached at line {binding.line}: detach() makes a new leaf that "
                    "does not require grad, and backward stops there")
        if binding.value.dtype.kind in "iub":
            return (f"'{name}' is an integer tensor ({binding.value.dtype}): only floating point tensors "
                    "require grad")
        if binding.op is None:
            return f"'{name}' is an input that does not require grad (--no-grad {name})"
        if binding.op.kind is Kind.CONSTANT:
            return (f"'{name}' is made by {binding.op.call_as or binding.op.name}() at line {binding.line}, a new "
                    "leaf that requires no grad (pass requires_grad=True for one that does)")
        return (f"'{name}' is computed only from tensors that do not require grad "
                "(detached or --no-grad), so no gradient flows through it")
    if not binding.is_leaf and not binding.retains_grad:
        return (f"'{name}' is not a leaf ({binding.grad_fn}): PyTorch keeps .grad only for leaves; "
                f"keep it with --retain {name} (or {name}.retain_grad() in the program)")
    outs = ", ".join(evaluation.outputs)
    cut = _detach_downstream_of(evaluation.graph, binding)
    if cut is not None:
        return (f"'{name}' is not reached from {outs}: its path is cut by detach() at line {cut.line}, "
                "which makes a new leaf that does not require grad")
    return f"'{name}' is not reached from {outs}: no path of grad-requiring operations joins them"


def _detach_downstream_of(graph, source: Node) -> Node | None:
    """The first detach() whose detached tensor was computed from `source`, if any."""
    for node in graph.nodes:
        if node.detached_from is not None and _depends_on(node.detached_from, source):
            return node
    return None


def _depends_on(node: Node, source: Node) -> bool:
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if n is source:
            return True
        if n.id in seen:
            continue
        seen.add(n.id)
        stack.extend(a for a in n.args if isinstance(a, Node))
    return False


def _scalar_inputs(evaluation: Evaluation) -> dict | None:
    """The inputs as SymPy numbers when every input is a 0-d tensor, else None."""
    import sympy

    graph = evaluation.graph
    values = {}
    for name in graph.inputs:
        binding = graph.bindings[name]
        node = binding if isinstance(binding, Node) else None
        leaf = next((n for n in graph.nodes if n.op is None and n.name == name and n.detached_from is None), node)
        if leaf is None or leaf.value.ndim != 0:
            return None
        values[sympy.Symbol(name, real=True)] = sympy.Float(float(leaf.value), 6)
    return values


def _at(expr, numbers: dict | None) -> str | None:
    if numbers is None:
        return None
    try:
        value = expr.xreplace(numbers)
        return None if value.free_symbols else str(value.evalf(6))
    except (TypeError, ValueError, ArithmeticError):
        return None


def _tensor_text(value) -> str:
    from gradcalc.report.tensor_str import tensor_repr

    return tensor_repr(np.asarray(value))
