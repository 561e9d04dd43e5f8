"""Every exercise script and solution bounds what it is asked to do.

A size past a flag's limit (a hidden state of 100,000, a window of ten million
characters, a sample of 10^8), a --plot that names a folder, a device or an
unknown format, more folds than papers, papers cut to nothing: one line
"error: ...", exit status 2, the limit stated in the flag's help, before any
work. A text too large, or with 70,000 distinct characters, is refused the same
way; a long single line within the limit runs in bounded memory and time. A
full disk while exercise 4 saves its figure leaves the previous figure as it
was and no temporary file.

These run every stub and every solution (their main() is the same code), so
they live outside tests/exercises: the learner's check stays quick.
"""

import os
import random
import re
import stat
import subprocess
import sys

import pytest

from helpers import EXERCISES, changed_since, load_module, snapshot

NUMBERS = sorted(EXERCISES)
PATHS = [(n, kind) for n in NUMBERS for kind in ("stub", "solution")]
MB = 1_000_000


def script(n, kind):
    ex = EXERCISES[n]
    return ex.stub_path if kind == "stub" else ex.solution_path


_modules = {}


def module(n, kind):
    path = script(n, kind)
    if path not in _modules:
        _modules[path] = load_module(path, f"_limits_{path.stem}")
    return _modules[path]


def run_main(n, kind, argv, capsys):
    """(exit status, stdout, stderr) of the script's main(argv), in this process."""
    try:
        code = module(n, kind).main([str(a) for a in argv])
    except SystemExit as e:                                        # argparse: --help, or a bad flag
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_exit_2(code, err, word, call):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and word in lines[0], \
        f"{call}: expected one line 'error: ...' naming {word!r} and exit status 2; got exit {code}, stderr {err!r}"


# -----------------------------------------------------------------------------
# Sizes past a flag's limit
# -----------------------------------------------------------------------------

# (exercise, flag, a value past its limit, the range its help states)
FLAG_LIMITS = [
    (1, "--hidden-size", "100000", "1 to 512"), (1, "--hidden-size", "1e9", "1 to 512"),
    (1, "--seq-length", "10000000", "1 to 100"), (1, "--iterations", "1000000000", "1 to 100,000"),
    (2, "--hidden-size", "100000", "1 to 512"), (2, "--hidden-size", "1000000000", "1 to 512"),
    (2, "--chars", "1e9", "1 to 20,000"), (2, "--chars", "1000000000", "1 to 20,000"),
    (2, "--steps", "10000000000", "1 to 1,000,000"),
    (3, "--hidden-size", "100000", "1 to 512"), (3, "--seq-length", "10000000", "1 to 256"),
    (3, "--batch-size", "100000", "1 to 128"), (3, "--sample-chars", "1e8", "1 to 100,000"),
    (3, "--sample-chars", "100000000", "1 to 100,000"), (3, "--steps", "10000000000", "1 to 1,000,000"),
    (4, "--hidden-size", "100000", "1 to 512"), (4, "--chars", "1e9", "1 to 100,000"),
    (4, "--chars", "1000000000", "1 to 100,000"), (4, "--steps", "10000000000", "1 to 1,000,000"),
    (5, "--hidden-size", "100000", "1 to 512"), (5, "--folds", "1000000", "2 to 14"),
    (5, "--max-chars", "1", "200 or more"), (5, "--base-steps", "10000000000", "1 to 1,000,000"),
    (5, "--finetune-steps", "10000000000", "1 to 1,000,000"),
]


def flag_help(n, kind, flag, capsys):
    """The help text of one flag, on one line."""
    code, out, _ = run_main(n, kind, ["--help"], capsys)
    assert code == 0
    text = " ".join(out.split("options:", 1)[-1].split())         # the flags' help, after the usage lines
    match = re.search(rf"{re.escape(flag)} [A-Z_]+ (.*?)(?= --[a-z]|$)", text)
    assert match, f"exercise {n}: {flag} not in --help"
    return match.group(1)


@pytest.mark.parametrize("kind", ["stub", "solution"])
@pytest.mark.parametrize("n,flag,value,stated", FLAG_LIMITS, ids=[f"{n} {f} {v}" for n, f, v, _ in FLAG_LIMITS])
def test_a_size_past_its_limit_is_one_line(n, flag, value, stated, kind, capsys):
    code, out, err = run_main(n, kind, [flag, value], capsys)
    assert_one_line_exit_2(code, err, flag, f"{script(n, kind).name} {flag} {value}")
    assert not out, "refused before doing anything"
    assert stated in flag_help(n, kind, flag, capsys), f"exercise {n}: the help of {flag} should state {stated!r}"


@pytest.mark.parametrize("kind", ["stub", "solution"])
def test_too_many_temperatures_are_one_line(kind, capsys):
    code, _, err = run_main(2, kind, ["--temperatures", *["1"] * 21], capsys)
    assert_one_line_exit_2(code, err, "--temperatures", "--temperatures with 21 values")
    assert "1 to 20" in flag_help(2, kind, "--temperatures", capsys)


# -----------------------------------------------------------------------------
# Exercise 4's --plot: only a new or regular .png/.pdf/.svg file, written in one rename
# -----------------------------------------------------------------------------

def plot_targets(tmp):
    """(name, --plot value, what must stay true afterwards) for names that must be refused."""
    (tmp / "folder.png").mkdir()
    os.mkfifo(tmp / "fifo.png")
    (tmp / "real.png").write_bytes(b"the figure a link points to")
    (tmp / "link.png").symlink_to(tmp / "real.png")
    (tmp / "a_file").write_bytes(b"not a folder")
    cases = [
        ("a folder", tmp / "folder.png", lambda: not any((tmp / "folder.png").iterdir())),
        ("an unknown format", tmp / "curves.gif", lambda: not (tmp / "curves.gif").exists()),
        ("a FIFO", tmp / "fifo.png", lambda: stat.S_ISFIFO(os.lstat(tmp / "fifo.png").st_mode)),
        ("a symbolic link", tmp / "link.png",
         lambda: (tmp / "link.png").is_symlink() and (tmp / "real.png").read_bytes() == b"the figure a link points to"),
        ("inside a file", tmp / "a_file" / "curves.png", lambda: (tmp / "a_file").read_bytes() == b"not a folder"),
    ]
    if os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode):
        cases.append(("a device", "/dev/null", lambda: stat.S_ISCHR(os.stat("/dev/null").st_mode)))
    return cases


@pytest.mark.parametrize("kind", ["stub", "solution"])
def test_plot_names_that_are_refused(kind, tmp_path, capsys):
    cases = plot_targets(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for what, target, unchanged in cases:
        code, out, err = run_main(4, kind, ["--plot", target], capsys)
        assert_one_line_exit_2(code, err, "--plot", f"--plot naming {what} ({target})")
        assert not out and unchanged(), f"--plot naming {what}: refused before training, and nothing changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing left behind"
    assert ".png, .pdf or .svg" in flag_help(4, kind, "--plot", capsys)


# -----------------------------------------------------------------------------
# Child processes with bounded memory (RLIMIT_AS) and time; what they write
# -----------------------------------------------------------------------------

CHILD = """
import resource, runpy, signal, sys
memory, file_size, report = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sys.argv = sys.argv[4:]
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
if file_size:                                   # a full disk, as far as this process can tell
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    with open(report, "w") as f:
        f.write(str(int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM'))) * 1024))
"""
MEMORY_LIMIT = 2_000_000_000            # address space: a script that tried to allocate GBs fails in it
PEAK_LIMIT = 600 * MB                   # resident memory the runs below stay under (they peak near 300 MB)


def run_bounded(path, args, cwd, file_size=0, timeout=120):
    """(exit status, stdout, stderr, peak resident bytes) of `python path args` in a child whose address
    space is MEMORY_LIMIT bytes (and files at most file_size bytes, if given); fails if it runs past timeout."""
    report = cwd / ".peak"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(MEMORY_LIMIT), str(file_size), str(report),
                             str(path), *map(str, args)], cwd=cwd, text=True, env={**os.environ, "MPLBACKEND": "Agg"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{path.name} {' '.join(map(str, args))}: still running after {timeout} s", pytrace=False)
    peak = int(report.read_text()) if report.exists() else None
    report.unlink(missing_ok=True)
    return proc.returncode, out, err, peak


def vocabulary_text(distinct=70_000):
    """One line holding `distinct` different characters (code points from U+0021 on, no surrogates)."""
    codes = [c for c in range(0x21, 0x21 + distinct + 0x800) if not 0xD800 <= c <= 0xDFFF][:distinct]
    return "".join(map(chr, codes)) + "\n"


def federalist_like(body_chars):
    """A text parse_federalist accepts: 85 headed papers, the characters of `body_chars` dealt among them."""
    per = -(-len(body_chars) // 85)
    papers = [f"FEDERALIST No. {n}\n\nTo the People of the State of New York:\n\n"
              f"{body_chars[(n - 1) * per:n * per]} words\n\nPUBLIUS\n\n" for n in range(1, 86)]
    return "*** START OF THIS BOOK ***\n" + "".join(papers) + "*** END OF THIS BOOK ***\n"


def one_long_line(size, seed=0):
    """`size` characters of words and spaces, no newline at all."""
    r = random.Random(seed)
    words = "the of and to a in that is was he for it with as his on be at by i this had not are but from".split()
    return " ".join(r.choice(words) for _ in range(size // 3))[:size]


# (exercise, arguments after --data: small settings, so only the text's size matters)
SMALL_RUNS = {2: ["--steps", "2", "--hidden-size", "16", "--chars", "200"],
              3: ["--steps", "2", "--hidden-size", "16", "--sample-chars", "200", "--batch-size", "8"],
              4: ["--steps", "2", "--hidden-size", "16", "--plot", ""],
              5: ["--hidden-size", "8", "--base-steps", "2", "--finetune-steps", "2", "--folds", "2"]}


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_seventy_thousand_distinct_characters_are_refused_in_one_line(n, tmp_path):
    text = vocabulary_text()
    (tmp_path / "vocab.txt").write_text(federalist_like(text) if n == 5 else text, encoding="utf-8")
    before = snapshot(tmp_path)
    args = ["--data", "vocab.txt", *SMALL_RUNS[n]] + (["--chars", "100000"] if n == 4 else [])
    code, out, err, peak = run_bounded(EXERCISES[n].solution_path, args, tmp_path)
    assert_one_line_exit_2(code, err, "distinct characters", f"exercise {n} on 70,000 distinct characters")
    assert "1,000" in err and peak < PEAK_LIMIT, f"the limit is stated ({err!r}); peak memory {peak / MB:.0f} MB"
    assert not changed_since(before, tmp_path), f"changed or left behind: {changed_since(before, tmp_path)}"


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_a_text_past_the_size_limit_is_refused_before_reading(n, tmp_path):
    with open(tmp_path / "big.txt", "wb") as f:
        f.truncate(50 * MB)                                        # 50 MB on paper, no disk used (sparse)
    code, out, err, peak = run_bounded(EXERCISES[n].solution_path, ["--data", "big.txt", *SMALL_RUNS[n]], tmp_path)
    assert_one_line_exit_2(code, err, "50.0 MB", f"exercise {n} on a 50 MB file")
    assert "at most 5 MB" in err and peak < PEAK_LIMIT, f"{err!r}; peak memory {peak / MB:.0f} MB"


@pytest.mark.parametrize("n", [2, 3])
def test_a_long_single_line_runs_in_bounded_memory(n, tmp_path):
    """A text just under the 5 MB limit, all on one line: the word measures and the training stay bounded."""
    (tmp_path / "line.txt").write_text(one_long_line(4_900_000), encoding="utf-8")
    before = snapshot(tmp_path)
    code, out, err, peak = run_bounded(EXERCISES[n].solution_path, ["--data", "line.txt", *SMALL_RUNS[n]], tmp_path)
    assert code == 0 and not err, f"exercise {n} on a 4.9 MB line: exit {code}, stderr {err[-600:]!r}"
    assert peak < PEAK_LIMIT, f"exercise {n} on a 4.9 MB line peaked at {peak / MB:.0f} MB"
    assert not changed_since(before, tmp_path), f"changed or left behind: {changed_since(before, tmp_path)}"


def test_exercise_5_at_its_limits_still_runs(tmp_path, federalist_path):
    """The smallest papers (--max-chars 200) and the most folds (14) are allowed, and they work."""
    code, out, err, _ = run_bounded(EXERCISES[5].solution_path, ["--data", federalist_path, "--max-chars", "200",
                                                                 *SMALL_RUNS[5][:-1], "14"], tmp_path)
    assert code == 0 and not err and "14-fold cross-validation" in out, f"exit {code}, stderr {err[-600:]!r}"


# -----------------------------------------------------------------------------
# A full disk while exercise 4 saves its figure
# -----------------------------------------------------------------------------

@pytest.mark.parametrize("existing", [True, False], ids=["over an old figure", "a new figure"])
def test_a_full_disk_leaves_the_old_figure_and_no_temporary_file(existing, tmp_path):
    import matplotlib.font_manager  # noqa: F401  (its cache is written here, not in the child, whose files are capped)

    (tmp_path / "text.txt").write_text("to be or not to be, that is the question. " * 70, encoding="utf-8")
    old = b"\x89PNG\r\n\x1a\n an older figure"
    if existing:
        (tmp_path / "curves.png").write_bytes(old)
    before = snapshot(tmp_path)
    args = ["--data", "text.txt", "--chars", "2500", "--hidden-size", "16", "--steps", "3", "--eval-every", "1",
            "--plot", "curves.png"]
    code, out, err, _ = run_bounded(EXERCISES[4].solution_path, args, tmp_path, file_size=4096)
    assert "validation stops improving" in out, f"the run should get as far as the figure: {err[-600:]!r}"
    assert_one_line_exit_2(code, err, "File too large", "exercise 4 saving its figure on a full disk")
    assert not changed_since(before, tmp_path), f"changed or left behind: {changed_since(before, tmp_path)}"
    assert not existing or (tmp_path / "curves.png").read_bytes() == old
