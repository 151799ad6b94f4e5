"""The cache of SymPy's work: a repeated call takes the cached path (no SymPy) and prints the
same bytes; a corrupt, unwritable or concurrently written cache changes nothing but speed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gradcalc import cache

REFERENCE = ["a = x + 2*y; b = a + z/2", "--x", "2,1", "--y", "1,3", "--z", "5,2", "--seed", "1,1", "--retain", "a"]
PROGRAMS = [
    REFERENCE,
    ["b = (tanh(sin(x)*exp(y/10))*z + sqrt(abs(y))).mean()", "--x", "0.5,2", "--y", "-1,3", "--z", "2,0.25"],
    ["a = x @ w; b = (relu(a) ** 2 + softplus(a) / (1 + erf(a))).sum()", "--x", "[[1,2],[3,-4]]",
     "--w", "[0.5,-1]"],
    ["b = atan2(x, y) * clamp(x, -1, 1) + maximum(x, y) - prod(x) * norm(y); b.retain_grad(); c = b.sum()",
     "--x", "1,-2,3", "--y", "0.5,0.5,-1", "--dtype", "float64"],
]
# Blocks SymPy, then runs gradcalc: a call that needed SymPy fails instead of printing.
WITHOUT_SYMPY = "import sys; sys.modules['sympy'] = None; from gradcalc.cli.commands import main; sys.exit(main(sys.argv[1:]))"


def gradcalc(args, cache_home, *, sympy=True, env=None, input=None):
    code = "from gradcalc.cli.commands import main; import sys; sys.exit(main(sys.argv[1:]))" if sympy else WITHOUT_SYMPY
    environment = {**{k: v for k, v in os.environ.items() if k != "GRADCALC_NO_CACHE"},  # the cache under test
                   "XDG_CACHE_HOME": str(cache_home), **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment,
                          input=input, timeout=120)


def entries(cache_home: Path) -> list[Path]:
    return sorted((cache_home / "gradcalc").glob("*.json"))


CALLS = [(program, fmt) for program in PROGRAMS for fmt in ("torch", "json")] + [(REFERENCE, "table"),
                                                                                  (REFERENCE, "csv")]


@pytest.mark.parametrize("program, fmt", CALLS, ids=lambda p: p if isinstance(p, str) else p[0][:30])
def test_a_repeated_call_takes_the_cached_path_and_prints_the_same_bytes(tmp_path, program, fmt):
    args = ["eval", *program, "--format", fmt]
    first = gradcalc(args, tmp_path)
    assert first.returncode == 0, first.stderr
    second = gradcalc(args, tmp_path, sympy=False)
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    uncached = gradcalc([*args, "--no-cache"], tmp_path / "unused")
    assert uncached.stdout == first.stdout and not (tmp_path / "unused").exists()


def test_without_the_cache_sympy_is_needed(tmp_path):
    """The check above means something: with no entry, these calls need SymPy (sin's rule is
    derived; the table prints symbolic partials)."""
    for args in (["eval", *PROGRAMS[1], "--format", "torch"], ["eval", *REFERENCE, "--format", "table"]):
        result = gradcalc(args, tmp_path, sympy=False)
        assert result.returncode == 70 and "internal error" in result.stderr
        assert not entries(tmp_path)


def test_plain_arithmetic_needs_no_sympy_even_the_first_time(tmp_path):
    """add, sub, mul, div and neg state PyTorch's backward formulas in the op table."""
    result = gradcalc(["eval", "a = x + 2*y; b = -a * z / (x - y)", "--x", "2,1", "--y", "1,3", "--z", "5,2",
                       "--seed", "1,1", "--format", "torch"], tmp_path, sympy=False)
    assert result.returncode == 0, result.stderr


def test_no_cache_by_environment(tmp_path):
    result = gradcalc(["eval", *REFERENCE, "--format", "torch"], tmp_path, env={"GRADCALC_NO_CACHE": "1"})
    assert result.returncode == 0 and not entries(tmp_path)


def test_batch_and_check_use_the_cache(tmp_path):
    rows = '{"x": [2, 1], "y": [1, 3], "z": [5, 2]}\n' * 3
    batch = ["eval", "b = sin(x) * y + z", "--seed", "1,1", "--batch", "-"]
    check = ["check", "b = (sin(x) * y).sum()", "--x", "0.5,1.5", "--y", "2,3", "--expect", "y.grad=0.4794255,0.997495",
             "--gradcheck"]
    for args, stdin in ((batch, rows), (check, None)):
        first = gradcalc(args, tmp_path, input=stdin)
        second = gradcalc(args, tmp_path, sympy=False, input=stdin)
        assert first.returncode == second.returncode == 0, second.stderr
        assert second.stdout == first.stdout


@pytest.mark.parametrize("damage", ["garbage", "truncated", "edited", "wrong tree", "foreign call", "other version"])
def test_a_corrupt_entry_is_ignored_and_rewritten(tmp_path, damage):
    args = ["eval", "b = sin(x) * y", "--x", "0.5,1", "--y", "2,3", "--seed", "1,1", "--format", "json"]
    want = gradcalc(args, tmp_path).stdout
    (path,) = entries(tmp_path)
    text = path.read_text()
    document = json.loads(text)
    if damage == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "edited":  # a plausible change whose checksum no longer matches
        assert "cos" in text
        path.write_text(text.replace("cos", "sin"))
    elif damage in ("wrong tree", "foreign call"):  # checksum right, contents wrong
        body = json.loads(document["body"])
        tree = "not a tree" if damage == "wrong tree" else ["call", "save", [["g"], ["arg", 0]]]
        body["vjp"] = dict.fromkeys(body["vjp"], tree)
        document["body"] = json.dumps(body)
        document["checksum"] = cache._checksum(document["body"])
        path.write_text(json.dumps(document))
    else:
        document["version"] = "0.0.0"
        path.write_text(json.dumps(document))
    again = gradcalc(args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == want
    # rewritten whole: the next call needs no SymPy
    assert gradcalc(args, tmp_path, sympy=False).stdout == want


def test_an_unwritable_cache_directory_changes_nothing_but_speed(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")  # $XDG_CACHE_HOME/gradcalc cannot be created under a file
    result = gradcalc(["eval", *REFERENCE, "--format", "torch"], blocked)
    assert result.returncode == 0 and result.stdout.startswith("tensor([2., 1.]) tensor([1., 1.])")


def test_concurrent_calls_share_one_whole_entry(tmp_path):
    args = ["eval", *PROGRAMS[1], "--format", "json"]
    code = "from gradcalc.cli.commands import main; import sys; sys.exit(main(sys.argv[1:]))"
    environment = {**{k: v for k, v in os.environ.items() if k != "GRADCALC_NO_CACHE"}, "XDG_CACHE_HOME": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True,
                              env=environment) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs) and len(set(outputs)) == 1
    assert [p.name for p in (tmp_path / "gradcalc").iterdir() if p.name.startswith(".tmp")] == []
    assert gradcalc(args, tmp_path, sympy=False).stdout == outputs[0]


def test_entries_are_per_program_and_version(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a, b = cache.entry_path("b = x*2"), cache.entry_path("b = x*3")
    assert a != b and a.parent == tmp_path / "gradcalc"
    monkeypatch.setattr(cache, "__version__", "9.9.9")
    assert cache.entry_path("b = x*2") != a
