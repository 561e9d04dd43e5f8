"""Exercise 5 (reference solution): who wrote the disputed Federalist Papers?

Twelve of the 85 Federalist Papers (49-58, 62, 63) were claimed by both
Hamilton and Madison. Mosteller and Wallace (1964) settled it with word
frequencies: all twelve are Madison's. Here a character-level RNN gets the
same question, two ways: by loss is the exercise (about 35 minutes), by state
the optional stretch part (about 30 minutes: hidden_features,
fit_logistic_regression, predict_proba, and step 5 of train_and_classify).

    by loss     one char-RNN per author, trained on his undisputed papers; a
                paper goes to the author whose model predicts it better, i.e.
                gives it the lower cross-entropy per character. The margin is
                the difference, in nats per character.
    by state    describe each paper by the mean hidden state of both models
                over the paper (implementation.forward) and classify those
                features with a logistic regression written in NumPy.

Both are first scored by k-fold cross-validation on the 65 undisputed papers of
the two authors (51 Hamilton, 14 Madison; Jay's five are not used), with every
model retrained in every fold, then applied to the twelve disputed papers.

The attribution is the standard one from the literature, not the labels in the
Gutenberg text (which prints MADISON over the disputed papers):
    Hamilton  1, 6-9, 11-13, 15-17, 21-36, 59-61, 65-85   (51 papers)
    Madison   10, 14, 37-48                                (14 papers)
    Jay       2-5, 64                                      (5 papers)
    joint     18-20  (Madison with Hamilton; left out of training)
    disputed  49-58, 62, 63

A fair race between two models. "Lower cross-entropy" compares two models, so
anything that makes one model better at English in general, not at one
author, decides the race: more training text, a luckier run. Two precautions:
both author models are fine-tuned from one shared base model trained on all
the training papers, and they read the same number of characters (Madison has
far fewer undisputed papers, so Hamilton's are sampled down to Madison's total).
Trained separately from scratch, the same models mostly picked whichever author's
model happened to train better.

Check your version:  python -m pytest tests/exercises/test_exercise_05_author_classifier.py
Run this file:       python exercises/solutions/exercise_05_solution.py   (about 40 seconds)
"""

import argparse
import re
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))  # the repo root, so `import implementation` works from any directory

import numpy as np  # noqa: E402

from implementation import (Trainer, build_vocab, encode, evaluate, forward,  # noqa: E402
                            init_params)
from cli import (ArgumentParser, UserError, integer, one_line_errors, read_data, not_written_yet,  # noqa: E402
                setup_numpy, write_next)


def parse_federalist(text):
    """Split the Project Gutenberg Federalist Papers (etext 1404) into the 85 papers.

    text: the whole file as a str. For every "FEDERALIST No. N" heading, keeps
    only the paper's own words: everything up to and including the salutation
    line "To the People of the State of New York:" (or "...York.": heading, title, newspaper
    and date, author line) is dropped, and so is everything from the signature
    on, the line that starts with "PUBLIUS" (signature and footnotes). Footnote
    markers such as "(1)" glued to a word are removed, the Gutenberg header
    and licence outside "*** START ..." / "*** END ..." are ignored, and the
    lines of each paragraph are joined with single spaces (the line breaks are
    the transcriber's, not the author's); paragraphs are separated by "\\n".
    Returns {N: text} for N = 1..85 (ints). Raises ValueError if it does not
    find exactly the 85 papers, each with its salutation.
    """
    text = text.lstrip("\ufeff")
    start = re.search(r"^\*\*\* ?START OF.*$", text, flags=re.M)
    end = re.search(r"^\*\*\* ?END OF.*$", text, flags=re.M)
    text = text[start.end() if start else 0:end.start() if end else len(text)]
    parts = re.split(r"^FEDERALIST No\. (\d+)\s*$", text, flags=re.M)
    papers = {}
    for number, body in zip(parts[1::2], parts[2::2]):
        n = int(number)
        salutation = re.search(r"^To the People of the State of New York[:.]?\s*$", body, flags=re.M)
        if salutation is None or n in papers:
            raise ValueError(f"parse_federalist: paper {n} has no salutation line or appears twice")
        body = body[salutation.end():]
        signature = re.search(r"^\s*PUBLIUS\b", body, flags=re.M)
        if signature:
            body = body[:signature.start()]
        body = re.sub(r"(?<=\S)\(\d{1,2}\)", "", body)            # footnote markers: "whole.(1)"
        paragraphs = [" ".join(line.strip() for line in p.splitlines() if line.strip())
                      for p in re.split(r"\n\s*\n", body)]
        papers[n] = "\n".join(p for p in paragraphs if p)
    if sorted(papers) != list(range(1, 86)):
        raise ValueError(f"parse_federalist: expected papers 1..85, found {len(papers)}")
    return papers


def standard_attribution():
    """The attribution of Mosteller and Wallace (1964) and the literature since.

    Returns {N: label} for N = 1..85, label one of "Hamilton", "Madison", "Jay",
    "joint" (18, 19, 20: Madison with Hamilton's help) or "disputed"
    (49-58, 62, 63). See the module docstring for the lists.
    """
    def span(a, b):
        return range(a, b + 1)

    groups = {
        "Hamilton": [1, *span(6, 9), *span(11, 13), *span(15, 17), *span(21, 36), *span(59, 61), *span(65, 85)],
        "Madison": [10, 14, *span(37, 48)],
        "Jay": [*span(2, 5), 64],
        "joint": [18, 19, 20],
        "disputed": [*span(49, 58), 62, 63],
    }
    return {n: label for label, numbers in groups.items() for n in numbers}


def train_author_model(text, chars, init=None, hidden_size=64, steps=1500, learning_rate=5e-3,
                       seq_length=64, batch_size=16, seed=0):
    """Train a char-RNN on `text` with implementation.Trainer (Adam, float32).

    text: the training text; chars: the shared vocabulary (list of V characters;
    all models must use the same one, so that their losses compare).
    init: None to start from init_params(V, hidden_size, np.random.default_rng(seed),
    dtype=np.float32, init_scale=0.1) (0.1 instead of the textbook's 0.01 skips
    a slow start), or a params dict to continue from (a copy of it: `init` itself
    is not changed; hidden_size and seed are then unused).
    Takes `steps` calls of Trainer.step() with a fresh Adam state.
    Returns params: Wxh (H,V), Whh (H,H), Why (V,H), bh (H,1), by (V,1).
    """
    if init is None:
        params = init_params(len(chars), hidden_size, np.random.default_rng(seed), dtype=np.float32,
                             init_scale=0.1)
    else:
        params = {k: v.copy() for k, v in init.items()}
    trainer = Trainer(params, encode(text, chars), batch_size=batch_size, seq_length=seq_length,
                      learning_rate=learning_rate, optimizer="adam")
    for _ in range(steps):
        trainer.step()
    return params


def cross_entropy(params, chars, text):
    """How well a model predicts `text`: mean cross-entropy in nats per character.

    implementation.evaluate(params, encode(text, chars))["nats"].
    """
    return evaluate(params, encode(text, chars))["nats"]


def classify_by_loss(models, chars, text):
    """Give `text` to the author whose model predicts it better.

    models: {author: params} for two authors; chars: the shared vocabulary.
    Returns (author, margin): the author whose model gives the lower
    cross_entropy, and margin = (the other model's cross-entropy) - (the
    winner's), in nats per character (>= 0; larger is surer).
    """
    ce = {a: cross_entropy(p, chars, text) for a, p in models.items()}
    (best, ce_best), (_, ce_other) = sorted(ce.items(), key=lambda kv: kv[1])
    return best, ce_other - ce_best


def train_and_classify(train_papers, train_labels, test_papers, chars, hidden_size=64,
                       base_steps=1500, finetune_steps=500, seed=0, by_state=False):
    """Train both authors' models on the training papers and classify the test papers by loss
    (and with by_state=True, the stretch part, by state too).

    train_papers: {N: text}; train_labels: {N: author}, exactly two authors,
    A < B in sorted order ("Hamilton" < "Madison"); test_papers: {N: text};
    chars: the shared vocabulary (it must contain "\\n", which joins papers).
    With rng = np.random.default_rng(seed):
    1. A shared base model: train_author_model on all training papers in the
       order rng.permutation(sorted numbers), joined with "\\n" (hidden_size,
       base_steps, seed=seed). Both authors' models start from it, so neither
       is better at English in general than the other.
    2. Each author's text: his papers in the order rng.permutation(his sorted
       numbers) (A first, then B), joined with "\\n"; the longer text is cut to the
       length of the shorter, so both models read the same amount.
    3. Each author's model: train_author_model(his text, chars, init=base,
       steps=finetune_steps, learning_rate=2e-3).
    4. By loss: classify_by_loss on each test paper.
    5. Only if by_state (the stretch part, once hidden_features,
       fit_logistic_regression and predict_proba are written): features =
       hidden_features under A's model followed by hidden_features under B's
       model (2H values), standardised with the mean and standard deviation
       (+ 1e-8) of the training papers' features; fit_logistic_regression on
       the training papers with y = 1 for author B; predict_proba on the test papers.
    Returns {N: {"loss": (author, margin)}} for every test paper; with by_state,
    each also holds "hidden": (author, p_B), the author B if p_B > 0.5, else A.
    """
    authors = sorted(set(train_labels.values()))
    if len(authors) != 2:
        raise ValueError(f"train_and_classify: need exactly two authors, got {authors}")
    rng = np.random.default_rng(seed)
    everything = "\n".join(train_papers[n] for n in rng.permutation(sorted(train_papers)))
    base = train_author_model(everything, chars, hidden_size=hidden_size, steps=base_steps, seed=seed)
    texts = {}
    for a in authors:
        numbers = [n for n in sorted(train_papers) if train_labels[n] == a]
        texts[a] = "\n".join(train_papers[n] for n in rng.permutation(numbers))
    cap = min(len(t) for t in texts.values())
    models = {a: train_author_model(texts[a][:cap], chars, init=base, steps=finetune_steps, learning_rate=2e-3)
              for a in authors}
    out = {n: {"loss": classify_by_loss(models, chars, test_papers[n])} for n in sorted(test_papers)}
    if not by_state:
        return out

    def features(papers):                                         # (papers, 2H): mean state under A's, then B's model
        return np.array([np.concatenate([hidden_features(models[a], chars, papers[n]) for a in authors])
                         for n in sorted(papers)])

    X_train, X_test = features(train_papers), features(test_papers)
    mu, sd = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8
    y = np.array([train_labels[n] == authors[1] for n in sorted(train_papers)], dtype=np.float64)
    w, b = fit_logistic_regression((X_train - mu) / sd, y)
    for n, p in zip(sorted(test_papers), predict_proba(w, b, (X_test - mu) / sd)):
        out[n]["hidden"] = (authors[1] if p > 0.5 else authors[0], float(p))
    return out


def cross_validate(papers, labels, chars, k=5, hidden_size=64, base_steps=1500, finetune_steps=500, seed=0,
                   by_state=False):
    """k-fold cross-validation, retraining the models in every fold.

    papers: {N: text}; labels: {N: author} for the papers to use (two authors);
    chars: the shared vocabulary. Folds are stratified: each author's papers,
    shuffled with np.random.default_rng(seed), are dealt round-robin into k folds.
    Fold f is classified by train_and_classify(all other folds, fold f, chars,
    hidden_size, base_steps, finetune_steps, seed + f, by_state).
    Returns {"predictions": {N: train_and_classify's entry} for every paper,
             "accuracy": {"loss": float}}, with by_state also "hidden": float:
    for each method, the share of papers whose predicted author is the label.
    """
    rng = np.random.default_rng(seed)
    folds = [[] for _ in range(k)]
    for a in sorted(set(labels.values())):
        numbers = [n for n in sorted(labels) if labels[n] == a]
        for i, n in enumerate(rng.permutation(numbers)):
            folds[i % k].append(int(n))
    predictions = {}
    for f, test in enumerate(folds):
        train = [n for g, fold in enumerate(folds) if g != f for n in fold]
        predictions.update(train_and_classify({n: papers[n] for n in train}, {n: labels[n] for n in train},
                                              {n: papers[n] for n in test}, chars, hidden_size, base_steps,
                                              finetune_steps, seed + f, by_state))
    methods = ("loss", "hidden") if by_state else ("loss",)
    accuracy = {m: float(np.mean([predictions[n][m][0] == labels[n] for n in labels])) for m in methods}
    return {"predictions": predictions, "accuracy": accuracy}


# -----------------------------------------------------------------------------
# Stretch (optional): a second classifier, by the mean hidden state
# -----------------------------------------------------------------------------


def hidden_features(params, chars, text, num_chunks=32):
    """(Stretch.) The model's mean hidden state over `text`: a fixed-length description of it.

    The ids of `text` are cut into num_chunks contiguous chunks of
    L = len(ids) // num_chunks characters (the remainder at the end is
    dropped), run side by side as one batch through implementation.forward
    from h = 0: inputs (L, num_chunks), inputs[:, b] = ids[b*L : (b+1)*L].
    Returns (H,) float64: the mean of h_t over all L * num_chunks positions
    (hs[1:] from forward; hs[0] is the initial zero state).
    """
    ids = encode(text, chars)
    L = len(ids) // num_chunks
    inputs = ids[:L * num_chunks].reshape(num_chunks, L).T        # (L,B) chunk b is column b
    hs, _ = forward(params, inputs)                               # hs (L+1,H,B)
    return hs[1:].mean(axis=(0, 2)).astype(np.float64)            # (H,)


def fit_logistic_regression(X, y, l2=0.1, steps=5000, balanced=True):
    """(Stretch.) Logistic regression by full-batch gradient descent, in NumPy.

    X: (N,D) features (standardise them first); y: (N,) labels in {0, 1}.
    Minimises the weighted mean log-loss plus an L2 penalty on w (not on b):
        J(w, b) = sum_i c_i * -[y_i ln s_i + (1-y_i) ln(1-s_i)] + (l2/2) ||w||^2,
        s_i = sigmoid(X_i w + b),
    with weights c_i summing to 1: c_i = 1/N, or with balanced=True c_i
    proportional to 1 / (number of examples of class y_i), so that both classes
    weigh the same however many examples each has.
    Gradient: dJ/dw = X^T (c * (s - y)) + l2 w,  dJ/db = sum(c * (s - y)).
    Starts from w = 0, b = 0 and takes `steps` steps of size 1/L, where
    L = l2 + (largest eigenvalue of [X 1]^T diag(c) [X 1]) / 4 bounds how fast the
    gradient can change: with a larger step, descent can overshoot and diverge.
    Returns (w, b): (D,) float64 and a float.
    """
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if balanced:
        c = np.where(y == 1, 1.0 / max(1, (y == 1).sum()), 1.0 / max(1, (y == 0).sum()))
    else:
        c = np.ones_like(y)
    c = c / c.sum()                                               # weights summing to 1
    X1 = np.hstack([X, np.ones((len(X), 1))]) * np.sqrt(c)[:, None]
    L = l2 + np.linalg.norm(X1, 2) ** 2 / 4                       # sigmoid' <= 1/4
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(steps):
        s = 0.5 * (1.0 + np.tanh(0.5 * (X @ w + b)))              # (N,) sigmoid, written so it never overflows
        r = c * (s - y)                                           # (N,) weighted residuals
        w -= (X.T @ r + l2 * w) / L
        b -= r.sum() / L
    return w, float(b)


def predict_proba(w, b, X):
    """(Stretch.) P(y = 1 | x) = sigmoid(X w + b) for each row of X (N,D). Returns (N,)."""
    z = np.asarray(X, dtype=np.float64) @ w + b
    return 0.5 * (1.0 + np.tanh(0.5 * z))                         # = 1 / (1 + exp(-z)), never overflows


# -----------------------------------------------------------------------------
# Given: the script that runs your functions
# -----------------------------------------------------------------------------

CORE = ("parse_federalist", "standard_attribution", "train_author_model", "cross_entropy", "classify_by_loss",
        "train_and_classify", "cross_validate")                                      # the exercise
STRETCH = ("hidden_features", "fit_logistic_regression", "predict_proba")             # optional: by state
MAX_TEXT_MB = 5             # --data: tiny Shakespeare is 1.1 MB, War and Peace 3.2 MB; a bound on memory
MAX_VOCAB = 1000            # distinct characters: the output layer, Adam's state and evaluate() grow with each
METHODS = {"loss": "by loss (lower cross-entropy)", "hidden": "by mean hidden state + logistic regression"}


def read_papers(args):
    """The 85 papers of --data (cut to --max-chars) and their vocabulary, or UserError (one line)."""
    text, args.data = read_data(args.data, "federalist", max_bytes=MAX_TEXT_MB * 1_000_000)
    if not re.search(r"^FEDERALIST No\. 85\s*$", text, flags=re.M):
        raise UserError(f"--data {args.data}: not the Federalist Papers (no heading 'FEDERALIST No. 85'); "
                        "give Project Gutenberg's etext 1404")
    return text


def split_papers(text, args):
    """parse_federalist's papers, cut to --max-chars, and their shared vocabulary (with the "\\n" that joins them)."""
    try:
        papers = parse_federalist(text)
    except ValueError as e:                                        # not the 85 papers after all
        raise UserError(f"--data {args.data}: {e}") from None
    if args.max_chars:
        papers = {n: t[:args.max_chars] for n, t in papers.items()}
    chars = build_vocab("\n".join(papers.values()))
    if len(chars) > MAX_VOCAB:
        raise UserError(f"--data {args.data}: {len(chars):,} distinct characters; this script trains on at most "
                        f"{MAX_VOCAB:,}")
    return papers, chars


def print_results(cv, final, labels, attribution, args, start):
    """Cross-validated accuracies, the joint papers, and the table of the twelve disputed ones."""
    counts = {a: sum(1 for x in labels.values() if x == a) for a in ("Hamilton", "Madison")}
    print(f"\n{args.folds}-fold cross-validation on the {len(labels)} undisputed papers "
          f"(always guessing Hamilton would score {max(counts.values()) / len(labels):.1%}):")
    for method in cv["accuracy"]:
        per = {a: np.mean([cv["predictions"][n][method][0] == a for n in labels if labels[n] == a]) for a in counts}
        wrong = sorted(n for n in labels if cv["predictions"][n][method][0] != labels[n])
        print(f"  {METHODS[method]:<44} accuracy {cv['accuracy'][method]:6.1%}  (Hamilton {per['Hamilton']:.0%}, "
              f"Madison {per['Madison']:.0%}; wrong: {wrong})")
    if "hidden" not in cv["accuracy"]:
        print(f"  (the second classifier, by mean hidden state, is the optional stretch part: {', '.join(STRETCH)}; "
              "see HINTS.md, exercise 5)")
    disputed = [n for n, a in attribution.items() if a == "disputed"]
    joint = [n for n, a in attribution.items() if a == "joint"]
    state = "hidden" in cv["accuracy"]
    print("\njoint papers (Madison with Hamilton's help; not used for training):")
    for n in joint:
        (a, margin) = final[n]["loss"]
        print(f"  No. {n}: {a} by loss (margin {margin:.4f})"
              + (f", {final[n]['hidden'][0]} by state (P(Madison) {final[n]['hidden'][1]:.2f})" if state else ""))
    for method in cv["accuracy"]:
        madison = sum(final[n][method][0] == "Madison" for n in disputed)
        print(f"disputed papers given to Madison {('by ' + method).replace('hidden', 'state') + ':':<9} "
              f"{madison} of {len(disputed)}")
    print(f"(Mosteller and Wallace, 1964: all {len(disputed)} Madison.)  total time {time.time() - start:.0f} s")
    print(f"\nThe {len(disputed)} disputed papers, trained on all {len(labels)} undisputed ones "
          "(margin: the other model's cross-entropy minus the winner's, nats/char):")
    print(f"{'paper':>5}  {'by loss':<9}{'margin':>8}" + (f"   {'by state':<9}{'P(Madison)':>10}" if state else ""))
    for n in sorted(disputed):
        (a, margin) = final[n]["loss"]
        print(f"{n:5d}  {a:<9}{margin:8.4f}"
              + (f"   {final[n]['hidden'][0]:<9}{final[n]['hidden'][1]:10.2f}" if state else ""))


@one_line_errors(UserError, OSError)
def main(argv=None):
    """Cross-validate the classifiers on the undisputed papers, then attribute the twelve disputed ones."""
    setup_numpy()                                                 # BLAS threads (1 unless RNN_THREADS), memory reuse
    parser = ArgumentParser(description=__doc__.splitlines()[0],
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = parser.add_argument_group("data")
    d.add_argument("--data", default=None,
                   help=f"the Gutenberg text, at most {MAX_TEXT_MB} MB (default: data.download's federalist.txt, "
                        "fetched if missing)")
    d.add_argument("--max-chars", type=integer(200), default=None,
                   help="keep only the first MAX_CHARS characters of each paper (200 or more; quick trial runs)")
    m = parser.add_argument_group("models")
    m.add_argument("--hidden-size", type=integer(1, 512), default=64, help="H of the char-RNNs (1 to 512)")
    m.add_argument("--base-steps", type=integer(1, 1_000_000), default=1500,
                   help="steps of the shared base model (Adam, float32; 1 to 1,000,000)")
    m.add_argument("--finetune-steps", type=integer(1, 1_000_000), default=500,
                   help="steps of each author's fine-tuning (1 to 1,000,000)")
    m.add_argument("--folds", type=integer(2, 14), default=5,
                   help="k of the k-fold cross-validation (2 to 14: each fold holds one of Madison's 14 papers "
                        "or more)")
    m.add_argument("--seed", type=integer(0), default=0, help="seed of the folds, the sampling and the weights")
    args = parser.parse_args(argv)
    text = read_papers(args)
    if todo := not_written_yet(CORE, globals()):
        return write_next(5, todo[0], __file__)
    print("settings:", vars(args))
    start = time.time()
    papers, chars = split_papers(text, args)
    attribution = standard_attribution()
    labels = {n: a for n, a in attribution.items() if a in ("Hamilton", "Madison")}
    by_state = not not_written_yet(STRETCH, globals())
    print(f"{len(papers)} papers, vocabulary of {len(chars)} characters; undisputed: "
          f"{sum(a == 'Hamilton' for a in labels.values())} Hamilton, {sum(a == 'Madison' for a in labels.values())} "
          "Madison")
    cv = cross_validate(papers, labels, chars, args.folds, args.hidden_size, args.base_steps, args.finetune_steps,
                        args.seed, by_state=by_state)
    others = [n for n, a in attribution.items() if a in ("disputed", "joint")]
    final = train_and_classify({n: papers[n] for n in labels}, labels, {n: papers[n] for n in others}, chars,
                               args.hidden_size, args.base_steps, args.finetune_steps, args.seed + args.folds,
                               by_state=by_state)
    print_results(cv, final, labels, attribution, args, start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
