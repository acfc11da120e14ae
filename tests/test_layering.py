"""The package's layers, read from the source: the notebook layer (posecore/workbook) sits on top,
and "load a run's model as it was trained" has one path (the Predictor and the trainer)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from posecore.files import REPO_ROOT

PACKAGE = REPO_ROOT / "posecore"
# the demo command line shows the workbook's sections; everything else stays below the notebooks
MAY_IMPORT_WORKBOOK = {"posecore/demo.py"}
# the steps of loading a trained model, each owned by one module and asked for by at most two others
LOADING_STEPS = {
    "resolve_keypoints": "posecore/data/annotations.py",
    "with_trained_codec": "posecore/checkpoints.py",
    "load_model": "posecore/checkpoints.py",
}


def _modules() -> dict[str, ast.Module]:
    return {
        path.relative_to(REPO_ROOT).as_posix(): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))
    }


def _imported(tree: ast.Module) -> set[str]:
    """Every module name an import statement names, lazy (inside a function) ones included."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_module_below_the_notebooks_imports_the_workbook():
    offenders = {
        path: sorted(
            name for name in _imported(tree) if name == "posecore.workbook" or name.startswith("posecore.workbook.")
        )
        for path, tree in _modules().items()
        if not path.startswith("posecore/workbook/") and path not in MAY_IMPORT_WORKBOOK
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_import_check_sees_a_lazy_import():
    tree = ast.parse("def f():\n    from posecore.workbook.sections import keep\n")
    assert "posecore.workbook.sections" in _imported(tree)


def test_loading_a_trained_model_is_asked_for_by_at_most_two_modules():
    callers = defaultdict(set)
    for path, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in LOADING_STEPS and path != LOADING_STEPS[name]:
                    callers[name].add(path)
    assert set(callers) == set(LOADING_STEPS), "a loading step is no longer called: update LOADING_STEPS"
    assert {name: paths for name, paths in callers.items() if len(paths) > 2} == {}
    assert "posecore/predictor.py" in set.intersection(*callers.values())


def test_layout_page_names_every_module_and_only_files_that_exist():
    page = (REPO_ROOT / "docs" / "layout.md").read_text()
    section = page[page.index("# Layout\n") :]
    block = section[section.index("```\n") + 4 :]
    block = block[: block.index("```")]
    named = set(re.findall(r"[\w/]+\.(?:py|yaml|ipynb)", block))
    files = {
        path.name
        for folder in ("posecore", "benchmarks", "examples", "params")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.suffix in (".py", ".yaml")
    }
    files -= {"__init__.py"}
    assert files - named == set(), "docs/layout.md does not name these files"
    # the tests' and docs' support modules may be named too
    existing = files | {path.name for folder in ("tests", "docs") for path in (REPO_ROOT / folder).glob("*.py")}
    assert {name for name in named if Path(name).name not in existing} == set(), (
        "docs/layout.md names files that do not exist"
    )
    # a name with its folder must be that file (a moved module leaves no stale path behind)
    with_folder = {name for name in named if "/" in name}
    assert {
        name
        for name in with_folder
        if not any((REPO_ROOT / top / name).is_file() for top in ("", "posecore", "notebooks"))
    } == set()


# --- rooms: no import cycles, deferred imports only for optional dependencies ----------------------

# packages that are one room each; every other module of posecore/ is a room of its own
PACKAGE_ROOMS = ("codec", "data", "models", "workbook")
# what may be imported inside a function: optional dependencies, imported on use
OPTIONAL_IMPORTS = (
    "onnxruntime",
    "onnx",
    "onnxconverter_common",
    "torch.utils.tensorboard",
    "torch_npu",
    "apex",
    "papermill",
    "nbclient",
    "ipywidgets",
    "IPython",
)


def _room(module: str) -> str | None:
    """posecore.codec.heatmap -> codec; posecore.params -> params; posecore (the facade) -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "posecore" and len(parts) > 1 else None


def _room_graph() -> dict[str, set[str]]:
    rooms = {
        path.stem if path.parent == PACKAGE else path.relative_to(PACKAGE).parts[0]
        for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "__init__.py"
    }
    graph: dict[str, set[str]] = defaultdict(set)
    for path, tree in _modules().items():
        source = _room(path[:-3].replace("/", ".").removesuffix(".__init__"))
        if source is None:  # the posecore/__init__ facade imports everything by design
            continue
        graph[source].update(room for room in map(_room, _imported(tree)) if room in rooms and room != source)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one room (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_between_rooms():
    graph = _room_graph()
    assert {"codec", "data", "params", "runs", "predictor", "export", "onnx_metadata"} <= set(graph)
    assert _cycles(graph) == []


def test_the_cycle_check_sees_a_cycle_through_a_lazy_import():
    graph = {"params": {"runs"}, "runs": {"files"}, "files": set()}
    assert _cycles(graph) == []
    lazy = ast.parse("def params(self):\n    from posecore.params import load_params\n")
    graph["runs"].update(room for room in map(_room, _imported(lazy)) if room)
    assert _cycles(graph) == [["params", "runs"]]


def test_deferred_imports_are_optional_dependencies_with_a_comment():
    offenders = []
    for path, tree in _modules().items():
        lines = (REPO_ROOT / path).read_text().splitlines()
        for function in (node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    optional = any(module == name or module.startswith(f"{name}.") for name in OPTIONAL_IMPORTS)
                    if not optional or "#" not in lines[node.lineno - 1]:
                        offenders.append(f"{path}:{node.lineno} {module}")
    assert offenders == [], "import these at the top (only optional dependencies are imported on use, with a comment)"
