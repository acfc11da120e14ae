"""ONNX export of the pose models, with the metadata a consumer needs to decode without posecore.

The graph takes "image" float32 [N, 3, H, W] (RGB, (rgb / 255 - mean) / std, H/W = params'
input size) and returns the model's output under the codec's names: "heatmaps" float32
[N, K, Hh, Wh], or for the simcc codec (RTMPose) "simcc_x" [N, K, Wx] and "simcc_y" [N, K, Wy].
With `decode=True` it also returns "keypoints" float32 [N, K, 2] (x, y in input-image pixels,
decoded by the run's codec in the graph: the codec's torch twin of evaluation's decoding) and
"scores" float32 [N, K] (heatmap maxima; SimCC: the smaller of the two axes' maxima). The codec (data.codec, the one the checkpoint was trained with) is in the
metadata with its crop convention and decoding in words.

Exporter: the TorchScript one (`dynamo=False`). On torch 2.13 it writes the requested opset
itself (11..20), exports PixelShuffle as one DepthToSpace (CRD) node with a symbolic batch, matches
eager within ~1e-6 at any batch, and takes 1.5 s (FastPose-50) / 4 s (Hourglass-52 at 128x128). The dynamo
exporter builds opset 18 and down-converts: for FastPose the conversion to 17 fails (ReduceMean
axes) and the file silently stays at opset 18, and it takes 10-15 s. Move to dynamo once the
TorchScript exporter is gone and opset >= 18 is acceptable.

`metadata_props` hold JSON-encoded values under the keys documented in METADATA_KEYS;
`read_metadata(path)` decodes them.
"""
from __future__ import annotations

import io
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import posecore
from posecore.codec import Codec, MSRAHeatmap
from posecore.environment import record_export
from posecore.keypoints import check_num_joints
from posecore.models import build_model, final_output
from posecore.params import Params
from posecore.predictor import Predictor, trained_params
from posecore.runs import Run, atomic_write, finite_number, resolve_path

MIN_OPSET = 11  # DepthToSpace CRD mode (PixelShuffle) and GatherElements (decode) need opset 11
MAX_OPSET = getattr(getattr(torch.onnx, "_constants", None), "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20)
PARITY_TOLERANCE = 1e-4
KEYPOINT_TOLERANCE_PX = 1e-3   # median keypoint difference, image pixels, of the two Predictors
INPUT_NAME = "image"
DECODE_OUTPUTS = ("keypoints", "scores")

METADATA_KEYS = {
    "model_name": "key of posecore.models.MODELS, e.g. 'fastpose'",
    "dataset": "'coco', 'mpii' or 'custom' (a COCO-format dataset's own joints): the keypoint convention",
    "joint_names": "list of K joint names, in heatmap channel order",
    "flip_pairs": "list of [left, right] joint index pairs (for flip test)",
    "skeleton": "list of [a, b] joint index pairs to draw as limbs",
    "oks_sigmas": "OKS sigma per joint (COCO AP's keypoint similarity; tracking)",
    "input_size": "[w, h] of the network input in pixels",
    "codec": "codec of training (posecore.codec): 'msra', 'dark' or 'udp' (heatmaps) or 'simcc'",
    "heatmap_size": "heatmap codecs: [w, h] of the heatmaps",
    "sigma": "heatmap codecs: Gaussian sigma of the training targets, heatmap pixels (dark / udp decoding uses it)",
    "decode_method": "eval.decode of the export: 'default' (the codec's own decoding) or 'dark'",
    "dark_kernel": "heatmap codecs: blur kernel of the Taylor decoding (dark / udp)",
    "heatmap_stride": ("heatmap codecs: [sx, sy] input pixels per heatmap pixel: input_size / heatmap_size "
                       "((input_size - 1) / (heatmap_size - 1) for the udp codec)"),
    "simcc_sigma": "simcc: [x, y] Gaussian sigma of the training labels, in bins",
    "simcc_split_ratio": "simcc: bins per input pixel",
    "simcc_size": "simcc: [Wx, Wy], the lengths of simcc_x and simcc_y",
    "shift_heatmap": "eval.shift_heatmap of the export: whether the flip test shifts the mirrored prediction",
    "flip_shift": ("heatmap pixels the flip test moves the mirrored-back prediction right (0 with "
                   "shift_heatmap off, and for udp / simcc)"),
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
}


def export_onnx(params: Params | str | os.PathLike, checkpoint: str | os.PathLike | None,
                path: str | os.PathLike, opset: int = 17, dynamic_batch: bool = True, *,
                decode: bool = False, run_name: str | None = None,
                parity_batch_sizes: Sequence[int] | None = None) -> dict[str, Any]:
    """Export params' model with `checkpoint`'s weights to `path` and check it against PyTorch.

    `params`: Params, or a name/path for posecore.load_params. `checkpoint`: a file in any format
    posecore.load_checkpoint detects, "best"/"last" of `run_name`, or None (weights as built).
    Relative paths (checkpoint, `path`) are relative to the repository root, as in params.
    `parity_batch_sizes`: batches compared with onnxruntime after writing (default (1, 2), or
    (1,) without a dynamic batch; () skips). Returns a report: path, opset, ir_version,
    input/output names, parity (the outputs' max abs diff per batch, and "predictor": the keypoints
    of Predictor on PyTorch and on the file, `check_predictor_parity`), checkpoint format.
    """
    import onnx

    check_opset(opset)
    predictor = Predictor.from_checkpoint(params, checkpoint, device="cpu", run_name=run_name)
    params, weights, checkpoint_format = predictor.params, predictor.checkpoint, predictor.checkpoint_format
    codec, model = predictor.codec, predictor.model
    if parity_batch_sizes is None:
        parity_batch_sizes = (1, 2) if dynamic_batch else (1,)
    if not dynamic_batch and any(b != 1 for b in parity_batch_sizes):
        raise ValueError(f"parity_batch_sizes {tuple(parity_batch_sizes)}: a fixed-batch export takes batch 1 only")

    output_names = [*codec.output_names, *(DECODE_OUTPUTS if decode else ())]
    metadata = build_metadata(params, codec, output_names, weights, checkpoint_format)
    w, h = params.data.input_size
    example = torch.zeros(2 if dynamic_batch else 1, 3, h, w)
    dynamic_axes = {name: {0: "batch"} for name in [INPUT_NAME, *output_names]} if dynamic_batch else None
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the exporter choice is deliberate (module docstring); its deprecation notice is noise here
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message="The feature will be removed.*")
        # the decode's blur kernel is a constant on purpose
        warnings.filterwarnings("ignore", message="torch.from_numpy results are registered as constants")
        torch.onnx.export(ExportWrapper(model, codec, decode), (example,), buffer,
                          dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
                          output_names=output_names, dynamic_axes=dynamic_axes)
    proto = onnx.load_from_string(buffer.getvalue())
    # onnxruntime rejects IR versions newer than it knows; the lowest IR that carries the opset
    # is what every runtime with that opset accepts.
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    set_metadata(proto, metadata)
    proto.doc_string = f"posecore {params.model.name} pose model; see metadata_props for decoding"
    onnx.checker.check_model(proto, full_check=True)
    path = atomic_write(resolve_path(path), proto.SerializeToString())

    if run_name:
        record_export(Run(run_name).folder, str(weights) if weights else None, path)
    parity = check_parity(model, path, parity_batch_sizes, codec=codec) if parity_batch_sizes else None
    if parity:
        parity["predictor"] = check_predictor_parity(predictor, path)
    if parity and not parity["ok"]:
        warnings.warn(f"{path}: onnxruntime differs from PyTorch by {parity['max_abs_diff']:.3g} "
                      f"(> {PARITY_TOLERANCE})", RuntimeWarning, stacklevel=2)
    for case, found in (parity or {}).get("predictor", {}).items():
        if not found["ok"]:
            warnings.warn(f"{path}: Predictor.from_onnx's keypoints differ from PyTorch's by {found['median_px']:.3g} "
                          f"px (median, {case}; > {KEYPOINT_TOLERANCE_PX})", RuntimeWarning, stacklevel=2)
    return {
        "path": str(path),
        "model_name": params.model.name,
        "opset": opset,
        "ir_version": proto.ir_version,
        "input_names": [INPUT_NAME],
        "output_names": output_names,
        "input_shape": ["batch" if dynamic_batch else 1, 3, h, w],
        "dynamic_batch": dynamic_batch,
        "checkpoint": str(weights) if weights else None,
        "checkpoint_format": checkpoint_format,
        "parity_max_abs_diff": parity["max_abs_diff"] if parity else None,
        "parity": parity,
        "size_mb": round(path.stat().st_size / 2**20, 2),
    }


class ExportWrapper(nn.Module):
    """Eval-mode model -> its output (heatmaps [N,K,Hh,Wh], or the pair simcc_x, simcc_y), then
    with `decode` keypoints [N,K,2] (input pixels) and scores [N,K]."""

    def __init__(self, model: nn.Module, codec: Codec, decode: bool):
        super().__init__()
        self.model = model
        self.codec = codec
        self.decode = decode
        self.register_buffer("input_per_unit", torch.tensor(codec.input_per_unit, dtype=torch.float32),
                             persistent=False)

    def forward(self, image: torch.Tensor):
        output = final_output(self.model(image))  # the last stack's for an hourglass
        if not self.decode:
            return output
        coords, scores = self.codec.decode_torch(output)
        parts = output if isinstance(output, tuple) else (output,)
        return (*parts, coords * self.input_per_unit, scores)


def check_opset(opset: int) -> None:
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset!r} is not supported: the exporter writes opset "
                         f"{MIN_OPSET}..{MAX_OPSET} (PixelShuffle and the decode need >= {MIN_OPSET})")


CROP_TEXT = {
    False: ("box (x, y, w, h) -> centre (x + w/2, y + h/2); widen w or h to the input aspect ratio, "
            "times bbox_padding = crop size in pixels; affine warp scaling crop width to input width, "
            "centre to input centre"),
    True: ("box (x, y, w, h) -> centre (x + w/2, y + h/2); widen w or h to the input aspect ratio, "
           "times bbox_padding = crop size in pixels; affine warp scaling crop width to input width - 1 "
           "and crop height to input height - 1 (pixel centres span the crop), centre to "
           "(input size - 1) / 2"),
}
DECODE_TEXT = {
    "default": ("argmax per heatmap; +-0.25 toward the higher neighbour in x and y when "
                "1 < x < W-1 and 1 < y < H-1; (0, 0) when the maximum <= 0; times heatmap_stride "
                "= input pixels; score = maximum"),
    "dark": ("argmax per heatmap; DARK: Gaussian blur (kernel {kernel}, zero border) rescaled to the "
             "maximum, log, one Newton step with second differences over two pixels when "
             "2 <= x < W-2 and 2 <= y < H-2; (0, 0) when the maximum <= 0; times heatmap_stride = "
             "input pixels; score = maximum"),
    "dark_udp": ("argmax per heatmap; Gaussian blur (kernel {kernel}, zero border) rescaled to the "
                 "maximum, log, one Newton step with one-pixel differences when 1 <= x < W-1 and "
                 "1 <= y < H-1; minus what the same steps move a unit Gaussian (sigma {sigma}) centred "
                 "at the result; (0, 0) when the maximum <= 0; times heatmap_stride = input pixels; "
                 "score = maximum"),
}


def decode_text(codec: Any) -> str:
    """How the export's "keypoints" and "scores" derive from the model's outputs, in words."""
    if codec.output_kind == "simcc":
        return SIMCC_DECODE_TEXT.format(ratio=codec.split_ratio)
    return DECODE_TEXT[codec.refinement].format(kernel=codec.dark_kernel, sigma=codec.sigma)


SIMCC_DECODE_TEXT = ("argmax of simcc_x and of simcc_y per joint, divided by simcc_split_ratio ({ratio}) = "
                     "input pixels; score = the smaller of the two maxima; (-1, -1) / simcc_split_ratio "
                     "when that score <= 0")


def build_metadata(params: Params, codec: Codec, output_names: list[str], checkpoint: Path | None,
                   checkpoint_format: str | None) -> dict[str, Any]:
    info = check_num_joints(params)
    metadata = {
        "model_name": params.model.name,
        **info.record(),   # dataset, joint_names, flip_pairs, skeleton, oks_sigmas
        "input_size": list(params.data.input_size),
        **codec.metadata(),   # codec, its sizes, sigma(s) and decoding options
        # flip test: the mirrored prediction moves flip_shift heatmap pixels right (eval.shift_heatmap)
        "shift_heatmap": params.eval.shift_heatmap,
        "flip_shift": codec.flip_shift(params.eval.shift_heatmap),
        "mean": list(params.data.mean),
        "std": list(params.data.std),
        "normalization": "RGB float32 NCHW, (rgb / 255 - mean) / std",
        "bbox_padding": params.data.bbox_padding,
        "crop": CROP_TEXT[codec.udp],
        "decode": decode_text(codec),
        "outputs": output_names,
        "checkpoint": checkpoint.name if checkpoint else None,
        "checkpoint_format": checkpoint_format,
        # getattr: a stale editable install can import posecore as a namespace package
        "posecore_version": getattr(posecore, "__version__", None),
    }
    return metadata


def set_metadata(proto, metadata: dict[str, Any]) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """metadata_props of an ONNX file as a dict, JSON values decoded (others kept as text); a
    file that is not ONNX is a ValueError naming it."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except OSError:
        raise
    except Exception as error:  # protobuf's DecodeError and friends
        raise ValueError(f"{path} is not an ONNX model ({type(error).__name__}: {error}); export one "
                         "with posecore.export_onnx") from None
    metadata = {}
    for entry in proto.metadata_props:
        try:
            metadata[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            metadata[entry.key] = entry.value
    return metadata


POSE_METADATA = ("input_size", "mean", "std", "bbox_padding", "joint_names", "flip_pairs", "skeleton", "dataset")


def check_pose_metadata(metadata: dict[str, Any], path: str | os.PathLike) -> None:
    """The metadata a pose model is run with (inference reads nothing else), each value checked:
    a ValueError naming the file, the key and what was expected. Besides POSE_METADATA, the
    codec's own keys (its metadata_keys: heatmap_size, or simcc_sigma and simcc_split_ratio)."""
    from posecore.codec import ALL_CODECS

    def fail(key: str, expected: str) -> None:
        raise ValueError(f"{path}: metadata {key} is {_shown(metadata.get(key))}, expected {expected}; "
                         "re-export the model with posecore.export_onnx")

    if metadata.get("codec", "msra") not in ALL_CODECS:   # exports from before codecs were msra
        fail("codec", f"one of {sorted(ALL_CODECS)}")
    codec = ALL_CODECS[metadata.get("codec", "msra")]
    missing = [key for key in (*POSE_METADATA, *codec.metadata_keys) if key not in metadata]
    if missing:
        raise ValueError(f"{path} lacks the metadata {missing}: it was not exported by posecore "
                         "(posecore.export_onnx writes them)")
    for key in ("input_size", "heatmap_size"):
        if key in metadata and not _numbers(metadata[key], 2, integer=True, low=1, high=65536):
            fail(key, "two positive integers (w, h)")
    if not _numbers(metadata["mean"], 3, low=-1e3, high=1e3):
        fail("mean", "3 numbers (R, G, B)")
    if not _numbers(metadata["std"], 3, low=1e-12, high=1e3):
        fail("std", "3 positive numbers (R, G, B)")
    if not _numbers([metadata["bbox_padding"]], 1, low=1e-6, high=100):
        fail("bbox_padding", "a positive number")
    if "sigma" in metadata and not _numbers([metadata["sigma"]], 1, low=1e-6, high=1e3):
        fail("sigma", "a positive number")
    if "simcc_sigma" in metadata and not _numbers(metadata["simcc_sigma"], 2, low=1e-6, high=1e4):
        fail("simcc_sigma", "two positive numbers (x, y)")
    if "simcc_split_ratio" in metadata and not _numbers([metadata["simcc_split_ratio"]], 1, low=1e-3, high=100):
        fail("simcc_split_ratio", "a positive number")
    if metadata.get("decode_method", "default") not in codec.decodes:
        fail("decode_method", f"one of {list(codec.decodes)}")
    kernel = metadata.get("dark_kernel", 11)
    if not _numbers([kernel], 1, integer=True, low=1, high=999) or kernel % 2 == 0:
        fail("dark_kernel", "an odd positive integer")


def _numbers(values: Any, count: int, integer: bool = False, low: float = -np.inf, high: float = np.inf) -> bool:
    """`values` is a list of `count` finite numbers (integers) in [low, high]."""
    kinds = (int,) if integer else (int, float)
    return (isinstance(values, list) and len(values) == count
            and all(isinstance(v, kinds) and not isinstance(v, bool) and finite_number(v) and low <= v <= high
                    for v in values))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def ort_session(onnx_path: str | os.PathLike, threads: int | None = None):
    """CPU onnxruntime session (threads default: torch's intra-op thread count, for fair timing)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def keypoint_differences(ours: Predictor, theirs: Predictor, samples) -> dict[str, dict[str, float]]:
    """Two predictors on the same (image_bgr, boxes_xyxy) samples, flip test off and on: {"flip
    off" / "flip on": {"coordinates", "median_px", "max_px"}}, keypoint differences in image pixels
    over every joint coordinate of every sample."""
    samples = list(samples)
    result = {}
    for flip in (False, True):
        difference = np.concatenate([np.abs(ours(image, boxes, flip).keypoints - theirs(image, boxes, flip).keypoints).ravel()
                                     for image, boxes in samples])
        result[f"flip {'on' if flip else 'off'}"] = {"coordinates": int(difference.size),
                                                      "median_px": float(np.median(difference)),
                                                      "max_px": float(difference.max())}
    return result


def check_predictor_parity(predictor: Predictor, onnx_path: str | os.PathLike, people: int = 2,
                           seed: int = 0) -> dict[str, dict[str, float]]:
    """The whole path a user runs, both ways: `predictor` (PyTorch) and Predictor.from_onnx (no
    params: the file's metadata sets codec, decoding and flip shift) on the same seeded image and
    boxes, crop to decode (`keypoint_differences`), with "ok": the median within
    KEYPOINT_TOLERANCE_PX (an argmax between two near-equal heatmap cells may flip a joint of an
    untrained model, which the maximum shows)."""
    exported = Predictor.from_onnx(onnx_path, device="cpu")   # as a user loads it: the file's metadata alone
    w, h = predictor.input_size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (2 * h, 2 * w, 3), dtype=np.uint8)
    corners = rng.uniform(0, 0.5, (people, 2)) * (w, h)
    boxes = np.concatenate([corners, corners + (w, h)], axis=1)   # xyxy, inside the image
    result = keypoint_differences(predictor, exported, [(image, boxes)])
    for found in result.values():
        found["ok"] = found["median_px"] <= KEYPOINT_TOLERANCE_PX
    return result


def check_parity(model: nn.Module, onnx_path: str | os.PathLike, batch_sizes: Sequence[int] = (1, 5),
                 seed: int = 0, codec: Any = None) -> dict[str, Any]:
    """Max abs difference between onnxruntime (CPU) and PyTorch eval outputs on random images.

    Compares the model's outputs ("heatmaps", or "simcc_x" and "simcc_y") with model(x) and,
    when present, "keypoints"/"scores" with `codec`'s torch decode of the file's own outputs
    (default codec: msra at the file's input and heatmap sizes): decoding the same outputs, so
    that an argmax between two near-equal cells of an untrained model cannot flip. Returns
    {"max_abs_diff" (the model's outputs), "ok" (<= PARITY_TOLERANCE), "tolerance", "batches":
    {batch: {output name: max abs diff}}}.
    """
    session = ort_session(onnx_path)
    input_meta = session.get_inputs()[0]
    channels, height, width = input_meta.shape[1:]
    if codec is None:
        heatmap_h, heatmap_w = session.get_outputs()[0].shape[2:]
        codec = MSRAHeatmap((width, height), (heatmap_w, heatmap_h))
    input_per_unit = torch.tensor(codec.input_per_unit, dtype=torch.float32)
    names = [output.name for output in session.get_outputs()]
    raw = [name for name in names if name not in DECODE_OUTPUTS]
    generator = torch.Generator().manual_seed(seed)
    model = model.eval()
    batches = {}
    for batch in batch_sizes:
        images = torch.randn(batch, channels, height, width, generator=generator)
        outputs = dict(zip(names, session.run(names, {input_meta.name: images.numpy()})))
        with torch.no_grad():
            output = final_output(model(images))
            expected = dict(zip(raw, output if isinstance(output, tuple) else (output,)))
            if DECODE_OUTPUTS[0] in outputs:
                own = tuple(torch.from_numpy(outputs[name]) for name in raw)
                coords, scores = codec.decode_torch(own if len(own) > 1 else own[0])
                expected.update(keypoints=coords * input_per_unit, scores=scores)
        batches[batch] = {name: float(np.abs(out - expected[name].numpy()).max()) for name, out in outputs.items()}
    worst = max(diffs[name] for diffs in batches.values() for name in raw)
    return {"max_abs_diff": worst, "ok": worst <= PARITY_TOLERANCE, "tolerance": PARITY_TOLERANCE,
            "batches": batches}


def latency_table(params: Params | str | os.PathLike, onnx_path: str | os.PathLike,
                  batch_sizes: Sequence[int] = (1, 8), repeats: int = 20, warmup: int = 3,
                  threads: int | None = None, budget_s: float | None = None) -> list[dict[str, Any]]:
    """Median CPU latency (ms) of PyTorch eager vs onnxruntime, one row per batch size.

    Both run with the same number of intra-op threads, alternating run by run. Weights do not
    change the timing, so the PyTorch side is params' model as built, without reading weight
    files. `budget_s`: seconds per batch size at most (beyond one warm-up and one timed run
    each): a slow model gets fewer repeats. Rows: batch, pytorch_ms, onnxruntime_ms, speedup
    (pytorch / onnxruntime), threads, repeats.
    """
    params = trained_params(params, None)[0]
    threads = threads or torch.get_num_threads()
    session = ort_session(onnx_path, threads)
    input_meta = session.get_inputs()[0]
    fixed_batch = input_meta.shape[0]
    if isinstance(fixed_batch, int) and any(b != fixed_batch for b in batch_sizes):
        raise ValueError(f"{onnx_path} has a fixed batch of {fixed_batch}; re-export with "
                         f"dynamic_batch=True to time batch sizes {tuple(batch_sizes)}")
    model = build_model(params).eval()
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    w, h = params.data.input_size
    rows = []
    try:
        for batch in tqdm(batch_sizes, desc="latency", leave=False):
            images = torch.randn(batch, 3, h, w)
            feed = {input_meta.name: images.numpy()}
            with torch.no_grad():
                (torch_ms, ort_ms), timed = _median_ms([lambda: model(images), lambda: session.run(None, feed)],
                                                       repeats, warmup, budget_s)
            rows.append({"batch": batch, "pytorch_ms": round(torch_ms, 2),
                         "onnxruntime_ms": round(ort_ms, 2), "speedup": round(torch_ms / ort_ms, 2),
                         "threads": threads, "repeats": timed})
    finally:
        torch.set_num_threads(previous_threads)
    return rows


def _median_ms(fns, repeats: int, warmup: int, budget_s: float | None = None) -> tuple[list[float], int]:
    """(median wall time of each function, repeats timed); the functions alternate within every
    repeat so that load from other processes on a shared machine hits them alike. Past
    `budget_s` seconds no further warm-up or timed round starts (one of each always runs)."""
    started = time.perf_counter()

    def spent() -> bool:
        return budget_s is not None and time.perf_counter() - started > budget_s

    for round_number in range(warmup):
        if round_number and spent():
            break
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for round_number in range(repeats):
        if round_number and spent():
            break
        for fn, samples in zip(fns, times):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000)
    return [float(np.median(samples)) for samples in times], len(times[0])
