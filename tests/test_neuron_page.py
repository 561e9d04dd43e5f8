"""Tests for the neuron view as a web page (neuron_page.py, and visualization.py --html).

Two halves:
* Without a browser: the numbers embedded in the page equal what implementation.forward
  gives for the same model and text, the page loads nothing from outside, and a text
  full of HTML cannot break out of its data block.
* In a real headless Chromium, driven by Playwright: pick a unit and read back the
  colour of every character, rest the pointer on characters and read the top-5 box,
  and watch that no console error and no network request happens.

The browser half needs Chromium and the Python package playwright (Playwright never
downloads a browser here: it drives the system's Chromium). Without them those tests
are skipped on your machine and fail under CI (CI=true), like the corpora in corpora.py.

No training: the model (conftest.py's untrained_model) is init_params with a large
init_scale (0.5), so that the hidden units swing over the whole -1..+1 range and the
top-5 guesses differ from place to place.
"""

import base64
import hashlib
import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import analysis
import implementation as rnn
import neuron_page
import visualization as viz
from helpers import FEW_LINES, small_rnn, write_run

HIDDEN, INIT_SCALE = 24, 0.5      # untrained_model's hidden units and initial scale (conftest.py)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# How the page draws characters: in the text, newline/tab/CR get a visible mark (a space stays a
# coloured space); in the guesses box a space is also marked.
IN_TEXT = {"\n": "↵", "\t": "⇥", "\r": "␍"}
IN_BOX = {**IN_TEXT, " ": "␣"}

# The page's colour scale, written again here from its definition: white at 0, fading
# linearly to blue (33, 102, 172) at -1 and red (178, 24, 43) at +1, channels rounded
# half up (JavaScript's Math.round).
BLUE, RED = (33, 102, 172), (178, 24, 43)


def expected_rgb(a: float) -> tuple:
    x = min(1.0, max(-1.0, a))
    end = BLUE if x < 0 else RED
    return tuple(math.floor(255 + abs(x) * (e - 255) + 0.5) for e in end)


def page_html(model: dict, **options) -> str:
    """neuron_page_html for a model dict (conftest.py's untrained_model) and its text."""
    return neuron_page.neuron_page_html(model["params"], model["chars"], model["text"], **options)


def write_page(path, model: dict, **options) -> Path:
    """write_neuron_page for a model dict and its text."""
    return neuron_page.write_neuron_page(path, model["params"], model["chars"], model["text"], **options)


def best_features(text, h):
    """{unit: (feature, r)}: the feature of text_features each unit correlates with most, by np.corrcoef."""
    feats = {k: v for k, v in analysis.text_features(text).items() if np.ptp(v) > 0}
    out = {}
    for u in range(h.shape[1]):
        rs = {k: float(np.corrcoef(h[:, u], f)[0, 1]) for k, f in feats.items()}
        name = max(rs, key=lambda k: abs(rs[k]))
        out[u] = (name, rs[name])
    return out


def page_json(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="neuron-data">(.*?)</script>', page, re.S)
    assert block, "neuron_page_html: no <script type=\"application/json\" id=\"neuron-data\"> block"
    return json.loads(block.group(1))


# -----------------------------------------------------------------------------
# The page without a browser
# -----------------------------------------------------------------------------

def test_page_data_is_forward_rounded_to_thousandths(untrained_model):
    data = page_json(page_html(untrained_model))
    h, probs, text = untrained_model["h"], untrained_model["probs"], untrained_model["text"]
    assert data["text"] == text and data["chars"] == untrained_model["chars"]
    assert sorted(e["unit"] for e in data["units"]) == list(range(HIDDEN)), \
        "neuron_page_data: by default every hidden unit should be offered exactly once"
    for e in data["units"]:
        act = np.array(e["activation"]) / 1000
        assert np.abs(act - h[:, e["unit"]]).max() <= 0.0005 + 1e-12, \
            f"unit {e['unit']}: the page's activations are not h[t, unit] from forward rounded to 3 decimals"
    order = np.argsort(-probs, axis=1, kind="stable")[:, :5]
    assert data["top_ids"] == order.tolist(), "top_ids should be the 5 most probable next characters"
    top_p = np.array(data["top_p"]) / 1000
    assert np.abs(top_p - np.take_along_axis(probs, order, axis=1)).max() <= 0.0005 + 1e-12


def test_units_are_ordered_by_their_strongest_feature_correlation(untrained_model):
    data = page_json(page_html(untrained_model))
    best = best_features(untrained_model["text"], untrained_model["h"])
    strengths = []
    for e in data["units"]:
        name, r = best[e["unit"]]
        assert abs(e["r"] - r) <= 0.0005 + 1e-9, f"unit {e['unit']}: r {e['r']} on the page, np.corrcoef says {r:.4f}"
        assert e["feature"] == name, f"unit {e['unit']}: page names {e['feature']!r}, strongest is {name!r}"
        strengths.append(abs(r))
    assert all(a >= b - 1e-9 for a, b in zip(strengths, strengths[1:])), \
        f"units should be listed by |r|, strongest first; got {np.round(strengths, 3)}"


def test_text_is_cut_and_units_can_be_chosen(untrained_model):
    data = page_json(page_html(untrained_model, units=[5, 2], max_chars=40, k=3))
    assert data["text"] == untrained_model["text"][:40]
    assert sorted(e["unit"] for e in data["units"]) == [2, 5]
    assert np.array(data["top_ids"]).shape == (40, 3)
    with pytest.raises(ValueError, match=f"unit {HIDDEN} outside 0..{HIDDEN - 1}"):
        page_html(untrained_model, units=[0, HIDDEN])


def test_a_small_vocabulary_gets_as_many_guesses_as_it_has_characters():
    chars, text = ["a", "b", "c"], "abcab" * 10
    params = rnn.init_params(3, 6, np.random.default_rng(2), np.float64, INIT_SCALE)
    data = neuron_page.neuron_page_data(params, chars, text)
    assert data["k"] == 3 and np.shape(data["top_ids"]) == (len(text), 3)
    assert all(sorted(row) == [0, 1, 2] for row in data["top_ids"]), "all three characters, best first"
    with pytest.raises(ValueError, match="k=0 must be a whole number >= 1"):
        neuron_page.neuron_page_data(params, chars, text, k=0)


def test_a_huge_vocabulary_puts_as_much_text_on_the_page_as_one_table_holds(untrained_model, monkeypatch):
    V = len(untrained_model["chars"])
    monkeypatch.setattr(analysis, "TABLE_MAX_ENTRIES", 30 * V)
    data = page_json(page_html(untrained_model))
    assert data["text"] == untrained_model["text"][:30], \
        "neuron_page_data: the text is cut to analysis.max_table_chars(V) characters"


def test_page_loads_nothing_from_outside(untrained_model):
    page = page_html(untrained_model)
    for pattern in (r"\b(src|href|action|srcset|poster)\s*=", r"url\(", r"@import", r"https?:", r"<link\b"):
        assert not re.search(pattern, page, re.I), f"the page should be self-contained but contains {pattern!r}"
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert csp and "default-src 'none'" in csp.group(1), "the page should forbid every outside resource"
    # the policy names the page's own script by its hash, or the browser would refuse to run it
    script = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(script) == 1
    digest = base64.b64encode(hashlib.sha256(script[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp.group(1)


HOSTILE = ('a</script><script>window.pwned = 1</script>\n<img src=x onerror="window.pwned = 2">'
           '<!-- &amp; &lt;b&gt; <b>bold</b> </SCRIPT >\u2028"quoted"\n')


def test_a_text_full_of_html_stays_inside_its_data_block():
    chars = rnn.build_vocab(HOSTILE)
    params = rnn.init_params(len(chars), 8, np.random.default_rng(0), np.float64, INIT_SCALE)
    page = neuron_page.neuron_page_html(params, chars, HOSTILE, title="<b>title</b>")
    assert len(re.findall(r"</script", page, re.I)) == 2, "only the page's own two </script> tags may appear"
    assert "<img" not in page and "<!--" not in page and "<b>" not in page
    assert page_json(page)["text"] == HOSTILE, "the text should come back unchanged from the JSON block"


def test_write_neuron_page_replaces_the_file_whole_or_not_at_all(untrained_model, tmp_path):
    path = tmp_path / "neurons.html"
    path.write_text("old page")
    with pytest.raises(ValueError):
        write_page(path, untrained_model, units=[-1])
    assert path.read_text() == "old page", "a failed write_neuron_page must leave the old file as it was"
    assert write_page(path, untrained_model) == path
    assert page_json(path.read_text(encoding="utf-8"))["text"] == untrained_model["text"]
    assert [p.name for p in tmp_path.iterdir()] == ["neurons.html"], "temporary files were left behind"


def _checkpoint_and_log(folder: Path):
    """visualization.py's arguments for an untrained model (checkpoint, two-step log) and a text."""
    # the figures need a few hundred characters; no tab, which the PNG figures' font cannot draw
    model = small_rnn("\n".join([FEW_LINES] * 4).replace("\t", " "), HIDDEN, INIT_SCALE, seed=11)
    argv = write_run(folder, model["params"], model["chars"], model["text"])
    return argv + ["--out", str(folder / "plots"), "--chars", "40", "--dpi", "20"], model["text"]


def test_cli_html_writes_the_page_for_the_resolved_text(tmp_path, capsys):
    argv, text = _checkpoint_and_log(tmp_path)
    assert viz.main(argv + ["--html", str(tmp_path / "neurons.html")]) == 0, capsys.readouterr().err
    assert f"wrote {tmp_path / 'neurons.html'}" in capsys.readouterr().out
    data = page_json((tmp_path / "neurons.html").read_text(encoding="utf-8"))
    assert data["text"] == text[viz._line_start(text):][:neuron_page.MAX_CHARS]


def test_cli_html_into_the_out_folder_it_creates(tmp_path, capsys):
    argv, text = _checkpoint_and_log(tmp_path)                     # --out tmp_path/plots, not there yet
    assert viz.main(argv + ["--html", str(tmp_path / "plots" / "neurons.html")]) == 0, capsys.readouterr().err
    assert page_json((tmp_path / "plots" / "neurons.html").read_text(encoding="utf-8"))["text"].strip()


def test_cli_html_into_a_missing_folder_is_one_line_exit_2(tmp_path, capsys):
    argv, _ = _checkpoint_and_log(tmp_path)
    code = viz.main(argv + ["--html", str(tmp_path / "no" / "such" / "folder" / "neurons.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1, \
        f"main(--html into a missing folder) should print one error line and return 2, got {code}: {err!r}"
    assert "does not exist" in err and not (tmp_path / "plots").exists(), "refused before any figure is drawn"


# -----------------------------------------------------------------------------
# The page in a real browser
# -----------------------------------------------------------------------------

def _no_browser(reason: str):
    message = (f"{reason}: the browser tests need Chromium and Playwright; install them with "
               "`apt-get install chromium` (or your system's package manager) and `pip install -r requirements-dev.txt` "
               "(no `playwright install` needed: the tests drive the system's Chromium)")
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: the browser tests are required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the Python package playwright is not installed")
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        _no_browser(f"Chromium not found ({CHROMIUM}, or `chromium` on the PATH)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class OpenPage:
    """A page opened from a file, recording console errors, script errors and every request."""

    def __init__(self, browser, path: Path):
        self.errors, self.requests, self.failed = [], [], []
        self.page = browser.new_page(viewport={"width": 1200, "height": 800})
        self.page.set_default_timeout(20_000)
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"script error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector("#text span[data-t]", state="attached")

    def check_quiet(self):
        assert not self.errors, f"the page logged errors: {self.errors}"
        outside = [u for u in self.requests if not u.startswith("file://")]
        assert not outside, f"the page made requests outside file://: {outside}"
        assert not self.failed, f"requests failed: {self.failed}"

    def backgrounds(self) -> list:
        css = self.page.eval_on_selector_all(
            "#text span[data-t]", "ss => ss.map(s => getComputedStyle(s).backgroundColor)")
        return [tuple(int(v) for v in re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)\)", c).groups()) for c in css]


def test_picking_a_unit_colours_every_character_by_its_activation(browser, untrained_model, tmp_path):
    path = write_page(tmp_path / "neurons.html", untrained_model)
    view = OpenPage(browser, path)
    options = view.page.eval_on_selector_all("#unit option", "os => os.map(o => [o.value, o.textContent])")
    assert len(options) == HIDDEN, f"the picker should offer all {HIDDEN} units, it offers {len(options)}"
    best = best_features(untrained_model["text"], untrained_model["h"])
    listed = []
    for _, label in options:
        m = re.fullmatch(r"unit (\d+) · (.+), r = ([+−])(\d\.\d\d)", label)
        assert m, f"picker entry {label!r} should read 'unit N · feature, r = ±0.00'"
        unit, name, r = int(m[1]), m[2], float(m[4]) * (1 if m[3] == "+" else -1)
        # r is stored to 3 decimals and shown to 2: at most 0.0005 + 0.005 away
        assert name == best[unit][0] and abs(r - best[unit][1]) <= 0.0055 + 1e-9, \
            f"picker entry {label!r}: np.corrcoef says {best[unit][0]}, r = {best[unit][1]:+.4f}"
        listed.append(unit)
    strength = [abs(best[u][1]) for u in listed]
    assert all(a >= b - 1e-9 for a, b in zip(strength, strength[1:])), "the picker should list the strongest first"
    text = untrained_model["text"]
    for value, label in (options[1], options[-1]):               # a strong unit and the weakest one
        unit = int(re.match(r"unit (\d+)", label)[1])
        view.page.select_option("#unit", value)
        got = view.backgrounds()
        assert len(got) == len(text)
        want = [expected_rgb(round(float(a), 3)) for a in untrained_model["h"][:, unit]]
        worst = max(range(len(text)), key=lambda t: max(abs(g - w) for g, w in zip(got[t], want[t])))
        diff = max(abs(g - w) for g, w in zip(got[worst], want[worst]))
        # 1 for a last-digit rounding difference of the activation (1/1000 moves a channel by <= 0.23)
        assert diff <= 1, (f"unit {unit}, character {worst} ({text[worst]!r}): background {got[worst]}, "
                           f"but activation {untrained_model['h'][worst, unit]:+.3f} maps to {want[worst]}; "
                           "is the colour scale reversed or the wrong unit shown?")
        assert len(set(got)) > 10, "the characters should not all share a few colours"
    view.check_quiet()


def test_resting_on_a_character_shows_the_top_5_guesses(browser, untrained_model, tmp_path):
    path = write_page(tmp_path / "neurons.html", untrained_model)
    view = OpenPage(browser, path)
    text, chars, probs = untrained_model["text"], untrained_model["chars"], untrained_model["probs"]
    positions = [0, text.index(" "), text.index("\n"), text.index('"') + 3, len(text) // 2, len(text) - 1]
    for t in positions:
        view.page.hover(f'#text span[data-t="{t}"]')
        rows = view.page.eval_on_selector_all(
            "#guess-table tr", "rs => rs.map(r => [r.querySelector('.ch').textContent, "
                               "r.querySelector('.p').textContent, r.classList.contains('actual')])")
        order = np.argsort(-probs[t])[:5]
        want = [(IN_BOX.get(chars[i], chars[i]), probs[t, i]) for i in order]
        assert [r[0] for r in rows] == [w[0] for w in want], \
            f"after text[{t}] = {text[t]!r}: the box lists {[r[0] for r in rows]}, forward's top 5 are {want}"
        for (shown, p_text, _), (_, p) in zip(rows, want):
            assert abs(float(p_text) - p) <= 0.0005 + 1e-9, f"after text[{t}]: {shown!r} shows {p_text}, p = {p:.5f}"
        actual = [r[0] for r in rows if r[2]]
        nxt = text[t + 1] if t + 1 < len(text) else None
        expect_actual = [IN_BOX.get(nxt, nxt)] if nxt is not None and chars.index(nxt) in order else []
        assert actual == expect_actual, f"after text[{t}]: the row marked as what came next should be {expect_actual}"
        context = view.page.text_content("#context")
        assert context.endswith(IN_BOX.get(text[t], text[t])), "the box should name the character under the pointer"
    view.check_quiet()


def test_a_text_full_of_html_is_shown_as_text_in_the_browser(browser, tmp_path):
    chars = rnn.build_vocab(HOSTILE)
    params = rnn.init_params(len(chars), 8, np.random.default_rng(0), np.float64, INIT_SCALE)
    path = neuron_page.write_neuron_page(tmp_path / "hostile.html", params, chars, HOSTILE)
    view = OpenPage(browser, path)
    shown = view.page.eval_on_selector_all("#text span[data-t]", "ss => ss.map(s => s.textContent)")
    assert shown == [IN_TEXT.get(c, c) for c in HOSTILE], "every character of the text should be one span, as text"
    for t in range(len(HOSTILE)):                                # the box quotes the last 12 characters
        view.page.hover(f'#text span[data-t="{t}"]')
        made = view.page.evaluate("document.querySelectorAll('img, b, script').length")
        assert made == 2, (f"resting on character {t}: the text made elements (<img>, <b> or <script>) "
                           "beside the page's own two scripts; is text put on the page as HTML?")
    assert view.page.evaluate("window.pwned") is None, "the text ran a script"
    view.check_quiet()
