"""Dynamic evaluation: both models keep learning from the text they have scored.

implementation.dynamic_evaluate (the RNN takes a gradient step after each window) and
ngram.dynamic_ngram (the counts grow by what was read), checked against the static
models they must reduce to, and the command line's --dynamic on a small text."""

import json

import numpy as np
import pytest

import implementation as rnn
import ngram
from helpers import synthetic_text


@pytest.fixture(scope="module")
def model():
    """A float64 RNN (12 units, init scale 0.3: not near zero, so every gradient is alive) and
    600 ids of a repeated phrase it has never learned, so learning while reading must pay."""
    chars = rnn.build_vocab(synthetic_text())
    params = rnn.init_params(len(chars), 12, np.random.default_rng(3), np.float64, init_scale=0.3)
    phrase = rnn.encode("the dog sat far from my good lord.\n", chars)
    return params, chars, np.tile(phrase, 18)[:600]


def test_the_saved_weights_are_untouched(model):
    params, _, ids = model
    before = {k: v.copy() for k, v in params.items()}
    r = rnn.dynamic_evaluate(params, ids, window=16, learning_rate=1e-2, decay=0.01)
    for k in params:
        assert np.array_equal(params[k], before[k]), \
            f"dynamic_evaluate changed params[{k!r}]: the steps must go to a copy of the trained weights"
    assert r["nats"] < rnn.evaluate(params, ids, num_chunks=1)["nats"] - 0.1, \
        "dynamic_evaluate took no useful step (the copy must learn, descending the gradient, not ascending it)"


@pytest.mark.parametrize("window", [1, 7, 32, 1000])
def test_learning_rate_zero_is_the_static_score_exactly(model, window):
    params, _, ids = model
    r = rnn.dynamic_evaluate(params, ids, window=window, learning_rate=0.0, decay=0.05, table=True)
    static = rnn.target_logprobs(params, ids, seq_length=window)
    assert np.array_equal(r["logprobs"], static), \
        f"dynamic_evaluate(learning_rate=0, window={window}) should give target_logprobs exactly: " \
        "the decay toward the trained weights must not move weights that never left them"
    # other window lengths change only the rounding of the output layer's matrix product
    assert np.allclose(r["logprobs"], rnn.target_logprobs(params, ids), rtol=1e-12, atol=0), "one stream from h = 0"
    assert r["nats"] == pytest.approx(rnn.evaluate(params, ids, num_chunks=1, seq_length=window)["nats"],
                                      rel=1e-13, abs=0), "the static one-stream score (summed in another order)"
    assert r["chars"] == ids.size - 1 and r["bits"] == pytest.approx(r["nats"] / np.log(2))
    assert np.array_equal(r["table"], rnn.logprob_table(params, ids, seq_length=window)), \
        "table=True: the whole distributions"


def test_same_settings_give_the_same_number(model):
    params, _, ids = model
    a = rnn.dynamic_evaluate(params, ids, window=8, learning_rate=3e-3, decay=0.02, table=True)
    b = rnn.dynamic_evaluate(params, ids, window=8, learning_rate=3e-3, decay=0.02)
    assert np.array_equal(a["logprobs"], b["logprobs"]), "dynamic_evaluate must have a fixed order, no randomness"
    rows = np.arange(ids.size - 1)
    assert np.array_equal(a["table"][rows, ids[1:]], a["logprobs"]), "table's target column is logprobs"
    assert np.allclose(np.exp(a["table"]).sum(axis=1), 1.0)
    c = rnn.dynamic_evaluate(params, ids, window=8, learning_rate=3e-3, decay=0.5)
    assert not np.array_equal(c["logprobs"], a["logprobs"]), "decay should change the result"


def test_each_step_is_an_rms_normalised_clipped_gradient_step_then_the_decay(model):
    """A plain reference loop, window by window, written out here."""
    params, _, ids = model
    lr, decay, clip, W = 0.05, 0.1, 0.01, 8
    ids = ids[:4 * W + 1]                                                # four windows of 8 targets
    w, ms, h, expected = dict(params), {k: 0.0 for k in params}, None, []
    for n, s in enumerate(range(0, 4 * W, W), start=1):
        x, y = ids[s:s + W], ids[s + 1:s + W + 1]
        hs, logp = rnn.forward(w, x, h)
        expected += list(logp[np.arange(W), y, 0])                       # scored before the step
        g = rnn.loss_and_grads(w, x, y, h)[1]
        for k in w:
            gk = np.clip(g[k], -clip, clip)
            ms[k] = ms[k] * (n - 1) / n + gk ** 2 / n                    # the mean of g^2 over the n windows
            step = w[k] - lr * gk / (np.sqrt(ms[k]) + 1e-8)
            w[k] = step + decay * (params[k] - step)                     # then back toward the trained weights
        h = hs[-1]
    got = rnn.dynamic_evaluate(params, ids, window=W, learning_rate=lr, decay=decay, clip=clip)["logprobs"]
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-12), \
        "dynamic_evaluate: after each window, w -= lr * clip(g) / sqrt(mean of clip(g)^2 so far), " \
        "then w += decay * (w_trained - w); the next window is scored with the new w"


@pytest.mark.parametrize("kwargs", [{"window": 0}, {"learning_rate": -1e-3}, {"decay": 1.5},
                                    {"learning_rate": float("nan")}, {"clip": 0}])
def test_bad_settings_are_refused(model, kwargs):
    params, _, ids = model
    with pytest.raises(ValueError, match="dynamic_evaluate"):
        rnn.dynamic_evaluate(params, ids, **kwargs)
    with pytest.raises(ValueError, match="2 characters"):
        rnn.dynamic_evaluate(params, ids[:1])


# -----------------------------------------------------------------------------
# The count model
# -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def counts():
    text = synthetic_text()
    chars = rnn.build_vocab(text)
    ids = rnn.encode(text, chars)
    return ids[:3000], ids[3000:3240], len(chars)


@pytest.mark.parametrize("order, block", [(1, 1), (3, 1), (5, 1), (5, 7), (3, 1000)])
def test_dynamic_ngram_is_a_static_one_refitted_on_train_and_the_part_read(counts, order, block):
    train, val, V = counts
    got = ngram.dynamic_ngram(train, val, V, order=order, block=block)
    for t in range(val.size - 1):                                          # target val[t+1]
        s = t - t % block                                                  # the block's first target
        ref = ngram.NGram(order).fit(np.concatenate([train, val[:s + 1]]), V).logprobs(val)[t]
        assert got["logprobs"][t] == ref, \
            f"dynamic_ngram(order={order}, block={block}): target {t} should come from NGram fitted on the " \
            f"training ids + val[:{s + 1}], the characters read before its block"
    assert got["nats"] == pytest.approx(-got["logprobs"].mean()) and got["chars"] == val.size - 1


def test_dynamic_ngram_weight_and_table(counts):
    train, val, V = counts
    static = ngram.NGram(5).fit(train, V)
    assert np.array_equal(ngram.dynamic_ngram(train, val, V, 5, block=50, weight=0)["logprobs"],
                          static.logprobs(val)), "weight=0 adds nothing: the static model"
    two = ngram.dynamic_ngram(train, val, V, 5, block=100, weight=2, table=True)
    m = ngram.NGram(5).fit(np.concatenate([train, val[:101], val[:101]]), V)
    assert np.allclose(two["logprobs"][100:200], m.logprobs(val)[100:200], rtol=1e-12), "weight 2: two copies"
    assert np.allclose(two["table"][100:200], m.logprob_table(val)[100:200], rtol=1e-12)
    assert np.array_equal(two["table"][np.arange(val.size - 1), val[1:]], two["logprobs"])
    with pytest.raises(ValueError, match="dynamic_ngram"):
        ngram.dynamic_ngram(train, val, V, 5, block=0)
    with pytest.raises(ValueError, match="dynamic_ngram"):
        ngram.dynamic_ngram(train, val, V, 5, weight=-1)


def test_dynamic_ngram_learns_a_phrase_it_reads_again(counts):
    train, _, V = counts
    rng = np.random.default_rng(0)
    phrase = rng.integers(0, V, 25)                                          # not in the training text
    val = np.tile(phrase, 12)
    static = ngram.NGram(5).fit(train, V).evaluate(val)["nats"]
    dynamic = ngram.dynamic_ngram(train, val, V, 5, block=10)["nats"]
    assert dynamic < static - 1.0, f"dynamic_ngram should learn a repeated phrase: {dynamic:.3f} vs {static:.3f}"


# -----------------------------------------------------------------------------
# The command line: python train_minimal.py --ngram --checkpoint PATH --dynamic
# -----------------------------------------------------------------------------

def test_dynamic_flag_chooses_on_one_half_and_reports_on_the_other(tmp_path, capsys):
    import checkpoints
    import train_minimal as tm
    from analysis import MIX_GRID, fit_product, mixture_nats, product_nats

    text = synthetic_text(n_lines=60)
    (tmp_path / "play.txt").write_text(text, encoding="utf-8")
    chars = rnn.build_vocab(text)
    train, val = rnn.train_val_split(rnn.encode(text, chars), 0.2)
    params = rnn.init_params(len(chars), 8, np.random.default_rng(4), np.float64, init_scale=0.3)
    ck = checkpoints.save_checkpoint(tmp_path / "rnn.npz", params, rnn.init_optimizer("adagrad", params), chars,
                                     np.zeros((8, 1)), {"step": 0, "epoch": 0, "window": 0, "smooth_loss": 4.0})
    out = tmp_path / "out"
    code = tm.main(["--ngram", "--orders", "3", "--data", tmp_path / "play.txt", "--out", out, "--val-fraction",
                    "0.2", "--checkpoint", ck, "--dynamic"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "dynamic evaluation" in printed and "whole text" in printed
    dyn = json.loads((out / "ngram.json").read_text())["dynamic"]
    M = val.size - 1
    half = {"first": slice(0, M // 2), "second": slice(M // 2, M)}
    lp = {s: rnn.dynamic_evaluate(params, val, *s)["logprobs"] for s in tm.DYNAMIC_GRID}
    counts = {w: ngram.dynamic_ngram(train, val, len(chars), 3, tm.DYNAMIC_BLOCK, w)["logprobs"]
              for w in tm.DYNAMIC_WEIGHTS}
    assert len(dyn["runs"]) == len(tm.DYNAMIC_GRID) + len(tm.DYNAMIC_WEIGHTS)
    for h in dyn["halves"]:
        c, r = half[h["choose_on"]], half[h["report_on"]]
        best = max(lp, key=lambda s: lp[s][c].mean())
        assert (h["window"], h["learning_rate"], h["decay"]) == best, \
            "--dynamic: the RNN's settings must be the grid's best on the choose half"
        assert h["rnn_nats"] == pytest.approx(-lp[best][r].mean(), rel=1e-12), "reported on the other half"
        w = max(counts, key=lambda k: counts[k][c].mean())
        assert h["ngram_weight"] == w and h["ngram_nats"] == pytest.approx(-counts[w][r].mean(), rel=1e-12)
        lam = min(MIX_GRID, key=lambda g: mixture_nats(lp[best][c], counts[w][c], g))
        assert h["lambda"] == lam and h["mix_nats"] == pytest.approx(mixture_nats(lp[best][r], counts[w][r], lam))
        tables = [rnn.dynamic_evaluate(params, val, *best, table=True)["table"],
                  ngram.dynamic_ngram(train, val, len(chars), 3, tm.DYNAMIC_BLOCK, w, table=True)["table"]]
        ab = fit_product([t[c] for t in tables], val[1:][c])
        assert h["product_weights"] == pytest.approx(ab) and h["chars"] == r.stop - r.start
        assert h["product_nats"] == pytest.approx(product_nats([t[r] for t in tables], val[1:][r], ab))
    for key, value in dyn["whole"].items():
        assert value == pytest.approx(sum(h[key] * h["chars"] for h in dyn["halves"]) / M), \
            f"--dynamic: the whole-text {key} is the halves' numbers weighed by their length"
    for k in params:                                                 # the checkpoint on disk is untouched
        assert np.array_equal(checkpoints.load_checkpoint(ck)["params"][k], params[k])


def test_dynamic_flag_without_ngram_is_a_one_line_error(tmp_path, capsys):
    import train_minimal as tm

    assert tm.main(["--dynamic", "--data", tmp_path / "none.txt", "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--dynamic goes with --ngram" in err and err.count("\n") == 1, err
