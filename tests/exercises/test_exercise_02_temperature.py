"""Exercise 2: temperature sampling and its measurements.

Exact values on fixed logits (softmax(y/T), entropies, word measures on short
strings), frequency checks on many draws with a fixed seed, and the trends a
temperature sweep must show on a small trained model.
"""

import math
import types

import numpy as np
import pytest

import implementation as rnn
from visualization import real_word_share, words
from . import exercise_checks
from .exercise_checks import check_close, fail, failure_of, needs, run_main
from helpers import load_module

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "its", "red", "ball"]


@pytest.fixture(scope="module")
def word_model():
    """A small model trained on random sentences over 13 words: (params, chars, text)."""
    rng = np.random.default_rng(0)
    sentences = []
    for _ in range(400):
        words = rng.choice(WORDS, size=rng.integers(3, 8))
        sentences.append(" ".join(words).capitalize() + ".")
    text = " ".join(sentences) + "\n"
    chars = rnn.build_vocab(text)
    params = rnn.init_params(len(chars), 32, rng)
    trainer = rnn.Trainer(params, rnn.encode(text, chars), batch_size=8, seq_length=32,
                          learning_rate=1e-2, optimizer="adam")
    for _ in range(400):
        trainer.step()
    return params, chars, text


# ----------------------------------------------------------------------------- softmax(y / T)

@pytest.mark.parametrize("y,T,want", [
    ([0.0, math.log(3.0)], 1.0, [0.25, 0.75]),
    ([0.0, 2 * math.log(3.0)], 2.0, [0.25, 0.75]),          # y/T is the same as above
    ([0.0, 0.5 * math.log(3.0)], 0.5, [0.25, 0.75]),
    ([1.0, 1.0, 1.0, 1.0], 0.3, [0.25, 0.25, 0.25, 0.25]),
])
def test_softmax_temperature_exact_values(ex, y, T, want):
    p = ex.softmax_temperature(np.array(y), T)
    check_close(np.ravel(p), want, f"softmax_temperature(y={np.round(y, 4).tolist()}, temperature={T})",
                hint="softmax(y / T): divide the logits by the temperature, then exp and normalise")
    if np.shape(p) != (len(y),):
        fail(f"softmax_temperature: return a flat (V,) array, got shape {np.shape(p)}")


def test_softmax_temperature_matches_module_and_accepts_columns(ex):
    y = np.random.default_rng(1).standard_normal((9, 1)) * 3       # (V,1), like Why @ h + by
    for T in (0.1, 0.7, 1.0, 2.0, 10.0):
        check_close(ex.softmax_temperature(y, T), rnn.sample_probs(y, T),
                    f"softmax_temperature(y of shape (9,1), temperature={T})", rtol=1e-9)


def test_softmax_temperature_is_stable(ex):
    y = np.array([1000.0, 999.0, -1000.0])
    with np.errstate(all="ignore"):
        p = ex.softmax_temperature(y, 0.01)
    if not np.all(np.isfinite(p)):
        fail("softmax_temperature([1000, 999, -1000], 0.01) contains nan or inf: exp(1000/0.01) "
             "overflows. Subtract the largest entry of y/T before exp")
    check_close(p, [1.0, 0.0, 0.0], "softmax_temperature([1000, 999, -1000], 0.01)", atol=1e-12)


@pytest.mark.parametrize("T", [0.0, -1.0])
def test_softmax_temperature_rejects_non_positive(ex, T):
    call = f"softmax_temperature(np.array([1.0, 2.0]), temperature={T})"
    why = ("a temperature must be > 0 (y / 0 divides by zero; a negative T turns the most likely character "
           "into the least likely): check it first, if not temperature > 0: raise ValueError(...)")
    try:
        with np.errstate(all="ignore"):
            got = ex.softmax_temperature(np.array([1.0, 2.0]), T)
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as exc:
        fail(f"{call} raised {type(exc).__name__} ({exc}), expected ValueError: {why}")
    fail(f"{call} returned {np.round(np.ravel(got), 4).tolist()} instead of raising ValueError: {why}")


# ----------------------------------------------------------------------------- entropy

@pytest.mark.parametrize("p,want", [
    ([0.25, 0.25, 0.25, 0.25], math.log(4)),
    ([1.0, 0.0, 0.0], 0.0),
    ([0.25, 0.75], -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))),
    ([0.5, 0.5, 0.0], math.log(2)),
])
def test_entropy_exact_values(ex, p, want):
    with np.errstate(all="ignore"):
        got = ex.entropy(np.array(p))
    if not np.isfinite(got):
        fail(f"entropy({p}) = {got}: 0 * log(0) is nan in NumPy; the convention is 0 ln 0 = 0 "
             f"(skip the zero entries)")
    if np.isclose(got, want / math.log(2)) and want > 0:
        fail(f"entropy({p}) = {got:.6g} is in bits; use the natural log (nats): {want:.6g}")
    check_close(got, want, f"entropy({p})", hint="-sum p ln p, natural log", rtol=1e-9)


def test_entropy_of_softmax_grows_with_temperature(ex):
    y = np.array([2.0, 1.0, 0.5, -1.0, -3.0])
    Ts = [0.05, 0.1, 0.5, 1.0, 2.0, 10.0, 1000.0]
    H = [ex.entropy(ex.softmax_temperature(y, T)) for T in Ts]
    if not all(a < b for a, b in zip(H, H[1:])):
        fail(f"entropy(softmax(y/T)) must grow with T for non-constant logits; got "
             f"{[round(h, 4) for h in H]} at T = {Ts}")
    if not (H[0] < 1e-6 and abs(H[-1] - math.log(5)) < 1e-3):
        fail(f"entropy(softmax(y/T)) should tend to 0 as T -> 0 and to ln V = {math.log(5):.4f} as "
             f"T -> infinity; got {H[0]:.3g} at T={Ts[0]} and {H[-1]:.4f} at T={Ts[-1]}")


# ----------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("T", [0.5, 1.0, 2.0])
def test_sample_with_temperature_frequencies(ex, T):
    y = np.array([1.5, 0.5, 0.0, -0.5, -2.0])
    p = rnn.sample_probs(y, T)
    rng = np.random.default_rng(123)
    n = 20_000
    draws = np.array([ex.sample_with_temperature(y, T, rng) for _ in range(n)])
    if draws.min() < 0 or draws.max() >= len(y):
        fail(f"sample_with_temperature returned ids outside [0, {len(y)}): {sorted(set(draws.tolist()))[:10]}")
    freq = np.bincount(draws, minlength=len(y)) / n
    chi2 = float(n * ((freq - p) ** 2 / p).sum())            # 4 degrees of freedom; P(chi2 > 25) < 1e-4
    if chi2 > 25:
        fail(f"sample_with_temperature(y, T={T}): over {n} draws (seed 123) the frequencies "
             f"{np.round(freq, 3).tolist()} do not follow softmax(y/T) = {np.round(p, 3).tolist()} "
             f"(chi-square {chi2:.1f} > 25)")


def test_sample_with_temperature_uses_the_given_rng(ex):
    y = np.zeros(10)
    a = [ex.sample_with_temperature(y, 1.0, np.random.default_rng(7)) for _ in range(5)]
    r1, r2 = np.random.default_rng(7), np.random.default_rng(7)
    b = [ex.sample_with_temperature(y, 1.0, r1) for _ in range(20)]
    c = [ex.sample_with_temperature(y, 1.0, r2) for _ in range(20)]
    if b != c or len(set(a)) != 1 or len(set(b)) == 1:
        fail("sample_with_temperature must draw with the `rng` it is given (rng.random(), rng.choice, ...), "
             "never np.random.* or a new generator: the same seed must give the same draws")


def test_low_temperature_is_argmax(ex):
    y = np.array([0.3, 2.0, 1.9, -1.0])
    rng = np.random.default_rng(0)
    draws = {ex.sample_with_temperature(y, 0.001, rng) for _ in range(200)}
    if draws != {1}:
        fail(f"at temperature 0.001, softmax(y/T) is one-hot on the largest logit (id 1); "
             f"sample_with_temperature drew {sorted(draws)}")


# ----------------------------------------------------------------------------- word measures

def test_known_word_share_exact(ex):
    train = "The cat sat on the mat. Don't."
    cases = [("the dog sat.", 2 / 3), ("The CAT, the Mat!", 1.0), ("zzz qqq.", 0.0), ("cats sat ", 0.5),
             ("the the dog\n", 2 / 3),                          # tokens: every occurrence counts
             ("the dog sa", 0.5),                               # cut off inside "sa...": leave it out
             ("don't dont.", 0.5)]                              # an inner apostrophe belongs to the word
    for gen, want in cases:
        call = f"known_word_share({gen!r}, {train!r})"
        got = ex.known_word_share(gen, train)
        if gen == "the dog sa" and np.isclose(got, 1 / 3):
            fail(f"{call} = {got:.4g}: the sample stops inside its last word ('sa'), which it has not "
                 f"finished: leave it out when the text ends in a letter (expected {want:.4g})")
        if gen == "don't dont." and np.isclose(got, 2 / 3):
            fail(f"{call} = {got:.4g}: split words with words(text) from visualization, which keeps "
                 f"\"don't\" as one word (expected {want:.4g})")
        check_close(got, want, call, rtol=1e-9,
                    hint="words(text) splits the words; count every generated word (tokens) found in "
                         "set(words(training_text)); drop a last word the sample stops in the middle of")
    for gen in ("", "  ... 123 ", "abc"):                       # no complete word at all
        got = ex.known_word_share(gen, train)
        if not (isinstance(got, float) and math.isnan(got)):
            fail(f"known_word_share({gen!r}, ...) = {got!r}: with no complete word the share is undefined; "
                 f"return math.nan (0.0 would read as 'no real words')")


def test_known_word_share_is_visualizations_real_word_share(ex, word_model):
    """Yours and visualization.real_word_share agree on model samples cut at every length."""
    _, _, text = word_model
    vocabulary = set(words(text))
    rng = np.random.default_rng(4)
    for start in rng.integers(0, len(text) - 80, 40):
        piece = text[start:start + int(rng.integers(1, 80))]
        got, want = ex.known_word_share(piece, text), real_word_share(piece, vocabulary)[0]
        check_close(got, want, f"known_word_share({piece!r}, training text) vs visualization.real_word_share",
                    rtol=1e-12)


def test_repetition_rate_exact(ex):
    cases = [("a b c a b c a b c", 3, 4 / 7), ("one two three four five", 3, 0.0),
             ("la la la la", 1, 0.75), ("la la la la", 2, 2 / 3), ("too short", 3, 0.0),
             ("The cat. the CAT the cat", 2, 3 / 5)]
    for text, n, want in cases:
        got = ex.repetition_rate(text, n)
        check_close(got, want, f"repetition_rate({text!r}, n={n})",
                    hint="1 - distinct n-grams / all n-grams of the lower-case words; 0.0 with fewer than n words",
                    rtol=1e-9)


# ----------------------------------------------------------------------------- generate and sweep

def test_generate_entropies_match_the_model(ex, word_model):
    """The entropies must be those of softmax(y_t/T) along the generated text itself."""
    params, chars, _ = word_model
    prime, n, T = "The cat", 60, 0.8
    text, ent = ex.generate(params, chars, prime, n, T, np.random.default_rng(3))
    if not isinstance(text, str) or len(text) != n:
        fail(f"generate(..., prime={prime!r}, n={n}) must return the {n} NEW characters as a str "
             f"(without the prime), got {type(text).__name__} of length {len(text)}")
    ent = np.asarray(ent)
    if ent.shape != (n,):
        fail(f"generate: entropies must have shape ({n},), one per generated character, got {ent.shape}")
    ids = rnn.encode(prime + text, chars)
    _, logp = rnn.forward(params, ids[:-1])                        # logp[t] predicts ids[t+1]
    want = [rnn.sample_probs(logp[len(prime) - 1 + t], T) for t in range(n)]
    want = np.array([-(p[p > 0] * np.log(p[p > 0])).sum() for p in want])
    check_close(ent, want, "generate: entropies[t] vs softmax(y_t/T) of the model along prime + text",
                hint="feed the whole prime first (the state starts at zeros), then at each step read the "
                     "last character, compute y = Why h + by, record entropy(softmax(y/T)), draw", rtol=1e-6)


def test_generate_at_tiny_temperature_is_greedy(ex, word_model):
    params, chars, _ = word_model
    prime, n = "A dog", 40
    text, _ = ex.generate(params, chars, prime, n, 1e-4, np.random.default_rng(0))
    ids = list(rnn.encode(prime, chars))
    for _ in range(n):                                             # greedy decoding, step by step
        _, logp = rnn.forward(params, np.array(ids))
        ids.append(int(np.argmax(logp[-1])))
    want = rnn.decode(ids[len(prime):], chars)
    if text != want:
        fail(f"generate at temperature 1e-4 should be greedy (argmax) decoding:\n  yours:    {text!r}\n"
             f"  expected: {want!r}")


def test_temperature_sweep_trends(ex, word_model):
    params, chars, train_text = word_model
    Ts = [0.1, 0.5, 1.0, 2.0]
    rows = ex.temperature_sweep(params, chars, train_text, Ts, 400, np.random.default_rng(0))
    keys = {"temperature", "entropy", "known_words", "repetition", "sample"}
    if len(rows) != len(Ts) or not all(keys <= set(r) for r in rows):
        fail(f"temperature_sweep must return one dict per temperature with keys {sorted(keys)}")
    if [r["temperature"] for r in rows] != Ts:
        fail(f"temperature_sweep: rows must follow the given temperatures {Ts}")
    for r in rows:
        if len(r["sample"]) != 400:
            fail(f"temperature_sweep: each sample must have n_chars=400 characters, got {len(r['sample'])}")
        check_close(r["known_words"], ex.known_word_share(r["sample"], train_text),
                    f"temperature_sweep at T={r['temperature']}: known_words of its own sample")
        check_close(r["repetition"], ex.repetition_rate(r["sample"]),
                    f"temperature_sweep at T={r['temperature']}: repetition of its own sample")
    ent = [r["entropy"] for r in rows]
    if not all(a < b for a, b in zip(ent, ent[1:])):
        fail(f"temperature_sweep: the mean entropy must grow with T, got {np.round(ent, 3).tolist()} at T={Ts}")
    by_T = {r["temperature"]: r for r in rows}
    if not by_T[0.5]["known_words"] > by_T[2.0]["known_words"]:
        fail(f"temperature_sweep: a trained model should write more real words at T=0.5 than at T=2; "
             f"got {by_T[0.5]['known_words']:.2f} vs {by_T[2.0]['known_words']:.2f}")
    if not by_T[0.1]["repetition"] > by_T[2.0]["repetition"]:
        fail(f"temperature_sweep: low temperature should repeat itself more; repetition at T=0.1 "
             f"{by_T[0.1]['repetition']:.2f} vs T=2 {by_T[2.0]['repetition']:.2f}")


def small_run(ex, tmp_path, capsys):
    path = tmp_path / "words.txt"
    path.write_text(("the cat sat on the mat and the dog ran to its red ball. " * 60), encoding="utf-8")
    return run_main(ex, ["--data", str(path), "--hidden-size", "16", "--steps", "5",
                         "--temperatures", "0.1", "1.0", "--chars", "100"], capsys)


def test_main_runs_on_a_small_text(ex, tmp_path, capsys):
    needs(ex, *ex.CORE)                                            # main() stops at the first one not written yet
    out = small_run(ex, tmp_path, capsys)
    if "entropy (nats)" not in out or "low-temperature loop" not in out:
        fail("main() should print the table of entropies and the low-temperature explanation")


def test_main_with_the_stretch_part_measures_the_samples(ex, tmp_path, capsys):
    needs(ex, *ex.CORE, *ex.STRETCH)
    out = small_run(ex, tmp_path, capsys)
    if "known words" not in out or "repeated 3-grams" not in out or "optional stretch" in out:
        fail("with the stretch part written, main() should print the known words and repeated 3-grams columns")


# ----------------------------------------------------------------------------- checks of these tests

def test_a_missing_temperature_check_is_named():
    naive = types.SimpleNamespace(softmax_temperature=lambda y, T: np.exp(y / T) / np.exp(y / T).sum())
    with np.errstate(all="ignore"):
        message = failure_of(test_softmax_temperature_rejects_non_positive, naive, 0.0)
    assert message and "instead of raising ValueError" in message and "temperature must be > 0" in message, message


def test_a_crash_inside_your_code_names_the_line_and_the_likely_cause(tmp_path, monkeypatch):
    monkeypatch.setattr(exercise_checks, "EXERCISES_DIR", tmp_path)          # tmp_path plays exercises/
    mine = tmp_path / "mine.py"
    mine.write_text("import numpy as np\n\n\ndef draw(y, rng):\n    p = np.exp(y) / np.exp(y).sum()\n"
                    "    return int(rng.choice(p.size, p=p))\n", encoding="utf-8")
    module = load_module(mine, "_crash_check_mine")
    try:
        with np.errstate(all="ignore"):
            module.draw(np.array([1000.0, 1.0]), np.random.default_rng(0))
    except ValueError as exc:
        message = exercise_checks.crash_report(exc)
    else:
        pytest.fail("expected rng.choice to reject nan probabilities")
    assert message.startswith("your draw crashed: ValueError"), message
    assert "mine.py, line 6, in draw: return int(rng.choice(p.size, p=p))" in message, message
    assert "exp() overflowed" in message, message
    assert exercise_checks.crash_report(ValueError("raised outside exercises/")) is None
