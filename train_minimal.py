"""Train the char-RNN of implementation.py from the shell, and sample from it.

Quick start (downloads tiny Shakespeare into data/ if it is missing):

    python train_minimal.py --data data/tiny_shakespeare.txt --epochs 200

Its first line says what the run will do: the preset, the hidden size, what ends
the run and about how long that takes. Then it shows a progress bar (steps out of the
run's length), prints a sample every --sample-every steps and the validation loss
every --eval-every steps, and keeps in --out (default out/):

    last.npz, best.npz   checkpoints (best = lowest validation loss), checkpoints.py's format
    log.jsonl            one JSON object per line, every setting first (runlog.py; LOG FORMAT in --help-all)
    metrics.json         the final numbers

More (--help shows the options a first day needs, --help-all every one):

    python train_minimal.py --preset textbook --max-steps 300     # min-char-rnn's exact settings
    python train_minimal.py --preset fast                          # the README's better model: 20,000 steps
    python train_minimal.py --resume out/last.npz                  # continue a run exactly
    python train_minimal.py --sample-only --checkpoint out/best.npz --prime "ROMEO:" --length 300

What lives where. implementation.py owns the model, the data walk, the optimisers,
sampling and evaluation; checkpoints.py the checkpoint format; settings.py every
training setting (its value in each preset, flag, help and check); runlog.py the
format of log.jsonl. This file owns the rest of a training run:

    the settings      the checks that join two settings, the memory a setting needs
    the output folder one run at a time (a lock), never a previous run replaced by accident
    the learning-rate schedule (constant or cosine, with warmup): learning_rate_at
    the divergence policy: divergence()
    when to stop: stop_reason(); Ctrl-C, SIGTERM, SIGHUP: StopSignals
    the loop, train() and run_loop(), with its named pieces: TrainingRun (the run's
    settings, data and trainer), RunCounters (its counters), plan_line() and Progress
    (what the user sees), evaluate_and_save(), finish() (metrics.json)
    the command line  build_parser(), made from settings.py

From Python (a notebook, an exercise): ``train(resolve_config("fast", data=...))``.
"""

if __name__ == "__main__":
    # Ctrl-C, kill or a closed terminal while the imports below load (NumPy alone takes a
    # moment): one line, exit 128 + the signal's number (130 for Ctrl-C). This is the file's
    # first statement (so no `from __future__ import`: importing that module is itself a moment
    # in which Ctrl-C would print a traceback). _signal is the interpreter's built-in module,
    # already loaded; `signal` itself takes time. StopSignals takes over before main() runs.
    import _signal
    import os as _os

    def _interrupted_while_starting(signum, frame):
        _os.write(2, b"error: interrupted while starting; nothing was written\n")
        _os._exit(128 + signum)
    for _name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(_signal, _name):
            _signal.signal(getattr(_signal, _name), _interrupted_while_starting)

import os
import signal
import sys

import argparse
import collections
import contextlib
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
from analysis import (MIX_GRID, ensemble_logprobs, fit_product, mixture_cross_validated, mixture_nats,
                      product_cross_validated, product_nats)
import runlog
import cli
from cli import (EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, READ_LIMIT_MAX, THREADS_ENV, ArgumentParser,
                 UserError, read_data, setup_numpy)
import settings
from settings import DEFAULT_DATA, DISTILL_ORDER, PRIOR_FOLDS
from safeio import atomic_write_text
from data.download import CORPORA, DATA_DIR, DownloadError, ensure_data_file, known_corpus

try:
    import fcntl                                     # POSIX; elsewhere runs are not locked
except ImportError:                                  # pragma: no cover
    fcntl = None

# -----------------------------------------------------------------------------
# Settings
# -----------------------------------------------------------------------------

# Every training setting is declared once, in settings.py: its value in each preset, its
# flag, help and check, whether a resume must keep it. What this file needs is made from it.
PRESETS = settings.PRESETS                          # {preset: {setting: value}}
FROZEN_ON_RESUME = settings.frozen_on_resume()      # a resumed run keeps these

# How fast each preset's model trains on this project's 2-core machine (Intel Xeon), one BLAS
# thread, for the run's first line: characters per second of training, (the slowest, the fastest)
# seen, from a machine shared with other jobs to one nearly to itself. Measured with the preset's
# own command, `python train_minimal.py --preset NAME` (its chars/s, or its log's chars and times):
#   textbook   24k, 48k: 20,000 steps beside other jobs on both cores, then beside one other job
#   default    65k: 600 steps beside other jobs; 198k: the quick start's 12,000 steps, 2 min 12 s in all
#   fast       49k, 89k: the slowest and the fastest 2,000 steps of a 20,000-step run (5 min 5 s in all)
#   long       23k, 71k: the same, of a 50,000-step run (24 min 10 s in all)
# A model of another shape (SPEED_SETTINGS) gets no estimate.
MEASURED_SPEED = {"textbook": (24e3, 48e3), "default": (65e3, 198e3), "fast": (49e3, 89e3),
                  "long": (23e3, 71e3)}
SPEED_SETTINGS = ("hidden_size", "batch_size", "seq_length", "dtype", "optimizer", "dropout", "distill",
                  "ngram_prior")

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

    Overrides equal to None are ignored, so argparse's unset flags fall through; a path
    (data, out) is kept as its text.
    """
    if base is None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        base = dict(PRESETS[preset], preset=preset)
    config = dict(base)
    for k, v in overrides.items():
        if v is not None:
            if k not in config:
                raise UserError(f"unknown setting {k!r}")
            config[k] = os.fspath(v) if isinstance(v, os.PathLike) else v
    return config


def check_config(config: dict) -> None:
    """Raise UserError (one line) for any setting that cannot work, before any work is done.

    Each setting by its own rule (settings.py), then the rules that join two of them.
    """
    for s in settings.SETTINGS:
        if s.name not in config:
            raise UserError(f"the settings have no {s.name!r} ({s.flag})")
        check_setting(s.name, config[s.name])
    if config["lr_schedule"] == "cosine" and not 0 <= config["min_lr"] <= config["learning_rate"]:
        raise UserError(f"--min-lr must be between 0 and --learning-rate ({config['learning_rate']:g}), "
                        f"got {config['min_lr']!r}")
    if config["lr_schedule"] == "cosine" and not (config["max_steps"] or config["epochs"]
                                                  or config["time_budget"]):
        raise UserError("--lr-schedule cosine needs a length to decay over: "
                        "set --max-steps, --epochs or --time-budget")
    if config["ngram_prior"] and config["distill"]:
        raise UserError("--distill and --ngram-prior are two ways to train with the same counts; choose one")
    check_out_dir(config["out"])


def check_setting(name: str, value) -> None:
    """UserError unless `value` is valid for the setting `name` (settings.py's rule)."""
    problem = settings.BY_NAME[name].problem(value)
    if problem:
        raise UserError(problem)


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


# Validation (rnn.evaluate) runs EVAL_CHUNKS pieces of the text side by side, EVAL_STEPS steps
# at a time: (V, 64 x 256) logits and two arrays like them, 13 MB for tiny Shakespeare. With a
# large vocabulary that grows with V (9 GB at V = 70,000), so fewer steps are taken at a time
# once V x 64 x 256 would pass EVAL_MAX_ENTRIES: below V = 1,025, nothing changes.
EVAL_CHUNKS, EVAL_STEPS, EVAL_MAX_ENTRIES = 64, 256, 2**24
# memory_needed: a training step's arrays of shape (V, T*B), without and with a teacher; the rows
# ngram.ngram_teacher scores at a time (its block); the freed memory the C library may keep for
# reuse (cli.keep_freed_memory: up to cli.TRIM_THRESHOLD at the top of the heap, and freed blocks below).
STEP_ARRAYS = {False: 5, True: 9}
TEACHER_BLOCK = 1 << 17
FREED_KEPT = 2 * cli.TRIM_THRESHOLD


def eval_steps(V: int) -> int:
    """The steps rnn.evaluate takes at a time for a vocabulary of V characters."""
    return max(1, min(EVAL_STEPS, EVAL_MAX_ENTRIES // (V * EVAL_CHUNKS)))


def memory_needed(config: dict, V: int, n_train: int = 0, n_val: int = 0) -> int:
    """Bytes a run with settings `config` and V characters needs at its peak, before it allocates them.

    Kept all along: the parameters (Wxh, Whh, Why, bh, by), their gradients, the optimiser
    state (Adagrad one copy, Adam two), the weight average (--ema), and the float64 weights
    init_params draws; the text (n_train + n_val characters: the text, its int64 ids, their
    rotated copy); with --distill or --ngram-prior, the teacher's float32 table, one row of V
    per training character, and with --ngram-prior the validation text's.
    Plus the largest of what comes and goes, and that much again up to FREED_KEPT (freed memory
    the C library keeps for reuse, cli.keep_freed_memory):
      a training step: the T+1 hidden states (H,B), the output mask (--dropout) and STEP_ARRAYS
        arrays of shape (V, T*B): logits, exponentials, probabilities, one-hot inputs, and with
        a teacher its rows and their logarithms;
      a validation: four (V, C) arrays, C the columns of one slice (eval_steps); with
        --ngram-prior, float64 log-probabilities of the validation text's table (three copies
        while they are made) and three float64 (V, C) arrays more;
      fitting the teacher: a float64 table of V per character and its exponentials, one part of
        the training split at a time (at most TEACHER_BLOCK characters), then for the validation
        text (--ngram-prior).
    """
    H, B, T = int(config["hidden_size"]), int(config["batch_size"]), int(config["seq_length"])
    size = np.dtype(config["dtype"]).itemsize
    teacher, prior = bool(config["distill"] or config["ngram_prior"]), bool(config["ngram_prior"])
    n_params = 2 * H * V + H * H + H + V
    copies = 2 + (1 if config["optimizer"] == "adagrad" else 2) + (1 if config["ema"] else 0)
    kept = (size * copies * n_params + 8 * n_params + 24 * (n_train + n_val)
            + 4 * V * (n_train * teacher + n_val * prior))
    step = size * ((T + 1) * H * B + (H * T * B if config["dropout"] else 0) + STEP_ARRAYS[teacher] * V * T * B)
    validation = 0
    if n_val >= 2:
        chunks = min(EVAL_CHUNKS, n_val - 1)
        columns = chunks * min(eval_steps(V), -(-(n_val - 1) // chunks))
        validation = (4 * size * V * columns if not prior else
                      max(24 * V * n_val, 8 * V * n_val + (size + 24) * V * columns))
    part = -(-n_train // (PRIOR_FOLDS if prior else 2)) + DISTILL_ORDER
    fitting = 16 * V * max(min(TEACHER_BLOCK, part) * teacher, n_val * prior)
    comes_and_goes = max(step, validation, fitting)
    return kept + comes_and_goes + min(comes_and_goes, FREED_KEPT)


def physical_memory() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):    # not POSIX: no check
        return None


def checkpoint_bytes(config: dict, V: int) -> int:
    """The memory a checkpoint of this run takes once loaded, as checkpoints.load_checkpoint counts
    it: the parameters, the optimiser state, the average's training weights, the hidden state, the
    vocabulary, and meta at its largest."""
    H, B = int(config["hidden_size"]), int(config["batch_size"])
    copies = 1 + (1 if config["optimizer"] == "adagrad" else 2) + (1 if config["ema"] else 0)
    size = np.dtype(config["dtype"]).itemsize
    return size * (copies * (2 * H * V + H * H + H + V) + H * B) + 8 * V + 4 * checkpoints.META_MAX_CHARS


def check_sizes(config: dict, V: int, n_train: int = 0, n_val: int = 0) -> None:
    """UserError (one line, with the numbers) if the vocabulary, the checkpoints or the memory this run
    needs are beyond what a checkpoint may hold or this machine can give, before anything is allocated."""
    shape = f"--hidden-size {config['hidden_size']:,} and a vocabulary of {V:,} characters"
    if V > checkpoints.CHECKPOINT_MAX_DIM:
        raise UserError(f"--data {config['data']} has {V:,} distinct characters; a model here has at most "
                        f"{checkpoints.CHECKPOINT_MAX_DIM:,} (checkpoints.CHECKPOINT_MAX_DIM)")
    ck = checkpoint_bytes(config, V)
    if ck > checkpoints.CHECKPOINT_MAX_BYTES:
        state = {"adagrad": "Adagrad's sums", "adam": "Adam's two moments"}[config["optimizer"]]
        raise UserError(f"{shape} make checkpoints of about {ck / 1e6:,.0f} MB in memory (the weights, {state}"
                        f"{' and the average' if config['ema'] else ''} in {config['dtype']}), more than the "
                        f"{checkpoints.CHECKPOINT_MAX_BYTES / 1e6:,.0f} MB a checkpoint may hold; use a smaller "
                        "--hidden-size or a text with fewer distinct characters")
    need, have = memory_needed(config, V, n_train, n_val), physical_memory()
    if have and need > MEMORY_SHARE * have:
        teacher = ", and the n-gram teacher" if config["distill"] or config["ngram_prior"] else ""
        raise UserError(f"{shape}, --batch-size {config['batch_size']:,} and --seq-length {config['seq_length']:,} "
                        f"would need about {need / 1e9:,.3g} GB of memory (weights, gradients, optimiser state "
                        f"and one window's or one validation slice's arrays in {config['dtype']}{teacher}), more "
                        f"than {MEMORY_SHARE:.0%} of this machine's {have / 1e9:.3g} GB; make them smaller or use "
                        "a text with fewer distinct characters")


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


def claim_output_folder(out: Path, resume, overwrite: bool) -> None:
    """With the lock held: refuse to replace a previous run, and sweep its stale temporary files.

    A resumed run (resume: its checkpoint's path) writes into the folder of its checkpoint, or
    into a new or empty one: another run's folder is refused as a new run's is.
    """
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not (resume is not None and same_folder(out, Path(resume).parent)):
        if not overwrite:
            if resume is not None:
                raise UserError(f"--out {out} holds another run ({', '.join(found)}); a resumed run writes into "
                                f"its checkpoint's folder ({Path(resume).parent}) or a new or empty one: choose "
                                "another --out, or replace that run with --overwrite")
            raise UserError(f"--out {out} holds a previous run ({', '.join(found)}); continue it with "
                            f"--resume {out / 'last.npz'}, choose a new --out, or replace it with --overwrite")
        for name in found:
            (out / name).unlink()
    for p in out.iterdir():                          # left by a run killed while writing a file
        if p.name.endswith(".tmp") and p.name.lstrip(".").startswith(tuple(f"{n}." for n in RUN_FILES)):
            p.unlink(missing_ok=True)


def same_folder(a, b) -> bool:
    """True if the paths a and b name the same existing folder."""
    try:
        return os.path.samefile(a, b)
    except OSError:                                  # one of them does not exist
        return False


# -----------------------------------------------------------------------------
# Policies: the learning-rate schedule, divergence, when to stop, Ctrl-C
# -----------------------------------------------------------------------------

def learning_rate_at(config: dict, step: int, epochs_done: float, elapsed: float) -> float:
    """The learning rate for the next step.

    cosine: from --learning-rate down to --min-lr, following half a cosine, over
    progress = the largest of step/max_steps, epochs_done/epochs, elapsed/time_budget
    (of those that are set).
    warmup_steps N > 0 scales that by (step + 1) / N for the first N steps: a linear ramp
    from almost 0. (Adam's first steps move every weight by about the full learning rate,
    whatever the size of its gradient, before its running averages mean much.)
    """
    warm = min(1.0, (step + 1) / config["warmup_steps"]) if config["warmup_steps"] else 1.0
    if config["lr_schedule"] == "constant":
        return config["learning_rate"] * warm
    parts = []
    if config["max_steps"]:
        parts.append(step / config["max_steps"])
    if config["epochs"]:
        parts.append(epochs_done / config["epochs"])
    if config["time_budget"]:
        parts.append(elapsed / config["time_budget"])
    progress = min(1.0, max(parts))
    return warm * (config["min_lr"] + 0.5 * (config["learning_rate"] - config["min_lr"])
                   * (1.0 + math.cos(math.pi * progress)))


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


def stop_reason(config: dict, trainer, counters, signals) -> Optional[str]:
    """Why the run stops before the next step, or None to go on."""
    if signals.requested:
        return "interrupted"
    if config["max_steps"] and trainer.step_count >= config["max_steps"]:
        return "max_steps"
    if config["epochs"] and trainer.epoch >= config["epochs"]:
        return "epochs"
    if config["time_budget"] and counters.elapsed() >= config["time_budget"]:
        return "time_budget"
    if config["patience"] and counters.evals_since_best >= config["patience"]:
        return "plateau"
    return None


# The signals that stop a run as Ctrl-C does: Ctrl-C, `kill` or `timeout`, a closed terminal.
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


class Interrupted(KeyboardInterrupt):
    """A stop signal ended the command at once; .status is its exit status, 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum, self.status = signum, 128 + signum


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


class StopSignals:
    """What Ctrl-C (SIGINT), kill (SIGTERM) and a closed terminal (SIGHUP) do; one object per process.

    Outside training the first signal stops the command at once (Interrupted) and later ones are
    ignored, so that the clean-up the first one started (removing a temporary file) finishes.
    While training (`with signals.training():`) the first asks the loop to stop after the current
    step, save last.npz and exit; a second stops at once, unless a file is being written (`with
    writing():`): that write finishes first. Once the loop has ended (hold()), signals are only
    noted: the last save and metrics.json finish. `first` is the first signal's number.
    """
    installed: Optional["StopSignals"] = None        # the object whose handlers are in place

    def __init__(self):
        self.first: Optional[int] = None              # the first signal's number
        self.again = self.raised = self.graceful = self.held = False
        self.shield, self.depth, self._old = 0, 0, {}

    @classmethod
    def get(cls) -> "StopSignals":
        return cls.installed or cls()

    @property
    def requested(self) -> bool:                     # stop_reason's question
        return self.first is not None

    def _handler(self, signum, frame):
        if self.first is None:
            self.first = signum
            if self.graceful:
                return                               # stop after this step
        else:
            self.again = True
            if not self.graceful:
                return                               # the first one is already stopping the command
        if not (self.shield or self.held):
            self._raise()

    def _raise(self):
        if not self.raised:
            self.raised = True
            raise Interrupted(self.first)

    @contextlib.contextmanager
    def writing(self):
        """A file write that no signal interrupts; a stop-at-once that came meanwhile follows it."""
        self.shield += 1
        try:
            yield
        finally:
            self.shield -= 1
        if self.first is not None and (self.again or not self.graceful) and not (self.shield or self.held):
            self._raise()

    @contextlib.contextmanager
    def training(self):
        self.graceful = True
        try:
            yield self
        finally:
            self.graceful = False

    def hold(self) -> None:
        """From now on signals are only noted: the run is saving and finishing."""
        self.held = True

    def __enter__(self):
        self.depth += 1
        if self.depth == 1 and threading.current_thread() is threading.main_thread():
            with blocked(STOP_SIGNALS):              # a signal meanwhile waits for all handlers to be in place
                StopSignals.installed = self
                self._old = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc):
        self.depth -= 1
        if self.depth == 0 and self._old:
            with blocked(STOP_SIGNALS):
                for s, old in self._old.items():
                    signal.signal(s, old)
                self._old, StopSignals.installed = {}, None
        return False


@contextlib.contextmanager
def blocked(signals):
    """Hold back `signals` (POSIX) until the block ends; then the handlers in place take them."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def writing():
    """StopSignals.writing() of the signals in place, if any."""
    return StopSignals.installed.writing() if StopSignals.installed else contextlib.nullcontext()


# -----------------------------------------------------------------------------
# The run: its data and trainer, its counters
# -----------------------------------------------------------------------------

def epochs_done(trainer) -> float:
    """Full passes over the training split so far, with the fraction of the current one."""
    return trainer.epoch + trainer.window / len(trainer.streams)


@dataclass
class RunCounters:
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
class TrainingRun:
    """Everything a training run needs, checked before any file is written: its settings,
    data, trainer and random generator, and its counters."""
    config: dict
    data_path: Path
    chars: list
    train_ids: np.ndarray
    val_ids: np.ndarray
    trainer: rnn.Trainer
    rng: np.random.Generator
    counters: RunCounters
    resume: Optional[str] = None
    log_cut: Optional["runlog.LogCut"] = None   # a resumed run's log, cut back to the checkpoint
    val_prior: Optional[np.ndarray] = None      # --ngram-prior: the n-gram's (N,V) distributions, validation text

    @property
    def out(self) -> Path:
        return Path(self.config["out"])

    def stamp(self) -> dict:
        """Where in the run we are, for every log line."""
        t = self.trainer
        return {"step": t.step_count, "epoch": round(epochs_done(t), 6), "chars": t.chars_seen,
                "time": round(self.counters.elapsed(), 3)}

    def log_info(self) -> dict:
        return {"vocab_size": len(self.chars), "train_chars": int(len(self.train_ids)),
                "val_chars": int(len(self.val_ids)), "chars_per_epoch": self.trainer.streams.chars_per_epoch,
                "windows_per_epoch": len(self.trainer.streams)}


def _meta_number(meta: dict, key: str, kind, default):
    v = meta.get(key, default)
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)):
        return kind(v) if v is not None else None
    raise checkpoints.CheckpointError(f"the checkpoint's {key!r} is {v!r:.40}, not a number; it cannot be resumed")


def build_trainer(config: dict, train_ids, V: int, rng: np.random.Generator, say=print) -> rnn.Trainer:
    """The weights (drawn from rng) and the Trainer of `config`, as every run starts them."""
    params = rnn.init_params(V, config["hidden_size"], rng, np.dtype(config["dtype"]).type, config["init_scale"])
    teacher = None
    if config["distill"] or config["ngram_prior"]:             # the same table on every run of the same text
        t0 = time.perf_counter()
        folds = PRIOR_FOLDS if config["ngram_prior"] else 2
        teacher = ngram.ngram_teacher(train_ids, V, DISTILL_ORDER, folds=folds)
        parts = "each half of the training split scores the other half" if folds == 2 else \
            f"the other {folds - 1} of {folds} parts of the training split scores each part"
        flag = (f"--distill {config['distill']:g}" if config["distill"] else
                f"--ngram-prior {config['ngram_prior']:g}")
        say(f"teacher: a {DISTILL_ORDER}-gram of {parts} ({teacher.nbytes / 1e6:.0f} MB, "
            f"{time.perf_counter() - t0:.1f} s); {flag}")
    return rnn.Trainer(params, train_ids, config["batch_size"], config["seq_length"], config["learning_rate"],
                       config["optimizer"], config["clip"], random_offsets=config["random_offsets"],
                       seed=config["seed"], ema=config["ema"], dropout=config["dropout"],
                       weight_decay=config["weight_decay"], distill=config["distill"], teacher=teacher,
                       prior=config["ngram_prior"])


def validation_prior(config: dict, train_ids, val_ids, V: int) -> Optional[np.ndarray]:
    """With --ngram-prior, the (N,V) float32 distributions of a 7-gram of the whole training split at
    each validation target: the counts the RNN is scored beside. None without it (or no validation text)."""
    if not config["ngram_prior"] or len(val_ids) < 2:
        return None
    model = ngram.NGram(DISTILL_ORDER).fit(train_ids, V)
    return np.exp(model.logprob_table(val_ids)).astype(np.float32)


def prepare(config: dict, resume, warn, progress: bool, max_text_mb: Optional[float] = None,
            say=print) -> TrainingRun:
    """Read and check the data, the memory, the checkpoint and the log; say what the run will do
    (plan_line); build the trainer. Writes nothing."""
    data_path, chars, train_ids, val_ids = load_data(config["data"], config["val_fraction"], progress, max_text_mb)
    check_sizes(config, len(chars), len(train_ids), len(val_ids))
    B, T = config["batch_size"], config["seq_length"]
    if len(train_ids) < B * (T + 2):                # Streams' rule: every stream needs one window
        raise UserError(f"--data {data_path} is too short: its training split has {len(train_ids):,} characters, "
                        f"too few for one window of --seq-length {T} in --batch-size {B} streams (at least "
                        f"{B * (T + 2):,}); use a longer text or smaller --seq-length/--batch-size")
    ck = None if resume is None else checkpoints.load_checkpoint(resume, expected_chars=chars)  # one line if bad
    start = 0 if ck is None else _meta_number(ck["meta"], "step", int, 0)
    say(plan_line(config, data_path, len(rnn.Streams(train_ids, B, T)), start, resume))
    rng = np.random.default_rng(config["seed"])
    trainer = build_trainer(config, train_ids, len(chars), rng, say)
    run = TrainingRun(config, data_path, chars, train_ids, val_ids, trainer, rng, RunCounters(),
                      val_prior=validation_prior(config, train_ids, val_ids, len(chars)))
    if ck is not None:
        try:
            trainer.restore(ck)
        except ValueError as e:                                       # a checkpoint of other settings
            raise checkpoints.CheckpointError(str(e)) from None
        m, counters = ck["meta"], run.counters
        run.rng = ck["rng"] if ck["rng"] is not None else rng
        counters.best_val_loss = _meta_number(m, "best_val_loss", float, None)
        counters.best_step = _meta_number(m, "best_step", int, None)
        counters.evals_since_best = _meta_number(m, "evals_since_best", int, 0)
        counters.elapsed_before = _meta_number(m, "elapsed", float, 0.0)
        counters.step_seconds_before = _meta_number(m, "train_seconds", float, 0.0)
        counters.saved_step = counters.last_eval_step = trainer.step_count
        run.resume = str(resume)
        config_line = runlog.json_line("config", **config, **run.log_info())
        # the log of the checkpoint's own run, cut back to its step (written into --out, wherever that is)
        run.log_cut = runlog.plan_resume(Path(resume).parent / runlog.LOG_NAME, trainer.step_count,
                                         config_line, warn)
    return run


# -----------------------------------------------------------------------------
# What the user sees: the plan, the progress bar
# -----------------------------------------------------------------------------

def run_length(config: dict, W: int, start: int = 0) -> tuple[Optional[int], str, str]:
    """(the step a step count or the epochs stop the run at, or None; that length in words; which of
    --max-steps and --epochs ends the run when both are set, else ""). W: steps in one epoch;
    start: the step a resumed run continues from."""
    steps, epochs = config["max_steps"], config["epochs"]
    if not (steps or epochs):
        return None, "", ""
    span = (lambda n: f"to step {n:,}") if start else (lambda n: f"for {n:,} steps")     # noqa: E731
    in_steps = steps and (f"{span(steps)} ({fmt_epochs(steps / W)} epochs)")
    in_epochs = epochs and (f"{'to epoch' if start else 'for'} {epochs}{'' if start else ' epochs'} "
                            f"({epochs * W:,} steps)")
    if not (steps and epochs):
        return (steps, in_steps, "") if steps else (epochs * W, in_epochs, "")
    from_preset = PRESETS.get(config.get("preset"), {}).get("max_steps") == steps
    limit = f"the {config['preset']} preset's {steps:,} steps" if from_preset else f"--max-steps {steps:,}"
    sooner = "long before" if 2 * min(steps, epochs * W) <= max(steps, epochs * W) else "before"
    if steps <= epochs * W:
        return steps, in_steps, (f"{limit} {'end' if from_preset else 'ends'} the run {sooner} --epochs "
                                 f"{epochs} ({epochs * W:,} steps) would")
    return epochs * W, in_epochs, f"--epochs {epochs} ends the run {sooner} {limit} would"


def fmt_epochs(epochs: float) -> str:
    return f"{epochs:.1f}" if epochs >= 0.1 else f"{epochs:.2g}"


def estimated_seconds(config: dict, steps: int) -> Optional[tuple[float, float]]:
    """(fastest, slowest) seconds that `steps` training steps take here, from MEASURED_SPEED; None
    if no preset of this model's shape was measured."""
    for name, (slow, fast) in MEASURED_SPEED.items():
        if all(config[k] == PRESETS[name][k] for k in SPEED_SETTINGS):
            chars = steps * config["batch_size"] * config["seq_length"]
            return chars / fast, chars / slow
    return None


def fmt_duration(lo: float, hi: float) -> str:
    """"under a minute", "about 6 min", "about 2-5 min", "about 1.1-1.6 h"."""
    if hi < 60:
        return "under a minute"
    if hi >= 5400:
        return f"about {lo / 3600:.1f}-{hi / 3600:.1f} h"
    a, b = max(1, round(lo / 60)), round(hi / 60)
    return f"about {a} min" if a == b else f"about {a}-{b} min"


def plan_line(config: dict, data_path, W: int, start_step: int = 0, resume=None) -> str:
    """The run's first line: one sentence of what it will do, what ends it, and about how long it
    takes on a 2-core machine (MEASURED_SPEED). W: steps in one epoch."""
    steps, length, which = run_length(config, W, start_step)
    rules = [length] if length else []
    if config["time_budget"]:
        budget = f"{fmt_time(config['time_budget'])} of training (--time-budget)"
        rules.append(f"or {budget} if that comes first" if rules else f"for {budget}")
    if config["patience"]:
        plateau = f"the validation loss has not improved for {config['patience']} evaluations (--patience)"
        rules.append(f"or sooner, once {plateau}" if rules else f"until {plateau}")
    how_long = ""
    if steps is not None:
        guess = estimated_seconds(config, max(0, steps - start_step))
        if guess and config["time_budget"]:
            guess = tuple(min(g, config["time_budget"]) for g in guess)
        how_long = (f", {fmt_duration(*guess)} on a 2-core machine" if guess else
                    ", no time estimate for this model's shape (the progress bar shows the time left)")
    head = f"Continuing {resume} from step {start_step:,}: training" if resume else "Training"
    return (f"{head} {describe_model(config)} on {data_path} "
            f"{', '.join(rules) or 'until you press Ctrl-C (no limit is set)'}{how_long}"
            f"{': ' + which if which else ''}.")


def describe_model(config: dict) -> str:
    """"the default preset (hidden size 16; --seq-length 8, --batch-size 2)": the preset, the hidden
    size, and the model's and optimiser's settings that differ from the preset's."""
    preset = config.get("preset")
    if preset not in PRESETS:
        return f"the checkpoint's settings (hidden size {config['hidden_size']})"
    changed = [s.as_flags(config[s.name]) for s in settings.SETTINGS
               if s.group in (settings.MODEL, settings.DATA) and s.name not in ("data", "out", "hidden_size")
               and config[s.name] != PRESETS[preset][s.name]]
    shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
    return f"the {preset} preset (hidden size {config['hidden_size']}{'; ' + shown if changed else ''})"


class Progress:
    """What the user sees: printed lines, and a tqdm bar of steps out of the run's length, with
    the epoch, the loss, the speed and the time left."""

    def __init__(self, quiet: bool, bar: bool):
        self.quiet, self.show_bar, self.bar, self.next_status = quiet, bar, None, 0.0

    def say(self, text="") -> None:
        if not self.quiet:
            tqdm.write(str(text), file=sys.stdout)

    def open(self, run: TrainingRun) -> None:
        config, W = run.config, len(run.trainer.streams)
        self.total = run_length(config, W)[0]
        try:                                        # some pseudo-terminals report 0 columns
            width_known = os.get_terminal_size(sys.stderr.fileno()).columns > 0
        except (OSError, ValueError, AttributeError):
            width_known = False
        self.bar = tqdm(total=self.total, initial=run.trainer.step_count, disable=not self.show_bar,
                        unit="step", file=sys.stderr, dynamic_ncols=width_known,
                        ncols=None if width_known else 140, nrows=None if width_known else 24,
                        mininterval=0.5, bar_format="{l_bar}{bar}| step {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self.start_step = run.trainer.step_count

    def update(self, run: TrainingRun) -> None:
        """Advance the bar one step; refresh its status line every 0.5 s."""
        self.bar.update(1)
        if time.perf_counter() >= self.next_status:
            self.refresh(run, force=False)

    def refresh(self, run: TrainingRun, force: bool = True) -> None:
        """Recompute the status line (force: redraw now, so it agrees with a line printed next)."""
        now = time.perf_counter()
        if not self.show_bar:
            return
        self.next_status = now + 0.5
        t, counters = run.trainer, run.counters
        loss, _ = counters.recent_loss()
        self.bar.set_postfix_str(f"epoch {epochs_done(t):.2f}, loss {'-' if loss is None else f'{loss:.3f}'}, "
                                 f"{counters.chars_per_sec(t) / 1000:.1f}k chars/s, {self.eta(run, now)}",
                                 refresh=force)

    def eta(self, run: TrainingRun, now: float) -> str:
        """The time left to the nearest limit: an upper bound when a plateau can stop the run sooner."""
        config, t, counters = run.config, run.trainer, run.counters
        left = []                                    # (seconds, what sets the limit)
        if self.total:
            done = t.step_count - self.start_step
            left.append(((self.total - t.step_count) * (now - counters.t_start) / max(done, 1), None))
        if config["time_budget"]:
            left.append((config["time_budget"] - counters.elapsed(), "time budget"))
        if not left:
            return "no limit set"
        seconds, what = min(left, key=lambda x: x[0])
        bound = "≤" if config["patience"] else ""
        return (f"eta {bound}{fmt_time(seconds)}{f' ({what})' if what else ''}"
                f"{', sooner on a plateau' if config['patience'] else ''}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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

def save(run: TrainingRun, name: str) -> None:
    """Write out/<name> (a checkpoint) atomically; never with inf/NaN weights."""
    t, counters = run.trainer, run.counters
    bad = [k for k, v in t.params.items() if not np.isfinite(v).all()]
    if bad:                                         # never overwrite a good checkpoint with inf/NaN weights
        raise _Diverged(f"the weights {', '.join(bad)} hold inf or NaN")
    meta = {**t.state(), "config": run.config, "best_val_loss": counters.best_val_loss,
            "best_step": counters.best_step, "evals_since_best": counters.evals_since_best,
            "elapsed": counters.elapsed(), "train_seconds": counters.step_seconds_before + counters.step_seconds}
    with writing():                                  # a second Ctrl-C waits for the file to be whole
        checkpoints.save_checkpoint(run.out / name, *t.checkpoint_arrays(), run.chars, t.h, meta, run.rng)


def evaluate_and_save(run: TrainingRun, log, show: Progress) -> None:
    """Validation loss now; save best.npz if it is the best so far, and last.npz; log and print it."""
    t, counters = run.trainer, run.counters
    prior = None if run.val_prior is None else (run.config["ngram_prior"], run.val_prior)
    r = rnn.evaluate(t.model_params, run.val_ids, EVAL_CHUNKS, eval_steps(len(run.chars)), prior=prior)
    if not math.isfinite(r["nats"]):
        raise _Diverged(f"the validation loss is {r['nats']:.4g} nats/char")
    first = counters.last_eval_step is None
    counters.last_eval_step = t.step_count
    improved = counters.best_val_loss is None or r["nats"] < counters.best_val_loss
    if improved:
        counters.best_val_loss, counters.best_step, counters.evals_since_best = r["nats"], t.step_count, 0
        save(run, "best.npz")
    else:
        counters.evals_since_best += 1
    save(run, "last.npz")
    counters.saved_step = t.step_count
    log.write("val", **run.stamp(), val_loss=r["nats"], val_bits=r["bits"])
    loss, _ = counters.recent_loss()
    show.refresh(run)                                # the bar shows the same epoch as this line
    show.say(f"step {t.step_count} | epoch {epochs_done(t):.2f} | "
             f"train {'-' if loss is None else f'{loss:.3f}'} | "
             f"val {r['nats']:.4f} nats/char ({r['bits']:.4f} bits){prior_note(run)}"
             f"{' | best' if improved else ''} | {counters.chars_per_sec(t) / 1000:.0f}k chars/s | "
             f"{fmt_time(counters.elapsed())}")
    lag = ema_lag_line(run) if first else ""
    if lag:
        show.say(lag)


def prior_note(run: TrainingRun) -> str:
    """With --ngram-prior the validation loss is the product's, not the RNN's alone: say so."""
    b = run.config["ngram_prior"]
    return f" (RNN x {DISTILL_ORDER}-gram^{b:g}, renormalised)" if b else ""


def ema_lag_line(run: TrainingRun) -> str:
    """Why the first validation losses of a weight average lag the training loss, while the
    initial weights still make up more than 5% of it; "" otherwise."""
    d, n = run.config["ema"], run.trainer.step_count
    if not d or d ** n <= 0.05:                      # d^n: the initial weights' share of the average
        return ""
    fades = math.ceil(math.log(0.05) / math.log(d))  # the step where that share falls to 5%
    return (f"note: validation scores the moving average of the weights (--ema {d:g}); at step {n:,}, "
            f"{d ** n:.0%} of it is still the initial weights, so its loss lags the training loss "
            f"until that share fades (5% at step {fades:,})")


def sample_and_log(run: TrainingRun, log, show: Progress) -> None:
    config, t = run.config, run.trainer
    prime = default_prime(run.chars)
    text = rnn.sample_text(t.model_params, run.chars, prime, config["sample_length"], config["temperature"],
                           run.rng)
    log.write("sample", **run.stamp(), temperature=config["temperature"], prime=prime, text=text)
    show.say(f"----- sample at step {t.step_count} (epoch {epochs_done(t):.2f}, "
             f"temperature {config['temperature']:g}) -----\n{prime.lstrip(chr(10)) + text}\n-----")


def diverged_message(run: TrainingRun, problem: str, lr: float) -> str:
    config, counters = run.config, run.counters
    kept = (f"the last good checkpoint is kept: {run.out / 'last.npz'} (step {counters.saved_step})"
            if counters.saved_step is not None else "no checkpoint had been saved yet")
    clip = f"--clip {config['clip']:g}" if config["clip"] else "--clip 0 turned clipping off"
    return (f"training diverged at step {run.trainer.step_count}: {problem} (a uniform guess scores "
            f"ln V = {math.log(len(run.chars)):.2f}); lower --learning-rate (now {lr:g}) and check the "
            f"gradient clipping ({clip}); {kept}")


def finish(run: TrainingRun, log, reason: str, message: Optional[str], lr: float) -> dict:
    """The final numbers: the log's end entry and metrics.json."""
    t, counters = run.trainer, run.counters
    final_loss, final_steps = counters.recent_loss()
    best = counters.best_val_loss
    metrics = {
        "reason": reason,
        "best_val_loss": best,
        "best_val_bits": best / math.log(2) if best is not None else None,
        "best_step": counters.best_step,
        "final_train_loss": final_loss,              # mean of the last final_train_steps steps
        "final_train_steps": final_steps,
        "smooth_loss": t.smooth_loss,                # min-char-rnn's running average, started at ln V
        "steps": t.step_count,
        "epochs": round(epochs_done(t), 6),
        "chars": t.chars_seen,
        "seconds": round(counters.elapsed(), 3),
        "chars_per_sec": round(counters.chars_per_sec(t), 1) or None,
        "checkpoint": str(run.out / "last.npz") if counters.saved_step is not None else None,
        "best_checkpoint": str(run.out / "best.npz") if counters.best_step is not None else None,
    }
    if message:
        metrics["message"] = message
    metrics = json.loads(runlog.json_line("end", **{k: v for k, v in metrics.items() if k != "steps"})) \
        | {"steps": t.step_count}                    # the schema's types; NaN/inf as null
    metrics.pop("kind")
    log.write("end", **{**run.stamp(), **{k: v for k, v in metrics.items() if k != "steps"}}, lr=lr)
    with writing():
        atomic_write_text(run.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


# -----------------------------------------------------------------------------
# Training
# -----------------------------------------------------------------------------

def train(config: dict, resume=None, *, quiet: bool = False, progress: Optional[bool] = None,
          overwrite: bool = True, max_text_mb: Optional[float] = None, data_from_checkpoint: bool = False) -> dict:
    """Train with the settings dict `config` (see resolve_config); returns the final metrics.

    resume: path of a checkpoint to continue from (its vocabulary must match the data).
    progress: show a tqdm bar (None: only if stderr is a terminal and not quiet).
    overwrite: False refuses an --out that holds a previous run (the command line's default).
    max_text_mb: the largest text to read (default: safeio.TEXT_MAX_BYTES, 100 MB).
    data_from_checkpoint: the data is the known corpus the resumed checkpoint names (said so).
    The metrics' "reason" says why training stopped: epochs, max_steps, time_budget,
    plateau, interrupted (Ctrl-C, SIGTERM or SIGHUP; a checkpoint was saved) or diverged (no
    new checkpoint; the previous checkpoint is kept; "message" explains).
    Raises UserError / CheckpointError / LogError / ValueError (one-line messages) before
    any file is written if the settings, the data, the checkpoint or the log cannot be used.
    """
    config = dict(config)
    check_config(config)
    show = Progress(quiet, (sys.stderr.isatty() and not quiet) if progress is None else progress)
    warn = lambda w: print(w, file=sys.stderr)       # noqa: E731
    with StopSignals.get() as signals:
        run = prepare(config, resume, warn, show.show_bar, max_text_mb, say=show.say)    # writes nothing
        t, counters, info = run.trainer, run.counters, run.log_info()
        source = " (the checkpoint's corpus; --data PATH reads another copy)" if data_from_checkpoint else ""
        show.say(f"data: {run.data_path}{source}, "
                 f"{len(run.train_ids) + len(run.val_ids):,} chars, {info['vocab_size']} distinct; train "
                 f"{info['train_chars']:,}, validation {info['val_chars']:,}; one epoch = {info['windows_per_epoch']} "
                 f"steps of {config['batch_size']} streams x {config['seq_length']} chars = "
                 f"{info['chars_per_epoch']:,} chars; every setting is in {run.out / runlog.LOG_NAME}")
        with OutputLock(run.out), signals.training():
            with writing():                          # no signal leaves a half-claimed folder or a cut log
                claim_output_folder(run.out, resume, overwrite)
                if resume is not None:               # the log cut back to the checkpoint's step
                    runlog.rewrite(run.out / runlog.LOG_NAME, run.log_cut)
            with runlog.RunLogWriter(run.out / runlog.LOG_NAME, fresh=resume is None) as writer:
                log = ShieldedLog(writer)
                if resume is None:
                    log.write("config", **config, **info)
                else:
                    log.write("resume", step=t.step_count, checkpoint=run.resume, config=config)
                    show.say(f"resumed from {resume} at step {t.step_count} (epoch {epochs_done(t):.2f}, "
                             f"{counters.elapsed_before:.0f} s trained so far)")
                reason, message, lr = run_loop(run, log, show, signals)
                metrics = finish(run, log, reason, message, lr)
    if reason not in ("diverged", "interrupted"):
        best_txt = (f"best val {metrics['best_val_loss']:.4f} nats/char ({metrics['best_val_bits']:.4f} bits) "
                    f"at step {counters.best_step}; " if counters.best_val_loss is not None else "")
        show.say(f"done ({reason}): {t.step_count} steps, {epochs_done(t):.2f} epochs, "
                 f"{fmt_time(counters.elapsed())}; {best_txt}checkpoints and logs in {run.out}/")
    return metrics


class ShieldedLog:
    """A run's log whose every line is written whole, whatever signal comes (StopSignals.writing)."""

    def __init__(self, log: "runlog.RunLogWriter"):
        self.log = log

    def write(self, kind: str, **fields) -> None:
        with writing():
            self.log.write(kind, **fields)


def run_loop(run: TrainingRun, log, show: Progress, signals: StopSignals) -> tuple[str, Optional[str], float]:
    """The training loop: one step, then whatever is due at this step; then a last evaluation and
    checkpoint. Returns (why it stopped, what went wrong or None, the last learning rate)."""
    config, t, counters, lnV = run.config, run.trainer, run.counters, math.log(len(run.chars))
    counters.t_start = time.perf_counter()
    show.open(run)
    reason, message, lr = None, None, config["learning_rate"]
    due = lambda every: every and t.step_count % every == 0    # noqa: E731 (every N steps; 0 = never)
    try:
        while not (reason := stop_reason(config, t, counters, signals)):
            lr = learning_rate_at(config, t.step_count, epochs_done(t), counters.elapsed())
            log_now = bool(config["log_every"]) and (t.step_count + 1) % config["log_every"] == 0
            t0 = time.perf_counter()
            loss = t.step(lr, measure=log_now)
            counters.step_seconds += time.perf_counter() - t0
            counters.recent.append(loss)
            problem = divergence(loss, counters.recent, t.step_count, lnV)
            if problem:
                raise _Diverged(problem)
            show.update(run)
            if log_now:
                log.write("train", **run.stamp(), loss=loss, smooth_loss=t.smooth_loss, lr=lr,
                          grad_norm=t.grad_norms, clip_frac=t.clip_fractions)
            if due(config["sample_every"]):
                sample_and_log(run, log, show)
            if len(run.val_ids) and due(config["eval_every"]):
                evaluate_and_save(run, log, show)
        # --- the end: a last evaluation and checkpoint, which signals no longer interrupt ---
        signals.hold()
        if reason != "interrupted" and len(run.val_ids) and counters.last_eval_step != t.step_count:
            evaluate_and_save(run, log, show)
        if counters.saved_step != t.step_count:
            save(run, "last.npz")
            counters.saved_step = t.step_count
    except _Diverged as e:
        reason, message = "diverged", diverged_message(run, str(e), lr)
    finally:
        signals.hold()
        show.close()
    return reason, message, lr


# -----------------------------------------------------------------------------
# Sampling from a checkpoint
# -----------------------------------------------------------------------------

# The largest --prime-file: priming is linear in time and flat in memory (rnn.sample_text), about
# 6 s a MB at H=256 on this 2-core machine (1 s at H=16), so 10 MB is a minute.
PRIME_MAX_BYTES = 10_000_000

def sample_from_checkpoint(checkpoint, prime: Optional[str] = None, length: int = 200,
                           temperature: float = 1.0, seed: Optional[int] = None) -> str:
    """prime + `length` sampled characters (settings.MAX_SAMPLE at most) from a saved checkpoint."""
    check_setting("sample_length", length)
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
# (analysis.mixture_cross_validated). Given --checkpoint more than once (RNNs trained from
# different seeds, say), p_rnn is the mean of their probabilities, an ensemble
# (analysis.ensemble_logprobs), and each one's own loss is printed too. It also
# reports the product of the two, p ~ p_rnn^a * p_ngram^b renormalised, with (a, b)
# fitted on one half and reported on the other (analysis.product_cross_validated).

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
                   quiet: bool = False, dynamic: bool = False) -> dict:
    """Fit an n-gram of each order, compare on validation, sample the best; write out/ngram.json.

    checkpoint_paths: RNN checkpoint paths to mix with the best order (none: no mixture;
    several: their ensemble, the mean of their probabilities).
    Returns what it writes: {"data", "val_chars", "table": [{"order", "val_nats",
    "val_bits", "fit_seconds", "eval_seconds"}], "best_order", "temperature",
    "seed", "sample", and with checkpoints "mixture": {"checkpoints", "rnn_nats_each",
    "rnn_nats" (of the ensemble, or of the one RNN), "order", "grid", "halves" (the
    mixture, analysis.mixture_cross_validated), "product" (analysis.product_cross_validated)}}, and
    with dynamic=True "dynamic" (dynamic_comparison: both models learning while they read).
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
    paths = [os.fspath(p) for p in checkpoint_paths]
    loaded = [checkpoints.load_checkpoint(p, expected_chars=chars) for p in paths]   # fail before any counting
    say(f"data: {data_path}, vocabulary {len(chars)}; train {len(train_ids):,} chars, validation {len(val_ids):,}")
    table, model, row = fit_orders(orders, train_ids, val_ids, len(chars), say)
    prime = default_prime(chars)
    sample = model.sample_text(chars, prime, sample_length, temperature, np.random.default_rng(seed))
    say(f"best: order {row['order']}, {row['val_nats']:.4f} nats/char; sample at temperature {temperature:g}:")
    say(prime + sample)
    result = {"data": str(data_path), "val_chars": int(len(val_ids) - 1), "table": table,
              "best_order": row["order"], "temperature": temperature, "seed": seed, "sample": sample}
    if loaded:
        result["mixture"] = mix_with_rnns(model, row["order"], loaded, paths, val_ids, say)
    if dynamic:
        result["dynamic"] = dynamic_comparison(row["order"], loaded, train_ids, val_ids, len(chars), say)
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_text(out / NGRAM_FILE, json.dumps(result, indent=2) + "\n")
    say(f"wrote {path}")
    return result


def fit_orders(orders, train_ids, val_ids, V: int, say) -> tuple[list, "ngram.NGram", dict]:
    """Fit and score an n-gram of each order, printing a table; (its rows, the best model, its row)."""
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
    return table, *best


def mix_with_rnns(model, order: int, loaded: list, paths: list, val_ids, say) -> dict:
    """The n-gram `model` beside the RNN checkpoints `loaded` (their ensemble if several), on the
    validation text: each RNN's loss, their mixture and their product with the n-gram (ngram_baseline's
    "mixture")."""
    targets = np.asarray(val_ids[1:], dtype=np.int64)        # (M,) the characters to predict
    rows = np.arange(targets.size)
    each = []                                                # K x (M,) log p of each target

    def table(params):                                       # (M,V) one RNN's log p_t, and its targets' column
        t = rnn.logprob_table(params, val_ids)
        each.append(t[rows, targets])
        return t

    table_rnn = ensemble_logprobs(table(ck["params"]) for ck in loaded)  # (M,V) log of the mean distribution
    lp_rnn = table_rnn[rows, targets]                        # (M,) log of the mean probability
    table_ngram = model.logprob_table(val_ids)               # (M,V) log p_ngram
    lp_ngram = table_ngram[rows, targets]                    # (M,)
    halves = mixture_cross_validated(lp_rnn, lp_ngram)
    product = product_cross_validated([table_rnn, table_ngram], targets)
    for path, lp, ck in zip(paths, each, loaded):
        say(f"RNN {path}: {-lp.mean():.4f} nats/char on validation (one stream from h = 0)")
        b = (ck["meta"].get("config") or {}).get("ngram_prior", 0)           # a --ngram-prior partner
        if b:
            say(f"  (trained with --ngram-prior {b:g}, as a {DISTILL_ORDER}-gram's partner: alone it knows only "
                "what the counts miss: read the product below)")
    if len(loaded) > 1:
        say(f"ensemble of the {len(loaded)} RNNs (mean of their probabilities): {-lp_rnn.mean():.4f} nats/char")
    say(f"mixture lam*RNN + (1-lam)*{order}-gram, lam picked on one half of validation:")
    for h in halves:
        say(f"  lam={h['lambda']:.2f} (from the {h['choose_on']} half) on the {h['report_on']} half: "
            f"mixture {h['mix_nats']:.4f}, RNN {h['rnn_nats']:.4f}, n-gram {h['ngram_nats']:.4f} nats/char")
    say(f"product p_RNN^a * p_{order}-gram^b (renormalised), a and b fitted on one half:")
    for h in product:
        a, b = h["weights"]
        say(f"  a={a:.3f}, b={b:.3f} (from the {h['choose_on']} half) on the {h['report_on']} half: "
            f"product {h['product_nats']:.4f} nats/char")
    return {"checkpoints": paths, "rnn_nats_each": [float(-lp.mean()) for lp in each],
            "rnn_nats": float(-lp_rnn.mean()), "order": order, "grid": list(MIX_GRID),
            "halves": halves, "product": product}


# python train_minimal.py --ngram --orders 7 --checkpoint out/best.npz --dynamic
# lets both models keep learning from the validation text they have scored, read as one
# stream: rnn.dynamic_evaluate takes a gradient step after each window of characters,
# ngram.dynamic_ngram refits the counts on the training text plus the text read so far every
# DYNAMIC_BLOCK characters (weight: how many copies of it). Every setting, like lam and the
# product's weights, is chosen on one half of the validation text and reported on the other,
# both ways; the whole-text numbers weigh the two halves by their length.
DYNAMIC_GRID = tuple((w, lr, d) for w in (32, 64) for lr in (1e-4, 2e-4, 3e-4) for d in (0.001, 0.002))
DYNAMIC_BLOCK, DYNAMIC_WEIGHTS = 1000, (1, 2)


def dynamic_rnns(loaded: list, val_ids, setting: tuple, table: bool = False) -> np.ndarray:
    """The RNNs' (their ensemble's) dynamic log-probs (M,), or whole (M,V) table, for (window, lr, decay)."""
    key = "table" if table else "logprobs"
    return ensemble_logprobs(rnn.dynamic_evaluate(ck["params"], val_ids, *setting, table=table)[key]
                             for ck in loaded)


def dynamic_runs(order: int, loaded: list, train_ids, val_ids, V: int, say) -> tuple[dict, dict, list]:
    """Every --dynamic setting over the whole validation text: ({weight: (M,V) n-gram table},
    {(window, lr, decay): (M,) the RNNs' log-probs}, one row per run with its nats and seconds)."""
    tables, lps, runs = {}, {}, []
    for weight in DYNAMIC_WEIGHTS:
        t0 = time.perf_counter()
        tables[weight] = ngram.dynamic_ngram(train_ids, val_ids, V, order, DYNAMIC_BLOCK, weight, table=True)["table"]
        runs.append({"model": f"{order}-gram", "block": DYNAMIC_BLOCK, "weight": weight,
                     "nats": float(-tables[weight][np.arange(len(val_ids) - 1), val_ids[1:]].mean()),
                     "seconds": time.perf_counter() - t0})
    for setting in DYNAMIC_GRID if loaded else ():
        t0 = time.perf_counter()
        lps[setting] = dynamic_rnns(loaded, val_ids, setting)
        runs.append({"model": "RNN", **dict(zip(("window", "learning_rate", "decay"), setting)),
                     "nats": float(-lps[setting].mean()), "seconds": time.perf_counter() - t0})
    for r in runs:
        what = f"block {r['block']}, weight {r['weight']}" if "block" in r else \
            f"window {r['window']}, learning rate {r['learning_rate']:g}, decay {r['decay']:g}"
        say(f"  {r['model']} ({what}): {r['nats']:.4f} nats/char over the whole text, {r['seconds']:.1f} s")
    return tables, lps, runs


def dynamic_comparison(order: int, loaded: list, train_ids, val_ids, V: int, say) -> dict:
    """--dynamic (ngram_baseline's "dynamic"): the order-gram and the RNNs (their ensemble if several)
    learning while they read; alone, mixed and multiplied, each setting chosen on the other half."""
    say("dynamic evaluation: both models learn from the validation text as they read it")
    tables, lps, runs = dynamic_runs(order, loaded, train_ids, val_ids, V, say)
    targets = np.asarray(val_ids[1:], dtype=np.int64)                    # (M,) the characters to predict
    M = targets.size
    rows, half = np.arange(M), {"first": slice(0, M // 2), "second": slice(M // 2, M)}
    out, rnn_tables = [], {}
    for choose, report in (("first", "second"), ("second", "first")):
        c, r = half[choose], half[report]
        weight = max(tables, key=lambda k: tables[k][rows[c], targets[c]].mean())
        lp_ngram = tables[weight][rows, targets]                         # (M,)
        h = {"choose_on": choose, "report_on": report, "chars": r.stop - r.start, "ngram_weight": weight,
             "ngram_nats": float(-lp_ngram[r].mean())}
        line = f"{order}-gram (weight {weight}) {h['ngram_nats']:.4f}"
        if lps:
            s = max(lps, key=lambda k: lps[k][c].mean())                 # (window, lr, decay)
            if s not in rnn_tables:                                      # its whole distributions, for the product
                rnn_tables[s] = dynamic_rnns(loaded, val_ids, s, table=True)
            lam = min(MIX_GRID, key=lambda g: mixture_nats(lps[s][c], lp_ngram[c], g))
            pair = [rnn_tables[s], tables[weight]]
            ab = fit_product([t[c] for t in pair], targets[c])
            h.update({"window": s[0], "learning_rate": s[1], "decay": s[2], "rnn_nats": float(-lps[s][r].mean()),
                      "lambda": lam, "mix_nats": mixture_nats(lps[s][r], lp_ngram[r], lam),
                      "product_weights": [float(x) for x in ab],
                      "product_nats": product_nats([t[r] for t in pair], targets[r], ab)})
            line = (f"RNN (window {s[0]}, lr {s[1]:g}, decay {s[2]:g}) {h['rnn_nats']:.4f}, {line}, "
                    f"mixture (lam={lam:.2f}) {h['mix_nats']:.4f}, product {h['product_nats']:.4f}")
        say(f"  settings from the {choose} half, on the {report} half: {line} nats/char")
        out.append(h)
    whole = {k: sum(h[k] * h["chars"] for h in out) / M for k in out[0] if k.endswith("_nats")}
    say("  whole text (the two halves weighed by length): " + ", ".join(f"{k[:-5]} {v:.4f}" for k, v in whole.items()))
    return {"order": order, "block": DYNAMIC_BLOCK, "weights": list(DYNAMIC_WEIGHTS),
            "grid": [list(g) for g in DYNAMIC_GRID], "runs": runs, "halves": out, "whole": whole}


def _main_ngram(args) -> int:
    if args.sample_only or args.resume:
        raise UserError("--ngram cannot be combined with --sample-only or --resume")
    config = resolve_config(args.preset or "default", data=args.data, out=args.out,
                            val_fraction=args.val_fraction, temperature=args.temperature, seed=args.seed)
    length = args.sample_length if args.sample_length is not None else 300
    if not (isinstance(length, int) and length > 0):
        raise UserError(f"--length must be an integer > 0, got {length}")
    if not (math.isfinite(config["val_fraction"]) and 0 < config["val_fraction"] < 1):
        raise UserError(f"--val-fraction must be in (0, 1) for the n-gram comparison, "
                        f"got {config['val_fraction']!r}")
    ngram_baseline(config["data"], config["out"], parse_orders(args.orders),
                   checkpoint_paths=args.checkpoint or (), val_fraction=config["val_fraction"],
                   temperature=config["temperature"], seed=config["seed"], sample_length=length, quiet=args.quiet,
                   dynamic=args.dynamic)
    return EXIT_OK


def add_ngram_flags(p: argparse.ArgumentParser, shown) -> None:
    """The flags of the --ngram command (none of them a training setting)."""
    g = p.add_argument_group("n-gram baseline (no training)")
    g.add_argument("--ngram", action="store_true", help=shown("fit Kneser-Ney character n-grams of --orders on "
                   "the training split, print their validation loss, sample the best, write --out/ngram.json; "
                   "with --checkpoint also mix the best with that RNN (or with several, averaged)"))
    g.add_argument("--orders", default="1-10", metavar="A-B",
                   help=shown("n-gram orders for --ngram (default: %(default)s)"))
    g.add_argument("--dynamic", action="store_true", help=shown(
        "with --ngram: let the best order and the --checkpoint RNNs keep learning from the validation text "
        "as they read it (dynamic evaluation), each setting chosen on one half and reported on the other; "
        "minutes, not seconds"))


# -----------------------------------------------------------------------------
# Command line
# -----------------------------------------------------------------------------
# `--help` shows the options a first day needs (a setting's day1 in settings.py, day1=True
# below); `--help-all` shows every one. Both come from the same parser: a flag left out of
# --help is still accepted.

DESCRIPTION = ("Train a character-level vanilla RNN (implementation.py) on a text file, with progress, "
               "validation, safe checkpoints and exact resume; or sample from a checkpoint. An EPOCH is one "
               "full pass over the training split (the first 1 - val-fraction of the text).")
EPILOG_DAY1 = (f"Example: python train_minimal.py --data {DEFAULT_DATA} --epochs 200 (the default preset's "
               f"{PRESETS['default']['max_steps']:,} steps end it first). --help-all lists every option: the "
               "model and optimiser, the schedule, resuming a run, monitoring, the n-gram baseline; and the "
               "exit statuses and the log format.")

def preset_help() -> str:
    d, tb, fast, long = (PRESETS[p] for p in ("default", "textbook", "fast", "long"))
    return (f"starting settings that other flags override: default (the quick start: {d['max_steps']:,} steps "
            f"of H={d['hidden_size']} with a warmup, a cosine decay and a moving average of the weights), "
            f"textbook (min-char-rnn exactly: B={tb['batch_size']}, hidden {tb['hidden_size']}, unroll "
            f"{tb['seq_length']}, Adagrad lr {tb['learning_rate']:g}, clip {tb['clip']:g}, {tb['dtype']}, init "
            f"{tb['init_scale']:g}), fast ({fast['max_steps']:,} steps of a larger model) or long (the fast "
            f"preset with dropout {long['dropout']:g} for {long['max_steps']:,} steps) (default: default)")


def epilog_all() -> str:
    return ("Exit status: 0 done, 2 bad input, 3 training diverged, 128 + the signal's number when stopped: "
            "130 Ctrl-C, 143 SIGTERM (kill, timeout), 129 SIGHUP (a closed terminal). The first saves "
            "out/last.npz after the current step; a second stops at once, after any file being written is "
            "whole. The loss is the cross-entropy per character, in nats "
            "(bits = nats / ln 2); the progress bar shows the mean of the last "
            f"{DISPLAY_STEPS} steps and the time left to the nearest limit: with a --time-budget or "
            "--patience that is an upper bound (eta <=), since a plateau can stop the run sooner. "
            f"{DIVERGENCE_HELP} One run at a time per --out folder (a lock file, out/{LOCK_NAME}); a "
            "new run, or a run resumed outside its checkpoint's folder, refuses an --out that holds another "
            "run unless --overwrite. " + runlog.format_help())


class _HelpAll(argparse.Action):
    """--help-all: print the help of every option, grouped, and exit."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        build_parser(all_options=True).print_help()
        parser.exit()


def build_parser(all_options: bool = True) -> argparse.ArgumentParser:
    """The command line. all_options=False: --help shows the Day-1 options only (the rest are
    accepted all the same); True: every option, as --help-all prints it."""
    def shown(text, day1=False):                    # a flag's help, or hidden from the Day-1 help
        return text if all_options or day1 else argparse.SUPPRESS

    p = ArgumentParser(prog="python train_minimal.py", description=DESCRIPTION,
                       epilog=epilog_all() if all_options else EPILOG_DAY1)
    p.add_argument("--help-all", action=_HelpAll, help="show every option, grouped, and exit")
    groups = {name: p.add_argument_group(name) for name in settings.GROUPS}
    groups[settings.MODEL].add_argument("--preset", choices=sorted(PRESETS), help=shown(preset_help(), day1=True))
    for s in settings.SETTINGS:
        s.add_argument(groups[s.group], shown=all_options or s.day1)
    add_run_flags(groups, shown)
    add_sampling_flags(p, shown)
    add_ngram_flags(p, shown)
    return p


def add_run_flags(groups: dict, shown) -> None:
    """The flags of a training run that are not settings (not saved with it, not in a preset)."""
    g = groups[settings.DATA]
    g.add_argument("--max-text-mb", type=cli.number(0, READ_LIMIT_MAX / 1e6), metavar="MB", help=shown(
        f"read at most this many MB of --data (default: 100; at most {READ_LIMIT_MAX / 1e6:,.0f}), so that a "
        "wrong file cannot fill the memory"))
    g.add_argument("--overwrite", action="store_true", help=shown(
        "replace the run in --out (without it, a new run, or a run resumed into another run's folder, "
        "refuses a folder that holds last.npz, best.npz, log.jsonl or metrics.json)"))
    groups[settings.LENGTH].add_argument("--resume", metavar="PATH", help=shown(
        "continue the run saved in this checkpoint exactly, with its settings (flags such as --max-steps "
        "override them), in the checkpoint's folder, or in a new or empty --out"))
    g = groups[settings.MONITORING]
    g.add_argument("--quiet", action="store_true", help=shown(
        "print only errors (and, with --sample-only, the sample)"))
    g.add_argument("--no-progress", action="store_true", help=shown(
        "no progress bar (also off when stderr is not a terminal)"))
    g.add_argument("--threads", type=cli.integer(1, cli.MAX_THREADS), metavar="N", help=shown(
        f"BLAS threads for NumPy, 1 to {cli.MAX_THREADS:,} (default: ${THREADS_ENV} or 1). One is the default "
        "because the matrices here are small: a second thread gains little, and on a machine with other work "
        "running the threads wait on each other and training gets many times slower"))


def add_sampling_flags(p: argparse.ArgumentParser, shown) -> None:
    g = p.add_argument_group("sampling from a checkpoint (no training)")
    g.add_argument("--sample-only", action="store_true", help=shown(
        "print a sample from --checkpoint and exit", day1=True))
    g.add_argument("--checkpoint", metavar="PATH", action="append", help=shown(
        "checkpoint to sample from (e.g. out/best.npz); with --ngram, the RNN to mix with the n-gram, and "
        "given more than once, RNNs whose mean probability (an ensemble) is mixed", day1=True))
    m = g.add_mutually_exclusive_group()
    m.add_argument("--prime", metavar="TEXT", help=shown("text to start from (default: a newline)", day1=True))
    m.add_argument("--prime-file", metavar="PATH", help=shown(
        f"UTF-8 file whose text to start from, at most {PRIME_MAX_BYTES / 1e6:g} MB"))


def config_from_args(args) -> dict:
    """The resolved settings: the preset (or the resumed checkpoint's settings) plus the given flags."""
    given = {k: getattr(args, k) for k in settings.NAMES if getattr(args, k) is not None}
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
    base = {**settings.if_absent(), **base}          # what checkpoints saved before a setting existed mean
    missing = [s.flag for s in settings.SETTINGS if s.name not in base and s.name not in given]
    if missing:
        raise UserError(f"--resume {args.resume}: the checkpoint's settings lack {', '.join(missing)}; "
                        "give them as flags")
    for k in FROZEN_ON_RESUME:
        if k in given and k in base and given[k] != base[k]:
            raise UserError(f"{settings.BY_NAME[k].flag} {given[k]} differs from the checkpoint's "
                            f"{base[k]}; a resumed run keeps {', '.join(FROZEN_ON_RESUME)}")
    if "data" not in given:
        given["data"] = known_corpus_copy(args.resume, base["data"])
    given.setdefault("out", str(Path(args.resume).parent))
    return resolve_config(base={**dict.fromkeys(given), **base}, **given)      # a flag fills a missing setting


def known_corpus_copy(resume, stored) -> str:
    """The path of the verified copy in data/ of the known corpus that a resumed checkpoint's data
    setting names (data.download.known_corpus: by its file name), fetched if missing. The path the
    checkpoint stores is never read: it could name any file. UserError for any other text."""
    corpus = known_corpus(stored) if isinstance(stored, str) else None
    if corpus is None:
        raise UserError(f"--resume {resume}: give the text it was trained on with --data PATH (the "
                        "checkpoint's own data setting is used only for the known corpora "
                        f"{', '.join(c.filename for c in CORPORA.values())})")
    return str(DATA_DIR / corpus.filename)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input, 3 diverged, 128 + the
    signal's number when Ctrl-C (130), SIGTERM (143) or SIGHUP (129) stopped it)."""
    parser = build_parser(all_options=False)            # --help: the Day-1 options; --help-all: every one
    if argv is not None:                            # accept paths and numbers from Python callers
        argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
    with StopSignals.get() as signals:
        try:
            try:
                args = parser.parse_args(argv)
            except SystemExit as e:                 # --help, or a bad flag: its one line is printed
                return e.code or 0
            return run_command(args, signals)
        except (UserError, checkpoints.CheckpointError, DownloadError, ValueError) as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            return EXIT_USAGE
        except MemoryError:
            print("error: out of memory; use a smaller --hidden-size, --batch-size or --seq-length", file=sys.stderr)
            return EXIT_USAGE
        except OSError as e:                        # a read-only folder, a full disk
            where = f" {e.filename}" if e.filename else ""
            print(f"error: cannot read or write{where}: {e.strerror or e}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as e:              # a second signal while training, or one outside it
            print(f"error: interrupted ({signal_name(getattr(e, 'signum', signal.SIGINT))}) before the command "
                  "could finish; the last checkpoint saved, if any, is intact", file=sys.stderr)
            return getattr(e, "status", EXIT_INTERRUPTED)


def run_command(args, signals: StopSignals) -> int:
    """What main() does with the parsed flags: train, resume, sample or --ngram."""
    setup_numpy(args.threads)                       # BLAS threads (1 unless --threads / RNN_THREADS), memory reuse
    if args.dynamic and not args.ngram:
        raise UserError("--dynamic goes with --ngram: python train_minimal.py --ngram --checkpoint PATH --dynamic")
    if args.ngram:
        return _main_ngram(args)
    if args.sample_only:
        return _main_sample(args)
    if args.checkpoint or args.prime is not None or args.prime_file:
        raise UserError("--checkpoint, --prime and --prime-file go with --sample-only "
                        "(to continue training from a checkpoint, use --resume)")
    metrics = train(config_from_args(args), resume=args.resume, quiet=args.quiet, overwrite=args.overwrite,
                    max_text_mb=args.max_text_mb, progress=False if (args.no_progress or args.quiet) else None,
                    data_from_checkpoint=args.resume is not None and args.data is None)
    if metrics["reason"] == "diverged":
        print(f"error: {metrics['message']}", file=sys.stderr)
        return EXIT_DIVERGED
    if metrics["reason"] == "interrupted":
        ck, signum = metrics["checkpoint"], signals.first or signal.SIGINT
        print(f"interrupted ({signal_name(signum)}) at step {metrics['steps']}: saved {ck}; resume with: "
              f"python train_minimal.py --resume {ck}", file=sys.stderr)
        return 128 + signum
    return EXIT_OK


# Flags --sample-only does not use: naming them is better than ignoring them.
SAMPLE_ONLY_IGNORES = tuple(k for k in settings.NAMES if k not in ("sample_length", "temperature", "seed")) \
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
    config = resolve_config(args.preset or "default", sample_length=args.sample_length,
                            temperature=args.temperature, seed=args.seed)
    for name in ("sample_length", "temperature", "seed"):
        check_setting(name, config[name])
    prime = args.prime
    if args.prime_file:
        check_regular_file(args.prime_file, "--prime-file")
        try:
            prime = safeio.read_text(args.prime_file, max_bytes=PRIME_MAX_BYTES)
        except safeio.TextTooLargeError as e:
            raise UserError(f"--prime-file {args.prime_file} is {e.size / 1e6:,.1f} MB; a prime is at most "
                            f"{PRIME_MAX_BYTES / 1e6:g} MB") from None
    text = sample_from_checkpoint(args.checkpoint[0], prime, config["sample_length"], config["temperature"],
                                  config["seed"])
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
    _signals = StopSignals()                        # takes over from the first lines' handler for good
    try:
        try:
            _signals.__enter__()
            status = main()
        finally:                                    # the command is ending: a signal now changes nothing
            _signals.hold()
            for _s in STOP_SIGNALS:                 # (the interpreter's shutdown would restore the defaults,
                signal.signal(_s, signal.SIG_IGN)   # which end the process: it keeps an ignored signal ignored)
    except KeyboardInterrupt as _e:                 # a signal just before main() or just after it
        print(f"error: interrupted ({signal_name(getattr(_e, 'signum', signal.SIGINT))})", file=sys.stderr)
        status = getattr(_e, "status", EXIT_INTERRUPTED)
    sys.exit(status)
