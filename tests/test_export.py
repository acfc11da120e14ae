"""ONNX export: parity with PyTorch at batch 1 and 5, metadata, the standalone example, bad input.

Models get random weights at PyTorch's default scale and random BatchNorm statistics: the
models' own init (std 0.001 output convs) gives heatmaps near 1e-6, where a 1e-4 parity bound
would prove nothing. Hourglass-52 keeps its full architecture at a 128x128 input.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import randomized_model
from torch import nn

import posecore
from posecore import codec, geometry
from posecore.export import MAX_OPSET, MIN_OPSET, check_parity, export_onnx, latency_table
from posecore.files import REPO_ROOT
from posecore.keypoints import COCO, MPII
from posecore.onnx_metadata import METADATA_KEYS, read_metadata

EXAMPLE = REPO_ROOT / "examples" / "onnx_infer.py"
SMALL = {"data.input_size": [64, 96], "data.heatmap_size": [16, 24]}
TOLERANCE = 1e-4


def small_params(name: str, depth: int = 18):
    overrides = {"model.name": name, "model.depth": depth, **SMALL}
    return posecore.load_params("fastpose", overrides)


def posecore_checkpoint(model: nn.Module, params, path):
    torch.save(
        {
            "format": "posecore/1",
            "model_name": params.model.name,
            "num_joints": params.model.num_joints,
            "model": model.state_dict(),
            "params": params.to_dict(),
            "epoch": 1,
            "step": 10,
        },
        path,
    )
    return path


def renamed(state: dict, prefixes: dict[str, str], parts: dict[str, str] | None = None) -> dict:
    """posecore keys -> an upstream layout (first matching prefix, then substring parts)."""
    out = {}
    for key, value in state.items():
        new = next((up + key[len(own) :] for own, up in prefixes.items() if key.startswith(own)), key)
        for own, up in (parts or {}).items():
            new = new.replace(own, up)
        out[new] = value
    return out


def alphapose_checkpoint(model: nn.Module, path):
    """AlphaPose FastPose keys: preact.* (SE fc as Sequential 0/2), duc1, duc2, conv_out."""
    state = renamed(
        model.state_dict(),
        {"backbone.": "preact.", "head.duc1.": "duc1.", "head.duc2.": "duc2.", "head.final_layer.": "conv_out."},
        {".se.fc1.": ".se.fc.0.", ".se.fc2.": ".se.fc.2."},
    )
    assert any(k.startswith("preact.layer1.0.se.fc.0.") for k in state)
    torch.save(state, path)
    return path


def mmpose_checkpoint(model: nn.Module, path):
    """mmpose 0.x: {"state_dict": backbone.*, keypoint_head.multi_final_layers.*}, meta beside."""
    state = renamed(model.state_dict(), {"head.final_layers.": "keypoint_head.multi_final_layers."})
    torch.save({"meta": {"epoch": 210}, "state_dict": state}, path)
    return path


def onnx_outputs(path, images: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": images})))


def assert_valid_export(report, path, params, info, fmt):
    onnx.checker.check_model(str(path), full_check=True)
    proto = onnx.load(str(path), load_external_data=False)
    assert [i.name for i in proto.graph.input] == ["image"] == report["input_names"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    w, h = params.data.input_size
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, h, w]
    assert [o.name for o in proto.graph.output] == report["output_names"]
    assert report["opset"] == 17 and proto.opset_import[0].version == 17
    assert proto.ir_version == report["ir_version"] <= 13
    assert report["checkpoint_format"] == fmt
    parity = report["parity"]
    assert sorted(parity["batches"]) == [1, 5]
    assert all(d <= TOLERANCE for batch in parity["batches"].values() for d in batch.values())
    assert report["parity_max_abs_diff"] <= TOLERANCE and parity["ok"]
    # the user's path both ways: Predictor on PyTorch and on the file, flip test off and on
    assert parity["predictor"].keys() == {"flip off", "flip on"}
    assert all(found["ok"] and found["median_px"] <= 1e-3 for found in parity["predictor"].values())
    assert read_metadata(path)["joint_names"] == list(info.joint_names)


@pytest.fixture(scope="module")
def fastpose18(tmp_path_factory):
    """FastPose-18 from a posecore checkpoint with decoded outputs: (params, model, path, report)."""
    folder = tmp_path_factory.mktemp("fastpose18")
    params = small_params("fastpose")
    model = randomized_model(params)
    checkpoint = posecore_checkpoint(model, params, folder / "best.pt")
    path = folder / "fastpose.onnx"
    report = export_onnx(params, checkpoint, path, decode=True, parity_batch_sizes=(1, 5))
    return params, model, path, report


def test_fastpose18_matches_pytorch_and_decodes_like_posecore(fastpose18):
    params, model, path, report = fastpose18
    assert_valid_export(report, path, params, COCO, "posecore")
    assert report["output_names"] == ["heatmaps", "keypoints", "scores"]
    images = torch.randn(5, 3, 96, 64, generator=torch.Generator().manual_seed(3)).numpy()
    out = onnx_outputs(path, images)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    assert np.abs(out["heatmaps"] - expected).max() <= TOLERANCE
    coords, scores = codec.decode_heatmaps(out["heatmaps"])
    assert out["keypoints"].shape == (5, 17, 2)
    np.testing.assert_allclose(out["keypoints"], coords * 4, atol=1e-3)
    np.testing.assert_allclose(out["scores"], scores, atol=1e-6)
    # the quarter offset is really exercised, not only integer argmax positions
    assert np.any(np.abs(coords - np.round(coords)) > 0.2)


@pytest.mark.parametrize("name, depth, fmt", [("fastpose", 50, "alphapose"), ("simplebaseline", 18, "posecore")])
def test_resnet_models_export_from_their_checkpoints(tmp_path, name, depth, fmt):
    params = small_params(name, depth)
    model = randomized_model(params, seed=1)
    if fmt == "alphapose":
        checkpoint = alphapose_checkpoint(model, tmp_path / "fastpose_res50.pth")
    else:
        checkpoint = posecore_checkpoint(model, params, tmp_path / "last.pt")
    path = tmp_path / f"{name}.onnx"
    report = export_onnx(params, checkpoint, path, parity_batch_sizes=(1, 5))
    assert_valid_export(report, path, params, COCO, fmt)
    # the exported weights are the checkpoint's: ONNX reproduces the model that wrote it
    assert check_parity(model, path, batch_sizes=(2,))["max_abs_diff"] <= TOLERANCE


def test_checkpoint_export_does_not_read_the_params_init_weights(tmp_path):
    params = posecore.load_params(
        small_params("simplebaseline"),
        {
            "model.pretrained": str(tmp_path / "absent_resnet18.pth"),
            "model.init_checkpoint": str(tmp_path / "absent_init.pt"),
        },
    )
    model = randomized_model(small_params("simplebaseline"), seed=2)
    checkpoint = posecore_checkpoint(model, params, tmp_path / "best.pt")
    export_onnx(params, checkpoint, tmp_path / "model.onnx", parity_batch_sizes=())
    assert check_parity(model, tmp_path / "model.onnx", batch_sizes=(1,))["max_abs_diff"] <= TOLERANCE


def test_hourglass52_from_mmpose_checkpoint_matches_pytorch(tmp_path):
    params = posecore.load_params("hourglass", {"data.input_size": [128, 128], "data.heatmap_size": [32, 32]})
    model = randomized_model(params, seed=2)
    checkpoint = mmpose_checkpoint(model, tmp_path / "hourglass52_mpii_384x384.pth")
    path = tmp_path / "hourglass.onnx"
    report = export_onnx(params, checkpoint, path, parity_batch_sizes=(1, 5))
    assert_valid_export(report, path, params, MPII, "mmpose-0.x")
    assert check_parity(model, path, batch_sizes=(1,))["max_abs_diff"] <= TOLERANCE


@pytest.mark.parametrize("opset", [MIN_OPSET, MAX_OPSET])
def test_both_ends_of_the_opset_range_export_decode_and_run(fastpose18, tmp_path, opset):
    params, model, _, _ = fastpose18
    checkpoint = posecore_checkpoint(model, params, tmp_path / "best.pt")
    path = tmp_path / f"opset{opset}.onnx"
    report = export_onnx(params, checkpoint, path, opset=opset, decode=True)
    assert onnx.load(str(path)).opset_import[0].version == opset
    batch2 = report["parity"]["batches"][2]
    assert batch2["heatmaps"] <= TOLERANCE and batch2["keypoints"] <= 1e-3


def test_metadata_round_trip_and_plain_onnxruntime_reading(fastpose18):
    params, _, path, _ = fastpose18
    metadata = read_metadata(path)
    # a heatmap codec's fp32 file: every key but SimCC's and the lower precisions' own
    assert set(metadata) == {key for key in METADATA_KEYS if not key.startswith("simcc_")} - {
        "precision",
        "calibration",
    }
    assert metadata["model_name"] == "fastpose" and metadata["dataset"] == "coco"
    assert metadata["joint_names"] == list(COCO.joint_names)
    assert [tuple(p) for p in metadata["flip_pairs"]] == list(COCO.flip_pairs)
    assert [tuple(p) for p in metadata["skeleton"]] == list(COCO.skeleton)
    assert metadata["input_size"] == [64, 96] and metadata["heatmap_size"] == [16, 24]
    assert metadata["heatmap_stride"] == [4.0, 4.0]
    assert metadata["mean"] == params.data.mean and metadata["std"] == params.data.std
    assert metadata["bbox_padding"] == params.data.bbox_padding
    assert metadata["outputs"] == ["heatmaps", "keypoints", "scores"]
    assert metadata["checkpoint"] == "best.pt" and metadata["checkpoint_format"] == "posecore"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    raw = session.get_modelmeta().custom_metadata_map
    assert raw["joint_names"].startswith('["nose"')  # JSON text, readable without posecore


def load_example():
    spec = importlib.util.spec_from_file_location("onnx_infer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_uses_only_numpy_onnxruntime_and_opencv():
    tree = ast.parse(EXAMPLE.read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"argparse", "json", "pathlib", "cv2", "numpy", "onnxruntime"}
    assert len(EXAMPLE.read_text().splitlines()) <= 110  # short enough to read in one sitting


def test_example_decode_equals_posecore_decode():
    example = load_example()
    rng = np.random.default_rng(0)
    heatmaps = rng.normal(size=(3, 17, 24, 16)).astype(np.float32)
    heatmaps[0, 0] = -1.0  # no positive maximum: no location
    heatmaps[1, 2, 10, 0] = 9.0  # maximum on the border: no quarter offset
    coords, scores = example.decode(heatmaps)
    expected, expected_scores = codec.decode_heatmaps(heatmaps)
    np.testing.assert_allclose(coords, expected, atol=1e-3)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    np.testing.assert_allclose(coords[1, 2], [0, 10])


def test_example_pipeline_matches_posecore_crop_decode_and_inverse_affine(fastpose18, tmp_path):
    _, _, path, _ = fastpose18
    example = load_example()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (7, 7), 0)
    box = [101.0, 40.0, 80.0, 150.0]  # narrower than the input ratio: the crop widens
    keypoints, scores = example.predict(session, image, box)

    center, scale = geometry.box_to_center_scale(box, 64 / 96, padding=1.25)
    matrix = geometry.affine_matrix(center, scale, 0.0, (64, 96))
    np.testing.assert_allclose(example.crop_matrix(box, read_metadata(path)), matrix, atol=1e-5)
    crop = cv2.warpAffine(image, example.crop_matrix(box, read_metadata(path)), (64, 96), flags=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    normalized = (rgb - np.float32([0.406, 0.457, 0.480])).transpose(2, 0, 1)[None]
    heatmaps = onnx_outputs(path, np.ascontiguousarray(normalized, dtype=np.float32))["heatmaps"]
    coords, expected_scores = codec.decode_heatmaps(heatmaps)
    expected = geometry.heatmap_to_image(coords, center[None], scale[None], (16, 24))[0]
    np.testing.assert_allclose(keypoints, expected, atol=1e-3)
    np.testing.assert_allclose(scores, expected_scores[0], atol=1e-6)

    # the script end to end: same numbers printed, a PNG of the image's size written
    image_path, out_path = tmp_path / "person.png", tmp_path / "figures" / "pose.png"
    cv2.imwrite(str(image_path), image)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(path), str(image_path), "--box", *map(str, box), "--out", str(out_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = np.array([line.split()[1:3] for line in result.stdout.splitlines()], dtype=float)
    np.testing.assert_allclose(printed, keypoints, atol=0.06)
    assert cv2.imread(str(out_path)).shape == image.shape


def test_export_and_example_decode_the_way_the_checkpoint_was_trained(fastpose18, tmp_path):
    """A udp-trained checkpoint exported with msra params: the trained codec wins (metadata,
    in-graph keypoints, the example's crop)."""
    params, model, _, _ = fastpose18
    trained = posecore.load_params(params, {"data.codec": "udp"})
    path = tmp_path / "udp.onnx"
    # parity of the in-graph decode: below, against its torch twin
    export_onnx(
        params, posecore_checkpoint(model, trained, tmp_path / "best.pt"), path, decode=True, parity_batch_sizes=()
    )
    metadata = read_metadata(path)
    assert metadata["codec"] == "udp" and metadata["heatmap_stride"] == [63 / 15, 95 / 23]
    example = load_example()
    rng = np.random.default_rng(2)
    image = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (7, 7), 0)
    box = [101.0, 40.0, 80.0, 150.0]
    keypoints, scores = example.predict(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), image, box)
    center, scale = geometry.box_to_center_scale(box, 64 / 96, padding=1.25)
    udp = codec.UDPHeatmap((64, 96), (16, 24))
    np.testing.assert_allclose(example.crop_matrix(box, metadata), udp.crop_matrix(center, scale), atol=1e-5)
    crop = cv2.warpAffine(image, udp.crop_matrix(center, scale), (64, 96), flags=cv2.INTER_LINEAR)
    normalized = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255 - np.float32([0.406, 0.457, 0.480])
    heatmaps = onnx_outputs(path, np.ascontiguousarray(normalized.transpose(2, 0, 1)[None]))["heatmaps"]
    # random weights give far-from-Gaussian maps, where float32 and float64 Newton steps part:
    # the in-graph decode is compared with its torch twin (the twin with numpy: test_geometry_codec)
    coords, expected_scores = udp.decode_torch(torch.from_numpy(heatmaps))
    expected = udp.to_image(coords.numpy(), center[None], scale[None])[0]
    np.testing.assert_allclose(keypoints, expected, atol=1e-2)
    np.testing.assert_allclose(scores, expected_scores[0], atol=1e-6)


def test_fixed_batch_export_and_latency_rows(fastpose18, tmp_path):
    params, _, dynamic_path, _ = fastpose18
    path = tmp_path / "fixed.onnx"
    report = export_onnx(params, None, path, dynamic_batch=False)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1 and report["parity"]["batches"].keys() == {1}
    with pytest.raises(ValueError, match="fixed batch of 1"):
        latency_table(params, path, batch_sizes=(1, 8), repeats=1)
    rows = latency_table(params, dynamic_path, batch_sizes=(1, 3), repeats=2, warmup=1)
    assert [row["batch"] for row in rows] == [1, 3]
    assert all(row["pytorch_ms"] > 0 and row["onnxruntime_ms"] > 0 for row in rows)


def test_bad_inputs_are_clear_errors_and_write_nothing(tmp_path, outputs):
    params = small_params("fastpose")
    path = tmp_path / "model.onnx"
    for opset in (MIN_OPSET - 1, MAX_OPSET + 1):
        with pytest.raises(ValueError, match=rf"opset {opset}.*{MIN_OPSET}\.\.{MAX_OPSET}"):
            export_onnx(params, None, path, opset=opset)
    unknown = tmp_path / "weights.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, unknown)
    with pytest.raises(ValueError, match="unrecognized checkpoint"):
        export_onnx(params, unknown, path)
    other = small_params("simplebaseline")
    checkpoint = posecore_checkpoint(posecore.build_model(other), other, tmp_path / "sb.pt")
    with pytest.raises(ValueError, match="simplebaseline"):
        export_onnx(params, checkpoint, path)
    mpii_params = posecore.load_params(params)
    mpii_params.data.dataset = "mpii"  # load_params refuses this; export_onnx must too
    with pytest.raises(ValueError, match="model.num_joints is 17 but (data.dataset )?'?mpii'? has 16"):
        export_onnx(mpii_params, None, path)
    with pytest.raises(ValueError, match="run_name"):
        export_onnx(params, "best", path)
    with pytest.raises(FileNotFoundError, match="checkpoints/last.pt"):
        export_onnx(params, "last", path, run_name="no-such-run")
    assert not path.exists() and not list(tmp_path.glob(".model.onnx.*"))


# ----------------------------------------------------------------------------- boxes given by hand


def _onnx_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location("onnx_infer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "box",
    [
        [10, 10, 0, 50],
        [10, 10, 40, -5],
        [float("nan"), 10, 40, 50],
        [10, 10, float("inf"), 50],
        [80, 10, 40, 50],
        [10, 100, 40, 50],
        [-50, 10, 50, 50],
        [10, -60, 40, 50],
    ],
)
def test_bad_hand_boxes_are_refused(box):
    image = np.zeros((100, 80, 3), np.uint8)  # h 100, w 80
    with pytest.raises(SystemExit, match=r"--box .*W, H > 0.*80 x 100 image"):
        _onnx_example().check_box(box, image)


def test_partly_outside_hand_box_is_fine():
    _onnx_example().check_box([-20, 90, 40, 50], np.zeros((100, 80, 3), np.uint8))
