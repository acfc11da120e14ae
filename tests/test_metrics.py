"""posecore.metrics against pycocotools run directly, hand-computed PCKh and the references' NMS."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from scipy.io import loadmat

from posecore import metrics
from posecore.keypoints import COCO


def make_coco_gt(path, num_images=6, persons=3, seed=0):
    """A small COCO keypoints gt json with persons of varied size and visibility."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": 640, "height": 480})
        for _ in range(persons):
            w, h = rng.uniform(40, 220), rng.uniform(80, 300)
            x0, y0 = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            xy = np.stack([x0 + rng.uniform(0, w, 17), y0 + rng.uniform(0, h, 17)], axis=1)
            v = rng.choice([0, 1, 2], size=17, p=[0.15, 0.25, 0.6])
            xy[v == 0] = 0
            kps = np.concatenate([xy, v[:, None]], axis=1).reshape(-1).tolist()
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x0, y0, w, h],
                    "area": w * h * 0.6,
                    "keypoints": kps,
                    "num_keypoints": int((v > 0).sum()),
                }
            )
    gt = {
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO.joint_names), "skeleton": []}
        ],
    }
    path.write_text(json.dumps(gt))
    return path


def perturbed_results(gt_path, noise, seed=1, drop_every=0):
    """Results = gt keypoints + gaussian noise scaled by person size, random scores."""
    rng = np.random.default_rng(seed)
    gt = json.loads(gt_path.read_text())
    results = []
    for n, ann in enumerate(gt["annotations"]):
        if ann["num_keypoints"] == 0 or (drop_every and n % drop_every == 0):
            continue
        kps = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        size = np.sqrt(ann["area"])
        kps[:, :2] += rng.normal(0, noise * size, size=(17, 2))
        kps[:, 2] = rng.uniform(0.1, 1.0, 17)
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": 1,
                "keypoints": kps.reshape(-1).tolist(),
                "score": float(rng.uniform(0.3, 1)),
            }
        )
    return results


def pycocotools_direct(gt_path, results_path, sigmas=None):
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = CocoApi(str(gt_path))
        dt = gt.loadRes(str(results_path))
        ev = COCOeval(gt, dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.array(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


@pytest.mark.parametrize("noise", [0.04, 0.1])
def test_coco_ap_matches_pycocotools_on_perturbed_gt(tmp_path, noise):
    gt_path = make_coco_gt(tmp_path / "gt.json")
    results = perturbed_results(gt_path, noise, drop_every=7)
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))

    ours = metrics.coco_keypoint_eval(gt_path, results)
    direct = pycocotools_direct(gt_path, results_path)

    assert list(ours.stats) == list(metrics.COCO_STAT_NAMES)
    assert 0.05 < ours.stats["AP"] < 0.9  # far from perfect, so a wrong OKS would show
    np.testing.assert_array_equal([ours.stats[k] for k in metrics.COCO_STAT_NAMES], direct.stats)
    assert metrics.coco_keypoint_ap(gt_path, results_path) == ours.stats
    # AP over thresholds 0.5:0.95 is the mean of the per-threshold APs
    assert len(ours.ap_per_oks) == 10
    assert ours.ap_per_oks[0.5] == pytest.approx(ours.stats["AP50"])
    assert ours.ap_per_oks[0.75] == pytest.approx(ours.stats["AP75"])
    assert np.mean(list(ours.ap_per_oks.values())) == pytest.approx(ours.stats["AP"])
    assert "Average Precision" in ours.summary


def test_coco_ap_with_custom_sigmas_matches_pycocotools(tmp_path):
    """A 6-joint keypoint set in its own category: COCOeval with that set's kpt_oks_sigmas."""
    gt = json.loads(make_coco_gt(tmp_path / "coco.json").read_text())
    for ann in gt["annotations"]:
        ann["keypoints"], ann["category_id"] = ann["keypoints"][:18], 7
        ann["num_keypoints"] = sum(v > 0 for v in ann["keypoints"][2::3])
    gt["categories"] = [{"id": 7, "name": "thing", "keypoints": list("abcdef"), "skeleton": [[1, 2]]}]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(gt))
    results = [
        {**r, "keypoints": r["keypoints"][:18], "category_id": 7}
        for r in perturbed_results(make_coco_gt(tmp_path / "coco.json"), 0.06)
    ]
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    sigmas = [0.03, 0.05, 0.07, 0.09, 0.11, 0.13]

    stats = metrics.coco_keypoint_ap(gt_path, results, sigmas)
    assert 0.05 < stats["AP"] < 0.95
    np.testing.assert_array_equal(list(stats.values()), pycocotools_direct(gt_path, results_path, sigmas).stats)
    assert stats != metrics.coco_keypoint_ap(gt_path, results, [0.05] * 6)  # the sigmas are used
    with pytest.raises(ValueError, match="carry 6 joints but the OKS sigmas cover 17"):
        metrics.coco_keypoint_ap(gt_path, results)


def test_coco_ap_on_shared_val_samples(coco_root, tmp_path):
    gt_path = coco_root / "annotations" / "person_keypoints_val2017.json"
    results = perturbed_results(gt_path, 0.05)
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(results))
    stats = metrics.coco_keypoint_ap(gt_path, results)
    assert stats["AP"] < 0.95
    np.testing.assert_array_equal(list(stats.values()), pycocotools_direct(gt_path, results_path).stats)


def test_coco_ap_does_not_mutate_results(tmp_path):
    gt_path = make_coco_gt(tmp_path / "gt.json")
    results = perturbed_results(gt_path, 0.0)
    before = json.dumps(results)
    stats = metrics.coco_keypoint_ap(gt_path, results)
    assert json.dumps(results) == before
    assert stats["AP"] == pytest.approx(1.0)


def test_coco_ap_rejects_nan_naming_the_image(tmp_path):
    gt_path = make_coco_gt(tmp_path / "gt.json")
    results = perturbed_results(gt_path, 0.05)
    results[4]["keypoints"][7] = float("nan")
    with pytest.raises(ValueError, match=rf"images \[{results[4]['image_id']}\]"):
        metrics.coco_keypoint_ap(gt_path, results)
    results[4]["keypoints"][7] = 1.0
    results[2]["score"] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.coco_keypoint_ap(gt_path, results)


def test_coco_ap_empty_results_is_zero_with_warning(tmp_path):
    gt_path = make_coco_gt(tmp_path / "gt.json")
    with pytest.warns(UserWarning, match="no keypoint results"):
        stats = metrics.coco_keypoint_ap(gt_path, [])
    assert stats == {name: 0.0 for name in metrics.COCO_STAT_NAMES}


def test_coco_ap_unknown_image_is_a_clear_error(tmp_path):
    gt_path = make_coco_gt(tmp_path / "gt.json")
    results = perturbed_results(gt_path, 0.05)
    results[0]["image_id"] = 999999
    with pytest.raises(ValueError, match="999999.*not in the ground truth"):
        metrics.coco_keypoint_ap(gt_path, results)


# ----------------------------------------------------------------------------- rescoring + NMS


def test_rescore_uses_only_confident_keypoints():
    scores = np.array([[0.9, 0.5, 0.1, 0.2], [0.1, 0.1, 0.1, 0.1]])
    np.testing.assert_allclose(metrics.rescore(scores, [0.5, 1.0], in_vis_thr=0.2), [0.5 * (0.9 + 0.5) / 2, 0.0])
    np.testing.assert_allclose(metrics.alphapose_gt_scores(scores), [0.425 + 1.25 * 0.9, 0.1 + 1.25 * 0.1])


def reference_style_nms(keypoints, scores, areas, thr, sigmas):
    """One-against-the-rest loop, the way the references write it (for comparison only)."""
    variances = (2 * np.asarray(sigmas)) ** 2
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        ovr = np.zeros(len(rest))
        for n, j in enumerate(rest):
            d2 = ((keypoints[j, :, :2] - keypoints[i, :, :2]) ** 2).sum(-1)
            e = d2 / variances / ((areas[i] + areas[j]) / 2 + np.spacing(1)) / 2
            ovr[n] = np.exp(-e).mean()
        order = rest[ovr <= thr]
    return keep


def test_oks_nms_matches_greedy_reference():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 200, size=(6, 17, 2))
    # clusters of near-duplicates around 6 poses, so some are suppressed and some are not
    keypoints = np.concatenate([base + rng.normal(0, s, base.shape) for s in (0, 1, 4, 15)])
    keypoints = np.concatenate([keypoints, rng.uniform(0, 1, keypoints.shape[:2] + (1,))], axis=-1)
    scores = rng.uniform(0, 1, len(keypoints))
    areas = rng.uniform(2000, 9000, len(keypoints))
    keep = metrics.oks_nms(keypoints, scores, areas, 0.9, COCO.sigmas)
    assert 6 <= len(keep) < len(keypoints)
    assert keep.tolist() == reference_style_nms(keypoints, scores, areas, 0.9, COCO.sigmas)


def test_oks_nms_per_image_never_crosses_images():
    pose = np.zeros((1, 17, 3))
    keypoints = np.concatenate([pose, pose, pose])
    keep = metrics.oks_nms_per_image(
        np.array([5, 5, 7]), keypoints, np.array([0.2, 0.9, 0.1]), np.array([100.0, 100.0, 100.0]), 0.9, COCO.sigmas
    )
    assert keep.tolist() == [1, 2]
    assert metrics.oks_nms(np.zeros((0, 17, 3)), np.zeros(0), np.zeros(0), 0.9, COCO.sigmas).size == 0


# ----------------------------------------------------------------------------- MPII PCKh


def write_mat(tmp_path, joints_1based, visible, headboxes):
    path = tmp_path / "mpii_gt_val.mat"
    metrics.save_mpii_gt(path, joints_1based, visible, headboxes)
    return path


def test_saved_mat_has_the_official_layout(tmp_path):
    joints = np.arange(3 * 16 * 2, dtype=float).reshape(3, 16, 2) + 1
    path = write_mat(tmp_path, joints, np.ones((3, 16)), np.tile([[0, 0], [10, 10]], (3, 1, 1)))
    raw = loadmat(str(path))
    # the references locate joints with np.where(dataset_joints == name)[1][0]
    assert np.where(raw["dataset_joints"] == "head")[1][0] == 9
    assert np.where(raw["dataset_joints"] == "lwri")[1][0] == 15
    assert raw["jnt_missing"].shape == (16, 3)
    assert raw["pos_gt_src"].shape == (16, 2, 3)
    assert raw["headboxes_src"].shape == (2, 2, 3)
    assert raw["pos_gt_src"][4, 1, 2] == joints[2, 4, 1]


def test_pckh_hand_computed(tmp_path):
    # two people, head box 30 x 40 -> diagonal 50 -> head size 0.6 * 50 = 30 px
    gt = np.full((2, 16, 2), 100.0)
    visible = np.ones((2, 16))
    visible[1, 15] = 0  # l_wrist missing for person 1: ignored
    headboxes = np.tile(np.array([[10.0, 10.0], [40.0, 50.0]]), (2, 1, 1))
    path = write_mat(tmp_path, gt, visible, headboxes)

    preds = gt - 1.0  # 0-based = exact match after the +1 shift
    preds[0, 9, 0] += 15.0  # head error 15 px = 0.5 head: correct (<=)
    preds[1, 9, 0] += 15.5  # just over: wrong
    preds[0, 15, 1] += 40.0  # l_wrist wrong for person 0
    preds[1, 15, 1] += 400.0  # ... and ignored for person 1 (missing)
    preds[:, 6] += 500.0  # pelvis and thorax wrong: left out of the mean
    preds[:, 7] += 500.0
    preds[0, 0, 0] += 4.0  # r_ankle error 4 px: right at 0.5, wrong at 0.1

    out = metrics.pckh(preds, path)
    assert set(out) == {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCKh", "PCKh@0.1"}
    assert out["Head"] == pytest.approx(50.0)
    assert out["Wrist"] == pytest.approx((100.0 + 0.0) / 2)  # r_wrist 2/2, l_wrist 0/1
    assert out["Ankle"] == pytest.approx(100.0)
    # 14 joints in the mean, 27 visible instances, 2 misses (head 1, l_wrist 0)
    assert out["PCKh"] == pytest.approx(100.0 * 25 / 27)
    # at 0.1 (3 px) both heads and person 0's r_ankle (4 px) miss too
    assert out["PCKh@0.1"] == pytest.approx(100.0 * 23 / 27)

    per_joint = metrics.pckh_per_joint(preds, path)
    assert per_joint["pelv"] == 0.0 and per_joint["lwri"] == 0.0 and per_joint["head"] == 50.0
    # a .3 column of scores is accepted and ignored
    with_scores = np.concatenate([preds, np.ones((2, 16, 1))], axis=-1)
    assert metrics.pckh(with_scores, path) == out


def test_pckh_curve_is_monotone_and_matches_pckh(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.uniform(50, 400, size=(20, 16, 2))
    headboxes = np.stack([gt[:, 9] - 15, gt[:, 9] + 15], axis=1)
    path = write_mat(tmp_path, gt, rng.uniform(size=(20, 16)) > 0.1, headboxes)
    preds = gt - 1 + rng.normal(0, 6, gt.shape)
    curve = metrics.pckh_curve(preds, path)
    assert curve["per_joint"].shape == (51, 16)
    assert np.all(np.diff(curve["mean"]) >= 0)
    assert curve["mean"][-1] == pytest.approx(metrics.pckh(preds, path)["PCKh"])
    assert curve["mean"][10] == pytest.approx(metrics.pckh(preds, path)["PCKh@0.1"])
    assert 5 < curve["mean"][10] < curve["mean"][-1] < 100


def test_pckh_bad_input(tmp_path):
    gt = np.full((2, 16, 2), 100.0)
    path = write_mat(tmp_path, gt, np.ones((2, 16)), np.tile([[0.0, 0.0], [30.0, 40.0]], (2, 1, 1)))
    preds = gt.copy()
    preds[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match=r"images \[1\]"):
        metrics.pckh(preds, path)
    with pytest.raises(ValueError, match="3 MPII predictions for 2"):
        metrics.pckh(np.zeros((3, 16, 2)), path)
    with pytest.raises(ValueError, match="N x 16 x 2"):
        metrics.pckh(np.zeros((2, 17, 2)), path)
    with pytest.raises(FileNotFoundError, match="mpii_gt_val.mat"):
        metrics.pckh(gt, tmp_path / "nope.mat")


def test_coco_per_joint_isolates_the_perturbed_joint(tmp_path):
    gt_path = make_coco_gt(tmp_path / "gt.json")
    results = perturbed_results(gt_path, 0.0)
    for r in results:
        r["keypoints"][9 * 3] += 15.0  # left_wrist off by 15 px, everything else exact
    rows = metrics.coco_keypoint_eval(gt_path, results).per_joint
    assert [r["joint"] for r in rows] == list(range(17))
    similarity = np.array([r["mean_similarity"] for r in rows])
    assert np.argmin(similarity) == 9 and similarity[9] < 0.9
    np.testing.assert_allclose(np.delete(similarity, 9), 1.0)
    gt = json.loads(gt_path.read_text())["annotations"]
    assert rows[0]["labelled"] <= sum(a["keypoints"][2] > 0 for a in gt)
