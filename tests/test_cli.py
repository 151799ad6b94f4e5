"""The command line: exit codes, stdout/stderr, value options, through Typer's runner and a real process."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gradcalc import __version__
from gradcalc.cli.commands import app, main

REFERENCE = ["eval", "a = x + 2*y; b = a + z/2", "--x", "2,1", "--y", "1,3", "--z", "5,2",
             "--seed", "1,1", "--retain", "a", "--format", "torch"]
REFERENCE_TORCH = ("tensor([2., 1.]) tensor([1., 1.])\n"
                   "tensor([1., 3.]) tensor([2., 2.])\n"
                   "tensor([5., 2.]) tensor([0.5000, 0.5000])\n"
                   "tensor([4., 7.]) tensor([1., 1.])\n")


def run(args, input=None):
    return CliRunner().invoke(app, args, input=input)


def test_reference_case_prints_torch_lines():
    result = run(REFERENCE)
    assert result.exit_code == 0, result.output
    assert result.stdout == REFERENCE_TORCH


def test_reference_case_in_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "gradcalc", *REFERENCE], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == REFERENCE_TORCH
    assert proc.stderr == ""


def test_table_lists_every_name_with_partials():
    result = run(["eval", "a=x+2*y; b=a+z/2", "--x", "2,1", "--y", "1,3", "--z", "5,2", "--seed", "1,1"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("requires_grad", "grad_fn", "AddBackward0", "tensor([0.5000, 0.5000])", "∂b/∂name",
                 "1/2", "b.backward(tensor([1., 1.]))"):
        assert text in out, out
    assert "\x1b[" not in out  # plain text when not a terminal


def test_json_document_has_the_spec_fields():
    result = run(["eval", "a = x + 2*y; b = a + z/2", "--x", "2,1", "--y", "1,3", "--z", "5,2",
                  "--seed", "1,1", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["dtype"] == "float32" and doc["outputs"] == ["b"]
    assert [t["name"] for t in doc["tensors"]] == ["x", "y", "z", "a", "b"]
    x = doc["tensors"][0]
    assert x == {"name": "x", "shape": [2], "data": [2.0, 1.0], "grad": [1.0, 1.0],
                 "requires_grad": True, "is_leaf": True, "grad_fn": None, "partials": {"b": "1"}}
    z = doc["tensors"][2]
    assert z["grad"] == [0.5, 0.5] and z["partials"] == {"b": "1/2"}
    a = doc["tensors"][3]
    assert a["grad"] is None and a["grad_fn"] == "AddBackward0" and a["is_leaf"] is False


def test_json_nan_inf_and_0d():
    result = run(["eval", "b = (x * s).sum()", "--x", "nan,inf,-inf", "--s", "3", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    tensors = {t["name"]: t for t in doc["tensors"]}
    assert tensors["x"]["data"] == ["nan", "inf", "-inf"]
    assert tensors["s"]["data"] == 3.0 and tensors["s"]["shape"] == []
    assert tensors["s"]["grad"] == "nan"


def test_detach_variant_reports_what_torch_reports():
    result = run(["eval", "a = x + 2*y; a.retain_grad(); a = a.detach(); b = a + z/2",
                  "--x", "2,1", "--y", "1,3", "--z", "5,2", "--seed", "1,1", "--format", "json"])
    assert result.exit_code == 0, result.output
    tensors = {t["name"]: t for t in json.loads(result.stdout)["tensors"]}
    assert tensors["x"]["grad"] is None and tensors["y"]["grad"] is None
    assert tensors["z"]["grad"] == [0.5, 0.5]
    assert tensors["a"]["is_leaf"] is True and tensors["a"]["requires_grad"] is False
    assert tensors["a"]["partials"] == {"b": None}


@pytest.mark.parametrize("args, message", [
    (["eval", "b = x*2", "--x", "2,1"], "grad can be implicitly created only for scalar outputs"),
    (["eval", "b = x*2", "--x", "2,1", "--seed", "1,1,1"], "Mismatch in shape: grad_output[0] has a shape of torch.Size([3]) and output[0] has a shape of torch.Size([2])."),
    (["eval", "b = x*2", "--x", "2,1", "--no-grad", "x", "--seed", "1,1"], "element 0 of tensors does not require grad and does not have a grad_fn"),
    (["eval", "b = x*2"], "no value for input 'x'"),
    (["eval", "b = x*2", "--x", "1", "--y", "2"], "a value was given for 'y'"),
    (["eval", "b = x*2", "--x", "[[1,2],[3]]"], "--x: ragged nested list"),
    (["eval", "b = x*2", "--x", "1,,2"], "--x:"),
    (["eval", "b = x*2", "--x", "0x10"], "--x: cannot read"),
    (["eval", "b = x*2", "--x"], "--x: missing value"),
    (["eval", "b = x*2", "--x", "1", "--format", "yaml"],
     "Invalid value for '--format': 'yaml' is not one of 'table', 'torch', 'json', 'csv'."),
    (["eval", "b = x*2", "--x", "1", "--dtype", "int8"], "Invalid value for '--dtype': 'int8' is not one of 'float32', 'float64'."),
    (["diff", "b = x*2", "--format", "yaml"], "Invalid value for '--format': 'yaml' is not one of 'text', 'latex', 'json'."),
    (["graph", "b = x*2", "--format", "png"], "Invalid value for '--format': 'png' is not one of 'tree', 'dot', 'mermaid'."),
    (["eval"], "Missing argument 'PROGRAM'."),
    (["eval", "b = x*2", "--x", "1", "--retain", "q"], "no tensor named 'q'"),
    (["eval", "b = x*2", "--x", "1", "--output", "q"], "no tensor named 'q'"),
])
def test_bad_input_is_one_error_line_and_exit_2(args, message):
    result = run(args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error:"), result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_syntax_error_shows_a_caret_under_the_column():
    result = run(["eval", "b = x * (2 +", "--x", "1"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: line 1, column")
    assert lines[1] == "  b = x * (2 +"
    assert lines[2].endswith("^")


def test_code_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    program = f"b = __import__('os').system('touch {marker}')"
    result = run(["eval", program])
    assert result.exit_code == 2
    assert result.stderr.startswith("error:")
    assert not marker.exists()


def test_debug_shows_the_traceback():
    result = CliRunner().invoke(app, ["eval", "b = x*2", "--x", "2,1", "--debug"])
    assert result.exit_code != 0
    assert result.exception is not None


def test_values_from_var_json_file_and_stdin(tmp_path):
    values = tmp_path / "v.json"
    values.write_text('{"x": [2, 1], "y": [1, 3]}')
    common = ["--seed", "1,1", "--format", "torch"]
    by_file = run(["eval", "b = x*y", "--values", str(values), *common])
    by_var = run(["eval", "b = x*y", "--var", "x=2,1", "--var", "y=[1,3]", *common])
    by_stdin = run(["eval", "b = x*y", "--values", "-", *common], input=values.read_text())
    assert by_file.exit_code == by_var.exit_code == by_stdin.exit_code == 0, by_file.output
    assert by_file.stdout == by_var.stdout == by_stdin.stdout
    assert by_file.stdout == "tensor([2., 1.]) tensor([1., 3.])\ntensor([1., 3.]) tensor([2., 1.])\n"


def test_option_forms_negative_values_and_equals():
    result = run(["eval", "b = (x*s).sum()", "--x=-1,2", "--s", "-3", "--format", "torch"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "tensor([-1.,  2.]) tensor([-3., -3.])\ntensor(-3.) tensor(1.)\n"


def test_program_from_file_and_stdin(tmp_path):
    prog = tmp_path / "prog.gc"
    prog.write_text("# reference\na = x + 2*y\nb = a + z/2\n")
    args = ["--x", "2,1", "--y", "1,3", "--z", "5,2", "--seed", "1,1", "--retain", "a", "--format", "torch"]
    assert run(["eval", f"@{prog}", *args]).stdout == REFERENCE_TORCH
    assert run(["eval", "-", *args], input=prog.read_text()).stdout == REFERENCE_TORCH


def test_float64_and_several_outputs():
    result = run(["eval", "b = x*x; c = x.sum()", "--x", "1,2", "--output", "b", "--output", "c",
                  "--seed", "1,1", "--dtype", "float64", "--format", "torch"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "tensor([1., 2.], dtype=torch.float64) tensor([3., 5.], dtype=torch.float64)\n"


def test_usage_errors_are_error_lines_too(capsys):
    assert main(["eval"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "PROGRAM" in err
    assert main(["eval", "b = x*2", "--x", "1", "--format", "yaml"]) == 2
    assert capsys.readouterr().err == ("error: Invalid value for '--format': 'yaml' is not one of "
                                       "'table', 'torch', 'json', 'csv'.\n")


@pytest.mark.parametrize("kind, message", [
    (RuntimeError, "boom"),
    (ZeroDivisionError, "division by zero"),
])
def test_an_internal_error_exits_70_and_says_how_to_report_it(monkeypatch, kind, message):
    """A bug (an exception that is not one of gradcalc's errors) is not bad input: exit 70
    (EX_SOFTWARE), one `error: internal error: ...` line, how to report it, no traceback."""
    import gradcalc.api

    def broken(*args, **kwargs):
        raise kind(message)

    monkeypatch.setattr(gradcalc.api, "backward", broken)
    result = run(REFERENCE)
    assert result.exit_code == 70, result.output
    assert result.stdout == ""
    assert result.stderr == (f"error: internal error: {kind.__name__}: {message}\n"
                             f"hint: this is a bug in gradcalc {__version__}; please report it with the command "
                             "line and the traceback --debug shows\n")
    assert isinstance(run([*REFERENCE, "--debug"]).exception, kind)


def test_running_out_of_memory_is_bad_input(monkeypatch):
    import gradcalc.api

    def huge(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(gradcalc.api, "backward", huge)
    result = run(REFERENCE)
    assert result.exit_code == 2 and result.stderr == "error: out of memory: the input is too large\n"


def test_an_internal_error_in_a_real_process_has_no_traceback():
    code = ("import sys, gradcalc.api\n"
            "def broken(*args, **kwargs): raise RuntimeError('boom')\n"
            "gradcalc.api.backward = broken\n"
            "from gradcalc.cli.commands import main\n"
            "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, *REFERENCE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 70, proc.stderr
    assert proc.stderr.startswith("error: internal error: RuntimeError: boom\nhint: this is a bug in gradcalc")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_version_and_help():
    assert run(["--version"]).stdout == f"gradcalc {__version__}\n"
    help_text = run(["eval", "--help"]).stdout
    assert "gradcalc eval" in help_text and "--seed" in help_text


@pytest.mark.parametrize("command, choices", [
    ("eval", ["--format table|torch|json|csv", "--dtype float32|float64"]),
    ("diff", ["--format text|latex|json"]),
    ("graph", ["--format tree|dot|mermaid", "--dtype float32|float64"]),
    ("check", ["--dtype float32|float64"]),
])
def test_help_lists_each_choice_option_s_choices(command, choices):
    result = run([command, "--help"])
    assert result.exit_code == 0
    for text in choices:
        assert text in result.stdout, result.stdout
