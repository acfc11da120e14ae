"""compare.ipynb's and reproduce.ipynb's sections, and the run index (outputs/runs.csv)."""

from __future__ import annotations

import csv
from typing import Any

from posecore import charts
from posecore.experiments import compare_runs, write_run_index
from posecore.report import Table, keep
from posecore.reproduce import verdict_table
from posecore.workbook.sections import _number, _percent

# --- compare -------------------------------------------------------------------------------------


def comparison_table(run_name: str, comparison) -> Table:
    """One row per compared run (a posecore.compare_runs result): state, model, data, epochs done
    of planned, best and last validation metric with its protocol, speed, devices, AMP, code
    version and date (tables/compare_runs.json)."""
    metric = comparison.metric
    rows = [
        [
            r["run"],
            _state_text(r),
            r["model"],
            r["dataset"],
            f"{r['epochs_done']} of {r['epochs_planned']}",
            _percent(r["best"]),
            _percent(r["last"]),
            r["protocol"],
            r["images_per_s"],
            r["devices"],
            r["world_size"],
            r["amp"],
            f"{r['commit']}{' (dirty)' if r['dirty'] else ''}",
            r["date"],
        ]
        for r in comparison.runs
    ]
    columns = [
        "run",
        "state",
        "model",
        "dataset",
        "epochs",
        f"best {metric}",
        f"last {metric}",
        "validation protocol",
        "images/s",
        "devices",
        "world size",
        "AMP",
        "commit",
        "started",
    ]
    return keep(run_name, "compare_runs", Table(columns, rows, title=f"Runs compared ({metric} in percent)", digits=1))


def differing_params_table(run_name: str, comparison) -> Table:
    """The params keys whose values differ between the compared runs, one column per run
    (tables/compare_runs_differing.json)."""
    rows = [
        [key, *[_param_text(values[run]) for run in comparison.names]] for key, values in comparison.differing.items()
    ]
    note = "" if rows else "All compared runs have the same params."
    return keep(
        run_name,
        "compare_runs_differing",
        Table(["param", *comparison.names], rows, title="Params that differ", note=note),
    )


def comparison_notes(run_name: str, comparison) -> Table:
    """What makes the numbers not (yet) comparable (tables/compare_runs_notes.json)."""
    rows = [[note] for note in comparison.notes] or [["The runs share data, split and protocol."]]
    return keep(run_name, "compare_runs_notes", Table(["note"], rows, title="Before comparing"))


def comparison_curves(run_name: str, comparison):
    """Training loss and the validation metric of every compared run, overlaid (compare_curves.png)."""
    return keep(run_name, "compare_curves", charts.plot_runs_curves(comparison.logs, comparison.metric))


# --- reproduce -----------------------------------------------------------------------------------


def reproduction_table(result: dict) -> Table:
    """posecore.reproduce's verdict, reasons and comparisons (reproduce keeps it in the original
    run as tables/reproduce_verdict.json)."""
    return verdict_table(result)


def reproduction_runs(result: dict):
    """compare_runs of a reproduction's original and new run (the original alone when refused),
    for the comparison tables and curves side by side."""
    return compare_runs([result["original"], *filter(None, [result["run"]])])


def _state_text(run: dict) -> str:
    if run["state"] in ("running", "stopped"):
        return f"{run['state']} in epoch {run['last_epoch']} (last log {run['last_log_time']})"
    return run["state"]


def _param_text(value: Any) -> str:
    return "(absent)" if value is None else str(value)


def run_index() -> Table:
    """Refresh outputs/runs.csv and show it: every run folder with its headline numbers."""
    path = write_run_index()
    with open(path, newline="") as f:
        runs = list(csv.DictReader(f))
    shown = (
        "run",
        "state",
        "model",
        "dataset",
        "epochs_done",
        "epochs_planned",
        "metric",
        "best",
        "last",
        "images_per_s",
        "commit",
        "date",
    )
    numbers = ("epochs_done", "epochs_planned", "best", "last", "images_per_s")
    rows = [
        [
            _percent(_number(run[c])) if c in ("best", "last") else _number(run[c]) if c in numbers else run[c]
            for c in shown
        ]
        for run in runs
    ]
    return Table(list(shown), rows, title=f"Runs in {path.parent} ({path.name}; metrics in percent)", digits=1)
