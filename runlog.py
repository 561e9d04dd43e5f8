"""The training log, log.jsonl: what it holds, how it is written, read back and cut for a resume.

train_minimal.py writes it, visualization.py and the notebook read it; this file
is the one place that says what is in it. SCHEMA below lists every kind of entry
and every field: the writer refuses a field the table does not list, the reader
checks each line against the table, and the LOG FORMAT text of
``python train_minimal.py --help`` is made from it. To log a new number, add one
row to SCHEMA.

A log is a file someone else may have made or a crash may have cut short, so
reading it is bounded and nothing in it is trusted:

* sizes: a regular file of at most MAX_LOG_BYTES, read line by line (never whole),
  each line at most MAX_LINE_BYTES;
* values: every line is one JSON object checked against SCHEMA: whole numbers
  are counts from 0 to 2**53 (none of more than 20 digits is even parsed),
  numbers are finite, strings are UTF-8 without NUL, objects hold a bounded
  number of short-named scalars; a config's settings get the checks a
  checkpoint's settings get (checkpoints.CONFIG_SCHEMA); deep nesting is refused;
* memory: load_log keeps at most MAX_POINTS training and validation entries and
  MAX_SAMPLES samples, spread evenly over the run (always with the latest one);
  plan_resume holds nothing of the log, and rewrite streams it.

A bad line is either skipped with a one-line warning naming its line number
(lenient reading, used before a resume; after MAX_WARNINGS of them, the rest are
counted) or reported as a LogError naming it (strict reading, used by the plots).
"""

from __future__ import annotations

import json
import math
import reprlib
from dataclasses import dataclass
from pathlib import Path

from checkpoints import CONFIG_SCHEMA
from safeio import open_regular_file, write_atomically

LOG_NAME = "log.jsonl"
MAX_LOG_BYTES = 256 * 2**20          # a log above 256 MB is not one of ours (a long run writes a few MB)
MAX_LINE_BYTES = 2**20               # 1 MB: a sample of 80,000 characters, even if each is written \uXXXX
MAX_POINTS = 10_000                  # train and val entries load_log keeps (a loss curve is 900 pixels wide)
MAX_SAMPLES = 50                     # sample entries load_log keeps (the figure shows 8)
MAX_WARNINGS = 5                     # bad lines a lenient read names one by one
MAX_COUNT = 2**53                    # the largest step or character count (exact as a float)
MAX_INT_DIGITS = 20                  # longer whole numbers are refused before Python converts them
MAX_KEYS = 16                        # names in a grad_norm / clip_frac object (the model has 5 parameters)
MAX_SETTINGS = 200                   # settings in a config
MAX_NAME = 64                        # characters in a parameter's or a setting's name


class LogError(ValueError):
    """A training log that cannot be used (missing, too large, not JSON lines, no training entries)."""


# -----------------------------------------------------------------------------
# The schema: every kind of entry and its fields
# -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    name: str
    type: str            # a key of TYPES: "int", "number", "str", "bool", "numbers", "settings"
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
        Field("grad_norm", "numbers", False, "L2 norm of each gradient before clipping"),
        Field("clip_frac", "numbers", False, "share of each gradient's entries that were clipped"),
    ],
    "val": _stamp() + [
        Field("val_loss", "number", True, "validation loss, nats per character"),
        Field("val_bits", "number", False, "the same in bits per character"),
    ],
    "sample": _stamp() + [
        Field("text", "str", True, "the sampled characters (without the prime)"),
        Field("prime", "str", False, "the text the sample started from"),
        Field("temperature", "number", False, "sampling temperature"),
    ],
    "resume": [
        Field("step", "int", True, "the step the run continues from"),
        Field("checkpoint", "str", False, "the checkpoint it continues from"),
        Field("config", "settings", False, "the settings of the continued run"),
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


# -----------------------------------------------------------------------------
# Checking a value against its field's type
# -----------------------------------------------------------------------------

_REPR = reprlib.Repr()                           # how a refused value is quoted: short, whatever it holds
_REPR.maxstring = _REPR.maxother = 40
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist = 2, 4, 4
_short = _REPR.repr


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_COUNT


def _is_number(v) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= MAX_COUNT


def _is_text(v) -> bool:
    """A string that is UTF-8 text: no NUL, no lone surrogate (JSON's "\\ud800" decodes to one)."""
    if not isinstance(v, str) or "\x00" in v:
        return False
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def _is_name(k) -> bool:
    return isinstance(k, str) and 0 < len(k) <= MAX_NAME and _is_text(k)


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, bool) or _is_number(v) or _is_text(v)


def _settings_problem(d) -> str | None:
    """None if `d` is a run's settings: named scalars, each as checkpoints.CONFIG_SCHEMA checks it."""
    if not isinstance(d, dict) or len(d) > MAX_SETTINGS:
        return f"must be settings (an object of at most {MAX_SETTINGS} settings), got {_short(d)}"
    for key, value in d.items():
        if not _is_name(key) or not _is_scalar(value):
            return (f"setting {_short(key)} must be null, true, false, a finite number or a string, "
                    f"got {_short(value)}")
        test, what = CONFIG_SCHEMA.get(key, (None, None))
        if test is not None and not test(value):
            return f"setting {key!r} must be {what}, got {_short(value)}"
    return None


# type: (test of a value that is not null, what it must be)
TYPES = {
    "int": (_is_count, "int (a count from 0 to 2**53)"),
    "number": (_is_number, "number (finite, or null)"),
    "str": (_is_text, "str (UTF-8 text without NUL)"),
    "bool": (lambda v: isinstance(v, bool), "bool"),
    "numbers": (lambda v: isinstance(v, dict) and len(v) <= MAX_KEYS
                and all(_is_name(k) and (x is None or _is_number(x)) for k, x in v.items()),
                f"numbers (an object of at most {MAX_KEYS} names, each a finite number or null)"),
    "settings": (lambda v: _settings_problem(v) is None, "settings (named scalars)"),
}


def check_entry(entry) -> str | None:
    """None if `entry` is a valid log entry, else what is wrong with it (one line)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        return 'expected a JSON object with a "kind" field'
    kind = entry["kind"]
    fields = SCHEMA.get(kind)
    if fields is None:
        return f"unknown kind {_short(kind)} (known: {', '.join(SCHEMA)})"
    for f in fields:
        if f.name not in entry:
            if f.required:
                return f"a {kind!r} entry needs a {f.name!r} field"
            continue
        value = entry[f.name]
        if value is None and (f.type == "number" or not f.required):
            continue                                 # null: a number that was not finite, or not known yet
        test, what = TYPES[f.type]
        if not test(value):
            if f.type == "settings":
                return f"a {kind!r} entry's {f.name!r}: {_settings_problem(value)}"
            return f"a {kind!r} entry's {f.name!r} must be {what}, got {_short(value)}"
    if kind in OPEN_KINDS:                           # the other keys are the run's settings
        problem = _settings_problem({k: v for k, v in entry.items() if k != "kind" and k not in
                                     {f.name for f in fields}})
        if problem:
            return f"a {kind!r} entry's {problem}"
    return None


def _finite(value):
    """JSON has no NaN: numbers that are not finite are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def json_line(kind: str, **fields) -> str:
    """The log line (JSON, with its newline) of one entry, checked against SCHEMA and MAX_LINE_BYTES."""
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
    line = json.dumps(entry) + "\n"
    if len(line) > MAX_LINE_BYTES:                   # json.dumps writes ASCII: characters are bytes
        raise LogError(f"runlog: a {kind!r} entry of {len(line):,} bytes is longer than a log line may be "
                       f"({MAX_LINE_BYTES:,} bytes; a shorter sample length keeps it)")
    return line


# -----------------------------------------------------------------------------
# Writing
# -----------------------------------------------------------------------------

class RunLogWriter:
    """Appends entries to a log, one line each, flushed at once (a crash loses at most one line)."""

    def __init__(self, path, fresh: bool):
        self.path = Path(path)
        self._file = open(self.path, "w" if fresh else "a", encoding="utf-8")

    def write(self, kind: str, **fields) -> None:
        self._file.write(json_line(kind, **fields))
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

def _open_log(path: Path):
    """The log open for reading (a regular file no larger than MAX_LOG_BYTES), or LogError."""
    try:
        f, size = open_regular_file(path, "training log")   # never a FIFO or a device: it could block
    except FileNotFoundError:
        raise LogError(f"training log not found: {path}") from None
    except ValueError:
        raise LogError(f"training log path is not a file: {path}") from None
    except OSError as e:
        raise LogError(f"{path}: cannot read the training log ({e.strerror})") from None
    if size > MAX_LOG_BYTES:
        f.close()
        raise LogError(f"{path}: {size / 2**20:.0f} MB is more than a training log holds "
                       f"(limit {MAX_LOG_BYTES // 2**20} MB); is this the right file?")
    return f


def _lines(f, path: Path):
    """(line number, line without its newline), or None for a line over MAX_LINE_BYTES (skipped unread)."""
    total, n = 0, 0
    while True:
        raw = f.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        n, total = n + 1, total + len(raw)
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        elif len(raw) > MAX_LINE_BYTES:              # read past the rest of it, a chunk at a time
            rest, raw = raw, None
            while rest and not rest.endswith(b"\n") and total <= MAX_LOG_BYTES:
                rest = f.readline(2**16)
                total += len(rest)
        if total > MAX_LOG_BYTES:                    # it grew while we read
            raise LogError(f"{path}: more than {MAX_LOG_BYTES // 2**20} MB; is this the right file?")
        yield n, raw


def _parse_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"a whole number of {len(digits):,} digits")
    return int(digits)


# NaN and Infinity are not JSON; the writer writes null for them, and so they are read.
_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_constant=lambda name: None)


def _parse(raw: bytes | None):
    """(entry, None) for a valid line, or (None, what is wrong with it)."""
    if raw is None:
        return None, f"longer than {MAX_LINE_BYTES:,} bytes, more than any line train_minimal.py writes"
    try:
        entry = _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except RecursionError:
        return None, "JSON nested too deeply for a log entry"
    except ValueError as e:                          # JSONDecodeError, or a number refused above
        return None, (f"not valid JSON ({getattr(e, 'msg', e)}); is this a training log (a truncated "
                      "last line after a crash?)")
    problem = check_entry(entry)
    if problem:
        return None, problem
    if entry["kind"] not in OPEN_KINDS:              # keep what the schema names, nothing else
        known = {f.name for f in SCHEMA[entry["kind"]]}
        entry = {k: v for k, v in entry.items() if k == "kind" or k in known}
    return entry, None


def read_entries(path, warn=None):
    """Yield (line number, entry, raw line) for every valid line of the log at `path`, in order.

    Reads one line at a time (bounded, see the module docstring). warn=None
    (strict): the first bad line raises LogError naming it. warn=a function: it
    is called with a one-line warning for each of the first MAX_WARNINGS bad
    lines and once more with the count of the rest, which are skipped (a line
    cut short by a crash is the usual one). Fields SCHEMA does not list are
    dropped from the entry (the raw line keeps them).
    """
    path = Path(path)
    skipped = 0
    with _open_log(path) as f:
        for n, raw in _lines(f, path):
            if raw is not None and not raw.strip():
                continue
            entry, problem = _parse(raw)
            if problem is None:
                yield n, entry, raw
                continue
            if warn is None:
                raise LogError(f"{path}, line {n}: {problem}")
            skipped += 1
            if skipped <= MAX_WARNINGS:
                warn(f"warning: {path}, line {n} skipped: {problem.split(';')[0]}")
    if skipped > MAX_WARNINGS:
        warn(f"warning: {path}: {skipped - MAX_WARNINGS:,} more bad lines skipped")


class _Spread:
    """At most `cap` entries in step order, spread evenly over the run, ending with the latest.

    Entries are offered in log order; one whose step is not past the last kept
    one replaces the kept ones from that step on (a resumed run repeats them).
    When `cap` entries are kept, every other one is dropped and from then on only
    every second entry offered is kept (then every fourth, ...).
    """

    def __init__(self, cap: int):
        if cap < 2:
            raise ValueError(f"runlog.load_log: keep at least 2 entries of a kind, got {cap}")
        self.cap, self.kept, self.every, self.offered, self.latest = cap, [], 1, 0, None

    def add(self, entry: dict) -> None:
        while self.kept and self.kept[-1]["step"] >= entry["step"]:
            self.kept.pop()                          # resumed from an earlier checkpoint: replay wins
        self.latest = entry
        if self.offered % self.every == 0:
            self.kept.append(entry)
            if len(self.kept) >= self.cap:
                self.kept, self.every = self.kept[::2], self.every * 2
        self.offered += 1

    def entries(self) -> list:
        if self.latest is None or (self.kept and self.kept[-1] is self.latest):
            return self.kept
        return self.kept + [self.latest]


def load_log(path, max_points: int | None = None, max_samples: int | None = None) -> dict:
    """Read a training log (strictly) and group its entries by "kind".

    Returns {"config": dict, "train": [...], "val": [...], "sample": [...],
    "end": dict or None}, each list in step order, with at most max_points train
    and val entries and max_samples samples (default: MAX_POINTS, MAX_SAMPLES),
    spread evenly over the run and
    always with the latest (a longer log is thinned, see _Spread). Raises
    LogError with a one-line reason for a missing or oversized file, a line that
    is not an entry of SCHEMA, or a log without any "train" entry. If a run was
    resumed from an earlier checkpoint, its steps repeat: the later entries
    replace the earlier ones from that step on.
    """
    config, end = {}, None
    points = MAX_POINTS if max_points is None else max_points
    spread = {"train": _Spread(points), "val": _Spread(points),
              "sample": _Spread(MAX_SAMPLES if max_samples is None else max_samples)}
    for _, entry, _ in read_entries(path):
        kind = entry["kind"]
        if kind == "config":
            config = config or entry                 # a resumed run repeats the same settings
        elif kind == "end":
            end = entry
        elif kind in spread:
            spread[kind].add(entry)
    log = {"config": config, **{kind: s.entries() for kind, s in spread.items()}, "end": end}
    if not log["train"]:
        raise LogError(f"{path}: no \"train\" entries; is this the log.jsonl that train_minimal.py writes?")
    return log


# -----------------------------------------------------------------------------
# Cutting a log back to a resume point
# -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LogCut:
    """What plan_resume decided; rewrite() carries it out, streaming the log again.

    The cut log is `head` (a config line, or b"" if the log has its own), then
    every valid entry of `source` up to `step`, without "end" entries.
    """
    source: Path | None              # the log to cut; None if there was none
    step: int
    head: bytes

    def write_to(self, f) -> None:
        f.write(self.head)
        if self.source is None:
            return
        for _, entry, raw in read_entries(self.source, warn=lambda message: None):
            if self._keeps(entry):
                f.write(raw + b"\n")

    def _keeps(self, entry: dict) -> bool:
        return entry["kind"] != "end" and (entry.get("step") is None or entry["step"] <= self.step)


def plan_resume(path, step: int, config_line: str, warn) -> LogCut:
    """How the log at `path` is cut to continue from `step`; reads it once, writes nothing, keeps nothing.

    The cut keeps every entry up to `step` (no "end"), skips bad lines (warn is
    told, as read_entries does), and puts `config_line` first if the log has no
    config entry (or is missing). Raises LogError if the log cannot be read at all.
    """
    path = Path(path)
    if not path.exists():
        return LogCut(None, step, config_line.encode("utf-8"))
    has_config = False
    for _, entry, _ in read_entries(path, warn=warn):
        has_config = has_config or entry["kind"] == "config"
    return LogCut(path, step, b"" if has_config else config_line.encode("utf-8"))


def rewrite(path, content) -> None:
    """Replace the log with `content` (plan_resume's LogCut, or bytes) atomically: a temporary
    file beside it, then a rename.

    The temporary file (.log.jsonl.*.tmp) is removed on every exit path Python
    sees (an error, a full disk, Ctrl-C); after SIGKILL the next run sweeps it.
    """
    write = content.write_to if isinstance(content, LogCut) else (lambda f: f.write(content))
    write_atomically(path, write)
