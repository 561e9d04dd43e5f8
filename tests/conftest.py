"""Shared test fixtures and the --solutions option."""

import os

# Tiny matrices run fastest on one BLAS thread, and several threads per process
# oversubscribe a busy 2-core machine badly; set before NumPy is first imported
# (a value you set yourself wins).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from cli import keep_freed_memory  # noqa: E402
from corpora import corpus_path  # noqa: E402

# Like every script (cli.setup_numpy): freed arrays are reused, not returned to the
# kernel page by page. Only speed changes; the page-fault test checks it in a child.
keep_freed_memory()


@pytest.fixture(scope="session")
def shakespeare_path() -> Path:
    """Path to the real tiny Shakespeare corpus (skips if unavailable, fails under CI)."""
    return corpus_path("tiny_shakespeare")


@pytest.fixture(scope="session")
def federalist_path() -> Path:
    """Path to the real Federalist Papers corpus (skips if unavailable, fails under CI)."""
    return corpus_path("federalist")


def pytest_addoption(parser):
    """--solutions: run the exercise tests (tests/exercises) against the reference solutions.

    Registered here, in the top-level tests conftest, so that `python -m pytest --solutions`
    works from the repository root as well as for tests/exercises alone.
    """
    parser.addoption("--solutions", action="store_true",
                     help="check exercises/solutions/ instead of the learner's exercises/")


def pytest_collection_modifyitems(config, items):
    """Run the tests marked slow first (their order is otherwise kept).

    Alone they would make no difference; with `-n auto` (pytest-xdist) each starts on a worker
    of its own at once, and the other workers get through the rest of the suite meanwhile,
    instead of starting them when nearly everything else is done.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)   # stable: False (slow) first
