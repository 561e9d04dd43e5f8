"""The written half of the tutorial, checked: links and file names exist, every
flag the docs name exists, every shell command in the README's code blocks runs
(on small settings), and CI runs exactly the README's test command."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from corpora import corpus_path

from helpers import REPO_ROOT as ROOT
DOCS = ["README.md", "CHEATSHEET.md", "paper_notes.md", "exercises/README.md", "data/README.md"]
# files the project writes or downloads: named in the docs, absent from a fresh clone
GENERATED = re.compile(r"^(out|plots)/|(^|/)(tiny_shakespeare|federalist|war_and_peace)\.txt$|^\.venv|\.npz$|log\.jsonl$|metrics\.json$")


def read(doc):
    return (ROOT / doc).read_text(encoding="utf-8")


def bash_commands(doc="README.md"):
    """Commands in ```bash blocks, one per line, comments dropped."""
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", read(doc), flags=re.S):
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
    for cmd in (["train_minimal.py"], ["visualization.py"], ["tests/benchmarks/bench_speed.py"],
                ["-m", "data.download"]):
        r = subprocess.run([sys.executable, *cmd, "--help"], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd} --help failed: {r.stderr}"
        out.append(r.stdout)
    out.append(read("tests/conftest.py"))                       # pytest's --solutions option
    return "\n".join(out)


def test_every_flag_in_the_docs_exists():
    helps = help_texts()
    flags = set()
    for doc in ("README.md", "CHEATSHEET.md", "exercises/README.md"):
        flags |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", read(doc)))
    unknown = sorted(f for f in flags if not re.search(re.escape(f) + r"\b", helps))
    assert not unknown, f"flags named in the docs but in no --help: {unknown}"


def test_ci_runs_exactly_the_readme_test_command():
    ci = read(".ci/run")
    test_cmds = [c for c in bash_commands() if c.startswith("python -m pytest") and "tests/exercises" not in c]
    assert len(test_cmds) == 1, f"the README should give one test command, found {test_cmds}"
    ci_lines = [line.strip() for line in ci.splitlines() if "pytest" in line and not line.strip().startswith("#")]
    assert ci_lines == [test_cmds[0]], f".ci/run runs {ci_lines}, the README says {test_cmds[0]!r}"
    assert "pip install" in ci and "-r requirements.txt" in ci


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
        return argv + ["--orders", "1-3", "--no-progress"]           # three orders are enough to check it runs
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


SETUP = ("python -m venv", "pip install -r requirements.txt")   # .ci/run does these (test above)
COVERED = {
    "python -m pytest --solutions -n auto": "the suite itself (.ci/run runs it)",
    "jupyter notebook notebook.ipynb": "tests/test_notebook.py executes the notebook",
}


@pytest.mark.slow
def test_readme_commands_run(tmp_path):
    data = corpus_path("tiny_shakespeare")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    ran = []
    for cmd in bash_commands():
        if cmd.startswith(SETUP) or any(part.strip().startswith(SETUP) for part in cmd.split("&&")):
            continue
        if cmd in COVERED:
            continue
        if cmd.startswith("python -m data.download") and not os.environ.get("RNN_DATA_MIRROR"):
            continue                                # would use the network; CI sets the mirror
        argv = _runner(cmd, tmp_path, data)
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, f"README command failed: {cmd}\nran: {argv}\n{r.stderr[-2000:]}"
        ran.append(cmd)
    assert any("train_minimal.py" in c for c in ran) and any("visualization.py" in c for c in ran)
