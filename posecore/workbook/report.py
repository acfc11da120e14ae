"""The run-folder report: tables and figures kept by the notebooks, rendered as report.html.

The notebook sections (posecore.workbook.sections) return a figure or a `Table` and `keep` a copy
in the run folder (figures/<name>.png, tables/<name>.json).

A notebook cannot export itself while it runs, so `write_report` assembles an nbformat notebook
from those files (markdown + display outputs, PNGs inlined as base64) and renders
outputs/<run>/report.html with nbconvert's HTMLExporter, code hidden. The seeds' reference rows
are always in it.
"""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from posecore.runs import atomic_write, read_json, run_dir, write_json
from posecore.viz import save_figure

# The seed runs this workbook reproduces, values as published (text, so that no digit is rounded
# away). Each row says how it was measured: the two models were scored under different protocols,
# so only a run with the same protocol is directly comparable.
REFERENCE_ROWS: tuple[dict, ...] = (
    {"run": "FastPose SE-ResNet-50 seed, 8P-GPU", "dataset": "COCO val2017", "metric": "AP (gt mAP)",
     "value": "72.24", "protocol": "AlphaPose in-training validation: ground-truth boxes, no flip test"},
    {"run": "FastPose SE-ResNet-50 seed, 8P-NPU", "dataset": "COCO val2017", "metric": "AP (gt mAP)",
     "value": "71.61", "protocol": "AlphaPose in-training validation: ground-truth boxes, no flip test"},
    {"run": "Hourglass-52 seed, 8P-GPU", "dataset": "MPII val", "metric": "PCKh@0.5",
     "value": "89.0189", "protocol": "mmpose top-down: official PCKh@0.5, flip test"},
    {"run": "Hourglass-52 seed, 8P-NPU", "dataset": "MPII val", "metric": "PCKh@0.5",
     "value": "88.9383", "protocol": "mmpose top-down: official PCKh@0.5, flip test"},
)
REFERENCE_COLUMNS = ("run", "dataset", "metric", "value", "protocol")

# Report order: the sections of the workbook, then anything else by name.
SECTIONS = ("data", "train", "eval", "viz", "export", "infer", "compare")


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
        return (f'<table class="posecore">{caption}<thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(body)}</tbody></table>{note}")

    def _repr_html_(self) -> str:
        return self.to_html()

    def _format(self, value: Any) -> str:
        if isinstance(value, float):
            if math.isnan(value):
                return "n/a"
            tiny = value != 0 and abs(value) < 10 ** -self.digits  # e.g. parity differences
            return f"{value:.2e}" if tiny else f"{value:.{self.digits}f}"
        return str(value)

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "note": self.note, "digits": self.digits, "highlight": list(self.highlight)}

    @classmethod
    def from_dict(cls, data: dict) -> "Table":
        return cls(**data)


def reference_table(rows: Sequence[dict] = (), title: str = "Results and the seeds' reference runs",
                    note: str = "") -> Table:
    """This run's rows (dicts with REFERENCE_COLUMNS keys) in bold above the seeds' reference rows."""
    all_rows = [[row.get(c, "") for c in REFERENCE_COLUMNS] for row in (*rows, *REFERENCE_ROWS)]
    return Table(REFERENCE_COLUMNS, all_rows, title=title, note=note, digits=2,
                 highlight=tuple(range(len(rows))))


def save_table(run_name: str, name: str, table: Table) -> Path:
    """outputs/<run>/tables/<name>.json, read back by `write_report`."""
    return write_json(run_dir(run_name) / "tables" / f"{name}.json", table.to_dict())


def load_table(path: str | Path) -> Table:
    return Table.from_dict(read_json(path))


def run_path(run_name: str, name: str) -> Path:
    """A file of the run folder, e.g. run_path(run, "model.onnx")."""
    return run_dir(run_name) / name


def run_figure(run_name: str, name: str):
    """A figure file of the run (figures/<name>.png) for display."""
    from IPython.display import Image

    return Image(filename=str(run_dir(run_name, create=False) / "figures" / f"{name}.png"))


def save_run_figure(run_name: str, name: str, fig) -> Path:
    """outputs/<run>/figures/<name>.png."""
    return save_figure(fig, run_dir(run_name) / "figures" / f"{name}.png")


def _section_key(path: Path) -> tuple[int, bool, str]:
    """Workbook section first, then tables before figures, then the name."""
    prefix = path.stem.split("_", 1)[0]
    return (SECTIONS.index(prefix) if prefix in SECTIONS else len(SECTIONS), path.suffix == ".png", path.stem)


def report_notebook(run_name: str):
    """An nbformat notebook with the run's tables and figures as display outputs (no code to show)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    folder = run_dir(run_name, create=False)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {folder} does not exist; run the notebooks with run_name={run_name!r} first")

    def display_cell(mime: str, data: str):
        return new_code_cell(source="", outputs=[new_output("display_data", data={mime: data})])

    cells = [new_markdown_cell(f"# posecore run `{run_name}`\n\n{_run_summary(folder)}")]
    tables = list((folder / "tables").glob("*.json"))
    if not any(path.stem == "eval_results" for path in tables):
        cells.append(display_cell("text/html", reference_table().to_html()))
    for path in sorted(tables + list((folder / "figures").glob("*.png")), key=_section_key):
        if path.suffix == ".json":
            cells.append(display_cell("text/html", load_table(path).to_html()))
        else:
            cells.append(new_markdown_cell(f"### {path.stem.replace('_', ' ')}"))
            cells.append(display_cell("image/png", base64.b64encode(path.read_bytes()).decode("ascii")))
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"}})
    nbformat.validate(notebook)
    return notebook


def write_report(run_name: str, title: str | None = None) -> Path:
    """Render outputs/<run>/report.html from the run's saved tables and figures (code hidden),
    and refresh the run index outputs/runs.csv (posecore.experiments.write_run_index)."""
    from nbconvert import HTMLExporter

    from posecore.experiments import write_run_index

    notebook = report_notebook(run_name)
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title or f"posecore {run_name}"}})
    written = atomic_write(run_dir(run_name) / "report.html", body)
    write_run_index()
    return written


def _run_summary(folder: Path) -> str:
    """Markdown lines on what the run is: params name, model, dataset, device."""
    lines = []
    params_file = folder / "params.yaml"
    if params_file.is_file():
        params = yaml.safe_load(params_file.read_text()) or {}
        model, data = params.get("model", {}), params.get("data", {})
        lines.append(f"- params: `{params.get('name', '')}`; model `{model.get('name', '')}`"
                     f" ({model.get('num_joints', '')} joints); dataset `{data.get('dataset', '')}`"
                     f" at `{data.get('root') or 'synthetic'}`; input (w, h) {data.get('input_size')}")
    env_file = folder / "env.json"
    if env_file.is_file():
        env = read_json(env_file)
        shown = {k: env[k] for k in ("device", "devices", "torch", "hostname", "git_commit") if k in env}
        if shown:
            lines.append("- environment: " + ", ".join(f"{k} `{v}`" for k, v in shown.items()))
    return "\n".join(lines) or "(no params.yaml in the run folder yet)"


def keep(run_name: str, name: str, shown: Any) -> Any:
    """Save a figure (figures/<name>.png) or a Table (tables/<name>.json) of the run; return it for display."""
    if isinstance(shown, Table):
        save_table(run_name, name, shown)
    else:
        save_run_figure(run_name, name, shown)
    return shown
