"""RTMPose against mmpose 1.x: parameter counts, state_dict layout, seeded outputs, checkpoints.

The pinned numbers were verified against mmpose 1.3.2's own CSPNeXt + RTMCCHead built as the
rtmpose-{t,s,m,l}_8xb256-420e_coco-256x192 configs do (SyncBN as BatchNorm): the same keys in
the same order with the same shapes, and, for RTMPose-t with the weights `_fill` writes and the
input `_input`, outputs equal to mmpose's (max abs difference 0.0) and the same
KLDiscretLoss (beta 10, label softmax) on SimCCLabel targets.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from posecore.checkpoints import CheckpointError, load_model
from posecore.codec import build_codec
from posecore.models import build_model, final_output, model_summary
from posecore.optim import simcc_loss
from posecore.params import load_params

# variant: (parameters, state_dict entries, sha1 of "key (shape)" lines in order) - mmpose's
MMPOSE_LAYOUT = {
    "t": (3337007, 218, "cfa6f8d62533578ad3c97b274859e15491f32e57"),
    "s": (5473251, 254, "558f229f25057f12e5aca9797c0501bc6bfd0429"),
    "m": (13587611, 362, "5ff68a4bb71825a4fdb368a3a2f1d123e1b10c44"),
    "l": (27660339, 470, "ae966b0fe06ba2d2231894ad4e6ade77c48a2169"),
}


def _fill(model: torch.nn.Module) -> torch.nn.Module:
    """Deterministic weights and BN statistics, in state_dict order (as the parity script did)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.dtype.is_floating_point:
                continue
            if key.endswith(("running_var", "bn.weight")):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (0.1 if tensor.dim() > 1 else 0.05))
    return model.eval()


def _input() -> torch.Tensor:
    return torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("variant", sorted(MMPOSE_LAYOUT))
def test_parameter_count_and_key_layout_match_mmpose(variant):
    model = build_model("rtmpose", variant=variant)
    state = model.state_dict()
    layout = "\n".join(f"{key} {tuple(tensor.shape)}" for key, tensor in state.items())
    count = sum(p.numel() for p in model.parameters())
    assert (count, len(state), hashlib.sha1(layout.encode()).hexdigest()) == MMPOSE_LAYOUT[variant]


def test_key_names_are_mmpose_names():
    keys = set(build_model("rtmpose", variant="t").state_dict())
    for key in (
        "backbone.stem.0.conv.weight",
        "backbone.stem.2.bn.running_var",
        "backbone.stage4.1.conv2.bn.weight",  # the SPP bottleneck
        "backbone.stage4.2.blocks.0.conv2.depthwise_conv.conv.weight",
        "backbone.stage1.1.attention.fc.bias",
        "head.final_layer.weight",
        "head.mlp.0.g",
        "head.mlp.1.weight",
        "head.gau.uv.weight",
        "head.gau.gamma",
        "head.gau.ln.g",
        "head.gau.res_scale.scale",
        "head.cls_x.weight",
        "head.cls_y.weight",
    ):
        assert key in keys, key


def test_seeded_output_matches_mmpose():
    model = _fill(build_model("rtmpose", variant="t"))
    with torch.no_grad():
        output = model(_input())
    assert isinstance(output, tuple) and final_output(output) is output
    simcc_x, simcc_y = (part.double() for part in output)
    assert simcc_x.shape == (2, 17, 384) and simcc_y.shape == (2, 17, 512)
    np.testing.assert_allclose(
        simcc_x[0, 0, :4], [-0.0015947470, -0.0023509038, 0.0010511465, -0.0003418999], atol=1e-7
    )
    np.testing.assert_allclose(simcc_y[1, 16, -3:], [0.0037874337, -0.0017040411, -0.0031431597], atol=1e-7)
    assert simcc_x.sum().item() == pytest.approx(0.7078491324, abs=1e-4)
    assert simcc_y.sum().item() == pytest.approx(-0.6979172224, abs=1e-4)
    assert simcc_x.abs().sum().item() == pytest.approx(29.7826082876, rel=1e-5)
    assert simcc_y.abs().sum().item() == pytest.approx(39.4660877097, rel=1e-5)
    assert simcc_x.argmax(-1)[0].tolist() == [
        320,
        41,
        320,
        117,
        282,
        315,
        278,
        165,
        50,
        26,
        267,
        88,
        169,
        369,
        220,
        173,
        41,
    ]
    # mmpose's KLDiscretLoss on these outputs and SimCCLabel targets of random joints
    rng = np.random.default_rng(3)
    joints = rng.uniform(-20, 220, size=(2, 17, 2)).astype(np.float32)
    visible = (rng.uniform(size=(2, 17)) > 0.2).astype(np.float32)
    codec = build_codec(load_params("rtmpose", {"model.variant": "t"}))
    encoded = [codec.encode(j, v) for j, v in zip(joints, visible)]
    targets = tuple(torch.from_numpy(np.stack([e[0][axis] for e in encoded])) for axis in (0, 1))
    weights = torch.from_numpy(np.stack([e[1] for e in encoded]))
    assert simcc_loss(output, targets, weights).item() == pytest.approx(0.025967659428715706, rel=1e-5)


def test_mmpose_checkpoint_loads_through_load_model(tmp_path):
    source = _fill(build_model("rtmpose", variant="t"))
    path = tmp_path / "rtmpose-t.pth"
    torch.save({"meta": {"mmpose_version": "1.3.2"}, "state_dict": source.state_dict()}, path)
    params = load_params("rtmpose", {"model.variant": "t"})
    model, fmt = load_model(params, path)
    assert fmt == "mmpose-1.x" and not model.training
    image = _input()[:1]
    with torch.no_grad():
        expected, got = source(image), model(image)
    for a, b in zip(expected, got):
        assert torch.equal(a, b)

    state = source.state_dict()
    state["head.gau.extra"] = state.pop("head.gau.res_scale.scale")
    torch.save({"state_dict": state}, path)
    with pytest.raises(
        CheckpointError,
        match=r"missing keys \(1\): head\.gau\.res_scale\.scale.*"
        r"unexpected keys \(1\): head\.gau\.extra",
    ):
        load_model(params, path)
    with pytest.raises(CheckpointError, match="model.variant"):
        torch.save({"state_dict": source.state_dict()}, path)
        load_model(load_params("rtmpose", {"model.variant": "s"}), path)


def test_training_mode_and_summary():
    model = build_model("rtmpose", variant="t", num_joints=5, input_size=(64, 96))
    output = model.train()(torch.randn(2, 3, 96, 64))
    assert isinstance(output, tuple) and output[0].shape == (2, 5, 128) and output[1].shape == (2, 5, 192)
    summary = model_summary(build_model("rtmpose", variant="t"), (192, 256))
    assert summary["params"] == MMPOSE_LAYOUT["t"][0] and 0.3 < summary["gflops"] < 0.4 * 2
    with pytest.raises(ValueError, match="multiples of 32"):
        build_model("rtmpose", variant="t", input_size=(100, 128))
    with pytest.raises(ValueError, match="variant"):
        build_model("rtmpose", variant="xl")


def test_trains_on_simcc_targets(tmp_path, outputs):
    from helpers import tiny_params, tiny_synthetic

    import posecore
    from posecore import data
    from posecore.files import read_jsonl

    params = tiny_params(
        tiny_synthetic(tmp_path),
        **{
            "model.name": "rtmpose",
            "model.variant": "t",
            "data.codec": "simcc",
            "data.input_size": [64, 64],
            "train.epochs": 1,
            "train.max_steps": 2,
            "train.perf_warmup_steps": 0,
            "train.optimizer": "adamw",
            "train.lr_schedule": "cosine",
            "train.weight_decay": 0.05,
            "train.loss_weight": 1.0,
        },
    )
    item = data.build_dataset(params, "train")[0]
    target_x, target_y = item["target"]
    assert target_x.shape == (17, 128) and target_y.shape == (17, 128) and item["target_weight"].shape == (17,)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-core machine shared with other tests stalls OpenMP barriers
    try:
        result = posecore.train(params, run_name="rtmpose-tiny")
    finally:
        torch.set_num_threads(threads)
    losses = [r["loss"] for r in read_jsonl(outputs / "rtmpose-tiny" / "log.jsonl") if r["type"] == "train"]
    assert losses and all(np.isfinite(losses)) and result["steps"] == 2


def test_onnx_export_gives_the_same_simcc_outputs(tmp_path, outputs):
    from posecore.export import export_onnx
    from posecore.onnx_metadata import METADATA_KEYS, check_pose_metadata, read_metadata

    checkpoint = tmp_path / "rtmpose-t.pth"
    torch.save({"state_dict": _fill(build_model("rtmpose", variant="t")).state_dict()}, checkpoint)
    params = load_params("rtmpose", {"model.variant": "t"})
    report = export_onnx(params, checkpoint, tmp_path / "rtmpose-t.onnx", decode=True, parity_batch_sizes=(1, 2))
    assert report["output_names"] == ["simcc_x", "simcc_y", "keypoints", "scores"]
    assert report["parity"]["ok"] and report["parity_max_abs_diff"] <= 1e-5
    for diffs in report["parity"]["batches"].values():
        assert diffs["keypoints"] == 0.0 and diffs["scores"] <= 1e-6
    assert all(found["ok"] for found in report["parity"]["predictor"].values())  # SimCC through Predictor
    metadata = read_metadata(report["path"])
    assert (metadata["codec"], metadata["simcc_split_ratio"], metadata["simcc_size"]) == ("simcc", 2.0, [384, 512])
    assert metadata["simcc_sigma"] == [4.9, 5.66] and "argmax of simcc_x" in metadata["decode"]
    assert set(metadata) == {
        key
        for key in METADATA_KEYS
        if key not in ("heatmap_size", "sigma", "dark_kernel", "heatmap_stride", "precision", "calibration")
    }
    check_pose_metadata(metadata, report["path"])  # what inference reads, checked
    with pytest.raises(ValueError, match="simcc_split_ratio"):
        check_pose_metadata({**metadata, "simcc_split_ratio": -2.0}, report["path"])
    with pytest.raises(ValueError, match="lacks the metadata.*simcc_sigma"):
        check_pose_metadata({k: v for k, v in metadata.items() if k != "simcc_sigma"}, report["path"])
    # examples/onnx_infer.py (numpy, OpenCV, onnxruntime only) reads the simcc export too
    import importlib.util

    import onnxruntime

    from posecore.files import REPO_ROOT

    spec = importlib.util.spec_from_file_location("onnx_infer", REPO_ROOT / "examples" / "onnx_infer.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    session = onnxruntime.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).integers(0, 255, (300, 260, 3), dtype=np.uint8)
    keypoints, scores = example.predict(session, image, [40.0, 30.0, 160.0, 250.0])
    assert keypoints.shape == (17, 2) and scores.shape == (17,) and np.isfinite(keypoints).all()
    # the Predictor runs the export and the checkpoint alike: crop, forward, flip test (reversed x,
    # swapped pairs), decode, back to the image; the example's plain prediction agrees
    from posecore.predictor import Predictor

    boxes = np.array([[40.0, 30.0, 200.0, 280.0], [10.0, 10.0, 90.0, 120.0]])
    from_torch = Predictor.from_checkpoint(params, checkpoint, device="cpu")(image, boxes, flip=True)
    from_onnx = Predictor.from_onnx(report["path"], device="cpu")
    flipped = from_onnx(image, boxes, flip=True)
    assert from_torch.keypoints.shape == (2, 17, 2) and np.isfinite(from_torch.keypoints).all()
    np.testing.assert_allclose(flipped.scores, from_torch.scores, atol=1e-5)
    np.testing.assert_allclose(flipped.keypoints, from_torch.keypoints, atol=1e-3)
    plain = from_onnx(image, boxes[:1])
    np.testing.assert_allclose(keypoints, plain.keypoints[0], atol=1e-3)
    np.testing.assert_allclose(scores, plain.scores[0], atol=1e-6)


def test_oracle_evaluation_and_browser_with_the_simcc_codec(tmp_path, outputs):
    from helpers import TINY, tiny_synthetic

    from posecore import evaluation, workbook

    root = tiny_synthetic(tmp_path)
    overrides = {
        **TINY,
        "model.name": "rtmpose",
        "model.variant": "t",
        "data.codec": "simcc",
        "data.input_size": [64, 64],
        "eval.oracle": True,
    }
    params = workbook.notebook_params("rtmpose", "rtmpose", str(root), overrides)
    metrics = evaluation.evaluate(params, None, run_name="simcc-oracle")
    assert metrics["AP"] > 0.9  # decoded labels land within a quarter pixel
    browser = workbook.PoseBrowser(params, "simcc-oracle", None)
    assert browser.heatmaps(0).shape == (17, 128, 128)
    figure = browser.figure(1, joint="left_wrist")
    assert len(figure.axes) == 2 and "left_wrist" in figure.axes[-1].get_ylabel()
