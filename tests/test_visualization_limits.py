"""visualization.py at the edges: outputs that are not files, texts far larger than the
figures read, vocabularies of 70,000 characters and of one, and texts too short.

Every case asserts what a user sees: the exit status, one line on stderr (never a
traceback), and that nothing that was there before changed and nothing was left
behind. Cases that could hang (a named pipe opened for writing) or use much memory run
visualization.py in a child with a timeout and a cap on its address space (RLIMIT_AS),
so a regression fails the test instead of the machine. The inputs are generated here
and small: a few MB at most.
"""

import json
import os
import random
import re
import warnings

import numpy as np
import pytest

import analysis
import implementation as rnn
import neuron_page
import visualization as viz
from helpers import run_script, small_rnn, snapshot, synthetic_text, write_run

MB = 1 << 20
PAGE = re.compile(r'<script type="application/json" id="neuron-data">(.*?)</script>', re.S)
ALL_FIGURES = sorted(viz.FIGURE_FILES + (viz.NGRAM_FIGURE_FILE,))
QUICK = ["--dpi", "20", "--chars", "20"]            # small pictures: these tests are about inputs


def one_line_error(code, err, status=2):
    assert code == status, f"expected exit status {status}, got {code}: {err!r}"
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, \
        f"the error must be one line starting with 'error: ', got {err!r}"


def page_json(path) -> dict:
    return json.loads(PAGE.search(path.read_text(encoding="utf-8")).group(1))


@pytest.fixture(scope="module")
def model():
    """An untrained model (16 units) for helpers.synthetic_text, which serves as its training text."""
    return small_rnn(synthetic_text(), hidden=16, init_scale=0.3, seed=4)


@pytest.fixture
def run(model, tmp_path):
    """visualization.py's arguments for `model`: its checkpoint and log in tmp_path/run, and --data."""
    folder = tmp_path / "run"
    folder.mkdir()
    argv = write_run(folder, model["params"], model["chars"])
    (folder / "train.txt").write_text(model["text"], encoding="utf-8")
    return argv + ["--data", str(folder / "train.txt")]


# -----------------------------------------------------------------------------
# Outputs: a name that is not a regular file is refused, before any work
# -----------------------------------------------------------------------------

def make_special(path, kind: str):
    """Put a `kind` of thing at `path`: a named pipe, a device, a link or a folder."""
    if kind == "named pipe (FIFO)":
        os.mkfifo(path)
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))          # a character device, like /dev/null
    elif kind == "symbolic link":
        os.symlink("/proc/self/fd/1", path)                           # what the rename would replace
    elif kind == "folder":
        os.mkdir(path)
    else:
        raise ValueError(kind)


SPECIAL = ["named pipe (FIFO)", "device", "symbolic link", "folder"]


@pytest.mark.parametrize("kind", SPECIAL)
def test_html_naming_a_special_file_is_refused_before_anything_is_read(tmp_path, kind):
    make_special(tmp_path / "page.html", kind)
    before = snapshot(tmp_path)
    # a checkpoint that does not exist: the refusal must come before it is looked for
    r = run_script(["visualization.py", "--checkpoint", tmp_path / "missing.npz", "--log", tmp_path / "no.jsonl",
                    "--out", tmp_path / "plots", "--html", tmp_path / "page.html"], timeout=120)
    one_line_error(r.returncode, r.stderr)
    assert r.stderr.startswith(f"error: --html: {tmp_path / 'page.html'} is a {kind}"), r.stderr
    assert snapshot(tmp_path) == before, f"--html naming a {kind}: something was changed or left behind"


def test_html_naming_a_link_to_a_regular_file_leaves_the_link_and_the_file(run, tmp_path, capsys):
    (tmp_path / "real.html").write_text("someone's page")
    os.symlink(tmp_path / "real.html", tmp_path / "page.html")
    before = snapshot(tmp_path)
    one_line_error(viz.main(run + ["--out", str(tmp_path / "plots"), "--html", str(tmp_path / "page.html")]),
                   capsys.readouterr().err)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flag", ["--checkpoint", "--log", "--data"])
def test_html_naming_an_input_file_is_refused(run, tmp_path, capsys, flag):
    target = run[run.index(flag) + 1]
    before = snapshot(tmp_path)
    code = viz.main(run + ["--out", str(tmp_path / "plots"), "--html", target])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert f"is the {flag} file" in err, err
    assert snapshot(tmp_path) == before, f"--html naming the {flag} file must leave it as it was"


def test_html_with_an_empty_name_is_refused(run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        viz.main(run + ["--out", str(tmp_path / "plots"), "--html", ""])
    err = capsys.readouterr().err
    one_line_error(e.value.code, err)
    assert "argument --html: needs a file path" in err
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize("kind", ["named pipe (FIFO)", "device", "symbolic link"])
def test_out_naming_something_other_than_a_folder_is_refused(tmp_path, kind):
    make_special(tmp_path / "plots", kind)
    before = snapshot(tmp_path)
    r = run_script(["visualization.py", "--checkpoint", tmp_path / "missing.npz", "--out", tmp_path / "plots"],
                   timeout=120)
    one_line_error(r.returncode, r.stderr)
    assert r.stderr.startswith(f"error: --out {tmp_path / 'plots'} is a") and "give a folder" in r.stderr, r.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", SPECIAL)
def test_a_figure_name_taken_by_a_special_file_is_refused_before_any_figure_is_drawn(tmp_path, kind):
    out = tmp_path / "plots"
    out.mkdir()
    for name in viz.FIGURE_FILES:
        (out / name).write_bytes(b"an earlier figure")
    (out / viz.FIGURE_FILES[2]).unlink()
    make_special(out / viz.FIGURE_FILES[2], kind)
    before = snapshot(tmp_path)
    r = run_script(["visualization.py", "--checkpoint", tmp_path / "missing.npz", "--out", out], timeout=120)
    one_line_error(r.returncode, r.stderr)
    assert f"{out / viz.FIGURE_FILES[2]} is a {kind}" in r.stderr, r.stderr
    assert snapshot(tmp_path) == before, "no figure may be written, replaced or left half-written"


# -----------------------------------------------------------------------------
# Texts far larger than the figures read
# -----------------------------------------------------------------------------

def test_a_long_single_line_is_read_only_as_far_as_the_figures_need(run, model, tmp_path, capsys, monkeypatch):
    r = random.Random(0)
    line = "".join(r.choice("the cat sat on a mat ") for _ in range(100_000)) * 30     # 3 MB, no newline
    (tmp_path / "line.txt").write_text(line)
    encoded = []
    encode = rnn.encode
    monkeypatch.setattr(rnn, "encode", lambda text, chars: encoded.append(len(text)) or encode(text, chars))
    code = viz.main(run + ["--text", str(tmp_path / "line.txt"), "--out", str(tmp_path / "plots")] + QUICK)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "plots")) == ALL_FIGURES
    assert f"the figures read its first {viz.TEXT_MAX_CHARS:,} of {len(line):,} characters" in out, out
    assert max(encoded) <= max(viz.TEXT_MAX_CHARS, len(model["text"])), (
        f"a text of {max(encoded):,} characters was read by the model; the figures need at most "
        f"{viz.TEXT_MAX_CHARS:,} (visualization.TEXT_MAX_CHARS)")


def test_millions_of_newlines_take_bounded_memory(run, tmp_path):
    (tmp_path / "newlines.txt").write_text("\n" * 4_000_000)
    out = tmp_path / "plots"
    r = run_script(["visualization.py", *run, "--text", tmp_path / "newlines.txt", "--out", out] + QUICK,
                   timeout=300, memory=512 * MB)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"the figures read its first {viz.TEXT_MAX_CHARS:,} of 4,000,000 characters" in r.stdout
    assert sorted(os.listdir(out)) == ALL_FIGURES, "every figure, and nothing else (no temporary file)"


def test_a_text_over_the_byte_limit_is_refused_in_one_line(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(viz, "MAX_TEXT_BYTES", 1_000_000)
    (tmp_path / "big.txt").write_text("the cat sat\n" * 200_000)                      # 2.4 MB
    before = snapshot(tmp_path)
    code = viz.main(run + ["--text", str(tmp_path / "big.txt"), "--out", str(tmp_path / "plots")])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "is 2.4 MB" in err and "at most 1 MB" in err, err
    assert snapshot(tmp_path) == before


def test_figure_9_is_left_out_for_a_training_text_over_its_limit(run, model, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(viz, "TRAIN_MAX_CHARS", 1000)
    code = viz.main(run + ["--out", str(tmp_path / "plots")] + QUICK)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(viz.FIGURE_FILES)
    assert "figure 9 not drawn: the training text has" in out and "more than the 1,000" in out, out


def test_a_training_text_outside_the_vocabulary_is_refused_before_any_figure(run, model, tmp_path, capsys):
    data = run[run.index("--data") + 1]
    with open(data, "w", encoding="utf-8") as f:
        f.write("Zebra\n" + model["text"])                        # Z: not in the model's vocabulary
    before = snapshot(tmp_path)
    code = viz.main(run + ["--out", str(tmp_path / "plots")] + QUICK)
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert "not in the vocabulary: 'Z'" in err, err
    assert snapshot(tmp_path) == before, "figure 9 needs the training text: checked before the first figure"


def test_a_two_character_text_is_one_line_saying_what_the_figures_need(run, tmp_path, capsys):
    (tmp_path / "two.txt").write_text("ab")
    before = snapshot(tmp_path)
    code = viz.main(run + ["--text", str(tmp_path / "two.txt"), "--out", str(tmp_path / "plots")])
    err = capsys.readouterr().err
    one_line_error(code, err)
    assert f"the text has 2 characters; the figures need at least {viz.MIN_TEXT_CHARS}" in err, err
    assert snapshot(tmp_path) == before


# -----------------------------------------------------------------------------
# Vocabularies: 70,000 characters, and one to four
# -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def huge_vocabulary(tmp_path_factory):
    """A 4-unit model over 70,000 characters (most of them CJK ideographs) and a 25,000-character text."""
    folder = tmp_path_factory.mktemp("huge_vocabulary")
    letters = "abcdefghij \n"
    chars = sorted(set(letters) | {chr(0x20000 + i) for i in range(70_000 - len(letters))})
    params = rnn.init_params(len(chars), 4, np.random.default_rng(0), np.float32, 0.5)
    r = random.Random(0)
    text = "".join(r.choice(letters) for _ in range(25_000))
    return {"folder": folder, "argv": write_run(folder, params, chars, text), "chars": chars}


def test_a_vocabulary_of_70000_characters_draws_everything_in_bounded_memory(huge_vocabulary, tmp_path):
    out, page = tmp_path / "plots", tmp_path / "page.html"
    r = run_script(["visualization.py", *huge_vocabulary["argv"], "--out", out, "--html", page] + QUICK,
                   timeout=300, memory=1024 * MB)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert sorted(os.listdir(out)) == sorted(viz.FIGURE_FILES)
    data = page_json(page)
    limit = analysis.max_table_chars(70_000)
    assert len(data["text"]) == limit == analysis.TABLE_MAX_ENTRIES // 70_000, \
        "the page reads as many characters as one table of TABLE_MAX_ENTRIES probabilities holds"
    assert len(data["chars"]) == 70_000 and np.shape(data["top_ids"]) == (limit, 5)


def test_a_window_too_long_for_a_huge_vocabulary_is_one_line(huge_vocabulary, tmp_path):
    before = snapshot(huge_vocabulary["folder"])
    r = run_script(["visualization.py", *huge_vocabulary["argv"], "--out", tmp_path / "plots", "--chars", "1000"],
                   timeout=300, memory=1024 * MB)
    one_line_error(r.returncode, r.stderr)
    limit = analysis.max_table_chars(70_000)
    assert "--chars 1000: with a vocabulary of 70,000 characters" in r.stderr, r.stderr
    assert f"pass --chars {limit} or fewer" in r.stderr, r.stderr
    assert not (tmp_path / "plots").exists() and snapshot(huge_vocabulary["folder"]) == before


@pytest.mark.parametrize("alphabet", ["a", "ab\n", "abcd"], ids=["V=1", "V=3", "V=4 without newline"])
def test_a_tiny_vocabulary_draws_every_figure_and_the_page(tmp_path, capsys, alphabet):
    r = random.Random(1)
    text = "".join(r.choice(alphabet) for _ in range(400))
    m = small_rnn(text, hidden=8, init_scale=0.5, seed=2)
    argv = write_run(tmp_path, m["params"], m["chars"], text)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # a figure that cannot lay itself out fails here
        code = viz.main(argv + ["--out", str(tmp_path / "plots"), "--html", str(tmp_path / "page.html")] + QUICK)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert sorted(os.listdir(tmp_path / "plots")) == sorted(viz.FIGURE_FILES)
    data = page_json(tmp_path / "page.html")
    V = len(alphabet)
    assert data["k"] == min(neuron_page.TOP_K, V) and np.shape(data["top_ids"]) == (len(data["text"]), data["k"])
    start = viz._line_start(text)
    assert data["text"] == text[start:start + neuron_page.MAX_CHARS]
