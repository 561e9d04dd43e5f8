"""Tests for runlog.py: the schema of log.jsonl, its writer, its bounded reader and the resume cut."""

import json
import os
import threading
from pathlib import Path

import pytest

import runlog
import train_minimal as tm
import visualization as viz

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
    kept = runlog.read_entries(path, warn=warnings.append)   # lenient: a resume skips it
    assert [n for n, _, _ in kept] == [1, 3], f"{case}: the good lines should be kept"
    assert len(warnings) == 1 and "line 2" in warnings[0] and "\n" not in warnings[0], warnings


def test_a_truncated_last_line_and_bad_bytes_are_skipped_with_a_warning(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(json.dumps({"kind": "train", **TRAIN}).encode() + b"\n\xff\xfe\n{\"kind\": \"tra")
    warnings = []
    kept = runlog.read_entries(path, warn=warnings.append)
    assert [n for n, _, _ in kept] == [1]
    assert [w.split(",")[1].split(" skipped")[0].strip() for w in warnings] == ["line 2", "line 3"], warnings


def test_a_log_above_the_size_limit_is_refused_in_one_line(tmp_path, monkeypatch):
    path = write_log(tmp_path / "log.jsonl", a_run())
    monkeypatch.setattr(runlog, "MAX_LOG_BYTES", 100)
    with pytest.raises(runlog.LogError) as e:
        runlog.read_entries(path, warn=print)
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


# -----------------------------------------------------------------------------
# Cutting a log back for a resume
# -----------------------------------------------------------------------------

def test_plan_resume_keeps_the_entries_up_to_the_step_and_writes_nothing(tmp_path):
    path = write_log(tmp_path / "log.jsonl", a_run())
    before = path.read_bytes()
    content = runlog.plan_resume(path, 3, runlog.encode("config", vocab_size=1), warn=print)
    assert path.read_bytes() == before, "plan_resume only reads"
    kept = [json.loads(line) for line in content.decode().splitlines()]
    assert [e["kind"] for e in kept] == ["config", "train", "train", "val", "train"]
    assert [e["step"] for e in kept[1:]] == [1, 2, 2, 3] and kept[0]["vocab_size"] == 30, \
        "the log's own config is kept; nothing after step 3, no end"
    assert runlog.plan_resume(tmp_path / "none.jsonl", 3, runlog.encode("config", vocab_size=1), print) == \
        runlog.encode("config", vocab_size=1).encode(), "a missing log starts from the config line"


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
