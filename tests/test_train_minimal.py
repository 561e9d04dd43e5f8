"""Tests for train_minimal.py: the shell front end to implementation.py.

Normal paths run in-process through main([...]) on a small synthetic text;
bad inputs, Ctrl-C and SIGKILL run the script as a subprocess, exactly as a
user would, and check the exit status and the one-line message.
"""

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import implementation as rnn
import train_minimal as tm

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train_minimal.py"

# A tiny model that trains in a blink; quiet, no progress bar.
SMALL = ["--hidden-size", "16", "--batch-size", "2", "--seq-length", "8", "--quiet", "--no-progress"]


def synthetic_text(n_lines=160, seed=0) -> str:
    """A few KB of play-like text from a fixed random source (not symmetric, several speakers)."""
    r = random.Random(seed)
    speakers = ["ALICE", "BOB", "CAROL"]
    words = "the cat sat on a mat and dog ran far away from home to see my good lord".split()
    lines = []
    for _ in range(n_lines):
        n = r.randint(3, 9)
        lines.append(f"{r.choice(speakers)}:\n" + " ".join(r.choice(words) for _ in range(n)) + r.choice(".,!?") + "\n")
    return "\n".join(lines)


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


def test_prints_the_resolved_settings_at_start(text_file, tmp_path, capsys):
    rc = tm.main([*SMALL[:-2], "--no-progress", "--data", text_file, "--out", tmp_path / "o", "--max-steps", "2"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "settings:" in out and "'hidden_size': 16" in out, f"the resolved settings should be printed:\n{out}"


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

    best = rnn.load_checkpoint(out / "best.npz")
    last = rnn.load_checkpoint(out / "last.npz")
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
    assert rnn.load_checkpoint(out / "best.npz")["meta"]["step"] == metrics["best_step"]
    assert metrics["best_val_loss"] == pytest.approx(min(e["val_loss"] for e in val))


def test_cosine_schedule_decays_to_min_lr(text_file, tmp_path):
    out = tmp_path / "out"
    assert tm.main([*SMALL, "--data", text_file, "--out", out, "--max-steps", "20", "--log-every", "1",
                    "--lr-schedule", "cosine", "--learning-rate", "0.01", "--min-lr", "0.001"]) == 0
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
    "default": ["--preset", "default"],
    "textbook": ["--preset", "textbook"],
    # 16 streams of 32: an epoch of the test text is ~15 steps, so 40 steps start new epochs at random offsets
    "offsets+ema": ["--preset", "fast", "--time-budget", "600", "--lr-schedule", "constant",
                    "--random-offsets", "--ema", "0.9", "--batch-size", "16", "--seq-length", "32"],
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

    a, b = rnn.load_checkpoint(one / "last.npz"), rnn.load_checkpoint(two / "last.npz")
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
    ck = rnn.load_checkpoint(out / "last.npz")
    step = ck["meta"]["step"]
    assert step > 0
    assert read_log(out)[-1] == {**read_log(out)[-1], "kind": "end", "reason": "interrupted", "step": step}
    # and the run continues from there
    assert tm.main(["--resume", out / "last.npz", "--data", text_file, "--max-steps", str(step + 3), "--quiet",
                    "--no-progress"]) == 0
    assert rnn.load_checkpoint(out / "last.npz")["meta"]["step"] == step + 3


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
                ck = rnn.load_checkpoint(out / name)
            except rnn.CheckpointError as e:
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

    The default preset for 200 steps (a few seconds): the validation loss falls below 3.0 nats/char,
    under both ln 65 = 4.17 (a uniform guess) and 3.31 (the entropy of the letter frequencies alone),
    so the model is already using context.
    """
    data = tmp_path / "data" / "tiny_shakespeare.txt"           # missing: fetched from the mirror
    out = tmp_path / "out"
    proc = run_script("--data", data, "--out", out, "--max-steps", "200", "--eval-every", "100",
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
