"""An int64 tensor given to each function of one tensor: torch's result dtype and values, or
torch's error for a kernel without an integer version ("... not implemented for 'Long'")."""

import numpy as np
import pytest
import torch
from torch_oracle import ORACLE_OPS

from gradcalc.api import evaluate
from gradcalc.engine.ops import OPS, Kind
from gradcalc.errors import GradcalcError
from gradcalc.lang.syntax import REQUIRED, ParamKind

VALUE = np.array([[1, -2], [3, 0]])
# functions whose int64 result is known to differ from torch's (with the reason): none now
KNOWN: dict[str, str] = {}


def _one_tensor_functions():
    for name, row in OPS.items():
        if row.internal or row.kind is Kind.CONSTANT or not row.function:
            continue
        operands = [p for p in row.params if p.operand]
        required = [p for p in row.params if p.default is REQUIRED]
        if not operands or operands[0].kind is not ParamKind.TENSOR or len(required) != 1:
            continue
        yield name


@pytest.mark.parametrize("name", sorted(_one_tensor_functions()))
def test_an_int64_operand_is_what_torch_makes_of_it(name):
    if name in KNOWN:
        pytest.xfail(KNOWN[name])
    row = OPS[name]
    numbers = [p.default for p in row.params if p.operand and p.kind is ParamKind.NUMBER]
    statics = {p.name: p.default for p in row.static_params}
    try:
        want = ORACLE_OPS[name].apply(torch.tensor(VALUE), *numbers, **statics)
        error = None
    except RuntimeError as e:
        want, error = None, str(e).splitlines()[0]
    if error is not None:
        with pytest.raises(GradcalcError) as info:
            evaluate(f"b = {row.call_as or name}(v)", {"v": VALUE}, run_backward=False)
        assert info.value.message == error
        return
    got = evaluate(f"b = {row.call_as or name}(v)", {"v": VALUE}, run_backward=False).graph.bindings["b"]
    assert str(got.value.dtype) == str(want.dtype).replace("torch.", "")
    if got.value.dtype.kind == "f":   # a libm's last ulp (torch's vectorised, gradcalc's one precision up)
        np.testing.assert_allclose(got.value, want.numpy(), rtol=1e-6)
    else:
        np.testing.assert_array_equal(got.value, want.numpy())
    assert not got.requires_grad
