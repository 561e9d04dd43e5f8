"""Pictures that make a char-RNN's learning visible.

Every helper here takes arrays (or a model's parameters and a text), computes
what it shows with `implementation.py`, and returns a matplotlib Figure. They
never train and never call plt.show(). The numbers behind each figure are kept
on it as ``fig.data`` (a dict of arrays), so you can check them; the data
functions compute the same numbers without drawing anything.

    figures from the training log    loss_curves, gradient_health, training_samples
    figures from a model and a text  hidden_heatmap, next_char_probs, temperature_figure,
                                     neuron_view, feature_neurons, gradient_flow
    the numbers behind them          load_log, log_arrays, smooth, best_validation,
                                     model_on_text, top_k, temperature_data, text_features,
                                     unit_correlations, rank_units, gradient_flow_data
    everything at once               render_all (and the command line below)

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
import io
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
from matplotlib import colormaps, rc_context, ticker
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure

import implementation as rnn
from cli import limit_threads

LN2 = math.log(2)
ACT_CMAP = "RdBu_r"        # hidden activations: blue -1 ... white 0 ... red +1
PROB_CMAP = "Greens"       # probabilities: white 0 ... dark green 1
MONO = "DejaVu Sans Mono"  # ships with matplotlib, has the ↵ and ␣ glyphs


def _show_char(c: str) -> str:
    """A character as it is drawn under a plot: newline ↵, space ␣, tab ⇥."""
    return {"\n": "↵", " ": "␣", "\t": "⇥", "\r": "␍"}.get(c, c)


def _wrap(text: str, width: int, max_lines: int | None = None) -> str:
    """Break `text` at its newlines (drawn as ↵) and every `width` characters."""
    lines = []
    parts = text.split("\n")
    for i, part in enumerate(parts):
        part = part + ("↵" if i < len(parts) - 1 else "")
        lines.extend([part[j:j + width] for j in range(0, len(part), width)] or [""])
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, width - 1)] + "…"
    return "\n".join(lines)


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

class LogError(ValueError):
    """A training log that cannot be used (missing, not JSON lines, no training entries)."""


_REQUIRED = {"train": ("step", "chars", "loss"), "val": ("step", "chars", "val_loss"),
             "sample": ("step", "text")}


def load_log(path) -> dict:
    """Read a JSON-lines training log and group its entries by "kind".

    Returns {"config": dict, "train": [...], "val": [...], "sample": [...],
    "end": dict or None}, each list in step order. Raises LogError with a
    one-line reason for a missing file, a line that is not a JSON object with a
    "kind", an entry missing a field a plot needs, or a log without any "train"
    entry. If a run was resumed from an earlier checkpoint, its steps repeat:
    the later entries replace the earlier ones from that step on.
    """
    path = Path(path)
    if not path.is_file():
        raise LogError(f"training log not found: {path}" if not path.exists()
                       else f"training log path is not a file: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LogError(f"{path}: cannot read the training log ({e})") from None
    log = {"config": {}, "train": [], "val": [], "sample": [], "end": None}
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise LogError(f"{path}, line {n}: not valid JSON ({e.msg}); "
                           "is this a training log (a truncated last line after a crash?)") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
            raise LogError(f"{path}, line {n}: expected a JSON object with a \"kind\" field")
        kind = entry["kind"]
        for key in _REQUIRED.get(kind, ()):
            if key not in entry:
                raise LogError(f"{path}, line {n}: a {kind!r} entry needs a {key!r} field")
        if kind == "config":
            if not log["config"]:
                log["config"] = entry                # a resumed run repeats the same settings
        elif kind == "end":
            log["end"] = entry
        elif kind in ("train", "val", "sample"):
            entries = log[kind]
            while entries and entries[-1]["step"] >= entry["step"]:
                entries.pop()                        # resumed from an earlier checkpoint: replay wins
            entries.append(entry)
    if not log["train"]:
        raise LogError(f"{path}: no \"train\" entries; is this the log.jsonl that train_minimal.py writes?")
    return log


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
    lo = np.nanmin(np.concatenate([smoothed, val_loss])) if loss.size else 0
    hi = max(lnv or 0, np.nanmax(smoothed) if loss.size else 1)
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
# The model reading a text (shared by figures 3, 4 and 6)
# -----------------------------------------------------------------------------

def model_on_text(params: dict, chars, text: str, hprev=None) -> dict:
    """Run the model over `text` once, from hprev (zeros by default), with implementation.forward.

    Returns, for the N characters of the text:
        ids     (N,)    character ids
        h       (N,H)   h[t]: hidden state after reading text[t]
        logp    (N,V)   logp[t]: log-probabilities of the character after text[t]
        probs   (N,V)   exp(logp)
        entropy (N,)    entropy of probs[t] in nats
        p_next  (N-1,)  probs[t, ids[t+1]]: the probability given to the character that came next
    """
    ids = rnn.encode(text, chars)
    if ids.size == 0:
        raise ValueError("model_on_text: the text is empty")
    hs, logp = rnn.forward(params, ids[:, None], hprev)      # (N+1,H,1), (N,V,1)
    logp = logp[:, :, 0].astype(np.float64)                   # (N,V)
    probs = np.exp(logp)
    return {"text": text, "ids": ids, "h": hs[1:, :, 0], "logp": logp, "probs": probs,
            "entropy": -(probs * logp).sum(axis=1),
            "p_next": probs[np.arange(len(ids) - 1), ids[1:]]}


def _char_ticks(ax, labels, axis="x", fontsize=None):
    n = len(labels)
    fontsize = fontsize or (9 if n <= 70 else 8 if n <= 120 else 6 if n <= 200 else 5)
    getattr(ax, f"set_{axis}ticks")(np.arange(n))
    getattr(ax, f"set_{axis}ticklabels")([_show_char(c) for c in labels], fontsize=fontsize, family=MONO)
    ax.tick_params(axis=axis, length=0, pad=2)


# -----------------------------------------------------------------------------
# 3. Hidden-state heatmap
# -----------------------------------------------------------------------------

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


@_plain_text
def hidden_heatmap(params: dict, chars, text: str, hprev=None, units=None, sort: bool = True) -> Figure:
    """Caption: look for vertical stripes at spaces and newlines, where many units switch
    together, and for rows that stay on for a whole word or line.

    One row per hidden unit (or per unit in `units`), one column per character of
    `text`: the colour is h_t, the state after reading the character under the column.
    sort=True orders the rows with `similarity_order` (fig.data["units"] gives each
    row's unit); sort=False keeps them in unit order.
    """
    run = model_on_text(params, chars, text, hprev)
    units = np.arange(run["h"].shape[1]) if units is None else np.asarray(units)
    if sort:
        units = units[similarity_order(run["h"][:, units])]
    image = run["h"][:, units].T                              # (units, N) row i is unit units[i]
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
    """A confident right guess, the most uncertain moment, and the biggest surprise."""
    picks = []
    for cand in (np.argsort(-p_next), np.argsort(-entropy[:-1]), np.argsort(p_next)):
        picks.append(next(int(i) for i in cand if int(i) not in picks))
    return sorted(picks[:n])


def top_k(probs, k: int = 5):
    """(indices, values) of the k largest entries of each row of probs (..., V), largest first."""
    probs = np.asarray(probs)
    idx = np.argsort(-probs, axis=-1, kind="stable")[..., :k]
    return idx, np.take_along_axis(probs, idx, axis=-1)


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

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def words(text: str) -> list[str]:
    """The words of a text (runs of letters, with inner apostrophes), lower-cased."""
    return [w.lower() for w in _WORD.findall(text)]


def real_word_share(sample: str, vocabulary: set) -> tuple[float, int]:
    """(share of the sample's words found in `vocabulary`, number of words counted).

    The last word is left out if the sample stops in the middle of it.
    """
    ws = words(sample)
    if ws and sample and sample[-1].isalpha():
        ws = ws[:-1]
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
        _, logp = rnn.forward(params, rnn.encode(prime + s[:-1], chars)[:, None],
                              np.zeros((H, 1), params["Whh"].dtype))
        ent = []
        for lp in logp[len(prime) - 1:, :, 0]:
            q = rnn.sample_probs(lp, T)                                   # softmax(y / T)
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
    title, such as why this unit was chosen.
    """
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


def text_features(text: str) -> dict:
    """Simple features of each position t of `text`, as seen after reading text[t].

    inside quotes        1 between an opening and a closing " (or “ ”), else 0
    inside brackets      1 inside ( ), [ ] or { } (nested counts once), else 0
    position in line     characters since the last newline (0 for a line's first character)
    after a newline      1 if text[t] is a newline (the next character starts a line)
    inside a word        1 if text[t] is a letter
    """
    n = len(text)
    quotes, brackets, pos, newline, letter = (np.zeros(n) for _ in range(5))
    inside, depth, col = False, 0, 0
    for t, c in enumerate(text):
        if c == '"':
            inside = not inside
        elif c == "“":
            inside = True
        elif c == "”":
            inside = False
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        quotes[t], brackets[t], pos[t] = inside, depth > 0 or c in ")]}", col
        newline[t], letter[t] = c == "\n", c.isalpha()
        col = 0 if c == "\n" else col + 1
    return {"inside quotes": quotes, "inside brackets": brackets, "position in line": pos,
            "after a newline": newline, "inside a word": letter}


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
    run = model_on_text(params, chars, text, hprev)
    features = text_features(text) if features is None else features
    ranked = rank_units(run["h"], features)
    absent = [name for name in features if name not in {x["feature"] for x in ranked}]
    act_cmap = colormaps[ACT_CMAP]
    nrow = max(1, len(ranked))
    fig = _figure(width * 0.125 + 1.2, 1.15 * nrow + 1.4)
    axes = np.atleast_1d(fig.subplots(nrow, 1))
    for ax, item in zip(axes, ranked):
        f = np.asarray(features[item["feature"]], float)
        s = _passage(f, len(text), width)
        seg = slice(s, min(len(text), s + width))
        a = run["h"][seg, item["unit"]]
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
    fig.data = {"ranked": ranked, "absent": absent, "h": run["h"]}
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

def gradient_flow_data(params: dict, chars, text: str, k_max: int = 100, streams: int = 8,
                       init_scale: float = 0.01, seed: int = 0) -> dict:
    """||d loss at the last step / d h k steps earlier|| for k = 0..k_max, trained and at init.

    Uses implementation.hidden_grad_norms on up to `streams` consecutive windows of
    k_max + 1 characters of `text` (averaged over them), in float64 so tiny norms do
    not underflow. "init" is implementation.init_params with the same vocabulary and
    hidden size, `init_scale`, and np.random.default_rng(seed).
    """
    ids = rnn.encode(text, chars)
    T = k_max + 1
    B = min(streams, (len(ids) - 1) // T)
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
    ax.yaxis.set_major_formatter(ticker.LogFormatterSciNotation())
    ax.set_ylim(10.0 ** (lo - 0.3), 10.0 ** (hi + 0.3))


def _per_step_factor(norms):
    v = np.asarray(norms, float)
    ok = np.flatnonzero(v > 0)
    if ok.size < 2:
        return float("nan")
    return float((v[ok[-1]] / v[ok[0]]) ** (1.0 / (ok[-1] - ok[0])))


@_plain_text
def gradient_flow(params: dict, chars, text: str, k_max: int = 100, streams: int = 8,
                  init_scale: float = 0.01, seed: int = 0) -> Figure:
    """Caption: the gradient shrinks by a roughly constant factor per step back (a
    straight line on a log scale): that is why a vanilla RNN struggles to learn long-range
    dependencies; training makes the decay slower.

    See gradient_flow_data for what is computed.
    """
    d = gradient_flow_data(params, chars, text, k_max, streams, init_scale, seed)
    fig = _figure(9, 5.2)
    ax = fig.add_subplot()
    curves = (("trained", "trained model", "-"), ("init", f"at initialisation (scale {init_scale:g})", "--"))
    for key, label, style in curves:
        v = d[key]
        f = _per_step_factor(v)
        ax.plot(d["k"], np.where(v > 0, v, np.nan), style, lw=2,
                label=f"{label}: ×{f:.3g} per step back")
    ax.set_yscale("log")
    _decade_ticks(ax, np.concatenate([d["trained"], d["init"]]))
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


def _line_start(text: str) -> int:
    """Where a display window should start: after the first blank line (a new paragraph or
    speaker), else after the first newline, else 0."""
    for sep in ("\n\n", "\n"):
        i = text.find(sep)
        if 0 <= i < min(len(text) // 2, 5000):
            return i + len(sep)
    return 0


def render_all(checkpoint: dict, log: dict, text: str, out, train_text: str | None = None,
               n_chars: int = 100, seed: int = 0, dpi: int = 100, unit: int | None = None,
               prime: str | None = None) -> list[Path]:
    """Draw every figure and save it as a PNG in `out`; returns the paths written.

    checkpoint: implementation.load_checkpoint's dict; log: load_log's dict; text: the
    text the model reads (features are ranked over up to 20,000 characters of it, the
    other text figures use a window of n_chars starting at a line); train_text: the
    training text, for the real-word share (optional).
    """
    params, chars = checkpoint["params"], checkpoint["chars"]
    H = params["Whh"].shape[0]
    if unit is not None and not 0 <= unit < H:
        raise ValueError(f"unit {unit}: the model has {H} hidden units, numbered 0..{H - 1}")
    config = {**log.get("config", {}), **checkpoint["meta"].get("config", {})}
    a = log_arrays(log)
    start = _line_start(text)
    window = text[start:start + n_chars]
    if len(window) < 2:
        raise ValueError(f"the text has only {len(text)} characters; the figures need more")
    long_text = text[:20000]
    prime = prime if prime is not None else (window.split("\n", 1)[0][:60] + "\n")
    ranked = rank_units(model_on_text(params, chars, long_text)["h"], text_features(long_text))
    if unit is None:
        by_name = {x["feature"]: x for x in ranked}
        best = by_name.get("position in line") or (ranked[0] if ranked else None)
        unit = best["unit"] if best else 0
        note = f"the unit that best tracks {best['feature']}, r = {best['r']:+.2f}" if best else None
    else:
        note = None
    samples = log["sample"]
    val_at = dict(zip(a["val_step"], a["val_loss"]))
    figures = [
        lambda: loss_curves(a["chars"], a["loss"], a["val_chars"], a["val_loss"],
                            vocab_size=config.get("vocab_size") or len(chars),
                            chars_per_epoch=config.get("chars_per_epoch")),
        lambda: gradient_health(a["grad_step"], a["grad_norm"], a["clip_frac"], config.get("clip", 5.0)),
        lambda: hidden_heatmap(params, chars, window),
        lambda: next_char_probs(params, chars, window),
        lambda: temperature_figure(params, chars, prime, seed=seed, train_text=train_text),
        lambda: neuron_view(params, chars, window, unit, note=note),
        lambda: feature_neurons(params, chars, long_text),
        lambda: training_samples([e["step"] for e in samples], [e["text"] for e in samples],
                                 [e.get("chars", np.nan) for e in samples],
                                 [val_at.get(float(e["step"]), np.nan) for e in samples]),
        lambda: gradient_flow(params, chars, text[start:], init_scale=float(config.get("init_scale", 0.01)),
                              seed=seed),
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in zip(FIGURE_FILES, figures):
        fig = make()
        fig.savefig(out / name, dpi=dpi)
        written.append(out / name)
    return written


def _resolve_text(args, checkpoint, log):
    """(text for the figures, training text or None, description)."""
    config = {**log.get("config", {}), **checkpoint["meta"].get("config", {})}
    data, train_text = config.get("data"), None
    data_path = None
    if data:
        for cand in (Path(data), Path(__file__).resolve().parent / data):
            if cand.is_file():
                data_path = cand
                break
    if data_path is not None:
        full = rnn.read_text(data_path)
        split = int(len(full) * (1.0 - float(config.get("val_fraction", 0.1))))
        train_text, val_text = full[:split], full[split:]
    if args.text:
        if not Path(args.text).is_file():
            raise ValueError(f"--text: file not found: {args.text}")
        return rnn.read_text(args.text), train_text, str(args.text)
    if data_path is None:
        where = f"the training text {data!r} from the run's config was not found" if data else \
            "the checkpoint and log do not name their training text"
        raise ValueError(f"{where}; pass --text FILE (a text in the model's vocabulary)")
    if len(val_text) < 500:                  # no (or a tiny) validation split: read the training text
        return full, train_text, f"{data_path} (no validation part; the training text)"
    return val_text, train_text, f"{data_path} (validation part, last {len(val_text):,} characters)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Render every figure of a trained char-RNN to PNG files (headless).",
        epilog="example: python visualization.py --checkpoint out/best.npz --log out/log.jsonl --out plots/")
    g = p.add_argument_group("inputs")
    g.add_argument("--checkpoint", default="out/best.npz", metavar="PATH",
                   help="checkpoint written by train_minimal.py (default: %(default)s)")
    g.add_argument("--log", default="out/log.jsonl", metavar="PATH",
                   help="training log (JSON lines) written by train_minimal.py (default: %(default)s)")
    g.add_argument("--text", default=None, metavar="PATH",
                   help="text file the model reads for the text figures (default: the validation part "
                        "of the training text named in the run's config)")
    g = p.add_argument_group("figures")
    g.add_argument("--chars", type=int, default=100, metavar="N",
                   help="length of the text window for the heatmap, predictions and neuron view (default: %(default)s)")
    g.add_argument("--unit", type=int, default=None, metavar="I",
                   help="hidden unit for the neuron view (default: the unit that best tracks position in line)")
    g.add_argument("--prime", default=None, metavar="TEXT",
                   help="prime for the temperature samples (default: the first line of the text window)")
    g.add_argument("--seed", type=int, default=0, metavar="N",
                   help="seed for the temperature samples and the initial weights in the gradient-flow plot "
                        "(default: %(default)s)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="plots", metavar="DIR",
                   help="folder for the PNG files, created if needed (default: %(default)s)")
    g.add_argument("--dpi", type=int, default=100, metavar="N",
                   help="resolution of the PNG files (default: %(default)s)")
    g.add_argument("--html", default=None, metavar="PATH",
                   help="also write the neuron view as one self-contained web page (opens offline): pick any "
                        "unit, rest the pointer on a character for the next-character guesses "
                        f"(the first {PAGE_MAX_CHARS:,} characters of the text window)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    limit_threads()                          # one BLAS thread unless RNN_THREADS says otherwise
    if args.chars < 20:
        parser.error(f"--chars must be at least 20, got {args.chars}")
    if args.dpi < 10:
        parser.error(f"--dpi must be at least 10, got {args.dpi}")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in vars(args).items()))
    try:
        checkpoint = rnn.load_checkpoint(args.checkpoint)
        log = load_log(args.log)
        text, train_text, source = _resolve_text(args, checkpoint, log)
        print(f"text: {source}")
        written = render_all(checkpoint, log, text, args.out, train_text, args.chars, args.seed,
                             args.dpi, args.unit, args.prime)
        if args.html:
            written.append(write_neuron_page(args.html, checkpoint["params"], checkpoint["chars"],
                                             text[_line_start(text):]))
    except (ValueError, OSError) as e:       # CheckpointError and LogError are ValueErrors
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


# -----------------------------------------------------------------------------
# The neuron view as a web page
# -----------------------------------------------------------------------------
# The same view as neuron_view, but in a browser: pick any hidden unit from a list
# and the text recolours; rest the pointer on a character to see the model's top
# guesses for the next one. The page is one file with everything inside it (styles,
# script and numbers), so it opens offline, from an e-mail or a USB stick alike.
#
# The text is data, never markup: it travels as JSON in a <script type="application/json">
# block with every < > & written as \u003c \u003e \u0026 (so "</script>" in the text
# cannot end the block), and the page's script puts each character on screen with
# textContent. A Content-Security-Policy lets only the page's own style and script
# (named by their SHA-256) run and forbids every network request.

import base64  # noqa: E402  (used only by the web page below)
import hashlib  # noqa: E402
import html as html_lib  # noqa: E402

from cli import atomic_write_text  # noqa: E402

PAGE_MAX_CHARS = 2000      # characters of text on the page
PAGE_MAX_UNITS = 1024      # hidden units offered by default (the strongest), to bound the page's size

_PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222;
       background: #f4f4f1; }
header { padding: 14px 24px 4px; }
h1 { font-size: 20px; margin: 0 0 6px; }
.lead { margin: 0; color: #444; font-size: 14px; max-width: 80em; }
.controls { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 18px; padding: 10px 24px;
            font-size: 14px; }
#unit { font: inherit; padding: 3px 4px; max-width: 34em; }
.legend { display: flex; align-items: center; gap: 6px; font-size: 12px; color: #444; }
#legend-bar { width: 180px; height: 12px; border: 1px solid #999; }
.layout { display: flex; align-items: flex-start; gap: 18px; padding: 4px 24px 24px; }
#text { flex: 1; min-width: 0; background: #fff; border: 1px solid #ccc; border-radius: 4px;
        padding: 12px 14px; font: 15px/1.6 "DejaVu Sans Mono", Menlo, Consolas, monospace;
        white-space: pre-wrap; overflow-wrap: anywhere; }
#text span { cursor: default; }
#text span.here { outline: 2px solid #222; outline-offset: -1px; }
#text span.dark { color: #fff; }
#guesses { position: sticky; top: 10px; width: 250px; flex: none; background: #fff;
           border: 1px solid #ccc; border-radius: 4px; padding: 10px 12px; font-size: 13px; }
#guesses h2 { font-size: 13px; margin: 0 0 6px; font-weight: 600; }
.context, .ch { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.context { white-space: pre; background: #eee; border-radius: 3px; padding: 2px 6px; display: inline-block; }
@media (max-width: 700px) { .layout { flex-direction: column; } #guesses { position: static; width: auto; } }
#guess-table { border-collapse: collapse; width: 100%; margin-top: 6px; }
#guess-table td { padding: 2px 4px; }
.ch { width: 2.5em; text-align: center; }
.bar { height: 10px; background: #4a8a4a; }
.p { text-align: right; font-variant-numeric: tabular-nums; width: 3.5em; }
tr.actual td { color: #b35900; font-weight: 700; }
tr.actual .bar { background: #e08a2e; }
.note { color: #555; font-size: 12px; margin: 8px 0 0; }
"""

_PAGE_SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("neuron-data").textContent);

// The colour of an activation a (tanh: -1 ... +1): white at 0, fading linearly to
// blue at -1 and red at +1; each channel rounded to a whole number.
const BLUE = [33, 102, 172], WHITE = [255, 255, 255], RED = [178, 24, 43];
function activationColor(a) {
  const x = Math.max(-1, Math.min(1, a));
  const end = x < 0 ? BLUE : RED, w = Math.abs(x);
  const c = [0, 1, 2].map(i => Math.round(WHITE[i] + w * (end[i] - WHITE[i])));
  return "rgb(" + c[0] + ", " + c[1] + ", " + c[2] + ")";
}

// How a character is drawn where it would be invisible: newline, space, tab.
function shown(c, inText) {
  const marks = {"\n": "\u21b5", "\t": "\u21e5", "\r": "\u240d"};
  if (!inText) marks[" "] = "\u2423";
  return marks[c] !== undefined ? marks[c] : c;
}

const chars = Array.from(DATA.text);             // code points, as Python counts them
const textBox = document.getElementById("text");
const spans = chars.map((c, t) => {
  const s = document.createElement("span");
  s.textContent = shown(c, true);
  s.dataset.t = String(t);
  textBox.appendChild(s);
  if (c === "\n") textBox.appendChild(document.createElement("br"));
  return s;
});

const picker = document.getElementById("unit");
DATA.units.forEach((u, i) => {
  const o = document.createElement("option");
  o.value = String(i);
  o.textContent = "unit " + u.unit + (u.feature === null ? " (no feature in this text)" :
    " \u00b7 " + u.feature + ", r = " + (u.r >= 0 ? "+" : "\u2212") + Math.abs(u.r).toFixed(2));
  picker.appendChild(o);
});

const legend = document.getElementById("legend-bar");
legend.style.background = "linear-gradient(to right, " + activationColor(-1) + ", " +
  activationColor(0) + ", " + activationColor(1) + ")";

let current = 0;                                 // position under the pointer
function colour() {
  const act = DATA.units[Number(picker.value)].activation;
  spans.forEach((s, t) => {
    const a = act[t] / 1000;
    s.style.backgroundColor = activationColor(a);
    s.classList.toggle("dark", Math.abs(a) > 0.6);
  });
  describe(current);
}

function describe(t) {
  spans[current].classList.remove("here");
  current = t;
  spans[t].classList.add("here");
  const u = DATA.units[Number(picker.value)];
  const before = chars.slice(Math.max(0, t - 11), t + 1).map(c => shown(c, false)).join("");
  document.getElementById("context").textContent = (t > 11 ? "\u2026" : "") + before;
  const a = u.activation[t] / 1000;
  document.getElementById("act").textContent = "unit " + u.unit + " here: " +
    (a >= 0 ? "+" : "\u2212") + Math.abs(a).toFixed(3);
  const next = t + 1 < chars.length ? chars[t + 1] : null;
  const table = document.getElementById("guess-table");
  table.replaceChildren();
  DATA.top_ids[t].forEach((id, j) => {
    const p = DATA.top_p[t][j] / 1000, c = DATA.chars[id];
    const row = table.insertRow();
    row.className = "guess" + (c === next ? " actual" : "");
    const ch = row.insertCell(), barCell = row.insertCell(), pc = row.insertCell();
    ch.className = "ch"; ch.textContent = shown(c, false);
    const bar = document.createElement("div");
    bar.className = "bar"; bar.style.width = (100 * p).toFixed(1) + "%";
    barCell.appendChild(bar);
    pc.className = "p"; pc.textContent = p.toFixed(3);
  });
  document.getElementById("next").textContent = next === null ? "(the text ends here)" :
    "what came next: \u201c" + shown(next, false) + "\u201d (orange if among the guesses)";
}

picker.addEventListener("change", colour);
textBox.addEventListener("mouseover", e => {
  const s = e.target.closest("span[data-t]");
  if (s) describe(Number(s.dataset.t));
});
colour();
"""

_PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src '{style_hash}'; script-src '{script_hash}'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header>
<h1>{title}</h1>
<p class="lead">Each character is coloured by the chosen hidden unit's activation after reading it
(tanh: blue &minus;1, white 0, red +1). Rest the pointer on a character to see the model's top {k}
guesses for the next one. Units are listed by how strongly they follow a feature of the text
(correlation r over these {n} characters).</p>
</header>
<div class="controls">
<label>hidden unit <select id="unit"></select></label>
<span class="legend">&minus;1 <span id="legend-bar"></span> +1</span>
</div>
<div class="layout">
<div id="text"></div>
<aside id="guesses">
<h2>Top {k} guesses for the next character, after</h2>
<div id="context" class="context"></div>
<table id="guess-table"></table>
<p id="next" class="note"></p>
<p id="act" class="note"></p>
</aside>
</div>
<script type="application/json" id="neuron-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""


def _csp_hash(source: str) -> str:
    """The Content-Security-Policy name of an inline <style> or <script>: its SHA-256."""
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")


def _json_for_script(data) -> str:
    """JSON that cannot end a <script> block or open a comment: < > & become \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for c, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                   ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(c, esc)
    return text


def neuron_page_data(params: dict, chars, text: str, units=None, features: dict | None = None,
                     k: int = 5, max_chars: int = PAGE_MAX_CHARS) -> dict:
    """The numbers behind the web page, as plain JSON-ready lists.

    text         the first max_chars characters of `text` (the model reads them from h = 0)
    chars        the vocabulary
    units        one entry per offered unit (by default every unit, at most PAGE_MAX_UNITS of the
                 strongest), best first: {"unit", "feature", "r", "activation"}.
                 feature/r: the feature (text_features by default) this unit correlates with
                 most strongly over the text and that correlation, rounded to 3 decimals
                 (None if no feature varies in the text); the list is ordered by |r|.
                 activation: h[t, unit] for every position, in whole thousandths (round(1000 h)),
                 which keeps the page small: 2,000 characters x 512 units is about 5 MB.
    top_ids      (N,k) the k most probable next characters after each position, most probable first
    top_p        (N,k) their probabilities, in whole thousandths
    """
    text = text[:max_chars]
    run = model_on_text(params, chars, text)                  # raises on an empty text
    H = run["h"].shape[1]
    keep = PAGE_MAX_UNITS if units is None else None
    units = np.arange(H) if units is None else np.asarray(units).ravel()
    if units.size == 0 or units.dtype.kind not in "iu":
        raise ValueError(f"neuron page: units must be a non-empty list of unit numbers, got {units!r}")
    bad = units[(units < 0) | (units >= H)]
    if bad.size:
        raise ValueError(f"neuron page: unit {int(bad[0])} outside 0..{H - 1} (the model has {H} hidden units)")
    if not 1 <= k <= len(chars):
        raise ValueError(f"neuron page: k={k} must be between 1 and the vocabulary size {len(chars)}")
    features = text_features(text) if features is None else features
    ranked = rank_units(run["h"], features)
    names = [x["feature"] for x in ranked]
    R = np.array([x["correlations"] for x in ranked]).reshape(len(ranked), H)    # (F,H)
    entries, strength = [], []
    for u in units.tolist():
        col = np.nan_to_num(np.abs(R[:, u]), nan=-1.0)               # a constant feature never wins
        f = int(np.argmax(col)) if len(names) and col.max() >= 0 else None
        entries.append({"unit": u, "feature": None if f is None else names[f],
                        "r": None if f is None else round(float(R[f, u]), 3),
                        "activation": np.rint(1000 * run["h"][:, u]).astype(int).tolist()})
        strength.append(-1.0 if f is None else float(col[f]))
    entries = [entries[i] for i in np.argsort(-np.array(strength), kind="stable")][:keep]   # strongest first
    top_ids, top_p = top_k(run["probs"], k)
    return {"text": text, "chars": list(chars), "k": k, "units": entries,
            "top_ids": top_ids.tolist(), "top_p": np.rint(1000 * top_p).astype(int).tolist()}


def neuron_page_html(params: dict, chars, text: str, units=None, features: dict | None = None,
                     k: int = 5, max_chars: int = PAGE_MAX_CHARS,
                     title: str = "One neuron's view of the text") -> str:
    """Caption: pick a unit and follow its colour along the text; rest the pointer on a
    character to read the model's top-k guesses for the next one.

    The neuron view (neuron_view) as one self-contained HTML page: inline style and
    script, the numbers of neuron_page_data embedded as JSON, no network access.
    """
    data = neuron_page_data(params, chars, text, units, features, k, max_chars)
    return _PAGE_TEMPLATE.format(
        title=html_lib.escape(title), k=k, n=len(data["text"]), style=_PAGE_STYLE, script=_PAGE_SCRIPT,
        style_hash=_csp_hash(_PAGE_STYLE), script_hash=_csp_hash(_PAGE_SCRIPT),
        data=_json_for_script(data))


def write_neuron_page(path, params: dict, chars, text: str, units=None, features: dict | None = None,
                      k: int = 5, max_chars: int = PAGE_MAX_CHARS,
                      title: str = "One neuron's view of the text") -> Path:
    """Write neuron_page_html to `path` atomically (a temporary file, then a rename); returns the path."""
    return atomic_write_text(path, neuron_page_html(params, chars, text, units, features, k, max_chars, title))


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")                    # headless; the helpers themselves never pick a backend
    sys.exit(main())
