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

The first two guard the published stubs, not a learner's copy: a stub whose gaps
have been (partly) filled in is progress, so outside CI those checks are skipped
for that stub with a message saying so. Under CI=true nothing is skipped. (A
pristine stub is checked everywhere, so a maintainer sees a slip locally too.)
"""

import ast
import inspect
import os
import re
import subprocess
import sys
import types

import pytest

from helpers import EXERCISES, EXERCISE_TESTS_DIR, EXERCISES_DIR, REPO_ROOT, load_module

NUMBERS = sorted(EXERCISES)


def load(path):
    """Import a file under a private module name (so stub and solution never collide)."""
    return load_module(path, f"_stubcheck_{path.stem}")


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


# -----------------------------------------------------------------------------
# Published stubs versus a learner's copy
# -----------------------------------------------------------------------------

def under_ci() -> bool:
    return os.environ.get("CI") == "true"


def skip_if_learners_progress(n, path=None):
    """Outside CI, skip the stub guards for a stub whose gaps the learner has started to fill in."""
    ex = EXERCISES[n]
    path = path or ex.stub_path
    done = [f for f in ex.functions if f not in raising_functions(path)]
    if done and not under_ci():
        state = "solved" if len(done) == len(ex.functions) else f"under way ({', '.join(done)} written)"
        pytest.skip(f"exercise {n} is {state} in your copy — well done; this check only guards the "
                    f"published stubs (it runs under CI=true)")


def stretch_mark(n, name):
    """What the stub's message adds for a function of the optional stretch part (the solution's STRETCH)."""
    return " (optional stretch)" if name in load(EXERCISES[n].solution_path).STRETCH else ""


def check_gaps_raise(n, path=None):
    """Every gap of exercise n's stub raises the stub's NotImplementedError when called."""
    ex = EXERCISES[n]
    path = path or ex.stub_path
    stub = load(path)
    problems, running = [], []
    for name in ex.functions:
        fn = getattr(stub, name, None)
        if not callable(fn):
            problems.append(f"the exercise function {name} is missing")
            continue
        params = inspect.signature(fn).parameters.values()
        args = [None for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        want = f"exercise {n}: {name}{stretch_mark(n, name)} — see HINTS.md, exercise {n}"
        try:
            fn(*args)
        except NotImplementedError as exc:
            if str(exc) != want:
                problems.append(f"{name} raises NotImplementedError({str(exc)!r}), expected {want!r}")
            continue
        except Exception:                                          # it ran code on the None arguments
            pass
        running.append(name)
    if running:
        problems.append(f"{', '.join(running)} {'runs' if len(running) == 1 else 'run'} code instead of raising "
                        f"NotImplementedError('exercise {n}: <name> — see HINTS.md, exercise {n}')")
    if problems:
        where = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        pytest.fail(f"{where}: " + "; ".join(problems) + ". The published stubs keep "
                    "every gap unsolved (checked under CI=true; in a learner's copy this is skipped).",
                    pytrace=False)


@pytest.mark.parametrize("n", NUMBERS)
def test_every_gap_in_the_stub_still_raises(n):
    skip_if_learners_progress(n)
    check_gaps_raise(n)


@pytest.mark.parametrize("n", NUMBERS)
def test_the_gaps_are_exactly_the_listed_functions(n):
    ex = EXERCISES[n]
    assert not raising_functions(ex.solution_path) & set(ex.functions), \
        f"{ex.solution_path.name}: a solution still raises NotImplementedError"
    skip_if_learners_progress(n)
    raising = raising_functions(ex.stub_path)
    if raising != set(ex.functions):
        pytest.fail(f"{ex.stub_path.name}: the functions raising NotImplementedError differ from the exercise list in "
                    f"tests/helpers.py: not raising {sorted(set(ex.functions) - raising)}, not listed "
                    f"{sorted(raising - set(ex.functions))}", pytrace=False)


@pytest.mark.parametrize("n", NUMBERS)
def test_core_and_stretch_split_the_gaps(n):
    """CORE (the exercise) and STRETCH (optional) name every gap once; the stub marks the stretch part."""
    ex = EXERCISES[n]
    sol = load(ex.solution_path)
    core, stretch = list(sol.CORE), list(sol.STRETCH)
    assert sorted(core + stretch) == sorted(ex.functions) and not set(core) & set(stretch), \
        f"exercise {n}: CORE {core} and STRETCH {stretch} must split the gaps {list(ex.functions)}"
    assert sol.not_written_yet(core + stretch, vars(sol)) == [], f"{ex.solution_path.name}: not_written_yet finds a gap"
    skip_if_learners_progress(n)
    stub = load(ex.stub_path)
    assert stub.not_written_yet(core + stretch, vars(stub)) == core + stretch, \
        f"{ex.stub_path.name}: not_written_yet should name every gap of a pristine stub"
    text = ex.stub_path.read_text(encoding="utf-8")
    if stretch:
        assert "# Stretch (optional)" in text and all(
            inspect.getdoc(getattr(stub, f)).startswith("(Stretch.)") for f in stretch), \
            f"{ex.stub_path.name}: a banner '# Stretch (optional) ...' and docstrings starting '(Stretch.)' mark " \
            "the optional part"


def _first_gap_line(n):
    ex = EXERCISES[n]
    return (rf"exercise {n}: write {load(ex.solution_path).CORE[0]} in {ex.stub_path.name} next \(hint: "
            rf"exercises/HINTS\.md, exercise {n}; check: python -m pytest tests/exercises/{ex.test_path.name}\)")


def test_an_unsolved_stub_says_in_one_line_what_to_write(tmp_path):
    """Run as a script, a pristine stub names the first function to write and the hint, exit status 1, and
    stops before any training (given a small text, so no corpus is needed)."""
    small = tmp_path / "small.txt"
    small.write_text("the cat sat on the mat and the dog ran to its red ball.\n" * 100, encoding="utf-8")
    fake = tmp_path / "federalist.txt"
    fake.write_text("FEDERALIST No. 85\n\nnot really the papers\n", encoding="utf-8")
    args = {1: [], 2: ["--data", small], 3: [], 4: ["--data", small, "--plot", ""], 5: ["--data", fake]}
    numbers = [n for n in NUMBERS if raising_functions(EXERCISES[n].stub_path) == set(EXERCISES[n].functions)]
    if not numbers and not under_ci():
        pytest.skip("every stub is under way in your copy — well done; this check only guards the published stubs")
    procs = {n: subprocess.Popen([sys.executable, str(EXERCISES[n].stub_path), *map(str, args[n])], cwd=tmp_path,
                                 text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in numbers}
    problems = []
    for n, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 1 or out or not re.fullmatch(_first_gap_line(n) + "\n", err):
            problems.append(f"{EXERCISES[n].stub_path.name}: exit status {proc.returncode}, stdout {out[-300:]!r}, "
                            f"stderr {err[-600:]!r}")
    assert not problems, "an unsolved stub should print one line naming the function to write and the hint, " \
        "and exit with status 1:\n" + "\n".join(problems)
    assert not under_ci() or len(numbers) == len(NUMBERS), "under CI every stub is pristine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["federalist.txt", "small.txt"], "a stub wrote a file"


def _solved_copy(tmp_path, n=2):
    """A learner's copy of exercise n with only its first gap filled in (made from the solution, so it
    does not depend on the state of the stub in this checkout)."""
    ex = EXERCISES[n]
    src = ex.solution_path.read_text(encoding="utf-8")
    lines = src.split("\n")
    gaps = [f for f in ast.parse(src).body if isinstance(f, ast.FunctionDef) and f.name in ex.functions[1:]]
    for f in sorted(gaps, key=lambda f: -f.lineno):                 # bottom up: line numbers stay valid
        gap = f"exercise {n}: {f.name}{stretch_mark(n, f.name)} — see HINTS.md, exercise {n}"
        raise_line = f'    raise NotImplementedError("{gap}")'
        lines[f.body[0].end_lineno:f.end_lineno] = [raise_line]     # keep the signature and the docstring
    copy = tmp_path / ex.stub_path.name
    copy.write_text("\n".join(lines), encoding="utf-8")            # implementation is on sys.path already
    return copy, ex.functions[0]


def test_a_learners_progress_is_skipped_outside_ci(tmp_path, monkeypatch):
    copy, name = _solved_copy(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=rf"exercise 2 is under way \({name} written\) in your copy "
                                                    r"— well done; this check only guards the published stubs"):
        skip_if_learners_progress(2, copy)


def test_a_solved_stub_fails_under_ci_in_one_line(tmp_path, monkeypatch):
    copy, name = _solved_copy(tmp_path)
    monkeypatch.setenv("CI", "true")
    skip_if_learners_progress(2, copy)                             # no skip under CI
    with pytest.raises(pytest.fail.Exception) as info:
        check_gaps_raise(2, copy)
    message = str(info.value)
    assert f"{name} runs code instead of raising" in message and "\n" not in message, message
    assert info.value.__cause__ is None and info.value.__context__ is None, "no chained traceback"


def test_a_pristine_stub_is_checked_outside_ci_too(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    if raising_functions(EXERCISES[1].stub_path) != set(EXERCISES[1].functions):
        pytest.skip("exercise 1 is under way in this copy")
    skip_if_learners_progress(1)                                   # returns: nothing to excuse
    check_gaps_raise(1)


# -----------------------------------------------------------------------------
# Stubs and solutions have the same shape
# -----------------------------------------------------------------------------

@pytest.mark.parametrize("n", NUMBERS)
def test_solution_has_the_stubs_shape(n):
    ex = EXERCISES[n]
    skip_if_learners_progress(n)                                   # a learner may add helpers of their own
    stub, sol = load(ex.stub_path), load(ex.solution_path)
    a, b = public_names(stub), public_names(sol)
    assert sorted(a) == sorted(b), (f"exercise {n}: public names differ; only in the stub: "
                                    f"{sorted(set(a) - set(b))}, only in the solution: {sorted(set(b) - set(a))}")
    todo = set(ex.functions)
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


def test_the_list_of_exercises_matches_the_files():
    """tests/helpers.py's EXERCISES names every stub, solution and test file there is, and only those."""
    assert sorted(p.name for p in EXERCISES_DIR.glob("exercise_*.py")) == \
        sorted(ex.stub_path.name for ex in EXERCISES.values())
    assert sorted(p.name for p in (EXERCISES_DIR / "solutions").glob("exercise_*.py")) == \
        sorted(ex.solution_path.name for ex in EXERCISES.values())
    assert sorted(p.name for p in EXERCISE_TESTS_DIR.glob("test_*.py")) == \
        sorted(ex.test_path.name for ex in EXERCISES.values())


def test_scripts_run_from_any_directory(tmp_path):
    """`python <file> --help` works for every stub and solution, run from an unrelated folder."""
    files = [str(p) for n in NUMBERS for p in (EXERCISES[n].stub_path, EXERCISES[n].solution_path)]
    code = (
        "import runpy, sys\n"
        "base = list(sys.path)\n"
        "for f in sys.argv[1:]:\n"
        "    sys.path[:] = base\n"
        "    for m in [m for m in sys.modules if m in ('implementation', 'cli', 'visualization')"
        " or m.startswith('data')]:\n"
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
    hints = (EXERCISES_DIR / "HINTS.md").read_text(encoding="utf-8")
    sections = re.split(r"^## ", hints, flags=re.M)
    for n in NUMBERS:
        section = next((s for s in sections if s.startswith(f"Exercise {n}")), None)
        assert section is not None, f"exercises/HINTS.md has no section '## Exercise {n} ...'"
        missing = [f for f in EXERCISES[n].functions if f"`{f}`" not in section]
        assert not missing, f"exercises/HINTS.md, exercise {n}: no hint for {missing}"


def test_readme_names_every_exercise():
    readme = (EXERCISES_DIR / "README.md").read_text(encoding="utf-8")
    for n in NUMBERS:
        assert f"{EXERCISES[n].stub}.py" in readme, f"exercises/README.md does not mention exercise {n}'s file"


# -----------------------------------------------------------------------------
# Bad input: one line and exit status 2, before any training
# -----------------------------------------------------------------------------

def _bad_inputs(tmp):
    """(exercise, arguments, environment, a word the error line must contain) for a representative set."""
    (tmp / "empty.txt").write_text("", encoding="utf-8")
    (tmp / "binary.dat").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (tmp / "short.txt").write_text("a few words only\n", encoding="utf-8")
    (tmp / "folder").mkdir()
    missing, folder, empty, binary, short = (str(tmp / n) for n in
                                             ("missing.txt", "folder", "empty.txt", "binary.dat", "short.txt"))
    return [
        (1, ["--hidden-size", "0"], {}, "--hidden-size"),
        (1, ["--seed", "-1"], {}, "--seed"),
        (1, ["--learning-rate", "0"], {}, "--learning-rate"),
        (1, ["--iterations", "ten"], {}, "--iterations"),
        (1, [], {"RNN_THREADS": "zero"}, "RNN_THREADS"),
        (2, ["--data", missing], {}, "no such file"),
        (2, ["--data", folder], {}, "is a folder"),
        (2, ["--data", empty], {}, "is empty"),
        (2, ["--temperatures", "1.0", "0"], {}, "--temperatures"),
        (2, ["--data", short, "--checkpoint", missing], {}, "checkpoint not found"),
        (2, ["--data", short], {}, "too short"),
        (3, ["--data", binary], {}, "binary"),
        (3, ["--batch-size", "-1"], {}, "--batch-size"),
        (3, ["--data", short], {}, "too short"),
        (4, ["--data", empty], {}, "is empty"),
        (4, ["--chars", "0"], {}, "--chars"),
        (4, ["--data", short], {}, "too short"),
        (5, ["--folds", "0"], {}, "--folds"),
        (5, ["--data", short], {}, "not the Federalist Papers"),
        (5, ["--max-chars", "-1"], {}, "--max-chars"),
    ]


def test_bad_input_is_one_line_and_exit_status_2(tmp_path):
    """Each exercise script (the learner's file; the solutions share its main) rejects bad input in one line."""
    cases = _bad_inputs(tmp_path)
    procs = [subprocess.Popen([sys.executable, str(EXERCISES[n].stub_path), *args], cwd=tmp_path, text=True,
                              env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for n, args, env, _ in cases]                         # all at once: each one only starts Python
    problems = []
    for (n, args, env, word), proc in zip(cases, procs):
        _, stderr = proc.communicate(timeout=120)
        res = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
        lines = res.stderr.strip().splitlines()
        call = f"{EXERCISES[n].stub_path.name} {' '.join(args)}" + (f" ({env})" if env else "")
        if res.returncode != 2 or len(lines) != 1 or not lines[0].startswith("error: ") or word not in lines[0]:
            problems.append(f"{call}: exit status {res.returncode}, stderr {res.stderr.strip()[-600:]!r}")
    assert not problems, "bad input should give one line 'error: ...' mentioning the problem, and exit 2:\n" + \
        "\n".join(problems)


def test_one_line_errors_turns_errors_and_ctrl_c_into_exit_statuses(capsys):
    import cli

    @cli.one_line_errors(cli.UserError)
    def main(argv=None):
        if argv == ["user"]:
            raise cli.UserError("--data x.txt: no such\n file")
        if argv == ["stop"]:
            raise KeyboardInterrupt
        if argv == ["bug"]:
            raise ValueError("a learner's own bug keeps its traceback")
        return 0

    assert main([]) == 0
    assert main(["user"]) == cli.EXIT_USAGE and capsys.readouterr().err == "error: --data x.txt: no such file\n"
    assert main(["stop"]) == cli.EXIT_INTERRUPTED and capsys.readouterr().err == "error: interrupted\n"
    with pytest.raises(ValueError, match="keeps its traceback"):
        main(["bug"])
