"""Tests for "where the RNN and the n-gram each win" (analysis.py) and its figure.

Every expected value is computed here, by plain loops over the text, not by the
functions under test.
"""

import numpy as np
import pytest

import analysis
import implementation as rnn
import visualization as viz
from helpers import rnn_and_ngram


def test_frequency_bins_are_0_1_2to3_4to15_16to63_64plus():
    counts = [0, 1, 2, 3, 4, 15, 16, 63, 64, 10**6]
    assert analysis.frequency_bin(counts).tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert analysis.FREQUENCY_LABELS == ("0", "1", "2-3", "4-15", "16-63", "64+")


def test_loss_by_context_frequency_groups_and_averages():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 100, 500)
    counts[:3] = 0
    losses = {"rnn": rng.random(500) * 3, "ngram": rng.random(500) * 3}
    out = analysis.loss_by_context_frequency(counts, losses)
    bounds = [(0, 0), (1, 1), (2, 3), (4, 15), (16, 63), (64, 10**9)]
    for i, (lo, hi) in enumerate(bounds):
        members = [t for t in range(500) if lo <= counts[t] <= hi]
        assert out["count"][i] == len(members), f"bin {out['labels'][i]}: wrong number of characters"
        for name in losses:
            want = sum(losses[name][t] for t in members) / len(members)
            assert out["mean_loss"][name][i] == pytest.approx(want, rel=1e-12)
    # an empty bin has mean NaN, not 0
    empty = analysis.loss_by_context_frequency([0, 0, 70], {"m": [1.0, 2.0, 3.0]})
    assert empty["count"].tolist() == [2, 0, 0, 0, 0, 1]
    assert empty["mean_loss"]["m"][0] == 1.5 and np.isnan(empty["mean_loss"]["m"][1])


def test_position_kinds_by_hand():
    text = "ROMEO:\nO, hi there.\n\nJULIET:\nAy me!"
    kinds = analysis.position_kinds(text)
    speaker_lines = {"ROMEO:", "JULIET:"}
    # which line each character is in, by walking the text
    line_of = []
    lines = text.split("\n")
    for li, ln in enumerate(lines):
        line_of += [ln] * len(ln) + ([None] if li < len(lines) - 1 else [])   # the newline belongs to no line
    want = {k: [] for k in analysis.POSITION_KINDS}
    for t in range(1, len(text)):
        prev, cur = text[t - 1], text[t]
        want["all"].append(True)
        want["line start"].append(prev == "\n")
        want["speaker line"].append(line_of[t] in speaker_lines)
        want["word start"].append(cur.isalpha() and not prev.isalpha())
        want["inside word"].append(cur.isalpha() and prev.isalpha())
        want["after punctuation"].append(prev in ":,.!")
    for k in analysis.POSITION_KINDS:
        assert kinds[k].tolist() == want[k], f"position_kinds({text!r})[{k!r}]"
    # spot checks: 'J' of JULIET starts a line and a word and is in a speaker line
    j = text.index("J") - 1
    assert kinds["line start"][j] and kinds["word start"][j] and kinds["speaker line"][j]
    assert not kinds["speaker line"][text.index("A") - 1]


def test_loss_by_position_kind_means():
    text = "AB:\nab, cd.\nef gh\n"
    losses = {"x": np.arange(len(text) - 1, dtype=float)}
    out = analysis.loss_by_position_kind(text, losses)
    i = out["kinds"].index("inside word")
    members = [t - 1 for t in range(1, len(text)) if text[t].isalpha() and text[t - 1].isalpha()]
    assert out["count"][i] == len(members) and out["mean_loss"]["x"][i] == pytest.approx(np.mean(members))
    # the speaker line "AB:" starts the text, so only 'B' and ':' are predicted targets
    assert out["count"][out["kinds"].index("speaker line")] == 2


def test_verbatim_stats_against_brute_force():
    rng = np.random.default_rng(1)
    train = "".join(rng.choice(list("abcdefgh"), 5000))
    planted = train[1000:1037]                                         # 37 characters copied verbatim
    filler = lambda n: "".join(rng.choice(list("XYZ"), n))             # never in the training text
    sample = filler(30) + planted + filler(25) + train[3000:3022] + filler(10)
    out = analysis.verbatim_stats({"s": sample, "none": filler(100), "short": "abc"}, train, window=20)
    windows = [sample[i:i + 20] for i in range(len(sample) - 19)]
    found = sum(w in train for w in windows)                           # Python's substring search
    assert out["s"]["windows"] == len(windows) and out["s"]["found"] == found
    assert out["s"]["share"] == pytest.approx(found / len(windows))
    longest = max(j - i for i in range(len(sample)) for j in range(i, len(sample) + 1)
                  if sample[i:j] in train)
    assert longest == 37
    assert out["s"]["longest"] == longest and out["s"]["longest_text"] in train
    assert out["none"]["found"] == 0 and out["none"]["longest"] == 0
    assert out["short"]["windows"] == 0 and np.isnan(out["short"]["share"]) and out["short"]["longest"] == 3


def test_compare_models_numbers_are_the_models_own():
    rng = np.random.default_rng(2)
    words = ["ROMEO:\n", "JULIET:\n", "the ", "thee, ", "then ", "there. ", "three ", "tree\n", "her "]
    params, ngram, chars, train, val = rnn_and_ngram("".join(rng.choice(words, 900)), 3, rng)
    r = analysis.compare_models(params, ngram, chars, train, val, sample_length=120, temperature=0.8, seed=3)
    ids = rnn.encode(val, chars)
    np.testing.assert_allclose(r["losses"]["rnn"], -rnn.target_logprobs(params, ids), rtol=1e-12)
    np.testing.assert_allclose(r["losses"]["ngram"], -ngram.logprobs(ids), rtol=1e-12)
    # context counts: occurrences of the 2 characters before each target, by brute force
    occ = lambda s: sum(train[i:i + len(s)] == s for i in range(len(train) - len(s) + 1))
    want = [occ(val[max(0, t - 1):t + 1]) for t in range(len(val) - 1)]
    np.testing.assert_array_equal(r["context_counts"], want)
    f = r["frequency"]
    assert f["count"].sum() == len(val) - 1
    for name in ("rnn", "ngram"):                                      # bins partition the characters
        m = f["mean_loss"][name]
        total = np.nansum(m * f["count"])
        assert total == pytest.approx(r["losses"][name].sum(), rel=1e-10)
    nov = r["novelty"]
    assert len(nov["rnn"]["text"]) == len(nov["ngram"]["text"]) == 120
    assert nov["validation"]["text"] == val[:120]
    assert nov["ngram"]["text"] == ngram.sample_text(chars, "\n", 120, 0.8, np.random.default_rng(3))


def test_per_char_losses_in_short_reads_for_a_huge_vocabulary_are_the_same(monkeypatch):
    rng = np.random.default_rng(5)
    params, ngram, chars, _, val = rnn_and_ngram("".join(rng.choice(list("abc de\n"), 3000)), 3, rng)
    ids = rnn.encode(val, chars)
    want = analysis.per_char_losses(params, ngram, ids)
    monkeypatch.setattr(analysis, "TABLE_MAX_ENTRIES", 10 * len(chars))          # 10 characters per read
    got = analysis.per_char_losses(params, ngram, ids)
    np.testing.assert_allclose(got["rnn"], want["rnn"], rtol=1e-12)
    np.testing.assert_array_equal(got["ngram"], want["ngram"])


def test_sample_novelty_primes_with_a_character_of_a_vocabulary_without_newlines():
    rng = np.random.default_rng(6)
    params, ngram, chars, train, val = rnn_and_ngram("".join(rng.choice(list("ab cd"), 2000)), 3, rng)
    assert "\n" not in chars
    r = analysis.sample_novelty(params, ngram, chars, train, val, length=60, seed=1)
    assert r["rnn"]["text"] == rnn.sample_text(params, chars, chars[0], 60, 1.0, np.random.default_rng(1))
    assert len(r["ngram"]["text"]) == 60


def test_ngram_comparison_figure_holds_its_numbers():
    labels = list(analysis.FREQUENCY_LABELS)
    count = np.array([10, 5, 0, 40, 30, 15])
    means = {"rnn": np.array([2.0, 1.9, np.nan, 1.5, 1.4, 1.3]),
             "ngram": np.array([2.5, 2.0, np.nan, 1.4, 1.2, 1.25])}
    fig = viz.ngram_comparison(labels, count, means, order=7)
    assert fig.data["labels"] == labels
    np.testing.assert_array_equal(fig.data["count"], count)
    for k in means:
        np.testing.assert_array_equal(fig.data["mean_loss"][k], means[k])
    heights = [p.get_height() for p in fig.axes[0].patches]          # the bars drawn are those numbers
    np.testing.assert_array_equal(heights, np.concatenate([means["rnn"], means["ngram"]]))
    fig.savefig(__import__("io").BytesIO(), format="png")              # renders without error
