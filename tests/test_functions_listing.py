"""`gradcalc functions`: every function of the language, read from the op table."""

import json

from typer.testing import CliRunner

from gradcalc.cli import app
from gradcalc.engine.ops import OPS, VOCABULARY


def run(*args):
    result = CliRunner().invoke(app, ["functions", *args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def test_every_callable_name_and_method_is_listed():
    text = run()
    for signatures in VOCABULARY.functions.values():
        for signature in signatures:
            assert str(signature) in text, str(signature)
    for name in VOCABULARY.methods:
        assert f"x.{name}(" in text, name
    for name in VOCABULARY.attributes:
        assert f"x.{name}" in text, name


def test_each_fixed_grad_fn_is_on_its_signature_line():
    for line in run().splitlines():
        for signatures in VOCABULARY.functions.values():
            for signature in signatures:
                row = OPS[signature.op]
                if line.strip().startswith(str(signature) + " ") and isinstance(row.grad_fn, str):
                    assert row.grad_fn in line, line


def test_json_lists_the_same_entries():
    entries = json.loads(run("--format", "json"))
    assert {e["signature"] for e in entries} >= {str(s) for sigs in VOCABULARY.functions.values() for s in sigs}
    assert all(set(e) == {"section", "signature", "also", "grad_fn"} for e in entries)


def test_an_unknown_format_is_a_usage_error():
    result = CliRunner().invoke(app, ["functions", "--format", "yaml"])
    assert result.exit_code == 2
