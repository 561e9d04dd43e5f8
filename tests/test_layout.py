"""The shape of the code: who imports whom, and how long a function may grow.

implementation.py is the model and nothing else, so it imports no other module
of the project; no two modules import each other, even from inside a function;
the exercises never load matplotlib's module of figures to get a helper; and
no function outside tests/ and exercises/ grows past a screenful or two.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 100                # anywhere outside tests/ and exercises/
MAX_SCRIPT_FUNCTION_LINES = 80          # train_minimal.py, the script a learner reads first


def project_modules() -> dict[str, Path]:
    """{module name: file} for the project's own Python modules (not tests, exercises or benchmarks)."""
    mods = {p.stem: p for p in ROOT.glob("*.py")}
    mods.update({f"data.{p.stem}": p for p in (ROOT / "data").glob("*.py") if p.stem != "__init__"})
    return mods


def imported_names(path: Path) -> set[str]:
    """Every module name an import statement in `path` names, at any depth (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)   # from data import download
    return names


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    return {m: {n for n in imported_names(p) if n in mods and n != m} for m, p in mods.items()}


def find_cycle(graph: dict[str, set[str]]):
    """One cycle of the graph as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_model_module_imports_no_other_module_of_the_project():
    graph = import_graph()
    assert "implementation" in graph
    assert not graph["implementation"], (
        f"implementation.py imports {sorted(graph['implementation'])}: the model file holds only the model "
        "and depends on NumPy alone; move what needs files, the command line or the n-gram elsewhere")


def test_the_project_modules_import_each_other_without_a_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, ("import cycle (imports inside functions count): " + " -> ".join(cycle)
                           + "; move the shared piece into a module both can import")


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted((ROOT / "exercises").rglob("*.py")), ids=lambda p: p.name)
def test_no_exercise_imports_the_figures_module(path):
    bad = {n for n in imported_names(path) if n.split(".")[0] in ("visualization", "neuron_page")}
    assert not bad, (f"{path.relative_to(ROOT)} imports {sorted(bad)}: exercises import the model and small "
                     "helpers (analysis, safeio, checkpoints, cli), never the module of figures")


def long_functions(path: Path, limit: int) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_function_outside_tests_and_exercises_is_too_long():
    too_long = [f for name, p in project_modules().items() if name != "train_minimal"
                for f in long_functions(p, MAX_FUNCTION_LINES)]
    too_long += long_functions(ROOT / "train_minimal.py", MAX_SCRIPT_FUNCTION_LINES)
    assert not too_long, (f"functions over {MAX_FUNCTION_LINES} lines ({MAX_SCRIPT_FUNCTION_LINES} in "
                          "train_minimal.py): split them into named steps:\n" + "\n".join(too_long))


def test_the_day_one_part_of_the_model_comes_first_and_fits_an_afternoon():
    lines = (ROOT / "implementation.py").read_text(encoding="utf-8").splitlines()
    end = next((i for i, line in enumerate(lines) if "DAY 1 ENDS HERE" in line), None)
    assert end is not None, "implementation.py must mark where Day 1 ends ('DAY 1 ENDS HERE')"
    assert end <= 650, f"implementation.py's Day-1 part is {end} lines; keep it to 650"
    assert len(lines) <= 1100, f"implementation.py is {len(lines)} lines; keep the model file to 1,100"
    day1 = "\n".join(lines[:end])
    for name in ("def build_vocab", "def init_params", "def forward", "def loss_and_grads(", "def clip_grads",
                 "def adagrad_update", "def sample(", "def grad_check"):
        assert name in day1, f"{name[4:]} belongs to Day 1, before the 'DAY 1 ENDS HERE' banner"
