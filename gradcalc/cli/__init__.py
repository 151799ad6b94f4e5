"""The command line: the only package that imports Typer or writes to stdout and stderr."""

from gradcalc.cli.commands import app, main

__all__ = ["app", "main"]
