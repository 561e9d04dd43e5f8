"""Tests for the interpolated Kneser-Ney character n-gram (ngram.NGram).

Oracles, all independent of the code under test:
* probabilities worked out by hand on a five-character corpus;
* the smoothed unigram formula, written out with np.bincount;
* a plain dictionary-and-tuple Kneser-Ney written in this file (no packed keys,
  so it cannot overflow), at orders and vocabularies where V**N passes 2**64;
* chi-square tests of sampled frequencies against the distribution;
* the reference validation losses on tiny Shakespeare.
"""

from collections import Counter

import numpy as np
import pytest

import implementation as rnn
import safeio
import ngram
import checkpoints


# ----------------------------------------------------------------------------- helpers

def kn_reference(train, V, N, D=0.9):
    """P(w | context) of interpolated Kneser-Ney, the textbook way: dictionaries of tuples.

    Top order: raw counts; lower orders: continuation counts N1+(. g) = number of
    distinct characters seen right before the n-gram g.
    """
    train = [int(x) for x in train]
    grams = {k: Counter(tuple(train[i:i + k]) for i in range(len(train) - k + 1)) for k in range(1, N + 2)}
    counts = {N: dict(grams[N])}
    for k in range(1, N):
        left = {}
        for g in grams[k + 1]:                        # each distinct (k+1)-gram a+g adds one left neighbour of g
            left[g[1:]] = left.get(g[1:], 0) + 1
        counts[k] = left

    def P(k, h, w):                                   # len(h) == k - 1
        lower = 1.0 / V if k == 1 else P(k - 1, h[1:], w)
        c = counts[k]
        row = [c.get(h + (v,), 0) for v in range(V)]
        total = sum(row)
        if total == 0:
            return lower
        n1 = sum(1 for x in row if x > 0)
        return max(row[w] - D, 0) / total + D * n1 / total * lower

    def prob(context, w):
        h = tuple(int(x) for x in context)[max(0, len(context) - (N - 1)):] if N > 1 else ()
        return P(len(h) + 1, h, int(w))

    return prob


def repetitive_ids(rng, n, V, n_snippets=6, snippet_len=30):
    """Random ids with long repeated stretches (so high orders see real counts)."""
    snippets = [rng.integers(0, V, snippet_len) for _ in range(n_snippets)]
    parts, total = [], 0
    while total < n:
        if rng.random() < 0.7:
            s = snippets[rng.integers(n_snippets)]
            a = rng.integers(0, snippet_len - 5)
            part = s[a:a + rng.integers(5, snippet_len - a + 1)]
        else:
            part = rng.integers(0, V, rng.integers(1, 4))
        parts.append(part)
        total += len(part)
    return np.concatenate(parts)[:n].astype(np.int64)


# ----------------------------------------------------------------------------- exact values

def test_hand_computed_probabilities_on_a_tiny_corpus():
    # corpus "abaab", vocabulary a=0, b=1, c=2 (c never occurs), discount D = 0.5
    ids = np.array([0, 1, 0, 0, 1])
    # Order 2. Bigrams: ab x2, ba x1, aa x1 (raw counts at the top).
    # Unigram continuation counts (distinct left neighbours): a <- {b, a} = 2, b <- {a} = 1, c = 0;
    # their total is 3 and 2 characters have a non-zero count.
    # P1(a) = (2-.5)/3 + .5*2/3 * 1/3 = 11/18, P1(b) = (1-.5)/3 + 1/9 = 5/18, P1(c) = 1/9 = 2/18
    P1 = np.array([11, 5, 2]) / 18
    # context a: c(a.) = 1 + 2 = 3, N1+(a.) = 2, taken mass .5*2/3 = 1/3
    #   P(a|a) = .5/3 + 1/3*11/18 = 10/27, P(b|a) = 1.5/3 + 1/3*5/18 = 16/27, P(c|a) = 1/3*2/18 = 1/27
    # context b: c(b.) = 1, N1+(b.) = 1, taken mass .5
    #   P(a|b) = .5 + .5*11/18 = 29/36, P(b|b) = .5*5/18 = 5/36, P(c|b) = .5*2/18 = 2/36
    m2 = ngram.NGram(2, discount=0.5).fit(ids, 3)
    np.testing.assert_allclose(m2.probs([0]), np.array([10, 16, 1]) / 27, rtol=1e-12,
                               err_msg="NGram(2).probs([a]) on 'abaab' with D=0.5: see the arithmetic in the test")
    np.testing.assert_allclose(m2.probs([1]), np.array([29, 5, 2]) / 36, rtol=1e-12)
    np.testing.assert_allclose(m2.probs([2]), P1, rtol=1e-12,
                               err_msg="an unseen context (c) must fall back to the lower order alone")
    np.testing.assert_allclose(m2.probs([]), P1, rtol=1e-12, err_msg="the empty context is the order-1 level")

    # Order 3. Trigrams (raw): aba, baa, aab, one each.
    # Bigram continuation counts: ab <- {a} (its first occurrence has no left neighbour) = 1,
    # ba <- {a} = 1, aa <- {b} = 1.
    # level 2, context a: total 2, N1+ = 2, taken .5*2/2 = .5:
    #   P2(a|a) = .5/2 + .5*11/18 = 5/9, P2(b|a) = .5/2 + .5*5/18 = 7/18, P2(c|a) = .5*2/18 = 1/18
    # level 2, context b: total 1 (ba), N1+ = 1: P2(a|b) = .5 + .5*11/18 = 29/36
    # level 3, context ba: c = 1 (baa), N1+ = 1:
    #   P(a|ba) = .5 + .5*5/9 = 7/9, P(b|ba) = .5*7/18 = 7/36, P(c|ba) = .5*1/18 = 1/36
    # level 3, context ab: c = 1 (aba): P(a|ab) = .5 + .5*29/36 = 65/72
    m3 = ngram.NGram(3, discount=0.5).fit(ids, 3)
    np.testing.assert_allclose(m3.probs([1, 0]), [7 / 9, 7 / 36, 1 / 36], rtol=1e-12,
                               err_msg="NGram(3).probs([b, a]): lower levels must use continuation counts")
    assert m3.probs([0, 1])[0] == pytest.approx(65 / 72, rel=1e-12)
    np.testing.assert_allclose(m3.probs([2, 2]), P1, rtol=1e-12)
    np.testing.assert_allclose(m3.probs([2, 0]), [5 / 9, 7 / 18, 1 / 18], rtol=1e-12,
                               err_msg="context ca is unseen: P must be level 2's P(.|a) alone")


def test_order_one_is_the_smoothed_unigram():
    rng = np.random.default_rng(1)
    V, D = 12, 0.9
    train = rng.choice(V, size=500, p=np.r_[np.full(9, 0.1), 0.1, 0.0, 0.0])  # two characters never occur
    c = np.bincount(train, minlength=V)                       # raw counts (order 1 is the top order)
    n = c.sum()
    # P(w) = max(c(w) - D, 0) / n + D * (number of w with c(w) > 0) / n * 1/V
    want = np.maximum(c - D, 0) / n + D * np.count_nonzero(c) / n / V
    m = ngram.NGram(1).fit(train, V)
    np.testing.assert_allclose(m.probs([]), want, rtol=1e-12)
    np.testing.assert_allclose(m.probs([3, 4, 5]), want, rtol=1e-12,
                               err_msg="order 1 must ignore the context")


@pytest.mark.parametrize("V,N", [(5, 4), (82, 10), (300, 12)])
def test_matches_a_dictionary_reference_even_where_packed_keys_would_overflow(V, N):
    # V**N: 82**10 > 2**63 and 300**12 > 2**98; the reference uses tuples, which cannot overflow
    rng = np.random.default_rng(V + N)
    train = repetitive_ids(rng, 1500, V)
    m = ngram.NGram(N).fit(train, V)
    ref = kn_reference(train, V, N)
    contexts = [train[100:100 + N - 1], train[700:700 + N + 3], train[5:7], [],
                rng.integers(0, V, N - 1),                    # almost surely never seen
                np.r_[train[300:300 + N - 2], rng.integers(0, V, 1)]]
    for ctx in contexts:
        p = m.probs(ctx)
        want = np.array([ref(ctx, w) for w in range(V)])
        np.testing.assert_allclose(p, want, rtol=1e-10, atol=1e-15,
                                   err_msg=f"NGram({N}).probs({list(ctx)}) differs from the dictionary "
                                           f"reference (V={V}): n-gram keys collide or overflow?")


def test_modified_kneser_ney_uses_three_discounts_from_count_of_counts():
    rng = np.random.default_rng(7)
    V = 6
    train = repetitive_ids(rng, 3000, V, snippet_len=12)
    m = ngram.NGram(3, discount="modified").fit(train, V)
    tri = Counter(tuple(train[i:i + 3]) for i in range(len(train) - 2))
    n = [sum(1 for v in tri.values() if v == r) for r in (1, 2, 3, 4)]
    Y = n[0] / (n[0] + 2 * n[1])
    want = [1 - 2 * Y * n[1] / n[0], 2 - 3 * Y * n[2] / n[1], 3 - 4 * Y * n[3] / n[2]]
    np.testing.assert_allclose(m.discounts[3], want, rtol=1e-12,
                               err_msg="modified KN: D_r = r - (r+1) Y n_{r+1}/n_r at the top order")
    # one context by hand: P(w|h) = (c(hw) - D_c(hw)) / c(h) + (D1 N1 + D2 N2 + D3 N3+) / c(h) * P2(w|h')
    h = tuple(int(x) for x in train[50:52])
    row = np.array([tri.get(h + (w,), 0) for w in range(V)], float)
    D = np.array([0.0, *want])[np.minimum(row, 3).astype(int)]
    m2 = ngram.NGram(3, discount="modified").fit(train, V)
    lower = np.array([m2._probs_of_windows(np.array([[h[0], h[1], w]]), np.array([2]))[0] for w in range(V)])
    want_p = (row - D) / row.sum() + D.sum() / row.sum() * lower
    np.testing.assert_allclose(m.probs(h), want_p, rtol=1e-10)
    np.testing.assert_allclose(m.probs(h).sum(), 1.0, rtol=1e-12)


# ----------------------------------------------------------------------------- properties

@pytest.mark.parametrize("discount", [0.9, 0.4, "modified"])
def test_probabilities_sum_to_one_for_seen_unseen_and_empty_contexts(discount):
    rng = np.random.default_rng(3)
    V = 9
    train = repetitive_ids(rng, 2000, V - 1)                 # the last character never occurs in training
    for N in (1, 2, 3, 5, 8):
        m = ngram.NGram(N, discount).fit(train, V)
        contexts = [[], [V - 1], rng.integers(0, V, 20), train[:N - 1], [V - 1] * 7]
        contexts += [rng.integers(0, V, rng.integers(0, 12)) for _ in range(20)]
        for ctx in contexts:
            p = m.probs(ctx)
            assert p.shape == (V,) and np.all(p > 0), f"NGram({N}).probs({list(ctx)}): every p must be > 0"
            assert p.sum() == pytest.approx(1.0, abs=1e-12), \
                f"NGram({N}, {discount!r}).probs({list(ctx)}) sums to {p.sum()!r}, not 1"


def _train_and_text(seed, n_seen=150, n_after=50):
    """V = 10; training ids without the last character; a text with seen stretches, then that character."""
    rng = np.random.default_rng(seed)
    V = 10
    train = repetitive_ids(rng, 3000, V - 1)
    seq = np.r_[repetitive_ids(rng, n_seen, V - 1), [V - 1, 3, V - 1], repetitive_ids(rng, n_after, V)]
    return V, train, seq


def test_batched_logprobs_equal_probs_at_every_position():
    V, train, seq = _train_and_text(4)
    for N in (1, 3, 6):
        m = ngram.NGram(N).fit(train, V)
        lp = m.logprobs(seq)
        assert lp.shape == (len(seq) - 1,)
        want = np.array([np.log(m.probs(seq[:t + 1])[seq[t + 1]]) for t in range(len(seq) - 1)])
        np.testing.assert_allclose(lp, want, rtol=1e-12,
                                   err_msg=f"NGram({N}).logprobs(ids)[t] must be log probs(ids[:t+1])[ids[t+1]]")
        assert np.allclose(m.logprobs(seq, block=7), lp, rtol=1e-13), "logprobs must not depend on the block size"
        r = m.evaluate(seq)
        assert r["chars"] == len(seq) - 1
        assert r["nats"] == pytest.approx(-want.mean(), rel=1e-12)
        assert r["bits"] == pytest.approx(r["nats"] / np.log(2), rel=1e-12)


def test_a_larger_order_never_hurts_the_training_loss():
    rng = np.random.default_rng(5)
    words = ["the ", "then ", "there ", "thee ", "three ", "tree ", "rather ", "her ", "here "]
    text = "".join(rng.choice(words, 1500))
    chars = rnn.build_vocab(text)
    ids = rnn.encode(text, chars)
    losses = [ngram.NGram(N).fit(ids, len(chars)).evaluate(ids)["nats"] for N in range(1, 9)]
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:])), \
        f"training-text loss must not rise with the order; got {np.round(losses, 4).tolist()}"


def test_context_counts_count_occurrences_in_the_training_text():
    text = "the cat sat on the mat; the hat."
    chars = rnn.build_vocab(text + "xz")
    m = ngram.NGram(4).fit(rnn.encode(text, chars), len(chars))
    probe = "the zat on the hat"
    got = m.context_counts(rnn.encode(probe, chars))

    def occurrences(s):                             # overlapping occurrences, by brute force
        return sum(1 for i in range(len(text) - len(s) + 1) if text[i:i + len(s)] == s)

    want = [occurrences(probe[max(0, t - 2):t + 1]) for t in range(len(probe) - 1)]
    np.testing.assert_array_equal(got, want)
    assert ngram.NGram(1).fit(rnn.encode(text, chars), len(chars)).context_counts(
        rnn.encode(probe, chars)).tolist() == [len(text)] * (len(probe) - 1)


# ----------------------------------------------------------------------------- sampling

def test_sample_frequencies_match_the_distribution_and_temperature():
    rng = np.random.default_rng(6)
    V = 5
    train = rng.choice(V, size=400, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    m = ngram.NGram(1).fit(train, V)                   # order 1: every draw has the same distribution
    p = m.probs([])
    n = 10_000
    for temp, top_k in ((1.0, None), (0.5, None), (2.0, None), (1.0, 3)):
        q = p ** (1 / temp)                          # softmax(log p / T) is p^(1/T), renormalised
        if top_k:
            q = np.where(q >= np.sort(q)[-top_k], q, 0)
        q = q / q.sum()
        ids = m.sample([], n, temperature=temp, rng=rng, top_k=top_k)
        counts = np.bincount(ids, minlength=V)
        keep = q > 0
        assert counts[~keep].sum() == 0, f"top_k={top_k}: a character outside the top k was drawn"
        chi2 = float(((counts[keep] - n * q[keep]) ** 2 / (n * q[keep])).sum())
        assert chi2 < 18.47, (f"NGram.sample at T={temp}, top_k={top_k}: frequencies differ from p^(1/T): "
                              f"chi2={chi2:.1f} (<= 4 dof, p=0.001 critical value 18.47)")


def test_samples_follow_the_context():
    rng = np.random.default_rng(8)
    V = 6
    train = repetitive_ids(rng, 2000, V)
    m = ngram.NGram(3).fit(train, V)
    ctx = train[10:12]
    p = m.probs(ctx)
    n = 4000
    draws = [m.sample(ctx, 1, rng=rng)[0] for _ in range(n)]
    counts = np.bincount(draws, minlength=V)
    chi2 = float(((counts - n * p) ** 2 / (n * p)).sum())
    assert chi2 < 20.52, f"NGram.sample(context): chi2={chi2:.1f} against probs(context) (5 dof, p=0.001: 20.52)"


def test_sample_text_is_reproducible_and_accepts_an_empty_prime():
    text = "to be or not to be, that is the question. " * 20
    chars = rnn.build_vocab(text)
    m = ngram.NGram(4).fit(rnn.encode(text, chars), len(chars))
    a = m.sample_text(chars, "to b", 80, 0.7, np.random.default_rng(0))
    b = m.sample_text(chars, "to b", 80, 0.7, np.random.default_rng(0))
    assert a == b and len(a) == 80 and set(a) <= set(chars)
    assert len(m.sample_text(chars, "", 30, 1.0, np.random.default_rng(1))) == 30
    with pytest.raises(ValueError, match="temperature"):
        m.sample_text(chars, "to", 5, 0.0)


# ----------------------------------------------------------------------------- errors

def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="order"):
        ngram.NGram(0)
    with pytest.raises(ValueError, match="discount"):
        ngram.NGram(3, discount=1.5)
    with pytest.raises(ValueError, match="fit"):
        ngram.NGram(3).probs([])
    with pytest.raises(ValueError, match="vocab_size"):
        ngram.NGram(2).fit([0, 1, 5], 3)
    m = ngram.NGram(2).fit([0, 1, 2], 3)
    with pytest.raises(ValueError, match="0..2"):
        m.logprobs([0, 3])
    with pytest.raises(ValueError, match="2 characters"):
        m.evaluate([1])


def test_logprob_table_rows_are_the_whole_distribution_at_each_position():
    V, train, seq = _train_and_text(5, 120, 40)
    for N in (1, 3, 6):
        m = ngram.NGram(N).fit(train, V)
        table = m.logprob_table(seq)
        assert table.shape == (len(seq) - 1, V)
        want = np.log([m.probs(seq[:t + 1]) for t in range(len(seq) - 1)])
        np.testing.assert_allclose(table, want, rtol=1e-12,
                                   err_msg=f"NGram({N}).logprob_table(ids)[t] must be log probs(ids[:t+1])")
        np.testing.assert_allclose(table[np.arange(len(seq) - 1), seq[1:]], m.logprobs(seq), rtol=1e-12,
                                   err_msg="column ids[t+1] of row t must be logprobs(ids)[t]")
        for block in (1, 25, 10 * V + 3):                        # 1 row at a time, 2 rows, a ragged end
            assert np.array_equal(m.logprob_table(seq, block=block), table), \
                f"NGram({N}).logprob_table must not depend on block ({block})"
    other = train[::-1].copy()                                   # refitting must forget the first fit
    assert np.array_equal(m.fit(other, V).logprob_table(seq), ngram.NGram(6).fit(other, V).logprob_table(seq)), \
        "a refitted NGram's logprob_table must be a fresh model's: nothing of the first fit may remain"
    with pytest.raises(ValueError, match="logprob_table"):
        m.logprob_table([0, V])


# ----------------------------------------------------------------------------- the RNN's per-character terms

def test_rnn_logprob_table_and_target_logprobs_read_one_stream_from_h0():
    rng = np.random.default_rng(9)
    V, H = 7, 16
    params = rnn.init_params(V, H, rng, np.float64, init_scale=0.5)
    ids = rng.integers(0, V, 700)
    table = rnn.logprob_table(params, ids, seq_length=64)
    _, logp = rnn.forward(params, ids[:-1])                          # (T,V,1), one pass over everything
    assert table.shape == (len(ids) - 1, V)
    np.testing.assert_allclose(table, logp[:, :, 0], rtol=1e-10,
                               err_msg="logprob_table must carry the state across its chunks")
    lp = rnn.target_logprobs(params, ids, seq_length=64)
    assert np.array_equal(lp, table[np.arange(len(ids) - 1), ids[1:]]), \
        "target_logprobs must be column ids[t+1] of logprob_table's row t"
    assert -lp.mean() == pytest.approx(rnn.evaluate(params, ids, num_chunks=1)["nats"], rel=1e-12), \
        "target_logprobs' terms are evaluate(num_chunks=1)'s"


# ----------------------------------------------------------------------------- the product of two models

def _random_tables(rng, M, V, scale=1.5):
    """Two (M,V) tables of log-probabilities from random logits."""
    la = rng.normal(size=(M, V)) * scale
    lb = rng.normal(size=(M, V)) * scale
    return (la - np.logaddexp.reduce(la, axis=1, keepdims=True),
            lb - np.logaddexp.reduce(lb, axis=1, keepdims=True))


@pytest.mark.parametrize("weights", [(0.7, 0.4), (0.9, 0.5, -0.3)])
def test_fit_product_recovers_the_weights_the_targets_were_drawn_with(weights):
    from analysis import fit_product, product_nats

    rng = np.random.default_rng(21)
    M, V = 40_000, 6
    tables = np.stack([_random_tables(rng, M, V)[0] for _ in weights])   # K (M,V) log-probability tables
    z = np.tensordot(weights, tables, axes=1)
    p = np.exp(z - np.logaddexp.reduce(z, axis=1, keepdims=True))
    targets = (p.cumsum(axis=1) > rng.random((M, 1))).argmax(axis=1)    # one draw from each row's p
    got = fit_product(tables, targets)
    assert got == pytest.approx(weights, abs=0.05), \
        f"fit_product should recover the weights {weights} the targets were drawn with, got {got}"
    rows = np.arange(M)
    for k in range(len(weights)):
        alone = np.eye(len(weights))[k]                                  # (1, 0, ...) is model k alone
        assert product_nats(tables, targets, alone) == pytest.approx(-tables[k][rows, targets].mean(), rel=1e-12)


def test_product_gradient_and_hessian_against_central_differences():
    from analysis import _product_terms, fit_product, product_nats

    rng = np.random.default_rng(22)
    tables = np.stack(_random_tables(rng, 500, 5) + _random_tables(rng, 500, 5)[:1])   # K = 3
    targets = rng.integers(0, 5, 500)
    d = 1e-5
    for w in ((0.5, 0.5, 0.0), (1.2, -0.3, 0.4), tuple(fit_product(tables, targets))):
        w = np.array(w)
        _, g, hess = _product_terms(tables, targets, w)
        for i in range(3):
            e = np.eye(3)[i] * d
            num = (product_nats(tables, targets, w + e) - product_nats(tables, targets, w - e)) / (2 * d)
            assert num == pytest.approx(g[i], rel=1e-5, abs=1e-8), f"d loss / d w[{i}] at {w}"
            g_plus = _product_terms(tables, targets, w + e)[1]
            g_minus = _product_terms(tables, targets, w - e)[1]
            np.testing.assert_allclose((g_plus - g_minus) / (2 * d), hess[:, i], rtol=1e-5, atol=1e-8,
                                       err_msg=f"Hessian column {i} at {w}")
    w = fit_product(tables, targets)
    best = product_nats(tables, targets, w)
    for step in np.r_[np.eye(3), -np.eye(3)] * 1e-3:
        assert product_nats(tables, targets, w + step) >= best - 1e-12, "fit_product must end at the minimum"


def test_product_functions_reject_mismatched_or_infinite_tables():
    from analysis import fit_product, product_cross_validated, product_nats

    la, lb = _random_tables(np.random.default_rng(23), 20, 4)
    t = np.zeros(20, dtype=int)
    with pytest.raises(ValueError, match="product_nats: need K"):
        product_nats([la, lb[:, :3]], t, (1, 0))
    with pytest.raises(ValueError, match="fit_product: need K"):
        fit_product([la, lb], t[:5])
    bad = lb.copy()
    bad[3, 1] = -np.inf
    with pytest.raises(ValueError, match="product_cross_validated: the tables must be finite"):
        product_cross_validated([la, bad], t)


# ----------------------------------------------------------------------------- real data

def test_reference_losses_on_tiny_shakespeare(shakespeare_path):
    text = safeio.read_text(shakespeare_path)
    chars = rnn.build_vocab(text)
    train, val = rnn.train_val_split(rnn.encode(text, chars), 0.1)
    for N, want in ((5, 1.564), (6, 1.528), (7, 1.5225)):
        got = ngram.NGram(N).fit(train, len(chars)).evaluate(val)
        assert got["chars"] == len(val) - 1
        assert abs(got["nats"] - want) < 0.002, \
            (f"NGram({N}) on tiny Shakespeare: validation {got['nats']:.4f} nats/char, reference {want}; "
             "check the discount, the continuation counts below the top order and the unseen-context rule")


# ----------------------------------------------------------------------------- the command line

def _cli_corpus(tmp_path):
    """8,000 characters: 7,600 of made-up verse, then 400 random letters (the second half of validation)."""
    rng = np.random.default_rng(11)
    words = ["ROMEO:\n", "the ", "thee ", "then ", "there, ", "three ", "her ", "here.\n", "hear "]
    verse = "".join(rng.choice(words, 3000))[:7600]
    noise = "".join(rng.choice(sorted(set(verse)), 400))
    text = verse + noise
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_ngram_command_writes_the_table_and_mixes_on_the_other_half(tmp_path, capsys):
    import json

    import train_minimal

    data, text = _cli_corpus(tmp_path)
    chars = rnn.build_vocab(text)
    V = len(chars)
    params = rnn.init_params(V, 8, np.random.default_rng(12), np.float64, init_scale=0.5)
    ck = checkpoints.save_checkpoint(tmp_path / "rnn.npz", params, rnn.init_optimizer("adagrad", params), chars,
                             np.zeros((8, 1)), {"step": 0, "epoch": 0, "window": 0, "smooth_loss": 4.0})
    out = tmp_path / "out"
    out.mkdir()
    (out / "best.npz").write_bytes(b"a training run's checkpoint")
    code = train_minimal.main(["--ngram", "--data", data, "--out", out, "--orders", "1-4",
                               "--checkpoint", ck, "--seed", "3", "--length", "50"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert (out / "best.npz").read_bytes() == b"a training run's checkpoint", "--ngram must not touch checkpoints"
    result = json.loads((out / "ngram.json").read_text())

    train, val = rnn.train_val_split(rnn.encode(text, chars), 0.1)
    assert [r["order"] for r in result["table"]] == [1, 2, 3, 4]
    for row in result["table"]:
        assert set(row) >= {"order", "val_nats", "val_bits", "fit_seconds", "eval_seconds"}
        want = ngram.NGram(row["order"]).fit(train, V).evaluate(val)
        assert row["val_nats"] == pytest.approx(want["nats"], rel=1e-12)
        assert row["val_bits"] == pytest.approx(want["bits"], rel=1e-12)
        assert row["fit_seconds"] >= 0 and f"{want['nats']:.4f}" in printed
    best = min(result["table"], key=lambda r: r["val_nats"])["order"]
    assert result["best_order"] == best and len(result["sample"]) == 50

    # lambda by brute force: lam on the grid minimising the mean -log(lam p_rnn + (1-lam) p_ngram)
    lp_r = rnn.target_logprobs(params, val)
    lp_n = ngram.NGram(best).fit(train, V).logprobs(val)
    M = len(lp_r)
    first, second = slice(0, M // 2), slice(M // 2, M)

    def mix(lam, part):
        return float(np.mean([-np.log(lam * np.exp(a) + (1 - lam) * np.exp(b))
                              for a, b in zip(lp_r[part], lp_n[part])]))

    grid = [i / 20 for i in range(21)]
    halves = result["mixture"]["halves"]
    for h, (choose, report) in zip(halves, ((first, second), (second, first))):
        lam = min(grid, key=lambda g: mix(g, choose))
        assert h["lambda"] == pytest.approx(lam), \
            f"lambda must be chosen on the {h['choose_on']} half and reported on the {h['report_on']} half"
        assert h["mix_nats"] == pytest.approx(mix(lam, report), rel=1e-10)
        assert h["rnn_nats"] == pytest.approx(-lp_r[report].mean(), rel=1e-12)
        assert h["ngram_nats"] == pytest.approx(-lp_n[report].mean(), rel=1e-12)
    assert halves[0]["lambda"] != halves[1]["lambda"], \
        "test corpus: the halves should prefer different lambdas (verse vs. noise), else the check is blind"

    # the product: (a, b) a minimum on the choose half, its loss on the report half by brute force
    ta = rnn.logprob_table(params, val)
    tb = ngram.NGram(best).fit(train, V).logprob_table(val)
    tgt = np.asarray(val[1:])

    def product(a, b, part):
        return float(np.mean([np.log(np.sum(np.exp(a * x + b * y))) - (a * x[w] + b * y[w])
                              for x, y, w in zip(ta[part], tb[part], tgt[part])]))

    prod = result["mixture"]["product"]
    assert [(h["choose_on"], h["report_on"]) for h in prod] == [("first", "second"), ("second", "first")]
    for h, (choose, report) in zip(prod, ((first, second), (second, first))):
        a, b = h["weights"]
        fitted = product(a, b, choose)
        for da, db in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
            assert product(a + da, b + db, choose) >= fitted - 1e-12, \
                f"(a, b) must minimise the product's loss on the {h['choose_on']} half"
        assert h["product_nats"] == pytest.approx(product(a, b, report), rel=1e-10)
        assert f"product {h['product_nats']:.4f}" in printed


def test_ensemble_logprobs_is_the_log_of_the_mean_probability():
    from analysis import ensemble_logprobs

    rng = np.random.default_rng(4)
    lps = np.log(rng.uniform(0.01, 1.0, size=(3, 50)))                 # 3 models, 50 targets
    want = np.log(np.exp(lps).mean(axis=0))
    assert np.allclose(ensemble_logprobs(lps), want, rtol=0, atol=1e-12)
    assert np.array_equal(ensemble_logprobs(lps[:1]), lps[0]), "an ensemble of one model is that model"
    # Jensen: the loss of the mean probability is never above the mean of the losses
    assert -ensemble_logprobs(lps).mean() <= np.mean(-lps.mean(axis=1)) + 1e-12
    with pytest.raises(ValueError, match="ensemble_logprobs"):
        ensemble_logprobs(lps[0])                                       # (M,) is one model: pass (1,M)
    tables = np.log(rng.dirichlet(np.ones(4), size=(3, 20)))           # 3 models, (20,4) distributions each
    got = ensemble_logprobs(t for t in tables)                         # one at a time, from a generator
    assert got.shape == (20, 4) and np.allclose(got, np.log(np.exp(tables).mean(axis=0)), rtol=0, atol=1e-12)
    assert np.allclose(np.exp(got).sum(axis=1), 1.0), "the mean of distributions is a distribution"
    with pytest.raises(ValueError, match="same shape"):
        ensemble_logprobs([tables[0], tables[1][:, :3]])
    with pytest.raises(ValueError, match="no models"):
        ensemble_logprobs([])


def test_ngram_command_mixes_the_ensemble_of_several_checkpoints(tmp_path, capsys):
    import json

    import train_minimal

    data, text = _cli_corpus(tmp_path)
    chars = rnn.build_vocab(text)
    V = len(chars)
    cks, each, models = [], [], []
    train, val = rnn.train_val_split(rnn.encode(text, chars), 0.1)
    for seed in (12, 13):
        params = rnn.init_params(V, 8, np.random.default_rng(seed), np.float64, init_scale=0.5)
        models.append(params)
        cks.append(checkpoints.save_checkpoint(tmp_path / f"rnn{seed}.npz", params, rnn.init_optimizer("adagrad", params),
                                       chars, np.zeros((8, 1)),
                                       {"step": 0, "epoch": 0, "window": 0, "smooth_loss": 4.0}))
        each.append(rnn.target_logprobs(params, val))
    out = tmp_path / "out"
    code = train_minimal.main(["--ngram", "--data", data, "--out", out, "--orders", "1-3",
                               "--checkpoint", cks[0], "--checkpoint", cks[1]])
    printed = capsys.readouterr().out
    assert code == 0, printed
    mix = json.loads((out / "ngram.json").read_text())["mixture"]
    assert mix["checkpoints"] == [str(c) for c in cks]
    assert mix["rnn_nats_each"] == pytest.approx([-lp.mean() for lp in each], rel=1e-12)
    ensemble = np.log((np.exp(each[0]) + np.exp(each[1])) / 2)        # p = (p_1 + p_2) / 2, per target
    assert mix["rnn_nats"] == pytest.approx(-ensemble.mean(), rel=1e-12), \
        "the RNN side of the mixture should be the mean of the checkpoints' probabilities"
    M = len(ensemble)
    for h, report in zip(mix["halves"], (slice(M // 2, M), slice(0, M // 2))):
        assert h["rnn_nats"] == pytest.approx(-ensemble[report].mean(), rel=1e-12)
    assert f"ensemble of the 2 RNNs (mean of their probabilities): {-ensemble.mean():.4f}" in printed
    from analysis import product_nats
    table = np.log(sum(np.exp(rnn.logprob_table(p, val)) for p in models) / 2)
    tb = ngram.NGram(mix["order"]).fit(train, V).logprob_table(val)
    h = mix["product"][0]                                              # fitted on the first half
    assert h["product_nats"] == pytest.approx(product_nats([table[M // 2:], tb[M // 2:]], val[1:][M // 2:],
                                                           h["weights"]), rel=1e-10), \
        "the product's RNN side should be the mean of the checkpoints' distributions"


@pytest.mark.parametrize("flags, message", [
    (["--orders", "0-3"], "--orders"),
    (["--orders", "three"], "--orders"),
    (["--checkpoint", "missing.npz"], "not found"),
    (["--val-fraction", "0"], "val-fraction"),
    (["--temperature", "0"], "temperature"),
])
def test_ngram_command_errors_are_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    import train_minimal

    data, _ = _cli_corpus(tmp_path)
    out = tmp_path / "out"
    code = train_minimal.main(["--ngram", "--data", data, "--out", out, "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and message in err and err.count("\n") == 1, err
    assert not (out / "ngram.json").exists()


def test_ngram_command_rejects_a_checkpoint_with_another_vocabulary(tmp_path, capsys):
    import train_minimal

    data, text = _cli_corpus(tmp_path)
    chars = rnn.build_vocab(text + "Z")
    params = rnn.init_params(len(chars), 4, np.random.default_rng(0))
    ck = checkpoints.save_checkpoint(tmp_path / "other.npz", params, rnn.init_optimizer("adagrad", params), chars,
                             np.zeros((4, 1)), {"step": 0, "epoch": 0, "window": 0, "smooth_loss": 4.0})
    code = train_minimal.main(["--ngram", "--data", data, "--out", tmp_path / "o", "--checkpoint", ck, "--quiet"])
    assert code == 2 and "vocabulary" in capsys.readouterr().err
