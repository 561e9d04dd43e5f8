"""Tests for "the memory horizon: closing quotes" (analysis.py) and its figure.

Oracles, all independent of the code under test:
* quotation positions worked out from the pieces each test text is built of;
* plain loops over paragraphs, marks and bins written here, with statistics.stdev;
* a synthetic "model" whose memory is known, and a real n-gram whose context
  length is known: the bins must show where each one's memory ends.
"""

import io
import statistics

import numpy as np
import pytest

import analysis
import implementation as rnn
from ngram import NGram
import visualization as viz
from helpers import rnn_and_ngram


# ----------------------------------------------------------------------------- pairing and binning

def test_quotations_pair_in_order_within_each_paragraph():
    # built from pieces so that every position is a sum of lengths, not a search
    a = 'He said "Ah!" and '                   # marks at 8 and 12
    b = '"yes, no" then.'                      # marks at len(a) + 0 and len(a) + 8
    p1 = a + b
    p2 = '"A speech that goes on'              # one mark: it continues in the next paragraph
    p3 = '"and ends here," he said; "x'        # opening mark again, closed at 15; "x never closes
    text = p1 + "\n\n" + p2 + "\n\n" + p3
    s3 = len(p1) + 2 + len(p2) + 2             # where p3 starts
    want = [(8, 12), (len(a), len(a) + 8), (s3, s3 + 15)]
    got = analysis.quotations(text)
    assert got.shape == (3, 2) and got.dtype.kind == "i"
    assert [tuple(r) for r in got] == want, (
        "quotations: pair the marks 1st-2nd, 3rd-4th within each paragraph; an odd last mark of a "
        f"paragraph stays unpaired (got {got.tolist()}, want {want})")
    assert all(text[i] == '"' for r in want for i in r)
    # pairing across the whole text would be out of step after p2's lone mark: (s2, s3), then ("x...)
    assert (len(p1) + 2, s3) not in [tuple(r) for r in got]


def test_quotations_blank_lines_with_spaces_end_a_paragraph_and_single_newlines_do_not():
    text = '"one\nline later" x "odd\n \t\n"b"'     # the paragraph break here holds a space and a tab
    got = [tuple(r) for r in analysis.quotations(text)]
    second = text.index(' \t\n"') + 3
    assert got == [(0, 15), (second, second + 2)], f"quotations({text!r}) = {got}"
    assert analysis.quotations("no quotes at all\n\nat all").shape == (0, 2)
    assert analysis.quotations("").shape == (0, 2)
    assert [tuple(r) for r in analysis.quotations("«a» 'b'", mark="'")] == [(4, 6)]
    with pytest.raises(ValueError, match="one character"):
        analysis.quotations('"a"', mark='""')


def test_quote_length_bins_are_1to10_11to30_31to100_101to300_301plus():
    lengths = [0, 1, 10, 11, 30, 31, 100, 101, 300, 301, 5000]
    assert analysis.quote_length_bin(lengths).tolist() == [-1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert analysis.QUOTE_LABELS == ("1-10", "11-30", "31-100", "101-300", "301+")


# ----------------------------------------------------------------------------- the per-bin numbers

def quoted_text(rng, n_paragraphs=120):
    """Paragraphs of narration and quotations of lengths in every bin, some paragraphs with an odd mark."""
    letters = list("abcdefgh ,.")
    para = []
    for _ in range(n_paragraphs):
        parts = []
        for _ in range(rng.integers(1, 4)):
            parts.append("".join(rng.choice(letters, rng.integers(0, 20))))
            L = int(rng.choice([rng.integers(1, 11), rng.integers(11, 31), rng.integers(31, 101),
                                rng.integers(101, 301), rng.integers(301, 500)]))
            parts.append('"' + "".join(rng.choice(letters, L)) + '"')
        if rng.random() < 0.1:
            parts.append('" left open')
        para.append("".join(parts))
    return "\n\n".join(para)


def plain_loop(text, losses):
    """The expected numbers of loss_at_quotes, by walking the paragraphs one character at a time."""
    bounds = [(1, 10), (11, 30), (31, 100), (101, 300), (301, 10**9)]
    names = list(losses)
    rows = {kind: [[] for _ in bounds] for kind in ("closing", "after", "opening")}
    start = 0
    for par in text.split("\n\n"):             # quoted_text joins paragraphs with exactly one blank line
        marks = [start + i for i, c in enumerate(par) if c == '"']
        for k in range(0, len(marks) - 1, 2):
            o, c = marks[k], marks[k + 1]
            L = c - o - 1
            for b, (lo, hi) in enumerate(bounds):
                if lo <= L <= hi:
                    for kind, pos in (("closing", c), ("after", c + 1), ("opening", o)):
                        if 1 <= pos <= len(text) - 1:          # the loss of text[pos] is losses[pos-1]
                            rows[kind][b].append({n: losses[n][pos - 1] for n in names})
        start += len(par) + 2
    return rows


def test_loss_at_quotes_means_against_a_plain_loop():
    rng = np.random.default_rng(0)
    text = quoted_text(rng)
    M = len(text) - 1
    losses = {"rnn": rng.random(M) * 3, "ngram": rng.random(M) * 3, "other": rng.random(M)}
    out = analysis.loss_at_quotes(text, losses)
    rows = plain_loop(text, losses)
    assert out["labels"] == list(analysis.QUOTE_LABELS)
    for kind, per_bin in rows.items():
        for b, members in enumerate(per_bin):
            where = f"loss_at_quotes: {kind!r} marks, bin {analysis.QUOTE_LABELS[b]}"
            assert out["count"][kind][b] == len(members), f"{where}: wrong count"
            assert len(members) >= 2, "the test text should fill every bin"
            for name in losses:
                v = [m[name] for m in members]
                d = [m[name] - m["rnn"] for m in members]    # paired against the first model
                assert out["mean"][kind][name][b] == pytest.approx(statistics.fmean(v), rel=1e-12), where
                assert out["sem"][kind][name][b] == pytest.approx(
                    statistics.stdev(v) / len(v) ** 0.5, rel=1e-9), f"{where}: sem is std(ddof=1)/sqrt(n)"
                assert out["gap"][kind][name][b] == pytest.approx(statistics.fmean(d), abs=1e-12), where
                if name != "rnn":
                    assert out["gap_sem"][kind][name][b] == pytest.approx(
                        statistics.stdev(d) / len(d) ** 0.5, rel=1e-9), where
    assert np.all(out["gap"]["closing"]["rnn"] == 0)


def test_loss_at_quotes_marks_at_the_edges_and_empty_bins():
    text = '"ab" c ""\n\nd "e"'                    # an opening mark at 0, an empty quotation, a close at the end
    losses = {"m": np.arange(1.0, len(text))}  # losses[t] = t + 1: the loss of text[i] is i
    out = analysis.loss_at_quotes(text, losses)
    assert [tuple(r) for r in out["pairs"]] == [(0, 3), (7, 8), (13, 15)]
    assert out["lengths"].tolist() == [2, 0, 1] and out["bin"].tolist() == [0, -1, 0]
    # bin 1-10 holds "ab" and "e"; the empty quotation is in no bin
    assert out["count"]["closing"].tolist() == [2, 0, 0, 0, 0]
    assert out["mean"]["closing"]["m"][0] == pytest.approx((3 + 15) / 2)
    assert out["count"]["opening"].tolist() == [1, 0, 0, 0, 0], "the mark at position 0 has no loss"
    assert out["mean"]["opening"]["m"][0] == 13
    assert out["count"]["after"].tolist() == [1, 0, 0, 0, 0], "the last character has nothing after it"
    assert out["mean"]["after"]["m"][0] == 4
    assert np.isnan(out["mean"]["closing"]["m"][1]) and np.isnan(out["sem"]["opening"]["m"][0])
    with pytest.raises(ValueError, match=r"len\(text\)-1"):
        analysis.loss_at_quotes(text, {"m": np.zeros(len(text))})


# ----------------------------------------------------------------------------- can it see memory?

def test_a_model_that_remembers_30_characters_shows_it_in_the_bins():
    rng = np.random.default_rng(1)
    text = quoted_text(rng, 200)
    M = len(text) - 1
    horizon = 30
    remembers = rng.uniform(1.0, 3.0, M)        # ordinary characters: anything
    forgets = rng.uniform(1.0, 3.0, M)
    for o, c in analysis.quotations(text):
        L = c - o - 1
        remembers[c - 1] = rng.uniform(0.0, 0.2) if L <= horizon else rng.uniform(2.0, 2.4)
        forgets[c - 1] = rng.uniform(2.0, 2.4)  # the same price at every length
    out = analysis.loss_at_quotes(text, {"remembers": remembers, "forgets": forgets})
    closing, opening = out["mean"]["closing"], out["mean"]["opening"]
    assert np.all(closing["remembers"][:2] < 0.2) and np.all(closing["remembers"][2:] > 2.0), (
        f"loss_at_quotes: a model that remembers {horizon} characters should be cheap on closing "
        f"quotes of 1-10 and 11-30 characters only; got {closing['remembers']}")
    assert np.ptp(closing["forgets"]) < 0.2, "a model without memory should be flat across the bins"
    advantage = out["gap"]["closing"]["forgets"]
    assert np.all(advantage[:2] > 1.8) and np.all(np.abs(advantage[2:]) < 0.4), advantage
    # the control: opening marks are ordinary characters to both models, flat across the bins
    for name in opening:
        assert np.all(np.abs(opening[name] - 2.0) < 0.5), f"opening marks of {name}: {opening[name]}"


def test_a_real_ngram_forgets_the_opening_quote_beyond_its_context():
    # quotations '"ab ba ab,"' end with the only comma followed by '"'; narration commas are followed
    # by a space. An order-12 n-gram sees the opening mark for quotations of up to 10 characters.
    rng = np.random.default_rng(5)
    words = lambda n: " ".join(rng.choice(["ab", "ba"], n))
    parts = []
    for _ in range(4000):
        parts.append('"' + words(rng.integers(1, 20)) + ',"' if rng.random() < 0.5
                     else words(rng.integers(1, 10)) + ",")
        parts.append(" " if rng.random() < 0.8 else "\n\n")
    text = "".join(parts)
    chars = rnn.build_vocab(text)
    ids = rnn.encode(text, chars)
    n = len(ids) * 3 // 4
    ngram = NGram(12).fit(ids[:n], len(chars))
    val = text[n:]
    out = analysis.loss_at_quotes(val, {"ngram": -ngram.logprobs(ids[n:])})
    closing, opening = out["mean"]["closing"]["ngram"], out["mean"]["opening"]["ngram"]
    assert out["count"]["closing"][:3].min() >= 30 and out["count"]["closing"][3:].sum() == 0
    assert closing[0] < 0.2, f"order 12 sees the opening mark of quotations up to 10 long: {closing}"
    assert closing[1] > 0.3 and closing[2] > 0.3, f"beyond 10 characters it must guess: {closing}"
    assert abs(closing[2] - closing[1]) < 0.15, f"and the guess does not depend on the length: {closing}"
    assert np.ptp(opening[:3]) < 0.15, f"the opening marks (the control) are flat: {opening}"


def test_memory_horizon_data_is_the_models_own_numbers():
    rng = np.random.default_rng(2)
    params, ngram, chars, _, val = rnn_and_ngram(quoted_text(rng, 60), 4, rng)
    r = analysis.memory_horizon_data(params, ngram, chars, val)
    ids = rnn.encode(val, chars)
    np.testing.assert_allclose(r["losses"]["rnn"], -rnn.target_logprobs(params, ids), rtol=1e-12)
    np.testing.assert_allclose(r["losses"]["ngram"], -ngram.logprobs(ids), rtol=1e-12)
    assert r["order"] == 4
    q = r["quotes"]
    for o, c in q["pairs"]:
        assert val[o] == val[c] == '"'
    b = q["bin"]
    for kind, at in (("closing", q["pairs"][:, 1]), ("opening", q["pairs"][:, 0])):
        for i in range(5):
            sel = (b == i) & (at >= 1)
            if sel.any():
                for name in ("rnn", "ngram"):
                    assert q["mean"][kind][name][i] == pytest.approx(r["losses"][name][at[sel] - 1].mean())
                assert q["gap"][kind]["ngram"][i] == pytest.approx(
                    (r["losses"]["ngram"][at[sel] - 1] - r["losses"]["rnn"][at[sel] - 1]).mean())


# ----------------------------------------------------------------------------- the figure

def test_memory_horizon_figure_holds_its_numbers():
    labels = list(analysis.QUOTE_LABELS)
    count = np.array([45, 169, 219, 91, 22])
    closing = {"rnn": np.array([0.3, 0.5, 0.7, 0.9, np.nan]), "ngram": np.array([0.6, 1.0, 1.0, 1.1, 1.0])}
    opening = {"rnn": np.array([1.2, 1.1, 1.2, 1.3, 1.2]), "ngram": np.array([1.4, 1.3, 1.4, 1.5, 1.4])}
    sem = {"rnn": np.full(5, 0.05), "ngram": np.full(5, 0.07)}
    gap_sem = {"closing": np.full(5, 0.04), "opening": np.full(5, 0.03)}
    fig = viz.memory_horizon(labels, count, closing, opening, order=7, closing_sem=sem, opening_sem=sem,
                             advantage_sem=gap_sem)
    assert fig.data["labels"] == labels and fig.data["order"] == 7
    np.testing.assert_array_equal(fig.data["count"], count)
    for kind, given in (("closing", closing), ("opening", opening)):
        for k in given:
            np.testing.assert_array_equal(fig.data[kind][k], given[k])
        np.testing.assert_allclose(fig.data["advantage"][kind], given["ngram"] - given["rnn"])
    top, bottom = fig.axes[0], fig.axes[1]                      # losses above, advantages below
    drawn = [line.get_ydata() for line in top.lines if len(line.get_xdata()) == len(labels)]
    for want in (closing["rnn"], closing["ngram"], opening["rnn"], opening["ngram"]):
        assert any(np.array_equal(np.asarray(d, float), want, equal_nan=True) for d in drawn), want
    heights = [p.get_height() for p in bottom.patches]         # the bars are the advantages
    np.testing.assert_allclose(heights, np.concatenate([closing["ngram"] - closing["rnn"],
                                                        opening["ngram"] - opening["rnn"]]))
    caps = [np.asarray(line.get_ydata(), float) for line in bottom.lines]   # error-bar caps
    for kind, given in (("closing", closing), ("opening", opening)):
        for sign in (1, -1):                                   # advantage + sem and advantage - sem
            want = given["ngram"] - given["rnn"] + sign * gap_sem[kind]
            assert any(c.shape == want.shape and np.allclose(c, want, equal_nan=True) for c in caps), (
                f"memory_horizon: the {kind} advantage's error bars should reach {want}")
    assert [t.get_text() for t in bottom.get_xticklabels()][0] == "1-10\n(45)"
    fig.savefig(io.BytesIO(), format="png")                    # renders without error
    # without a control and without error bars it still draws
    plain = viz.memory_horizon(labels, count, closing)
    assert plain.data["opening"] == {} and list(plain.data["advantage"]) == ["closing"]
    plain.savefig(io.BytesIO(), format="png")
