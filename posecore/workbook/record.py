"""What makes an executed notebook read as the record of a run: the params as a table (with what
the params file and the seed say where they differ), the run's summary, a link to report.html,
a kept figure shown again (`run_figure`), and a one-line `Note` where there is nothing to show
yet (instead of an empty figure or table).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posecore.experiments import read_run
from posecore.params import SHORTCUTS, ParamsError, flat_params, load_params
from posecore.report import Table, keep, run_relative
from posecore.runs import Run, resolve_path

# the keys every params table shows, differing or not: what a reader asks first about a run
HEADLINE_KEYS = (
    "model.name",
    "model.depth",
    "model.num_joints",
    "data.dataset",
    "data.root",
    "data.input_size",
    "data.heatmap_size",
    "data.codec",
    "train.batch_size",
    "train.epochs",
    "train.lr",
    "train.optimizer",
    "train.amp",
    "train.seed",
    "eval.flip_test",
)
# the seed config each model mirrors (fastpose -> fastpose_coco, hourglass -> hourglass_mpii)
SEEDS = dict(SHORTCUTS)


@dataclass(frozen=True)
class Note:
    """One line shown in place of a figure or table that has nothing in it yet."""

    text: str

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f'<p class="posecore-note"><em>{html.escape(self.text)}</em></p>'


@dataclass(frozen=True)
class Link:
    """A file of the run as a link that opens it (in JupyterLab: relative to the notebook)."""

    path: Path
    text: str
    href: str

    def __repr__(self) -> str:
        return f"{self.text}: {self.href}"

    def _repr_html_(self) -> str:
        return (
            f'<p>📄 <a href="{html.escape(self.href, quote=True)}" target="_blank" rel="noopener">'
            f"{html.escape(self.text)}</a> <small>({html.escape(self.href)})</small></p>"
        )


def notebook_folder(run_folder: Path) -> Path:
    """The folder of the running notebook. JupyterLab names the notebook in JPY_SESSION_NAME; a
    headless papermill run cannot know where its executed copy goes, so the workbook's convention
    is assumed: the executed copies of a run are kept in outputs/<run>/notebooks/ (docs/workbook.md, demo)."""
    session = os.environ.get("JPY_SESSION_NAME")
    if session and session.endswith(".ipynb"):
        path = Path(session)
        return (path if path.is_absolute() else Path.cwd() / path).parent
    return Run.at(run_folder).notebooks_dir


def report_link(report: str | os.PathLike, run_name: str | None = None) -> Link:
    """A link to a written report.html, relative to the notebook (see `notebook_folder`)."""
    path = resolve_path(report)
    href = Path(os.path.relpath(path, notebook_folder(path.parent))).as_posix()
    name = run_name or path.parent.name
    return Link(path, f"{Run.REPORT} of run {name}", href)


def run_figure(run_name: str, name: str):
    """A figure the run keeps (figures/<name>.png, posecore.report.keep) for display."""
    from IPython.display import Image  # optional dependency (the notebooks extra), imported on use

    return Image(filename=str(Run(run_name).figures_dir / f"{name}.png"))


# --- params --------------------------------------------------------------------------------------


def _sibling(name: str) -> dict[str, Any] | None:
    """Flat params of a params file by name, or None where there is no such file."""
    try:
        return flat_params(load_params(name))
    except (ParamsError, OSError, ValueError):
        return None


def params_table(resolved) -> Table:
    """The params of a run as rows (section, key, value), with the value of its params file where
    an override changed it and the value of the seed config its model mirrors where that differs.

    Shows HEADLINE_KEYS and every key that differs from the file or the seed; the complete record
    is the run's params.yaml.
    """
    values = flat_params(resolved)
    own = _sibling(resolved.name) if resolved.name else None
    seed_name = SEEDS.get(resolved.model.name)
    seed = _sibling(seed_name) if seed_name and seed_name != resolved.name else None
    file_label = f"{resolved.name}.yaml" if own is not None else "params file"
    seed_label = f"seed ({seed_name}.yaml)" if seed is not None else "seed"
    rows, highlight = [], []
    for key, value in values.items():
        if key == "name" or "." not in key:
            continue
        in_file = own.get(key) if own is not None and own.get(key) != value else ""
        in_seed = seed.get(key) if seed is not None and seed.get(key) != value else ""
        overridden = own is not None and own.get(key) != value
        if key not in HEADLINE_KEYS and not overridden and in_seed == "":
            continue
        if overridden:
            highlight.append(len(rows))
        section, name = key.split(".", 1)
        rows.append(
            [section, name, _text(value), _text(in_file) if overridden else "", _text(in_seed) if in_seed != "" else ""]
        )
    shown_keys = len(rows)
    note = (
        f"{shown_keys} of {len(values) - 1} keys: the headline ones and those that differ from the params "
        f"file or the seed; bold rows are overridden. The complete record is {Run.PARAMS} in the run folder."
    )
    return Table(
        ["section", "key", "value", file_label, seed_label],
        rows,
        title=f"Params {resolved.name or ''}".strip(),
        note=note,
        highlight=tuple(highlight),
    )


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if value == "" or value is None:
        return "''" if value == "" else "none"
    return str(value)


# --- the run -------------------------------------------------------------------------------------


def run_summary(result: dict) -> Table:
    """A posecore.train result as one table: run, state, epochs and steps, devices and world size,
    images/s, data wait, skipped steps, best and last validation metric with its protocol, and the
    checkpoints relative to the run folder (tables/train_summary.json)."""
    folder = Path(result["run_dir"])
    run = read_run(folder.name)
    metric = run["metric"]
    files = Run.at(folder)
    kept = [run_relative(path, folder) for path in (files.last_path, files.best_path) if path.is_file()]
    rows = [
        ["run", run["run"]],
        ["state", run["state"] + ("" if result.get("stopped") in (None, "", "done") else f" ({result['stopped']})")],
        ["epochs", f"{run['epochs_done']} of {run['epochs_planned']}"],
        ["optimizer steps", result.get("steps")],
        ["devices", f"{run['devices'] or 'n/a'}, world size {result.get('world_size')}"],
        ["images/s (all devices)", _rounded(result.get("images_per_s"), 1)],
        ["data wait", _share(result.get("data_wait"))],
        ["skipped steps (non-finite loss)", result.get("skipped_steps", 0)],
        [f"best {metric}", _metric(metric, run["best"], run["protocol"])],
        [f"last {metric}", _metric(metric, run["last"], run["protocol"])],
        ["checkpoints", ", ".join(kept) or "none"],
    ]
    return keep(folder.name, "train_summary", Table(["", "value"], rows, title=f"Run {run['run']}"))


def _rounded(value: Any, digits: int) -> Any:
    return round(value, digits) if isinstance(value, (int, float)) else "n/a"


def _share(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else "n/a"


def _metric(metric: str, value: Any, protocol: str) -> str:
    if value is None:
        return "no validation yet"
    shown = value if metric.startswith("PCKh") else value * 100  # COCO stats are fractions, PCKh percent
    return f"{shown:.2f} % ({protocol})"
