"""Whole-body annotation files made from the real COCO samples, for the whole-body tests.

`make_wholebody(coco_root, folder)` writes COCO-WholeBody's official layout (annotations/
coco_wholebody_{train,val}_v1.0.json + the train2017/val2017 images, linked): every COCO person
keeps its 17 body joints and gets feet at its ankles, a 68-point face around its nose and 21-point
hands at its wrists wherever those body joints are labelled (the part's `*_valid` flag says
whether it has any). `make_halpe(coco_root, folder)` writes the same people in Halpe's layout
(136 joints per person: head, neck and mid-hip added, feet in Halpe's order).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def _points(body: np.ndarray, box, size) -> dict[str, np.ndarray]:
    """Part points [n, 3] (x, y, v) derived from the body joints [17, 3] of one person."""
    x, y, w, h = box
    unit = max(min(w, h), 8.0) / 12.0
    labelled = body[:, 2] > 0

    def near(joint: int, offsets) -> np.ndarray:
        if not labelled[joint]:
            return np.zeros((len(offsets), 3))
        xy = body[joint, :2] + np.asarray(offsets, dtype=float) * unit
        xy = np.clip(xy, 0, [size[0] - 1, size[1] - 1])
        return np.concatenate([xy, np.full((len(xy), 1), 2.0)], axis=1)

    face = [(1.6 * math.cos(a), 1.9 * math.sin(a) + 0.4) for a in np.linspace(0, 2 * math.pi, 68, endpoint=False)]
    hand = [(0.3, 0.3)] + [
        (0.35 * n * math.cos(t), 0.35 * n * math.sin(t) + 0.4) for t in np.linspace(0.3, 2.8, 5) for n in range(1, 5)
    ]
    return {
        # left big toe, small toe, heel, then the right foot (COCO-WholeBody's order)
        "foot": np.concatenate(
            [near(15, [(0.8, 0.9), (1.3, 0.7), (-0.4, 0.4)]), near(16, [(-0.8, 0.9), (-1.3, 0.7), (0.4, 0.4)])]
        ),
        "face": near(0, face) if labelled[1] and labelled[2] else np.zeros((68, 3)),
        "lefthand": near(9, hand),
        "righthand": near(10, [(-dx, dy) for dx, dy in hand]),
    }


def _people(coco_root: Path, subset: str):
    with open(coco_root / "annotations" / f"person_keypoints_{subset}.json") as f:
        coco = json.load(f)
    sizes = {img["id"]: (img["width"], img["height"]) for img in coco["images"]}
    for ann in coco["annotations"]:
        body = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
        yield coco, ann, body, _points(body, ann["bbox"], sizes[ann["image_id"]])


def _flat(points: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in points.reshape(-1)]


def _link_images(coco_root: Path, folder: Path, target: str, subset: str) -> None:
    link = folder / target
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        os.symlink(coco_root / subset, link)


def make_wholebody(coco_root, folder) -> Path:
    """COCO-WholeBody's layout in `folder` from the COCO samples; returns folder."""
    coco_root, folder = Path(coco_root), Path(folder)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    for subset in ("train2017", "val2017"):
        coco = None
        annotations = []
        for coco, ann, _body, parts in _people(coco_root, subset):  # noqa: B007  (coco: used after the loop)
            entry = dict(ann)
            for part in ("foot", "face", "lefthand", "righthand"):
                entry[f"{part}_kpts"] = _flat(parts[part])
                entry[f"{part}_valid"] = bool((parts[part][:, 2] > 0).any())
            annotations.append(entry)
        content = {**coco, "annotations": annotations}
        split = "train" if subset == "train2017" else "val"
        with open(folder / "annotations" / f"coco_wholebody_{split}_v1.0.json", "w") as f:
            json.dump(content, f)
        _link_images(coco_root, folder, subset, subset)
    return folder


def make_halpe(coco_root, folder) -> Path:
    """Halpe-FullBody's layout in `folder` from the COCO samples (136 joints); returns folder."""
    coco_root, folder = Path(coco_root), Path(folder)
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    for subset, split, images in (("train2017", "train", "images/train2015"), ("val2017", "val", "images/val2017")):
        coco = None
        annotations = []
        for coco, ann, body, parts in _people(coco_root, subset):  # noqa: B007  (coco: used after the loop)

            def mid(a, b, body=body):
                if body[a, 2] > 0 and body[b, 2] > 0:
                    return np.array([[*(body[a, :2] + body[b, :2]) / 2, 2.0]])
                return np.zeros((1, 3))

            head = np.array([[body[0, 0], body[0, 1] - 5, 2.0]]) if body[0, 2] > 0 else np.zeros((1, 3))
            foot = parts["foot"][[0, 3, 1, 4, 2, 5]]  # Halpe: big toes, small toes, heels (left, right)
            joints = np.concatenate(
                [body, head, mid(5, 6), mid(11, 12), foot, parts["face"], parts["lefthand"], parts["righthand"]]
            )
            entry = dict(ann, keypoints=_flat(joints), num_keypoints=int((joints[:, 2] > 0).sum()))
            annotations.append(entry)
        category = {"id": 1, "name": "person", "supercategory": "person"}
        content = {**coco, "annotations": annotations, "categories": [category]}
        with open(folder / "annotations" / f"halpe_{split}_v1.json", "w") as f:
            json.dump(content, f)
        _link_images(coco_root, folder, images, subset)
    return folder
