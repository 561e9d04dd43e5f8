"""Tests for analysis.py: the numbers behind the figures, and the unit analysis with controls.

Every number is checked against an independent computation in the test: the
textbook recurrence stepped by hand, np.corrcoef, np.roll, a percentile written
out by sorting. The unit analysis is tested on hidden states built here, where
we know which unit tracks what, and on a tiny RNN trained on a synthetic text with
quotes, brackets and sentences (conftest.py's trained_model).
"""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import analysis as an
import implementation as rnn


def percentile_by_sorting(values, q):
    """The q-th percentile as np.percentile's default defines it, written out: sort, then
    interpolate linearly between the two values around position q/100 * (n - 1)."""
    v = np.sort(np.asarray(values, float))
    pos = q / 100 * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


def smooth_noise(rng, n, units, width):
    """Noise that changes slowly (a moving average over `width` characters), like a hidden unit."""
    x = rng.standard_normal((n + width, units))
    c = np.cumsum(x, axis=0)
    return (c[width:] - c[:-width]) / math.sqrt(width)


def random_runs(rng, n, mean_on=30, mean_off=60):
    """A 0/1 feature in runs, like "inside quotes": on for ~mean_on characters, off for ~mean_off."""
    f = np.zeros(n)
    t, on = 0, False
    while t < n:
        length = 1 + int(rng.exponential(mean_on if on else mean_off))
        f[t:t + length] = on
        t, on = t + length, not on
    return f


# -----------------------------------------------------------------------------
# Importing the module
# -----------------------------------------------------------------------------

def test_import_pulls_in_no_matplotlib_and_does_nothing():
    code = ("import sys, analysis; "
            "assert 'matplotlib' not in sys.modules, 'analysis imported matplotlib'; "
            "print('ok')")
    root = Path(an.__file__).resolve().parent
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n", f"importing analysis must print nothing, got {r.stdout!r}"


# -----------------------------------------------------------------------------
# The model reading a text
# -----------------------------------------------------------------------------

def test_model_on_text_is_implementation_forward(trained_model):
    passage = trained_model["val_text"][:90]
    r = an.model_on_text(trained_model["params"], trained_model["chars"], passage)
    ids = rnn.encode(passage, trained_model["chars"])
    hs, logp = rnn.forward(trained_model["params"], ids)                 # (N+1,H,1), (N,V,1)
    np.testing.assert_array_equal(r["h"], hs[1:, :, 0])
    p = np.exp(logp[:, :, 0])
    np.testing.assert_allclose(r["probs"], p)
    np.testing.assert_allclose(r["probs"].sum(axis=1), 1.0)
    np.testing.assert_allclose(r["entropy"], -(p * np.log(p)).sum(axis=1))
    np.testing.assert_allclose(r["p_next"], [p[t, ids[t + 1]] for t in range(len(ids) - 1)])


def test_hidden_states_read_in_blocks_are_forwards_states(trained_model, monkeypatch):
    params, chars, text = trained_model["params"], trained_model["chars"], trained_model["val_text"][:300]
    whole = rnn.forward(params, rnn.encode(text, chars))[0][1:, :, 0]            # (N,H) in one pass
    monkeypatch.setattr(an, "TABLE_MAX_ENTRIES", 7 * len(chars))
    assert an.max_table_chars(len(chars)) == 7
    np.testing.assert_array_equal(an.hidden_states(params, chars, text), whole,
                                  err_msg="hidden_states in blocks of 7 characters must carry h from block to block")


def test_model_on_text_refuses_a_table_over_the_limit_in_one_line(trained_model, monkeypatch):
    params, chars, text = trained_model["params"], trained_model["chars"], trained_model["val_text"]
    monkeypatch.setattr(an, "TABLE_MAX_ENTRIES", 50 * len(chars))
    assert an.model_on_text(params, chars, text[:50])["probs"].shape == (50, len(chars))
    with pytest.raises(ValueError) as e:
        an.model_on_text(params, chars, text[:51])
    assert "\n" not in str(e.value) and "pass at most 50 characters" in str(e.value), str(e.value)


def test_top_k_and_similarity_order():
    probs = np.array([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4]])
    idx, val = an.top_k(probs, 2)
    assert idx.tolist() == [[1, 2], [2, 0]] and val.tolist() == [[0.5, 0.4], [0.4, 0.3]]
    rng = np.random.default_rng(0)
    common = rng.standard_normal(300)
    h = 0.05 * rng.standard_normal((300, 6))
    h[:, [1, 4]] += common[:, None]                              # units 1 and 4 switch together
    h[:, 2] -= common                                            # unit 2 switches against them
    order = list(an.similarity_order(h))
    assert sorted(order) == list(range(6))
    assert {order[0], order[-1]} & {2} and abs(order.index(1) - order.index(4)) == 1, \
        f"similarity_order: units that move together must sit together, got {order}"


# -----------------------------------------------------------------------------
# Real words and temperature
# -----------------------------------------------------------------------------

def test_real_word_share():
    vocab = {"the", "cat", "don't"}
    assert an.real_word_share("The cat don't xq ca", vocab) == (3 / 4, 4), "a cut-off last word is not counted"
    assert an.real_word_share("the zz.", vocab) == (0.5, 2)
    assert an.real_word_share("the zz xyzw cat.", vocab, min_length=3) == (2 / 3, 3), \
        "min_length=3 must leave out the two-letter word"
    share, n = an.real_word_share("...", vocab)
    assert math.isnan(share) and n == 0
    assert an.words("Élan, naïve! It's 42 o'clock") == ["élan", "naïve", "it's", "o'clock"]


@pytest.mark.parametrize("block", [None, 6], ids=["one pass", "blocks of 6 characters"])
def test_temperature_data_matches_sampling_and_softmax_over_T(trained_model, monkeypatch, block):
    params, chars, prime = trained_model["params"], trained_model["chars"], "the cat"
    if block:
        monkeypatch.setattr(an, "TABLE_MAX_ENTRIES", block * len(chars))
    d = an.temperature_data(params, chars, prime, [0.5, 1.0], n=40, seed=7, train_text=trained_model["train_text"])
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
    vocab = set(an.words(trained_model["train_text"]))
    for share, sample in zip(d["word_share"], d["samples"]):
        assert share == an.real_word_share(sample, vocab)[0]
    assert d["entropy"][0] < d["entropy"][1], "a lower temperature must give a sharper distribution"


# -----------------------------------------------------------------------------
# Features of the text
# -----------------------------------------------------------------------------

def test_text_features_by_hand():
    f = an.text_features('a "b" (c)\nd')
    #                       a  ␣  "  b  "  ␣  (  c  )  ↵  d
    assert list(f["inside quotes"]) == [0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert list(f["inside brackets"]) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert list(f["position in line"]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert list(f["after a newline"]) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert list(f["inside a word"]) == [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1]
    assert list(f["start of a sentence"]) == [0] * 11
    g = an.text_features("Hi. Yo! x")
    #                     H  i  .  ␣  Y  o  !  ␣  x
    assert list(g["start of a sentence"]) == [0, 0, 1, 1, 0, 0, 1, 1, 0]
    assert list(an.text_features(" A")["start of a sentence"]) == [1, 0], "the text starts a sentence"


def test_quotes_use_the_texts_own_marks_and_end_at_a_blank_line():
    assert an.quote_chars('he said "hi"') == ('"', '"')
    assert an.quote_chars("he said “hi”") == ("“", "”")
    curly = an.text_features('a “b "c” d')["inside quotes"]   # a straight " inside curly quotes is no mark
    #                           a  ␣  “  b  ␣  "  c  ”  ␣  d
    assert list(curly) == [0, 0, 1, 1, 1, 1, 1, 0, 0, 0]
    # a speech over two paragraphs: the first paragraph's closing mark is left out
    text = '"ab\n\n"cd" e'
    #        "  a  b  ↵  ↵  "  c  d  "  ␣  e
    assert list(an.text_features(text)["inside quotes"]) == [1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0]
    assert list(an.quote_distance(text)) == [0, 1, 2, 3, -1, 0, 1, 2, -1, -1, -1]


def test_quote_distance_counts_from_the_opening_mark():
    text = 'x "abc" y "de'
    #        x  ␣  "  a  b  c  "  ␣  y  ␣  "  d  e
    assert list(an.quote_distance(text)) == [-1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 0, 1, 2]


# -----------------------------------------------------------------------------
# Units that track features
# -----------------------------------------------------------------------------

def test_rank_units_finds_a_planted_unit():
    rng = np.random.default_rng(0)
    feature = (rng.random(200) < 0.3).astype(float)
    h = np.tanh(rng.standard_normal((200, 10)))
    h[:, 7] = 0.8 * feature - 0.4                                  # unit 7 tracks the feature exactly
    h[:, 2] = 0.0                                                  # a dead unit
    ranked = an.rank_units(h, {"f": feature, "absent": np.ones(200)})
    assert [r["feature"] for r in ranked] == ["f"], "a constant feature must be skipped"
    assert ranked[0]["unit"] == 7 and ranked[0]["r"] == pytest.approx(1.0)
    assert ranked[0]["correlations"][2] == 0.0


def test_unit_correlations_are_pearson(trained_model):
    text = trained_model["val_text"]
    h = an.model_on_text(trained_model["params"], trained_model["chars"], text)["h"]
    feat = an.text_features(text)["position in line"]
    r = an.unit_correlations(h, feat)
    want = [np.corrcoef(h[:, u], feat)[0, 1] for u in range(h.shape[1])]
    np.testing.assert_allclose(r, want, atol=1e-12)


def test_shifted_feature_correlations_are_the_correlations_with_the_rolled_feature():
    rng = np.random.default_rng(1)
    n = 500
    h = smooth_noise(rng, n, 5, 10)
    f = random_runs(rng, n)
    null = an.shifted_feature_correlations(h, f, draws=40, rng=np.random.default_rng(3))
    offsets = null["offsets"]
    assert null["r"].shape == (40, 5)
    assert offsets.min() >= n // 10 and offsets.max() <= n - n // 10, "shifts close to 0 keep the alignment"
    for d in (0, 17, 39):
        rolled = np.roll(f, offsets[d])
        want = [np.corrcoef(h[:, u], rolled)[0, 1] for u in range(5)]
        np.testing.assert_allclose(null["r"][d], want, atol=1e-12,
                                   err_msg=f"shifted_feature_correlations: draw {d} is not "
                                           f"corr(h, np.roll(feature, {offsets[d]}))")


def test_tracking_units_thresholds_are_the_nulls_99th_percentiles():
    rng = np.random.default_rng(2)
    n, H = 800, 6
    h = smooth_noise(rng, n, H, 15)
    f = random_runs(rng, n)
    res = an.tracking_units(h, f, draws=300, seed=11)
    # independent: our own shifted copies with the same offsets, np.corrcoef, a percentile by sorting
    null_abs = np.array([[abs(np.corrcoef(h[:, u], np.roll(f, s))[0, 1]) for u in range(H)]
                         for s in res["null"]["offsets"]])                        # (draws,H)
    per_unit = [percentile_by_sorting(null_abs[:, u], 99) for u in range(H)]
    np.testing.assert_allclose(res["thresholds"], per_unit, rtol=1e-10,
                               err_msg="tracking_units: thresholds must be each unit's 99th percentile of |r| "
                                       "over the shifted copies")
    assert res["max_threshold"] == pytest.approx(percentile_by_sorting(null_abs.max(axis=1), 99), rel=1e-10)
    r = [np.corrcoef(h[:, u], f)[0, 1] for u in range(H)]
    above = np.abs(r) > np.array(per_unit)
    assert res["n_above"] == above.sum() and res["share_above"] == pytest.approx(above.mean())
    assert res["unit"] == int(np.argmax(np.abs(r))) and res["r"] == pytest.approx(r[res["unit"]])
    assert res["threshold"] == pytest.approx(per_unit[res["unit"]])
    again = an.tracking_units(h, f, draws=300, seed=11)
    np.testing.assert_array_equal(again["null"]["offsets"], res["null"]["offsets"]), "the same seed, the same null"


def test_a_planted_unit_is_found_above_the_null():
    rng = np.random.default_rng(4)
    n, H, k = 3000, 40, 23
    f = random_runs(rng, n)
    h = np.tanh(smooth_noise(rng, n, H, 20))
    h[:, k] = np.tanh(f - 0.5 + 0.8 * rng.standard_normal(n))       # unit k: the feature plus noise
    res = an.tracking_units(h, f, draws=400, seed=0)
    assert res["unit"] == k, f"tracking_units: the planted unit {k} should be the best, got {res['unit']}"
    assert abs(res["r"]) > res["threshold"] and res["above"][k]
    assert res["best_tracks"] and abs(res["r"]) > res["max_threshold"]
    assert res["n_above"] <= 1 + 4, f"only unit {k} tracks the feature; {res['n_above']} units passed"


def test_a_random_feature_passes_about_one_percent_of_units():
    """No unit tracks an unrelated feature: each passes its own 99th percentile ~1% of the time."""
    rng = np.random.default_rng(5)
    n, H = 2000, 100
    h = np.tanh(smooth_noise(rng, n, H, 25))
    shares = [an.tracking_units(h, random_runs(rng, n), draws=300, seed=i)["share_above"] for i in range(12)]
    mean = float(np.mean(shares))                                   # over 1,200 unit tests
    assert 0.002 <= mean <= 0.025, f"tracking_units: {mean:.1%} of units passed on unrelated features, expected ~1%"


def test_unit_controls_compare_trained_and_untrained_on_the_same_null(trained_model):
    model = trained_model
    text = model["val_text"] + model["train_text"][:1500]
    res = an.unit_controls(model["params"], model["init"], model["chars"], text, draws=100, seed=2)
    names = [x["feature"] for x in res]
    assert "inside quotes" in names and "start of a sentence" in names
    h = an.model_on_text(model["params"], model["chars"], text)["h"]
    h0 = an.model_on_text(model["init"], model["chars"], text)["h"]
    feats = an.text_features(text)
    for item in res:
        f = feats[item["feature"]]
        want = an.tracking_units(h, f, draws=100, seed=2)
        want0 = an.tracking_units(h0, f, draws=100, seed=2)
        assert (item["unit"], item["n_above"]) == (want["unit"], want["n_above"])
        assert (item["untrained"]["unit"], item["untrained"]["n_above"]) == (want0["unit"], want0["n_above"])
        np.testing.assert_array_equal(item["null"]["offsets"], item["untrained"]["null"]["offsets"])
    with pytest.raises(ValueError, match="hidden units"):
        H = model["params"]["Whh"].shape[0]
        small = rnn.init_params(len(model["chars"]), H - 1, np.random.default_rng(0))
        an.unit_controls(model["params"], small, model["chars"], text, draws=10)


# -----------------------------------------------------------------------------
# The quote unit
# -----------------------------------------------------------------------------

def test_quote_profile_is_the_mean_activation_by_distance():
    text = 'ab "cdef" g "hi" jk "lmnop'
    rng = np.random.default_rng(6)
    h = rng.uniform(-1, 1, (len(text), 3))
    prof = an.quote_profile(h, text, unit=1, max_distance=4)
    dist = an.quote_distance(text)
    for k in range(5):
        vals = [h[t, 1] for t in range(len(text)) if dist[t] == k]
        assert prof["count"][k] == len(vals)
        assert prof["mean"][k] == pytest.approx(np.mean(vals)), f"quote_profile: mean at distance {k}"
    inside = [h[t, 1] for t in range(len(text)) if dist[t] >= 0]
    outside = [h[t, 1] for t in range(len(text)) if dist[t] < 0]
    assert prof["mean_inside"] == pytest.approx(np.mean(inside))
    assert prof["mean_outside"] == pytest.approx(np.mean(outside))
    long = an.quote_profile(h, text, unit=1, max_distance=10)
    assert np.isnan(long["mean"][10]) and long["count"][10] == 0, "no quotation is 10 characters long"


# -----------------------------------------------------------------------------
# Gradient flow
# -----------------------------------------------------------------------------

def test_gradient_flow_data_takes_fewer_windows_when_their_table_would_be_too_large(trained_model, monkeypatch):
    params, chars, text = trained_model["params"], trained_model["chars"], trained_model["val_text"]
    T = 21
    want = an.gradient_flow_data(params, chars, text, k_max=T - 1, streams=2)
    monkeypatch.setattr(an, "TABLE_MAX_ENTRIES", 2 * T * len(chars) + T)         # room for two windows
    got = an.gradient_flow_data(params, chars, text, k_max=T - 1, streams=8)
    assert got["inputs"].shape == (T, 2), "gradient_flow_data: (T,V,B) probabilities must fit TABLE_MAX_ENTRIES"
    np.testing.assert_array_equal(got["trained"], want["trained"])
    monkeypatch.setattr(an, "TABLE_MAX_ENTRIES", 1)                             # one window at least
    assert an.gradient_flow_data(params, chars, text, k_max=T - 1)["inputs"].shape == (T, 1)


def test_per_step_factor_of_a_geometric_decay():
    assert an.per_step_factor(0.5 ** np.arange(20) * 3.0) == pytest.approx(0.5)
    assert an.per_step_factor([2.0, 0.0, 0.5, 0.0]) == pytest.approx(0.5), "zeros (underflow) are skipped"
    assert math.isnan(an.per_step_factor([1.0]))


# -----------------------------------------------------------------------------
# How much context the RNN uses
# -----------------------------------------------------------------------------

def test_loss_by_context_length_is_the_mean_over_windows_read_from_zero(trained_model):
    ids = rnn.encode(trained_model["val_text"], trained_model["chars"])
    C, stride = 12, 7
    got = an.loss_by_context_length(trained_model["params"], ids, max_context=C, stride=stride, block=3)
    # oracle: every window on its own, one stream from h = 0, with target_logprobs
    per_window = np.array([-rnn.target_logprobs(trained_model["params"], ids[s:s + C + 1])
                           for s in range(0, ids.size - C, stride)])     # (W, C)
    assert got["windows"] == len(per_window)
    assert got["context"].tolist() == list(range(1, C + 1))
    assert np.allclose(got["nats"], per_window.mean(axis=0), rtol=0, atol=1e-12), \
        "loss_by_context_length: position j of each window (context j+1) averaged over the windows"
    sem = per_window.std(axis=0, ddof=1) / math.sqrt(len(per_window))
    assert np.allclose(got["sem"], sem, rtol=1e-9, atol=1e-12)


def test_a_model_without_recurrence_gains_nothing_from_context(trained_model):
    # Whh = 0: the prediction depends on the last character only, so with windows at every
    # character the positions differ only in the few characters at the two ends of the text
    params = dict(trained_model["params"], Whh=np.zeros_like(trained_model["params"]["Whh"]))
    ids = np.random.default_rng(0).integers(0, len(trained_model["chars"]), 3000)
    got = an.loss_by_context_length(params, ids, max_context=20, stride=1)
    W, worst = got["windows"], float(-np.log(np.exp(rnn.forward(params, ids[:, None])[1]).min()))
    for c, v in zip(got["context"], got["nats"]):
        assert abs(v - got["nats"][0]) <= 2 * (c - 1) * worst / W + 1e-12, \
            f"context {c}: a memoryless model's loss must not depend on how much it has read"


def test_loss_by_context_length_rejects_what_cannot_work(trained_model):
    ids = rnn.encode(trained_model["val_text"], trained_model["chars"])
    with pytest.raises(ValueError, match="max_context"):
        an.loss_by_context_length(trained_model["params"], ids[:10], max_context=10)
    with pytest.raises(ValueError, match="stride"):
        an.loss_by_context_length(trained_model["params"], ids, max_context=5, stride=0)
