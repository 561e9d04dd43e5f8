"""A character-level vanilla RNN in pure NumPy.

This is Karpathy's min-char-rnn.py, grown into a small library that a tutorial,
a training script, plots, a notebook and exercises can all import. It reads top
to bottom in the order a learner meets the ideas:

    text and vocabulary -> data streams -> parameters -> forward and loss
    -> backward (BPTT) -> clipping and optimisers -> sampling -> evaluation
    -> gradient check -> checkpoints

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
``np.random.Generator``.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")


# -----------------------------------------------------------------------------
# Text and vocabulary
# -----------------------------------------------------------------------------

# The largest text read_text reads unless told otherwise: far above the corpora used here
# (tiny Shakespeare 1.1 MB, War and Peace 3.2 MB), far below what would exhaust memory.
TEXT_MAX_BYTES = 100_000_000


class TextTooLargeError(ValueError):
    """read_text refused a file larger than its max_bytes; .size and .limit say by how much."""

    def __init__(self, message: str, size: int, limit: int):
        super().__init__(message)
        self.size, self.limit = size, limit


def _open_regular_file(path, caller: str):
    """Open `path` for binary reading, refusing anything but a regular file.

    Folders, named pipes (FIFOs), devices such as /dev/zero and sockets are
    refused from os.stat, before opening: reading a FIFO would wait for a
    writer, and /dev/zero never ends. The open itself does not block either
    (O_NONBLOCK), and the file is checked again once open, in case it was
    swapped in between. Returns (file object, size in bytes).
    """
    def check(mode):
        if stat.S_ISREG(mode):
            return
        kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise ValueError(f"{caller}: {path} is {kind}; give a regular file")

    check(os.stat(path).st_mode)                                       # FileNotFoundError if missing
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        check(st.st_mode)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_text(path, max_bytes: int = TEXT_MAX_BYTES) -> str:
    """Read a UTF-8 text file. One character = one Unicode code point.

    Raises ValueError, naming read_text and the file, for anything but a
    regular file (a folder, a FIFO, a device), for a file larger than
    max_bytes (checked before reading; pass a larger max_bytes to read it),
    and with the byte offset for a file that is not valid UTF-8 (a binary
    file, or text saved in another encoding).
    """
    path = Path(path)
    f, size = _open_regular_file(path, "read_text")
    with f:
        if size > max_bytes:
            raise TextTooLargeError(f"read_text: {path} is {size:,} bytes, over the limit of {max_bytes:,} "
                                    "bytes; to read it, pass a larger max_bytes", size, max_bytes)
        raw = f.read(max_bytes + 1)                                   # bounded, even if the file grows
    if len(raw) > max_bytes:
        raise TextTooLargeError(f"read_text: {path} grew past the limit of {max_bytes:,} bytes while being "
                                "read", len(raw), max_bytes)
    if b"\x00" in raw:
        raise ValueError(f"read_text: {path} looks like a binary file (NUL byte at offset {raw.index(0)}); "
                         "the model trains on UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"read_text: {path} is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset "
                         f"{e.start}); re-save the file as UTF-8") from None


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
# Data streams
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
# Forward pass and loss
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


def _hidden_states(params, inputs, hprev, x_mask=None):
    """hs (T+1,H,B): hs[0] = hprev, hs[t+1] = tanh(Wxh x_t + Whh hs[t] + bh).

    x_mask: optional (T,H,B) dropout mask on the input term (see dropout_masks):
    Wxh x_t becomes m_t * Wxh x_t, the character's embedding with some units dropped.

    Speed tricks, all giving the textbook numbers:
    * Wxh @ onehot(x) is column x of Wxh, so the input projection of all T*B
      characters is one gather, Wxh[:, inputs], instead of T one-hot products.
    * hs[t] is a contiguous (H,B) block and each step is three NumPy calls that
      write in place: at the textbook's small sizes the cost of a NumPy call,
      not the arithmetic, limits speed.
    """
    Wxh, Whh, bh = params["Wxh"], params["Whh"], params["bh"]
    T, B = inputs.shape
    H = Whh.shape[0]
    xs = np.empty((T, H, B), dtype=Whh.dtype)
    # Wxh[:, inputs] (np.take, the same gather but faster) is (H,T,B); stored step-major in xs
    np.copyto(xs, np.take(Wxh, inputs, axis=1).transpose(1, 0, 2))       # (T,H,B) xs[t] = Wxh x_t
    if x_mask is not None:
        xs *= x_mask                                 # (T,H,B) m_t Wxh x_t: dropout on the input
    xs += bh                                         # (T,H,B) xs[t] = Wxh x_t + bh
    hs = np.empty((T + 1, H, B), dtype=Whh.dtype)
    hs[0] = hprev
    for t in range(T):
        h = hs[t + 1]                                # (H,B) h_t, filled in place
        np.dot(Whh, hs[t], out=h)                    # (H,B) Whh h_{t-1}
        h += xs[t]                                   # (H,B) + Wxh x_t + bh
        np.tanh(h, out=h)                            # (H,B) h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)
    return hs


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


def loss_and_grads(params: dict, inputs, targets, hprev=None, masks=None, soft=None, prior=None):
    """Loss, gradients and the last hidden state for one window of T steps.

    inputs, targets: (T,B) int ids (or (T,) for one stream); hprev: (H,B) or (H,1).
    loss: cross-entropy summed over the T steps, averaged over the B streams (nats).
    grads: dict keyed like params ("Wxh", ...), each the derivative of that loss.
    h_last: (H,B) hidden state after the last step, to carry into the next window.
    masks: optional dropout masks from dropout_masks (training only; None, the
    default and the textbook, is the plain model).
    soft: optional (alpha, Q) for distillation (training only; None is the
    textbook): Q (T,B,V) a teacher's next-character distribution at each target,
    and the target of step t becomes the blend (1 - alpha) onehot(target_t) +
    alpha Q_t. The loss is the cross-entropy against that blend,
    (1 - alpha) (-log p_t[target]) + alpha (-sum_j Q_t[j] log p_t[j]),
    and its gradient into y_t is p_t minus the blend.
    prior: optional (beta, Q) to train the RNN as a count model's partner
    (training only; None is the textbook): Q (T,B,V) as for soft, and the
    prediction of step t becomes the product p_t = softmax(y_t + beta log Q_t),
    proportional to exp(y_t) Q_t^beta. The count factor is fixed, so the
    gradient into y_t, still p_t - onehot(target_t), asks the RNN only for what
    the product gets wrong.
    """
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    inputs, targets, hprev = _as_batch(inputs, targets, hprev, params)
    T, B = inputs.shape
    H, V = Wxh.shape
    x_mask, h_mask = (None, None) if masks is None else (masks["x"], masks["h"])
    # --- forward -------------------------------------------------------------
    hs = _hidden_states(params, inputs, hprev, x_mask)   # (T+1,H,B) hs[t+1] = h_t
    h_cols = _columns(hs)                            # (H,(T+1)*B) h_{-1}..h_{T-1} side by side (hs[0] = hprev first)
    h_out = h_cols[:, B:]                            # (H,T*B) h_t, what the output layer reads
    if h_mask is not None:
        h_out = h_out * h_mask                       # (H,T*B) m_t * h_t: dropout between h and y only
    y = Why @ h_out + by                             # (V,T*B) y_t = Why h_t + by, one product for all steps
    if prior is not None:
        beta, Q = prior
        y += beta * _log_probs(Q, y.dtype).reshape(T * B, V).T   # (V,T*B) y_t + beta log Q_t: the product's logits
    y -= y.max(axis=0)                               # softmax(y) = softmax(y - max y): exp can no longer overflow
    e = np.exp(y)                                    # (V,T*B)
    s = e.sum(axis=0)                                # (T*B,)  sum_j exp(y_t[j])
    cols = np.arange(T * B)
    tgt = targets.reshape(T * B)                     # column t*B + b is step t of stream b
    # -log p_t[target] = log sum_j exp(y_t[j]) - y_t[target]; sum over steps, mean over streams
    loss = (np.log(s).sum() - y[tgt, cols].sum()) / B
    if soft is not None:
        alpha, Q = soft
        Q = np.asarray(Q, dtype=y.dtype).reshape(T * B, V).T    # (V,T*B) the teacher's p at each target
        # -sum_j Q_t[j] log p_t[j] = log sum_j exp(y_t[j]) - sum_j Q_t[j] y_t[j]   (the Q_t sum to 1)
        loss = (1.0 - alpha) * loss + alpha * (np.log(s).sum() - (Q * y).sum()) / B

    # --- backward: the forward pass read in reverse -------------------------
    dy = e / s                                       # (V,T*B) p_t = softmax(y_t)
    if soft is None:
        dy[tgt, cols] -= 1.0                         # (V,T*B) dy_t = p_t - onehot(target_t): backprop into y
    else:
        dy[tgt, cols] -= 1.0 - alpha                 # (V,T*B) dy_t = p_t - (1 - alpha) onehot(target_t)
        dy -= alpha * Q                              #                    - alpha Q_t
    dy /= B                                          # the loss is a mean over the B streams
    dWhy = dy @ h_out.T                              # (V,H) sum_t dy_t h_t^T (the dropped-out h_t)
    dby = dy.sum(axis=1, keepdims=True)              # (V,1) sum_t dy_t
    # backprop into h from the outputs: dhs[t] = Why^T dy_t for all t in one batched
    # call (np.matmul loops over the leading T axis), written step-major like hs
    dhs = np.empty((T, H, B), dtype=Whh.dtype)
    np.matmul(Why.T, dy.reshape(V, T, B).transpose(1, 0, 2), out=dhs)   # (T,H,B) Why^T dy_t
    if h_mask is not None:                           # back through the output dropout: times the same mask
        dhs *= h_mask.reshape(H, T, B).transpose(1, 0, 2)
    dtanh = hs[1:] * hs[1:]
    np.subtract(1.0, dtanh, out=dtanh)               # (T,H,B) tanh'(a_t) = 1 - h_t^2, all steps at once
    WhhT = Whh.T                                     # (H,H) a transposed view, made once
    # Backprop through time, in place: dhs[t] holds Why^T dy_t; adding dhnext
    # turns it into dh_t, and multiplying by tanh' turns it into dhraw_t.
    for t in reversed(range(T)):
        dh = dhs[t]                                  # (H,B) Why^T dy_t
        if t < T - 1:
            dh += np.dot(WhhT, dhs[t + 1])           # (H,B) dh_t = Why^T dy_t + dhnext, dhnext = Whh^T dhraw_{t+1}
        dh *= dtanh[t]                               # (H,B) dhraw_t = (1 - h_t^2) * dh_t: backprop through tanh
    dhraw = _columns(dhs)                            # (H,T*B) all dhraw_t side by side
    dWhh = dhraw @ h_cols[:, :-B].T                  # (H,H) sum_t dhraw_t h_{t-1}^T, one product
    dbh = dhraw.sum(axis=1, keepdims=True)           # (H,1) sum_t dhraw_t
    # dWxh = sum_t dhraw_t x_t^T with one-hot x_t, as one product with the (V,T*B)
    # one-hot matrix of all inputs (faster than a scatter-add with np.add.at).
    X = np.zeros((V, T * B), dtype=Wxh.dtype)
    X[inputs.reshape(T * B), cols] = 1.0             # (V,T*B) one-hot columns x_t
    if x_mask is not None:
        dhraw = dhraw * _columns(x_mask)             # (H,T*B) back through the input dropout: m_t * dhraw_t
    dWxh = dhraw @ X.T                               # (H,V) sum_t dhraw_t x_t^T
    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return float(loss), grads, hs[-1].copy()


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
# Gradient clipping and optimisers
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


def adam_update(params: dict, grads: dict, state: dict, learning_rate: float,
                beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
    """Adam, in place (an option for the fast settings; Adagrad is the default).

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


class Trainer:
    """min-char-rnn's main loop as an object: one call to step() is one iteration.

    It owns the data walk (B streams of T-step windows), the hidden state that
    is carried from window to window and reset to zero at each epoch start,
    the optimiser state, and the counters a checkpoint needs for a true resume:

        step    iterations done so far          epoch   full passes over the data done
        window  next window within the epoch    smooth_loss  per-char loss, smoothed 0.999/0.001

    An epoch is one full pass over the training ids: len(streams) windows.

    random_offsets=True starts every epoch after the first at a random offset
    into the text (Streams' offset, drawn from seed and the epoch number, so a
    resumed run draws the same ones). Truncated backprop then cuts the text at
    different characters in each epoch and the streams start elsewhere, so a
    model that sees the same text many times does not see the same windows;
    it costs nothing. Off by default (the textbook walk).

    dropout=p > 0 trains with dropout on the non-recurrent connections (see
    dropout_masks), masks drawn from (seed, step number), so a resumed run
    draws the same ones. Evaluation, sampling and checkpoints use the plain
    model: dropout changes only how the weights are trained. Off by default.

    distill=a > 0 (with teacher, ngram_teacher's table of the training ids)
    trains toward the blend (1 - a) onehot + a teacher at every target
    (loss_and_grads' soft): knowledge distillation from a count model. Only the
    training targets change; the model is the same. Off by default.

    prior=b > 0 (with teacher, ngram_teacher's table, best with folds > 2)
    trains the RNN as the count model's partner: every prediction in training
    is the product softmax(y_t + b log teacher_t) (loss_and_grads' prior), so
    the RNN learns what the counts miss, not what they already know. Alone it
    is then a poor model; with the counts (evaluate's prior, or the product of
    experts of analysis.product_halves) it is the point. Off by default.

    weight_decay=w > 0 shrinks the three matrices (never the biases) toward zero
    a little before each optimiser step, in proportion to that step's learning
    rate ("decoupled" weight decay, as AdamW does):

        W -= lr * w * W          for W in Wxh, Whh, Why

    Unlike an L2 term added to the loss, this shrink is not divided by Adam's
    running gradient size, so every weight feels the same pull. Off by default.

    ema=d > 0 also keeps an exponential moving average of the weights (Polyak
    averaging), updated after every step:

        ema_params = d * ema_params + (1 - d) * params

    With a learning rate large enough to learn fast, each step overshoots a
    little and the weights jitter around the valley floor; their average over
    the last ~1/(1-d) steps sits closer to its bottom. model_params is the model
    to evaluate, sample and save: the average if there is one, else the weights.
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
        loss, grads, self.h = loss_and_grads(self.params, inputs, targets, self.h, masks, soft, prior)
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
            raise CheckpointError(f"checkpoint hidden state has shape {ck['hidden'].shape}, but this run "
                                  f"expects {self.h.shape} (hidden_size, batch_size): use the same settings")
        if not 0 <= int(m["window"]) < len(self.streams):
            raise CheckpointError(f"the checkpoint's window {m['window']} is outside this run's epoch of "
                                  f"{len(self.streams)} windows: resume with the same data and settings")
        opt_state = dict(ck["opt_state"])
        weights = opt_state.pop("weights", None)         # the training weights, if averaged
        if (weights is None) != (self.ema_params is None):
            raise CheckpointError("the checkpoint was saved " + ("without" if weights is None else "with")
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
    if rng is None:
        rng = np.random.default_rng()
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
                rng: np.random.Generator | None = None, top_k: int | None = None) -> str:
    """Feed `prime` through the model, then sample n more characters; returns only the new ones."""
    if not prime:
        raise ValueError("sample_text: prime must be at least one character")
    ids = encode(prime, chars)
    H = params["Whh"].shape[0]
    h = np.zeros((H, 1), dtype=params["Whh"].dtype)
    if len(ids) > 1:                                                  # warm the state up on the prime
        hs, _ = forward(params, ids[:-1], h)
        h = hs[-1]
    out, _ = sample(params, h, ids[-1], n, temperature, rng, top_k)
    return decode(out, chars)


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
               masks: dict | None = None, soft=None, prior=None) -> dict:
    """Compare loss_and_grads' gradients with central differences, in float64.

    Returns {name: rel_error} for each name in `names`. num_checks=None checks
    every entry; otherwise that many random entries per parameter (then the
    error is computed over those entries). Pass `grads` to check gradients
    from another function (an exercise) against the numbers, and `masks`
    (dropout_masks) to check the dropout path with one fixed draw of the masks,
    `soft` (alpha, Q) to check the distillation loss, and `prior` (beta, Q) the
    partner's.
    """
    for k in names:
        if params[k].dtype != np.float64:
            raise TypeError(f"grad_check: params[{k!r}] is {params[k].dtype}; central differences "
                            "need float64 (float32 rounding swamps them): cast with "
                            "{k: v.astype(np.float64) for k, v in params.items()}")
    if grads is None:
        _, grads, _ = loss_and_grads(params, inputs, targets, hprev, masks, soft, prior)
    f = lambda: loss_and_grads(params, inputs, targets, hprev, masks, soft, prior)[0]   # the same masks every call
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


# -----------------------------------------------------------------------------
# Checkpoints
# -----------------------------------------------------------------------------
#
# A checkpoint is a .npz file: a zip archive of .npy arrays, never a pickle.
#
#     params/<name>       the model, <name> in PARAM_NAMES          (H,V) (H,H) (V,H) (H,1) (V,1)
#     opt/<slot>/<name>   optimiser state shaped like params/<name>: Adagrad's "memory",
#                         Adam's "m" and "v"; and "weights", the training weights, when
#                         the model saved is their running average (Trainer's ema)
#     hidden              the hidden state carried into the next window      (H,B)
#     vocab               the vocabulary as sorted Unicode code points       (V,)
#     meta                JSON text: counters, settings, the RNG state (META_SCHEMA)
#
# A checkpoint may come from anyone, so load_checkpoint trusts nothing in it. It
# opens only the members above; reads each .npy header before its data and checks
# its shape and dtype against H and V (from params/Wxh's header) and a byte budget;
# validates meta against the schema below; and only then reads the arrays and
# checks their values. Every problem is one line of CheckpointError. No pickle is
# ever loaded, and no name read from the file is ever looked up to be called.

CHECKPOINT_FORMAT = "numpy-char-rnn-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_MAX_DIM = 100_000            # largest H, V or B a checkpoint may declare
CHECKPOINT_MAX_BYTES = 2 << 30          # all its arrays together (the fast preset's take ~3 MB)
META_MAX_CHARS = 1 << 20                # the JSON text in meta

# The arrays each optimiser keeps per parameter (opt/<slot>/<name>) and its scalars (in meta).
OPTIMIZER_SLOTS = {"adagrad": ("memory",), "adam": ("m", "v")}
OPTIMIZER_SCALARS = {"adagrad": (), "adam": ("step",)}
AVERAGE_SLOT = "weights"                # the training weights when params holds their average
CHECKPOINT_MEMBERS = frozenset(
    ["meta", "vocab", "hidden"] + [f"params/{k}" for k in PARAM_NAMES]
    + [f"opt/{slot}/{k}" for slots in OPTIMIZER_SLOTS.values() for slot in (*slots, AVERAGE_SLOT)
       for k in PARAM_NAMES])


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, corrupted, wrong kind, other vocabulary).

    The message is always a single line.
    """

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


def _show(value, width: int = 60) -> str:
    """A value from a file, for an error message: its repr, cut short."""
    r = repr(value)
    return r if len(r) <= width else r[: width - 3] + "..."


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)          # JSON's true is not a count


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --- The RNG state -----------------------------------------------------------

# The bit generators a checkpoint may name. A name read from a file is only ever a
# key into this dict: looking it up in np.random would let the file call
# np.random.seed or any other function there.
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                  "MT19937": np.random.MT19937, "Philox": np.random.Philox, "SFC64": np.random.SFC64}
# Upper bounds (exclusive) of the integers in their states. NumPy does not check them
# all: an MT19937 "pos" past 624 crashes the interpreter.
_RNG_INT_LIMITS = {"state": 1 << 128, "inc": 1 << 128, "pos": 625, "buffer_pos": 5,
                   "has_uint32": 2, "uinteger": 1 << 32}


def rng_state_json(rng: np.random.Generator) -> str:
    """A Generator's state as JSON (big integers survive JSON exactly; arrays become lists)."""
    return json.dumps(rng.bit_generator.state, default=lambda a: a.tolist())


def _check_rng_state(state, like: dict, where: str) -> None:
    """Raise CheckpointError unless `state` is built like `like`, a fresh generator's state:
    the same keys, lists of the same length where it has arrays, integers in range."""
    if not isinstance(state, dict) or set(state) != set(like):
        raise CheckpointError(f"{where} must be an object with the keys {sorted(like)}, got {_show(state)}")
    for key, want in like.items():
        v, at = state[key], f"{where}.{key}"
        if isinstance(want, dict):
            _check_rng_state(v, want, at)
        elif isinstance(want, np.ndarray):
            bits = 8 * want.dtype.itemsize
            if not (isinstance(v, list) and len(v) == want.size
                    and all(_is_int(x) and 0 <= x < 1 << bits for x in v)):
                raise CheckpointError(f"{at} must be a list of {want.size} integers in [0, 2**{bits}), "
                                      f"got {_show(v)}")
        elif isinstance(want, str):
            if v != want:
                raise CheckpointError(f"{at} must be {want!r}, got {_show(v)}")
        else:
            top = _RNG_INT_LIMITS.get(key, 1 << 64)
            if not (_is_int(v) and 0 <= v < top):
                shown = f"2**{top.bit_length() - 1}" if top > 1 << 32 else str(top)
                raise CheckpointError(f"{at} must be an integer in [0, {shown}), got {_show(v)}")


def rng_from_json(s: str) -> np.random.Generator:
    """The Generator whose state rng_state_json wrote.

    Accepts only the bit generators in BIT_GENERATORS, with a state built like a
    fresh one's; anything else raises CheckpointError.
    """
    try:
        state = json.loads(s)
    except (TypeError, ValueError, RecursionError):
        raise CheckpointError("rng_from_json: the RNG state is not valid JSON") from None
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in BIT_GENERATORS:
        raise CheckpointError(f"rng_from_json: bit_generator must be one of {', '.join(BIT_GENERATORS)}, "
                              f"got {_show(name)}")
    bitgen = BIT_GENERATORS[name](0)
    _check_rng_state(state, bitgen.state, "rng_state")
    try:
        bitgen.state = state
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
        raise CheckpointError(f"rng_from_json: NumPy refused the {name} state ({e})") from None
    return np.random.Generator(bitgen)


# --- The schema of meta ------------------------------------------------------

# Each check is (test, what the value must be); the error message quotes the second.
_COUNT = (lambda v: _is_int(v) and v >= 0, "an integer >= 0")
_POSITIVE_INT = (lambda v: _is_int(v) and v > 0, "an integer > 0")
_NUMBER = (_is_number, "a finite number")
_POSITIVE = (lambda v: _is_number(v) and v > 0, "a finite number > 0")
_NON_NEGATIVE = (lambda v: _is_number(v) and v >= 0, "a finite number >= 0")
_FRACTION = (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")
_UNIT = (lambda v: _is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
_TEXT = (lambda v: isinstance(v, str), "a string")
_FLAG = (lambda v: isinstance(v, bool), "true or false")
_OBJECT = (lambda v: isinstance(v, dict), "a JSON object")


def _one_of(*choices):
    return (lambda v: any(type(v) is type(c) and v == c for c in choices),
            " or ".join(repr(c) for c in choices))


def _or_none(check):
    return (lambda v: v is None or check[0](v), check[1] + " or null")


# meta: what save_checkpoint adds, and the counters of Trainer.state(), all required;
# train_minimal.py's bookkeeping and settings ("config"), checked when present.
META_REQUIRED = ("format", "version", "step", "epoch", "window", "smooth_loss", "opt_scalars", "rng_state")
META_SCHEMA = {
    "format": _one_of(CHECKPOINT_FORMAT), "version": _one_of(CHECKPOINT_VERSION),
    "step": _COUNT, "epoch": _COUNT, "window": _COUNT, "smooth_loss": _NUMBER,
    "opt_scalars": _OBJECT, "rng_state": _or_none(_TEXT), "config": _OBJECT,
    "best_val_loss": _or_none(_NUMBER), "best_step": _or_none(_COUNT), "evals_since_best": _COUNT,
    "elapsed": _NON_NEGATIVE, "train_seconds": _NON_NEGATIVE,
}
# config: train_minimal.py's settings (its PRESETS and check_config) and the data sizes
# it logs, each checked when present (train_minimal.py writes them all); other keys
# are ignored.
CONFIG_SCHEMA = {
    "hidden_size": _POSITIVE_INT, "seq_length": _POSITIVE_INT, "batch_size": _POSITIVE_INT,
    "optimizer": _one_of(*OPTIMIZER_SLOTS), "learning_rate": _POSITIVE,
    "lr_schedule": _one_of("constant", "cosine"), "min_lr": _NUMBER, "warmup_steps": _COUNT,
    "clip": _NON_NEGATIVE, "dtype": _one_of("float32", "float64"), "init_scale": _POSITIVE,
    "random_offsets": _FLAG, "ema": _FRACTION, "dropout": _FRACTION, "weight_decay": _NON_NEGATIVE, "distill": _FRACTION, "ngram_prior": _UNIT, "seed": _COUNT, "val_fraction": _FRACTION,
    "epochs": _or_none(_POSITIVE_INT), "max_steps": _or_none(_POSITIVE_INT), "time_budget": _or_none(_POSITIVE),
    "patience": _COUNT, "sample_every": _COUNT, "eval_every": _COUNT, "log_every": _COUNT,
    "sample_length": _POSITIVE_INT, "temperature": _POSITIVE,
    "preset": _TEXT, "data": _TEXT, "out": _TEXT,
    "vocab_size": _POSITIVE_INT, "train_chars": _COUNT, "val_chars": _COUNT,
    "chars_per_epoch": _COUNT, "windows_per_epoch": _COUNT,
}


def _check_fields(d, schema: dict, required, where: str) -> None:
    """Raise CheckpointError for the first required key missing from d or value that fails its check."""
    if not isinstance(d, dict):
        raise CheckpointError(f"{where} must be a JSON object, got {_show(d)}")
    for key in required:
        if key not in d:
            raise CheckpointError(f"{where} has no {key!r}")
    for key, (ok, what) in schema.items():
        if key in d and not ok(d[key]):
            raise CheckpointError(f"{where}: {key} must be {what}, got {_show(d[key])}")


def _check_meta(meta) -> None:
    _check_fields(meta, META_SCHEMA, META_REQUIRED, "meta")
    if "config" in meta:
        _check_fields(meta["config"], CONFIG_SCHEMA, (), "meta.config")


# --- Writing -----------------------------------------------------------------

def _flatten_opt(opt_state: dict) -> tuple[dict, dict]:
    """Optimiser state -> ({"opt/<slot>/<name>": array}, {scalar fields})."""
    arrays, scalars = {}, {}
    for slot, v in opt_state.items():
        if isinstance(v, dict):
            for k, a in v.items():
                arrays[f"opt/{slot}/{k}"] = a
        else:
            scalars[slot] = v
    return arrays, scalars


def save_checkpoint(path, params: dict, opt_state: dict, chars, hidden: np.ndarray,
                    meta: dict, rng: np.random.Generator | None = None) -> Path:
    """Save everything a true resume needs to a .npz file, atomically.

    Arrays: params/<name>, opt/<slot>/<name>, hidden, vocab (code points).
    meta (JSON, stored as a string): step, epoch, window, smooth_loss (Trainer.state()),
    hyperparameters and anything else the caller puts in, plus the RNG state.
    No pickles: the file loads with np.load(path, allow_pickle=False).
    Written to a temporary file in the same folder, checked by reading it back as
    load_checkpoint does, then renamed over `path`: a crash, a full disk or a
    state that could not be loaded (ValueError) leaves the previous checkpoint intact.
    """
    path = Path(path)
    opt_arrays, opt_scalars = _flatten_opt(opt_state)
    meta = dict(meta)
    meta.update(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, opt_scalars=opt_scalars,
                rng_state=rng_state_json(rng) if rng is not None else None)
    arrays = {f"params/{k}": v for k, v in params.items()}
    arrays.update(opt_arrays)
    arrays["hidden"] = np.asarray(hidden)
    arrays["vocab"] = np.array([ord(c) for c in chars], dtype=np.int64)
    arrays["meta"] = np.array(json.dumps(meta))                       # a 0-d unicode array, not a pickle
    path.parent.mkdir(parents=True, exist_ok=True)

    def load_back(f):                                                  # what load_checkpoint will see
        try:
            _read_checkpoint(f, os.fstat(f.fileno()).st_size)
        except CheckpointError as e:
            raise ValueError(f"save_checkpoint: this state would not load back ({e}); "
                             f"{path} was left as it was") from None

    return write_atomically(path, lambda f: np.savez(f, **arrays), check=load_back)


def write_atomically(path, write, check=None) -> Path:
    """Write a file so that it is never seen half-written: write(f) fills a temporary
    file in the same folder, check(f) (optional) may refuse it by raising, then one
    rename puts it in place. A crash, a full disk, Ctrl-C or a refusal leaves the
    previous file (if any) intact and the temporary file removed. Every file the
    project writes goes through here (checkpoints, and cli.atomic_write_bytes for
    logs, plots and pages).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())                                       # on disk before the rename
            if check is not None:
                f.seek(0)
                check(f)
        os.chmod(tmp, 0o644)                                           # mkstemp makes it private (0600)
        os.replace(tmp, path)                                          # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# --- Reading -----------------------------------------------------------------

_NPY_HEADER_MAX = 10_000                # NumPy's own limit on a .npy header, in characters
_ZIP_INDEX_MAX = 1 << 16                # a checkpoint's zip index (central directory) takes ~2 KB


def _check_zip_index(f, size: int) -> None:
    """Refuse a file that is not a zip archive, or whose index is bigger than a
    checkpoint's could be, before zipfile reads the whole index into memory.

    The index's size is in the end record, the last 22 bytes of the archive
    (followed by a comment of up to 64 KiB); a zip64 archive (> 4 GiB) has a
    locator just before it.
    """
    tail_len = min(size, 20 + 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")                                     # the end-of-archive record
    if i < 0 or len(tail) - i < 22:
        raise CheckpointError("not a .npz checkpoint (not a zip archive; truncated or another kind of file)")
    if tail[max(i - 20, 0) : i].startswith(b"PK\x06\x07"):
        raise CheckpointError("a zip64 archive (for files over 4 GiB); a checkpoint is far smaller")
    index_size = struct.unpack("<I", tail[i + 12 : i + 16])[0]
    if index_size > _ZIP_INDEX_MAX:
        raise CheckpointError(f"the zip index takes {index_size:,} bytes; a checkpoint's takes a few thousand")


def _checked_members(zf: zipfile.ZipFile) -> dict:
    """{member name without .npy: ZipInfo}, refusing names outside the format,
    repeated names, encryption, and compression other than np.savez's."""
    infos = {}
    if "meta.npy" not in zf.namelist():
        raise CheckpointError("a zip archive, but not a char-rnn checkpoint (no meta)")
    for info in zf.infolist():
        name = info.filename.removesuffix(".npy")
        if not info.filename.endswith(".npy") or name not in CHECKPOINT_MEMBERS:
            raise CheckpointError(f"member {_show(info.filename)} is not part of the checkpoint format")
        if name in infos:
            raise CheckpointError(f"member {info.filename} appears twice")
        if info.flag_bits & 0x1:
            raise CheckpointError(f"member {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"member {info.filename} uses compression method {info.compress_type}; "
                                  "a checkpoint is stored or deflated")
        infos[name] = info
    missing = [n for n in ("vocab", "hidden", *(f"params/{k}" for k in PARAM_NAMES)) if n not in infos]
    if missing:
        raise CheckpointError(f"missing member(s) {', '.join(missing)}")
    return infos


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple:
    """(shape, dtype, header length) of a .npy member, from its first bytes alone."""
    with zf.open(info) as member:
        head = io.BytesIO(member.read(min(info.file_size, 12 + _NPY_HEADER_MAX)))
    try:
        version = np.lib.format.read_magic(head)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(head, _NPY_HEADER_MAX)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(head, _NPY_HEADER_MAX)
        else:
            raise ValueError(f".npy format version {version} (a checkpoint uses 1.0 or 2.0)")
    except ValueError as e:
        raise CheckpointError(f"{info.filename}: not a valid .npy header ({e})") from None
    return shape, dtype, head.tell()


# The dtypes a member may have: (test, description).
_FLOAT = (lambda d: d.kind == "f" and d.itemsize in (4, 8), "float32 or float64")
_INTEGER = (lambda d: d.kind in "iu" and d.itemsize <= 8, "an integer type")
_UNICODE = (lambda d: d.kind == "U" and d.itemsize <= 4 * META_MAX_CHARS,
            f"a unicode string of at most {META_MAX_CHARS:,} characters")


def _check_layout(headers: dict, infos: dict) -> tuple[int, int, int]:
    """Check every member's declared dtype, shape and size before reading any data.

    H and V come from params/Wxh's header (H,V), B from hidden's (H,B); every
    other shape follows from them. Returns (H, V, B).
    """
    wxh, hidden = headers["params/Wxh"][0], headers["hidden"][0]
    if len(wxh) != 2 or not all(1 <= n <= CHECKPOINT_MAX_DIM for n in wxh):
        raise CheckpointError(f"params/Wxh has shape {_show(wxh)}: expected (H, V) with 1 <= H, V <= "
                              f"{CHECKPOINT_MAX_DIM:,}")
    H, V = wxh
    if len(hidden) != 2 or hidden[0] != H or not 1 <= hidden[1] <= CHECKPOINT_MAX_DIM:
        raise CheckpointError(f"hidden has shape {_show(hidden)}: expected (H, B) = ({H}, B) with "
                              f"1 <= B <= {CHECKPOINT_MAX_DIM:,}")
    B = hidden[1]
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    expected = {"meta": ((), _UNICODE), "vocab": ((V,), _INTEGER), "hidden": ((H, B), _FLOAT)}
    for name in headers:
        if name.startswith(("params/", "opt/")):
            expected[name] = (shapes[name.rsplit("/", 1)[1]], _FLOAT)
    total = 0
    for name, (shape, dtype, header_len) in headers.items():
        want_shape, (dtype_ok, dtype_what) = expected[name]
        if dtype.fields is not None or dtype.subdtype is not None or not dtype_ok(dtype):
            raise CheckpointError(f"{name} has dtype {_show(str(dtype))}, expected {dtype_what}")
        if shape != want_shape:
            raise CheckpointError(f"{name} has shape {_show(shape)}, expected {want_shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if infos[name].file_size != header_len + nbytes:
            raise CheckpointError(f"{name}: the archive says {infos[name].file_size:,} bytes, its header "
                                  f"implies {header_len + nbytes:,}")
        total += nbytes
    if total > CHECKPOINT_MAX_BYTES:
        raise CheckpointError(f"the arrays take {total:,} bytes, over the limit of {CHECKPOINT_MAX_BYTES:,}")
    return H, V, B


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One member's array (its size already checked); the zip's CRC check runs at its end."""
    with zf.open(info) as member:
        a = np.lib.format.read_array(member, allow_pickle=False, max_header_size=_NPY_HEADER_MAX)
        member.read(1)                                                 # reach the end: CRC check
    return a


def _check_optimizer(meta: dict, infos: dict) -> tuple[str, bool]:
    """(optimiser name, whether the weights slot is there), from the members and meta."""
    slots = {name.split("/")[1] for name in infos if name.startswith("opt/")}
    averaged = AVERAGE_SLOT in slots
    found = [name for name, s in OPTIMIZER_SLOTS.items() if set(s) == slots - {AVERAGE_SLOT}]
    if not found:
        raise CheckpointError(f"optimiser state must be Adagrad's opt/memory/<name> or Adam's opt/m/<name> "
                              f"and opt/v/<name>, found slots {sorted(slots)}")
    optimizer = found[0]
    for slot in OPTIMIZER_SLOTS[optimizer] + ((AVERAGE_SLOT,) if averaged else ()):
        missing = [k for k in PARAM_NAMES if f"opt/{slot}/{k}" not in infos]
        if missing:
            raise CheckpointError(f"opt/{slot} has no {', '.join(missing)}")
    scalars, want = meta["opt_scalars"], OPTIMIZER_SCALARS[optimizer]
    if set(scalars) != set(want):
        raise CheckpointError(f"meta.opt_scalars has keys {_show(sorted(scalars))}, {optimizer} keeps {list(want)}")
    _check_fields(scalars, {k: _COUNT for k in want}, (), "meta.opt_scalars")       # Adam's step
    return optimizer, averaged


def _check_config_matches(config: dict, H: int, V: int, B: int, dtype, optimizer: str, averaged: bool) -> None:
    """The settings in meta.config must describe the arrays saved with them."""
    facts = {"hidden_size": H, "vocab_size": V, "batch_size": B, "dtype": dtype.name, "optimizer": optimizer}
    for key, value in facts.items():
        if key in config and config[key] != value:
            raise CheckpointError(f"meta.config says {key} {_show(config[key])}, the arrays say {value}")
    if "ema" in config and (config["ema"] > 0) != averaged:
        raise CheckpointError(f"meta.config says ema {config['ema']}, but the weights slot is "
                              + ("missing" if config["ema"] > 0 else "there"))


def _check_values(arrays: dict) -> None:
    """Finite weights and state, non-negative running sums of squares, a valid vocabulary."""
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{name} holds NaN or inf")
        if name.startswith(("opt/memory/", "opt/v/")) and (a < 0).any():
            raise CheckpointError(f"{name} is a running sum of squares but holds negative values")
    cp = arrays["vocab"]
    if cp.dtype.kind == "u":
        cp = np.minimum(cp, 0x110000).astype(np.int64)                 # beyond range either way
    if cp.min() < 0 or cp.max() > 0x10FFFF:
        raise CheckpointError("vocab holds values outside the Unicode range 0..0x10FFFF")
    if ((cp >= 0xD800) & (cp <= 0xDFFF)).any():
        raise CheckpointError("vocab holds UTF-16 surrogates (0xD800..0xDFFF), which are not characters")
    if (np.diff(cp) <= 0).any():
        raise CheckpointError("vocab must be strictly increasing code points (sorted, no repeats)")


def _read_checkpoint(f, size: int) -> dict:
    """Everything load_checkpoint returns but the path checks, from an open file.
    Raises CheckpointError (without the path) for anything a checkpoint cannot be."""
    _check_zip_index(f, size)
    with zipfile.ZipFile(f) as zf:
        infos = _checked_members(zf)
        headers = {name: _npy_header(zf, info) for name, info in infos.items()}
        H, V, B = _check_layout(headers, infos)                        # before reading any data
        try:
            meta = json.loads(str(_read_member(zf, infos["meta"])))
        except (ValueError, RecursionError):
            raise CheckpointError("checkpoint metadata is not valid JSON") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"meta must be a JSON object, got {_show(meta)}")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"not a char-rnn checkpoint (format {_show(meta.get('format'))})")
        _check_meta(meta)
        rng = rng_from_json(meta["rng_state"]) if meta["rng_state"] is not None else None
        optimizer, averaged = _check_optimizer(meta, infos)
        _check_config_matches(meta.get("config", {}), H, V, B, headers["params/Wxh"][1],
                              optimizer, averaged)
        arrays = {name: _read_member(zf, info) for name, info in infos.items() if name != "meta"}
    _check_values(arrays)
    opt_state = dict(meta["opt_scalars"])
    for name, a in arrays.items():
        if name.startswith("opt/"):
            _, slot, k = name.split("/")
            opt_state.setdefault(slot, {})[k] = a
    return {"params": {k: arrays[f"params/{k}"] for k in PARAM_NAMES}, "opt_state": opt_state,
            "chars": [chr(c) for c in arrays["vocab"].tolist()], "hidden": arrays["hidden"],
            "meta": meta, "rng": rng}


def load_checkpoint(path, expected_chars=None) -> dict:
    """Load a checkpoint written by save_checkpoint, checking everything in it first.

    Returns {"params", "opt_state", "chars", "hidden", "meta", "rng"}.
    Raises CheckpointError with a one-line reason for a missing, truncated,
    corrupted, oversized or foreign file, for anything outside the format
    (see the top of this section), and, if expected_chars is given, for a
    checkpoint trained on another vocabulary.
    """
    path = Path(path)
    try:
        f, size = _open_regular_file(path, "load_checkpoint")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except ValueError as e:                                            # a folder, a FIFO, a device
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        with f:
            ck = _read_checkpoint(f, size)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, OverflowError, RuntimeError,
            NotImplementedError, zipfile.BadZipFile, zlib.error, struct.error) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupted file: {e})") from None
    chars = ck["chars"]
    if expected_chars is not None and list(expected_chars) != chars:
        only_data = sorted(set(expected_chars) - set(chars))
        only_ckpt = sorted(set(chars) - set(expected_chars))
        raise CheckpointError(
            f"{path}: checkpoint vocabulary ({len(chars)} chars) does not match the data's "
            f"({len(expected_chars)} chars); only in the data: {''.join(only_data)!r}, "
            f"only in the checkpoint: {''.join(only_ckpt)!r}")
    return ck


# -----------------------------------------------------------------------------
# A baseline to beat: an interpolated Kneser-Ney character n-gram
# -----------------------------------------------------------------------------
#
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
        product of models needs (analysis.product_halves). `block` bounds the
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
