"""The training settings, each declared once: SETTINGS below.

A setting is one key of the config dict a training run follows and saves in its
checkpoints. Its row says everything about it: its value in each preset, what a
valid value is, its flag and help text, its place in ``--help``, whether a
resumed run must keep it, and whether a first day needs it. Everything else is
made from this list:

    train_minimal.py   PRESETS, the flags (--help shows the Day-1 ones, --help-all
                       every one), check_config, FROZEN_ON_RESUME
    checkpoints.py     CONFIG_SCHEMA, the check of the settings a checkpoint stores

To add a setting, add one row. This module imports only the standard library.
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

# -----------------------------------------------------------------------------
# Presets, groups and the constants the help texts quote
# -----------------------------------------------------------------------------

# textbook: min-char-rnn.py exactly (one stream, 100 hidden units, 25-step unroll,
#   Adagrad at 0.1, elementwise clipping to [-5, 5], float64, N(0,1)*0.01 init).
# default:  the README's quick start, 12,000 steps of 256 units on 32 streams of 64 steps,
#   Adam with a warmup and a cosine decay, random epoch offsets, a moving average of the weights.
# fast:     the default with 384 units on 16 streams for 20,000 steps.
# long:     the fast preset with dropout 0.05 for 50,000 steps.
# A step count, never a time budget, ends the last three, so every machine trains the same model.
PRESET_NAMES = ("textbook", "default", "fast", "long")
# Every row gives a value for these two; a row that gives none for another preset
# takes its parent's value (fast follows default, long follows fast).
BASE_PRESETS = ("textbook", "default")
PRESET_PARENT = {"fast": "default", "long": "fast"}

# The groups of --help-all, in order.
DATA, MODEL, LENGTH, MONITORING = "data and output", "model and optimiser", "how long", "monitoring"
GROUPS = (DATA, MODEL, LENGTH, MONITORING)

# The order of the n-gram that --distill trains toward and --ngram-prior trains beside
# (ngram.ngram_teacher): the best order of --ngram on tiny Shakespeare.
DISTILL_ORDER = 7
# --ngram-prior's teacher is cross-fitted on ten parts of the training split: each part's
# counts come from the other 90% of the text. Fewer parts made worse partners (two and five,
# measured), twenty a little better than ten for more fitting time (31 s against 18-25 s on
# tiny Shakespeare): see docs/ngram.md.
PRIOR_FOLDS = 10

DEFAULT_DATA = "data/tiny_shakespeare.txt"
DEFAULT_OUT = "out"


# -----------------------------------------------------------------------------
# Rules: what a valid value is
# -----------------------------------------------------------------------------

class Rule(NamedTuple):
    """A test of a value and what the value must be ("an integer from 1 to 10,000"), for error messages.

    parse: what argparse turns the flag's text into (int, float, str, or bool for an
    --x/--no-x switch); choices: the allowed values, if a fixed few.
    """
    test: Callable[[Any], bool]
    what: str
    parse: type
    choices: tuple = ()


def is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)    # JSON's true is not a count


def is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


# Every count has an upper bound, so that no setting (typed, or read from a checkpoint someone
# sent) can make a run allocate or loop without end. Steps, epochs and character counts stay
# below COUNT_LIMIT, as a checkpoint's counters do (checkpoints.META_MAX_COUNT); sizes (hidden
# units, streams, unrolled steps, and the vocabulary) are at most MAX_DIM, what a checkpoint may
# declare (checkpoints.CHECKPOINT_MAX_DIM); a sample is at most MAX_SAMPLE characters, so that its
# log line stays far below the 1 MB a log line may hold (runlog.MAX_LINE_BYTES: 10,000 characters
# take at most 120 kB, each written \uXXXX\uXXXX); a seed is below SEED_LIMIT, the largest
# whole number a log line keeps exactly (runlog.MAX_COUNT); a time budget is below
# SECONDS_LIMIT (about 32 years; checkpoints.META_MAX_SECONDS).
COUNT_LIMIT = 10**12
MAX_DIM = 100_000
MAX_SAMPLE = 10_000
SEED_LIMIT = 2**53
SECONDS_LIMIT = 1e9


def integers(lo: int, hi: int, what: Optional[str] = None) -> Rule:
    """Whole numbers from lo to hi, both included."""
    return Rule(lambda v: is_int(v) and lo <= v <= hi, what or f"an integer from {lo:,} to {hi:,}", int)


POSITIVE_INT = integers(1, COUNT_LIMIT - 1, "an integer from 1 to 10**12 - 1")
COUNT = integers(0, COUNT_LIMIT - 1, "an integer from 0 to 10**12 - 1")
SIZE = integers(1, MAX_DIM)
SEED = integers(0, SEED_LIMIT - 1, "an integer from 0 to 2**53 - 1")
NUMBER = Rule(is_number, "a finite number", float)
POSITIVE = Rule(lambda v: is_number(v) and v > 0, "a finite number > 0", float)
NON_NEGATIVE = Rule(lambda v: is_number(v) and v >= 0, "a finite number >= 0", float)
SECONDS = Rule(lambda v: is_number(v) and 0 < v < SECONDS_LIMIT, "a number of seconds > 0 and below 1e9", float)
FRACTION = Rule(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)", float)
UNIT = Rule(lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]", float)
TEXT = Rule(lambda v: isinstance(v, str), "a string", str)
SWITCH = Rule(lambda v: isinstance(v, bool), "true or false", bool)


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: isinstance(v, str) and v in choices, " or ".join(repr(c) for c in choices), str,
                choices)


# -----------------------------------------------------------------------------
# A setting
# -----------------------------------------------------------------------------

# Setting.if_absent's "no value": a checkpoint whose settings lack this one cannot be resumed.
REQUIRED = object()

@dataclass(frozen=True)
class Setting:
    """One training setting: its key in the config dict, and everything about it."""
    name: str                   # the config key; the flag is --name-with-dashes
    group: str                  # its group in --help-all (GROUPS)
    rule: Rule                  # what a valid value is
    values: dict                # preset -> value; BASE_PRESETS required, the others inherit (PRESET_PARENT)
    help: str                   # the flag's help; "(default: ...)" is added from values
    note: str = ""              # said after "must be ..." when a value is refused
    optional: bool = False      # None is allowed too (no limit)
    frozen: bool = False        # a resumed run must keep it (shapes, the data walk, the optimiser state)
    day1: bool = False          # shown by --help, not only by --help-all
    metavar: Optional[str] = None
    aliases: tuple = ()         # more flags for it (--lr for --learning-rate)
    if_absent: Any = REQUIRED   # what a checkpoint saved before the setting existed stands for

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def as_flags(self, value) -> str:
        """The command line that sets `value`: "--hidden-size 16", "--no-random-offsets"."""
        if self.rule.parse is bool:
            return self.flag if value else "--no-" + self.flag[2:]
        return f"{self.flag} {value}"

    def value(self, preset: str):
        """The setting's value in `preset`."""
        while preset not in self.values:
            preset = PRESET_PARENT[preset]
        return self.values[preset]

    def schema_rule(self) -> tuple:
        """(test, what) for a stored value, as checkpoints.py checks it: None counts when optional."""
        if not self.optional:
            return self.rule.test, self.rule.what
        return (lambda v: v is None or self.rule.test(v)), self.rule.what + " or null"

    def problem(self, value) -> Optional[str]:
        """Why `value` cannot be this setting's (one line naming the flag), or None if it can."""
        if (value is None and self.optional) or self.rule.test(value):
            return None
        return f"{self.flag} {self.must()}, got {value!r:.60}"

    def must(self) -> str:
        """"must be an integer from 1 to 10,000", with the note if the row has one."""
        return f"must be {self.rule.what}{f' ({self.note})' if self.note else ''}"

    def parse(self, raw: str):
        """argparse's type for the flag: the value, or one line saying what it must be."""
        try:
            value = self.rule.parse(raw)
        except ValueError:                           # not a number, or a whole number of over 4,300 digits
            value = None
        if value is None or not self.rule.test(value):
            raise argparse.ArgumentTypeError(f"{self.must()}, got {raw[:40]!r}")
        return value

    def default_text(self) -> str:
        """"(default: 256; textbook: 100)", or "(default: out)" when every preset agrees."""
        show = lambda v: "none" if v is None else v                  # noqa: E731
        d, tb = self.value("default"), self.value("textbook")
        if all(self.value(p) == d for p in PRESET_NAMES):
            return f"(default: {show(d)})"
        return f"(default: {show(d)}; textbook: {show(tb)})"

    def add_argument(self, group, shown: bool = True) -> None:
        """Add the setting's flag to an argparse group (shown: in this help, or argparse.SUPPRESS)."""
        text = f"{self.help} {self.default_text()}" if shown else argparse.SUPPRESS
        kw = dict(dest=self.name, help=text)
        if self.rule.parse is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif self.rule.choices:
            kw["choices"] = self.rule.choices
        else:
            kw.update(type=self.parse, metavar=self.metavar or "N")
        group.add_argument(self.flag, *self.aliases, **kw)


def per_preset(textbook, default, **others) -> dict:
    """A row's values: the two base presets', then any other preset's that differs from its parent's."""
    return {"textbook": textbook, "default": default, **others}


# -----------------------------------------------------------------------------
# The settings
# -----------------------------------------------------------------------------
# per_preset(textbook, default, fast=..., long=...): an omitted fast or long follows its parent.

SETTINGS = (
    # --- data and output ---
    Setting("data", DATA, TEXT, per_preset(DEFAULT_DATA, DEFAULT_DATA), metavar="PATH", day1=True,
            help=f"UTF-8 text file to train on; {DEFAULT_DATA} and data/federalist.txt are downloaded "
                 "if missing"),
    Setting("out", DATA, TEXT, per_preset(DEFAULT_OUT, DEFAULT_OUT), metavar="DIR", day1=True,
            help="folder for last.npz, best.npz, log.jsonl and metrics.json (with --resume: the "
                 "checkpoint's folder)"),
    Setting("val_fraction", DATA, FRACTION, per_preset(0.1, 0.1), metavar="X", frozen=True,
            help="the last fraction of the text held out for validation, 0 = none"),

    # --- model and optimiser ---
    Setting("hidden_size", MODEL, SIZE, per_preset(100, 256, fast=384), frozen=True,
            help="hidden units H"),
    Setting("seq_length", MODEL, SIZE, per_preset(25, 64), frozen=True,
            help="steps T to unroll (backprop through time)"),
    Setting("batch_size", MODEL, SIZE, per_preset(1, 32, fast=16), frozen=True,
            help="parallel streams B"),
    Setting("optimizer", MODEL, one_of("adagrad", "adam"), per_preset("adagrad", "adam"), frozen=True,
            help="optimiser"),
    Setting("learning_rate", MODEL, POSITIVE, per_preset(0.1, 2e-3, fast=1.5e-3), metavar="LR", aliases=("--lr",),
            help="learning rate"),
    Setting("lr_schedule", MODEL, one_of("constant", "cosine"), per_preset("constant", "cosine"),
            help="constant, or cosine: decay from --learning-rate to --min-lr over the run, by progress = "
                 "the largest of step/max-steps, epochs done/epochs and elapsed/time-budget that are set "
                 "(a time-based schedule is not bit-reproducible)"),
    Setting("warmup_steps", MODEL, COUNT, per_preset(0, 1000, fast=3000), note="0 = off", if_absent=0,
            help="raise the learning rate linearly from almost 0 over the first N steps, then follow "
                 "--lr-schedule; 0 = off"),
    Setting("min_lr", MODEL, NUMBER, per_preset(0.0, 2e-5), metavar="LR",
            help="final learning rate of the cosine schedule"),
    Setting("clip", MODEL, NON_NEGATIVE, per_preset(5.0, 5.0), metavar="X", note="0 = no clipping",
            help="clip every gradient entry to [-clip, clip], 0 = off"),
    Setting("dtype", MODEL, one_of("float32", "float64"), per_preset("float64", "float32"), frozen=True,
            help="floating-point type"),
    Setting("init_scale", MODEL, POSITIVE, per_preset(0.01, 0.01), metavar="X", frozen=True,
            help="weights start as N(0,1) * init-scale"),
    Setting("seed", MODEL, SEED, per_preset(1337, 1337), frozen=True,
            help="random seed for the weights, samples and epoch offsets"),
    Setting("random_offsets", MODEL, SWITCH, per_preset(False, True), frozen=True, if_absent=False,
            help="start every epoch after the first at a random character of the text, so the unrolled "
                 "windows cut it in new places each time"),
    Setting("ema", MODEL, FRACTION, per_preset(0.0, 0.998), metavar="D", frozen=True, if_absent=0.0,
            note="0 = off; 0.998 averages about the last 500 steps",
            help="also keep a moving average of the weights, avg = D*avg + (1-D)*weights after each step, "
                 "and evaluate, sample and save it (0.998: about the last 500 steps); 0 = off"),
    Setting("dropout", MODEL, FRACTION, per_preset(0.0, 0.0, long=0.05), metavar="P", frozen=True, if_absent=0.0,
            note="0 = off; 0.2 drops a fifth of the inputs and outputs",
            help="train with dropout P on the connections that carry no memory, the input term Wxh x_t and "
                 "the output layer's view of h_t (never the recurrence); evaluation, samples and "
                 "checkpoints use the plain model; 0 = off"),
    Setting("distill", MODEL, FRACTION, per_preset(0.0, 0.0), metavar="A", if_absent=0.0,
            note=f"0 = off; 0.3 trains toward 0.7 x the next character + 0.3 x the cross-fitted "
                 f"{DISTILL_ORDER}-gram's distribution",
            help=f"distil a count model into the RNN: train toward (1-A) x the next character + A x a "
                 f"{DISTILL_ORDER}-gram's distribution for it, the n-gram fitted on the other half of the "
                 "training split (260 MB and about 8 s more for tiny Shakespeare); 0 = off"),
    Setting("ngram_prior", MODEL, UNIT, per_preset(0.0, 0.0), metavar="B", frozen=True, if_absent=0.0,
            note=f"0 = off; 0.4 trains the RNN's logits plus 0.4 x the {DISTILL_ORDER}-gram's log-probabilities",
            help=f"train the RNN as a count model's partner: every prediction in training is softmax(RNN "
                 f"logits + B x log p) with p a {DISTILL_ORDER}-gram's distribution, the n-gram fitted on the "
                 f"other {PRIOR_FOLDS - 1} of {PRIOR_FOLDS} parts of the training split, so the RNN learns "
                 "what the counts miss; the validation loss is then the same product's, with a "
                 f"{DISTILL_ORDER}-gram of the whole split (about 0.5 GB and 20-45 s more for tiny "
                 "Shakespeare); 0 = off"),
    Setting("weight_decay", MODEL, NON_NEGATIVE, per_preset(0.0, 0.0), metavar="W", if_absent=0.0,
            note="0 = off; 0.1 shrinks the matrices by learning_rate x 0.1 of themselves each step",
            help="before each step, shrink the matrices Wxh, Whh and Why (not the biases) by learning_rate "
                 "x W of themselves (decoupled weight decay, as in AdamW); 0 = off"),

    # --- how long ---
    Setting("epochs", LENGTH, POSITIVE_INT, per_preset(10, None), optional=True, day1=True,
            help="stop after this many full passes over the training split"),
    Setting("max_steps", LENGTH, POSITIVE_INT, per_preset(None, 12_000, fast=20_000, long=50_000), optional=True,
            day1=True, help="stop when the run has done this many steps in total, counting those before a "
                            "--resume"),
    Setting("time_budget", LENGTH, SECONDS, per_preset(None, None), optional=True, metavar="SECONDS",
            help="stop after this much training time in total, counting the time before a --resume"),
    Setting("patience", LENGTH, COUNT, per_preset(0, 0), note="0 = never",
            help="stop when the validation loss has not improved for this many evaluations, 0 = never"),

    # --- monitoring ---
    Setting("sample_every", MONITORING, COUNT, per_preset(5000, 500, fast=4000, long=5000), note="0 = never",
            help="print a sample every N steps, 0 = never"),
    Setting("eval_every", MONITORING, COUNT, per_preset(10_000, 500, fast=4000, long=5000),
            note="0 = only at the end",
            help="compute the validation loss and save last.npz/best.npz every N steps, 0 = only at the end"),
    Setting("log_every", MONITORING, COUNT, per_preset(100, 10), note="0 = never",
            help="write a train line to log.jsonl every N steps, 0 = never"),
    Setting("sample_length", MONITORING, integers(1, MAX_SAMPLE), per_preset(200, 200), aliases=("--length",),
            day1=True, help=f"characters per sample, at most {MAX_SAMPLE:,}"),
    Setting("temperature", MONITORING, POSITIVE, per_preset(1.0, 0.8), metavar="T", day1=True,
            note="small values such as 0.01 approach greedy argmax sampling",
            help="sampling temperature: < 1 more likely characters, > 1 more surprises"),
)

BY_NAME = {s.name: s for s in SETTINGS}
NAMES = tuple(BY_NAME)

# What train_minimal.py stores beside the settings (the log's config entry, a checkpoint's
# meta.config): the sizes of the run's text, checked as the settings are.
DATA_SIZES = {
    "vocab_size": integers(1, MAX_DIM, f"an integer from 1 to {MAX_DIM:,} (distinct characters)"),
    **{name: COUNT for name in ("train_chars", "val_chars", "chars_per_epoch", "windows_per_epoch")},
}


# -----------------------------------------------------------------------------
# What is made from the list
# -----------------------------------------------------------------------------

def check_declarations(settings=SETTINGS) -> None:
    """Raise ValueError if the list contradicts itself: run on import, so a bad row fails at once.

    Each name once; each group known; values only for known presets, for every base preset, and
    each valid by the setting's own rule.
    """
    seen = set()
    for s in settings:
        where = f"settings.py: the setting {s.name!r}"
        if s.name in seen:
            raise ValueError(f"{where} is declared twice; declare each setting once")
        seen.add(s.name)
        if s.group not in GROUPS:
            raise ValueError(f"{where} has group {s.group!r}, not one of {GROUPS}")
        unknown = sorted(set(s.values) - set(PRESET_NAMES))
        if unknown:
            raise ValueError(f"{where} gives a value for {unknown}, which is no preset (presets: {PRESET_NAMES})")
        missing = [p for p in BASE_PRESETS if p not in s.values]
        if missing:
            raise ValueError(f"{where} has no value for the preset(s) {missing}; every setting states its "
                             f"{' and '.join(BASE_PRESETS)} value")
        for p in PRESET_NAMES:
            problem = s.problem(s.value(p))
            if problem:
                raise ValueError(f"{where}: its value in the {p} preset is refused: {problem}")


def presets(settings=SETTINGS) -> dict:
    """{preset: {setting: value}} for every preset, made from the rows."""
    return {p: {s.name: s.value(p) for s in settings} for p in PRESET_NAMES}


def frozen_on_resume(settings=SETTINGS) -> tuple:
    """The settings a resumed run must keep."""
    return tuple(s.name for s in settings if s.frozen)


def config_schema(settings=SETTINGS) -> dict:
    """{key: (test, what)}: how checkpoints.py checks the settings a checkpoint stores, and the
    sizes stored with them (DATA_SIZES)."""
    return {**{s.name: s.schema_rule() for s in settings},
            **{name: (rule.test, rule.what) for name, rule in DATA_SIZES.items()}}


def if_absent(settings=SETTINGS) -> dict:
    """{setting: value} for the settings that checkpoints saved before them lack, and what that means."""
    return {s.name: s.if_absent for s in settings if s.if_absent is not REQUIRED}


check_declarations()
PRESETS = presets()
