"""`gradcalc functions`: every function of the language with its signatures and grad_fn,
grouped as torch's documentation groups them, read from the op table itself."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from gradcalc.engine.ops import OPS, SECTIONS, VOCABULARY, Kind, Op
from gradcalc.lang.parser import SUBSCRIPT_OP, SYMBOL_OF
from gradcalc.lang.syntax import Signature


@dataclass(frozen=True)
class Entry:
    """One way to write an operation: `spelling` (a signature, an operator, an attribute),
    the other names it goes by, and torch's grad_fn names for it."""

    spelling: str
    also: tuple[str, ...]
    grad_fns: tuple[str, ...]
    section: str


def entries() -> list[Entry]:
    """Every spelling of every row a program can write, in table order."""
    by_row: dict[str, list[Signature]] = {}
    for sigs in VOCABULARY.functions.values():
        for sig in sigs:
            by_row.setdefault(sig.op, []).append(sig)
    methods: dict[str, list[Signature]] = {}
    for sigs in VOCABULARY.methods.values():
        for sig in sigs:
            methods.setdefault(sig.op, []).append(sig)
    attributes = {row: name for name, row in VOCABULARY.attributes.items()}
    out: list[Entry] = []
    for section, rows in SECTIONS:
        for row in rows:
            grad_fns = _grad_fns(row)
            also = tuple(_method_text(sig) if sig.name == row.name
                         else f"{_method_text(sig)}, torch.{sig.name}(...)" for sig in methods.get(row.name, ()))
            spellings = [str(sig) for sig in by_row.get(row.name, ())]
            if row.name in SYMBOL_OF:
                symbol = SYMBOL_OF[row.name]
                spellings.insert(0, f"{symbol}x" if row.arity == 1 else f"x {symbol} y")
            if row.name == SUBSCRIPT_OP:
                spellings.append("x[i], x[i, j], x[a:b:step], x[:, j], x[None]")
            if row.name in attributes:
                spellings.append(f"x.{attributes[row.name]}")
            if not spellings and also:
                spellings, also = [also[0]], also[1:]
            for spelling in spellings:
                out.append(Entry(spelling, also, grad_fns, section))
    return out


def _method_text(sig: Signature) -> str:
    """`x.view(*size)`: the signature with its first parameter as the receiver."""
    inner = str(sig)[len(sig.name) + 1:-1].split(", ", 1)
    return f"x.{sig.name}({inner[1] if len(inner) > 1 else ''})"


def _grad_fns(row: Op) -> tuple[str, ...]:
    """torch's grad_fn names for the row: fixed, or by operand kinds (tensor or number) with
    the row's default static arguments."""
    if row.grad_fn is None:
        return (_NO_GRAD_FN.get(row.kind, "(the grad_fn of the operation it dispatches to)" if row.lower else ""),)
    if isinstance(row.grad_fn, str):
        return (row.grad_fn,)
    defaults = {p.name: p.default for p in row.static_params}
    names: dict[str, None] = {}
    n = max(row.arity, 1)
    variants = [(True, *rest) for rest in itertools.product((True, False), repeat=n - 1)]
    variants += [(False, *rest) for rest in itertools.product((True, False), repeat=n - 1) if any(rest)]
    for kinds in variants:
        try:
            name = row.grad_fn(kinds, **defaults)
        except (KeyError, TypeError, ValueError, IndexError):
            continue
        if name:
            names[name] = None
    return tuple(names)


_NO_GRAD_FN = {
    Kind.IDENTITY: "(the operand itself)",
    Kind.DETACH: "(a new leaf that requires no grad)",
    Kind.CONSTANT: "(a new leaf)",
    Kind.NONDIFF: "(requires no grad)",
}


def listing() -> str:
    """The text of `gradcalc functions`."""
    lines: list[str] = []
    current = None
    rows = entries()
    width = min(48, max(len(e.spelling) for e in rows))
    for entry in rows:
        if entry.section != current:
            if current is not None:
                lines.append("")
            lines.append(entry.section)
            current = entry.section
        grad_fn = ", ".join(entry.grad_fns)
        line = f"  {entry.spelling:<{width}}  {grad_fn}"
        if entry.also:
            line += f"   also {', '.join(entry.also)}"
        lines.append(line.rstrip())
    lines.append("")
    lines.append("Functions are also written with torch's prefixes (torch.sin(x), F.relu(x),")
    lines.append("torch.nn.functional.mse_loss(p, t)) and as methods (x.sin(), x.sum(dim=0)).")
    return "\n".join(lines) + "\n"


def as_json() -> list[dict]:
    return [{"section": e.section, "signature": e.spelling, "also": list(e.also), "grad_fn": list(e.grad_fns)}
            for e in entries()]


__all__ = ["OPS", "Entry", "as_json", "entries", "listing"]
