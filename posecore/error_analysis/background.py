"""The background errors of an analysis: the detections that match nobody (false positives) and
the people nobody detected (false negatives), as coco-analyze's background studies count and split
them, and the AP stages without them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from posecore.error_analysis.common import (
    AREA_RANGE,
    HIGH_SCORE_PERCENTILE,
    OVERLAP_BINS,
    OVERLAP_IOU,
    PEOPLE_BINS,
    SIZE_BINS,
    _image_entries,
    _precision,
    _Problem,
)

# --------------------------------------------------------------------------- background errors


def _without_background(coco_eval: Any) -> tuple[np.ndarray, np.ndarray]:
    """Precision [T, R] without background false positives, then also without false negatives,
    from an evaluated COCOeval (corrected keypoints, optimal scores) whose flags this changes.

    At threshold t every detection unmatched at t is ignored; then every person unmatched at t or
    at a lower threshold (coco-analyze sets a person's ignore flag once for all thresholds, in
    ascending order, and reads row t after each)."""
    entries = _image_entries(coco_eval)
    for entry in entries:
        entry["dtIgnore"] = np.logical_or(entry["dtIgnore"], entry["dtMatches"] == 0)
    without_fp = _precision(coco_eval)
    without_fn = np.empty_like(without_fp)
    for t in range(len(coco_eval.params.iouThrs)):
        for entry in entries:
            unmatched = entry["gtMatches"][t] == 0
            entry["gtIgnore"] = np.where(unmatched, 1, entry["gtIgnore"])
        without_fn[t] = _precision(coco_eval)[t]
    return without_fp, without_fn


def _background(problem: _Problem, baseline: Any) -> dict:
    """coco-analyze's background studies of the original detections (`baseline`, evaluated at
    every OKS threshold): detections and people unmatched at every threshold, split."""
    entries = _image_entries(baseline)
    false_pos = sorted(
        int(dt_id)
        for entry in entries
        for dt_id, row in zip(entry["dtIds"], np.asarray(entry["dtMatches"]).T)
        if not row.any()
    )
    matched_people = {
        int(gt_id)
        for entry in entries
        for gt_id, row in zip(entry["gtIds"], np.asarray(entry["gtMatches"]).T)
        if row.any()
    }
    # a person is matched by id; crowds may be matched many times, people of images without detections never
    false_neg = sorted(ann_id for ann_id in problem.coco_gt.anns if ann_id not in matched_people)
    scores = problem.scores
    high = np.percentile(scores, HIGH_SCORE_PERCENTILE)
    high_fp = [dt_id for dt_id in false_pos if scores[dt_id - 1] >= high]
    return {
        "false_positives": {
            "count": len(false_pos),
            "results": [int(problem.result_index[i - 1]) for i in false_pos],
            **_detection_splits(problem, false_pos),
            "high_score": {"min_score": float(high), "count": len(high_fp), **_detection_splits(problem, high_fp)},
        },
        "false_negatives": {
            "count": len(false_neg),
            "labelled": _labelled_count(problem, false_neg),
            "gt_ids": false_neg,
            **_person_splits(problem, false_neg),
        },
    }


def _labelled_count(problem: _Problem, gt_ids: list[int]) -> int:
    """People with labelled joints among `gt_ids` (coco-analyze's false-negative count takes the
    others too: crowds and people nobody labelled a joint of)."""
    return sum(problem.coco_gt.anns[i].get("num_keypoints", 0) > 0 for i in gt_ids)


def _detection_splits(problem: _Problem, dt_ids: list[int]) -> dict:
    """Detections split by box size and by the number of people in their image."""
    anns = [problem.coco_dt.anns[i] for i in dt_ids]
    return {
        "by_size": _binned([_half_box_area(ann["bbox"]) for ann in anns], SIZE_BINS, upper_open=True),
        "by_people": _binned([_people_count(problem.coco_gt, ann["image_id"]) for ann in anns], PEOPLE_BINS),
    }


def _person_splits(problem: _Problem, gt_ids: list[int]) -> dict:
    """People split by labelled joints (all of them), and, for those with labelled joints as
    coco-analyze does, by box size, by the number of people in their image and by how many other
    people's boxes overlap theirs (IoU > OVERLAP_IOU, coco-analyze's crowding benchmark)."""
    anns = [problem.coco_gt.anns[i] for i in gt_ids]
    labelled = [ann for ann in anns if ann.get("num_keypoints", 0) > 0]
    counts = np.bincount([ann.get("num_keypoints", 0) for ann in anns], minlength=1)
    return {
        "by_keypoints": {str(k): int(n) for k, n in enumerate(counts) if n},
        "by_size": _binned([_half_box_area(ann["bbox"]) for ann in labelled], SIZE_BINS, upper_open=True),
        "by_people": _binned([_people_count(problem.coco_gt, ann["image_id"]) for ann in labelled], PEOPLE_BINS),
        "by_overlap": _binned([_overlap_count(problem.coco_gt, ann) for ann in labelled], OVERLAP_BINS),
    }


def _half_box_area(bbox: Sequence[float]) -> float:
    # coco-analyze truncates the box to whole pixels and takes half its area as the person's size
    return int(bbox[2]) * int(bbox[3]) * 0.5


def _people_count(coco_gt: Any, image_id: Any) -> int:
    """Annotations of the image, or 100 (a crowd) when one of them is a crowd."""
    anns = coco_gt.imgToAnns[image_id]
    return 100 if any(ann.get("iscrowd") for ann in anns) else len(anns)


def _overlap_count(coco_gt: Any, person: dict) -> int:
    """Other annotations of the person's image (area below 1e5^2) whose box has IoU > OVERLAP_IOU with it."""
    others = [
        ann
        for ann in coco_gt.imgToAnns[person["image_id"]]
        if ann["id"] != person["id"] and ann["area"] < AREA_RANGE[1]
    ]
    if not others:
        return 0
    boxes = np.asarray([ann["bbox"] for ann in others], dtype=np.float64)  # [O, 4] x, y, w, h
    x, y, w, h = (float(v) for v in person["bbox"])
    inter_w = np.clip(np.minimum(x + w, boxes[:, 0] + boxes[:, 2]) - np.maximum(x, boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(y + h, boxes[:, 1] + boxes[:, 3]) - np.maximum(y, boxes[:, 1]), 0, None)
    inter = inter_w * inter_h
    union = w * h + boxes[:, 2] * boxes[:, 3] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)
    return int((iou > OVERLAP_IOU).sum())


def _binned(
    values: Sequence[float], bins: Sequence[tuple[str, float, float]], upper_open: bool = False
) -> dict[str, int]:
    """Counts of `values` per named bin [low, high] (or [low, high) with upper_open); a value in
    no bin is not counted, as in coco-analyze."""
    values = np.asarray(values, dtype=np.float64)
    inside = (
        (lambda low, high: (values >= low) & (values < high))
        if upper_open
        else (lambda low, high: (values >= low) & (values <= high))
    )
    return {name: int(inside(low, high).sum()) for name, low, high in bins}
