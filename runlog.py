"""The training log, log.jsonl: what it holds, how it is written, read back and cut for a resume.

train_minimal.py writes it, visualization.py and the notebook read it; this file
is the one place that says what is in it. SCHEMA below lists every kind of entry
and every field: the writer refuses a field the table does not list, the reader
checks each line against the table, and the LOG FORMAT text of
``python train_minimal.py --help`` is made from it. To log a new number, add one
row to SCHEMA.

A log is a file someone else may have made or a crash may have cut short, so
reading it is bounded (a size limit, a regular file only, one JSON object per
line checked against SCHEMA) and a bad line is either skipped with a one-line
warning naming its line number (lenient reading, used before a resume) or
reported as a LogError naming it (strict reading, used by the plots).
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from safeio import atomic_write_bytes

LOG_NAME = "log.jsonl"
MAX_LOG_BYTES = 256 * 2**20          # a log above 256 MB is not one of ours (a long run writes a few MB)


class LogError(ValueError):
    """A training log that cannot be used (missing, too large, not JSON lines, no training entries)."""


# -----------------------------------------------------------------------------
# The schema: every kind of entry and its fields
# -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    name: str
    type: str            # "int", "number" (int or float; null = not finite), "str", "bool", "dict", "any"
    required: bool       # must be there, and not null (except a number: null is NaN or inf)
    doc: str


def _stamp(required: bool = True) -> list:
    """The fields every entry of the training loop carries: where in the run it was made."""
    return [Field("step", "int", required, "steps done"),
            Field("epoch", "number", False, "epochs done (full passes over the training split)"),
            Field("chars", "int", required, "training characters seen"),
            Field("time", "number", False, "seconds of training so far")]


SCHEMA: dict[str, list[Field]] = {
    "config": [
        Field("vocab_size", "int", False, "distinct characters V"),
        Field("train_chars", "int", False, "characters in the training split"),
        Field("val_chars", "int", False, "characters in the validation split"),
        Field("chars_per_epoch", "int", False, "characters one epoch trains on"),
        Field("windows_per_epoch", "int", False, "steps in one epoch"),
    ],
    "train": _stamp() + [
        Field("loss", "number", True, "this step's training loss, nats per character"),
        Field("smooth_loss", "number", False, "min-char-rnn's running average of loss (0.999 per step, "
                                              "started at ln V)"),
        Field("lr", "number", False, "learning rate of this step"),
        Field("grad_norm", "dict", False, "L2 norm of each gradient before clipping"),
        Field("clip_frac", "dict", False, "share of each gradient's entries that were clipped"),
    ],
    "val": _stamp() + [
        Field("val_loss", "number", True, "validation loss, nats per character"),
        Field("val_bits", "number", False, "the same in bits per character"),
    ],
    "sample": _stamp()[:1] + _stamp(required=False)[1:] + [
        Field("text", "str", True, "the sampled characters (without the prime)"),
        Field("prime", "str", False, "the text the sample started from"),
        Field("temperature", "number", False, "sampling temperature"),
    ],
    "resume": [
        Field("step", "int", True, "the step the run continues from"),
        Field("checkpoint", "str", False, "the checkpoint it continues from"),
        Field("config", "dict", False, "the settings of the continued run"),
    ],
    "end": _stamp(required=False) + [
        Field("reason", "str", False, "why training stopped: epochs, max_steps, time_budget, plateau, "
                                      "interrupted or diverged"),
        Field("message", "str", False, "what went wrong, for diverged"),
        Field("best_val_loss", "number", False, "lowest validation loss, nats per character"),
        Field("best_val_bits", "number", False, "the same in bits"),
        Field("best_step", "int", False, "the step of best.npz"),
        Field("final_train_loss", "number", False, "mean training loss per character over the last "
                                                   "final_train_steps steps"),
        Field("final_train_steps", "int", False, "how many steps final_train_loss averages"),
        Field("smooth_loss", "number", False, "min-char-rnn's running average of the loss"),
        Field("epochs", "number", False, "epochs done"),
        Field("seconds", "number", False, "seconds of training"),
        Field("chars_per_sec", "number", False, "training speed (time inside the steps only)"),
        Field("lr", "number", False, "the last learning rate"),
        Field("checkpoint", "str", False, "last.npz, if one was saved"),
        Field("best_checkpoint", "str", False, "best.npz, if one was saved"),
    ],
}
# A config entry also holds every setting of the run (the keys of train_minimal's presets).
OPEN_KINDS = ("config",)


def format_help() -> str:
    """The LOG FORMAT paragraph of train_minimal.py --help, made from SCHEMA."""
    parts = [f"{kind} ({', '.join(f.name for f in fields)}{', and every setting' if kind in OPEN_KINDS else ''})"
             for kind, fields in SCHEMA.items()]
    return ("LOG FORMAT (log.jsonl): one JSON object per line with a 'kind' and its fields: "
            + "; ".join(parts) + ". Losses are nats per character; a NaN or inf is written as null.")


def _type_ok(value, kind: str, required: bool) -> bool:
    if value is None:                                # null: a number that was not finite, or not known yet
        return kind == "number" or not required
    if kind == "any":
        return True
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "dict":
        return isinstance(value, dict)
    raise AssertionError(f"runlog.SCHEMA: unknown field type {kind!r}")


def check_entry(entry) -> str | None:
    """None if `entry` is a valid log entry, else what is wrong with it (one line)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        return 'expected a JSON object with a "kind" field'
    kind = entry["kind"]
    fields = SCHEMA.get(kind)
    if fields is None:
        return f"unknown kind {kind!r} (known: {', '.join(SCHEMA)})"
    for f in fields:
        if f.name not in entry:
            if f.required:
                return f"a {kind!r} entry needs a {f.name!r} field"
        elif not _type_ok(entry[f.name], f.type, f.required):
            return f"a {kind!r} entry's {f.name!r} must be {f.type}, got {entry[f.name]!r:.40}"
    return None


def _finite(value):
    """JSON has no NaN: numbers that are not finite are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def encode(kind: str, **fields) -> str:
    """One log line (with its newline), checked against SCHEMA."""
    known = {f.name: f for f in SCHEMA.get(kind, [])}
    unknown = sorted(set(fields) - set(known)) if kind not in OPEN_KINDS else []
    if unknown:
        raise LogError(f"runlog: a {kind!r} entry has no field {', '.join(map(repr, unknown))}; "
                       "add it to runlog.SCHEMA")
    entry = {"kind": kind, **{k: _finite(v.item() if hasattr(v, "item") and not isinstance(v, dict) else v)
                              for k, v in fields.items()}}
    problem = check_entry(entry)
    if problem:
        raise LogError(f"runlog: {problem}")
    return json.dumps(entry) + "\n"


# -----------------------------------------------------------------------------
# Writing
# -----------------------------------------------------------------------------

class RunLogWriter:
    """Appends entries to a log, one line each, flushed at once (a crash loses at most one line)."""

    def __init__(self, path, fresh: bool):
        self.path = Path(path)
        self._file = open(self.path, "w" if fresh else "a", encoding="utf-8")

    def write(self, kind: str, **fields) -> None:
        self._file.write(encode(kind, **fields))
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# -----------------------------------------------------------------------------
# Reading
# -----------------------------------------------------------------------------

def _read_bounded(path: Path) -> bytes:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise LogError(f"training log not found: {path}") from None
    except OSError as e:
        raise LogError(f"{path}: cannot read the training log ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):                 # never open a FIFO or a device: it could block
        raise LogError(f"training log path is not a file: {path}")
    if st.st_size > MAX_LOG_BYTES:
        raise LogError(f"{path}: {st.st_size / 2**20:.0f} MB is more than a training log holds "
                       f"(limit {MAX_LOG_BYTES // 2**20} MB); is this the right file?")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LOG_BYTES + 1)
    except OSError as e:
        raise LogError(f"{path}: cannot read the training log ({e.strerror})") from None
    if len(data) > MAX_LOG_BYTES:                    # it grew while we looked
        raise LogError(f"{path}: more than {MAX_LOG_BYTES // 2**20} MB; is this the right file?")
    return data


def read_entries(path, warn=None) -> list[tuple[int, dict, bytes]]:
    """[(line number, entry, raw line)] of every valid line of the log at `path`.

    warn=None (strict): the first bad line raises LogError naming it. warn=a
    function: it is called with a one-line warning for each bad line, which is
    skipped (a line cut short by a crash is the usual one).
    """
    path = Path(path)
    data = _read_bounded(path)
    entries = []
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
        except ValueError as e:
            problem = f"not valid JSON ({e.msg}); is this a training log (a truncated last line after a crash?)"
        else:
            problem = check_entry(entry)
        if problem:
            if warn is None:
                raise LogError(f"{path}, line {n}: {problem}")
            warn(f"warning: {path}, line {n} skipped: {problem.split(';')[0]}")
            continue
        entries.append((n, entry, raw))
    return entries


def load_log(path) -> dict:
    """Read a training log (strictly) and group its entries by "kind".

    Returns {"config": dict, "train": [...], "val": [...], "sample": [...],
    "end": dict or None}, each list in step order. Raises LogError with a
    one-line reason for a missing or oversized file, a line that is not an entry
    of SCHEMA, or a log without any "train" entry. If a run was resumed from an
    earlier checkpoint, its steps repeat: the later entries replace the earlier
    ones from that step on.
    """
    log = {"config": {}, "train": [], "val": [], "sample": [], "end": None}
    for _, entry, _ in read_entries(path):
        kind = entry["kind"]
        if kind == "config":
            if not log["config"]:
                log["config"] = entry                # a resumed run repeats the same settings
        elif kind == "end":
            log["end"] = entry
        elif kind in ("train", "val", "sample"):
            entries = log[kind]
            while entries and entries[-1]["step"] >= entry["step"]:
                entries.pop()                        # resumed from an earlier checkpoint: replay wins
            entries.append(entry)
    if not log["train"]:
        raise LogError(f"{path}: no \"train\" entries; is this the log.jsonl that train_minimal.py writes?")
    return log


# -----------------------------------------------------------------------------
# Cutting a log back to a resume point
# -----------------------------------------------------------------------------

def plan_resume(path, step: int, config_line: str, warn) -> bytes:
    """The bytes the log at `path` should hold to continue from `step`; reads, writes nothing.

    Keeps every entry up to `step` (no "end"), skips bad lines with a warning,
    and puts `config_line` first if the log has no config entry (or is missing).
    """
    path = Path(path)
    kept = []
    if path.exists():
        for _, entry, raw in read_entries(path, warn=warn):
            if entry["kind"] != "end" and (entry.get("step") is None or entry["step"] <= step):
                kept.append(raw + b"\n")
    if not any(json.loads(line)["kind"] == "config" for line in kept):
        kept.insert(0, config_line.encode("utf-8"))
    return b"".join(kept)


def rewrite(path, content: bytes) -> None:
    """Replace the log with `content` atomically: a temporary file beside it, then a rename.

    The temporary file (.log.jsonl.*.tmp) is removed on every exit path Python
    sees (an error, a full disk, Ctrl-C); after SIGKILL the next run sweeps it.
    """
    atomic_write_bytes(path, content)
