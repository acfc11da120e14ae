"""The package's layers, read from the source: the notebook layer (posecore/workbook) sits on top,
and "load a run's model as it was trained" has one path (the Predictor and the trainer)."""
from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from posecore.runs import REPO_ROOT

PACKAGE = REPO_ROOT / "posecore"
# the demo command line shows the workbook's sections; everything else stays below the notebooks
MAY_IMPORT_WORKBOOK = {"posecore/demo.py"}
# the steps of loading a trained model, each owned by one module and asked for by at most two others
LOADING_STEPS = {"resolve_keypoints": "posecore/data/annotations.py",
                 "with_trained_codec": "posecore/checkpoints.py",
                 "load_model": "posecore/checkpoints.py"}


def _modules() -> dict[str, ast.Module]:
    return {path.relative_to(REPO_ROOT).as_posix(): ast.parse(path.read_text())
            for path in sorted(PACKAGE.rglob("*.py"))}


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
    offenders = {path: sorted(name for name in _imported(tree)
                              if name == "posecore.workbook" or name.startswith("posecore.workbook."))
                 for path, tree in _modules().items()
                 if not path.startswith("posecore/workbook/") and path not in MAY_IMPORT_WORKBOOK}
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
    section = page[page.index("# Layout\n"):]
    block = section[section.index("```\n") + 4:]
    block = block[:block.index("```")]
    named = set(re.findall(r"[\w/]+\.(?:py|yaml|ipynb)", block))
    files = {path.name for folder in ("posecore", "benchmarks", "examples", "params")
             for path in (REPO_ROOT / folder).rglob("*") if path.suffix in (".py", ".yaml")}
    files -= {"__init__.py"}
    assert files - named == set(), "docs/layout.md does not name these files"
    assert {name for name in named if Path(name).name not in files} == set(), "docs/layout.md names files that do not exist"
    # a name with its folder must be that file (a moved module leaves no stale path behind)
    with_folder = {name for name in named if "/" in name}
    assert {name for name in with_folder if not any((REPO_ROOT / top / name).is_file()
                                                  for top in ("", "posecore", "notebooks"))} == set()
