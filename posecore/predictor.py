"""One predictor: a pose model -> keypoints in image pixels, for PyTorch and ONNX alike.

`Predictor` owns everything between an image with person boxes and the keypoints: the crop
(posecore.data.crop_input, the same as training's), the forward (the last stack of a stacked
model: models.final_output), the flip test (codec.flip_test) and the decoding (codec.decode, then
codec.to_image back through each person's crop). It is model-family agnostic: the codec the run
trained with (codec.build_codec) does everything output-specific.

    predictor = Predictor.from_run("my-run", "best")          # the run's params and weights
    poses = predictor(image_bgr, boxes_xyxy, flip=True)      # .keypoints [N, K, 2], .scores [N, K]

Sources: `from_run(run_name, checkpoint)` (the run's params.yaml: its keypoint set and codec),
`from_checkpoint(params, path)` (any checkpoint load_checkpoint reads, or "best"/"last" of
`run_name`), `from_onnx(path)` (a posecore export: its metadata describe the crop, keypoint set and
codec), `from_model(model, params)` (a model in memory, e.g. during training). `load` picks one
from a notebook's (checkpoint, params, run_name).

Loading a run's model as it was trained (keypoint set resolved, data.codec of the checkpoint,
weights) happens here only: `trained_params` and `Predictor.from_checkpoint`.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posecore.checkpoints import load_model, with_trained_codec
from posecore.codec import Codec, build_codec, codec_from_metadata
from posecore.data import crop_input, resolve_keypoints
from posecore.device import get_device
from posecore.geometry import box_to_center_scale
from posecore.keypoints import KeypointInfo, from_record, keypoint_info
from posecore.models import final_output
from posecore.onnx_metadata import DECODE_OUTPUTS, check_graph, check_pose_metadata, read_metadata
from posecore.params import Params, load_params
from posecore.runs import Run, find_checkpoint, resolve_path

ONNX_SUFFIX = ".onnx"
DECODE_CHUNK_BYTES = 32 << 20  # model output decoded at once (Predictor.decode), in bytes


@dataclass
class Poses:
    """Keypoints of N people: `keypoints` [N, K, 2] (x, y in image pixels), `scores` [N, K]
    (NaN where the model's output was not finite). `plain`: the same people without the flip
    test, when one was run (the gt mAP protocol scores those)."""

    keypoints: np.ndarray
    scores: np.ndarray
    plain: Poses | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    def rows(self) -> np.ndarray:
        """float64 [N, K, 3]: (x, y, score) per joint, the results files' layout."""
        return np.concatenate([self.keypoints, self.scores[..., None]], axis=-1).astype(np.float64)

    def finite(self) -> np.ndarray:
        """bool [N]: every keypoint and score of the person is finite."""
        return np.isfinite(self.rows()).reshape(len(self), -1).all(axis=1)

    def astype(self, dtype: Any) -> Poses:
        plain = self.plain.astype(dtype) if self.plain is not None else None
        return Poses(self.keypoints.astype(dtype), self.scores.astype(dtype), plain)


class Predictor:
    """A pose model with its crop, flip test and decoding (see the module docstring).

    `forward`: float32 images [N, 3, H, W] (numpy or torch) -> the model's final output (torch
    for PyTorch, numpy for ONNX); None for a decode-only predictor (the oracle). `info`: the
    keypoint set; `codec`: the run's codec; `mean`, `std` [3] RGB and `bbox_padding`: the crop.
    """

    def __init__(
        self,
        forward: Callable[[Any], Any] | None,
        codec: Codec,
        info: KeypointInfo,
        mean,
        std,
        bbox_padding: float,
        backend: str,
        *,
        shift: bool = True,
        params: Params | None = None,
        model: torch.nn.Module | None = None,
        device: Any = "cpu",
        checkpoint: Path | None = None,
        checkpoint_format: str | None = None,
    ):
        self.forward, self.codec, self.info, self.backend = forward, codec, info, backend
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.bbox_padding = float(bbox_padding)
        self.shift = bool(shift)  # eval.shift_heatmap: the codec's flip shift on or off
        self.params, self.model, self.device = params, model, torch.device(device)
        self.checkpoint, self.checkpoint_format = checkpoint, checkpoint_format

    # ---- sources
    @classmethod
    def from_model(
        cls, model: torch.nn.Module | None, params: Params, codec: Codec | None = None, device: Any = None
    ) -> Predictor:
        """A PyTorch model in memory (eval mode expected) with `params`' crop, keypoint set and codec
        (`codec` overrides build_codec(params)); model None: decoding only (the oracle)."""
        if device is None:
            device = next(model.parameters()).device if model is not None else "cpu"
        device = torch.device(device)

        def forward(images: Any) -> Any:
            images = torch.as_tensor(images).to(device, non_blocking=True)
            return _apply(final_output(model(images)), lambda t: t.float())

        data = params.data
        return cls(
            forward if model is not None else None,
            codec or build_codec(params),
            keypoint_info(params),
            data.mean,
            data.std,
            data.bbox_padding,
            "pytorch",
            shift=params.eval.shift_heatmap,
            params=params,
            model=model,
            device=device,
        )

    @classmethod
    def from_checkpoint(
        cls, params: Params, path: str | os.PathLike | None, device: Any = None, run_name: str | None = None
    ) -> Predictor:
        """params' model with the weights of `path` (any format load_checkpoint reads; "best" /
        "last" of `run_name`; None: the weights params name), decoding as the checkpoint trained."""
        device = torch.device(device) if device is not None else get_device()
        params, weights = trained_params(params, path, run_name)
        model, checkpoint_format = load_model(params, weights, device)
        predictor = cls.from_model(model, params, device=device)
        predictor.checkpoint, predictor.checkpoint_format = weights, checkpoint_format
        return predictor

    @classmethod
    def from_run(
        cls, run_name: str, checkpoint: str | os.PathLike = "best", device: Any = None, overrides: dict | None = None
    ) -> Predictor:
        """Run `run_name`'s model as trained: its params.yaml (keypoint set, codec) with
        `overrides` (dotted keys, e.g. {"eval.flip_test": False}) and its best / last checkpoint
        (or a checkpoint path)."""
        params = load_params(Run(run_name).params(), overrides or {})
        return cls.from_checkpoint(params, checkpoint, device, run_name)

    @classmethod
    def from_onnx(
        cls, path: str | os.PathLike, params: Params | None = None, device: Any = None, threads: int | None = None
    ) -> Predictor:
        """A posecore-exported .onnx (any precision); its metadata give the crop, keypoint set and
        codec. With `params`, their eval.decode / eval.dark_kernel / eval.shift_heatmap apply (else
        the export's own decoding). onnxruntime uses CUDA when `device` (default: posecore's
        choice) is a GPU and its provider is installed, else the CPU. `threads`: None keeps
        onnxruntime's default (intra-op threads: the physical cores); n runs each operator on n
        threads and the operators one after another (inter-op 1), e.g. 1 beside other work."""
        import onnxruntime as ort  # optional dependency (the export extra), imported on use

        path = resolve_path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pose model {path} does not exist")
        metadata = read_metadata(path)
        check_pose_metadata(metadata, path)
        info = from_record(metadata, str(path))
        decoding = (params.eval.decode, params.eval.dark_kernel) if params is not None else ()
        codec = codec_from_metadata(metadata, *decoding)
        device = torch.device(device) if device is not None else get_device()
        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
                raise ValueError(f"threads must be None or a positive integer, got {threads!r}")
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        try:
            session = ort.InferenceSession(str(path), options, providers=providers)
        except RuntimeError as error:  # onnxruntime's Fail / InvalidGraph / InvalidProtobuf
            raise ValueError(f"{path}: onnxruntime cannot load the model ({error})") from None
        check_graph(
            metadata, codec, info.num_joints, _shapes(session.get_inputs()), _shapes(session.get_outputs()), path
        )
        # the export's own setting; exports from before it was recorded used the default (on)
        shift = params.eval.shift_heatmap if params is not None else metadata.get("shift_heatmap", True)
        return cls(
            OnnxForward(session),
            codec,
            info,
            metadata["mean"],
            metadata["std"],
            metadata["bbox_padding"],
            "onnxruntime",
            shift=shift,
            params=params,
            checkpoint=path,
        )

    @classmethod
    def load(
        cls,
        checkpoint: str | os.PathLike,
        params: Params | None = None,
        run_name: str | None = None,
        device: Any = None,
        threads: int | None = None,
    ) -> Predictor:
        """What a notebook's (checkpoint, params, run_name) name: an .onnx file (`from_onnx`, with
        `threads`), else params' model with that checkpoint, params None: the params of run
        `run_name`."""
        if str(checkpoint).lower().endswith(ONNX_SUFFIX):
            return cls.from_onnx(checkpoint, params, device, threads)
        if params is None:
            if not run_name:
                raise ValueError(
                    f"checkpoint {checkpoint}: a PyTorch checkpoint needs params (the model "
                    "it was trained with) or run_name (a run whose saved params say); only "
                    "a posecore-exported .onnx carries its own"
                )
            return cls.from_run(run_name, checkpoint, device)
        return cls.from_checkpoint(params, checkpoint, device, run_name)

    # ---- properties
    @property
    def input_size(self) -> tuple[int, int]:
        """(w, h) of the network input."""
        return self.codec.input_size

    @property
    def num_joints(self) -> int:
        return self.info.num_joints

    # ---- the pipeline
    def __call__(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray, flip: bool = False) -> Poses:
        """Poses of the people in `boxes_xyxy` [N, 4+] (x1, y1, x2, y2, ...) of a BGR image
        [H, W, 3]: keypoints float32 [N, K, 2] in image pixels, scores float32 [N, K]."""
        inputs, centers, scales = self.crops(image_bgr, boxes_xyxy)
        if not len(inputs):
            return Poses(np.zeros((0, self.num_joints, 2), np.float32), np.zeros((0, self.num_joints), np.float32))
        return self.predict_crops(inputs, centers, scales, flip).astype(np.float32)

    def crops(self, image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes [N, 4+] (x1, y1, x2, y2, ...) -> (inputs float32 [N, 3, H, W] normalized RGB,
        bbox_center [N, 2], bbox_scale [N, 2]), cropped as in training and evaluation."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64)
        boxes = boxes.reshape(-1, boxes.shape[-1]) if boxes.size else np.zeros((0, 4))
        in_w, in_h = self.input_size
        inputs = np.empty((len(boxes), 3, in_h, in_w), np.float32)
        centers = np.zeros((len(boxes), 2), np.float32)
        scales = np.zeros((len(boxes), 2), np.float32)
        for i, (x1, y1, x2, y2) in enumerate(boxes[:, :4]):
            centers[i], scales[i] = box_to_center_scale((x1, y1, x2 - x1, y2 - y1), in_w / in_h, self.bbox_padding)
            crop_input(
                image_bgr,
                self.codec.crop_matrix(centers[i], scales[i]),
                self.input_size,
                self.mean,
                self.std,
                out=inputs[i],
            )
        return inputs, centers, scales

    def predict_crops(self, images: Any, bbox_center: Any, bbox_scale: Any, flip: bool = False) -> Poses:
        """Crops already made (a dataset batch: images [N, 3, H, W], bbox_center, bbox_scale
        [N, 2]) -> Poses (keypoints float64 [N, K, 2] image pixels, scores [N, K]; with `flip`,
        `plain` holds the poses without the flip test)."""
        merged, plain = self.outputs(images, flip)
        poses = self.decode(merged, bbox_center, bbox_scale)
        if flip:
            poses.plain = self.decode(plain, bbox_center, bbox_scale)
        return poses

    @torch.no_grad()
    def outputs(self, images: Any, flip: bool = False) -> tuple[Any, Any]:
        """(merged, plain) model outputs (numpy, on the CPU) of images [N, 3, H, W]: `merged` is
        the flip test's (codec.flip_test of the plain and the mirrored images' outputs) with
        `flip`, else the plain output itself."""
        if self.forward is None:
            raise ValueError("this predictor only decodes (the oracle): it has no model to run")
        if self.model is not None:  # on the device first: the mirror is made there
            images = torch.as_tensor(images).to(self.device, non_blocking=True)
        plain = self.forward(images)
        if not flip:
            plain = _apply(plain, _to_numpy)
            return plain, plain
        mirrored_images = (
            images.flip(3) if isinstance(images, torch.Tensor) else np.ascontiguousarray(np.asarray(images)[..., ::-1])
        )
        mirrored = self.forward(mirrored_images)
        merged = self.codec.flip_test(
            _apply(plain, torch.as_tensor), _apply(mirrored, torch.as_tensor), self.info.flip_index(), self.shift
        )
        return _apply(merged, _to_numpy), _apply(plain, _to_numpy)

    def decode(self, output: Any, bbox_center: Any, bbox_scale: Any) -> Poses:
        """A model output (numpy or torch, the model's structure) -> Poses: keypoints float64
        [N, K, 2] in image pixels, scores [N, K], NaN for a joint whose output is not finite
        (decoded as zeros, so that the caller can name the broken instances). Decoded in chunks
        of people whose output is at most DECODE_CHUNK_BYTES (one person at least): the codec's
        temporaries (DARK's blurred maps, ...) are a few times a chunk, not the whole batch."""
        output = _apply(output, _to_numpy)
        parts = output if isinstance(output, (tuple, list)) else (output,)
        count = len(parts[0])
        per_person = sum(np.prod(part.shape[1:], dtype=np.int64) * part.itemsize for part in parts)
        step = int(max(1, DECODE_CHUNK_BYTES // max(per_person, 1)))
        center, scale = _to_numpy(bbox_center), _to_numpy(bbox_scale)
        keypoints, scores = [], []
        for start in range(0, max(count, 1), step):  # an empty batch decodes once, to its empty shapes
            people = slice(start, start + step)
            chunk = _apply(output, operator.itemgetter(people))
            finite = _joints_finite(chunk)
            # the copy without NaN / inf only when there is one (a whole chunk copied otherwise)
            safe = chunk if finite.all() else _apply(chunk, lambda a: np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0))
            coords, found = self.codec.decode(safe)
            xy = self.codec.to_image(coords, center[people], scale[people])
            keypoints.append(np.asarray(xy, np.float64))
            scores.append(np.where(finite, found, np.nan))
        return Poses(np.concatenate(keypoints), np.concatenate(scores))


class OnnxForward:
    """An onnxruntime session as a Predictor's forward: float32 images [N, 3, H, W] (numpy or
    torch) -> the model's outputs (numpy; a tuple for several), the in-graph decode's left out.
    A fixed-batch export runs batch by batch, the last one padded. An object rather than a
    closure: a closure that calls itself is a reference cycle, which keeps the session (tens of
    MB) alive after its Predictor is dropped until the garbage collector runs."""

    def __init__(self, session: Any) -> None:
        self.session = session
        first = session.get_inputs()[0]
        self.input_name, self.fixed_batch = first.name, first.shape[0]
        self.names = [out.name for out in session.get_outputs() if out.name not in DECODE_OUTPUTS]

    def __call__(self, images: Any) -> Any:
        if isinstance(images, torch.Tensor):
            images = images.cpu().numpy()
        images = np.ascontiguousarray(images, np.float32)
        fixed = self.fixed_batch if isinstance(self.fixed_batch, int) and self.fixed_batch > 0 else None
        if fixed is None or len(images) == fixed:
            return self._run(images)
        parts = []
        for start in range(0, len(images), fixed):
            batch = images[start : start + fixed]
            padded = np.concatenate([batch, np.zeros((fixed - len(batch), *batch.shape[1:]), np.float32)])
            parts.append(_apply(self._run(padded), operator.itemgetter(slice(len(batch)))))
        return _apply_many(parts, np.concatenate) if parts else self._run(images)

    def _run(self, images: np.ndarray) -> Any:
        outputs = self.session.run(self.names, {self.input_name: images})
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def trained_params(
    params: Params, checkpoint: str | os.PathLike | None, run_name: str | None = None
) -> tuple[Any, Path | None]:
    """(params as `checkpoint` was trained, the checkpoint's path): the keypoint set resolved
    (a custom set from the run's params.yaml or the data), data.codec from a posecore checkpoint;
    "best" / "last" looked up in run `run_name`. checkpoint None: (resolved params, None)."""
    path = None if checkpoint is None else find_checkpoint(checkpoint, run_name)
    params = resolve_keypoints(load_params(params), run_name)
    return with_trained_codec(params, path), path


def _apply(out: Any, fn: Callable[[Any], Any]) -> Any:
    """fn on each array of a model output (one array, or a tuple / list of them)."""
    return tuple(fn(part) for part in out) if isinstance(out, (tuple, list)) else fn(out)


def _apply_many(outs: list[Any], fn: Callable[[list[Any]], Any]) -> Any:
    """fn over the same part of several outputs (e.g. np.concatenate of batches)."""
    if isinstance(outs[0], (tuple, list)):
        return tuple(fn([out[i] for out in outs]) for i in range(len(outs[0])))
    return fn(outs)


def _shapes(values: list) -> list[tuple[str, list]]:
    """(name, shape) of onnxruntime's input or output descriptions."""
    return [(value.name, list(value.shape)) for value in values]


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _joints_finite(output: Any) -> np.ndarray:
    """bool [N, K]: every value of each joint's output (its heatmap, its SimCC vectors) is finite."""
    parts = output if isinstance(output, (tuple, list)) else (output,)
    finite = None
    for part in parts:
        ok = np.isfinite(part).reshape(*part.shape[:2], -1).all(axis=2)
        finite = ok if finite is None else finite & ok
    return finite
