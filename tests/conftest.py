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
from helpers import FEW_LINES, small_rnn, synthetic_text  # noqa: E402

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


@pytest.fixture(scope="session")
def trained_model() -> dict:
    """A tiny RNN (16 units) trained for 200 steps on helpers.synthetic_text, and its initial
    weights: helpers.small_rnn's {"text", "chars", "init", "params", "train_text", "val_text"}."""
    return small_rnn(synthetic_text(), hidden=16, init_scale=0.05, seed=5, steps=200)


@pytest.fixture(scope="session")
def untrained_model() -> dict:
    """An untrained RNN (24 units) on helpers.FEW_LINES, and what implementation.forward says about them.

    No training: init_scale 0.5 makes the hidden units swing over the whole -1..+1 range
    and the top guesses differ from place to place. helpers.small_rnn's dict, plus
    "h" (N,H), the state after reading each character, and "probs" (N,V), the
    next-character distribution there.
    """
    import numpy as np

    import implementation as rnn

    model = small_rnn(FEW_LINES, hidden=24, init_scale=0.5, seed=11)
    ids = rnn.encode(model["text"], model["chars"])
    hs, logp = rnn.forward(model["params"], ids[:, None])      # (N+1,H,1), (N,V,1)
    h, probs = hs[1:, :, 0], np.exp(logp[:, :, 0])
    assert np.allclose(probs.sum(axis=1), 1.0)
    assert np.abs(h).max() > 0.9 and np.abs(h).min() < 0.1, "the test model should use the whole tanh range"
    return {**model, "h": h, "probs": probs}


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
