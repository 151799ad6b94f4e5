"""The formats of `gradcalc diff`: text (Unicode math), LaTeX and JSON."""

from __future__ import annotations

import json

from gradcalc.symbolic.chain import Chain, Derivation
from gradcalc.symbolic.partials import text


def _d(top: str, bottom: str) -> str:
    return f"∂{top}/∂{bottom}"


def _product(factors: list[str], sep: str) -> str:
    return sep.join(f"({f})" if any(c in f for c in "+-") and len(factors) > 1 else f for f in factors)


def chain_text(derivation: Derivation, chain: Chain) -> str:
    head = _d(derivation.output, chain.input)
    if chain.total is None:
        return f"{head}: no path of grad-requiring operations joins them"
    total = text(chain.total)
    if chain.too_many_paths or not chain.paths:
        return f"{head} = {total}"
    symbols = " + ".join(" · ".join(_d(e.parent, e.child) for e in path) for path in chain.paths)
    values = " + ".join(_product([text(e.partial) for e in path], " · ") for path in chain.paths)
    steps = [head, symbols, values, total]
    return " = ".join(dict.fromkeys(steps))  # drop repeats: ∂b/∂z = 1/2, not = ∂b/∂z = 1/2 = 1/2


def render_text(derivation: Derivation) -> str:
    lines = ["local partials (one per edge of the graph):"]
    lines += [f"  {_d(e.parent, e.child)} = {e.partial}" for e in derivation.edges] or ["  (none)"]
    lines.append("chain rule:")
    lines += [f"  {chain_text(derivation, c)}" for c in derivation.chains]
    return "\n".join(lines) + "\n"


def _tex_d(top: str, bottom: str) -> str:
    return rf"\frac{{\partial {_tex_name(top)}}}{{\partial {_tex_name(bottom)}}}"


def _tex_name(name: str) -> str:
    import sympy

    return sympy.latex(sympy.Symbol(name))


def render_latex(derivation: Derivation) -> str:
    import sympy

    lines = [r"\begin{align*}"]
    rows = [rf"{_tex_d(e.parent, e.child)} &= {sympy.latex(e.partial)}" for e in derivation.edges]
    for chain in derivation.chains:
        head = _tex_d(derivation.output, chain.input)
        if chain.total is None:
            rows.append(rf"{head} &\quad \text{{(no path of grad-requiring operations)}}")
            continue
        parts = [head]
        direct = len(chain.paths) == 1 and len(chain.paths[0]) == 1
        if chain.paths and not chain.too_many_paths and not direct:
            parts.append(" + ".join(r" \cdot ".join(_tex_d(e.parent, e.child) for e in p) for p in chain.paths))
            parts.append(" + ".join(r" \cdot ".join(rf"\left({sympy.latex(e.partial)}\right)" for e in p)
                                    for p in chain.paths))
        parts.append(sympy.latex(chain.total))
        rows.append(parts[0] + " &= " + " = ".join(dict.fromkeys(parts[1:])))
    lines.append(" \\\\\n".join(rows))
    lines.append(r"\end{align*}")
    return "\n".join(lines) + "\n"


def derivation_json(derivation: Derivation) -> str:
    """`diff --format json`: the local partials and the chain rule as one JSON document."""
    document = {
        "output": derivation.output,
        "edges": [{"of": e.parent, "wrt": e.child, "partial": text(e.partial)} for e in derivation.edges],
        "chains": [{
            "wrt": c.input,
            "paths": None if c.too_many_paths else [[e.parent for e in p] + [c.input] for p in c.paths],
            "factors": None if c.too_many_paths else [[text(e.partial) for e in p] for p in c.paths],
            "partial": None if c.total is None else text(c.total),
            "text": chain_text(derivation, c),
        } for c in derivation.chains],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
