"""Train the char-RNN of implementation.py from the shell, and sample from it.

Quick start (downloads tiny Shakespeare into data/ if it is missing):

    python train_minimal.py --data data/tiny_shakespeare.txt --epochs 200

It shows a progress bar, prints a sample every --sample-every steps and the
validation loss every --eval-every steps, and keeps in --out (default out/):

    last.npz, best.npz   checkpoints (best = lowest validation loss), implementation's format
    log.jsonl            one JSON object per line, for the plots (runlog.py; LOG FORMAT in --help)
    metrics.json         the final numbers

More:

    python train_minimal.py --preset textbook --max-steps 300     # min-char-rnn's exact settings
    python train_minimal.py --preset fast                          # the README's better model: 20,000 steps
    python train_minimal.py --resume out/last.npz                  # continue a run exactly
    python train_minimal.py --sample-only --checkpoint out/best.npz --prime "ROMEO:" --length 300

What lives where. implementation.py owns the model, the data walk, the
optimisers, sampling, evaluation and the checkpoint format; runlog.py owns the
format of log.jsonl. This file owns the rest of a training run:

    the settings      presets, their checks, and the memory a setting needs
    the output folder one run at a time (a lock), never a previous run replaced by accident
    the learning-rate schedule (constant or cosine, with warmup): learning_rate_at
    the divergence policy: divergence()
    when to stop: stop_reason(); Ctrl-C: StopOnSigint
    the loop, train(), with its named pieces: RunState (the counters), Progress (what
    the user sees), evaluate_and_save(), finish() (metrics.json)

From Python (a notebook, an exercise): ``train(resolve_config("fast", data=...))``.
"""

if __name__ == "__main__":
    # Ctrl-C while the imports below load (NumPy alone takes a moment): one line, exit 130.
    # This is the file's first statement (so no `from __future__ import`: importing that module
    # is itself a moment in which Ctrl-C would print a traceback).
    # _signal is the interpreter's built-in module, already loaded; `signal` itself takes time.
    import _signal
    import os as _os

    def _interrupted_while_starting(signum, frame):
        _os.write(2, b"error: interrupted while starting; nothing was written\n")
        _os._exit(130)
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)

import os
import signal
import sys

import argparse
import collections
import json
import math
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

import implementation as rnn
import safeio
import ngram
import checkpoints
from analysis import MIX_GRID, ensemble_logprobs, mixture_halves, product_halves
import runlog
from cli import (EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, THREADS_ENV, ArgumentParser,
                 UserError, read_data, setup_numpy)
from safeio import atomic_write_text
from data.download import CORPORA, DATA_DIR, DownloadError, ensure_data_file

try:
    import fcntl                                     # POSIX; elsewhere runs are not locked
except ImportError:                                  # pragma: no cover
    fcntl = None

# -----------------------------------------------------------------------------
# Settings
# -----------------------------------------------------------------------------

# Every training setting, per preset. Explicit flags override these; change the
# defaults here, in one place.
PRESETS = {
    # min-char-rnn.py exactly: one stream, 100 hidden units, 25-step unroll,
    # Adagrad at 0.1, elementwise clipping to [-5, 5], float64, N(0,1)*0.01 init.
    "textbook": {
        "hidden_size": 100, "seq_length": 25, "batch_size": 1,
        "optimizer": "adagrad", "learning_rate": 0.1, "lr_schedule": "constant", "min_lr": 0.0,
        "clip": 5.0, "dtype": "float64", "init_scale": 0.01, "random_offsets": False, "ema": 0.0, "dropout": 0.0,
        "weight_decay": 0.0, "distill": 0.0, "ngram_prior": 0.0, "warmup_steps": 0,
        "epochs": 10, "max_steps": None, "time_budget": None, "patience": 0, "val_fraction": 0.1,
        "sample_every": 5000, "eval_every": 10000, "log_every": 100,
        "sample_length": 200, "temperature": 1.0, "seed": 1337,
    },
    # The README's quick start: 32 streams of 64 steps, 256 hidden units, Adam, float32, for
    # 12,000 steps (an epoch of tiny Shakespeare is 490 steps, so about 24 epochs). Adam's
    # learning rate rises linearly over the first 1,000 steps, then decays along a cosine
    # from 2e-3 to 2e-5; each epoch starts the streams at new random offsets; and a moving
    # average of the weights (0.998) is what gets evaluated, sampled and saved. A number of
    # steps ends the run, so every machine trains the same model. The same network at a
    # constant 2e-3, stopped on a plateau, ended 0.07 nats/char higher: see the README.
    "default": {
        "hidden_size": 256, "seq_length": 64, "batch_size": 32,
        "optimizer": "adam", "learning_rate": 2e-3, "lr_schedule": "cosine", "min_lr": 2e-5,
        "clip": 5.0, "dtype": "float32", "init_scale": 0.01, "random_offsets": True, "ema": 0.998, "dropout": 0.0,
        "weight_decay": 0.0, "distill": 0.0, "ngram_prior": 0.0, "warmup_steps": 1000,
        "epochs": None, "max_steps": 12_000, "time_budget": None, "patience": 0, "val_fraction": 0.1,
        "sample_every": 500, "eval_every": 500, "log_every": 10,
        "sample_length": 200, "temperature": 0.8, "seed": 1337,
    },
}
# The README's faster, better model: 384 units on 16 streams of 64 steps; Adam with a linear
# warmup over the first 3,000 steps, then a cosine decay from 1.5e-3 to 2e-5 over 20,000
# steps; random epoch offsets; and a moving average of the weights, which is what gets
# evaluated, sampled and saved. A number of steps, not a time budget, ends it, so every
# machine trains the same model (the README says how long it took on a 2-core machine).
# Evaluated every 4,000 steps; the best checkpoint is kept.
PRESETS["fast"] = dict(
    PRESETS["default"], hidden_size=384, batch_size=16, seq_length=64,
    learning_rate=1.5e-3, lr_schedule="cosine", min_lr=2e-5, warmup_steps=3000,
    random_offsets=True, ema=0.998,
    epochs=None, max_steps=20_000, time_budget=None, patience=0, eval_every=4000, sample_every=4000,
)

# The README's best RNN alone, about 22 minutes on a 2-core AMD EPYC machine: the fast
# preset with dropout 0.05 on the connections that carry no recurrence (the input
# embedding and the output layer's view of h) and a schedule 2.5 times as long, 50,000
# steps. Dropout slows learning down and narrows the gap between training and validation
# loss, so the longer schedule keeps paying. On each of three seeds, dropout 0.05 ended
# 0.008-0.020 below the 0.1 this preset had first (0.15 was worse than both): see the README.
PRESETS["long"] = dict(
    PRESETS["fast"], dropout=0.05, max_steps=50_000, eval_every=5000, sample_every=5000,
)

# The order of the n-gram that --distill trains toward and --ngram-prior trains beside
# (ngram.ngram_teacher): the best order of --ngram on tiny Shakespeare.
DISTILL_ORDER = 7
# --ngram-prior's teacher is cross-fitted on ten parts of the training split: each part's
# counts come from the other 90% of the text. Fewer parts made worse partners (two and five,
# measured), twenty a little better than ten for more fitting time (31 s against 18-25 s on
# tiny Shakespeare): see the README.
PRIOR_FOLDS = 10

# Settings a resumed run must keep: they fix the shapes, the data walk or the optimiser state.
FROZEN_ON_RESUME = ("hidden_size", "seq_length", "batch_size", "optimizer", "dtype",
                    "init_scale", "val_fraction", "seed", "random_offsets", "ema", "dropout",
                    "ngram_prior")

DEFAULT_DATA = "data/tiny_shakespeare.txt"
DEFAULT_OUT = "out"

# The divergence policy (see divergence()).
# A training loss per character above EXPLODE_FACTOR * ln V (10x a uniform guess), or inf/NaN,
# stops the run at once. Not lower: with the textbook settings, Adagrad's first steps
# (every weight moves by about lr) leave ||Whh|| near 12, and such a model, started from
# h = 0, can score 20 nats/char for a while and then recover.
EXPLODE_FACTOR = 10.0
# A loss that stays above ln V (worse than a uniform guess) stops the run too: the mean
# over the last SUSTAINED_STEPS steps, checked once SUSTAINED_AFTER steps are done.
SUSTAINED_STEPS, SUSTAINED_AFTER = 200, 500
DIVERGENCE_HELP = (f"Training stops as diverged (exit 3; the last good checkpoint is kept) when a step's "
                   f"loss is inf, NaN or above {EXPLODE_FACTOR:g} x ln V (ln V is the loss of a uniform "
                   f"guess over the V characters), or when the mean loss of the last {SUSTAINED_STEPS} "
                   f"steps stays above ln V once {SUSTAINED_AFTER} steps are done.")

DISPLAY_STEPS = 100            # the bar, the validation lines and final_train_loss average this many steps
MEMORY_SHARE = 0.75            # refuse settings that need more than this share of physical memory

# The files a run writes into --out; a new run refuses to replace them without --overwrite.
RUN_FILES = ("last.npz", "best.npz", "log.jsonl", "metrics.json")
LOCK_NAME = ".lock"


class _Diverged(Exception):
    """Raised inside the training loop when the loss or the weights show that training blew up."""


def resolve_config(preset: str = "default", base: Optional[dict] = None, **overrides) -> dict:
    """The full settings dict: a preset (or `base`, e.g. a checkpoint's config) with overrides.

    Overrides equal to None are ignored, so argparse's unset flags fall through.
    """
    if base is None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        base = dict(PRESETS[preset], preset=preset, data=DEFAULT_DATA, out=DEFAULT_OUT)
    config = dict(base)
    for k, v in overrides.items():
        if v is not None:
            if k not in config:
                raise UserError(f"unknown setting {k!r}")
            config[k] = v
    return config


def check_config(c: dict) -> None:
    """Raise UserError (one line) for any setting that cannot work, before any work is done."""
    def positive(name, flag, allow_none=False, integer=True):
        v = c[name]
        if v is None and allow_none:
            return
        ok = (isinstance(v, (int, np.integer)) if integer else isinstance(v, (int, float))) \
            and not isinstance(v, bool) and math.isfinite(v) and v > 0
        if not ok:
            raise UserError(f"{flag} must be {'an integer' if integer else 'a number'} > 0, got {v!r}")

    for name in ("hidden_size", "seq_length", "batch_size", "sample_length"):
        positive(name, "--" + name.replace("_", "-"))
    positive("epochs", "--epochs", allow_none=True)
    positive("max_steps", "--max-steps", allow_none=True)
    positive("time_budget", "--time-budget", allow_none=True, integer=False)
    positive("learning_rate", "--learning-rate", integer=False)
    positive("init_scale", "--init-scale", integer=False)
    for name in ("sample_every", "eval_every", "log_every", "patience", "warmup_steps"):
        if not isinstance(c[name], int) or c[name] < 0:
            raise UserError(f"--{name.replace('_', '-')} must be an integer >= 0 (0 = never), got {c[name]!r}")
    check_seed(c["seed"])
    if not (math.isfinite(c["clip"]) and c["clip"] >= 0):
        raise UserError(f"--clip must be a number >= 0 (0 = no clipping), got {c['clip']!r}")
    if c["lr_schedule"] == "cosine" and not (math.isfinite(c["min_lr"]) and 0 <= c["min_lr"] <= c["learning_rate"]):
        raise UserError(f"--min-lr must be between 0 and --learning-rate ({c['learning_rate']:g}), "
                        f"got {c['min_lr']!r}")
    if not (isinstance(c["ema"], (int, float)) and math.isfinite(c["ema"]) and 0 <= c["ema"] < 1):
        raise UserError(f"--ema must be in [0, 1) (0 = off; 0.998 averages about the last 500 steps), "
                        f"got {c['ema']!r}")
    if not (isinstance(c["dropout"], (int, float)) and math.isfinite(c["dropout"]) and 0 <= c["dropout"] < 1):
        raise UserError(f"--dropout must be in [0, 1) (0 = off; 0.2 drops a fifth of the inputs and outputs), "
                        f"got {c['dropout']!r}")
    if not (isinstance(c["weight_decay"], (int, float)) and math.isfinite(c["weight_decay"]) and c["weight_decay"] >= 0):
        raise UserError(f"--weight-decay must be a number >= 0 (0 = off; 0.1 shrinks the matrices by "
                        f"learning_rate x 0.1 of themselves each step), got {c['weight_decay']!r}")
    if not (isinstance(c["distill"], (int, float)) and math.isfinite(c["distill"]) and 0 <= c["distill"] < 1):
        raise UserError(f"--distill must be in [0, 1) (0 = off; 0.3 trains toward 0.7 x the next character + "
                        f"0.3 x the cross-fitted {DISTILL_ORDER}-gram's distribution), got {c['distill']!r}")
    b = c["ngram_prior"]
    if not (isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) and 0 <= b <= 1):
        raise UserError(f"--ngram-prior must be in [0, 1] (0 = off; 0.4 trains the RNN's logits plus 0.4 x the "
                        f"{DISTILL_ORDER}-gram's log-probabilities), got {b!r}")
    if b and c["distill"]:
        raise UserError("--distill and --ngram-prior are two ways to train with the same counts; choose one")
    if not (math.isfinite(c["val_fraction"]) and 0 <= c["val_fraction"] < 1):
        raise UserError(f"--val-fraction must be in [0, 1), got {c['val_fraction']!r}")
    try:
        rnn.check_temperature(c["temperature"])
    except ValueError as e:
        raise UserError(f"--temperature: {e}") from None
    if c["optimizer"] not in ("adagrad", "adam"):
        raise UserError(f"--optimizer must be adagrad or adam, got {c['optimizer']!r}")
    if c["dtype"] not in ("float32", "float64"):
        raise UserError(f"--dtype must be float32 or float64, got {c['dtype']!r}")
    if c["lr_schedule"] not in ("constant", "cosine"):
        raise UserError(f"--lr-schedule must be constant or cosine, got {c['lr_schedule']!r}")
    if c["lr_schedule"] == "cosine" and not (c["max_steps"] or c["epochs"] or c["time_budget"]):
        raise UserError("--lr-schedule cosine needs a length to decay over: "
                        "set --max-steps, --epochs or --time-budget")
    check_out_dir(c["out"])


def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed must be a whole number >= 0, got {seed!r}")


def check_out_dir(out) -> Path:
    if not str(out).strip():
        raise UserError("--out is empty; give a folder for the checkpoints and logs (e.g. --out out)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; give a folder for the checkpoints and logs")
    return out


# -----------------------------------------------------------------------------
# Checks before any work: the data, the memory a setting needs
# -----------------------------------------------------------------------------

def load_data(path, val_fraction: float, progress: bool = True, max_text_mb: Optional[float] = None):
    """(path, chars, train_ids, val_ids) from a UTF-8 text file, downloading a known corpus if missing.

    max_text_mb: the largest text to read, in MB (default: safeio.TEXT_MAX_BYTES).
    """
    try:
        path = ensure_data_file(path, progress=progress)
    except DownloadError as e:                      # includes "no such file" for unknown names
        raise UserError("; ".join(str(e).splitlines())) from None
    limit = None if max_text_mb is None else int(max_text_mb * 1e6)
    text, _ = read_data(path, max_bytes=limit, limit_flag="--max-text-mb")   # one-line UserError if unusable
    chars = rnn.build_vocab(text)
    train_ids, val_ids = rnn.train_val_split(rnn.encode(text, chars), val_fraction)
    if val_fraction > 0 and len(val_ids) < 2:
        raise UserError(f"--data {path}: the validation split ({val_fraction:g} of {len(text)} chars) "
                        "has fewer than 2 characters; use a longer text or --val-fraction 0")
    return Path(path), chars, train_ids, val_ids


def known_corpus_path(path) -> bool:
    """True if `path` names a corpus of data/download.py in its usual place (data/NAME.txt)."""
    allowed = {f"data/{c.filename}" for c in CORPORA.values()} | {str(DATA_DIR / c.filename)
                                                                   for c in CORPORA.values()}
    return isinstance(path, str) and path in allowed


def memory_needed(c: dict, V: int, n_train: int = 0, n_val: int = 0) -> int:
    """Bytes a run with settings `c` and V characters needs, before it allocates them.

    Parameters (Wxh, Whh, Why, bh, by), their gradients, the optimiser state (Adagrad one
    copy, Adam two), the weight average (--ema), and one window's activations: T+1 hidden
    states of shape (H,B) and the logits and probabilities, each (V,B) for T steps; plus
    the float64 weights init_params draws before converting them to the dtype; with
    --distill or --ngram-prior, the teacher's float32 table, one row of V per training
    character (n_train); with --ngram-prior, the validation text's too (n_val).
    """
    H, B, T = int(c["hidden_size"]), int(c["batch_size"]), int(c["seq_length"])
    n_params = 2 * H * V + H * H + H + V
    copies = 2 + (1 if c["optimizer"] == "adagrad" else 2) + (1 if c["ema"] else 0)
    window = (T + 1) * H * B + 2 * V * T * B + (H * T * B if c["dropout"] else 0)   # + the output mask
    teacher = 4 * V * (n_train * bool(c["distill"] or c["ngram_prior"]) + n_val * bool(c["ngram_prior"]))
    return np.dtype(c["dtype"]).itemsize * (copies * n_params + window) + 8 * n_params + teacher


def physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):    # not POSIX: no check
        return None


def check_memory(c: dict, V: int, n_train: int = 0, n_val: int = 0) -> None:
    need, have = memory_needed(c, V, n_train, n_val), physical_memory()
    if have and need > MEMORY_SHARE * have:
        raise UserError(f"--hidden-size {c['hidden_size']}, --batch-size {c['batch_size']}, --seq-length "
                        f"{c['seq_length']} would need about {need / 1e9:.3g} GB of memory (weights, gradients, "
                        f"optimiser state and one window's activations in {c['dtype']}"
                        f"{', and the n-gram teacher' if c['distill'] or c['ngram_prior'] else ''}), more than "
                        f"{MEMORY_SHARE:.0%} of this machine's {have / 1e9:.3g} GB; make them smaller")


# -----------------------------------------------------------------------------
# The output folder: one run at a time, no previous run replaced by accident
# -----------------------------------------------------------------------------

class OutputLock:
    """An advisory lock on --out (fcntl.flock on out/.lock, our pid written in it) for the whole run.

    A second run into the same folder fails at once with the first one's pid. The
    kernel drops the lock when the process ends, however it ends (even SIGKILL).
    """

    def __init__(self, out: Path):
        self.out, self.path, self.fd = Path(out), Path(out) / LOCK_NAME, None

    def __enter__(self):
        self.out.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"--out {self.out} is in use by another training run (pid {other}); "
                            "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)                        # closing the file releases the lock
            self.fd = None
        return False


def claim_output_folder(out: Path, resuming: bool, overwrite: bool) -> None:
    """With the lock held: refuse to replace a previous run, and sweep its stale temporary files."""
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not resuming:
        if not overwrite:
            raise UserError(f"--out {out} holds a previous run ({', '.join(found)}); continue it with "
                            f"--resume {out / 'last.npz'}, choose a new --out, or replace it with --overwrite")
        for name in found:
            (out / name).unlink()
    for p in out.iterdir():                          # left by a run killed while writing a file
        if p.name.endswith(".tmp") and p.name.lstrip(".").startswith(tuple(f"{n}." for n in RUN_FILES)):
            p.unlink(missing_ok=True)


# -----------------------------------------------------------------------------
# Policies: the learning-rate schedule, divergence, when to stop, Ctrl-C
# -----------------------------------------------------------------------------

def learning_rate_at(c: dict, step: int, epochs_done: float, elapsed: float) -> float:
    """The learning rate for the next step.

    cosine: from --learning-rate down to --min-lr, following half a cosine, over
    progress = the largest of step/max_steps, epochs_done/epochs, elapsed/time_budget
    (of those that are set).
    warmup_steps N > 0 scales that by (step + 1) / N for the first N steps: a linear ramp
    from almost 0. (Adam's first steps move every weight by about the full learning rate,
    whatever the size of its gradient, before its running averages mean much.)
    """
    warm = min(1.0, (step + 1) / c["warmup_steps"]) if c["warmup_steps"] else 1.0
    if c["lr_schedule"] == "constant":
        return c["learning_rate"] * warm
    parts = []
    if c["max_steps"]:
        parts.append(step / c["max_steps"])
    if c["epochs"]:
        parts.append(epochs_done / c["epochs"])
    if c["time_budget"]:
        parts.append(elapsed / c["time_budget"])
    progress = min(1.0, max(parts))
    return warm * (c["min_lr"] + 0.5 * (c["learning_rate"] - c["min_lr"]) * (1.0 + math.cos(math.pi * progress)))


def divergence(loss: float, recent, steps_done: int, lnV: float) -> Optional[str]:
    """Why training has blown up, or None. `recent`: the per-char losses of the last steps.

    Two rules: a single loss that is inf/NaN or above EXPLODE_FACTOR * ln V, and a
    sustained one: the mean of the last SUSTAINED_STEPS losses above ln V (worse than a
    uniform guess) once SUSTAINED_AFTER steps are done.
    """
    if not math.isfinite(loss) or loss > EXPLODE_FACTOR * lnV:
        return f"the training loss is {loss:.4g} nats/char (the limit is {EXPLODE_FACTOR:g} x ln V)"
    if steps_done >= SUSTAINED_AFTER and len(recent) >= SUSTAINED_STEPS:
        mean = sum(list(recent)[-SUSTAINED_STEPS:]) / SUSTAINED_STEPS
        if mean > lnV:
            return (f"the mean training loss of the last {SUSTAINED_STEPS} steps is {mean:.3f} nats/char, "
                    "worse than a uniform guess")
    return None


def stop_reason(c: dict, trainer, state, sigint) -> Optional[str]:
    """Why the run stops before the next step, or None to go on."""
    if sigint.requested:
        return "interrupted"
    if c["max_steps"] and trainer.step_count >= c["max_steps"]:
        return "max_steps"
    if c["epochs"] and trainer.epoch >= c["epochs"]:
        return "epochs"
    if c["time_budget"] and state.elapsed() >= c["time_budget"]:
        return "time_budget"
    if c["patience"] and state.evals_since_best >= c["patience"]:
        return "plateau"
    return None


class StopOnSigint:
    """First Ctrl-C: ask the loop to stop after the current step. Second: stop right away."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._old)     # a second Ctrl-C interrupts immediately

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


# -----------------------------------------------------------------------------
# The run: its data and trainer, its counters, what the user sees
# -----------------------------------------------------------------------------

def epochs_done(trainer) -> float:
    """Full passes over the training split so far, with the fraction of the current one."""
    return trainer.epoch + trainer.window / len(trainer.streams)


@dataclass
class RunState:
    """The counters the loop updates (and a checkpoint's meta stores), in one place."""
    best_val_loss: Optional[float] = None
    best_step: Optional[int] = None
    evals_since_best: int = 0
    saved_step: Optional[int] = None            # step of last.npz
    last_eval_step: Optional[int] = None
    elapsed_before: float = 0.0                 # wall-clock training time before this process (resume)
    step_seconds_before: float = 0.0            # time inside trainer.step before this process
    step_seconds: float = 0.0                   # time inside trainer.step in this process
    t_start: float = field(default_factory=time.perf_counter)
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=SUSTAINED_STEPS))

    def elapsed(self) -> float:
        """Wall-clock training time of the whole run."""
        return self.elapsed_before + time.perf_counter() - self.t_start

    def chars_per_sec(self, trainer) -> float:
        """Training speed: characters per second spent inside the steps, over the whole run."""
        seconds = self.step_seconds_before + self.step_seconds
        return trainer.chars_seen / seconds if seconds else 0.0

    def recent_loss(self) -> tuple[Optional[float], int]:
        """(mean per-char training loss of the last DISPLAY_STEPS steps, how many steps that is)."""
        last = list(self.recent)[-DISPLAY_STEPS:]
        return (sum(last) / len(last) if last else None), len(last)


@dataclass
class Run:
    """Everything a run needs, checked before any file is written."""
    c: dict
    data_path: Path
    chars: list
    train_ids: np.ndarray
    val_ids: np.ndarray
    trainer: rnn.Trainer
    rng: np.random.Generator
    state: RunState
    resume: Optional[str] = None
    log_content: Optional[bytes] = None         # a resumed run's log, cut back to the checkpoint
    val_prior: Optional[np.ndarray] = None      # --ngram-prior: the n-gram's (N,V) distributions on the validation text

    @property
    def out(self) -> Path:
        return Path(self.c["out"])

    def stamp(self) -> dict:
        """Where in the run we are, for every log line."""
        t = self.trainer
        return {"step": t.step_count, "epoch": round(epochs_done(t), 6), "chars": t.chars_seen,
                "time": round(self.state.elapsed(), 3)}

    def log_info(self) -> dict:
        return {"vocab_size": len(self.chars), "train_chars": int(len(self.train_ids)),
                "val_chars": int(len(self.val_ids)), "chars_per_epoch": self.trainer.streams.chars_per_epoch,
                "windows_per_epoch": len(self.trainer.streams)}


def _meta_number(meta: dict, key: str, kind, default):
    v = meta.get(key, default)
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
        return kind(v) if v is not None else None
    raise checkpoints.CheckpointError(f"the checkpoint's {key!r} is {v!r:.40}, not a number; it cannot be resumed")


def build_trainer(c: dict, train_ids, V: int, rng: np.random.Generator, say=print) -> rnn.Trainer:
    """The weights (drawn from rng) and the Trainer of settings c, as every run starts them."""
    params = rnn.init_params(V, c["hidden_size"], rng, np.dtype(c["dtype"]).type, c["init_scale"])
    teacher = None
    if c["distill"] or c["ngram_prior"]:             # the same table on every run of the same text
        t0 = time.perf_counter()
        folds = PRIOR_FOLDS if c["ngram_prior"] else 2
        teacher = ngram.ngram_teacher(train_ids, V, DISTILL_ORDER, folds=folds)
        parts = "each half of the training split scores the other half" if folds == 2 else \
            f"the other {folds - 1} of {folds} parts of the training split scores each part"
        flag = f"--distill {c['distill']:g}" if c["distill"] else f"--ngram-prior {c['ngram_prior']:g}"
        say(f"teacher: a {DISTILL_ORDER}-gram of {parts} ({teacher.nbytes / 1e6:.0f} MB, "
            f"{time.perf_counter() - t0:.1f} s); {flag}")
    return rnn.Trainer(params, train_ids, c["batch_size"], c["seq_length"], c["learning_rate"], c["optimizer"],
                       c["clip"], random_offsets=c["random_offsets"], seed=c["seed"], ema=c["ema"],
                       dropout=c["dropout"], weight_decay=c["weight_decay"], distill=c["distill"],
                       teacher=teacher, prior=c["ngram_prior"])


def validation_prior(c: dict, train_ids, val_ids, V: int) -> Optional[np.ndarray]:
    """With --ngram-prior, the (N,V) float32 distributions of a 7-gram of the whole training split at
    each validation target: the counts the RNN is scored beside. None without it (or no validation text)."""
    if not c["ngram_prior"] or len(val_ids) < 2:
        return None
    model = ngram.NGram(DISTILL_ORDER).fit(train_ids, V)
    return np.exp(model.logprob_table(val_ids)).astype(np.float32)


def prepare(c: dict, resume, warn, progress: bool, max_text_mb: Optional[float] = None, say=print) -> Run:
    """Read and check the data, the memory, the checkpoint and the log; build the trainer. Writes nothing."""
    data_path, chars, train_ids, val_ids = load_data(c["data"], c["val_fraction"], progress, max_text_mb)
    check_memory(c, len(chars), len(train_ids), len(val_ids))
    B, T = c["batch_size"], c["seq_length"]
    if len(train_ids) < B * (T + 2):                # Streams' rule: every stream needs one window
        raise UserError(f"--data {data_path} is too short: its training split has {len(train_ids):,} characters, too few "
                        f"for one window of --seq-length {T} in --batch-size {B} streams (at least "
                        f"{B * (T + 2):,}); use a longer text or smaller --seq-length/--batch-size")
    rng = np.random.default_rng(c["seed"])
    trainer = build_trainer(c, train_ids, len(chars), rng, say)
    run = Run(c, data_path, chars, train_ids, val_ids, trainer, rng, RunState(),
              val_prior=validation_prior(c, train_ids, val_ids, len(chars)))
    if resume is not None:
        ck = checkpoints.load_checkpoint(resume, expected_chars=chars)       # CheckpointError: one line
        try:
            trainer.restore(ck)
        except ValueError as e:                                       # a checkpoint of other settings
            raise checkpoints.CheckpointError(str(e)) from None
        m, s = ck["meta"], run.state
        run.rng = ck["rng"] if ck["rng"] is not None else rng
        s.best_val_loss = _meta_number(m, "best_val_loss", float, None)
        s.best_step = _meta_number(m, "best_step", int, None)
        s.evals_since_best = _meta_number(m, "evals_since_best", int, 0)
        s.elapsed_before = _meta_number(m, "elapsed", float, 0.0)
        s.step_seconds_before = _meta_number(m, "train_seconds", float, 0.0)
        s.saved_step = s.last_eval_step = trainer.step_count
        run.resume = str(resume)
        config_line = runlog.encode("config", **c, **run.log_info())
        run.log_content = runlog.plan_resume(run.out / runlog.LOG_NAME, trainer.step_count, config_line, warn)
    return run


class Progress:
    """What the user sees: printed lines, and a tqdm bar whose status line shows epoch, loss, speed, ETA."""

    def __init__(self, quiet: bool, bar: bool):
        self.quiet, self.show_bar, self.bar, self.next_status = quiet, bar, None, 0.0

    def say(self, text="") -> None:
        if not self.quiet:
            tqdm.write(str(text), file=sys.stdout)

    def open(self, run: Run) -> None:
        c, W = run.c, len(run.trainer.streams)
        limits = [n for n in (c["max_steps"], c["epochs"] and c["epochs"] * W) if n]
        self.total = min(limits) if limits else None
        try:                                        # some pseudo-terminals report 0 columns
            width_known = os.get_terminal_size(sys.stderr.fileno()).columns > 0
        except (OSError, ValueError, AttributeError):
            width_known = False
        self.bar = tqdm(total=self.total, initial=run.trainer.step_count, disable=not self.show_bar,
                        unit="step", file=sys.stderr, dynamic_ncols=width_known,
                        ncols=None if width_known else 140, nrows=None if width_known else 24,
                        mininterval=0.5, bar_format="{l_bar}{bar}| step {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.start_step = run.trainer.step_count

    def update(self, run: Run) -> None:
        """Advance the bar one step; refresh its status line every 0.5 s."""
        self.bar.update(1)
        if time.perf_counter() >= self.next_status:
            self.refresh(run, force=False)

    def refresh(self, run: Run, force: bool = True) -> None:
        """Recompute the status line (force: redraw now, so it agrees with a line printed next)."""
        now = time.perf_counter()
        if not self.show_bar:
            return
        self.next_status = now + 0.5
        c, t, s = run.c, run.trainer, run.state
        loss, _ = s.recent_loss()
        self.bar.set_postfix_str(f"epoch {epochs_done(t):.2f}{'/' + str(c['epochs']) if c['epochs'] else ''}, "
                                 f"loss {'-' if loss is None else f'{loss:.3f}'}, "
                                 f"{s.chars_per_sec(t) / 1000:.1f}k chars/s, {self.eta(run, now)}",
                                 refresh=force)

    def eta(self, run: Run, now: float) -> str:
        """The time left to the nearest limit: an upper bound when a plateau can stop the run sooner."""
        c, t, s = run.c, run.trainer, run.state
        left = []                                    # (seconds, what sets the limit)
        if self.total:
            done = t.step_count - self.start_step
            left.append(((self.total - t.step_count) * (now - s.t_start) / max(done, 1), None))
        if c["time_budget"]:
            left.append((c["time_budget"] - s.elapsed(), "time budget"))
        if not left:
            return "no limit set"
        seconds, what = min(left, key=lambda x: x[0])
        bound = "≤" if c["patience"] else ""
        return (f"eta {bound}{fmt_time(seconds)}{f' ({what})' if what else ''}"
                f"{', sooner on a plateau' if c['patience'] else ''}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def describe_limits(c: dict, W: int) -> str:
    """The first line about the run's length: every rule that can stop it."""
    rules = []
    if c["max_steps"]:
        rules.append(f"{c['max_steps']:,} steps")
    if c["epochs"]:
        rules.append(f"{c['epochs']} epochs ({c['epochs'] * W:,} steps)")
    if c["time_budget"]:
        rules.append(f"{fmt_time(c['time_budget'])} of training (--time-budget)")
    if c["patience"]:
        rules.append(f"{c['patience']} evaluations in a row without a better validation loss (--patience)")
    return "stops at the first of: " + ("; ".join(rules) if rules else "Ctrl-C (no limit set)")


def fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60:02d}:{seconds % 60:02d}"



def default_prime(chars) -> str:
    """Samples start from a newline (a fresh line of the play) if the vocabulary has one."""
    return "\n" if "\n" in chars else chars[0]


# -----------------------------------------------------------------------------
# The named pieces of the loop: save, evaluate, sample, finish
# -----------------------------------------------------------------------------

def save(run: Run, name: str) -> None:
    """Write out/<name> (a checkpoint) atomically; never with inf/NaN weights."""
    t, s = run.trainer, run.state
    bad = [k for k, v in t.params.items() if not np.isfinite(v).all()]
    if bad:                                         # never overwrite a good checkpoint with inf/NaN weights
        raise _Diverged(f"the weights {', '.join(bad)} hold inf or NaN")
    meta = {**t.state(), "config": run.c, "best_val_loss": s.best_val_loss, "best_step": s.best_step,
            "evals_since_best": s.evals_since_best, "elapsed": s.elapsed(),
            "train_seconds": s.step_seconds_before + s.step_seconds}
    checkpoints.save_checkpoint(run.out / name, *t.checkpoint_arrays(), run.chars, t.h, meta, run.rng)


def evaluate_and_save(run: Run, log, show: Progress) -> None:
    """Validation loss now; save best.npz if it is the best so far, and last.npz; log and print it."""
    t, s = run.trainer, run.state
    prior = None if run.val_prior is None else (run.c["ngram_prior"], run.val_prior)
    r = rnn.evaluate(t.model_params, run.val_ids, prior=prior)
    if not math.isfinite(r["nats"]):
        raise _Diverged(f"the validation loss is {r['nats']:.4g} nats/char")
    s.last_eval_step = t.step_count
    improved = s.best_val_loss is None or r["nats"] < s.best_val_loss
    if improved:
        s.best_val_loss, s.best_step, s.evals_since_best = r["nats"], t.step_count, 0
        save(run, "best.npz")
    else:
        s.evals_since_best += 1
    save(run, "last.npz")
    s.saved_step = t.step_count
    log.write("val", **run.stamp(), val_loss=r["nats"], val_bits=r["bits"])
    loss, _ = s.recent_loss()
    show.refresh(run)                                # the bar shows the same epoch as this line
    show.say(f"step {t.step_count} | epoch {epochs_done(t):.2f} | train {'-' if loss is None else f'{loss:.3f}'} | "
             f"val {r['nats']:.4f} nats/char ({r['bits']:.4f} bits){prior_note(run)}{ema_note(run)}"
             f"{' | best' if improved else ''} | {s.chars_per_sec(t) / 1000:.0f}k chars/s | {fmt_time(s.elapsed())}")


def prior_note(run: Run) -> str:
    """With --ngram-prior the validation loss is the product's, not the RNN's alone: say so."""
    b = run.c["ngram_prior"]
    return f" (RNN x {DISTILL_ORDER}-gram^{b:g}, renormalised)" if b else ""


def ema_note(run: Run) -> str:
    """While the weight average covers fewer than 1/(1-d) steps it is mostly the initial weights: say so."""
    d, n = run.c["ema"], run.trainer.step_count
    if not d or d ** n <= math.exp(-1):             # d^n: the initial weights' share; e^-1 at n = 1/(1-d)
        return ""
    return (f" (weight average of {n} steps so far: {d ** n:.0%} of it is still the initial weights, "
            f"so this is close to {'the counts alone' if run.c['ngram_prior'] else 'a uniform guess'})")


def sample_and_log(run: Run, log, show: Progress) -> None:
    c, t = run.c, run.trainer
    prime = default_prime(run.chars)
    text = rnn.sample_text(t.model_params, run.chars, prime, c["sample_length"], c["temperature"], run.rng)
    log.write("sample", **run.stamp(), temperature=c["temperature"], prime=prime, text=text)
    show.say(f"----- sample at step {t.step_count} (epoch {epochs_done(t):.2f}, "
             f"temperature {c['temperature']:g}) -----\n{prime.lstrip(chr(10)) + text}\n-----")


def diverged_message(run: Run, problem: str, lr: float) -> str:
    c, s = run.c, run.state
    kept = (f"the last good checkpoint is kept: {run.out / 'last.npz'} (step {s.saved_step})"
            if s.saved_step is not None else "no checkpoint had been saved yet")
    clip = f"--clip {c['clip']:g}" if c["clip"] else "--clip 0 turned clipping off"
    return (f"training diverged at step {run.trainer.step_count}: {problem} (a uniform guess scores "
            f"ln V = {math.log(len(run.chars)):.2f}); lower --learning-rate (now {lr:g}) and check the "
            f"gradient clipping ({clip}); {kept}")


def finish(run: Run, log, reason: str, message: Optional[str], lr: float) -> dict:
    """The final numbers: the log's end entry and metrics.json."""
    t, s = run.trainer, run.state
    final_loss, final_steps = s.recent_loss()
    best = s.best_val_loss
    metrics = {
        "reason": reason,
        "best_val_loss": best,
        "best_val_bits": best / math.log(2) if best is not None else None,
        "best_step": s.best_step,
        "final_train_loss": final_loss,              # mean of the last final_train_steps steps
        "final_train_steps": final_steps,
        "smooth_loss": t.smooth_loss,                # min-char-rnn's running average, started at ln V
        "steps": t.step_count,
        "epochs": round(epochs_done(t), 6),
        "chars": t.chars_seen,
        "seconds": round(s.elapsed(), 3),
        "chars_per_sec": round(s.chars_per_sec(t), 1) or None,
        "checkpoint": str(run.out / "last.npz") if s.saved_step is not None else None,
        "best_checkpoint": str(run.out / "best.npz") if s.best_step is not None else None,
    }
    if message:
        metrics["message"] = message
    metrics = json.loads(runlog.encode("end", **{k: v for k, v in metrics.items() if k != "steps"})) \
        | {"steps": t.step_count}                    # the schema's types; NaN/inf as null
    metrics.pop("kind")
    log.write("end", **{**run.stamp(), **{k: v for k, v in metrics.items() if k != "steps"}}, lr=lr)
    atomic_write_text(run.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


# -----------------------------------------------------------------------------
# Training
# -----------------------------------------------------------------------------

def train(config: dict, resume=None, *, quiet: bool = False, progress: Optional[bool] = None,
          overwrite: bool = True, max_text_mb: Optional[float] = None) -> dict:
    """Train with the settings dict `config` (see resolve_config); returns the final metrics.

    resume: path of a checkpoint to continue from (its vocabulary must match the data).
    progress: show a tqdm bar (None: only if stderr is a terminal and not quiet).
    overwrite: False refuses an --out that holds a previous run (the command line's default).
    max_text_mb: the largest text to read (default: safeio.TEXT_MAX_BYTES, 100 MB).
    The metrics' "reason" says why training stopped: epochs, max_steps, time_budget,
    plateau, interrupted (Ctrl-C; a checkpoint was saved) or diverged (no new checkpoint;
    the previous checkpoint is kept; "message" explains).
    Raises UserError / CheckpointError / LogError / ValueError (one-line messages) before
    any file is written if the settings, the data, the checkpoint or the log cannot be used.
    """
    c = dict(config)
    check_config(c)
    show = Progress(quiet, (sys.stderr.isatty() and not quiet) if progress is None else progress)
    run = prepare(c, resume, lambda w: print(w, file=sys.stderr), show.show_bar, max_text_mb,   # writes nothing
                  say=(lambda *a: None) if quiet else print)
    t, s, lnV = run.trainer, run.state, math.log(len(run.chars))
    show.say(f"settings: {c}")
    info = run.log_info()
    show.say(f"data: {run.data_path}, {len(run.train_ids) + len(run.val_ids):,} chars, {info['vocab_size']} "
             f"distinct; train {info['train_chars']:,}, validation {info['val_chars']:,}; one epoch = "
             f"{info['windows_per_epoch']} steps of {c['batch_size']} streams x {c['seq_length']} chars = "
             f"{info['chars_per_epoch']:,} chars; {describe_limits(c, info['windows_per_epoch'])}")

    with OutputLock(run.out), StopOnSigint() as sigint:
        claim_output_folder(run.out, resuming=resume is not None, overwrite=overwrite)
        log_path = run.out / runlog.LOG_NAME
        if resume is not None:                       # the log cut back to the checkpoint's step
            runlog.rewrite(log_path, run.log_content)
        with runlog.RunLogWriter(log_path, fresh=resume is None) as log:
            if resume is None:
                log.write("config", **c, **info)
            else:
                log.write("resume", step=t.step_count, checkpoint=run.resume, config=c)
                show.say(f"resumed from {resume} at step {t.step_count} (epoch {epochs_done(t):.2f}, "
                         f"{s.elapsed_before:.0f} s trained so far)")
            s.t_start = time.perf_counter()
            show.open(run)
            reason, message, lr = None, None, c["learning_rate"]
            due = lambda every: every and t.step_count % every == 0    # noqa: E731 (every N steps; 0 = never)
            try:
                # --- the loop: one step, then whatever is due at this step ---
                while not (reason := stop_reason(c, t, s, sigint)):
                    lr = learning_rate_at(c, t.step_count, epochs_done(t), s.elapsed())
                    log_now = bool(c["log_every"]) and (t.step_count + 1) % c["log_every"] == 0
                    t0 = time.perf_counter()
                    loss = t.step(lr, measure=log_now)
                    s.step_seconds += time.perf_counter() - t0
                    s.recent.append(loss)
                    problem = divergence(loss, s.recent, t.step_count, lnV)
                    if problem:
                        raise _Diverged(problem)
                    show.update(run)
                    if log_now:
                        log.write("train", **run.stamp(), loss=loss, smooth_loss=t.smooth_loss, lr=lr,
                                  grad_norm=t.grad_norms, clip_frac=t.clip_fractions)
                    if due(c["sample_every"]):
                        sample_and_log(run, log, show)
                    if len(run.val_ids) and due(c["eval_every"]):
                        evaluate_and_save(run, log, show)
                # --- the end: a last evaluation and checkpoint ---
                if reason != "interrupted" and len(run.val_ids) and s.last_eval_step != t.step_count:
                    evaluate_and_save(run, log, show)
                if s.saved_step != t.step_count:
                    save(run, "last.npz")
                    s.saved_step = t.step_count
            except _Diverged as e:
                reason, message = "diverged", diverged_message(run, str(e), lr)
            finally:
                show.close()
            metrics = finish(run, log, reason, message, lr)
    if reason not in ("diverged", "interrupted"):
        best_txt = (f"best val {metrics['best_val_loss']:.4f} nats/char ({metrics['best_val_bits']:.4f} bits) "
                    f"at step {s.best_step}; " if s.best_val_loss is not None else "")
        show.say(f"done ({reason}): {t.step_count} steps, {epochs_done(t):.2f} epochs, "
                 f"{fmt_time(s.elapsed())}; {best_txt}checkpoints and logs in {run.out}/")
    return metrics


# -----------------------------------------------------------------------------
# Sampling from a checkpoint
# -----------------------------------------------------------------------------

def sample_from_checkpoint(checkpoint, prime: Optional[str] = None, length: int = 200,
                           temperature: float = 1.0, seed: Optional[int] = None) -> str:
    """prime + `length` sampled characters from a saved checkpoint."""
    ck = checkpoints.load_checkpoint(checkpoint)
    chars = ck["chars"]
    if prime is None:
        prime = default_prime(chars)
    if not prime:
        raise UserError("the prime is empty; give at least one character (or leave --prime out)")
    unknown = sorted(set(prime) - set(chars))
    if unknown:
        shown = ", ".join(repr(ch) for ch in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        raise UserError(f"the prime has {len(unknown)} character(s) not in the checkpoint's vocabulary: "
                        f"{shown} (it knows {len(chars)} characters)")
    rng = np.random.default_rng(seed)
    return prime + rnn.sample_text(ck["params"], chars, prime, length, temperature, rng)


# -----------------------------------------------------------------------------
# The n-gram baseline: counting instead of learning
# -----------------------------------------------------------------------------
# python train_minimal.py --ngram [--orders 1-10] [--checkpoint out/best.npz]
# fits ngram.NGram (interpolated Kneser-Ney) of each order on the
# training split, prints its validation loss, samples from the best order, and,
# given an RNN checkpoint, mixes the two per character:
#   p_mix(w) = lam * p_rnn(w) + (1 - lam) * p_ngram(w)
# with lam chosen on one half of the validation text and reported on the other
# (analysis.mixture_halves). Given --checkpoint more than once (RNNs trained from
# different seeds, say), p_rnn is the mean of their probabilities, an ensemble
# (analysis.ensemble_logprobs), and each one's own loss is printed too. It also
# reports the product of the two, p ~ p_rnn^a * p_ngram^b renormalised, with (a, b)
# fitted on one half and reported on the other (analysis.product_halves).

NGRAM_FILE = "ngram.json"


def parse_orders(spec: str) -> list[int]:
    """"1-10" -> [1, ..., 10]; "7" -> [7]; "3,5,7" -> [3, 5, 7]. UserError if malformed."""
    orders = []
    try:
        for part in str(spec).split(","):
            lo, _, hi = part.strip().partition("-")
            orders += list(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        orders = []
    if not orders or min(orders) < 1 or max(orders) > 30:
        raise UserError(f"--orders {spec!r}: give orders between 1 and 30 as a range (1-10), "
                        "one order (7) or a list (3,5,7)")
    return sorted(set(orders))


def ngram_baseline(data, out, orders, *, checkpoint_paths=(), val_fraction: float = 0.1,
                   temperature: float = 0.8, seed: int = 1337, sample_length: int = 300,
                   quiet: bool = False) -> dict:
    """Fit an n-gram of each order, compare on validation, sample the best; write out/ngram.json.

    checkpoint_paths: RNN checkpoint paths to mix with the best order (none: no mixture;
    several: their ensemble, the mean of their probabilities).
    Returns what it writes: {"data", "val_chars", "table": [{"order", "val_nats",
    "val_bits", "fit_seconds", "eval_seconds"}], "best_order", "temperature",
    "seed", "sample", and with checkpoints "mixture": {"checkpoints", "rnn_nats_each",
    "rnn_nats" (of the ensemble, or of the one RNN), "order", "grid", "halves" (the
    mixture, analysis.mixture_halves), "product" (analysis.product_halves)}}.
    """
    say = (lambda *a: None) if quiet else print
    out = check_out_dir(out)
    try:
        rnn.check_temperature(temperature)
    except ValueError as e:
        raise UserError(f"--temperature: {e}") from None
    data_path, chars, train_ids, val_ids = load_data(data, val_fraction, progress=not quiet)
    if len(val_ids) < 2:
        raise UserError("the n-gram comparison needs a validation split: set --val-fraction > 0")
    paths = [os.fspath(c) for c in checkpoint_paths]
    loaded = [checkpoints.load_checkpoint(c, expected_chars=chars) for c in paths]   # fail before any counting
    models = [ck["params"] for ck in loaded]
    priors = [(ck["meta"].get("config") or {}).get("ngram_prior", 0) for ck in loaded]   # --ngram-prior partners
    V = len(chars)
    say(f"data: {data_path}, vocabulary {V}; train {len(train_ids):,} chars, validation {len(val_ids):,}")
    say(f"{'order':>5} {'val nats':>9} {'val bits':>9} {'fit s':>7} {'eval s':>7}")
    table, best = [], None
    for order in orders:
        t0 = time.perf_counter()
        model = ngram.NGram(order).fit(train_ids, V)
        t1 = time.perf_counter()
        r = model.evaluate(val_ids)
        t2 = time.perf_counter()
        row = {"order": order, "val_nats": r["nats"], "val_bits": r["bits"],
               "fit_seconds": t1 - t0, "eval_seconds": t2 - t1}
        table.append(row)
        say(f"{order:>5} {r['nats']:>9.4f} {r['bits']:>9.4f} {t1 - t0:>7.2f} {t2 - t1:>7.2f}")
        if best is None or r["nats"] < best[1]["val_nats"]:
            best = (model, row)
    model, row = best
    prime = default_prime(chars)
    sample = model.sample_text(chars, prime, sample_length, temperature, np.random.default_rng(seed))
    say(f"best: order {row['order']}, {row['val_nats']:.4f} nats/char; sample at temperature {temperature:g}:")
    say(prime + sample)
    result = {"data": str(data_path), "val_chars": int(len(val_ids) - 1), "table": table,
              "best_order": row["order"], "temperature": temperature, "seed": seed, "sample": sample}
    if models:
        targets = np.asarray(val_ids[1:], dtype=np.int64)        # (M,) the characters to predict
        rows = np.arange(targets.size)
        each = []                                                # K x (M,) log p of each target

        def table(params):                                       # (M,V) one RNN's log p_t, and its targets' column
            t = rnn.logprob_table(params, val_ids)
            each.append(t[rows, targets])
            return t

        table_rnn = ensemble_logprobs(table(p) for p in models)  # (M,V) log of the mean distribution, one RNN at a time
        lp_rnn = table_rnn[rows, targets]                        # (M,) log of the mean probability
        table_ngram = model.logprob_table(val_ids)               # (M,V) log p_ngram
        lp_ngram = table_ngram[rows, targets]                    # (M,)
        halves = mixture_halves(lp_rnn, lp_ngram)
        product = product_halves([table_rnn, table_ngram], targets)
        result["mixture"] = {"checkpoints": paths, "rnn_nats_each": [float(-lp.mean()) for lp in each],
                             "rnn_nats": float(-lp_rnn.mean()), "order": row["order"], "grid": list(MIX_GRID),
                             "halves": halves, "product": product}
        for path, lp, b in zip(paths, each, priors):
            say(f"RNN {path}: {-lp.mean():.4f} nats/char on validation (one stream from h = 0)")
            if b:
                say(f"  (trained with --ngram-prior {b:g}, as a {DISTILL_ORDER}-gram's partner: alone it knows only "
                    "what the counts miss: read the product below)")
        if len(models) > 1:
            say(f"ensemble of the {len(models)} RNNs (mean of their probabilities): {-lp_rnn.mean():.4f} nats/char")
        say(f"mixture lam*RNN + (1-lam)*{row['order']}-gram, lam picked on one half of validation:")
        for h in halves:
            say(f"  lam={h['lambda']:.2f} (from the {h['choose_on']} half) on the {h['report_on']} half: "
                f"mixture {h['mix_nats']:.4f}, RNN {h['rnn_nats']:.4f}, n-gram {h['ngram_nats']:.4f} nats/char")
        say(f"product p_RNN^a * p_{row['order']}-gram^b (renormalised), a and b fitted on one half:")
        for h in product:
            a, b = h["weights"]
            say(f"  a={a:.3f}, b={b:.3f} (from the {h['choose_on']} half) on the {h['report_on']} half: "
                f"product {h['product_nats']:.4f} nats/char")
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_text(out / NGRAM_FILE, json.dumps(result, indent=2) + "\n")
    say(f"wrote {path}")
    return result


def _main_ngram(args) -> int:
    if args.sample_only or args.resume:
        raise UserError("--ngram cannot be combined with --sample-only or --resume")
    c = resolve_config(args.preset or "default", data=args.data, out=args.out, val_fraction=args.val_fraction,
                       temperature=args.temperature, seed=args.seed)
    length = args.sample_length if args.sample_length is not None else 300
    if not (isinstance(length, int) and length > 0):
        raise UserError(f"--length must be an integer > 0, got {length}")
    if not (math.isfinite(c["val_fraction"]) and 0 < c["val_fraction"] < 1):
        raise UserError(f"--val-fraction must be in (0, 1) for the n-gram comparison, got {c['val_fraction']!r}")
    ngram_baseline(c["data"], c["out"], parse_orders(args.orders), checkpoint_paths=args.checkpoint or (),
                   val_fraction=c["val_fraction"], temperature=c["temperature"], seed=c["seed"],
                   sample_length=length, quiet=args.quiet)
    return EXIT_OK


# -----------------------------------------------------------------------------
# Command line
# -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    D, TB = PRESETS["default"], PRESETS["textbook"]

    def dflt(k):
        show = lambda v: "none" if v is None else v
        return f"(default: {show(D[k])}; textbook: {show(TB[k])})"

    p = ArgumentParser(
        prog="python train_minimal.py",
        description="Train a character-level vanilla RNN (implementation.py) on a text file, "
                    "with progress, validation, safe checkpoints and exact resume; or sample from "
                    "a checkpoint. An EPOCH is one full pass over the training split (the first "
                    "1 - val-fraction of the text).",
        epilog="Exit status: 0 done, 2 bad input, 3 training diverged, 130 interrupted (Ctrl-C saves "
               "out/last.npz first). The loss is the cross-entropy per character, in nats "
               "(bits = nats / ln 2); the progress bar shows the mean of the last "
               f"{DISPLAY_STEPS} steps and the time left to the nearest limit: with a --time-budget or "
               "--patience that is an upper bound (eta <=), since a plateau can stop the run sooner. "
               f"{DIVERGENCE_HELP} One run at a time per --out folder (a lock file, out/{LOCK_NAME}); a "
               "new run refuses an --out that holds a previous run unless --overwrite. "
               + runlog.format_help())

    g = p.add_argument_group("data and output")
    g.add_argument("--data", metavar="PATH", help=f"UTF-8 text file to train on; {DEFAULT_DATA} and data/federalist.txt "
                                  f"are downloaded if missing (default: {DEFAULT_DATA})")
    g.add_argument("--max-text-mb", type=float, metavar="MB",
                   help="read at most this many MB of --data (default: 100), so that a wrong file "
                        "cannot fill the memory")
    g.add_argument("--val-fraction", type=float, metavar="X", help="the last fraction of the text held out for "
                                                      f"validation, 0 = none {dflt('val_fraction')}")
    g.add_argument("--out", metavar="DIR", help=f"folder for last.npz, best.npz, log.jsonl and metrics.json "
                                 f"(default: {DEFAULT_OUT}; with --resume, the checkpoint's folder)")
    g.add_argument("--overwrite", action="store_true", help="replace the previous run in --out (without it, "
                   "a new run refuses a folder that holds last.npz, best.npz, log.jsonl or metrics.json)")

    g = p.add_argument_group("model and optimiser")
    g.add_argument("--preset", choices=sorted(PRESETS),
                   help="starting settings that other flags override: default (the quick start: 12,000 steps "
                        "of H=256 with a warmup, a cosine decay and a moving average of the weights), "
                        "textbook (min-char-rnn exactly: B=1, hidden 100, unroll 25, Adagrad lr 0.1, "
                        "clip 5, float64, init 0.01), fast (20,000 steps of a larger model) or long (the fast "
                        "preset with dropout 0.05 for 50,000 steps) (default: default)")
    g.add_argument("--hidden-size", type=int, metavar="N", help=f"hidden units H {dflt('hidden_size')}")
    g.add_argument("--seq-length", type=int, metavar="N", help=f"steps T to unroll (backprop through time) "
                                                  f"{dflt('seq_length')}")
    g.add_argument("--batch-size", type=int, metavar="N", help=f"parallel streams B {dflt('batch_size')}")
    g.add_argument("--optimizer", choices=("adagrad", "adam"), help=f"optimiser {dflt('optimizer')}")
    g.add_argument("--learning-rate", "--lr", type=float, metavar="LR", help=f"learning rate {dflt('learning_rate')}")
    g.add_argument("--lr-schedule", choices=("constant", "cosine"),
                   help="constant, or cosine: decay from --learning-rate to --min-lr over the run, by "
                        "progress = the largest of step/max-steps, epochs done/epochs and "
                        "elapsed/time-budget that are set (a time-based schedule is not bit-reproducible) "
                        f"{dflt('lr_schedule')}")
    g.add_argument("--warmup-steps", type=int, metavar="N", help="raise the learning rate linearly from "
                   f"almost 0 over the first N steps, then follow --lr-schedule; 0 = off {dflt('warmup_steps')}")
    g.add_argument("--min-lr", type=float, metavar="LR", help=f"final learning rate of the cosine schedule {dflt('min_lr')}")
    g.add_argument("--clip", type=float, metavar="X", help=f"clip every gradient entry to [-clip, clip], 0 = off "
                                              f"{dflt('clip')}")
    g.add_argument("--dtype", choices=("float32", "float64"), help=f"floating-point type {dflt('dtype')}")
    g.add_argument("--init-scale", type=float, metavar="X", help=f"weights start as N(0,1) * init-scale {dflt('init_scale')}")
    g.add_argument("--seed", type=int, metavar="N", help=f"random seed for the weights, samples "
                                            f"and epoch offsets {dflt('seed')}")
    g.add_argument("--random-offsets", action=argparse.BooleanOptionalAction,
                   help="start every epoch after the first at a random character of the text, so the "
                        f"unrolled windows cut it in new places each time {dflt('random_offsets')}")
    g.add_argument("--ema", type=float, metavar="D", help="also keep a moving average of the weights, "
                   "avg = D*avg + (1-D)*weights after each step, and evaluate, sample and save it "
                   f"(0.998: about the last 500 steps); 0 = off {dflt('ema')}")
    g.add_argument("--dropout", type=float, metavar="P", help="train with dropout P on the connections that "
                   "carry no memory, the input term Wxh x_t and the output layer's view of h_t (never "
                   "the recurrence); evaluation, samples and checkpoints use the plain model; 0 = off "
                   f"{dflt('dropout')}")
    g.add_argument("--distill", type=float, metavar="A", help="distil a count model into the RNN: train "
                   f"toward (1-A) x the next character + A x a {DISTILL_ORDER}-gram's distribution for it, the "
                   "n-gram fitted on the other half of the training split (260 MB and about 8 s more for tiny "
                   f"Shakespeare); 0 = off {dflt('distill')}")
    g.add_argument("--ngram-prior", type=float, metavar="B", help="train the RNN as a count model's partner: "
                   f"every prediction in training is softmax(RNN logits + B x log p) with p a {DISTILL_ORDER}-gram's "
                   f"distribution, the n-gram fitted on the other {PRIOR_FOLDS - 1} of {PRIOR_FOLDS} parts of the "
                   "training split, so the RNN learns what the counts miss; the validation loss is then the same "
                   "product's, with a 7-gram of the whole split (about 0.5 GB and 20-45 s more for tiny "
                   f"Shakespeare); 0 = off {dflt('ngram_prior')}")
    g.add_argument("--weight-decay", type=float, metavar="W", help="before each step, shrink the matrices Wxh, "
                   "Whh and Why (not the biases) by learning_rate x W of themselves (decoupled weight "
                   f"decay, as in AdamW); 0 = off {dflt('weight_decay')}")

    g = p.add_argument_group("how long")
    g.add_argument("--epochs", type=int, metavar="N", help=f"stop after this many full passes over the training split "
                                              f"{dflt('epochs')}")
    g.add_argument("--max-steps", type=int, metavar="N", help="stop when the run has done this many steps in total, "
                                                 f"counting those before a --resume {dflt('max_steps')}")
    g.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop after this much training time in total, counting the time before a "
                        f"--resume {dflt('time_budget')}")
    g.add_argument("--patience", type=int, metavar="N", help="stop when the validation loss has not improved for this "
                                                f"many evaluations, 0 = never {dflt('patience')}")
    g.add_argument("--resume", metavar="PATH", help="continue the run saved in this checkpoint exactly, with "
                                                    "its settings (flags such as --max-steps override them)")

    g = p.add_argument_group("monitoring")
    g.add_argument("--sample-every", type=int, metavar="N", help=f"print a sample every N steps, 0 = never {dflt('sample_every')}")
    g.add_argument("--eval-every", type=int, metavar="N", help="compute the validation loss and save last.npz/best.npz "
                                                  f"every N steps, 0 = only at the end {dflt('eval_every')}")
    g.add_argument("--log-every", type=int, metavar="N", help=f"write a train line to log.jsonl every N steps, 0 = never "
                                                 f"{dflt('log_every')}")
    g.add_argument("--sample-length", "--length", type=int, metavar="N", dest="sample_length",
                   help=f"characters per sample {dflt('sample_length')}")
    g.add_argument("--temperature", type=float, metavar="T", help="sampling temperature: < 1 more likely characters, "
                                                     f"> 1 more surprises {dflt('temperature')}")
    g.add_argument("--quiet", action="store_true", help="print only errors (and, with --sample-only, the sample)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (also off when stderr is "
                                                              "not a terminal)")
    g.add_argument("--threads", type=int, metavar="N", help=f"BLAS threads for NumPy (default: ${THREADS_ENV} "
                   "or 1). One is the default because the matrices here are small: a second thread gains "
                   "little, and on a machine with other work running the threads wait on each other and "
                   "training gets many times slower")

    g = p.add_argument_group("sampling from a checkpoint (no training)")
    g.add_argument("--sample-only", action="store_true", help="print a sample from --checkpoint and exit")
    g.add_argument("--checkpoint", metavar="PATH", action="append",
                   help="checkpoint to sample from (e.g. out/best.npz); with --ngram, the RNN to mix with the "
                        "n-gram, and given more than once, RNNs whose mean probability (an ensemble) is mixed")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--prime", metavar="TEXT", help="text to start from (default: a newline)")
    m.add_argument("--prime-file", metavar="PATH", help="UTF-8 file whose text to start from")
    g = p.add_argument_group("n-gram baseline (no training)")
    g.add_argument("--ngram", action="store_true", help="fit Kneser-Ney character n-grams of --orders on the training "
                   "split, print their validation loss, sample the best, write --out/ngram.json; with "
                   "--checkpoint also mix the best with that RNN (or with several, averaged)")
    g.add_argument("--orders", default="1-10", metavar="A-B", help="n-gram orders for --ngram (default: %(default)s)")
    return p


CONFIG_FLAGS = ("data", "out", "val_fraction", "hidden_size", "seq_length", "batch_size", "optimizer",
                "learning_rate", "lr_schedule", "min_lr", "clip", "dtype", "init_scale", "seed",
                "random_offsets", "ema", "dropout", "weight_decay", "distill", "ngram_prior", "warmup_steps", "epochs",
                "max_steps", "time_budget", "patience", "sample_every", "eval_every", "log_every",
                "sample_length", "temperature")


def config_from_args(args) -> dict:
    """The resolved settings: the preset (or the resumed checkpoint's settings) plus the given flags."""
    given = {k: getattr(args, k) for k in CONFIG_FLAGS if getattr(args, k) is not None}
    if args.resume is None:
        return resolve_config(args.preset or "default", **given)
    if args.preset is not None:
        raise UserError("--preset cannot be combined with --resume: a resumed run keeps its checkpoint's "
                        "settings (override single flags instead)")
    ck = checkpoints.load_checkpoint(args.resume)            # CheckpointError: missing / corrupted
    base = ck["meta"].get("config")
    if not isinstance(base, dict):
        raise UserError(f"{args.resume}: this checkpoint was not saved by train_minimal.py "
                        "(no settings in it), so it cannot be resumed here")
    for k in FROZEN_ON_RESUME:
        if k in given and given[k] != base.get(k):
            raise UserError(f"--{k.replace('_', '-')} {given[k]} differs from the checkpoint's {base.get(k)}; "
                            f"a resumed run keeps {', '.join(FROZEN_ON_RESUME)}")
    if "data" not in given:
        stored = base.get("data")
        if not known_corpus_path(stored):
            raise UserError(f"--resume {args.resume}: give the text it was trained on with --data PATH (the "
                            "checkpoint's own data setting is used only for the known corpora "
                            f"{', '.join(f'data/{k.filename}' for k in CORPORA.values())})")
        if not args.quiet:
            print(f"data: the checkpoint's {stored} (give --data PATH to use another copy)")
        given["data"] = stored
    given.setdefault("out", str(Path(args.resume).parent))
    base = {"random_offsets": False, "ema": 0.0, "dropout": 0.0, "weight_decay": 0.0, "distill": 0.0,
            "ngram_prior": 0.0, "warmup_steps": 0, **base}   # settings older checkpoints did not store
    return resolve_config(base=base, **given)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input, 3 diverged, 130 Ctrl-C)."""
    parser = build_parser()
    if argv is not None:                            # accept paths and numbers from Python callers
        argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
    try:
        args = parser.parse_args(argv)
        setup_numpy(args.threads)                   # BLAS threads (1 unless --threads / RNN_THREADS), memory reuse
        if args.ngram:
            return _main_ngram(args)
        if args.sample_only:
            return _main_sample(args)
        if args.checkpoint or args.prime is not None or args.prime_file:
            raise UserError("--checkpoint, --prime and --prime-file go with --sample-only "
                            "(to continue training from a checkpoint, use --resume)")
        config = config_from_args(args)
        if args.max_text_mb is not None and not (math.isfinite(args.max_text_mb) and args.max_text_mb > 0):
            raise UserError(f"--max-text-mb must be a number of megabytes > 0, got {args.max_text_mb!r}")
        metrics = train(config, resume=args.resume, quiet=args.quiet, overwrite=args.overwrite,
                        max_text_mb=args.max_text_mb,
                        progress=False if (args.no_progress or args.quiet) else None)
    except (UserError, checkpoints.CheckpointError, DownloadError, ValueError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("error: out of memory; use a smaller --hidden-size, --batch-size or --seq-length", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:                            # a read-only folder, a full disk
        where = f" {e.filename}" if e.filename else ""
        print(f"error: cannot read or write{where}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted (a second Ctrl-C stops without saving; the previous checkpoint, "
              "if any, is intact)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if metrics["reason"] == "diverged":
        print(f"error: {metrics['message']}", file=sys.stderr)
        return EXIT_DIVERGED
    if metrics["reason"] == "interrupted":
        ck = metrics["checkpoint"]
        print(f"interrupted at step {metrics['steps']}: saved {ck}; resume with: "
              f"python train_minimal.py --resume {ck}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


# Flags --sample-only does not use: naming them is better than ignoring them.
SAMPLE_ONLY_IGNORES = tuple(k for k in CONFIG_FLAGS if k not in ("sample_length", "temperature", "seed")) \
    + ("resume", "overwrite")


def _main_sample(args) -> int:
    if not args.checkpoint:
        raise UserError("--sample-only needs --checkpoint PATH (e.g. out/best.npz)")
    if len(args.checkpoint) > 1:
        raise UserError(f"--sample-only samples from one --checkpoint, got {len(args.checkpoint)}")
    ignored = [f"--{k.replace('_', '-')}" for k in SAMPLE_ONLY_IGNORES if getattr(args, k) not in (None, False)]
    if ignored:
        raise UserError(f"--sample-only only samples from --checkpoint; it would ignore {', '.join(ignored)} "
                        "(drop them, or train without --sample-only)")
    c = resolve_config(args.preset or "default", sample_length=args.sample_length,
                       temperature=args.temperature, seed=args.seed)
    if not (isinstance(c["sample_length"], int) and c["sample_length"] > 0):
        raise UserError(f"--length must be an integer > 0, got {c['sample_length']}")
    try:
        rnn.check_temperature(c["temperature"])
    except ValueError as e:
        raise UserError(f"--temperature: {e}") from None
    if c["seed"] is not None:
        check_seed(c["seed"])
    prime = args.prime
    if args.prime_file:
        check_regular_file(args.prime_file, "--prime-file")
        prime = safeio.read_text(args.prime_file)
    text = sample_from_checkpoint(args.checkpoint[0], prime, c["sample_length"], c["temperature"], c["seed"])
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return EXIT_OK


def check_regular_file(path, flag: str) -> None:
    """A one-line error unless `path` is a regular file (never open a FIFO or a device: it can block)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{flag} {path}: no such file") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{flag} {path} is a folder; give a UTF-8 text file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{flag} {path} is not a regular file (a pipe, a device or a socket); "
                        "give a UTF-8 text file")


if __name__ == "__main__":
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)    # from here on Ctrl-C is KeyboardInterrupt
        status = main()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    sys.exit(status)
