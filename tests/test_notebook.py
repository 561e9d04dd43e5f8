"""Tests for notebook.ipynb, the interactive walkthrough.

Two kinds of test:

* fast, static checks of the committed file: it was saved after a clean top-to-bottom
  run (outputs for every code cell, execution counts 1..N, no errors, figures visible,
  a reasonable size), it runs on the standard "python3" kernel, and it imports the
  project's modules instead of re-implementing them;
* one slow test that runs a copy of the notebook from top to bottom on a headless
  kernel (about two minutes, one of them training), through the command below, and fails
  on any cell error, so a broken module breaks the notebook's asserts here; and fast
  checks that the command writes notebook.ipynb only when told to (--update).

Run it headless yourself (from the repository root); the executed copy goes to
out/notebook.ipynb and notebook.ipynb stays as it is:

    python tests/test_notebook.py

To refresh the committed notebook after changing it (maintainers):

    python tests/test_notebook.py --update

Both run the notebook with the same settings as the slow test, merging each cell's printed
output into one block (so the progress bar is saved as its final line, not as hundreds of
updates).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import inspect
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

if __name__ == "__main__":              # run as a script: the project's modules are one folder up
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
import safeio  # noqa: E402
from helpers import REPO_ROOT as ROOT  # noqa: E402
NOTEBOOK = ROOT / "notebook.ipynb"
EXECUTED = ROOT / "out" / "notebook.ipynb"     # where a learner's headless run saves its copy
CELL_TIMEOUT = 600               # seconds per cell; the training cell takes about a minute
MAX_BYTES = 2_000_000            # the committed notebook, outputs included
MIN_FIGURES = 10


def execute_notebook(nb, env: dict | None = None):
    """Run `nb` (a NotebookNode, changed in place) from top to bottom on the "python3" kernel.

    The kernel's working directory is the repository root, so `import implementation`
    works exactly as in Jupyter started from the root. Raises nbclient's
    CellExecutionError (with the cell and the traceback) on the first error.
    """
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}},
                            coalesce_streams=True, record_timing=False)
    client.execute(env=dict(os.environ if env is None else env))
    return nb


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _python_source(cell) -> str:
    """A code cell's source with IPython magics and shell escapes blanked out."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in cell.source.splitlines())


def _problems_with_outputs(nb) -> list[str]:
    """Everything that shows the notebook was not saved after one clean run."""
    problems = []
    for i, cell in enumerate(_code_cells(nb), start=1):
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)"
        where = f"code cell {i} ({first[:60]!r})"
        if cell.execution_count != i:
            problems.append(f"{where}: execution count {cell.execution_count}, expected {i} "
                            "(re-run the whole notebook from a fresh kernel)")
        if not cell.outputs:
            problems.append(f"{where}: no output; every code cell should show what it did")
        for out in cell.outputs:
            if out.output_type == "error":
                problems.append(f"{where}: error output {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr" and (
                    "Warning" in out.text or "Traceback" in out.text):
                problems.append(f"{where}: a warning or traceback on stderr: {out.text[:200]!r}")
    return problems


def _module_names() -> set[str]:
    """Names of the functions and classes the project's modules define."""
    import implementation
    import train_minimal
    import visualization

    names = set()
    for module in (implementation, visualization, train_minimal):
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
                names.add(name)
    return names


# -----------------------------------------------------------------------------
# Static checks of the committed notebook (fast)
# -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def committed():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    return nb


def test_committed_notebook_was_saved_after_a_clean_run(committed):
    problems = _problems_with_outputs(committed)
    assert not problems, "notebook.ipynb:\n  " + "\n  ".join(problems)


def test_committed_notebook_shows_its_figures_and_stays_small(committed):
    figures = sum("image/png" in out.get("data", {}) for c in _code_cells(committed) for out in c.outputs)
    assert figures >= MIN_FIGURES, (f"notebook.ipynb shows {figures} figures, expected at least "
                                    f"{MIN_FIGURES}: was it saved without its outputs?")
    size = NOTEBOOK.stat().st_size
    assert size < MAX_BYTES, (f"notebook.ipynb is {size / 1e6:.2f} MB, limit {MAX_BYTES / 1e6:.0f} MB: "
                              "lower the figure dpi (matplotlib.rcParams['figure.dpi'])")


def test_committed_notebook_uses_the_standard_kernel(committed):
    spec = committed.metadata.get("kernelspec", {})
    assert spec.get("name") == "python3", (f"kernelspec name is {spec.get('name')!r}; use the standard "
                                           "'python3' so it runs anywhere ipykernel is installed")


def test_notebook_imports_the_modules_instead_of_reimplementing_them(committed):
    source = "\n".join(_python_source(c) for c in _code_cells(committed))
    tree = ast.parse(source)                              # also: every code cell is valid Python
    imported = set()
    defined = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined[node.name] = node.lineno
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    defined[target.id] = node.lineno
    for module in ("implementation", "visualization", "train_minimal"):
        assert module in imported, f"the notebook should import {module} (it imports {sorted(imported)})"
    clashes = sorted(set(defined) & _module_names())
    assert not clashes, (f"the notebook defines {clashes}, which the project's modules already "
                         "provide: call implementation / visualization / train_minimal instead")
    assert "sys.path" not in source, ("the notebook edits sys.path; it must import the modules "
                                      "from the repository root, Jupyter's working directory")


# -----------------------------------------------------------------------------
# Running it (slow: about two minutes)
# -----------------------------------------------------------------------------

@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path, capsys):
    """The README's headless command, in-process: it runs a blank copy from a fresh kernel,
    saves it where it is told, and leaves the committed notebook.ipynb as it was."""
    from corpora import corpus_path

    corpus = corpus_path("tiny_shakespeare")              # skips on a learner machine, fails under CI
    env = dict(os.environ)
    if not (ROOT / "data" / corpus.name).is_file():      # fetched from the mirror into a temporary folder
        env["RNN_DATA_MIRROR"] = str(corpus.parent)
    before = hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest()
    copy = tmp_path / NOTEBOOK.name
    code = main(["--out", str(copy)], env=env)
    out, err = capsys.readouterr()
    assert code == 0, f"notebook.ipynb failed (executed copy: {copy}):\n{err}"
    assert hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest() == before, \
        "python tests/test_notebook.py changed notebook.ipynb: only --update may write it"
    nb = nbformat.read(copy, as_version=4)
    problems = _problems_with_outputs(nb)
    assert not problems, "notebook.ipynb, run from a fresh kernel:\n  " + "\n  ".join(problems)


def test_headless_run_saves_its_copy_outside_the_committed_notebook():
    args = build_parser().parse_args([])
    assert output_path(args) == EXECUTED != NOTEBOOK, (
        f"python tests/test_notebook.py (no flags) should save to {EXECUTED}, not {output_path(args)}")
    assert output_path(build_parser().parse_args(["--update"])) == NOTEBOOK, \
        "--update should write the committed notebook.ipynb"


@pytest.mark.parametrize("argv, says", [
    (["--out", str(NOTEBOOK)], "--update"),                  # the committed file by another name
    (["--out", "/no/such/folder/nb.ipynb"], "does not exist"),
    (["--out", "/dev/null"], "device"),
])
def test_headless_run_refuses_a_bad_out_before_running(argv, says, capsys):
    before = NOTEBOOK.stat().st_mtime_ns
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and says in err and err.count("\n") == 1, (
        f"main({argv}) should refuse with one error line naming {says!r} and return 2, got {code}: {err!r}")
    assert NOTEBOOK.stat().st_mtime_ns == before, f"main({argv}) touched notebook.ipynb"


def test_update_and_out_are_exclusive(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--update", "--out", "x.ipynb"])
    assert e.value.code == 2, "--update with --out should be a usage error (exit 2)"


# -----------------------------------------------------------------------------
# The command line: a learner's headless run, and a maintainer's refresh
# -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python tests/test_notebook.py",
        description="Run notebook.ipynb from top to bottom on a headless kernel (about two minutes). "
                    "The executed copy is saved elsewhere; notebook.ipynb is written only with --update.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--out", type=Path, default=EXECUTED,
                   help=f"where to save the executed copy (default: {EXECUTED.relative_to(ROOT)})")
    g.add_argument("--update", action="store_true",
                   help="maintainers: save the run into notebook.ipynb itself, to commit it")
    return p


def output_path(args: argparse.Namespace) -> Path:
    """Where the executed notebook goes: the committed file only when asked for by name."""
    return NOTEBOOK if args.update else args.out


def save(nb, path: Path) -> None:
    """Write the notebook whole or not at all (safeio: a crash never leaves half a file)."""
    text = nbformat.writes(nb)
    safeio.atomic_write_text(path, text if text.endswith("\n") else text + "\n")


def main(argv=None, env: dict | None = None) -> int:
    args = build_parser().parse_args(argv)
    target = output_path(args)
    if not args.update and target.resolve() == NOTEBOOK.resolve():
        print(f"error: --out {target} is the committed notebook; refresh it with --update", file=sys.stderr)
        return 2
    if target == EXECUTED:
        target.parent.mkdir(exist_ok=True)
    try:
        safeio.check_output_path(target, "--out file")
        if not target.parent.is_dir():
            raise safeio.UnsafeOutputError(f"--out {target}: the folder {target.parent} does not exist")
    except safeio.UnsafeOutputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in _code_cells(nb):                         # start from a blank notebook
        cell.outputs, cell.execution_count = [], None
    start = time.perf_counter()
    try:
        execute_notebook(nb, env)
    except CellExecutionError as e:
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(e))      # drop the traceback's terminal colours
        print(f"error: a cell of notebook.ipynb failed:\n{message}", file=sys.stderr)
        if not args.update:                              # the partly run copy, to look at; never the original
            save(nb, target)
            print(f"the partly executed copy: {target}", file=sys.stderr)
        return 1
    save(nb, target)
    print(f"ran notebook.ipynb in {time.perf_counter() - start:.0f} s; saved to {target} "
          f"({target.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
