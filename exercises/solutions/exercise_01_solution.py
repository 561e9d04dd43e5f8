"""Exercise 1 (reference solution): build the RNN from scratch.

One sequence (B = 1), column vectors, exactly min-char-rnn's lossFun cut into
the pieces you write one at a time:

    get_batch               inputs = data[p : p+T], targets = data[p+1 : p+T+1]
    rnn_step_forward        h_t = tanh(Wxh x_t + Whh h_{t-1} + bh), p_t = softmax(Why h_t + by)
    forward_loss            L = sum_t -log p_t[target_t]  (nats, summed over the T steps)
    rnn_backward            backprop through time: the forward pass read in reverse
    clip_gradients          every entry into [-5, 5], on the summed gradient
    loss_and_clipped_grads  all of the above for one window

Time: about 40 minutes. All six are the exercise (no stretch part to skip);
the stretch is a question for afterwards: swap clip_gradients for norm
clipping (scale all gradients by 5 / ||g|| when ||g|| > 5) and compare the
losses the script prints.

Check your version:  python -m pytest tests/exercises/test_exercise_01_build_rnn.py
Run this file:       python exercises/solutions/exercise_01_solution.py
"""

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # the repo root, so `import implementation` works from any directory

import numpy as np  # noqa: E402

from implementation import (PARAM_NAMES, adagrad_update, build_vocab, encode,  # noqa: E402
                            init_params, numerical_grad, rel_error, zeros_like_params)
from cli import (ArgumentParser, UserError, integer, number, one_line_errors, not_written_yet,  # noqa: E402
                setup_numpy, write_next)


def get_batch(data, p, seq_length):
    """The window of the text that starts at position p.

    data: (N,) int array of character ids; p: start position; seq_length: T.
    Returns (inputs, targets), both (T,) int arrays:
        inputs  = data[p     : p + T]
        targets = data[p + 1 : p + T + 1]   the NEXT character after each input
    """
    inputs = np.asarray(data[p:p + seq_length])                   # (T,) x_0 .. x_{T-1}
    targets = np.asarray(data[p + 1:p + seq_length + 1])          # (T,) the character after each input
    return inputs, targets


def rnn_step_forward(params, x, hprev):
    """One time step of the RNN.

    params: dict with Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1).
    x: int, the id of the input character; hprev: (H,1) the previous hidden state.
    Returns (h, p):
        h (H,1)  h_t = tanh(Wxh x_t + Whh h_{t-1} + bh), x_t the one-hot column of x
        p (V,1)  p_t = softmax(Why h_t + by), the next-character probabilities
    """
    Wxh, Whh, Why, bh, by = (params[k] for k in PARAM_NAMES)
    V = Wxh.shape[1]
    xv = np.zeros((V, 1))                                         # (V,1) one-hot x_t
    xv[x] = 1.0
    h = np.tanh(Wxh @ xv + Whh @ hprev + bh)                      # (H,1) h_t
    y = Why @ h + by                                              # (V,1) logits y_t
    e = np.exp(y - np.max(y))                                     # (V,1) softmax(y) = softmax(y - max y), no overflow
    p = e / np.sum(e)                                             # (V,1) p_t
    return h, p


def forward_loss(params, inputs, targets, hprev):
    """Run the RNN over one sequence and add up the cross-entropy.

    inputs, targets: (T,) int ids (targets[t] is the character after inputs[t]);
    hprev: (H,1) the hidden state before the first step.
    Returns (loss, cache):
        loss   float, sum over t of -log p_t[targets[t]] (nats, summed, NOT averaged)
        cache  {"hs": (T+1,H,1) array, hs[0] = hprev and hs[t+1] = h_t,
                "ps": (T,V,1) array, ps[t] = p_t}
    """
    T = len(inputs)
    H, V = params["Wxh"].shape
    hs = np.zeros((T + 1, H, 1))
    ps = np.zeros((T, V, 1))
    hs[0] = hprev
    loss = 0.0
    for t in range(T):
        hs[t + 1], ps[t] = rnn_step_forward(params, inputs[t], hs[t])
        loss += -np.log(ps[t][targets[t], 0])                      # cross-entropy of the true next char
    return float(loss), {"hs": hs, "ps": ps}


def rnn_backward(params, inputs, targets, cache):
    """Backprop through time for one sequence (no clipping here).

    inputs, targets: (T,) int ids; cache: forward_loss's cache ("hs" (T+1,H,1), "ps" (T,V,1)).
    Returns grads: dict keyed like params, the derivative of forward_loss's loss:
        dWxh (H,V), dWhh (H,H), dWhy (V,H), dbh (H,1), dby (V,1) under keys "Wxh", ...
    """
    Whh, Why = params["Whh"], params["Why"]
    hs, ps = cache["hs"], cache["ps"]
    grads = zeros_like_params(params)
    dhnext = np.zeros_like(hs[0])                                 # (H,1) gradient from step t+1, none after the last
    for t in reversed(range(len(inputs))):
        dy = ps[t].copy()                                         # (V,1)
        dy[targets[t]] -= 1.0                                     # dy_t = p_t - onehot(target_t): backprop into y
        grads["Why"] += dy @ hs[t + 1].T                          # (V,H) dy_t h_t^T
        grads["by"] += dy                                         # (V,1)
        dh = Why.T @ dy + dhnext                                  # (H,1) backprop into h: from the output and from t+1
        dhraw = (1.0 - hs[t + 1] ** 2) * dh                       # (H,1) backprop through tanh
        grads["bh"] += dhraw
        grads["Wxh"][:, [inputs[t]]] += dhraw                     # (H,V) dhraw_t x_t^T: only column x_t is nonzero
        grads["Whh"] += dhraw @ hs[t].T                           # (H,H) dhraw_t h_{t-1}^T (hs[t] is h_{t-1})
        dhnext = Whh.T @ dhraw                                    # (H,1) into the previous step
    return grads


def clip_gradients(grads, limit=5.0):
    """Clip every entry of every gradient into [-limit, limit], in place (min-char-rnn's rule).

    grads: dict of arrays (any shapes). Returns the same dict.
    """
    for k in grads:
        np.clip(grads[k], -limit, limit, out=grads[k])            # elementwise, not by norm
    return grads


def loss_and_clipped_grads(params, inputs, targets, hprev, limit=5.0):
    """One window of training signal: forward, loss, BPTT, then clipping.

    inputs, targets: (T,) int ids; hprev: (H,1).
    Returns (loss, grads, h_last): loss as forward_loss's, grads clipped into
    [-limit, limit] AFTER summing over the T steps, h_last (H,1) = h_{T-1}
    to carry into the next window.
    """
    loss, cache = forward_loss(params, inputs, targets, hprev)
    grads = rnn_backward(params, inputs, targets, cache)
    clip_gradients(grads, limit)
    return loss, grads, cache["hs"][-1]


# -----------------------------------------------------------------------------
# Given: the script that runs your functions
# -----------------------------------------------------------------------------

CORE = ("get_batch", "rnn_step_forward", "forward_loss", "rnn_backward", "clip_gradients",
        "loss_and_clipped_grads")                                 # the exercise, in order
STRETCH = ()                                                      # the optional part (none here)


@one_line_errors(UserError, OSError)
def main(argv=None):
    """Gradient-check your functions, then train them min-char-rnn style on a short text."""
    setup_numpy()                                                 # BLAS threads (1 unless RNN_THREADS), memory reuse
    parser = ArgumentParser(description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = parser.add_argument_group("training")
    g.add_argument("--hidden-size", type=integer(1, 512), default=32, help="H, the hidden state size (1 to 512)")
    g.add_argument("--seq-length", type=integer(1, 100), default=16,
                   help="T, steps per window (1 to 100: the training text is 432 characters)")
    g.add_argument("--iterations", type=integer(1, 100_000), default=600, help="training iterations (1 to 100,000)")
    g.add_argument("--learning-rate", type=number(0), default=0.1, help="Adagrad learning rate")
    g.add_argument("--seed", type=integer(0), default=0, help="seed of the random generator")
    args = parser.parse_args(argv)
    if todo := not_written_yet(CORE, globals()):
        return write_next(1, todo[0], __file__)
    print("settings:", vars(args))
    rng = np.random.default_rng(args.seed)

    # 1. gradient check on a small random problem (float64, non-zero biases)
    V, H, T = 6, 5, 8
    params = init_params(V, H, rng, init_scale=0.5)
    params["bh"] += 0.1 * rng.standard_normal((H, 1))
    params["by"] += 0.1 * rng.standard_normal((V, 1))
    inputs, targets = rng.integers(0, V, T), rng.integers(0, V, T)
    hprev = 0.5 * rng.standard_normal((H, 1))
    loss, cache = forward_loss(params, inputs, targets, hprev)
    grads = rnn_backward(params, inputs, targets, cache)
    print(f"\ngradient check (V={V}, H={H}, T={T}): relative error, numerical vs yours")
    for k in PARAM_NAMES:
        num = numerical_grad(lambda: forward_loss(params, inputs, targets, hprev)[0], params[k])
        print(f"  d{k:<4} {rel_error(grads[k], num):.2e}")

    # 2. train with your functions: min-char-rnn's loop (Adagrad from implementation)
    text = ("the quick brown fox jumps over the lazy dog. "
            "a char-rnn reads one character at a time and guesses the next. ") * 4
    chars = build_vocab(text)
    data = encode(text, chars)
    params = init_params(len(chars), args.hidden_size, rng)
    memory = zeros_like_params(params)
    T, p = args.seq_length, 0
    hprev = np.zeros((args.hidden_size, 1))
    print(f"\ntraining on {len(text)} characters (V={len(chars)}), loss per character:")
    for n in range(args.iterations):
        if p + T + 1 >= len(data):
            p, hprev = 0, np.zeros_like(hprev)                     # new pass: reset the memory
        inputs, targets = get_batch(data, p, T)
        loss, grads, hprev = loss_and_clipped_grads(params, inputs, targets, hprev)
        adagrad_update(params, grads, memory, args.learning_rate)
        if n % 100 == 0 or n == args.iterations - 1:
            print(f"  iteration {n:4d}  {loss / T:.3f} nats  (uniform guess: {np.log(len(chars)):.3f})")
        p += T
    return 0


if __name__ == "__main__":
    sys.exit(main())
