"""posecore.error_analysis: coco-analyze's own numbers on planted errors (pinned), perfect
predictions, a custom keypoint set's flip pairs, the whole-body body part, and one small case per
rule (each joint label, ties, corrections, optimal scores, background errors, the top 20)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from posecore.error_analysis import ERROR_TYPES, STAGES, analyze_coco
from posecore.error_analysis import coco as ea
from posecore.keypoints import COCO, COCO_WHOLEBODY, KeypointInfo
from posecore.runs import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from coco_analyze_parity import planted_results  # noqa: E402  (the planted file the benchmark checks)

# A standing person in a unit box (COCO's 17 joints), scaled into each person's box.
TEMPLATE = np.array(
    [
        [0.5, 0.08],
        [0.55, 0.06],
        [0.45, 0.06],
        [0.6, 0.08],
        [0.4, 0.08],
        [0.7, 0.25],
        [0.3, 0.25],
        [0.78, 0.4],
        [0.22, 0.4],
        [0.8, 0.55],
        [0.2, 0.55],
        [0.62, 0.55],
        [0.38, 0.55],
        [0.62, 0.75],
        [0.38, 0.75],
        [0.62, 0.95],
        [0.38, 0.95],
    ]
)
LEFT_WRIST, RIGHT_WRIST, LEFT_HIP = 9, 10, 11


def person(
    ann_id: int,
    image_id: int,
    x: float,
    y: float,
    w: float = 100,
    h: float = 200,
    template: np.ndarray = TEMPLATE,
    unlabelled: tuple = (),
) -> dict:
    xy = template * [w, h] + [x, y]
    v = np.full(len(template), 2.0)
    v[list(unlabelled)] = 0
    xy[v == 0] = 0
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": [x, y, w, h],
        "area": w * h / 2,
        "num_keypoints": int((v > 0).sum()),
        "keypoints": np.concatenate([xy, v[:, None]], axis=1).ravel().tolist(),
    }


def ground_truth(people: list[dict], joint_names=COCO.joint_names) -> dict:
    images = sorted({p["image_id"] for p in people})
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in images],
        "annotations": people,
        "categories": [{"id": 1, "name": "person", "keypoints": list(joint_names), "skeleton": []}],
    }


def result(image_id: int, xy: np.ndarray, score: float = 0.9) -> dict:
    xy = np.asarray(xy, dtype=np.float64)
    return {
        "image_id": image_id,
        "category_id": 1,
        "score": score,
        "keypoints": np.concatenate([xy, np.ones((len(xy), 1))], axis=1).ravel().tolist(),
    }


def joints_of(ann: dict) -> np.ndarray:
    return np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2].copy()


def at_similarity(point: np.ndarray, ks: float, sigma: float, area: float) -> np.ndarray:
    """A point whose keypoint similarity to `point` is ks (OKS's per-joint term), below it (further
    from the mirror joint than from the joint itself, so never an inversion)."""
    return point + [0.0, np.sqrt(-8 * sigma**2 * area * np.log(ks))]


def codes(analysis: dict) -> list[str]:
    return [d["joints"] for d in sorted(analysis["detections"], key=lambda d: d["result"])]


# --------------------------------------------------------------------------- coco-analyze's numbers

# Produced by coco-analyze itself on the benchmark's planted file (seed 0):
#   PYTHONPATH=$PWD .venv/bin/python benchmarks/coco_analyze_parity.py --keep /tmp/ea/planted
#   /work/scratch/cocoanalyze/bin/python /work/scratch/cocoanalyze/run_reference.py \
#       ../shared/samples/coco/annotations/person_keypoints_{val,train}2017.json \
#       /tmp/ea/planted/planted_{val,train}_seed0.json
# (errors, ap: AP, AP50, AP75 per stage; background counts). posecore gave the same numbers exactly.
COCO_ANALYZE = {
    "val": {
        "errors": {"good": 95, "jitter": 30, "inversion": 14, "swap": 12, "miss": 15},
        "ap": {
            "baseline": (0.32976716, 0.818529, 0.14200849),
            "miss": (0.43121641, 0.818529, 0.32347949),
            "swap": (0.58408579, 0.818529, 0.818529),
            "inversion": (0.67470134, 0.818529, 0.818529),
            "jitter": (0.75752318, 0.818529, 0.818529),
            "score": (0.85346535, 0.91089109, 0.91089109),
            "background_fp": (0.85346535, 0.91089109, 0.91089109),
            "false_neg": (1.0, 1.0, 1.0),
        },
        "false_positives": (5, 1),
        "false_negatives": (3, {"0": 2, "15": 1}),
    },
    "train": {
        "errors": {"good": 333, "jitter": 162, "inversion": 85, "swap": 63, "miss": 80},
        "ap": {
            "baseline": (0.15980067, 0.41545729, 0.09286122),
            "miss": (0.23384606, 0.50820325, 0.16964339),
            "swap": (0.35025865, 0.56659517, 0.41633437),
            "inversion": (0.43639958, 0.6016684, 0.50811447),
            "jitter": (0.55572697, 0.6016684, 0.6016684),
            "score": (0.82215838, 0.87115685, 0.87115685),
            "background_fp": (0.82277228, 0.87128713, 0.87128713),
            "false_neg": (1.0, 1.0, 1.0),
        },
        "false_positives": (93, 16),
        "false_negatives": (
            102,
            {
                "0": 80,
                "1": 2,
                "2": 1,
                "4": 3,
                "5": 3,
                "6": 3,
                "7": 2,
                "9": 2,
                "10": 1,
                "13": 1,
                "15": 1,
                "16": 2,
                "17": 1,
            },
        ),
    },
}


@pytest.mark.parametrize("split", ["val", "train"])
def test_planted_errors_give_coco_analyzes_numbers(coco_root, tmp_path, split):
    gt_file = coco_root / "annotations" / f"person_keypoints_{split}2017.json"
    results_file = tmp_path / "planted.json"
    results_file.write_text(json.dumps(planted_results(json.loads(gt_file.read_text()), seed=0)))
    analysis = analyze_coco(gt_file, results_file)
    expected = COCO_ANALYZE[split]
    assert analysis["errors"] == expected["errors"]
    for stage in STAGES:
        got = analysis["ap"][stage]
        assert (got["AP"], got["AP50"], got["AP75"]) == pytest.approx(expected["ap"][stage], abs=1e-7), stage
    background = analysis["background"]
    assert (background["false_positives"]["count"], background["false_positives"]["high_score"]["count"]) == expected[
        "false_positives"
    ]
    assert (background["false_negatives"]["count"], background["false_negatives"]["by_keypoints"]) == expected[
        "false_negatives"
    ]
    assert sum(sum(joint.values()) for joint in analysis["errors_per_joint"].values()) == sum(
        expected["errors"].values()
    )
    json.dumps(analysis)  # what a run writes as eval/analysis.json


def test_perfect_predictions_of_the_val_people_leave_nothing_to_fix(coco_root):
    gt = json.loads((coco_root / "annotations" / "person_keypoints_val2017.json").read_text())
    results = [result(a["image_id"], joints_of(a), 1.0) for a in gt["annotations"] if a["num_keypoints"]]
    analysis = analyze_coco(gt, results)
    assert all(analysis["ap"][stage] == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0} for stage in STAGES)
    labelled = sum(a["num_keypoints"] for a in gt["annotations"])
    assert analysis["errors"] == {"good": labelled, "jitter": 0, "inversion": 0, "swap": 0, "miss": 0}
    assert analysis["background"]["false_positives"]["count"] == 0
    assert analysis["background"]["false_negatives"]["labelled"] == 0


# --------------------------------------------------------------------------- synthetic cases


def test_perfect_predictions_without_the_samples():
    people = [person(1, 1, 50, 50), person(2, 1, 300, 40, unlabelled=(3, 4)), person(3, 2, 100, 100, 160, 300)]
    analysis = analyze_coco(ground_truth(people), [result(p["image_id"], joints_of(p)) for p in people])
    assert {stage: analysis["ap"][stage]["AP"] for stage in STAGES} == dict.fromkeys(STAGES, 1.0)
    assert analysis["errors"] == {"good": 49, "jitter": 0, "inversion": 0, "swap": 0, "miss": 0}
    assert codes(analysis)[1][3:5] == ".."  # joints the person has no label for


def test_each_joint_label():
    """Person 1's detection: left wrist jittered, right wrist missed, left hip at person 2's left
    hip (swap), left and right knees exchanged (inversions), the rest good."""
    a, b = person(1, 1, 50, 50), person(2, 1, 220, 60)
    points = joints_of(a)
    sigmas, area = np.asarray(COCO.sigmas), a["area"]
    points[LEFT_WRIST] = at_similarity(points[LEFT_WRIST], 0.7, sigmas[LEFT_WRIST], area)
    points[RIGHT_WRIST] = at_similarity(points[RIGHT_WRIST], 0.2, sigmas[RIGHT_WRIST], area) - [40, 0]
    points[LEFT_HIP] = joints_of(b)[LEFT_HIP]
    points[[13, 14]] = joints_of(a)[[14, 13]]
    analysis = analyze_coco(ground_truth([a, b]), [result(1, points), result(1, joints_of(b), 0.8)])
    assert codes(analysis) == ["gggggggggjmsgiigg", "g" * 17]
    assert analysis["errors"] == {"good": 29, "jitter": 1, "inversion": 2, "swap": 1, "miss": 1}
    assert analysis["errors_per_joint"]["left_knee"]["inversion"] == 1
    assert analysis["detections"][0]["gt_id"] == 1


def test_a_swap_onto_another_person_mirrored():
    """A joint on the mirror joint of another person is a swap too (not an inversion)."""
    a, b = person(1, 1, 50, 50), person(2, 1, 220, 60)
    points = joints_of(a)
    points[LEFT_WRIST] = joints_of(b)[RIGHT_WRIST]
    analysis = analyze_coco(ground_truth([a, b]), [result(1, points)])
    assert codes(analysis)[0][LEFT_WRIST] == "s"


def test_ties_go_to_the_match():
    """Two people whose left wrists coincide: a detection of the first on that wrist is good there,
    not a swap; the nose is its own mirror, so it is never an inversion."""
    a = person(1, 1, 50, 50)
    b = person(2, 1, 200, 50)
    b["keypoints"][3 * LEFT_WRIST : 3 * LEFT_WRIST + 2] = a["keypoints"][3 * LEFT_WRIST : 3 * LEFT_WRIST + 2]
    b["area"] = a["area"]
    analysis = analyze_coco(ground_truth([a, b]), [result(1, joints_of(a))])
    assert codes(analysis) == ["g" * 17]


def test_corrections_are_cumulative_and_land_where_coco_analyze_puts_them():
    """Every joint jittered to ks .72: the person is matched up to OKS .7 (AP .5); only the jitter
    correction lifts it, to ks .85^(1/4) per joint (coco-analyze's sigma^2 where OKS has (2 sigma)^2)."""
    a = person(1, 1, 50, 50)
    sigmas = np.asarray(COCO.sigmas)
    points = np.stack([at_similarity(p, 0.72, s, a["area"]) for p, s in zip(joints_of(a), sigmas)])
    analysis = analyze_coco(ground_truth([a]), [result(1, points)])
    assert analysis["errors"]["jitter"] == 17
    assert [analysis["ap"][s]["AP"] for s in STAGES] == pytest.approx([0.5, 0.5, 0.5, 0.5, 1, 1, 1, 1])
    labels = np.full(17, ea.JITTER)
    target = ea._correction_targets(labels, np.full(17, 0.72), joints_of(a), a["area"], sigmas)
    ks = np.exp(-((target - joints_of(a)) ** 2).sum(1) / (2 * sigmas) ** 2 / a["area"] / 2)
    assert ks == pytest.approx(np.full(17, 0.85**0.25))


def test_optimal_scores_soft_suppress_duplicates():
    """Two identical detections of one person: the first (detection order breaks the tie) keeps
    its OKS 1, the other is scaled by exp(-1 / .5); a lower-scored good detection then outranks a
    better-scored bad one in the score stage."""
    points = np.stack([TEMPLATE * [100, 200] + [50, 50]] * 2)
    scores = ea._soft_suppressed(points, np.array([1.0, 1.0]), np.asarray(COCO.sigmas))
    assert scores == pytest.approx([1.0, np.exp(-2.0)])
    a, b = person(1, 1, 50, 50), person(2, 2, 50, 50)
    sloppy = np.stack([at_similarity(p, 0.3, s, b["area"]) for p, s in zip(joints_of(b), COCO.sigmas)])
    analysis = analyze_coco(ground_truth([a, b]), [result(1, joints_of(a), 0.2), result(2, sloppy, 0.9)])
    assert analysis["ap"]["score"]["AP"] > analysis["ap"]["jitter"]["AP"] - 1e-9
    assert analysis["detections"][0]["optimal_score"] == pytest.approx(1.0)


def test_background_false_positives_and_negatives():
    a, b, c = person(1, 1, 50, 50), person(2, 1, 300, 50, unlabelled=range(10)), person(3, 2, 50, 50)
    c["iscrowd"], c["num_keypoints"] = 1, 0
    c["keypoints"] = [0] * 51
    ghost = TEMPLATE * [60, 100] + [500, 300]
    analysis = analyze_coco(ground_truth([a, b, c]), [result(1, joints_of(a)), result(1, ghost, 0.95)])
    fp, fn = analysis["background"]["false_positives"], analysis["background"]["false_negatives"]
    assert (fp["count"], fp["results"], fp["by_people"]["small_group"]) == (1, [1], 1)
    assert fp["by_size"]["medium"] == 1  # 60 x 100 box: half of it is in 32^2 .. 64^2
    assert (fn["count"], fn["labelled"], fn["gt_ids"], fn["by_keypoints"]) == (2, 1, [2, 3], {"0": 1, "7": 1})
    assert fn["by_overlap"] == {"0": 1, "1-2": 0, "3-8": 0, "9+": 0}
    # the ghost ranks first: removing it leaves person 2 to find (recall .5), then nothing
    ap = {stage: analysis["ap"][stage]["AP"] for stage in ("baseline", "background_fp", "false_neg")}
    assert ap == pytest.approx({"baseline": 51 * 0.5 / 101, "background_fp": 51 / 101, "false_neg": 1.0})


def test_only_the_best_twenty_detections_of_an_image_count():
    a = person(1, 1, 50, 50)
    far = [result(1, TEMPLATE * [60, 100] + [400, 300], 0.5 + i / 100) for i in range(24)]
    analysis = analyze_coco(ground_truth([a]), far + [result(1, joints_of(a), 0.4)])
    assert analysis["counts"] == {"results": 25, "analysed": 20, "diagnosed": 0}
    assert analysis["background"]["false_negatives"]["count"] == 1


def test_a_custom_keypoint_set_inverts_by_its_flip_pairs():
    names = ("head", "left_paw", "right_paw", "tail")
    template = np.array([[0.5, 0.1], [0.2, 0.5], [0.8, 0.5], [0.5, 0.9]])
    info = KeypointInfo(
        dataset="custom",
        joint_names=names,
        flip_pairs=((1, 2),),
        skeleton=(),
        upper_body=(),
        sigmas=(0.05,) * 4,
        joint_weights=(1.0,) * 4,
    )
    animal = person(1, 1, 100, 100, 150, 150, template=template)
    crossed = joints_of(animal)[[0, 2, 1, 3]]
    gt, results = ground_truth([animal], names), [result(1, crossed)]
    assert codes(analyze_coco(gt, results, info)) == ["giig"]
    no_pairs = KeypointInfo(**{**info.__dict__, "flip_pairs": ()})
    assert codes(analyze_coco(gt, results, no_pairs)) == ["gmmg"]


def test_whole_body_sets_analyse_their_body_part():
    rng = np.random.default_rng(0)
    people = [person(1, 1, 50, 50), person(2, 1, 250, 60)]
    points = [joints_of(p) + rng.normal(0, 4, (17, 2)) for p in people]
    plain = analyze_coco(ground_truth(people), [result(1, xy) for xy in points])
    extra = COCO_WHOLEBODY.num_joints - 17
    wide = [{**p, "keypoints": p["keypoints"] + rng.uniform(0, 400, 3 * extra).tolist()} for p in people]
    wide_points = [np.concatenate([xy, rng.uniform(0, 400, (extra, 2))]) for xy in points]
    whole = analyze_coco(
        ground_truth(wide, COCO_WHOLEBODY.joint_names), [result(1, xy) for xy in wide_points], COCO_WHOLEBODY
    )
    assert whole["keypoint_set"] == "coco_wholebody:body" and whole["joints"] == list(COCO.joint_names)
    assert (whole["errors"], whole["ap"], codes(whole)) == (plain["errors"], plain["ap"], codes(plain))


def test_pr_curves_come_back_as_arrays():
    a = person(1, 1, 50, 50)
    recall, precision = ea.pr_curves(analyze_coco(ground_truth([a]), [result(1, joints_of(a))]))
    assert recall.shape == (101,) and list(precision) == list(STAGES)
    assert all(curve.shape == (101,) and (curve == 1.0).all() for curve in precision.values())


def test_non_finite_results_are_refused():
    a = person(1, 1, 50, 50)
    points = joints_of(a)
    points[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        analyze_coco(ground_truth([a]), [result(1, points)])


def test_every_error_type_has_a_code():
    assert [ea._CODE_OF[i] for i in range(len(ERROR_TYPES))] == ["g", "j", "i", "s", "m"]
    assert all(ea.ERROR_CODES[ea._CODE_OF[i]] == name for i, name in enumerate(ERROR_TYPES))


def test_a_whole_body_part_other_than_the_body():
    rng = np.random.default_rng(1)
    wide = person(1, 1, 50, 50)
    wide["keypoints"] += np.column_stack([rng.uniform(50, 150, (116, 2)), np.full(116, 2.0)]).ravel().tolist()
    gt = ground_truth([wide], COCO_WHOLEBODY.joint_names)
    analysis = analyze_coco(gt, [result(1, joints_of(wide))], COCO_WHOLEBODY, part="foot")
    assert analysis["keypoint_set"] == "coco_wholebody:foot" and len(analysis["joints"]) == 6
    assert analysis["errors"]["good"] == 6


def test_metrics_re_exports_it_and_it_imports_only_the_keypoint_sets():
    import ast

    from posecore import metrics

    assert metrics.analyze_coco is analyze_coco
    modules = set()
    for path in (REPO_ROOT / "posecore" / "error_analysis").glob("*.py"):
        tree = ast.parse(path.read_text())
        modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    outside = {m for m in modules if m.startswith("posecore") and not m.startswith("posecore.error_analysis")}
    assert outside == {"posecore.keypoints"}
