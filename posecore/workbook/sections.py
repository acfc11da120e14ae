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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    read_rgb,
    steps_per_epoch,
    synthetic_root,
    uses_coco_layout,
)
from posecore.data.layouts import coco_style_layout
from posecore.evaluation import primary_metric
from posecore.keypoints import DATASETS
from posecore.optim import batch_plan, schedule
from posecore.params import SHORTCUTS, Params, load_params
from posecore.report import Table, keep, reference_table, run_relative
from posecore.runs import Run, resolve_path, run_dir
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


def run_of(train_result: dict) -> str:
    """The run name of a posecore.train result (train.ipynb may leave run_name None)."""
    return Path(train_result["run_dir"]).name
