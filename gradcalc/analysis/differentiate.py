"""A program's derivatives apart from their display: `diff`'s chain rule, `graph`'s grad_fn
graph, and `eval --jacobian` / `--hessian`."""

from __future__ import annotations

import numpy as np

from gradcalc.analysis.hessian import hessian
from gradcalc.analysis.jacobian import jacobian
from gradcalc.api import Evaluation, evaluate, output_node
from gradcalc.engine.backward import backward
from gradcalc.engine.grad_fns import GradGraph, grad_graph
from gradcalc.engine.graph import build, find_inputs
from gradcalc.errors import InputError
from gradcalc.lang import syntax
from gradcalc.report.derivatives import Derivatives
from gradcalc.symbolic.chain import Derivation, derive


def scalars_where_missing(program: syntax.Program, given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The given input values, and a scalar for each input without one (diff and graph need
    shapes, not values)."""
    return {**{name: np.ones(()) for name in find_inputs(program)}, **given}


def derivation(program: syntax.Program, given: dict[str, np.ndarray], *, output: str | None,
               wrt: list[str], no_grad: list[str]) -> Derivation:
    """The partials of `output` (default: the last assigned) by each of `wrt` (default: every input)."""
    graph = build(program, scalars_where_missing(program, given), no_grad=frozenset(no_grad))
    out_name = output or graph.last_assigned
    if out_name is None:
        raise InputError("the program assigns nothing to differentiate")
    wanted = wrt or graph.inputs
    for name in wanted:
        if name not in graph.bindings:
            raise InputError(f"--wrt {name}: the program has no tensor named '{name}'")
    out = output_node(graph, out_name)
    if not out.requires_grad:
        raise InputError(f"'{out_name}' depends on no input that requires grad: it has no partials")
    return derive(graph, out, wanted, out_name)


def grad_fn_graph(program: syntax.Program, given: dict[str, np.ndarray], *, output: str | None,
                  seed: np.ndarray | None, retain: list[str], no_grad: list[str], dtype: str) -> GradGraph:
    """The grad_fn graph of `output` (default: the last assigned); with `given` values, after
    backward() on it where torch could call it (an implicit seed needs a scalar output)."""
    evaluation = evaluate(program, scalars_where_missing(program, given), outputs=[output] if output else [],
                          retain=retain, no_grad=no_grad, dtype=dtype, run_backward=False)
    out = output_node(evaluation.graph, evaluation.outputs[0])
    if given and out.requires_grad and (seed is not None or out.value.size == 1):
        backward(evaluation.graph, out, seed)
    return grad_graph(evaluation.graph, evaluation.outputs[0])


def derivatives(evaluation: Evaluation, *, second: bool) -> Derivatives:
    """The Jacobian (or Hessian) of the evaluation's one output by each input."""
    graph = evaluation.graph
    if len(evaluation.outputs) != 1:
        raise InputError(f"--{'hessian' if second else 'jacobian'} takes one --output")
    out = evaluation.outputs[0]
    table = (hessian if second else jacobian)(graph, output_node(graph, out), graph.inputs)
    return Derivatives(out, graph.dtype, table, second)
