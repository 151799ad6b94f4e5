"""An int64 tensor given to each function of one tensor, and among the operands of functions
of several (where, masked_fill, threshold, the losses, the matrix products): torch's result
dtype and values, or torch's error (a kernel without an integer version, "... not implemented
for 'Long'"; operands of different dtypes)."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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


# -- int64 tensors among the operands of functions of two or three (torch's promotion, or its
#    dtype error): each program beside the same torch call --------------------------------

_I, _F = np.array([-1, 0, 1, 2]), np.array([0.25, 0.5, 0.0, 1.0], dtype=np.float32)
_M = np.arange(8).reshape(2, 4)
_VALUES = {"i": _I, "f": _F, "M": _M, "Mf": _M.astype(np.float32)}

MIXED = [
    ("F.threshold(i, 1, 5)", lambda i, f, M, Mf: F.threshold(i, 1, 5)),
    ("F.threshold(i, -0.5, 7.9)", lambda i, f, M, Mf: F.threshold(i, -0.5, 7.9)),
    ("F.threshold(f, 0.3, 2)", lambda i, f, M, Mf: F.threshold(f, 0.3, 2)),
    ("torch.where(i > 0, i, i)", lambda i, f, M, Mf: torch.where(i > 0, i, i)),
    ("torch.where(i > 0, i, 2)", lambda i, f, M, Mf: torch.where(i > 0, i, 2)),
    ("torch.where(i > 0, i, 2.5)", lambda i, f, M, Mf: torch.where(i > 0, i, 2.5)),
    ("torch.where(i > 0, 1, 2)", lambda i, f, M, Mf: torch.where(i > 0, 1, 2)),
    ("torch.where(i > 0, 1., 2)", lambda i, f, M, Mf: torch.where(i > 0, 1., 2)),
    ("torch.where(i > 0, i, f)", lambda i, f, M, Mf: torch.where(i > 0, i, f)),
    ("i.where(i > 0, 3)", lambda i, f, M, Mf: i.where(i > 0, 3)),
    ("i.masked_fill(i > 0, 3)", lambda i, f, M, Mf: i.masked_fill(i > 0, 3)),
    ("i.masked_fill(i > 0, 3.5)", lambda i, f, M, Mf: i.masked_fill(i > 0, 3.5)),
    ("f.masked_fill(i > 0, 3)", lambda i, f, M, Mf: f.masked_fill(i > 0, 3)),
    ("M @ i", lambda i, f, M, Mf: M @ i),
    ("M @ f", lambda i, f, M, Mf: M @ f),
    ("Mf @ i", lambda i, f, M, Mf: Mf @ i),
    ("torch.mv(M, f)", lambda i, f, M, Mf: torch.mv(M, f)),
    ("i @ f", lambda i, f, M, Mf: i @ f),
    ("torch.dot(f, i)", lambda i, f, M, Mf: torch.dot(f, i)),
    ("i @ M.T", lambda i, f, M, Mf: i @ M.T),
    ("f @ M.T", lambda i, f, M, Mf: f @ M.T),
    ("M @ Mf.T", lambda i, f, M, Mf: M @ Mf.T),
    ("torch.mm(Mf, M.T)", lambda i, f, M, Mf: torch.mm(Mf, M.T)),
    ("torch.bmm(M[None], Mf.T[None])", lambda i, f, M, Mf: torch.bmm(M[None], Mf.T[None])),
    ("M[None] @ Mf.T", lambda i, f, M, Mf: M[None] @ Mf.T),
    ("M[None].expand(2, 2, 4) @ Mf.T", lambda i, f, M, Mf: M[None].expand(2, 2, 4) @ Mf.T),
    ("i @ Mf.T[None]", lambda i, f, M, Mf: i @ Mf.T[None]),
    ("torch.outer(i, f)", lambda i, f, M, Mf: torch.outer(i, f)),
    # integer powers (torch's powi: wrapping products; a negative tensor exponent is 1/base
    # truncated, a negative number exponent an error), and float ones
    ("i ** 2", lambda i, f, M, Mf: i ** 2),
    ("i ** 0", lambda i, f, M, Mf: i ** 0),
    ("i ** -1", lambda i, f, M, Mf: i ** -1),
    ("i ** 2.", lambda i, f, M, Mf: i ** 2.),
    ("2 ** i", lambda i, f, M, Mf: 2 ** i),
    ("(-3) ** i", lambda i, f, M, Mf: (-3) ** i),
    ("i ** i", lambda i, f, M, Mf: i ** i),
    ("(i - 1) ** (i - 2)", lambda i, f, M, Mf: (i - 1) ** (i - 2)),
    ("(i + 3) ** 40", lambda i, f, M, Mf: (i + 3) ** 40),
    ("torch.pow(i, 3)", lambda i, f, M, Mf: torch.pow(i, 3)),
    ("i.pow(f)", lambda i, f, M, Mf: i.pow(f)),
    ("f ** i", lambda i, f, M, Mf: f ** i),
    ("2.5 ** i", lambda i, f, M, Mf: 2.5 ** i),
    # alpha, maximum, minimum, clamp with one bound
    ("torch.add(i, i, alpha=2)", lambda i, f, M, Mf: torch.add(i, i, alpha=2)),
    ("torch.add(i, i, alpha=2.5)", lambda i, f, M, Mf: torch.add(i, i, alpha=2.5)),
    ("torch.sub(i, 1, alpha=2)", lambda i, f, M, Mf: torch.sub(i, 1, alpha=2)),
    ("torch.add(i, f, alpha=2.5)", lambda i, f, M, Mf: torch.add(i, f, alpha=2.5)),
    ("torch.maximum(i, i.flip(0))", lambda i, f, M, Mf: torch.maximum(i, i.flip(0))),
    ("torch.minimum(i, f)", lambda i, f, M, Mf: torch.minimum(i, f)),
    ("i.clamp(max=1)", lambda i, f, M, Mf: i.clamp(max=1)),
    ("i.clamp(min=0)", lambda i, f, M, Mf: i.clamp(min=0)),
    ("i.clamp(0.5)", lambda i, f, M, Mf: i.clamp(0.5)),
    ("torch.clamp(i, 0, 1)", lambda i, f, M, Mf: torch.clamp(i, 0, 1)),
]
for _loss in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
              "binary_cross_entropy_with_logits", "kl_div"):
    for _a, _b in (("i", "f"), ("f", "i"), ("i", "i")):
        for _reduction in ("mean", "sum", "none"):
            MIXED.append((f"F.{_loss}({_a}, {_b}, reduction='{_reduction}')",
                          lambda i, f, M, Mf, loss=_loss, a=_a, b=_b, r=_reduction:
                          getattr(F, loss)(locals()[a], locals()[b], reduction=r)))
MIXED.append(("F.kl_div(i, f, log_target=True)", lambda i, f, M, Mf: F.kl_div(i, f, log_target=True)))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("program, torch_call", MIXED, ids=[m[0] for m in MIXED])
def test_int64_among_several_operands_is_what_torch_makes_of_it(program, torch_call):
    # (a float input requires grad, as gradcalc's do by default: matmul's dispatch reads it)
    tensors = {k: torch.tensor(v, requires_grad=v.dtype.kind == "f") for k, v in _VALUES.items()}
    try:
        want, error = torch_call(**tensors), None
    except RuntimeError as e:
        want, error = None, str(e).splitlines()[0]
    used = {k: v for k, v in _VALUES.items() if k in re.findall(r"\w+", program)}
    if error is not None:
        with pytest.raises(GradcalcError) as info:
            evaluate(f"b = {program}", used, run_backward=False)
        assert info.value.message == error
        return
    got = evaluate(f"b = {program}", used, run_backward=False).graph.bindings["b"].value
    assert str(got.dtype) == str(want.dtype).replace("torch.", "")
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-6)
