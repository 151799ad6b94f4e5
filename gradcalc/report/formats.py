"""The three report formats of `gradcalc eval`: table, torch and json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from gradcalc.api import Evaluation
from gradcalc.engine.graph import Binding, Node
from gradcalc.report.tensor_str import tensor_repr


@dataclass
class Row:
    name: str
    binding: Binding

    @property
    def is_tensor(self) -> bool:
        return isinstance(self.binding, Node)

    @property
    def requires_grad(self) -> bool:
        return isinstance(self.binding, Node) and self.binding.requires_grad

    @property
    def is_leaf(self) -> bool:
        return not isinstance(self.binding, Node) or self.binding.is_leaf

    @property
    def grad_fn(self) -> str | None:
        return self.binding.grad_fn if isinstance(self.binding, Node) else None

    @property
    def grad(self) -> np.ndarray | None:
        return self.binding.grad if isinstance(self.binding, Node) else None


def rows(evaluation: Evaluation) -> list[Row]:
    graph = evaluation.graph
    return [Row(name, graph.bindings[name]) for name in graph.names]


def data_text(row: Row) -> str:
    if not isinstance(row.binding, Node):
        return repr(row.binding.value)
    return tensor_repr(row.binding.value)


def grad_text(row: Row) -> str:
    return "None" if row.grad is None else tensor_repr(row.grad)


def render_torch(evaluation: Evaluation) -> str:
    """`print(t.data, t.grad)` for each name bound to a leaf or a tensor that retains grad."""
    lines = [f"{data_text(r)} {grad_text(r)}" for r in rows(evaluation)
             if isinstance(r.binding, Node) and (r.binding.is_leaf or r.binding.retains_grad)]
    return "".join(line + "\n" for line in lines)


def symbolic_partials(evaluation: Evaluation) -> dict[str, dict[str, str | None]]:
    """{name: {output: d output / d name as a SymPy string, or None}}, from the program's
    cache entry when its graph has been seen (they depend on its structure, not its values)."""
    from gradcalc import cache
    from gradcalc.engine.graph import structure_key
    from gradcalc.symbolic.partials import over_budget

    if over_budget(evaluation.graph):  # symbols only: nothing worth keeping
        return _abbreviated_partials(evaluation)
    key = structure_key(evaluation.graph, evaluation.outputs)
    partials = cache.current().get("partials", key, lambda: _symbolic_partials(evaluation), decode=_partials_table)
    return cast(dict[str, dict[str, str | None]], partials)


def _partials_table(value) -> dict:
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValueError("not a table of partials")
    return value


def _symbolic_partials(evaluation: Evaluation) -> dict[str, dict[str, str | None]]:
    from gradcalc.api import output_node
    from gradcalc.symbolic.partials import Symbolic, text

    symbolic = Symbolic(evaluation.graph)
    per_output = {out: symbolic.partials(output_node(evaluation.graph, out))
                  for out in dict.fromkeys(evaluation.outputs)}
    result: dict[str, dict[str, str | None]] = {}
    for row in rows(evaluation):
        result[row.name] = {}
        for out, partials in per_output.items():
            expr = partials.get(row.binding.id) if isinstance(row.binding, Node) else None
            result[row.name][out] = None if expr is None else text(expr)
    return result


def _abbreviated_partials(evaluation: Evaluation) -> dict[str, dict[str, str | None]]:
    """A graph too large to expand: each partial is the symbol ∂out/∂name (1 for the output
    itself), None where no grad-requiring path joins them; no SymPy."""
    from gradcalc.api import output_node
    from gradcalc.symbolic.partials import reached

    graph = evaluation.graph
    outputs = {out: output_node(graph, out) for out in dict.fromkeys(evaluation.outputs)}
    joined = {out: reached(graph, node) for out, node in outputs.items()}
    result: dict[str, dict[str, str | None]] = {}
    for row in rows(evaluation):
        result[row.name] = {}
        for out, node in outputs.items():
            if not isinstance(row.binding, Node) or row.binding.id not in joined[out]:
                result[row.name][out] = None
            else:
                result[row.name][out] = "1" if row.binding is node else f"∂{out}/∂{row.name}"
    return result


def json_document(evaluation: Evaluation, explanations: dict[str, str] | None = None,
                  partials: dict | None = None) -> dict:
    """SPEC §5's document as Python data; `partials` may come precomputed (batch rows)."""
    partials = symbolic_partials(evaluation) if partials is None else partials
    tensors = [tensor_entry(row, json_array(row.binding.value), None if row.grad is None else json_array(row.grad),
                            partials[row.name], explanations[row.name] if explanations else None)
               for row in rows(evaluation)]
    return {"dtype": dtype_name(evaluation.graph.dtype), "outputs": list(evaluation.outputs),
            "tensors": tensors}


def tensor_entry(row: Row, data: object, grad: object, partials: dict[str, str | None],
                 explanation: str | None = None) -> dict:
    """One entry of a document's "tensors", its data and grad already JSON-ready (json_array's)."""
    entry = {"name": row.name, "shape": list(np.shape(row.binding.value)), "data": data, "grad": grad,
             "requires_grad": row.requires_grad, "is_leaf": row.is_leaf, "grad_fn": row.grad_fn,
             "partials": partials}
    if explanation is not None:
        entry["explanation"] = explanation
    return entry


def evaluation_json(evaluation: Evaluation, explanations: dict[str, str] | None = None) -> str:
    """`eval --format json`: SPEC §5's document, one tensor a line."""
    document = json_document(evaluation, explanations)
    # One tensor a line: readable by people, and by jq like any JSON.
    body = ",\n".join(f"    {json.dumps(t, allow_nan=False, ensure_ascii=False)}" for t in document["tensors"])
    return (f'{{\n  "dtype": {json.dumps(document["dtype"])},\n'
            f'  "outputs": {json.dumps(document["outputs"])},\n'
            f'  "tensors": [\n{body}\n  ]\n}}\n')



def dtype_name(dtype) -> str:
    return "exact" if dtype == np.dtype(object) else dtype.name


def json_array(value) -> Any:
    """Nested lists of numbers (a number for a 0-d array); nan and infinities as the strings
    "nan", "inf", "-inf"; float32 by its shortest digits (NumPy's), read as a double; an
    integer tensor's integers and a bool tensor's booleans as JSON writes them."""
    array = np.asarray(value)
    if array.dtype == object:  # `--exact`: SymPy's text of each number, "1/3"
        return np.frompyfunc(str, 1, 1)(array).tolist() if array.ndim else str(array.item())
    if array.dtype.kind in "iub":  # an int64 tensor's integers (exact), a bool tensor's true/false
        return array.tolist()
    finite = np.isfinite(array)
    if finite.all():
        return _numbers(array)
    flat = [number if ok else _special(x) for number, ok, x in
            zip(_numbers(np.where(finite, array, 0).reshape(-1)), finite.ravel().tolist(), array.ravel().tolist())]
    return flat[0] if array.ndim == 0 else np.array(flat, dtype=object).reshape(array.shape).tolist()


def _numbers(array: np.ndarray) -> Any:
    """`array.astype(np.float64).tolist()`, but a float32 through its shortest decimal digits,
    so 0.1 gives 0.1, not 0.10000000149011612: orjson writes a float32 with the digits of
    NumPy's str (the shortest that read back as the same float32; tests/test_shortest.py),
    in C, and reads them back as doubles. Finite numbers only (orjson writes null for nan)."""
    if array.dtype != np.float32:
        return array.astype(np.float64).tolist()
    if array.size < 256:  # a few numbers: NumPy's own digits, a µs each, and no orjson to import
        return array.astype(str).astype(np.float64).tolist()
    import orjson

    return orjson.loads(orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY))


def _special(x: float) -> str:
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def render_csv(evaluation: Evaluation) -> str:
    """One row per tensor element: name, index (comma-separated, empty for 0-d), data, grad."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "index", "data", "grad"])
    for row in rows(evaluation):
        data = np.asarray(row.binding.value)
        grad = None if row.grad is None else np.asarray(row.grad)
        data_texts = _csv_numbers(data)
        grad_texts = _csv_numbers(grad) if grad is not None else [""] * data.size
        for k, index in enumerate(np.ndindex(data.shape)):
            writer.writerow([row.name, ",".join(str(i) for i in index), data_texts[k], grad_texts[k]])
    return out.getvalue()


def _csv_numbers(array: np.ndarray) -> list[str]:
    flat = json_array(array.reshape(-1)) if array.ndim else [json_array(array)]
    return [str(v) for v in flat]


def render_table(evaluation: Evaluation) -> Any:
    """The table report: a Rich table for a console to lay out at the terminal's width, or, past
    TABLE_ROWS_BUDGET rows, the same as plain text."""
    from rich.table import Table
    from rich.text import Text

    partials = symbolic_partials(evaluation)
    seeds = ", ".join(f"{out}.backward({'' if s is None else tensor_repr(s)})"
                      for out, s in zip(evaluation.outputs, evaluation.seeds))
    cells = [_cells(row, partials[row.name]) for row in rows(evaluation)]
    headers = ["name", "data", "grad", "requires_grad", "is_leaf", "grad_fn",
               *(f"∂{out}/∂name" for out in dict.fromkeys(evaluation.outputs))]
    if len(cells) > TABLE_ROWS_BUDGET:
        return seeds + "\n" + plain_table(headers, cells)
    multiline = any("\n" in c for row in cells for c in row)
    table = Table(title=seeds, title_justify="left", show_lines=multiline)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in cells:
        table.add_row(*(Text(c) for c in row))
    return table


# Rich lays out a table at about a millisecond a cell; past this many rows the table is
# written as plain aligned columns instead (a 10,000-statement program: 0.2 s, not 10 s).
TABLE_ROWS_BUDGET = 500


def plain_table(headers: list[str], rows: list[tuple[str, ...]]) -> str:
    """Aligned columns separated by two spaces, a rule under the headers; cells of several
    lines (n-d tensors) take as many lines."""
    split = [[cell.split("\n") for cell in row] for row in rows]
    widths = [max([len(h)] + [len(line) for row in split for line in row[k]]) for k, h in enumerate(headers)]

    def line(parts) -> str:
        return "  ".join(p.ljust(w) for p, w in zip(parts, widths)).rstrip() + "\n"

    out = [line(headers), line("─" * w for w in widths)]
    for row in split:
        for i in range(max(len(cell) for cell in row)):
            out.append(line(cell[i] if i < len(cell) else "" for cell in row))
    return "".join(out)


def _cells(row: Row, partials: dict[str, str | None]) -> tuple[str, ...]:
    return (row.name, data_text(row), grad_text(row), str(row.requires_grad), str(row.is_leaf),
            row.grad_fn or "None", *(p if p is not None else "—" for p in partials.values()))
