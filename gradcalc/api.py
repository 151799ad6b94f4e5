"""One evaluation end to end, as a library call: parse, build the graph, run backward."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcalc.engine.backward import backward
from gradcalc.engine.graph import Const, Graph, build, output_node, walk
from gradcalc.engine.ops import VOCABULARY
from gradcalc.errors import GradcalcError, InputError
from gradcalc.lang import parser, syntax
from gradcalc.lang.values import ValueExpression, ValueExpressionError, check_shape


def parse(source: str) -> syntax.Program:
    """The program text as a Program over the op table's functions (never evaluated)."""
    return parser.parse(source, VOCABULARY)


@dataclass
class Evaluation:
    graph: Graph
    outputs: list[str]
    seeds: list[np.ndarray | None] = field(default_factory=list)


def evaluate(source: str | syntax.Program, values: Mapping[str, Any], *,
             outputs: Sequence[str] = (), seeds: Sequence[np.ndarray] = (),
             retain: Sequence[str] = (), no_grad: Sequence[str] = (),
             dtype: str = "float32", run_backward: bool = True) -> Evaluation:
    """What the PyTorch program does: build the tensors, then `out.backward(seed)` for each output
    (unless run_backward is False: the tensors only, e.g. for a Jacobian). `values` are arrays
    or value expressions (`--x 'linspace(-3, 3, 2000)'`), evaluated first in `dtype`."""
    program = parse(source) if isinstance(source, str) else source
    graph = build(program, resolve_values(values, dtype), dtype=dtype, no_grad=frozenset(no_grad),
                  retain=tuple(retain))
    outputs = list(outputs) or ([graph.last_assigned] if graph.last_assigned else [])
    if not outputs:
        raise InputError("the program assigns no tensor to call backward() on",
                         hint="write at least one assignment, as in b = x * 2")
    if len(seeds) > len(outputs):
        raise InputError(f"{len(seeds)} --seed values for {len(outputs)} output(s)",
                         hint="give one --seed per --output, in order")
    padded = [graph.numbers.tensor(s) for s in seeds] + [None] * (len(outputs) - len(seeds))
    for name, seed in zip(outputs, padded):
        node = output_node(graph, name)
        if run_backward:
            backward(graph, node, seed)
    return Evaluation(graph, outputs, padded)


# -- values written as expressions ------------------------------------------------------------

_VALUE_PROGRAM = "_ = "  # a value expression is evaluated as the program `_ = <value>`


def resolve_values(given: Mapping[str, Any], dtype: str) -> dict[str, np.ndarray]:
    """The input values with each value expression evaluated in `dtype`."""
    return {name: evaluate_value(v, dtype) if isinstance(v, ValueExpression) else v for name, v in given.items()}


def evaluate_value(expression: ValueExpression, dtype: str = "float32") -> np.ndarray:
    """A value written as an expression (`eye(3)`, `arange(6).reshape(2, 3)`, `tensor([0, 2, 1])`):
    parsed by the program's parser and evaluated by the engine, as the program `_ = <value>`
    with no inputs. Only numbers, constructors and operations on them: a name is refused.
    Errors are shown under the value (`--X: ...`), not under the program made of it."""
    text, what = expression.text, expression.what
    if "\n" in text or "\r" in text:
        raise ValueExpressionError(what, text.splitlines()[0] if text.strip() else text, 1,
                                   "a value expression is one line")
    source = _VALUE_PROGRAM + text
    try:
        program = parse(source)
    except GradcalcError as error:
        raise _at_value(error, expression, source) from None
    if len(program.statements) != 1:
        extra = program.statements[1]
        raise ValueExpressionError(what, text, extra.pos.col - len(_VALUE_PROGRAM),
                                   "a value is one expression, not several statements")
    (statement,) = program.statements
    assert isinstance(statement, syntax.Assign)
    name = next((e for e in walk(statement.value) if isinstance(e, syntax.Name)), None)
    if name is not None:
        raise ValueExpressionError(what, text, name.pos.col - len(_VALUE_PROGRAM),
                                   f"a value cannot use a name ('{name.id}')",
                                   hint="a value is numbers, constructors and operations on them, "
                                        "as in linspace(-3, 3, 2000), eye(3) or tensor([0, 2, 1])")
    try:
        graph = build(program, {}, dtype=dtype)
    except GradcalcError as error:
        raise _at_value(error, expression, source) from None
    binding = graph.bindings["_"]
    if isinstance(binding, Const):  # a number alone (`pi`): a 0-d tensor of it
        value = np.asarray(graph.numbers.program_number(binding))
    else:
        value = binding.value
    check_shape(value.shape, what)
    return value


def _at_value(error: GradcalcError, expression: ValueExpression, source: str) -> GradcalcError:
    """An error of the program `_ = <value>` as an error of the value: placed under it."""
    if error.source != source:
        return InputError(f"{expression.what}: {error.message}", error.hint)
    return ValueExpressionError(expression.what, expression.text, error.col - len(_VALUE_PROGRAM),
                                error.message, error.hint)


__all__ = ["Evaluation", "evaluate", "evaluate_value", "output_node", "parse", "resolve_values"]
