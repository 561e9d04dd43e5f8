"""Exercise 3: train on your own data.

A pipeline that takes any UTF-8 text, trains a char-RNN on it and reports what
the model learned that is specific to the domain. The default corpus needs no
download: this repository's own Python source, every *.py file concatenated,
like the post's Linux-source experiment.

The exercise (about 25 minutes): collect the corpus, train on it, and compare
the model's validation loss with the unigram entropy of the text, the best
loss possible without any context (all that shuffled text allows):

    collect_source, unigram_entropy, train_on_text

Stretch (optional, about 25 minutes): is the structure in the samples learned,
or would any text with the same characters show it? Three measures, each taken
on the training text (the real thing), on the model's sample, and on the
training text with its characters shuffled (same letters, same frequencies, no
structure):

    balanced_brackets     share of lines with brackets whose ( ) [ ] { } all match
    indent_multiple_of_4  share of indented lines indented by a multiple of 4 spaces
    known_words           share of the sample's words (3+ letters) that occur in the training text

(shuffle_characters, balanced_bracket_share, indent_share, known_word_share,
domain_report). With --data federalist.txt the code measures have nothing to
count (no brackets, no indentation) and the words carry the story.

Replace each `raise NotImplementedError(...)` with your code; import what you need from
implementation.py (already imported below), never re-implement it.

Check your version:  python -m pytest tests/exercises/test_exercise_03_own_data.py
Stuck?               exercises/HINTS.md, exercise 3 (then exercises/solutions/)
Run this file:       python exercises/exercise_03_own_data.py [--data any.txt]   (trains for about half a minute)
"""

import argparse
import math
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the repo root, so `import implementation` works from any directory

import numpy as np  # noqa: E402

from implementation import (Trainer, build_vocab, encode, evaluate, init_params,  # noqa: E402
                            sample_text, train_val_split)
from safeio import read_text  # noqa: E402
from analysis import words  # noqa: E402
from cli import (ArgumentParser, UserError, integer, number, one_line_errors, read_data, not_written_yet,  # noqa: E402
                setup_numpy, write_next)


def collect_source(root, pattern="*.py"):
    """Concatenate every file under `root` matching `pattern` into one training text.

    root: a folder (str or Path). Walks it recursively, skipping folders whose
    name starts with "." (.git, .venv, ...) and __pycache__, in sorted order of
    the relative paths (the same files always give the same text). Each file
    becomes "# file: <relative/path>\\n" + its text (read with
    safeio.read_text; files that are not UTF-8 are skipped), and the
    pieces are joined with "\\n\\n". Returns the text (str).
    """
    # ---- your code here: Path(root).rglob(pattern), sorted; skip what the docstring says ----
    raise NotImplementedError("exercise 3: collect_source — see HINTS.md, exercise 3")


def unigram_entropy(text):
    """Entropy of the character frequencies of `text`, in nats per character.

    -sum_c f_c ln f_c with f_c the share of character c. This is the lowest
    cross-entropy a model that ignores context can reach on this text, and all
    a model can learn from shuffled text.
    """
    # ---- your code here: character counts -> frequencies -> entropy ----
    raise NotImplementedError("exercise 3: unigram_entropy — see HINTS.md, exercise 3")


def train_on_text(text, hidden_size=128, seq_length=64, batch_size=32, steps=3000,
                  learning_rate=3e-3, seed=0, val_fraction=0.1):
    """Train a char-RNN on `text` with implementation.Trainer (float32 weights, Adam).

    The vocabulary is build_vocab(text); the last val_fraction of the text is
    held out (train_val_split). Weights come from init_params with
    np.random.default_rng(seed).
    Returns a dict:
        "params"      the trained weights (Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1))
        "chars"       the vocabulary, a list of V characters
        "train_loss"  (steps,) array, the per-character loss of every step
        "val_nats"    validation cross-entropy in nats per character (implementation.evaluate)
    """
    # ---- your code here: vocabulary, split, init_params, Trainer, evaluate ----
    raise NotImplementedError("exercise 3: train_on_text — see HINTS.md, exercise 3")


# -----------------------------------------------------------------------------
# Stretch (optional): is the structure learned, or would shuffled text show it too?
# -----------------------------------------------------------------------------


def shuffle_characters(text, rng):
    """(Stretch.) The same characters in random order: a text with no structure at all.

    rng: np.random.Generator. Returns a str of the same length and with the
    same character counts as `text`.
    """
    # ---- your code here ----
    raise NotImplementedError("exercise 3: shuffle_characters (optional stretch) — see HINTS.md, exercise 3")


def balanced_bracket_share(text):
    """(Stretch.) Share of lines containing a bracket whose brackets all match, within the line.

    Brackets are ( ) [ ] { }; a line is balanced if every closing bracket
    closes the most recent unclosed opening one of the same kind and none is
    left open at the end of the line. Lines without brackets are not counted.
    Returns a float in [0, 1], or nan if no line has a bracket.
    """
    # ---- your code here: one stack per line ----
    raise NotImplementedError("exercise 3: balanced_bracket_share (optional stretch) — see HINTS.md, exercise 3")


def indent_share(text, unit=4):
    """(Stretch.) Share of indented lines whose indentation is a multiple of `unit` spaces.

    A line is indented if it starts with a space and has some other character
    after its leading spaces (blank lines do not count). Its indentation is the
    number of leading spaces. Returns a float in [0, 1], or nan if no line is indented.
    """
    # ---- your code here ----
    raise NotImplementedError("exercise 3: indent_share (optional stretch) — see HINTS.md, exercise 3")


def known_word_share(generated, training_text, min_length=3):
    """(Stretch.) Share of the words in `generated` (of min_length+ characters) that occur in `training_text`.

    Words as in exercise 2: words(text) (imported from analysis: runs of
    letters, inner apostrophes kept, lower-cased), and the last word of
    `generated` is left out when the text ends in the middle of it. Then only
    words of at least min_length characters count: shorter ones such as "a",
    "in" or "x" turn up by chance even in shuffled text. Counts every occurrence
    (word tokens). Returns a float in [0, 1]; nan if no word is left. With
    min_length=1 this is visualization.real_word_share(generated,
    set(words(training_text)))[0] (the test compares).
    """
    # ---- your code here: exercise 2's measure, then keep the long words ----
    raise NotImplementedError("exercise 3: known_word_share (optional stretch) — see HINTS.md, exercise 3")


def domain_report(params, chars, training_text, n_chars, temperature, rng):
    """(Stretch.) Sample from the model and measure it against real and shuffled text.

    Samples n_chars characters with implementation.sample_text at `temperature`
    (rng: np.random.Generator), primed with "\\n" if the vocabulary has it, else
    with the first character of the training text. Takes the three measures
    (balanced_bracket_share, indent_share with unit 4, known_word_share against
    training_text) on three texts: the training text, the sample, and the first
    n_chars characters of shuffle_characters(training_text, rng).
    Returns {"sample": str, "training": {...}, "model": {...}, "shuffled": {...}},
    each {...} = {"balanced_brackets": float, "indent_multiple_of_4": float,
    "known_words": float}.
    """
    # ---- your code here: sample, shuffle, then the three measures on three texts ----
    raise NotImplementedError("exercise 3: domain_report (optional stretch) — see HINTS.md, exercise 3")


# -----------------------------------------------------------------------------
# Given: the script that runs your functions
# -----------------------------------------------------------------------------

CORE = ("collect_source", "unigram_entropy", "train_on_text")                        # the exercise
STRETCH = ("shuffle_characters", "balanced_bracket_share", "indent_share", "known_word_share",
           "domain_report")                                                          # optional
MAX_TEXT_MB = 5             # --data: tiny Shakespeare is 1.1 MB, War and Peace 3.2 MB; a bound on memory
MAX_VOCAB = 1000            # distinct characters: the output layer, Adam's state and evaluate() grow with each


def check_corpus(text, args):
    """`text` if this script can train on it with these settings, else UserError (one line)."""
    source = f"--data {args.data}" if args.data else f"the *.py files under {REPO_ROOT}"
    size = len(text.encode("utf-8"))
    if size > MAX_TEXT_MB * 1_000_000:                             # --data is capped when read; this is the source
        raise UserError(f"{source} come to {size / 1e6:,.0f} MB, over this script's {MAX_TEXT_MB} MB (a virtual "
                        "environment inside the folder?); give a smaller text with --data")
    vocab = len(set(text))
    if vocab > MAX_VOCAB:
        raise UserError(f"{source}: {vocab:,} distinct characters; this script trains on at most {MAX_VOCAB:,} "
                        "(the output layer, its gradients and evaluate()'s tables grow with each)")
    need = args.batch_size * (args.seq_length + 2)                 # one window per stream, from 90% of the text
    if int(0.9 * len(text)) < need:
        raise UserError(f"{source}: {len(text)} characters is too short for --batch-size {args.batch_size} x "
                        f"--seq-length {args.seq_length} (90% of it must hold {need})")
    return text


def report(text, run, args):
    """Sample the model and print it; with the stretch part, the three measures on three texts."""
    rng = np.random.default_rng(args.seed + 1)
    if not_written_yet(STRETCH, globals()):
        prime = "\n" if "\n" in run["chars"] else text[0]
        sample = sample_text(run["params"], run["chars"], prime, args.sample_chars, args.temperature, rng)
        rep = None
    else:
        rep = domain_report(run["params"], run["chars"], text, args.sample_chars, args.temperature, rng)
        sample = rep["sample"]
    print(f"\n--- sample at temperature {args.temperature:g}: its first 20 lines, cut at 100 characters ---")
    print("\n".join(line[:100] for line in sample.split("\n")[:20]))
    if rep is None:
        print(f"\n(the table of measures on the training text, the sample and shuffled text is the optional "
              f"stretch part: {', '.join(STRETCH)}; see HINTS.md, exercise 3)")
        return
    print(f"\n{'measure':<22}{'training text':>15}{'model sample':>15}{'shuffled text':>15}")
    for key in ("balanced_brackets", "indent_multiple_of_4", "known_words"):
        cells = [rep[c][key] for c in ("training", "model", "shuffled")]
        print(f"{key:<22}" + "".join(f"{'n/a':>15}" if math.isnan(v) else f"{v:15.1%}" for v in cells))


@one_line_errors(UserError, OSError)
def main(argv=None):
    """Train on the repository's Python source (or --data) and report what the model learned."""
    setup_numpy()                                                 # BLAS threads (1 unless RNN_THREADS), memory reuse
    parser = ArgumentParser(description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = parser.add_argument_group("data")
    d.add_argument("--data", default=None,
                   help=f"any UTF-8 text file, at most {MAX_TEXT_MB} MB and {MAX_VOCAB:,} distinct characters "
                        "(default: this repository's *.py files, concatenated)")
    m = parser.add_argument_group("model and training")
    m.add_argument("--hidden-size", type=integer(1, 512), default=128, help="H, the hidden state size (1 to 512)")
    m.add_argument("--seq-length", type=integer(1, 256), default=64, help="T, steps per window (1 to 256)")
    m.add_argument("--batch-size", type=integer(1, 128), default=32, help="B, parallel streams (1 to 128)")
    m.add_argument("--steps", type=integer(1, 1_000_000), default=4000,
                   help="training steps (Adam, float32; 1 to 1,000,000)")
    m.add_argument("--learning-rate", type=number(0), default=3e-3, help="Adam learning rate")
    m.add_argument("--seed", type=integer(0), default=0, help="seed for the weights and the samples")
    s = parser.add_argument_group("report")
    s.add_argument("--sample-chars", type=integer(1, 100_000), default=5000,
                   help="characters to sample and measure (1 to 100,000)")
    s.add_argument("--temperature", type=number(0), default=0.8, help="sampling temperature")
    args = parser.parse_args(argv)
    if args.data:
        text = check_corpus(read_data(args.data, max_bytes=MAX_TEXT_MB * 1_000_000)[0], args)
    if todo := not_written_yet(CORE, globals()):
        return write_next(3, todo[0], __file__)
    print("settings:", vars(args))
    start = time.time()
    if not args.data:
        text = check_corpus(collect_source(REPO_ROOT), args)
    source = args.data or f"{REPO_ROOT.name}/**/*.py"
    print(f"corpus: {source}, {len(text):,} characters, {len(set(text))} distinct")
    run = train_on_text(text, args.hidden_size, args.seq_length, args.batch_size, args.steps,
                        args.learning_rate, args.seed)
    last = run["train_loss"][-100:].mean()
    print(f"trained {args.steps} steps in {time.time() - start:.0f} s: train loss {last:.3f}, "
          f"validation {run['val_nats']:.3f} nats/char; unigram entropy {unigram_entropy(text):.3f} "
          f"nats/char (the best possible without context, all that shuffled text allows)")
    report(text, run, args)
    print(f"\ntotal time {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
