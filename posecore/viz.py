"""Drawing poses, heatmaps, dataset statistics and training curves with matplotlib.

Figures are built without pyplot, so nothing here needs a display, picks a GUI backend or calls
`plt.show`: every function returns a `PoseFigure`, which notebooks render as PNG (it is the last
expression of a cell) and scripts save with `save_figure`. Images are RGB uint8 [H, W, 3];
keypoints are [K, 3] rows of (x, y, visibility-or-score) in image pixels.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from posecore.keypoints import KeypointInfo
from posecore.runs import atomic_write

GT_COLOR = "#2ca02c"
PRED_COLOR = "#d62728"
SKELETON_GID = "skeleton"


class PoseFigure(Figure):
    """A Figure that shows itself as a PNG in Jupyter and papermill outputs, with no backend set up."""

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def new_figure(nrows: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (4.0, 3.0),
               squeeze: bool = True):
    """(figure, axes) with `nrows` x `ncols` panels of `panel_size` inches each."""
    fig = PoseFigure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    return atomic_write(path, figure_png(fig, dpi))


# --- poses ---------------------------------------------------------------------------------------

def visible_limbs(keypoints: np.ndarray, skeleton: Iterable[tuple[int, int]],
                  thr: float = 0.0) -> list[tuple[int, int]]:
    """Limbs whose two joints have visibility/score above `thr` (keypoints [K, 3])."""
    keypoints = np.asarray(keypoints, dtype=float)
    return [(a, b) for a, b in skeleton if keypoints[a, 2] > thr and keypoints[b, 2] > thr]


def draw_skeleton(ax, keypoints: np.ndarray, info: KeypointInfo, color: str = PRED_COLOR,
                  thr: float = 0.0, label: str | None = None, linewidth: float = 2.0) -> LineCollection:
    """Draw one person's visible limbs (one segment each) and joints onto `ax`; keypoints [K, 3]."""
    keypoints = np.asarray(keypoints, dtype=float).reshape(info.num_joints, 3)
    limbs = visible_limbs(keypoints, info.skeleton, thr)
    segments = [keypoints[[a, b], :2] for a, b in limbs]
    lines = LineCollection(segments, colors=color, linewidths=linewidth, label=label)
    lines.set_gid(SKELETON_GID)
    ax.add_collection(lines)
    shown = keypoints[keypoints[:, 2] > thr]
    ax.scatter(shown[:, 0], shown[:, 1], s=12, c=color, edgecolors="white", linewidths=0.5, zorder=3)
    return lines


def draw_box(ax, bbox_xywh: Sequence[float], color: str = "#1f77b4") -> Rectangle:
    x, y, w, h = bbox_xywh
    box = Rectangle((x, y), w, h, fill=False, edgecolor=color, linewidth=1.0, linestyle="--")
    ax.add_patch(box)
    return box


def show_image(ax, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image)
    ax.set_xlim(-0.5, image.shape[1] - 0.5)
    ax.set_ylim(image.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def draw_people(ax, image: np.ndarray, info: KeypointInfo, gt: Sequence[np.ndarray] = (),
                pred: Sequence[np.ndarray] = (), score_thr: float = 0.2,
                boxes: Sequence[Sequence[float]] = (), heatmap: np.ndarray | None = None,
                title: str | None = None) -> None:
    """One image with its ground-truth (green) and predicted (red) skeletons.

    gt / pred: sequences of [K, 3] arrays (GT third column = visibility, pred = joint score,
    predicted joints below `score_thr` are hidden). heatmap: [H, W] in image pixels, overlaid.
    """
    shown = image if heatmap is None else heatmap_overlay(image, heatmap)
    show_image(ax, shown, title)
    for bbox in boxes:
        draw_box(ax, bbox)
    for i, keypoints in enumerate(gt):
        draw_skeleton(ax, keypoints, info, GT_COLOR, 0.0, "ground truth" if i == 0 else None)
    for i, keypoints in enumerate(pred):
        draw_skeleton(ax, keypoints, info, PRED_COLOR, score_thr, "prediction" if i == 0 else None)


def plot_pose(image: np.ndarray, info: KeypointInfo, gt: Sequence[np.ndarray] = (),
              pred: Sequence[np.ndarray] = (), score_thr: float = 0.2,
              boxes: Sequence[Sequence[float]] = (), heatmap: np.ndarray | None = None,
              title: str | None = None, size: float = 5.0) -> PoseFigure:
    """A figure of one image; arguments as in `draw_people`."""
    aspect = image.shape[0] / max(image.shape[1], 1)
    fig, ax = new_figure(panel_size=(size, size * aspect))
    draw_people(ax, image, info, gt, pred, score_thr, boxes, heatmap, title)
    return fig


def plot_gallery(items: Sequence[dict], info: KeypointInfo, ncols: int = 4, score_thr: float = 0.2,
                 size: float = 3.0) -> PoseFigure:
    """A grid of images; each item is a dict of `draw_people` arguments (image, gt, pred, boxes, title)."""
    if not items:
        fig, ax = new_figure(panel_size=(size, size))
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        ax.set_axis_off()
        return fig
    ncols = min(ncols, len(items))
    nrows = -(-len(items) // ncols)
    fig, axes = new_figure(nrows, ncols, (size, size), squeeze=False)
    for ax in axes.flat[len(items):]:
        ax.set_axis_off()
    for ax, item in zip(axes.flat, items):
        draw_people(ax, item["image"], info, item.get("gt", ()), item.get("pred", ()), score_thr,
                    item.get("boxes", ()), item.get("heatmap"), item.get("title"))
    return fig


# --- heatmaps ------------------------------------------------------------------------------------

def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5,
                    cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap [h, w] (any size, resized to the image) over an RGB image [H, W, 3] -> uint8 [H, W, 3]."""
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"heatmap_overlay: image must be [H, W, 3] RGB, got shape {image.shape}")
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap_overlay: heatmap must be [h, w], got shape {heatmap.shape}")
    if heatmap.shape != image.shape[:2]:
        heatmap = cv2.resize(heatmap, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    peak = float(heatmap.max())
    level = np.clip(heatmap / peak, 0.0, 1.0) if peak > 0 else np.zeros_like(heatmap)
    colored = colormaps[cmap](level)[..., :3] * 255.0
    weight = alpha * level[..., None]  # cold pixels keep the photo
    blended = image.astype(np.float32) * (1.0 - weight) + colored * weight
    return np.clip(blended, 0, 255).astype(np.uint8)


def heatmap_to_image_plane(heatmap: np.ndarray, bbox_center: Sequence[float], bbox_scale: Sequence[float],
                           image_size: tuple[int, int], rotation: float = 0.0) -> np.ndarray:
    """Warp one person's heatmap [Hh, Wh] back onto its image -> [H, W] (image_size is (w, h))."""
    import cv2

    from posecore.geometry import affine_matrix

    heatmap = np.asarray(heatmap, dtype=np.float32)
    heatmap_size = (heatmap.shape[1], heatmap.shape[0])
    matrix = affine_matrix(np.asarray(bbox_center, dtype=np.float32), np.asarray(bbox_scale, dtype=np.float32),
                           rotation, heatmap_size, inverse=True)
    return cv2.warpAffine(heatmap, np.asarray(matrix, dtype=np.float64), tuple(int(v) for v in image_size),
                          flags=cv2.INTER_LINEAR, borderValue=0.0)


# --- dataset statistics --------------------------------------------------------------------------

def annotation_stats(ann_file: str | Path, dataset: str) -> dict:
    """Counts for the prepare_data plots, read from a COCO keypoints json or an MPII (mmpose) json.

    Returns persons_per_image {count: images}, labelled_per_joint [K], box_sizes [N, 2] (w, h px),
    and totals images / persons.
    """
    from posecore.keypoints import keypoint_info

    info = keypoint_info(dataset)
    with open(ann_file) as f:
        data = json.load(f)
    if dataset == "coco":
        people = [a for a in data.get("annotations", []) if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
        images = [img["id"] for img in data.get("images", [])]
        image_of = [a["image_id"] for a in people]
        visible = np.array([np.asarray(a["keypoints"]).reshape(-1, 3)[:, 2] > 0 for a in people], dtype=bool)
        boxes = np.array([a["bbox"][2:] for a in people], dtype=float)
    elif dataset == "mpii":
        people = data if isinstance(data, list) else data.get("annotations", [])
        image_of = [p["image"] for p in people]
        images = sorted(set(image_of))
        visible = np.array([np.asarray(p["joints_vis"]) > 0 for p in people], dtype=bool)
        boxes = np.array([_mpii_box_size(p) for p in people], dtype=float)
    else:
        raise ValueError(f"annotation_stats: dataset must be 'coco' or 'mpii', got {dataset!r}")
    per_image = Counter(image_of)
    persons_per_image = Counter(per_image.get(image, 0) for image in images)
    return {
        "dataset": dataset,
        "images": len(images),
        "persons": len(people),
        "persons_per_image": dict(sorted(persons_per_image.items())),
        "labelled_per_joint": visible.sum(0).reshape(info.num_joints).tolist() if len(people) else [0] * info.num_joints,
        "box_sizes": boxes.reshape(-1, 2),
    }


def _mpii_box_size(person: dict) -> tuple[float, float]:
    """MPII has no boxes: the extent of the labelled joints, else the person scale (height / 200 px)."""
    joints = np.asarray(person["joints"], dtype=float)[np.asarray(person["joints_vis"]) > 0]
    if len(joints) >= 2:
        return tuple(joints.max(0) - joints.min(0))
    side = float(person.get("scale", 1.0)) * 200.0
    return side, side


def plot_dataset_stats(splits: dict[str, dict], title: str = "") -> PoseFigure:
    """Persons per image, labelled joints per joint, box sizes: three panels, one colour per split.

    `splits` maps a split name to its `annotation_stats`; counts are shown as fractions so that a
    small val split reads against a large train split.
    """
    from posecore.keypoints import keypoint_info

    first = next(iter(splits.values()))
    info = keypoint_info(first["dataset"])
    fig, (ax_people, ax_joints, ax_boxes) = new_figure(1, 3, (4.2, 3.6))
    colors = dict(zip(splits, ("#1f77b4", "#ff7f0e", GT_COLOR, PRED_COLOR)))
    width = 0.8 / len(splits)
    counts = sorted({k for stats in splits.values() for k in stats["persons_per_image"]})
    for n, (split, stats) in enumerate(splits.items()):
        images = max(stats["images"], 1)
        shares = [stats["persons_per_image"].get(k, 0) / images for k in counts]
        ax_people.bar(np.arange(len(counts)) + n * width, shares, width, color=colors[split],
                      label=f"{split} ({stats['images']} images)")
        labelled = np.asarray(stats["labelled_per_joint"], dtype=float) / max(stats["persons"], 1)
        ax_joints.barh(np.arange(info.num_joints) + n * width, labelled, width, color=colors[split],
                       label=f"{split} ({stats['persons']} persons)")
        boxes = np.asarray(stats["box_sizes"], dtype=float).reshape(-1, 2)
        ax_boxes.scatter(boxes[:, 0], boxes[:, 1], s=6, alpha=0.5, color=colors[split], label=split)
    ax_people.set_xticks(np.arange(len(counts)) + width * (len(splits) - 1) / 2, [str(k) for k in counts])
    ax_people.set_xlabel("persons per image")
    ax_people.set_ylabel("fraction of images")
    ax_people.legend(fontsize=7)
    ax_joints.set_yticks(np.arange(info.num_joints) + width * (len(splits) - 1) / 2, info.joint_names)
    ax_joints.invert_yaxis()
    ax_joints.tick_params(axis="y", labelsize=7)
    ax_joints.set_xlabel("fraction of persons with the joint labelled")
    ax_joints.legend(fontsize=7)
    ax_boxes.set_xlabel("box width (px)")
    ax_boxes.set_ylabel("box height (px)")
    ax_boxes.legend(fontsize=7)
    fig.suptitle(title or f"{first['dataset'].upper()} annotations")
    return fig


# --- training and evaluation curves --------------------------------------------------------------

def plot_training_curves(records: Sequence[dict]) -> PoseFigure:
    """Loss and learning rate against the step, from log.jsonl's training records (type "train")."""
    fig, (ax_loss, ax_lr) = new_figure(1, 2, (5.0, 3.2))
    steps = [r for r in records if r.get("type", "train") == "train" and "loss" in r and "step" in r]
    if steps:
        ax_loss.plot([r["step"] for r in steps], [r["loss"] for r in steps], color="#1f77b4")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log" if steps and min(r["loss"] for r in steps) > 0 else "linear")
    rates = [r for r in steps if "lr" in r]
    if rates:
        ax_lr.plot([r["step"] for r in rates], [r["lr"] for r in rates], color="#ff7f0e")
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    return fig


def plot_validation(history: Sequence[dict], metric: str) -> PoseFigure:
    """A validation metric against the epoch, from log.jsonl's validation records (type "val")."""
    fig, ax = new_figure(panel_size=(5.0, 3.2))
    rows = [r for r in history if r.get("type", "val") == "val" and metric in r and "epoch" in r]
    ax.plot([r["epoch"] for r in rows], [r[metric] for r in rows], marker="o", color=GT_COLOR)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
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


def plot_threshold_curve(thresholds: Sequence[float], values: Sequence[float], xlabel: str, ylabel: str,
                         title: str = "") -> PoseFigure:
    """A metric against its threshold: AP per OKS threshold, or PCKh against the head-size fraction."""
    fig, ax = new_figure(panel_size=(5.0, 3.2))
    ax.plot(list(thresholds), list(values), marker="o", color=PRED_COLOR)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return fig


# --- predictions of a run, person by person ------------------------------------------------------

def person_errors(dataset, eval_dir: str | Path, pckh_thr: float = 0.5) -> dict:
    """Match the eval folder's predictions to the dataset's ground-truth persons and score each one.

    COCO: results.json (after OKS-NMS) against each labelled person of the same image, OKS as
    COCOeval computes it (annotation area as scale); the best-matching prediction is kept. MPII:
    predictions.json is in dataset order; the score is the person's PCKh@pckh_thr (official head
    boxes from the dataset's .mat), else the fraction of joints within 0.1 x the box height.
    Returns {"metric": name, "score" [N] (1 = perfect), "pred" [N, K, 3] (NaN where unmatched)}.
    """
    eval_dir = Path(eval_dir)
    if dataset.info.dataset == "coco":
        return _coco_person_errors(dataset, _read_eval_file(eval_dir / "results.json"))
    predictions = _read_eval_file(eval_dir / "predictions.json")
    if len(predictions) != len(dataset):
        raise ValueError(f"{eval_dir / 'predictions.json'} has {len(predictions)} people, the dataset "
                         f"{len(dataset)}: evaluate the same params' val split again")
    pred = np.asarray([p["keypoints"] for p in predictions], dtype=float).reshape(len(dataset), -1, 3)
    if dataset.gt_mat:
        from posecore.metrics import pckh_errors

        errors, visible, _ = pckh_errors(pred, dataset.gt_mat)
        metric = f"PCKh@{pckh_thr:g}"
    else:
        joints = np.stack([inst.joints for inst in dataset.instances])
        visible = np.stack([inst.visible for inst in dataset.instances]) > 0
        height = np.array([inst.bbox_scale[1] for inst in dataset.instances]) / getattr(dataset, "padding", 1.25)
        errors = np.linalg.norm(pred[..., :2] - joints, axis=-1) / height[:, None]
        pckh_thr, metric = 0.1, "PCK@0.1 box height"
    hits = (np.where(visible, errors, np.inf) <= pckh_thr).sum(1)
    score = hits / np.maximum(visible.sum(1), 1)
    return {"metric": metric, "score": score, "pred": pred}


def _read_eval_file(path: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run posecore.evaluate (eval.ipynb) for this run first")
    with open(path) as f:
        return json.load(f)


def _coco_person_errors(dataset, results: list[dict]) -> dict:
    info = dataset.info
    variances = (2.0 * np.asarray(info.sigmas)) ** 2
    areas = _coco_areas(dataset.ann_file)
    by_image: dict[int, list[np.ndarray]] = {}
    for result in results:
        by_image.setdefault(int(result["image_id"]), []).append(
            np.asarray(result["keypoints"], dtype=float).reshape(info.num_joints, 3))
    score = np.zeros(len(dataset))
    pred = np.full((len(dataset), info.num_joints, 3), np.nan)
    for i, inst in enumerate(dataset.instances):
        candidates = by_image.get(int(inst.image_id), [])
        if not candidates:
            continue
        visible = inst.visible > 0
        box = inst.bbox_xyxy
        area = areas.get(_coco_key(inst.image_id, inst.joints, inst.visible),
                         float((box[2] - box[0]) * (box[3] - box[1])) if box is not None else 1.0)
        poses = np.stack(candidates)
        squared = ((poses[..., :2] - inst.joints[None]) ** 2).sum(-1)
        oks = (np.exp(-squared / variances / (area + np.spacing(1)) / 2) * visible).sum(1) / max(visible.sum(), 1)
        best = int(oks.argmax())
        score[i], pred[i] = oks[best], poses[best]
    return {"metric": "OKS", "score": score, "pred": pred}


def _coco_key(image_id, joints, visible) -> tuple:
    xy = np.asarray(joints, dtype=np.float32).reshape(-1, 2) * (np.asarray(visible).reshape(-1, 1) > 0)
    return (int(image_id), tuple(np.round(xy.ravel(), 1).tolist()))


def _coco_areas(ann_file: str | Path) -> dict:
    """Annotation areas (the OKS scale) keyed by image and labelled joints."""
    with open(ann_file) as f:
        annotations = json.load(f).get("annotations", [])
    areas = {}
    for ann in annotations:
        keypoints = np.asarray(ann.get("keypoints") or [], dtype=np.float32).reshape(-1, 3)
        areas[_coco_key(ann["image_id"], keypoints[:, :2], keypoints[:, 2])] = float(ann.get("area", 0.0))
    return areas


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 [H, W, 3]."""
    from posecore.data import read_image

    return np.ascontiguousarray(read_image(path)[:, :, ::-1])


def person_view(dataset, errors: dict, index: int, show_gt: bool = True, show_pred: bool = True,
                heatmap: np.ndarray | None = None) -> dict:
    """`draw_people` arguments for dataset person `index`: its whole image with everyone on it.

    The chosen person's box is drawn; `heatmap` [H, W] is in image pixels (heatmap_to_image_plane).
    """
    inst = dataset.instances[int(index)]
    same_image = [i for i, other in enumerate(dataset.instances) if other.image_id == inst.image_id]
    gt = [np.concatenate([dataset.instances[i].joints, dataset.instances[i].visible[:, None]], 1)
          for i in same_image] if show_gt else []
    pred = [errors["pred"][i] for i in same_image if np.isfinite(errors["pred"][i]).all()] if show_pred else []
    box = inst.bbox_xyxy
    boxes = [(box[0], box[1], box[2] - box[0], box[3] - box[1])] if box is not None else []
    title = f"#{index} image {inst.image_id}: {errors['metric']} {errors['score'][index]:.2f}"
    return {"image": read_rgb(inst.image_path), "gt": gt, "pred": pred, "boxes": boxes,
            "heatmap": heatmap, "title": title}


def worst_predictions(dataset, errors: dict, count: int = 8, ncols: int = 4) -> PoseFigure:
    """A gallery of the `count` persons with the lowest OKS / PCKh, drawn on their images."""
    order = np.argsort(errors["score"], kind="stable")[:count]
    return plot_gallery([person_view(dataset, errors, int(i)) for i in order], dataset.info, ncols=ncols)


class PoseBrowser:
    """Browse a run's val persons: ground truth and predictions on their images, ordered by error,
    with one joint's heatmap computed on demand (the model's, or the encoded target with
    eval.oracle). `widget()` is the ipywidgets front end; `figure` / `gallery` work without one.
    """

    ORDERS = ("worst first", "best first", "dataset order")

    def __init__(self, params, run_name: str, checkpoint: str | Path | None = None):
        from posecore.data import build_dataset
        from posecore.evaluation import resolve_checkpoint
        from posecore.runs import run_dir

        self.params = params
        self.dataset = build_dataset(params, "val")
        self.errors = person_errors(self.dataset, run_dir(run_name, create=False) / "eval", params.eval.pckh_thr)
        self.checkpoint = resolve_checkpoint(checkpoint, params, run_name)
        self._model = None

    def __len__(self) -> int:
        return len(self.dataset)

    def order(self, by: str = "worst first") -> np.ndarray:
        """Dataset indices [N] in the requested order."""
        if by not in self.ORDERS:
            raise ValueError(f"order must be one of {self.ORDERS}, got {by!r}")
        if by == "dataset order":
            return np.arange(len(self.dataset))
        ranked = np.argsort(self.errors["score"], kind="stable")
        return ranked if by == "worst first" else ranked[::-1]

    def heatmaps(self, index: int) -> np.ndarray:
        """Heatmaps [K, Hh, Wh] of dataset person `index`: the model's output, or the target (oracle)."""
        import torch

        item = self.dataset[int(index)]
        if self.checkpoint is None:
            return item["target"].numpy()
        if self._model is None:
            from posecore.evaluation import load_model

            self._model = load_model(self.params, self.checkpoint, torch.device("cpu"))
        with torch.no_grad():
            output = self._model(item["image"][None])
        return output[-1][0].numpy() if isinstance(output, (list, tuple)) else output[0].numpy()

    def figure(self, position: int = 0, order: str = "worst first", show_gt: bool = True,
               show_pred: bool = True, joint: str = "none", score_thr: float = 0.2) -> PoseFigure:
        """One person's image at `position` of `order`; `joint` names the heatmap to overlay."""
        index = int(self.order(order)[int(position)])
        heatmap = None
        if joint != "none":
            inst = self.dataset.instances[index]
            hm = self.heatmaps(index)[self.dataset.info.joint_names.index(joint)]
            image_size = inst.image_size or read_rgb(inst.image_path).shape[1::-1]
            heatmap = heatmap_to_image_plane(hm, inst.bbox_center, inst.bbox_scale, image_size)
        view = person_view(self.dataset, self.errors, index, show_gt, show_pred, heatmap)
        return plot_pose(view["image"], self.dataset.info, view["gt"], view["pred"], score_thr,
                         view["boxes"], view["heatmap"], view["title"])

    def gallery(self, count: int = 8, order: str = "worst first", ncols: int = 4) -> PoseFigure:
        """The first `count` persons of `order`, a static stand-in for the widget."""
        chosen = self.order(order)[:count]
        return plot_gallery([person_view(self.dataset, self.errors, int(i)) for i in chosen],
                            self.dataset.info, ncols=ncols)

    def widget(self):
        """ipywidgets.interactive over `figure`: image slider, order, toggles, joint, score threshold."""
        import ipywidgets as widgets

        return widgets.interactive(
            self.figure,
            position=widgets.IntSlider(0, 0, max(len(self) - 1, 0), description="image", continuous_update=False),
            order=widgets.Dropdown(options=self.ORDERS, value="worst first", description="order by"),
            show_gt=widgets.Checkbox(value=True, description="ground truth"),
            show_pred=widgets.Checkbox(value=True, description="prediction"),
            joint=widgets.Dropdown(options=("none", *self.dataset.info.joint_names), value="none",
                                   description="heatmap"),
            score_thr=widgets.FloatSlider(0.2, min=0.0, max=1.0, step=0.05, description="score ≥",
                                          continuous_update=False),
        )
