"""Exercise 4: loss curves, overfitting and where to stop.

The setting overfits on purpose: a small text (the first 10,000 characters of
tiny Shakespeare: 9,000 to train on, 1,000 held out) and a large model (H = 256,
about 95,000 weights, ten per training character). The training loss keeps
falling; the validation loss falls, bottoms out, then climbs as the model
memorises the training text instead of learning what generalises.

The exercise (about 20 minutes):

    train_with_validation  a training run that logs both curves
    find_best_step         where validation stops improving (early stopping with patience)

Stretch (optional, about 15 minutes): the figure; without it the script prints
the table of evaluations only.

    smooth                 min-char-rnn's running average of a noisy per-step loss
    plot_curves            the picture, from the log (returns a Figure, never shows it)

Replace each `raise NotImplementedError(...)` with your code; import what you need from
implementation.py (already imported below), never re-implement it.

Check your version:  python -m pytest tests/exercises/test_exercise_04_overfitting.py
Stuck?               exercises/HINTS.md, exercise 4 (then exercises/solutions/)
Run this file:       python exercises/exercise_04_overfitting.py   (about ten seconds)
"""

import argparse
import io
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the repo root, so `import implementation` works from any directory

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from implementation import (Trainer, build_vocab, encode, evaluate, init_params,  # noqa: E402
                            train_val_split)
from safeio import UnsafeOutputError, atomic_write_bytes, check_output_path  # noqa: E402
from cli import (ArgumentParser, UserError, integer, number, one_line_errors, read_data, not_written_yet,  # noqa: E402
                setup_numpy, write_next)


def train_with_validation(train_ids, val_ids, vocab_size, hidden_size=256, seq_length=32,
                          batch_size=16, steps=1200, eval_every=25, learning_rate=2e-3, seed=0):
    """Train with implementation.Trainer (float32, Adam) and log train and validation losses.

    train_ids, val_ids: (N,) int ids; weights from init_params(vocab_size,
    hidden_size, np.random.default_rng(seed), dtype=np.float32).
    Evaluates (implementation.evaluate, nats per character) on the whole
    training text and on the validation text before training and after every
    eval_every steps (and after the last step if steps is not a multiple).
    Returns a dict of arrays:
        "train_loss"  (steps,)  per-character loss of each training step (Trainer.step())
        "eval_steps"  (E,)      steps at which both texts were evaluated: 0, eval_every, ...
        "train_eval"  (E,)      loss on the training text at those steps
        "val_eval"    (E,)      loss on the validation text at those steps
    """
    # ---- your code here: init_params, Trainer, and an evaluate() of both texts
    #   before training and every eval_every steps ----
    raise NotImplementedError("exercise 4: train_with_validation — see HINTS.md, exercise 4")


def find_best_step(eval_steps, val_losses, patience=5):
    """Where validation stops improving: early stopping with patience.

    eval_steps, val_losses: (E,) the logged evaluations, in order.
    Walk through them keeping the best (lowest) validation loss so far; an
    evaluation improves only if it is strictly lower than the best so far.
    Stop at the first evaluation that is the `patience`-th in a row without
    an improvement.
    Returns {"best_step": step of the best evaluation before stopping,
             "best_loss": its validation loss,
             "stop_step": step at which training would stop, or None if
                          patience never ran out}.
    """
    # ---- your code here: one pass, counting evaluations since the last improvement ----
    raise NotImplementedError("exercise 4: find_best_step — see HINTS.md, exercise 4")


# -----------------------------------------------------------------------------
# Stretch (optional): the picture
# -----------------------------------------------------------------------------


def smooth(values, beta=0.9):
    """(Stretch.) Exponential moving average, started at the first value (no warm-up bias).

    values: (N,) losses; beta in [0, 1): how much of the past to keep.
        s_0 = values[0],   s_t = beta * s_{t-1} + (1 - beta) * values[t]
    min-char-rnn's smooth_loss is this with beta = 0.999 (started at ln V instead).
    Returns s: (N,) float64 array.
    """
    # ---- your code here ----
    raise NotImplementedError("exercise 4: smooth (optional stretch) — see HINTS.md, exercise 4")


def plot_curves(log, best=None, beta=0.95):
    """(Stretch.) The loss curves of a train_with_validation log, as a matplotlib Figure.

    One Axes (x: training step, y: nats per character) with lines labelled
        "train loss (per step)"    log["train_loss"] at steps 1..N, faint
        "train loss (smoothed)"    smooth(log["train_loss"], beta) at steps 1..N
        "train text (evaluated)"   log["train_eval"] at log["eval_steps"]
        "validation"               log["val_eval"] at log["eval_steps"]
    and, if `best` (find_best_step's dict) is given, a vertical line labelled
    "best validation" at best["best_step"]. A legend; never plt.show().
    """
    # ---- your code here: Figure(), fig.add_subplot(), ax.plot(..., label=...), ax.axvline ----
    raise NotImplementedError("exercise 4: plot_curves (optional stretch) — see HINTS.md, exercise 4")


# -----------------------------------------------------------------------------
# Given: the script that runs your functions
# -----------------------------------------------------------------------------

CORE = ("train_with_validation", "find_best_step")                                  # the exercise
STRETCH = ("smooth", "plot_curves")                                                  # optional
MAX_TEXT_MB = 5             # --data: tiny Shakespeare is 1.1 MB, War and Peace 3.2 MB; a bound on memory
MAX_VOCAB = 1000            # distinct characters: the output layer, Adam's state and evaluate() grow with each
PLOT_FORMATS = ("png", "pdf", "svg")


def check_plot_path(plot):
    """--plot checked before any training: a new or regular file named .png, .pdf or .svg, in a folder (or none yet)."""
    if not plot:
        return
    folder = next((p for p in Path(plot).absolute().parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UserError(f"--plot {plot}: {folder} is a file, not a folder")
    try:
        check_output_path(plot, "--plot")
    except UnsafeOutputError as e:                                 # a folder, a device, a FIFO, a link
        raise UserError(f"--plot {e}") from None
    if Path(plot).suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise UserError(f"--plot {plot}: name a .png, .pdf or .svg file (or '' for no figure)")


def save_figure(fig, plot):
    """Render the figure in memory, then write it through one rename: never a half-written plot."""
    Path(plot).parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(plot).suffix.lower().lstrip("."), dpi=120, bbox_inches="tight")
    try:
        atomic_write_bytes(plot, buffer.getvalue())
    except OSError as e:                                           # a full disk, no permission: nothing replaced
        raise UserError(f"--plot {plot}: the figure could not be written ({e.strerror or e}); a previous file "
                        "of that name is unchanged") from None


def print_log(log, best, args):
    """The evaluations every 4 * eval_every steps, the best one, and what the curves say."""
    print(f"\n{'step':>6}{'train text':>12}{'validation':>12}")
    for s, tr, va in zip(log["eval_steps"], log["train_eval"], log["val_eval"]):
        if s % (4 * args.eval_every) == 0 or s == best["best_step"]:
            print(f"{s:6d}{tr:12.3f}{va:12.3f}" + ("   <- best validation" if s == best["best_step"] else ""))
    i = int(np.flatnonzero(log["eval_steps"] == best["best_step"])[0])
    print(f"\nvalidation stops improving at step {best['best_step']}: {best['best_loss']:.3f} nats/char "
          f"(train text {log['train_eval'][i]:.3f}); early stopping with patience {args.patience} "
          f"would stop at step {best['stop_step']}.")
    print(f"by step {log['eval_steps'][-1]} the training text is down to {log['train_eval'][-1]:.3f} but "
          f"validation is up to {log['val_eval'][-1]:.3f}: a gap of {log['val_eval'][-1] - log['train_eval'][-1]:.2f} "
          f"nats/char, memorisation.")


@one_line_errors(UserError, OSError)
def main(argv=None):
    """Overfit on purpose, find where validation stops improving, and plot the curves."""
    setup_numpy()                                                 # BLAS threads (1 unless RNN_THREADS), memory reuse
    parser = ArgumentParser(description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = parser.add_argument_group("data")
    d.add_argument("--data", default=None,
                   help=f"UTF-8 text, at most {MAX_TEXT_MB} MB (default: tiny Shakespeare via data.download)")
    d.add_argument("--chars", type=integer(1, 100_000), default=10_000,
                   help=f"use only the first CHARS characters (1 to 100,000; at most {MAX_VOCAB:,} distinct)")
    m = parser.add_argument_group("model and training")
    m.add_argument("--hidden-size", type=integer(1, 512), default=256, help="H, the hidden state size (1 to 512)")
    m.add_argument("--steps", type=integer(1, 1_000_000), default=1200,
                   help="training steps (Adam, float32; 1 to 1,000,000)")
    m.add_argument("--eval-every", type=integer(1), default=25, help="evaluate both texts every this many steps")
    m.add_argument("--learning-rate", type=number(0), default=2e-3, help="Adam learning rate")
    m.add_argument("--patience", type=integer(1), default=5, help="evaluations without improvement before stopping")
    m.add_argument("--seed", type=integer(0), default=0, help="seed of the weights")
    o = parser.add_argument_group("output")
    o.add_argument("--plot", default=str(REPO_ROOT / "plots" / "exercise_04_overfitting.png"),
                   help="where to save the figure: a .png, .pdf or .svg file ('' to skip); an existing file "
                        "of that name is replaced only once the new one is complete")
    args = parser.parse_args(argv)
    check_plot_path(args.plot)
    text, args.data = read_data(args.data, "tiny_shakespeare", max_bytes=MAX_TEXT_MB * 1_000_000)
    text = text[:args.chars]
    chars = build_vocab(text)
    if len(chars) > MAX_VOCAB:
        raise UserError(f"--data {args.data}: {len(chars):,} distinct characters in the first --chars "
                        f"{args.chars:,}; this script trains on at most {MAX_VOCAB:,}")
    train_ids, val_ids = train_val_split(encode(text, chars))
    need = 16 * (32 + 2)                                           # train_with_validation's batch and window
    if len(train_ids) < need or len(val_ids) < 2:
        raise UserError(f"--data {args.data}: {len(text)} characters (after --chars) is too short; "
                        f"training needs {need} and validation 2 (10% of the text)")
    if todo := not_written_yet(CORE, globals()):
        return write_next(4, todo[0], __file__)
    print("settings:", vars(args))
    start = time.time()
    print(f"{len(train_ids):,} training and {len(val_ids):,} validation characters, V={len(chars)}")
    log = train_with_validation(train_ids, val_ids, len(chars), args.hidden_size, steps=args.steps,
                                eval_every=args.eval_every, learning_rate=args.learning_rate, seed=args.seed)
    best = find_best_step(log["eval_steps"], log["val_eval"], args.patience)
    print_log(log, best, args)
    if args.plot and not_written_yet(STRETCH, globals()):
        print(f"(the figure is the optional stretch part: {', '.join(STRETCH)}; see HINTS.md, exercise 4)")
    elif args.plot:
        save_figure(plot_curves(log, best), args.plot)
        print(f"figure: {args.plot}")
    print(f"total time {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
