"""A batch file shared by forked worker processes, which write their results in turn.

`eval --batch FILE` reads its rows in pieces of whole lines (gradcalc.analysis.batch). With more than
one worker, the first piece is run alone (so that the partials are derived, and the cache
warmed, once), then the process forks: worker k (the first process is worker 0) runs pieces
1 + k, 1 + k + W, 1 + k + 2W, ... Each worker reads the whole file itself, counting the lines
of the pieces it skips, so every line keeps its number, and no text passes between processes.

The output stays in order by a turn passed round a ring of pipes: a worker writes a piece's
documents and errors (and flushes them) only after the worker of the piece before has written
its own, then passes the turn on. Each child sends its count of bad rows to the first
process at the end. A worker that stops early closes its end of the ring, so no one waits
for it forever: the first process then stops the others and reports it (a closed stdout, as
with `| head`, is passed on as BrokenPipeError, for the command line to end quietly).

Only a regular file is shared (its text can be read twice), only on Linux (fork), and only
when the output is a real file descriptor; otherwise one process runs every piece.
"""

from __future__ import annotations

import errno
import itertools
import os
import signal
import stat
import sys
from collections.abc import Callable, Iterable, Iterator

from gradcalc.analysis.batch import Chunk, numbered_pieces
from gradcalc.errors import GradcalcError

MAX_WORKERS = 4
# A child's exit status: its stdout or stderr was closed (128 + SIGPIPE, as a shell reports it).
CLOSED_OUTPUT = 128 + signal.SIGPIPE
INTERNAL_ERROR = 70
AFTER_A_STOP = 75  # the worker before this one stopped (so this one did too)


def default_workers() -> int:
    """The CPUs this process may use, at most MAX_WORKERS; 1 where fork is not used."""
    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


def can_share(stream, workers: int) -> bool:
    """Whether a batch read from `stream` can be shared by `workers` processes."""
    if workers < 2 or not hasattr(os, "fork"):
        return False
    try:
        regular = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
        sys.stdout.fileno(), sys.stderr.fileno()  # written by every worker: real descriptors only
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return regular


def run_in_turns(run: Callable[[int, int, str], list[Chunk]], blocks: Iterable[str],
                 reopen: Callable[[], Iterable[str]], write: Callable[[Chunk], None],
                 workers: int) -> int:
    """Every piece of `blocks` run by `run(first line, lines, text)` and its chunks written in order
    with `write`, by `workers` processes (`write` must leave nothing buffered when there are
    several); the number of bad rows. `reopen()` gives the same blocks again, from the start,
    for a child to read."""
    pieces = numbered_pieces(blocks)
    failed = 0
    for piece in itertools.islice(pieces, 1 if workers > 1 else None):
        failed += _write(run(*piece), write)
    second = next(pieces, None) if workers > 1 else None
    if second is None:  # one worker, or a single piece
        return failed
    return failed + _Ring(workers).run(run, itertools.chain([second], pieces), reopen, write)


def _write(chunks: list[Chunk], write) -> int:
    """Write the chunks; the number of their bad rows."""
    for chunk in chunks:
        write(chunk)
    return sum(error is not None for chunk in chunks for error in chunk.errors)


class WorkerStopped(GradcalcError):
    pass


class _RingBroken(Exception):
    """The worker before this one in the ring stopped without passing the turn."""


class _Ring:
    def __init__(self, workers: int):
        self.workers = workers
        self.turns = [os.pipe() for _ in range(workers)]   # worker k's turn comes through turns[k]
        self.counts = [os.pipe() for _ in range(workers)]  # child k's count of bad rows (k >= 1)
        self.children: dict[int, int] = {}                 # pid -> rank
        self.rank = 0
        self.open = {end for pipe in self.turns + self.counts for end in pipe}

    def run(self, run, pieces: Iterator[tuple[int, int, str]], reopen, write) -> int:
        sys.stdout.flush()  # else a child would write what this process had buffered, again
        sys.stderr.flush()
        for rank in range(1, self.workers):
            pid = os.fork()
            if pid == 0:
                self.rank = rank
                self._child(run, reopen, write)  # never returns
            self.children[pid] = rank
        self._keep_ends()
        try:
            try:  # the first process goes on with the same pieces, from piece 1
                failed, broken = self._work(run, pieces, write), False
            except _RingBroken:
                failed, broken = 0, True
            return failed + self._collect(broken)
        finally:
            self._stop_children()

    def _child(self, run, reopen, write) -> None:
        status = 0
        try:
            self._keep_ends()
            pieces = numbered_pieces(reopen())
            next(pieces, None)  # piece 0, written before the fork
            failed = self._work(run, pieces, write)
            os.write(self.counts[self.rank][1], str(failed).encode())
        except BrokenPipeError:
            status = CLOSED_OUTPUT  # stdout or stderr closed: nothing to say
        except _RingBroken:
            status = AFTER_A_STOP  # the worker before stopped: it, or the first process, says why
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
        except BaseException as e:  # noqa: BLE001 - a child must never return into the command line
            try:
                os.write(2, f"error: internal error in batch worker {self.rank}: {type(e).__name__}: {e}\n".encode())
            except OSError:
                pass
            status = INTERNAL_ERROR
        finally:
            os._exit(status)

    def _keep_ends(self) -> None:
        """Close every pipe end this worker does not use, so that a stopped worker is seen
        (its reader gets end-of-file) instead of waited for."""
        keep = {self.turns[self.rank][0], self.turns[(self.rank + 1) % self.workers][1]}
        if self.rank == 0:
            keep.update(read for read, _ in self.counts[1:])
        else:
            keep.add(self.counts[self.rank][1])
        for end in self.open - keep:
            os.close(end)
        self.open = keep

    def _work(self, run, pieces, write) -> int:
        """Run and write this worker's pieces (of pieces 1 on); the number of their bad rows."""
        failed = 0
        turn_in, turn_out = self.turns[self.rank][0], self.turns[(self.rank + 1) % self.workers][1]
        for index, piece in enumerate(pieces, 1):
            if (index - 1) % self.workers != self.rank:
                continue
            chunks = run(*piece)
            if index > 1 and not os.read(turn_in, 1):  # piece 1 follows piece 0, written before the fork
                raise _RingBroken()
            failed += _write(chunks, write)
            try:
                os.write(turn_out, b".")
            except BrokenPipeError:
                pass  # the next worker had no more pieces and has ended
        return failed

    def _collect(self, broken: bool) -> int:
        """The children's counts of bad rows, once they have all ended; raises if one of them
        stopped (or `broken`: one was seen to stop), naming the cause: a worker that failed,
        else a closed output."""
        for end in self.open - {read for read, _ in self.counts}:  # no child waits for this process now
            os.close(end)
        self.open &= {read for read, _ in self.counts}
        failed, codes = 0, {}
        for pid, rank in sorted(self.children.items(), key=lambda item: item[1]):
            read, text = self.counts[rank][0], b""
            while data := os.read(read, 64):
                text += data
            _, status = os.waitpid(pid, 0)
            codes[rank] = 0 if text else os.waitstatus_to_exitcode(status)
            failed += int(text or 0)
        self.children.clear()
        causes = [(rank, code) for rank, code in codes.items() if code not in (0, CLOSED_OUTPUT, AFTER_A_STOP)]
        if causes:
            rank, code = causes[0]
            raise WorkerStopped(f"batch worker {rank} stopped (exit status {code})",
                                hint="run the batch in one process: --jobs 1")
        if CLOSED_OUTPUT in codes.values():  # as if this process had written to the closed output
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
        if broken or AFTER_A_STOP in codes.values():
            raise WorkerStopped("a batch worker stopped", hint="run the batch in one process: --jobs 1")
        return failed

    def _stop_children(self) -> None:
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass
        self.children.clear()
        for end in self.open:
            os.close(end)
        self.open = set()
