"""The command line: flags -> library calls -> output; errors -> stderr and an exit code."""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Optional

import typer

from gradcalc import __version__, cache
from gradcalc.choices import DiffFormat, DType, Format, GraphFormat, ListFormat
from gradcalc.cli.terminal import Commands, emit, error, guarded, progress_on_terminal, stdout_console
from gradcalc.errors import ExitCode, InputError

app = typer.Typer(name="gradcalc", cls=Commands, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="A gradient calculator: PyTorch's .grad printout for a formula, and the chain rule behind it.")


def _choices(choices: type[Enum]) -> str:
    return "|".join(choice.value for choice in choices)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gradcalc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None) -> None:
    pass


def _command(name: str) -> Callable[[Callable[..., int]], Callable[..., None]]:
    """app.command(name) for a function that returns an exit status; its docstring is the help,
    --NAME V values come after the known options, and errors are handled by `guarded`."""
    def register(run: Callable[..., int]) -> Callable[..., None]:
        @functools.wraps(run)
        def command(**options) -> None:
            guarded(lambda: run(**options), options["debug"])

        return app.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)
    return register


Program = Annotated[str, typer.Argument(
    metavar="PROGRAM", help="The program text, @FILE to read it from a file, or - for stdin.", show_default=False)]
Var = Annotated[list[str], typer.Option(
    "--var", metavar="NAME=V", help="An input's value (repeatable); for names that clash with options.")]
Values = Annotated[Optional[str], typer.Option(
    "--values", metavar="FILE", help='A JSON object of input values, {"x": [2, 1]}; - for stdin.')]
Seeds = Annotated[list[str], typer.Option(
    "--seed", metavar="V", help="backward()'s gradient argument, one per --output, in order.")]
Outputs = Annotated[list[str], typer.Option(
    "--output", metavar="NAME", help="The tensor to call backward() on (repeatable); default: the last assigned.")]
Retain = Annotated[list[str], typer.Option(
    "--retain", metavar="NAME", help="Call NAME.retain_grad() (repeatable or comma-separated).")]
NoGrad = Annotated[list[str], typer.Option(
    "--no-grad", metavar="NAME", help="An input that does not require grad (repeatable or comma-separated).")]
Dtype = Annotated[DType, typer.Option(
    "--dtype", metavar=_choices(DType), help="The dtype of every tensor (as torch.Tensor: float32).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks.")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache of derived partials "
                                                          "($XDG_CACHE_HOME/gradcalc; also GRADCALC_NO_CACHE=1).")]


@_command("eval")
def eval_command(
    ctx: typer.Context, program: Program, var: Var = [], values: Values = None, seed: Seeds = [], output: Outputs = [],
    retain: Retain = [], no_grad: NoGrad = [], dtype: Dtype = DType.float32,
    format: Annotated[Format, typer.Option("--format", metavar=_choices(Format), help=(
        "table (default), torch (print(t.data, t.grad) lines), json, or csv (a row per element)."))] = Format.table,
    batch: Annotated[Optional[str], typer.Option(
        "--batch", metavar="FILE.jsonl",
        help="One JSON object of input values per line (- for stdin); writes one JSON document per line.")] = None,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Explain each grad: the chain rule behind it, or why it is None.")] = False,
    hessian: Annotated[bool, typer.Option("--hessian", help="Print the Hessian of a scalar output by each pair of "
                                          "inputs (torch.autograd.functional.hessian) instead of the grads.")] = False,
    exact: Annotated[bool, typer.Option(
        "--exact", help="Exact arithmetic: SymPy rationals instead of floats (1/3 stays 1/3).")] = False,
    jacobian: Annotated[bool, typer.Option("--jacobian", help="Print the Jacobian of the output by each input "
                                           "(torch.autograd.functional.jacobian) instead of the grads.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", metavar="N", min=0, help="Processes that share a --batch file's "
                                      "rows (default 0: one per CPU, at most 4).")] = 0,
    no_cache: NoCache = False, debug: Debug = False,
) -> int:
    """Evaluate PROGRAM and print every tensor's value and gradient as PyTorch prints them.

    Inputs are the names the program reads before assigning them; give each a value with
    --NAME V (as in --x 2,1), --var NAME=V, or --values FILE.json. Values: 3, 2,1, [2,1],
    [[1,2],[3,4]], nan, inf.

    Example (the PyTorch program x+y*2, z/2, b.backward(torch.ones(2))):

    \b
      gradcalc eval "a = x + 2*y; b = a + z/2" --x 2,1 --y 1,3 --z 5,2 --seed 1,1 --retain a --format torch
    """
    from gradcalc.api import evaluate  # here, not above: --help and --version load no NumPy
    from gradcalc.lang.inputs import input_values, read_program, split_names
    from gradcalc.lang.values import parse_value

    source = read_program(program, sys.stdin)
    options = {"outputs": output, "retain": split_names(retain), "no_grad": split_names(no_grad)}
    with cache.program(source, enabled=not no_cache):
        if batch is not None:
            if ctx.args or var or values:
                raise InputError("--batch takes the input values from its rows, not from options")
            return _run_batch(source, batch, seed, options, dtype.value, jobs)
        if jobs:
            raise InputError("--jobs is for --batch")
        evaluation = evaluate(source, input_values(ctx.args, var, values, sys.stdin),
                              seeds=[parse_value(s, "--seed") for s in seed], **options,
                              dtype="exact" if exact else dtype.value, run_backward=not (jacobian or hessian))
        if jacobian or hessian:
            from gradcalc.analysis.differentiate import derivatives
            from gradcalc.report.printout import derivatives_printout

            emit(derivatives_printout(derivatives(evaluation, second=hessian), format))
        else:
            from gradcalc.report.printout import evaluation_printout

            emit(evaluation_printout(evaluation, format, explain))
    return ExitCode.OK


@_command("diff")
def diff_command(
    ctx: typer.Context, program: Program,
    wrt: Annotated[list[str], typer.Option("--wrt", metavar="NAMES", help=(
        "Inputs to differentiate by (repeatable or comma-separated); default: all."))] = [],
    output: Annotated[Optional[str], typer.Option(
        "--output", metavar="NAME", help="The tensor to differentiate; default: the last assigned.")] = None,
    var: Var = [], values: Values = None, no_grad: NoGrad = [],
    format: Annotated[DiffFormat, typer.Option(
        "--format", metavar=_choices(DiffFormat), help="text (default), latex or json.")] = DiffFormat.text,
    debug: Debug = False,
) -> int:
    """Print the symbolic partial derivatives of PROGRAM: the local partial on every edge
    between named tensors, and the chain rule that composes them for each input.

    No values are needed; give some (--NAME V, as for eval) to fix the inputs' shapes, which
    matter for mean (1/n) and matrix products. Without a value an input is a scalar.

    Example:

    \b
      gradcalc diff "a = x + 2*y; b = a + z/2"
    """
    from gradcalc.analysis.differentiate import derivation
    from gradcalc.api import parse, resolve_values  # here, not above: --help and --version load no NumPy
    from gradcalc.lang.inputs import input_values, read_program, split_names
    from gradcalc.report import diff

    parsed = parse(read_program(program, sys.stdin))
    given = resolve_values(input_values(ctx.args, var, values, sys.stdin), "float32")
    derived = derivation(parsed, given, output=output,
                         wrt=split_names(wrt), no_grad=split_names(no_grad))
    render = {DiffFormat.text: diff.render_text, DiffFormat.latex: diff.render_latex,
              DiffFormat.json: diff.derivation_json}[format]
    sys.stdout.write(render(derived))
    return ExitCode.OK


@_command("graph")
def graph_command(
    ctx: typer.Context, program: Program,
    output: Annotated[Optional[str], typer.Option(
        "--output", metavar="NAME", help="The tensor whose graph to show; default: the last assigned.")] = None,
    var: Var = [], values: Values = None,
    seed: Annotated[Optional[str], typer.Option(
        "--seed", metavar="V", help="backward()'s gradient, for the grads shown.")] = None,
    retain: Retain = [], no_grad: NoGrad = [], dtype: Dtype = DType.float32,
    format: Annotated[GraphFormat, typer.Option(
        "--format", metavar=_choices(GraphFormat), help="tree (default), dot or mermaid.")] = GraphFormat.tree,
    debug: Debug = False,
) -> int:
    """Show the grad_fn graph of PROGRAM's output as PyTorch's next_functions would:
    each operation's backward node, AccumulateGrad at the leaves, labelled with your names.

    Values are optional (inputs are scalars without them); with values, each node also shows
    its shape, value and grad (after backward on the output).

    Example:

    \b
      gradcalc graph "a = x + 2*y; b = a + z/2" --format dot | dot -Tsvg > graph.svg
    """
    from gradcalc.analysis.differentiate import grad_fn_graph
    from gradcalc.api import parse, resolve_values  # here, not above: --help and --version load no NumPy
    from gradcalc.lang.inputs import input_values, read_program, split_names
    from gradcalc.lang.values import parse_value
    from gradcalc.report.graphs import render_dot, render_mermaid, render_tree

    parsed = parse(read_program(program, sys.stdin))
    given = resolve_values(input_values(ctx.args, var, values, sys.stdin), dtype.value)
    g = grad_fn_graph(parsed, given, output=output, seed=None if seed is None else parse_value(seed, "--seed"),
                      retain=split_names(retain), no_grad=split_names(no_grad), dtype=dtype.value)
    if format is GraphFormat.tree:
        stdout_console().print(render_tree(g, with_values=bool(given)))
    else:
        sys.stdout.write((render_dot if format is GraphFormat.dot else render_mermaid)(g, with_values=bool(given)))
    return ExitCode.OK


@app.command("functions")
def functions_command(
    format: Annotated[ListFormat, typer.Option(
        "--format", metavar=_choices(ListFormat), help="text (default) or json.")] = ListFormat.text,
    debug: Debug = False,
) -> None:
    """List every function of the language: its signatures as torch documents them, the
    grad_fn PyTorch gives its result, and its other spellings (methods, torch's aliases),
    grouped as torch's documentation groups them.

    Example:

    \b
      gradcalc functions | grep softmax
    """

    def run() -> int:
        from gradcalc.report import functions

        if format is ListFormat.json:
            import orjson

            sys.stdout.write(orjson.dumps(functions.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            sys.stdout.write(functions.listing())
        return ExitCode.OK

    guarded(run, debug)


@_command("check")
def check_command(
    ctx: typer.Context,
    program: Annotated[Optional[str], typer.Argument(metavar="PROGRAM", show_default=False, help=(
        "The program text, @FILE, or - for stdin (not with --suite)."))] = None,
    suite: Annotated[Optional[str], typer.Option(
        "--suite", metavar="FILE.toml", help="Run every [[case]] of a suite file in one process.")] = None,
    junit: Annotated[Optional[str], typer.Option(
        "--junit", metavar="FILE", help="With --suite: write a JUnit XML report for CI systems.")] = None,
    expect: Annotated[list[str], typer.Option(
        "--expect", metavar="NAME=V", help="NAME=V (data) or NAME.grad=V (V may be None); repeatable.")] = [],
    rtol: Annotated[Optional[float], typer.Option("--rtol", help="Relative tolerance (default: by dtype).")] = None,
    atol: Annotated[Optional[float], typer.Option("--atol", help="Absolute tolerance (default: by dtype).")] = None,
    gradcheck_: Annotated[bool, typer.Option("--gradcheck", help="Compare grads with finite differences.")] = False,
    var: Var = [], values: Values = None, seed: Seeds = [], output: Outputs = [], retain: Retain = [],
    no_grad: NoGrad = [], dtype: Dtype = DType.float32, no_cache: NoCache = False, debug: Debug = False,
) -> int:
    """Check PROGRAM's values and grads against expectations; exit 0 when every one holds,
    1 with a diff (worst element first) when any fails, 2 on bad input.

    Default tolerances are torch.testing.assert_close's for the dtype: float32 rtol 1.3e-6,
    atol 1e-5; float64 rtol 1e-7, atol 1e-7 (|got - expected| <= atol + rtol * |expected|).
    --gradcheck also compares every input's grad with central finite differences in float64,
    as torch.autograd.gradcheck does (eps 1e-6, atol 1e-5, rtol 1e-3); a point where the
    function has a kink (relu or abs at 0) is reported as such, not compared.

    Example:

    \b
      gradcalc check "a = x + 2*y; b = a + z/2" --x 2,1 --y 1,3 --z 5,2 --seed 1,1 --expect x.grad=1,1 --expect z.grad=0.5,0.5 --gradcheck
    """  # noqa: E501 (the example is one command line)
    from gradcalc.analysis import suite as suites
    from gradcalc.analysis.checking import parse_expectation, run_check
    from gradcalc.api import parse, resolve_values  # here, not above: --help and --version load no NumPy
    from gradcalc.lang.inputs import input_values, read_program, split_names
    from gradcalc.lang.values import parse_value

    if suite is not None:
        cases = suites.read_suite(suite)
        results = suites.run_suite(cases, progress_on_terminal("checking", total=len(cases)), use_cache=not no_cache)
        sys.stdout.write(suites.summary(results))
        if junit is not None:
            suites.write_junit(results, junit, suite_name=suite)
        return suites.exit_status(results)
    if program is None:
        raise InputError("check needs a PROGRAM or --suite FILE.toml")
    if not expect and not gradcheck_:
        raise InputError("nothing to check", hint="add --expect NAME=V, --expect NAME.grad=V or --gradcheck")
    source = read_program(program, sys.stdin)
    with cache.program(source, enabled=not no_cache):
        given = resolve_values(input_values(ctx.args, var, values, sys.stdin), dtype.value)
        report = run_check(parse(source), given,
                           [parse_expectation(e) for e in expect], seeds=[parse_value(s, "--seed") for s in seed],
                           outputs=output, retain=split_names(retain), no_grad=split_names(no_grad),
                           dtype=dtype.value, rtol=rtol, atol=atol, with_gradcheck=gradcheck_)
    sys.stdout.write(report.render())
    return ExitCode.OK if report.passed else ExitCode.CHECK_FAILED


def _run_batch(source: str, path: str, seed: list[str], options: dict, dtype: str, jobs: int) -> int:
    """Rows from a JSON-lines file or stdin; documents on stdout, bad rows on stderr, exit 2 if any.
    The rows are shared by `jobs` processes (0: one per CPU, see gradcalc.analysis.batch)."""
    from gradcalc.analysis.batch import batch_job, default_workers, run_pieces
    from gradcalc.analysis.batch_input import bounded_blocks, open_rows
    from gradcalc.api import parse
    from gradcalc.lang.values import parse_value

    stream = open_rows(path, sys.stdin)
    job = batch_job(parse(source), seeds=[parse_value(s, "--seed") for s in seed], **options, dtype=dtype)
    too_long: list[str] = []
    failed = 0
    progress = progress_on_terminal("rows")
    # One process under a progress bar: a fork beside Rich's refresh thread can print its bytes twice.
    workers = 1 if progress is not None else jobs or default_workers()
    chunks = run_pieces(job, bounded_blocks(stream, too_long), workers)
    with stream, progress or contextlib.nullcontext(), contextlib.closing(chunks):
        for chunk in chunks:
            sys.stdout.write(chunk.text)
            for message in [e for e in chunk.errors if e is not None]:
                failed += 1
                error(message)
            if progress is not None:
                progress.advance(progress.task_ids[0], len(chunk.lines))
    for message in too_long:
        error(message)
    sys.stdout.flush()
    return ExitCode.BAD_INPUT if failed or too_long else ExitCode.OK


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point: the exit status (click's own usage errors are `error:` lines, see Commands)."""
    # A graph is many small objects and few cycles: Python's default thresholds run the cycle
    # collector so often that a 20,000-statement program spends a third of its time in it.
    gc.set_threshold(50_000, 50, 1_000)
    return app(args=argv, prog_name="gradcalc", standalone_mode=False)

