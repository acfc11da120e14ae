"""The ONNX metadata contract: what a posecore export records so that it decodes without posecore.

An export's `metadata_props` hold JSON-encoded values under the keys of METADATA_KEYS: the model,
the keypoint set, the crop and normalization, the codec (its own keys are the codec's
`metadata_keys`, posecore.codec) and the flip test. `build_metadata` writes them (posecore.export),
`read_metadata` decodes them, `check_pose_metadata` checks the values a Predictor runs with
(posecore.predictor.Predictor.from_onnx) and `check_graph` that they agree with the graph (its
input's height and width, each output's shape: the codec's `output_shapes` for the joint count),
each naming the file and the key. This module sits below both the exporter and the predictor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import posecore
from posecore.codec import CODECS, Codec, codec_class, metadata_codec_name
from posecore.codec.base import numbers_fit
from posecore.keypoints import check_num_joints
from posecore.params import Params
from posecore.runs import Run

INPUT_NAME = "image"
DECODE_OUTPUTS = ("keypoints", "scores")  # the in-graph decode's outputs (export_onnx(decode=True))

GENERAL_KEYS = {
    "model_name": "key of posecore.models.MODELS, e.g. 'fastpose'",
    "dataset": "'coco', 'mpii' or 'custom' (a COCO-format dataset's own joints): the keypoint convention",
    "joint_names": "list of K joint names, in heatmap channel order",
    "flip_pairs": "list of [left, right] joint index pairs (for flip test)",
    "skeleton": "list of [a, b] joint index pairs to draw as limbs",
    "oks_sigmas": "OKS sigma per joint (COCO AP's keypoint similarity; tracking)",
    "input_size": "[w, h] of the network input in pixels",
    "codec": f"codec of training (posecore.codec): one of {sorted(CODECS)}",
    "shift_heatmap": "eval.shift_heatmap of the export: whether the flip test shifts the mirrored prediction",
    "flip_shift": (
        "units the flip test moves the mirrored-back prediction right (the codec's flip shift; "
        "0 with shift_heatmap off)"
    ),
    "mean": "[r, g, b] subtracted from rgb / 255",
    "std": "[r, g, b] dividing (rgb / 255 - mean)",
    "normalization": "the input formula, in words",
    "bbox_padding": "box enlargement used in training crops (crop = box at the input aspect ratio * padding)",
    "crop": "how a person box becomes the network input, in words",
    "decode": "how 'keypoints' derive from the model's outputs, in words",
    "outputs": "list of output names",
    "checkpoint": "file name of the exported weights, or null for untrained weights",
    "checkpoint_format": "format detected by posecore.checkpoints.load_checkpoint, or null",
    "posecore_version": "version of posecore that wrote the file",
    "precision": (
        "'fp32' (absent in fp32 exports), 'fp16' (float16 network, float32 input and outputs) or "
        "'int8' (QDQ, per-channel int8 weights, uint8 activations); posecore.precision"
    ),
    "calibration": "int8: the person crops its activation ranges were measured on, in words",
}
PRECISIONS = Run.PRECISIONS  # a run's exports are named by precision
# every key an export may carry: the general ones and each codec's own
METADATA_KEYS = {
    **GENERAL_KEYS,
    **{key: text for codec in CODECS.values() for key, text in codec.metadata_keys.items()},
}
# what a Predictor runs with, besides the codec's required keys
POSE_METADATA = ("input_size", "mean", "std", "bbox_padding", "joint_names", "flip_pairs", "skeleton", "dataset")


def build_metadata(
    params: Params, codec: Codec, output_names: list[str], checkpoint: Path | None, checkpoint_format: str | None
) -> dict[str, Any]:
    """The metadata of an export of params' model with `codec` (METADATA_KEYS)."""
    info = check_num_joints(params)
    return {
        "model_name": params.model.name,
        **info.record(),  # dataset, joint_names, flip_pairs, skeleton, oks_sigmas
        "input_size": list(params.data.input_size),
        **codec.metadata(),  # codec, its sizes, sigma(s) and decoding options
        # flip test: the mirrored prediction moves flip_shift units right (eval.shift_heatmap)
        "shift_heatmap": params.eval.shift_heatmap,
        "flip_shift": codec.flip_shift(params.eval.shift_heatmap),
        "mean": list(params.data.mean),
        "std": list(params.data.std),
        "normalization": "RGB float32 NCHW, (rgb / 255 - mean) / std",
        "bbox_padding": params.data.bbox_padding,
        **codec.describe(),  # crop and decode, in words
        "outputs": output_names,
        "checkpoint": checkpoint.name if checkpoint else None,
        "checkpoint_format": checkpoint_format,
        # getattr: a stale editable install can import posecore as a namespace package
        "posecore_version": getattr(posecore, "__version__", None),
    }


def set_metadata(proto, metadata: dict[str, Any]) -> None:
    """Replace a ModelProto's metadata_props with `metadata`, each value JSON-encoded."""
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """metadata_props of an ONNX file as a dict, JSON values decoded (others kept as text); a
    file that is not ONNX is a ValueError naming it."""
    import onnx  # optional dependency (the export extra), imported on use

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except OSError:
        raise
    except Exception as error:  # protobuf's DecodeError and friends
        raise ValueError(
            f"{path} is not an ONNX model ({type(error).__name__}: {error}); export one with posecore.export_onnx"
        ) from None
    metadata = {}
    for entry in proto.metadata_props:
        try:
            metadata[entry.key] = json.loads(entry.value)
        except (json.JSONDecodeError, RecursionError):  # not JSON, or nested past the parser's depth
            metadata[entry.key] = entry.value
    return metadata


def check_pose_metadata(metadata: dict[str, Any], path: str | os.PathLike) -> None:
    """The metadata a pose model is run with (inference reads nothing else), each value checked:
    a ValueError naming the file, the key and what was expected. Besides POSE_METADATA, the
    codec's own keys (its required_metadata, checked by its check_metadata)."""

    def fail(key: str, expected: str) -> None:
        raise ValueError(
            f"{path}: metadata {key} is {_shown(metadata.get(key))}, expected {expected}; "
            "re-export the model with posecore.export_onnx"
        )

    name = metadata_codec_name(metadata)
    if not isinstance(name, str) or name not in CODECS:
        fail("codec", f"one of {sorted(CODECS)}")
    codec = codec_class(name)
    missing = [key for key in (*POSE_METADATA, *codec.required_metadata) if key not in metadata]
    if missing:
        raise ValueError(
            f"{path} lacks the metadata {missing}: it was not exported by posecore (posecore.export_onnx writes them)"
        )
    if not numbers_fit(metadata["input_size"], 2, integer=True, low=1, high=65536):
        fail("input_size", "two positive integers (w, h)")
    if not numbers_fit(metadata["mean"], 3, low=-1e3, high=1e3):
        fail("mean", "3 numbers (R, G, B)")
    if not numbers_fit(metadata["std"], 3, low=1e-12, high=1e3):
        fail("std", "3 positive numbers (R, G, B)")
    if not numbers_fit([metadata["bbox_padding"]], 1, low=1e-6, high=100):
        fail("bbox_padding", "a positive number")
    if metadata.get("precision", "fp32") not in PRECISIONS:
        fail("precision", f"one of {list(PRECISIONS)}")
    if not isinstance(metadata.get("shift_heatmap", True), bool):
        fail("shift_heatmap", "true or false")
    codec.check_metadata(metadata, fail)


def check_graph(
    metadata: dict[str, Any],
    codec: Codec,
    num_joints: int,
    inputs: list[tuple[str, list]],
    outputs: list[tuple[str, list]],
    path: str | os.PathLike,
) -> None:
    """The graph's input and outputs against checked metadata (check_pose_metadata) and the codec
    they describe: one input [N, 3, h, w] for input_size (w, h); the model's outputs, in order,
    [N, *shape] for each shape of codec.output_shapes(num_joints) (heatmap_size, the SimCC
    lengths, the joint count of joint_names); "keypoints" [N, K, 2] and "scores" [N, K] when the
    graph decodes; the "outputs" key, when there, the graph's output names. `inputs` /
    `outputs`: (name, shape) as onnxruntime lists them, a dimension an int or a symbol (a symbol
    fits any size). A ValueError naming the file, what the graph has and what the metadata say."""

    def contradiction(what: str, found: str, expected: str) -> None:
        raise ValueError(
            f"{path}: the metadata contradict the graph: {what} is {found} in the graph, the metadata say "
            f"{expected}; re-export the model with posecore.export_onnx (its metadata describe its graph)"
        )

    width, height = metadata["input_size"]
    if len(inputs) != 1 or not _fits(inputs[0][1], (3, height, width)):
        found = ", ".join(f"{name!r} {_dims(shape)}" for name, shape in inputs) or "none"
        contradiction("the input", found, f"one image [N, 3, {height}, {width}] (input_size [{width}, {height}])")
    names = [name for name, _ in outputs]
    if "outputs" in metadata and metadata["outputs"] != names:
        contradiction("the list of outputs", repr(names), f"{_shown(metadata['outputs'])} (outputs)")
    expected = codec.output_shapes(num_joints)
    model_outputs = [(name, shape) for name, shape in outputs if name not in DECODE_OUTPUTS]
    keys = ", ".join(f"{key} {_shown(metadata[key])}" for key in codec.required_metadata if key in metadata)
    because = f"codec {codec.name}, {keys}, {num_joints} joint_names" if keys else f"{num_joints} joint_names"
    if len(model_outputs) != len(expected):
        contradiction("the model's outputs", repr([name for name, _ in model_outputs]), f"{list(expected)} ({because})")
    for (name, shape), (own_name, own_shape) in zip(model_outputs, expected.items()):
        if not _fits(shape, own_shape):
            contradiction(
                f"output {name!r}", _dims(shape), f"{own_name} [N, {', '.join(map(str, own_shape))}] ({because})"
            )
    decoded = {DECODE_OUTPUTS[0]: (num_joints, 2), DECODE_OUTPUTS[1]: (num_joints,)}
    for name, shape in outputs:
        if name in decoded and not _fits(shape, decoded[name]):
            contradiction(
                f"output {name!r}",
                _dims(shape),
                f"[N, {', '.join(map(str, decoded[name]))}] ({num_joints} joint_names)",
            )


def _fits(shape: Any, expected: tuple[int, ...]) -> bool:
    """Whether a graph shape [N, *dims] fits `expected` (the dims without the batch); a symbolic
    dimension (text or None) fits any size."""
    return (
        isinstance(shape, (list, tuple))
        and len(shape) == len(expected) + 1
        and all(not isinstance(dim, int) or dim == size for dim, size in zip(shape[1:], expected))
    )


def _dims(shape: Any) -> str:
    return (
        "[" + ", ".join("N" if i == 0 else str(dim) for i, dim in enumerate(shape)) + "]"
        if isinstance(shape, (list, tuple))
        else repr(shape)
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
