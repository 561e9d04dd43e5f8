"""Small helpers the exercise tests share: failure messages a learner can act on."""

import re
import traceback
from pathlib import Path

import numpy as np
import pytest

from helpers import EXERCISES_DIR
from implementation import rel_error


def fail(message: str):
    """Fail the test with just the message (no traceback into the test's own code)."""
    pytest.fail(message, pytrace=False)


def run_main(ex, argv, capsys) -> str:
    """Run the exercise's main(argv) in-process; its printed output, or a failure naming its error line."""
    code = ex.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    if code not in (0, None):
        fail(f"main({' '.join(map(str, argv))}) exited with status {code}: {err.strip() or '(nothing on stderr)'}")
    return out


def needs(ex, *names):
    """Raise the stub's NotImplementedError for the first of these functions of `ex` not written yet: in
    your mode the test then reports "not attempted yet" (or "stretch, not attempted") instead of failing."""
    number = int(re.search(r"exercise_0(\d)", Path(ex.__file__).name).group(1))
    for name in ex.not_written_yet(names, vars(ex)):
        stretch = " (optional stretch)" if name in ex.STRETCH else ""
        raise NotImplementedError(f"exercise {number}: {name}{stretch} — see HINTS.md, exercise {number}")


def failure_of(check, *args):
    """Run a check; its failure message (a str), or None if it passed. Nothing is re-raised."""
    try:
        check(*args)
    except pytest.fail.Exception as exc:
        return exc.msg
    return None


def show(a, limit: int = 6) -> str:
    """A short one-line view of an array or number."""
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.6g}" if np.issubdtype(a.dtype, np.number) else repr(a.item())
    flat = a.ravel()
    body = ", ".join(f"{float(v):.4g}" for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    return f"[{body}{more}] (shape {a.shape})"


def check_returned(got, what: str):
    if got is None:
        fail(f"{what}: got None: does the function end without `return ...`?")


def check_shape(got, shape, what: str):
    check_returned(got, what)
    got = np.asarray(got)
    if got.shape != tuple(shape):
        fail(f"{what}: expected shape {tuple(shape)}, got {got.shape}")


def check_close(got, want, what: str, hint: str = "", rtol: float = 1e-7, atol: float = 1e-10):
    """Fail with 'yours vs expected' if got and want differ (shape first, then values)."""
    check_returned(got, what)
    got_a, want_a = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got_a.shape != want_a.shape:
        fail(f"{what}: expected shape {want_a.shape}, got {got_a.shape}" + (f"\n  hint: {hint}" if hint else ""))
    if not np.allclose(got_a, want_a, rtol=rtol, atol=atol, equal_nan=True):
        err = rel_error(got_a, want_a)
        fail(f"{what}: values differ (relative error {err:.2e}, tolerance rtol={rtol:g})\n"
             f"  yours:    {show(got_a)}\n  expected: {show(want_a)}" + (f"\n  hint: {hint}" if hint else ""))


# -----------------------------------------------------------------------------
# An exception raised inside the learner's code, in the learner's terms
# -----------------------------------------------------------------------------

# (pattern in the exception's message, what it usually means in these exercises)
CRASH_HINTS = [
    (r"probabilities contain NaN", "the probabilities you passed to rng.choice contain nan: exp() overflowed "
     "(exp(1000) is inf, inf/inf is nan). Subtract the largest entry before exp: softmax(z) = softmax(z - max(z))"),
    (r"probabilities do not sum to 1", "the probabilities you passed to rng.choice do not sum to 1: normalise "
     "them (p = e / e.sum()), in float64, and pass a flat (V,) array"),
    (r"a must be 1-dimensional|p must be 1-dimensional|object too deep", "rng.choice wants a flat (V,) array of "
     "probabilities; a (V,1) column needs .ravel()"),
    (r"could not be broadcast|shapes .* not aligned|matmul: Input operand|mismatch in its core dimension",
     "two arrays have shapes that do not fit: check each against the docstring ((H,1) columns, (V,H) matrices, "
     "(V,) flat arrays)"),
    (r"not valid UTF-8|looks like a binary file", "safeio.read_text raises ValueError for a file that "
     "is not UTF-8 text; catch it and skip that file, as the docstring says"),
    (r"division by zero|divide by zero", "a division by zero: is a count or a temperature 0 here? The docstring "
     "says what to return in that case"),
    (r"index .* is out of bounds", "an index past the end of an array: off by one in a slice or a loop range?"),
    (r"only integers, slices|must be integers", "an array index that is not an integer: convert with int(...)"),
]


def _exercise_frames(exc):
    """The traceback frames of exc that lie in exercises/ (the learner's files), outermost first."""
    root = EXERCISES_DIR.resolve()
    frames = []
    for fs in traceback.extract_tb(exc.__traceback__):
        path = Path(fs.filename).resolve()
        if path.is_relative_to(root) and "solutions" not in path.relative_to(root).parts:
            frames.append(fs)
    return frames


def crash_report(exc: BaseException):
    """A short message for an exception raised inside exercises/*.py, or None if it came from elsewhere.

    Names the function of yours the test called, the line where it failed, the
    exception, and (for the usual suspects) what it tends to mean.
    """
    frames = _exercise_frames(exc)
    if not frames:
        if isinstance(exc, (TypeError, AttributeError)) and "NoneType" in str(exc):
            test = traceback.extract_tb(exc.__traceback__)[-1]
            return (f"one of your functions returned None where the test expected a value (does it end "
                    f"without `return ...`?): {type(exc).__name__}: {exc}\n  at {Path(test.filename).name}, "
                    f"line {test.lineno}: {(test.line or '').strip()}")
        return None
    outer, inner = frames[0], frames[-1]
    where = f"{Path(inner.filename).name}, line {inner.lineno}, in {inner.name}: {(inner.line or '').strip()}"
    chain = " -> ".join(f.name for f in frames)
    message = " ".join(str(exc).split()) or "(no message)"
    hint = next((h for pattern, h in CRASH_HINTS if re.search(pattern, message, flags=re.I)), None)
    return (f"your {outer.name} crashed: {type(exc).__name__}: {message}\n"
            f"  at {where}" + (f"\n  (called as {chain})" if len(frames) > 1 else "")
            + (f"\n  hint: {hint}" if hint else ""))
