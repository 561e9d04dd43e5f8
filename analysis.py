"""Numbers about trained models and texts, computed with implementation.py; no plotting.

Every function returns arrays or dicts, for the figures in visualization.py, the
notebook and the tests to use.
"""

from __future__ import annotations

import numpy as np

import implementation as rnn


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


def per_char_losses(params: dict, ngram: rnn.NGram, ids) -> dict:
    """{"rnn": (M,), "ngram": (M,)}: -log p of each target ids[t+1], M = len(ids) - 1, in nats."""
    return {"rnn": -rnn.target_logprobs(params, ids), "ngram": -ngram.logprobs(ids)}


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


def sample_novelty(params: dict, ngram: rnn.NGram, chars, train_text: str, val_text: str,
                   length: int = 2000, temperature: float = 1.0, seed: int = 0,
                   prime: str = "\n", window: int = 20) -> dict:
    """verbatim_stats for a sample of each model and, as the reference, the validation text.

    Both samples have `length` characters, the same temperature and prime, and a
    generator seeded with `seed`; the reference is the first `length` characters
    of val_text. Returns {"rnn": ..., "ngram": ..., "validation": ...}, each with
    "text" added.
    """
    texts = {
        "rnn": rnn.sample_text(params, chars, prime, length, temperature, np.random.default_rng(seed)),
        "ngram": ngram.sample_text(chars, prime, length, temperature, np.random.default_rng(seed)),
        "validation": val_text[:length],
    }
    stats = verbatim_stats(texts, train_text, window)
    for name, t in texts.items():
        stats[name]["text"] = t
    return stats


def compare_models(params: dict, ngram: rnn.NGram, chars, train_text: str, val_text: str,
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


def memory_horizon(params: dict, ngram: rnn.NGram, chars, val_text: str) -> dict:
    """loss_at_quotes for the RNN and a fitted n-gram on the validation text.

    Returns {"order", "losses", "quotes"}; quotes["gap"][kind]["ngram"] is the
    RNN's advantage in nats (n-gram loss minus RNN loss) on each kind of mark.
    """
    ids = rnn.encode(val_text, chars)
    losses = per_char_losses(params, ngram, ids)
    return {"order": ngram.order, "losses": losses, "quotes": loss_at_quotes(val_text, losses)}
