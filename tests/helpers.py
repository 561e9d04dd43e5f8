"""What the tests share: where the repository is, the list of exercises, one module loader,
one synthetic text, the small models the analysis, figure and page tests read, and a
way to run a script in a child with bounded memory and time.

tests/corpora.py (the reference corpora) and tests/textbook.py (min-char-rnn written
plainly) are named by what they hold; this file holds the small things that have no
better home and must exist exactly once. The fixtures built from them (trained_model,
untrained_model) are in conftest.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import resource
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
EXERCISES_DIR = REPO_ROOT / "exercises"
SOLUTIONS_DIR = EXERCISES_DIR / "solutions"
EXERCISE_TESTS_DIR = REPO_ROOT / "tests" / "exercises"


# -----------------------------------------------------------------------------
# The exercises: one list, read by tests/exercises/conftest.py and tests/test_exercise_stubs.py
# -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Exercise:
    number: int
    stub: str                   # exercises/<stub>.py, the learner's file
    solution: str               # exercises/solutions/<solution>.py
    functions: tuple            # the gaps the learner fills in, in the stub's order

    @property
    def stub_path(self) -> Path:
        return EXERCISES_DIR / f"{self.stub}.py"

    @property
    def solution_path(self) -> Path:
        return SOLUTIONS_DIR / f"{self.solution}.py"

    @property
    def test_path(self) -> Path:
        return EXERCISE_TESTS_DIR / f"test_{self.stub}.py"

    def path(self, solutions: bool) -> Path:
        return self.solution_path if solutions else self.stub_path


EXERCISES = {ex.number: ex for ex in [
    Exercise(1, "exercise_01_build_rnn", "exercise_01_solution",
             ("get_batch", "rnn_step_forward", "forward_loss", "rnn_backward", "clip_gradients",
              "loss_and_clipped_grads")),
    Exercise(2, "exercise_02_temperature", "exercise_02_solution",
             ("softmax_temperature", "sample_with_temperature", "entropy", "generate", "known_word_share",
              "repetition_rate", "temperature_sweep")),
    Exercise(3, "exercise_03_own_data", "exercise_03_solution",
             ("collect_source", "shuffle_characters", "unigram_entropy", "balanced_bracket_share", "indent_share",
              "known_word_share", "train_on_text", "domain_report")),
    Exercise(4, "exercise_04_overfitting", "exercise_04_solution",
             ("smooth", "train_with_validation", "find_best_step", "plot_curves")),
    Exercise(5, "exercise_05_author_classifier", "exercise_05_solution",
             ("parse_federalist", "standard_attribution", "train_author_model", "cross_entropy", "classify_by_loss",
              "hidden_features", "fit_logistic_regression", "predict_proba", "train_and_classify",
              "cross_validate")),
]}


# -----------------------------------------------------------------------------
# Loading a file as a module
# -----------------------------------------------------------------------------

def load_module(path, name: str | None = None):
    """Import the file at `path` under `name` (default: "_loaded_<stem>"), registered in sys.modules.

    A private name per file, so a stub and its solution never collide; registered
    because dataclasses and pickling look modules up there. On an error the half-made
    module is removed again and the error propagates.
    """
    path = Path(path)
    name = name or f"_loaded_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


# -----------------------------------------------------------------------------
# A synthetic text
# -----------------------------------------------------------------------------

def synthetic_text(n_lines: int = 160, seed: int = 0) -> str:
    """A few KB of play-like text from a fixed random source.

    Several speakers ("ALICE:", "BOB:", "CAROL:" on their own lines), lines of a
    small vocabulary ("the cat sat on a mat ..."), and some phrases in "quotes" or
    (brackets), so every feature the plots look for occurs. Not symmetric: the
    choices are random, the line lengths vary. Only letters, spaces, newlines and
    . , ! ? : " ( ) occur.
    """
    r = random.Random(seed)
    speakers = ["ALICE", "BOB", "CAROL"]
    words = "the cat sat on a mat and dog ran far away from home to see my good lord said hello it".split()
    lines = []
    for _ in range(n_lines):
        ws = [r.choice(words) for _ in range(r.randint(3, 9))]
        i = r.randrange(len(ws))
        u = r.random()
        if u < 0.3:
            ws[i] = f'"{ws[i]} {r.choice(words)}"'
        elif u < 0.55:
            ws[i] = f"({ws[i]} {r.choice(words)})"
        lines.append(f"{r.choice(speakers)}:\n" + " ".join(ws) + r.choice(".,!?") + "\n")
    return "\n".join(lines)


# A few lines holding every feature of analysis.text_features: quotes, brackets, a tab, newlines.
FEW_LINES = ('The cat sat on the mat.\n"Hello," said the dog (quietly).\n'
             'It ran\tto the [old] door, and "the cat said no".\n'
             'A line with (brackets {inside} brackets) and more words.\n'
             '"Quotes" again; then a last line\n')


# -----------------------------------------------------------------------------
# Small models
# -----------------------------------------------------------------------------

def small_rnn(text: str, hidden: int, init_scale: float, seed: int, steps: int = 0) -> dict:
    """A char-RNN for `text`, trained for `steps` steps on its first 90%.

    The weights start as implementation.init_params(V, hidden, default_rng(seed), float64,
    init_scale); training is Adam (batch 8, 16 characters, learning rate 0.01, clip 5).
    Returns {"text", "chars", "init", "params", "train_text", "val_text"}.
    """
    import numpy as np

    import implementation as rnn

    chars = rnn.build_vocab(text)
    train_ids, _ = rnn.train_val_split(rnn.encode(text, chars), 0.1)
    init = rnn.init_params(len(chars), hidden, np.random.default_rng(seed), np.float64, init_scale)
    params = {k: v.copy() for k, v in init.items()}
    if steps:
        trainer = rnn.Trainer(params, train_ids, batch_size=8, seq_length=16, learning_rate=1e-2,
                              optimizer="adam", clip=5.0)
        for _ in range(steps):
            trainer.step()
        params = trainer.model_params
    return {"text": text, "chars": chars, "init": init, "params": params,
            "train_text": text[:len(train_ids)], "val_text": text[len(train_ids):]}


def rnn_and_ngram(text: str, order: int, rng, hidden: int = 12, init_scale: float = 0.3):
    """An untrained RNN (its weights drawn from `rng`) and an order-`order` Kneser-Ney n-gram
    counted on the first 90% of `text`: (params, ngram, chars, train_text, val_text)."""
    import numpy as np

    import implementation as rnn
    from ngram import NGram

    chars = rnn.build_vocab(text)
    n = int(len(text) * 0.9)
    params = rnn.init_params(len(chars), hidden, rng, np.float64, init_scale=init_scale)
    return params, NGram(order).fit(rnn.encode(text[:n], chars), len(chars)), chars, text[:n], text[n:]


def write_run(folder, params: dict, chars, text: str | None = None) -> list[str]:
    """A checkpoint of `params` and a two-step training log in train_minimal.py's formats, in
    `folder`, and `text` as text.txt if given; returns visualization.py's arguments for them."""
    import numpy as np

    import checkpoints
    import implementation as rnn

    folder = Path(folder)
    H = params["Whh"].shape[0]
    config = {"hidden_size": H, "vocab_size": len(chars), "init_scale": 0.5}
    ckpt = checkpoints.save_checkpoint(folder / "best.npz", params, rnn.init_optimizer("adagrad", params), chars,
                                       np.zeros((H, 1)), {"step": 2, "epoch": 0, "window": 2, "smooth_loss": 3.0,
                                                          "config": config})
    lines = [{"kind": "config", **config}] + [{"kind": "train", "step": s, "chars": 64 * s, "loss": 3.0}
                                              for s in (1, 2)]
    (folder / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    argv = ["--checkpoint", str(ckpt), "--log", str(folder / "log.jsonl")]
    if text is not None:
        (folder / "text.txt").write_text(text, encoding="utf-8")
        argv += ["--text", str(folder / "text.txt")]
    return argv


# -----------------------------------------------------------------------------
# Scripts in a child process, and what they leave behind
# -----------------------------------------------------------------------------

def run_script(args, timeout: float = 300, memory: int | None = None, cwd=REPO_ROOT, env=None):
    """subprocess.run([python, *args]) in `cwd` with output captured: a hang ends at `timeout`
    seconds (subprocess.TimeoutExpired), and with `memory` the child may map at most that many
    bytes (RLIMIT_AS), so a script that tries to allocate more fails instead of swapping."""
    def limit():
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1",
           **(env or {})}
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit)


def snapshot(folder) -> dict:
    """{path relative to folder: (kind, sha256 of a file's bytes or a link's target)} for everything
    under `folder`, links not followed and special files not opened: compare two snapshots to see
    that nothing changed and nothing was left behind."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            out[str(path.relative_to(folder))] = ("link", os.readlink(path))
        elif stat.S_ISREG(mode):
            out[str(path.relative_to(folder))] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            out[str(path.relative_to(folder))] = (stat.filemode(mode)[0], None)
    return out


def changed_since(before: dict, folder) -> list[str]:
    """The paths under `folder` added, removed or changed since snapshot(folder) gave `before`."""
    after = snapshot(folder)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
