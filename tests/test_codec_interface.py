"""The codec interface: every codec provides it, and a new codec (tests/toy_codec.py: one module
plus its registry line) trains, exports, predicts and evaluates without any other module naming it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import TINY, tiny_synthetic
from toy_codec import CentroidHeatmap, register

import posecore
from posecore import optim
from posecore.codec import CODECS, Codec, build_codec, codec_from_metadata
from posecore.onnx_metadata import read_metadata
from posecore.params import ParamsError, load_params
from posecore.predictor import Predictor


def test_every_registered_codec_provides_the_interface():
    params = load_params("fastpose")
    for name, codec_type in CODECS.items():
        assert codec_type.name == name
        assert set(codec_type.required_metadata) <= set(codec_type.metadata_keys)
        assert codec_type.default_loss in optim.LOSSES
        overrides = {"data.codec": name, "train.loss": "auto", **({"model.name": "rtmpose"} if name == "simcc" else {})}
        codec = build_codec(load_params(params, overrides))
        assert isinstance(codec, Codec), name
        shapes = codec.output_shapes(17)
        assert tuple(shapes) == codec_type.output_names and all(shape[0] == 17 for shape in shapes.values())
        assert set(codec.describe()) == {"crop", "decode"}
        metadata = {"input_size": list(codec.input_size), **codec.metadata()}
        assert codec_from_metadata(metadata) == codec
        codec_type.check_metadata(metadata, lambda key, expected, name=name: pytest.fail(f"{name}: {key} {expected}"))


def test_an_unknown_codec_is_refused_by_name():
    with pytest.raises(ParamsError, match="data.codec must be one of"):
        load_params("fastpose", {"data.codec": "centroid"})
    with pytest.raises(ValueError, match="metadata codec must be one of"):
        codec_from_metadata({"codec": ["msra"], "input_size": [8, 8]})


@pytest.fixture
def centroid(monkeypatch):
    """The toy codec registered for one test (its registry line, on a patched registry)."""
    registry = dict(CODECS)
    register(registry)
    for name, codec_type in registry.items():
        monkeypatch.setitem(CODECS, name, codec_type)
    return CentroidHeatmap


def test_a_new_codec_trains_exports_predicts_and_evaluates(centroid, tmp_path, outputs):
    root = tiny_synthetic(tmp_path)
    params = load_params("demo", {**TINY, "data.root": str(root), "data.codec": "centroid", "data.sigma": 1.0})
    codec = build_codec(params)
    assert isinstance(codec, centroid) and isinstance(codec, Codec)
    assert optim.loss_name(params) == "joints_mse"  # train.loss auto asks the codec

    # evaluation: the oracle decodes the codec's own targets through evaluation's path
    metrics = posecore.evaluate(
        load_params(params, {"eval.oracle": True}), None, run_name="centroid-oracle", verbose=False
    )
    assert metrics["AP"] > 0.9

    # training: a few steps on its targets
    trained = posecore.train(
        load_params(params, {"train.epochs": 1, "train.max_steps": 2, "train.perf_warmup_steps": 0}),
        run_name="centroid-train",
    )
    assert trained["steps"] == 2 and np.isfinite(trained["loss"])

    # export and prediction: the file names the codec, and Predictor.from_onnx decodes with it
    path = tmp_path / "centroid.onnx"
    report = posecore.export_onnx(params, None, path, decode=True)
    metadata = read_metadata(path)
    assert metadata["codec"] == "centroid" and metadata["sigma"] == 1.0
    assert report["parity"]["ok"] and all(case["ok"] for case in report["parity"]["predictor"].values())
    predictor = Predictor.from_onnx(path)
    assert isinstance(predictor.codec, centroid)
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    poses = predictor(image, np.array([[4.0, 4.0, 60.0, 60.0]]), flip=True)
    assert poses.keypoints.shape == (1, 17, 2) and np.isfinite(poses.keypoints).all()
    # the same keypoints from the PyTorch model through the same codec
    torch.manual_seed(0)
    pytorch = Predictor.from_checkpoint(params, None, device="cpu")
    assert pytorch.codec == predictor.codec
