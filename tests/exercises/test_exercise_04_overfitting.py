"""Exercise 4: smoothing, train/validation curves, and where validation stops improving.

The smoothing and the stopping rule are checked on small hand-made curves with
known answers; the training log against the same run done here with
implementation.Trainer; and the detected point against the logged curve of a
run that overfits on purpose (a small text, a large model).
"""

import types

import numpy as np
import pytest
from matplotlib.figure import Figure

import implementation as rnn
from .exercise_checks import check_close, fail, failure_of, needs, run_main

SETTINGS = dict(hidden_size=48, seq_length=16, batch_size=8, steps=200, eval_every=10, learning_rate=1e-2, seed=0)


@pytest.fixture(scope="module")
def small_text():
    """1,500 characters from a random Markov source: easy to memorise, hard to generalise."""
    rng = np.random.default_rng(0)
    letters = list("abcdefgh ")
    P = rng.dirichlet(np.full(len(letters), 0.5), size=len(letters))
    i, out = 0, []
    for _ in range(1500):
        i = rng.choice(len(letters), p=P[i])
        out.append(letters[i])
    text = "".join(out)
    chars = rnn.build_vocab(text)
    train_ids, val_ids = rnn.train_val_split(rnn.encode(text, chars), 0.2)
    return chars, train_ids, val_ids


@pytest.fixture(scope="module")
def overfit_log(ex, small_text):
    chars, train_ids, val_ids = small_text
    return ex.train_with_validation(train_ids, val_ids, len(chars), **SETTINGS)


# ----------------------------------------------------------------------------- smoothing

@pytest.mark.parametrize("values,beta,want", [
    ([1.0, 2.0, 3.0], 0.5, [1.0, 1.5, 2.25]),
    ([4.0, 0.0, 0.0, 0.0], 0.5, [4.0, 2.0, 1.0, 0.5]),
    ([3.0, 1.0, 2.0], 0.0, [3.0, 1.0, 2.0]),
    ([2.0, 2.0, 2.0, 2.0], 0.99, [2.0, 2.0, 2.0, 2.0]),
])
def test_smooth_exact(ex, values, beta, want):
    got = ex.smooth(np.array(values), beta)
    from_zero, acc = [], 0.0                                       # the same average started at 0
    for v in values:
        acc = beta * acc + (1 - beta) * v
        from_zero.append(acc)
    if np.shape(got) == np.shape(want) and np.allclose(got, from_zero) and not np.allclose(from_zero, want):
        fail(f"smooth({values}, beta={beta}): start the average at the first value (s_0 = values[0]); "
             f"starting at 0 drags the start of the curve down")
    check_close(got, want, f"smooth({values}, beta={beta})",
                hint="s_0 = values[0]; s_t = beta * s_{t-1} + (1 - beta) * values[t]", rtol=1e-12)


# ----------------------------------------------------------------------------- early stopping

def stopping_variant(steps, val, patience, strict=True):
    """(best_step, stop_step) of early stopping, with the tie rule switchable: for naming mistakes."""
    best_i, waited = 0, 0
    for i in range(1, len(val)):
        if val[i] < val[best_i] or (not strict and val[i] == val[best_i]):
            best_i, waited = i, 0
        else:
            waited += 1
            if waited == patience:
                return int(steps[best_i]), int(steps[i])
    return int(steps[best_i]), None


@pytest.mark.parametrize("val,patience,best,stop", [
    ([5, 4, 3, 2.5, 2.6, 2.7, 2.4, 2.8, 2.9, 3.0], 2, 30, 50),     # stops before the later dip to 2.4
    ([5, 4, 3, 2.5, 2.6, 2.7, 2.4, 2.8, 2.9, 3.0], 3, 60, 90),     # patient enough to find it
    ([3, 2, 2, 2, 2], 3, 10, 40),                                  # a tie is no improvement
    ([5, 4, 3, 2, 1], 2, 40, None),                                # never stops
    ([1, 2, 3], 1, 0, 10),                                         # the first evaluation was the best
])
def test_find_best_step_on_known_curves(ex, val, patience, best, stop):
    steps = np.arange(len(val)) * 10
    got = ex.find_best_step(steps, np.array(val, dtype=float), patience)
    call = f"find_best_step(steps={steps.tolist()}, val={val}, patience={patience})"
    if not isinstance(got, dict) or not {"best_step", "best_loss", "stop_step"} <= set(got):
        fail(f"{call} must return a dict with best_step, best_loss and stop_step, got {got!r}")
    mine = (got["best_step"], got["stop_step"])
    if mine != (best, stop):
        for variant, what in [(stopping_variant(steps, val, patience + 1), "you stop one evaluation late: stop "
                               "when the count of evaluations without improvement REACHES patience"),
                              (stopping_variant(steps, val, patience - 1), "you stop one evaluation early: the "
                               "count of evaluations without improvement must reach patience, not patience - 1"),
                              (stopping_variant(steps, val, patience, strict=False), "a tie is not an "
                               "improvement: only a strictly lower validation loss resets the count")]:
            if mine == variant and variant != (best, stop):
                fail(f"{call}: got best_step={mine[0]}, stop_step={mine[1]}; expected best_step={best}, "
                     f"stop_step={stop}: {what}")
    if got["best_step"] == int(steps[int(np.argmin(val))]) != best:
        fail(f"{call}: best_step {got['best_step']} is the minimum of the WHOLE curve; early stopping "
             f"only sees the evaluations up to the one where patience runs out (step {stop}), "
             f"so the best it can pick is step {best}")
    if got["best_step"] != best or got["stop_step"] != stop:
        fail(f"{call}: got best_step={got['best_step']}, stop_step={got['stop_step']}; "
             f"expected best_step={best}, stop_step={stop} (an improvement must be strictly lower; "
             f"stop at the patience-th evaluation in a row without one; stop_step None if never)")
    check_close(got["best_loss"], val[steps.tolist().index(best)], f"{call}: best_loss")


# ----------------------------------------------------------------------------- the training log

def test_train_with_validation_log_matches_the_module(ex, small_text, overfit_log):
    chars, train_ids, val_ids = small_text
    log = overfit_log
    keys = {"train_loss", "eval_steps", "train_eval", "val_eval"}
    if not keys <= set(log):
        fail(f"train_with_validation must return a dict with {sorted(keys)}, got {sorted(log)}")
    S = SETTINGS
    want_steps = list(range(0, S["steps"] + 1, S["eval_every"]))
    if list(np.asarray(log["eval_steps"])) != want_steps:
        fail(f"eval_steps should be {want_steps[:4]} ... {want_steps[-1]} (before training, then every "
             f"eval_every={S['eval_every']} steps), got {[int(v) for v in log['eval_steps']][:6]} ...")
    # the same run, done here
    params = rnn.init_params(len(chars), S["hidden_size"], np.random.default_rng(S["seed"]), dtype=np.float32)
    trainer = rnn.Trainer(params, train_ids, batch_size=S["batch_size"], seq_length=S["seq_length"],
                          learning_rate=S["learning_rate"], optimizer="adam")
    losses, tr, va = [], [rnn.evaluate(params, train_ids)["nats"]], [rnn.evaluate(params, val_ids)["nats"]]
    for step in range(1, S["steps"] + 1):
        losses.append(trainer.step())
        if step % S["eval_every"] == 0:
            tr.append(rnn.evaluate(params, train_ids)["nats"])
            va.append(rnn.evaluate(params, val_ids)["nats"])
    hint = ("init_params(vocab_size, hidden_size, np.random.default_rng(seed), dtype=np.float32), "
            "Trainer(..., optimizer='adam'), evaluate(params, ids)['nats'] on the whole texts")
    check_close(log["train_loss"], losses, "train_with_validation: train_loss", rtol=1e-4, hint=hint)
    check_close(log["train_eval"], tr, "train_with_validation: train_eval", rtol=1e-4, hint=hint)
    check_close(log["val_eval"], va, "train_with_validation: val_eval", rtol=1e-4, hint=hint)


def test_detected_point_agrees_with_the_logged_curve(ex, overfit_log):
    log, patience = overfit_log, 3
    steps, val = np.asarray(log["eval_steps"]), np.asarray(log["val_eval"])
    got = ex.find_best_step(steps, val, patience)
    if got["stop_step"] is None:
        fail("this run overfits (validation rises for many evaluations at the end); "
             "find_best_step should stop, got stop_step None")
    b, s = list(steps).index(got["best_step"]), list(steps).index(got["stop_step"])
    if not np.isclose(got["best_loss"], val[b]):
        fail(f"best_loss {got['best_loss']:.4f} is not the logged validation loss at step "
             f"{got['best_step']} ({val[b]:.4f})")
    if not np.isclose(val[b], val[:s + 1].min()) or not np.all(val[:b] > val[b]):
        fail(f"step {got['best_step']} is not where the logged validation curve reached its first minimum "
             f"before stopping: minimum {val[:s + 1].min():.4f} at step {steps[int(np.argmin(val[:s + 1]))]}")
    if s - b != patience or np.any(val[b + 1:s + 1] < val[b]):
        fail(f"with patience {patience}, training stops exactly {patience} evaluations after the last "
             f"improvement: best at step {got['best_step']}, stop at step {got['stop_step']}")
    # the run really overfits: the training text keeps improving while validation gets worse
    if not (log["train_eval"][-1] < log["train_eval"][b] - 0.05 and val[-1] > val[b] + 0.1):
        fail(f"expected an overfitting run: train text {log['train_eval'][b]:.3f} -> {log['train_eval'][-1]:.3f}, "
             f"validation {val[b]:.3f} -> {val[-1]:.3f} after the best step")


# ----------------------------------------------------------------------------- the plot

def test_plot_curves_draws_the_log(ex, overfit_log):
    log = overfit_log
    best = {"best_step": int(log["eval_steps"][5]), "best_loss": float(log["val_eval"][5]), "stop_step": None}
    fig = ex.plot_curves(log, best)
    if not isinstance(fig, Figure):
        fail(f"plot_curves must return a matplotlib Figure, got {type(fig).__name__}")
    lines = {ln.get_label(): ln for ax in fig.axes for ln in ax.get_lines()}
    n = len(log["train_loss"])
    want = {
        "train loss (per step)": (np.arange(1, n + 1), log["train_loss"]),
        "train loss (smoothed)": (np.arange(1, n + 1), ex.smooth(log["train_loss"], 0.95)),
        "train text (evaluated)": (log["eval_steps"], log["train_eval"]),
        "validation": (log["eval_steps"], log["val_eval"]),
    }
    for label, (x, y) in want.items():
        if label not in lines:
            fail(f"plot_curves: no line labelled {label!r}; labels found: {sorted(lines)}")
        check_close(lines[label].get_xdata(), x, f"plot_curves: x data of {label!r}")
        check_close(lines[label].get_ydata(), y, f"plot_curves: y data of {label!r}", rtol=1e-6)
    if "best validation" not in lines or not np.allclose(lines["best validation"].get_xdata(), best["best_step"]):
        fail("plot_curves: draw a vertical line labelled 'best validation' at best['best_step'] (ax.axvline)")
    if "best validation" in {ln.get_label() for ax in ex.plot_curves(log).axes for ln in ax.get_lines()}:
        fail("plot_curves(log) without `best` should not draw the best-validation line")


def small_run(ex, tmp_path, capsys, plot):
    path = tmp_path / "text.txt"
    path.write_text("to be or not to be, that is the question. " * 70, encoding="utf-8")
    return run_main(ex, ["--data", str(path), "--chars", "2500", "--hidden-size", "16", "--steps", "30",
                         "--eval-every", "10", "--plot", str(plot)], capsys)


def test_main_reports_where_validation_stops_improving(ex, tmp_path, capsys):
    needs(ex, *ex.CORE)                                            # main() stops at the first one not written yet
    out = small_run(ex, tmp_path, capsys, "")
    if "validation stops improving at step" not in out:
        fail("main() should report where validation stops improving")


def test_main_with_the_stretch_part_saves_the_figure(ex, tmp_path, capsys):
    needs(ex, *ex.CORE, *ex.STRETCH)
    png = tmp_path / "curves.png"
    out = small_run(ex, tmp_path, capsys, png)
    if "validation stops improving at step" not in out or not png.is_file():
        fail("main() should report where validation stops improving and save the figure to --plot")
    left = sorted(p.name for p in tmp_path.iterdir())
    if png.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n" or left != ["curves.png", "text.txt"]:
        fail("main() should write a complete PNG to --plot and leave no other file behind")


# ----------------------------------------------------------------------------- checks of these tests

@pytest.mark.parametrize("late,strict,words", [(1, True, "one evaluation late"), (-1, True, "one evaluation early"),
                                               (0, False, "a tie is not an improvement")])
def test_early_stopping_mistakes_are_named(late, strict, words):
    def find_best_step(steps, val, patience):
        best, stop = stopping_variant(steps, val, patience + late, strict)
        return {"best_step": best, "best_loss": float(val[list(steps).index(best)]), "stop_step": stop}

    fake = types.SimpleNamespace(find_best_step=find_best_step)
    cases = [([5, 4, 3, 2.5, 2.6, 2.7, 2.4, 2.8, 2.9, 3.0], 2, 30, 50), ([3, 2, 2, 2, 2], 3, 10, 40)]
    messages = [failure_of(test_find_best_step_on_known_curves, fake, *case) for case in cases]
    assert any(m and words in m for m in messages), messages
    right = types.SimpleNamespace(find_best_step=lambda steps, val, patience: dict(
        zip(("best_step", "stop_step"), stopping_variant(steps, val, patience)),
        best_loss=float(min(val[:list(steps).index(stopping_variant(steps, val, patience)[0]) + 1]))))
    assert all(failure_of(test_find_best_step_on_known_curves, right, *case) is None for case in cases)
