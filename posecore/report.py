"""The run's report: tables and figures kept in the run folder, rendered as report.html.

The notebook sections (posecore.workbook.sections) and the commands that judge a run
(posecore.reproduce) return a figure or a `Table` and `keep` a copy in the run folder
(figures/<name>.png, tables/<name>.json). This module sits below the workbook: anything that
writes a run may add to its report without depending on the notebook layer.

A notebook cannot export itself while it runs, so `write_report` builds outputs/<run>/report.html
from those files: one section per notebook (the results against the seeds first), each with its
heading, then its tables, then its figures under readable titles. The page is self-contained
(PNGs inlined as base64, no scripts, no network) and names paths relative to the run folder. The
seeds' reference rows are always in it.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posecore.experiments import write_run_index
from posecore.files import atomic_write, read_json, read_yaml, write_json
from posecore.runs import Run, resolve_path, run_dir, run_lock
from posecore.viz import save_figure

# The seed runs this workbook reproduces, values as published (text, so that no digit is rounded
# away). Each row says how it was measured: the two models were scored under different protocols,
# so only a run with the same protocol is directly comparable.
REFERENCE_ROWS: tuple[dict, ...] = (
    {
        "run": "FastPose SE-ResNet-50 seed, 8P-GPU",
        "dataset": "COCO val2017",
        "metric": "AP (gt mAP)",
        "value": "72.24",
        "protocol": "AlphaPose in-training validation: ground-truth boxes, no flip test",
    },
    {
        "run": "FastPose SE-ResNet-50 seed, 8P-NPU",
        "dataset": "COCO val2017",
        "metric": "AP (gt mAP)",
        "value": "71.61",
        "protocol": "AlphaPose in-training validation: ground-truth boxes, no flip test",
    },
    {
        "run": "Hourglass-52 seed, 8P-GPU",
        "dataset": "MPII val",
        "metric": "PCKh@0.5",
        "value": "89.0189",
        "protocol": "mmpose top-down: official PCKh@0.5, flip test",
    },
    {
        "run": "Hourglass-52 seed, 8P-NPU",
        "dataset": "MPII val",
        "metric": "PCKh@0.5",
        "value": "88.9383",
        "protocol": "mmpose top-down: official PCKh@0.5, flip test",
    },
)
REFERENCE_COLUMNS = ("run", "dataset", "metric", "value", "protocol")

# report.html's sections in order, keyed by the name prefix of what the notebooks keep: the
# results against the seeds first, then the workbook in its order; anything else goes last.
SECTIONS = {
    "eval": "Results",
    "why": "Why the AP is what it is",
    "data": "Data",
    "train": "Training",
    "viz": "Predictions",
    "export": "ONNX export",
    "infer": "Inference on images and videos",
    "compare": "Run comparison",
    "reproduce": "Reproduction",
}
# headings of kept figures in report.html (figure_title); tables carry their own titles
FIGURE_TITLES = {
    "data_statistics": "Annotation statistics of the train and val splits",
    "data_examples": "Training images with their labelled people",
    "train_curves": "Training loss and learning rate",
    "train_validation": "Validation metric by epoch",
    "eval_per_joint": "Accuracy per joint",
    "eval_thresholds": "Accuracy against the matching threshold",
    "eval_worst": "Worst predictions first, each zoomed to its person",
    "why_curves": "Precision-recall at OKS 0.75 as each error type is corrected (Ronchi & Perona)",
    "why_joints": "Error types per joint",
    "why_pckh": "PCKh of every joint against the threshold",
    "viz_heatmap": "The worst person with one joint's heatmap",
    "export_example": "The exported model on one val person (onnxruntime, numpy and OpenCV only)",
    "infer_frames": "Frames of the drawn output",
    "infer_trajectories": "Each person's path through the source",
    "compare_curves": "Loss and validation curves of the compared runs",
}
REPORT_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
h3 { font-size: 1em; margin: 1.5em 0 0.5em; }
table.posecore { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
table.posecore caption { text-align: left; font-weight: bold; padding: 0.3em 0; }
table.posecore th, table.posecore td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
table.posecore thead { background: #f3f3f3; }
figure { margin: 0; }
img { max-width: 100%; }
"""


@dataclass
class Table:
    """A small table that renders as HTML in notebooks and reports (rows are lists, one per column)."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    title: str = ""
    note: str = ""
    digits: int = 2
    highlight: Sequence[int] = field(default_factory=tuple)  # row indices shown in bold

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.columns)
        body = []
        for i, row in enumerate(self.rows):
            cells = "".join(f"<td>{html.escape(self._format(v))}</td>" for v in row)
            style = ' style="font-weight:bold"' if i in self.highlight else ""
            body.append(f"<tr{style}>{cells}</tr>")
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        note = f"<p><small>{html.escape(self.note)}</small></p>" if self.note else ""
        return (
            f'<table class="posecore">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{note}"
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        # the plain-text rendering of a notebook output: one line (the HTML is what people read)
        title = f"{self.title!r}: " if self.title else ""
        return f"Table({title}{len(self.rows)} rows x {len(self.columns)} columns {list(self.columns)})"

    def _format(self, value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            tiny = value != 0 and abs(value) < 10**-self.digits  # e.g. parity differences
            return f"{value:.2e}" if tiny else f"{value:.{self.digits}f}"
        return str(value)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
            "note": self.note,
            "digits": self.digits,
            "highlight": list(self.highlight),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Table:
        return cls(**data)


def reference_table(
    rows: Sequence[dict] = (), title: str = "Results and the seeds' reference runs", note: str = ""
) -> Table:
    """This run's rows (dicts with REFERENCE_COLUMNS keys) in bold above the seeds' reference rows."""
    all_rows = [[row.get(c, "") for c in REFERENCE_COLUMNS] for row in (*rows, *REFERENCE_ROWS)]
    return Table(REFERENCE_COLUMNS, all_rows, title=title, note=note, digits=2, highlight=tuple(range(len(rows))))


def save_table(run_name: str, name: str, table: Table) -> Path:
    """outputs/<run>/tables/<name>.json, read back by `write_report` (under the run's writer lock)."""
    folder = run_dir(run_name)
    with run_lock(folder, "a notebook's tables"):
        return write_json(Run.at(folder).tables_dir / f"{name}.json", table.to_dict())


def load_table(path: str | Path) -> Table:
    return Table.from_dict(read_json(path))


def run_path(run_name: str, name: str) -> Path:
    """A file of the run folder, e.g. run_path(run, "checkpoints/best.pt")."""
    return run_dir(run_name) / name


def save_run_figure(run_name: str, name: str, fig) -> Path:
    """outputs/<run>/figures/<name>.png (under the run's writer lock)."""
    folder = run_dir(run_name)
    with run_lock(folder, "a notebook's figures"):
        return save_figure(fig, Run.at(folder).figures_dir / f"{name}.png")


def run_relative(path: str | Path, folder: str | Path) -> str:
    """`path` as seen from the run folder `folder`, so that a report or note names no machine's
    absolute paths (e.g. "checkpoints/best.pt", "../data/synthetic_coco")."""
    return os.path.relpath(resolve_path(path), resolve_path(folder))


def figure_title(name: str) -> str:
    """The heading a kept figure gets in report.html: FIGURE_TITLES, else its name without the
    section prefix, in words."""
    if name in FIGURE_TITLES:
        return FIGURE_TITLES[name]
    words = name.split("_", 1)[-1].replace("_", " ")
    return words[:1].upper() + words[1:]


def _report_sections(folder: Path) -> list[tuple[str, list[Path | None], list[Path]]]:
    """(section title, tables, figures) in report order, within a section in the order kept; a
    None table stands for the seeds' reference rows of a run not evaluated yet."""

    def section(path: Path) -> str:
        prefix = path.stem.split("_", 1)[0]
        return prefix if prefix in SECTIONS else "other"

    def kept_order(paths):
        return sorted(paths, key=lambda path: (path.stat().st_mtime_ns, path.name))

    tables = list(Run.at(folder).tables_dir.glob("*.json"))
    figures = list(Run.at(folder).figures_dir.glob("*.png"))
    layout = []
    for key, title in (*SECTIONS.items(), ("other", "Other")):
        own_tables = kept_order(p for p in tables if section(p) == key)
        own_figures = kept_order(p for p in figures if section(p) == key)
        if key == "eval" and not any(p.stem == "eval_results" for p in tables):
            own_tables = [None, *own_tables]  # the seeds' reference rows are always in the report
        if own_tables or own_figures:
            layout.append((title, own_tables, own_figures))
    return layout


def report_html(run_name: str, title: str | None = None) -> str:
    """report.html of a run: a summary, then one section per workbook notebook (the results
    against the seeds first), each its heading, its tables, then its figures under their titles.
    Figures are inlined as base64 PNGs and nothing is loaded from the network."""
    folder = run_dir(run_name, create=False)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"run folder {folder} does not exist; run the notebooks with run_name={run_name!r} first"
        )
    title = title or f"posecore run {run_name}"
    parts = [f"<h1>{html.escape(title)}</h1>", _run_summary(folder)]
    for heading, tables, figures in _report_sections(folder):
        parts.append(f"<section><h2>{html.escape(heading)}</h2>")
        parts += [(reference_table() if path is None else load_table(path)).to_html() for path in tables]
        for path in figures:
            name = html.escape(figure_title(path.stem))
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<figure><h3>{name}</h3><img alt="{name}" src="data:image/png;base64,{data}"></figure>')
        parts.append("</section>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{REPORT_CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(run_name: str, title: str | None = None) -> Path:
    """Render outputs/<run>/report.html from the run's saved tables and figures (`report_html`),
    and refresh the run index outputs/runs.csv (posecore.experiments.write_run_index)."""
    run = Run(run_name)
    with run.lock(Run.REPORT):
        written = atomic_write(run.report_path, report_html(run_name, title))
    write_run_index()
    return written


def _run_summary(folder: Path) -> str:
    """An HTML list of what the run is: params name, model, dataset (relative to the run), device."""
    lines = []
    run = Run.at(folder)
    params_file = run.params_path
    if params_file.is_file():
        params = read_yaml(params_file)
        params = params if isinstance(params, dict) else {}
        model, data = (params.get(key) if isinstance(params.get(key), dict) else {} for key in ("model", "data"))
        root = run_relative(data["root"], folder) if data.get("root") else "synthetic"
        lines.append(
            f"params {_code(params.get('name', ''))}; model {_code(model.get('name', ''))}"
            f" ({html.escape(str(model.get('num_joints', '')))} joints); dataset"
            f" {_code(data.get('dataset', ''))} at {_code(root)}; input (w, h) {_code(data.get('input_size'))}"
        )
    env = run.env()
    if env:
        git = env.get("git") or {}
        commit = f"{git['commit'][:10]}{' (dirty)' if git.get('dirty') else ''}" if git.get("commit") else None
        shown = {
            "device": env.get("device_type"),
            "world size": env.get("world_size"),
            "torch": env.get("torch"),
            "host": env.get("hostname"),
            "commit": commit,
        }
        lines.append("environment: " + ", ".join(f"{k} {_code(v)}" for k, v in shown.items() if v is not None))
    if not lines:
        return f"<p>(no {Run.PARAMS} in the run folder yet)</p>"
    return "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def _code(value: Any) -> str:
    return f"<code>{html.escape(str(value))}</code>"


def keep(run_name: str, name: str, shown: Any) -> Any:
    """Save a figure (figures/<name>.png) or a Table (tables/<name>.json) of the run; return it for display."""
    if isinstance(shown, Table):
        save_table(run_name, name, shown)
    else:
        save_run_figure(run_name, name, shown)
    return shown
