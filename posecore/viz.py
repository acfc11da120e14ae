"""Drawing poses, heatmaps, dataset statistics and training curves with matplotlib.

Figures are built without pyplot, so nothing here needs a display, picks a GUI backend or calls
`plt.show`: every function returns a `PoseFigure`, which notebooks render as PNG (it is the last
expression of a cell) and scripts save with `save_figure`. Images are RGB uint8 [H, W, 3];
keypoints are [K, 3] rows of (x, y, visibility-or-score) in image pixels.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib import colormaps, patheffects
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from posecore.data import read_rgb
from posecore.files import atomic_write
from posecore.geometry import affine_matrix
from posecore.keypoints import KeypointInfo

GT_COLOR = "#2ca02c"
PRED_COLOR = "#d62728"
SKELETON_GID = "skeleton"
FINE_GID = "skeleton-fine"  # the thin links of faces and hands (KeypointInfo.fine_joints)
FINE_WIDTH = 0.3  # their line width, relative to the body's
FAINT_ALPHA = 0.35  # other people on the subject's image: context, not competition
HEATMAP_CMAP = "jet"
# the error analysis' joint errors (posecore.error_analysis), in the charts and the pose browser
ERROR_COLORS = {"jitter": "#ffbf00", "inversion": "#9467bd", "swap": "#e377c2", "miss": "#d62728", "good": "#2ca02c"}
PER_JOINT_MAX = 40  # dataset statistics: more joints than this are shown per part


class PoseFigure(Figure):
    """A Figure that shows itself as a PNG in Jupyter and papermill outputs, with no backend set up."""

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def new_figure(nrows: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (4.0, 3.0), squeeze: bool = True):
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


def visible_limbs(
    keypoints: np.ndarray, skeleton: Iterable[tuple[int, int]], thr: float = 0.0
) -> list[tuple[int, int]]:
    """Limbs whose two joints have visibility/score above `thr` (keypoints [K, 3])."""
    keypoints = np.asarray(keypoints, dtype=float)
    return [(a, b) for a, b in skeleton if keypoints[a, 2] > thr and keypoints[b, 2] > thr]


def draw_skeleton(
    ax,
    keypoints: np.ndarray,
    info: KeypointInfo,
    color: str = PRED_COLOR,
    thr: float = 0.0,
    label: str | None = None,
    linewidth: float = 2.0,
    faint: bool = False,
) -> LineCollection:
    """Draw one person's visible limbs (one segment each) and joints onto `ax`; keypoints [K, 3].

    A subject (faint=False) gets a white halo so it reads on busy photos; faint people are thin
    and pale so they give context without hiding the subject. Faces and hands (the whole-body
    sets' fine joints) are drawn thin with small dots and no halo, in a collection of their own
    (gid FINE_GID); the returned one holds the body's limbs.
    """
    keypoints = np.asarray(keypoints, dtype=float).reshape(info.num_joints, 3)
    fine = np.zeros(info.num_joints, dtype=bool)
    fine[list(info.fine_joints())] = True
    limbs = visible_limbs(keypoints, info.skeleton, thr)
    alpha, width = (FAINT_ALPHA, 0.5 * linewidth) if faint else (1.0, linewidth)
    zorder = 2 if faint else 4
    lines = LineCollection(
        [keypoints[[a, b], :2] for a, b in limbs if not (fine[a] or fine[b])],
        colors=color,
        linewidths=width,
        alpha=alpha,
        label=label,
        zorder=zorder,
    )
    if not faint:
        lines.set_path_effects([patheffects.withStroke(linewidth=width + 2.0, foreground="white")])
    lines.set_gid(SKELETON_GID)
    ax.add_collection(lines)
    thin = [keypoints[[a, b], :2] for a, b in limbs if fine[a] or fine[b]]
    if thin:
        fine_lines = LineCollection(thin, colors=color, linewidths=FINE_WIDTH * width, alpha=alpha, zorder=zorder)
        fine_lines.set_gid(FINE_GID)
        ax.add_collection(fine_lines)
    shown = keypoints[:, 2] > thr
    body, detail = keypoints[shown & ~fine], keypoints[shown & fine]
    ax.scatter(
        body[:, 0],
        body[:, 1],
        s=6 if faint else 16,
        c=color,
        alpha=alpha,
        edgecolors="white",
        linewidths=0.5,
        zorder=zorder + 1,
    )
    if len(detail):
        ax.scatter(
            detail[:, 0], detail[:, 1], s=1 if faint else 3, c=color, alpha=alpha, linewidths=0, zorder=zorder + 1
        )
    return lines


def only_parts(keypoints: np.ndarray, info: KeypointInfo, parts: Sequence[str] | None) -> np.ndarray:
    """A copy of keypoints [K, 3] with the joints outside the named `parts` (info.parts, e.g.
    ["body", "foot"]) hidden at any threshold (third column -inf); None or () keeps every joint."""
    keypoints = np.array(keypoints, dtype=float).reshape(info.num_joints, 3)
    if parts:
        keep = np.zeros(info.num_joints, dtype=bool)
        for part in parts:
            keep[info.part_joints(part)] = True
        keypoints[~keep, 2] = -np.inf
    return keypoints


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


def zoom_box(bbox_xyxy: Sequence[float], image_shape: Sequence[int], margin: float = 0.3) -> tuple:
    """The part of an image [H, W, ...] to show for one person: its box (x0, y0, x1, y1) grown by
    `margin` of its size on each side, clipped to the image -> (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = (float(v) for v in bbox_xyxy)
    pad_x, pad_y = margin * (x1 - x0), margin * (y1 - y0)
    height, width = image_shape[:2]
    return (max(x0 - pad_x, -0.5), max(y0 - pad_y, -0.5), min(x1 + pad_x, width - 0.5), min(y1 + pad_y, height - 0.5))


def pose_legend_handles(gt: bool = True, pred: bool = True) -> list[Line2D]:
    """Legend entries for the ground-truth and predicted skeletons."""
    entries = [("ground truth", GT_COLOR, gt), ("prediction", PRED_COLOR, pred)]
    return [
        Line2D([], [], color=color, linewidth=2.5, marker="o", markersize=4, label=label)
        for label, color, shown in entries
        if shown
    ]


def draw_people(
    ax,
    image: np.ndarray,
    info: KeypointInfo,
    gt: Sequence[np.ndarray] = (),
    pred: Sequence[np.ndarray] = (),
    score_thr: float = 0.2,
    boxes: Sequence[Sequence[float]] = (),
    heatmap: np.ndarray | None = None,
    title: str | None = None,
    faint_gt: Sequence[np.ndarray] = (),
    faint_pred: Sequence[np.ndarray] = (),
    view_box: Sequence[float] | None = None,
) -> None:
    """One image with ground-truth (green) and predicted (red) skeletons.

    gt / pred: sequences of [K, 3] arrays (GT third column = visibility, pred = joint score,
    predicted joints below `score_thr` are hidden), drawn strongly; faint_gt / faint_pred: the
    other people on the image, drawn thin and pale. heatmap: [H, W] in image pixels, overlaid.
    view_box (x0, y0, x1, y1): the part of the image to show (see `zoom_box`).
    """
    shown = image if heatmap is None else heatmap_overlay(muted(image), heatmap)
    show_image(ax, shown, title)
    if view_box is not None:
        x0, y0, x1, y1 = view_box
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
    for bbox in boxes:
        draw_box(ax, bbox)
    for keypoints in faint_gt:
        draw_skeleton(ax, keypoints, info, GT_COLOR, 0.0, faint=True)
    for keypoints in faint_pred:
        draw_skeleton(ax, keypoints, info, PRED_COLOR, score_thr, faint=True)
    for i, keypoints in enumerate(gt):
        draw_skeleton(ax, keypoints, info, GT_COLOR, 0.0, "ground truth" if i == 0 else None)
    for i, keypoints in enumerate(pred):
        draw_skeleton(ax, keypoints, info, PRED_COLOR, score_thr, "prediction" if i == 0 else None)


def plot_pose(
    image: np.ndarray,
    info: KeypointInfo,
    gt: Sequence[np.ndarray] = (),
    pred: Sequence[np.ndarray] = (),
    score_thr: float = 0.2,
    boxes: Sequence[Sequence[float]] = (),
    heatmap: np.ndarray | None = None,
    title: str | None = None,
    size: float = 6.0,
    faint_gt: Sequence[np.ndarray] = (),
    faint_pred: Sequence[np.ndarray] = (),
    view_box: Sequence[float] | None = None,
    heatmap_label: str = "heatmap",
    marks: dict[str, np.ndarray] | None = None,
) -> PoseFigure:
    """A figure of one image, its longer side `size` inches; arguments as in `draw_people`.

    With a heatmap, a colour bar named `heatmap_label` gives the heatmap's values. `marks`
    {error kind: points [M, 2]} rings joints in ERROR_COLORS (the error analysis' offending joints).
    """
    x0, y0, x1, y1 = view_box if view_box is not None else (0, 0, image.shape[1], image.shape[0])
    aspect = (y1 - y0) / max(x1 - x0, 1e-6)
    width = size if aspect <= 1 else size / aspect
    fig, ax = new_figure(panel_size=(width * (1.3 if heatmap is not None else 1.0), width * aspect))
    draw_people(ax, image, info, gt, pred, score_thr, boxes, heatmap, title, faint_gt, faint_pred, view_box)
    handles = pose_legend_handles(bool(len(gt)), bool(len(pred)))
    for kind, points in (marks or {}).items():
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        color = ERROR_COLORS.get(kind, "#000000")
        ax.scatter(points[:, 0], points[:, 1], s=160, facecolors="none", edgecolors=color, linewidths=2.2, gid="marks")
        handles.append(Line2D([], [], ls="", marker="o", markerfacecolor="none", markeredgecolor=color, label=kind))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85)
    if heatmap is not None:
        peak = float(np.max(heatmap)) or 1.0
        scale = ScalarMappable(norm=Normalize(0.0, peak), cmap=HEATMAP_CMAP)
        fig.colorbar(scale, ax=ax, shrink=0.8, label=heatmap_label)
    return fig


def plot_gallery(
    items: Sequence[dict], info: KeypointInfo, ncols: int = 4, score_thr: float = 0.2, size: float = 3.0
) -> PoseFigure:
    """A grid of images; each item is a dict of `draw_people` arguments (image, gt, pred, boxes,
    title, faint_gt, faint_pred, view_box); one legend below the grid."""
    if not items:
        fig, ax = new_figure(panel_size=(size, size))
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center")
        ax.set_axis_off()
        return fig
    ncols = min(ncols, len(items))
    nrows = -(-len(items) // ncols)
    fig, axes = new_figure(nrows, ncols, (size, size), squeeze=False)
    for ax in axes.flat[len(items) :]:
        ax.set_axis_off()
    for ax, item in zip(axes.flat, items):
        draw_people(
            ax,
            item["image"],
            info,
            item.get("gt", ()),
            item.get("pred", ()),
            score_thr,
            item.get("boxes", ()),
            item.get("heatmap"),
            item.get("title"),
            item.get("faint_gt", ()),
            item.get("faint_pred", ()),
            item.get("view_box"),
        )
    handles = pose_legend_handles(
        any(len(item.get("gt", ())) for item in items), any(len(item.get("pred", ())) for item in items)
    )
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9)
    return fig


# --- heatmaps ------------------------------------------------------------------------------------


def heatmap_overlay(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.65, cmap: str = HEATMAP_CMAP
) -> np.ndarray:
    """Blend a heatmap [h, w] (any size, resized to the image) over an RGB image [H, W, 3] -> uint8 [H, W, 3]."""
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


def muted(image: np.ndarray) -> np.ndarray:
    """An RGB image [H, W, 3] in dim grey, so that a heatmap's colours read over any photo."""
    grey = np.asarray(image, dtype=np.float32).mean(-1, keepdims=True)
    return np.repeat(40.0 + 0.5 * grey, 3, axis=-1).astype(np.uint8)


def heatmap_to_image_plane(
    heatmap: np.ndarray,
    bbox_center: Sequence[float],
    bbox_scale: Sequence[float],
    image_size: tuple[int, int],
    rotation: float = 0.0,
    udp: bool = False,
) -> np.ndarray:
    """Warp one person's heatmap [Hh, Wh] back onto its image -> [H, W] (image_size is (w, h));
    `udp`: the heatmap is on the udp codec's grid (geometry.affine_matrix)."""
    heatmap = np.asarray(heatmap, dtype=np.float32)
    heatmap_size = (heatmap.shape[1], heatmap.shape[0])
    matrix = affine_matrix(
        np.asarray(bbox_center, dtype=np.float32),
        np.asarray(bbox_scale, dtype=np.float32),
        rotation,
        heatmap_size,
        inverse=True,
        udp=udp,
    )
    return cv2.warpAffine(
        heatmap,
        np.asarray(matrix, dtype=np.float64),
        tuple(int(v) for v in image_size),
        flags=cv2.INTER_LINEAR,
        borderValue=0.0,
    )


# --- inference -----------------------------------------------------------------------------------


def plot_trajectories(
    tracks: dict[int, dict], joint_name: str, colors: dict[int, Sequence[float]], image: np.ndarray | None = None
) -> PoseFigure:
    """Per-person paths of one joint through a video: on the image plane (over `image`, RGB, when
    given) and its x coordinate against the frame number (gaps are frames the person was missed).

    tracks: {track id: {"frame": [T], "xy": [T, 2]}} in image pixels; colors: {track id: RGB in [0, 1]}.
    """
    fig, (ax_plane, ax_x) = new_figure(1, 2, (5.0, 3.6))
    if image is not None:
        show_image(ax_plane, image)
    else:
        ax_plane.invert_yaxis()
        ax_plane.set_aspect("equal")
    for track_id, track in sorted(tracks.items()):
        frames, xy = np.asarray(track["frame"]), np.asarray(track["xy"], dtype=float).reshape(-1, 2)
        # break the line where frames are missing, so gaps show as gaps
        breaks = np.flatnonzero(np.diff(frames) > 1) + 1
        for part_frames, part_xy in zip(np.split(frames, breaks), np.split(xy, breaks)):
            ax_plane.plot(part_xy[:, 0], part_xy[:, 1], color=colors[track_id], linewidth=1.5)
            ax_x.plot(part_frames, part_xy[:, 0], color=colors[track_id], linewidth=1.5)
        ax_x.plot([], [], color=colors[track_id], label=f"id {track_id}")
    ax_plane.set_title(f"{joint_name} on the image", fontsize=9)
    ax_x.set_xlabel("frame")
    ax_x.set_ylabel(f"{joint_name} x (pixels)")
    if tracks:
        ax_x.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------- one val person


def _keypoints(inst) -> np.ndarray:
    """A ground-truth person (a dataset Instance) as [K, 3] rows of (x, y, visibility)."""
    return np.concatenate([inst.joints, inst.visible[:, None]], 1)


def person_view(
    dataset,
    errors: dict,
    index: int,
    show_gt: bool = True,
    show_pred: bool = True,
    others: bool = True,
    heatmap: np.ndarray | None = None,
    rank: str = "",
    parts: tuple[str, ...] = (),
) -> dict:
    """`draw_people` arguments for dataset person `index`, zoomed to that person.

    The subject's ground truth and prediction are drawn strongly; with `others` the other people
    of the same image are drawn faint. `heatmap` [H, W] is in image pixels
    (heatmap_to_image_plane). The title names the person once: image id and which person of the
    image, then its score; `rank` (e.g. "3.") goes in front. `parts` (names of dataset.info.parts,
    e.g. ("face",)) shows only those joints of the whole-body sets; () shows all.
    """
    info = dataset.info

    def shown(keypoints):
        return only_parts(keypoints, info, parts)

    inst = dataset.instances[int(index)]
    same_image = [i for i, other in enumerate(dataset.instances) if other.image_id == inst.image_id]
    rest = [i for i in same_image if i != index] if others else []
    matched = [i for i in (index, *rest) if np.isfinite(errors["pred"][i]).all()]
    image = read_rgb(inst.image_path)
    box = inst.bbox_xyxy
    score = f"{errors['metric']} {errors['score'][index]:.2f}" if index in matched else "no matching prediction"
    person = f"person {same_image.index(index) + 1} of {len(same_image)}" if len(same_image) > 1 else "one person"
    return {
        "image": image,
        "gt": [shown(_keypoints(inst))] if show_gt else [],
        "pred": [shown(errors["pred"][index])] if show_pred and index in matched else [],
        "faint_gt": [shown(_keypoints(dataset.instances[i])) for i in rest] if show_gt else [],
        "faint_pred": [shown(errors["pred"][i]) for i in rest if i in matched] if show_pred else [],
        "boxes": [(box[0], box[1], box[2] - box[0], box[3] - box[1])] if box is not None else [],
        "view_box": zoom_box(box, image.shape) if box is not None else None,
        "heatmap": heatmap,
        "title": f"{rank + ' ' if rank else ''}image {inst.image_id}, {person}: {score}",
    }
