"""Hostile and broken input: exit 2, one `error:` line, no traceback, fast, and nothing executed.

Every case runs through the real command line (in this process, for speed; a sample also
as whole processes). A tripwire file that a successful code-execution escape would create is
checked after every case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gradcalc.cli.commands import app

TRIPWIRE = Path(os.environ.get("TMPDIR", "/tmp")) / "gradcalc-hostile-tripwire"
ESCAPE = f"open({str(TRIPWIRE)!r}, 'w').write('escaped')"
VALUES = ["--x", "1,2", "--y", "3,4"]

# (id, program, extra arguments, a substring the error must contain)
PROGRAMS = [
    # code execution attempts
    ("dunder import", f"b = __import__('os').system('touch {TRIPWIRE}')", [], "unknown function '__import__'"),
    ("attribute chain", "b = x.__class__.__mro__", VALUES, "column"),
    ("dunder method", "b = x.__add__(y)", VALUES, "column"),
    ("lambda", "b = (lambda: 1)()", [], "column"),
    ("string", f'b = "{ESCAPE}"', [], "column"),
    ("single-quoted string", "b = 'x'", [], "column"),
    ("f-string", "b = f'{x}'", VALUES, "column"),
    ("list comprehension", "b = [x for x in y]", VALUES, "column"),
    ("generator", "b = sum(x for x in y)", VALUES, "column"),
    ("walrus", "b = (c := x)", VALUES, "column"),
    ("subscript with a tensor", "b = x[y]", VALUES, "column"),
    ("subscript with a call", "b = x[exp(y)]", VALUES, "column"),
    ("keyword argument torch does not have", "b = clamp(x, minimum=0)", VALUES, "column"),
    ("keyword string that is no choice", "b = clamp(x, min='__import__')", VALUES, "column"),
    ("import statement", "import os", [], "column"),
    ("from import", "from os import system", [], "column"),
    ("exec call", f"b = exec({ESCAPE!r})", [], "column"),
    ("eval call", "b = eval('1')", [], "column"),
    ("getattr call", "b = getattr(x, 'grad')", VALUES, "column"),
    ("open call", "b = open('/etc/passwd')", [], "column"),
    ("semicolon statement", "b = x; del x", VALUES, "column"),
    ("NFKC lookalike name", "b = \uff58 + 1", VALUES, "column"),              # fullwidth x
    ("NFKC lookalike import", "b = \U0001d5f6mport", [], "column"),          # mathematical i
    ("NFKC ligature", "b = \ufb01", [], "column"),                           # fi ligature
    ("bidi override", "b = x\u202e + y", VALUES, "column"),
    ("zero-width space", "b = x\u200b + y", VALUES, "column"),
    ("control character", "b = x\x07 + y", VALUES, "column"),
    ("NUL byte", "b = x\x00 + y", VALUES, "column"),
    ("escape sequence", "b = x\x1b[31m", VALUES, "column"),
    ("backslash continuation", "b = x + \\\n y", VALUES, "column"),
    ("decorator (@ reads a program file)", "@x\nb = x", VALUES, "cannot read program file"),
    ("class keyword", "class A: pass", [], "column"),
    ("dict literal", "b = {1: 2}", [], "column"),
    ("bytes literal", "b = b'abc'", [], "column"),
    ("conditional expression", "b = x if y else x", VALUES, "column"),
    ("chained comparison", "b = x < y < x", VALUES, "column"),
    ("boolean operator", "b = x and y", VALUES, "column"),
    ("star argument", "b = sum(*x)", VALUES, "column"),
    ("complex literal", "b = x * 1j", VALUES, "column"),
    # malformed programs
    ("unbalanced open", "b = (x + y", VALUES, "column"),
    ("unbalanced close", "b = x + y)", VALUES, "column"),
    ("dangling operator", "b = x +", VALUES, "column"),
    ("double operator", "b = x * / y", VALUES, "column"),
    ("assign to pi", "pi = 3", [], "pi"),
    ("call a tensor named like a function", "sin = x * y; b = sin(x)", VALUES, "sin"),
    ("assign to number", "2 = x", VALUES, "column"),
    ("empty program", "", [], "empty"),
    ("only comments", "# nothing here", [], "empty"),
    ("only whitespace", "  \n\t\n ", [], "empty"),
    ("unknown function", "b = sinn(x)", VALUES, "did you mean 'sin'"),
    ("unknown method", "b = x.expp()", VALUES, "did you mean 'exp'"),
    ("wrong arity", "b = sin(x, y)", VALUES, "argument"),
    ("no arguments", "b = atan2()", VALUES, "argument"),
    ("unicode times", "b = x \u00d7 y", VALUES, "'*'"),
    ("unicode minus", "b = x \u2212 y", VALUES, "'-'"),
    ("unicode division", "b = x \u00f7 y", VALUES, "'/'"),
    ("number then name", "b = 2x", VALUES, "column"),
    ("trailing dot", "b = x.", VALUES, "column"),
    ("bare expression", "x + y", VALUES, "column"),
    ("chained assignment", "a = b = x", VALUES, "column"),
    ("augmented assignment", "b = x; b += y", VALUES, "column"),
    ("retain_grad with argument", "b = x * y; b.retain_grad(1)", VALUES, "column"),
    ("name read but never given", "b = x * q", VALUES, "no value for input 'q'"),
]

# (id, program, arguments, a substring the error must contain)
VALUE_CASES = [
    ("ragged list", "b = (x * 2).sum()", ["--x", "[[1,2],[3]]"], "ragged"),
    ("empty element", "b = (x * 2).sum()", ["--x", "1,,2"], "x"),
    ("hex number", "b = (x * 2).sum()", ["--x", "0x10"], "x"),
    ("non-ASCII digits", "b = (x * 2).sum()", ["--x", "\u0661,\u0662"], "x"),
    ("python expression as value", "b = (x * 2).sum()", ["--x", "__import__('os')"], "x"),
    ("unknown input name", "b = (x * 2).sum()", ["--x", "1", "--w", "2"], "'w'"),
    ("missing input", "b = (x * y).sum()", ["--x", "1"], "no value for input 'y'"),
    ("shapes do not broadcast", "b = (x * y).sum()", ["--x", "1,2,3", "--y", "1,2"], "must match"),
    ("bad JSON values file", "b = (x * y).sum()", ["--values", "-"], "JSON"),
    ("values file with a string", "b = (x * 2).sum()", ["--var", "x=[1, \"a\"]"], "x"),
    ("seed of the wrong shape", "b = x * 2", ["--x", "1,2", "--seed", "1,2,3"], "Mismatch in shape"),
    ("bad dtype", "b = x * 2", ["--x", "1", "--dtype", "float16"], "dtype"),
    ("bad format", "b = x * 2", ["--x", "1", "--format", "yaml"], "format"),
    ("nested too deep value", "b = (x * 2).sum()", ["--x", "[" * 200 + "1" + "]" * 200], "x"),
]


@pytest.fixture(autouse=True)
def tripwire():
    TRIPWIRE.unlink(missing_ok=True)
    yield
    assert not TRIPWIRE.exists(), "a hostile program executed code"


def assert_rejected(args, expected: str, input: str | None = None, seconds: float = 2.0):
    start = time.perf_counter()
    result = CliRunner().invoke(app, args, input=input)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert lines and lines[0].startswith("error: "), result.stderr
    assert sum(line.startswith("error:") for line in lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    assert expected in result.stderr, result.stderr
    assert elapsed < seconds, f"{elapsed:.2f} s"
    return result


@pytest.mark.parametrize("program, extra, expected", [c[1:] for c in PROGRAMS], ids=[c[0] for c in PROGRAMS])
def test_hostile_program_is_rejected(program, extra, expected):
    assert_rejected(["eval", program, *extra, "--format", "json"], expected)


@pytest.mark.parametrize("program, extra, expected", [c[1:] for c in VALUE_CASES], ids=[c[0] for c in VALUE_CASES])
def test_malformed_values_are_rejected(program, extra, expected):
    assert_rejected(["eval", program, *extra], expected, input="{not json")


DEEP = "[" * 100_000 + "1" + "]" * 100_000
# (id, arguments, standard input, a substring the error must contain)
STDIN_CASES = [
    ("values nested 100,000 deep", ["eval", "b = (x * 2).sum()", "--values", "-"], '{"x": ' + DEEP + "}", "JSON"),
    ("batch row nested 100,000 deep", ["eval", "b = (x * 2).sum()", "--batch", "-"], '{"x": ' + DEEP + "}\n",
     "line 1"),
    ("program from stdin with NUL", ["eval", "-", "--x", "1"], "b = x\x00", "column"),
    ("values that are a list", ["eval", "b = x * 2", "--values", "-"], "[1, 2]", "JSON object"),
    ("values with a huge integer", ["eval", "b = x * 2", "--values", "-"], '{"x": ' + "9" * 5000 + "}", "x"),
    ("batch row that is not an object", ["eval", "b = x * 2", "--batch", "-"], "[1]\n", "line 1"),
]


@pytest.mark.parametrize("args, stdin, expected", [c[1:] for c in STDIN_CASES], ids=[c[0] for c in STDIN_CASES])
def test_hostile_standard_input_is_rejected(args, stdin, expected):
    assert_rejected(args, expected, input=stdin)


def test_the_corpus_is_large_enough():
    assert len(PROGRAMS) + len(VALUE_CASES) + len(STDIN_CASES) >= 60


@pytest.mark.parametrize("program", [PROGRAMS[0][1], PROGRAMS[4][1], PROGRAMS[15][1], "b = x\x00 + y"])
def test_hostile_programs_as_whole_processes(program):
    """The same, end to end in a fresh interpreter (argv cannot hold NUL: that one goes via stdin)."""
    args = ["-", "--x", "1"] if "\x00" in program else [program, "--x", "1"]
    proc = subprocess.run([sys.executable, "-m", "gradcalc", "eval", *args], input=program if "\x00" in program else None,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_text_without_end_is_refused_at_its_limit(monkeypatch):
    """/dev/zero as values or as batch rows: read up to the limit, then an error (the limit is
    made small here; it is MAX_VALUES_TEXT characters)."""
    import gradcalc.lang.inputs

    monkeypatch.setattr(gradcalc.lang.inputs, "MAX_VALUES_TEXT", 1000)
    endless = "\0" * 5000
    assert_rejected(["eval", "b = x.sum()", "--values", "-"], "longer than 1,000 characters", input=endless)
    result = CliRunner().invoke(app, ["eval", "b = x.sum()", "--batch", "-"], input='{"x": [1, 2]}\n' + endless)
    assert result.exit_code == 2 and len(result.stdout.splitlines()) == 1
    assert "error: line 2: longer than 1,000 characters" in result.stderr
