"""Exercise 3: a pipeline for your own text.

The measures are checked on small strings with known answers, the training
against implementation.Trainer run with the same settings, and the whole
pipeline on a small code-like corpus where a tiny model must show more
structure than shuffled text.
"""

import math
import re

import numpy as np
import pytest

import implementation as rnn
from visualization import real_word_share, words
from .exercise_checks import check_close, fail, needs, run_main


def code_corpus(n_blocks=120, seed=0):
    """Python-like text with 4-space indentation and balanced brackets."""
    rng = np.random.default_rng(seed)
    names = ["alpha", "beta", "gamma", "delta", "theta", "kappa"]
    blocks = []
    for _ in range(n_blocks):
        a, b, c = rng.choice(names, 3)
        blocks.append(f"def {a}_{b}(x, y):\n    if x[{rng.integers(9)}]:\n        return {c}(x, [y])\n"
                      f"    return {{'{a}': ({b}(y), x)}}\n")
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def trained(ex):
    text = code_corpus()
    run = ex.train_on_text(text, hidden_size=32, seq_length=32, batch_size=8, steps=300,
                           learning_rate=1e-2, seed=0)
    return text, run


# ----------------------------------------------------------------------------- collecting the corpus

def test_collect_source_walks_sorted_and_skips_hidden(ex, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n", encoding="utf-8")
    (tmp_path / "sub" / "b.py").write_text("def f():\n    return 2\n", encoding="utf-8")
    (tmp_path / ".hidden" / "c.py").write_text("hidden = True\n", encoding="utf-8")
    (tmp_path / "__pycache__" / "d.py").write_text("cached = True\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not python\n", encoding="utf-8")
    (tmp_path / "bad.py").write_bytes(b"caf\xe9 = 1\n")               # Latin-1, not UTF-8
    got = ex.collect_source(tmp_path)
    want = "# file: a.py\nx = 1\n\n\n# file: sub/b.py\ndef f():\n    return 2\n"
    if got != want:
        fail(f"collect_source on a folder with a.py, sub/b.py, .hidden/c.py, __pycache__/d.py, notes.txt "
             f"and a non-UTF-8 bad.py:\n  yours:    {got!r}\n  expected: {want!r}\n"
             f"  (sorted relative paths; skip folders starting with '.' and __pycache__, and files that are "
             f"not UTF-8; each file is '# file: <path>\\n' + text; pieces joined with '\\n\\n')")


def test_collect_source_default_corpus_is_this_repository(ex):
    text = ex.collect_source(ex.REPO_ROOT)
    if "# file: implementation.py\n" not in text or "def loss_and_grads(" not in text:
        fail("collect_source(REPO_ROOT) should contain implementation.py, headed '# file: implementation.py'")
    headers = re.findall(r"^# file: (.+)$", text, flags=re.M)
    hidden = [h for h in headers if any(p.startswith(".") or p == "__pycache__" for p in h.split("/")[:-1])]
    if hidden:
        fail(f"collect_source(REPO_ROOT) must skip hidden folders and __pycache__, but read {hidden[:3]}")
    if headers != sorted(headers) or not all((ex.REPO_ROOT / h).is_file() for h in headers):
        fail("collect_source(REPO_ROOT): files must come in sorted order of their relative paths")


# ----------------------------------------------------------------------------- baselines

def test_shuffle_characters_keeps_the_letters(ex):
    text = code_corpus(20)
    a = ex.shuffle_characters(text, np.random.default_rng(1))
    b = ex.shuffle_characters(text, np.random.default_rng(1))
    if not isinstance(a, str) or sorted(a) != sorted(text):
        fail("shuffle_characters must return a str with exactly the same characters (same counts)")
    if a == text:
        fail("shuffle_characters returned the text unchanged")
    if a != b:
        fail("shuffle_characters must use the given rng: the same seed must give the same shuffle")


@pytest.mark.parametrize("text,want", [("aabb", math.log(2)), ("aaaa", 0.0), ("abcd", math.log(4)),
                                       ("aaab", -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))])
def test_unigram_entropy_exact(ex, text, want):
    got = ex.unigram_entropy(text)
    if want > 0 and np.isclose(got, want / math.log(2)):
        fail(f"unigram_entropy({text!r}) = {got:.6g} is in bits; use the natural log (nats): {want:.6g}")
    check_close(got, want, f"unigram_entropy({text!r})",
                hint="-sum_c f_c ln f_c over the character frequencies f_c, natural log", rtol=1e-9)


# ----------------------------------------------------------------------------- measures

def test_balanced_bracket_share_exact(ex):
    cases = [("f(x)\ng[1]\nh(]\nno brackets here\n(()", 0.5),
             ("{[()]}\n([)]\n)(", 1 / 3),
             ("print('(')", 0.0),                                     # brackets in strings count too
             ("x = 1\ny = 2", math.nan)]
    for text, want in cases:
        got = ex.balanced_bracket_share(text)
        if math.isnan(want):
            if not (isinstance(got, float) and math.isnan(got)):
                fail(f"balanced_bracket_share({text!r}) = {got!r}: with no bracket at all return nan")
            continue
        check_close(got, want, f"balanced_bracket_share({text!r})",
                    hint="count only lines with a bracket; use a stack: every closing bracket must close "
                         "the most recent open one of its kind, and nothing may stay open", rtol=1e-9)


def test_indent_share_exact(ex):
    text = "def f():\n    x = 1\n  y\n        z\n   \nw"
    check_close(ex.indent_share(text), 2 / 3, f"indent_share({text!r})",
                hint="indented lines start with a space and have text after it; blank lines do not count",
                rtol=1e-9)
    check_close(ex.indent_share(text, 2), 1.0, f"indent_share({text!r}, unit=2)", rtol=1e-9)
    got = ex.indent_share("no\nindent")
    if not (isinstance(got, float) and math.isnan(got)):
        fail(f"indent_share('no\\nindent') = {got!r}: with no indented line return nan")


def test_known_word_share_exact(ex):
    train = "def train_on_text(text): return evaluate(params) # don't"
    cases = [("return the text.", 2 / 3),       # 'the' is not in the training text
             ("RETURN params!", 1.0),
             ("xyz evaluate ", 0.5),
             ("a b c in on xyz.", 0.0),         # only 'xyz' has 3+ letters, and it is unknown
             ("return the tex", 0.5),           # cut off inside its last word: "tex" is left out
             ("don't dont.", 0.5)]              # an inner apostrophe belongs to the word
    for gen, want in cases:
        check_close(ex.known_word_share(gen, train), want, f"known_word_share({gen!r}, {train!r})",
                    hint="exercise 2's measure (words(text), the last word left out when the text ends inside "
                         "it), counting only words of min_length=3 or more characters", rtol=1e-9)
    got = ex.known_word_share("a b in on.", train)
    if not (isinstance(got, float) and math.isnan(got)):
        fail(f"known_word_share('a b in on.', ...) = {got!r}: no word of 3+ letters is left, so the share is "
             f"undefined: return math.nan")


def test_known_word_share_with_min_length_1_is_real_word_share(ex, trained):
    """With min_length=1 yours is visualization.real_word_share, on pieces of the corpus cut anywhere."""
    text, _ = trained
    vocabulary = set(words(text))
    rng = np.random.default_rng(2)
    for start in rng.integers(0, len(text) - 100, 30):
        piece = text[start:start + int(rng.integers(1, 100))]
        check_close(ex.known_word_share(piece, text, min_length=1), real_word_share(piece, vocabulary)[0],
                    f"known_word_share({piece!r}, corpus, min_length=1) vs visualization.real_word_share",
                    rtol=1e-12)


# ----------------------------------------------------------------------------- training and report

def test_train_on_text_uses_the_module_trainer(ex):
    text = code_corpus(30)
    run = ex.train_on_text(text, hidden_size=12, seq_length=16, batch_size=4, steps=25,
                           learning_rate=5e-3, seed=3, val_fraction=0.2)
    keys = {"params", "chars", "train_loss", "val_nats"}
    if not keys <= set(run):
        fail(f"train_on_text must return a dict with keys {sorted(keys)}, got {sorted(run)}")
    rng = np.random.default_rng(3)
    chars = rnn.build_vocab(text)
    train_ids, val_ids = rnn.train_val_split(rnn.encode(text, chars), 0.2)
    params = rnn.init_params(len(chars), 12, rng, dtype=np.float32)
    trainer = rnn.Trainer(params, train_ids, batch_size=4, seq_length=16, learning_rate=5e-3, optimizer="adam")
    losses = [trainer.step() for _ in range(25)]
    if list(run["chars"]) != chars:
        fail("train_on_text: chars must be build_vocab(text)")
    if run["params"]["Wxh"].dtype != np.float32:
        fail(f"train_on_text: train float32 weights (init_params(..., dtype=np.float32)), "
             f"got {run['params']['Wxh'].dtype}")
    check_close(run["train_loss"], losses, "train_on_text: per-step losses vs implementation.Trainer "
                "with the same settings (seed 3, Adam, float32)", rtol=1e-4,
                hint="np.random.default_rng(seed) -> init_params -> Trainer(..., optimizer='adam'); "
                     "one trainer.step() per step, keeping the per-character loss it returns")
    check_close(run["val_nats"], rnn.evaluate(params, val_ids)["nats"], "train_on_text: val_nats",
                hint="implementation.evaluate(params, val_ids)['nats'] on the held-out last val_fraction",
                rtol=1e-4)


def test_domain_report_structure(ex, trained):
    text, run = trained
    rep = ex.domain_report(run["params"], run["chars"], text, 600, 0.8, np.random.default_rng(0))
    for part in ("training", "model", "shuffled"):
        if part not in rep or set(rep[part]) != {"balanced_brackets", "indent_multiple_of_4", "known_words"}:
            fail(f"domain_report: rep[{part!r}] must hold balanced_brackets, indent_multiple_of_4, known_words")
    if rep["shuffled"] == rep["training"] or rep["shuffled"]["indent_multiple_of_4"] > 0.5:
        fail(f"domain_report: the shuffled column {rep['shuffled']} looks like the real text's "
             f"{rep['training']}: measure the first n_chars of shuffle_characters(training_text, rng)")
    if len(rep["sample"]) != 600:
        fail(f"domain_report: the sample must have n_chars=600 characters, got {len(rep['sample'])}")
    for key, f in (("balanced_brackets", ex.balanced_bracket_share),
                   ("known_words", lambda t: ex.known_word_share(t, text)),
                   ("indent_multiple_of_4", lambda t: ex.indent_share(t, 4))):
        check_close(rep["training"][key], f(text), f"domain_report: training[{key!r}]")
        check_close(rep["model"][key], f(rep["sample"]), f"domain_report: model[{key!r}] of its own sample")


def test_model_shows_more_structure_than_shuffled_text(ex, trained):
    text, run = trained
    rep = ex.domain_report(run["params"], run["chars"], text, 1500, 0.7, np.random.default_rng(1))
    m, s = rep["model"], rep["shuffled"]
    if not m["indent_multiple_of_4"] > s["indent_multiple_of_4"] + 0.3:
        fail(f"after 300 steps on 4-space-indented code the model's indentation share should beat "
             f"shuffled text clearly: model {m['indent_multiple_of_4']:.2f}, shuffled {s['indent_multiple_of_4']:.2f}")
    if not m["balanced_brackets"] > s["balanced_brackets"] + 0.2:
        fail(f"the model should balance brackets more often than shuffled text: "
             f"model {m['balanced_brackets']:.2f}, shuffled {s['balanced_brackets']:.2f}")


def test_model_beats_the_unigram_entropy(ex, trained):
    text, run = trained
    if not run["val_nats"] < ex.unigram_entropy(text) - 0.5:
        fail(f"validation loss {run['val_nats']:.3f} should be well below the unigram entropy "
             f"{ex.unigram_entropy(text):.3f}: the model has learned nothing beyond letter frequencies")


def test_main_on_the_default_corpus(ex, capsys):
    needs(ex, *ex.CORE)                                            # main() stops at the first one not written yet
    out = run_main(ex, ["--steps", "5", "--hidden-size", "16", "--sample-chars", "300", "--batch-size", "8"], capsys)
    for needle in ("corpus:", "unigram entropy", "--- sample at temperature"):
        if needle not in out:
            fail(f"main() should print the corpus, the losses and a sample; {needle!r} is missing from:\n{out}")


def test_main_with_the_stretch_part_prints_the_measures(ex, capsys):
    needs(ex, *ex.CORE, *ex.STRETCH)
    out = run_main(ex, ["--steps", "5", "--hidden-size", "16", "--sample-chars", "300", "--batch-size", "8"], capsys)
    for needle in ("balanced_brackets", "indent_multiple_of_4", "shuffled text"):
        if needle not in out:
            fail(f"main() should print the table of measures; {needle!r} is missing from:\n{out}")


def test_main_on_any_text(ex, tmp_path, capsys):
    needs(ex, *ex.CORE, *ex.STRETCH)
    path = tmp_path / "prose.txt"
    path.write_text("It was the best of times, it was the worst of times. " * 80, encoding="utf-8")
    out = run_main(ex, ["--data", str(path), "--steps", "10", "--hidden-size", "8", "--sample-chars", "200",
             "--batch-size", "8", "--seq-length", "16"], capsys)
    if "n/a" not in out:
        fail("main() on prose should print n/a for the code measures that have nothing to count")
