"""The command line's terminal: errors as `error:` lines on stderr and exit codes, the stdout
console, and a progress bar."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Optional

import typer
from typer.core import TyperGroup

from gradcalc import __version__
from gradcalc.errors import ExitCode, GradcalcError


class Commands(TyperGroup):
    """Click's own usage errors as one `error:` line and exit 2, whether main() runs the app
    or (in tests) Typer's CliRunner does."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        try:
            status = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.TyperException as e:  # click's UsageError and kin
            status = error(e.format_message())
        except typer.Abort:
            status = error("aborted")
        status = status if isinstance(status, int) else ExitCode.OK
        if standalone_mode:
            sys.exit(status)
        return status


def guarded(run: Callable[[], int], debug: bool) -> None:
    """Run a command for its exit status. Bad input (2), running out of memory (2) and a bug
    (70) are an `error:` line each, with no traceback unless --debug."""
    try:
        status = run()
    except (typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
        raise  # a reader that went away (`| head -1`): click exits 1, quietly
    except Exception as e:
        if debug:
            raise
        if isinstance(e, GradcalcError):
            status = error(e.render(), e.exit_code)
        elif isinstance(e, MemoryError):
            status = error("out of memory: the input is too large")
        else:
            status = error(f"internal error: {type(e).__name__}: {e}\nhint: this is a bug in gradcalc {__version__}; "
                          "please report it with the command line and the traceback --debug shows", ExitCode.INTERNAL)
    if status != ExitCode.OK:
        raise typer.Exit(status)


def error(text: str, status: int = ExitCode.BAD_INPUT) -> int:
    """Write `error: text` on stderr; `status`, the exit status that goes with it."""
    from rich.console import Console
    from rich.text import Text

    message = Text("error:", style="bold red")
    message.append(" " + text, style="default")
    Console(stderr=True, highlight=False).print(message, soft_wrap=True)
    return status


def stdout_console():
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(no_color=True, width=int(os.environ.get("COLUMNS", 120)), highlight=False)


def emit(printout) -> None:
    """A report.printout.Printout: its text on stdout, what it lays out on the stdout console,
    its lines on stderr."""
    sys.stdout.write(printout.stdout)
    if printout.laid_out:
        console = stdout_console()
        for renderable in printout.laid_out:
            console.print(renderable)
    sys.stderr.write(printout.stderr)
    sys.stdout.flush()


def progress_on_terminal(what: str, total: Optional[int] = None):
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
