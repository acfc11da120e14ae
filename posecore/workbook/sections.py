"""What the workbook notebooks call: one block per notebook, each cell one call plus its display.

`notebook_params` resolves every notebook's parameters the same way. The section helpers
(dataset check and statistics, training curves, results against the seeds' reference rows,
per-joint and threshold charts, export tables) return a figure or a `Table` and `keep` a copy in
the run folder for report.html (posecore.report).
"""

from __future__ import annotations

import csv
import dataclasses
import html
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posecore import charts, viz
from posecore.data import (
    annotation_stats,
    build_dataset,
    check_annotations,
    check_layout,
    dataset_root,
    ensure_synthetic,
    load_people,
    make_synthetic,
    make_synthetic_video,
    read_rgb,
    steps_per_epoch,
    synthetic_root,
    uses_coco_layout,
)
from posecore.data.layouts import coco_style_layout
from posecore.evaluation import primary_metric
from posecore.experiments import compare_runs, write_run_index
from posecore.files import REPO_ROOT, read_json
from posecore.inference import track_colour, tracks_from_results
from posecore.keypoints import DATASETS, from_record
from posecore.optim import batch_plan, schedule
from posecore.params import SHORTCUTS, Params, load_params
from posecore.report import Table, keep, reference_table, run_relative
from posecore.reproduce import verdict_table
from posecore.runs import Run, outputs_root, resolve_path, run_dir
from posecore.scoring import person_errors
from posecore.workbook.browser import worst_predictions as worst_gallery
from posecore.workbook.record import Note

# --- notebook parameters -------------------------------------------------------------------------


def notebook_params(
    model: str = "fastpose",
    params: str | None = None,
    data_root: str | None = None,
    overrides: dict | None = None,
    epochs: int | None = None,
):
    """The Params a workbook notebook runs with (the same rules as train.ipynb).

    `params` (a name in params/ or a path) defaults to the model's seed config (fastpose ->
    fastpose_coco, hourglass -> hourglass_mpii). `data_root` sets data.root (None or "" keeps the
    params' data.root), `epochs` sets train.epochs; `overrides` (dotted keys) are applied last.
    """
    if model not in SHORTCUTS:
        raise ValueError(f"model must be one of {sorted(SHORTCUTS)}, got {model!r}")
    fixed = {"data.root": str(data_root)} if data_root else {}
    if epochs:
        fixed["train.epochs"] = int(epochs)
    return load_params(params or model, {**fixed, **(overrides or {})})


def run_params(
    run_name: str,
    model: str = "fastpose",
    params: str | None = None,
    data_root: str | None = None,
    overrides: dict | None = None,
    epochs: int | None = None,
):
    """The Params of a notebook after training (eval, visualize, export, infer): the run's own
    (its params.yaml: model, keypoint set, codec) when `run_name` names a run; else
    `notebook_params(model, params, ...)`, for what has no run yet (an upstream checkpoint, the
    oracle). `data_root` and `overrides` apply either way (e.g. {"eval.flip_test": False})."""
    run = Run(run_name)
    if not run.exists():
        return notebook_params(model, params, data_root, overrides, epochs)
    if params:
        warnings.warn(
            f"run {run_name!r} has its own params ({run.params_path}): params {params!r} is not "
            "used (it is for runs that have none yet); change settings with overrides",
            stacklevel=2,
        )
    fixed = {"data.root": str(data_root)} if data_root else {}
    return load_params(run.params(), {**fixed, **(overrides or {})})


def checkpoint_for(params: Params, checkpoint: str | None) -> str | None:
    """The checkpoint argument of a notebook: none needed (or used) with eval.oracle."""
    return None if params.eval.oracle else checkpoint


# --- prepare_data --------------------------------------------------------------------------------


@dataclass
class LayoutCheck:
    """A dataset folder against the official layout: what is missing and where to get it."""

    root: Path
    dataset: str
    problems: list[str]
    synthetic: bool

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        kind = "synthetic " if self.synthetic else ""
        if self.ok:
            return f"{kind}{self.dataset.upper()} dataset at {self.root}: layout complete"
        return f"{self.dataset.upper()} dataset at {self.root} is incomplete:\n" + "\n".join(
            f"  - {problem}" for problem in self.problems
        )

    def _repr_html_(self) -> str:
        if self.ok:
            return f"<p>✅ {html.escape(str(self))}</p>"
        items = "".join(f"<li>{_link_urls(html.escape(p))}</li>" for p in self.problems)
        return (
            f"<p>❌ {self.dataset.upper()} dataset at <code>{html.escape(str(self.root))}</code> "
            f"is incomplete:</p><ul>{items}</ul>"
        )


def _link_urls(text: str) -> str:
    return re.sub(r"(https?://[^\s,;)]+)", r'<a href="\1">\1</a>', text)


def prepare_dataset(params: Params, data_root: str | None = None, synthetic: dict | None = None) -> LayoutCheck:
    """Check `data_root` against the official layout of params' dataset, building a synthetic
    dataset first when there is no data_root (at outputs/data/synthetic_<dataset>, data.root "")
    or when `synthetic` (posecore.data.make_synthetic arguments) is given."""
    dataset = params.data.dataset
    root = resolve_path(data_root) if data_root else synthetic_root(dataset)
    build = not data_root or synthetic is not None
    if build:
        make_synthetic(root, dataset=dataset, **(synthetic or {}))
    return LayoutCheck(root, dataset, check_layout(root, dataset), build)


def dataset_params(params: Params, check: LayoutCheck):
    """params reading the checked folder (what the statistics and examples show)."""
    return dataclasses.replace(params, data=dataclasses.replace(params.data, root=str(check.root)))


def _annotation_files(check: LayoutCheck) -> dict[str, Path]:
    if uses_coco_layout(check.dataset):
        return {s: coco_style_layout(check.dataset).ann_file(check.root, s) for s in ("train", "val")}
    return {s: check.root / "annotations" / f"mpii_{s}.json" for s in ("train", "val")}


def dataset_statistics(run_name: str, check: LayoutCheck):
    """Persons per image, labelled joints, box sizes of the train and val annotations (data_statistics.png)."""
    if not check.ok:
        return check
    stats = {split: annotation_stats(path, check.dataset) for split, path in _annotation_files(check).items()}
    where = run_relative(check.root, run_dir(run_name))
    title = f"{'synthetic ' if check.synthetic else ''}{check.dataset.upper()} ({where})"
    return keep(run_name, "data_statistics", charts.plot_dataset_stats(stats, title))


def annotation_checks(run_name: str, params: Params, check: LayoutCheck):
    """The person entries of the train and val annotations that training and evaluation skip as
    malformed, by reason with example ids (tables/data_annotation_checks.json)."""
    if not check.ok:
        return check
    rows = []
    for split, path in _annotation_files(check).items():
        # a custom file's own category sets the joint count (the params learn it from the file)
        joints = None if check.dataset == "custom" else params.model.num_joints
        bad = check_annotations(path, check.dataset, joints)
        rows.append([split, path.name, bad.total, bad.count, bad.reasons() or "none"])
    table = Table(
        ["split", "file", "person entries", "skipped", "why (example ids)"],
        rows,
        title="Malformed person entries",
        note="skipped entries are left out of training and evaluation; fix them in the file",
    )
    return keep(run_name, "data_annotation_checks", table)


def dataset_gallery(run_name: str, params: Params, check: LayoutCheck, count: int = 8):
    """The first `count` train images of the checked folder with their labelled people (data_examples.png)."""
    if not check.ok:
        return check
    dataset = build_dataset(dataset_params(params, check), "train")
    by_image: dict[int, list] = {}
    for inst in dataset.instances:
        by_image.setdefault(inst.image_id, []).append(inst)
    items = [
        {
            "image": read_rgb(people[0].image_path),
            "gt": [np.concatenate([p.joints, p.visible[:, None]], 1) for p in people],
            "title": f"image {image_id}: {len(people)} labelled",
        }
        for image_id, people in list(by_image.items())[:count]
    ]
    return keep(run_name, "data_examples", viz.plot_gallery(items, dataset.info))


# --- train ---------------------------------------------------------------------------------------


def training_log(run_name: str) -> list[dict]:
    run = Run(run_name)
    if not run.log_path.is_file():
        raise FileNotFoundError(f"{run.log_path} does not exist: train run {run_name!r} first (train.ipynb)")
    return run.log()


def lr_schedule(params: Params, npus: int = 1, run_name: str | None = None):
    """The LR of every optimizer step the run will take (posecore.optim.schedule, as the engine
    steps it), shown before training; a run that resumes marks the step it resumes from."""
    ensure_synthetic(params)
    world = npus * params.dist.nnodes
    _, accumulate = batch_plan(params.train, world)
    people = load_people(params, "train")[0]
    steps = steps_per_epoch(len(people), params.train.batch_size, world, accumulate)
    if steps < 1:
        return Note(f"the train split has {len(people)} people, less than one optimizer step")
    done = [r["step"] for r in Run(run_name).log() if r.get("type") == "train"] if run_name else []
    return charts.plot_lr_schedule(schedule(params.train, steps), steps, done[-1] if done else None)


def training_curves(run_name: str):
    """Loss and learning rate against the step (train_curves.png)."""
    return keep(run_name, "train_curves", charts.plot_training_curves(training_log(run_name)))


def validation_history(run_name: str, params: Params):
    """The primary validation metric against the epoch (train_validation.png), or a one-line Note
    when the run has not validated yet."""
    log = training_log(run_name)
    if not any(r.get("type") == "val" for r in log):
        return _no_validation(params)
    return keep(run_name, "train_validation", charts.plot_validation(log, primary_metric(params)))


def _no_validation(params: Params) -> Note:
    every = params.train.val_every
    when = (
        f"train.val_every is {every}: the first validation comes after epoch {every}"
        if every
        else "train.val_every is 0: training does not validate (run eval.ipynb)"
    )
    return Note(f"No validation yet ({when}).")


def validation_table(run_name: str, params: Params = None) -> Table | Note:
    """Every validation of the run: epoch, step and its scalar metrics (tables/train_validation.json);
    a one-line Note when there is none yet."""
    records = [r for r in training_log(run_name) if r.get("type") == "val"]
    if not records:
        return _no_validation(params) if params is not None else Note("No validation yet.")
    shown = [k for k in ("AP", "AP50", "AP75", "AR", "gt_AP", "PCKh", "PCKh@0.1") if any(k in r for r in records)]
    rows = [[r.get("epoch"), r.get("step"), *[_percent(r.get(k)) for k in shown]] for r in records]
    return keep(
        run_name,
        "train_validation",
        Table(["epoch", "step", *shown], rows, title="Validation during training (percent)"),
    )


def _percent(value: Any) -> Any:
    """COCO stats are fractions, PCKh already percent; the tables show percent throughout."""
    return value * 100.0 if isinstance(value, float) and abs(value) <= 1.0 else value


# --- eval ----------------------------------------------------------------------------------------


def eval_metrics(run_name: str) -> dict:
    """The run's eval/metrics.json (see posecore.runs.Run.eval_metrics)."""
    return Run(run_name).eval_metrics()


def results_table(run_name: str, params: Params) -> Table:
    """This run's metrics, each with its protocol, above the seeds' reference rows (kept as the table eval_results)."""
    metrics = eval_metrics(run_name)
    settings = metrics.get("settings", {})
    data = _data_description(params, run_name)
    flip = "flip test" if settings.get("flip_test") else "no flip test"
    oracle = " [oracle: encoded ground truth, no model]" if settings.get("oracle") else ""
    rows = []
    if uses_coco_layout(params.data.dataset):
        boxes = "ground-truth boxes" if settings.get("split", "val") == "val" else "detector boxes"
        if "AP" in metrics:
            rows.append(
                {
                    "run": run_name,
                    "dataset": data,
                    "metric": "AP",
                    "value": 100 * metrics["AP"],
                    "protocol": f"COCOeval (HRNet/mmpose): {boxes}, {flip}, OKS-NMS{oracle}",
                }
            )
        info = DATASETS.get(params.data.dataset)
        for part in [name for name, _ in info.parts] + ["wholebody"] if info and info.parts else []:
            if f"{part}_AP" in metrics:  # COCO-WholeBody's protocol: each part with its own joints and sigmas
                rows.append(
                    {
                        "run": run_name,
                        "dataset": data,
                        "metric": f"{part} AP",
                        "value": 100 * metrics[f"{part}_AP"],
                        "protocol": f"COCO-WholeBody per part: COCOeval on the {part} joints with their "
                        f"sigmas, {boxes}, {flip}{oracle}",
                    }
                )
        if "gt_AP" in metrics:
            rows.append(
                {
                    "run": run_name,
                    "dataset": data,
                    "metric": "AP (gt mAP)",
                    "value": 100 * metrics["gt_AP"],
                    "protocol": "AlphaPose in-training validation: ground-truth boxes, no flip test" + oracle,
                }
            )
    elif "PCKh" in metrics:
        rows.append(
            {
                "run": run_name,
                "dataset": data,
                "metric": f"PCKh@{params.eval.pckh_thr:g}",
                "value": metrics["PCKh"],
                "protocol": f"official PCKh (mmpose): {flip}{oracle}",
            }
        )
    note = "Compare rows of the same protocol and data only; the seed rows are full-schedule runs on the real datasets."
    return keep(run_name, "eval_results", reference_table(rows, note=note))


def _data_description(params: Params, run_name: str) -> str:
    root = dataset_root(params.data)
    synthetic = (root / "synthetic.json").is_file()
    name = "COCO-layout" if uses_coco_layout(params.data.dataset) else "MPII-layout"
    return (
        f"synthetic {name} val"
        if synthetic
        else f"{params.data.dataset.upper()} val ({run_relative(root, run_dir(run_name))})"
    )


def per_joint_table(run_name: str) -> Table:
    """The evaluation's per-joint table (eval/, runs.EvalFiles.per_joint)."""
    path = Run(run_name).eval_files.per_joint
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: evaluate run {run_name!r} first (eval.ipynb)")
    with open(path) as f:
        rows = list(csv.reader(f))
    values = [[_number(v) for v in row] for row in rows[1:]]
    return Table(rows[0], values, title="Per joint", digits=3)


def metrics_table(run_name: str) -> Table:
    """Every number of the run's eval/metrics.json (what `evaluate` prints with verbose), one row
    each (tables/eval_metrics.json)."""
    metrics = eval_metrics(run_name)
    rows = [
        [name, value]
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    note = "COCO values are fractions (AP 0.72 = 72 AP); -1 means the split has no person of that size."
    return keep(
        run_name,
        "eval_metrics",
        Table(["metric", "value"], rows, title="Every metric of the evaluation", note=note, digits=4),
    )


def _number(text: str) -> Any:
    try:
        return float(text) if "." in text or "e" in text.lower() or text.lower() == "nan" else int(text)
    except ValueError:
        return text


def per_joint_figure(run_name: str):
    """Per-joint bars: mean keypoint similarity (COCO) or PCKh (MPII) (eval_per_joint.png)."""
    table = per_joint_table(run_name)
    metric = table.columns[2]  # joint, count, then the main per-joint value (mean_similarity / PCKh@thr)
    values = {row[0]: row[2] for row in table.rows}
    label = "mean keypoint similarity (OKS term) of matched persons" if metric == "mean_similarity" else metric
    return keep(run_name, "eval_per_joint", charts.plot_per_joint(values, label))


def threshold_figure(run_name: str):
    """AP at each OKS threshold (COCO) or PCKh against the threshold (MPII) (eval_thresholds.png)."""
    metrics = eval_metrics(run_name)
    if "ap_per_oks" in metrics:
        thresholds = [float(k) for k in metrics["ap_per_oks"]]
        fig = charts.plot_threshold_curve(
            thresholds,
            [100 * v for v in metrics["ap_per_oks"].values()],
            "OKS threshold",
            "AP (%)",
            "AP at each OKS threshold",
        )
    elif "pckh_curve" in metrics:
        curve = metrics["pckh_curve"]
        fig = charts.plot_threshold_curve(
            curve["thresholds"],
            curve["mean"],
            "threshold (fraction of head size)",
            "PCKh (%)",
            "PCKh against the threshold",
        )
    else:
        raise ValueError(f"{run_name}: the eval metrics have neither ap_per_oks nor pckh_curve")
    return keep(run_name, "eval_thresholds", fig)


def worst_predictions(run_name: str, params: Params, count: int = 8):
    """The persons with the lowest OKS / PCKh, drawn on their images (eval_worst.png)."""
    dataset = build_dataset(params, "val")
    errors = person_errors(dataset, Run(run_name).eval_dir, params.eval.pckh_thr)
    return keep(run_name, "eval_worst", worst_gallery(dataset, errors, count))


# --- export --------------------------------------------------------------------------------------


def parity_table(exported: dict) -> Table:
    """onnxruntime against PyTorch: max abs difference per batch size and output."""
    parity = exported.get("parity") or {}
    rows = [
        [batch, name, diff, "yes" if diff <= parity.get("tolerance", 0) else "NO"]
        for batch, diffs in (parity.get("batches") or {}).items()
        for name, diff in diffs.items()
    ]
    rows += [
        ["people, Predictor", f"keypoints (median px), {case}", found["median_px"], "yes" if found["ok"] else "NO"]
        for case, found in (parity.get("predictor") or {}).items()
    ]
    folder = Path(exported["path"]).parent  # the run folder, where the export notebook writes
    weights = run_relative(exported["checkpoint"], folder) if exported.get("checkpoint") else "as built (no checkpoint)"
    note = (
        f"{Path(exported['path']).name}: opset {exported['opset']}, input {exported['input_shape']}, "
        f"outputs {exported['output_names']}, {exported['size_mb']} MB, weights {weights}. Outputs: "
        f"random inputs; keypoints: Predictor.from_checkpoint against Predictor.from_onnx on one "
        f"image, crop to decode"
    )
    return Table(
        ["batch", "output", "max abs diff", "within tolerance"],
        rows,
        title="ONNX parity (onnxruntime vs PyTorch)",
        note=note,
    )


def latency_rows_table(rows: list[dict]) -> Table:
    """posecore.export.latency_table rows as a table."""
    columns = list(rows[0]) if rows else ["batch", "pytorch_ms", "onnxruntime_ms", "speedup", "threads"]
    return Table(columns, [[row[c] for c in columns] for row in rows], title="CPU latency, median ms")


def onnx_example(run_name: str, params: Params, onnx_path: str | Path) -> Table:
    """Run examples/onnx_infer.py (onnxruntime + numpy + OpenCV only) on the first val person;
    its drawing goes to figures/export_example.png and its printout into the returned table."""
    instance = build_dataset(params, "val").instances[0]
    x0, y0, x1, y1 = _person_box(instance, params.data.bbox_padding)
    out = Run(run_name).figures_dir / "export_example.png"
    command = [
        sys.executable,
        str(REPO_ROOT / "examples" / "onnx_infer.py"),
        str(onnx_path),
        instance.image_path,
        "--box",
        *(f"{v:.1f}" for v in (x0, y0, x1 - x0, y1 - y0)),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"examples/onnx_infer.py failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    folder = run_dir(run_name)
    shell = " ".join(run_relative(part, folder) if Path(part).is_absolute() else part for part in command[1:])
    return keep(
        run_name,
        "export_example",
        Table(
            ["joint", "x", "y", "score"],
            rows,
            title="Standalone onnxruntime example",
            note=f"in the run folder: python {shell}",
        ),
    )


def _person_box(instance, padding: float) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of a val person: its box, or for a set without boxes (MPII) the box its crop
    grows from (bbox_scale / padding around bbox_center), so that the example crops the same."""
    if instance.bbox_xyxy is not None:
        return tuple(float(v) for v in instance.bbox_xyxy)
    half = np.asarray(instance.bbox_scale, np.float64) / padding / 2
    center = np.asarray(instance.bbox_center, np.float64)
    return (*(center - half).tolist(), *(center + half).tolist())


def run_of(train_result: dict) -> str:
    """The run name of a posecore.train result (train.ipynb may leave run_name None)."""
    return Path(train_result["run_dir"]).name


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


# --- infer ---------------------------------------------------------------------------------------


def infer_inputs(source: str | None, detector: str | None) -> dict[str, str]:
    """The infer notebook's source and detector. An empty source is posecore's synthetic walking
    video (written now under <outputs>/data/synthetic_video), whose detections file is then the
    detector unless one is given; an empty detector is otherwise whole-image mode."""
    if source:
        return {"source": str(source), "detector": detector or "whole-image"}
    paths = make_synthetic_video(outputs_root() / "data" / "synthetic_video")
    return {"source": str(paths["video"]), "detector": detector or str(paths["detections"])}


def infer_table(summary: dict) -> Table:
    """posecore.infer's summary: counts, frames/s per stage and ms per frame."""
    fps, ms = summary["fps"], summary["ms_per_frame"]
    rows = [
        ["frames", summary["frames"]],
        ["persons", summary["persons"]],
        ["tracks", "n/a (no tracking)" if summary["tracks"] is None else summary["tracks"]],
        ["keypoint smoothing", summary.get("smoothing", "none")],
        ["detector frames/s", fps["detector"]],
        ["pose stage frames/s", fps["pose"]],
        ["end-to-end frames/s", fps["end_to_end"]],
        ["pose overhead beyond the forward", summary["pose_overhead"]],
        *[[f"{stage} ms/frame", value] for stage, value in ms.items()],
    ]
    note = " ".join(
        [
            f"{summary['source']} with {summary['detector']}, {summary['pose_backend']} pose model;",
            f"results in {summary['results']}.",
            *summary["notes"],
        ]
    )
    return Table(
        ["", "value"], [[name, "n/a" if value is None else value] for name, value in rows], title="Inference", note=note
    )


def infer_frames(summary: dict, count: int = 4):
    """A few evenly spaced frames of the drawn output (the .mp4 of a video, vis/ of images)."""
    if "video" in summary:
        frames = read_video_frames(summary["video"], count)
    else:
        files = sorted(Path(summary.get("vis", "")).glob("*.jpg"))
        picked = files[:: max(1, -(-len(files) // count))][:count] if files else []
        frames = [(path.name, read_rgb(path)) for path in picked]
    items = [{"image": image, "title": name} for name, image in frames]
    return viz.plot_gallery(items, from_record(summary["keypoints"], summary["results"]), ncols=min(count, 4), size=3.5)


TRAJECTORY_JOINTS = ("nose", "head_top", "neck", "thorax")  # the first one a keypoint set has


def infer_trajectories(summary: dict, joint: str | None = None):
    """Per-person paths of `joint` through the source (see viz.plot_trajectories), over the middle
    frame of the drawn video when there is one. None: the first of TRAJECTORY_JOINTS the model's
    keypoint set has, else its first joint."""
    names = summary["joint_names"]
    if joint is None:
        joint = next((name for name in TRAJECTORY_JOINTS if name in names), names[0])
    if joint not in names:
        raise ValueError(f"joint {joint!r} is not one of the model's joints {names}")
    tracks = tracks_from_results(read_json(summary["results"]), names.index(joint))
    colors = {idx: tuple(c / 255.0 for c in reversed(track_colour(idx))) for idx in tracks}
    middle = read_video_frames(summary["video"], 1) if "video" in summary else []
    return viz.plot_trajectories(tracks, joint, colors, middle[0][1] if middle else None)


def read_video_frames(path: str | Path, count: int) -> list[tuple[str, np.ndarray]]:
    """(name "frame <i>", RGB image) of `count` evenly spaced frames of a video (the middle one for 1)."""
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = [total // 2] if count == 1 else np.linspace(0, max(total - 1, 0), count).round().astype(int)
        frames = []
        for index in dict.fromkeys(int(i) for i in wanted):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = capture.read()
            if ok:
                frames.append((f"frame {index}", cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
        return frames
    finally:
        capture.release()
