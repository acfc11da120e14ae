"""Why a keypoint AP is what it is: the error diagnosis of Ronchi & Perona, "Benchmarking and Error
Diagnosis in Multi-Instance Pose Estimation" (ICCV 2017), with the rules of their coco-analyze.

`analyze_coco(gt_file, results_file, info)` takes a COCO keypoint ground truth and a results file
and returns a JSON-ready dict (what a run writes as eval/analysis.json):

- every labelled joint of every detection matched to a person is good, jitter, inversion, swap or
  miss (`errors`, `errors_per_joint`, and per detection in `detections`);
- the AP (mean over OKS .50:.95, at .50, at .75) of the detections as they are and after each
  correction, cumulatively: miss, swap, inversion, jitter, then optimal scores, then without
  background false positives, then without false negatives (`ap`, and the precision-recall curves
  at OKS .75 in `pr_curves` for the figure that fills each correction's area);
- the background false positives and the people never detected, split by size, by the number of
  people in the image, by labelled joints and by overlap (`background`).

The rules, as coco-analyze's code has them (pycocotools/cocoanalyze.py, analysisAPI/):
- The detections: results on the ground truth's images, the 20 best-scored per image (its
  run_analysis.py). Evaluation uses the area range 'all' = [32^2, 1e5^2]: people smaller than 32^2
  are ignored, and so are unmatched detections of that size (a detection's area is its `bbox` when
  the first result has one, else the box around its keypoints, as pycocotools' loadRes sets it).
  This baseline AP therefore differs from the standard COCO AP (area 0 .. 1e5^2) where small
  people are labelled.
- Matching for the diagnosis: COCOeval's greedy matching at OKS 0.1; a detection matched to a
  person without labelled joints (num_keypoints 0) is not diagnosed.
- Each joint labelled on the matched person is compared, by keypoint similarity ks (OKS's per-joint
  term, each candidate with its own area), with: the matched person, then every other person of
  the image in annotation order, then the same people mirrored (left and right joints exchanged by
  the flip pairs). The first candidate with the highest ks decides: ks > .85 on the match is good,
  .5 <= ks < .85 on the match jitter, ks >= .5 on the mirrored match inversion, ks >= .5 on any
  other candidate swap, ks < .5 miss (ks exactly .85 on the match falls in no class: '?').
- Corrections move an erroneous joint to (x + d, y) of the matched person's joint with
  d = sqrt(-2 ln(k) area sigma^2), k = .85 for jitter, .5 for miss, the winning ks for inversion and
  swap. Because OKS scales with (2 sigma)^2, that lands at ks = k^(1/4) (.96, .84, ...), not at k:
  coco-analyze's arithmetic, kept so the numbers agree with it.
- Optimal score: a detection's best OKS with a non-ignored person after every correction, then
  soft-suppressed within the image in order of that score (x exp(-OKS^2 / .5) per better-scored
  detection, OKS over all joints with the mean of the two keypoint boxes' areas).
- Without background FP / FN (the AP stages): at each OKS threshold, the detections unmatched at it
  (after corrections and optimal scores) are ignored; then the people unmatched at it or at a lower
  threshold. What is left is all matched, so the last stage's AP is 1 (-1 with nobody to find): its
  band in the figure is what the false negatives cost. The `background` counts instead are
  coco-analyze's studies of the original detections: detections and people unmatched at every
  threshold (people without labelled joints and crowds included, as there; `labelled` leaves them
  out), the false positives' splits also for those scored in the top fifth, as coco-analyze splits.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.coco import COCO as CocoApi

from posecore.error_analysis.background import _background, _without_background
from posecore.error_analysis.common import (
    _CODE_OF,
    AREA_RANGE,
    CORRECTION_ORDER,
    ERROR_CODES,
    ERROR_TYPES,
    GOOD,
    GOOD_KS,
    HIGH_SCORE_PERCENTILE,
    INVERSION,
    JITTER,
    LOCALIZATION_OKS,
    MAX_DETECTIONS,
    MISS,
    NEAR_KS,
    NO_CLASS,
    NOT_LABELLED,
    OKS_THRESHOLDS,
    PR_CURVE_OKS,
    SOFT_NMS_WIDTH,
    STAGES,
    SWAP,
    _Diagnosis,
    _evaluate,
    _image_entries,
    _precision,
    _Problem,
    load_results,
)
from posecore.keypoints import COCO, KeypointInfo

# --------------------------------------------------------------------------- entry point


def analyze_coco(gt_file: Any, results_file: Any, info: KeypointInfo | None = None, part: str = "body") -> dict:
    """The error diagnosis of a COCO keypoint results file (see the module docstring).

    gt_file: a COCO keypoints json path, its dict or a pycocotools COCO; results_file: a COCO
    results json path or its list. info: the keypoint set (default COCO's 17 joints); a set with
    parts (Halpe, COCO-WholeBody) is analysed on `part` ("body" by default), whose joints are cut
    from both files when they carry more. Returns the JSON-ready analysis dict.
    """
    problem = _problem(gt_file, results_file, info or COCO, part)
    original = problem.keypoints
    baseline = _evaluate(problem, original, problem.scores, OKS_THRESHOLDS)
    precision = {"baseline": _precision(baseline)}
    diagnosis = _diagnose(problem)
    keypoints = original.copy()
    for error in CORRECTION_ORDER:
        keypoints = _corrected(keypoints, diagnosis, ERROR_TYPES.index(error))
        corrected_eval = _evaluate(problem, keypoints, problem.scores, OKS_THRESHOLDS)
        precision[error] = _precision(corrected_eval)
    # the last (jitter) evaluation holds every correction and the original scores: the OKS table
    # coco-analyze takes the best OKS from
    best_scores = _optimal_scores(problem, keypoints, _best_oks(corrected_eval, len(problem.scores)))
    rescored = _evaluate(problem, keypoints, best_scores, OKS_THRESHOLDS)
    precision["score"] = _precision(rescored)
    # the background stages re-flag that same evaluation (its matches are the ones they remove)
    precision["background_fp"], precision["false_neg"] = _without_background(rescored)
    return {
        "keypoint_set": problem.set_name,
        "joints": list(problem.joint_names),
        "settings": _settings(),
        "counts": {
            "results": problem.result_count,
            "analysed": int(len(problem.scores)),
            "diagnosed": int(len(diagnosis.rows)),
        },
        "errors": _error_counts(diagnosis.labels),
        "errors_per_joint": {
            name: _error_counts(diagnosis.labels[:, j : j + 1]) for j, name in enumerate(problem.joint_names)
        },
        "ap": {stage: _ap_summary(precision[stage]) for stage in STAGES},
        "pr_curves": _pr_curves(precision),
        "background": _background(problem, baseline),  # the original detections' matches
        "detections": _detection_records(problem, diagnosis, best_scores),
        "codes": ERROR_CODES,
    }


def pr_curves(analysis: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The precision-recall curves of an analysis at OKS .75: recall thresholds [R] and
    {stage: precision [R]} in STAGES order (-1 where the ground truth has nobody to find)."""
    curves = analysis["pr_curves"]
    return (
        np.asarray(curves["recall"], dtype=np.float64),
        {stage: np.asarray(curves["precision"][stage], dtype=np.float64) for stage in STAGES},
    )


# --------------------------------------------------------------------------- inputs


def _problem(gt_file: Any, results_file: Any, info: KeypointInfo, part: str) -> _Problem:
    """The ground truth and the kept detections, cut to the analysed joints."""
    joints = info.part_joints(part) if info.parts else list(range(info.num_joints))
    if len(info.sigmas) != info.num_joints:
        raise ValueError(f"keypoint set {info.dataset} has no OKS sigmas; give eval.sigmas (one per joint)")
    names = tuple(info.joint_names[j] for j in joints)
    sigmas = np.asarray(info.sigmas, dtype=np.float64)[joints]
    is_coco_17 = names == COCO.joint_names and np.array_equal(sigmas, COCO.sigmas)
    coco_gt = _ground_truth(gt_file, joints)
    results = load_results(results_file)
    kept, result_index = _top_detections(results, set(coco_gt.getImgIds()), joints)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(kept)
    return _Problem(
        coco_gt=coco_gt,
        coco_dt=coco_dt,
        result_index=np.asarray(result_index, dtype=np.int64),
        image_ids=np.asarray([r["image_id"] for r in kept]),
        keypoints=np.asarray([r["keypoints"] for r in kept], dtype=np.float64).reshape(len(kept), len(joints), 3),
        scores=np.asarray([r["score"] for r in kept], dtype=np.float64),
        sigmas=sigmas,
        eval_sigmas=None if is_coco_17 else sigmas,
        mirror=_mirror_index(info, joints),
        joint_names=names,
        set_name=f"{info.dataset}:{part}" if info.parts else info.dataset,
        result_count=len(results),
    )


def _mirror_index(info: KeypointInfo, joints: Sequence[int]) -> np.ndarray:
    """[K] the analysed joints' mirrors by the set's flip pairs (pairs leaving the part are dropped)."""
    local = {joint: k for k, joint in enumerate(joints)}
    mirror = np.arange(len(joints))
    for left, right in info.flip_pairs:
        if left in local and right in local:
            mirror[local[left]], mirror[local[right]] = local[right], local[left]
    return mirror


def _ground_truth(gt_file: Any, joints: Sequence[int]) -> Any:
    """A pycocotools COCO of the ground truth whose people carry only `joints` (num_keypoints
    recounted where joints are cut; a file of exactly those joints is used as it is)."""
    if isinstance(gt_file, CocoApi):
        content = gt_file.dataset
    elif isinstance(gt_file, dict):
        content = gt_file
    else:
        with open(gt_file) as f:
            content = json.load(f)
    content = {**content, "annotations": [_cut_person(ann, joints) for ann in content.get("annotations", [])]}
    coco = CocoApi()
    coco.dataset = json.loads(json.dumps(content))  # COCOeval marks the annotations: work on a copy
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _cut_person(ann: dict, joints: Sequence[int]) -> dict:
    triples = np.asarray(ann.get("keypoints") or [], dtype=np.float64).reshape(-1, 3)
    if len(triples) == len(joints) and list(joints) == list(range(len(joints))):
        return ann
    if not len(triples):
        return {**ann, "keypoints": [0.0] * (3 * len(joints)), "num_keypoints": 0}
    if len(triples) <= max(joints):
        raise ValueError(
            f"annotation {ann.get('id')} has {len(triples)} joints; the analysed joints reach index {max(joints)}"
        )
    cut = triples[list(joints)]
    return {**ann, "keypoints": cut.reshape(-1).tolist(), "num_keypoints": int((cut[:, 2] > 0).sum())}


def _top_detections(results: list[dict], image_ids: set, joints: Sequence[int]) -> tuple[list[dict], list[int]]:
    """coco-analyze's selection (its run_analysis.py): the results on the ground truth's images,
    the MAX_DETECTIONS best per image (a stable sort by score), images in the order of their first
    result. Returns the kept results (fresh dicts, keypoints cut to `joints`) and their indices."""
    by_image: dict[Any, list[int]] = {}
    for index, result in enumerate(results):
        if result.get("image_id") in image_ids:
            by_image.setdefault(result["image_id"], []).append(index)
    order = [
        i for members in by_image.values() for i in sorted(members, key=lambda i: -results[i]["score"])[:MAX_DETECTIONS]
    ]
    if not order:
        raise ValueError(
            "no keypoint result is on an image of the ground truth; analyse the results "
            "against the annotation file of their split"
        )
    kept = [_cut_result(results[i], joints, i) for i in order]
    with_box = [bool(r.get("bbox")) for r in kept]
    if with_box[0] and not all(with_box):
        # pycocotools' loadRes takes every area from `bbox` when the first result has one
        raise ValueError(
            f"result {order[with_box.index(False)]} has no bbox while result {order[0]} has "
            "one; give every result a bbox or none"
        )
    return kept, order


def _cut_result(result: dict, joints: Sequence[int], index: int) -> dict:
    triples = np.asarray(result["keypoints"], dtype=np.float64).reshape(-1, 3)
    if len(triples) <= max(joints):
        raise ValueError(f"result {index} has {len(triples)} joints; the analysed joints reach index {max(joints)}")
    triples = triples[list(joints)]
    if not (np.isfinite(triples).all() and np.isfinite(result["score"])):
        raise ValueError(
            f"result {index} (image {result['image_id']}) has NaN or inf keypoints or score; refusing to analyse it"
        )
    kept = {
        "image_id": result["image_id"],
        "category_id": result["category_id"],
        "keypoints": triples.reshape(-1).tolist(),
        "score": float(result["score"]),
    }
    if result.get("bbox"):
        kept["bbox"] = [float(v) for v in result["bbox"]]
    return kept


# --------------------------------------------------------------------------- the diagnosis


def _diagnose(problem: _Problem) -> _Diagnosis:
    """Label every joint of every detection matched at LOCALIZATION_OKS to a person with labelled
    joints, and the point each error would be corrected to."""
    matches = _localization_matches(problem)
    rows, gt_ids, labels, corrected = [], [], [], []
    people_of = {}
    for row in range(len(problem.scores)):
        gt_id = matches.get(row + 1)
        if gt_id is None or problem.coco_gt.anns[gt_id].get("num_keypoints", 0) == 0:
            continue
        image_id = problem.image_ids[row]
        if image_id not in people_of:
            people_of[image_id] = _image_people(problem.coco_gt, image_id, problem.mirror)
        people = people_of[image_id]
        matched = people.ids.index(gt_id)
        joint_labels, best = _joint_labels(problem.keypoints[row, :, :2], people, matched, problem.sigmas)
        rows.append(row)
        gt_ids.append(gt_id)
        labels.append(joint_labels)
        corrected.append(
            _correction_targets(joint_labels, best, people.xy[matched], people.areas[matched], problem.sigmas)
        )
    num_joints = len(problem.sigmas)
    return _Diagnosis(
        rows=np.asarray(rows, dtype=np.int64),
        gt_ids=np.asarray(gt_ids, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.int64).reshape(-1, num_joints),
        corrected_xy=np.asarray(corrected, dtype=np.float64).reshape(-1, num_joints, 2),
    )


def _localization_matches(problem: _Problem) -> dict[int, int]:
    """Detection id -> person id of COCOeval's greedy matching at LOCALIZATION_OKS, original
    detections (a person outside the area range or without labels may be the match)."""
    coco_eval = _evaluate(problem, problem.keypoints, problem.scores, [LOCALIZATION_OKS])
    return {
        int(dt_id): int(gt_id)
        for entry in _image_entries(coco_eval)
        for dt_id, gt_id in zip(entry["dtIds"], entry["dtMatches"][0])
        if gt_id
    }


@dataclass
class _People:
    """The P annotations of one image in annotation order, plain then mirrored (2P candidates)."""

    ids: list[int]
    xy: np.ndarray  # [P, K, 2]
    areas: np.ndarray  # [P]
    candidates_xy: np.ndarray  # [2P, K, 2]: the people, then the people mirrored
    candidates_visible: np.ndarray  # [2P, K]
    candidates_area: np.ndarray  # [2P]


def _image_people(coco_gt: Any, image_id: Any, mirror: np.ndarray) -> _People:
    anns = coco_gt.imgToAnns[image_id]
    num_joints = len(mirror)
    triples = np.asarray([ann.get("keypoints") or [0.0] * (3 * num_joints) for ann in anns], dtype=np.float64).reshape(
        len(anns), num_joints, 3
    )
    areas = np.asarray([ann["area"] for ann in anns], dtype=np.float64)
    # a mirrored person: joint j takes the place and label of its mirror joint
    candidates = np.concatenate([triples, triples[:, mirror]])
    return _People(
        ids=[ann["id"] for ann in anns],
        xy=triples[..., :2],
        areas=areas,
        candidates_xy=candidates[..., :2],
        candidates_visible=candidates[..., 2] > 0,
        candidates_area=np.concatenate([areas, areas]),
    )


def _joint_labels(
    points: np.ndarray, people: _People, matched: int, sigmas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels [K] of one detection's points [K, 2] matched to person `matched`, and the winning
    similarity [K] (0 where no candidate has the joint labelled).

    Candidates go in coco-analyze's order, which decides ties: the match, the other people, the
    mirrored match, the other people mirrored."""
    count = len(people.ids)
    others = [p for p in range(count) if p != matched]
    order = np.asarray([matched] + others + [count + matched] + [count + p for p in others])
    squared = ((people.candidates_xy[order] - points[None]) ** 2).sum(axis=-1)  # [2P, K]
    variances = (sigmas * 2) ** 2
    similarity = np.exp(-squared / variances / (people.candidates_area[order, None] + np.spacing(1)) / 2)
    similarity = np.where(people.candidates_visible[order], similarity, -1.0)
    winner = similarity.argmax(axis=0)  # the first of equal maxima
    best = np.maximum(similarity.max(axis=0), 0.0)
    near = best >= NEAR_KS
    labels = np.full(len(sigmas), NO_CLASS)
    labels[(winner == 0) & (best > GOOD_KS)] = GOOD
    labels[(winner == 0) & near & (best < GOOD_KS)] = JITTER
    labels[(winner == count) & near] = INVERSION
    labels[(winner != 0) & (winner != count) & near] = SWAP
    labels[~near] = MISS
    labels[~people.candidates_visible[matched]] = NOT_LABELLED
    return labels, best


def _correction_targets(
    labels: np.ndarray, best: np.ndarray, person_xy: np.ndarray, area: float, sigmas: np.ndarray
) -> np.ndarray:
    """[K, 2] where each erroneous joint goes: (x + d, y) of the matched person's joint, with
    d = sqrt(-2 ln(k) area sigma^2) for k = GOOD_KS (jitter), NEAR_KS (miss) or the winning
    similarity (inversion, swap; kept off exactly 0 and 1 so the log stays finite and d > 0).

    coco-analyze's formula: with OKS's (2 sigma)^2 the point lands at similarity k^(1/4). The
    three offsets are computed apart, as coco-analyze does, so they agree bit for bit."""
    nudged = best + np.spacing(1) * (best == 0) - np.spacing(1) * (best == 1)
    to_good = np.sqrt(-np.log(GOOD_KS) * 2 * area * (sigmas**2))
    to_near = np.sqrt(-np.log(NEAR_KS) * 2 * area * (sigmas**2))
    to_best = np.sqrt(-np.log(nudged) * 2 * area * (sigmas**2))
    offset = np.select(
        [labels == JITTER, labels == MISS, (labels == INVERSION) | (labels == SWAP)],
        [to_good, to_near, to_best],
        default=0.0,
    )
    return np.stack([person_xy[:, 0] + offset, person_xy[:, 1]], axis=-1)


def _corrected(keypoints: np.ndarray, diagnosis: _Diagnosis, label: int) -> np.ndarray:
    """keypoints [N, K, 3] with the joints of one error type moved to their corrected place (the
    joints' scores stay)."""
    out = keypoints.copy()
    at = diagnosis.labels == label  # [D, K]
    rows = np.repeat(diagnosis.rows[:, None], at.shape[1], axis=1)[at]
    out[rows, np.nonzero(at)[1], :2] = diagnosis.corrected_xy[at]
    return out


def _error_counts(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == code).sum()) for code, name in enumerate(ERROR_TYPES)}


# --------------------------------------------------------------------------- optimal scores


def _best_oks(coco_eval: Any, count: int) -> np.ndarray:
    """[N] each detection's best OKS with a person that counts (not ignored: labelled, no crowd, in
    the area range), from an evaluated COCOeval's OKS table; 0 in an image without such a person."""
    best = np.zeros(count)
    max_dets = coco_eval.params.maxDets[-1]
    for key, table in coco_eval.ious.items():
        detections, people = coco_eval._dts[key], coco_eval._gts[key]
        counted = np.asarray([not person["_ignore"] for person in people], dtype=bool)
        if len(table) == 0 or not counted.any():
            continue
        # the table's rows are the detections best score first, as computeOks orders them
        order = np.argsort([-d["score"] for d in detections], kind="mergesort")[:max_dets]
        best[[detections[i]["id"] - 1 for i in order]] = np.asarray(table)[:, counted].max(axis=1)
    return best


def _optimal_scores(problem: _Problem, keypoints: np.ndarray, best_oks: np.ndarray) -> np.ndarray:
    """[N] coco-analyze's optimal scores: the best OKS [N], soft-suppressed within each image."""
    scores = best_oks.copy()
    for image_id in np.unique(problem.image_ids):
        members = np.flatnonzero(problem.image_ids == image_id)  # detection id order
        scores[members] = _soft_suppressed(keypoints[members, :, :2], scores[members], problem.sigmas)
    return scores


def _soft_suppressed(points: np.ndarray, scores: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Soft-NMS of one image's poses [D, K, 2] with `scores` [D]: repeatedly take the best-scored
    remaining pose (the first on ties, in the order of the previous round) and multiply every other
    remaining score by exp(-OKS^2 / SOFT_NMS_WIDTH). OKS here counts every joint, with the mean
    of the two poses' keypoint-box areas."""
    scores = scores.astype(np.float64).copy()
    extent = points.max(axis=1) - points.min(axis=1)
    areas = extent[:, 0] * extent[:, 1]
    variances = (sigmas * 2) ** 2
    remaining = list(range(len(scores)))
    while remaining:
        remaining.sort(key=lambda i: -scores[i])  # stable, as coco-analyze's list sort
        top = remaining.pop(0)
        if not remaining:
            break
        rest = np.asarray(remaining)
        squared = ((points[rest] - points[top]) ** 2).sum(axis=-1)  # [R, K]
        error = squared / variances / ((0.5 * (areas[top] + areas[rest])) + np.spacing(1))[:, None] / 2
        oks = np.exp(-error).sum(axis=1) / len(sigmas)
        scores[rest] = scores[rest] * np.exp(-((oks**2) / SOFT_NMS_WIDTH))
    return scores


# --------------------------------------------------------------------------- the record


def _ap_summary(precision: np.ndarray) -> dict[str, float]:
    """COCOeval's AP (mean over thresholds and recall levels), AP50 and AP75 of precision [T, R];
    -1 where there is nobody to find."""

    def mean(values: np.ndarray) -> float:
        valid = values[values > -1]
        return float(valid.mean()) if valid.size else -1.0

    return {
        "AP": mean(precision),
        "AP50": mean(precision[OKS_THRESHOLDS.index(0.5)]),
        "AP75": mean(precision[OKS_THRESHOLDS.index(0.75)]),
    }


def _pr_curves(precision: dict[str, np.ndarray]) -> dict:
    """The curves at PR_CURVE_OKS: COCOeval's 101 recall levels and each stage's precision there."""
    t = OKS_THRESHOLDS.index(PR_CURVE_OKS)
    recall = np.linspace(0.0, 1.0, 101)
    return {
        "oks": PR_CURVE_OKS,
        "recall": [round(float(r), 2) for r in recall],
        "precision": {stage: [round(float(p), 6) for p in precision[stage][t]] for stage in STAGES},
    }


def _detection_records(problem: _Problem, diagnosis: _Diagnosis, best_scores: np.ndarray) -> list[dict]:
    """One compact record per diagnosed detection, for drawing its offending joints: its index in
    the results file, image, matched person, optimal score and one code per joint (ERROR_CODES)."""
    return [
        {
            "result": int(problem.result_index[row]),
            "image_id": _plain(problem.image_ids[row]),
            "gt_id": int(gt_id),
            "optimal_score": round(float(best_scores[row]), 6),
            "joints": "".join(_CODE_OF[label] for label in labels),
        }
        for row, gt_id, labels in zip(diagnosis.rows, diagnosis.gt_ids, diagnosis.labels)
    ]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _settings() -> dict:
    return {
        "oks_thresholds": list(OKS_THRESHOLDS),
        "localization_oks": LOCALIZATION_OKS,
        "good_ks": GOOD_KS,
        "near_ks": NEAR_KS,
        "area_range": list(AREA_RANGE),
        "max_detections_per_image": MAX_DETECTIONS,
        "correction_order": list(CORRECTION_ORDER),
        "soft_nms_width": SOFT_NMS_WIDTH,
        "high_score_percentile": HIGH_SCORE_PERCENTILE,
    }
