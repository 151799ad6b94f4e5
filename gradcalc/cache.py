"""SymPy's work for a program, kept on disk so that a repeated call imports no SymPy.

A call of `gradcalc` needs SymPy for two things only: the backward formula (`vjp_tree`) of
an elementwise op whose row states none of PyTorch's, and the symbolic partials that the
table and json reports print. Both depend on the program and on gradcalc's own code, never
on the input values, so they are kept in one JSON file per program, named by a hash of
gradcalc's version, its source files and the program's text, under `$XDG_CACHE_HOME/gradcalc` (or
`~/.cache/gradcalc`). `--no-cache` or `GRADCALC_NO_CACHE=1` bypasses it.

The file is data, never code: JSON, not pickle. It carries a checksum of its body; a file
that fails to parse or to match its checksum (corrupt, truncated, edited) is ignored and
rewritten. Writes go to a temporary file that is renamed over the old one, so a concurrent
reader sees a whole file, old or new, and two writers lose at most one's additions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from gradcalc import __version__

_ENTRY_FORMAT = 1


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gradcalc"


def disabled_by_environment() -> bool:
    return os.environ.get("GRADCALC_NO_CACHE", "") not in ("", "0")


class Entry:
    """One program's cached derivations: sections of JSON-ready values by string keys."""

    def __init__(self, path: Path | None):
        self.path = path
        self.sections: dict[str, dict] = {}
        self.changed = False
        self._known: dict[tuple[str, str], object] = {}  # decoded values, by section and key
        if path is not None:
            self.sections = _load(path)

    def get(self, section: str, key: str, compute: Callable[[], object],
            decode: Callable[[object], object] = lambda v: v) -> object:
        """The stored value for `key` (decoded), else `compute()`, stored for the next call."""
        known = self._known.get((section, key))
        if known is not None:
            return known
        value = self._get(section, key, compute, decode)
        self._known[(section, key)] = value
        return value

    def _get(self, section, key, compute, decode):
        stored = self.sections.get(section, {})
        if key in stored:
            try:
                value = decode(stored[key])
            except (TypeError, ValueError, KeyError, IndexError, RecursionError):
                value = None  # malformed despite its checksum (written by another version's bug)
            if value is not None:
                return value
        value = compute()
        self.sections.setdefault(section, {})[key] = value
        self.changed = True
        return value

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        body = json.dumps(self.sections, separators=(",", ":"))
        document = json.dumps({"format": _ENTRY_FORMAT, "version": __version__,
                               "checksum": _checksum(body), "body": body})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(document)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            pass  # a read-only or full disk: the next call derives again, nothing worse
        self.changed = False


def _checksum(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _load(path: Path) -> dict:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        body = document["body"]
        if (document.get("format") != _ENTRY_FORMAT or document.get("version") != __version__
                or not isinstance(body, str) or document.get("checksum") != _checksum(body)):
            return {}
        sections = json.loads(body)
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return {}
    if not isinstance(sections, dict) or not all(isinstance(v, dict) for v in sections.values()):
        return {}
    return sections


# The entry of the program being run, or a throwaway one (the library used directly).
_current = Entry(None)


def current() -> Entry:
    return _current


def entry_path(source: str) -> Path:
    key = f"{__version__}\0{_code_fingerprint()}\0{source}"
    return cache_dir() / f"{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}.json"


@functools.cache
def _code_fingerprint() -> str:
    """gradcalc's own source files by name, size and time: an edited op table (a development
    install) never meets the derivations of the code before it, even at the same version."""
    package = Path(__file__).parent
    stats = []
    for path in sorted(package.rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            stats.append(f"{path.relative_to(package).as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(stats).encode()).hexdigest()


@contextlib.contextmanager
def program(source: str, enabled: bool = True) -> Iterator[Entry]:
    """Use (and afterwards save) the cache entry of this program text for the calls inside."""
    global _current
    use = enabled and not disabled_by_environment()
    entry = Entry(entry_path(source) if use else None)
    previous, _current = _current, entry
    try:
        yield entry
    finally:
        _current = previous
        entry.save()
