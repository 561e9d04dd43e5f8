"""A character-level vanilla RNN in pure NumPy.

This is Karpathy's min-char-rnn.py, grown into a small library that the
training script, the plots, the notebook and the exercises all import. It holds
the model and its training step, nothing else (files, checkpoints, the n-gram
baseline and the command line live in their own modules), and reads top to
bottom in the order a learner meets the ideas.

DAY 1 (the first ~600 lines) is the textbook model, the part to read:

    vocabulary -> parameters -> forward -> loss and backward (BPTT)
    -> clipping -> Adagrad -> sampling -> gradient check

AFTER DAY 1 (skip it on a first read) come the options that make training
faster or better, each off at the textbook settings: dropout, distillation and
the n-gram prior (their own loss function, still covered by the gradient
check), Adam, evaluation, batching the text into parallel streams, and the
Trainer that runs the loop.

The model (column vectors, as in the blog post and min-char-rnn):

    x_t  one-hot column of the input character            (V,1)
    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)                 (H,1)
    y_t = Why h_t + by                                     (V,1)  logits
    p_t = softmax(y_t)                                     (V,1)  next-char probabilities
    L   = sum_t -log p_t[target_t]                         scalar, nats

    Wxh (H,V)  Whh (H,H)  Why (V,H)  bh (H,1)  by (V,1)

B parallel streams put B columns side by side: x_t, h_t, y_t, p_t become
(V,B), (H,B), (V,B), (V,B); the loss is summed over the T steps and averaged
over the B streams, so B=1 gives exactly the textbook number.

Backward (backprop through time), the forward pass read in reverse:

    dy_t     = p_t - onehot(target_t)                      (V,B)  softmax + cross-entropy
    dWhy    += dy_t h_t^T,   dby += dy_t
    dh_t     = Why^T dy_t + dhnext                         (H,B)  from the output and from step t+1
    dhraw_t  = (1 - h_t^2) * dh_t                          (H,B)  through tanh
    dWxh    += dhraw_t x_t^T, dWhh += dhraw_t h_{t-1}^T, dbh += dhraw_t
    dhnext   = Whh^T dhraw_t                               (H,B)  into the previous step

Importing this module has no side effects: it reads no file, seeds no global
random generator and prints nothing. Randomness always comes in as an explicit
``np.random.Generator``. It imports NumPy and nothing else of this project.
"""

from __future__ import annotations

import math

import numpy as np

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


# -----------------------------------------------------------------------------
# Vocabulary: characters <-> ids
# -----------------------------------------------------------------------------

def build_vocab(text: str) -> list[str]:
    """Sorted unique characters of `text`: the same text always gives the same ids.

    (min-char-rnn uses list(set(data)), whose order changes between runs.)
    """
    if not text:
        raise ValueError("build_vocab: the text is empty")
    return sorted(set(text))


def encode(text: str, chars) -> np.ndarray:
    """Text -> int64 array of character ids (positions in the sorted vocabulary `chars`).

    Speed: instead of a Python dict lookup per character, we look all code points
    up at once with a binary search in the sorted vocabulary (np.searchsorted).
    """
    vocab_cp = np.array([ord(c) for c in chars], dtype=np.int64)          # (V,) sorted code points
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # (N,)
    ids = np.searchsorted(vocab_cp, cp)                                      # (N,) candidate ids
    ids_clipped = np.minimum(ids, len(vocab_cp) - 1)
    bad = vocab_cp[ids_clipped] != cp
    if bad.any():
        unknown = sorted({chr(c) for c in cp[bad]})
        shown = ", ".join(repr(c) for c in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(f"encode: {len(unknown)} character(s) not in the vocabulary: {shown} "
                         f"(first at position {int(np.argmax(bad))})")
    return ids


def decode(ids, chars) -> str:
    """Character ids -> text."""
    return "".join(chars[int(i)] for i in np.ravel(ids))


# -----------------------------------------------------------------------------
# Parameters
# -----------------------------------------------------------------------------

def init_params(vocab_size: int, hidden_size: int, rng: np.random.Generator,
                dtype=np.float64, init_scale: float = 0.01) -> dict:
    """The textbook initialisation: weights N(0,1)*init_scale, biases zero.

    Drawn in min-char-rnn's order (Wxh, Whh, Why), so the same generator gives
    the same weights.
    """
    if vocab_size < 1 or hidden_size < 1:
        raise ValueError(f"init_params: vocab_size and hidden_size must be >= 1, "
                         f"got {vocab_size} and {hidden_size}")
    V, H = vocab_size, hidden_size
    p = {
        "Wxh": rng.standard_normal((H, V)) * init_scale,   # (H,V) input -> hidden
        "Whh": rng.standard_normal((H, H)) * init_scale,   # (H,H) hidden -> hidden
        "Why": rng.standard_normal((V, H)) * init_scale,   # (V,H) hidden -> output
        "bh": np.zeros((H, 1)),                             # (H,1) hidden bias
        "by": np.zeros((V, 1)),                             # (V,1) output bias
    }
    return {k: v.astype(dtype) for k, v in p.items()}


def zeros_like_params(params: dict) -> dict:
    """A dict of zero arrays keyed and shaped like `params` (gradients, optimiser memory)."""
    return {k: np.zeros_like(v) for k, v in params.items()}


def _as_batch(inputs, targets, hprev, params, caller="loss_and_grads"):
    """Accept (T,) / (H,1) single-stream or (T,B) / (H,B) batched arguments.

    Errors name `caller`, the public function the learner called.
    """
    inputs = np.asarray(inputs)
    if inputs.ndim == 1:
        inputs = inputs[:, None]                                      # (T,) -> (T,1)
    if targets is not None:
        targets = np.asarray(targets)
        if targets.ndim == 1:
            targets = targets[:, None]
        if targets.shape != inputs.shape:
            raise ValueError(f"{caller}: targets shape {targets.shape} != inputs shape "
                             f"{inputs.shape}; targets are the inputs shifted by one step")
    H, V = params["Wxh"].shape
    T, B = inputs.shape
    if hprev is None:
        hprev = np.zeros((H, B), dtype=params["Whh"].dtype)
    hprev = np.asarray(hprev)
    if hprev.shape != (H, B):
        raise ValueError(f"{caller}: hprev has shape {hprev.shape}, expected (H,B)=({H},{B}) "
                         f"for hidden_size {H} and {B} stream(s)")
    return inputs, targets, hprev


# -----------------------------------------------------------------------------
# Forward pass
# -----------------------------------------------------------------------------

def log_softmax(y: np.ndarray, axis: int = 0) -> np.ndarray:
    """log softmax(y) along `axis`, stable for any finite logits.

    softmax(y) = softmax(y - max y): subtracting the max makes the largest
    exponent exp(0) = 1, so exp never overflows (logits of 1e4 are fine).
    """
    z = y - y.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def softmax(y: np.ndarray, axis: int = 0) -> np.ndarray:
    """softmax(y) along `axis`, computed stably (see log_softmax)."""
    z = np.exp(y - y.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def forward(params: dict, inputs, hprev=None):
    """Run the RNN over T steps of B streams.

    inputs: (T,B) ids (or (T,) for one stream); hprev: (H,B) (zeros if None).
    Returns (hs, logp):
        hs   (T+1, H, B)  hs[0] = hprev, hs[t+1] = h_t, the state after reading inputs[t]
        logp (T, V, B)    logp[t] = log p_t, log-probabilities of the next character
    """
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    inputs, _, hprev = _as_batch(inputs, None, hprev, params, "forward")
    T, B = inputs.shape
    H, V = Wxh.shape
    hs = _hidden_states(params, inputs, hprev)       # (T+1,H,B)
    logp = _output_logp(params, hs)                  # (V,T*B)
    return hs, logp.reshape(V, T, B).transpose(1, 0, 2)


def _input_terms(params, inputs):
    """xs (T,H,B): xs[t] = Wxh x_t, all T*B input projections in one gather.

    Wxh @ onehot(x) is column x of Wxh, so the input projection of all T*B
    characters is Wxh[:, inputs] instead of T one-hot products.
    """
    Wxh = params["Wxh"]
    T, B = inputs.shape
    xs = np.empty((T, Wxh.shape[0], B), dtype=params["Whh"].dtype)
    # Wxh[:, inputs] (np.take, the same gather but faster) is (H,T,B); stored step-major in xs
    np.copyto(xs, np.take(Wxh, inputs, axis=1).transpose(1, 0, 2))       # (T,H,B) xs[t] = Wxh x_t
    return xs


def _recurrence(params, xs, hprev):
    """hs (T+1,H,B): hs[0] = hprev, hs[t+1] = tanh(xs[t] + bh + Whh hs[t]).

    hs[t] is a contiguous (H,B) block and each step is three NumPy calls that
    write in place: at the textbook's small sizes the cost of a NumPy call, not
    the arithmetic, limits speed. (xs is changed: bh is added to it.)
    """
    Whh = params["Whh"]
    T, H, B = xs.shape
    xs += params["bh"]                               # (T,H,B) xs[t] = Wxh x_t + bh
    hs = np.empty((T + 1, H, B), dtype=Whh.dtype)
    hs[0] = hprev
    for t in range(T):
        h = hs[t + 1]                                # (H,B) h_t, filled in place
        np.dot(Whh, hs[t], out=h)                    # (H,B) Whh h_{t-1}
        h += xs[t]                                   # (H,B) + Wxh x_t + bh
        np.tanh(h, out=h)                            # (H,B) h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)
    return hs


def _hidden_states(params, inputs, hprev):
    """hs (T+1,H,B): hs[0] = hprev, hs[t+1] = h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)."""
    return _recurrence(params, _input_terms(params, inputs), hprev)


def _columns(a):
    """(T,H,B) step-major stack -> (H,T*B): all columns side by side, column t*B+b = a[t][:, b].

    One copy, so that a sum over steps such as sum_t dy_t h_t^T becomes a single
    large matrix product instead of T small ones.
    """
    T, H, B = a.shape
    return a.transpose(1, 0, 2).reshape(H, T * B)


def _output_logp(params, hs):
    """log p_t for all T steps at once: (V, T*B), column t*B + b is step t of stream b."""
    y = params["Why"] @ _columns(hs[1:]) + params["by"]   # (V,T*B) y_t = Why h_t + by, one product for all steps
    return log_softmax(y, axis=0)                    # (V,T*B) log p_t = log softmax(y_t)


# -----------------------------------------------------------------------------
# Loss and backward pass (backprop through time)
# -----------------------------------------------------------------------------

def _backprop_through_time(params, hs, dhs):
    """BPTT, in place: dhs[t] holds Why^T dy_t on entry and dhraw_t on exit.

    hs (T+1,H,B) from the forward pass; dhs (T,H,B). Walking t = T-1 .. 0,
    adding dhnext = Whh^T dhraw_{t+1} turns dhs[t] into dh_t, and multiplying by
    tanh' = 1 - h_t^2 turns it into dhraw_t. Returns the (H,T*B) columns of dhraw.
    """
    T = dhs.shape[0]
    dtanh = hs[1:] * hs[1:]
    np.subtract(1.0, dtanh, out=dtanh)               # (T,H,B) tanh'(a_t) = 1 - h_t^2, all steps at once
    WhhT = params["Whh"].T                           # (H,H) a transposed view, made once
    for t in reversed(range(T)):
        dh = dhs[t]                                  # (H,B) Why^T dy_t
        if t < T - 1:
            dh += np.dot(WhhT, dhs[t + 1])           # (H,B) dh_t = Why^T dy_t + dhnext, dhnext = Whh^T dhraw_{t+1}
        dh *= dtanh[t]                               # (H,B) dhraw_t = (1 - h_t^2) * dh_t: backprop through tanh
    return _columns(dhs)                             # (H,T*B) all dhraw_t side by side


def _onehot_columns(inputs, V, dtype):
    """(V,T*B) one-hot columns x_t of all inputs, column t*B + b = step t of stream b."""
    T, B = inputs.shape
    X = np.zeros((V, T * B), dtype=dtype)
    X[inputs.reshape(T * B), np.arange(T * B)] = 1.0
    return X


def loss_and_grads(params: dict, inputs, targets, hprev=None):
    """Loss, gradients and the last hidden state for one window of T steps.

    min-char-rnn's lossFun, for B streams at once:
    inputs, targets: (T,B) int ids (or (T,) for one stream); hprev: (H,B) or (H,1).
    loss: cross-entropy summed over the T steps, averaged over the B streams (nats).
    grads: dict keyed like params ("Wxh", ...), each the derivative of that loss.
    h_last: (H,B) hidden state after the last step, to carry into the next window.
    (Dropout, distillation and the n-gram prior train through
    loss_and_grads_options, after Day 1.)
    """
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    inputs, targets, hprev = _as_batch(inputs, targets, hprev, params)
    T, B = inputs.shape
    H, V = Wxh.shape
    # --- forward -------------------------------------------------------------
    hs = _hidden_states(params, inputs, hprev)       # (T+1,H,B) hs[t+1] = h_t
    h_cols = _columns(hs)                            # (H,(T+1)*B) h_{-1}..h_{T-1} side by side (hs[0] = hprev first)
    h_out = h_cols[:, B:]                            # (H,T*B) h_t, what the output layer reads
    y = Why @ h_out + by                             # (V,T*B) y_t = Why h_t + by, one product for all steps
    y -= y.max(axis=0)                               # softmax(y) = softmax(y - max y): exp can no longer overflow
    e = np.exp(y)                                    # (V,T*B)
    s = e.sum(axis=0)                                # (T*B,)  sum_j exp(y_t[j])
    cols = np.arange(T * B)
    tgt = targets.reshape(T * B)                     # column t*B + b is step t of stream b
    # -log p_t[target] = log sum_j exp(y_t[j]) - y_t[target]; sum over steps, mean over streams
    loss = (np.log(s).sum() - y[tgt, cols].sum()) / B

    # --- backward: the forward pass read in reverse -------------------------
    dy = e / s                                       # (V,T*B) p_t = softmax(y_t)
    dy[tgt, cols] -= 1.0                             # (V,T*B) dy_t = p_t - onehot(target_t): backprop into y
    dy /= B                                          # the loss is a mean over the B streams
    dWhy = dy @ h_out.T                              # (V,H) sum_t dy_t h_t^T
    dby = dy.sum(axis=1, keepdims=True)              # (V,1) sum_t dy_t
    # backprop into h from the outputs: dhs[t] = Why^T dy_t for all t in one batched
    # call (np.matmul loops over the leading T axis), written step-major like hs
    dhs = np.empty((T, H, B), dtype=Whh.dtype)
    np.matmul(Why.T, dy.reshape(V, T, B).transpose(1, 0, 2), out=dhs)   # (T,H,B) Why^T dy_t
    dhraw = _backprop_through_time(params, hs, dhs)  # (H,T*B) dhraw_t, through time and tanh
    dWhh = dhraw @ h_cols[:, :-B].T                  # (H,H) sum_t dhraw_t h_{t-1}^T, one product
    dbh = dhraw.sum(axis=1, keepdims=True)           # (H,1) sum_t dhraw_t
    # dWxh = sum_t dhraw_t x_t^T with one-hot x_t: one product with the (V,T*B) one-hot
    # matrix of all inputs (faster than a scatter-add with np.add.at)
    dWxh = dhraw @ _onehot_columns(inputs, V, Wxh.dtype).T   # (H,V)
    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return float(loss), grads, hs[-1].copy()


# -----------------------------------------------------------------------------
# Gradient clipping and Adagrad
# -----------------------------------------------------------------------------

def clip_grads(grads: dict, limit: float | None = 5.0, fractions: bool = False):
    """Clip every gradient entry to [-limit, limit] in place (min-char-rnn's rule).

    Elementwise clipping caps each entry on its own, which can turn the
    gradient's direction; norm clipping (g *= limit / ||g|| when ||g|| > limit)
    keeps the direction and only shortens it; the textbook uses the elementwise
    form. With plain gradient descent an exploding gradient would throw the
    weights far away; Adagrad and Adam divide by the gradient's running size,
    so there clipping mainly stops one huge gradient from inflating those
    running sums (which would shrink every later step).
    limit=0 (or None) turns clipping off, as --clip 0 does on the command line.
    With fractions=True, returns the fraction of entries of each gradient that
    were clipped (for the gradient-health plot).
    """
    frac = {}
    for k, g in grads.items():
        if not limit:
            frac[k] = 0.0
            continue
        if fractions:
            frac[k] = float(np.count_nonzero(np.abs(g) > limit)) / g.size
        np.clip(g, -limit, limit, out=g)             # g = min(max(g, -limit), limit)
    return frac if fractions else None


def adagrad_update(params: dict, grads: dict, memory: dict, learning_rate: float,
                   eps: float = 1e-8) -> None:
    """Adagrad, in place, exactly as min-char-rnn:

        memory += g * g
        param  -= learning_rate * g / sqrt(memory + eps)
    """
    for k in params:
        g = grads[k]
        memory[k] += g * g                                          # running sum of squared gradients
        params[k] -= learning_rate * g / np.sqrt(memory[k] + eps)   # per-entry step size


# -----------------------------------------------------------------------------
# Sampling
# -----------------------------------------------------------------------------

def check_temperature(temperature) -> float:
    """The temperature as a float, or a ValueError saying why it cannot be used."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}") from None
    if not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r} "
                         "(small values such as 0.01 approach greedy argmax sampling)")
    return t


def sample_probs(y: np.ndarray, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """The distribution a sample is drawn from: softmax(y / temperature) over the top_k logits.

    y: (V,) or (V,1) logits. As temperature -> 0 this tends to the argmax (one-hot);
    since (y - max y) / T is <= 0 it never overflows, even for T = 1e-300.
    """
    t = check_temperature(temperature)
    y = np.asarray(y, dtype=np.float64).ravel()                       # (V,)
    if top_k is not None:
        if not 1 <= int(top_k) <= y.size:
            raise ValueError(f"top_k must be between 1 and {y.size}, got {top_k}")
        kth = np.sort(y)[-int(top_k)]
        y = np.where(y >= kth, y, -np.inf)                             # keep the k largest logits
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        z = (y - y.max()) / t                                          # <= 0, max entry is exactly 0
        z = np.where(np.isnan(z), -np.inf, z)
        p = np.exp(z)
    return p / p.sum()


def sample(params: dict, h, seed_ix: int, n: int, temperature: float = 1.0,
           rng: np.random.Generator | None = None, top_k: int | None = None):
    """Sample n character ids from the model, min-char-rnn's sample() with a temperature.

    h: (H,1) starting hidden state; seed_ix: the first input character id.
    Returns (ids, h): a list of n ids and the final (H,1) hidden state.
    """
    check_temperature(temperature)
    rng = np.random.default_rng() if rng is None else rng
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    h = np.array(h, dtype=Whh.dtype).reshape(-1, 1)                   # (H,1)
    ix, ids = int(seed_ix), []
    for _ in range(n):
        h = np.tanh(Wxh[:, [ix]] + Whh @ h + bh)                      # (H,1) Wxh x + Whh h + bh, x one-hot
        y = Why @ h + by                                              # (V,1) logits
        p = sample_probs(y, temperature, top_k)                       # (V,)  softmax(y / T)
        # draw from p: the first index whose cumulative probability exceeds u ~ U[0,1)
        ix = int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), p.size - 1))
        ids.append(ix)
    return ids, h


def sample_text(params: dict, chars, prime: str, n: int, temperature: float = 1.0,
                rng: np.random.Generator | None = None, top_k: int | None = None, chunk: int = 1024) -> str:
    """Feed `prime` through the model, then sample n more characters; returns only the new ones.
    Priming keeps only the last h, `chunk` characters at a time: linear time, flat memory."""
    if not prime:
        raise ValueError("sample_text: prime must be at least one character")
    h, last = np.zeros((params["Whh"].shape[0], 1), dtype=params["Whh"].dtype), len(prime) - 1   # (H,1)
    for i in range(0, len(prime), chunk):
        try:
            ids = encode(prime[i : i + chunk], chars)                 # (<=chunk,)
        except ValueError as e:
            raise ValueError(f"sample_text: prime[{i}:]: {e}") from None
        h = _hidden_states(params, ids[: last - i, None], h)[-1]      # (H,1) h after prime[:i+chunk], not its last char
    out, _ = sample(params, h, ids[-1], n, temperature, rng, top_k)   # the last character seeds the sample
    return decode(out, chars)


# -----------------------------------------------------------------------------
# Gradient check
# -----------------------------------------------------------------------------

def rel_error(a, b) -> float:
    """Relative error between two arrays: ||a - b|| / (||a|| + ||b||).

    Computed over the whole array, so entries whose gradient is ~0 do not blow
    it up. Rough guide in float64: < 1e-7 correct, 1e-4..1e-2 suspicious,
    > 1e-2 a bug.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0


def numerical_grad(f, x: np.ndarray, delta: float = 1e-5, indices=None) -> np.ndarray:
    """Central differences (f(x+d) - f(x-d)) / 2d at each (or the given) entry of x, in place."""
    grad = np.zeros_like(x)
    it = np.ndindex(*x.shape) if indices is None else indices
    for ix in it:
        old = x[ix]
        x[ix] = old + delta
        fp = f()
        x[ix] = old - delta
        fm = f()
        x[ix] = old                                                    # restore
        grad[ix] = (fp - fm) / (2 * delta)
    return grad


def grad_check(params: dict, inputs, targets, hprev=None, names=PARAM_NAMES,
               num_checks: int | None = None, delta: float = 1e-5,
               rng: np.random.Generator | None = None, grads: dict | None = None,
               loss_fn=None) -> dict:
    """Compare loss_and_grads' gradients with central differences, in float64.

    Returns {name: rel_error} for each name in `names`. num_checks=None checks
    every entry; otherwise that many random entries per parameter (then the
    error is computed over those entries). Pass `grads` to check gradients
    from another function (an exercise) against the numbers. loss_fn(params,
    inputs, targets, hprev) -> (loss, grads, h) is the function checked
    (default loss_and_grads); to check a training option, pass e.g.
    functools.partial(loss_and_grads_options, masks=...) with one fixed draw.
    """
    for k in names:
        if params[k].dtype != np.float64:
            raise TypeError(f"grad_check: params[{k!r}] is {params[k].dtype}; central differences "
                            "need float64 (float32 rounding swamps them): cast with "
                            "{k: v.astype(np.float64) for k, v in params.items()}")
    loss_fn = loss_and_grads if loss_fn is None else loss_fn
    if grads is None:
        _, grads, _ = loss_fn(params, inputs, targets, hprev)
    f = lambda: loss_fn(params, inputs, targets, hprev)[0]
    errors = {}
    for k in names:
        x = params[k]
        if num_checks is None:
            num = numerical_grad(f, x, delta)
            errors[k] = rel_error(grads[k], num)
        else:
            rng = rng or np.random.default_rng(0)
            idx = [tuple(int(rng.integers(s)) for s in x.shape) for _ in range(num_checks)]
            num = numerical_grad(f, x, delta, idx)
            sel = tuple(np.array(i) for i in zip(*idx))
            errors[k] = rel_error(grads[k][sel], num[sel])
    return errors


# =============================================================================
# DAY 1 ENDS HERE. Everything below makes training faster or better; none of
# it changes the model above. Skip it on a first read.
# =============================================================================


# -----------------------------------------------------------------------------
# Training options: dropout, distillation, the n-gram prior
# -----------------------------------------------------------------------------

def dropout_masks(rng: np.random.Generator, p: float, T: int, B: int, H: int, dtype=np.float64):
    """Dropout masks for one training window, or None when p = 0 (the textbook).

    Returns {"x": (T,H,B), "h": (H,T*B)}, every entry 0 with probability p and
    1/(1-p) otherwise ("inverted" dropout: the expected value of m * a is a, so
    evaluation and sampling use the plain model, unchanged). Following Zaremba,
    Sutskever & Vinyals (2014), only the connections that do not carry memory
    are dropped:

        h_t = tanh(m^x_t * Wxh x_t + Whh h_{t-1} + bh)     m^x_t: (H,) per step and stream
        y_t = Why (m^h_t * h_t) + by                       m^h_t: (H,) per step and stream

    (Wxh x_t is the character's column of Wxh, its embedding: m^x_t drops some of
    its units, never the whole character.)

    The recurrence Whh h_{t-1} is never dropped, so what the state remembers is
    not cut at random; dropping the output's view of h_t keeps Why from leaning
    on a few units, the main way a large RNN memorises a small text.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout_masks: p must be in [0, 1), got {p}")
    if p == 0.0:
        return None
    keep = 1.0 - p
    x = (rng.random((T, H, B)) < keep).astype(dtype) / dtype(keep)      # (T,H,B) 0 or 1/keep
    h = (rng.random((H, T * B)) < keep).astype(dtype) / dtype(keep)     # (H,T*B) 0 or 1/keep
    return {"x": x, "h": h}


def _log_probs(Q, dtype):
    """log Q in dtype, with zeros floored at the smallest normal number (log 0 would be -inf)."""
    Q = np.asarray(Q, dtype=dtype)
    return np.log(np.maximum(Q, np.finfo(dtype).tiny))


def loss_and_grads_options(params: dict, inputs, targets, hprev=None, masks=None, soft=None, prior=None):
    """loss_and_grads with the training options; with all three None it gives the same numbers.

    masks: dropout masks from dropout_masks (training only; None is the plain model).
    soft: (alpha, Q) for distillation: Q (T,B,V) a teacher's next-character
    distribution at each target, and the target of step t becomes the blend
    (1 - alpha) onehot(target_t) + alpha Q_t. The loss is the cross-entropy
    against that blend, (1 - alpha) (-log p_t[target]) + alpha (-sum_j Q_t[j] log p_t[j]),
    and its gradient into y_t is p_t minus the blend.
    prior: (beta, Q) to train the RNN as a count model's partner: Q (T,B,V) as
    for soft, and the prediction of step t becomes the product
    p_t = softmax(y_t + beta log Q_t), proportional to exp(y_t) Q_t^beta. The
    count factor is fixed, so the gradient into y_t, still p_t - onehot(target_t),
    asks the RNN only for what the product gets wrong.
    """
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    inputs, targets, hprev = _as_batch(inputs, targets, hprev, params, "loss_and_grads_options")
    T, B = inputs.shape
    H, V = Wxh.shape
    x_mask, h_mask = (None, None) if masks is None else (masks["x"], masks["h"])
    # --- forward: loss_and_grads' with a mask on each side of h_t ------------
    xs = _input_terms(params, inputs)                # (T,H,B) Wxh x_t
    if x_mask is not None:
        xs *= x_mask                                 # (T,H,B) m_t Wxh x_t: dropout on the input
    hs = _recurrence(params, xs, hprev)              # (T+1,H,B) hs[t+1] = h_t
    h_cols = _columns(hs)                            # (H,(T+1)*B)
    h_out = h_cols[:, B:] if h_mask is None else h_cols[:, B:] * h_mask   # (H,T*B) m_t * h_t
    y = Why @ h_out + by                             # (V,T*B) y_t
    if prior is not None:
        beta, Q = prior
        y += beta * _log_probs(Q, y.dtype).reshape(T * B, V).T   # (V,T*B) y_t + beta log Q_t: the product's logits
    y -= y.max(axis=0)
    e = np.exp(y)
    s = e.sum(axis=0)
    cols, tgt = np.arange(T * B), targets.reshape(T * B)
    loss = (np.log(s).sum() - y[tgt, cols].sum()) / B
    dy = e / s                                       # (V,T*B) p_t
    if soft is None:
        dy[tgt, cols] -= 1.0                         # (V,T*B) dy_t = p_t - onehot(target_t)
    else:
        alpha, Q = soft
        Q = np.asarray(Q, dtype=y.dtype).reshape(T * B, V).T    # (V,T*B) the teacher's p at each target
        # -sum_j Q_t[j] log p_t[j] = log sum_j exp(y_t[j]) - sum_j Q_t[j] y_t[j]   (the Q_t sum to 1)
        loss = (1.0 - alpha) * loss + alpha * (np.log(s).sum() - (Q * y).sum()) / B
        dy[tgt, cols] -= 1.0 - alpha                 # (V,T*B) dy_t = p_t - (1 - alpha) onehot(target_t)
        dy -= alpha * Q                              #                    - alpha Q_t
    dy /= B
    # --- backward ------------------------------------------------------------
    dhs = np.empty((T, H, B), dtype=Whh.dtype)
    np.matmul(Why.T, dy.reshape(V, T, B).transpose(1, 0, 2), out=dhs)   # (T,H,B) Why^T dy_t
    if h_mask is not None:                           # back through the output dropout: times the same mask
        dhs *= h_mask.reshape(H, T, B).transpose(1, 0, 2)
    dhraw = _backprop_through_time(params, hs, dhs)  # (H,T*B)
    grads = {"Why": dy @ h_out.T, "by": dy.sum(axis=1, keepdims=True),
             "Whh": dhraw @ h_cols[:, :-B].T, "bh": dhraw.sum(axis=1, keepdims=True)}
    if x_mask is not None:
        dhraw = dhraw * _columns(x_mask)             # (H,T*B) back through the input dropout: m_t * dhraw_t
    grads["Wxh"] = dhraw @ _onehot_columns(inputs, V, Wxh.dtype).T      # (H,V)
    return float(loss), {k: grads[k] for k in PARAM_NAMES}, hs[-1].copy()


# -----------------------------------------------------------------------------
# Adam, and one optimiser step
# -----------------------------------------------------------------------------

def adam_update(params: dict, grads: dict, state: dict, learning_rate: float,
                beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
    """Adam, in place: what every preset but the textbook's trains with (the textbook uses Adagrad).

    state = {"step": int, "m": {...}, "v": {...}} with m, v keyed like params:
        m = beta1 m + (1-beta1) g,  v = beta2 v + (1-beta2) g^2
        param -= lr * mhat / (sqrt(vhat) + eps),  mhat = m/(1-beta1^t), vhat = v/(1-beta2^t)
    """
    state["step"] += 1
    t = state["step"]
    c1, c2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t                    # bias corrections
    # mhat / (sqrt(vhat) + eps) = (sqrt(c2)/c1) * m / (sqrt(v) + eps*sqrt(c2)): the same step
    # with the scalars folded together, so each array is read a few times instead of a dozen
    step_size = learning_rate * math.sqrt(c2) / c1
    for k in params:
        g = grads[k]
        m, v = state["m"][k], state["v"][k]
        m *= beta1
        m += (1.0 - beta1) * g                                      # m = beta1 m + (1-beta1) g
        v *= beta2
        v += (1.0 - beta2) * g * g                                  # v = beta2 v + (1-beta2) g^2
        d = np.sqrt(v)
        d += eps * math.sqrt(c2)
        np.divide(m, d, out=d)                                      # m / (sqrt(v) + eps sqrt(c2))
        d *= step_size
        params[k] -= d


def init_optimizer(name: str, params: dict) -> dict:
    """Optimiser state: Adagrad {"memory": {...}}, Adam {"step": 0, "m": {...}, "v": {...}}."""
    if name == "adagrad":
        return {"memory": zeros_like_params(params)}
    if name == "adam":
        return {"step": 0, "m": zeros_like_params(params), "v": zeros_like_params(params)}
    raise ValueError(f"init_optimizer: unknown optimizer {name!r} (use 'adagrad' or 'adam')")


def apply_update(params, opt_state, grads, learning_rate, clip=5.0, optimizer="adagrad",
                 fractions=False):
    """Clip the gradients (in place) and take one optimiser step on params (in place).

    Returns the clip fractions per parameter if fractions=True, else None.
    """
    frac = clip_grads(grads, clip, fractions)
    if optimizer == "adagrad":
        adagrad_update(params, grads, opt_state["memory"], learning_rate)
    elif optimizer == "adam":
        adam_update(params, grads, opt_state, learning_rate)
    else:
        raise ValueError(f"apply_update: unknown optimizer {optimizer!r} (use 'adagrad' or 'adam')")
    return frac


def train_step(params, opt_state, inputs, targets, hprev, learning_rate,
               clip=5.0, optimizer="adagrad"):
    """One textbook training step: loss and gradients, clip, update params in place.

    Returns (loss, grads, h_last), the same triple as loss_and_grads: the loss
    summed over the T steps (mean over streams), the clipped gradients, and the
    hidden state to carry into the next window.
    """
    loss, grads, h = loss_and_grads(params, inputs, targets, hprev)
    apply_update(params, opt_state, grads, learning_rate, clip, optimizer)
    return loss, grads, h


# -----------------------------------------------------------------------------
# Evaluation
# -----------------------------------------------------------------------------

def evaluate(params: dict, ids, num_chunks: int = 64, seq_length: int = 256, prior=None) -> dict:
    """Mean cross-entropy per character of predicting ids[1:] from ids[:-1].

    Returns {"nats": ..., "bits": ..., "chars": N}; bits = nats / ln 2.
    The hidden state is carried across the whole sequence, never reset.
    Speed: the sequence is cut into num_chunks contiguous chunks that run side by
    side as one batch, each from h = 0 at its start. With num_chunks=1 the
    state runs across the entire sequence; more chunks cost a few characters of
    context at each chunk start and run many times faster.
    prior: optional (beta, Q), Q (N,V) a count model's distribution for each
    target ids[t+1] (row t, as NGram.logprob_table's exp): score the product
    softmax(log p_t + beta log Q_t) instead, the prediction a Trainer(prior=beta)
    was trained to make.
    """
    ids = np.asarray(ids)
    x, tgt = ids[:-1], ids[1:]
    N = len(x)
    if N < 1:
        raise ValueError("evaluate: need at least 2 characters")
    if prior is not None and np.shape(prior[1]) != (N, params["Why"].shape[0]):
        raise ValueError(f"evaluate: prior's Q must be (N,V) = ({N}, {params['Why'].shape[0]}), one row per "
                         f"target, got {np.shape(prior[1])}")
    B = max(1, min(int(num_chunks), N))
    L = -(-N // B)                                                     # ceil(N / B) steps per chunk
    pad = B * L - N                                                    # padding at the end of the last chunk
    X = np.concatenate([x, np.zeros(pad, x.dtype)]).reshape(B, L).T   # (L,B) chunk b is column b
    Y = np.concatenate([tgt, np.zeros(pad, x.dtype)]).reshape(B, L).T
    mask = np.concatenate([np.ones(N), np.zeros(pad)]).reshape(B, L).T
    if prior is not None:                                              # (L,V,B) beta log Q, chunked like Y
        V = params["Why"].shape[0]
        logq = np.concatenate([_log_probs(prior[1], np.float64), np.zeros((pad, V))])
        logq = prior[0] * logq.reshape(B, L, V).transpose(1, 2, 0)
    H = params["Whh"].shape[0]
    h = np.zeros((H, B), dtype=params["Whh"].dtype)
    total = 0.0
    for s in range(0, L, seq_length):
        hs, logp = forward(params, X[s:s + seq_length], h)            # logp (t,V,B)
        t = logp.shape[0]
        if prior is not None:
            logp = log_softmax(logp + logq[s:s + t], axis=1)          # (t,V,B) the product, renormalised
        picked = np.take_along_axis(logp, Y[s:s + t, None], axis=1)[:, 0]  # (t,B) log p_t[target]
        total -= float((picked * mask[s:s + t]).sum())
        h = hs[-1]                                                     # carry the state on
    nats = total / N
    return {"nats": nats, "bits": nats / math.log(2), "chars": N}


def dynamic_evaluate(params: dict, ids, window: int = 32, learning_rate: float = 2e-4, decay: float = 0.002,
                     clip: float = 5.0, table: bool = False) -> dict:
    """Dynamic evaluation (Krause et al. 2018): the model keeps learning from the text it has scored.

    One stream from h = 0, state carried, `window` characters at a time: score them with the
    weights so far, then step on them: loss_and_grads' gradient g, clipped to [-clip, clip],
    divided by the root of the mean of g^2 over the windows so far (each weight moves about
    learning_rate), then w += decay * (w_trained - w). params is never changed (the steps go to
    a copy); learning_rate=0 gives target_logprobs(params, ids, window) exactly. No randomness.
    Returns {"nats", "bits", "chars", "logprobs" (N,) of each target, with table=True "table" (N,V)}.
    """
    ids, W = np.asarray(ids), int(window)
    x, tgt = ids[:-1], ids[1:]
    if x.size < 1 or W < 1 or not (learning_rate >= 0 and 0 <= decay <= 1 and clip > 0):
        raise ValueError(f"dynamic_evaluate: need >= 2 characters, window >= 1, learning_rate >= 0, decay in "
                         f"[0, 1], clip > 0; got {ids.size} chars, {window}, {learning_rate}, {decay}, {clip}")
    w, ms = {k: v.copy() for k, v in params.items()}, zeros_like_params(params)
    h = np.zeros((params["Whh"].shape[0], 1), dtype=params["Whh"].dtype)      # (H,1)
    lp, tab = np.empty(x.size), np.empty((x.size, params["Why"].shape[0]) if table else 0)
    for n, s in enumerate(range(0, x.size, W), start=1):
        xs, ys = x[s:s + W], tgt[s:s + W]
        hs, logp = forward(w, xs, h)                                   # (t,V,1) scored before learning from it
        lp[s:s + xs.size] = logp[np.arange(xs.size), ys, 0]
        if table:
            tab[s:s + xs.size] = logp[:, :, 0]
        grads = loss_and_grads(w, xs, ys, h)[1]
        clip_grads(grads, clip)                                        # in place, to [-clip, clip]
        for k in w:
            ms[k] += (grads[k] ** 2 - ms[k]) / n                       # mean of g^2 over the n windows so far
            w[k] -= learning_rate * grads[k] / (np.sqrt(ms[k]) + 1e-8)  # RMS-normalised step
            w[k] += decay * (params[k] - w[k])                         # decay toward the trained weights
        h = hs[-1]                                                     # carry the state on
    nats = float(-lp.mean())
    out = {"nats": nats, "bits": nats / math.log(2), "chars": int(x.size), "logprobs": lp}
    return {**out, "table": tab} if table else out


def _stream_logp(params: dict, ids, seq_length: int):
    """Yield (start, logp (t,V)) over the targets ids[1:], one stream from h = 0, state carried on."""
    x = np.asarray(ids)[:-1]
    h = np.zeros((params["Whh"].shape[0], 1), dtype=params["Whh"].dtype)
    for s in range(0, x.size, seq_length):
        hs, logp = forward(params, x[s:s + seq_length], h)              # logp (t,V,1)
        yield s, logp[:, :, 0]
        h = hs[-1]                                                       # carry the state on


def target_logprobs(params: dict, ids, seq_length: int = 256) -> np.ndarray:
    """(len(ids)-1,) log p(ids[t+1] | ids[..t]) of the RNN, one stream from h = 0 across the whole text.

    The per-character terms of rnn.evaluate(params, ids, num_chunks=1): their
    mean is minus its "nats". For comparing, or mixing, the RNN and the n-gram
    character by character.
    """
    ids = np.asarray(ids)
    if ids.size < 2:
        raise ValueError("target_logprobs: need at least 2 characters")
    tgt = ids[1:]
    out = np.empty(tgt.size)
    for s, logp in _stream_logp(params, ids, seq_length):
        out[s:s + len(logp)] = logp[np.arange(len(logp)), tgt[s:s + len(logp)]]
    return out


def logprob_table(params: dict, ids, seq_length: int = 256) -> np.ndarray:
    """(len(ids)-1, V) log p_t: the RNN's whole next-character distribution at every position.

    Read the same way as target_logprobs (one stream from h = 0), whose terms are
    column ids[t+1] of row t. The RNN's side of NGram.logprob_table.
    """
    ids = np.asarray(ids)
    if ids.size < 2:
        raise ValueError("logprob_table: need at least 2 characters")
    out = np.empty((ids.size - 1, params["Why"].shape[0]))
    for s, logp in _stream_logp(params, ids, seq_length):
        out[s:s + len(logp)] = logp
    return out


def hidden_grad_norms(params: dict, inputs, targets, hprev=None) -> np.ndarray:
    """How much the loss at the LAST step depends on each earlier hidden state.

    Returns norms (T,) with norms[k] = ||d loss_{T-1} / d h_{T-1-k}|| (mean over
    streams): the gradient k steps back in time. Each step back multiplies by
    Whh^T diag(1 - h^2), so in a vanilla RNN it usually shrinks geometrically
    (vanishing gradients), which limits how far back the model can learn.
    """
    Why, Whh = params["Why"], params["Whh"]
    inputs, targets, hprev = _as_batch(inputs, targets, hprev, params, "hidden_grad_norms")
    T, B = inputs.shape
    hs, logp = forward(params, inputs, hprev)        # hs (T+1,H,B), logp (T,V,B)
    dy = np.exp(logp[-1])                            # (V,B) p_{T-1}
    dy[targets[-1], np.arange(B)] -= 1.0             # (V,B) dy = p - onehot(target), last step only
    dh = Why.T @ dy                                  # (H,B) d loss_{T-1} / d h_{T-1}
    norms = np.empty(T)
    for k in range(T):
        t = T - 1 - k                                # hs[t+1] is h_t
        norms[k] = np.linalg.norm(dh, axis=0).mean()
        dh = Whh.T @ ((1.0 - hs[t + 1] ** 2) * dh)   # (H,B) one step back: Whh^T (tanh' * dh)
    return norms


# -----------------------------------------------------------------------------
# Batching: the text as B parallel streams
# -----------------------------------------------------------------------------

def train_val_split(ids: np.ndarray, val_fraction: float = 0.1):
    """First (1 - val_fraction) of the ids for training, the rest for validation.

    The default, the last 10% held out, is nanoGPT's shakespeare_char split,
    so validation numbers compare directly.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in [0, 1), got {val_fraction}")
    n = int(len(ids) * (1.0 - val_fraction))
    return ids[:n], ids[n:]


class Streams:
    """Cut a sequence of ids into B parallel streams and serve T-step windows.

    The ids are cut into B contiguous pieces of length L = len(ids) // B
    (the remainder is dropped). Window k of an epoch holds, for every stream,

        inputs  = stream[k*T     : k*T + T    ]     (T,B)
        targets = stream[k*T + 1 : k*T + T + 1]     (T,B)  the next character

    so each target is the input one step later. A training loop carries the
    hidden state from window k to window k+1 (stream b continues where it left
    off) and resets it to zero at the start of each epoch.

    An epoch ends when the next window would run past the end of a stream, with
    min-char-rnn's rule `if p + T + 1 >= len(data): reset`; so with B=1 the walk
    over the data is exactly the textbook's.

    offset rotates the ids left by that many characters before cutting them
    (np.roll), so the streams start, and the windows split the text, at other
    characters; offset=0 (the default) is the textbook walk. The end of the text
    then runs on into its start at one place per stream set: one odd transition
    in a million characters.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_length: int, offset: int = 0):
        if batch_size < 1 or seq_length < 1:
            raise ValueError(f"Streams: batch_size and seq_length must be >= 1, "
                             f"got batch_size={batch_size}, seq_length={seq_length}")
        ids = np.asarray(ids)
        self.B, self.T = int(batch_size), int(seq_length)
        self.L = len(ids) // self.B                                     # chars per stream
        # windows k = 0, 1, ... while k*T + T + 1 < L   (min-char-rnn's reset rule)
        self.num_windows = max(0, (self.L - 2) // self.T) if self.L >= 2 else 0
        if self.num_windows == 0:
            need = self.B * (self.T + 2)
            raise ValueError(f"Streams: {len(ids)} characters is too short for one window of "
                             f"seq_length={self.T} in {self.B} stream(s): need at least {need} "
                             f"(B*(T+2)); use a longer text or a smaller seq_length or batch_size")
        self.n = len(ids)                                               # chars in the text
        self.offset = int(offset) % len(ids)
        if self.offset:
            ids = np.roll(ids, -self.offset)                            # start reading at ids[offset]
        self.data = ids[: self.B * self.L].reshape(self.B, self.L)     # (B,L) stream b is row b

    def __len__(self) -> int:
        return self.num_windows

    @property
    def chars_per_epoch(self) -> int:
        return self.num_windows * self.T * self.B

    def window(self, k: int):
        """(inputs, targets) of window k, both (T,B) int arrays."""
        if not 0 <= k < self.num_windows:
            raise IndexError(f"Streams.window: k={k} outside 0..{self.num_windows - 1}")
        p = k * self.T
        inputs = self.data[:, p : p + self.T].T                          # (T,B)
        targets = self.data[:, p + 1 : p + self.T + 1].T                 # (T,B) shifted by one
        return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)

    def target_positions(self, k: int) -> np.ndarray:
        """(T,B) where in the ids given to Streams each target of window k sits:
        ids[target_positions(k)] == window(k)[1] (the offset's rotation undone)."""
        if not 0 <= k < self.num_windows:
            raise IndexError(f"Streams.target_positions: k={k} outside 0..{self.num_windows - 1}")
        t = k * self.T + 1 + np.arange(self.T)[:, None]                 # (T,1) column of the target in its stream
        return (np.arange(self.B)[None, :] * self.L + t + self.offset) % self.n   # (T,B)


# -----------------------------------------------------------------------------
# The training loop
# -----------------------------------------------------------------------------

class Trainer:
    """min-char-rnn's main loop as an object: one call to step() is one iteration.

    It owns the data walk (B streams of T-step windows), the hidden state that
    is carried from window to window and reset to zero at each epoch start,
    the optimiser state, and the counters a checkpoint needs for a true resume:

        step    iterations done so far          epoch   full passes over the data done
        window  next window within the epoch    smooth_loss  per-char loss, smoothed 0.999/0.001

    An epoch is one full pass over the training ids: len(streams) windows.

    The options, all off by default (the textbook); the random ones draw from
    (seed, epoch) or (seed, step), so a resumed run draws the same:
    random_offsets  each epoch after the first starts at a random offset into the
                    text (Streams' offset), so repeated epochs do not see the same windows.
    dropout=p       dropout on the non-recurrent connections (dropout_masks);
                    evaluation, sampling and checkpoints use the plain model.
    distill=a       with teacher (ngram_teacher's table of the training ids): train toward
                    the blend (1 - a) onehot + a teacher (loss_and_grads_options' soft).
    prior=b         with teacher: train the RNN as the count model's partner, every
                    prediction the product softmax(y_t + b log teacher_t)
                    (loss_and_grads_options' prior); with the counts it is the point.
    weight_decay=w  before each step W -= lr * w * W for Wxh, Whh, Why ("decoupled", as
                    AdamW: not divided by Adam's running gradient size).
    ema=d           also keep ema_params = d * ema_params + (1 - d) * params after each
                    step (Polyak averaging): the weights jitter around the valley floor,
                    their average sits closer to its bottom. model_params is the model to
                    evaluate, sample and save: the average if there is one, else the weights.
    """

    def __init__(self, params: dict, train_ids, batch_size: int = 1, seq_length: int = 25,
                 learning_rate: float = 0.1, optimizer: str = "adagrad", clip: float = 5.0,
                 opt_state: dict | None = None, random_offsets: bool = False, seed: int = 0,
                 ema: float = 0.0, dropout: float = 0.0, weight_decay: float = 0.0,
                 distill: float = 0.0, teacher=None, prior: float = 0.0):
        if not learning_rate > 0:
            raise ValueError(f"Trainer: learning_rate must be > 0, got {learning_rate}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"Trainer: ema must be in [0, 1) (0 = off, e.g. 0.998), got {ema}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"Trainer: dropout must be in [0, 1) (0 = off, e.g. 0.2), got {dropout}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"Trainer: weight_decay must be >= 0 (0 = off, e.g. 0.1), got {weight_decay}")
        if not 0.0 <= distill < 1.0:
            raise ValueError(f"Trainer: distill must be in [0, 1) (0 = off, e.g. 0.3), got {distill}")
        if not 0.0 <= prior <= 1.0:
            raise ValueError(f"Trainer: prior must be in [0, 1] (0 = off, e.g. 0.6), got {prior}")
        if distill and prior:
            raise ValueError("Trainer: distill and prior are two uses of one teacher; choose one")
        if (distill or prior) and (teacher is None or teacher.shape[0] != len(train_ids)):
            raise ValueError(f"Trainer: {'distill' if distill else 'prior'} > 0 needs teacher, one row per "
                             "training character (ngram_teacher(train_ids, V))")
        self.distill, self.prior, self.teacher = float(distill), float(prior), teacher
        self.dropout, self.weight_decay = float(dropout), float(weight_decay)
        self.ema = float(ema)
        self.ema_params = {k: v.copy() for k, v in params.items()} if ema else None
        self.params = params
        self.train_ids = np.asarray(train_ids)
        self.random_offsets, self.seed = bool(random_offsets), int(seed)
        self.streams = Streams(self.train_ids, batch_size, seq_length)
        self.learning_rate, self.optimizer, self.clip = learning_rate, optimizer, clip
        self.opt_state = opt_state if opt_state is not None else init_optimizer(optimizer, params)
        H, V = params["Wxh"].shape
        self.h = np.zeros((H, batch_size), dtype=params["Whh"].dtype)    # (H,B) carried hidden state
        self.step_count, self.epoch, self.window = 0, 0, 0
        self.smooth_loss = math.log(V)               # per char; the loss of a uniform guess
        self.grad_norms = {}                         # set by step(measure=True): L2 norm before clipping
        self.clip_fractions = {}                     # set by step(measure=True): share of entries clipped

    @property
    def chars_seen(self) -> int:
        return self.step_count * self.streams.T * self.streams.B

    def step(self, learning_rate: float | None = None, measure: bool = False) -> float:
        """One iteration. Returns the training loss of this window PER CHARACTER
        (loss_and_grads' sum over the T steps, divided by T), the unit of every
        loss the training script, the plots and the README print.

        measure=True also records the gradient's health for the plots:
        self.grad_norms (each gradient's L2 norm before clipping) and
        self.clip_fractions (the share of its entries that were clipped).
        """
        if self.window == 0:
            self.h = np.zeros_like(self.h)           # new epoch: reset the RNN's memory
            if self.random_offsets and self.streams.offset != self.epoch_offset(self.epoch):
                self.streams = Streams(self.train_ids, self.streams.B, self.streams.T,
                                       self.epoch_offset(self.epoch))
        inputs, targets = self.streams.window(self.window)
        lr = self.learning_rate if learning_rate is None else learning_rate
        masks = None
        if self.dropout:                             # drawn from (seed, step): a resumed run draws the same
            T, B = inputs.shape
            masks = dropout_masks(np.random.default_rng([self.seed, 1, self.step_count]), self.dropout,
                                  T, B, self.h.shape[0], self.h.dtype.type)
        soft = prior = None
        if self.distill or self.prior:               # the teacher's rows for this window's targets
            rows = self.teacher[self.streams.target_positions(self.window)]                 # (T,B,V)
            soft, prior = ((self.distill, rows), None) if self.distill else (None, (self.prior, rows))
        if masks is None and soft is None and prior is None:
            loss, grads, self.h = loss_and_grads(self.params, inputs, targets, self.h)
        else:
            loss, grads, self.h = loss_and_grads_options(self.params, inputs, targets, self.h, masks, soft, prior)
        if measure:                                  # gradient health, measured before clipping
            self.grad_norms = {k: float(np.linalg.norm(g)) for k, g in grads.items()}
        if self.weight_decay:                        # decoupled decay, matrices only: W -= lr w W
            for k in ("Wxh", "Whh", "Why"):
                self.params[k] *= 1.0 - lr * self.weight_decay
        frac = apply_update(self.params, self.opt_state, grads, lr, self.clip, self.optimizer, measure)
        if measure:
            self.clip_fractions = frac
        if self.ema_params is not None:
            for k, avg in self.ema_params.items():   # avg = d avg + (1-d) params, in place
                avg *= self.ema
                avg += (1.0 - self.ema) * self.params[k]
        per_char = loss / self.streams.T             # summed over T steps, mean over B -> per char
        self.smooth_loss = 0.999 * self.smooth_loss + 0.001 * per_char
        self.step_count += 1
        self.window += 1
        if self.window == len(self.streams):         # the next window would run past the end
            self.window, self.epoch = 0, self.epoch + 1
        return per_char

    @property
    def model_params(self) -> dict:
        """The weights to evaluate, sample and save: the running average if any, else params."""
        return self.ema_params if self.ema_params is not None else self.params

    def checkpoint_arrays(self) -> tuple[dict, dict]:
        """(params, opt_state) for save_checkpoint: the model to use (model_params), and the
        optimiser state, plus under "weights" the training weights when they differ (ema)."""
        if self.ema_params is None:
            return self.params, self.opt_state
        return self.ema_params, dict(self.opt_state, weights=self.params)

    def epoch_offset(self, epoch: int) -> int:
        """Where epoch `epoch` starts reading the text: 0 for the first epoch or
        without random_offsets, else a draw from (seed, epoch)."""
        if not self.random_offsets or epoch == 0:
            return 0
        return int(np.random.default_rng([self.seed, epoch]).integers(len(self.train_ids)))

    def state(self) -> dict:
        """The counters to store in a checkpoint's meta (see save_checkpoint)."""
        return {"step": self.step_count, "epoch": self.epoch, "window": self.window,
                "smooth_loss": self.smooth_loss}

    def restore(self, ck: dict) -> "Trainer":
        """Continue from a loaded checkpoint (load_checkpoint's dict): the exact same run."""
        m = ck["meta"]
        if ck["hidden"].shape != self.h.shape:
            raise ValueError(f"checkpoint hidden state has shape {ck['hidden'].shape}, but this run "
                                  f"expects {self.h.shape} (hidden_size, batch_size): use the same settings")
        if not 0 <= int(m["window"]) < len(self.streams):
            raise ValueError(f"the checkpoint's window {m['window']} is outside this run's epoch of "
                                  f"{len(self.streams)} windows: resume with the same data and settings")
        opt_state = dict(ck["opt_state"])
        weights = opt_state.pop("weights", None)         # the training weights, if averaged
        if (weights is None) != (self.ema_params is None):
            raise ValueError("the checkpoint was saved " + ("without" if weights is None else "with")
                                  + " weight averaging; resume it with the same setting")
        for k in PARAM_NAMES:
            if weights is None:
                self.params[k][...] = ck["params"][k]
            else:
                self.params[k][...] = weights[k]
                self.ema_params[k][...] = ck["params"][k]
        self.opt_state = opt_state
        self.h = ck["hidden"].astype(self.h.dtype)
        self.step_count, self.epoch, self.window = int(m["step"]), int(m["epoch"]), int(m["window"])
        if self.random_offsets:                      # the walk of the epoch we resume in
            self.streams = Streams(self.train_ids, self.streams.B, self.streams.T,
                                   self.epoch_offset(self.epoch))
        self.smooth_loss = float(m["smooth_loss"])
        return self
