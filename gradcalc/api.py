"""One evaluation end to end, as a library call: parse, build the graph, run backward."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gradcalc.engine.backward import backward
from gradcalc.engine.graph import Graph, build, output_node
from gradcalc.engine.ops import VOCABULARY
from gradcalc.errors import InputError
from gradcalc.lang import parser, syntax


def parse(source: str) -> syntax.Program:
    """The program text as a Program over the op table's functions (never evaluated)."""
    return parser.parse(source, VOCABULARY)


@dataclass
class Evaluation:
    graph: Graph
    outputs: list[str]
    seeds: list[np.ndarray | None] = field(default_factory=list)


def evaluate(source: str | syntax.Program, values: dict[str, np.ndarray], *,
             outputs: Sequence[str] = (), seeds: Sequence[np.ndarray] = (),
             retain: Sequence[str] = (), no_grad: Sequence[str] = (),
             dtype: str = "float32", run_backward: bool = True) -> Evaluation:
    """What the PyTorch program does: build the tensors, then `out.backward(seed)` for each output
    (unless run_backward is False: the tensors only, e.g. for a Jacobian)."""
    program = parse(source) if isinstance(source, str) else source
    graph = build(program, values, dtype=dtype, no_grad=frozenset(no_grad), retain=tuple(retain))
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


__all__ = ["Evaluation", "evaluate", "output_node", "parse"]
