"""Exercise 1: the RNN from scratch, checked three ways.

* a central-difference gradient check of your rnn_backward against your own forward_loss;
* agreement with implementation.py on random inputs of several shapes;
* when something disagrees, the same computation with a known mistake built in
  (no tanh derivative, no dhnext, clipping inside the time loop, targets off by
  one, ...), worked out here in the test: if your numbers match a mistake, the
  failure message names it.
"""

import types

import numpy as np
import pytest

import implementation as rnn
from .exercise_checks import check_close, check_shape, fail, failure_of, show
from textbook import textbook_run

# (V, H, T): vocabulary, hidden size, sequence length
SHAPES = [(5, 4, 6), (11, 7, 13), (3, 16, 2), (26, 10, 25)]


def make_problem(V, H, T, seed=0, scale=0.5):
    """Random float64 params (non-zero biases), inputs, targets and hprev: never zeros."""
    rng = np.random.default_rng(seed)
    params = rnn.init_params(V, H, rng, init_scale=scale)
    params["bh"] = 0.3 * rng.standard_normal((H, 1))
    params["by"] = 0.3 * rng.standard_normal((V, 1))
    inputs = rng.integers(0, V, T)
    targets = rng.integers(0, V, T)
    hprev = 0.5 * rng.standard_normal((H, 1))
    return params, inputs, targets, hprev


def copy_params(params):
    return {k: v.copy() for k, v in params.items()}


def variant(params, inputs, targets, hprev, tanh_grad=True, dhnext=True, clip_each=None,
            clip_running=None, whh_uses_h_t=False, why_uses_h_prev=False):
    """The textbook loss and gradients, with one mistake switched on by a flag."""
    Wxh, Whh, Why, bh, by = (params[k] for k in rnn.PARAM_NAMES)
    H, V = Wxh.shape
    T = len(inputs)
    hs, ps = {-1: hprev.copy()}, {}
    loss = 0.0
    for t in range(T):
        hs[t] = np.tanh(Wxh[:, [inputs[t]]] + Whh @ hs[t - 1] + bh)
        y = Why @ hs[t] + by
        e = np.exp(y - y.max())
        ps[t] = e / e.sum()
        loss -= np.log(ps[t][targets[t], 0])
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dhn = np.zeros((H, 1))
    for t in reversed(range(T)):
        step = {}
        dy = ps[t].copy()
        dy[targets[t]] -= 1
        step["Why"] = dy @ (hs[t - 1] if why_uses_h_prev else hs[t]).T
        step["by"] = dy
        dh = Why.T @ dy + (dhn if dhnext else 0.0)
        dhraw = (1 - hs[t] ** 2) * dh if tanh_grad else dh
        x = np.zeros((V, 1))
        x[inputs[t]] = 1
        step["Wxh"] = dhraw @ x.T
        step["Whh"] = dhraw @ (hs[t] if whh_uses_h_t else hs[t - 1]).T
        step["bh"] = dhraw
        dhn = Whh.T @ dhraw
        for k in grads:
            grads[k] += np.clip(step[k], -clip_each, clip_each) if clip_each else step[k]
            if clip_running:
                np.clip(grads[k], -clip_running, clip_running, out=grads[k])
    return loss, grads


# mistake name -> (variant() flags, what to tell the learner)
MISTAKES = {
    "no tanh derivative": (dict(tanh_grad=False),
                           "you forgot the tanh derivative: dhraw = (1 - h_t**2) * dh, where h_t = hs[t+1]"),
    "no dhnext": (dict(dhnext=False),
                  "you forgot dhnext: dh = Why.T @ dy + dhnext, with dhnext = Whh.T @ dhraw carried "
                  "from step t+1 to step t (zeros before the loop)"),
    "h_t in dWhh": (dict(whh_uses_h_t=True),
                    "dWhh += dhraw_t h_{t-1}^T uses the PREVIOUS hidden state: hs[t], not hs[t+1]"),
    "h_{t-1} in dWhy": (dict(why_uses_h_prev=True),
                        "dWhy += dy_t h_t^T uses the CURRENT hidden state: hs[t+1], not hs[t]"),
    "clipped each step": (dict(clip_each=5.0),
                          "you clipped inside the time loop (before summing over t); "
                          "clip once, on the summed gradient, after the loop"),
    "clipped running sum": (dict(clip_running=5.0),
                            "you clipped the running sum inside the time loop; "
                            "clip once, on the summed gradient, after the loop"),
}


def off_by_one_targets(inputs, targets):
    """Targets a learner may have used by mistake: name -> (T,) ids."""
    return {
        "the input itself (targets = inputs)": np.asarray(inputs),
        "the previous target (targets[t-1])": np.roll(targets, 1),
        "the next target (targets[t+1])": np.roll(targets, -1),
    }


def diagnose_grads(got, params, inputs, targets, hprev, want, func, limit=None):
    """Fail with the likely mistake if `got` differs from `want` (the module's gradients)."""
    message = grads_diagnosis(got, params, inputs, targets, hprev, want, func, limit)
    if message:
        fail(message)


def grads_diagnosis(got, params, inputs, targets, hprev, want, func, limit=None):
    """None if `got` equals `want` (the module's gradients), else a message naming the likely mistake.

    limit: the clipping `want` had (None: raw gradients); the mistaken variants
    get the same clipping after the loop, so a backward mistake is named here too.
    """
    missing = [k for k in rnn.PARAM_NAMES if k not in got]
    if missing:
        return (f"{func}: grads has no {', '.join(repr(k) for k in missing)}: return a dict with one "
                f"gradient per parameter, keyed like params ({', '.join(rnn.PARAM_NAMES)})")
    bad = [k for k in rnn.PARAM_NAMES if np.asarray(got[k]).shape != want[k].shape]
    if bad:
        k = bad[0]
        return (f"{func}: grads[{k!r}] has shape {np.asarray(got[k]).shape}, expected {want[k].shape} "
                f"(the gradient has the shape of the parameter)")
    wrong = [k for k in rnn.PARAM_NAMES if rnn.rel_error(got[k], want[k]) > 1e-7]
    if not wrong:
        return None
    T = len(inputs)
    H, V = params["Wxh"].shape
    shape = f"V={V}, H={H}, T={T}"
    post = (lambda g: {k: np.clip(v, -limit, limit) for k, v in g.items()}) if limit else (lambda g: g)
    candidates = []                                           # (advice, the gradients of that mistake)
    if limit:
        raw = rnn.loss_and_grads(params, inputs, targets, hprev)[1]
        candidates.append(("the gradients are not clipped: call clip_gradients(grads, limit) after "
                           "rnn_backward", raw))
        candidates.append(("each gradient was rescaled by its norm; the textbook clips each ENTRY into "
                           "[-limit, limit]", {k: g * min(1.0, limit / np.linalg.norm(g)) for k, g in raw.items()}))
    for flags, advice in MISTAKES.values():
        flags = {f: (limit or v) if f.startswith("clip") else v for f, v in flags.items()}
        g = variant(params, inputs, targets, hprev, **flags)[1]
        if "clip_each" in flags or "clip_running" in flags:
            candidates.append((advice, g))                    # clipped in the loop and never after
        candidates.append((advice, post(g)))
    for name, tgt in off_by_one_targets(inputs, targets).items():
        advice = (f"your gradients match the ones for predicting {name}: targets are off by one. At "
                  f"step t the output is scored against targets[t], the character after inputs[t]: "
                  f"dy = ps[t].copy(); dy[targets[t]] -= 1")
        candidates.append((advice, post(variant(params, inputs, tgt, hprev)[1])))
    for advice, g in candidates:
        distinct = [k for k in wrong if rnn.rel_error(g[k], want[k]) > 1e-6]
        if distinct and all(rnn.rel_error(got[k], g[k]) < 1e-7 for k in wrong):
            return (f"{func}: d{', d'.join(wrong)} differ from implementation.loss_and_grads"
                    f"{' clipped to ' + format(limit, 'g') if limit else ''} ({shape}); they match "
                    f"the gradients of a known mistake: {advice}")
    k = wrong[0]
    return (f"{func}: d{k} differs from implementation.loss_and_grads"
            f"{' clipped to ' + format(limit, 'g') if limit else ''} ({shape}), relative error "
            f"{rnn.rel_error(got[k], want[k]):.2e} > 1e-7\n  yours:    {show(got[k])}\n"
            f"  expected: {show(want[k])}\n  wrong: d{', d'.join(wrong)}; none of the known mistakes "
            f"gives these numbers. Read the backward pass in the module docstring of implementation.py "
            f"line by line against yours.")


# ----------------------------------------------------------------------------- get_batch

def test_get_batch_targets_are_the_next_characters(ex):
    data = np.arange(100, 160)
    inputs, targets = ex.get_batch(data, 7, 5)
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    call = "get_batch(data=np.arange(100, 160), p=7, seq_length=5)"
    if inputs.shape != (5,) or targets.shape != (5,):
        fail(f"{call}: inputs and targets must both have length seq_length=5, "
             f"got shapes {inputs.shape} and {targets.shape}")
    if not np.array_equal(inputs, data[7:12]):
        fail(f"{call}: inputs should be data[7:12] = {data[7:12].tolist()}, got {inputs.tolist()}")
    if np.array_equal(targets, inputs):
        fail(f"{call}: targets equal inputs; a char-rnn predicts the NEXT character: "
             f"targets = data[p+1 : p+T+1] = {data[8:13].tolist()}")
    if not np.array_equal(targets, data[8:13]):
        fail(f"{call}: targets should be data[8:13] = {data[8:13].tolist()} (inputs shifted by one), "
             f"got {targets.tolist()}: off by one?")


# ----------------------------------------------------------------------------- forward

@pytest.mark.parametrize("V,H,T", SHAPES)
def test_rnn_step_forward_matches_module(ex, V, H, T):
    params, inputs, _, hprev = make_problem(V, H, T, seed=V)
    x = int(inputs[0])
    h, p = ex.rnn_step_forward(params, x, hprev)
    hs, logp = rnn.forward(params, np.array([x]), hprev)
    check_shape(h, (H, 1), f"rnn_step_forward: h (V={V}, H={H})")
    check_shape(p, (V, 1), f"rnn_step_forward: p (V={V}, H={H})")
    no_tanh = params["Wxh"][:, [x]] + params["Whh"] @ hprev + params["bh"]
    if np.allclose(h, no_tanh):
        fail("rnn_step_forward: h is Wxh x + Whh hprev + bh without the tanh: h = np.tanh(...)")
    check_close(h, hs[1], f"rnn_step_forward: h (V={V}, H={H})",
                hint="h = tanh(Wxh @ x + Whh @ hprev + bh), x the one-hot (V,1) column of the id x")
    if not np.isclose(np.sum(p), 1.0):
        fail(f"rnn_step_forward: p sums to {np.sum(p):.6g}; softmax probabilities sum to 1: "
             f"p = exp(y) / sum(exp(y)) with y = Why @ h + by")
    check_close(p, np.exp(logp[0]), f"rnn_step_forward: p (V={V}, H={H})",
                hint="p = softmax(Why @ h + by)")


def test_rnn_step_forward_large_logits_do_not_overflow(ex):
    params, inputs, _, hprev = make_problem(7, 5, 3, seed=1)
    params["by"] = np.linspace(-800.0, 900.0, 7)[:, None]           # exp(900) overflows float64
    with np.errstate(all="ignore"):
        _, p = ex.rnn_step_forward(params, int(inputs[0]), hprev)
    if not np.all(np.isfinite(p)):
        fail("rnn_step_forward: with logits up to 900, p contains nan or inf: exp(900) overflows. "
             "Subtract the largest logit first: softmax(y) = softmax(y - max(y))")
    _, logp = rnn.forward(params, inputs[:1], hprev)
    check_close(p, np.exp(logp[0]), "rnn_step_forward: p with logits up to 900", rtol=1e-6)


def check_forward_loss(ex, params, inputs, targets, hprev):
    """Fail with the likely mistake if forward_loss's loss or cache differs from implementation.py's."""
    T = len(inputs)
    H, V = params["Wxh"].shape
    loss, cache = ex.forward_loss(params, inputs, targets, hprev)
    want, _, _ = rnn.loss_and_grads(params, inputs, targets, hprev)
    shape = f"V={V}, H={H}, T={T}"
    if not np.isscalar(loss) and np.size(loss) != 1:
        fail(f"forward_loss ({shape}): the loss must be one number (the sum over the T steps), got an "
             f"array of shape {np.shape(loss)}")
    if not np.isclose(loss, want, rtol=1e-9):
        if np.isclose(loss, want / T, rtol=1e-9):
            fail(f"forward_loss ({shape}): your loss {float(loss):.6g} is the MEAN over the T steps; "
                 f"return the SUM, {want:.6g} (the textbook number; divide by T only when printing)")
        if np.isclose(loss, want / np.log(2), rtol=1e-9):
            fail(f"forward_loss ({shape}): your loss {float(loss):.6g} is in bits (log2); use the natural "
                 f"log, np.log: {want:.6g} nats")
        for name, tgt in off_by_one_targets(inputs, targets).items():
            if T > 1 and np.isclose(loss, variant(params, inputs, tgt, hprev)[0], rtol=1e-9):
                fail(f"forward_loss ({shape}): your loss is the loss of predicting {name}: targets "
                     f"are off by one. Score p_t against targets[t]: loss += -log(ps[t][targets[t], 0])")
        if np.isclose(loss, variant(params, inputs, targets, np.zeros_like(hprev))[0], rtol=1e-9):
            fail(f"forward_loss ({shape}): your loss is the one that starts from a zero hidden state; "
                 f"start from the hprev you are given: hs[0] = hprev")
        fail(f"forward_loss ({shape}): loss {float(loss):.6g}, expected {want:.6g} "
             f"(sum over t of -log p_t[targets[t]], natural log)")
    hs, logp = rnn.forward(params, inputs, hprev)
    check_close(cache["hs"], hs, f"forward_loss ({shape}): cache['hs']",
                hint="hs[0] is hprev and hs[t+1] = h_t, shape (T+1, H, 1)")
    check_close(cache["ps"], np.exp(logp), f"forward_loss ({shape}): cache['ps']",
                hint="ps[t] = p_t, shape (T, V, 1)")


@pytest.mark.parametrize("V,H,T", SHAPES)
def test_forward_loss_matches_module(ex, V, H, T):
    check_forward_loss(ex, *make_problem(V, H, T, seed=T))


# ----------------------------------------------------------------------------- backward

@pytest.mark.parametrize("V,H,T", SHAPES[:2])
def test_rnn_backward_passes_gradient_check(ex, V, H, T):
    """Your gradients against central differences of your own loss (independent of the module)."""
    params, inputs, targets, hprev = make_problem(V, H, T, seed=3)
    _, cache = ex.forward_loss(params, inputs, targets, hprev)
    grads = ex.rnn_backward(params, inputs, targets, cache)
    f = lambda: ex.forward_loss(params, inputs, targets, hprev)[0]  # noqa: E731
    for k in rnn.PARAM_NAMES:
        check_shape(grads[k], params[k].shape, f"rnn_backward: grads[{k!r}]")
        num = rnn.numerical_grad(f, params[k], delta=1e-5)
        err = rnn.rel_error(grads[k], num)
        if err > 1e-6:
            head = (f"gradient check: d{k} from rnn_backward vs central differences of forward_loss "
                    f"(V={V}, H={H}, T={T}): relative error {err:.2e} > 1e-6\n"
                    f"  yours:     {show(grads[k])}\n  numerical: {show(num)}\n")
            problem = failure_of(check_forward_loss, ex, params, inputs, targets, hprev)   # is the loss right?
            if problem:
                fail(head + f"  your forward_loss is not the textbook loss either, so fix it first: {problem}")
            _, want, _ = rnn.loss_and_grads(params, inputs, targets, hprev)
            fail(head + "  " + (grads_diagnosis(grads, params, inputs, targets, hprev, want, "rnn_backward")
                                or "the gradients equal implementation.py's, so the loss is what differs"))


@pytest.mark.parametrize("V,H,T", SHAPES)
def test_rnn_backward_matches_module(ex, V, H, T):
    params, inputs, targets, hprev = make_problem(V, H, T, seed=V + T)
    _, cache = ex.forward_loss(params, inputs, targets, hprev)
    got = ex.rnn_backward(params, inputs, targets, cache)
    _, want, _ = rnn.loss_and_grads(params, inputs, targets, hprev)
    diagnose_grads(got, params, inputs, targets, hprev, want, "rnn_backward")


def large_gradient_problem():
    """A window whose summed gradients exceed 5 while most per-step pieces do not."""
    params, inputs, targets, hprev = make_problem(4, 6, 40, seed=11, scale=1.0)
    params["Why"] *= 3.0
    inputs[:] = np.arange(40) % 2                                   # repetitive: steps push the same way
    targets[:] = (np.arange(40) + 1) % 2
    return params, inputs, targets, hprev


def test_large_gradient_problem_tells_the_mistakes_apart():
    """A check of this test file itself: clipping early and late must give different numbers."""
    params, inputs, targets, hprev = large_gradient_problem()
    _, raw, _ = rnn.loss_and_grads(params, inputs, targets, hprev)
    clipped = {k: np.clip(v, -5, 5) for k, v in raw.items()}
    _, each = variant(params, inputs, targets, hprev, clip_each=5.0)
    _, running = variant(params, inputs, targets, hprev, clip_running=5.0)
    assert any(rnn.rel_error(raw[k], clipped[k]) > 1e-3 for k in raw)
    assert any(rnn.rel_error(each[k], clipped[k]) > 1e-3 for k in raw)
    assert any(rnn.rel_error(running[k], clipped[k]) > 1e-3 for k in raw)


def test_rnn_backward_does_not_clip(ex):
    params, inputs, targets, hprev = large_gradient_problem()
    _, cache = ex.forward_loss(params, inputs, targets, hprev)
    got = ex.rnn_backward(params, inputs, targets, cache)
    _, want, _ = rnn.loss_and_grads(params, inputs, targets, hprev)
    if all(np.allclose(got[k], np.clip(want[k], -5, 5)) for k in want):
        fail("rnn_backward returns clipped gradients: return the raw (unclipped) gradient; "
             "clipping is clip_gradients' job, called by loss_and_clipped_grads")
    diagnose_grads(got, params, inputs, targets, hprev, want, "rnn_backward")


# ----------------------------------------------------------------------------- clipping

def test_clip_gradients_elementwise(ex):
    rng = np.random.default_rng(4)
    raw = {"Wxh": 8 * rng.standard_normal((4, 3)), "by": np.array([[6.0], [-7.0], [0.5]])}
    for limit in (5.0, 1.0):
        grads = {k: v.copy() for k, v in raw.items()}
        out = ex.clip_gradients(grads, limit)
        if out is None:
            fail("clip_gradients returned None: return the grads dict (after clipping it in place)")
        for k, g in raw.items():
            want = np.clip(g, -limit, limit)
            norm = np.linalg.norm(g)
            if np.allclose(out[k], g * min(1.0, limit / norm)) and not np.allclose(want, g):
                fail(f"clip_gradients(limit={limit}): grads[{k!r}] was rescaled by its norm; the textbook "
                     f"clips each ENTRY into [-limit, limit]: np.clip(g, -limit, limit)")
            check_close(out[k], want, f"clip_gradients(limit={limit}): grads[{k!r}]",
                        hint="every entry into [-limit, limit]: np.clip(g, -limit, limit, out=g)")
            check_close(grads[k], want, f"clip_gradients(limit={limit}): grads[{k!r}] after the call",
                        hint="clip in place (np.clip(g, -limit, limit, out=g)), as min-char-rnn does")


def test_loss_and_clipped_grads_clips_after_summing(ex):
    params, inputs, targets, hprev = large_gradient_problem()
    loss, got, h_last = ex.loss_and_clipped_grads(params, inputs, targets, hprev)
    want_loss, raw, want_h = rnn.loss_and_grads(params, inputs, targets, hprev)
    want = {k: np.clip(v, -5, 5) for k, v in raw.items()}
    check_close(loss, want_loss, "loss_and_clipped_grads: loss", rtol=1e-9)
    diagnose_grads(got, params, inputs, targets, hprev, want, "loss_and_clipped_grads", limit=5.0)
    if np.shape(h_last) == np.shape(hprev) and np.allclose(h_last, hprev):
        fail("loss_and_clipped_grads: h_last is hprev, the state BEFORE the first step; return the state "
             "after the last one, cache['hs'][-1], so the next window continues where this one ended")
    check_close(h_last, want_h, "loss_and_clipped_grads: h_last",
                hint="h_last is the hidden state after the LAST step, cache['hs'][-1], shape (H,1)")


@pytest.mark.parametrize("limit", [1.0])
def test_loss_and_clipped_grads_uses_limit(ex, limit):
    params, inputs, targets, hprev = make_problem(5, 4, 12, seed=2, scale=1.0)
    _, got, _ = ex.loss_and_clipped_grads(params, inputs, targets, hprev, limit=limit)
    _, raw, _ = rnn.loss_and_grads(params, inputs, targets, hprev)
    want = {k: np.clip(v, -limit, limit) for k, v in raw.items()}
    if all(np.allclose(got[k], np.clip(raw[k], -5, 5)) for k in raw):
        fail(f"loss_and_clipped_grads(..., limit={limit}) clipped to 5: pass `limit` on to clip_gradients")
    diagnose_grads(got, params, inputs, targets, hprev, want,
                   f"loss_and_clipped_grads(..., limit={limit})", limit=limit)


# ----------------------------------------------------------------------------- all together

PIECES = [  # the tests of the pieces the loop uses, in the order the loop uses them
    ("get_batch", lambda ex: test_get_batch_targets_are_the_next_characters(ex)),
    ("forward_loss", lambda ex: check_forward_loss(ex, *make_problem(11, 7, 13, seed=13))),
    ("rnn_backward", lambda ex: test_rnn_backward_matches_module(ex, 11, 7, 13)),
    ("clip_gradients", lambda ex: test_clip_gradients_elementwise(ex)),
    ("loss_and_clipped_grads", lambda ex: test_loss_and_clipped_grads_clips_after_summing(ex)),
]


def test_training_loop_reproduces_min_char_rnn(ex):
    """Your pieces in min-char-rnn's loop give the textbook's losses, iteration by iteration."""
    for name, check in PIECES:                                     # a wrong piece is named, not the loop
        problem = failure_of(check, ex)
        if problem:
            fail(f"min-char-rnn's loop runs on your functions, and {name} is not right yet; fix it first "
                 f"(its own test says the same):\n  {problem}")
    rng = np.random.default_rng(5)
    text = "hello world, hello rnn. " * 6
    chars = rnn.build_vocab(text)
    data = rnn.encode(text, chars)
    H, T, lr, iters = 12, 10, 0.1, 30
    params0 = rnn.init_params(len(chars), H, rng)
    want_params, _, want_losses, _, _ = textbook_run(params0, data, T, lr, iters)
    params = copy_params(params0)
    memory = rnn.zeros_like_params(params)
    hprev, p, losses = np.zeros((H, 1)), 0, []
    for n in range(iters):
        if p + T + 1 >= len(data) or n == 0:
            hprev, p = np.zeros((H, 1)), 0
        inputs, targets = ex.get_batch(data, p, T)
        loss, grads, hprev = ex.loss_and_clipped_grads(params, inputs, targets, hprev)
        losses.append(loss)
        rnn.adagrad_update(params, grads, memory, lr)
        p += T
    check_close(losses, want_losses, f"losses of {iters} min-char-rnn iterations with your functions",
                hint="every piece passes on its own, so look at how they are chained: loss_and_clipped_grads "
                     "must return h_last = cache['hs'][-1], the state after the LAST step, to carry into the "
                     "next window",
                rtol=1e-8)
    for k in rnn.PARAM_NAMES:
        check_close(params[k], want_params[k], f"params[{k!r}] after {iters} iterations", rtol=1e-6)


# ----------------------------------------------------------------------------- checks of these tests

def textbook_exercise(**mistake):
    """Exercise 1 answered from the textbook (variant() above), with one mistake switched on by a flag."""
    def forward_loss(params, inputs, targets, hprev):
        hs, logp = rnn.forward(params, np.asarray(inputs), hprev)
        return float(-sum(logp[t][targets[t], 0] for t in range(len(inputs)))), {"hs": hs, "ps": np.exp(logp)}

    def rnn_backward(params, inputs, targets, cache):
        return variant(params, inputs, targets, cache["hs"][0], **mistake)[1]

    def clip_gradients(grads, limit=5.0):
        for k in grads:
            np.clip(grads[k], -limit, limit, out=grads[k])
        return grads

    def loss_and_clipped_grads(params, inputs, targets, hprev, limit=5.0):
        loss, cache = forward_loss(params, inputs, targets, hprev)
        return loss, clip_gradients(rnn_backward(params, inputs, targets, cache), limit), cache["hs"][-1]

    return types.SimpleNamespace(get_batch=lambda data, p, T: (data[p:p + T], data[p + 1:p + T + 1]),
                                 forward_loss=forward_loss, rnn_backward=rnn_backward,
                                 clip_gradients=clip_gradients, loss_and_clipped_grads=loss_and_clipped_grads)


def test_the_textbook_answer_passes_these_tests():
    right = textbook_exercise()
    for check, args in [(test_rnn_backward_passes_gradient_check, (5, 4, 6)),
                        (test_training_loop_reproduces_min_char_rnn, ())]:
        assert failure_of(check, right, *args) is None, failure_of(check, right, *args)


@pytest.mark.parametrize("mistake", ["no tanh derivative", "no dhnext", "h_t in dWhh", "h_{t-1} in dWhy"])
def test_the_gradient_check_names_the_known_mistake(mistake):
    """The first test -x stops at, the gradient check, names the mistake (not only 'relative error')."""
    flags, advice = MISTAKES[mistake]
    message = failure_of(test_rnn_backward_passes_gradient_check, textbook_exercise(**flags), 11, 7, 13)
    assert message and "gradient check" in message and advice in message, message


def test_the_training_loop_names_the_wrong_piece_first():
    message = failure_of(test_training_loop_reproduces_min_char_rnn, textbook_exercise(tanh_grad=False))
    assert message and "rnn_backward is not right yet" in message, message
    assert MISTAKES["no tanh derivative"][1] in message and "h_last" not in message, message
