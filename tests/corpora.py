"""Real corpora for the tests that need them (a plain module, so any test file can
import it; conftest.py files cannot be imported reliably once there are several)."""

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from data.download import CORPORA, DATA_DIR, MIRROR_ENV, DownloadError, ensure_corpus

_TITLES = {"tiny_shakespeare": "tiny Shakespeare", "federalist": "The Federalist Papers",
           "war_and_peace": "War and Peace"}


@functools.lru_cache(maxsize=None)
def _corpus_cache() -> Path:
    """A temporary folder for corpora fetched from the mirror, removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="rnn-corpora-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.lru_cache(maxsize=None)
def corpus_path(name: str) -> Path:
    """Path to the real corpus `name`, for tests that need real data.

    Uses the file in data/ if it is there, else fetches it through the project's
    own download code from ``RNN_DATA_MIRROR`` into a temporary folder. With
    neither, the test is skipped, or fails when ``CI=true``.
    """
    corpus = CORPORA[name]
    local = DATA_DIR / corpus.filename
    if local.is_file():
        return local
    if os.environ.get(MIRROR_ENV):
        try:
            return ensure_corpus(name, data_dir=_corpus_cache(), progress=False)
        except DownloadError as exc:
            reason = str(exc).splitlines()[0]
            pytest.fail(f"{MIRROR_ENV} is set but {name} could not be fetched: {reason}",
                        pytrace=False)
    message = (f"{_TITLES.get(name, name)} not available: run `python -m data.download` "
               f"or set {MIRROR_ENV}=/path/to/copies")
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: real data is required)", pytrace=False)
    pytest.skip(message)
