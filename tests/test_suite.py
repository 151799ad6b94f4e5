"""Check suites: a TOML file of cases, one process, a summary and JUnit XML."""

import xml.etree.ElementTree as ET

from typer.testing import CliRunner

from gradcalc.cli.commands import app

CASE = """
[[case]]
name = "case {k}"
program = "a = x + {k}*y; b = (a * a).sum()"
values = {{ x = [{k}, 1], y = [1, 3] }}
expect = {{ "x.grad" = [{gx0}, {gx1}], "a" = [{a0}, {a1}] }}
gradcheck = {gradcheck}
"""


def suite_text(n: int, wrong: set[int] = frozenset()) -> str:
    parts = []
    for k in range(n):
        a0, a1 = k + k * 1, 1 + k * 3
        gx0, gx1 = 2 * a0 + (1 if k in wrong else 0), 2 * a1
        parts.append(CASE.format(k=k, a0=a0, a1=a1, gx0=gx0, gx1=gx1, gradcheck="true" if k % 10 == 0 else "false"))
    return "".join(parts)


def test_a_hundred_cases_in_one_process_with_junit(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text(100, wrong={7, 42}))
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, ["check", "--suite", str(suite), "--junit", str(junit)])
    assert result.exit_code == 1, result.output
    assert result.stdout.strip().endswith("98 passed, 2 failed")
    assert "--- case 7" in result.stdout and "--- case 42" in result.stdout
    root = ET.parse(junit).getroot()
    (testsuite,) = root.findall("testsuite")
    assert testsuite.get("tests") == "100" and testsuite.get("failures") == "2"
    failed = [c.get("name") for c in testsuite.findall("testcase") if c.find("failure") is not None]
    assert failed == ["case 7", "case 42"]


def test_a_passing_suite_exits_0(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text(5))
    result = CliRunner().invoke(app, ["check", "--suite", str(suite)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "5 passed, 0 failed\n"


def test_bad_cases_are_errors_and_exit_2(tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text(2) + '\n[[case]]\nname = "broken"\nprogram = "b = x +"\nexpect = { "b" = 1 }\n')
    junit = tmp_path / "junit.xml"
    result = CliRunner().invoke(app, ["check", "--suite", str(suite), "--junit", str(junit)])
    assert result.exit_code == 2
    assert "--- broken\nerror: line 1" in result.stdout
    testsuite = ET.parse(junit).getroot().find("testsuite")
    assert testsuite.get("errors") == "1"


def test_malformed_suite_files(tmp_path):
    suite = tmp_path / "suite.toml"
    for text, message in [("[[case]]\nname = 1\nprogram = \"b = x\"\nbogus = 2\n", "unknown key"),
                          ("x = [", "not valid TOML"), ("[other]\n", "expected [[case]]")]:
        suite.write_text(text)
        result = CliRunner().invoke(app, ["check", "--suite", str(suite)])
        assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_progress_on_a_terminal_leaves_the_summary_on_stdout(tmp_path):
    from terminal import run_with_terminal_stderr

    suite = tmp_path / "suite.toml"
    suite.write_text(suite_text(20, wrong={3}))
    proc, terminal = run_with_terminal_stderr(["check", "--suite", str(suite)], "")
    assert proc.returncode == 1
    assert proc.stdout.startswith("--- case 3\n") and proc.stdout.endswith("19 passed, 1 failed\n")
    assert "checking" in terminal and "passed" not in terminal
