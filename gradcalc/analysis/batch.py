"""`eval --batch FILE.jsonl`: one JSON object of values per line in, one SPEC §5 document per line out.

The program is parsed once and its partials derived once per shape. Rows are read in pieces
of whole lines (about PIECE characters); when every line of a piece is a plain object of
numbers under the same names with the same shapes, and the program is elementwise only, the
piece is parsed at once and its rows evaluated at once, stacked along a leading batch axis:
elementwise ops and their backward formulas act on each row alone, so every row gets the
numbers it would get by itself. Otherwise the piece's lines are grouped by their inputs'
shapes, CHUNK lines at a time; the first row of a group is evaluated on its own (which also
checks it) and the group stacked when it can be, else run row by row. A bad row is reported
with its line number and the others go on.

Speed (100,000 rows a second is the aim) comes from doing per piece, in C, what would be
per row in Python: orjson parses a piece of plain rows at once and writes each stacked array
that differs between rows, whose text is cut into rows and joined with the row template's
fixed text (which holds what is the same in every row). Every document is byte for byte
what the row alone would give (tests/test_batch.py). `run_pieces` shares the pieces among
processes (a standard process pool), this one reading the input and writing the results in
order.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from typing import NamedTuple

import numpy as np

from gradcalc.engine.ops import OPS, Kind
from gradcalc.errors import ExitCode, GradcalcError, InputError, MissingInput
from gradcalc.lang import syntax

CHUNK = 8192        # lines at a time when rows are not all plain and alike
PIECE = 1 << 18     # characters of whole lines at a time when they are
MAX_WORKERS = 4     # processes that share a batch, at most (default_workers)
LOOK_AHEAD = 2      # pieces sent to the workers ahead of the one written, per worker


class RowResult(NamedTuple):
    line: int
    document: str | None   # one line of JSON, or None for a bad row
    error: str | None


class Chunk(NamedTuple):
    """The results of consecutive rows: what the command line writes, as it writes it."""
    lines: tuple[int, ...]
    errors: tuple[str | None, ...]   # each row's error, None for a row with a document
    text: str                           # the documents of the rows without error, each + "\n"

    def results(self) -> Iterator[RowResult]:
        documents = iter(self.text.split("\n"))
        for line, error in zip(self.lines, self.errors):
            yield RowResult(line, None if error is not None else next(documents), error)


def _chunk(parts: list) -> Chunk:
    """One Chunk of consecutive parts, each a RowResult or a Chunk."""
    if len(parts) == 1 and isinstance(parts[0], Chunk):
        return parts[0]
    lines: list[int] = []
    errors: list[str | None] = []
    texts: list[str] = []
    for part in parts:
        if isinstance(part, Chunk):
            lines.extend(part.lines)
            errors.extend(part.errors)
            texts.append(part.text)
        else:
            lines.append(part.line)
            errors.append(part.error)
            if part.document is not None:
                texts.append(part.document + "\n")
    return Chunk(tuple(lines), tuple(errors), "".join(texts))


def run_batch(program: syntax.Program, lines: Iterable[str], **options) -> Iterator[RowResult]:
    """Each non-blank line's result, in order (see `run_batch_chunks` for the options)."""
    for chunk in run_batch_chunks(program, ["\n".join(lines)], **options):
        yield from chunk.results()


def run_batch_chunks(program: syntax.Program, blocks: Iterable[str], *, outputs=(), seeds=(), retain=(),
                     no_grad=(), dtype="float32") -> Iterator[Chunk]:
    """The results of the non-blank lines, in order, a Chunk at a time. `blocks` are texts of
    whole lines, one after another: each block's lines are separated by "\n" (a block ends
    at the end of a line, without its "\n")."""
    job = batch_job(program, outputs=outputs, seeds=seeds, retain=retain, no_grad=no_grad, dtype=dtype)
    for piece in numbered_pieces(blocks):
        yield from job.run(*piece)


def batch_job(program: syntax.Program, **options) -> _Job:
    """What every piece of one batch shares: the program, the options, the partials so far."""
    return _Job(program, options, _elementwise_only(program), {})


def default_workers() -> int:
    """The CPUs this process may use, at most MAX_WORKERS; 1 where processes are not forked
    (off Linux), since a worker is the copy of this process that has run the first piece."""
    if not sys.platform.startswith("linux"):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


class WorkerStopped(GradcalcError):
    """A batch worker process failed: a bug, or the process was killed."""

    exit_code = ExitCode.INTERNAL


def run_pieces(job: _Job, blocks: Iterable[str], workers: int) -> Generator[Chunk, None, None]:
    """The chunks of every piece of `blocks` (numbered_pieces), in input order, the pieces
    computed by `workers` processes. The first piece is run here, first, so that what it
    derives (the partials, the cache) is there before the workers are forked; then this
    process reads the input and hands out pieces of text, at most LOOK_AHEAD per worker ahead
    of the piece whose chunks it yields. A consumer that stops early should close the generator
    (contextlib.closing): that stops the workers at once. A worker's failure raises
    WorkerStopped, once, after the chunks of the pieces before it."""
    pieces = numbered_pieces(blocks)
    for piece in itertools.islice(pieces, 1 if workers > 1 else None):
        yield from job.run(*piece)
    second = next(pieces, None)
    if second is not None:
        yield from _in_pool(job, itertools.chain([second], pieces), workers)


def _in_pool(job: _Job, pieces: Iterator[tuple[int, int, str]], workers: int) -> Iterator[Chunk]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    sys.stdout.flush()  # a forked worker flushes its copy of these buffers when it ends: empty them
    sys.stderr.flush()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(job,))
    try:
        ahead: deque = deque()
        for first, count, text in pieces:
            ahead.append((first, count, pool.submit(_run_piece, first, count, text)))
            if len(ahead) >= LOOK_AHEAD * workers:
                yield from _piece_result(*ahead.popleft())
        while ahead:
            yield from _piece_result(*ahead.popleft())
    finally:
        pool.shutdown(cancel_futures=True)


_worker_job: _Job | None = None  # in a worker process: the job of the batch


def _start_worker(job: _Job) -> None:
    global _worker_job
    _worker_job = job
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the first process, which stops the pool


def _run_piece(first: int, count: int, text: str) -> list[Chunk]:
    assert _worker_job is not None
    return _worker_job.run(first, count, text)


def _piece_result(first: int, count: int, future) -> list[Chunk]:
    try:
        return future.result()
    except GradcalcError:
        raise
    except Exception as e:  # a bug in the worker, or a worker killed (BrokenProcessPool)
        raise WorkerStopped(f"internal error in a batch worker, at lines {first}-{first + count - 1}: "
                            f"{type(e).__name__}: {e}", hint="run the batch in one process: --jobs 1") from e


def numbered_pieces(blocks: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """The blocks' text in pieces of whole lines (see _pieces): (the number of a piece's first
    line, its count of lines, its text)."""
    first = 1
    for block in blocks:
        for text in _pieces(block):
            count = text.count("\n") + 1
            yield first, count, text
            first += count


def _pieces(block: str) -> Iterator[str]:
    """The block in pieces of whole lines, each of about PIECE characters or one line."""
    start = 0
    while len(block) - start > PIECE:
        end = block.find("\n", start + PIECE)
        if end < 0:
            break
        yield block[start:end]
        start = end + 1
    yield block[start:] if start else block


def _numbered_chunks(lines: list[str], first: int) -> Iterator[list[tuple[int, str]]]:
    """(line number, line) of the non-blank lines, CHUNK lines at a time; `first` is the
    number of lines[0]."""
    for start in range(0, len(lines), CHUNK):
        block = lines[start:start + CHUNK]
        numbered = zip(range(first + start, first + start + len(block)), block)
        blank = sum(map(str.isspace, block)) + block.count("")
        chunk = [(n, line) for n, line in numbered if line and not line.isspace()] if blank else list(numbered)
        if chunk:
            yield chunk


class _Job(NamedTuple):
    program: syntax.Program
    options: dict
    stackable: bool            # elementwise only: rows of one shape can be stacked
    partials: dict             # symbolic partials by the inputs' shapes

    def run(self, first: int, count: int, text: str) -> list[Chunk]:
        """The results of a piece of `count` lines (`first` the number of its first), in Chunks."""
        uniform = _uniform(text, count) if self.stackable else None
        if uniform is not None:  # the common case: a piece of plain rows of one shape, at once
            raws, stacked = uniform
            return [_chunk(_run_group(self.program, range(first, first + count), raws, self.options, True,
                                      self.partials, stacked))]
        return [_chunk(_run_chunk(self, chunk)) for chunk in _numbered_chunks(text.split("\n"), first)]


def _run_chunk(job: _Job, chunk) -> list:
    """The chunk's results in order: RowResults, and Chunks for rows run stacked."""
    from gradcalc.lang.values import parse_json_values

    program, options, stackable, partials = job  # (the piece of these lines was not all plain rows alike)
    results: dict[int, RowResult] = {}
    groups: dict[tuple, list] = {}
    for number, line in chunk:
        if not line.isascii() and not _is_utf8(line):
            results[number] = RowResult(number, None, _message(number, InputError("not valid UTF-8")))
            continue
        raw = _plain_row(line)
        if raw is not None:  # numbers and lists only: grouped by shape, converted a group at once
            key = ("plain",) + tuple(sorted((name, _first_shape(v)) for name, v in raw.items()))
            groups.setdefault(key, []).append((number, raw))
            continue
        try:
            values = parse_json_values(line, f"line {number}")
        except GradcalcError as e:
            results[number] = RowResult(number, None, _message(number, e))
            continue
        key = _shapes(values)
        groups.setdefault(key, []).append((number, values))
    for rows in groups.values():
        for result in _run_group(program, [n for n, _ in rows], [r for _, r in rows], options, stackable, partials):
            for row in result.results() if isinstance(result, Chunk) else [result]:
                results[row.line] = row
    return [results[number] for number, _ in chunk]


def _uniform(text: str, count: int) -> tuple[list, dict] | None:
    """The rows of `text` (`count` lines, separated by "\n") and their values stacked per
    input, when every line is one JSON object of only numbers and lists of numbers (as
    _plain_row) under the same names with the same shapes; else None. Read in C: orjson
    parses the lines as one JSON array, its items the rows."""
    import orjson

    if "\r" in text:  # CRLF line ends
        text = text.replace("\r\n", "\n")
    # Each line one object: it starts with "{", ends with "}" and has no other brace. (The
    # names, checked below, have none; numbers and lists none.) Without this, the lines
    # '{"x": [1, 2]}, {"x": [3' and '4]}', each bad JSON, would read as two good rows.
    if not (text.count("{") == text.count("}") == count
            and ("\n" + text).count("\n{") == count and (text + "\n").count("}\n") == count):
        return None
    try:
        raws = orjson.loads("[" + text.replace("\n", ",") + "]")
    except ValueError:  # orjson.JSONDecodeError; also integers past 64 bits
        return None
    if len(raws) != count or set(map(type, raws)) != {dict}:
        return None
    names = raws[0].keys()
    # Every row has every name (else KeyError below) and the text holds two quotes a name:
    # so no row has another key, or a string anywhere.
    if not all(map(str.isidentifier, names)) or not _numbers_only(text, len(names) * count):
        return None
    stacked = {}
    for name in names:
        try:
            array = _column([r[name] for r in raws])
        except (KeyError, ValueError, TypeError, OverflowError):
            return None
        if array is None or array.dtype.kind not in "fi":
            return None
        stacked[name] = array.astype(np.float64, copy=False)
    return raws, stacked


def _column(values: list) -> np.ndarray | None:
    """One input's values of every row, stacked: numbers, or lists of numbers of one length,
    read in C (np.fromiter); deeper lists by np.array. A row unlike the first raises or is None."""
    first = values[0]
    if type(first) is list and first and type(first[0]) is not list:
        width = len(first)
        if set(map(len, values)) != {width}:
            return None
        flat = np.fromiter(itertools.chain.from_iterable(values), np.float64, len(values) * width)
        return flat.reshape(len(values), width)
    if type(first) is not list:
        return np.fromiter(values, np.float64, len(values))
    return np.array(values)


def _is_utf8(line: str) -> bool:
    """Whether the line was read from UTF-8 bytes (bytes that are not were read as lone
    surrogates: see the command line's batch input)."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _message(number: int, error: GradcalcError) -> str:
    if isinstance(error, MissingInput):  # a row has no options: the hint names the row's key
        error = InputError(error.message, hint=f'give the row a value for "{error.name}"')
    text = error.render()
    return text if text.startswith(f"line {number}:") else f"line {number}: {text}"


def _plain_row(line: str) -> dict | None:
    """The row as parsed JSON when it holds only numbers and lists of numbers (no strings such
    as "nan", no true/false/null), else None: the row then takes the checked path."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not _numbers_only(line, len(data)):
        return None
    return data


def _numbers_only(text: str, keys: int) -> bool:
    """Whether JSON text that parsed with `keys` object keys holds nothing else but numbers:
    two quotes a key (so no string, such as "nan"), and no true, false or null."""
    return text.count('"') == 2 * keys and "true" not in text and "false" not in text and "null" not in text


def _first_shape(value) -> tuple:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _checked(number: int, raw: dict) -> dict:
    """One row's values, validated as --values validates them (errors name the line)."""
    from gradcalc.lang.values import _specials, to_array

    return {name: to_array(_specials(v), f"line {number}: input '{name}'") for name, v in raw.items()}


def _run_group(program, numbers, raws, options, stackable, partials, stacked=None):
    """Rows of one shape: their line numbers and values (`stacked`: their values per input,
    when already at hand)."""
    from gradcalc.api import evaluate
    from gradcalc.report.formats import json_document, symbolic_partials

    results = []
    first_number, first_raw = numbers[0], raws[0]
    rest = zip(numbers[1:], raws[1:])  # the other rows, one by one
    try:
        first_values = first_raw if _is_arrays(first_raw) else _checked(first_number, first_raw)
        template = evaluate(program, first_values, **options)
    except GradcalcError as e:
        # Rows of one shape fail alike: the errors depend on shapes, never on values.
        if len(raws) == 1 or all(map(_is_arrays, raws)):
            return [RowResult(number, None, _message(number, e)) for number in numbers]
        results.append(RowResult(first_number, None, _message(first_number, e)))
        results.extend(_one_by_one(program, rest, options, partials))
        return results
    key = _shapes(first_values)
    if key not in partials:
        partials[key] = symbolic_partials(template)
    if len(raws) > 1:  # the first row too, so that the group's text is one Chunk
        if stacked is None or _shapes({k: v[0] for k, v in stacked.items()}) != key:
            stacked = _stack(raws, first_values) if stackable else None
        if stacked is not None:
            return [_stacked(program, template, numbers, stacked, options, partials[key])]
    results.append(RowResult(first_number, _dumps(json_document(template, partials=partials[key])), None))
    results.extend(_one_by_one(program, rest, options, partials))
    return results


def _shapes(values: dict) -> tuple:
    """What a group of rows shares: each input's name and shape."""
    return tuple(sorted((name, v.shape) for name, v in values.items()))


def _is_arrays(values: dict) -> bool:
    return all(isinstance(v, np.ndarray) for v in values.values())


def _stack(raws, first_values: dict) -> dict | None:
    """The rows' values stacked per input, or None if any row is not like the first."""
    stacked = {}
    for name, first in first_values.items():
        try:
            array = np.array([r[name] for r in raws])
        except (ValueError, KeyError):
            return None
        if array.dtype.kind not in "fi" or array.shape != (len(raws),) + first.shape:
            return None
        stacked[name] = array.astype(np.float64, copy=False)
    return stacked if all(set(r) == set(first_values) for r in raws) else None


def _one_by_one(program, rows, options, partials):
    from gradcalc.api import evaluate
    from gradcalc.report.formats import json_document, symbolic_partials

    results = []
    for number, raw in rows:
        try:
            values = raw if _is_arrays(raw) else _checked(number, raw)
            evaluation = evaluate(program, values, **options)
        except GradcalcError as e:
            results.append(RowResult(number, None, _message(number, e)))
            continue
        key = _shapes(values)
        if key not in partials:
            partials[key] = symbolic_partials(evaluation)
        results.append(RowResult(number, _dumps(json_document(evaluation, partials=partials[key])), None))
    return results


def _stacked(program, template, line_numbers, stacked, options, partials):
    """Rows of one shape at once, along a leading batch axis (elementwise programs only)."""
    from gradcalc.api import evaluate, output_node
    from gradcalc.engine.graph import Node
    from gradcalc.report.formats import Row, json_array, tensor_entry

    graph = template.graph
    rank = max((v.ndim - 1 for v in stacked.values()), default=0)
    count = len(line_numbers)

    def padded(shape):
        return (1,) * (rank - len(shape)) + tuple(shape)

    values = {name: v.reshape((count,) + padded(v.shape[1:])) for name, v in stacked.items()}
    seeds = []
    for out, seed in zip(template.outputs, template.seeds):
        shape = output_node(graph, out).shape
        seed = np.ones(shape) if seed is None else seed
        seeds.append(np.broadcast_to(np.asarray(seed).reshape(padded(shape)), (count,) + padded(shape)))
    batched = evaluate(program, values, **{**options, "seeds": seeds}).graph
    head = {"dtype": graph.dtype.name, "outputs": list(template.outputs)}
    # per name: (name, binding, data, grad), each of data and grad the rows' arrays stacked
    # when they differ between rows, or _Fixed when they do not (a grad may be None)
    columns: list[tuple] = []
    for name in graph.names:
        binding = graph.bindings[name]
        if not isinstance(binding, Node):
            columns.append((name, binding, _Fixed(json_array(binding.value)), None))
            continue
        node = batched.nodes[binding.id]
        shape = (count,) + binding.shape
        grad = None if node.grad is None else _by_row(node.grad.reshape(shape))
        columns.append((name, binding, _by_row(node.value.reshape(shape)), grad))
    segments = _segments(head, columns, partials)
    slots = [array for _, _, data, grad in columns for array in (data, grad) if isinstance(array, np.ndarray)]
    flat = [array.reshape(count, -1) for array in slots]
    numbers = np.concatenate(flat, axis=1) if flat else np.zeros((count, 0), graph.dtype)
    lines, no_errors = tuple(line_numbers), (None,) * count
    plain = _plain_numbers(numbers)
    if plain.all():  # the common case: the rows' text at once
        return Chunk(lines, no_errors, _fill(segments, slots, count))
    documents = [""] * count
    filled = _fill(segments, [slot[plain] for slot in slots], int(plain.sum())).split("\n")
    for i, document in zip(np.flatnonzero(plain).tolist(), filled):
        documents[i] = document
    for i in np.flatnonzero(~plain).tolist():
        # nan or an infinity (JSON has none: the document spells it as a string), or a number
        # json.dumps writes with an exponent: the row's document is written whole
        tensors = [tensor_entry(Row(name, binding), _in_row(data, i), _in_row(grad, i), partials[name])
                   for name, binding, data, grad in columns]
        documents[i] = _dumps({**head, "tensors": tensors})
    return Chunk(lines, no_errors, "".join(d + "\n" for d in documents))


def _in_row(array, i: int) -> object:
    """Row i's data or grad, JSON-ready, from a column of _stacked: the rows' arrays, _Fixed, or None."""
    from gradcalc.report.formats import json_array

    if isinstance(array, np.ndarray):
        return json_array(array[i])
    return array.json if isinstance(array, _Fixed) else array


def _segments(head: dict, columns, partials) -> list[str]:
    """One row's JSON text, cut where each tensor's data or grad varies between the group's
    rows: the text before the first such array, between each two, and after the last."""
    from gradcalc.report.formats import Row, tensor_entry

    marks: list[str] = []

    def slot(array):
        if not isinstance(array, np.ndarray):
            return array.json if isinstance(array, _Fixed) else array
        marks.append(f"@@{len(marks)}@@")
        return marks[-1]

    tensors = [tensor_entry(Row(name, binding), slot(data), slot(grad), partials[name])
               for name, binding, data, grad in columns]
    text = _dumps({**head, "tensors": tensors})
    segments = []
    for mark in marks:
        before, text = text.split(f'"{mark}"', 1)
        segments.append(before)
    return segments + [text]


class _Fixed(NamedTuple):
    """A tensor's data or grad that is the same in every row of a group: JSON-ready, it is
    written once, into the rows' template."""
    json: object


def _by_row(rows: np.ndarray):
    """The arrays of the rows (stacked along axis 0) as they are, or _Fixed when every row's
    array has the same bits as the first's (so the same text)."""
    from gradcalc.report.formats import json_array

    if rows.dtype.kind != "f" or not len(rows):
        return rows
    bits = np.ascontiguousarray(rows).reshape(len(rows), -1).view(f"u{rows.itemsize}")
    return _Fixed(json_array(rows[0])) if (bits == bits[0]).all() else rows


def _plain_numbers(numbers: np.ndarray) -> np.ndarray:
    """Rows whose numbers are all finite and written alike by json.dumps and orjson: without
    an exponent, 0 or magnitudes from 1e-4 (json.dumps writes 1e-05) to below 1e16 (1e+16)
    for doubles; below 1e12 for float32 (orjson writes its shortest digits with an exponent
    from about 1e13 on)."""
    magnitude = np.abs(numbers, dtype=np.float64)
    top = 1e12 if numbers.dtype == np.float32 else 1e16
    return (np.isfinite(magnitude) & ((magnitude >= 1e-4) | (magnitude == 0)) & (magnitude < top)).all(axis=1)


def _fill(segments: list[str], slots: list[np.ndarray], count: int) -> str:
    """The `count` rows' documents, each + "\n": the segments with each row's arrays (slot k,
    of shape (count, ...), between segments k and k + 1) as the single documents write them.

    orjson writes a plain double with the digits of Python's repr, and a plain float32 with
    its shortest digits, those of NumPy's str (both checked in the tests), in C: a tenth of
    the time of repr. Each slot is written whole and cut into rows; the rows' pieces are
    interleaved with the segments by slice assignment and joined once, again in C."""
    if not count:
        return ""
    segments = segments[:-1] + [segments[-1] + "\n"]
    for k, slot in enumerate(slots):  # a row's outer brackets go with the text around it
        rank = slot.ndim - 1
        segments[k] += "[" * rank
        segments[k + 1] = "]" * rank + segments[k + 1]
    stride = 2 * len(slots) + 1
    pieces: list = [None] * (count * stride)
    for k, segment in enumerate(segments):
        pieces[2 * k::stride] = [segment] * count
    for k, slot in enumerate(slots):
        pieces[2 * k + 1::stride] = _row_contents(slot)
    return "".join(pieces)


def _row_contents(slot: np.ndarray) -> list[str]:
    """Each row's array (slot[i]) as json.dumps writes it, less its outer brackets:
    "1.0, 2.0" for [1.0, 2.0], "1.0], [2.0" for [[1.0], [2.0]], "3.0" for a number."""
    import orjson

    rank = slot.ndim - 1
    text = orjson.dumps(np.ascontiguousarray(slot), option=orjson.OPT_SERIALIZE_NUMPY).decode()
    # "[[1.0,2.0],[3.0,4.0]]": the rows' contents between the outer brackets, ", " as json.dumps
    body = text[rank + 1:len(text) - rank - 1].replace(",", ", ")
    return body.split("]" * rank + ", " + "[" * rank)


def _elementwise_only(program: syntax.Program) -> bool:
    """Whether every operation acts on each element alone (so rows can be stacked)."""
    from gradcalc.engine.graph import walk

    for statement in program.statements:
        if isinstance(statement, syntax.Assign):
            for e in walk(statement.value):
                if isinstance(e, syntax.Call):
                    row = OPS[e.op]
                    # (matmul, the only row that lowers to non-elementwise rows, is linear algebra)
                    # (a result that depends on the tensor's layout differs when rows are stacked)
                    if row.kind not in (Kind.ELEMENTWISE, Kind.IDENTITY, Kind.DETACH) or row.layout_dependent:
                        return False
    return True


def _dumps(document: dict) -> str:
    return json.dumps(document, allow_nan=False, ensure_ascii=False)
