"""What the error analysis shares: its constants (coco-analyze's thresholds, the error types and
stages, the background studies' bins), the analysed problem, and the COCOeval runs every stage
makes; and the reader of a COCO keypoint results list (posecore.metrics uses it too)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pycocotools.cocoeval import COCOeval

ERROR_TYPES = ("good", "jitter", "inversion", "swap", "miss")
CORRECTION_ORDER = ("miss", "swap", "inversion", "jitter")  # coco-analyze's cumulative order
STAGES = ("baseline",) + CORRECTION_ORDER + ("score", "background_fp", "false_neg")
# one character per joint in `detections`: the error types, a joint the matched person has no
# label for, and a joint in no class (ks exactly .85 on the match)
ERROR_CODES = {
    "g": "good",
    "j": "jitter",
    "i": "inversion",
    "s": "swap",
    "m": "miss",
    ".": "not labelled",
    "?": "no class",
}
GOOD, JITTER, INVERSION, SWAP, MISS, NOT_LABELLED, NO_CLASS = range(7)
_CODE_OF = "gjism.?"

OKS_THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)  # coco-analyze's literals
LOCALIZATION_OKS = 0.1
GOOD_KS, NEAR_KS = 0.85, 0.5
AREA_RANGE = (32.0**2, 1e5**2)
MAX_DETECTIONS = 20
SOFT_NMS_WIDTH = 0.5  # score x exp(-OKS^2 / width), the soft-NMS paper's value
PR_CURVE_OKS = 0.75
HIGH_SCORE_PERCENTILE = 80  # coco-analyze splits the false positives scored above this percentile
# the background studies' bins: box area x .5 (a person fills about half its box), people in the
# image (a crowd annotation counts as a crowd), other people whose box overlaps at IoU > .1
SIZE_BINS = (
    ("small", 0.0, 32.0**2),
    ("medium", 32.0**2, 64.0**2),
    ("large", 64.0**2, 96.0**2),
    ("xlarge", 96.0**2, 128.0**2),
    ("xxlarge", 128.0**2, 1e5**2),
)
PEOPLE_BINS = (("none", 0, 0), ("one", 1, 1), ("small_group", 2, 4), ("large_group", 5, 8), ("crowd", 9, 100))
OVERLAP_BINS = (("0", 0, 0), ("1-2", 1, 2), ("3-8", 3, 8), ("9+", 9, 10**9))
OVERLAP_IOU = 0.1


@dataclass
class _Problem:
    """The analysed people and detections. N detections (COCO result ids 1..N), K joints."""

    coco_gt: Any  # pycocotools COCO of the ground truth (the analysed joints)
    coco_dt: Any  # its loadRes of the kept detections
    result_index: np.ndarray  # [N] each detection's index in the results file
    image_ids: np.ndarray  # [N]
    keypoints: np.ndarray  # [N, K, 3] as given (x, y, score)
    scores: np.ndarray  # [N]
    sigmas: np.ndarray  # [K] the set's OKS sigmas (keypoint similarity, soft-NMS)
    eval_sigmas: np.ndarray | None  # [K] for COCOeval; None = pycocotools' own COCO-17 values
    mirror: np.ndarray  # [K] index of each joint's mirror (itself on the centre line)
    joint_names: tuple[str, ...]
    set_name: str  # 'coco', or '<set>:<part>' for a set analysed on one part
    result_count: int  # results in the file, kept or not


@dataclass
class _Diagnosis:
    """Per diagnosed detection (D of them): rows into the N detections, the matched person's
    annotation id, the joint labels [D, K] (GOOD ... NO_CLASS) and the corrected points [D, K, 2]."""

    rows: np.ndarray
    gt_ids: np.ndarray
    labels: np.ndarray
    corrected_xy: np.ndarray


# --------------------------------------------------------------------------- COCOeval


def _evaluate(problem: _Problem, keypoints: np.ndarray, scores: np.ndarray, thresholds: Sequence[float]) -> Any:
    """COCOeval's per-image matching (evaluate) of the detections with `keypoints` [N, K, 3] and
    `scores` [N], at OKS `thresholds`, area range 'all' and MAX_DETECTIONS per image. The detections'
    areas stay those of the results as given (coco-analyze never recomputes them)."""
    for row, ann_id in enumerate(range(1, len(scores) + 1)):
        ann = problem.coco_dt.anns[ann_id]
        ann["keypoints"] = keypoints[row].reshape(-1).tolist()
        ann["score"] = float(scores[row])
    coco_eval = COCOeval(problem.coco_gt, problem.coco_dt, "keypoints")
    params = coco_eval.params
    params.iouThrs = np.asarray(thresholds, dtype=np.float64)
    params.areaRng, params.areaRngLbl, params.maxDets = [list(AREA_RANGE)], ["all"], [MAX_DETECTIONS]
    if problem.eval_sigmas is not None:
        params.kpt_oks_sigmas = problem.eval_sigmas
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
    return coco_eval


def _precision(coco_eval: Any) -> np.ndarray:
    """COCOeval's interpolated precision [T, R] of an evaluated (and possibly re-flagged) run."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.accumulate()
    return coco_eval.eval["precision"][:, :, 0, 0, 0].copy()


def _image_entries(coco_eval: Any) -> list[dict]:
    return [entry for entry in coco_eval.evalImgs if entry is not None]


def load_results(results: list[dict] | str | os.PathLike) -> list[dict]:
    """A COCO keypoint results list, given as the list or as the path of its JSON file."""
    if isinstance(results, (str, os.PathLike)):
        with open(results) as f:
            results = json.load(f)
    if not isinstance(results, list):
        raise ValueError("keypoint results must be a list of dicts (COCO results format)")
    return results
