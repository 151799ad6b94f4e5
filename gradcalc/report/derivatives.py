"""The text of `eval --jacobian` and `--hessian`: torch's `NAME: tensor(...)` lines, a json
document, or a titled block per input for the table."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from gradcalc.report.formats import dtype_name, json_array
from gradcalc.report.tensor_str import tensor_repr


@dataclass
class Derivatives:
    """The Jacobian ({input: array}) or Hessian ({input: {input: array}}) of `output`."""
    output: str
    dtype: np.dtype
    table: dict
    second: bool

    @property
    def key(self) -> str:
        return "hessian" if self.second else "jacobian"

    def texts(self) -> dict[str, str]:
        """Each input's result as torch prints it: a tensor, or a tuple of them (a Hessian row)."""
        if not self.second:
            return {name: tensor_repr(j) for name, j in self.table.items()}
        single = len(self.table) == 1
        return {a: tensor_repr(row[a]) if single else "(" + ", ".join(tensor_repr(h) for h in row.values()) + ")"
                for a, row in self.table.items()}


def derivatives_torch(d: Derivatives) -> str:
    return "".join(f"{name}: {text}\n" for name, text in d.texts().items())


def derivatives_json(d: Derivatives) -> str:
    data: dict[str, object]
    if d.second:
        data = {a: {b: json_array(h) for b, h in row.items()} for a, row in d.table.items()}
    else:
        data = {name: json_array(j) for name, j in d.table.items()}
    document = {"dtype": dtype_name(d.dtype), "output": d.output, d.key: data}
    return json.dumps(document, ensure_ascii=False) + "\n"


def derivatives_table(d: Derivatives) -> list[str]:
    """`jacobian of OUT by NAME:` and the tensor below it, one block per input."""
    return [f"{d.key} of {d.output} by {name}:\n{text}" for name, text in d.texts().items()]
