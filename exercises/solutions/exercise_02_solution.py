"""Exercise 2 (reference solution): temperature, and what it does to samples.

Sampling draws the next character from p = softmax(y / T) instead of softmax(y).
T < 1 sharpens the distribution (safer, more repetitive text), T > 1 flattens it
(more surprising text, more misspellings).

The exercise (about 25 minutes): the tempered softmax, one draw from it, its
entropy (how uncertain each draw is, in nats; ln V is a uniform guess) and a
sampling loop that records the entropy of every draw:

    softmax_temperature, sample_with_temperature, entropy, generate

Stretch (optional, about 20 minutes): two measures of a sample and a sweep
that takes them at every temperature; without them the script prints the
entropies and the samples only.

    known_word_share              share of generated words that occur in the training text
    repetition_rate               share of word 3-grams that already occurred earlier in the sample
    temperature_sweep             generate and measure at each temperature

The post's low-temperature loop. As T -> 0, softmax(y/T) puts all its mass on
the largest logit: sampling becomes argmax, a deterministic function of the
hidden state. The state is a function of the text so far, so once the sample
reaches a phrase whose greedy continuation leads back to its own beginning,
it repeats that phrase forever ("is that they were all the same thing that was
a startup is that they were all the same thing ..."). The repetition rate
approaching 1 and the entropy approaching 0 at T = 0.1 measure exactly that.

Check your version:  python -m pytest tests/exercises/test_exercise_02_temperature.py
Run this file:       python exercises/solutions/exercise_02_solution.py   (trains for about half a minute)
"""

import argparse
import math
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # the repo root, so `import implementation` works from any directory

import numpy as np  # noqa: E402

from checkpoints import CheckpointError, load_checkpoint  # noqa: E402
from implementation import (Trainer, build_vocab, encode, evaluate, forward,  # noqa: E402
                            init_params, train_val_split)
from analysis import words  # noqa: E402
from cli import (ArgumentParser, UserError, integer, number, one_line_errors, read_data, not_written_yet,  # noqa: E402
                setup_numpy, write_next)


def softmax_temperature(y, temperature):
    """The distribution a sample is drawn from: softmax(y / temperature).

    y: (V,) or (V,1) logits; temperature: a float > 0 (raise ValueError otherwise).
    Returns p: (V,) float64 probabilities summing to 1. Must not overflow for
    large logits or tiny temperatures (y = 1000, T = 0.01).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(y, dtype=np.float64).ravel() / temperature     # (V,)
    e = np.exp(z - z.max())                                       # largest term is exp(0) = 1: no overflow
    return e / e.sum()


def sample_with_temperature(y, temperature, rng):
    """Draw one character id from softmax(y / temperature).

    y: (V,) or (V,1) logits; rng: np.random.Generator (the only source of randomness).
    Returns an int in [0, V).
    """
    p = softmax_temperature(y, temperature)
    return int(rng.choice(p.size, p=p))


def entropy(p):
    """Entropy of a distribution in nats: -sum_i p_i ln p_i, with 0 ln 0 = 0.

    p: (V,) probabilities. Returns a float >= 0 (ln V for the uniform distribution).
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    nz = p[p > 0]                                                 # 0 ln 0 = 0: leave zeros out
    return float(-(nz * np.log(nz)).sum())


def generate(params, chars, prime, n, temperature, rng):
    """Sample n characters after `prime`, recording the entropy of every draw.

    params: model dict (Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1));
    chars: the vocabulary (list of V characters); prime: a non-empty str of
    characters from chars, fed through the model first; rng: np.random.Generator.
    Returns (text, entropies): text, the n new characters (str, without the prime);
    entropies, (n,) array, entropies[t] = entropy of softmax(y_t / temperature),
    the distribution the t-th new character was drawn from.
    """
    ids = encode(prime, chars)
    h = None                                                      # forward starts from zeros
    if len(ids) > 1:
        hs, _ = forward(params, ids[:-1])                         # warm the state up on the prime
        h = hs[-1]                                                # (H,1)
    ix, out, ent = int(ids[-1]), [], np.zeros(n)
    for t in range(n):
        hs, logp = forward(params, [ix], h)                       # one step: read the last character
        h, y = hs[-1], logp[0]                                    # (H,1) state, (V,1) log p = y - logsumexp(y)
        # softmax(log p / T) = softmax(y / T): the two differ by a constant, which softmax ignores
        ent[t] = entropy(softmax_temperature(y, temperature))
        ix = sample_with_temperature(y, temperature, rng)
        out.append(chars[ix])
    return "".join(out), ent


# -----------------------------------------------------------------------------
# Stretch (optional): measuring a sample
# -----------------------------------------------------------------------------

def known_word_share(generated, training_text):
    """(Stretch.) Share of the words in `generated` that also occur in `training_text`.

    The words of a text are words(text) (imported from analysis: runs of
    letters, inner apostrophes kept, lower-cased). The last word of `generated`
    is left out when the text ends in the middle of it (its last character is a
    letter): a sample cut off mid-word has not finished that word. Counts every
    occurrence (word tokens). Returns a float in [0, 1]; nan if no word is left.
    (visualization.real_word_share(generated, set(words(training_text)))[0] is
    the same number: the test compares yours with it.)
    """
    ws = words(generated)
    if ws and generated[-1].isalpha():                            # cut off in the middle of its last word
        ws = ws[:-1]
    if not ws:
        return math.nan
    vocab = set(words(training_text))
    return sum(w in vocab for w in ws) / len(ws)


def repetition_rate(text, n=3):
    """(Stretch.) Share of the word n-grams of `text` that already occurred earlier in it.

    Words are words(text), all of them. With N words there are N-n+1 n-grams, U of
    them distinct: returns 1 - U / (N-n+1), a float in [0, 1); 0.0 if N < n.
    ("a b c a b c a b c" with n=3: 7 n-grams, 3 distinct -> 4/7.)
    """
    ws = words(text)
    grams = [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def temperature_sweep(params, chars, training_text, temperatures, n_chars, rng, prime="\n"):
    """(Stretch.) Generate n_chars at each temperature and measure the sample.

    prime: where each sample starts (characters of the vocabulary).
    Returns a list with one dict per temperature, in the given order:
        {"temperature": T, "entropy": mean of generate's entropies (nats),
         "known_words": known_word_share(sample, training_text),
         "repetition": repetition_rate(sample), "sample": the generated text}
    """
    rows = []
    for T in temperatures:
        text, ent = generate(params, chars, prime, n_chars, T, rng)
        rows.append({"temperature": float(T), "entropy": float(np.mean(ent)),
                     "known_words": known_word_share(text, training_text),
                     "repetition": repetition_rate(text), "sample": text})
    return rows


# -----------------------------------------------------------------------------
# Given: the script that runs your functions
# -----------------------------------------------------------------------------

CORE = ("softmax_temperature", "sample_with_temperature", "entropy", "generate")     # the exercise
STRETCH = ("known_word_share", "repetition_rate", "temperature_sweep")                # optional
MAX_TEXT_MB = 5             # --data: tiny Shakespeare is 1.1 MB, War and Peace 3.2 MB; a bound on memory
MAX_VOCAB = 1000            # distinct characters: the output layer, Adam's state and evaluate() grow with each
MAX_TEMPERATURES = 20


def model_to_sample(args, text, rng):
    """The --checkpoint's model, or a new one with its Trainer, set up (and checked) before any training.

    Returns {"params", "chars", "trainer" (None for a checkpoint), "train_chars", "val_ids"}.
    """
    if args.checkpoint:
        ck = load_checkpoint(args.checkpoint)
        if len(ck["chars"]) > MAX_VOCAB:
            raise UserError(f"--checkpoint {args.checkpoint}: a vocabulary of {len(ck['chars']):,} characters; "
                            f"this script samples from at most {MAX_VOCAB:,}")
        return {"params": ck["params"], "chars": ck["chars"], "trainer": None}
    chars = build_vocab(text)
    if len(chars) > MAX_VOCAB:
        raise UserError(f"--data {args.data}: {len(chars):,} distinct characters; this script trains on at most "
                        f"{MAX_VOCAB:,} (the output layer, its gradients and evaluate()'s tables grow with each)")
    train_ids, val_ids = train_val_split(encode(text, chars))
    params = init_params(len(chars), args.hidden_size, rng, dtype=np.float32)
    try:
        trainer = Trainer(params, train_ids, batch_size=32, seq_length=64, learning_rate=3e-3, optimizer="adam")
    except ValueError as e:                                        # a text too short for one batch
        raise UserError(f"--data {args.data}: {str(e).removeprefix('Streams: ')}") from None
    return {"params": params, "chars": chars, "trainer": trainer, "train_chars": len(train_ids),
            "val_ids": val_ids[:100_000]}


def print_sweep(rows, chars, stretch):
    """The table of the sweep, three samples, and what the lowest temperature shows."""
    measures = f"  {'known words':>11}  {'repeated 3-grams':>16}" if stretch else ""
    print(f"\n{'T':>5}  {'entropy (nats)':>14}{measures}")
    for r in rows:
        print(f"{r['temperature']:5.2f}  {r['entropy']:14.3f}"
              + (f"  {r['known_words']:11.1%}  {r['repetition']:16.1%}" if stretch else ""))
    if not stretch:
        print(f"(known words and repeated 3-grams: the optional stretch part, {', '.join(STRETCH)}; "
              "see HINTS.md, exercise 2)")
    for r in (rows[0], rows[len(rows) // 2], rows[-1]):
        print(f"\n--- T = {r['temperature']:g} ---\n{r['sample'][:300]}")
    low = min(rows, key=lambda r: r["temperature"])
    print(f"\nAt T = {low['temperature']:g} a draw has {low['entropy']:.2f} nats of entropy on average "
          f"(ln V = {np.log(len(chars)):.2f}): sampling is close to argmax,\na deterministic function of the "
          "state, so the text keeps returning to the same few phrases"
          + (f": {low['repetition']:.0%} of its word 3-grams are repeats." if stretch else ".")
          + "\nThat is the post's low-temperature loop.")


@one_line_errors(UserError, CheckpointError, OSError)
def main(argv=None):
    """Train a small model (or load a checkpoint) and sweep the temperature from 0.1 to 2."""
    setup_numpy()                                                 # BLAS threads (1 unless RNN_THREADS), memory reuse
    parser = ArgumentParser(description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = parser.add_argument_group("data and model")
    g.add_argument("--data", default=None,
                   help=f"UTF-8 training text, at most {MAX_TEXT_MB} MB and {MAX_VOCAB:,} distinct characters "
                        "(default: tiny Shakespeare via data.download)")
    g.add_argument("--checkpoint", default=None,
                   help="sample from this checkpoint (train_minimal.py's .npz) instead of training")
    g.add_argument("--hidden-size", type=integer(1, 512), default=128, help="H, the hidden state size (1 to 512)")
    g.add_argument("--steps", type=integer(1, 1_000_000), default=4000,
                   help="training steps (Adam, float32; 1 to 1,000,000)")
    g.add_argument("--seed", type=integer(0), default=0, help="seed for the weights and the samples")
    s = parser.add_argument_group("sweep")
    s.add_argument("--temperatures", type=number(0), nargs="+", default=[0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0],
                   help=f"temperatures to sample at (1 to {MAX_TEMPERATURES} numbers > 0)")
    s.add_argument("--chars", type=integer(1, 20_000), default=2000,
                   help="characters sampled per temperature (1 to 20,000)")
    args = parser.parse_args(argv)
    if len(args.temperatures) > MAX_TEMPERATURES:
        raise UserError(f"--temperatures: {len(args.temperatures)} values; give at most {MAX_TEMPERATURES}")
    rng = np.random.default_rng(args.seed)
    text, args.data = read_data(args.data, "tiny_shakespeare", max_bytes=MAX_TEXT_MB * 1_000_000)
    model = model_to_sample(args, text, rng)
    params, chars = model["params"], model["chars"]
    if todo := not_written_yet(CORE, globals()):
        return write_next(2, todo[0], __file__)
    print("settings:", vars(args))
    start = time.time()
    if model["trainer"] is None:
        print(f"loaded {args.checkpoint}")
    else:
        for _ in range(args.steps):
            model["trainer"].step()
        val = evaluate(params, model["val_ids"])
        print(f"trained {args.steps} steps on {model['train_chars']:,} characters in {time.time() - start:.0f} s: "
              f"validation {val['nats']:.3f} nats/char (uniform guess ln V = {np.log(len(chars)):.3f})")

    prime = text[0] if text[0] in chars else chars[0]             # a checkpoint may not know the text's first character
    stretch = not not_written_yet(STRETCH, globals())
    if stretch:
        rows = temperature_sweep(params, chars, text, args.temperatures, args.chars, rng, prime=prime)
    else:                                                          # the core part alone: entropies and samples
        rows = []
        for T in args.temperatures:
            sample, ent = generate(params, chars, prime, args.chars, T, rng)
            rows.append({"temperature": T, "entropy": float(np.mean(ent)), "sample": sample})
    print_sweep(rows, chars, stretch)
    print(f"\ntotal time {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
