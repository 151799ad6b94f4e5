"""Run gradcalc as a whole process with stderr on a pseudo-terminal, as in an interactive shell."""

import os
import subprocess
import sys
import threading

import pytest


def run_with_terminal_stderr(args, stdin_text):
    """Run gradcalc with stderr on a pseudo-terminal (as in an interactive shell) and stdout on a pipe."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    seen = bytearray()

    def drain():
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    proc = subprocess.run([sys.executable, "-m", "gradcalc", *args], input=stdin_text, stdout=subprocess.PIPE,
                          stderr=slave, text=True, timeout=120)
    os.close(slave)
    reader.join(timeout=5)
    os.close(master)
    return proc, bytes(seen).decode(errors="replace")
