"""Train the char-RNN of implementation.py from the shell, and sample from it.

Quick start (downloads tiny Shakespeare into data/ if it is missing):

    python train_minimal.py --data data/tiny_shakespeare.txt --epochs 200

It shows a progress bar, prints a sample every --sample-every steps and the
validation loss every --eval-every steps, and keeps in --out (default out/):

    last.npz, best.npz   checkpoints (best = lowest validation loss), implementation's format
    log.jsonl            one JSON object per line, for the plots (see LOG FORMAT in --help)
    metrics.json         the final numbers

More:

    python train_minimal.py --preset textbook --max-steps 300     # min-char-rnn's exact settings
    python train_minimal.py --preset fast                          # the best model in 180 s
    python train_minimal.py --resume out/last.npz                  # continue a run exactly
    python train_minimal.py --sample-only --checkpoint out/best.npz --prime "ROMEO:" --length 300

Everything about the model, the data walk, the optimisers, sampling, evaluation
and checkpoints lives in implementation.py; this file only wires them together.
From Python (a notebook, an exercise): ``train(resolve_config("fast", data=...))``.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import implementation as rnn
from analysis import MIX_GRID, mixture_halves
from cli import limit_threads
from data.download import DownloadError, ensure_data_file

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
        "clip": 5.0, "dtype": "float64", "init_scale": 0.01, "random_offsets": False, "ema": 0.0, "warmup_steps": 0,
        "epochs": 10, "max_steps": None, "time_budget": None, "patience": 0, "val_fraction": 0.1,
        "sample_every": 5000, "eval_every": 10000, "log_every": 100,
        "sample_length": 200, "temperature": 1.0, "seed": 1337,
    },
    # The README's quick start: 32 streams of 64 steps, 256 hidden units, Adam, float32.
    # An epoch of tiny Shakespeare is 490 steps (~10-20 s on 2 cores).
    "default": {
        "hidden_size": 256, "seq_length": 64, "batch_size": 32,
        "optimizer": "adam", "learning_rate": 2e-3, "lr_schedule": "constant", "min_lr": 2e-4,
        "clip": 5.0, "dtype": "float32", "init_scale": 0.01, "random_offsets": False, "ema": 0.0, "warmup_steps": 0,
        "epochs": 200, "max_steps": None, "time_budget": 840.0, "patience": 5, "val_fraction": 0.1,
        "sample_every": 500, "eval_every": 500, "log_every": 10,
        "sample_length": 200, "temperature": 0.8, "seed": 1337,
    },
}
# The best model in 180 seconds on 2 cores (README, "Quick start"): 384 units on 16 streams
# of 64 steps (about 120-130k chars/s, 21-22 epochs in the budget); Adam with a linear warmup over
# the first 3,000 steps, then a cosine decay from 1.5e-3 to 2e-5 over the time budget;
# random epoch offsets; and a moving average of the weights, which is what gets evaluated,
# sampled and saved. Evaluated every ~30 s; the best checkpoint is kept.
PRESETS["fast"] = dict(
    PRESETS["default"], hidden_size=384, batch_size=16, seq_length=64,
    learning_rate=1.5e-3, lr_schedule="cosine", min_lr=2e-5, warmup_steps=3000,
    random_offsets=True, ema=0.998,
    time_budget=180.0, patience=0, eval_every=4000, sample_every=4000,
)

# Settings a resumed run must keep: they fix the shapes, the data walk or the optimiser state.
FROZEN_ON_RESUME = ("hidden_size", "seq_length", "batch_size", "optimizer", "dtype",
                    "init_scale", "val_fraction", "seed", "random_offsets", "ema")

DEFAULT_DATA = "data/tiny_shakespeare.txt"
DEFAULT_OUT = "out"

# A training loss per character above EXPLODE_FACTOR * ln V (10x a uniform guess), or inf/NaN,
# means training has blown up. Not lower: with the textbook settings, Adagrad's first steps
# (every weight moves by about lr) leave ||Whh|| near 12, and such a model, started from
# h = 0, can score 20 nats/char for a while and then recover.
EXPLODE_FACTOR = 10.0

# Exit codes.
EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130


class UserError(ValueError):
    """Bad input from the user: reported as one line, never a traceback."""


class _Diverged(Exception):
    """Raised inside the training loop when the loss or the weights stop being finite numbers."""


def resolve_config(preset: str = "default", base: dict | None = None, **overrides) -> dict:
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
    if not (math.isfinite(c["clip"]) and c["clip"] >= 0):
        raise UserError(f"--clip must be a number >= 0 (0 = no clipping), got {c['clip']!r}")
    if c["lr_schedule"] == "cosine" and not (math.isfinite(c["min_lr"]) and 0 <= c["min_lr"] <= c["learning_rate"]):
        raise UserError(f"--min-lr must be between 0 and --learning-rate ({c['learning_rate']:g}), "
                        f"got {c['min_lr']!r}")
    if not (isinstance(c["ema"], (int, float)) and math.isfinite(c["ema"]) and 0 <= c["ema"] < 1):
        raise UserError(f"--ema must be in [0, 1) (0 = off; 0.998 averages about the last 500 steps), "
                        f"got {c['ema']!r}")
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


def check_out_dir(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; give a folder for the checkpoints and logs")
    return out


# -----------------------------------------------------------------------------
# Small helpers: data, files, the learning-rate schedule, the Ctrl-C handler
# -----------------------------------------------------------------------------

def load_data(path, val_fraction: float, progress: bool = True):
    """(path, chars, train_ids, val_ids) from a UTF-8 text file, downloading a known corpus if missing."""
    try:
        path = ensure_data_file(path, progress=progress)
    except DownloadError as e:                      # includes "no such file" for unknown names
        raise UserError("; ".join(str(e).splitlines())) from None
    if Path(path).is_dir():
        raise UserError(f"--data {path} is a folder; give a UTF-8 text file")
    text = rnn.read_text(path)                       # ValueError (one line) for binary / non-UTF-8
    if not text:
        raise UserError(f"--data {path} is empty; the model needs text to learn from")
    chars = rnn.build_vocab(text)
    train_ids, val_ids = rnn.train_val_split(rnn.encode(text, chars), val_fraction)
    if val_fraction > 0 and len(val_ids) < 2:
        raise UserError(f"--data {path}: the validation split ({val_fraction:g} of {len(text)} chars) "
                        "has fewer than 2 characters; use a longer text or --val-fraction 0")
    return Path(path), chars, train_ids, val_ids


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file next to `path`, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _json_float(x):
    """Finite floats as they are, NaN/inf as None (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(x) else None


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


def _fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60:02d}:{seconds % 60:02d}"


def default_prime(chars) -> str:
    """Samples start from a newline (a fresh line of the play) if the vocabulary has one."""
    return "\n" if "\n" in chars else chars[0]


# -----------------------------------------------------------------------------
# Training
# -----------------------------------------------------------------------------

def train(config: dict, resume=None, *, quiet: bool = False, progress: bool | None = None) -> dict:
    """Train with the settings dict `config` (see resolve_config); returns the final metrics.

    resume: path of a checkpoint to continue from (its vocabulary must match the data).
    progress: show a tqdm bar (None: only if stderr is a terminal and not quiet).
    The metrics' "reason" says why training stopped: epochs, max_steps, time_budget,
    plateau, interrupted (Ctrl-C; a checkpoint was saved) or diverged (no new checkpoint;
    the previous checkpoint is kept; "message" explains).
    Raises UserError / CheckpointError / ValueError (one-line messages) before any file
    is written if the settings, the data or the checkpoint cannot be used.
    """
    c = dict(config)
    check_config(c)
    if progress is None:
        progress = sys.stderr.isatty() and not quiet
    say = (lambda *a, **k: None) if quiet else (lambda s="": tqdm.write(str(s), file=sys.stdout))

    say(f"settings: {c}")

    # --- everything that can fail on bad input happens before anything is written ---
    data_path, chars, train_ids, val_ids = load_data(c["data"], c["val_fraction"], progress)
    V, H, B, T = len(chars), c["hidden_size"], c["batch_size"], c["seq_length"]
    rng = np.random.default_rng(c["seed"])
    params = rnn.init_params(V, H, rng, np.dtype(c["dtype"]).type, c["init_scale"])
    try:
        trainer = rnn.Trainer(params, train_ids, B, T, c["learning_rate"], c["optimizer"],
                             c["clip"], random_offsets=c["random_offsets"],
                             seed=c["seed"], ema=c["ema"])
    except ValueError as e:                         # text shorter than one window
        raise UserError(f"--data {data_path}: {str(e).removeprefix('Streams: ')}") from None
    best = {"val_loss": None, "step": None, "evals_since_best": 0}
    elapsed0, train_seconds0 = 0.0, 0.0
    if resume is not None:
        ck = rnn.load_checkpoint(resume, expected_chars=chars)       # CheckpointError: one line
        trainer.restore(ck)
        m = ck["meta"]
        rng = ck["rng"] if ck["rng"] is not None else rng
        best = {"val_loss": m.get("best_val_loss"), "step": m.get("best_step"),
                "evals_since_best": int(m.get("evals_since_best", 0))}
        elapsed0, train_seconds0 = float(m.get("elapsed", 0.0)), float(m.get("train_seconds", 0.0))

    out = check_out_dir(c["out"])
    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.glob("last.npz.*.tmp")) + list(out.glob("best.npz.*.tmp")):
        stale.unlink(missing_ok=True)               # left by a run killed while saving
    last_path, best_path = out / "last.npz", out / "best.npz"
    log_path, metrics_path = out / "log.jsonl", out / "metrics.json"

    W = len(trainer.streams)
    info = {"vocab_size": V, "train_chars": int(len(train_ids)), "val_chars": int(len(val_ids)),
            "chars_per_epoch": trainer.streams.chars_per_epoch, "windows_per_epoch": W}
    say(f"data: {data_path}, {len(train_ids) + len(val_ids):,} chars, {V} distinct; "
        f"train {len(train_ids):,}, validation {len(val_ids):,}; one epoch = {W} steps of "
        f"{B} streams x {T} chars = {trainer.streams.chars_per_epoch:,} chars")

    # --- the log: a fresh file, or the old one cut back to the resume point ---
    start_step = trainer.step_count
    if resume is not None:
        kept = []
        if log_path.exists():
            for line in log_path.read_text(encoding="utf-8").splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    continue                        # a line cut short by a crash
                if e.get("kind") != "end" and (e.get("step") is None or e["step"] <= start_step):
                    kept.append(line + "\n")
        if not any(json.loads(line).get("kind") == "config" for line in kept):
            kept.insert(0, json.dumps({"kind": "config", **c, **info}) + "\n")
        atomic_write_text(log_path, "".join(kept))
        log = open(log_path, "a", encoding="utf-8")
        log.write(json.dumps({"kind": "resume", "step": start_step, "checkpoint": str(resume),
                              "config": c}) + "\n")
        say(f"resumed from {resume} at step {start_step} (epoch {trainer.epoch}, "
            f"{elapsed0:.0f} s trained so far)")
    else:
        log = open(log_path, "w", encoding="utf-8")
        log.write(json.dumps({"kind": "config", **c, **info}) + "\n")
    log.flush()

    def write_log(kind, **fields):
        log.write(json.dumps({"kind": kind, "step": trainer.step_count, "epoch": round(epochs_done(), 6),
                              "chars": trainer.chars_seen, "time": round(elapsed(), 3), **fields}) + "\n")
        log.flush()

    def epochs_done() -> float:
        return trainer.epoch + trainer.window / W

    t_start = time.perf_counter()

    def elapsed() -> float:                         # wall-clock training time of the whole run
        return elapsed0 + time.perf_counter() - t_start

    step_seconds = 0.0                              # time inside trainer.step, for chars/s

    def save(path):
        bad = [k for k, v in trainer.params.items() if not np.isfinite(v).all()]
        if bad:                                     # never overwrite a good checkpoint with inf/NaN weights
            raise _Diverged(f"the weights {', '.join(bad)} hold inf or NaN")
        meta = {**trainer.state(), "config": c, "best_val_loss": best["val_loss"],
                "best_step": best["step"], "evals_since_best": best["evals_since_best"],
                "elapsed": elapsed(), "train_seconds": train_seconds0 + step_seconds}
        rnn.save_checkpoint(path, *trainer.checkpoint_arrays(), chars, trainer.h, meta, rng)

    prime = default_prime(chars)
    recent = collections.deque(maxlen=100)          # per-char losses of the last steps, for display
    last_eval_step = start_step if resume is not None else None
    saved_step = start_step if resume is not None else None
    lnV = math.log(V)

    def evaluate_now():
        nonlocal last_eval_step, saved_step
        r = rnn.evaluate(trainer.model_params, val_ids)
        if not math.isfinite(r["nats"]):
            raise _Diverged(f"the validation loss is {r['nats']:.4g} nats/char")
        last_eval_step = trainer.step_count
        improved = best["val_loss"] is None or r["nats"] < best["val_loss"]
        if improved:
            best.update(val_loss=r["nats"], step=trainer.step_count, evals_since_best=0)
            save(best_path)
        else:
            best["evals_since_best"] += 1
        save(last_path)
        saved_step = trainer.step_count
        write_log("val", val_loss=r["nats"], val_bits=r["bits"])
        train_loss = f"{np.mean(recent):.3f}" if recent else "-"
        cps = (trainer.chars_seen - start_chars) / step_seconds if step_seconds else 0.0
        say(f"step {trainer.step_count} | epoch {epochs_done():.2f} | train {train_loss} | "
            f"val {r['nats']:.4f} nats/char ({r['bits']:.4f} bits)"
            f"{' | best' if improved else ''} | {cps / 1000:.0f}k chars/s | {_fmt_time(elapsed())}")

    def sample_now():
        text = rnn.sample_text(trainer.model_params, chars, prime, c["sample_length"], c["temperature"], rng)
        write_log("sample", temperature=c["temperature"], prime=prime, text=text)
        say(f"----- sample at step {trainer.step_count} (epoch {epochs_done():.2f}, "
            f"temperature {c['temperature']:g}) -----\n{prime.lstrip(chr(10)) + text}\n-----")

    # --- the progress bar ---
    limits = []
    if c["max_steps"]:
        limits.append(c["max_steps"])
    if c["epochs"]:
        limits.append(c["epochs"] * W)
    total = min(limits) if limits else None
    try:                                            # some pseudo-terminals report 0 columns
        width_known = os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError, AttributeError):
        width_known = False
    bar = tqdm(total=total, initial=start_step, disable=not progress, unit="step", file=sys.stderr,
               dynamic_ncols=width_known, ncols=None if width_known else 120,
               nrows=None if width_known else 24, mininterval=0.5,
               bar_format="{l_bar}{bar}| step {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
    start_chars = trainer.chars_seen
    next_postfix = 0.0

    def update_bar():
        nonlocal next_postfix
        bar.update(1)
        now = time.perf_counter()
        if not progress or now < next_postfix:
            return
        next_postfix = now + 0.5
        done = trainer.step_count - start_step
        sec_per_step = (now - t_start) / max(done, 1)
        etas = []
        if total:
            etas.append((total - trainer.step_count) * sec_per_step)
        if c["time_budget"]:
            etas.append(c["time_budget"] - elapsed())
        eta = _fmt_time(min(etas)) if etas else "?"
        cps = (trainer.chars_seen - start_chars) / step_seconds if step_seconds else 0.0
        bar.set_postfix_str(f"epoch {epochs_done():.2f}{'/' + str(c['epochs']) if c['epochs'] else ''}, "
                            f"loss {np.mean(recent):.3f}, {cps / 1000:.1f}k chars/s, eta {eta}",
                            refresh=False)

    # --- the loop ---
    reason, message, lr = None, None, c["learning_rate"]
    try:
        with StopOnSigint() as sigint:
            while True:
                if sigint.requested:
                    reason = "interrupted"
                elif c["max_steps"] and trainer.step_count >= c["max_steps"]:
                    reason = "max_steps"
                elif c["epochs"] and trainer.epoch >= c["epochs"]:
                    reason = "epochs"
                elif c["time_budget"] and elapsed() >= c["time_budget"]:
                    reason = "time_budget"
                if reason:
                    break
                lr = learning_rate_at(c, trainer.step_count, epochs_done(), elapsed())
                log_now = c["log_every"] and (trainer.step_count + 1) % c["log_every"] == 0
                t0 = time.perf_counter()
                loss = trainer.step(lr, measure=bool(log_now))
                step_seconds += time.perf_counter() - t0
                if not math.isfinite(loss) or loss > EXPLODE_FACTOR * lnV:
                    raise _Diverged(f"the training loss is {loss:.4g} nats/char")
                recent.append(loss)
                update_bar()
                if log_now:
                    write_log("train", loss=loss, smooth_loss=trainer.smooth_loss, lr=lr,
                              grad_norm={k: _json_float(v) for k, v in trainer.grad_norms.items()},
                              clip_frac=trainer.clip_fractions)
                if c["sample_every"] and trainer.step_count % c["sample_every"] == 0:
                    sample_now()
                if len(val_ids) and c["eval_every"] and trainer.step_count % c["eval_every"] == 0:
                    evaluate_now()
                    if c["patience"] and best["evals_since_best"] >= c["patience"]:
                        reason = "plateau"
                        break
            # --- the end: a last evaluation and checkpoint ---
            if reason != "interrupted" and len(val_ids) and last_eval_step != trainer.step_count:
                evaluate_now()
            if saved_step != trainer.step_count:
                save(last_path)
                saved_step = trainer.step_count
    except _Diverged as e:
        reason = "diverged"
        kept = (f"the last good checkpoint is kept: {last_path} (step {saved_step})"
                if saved_step is not None else "no checkpoint had been saved yet")
        clip = f"--clip {c['clip']:g}" if c["clip"] else "--clip 0 turned clipping off"
        message = (f"training diverged at step {trainer.step_count}: {e} (a uniform guess scores "
                   f"ln V = {lnV:.2f}); lower --learning-rate (now {lr:g}) and check the gradient "
                   f"clipping ({clip}); {kept}")
    finally:
        bar.close()
    chars_trained = trainer.chars_seen
    total_step_seconds = train_seconds0 + step_seconds
    metrics = {
        "reason": reason,
        "best_val_loss": _json_float(best["val_loss"]),
        "best_val_bits": _json_float(best["val_loss"] / math.log(2)) if best["val_loss"] is not None else None,
        "best_step": best["step"],
        "final_train_loss": _json_float(trainer.smooth_loss),
        "steps": trainer.step_count,
        "epochs": round(epochs_done(), 6),
        "chars": chars_trained,
        "seconds": round(elapsed(), 3),
        "chars_per_sec": round(chars_trained / total_step_seconds, 1) if total_step_seconds else None,
        "checkpoint": str(last_path) if saved_step is not None else None,
        "best_checkpoint": str(best_path) if best["step"] is not None else None,
    }
    if message:
        metrics["message"] = message
    write_log("end", **{k: v for k, v in metrics.items() if k != "steps"},
              lr=lr, smooth_loss=_json_float(trainer.smooth_loss))
    log.close()
    atomic_write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    if reason not in ("diverged", "interrupted"):
        best_txt = (f"best val {metrics['best_val_loss']:.4f} nats/char ({metrics['best_val_bits']:.4f} bits) "
                    f"at step {best['step']}; " if best["val_loss"] is not None else "")
        say(f"done ({reason}): {trainer.step_count} steps, {epochs_done():.2f} epochs, "
            f"{_fmt_time(elapsed())}; {best_txt}checkpoints and logs in {out}/")
    return metrics


# -----------------------------------------------------------------------------
# Sampling from a checkpoint
# -----------------------------------------------------------------------------

def sample_from_checkpoint(checkpoint, prime: str | None = None, length: int = 200,
                           temperature: float = 1.0, seed: int | None = None) -> str:
    """prime + `length` sampled characters from a saved checkpoint."""
    ck = rnn.load_checkpoint(checkpoint)
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
# fits implementation.NGram (interpolated Kneser-Ney) of each order on the
# training split, prints its validation loss, samples from the best order, and,
# given an RNN checkpoint, mixes the two per character:
#   p_mix(w) = lam * p_rnn(w) + (1 - lam) * p_ngram(w)
# with lam chosen on one half of the validation text and reported on the other
# (analysis.mixture_halves).

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


def ngram_baseline(data, out, orders, *, checkpoint=None, val_fraction: float = 0.1,
                   temperature: float = 0.8, seed: int = 1337, sample_length: int = 300,
                   quiet: bool = False) -> dict:
    """Fit an n-gram of each order, compare on validation, sample the best; write out/ngram.json.

    Returns what it writes: {"data", "val_chars", "table": [{"order", "val_nats",
    "val_bits", "fit_seconds", "eval_seconds"}], "best_order", "temperature",
    "seed", "sample", and with a checkpoint "mixture"}.
    """
    from cli import atomic_write_text as write_atomic

    say = (lambda *a: None) if quiet else print
    out = check_out_dir(out)
    try:
        rnn.check_temperature(temperature)
    except ValueError as e:
        raise UserError(f"--temperature: {e}") from None
    data_path, chars, train_ids, val_ids = load_data(data, val_fraction, progress=not quiet)
    if len(val_ids) < 2:
        raise UserError("the n-gram comparison needs a validation split: set --val-fraction > 0")
    params = None
    if checkpoint is not None:                                   # fail before any counting
        params = rnn.load_checkpoint(checkpoint, expected_chars=chars)["params"]
    V = len(chars)
    say(f"data: {data_path}, vocabulary {V}; train {len(train_ids):,} chars, validation {len(val_ids):,}")
    say(f"{'order':>5} {'val nats':>9} {'val bits':>9} {'fit s':>7} {'eval s':>7}")
    table, best = [], None
    for order in orders:
        t0 = time.perf_counter()
        model = rnn.NGram(order).fit(train_ids, V)
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
    if params is not None:
        lp_rnn = rnn.target_logprobs(params, val_ids)            # (M,) log p_rnn of each target
        lp_ngram = model.logprobs(val_ids)                       # (M,) log p_ngram
        halves = mixture_halves(lp_rnn, lp_ngram)
        result["mixture"] = {"checkpoint": str(checkpoint), "order": row["order"], "grid": list(MIX_GRID),
                             "rnn_nats": float(-lp_rnn.mean()), "halves": halves}
        say(f"mixture lam*RNN + (1-lam)*{row['order']}-gram, lam picked on one half of validation:")
        for h in halves:
            say(f"  lam={h['lambda']:.2f} (from the {h['choose_on']} half) on the {h['report_on']} half: "
                f"mixture {h['mix_nats']:.4f}, RNN {h['rnn_nats']:.4f}, n-gram {h['ngram_nats']:.4f} nats/char")
    out.mkdir(parents=True, exist_ok=True)
    path = write_atomic(out / NGRAM_FILE, json.dumps(result, indent=2) + "\n")
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
    ngram_baseline(c["data"], c["out"], parse_orders(args.orders), checkpoint=args.checkpoint,
                   val_fraction=c["val_fraction"], temperature=c["temperature"], seed=c["seed"],
                   sample_length=length, quiet=args.quiet)
    return EXIT_OK


# -----------------------------------------------------------------------------
# Command line
# -----------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):                       # one line, exit 2
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    D, TB = PRESETS["default"], PRESETS["textbook"]

    def dflt(k):
        show = lambda v: "none" if v is None else v
        return f"(default: {show(D[k])}; textbook: {show(TB[k])})"

    p = _Parser(
        prog="python train_minimal.py",
        description="Train a character-level vanilla RNN (implementation.py) on a text file, "
                    "with progress, validation, safe checkpoints and exact resume; or sample from "
                    "a checkpoint. An EPOCH is one full pass over the training split (the first "
                    "1 - val-fraction of the text).",
        epilog="Exit status: 0 done, 2 bad input, 3 training diverged, 130 interrupted (Ctrl-C saves "
               "out/last.npz first). The loss is the cross-entropy per character, in nats "
               "(bits = nats / ln 2); the progress bar shows the mean of the last 100 steps. "
               "LOG FORMAT (out/log.jsonl): one JSON object per line with a 'kind': config, train "
               "(every --log-every steps: loss, smooth_loss, lr, grad_norm before clipping, clip_frac), "
               "val, sample, resume, end. NumPy runs on one BLAS thread (the fastest choice at these matrix sizes, and the only safe one on a busy machine); set RNN_THREADS=2 to use two.")

    g = p.add_argument_group("data and output")
    g.add_argument("--data", metavar="PATH", help=f"UTF-8 text file to train on; {DEFAULT_DATA} and data/federalist.txt "
                                  f"are downloaded if missing (default: {DEFAULT_DATA})")
    g.add_argument("--val-fraction", type=float, metavar="X", help="the last fraction of the text held out for "
                                                      f"validation, 0 = none {dflt('val_fraction')}")
    g.add_argument("--out", metavar="DIR", help=f"folder for last.npz, best.npz, log.jsonl and metrics.json "
                                 f"(default: {DEFAULT_OUT}; with --resume, the checkpoint's folder)")

    g = p.add_argument_group("model and optimiser")
    g.add_argument("--preset", choices=sorted(PRESETS),
                   help="starting settings that other flags override: default (the quick start), "
                        "textbook (min-char-rnn exactly: B=1, hidden 100, unroll 25, Adagrad lr 0.1, "
                        "clip 5, float64, init 0.01) or fast (a 180-second run) (default: default)")
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

    g = p.add_argument_group("how long")
    g.add_argument("--epochs", type=int, metavar="N", help=f"stop after this many full passes over the training split "
                                              f"{dflt('epochs')}")
    g.add_argument("--max-steps", type=int, metavar="N", help="stop when the run has done this many steps in total, "
                                                 "counting those before a --resume (default: no limit)")
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

    g = p.add_argument_group("sampling from a checkpoint (no training)")
    g.add_argument("--sample-only", action="store_true", help="print a sample from --checkpoint and exit")
    g.add_argument("--checkpoint", metavar="PATH", help="checkpoint to sample from (e.g. out/best.npz)")
    m = g.add_mutually_exclusive_group()
    m.add_argument("--prime", metavar="TEXT", help="text to start from (default: a newline)")
    m.add_argument("--prime-file", metavar="PATH", help="UTF-8 file whose text to start from")
    g = p.add_argument_group("n-gram baseline (no training)")
    g.add_argument("--ngram", action="store_true", help="fit Kneser-Ney character n-grams of --orders on the training "
                   "split, print their validation loss, sample the best, write --out/ngram.json; with "
                   "--checkpoint also mix the best with that RNN")
    g.add_argument("--orders", default="1-10", metavar="A-B", help="n-gram orders for --ngram (default: %(default)s)")
    return p


CONFIG_FLAGS = ("data", "out", "val_fraction", "hidden_size", "seq_length", "batch_size", "optimizer",
                "learning_rate", "lr_schedule", "min_lr", "clip", "dtype", "init_scale", "seed",
                "random_offsets", "ema", "warmup_steps", "epochs",
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
    ck = rnn.load_checkpoint(args.resume)            # CheckpointError: missing / corrupted
    base = ck["meta"].get("config")
    if not isinstance(base, dict):
        raise UserError(f"{args.resume}: this checkpoint was not saved by train_minimal.py "
                        "(no settings in it), so it cannot be resumed here")
    for k in FROZEN_ON_RESUME:
        if k in given and given[k] != base.get(k):
            raise UserError(f"--{k.replace('_', '-')} {given[k]} differs from the checkpoint's {base.get(k)}; "
                            f"a resumed run keeps {', '.join(FROZEN_ON_RESUME)}")
    given.setdefault("out", str(Path(args.resume).parent))
    base = {"random_offsets": False, "ema": 0.0, "warmup_steps": 0, **base}   # settings older checkpoints did not store
    return resolve_config(base=base, **given)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input, 3 diverged, 130 Ctrl-C)."""
    parser = build_parser()
    if argv is not None:                            # accept paths and numbers from Python callers
        argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv]
    args = parser.parse_args(argv)
    try:
        limit_threads()                             # one BLAS thread unless RNN_THREADS says otherwise
        if args.ngram:
            return _main_ngram(args)
        if args.sample_only:
            return _main_sample(args)
        if args.checkpoint or args.prime is not None or args.prime_file:
            raise UserError("--checkpoint, --prime and --prime-file go with --sample-only "
                            "(to continue training from a checkpoint, use --resume)")
        config = config_from_args(args)
        check_config(config)
        metrics = train(config, resume=args.resume, quiet=args.quiet,
                        progress=False if (args.no_progress or args.quiet) else None)
    except (UserError, rnn.CheckpointError, DownloadError, ValueError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
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


def _main_sample(args) -> int:
    if not args.checkpoint:
        raise UserError("--sample-only needs --checkpoint PATH (e.g. out/best.npz)")
    c = resolve_config(args.preset or "default", sample_length=args.sample_length,
                       temperature=args.temperature, seed=args.seed)
    if not (isinstance(c["sample_length"], int) and c["sample_length"] > 0):
        raise UserError(f"--length must be an integer > 0, got {c['sample_length']}")
    try:
        rnn.check_temperature(c["temperature"])
    except ValueError as e:
        raise UserError(f"--temperature: {e}") from None
    prime = args.prime
    if args.prime_file:
        if not Path(args.prime_file).is_file():
            raise UserError(f"--prime-file {args.prime_file}: no such file")
        prime = rnn.read_text(args.prime_file)
    text = sample_from_checkpoint(args.checkpoint, prime, c["sample_length"], c["temperature"], c["seed"])
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
