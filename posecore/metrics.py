"""Scoring: COCO keypoint AP (pycocotools' COCOeval), OKS-NMS and rescoring, MPII PCKh.

Pure numpy + pycocotools + scipy, no torch. Every entry point refuses NaN / inf coordinates and
names the images that carry them: COCOeval would otherwise count a NaN keypoint as a perfect match
(every comparison with NaN is False, so its OKS error term is never "too large").

COCO protocol (HRNet's and mmpose's): person score = box score x mean of the keypoint scores above
`in_vis_thr`, then greedy OKS-NMS per image, then COCOeval with iouType 'keypoints'. AlphaPose's
in-training "gt mAP" check scores persons by mean + 1.25 x max of their keypoint scores instead and
skips NMS; `alphapose_gt_scores` gives that score.

MPII protocol (the official MATLAB evaluation as ported by HRNet / mmpose 0.x): a joint is correct
when its distance to the ground truth is at most thr x head size, head size = 0.6 x the diagonal of
the annotated head box; joints marked missing are ignored; the mean leaves out pelvis and thorax and
weights the joints by their visible counts.

Error diagnosis (why the AP is what it is: Ronchi & Perona's, with coco-analyze's rules):
`analyze_coco`, re-exported from posecore.error_analysis.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from scipy.io import loadmat, savemat

from posecore.error_analysis import analyze_coco  # noqa: F401  (re-exported: posecore.metrics.analyze_coco)
from posecore.error_analysis.common import load_results
from posecore.files import atomic_write

log = logging.getLogger(__name__)

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
COCO_CATEGORY_ID = 1

# Joint names as stored in the official mpii_gt_val.mat (`dataset_joints`), in its order.
MPII_MAT_JOINTS = (
    "rank",
    "rkne",
    "rhip",
    "lhip",
    "lkne",
    "lank",
    "pelv",
    "thor",
    "neck",
    "head",
    "rwri",
    "relb",
    "rsho",
    "lsho",
    "lelb",
    "lwri",
)
PCKH_GROUPS = {
    "Head": ("head",),
    "Shoulder": ("lsho", "rsho"),
    "Elbow": ("lelb", "relb"),
    "Wrist": ("lwri", "rwri"),
    "Hip": ("lhip", "rhip"),
    "Knee": ("lkne", "rkne"),
    "Ankle": ("lank", "rank"),
}
PCKH_LEFT_OUT = ("pelv", "thor")  # not part of the official mean
HEAD_SIZE_FACTOR = 0.6  # SC_BIAS of the official evaluation
MATLAB_OFFSET = 1.0  # .mat coordinates are 1-based pixels


# --------------------------------------------------------------------------- input checks


def check_finite(values: np.ndarray, names: Sequence[Any], what: str) -> None:
    """Raise naming the images whose rows of `values` [N, ...] hold NaN or inf."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        shown = [names[i] for i in np.flatnonzero(bad)[:10]]
        more = f" and {int(bad.sum()) - len(shown)} more" if bad.sum() > len(shown) else ""
        raise ValueError(
            f"{what}: NaN or inf for {int(bad.sum())} instance(s), images {shown}{more}; "
            "the model output diverged or the input is corrupt (check the checkpoint and the "
            "data); refusing to score them"
        )


# --------------------------------------------------------------------------- COCO rescoring + NMS


def rescore(keypoint_scores: np.ndarray, box_scores: np.ndarray, in_vis_thr: float = 0.2) -> np.ndarray:
    """Person scores [N] = box score x mean of the keypoint scores [N, K] above `in_vis_thr`.

    A person with no keypoint above the threshold gets 0 (the references' kpt_score stays 0).
    """
    keypoint_scores = np.asarray(keypoint_scores, dtype=np.float64)
    confident = keypoint_scores > in_vis_thr
    count = confident.sum(axis=1)
    total = np.where(confident, keypoint_scores, 0.0).sum(axis=1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return mean * np.asarray(box_scores, dtype=np.float64)


def alphapose_gt_scores(keypoint_scores: np.ndarray) -> np.ndarray:
    """AlphaPose validate_gt's person score [N]: mean + 1.25 x max of the keypoint scores [N, K]."""
    keypoint_scores = np.asarray(keypoint_scores, dtype=np.float64)
    return keypoint_scores.mean(axis=1) + 1.25 * keypoint_scores.max(axis=1)


def oks_matrix(keypoints: np.ndarray, areas: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Pairwise OKS [N, N] between poses `keypoints` [N, K, 2+] with box `areas` [N].

    As in the references' NMS: every joint counts (no visibility test) and the scale is the mean
    of the two areas.
    """
    return oks_between(keypoints, areas, keypoints, areas, sigmas)


def oks_between(
    keypoints_a: np.ndarray, areas_a: np.ndarray, keypoints_b: np.ndarray, areas_b: np.ndarray, sigmas: Sequence[float]
) -> np.ndarray:
    """OKS [N, M] of every pose of keypoints_a [N, K, 2+] with every pose of keypoints_b [M, K, 2+];
    areas_a [N], areas_b [M]; every joint counts, scale = the mean of the two areas."""
    xy_a = np.asarray(keypoints_a, dtype=np.float64)[..., :2]
    xy_b = np.asarray(keypoints_b, dtype=np.float64)[..., :2]
    areas_a = np.asarray(areas_a, dtype=np.float64)
    areas_b = np.asarray(areas_b, dtype=np.float64)
    squared = ((xy_a[:, None] - xy_b[None, :]) ** 2).sum(axis=-1)  # [N, M, K]
    mean_area = (areas_a[:, None] + areas_b[None, :]) / 2.0 + np.spacing(1)
    return _similarity(squared, mean_area[..., None], sigmas).mean(axis=-1)


def oks_to_person(
    poses: np.ndarray, joints: np.ndarray, visible: np.ndarray, area: float, sigmas: Sequence[float]
) -> np.ndarray:
    """OKS [M] of poses [M, K, 2+] against one labelled person, as COCOeval scores a match:
    joints [K, 2], visible [K] (only labelled joints count), area = the annotation's area."""
    xy = np.asarray(poses, dtype=np.float64)[..., :2]
    labelled = np.asarray(visible).reshape(-1) > 0
    squared = ((xy - np.asarray(joints, dtype=np.float64)[None]) ** 2).sum(axis=-1)  # [M, K]
    similarity = _similarity(squared, float(area) + np.spacing(1), sigmas) * labelled
    return similarity.sum(axis=1) / max(int(labelled.sum()), 1)


def _similarity(squared: np.ndarray, area: Any, sigmas: Sequence[float]) -> np.ndarray:
    """exp(-d^2 / (2 s^2 k^2)) per joint: COCO's keypoint similarity with s^2 = area, k = 2 sigma."""
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    return np.exp(-squared / variances / area / 2.0)


def oks_nms(
    keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thr: float, sigmas: Sequence[float]
) -> np.ndarray:
    """Greedy OKS-NMS over one image's poses: indices kept, best score first.

    keypoints [N, K, 2+], scores [N], areas [N]. A pose is dropped when its OKS with an already
    kept, better-scored pose exceeds `thr`. Ties keep the later index first (reversed argsort).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.int64)
    overlap = oks_matrix(keypoints, areas, sigmas)
    order = np.argsort(scores, kind="stable")[::-1]
    suppressed = np.zeros(len(scores), dtype=bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i] > thr
    return np.asarray(keep, dtype=np.int64)


def oks_nms_per_image(
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    thr: float,
    sigmas: Sequence[float],
) -> np.ndarray:
    """OKS-NMS within each image: sorted indices [M] into the N poses that survive."""
    image_ids = np.asarray(image_ids)
    keep = []
    for image_id in np.unique(image_ids):
        members = np.flatnonzero(image_ids == image_id)
        kept = oks_nms(keypoints[members], scores[members], areas[members], thr, sigmas)
        keep.append(members[kept])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def coco_results(
    image_ids: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, category_id: int = COCO_CATEGORY_ID
) -> list[dict]:
    """COCO keypoint results: one dict per pose (image_id, category_id, keypoints [3K], score).

    keypoints [N, K, 3] as (x, y, score) in original-image pixels; scores [N] person scores.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    check_finite(keypoints, [int(i) for i in image_ids], "keypoints")
    check_finite(np.asarray(scores, dtype=np.float64), [int(i) for i in image_ids], "person scores")
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [float(v) for v in pose.reshape(-1)],
            "score": float(score),
        }
        for image_id, pose, score in zip(image_ids, keypoints, scores)
    ]


# --------------------------------------------------------------------------- COCO AP


@dataclass
class CocoKeypointEval:
    """What one COCOeval run gives: the 10 summary stats, AP per OKS threshold, the printed table
    and per-joint keypoint similarity of the persons matched at OKS 0.5 (`coco_per_joint`)."""

    stats: dict[str, float]
    ap_per_oks: dict[float, float] = field(default_factory=dict)
    summary: str = ""
    per_joint: list[dict] = field(default_factory=list)


def load_coco(gt_json_path: str | os.PathLike | Any) -> Any:
    """A pycocotools COCO for a ground-truth json path (a COCO object is passed through)."""
    if isinstance(gt_json_path, COCO):
        return gt_json_path
    if not os.path.isfile(gt_json_path):
        raise FileNotFoundError(
            f"COCO ground truth {gt_json_path} does not exist; set data.root "
            "to a folder with annotations/person_keypoints_val2017.json"
        )
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(gt_json_path))


def coco_keypoint_eval(
    gt_json_path: str | os.PathLike | Any,
    results: list[dict] | str | os.PathLike,
    sigmas: Sequence[float] | None = None,
) -> CocoKeypointEval:
    """Run COCOeval (iouType 'keypoints') on `results` (a list of dicts or a results json path).

    `sigmas` [K]: OKS sigma per joint, COCOeval's `kpt_oks_sigmas` (None = its COCO-17 values).
    Stats are fractions exactly as COCOeval computes them (-1 where an area range has no ground
    truth). An empty result list scores 0 with a warning (pycocotools itself raises on it).
    """
    results = load_results(results)
    coco_gt = load_coco(gt_json_path)
    if not results:
        warnings.warn("no keypoint results to score (empty list): AP and AR are 0", stacklevel=2)
        return CocoKeypointEval(stats={name: 0.0 for name in COCO_STAT_NAMES}, ap_per_oks={}, summary="")
    _check_results(results, coco_gt, sigmas)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes adds fields to the dicts
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    log.debug("pycocotools output:\n%s", buffer.getvalue())
    summary = "\n".join(line for line in buffer.getvalue().splitlines() if "Average" in line)
    stats = {name: float(value) for name, value in zip(COCO_STAT_NAMES, coco_eval.stats)}
    return CocoKeypointEval(
        stats=stats, ap_per_oks=_ap_per_oks(coco_eval), summary=summary, per_joint=coco_per_joint(coco_eval)
    )


def coco_from_dict(content: dict) -> Any:
    """A pycocotools COCO over an in-memory ground-truth dict (e.g. a whole-body file converted
    to flat keypoints); the dict is copied (COCOeval marks its annotations)."""
    coco = COCO()
    coco.dataset = copy.deepcopy(content)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def part_ground_truth(content: dict, joints: Sequence[int]) -> dict:
    """A COCO keypoints dict whose people keep only `joints` (0-based, in that order) of their
    flat `keypoints` [3K], `num_keypoints` recounted over them (COCOeval ignores a person with none
    labelled). Annotations without keypoints are kept as they are."""
    out = {key: value for key, value in content.items() if key != "annotations"}
    out["annotations"] = []
    for ann in content.get("annotations", []):
        if ann.get("keypoints"):
            triples = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[list(joints)]
            ann = {**ann, "keypoints": triples.reshape(-1).tolist(), "num_keypoints": int((triples[:, 2] > 0).sum())}
        out["annotations"].append(ann)
    return out


def coco_part_eval(
    gt_content: dict, results: list[dict], parts: dict[str, Sequence[int]], sigmas: Sequence[float]
) -> dict[str, CocoKeypointEval]:
    """COCO-WholeBody's protocol (xtcocotools' per-part evaluation): for each named part, COCOeval
    on that part's joints of the ground truth (`gt_content`, flat keypoints [3K] per person) and of
    `results` (flat [3K] each), with that part's `sigmas`, the persons' own scores and the
    annotations' areas. {part: CocoKeypointEval}; a part listing every joint is the whole body."""
    sigmas = np.asarray(sigmas, dtype=np.float64)
    out = {}
    for name, joints in parts.items():
        joints = list(joints)
        gt = coco_from_dict(part_ground_truth(gt_content, joints))
        cut = [
            {**r, "keypoints": np.asarray(r["keypoints"], dtype=np.float64).reshape(-1, 3)[joints].reshape(-1).tolist()}
            for r in results
        ]
        out[name] = coco_keypoint_eval(gt, cut, sigmas[joints])
    return out


def coco_keypoint_ap(
    gt_json_path: str | os.PathLike | Any,
    results: list[dict] | str | os.PathLike,
    sigmas: Sequence[float] | None = None,
) -> dict[str, float]:
    """AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl (fractions) of `results` vs the gt json."""
    return coco_keypoint_eval(gt_json_path, results, sigmas).stats


def _ap_per_oks(coco_eval: Any) -> dict[float, float]:
    """AP at each OKS threshold: COCOeval's precision [T, R, K, A, M], all areas, maxDets 20."""
    precision = coco_eval.eval["precision"]
    area = coco_eval.params.areaRngLbl.index("all")
    out = {}
    for t, thr in enumerate(coco_eval.params.iouThrs):
        values = precision[t, :, :, area, -1]
        valid = values[values > -1]
        out[round(float(thr), 2)] = float(valid.mean()) if valid.size else -1.0
    return out


def coco_per_joint(coco_eval: Any, oks_thr: float = 0.5) -> list[dict]:
    """Per joint: how many matched ground-truth joints are labelled, their mean keypoint
    similarity (OKS's per-joint term) and the fraction with similarity >= 0.5.

    Pairs are COCOeval's own matches at `oks_thr` over all areas, so this breaks the AP down by
    joint without a second matching. `coco_eval` must have run evaluate().
    """
    params = coco_eval.params
    t = int(np.argmin(np.abs(np.asarray(params.iouThrs) - oks_thr)))
    all_areas = params.areaRng[params.areaRngLbl.index("all")]
    variances = (2.0 * np.asarray(params.kpt_oks_sigmas, dtype=np.float64)) ** 2
    similarity, labelled = [], []
    for entry in coco_eval.evalImgs:
        if entry is None or list(entry["aRng"]) != list(all_areas):
            continue
        for d, dt_id in enumerate(entry["dtIds"]):
            gt_id = int(entry["dtMatches"][t, d])
            if gt_id == 0 or entry["dtIgnore"][t, d]:
                continue
            gt = coco_eval.cocoGt.anns[gt_id]
            g = np.asarray(gt["keypoints"], dtype=np.float64).reshape(-1, 3)
            p = np.asarray(coco_eval.cocoDt.anns[dt_id]["keypoints"], dtype=np.float64).reshape(-1, 3)
            squared = ((p[:, :2] - g[:, :2]) ** 2).sum(axis=1)
            similarity.append(np.exp(-squared / variances / (gt["area"] + np.spacing(1)) / 2))
            labelled.append(g[:, 2] > 0)
    num_joints = len(variances)
    ks = np.asarray(similarity).reshape(-1, num_joints)
    mask = np.asarray(labelled, dtype=bool).reshape(-1, num_joints)
    rows = []
    for j in range(num_joints):
        values = ks[mask[:, j], j]
        rows.append(
            {
                "joint": j,
                "labelled": int(values.size),
                "mean_similarity": float(values.mean()) if values.size else float("nan"),
                "similarity_ge_0.5": float((values >= 0.5).mean()) if values.size else float("nan"),
            }
        )
    return rows


def _check_results(results: list[dict], coco_gt: Any, sigmas: Sequence[float] | None) -> None:
    missing = [key for key in ("image_id", "category_id", "keypoints", "score") if key not in results[0]]
    if missing:
        raise ValueError(
            f"keypoint results lack {missing}; each needs image_id, category_id, keypoints [x, y, score] x K and score"
        )
    image_ids = [r["image_id"] for r in results]
    num_joints = 17 if sigmas is None else len(sigmas)  # COCOeval's own sigmas are COCO's 17
    lengths = sorted({len(r["keypoints"]) for r in results} - {3 * num_joints})
    if lengths:
        raise ValueError(
            f"keypoint results carry {lengths[0] // 3} joints but the OKS sigmas cover "
            f"{num_joints}; score them with one sigma per joint of their keypoint set"
        )
    check_finite(np.array([r["keypoints"] for r in results], dtype=np.float64), image_ids, "keypoint results")
    check_finite(np.array([[r["score"]] for r in results], dtype=np.float64), image_ids, "keypoint result scores")
    unknown = sorted(set(image_ids) - set(coco_gt.getImgIds()))
    if unknown:
        raise ValueError(
            f"keypoint results name images {unknown[:10]} that are not in the ground "
            "truth json; evaluate against the annotation file of the same split"
        )


# --------------------------------------------------------------------------- MPII PCKh


@dataclass
class MpiiGroundTruth:
    """The official mpii_gt_val.mat: joint names, missing [16, N], positions [16, 2, N] (1-based),
    head boxes [2, 2, N] (corner, xy, instance)."""

    joint_names: tuple[str, ...]
    jnt_missing: np.ndarray
    pos_gt_src: np.ndarray
    headboxes_src: np.ndarray

    @property
    def num_instances(self) -> int:
        return self.pos_gt_src.shape[2]


def load_mpii_gt(gt_mat: str | os.PathLike | MpiiGroundTruth) -> MpiiGroundTruth:
    """Read the official layout (dataset_joints, jnt_missing, pos_gt_src, headboxes_src)."""
    if isinstance(gt_mat, MpiiGroundTruth):
        return gt_mat
    if not os.path.isfile(gt_mat):
        raise FileNotFoundError(
            f"MPII ground truth {gt_mat} does not exist; PCKh needs "
            "annotations/mpii_gt_val.mat (the official head boxes)"
        )
    raw = loadmat(str(gt_mat))
    missing_keys = [k for k in ("dataset_joints", "jnt_missing", "pos_gt_src", "headboxes_src") if k not in raw]
    if missing_keys:
        raise ValueError(f"{gt_mat}: missing {missing_keys}; expected the official mpii_gt_val.mat")
    names = tuple(str(np.asarray(name).reshape(-1)[0]) for name in raw["dataset_joints"].reshape(-1))
    gt = MpiiGroundTruth(
        joint_names=names,
        jnt_missing=np.asarray(raw["jnt_missing"]).astype(bool),
        pos_gt_src=np.asarray(raw["pos_gt_src"], dtype=np.float64),
        headboxes_src=np.asarray(raw["headboxes_src"], dtype=np.float64),
    )
    unknown = set(MPII_MAT_JOINTS) - set(names)
    if unknown:
        raise ValueError(f"{gt_mat}: dataset_joints lacks {sorted(unknown)}; got {names}")
    return gt


def save_mpii_gt(path: str | os.PathLike, joints: np.ndarray, visible: np.ndarray, headboxes: np.ndarray) -> None:
    """Write a .mat in the official layout, e.g. for data that ships no mpii_gt_val.mat.

    joints [N, 16, 2] 1-based (MATLAB) pixels, visible [N, 16], headboxes [N, 2, 2]
    ((x1, y1), (x2, y2)) 1-based pixels. Joint order is MPII's (MPII_MAT_JOINTS).
    """
    names = np.empty((1, len(MPII_MAT_JOINTS)), dtype=object)
    names[0, :] = list(MPII_MAT_JOINTS)
    mdict = {
        "dataset_joints": names,
        "jnt_missing": (1 - np.asarray(visible, dtype=np.float64)).T,  # [16, N]
        "pos_gt_src": np.transpose(np.asarray(joints, dtype=np.float64), (1, 2, 0)),  # [16, 2, N]
        "headboxes_src": np.transpose(np.asarray(headboxes, dtype=np.float64), (1, 2, 0)),
    }
    atomic_write(path, lambda f: savemat(f, mdict))


def pckh_errors(
    preds: np.ndarray, gt_mat: str | os.PathLike | MpiiGroundTruth
) -> tuple[np.ndarray, np.ndarray, MpiiGroundTruth]:
    """Head-normalized errors [N, 16] and the visible mask [N, 16] of `preds` [N, 16, 2|3].

    `preds` are 0-based pixels in the .mat's instance order; they move to its 1-based frame here.
    """
    gt = load_mpii_gt(gt_mat)
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[1:2] != (16,) or preds.shape[2] not in (2, 3):
        raise ValueError(f"MPII predictions must be N x 16 x 2 or N x 16 x 3, got {preds.shape}")
    if len(preds) != gt.num_instances:
        raise ValueError(
            f"{len(preds)} MPII predictions for {gt.num_instances} ground-truth "
            "instances in the .mat; predictions must follow its order, one per person"
        )
    check_finite(preds[..., :2], list(range(len(preds))), "MPII predictions (instance index)")
    pred_src = np.transpose(preds[..., :2] + MATLAB_OFFSET, (1, 2, 0))  # [16, 2, N]
    distance = np.linalg.norm(pred_src - gt.pos_gt_src, axis=1)  # [16, N]
    head_size = HEAD_SIZE_FACTOR * np.linalg.norm(gt.headboxes_src[1] - gt.headboxes_src[0], axis=0)
    visible = ~gt.jnt_missing
    with np.errstate(divide="ignore", invalid="ignore"):
        errors = distance / head_size[None, :]
    return errors.T, visible.T, gt


def pckh_per_joint(
    preds: np.ndarray, gt_mat: str | os.PathLike | MpiiGroundTruth, thr: float = 0.5
) -> dict[str, float]:
    """PCKh@thr in percent for each of the 16 joints, keyed by the .mat's joint names.

    NaN for a joint with no visible instance.
    """
    errors, visible, gt = pckh_errors(preds, gt_mat)
    hits, counts = _hits_and_counts(errors, visible, thr)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = 100.0 * hits / counts
    return {name: float(v) for name, v in zip(gt.joint_names, values)}


def pckh(preds: np.ndarray, gt_mat: str | os.PathLike | MpiiGroundTruth, thr: float = 0.5) -> dict[str, float]:
    """Official PCKh (percent): Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle at `thr`, the
    count-weighted mean without pelvis and thorax at `thr` (key "PCKh") and at 0.1 ("PCKh@0.1").

    preds [N, 16, 2|3] in 0-based pixels, in the .mat's order.
    """
    errors, visible, gt = pckh_errors(preds, gt_mat)
    names = list(gt.joint_names)
    hits, counts = _hits_and_counts(errors, visible, thr)
    out = {}
    for group, members in PCKH_GROUPS.items():
        idx = [names.index(m) for m in members]
        out[group] = _percent(hits[idx], counts[idx], per_joint_mean=True)
    in_mean = [i for i, name in enumerate(names) if name not in PCKH_LEFT_OUT]
    out["PCKh"] = _percent(hits[in_mean], counts[in_mean])
    hits_01, _ = _hits_and_counts(errors, visible, 0.1)
    out["PCKh@0.1"] = _percent(hits_01[in_mean], counts[in_mean])
    return out


def pckh_curve(
    preds: np.ndarray, gt_mat: str | os.PathLike | MpiiGroundTruth, thresholds: Sequence[float] | None = None
) -> dict[str, Any]:
    """PCKh vs threshold: {"thresholds" [T], "mean" [T] (official mean), "per_joint" [T, 16]}.

    Default thresholds 0, 0.01, ..., 0.5 as in the official plots.
    """
    errors, visible, gt = pckh_errors(preds, gt_mat)
    thresholds = np.round(np.arange(0, 0.5 + 1e-9, 0.01), 2) if thresholds is None else np.asarray(thresholds)
    in_mean = [i for i, name in enumerate(gt.joint_names) if name not in PCKH_LEFT_OUT]
    mean, per_joint = [], []
    for thr in thresholds:
        hits, counts = _hits_and_counts(errors, visible, float(thr))
        mean.append(_percent(hits[in_mean], counts[in_mean]))
        with np.errstate(divide="ignore", invalid="ignore"):
            per_joint.append(100.0 * hits / counts)
    return {
        "thresholds": np.asarray(thresholds, dtype=np.float64),
        "mean": np.asarray(mean),
        "per_joint": np.asarray(per_joint),
        "joint_names": list(gt.joint_names),
    }


def curve_auc(thresholds: Sequence[float], values: Sequence[float]) -> float:
    """The area under a PCKh curve over its threshold range, normalized to that range (percent when
    the values are): the MPII toolkit's AUC, a trapezoid over thresholds 0 .. 0.5."""
    thresholds, values = np.asarray(thresholds, dtype=np.float64), np.asarray(values, dtype=np.float64)
    span = thresholds[-1] - thresholds[0]
    areas = (values[1:] + values[:-1]) * np.diff(thresholds) / 2
    return float(areas.sum() / span) if span > 0 else float(values[0])


def _hits_and_counts(errors: np.ndarray, visible: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """Per joint [16]: visible instances within thr x head size, and visible instances."""
    within = np.where(visible, errors, np.inf) <= thr
    return within.sum(axis=0).astype(np.float64), visible.sum(axis=0).astype(np.float64)


def _percent(hits: np.ndarray, counts: np.ndarray, per_joint_mean: bool = False) -> float:
    """Count-weighted percent over joints, or the plain mean of per-joint percents (left/right
    groups, as the official table averages the two sides). NaN when nothing is visible."""
    if per_joint_mean:
        present = counts > 0
        return float(np.mean(100.0 * hits[present] / counts[present])) if present.any() else float("nan")
    total = counts.sum()
    return float(100.0 * hits.sum() / total) if total > 0 else float("nan")
