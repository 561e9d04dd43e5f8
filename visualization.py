"""Pictures that make a char-RNN's learning visible.

Every helper here takes arrays (or a model's parameters and a text), computes
what it shows with `implementation.py`, and returns a matplotlib Figure. They
never train and never call plt.show(). The numbers behind each figure are kept
on it as ``fig.data`` (a dict of arrays), so you can check them; the data
functions compute the same numbers without drawing anything.

    figures from the training log    loss_curves, gradient_health, training_samples
    figures from a model and a text  hidden_heatmap, next_char_probs, temperature_figure,
                                     neuron_view, feature_neurons, quote_unit, gradient_flow
    the numbers behind the log       load_log, log_arrays, smooth, best_validation
    the RNN against the n-gram       ngram_comparison (figure 9, drawn when the training text is known)
    everything at once               render_all (and the command line below)

The neuron view as a web page lives beside this file, in neuron_page.py
(``--html PATH`` writes it). The numbers behind the text figures live in
analysis.py (no matplotlib there); they are imported here too, so
``visualization.model_on_text``, ``visualization.real_word_share`` and the rest
still work: model_on_text, hidden_states, top_k, similarity_order, words,
real_word_share, temperature_data, text_features, quote_distance,
unit_correlations, rank_units, shifted_feature_correlations, tracking_units,
unit_controls, quote_profile, gradient_flow_data.

Each figure's docstring starts with a one-line caption: what to look for.

Figures are matplotlib Figures made without pyplot, so they never pile up in
pyplot's list of open figures: a notebook shows one when it is the last
expression of a cell (or with ``display(fig)``); elsewhere use
``fig.savefig("name.png")``. Importing this module does not touch the
matplotlib backend; the command line renders everything headless:

    python visualization.py --checkpoint out/best.npz --log out/log.jsonl --out plots/
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import math
import os
import stat
import sys
from pathlib import Path

# The heavy imports. Under `python visualization.py`, Ctrl-C while they load ends the
# script with one line and exit status 130 instead of a traceback from inside a library.
try:
    import numpy as np
    from matplotlib import colormaps, rc_context, ticker
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure

    import checkpoints
    import implementation as rnn
    import neuron_page
    import ngram
    import safeio
    from safeio import atomic_write_bytes
    from analysis import (TABLE_MAX_ENTRIES, gradient_flow_data, hidden_states,  # noqa: F401 (re-exported)
                          loss_by_context_frequency, max_table_chars, model_on_text, per_char_losses,
                          per_step_factor, quote_distance, quote_profile, rank_units, real_word_share,
                          shifted_feature_correlations, similarity_order, temperature_data, text_features,
                          top_k, tracking_units, unit_controls, unit_correlations, words)
    from cli import EXIT_INTERRUPTED, EXIT_USAGE, ArgumentParser, UserError, read_data, setup_numpy
    from data import download
    import runlog
except KeyboardInterrupt:
    if __name__ != "__main__":
        raise
    print("interrupted while starting up; nothing was written", file=sys.stderr)
    sys.exit(130)

LN2 = math.log(2)
ACT_CMAP = "RdBu_r"        # hidden activations: blue -1 ... white 0 ... red +1
PROB_CMAP = "Greens"       # probabilities: white 0 ... dark green 1
MONO = "DejaVu Sans Mono"  # ships with matplotlib, has the ↵ and ␣ glyphs


def _show_char(c: str) -> str:
    """A character as it is drawn under a plot: newline ↵, space ␣, tab ⇥."""
    return {"\n": "↵", " ": "␣", "\t": "⇥", "\r": "␍"}.get(c, c)


def _wrap(text: str, width: int, max_lines: int | None = None) -> str:
    """Break `text` at its newlines (drawn as ↵) and every `width` characters; tabs and
    carriage returns are drawn as ⇥ and ␍ (the fonts have no glyph for the characters themselves)."""
    lines = []
    parts = text.replace("\t", _show_char("\t")).replace("\r", _show_char("\r")).split("\n")
    for i, part in enumerate(parts):
        part = part + ("↵" if i < len(parts) - 1 else "")
        lines.extend([part[j:j + width] for j in range(0, len(part), width)] or [""])
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, width - 1)] + "…"
    return "\n".join(lines)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value, _pos=None) -> str:
    """A log-axis tick label as 10⁻¹⁰ in plain text (mathtext is off in these figures)."""
    return "10" + str(round(math.log10(value))).translate(_SUPERSCRIPT) if value > 0 else ""


def _plain_text(make):
    """Decorator: draw `$` and `_` in texts literally (no mathtext), so any sample text is safe."""
    @functools.wraps(make)
    def wrapper(*args, **kwargs):
        with rc_context({"text.parse_math": False}):
            return make(*args, **kwargs)
    return wrapper


class NotebookFigure(Figure):
    """A plain matplotlib Figure that also shows itself in Jupyter, as a PNG, without pyplot.

    (A pyplot figure would stay open in pyplot's list and show up twice in a notebook.)
    """

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png")
        return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    return NotebookFigure(figsize=(width, height), layout="constrained")


# -----------------------------------------------------------------------------
# The training log (written by train_minimal.py)
# -----------------------------------------------------------------------------

LogError = runlog.LogError          # what the log's reader raises; runlog.py owns the log format


def load_log(path) -> dict:
    """Read a training log and group its entries by "kind" (runlog.load_log).

    Returns {"config": dict, "train": [...], "val": [...], "sample": [...],
    "end": dict or None}, each list in step order; raises LogError (one line)
    for a missing or oversized file, a line that does not match runlog.SCHEMA,
    or a log without any "train" entry.
    """
    return runlog.load_log(path)


def log_arrays(log: dict) -> dict:
    """The numbers of a loaded log as arrays, ready for the plot helpers.

    chars, step, loss            every train entry (loss in nats per character)
    grad_step, grad_norm, clip_frac   train entries that carry gradient statistics;
                                 grad_norm / clip_frac are {parameter: array}
    val_chars, val_step, val_loss     every validation entry
    vocab_size, chars_per_epoch  from the config entry (None if absent)
    """
    tr, va, cfg = log["train"], log["val"], log.get("config", {})
    g = [e for e in tr if isinstance(e.get("grad_norm"), dict)]
    names = [k for k in rnn.PARAM_NAMES if g and k in g[0]["grad_norm"]]
    return {
        "chars": np.array([e["chars"] for e in tr], dtype=float),
        "step": np.array([e["step"] for e in tr], dtype=float),
        "loss": np.array([e["loss"] for e in tr], dtype=float),
        "grad_step": np.array([e["step"] for e in g], dtype=float),
        "grad_norm": {k: np.array([e["grad_norm"].get(k, np.nan) for e in g], dtype=float) for k in names},
        "clip_frac": {k: np.array([(e.get("clip_frac") or {}).get(k, np.nan) for e in g], dtype=float)
                      for k in names},
        "val_chars": np.array([e["chars"] for e in va], dtype=float),
        "val_step": np.array([e["step"] for e in va], dtype=float),
        "val_loss": np.array([e["val_loss"] for e in va], dtype=float),
        "vocab_size": cfg.get("vocab_size"),
        "chars_per_epoch": cfg.get("chars_per_epoch"),
    }


# -----------------------------------------------------------------------------
# 1. Loss curves
# -----------------------------------------------------------------------------

def smooth(values, weight: float | None = None) -> np.ndarray:
    """Exponential moving average, debiased so it does not start at zero.

    s_i = weight * s_{i-1} + (1 - weight) * x_i, divided by (1 - weight^(i+1)).
    weight=None picks one that averages over about 1/30 of the points. Unlike
    min-char-rnn's smooth_loss (0.999, started at ln V) it does not lag
    thousands of steps behind.
    """
    x = np.asarray(values, dtype=float)
    if weight is None:
        weight = min(0.995, max(0.0, 1.0 - 30.0 / max(len(x), 1)))
    out = np.empty_like(x)
    s = 0.0
    for i, v in enumerate(x):
        s = weight * s + (1.0 - weight) * v
        out[i] = s / (1.0 - weight ** (i + 1)) if weight > 0 else v
    return out


def best_validation(val_chars, val_loss, tolerance: float = 0.01) -> dict | None:
    """Where validation stopped improving: {"index", "chars", "loss", "status", "overfitting"}.

    status is "improving" if the last validation loss is the best one, "overfitting"
    if the last one is more than `tolerance` nats above the best (the model has started
    to memorise the training text), else "levelled off". None without validation entries.
    """
    v = np.asarray(val_loss, dtype=float)
    if v.size == 0:
        return None
    i = int(np.nanargmin(v))
    status = ("improving" if i == v.size - 1 else
              "overfitting" if v[-1] > v[i] + tolerance else "levelled off")
    return {"index": i, "chars": float(np.asarray(val_chars, dtype=float)[i]), "loss": float(v[i]),
            "status": status, "overfitting": status == "overfitting"}


@_plain_text
def loss_curves(chars, loss, val_chars=(), val_loss=(), *, vocab_size: int | None = None,
                chars_per_epoch: float | None = None, weight: float | None = None) -> Figure:
    """Caption: the gap between the two curves is overfitting; once validation turns up
    (the marked point), more training only memorises the training text.

    chars, loss: characters seen and training loss (nats/char) at each logged step;
    val_chars, val_loss: the same for validation. The training loss is drawn raw
    (faint) and smoothed (see `smooth`); ln V, the loss of a uniform guess over the
    V characters, is where training starts.
    """
    chars, loss = np.asarray(chars, float), np.asarray(loss, float)
    val_chars, val_loss = np.asarray(val_chars, float), np.asarray(val_loss, float)
    smoothed = smooth(loss, weight)
    fig = _figure(9, 5.2)
    ax = fig.add_subplot()
    ax.plot(chars, loss, color="tab:blue", alpha=0.25, lw=0.8, label="training loss (each logged step)")
    ax.plot(chars, smoothed, color="tab:blue", lw=2, label="training loss (smoothed)")
    best = best_validation(val_chars, val_loss)
    if val_loss.size:
        ax.plot(val_chars, val_loss, "o-", color="tab:orange", ms=3, lw=1.8, label="validation loss (held-out text)")
        ax.axvline(best["chars"], color="tab:red", ls=":", lw=1.2)
        ax.plot([best["chars"]], [best["loss"]], "*", color="tab:red", ms=14, zorder=5,
                label=f"best validation: {best['loss']:.3f} nats = {best['loss'] / LN2:.3f} bits per char")
        if best["overfitting"]:
            ax.axvspan(best["chars"], max(chars.max(), val_chars.max()), color="tab:red", alpha=0.07,
                       label="validation worse than its best: overfitting")
        else:
            note = {"improving": "validation still improving at the end",
                    "levelled off": "validation stopped improving here"}[best["status"]]
            ax.annotate(note, (best["chars"], best["loss"]),
                        xytext=(-10, 28), textcoords="offset points", ha="right", fontsize=9,
                        color="tab:red", arrowprops={"arrowstyle": "->", "color": "tab:red"})
    lnv = math.log(vocab_size) if vocab_size else None
    if lnv is not None:
        ax.axhline(lnv, color="gray", ls="--", lw=1)
        ax.text(0.3, lnv, f"ln V = ln {vocab_size} = {lnv:.2f}: the loss of a uniform guess",
                transform=ax.get_yaxis_transform(), ha="left", va="bottom", fontsize=9, color="dimgray")
    lo = np.nanmin(np.concatenate([smoothed, val_loss, [] if lnv is None else [lnv]])) if loss.size else 0
    hi = max(lnv or 0, np.nanmax(smoothed) if loss.size else 1)      # ln V stays in view, below or above
    pad = 0.08 * (hi - lo if hi > lo else 1)
    ax.set_ylim(max(0.0, lo - 1.5 * pad), hi + 1.5 * pad)
    ax.set_xlabel("characters seen during training")
    ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
    ax.set_ylabel("loss: nats per character (lower is better)")
    right = ax.secondary_yaxis("right", functions=(lambda n: n / LN2, lambda b: b * LN2))
    right.set_ylabel("bits per character")
    if chars_per_epoch:
        top = ax.secondary_xaxis("top", functions=(lambda c: c / chars_per_epoch, lambda e: e * chars_per_epoch))
        top.set_xlabel("epochs (full passes over the training text)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9, bbox_to_anchor=(1.0, 0.9) if lnv else None)
    fig.suptitle("Loss curves: training vs. validation loss", fontweight="bold")
    fig.data = {"chars": chars, "loss": loss, "smoothed": smoothed, "val_chars": val_chars,
                "val_loss": val_loss, "best": best, "ln_v": lnv}
    return fig


# -----------------------------------------------------------------------------
# 2. Gradient health
# -----------------------------------------------------------------------------

@_plain_text
def gradient_health(steps, grad_norms: dict, clip_fracs: dict, clip: float | None = 5.0) -> Figure:
    """Caption: healthy gradients have steady norms; spikes are near-explosions, and a
    large clipped share means the clip at ±5 is doing much of the steering.

    steps: training steps; grad_norms, clip_fracs: {parameter name: array over steps},
    the L2 norm of each gradient before clipping and the fraction of its entries
    that were clipped to [-clip, clip] (clip None or 0: clipping was off).
    """
    steps = np.asarray(steps, float)
    fig = _figure(9, 6.2)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    colors = dict(zip(rnn.PARAM_NAMES, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    for k, v in grad_norms.items():
        v = np.asarray(v, float)
        ax1.plot(steps, np.where(v > 0, v, np.nan), lw=1, color=colors.get(k), label=f"d{k}")
    ax1.set_yscale("log")
    ax1.set_ylabel("gradient norm ‖dW‖ before clipping\n(log scale)")
    ax1.set_title("Size of each parameter's gradient", fontsize=10)
    if grad_norms:
        ax1.legend(ncol=5, fontsize=9, loc="upper right")
    ax1.grid(alpha=0.3)
    any_clipped = False
    for k, v in clip_fracs.items():
        v = 100.0 * np.asarray(v, float)
        any_clipped |= bool(np.nanmax(v, initial=0) > 0)
        ax2.plot(steps, v, lw=1, color=colors.get(k), label=f"d{k}")
    ax2.set_ylabel("entries clipped (%)")
    ax2.set_xlabel("training step")
    if not clip:
        ax2.set_title("Share of gradient entries clipped (clipping was off in this run)", fontsize=10)
    else:
        ax2.set_title(f"Share of gradient entries clipped to [-{clip:g}, {clip:g}]", fontsize=10)
    if clip and steps.size and not any_clipped:
        ax2.set_ylim(-0.5, 5)
        ax2.text(0.5, 0.5, f"no entry was ever clipped: every gradient entry stayed within ±{clip:g}",
                 transform=ax2.transAxes, ha="center", va="center", color="dimgray")
    ax2.grid(alpha=0.3)
    if steps.size == 0:
        ax1.text(0.5, 0.5, "the log has no gradient statistics", transform=ax1.transAxes, ha="center",
                 va="center", color="dimgray")
    fig.suptitle("Gradient health: exploding or vanishing gradients?", fontweight="bold")
    fig.data = {"steps": steps, "grad_norm": {k: np.asarray(v, float) for k, v in grad_norms.items()},
                "clip_frac": {k: np.asarray(v, float) for k, v in clip_fracs.items()}}
    return fig


# -----------------------------------------------------------------------------
# Characters under a plot (figures 3, 4 and 6)
# -----------------------------------------------------------------------------

def _char_ticks(ax, labels, axis="x", fontsize=None):
    n = len(labels)
    fontsize = fontsize or (9 if n <= 70 else 8 if n <= 120 else 6 if n <= 200 else 5)
    getattr(ax, f"set_{axis}ticks")(np.arange(n))
    getattr(ax, f"set_{axis}ticklabels")([_show_char(c) for c in labels], fontsize=fontsize, family=MONO)
    ax.tick_params(axis=axis, length=0, pad=2)


# -----------------------------------------------------------------------------
# 3. Hidden-state heatmap
# -----------------------------------------------------------------------------

@_plain_text
def hidden_heatmap(params: dict, chars, text: str, hprev=None, units=None, sort: bool = True) -> Figure:
    """Caption: look for vertical stripes at spaces and newlines, where many units switch
    together, and for rows that stay on for a whole word or line.

    One row per hidden unit (or per unit in `units`), one column per character of
    `text`: the colour is h_t, the state after reading the character under the column.
    sort=True orders the rows with `similarity_order` (fig.data["units"] gives each
    row's unit); sort=False keeps them in unit order.
    """
    h = hidden_states(params, chars, text, hprev)
    units = np.arange(h.shape[1]) if units is None else np.asarray(units)
    if sort:
        units = units[similarity_order(h[:, units])]
    image = h[:, units].T                              # (units, N) row i is unit units[i]
    n_units, n = image.shape
    fig = _figure(max(8.0, 0.12 * n + 2.2), float(np.clip(2.5 + 0.02 * n_units, 4.0, 8.0)))
    ax = fig.add_subplot()
    im = ax.imshow(image, cmap=ACT_CMAP, vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    _char_ticks(ax, text)
    if n_units <= 40:
        ax.set_yticks(np.arange(n_units), [str(u) for u in units], fontsize=8)
        ax.set_ylabel("hidden unit")
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"the {n_units} hidden units, one per row" +
                      ("\n(units that switch together sit together)" if sort else ""))
    ax.set_xlabel("the text, one character per column (↵ newline, ␣ space)")
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.01, label="activation h (tanh: -1 … +1)")
    fig.suptitle("Hidden state while reading: column t is h_t, the network's memory after "
                 "reading the character below it", fontweight="bold")
    fig.data = {"h": image, "units": units, "text": text}
    return fig


# -----------------------------------------------------------------------------
# 4. Next-character probabilities
# -----------------------------------------------------------------------------

def _default_positions(p_next, entropy, n=3):
    """A confident right guess, the most uncertain moment, and the biggest surprise
    (fewer when the text has fewer positions with a next character)."""
    picks = []
    for cand in (np.argsort(-p_next), np.argsort(-entropy[:-1]), np.argsort(p_next)):
        pick = next((int(i) for i in cand if int(i) not in picks), None)
        if pick is not None:
            picks.append(pick)
    return sorted(picks[:n])


@_plain_text
def next_char_probs(params: dict, chars, text: str, positions=None, k: int = 5, hprev=None) -> Figure:
    """Caption: tall bars are characters the model saw coming; short bars are surprises —
    usually the first letter of a word, where many continuations are possible.

    Top: for each position t, the probability the model gave to text[t+1] after
    reading text[:t+1]. Bottom: the full top-k distribution at a few `positions`
    (default: a confident guess, the most uncertain moment, the biggest surprise).
    """
    run = model_on_text(params, chars, text, hprev)
    n = len(text)
    if n < 2:
        raise ValueError("next_char_probs: need a text of at least 2 characters")
    p_next = run["p_next"]
    positions = _default_positions(p_next, run["entropy"]) if positions is None else [int(p) for p in positions]
    for p in positions:
        if not 0 <= p < n - 1:
            raise ValueError(f"next_char_probs: position {p} outside 0..{n - 2} (it needs a next character)")
    top_ids, top_p = top_k(run["probs"][positions], k)
    P = max(1, len(positions))
    fig = _figure(max(9.0, 0.11 * n + 1.5), 7.5)
    gs = fig.add_gridspec(2, P, height_ratios=[1.1, 1])
    ax = fig.add_subplot(gs[0, :])
    x = np.arange(n - 1)
    ax.bar(x, p_next, width=0.85, color=colormaps["viridis"](0.15 + 0.75 * p_next))
    _char_ticks(ax, text[1:])
    ax.set_xlim(-0.6, n - 1.4)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("probability given to\nthe actual next character")
    ax.set_xlabel("the character that actually came next (↵ newline, ␣ space)")
    mean_nats = float(-np.log(p_next).mean())
    ax.set_title(f"How well the model predicted each character: average {mean_nats:.2f} nats "
                 f"= {mean_nats / LN2:.2f} bits per character on this text", fontsize=10)
    letters = "ABCDEFGHIJ"
    for j, p in enumerate(positions):
        ax.annotate(letters[j % 10], (p, p_next[p]), xytext=(0, 4), textcoords="offset points",
                    ha="center", fontweight="bold", color="tab:red")
    ax.grid(axis="y", alpha=0.3)
    for j, p in enumerate(positions):
        axj = fig.add_subplot(gs[1, j])
        labels = [_show_char(chars[i]) for i in top_ids[j]]
        actual = int(run["ids"][p + 1])
        vals = list(top_p[j])
        colors = ["tab:orange" if i == actual else "tab:gray" for i in top_ids[j]]
        if actual not in top_ids[j]:
            labels.append(_show_char(chars[actual]))
            vals.append(float(run["probs"][p, actual]))
            colors.append("tab:orange")
        yy = np.arange(len(vals))[::-1]
        axj.barh(yy, vals, color=colors)
        axj.set_yticks(yy, [f"'{s}'" for s in labels], family=MONO)
        for tick, c in zip(axj.get_yticklabels(), colors):
            if c == "tab:orange":
                tick.set_color("tab:orange")
                tick.set_fontweight("bold")
        for y, v in zip(yy, vals):
            axj.text(v + 0.02, y, f"{v:.2f}", va="center", fontsize=8)
        axj.set_xlim(0, 1.18)
        ctx = ("…" if p > 11 else "") + "".join(_show_char(c) for c in text[max(0, p - 11):p + 1])
        axj.set_title(f"{letters[j % 10]}: after “{ctx}”\nentropy {run['entropy'][p]:.2f} nats",
                      fontsize=9, family=MONO)
        axj.set_xlabel("probability (orange: what came next)", fontsize=8)
    fig.suptitle("Next-character probabilities", fontweight="bold")
    fig.data = {"p_next": p_next, "positions": positions, "top_ids": top_ids, "top_p": top_p,
                "entropy": run["entropy"], "probs": run["probs"]}
    return fig


# -----------------------------------------------------------------------------
# 5. Temperature
# -----------------------------------------------------------------------------

@_plain_text
def temperature_figure(params: dict, chars, prime: str, temperatures=(0.2, 0.5, 1.0, 1.5),
                       curve_temperatures=(0.1, 0.2, 0.35, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0),
                       n: int = 1000, seed: int = 0, train_text: str | None = None,
                       show_chars: int = 280) -> Figure:
    """Caption: low temperature is safe but repetitive (low entropy, real words), high
    temperature is inventive until it becomes noise (high entropy, made-up words).

    Top: one sample per temperature from the same prime and the same random numbers.
    Bottom: entropy of the sampling distribution and the share of generated words that
    occur in the training text, against temperature (curve_temperatures).
    """
    temperatures = [float(t) for t in temperatures]
    all_t = sorted(set(temperatures) | {float(t) for t in curve_temperatures})
    data = temperature_data(params, chars, prime, all_t, n, seed, train_text)
    P = len(temperatures)
    fig = _figure(max(12.0, 3.6 * P), 7.2)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.25])
    shown = [all_t.index(t) for t in temperatures]
    for ax, i in zip(np.atleast_1d(top.subplots(1, P)), shown):
        ax.axis("off")
        head = f"T = {all_t[i]:g}   entropy {data['entropy'][i]:.2f} nats/char"
        if not np.isnan(data["word_share"][i]):
            head += f"\n{100 * data['word_share'][i]:.0f}% of words are real"
        ax.set_title(head, fontsize=9.5, loc="left")
        ax.text(0.03, 1, _wrap(data["samples"][i][:show_chars], 44, 15), transform=ax.transAxes,
                va="top", ha="left", family=MONO, fontsize=8,
                bbox={"boxstyle": "round,pad=0.5", "fc": "whitesmoke", "ec": "lightgray"})
    ax1, ax2 = bottom.subplots(1, 2)
    ax1.plot(all_t, data["entropy"], "o-", color="tab:purple")
    ax1.set_xlabel("temperature T (the logits are divided by T)")
    ax1.set_ylabel("entropy of softmax(y/T)\n(nats per character)")
    ax1.secondary_yaxis("right", functions=(lambda v: v / LN2, lambda b: b * LN2)).set_ylabel("bits")
    ax1.set_title(f"How uncertain the sampling distribution is (mean over {n} characters)", fontsize=10)
    ax1.grid(alpha=0.3)
    if np.all(np.isnan(data["word_share"])):
        ax2.text(0.5, 0.5, "no training text given:\nreal-word share not computed", ha="center",
                 va="center", transform=ax2.transAxes, color="dimgray")
    else:
        ax2.plot(all_t, 100 * data["word_share"], "o-", color="tab:green")
        ax2.set_ylim(0, 105)
    ax2.set_xlabel("temperature T")
    ax2.set_ylabel("generated words that occur\nin the training text (%)")
    ax2.set_title(f"How many generated words are real (out of {int(np.nanmean(data['n_words']))} on average)"
                  if np.nanmax(data["n_words"], initial=0) > 0 else "How many generated words are real",
                  fontsize=10)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"Sampling temperature: the same model, prime {prime[-30:]!r} and random numbers; "
                 f"the first {show_chars} of {n} sampled characters", fontweight="bold")
    fig.data = {**data, "shown": shown, "prime": prime}
    return fig


# -----------------------------------------------------------------------------
# 6. The blog post's neuron view, and units that track features of the text
# -----------------------------------------------------------------------------

@_plain_text
def neuron_view(params: dict, chars, text: str, unit: int, k: int = 5, width: int = 50,
                hprev=None, note: str | None = None) -> Figure:
    """Caption: follow the colour along the text to see what this one unit remembers,
    and read down the columns to see what the model expects next.

    Karpathy's figure: each character coloured by hidden unit `unit`'s activation
    after reading it (blue -1, white 0, red +1); below each character the model's
    top-k guesses for the next character, darker green for more probable. The text
    wraps every `width` characters; newlines are drawn as ↵. note: a remark for the
    title, such as why this unit was chosen. A vocabulary of fewer than k characters
    shows all of them.
    """
    k = min(k, len(chars))
    run = model_on_text(params, chars, text, hprev)
    H = run["h"].shape[1]
    if not 0 <= unit < H:
        raise ValueError(f"neuron_view: unit {unit} outside 0..{H - 1}")
    act = run["h"][:, unit]
    top_ids, top_p = top_k(run["probs"], k)
    n = len(text)
    W = min(width, n)
    n_lines = -(-n // W)
    rows = n_lines * (k + 2) - 1                                  # k+1 rows per line, one blank between
    act_cmap = colormaps[ACT_CMAP]
    prob_cmap = ListedColormap(colormaps[PROB_CMAP](np.linspace(0, 0.85, 256)))   # keep text readable
    img = np.ones((rows, W, 4))                                   # white background
    fig = _figure(W * 0.21 + 0.8, rows * 0.175 + 1.9)
    gs = fig.add_gridspec(2, 2, height_ratios=[rows * 0.175, 0.12])
    ax = fig.add_subplot(gs[0, :])
    for t in range(n):
        row, col = (t // W) * (k + 2), t % W
        img[row, col] = act_cmap((act[t] + 1) / 2)
        ax.text(col + 0.5, row + 0.5, _show_char(text[t]), ha="center", va="center", fontsize=10,
                family=MONO, fontweight="bold", color="white" if abs(act[t]) > 0.65 else "black")
        for j in range(k):
            img[row + 1 + j, col] = prob_cmap(top_p[t, j])
            ax.text(col + 0.5, row + 1.5 + j, _show_char(chars[top_ids[t, j]]), ha="center", va="center",
                    fontsize=7.5, family=MONO, color="white" if top_p[t, j] > 0.7 else "black")
    ax.imshow(img, aspect="auto", interpolation="nearest", extent=(0, W, rows, 0))
    ax.set_axis_off()
    fig.colorbar(ScalarMappable(Normalize(-1, 1), act_cmap), cax=fig.add_subplot(gs[1, 0]),
                 orientation="horizontal", label=f"activation of unit {unit} after reading the character")
    fig.colorbar(ScalarMappable(Normalize(0, 1), prob_cmap), cax=fig.add_subplot(gs[1, 1]),
                 orientation="horizontal", label=f"probability of each of the top {k} guesses")
    extra = f" ({note})" if note else ""
    fig.suptitle(f"One neuron's view of the text: hidden unit {unit}{extra}\n"
                 f"colour = its activation; below each character, the top {k} guesses for the next one",
                 fontweight="bold")
    fig.data = {"unit": unit, "activation": act, "top_ids": top_ids, "top_p": top_p,
                "top_chars": [[chars[i] for i in row] for row in top_ids]}
    return fig


def _passage(feature, n, width):
    """Start of a `width`-character window where the feature changes, for display."""
    f = np.asarray(feature)
    changes = np.flatnonzero(np.diff(f) != 0)
    if changes.size == 0 or n <= width:
        return 0
    return int(np.clip(changes[0] - width // 4, 0, n - width))


@_plain_text
def feature_neurons(params: dict, chars, text: str, features: dict | None = None, width: int = 90,
                    hprev=None) -> Figure:
    """Caption: a unit whose colour follows the grey bar has learned that feature on its
    own — nobody told the model where lines, words or quotes are.

    Ranks every hidden unit by its correlation with each feature (text_features by
    default) over the whole `text`, and shows the best unit for each: a stretch of text
    coloured by its activation, with the feature drawn underneath in grey.
    """
    h = hidden_states(params, chars, text, hprev)
    features = text_features(text) if features is None else features
    ranked = rank_units(h, features)
    absent = [name for name in features if name not in {x["feature"] for x in ranked}]
    act_cmap = colormaps[ACT_CMAP]
    nrow = max(1, len(ranked))
    fig = _figure(width * 0.125 + 1.2, 1.15 * nrow + 1.4)
    axes = np.atleast_1d(fig.subplots(nrow, 1))
    for ax, item in zip(axes, ranked):
        f = np.asarray(features[item["feature"]], float)
        s = _passage(f, len(text), width)
        seg = slice(s, min(len(text), s + width))
        a = h[seg, item["unit"]]
        fv = f[seg]
        fnorm = (fv - f.min()) / (f.max() - f.min())
        m = len(a)
        img = np.ones((2, m, 4))
        img[0] = act_cmap((a + 1) / 2)
        img[1] = colormaps["Greys"](0.7 * fnorm)
        ax.imshow(img, aspect="auto", interpolation="nearest", extent=(0, m, 2, 0))
        for t, c in enumerate(text[seg]):
            ax.text(t + 0.5, 0.5, _show_char(c), ha="center", va="center", family=MONO, fontsize=8.5,
                    color="white" if abs(a[t]) > 0.65 else "black")
        ax.set_yticks([0.5, 1.5], [f"unit {item['unit']}", "feature"], fontsize=8)
        ax.set_xticks([])
        ax.tick_params(length=0)
        ax.set_title(f"{item['feature']}: best unit {item['unit']}, correlation r = {item['r']:+.2f} "
                     f"(over {len(text)} characters)", fontsize=9.5, loc="left")
    if not ranked:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "none of the features occurs in this text", ha="center", transform=axes[0].transAxes)
    fig.colorbar(ScalarMappable(Normalize(-1, 1), act_cmap), ax=list(axes), location="bottom", shrink=0.35,
                 aspect=40, pad=0.02, label="activation (-1 blue … +1 red); grey = feature value")
    title = "Hidden units that track features of the text"
    if absent:
        title += f"\n(absent from this text, so not shown: {', '.join(absent)})"
    fig.suptitle(title, fontweight="bold")
    fig.data = {"ranked": ranked, "absent": absent, "h": h}
    return fig


@_plain_text
def quote_unit(params: dict, chars, text: str, unit: int | None = None, width: int = 120,
               max_distance: int = 150, hprev=None) -> Figure:
    """Caption: does the unit switch at the opening quote mark and hold its value until the
    closing one (a memory of the quotation), or fade back to its value outside quotes?

    Top: the unit's activation along a passage of `width` characters around the first
    quotation in `text`, quotations shaded. Bottom: its mean activation k characters
    after the opening mark, k = 0..max_distance (analysis.quote_profile), against its
    mean outside quotations. unit: which unit (default: the one whose activation
    correlates most with "inside quotes", analysis.rank_units).
    """
    h = hidden_states(params, chars, text, hprev)
    inside = text_features(text)["inside quotes"]
    H = h.shape[1]
    r = unit_correlations(h, inside)
    if np.all(np.isnan(r)):
        raise ValueError("quote_unit: the text has no quotation marks (or is all one quotation)")
    unit = int(np.nanargmax(np.abs(r))) if unit is None else int(unit)
    if not 0 <= unit < H:
        raise ValueError(f"quote_unit: unit {unit} outside 0..{H - 1}")
    prof = quote_profile(h, text, unit, max_distance)
    start = _passage(inside, len(text), width)
    seg = slice(start, min(len(text), start + width))
    act, shade = prof["activation"][seg], inside[seg]
    fig = _figure(max(9.0, 0.1 * len(act) + 1.5), 7.0)
    ax1, ax2 = fig.subplots(2, 1, height_ratios=[1, 1.1])
    x = np.arange(len(act))
    ax1.fill_between(x, -1.05, 1.05, where=shade > 0, step="mid", color="gold", alpha=0.3,
                     label="inside quotes")
    ax1.plot(x, act, color="tab:purple", lw=1.5, drawstyle="steps-mid", label=f"unit {unit}")
    ax1.axhline(0, color="gray", lw=0.8)
    ax1.set_ylim(-1.05, 1.05)
    ax1.set_xlim(-0.5, len(act) - 0.5)
    _char_ticks(ax1, text[seg])
    ax1.set_ylabel("activation h")
    ax1.set_title(f"Unit {unit} along the text: correlation with \"inside quotes\" r = {r[unit]:+.2f} "
                  f"(over {len(text):,} characters)", fontsize=10, loc="left")
    ax1.legend(loc="upper right", fontsize=8)
    ok = prof["count"] > 0
    ax2.plot(prof["distance"][ok], prof["mean"][ok], "o-", ms=2.5, color="tab:purple",
             label="mean inside quotes, k characters after the opening mark")
    ax2.axhline(prof["mean_outside"], color="tab:gray", ls="--",
                label=f"mean outside quotes: {prof['mean_outside']:+.2f}")
    ax2.set_xlabel("k: characters since the opening quotation mark")
    ax2.set_ylabel(f"mean activation of unit {unit}")
    ax2.set_xlim(-1, (int(np.flatnonzero(ok).max()) if ok.any() else max_distance) + 1)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="best")
    right = ax2.twinx()
    right.bar(prof["distance"], prof["count"], width=1.0, color="lightgray", alpha=0.5, zorder=0)
    right.set_ylabel("positions averaged", color="gray")
    ax2.set_zorder(right.get_zorder() + 1)
    ax2.patch.set_visible(False)
    fig.suptitle("The quote unit: does it remember that a quotation is open?", fontweight="bold")
    fig.data = {**prof, "r": float(r[unit]), "passage_start": start, "passage_activation": act,
                "passage_inside": shade, "correlations": r}
    return fig


# -----------------------------------------------------------------------------
# 7. Samples through training
# -----------------------------------------------------------------------------

def pick_evenly(steps, max_n: int = 8) -> list[int]:
    """Indices of at most max_n entries, spaced evenly on a log scale of step (first and last kept)."""
    steps = np.asarray(steps, float)
    n = len(steps)
    if n <= max_n:
        return list(range(n))
    targets = np.geomspace(max(steps[0], 1.0), max(steps[-1], 1.0), max_n)
    picks = {0, n - 1}
    for tgt in targets:
        free = [i for i in range(n) if i not in picks]
        if len(picks) >= max_n or not free:
            break
        picks.add(min(free, key=lambda i: abs(math.log(max(steps[i], 1.0)) - math.log(tgt))))
    return sorted(picks)


@_plain_text
def training_samples(steps, texts, chars_seen=None, val_loss=None, max_samples: int = 8,
                     width: int = 96, max_lines: int = 4) -> Figure:
    """Caption: watch the model learn in order: character frequencies, then spaces and
    line breaks, then short words, names and punctuation.

    steps, texts: the samples the training run logged (step taken, sampled text);
    chars_seen, val_loss (optional, same length): shown next to each step.
    At most max_samples are shown, spread over the run.
    """
    order = np.argsort(np.asarray(steps, float), kind="stable")
    steps = [int(steps[i]) for i in order]
    texts = [texts[i] for i in order]
    chars_seen = None if chars_seen is None else [chars_seen[i] for i in order]
    val_loss = None if val_loss is None else [val_loss[i] for i in order]
    picks = pick_evenly(steps, max_samples)
    n = max(1, len(picks))
    fig = _figure(9.5, 0.55 + n * (0.24 + 0.17 * max_lines))
    ax = fig.add_subplot()
    ax.set_axis_off()
    if not picks:
        ax.text(0.5, 0.5, "the log has no samples", ha="center", va="center", transform=ax.transAxes)
    for j, i in enumerate(picks):
        y = 1 - j / n
        head = f"step {steps[i]:,}"
        if chars_seen is not None:
            head += f"  ·  {ticker.EngFormatter(sep='')(chars_seen[i])} characters seen"
        if val_loss is not None and val_loss[i] is not None and not np.isnan(val_loss[i]):
            head += f"  ·  validation loss {val_loss[i]:.2f} nats/char"
        ax.text(0, y, head, transform=ax.transAxes, va="top", fontsize=9.5, fontweight="bold", color="tab:blue")
        ax.text(0.01, y - 0.2 / n, _wrap(texts[i], width, max_lines), transform=ax.transAxes, va="top",
                family=MONO, fontsize=8)
    fig.suptitle("Samples through training: the same model at increasing steps", fontweight="bold")
    fig.data = {"steps": [steps[i] for i in picks], "texts": [texts[i] for i in picks]}
    return fig


# -----------------------------------------------------------------------------
# 8. Gradient flow through time
# -----------------------------------------------------------------------------

def _decade_ticks(ax, values, max_ticks=8):
    """Log-axis ticks every 1, 2, 5, 10, 20 or 50 decades, so huge ranges stay readable."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    step = next((s for s in (1, 2, 5, 10, 20, 50, 100) if (hi - lo) / s <= max_ticks), 200)
    ticks = [10.0 ** e for e in range(lo - lo % step, hi + 1, step)]
    ax.yaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(_power_of_ten))
    ax.set_ylim(10.0 ** (lo - 0.3), 10.0 ** (hi + 0.3))


@_plain_text
def gradient_flow(params: dict, chars, text: str, k_max: int = 100, streams: int = 8,
                  init_scale: float = 0.01, seed: int = 0) -> Figure:
    """Caption: the gradient shrinks by a roughly constant factor per step back (a
    straight line on a log scale): that is why a vanilla RNN struggles to learn long-range
    dependencies; training makes the decay slower.

    See gradient_flow_data for what is computed. The y-axis spans the trained curve
    (and the largest value of the other): an untrained network's gradient can fall to
    1e-80 within 100 steps, and an axis down there would flatten the trained curve
    into a line. The initial curve is drawn in full but leaves the axis where it
    falls below it; a note gives where, and how small it gets. fig.data holds every value.
    """
    d = gradient_flow_data(params, chars, text, k_max, streams, init_scale, seed)
    fig = _figure(9, 5.2)
    ax = fig.add_subplot()
    curves = (("trained", "trained model", "-"), ("init", f"at initialisation (scale {init_scale:g})", "--"))
    for key, label, style in curves:
        v = d[key]
        f = per_step_factor(v)
        ax.plot(d["k"], np.where(v > 0, v, np.nan), style, lw=2,
                label=f"{label}: ×{f:.3g} per step back")
    ax.set_yscale("log")
    init = np.asarray(d["init"], float)
    _decade_ticks(ax, np.concatenate([d["trained"], init[init > 0][:1]]))
    bottom = ax.get_ylim()[0]
    below = np.flatnonzero(~(init >= bottom))                         # below the axis, or 0
    if below.size:
        positive = init[init > 0]
        smallest = f"{positive.min():.1e}" if positive.size else "0"
        ax.annotate(f"at initialisation: below the axis from k = {below[0]} on, "
                    f"down to {smallest} at k = {int(np.argmin(np.where(init > 0, init, np.inf)))}",
                    (below[0], bottom), xytext=(8, 14), textcoords="offset points", fontsize=9,
                    color="tab:orange", arrowprops={"arrowstyle": "->", "color": "tab:orange"})
    ax.set_xlabel("k: how many steps back in time")
    ax.set_ylabel("‖∂ loss at the last step / ∂ h k steps earlier‖\n(log scale)")
    ax.set_title(f"Averaged over {d['inputs'].shape[1]} windows of {k_max + 1} characters", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.suptitle("Gradient flow through time: how far back the loss can reach", fontweight="bold")
    fig.data = {"k": d["k"], "trained": d["trained"], "init": d["init"]}
    return fig


# -----------------------------------------------------------------------------
# 9. The RNN against an n-gram, by how familiar the context is
# -----------------------------------------------------------------------------

@_plain_text
def ngram_comparison(labels, count, mean_loss: dict, order: int | None = None) -> Figure:
    """Caption: where the n-gram's context was seen often in training, counting is hard
    to beat; where it was rare or never seen, the model that generalises wins.

    labels: the bins of how often the characters before each target occurred in
    the training text (analysis.FREQUENCY_LABELS); count: (bins,) characters per
    bin; mean_loss: {model name: (bins,) mean nats per character, NaN for an empty
    bin}, e.g. analysis.loss_by_context_frequency(...); order: the n-gram's order.
    """
    labels = [str(x) for x in labels]
    count = np.asarray(count, float)
    means = {k: np.asarray(v, float) for k, v in mean_loss.items()}
    x = np.arange(len(labels))
    fig = _figure(9, 6.2)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    width = 0.8 / max(len(means), 1)
    colors = {"rnn": "tab:blue", "ngram": "tab:orange"}
    names = {"rnn": "RNN", "ngram": f"n-gram (order {order})" if order else "n-gram"}
    for i, (k, v) in enumerate(means.items()):
        ax1.bar(x + (i - (len(means) - 1) / 2) * width, v, width, color=colors.get(k), label=names.get(k, k))
    ax1.set_ylabel("mean loss (nats per character)")
    ax1.secondary_yaxis("right", functions=(lambda n: n / LN2, lambda b: b * LN2)).set_ylabel("bits")
    ax1.grid(alpha=0.3, axis="y")
    if means:
        ax1.legend(fontsize=9)
    share = 100 * count / count.sum() if count.sum() > 0 else np.zeros_like(count)
    ax2.bar(x, share, 0.6, color="gray")
    for xi, s, c in zip(x, share, count):
        ax2.text(xi, s, f"{int(c):,}", ha="center", va="bottom", fontsize=8)
    ax2.set_ylim(0, max(share.max(initial=0) * 1.25, 1))
    ax2.set_ylabel("characters (%)")
    context = f"the {order - 1} characters before it" if order and order > 1 else "its context"
    ax2.set_xlabel(f"how often {context} occurred in the training text")
    ax2.set_xticks(x, labels)
    ax2.grid(alpha=0.3, axis="y")
    fig.suptitle("Where each model wins: loss per character by how familiar the context is",
                 fontweight="bold")
    fig.data = {"labels": labels, "count": count, "mean_loss": means, "order": order}
    return fig


@_plain_text
def memory_horizon(labels, count, closing: dict, opening: dict | None = None, order: int | None = None,
                   closing_sem: dict | None = None, opening_sem: dict | None = None,
                   advantage_sem: dict | None = None) -> Figure:
    """Caption: beyond its last few characters the n-gram cannot see that a quotation
    is open; where the RNN pays less on the closing quote than the n-gram (and more
    than on the control), it remembers; where the two meet, its memory has run out.

    labels: the bins of quotation length in characters (analysis.QUOTE_LABELS);
    count: (bins,) closing quotes per bin; closing: {"rnn": (bins,), "ngram": (bins,)}
    mean nats on the closing quote mark, NaN for an empty bin; opening: the same on
    the opening marks of those quotations (the control: no model can know, at the
    opening mark, how long the quotation will be); *_sem: standard errors, drawn as
    error bars. From analysis.loss_at_quotes: count["closing"], mean["closing"],
    mean["opening"], sem["closing"], sem["opening"]. order: the n-gram's order.
    The lower panel is the difference n-gram minus RNN on each kind of mark: the
    RNN's advantage in nats per mark; advantage_sem: {"closing": (bins,), "opening":
    (bins,)} its standard errors, paired mark by mark (loss_at_quotes'
    gap_sem[kind]["ngram"]), drawn as error bars.
    """
    labels = [str(x) for x in labels]
    count = np.asarray(count, float)
    curves = {"closing": {k: np.asarray(v, float) for k, v in closing.items()},
              "opening": {k: np.asarray(v, float) for k, v in (opening or {}).items()}}
    sems = {"closing": closing_sem or {}, "opening": opening_sem or {}}
    x = np.arange(len(labels))
    fig = _figure(9, 6.6)
    ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1.6, 1])
    colors = {"rnn": "tab:blue", "ngram": "tab:orange"}
    names = {"rnn": "RNN", "ngram": f"n-gram (order {order})" if order else "n-gram"}
    styles = {"closing": ("-", "o", "closing quote"), "opening": ("--", "s", "opening quote (control)")}
    for kind, models in curves.items():
        line, marker, what = styles[kind]
        for k, v in models.items():
            err = sems[kind].get(k)
            ax1.errorbar(x, v, yerr=None if err is None else np.asarray(err, float), fmt=line,
                         marker=marker, color=colors.get(k), capsize=3, lw=2 if kind == "closing" else 1.2,
                         label=f"{names.get(k, k)}: {what}")
    ax1.set_ylabel("mean loss on the mark (nats)")
    ax1.secondary_yaxis("right", functions=(lambda n: n / LN2, lambda b: b * LN2)).set_ylabel("bits")
    ax1.grid(alpha=0.3, axis="y")
    ax1.legend(fontsize=8)
    advantage = {kind: models["ngram"] - models["rnn"] for kind, models in curves.items()
                 if "rnn" in models and "ngram" in models}
    width = 0.8 / max(len(advantage), 1)
    for i, (kind, v) in enumerate(advantage.items()):
        err = (advantage_sem or {}).get(kind)
        ax2.bar(x + (i - (len(advantage) - 1) / 2) * width, v, width, color="tab:green",
                alpha=1.0 if kind == "closing" else 0.4, label=styles[kind][2],
                yerr=None if err is None else np.asarray(err, float), capsize=3)
    ax2.axhline(0, color="black", lw=0.8)
    ax2.set_ylabel("RNN's advantage\n(n-gram − RNN, nats)")
    ax2.set_xlabel("length of the quotation (characters between the marks); quotations per bin in brackets")
    ax2.set_xticks(x, [f"{lab}\n({int(c):,})" for lab, c in zip(labels, count)])
    ax2.grid(alpha=0.3, axis="y")
    if advantage:
        ax2.legend(fontsize=8)
    fig.suptitle("The memory horizon: the loss on a closing quote by how long ago the quotation opened",
                 fontweight="bold")
    fig.data = {"labels": labels, "count": count, "closing": curves["closing"], "opening": curves["opening"],
                "advantage": advantage, "order": order}
    return fig


# -----------------------------------------------------------------------------
# Rendering everything, and the command line
# -----------------------------------------------------------------------------

FIGURE_FILES = ("1_loss_curves.png", "2_gradient_health.png", "3_hidden_heatmap.png",
                "4_next_char_probs.png", "5_temperature.png", "6a_neuron_view.png",
                "6b_feature_neurons.png", "7_training_samples.png", "8_gradient_flow.png")
NGRAM_FIGURE_FILE = "9_ngram_comparison.png"     # drawn when the training text is known
NGRAM_ORDER = 7                                  # the best Kneser-Ney order on tiny Shakespeare

# How much of a text the figures read. The window figures (3, 4, 6a) read a window of
# n_chars; the features (6b) are ranked over FEATURE_CHARS; the temperature figure (5)
# samples TEMPERATURE_CHARS at each temperature; the gradient flow (8) follows the loss
# GRADIENT_FLOW_STEPS back over 8 windows; figure 9 scores the whole text. The text is
# cut to TEXT_MAX_CHARS (the validation part of every known corpus is shorter), and
# figure 9 is drawn only for a training text of at most TRAIN_MAX_CHARS, whose n-gram
# counts it needs (War and Peace's is 2.9 million). A vocabulary so large that a table
# of probabilities for FEATURE_CHARS or TEMPERATURE_CHARS characters would pass
# analysis.TABLE_MAX_ENTRIES (over 419 or 8,388 characters) reads fewer
# (analysis.max_table_chars), so time and memory stay bounded.
FEATURE_CHARS = 20_000
TEMPERATURE_CHARS = 1000
GRADIENT_FLOW_STEPS = 100
MIN_TEXT_CHARS = GRADIENT_FLOW_STEPS + 2
TEXT_MAX_CHARS = 500_000
TRAIN_MAX_CHARS = 4_000_000


def _ngram_figure(params, chars, train_ids, text: str) -> Figure:
    """Figure 9: the RNN against a Kneser-Ney n-gram fitted on the training text's ids, on `text`."""
    counts = ngram.NGram(NGRAM_ORDER).fit(train_ids, len(chars))
    ids = rnn.encode(text, chars)
    d = loss_by_context_frequency(counts.context_counts(ids), per_char_losses(params, counts, ids))
    return ngram_comparison(d["labels"], d["count"], d["mean_loss"], order=NGRAM_ORDER)


def _line_start(text: str) -> int:
    """Where a display window should start: after the first blank line (a new paragraph or
    speaker), else after the first newline, else 0; only the first 5,000 characters are searched."""
    end = min(len(text) // 2, 5000)
    for sep in ("\n\n", "\n"):
        i = text.find(sep, 0, end + len(sep) - 1)                        # an occurrence starting before end
        if i >= 0:
            return i + len(sep)
    return 0


# A PNG is drawn as an RGBA image in memory first (4 bytes per pixel), and Agg draws
# at most 2**16 - 1 pixels along a side.
MAX_IMAGE_BYTES = 1 << 30
MAX_IMAGE_SIDE = (1 << 16) - 1


def image_bytes(width: float, height: float, dpi: float) -> int:
    """Memory needed to draw a figure of width x height inches at `dpi`: 4 bytes per pixel."""
    return 4 * math.ceil(width * dpi) * math.ceil(height * dpi)


def max_dpi(sizes) -> int:
    """The largest dpi at which every figure of `sizes` ((width, height) inches) can be drawn."""
    dpi = min(min(math.sqrt(MAX_IMAGE_BYTES / (4 * w * h)), MAX_IMAGE_SIDE / max(w, h)) for w, h in sizes)
    return max(1, math.floor(dpi) - 1)


def check_dpi(sizes, dpi: float, name: str = "dpi") -> None:
    """UserError (one line) if a figure of `sizes` ((width, height) in inches) cannot be drawn at `dpi`."""
    for w, h in sorted(sizes, key=lambda size: -size[0] * size[1]):      # the largest first
        need = image_bytes(w, h, dpi)
        if need > MAX_IMAGE_BYTES or max(w, h) * dpi > MAX_IMAGE_SIDE:
            raise UserError(f"{name} {dpi:g}: a {w:.1f} x {h:.1f} inch figure would be "
                            f"{math.ceil(w * dpi):,} x {math.ceil(h * dpi):,} pixels and need {need / 2**30:,.1f} GB "
                            f"of memory to draw (limit {MAX_IMAGE_BYTES / 2**30:g} GB, at most "
                            f"{MAX_IMAGE_SIDE:,} pixels a side); use a dpi of at most {max_dpi(sizes)}")


def figure_sizes(n_chars: int, hidden_size: int = 512) -> list[tuple[float, float]]:
    """Upper bounds on the sizes (inches) of the figures render_all draws for a text
    window of n_chars characters: the heatmap, predictions and neuron view grow with it."""
    n = n_chars
    W = min(50, n)
    return [(9, 5.2), (9, 6.2), (max(8.0, 0.12 * n + 2.2), float(np.clip(2.5 + 0.02 * hidden_size, 4, 8))),
            (max(9.0, 0.11 * n + 1.5), 7.5), (14.4, 7.2),
            (W * 0.21 + 0.8, (-(-n // W) * 7 - 1) * 0.175 + 1.9), (12.45, 8.3), (9.5, 7.9), (9, 5.2)]


def save_figure(fig: Figure, path, dpi: float = 100) -> Path:
    """Save `fig` as a PNG at `path`, safely: drawn in memory first, then written with
    safeio.atomic_write_bytes, so Ctrl-C, a full disk or a drawing error never leaves a
    half-written file and a previous file at `path` stays intact until the new one is
    complete. Refuses (UserError) a dpi whose image would not fit in memory."""
    check_dpi([tuple(fig.get_size_inches())], dpi)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def _kind(path) -> str:
    """What stands at `path` (which exists), for an error message: "a file", "a named pipe (FIFO)"..."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link to " + ("nothing" if not os.path.exists(path) else "something that is not a folder")
    return ("a file" if stat.S_ISREG(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a folder")


def check_output_folder(out, names=FIGURE_FILES + (NGRAM_FIGURE_FILE,), what: str = "output folder") -> Path:
    """`out` as a Path, if the figures `names` may be written into it; creates nothing.

    `out` must be a folder (a link to one is fine) or a name not taken yet, and each of
    `names` in it a new or regular file: never a folder, a device, a named pipe or a link,
    which the atomic rename would replace (safeio.check_output_path). UserError (one line) otherwise.
    """
    if os.fspath(out) == "":
        raise UserError(f"the {what} name is empty; give a folder")
    out = Path(out)
    if os.path.lexists(out) and not out.is_dir():
        raise UserError(f"{what} {out} is {_kind(out)}; give a folder (created if needed)")
    if out.is_dir():
        for name in names:
            try:
                safeio.check_output_path(out / name, "figure")
            except safeio.UnsafeOutputError as e:
                raise UserError(f"{what} {out}: {e}") from None
    return out


def _check_text_length(text: str, start: int) -> None:
    """ValueError (one line) unless `text` from `start` holds what the figures read."""
    if len(text) - start < MIN_TEXT_CHARS:
        where = f" after its first line break (character {start})" if start else ""
        raise ValueError(f"the text has {len(text) - start:,} characters{where}; the figures need at least "
                         f"{MIN_TEXT_CHARS} (the gradient-flow figure follows the loss "
                         f"{GRADIENT_FLOW_STEPS} characters back)")


def _pick_unit(params, chars, long_text: str, unit: int | None):
    """(unit, note) for the neuron view: `unit`, or the one that best tracks position in line
    (else the best-tracking unit of any feature, else 0), with a note saying why."""
    if unit is not None:
        return unit, None
    ranked = rank_units(hidden_states(params, chars, long_text), text_features(long_text))
    by_name = {x["feature"]: x for x in ranked}
    best = by_name.get("position in line") or (ranked[0] if ranked else None)
    if best is None:
        return 0, None
    return best["unit"], f"the unit that best tracks {best['feature']}, r = {best['r']:+.2f}"


def _init_scale(config: dict) -> float:
    """The run's init_scale, or the textbook's 0.01 if the stored value makes no sense."""
    s = config.get("init_scale", 0.01)
    ok = not isinstance(s, bool) and isinstance(s, (int, float)) and math.isfinite(s) and s > 0
    return float(s) if ok else 0.01


def _figure_makers(checkpoint: dict, log: dict, text: str, train_text, train_ids, n_chars: int, seed: int,
                   unit, prime) -> list:
    """[(file name, make)]: every figure render_all draws, each made when make() is called;
    figure 9 if train_ids (the training text's ids) are given."""
    params, chars = checkpoint["params"], checkpoint["chars"]
    config = {**log.get("config", {}), **checkpoint["meta"].get("config", {})}
    a = log_arrays(log)
    start = _line_start(text)
    window = text[start:start + n_chars]
    fits = max_table_chars(len(chars))                       # characters per table of probabilities
    long_text = text[:min(FEATURE_CHARS, fits)]
    vocabulary_text = train_text[:TRAIN_MAX_CHARS] if train_text else None
    prime = prime if prime is not None else (window.split("\n", 1)[0][:60] + ("\n" if "\n" in chars else ""))
    unit, note = _pick_unit(params, chars, long_text, unit)
    samples = log["sample"]
    val_at = dict(zip(a["val_step"], a["val_loss"]))
    makers = [
        lambda: loss_curves(a["chars"], a["loss"], a["val_chars"], a["val_loss"],
                            vocab_size=config.get("vocab_size") or len(chars),
                            chars_per_epoch=config.get("chars_per_epoch")),
        lambda: gradient_health(a["grad_step"], a["grad_norm"], a["clip_frac"], config.get("clip", 5.0)),
        lambda: hidden_heatmap(params, chars, window),
        lambda: next_char_probs(params, chars, window),
        lambda: temperature_figure(params, chars, prime, n=min(TEMPERATURE_CHARS, fits), seed=seed,
                                   train_text=vocabulary_text),
        lambda: neuron_view(params, chars, window, unit, note=note),
        lambda: feature_neurons(params, chars, long_text),
        lambda: training_samples([e["step"] for e in samples], [e["text"] for e in samples],
                                 [e.get("chars", np.nan) for e in samples],
                                 [val_at.get(float(e["step"]), np.nan) for e in samples]),
        lambda: gradient_flow(params, chars, text[start:], k_max=GRADIENT_FLOW_STEPS,
                              init_scale=_init_scale(config), seed=seed),
    ]
    named = list(zip(FIGURE_FILES, makers))
    if train_ids is not None:                                 # the count model needs the training text
        named.append((NGRAM_FIGURE_FILE, lambda: _ngram_figure(params, chars, train_ids, text)))
    return named


def render_all(checkpoint: dict, log: dict, text: str, out, train_text: str | None = None,
               n_chars: int = 100, seed: int = 0, dpi: int = 100, unit: int | None = None,
               prime: str | None = None, report=None) -> list[Path]:
    """Draw every figure and save it as a PNG in `out`; returns the paths written.

    checkpoint: checkpoints.load_checkpoint's dict; log: load_log's dict; text: the
    text the model reads: its first TEXT_MAX_CHARS characters are used, at least
    MIN_TEXT_CHARS after the first line break (features are ranked over FEATURE_CHARS of
    it, the other text figures use a window of n_chars starting at a line);
    train_text: the training text (optional): the real-word share takes its words (from
    its first TRAIN_MAX_CHARS characters) and figure 9 its n-gram (if it is no longer).
    Everything is checked before anything is written; each file is written with
    save_figure (never half-written); report(path) is called after each one.
    """
    params, chars = checkpoint["params"], checkpoint["chars"]
    H = params["Whh"].shape[0]
    if unit is not None and not 0 <= unit < H:
        raise ValueError(f"unit {unit}: the model has {H} hidden units, numbered 0..{H - 1}")
    if n_chars > max_table_chars(len(chars)):
        raise ValueError(f"a window of {n_chars:,} characters: with a vocabulary of {len(chars):,} characters the "
                         f"figures read at most {max_table_chars(len(chars)):,} at a time")
    text = text[:TEXT_MAX_CHARS]
    start = _line_start(text)
    _check_text_length(text, start)
    rnn.encode(text, chars)                  # ValueError naming a character outside the vocabulary, if any
    train_ids = rnn.encode(train_text, chars) if train_text and len(train_text) <= TRAIN_MAX_CHARS else None
    check_dpi(figure_sizes(min(n_chars, len(text) - start), H), dpi)
    out = check_output_folder(out)
    named = _figure_makers(checkpoint, log, text, train_text, train_ids, n_chars, seed, unit, prime)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in named:
        written.append(save_figure(make(), out / name, dpi))
        if report is not None:
            report(written[-1])
    return written


# The text the figures read. A checkpoint or a log is someone else's file: the training
# text its config names is read only if it is one of the project's known corpora
# (data.download.known_corpus), and then from the project's data folder, never from the
# stored path. Files are read by cli.read_data, up to MAX_TEXT_BYTES.

MAX_TEXT_BYTES = 64_000_000


def _one_line(e: BaseException) -> str:
    """An error message on one line: its lines joined with "; "."""
    return "; ".join(" ".join(line.split()) for line in str(e).splitlines() if line.strip())


def _verified_copy(stored: str, corpus) -> Path | None:
    """`stored` itself if it is a file holding exactly `corpus` (its recorded size and
    sha256), else None. A file with the corpus's checksum is the public corpus, wherever
    it lies, so reading it reveals nothing; anything else is not opened beyond a stat."""
    path = Path(stored)
    try:
        if not path.is_file() or path.stat().st_size != corpus.size:
            return None
        return path if hashlib.sha256(path.read_bytes()).hexdigest() == corpus.sha256 else None
    except OSError:
        return None


def _val_fraction(config: dict) -> float:
    vf = config.get("val_fraction", 0.1)
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not (math.isfinite(vf) and 0 <= vf < 1):
        raise UserError(f"the run's config has val_fraction={vf!r}, not a number in [0, 1)")
    return float(vf)


def _resolve_text(args, checkpoint, log, say=print):
    """(text for the figures, training text or None, description).

    --text FILE is read as it is. --data FILE is the run's training text: it is split
    like train_minimal.py splits it (rnn.train_val_split with the run's val_fraction);
    its validation part is the text (unless --text is given) and its training part
    the vocabulary for the real-word share. Without either, the config's training
    text is used only if it is a known corpus (data.download.known_corpus), and `say`
    tells so. Files are read by cli.read_data (one line for a missing, empty, binary or
    oversized file; at most MAX_TEXT_BYTES).
    """
    config = {**log.get("config", {}), **checkpoint["meta"].get("config", {})}
    stored = config.get("data")
    data_path = None
    if args.data is not None:
        try:
            data_path = download.ensure_data_file(args.data, progress=False)
        except download.DownloadError as e:
            raise UserError(f"--data: {_one_line(e)}") from None
        what = "--data"
    elif download.known_corpus(stored) is not None:
        corpus = download.known_corpus(stored)
        data_path = _verified_copy(stored, corpus)
        if data_path is None:
            try:
                data_path = download.ensure_corpus(corpus.name, data_dir=download.DATA_DIR, progress=False)
            except download.DownloadError as e:
                raise UserError(f"the run's training text {corpus.filename}: {_one_line(e)}") from None
        what = "the run's training text"
        say(f"training text: {data_path}, the known corpus {corpus.name} that the run's config names "
            f"({stored!r}); pass --data FILE to use another file")
    elif not args.text:
        where = (f"the run's config names {stored!r} as its training text, which is not one of the known "
                 f"corpora ({', '.join('data/' + c.filename for c in download.CORPORA.values())}) and is "
                 f"not read from a stored path" if stored else
                 "the checkpoint and log do not name their training text")
        raise UserError(f"{where}; pass --text FILE (a text in the model's vocabulary) "
                        "or --data FILE (the run's training text)")
    train_text = val_text = full = None
    if data_path is not None:
        full, _ = read_data(data_path, flag=what, max_bytes=MAX_TEXT_BYTES)
        train_text, val_text = rnn.train_val_split(full, _val_fraction(config))   # strings slice like ids
    if args.text:
        if data_path is None:
            say("real-word share: not computed (pass --data FILE, the run's training text, for it)")
        return read_data(args.text, flag="--text", max_bytes=MAX_TEXT_BYTES)[0], train_text, str(args.text)
    if len(val_text) < 500:                  # no (or a tiny) validation split: read the training text
        return full, train_text, f"{data_path} (no validation part; the training text)"
    return val_text, train_text, f"{data_path} (validation part, last {len(val_text):,} characters)"


# -----------------------------------------------------------------------------
# The command line
# -----------------------------------------------------------------------------

MAX_CHARS = 1000


def _whole_number(low: int, high: int | None = None):
    """An argparse type: a whole number in [low, high]; argparse names the flag in the error
    ("error: argument --dpi: must be at least 10, got 3")."""
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {raw!r}") from None
        if value < low or (high is not None and value > high):
            span = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {span}, got {value}")
        return value
    return parse


def _non_empty(what: str):
    """An argparse type: any string but an empty one (which would mean "here" for a path)."""
    def parse(raw: str) -> str:
        if not raw:
            raise argparse.ArgumentTypeError(f"needs {what}, got an empty string")
        return raw
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        description="Render every figure of a trained char-RNN to PNG files (headless).",
        epilog="example: python visualization.py --checkpoint out/best.npz --log out/log.jsonl --out plots/")
    g = p.add_argument_group("inputs")
    g.add_argument("--checkpoint", default="out/best.npz", metavar="PATH",
                   type=_non_empty("a file path"),
                   help="checkpoint written by train_minimal.py (default: %(default)s)")
    g.add_argument("--log", default="out/log.jsonl", metavar="PATH", type=_non_empty("a file path"),
                   help="training log (JSON lines) written by train_minimal.py (default: %(default)s)")
    g.add_argument("--text", default=None, metavar="PATH", type=_non_empty("a file path"),
                   help="text file the model reads for the text figures, read as it is, at most "
                        f"{MAX_TEXT_BYTES // 1_000_000} MB; the figures use its first {TEXT_MAX_CHARS:,} "
                        "characters (default: the validation part of the training text, see --data)")
    g.add_argument("--data", default=None, metavar="PATH", type=_non_empty("a file path"),
                   help="the run's training text: split like train_minimal.py does, its validation part is "
                        "read (unless --text is given) and its training part gives the real-word share "
                        f"and, up to {TRAIN_MAX_CHARS:,} characters, figure 9's n-gram; at most "
                        f"{MAX_TEXT_BYTES // 1_000_000} MB (default: the run's config, only if it names a "
                        "known corpus such as data/tiny_shakespeare.txt)")
    g = p.add_argument_group("figures")
    g.add_argument("--chars", type=_whole_number(20, MAX_CHARS), default=100, metavar="N",
                   help="length of the text window for the heatmap, predictions and neuron view, "
                        f"20 to {MAX_CHARS}, and at most {TABLE_MAX_ENTRIES:,} / the vocabulary size "
                        "(default: %(default)s)")
    g.add_argument("--unit", type=_whole_number(0), default=None, metavar="I",
                   help="hidden unit for the neuron view, 0 to H-1 (default: the unit that best tracks "
                        "position in line)")
    g.add_argument("--prime", default=None, metavar="TEXT", type=_non_empty("at least one character"),
                   help="prime for the temperature samples, in the model's vocabulary, at most 1000 characters "
                        "(default: the first line of the text window)")
    g.add_argument("--seed", type=_whole_number(0, 2**63 - 1), default=0, metavar="N",
                   help="seed (>= 0) for the temperature samples and the initial weights in the gradient-flow "
                        "plot (default: %(default)s)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="plots", metavar="DIR", type=_non_empty("a folder name"),
                   help="folder for the PNG files, created if needed (default: %(default)s)")
    g.add_argument("--dpi", type=_whole_number(10), default=100, metavar="N",
                   help="resolution of the PNG files: at least 10, and small enough that the largest figure "
                        f"fits in {MAX_IMAGE_BYTES >> 30} GB of memory (default: %(default)s)")
    g.add_argument("--html", default=None, metavar="PATH", type=_non_empty("a file path"),
                   help="also write the neuron view as one self-contained web page (opens offline): pick any "
                        "unit, rest the pointer on a character for the next-character guesses "
                        f"(the first {neuron_page.MAX_CHARS:,} characters of the text, from where the window "
                        "starts); a new or regular file in an existing folder (or in --out)")
    return p


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 2 bad input, 130 Ctrl-C)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("error: interrupted; the figures written so far are complete, the one being drawn was "
              "not written (an earlier file of that name is intact)", file=sys.stderr)
        return EXIT_INTERRUPTED


def _check_page_path(args, out: Path) -> Path:
    """--html's path, checked before any work: a new or regular file (never a device, a named
    pipe, a link or a folder), in a folder that exists or is --out, and none of the input files."""
    try:
        page = safeio.check_output_path(args.html, "web page")
    except safeio.UnsafeOutputError as e:
        raise UserError(f"--html: {e}") from None
    if not page.parent.is_dir() and os.path.abspath(page.parent) != os.path.abspath(out):
        raise UserError(f"--html {args.html}: the folder {page.parent} does not exist (or is not a folder)")
    if page.exists():
        for flag in ("checkpoint", "log", "text", "data"):
            given = getattr(args, flag)
            if given is not None and os.path.exists(given) and os.path.samefile(page, given):
                raise UserError(f"--html {args.html} is the --{flag} file; give another name for the web page")
    return page


def _check_model(args, checkpoint: dict) -> None:
    """UserError (one line) for a --unit, --chars or --prime the model cannot take."""
    chars, H = checkpoint["chars"], checkpoint["params"]["Whh"].shape[0]
    if args.unit is not None and args.unit >= H:
        raise UserError(f"--unit {args.unit}: the model has {H} hidden units, numbered 0..{H - 1}")
    limit = max_table_chars(len(chars))
    if args.chars > limit:
        raise UserError(f"--chars {args.chars}: with a vocabulary of {len(chars):,} characters the text figures "
                        f"read at most {limit:,} characters at a time (characters x vocabulary is at most "
                        f"{TABLE_MAX_ENTRIES:,} probabilities); pass --chars {limit} or fewer")
    if args.prime is not None:
        try:
            rnn.encode(args.prime, chars)
        except ValueError as e:
            raise UserError(f"--prime: {_one_line(e).removeprefix('encode: ')}") from None


def _say_what_is_read(text: str, train_text: str | None, source: str) -> None:
    print(f"text: {source}", flush=True)
    if len(text) > TEXT_MAX_CHARS:
        print(f"text: the figures read its first {TEXT_MAX_CHARS:,} of {len(text):,} characters", flush=True)
    if train_text and len(train_text) > TRAIN_MAX_CHARS:
        print(f"figure 9 not drawn: the training text has {len(train_text):,} characters, more than the "
              f"{TRAIN_MAX_CHARS:,} its n-gram is counted on here", flush=True)


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(None if argv is None else [str(a) for a in argv])
    try:
        setup_numpy()                        # BLAS threads (1 unless RNN_THREADS), memory reuse
        check_dpi(figure_sizes(args.chars), args.dpi, "--dpi")
        if args.prime is not None and len(args.prime) > 1000:
            raise UserError(f"--prime is {len(args.prime):,} characters; at most 1000")
        out = check_output_folder(args.out, what="--out")             # every output checked before any work
        page = _check_page_path(args, out) if args.html is not None else None
        print("settings: " + ", ".join(f"{k}={v}" for k, v in vars(args).items()), flush=True)
        checkpoint = checkpoints.load_checkpoint(args.checkpoint)
        _check_model(args, checkpoint)
        log = load_log(args.log)
        text, train_text, source = _resolve_text(args, checkpoint, log, say=lambda m: print(m, flush=True))
        _say_what_is_read(text, train_text, source)
        render_all(checkpoint, log, text, out, train_text, args.chars, args.seed, args.dpi, args.unit,
                   args.prime, report=lambda path: print(f"wrote {path}", flush=True))
        if page is not None:
            start = _line_start(text)
            page = neuron_page.write_neuron_page(page, checkpoint["params"], checkpoint["chars"],
                                                 text[start:start + neuron_page.MAX_CHARS])
            print(f"wrote {page}", flush=True)
    except (ValueError, OSError, download.DownloadError) as e:   # UserError, CheckpointError, LogError too
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")                    # headless; the helpers themselves never pick a backend
    sys.exit(main())
