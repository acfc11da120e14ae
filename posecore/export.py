"""ONNX export of the pose models, with the metadata a consumer needs to decode without posecore.

The graph takes "image" float32 [N, 3, H, W] (RGB, (rgb / 255 - mean) / std, H/W = params'
input size) and returns the model's output under the codec's names: "heatmaps" float32
[N, K, Hh, Wh], or for the simcc codec (RTMPose) "simcc_x" [N, K, Wx] and "simcc_y" [N, K, Wy].
With `decode=True` it also returns "keypoints" float32 [N, K, 2] (x, y in input-image pixels,
decoded by the run's codec in the graph: the codec's torch twin of evaluation's decoding) and
"scores" float32 [N, K] (heatmap maxima; SimCC: the smaller of the two axes' maxima). The codec
(data.codec, the one the checkpoint was trained with) is in the
metadata with its crop convention and decoding in words.

Exporter: the TorchScript one (`dynamo=False`). On torch 2.13 it writes the requested opset
itself (11..20), exports PixelShuffle as one DepthToSpace (CRD) node with a symbolic batch, matches
eager within ~1e-6 at any batch, and takes 1.5 s (FastPose-50) / 4 s (Hourglass-52 at 128x128). The dynamo
exporter builds opset 18 and down-converts: for FastPose the conversion to 17 fails (ReduceMean
axes) and the file silently stays at opset 18, and it takes 10-15 s. Move to dynamo once the
TorchScript exporter is gone and opset >= 18 is acceptable.

`metadata_props` hold JSON-encoded values under the keys documented in
posecore.onnx_metadata.METADATA_KEYS; `read_metadata(path)` there decodes them.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from posecore.codec import Codec, codec_from_metadata
from posecore.environment import record_export
from posecore.files import atomic_write
from posecore.models import build_model, final_output
from posecore.onnx_metadata import DECODE_OUTPUTS, INPUT_NAME, build_metadata, read_metadata, set_metadata
from posecore.params import Params, load_params
from posecore.precision import check_precision, convert_fp16, quantize_int8
from posecore.predictor import Predictor, trained_params
from posecore.runs import Run, resolve_path

MIN_OPSET = 11  # DepthToSpace CRD mode (PixelShuffle) and GatherElements (decode) need opset 11
MAX_OPSET = getattr(getattr(torch.onnx, "_constants", None), "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20)
PARITY_TOLERANCE = 1e-4
KEYPOINT_TOLERANCE_PX = 1e-3  # median keypoint difference, image pixels, of the two Predictors


def export_onnx(
    params: Params | str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    path: str | os.PathLike,
    opset: int = 17,
    dynamic_batch: bool = True,
    *,
    decode: bool = False,
    run_name: str | None = None,
    parity_batch_sizes: Sequence[int] | None = None,
    precision: str = "fp32",
    calibration: Any = None,
    calibration_detector: Any = "whole-image",
) -> dict[str, Any]:
    """Export params' model with `checkpoint`'s weights to `path` and check it against PyTorch.

    `precision`: "fp32", or "fp16" / "int8" (posecore.precision: the fp32 export converted, its
    metadata kept, and compared with it: "variant"). int8 calibrates on person crops made as
    inference makes them: by default export.calibration_images people of the params' training
    split; `calibration` a folder or list of images instead, with `calibration_detector` boxes
    ("whole-image", a detections .json or a detector .onnx).

    `params`: Params, or a name/path for posecore.load_params. `checkpoint`: a file in any format
    posecore.load_checkpoint detects, "best"/"last" of `run_name`, or None (weights as built).
    Relative paths (checkpoint, `path`) are relative to the repository root, as in params.
    `parity_batch_sizes`: batches compared with onnxruntime after writing (default (1, 2), or
    (1,) without a dynamic batch; () skips). Returns a report: path, opset, ir_version,
    input/output names, parity (the outputs' max abs diff per batch, and "predictor": the keypoints
    of Predictor on PyTorch and on the file, `check_predictor_parity`), checkpoint format.
    """
    import onnx  # optional dependency (the export extra), imported on use

    check_opset(opset)
    if check_precision(precision) != "fp32":
        options = {
            "opset": opset,
            "dynamic_batch": dynamic_batch,
            "decode": decode,
            "run_name": run_name,
            "parity_batch_sizes": parity_batch_sizes,
        }
        return _export_variant(
            params, checkpoint, resolve_path(path), precision, options, calibration, calibration_detector
        )
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
        torch.onnx.export(
            ExportWrapper(model, codec, decode),
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )
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
        warnings.warn(
            f"{path}: onnxruntime differs from PyTorch by {parity['max_abs_diff']:.3g} (> {PARITY_TOLERANCE})",
            RuntimeWarning,
            stacklevel=2,
        )
    for case, found in (parity or {}).get("predictor", {}).items():
        if not found["ok"]:
            warnings.warn(
                f"{path}: Predictor.from_onnx's keypoints differ from PyTorch's by {found['median_px']:.3g} "
                f"px (median, {case}; > {KEYPOINT_TOLERANCE_PX})",
                RuntimeWarning,
                stacklevel=2,
            )
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
        "precision": "fp32",
        "parity_max_abs_diff": parity["max_abs_diff"] if parity else None,
        "parity": parity,
        "size_mb": round(path.stat().st_size / 2**20, 2),
    }


def _export_variant(
    params: Params | str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    path: Path,
    precision: str,
    options: dict[str, Any],
    calibration: Any,
    detector: Any,
) -> dict[str, Any]:
    """export_onnx at fp16 / int8: the fp32 export (beside `path`, removed after), converted to
    `path`, and both compared through Predictor.from_onnx on a seeded image ("variant")."""
    fp32_path = path.with_name(f".{path.stem}.fp32{path.suffix}")
    try:
        report = export_onnx(params, checkpoint, fp32_path, **options)
        resolved = load_params(params)
        if precision == "fp16":
            variant = convert_fp16(fp32_path, path)
        else:
            variant = quantize_int8(
                fp32_path,
                path,
                calibration=calibration,
                params=resolved,
                detector=detector,
                count=resolved.export.calibration_images if calibration is None else None,
            )
        reference, converted = Predictor.from_onnx(fp32_path, device="cpu"), Predictor.from_onnx(path, device="cpu")
        variant["keypoints_vs_fp32"] = keypoint_differences(reference, converted, [_seeded_sample(reference)])
    finally:
        fp32_path.unlink(missing_ok=True)
    if options.get("run_name"):
        record_export(Run(options["run_name"]).folder, report["checkpoint"], path)
    return {**report, "path": str(path), "precision": precision, "size_mb": variant["size_mb"], "variant": variant}


class ExportWrapper(nn.Module):
    """Eval-mode model -> its output (heatmaps [N,K,Hh,Wh], or the pair simcc_x, simcc_y), then
    with `decode` keypoints [N,K,2] (input pixels) and scores [N,K]."""

    def __init__(self, model: nn.Module, codec: Codec, decode: bool):
        super().__init__()
        self.model = model
        self.codec = codec
        self.decode = decode
        self.register_buffer(
            "input_per_unit", torch.tensor(codec.input_per_unit, dtype=torch.float32), persistent=False
        )

    def forward(self, image: torch.Tensor):
        output = final_output(self.model(image))  # the last stack's for an hourglass
        if not self.decode:
            return output
        coords, scores = self.codec.decode_torch(output)
        parts = output if isinstance(output, tuple) else (output,)
        return (*parts, coords * self.input_per_unit, scores)


def check_opset(opset: int) -> None:
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(
            f"opset {opset!r} is not supported: the exporter writes opset "
            f"{MIN_OPSET}..{MAX_OPSET} (PixelShuffle and the decode need >= {MIN_OPSET})"
        )


def ort_session(onnx_path: str | os.PathLike, threads: int | None = None):
    """CPU onnxruntime session (threads default: torch's intra-op thread count, for fair timing)."""
    import onnxruntime as ort  # optional dependency (the export extra), imported on use

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
        difference = np.concatenate(
            [
                np.abs(ours(image, boxes, flip).keypoints - theirs(image, boxes, flip).keypoints).ravel()
                for image, boxes in samples
            ]
        )
        result[f"flip {'on' if flip else 'off'}"] = {
            "coordinates": int(difference.size),
            "median_px": float(np.median(difference)),
            "max_px": float(difference.max()),
        }
    return result


def check_predictor_parity(
    predictor: Predictor, onnx_path: str | os.PathLike, people: int = 2, seed: int = 0
) -> dict[str, dict[str, float]]:
    """The whole path a user runs, both ways: `predictor` (PyTorch) and Predictor.from_onnx (no
    params: the file's metadata sets codec, decoding and flip shift) on the same seeded image and
    boxes, crop to decode (`keypoint_differences`), with "ok": the median within
    KEYPOINT_TOLERANCE_PX (an argmax between two near-equal heatmap cells may flip a joint of an
    untrained model, which the maximum shows)."""
    exported = Predictor.from_onnx(onnx_path, device="cpu")  # as a user loads it: the file's metadata alone
    result = keypoint_differences(predictor, exported, [_seeded_sample(predictor, people, seed)])
    for found in result.values():
        found["ok"] = found["median_px"] <= KEYPOINT_TOLERANCE_PX
    return result


def _seeded_sample(predictor: Predictor, people: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random image twice the input size and `people` boxes of the input size inside it."""
    w, h = predictor.input_size
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (2 * h, 2 * w, 3), dtype=np.uint8)
    corners = rng.uniform(0, 0.5, (people, 2)) * (w, h)
    return image, np.concatenate([corners, corners + (w, h)], axis=1)  # xyxy, inside the image


def check_parity(
    model: nn.Module,
    onnx_path: str | os.PathLike,
    batch_sizes: Sequence[int] = (1, 5),
    seed: int = 0,
    codec: Any = None,
) -> dict[str, Any]:
    """Max abs difference between onnxruntime (CPU) and PyTorch eval outputs on random images.

    Compares the model's outputs ("heatmaps", or "simcc_x" and "simcc_y") with model(x) and,
    when present, "keypoints"/"scores" with `codec`'s torch decode of the file's own outputs
    (default: the codec the file's metadata describe): decoding the same outputs, so
    that an argmax between two near-equal cells of an untrained model cannot flip. Returns
    {"max_abs_diff" (the model's outputs), "ok" (<= PARITY_TOLERANCE), "tolerance", "batches":
    {batch: {output name: max abs diff}}}.
    """
    session = ort_session(onnx_path)
    input_meta = session.get_inputs()[0]
    channels, height, width = input_meta.shape[1:]
    if codec is None:
        codec = codec_from_metadata(read_metadata(onnx_path))
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
    return {"max_abs_diff": worst, "ok": worst <= PARITY_TOLERANCE, "tolerance": PARITY_TOLERANCE, "batches": batches}


def latency_table(
    params: Params | str | os.PathLike,
    onnx_path: str | os.PathLike,
    batch_sizes: Sequence[int] = (1, 8),
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    budget_s: float | None = None,
) -> list[dict[str, Any]]:
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
        raise ValueError(
            f"{onnx_path} has a fixed batch of {fixed_batch}; re-export with "
            f"dynamic_batch=True to time batch sizes {tuple(batch_sizes)}"
        )
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
                (torch_ms, ort_ms), timed = _median_ms(
                    [lambda images=images: model(images), lambda feed=feed: session.run(None, feed)],
                    repeats,
                    warmup,
                    budget_s,
                )
            rows.append(
                {
                    "batch": batch,
                    "pytorch_ms": round(torch_ms, 2),
                    "onnxruntime_ms": round(ort_ms, 2),
                    "speedup": round(torch_ms / ort_ms, 2),
                    "threads": threads,
                    "repeats": timed,
                }
            )
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
