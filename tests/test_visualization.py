"""Tests for visualization.py: the numbers behind every figure, and the command line.

The figures are not compared pixel by pixel. Each test checks that what a figure
draws (fig.data, or the arrays read back from its Axes) equals what
implementation.py computes for the same model and text. The model is a tiny RNN
trained here for a few hundred steps on a synthetic text with quotes, brackets and
newlines, so its hidden units have something to track.
"""

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import analysis as an
import implementation as rnn
from ngram import NGram
import checkpoints
from helpers import synthetic_text
import runlog
import visualization as viz
from data import download

HIDDEN, INIT_SCALE, SEED = 24, 0.05, 3



@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Train a tiny model, save its checkpoint and a training log in train_minimal.py's format."""
    folder = tmp_path_factory.mktemp("vizrun")
    text = synthetic_text()
    data = folder / "synthetic.txt"
    data.write_text(text, encoding="utf-8")
    chars = rnn.build_vocab(text)
    ids = rnn.encode(text, chars)
    train_ids, val_ids = rnn.train_val_split(ids, 0.1)
    rng = np.random.default_rng(SEED)
    params = rnn.init_params(len(chars), HIDDEN, rng, np.float64, INIT_SCALE)
    trainer = rnn.Trainer(params, train_ids, batch_size=8, seq_length=16, learning_rate=1e-2,
                          optimizer="adam", clip=5.0)
    config = {"data": str(data), "hidden_size": HIDDEN, "init_scale": INIT_SCALE, "seed": SEED,
              "vocab_size": len(chars), "train_chars": len(train_ids), "val_chars": len(val_ids),
              "chars_per_epoch": trainer.streams.chars_per_epoch, "val_fraction": 0.1, "clip": 5.0}
    log = [{"kind": "config", **config}]
    stamp = lambda: {"step": trainer.step_count, "epoch": trainer.epoch, "chars": trainer.chars_seen,
                     "time": 0.0}
    for step in range(300):
        if step % 100 == 0:
            log.append({"kind": "sample", **stamp(), "temperature": 1.0,
                        "text": rnn.sample_text(params, chars, "\n", 80, 1.0, np.random.default_rng(step))})
        if step % 50 == 0:
            ev = rnn.evaluate(params, val_ids, 4, 64)
            log.append({"kind": "val", **stamp(), "val_loss": ev["nats"], "val_bits": ev["bits"]})
        loss = trainer.step(measure=True)
        if step % 5 == 0:
            log.append({"kind": "train", **stamp(), "loss": loss, "smooth_loss": trainer.smooth_loss,
                        "lr": 1e-2, "grad_norm": dict(trainer.grad_norms), "clip_frac": dict(trainer.clip_fractions)})
    log.append({"kind": "end", "reason": "max steps"})
    log_path = folder / "log.jsonl"
    with runlog.RunLogWriter(log_path, fresh=True) as writer:      # the schema train_minimal.py writes
        for e in log:
            writer.write(**e)
    ckpt = checkpoints.save_checkpoint(folder / "best.npz", params, trainer.opt_state, chars, trainer.h,
                               {**trainer.state(), "config": config}, rng)
    val_text = text[len(train_ids):]
    return {"folder": folder, "params": params, "chars": chars, "text": text, "val_text": val_text,
            "train_text": text[:len(train_ids)], "log_path": log_path, "log": log, "ckpt": ckpt,
            "config": config}


@pytest.fixture(scope="module")
def passage(run):
    """A stretch of validation text with a newline, quotes or brackets in it."""
    return run["val_text"][:90]


# -----------------------------------------------------------------------------
# The training log
# -----------------------------------------------------------------------------

def test_load_log_groups_entries_by_kind(run):
    log = viz.load_log(run["log_path"])
    for kind in ("train", "val", "sample"):
        want = [e for e in run["log"] if e["kind"] == kind]
        assert log[kind] == want, f"load_log: the {kind!r} entries differ from the lines written"
    assert log["config"]["hidden_size"] == HIDDEN
    assert log["end"] == {"kind": "end", "reason": "max steps"}


@pytest.mark.parametrize("content, expected", [
    (None, "training log not found"),
    ('{"kind": "config"}\n{"kind": "train", "step": 1, "chars": 10, "loss": 4.0}\n{"kind": "tra\n', "line 3"),
    ('{"kind": "config"}\n{"kind": "val", "step": 1, "chars": 10, "val_loss": 4.0}\n', 'no "train" entries'),
    ('[1, 2]\n', 'line 1: expected a JSON object with a "kind"'),
    ('{"kind": "train", "step": 1, "loss": 4.0}\n', "line 1: a 'train' entry needs a 'chars' field"),
])
def test_load_log_errors_are_one_clear_line(tmp_path, content, expected):
    path = tmp_path / "log.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(viz.LogError) as e:
        viz.load_log(path)
    assert expected in str(e.value), f"load_log: expected {expected!r} in the error, got {e.value}"
    assert "\n" not in str(e.value)


def test_load_log_resumed_run_replaces_repeated_steps(tmp_path):
    lines = [{"kind": "train", "step": s, "chars": 10 * s, "loss": 1.0} for s in (1, 2, 3, 4)]
    lines += [{"kind": "train", "step": s, "chars": 10 * s, "loss": 2.0} for s in (3, 4, 5)]  # resumed at 2
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    log = viz.load_log(path)
    assert [(e["step"], e["loss"]) for e in log["train"]] == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0), (5, 2.0)]


def test_log_arrays_match_entries(run):
    a = viz.log_arrays(viz.load_log(run["log_path"]))
    train = [e for e in run["log"] if e["kind"] == "train"]
    val = [e for e in run["log"] if e["kind"] == "val"]
    np.testing.assert_array_equal(a["loss"], [e["loss"] for e in train])
    np.testing.assert_array_equal(a["chars"], [e["chars"] for e in train])
    np.testing.assert_array_equal(a["val_loss"], [e["val_loss"] for e in val])
    np.testing.assert_array_equal(a["grad_norm"]["Whh"], [e["grad_norm"]["Whh"] for e in train])
    np.testing.assert_array_equal(a["clip_frac"]["by"], [e["clip_frac"]["by"] for e in train])
    assert a["vocab_size"] == len(run["chars"])


# -----------------------------------------------------------------------------
# 1-2. Loss curves and gradient health
# -----------------------------------------------------------------------------

def test_smooth_is_a_debiased_moving_average():
    x = np.array([4.0, 3.0, 2.5, 2.0, 1.0])
    np.testing.assert_allclose(viz.smooth(np.full(7, 2.5), 0.9), 2.5, err_msg="smooth of a constant must be it")
    np.testing.assert_array_equal(viz.smooth(x, 0.0), x)
    s, want = 0.0, []
    for i, v in enumerate(x):
        s = 0.6 * s + 0.4 * v
        want.append(s / (1 - 0.6 ** (i + 1)))
    np.testing.assert_allclose(viz.smooth(x, 0.6), want)


@pytest.mark.parametrize("val, status, index", [
    ([3.0, 2.0, 1.5], "improving", 2),
    ([3.0, 1.5, 1.505], "levelled off", 1),
    ([3.0, 1.5, 1.7], "overfitting", 1),
])
def test_best_validation_marks_where_validation_stops_improving(val, status, index):
    best = viz.best_validation([10, 20, 30], val)
    assert (best["status"], best["index"], best["chars"]) == (status, index, [10, 20, 30][index])


def test_loss_curves_draw_the_logged_losses(run):
    a = viz.log_arrays(viz.load_log(run["log_path"]))
    fig = viz.loss_curves(a["chars"], a["loss"], a["val_chars"], a["val_loss"],
                          vocab_size=a["vocab_size"], chars_per_epoch=a["chars_per_epoch"])
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    np.testing.assert_array_equal(lines["training loss (smoothed)"].get_ydata(), viz.smooth(a["loss"]))
    np.testing.assert_array_equal(lines["validation loss (held-out text)"].get_ydata(), a["val_loss"])
    star = next(ln for label, ln in lines.items() if label.startswith("best validation"))
    assert star.get_ydata()[0] == a["val_loss"].min(), "the star must sit on the lowest validation loss"
    assert fig.data["ln_v"] == pytest.approx(math.log(len(run["chars"])))
    assert any(np.allclose(ln.get_ydata(), math.log(len(run["chars"]))) for ln in ax.get_lines()), \
        "loss_curves: no horizontal line at ln V"
    assert fig.data["loss"][0] == pytest.approx(math.log(len(run["chars"])), abs=0.3), \
        "the first logged loss of a fresh model should be near ln V"


def test_gradient_health_draws_the_logged_norms_and_clip_fractions(run):
    a = viz.log_arrays(viz.load_log(run["log_path"]))
    fig = viz.gradient_health(a["grad_step"], a["grad_norm"], a["clip_frac"])
    top, bottom = fig.axes[:2]
    for line in top.get_lines():
        name = line.get_label()[1:]                              # "dWhh" -> "Whh"
        np.testing.assert_array_equal(line.get_ydata(), a["grad_norm"][name])
    for line in bottom.get_lines():
        np.testing.assert_array_equal(line.get_ydata(), 100 * a["clip_frac"][line.get_label()[1:]])
    assert {ln.get_label() for ln in top.get_lines()} == {f"d{k}" for k in rnn.PARAM_NAMES}


# -----------------------------------------------------------------------------
# 3-4. The model reading a text: hidden states and predictions
# -----------------------------------------------------------------------------

@pytest.mark.parametrize("sort", [False, True])
def test_hidden_heatmap_shows_forward_hidden_states(run, passage, sort):
    fig = viz.hidden_heatmap(run["params"], run["chars"], passage, sort=sort)
    image = np.asarray(fig.axes[0].images[0].get_array())
    units = fig.data["units"]
    assert sorted(units) == list(range(HIDDEN)), "every hidden unit must appear exactly once"
    if not sort:
        np.testing.assert_array_equal(units, np.arange(HIDDEN))
    hs, _ = rnn.forward(run["params"], rnn.encode(passage, run["chars"]))
    np.testing.assert_array_equal(image, hs[1:, units, 0].T,
                                  err_msg="row i must be unit units[i], column t must be h_t after text[t]")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == [viz._show_char(c) for c in passage], "the characters must be written under the columns"


def test_next_char_probs_draws_the_probability_of_each_actual_next_char(run, passage):
    fig = viz.next_char_probs(run["params"], run["chars"], passage, k=4)
    ids = rnn.encode(passage, run["chars"])
    _, logp = rnn.forward(run["params"], ids)
    p = np.exp(logp[:, :, 0])
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    np.testing.assert_allclose(heights, p[np.arange(len(ids) - 1), ids[1:]])
    pos = fig.data["positions"]
    assert len(set(pos)) == len(pos) == 3
    for j, t in enumerate(pos):
        want = np.sort(p[t])[::-1][:4]
        np.testing.assert_allclose(fig.data["top_p"][j], want, err_msg=f"top-4 at position {t}")
        bars = [b.get_width() for b in fig.axes[1 + j].patches]
        np.testing.assert_allclose(bars[:4], want)


def test_next_char_probs_of_a_two_character_text_shows_its_one_prediction():
    chars = ["a", "b"]
    params = rnn.init_params(2, 4, np.random.default_rng(0), np.float64, 0.5)
    fig = viz.next_char_probs(params, chars, "ab")
    p = np.exp(rnn.forward(params, rnn.encode("ab", chars))[1][0, :, 0])      # (V,) after reading "a"
    assert fig.data["positions"] == [0], "one position has a next character; it is the only one to show"
    np.testing.assert_allclose(fig.data["p_next"], [p[1]])


def test_next_char_probs_rejects_a_position_without_a_next_char(run, passage):
    with pytest.raises(ValueError, match="position"):
        viz.next_char_probs(run["params"], run["chars"], passage, positions=[len(passage) - 1])


# -----------------------------------------------------------------------------
# 5. Temperature
# -----------------------------------------------------------------------------

def test_temperature_figure_shows_the_computed_samples(run):
    fig = viz.temperature_figure(run["params"], run["chars"], "the", temperatures=(0.5, 1.5),
                                 curve_temperatures=(1.0,), n=60, train_text=run["train_text"])
    assert list(fig.data["temperatures"]) == [0.5, 1.0, 1.5]
    entropy_line = next(ax for ax in fig.axes if ax.get_lines()).get_lines()[0]
    np.testing.assert_array_equal(entropy_line.get_ydata(), fig.data["entropy"])


# -----------------------------------------------------------------------------
# 6. Neuron view and feature-tracking units
# -----------------------------------------------------------------------------

def test_neuron_view_colours_each_char_by_the_units_activation(run, passage):
    unit = 5
    fig = viz.neuron_view(run["params"], run["chars"], passage, unit, k=5, width=40)
    hs, logp = rnn.forward(run["params"], rnn.encode(passage, run["chars"]))
    act = hs[1:, unit, 0]
    np.testing.assert_array_equal(fig.data["activation"], act)
    image = fig.axes[0].images[0].get_array()
    cmap = viz.colormaps[viz.ACT_CMAP]
    for t in (0, 17, 45, len(passage) - 1):
        row, col = (t // 40) * 7, t % 40
        np.testing.assert_allclose(image[row, col], cmap((act[t] + 1) / 2),
                                   err_msg=f"character {t} is not coloured by its activation")
    p = np.exp(logp[:, :, 0])
    t = 10
    assert fig.data["top_chars"][t] == [run["chars"][i] for i in np.argsort(-p[t], kind="stable")[:5]]
    np.testing.assert_allclose(fig.data["top_p"][t], np.sort(p[t])[::-1][:5])


def test_neuron_view_of_a_two_character_vocabulary_shows_both_guesses():
    chars, text = ["a", "b"], "abba" * 20
    params = rnn.init_params(2, 4, np.random.default_rng(1), np.float64, 0.5)
    fig = viz.neuron_view(params, chars, text, 0, k=5, width=40)
    p = np.exp(rnn.forward(params, rnn.encode(text, chars))[1][:, :, 0])      # (N,V)
    assert fig.data["top_ids"].shape == (len(text), 2), "k=5 over a vocabulary of 2 shows the 2 there are"
    np.testing.assert_allclose(fig.data["top_p"], np.sort(p, axis=1)[:, ::-1])
    assert fig.axes[0].images[0].get_array().shape[:2] == (2 * (2 + 2) - 1, 40), \
        "each line of text has one row for the text and one per guess, and a blank row between lines"


def test_feature_neurons_shows_the_best_unit_per_feature(run):
    text = run["val_text"]
    fig = viz.feature_neurons(run["params"], run["chars"], text)
    h = viz.model_on_text(run["params"], run["chars"], text)["h"]
    feats = viz.text_features(text)
    for item in fig.data["ranked"]:
        r = viz.unit_correlations(h, feats[item["feature"]])
        assert item["unit"] == int(np.argmax(np.abs(r)))
        assert item["r"] == pytest.approx(r[item["unit"]])
    fig2 = viz.feature_neurons(run["params"], run["chars"], "the cat sat on the mat and the dog ran")
    assert "inside quotes" in fig2.data["absent"] and "inside brackets" in fig2.data["absent"]


def test_the_numbers_are_analysis_functions_reexported():
    """The notebook and the exercises call visualization.real_word_share and friends."""
    for name in ("model_on_text", "top_k", "similarity_order", "words", "real_word_share", "temperature_data",
                 "text_features", "unit_correlations", "rank_units", "gradient_flow_data", "tracking_units",
                 "unit_controls", "quote_profile"):
        assert getattr(viz, name) is getattr(an, name), f"visualization.{name} must be analysis.{name}"


def test_quote_unit_shows_the_best_quote_unit(run):
    text = run["text"][:3000]
    fig = viz.quote_unit(run["params"], run["chars"], text, max_distance=20)
    h = an.model_on_text(run["params"], run["chars"], text)["h"]
    inside = an.text_features(text)["inside quotes"]
    r = [np.corrcoef(h[:, u], inside)[0, 1] for u in range(HIDDEN)]
    unit = int(np.argmax(np.abs(r)))
    assert fig.data["unit"] == unit and fig.data["r"] == pytest.approx(r[unit])
    prof = an.quote_profile(h, text, unit, 20)
    np.testing.assert_array_equal(fig.data["mean"], prof["mean"])
    top, bottom = fig.axes[:2]
    ok = prof["count"] > 0
    np.testing.assert_allclose(bottom.get_lines()[0].get_ydata(), prof["mean"][ok])
    start = fig.data["passage_start"]
    np.testing.assert_array_equal(top.get_lines()[0].get_ydata(), h[start:start + 120, unit])
    assert inside[start:start + 120].any(), "the passage must show a quotation"
    with pytest.raises(ValueError, match="no quotation marks"):
        viz.quote_unit(run["params"], run["chars"], "the cat sat on the mat")


# -----------------------------------------------------------------------------
# 7-8. Samples through training, gradient flow through time
# -----------------------------------------------------------------------------

def test_training_samples_in_step_order(run):
    samples = [e for e in run["log"] if e["kind"] == "sample"][::-1]      # given out of order
    fig = viz.training_samples([e["step"] for e in samples], [e["text"] for e in samples])
    assert fig.data["steps"] == sorted(e["step"] for e in samples)
    assert fig.data["texts"][0] == samples[-1]["text"]
    assert viz.pick_evenly(list(range(0, 1000, 10)), 6)[0] == 0
    assert len(viz.pick_evenly(list(range(0, 1000, 10)), 6)) == 6


def test_training_samples_draw_dollar_signs_literally():
    fig = viz.training_samples([1, 2], ["cost $5 and $x_1$", "a_b $$"])
    fig.savefig(io.BytesIO(), format="png", dpi=30)              # mathtext would fail on "$5 and $"


def test_gradient_flow_is_hidden_grad_norms_trained_and_at_init(run):
    params, chars, text = run["params"], run["chars"], run["val_text"]
    fig = viz.gradient_flow(params, chars, text, k_max=30, streams=3, init_scale=INIT_SCALE, seed=SEED)
    ids = rnn.encode(text, chars)
    inputs = np.stack([ids[b * 31:b * 31 + 31] for b in range(3)], axis=1)
    targets = np.stack([ids[b * 31 + 1:b * 31 + 32] for b in range(3)], axis=1)
    trained = rnn.hidden_grad_norms(params, inputs, targets)
    V = len(chars)
    init = rnn.hidden_grad_norms(rnn.init_params(V, HIDDEN, np.random.default_rng(SEED), np.float64, INIT_SCALE),
                                 inputs, targets)
    np.testing.assert_allclose(fig.data["trained"], trained, rtol=1e-12)
    np.testing.assert_allclose(fig.data["init"], init, rtol=1e-12)
    lines = fig.axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), trained)
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(31))
    assert init[-1] < init[0], "at init the gradient must shrink going back in time"


def test_gradient_flow_axis_spans_the_trained_curve(run):
    """At init the gradient vanishes within a few steps; the axis must not follow it down."""
    params, chars, text = run["params"], run["chars"], run["val_text"]
    fig = viz.gradient_flow(params, chars, text, k_max=100, streams=2, init_scale=0.01, seed=0)
    trained, init = fig.data["trained"], fig.data["init"]
    assert len(trained) == len(init) == 101, "fig.data must keep every value"
    d = an.gradient_flow_data(params, chars, text, 100, 2, 0.01, 0)
    np.testing.assert_array_equal(init, d["init"])
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    assert lo <= trained.min() and trained.max() <= hi, "the trained curve must fit on the axis"
    assert lo >= trained.min() / 10 ** 1.5, \
        f"gradient_flow: the axis goes down to {lo:.1e}, far below the trained curve's {trained.min():.1e}"
    assert init.min() < lo, "this init curve falls far below the trained one, so it must leave the axis"
    np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), np.where(init > 0, init, np.nan))
    k_out = int(np.argmax(init < lo))
    notes = [t.get_text() for t in ax.texts]
    assert any(f"below the axis from k = {k_out} " in t for t in notes), notes


def test_gradient_flow_needs_enough_text(run):
    with pytest.raises(ValueError, match="at least 102 characters"):
        viz.gradient_flow(run["params"], run["chars"], run["val_text"][:50])


# -----------------------------------------------------------------------------
# The command line
# -----------------------------------------------------------------------------

def test_cli_writes_every_png_and_none_is_blank(run, tmp_path, capsys):
    out = tmp_path / "plots"
    code = viz.main(["--checkpoint", str(run["ckpt"]), "--log", str(run["log_path"]), "--out", str(out),
                     "--data", run["config"]["data"], "--chars", "60", "--dpi", "40"])
    assert code == 0, capsys.readouterr().err
    expected = (*viz.FIGURE_FILES, viz.NGRAM_FIGURE_FILE)     # --data gives the training text: figure 9 too
    for name in expected:
        path = out / name
        assert path.is_file(), f"main did not write {name}"
        image = matplotlib.image.imread(path)
        assert image.std() > 0.01, f"{name} is blank"
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")], "a temporary file was left behind"
    printed = capsys.readouterr().out
    assert "settings:" in printed and printed.count("wrote ") == len(expected)


def test_cli_with_a_bare_log_still_draws_every_figure(run, tmp_path, capsys):
    """A log with only train losses (no validation, gradient statistics or samples)."""
    lines = [{"kind": "config", **run["config"]}]
    lines += [{"kind": "train", "step": s, "chars": 128 * s, "loss": 3.0 - s / 100} for s in range(1, 40)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    out = tmp_path / "plots"
    code = viz.main(["--checkpoint", str(run["ckpt"]), "--log", str(tmp_path / "log.jsonl"),
                     "--data", run["config"]["data"], "--out", str(out), "--chars", "40", "--dpi", "30"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted((*viz.FIGURE_FILES, viz.NGRAM_FIGURE_FILE))


def test_ngram_figure_compares_the_two_models_on_the_text(run):
    """Figure 9's numbers: each model's mean loss per context-frequency bin, recomputed here."""
    train_text = run["text"][:len(run["text"]) - len(run["val_text"])]
    fig = viz._ngram_figure(run["params"], run["chars"], rnn.encode(train_text, run["chars"]), run["val_text"])
    ids = rnn.encode(run["val_text"], run["chars"])
    ngram = NGram(viz.NGRAM_ORDER).fit(rnn.encode(train_text, run["chars"]), len(run["chars"]))
    rnn_loss = -rnn.target_logprobs(run["params"], ids)
    ngram_loss = -ngram.logprobs(ids)
    counts = ngram.context_counts(ids)
    lows = [0, 1, 2, 4, 16, 64]
    for i, lo in enumerate(lows):
        hi = lows[i + 1] if i + 1 < len(lows) else np.inf
        sel = (counts >= lo) & (counts < hi)
        assert fig.data["count"][i] == sel.sum()
        if sel.any():
            assert fig.data["mean_loss"]["rnn"][i] == pytest.approx(rnn_loss[sel].mean())
            assert fig.data["mean_loss"]["ngram"][i] == pytest.approx(ngram_loss[sel].mean())
    assert fig.data["count"].sum() == len(ids) - 1


def _corrupt(path):
    path.write_bytes(b"PK\x03\x04 this is not a zip file")
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing checkpoint", "checkpoint not found"),
    ("corrupt checkpoint", "not a .npz checkpoint"),
    ("missing log", "training log not found"),
    ("bad log", "line 1: not valid JSON"),
    ("missing text", "pass --text FILE"),
    ("text outside the vocabulary", "not in the vocabulary"),
    ("missing --text file", "nope.txt: no such file"),
    ("unit out of range", f"--unit {HIDDEN}: the model has {HIDDEN} hidden units"),
    ("prime outside the vocabulary", "--prime: 2 character(s) not in the vocabulary"),
    ("--out is a file", "is a file; give a folder"),
    ("huge dpi", "GB of memory"),
    ("--data missing", "--data: no such file"),
])
def test_cli_errors_are_one_line_exit_2(run, tmp_path, capsys, case, expected):
    ckpt, log = str(run["ckpt"]), str(run["log_path"])
    extra = []
    if case == "missing checkpoint":
        ckpt = str(tmp_path / "nope.npz")
    elif case == "corrupt checkpoint":
        ckpt = str(_corrupt(tmp_path / "bad.npz"))
    elif case == "missing log":
        log = str(tmp_path / "nope.jsonl")
    elif case == "bad log":
        (tmp_path / "bad.jsonl").write_text("not json\n")
        log = str(tmp_path / "bad.jsonl")
    elif case == "missing text":
        config = {**run["config"], "data": str(tmp_path / "gone.txt")}
        ck = checkpoints.load_checkpoint(run["ckpt"])
        ckpt = str(checkpoints.save_checkpoint(tmp_path / "c.npz", ck["params"], ck["opt_state"], ck["chars"],
                                       ck["hidden"], {**ck["meta"], "config": config}))
        (tmp_path / "log.jsonl").write_text("".join(json.dumps({**e, "data": config["data"]}) + "\n"
                                                    for e in run["log"]))
        log = str(tmp_path / "log.jsonl")
    elif case == "text outside the vocabulary":
        (tmp_path / "t.txt").write_text("ZZZ " * 100)
        extra = ["--text", str(tmp_path / "t.txt")]
    elif case == "missing --text file":
        extra = ["--text", str(tmp_path / "nope.txt")]
    elif case == "unit out of range":
        extra = ["--unit", str(HIDDEN)]
    elif case == "prime outside the vocabulary":
        extra = ["--prime", "Zq"]
    elif case == "--out is a file":
        (tmp_path / "plots").write_text("not a folder")
    elif case == "huge dpi":
        extra = ["--dpi", "5000"]
    elif case == "--data missing":
        extra = ["--data", str(tmp_path / "nope.txt")]
    before = (tmp_path / "plots").exists()
    code = viz.main(["--checkpoint", ckpt, "--log", log, "--out", str(tmp_path / "plots")] + extra)
    err = capsys.readouterr().err
    assert code == 2, f"{case}: expected exit code 2, got {code}"
    assert err.startswith("error: ") and expected in err, f"{case}: stderr was {err!r}"
    assert err.count("\n") == 1 and "Traceback" not in err, f"{case}: the error must be one line: {err!r}"
    assert (tmp_path / "plots").exists() == before, f"{case}: nothing may be written after an error"


def _main(argv, capsys):
    """(exit code, stderr) of visualization.main(argv), whether it returns or argparse exits."""
    try:
        code = viz.main(argv)
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flags, expected", [
    (["--chars", "5"], "--chars must be between 20 and 1000, got 5"),
    (["--chars", "many"], "--chars must be a whole number, got 'many'"),
    (["--chars", "100000"], "--chars must be between 20 and 1000"),
    (["--dpi", "1e12"], "--dpi must be a whole number, got '1e12'"),
    (["--dpi", "1000000000000"], "GB of memory"),
    (["--dpi", "5000"], "use a dpi of at most"),
    (["--dpi", "3"], "--dpi must be at least 10, got 3"),
    (["--seed", "-1"], "--seed must be between 0 and"),
    (["--unit", "-2"], "--unit must be at least 0, got -2"),
    (["--out", ""], "argument --out: needs a folder name, got an empty string"),
    (["--prime", ""], "argument --prime: needs at least one character"),
    (["--prime", "x" * 1001], "--prime is 1,001 characters; at most 1000"),
    (["--text", ""], "argument --text: needs a file path"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_cli_bad_values_are_one_line_naming_the_flag(run, tmp_path, capsys, flags, expected):
    base = ["--checkpoint", str(run["ckpt"]), "--log", str(run["log_path"]), "--out", str(tmp_path / "plots")]
    code, err = _main(base + flags, capsys)
    assert code == 2, f"{flags}: expected exit code 2, got {code} ({err!r})"
    assert err.startswith("error: ") and expected in err, f"{flags}: stderr was {err!r}"
    assert err.count("\n") == 1 and "usage:" not in err, f"{flags}: one line, no usage dump: {err!r}"
    assert not (tmp_path / "plots").exists(), f"{flags}: nothing may be written"


def test_dpi_limit_is_the_memory_of_the_largest_figure():
    sizes = [(9, 5.2), (20, 8)]
    best = viz.max_dpi(sizes)
    viz.check_dpi(sizes, best)                                   # fits
    assert viz.image_bytes(20, 8, best) <= viz.MAX_IMAGE_BYTES < viz.image_bytes(20, 8, best + 2)
    with pytest.raises(viz.UserError, match=r"20.0 x 8.0 inch figure .* GB of memory"):
        viz.check_dpi(sizes, best + 2)
    assert viz.image_bytes(2, 1, 10) == 4 * 20 * 10


# -----------------------------------------------------------------------------
# Which text is read: the command line decides, not the checkpoint
# -----------------------------------------------------------------------------

def _checkpoint_naming(run, tmp_path, data):
    """A copy of the run's checkpoint and log whose config names `data` as the training text."""
    config = {**run["config"], "data": data}
    ck = checkpoints.load_checkpoint(run["ckpt"])
    ckpt = checkpoints.save_checkpoint(tmp_path / "c.npz", ck["params"], ck["opt_state"], ck["chars"],
                               ck["hidden"], {**ck["meta"], "config": config})
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({**e, "data": data} if e["kind"] == "config" else e) + "\n"
                           for e in run["log"]))
    return str(ckpt), str(log)


def test_a_checkpoint_cannot_choose_which_local_file_is_read(run, tmp_path, capsys):
    """A crafted config.data naming a readable file (here one the model could even read) is refused."""
    secret = tmp_path / "secret.txt"
    secret.write_text(run["text"])
    ckpt, log = _checkpoint_naming(run, tmp_path, str(secret))
    code, err = _main(["--checkpoint", ckpt, "--log", log, "--out", str(tmp_path / "plots")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "not one of the known corpora" in err and "pass --text FILE" in err, err
    assert not (tmp_path / "plots").exists()
    ckpt, log = _checkpoint_naming(run, tmp_path, "/etc/passwd")
    code, err = _main(["--checkpoint", ckpt, "--log", log, "--out", str(tmp_path / "plots")], capsys)
    assert code == 2 and "'/etc/passwd'" in err and "pass --text FILE" in err, err


def test_a_known_corpus_in_the_config_is_read_from_the_data_folder(run, tmp_path, monkeypatch, capsys):
    """config.data names tiny Shakespeare: read data/tiny_shakespeare.txt, never the stored folder."""
    folder = tmp_path / "data"
    folder.mkdir()
    corpus = run["text"] * 2                                     # long enough for a 10% validation part
    (folder / "tiny_shakespeare.txt").write_text(corpus, encoding="utf-8")
    monkeypatch.setattr(download, "DATA_DIR", folder)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "tiny_shakespeare.txt").write_text("ZZZ not this one")
    ckpt, log = _checkpoint_naming(run, tmp_path, str(elsewhere / "tiny_shakespeare.txt"))
    args = viz.build_parser().parse_args(["--checkpoint", ckpt, "--log", log])
    said = []
    text, train_text, source = viz._resolve_text(args, checkpoints.load_checkpoint(ckpt), viz.load_log(log), said.append)
    n = int(len(corpus) * 0.9)                                   # train_minimal's split, val_fraction 0.1
    assert (train_text, text) == (corpus[:n], corpus[n:])
    assert str(folder / "tiny_shakespeare.txt") in source
    assert len(said) == 1 and "known corpus tiny_shakespeare" in said[0], said
    # --text FILE is read as given; the known corpus still gives the real-word share
    (tmp_path / "t.txt").write_text("the cat sat")
    args = viz.build_parser().parse_args(["--checkpoint", ckpt, "--log", log, "--text", str(tmp_path / "t.txt")])
    text, train_text, _ = viz._resolve_text(args, checkpoints.load_checkpoint(ckpt), viz.load_log(log), said.append)
    assert (text, train_text) == ("the cat sat", corpus[:n])


def test_a_stored_path_holding_the_exact_corpus_is_read_where_it_is(run, tmp_path, monkeypatch,
                                                                   shakespeare_path):
    """A file whose size and sha256 are tiny Shakespeare's is the public corpus: no copy is made."""
    monkeypatch.setattr(download, "DATA_DIR", tmp_path / "empty")
    ckpt, log = _checkpoint_naming(run, tmp_path, str(shakespeare_path))
    args = viz.build_parser().parse_args(["--checkpoint", ckpt, "--log", log])
    text, train_text, source = viz._resolve_text(args, checkpoints.load_checkpoint(ckpt), viz.load_log(log),
                                                 lambda m: None)
    assert source.startswith(str(shakespeare_path)) and len(text) + len(train_text) == 1_115_394
    assert not (tmp_path / "empty").exists(), "the corpus must not be copied when the stored file is it"


def test_data_flag_splits_like_training(run, tmp_path):
    ck, log = checkpoints.load_checkpoint(run["ckpt"]), viz.load_log(run["log_path"])
    args = viz.build_parser().parse_args(["--data", run["config"]["data"]])
    text, train_text, source = viz._resolve_text(args, ck, log, lambda m: None)
    assert train_text == run["train_text"] and text == run["val_text"] and "validation part" in source
    short = tmp_path / "short.txt"                    # a validation part under 500 characters
    short.write_text(run["text"][:3000])
    args = viz.build_parser().parse_args(["--data", str(short)])
    text, train_text, source = viz._resolve_text(args, ck, log, lambda m: None)
    assert text == run["text"][:3000] and "no validation part" in source, \
        "a validation part under 500 characters is too short: the whole text is read"
    longer = tmp_path / "longer.txt"
    longer.write_text(run["text"] * 3)
    n = int(len(run["text"]) * 3 * 0.9)
    args = viz.build_parser().parse_args(["--data", str(longer)])
    text, train_text, source = viz._resolve_text(args, ck, log, lambda m: None)
    assert (train_text, text) == ((run["text"] * 3)[:n], (run["text"] * 3)[n:]) and "validation part" in source


# -----------------------------------------------------------------------------
# Safe output files and Ctrl-C
# -----------------------------------------------------------------------------

def _good_png():
    buffer = io.BytesIO()
    viz.training_samples([1], ["an earlier plot"]).savefig(buffer, format="png", dpi=20)
    return buffer.getvalue()


@pytest.mark.parametrize("where", ["drawing", "writing"])
def test_save_figure_interrupted_keeps_the_earlier_file(tmp_path, monkeypatch, where):
    target = tmp_path / "plot.png"
    good = _good_png()
    target.write_bytes(good)
    fig = viz.training_samples([1], ["a new plot"])
    if where == "drawing":
        monkeypatch.setattr(fig, "savefig", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    else:                                                        # inside safeio.atomic_write_bytes
        monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        viz.save_figure(fig, target, dpi=20)
    assert target.read_bytes() == good, f"Ctrl-C while {where} must leave the earlier file as it was"
    assert os.listdir(tmp_path) == ["plot.png"], "no temporary file may be left behind"


def test_main_turns_ctrl_c_into_one_line_and_130(run, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(viz, "render_all", interrupted)
    code, err = _main(["--checkpoint", str(run["ckpt"]), "--log", str(run["log_path"]),
                       "--data", run["config"]["data"], "--out", str(tmp_path / "plots")], capsys)
    assert code == 130 and err.startswith("error: interrupted") and err.count("\n") == 1, (code, err)


ROOT = Path(viz.__file__).resolve().parent


def _script_env(**extra):
    return {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", **extra}


# Runs visualization.py's main() with save_figure wrapped so that the process sends itself a
# real SIGINT (what Ctrl-C sends) as it is about to save the second figure, the first one
# written and reported: no race with the renderer on a busy machine. Python turns SIGINT into
# KeyboardInterrupt only if the process did not start with it ignored, and a job started in
# the background (`cmd &`, nohup) does, so the wrapper first restores what a terminal gives.
_CTRL_C_AFTER_FIRST_FIGURE = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, os.getcwd())
import visualization as viz
save, saved = viz.save_figure, []
def ctrl_c_before_the_second(*args, **kwargs):
    if saved:
        os.kill(os.getpid(), signal.SIGINT)
    saved.append(save(*args, **kwargs))
    return saved[-1]
viz.save_figure = ctrl_c_before_the_second
sys.exit(viz.main(sys.argv[1:]))
"""


def test_ctrl_c_while_rendering_leaves_no_broken_file(run, tmp_path):
    """SIGINT after the first figure is written: exit 130, one line, every PNG readable."""
    out = tmp_path / "plots"
    out.mkdir()
    good = _good_png()
    for name in viz.FIGURE_FILES:
        (out / name).write_bytes(good)
    r = subprocess.run([sys.executable, "-c", _CTRL_C_AFTER_FIRST_FIGURE, "--checkpoint", str(run["ckpt"]),
                        "--log", str(run["log_path"]), "--data", run["config"]["data"], "--out", str(out),
                        "--chars", "60", "--dpi", "40"],
                       cwd=ROOT, env=_script_env(), capture_output=True, text=True, timeout=300)
    err = r.stderr
    assert [line for line in r.stdout.splitlines() if line.startswith("wrote ")] == [
        f"wrote {out / viz.FIGURE_FILES[0]}"], r.stdout
    assert r.returncode == 130, f"expected exit status 130 after Ctrl-C, got {r.returncode}: {err}"
    assert err.count("\n") == 1 and "Traceback" not in err and "interrupted" in err, err
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")], "a temporary file was left behind"
    assert sorted(os.listdir(out)) == sorted(viz.FIGURE_FILES)
    for name in viz.FIGURE_FILES:
        assert matplotlib.image.imread(out / name).size > 0, f"{name} is not a readable PNG"
    for name in viz.FIGURE_FILES[1:]:
        assert (out / name).read_bytes() == good, f"{name}, not yet drawn, must keep its earlier file"
    assert (out / viz.FIGURE_FILES[0]).read_bytes() != good, "the first figure was written before Ctrl-C"


def test_ctrl_c_while_importing_is_one_line(tmp_path):
    """Ctrl-C during `import numpy` (simulated by a numpy that raises it) prints no traceback."""
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "numpy.py").write_text("raise KeyboardInterrupt\n")
    r = subprocess.run([sys.executable, "visualization.py", "--help"], cwd=ROOT, capture_output=True, text=True,
                       env=_script_env(PYTHONPATH=str(fake)))
    assert r.returncode == 130, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("flags, status, expected", [
    (["--dpi", "5000"], 2, "GB of memory"),
    (["--seed", "-1"], 2, "--seed must be"),
    (["--checkpoint", "nope.npz"], 2, "checkpoint not found"),
    (["--help"], 0, ""),
])
def test_script_exit_status(flags, status, expected):
    r = subprocess.run([sys.executable, "visualization.py", *flags], cwd=ROOT, capture_output=True, text=True,
                       env=_script_env())
    assert r.returncode == status, r.stderr
    assert expected in r.stderr and r.stderr.count("\n") == (1 if status else 0), r.stderr


def test_figures_show_themselves_in_a_notebook_without_pyplot(run):
    fig = viz.gradient_flow(run["params"], run["chars"], run["val_text"], k_max=20, streams=2)
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n", "Jupyter shows a figure through _repr_png_"


def test_import_leaves_the_backend_alone():
    code = ("import matplotlib; matplotlib.use('svg'); import sys, visualization; "
            "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend(); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'visualization imported pyplot'")
    root = Path(viz.__file__).resolve().parent
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_wrapped_text_draws_tabs_and_carriage_returns_as_visible_marks():
    assert viz._wrap("a\tb\rc\nd", 80) == "a⇥b␍c↵\nd"
