"""Per-person scores of an evaluation: how well each val person was predicted.

`person_errors(dataset, eval_dir)` matches the predictions posecore.evaluate wrote to a run's
eval/ (or validation's val/) folder to the dataset's ground-truth persons; the pose browser, the
eval notebook's worst-predictions gallery and TensorBoard's prediction grid rank and draw them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from posecore import metrics as M
from posecore.data import keypoint_ground_truth, uses_coco_layout
from posecore.runs import EvalFiles


def person_errors(dataset, eval_dir: str | Path, pckh_thr: float = 0.5) -> dict:
    """Match the eval folder's predictions to the dataset's ground-truth persons and score each one.

    COCO: the results (after OKS-NMS) against each labelled person of the same image, OKS as
    COCOeval computes it (annotation area as scale); the best-matching prediction is kept. MPII:
    the predictions are in dataset order; the score is the person's PCKh@pckh_thr (official head
    boxes from the dataset's .mat), else the fraction of joints within 0.1 x the box height.
    Returns {"metric": name, "score" [N] (1 = perfect), "pred" [N, K, 3] (NaN where unmatched)}.
    """
    files = EvalFiles(eval_dir)
    if uses_coco_layout(dataset.info.dataset):
        return _coco_person_errors(dataset, _read_eval_file(files.results))
    predictions = _read_eval_file(files.predictions)
    if len(predictions) != len(dataset):
        raise ValueError(
            f"{files.predictions} has {len(predictions)} people, the dataset "
            f"{len(dataset)}: evaluate the same params' val split again"
        )
    pred = np.asarray([p["keypoints"] for p in predictions], dtype=float).reshape(len(dataset), -1, 3)
    if dataset.gt_mat:
        errors, visible, _ = M.pckh_errors(pred, dataset.gt_mat)
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
    areas = _coco_areas(keypoint_ground_truth(dataset.ann_file, info.dataset))
    by_image: dict[int, list[np.ndarray]] = {}
    for result in results:
        by_image.setdefault(int(result["image_id"]), []).append(
            np.asarray(result["keypoints"], dtype=float).reshape(info.num_joints, 3)
        )
    score = np.zeros(len(dataset))
    pred = np.full((len(dataset), info.num_joints, 3), np.nan)
    for i, inst in enumerate(dataset.instances):
        candidates = by_image.get(int(inst.image_id), [])
        if not candidates:
            continue
        box = inst.bbox_xyxy
        area = areas.get(
            _coco_key(inst.image_id, inst.joints, inst.visible),
            float((box[2] - box[0]) * (box[3] - box[1])) if box is not None else 1.0,
        )
        poses = np.stack(candidates)
        oks = M.oks_to_person(poses, inst.joints, inst.visible, area, info.sigmas)
        best = int(oks.argmax())
        score[i], pred[i] = oks[best], poses[best]
    return {"metric": "OKS", "score": score, "pred": pred}


def _coco_key(image_id, joints, visible) -> tuple:
    xy = np.asarray(joints, dtype=np.float32).reshape(-1, 2) * (np.asarray(visible).reshape(-1, 1) > 0)
    return (int(image_id), tuple(np.round(xy.ravel(), 1).tolist()))


def _coco_areas(content: dict) -> dict:
    """Annotation areas (the OKS scale) of a COCO keypoints dict, keyed by image and labelled joints."""
    annotations = content.get("annotations", [])
    areas = {}
    for ann in annotations:
        keypoints = np.asarray(ann.get("keypoints") or [], dtype=np.float32).reshape(-1, 3)
        areas[_coco_key(ann["image_id"], keypoints[:, :2], keypoints[:, 2])] = float(ann.get("area", 0.0))
    return areas
