"""The baseline to beat: an interpolated Kneser-Ney character n-gram, and the
cross-fitted table of its distributions that --distill and --ngram-prior train with.

Its interface mirrors the RNN's functions in implementation.py, so the same
tools (evaluation, sampling, the mixtures in analysis.py) work on both.
"""

from __future__ import annotations

import math

import numpy as np

from implementation import check_temperature, decode, encode, sample_probs

# An order-N model predicts the next character w from the N-1 characters before
# it, the context h, by counting: how often did hw occur in the training text?
# Raw relative frequencies c(hw)/c(h) give probability 0 to everything unseen,
# so Kneser-Ney takes a fixed amount D from every seen count and hands what it
# took to the next-shorter context h' (h without its oldest character):
#
#   P_k(w|h) = max(c_k(hw) - D, 0) / c_k(h)                       seen: discounted share
#            + D * N1+(h.) / c_k(h) * P_{k-1}(w|h')                taken mass, given to h'
#
#   k          the level: the length of hw (context length k-1), from N down to 1
#   c_k(hw)    at the top level k = N, the raw count of hw in the training text;
#              at every lower level the continuation count N1+(.hw), the number
#              of distinct characters seen just before hw
#   c_k(h)     sum over w of c_k(hw)
#   N1+(h.)    the number of distinct w with c_k(hw) > 0
#   D          the absolute discount, 0.9 at every level
#   P_0(w)     1/V, the uniform distribution the recursion ends in
#   if c_k(h) = 0 (a context never seen at this level): P_k(w|h) = P_{k-1}(w|h')
#
# Why continuation counts below the top: a lower level only speaks when the
# longer context knew little, so it should rate w by how many different
# contexts it follows, not by how often it occurs ("Francisco" is frequent but
# follows only "San"). Each level's probabilities sum to 1: the seen terms give
# (c_k(h) - D N1+(h.)) / c_k(h), the taken mass D N1+(h.) / c_k(h).
#
# Counting without a Python loop per character, and without overflow: an n-gram
# is never packed as sum_j a_j V^j (V**N passes 2**63 for V=82, N=10). Instead
# the k-gram a_1..a_k gets the key  rank_{k-1}(a_2..a_k) * V + a_1,  where
# rank_{k-1} is the position of its (k-1)-gram suffix among the sorted distinct
# (k-1)-grams of the training text; np.unique of those keys gives rank_k. A key
# stays below (number of distinct (k-1)-grams) * V <= len(text) * V, whatever
# the order, and one pass over the text per level (np.unique, np.searchsorted)
# finds every n-gram.

def _suffix_ranks(ids: np.ndarray, lens: np.ndarray, V: int, tables: list) -> list:
    """Ranks of the j-grams that end at the last column of each row, j = 1..W.

    ids: (M,W) ids, right-aligned; lens: (M,) how many of the last columns are
    real characters (the rest is padding). tables[j]: sorted distinct keys of the
    training j-grams. Returns [None, r_1, ..., r_W], r_j (M,) the rank of the
    j-gram ids[:, W-j:] in tables[j], or -1 if that j-gram never occurred in
    training (or the row has fewer than j characters).
    """
    M, W = ids.shape
    ranks = [None]
    prev = np.zeros(M, dtype=np.int64)                                # rank_0 of the empty suffix
    for j in range(1, W + 1):
        ok = (prev >= 0) & (lens >= j)                                # (M,) suffix seen, char real
        key = prev * V + ids[:, W - j]                                # (M,) rank_{j-1}(suffix)*V + a_1
        keys = tables[j]
        pos = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
        found = ok & (len(keys) > 0) & (keys[pos] == key if len(keys) else False)
        prev = np.where(found, pos, -1)                               # (M,) rank_j or -1
        ranks.append(prev)
    return ranks


class NGram:
    """Interpolated Kneser-Ney character n-gram of order N (context of N-1 characters).

    The interface mirrors the RNN's functions, so the same tools work on both:

        m = NGram(order=7).fit(train_ids, vocab_size=len(chars))
        m.evaluate(val_ids)           # {"nats", "bits", "chars"} like rnn.evaluate
        m.probs(context_ids)          # (V,) next-character distribution (context may be empty)
        m.logprobs(ids)               # (len(ids)-1,) log p(ids[t+1] | ids[..t])
        m.logprob_table(ids)          # (len(ids)-1, V) log P(w | context) for every w
        m.sample_text(chars, prime, n, temperature, rng, top_k)

    discount: D in the formula above (0 < D < 1; 0.9 by default), or "modified"
    for modified Kneser-Ney (Chen & Goodman): three discounts per level, D1, D2,
    D3+ for n-grams seen once, twice, three or more times, from that level's
    count-of-counts n_r (how many distinct n-grams have count r):
        Y = n_1 / (n_1 + 2 n_2),  D_r = r - (r + 1) Y n_{r+1} / n_r   (r = 1, 2, 3)
    and the taken mass D1 N1(h.) + D2 N2(h.) + D3 N3+(h.) in place of D N1+(h.).
    """

    def __init__(self, order: int, discount=0.9):
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"NGram: order must be an integer >= 1 (1 = unigram), got {order!r}")
        if discount != "modified":
            if isinstance(discount, str) or not (0.0 < float(discount) < 1.0):
                raise ValueError(f"NGram: discount must be a number in (0, 1) or 'modified', got {discount!r}")
            discount = float(discount)
        self.order = int(order)
        self.discount = discount
        self.vocab_size = None

    # --- counting -------------------------------------------------------------

    def fit(self, train_ids, vocab_size: int) -> "NGram":
        """Count every k-gram (k = 1..order) of the training ids; returns self."""
        ids = np.asarray(train_ids, dtype=np.int64).ravel()
        V, N = int(vocab_size), self.order
        if ids.size == 0:
            raise ValueError("NGram.fit: the training ids are empty")
        if ids.min() < 0 or ids.max() >= V:
            raise ValueError(f"NGram.fit: ids must be in 0..vocab_size-1 = 0..{V - 1}, "
                             f"got {ids.min()}..{ids.max()}; pass vocab_size=len(chars)")
        self.vocab_size = V
        n = ids.size
        tables, occ, ctx_of = [None], [None], [None]
        rank = np.zeros(n, dtype=np.int64)          # rank[p]: rank of the (k-1)-gram ending at p (0 for k=1)
        prev_rank = None
        for k in range(1, N + 1):
            # the k-grams end at p = k-1..n-1; key = rank_{k-1}(ids[p-k+2..p]) * V + ids[p-k+1]
            key = rank[k - 1:] * V + ids[: n - k + 1]                 # (n-k+1,)
            uniq, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
            new_rank = np.full(n, -1, dtype=np.int64)
            new_rank[k - 1:] = inv.ravel()                            # rank_k of the k-gram ending at p
            tables.append(uniq)                                       # (n_k,) sorted keys
            occ.append(cnt)                                           # (n_k,) raw counts in training
            if k == 1:
                ctx_of.append(np.zeros(len(uniq), dtype=np.int64))    # every unigram has the empty context
            else:
                # the context of the k-gram ending at p is the (k-1)-gram ending at p-1
                c = np.empty(len(uniq), dtype=np.int64)
                c[inv.ravel()] = prev_rank[k - 2: n - 1]
                ctx_of.append(c)                                      # (n_k,) rank_{k-1} of its context
            prev_rank = rank = new_rank                               # rank_k, for level k+1
        self._tables, self._occ, self._ctx_of = tables, occ, ctx_of
        # the counts each level uses: raw at the top, continuation N1+(.hw) below
        counts = [None] * (N + 1)
        counts[N] = occ[N].astype(np.float64)
        for k in range(1, N):
            # the (k+1)-gram key // V is the rank of its k-gram suffix: distinct left neighbours
            counts[k] = np.bincount(tables[k + 1] // V, minlength=len(tables[k])).astype(np.float64)
        self._counts = counts
        # the discount of each n-gram, and each context's total c_k(h) and taken mass
        self._disc, self._ctx_total, self._ctx_taken, self.discounts = [None], [None], [None], [None]
        for k in range(1, N + 1):
            c = counts[k]
            D = self._level_discounts(c)                              # (D1, D2, D3+)
            self.discounts.append(D)
            d = np.where(c >= 3, D[2], np.where(c == 2, D[1], np.where(c == 1, D[0], 0.0)))
            d = np.minimum(d, c)                                      # never take more than the count
            n_ctx = 1 if k == 1 else len(tables[k - 1])
            self._disc.append(d)                                      # (n_k,)
            self._ctx_total.append(np.bincount(ctx_of[k], weights=c, minlength=n_ctx))  # (n_ctx,) c_k(h)
            self._ctx_taken.append(np.bincount(ctx_of[k], weights=d, minlength=n_ctx))  # (n_ctx,) D N1+(h.)
        return self

    def _level_discounts(self, c):
        if self.discount != "modified":
            return (self.discount,) * 3
        n = [int(np.count_nonzero(c == r)) for r in (1, 2, 3, 4)]     # count-of-counts n_1..n_4
        if min(n) == 0:                                               # too little data for the estimate
            return (0.9, 0.9, 0.9)
        Y = n[0] / (n[0] + 2 * n[1])
        D = tuple(r - (r + 1) * Y * n[r] / n[r - 1] for r in (1, 2, 3))
        return tuple(float(min(max(x, 0.05), r - 0.05)) for r, x in zip((1, 2, 3), D))

    def _check_fitted(self, name):
        if self.vocab_size is None:
            raise ValueError(f"NGram.{name}: call fit(train_ids, vocab_size) first")

    # --- probabilities ----------------------------------------------------------

    def _probs_of_windows(self, win: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """P(last column | the columns before it) for each row of win (M, N).

        lens: (M,) how many of the last columns are real (1 = no context at all).
        Bottom-up over the levels: p starts as 1/V and is replaced, level by level,
        by P_k as long as the row has k real characters.
        """
        N, V = self.order, self.vocab_size
        M = win.shape[0]
        gram = _suffix_ranks(win, lens, V, self._tables)                # k-gram hw, ends at the target
        ctx = _suffix_ranks(win[:, :-1], lens - 1, V, self._tables[:N])  # context h, ends just before
        p = np.full(M, 1.0 / V)                                         # (M,) P_0(w) = 1/V
        for k in range(1, N + 1):
            if k == 1:
                total = np.full(M, self._ctx_total[1][0])               # (M,) c_1() = sum_w c_1(w)
                taken = np.full(M, self._ctx_taken[1][0])
                live = lens >= 1
            else:
                h = ctx[k - 1]                                          # (M,) rank of h, -1 if unseen
                hs = np.maximum(h, 0)
                total = np.where(h >= 0, self._ctx_total[k][hs], 0.0)   # (M,) c_k(h)
                taken = np.where(h >= 0, self._ctx_taken[k][hs], 0.0)   # (M,) D N1+(h.)
                live = (lens >= k) & (total > 0)                        # c_k(h) = 0: keep P_{k-1}
            g = gram[k]
            gs = np.maximum(g, 0)
            c = np.where(g >= 0, self._counts[k][gs], 0.0)              # (M,) c_k(hw)
            d = np.where(g >= 0, self._disc[k][gs], 0.0)                # (M,) its discount
            safe = np.where(live, total, 1.0)
            p_k = (c - d) / safe + taken / safe * p                     # (M,) P_k(w|h)
            p = np.where(live, p_k, p)
        return p

    def _windows(self, ids):
        """Every target ids[t+1] with up to N-1 characters before it: (win (M,N), lens (M,))."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        N = self.order
        padded = np.concatenate([np.zeros(N - 1, np.int64), ids])
        win = np.lib.stride_tricks.sliding_window_view(padded, N)[1:]   # (len-1, N) row t ends at ids[t+1]
        lens = np.minimum(np.arange(2, ids.size + 1), N)                # (len-1,) t+2 characters exist
        return win, lens

    def logprobs(self, ids, block: int = 65536) -> np.ndarray:
        """(len(ids)-1,) log p(ids[t+1] | ids[max(0, t-N+2) .. t]): every target, in blocks.

        The first targets see a shorter context (only the characters that exist),
        just as the RNN's evaluate starts from h = 0.
        """
        self._check_fitted("logprobs")
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"NGram.logprobs: ids must be in 0..{self.vocab_size - 1}")
        win, lens = self._windows(ids)
        out = np.empty(len(lens))
        for s in range(0, len(lens), block):
            out[s:s + block] = np.log(self._probs_of_windows(win[s:s + block], lens[s:s + block]))
        return out

    def logprob_table(self, ids, block: int = 65536) -> np.ndarray:
        """(len(ids)-1, V) log P(w | the context of target t) for every character w.

        Row t is the whole next-character distribution that logprobs(ids)[t] picks
        one entry from (column ids[t+1]), for every position at once: what a
        product of models needs (analysis.product_cross_validated). `block` bounds the
        rows updated at once (rows * V <= block), and so the temporaries of the
        scatter below; the (len(ids)-1, V) result itself is one array.

        The same recursion as _probs_of_windows, on whole rows: start from 1/V
        everywhere, and at each level k whose context h was seen, scale the row
        by the taken mass D N1+(h.) / c_k(h), then add (c_k(hw) - D) / c_k(h) at
        the few w seen after h (the level's children of h, see _children).
        """
        self._check_fitted("logprob_table")
        ids = np.asarray(ids, dtype=np.int64).ravel()
        N, V = self.order, self.vocab_size
        if ids.size and (ids.min() < 0 or ids.max() >= V):
            raise ValueError(f"NGram.logprob_table: ids must be in 0..{V - 1}")
        win, lens = self._windows(ids)                                   # (M,N), (M,)
        n = lens - 1                                                     # (M,) context lengths
        ctx = _suffix_ranks(win[:, :-1], n, V, self._tables[:N])        # ranks of the contexts, -1 if unseen
        out = np.full((len(lens), V), 1.0 / V)                           # (M,V) P_0(w) = 1/V
        step = max(1, block // V)
        for k in range(1, N + 1):                                        # one level at a time, over all rows
            indptr, last, gain = self._children(k)
            h = np.zeros(len(n), np.int64) if k == 1 else ctx[k - 1]      # (M,) rank of h at level k
            hs = np.maximum(h, 0)
            total = np.where(h >= 0, self._ctx_total[k][hs], 0.0)        # (M,) c_k(h)
            live = np.flatnonzero((n >= k - 1) & (total > 0))            # rows with a level-k estimate
            for s in range(0, live.size, step):
                rows = live[s:s + step]                                  # (r,)
                c, hr = total[rows], h[rows]
                out[rows] *= (self._ctx_taken[k][hr] / c)[:, None]       # taken mass * P_{k-1}(w|h')
                first, count = indptr[hr], indptr[hr + 1] - indptr[hr]   # (r,) where h's children are
                row = np.repeat(np.arange(rows.size), count)             # one entry per (row, child)
                j = np.repeat(first - np.cumsum(count) + count, count) + np.arange(count.sum())
                out[rows[row], last[j]] += gain[j] / c[row]              # + (c_k(hw) - D) / c_k(h)
        return np.log(out, out=out)                                      # (M,V) log P(w | context)

    def _children(self, k: int):
        """Level k's k-grams grouped by their context: (indptr, last, gain), for logprob_table.

        The k-grams whose context has rank h are entries indptr[h]:indptr[h+1] of
        last (their final character w) and gain (c_k(hw) - D, the discounted count).
        """
        n_ctx = 1 if k == 1 else len(self._tables[k - 1])
        ctx = self._ctx_of[k]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(ctx, minlength=n_ctx))])
        last = self._tables[1]                                            # a unigram's key is its character
        for j in range(2, k + 1):
            last = last[self._tables[j] // self.vocab_size]               # the w of its (j-1)-gram suffix
        by_ctx = np.argsort(ctx, kind="stable")
        gain = self._counts[k] - self._disc[k]
        return indptr, last[by_ctx].astype(np.min_scalar_type(self.vocab_size - 1)), gain[by_ctx]

    def probs(self, context_ids=()) -> np.ndarray:
        """(V,) P(w | context) for every character w; the context may be empty.

        Only the last N-1 characters of the context matter.
        """
        self._check_fitted("probs")
        V, N = self.vocab_size, self.order
        ctx = np.asarray(context_ids, dtype=np.int64).ravel()
        ctx = ctx[max(0, ctx.size - (N - 1)):] if N > 1 else ctx[:0]
        if ctx.size and (ctx.min() < 0 or ctx.max() >= V):
            raise ValueError(f"NGram.probs: context ids must be in 0..{V - 1}")
        win = np.zeros((V, N), dtype=np.int64)
        win[:, N - 1 - ctx.size: N - 1] = ctx                            # the same context in every row
        win[:, -1] = np.arange(V)                                        # row w asks for P(w | context)
        lens = np.full(V, ctx.size + 1)
        return self._probs_of_windows(win, lens)

    def evaluate(self, ids) -> dict:
        """Mean cross-entropy per character of predicting ids[1:], like rnn.evaluate."""
        lp = self.logprobs(ids)
        if lp.size < 1:
            raise ValueError("NGram.evaluate: need at least 2 characters")
        nats = float(-lp.mean())
        return {"nats": nats, "bits": nats / math.log(2), "chars": int(lp.size)}

    def context_counts(self, ids) -> np.ndarray:
        """(len(ids)-1,) how often the characters before each target occurred in the training text.

        The context is the N-1 characters before ids[t+1] (fewer at the start);
        the empty context of an order-1 model counts every training character.
        """
        self._check_fitted("context_counts")
        N = self.order
        win, lens = self._windows(ids)
        out = np.full(len(lens), float(self._occ[1].sum()))
        if N > 1:
            ctx_len = lens - 1                                           # (M,) characters of context
            r = _suffix_ranks(win[:, :-1], ctx_len, self.vocab_size, self._tables[:N])
            for j in range(1, N):
                here = ctx_len == j
                rj = r[j]
                out[here] = np.where(rj[here] >= 0, self._occ[j][np.maximum(rj[here], 0)], 0)
        return out

    # --- sampling -------------------------------------------------------------

    def sample(self, context_ids, n: int, temperature: float = 1.0,
               rng: np.random.Generator | None = None, top_k: int | None = None) -> list:
        """n ids drawn one at a time from P(w | the last N-1 ids), through rnn's sample_probs.

        log p is passed as the logits: softmax(log p / T) is proportional to p^(1/T).
        """
        self._check_fitted("sample")
        check_temperature(temperature)
        rng = rng if rng is not None else np.random.default_rng()
        hist = [int(i) for i in np.asarray(context_ids, dtype=np.int64).ravel()]
        out = []
        for _ in range(int(n)):
            p = self.probs(hist[len(hist) - (self.order - 1):] if self.order > 1 else [])
            with np.errstate(divide="ignore"):
                q = sample_probs(np.log(p), temperature, top_k)           # (V,) p^(1/T), renormalised
            ix = int(min(np.searchsorted(np.cumsum(q), rng.random(), side="right"), q.size - 1))
            out.append(ix)
            hist.append(ix)
        return out

    def sample_text(self, chars, prime: str, n: int, temperature: float = 1.0,
                    rng: np.random.Generator | None = None, top_k: int | None = None) -> str:
        """Continue `prime` (may be empty) with n sampled characters; returns only the new ones."""
        ids = encode(prime, chars) if prime else np.zeros(0, np.int64)
        return decode(self.sample(ids, n, temperature, rng, top_k), chars)



def ngram_teacher(ids, vocab_size: int, order: int = 7, dtype=np.float32, block: int = 1 << 17,
                  folds: int = 2) -> np.ndarray:
    """(len(ids), V) a cross-fitted NGram's next-character distributions, for distillation.

    The ids are cut into `folds` equal, contiguous parts. Row t is
    P(w | the order-1 characters before ids[t]) from an NGram(order) fitted on
    the parts that do NOT hold position t: with folds=2, the first half's rows
    come from a model of the second half, and the other way round. A model
    fitted on all of ids would have seen every target it is asked about, and be
    far surer of it than of new text (on tiny Shakespeare a 7-gram scores its
    own training text at 0.99 nats/char, the two-fold table at 1.61): it would
    teach the student to trust its memory. More folds fit each model on more of
    the text, at the cost of one fit per fold: on tiny Shakespeare's training
    split a 7-gram table scores 1.61 nats/char with two folds and 1.43 with ten
    (neighbouring text shares names and phrases), where a 7-gram of the whole
    split scores the validation text at 1.52. (The other parts are joined for
    fitting: the few n-grams that straddle a join are counted once each.)
    Row 0, with no character before it, is the model's empty-context guess.
    Computed `block` rows at a time (dtype, float32 by default: 260 MB for
    the million training characters of tiny Shakespeare and V = 65).
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    n, V, folds = ids.size, int(vocab_size), int(folds)
    if folds < 2:
        raise ValueError(f"ngram_teacher: folds must be >= 2 (each part is scored by a model of the others), "
                         f"got {folds}")
    if n < 2 * folds:
        raise ValueError(f"ngram_teacher: need at least {2 * folds} characters to cross-fit on {folds} "
                         f"parts, got {n}")
    edges = [n * k // folds for k in range(folds + 1)]                  # part k holds rows edges[k]..edges[k+1]-1
    out = np.empty((n, V), dtype=dtype)
    for lo, hi in zip(edges[:-1], edges[1:]):                            # rows lo..hi-1, from the other parts
        m = NGram(order).fit(np.concatenate([ids[:lo], ids[hi:]]), V)
        if lo == 0:
            out[0] = m.probs(())                                         # no context at the very start
            lo = 1
        for a in range(lo, hi, block):
            b = min(a + block, hi)
            s = max(0, a - order)                                        # enough characters before row a
            out[a:b] = np.exp(m.logprob_table(ids[s:b])[a - s - 1:])    # table row r predicts ids[s+1+r]
    return out


def dynamic_ngram(train_ids, ids, vocab_size: int, order: int = 7, block: int = 1000, weight: int = 1,
                  table: bool = False) -> dict:
    """The count model's dynamic evaluation: an NGram that adds what it has read to its counts.

    The targets ids[1:] are scored `block` at a time; the targets from ids[s+1] on are
    predicted by NGram(order) fitted on train_ids followed by `weight` copies of
    ids[:s+1], the text read so far (the validation text follows the training text, so
    with weight 1 this is the corpus up to there). block=1 is the exact definition, one
    refit per character; a larger block refits less often and sees a little less;
    weight=0 is the static model. Returns {"nats", "bits", "chars", "logprobs" (N,), and
    with table=True "table" (N,V), like NGram.logprob_table}.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    train_ids = np.asarray(train_ids, dtype=np.int64).ravel()
    if ids.size < 2 or isinstance(block, bool) or int(block) != block or block < 1 or \
            isinstance(weight, bool) or int(weight) != weight or weight < 0:
        raise ValueError(f"dynamic_ngram: need >= 2 ids, an integer block >= 1 and weight >= 0; got "
                         f"{ids.size} ids, block {block!r}, weight {weight!r}")
    n, block = ids.size - 1, int(block)
    lp = np.empty(n)
    tab = np.empty((n, int(vocab_size))) if table else None
    for s in range(0, n, block):
        e = min(s + block, n)                                            # targets ids[s+1 .. e]
        model = NGram(order).fit(np.concatenate([train_ids] + [ids[:s + 1]] * int(weight)), vocab_size)
        lo = max(0, s - order + 1)                                       # enough characters before ids[s+1]
        if table:
            tab[s:e] = model.logprob_table(ids[lo:e + 1])[s - lo:]
            lp[s:e] = tab[np.arange(s, e), ids[s + 1:e + 1]]
        else:
            lp[s:e] = model.logprobs(ids[lo:e + 1])[s - lo:]
    nats = float(-lp.mean())
    out = {"nats": nats, "bits": nats / math.log(2), "chars": int(n), "logprobs": lp}
    return {**out, "table": tab} if table else out
