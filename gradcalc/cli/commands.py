"""The command line: flags -> library calls -> output; errors -> stderr and an exit code.

The only module that imports Typer or writes to the terminal.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
from enum import Enum
from typing import Annotated, Optional

import typer

from gradcalc import __version__
from gradcalc.errors import ExitCode, GradcalcError, InputError

app = typer.Typer(
    name="gradcalc",
    help="A gradient calculator: PyTorch's .grad printout for a formula, and the chain rule behind it.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gradcalc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
) -> None:
    pass


EVAL_HELP = """Evaluate PROGRAM and print every tensor's value and gradient as PyTorch prints them.

Inputs are the names the program reads before assigning them; give each a value with
--NAME V (as in --x 2,1), --var NAME=V, or --values FILE.json. Values: 3, 2,1, [2,1],
[[1,2],[3,4]], nan, inf.

Example (the PyTorch program x+y*2, z/2, b.backward(torch.ones(2))):

\b
  gradcalc eval "a = x + 2*y; b = a + z/2" --x 2,1 --y 1,3 --z 5,2 --seed 1,1 --retain a --format torch
"""

_NAME_OPTION = re.compile(r"--([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", re.DOTALL)

# What every command shares: --NAME V values after the known options, and these parameters.
WITH_INPUT_VALUES = {"allow_extra_args": True, "ignore_unknown_options": True}
Program = Annotated[str, typer.Argument(
    metavar="PROGRAM", help="The program text, @FILE to read it from a file, or - for stdin.", show_default=False)]
Var = Annotated[list[str], typer.Option(
    "--var", metavar="NAME=V", help="An input's value (repeatable); for names that clash with options.")]
Values = Annotated[Optional[str], typer.Option(
    "--values", metavar="FILE", help='A JSON object of input values, {"x": [2, 1]}; - for stdin.')]
NoGrad = Annotated[list[str], typer.Option(
    "--no-grad", metavar="NAME", help="An input that does not require grad (repeatable or comma-separated).")]
Dtype = Annotated[str, typer.Option(
    "--dtype", metavar="float32|float64", help="The dtype of every tensor (as torch.Tensor: float32).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks.")]
NoCache = Annotated[bool, typer.Option(
    "--no-cache", help="Neither read nor write the cache of derived partials "
                       "($XDG_CACHE_HOME/gradcalc; also GRADCALC_NO_CACHE=1).")]


@app.command("eval", help=EVAL_HELP, context_settings=WITH_INPUT_VALUES)
def eval_command(
    ctx: typer.Context,
    program: Program,
    var: Var = [],
    values: Values = None,
    seed: Annotated[list[str], typer.Option(
        "--seed", metavar="V", help="backward()'s gradient argument, one per --output, in order.")] = [],
    output: Annotated[list[str], typer.Option(
        "--output", metavar="NAME", help="The tensor to call backward() on (repeatable); default: the last assigned.")] = [],
    retain: Annotated[list[str], typer.Option(
        "--retain", metavar="NAME", help="Call NAME.retain_grad() (repeatable or comma-separated).")] = [],
    no_grad: NoGrad = [],
    dtype: Dtype = "float32",
    format: Annotated[str, typer.Option(
        "--format", metavar="table|torch|json|csv",
        help="table (default), torch (print(t.data, t.grad) lines), json, or csv (a row per element).")] = "table",
    batch: Annotated[Optional[str], typer.Option(
        "--batch", metavar="FILE.jsonl", help="One JSON object of input values per line (- for stdin); "
                                              "writes one JSON document per line.")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Explain each grad: the chain rule behind it, or why it is None.")] = False,
    hessian: Annotated[bool, typer.Option(
        "--hessian", help="Print the Hessian of a scalar output by each pair of inputs "
                          "(torch.autograd.functional.hessian) instead of the grads.")] = False,
    exact: Annotated[bool, typer.Option(
        "--exact", help="Exact arithmetic: SymPy rationals instead of floats (1/3 stays 1/3).")] = False,
    jacobian: Annotated[bool, typer.Option(
        "--jacobian", help="Print the Jacobian of the output by each input "
                           "(torch.autograd.functional.jacobian) instead of the grads.")] = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", metavar="N", min=0,
        help="Processes that share a --batch file's rows (default 0: one per CPU, at most 4).")] = 0,
    no_cache: NoCache = False,
    debug: Debug = False,
) -> None:
    from gradcalc.report.formats import Format

    def run() -> None:
        from gradcalc import cache

        fmt = _choice(Format, format, "--format")
        dt = _choice(DType, dtype, "--dtype")
        source = read_program(program)
        with cache.program(source, enabled=not no_cache):
            if batch is not None:
                return _run_batch(source, batch, ctx.args, var, values, seed, output, retain, no_grad, dt.value, jobs)
            if jobs:
                raise InputError("--jobs is for --batch")
            return evaluate_and_print(source, fmt, dt)

    def evaluate_and_print(source, fmt, dt) -> int:
        from gradcalc.api import evaluate
        from gradcalc.lang.values import parse_value

        inputs = _input_values(ctx.args, var, values)
        evaluation = evaluate(
            source, inputs, outputs=output, seeds=[parse_value(s, "--seed") for s in seed],
            retain=_split(retain), no_grad=_split(no_grad), dtype="exact" if exact else dt.value,
            run_backward=not (jacobian or hessian))
        if jacobian or hessian:
            _print_derivatives(evaluation, fmt, second=hessian)
        else:
            _print_report(evaluation, fmt, explain)
        return ExitCode.OK

    _guarded_status(run, debug)


DIFF_HELP = """Print the symbolic partial derivatives of PROGRAM: the local partial on every edge
between named tensors, and the chain rule that composes them for each input.

No values are needed; give some (--NAME V, as for eval) to fix the inputs' shapes, which
matter for mean (1/n) and matrix products. Without a value an input is a scalar.

Example:

\b
  gradcalc diff "a = x + 2*y; b = a + z/2"
"""


@app.command("diff", help=DIFF_HELP, context_settings=WITH_INPUT_VALUES)
def diff_command(
    ctx: typer.Context,
    program: Program,
    wrt: Annotated[list[str], typer.Option(
        "--wrt", metavar="NAMES", help="Inputs to differentiate by (repeatable or comma-separated); default: all.")] = [],
    output: Annotated[Optional[str], typer.Option(
        "--output", metavar="NAME", help="The tensor to differentiate; default: the last assigned.")] = None,
    var: Var = [],
    values: Values = None,
    no_grad: NoGrad = [],
    format: Annotated[str, typer.Option("--format", metavar="text|latex|json", help="text (default), latex or json.")] = "text",
    debug: Debug = False,
) -> None:
    def run() -> None:
        from gradcalc.api import output_node, parse
        from gradcalc.engine.graph import build, find_inputs
        from gradcalc.report.diff import DiffFormat, render_json, render_latex, render_text
        from gradcalc.symbolic.chain import derive

        fmt = _choice(DiffFormat, format, "--format")
        parsed = parse(read_program(program))
        inputs = find_inputs(parsed)
        given = _input_values(ctx.args, var, values)
        graph = build(parsed, _scalars_where_missing(parsed, given), no_grad=frozenset(_split(no_grad)))
        out_name = output or graph.last_assigned
        if out_name is None:
            raise InputError("the program assigns nothing to differentiate")
        wanted = _split(wrt) or inputs
        for name in wanted:
            if name not in graph.bindings:
                raise InputError(f"--wrt {name}: the program has no tensor named '{name}'")
        out = output_node(graph, out_name)
        if not out.requires_grad:
            raise InputError(f"'{out_name}' depends on no input that requires grad: it has no partials")
        derivation = derive(graph, out, wanted, out_name)
        render = {DiffFormat.text: render_text, DiffFormat.latex: render_latex, DiffFormat.json: render_json}[fmt]
        sys.stdout.write(render(derivation))

    _guarded(run, debug)


GRAPH_HELP = """Show the grad_fn graph of PROGRAM's output as PyTorch's next_functions would:
each operation's backward node, AccumulateGrad at the leaves, labelled with your names.

Values are optional (inputs are scalars without them); with values, each node also shows
its shape, value and grad (after backward on the output).

Example:

\b
  gradcalc graph "a = x + 2*y; b = a + z/2" --format dot | dot -Tsvg > graph.svg
"""


class GraphFormat(str, Enum):
    tree = "tree"
    dot = "dot"
    mermaid = "mermaid"


@app.command("graph", help=GRAPH_HELP, context_settings=WITH_INPUT_VALUES)
def graph_command(
    ctx: typer.Context,
    program: Program,
    output: Annotated[Optional[str], typer.Option(
        "--output", metavar="NAME", help="The tensor whose graph to show; default: the last assigned.")] = None,
    var: Var = [],
    values: Values = None,
    seed: Annotated[Optional[str], typer.Option("--seed", metavar="V", help="backward()'s gradient, for the grads shown.")] = None,
    retain: Annotated[list[str], typer.Option("--retain", metavar="NAME", help="Call NAME.retain_grad().")] = [],
    no_grad: NoGrad = [],
    dtype: Dtype = "float32",
    format: Annotated[str, typer.Option("--format", metavar="tree|dot|mermaid", help="tree (default), dot or mermaid.")] = "tree",
    debug: Debug = False,
) -> None:
    def run() -> None:
        from gradcalc.analysis.gradgraph import grad_graph, render_dot, render_mermaid, render_tree
        from gradcalc.api import evaluate, output_node, parse
        from gradcalc.engine.backward import backward
        from gradcalc.lang.values import parse_value

        fmt = _choice(GraphFormat, format, "--format")
        dt = _choice(DType, dtype, "--dtype")
        parsed = parse(read_program(program))
        given = _input_values(ctx.args, var, values)
        with_values = bool(given)
        inputs = _scalars_where_missing(parsed, given)
        seeds = [parse_value(seed, "--seed")] if seed is not None else []
        outputs = [output] if output else []
        evaluation = evaluate(parsed, inputs, outputs=outputs, retain=_split(retain),
                              no_grad=_split(no_grad), dtype=dt.value, run_backward=False)
        out = output_node(evaluation.graph, evaluation.outputs[0])
        if with_values and out.requires_grad and (seeds or out.value.size == 1):
            backward(evaluation.graph, out, seeds[0] if seeds else None)
        g = grad_graph(evaluation.graph, evaluation.outputs[0])
        if fmt is GraphFormat.tree:
            _stdout_console().print(render_tree(g, with_values=with_values))
        else:
            render = render_dot if fmt is GraphFormat.dot else render_mermaid
            sys.stdout.write(render(g, with_values=with_values))

    _guarded(run, debug)


CHECK_HELP = """Check PROGRAM's values and grads against expectations; exit 0 when every one holds,
1 with a diff (worst element first) when any fails, 2 on bad input.

Default tolerances are torch.testing.assert_close's for the dtype: float32 rtol 1.3e-6,
atol 1e-5; float64 rtol 1e-7, atol 1e-7 (|got - expected| <= atol + rtol * |expected|).
--gradcheck also compares every input's grad with central finite differences in float64,
as torch.autograd.gradcheck does (eps 1e-6, atol 1e-5, rtol 1e-3); a point where the
function has a kink (relu or abs at 0) is reported as such, not compared.

Example:

\b
  gradcalc check "a = x + 2*y; b = a + z/2" --x 2,1 --y 1,3 --z 5,2 --seed 1,1 --expect x.grad=1,1 --expect z.grad=0.5,0.5 --gradcheck
"""


@app.command("check", help=CHECK_HELP, context_settings=WITH_INPUT_VALUES)
def check_command(
    ctx: typer.Context,
    program: Annotated[Optional[str], typer.Argument(
        metavar="PROGRAM", help="The program text, @FILE, or - for stdin (not with --suite).",
        show_default=False)] = None,
    suite: Annotated[Optional[str], typer.Option(
        "--suite", metavar="FILE.toml", help="Run every [[case]] of a suite file in one process.")] = None,
    junit: Annotated[Optional[str], typer.Option(
        "--junit", metavar="FILE", help="With --suite: write a JUnit XML report for CI systems.")] = None,
    expect: Annotated[list[str], typer.Option(
        "--expect", metavar="NAME=V", help="NAME=V (data) or NAME.grad=V (V may be None); repeatable.")] = [],
    rtol: Annotated[Optional[float], typer.Option("--rtol", help="Relative tolerance (default: by dtype).")] = None,
    atol: Annotated[Optional[float], typer.Option("--atol", help="Absolute tolerance (default: by dtype).")] = None,
    gradcheck_: Annotated[bool, typer.Option("--gradcheck", help="Compare grads with finite differences.")] = False,
    var: Var = [],
    values: Values = None,
    seed: Annotated[list[str], typer.Option("--seed", metavar="V", help="backward()'s gradient, one per --output.")] = [],
    output: Annotated[list[str], typer.Option("--output", metavar="NAME", help="The tensor(s) to call backward() on.")] = [],
    retain: Annotated[list[str], typer.Option("--retain", metavar="NAME", help="Call NAME.retain_grad().")] = [],
    no_grad: NoGrad = [],
    dtype: Dtype = "float32",
    no_cache: NoCache = False,
    debug: Debug = False,
) -> None:
    def run() -> int:
        from gradcalc import cache
        from gradcalc.analysis.checking import parse_expectation, run_check
        from gradcalc.api import parse
        from gradcalc.lang.values import parse_value

        if suite is not None:
            return _run_suite(suite, junit, use_cache=not no_cache)
        if program is None:
            raise InputError("check needs a PROGRAM or --suite FILE.toml")
        dt = _choice(DType, dtype, "--dtype")
        if not expect and not gradcheck_:
            raise InputError("nothing to check", hint="add --expect NAME=V, --expect NAME.grad=V or --gradcheck")
        source = read_program(program)
        with cache.program(source, enabled=not no_cache):
            report = run_check(parse(source), _input_values(ctx.args, var, values),
                               [parse_expectation(e) for e in expect],
                               seeds=[parse_value(s, "--seed") for s in seed], outputs=output,
                               retain=_split(retain), no_grad=_split(no_grad), dtype=dt.value,
                               rtol=rtol, atol=atol, with_gradcheck=gradcheck_)
        lines = report.lines + [f"FAILED: {len(report.failures)} of {report.checks} checks" if report.failures
                                else f"ok: {report.checks} check{'s' if report.checks != 1 else ''} passed"]
        sys.stdout.write("\n".join(lines) + "\n")
        return ExitCode.OK if report.passed else ExitCode.CHECK_FAILED

    _guarded_status(run, debug)


def _scalars_where_missing(parsed, given: dict) -> dict:
    """The given input values, and a scalar for each input without one (diff and graph need
    shapes, not values)."""
    import numpy as np

    from gradcalc.engine.graph import find_inputs

    return {**{name: np.ones(()) for name in find_inputs(parsed)}, **given}


def _choice(enum, value: str, option: str):
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise InputError(f"{option} {value!r}: expected one of {choices}") from None


def _print_report(evaluation, fmt, explain: bool = False) -> None:
    """The report on stdout; with --explain, the explanations after a table, inside the json,
    and on stderr for the torch format (whose stdout is torch's lines and nothing else)."""
    from gradcalc.report.formats import Format, render_csv, render_json, render_table, render_torch

    notes = None
    if explain:
        from gradcalc.report.explain import explanations

        notes = explanations(evaluation)
    if fmt is Format.torch:
        sys.stdout.write(render_torch(evaluation))
        if notes:
            sys.stderr.write("".join(line + "\n" for line in notes.values()))
    elif fmt is Format.json:
        sys.stdout.write(render_json(evaluation, notes))
    elif fmt is Format.csv:
        sys.stdout.write(render_csv(evaluation))
    else:
        console = _stdout_console()
        render_table(evaluation, console)
        if notes:
            from rich.text import Text

            for line in notes.values():
                console.print(Text(line))
    sys.stdout.flush()


def _print_derivatives(evaluation, fmt, *, second: bool) -> None:
    """The Jacobian (or Hessian) by each input: `NAME: tensor(...)` lines as torch prints
    jacobian's (hessian's) result per input, a table, or a json object."""
    import json

    from gradcalc.analysis.hessian import hessian
    from gradcalc.analysis.jacobian import jacobian
    from gradcalc.api import output_node
    from gradcalc.report.formats import Format, dtype_name, json_array
    from gradcalc.report.tensor_str import tensor_repr

    graph = evaluation.graph
    if len(evaluation.outputs) != 1:
        raise InputError(f"--{'hessian' if second else 'jacobian'} takes one --output")
    out = evaluation.outputs[0]
    node = output_node(graph, out)
    if second:
        table = hessian(graph, node, graph.inputs)
        single = len(table) == 1
        texts = {a: tensor_repr(row[a]) if single else "(" + ", ".join(tensor_repr(h) for h in row.values()) + ")"
                 for a, row in table.items()}
        data = {a: {b: json_array(h) for b, h in row.items()} for a, row in table.items()}
    else:
        table = jacobian(graph, node, graph.inputs)
        texts = {name: tensor_repr(j) for name, j in table.items()}
        data = {name: json_array(j) for name, j in table.items()}
    key = "hessian" if second else "jacobian"
    if fmt is Format.json:
        document = {"dtype": dtype_name(graph.dtype), "output": out, key: data}
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
    elif fmt is Format.torch:
        sys.stdout.write("".join(f"{name}: {text}\n" for name, text in texts.items()))
    else:
        from rich.text import Text

        console = _stdout_console()
        for name, text in texts.items():
            console.print(Text(f"{key} of {out} by {name}:\n{text}"))


def _stdout_console():
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(no_color=True, width=int(os.environ.get("COLUMNS", 120)), highlight=False)


# Values text read from a file or stdin: past this size (some ten million numbers) the input
# is refused before it is read further; larger inputs come as .npy or .npz, read in C.
MAX_VALUES_TEXT = 1 << 27
BLOCK_CHARS = 1 << 20  # batch input is read this much at a time


def read_program(argument: str) -> str:
    from gradcalc.lang.parser import MAX_PROGRAM_CHARS

    if argument == "-":
        return _read_stream(sys.stdin, "the program on stdin", MAX_PROGRAM_CHARS)
    if argument.startswith("@"):
        return _read_file(argument[1:], "program file", MAX_PROGRAM_CHARS)
    return argument


def _read_file(path: str, what: str, limit: int = MAX_VALUES_TEXT) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return _read_stream(f, f"{what} {path!r}", limit)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {what} {path!r}: {getattr(e, 'strerror', None) or e}") from None


def _read_stream(stream, what: str, limit: int) -> str:
    """At most `limit` characters; more is an error."""
    text = stream.read(limit + 1)
    if len(text) > limit:
        raise InputError(f"{what} is longer than {limit:,} characters")
    return text


def _split(items: list[str]) -> list[str]:
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _input_values(extra: list[str], var: list[str], values_file: Optional[str]) -> dict:
    """Input values from --values FILE, then --var NAME=V, then --NAME V (later wins)."""
    from gradcalc.lang.values import load_values_file, value_argument

    texts: dict[str, str] = {}
    i = 0
    while i < len(extra):
        m = _NAME_OPTION.match(extra[i])
        if not m:
            raise InputError(f"unexpected argument {extra[i]!r}",
                             hint="give input values as --NAME VALUE, e.g. --x 2,1")
        name, inline = m.group(1), m.group(2)
        if inline is None:
            if i + 1 >= len(extra):
                raise InputError(f"--{name}: missing value", hint=f"as in --{name} 2,1")
            inline = extra[i + 1]
            i += 1
        texts[name] = inline
        i += 1
    for item in var:
        name, sep, text = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise InputError(f"--var {item!r}: expected NAME=VALUE")
        texts.setdefault(name.strip(), text)
    result = {}
    if values_file is not None:
        result.update(load_values_file(values_file, lambda path: _read_stream(sys.stdin, "stdin", MAX_VALUES_TEXT)
                                       if path == "-" else _read_file(path, "values file")))
    result.update({name: value_argument(text, f"--{name}") for name, text in texts.items()})
    return result


def _guarded(run, debug: bool) -> None:
    """Run a command; turn gradcalc's errors (and anything unexpected) into `error:` and exit 2."""
    try:
        run()
    except GradcalcError as e:
        if debug:
            raise
        _error(e.render())
        raise typer.Exit(e.exit_code)
    except (typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
        raise  # a reader that went away (`| head -1`): click exits 1, quietly
    except MemoryError:
        if debug:
            raise
        _error("out of memory: the input is too large")
        raise typer.Exit(ExitCode.BAD_INPUT)
    except Exception as e:  # a bug: still one line, no traceback
        if debug:
            raise
        _error(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)")
        raise typer.Exit(ExitCode.BAD_INPUT)


def _run_batch(source, path, extra, var, values, seed, output, retain, no_grad, dtype, jobs) -> int:
    """Rows from a JSON-lines file or stdin; documents on stdout, bad rows on stderr, exit 2 if any.
    A file's rows are shared by `jobs` processes (0: one per CPU, see gradcalc.analysis.turns)."""
    from gradcalc.analysis.batch import batch_job
    from gradcalc.analysis.turns import can_share, default_workers, run_in_turns
    from gradcalc.api import parse
    from gradcalc.lang.values import parse_value

    if extra or var or values:
        raise InputError("--batch takes the input values from its rows, not from options")
    if path == "-":
        stream = sys.stdin
        if hasattr(stream, "reconfigure"):  # bytes that are not UTF-8 fail their line, not the batch
            stream.reconfigure(errors="surrogateescape")
    else:
        stream = _open_text(path, "batch file")
    job = batch_job(parse(source), outputs=output, seeds=[parse_value(s, "--seed") for s in seed],
                    retain=_split(retain), no_grad=_split(no_grad), dtype=dtype)
    too_long: list[str] = []
    progress = _progress_on_terminal("rows")
    workers = jobs or default_workers()
    if progress is not None or not can_share(stream, workers):
        workers = 1

    def write(chunk) -> None:
        sys.stdout.write(chunk.text)
        for error in chunk.errors:
            if error is not None:
                _error(error)
        if progress is not None:
            progress.advance(progress.task_ids[0], len(chunk.lines))
        if workers > 1:  # before the next worker's turn
            sys.stdout.flush()
            sys.stderr.flush()

    def reopen():
        return _bounded_blocks(_open_text(path, "batch file"), [])

    with stream, progress or contextlib.nullcontext():
        failed = run_in_turns(job.run, _bounded_blocks(stream, too_long), reopen, write, workers)
    for error in too_long:
        _error(error)
    sys.stdout.flush()
    return ExitCode.BAD_INPUT if failed or too_long else ExitCode.OK


def _bounded_blocks(stream, too_long: list[str]):
    """The stream's text in blocks of whole lines (each block's lines joined by "\n", without
    the last "\n"), read in blocks: a line at a time would cost a Python step per row. A line
    longer than MAX_VALUES_TEXT characters (a file with no line breaks, /dev/zero) ends the
    input, with its line number put in `too_long`; the lines wholly inside a block are shorter
    than a block."""
    number = 0                # lines handed out so far
    partial, pending = [], 0  # the line being read: its pieces so far, and their length
    while block := stream.read(BLOCK_CHARS):
        end = block.rfind("\n")
        if end >= 0:
            first = block.find("\n")
            if pending + first > MAX_VALUES_TEXT:
                return too_long.append(_too_long(number + 1))
            complete = "".join(partial) + block[:end] if partial else block[:end]
            partial, pending = [], 0
            number += block.count("\n", 0, end + 1)
            yield complete
            block = block[end + 1:]
        partial.append(block)
        pending += len(block)
        if pending > MAX_VALUES_TEXT:
            return too_long.append(_too_long(number + 1))
    if pending:
        yield "".join(partial)


def _too_long(line: int) -> str:
    return f"line {line}: longer than {MAX_VALUES_TEXT:,} characters; the rest of the input is not read"


def _progress_on_terminal(what: str, total: Optional[int] = None):
    """A Rich progress display on stderr when stderr is a terminal, else None.

    stdout is left alone (not redirected above the bar): it is the program's output, often a pipe."""
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counter = MofNCompleteColumn() if total is not None else TextColumn("{task.completed:,}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), counter, TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True, redirect_stdout=False)
    progress.add_task(what, total=total)
    return progress


def _open_text(path: str, what: str):
    """A text file of lines; bytes that are not UTF-8 are kept (as lone surrogates) for the
    line that holds them to be reported, not the whole file."""
    try:
        return open(path, encoding="utf-8", errors="surrogateescape")
    except OSError as e:
        raise InputError(f"cannot read {what} {path!r}: {e.strerror}") from None


def _run_suite(path: str, junit: Optional[str], use_cache: bool) -> int:
    """Every case of a suite file; a summary line; a progress bar on a terminal; JUnit XML."""
    from gradcalc.analysis.suite import load_suite, run_suite, write_junit

    cases = load_suite(path, _read_file(path, "suite file"))
    results = run_suite(cases, _progress_on_terminal("checking", total=len(cases)), use_cache=use_cache)
    for result in results:
        if not result.passed:
            sys.stdout.write(f"--- {result.name}\n{result.text}\n")
    failed = sum(not r.passed for r in results)
    errors = sum(r.error for r in results)
    sys.stdout.write(f"{len(results) - failed} passed, {failed} failed"
                     + (f" ({errors} with bad input)" if errors else "") + "\n")
    if junit is not None:
        write_junit(results, junit, suite_name=path)
    if errors:
        return ExitCode.BAD_INPUT
    return ExitCode.CHECK_FAILED if failed else ExitCode.OK


def _guarded_status(run, debug: bool) -> None:
    """As _guarded, for a command whose run() returns an exit status (check's 0 or 1)."""
    status: list[int] = []
    _guarded(lambda: status.append(run()), debug)
    if status and status[0] != ExitCode.OK:
        raise typer.Exit(status[0])


def _error(text: str) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False)
    message = Text("error:", style="bold red")
    message.append(" " + text, style="default")
    console.print(message, soft_wrap=True)


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: returns the exit status; click's own usage errors become `error:` lines."""
    # A graph is many small objects and few cycles: Python's default thresholds run the cycle
    # collector so often that a 20,000-statement program spends a third of its time in it.
    gc.set_threshold(50_000, 50, 1_000)
    try:
        status = app(args=argv, prog_name="gradcalc", standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except typer.TyperException as e:
        _error(e.format_message())
        return ExitCode.BAD_INPUT
    except typer.Abort:
        _error("aborted")
        return ExitCode.BAD_INPUT
    return status if isinstance(status, int) else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
