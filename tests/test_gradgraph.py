"""The grad_fn graph against real PyTorch's `next_functions`, and its three renderings."""

import io
import re
import shutil
import subprocess
import time
from collections import Counter

import numpy as np
import pytest
import torch
from rich.console import Console
from torch_oracle import OracleOp, run_torch

from gradcalc.api import evaluate, parse
from gradcalc.engine.grad_fns import GradEdge, GradGraph, GradNode, grad_graph
from gradcalc.engine.graph import build
from gradcalc.engine.ops import OPS, VOCABULARY, Kind
from gradcalc.errors import GradcalcError, InputError, TorchError
from gradcalc.lang.syntax import REQUIRED, ParamKind
from gradcalc.report.graphs import dot_escape, mermaid_escape, render_dot, render_mermaid, render_tree

VALUES = {"x": [0.1, 0.2, 0.3], "y": [0.4, 0.5, 0.6], "z": [0.7, 0.8, 0.9],
          "A": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]],
          "B": [[0.5, 1.0, 1.5], [2.0, 2.5, 3.0], [3.5, 4.0, 4.5]]}


def _clamp(x, lo, hi):
    """A tensor bound makes torch take both bounds as tensors: torch.clamp(x, lo, tensor(1.))."""
    if isinstance(lo, torch.Tensor) or isinstance(hi, torch.Tensor):
        lo, hi = (b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=x.dtype) for b in (lo, hi))
    return torch.clamp(x, lo, hi)


ORACLE_OVERRIDES = {"clamp": OracleOp(_clamp)}


def values_for(source):
    names = set(re.findall(r"[A-Za-z_]\w*", source))
    return {k: np.asarray(v) for k, v in VALUES.items() if k in names}


def gradcalc_graph(source, output=None, no_grad=()):
    """The graph only: no backward pass, so non-scalar outputs need no seed."""
    graph = build(parse(source), values_for(source), no_grad=frozenset(no_grad))
    return grad_graph(graph, output or graph.last_assigned)


def evaluated_graph(source, output, **kwargs):
    ev = evaluate(source, values_for(source), outputs=[output], **kwargs)
    return grad_graph(ev.graph, output)


def gradcalc_triples(g: GradGraph, names=True) -> Counter:
    def label(node_id):
        node = by_id[node_id]
        return (node.grad_fn, tuple(sorted(node.name.split(", "))) if names and node.name else ())

    by_id = {n.id: n for n in g.nodes}
    return Counter((label(e.parent), e.index, None if e.child is None else label(e.child))
                   for e in g.edges)


def run_torch_graph(source, output=None, no_grad=()):
    """The PyTorch program; `error` only if building its graph failed, not backward()
    (a non-scalar output without a seed fails there)."""
    result = run_torch(source, values_for(source), no_grad=no_grad, overrides=ORACLE_OVERRIDES,
                       outputs=[output] if output else ())
    if result.error is not None and "implicitly created" in result.error.message:
        result.error = None
    return result


def torch_triples(source, output=None, no_grad=(), names=True) -> tuple[Counter, int]:
    """(parent, position, child) over `out.grad_fn.next_functions`, walked without recursion;
    a grad_fn is labelled by the names bound to its tensor, an AccumulateGrad by its leaf's."""
    result = run_torch_graph(source, output, no_grad)
    assert result.error is None, result.error
    bound: dict[int, list[str]] = {}
    for name, report in result.tensors.items():
        t = report.tensor
        if t is not None and t.requires_grad:
            bound.setdefault(id(t) if t.is_leaf else id(t.grad_fn), []).append(name)

    def label(fn):
        key = id(fn.variable) if hasattr(fn, "variable") else id(fn)
        return (type(fn).__name__, tuple(sorted(bound.get(key, []))) if names else ())

    out = result[output or result.names[-1]].tensor
    if out.grad_fn is None:  # the output is a leaf itself (flatten of a 1-D x returns x): its AccumulateGrad
        return Counter(), 1
    seen, stack, triples = {id(out.grad_fn)}, [out.grad_fn], Counter()
    while stack:
        fn = stack.pop()
        for index, (child, _) in enumerate(fn.next_functions):
            triples[(label(fn), index, None if child is None else label(child))] += 1
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                stack.append(child)
    return triples, len(seen)


PROGRAMS = [
    "a = x + 2*y; b = a + z/2",
    "b = 2 - x", "b = x - 2", "b = 2 / x", "b = x / 2", "b = 2 * x", "b = x * 2", "b = 2 + x",
    "b = x ** y", "b = x ** 2", "b = 2 ** x", "b = y ** x",
    "d = x.detach(); b = x * d + d",
    "b = x - x.detach()",
    "a = x * y; b = a.sum() + x.mean() + x.prod() + a.max() + a.min() + x.norm()",
    "b = A @ x", "b = x @ A", "b = A @ B", "b = x @ y", "b = dot(x, y)", "b = (x @ A) @ B",
    "a = x*x; b = a + a",
    "a = x*x; c = a * 2; b = (a + a) * c",
    "a = x * 2; c = a; b = c * a",
    "b = +x * 3",
    "b = clamp(x, 0, 1)", "b = clamp(x, y, 1)", "b = clamp(x, 0, y)", "b = clamp(x, y, z)",
    "b = maximum(x, 2)", "b = minimum(2, x)", "b = atan2(x, 2)", "b = maximum(x, y)",
    "b = square(x) + relu(x) - -x + abs(x)",
    "b = 2*x + x*2 + (2+x) + (x-2) + x/2 + 2/x + (2-x)",
    "n = z * 2; b = x * n + y",
]


@pytest.mark.parametrize("source", PROGRAMS)
def test_next_functions_match_torch(source):
    expected, count = torch_triples(source)
    g = gradcalc_graph(source)
    assert gradcalc_triples(g) == expected
    assert len(g.nodes) == count


@pytest.mark.parametrize("no_grad", [("y",), ("x",), ("y", "z")])
def test_inputs_without_grad_are_none_entries(no_grad):
    source = "a = x + 2*y; b = a * z"
    expected, count = torch_triples(source, no_grad=no_grad)
    g = gradcalc_graph(source, no_grad=no_grad)
    assert gradcalc_triples(g) == expected and len(g.nodes) == count


def test_rebound_names_keep_torchs_structure():
    source = "a = x * 2; a = a + 1; a = a * a; b = a.sum()"
    expected, _ = torch_triples(source, names=False)
    assert gradcalc_triples(gradcalc_graph(source), names=False) == expected


def _calls():
    """Every callable row of the op table whose required arguments are all operands, with
    tensors and with numbers where it takes them (rows with static arguments, dims and
    constructors, are in test_every_row's programs)."""
    for name, signatures in VOCABULARY.functions.items():
        op = OPS[signatures[0].op]
        required = [p for p in signatures[0].params if p.default is REQUIRED]
        if op.kind is Kind.DETACH or any(p.kind not in (ParamKind.TENSOR, ParamKind.NUMBER) for p in required):
            continue
        if any(p.kind is ParamKind.NUMBER for p in required):
            yield f"b = {name}(x, {', '.join('1.5' for _ in required[1:])})"
        elif len(required) == 1:
            yield f"b = {name}(x)"
        elif len(required) == 2:
            yield from (f"b = {name}(x, y)", f"b = {name}(x, 2)", f"b = {name}(2, x)")
        else:
            yield from (f"b = {name}(x, 0, 1)", f"b = {name}(x, y, 1)", f"b = {name}(x, y, z)")


@pytest.mark.parametrize("source", list(_calls()))
def test_every_op_matches_torch(source):
    if run_torch_graph(source).error is not None:
        with pytest.raises(GradcalcError):
            gradcalc_graph(source)
        return
    expected, count = torch_triples(source)
    g = gradcalc_graph(source)
    assert gradcalc_triples(g) == expected and len(g.nodes) == count


def test_reference_program_in_detail():
    g = gradcalc_graph("a = x + 2*y; b = a + z/2")
    assert [n.label for n in g.nodes] == ["b: AddBackward0", "DivBackward0", "a: AddBackward0",
                                          "MulBackward0", "z: AccumulateGrad", "y: AccumulateGrad",
                                          "x: AccumulateGrad"]
    ids = {n.label: n.id for n in g.nodes}
    children = g.next_functions()
    assert [e.child for e in children[ids["b: AddBackward0"]]] == [ids["a: AddBackward0"],
                                                                   ids["DivBackward0"]]
    assert [e.child for e in children[ids["DivBackward0"]]] == [ids["z: AccumulateGrad"], None]


def test_errors_as_gradcalc_raises_them():
    with pytest.raises(TorchError, match="element 0 of tensors does not require grad"):
        gradcalc_graph("b = x * 2", no_grad=("x",))
    with pytest.raises(TorchError, match="element 0 of tensors does not require grad"):
        gradcalc_graph("b = x.detach() * 2")
    graph = build(parse("c = 2 * 3; b = x * c"), {"x": np.ones(2)})
    with pytest.raises(InputError, match="no tensor named 'q'"):
        grad_graph(graph, "q")
    with pytest.raises(InputError, match="is a number"):
        grad_graph(graph, "c")


def test_a_leaf_output_is_its_accumulate_grad():
    graph = build(parse("b = x * 2"), {"x": np.ones(2)})
    g = grad_graph(graph, "x")
    assert [n.label for n in g.nodes] == ["x: AccumulateGrad"] and g.edges == []


# ---- values --------------------------------------------------------------------------

def test_values_show_leaf_grads_and_retained_grads_only():
    g = evaluated_graph("a = x * 2; c = a * 3; b = c.sum()", "b", retain=("a",))
    by_name = {n.name: n for n in g.nodes}
    np.testing.assert_array_equal(by_name["x"].grad, [6, 6, 6])
    np.testing.assert_array_equal(by_name["a"].grad, [3, 3, 3])
    assert by_name["c"].grad is None and by_name["b"].grad is None
    text = _print(render_tree(g, with_values=True))
    assert "grad: tensor([6., 6., 6.])" in text and "grad: tensor([3., 3., 3.])" in text
    assert "value: tensor([0.6000, 1.2000, 1.8000])" in text
    assert "size: torch.Size([3])" in text and "size: torch.Size([])" in text


def _matrix_graph():
    ev = evaluate("b = A * 2; c = b.sum()", {"A": np.array([[1.0, 2.0], [3.0, 4.0]])})
    return grad_graph(ev.graph, "c")


def test_multiline_values_stay_aligned_in_the_tree():
    text = _print(render_tree(_matrix_graph(), with_values=True))
    assert "value: tensor([[1., 2.],\n" in text
    line = next(ln for ln in text.splitlines() if "value: tensor([[1., 2.]" in ln)
    following = text.splitlines()[text.splitlines().index(line) + 1]
    assert following.index("[3., 4.]") == line.index("[1., 2.]")


# ---- tree ----------------------------------------------------------------------------

def _print(tree, width=120) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(tree)
    return console.file.getvalue()


def test_tree_of_the_reference_program():
    text = _print(render_tree(gradcalc_graph("a = x + 2*y; b = a + z/2"), with_values=False))
    assert text == (
        "b: AddBackward0\n"
        "├── a: AddBackward0\n"
        "│   ├── x: AccumulateGrad\n"
        "│   └── MulBackward0\n"
        "│       ├── y: AccumulateGrad\n"
        "│       └── None\n"
        "└── DivBackward0\n"
        "    ├── z: AccumulateGrad\n"
        "    └── None\n")


def test_a_shared_subtree_is_expanded_once():
    text = _print(render_tree(gradcalc_graph("a = x*x; c = a * 2; b = (a + a) * c"), with_values=False))
    assert text.count("a: MulBackward0 [1]\n") == 1
    assert text.count("a: MulBackward0 [1] (see above)") == 2
    assert text.count("x: AccumulateGrad") == 2  # a leaf has no subtree: shown in full


def test_a_deep_dag_does_not_explode():
    # 40 levels of `a + a`: 2**40 paths, 41 grad_fns.
    source = "a0 = x * 1; " + "; ".join(f"a{i} = a{i - 1} + a{i - 1}" for i in range(1, 41))
    start = time.perf_counter()
    text = _print(render_tree(gradcalc_graph(source), with_values=False))
    assert time.perf_counter() - start < 5
    for i in range(40):
        assert len(re.findall(rf"a{i}: \w+ \[\d+\]\n", text)) == 1
    assert text.count("x: AccumulateGrad") == 1


def test_deep_subtrees_continue_as_sections():
    source = "a0 = x * 2; " + "; ".join(f"a{i} = a{i - 1} + 1" for i in range(1, 10))
    text = _print(render_tree(gradcalc_graph(source), with_values=False, max_depth=3))
    assert re.search(r"a6: AddBackward0 \[1\] \(continued below\)\n", text)
    assert re.search(r"^a6: AddBackward0 \[1\]\n", text, flags=re.M)  # a section of its own
    assert max(len(ln) - len(ln.lstrip("│├└─ ")) for ln in text.splitlines()) <= 3 * 4
    for i in range(10):
        assert len(re.findall(rf"a{i}: \w+(?: \[\d+\])?\n", text)) == 1


# ---- DOT -----------------------------------------------------------------------------

def _odd_graph() -> GradGraph:
    """Labels no program can produce, to exercise escaping."""
    value = np.ones((2, 2), dtype=np.float32)
    odd = 'say "hi" \\ back\\slash\nnext {line} <b>|x| #1 & `c` [k]'
    nodes = [GradNode(1, odd, "AddBackward0", None, (2, 2), value, None),
             GradNode(0, "x: AccumulateGrad", "AccumulateGrad", "x", (2, 2), value, value)]
    return GradGraph(nodes, [GradEdge(1, 0, 0), GradEdge(1, None, 1)])


def test_dot_escaping():
    assert dot_escape('a "b" \\ c') == 'a \\"b\\" \\\\ c'
    assert dot_escape("one\ntwo") == "one\\ltwo\\l"
    dot = render_dot(_odd_graph(), with_values=True)
    assert dot.startswith("digraph grad_fn {\n") and dot.endswith("}\n")
    for label in re.findall(r'label="((?:[^"\\]|\\.)*)"', dot):
        assert "\n" not in label


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("graph", [
    lambda: gradcalc_graph("a = x + 2*y; b = a + z/2"),
    lambda: gradcalc_graph("a = x*x; c = a * 2; b = (a + a) * c"),
    _matrix_graph, _odd_graph])
@pytest.mark.parametrize("with_values", [False, True])
def test_graphviz_renders_the_dot(graph, with_values):
    g = graph()
    dot = render_dot(g, with_values=with_values)
    done = subprocess.run(["dot", "-Tsvg"], input=dot, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert done.stdout.count('class="node"') == len(g.nodes) + sum(e.child is None for e in g.edges)
    assert done.stdout.count('class="edge"') == len(g.edges)
    if g.nodes[0].label.startswith("say"):
        assert "say &quot;hi&quot; \\ back\\slash" in done.stdout


def test_leaves_are_styled_differently_in_dot():
    dot = render_dot(gradcalc_graph("b = x * y"), with_values=False)
    styles = {m.group(1): "filled" in m.group(2)
              for m in re.finditer(r'^  (n\d+) \[label="[^"]*"(.*)\];$', dot, flags=re.M)}
    labels = dict(re.findall(r'^  (n\d+) \[label="([^"]*)"', dot, flags=re.M))
    assert {labels[n]: filled for n, filled in styles.items()} == {
        "b: MulBackward0": False, "x: AccumulateGrad": True, "y: AccumulateGrad": True}


# ---- Mermaid -------------------------------------------------------------------------

NODE = re.compile(r'^  (\w+)\["([^"]*)"\](?::::(\w+))?$')
EDGE = re.compile(r"^  (\w+) -->\|(\d+)\| (\w+)$")


def _mermaid_structure(text: str):
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes, edges = {}, []
    for line in lines[1:]:
        if m := NODE.match(line):
            assert m.group(1) not in nodes, f"{m.group(1)} declared twice"
            nodes[m.group(1)] = m.group(2)
        elif m := EDGE.match(line):
            edges.append((m.group(1), int(m.group(2)), m.group(3)))
        else:
            assert line.startswith("  classDef "), line
    for parent, _, child in edges:
        assert parent in nodes and child in nodes
    return nodes, edges


@pytest.mark.parametrize("with_values", [False, True])
def test_mermaid_structure(with_values):
    g = gradcalc_graph("a = x*x; c = a * 2; b = (a + a) * c")
    nodes, edges = _mermaid_structure(render_mermaid(g, with_values=with_values))
    assert len(nodes) == len(g.nodes) + sum(e.child is None for e in g.edges)
    assert len(edges) == len(g.edges)
    assert sum(label.startswith("a: MulBackward0") for label in nodes.values()) == 1


def test_mermaid_escaping():
    nodes, _ = _mermaid_structure(render_mermaid(_odd_graph(), with_values=True))
    label = nodes["n1"]
    assert "#quot;hi#quot;" in label and "#lt;b#gt;" in label and "#35;1" in label
    assert "#38;" in label and "#96;c#96;" in label and "<br>" in label
    assert not re.search(r"[\"\n<>`]", label.replace("<br>", ""))
    indent = len("value: tensor([")
    assert "value: tensor([[1., 1.],<br>" + "#160;" * indent + "[1., 1.]])" in label
    assert mermaid_escape("a#b") == "a#35;b"


# ---- a long chain ----------------------------------------------------------------------

def test_a_10000_statement_chain_renders_without_recursion():
    n = 10_000
    source = "a0 = x * 2; " + "; ".join(
        f"a{i} = a{i - 1} + {i}" if i % 2 else f"a{i} = sin(a{i - 1})" for i in range(1, n))
    g = gradcalc_graph(source, output=f"a{n - 1}")
    assert len(g.nodes) == n + 1
    start = time.perf_counter()
    text = _print(render_tree(g, with_values=False), width=100)
    dot = render_dot(g, with_values=True)
    mermaid = render_mermaid(g, with_values=True)
    assert time.perf_counter() - start < 10
    assert text.count("AccumulateGrad") == 1 and f"a{n - 1}: AddBackward0" in text
    assert max(len(ln) for ln in text.splitlines()) <= 100
    assert dot.count(" -> ") == len(g.edges)
    nodes, edges = _mermaid_structure(mermaid)
    assert len(edges) == len(g.edges)
