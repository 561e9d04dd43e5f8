"""Command-line plumbing shared by every script of the project.

train_minimal.py, visualization.py, the exercises and the benchmark all start
the same way and fail the same way; this file is the one place that says how:

* ``setup_numpy()``: the two process settings every script starts with,
  ``limit_threads()`` (one BLAS thread unless the user asks for more) and
  ``keep_freed_memory()`` (freed arrays are reused, not handed back to the OS).
* ``UserError`` and ``ArgumentParser``: bad input is reported as one line and
  exit status 2, never a traceback or an argparse usage dump.
* ``integer`` / ``number``: argparse types that reject 0, -1, 1e400 and the like in
  one line (and values above a maximum, if the flag has one).
* ``one_line_errors`` and ``read_data``: a script's main() reports bad input (a
  missing, empty, binary or folder --data, a bad checkpoint) as one line and
  exit status 2, and Ctrl-C as one line and 130.
* ``not_written_yet`` / ``write_next``: an exercise script whose functions are not
  written yet says in one line which to write next, and where the hint is.

It holds no model code (implementation.py) and no file handling (safeio.py).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import re
import sys
from pathlib import Path

from safeio import TEXT_MAX_BYTES, TextTooLargeError, read_text

# Exit codes, the same in every script.
EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130

THREADS_ENV = "RNN_THREADS"


class UserError(ValueError):
    """Bad input from the user: reported as one line, never a traceback."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line ("error: ... (see --help)") and exit status 2."""

    def error(self, message):
        flag, sep, rest = message.partition(": must be ")             # a type's check: "--seed must be ..."
        if sep and flag.startswith("argument "):
            message = f"{flag[len('argument '):]} must be {rest}"
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


# The largest whole number an integer flag takes when it states no maximum: what NumPy's
# int64 and C's ssize_t hold, so that no value overflows where it is used.
INTEGER_MAX = 2**63 - 1


def integer(minimum: int, maximum: int | None = None):
    """argparse type: a whole number >= minimum, and <= maximum if given (else < 2**63)
    ("--folds must be an integer from 2 to 14, got '0'")."""
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:                           # not a whole number, or over 4,300 digits
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            span = f">= {minimum}" if maximum is None else f"from {minimum:,} to {maximum:,}"
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {raw[:40]!r}")
        if value > INTEGER_MAX:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum} and below 2**63, got {raw[:40]!r}")
        return value
    parse.__name__ = f"integer >= {minimum}" if maximum is None else f"integer in [{minimum}, {maximum}]"
    return parse


def number(above: float, maximum: float | None = None):
    """argparse type: a finite number > above, and <= maximum if given
    ("--temperature must be a number > 0, got '0'"; 1e400 is not finite)."""
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = None
        if value is None or not (value > above and value < float("inf")):
            raise argparse.ArgumentTypeError(f"must be a number > {above:g}, got {raw[:40]!r}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be a number > {above:g} and <= {maximum:g}, got {raw[:40]!r}")
        return value
    parse.__name__ = f"number > {above:g}"
    return parse


# -----------------------------------------------------------------------------
# A script's main(): one-line errors
# -----------------------------------------------------------------------------

def one_line_errors(*errors):
    """Decorator for a script's ``main(argv=None)``: the listed errors become one line and exit status 2.

    errors: the exception types that mean bad input (default UserError, ValueError,
    OSError, as in train_minimal.py). The decorated main prints "error: <message>"
    on stderr and returns EXIT_USAGE for those, and returns EXIT_INTERRUPTED with one
    line for Ctrl-C; anything else (a bug) keeps its traceback. The exercise scripts
    leave ValueError out: a learner's own code raising one deserves its traceback,
    and their input checks raise UserError instead.
    """
    errors = errors or (UserError, ValueError, OSError)

    def decorate(main):
        @functools.wraps(main)
        def wrapped(argv=None):
            try:
                return main(argv)
            except errors as e:
                print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
                return EXIT_USAGE
            except KeyboardInterrupt:
                print("error: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
        return wrapped
    return decorate


# The highest limit read_data takes for the size of a text (10,000 MB): far above any text
# this project can train on, and low enough that no limit overflows a C integer.
READ_LIMIT_MAX = 10_000_000_000


def read_data(path, corpus: str | None = None, flag: str = "--data", max_bytes: int | None = None,
              limit_flag: str | None = None) -> tuple[str, str]:
    """(text, path) of a UTF-8 text file given on the command line, or of `corpus` if path is None.

    Raises UserError (one line) for a missing, empty, binary, non-UTF-8 or folder path,
    for a text larger than max_bytes (default: safeio.TEXT_MAX_BYTES; limit_flag
    names the flag that raises it, up to READ_LIMIT_MAX), and when the default corpus
    can be neither found nor fetched.
    """
    if max_bytes is not None and not (isinstance(max_bytes, int) and not isinstance(max_bytes, bool)
                                      and 0 < max_bytes <= READ_LIMIT_MAX):
        shown = (f"{max_bytes / 1e6:g} MB" if isinstance(max_bytes, int) and not isinstance(max_bytes, bool)
                 else f"{max_bytes!r:.40}")
        raise UserError(f"{limit_flag or 'read_data: max_bytes'} must be a limit from 1 byte to "
                        f"{READ_LIMIT_MAX / 1e6:,.0f} MB, got {shown}")
    if path is None:
        from data.download import DownloadError, ensure_corpus
        try:
            path = ensure_corpus(corpus)
        except DownloadError as e:
            raise UserError("; ".join(str(e).splitlines())) from None
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a UTF-8 text file")
    if not p.exists():
        raise UserError(f"{flag} {path}: no such file")
    try:                                             # read_text refuses a FIFO or a device, saying which
        text = read_text(p, max_bytes=TEXT_MAX_BYTES if max_bytes is None else max_bytes)
    except TextTooLargeError as e:
        raise UserError(f"{flag} {path} is {e.size / 1e6:,.1f} MB; this script reads at most "
                        f"{e.limit / 1e6:,.0f} MB of text (a limit that keeps a wrong file from filling "
                        f"the memory)" + (f": raise it with {limit_flag} {-(-e.size // 1_000_000)}"
                                          if limit_flag else "")) from None
    except ValueError as e:                          # a FIFO or a device, binary, or not UTF-8
        raise UserError(f"{flag} {e}") from None
    if not text:
        raise UserError(f"{flag} {path} is empty; the model needs text to learn from")
    return text, str(path)


# -----------------------------------------------------------------------------
# Threads and memory
# -----------------------------------------------------------------------------

def setup_numpy(threads: int | None = None) -> int:
    """What every script does before it trains: limit_threads(threads), then
    keep_freed_memory(). Returns the number of BLAS threads."""
    threads = limit_threads(threads)
    keep_freed_memory()
    return threads


# glibc's malloc settings (mallopt's parameter numbers, from <malloc.h>)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024          # the largest value glibc accepts on a 64-bit machine
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD_MAX          # 64 MB: glibc's own pairing when it raises the mmap threshold


def keep_freed_memory() -> bool:
    """Ask the C library's malloc to keep the memory of freed arrays for the next
    ones, instead of handing it back to the operating system; True if it took.

    Why: a training step allocates about 30 MB of short-lived arrays at H=256,
    B=64, T=64 (the hidden states, their gradients, the logits) and frees them
    when it returns. By default glibc returns large freed blocks to the system
    (munmap, or trimming the top of the heap), so the next step gets fresh
    pages, and the kernel must fault in and zero every one of them on first
    touch: 2,500-3,000 page faults a step, a third of the step's time on a
    virtual machine. Raising the mmap threshold to its maximum (32 MB: blocks
    below it come from the heap) and the trim threshold to 64 MB (the heap
    keeps up to that much free memory, twice the mmap threshold, as glibc
    itself pairs them) makes every step reuse the last step's pages. Memory
    is not given back between steps, so a process can hold up to 64 MB more
    than it uses. Numbers do not change, only speed.

    Linux with glibc only; elsewhere (macOS, Windows, musl) it does nothing
    and returns False, and training is just slower.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt       # the C library this process already uses
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


# More BLAS threads than any machine this course runs on has cores; a larger number is a typo
# (and one past C's int makes the BLAS library's call overflow).
MAX_THREADS = 1024


def limit_threads(threads: int | None = None) -> int:
    """Let NumPy's BLAS use `threads` threads (default: $RNN_THREADS, else 1); returns the number.

    Raises UserError (one line) for anything but a whole number from 1 to MAX_THREADS.

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
            threads = None
        if threads is None or not 1 <= threads <= MAX_THREADS:
            raise UserError(f"{THREADS_ENV}={raw[:40]!r}: must be a whole number of threads from 1 to "
                            f"{MAX_THREADS:,}") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise UserError(f"the number of threads must be a whole number from 1 to {MAX_THREADS:,}, "
                        f"got {threads!r:.40}")
    threadpool_limits(limits=threads, user_api="blas")
    return threads


# -----------------------------------------------------------------------------
# Exercises
# -----------------------------------------------------------------------------

_STUB_GAP = re.compile(r'^\s*raise NotImplementedError\("exercise', flags=re.M)


def not_written_yet(names, namespace: dict) -> list[str]:
    """The functions among `names` (looked up in `namespace`, an exercise's globals()) whose
    body still raises the stub's NotImplementedError: the ones not written yet, in order."""
    return [name for name in names if _STUB_GAP.search(inspect.getsource(namespace[name]))]


def write_next(number: int, name: str, script) -> int:
    """Say in one line on stderr which function of exercise `number` to write next, where its
    hint is and how to check it; returns the exit status, 1."""
    root = Path(__file__).resolve().parent
    tests = sorted((root / "tests" / "exercises").glob(f"test_exercise_{number:02d}_*.py"))
    check = tests[0].relative_to(root).as_posix() if tests else "tests/exercises"
    print(f"exercise {number}: write {name} in {Path(script).name} next (hint: exercises/HINTS.md, "
          f"exercise {number}; check: python -m pytest {check})", file=sys.stderr)
    return 1
