"""posecore.evaluation: oracle bounds on the shared samples, flip-test symmetry, distributed gather,
checkpoint handling and bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from posecore import evaluation, metrics
from posecore.checkpoints import load_model
from posecore.files import read_json, write_json
from posecore.params import load_params
from posecore.runs import run_dir

TINY = {
    "model.depth": 18,
    "data.input_size": [96, 128],
    "data.heatmap_size": [24, 32],
    "data.workers": 0,
    "eval.batch_size": 16,
}


def coco_params(coco_root, **overrides):
    return load_params("fastpose", {"data.root": str(coco_root), "data.workers": 0, **overrides})


def save_tiny_checkpoint(path, params, corrupt=False):
    from posecore.models import build_model

    torch.manual_seed(0)
    model = build_model(params)
    if corrupt:
        with torch.no_grad():
            next(p for name, p in model.named_parameters() if "final" in name or "head" in name).fill_(float("nan"))
    torch.save(
        {
            "format": "posecore/1",
            "model_name": params.model.name,
            "num_joints": params.model.num_joints,
            "model": model.state_dict(),
            "params": params.to_dict(),
            "epoch": 1,
            "step": 1,
            "best_metric": None,
        },
        path,
    )
    return str(path)


def pycocotools_ap(gt_path, results_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(results_path)), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


# ----------------------------------------------------------------------------- oracle bounds


def test_coco_oracle_bound_and_files(coco_root, outputs):
    params = coco_params(coco_root, **{"eval.oracle": True})
    write_json(run_dir("oracle") / "metrics.json", {"train_loss": 0.5})
    got = evaluation.evaluate(params, None, run_name="oracle")

    assert got["AP"] >= 0.97 and got["gt_AP"] >= 0.97
    folder = outputs / "oracle"
    eval_dir = folder / "eval"
    results = read_json(eval_dir / "results.json")
    assert {r["category_id"] for r in results} == {1}
    assert all(len(r["keypoints"]) == 51 and set(r) >= {"image_id", "score"} for r in results)
    # the written results score the same to the last digit under pycocotools run directly
    gt_path = coco_root / "annotations" / "person_keypoints_val2017.json"
    direct = pycocotools_ap(gt_path, eval_dir / "results.json")
    assert [got[k] for k in metrics.COCO_STAT_NAMES] == list(direct)
    assert got["gt_AP"] == pycocotools_ap(gt_path, eval_dir / "gt_results.json")[0]
    saved = read_json(eval_dir / "metrics.json")
    assert saved["AP"] == got["AP"] and "images_per_s" in saved and "scoring_s" in saved
    assert len(saved["ap_per_oks"]) == 10
    merged = read_json(folder / "metrics.json")
    assert merged["train_loss"] == 0.5 and merged["AP"] == got["AP"]
    rows = list(csv.DictReader((eval_dir / "per_joint.csv").read_text().splitlines()))
    assert [r["joint"] for r in rows][:3] == ["nose", "left_eye", "right_eye"]
    assert (folder / "params.yaml").is_file()


def make_mpii_root(mpii_root, tmp_path):
    """The 5 samples plus an mpii_gt_val.mat in the official layout (head boxes around the
    upper_neck -> head_top segment, which the samples lack)."""
    root = tmp_path / "mpii"
    (root / "annotations").mkdir(parents=True)
    os.symlink(mpii_root / "images", root / "images")
    ann_path = mpii_root / "annotations" / "mpii_val.json"
    os.symlink(ann_path, root / "annotations" / "mpii_val.json")
    annotations = json.loads(ann_path.read_text())
    joints = np.array([a["joints"] for a in annotations], dtype=np.float64)  # 1-based
    visible = np.array([a["joints_vis"] for a in annotations])
    centre = (joints[:, 8] + joints[:, 9]) / 2
    side = np.linalg.norm(joints[:, 9] - joints[:, 8], axis=1)[:, None]
    headboxes = np.stack([centre - side / 2, centre + side / 2], axis=1)
    metrics.save_mpii_gt(root / "annotations" / "mpii_gt_val.mat", joints, visible, headboxes)
    return root, annotations


def test_unbiased_codecs_lift_the_coarse_heatmap_oracle(coco_root, outputs):
    """At a 12x16 heatmap for a 192x256 input the MSRA grid rounding costs a third of the AP; the
    sub-pixel codecs keep it (benchmarks/codec_oracle.py prints the full table)."""
    coarse = {"eval.oracle": True, "data.heatmap_size": [12, 16]}
    ap = {
        codec: evaluation.evaluate(
            coco_params(coco_root, **coarse, **{"data.codec": codec}), None, run_name=f"oracle-{codec}"
        )["AP"]
        for codec in ("msra", "dark", "udp")
    }
    assert ap["msra"] < 0.7 and ap["dark"] >= 0.95 and ap["udp"] >= 0.95
    assert read_json(outputs / "oracle-udp" / "eval" / "metrics.json")["settings"]["codec"] == "udp"


def test_mpii_oracle_bound_and_predictions(mpii_root, tmp_path, outputs):
    root, annotations = make_mpii_root(mpii_root, tmp_path)
    params = load_params("hourglass", {"data.root": str(root), "data.workers": 0, "eval.oracle": True})
    got = evaluation.evaluate(params, None, run_name="mpii-oracle")
    assert got["PCKh"] >= 99.0
    assert set(got) >= {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "PCKh", "PCKh@0.1"}

    predictions = read_json(outputs / "mpii-oracle" / "eval" / "predictions.json")
    assert [p["image"] for p in predictions] == [a["image"] for a in annotations]
    pred = np.array([p["keypoints"] for p in predictions])
    assert pred.shape == (len(annotations), 16, 3)
    truth = np.array([a["joints"] for a in annotations]) - 1.0  # predictions are 0-based
    seen = np.array([a["joints_vis"] for a in annotations]) > 0
    # the encoder centres each Gaussian on the nearest heatmap cell: at most half a cell off per
    # axis, and unbiased (a 0/1-based slip or a half-cell shift in the inverse affine would show)
    cell = np.array([a["scale"] * 1.25 * 200 / 96 for a in annotations])[:, None, None]
    error = ((pred[..., :2] - truth) / cell)[seen]
    assert np.abs(error).max() <= 0.5 + 1e-3
    assert np.all(np.abs(error.mean(axis=0)) < 0.15)
    rows = list(csv.DictReader((outputs / "mpii-oracle" / "eval" / "per_joint.csv").read_text().splitlines()))
    assert len(rows) == 16 and rows[9]["joint"] == "head"


# ----------------------------------------------------------------------------- flip test


class Equivariant(nn.Module):
    """m(x) = g(x) + S F g(F x): mirroring the input mirrors the output and swaps left/right."""

    def __init__(self, flip_index, joints=17):
        super().__init__()
        torch.manual_seed(0)
        self.g = nn.Conv2d(3, joints, 5, padding=2)
        self.flip_index = flip_index

    def forward(self, x):
        return self.g(x) + self.g(x.flip(3))[:, self.flip_index].flip(3)


def test_flip_test_of_an_equivariant_model_is_its_plain_output():
    from posecore.codec import MSRAHeatmap
    from posecore.keypoints import COCO

    flip_index = COCO.flip_index()
    model = Equivariant(flip_index).eval()
    codec = MSRAHeatmap((12, 16), (12, 16))
    images = torch.randn(2, 3, 16, 12)
    with torch.no_grad():
        plain, mirrored = model(images), model(images.flip(3))
        averaged = codec.flip_test(plain, mirrored, flip_index, shift=False)
        torch.testing.assert_close(averaged, plain)
        # without the left/right swap the mirrored half would put joints on the wrong side
        unswapped = codec.flip_test(plain, mirrored, list(range(17)), shift=False)
        assert not torch.allclose(unswapped, plain, atol=1e-3)
        # the shift moves the mirrored half one pixel right (first column kept)
        shifted = codec.flip_test(plain, mirrored, flip_index, shift=True)
        moved = plain.clone()
        moved[..., 1:] = plain[..., :-1]
        torch.testing.assert_close(shifted, (plain + moved) / 2)


# ----------------------------------------------------------------------------- model path, bad input


def test_model_eval_with_gt_and_detector_boxes(coco_root, tmp_path, outputs):
    params = coco_params(coco_root, **TINY)
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt", params)
    got = evaluation.evaluate(params, checkpoint, run_name="tiny")
    assert {"AP", "AR", "APm", "gt_AP", "images_per_s", "model_images_per_s", "scoring_s"} <= set(got)
    assert got["num_instances"] == 12  # 14 annotations, 2 without keypoints

    # validate (inside training) scores the model it is given the same way, and restores train mode
    model = load_model(params, checkpoint)[0].train()
    in_training = evaluation.validate(model, params, out_dir=tmp_path / "validate")
    assert model.training
    assert all(in_training[k] == got[k] for k in [*metrics.COCO_STAT_NAMES, "gt_AP"])
    assert read_json(tmp_path / "validate" / "results.json") == read_json(outputs / "tiny" / "eval" / "results.json")

    # detector boxes for only 2 of the 4 images: the others simply have no persons
    detections = read_json(coco_root / "detections" / "person_detections_val2017.json")
    kept_images = sorted({d["image_id"] for d in detections})[:2]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([d for d in detections if d["image_id"] in kept_images][:9]))
    det_params = coco_params(coco_root, **TINY, **{"eval.use_gt_boxes": False, "data.det_file": str(det_file)})
    got_det = evaluation.evaluate(det_params, checkpoint, run_name="tiny-det")
    assert got_det["num_instances"] == 9 and "gt_AP" not in got_det
    results = read_json(outputs / "tiny-det" / "eval" / "results.json")
    assert {r["image_id"] for r in results} <= set(kept_images)
    assert 1 <= len(results) <= 9

    # no detection above the score threshold: nothing to score is AP 0 with a warning
    none_params = load_params(det_params, {"data.det_score_thr": 2.0})
    with pytest.warns(UserWarning, match="no keypoint results"):
        got_none = evaluation.evaluate(none_params, checkpoint, run_name="tiny-none")
    assert got_none["AP"] == 0.0 and got_none["num_instances"] == 0
    assert read_json(outputs / "tiny-none" / "eval" / "results.json") == []


def test_nan_heatmaps_name_the_images(coco_root, tmp_path, outputs):
    params = coco_params(coco_root, **TINY)
    checkpoint = save_tiny_checkpoint(tmp_path / "nan.pt", params, corrupt=True)
    with pytest.raises(ValueError, match=r"NaN or inf.*\.jpg"):
        evaluation.evaluate(params, checkpoint, run_name="nan")


def test_checkpoint_for_another_model_or_joint_count(tmp_path, outputs):
    from posecore.checkpoints import CheckpointError

    coco = load_params("fastpose", TINY)
    mpii_fastpose = load_params("fastpose", {**TINY, "model.num_joints": 16, "data.dataset": "mpii"})
    sixteen = save_tiny_checkpoint(tmp_path / "sixteen.pt", mpii_fastpose)
    with pytest.raises(CheckpointError, match="16 joints.*model.num_joints"):
        load_model(coco, sixteen)
    baseline = load_params("fastpose", {**TINY, "model.name": "simplebaseline"})
    seventeen = save_tiny_checkpoint(tmp_path / "seventeen.pt", coco)
    with pytest.raises(CheckpointError, match="holds fastpose"):
        load_model(baseline, seventeen)
    hourglass17 = load_params("hourglass")
    hourglass17.model.num_joints = 17  # load_params refuses this; load_model must too
    with pytest.raises(ValueError, match="model.num_joints is 17 but mpii has 16"):
        load_model(hourglass17, sixteen)


def test_a_run_is_evaluated_with_the_codec_it_was_trained_with(coco_root, tmp_path, outputs, caplog):
    from posecore.checkpoints import with_trained_codec
    from posecore.params import ParamsError

    params = coco_params(coco_root, **TINY, **{"eval.flip_test": False})
    udp_checkpoint = save_tiny_checkpoint(tmp_path / "udp.pt", load_params(params, {"data.codec": "udp"}))
    evaluation.evaluate(params, udp_checkpoint, run_name="udp-run")
    settings = read_json(outputs / "udp-run" / "eval" / "metrics.json")["settings"]
    assert settings["codec"] == "udp" and "trained with data.codec 'udp'" in caplog.text
    # a bare state_dict (or an upstream file) says nothing: the params' codec; a posecore
    # checkpoint from before data.codec: msra
    torch.save({"backbone.conv1.weight": torch.zeros(1)}, tmp_path / "bare.pt")
    assert with_trained_codec(params, tmp_path / "bare.pt") is params
    old_params = params.to_dict()
    del old_params["data"]["codec"]
    torch.save({"format": "posecore/1", "params": old_params, "model": {}}, tmp_path / "old.pt")
    assert with_trained_codec(load_params(params, {"data.codec": "dark"}), tmp_path / "old.pt").data.codec == "msra"
    with pytest.raises(ParamsError, match="eval.decode 'dark' does not fit data.codec 'udp'"):
        with_trained_codec(load_params(params, {"eval.decode": "dark"}), udp_checkpoint)


def test_checkpoint_resolution(tmp_path, outputs):
    params = load_params("fastpose")
    with pytest.raises(ValueError, match="no checkpoint given"):
        evaluation.resolve_checkpoint(None, params, "run")
    with pytest.raises(ValueError, match="needs run_name"):
        evaluation.resolve_checkpoint("best", params, None)
    with pytest.raises(FileNotFoundError, match="no last checkpoint"):
        evaluation.resolve_checkpoint("last", params, "fresh")
    (run_dir("trained") / "checkpoints").mkdir()
    (run_dir("trained") / "checkpoints" / "best.pt").write_bytes(b"")
    assert evaluation.resolve_checkpoint("best", params, "trained").endswith("trained/checkpoints/best.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        evaluation.resolve_checkpoint(tmp_path / "nope.pt", params, None)
    oracle = load_params("fastpose", {"eval.oracle": True})
    assert evaluation.resolve_checkpoint(None, oracle, None) is None
    with pytest.raises(ValueError, match="det_file"):
        evaluation.eval_split(load_params("fastpose", {"eval.use_gt_boxes": False}))


def test_primary_metric():
    assert evaluation.primary_metric("fastpose") == "AP"
    assert evaluation.primary_metric(load_params("hourglass")) == "PCKh"


# ----------------------------------------------------------------------------- distributed


@pytest.mark.slow
def test_two_gloo_processes_match_one(coco_root, tmp_path, outputs, monkeypatch):
    monkeypatch.setenv("POSECORE_DEVICE", "cpu")
    detections = read_json(coco_root / "detections" / "person_detections_val2017.json")
    det_file = tmp_path / "dets.json"  # 7 boxes: the 2-rank sampler pads one duplicate
    det_file.write_text(json.dumps(sorted(detections, key=lambda d: -d["score"])[:7]))
    params = coco_params(
        coco_root,
        **{
            **TINY,
            "eval.use_gt_boxes": False,
            "data.det_file": str(det_file),
            "eval.batch_size": 2,
            "dist.backend": "gloo",
        },
    )
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt", params)
    one = evaluation.evaluate(params, checkpoint, npus=1, run_name="one")
    two = evaluation.evaluate(params, checkpoint, npus=2, run_name="two")
    assert one["num_instances"] == two["num_instances"] == 7
    assert len(list((outputs / "two" / "eval" / "logs").rglob("stdout.log"))) == 2  # kept with the run
    results_one = read_json(outputs / "one" / "eval" / "results.json")
    results_two = read_json(outputs / "two" / "eval" / "results.json")
    assert len(results_one) == len(results_two)
    for a, b in zip(results_one, results_two):
        assert a["image_id"] == b["image_id"]
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], rtol=0, atol=1e-3)
    for key in metrics.COCO_STAT_NAMES:
        assert one[key] == pytest.approx(two[key], abs=1e-6)
