"""fp16 and int8 copies of an export: they load through Predictor.from_onnx and the standalone
example, keep the metadata, predict finite keypoints close to fp32's; int8 is small.

FastPose-18 at 64x96 (random weights at PyTorch's scale, random BatchNorm statistics) keeps the
conversions fast; RTMPose-t (3.3 M parameters, the graph the speed figures are about) checks the
int8 file's size. Calibration images are the synthetic dataset's (people drawn as limbs)."""

from __future__ import annotations

import importlib.util
import json
import time

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import randomized_model, tiny_synthetic

import posecore
from posecore.export import export_onnx
from posecore.files import REPO_ROOT
from posecore.onnx_metadata import read_metadata
from posecore.precision import convert_fp16, quantize_int8
from posecore.predictor import Predictor
from posecore.runs import Run

SMALL = {"model.name": "fastpose", "model.depth": 18, "data.input_size": [64, 96], "data.heatmap_size": [16, 24]}
# measured on the seeded model and image below (3 people, flip test, 102 coordinates): fp16 0.0 px
# everywhere and scores within 2e-5; int8 median and 90th percentile 0.0 px, max 23 px (one joint
# of an untrained model whose argmax moves between two near-equal heatmap peaks), scores within 5e-4
FP16_MAX_PX = 1.0
INT8_P90_PX = 1.0


def needs_fp16():
    return pytest.importorskip("onnxconverter_common", reason="fp16 export needs onnxconverter-common")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return tiny_synthetic(tmp_path_factory.mktemp("precision-data"), num_train=6)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory, synthetic):
    """(params reading the synthetic data, fp32 export with the in-graph decode)."""
    folder = tmp_path_factory.mktemp("precision")
    params = posecore.load_params("fastpose", {**SMALL, "data.root": str(synthetic)})
    model = randomized_model(params)
    checkpoint = folder / "best.pt"
    torch.save(
        {
            "format": "posecore/1",
            "model_name": "fastpose",
            "num_joints": 17,
            "model": model.state_dict(),
            "params": params.to_dict(),
            "epoch": 1,
            "step": 1,
        },
        checkpoint,
    )
    report = export_onnx(params, checkpoint, folder / "model.onnx", decode=True, parity_batch_sizes=())
    return params, report["path"]


def sample(seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (240, 200, 3), dtype=np.uint8)
    cv2.line(image, (60, 40), (140, 200), (255, 255, 255), 9)  # something with edges to look at
    boxes = np.array([[20.0, 10.0, 180.0, 230.0], [50.0, 30.0, 130.0, 150.0], [0.0, 0.0, 200.0, 240.0]])
    return image, boxes


def differences(path, reference_path):
    image, boxes = sample()
    ours = Predictor.from_onnx(path, device="cpu", threads=1)(image, boxes, flip=True)
    theirs = Predictor.from_onnx(reference_path, device="cpu", threads=1)(image, boxes, flip=True)
    assert ours.keypoints.shape == theirs.keypoints.shape == (3, 17, 2)
    assert np.isfinite(ours.keypoints).all() and np.isfinite(ours.scores).all()
    return np.abs(ours.keypoints - theirs.keypoints), np.abs(ours.scores - theirs.scores)


def example_module():
    spec = importlib.util.spec_from_file_location("onnx_infer", REPO_ROOT / "examples" / "onnx_infer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_metadata(path, fp32_path, precision):
    variant, original = read_metadata(path), read_metadata(fp32_path)
    assert variant.pop("precision") == precision
    variant.pop("calibration", None)
    assert variant == original
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == original["outputs"]
    assert all(
        o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in [*proto.graph.input, *proto.graph.output]
    )


def test_a_runs_exports_are_named_by_precision(fp32, tmp_path):
    assert [Run("x").onnx_path(p).name for p in Run.PRECISIONS] == ["model.onnx", "model-fp16.onnx", "model-int8.onnx"]
    with pytest.raises(ValueError, match="precision is one of"):
        Run("x").onnx_path("bf16")
    params, _ = fp32
    with pytest.raises(ValueError, match="precision 'bf16' is not one of"):
        export_onnx(params, None, tmp_path / "x.onnx", precision="bf16")


def test_fp16_keeps_metadata_and_predicts_what_fp32_does(fp32):
    needs_fp16()
    _, path = fp32
    report = convert_fp16(path, path.replace(".onnx", "-fp16.onnx"))
    assert report["path"].endswith("-fp16.onnx") and 0.45 < report["size_ratio"] < 0.6
    assert_same_metadata(report["path"], path, "fp16")
    proto = onnx.load(report["path"])
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    keypoints, scores = differences(report["path"], path)
    assert keypoints.max() <= FP16_MAX_PX and scores.max() < 1e-3
    # the standalone example reads the in-graph decode of the fp16 file
    session = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
    image, boxes = sample()
    xy, point_scores = example_module().predict(session, image, [20.0, 10.0, 160.0, 220.0])
    assert xy.shape == (17, 2) and np.isfinite(xy).all() and np.isfinite(point_scores).all()
    with pytest.raises(ValueError, match="already fp16"):
        convert_fp16(report["path"], path.replace(".onnx", "-again.onnx"))


def test_int8_calibrated_on_the_training_people(fp32):
    params, path = fp32
    started = time.perf_counter()
    report = quantize_int8(path, path.replace(".onnx", "-int8.onnx"), params=params, count=5, seed=3)
    assert time.perf_counter() - started < 30
    assert report["calibration"]["people"] == 5 and "training split" in report["calibration"]["source"]
    assert_same_metadata(report["path"], path, "int8")
    assert "5 person crops" in read_metadata(report["path"])["calibration"]
    proto = onnx.load(report["path"])
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # per-channel weights: the scale of a quantized conv weight has one entry per output channel
    scales = {t.name: t for t in proto.graph.initializer}
    per_channel = [
        node
        for node in proto.graph.node
        if node.op_type == "DequantizeLinear"
        and node.input[1] in scales
        and len(onnx.numpy_helper.to_array(scales[node.input[1]]).shape) == 1
        and onnx.numpy_helper.to_array(scales[node.input[1]]).size > 1
    ]
    assert per_channel
    # the heatmaps (what the Predictor decodes) come from a float conv: not rounded to 256 levels
    session = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
    crops = Predictor.from_onnx(path, device="cpu").crops(*sample())[0]
    heatmaps = session.run(["heatmaps"], {"image": crops})[0]
    assert len(np.unique(heatmaps)) > 1000
    keypoints, scores = differences(report["path"], path)
    assert np.percentile(keypoints, 90) <= INT8_P90_PX and scores.max() < 1e-2
    xy, _ = example_module().predict(session, *sample()[:1], [20.0, 10.0, 160.0, 220.0])
    assert np.isfinite(xy).all()


def test_int8_calibrated_on_a_folder_with_detector_boxes(fp32, synthetic, tmp_path):
    _, path = fp32
    images = sorted((synthetic / "images" / "train2017").glob("*.jpg")) or sorted(synthetic.rglob("*.jpg"))
    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images[:3]:
        (folder / image.name).write_bytes(image.read_bytes())
    detections = [
        {"image_id": image.name, "category_id": 1, "bbox": [4, 4, 40, 50], "score": 0.9} for image in images[:3]
    ]
    detections.append({"image_id": images[0].name, "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.1})
    (tmp_path / "boxes.json").write_text(json.dumps(detections))
    report = quantize_int8(path, tmp_path / "int8-det.onnx", calibration=folder, detector=tmp_path / "boxes.json")
    assert report["calibration"]["people"] == 3 and report["calibration"]["images"] == 3  # the 0.1 box left out
    whole = quantize_int8(path, tmp_path / "int8-whole.onnx", calibration=[folder / image.name for image in images[:2]])
    assert whole["calibration"]["people"] == 2
    assert "whole-image" in read_metadata(whole["path"])["calibration"]
    assert np.percentile(differences(whole["path"], path)[0], 90) <= INT8_P90_PX


def test_int8_needs_people_and_an_fp32_file(fp32, tmp_path):
    _, path = fp32
    out = tmp_path / "int8.onnx"
    with pytest.raises(ValueError, match="needs person crops"):
        quantize_int8(path, out)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no images"):
        quantize_int8(path, out, calibration=empty)
    with pytest.raises(ValueError, match="positive integer"):
        quantize_int8(path, out, calibration=[path], count=0)
    params, _ = fp32
    old = export_onnx(params, None, tmp_path / "opset11.onnx", opset=11, parity_batch_sizes=())["path"]
    with pytest.raises(ValueError, match="opset 11: per-channel int8 needs opset >= 13"):
        quantize_int8(old, out, params=params, count=2)
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.zeros((40, 30, 3), np.uint8))
    (tmp_path / "none.json").write_text(json.dumps([{"image_id": "other.png", "bbox": [1, 1, 9, 9], "score": 1.0}]))
    with pytest.raises(ValueError, match="no calibration people"):
        quantize_int8(path, out, calibration=[image], detector=tmp_path / "none.json")


def test_predictor_threads(fp32):
    _, path = fp32
    image, boxes = sample()
    one = Predictor.from_onnx(path, device="cpu", threads=1)(image, boxes)
    default = Predictor.from_onnx(path, device="cpu")(image, boxes)
    np.testing.assert_allclose(one.keypoints, default.keypoints, atol=1e-4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads"):
            Predictor.from_onnx(path, device="cpu", threads=bad)


def test_rtmpose_t_int8_is_under_045x_of_fp32(tmp_path, synthetic):
    """The graph of the speed figures: per-channel int8 weights with the output layers and the
    input convolution kept float."""
    params = posecore.load_params("rtmpose", {"model.variant": "t", "data.root": str(synthetic)})
    checkpoint = tmp_path / "rtmpose-t.pth"
    torch.save({"state_dict": posecore.build_model(params).state_dict()}, checkpoint)
    params = posecore.load_params(params, {"export.calibration_images": 8})
    report = export_onnx(params, checkpoint, tmp_path / "model-int8.onnx", precision="int8", parity_batch_sizes=())
    variant = report["variant"]
    assert report["precision"] == "int8" and variant["path"] == str(tmp_path / "model-int8.onnx")
    assert variant["size_ratio"] <= 0.45, variant
    assert variant["calibration"]["people"] == 8 and not (tmp_path / ".model-int8.fp32.onnx").exists()
    assert np.isfinite(variant["keypoints_vs_fp32"]["flip on"]["median_px"])
    predicted = Predictor.from_onnx(variant["path"], device="cpu", threads=1)(*sample())
    assert np.isfinite(predicted.keypoints).all()
