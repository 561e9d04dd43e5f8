"""Tests for runlog.py: the schema of log.jsonl, its writer, its bounded reader and the resume cut."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import runlog
import train_minimal as tm
import visualization as viz
from helpers import REPO_ROOT

TRAIN = {"step": 1, "epoch": 0.01, "chars": 64, "time": 0.5, "loss": 3.5, "smooth_loss": 4.1, "lr": 2e-3,
         "grad_norm": {"Whh": 0.5}, "clip_frac": {"Whh": 0.0}}


def write_log(path: Path, entries) -> Path:
    with runlog.RunLogWriter(path, fresh=True) as log:
        for e in entries:
            log.write(**e)
    return path


def a_run(steps=(1, 2, 3, 4, 5)):
    """A small log as train_minimal.py writes it: config, train and val lines, an end."""
    lines = [{"kind": "config", "vocab_size": 30, "hidden_size": 16, "data": "x.txt"}]
    for s in steps:
        lines.append({"kind": "train", **TRAIN, "step": s, "chars": 64 * s, "loss": 4.0 - 0.1 * s})
        if s % 2 == 0:
            lines.append({"kind": "val", "step": s, "chars": 64 * s, "val_loss": 3.9 - 0.1 * s, "val_bits": 5.0})
    lines.append({"kind": "end", "step": steps[-1], "reason": "max_steps", "best_step": None})
    return lines


# -----------------------------------------------------------------------------
# Writer and schema
# -----------------------------------------------------------------------------

def test_what_the_writer_writes_the_reader_reads(tmp_path):
    entries = a_run()
    path = write_log(tmp_path / "log.jsonl", entries)
    got = [e for _, e, _ in runlog.read_entries(path)]
    assert got == entries, "read_entries should give back exactly the entries RunLogWriter wrote"
    log = runlog.load_log(path)
    assert [e["step"] for e in log["train"]] == [1, 2, 3, 4, 5] and log["end"]["reason"] == "max_steps"
    assert viz.load_log(path) == log and viz.LogError is runlog.LogError, \
        "visualization.load_log should be runlog's reader"


def test_the_writer_refuses_a_field_the_schema_does_not_list(tmp_path):
    with runlog.RunLogWriter(tmp_path / "log.jsonl", fresh=True) as log:
        with pytest.raises(runlog.LogError, match="add it to runlog.SCHEMA"):
            log.write("train", **TRAIN, perplexity=30.0)
        with pytest.raises(runlog.LogError, match="'loss' must be number"):
            log.write("train", **{**TRAIN, "loss": "low"})
        with pytest.raises(runlog.LogError, match="needs a 'chars' field"):
            log.write("val", step=1, val_loss=3.0)
    assert (tmp_path / "log.jsonl").read_text() == "", "a refused entry must not reach the file"


def test_a_new_metric_is_one_row_of_the_schema(tmp_path, monkeypatch):
    """Adding a field to SCHEMA is all it takes: the writer accepts it, the reader checks it, --help lists it."""
    row = runlog.Field("perplexity", "number", False, "exp(loss)")
    monkeypatch.setitem(runlog.SCHEMA, "train", runlog.SCHEMA["train"] + [row])
    path = write_log(tmp_path / "log.jsonl", [{"kind": "train", **TRAIN, "perplexity": 33.1}])
    assert runlog.load_log(path)["train"][0]["perplexity"] == 33.1
    assert "perplexity" in runlog.format_help()
    assert "perplexity" in tm.build_parser().format_help().replace("\n", " "), \
        "train_minimal's LOG FORMAT help should be made from runlog.SCHEMA"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"kind": "train", **TRAIN, "perplexity": "high"}) + "\n")
    with pytest.raises(runlog.LogError, match="line 1: .*'perplexity' must be number"):
        runlog.load_log(bad)


def test_nan_and_inf_are_written_as_null(tmp_path):
    path = write_log(tmp_path / "log.jsonl", [{"kind": "train", **TRAIN, "loss": float("nan"),
                                               "grad_norm": {"Whh": float("inf")}}])
    line = path.read_text()
    assert "NaN" not in line and "Infinity" not in line, f"JSON has no NaN/inf: {line}"
    assert json.loads(line)["loss"] is None and json.loads(line)["grad_norm"]["Whh"] is None


# -----------------------------------------------------------------------------
# Hostile logs
# -----------------------------------------------------------------------------

BAD_LINES = {
    "a number": "5",
    "a list": "[1, 2]",
    "a wrong type": '{"kind": "train", "step": "x", "chars": 1, "loss": 1.0}',
    "null": "null",
    "no kind": '{"step": 1}',
    "an unknown kind": '{"kind": "party"}',
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_corrupted_line_is_named_or_skipped(tmp_path, case):
    good = [json.dumps({"kind": "train", **TRAIN, "step": s}) for s in (1, 2)]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([good[0], BAD_LINES[case], good[1]]) + "\n")
    with pytest.raises(runlog.LogError) as e:
        runlog.load_log(path)                          # strict: the plots refuse it
    assert "line 2" in str(e.value) and "\n" not in str(e.value), f"{case}: {e.value}"
    warnings = []
    kept = list(runlog.read_entries(path, warn=warnings.append))   # lenient: a resume skips it
    assert [n for n, _, _ in kept] == [1, 3], f"{case}: the good lines should be kept"
    assert len(warnings) == 1 and "line 2" in warnings[0] and "\n" not in warnings[0], warnings


def test_a_truncated_last_line_and_bad_bytes_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(json.dumps({"kind": "train", **TRAIN}).encode() + b"\n\xff\xfe\n{\"kind\": \"tra")
    warnings = []
    kept = list(runlog.read_entries(path, warn=warnings.append))
    assert [n for n, _, _ in kept] == [1]
    assert [w.split(",")[1].split(" skipped")[0].strip() for w in warnings] == ["line 2", "line 3"], warnings


def test_a_log_above_the_size_limit_is_refused_in_one_line(tmp_path, monkeypatch):
    path = write_log(tmp_path / "log.jsonl", a_run())
    monkeypatch.setattr(runlog, "MAX_LOG_BYTES", 100)
    with pytest.raises(runlog.LogError) as e:
        list(runlog.read_entries(path, warn=print))
    assert "limit" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_or_a_folder_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "log.jsonl"
    os.mkfifo(fifo)
    errors = []
    reader = threading.Thread(target=lambda: errors.append(pytest.raises(runlog.LogError, runlog.load_log, fifo)),
                              daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "load_log blocked on a FIFO: check the file type before opening it"
    assert "not a file" in str(errors[0].value)
    with pytest.raises(runlog.LogError, match="not a file"):
        runlog.load_log(tmp_path)


def train_line(**changes) -> str:
    return json.dumps({"kind": "train", **TRAIN, **changes})


# Lines made to crash a reader that trusts them; each once ended in a traceback or worse.
CRAFTED = {
    "grad_norm holds objects": train_line(grad_norm={"Whh": {"x": 1}}),
    "clip_frac is a list": train_line(clip_frac=[0.1, 0.2]),
    "grad_norm has 1,000 names": train_line(grad_norm={f"W{i}": 1.0 for i in range(1000)}),
    "a step of 400 digits": train_line().replace('"step": 1', '"step": ' + "9" * 400),
    "a loss of 5,000 digits": train_line().replace('"loss": 3.5', '"loss": ' + "7" * 5000),
    "a count of 10**30": train_line(chars=10**30),
    "a negative step": train_line(step=-1),
    "an infinite loss": train_line().replace('"loss": 3.5', '"loss": 1e999'),
    "JSON nested 100,000 deep": '{"kind": "train", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a config clip of [1, 2]": json.dumps({"kind": "config", "clip": [1, 2]}),
    "a config clip of {}": json.dumps({"kind": "config", "clip": {}}),
    "a config clip of 'abc'": json.dumps({"kind": "config", "clip": "abc"}),
    "a config setting of objects": json.dumps({"kind": "config", "mystery": {"a": [1]}}),
    "a resume config of lists": json.dumps({"kind": "resume", "step": 1, "config": {"clip": [1]}}),
    "a sample with NUL": json.dumps({"kind": "sample", "step": 1, "chars": 64, "text": "a\u0000b"}),
    "a sample with a lone surrogate": '{"kind": "sample", "step": 1, "chars": 64, "text": "a\\ud800b"}',
    "a sample without chars": json.dumps({"kind": "sample", "step": 1, "text": "abc"}),
    "a kind of a megabyte": json.dumps({"kind": "k" * 500_000}),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_line_is_refused_or_skipped_in_one_line(tmp_path, case):
    good = [train_line(step=s) for s in (1, 2)]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([good[0], CRAFTED[case], good[1]]) + "\n")
    with pytest.raises(runlog.LogError) as e:
        runlog.load_log(path)
    message = str(e.value)
    assert "line 2" in message and "\n" not in message and len(message) < 400, f"{case}: {message[:500]}"
    warnings = []
    kept = list(runlog.read_entries(path, warn=warnings.append))
    assert [n for n, _, _ in kept] == [1, 3], f"{case}: the good lines should be kept"
    assert len(warnings) == 1 and "line 2" in warnings[0] and len(warnings[0]) < 400, warnings


def test_unusual_but_valid_text_and_nan_are_read(tmp_path):
    """U+2028, U+202E and other characters a corpus may hold are text; NaN (not JSON) reads as null, as written."""
    text = "line\u2028sep \u202eright-to-left\u202c tab\t"
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([train_line(), train_line(step=2).replace('"loss": 3.5', '"loss": NaN'),
                               json.dumps({"kind": "sample", "step": 2, "chars": 128, "text": text})]) + "\n")
    log = runlog.load_log(path)
    assert log["sample"][0]["text"] == text and log["train"][1]["loss"] is None


def test_fields_the_schema_does_not_name_are_not_kept(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(train_line(junk="x" * 1000) + "\n")
    assert "junk" not in runlog.load_log(path)["train"][0], "an unknown field is dropped, not kept in memory"


def test_a_line_longer_than_the_limit_is_skipped_without_losing_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(runlog, "MAX_LINE_BYTES", 500)
    path = tmp_path / "log.jsonl"
    long = json.dumps({"kind": "sample", "step": 1, "chars": 64, "text": "x" * 300_000})
    path.write_text("\n".join([train_line(step=1), long, train_line(step=2), long]))   # the last one unended
    warnings = []
    kept = list(runlog.read_entries(path, warn=warnings.append))
    assert [n for n, _, _ in kept] == [1, 3], "the line after a long one must be read as it is"
    assert [w.split(",")[1].split(" skipped")[0].strip() for w in warnings] == ["line 2", "line 4"], warnings
    assert all("longer than 500 bytes" in w for w in warnings), warnings
    with pytest.raises(runlog.LogError, match="line 2: longer than 500 bytes"):
        runlog.load_log(path)
    with runlog.RunLogWriter(tmp_path / "new.jsonl", fresh=True) as log:
        with pytest.raises(runlog.LogError, match="longer than a log line may be"):
            log.write("sample", step=1, chars=64, text="x" * 1000)
    assert (tmp_path / "new.jsonl").read_text() == "", "the writer never writes a line the reader would refuse"


def test_many_bad_lines_give_a_few_warnings_and_a_count(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([train_line()] + ["{broken"] * 1000) + "\n")
    warnings = []
    assert len(list(runlog.read_entries(path, warn=warnings.append))) == 1
    assert len(warnings) == runlog.MAX_WARNINGS + 1, len(warnings)
    assert warnings[-1].endswith(f"{1000 - runlog.MAX_WARNINGS:,} more bad lines skipped"), warnings[-1]


# -----------------------------------------------------------------------------
# Long logs: what load_log keeps
# -----------------------------------------------------------------------------

def test_a_long_log_is_thinned_evenly_and_keeps_its_ends(tmp_path):
    steps = range(1, 1001)
    path = write_log(tmp_path / "log.jsonl", [{"kind": "train", **TRAIN, "step": s, "chars": 64 * s} for s in steps]
                     + [{"kind": "sample", "step": s, "chars": 64 * s, "text": "abc"} for s in steps])
    log = runlog.load_log(path, max_points=100, max_samples=10)
    kept = [e["step"] for e in log["train"]]
    assert len(kept) <= 100 and len(log["sample"]) <= 10, (len(kept), len(log["sample"]))
    assert kept[0] == 1 and kept[-1] == 1000, "the first and the latest entry must stay"
    gaps = {b - a for a, b in zip(kept[:-2], kept[1:-1])}
    assert len(gaps) == 1 and len(kept) >= 50, f"evenly spread (one gap), at least half the cap: {sorted(gaps)}"
    assert runlog.load_log(path, max_points=2000)["train"] == \
        [e for _, e, _ in runlog.read_entries(path) if e["kind"] == "train"], "below the cap nothing is dropped"


def test_thinning_still_lets_a_resumed_run_replace_its_replayed_steps(tmp_path):
    entries = [{"kind": "train", **TRAIN, "step": s, "loss": 1.0} for s in range(1, 501)]
    entries += [{"kind": "train", **TRAIN, "step": s, "loss": 2.0} for s in range(301, 701)]   # resumed at 300
    log = runlog.load_log(write_log(tmp_path / "log.jsonl", entries), max_points=64)
    kept = [(e["step"], e["loss"]) for e in log["train"]]
    assert [s for s, _ in kept] == sorted({s for s, _ in kept}) and kept[-1] == (700, 2.0), kept
    assert all(loss == (1.0 if s <= 300 else 2.0) for s, loss in kept), "steps after 300 come from the replay"


# Reads a log in a child process and prints how much its peak memory grew (kB): the
# reader's own memory, apart from the interpreter and NumPy.
_PEAK = """
import sys
sys.path.insert(0, sys.argv[1])
import runlog
runlog.MAX_POINTS, runlog.MAX_SAMPLES = 1000, 20
peak_kb = lambda: int(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))
before = peak_kb()
if sys.argv[3] == "load":
    log = runlog.load_log(sys.argv[2])
    assert 500 <= len(log["train"]) <= 1000 and 10 <= len(log["sample"]) <= 20, (len(log["train"]), len(log["sample"]))
    assert log["train"][-1]["step"] == int(sys.argv[4]) and log["sample"][-1]["step"] == int(sys.argv[4])
else:
    runlog.rewrite(sys.argv[2], runlog.plan_resume(sys.argv[2], int(sys.argv[4]) // 2, "", warn=print))
print(peak_kb() - before)
"""


@pytest.mark.parametrize("action", ["load", "resume"])
def test_a_large_log_is_read_in_bounded_memory(tmp_path, action):
    """A log of 88,000 short lines (4.6 MB): read whole, as it once was, the reader grew by 75 MB
    (about 900 bytes a line); streamed and thinned, it must stay under 30 MB."""
    n = 80_000
    path = tmp_path / "log.jsonl"
    with open(path, "w") as f:
        f.write(runlog.json_line("config", vocab_size=30))
        for s in range(1, n + 1):
            f.write(f'{{"kind": "train", "step": {s}, "chars": {64 * s}, "loss": 3.5}}\n')
            if s % 10 == 0:
                f.write(f'{{"kind": "sample", "step": {s}, "chars": {64 * s}, "text": "to be or not"}}\n')
    size = path.stat().st_size
    assert size > 4e6, size
    result = subprocess.run([sys.executable, "-c", _PEAK, str(REPO_ROOT), str(path), action, str(n)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    grew_mb = int(result.stdout.split()[-1]) / 1024
    assert grew_mb < 30, f"runlog ({action}) grew by {grew_mb:.0f} MB on a {size / 1e6:.1f} MB log"
    if action == "resume":
        assert sum(1 for _ in open(path)) == 1 + n // 2 + n // 20, "the cut keeps the config and the lines up to n/2"


# -----------------------------------------------------------------------------
# Cutting a log back for a resume
# -----------------------------------------------------------------------------

def cut(tmp_path, log, step, config_line, warn=print) -> bytes:
    """What the log at `log` becomes when plan_resume's cut is carried out (into another file)."""
    plan = runlog.plan_resume(log, step, config_line, warn=warn)
    out = tmp_path / "cut.jsonl"
    runlog.rewrite(out, plan)
    return out.read_bytes()


def test_plan_resume_keeps_the_entries_up_to_the_step_and_writes_nothing(tmp_path):
    path = write_log(tmp_path / "log.jsonl", a_run())
    before = path.read_bytes()
    runlog.plan_resume(path, 3, runlog.json_line("config", vocab_size=1), warn=print)
    assert path.read_bytes() == before, "plan_resume only reads"
    kept = [json.loads(line) for line in cut(tmp_path, path, 3, runlog.json_line("config", vocab_size=1)).splitlines()]
    assert [e["kind"] for e in kept] == ["config", "train", "train", "val", "train"]
    assert [e["step"] for e in kept[1:]] == [1, 2, 2, 3] and kept[0]["vocab_size"] == 30, \
        "the log's own config is kept; nothing after step 3, no end"
    assert cut(tmp_path, tmp_path / "none.jsonl", 3, runlog.json_line("config", vocab_size=1)) == \
        runlog.json_line("config", vocab_size=1).encode(), "a missing log starts from the config line"


def test_a_resume_cut_keeps_good_lines_as_they_were_and_drops_bad_ones(tmp_path):
    path = write_log(tmp_path / "log.jsonl", a_run())
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3] + [b'{"kind": "train", "step": 1e999}\n'] + lines[3:]))
    warnings = []
    got = cut(tmp_path, path, 2, runlog.json_line("config", vocab_size=1), warn=warnings.append)
    assert got == b"".join(lines[:4]), "lines up to step 2, byte for byte, without the bad one"
    assert len(warnings) == 1 and "line 4" in warnings[0], warnings


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_rewrite_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch, failure):
    path = write_log(tmp_path / "log.jsonl", a_run())
    before = path.read_bytes()

    def fail(fd):
        raise failure
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(failure)):
        runlog.rewrite(path, b"new\n")
    assert path.read_bytes() == before, "a failed rewrite must leave the old log as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"], "the temporary file must be removed"
    monkeypatch.undo()
    runlog.rewrite(path, b"new\n")
    assert path.read_bytes() == b"new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl"]
