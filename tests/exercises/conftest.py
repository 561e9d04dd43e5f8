"""The exercise tests run in one of two modes.

    python -m pytest tests/exercises              checks YOUR files in exercises/
    python -m pytest tests/exercises --solutions  checks exercises/solutions/ (what CI runs)

In your mode, a function you have not written yet (its stub still raises
NotImplementedError("exercise N: ... — see HINTS.md, exercise N")) makes the
test an expected failure, reported as "not attempted yet" with the hint, or as
"stretch, not attempted" for a function of the optional stretch part (its
message says "(optional stretch)"); a wrong answer fails with a message that
says what is off; a right one passes. In --solutions mode nothing is excused.
(The --solutions option itself is registered in tests/conftest.py, so it also
works from the repository root.)

The list of exercises and their files is tests/helpers.py's EXERCISES.
"""

import re

import pytest

from helpers import EXERCISES, REPO_ROOT, load_module

from .exercise_checks import crash_report

# (One BLAS thread for these many small matrices: set in tests/conftest.py.)

# the message every stub gap raises: "exercise 3: collect_source — see HINTS.md, exercise 3", or for a
# function of the optional stretch part "exercise 3: indent_share (optional stretch) — see HINTS.md, exercise 3"
STUB_MESSAGE = re.compile(r"^exercise (\d): (\w+)( \(optional stretch\))? — see HINTS\.md, exercise \1$")


def solutions_mode(config) -> bool:
    return bool(config.getoption("--solutions", default=False))


_loaded = {}


def load_exercise_module(number: int, solutions: bool):
    """Import exercises/exercise_0N_*.py (or its solution) by path, once per session."""
    path = EXERCISES[number].path(solutions)
    if path not in _loaded:
        try:
            _loaded[path] = load_module(path, f"_checked_{path.stem}")
        except Exception as exc:                         # a syntax error, a bad import, ...
            pytest.fail(f"could not import {path.relative_to(REPO_ROOT)}: "
                        f"{type(exc).__name__}: {exc}", pytrace=False)
    return _loaded[path]


@pytest.fixture(scope="session")
def load_exercise(request):
    """load_exercise(N) -> the module under test for exercise N (yours, or the solution)."""
    solutions = solutions_mode(request.config)
    return lambda number: load_exercise_module(number, solutions)


@pytest.fixture(scope="module")
def ex(request, load_exercise):
    """The module under test for this test file's exercise: test_exercise_0N_*.py checks exercise N."""
    match = re.match(r"test_exercise_0(\d)_", request.path.name)
    assert match, f"ex: {request.path.name} does not name an exercise (test_exercise_0N_*.py)"
    return load_exercise(int(match.group(1)))


def _not_attempted(exc: BaseException):
    """The xfail reason if exc is a stub's NotImplementedError ("not attempted yet: ..." or, for the
    optional stretch part, "stretch, not attempted: ..."), else None."""
    match = STUB_MESSAGE.match(str(exc)) if isinstance(exc, NotImplementedError) else None
    if match is None:
        return None
    return f"{'stretch, not attempted' if match.group(3) else 'not attempted yet'}: {exc}"


def _excuse_stub(item):
    """Wrapper body: a stub's NotImplementedError becomes xfail("not attempted yet ..."), and
    an exception raised inside your code becomes one message that names where (your mode only)."""
    try:
        return (yield)
    except NotImplementedError as exc:
        message = _not_attempted(exc)
        if message is None or solutions_mode(item.config):
            raise
        pytest.xfail(message)
    except Exception as exc:
        message = None if solutions_mode(item.config) else crash_report(exc)
        if message is None:
            raise
    pytest.fail(message, pytrace=False)                 # outside the except: no "during handling of ..." chain


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    # module-scoped fixtures (a model trained with your functions) run here
    return (yield from _excuse_stub(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _excuse_stub(item))
