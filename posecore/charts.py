"""Charts: the workbook's plots of numbers (dataset statistics, training and validation curves,
the learning-rate schedule, per-joint and per-threshold metrics, run comparisons and the error
diagnosis). posecore.viz draws images and poses; both make matplotlib figures without pyplot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps

from posecore.files import finite_number
from posecore.viz import ERROR_COLORS, GT_COLOR, PER_JOINT_MAX, PRED_COLOR, PoseFigure, new_figure

# --- dataset statistics --------------------------------------------------------------------------


def plot_dataset_stats(splits: dict[str, dict], title: str = "") -> PoseFigure:
    """Persons per image, labelled joints per joint, box sizes: three panels, one colour per split.

    `splits` maps a split name to its `annotation_stats`; counts are shown as fractions so that a
    small val split reads against a large train split. Sets with more than PER_JOINT_MAX joints
    and named parts (whole-body: 133, 136) show the labelled fraction per part (its joints' mean).
    """
    first = next(iter(splits.values()))
    joint_names = first["joint_names"]
    parts = first.get("parts") or []
    grouped = len(joint_names) > PER_JOINT_MAX and bool(parts)
    if grouped:
        joint_names = [f"{name} ({stop - start})" for name, start, stop in parts]
    fig, (ax_people, ax_joints, ax_boxes) = new_figure(1, 3, (4.2, 3.6))
    colors = dict(zip(splits, ("#1f77b4", "#ff7f0e", GT_COLOR, PRED_COLOR)))
    width = 0.8 / len(splits)
    counts = sorted({k for stats in splits.values() for k in stats["persons_per_image"]})
    for n, (split, stats) in enumerate(splits.items()):
        images = max(stats["images"], 1)
        shares = [stats["persons_per_image"].get(k, 0) / images for k in counts]
        ax_people.bar(
            np.arange(len(counts)) + n * width,
            shares,
            width,
            color=colors[split],
            label=f"{split} ({stats['images']} images)",
        )
        labelled = np.asarray(stats["labelled_per_joint"], dtype=float) / max(stats["persons"], 1)
        if grouped:
            labelled = np.array([labelled[start:stop].mean() for _, start, stop in parts])
        ax_joints.barh(
            np.arange(len(joint_names)) + n * width,
            labelled,
            width,
            color=colors[split],
            label=f"{split} ({stats['persons']} persons)",
        )
        boxes = np.asarray(stats["box_sizes"], dtype=float).reshape(-1, 2)
        ax_boxes.scatter(boxes[:, 0], boxes[:, 1], s=6, alpha=0.5, color=colors[split], label=split)
    ax_people.set_xticks(np.arange(len(counts)) + width * (len(splits) - 1) / 2, [str(k) for k in counts])
    ax_people.set_xlabel("persons per image")
    ax_people.set_ylabel("fraction of images")
    ax_people.legend(fontsize=7)
    ax_joints.set_yticks(np.arange(len(joint_names)) + width * (len(splits) - 1) / 2, joint_names)
    ax_joints.invert_yaxis()
    ax_joints.tick_params(axis="y", labelsize=7)
    ax_joints.set_xlabel(
        "fraction of persons with the joint labelled"
        if not grouped
        else "fraction of persons with the part's joints labelled (mean)"
    )
    ax_joints.legend(fontsize=7)
    ax_boxes.set_xlabel("box width (px)")
    ax_boxes.set_ylabel("box height (px)")
    ax_boxes.legend(fontsize=7)
    fig.suptitle(title or f"{first['dataset'].upper()} annotations")
    return fig


# --- training and evaluation curves --------------------------------------------------------------


def training_series(records: Sequence[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` ("loss", "lr", ...) in log.jsonl's training records, finite values only."""
    rows = [r for r in records if r.get("type", "train") == "train" and "step" in r and finite_number(r.get(key))]
    return [r["step"] for r in rows], [r[key] for r in rows]


def validation_series(records: Sequence[dict], metric: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of `metric` in log.jsonl's validation records, finite values only."""
    rows = [r for r in records if r.get("type", "val") == "val" and "epoch" in r and finite_number(r.get(metric))]
    return [r["epoch"] for r in rows], [r[metric] for r in rows]


def _loss_axis(ax, losses: Sequence[float]) -> None:
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log" if losses and min(losses) > 0 else "linear")


def plot_training_curves(records: Sequence[dict]) -> PoseFigure:
    """Loss and learning rate against the step, from log.jsonl's training records (type "train")."""
    fig, (ax_loss, ax_lr) = new_figure(1, 2, (5.0, 3.2))
    steps, losses = training_series(records, "loss")
    ax_loss.plot(steps, losses, color="#1f77b4")
    _loss_axis(ax_loss, losses)
    ax_lr.plot(*training_series(records, "lr"), color="#ff7f0e")
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    return fig


def plot_lr_schedule(lrs: np.ndarray, steps_per_epoch: int, current_step: int | None = None) -> PoseFigure:
    """The LR of every optimizer step (posecore.optim.schedule: lrs [steps]) against the epoch, log
    scale; `current_step` (a run that resumes) is marked."""
    fig, ax = new_figure(1, 1, (5.0, 2.4))
    epochs = np.arange(len(lrs)) / steps_per_epoch
    ax.plot(epochs, lrs, color="#ff7f0e", lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    if current_step is not None and 0 <= current_step < len(lrs):
        ax.axvline(current_step / steps_per_epoch, color="#555555", ls="--", lw=0.8)
        ax.plot(
            [current_step / steps_per_epoch],
            [lrs[current_step]],
            "o",
            color="#d62728",
            label=f"step {current_step} (resumes here)",
        )
        ax.legend(loc="lower left", fontsize=7, frameon=False)
    ax.set_title(f"{len(lrs)} optimizer steps, {steps_per_epoch} per epoch", fontsize=8)
    return fig


def plot_validation(history: Sequence[dict], metric: str) -> PoseFigure:
    """A validation metric against the epoch, from log.jsonl's validation records (type "val")."""
    fig, ax = new_figure(panel_size=(5.0, 3.2))
    ax.plot(*validation_series(history, metric), marker="o", color=GT_COLOR)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    return fig


def plot_runs_curves(logs: dict[str, Sequence[dict]], metric: str) -> PoseFigure:
    """Several runs overlaid, one colour each: training loss against the step and validation
    `metric` against the epoch, from each run's log.jsonl records ({run: records})."""
    fig, (ax_loss, ax_val) = new_figure(1, 2, (5.5, 3.5))
    all_losses: list[float] = []
    for run, records in logs.items():
        steps, losses = training_series(records, "loss")
        all_losses += losses
        (line,) = ax_loss.plot(steps, losses, label=run, linewidth=1.2)
        ax_val.plot(*validation_series(records, metric), marker="o", label=run, color=line.get_color())
    _loss_axis(ax_loss, all_losses)
    ax_val.set_xlabel("epoch")
    ax_val.set_ylabel(f"validation {metric}")
    if logs:
        ax_loss.legend(fontsize=7)
    return fig


def plot_per_joint(values: dict[str, float], metric: str, title: str = "") -> PoseFigure:
    """Horizontal bars, one per joint name, e.g. PCKh per joint or mean OKS per joint."""
    fig, ax = new_figure(panel_size=(5.5, 0.25 * len(values) + 1.2))
    ax.barh(list(values), list(values.values()), color="#1f77b4")
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(metric)
    if title:
        ax.set_title(title)
    return fig


def plot_threshold_curve(
    thresholds: Sequence[float], values: Sequence[float], xlabel: str, ylabel: str, title: str = ""
) -> PoseFigure:
    """A metric against its threshold: AP per OKS threshold, or PCKh against the head-size fraction."""
    fig, ax = new_figure(panel_size=(5.0, 3.2))
    ax.plot(list(thresholds), list(values), marker="o", color=PRED_COLOR)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


# --- the error analysis (posecore.error_analysis) ---------------------------------------------------

# the stages' bands in the precision-recall figure: the correction each band stands for
STAGE_COLORS = {
    "baseline": "#1f77b4",
    "miss": ERROR_COLORS["miss"],
    "swap": ERROR_COLORS["swap"],
    "inversion": ERROR_COLORS["inversion"],
    "jitter": ERROR_COLORS["jitter"],
    "score": "#8c564b",
    "background_fp": "#7f7f7f",
    "false_neg": "#bcbd22",
}
STAGE_LABELS = {
    "baseline": "as predicted",
    "miss": "misses fixed",
    "swap": "swaps fixed",
    "inversion": "inversions fixed",
    "jitter": "jitter fixed",
    "score": "optimal scores",
    "background_fp": "without background false positives",
    "false_neg": "without false negatives",
}


def plot_error_curves(recall: np.ndarray, precision: dict[str, np.ndarray], ap: dict[str, dict]) -> PoseFigure:
    """Ronchi & Perona's figure: the precision-recall curves at OKS .75 (recall [R], precision
    {stage: [R]} in the analysis' stage order, -1 where undefined), each correction's gain filled
    between its curve and the one before, the stage's AP75 in the legend."""
    fig, ax = new_figure(1, 1, (6.0, 4.2))
    below = np.zeros_like(recall)
    for stage, curve in precision.items():
        curve = np.clip(curve, 0.0, None)
        color = STAGE_COLORS.get(stage, "#333333")
        ax.fill_between(recall, below, np.maximum(curve, below), color=color, alpha=0.55, lw=0)
        ax.plot(recall, curve, color=color, lw=1.0, label=f"{STAGE_LABELS.get(stage, stage)}: {ap[stage]['AP75']:.3f}")
        below = np.maximum(curve, below)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall at OKS 0.75, each error type corrected in turn (AP75)", fontsize=9)
    ax.legend(loc="lower left", fontsize=7, frameon=True, framealpha=0.85)
    return fig


def plot_errors_per_joint(errors_per_joint: dict[str, dict[str, int]], kinds: Sequence[str]) -> PoseFigure:
    """One horizontal bar per joint: the share of its diagnosed labels that are each error kind
    (`kinds`, e.g. jitter, inversion, swap, miss), stacked, with the joint's count of labels."""
    names = list(errors_per_joint)
    fig, ax = new_figure(1, 1, (6.0, max(2.4, 0.26 * len(names) + 1.0)))
    left = np.zeros(len(names))
    totals = np.array([max(sum(errors_per_joint[n].values()), 1) for n in names], dtype=np.float64)
    for kind in kinds:
        share = np.array([errors_per_joint[n].get(kind, 0) for n in names]) / totals
        ax.barh(names, share, left=left, color=ERROR_COLORS.get(kind, "#333333"), label=kind, height=0.7)
        left += share
    for row, total in enumerate(totals):
        ax.text(min(left[row] + 0.01, 0.97), row, f"{int(total)}", va="center", fontsize=6, color="#444444")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the joint's labels")
    ax.set_title("Error types per joint (the rest are good)", fontsize=9)
    ax.legend(loc="lower right", fontsize=7, ncols=len(kinds), frameon=True, framealpha=0.85)
    return fig


def plot_pckh_curves(
    thresholds: Sequence[float], mean: Sequence[float], per_joint: dict[str, Sequence], auc: float | None = None
) -> PoseFigure:
    """PCKh against the threshold (fraction of the head size): the official mean bold, each joint
    thin (None where nobody has it labelled), the mean's AUC in the title."""
    fig, ax = new_figure(1, 1, (6.0, 4.0))
    cmap = colormaps["tab20"]
    for n, (name, values) in enumerate(per_joint.items()):
        values = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        ax.plot(thresholds, values, lw=0.8, color=cmap(n % 20), label=name)
    ax.plot(thresholds, mean, lw=2.4, color="#000000", label="mean (official)")
    ax.set_xlabel("threshold (fraction of head size)")
    ax.set_ylabel("PCKh (%)")
    ax.set_ylim(0, 101)
    title = "PCKh against the threshold" + (f", AUC {auc:.2f}" if auc is not None else "")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=6, ncols=2, frameon=True, framealpha=0.85)
    return fig
