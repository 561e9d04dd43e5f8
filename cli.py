"""Command-line plumbing shared by every script of the project.

train_minimal.py, visualization.py, the exercises and the benchmark all start
the same way and fail the same way; this file is the one place that says how:

* ``limit_threads()``: one BLAS thread unless the user asks for more.
* ``UserError`` and ``ArgumentParser``: bad input is reported as one line and
  exit status 2, never a traceback or an argparse usage dump.
* ``atomic_write_bytes`` / ``atomic_write_text``: every output file is written
  to a temporary file beside it and renamed over it, so an interrupted write
  never leaves a half-written file or loses the previous one.

It holds no model code: the RNN is implementation.py alone.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

# Exit codes, the same in every script.
EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130

THREADS_ENV = "RNN_THREADS"


class UserError(ValueError):
    """Bad input from the user: reported as one line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line ("error: ... (see --help)") and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


# -----------------------------------------------------------------------------
# Threads
# -----------------------------------------------------------------------------

def limit_threads(threads: int | None = None) -> int:
    """Let NumPy's BLAS use `threads` threads (default: $RNN_THREADS, else 1); returns the number.

    Why one: the matrices of a char-RNN are small (100-512 rows), so a second
    thread gains little even on an idle machine, and when anything else runs
    on a 2-core machine the threads wait on each other and training gets many
    times slower. threadpoolctl changes the limit of the BLAS library NumPy has
    already loaded, so this works at any time, also in a notebook whose kernel
    imported NumPy long ago (setting OPENBLAS_NUM_THREADS only works before
    NumPy is imported).
    """
    from threadpoolctl import threadpool_limits

    if threads is None:
        raw = os.environ.get(THREADS_ENV, "1")
        try:
            threads = int(raw)
        except ValueError:
            raise UserError(f"{THREADS_ENV}={raw!r}: must be a whole number of threads >= 1") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UserError(f"the number of threads must be a whole number >= 1, got {threads!r}")
    threadpool_limits(limits=threads, user_api="blas")
    return threads


# -----------------------------------------------------------------------------
# Files
# -----------------------------------------------------------------------------

def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    A crash, a full disk or Ctrl-C while writing leaves the previous file (if
    any) intact and removes the temporary file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)                         # mkstemp makes it private (0600)
        os.replace(tmp, path)                        # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """atomic_write_bytes for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))
