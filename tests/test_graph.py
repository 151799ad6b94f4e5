"""Graph and backward semantics that need no oracle: order, flags, aliasing, depth, broadcasting."""

import numpy as np
import pytest

from gradcalc.api import evaluate
from gradcalc.engine.backward import unbroadcast
from gradcalc.engine.graph import Const
from gradcalc.errors import InputError, TorchError


def run(source, seeds=(), **values):
    kwargs = {k: v for k, v in values.items() if k in ("outputs", "retain", "no_grad", "dtype")}
    arrays = {k: np.asarray(v, dtype=float) for k, v in values.items() if k not in kwargs}
    return evaluate(source, arrays, seeds=[np.asarray(s, dtype=float) for s in seeds], **kwargs)


def test_report_order_is_inputs_then_final_assignments():
    ev = run("a = y * 2; b = a + x; a = b * 3; c = a.sum()", x=[1.0], y=[2.0])
    assert ev.graph.names == ["y", "x", "b", "a", "c"]


def test_flags_of_leaves_intermediates_and_detached():
    ev = run("a = x * 2; d = a.detach(); n = z * 2; b = (a + d + n).sum()", x=[1.0, 2.0], z=[1.0, 1.0],
             no_grad=["z"])
    b = ev.graph.bindings
    assert b["x"].is_leaf and b["x"].requires_grad and b["x"].grad_fn is None
    assert not b["a"].is_leaf and b["a"].grad_fn == "MulBackward0" and b["a"].grad is None
    assert b["d"].is_leaf and not b["d"].requires_grad and b["d"].grad is None
    assert b["z"].is_leaf and not b["z"].requires_grad and b["z"].grad is None
    assert b["n"].is_leaf and not b["n"].requires_grad and b["n"].grad_fn is None
    np.testing.assert_array_equal(b["x"].grad, [2.0, 2.0])


def test_unary_plus_is_the_same_tensor():
    ev = run("b = +x; c = (b * 2).sum()", x=[1.0])
    assert ev.graph.bindings["b"] is ev.graph.bindings["x"]


def test_numbers_fold_to_python_numbers():
    ev = run("c = 2 * pi / 4; b = (x * c).sum()", x=[1.0])
    c = ev.graph.bindings["c"]
    assert isinstance(c, Const) and c.value == pytest.approx(np.pi / 2)


def test_several_outputs_accumulate_and_retained_grads_too():
    ev = run("a = x * 3; a.retain_grad(); b = a.sum(); c = (a * a).sum()", x=[1.0, 2.0],
             outputs=["b", "c", "b"])
    np.testing.assert_allclose(ev.graph.bindings["x"].grad, 3 + 3 * 2 * np.array([3.0, 6.0]) + 3)
    np.testing.assert_allclose(ev.graph.bindings["a"].grad, 1 + 2 * np.array([3.0, 6.0]) + 1)


def test_retain_grad_on_a_tensor_without_grad_is_torchs_error():
    with pytest.raises(TorchError, match="can't retain_grad on Tensor that has requires_grad=False"):
        run("a = x * 2; b = a.sum()", x=[1.0], no_grad=["x"], retain=["a"])


def test_the_last_assigned_name_is_the_default_output():
    ev = run("b = x.sum(); c = (x * 2).sum()", x=[1.0])
    assert ev.outputs == ["c"]
    np.testing.assert_array_equal(ev.graph.bindings["x"].grad, [2.0])


def test_a_program_without_assignments_has_no_output():
    with pytest.raises(InputError, match="assigns no tensor"):
        run("x.retain_grad()", x=[1.0])


@pytest.mark.parametrize("grad_shape, shape, expected", [
    ((2, 3), (3,), [2.0, 2.0, 2.0]),
    ((2, 3), (2, 1), [[3.0], [3.0]]),
    ((2, 3), (), 6.0),
    ((2, 3), (1, 1), [[6.0]]),
    ((4,), (4,), [1.0] * 4),
])
def test_unbroadcast_sums_back_to_the_operand_shape(grad_shape, shape, expected):
    got = unbroadcast(np.ones(grad_shape), shape)
    assert got.shape == shape
    np.testing.assert_array_equal(got, expected)


def test_a_long_chain_does_not_recurse():
    lines = ["a0 = x"] + [f"a{i} = sin(a{i - 1}) * x + a{i - 1} * y" for i in range(1, 3001)]
    ev = run("\n".join(lines) + "\nb = a3000.sum()", x=[0.5], y=[0.5])
    assert np.isfinite(ev.graph.bindings["x"].grad).all()


def test_a_long_flat_sum():
    ev = run("b = (" + " + ".join(["x"] * 10_000) + ").sum()", x=[1.0, 2.0])
    np.testing.assert_array_equal(ev.graph.bindings["x"].grad, [10_000.0, 10_000.0])


def test_x_times_x_over_x_at_zero_is_nan_as_in_torch():
    ev = run("b = (x * x / x).sum()", x=[0.0, 2.0])
    grad = ev.graph.bindings["x"].grad
    assert np.isnan(grad[0]) and grad[1] == 1.0


def test_float32_is_the_default_and_float64_switches_everything():
    assert run("b = x.sum()", x=[1.0]).graph.bindings["x"].grad.dtype == np.float32
    ev = run("b = x.sum()", x=[1.0], dtype="float64")
    assert ev.graph.bindings["x"].grad.dtype == np.float64
    assert ev.graph.bindings["b"].value.dtype == np.float64
