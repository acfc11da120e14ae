"""Whole-body evaluation: COCO-WholeBody's per-part protocol and Halpe's own sigmas, checked
against pycocotools run independently on each part's files (built from the real COCO samples)."""

import json

import numpy as np
import pytest
from helpers import pycocotools_stats
from wholebody_files import make_halpe, make_wholebody

from posecore import evaluation, experiments, viz, workbook
from posecore.files import read_json
from posecore.keypoints import keypoint_info
from posecore.params import load_params

PART_KEYS = {
    "body": "keypoints",
    "foot": "foot_kpts",
    "face": "face_kpts",
    "lefthand": "lefthand_kpts",
    "righthand": "righthand_kpts",
}


def set_params(name, root, **overrides):
    return load_params(
        "fastpose",
        {
            "data.dataset": name,
            "model.num_joints": keypoint_info(name).num_joints,
            "data.root": str(root),
            "data.workers": 0,
            "eval.oracle": True,
            **overrides,
        },
    )


def part_stats(gt: dict, results: list[dict], sigmas, folder, name):
    """pycocotools on `gt` and `results` written as files of their own."""
    gt_path, results_path = folder / f"{name}_gt.json", folder / f"{name}_results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return pycocotools_stats(gt_path, results_path, sigmas)


def test_coco_wholebody_oracle_per_part_aps_equal_pycocotools_per_part(coco_root, tmp_path, outputs):
    root = make_wholebody(coco_root, tmp_path / "coco")
    params = set_params("coco_wholebody", root)
    metrics = evaluation.evaluate(params, None, run_name="wb-oracle")
    eval_dir = outputs / "wb-oracle" / "eval"
    assert read_json(outputs / "wb-oracle" / "metrics.json")["face_AP"] == metrics["face_AP"]
    assert metrics["AP"] == metrics["wholebody_AP"] and metrics["AR"] == metrics["wholebody_AR"]
    assert len(json.loads((eval_dir / "results.json").read_text())[0]["keypoints"]) == 3 * 133
    # pycocotools on each part's own files: the official part arrays as `keypoints`, that part's sigmas
    gt = json.loads((root / "annotations" / "coco_wholebody_val_v1.0.json").read_text())
    results = json.loads((eval_dir / "results_wholebody.json").read_text())
    sigmas = np.asarray(keypoint_info("coco_wholebody").sigmas)
    info = keypoint_info("coco_wholebody")
    for part, key in PART_KEYS.items():
        part_gt = {
            **gt,
            "annotations": [
                {**a, "keypoints": a[key], "num_keypoints": int((np.asarray(a[key])[2::3] > 0).sum())}
                for a in gt["annotations"]
            ],
        }
        part_results = [
            {"image_id": r["image_id"], "category_id": 1, "keypoints": r[key], "score": r["score"]} for r in results
        ]
        stats = part_stats(part_gt, part_results, sigmas[info.part_joints(part)], tmp_path, part)
        assert metrics[f"{part}_AP"] == pytest.approx(stats[0], abs=1e-12), part
        assert metrics[f"{part}_AR"] == pytest.approx(stats[5], abs=1e-12), part
    whole = [np.concatenate([a[key] for key in PART_KEYS.values()]) for a in gt["annotations"]]
    whole_gt = {
        **gt,
        "annotations": [
            {**a, "keypoints": w.tolist(), "num_keypoints": int((w[2::3] > 0).sum())}
            for a, w in zip(gt["annotations"], whole)
        ],
    }
    whole_results = [
        {
            "image_id": r["image_id"],
            "category_id": 1,
            "score": r["score"],
            "keypoints": sum((r[key] for key in PART_KEYS.values()), []),
        }
        for r in results
    ]
    stats = part_stats(whole_gt, whole_results, sigmas, tmp_path, "wholebody")
    assert metrics["wholebody_AP"] == pytest.approx(stats[0], abs=1e-12)
    # the parts score differently (the small face and hand sigmas are harsher than the body's)
    assert len({round(metrics[f"{part}_AP"], 6) for part in PART_KEYS}) > 1
    assert 0 < metrics["body_AP"] <= 1 and "gt_face_AP" in metrics
    # the report's results table and compare carry the parts
    table = workbook.results_table("wb-oracle", params)
    rows = [dict(zip(table.columns, row)) for row in table.rows]
    assert [row["metric"] for row in rows][:7] == [
        "AP",
        "body AP",
        "foot AP",
        "face AP",
        "lefthand AP",
        "righthand AP",
        "wholebody AP",
    ]
    assert rows[3]["value"] == pytest.approx(100 * metrics["face_AP"])
    compared = experiments.compare_runs("wb-oracle", metric="face_AP").runs[0]
    assert compared["eval"] == metrics["face_AP"] and "face joints" in compared["protocol"]
    per_joint = (eval_dir / "per_joint.csv").read_text().splitlines()
    assert len(per_joint) == 1 + 133 and per_joint[-1].startswith("right_pinky_finger4,")
    # the browser scores each person over its 133 joints and filters the drawing by part
    browser = workbook.PoseBrowser(params, "wb-oracle")
    assert [label for label, _ in browser.part_choices()] == [
        "all joints",
        "body",
        "foot",
        "face",
        "lefthand",
        "righthand",
        "both hands",
    ]
    assert np.isfinite(browser.errors["score"]).all() and browser.errors["pred"].shape[1:] == (133, 3)

    def limbs(figure, gid):
        return sum(len(c.get_segments()) for c in figure.axes[0].collections if c.get_gid() == gid)

    rank = next(r for r in range(1, len(browser) + 1) if limbs(browser.figure(r, others=False), viz.FINE_GID))
    everything = browser.figure(rank, others=False)
    hands = browser.figure(rank, others=False, parts=("lefthand", "righthand"))
    assert limbs(everything, viz.SKELETON_GID) > 0 and limbs(hands, viz.SKELETON_GID) == 0
    assert limbs(hands, viz.FINE_GID) == limbs(everything, viz.FINE_GID) > 0


def test_halpe26_is_scored_with_its_own_sigmas_on_its_26_joints(coco_root, tmp_path, outputs):
    root = make_halpe(coco_root, tmp_path / "halpe")
    coarse = {"data.input_size": [48, 64], "data.heatmap_size": [12, 16]}  # an oracle short of perfect
    metrics = evaluation.evaluate(set_params("halpe26", root, **coarse), None, run_name="halpe-oracle")
    assert "body_AP" not in metrics  # Halpe: one AP over the set's joints
    results = json.loads((outputs / "halpe-oracle" / "eval" / "results.json").read_text())
    gt = json.loads((root / "annotations" / "halpe_val_v1.json").read_text())
    gt26 = {
        **gt,
        "annotations": [
            {
                **a,
                "keypoints": a["keypoints"][:78],
                "num_keypoints": int((np.asarray(a["keypoints"][:78])[2::3] > 0).sum()),
            }
            for a in gt["annotations"]
        ],
    }
    stats = part_stats(gt26, results, keypoint_info("halpe26").sigmas, tmp_path, "halpe26")
    assert metrics["AP"] == pytest.approx(stats[0], abs=1e-12) and metrics["AR"] == pytest.approx(stats[5], abs=1e-12)
    assert 0 < metrics["AP"] < 1
    other = part_stats(gt26, results, keypoint_info("halpe136").sigmas[:26], tmp_path, "other")
    assert metrics["AP"] != pytest.approx(other[0], abs=1e-6)  # Halpe-136's head/neck/hip/feet sigmas differ
