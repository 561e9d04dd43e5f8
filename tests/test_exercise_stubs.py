"""The exercises in both directions: stubs stay unsolved, solutions keep the stubs' shape.

tests/exercises checks that every solution passes (`pytest --solutions`); this
file checks the other direction, as rustlings' maintainers do:

* every gap in every stub still raises NotImplementedError("exercise N: name — see
  HINTS.md, exercise N"), so a learner never finds a stub already solved;
* each solution defines exactly the stub's public names, the same signatures
  and docstrings, and the same code for everything that is not an exercise
  (main, constants), so copying a solution's function bodies into the stub
  makes that exercise pass;
* every stub and solution runs as a script from any working directory;
* HINTS.md has a section for every exercise that names every gap.
"""

import ast
import importlib.util
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
EXERCISES = REPO_ROOT / "exercises"

# exercise -> (stub, solution, the functions the learner writes)
EXERCISES_TABLE = {
    1: ("exercise_01_build_rnn", "exercise_01_solution",
        ["get_batch", "rnn_step_forward", "forward_loss", "rnn_backward", "clip_gradients",
         "loss_and_clipped_grads"]),
    2: ("exercise_02_temperature", "exercise_02_solution",
        ["softmax_temperature", "sample_with_temperature", "entropy", "generate", "known_word_share",
         "repetition_rate", "temperature_sweep"]),
    3: ("exercise_03_own_data", "exercise_03_solution",
        ["collect_source", "shuffle_characters", "unigram_entropy", "balanced_bracket_share", "indent_share",
         "known_word_share", "train_on_text", "domain_report"]),
    4: ("exercise_04_overfitting", "exercise_04_solution",
        ["smooth", "train_with_validation", "find_best_step", "plot_curves"]),
    5: ("exercise_05_author_classifier", "exercise_05_solution",
        ["parse_federalist", "standard_attribution", "train_author_model", "cross_entropy", "classify_by_loss",
         "hidden_features", "fit_logistic_regression", "predict_proba", "train_and_classify", "cross_validate"]),
}
NUMBERS = sorted(EXERCISES_TABLE)


def stub_path(n):
    return EXERCISES / f"{EXERCISES_TABLE[n][0]}.py"


def solution_path(n):
    return EXERCISES / "solutions" / f"{EXERCISES_TABLE[n][1]}.py"


def load(path):
    """Import a file under a private module name (so stub and solution never collide)."""
    name = f"_stubcheck_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def public_names(module):
    """Public module-level names, except imported modules: name -> object."""
    return {k: v for k, v in vars(module).items()
            if not k.startswith("_") and not isinstance(v, types.ModuleType)}


def raising_functions(path):
    """Names of the top-level functions whose body raises NotImplementedError."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Raise) and sub.exc is not None:
                    exc = sub.exc.func if isinstance(sub.exc, ast.Call) else sub.exc
                    if isinstance(exc, ast.Name) and exc.id == "NotImplementedError":
                        out.add(node.name)
    return out


def test_table_matches_the_exercise_tests():
    """tests/exercises/conftest.py points at the same files as this table."""
    conftest = load(REPO_ROOT / "tests" / "exercises" / "conftest.py")
    assert conftest.EXERCISE_FILES == {n: row[:2] for n, row in EXERCISES_TABLE.items()}


@pytest.mark.parametrize("n", NUMBERS)
def test_every_gap_in_the_stub_still_raises(n):
    path = stub_path(n)
    stub = load(path)
    for name in EXERCISES_TABLE[n][2]:
        fn = getattr(stub, name, None)
        assert callable(fn), f"{path.name}: the exercise function {name} is missing"
        params = inspect.signature(fn).parameters.values()
        args = [None for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        want = f"exercise {n}: {name} — see HINTS.md, exercise {n}"
        unsolved = (f"{path.name}: {name} no longer raises NotImplementedError: the stubs must stay "
                    f"unsolved (was a solution copied into the stub?)")
        try:
            fn(*args)
        except NotImplementedError as exc:
            assert str(exc) == want, f"{path.name}: {name} raises NotImplementedError({str(exc)!r}), expected {want!r}"
        except Exception as exc:                                   # it ran code on the None arguments
            pytest.fail(f"{unsolved} Called with None arguments it raised {type(exc).__name__}: {exc}")
        else:
            pytest.fail(unsolved)


@pytest.mark.parametrize("n", NUMBERS)
def test_the_gaps_are_exactly_the_listed_functions(n):
    listed = set(EXERCISES_TABLE[n][2])
    assert raising_functions(stub_path(n)) == listed, \
        f"{stub_path(n).name}: the functions raising NotImplementedError differ from the exercise list"
    assert not raising_functions(solution_path(n)) & listed, \
        f"{solution_path(n).name}: a solution still raises NotImplementedError"


@pytest.mark.parametrize("n", NUMBERS)
def test_solution_has_the_stubs_shape(n):
    stub, sol = load(stub_path(n)), load(solution_path(n))
    a, b = public_names(stub), public_names(sol)
    assert sorted(a) == sorted(b), (f"exercise {n}: public names differ; only in the stub: "
                                    f"{sorted(set(a) - set(b))}, only in the solution: {sorted(set(b) - set(a))}")
    todo = set(EXERCISES_TABLE[n][2])
    for name, obj in a.items():
        other = b[name]
        if inspect.isfunction(obj) and obj.__module__ == stub.__name__:
            assert inspect.signature(obj) == inspect.signature(other), \
                f"exercise {n}: {name}{inspect.signature(obj)} in the stub, {name}{inspect.signature(other)} in the solution"
            assert inspect.getdoc(obj) == inspect.getdoc(other), f"exercise {n}: the docstrings of {name} differ"
            if name not in todo:                                   # main and other given code: identical
                assert inspect.getsource(obj) == inspect.getsource(other), \
                    f"exercise {n}: {name} is not an exercise but differs between stub and solution"
        elif inspect.isfunction(obj) or inspect.isclass(obj):      # imported from implementation.py
            assert obj is other, f"exercise {n}: {name} is a different object in the stub and the solution"
        elif name != "REPO_ROOT":                                  # REPO_ROOT: same folder, found from another depth
            assert repr(obj) == repr(other), f"exercise {n}: the constant {name} differs"
    assert stub.REPO_ROOT == sol.REPO_ROOT == REPO_ROOT


def test_scripts_run_from_any_directory(tmp_path):
    """`python <file> --help` works for every stub and solution, run from an unrelated folder."""
    files = [str(p(n)) for n in NUMBERS for p in (stub_path, solution_path)]
    code = (
        "import runpy, sys\n"
        "base = list(sys.path)\n"
        "for f in sys.argv[1:]:\n"
        "    sys.path[:] = base\n"
        "    for m in [m for m in sys.modules if m == 'implementation' or m.startswith('data')]:\n"
        "        del sys.modules[m]\n"
        "    sys.argv = [f, '--help']\n"
        "    try:\n"
        "        runpy.run_path(f, run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        assert e.code in (0, None), (f, e.code)\n"
        "    print('OK', f)\n"
    )
    # -I: isolated mode, so neither the working directory nor PYTHONPATH is on sys.path
    res = subprocess.run([sys.executable, "-I", "-c", code, *files], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, f"a script failed when run from {tmp_path}:\n{res.stderr[-2000:]}"
    done = [line[3:] for line in res.stdout.splitlines() if line.startswith("OK ")]
    assert done == files and res.stdout.count("usage:") == len(files), res.stdout[-2000:]


def test_hints_cover_every_gap():
    hints = (EXERCISES / "HINTS.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", hints, flags=re.M)
    for n in NUMBERS:
        section = next((s for s in sections if s.startswith(f"Exercise {n}")), None)
        assert section is not None, f"exercises/HINTS.md has no section '## Exercise {n} ...'"
        missing = [f for f in EXERCISES_TABLE[n][2] if f"`{f}`" not in section]
        assert not missing, f"exercises/HINTS.md, exercise {n}: no hint for {missing}"


def test_readme_names_every_exercise():
    readme = (EXERCISES / "README.md").read_text(encoding="utf-8")
    for n in NUMBERS:
        assert f"{EXERCISES_TABLE[n][0]}.py" in readme, f"exercises/README.md does not mention exercise {n}'s file"
