"""`eval --batch FILE.jsonl`: one JSON object of values per line in, one SPEC §5 document per line out.

The program is parsed once and its partials derived once. Rows are read in chunks and
grouped by their inputs' shapes; the first row of a group is evaluated on its own (which
also checks it), and when the program is elementwise only, the rest of the group is
evaluated at once, stacked along a leading batch axis: elementwise ops and their backward
formulas act on each row alone, so every row gets the numbers it would get by itself. A
bad row is reported with its line number and the others go on.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from gradcalc import syntax
from gradcalc.errors import GradcalcError
from gradcalc.ops import OPS, Kind

CHUNK = 8192
# Elementwise rows whose results depend on a tensor's layout (torch's vector/scalar loops).
_LAYOUT_DEPENDENT = {"maximum", "minimum"}


@dataclass
class RowResult:
    line: int
    document: Optional[str]   # one line of JSON, or None for a bad row
    error: Optional[str]


def run_batch(program: syntax.Program, lines: Iterable[str], *, outputs=(), seeds=(), retain=(),
              no_grad=(), dtype="float32") -> Iterator[RowResult]:
    options = dict(outputs=outputs, seeds=seeds, retain=retain, no_grad=no_grad, dtype=dtype)
    stackable = _elementwise_only(program)
    partials: dict[tuple, dict] = {}
    numbered = ((n, line) for n, line in enumerate(lines, 1) if line.strip())
    while chunk := list(itertools.islice(numbered, CHUNK)):
        yield from _run_chunk(program, chunk, options, stackable, partials)


def _run_chunk(program, chunk, options, stackable, partials) -> Iterator[RowResult]:
    from gradcalc.values import parse_json_values

    results: dict[int, RowResult] = {}
    groups: dict[tuple, list] = {}
    for number, line in chunk:
        try:
            values = parse_json_values(line, f"line {number}")
        except GradcalcError as e:
            results[number] = RowResult(number, None, f"line {number}: {e.render()}")
            continue
        key = tuple(sorted((name, v.shape) for name, v in values.items()))
        groups.setdefault(key, []).append((number, values))
    for key, rows in groups.items():
        for number, document, error in _run_group(program, rows, options, stackable, partials, key):
            results[number] = RowResult(number, document, error)
    for number, _ in chunk:
        yield results[number]


def _run_group(program, rows, options, stackable, partials, key):
    from gradcalc.render import json_document, symbolic_partials
    from gradcalc.session import evaluate

    first_number, first_values = rows[0]
    try:
        template = evaluate(program, first_values, **options)
    except GradcalcError as e:
        # Rows of one shape fail alike: the errors depend on shapes, never on values.
        for number, _ in rows:
            yield number, None, f"line {number}: {e.render()}"
        return
    if key not in partials:
        partials[key] = symbolic_partials(template)
    yield first_number, _dumps(json_document(template, partials=partials[key])), None
    rest = rows[1:]
    if not rest:
        return
    if stackable:
        yield from _stacked(program, template, rest, options, partials[key])
        return
    for number, values in rest:
        evaluation = evaluate(program, values, **options)
        yield number, _dumps(json_document(evaluation, partials=partials[key])), None


def _stacked(program, template, rows, options, partials):
    """Rows of one shape at once, along a leading batch axis (elementwise programs only)."""
    from gradcalc.graph import Node
    from gradcalc.render import json_array
    from gradcalc.session import evaluate, output_node

    graph = template.graph
    rank = max((v.ndim for v in rows[0][1].values()), default=0)
    count = len(rows)

    def stack(arrays, shape):
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        return np.stack(arrays).reshape((count,) + padded)

    values = {name: stack([r[name] for _, r in rows], rows[0][1][name].shape) for name in rows[0][1]}
    seeds = []
    for out, seed in zip(template.outputs, template.seeds):
        shape = output_node(graph, out).shape
        seed = np.ones(shape) if seed is None else seed
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        seeds.append(np.broadcast_to(np.asarray(seed).reshape(padded), (count,) + padded))
    batched = evaluate(program, values, **{**options, "seeds": seeds}).graph
    fixed = []
    for name in graph.names:
        binding = graph.bindings[name]
        if isinstance(binding, Node):
            node = batched.nodes[binding.id]
            fixed.append((name, binding, node))
        else:
            fixed.append((name, binding, None))
    head = {"dtype": graph.dtype.name, "outputs": list(template.outputs)}
    for i, (number, _) in enumerate(rows):
        tensors = []
        for name, binding, node in fixed:
            if node is None:
                data, grad = json_array(np.asarray(binding.value)), None
            else:
                data = json_array(node.value[i].reshape(binding.shape))
                grad = None if node.grad is None else json_array(node.grad[i].reshape(binding.shape))
            tensors.append({
                "name": name, "shape": list(np.shape(binding.value)), "data": data, "grad": grad,
                "requires_grad": bool(getattr(binding, "requires_grad", False)),
                "is_leaf": bool(getattr(binding, "is_leaf", True)),
                "grad_fn": getattr(binding, "grad_fn", None), "partials": partials[name]})
        yield number, _dumps({**head, "tensors": tensors}), None


def _elementwise_only(program: syntax.Program) -> bool:
    """Whether every operation acts on each element alone (so rows can be stacked)."""
    from gradcalc.graph import _walk

    for statement in program.statements:
        if isinstance(statement, syntax.Assign):
            for e in _walk(statement.value):
                if isinstance(e, syntax.Call):
                    row = OPS[e.op]
                    if row.kind not in (Kind.ELEMENTWISE, Kind.IDENTITY, Kind.DETACH) or e.op in _LAYOUT_DEPENDENT:
                        return False
                    if row.lower is not None and e.op != "div":
                        return False
    return True


def _dumps(document: dict) -> str:
    return json.dumps(document, allow_nan=False, ensure_ascii=False)
