"""The rows of `eval --batch`: a file or stdin, read in blocks of whole lines, each line at
most MAX_VALUES_TEXT characters (gradcalc.lang.inputs)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from gradcalc.lang import inputs

BLOCK_CHARS = 1 << 20  # batch input is read this much at a time


def open_rows(path: str, stdin: TextIO) -> TextIO:
    """The batch file, or stdin for `-`; bytes that are not UTF-8 fail their line, not the batch."""
    if path != "-":
        return inputs.open_text(path, "batch file")
    if hasattr(stdin, "reconfigure"):
        stdin.reconfigure(errors="surrogateescape")
    return stdin


def bounded_blocks(stream: TextIO, too_long: list[str]) -> Iterator[str]:
    """The stream's text in blocks of whole lines (each block's lines joined by "\n", without
    the last "\n"), read in blocks: a line at a time would cost a Python step per row. A line
    longer than MAX_VALUES_TEXT characters (a file with no line breaks, /dev/zero) ends the
    input, with its line number put in `too_long`; the lines wholly inside a block are shorter
    than a block."""
    limit = inputs.MAX_VALUES_TEXT
    number = 0                # lines handed out so far
    partial: list[str] = []   # the line being read: its pieces so far,
    pending = 0               # and their length
    while block := stream.read(BLOCK_CHARS):
        end = block.rfind("\n")
        if end >= 0:
            first = block.find("\n")
            if pending + first > limit:
                too_long.append(_too_long(number + 1, limit))
                return
            complete = "".join(partial) + block[:end] if partial else block[:end]
            partial, pending = [], 0
            number += block.count("\n", 0, end + 1)
            yield complete
            block = block[end + 1:]
        partial.append(block)
        pending += len(block)
        if pending > limit:
            too_long.append(_too_long(number + 1, limit))
            return
    if pending:
        yield "".join(partial)


def _too_long(line: int, limit: int) -> str:
    return f"line {line}: longer than {limit:,} characters; the rest of the input is not read"
