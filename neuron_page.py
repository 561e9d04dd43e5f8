"""The neuron view as a self-contained web page.

The same view as visualization.neuron_view, but in a browser: pick any hidden
unit from a list and the text recolours; rest the pointer on a character to see
the model's top guesses for the next one. The page is one file with everything
inside it (styles, script and numbers), so it opens offline, from an e-mail or a
USB stick alike.

    the numbers on the page    neuron_page_data
    the page                   neuron_page_html, write_neuron_page

The text is data, never markup: it travels as JSON in a <script type="application/json">
block with every < > & (and U+2028, U+2029) written as a \\u escape, so "</script>"
in the text cannot end the block, and the page's script puts each character on
screen with textContent. A Content-Security-Policy lets only the page's own style
and script (named by their SHA-256) run and forbids every network request.

``python visualization.py --html PATH`` writes the page for a trained model.
"""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import json
from pathlib import Path

import numpy as np

from analysis import max_table_chars, model_on_text, rank_units, text_features, top_k
from safeio import atomic_write_text

MAX_CHARS = 2000      # characters of text on the page (fewer for a vocabulary above 4,194: see neuron_page_data)
MAX_UNITS = 1024      # hidden units offered by default (the strongest), to bound the page's size
TOP_K = 5             # guesses shown for the next character (fewer for a smaller vocabulary)

_STYLE = """
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

_SCRIPT = r"""
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

_TEMPLATE = """<!DOCTYPE html>
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


def _offered_units(units, H: int) -> np.ndarray:
    """The unit numbers to offer: every unit by default, else `units` checked against 0..H-1."""
    units = np.arange(H) if units is None else np.asarray(units).ravel()
    if units.size == 0 or units.dtype.kind not in "iu":
        raise ValueError(f"neuron page: units must be a non-empty list of unit numbers, got {units!r}")
    bad = units[(units < 0) | (units >= H)]
    if bad.size:
        raise ValueError(f"neuron page: unit {int(bad[0])} outside 0..{H - 1} (the model has {H} hidden units)")
    return units


def _unit_entries(h, units, features: dict, keep: int | None) -> list[dict]:
    """One entry per unit, strongest first: {"unit", "feature", "r", "activation"} (see neuron_page_data)."""
    ranked = rank_units(h, features)
    names = [x["feature"] for x in ranked]
    R = np.array([x["correlations"] for x in ranked]).reshape(len(ranked), h.shape[1])   # (F,H)
    entries, strength = [], []
    for u in units.tolist():
        col = np.nan_to_num(np.abs(R[:, u]), nan=-1.0)               # a constant feature never wins
        f = int(np.argmax(col)) if len(names) and col.max() >= 0 else None
        entries.append({"unit": u, "feature": None if f is None else names[f],
                        "r": None if f is None else round(float(R[f, u]), 3),
                        "activation": np.rint(1000 * h[:, u]).astype(int).tolist()})
        strength.append(-1.0 if f is None else float(col[f]))
    return [entries[i] for i in np.argsort(-np.array(strength), kind="stable")][:keep]


def neuron_page_data(params: dict, chars, text: str, units=None, features: dict | None = None,
                     k: int = TOP_K, max_chars: int = MAX_CHARS) -> dict:
    """The numbers behind the web page, as plain JSON-ready lists.

    text         the first max_chars characters of `text` (the model reads them from h = 0);
                 fewer for a vocabulary so large that max_chars x V probabilities would pass
                 analysis.TABLE_MAX_ENTRIES (analysis.max_table_chars)
    chars        the vocabulary
    k            how many guesses per position: k, or V if the vocabulary has fewer characters
    units        one entry per offered unit (by default every unit, at most MAX_UNITS of the
                 strongest), best first: {"unit", "feature", "r", "activation"}.
                 feature/r: the feature (text_features by default) this unit correlates with
                 most strongly over the text and that correlation, rounded to 3 decimals
                 (None if no feature varies in the text); the list is ordered by |r|.
                 activation: h[t, unit] for every position, in whole thousandths (round(1000 h)),
                 which keeps the page small: 2,000 characters x 512 units is about 5 MB.
    top_ids      (N,k) the k most probable next characters after each position, most probable first
    top_p        (N,k) their probabilities, in whole thousandths
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"neuron page: k={k!r} must be a whole number >= 1 (guesses per position)")
    k = min(int(k), len(chars))
    text = text[:min(max_chars, max_table_chars(len(chars)))]
    run = model_on_text(params, chars, text)                  # raises on an empty text
    keep = MAX_UNITS if units is None else None
    units = _offered_units(units, run["h"].shape[1])
    features = text_features(text) if features is None else features
    top_ids, top_p = top_k(run["probs"], k)
    return {"text": text, "chars": list(chars), "k": k, "units": _unit_entries(run["h"], units, features, keep),
            "top_ids": top_ids.tolist(), "top_p": np.rint(1000 * top_p).astype(int).tolist()}


def neuron_page_html(params: dict, chars, text: str, units=None, features: dict | None = None,
                     k: int = TOP_K, max_chars: int = MAX_CHARS,
                     title: str = "One neuron's view of the text") -> str:
    """Caption: pick a unit and follow its colour along the text; rest the pointer on a
    character to read the model's top-k guesses for the next one.

    The neuron view (visualization.neuron_view) as one self-contained HTML page: inline
    style and script, the numbers of neuron_page_data embedded as JSON, no network access.
    """
    data = neuron_page_data(params, chars, text, units, features, k, max_chars)
    return _TEMPLATE.format(
        title=html_lib.escape(title), k=data["k"], n=len(data["text"]), style=_STYLE, script=_SCRIPT,
        style_hash=_csp_hash(_STYLE), script_hash=_csp_hash(_SCRIPT), data=_json_for_script(data))


def write_neuron_page(path, params: dict, chars, text: str, units=None, features: dict | None = None,
                      k: int = TOP_K, max_chars: int = MAX_CHARS,
                      title: str = "One neuron's view of the text") -> Path:
    """Write neuron_page_html to `path` atomically (safeio.atomic_write_text: a temporary file,
    then a rename; a device, a named pipe, a link or a folder at `path` is refused); returns the path."""
    return atomic_write_text(path, neuron_page_html(params, chars, text, units, features, k, max_chars, title))
