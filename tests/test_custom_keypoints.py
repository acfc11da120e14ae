"""A custom keypoint set end to end: posecore's synthetic custom dataset (COCO's body without the
face plus neck and mid-hip) trained, evaluated, exported, run and drawn from params alone, its
annotation file checked, and a COCO checkpoint fine-tuned onto it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import pycocotools_stats, tiny_params

import posecore
from posecore import checkpoint_files, data, evaluation, export, onnx_metadata, viz
from posecore.checkpoints import CheckpointError, load_model
from posecore.data.synthetic import CUSTOM_JOINTS, CUSTOM_SIGMAS, CUSTOM_SKELETON
from posecore.files import REPO_ROOT, read_json, read_jsonl
from posecore.keypoints import KeypointSetError, keypoint_info
from posecore.metrics import COCO_STAT_NAMES
from posecore.params import load_params

NAMES = list(CUSTOM_JOINTS)
# the demo's crop and heatmap sizes: fine enough for the encode + decode oracle to be exact
DEMO_SIZES = {"data.input_size": [96, 128], "data.heatmap_size": [24, 32]}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def custom_root(tmp_path_factory) -> Path:
    return data.make_synthetic(
        tmp_path_factory.mktemp("synthetic") / "custom", "custom", num_train=8, num_val=3, image_size=64
    )


def custom_params(root, **overrides):
    return tiny_params(root, **{"data.dataset": "custom", "eval.sigmas": list(CUSTOM_SIGMAS), **overrides})


def test_synthetic_custom_set_reads_with_its_own_joints(custom_root):
    coco = json.loads((custom_root / "annotations" / "person_keypoints_val2017.json").read_text())
    (category,) = coco["categories"]
    assert category["keypoints"] == NAMES and len(NAMES) == 14 and "nose" not in NAMES
    assert all(len(a["keypoints"]) == 3 * 14 for a in coco["annotations"])
    dataset = data.build_dataset(custom_params(custom_root), "train")
    info = dataset.info
    assert info.dataset == "custom" and info.joint_names == tuple(NAMES)
    pairs = {(NAMES[a], NAMES[b]) for a, b in info.flip_pairs}
    assert pairs == {(f"left_{p}", f"right_{p}") for p in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")}
    assert [NAMES[j] for j in info.upper_body] == [
        "neck",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "right_shoulder",
        "right_elbow",
        "right_wrist",
    ]
    assert {(NAMES[a], NAMES[b]) for a, b in info.skeleton} == set(CUSTOM_SKELETON)
    item = dataset[0]
    assert item["target"].shape[0] == 14 and item["joints"].shape == (14, 3)


def test_train_eval_export_infer_and_draw_from_params_alone(custom_root, outputs, tmp_path):
    params = custom_params(
        custom_root, **{"train.epochs": 2, "train.lr": 1e-3, "train.lr_steps": [100], "train.warmup_iters": 0}
    )
    assert params.model.num_joints == 17  # the demo's COCO head: the keypoint set decides
    result = posecore.train(params, run_name="custom")
    run = Path(result["run_dir"])
    recorded = load_params(run / "params.yaml")
    assert recorded.model.num_joints == 14 and recorded.data.joint_names == NAMES
    assert ["left_knee", "right_knee"] in recorded.data.flip_pairs
    losses = [r["loss"] for r in read_jsonl(run / "log.jsonl") if r["type"] == "train"]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:2])

    # evaluation of the run: COCOeval with the custom sigmas, as pycocotools run directly
    metrics = posecore.evaluate(params, "last", run_name="custom")
    eval_dir = run / "eval"
    gt_path = custom_root / "annotations" / "person_keypoints_val2017.json"
    results = read_json(eval_dir / "results.json")
    assert results and all(len(r["keypoints"]) == 42 for r in results)
    assert [metrics[k] for k in COCO_STAT_NAMES] == pycocotools_stats(gt_path, eval_dir / "results.json", CUSTOM_SIGMAS)
    assert read_json(eval_dir / "metrics.json")["oks_sigmas"] == list(CUSTOM_SIGMAS)

    # export and inference need only the run: no dataset, no sigmas in the params given
    gone = custom_params(tmp_path / "no-data", **{"eval.sigmas": []})
    onnx_path = tmp_path / "custom.onnx"
    export.export_onnx(gone, "last", onnx_path, run_name="custom", parity_batch_sizes=())
    meta = onnx_metadata.read_metadata(onnx_path)
    assert meta["dataset"] == "custom" and meta["joint_names"] == NAMES
    assert [NAMES.index("left_wrist"), NAMES.index("right_wrist")] in meta["flip_pairs"]
    assert len(meta["skeleton"]) == len(CUSTOM_SKELETON)
    spec = importlib.util.spec_from_file_location("onnx_infer", REPO_ROOT / "examples" / "onnx_infer.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    import onnxruntime as ort

    instance = data.build_dataset(recorded, "val").instances[0]
    x0, y0, x1, y1 = instance.bbox_xyxy
    image = data.read_image(instance.image_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    keypoints, scores = example.predict(session, image, [x0, y0, x1 - x0, y1 - y0])
    assert keypoints.shape == (14, 2) and scores.shape == (14,)
    # posecore.infer with the run's checkpoint and with the export: the same 14 joints
    for weights, given in (("last", gone), (onnx_path, None)):
        summary = posecore.infer(
            given,
            weights,
            instance.image_path,
            detector=np.array([[x0, y0, x1, y1]]),
            run_name="custom",
            out_dir=tmp_path / f"infer-{weights != 'last'}",
            progress=False,
        )
        assert summary["keypoints"]["joint_names"] == NAMES and summary["persons"] == 1
        (row,) = read_json(summary["results"])
        assert len(row["keypoints"]) == 42

    # drawing: one segment per limb of the custom skeleton
    info = keypoint_info(recorded)
    person = np.concatenate([instance.joints, np.ones((14, 1))], axis=1)
    figure = viz.plot_pose(image[..., ::-1], info, gt=[person])
    (lines,) = [c for ax in figure.axes for c in ax.collections if c.get_gid() == viz.SKELETON_GID]
    assert len(lines.get_segments()) == len(CUSTOM_SKELETON)


def test_oracle_is_exact_and_the_ap_is_pycocotools_with_the_custom_sigmas(custom_root, outputs):
    exact = posecore.evaluate(
        custom_params(custom_root, **DEMO_SIZES, **{"eval.oracle": True}), None, run_name="oracle"
    )
    assert exact["AP"] == 1.0
    # 8x8 heatmaps quantize the joints: an AP in between, which the sigmas visibly change
    coarse = posecore.evaluate(
        custom_params(custom_root, **{"eval.oracle": True, "eval.sigmas": "uniform"}), None, run_name="coarse"
    )
    results = outputs / "coarse" / "eval" / "results.json"
    gt_path = custom_root / "annotations" / "person_keypoints_val2017.json"
    assert 0.05 < coarse["AP"] < 0.95
    uniform = pycocotools_stats(gt_path, results, [0.067] * 14)
    assert [coarse[k] for k in COCO_STAT_NAMES] == uniform
    assert pycocotools_stats(gt_path, results, CUSTOM_SIGMAS) != uniform
    assert read_json(outputs / "coarse" / "eval" / "metrics.json")["oks_sigmas"] == "uniform"


@pytest.mark.parametrize("upstream", ["posecore", "alphapose"])
def test_fine_tuning_from_a_coco_checkpoint_skips_exactly_the_head(custom_root, tmp_path, upstream):
    coco_model = load_model(tiny_params(custom_root))[0]
    state = coco_model.state_dict()
    path = tmp_path / "coco.pt"
    if upstream == "posecore":
        torch.save({"format": "posecore/1", "model_name": "fastpose", "num_joints": 17, "model": state}, path)
    else:  # AlphaPose's key names (the inverse of checkpoint_files.ALPHAPOSE_PREFIXES)
        rename = {new: old for old, new in checkpoint_files.ALPHAPOSE_PREFIXES.items()}
        saved = {}
        for key, value in state.items():
            prefix = next(p for p in [*rename, ""] if key.startswith(p))
            saved[(rename[prefix] if prefix else "") + key[len(prefix) :]] = value
        saved = {k.replace(".se.fc1.", ".se.fc.0.").replace(".se.fc2.", ".se.fc.2."): v for k, v in saved.items()}
        torch.save(saved, path)

    params = data.resolve_keypoints(custom_params(custom_root, **{"model.init_checkpoint": str(path)}))
    with pytest.raises(CheckpointError, match="17 joints, but the model has 14 joints.*skip_mismatched_head"):
        load_model(params)
    tuned = load_params(params, {"model.skip_mismatched_head": True})
    with pytest.warns(UserWarning, match=r"skipped \['head\.final_layer\.weight', 'head\.final_layer\.bias'\]"):
        model = load_model(tuned)[0]
    for key, value in model.state_dict().items():
        if key.startswith("head.final_layer."):
            assert value.shape[0] == 14
        else:
            assert torch.equal(value, state[key]), key


def _write_broken(custom_root, tmp_path, change) -> Path:
    root = tmp_path / "broken"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").symlink_to(custom_root / "val2017")
    coco = json.loads((custom_root / "annotations" / "person_keypoints_val2017.json").read_text())
    change(coco)
    (root / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(coco))
    return root


@pytest.mark.parametrize(
    "change, words",
    [
        (
            lambda c: c["categories"][0].pop("keypoints"),
            ["category id 1 ('person') has no 'keypoints'", "'skeleton'", "1-based"],
        ),
        (lambda c: c["categories"][0]["skeleton"].append([0, 15]), ["skeleton entry 13 is [0, 15]", "from 1 to 14"]),
        (lambda c: c["images"][1].pop("height"), ["images[1]", "width/height", "add them"]),
    ],
)
def test_annotation_file_problems_name_the_file_the_entry_and_the_fix(custom_root, tmp_path, change, words):
    root = _write_broken(custom_root, tmp_path, change)
    with pytest.raises(ValueError) as error:
        data.build_dataset(custom_params(root), "val")
    message = str(error.value)
    assert "person_keypoints_val2017.json" in message
    for word in words:
        assert word in message


def test_a_person_entry_of_the_wrong_length_is_skipped_and_named(custom_root, tmp_path):
    """Malformed people are counted and named (posecore's policy for every dataset); the rest loads."""
    root = _write_broken(custom_root, tmp_path, lambda c: c["annotations"][2].update(keypoints=[0] * 51, id=77))
    with pytest.warns(
        UserWarning,
        match=r"person_keypoints_val2017.json: skipped 1 of \d+ person entries: "
        r"51 keypoint values, not 42 \(14 joints.*ids \[77\].*Fix or drop",
    ):
        dataset = data.build_dataset(custom_params(root), "val")
    assert len(dataset) == len(data.build_dataset(custom_params(custom_root), "val")) - 1


def test_custom_set_without_sigmas_or_data_is_a_clear_error(custom_root, tmp_path, outputs):
    with pytest.raises(KeypointSetError, match="eval.sigmas is not set.*eval.sigmas: uniform"):
        posecore.train(custom_params(custom_root, **{"eval.sigmas": []}), run_name="no-sigmas")
    with pytest.raises(KeypointSetError, match="run's saved params"):
        load_model(custom_params(custom_root))
    with pytest.raises(ValueError, match="resolve_keypoints"):  # never a silent 17-joint model
        posecore.build_model(custom_params(custom_root))
    assert posecore.build_model(data.resolve_keypoints(custom_params(custom_root))).num_joints == 14
    with pytest.raises(data.DataLayoutError, match="does not exist"):
        data.resolve_keypoints(custom_params(tmp_path / "nowhere"))
    assert data.resolve_keypoints(load_params("demo")) == load_params("demo")
    assert evaluation.primary_metric(custom_params(custom_root)) == "AP"


# OpenPose-style names in OpenPose's order, made from COCO's joints (neck and mid-hip: the mean of
# both sides, labelled when both are); another joint list, naming style and category id.
FROM_COCO = {
    "Nose": ("nose",),
    "Neck": ("left_shoulder", "right_shoulder"),
    "RShoulder": ("right_shoulder",),
    "RElbow": ("right_elbow",),
    "RWrist": ("right_wrist",),
    "LShoulder": ("left_shoulder",),
    "LElbow": ("left_elbow",),
    "LWrist": ("left_wrist",),
    "MidHip": ("left_hip", "right_hip"),
    "RHip": ("right_hip",),
    "RKnee": ("right_knee",),
    "RAnkle": ("right_ankle",),
    "LHip": ("left_hip",),
    "LKnee": ("left_knee",),
    "LAnkle": ("left_ankle",),
    "REye": ("right_eye",),
    "LEye": ("left_eye",),
}


def as_openpose_set(coco: dict) -> dict:
    from posecore.keypoints import COCO

    names = list(FROM_COCO)
    parts = [[COCO.joint_names.index(j) for j in joints] for joints in FROM_COCO.values()]
    for ann in coco["annotations"]:
        kps = np.asarray(ann["keypoints"], dtype=float).reshape(17, 3)
        new = [[*kps[p, :2].mean(0), kps[p, 2].min()] if (kps[p, 2] > 0).all() else [0, 0, 0] for p in parts]
        ann["keypoints"], ann["category_id"] = [round(float(v), 2) for row in new for v in row], 3
        ann["num_keypoints"] = int(sum(row[2] > 0 for row in new))
    skeleton = [("Neck", "RShoulder"), ("RShoulder", "RElbow"), ("Neck", "MidHip"), ("MidHip", "LHip")]
    coco["categories"] = [
        {
            "id": 3,
            "name": "human",
            "keypoints": names,
            "skeleton": [[names.index(a) + 1, names.index(b) + 1] for a, b in skeleton],
        }
    ]
    return coco


def test_real_coco_images_as_a_custom_set(coco_root, tmp_path, outputs):
    root = tmp_path / "openpose"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        (root / f"{split}2017").symlink_to(coco_root / f"{split}2017")
        coco = json.loads((coco_root / "annotations" / f"person_keypoints_{split}2017.json").read_text())
        (root / "annotations" / f"person_keypoints_{split}2017.json").write_text(json.dumps(as_openpose_set(coco)))
    coco_sigmas = dict(zip(posecore.keypoints.COCO.joint_names, posecore.keypoints.COCO.sigmas))
    sigmas = [coco_sigmas[FROM_COCO[name][0]] for name in FROM_COCO]
    params = load_params(
        "fastpose",
        {
            "data.root": str(root),
            "data.workers": 0,
            "data.dataset": "custom",
            "eval.sigmas": sigmas,
            "eval.oracle": True,
        },
    )
    resolved = data.resolve_keypoints(params)
    info = keypoint_info(resolved)
    assert resolved.model.num_joints == 17 and len(info.flip_pairs) == 7
    assert {(info.joint_names[a], info.joint_names[b]) for a, b in info.flip_pairs} >= {
        ("RShoulder", "LShoulder"),
        ("REye", "LEye"),
    }
    metrics = posecore.evaluate(params, None, run_name="openpose")
    assert metrics["AP"] == 1.0
    results = outputs / "openpose" / "eval" / "results.json"
    assert {r["category_id"] for r in read_json(results)} == {3}
    gt_path = root / "annotations" / "person_keypoints_val2017.json"
    assert [metrics[k] for k in COCO_STAT_NAMES] == pycocotools_stats(gt_path, results, sigmas)
