"""Every row of the op table, checked the moment it is declared."""

import numpy as np
import pytest

from gradcalc.engine.backends import Floats
from gradcalc.engine.derive import vjp_tree
from gradcalc.engine.formula import run
from gradcalc.engine.ops import OPS, Kind
from gradcalc.lang.syntax import REQUIRED
from gradcalc.symbolic.partials import display_partial

ELEMENTWISE = [row for row in OPS.values() if row.kind is Kind.ELEMENTWISE]
OTHERS = [row for row in OPS.values() if row.vjp is not None]
# Rows whose operands are not two (2, 3) tensors of [0.5, 1.5] with the default static
# arguments: (operand shapes, None for an integer target; static arguments; value range).
SAMPLES = {"dot": ([(3,), (3,)], {}, 0.5, 1.5), "mv": ([(2, 3), (3,)], {}, 0.5, 1.5),
           "mm": ([(2, 3), (3, 4)], {}, 0.5, 1.5), "unsqueeze0": ([(3,)], {}, 0.5, 1.5),
           "squeeze0": ([(1, 3)], {}, 0.5, 1.5),
           **{name: (None, {"dim": 1}, 0.5, 1.5) for name in (
               "sum_dim", "mean_dim", "prod_dim", "max_dim", "min_dim", "logsumexp_dim", "cumsum", "cumprod",
               "unsqueeze", "softmax", "log_softmax")},
           "bmm": ([(2, 2, 3), (2, 3, 2)], {}, 0.5, 1.5),
           "select": (None, {"dim": 1, "index": 2}, 0.5, 1.5),
           "slice": (None, {"dim": 1, "start": 0, "stop": 3, "step": 2}, 0.5, 1.5),
           **{name: (None, {"shape": (3, 2)}, 0.5, 1.5) for name in ("reshape", "_reshape_alias", "_unsafe_view")},
           "view": (None, {"size": (6,)}, 0.5, 1.5),
           "transpose": (None, {"dim0": 0, "dim1": 1}, 0.5, 1.5),
           "permute": (None, {"dims": (1, 0)}, 0.5, 1.5),
           "expand": ([(1, 3)], {"size": (2, 3)}, 0.5, 1.5),
           "repeat": (None, {"repeats": (2, 1)}, 0.5, 1.5),
           "flip": (None, {"dims": (0,)}, 0.5, 1.5),
           "_diag_embed": ([(3,)], {}, 0.5, 1.5),
           # probabilities in (0, 1); class indices as the target
           **{name: (None, {}, 0.2, 0.8) for name in ("binary_cross_entropy", "binary_cross_entropy_none")},
           **{name: ([(2, 3), None], {}, 0.5, 1.5) for name in ("nll_loss", "nll_loss_none")}}


@pytest.mark.parametrize("row", ELEMENTWISE, ids=lambda r: r.name)
def test_elementwise_partials_match_central_differences(row):
    rng = np.random.default_rng(0)
    args = [rng.uniform(0.2, 0.8, size=5) for _ in range(row.arity)]
    g = rng.uniform(-2, 2, size=5)
    eps = 1e-6
    for i in range(row.arity):
        got = run(vjp_tree(row.name, i), g, args, Floats(np.float64), row.forward(*args))
        plus = [a + eps if k == i else a for k, a in enumerate(args)]
        minus = [a - eps if k == i else a for k, a in enumerate(args)]
        numeric = g * (row.forward(*plus) - row.forward(*minus)) / (2 * eps)
        np.testing.assert_allclose(got, numeric, rtol=1e-5, atol=1e-7, err_msg=f"{row.name} arg {i}")


@pytest.mark.parametrize("row", ELEMENTWISE, ids=lambda r: r.name)
def test_elementwise_rows_have_a_display_partial_and_grad_fn(row):
    for i in range(row.arity):
        assert display_partial(row.name, i) is not None
    assert row.grad_fn_name((True,) * row.arity).endswith(("Backward0", "Backward1", "Backward2"))


@pytest.mark.parametrize("row", OTHERS, ids=lambda r: r.name)
def test_hand_written_rules_match_central_differences(row):
    assert row.display_partials is not None
    rng = np.random.default_rng(1)
    shapes, params, low, high = SAMPLES.get(row.name, (None, {}, 0.5, 1.5))
    operands = [p for p in row.params if p.operand]
    shapes = shapes or [(2, 3)] * len(operands)
    params = {p.name: p.default for p in row.static_params if p.default is not REQUIRED} | params
    args = [rng.uniform(low, high, size=shape) if shape is not None else np.array([0, 2])
            for shape in shapes]
    result = row.forward(*args, **params)
    g = rng.uniform(-1, 1, size=np.shape(result))
    grads = row.vjp(g, args, result, Floats(np.float64), **params)
    assert len(grads) == len(args)
    eps = 1e-6
    for i, (grad, arg) in enumerate(zip(grads, args)):
        if arg.dtype.kind != "f":   # an integer operand (class targets) has no gradient
            continue
        assert np.shape(grad) == np.shape(arg)
        numeric = np.zeros_like(arg)
        for k in np.ndindex(arg.shape):
            bumped = [a.copy() for a in args]
            bumped[i][k] += eps
            up = np.array(row.forward(*bumped, **params))
            bumped[i][k] -= 2 * eps
            numeric[k] = np.sum(g * (up - row.forward(*bumped, **params))) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7, err_msg=f"{row.name} arg {i}")


@pytest.mark.parametrize("kinds, expected", [
    ((True, True), "SubBackward0"), ((True, False), "SubBackward0"), ((False, True), "RsubBackward1")])
def test_grad_fn_names_depend_on_operand_kinds(kinds, expected):
    assert OPS["sub"].grad_fn_name(kinds) == expected


@pytest.mark.parametrize("kinds, expected", [
    ((True, False), "PowBackward0"), ((True, True), "PowBackward1"), ((False, True), "PowBackward2")])
def test_pow_grad_fn_names(kinds, expected):
    assert OPS["pow"].grad_fn_name(kinds) == expected


def test_importing_the_table_imports_no_sympy():
    import subprocess
    import sys

    code = "import gradcalc.engine.ops, gradcalc.engine.graph, gradcalc.engine.backward, sys; assert 'sympy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("row", ELEMENTWISE, ids=lambda r: r.name)
def test_the_partial_shown_for_an_elementwise_row_evaluates_to_its_grad(row):
    """What the table, diff and --explain print for one op (its display partial) evaluates, at
    points away from kinks, to the number the backward pass computes with PyTorch's formula."""
    import sympy as sp

    from gradcalc.engine.derive import symbols

    rng = np.random.default_rng(2)
    args = [rng.uniform(0.2, 0.8, size=4) for _ in range(row.arity)]
    canonical = symbols(sp, row.arity)
    for i in range(row.arity):
        partial = display_partial(row.name, i)
        grad = run(vjp_tree(row.name, i), np.ones(4), args, Floats(np.float64), row.forward(*args))
        shown = [float(partial.subs(dict(zip(canonical, (a[k] for a in args)))).evalf())
                 for k in range(4)]
        np.testing.assert_allclose(shown, np.broadcast_to(grad, (4,)), rtol=SHOWN_RTOL.get(row.name, 1e-12),
                                   atol=1e-15, err_msg=f"{row.name}: {partial}")


# torch's hardsigmoid backward multiplies by 1.0f / 6.0f, a float32 constant, in float64 too:
# the 1/6 shown is 3e-8 away from it.
SHOWN_RTOL = {"hardsigmoid": 5e-8}


def test_the_sections_index_is_current():
    """rows/index.py is generated from the table: regenerate it with `python -m gradcalc.engine.ops`."""
    from gradcalc.engine import ops
    from gradcalc.engine.rows import index

    current = {"ROWS": index.ROWS, "FUNCTIONS": index.FUNCTIONS, "METHODS": index.METHODS,
               "ATTRIBUTES": index.ATTRIBUTES}
    assert ops.build_index() == current, "run: python -m gradcalc.engine.ops"


def test_the_reference_case_imports_no_section_of_the_table():
    """Start-up: a program of operators alone imports none of the table's sections."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from gradcalc.api import evaluate; "
            "evaluate('a = x + 2*y; b = a + z/2', {k: np.array([2.0, 1.0]) for k in 'xyz'}, seeds=[np.ones(2)]); "
            "loaded = [m for m in sys.modules if m.startswith('gradcalc.engine.rows.') and m != 'gradcalc.engine.rows.index']; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)
