"""Small helpers the exercise tests share: failure messages a learner can act on."""

import numpy as np
import pytest

from implementation import rel_error


def fail(message: str):
    """Fail the test with just the message (no traceback into the test's own code)."""
    pytest.fail(message, pytrace=False)


def show(a, limit: int = 6) -> str:
    """A short one-line view of an array or number."""
    a = np.asarray(a)
    if a.ndim == 0:
        return f"{float(a):.6g}" if np.issubdtype(a.dtype, np.number) else repr(a.item())
    flat = a.ravel()
    body = ", ".join(f"{float(v):.4g}" for v in flat[:limit])
    more = ", ..." if flat.size > limit else ""
    return f"[{body}{more}] (shape {a.shape})"


def check_shape(got, shape, what: str):
    got = np.asarray(got)
    if got.shape != tuple(shape):
        fail(f"{what}: expected shape {tuple(shape)}, got {got.shape}")


def check_close(got, want, what: str, hint: str = "", rtol: float = 1e-7, atol: float = 1e-10):
    """Fail with 'yours vs expected' if got and want differ (shape first, then values)."""
    got_a, want_a = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got_a.shape != want_a.shape:
        fail(f"{what}: expected shape {want_a.shape}, got {got_a.shape}" + (f"\n  hint: {hint}" if hint else ""))
    if not np.allclose(got_a, want_a, rtol=rtol, atol=atol):
        err = rel_error(got_a, want_a)
        fail(f"{what}: values differ (relative error {err:.2e}, tolerance rtol={rtol:g})\n"
             f"  yours:    {show(got_a)}\n  expected: {show(want_a)}" + (f"\n  hint: {hint}" if hint else ""))
