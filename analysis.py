"""The numbers behind the pictures: what a trained char-RNN does with a text.

Everything here computes arrays with `implementation.py` and NumPy; nothing is
drawn (visualization.py draws these numbers, and re-exports every name below so
``visualization.real_word_share`` and friends keep working). Importing this module
imports NumPy and implementation.py and does nothing else: no file read, no
matplotlib, no global random state.

    the model reading a text     model_on_text, hidden_states, top_k, similarity_order
    samples and temperature      words, real_word_share, temperature_data
    features of the text         quote_chars, text_features, quote_distance
    units that track features    unit_correlations, rank_units
    ... with controls            shifted_feature_correlations, tracking_units, unit_controls
    the quote unit               quote_profile
    gradient flow through time   gradient_flow_data, per_step_factor
    where the RNN and the n-gram win   per_char_losses, loss_by_context_frequency,
                                 loss_by_position_kind, verbatim_stats, sample_novelty,
                                 compare_models
    the two mixed                mixture_nats, mixture_cross_validated, ensemble_logprobs,
                                 product_nats, fit_product, product_cross_validated
    how much context it uses     loss_by_context_length
    the memory horizon           quotations, loss_at_quotes, memory_horizon_data
    how large a table may get    TABLE_MAX_ENTRIES, max_table_chars

Controls for "unit k tracks feature f". A trained network has hundreds of units
and a text has long stretches where a feature is constant, so some unit always
correlates with a feature by chance. Two controls tell chance from learning:

* a permutation null: the feature shifted circularly by a random offset along
  the text keeps everything about it (how often it is on, how long its runs
  last) except where it sits in the text; the correlations with hundreds of such
  shifted copies show how large |r| gets by chance (`shifted_feature_correlations`);
* the untrained network: the same architecture at its initial weights. A unit
  that tracks a feature before any training (say, "inside a word", which the
  input alone drives) shows what the architecture gives for free.
"""

from __future__ import annotations

import math
import re

import numpy as np

import implementation as rnn
import ngram

# -----------------------------------------------------------------------------
# The model reading a text
# -----------------------------------------------------------------------------

# The largest table of next-character probabilities (characters x vocabulary) that is
# built at once: 8.4 million numbers, 64 MB in float64. A few copies of it are alive
# while it is made, so this bounds the memory a text can make a function here use;
# with 65 characters it is 129,055 characters of text, with 70,000 only 119.
TABLE_MAX_ENTRIES = 1 << 23


def max_table_chars(vocab_size: int) -> int:
    """How many characters of text fit in one table of TABLE_MAX_ENTRIES probabilities (at least 1)."""
    return max(1, TABLE_MAX_ENTRIES // max(1, int(vocab_size)))


def _logp_blocks(params: dict, ids, hprev=None):
    """Yield (start, hs (t+1,H,1), logp (t,V)) for ids read as one stream, block by block.

    Each block is at most max_table_chars(V) characters, the hidden state carried from
    one block to the next, so the whole text is read as one stream with bounded memory.
    """
    V = params["Why"].shape[0]
    block = max_table_chars(V)
    h = hprev
    for s in range(0, len(ids), block):
        hs, logp = rnn.forward(params, ids[s:s + block, None], h)     # (t+1,H,1), (t,V,1)
        yield s, hs, logp[:, :, 0]
        h = hs[-1]


def model_on_text(params: dict, chars, text: str, hprev=None) -> dict:
    """Run the model over `text` once, from hprev (zeros by default), with implementation.forward.

    The text may hold at most max_table_chars(V) characters: its (N,V) tables of
    probabilities are built whole (ValueError, one line, beyond that).
    Returns, for the N characters of the text:
        ids     (N,)    character ids
        h       (N,H)   h[t]: hidden state after reading text[t]
        logp    (N,V)   logp[t]: log-probabilities of the character after text[t]
        probs   (N,V)   exp(logp)
        entropy (N,)    entropy of probs[t] in nats
        p_next  (N-1,)  probs[t, ids[t+1]]: the probability given to the character that came next
    """
    limit = max_table_chars(len(chars))
    if len(text) > limit:
        raise ValueError(f"model_on_text: {len(text):,} characters x a vocabulary of {len(chars):,} is a table of "
                         f"{len(text) * len(chars):,} probabilities, over the limit of {TABLE_MAX_ENTRIES:,} "
                         f"(analysis.TABLE_MAX_ENTRIES); pass at most {limit:,} characters")
    ids = rnn.encode(text, chars)
    if ids.size == 0:
        raise ValueError("model_on_text: the text is empty")
    hs, logp = rnn.forward(params, ids[:, None], hprev)      # (N+1,H,1), (N,V,1)
    logp = logp[:, :, 0].astype(np.float64)                   # (N,V)
    probs = np.exp(logp)
    return {"text": text, "ids": ids, "h": hs[1:, :, 0], "logp": logp, "probs": probs,
            "entropy": -(probs * logp).sum(axis=1),
            "p_next": probs[np.arange(len(ids) - 1), ids[1:]]}


def hidden_states(params: dict, chars, text: str, hprev=None) -> np.ndarray:
    """(N,H) h[t]: the hidden state after reading text[t], from hprev (zeros by default).

    model_on_text's "h" for a text of any length: read in blocks, so memory stays
    bounded (the probabilities are computed block by block and dropped).
    """
    ids = rnn.encode(text, chars)
    if ids.size == 0:
        raise ValueError("hidden_states: the text is empty")
    return np.concatenate([hs[1:, :, 0] for _, hs, _ in _logp_blocks(params, ids, hprev)])


def top_k(probs, k: int = 5):
    """(indices, values) of the k largest entries of each row of probs (..., V), largest first."""
    probs = np.asarray(probs)
    idx = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    return idx, np.take_along_axis(probs, idx, axis=-1)


def similarity_order(h) -> np.ndarray:
    """An order of the units (columns of h (N,H)) in which units that switch together sit
    together: sorted by their weight in the first principal component of the activity,
    the one pattern that explains most of how the hidden state changes over the text.
    Units at the two ends of the order swing most strongly with it, in opposite directions."""
    h = np.asarray(h, float)
    hc = h - h.mean(axis=0)
    if h.shape[0] < 2 or not np.any(hc):
        return np.arange(h.shape[1])
    _, _, vt = np.linalg.svd(hc, full_matrices=False)             # vt[0] (H,): the units' weights
    return np.argsort(vt[0] * np.sign(vt[0].sum() or 1.0), kind="stable")


# -----------------------------------------------------------------------------
# Samples and temperature
# -----------------------------------------------------------------------------

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def words(text: str, min_length: int = 1) -> list[str]:
    """The words of a text, lower-cased: runs of letters (any alphabet), with inner
    apostrophes ("don't" is one word); words shorter than min_length letters are dropped."""
    return [w.lower() for w in _WORD.findall(text) if len(w) >= min_length]


def real_word_share(sample: str, vocabulary: set, min_length: int = 1) -> tuple[float, int]:
    """(share of the sample's words found in `vocabulary`, number of words counted).

    The one definition of "real words" in the project. Words as in `words`
    (lower case, letters with inner apostrophes, at least min_length letters);
    every occurrence counts (word tokens, not distinct words). The last word is
    left out if the sample stops in the middle of it, since a cut-off word is no
    evidence either way. Without any word: (NaN, 0), not 0.0, since "no words" is
    not "no real words". `vocabulary` is usually set(words(training_text)).
    """
    found = [m.group() for m in _WORD.finditer(sample)]
    if found and sample[-1].isalpha():
        found = found[:-1]                               # the sample stops inside its last word
    ws = [w.lower() for w in found if len(w) >= min_length]
    if not ws:
        return float("nan"), 0
    return sum(w in vocabulary for w in ws) / len(ws), len(ws)


def temperature_data(params: dict, chars, prime: str, temperatures, n: int = 300, seed: int = 0,
                     train_text: str | None = None) -> dict:
    """Samples at each temperature, with the entropy of the distributions they were drawn from.

    Every temperature uses the same random numbers (np.random.default_rng(seed)), so
    only the temperature differs. entropy[i] is the mean, over the n sampled
    characters, of the entropy (nats) of softmax(y / T) (implementation.sample_probs).
    word_share[i] is the share of sampled words that occur in train_text (NaN without it).
    """
    vocabulary = set(words(train_text)) if train_text else None
    H = params["Whh"].shape[0]
    out = {"temperatures": np.asarray(temperatures, float), "samples": [], "entropy": [],
           "word_share": [], "n_words": []}
    for T in out["temperatures"]:
        s = rnn.sample_text(params, chars, prime, n, T, np.random.default_rng(seed))
        # the distributions s was drawn from: logits after prime + s[:j] (log p = y - const)
        ent = []
        h0 = np.zeros((H, 1), params["Whh"].dtype)
        for start, _, logp in _logp_blocks(params, rnn.encode(prime + s[:-1], chars), h0):
            for lp in logp[max(0, len(prime) - 1 - start):]:             # (V,) rows from the prime's last
                q = rnn.sample_probs(lp, T)                               # softmax(y / T)
                nz = q[q > 0]
                ent.append(float(-(nz * np.log(nz)).sum()))
        share, nw = real_word_share(s, vocabulary) if vocabulary is not None else (float("nan"), 0)
        out["samples"].append(s)
        out["entropy"].append(float(np.mean(ent)))
        out["word_share"].append(share)
        out["n_words"].append(nw)
    for k in ("entropy", "word_share", "n_words"):
        out[k] = np.asarray(out[k], float)
    return out


# -----------------------------------------------------------------------------
# Features of the text
# -----------------------------------------------------------------------------

def quote_chars(text: str) -> tuple[str, str]:
    """The quotation marks a text uses: ("“", "”") if it has curly double quotes, else ('"', '"')."""
    return ("“", "”") if ("“" in text or "”" in text) else ('"', '"')


def _inside_quotes(text: str, quotes: tuple[str, str]) -> np.ndarray:
    """1 after reading an opening quote up to (not including) its closing quote, else 0.

    With straight quotes (open == close) each quote mark flips inside/outside. A blank
    line always ends a quotation: in novels a speech running over several paragraphs
    leaves each paragraph's closing mark out and opens the next one again, so without
    the reset one missing mark would flip the rest of the book.
    """
    opening, closing = quotes
    out = np.zeros(len(text))
    inside, blank_line = False, True
    for t, c in enumerate(text):
        if c == "\n":
            if blank_line:
                inside = False                       # a paragraph break ends any quotation
            blank_line = True
        elif not c.isspace():
            blank_line = False
        if opening == closing and c == opening:
            inside = not inside
        elif c == opening:
            inside = True
        elif c == closing:
            inside = False
        out[t] = inside
    return out


def text_features(text: str, quotes: tuple[str, str] | None = None) -> dict:
    """Simple features of each position t of `text`, as seen after reading text[t].

    inside quotes        1 from an opening quote mark up to its closing one, else 0;
                         quotes: (opening, closing) marks, by default those the text
                         uses (quote_chars); a blank line ends a quotation
    inside brackets      1 inside ( ), [ ] or { } (nested counts once), else 0
    position in line     characters since the last newline (0 for a line's first character)
    after a newline      1 if text[t] is a newline (the next character starts a line)
    inside a word        1 if text[t] is a letter
    start of a sentence  1 from a sentence end (. ! ?), and from the start of the text, up
                         to the next letter: the next word begins a sentence (and a capital
                         letter is likely); 0 from that letter on
    """
    n = len(text)
    brackets, pos, newline, letter, sentence = (np.zeros(n) for _ in range(5))
    depth, col, awaiting = 0, 0, True
    for t, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        if c.isalpha():
            awaiting = False
        elif c in ".!?":
            awaiting = True
        brackets[t], pos[t] = depth > 0 or c in ")]}", col
        newline[t], letter[t], sentence[t] = c == "\n", c.isalpha(), awaiting
        col = 0 if c == "\n" else col + 1
    return {"inside quotes": _inside_quotes(text, quotes or quote_chars(text)),
            "inside brackets": brackets, "position in line": pos, "after a newline": newline,
            "inside a word": letter, "start of a sentence": sentence}


def quote_distance(text: str, quotes: tuple[str, str] | None = None) -> np.ndarray:
    """(N,) for each position inside a quotation (text_features' "inside quotes"), how many
    characters it comes after the opening quote mark (0 at the mark itself); -1 outside."""
    inside = _inside_quotes(text, quotes or quote_chars(text)).astype(bool)
    t = np.arange(len(text))
    starts = np.flatnonzero(inside & ~np.concatenate([[False], inside[:-1]]))   # opening marks
    # index of the latest opening mark at or before t: a running maximum of the marks' positions
    last_open = np.maximum.accumulate(np.where(np.isin(t, starts), t, -1)) if len(text) else t
    return np.where(inside, t - last_open, -1)


# -----------------------------------------------------------------------------
# Units that track features
# -----------------------------------------------------------------------------

def unit_correlations(h, feature) -> np.ndarray:
    """Pearson correlation of each hidden unit with a feature: h (N,H), feature (N,) -> (H,).

    Units that never change get 0. All NaN if the feature is constant (absent from the text).
    """
    h, f = np.asarray(h, float), np.asarray(feature, float)
    hc, fc = h - h.mean(axis=0), f - f.mean()
    fn = np.sqrt((fc ** 2).sum())
    if fn == 0:
        return np.full(h.shape[1], np.nan)
    hn = np.sqrt((hc ** 2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (hc * fc[:, None]).sum(axis=0) / (hn * fn)
    return np.where(hn > 0, r, 0.0)


def rank_units(h, features: dict) -> list[dict]:
    """For each feature present in the text, the units ranked by |correlation|.

    Returns [{"feature", "unit" (the best), "r" (its correlation), "order" (all units,
    best first), "correlations" (H,)}], skipping features that are constant.
    """
    ranked = []
    for name, f in features.items():
        r = unit_correlations(h, f)
        if np.all(np.isnan(r)):
            continue
        order = np.argsort(-np.abs(r), kind="stable")
        ranked.append({"feature": name, "unit": int(order[0]), "r": float(r[order[0]]),
                       "order": order, "correlations": r})
    return ranked


def _unit_scores(h) -> np.ndarray:
    """h (N,H) centred and scaled so each column has norm 1 (constant units stay 0)."""
    hc = np.asarray(h, float) - np.mean(h, axis=0)
    hn = np.sqrt((hc ** 2).sum(axis=0))
    return np.divide(hc, hn, out=np.zeros_like(hc), where=hn > 0)


def shifted_feature_correlations(h, feature, draws: int = 500, rng: np.random.Generator | None = None,
                                 min_shift: int | None = None) -> dict:
    """Correlations of every unit with `draws` circularly shifted copies of the feature.

    Copy d is np.roll(feature, offsets[d]): the same values in the same order, so
    the feature's share of ones and the lengths of its runs are kept, but moved
    away from the text they describe (the start wraps round to the end). The
    offsets are uniform in [min_shift, N - min_shift] (default min_shift N // 10), so no
    copy sits almost on top of the original. rng: np.random.Generator (default
    np.random.default_rng(0)).

    Returns {"offsets": (draws,), "r": (draws, H)}, r[d, u] the Pearson correlation
    of unit u with copy d (the same number unit_correlations gives for it).
    """
    hz = _unit_scores(h)                                                # (N,H) unit-norm columns
    f = np.asarray(feature, float)
    N = len(f)
    fc = f - f.mean()
    fn = math.sqrt(float((fc ** 2).sum()))
    if fn == 0:
        raise ValueError("shifted_feature_correlations: the feature is constant, so it has no correlation "
                         "to test")
    if hz.shape[0] != N:
        raise ValueError(f"shifted_feature_correlations: h has {hz.shape[0]} rows but the feature has {N} values")
    rng = np.random.default_rng(0) if rng is None else rng
    min_shift = max(1, N // 10) if min_shift is None else int(min_shift)
    if not 1 <= min_shift <= N - min_shift:
        raise ValueError(f"shifted_feature_correlations: min_shift {min_shift} leaves no offsets for a text "
                         f"of {N} characters")
    offsets = rng.integers(min_shift, N - min_shift, endpoint=True, size=draws)
    fz = fc / fn                                                        # (N,) unit norm
    r = np.empty((draws, hz.shape[1]))
    chunk = max(1, 4_000_000 // max(N, 1))                              # ~32 MB of shifted copies at a time
    t = np.arange(N)
    for a in range(0, draws, chunk):
        idx = (t[:, None] - offsets[None, a:a + chunk]) % N             # (N,c) np.roll(f, s)[t] = f[t - s]
        r[a:a + chunk] = (hz.T @ fz[idx]).T                             # (c,H) r = <h_u, f_shifted>
    return {"offsets": offsets, "r": r}


def tracking_units(h, feature, draws: int = 500, seed: int = 0, percentile: float = 99.0) -> dict:
    """Which units track a feature beyond chance, judged against the circular-shift null.

    The test, unit by unit: unit u tracks the feature when |r_u| is above the
    `percentile` (99th) percentile of its own |r| over the shifted copies
    (shifted_feature_correlations, np.random.default_rng(seed)). Per unit, because units differ: one that changes
    slowly lines up with a slow feature by chance far more often than one that
    flips at every character, and the shifted copies keep both the unit's and the
    feature's slowness. Under the null every unit passes with probability 1%, so on
    a feature no unit tracks about 1% of the units pass: read n_above against that.

    The best of H units is the largest of H chances, so "this feature has a unit
    that tracks it" is judged with a stricter threshold: max_threshold, the 99th
    percentile of the largest |r| over all units in each shifted copy (a 1% chance
    that any unit at all passes it by luck). best_tracks says whether the best unit does.

    Returns {"unit", "r" (its correlation), "threshold" (the best unit's own null
    threshold), "max_threshold", "best_tracks", "n_above", "share_above",
    "correlations" (H,), "thresholds" (H,), "above" (H,) bool,
    "null": shifted_feature_correlations' dict}.
    """
    r = unit_correlations(h, feature)
    if np.all(np.isnan(r)):
        raise ValueError("tracking_units: the feature is constant over the text")
    null = shifted_feature_correlations(h, feature, draws, np.random.default_rng(seed))
    null_abs = np.abs(null["r"])                                        # (draws,H)
    thresholds = np.percentile(null_abs, percentile, axis=0)            # (H,) per unit
    max_threshold = float(np.percentile(null_abs.max(axis=1), percentile))
    above = np.abs(r) > thresholds
    best = int(np.argmax(np.abs(r)))
    return {"unit": best, "r": float(r[best]), "threshold": float(thresholds[best]),
            "max_threshold": max_threshold, "best_tracks": bool(abs(r[best]) > max_threshold),
            "n_above": int(above.sum()), "share_above": float(above.mean()),
            "correlations": r, "thresholds": thresholds, "above": above, "null": null}


def unit_controls(params: dict, init_params: dict, chars, text: str, features: dict | None = None,
                  draws: int = 500, seed: int = 0, percentile: float = 99.0) -> list[dict]:
    """The unit analysis with its two controls, for each feature present in `text`.

    params: the trained model; init_params: the same architecture at its initial
    weights. The weights a train_minimal.py run started from are
    implementation.init_params(V, H, np.random.default_rng(seed), dtype, init_scale)
    with the seed, dtype and init_scale of the run's config (the run's first random
    draws); any other draw at the same scale is an equally fair control.
    features: {name: (N,) array}, text_features(text)
    by default; constant ones are skipped. Both networks are tested against the same
    shifted copies (the same seed).

    Returns [{"feature", **tracking_units(trained h), "untrained": tracking_units(untrained h)}],
    in the order of `features`.
    """
    h = hidden_states(params, chars, text)
    h0 = hidden_states(init_params, chars, text)
    if h0.shape != h.shape:
        raise ValueError(f"unit_controls: init_params give {h0.shape[1]} hidden units, params {h.shape[1]}")
    features = text_features(text) if features is None else features
    out = []
    for name, f in features.items():
        if np.ptp(np.asarray(f, float)) == 0:
            continue
        trained = tracking_units(h, f, draws, seed, percentile)
        out.append({"feature": name, **trained,
                    "untrained": tracking_units(h0, f, draws, seed, percentile)})
    return out


# -----------------------------------------------------------------------------
# The quote unit
# -----------------------------------------------------------------------------

def quote_profile(h, text: str, unit: int, max_distance: int = 200,
                  quotes: tuple[str, str] | None = None) -> dict:
    """How one unit behaves inside quotations: its mean activation k characters after
    the opening quote mark, for k = 0..max_distance.

    h: (N,H) hidden states after each character of `text` (model_on_text's "h").
    Returns {"unit", "distance" (K,), "mean" (K,) (NaN where no quotation is that long),
    "count" (K,) how many positions were averaged, "mean_inside", "mean_outside"
    (the unit's mean activation over all positions inside / outside quotes),
    "activation" (N,), "quote_distance" (N,) from quote_distance}.
    """
    act = np.asarray(h, float)[:, unit]
    dist = quote_distance(text, quotes)
    if act.shape != dist.shape:
        raise ValueError(f"quote_profile: h has {act.shape[0]} rows but the text has {len(text)} characters")
    k = np.arange(max_distance + 1)
    ok = (dist >= 0) & (dist <= max_distance)
    count = np.bincount(dist[ok], minlength=max_distance + 1).astype(float)
    total = np.bincount(dist[ok], weights=act[ok], minlength=max_distance + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / count, np.nan)
    inside = dist >= 0
    return {"unit": int(unit), "distance": k, "mean": mean, "count": count,
            "mean_inside": float(act[inside].mean()) if inside.any() else float("nan"),
            "mean_outside": float(act[~inside].mean()) if (~inside).any() else float("nan"),
            "activation": act, "quote_distance": dist}


# -----------------------------------------------------------------------------
# Gradient flow through time
# -----------------------------------------------------------------------------

def gradient_flow_data(params: dict, chars, text: str, k_max: int = 100, streams: int = 8,
                       init_scale: float = 0.01, seed: int = 0) -> dict:
    """||d loss at the last step / d h k steps earlier|| for k = 0..k_max, trained and at init.

    Uses implementation.hidden_grad_norms on up to `streams` consecutive windows of
    k_max + 1 characters of `text` (averaged over them; fewer if their (T,V,B) table of
    probabilities would pass TABLE_MAX_ENTRIES), in float64 so tiny norms do not
    underflow. "init" is implementation.init_params with the same vocabulary and
    hidden size, `init_scale`, and np.random.default_rng(seed).
    """
    T = k_max + 1
    ids = rnn.encode(text[:streams * T + 1], chars)                  # all the windows read
    fit = max(1, max_table_chars(len(chars)) // T)                   # windows whose (T,V,B) table fits
    B = min(streams, (len(ids) - 1) // T, fit)
    if B < 1:
        raise ValueError(f"gradient_flow: need at least {T + 1} characters of text, got {len(ids)}")
    inputs = np.stack([ids[b * T:b * T + T] for b in range(B)], axis=1)           # (T,B)
    targets = np.stack([ids[b * T + 1:b * T + T + 1] for b in range(B)], axis=1)  # (T,B) shifted by one
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    H, V = p64["Wxh"].shape
    p0 = rnn.init_params(V, H, np.random.default_rng(seed), np.float64, init_scale)
    return {"k": np.arange(T), "trained": rnn.hidden_grad_norms(p64, inputs, targets),
            "init": rnn.hidden_grad_norms(p0, inputs, targets), "inputs": inputs, "targets": targets,
            "init_params": p0}


def per_step_factor(norms) -> float:
    """The average factor by which the gradient norm changes per step back:
    (last / first positive norm) ** (1 / steps between them); NaN with fewer than two."""
    v = np.asarray(norms, float)
    ok = np.flatnonzero(v > 0)
    if ok.size < 2:
        return float("nan")
    return float((v[ok[-1]] / v[ok[0]]) ** (1.0 / (ok[-1] - ok[0])))



# -----------------------------------------------------------------------------
# Where the RNN and the n-gram each win
# -----------------------------------------------------------------------------
#
# The two models score the same validation text character by character:
#   loss_t = -log p(text[t+1] | text[..t])       nats, one number per predicted character
# for the RNN (implementation.target_logprobs, the state carried from the first
# character) and for the n-gram (NGram.logprobs). Grouping those numbers shows
# where each one is better:
#   (a) by how often the n-gram's context (the order-1 characters before the
#       target) occurred in the training text: with 0 occurrences the n-gram can
#       only back off to shorter contexts, with 64+ it has solid counts;
#   (b) by the kind of position: start of a line, inside a speaker's name line,
#       start of a word, inside a word, after punctuation;
#   (c) by how new their samples are: the share of 20-character windows of a
#       sample found verbatim in the training text, and the longest verbatim span.

FREQUENCY_BINS = ((0, 0), (1, 1), (2, 3), (4, 15), (16, 63), (64, None))   # inclusive (low, high)
FREQUENCY_LABELS = ("0", "1", "2-3", "4-15", "16-63", "64+")
POSITION_KINDS = ("all", "line start", "speaker line", "word start", "inside word", "after punctuation")


def per_char_losses(params: dict, ngram: ngram.NGram, ids) -> dict:
    """{"rnn": (M,), "ngram": (M,)}: -log p of each target ids[t+1], M = len(ids) - 1, in nats.

    The RNN reads 256 characters at a time (fewer for a vocabulary over 32,768, to keep
    each table within TABLE_MAX_ENTRIES)."""
    seq_length = min(256, max_table_chars(params["Why"].shape[0]))
    return {"rnn": -rnn.target_logprobs(params, ids, seq_length), "ngram": -ngram.logprobs(ids)}


def frequency_bin(counts) -> np.ndarray:
    """(M,) index into FREQUENCY_LABELS of each count: 0, 1, 2-3, 4-15, 16-63, 64+."""
    counts = np.asarray(counts)
    lows = np.array([lo for lo, _ in FREQUENCY_BINS])
    return np.searchsorted(lows, counts, side="right") - 1            # the last bin whose low <= count


def _group_means(groups: list, losses: dict):
    """For boolean masks `groups`: (count per group, {name: mean loss per group, NaN if empty})."""
    count = np.array([int(g.sum()) for g in groups])
    means = {}
    for name, loss in losses.items():
        loss = np.asarray(loss, dtype=np.float64)
        means[name] = np.array([loss[g].mean() if g.any() else np.nan for g in groups])
    return count, means


def loss_by_context_frequency(counts, losses: dict) -> dict:
    """Per-character losses grouped by how often each target's context occurred in training.

    counts: (M,) occurrences in the training text of the characters before each
    target (NGram.context_counts); losses: {model name: (M,) nats}.
    Returns {"labels": FREQUENCY_LABELS, "count": (6,) characters per bin,
    "mean_loss": {name: (6,) mean nats per bin, NaN for an empty bin}}.
    """
    b = frequency_bin(counts)
    groups = [b == i for i in range(len(FREQUENCY_BINS))]
    count, means = _group_means(groups, losses)
    return {"labels": list(FREQUENCY_LABELS), "count": count, "mean_loss": means}


def position_kinds(text: str) -> dict:
    """{kind: (len(text)-1,) bool}: what kind of position each target text[t+1] is at.

    line start         the first character of a line (the character before is a newline)
    speaker line       a character of a line that ends with ':' (a speaker's name such as
                       "ROMEO:" in tiny Shakespeare), its newline excluded
    word start         a letter after a non-letter
    inside word        a letter after a letter
    after punctuation  any character after one that is neither a letter, a digit nor whitespace
    all                every target
    The kinds overlap (a speaker line starts with a line start and a word start).
    """
    if len(text) < 2:
        raise ValueError("position_kinds: need at least 2 characters")
    alpha = np.array([c.isalpha() for c in text])                     # (N,)
    punct = np.array([not (c.isalnum() or c.isspace()) for c in text])
    newline = np.array([c == "\n" for c in text])
    speaker = np.zeros(len(text), dtype=bool)
    start = 0
    for line in text.split("\n"):
        if line.strip() and line.rstrip().endswith(":"):
            speaker[start:start + len(line)] = True
        start += len(line) + 1
    prev, cur = slice(0, -1), slice(1, None)                          # target t+1, the character before it t
    return {
        "all": np.ones(len(text) - 1, dtype=bool),
        "line start": newline[prev].copy(),
        "speaker line": speaker[cur].copy(),
        "word start": alpha[cur] & ~alpha[prev],
        "inside word": alpha[cur] & alpha[prev],
        "after punctuation": punct[prev].copy(),
    }


def loss_by_position_kind(text: str, losses: dict) -> dict:
    """Per-character losses grouped by position_kinds(text).

    losses: {model name: (len(text)-1,) nats}. Returns {"kinds": POSITION_KINDS,
    "count": (K,), "mean_loss": {name: (K,)}}.
    """
    kinds = position_kinds(text)
    count, means = _group_means([kinds[k] for k in POSITION_KINDS], losses)
    return {"kinds": list(POSITION_KINDS), "count": count, "mean_loss": means}


# --- verbatim copies: hashed windows -----------------------------------------
# A window s[i:i+L] is compared through a 64-bit polynomial hash,
#   G[i] = sum_{j<i} (s_j + 1) B^j  (mod 2^64),   hash(i, L) = (G[i+L] - G[i]) B^-i,
# so every window of a length is hashed at once with NumPy (uint64 arithmetic
# wraps mod 2^64; B is odd, hence invertible). Two different windows share a
# hash with probability about 2^-64 per pair: for a million windows of training
# text against a few thousand of a sample, about 1e-10 in all.

_HASH_B = 0x9E3779B97F4A7C15                                          # odd
_HASH_B_INV = pow(_HASH_B, -1, 2 ** 64)


class _WindowHashes:
    def __init__(self, text: str):
        x = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
        n = x.size
        powers = np.full(n, _HASH_B, dtype=np.uint64)
        powers[0] = 1
        powers = np.cumprod(powers, dtype=np.uint64)                  # (n,) B^j mod 2^64
        inv = np.full(n + 1, _HASH_B_INV, dtype=np.uint64)
        inv[0] = 1
        self.inv = np.cumprod(inv, dtype=np.uint64)                   # (n+1,) B^-i mod 2^64
        self.G = np.concatenate([[np.uint64(0)], np.cumsum(x * powers, dtype=np.uint64)])  # (n+1,)
        self.n = n

    def windows(self, L: int) -> np.ndarray:
        """(n-L+1,) hashes of every window of length L."""
        if L > self.n:
            return np.zeros(0, dtype=np.uint64)
        return (self.G[L:] - self.G[:self.n - L + 1]) * self.inv[:self.n - L + 1]


def _found(sample_h: _WindowHashes, text_h: _WindowHashes, L: int, cache: dict) -> np.ndarray:
    """(windows,) bool: which length-L windows of the sample occur in the text."""
    if L not in cache:
        cache[L] = np.sort(text_h.windows(L))                         # sorted, for searchsorted
    table, w = cache[L], sample_h.windows(L)
    if table.size == 0 or w.size == 0:
        return np.zeros(w.size, dtype=bool)
    pos = np.minimum(np.searchsorted(table, w), table.size - 1)
    return table[pos] == w


def verbatim_stats(samples: dict, train_text: str, window: int = 20) -> dict:
    """How much of each text is copied from the training text.

    samples: {name: text}. For each: {"windows": number of `window`-character
    windows, "found": how many occur verbatim in train_text, "share": found /
    windows, "longest": length of the longest stretch of the text found verbatim
    in train_text, "longest_text": that stretch}.
    """
    text_h = _WindowHashes(train_text)
    cache, out = {}, {}
    for name, s in samples.items():
        h = _WindowHashes(s)
        found = _found(h, text_h, window, cache) if len(s) >= window else np.zeros(0, bool)
        lo, hi = 0, len(s)                       # longest: the largest L with some window found (monotone)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if _found(h, text_h, mid, cache).any():
                lo = mid
            else:
                hi = mid - 1
        at = int(np.argmax(_found(h, text_h, lo, cache))) if lo else 0
        out[name] = {"windows": int(found.size), "found": int(found.sum()),
                     "share": float(found.mean()) if found.size else float("nan"),
                     "longest": int(lo), "longest_text": s[at:at + lo]}
    return out


def sample_novelty(params: dict, ngram: ngram.NGram, chars, train_text: str, val_text: str,
                   length: int = 2000, temperature: float = 1.0, seed: int = 0,
                   prime: str | None = None, window: int = 20) -> dict:
    """verbatim_stats for a sample of each model and, as the reference, the validation text.

    Both samples have `length` characters, the same temperature and prime (default a
    newline, or the vocabulary's first character if it has no newline), and a
    generator seeded with `seed`; the reference is the first `length` characters
    of val_text. Returns {"rnn": ..., "ngram": ..., "validation": ...}, each with
    "text" added.
    """
    if prime is None:
        prime = "\n" if "\n" in chars else chars[0]
    texts = {
        "rnn": rnn.sample_text(params, chars, prime, length, temperature, np.random.default_rng(seed)),
        "ngram": ngram.sample_text(chars, prime, length, temperature, np.random.default_rng(seed)),
        "validation": val_text[:length],
    }
    stats = verbatim_stats(texts, train_text, window)
    for name, t in texts.items():
        stats[name]["text"] = t
    return stats


# The mixture: p_mix(w) = lam * p_rnn(w) + (1 - lam) * p_ngram(w), per character.
# lam is a setting chosen on data, so it is chosen on one half of the validation
# text and reported on the other half (and the other way round): a number
# measured on the text lam was tuned on would flatter the mixture.

MIX_GRID = tuple(round(0.05 * i, 2) for i in range(21))            # lam = 0, 0.05, ..., 1


def mixture_nats(lp_a, lp_b, lam: float) -> float:
    """Mean -log(lam * p_a + (1 - lam) * p_b) per character, from log-probabilities lp_a, lp_b (M,)."""
    with np.errstate(divide="ignore"):
        la, lb = np.log(lam), np.log1p(-lam)                         # log lam, log(1 - lam); -inf at 0
    return float(-np.logaddexp(la + np.asarray(lp_a), lb + np.asarray(lp_b)).mean())  # log(lam p_a + (1-lam) p_b)


def mixture_cross_validated(lp_rnn, lp_ngram, grid=MIX_GRID) -> list[dict]:
    """lam chosen on one half of the validation targets, reported on the other, both ways.

    lp_rnn, lp_ngram: (M,) log p of each target under each model. The first half
    is targets [0, M//2), the second [M//2, M). Returns two dicts: choose_on,
    report_on, lambda, chars, and the mean nats of the mixture, the RNN alone
    and the n-gram alone on the report half.
    """
    lp_rnn, lp_ngram = np.asarray(lp_rnn, float), np.asarray(lp_ngram, float)
    M = lp_rnn.size
    halves = {"first": slice(0, M // 2), "second": slice(M // 2, M)}
    out = []
    for choose, report in (("first", "second"), ("second", "first")):
        c, r = halves[choose], halves[report]
        lam = min(grid, key=lambda g: mixture_nats(lp_rnn[c], lp_ngram[c], g))
        out.append({"choose_on": choose, "report_on": report, "lambda": float(lam),
                    "chars": int(lp_rnn[r].size),
                    "mix_nats": mixture_nats(lp_rnn[r], lp_ngram[r], lam),
                    "rnn_nats": float(-lp_rnn[r].mean()), "ngram_nats": float(-lp_ngram[r].mean())})
    return out


def ensemble_logprobs(lps) -> np.ndarray:
    """log of the mean probability K models give each target: log((p_1 + ... + p_K) / K).

    lps: (K,M) log p of each of M targets under each of K models (say, RNNs trained
    from different seeds), or any K arrays of one shape (whole (M,V) tables of
    log-probabilities, say), which may come one at a time from a generator: only
    the running sum is kept. Returns the shape of one. Averaging probabilities,
    not log-probabilities, keeps it a distribution: the K models' mistakes differ,
    and the average is never worse than the mean of their losses (Jensen), often
    much better.
    """
    total, k = None, 0
    for lp in lps:
        lp = np.asarray(lp, float)
        if lp.ndim < 1:
            raise ValueError("ensemble_logprobs: lps must be (K,M), one row of log-probabilities per model; "
                             "got a single model's (M,) array (pass [lp] for an ensemble of one)")
        if total is not None and lp.shape != total.shape:
            raise ValueError(f"ensemble_logprobs: every model needs the same shape, got {total.shape} and {lp.shape}")
        total = lp.copy() if total is None else np.logaddexp(total, lp, out=total)   # log sum_k p_k
        k += 1
    if k == 0:
        raise ValueError("ensemble_logprobs: no models given")
    return total - math.log(k)                                          # log(sum_k p_k) - log K


# The product of the two. A mixture adds probabilities: wherever either model
# gives the target a fair share, so does the mixture. A product multiplies them,
# each raised to a power, and renormalises over the V characters:
#
#     log p(w) = a log p_rnn(w) + b log p_ngram(w) - log Z,   Z = sum_w p_rnn(w)^a p_ngram(w)^b
#
# so a character either model finds unlikely is pushed down (a "product of
# experts"). (a, b) = (1, 0) is the RNN alone, (0, 1) the n-gram; a + b < 1
# flattens the result, which pays when both are confident about the same things.
# Fitting (a, b) is a softmax regression whose features are the models'
# log-probabilities: its loss is convex in the weights, so Newton's method finds
# the one minimum in a few steps. Like lambda, the weights are chosen on one half
# of the validation text and reported on the other. It needs each model's whole
# distribution at every position (rnn.logprob_table, NGram.logprob_table), not
# just the target's. The same code multiplies any number K of models (say, the
# RNN and two n-gram orders): one weight each.


def _product_terms(tables, targets, w, block: int = 8192):
    """Mean loss, gradient (K,) and Hessian (K,K) of the product's -log p(target) in the weights w."""
    K, n, _ = tables.shape
    loss, grad, hess = 0.0, np.zeros(K), np.zeros((K, K))
    for s in range(0, n, block):
        f, tg = tables[:, s:s + block], targets[s:s + block]          # (K,r,V) features, (r,) targets
        rows = np.arange(len(tg))
        z = np.tensordot(w, f, axes=1)                                   # (r,V) sum_k w_k log p_k(w)
        logz = np.logaddexp.reduce(z, axis=1)                            # (r,) log Z
        p = np.exp(z - logz[:, None])                                    # (r,V) the product's p
        loss += float((logz - z[rows, tg]).sum())                        # -log p(target)
        e = (f * p).sum(axis=2)                                          # (K,r) E_p[log p_k]
        grad += (e - f[:, rows, tg]).sum(axis=1)                         # d loss / d w_k
        hess += np.einsum("irv,jrv,rv->ij", f, f, p) - e @ e.T           # sum over rows of Cov_p(log p_i, log p_j)
    return loss / n, grad / n, hess / n


def _check_tables(tables, targets, caller):
    shapes = [np.shape(t) for t in tables]
    targets = np.asarray(targets, dtype=np.int64).ravel()
    if not shapes or len(set(shapes)) > 1 or len(shapes[0]) != 2 or shapes[0][0] != targets.size:
        raise ValueError(f"{caller}: need K (M,V) tables of one shape and (M,) targets, got tables "
                         f"{shapes} and targets {targets.shape} (the tables come from "
                         "rnn.logprob_table and NGram.logprob_table)")
    tables = np.asarray(tables, float)                                   # (K,M,V)
    if not np.isfinite(tables).all():
        raise ValueError(f"{caller}: the tables must be finite log-probabilities (no model may give 0)")
    return tables, targets


def product_nats(tables, targets, weights) -> float:
    """Mean -log p(target) of the product p ~ prod_k p_k^w_k, from K (M,V) log-probability tables."""
    tables, targets = _check_tables(tables, targets, "product_nats")
    return _product_terms(tables, targets, np.asarray(weights, float))[0]


def fit_product(tables, targets, tol: float = 1e-9, max_steps: int = 50) -> np.ndarray:
    """(K,) weights minimising product_nats(tables, targets, weights): Newton's method with step halving."""
    tables, targets = _check_tables(tables, targets, "fit_product")
    w = np.full(len(tables), 1.0 / len(tables))
    loss, g, hess = _product_terms(tables, targets, w)
    for _ in range(max_steps):
        if np.abs(g).max() < tol:
            break
        step = -np.linalg.lstsq(hess, g, rcond=None)[0]                  # Newton: solve H step = -g
        for _ in range(30):                                              # halve it until the loss drops
            new = _product_terms(tables, targets, w + step)
            if new[0] <= loss:
                break
            step /= 2
        else:
            break                                                        # no step lowers it: at the minimum
        w = w + step
        loss, g, hess = new
    return w


def product_cross_validated(tables, targets) -> list[dict]:
    """Weights fitted on one half of the validation targets, reported on the other, both ways.

    tables: K (M,V) log-probability tables, one per model (the RNN's first, say);
    targets: (M,) the characters to predict. Halves as in mixture_cross_validated. Returns
    two dicts: choose_on, report_on, weights (K floats), chars, and the product's
    mean nats on the report half.
    """
    tables, targets = _check_tables(tables, targets, "product_cross_validated")
    M = targets.size
    halves = {"first": slice(0, M // 2), "second": slice(M // 2, M)}
    out = []
    for choose, report in (("first", "second"), ("second", "first")):
        c, r = halves[choose], halves[report]
        w = fit_product(tables[:, c], targets[c])
        out.append({"choose_on": choose, "report_on": report, "weights": [float(x) for x in w],
                    "chars": int(targets[r].size),
                    "product_nats": _product_terms(tables[:, r], targets[r], w)[0]})
    return out


def compare_models(params: dict, ngram: ngram.NGram, chars, train_text: str, val_text: str,
                   sample_length: int = 2000, temperature: float = 1.0, seed: int = 0) -> dict:
    """(a), (b) and (c) for an RNN and a fitted n-gram on the validation text.

    Returns {"order", "losses", "context_counts", "frequency", "position", "novelty"}.
    """
    ids = rnn.encode(val_text, chars)
    losses = per_char_losses(params, ngram, ids)
    counts = ngram.context_counts(ids)
    return {"order": ngram.order, "losses": losses, "context_counts": counts,
            "frequency": loss_by_context_frequency(counts, losses),
            "position": loss_by_position_kind(val_text, losses),
            "novelty": sample_novelty(params, ngram, chars, train_text, val_text, sample_length,
                                      temperature, seed)}


# -----------------------------------------------------------------------------
# How much context the RNN uses
# -----------------------------------------------------------------------------
#
# An order-N n-gram reads exactly N-1 characters before each target. The RNN
# reads everything since its state was last reset, but how much of that can it
# use? Cut the text into windows, read each window from h = 0, and average the
# loss at each position of the window over many windows: position j has seen
# j+1 characters (the window's first j+1), so the curve is the loss given c =
# j+1 characters of context. Where the curve flattens, more context stops
# helping: that is the reach of the model's memory.
#
# Two cautions. With windows every `stride` characters, position c scores the
# targets at c plus a multiple of stride, a different set for each c modulo
# stride; compare means over runs of `stride` positions (c = 11..20, 21..30,
# ... for stride 10), which score the same targets, not single positions. And
# a model trained reading on from the previous window's state has rarely
# started from h = 0, so its first few characters after a reset score worse
# than a short n-gram would: the start of the curve measures that warm-up as
# much as the context; where it flattens is the part to read.


def loss_by_context_length(params: dict, ids, max_context: int = 300, stride: int = 10,
                           block: int = 256) -> dict:
    """Mean loss on a target given only the c characters before it, c = 1..max_context.

    Windows of max_context + 1 characters start every `stride` characters of ids
    (as many as fit); each is read by implementation.forward from h = 0, and
    position j of a window (context c = j + 1) predicts its character j + 1.
    Returns {"context": (C,) c = 1..C, "nats": (C,) mean loss over the windows,
    "sem": (C,) its standard error, "windows": how many}. `block` windows run side
    by side at a time (memory: about block * max_context * H numbers of the params' dtype).
    """
    ids = np.asarray(ids)
    C, stride, block = int(max_context), int(stride), int(block)
    if C < 1 or stride < 1 or block < 1:
        raise ValueError(f"loss_by_context_length: max_context, stride and block must be >= 1, "
                         f"got {max_context}, {stride}, {block}")
    if ids.size < C + 1:
        raise ValueError(f"loss_by_context_length: the text has {ids.size} characters, fewer than "
                         f"max_context + 1 = {C + 1}: pass a smaller max_context")
    starts = np.arange(0, ids.size - C, stride)                          # (W,) window starts
    total, total_sq = np.zeros(C), np.zeros(C)
    for b in range(0, starts.size, block):
        win = ids[starts[b:b + block, None] + np.arange(C + 1)].T       # (C+1, w) window k is column k
        _, logp = rnn.forward(params, win[:-1])                         # (C,V,w) from h = 0
        loss = -np.take_along_axis(logp, win[1:, None], axis=1)[:, 0].astype(np.float64)  # (C,w)
        total += loss.sum(axis=1)
        total_sq += (loss * loss).sum(axis=1)
    W = starts.size
    mean = total / W
    var = np.maximum(total_sq / W - mean * mean, 0.0) * W / max(W - 1, 1)  # sample variance per position
    return {"context": np.arange(1, C + 1), "nats": mean, "sem": np.sqrt(var / W), "windows": int(W)}


# -----------------------------------------------------------------------------
# The memory horizon: closing quotes
# -----------------------------------------------------------------------------
#
# A closing quote mark is a test of memory. After `he had come,` the next
# character is a space in narration but `"` inside a quotation, and the sure
# way to know which is to remember whether a quotation opened, however long
# ago. An order-N n-gram sees the N-1 characters before the target, so it sees
# the opening quote only when the quotation holds at most N-2 characters; past
# that it can only guess from the local context, whatever the length. The RNN
# can carry "inside a quotation" in its hidden state, for as long as its memory
# lasts. So we group the closing quotes by the length of their quotation and
# compare the loss each model pays on them:
#
#   closing   loss on the closing `"` itself                   the memory test
#   after     loss on the character right after it             (a space, a newline...)
#   opening   loss on the opening `"` of the same quotation    the control
#
# Why the opening quote is the control: no model can know, at the opening
# quote, how long the quotation will be; the length lies in the future. So the
# opening-quote loss cannot depend on the length through memory, and whatever
# it does across the bins measures how the bins differ in other ways (where
# short and long quotations sit in the text, what comes before them). A trend
# in the closing-quote loss that the control does not show is memory.
#
# Pairing rule. The text uses one mark, the straight `"`, to open and to close.
# Within each paragraph (the lines up to a blank line: one that is empty or
# holds only spaces and tabs) the marks are paired in
# order: 1st with 2nd, 3rd with 4th, ...; an odd last mark of a paragraph is
# left unpaired. Paragraph by paragraph because a quotation that runs over
# several paragraphs is written with an opening mark at the start of each
# paragraph and a closing mark only at the end of the last one; pairing across
# the whole text would then be out of step for everything after it (in War
# and Peace, 31 of 11,349 paragraphs have an odd number of marks, and a
# validation split that starts inside a quotation would be out of step from
# its first mark). Limits: the last paragraph of a long speech counts its
# length from its own opening mark, not the first paragraph's; its earlier
# paragraphs give no pair at all; a `"` used for anything else (inches, a
# title) or a quotation that never closes puts the rest of its paragraph out
# of step; single quotes ('...') are not looked at.
#
# Length: the characters strictly between the two marks ("Ah!" has length 3).
# The loss on text[i] is losses[i-1] (losses[t] is for the target text[t+1]),
# so a mark at position 0, or a closing mark at the very end (no character
# after it), drops out of those rows.

QUOTE_BINS = ((1, 10), (11, 30), (31, 100), (101, 300), (301, None))   # inclusive (low, high)
QUOTE_LABELS = ("1-10", "11-30", "31-100", "101-300", "301+")


def quotations(text: str, mark: str = '"') -> np.ndarray:
    """(Q,2) int: the positions in `text` of the opening and closing mark of each quotation.

    The marks are paired in order within each paragraph (see the rule above);
    an odd last mark of a paragraph stays unpaired.
    """
    if len(mark) != 1:
        raise ValueError(f"quotations: mark must be one character, got {mark!r}")
    pairs, marks, start = [], [], 0
    for line in text.split("\n") + [""]:                              # a final blank line ends the last paragraph
        if line.strip(" \t") == "":                                   # a blank line: the paragraph ends
            pairs += list(zip(marks[0::2], marks[1::2]))              # an odd last mark has no partner
            marks = []
        else:
            marks += [start + i for i, c in enumerate(line) if c == mark]
        start += len(line) + 1
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def quote_length_bin(lengths) -> np.ndarray:
    """(Q,) index into QUOTE_LABELS of each length: 1-10, 11-30, 31-100, 101-300, 301+; -1 for 0."""
    lengths = np.asarray(lengths)
    lows = np.array([lo for lo, _ in QUOTE_BINS])
    return np.searchsorted(lows, lengths, side="right") - 1            # the last bin whose low <= length


def _mean_and_sem(groups: list, values) -> tuple:
    """(mean, standard error of the mean) of values[g] for each boolean mask g; NaN if too few."""
    mean = np.array([values[g].mean() if g.any() else np.nan for g in groups])
    sem = np.array([values[g].std(ddof=1) / np.sqrt(g.sum()) if g.sum() > 1 else np.nan for g in groups])
    return mean, sem


def loss_at_quotes(text: str, losses: dict, mark: str = '"') -> dict:
    """The loss each model pays at the quote marks, by the length of the quotation.

    losses: {model name: (len(text)-1,) nats, losses[t] for the target text[t+1]},
    e.g. per_char_losses. Returns
      "labels"   QUOTE_LABELS
      "pairs"    (Q,2) quotations(text), "lengths" (Q,), "bin" (Q,) (-1: length 0, in no bin)
      "count"    {"closing", "after", "opening"}: (5,) how many marks of each kind per bin
      "mean"     {"closing", "after", "opening"}: {name: (5,) mean nats, NaN if empty}
      "sem"      the same shape: the standard error of each mean (std / sqrt(count))
      "gap"      {"closing", "after", "opening"}: {name: (5,) mean of (that model's loss
                 minus the first model's) on the same characters}, and "gap_sem" its
                 standard error: the first model's advantage, paired character by character
    where "closing" is the closing mark, "after" the character right after it and
    "opening" the opening mark of the same quotation (the control).
    """
    names = list(losses)
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in losses.items()}
    for k, v in arrays.items():
        if v.shape != (len(text) - 1,):
            raise ValueError(f"loss_at_quotes: losses[{k!r}] must have shape (len(text)-1,) = "
                             f"({len(text) - 1},), one loss per predicted character; got {v.shape}")
    pairs = quotations(text, mark)
    lengths = pairs[:, 1] - pairs[:, 0] - 1                            # characters strictly between
    b = quote_length_bin(lengths)
    M = len(text) - 1
    targets = {"closing": pairs[:, 1] - 1,                             # loss index of text[i] is i - 1
               "after": pairs[:, 1],
               "opening": pairs[:, 0] - 1}
    out = {"labels": list(QUOTE_LABELS), "pairs": pairs, "lengths": lengths, "bin": b,
           "count": {}, "mean": {}, "sem": {}, "gap": {}, "gap_sem": {}}
    for kind, idx in targets.items():
        ok = (idx >= 0) & (idx < M)                                    # the mark has a loss at all
        groups = [ok & (b == i) for i in range(len(QUOTE_BINS))]
        safe = np.clip(idx, 0, max(M - 1, 0))
        out["count"][kind] = np.array([int(g.sum()) for g in groups])
        out["mean"][kind], out["sem"][kind], out["gap"][kind], out["gap_sem"][kind] = {}, {}, {}, {}
        for k in names:
            v = arrays[k][safe] if M else np.zeros(len(idx))           # (Q,) this model's loss on each mark
            out["mean"][kind][k], out["sem"][kind][k] = _mean_and_sem(groups, v)
            diff = v - arrays[names[0]][safe] if M else v
            out["gap"][kind][k], out["gap_sem"][kind][k] = _mean_and_sem(groups, diff)
    return out


def memory_horizon_data(params: dict, ngram: ngram.NGram, chars, val_text: str) -> dict:
    """loss_at_quotes for the RNN and a fitted n-gram on the validation text.

    Returns {"order", "losses", "quotes"}; quotes["gap"][kind]["ngram"] is the
    RNN's advantage in nats (n-gram loss minus RNN loss) on each kind of mark.
    """
    ids = rnn.encode(val_text, chars)
    losses = per_char_losses(params, ngram, ids)
    return {"order": ngram.order, "losses": losses, "quotes": loss_at_quotes(val_text, losses)}
