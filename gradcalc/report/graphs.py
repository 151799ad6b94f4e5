"""The `grad_fn` graph (`engine/grad_fns.py`) as a tree, DOT or Mermaid text."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradcalc.engine.grad_fns import GradEdge, GradGraph, GradNode
from gradcalc.report.tensor_str import tensor_repr

if TYPE_CHECKING:
    from rich.tree import Tree


def node_text(node: GradNode, *, with_values: bool) -> str:
    """The label, and with values the tensor's size, value and grad, one per line."""
    if not with_values:
        return node.label
    size = "torch.Size([" + ", ".join(str(n) for n in node.shape) + "])"
    grad = "None" if node.grad is None else tensor_repr(node.grad)
    return "\n".join([node.label, f"size: {size}", _field("value", tensor_repr(node.value)),
                      _field("grad", grad)])


def _field(key: str, text: str) -> str:
    """`key: text`, a multi-line text's later lines indented to stay aligned with its first."""
    return f"{key}: " + text.replace("\n", "\n" + " " * (len(key) + 2))


# ---- tree ----------------------------------------------------------------------------

TREE_DEPTH = 16  # deeper subtrees continue as sections of their own: rich indents every level


def render_tree(g: GradGraph, *, with_values: bool, max_depth: int = TREE_DEPTH) -> Tree:
    """next_functions as nested branches. A shared subtree is expanded once, at its first
    appearance, and referred to elsewhere; a subtree deeper than `max_depth` continues as
    a section of its own below, so that a long chain never indents past the screen."""
    from rich.text import Text
    from rich.tree import Tree

    return _TreeWalk(g, with_values, max_depth, Text).run(Tree("", hide_root=True))


class _TreeWalk:
    def __init__(self, g: GradGraph, with_values: bool, max_depth: int, text_type):
        self.nodes = {n.id: n for n in g.nodes}
        self.children = g.next_functions()
        self.shared = _shared(g)
        self.with_values, self.max_depth, self.Text = with_values, max_depth, text_type
        self.expanded: set[int] = set()
        self.sections: list[int] = [g.root.id]
        self.continued: set[int] = set()       # deferred to a section of their own
        self.anchors: dict[int, int] = {}

    def run(self, root: Tree) -> Tree:
        for node_id in self.sections:          # grows as deep subtrees are deferred
            self._section(root.add(""), node_id)
        return root

    def _section(self, branch, node_id: int) -> None:
        stack = [(branch, node_id, 0)]
        while stack:
            branch, node_id, depth = stack.pop()
            if node_id is None:
                branch.label = self.Text("None", style="dim")
            elif not (self.children[node_id] and self._refer(branch, node_id, depth)):
                stack.extend(self._expand(branch, node_id, depth))

    def _refer(self, branch, node_id: int, depth: int) -> bool:
        """Label a non-leaf shown in full elsewhere as a reference; False to expand it here."""
        if node_id in self.expanded:
            note = "see above"
        elif depth and node_id in self.continued:
            note = "see below"
        elif depth and depth >= self.max_depth:
            self.continued.add(node_id)
            self.sections.append(node_id)
            note = "continued below"
        else:
            return False
        label = self._anchored(node_id, self.nodes[node_id].label)
        branch.label = self.Text(f"{label} ({note})", style="dim")
        return True

    def _expand(self, branch, node_id: int, depth: int) -> list:
        """Label the branch in full; its children, in the order to pop them."""
        self.expanded.add(node_id)
        node = self.nodes[node_id]
        text = self._anchored(node_id, node_text(node, with_values=self.with_values))
        branch.label = self.Text(text, style="green" if node.is_leaf else "")
        kids = [(branch.add(""), edge.child, depth + 1) for edge in self.children[node_id]]
        return kids[::-1]

    def _anchored(self, node_id: int, text: str) -> str:
        """`[k]` after the first line of a node shown more than once, to match references."""
        if node_id not in self.shared and node_id not in self.continued:
            return text
        k = self.anchors.setdefault(node_id, len(self.anchors) + 1)
        first, sep, rest = text.partition("\n")
        return f"{first} [{k}]{sep}{rest}"


def _shared(g: GradGraph) -> set[int]:
    """Non-leaf nodes with several parents (a leaf is repeated in full: it has no subtree)."""
    seen: set[int] = set()
    shared: set[int] = set()
    leaves = {n.id for n in g.nodes if n.is_leaf}
    for edge in g.edges:
        if edge.child is not None and edge.child not in leaves:
            (shared if edge.child in seen else seen).add(edge.child)
    return shared


def _target(edge: GradEdge) -> str:
    """The DOT / Mermaid id of an edge's child: each `None` entry is a node of its own."""
    return f"n{edge.child}" if edge.child is not None else f"none{edge.parent}_{edge.index}"


# ---- DOT -----------------------------------------------------------------------------

def render_dot(g: GradGraph, *, with_values: bool) -> str:
    """A Graphviz digraph: one node per grad_fn, edges from a node to its next_functions."""
    lines = ["digraph grad_fn {",
             '  node [shape=box, style=rounded, fontname="Courier"];']
    for node in g.nodes:
        style = ', style="rounded,filled", fillcolor="#dbeafe"' if node.is_leaf else ""
        text = dot_escape(node_text(node, with_values=with_values))
        lines.append(f'  n{node.id} [label="{text}"{style}];')
    for e in g.edges:
        child = _target(e)
        if e.child is None:
            lines.append(f'  {child} [label="None", shape=plaintext, fontcolor=gray50];')
        lines.append(f'  n{e.parent} -> {child} [label="{e.index}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_escape(text: str) -> str:
    """A DOT double-quoted label: escaped backslashes and quotes, lines left-justified (`\\l`)."""
    lines = text.replace("\\", "\\\\").replace('"', '\\"').splitlines() or [""]
    return lines[0] if len(lines) == 1 else "".join(line + "\\l" for line in lines)


# ---- Mermaid -------------------------------------------------------------------------

_MERMAID_ENTITIES = {"#": "#35;", "&": "#38;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "`": "#96;"}


def render_mermaid(g: GradGraph, *, with_values: bool) -> str:
    """A Mermaid flowchart, top down: one node per grad_fn, edges to its next_functions."""
    lines = ["flowchart TD"]
    for node in g.nodes:
        style = ":::leaf" if node.is_leaf else ""
        text = mermaid_escape(node_text(node, with_values=with_values))
        lines.append(f'  n{node.id}["{text}"]{style}')
    for e in g.edges:
        child = _target(e)
        if e.child is None:
            lines.append(f'  {child}["None"]:::none')
        lines.append(f"  n{e.parent} -->|{e.index}| {child}")
    lines += ["  classDef leaf fill:#dbeafe,stroke:#1d4ed8",
              "  classDef none fill:none,stroke:none,color:#6b7280"]
    return "\n".join(lines) + "\n"


def mermaid_escape(text: str) -> str:
    """A Mermaid quoted label: entity codes for markup characters, `<br>` between lines,
    non-breaking leading spaces so that a tensor's rows stay aligned."""
    escaped = "".join(_MERMAID_ENTITIES.get(ch, ch) for ch in text)
    return "<br>".join(_keep_indent(line) for line in escaped.splitlines() or [""])


def _keep_indent(line: str) -> str:
    body = line.lstrip(" ")
    return "#160;" * (len(line) - len(body)) + body
