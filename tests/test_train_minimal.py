"""Tests for train_minimal.py: the shell front end to implementation.py.

Normal paths run in-process through main([...]) on a small synthetic text;
bad inputs, Ctrl-C and SIGKILL run the script as a subprocess, exactly as a
user would, and check the exit status and the one-line message.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import cli
from data.download import CORPORA
import implementation as rnn
import ngram
import checkpoints
import train_minimal as tm
from helpers import REPO_ROOT as ROOT
from helpers import snapshot, synthetic_text

SCRIPT = ROOT / "train_minimal.py"

# A tiny model that trains in a blink; quiet, no progress bar.
SMALL = ["--hidden-size", "16", "--batch-size", "2", "--seq-length", "8", "--quiet", "--no-progress"]



@pytest.fixture
def text_file(tmp_path) -> Path:
    path = tmp_path / "play.txt"
    path.write_text(synthetic_text(), encoding="utf-8")
    return path


def read_log(out: Path) -> list:
    return [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def run_script(*args, cwd, timeout=120, env_extra=None):
    """Run train_minimal.py as a user would; returns the CompletedProcess."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, keyword, what):
    """A user error: non-zero status, exactly one line on stderr that names the problem, no traceback."""
    err = proc.stderr.strip()
    assert proc.returncode != 0, f"{what}: expected a non-zero exit status, got 0; stdout:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr, f"{what}: the user should see one line, not a traceback:\n{err}"
    assert len(err.splitlines()) == 1, f"{what}: expected exactly one line on stderr, got:\n{err}"
    assert keyword.lower() in err.lower(), f"{what}: the message should mention {keyword!r}; got: {err}"


# -----------------------------------------------------------------------------
# Settings
# -----------------------------------------------------------------------------

def test_preset_textbook_is_exactly_min_char_rnn():
    c = tm.resolve_config("textbook")
    want = {"batch_size": 1, "hidden_size": 100, "seq_length": 25, "optimizer": "adagrad",
            "learning_rate": 0.1, "clip": 5.0, "dtype": "float64", "init_scale": 0.01,
            "lr_schedule": "constant"}
    got = {k: c[k] for k in want}
    assert got == want, f"resolve_config('textbook') should give min-char-rnn's settings;\n mine: {got}\n want: {want}"


@pytest.mark.parametrize("preset", ["default", "fast", "long"])
def test_the_presets_the_readme_quotes_end_on_a_number_of_steps(preset):
    """A reader on any machine trains the same model: only a step count ends these runs."""
    c = tm.resolve_config(preset)
    assert c["max_steps"], f"--preset {preset}: max_steps must end the run (its README loss is after N steps)"
    assert c["time_budget"] is None and not c["patience"], \
        (f"--preset {preset}: a time budget (or a plateau) would stop the run at a different step on every "
         f"machine, and a cosine schedule would follow the clock; got time_budget={c['time_budget']}, "
         f"patience={c['patience']}")
    chars = CORPORA["tiny_shakespeare"].size              # the recorded size; the text is ASCII, one byte a char
    train_ids, _ = rnn.train_val_split(np.zeros(chars, np.int32), c["val_fraction"])
    steps_per_epoch = len(train_ids) // (c["batch_size"] * c["seq_length"])
    assert not c["epochs"] or c["epochs"] * steps_per_epoch > c["max_steps"], \
        f"--preset {preset}: its epochs limit would stop it before max_steps = {c['max_steps']}"


def test_flags_override_the_preset_and_the_resolved_settings_are_logged(text_file, tmp_path):
    out = tmp_path / "out"
    rc = tm.main(["--preset", "textbook", "--data", text_file, "--out", out, "--hidden-size", "12",
                  "--max-steps", "3", "--quiet", "--no-progress"])
    assert rc == 0
    config = read_log(out)[0]
    assert config["kind"] == "config"
    assert config["hidden_size"] == 12, "an explicit --hidden-size must override the preset"
    for k in ("batch_size", "seq_length", "optimizer", "learning_rate", "clip", "dtype", "init_scale"):
        assert config[k] == tm.PRESETS["textbook"][k], f"--preset textbook: {k} should stay the textbook's"


def test_the_first_line_says_what_the_run_will_do_and_the_settings_go_to_the_log(text_file, tmp_path, capsys):
    out = tmp_path / "o"
    rc = tm.main([*SMALL[:-2], "--no-progress", "--data", text_file, "--out", out, "--max-steps", "2"])
    assert rc == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("Training the default preset (hidden size 16; --seq-length 8, --batch-size 2)") \
        and "for 2 steps" in first and first.endswith("."), f"the first line should say what the run does:\n{first}"
    assert "{" not in first and "ngram_prior" not in first, f"the settings dict is not the first thing printed: {first}"
    assert read_log(out)[0]["kind"] == "config" and read_log(out)[0]["hidden_size"] == 16, \
        "every setting is in the log's first line"


def test_the_quick_start_line_says_what_ends_the_run_and_how_long_it_takes():
    """The README's `--epochs 200` is inert under the default preset's 12,000 steps: the line says so."""
    config = tm.resolve_config("default", data="data/tiny_shakespeare.txt", epochs=200)
    line = tm.plan_line(config, "data/tiny_shakespeare.txt", 490)
    lo, hi = tm.estimated_seconds(config, 12_000)
    assert line.startswith("Training the default preset (hidden size 256) on data/tiny_shakespeare.txt for "
                           "12,000 steps (24.5 epochs)"), line
    assert "the default preset's 12,000 steps end the run long before --epochs 200 (98,000 steps) would" in line
    assert f"{tm.fmt_duration(lo, hi)} on a 2-core machine" in line and "min" in line, line
    speed = tm.MEASURED_SPEED["default"]
    assert (lo, hi) == pytest.approx((12_000 * 32 * 64 / speed[1], 12_000 * 32 * 64 / speed[0])), \
        "estimated_seconds: steps x streams x unroll characters at the measured speeds"
    line = tm.plan_line(dict(config, max_steps=300), "data/tiny_shakespeare.txt", 490)
    assert "--max-steps 300 ends the run long before --epochs 200" in line, line
    line = tm.plan_line(dict(config, epochs=20), "d.txt", 490)
    assert "for 20 epochs (9,800 steps)" in line and "--epochs 20 ends the run before the default preset's" in line
    line = tm.plan_line(dict(config, hidden_size=99), "d.txt", 490)
    assert "no time estimate" in line, "a shape nobody measured gets no made-up time"
    line = tm.plan_line(config, "d.txt", 490, 6000, "out/last.npz")
    assert line.startswith("Continuing out/last.npz from step 6,000: training") and "to step 12,000" in line, line


def test_fmt_duration():
    assert tm.fmt_duration(5, 40) == "under a minute"
    assert tm.fmt_duration(124, 303) == "about 2-5 min"
    assert tm.fmt_duration(341, 380) == "about 6 min"
    assert tm.fmt_duration(4000, 6000) == "about 1.1-1.7 h"


def _options(help_text: str) -> list:
    """The option lines of an argparse help ("  -h, --help ...", "  --data PATH ...")."""
    return [line.split()[0].rstrip(",") for line in help_text.splitlines() if re.match(r"  --?[a-z]", line)]


def test_help_shows_the_day_one_options_and_help_all_shows_every_one(text_file, tmp_path):
    proc = run_script("--help", cwd=tmp_path)
    day1 = _options(proc.stdout)
    assert proc.returncode == 0 and len(day1) <= 12, f"--help should show at most 12 options, got {day1}"
    for flag in ("--data", "--out", "--preset", "--epochs", "--max-steps", "--sample-only", "--checkpoint",
                 "--prime", "--temperature", "--help-all"):
        assert flag in day1, f"--help should show the Day-1 option {flag}"
    assert "--hidden-size" not in proc.stdout and "--help-all" in proc.stdout
    proc = run_script("--help-all", cwd=tmp_path)
    everything = _options(proc.stdout)
    assert proc.returncode == 0
    assert {s.flag for s in tm.settings.SETTINGS} <= set(everything), "--help-all shows every setting's flag"
    flags = {o for a in tm.build_parser()._actions for o in a.option_strings if o.startswith("--")}
    listed = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]+)", proc.stdout))
    assert flags <= listed, f"--help-all leaves out {sorted(flags - listed)}"
    for group in tm.settings.GROUPS:
        assert f"\n{group}:\n" in proc.stdout, f"--help-all groups the flags as before: no {group!r}"
    assert "LOG FORMAT" in proc.stdout and "LOG FORMAT" not in run_script("--help", cwd=tmp_path).stdout
    out = tmp_path / "o"                             # a flag --help does not show still works
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "2", "--hidden-size", "12"]) == 0
    assert read_log(out)[0]["hidden_size"] == 12


# -----------------------------------------------------------------------------
# Training: outputs, stopping rules
# -----------------------------------------------------------------------------

def test_training_writes_checkpoints_log_and_metrics(text_file, tmp_path):
    out = tmp_path / "out"
    rc = tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "40",
                  "--eval-every", "20", "--sample-every", "20", "--log-every", "5", "--sample-length", "30"])
    assert rc == 0, "a normal run should exit 0"
    for name in ("last.npz", "best.npz", "log.jsonl", "metrics.json"):
        assert (out / name).is_file(), f"--out should contain {name}"

    log = read_log(out)
    config = log[0]
    assert config["kind"] == "config"
    V = len(set(text_file.read_text(encoding="utf-8")))
    assert config["vocab_size"] == V and config["hidden_size"] == 16
    assert config["train_chars"] + config["val_chars"] == len(text_file.read_text(encoding="utf-8"))
    assert config["chars_per_epoch"] == config["windows_per_epoch"] * 2 * 8

    train = [e for e in log if e["kind"] == "train"]
    assert [e["step"] for e in train] == list(range(5, 41, 5)), "a train line every --log-every steps"
    for e in train:
        assert set(e) >= {"step", "epoch", "chars", "time", "loss", "smooth_loss", "lr", "grad_norm", "clip_frac"}
        assert set(e["grad_norm"]) == set(rnn.PARAM_NAMES) and set(e["clip_frac"]) == set(rnn.PARAM_NAMES)
        assert e["chars"] == e["step"] * 2 * 8
    assert train[-1]["loss"] < math.log(V), "after 40 steps the loss should be below a uniform guess, ln V"

    val = [e for e in log if e["kind"] == "val"]
    assert [e["step"] for e in val] == [20, 40]
    for e in val:
        assert e["val_bits"] == pytest.approx(e["val_loss"] / math.log(2)), "bits = nats / ln 2"
    samples = [e for e in log if e["kind"] == "sample"]
    assert [e["step"] for e in samples] == [20, 40] and all(len(e["text"]) == 30 for e in samples)
    assert log[-1]["kind"] == "end" and log[-1]["reason"] == "max_steps"

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reason"] == "max_steps" and metrics["steps"] == 40 and metrics["chars"] == 40 * 16
    assert metrics["best_val_loss"] == pytest.approx(min(e["val_loss"] for e in val))
    assert metrics["best_val_bits"] == pytest.approx(metrics["best_val_loss"] / math.log(2))
    for k in ("best_step", "final_train_loss", "epochs", "seconds", "chars_per_sec"):
        assert k in metrics, f"metrics.json should have {k!r}"

    best = checkpoints.load_checkpoint(out / "best.npz")
    last = checkpoints.load_checkpoint(out / "last.npz")
    assert last["meta"]["step"] == 40 and best["meta"]["step"] == metrics["best_step"]
    for k in ("config", "best_val_loss", "best_step", "evals_since_best", "elapsed", "epoch", "window",
              "smooth_loss"):
        assert k in last["meta"], f"the checkpoint meta should hold {k!r}"
    assert last["rng"] is not None, "the checkpoint should hold the RNG state for an exact resume"


def test_one_epoch_is_one_full_pass_over_the_training_split(text_file, tmp_path):
    out = tmp_path / "out"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--epochs", "1"]) == 0
    config, metrics = read_log(out)[0], json.loads((out / "metrics.json").read_text())
    assert metrics["reason"] == "epochs"
    assert metrics["steps"] == config["windows_per_epoch"], "--epochs 1 should run exactly one epoch of windows"
    assert metrics["epochs"] == 1.0


def test_time_budget_stops_the_run(text_file, tmp_path):
    out = tmp_path / "out"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--time-budget", "0.3", "--epochs", "100000"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reason"] == "time_budget" and 0 < metrics["steps"]


def test_patience_stops_on_a_validation_plateau_and_keeps_the_best(text_file, tmp_path):
    # a 64-unit model overfits the small text quickly, so the validation loss turns up
    out = tmp_path / "out"
    rc = tm.main([*SMALL, "--hidden-size", "64", "--data", text_file, "--out", out, "--learning-rate", "0.01",
                  "--eval-every", "50", "--patience", "2", "--max-steps", "5000"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    val = [e for e in read_log(out) if e["kind"] == "val"]
    assert metrics["reason"] == "plateau", f"expected a plateau stop; validation losses: {[e['val_loss'] for e in val]}"
    assert metrics["best_step"] == val[-3]["step"], "stops 2 evaluations after the best one"
    assert checkpoints.load_checkpoint(out / "best.npz")["meta"]["step"] == metrics["best_step"]
    assert metrics["best_val_loss"] == pytest.approx(min(e["val_loss"] for e in val))


def test_cosine_schedule_decays_to_min_lr(text_file, tmp_path):
    out = tmp_path / "out"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "20", "--log-every", "1",
                    "--lr-schedule", "cosine", "--learning-rate", "0.01", "--min-lr", "0.001",
                    "--warmup-steps", "0"]) == 0
    lrs = [e["lr"] for e in read_log(out) if e["kind"] == "train"]
    assert lrs[0] == pytest.approx(0.01), "step 1 uses the full learning rate (progress 0)"
    assert lrs[10] == pytest.approx(0.001 + 0.5 * 0.009 * (1 + math.cos(math.pi * 10 / 20)))
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.0011


def test_warmup_ramps_the_learning_rate_then_follows_the_schedule(text_file, tmp_path):
    out = tmp_path / "out"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "20", "--log-every", "1",
                    "--lr-schedule", "cosine", "--learning-rate", "0.01", "--min-lr", "0.001",
                    "--warmup-steps", "5"]) == 0
    lrs = [e["lr"] for e in read_log(out) if e["kind"] == "train"]
    cosine = lambda step: 0.001 + 0.5 * 0.009 * (1 + math.cos(math.pi * step / 20))
    for step in range(20):                           # the log's step s used the rate of step index s-1
        want = cosine(step) * min(1.0, (step + 1) / 5)
        assert lrs[step] == pytest.approx(want), f"--warmup-steps 5: lr at step {step + 1} should be {want:.5g}"
    assert lrs[0] == pytest.approx(0.2 * 0.01) and lrs[4] == pytest.approx(cosine(4))


# -----------------------------------------------------------------------------
# Resume
# -----------------------------------------------------------------------------

RESUME_CASES = {
    # the default preset's warmup, offsets and average; a constant rate after the warmup, because a
    # cosine schedule is spread over --max-steps, which this test changes on resume (20, then 40)
    "default": ["--preset", "default", "--lr-schedule", "constant"],
    "textbook": ["--preset", "textbook"],
    # 16 streams of 32: an epoch of the test text is ~15 steps, so 40 steps start new epochs at random offsets
    "offsets+ema": ["--preset", "fast", "--time-budget", "600", "--lr-schedule", "constant",
                    "--random-offsets", "--ema", "0.9", "--batch-size", "16", "--seq-length", "32"],
    # the long preset trains with dropout: the masks after the resume must be the ones the single run drew
    "long (dropout)": ["--preset", "long", "--lr-schedule", "constant", "--warmup-steps", "0",
                       "--batch-size", "16", "--seq-length", "32"],
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_is_bit_identical_to_one_run(text_file, tmp_path, case):
    """--max-steps 20, then --resume last.npz --max-steps 40 == one run of --max-steps 40."""
    common = [*SMALL, *RESUME_CASES[case], "--data", text_file, "--log-every", "1", "--eval-every", "15",
              "--sample-every", "7", "--sample-length", "20", "--hidden-size", "16"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert tm.main([*common, "--out", one, "--max-steps", "40"]) == 0
    assert tm.main([*common, "--out", two, "--max-steps", "20"]) == 0
    assert tm.main(["--resume", two / "last.npz", "--data", text_file, "--max-steps", "40", "--quiet", "--no-progress"]) == 0

    a, b = checkpoints.load_checkpoint(one / "last.npz"), checkpoints.load_checkpoint(two / "last.npz")
    for k in rnn.PARAM_NAMES:
        assert np.array_equal(a["params"][k], b["params"][k]), \
            f"params[{k!r}] after resume differs from the single run (max |diff| " \
            f"{np.abs(a['params'][k] - b['params'][k]).max():g}): the resume is not exact"
    assert np.array_equal(a["hidden"], b["hidden"]), "the carried hidden state differs after resume"
    for k in ("step", "epoch", "window", "smooth_loss"):
        assert a["meta"][k] == b["meta"][k], f"meta[{k!r}]: single run {a['meta'][k]} vs resumed {b['meta'][k]}"
    assert a["rng"].bit_generator.state == b["rng"].bit_generator.state, "the RNG state differs after resume"
    if "--ema" in common:                            # the model is the average; the weights ride along
        assert set(a["opt_state"]["weights"]) == set(rnn.PARAM_NAMES)
        for k in rnn.PARAM_NAMES:
            assert np.array_equal(a["opt_state"]["weights"][k], b["opt_state"]["weights"][k])
        assert not np.array_equal(a["params"]["Whh"], a["opt_state"]["weights"]["Whh"]), \
            "with --ema the checkpoint's params should be the average, not the training weights"
        assert a["meta"]["epoch"] >= 2, "this case should cross epoch starts (random offsets)"

    train_a = [(e["step"], e["loss"], e["smooth_loss"]) for e in read_log(one) if e["kind"] == "train"]
    train_b = [(e["step"], e["loss"], e["smooth_loss"]) for e in read_log(two) if e["kind"] == "train"]
    assert train_a == train_b, "the logged losses (and steps, no duplicates) must match the single run exactly"
    samples_a = [e["text"] for e in read_log(one) if e["kind"] == "sample"]
    samples_b = [e["text"] for e in read_log(two) if e["kind"] == "sample"]
    assert samples_a == samples_b, "samples after a resume should continue the same random stream"


def test_an_interrupted_default_run_resumes_onto_the_same_schedule(text_file, tmp_path, monkeypatch):
    """Ctrl-C at step 20 of a 40-step run of the default preset (its warmup, a cosine spread over
    --max-steps, random offsets and the average of the weights), then --resume with no other flag:
    the same weights, average and losses as one uninterrupted run."""
    common = [*SMALL, "--data", text_file, "--max-steps", "40", "--warmup-steps", "5", "--batch-size", "16",
              "--seq-length", "32", "--log-every", "1", "--eval-every", "15", "--sample-every", "0"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert tm.main([*common, "--out", one]) == 0
    real_stop_reason = tm.stop_reason

    def ctrl_c_at_step_20(c, trainer, state, sigint):
        return "interrupted" if trainer.step_count == 20 else real_stop_reason(c, trainer, state, sigint)

    monkeypatch.setattr(tm, "stop_reason", ctrl_c_at_step_20)
    assert tm.main([*common, "--out", two]) == 130, "an interrupted run exits with 130"
    monkeypatch.setattr(tm, "stop_reason", real_stop_reason)
    assert checkpoints.load_checkpoint(two / "last.npz")["meta"]["step"] == 20
    assert tm.main(["--resume", two / "last.npz", "--data", text_file, "--quiet", "--no-progress"]) == 0

    a, b = checkpoints.load_checkpoint(one / "last.npz"), checkpoints.load_checkpoint(two / "last.npz")
    assert a["meta"]["step"] == b["meta"]["step"] == 40 and a["meta"]["epoch"] >= 2
    for k in rnn.PARAM_NAMES:
        for what, x, y in (("the average", a["params"][k], b["params"][k]),
                           ("the weights", a["opt_state"]["weights"][k], b["opt_state"]["weights"][k])):
            assert np.array_equal(x, y), \
                f"{what} {k} after Ctrl-C and --resume differ from one run (max |diff| {np.abs(x - y).max():g}): " \
                "the resumed run must follow the same warmup and cosine schedule"
    steps = lambda out: [(e["step"], e["lr"], e["loss"]) for e in read_log(out) if e["kind"] == "train"]  # noqa: E731
    assert steps(one) == steps(two), "the learning rate and loss of every step must match the uninterrupted run"


def test_resume_truncates_log_entries_beyond_the_checkpoint(text_file, tmp_path):
    out = tmp_path / "out"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "30", "--eval-every", "10",
                    "--log-every", "1"]) == 0
    # resume from the step-10 state: copy a checkpoint saved at step 10
    assert tm.main([*SMALL, "--data", text_file, "--out", tmp_path / "ten", "--max-steps", "10",
                    "--log-every", "1"]) == 0
    (out / "ten.npz").write_bytes((tmp_path / "ten" / "last.npz").read_bytes())
    assert tm.main(["--resume", out / "ten.npz", "--data", text_file, "--max-steps", "15", "--quiet", "--no-progress"]) == 0
    log = read_log(out)
    steps = [e["step"] for e in log if e["kind"] == "train"]
    assert steps == list(range(1, 16)), f"train steps in the log after resuming at 10 and stopping at 15: {steps}"
    assert [e["kind"] for e in log].count("end") == 1 and log[-1]["kind"] == "end"
    assert [e["kind"] for e in log].count("config") == 1


# -----------------------------------------------------------------------------
# Signals and failures
# -----------------------------------------------------------------------------

def _wait_for_train_line(proc, log_path, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the training process exited early ({proc.returncode}): {proc.stderr.read()}")
        if log_path.exists() and '"kind": "train"' in log_path.read_text(encoding="utf-8"):
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail("training did not start within the timeout")


def test_ctrl_c_saves_a_checkpoint_and_exits_130(text_file, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *SMALL, "--data", str(text_file), "--out", str(out),
                             "--max-steps", "10000000", "--log-every", "1", "--eval-every", "0"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    _wait_for_train_line(proc, out / "log.jsonl")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, f"Ctrl-C should exit with status 130, got {proc.returncode}: {err}"
    assert "Traceback" not in err
    assert "interrupted" in err and "--resume" in err and "last.npz" in err, \
        f"Ctrl-C should say where the checkpoint is and how to resume; stderr: {err}"
    ck = checkpoints.load_checkpoint(out / "last.npz")
    step = ck["meta"]["step"]
    assert step > 0
    assert read_log(out)[-1] == {**read_log(out)[-1], "kind": "end", "reason": "interrupted", "step": step}
    # and the run continues from there
    assert tm.main(["--resume", out / "last.npz", "--data", text_file, "--max-steps", str(step + 3), "--quiet",
                    "--no-progress"]) == 0
    assert checkpoints.load_checkpoint(out / "last.npz")["meta"]["step"] == step + 3


def test_sigkill_while_saving_leaves_a_loadable_checkpoint(text_file, tmp_path):
    """A run killed at any moment, even in the middle of writing a checkpoint, leaves the previous one intact."""
    out = tmp_path / "out"
    delays = [0.0, 0.013, 0.031, 0.057, 0.11]        # after the first checkpoint exists
    for delay in delays:
        for name in ("log.jsonl", "last.npz"):           # so we wait for this process's first save
            (out / name).unlink(missing_ok=True)
        # a checkpoint every step (--eval-every 1), a few hundred KB each, so kills often land mid-write
        proc = subprocess.Popen([sys.executable, str(SCRIPT), *SMALL, "--hidden-size", "160", "--data",
                                 str(text_file), "--out", str(out), "--max-steps", "100000", "--overwrite",
                                 "--eval-every", "1", "--log-every", "1"],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        _wait_for_train_line(proc, out / "log.jsonl")
        while not (out / "last.npz").exists():
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        for name in ("last.npz", "best.npz"):
            try:
                ck = checkpoints.load_checkpoint(out / name)
            except checkpoints.CheckpointError as e:
                pytest.fail(f"after SIGKILL {delay}s into saving, {name} no longer loads: {e}")
            assert ck["meta"]["step"] >= 1


def _prepared_run(text_file, tmp_path, steps=10):
    out = tmp_path / "run"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", str(steps)]) == 0
    return out


def test_divergence_stops_with_an_explanation_and_keeps_the_last_good_checkpoint(text_file, tmp_path):
    out = _prepared_run(text_file, tmp_path)
    before = {name: (out / name).read_bytes() for name in ("last.npz", "best.npz")}
    proc = run_script("--resume", out / "last.npz", "--data", text_file, "--max-steps", "200", "--learning-rate", "1000",
                      "--clip", "0", "--quiet", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 3, f"a diverged run should exit 3, got {proc.returncode}: {proc.stderr}"
    assert_one_line_error(proc, "diverged", "huge learning rate, clipping off")
    assert "--learning-rate" in proc.stderr and "clip" in proc.stderr, "say what to change"
    for name, data in before.items():
        assert (out / name).read_bytes() == data, f"{name} must be kept as it was before the divergence"
    assert json.loads((out / "metrics.json").read_text())["reason"] == "diverged"
    assert read_log(out)[-1]["reason"] == "diverged"


def test_divergence_before_any_checkpoint(text_file, tmp_path):
    proc = run_script(*SMALL, "--data", text_file, "--out", tmp_path / "o", "--learning-rate", "1000",
                      "--clip", "0", "--max-steps", "200", cwd=tmp_path)
    assert proc.returncode == 3
    assert_one_line_error(proc, "no checkpoint had been saved", "divergence at the first steps")
    assert not (tmp_path / "o" / "last.npz").exists()


# -----------------------------------------------------------------------------
# Sampling from a checkpoint
# -----------------------------------------------------------------------------

def test_sample_only_prints_prime_and_continuation(text_file, tmp_path, capsys):
    out = _prepared_run(text_file, tmp_path)
    args = ["--sample-only", "--checkpoint", out / "last.npz", "--prime", "ALICE:", "--length", "50",
            "--temperature", "0.7", "--seed", "3"]
    assert tm.main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ALICE:") and len(first) == len("ALICE:") + 50 + 1, \
        f"--sample-only should print only prime + 50 characters and a newline, got {first!r}"
    assert tm.main(args) == 0
    assert capsys.readouterr().out == first, "the same --seed should give the same sample"
    prime_file = tmp_path / "prime.txt"
    prime_file.write_text("BOB:\nthe cat", encoding="utf-8")
    assert tm.main(["--sample-only", "--checkpoint", out / "last.npz", "--prime-file", prime_file,
                    "--length", "5"]) == 0
    assert capsys.readouterr().out.startswith("BOB:\nthe cat")


# -----------------------------------------------------------------------------
# Bad input: one line on stderr, non-zero exit, no traceback, nothing overwritten
# -----------------------------------------------------------------------------

def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_DATA = {
    # name: (file bytes or None for a missing file, keyword in the message)
    "missing file": (None, "no such file"),
    "empty file": (b"", "empty"),
    "binary file": (b"PK\x03\x04\x00\x00binary\x00stuff" * 20, "binary"),
    "not UTF-8": ("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e ".encode("latin-1") * 30, "UTF-8"),
    "shorter than one window": (b"abcdefgh" * 40, "too short"),        # 320 chars < 32 streams x 66
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_file(tmp_path, case):
    data, keyword = BAD_DATA[case]
    path = tmp_path / "input.txt"
    if data is not None:
        _write(path, data)
    proc = run_script("--data", path, "--out", tmp_path / "out", "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, keyword, f"--data with a {case}")
    assert proc.stdout == "", f"{case}: the error should come alone, before the settings are printed"
    assert not (tmp_path / "out").exists(), f"{case}: nothing should be written when the input is bad"


BAD_FLAGS = {
    "zero hidden size": (["--hidden-size", "0"], "--hidden-size"),
    "negative seq length": (["--seq-length", "-3"], "--seq-length"),
    "zero batch size": (["--batch-size", "0"], "--batch-size"),
    "zero learning rate": (["--learning-rate", "0"], "--learning-rate"),
    "negative learning rate": (["--learning-rate", "-0.1"], "--learning-rate"),
    "zero temperature": (["--temperature", "0"], "temperature"),
    "temperature not a number": (["--temperature", "warm"], "temperature"),
    "temperature nan": (["--temperature", "nan"], "temperature"),
    "zero epochs": (["--epochs", "0"], "--epochs"),
    "ema of one": (["--ema", "1"], "--ema"),
    "negative weight decay": (["--weight-decay", "-0.1"], "--weight-decay"),
    "weight decay inf": (["--weight-decay", "inf"], "--weight-decay"),
    "negative warmup": (["--warmup-steps", "-1"], "--warmup-steps"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLAGS))
def test_bad_settings(text_file, tmp_path, case):
    flags, keyword = BAD_FLAGS[case]
    proc = run_script("--data", text_file, "--out", tmp_path / "out", "--no-progress", *flags, cwd=tmp_path)
    assert_one_line_error(proc, keyword, case)
    assert proc.returncode == 2
    assert not (tmp_path / "out").exists(), f"{case}: nothing should be written"


def test_out_that_is_a_file(text_file, tmp_path):
    out = _write(tmp_path / "out", b"precious")
    proc = run_script("--data", text_file, "--out", out, "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "is a file", "--out pointing at a file")
    assert out.read_bytes() == b"precious", "--out that is a file must not be overwritten"


@pytest.fixture
def checkpoint(text_file, tmp_path) -> Path:
    return _prepared_run(text_file, tmp_path) / "last.npz"


def test_sample_only_bad_inputs(checkpoint, tmp_path):
    cases = [
        (["--prime", "ALICE@Z~"], "'@'"),                  # names the unknown characters
        (["--temperature", "0"], "temperature"),
        (["--temperature", "-1"], "temperature"),
        (["--temperature", "hot"], "temperature"),
        (["--length", "0"], "length"),
        (["--checkpoint", "other.npz"], "one --checkpoint"),   # --checkpoint twice is for --ngram's ensemble
    ]
    for flags, keyword in cases:
        proc = run_script("--sample-only", "--checkpoint", checkpoint, *flags, cwd=tmp_path)
        assert_one_line_error(proc, keyword, f"--sample-only {' '.join(flags)}")
        if "@" in keyword:
            assert "'Z'" in proc.stderr and "'~'" in proc.stderr, "every unknown character should be named"


def test_missing_or_corrupted_checkpoint(tmp_path, text_file):
    corrupt = _write(tmp_path / "corrupt.npz", b"PK\x03\x04 this is not a zip file at all" * 10)
    good = _prepared_run(text_file, tmp_path) / "last.npz"
    truncated = _write(tmp_path / "truncated.npz", good.read_bytes()[: good.stat().st_size // 2])
    for path, keyword in [(tmp_path / "nope.npz", "not found"), (corrupt, "corrupted"), (truncated, "corrupted")]:
        proc = run_script("--sample-only", "--checkpoint", path, cwd=tmp_path)
        assert_one_line_error(proc, keyword, f"--sample-only --checkpoint {path.name}")
        proc = run_script("--resume", path, "--data", text_file, "--no-progress", cwd=tmp_path)
        assert_one_line_error(proc, keyword, f"--resume {path.name}")


def test_resume_with_data_of_another_vocabulary(checkpoint, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(synthetic_text().upper() + "#%", encoding="utf-8")
    run = checkpoint.parent
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    proc = run_script("--resume", checkpoint, "--data", other, "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "vocabulary", "--resume with --data of other characters")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before, "a failed resume must not touch the run"


def test_resume_refuses_to_change_the_model_shape(checkpoint, tmp_path):
    proc = run_script("--resume", checkpoint, "--hidden-size", "99", "--data", checkpoint.parent / "x.txt", "--no-progress",
                      cwd=tmp_path)
    assert_one_line_error(proc, "hidden-size", "--resume with another --hidden-size")


# -----------------------------------------------------------------------------
# Real data: tiny Shakespeare, fetched the way the quick start fetches it
# -----------------------------------------------------------------------------

def test_quick_start_on_tiny_shakespeare(shakespeare_path, tmp_path):
    """The quick start's data path: a missing data/tiny_shakespeare.txt is fetched, then training learns.

    The default preset for 200 steps (a few seconds) at its peak learning rate, without the warmup,
    the cosine decay (spread over 200 steps) and the average of the weights (at step 200 still near
    the initial weights) that it uses over its 12,000 steps: the validation loss falls below 3.0
    nats/char, under both ln 65 = 4.17 (a uniform guess) and 3.31 (the entropy of the letter
    frequencies alone), so the model is already using context.
    """
    data = tmp_path / "data" / "tiny_shakespeare.txt"           # missing: fetched from the mirror
    out = tmp_path / "out"
    proc = run_script("--data", data, "--out", out, "--max-steps", "200", "--eval-every", "100",
                      "--lr-schedule", "constant", "--warmup-steps", "0", "--ema", "0",
                      "--sample-every", "100", "--no-progress", cwd=tmp_path,
                      env_extra={"RNN_DATA_MIRROR": str(shakespeare_path.parent)})
    assert proc.returncode == 0, f"the quick start failed: {proc.stderr}"
    assert data.stat().st_size == 1_115_394, "tiny Shakespeare should have been fetched to --data"
    assert "sample at step 100" in proc.stdout and "val " in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert read_log(out)[0]["vocab_size"] == 65
    assert metrics["best_val_loss"] < 3.0, \
        f"after 200 default steps the validation loss should be below 3.0 nats/char, got {metrics['best_val_loss']}"
    assert metrics["reason"] == "max_steps" and (out / "best.npz").is_file()


# -----------------------------------------------------------------------------
# What the run reports
# -----------------------------------------------------------------------------

def test_final_train_loss_is_the_mean_of_the_last_steps(text_file, tmp_path):
    out = tmp_path / "out"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "150", "--log-every", "1"]) == 0
    losses = [e["loss"] for e in read_log(out) if e["kind"] == "train"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["final_train_steps"] == tm.DISPLAY_STEPS == 100
    assert metrics["final_train_loss"] == pytest.approx(np.mean(losses[-100:])), \
        "final_train_loss should be the mean per-char loss of the last 100 steps"
    V = read_log(out)[0]["vocab_size"]
    smooth = math.log(V)
    for loss in losses:                              # min-char-rnn's running average, recomputed here
        smooth = 0.999 * smooth + 0.001 * loss
    assert metrics["smooth_loss"] == pytest.approx(smooth)
    assert metrics["final_train_loss"] < metrics["smooth_loss"], \
        "after 150 steps the 0.999-average still mostly holds ln V; the recent mean is lower"


# A child that times nothing but counts page faults: the minor faults of 5 training steps at
# H=256, B=64, T=64 float32 (about 30 MB of arrays allocated and freed per step), after 3
# steps of warm-up, with or without cli.keep_freed_memory().
FAULTS_CHILD = """
import resource, sys
import numpy as np
import cli, implementation as rnn
kept = cli.keep_freed_memory() if sys.argv[1] == "keep" else None
rng = np.random.default_rng(0)
H, B, T, V = 256, 64, 64, 65
params = {k: v.astype(np.float32) for k, v in rnn.init_params(V, H, rng).items()}
ids = rng.integers(V, size=(T + 1, B))
h = np.zeros((H, B), np.float32)
for i in range(8):
    if i == 3:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    rnn.loss_and_grads(params, ids[:-1], ids[1:], h)
print(kept, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 5)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="keep_freed_memory sets glibc's malloc; Linux only")
def test_keep_freed_memory_makes_training_steps_reuse_their_pages():
    def faults(mode):
        proc = subprocess.run([sys.executable, "-c", FAULTS_CHILD, mode], cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
        assert proc.returncode == 0, proc.stderr
        kept, per_step = proc.stdout.split()
        return kept, float(per_step)
    kept, with_it = faults("keep")
    if kept != "True":
        pytest.skip("this C library has no glibc mallopt (musl?): keep_freed_memory() returned False")
    _, without = faults("default")
    assert with_it < 50, (f"cli.keep_freed_memory: {with_it:.0f} page faults per training step after it "
                          f"({without:.0f} without): freed arrays should be reused, not handed back to the "
                          f"system; check the mallopt parameter numbers (M_MMAP_THRESHOLD -3, M_TRIM_THRESHOLD -1)")


def test_threads_flag_sets_the_blas_threads(text_file, tmp_path, monkeypatch):
    got = []
    monkeypatch.setattr(cli, "limit_threads", lambda n=None: got.append(n) or 1)
    assert tm.main([*SMALL, "--data", text_file, "--out", tmp_path / "o", "--max-steps", "2", "--threads", "2"]) == 0
    assert got == [2], "--threads N should reach cli.limit_threads (through cli.setup_numpy)"
    proc = run_script(*SMALL, "--data", text_file, "--out", tmp_path / "p", "--threads", "0", cwd=tmp_path)
    assert_one_line_error(proc, "threads", "--threads 0")
    assert "one" in " ".join(tm.build_parser().format_help().split()).lower()


def test_the_bar_shows_steps_of_the_runs_real_length_and_the_same_epoch_as_the_lines(text_file, tmp_path, capsys):
    c = tm.resolve_config("default", data=str(text_file), out=str(tmp_path / "o"), hidden_size=16,
                          batch_size=2, seq_length=8, max_steps=37, epochs=200, eval_every=10, sample_every=0)
    tm.train(c, progress=True)
    captured = capsys.readouterr()
    val_epochs = [line.split("| epoch ")[1].split(" ")[0] for line in captured.out.splitlines()
                  if line.startswith("step ")]
    assert len(val_epochs) == 4, captured.out
    bar = captured.err.replace("\r", "\n")
    for epoch in val_epochs:
        assert f"epoch {epoch}," in bar, f"the bar should show epoch {epoch} when the line does:\n{bar}"
    assert "step 37/37" in bar, f"the bar counts steps out of the run's length (37, not 200 epochs):\n{bar}"
    assert "/200" not in bar, f"--epochs 200 does not end this run; the bar must not count toward it:\n{bar}"


def test_the_eta_is_an_upper_bound_when_a_limit_can_come_sooner(text_file, tmp_path):
    # a run that only a time budget or a plateau can stop
    c = {**tm.resolve_config("default", data=str(text_file), out=str(tmp_path / "o"), time_budget=840.0,
                             patience=5), "epochs": None, "max_steps": None, "lr_schedule": "constant"}
    run = tm.prepare(c, None, print, False)
    show = tm.Progress(quiet=True, bar=False)
    show.open(run)
    eta = show.eta(run, time.perf_counter())
    assert eta.startswith("eta ≤") and "time budget" in eta and "plateau" in eta, eta
    show.close()
    line = tm.plan_line(c, "d.txt", 490)
    assert "for 14:00 of training (--time-budget), or sooner, once the validation loss has not improved for 5 " \
           "evaluations (--patience)" in line and "min" not in line.split("(--patience)")[1], line
    line = tm.plan_line(dict(c, time_budget=None, patience=0), "d.txt", 490)
    assert "until you press Ctrl-C" in line, line


def test_divergence_rules():
    lnV = math.log(65)
    assert tm.divergence(float("nan"), [], 1, lnV) and tm.divergence(10.5 * lnV, [], 1, lnV)
    assert tm.divergence(9 * lnV, [9 * lnV] * 100, 10, lnV) is None, "a brief high loss early on is allowed"
    high = [1.01 * lnV] * tm.SUSTAINED_STEPS
    assert tm.divergence(lnV, high, tm.SUSTAINED_AFTER - 1, lnV) is None, "not before SUSTAINED_AFTER steps"
    assert "last 200 steps" in tm.divergence(lnV, high, tm.SUSTAINED_AFTER, lnV)
    assert tm.divergence(lnV, [0.99 * lnV] * tm.SUSTAINED_STEPS, 10_000, lnV) is None


def test_a_sustained_loss_above_a_uniform_guess_stops_the_run(text_file, tmp_path):
    """Adam at 0.3 without clipping on the small model: never 10 x ln V, but worse than ln V for good."""
    out = tmp_path / "o"
    proc = run_script(*SMALL, "--data", text_file, "--out", out, "--learning-rate", "0.3", "--clip", "0",
                      "--lr-schedule", "constant", "--warmup-steps", "0", "--ema", "0",
                      "--max-steps", "2000", "--log-every", "1", "--eval-every", "100", cwd=tmp_path)
    assert proc.returncode == 3, f"expected exit 3 (diverged), got {proc.returncode}: {proc.stderr}"
    assert_one_line_error(proc, "last 200 steps", "a sustained high loss")
    log = read_log(out)
    losses = [e["loss"] for e in log if e["kind"] == "train"]
    lnV = math.log(log[0]["vocab_size"])
    assert max(losses) < tm.EXPLODE_FACTOR * lnV, "this case is one the 10 x ln V rule alone misses"
    assert len(losses) == tm.SUSTAINED_AFTER - 1 and np.mean(losses[-199:]) > lnV, \
        "stopped at step 500 (its loss is not logged), the mean of the last 200 steps above ln V"
    assert checkpoints.load_checkpoint(out / "last.npz")["meta"]["step"] == 400, "the last checkpoint before it is kept"


def test_the_first_evaluation_of_a_weight_average_says_why_it_lags(text_file, tmp_path, capsys):
    assert tm.main([*SMALL[:-2], "--no-progress", "--data", text_file, "--out", tmp_path / "o", "--ema", "0.9",
                    "--max-steps", "15", "--eval-every", "5", "--sample-every", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    notes = [i for i, line in enumerate(lines) if line.startswith("note:")]
    assert len(notes) == 1 and lines[notes[0] - 1].startswith("step 5 "), \
        "one note, right after the first validation line:\n" + "\n".join(lines)
    fades = math.ceil(math.log(0.05) / math.log(0.9))          # 0.9^29 < 5% <= 0.9^28
    assert "--ema 0.9" in lines[notes[0]] and f"{0.9 ** 5:.0%} of it is still the initial weights" in \
        lines[notes[0]] and f"(5% at step {fades})" in lines[notes[0]], lines[notes[0]]
    assert tm.main([*SMALL[:-2], "--no-progress", "--data", text_file, "--out", tmp_path / "q", "--ema", "0",
                    "--max-steps", "5", "--eval-every", "5"]) == 0
    assert "note:" not in capsys.readouterr().out, "without a weight average there is nothing to explain"


# -----------------------------------------------------------------------------
# The output folder: nothing lost, one run at a time
# -----------------------------------------------------------------------------

def test_a_new_run_refuses_to_replace_a_previous_one(text_file, tmp_path):
    out = _prepared_run(text_file, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = run_script(*SMALL, "--data", text_file, "--out", out, "--max-steps", "5", cwd=tmp_path)
    assert_one_line_error(proc, "previous run", "a new run into a run folder")
    assert proc.returncode == 2 and "--resume" in proc.stderr and "--overwrite" in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before, "the previous run must be untouched"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "5", "--overwrite"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 5
    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    assert tm.main([*SMALL, "--data", text_file, "--out", other, "--max-steps", "2"]) == 0, \
        "a folder without a run in it is fine"
    assert (other / "readme.txt").read_text() == "mine"


LOCK_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, f"{os.getpid()}\\n".encode())
print("locked", flush=True)
time.sleep(120)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks are POSIX")
def test_a_second_run_into_a_locked_folder_exits_2_naming_the_other_pid(text_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(out / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run_script(*SMALL, "--data", text_file, "--out", out, "--max-steps", "3", cwd=tmp_path)
        assert_one_line_error(proc, f"pid {holder.pid}", "a run into a folder another run holds")
        assert proc.returncode == 2
        assert sorted(p.name for p in out.iterdir()) == [".lock"], "nothing written while another run holds it"
    finally:
        holder.kill()
        holder.wait()
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "3"]) == 0, \
        "once the other process is gone, the lock is free"


def test_stale_temporary_files_are_swept_under_the_lock(text_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = [".log.jsonl.abc123.tmp", "last.npz.x1y2.tmp", ".metrics.json.q.tmp"]
    for name in stale + ["mine.tmp"]:
        (out / name).write_text("left by a killed run")
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "2"]) == 0
    names = {p.name for p in out.iterdir()}
    assert not names & set(stale), f"stale temporary files should be removed: {names}"
    assert "mine.tmp" in names, "a .tmp file this script does not write is not ours to remove"


def test_a_failed_resume_leaves_the_log_byte_identical(text_file, tmp_path):
    out = _prepared_run(text_file, tmp_path)
    log_before = (out / "log.jsonl").read_bytes()
    other = tmp_path / "other.txt"
    other.write_text(synthetic_text().upper() + "#%", encoding="utf-8")
    rc = tm.main(["--resume", out / "last.npz", "--data", other, "--quiet", "--no-progress"])
    assert rc == 2 and (out / "log.jsonl").read_bytes() == log_before


def test_a_resume_skips_a_corrupted_log_line_with_a_warning(text_file, tmp_path, capsys):
    out = _prepared_run(text_file, tmp_path)
    with open(out / "log.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 3, "chars": "x"}\n{"kind": "tra')
    assert tm.main(["--resume", out / "last.npz", "--data", text_file, "--max-steps", "12", "--quiet",
                    "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped") == 2 and "line" in err, f"each bad line gets a one-line warning: {err}"
    runlog_entries = read_log(out)
    assert [e["step"] for e in runlog_entries if e["kind"] == "end"] == [12]


def test_resume_reads_only_the_data_the_user_names(text_file, tmp_path):
    """A checkpoint's stored data path is not trusted: it could name any local file."""
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 50, encoding="utf-8")
    ck = checkpoints.load_checkpoint(_prepared_run(text_file, tmp_path) / "last.npz")
    crafted = checkpoints.save_checkpoint(tmp_path / "crafted.npz", ck["params"], ck["opt_state"], ck["chars"],
                                  ck["hidden"], {**ck["meta"], "config": {**ck["meta"]["config"],
                                                                          "data": str(secret)}}, ck["rng"])
    proc = run_script("--resume", crafted, "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "--data", "a checkpoint whose data is a file outside the repository")
    assert "x:0:0" not in proc.stderr and "secret" not in proc.stderr, f"the file must not be read: {proc.stderr}"


def test_a_resume_of_a_known_corpus_reads_the_verified_copy_never_the_stored_path(shakespeare_path, tmp_path,
                                                                                    monkeypatch, capsys):
    """Only the file name of a known corpus counts (data.download.known_corpus); the text then comes from
    the verified copy in data/, so a planted file of that name elsewhere is never read. And the run's
    one-sentence first line comes first."""
    planted = tmp_path / "elsewhere" / shakespeare_path.name
    planted.parent.mkdir()
    planted.write_text("root:x:0:0:root:/root:/bin/bash\n" * 50, encoding="utf-8")   # another vocabulary
    out = tmp_path / "run"
    assert tm.main([*SMALL, "--data", shakespeare_path, "--out", out, "--max-steps", "2", "--eval-every", "0"]) == 0
    ck = checkpoints.load_checkpoint(out / "last.npz")
    checkpoints.save_checkpoint(out / "last.npz", ck["params"], ck["opt_state"], ck["chars"], ck["hidden"],
                                {**ck["meta"], "config": {**ck["meta"]["config"], "data": str(planted)}}, ck["rng"])
    monkeypatch.setattr(tm, "DATA_DIR", shakespeare_path.parent)     # data/, or the tests' verified copy
    capsys.readouterr()
    assert tm.main(["--resume", out / "last.npz", "--max-steps", "3", "--no-progress"]) == 0, \
        "the resume should read the verified corpus (the planted file's vocabulary would be refused)"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"Continuing {out / 'last.npz'} from step 2: training"), \
        f"the run's first line comes first: {lines[:2]}"
    assert lines[1].startswith(f"data: {shakespeare_path} (the checkpoint's corpus"), lines[1]
    assert read_log(out)[-1]["kind"] == "end" and read_log(out)[-1]["step"] == 3
    monkeypatch.setattr(tm, "DATA_DIR", tmp_path / "elsewhere")       # the control: the planted file, read, is refused
    assert tm.main(["--resume", out / "last.npz", "--max-steps", "4", "--no-progress", "--quiet"]) == 2
    assert "vocabulary" in capsys.readouterr().err


def test_settings_too_large_for_memory_are_refused_before_allocating(text_file, tmp_path):
    proc = run_script("--data", text_file, "--out", tmp_path / "o", "--batch-size", "100000", "--seq-length",
                      "100000", "--no-progress", cwd=tmp_path)                  # about 10 TB
    assert_one_line_error(proc, "GB", "--batch-size 100000 --seq-length 100000")
    assert proc.returncode == 2 and not (tmp_path / "o").exists()
    proc = run_script("--data", text_file, "--hidden-size", "1e12", cwd=tmp_path)
    assert_one_line_error(proc, "--hidden-size", "--hidden-size 1e12")
    with pytest.raises(tm.UserError, match="memory"):
        tm.train(tm.resolve_config(data=str(text_file), out=str(tmp_path / "o"), batch_size=100_000,
                                   seq_length=100_000), quiet=True)
    with pytest.raises(tm.UserError, match="checkpoints of about 160,1.. MB in memory"):
        tm.train(tm.resolve_config(data=str(text_file), out=str(tmp_path / "o"), hidden_size=100_000), quiet=True)
    assert not (tmp_path / "o").exists()
    c = tm.resolve_config(hidden_size=100, batch_size=2, seq_length=5, optimizer="adam", ema=0.9, dtype="float64")
    n = 2 * 100 * 10 + 100 * 100 + 100 + 10
    step = 8 * (6 * 100 * 2 + tm.STEP_ARRAYS[False] * 10 * 5 * 2)
    assert tm.memory_needed(c, 10) == 8 * 5 * n + 8 * n + 2 * step, \
        "weights, gradients, two Adam moments, the average and the float64 draw at initialisation; one " \
        "window's hidden states and (V, T*B) arrays, and as much again of freed memory kept for reuse"


def test_distill_is_announced_stored_and_counted_in_memory(text_file, tmp_path, capsys):
    out = tmp_path / "d"
    assert tm.main([*SMALL[:-2], "--no-progress", "--data", text_file, "--out", out, "--max-steps", "3",
                    "--distill", "0.3"]) == 0
    assert "teacher: a 7-gram" in capsys.readouterr().out, "a distilled run says where its teacher came from"
    assert read_log(out)[0]["distill"] == 0.3
    ck = checkpoints.load_checkpoint(out / "last.npz")
    assert ck["meta"]["config"]["distill"] == 0.3, "the checkpoint keeps the setting, so a resume keeps it"
    c = tm.resolve_config()
    assert (tm.memory_needed(dict(c, distill=0.3), 65, 1000) - tm.memory_needed(c, 65, 1000)) >= 4 * 1000 * 65, \
        "memory_needed: --distill adds the teacher's float32 table, one row of V per training character"
    for bad in ("1", "-0.1", "nan"):
        proc = run_script("--data", text_file, "--out", tmp_path / "x", "--distill", bad, cwd=tmp_path)
        assert_one_line_error(proc, "--distill", f"--distill {bad}")
        assert not (tmp_path / "x").exists()


def test_ngram_prior_is_announced_scored_as_the_product_stored_and_counted(text_file, tmp_path, capsys):
    out = tmp_path / "p"
    assert tm.main([*SMALL[:-2], "--no-progress", "--data", text_file, "--out", out, "--max-steps", "3",
                    "--ngram-prior", "0.4"]) == 0
    printed = capsys.readouterr().out
    assert f"of {tm.PRIOR_FOLDS} parts" in printed, "a partner run says where its teacher came from"
    assert "(RNN x 7-gram^0.4, renormalised)" in printed, "the validation line says it scores the product"
    assert read_log(out)[0]["ngram_prior"] == 0.4
    ck = checkpoints.load_checkpoint(out / "last.npz")
    assert ck["meta"]["config"]["ngram_prior"] == 0.4, "the checkpoint keeps the setting, so a resume keeps it"
    text = Path(text_file).read_text()
    chars = rnn.build_vocab(text)
    train_ids, val_ids = rnn.train_val_split(rnn.encode(text, chars), 0.1)
    q = np.exp(ngram.NGram(7).fit(train_ids, len(chars)).logprob_table(val_ids))
    want = rnn.evaluate(ck["params"], val_ids, prior=(0.4, q))["nats"]
    logged = [r for r in read_log(out) if r["kind"] == "val"][-1]["val_loss"]
    assert logged == pytest.approx(want, rel=1e-5), \
        "the logged validation loss is the RNN x the 7-gram of the whole training split, at the trained weight"
    c = tm.resolve_config()
    assert tm.memory_needed(dict(c, ngram_prior=0.4), 65, 1000, 100) - tm.memory_needed(c, 65, 1000, 100) >= \
        4 * 1100 * 65, "memory_needed: --ngram-prior adds float32 tables for the training and validation texts"
    for bad in ("1.5", "-0.1", "nan"):
        proc = run_script("--data", text_file, "--out", tmp_path / "x", "--ngram-prior", bad, cwd=tmp_path)
        assert_one_line_error(proc, "--ngram-prior", f"--ngram-prior {bad}")
        assert not (tmp_path / "x").exists()
    proc = run_script("--data", text_file, "--out", tmp_path / "x", "--ngram-prior", "0.4", "--distill", "0.3",
                      cwd=tmp_path)
    assert_one_line_error(proc, "choose one", "--ngram-prior with --distill")
    proc = run_script("--resume", out / "last.npz", "--data", text_file, "--ngram-prior", "0.5", cwd=tmp_path)
    assert_one_line_error(proc, "ngram-prior", "a resume that changes --ngram-prior")
    capsys.readouterr()
    assert tm.main(["--ngram", "--data", text_file, "--out", tmp_path / "ng", "--orders", "3",
                    "--checkpoint", out / "last.npz"]) == 0
    assert "trained with --ngram-prior 0.4" in capsys.readouterr().out, \
        "--ngram says a partner RNN's own number is not the one to read"


def test_ctrl_c_at_any_moment_of_the_start_is_one_line_and_130(tmp_path):
    for delay in (0.0, 0.05, 0.1, 0.2, 0.4):
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "--help"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        # Interrupted before the script's first statement ran (during the interpreter's start-up,
        # "Fatal Python error", or as the module's frame begins, "line 0"): no code of the script
        # could catch it. Its first statement installs the handler, so any later line is a bug.
        if err.strip().endswith("KeyboardInterrupt") and not re.search(
                re.escape(SCRIPT.name) + r"\", line [1-9]\d*, in", err):
            continue
        assert "Traceback" not in err, f"Ctrl-C {delay}s after start printed a traceback:\n{err}"
        assert proc.returncode in (0, 130, -signal.SIGINT), f"{delay}s: exit status {proc.returncode}: {err}"
        assert len(err.strip().splitlines()) <= 1, f"{delay}s: expected at most one line, got:\n{err}"


# -----------------------------------------------------------------------------
# More bad input: each names the flag
# -----------------------------------------------------------------------------

def test_negative_seed_names_the_flag(text_file, tmp_path, checkpoint):
    proc = run_script("--data", text_file, "--out", tmp_path / "o", "--seed", "-1", cwd=tmp_path)
    assert_one_line_error(proc, "--seed", "--seed -1")
    proc = run_script("--sample-only", "--checkpoint", checkpoint, "--seed", "-1", cwd=tmp_path)
    assert_one_line_error(proc, "--seed", "--sample-only --seed -1")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_prime_file_that_is_not_a_regular_file(checkpoint, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, keyword in [(tmp_path, "is a folder"), (fifo, "not a regular file"),
                          ("/dev/zero", "not a regular file"), (tmp_path / "nope.txt", "no such file")]:
        proc = run_script("--sample-only", "--checkpoint", checkpoint, "--prime-file", path, cwd=tmp_path,
                          timeout=60)
        assert_one_line_error(proc, keyword, f"--prime-file {path}")


def test_sample_only_refuses_training_flags(checkpoint, tmp_path):
    proc = run_script("--sample-only", "--checkpoint", checkpoint, "--resume", checkpoint, "--hidden-size", "9",
                      cwd=tmp_path)
    assert_one_line_error(proc, "--resume", "--sample-only with training flags")
    assert "--hidden-size" in proc.stderr


def test_empty_out_is_refused(text_file, tmp_path):
    proc = run_script("--data", text_file, "--out", "", cwd=tmp_path)
    assert_one_line_error(proc, "--out", "--out ''")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([text_file.name])


def test_a_full_disk_is_one_line_and_exit_2(text_file, tmp_path, monkeypatch, capsys):
    def full(path, *a, **k):
        raise OSError(28, "No space left on device", str(path))
    monkeypatch.setattr(checkpoints, "save_checkpoint", full)
    assert tm.main([*SMALL, "--data", text_file, "--out", tmp_path / "o", "--max-steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left" in err and ".npz" in err, err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_one_line_and_exit_2(text_file, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        proc = run_script(*SMALL, "--data", text_file, "--out", out, "--max-steps", "3", cwd=tmp_path)
        assert_one_line_error(proc, "permission", "a read-only --out")
        assert proc.returncode == 2
    finally:
        out.chmod(0o755)


def test_a_read_only_out_folder_simulated_is_one_line_and_exit_2(text_file, tmp_path, monkeypatch, capsys):
    """The same as above where chmod does not stop writes (root): the OS refuses the lock file."""
    real_open = os.open

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    assert tm.main([*SMALL, "--data", text_file, "--out", tmp_path / "ro", "--max-steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err and "Traceback" not in err, err


def test_a_text_over_the_size_limit_is_refused_before_reading_with_the_flag_to_raise_it(text_file, tmp_path, capsys):
    size = text_file.stat().st_size                          # a few KB; a limit of 1 KB refuses it
    code = tm.main(["--data", text_file, "--out", tmp_path / "o", "--max-text-mb", "0.001", "--max-steps", "2",
                    "--no-progress"])
    err = capsys.readouterr().err
    assert code == tm.EXIT_USAGE and err.count("\n") == 1 and "--max-text-mb" in err, err
    assert not (tmp_path / "o").exists(), "nothing may be written for a refused text"
    assert tm.main(["--data", text_file, "--out", tmp_path / "o", "--max-text-mb", str(size / 1e6 * 2),
                    "--max-steps", "2", "--eval-every", "2", "--no-progress", "--quiet"]) == 0
    for bad in ("0", "-1", "nan"):
        assert tm.main(["--data", text_file, "--max-text-mb", bad]) == tm.EXIT_USAGE
        assert "--max-text-mb" in capsys.readouterr().err


# -----------------------------------------------------------------------------
# Nothing lost, nothing hangs: another run's folder, every signal, sizes with a limit
# -----------------------------------------------------------------------------

def _leftovers(folder: Path) -> list:
    """Temporary files left in `folder` (a killed write's .name.*.tmp)."""
    return sorted(p.name for p in folder.rglob("*.tmp")) if folder.exists() else []


def test_a_resume_never_writes_into_another_runs_folder(text_file, tmp_path, capsys):
    """--resume a/last.npz --out b, b holding another run: one line, exit 2, both runs untouched. A
    resume writes into its checkpoint's folder, or a new or empty one; --overwrite replaces the other run."""
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "5"]) == 0
    before = snapshot(tmp_path)
    proc = run_script("--resume", a / "last.npz", "--data", text_file, "--out", b, "--max-steps", "8",
                      "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "another run", "--resume into another run's folder")
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    assert snapshot(tmp_path) == before, "a refused resume changes nothing, in either run's folder"

    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new", empty):
        assert tm.main(["--resume", a / "last.npz", "--data", text_file, "--out", out, "--max-steps", "8",
                        "--quiet", "--no-progress"]) == 0
        log = read_log(out)
        assert log[0]["kind"] == "config" and [e["step"] for e in log if e["kind"] == "end"] == [8], \
            "the new folder's log is the checkpoint's run's log, cut back to its step, then the resumed run"
    runs = lambda snap: {k: v for k, v in snap.items() if k.startswith(("a/", "b/"))}   # noqa: E731
    assert runs(snapshot(tmp_path)) == runs(before)
    assert tm.main(["--resume", a / "last.npz", "--data", text_file, "--out", b, "--max-steps", "8", "--overwrite",
                    "--quiet", "--no-progress"]) == 0, "--overwrite replaces the other run"
    assert json.loads((b / "metrics.json").read_text())["steps"] == 8
    assert tm.main(["--resume", a / "last.npz", "--data", text_file, "--max-steps", "8", "--quiet",
                    "--no-progress"]) == 0, "a resume in its own folder needs no flag"
    assert not _leftovers(tmp_path)


def test_stop_signals_let_a_write_finish_and_stop_once():
    """StopSignals' rules, its handler called directly: outside training the first signal stops the
    command and later ones change nothing; while training the first asks for a stop after the step, a
    second stops at once, but never inside a write, and not at all once the run is finishing."""
    s = tm.StopSignals()
    with pytest.raises(tm.Interrupted) as e:
        s._handler(signal.SIGTERM, None)
    assert e.value.status == 128 + signal.SIGTERM and isinstance(e.value, KeyboardInterrupt)
    s._handler(signal.SIGTERM, None)                 # its clean-up runs undisturbed

    s = tm.StopSignals()
    with s.training():
        s._handler(signal.SIGHUP, None)
        assert s.requested and s.first == signal.SIGHUP, "the first signal asks the loop to stop after the step"
        with pytest.raises(tm.Interrupted) as e:
            with s.writing():
                for _ in range(30):
                    s._handler(signal.SIGINT, None)  # a storm while a checkpoint is written
                written = True
        assert written and e.value.status == 128 + signal.SIGHUP, "the write finishes, then the run stops"
    s = tm.StopSignals()
    with s.training():
        s._handler(signal.SIGINT, None)
        s.hold()                                     # the last save and metrics.json
        for _ in range(30):
            s._handler(signal.SIGINT, None)
        with s.writing():
            pass                                     # nothing raised: the run finishes its files


def _training_child(text_file, out, *extra):
    return subprocess.Popen([sys.executable, str(SCRIPT), *SMALL, "--data", str(text_file), "--out", str(out),
                             "--max-steps", "10000000", "--log-every", "1", *extra],
                            cwd=out.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))


def _communicate(proc, timeout: float = 60) -> str:
    """The child's stderr once it has exited; a child still running after `timeout` is killed and fails the test."""
    try:
        return proc.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the run did not stop within {timeout} s of the signals")


def _assert_stopped_cleanly(err: str, out: Path, what: str) -> None:
    """One line, no traceback, no temporary file, and every checkpoint there loads."""
    assert "Traceback" not in err, f"{what}: a traceback:\n{err}"
    assert len(err.strip().splitlines()) <= 1, f"{what}: expected one line on stderr, got:\n{err}"
    assert not _leftovers(out), f"{what}: temporary files left behind: {_leftovers(out)}"
    for name in ("last.npz", "best.npz"):
        if (out / name).exists():
            try:
                checkpoints.load_checkpoint(out / name)
            except checkpoints.CheckpointError as e:
                pytest.fail(f"{what}: {name} no longer loads: {e}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_stop_a_run_as_ctrl_c_does(text_file, tmp_path, signum):
    """kill, timeout and a closed terminal: the run stops after the step, saves last.npz, exits 128 + n."""
    out = tmp_path / "out"
    proc = _training_child(text_file, out, "--eval-every", "0")
    _wait_for_train_line(proc, out / "log.jsonl")
    proc.send_signal(signum)
    err = _communicate(proc)
    assert proc.returncode == 128 + signum, f"exit status {proc.returncode}, expected 128 + {signum}: {err}"
    _assert_stopped_cleanly(err, out, signal.Signals(signum).name)
    assert signal.Signals(signum).name in err and "--resume" in err and "last.npz" in err, err
    step = checkpoints.load_checkpoint(out / "last.npz")["meta"]["step"]
    assert step > 0 and read_log(out)[-1] == {**read_log(out)[-1], "kind": "end", "reason": "interrupted",
                                              "step": step}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_storm_of_signals_while_saving_leaves_whole_checkpoints_and_one_line(text_file, tmp_path, signum):
    """30 signals 7 ms apart while checkpoints of a few hundred KB are written every step: the write in
    progress finishes, the run stops with 128 + n, no temporary file is left."""
    out = tmp_path / "out"
    proc = _training_child(text_file, out, "--hidden-size", "160", "--eval-every", "1")
    _wait_for_train_line(proc, out / "log.jsonl")
    deadline = time.time() + 60
    while not (out / "last.npz").exists() and time.time() < deadline:
        time.sleep(0.005)
    _storm(proc, signum)
    err = _communicate(proc)
    assert proc.returncode == 128 + signum, f"exit status {proc.returncode}: {err}"
    _assert_stopped_cleanly(err, out, f"a storm of {signal.Signals(signum).name}")
    assert checkpoints.load_checkpoint(out / "last.npz")["meta"]["step"] >= 1


def _storm(proc, signum, count: int = 30, gap: float = 0.007) -> None:
    """Send `count` signals `gap` seconds apart, as a held Ctrl-C or a looping kill does."""
    for _ in range(count):
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            break
        time.sleep(gap)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_storm_of_signals_from_the_first_millisecond_prints_no_traceback(text_file, tmp_path, signum):
    """The storm starts as the process does, or a little later (while it imports, reads, trains)."""
    for k, delay in enumerate((0.0, 0.1, 0.4, 1.0)):
        out = tmp_path / f"out{k}"
        proc = _training_child(text_file, out, "--eval-every", "1")
        time.sleep(delay)
        _storm(proc, signum)
        err = _communicate(proc)
        what = f"{signal.Signals(signum).name} storm {delay}s after start"
        if signum == signal.SIGINT and err.strip().endswith("KeyboardInterrupt") and not re.search(
                re.escape(SCRIPT.name) + r"\", line [1-9]\d*, in", err):
            continue                                 # before the script's first statement: nothing can catch it
        assert proc.returncode in (128 + signum, -signum), f"{what}: exit status {proc.returncode}: {err}"
        _assert_stopped_cleanly(err, out, what)


def _crafted(path: Path, dest: Path, change) -> Path:
    """A copy of the checkpoint at `path` with change(meta) applied, written as np.savez writes one (as
    someone would craft it: save_checkpoint refuses to write what would not load back)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(dest, **arrays)
    return dest


CRAFTED_PROGRESS = {
    "step 2**63": (lambda m: m.update(step=2**63), "step"),
    "step 1e30": (lambda m: m.update(step=1e30), "step"),
    "max_steps 1e30": (lambda m: m["config"].update(max_steps=1e30), "max_steps"),
    "max_steps 10**12": (lambda m: m["config"].update(max_steps=10**12), "max_steps"),
    "sample_length 1e9": (lambda m: m["config"].update(sample_length=10**9), "sample_length"),
    "sample_length 1e6, every step": (lambda m: m["config"].update(sample_length=10**6, sample_every=1),
                                      "sample_length"),
    "chars_per_epoch 10**400": (lambda m: m["config"].update(chars_per_epoch=10**400), "chars_per_epoch"),
}


def test_crafted_progress_values_are_refused_at_once(text_file, tmp_path):
    """A checkpoint whose counts would make the resume run for ever is one line, exit 2, nothing changed."""
    run = _prepared_run(text_file, tmp_path)
    before = snapshot(run)
    for case, (change, keyword) in CRAFTED_PROGRESS.items():
        crafted = _crafted(run / "last.npz", tmp_path / "crafted.npz", change)
        proc = run_script("--resume", crafted, "--data", text_file, "--out", run, "--no-progress", cwd=tmp_path,
                          timeout=60)
        assert_one_line_error(proc, keyword, f"--resume of a checkpoint with {case}")
        assert proc.returncode == 2 and snapshot(run) == before, f"{case}: the run must be untouched"


def test_a_checkpoint_without_a_setting_is_one_line_and_the_flag_fills_it(text_file, tmp_path):
    run = _prepared_run(text_file, tmp_path)
    crafted = _crafted(run / "last.npz", run / "old.npz", lambda m: m["config"].pop("learning_rate"))
    before = snapshot(run)
    proc = run_script("--resume", crafted, "--data", text_file, "--no-progress", cwd=tmp_path)
    assert_one_line_error(proc, "--learning-rate", "--resume of a checkpoint whose settings lack learning_rate")
    assert proc.returncode == 2 and snapshot(run) == before
    assert tm.main(["--resume", crafted, "--data", text_file, "--learning-rate", "0.002", "--max-steps", "12",
                    "--quiet", "--no-progress"]) == 0


@pytest.mark.parametrize("flags, keyword", [
    (["--sample-only", "--length", "1e9"], "10,000"),
    (["--sample-only", "--length", "10001"], "10,000"),
    (["--sample-length", "1000000000"], "10,000"),
    (["--max-steps", str(10**12)], "--max-steps"),
    (["--max-steps", "1e30"], "--max-steps"),
    (["--time-budget", "1e30"], "--time-budget"),
    (["--seed", str(2**64)], "--seed"),
    (["--hidden-size", str(10**6)], "--hidden-size"),
    (["--max-text-mb", "1e30"], "--max-text-mb"),
    (["--threads", str(10**20)], "--threads"),
])
def test_sizes_beyond_their_stated_limit_are_one_line_before_any_work(text_file, checkpoint, tmp_path, flags, keyword):
    args = [*flags, "--checkpoint", checkpoint] if "--sample-only" in flags else \
        [*flags, "--data", text_file, "--out", tmp_path / "o"]
    proc = run_script(*args, cwd=tmp_path, timeout=60)
    assert_one_line_error(proc, keyword, " ".join(flags))
    assert proc.returncode == 2 and not (tmp_path / "o").exists()


# Runs train_minimal.py as __main__ and, at exit, writes the process's own peak resident memory
# (VmHWM, in kB). Not ru_maxrss: on Linux a child spawned from a large test process (an xdist
# worker that has run other tests) reports at least that process's peak.
_PEAK_WRAPPER = """
import atexit, os, runpy, sys
out = sys.argv.pop(1)
def report():
    with open('/proc/self/status') as f, open(out, 'w') as o:
        o.write(next(line.split()[1] for line in f if line.startswith('VmHWM')))
atexit.register(report)
sys.argv = sys.argv[1:]                       # the script and its flags, as python SCRIPT ... sees them
sys.path[0] = os.path.dirname(sys.argv[0])
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def _run_with_peak_memory(args, cwd: Path, logs: Path, timeout: float = 120) -> tuple:
    """(exit status, stdout, stderr, peak resident memory in bytes) of train_minimal.py run as a user would."""
    logs.mkdir(exist_ok=True)
    peak_file = logs / "peak_kb"
    proc = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, str(peak_file), str(SCRIPT), *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert peak_file.exists(), f"the run wrote no peak memory (exit status {proc.returncode}): {proc.stderr}"
    return proc.returncode, proc.stdout, proc.stderr, int(peak_file.read_text()) * 1024


def _many_characters(n_distinct: int, length: int) -> str:
    """A text of `length` characters using `n_distinct` distinct ones (CJK and beyond, no surrogates)."""
    points = [c for c in range(0x4E00, 0x4E00 + n_distinct + 0x800) if not 0xD800 <= c <= 0xDFFF][:n_distinct]
    rng = np.random.default_rng(3)
    ids = np.concatenate([np.arange(n_distinct), rng.integers(0, n_distinct, max(0, length - n_distinct))])
    return "".join(map(chr, np.asarray(points)[ids]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory from /proc, Linux")
def test_a_vocabulary_of_70000_characters_is_refused_at_start_in_bounded_memory(tmp_path, monkeypatch, capsys):
    """The default preset on a text of 70,000 distinct characters once trained at a 10 GB peak; its
    checkpoints would be too large to load back: one line with the numbers, before anything is allocated."""
    data = tmp_path / "many.txt"
    data.write_text(_many_characters(70_000, 100_000), encoding="utf-8")
    out = tmp_path / "o"
    status, _, err, peak = _run_with_peak_memory(["--data", data, "--out", out, "--no-progress"], tmp_path,
                                                 tmp_path / "logs")
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "70,000 characters" in err and "MB" in err and "checkpoint" in err, err
    assert peak < 250e6, f"a refused run peaked at {peak / 1e6:.0f} MB (67 MB measured here)"
    assert not out.exists()
    # a smaller model makes small checkpoints; on a machine of 3 GB its step arrays, (V, T*B) each, do not fit
    monkeypatch.setattr(tm, "physical_memory", lambda: 3_000_000_000)
    assert tm.main(["--data", data, "--out", out, "--hidden-size", "64", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "70,000 characters" in err and "GB" in err and "3 GB" in err, err
    assert not out.exists()


MEASURE_PEAK = """
import json, os, sys
import train_minimal as tm
config = tm.resolve_config("default", data=sys.argv[1], out=sys.argv[2], max_steps=3, eval_every=0, sample_every=0)
text = open(sys.argv[1], encoding="utf-8").read()
chars = sorted(set(text))
n_val = len(text) - int(len(text) * (1 - config["val_fraction"]))
need = tm.memory_needed(config, len(chars), len(text) - n_val, n_val)
del text
rss = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) * 1024
tm.setup_numpy(1)
before = rss()
tm.train(config, quiet=True, progress=False)
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
print(json.dumps({"used": peak - before, "need": need}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_needed_is_an_upper_bound_of_a_large_vocabularys_peak(tmp_path):
    """2,000 distinct characters: the (V, T*B) arrays of a step and the (V, C) arrays of a validation
    dominate the memory, and memory_needed counts them."""
    data = tmp_path / "many.txt"
    data.write_text(_many_characters(2_000, 100_000), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", MEASURE_PEAK, str(data), str(tmp_path / "o")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["used"] <= r["need"], \
        f"memory_needed says {r['need'] / 1e6:.0f} MB, the run took {r['used'] / 1e6:.0f} MB more than at its start"
    assert r["used"] > 100e6, "the test's vocabulary should make the run large enough to measure"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory from /proc, Linux")
def test_a_prime_file_of_5_mb_runs_in_bounded_memory_and_a_larger_one_is_one_line(checkpoint, tmp_path):
    chars = checkpoints.load_checkpoint(checkpoint)["chars"]
    prime = tmp_path / "prime.txt"
    unit = "".join(chars).replace("\n", "") + "\n"
    prime.write_text(unit * (5_000_000 // len(unit)), encoding="utf-8")
    status, out, err, peak = _run_with_peak_memory(
        ["--sample-only", "--checkpoint", checkpoint, "--prime-file", prime, "--length", "50"], tmp_path,
        tmp_path / "logs", timeout=300)
    assert status == 0, err
    assert out.startswith(unit) and len(out) == len(prime.read_text(encoding="utf-8")) + 50 + 1
    assert peak < 250e6, f"priming 5 MB peaked at {peak / 1e6:.0f} MB (73 MB measured here; it needs only " \
                         "the last hidden state)"
    with open(prime, "ab") as f:
        f.truncate(tm.PRIME_MAX_BYTES + 1)
    proc = run_script("--sample-only", "--checkpoint", checkpoint, "--prime-file", prime, cwd=tmp_path)
    assert_one_line_error(proc, f"at most {tm.PRIME_MAX_BYTES / 1e6:g} MB", "--prime-file over the limit")
