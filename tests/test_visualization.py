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
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import implementation as rnn
import runlog
import visualization as viz

HIDDEN, INIT_SCALE, SEED = 24, 0.05, 3


def synthetic_text(n_lines=160, seed=0):
    """Lines of words, some phrases in "quotes" or (brackets), so every feature occurs."""
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "said", "hello", "to", "dog", "it", "ran"]
    lines = []
    for _ in range(n_lines):
        ws = list(rng.choice(words, size=int(rng.integers(3, 8))))
        i = int(rng.integers(0, len(ws)))
        if rng.random() < 0.35:
            ws[i] = f'"{ws[i]} {rng.choice(words)}"'
        elif rng.random() < 0.5:
            ws[i] = f"({ws[i]} {rng.choice(words)})"
        lines.append(" ".join(ws) + rng.choice([".", ",", "!", ""]))
    return "\n".join(lines) + "\n"


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
    ckpt = rnn.save_checkpoint(folder / "best.npz", params, trainer.opt_state, chars, trainer.h,
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

def test_model_on_text_is_implementation_forward(run, passage):
    r = viz.model_on_text(run["params"], run["chars"], passage)
    ids = rnn.encode(passage, run["chars"])
    hs, logp = rnn.forward(run["params"], ids)                   # (N+1,H,1), (N,V,1)
    np.testing.assert_array_equal(r["h"], hs[1:, :, 0])
    np.testing.assert_allclose(r["probs"], np.exp(logp[:, :, 0]))
    np.testing.assert_allclose(r["probs"].sum(axis=1), 1.0)
    p = np.exp(logp[:, :, 0])
    np.testing.assert_allclose(r["entropy"], -(p * np.log(p)).sum(axis=1))
    np.testing.assert_allclose(r["p_next"], [p[t, ids[t + 1]] for t in range(len(ids) - 1)])


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


def test_next_char_probs_rejects_a_position_without_a_next_char(run, passage):
    with pytest.raises(ValueError, match="position"):
        viz.next_char_probs(run["params"], run["chars"], passage, positions=[len(passage) - 1])


# -----------------------------------------------------------------------------
# 5. Temperature
# -----------------------------------------------------------------------------

def test_real_word_share():
    vocab = {"the", "cat", "don't"}
    assert viz.real_word_share("The cat don't xq ca", vocab) == (3 / 4, 4), "a cut-off last word is not counted"
    assert viz.real_word_share("the zz.", vocab) == (0.5, 2)
    share, n = viz.real_word_share("...", vocab)
    assert math.isnan(share) and n == 0


def test_temperature_data_matches_sampling_and_softmax_over_T(run):
    params, chars, prime = run["params"], run["chars"], "the cat"
    d = viz.temperature_data(params, chars, prime, [0.5, 1.0], n=40, seed=7, train_text=run["train_text"])
    H = params["Whh"].shape[0]
    for T, sample, ent in zip(d["temperatures"], d["samples"], d["entropy"]):
        assert sample == rnn.sample_text(params, chars, prime, 40, T, np.random.default_rng(7))
        # reference: step the textbook recurrence by hand, entropy of softmax(y / T) at each step
        h = np.zeros((H, 1))
        ents = []
        for c_in in prime + sample[:-1]:
            x = rnn.encode(c_in, chars)[0]
            h = np.tanh(params["Wxh"][:, [x]] + params["Whh"] @ h + params["bh"])
            y = params["Why"] @ h + params["by"]
            q = rnn.softmax(y[:, 0] / T)
            ents.append(float(-(q * np.log(q)).sum()))
        assert ent == pytest.approx(np.mean(ents[len(prime) - 1:]), rel=1e-9), \
            f"temperature_data: entropy at T={T} is not the mean entropy of softmax(y/T) over the sample"
    vocab = set(viz.words(run["train_text"]))
    for share, sample in zip(d["word_share"], d["samples"]):
        assert share == viz.real_word_share(sample, vocab)[0]
    assert d["entropy"][0] < d["entropy"][1], "a lower temperature must give a sharper distribution"


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


def test_text_features_by_hand():
    f = viz.text_features('a "b" (c)\nd')
    #                       a  ␣  "  b  "  ␣  (  c  )  ↵  d
    assert list(f["inside quotes"]) == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert list(f["inside brackets"]) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert list(f["position in line"]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert list(f["after a newline"]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert list(f["inside a word"]) == [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1]


def test_rank_units_finds_a_planted_unit():
    rng = np.random.default_rng(0)
    feature = (rng.random(200) < 0.3).astype(float)
    h = np.tanh(rng.standard_normal((200, 10)))
    h[:, 7] = 0.8 * feature - 0.4                                  # unit 7 tracks the feature exactly
    h[:, 2] = 0.0                                                  # a dead unit
    ranked = viz.rank_units(h, {"f": feature, "absent": np.ones(200)})
    assert [r["feature"] for r in ranked] == ["f"], "a constant feature must be skipped"
    assert ranked[0]["unit"] == 7 and ranked[0]["r"] == pytest.approx(1.0)
    assert ranked[0]["correlations"][2] == 0.0


def test_unit_correlations_are_pearson(run):
    text = run["val_text"]
    h = viz.model_on_text(run["params"], run["chars"], text)["h"]
    feat = viz.text_features(text)["position in line"]
    r = viz.unit_correlations(h, feat)
    want = [np.corrcoef(h[:, u], feat)[0, 1] for u in range(h.shape[1])]
    np.testing.assert_allclose(r, want, atol=1e-12)


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


def test_gradient_flow_needs_enough_text(run):
    with pytest.raises(ValueError, match="at least 102 characters"):
        viz.gradient_flow(run["params"], run["chars"], run["val_text"][:50])


# -----------------------------------------------------------------------------
# The command line
# -----------------------------------------------------------------------------

def test_cli_writes_every_png_and_none_is_blank(run, tmp_path, capsys):
    out = tmp_path / "plots"
    code = viz.main(["--checkpoint", str(run["ckpt"]), "--log", str(run["log_path"]), "--out", str(out),
                     "--chars", "60", "--dpi", "40"])
    assert code == 0, capsys.readouterr().err
    for name in viz.FIGURE_FILES:
        path = out / name
        assert path.is_file(), f"main did not write {name}"
        image = matplotlib.image.imread(path)
        assert image.std() > 0.01, f"{name} is blank"
    assert "settings:" in capsys.readouterr().out


def test_cli_with_a_bare_log_still_draws_every_figure(run, tmp_path, capsys):
    """A log with only train losses (no validation, gradient statistics or samples)."""
    lines = [{"kind": "config", **run["config"]}]
    lines += [{"kind": "train", "step": s, "chars": 128 * s, "loss": 3.0 - s / 100} for s in range(1, 40)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    out = tmp_path / "plots"
    code = viz.main(["--checkpoint", str(run["ckpt"]), "--log", str(tmp_path / "log.jsonl"),
                     "--out", str(out), "--chars", "40", "--dpi", "30"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == sorted(viz.FIGURE_FILES)


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
    ("missing --text file", "--text: file not found"),
    ("unit out of range", f"the model has {HIDDEN} hidden units"),
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
        ck = rnn.load_checkpoint(run["ckpt"])
        ckpt = str(rnn.save_checkpoint(tmp_path / "c.npz", ck["params"], ck["opt_state"], ck["chars"],
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
    code = viz.main(["--checkpoint", ckpt, "--log", log, "--out", str(tmp_path / "plots")] + extra)
    err = capsys.readouterr().err
    assert code == 2, f"{case}: expected exit code 2, got {code}"
    assert err.startswith("error: ") and expected in err, f"{case}: stderr was {err!r}"
    assert err.count("\n") == 1 and "Traceback" not in err, f"{case}: the error must be one line: {err!r}"


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
