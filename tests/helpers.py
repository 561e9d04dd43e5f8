"""What the tests share: where the repository is, the list of exercises, one module loader,
one synthetic text.

tests/corpora.py (the reference corpora) and tests/textbook.py (min-char-rnn written
plainly) are named by what they hold; this file holds the small things that have no
better home and must exist exactly once.
"""

from __future__ import annotations

import importlib.util
import random
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
