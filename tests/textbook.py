"""The classic single-stream min-char-rnn step, written plainly (one-hot inputs,
per-step dicts of arrays), as an independent reference for the tests and the
benchmark. Nothing here is imported by the project itself.
"""

import numpy as np


def textbook_loss_fun(params, inputs, targets, hprev):
    """min-char-rnn's lossFun: inputs, targets are lists of ids; hprev is (H,1)."""
    Wxh, Whh, Why, bh, by = (params[k] for k in ("Wxh", "Whh", "Why", "bh", "by"))
    vocab_size = Wxh.shape[1]
    xs, hs, ys, ps = {}, {}, {}, {}
    hs[-1] = np.copy(hprev)
    loss = 0
    # forward pass
    for t in range(len(inputs)):
        xs[t] = np.zeros((vocab_size, 1))  # encode in 1-of-k representation
        xs[t][inputs[t]] = 1
        hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)  # hidden state
        ys[t] = np.dot(Why, hs[t]) + by  # unnormalized log probabilities for next chars
        ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))  # probabilities for next chars
        loss += -np.log(ps[t][targets[t], 0])  # softmax (cross-entropy loss)
    # backward pass: compute gradients going backwards
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1  # backprop into y
        dWhy += np.dot(dy, hs[t].T)
        dby += dy
        dh = np.dot(Why.T, dy) + dhnext  # backprop into h
        dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh nonlinearity
        dbh += dhraw
        dWxh += np.dot(dhraw, xs[t].T)
        dWhh += np.dot(dhraw, hs[t - 1].T)
        dhnext = np.dot(Whh.T, dhraw)
    grads = {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}
    return loss, grads, hs[len(inputs) - 1]


def textbook_run(params, data_ids, seq_length, learning_rate, num_iters):
    """min-char-rnn's main loop (clip to [-5,5], Adagrad), for num_iters iterations.

    Works on copies of params. Returns (params, memory, losses, hprev, p).
    """
    params = {k: v.copy() for k, v in params.items()}
    mem = {k: np.zeros_like(v) for k, v in params.items()}
    H = params["Whh"].shape[0]
    n, p = 0, 0
    hprev = np.zeros((H, 1))
    losses = []
    while n < num_iters:
        # prepare inputs (we're sweeping from left to right in steps seq_length long)
        if p + seq_length + 1 >= len(data_ids) or n == 0:
            hprev = np.zeros((H, 1))  # reset RNN memory
            p = 0  # go from start of data
        inputs = [int(i) for i in data_ids[p:p + seq_length]]
        targets = [int(i) for i in data_ids[p + 1:p + seq_length + 1]]
        loss, grads, hprev = textbook_loss_fun(params, inputs, targets, hprev)
        losses.append(loss)
        for k in params:
            np.clip(grads[k], -5, 5, out=grads[k])  # clip to mitigate exploding gradients
            mem[k] += grads[k] * grads[k]
            params[k] += -learning_rate * grads[k] / np.sqrt(mem[k] + 1e-8)  # adagrad update
        p += seq_length  # move data pointer
        n += 1  # iteration counter
    return params, mem, losses, hprev, p
