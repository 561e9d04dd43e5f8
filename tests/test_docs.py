"""The written half of the tutorial, checked: the README and the pages of docs/ link to
files and sections that exist, every flag they name exists, every shell command in their
code blocks runs (on small settings), the README stays a Day-1 page that links every page
of docs/, a learner's install and commands need no test-only tool, and CI runs exactly the
README's full test command."""

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from corpora import corpus_path

from helpers import REPO_ROOT as ROOT
PAGES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))   # beyond Day 1
DOCS = ["README.md", "CHEATSHEET.md", "paper_notes.md", "exercises/README.md", "data/README.md", *PAGES]
README_MAX_WORDS = 5_500                       # the Day-1 page: `wc -w README.md`
CONTRIBUTORS = "For contributors: the whole test suite"   # the README section with CI's commands
TEST_ONLY = {"pytest-xdist", "playwright"}     # requirements-dev.txt: the full suite's tools
# files the project writes or downloads: named in the docs, absent from a fresh clone
GENERATED = re.compile(r"^(out|plots)/|(^|/)(tiny_shakespeare|federalist|war_and_peace)\.txt$|^\.venv|\.npz$|log\.jsonl$|metrics\.json$")


def read(doc):
    return (ROOT / doc).read_text(encoding="utf-8")


def section(doc, heading):
    """The text of one `## heading` section of a Markdown file, up to the next `## `."""
    text = read(doc)
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert m, f"{doc} has no section '## {heading}'"
    return m.group(1)


def bash_blocks(text):
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def bash_commands(doc="README.md", text=None):
    """Commands in ```bash blocks, one per line, comments dropped."""
    cmds = []
    for block in bash_blocks(read(doc) if text is None else text):
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                cmds.append(line)
    return cmds


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_and_named_files_exist(doc):
    text = read(doc)
    base = (ROOT / doc).parent
    missing = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        if not (base / target).exists():
            missing.append(f"link {target}")
    for name in re.findall(r"`([\w./-]+\.(?:py|md|ipynb|txt|png|json|toml))`", text):
        if GENERATED.search(name) or name in {"min-char-rnn.py", "input.txt"}:
            continue
        if not ((ROOT / name).exists() or (base / name).exists()):
            missing.append(f"file {name}")
    assert not missing, f"{doc} names things that do not exist: {missing}"


def heading_anchors(doc):
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped,
    spaces made hyphens (code blocks skipped: a `# comment` there is not a heading)."""
    text = re.sub(r"```.*?```", "", read(doc), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("doc", DOCS)
def test_section_links_point_at_a_heading(doc):
    base = (ROOT / doc).parent
    broken = []
    for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", read(doc)):
        if re.match(r"^[a-z]+://", target):
            continue
        linked = os.path.relpath(base / target, ROOT) if target else doc
        if linked.endswith(".md") and anchor not in heading_anchors(linked):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{doc} links to sections that no heading makes (renamed or moved?): {broken}"


def help_texts():
    out = []
    exercises = [[str(p.relative_to(ROOT))] for p in sorted((ROOT / "exercises" / "solutions").glob("exercise_*.py"))]
    for cmd in (["train_minimal.py"], ["visualization.py"], ["tests/benchmarks/bench_speed.py"],
                ["tests/test_notebook.py"], ["-m", "data.download"], *exercises):
        r = subprocess.run([sys.executable, *cmd, "--help-all"], cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:                                    # no --help-all: --help lists every flag
            r = subprocess.run([sys.executable, *cmd, "--help"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd} --help failed: {r.stderr}"
        out.append(r.stdout)
    out.append(read("tests/conftest.py"))                       # pytest's --solutions option
    return "\n".join(out)


def test_every_flag_in_the_docs_exists():
    helps = help_texts()
    flags = set()
    for doc in ("README.md", "CHEATSHEET.md", "exercises/README.md", *PAGES):
        flags |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", read(doc)))
    unknown = sorted(f for f in flags if not re.search(re.escape(f) + r"\b", helps))
    assert not unknown, f"flags named in the docs but in no --help: {unknown}"


def test_ci_runs_exactly_the_readme_test_command():
    ci = read(".ci/run")
    test_cmds = [c for c in bash_commands() if c.startswith("python -m pytest") and "tests/exercises" not in c]
    assert len(test_cmds) == 1, f"the README should give one full test command, found {test_cmds}"
    assert test_cmds[0] in bash_commands(text=section("README.md", CONTRIBUTORS)), \
        f"the full test command {test_cmds[0]!r} belongs in the README's section '{CONTRIBUTORS}'"
    ci_lines = [line.strip() for line in ci.splitlines() if "pytest" in line and not line.strip().startswith("#")]
    assert ci_lines == [test_cmds[0]], f".ci/run runs {ci_lines}, the README says {test_cmds[0]!r}"
    for req in ("requirements.txt", "requirements-dev.txt"):
        assert re.search(rf"pip install .*-r {re.escape(req)}", ci), f".ci/run should install -r {req}"
        assert any(c.endswith(f"pip install -r {req}") for c in bash_commands()), \
            f"the README should give `pip install -r {req}`, the command .ci/run runs"


def requirement_names(path):
    """The distribution names a requirements file lists (an `-r` include followed)."""
    names = set()
    for line in read(path).splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= requirement_names(str((ROOT / path).parent.relative_to(ROOT) / line[3:].strip()))
        elif line:
            names.add(re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower())
    return names


def test_a_learner_needs_no_test_only_tool():
    learner, dev = requirement_names("requirements.txt"), requirement_names("requirements-dev.txt")
    assert not learner & TEST_ONLY, f"requirements.txt lists test-only tools {sorted(learner & TEST_ONLY)}: " \
                                    "they belong in requirements-dev.txt"
    assert TEST_ONLY <= dev and learner <= dev, \
        f"requirements-dev.txt should add {sorted(TEST_ONLY)} to requirements.txt, it lists {sorted(dev)}"
    day1 = read("README.md").replace(section("README.md", CONTRIBUTORS), "")
    for cmd in bash_commands(text=day1):
        assert not re.search(r"(^|\s)-n(\s|$)|requirements-dev", cmd), \
            f"the README's learner command {cmd!r} needs pytest-xdist (-n); keep it to the contributors' section"
    checks = [b.strip() for b in bash_blocks(section("README.md", "Quick start")) if "pytest" in b]
    assert checks == ["python -m pytest tests/exercises"], \
        f"the quick start should end with the learner's check alone in its code block, found {checks}"


def _project_python_files():
    """The project's .py files: hidden folders (a learner's .venv), outputs and caches skipped."""
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in {"out", "plots", "__pycache__"}]
        yield from (Path(folder) / f for f in files if f.endswith(".py"))


def _third_party_imports():
    """Top-level modules imported anywhere in the project's Python files (functions included)
    that are neither the standard library nor the project's own, with a file importing each."""
    paths = list(_project_python_files())
    own = {p.stem for p in paths} | {p.parent.name for p in paths if p.name == "__init__.py"}
    found = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                mods = [node.module]
            else:
                continue
            for mod in mods:
                top = mod.split(".")[0]
                if top not in sys.stdlib_module_names and top not in own:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_import_is_a_requirement():
    if not hasattr(sys, "stdlib_module_names"):
        pytest.skip("needs Python 3.10 or newer (sys.stdlib_module_names) to tell the standard library apart")
    learner, dev = requirement_names("requirements.txt"), requirement_names("requirements-dev.txt")
    missing = {m: f for m, f in _third_party_imports().items() if m.lower() not in dev}
    assert not missing, f"imported but in neither requirements file (module: a file importing it): {missing}"
    for mod, where in _third_party_imports().items():
        if mod.lower() in dev - learner:
            assert where.startswith("tests/"), \
                f"{where} imports {mod}, a test-only tool (requirements-dev.txt): a learner's install lacks it"


def test_readme_is_the_day_one_page():
    text = read("README.md")
    words = len(text.split())
    assert words <= README_MAX_WORDS, (f"README.md has {words} words (wc -w), limit {README_MAX_WORDS}: "
                                       "move what is beyond Day 1 to a page in docs/ and link it")
    first = re.findall(r"^## (.+)$", text, flags=re.M)[0]
    assert first == "Day 1", f"README.md should open with its '## Day 1' path, not '## {first}'"
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)", section("README.md", "Going further")))
    assert linked, "the README's 'Going further' section links no page of docs/"
    reachable, todo = set(), sorted(linked)
    while todo:                                   # pages linked from the README, or from those
        page = todo.pop()
        if page in reachable or not (ROOT / page).exists():
            continue
        reachable.add(page)
        todo += [os.path.relpath(ROOT / "docs" / t, ROOT) for t in re.findall(r"\]\(([\w-]+\.md)", read(page))]
    orphans = sorted(set(PAGES) - reachable)
    assert not orphans, f"pages in docs/ that no link from the README's 'Going further' reaches: {orphans}"
    for page in PAGES:
        assert "](../README.md" in read(page), f"{page} should link back to the README (../README.md)"


def _runner(cmd, tmp, data):
    """How the test runs one README command: the command itself, made small."""
    argv = shlex.split(cmd)
    sub = {"out/": f"{tmp}/out/", "plots/": f"{tmp}/plots/", "data/tiny_shakespeare.txt": str(data)}
    if "data/war_and_peace.txt" in argv:
        sub["data/war_and_peace.txt"] = str(corpus_path("war_and_peace"))

    def fix(a):
        for k, v in sub.items():
            if a.startswith(k):
                return v + a[len(k):]
        return a
    argv = [fix(a) for a in argv]
    if argv[:2] == ["python", "train_minimal.py"] and "--ngram" in argv:
        small = ["--val-fraction", "0.01"] if "--dynamic" in argv else []   # --dynamic reads it 14 times or more
        return argv + ["--orders", "1-3", "--no-progress", *small]   # three orders are enough to check it runs
    if argv[:2] == ["python", "train_minimal.py"] and "--sample-only" not in argv:
        if "--out" not in argv:
            argv += ["--out", f"{tmp}/out"]
        return argv + ["--max-steps", "4", "--eval-every", "2", "--sample-every", "2", "--log-every", "1",
                       "--no-progress"]
    if argv[:2] == ["python", "tests/benchmarks/bench_speed.py"]:
        return argv + ["--quick", "--json", f"{tmp}/bench.json"]
    if argv[:3] == ["python", "-m", "data.download"]:
        return argv + ["--data-dir", f"{tmp}/data", "--no-progress"]
    if argv[:3] == ["python", "-m", "pytest"] and "tests/exercises" in argv:
        return argv + ["-q", "-p", "no:cacheprovider"]
    return argv


SETUP = ("python -m venv", "pip install -r requirements.txt", "pip install -r requirements-dev.txt")  # .ci/run
COVERED = {
    "python -m pytest --solutions -n auto": "the suite itself (.ci/run runs it)",
    "jupyter notebook notebook.ipynb": "tests/test_notebook.py executes the notebook",
    "python tests/test_notebook.py": "tests/test_notebook.py's slow test runs this command in-process",
}


def command_docs():
    """The README, then the pages of docs/ in the order its 'Going further' lists them: the order
    a reader runs their commands in (the n-gram page scores the training page's checkpoints)."""
    linked = re.findall(r"\]\((docs/[^)#\s]+\.md)", section("README.md", "Going further"))
    return ["README.md", *dict.fromkeys(p for p in linked + PAGES if p in PAGES)]


@pytest.mark.slow
def test_readme_commands_run(tmp_path):
    """Every command of the README and of the pages in docs/, made small."""
    data = corpus_path("tiny_shakespeare")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    ran = []
    for cmd in (c for doc in command_docs() for c in bash_commands(doc)):
        if cmd.startswith(SETUP) or any(part.strip().startswith(SETUP) for part in cmd.split("&&")):
            continue
        if cmd in COVERED:
            continue
        if cmd.startswith("python -m data.download") and not os.environ.get("RNN_DATA_MIRROR"):
            continue                                # would use the network; CI sets the mirror
        argv = _runner(cmd, tmp_path, data)
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, f"documented command failed: {cmd}\nran: {argv}\n{r.stderr[-2000:]}"
        ran.append(cmd)
    assert any("train_minimal.py" in c for c in ran) and any("visualization.py" in c for c in ran)
