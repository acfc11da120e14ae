"""Lower-precision copies of a posecore ONNX export: fp16 and int8, self-describing like the fp32 file.

    posecore.export_onnx(params, checkpoint, path, precision="int8")   # the usual way in
    convert_fp16(fp32_path, fp16_path)
    quantize_int8(fp32_path, int8_path, params=params)                 # calibrated on params'
                                                                        # training people
    quantize_int8(fp32_path, int8_path, calibration="photos/", detector="boxes.json")

- fp16 (`convert_fp16`): onnxconverter-common's float16 conversion of the network, the input
  "image" and the model's outputs kept float32 (Cast nodes at the edges). An in-graph decode
  ("keypoints", "scores": argmax, coordinates) stays float32: it runs on the converted network's
  float32 outputs, as the fp32 file's does.
- int8 (`quantize_int8`): onnxruntime's static quantization in the QDQ format, weights int8 per
  output channel, activations uint8 (the combination onnxruntime's CPU kernels run fastest on
  x86 with VNNI), ranges from MinMax calibration on person crops. The crops are made by
  `Predictor.crops` of the file itself (its metadata: input size, mean / std, padding, codec crop),
  the very preprocessing inference runs. The nodes that write the model's outputs
  ("heatmaps" / "simcc_x", "simcc_y") and the in-graph decode stay float32, so the outputs the
  Predictor decodes are not rounded to 256 levels (a SimCC or heatmap argmax would then tie
  across neighbouring bins); so do the first convolution and its activation (`_input_layer`).
- Calibration sources (`calibration_samples`): by default `count` people of the params' training
  split, seeded, each cropped from its ground-truth box; or a folder / list of image files, each
  with the whole image as its box (detector "whole-image") or the boxes of a detector
  (posecore.detect.build_detector: a COCO-results .json, a YOLO .onnx).
- Every variant carries the fp32 file's metadata_props unchanged, plus "precision" ("fp16" /
  "int8") and, for int8, "calibration" (what the ranges were measured on, in words).

A run's files are named by posecore.runs.Run.onnx_path(precision).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posecore.data.cache import load_people
from posecore.data.dataset import ImageReadError, read_image
from posecore.data.sources import open_source
from posecore.detect import Frame, boxes_for_frame, build_detector
from posecore.files import atomic_write
from posecore.onnx_metadata import DECODE_OUTPUTS, PRECISIONS
from posecore.params import Params, load_params
from posecore.predictor import Predictor
from posecore.runs import resolve_path

DEFAULT_CALIBRATION_PEOPLE = 128  # person crops the int8 ranges are measured on
CALIBRATION_BATCH = 16  # crops per calibration forward
INT8_MIN_OPSET = 13  # DequantizeLinear's axis (per-channel weights)
MIN_BOX_SCORE = 0.3  # detector boxes below this score are not calibration people


def check_precision(precision: Any) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    return precision


# --------------------------------------------------------------------------- fp16


def convert_fp16(source: str | os.PathLike, destination: str | os.PathLike) -> dict[str, Any]:
    """`source` (a posecore fp32 export) -> float16 network at `destination`, input and outputs
    float32, metadata kept (see the module docstring). Returns {"path", "precision", "size_mb",
    "size_ratio"}."""
    import onnx  # optional dependency (the export extra), imported on use
    from onnxconverter_common import float16  # the export extra, imported on use

    source, destination = resolve_path(source), resolve_path(destination)
    model = onnx.load(str(source))
    _check_float32(model, source)
    raw = _raw_outputs(model)
    body, tail, constants, outputs = _split_decode(model, raw)
    with warnings.catch_warnings():
        # the converter warns for every constant it clips to float16's range: summarised by the parity check
        warnings.filterwarnings("ignore", message=".*(truncated|out of range|float16).*")
        body = float16.convert_float_to_float16(body, keep_io_types=True)
    body.graph.node.extend(tail)  # the decode, float32, on the Cast-back float32 outputs
    body.graph.initializer.extend(constants)
    del body.graph.output[:]
    body.graph.output.extend(outputs)
    _finish(body, model, {"precision": "fp16"})
    onnx.checker.check_model(body)
    path = atomic_write(destination, body.SerializeToString())
    return _report(path, source, "fp16")


def _split_decode(model, raw: list[str]):
    """(the model without its in-graph decode, the decode's nodes, its initializers, the original
    graph outputs). The decode: the nodes downstream of the model's raw outputs, and the constants
    (Constant nodes, initializers) only they read."""
    import onnx  # optional dependency (the export extra), imported on use

    tail, produced = set(), set(raw)
    for index, node in enumerate(model.graph.node):  # topological order
        if any(name in produced for name in node.input):
            tail.add(index)
            produced.update(node.output)
    readers: dict[str, set[int]] = {}
    for index, node in enumerate(model.graph.node):
        for name in node.input:
            readers.setdefault(name, set()).add(index)
    outputs = {out.name for out in model.graph.output}
    changed = True
    while changed:  # feeders read by the decode alone (its Constant nodes) belong to it
        changed = False
        for index, node in enumerate(model.graph.node):
            if (
                index not in tail
                and node.output
                and not set(node.output) & outputs
                and all(readers.get(name) and readers[name] <= tail for name in node.output)
            ):
                tail.add(index)
                changed = True
    constants = [
        tensor for tensor in model.graph.initializer if readers.get(tensor.name) and readers[tensor.name] <= tail
    ]
    constant_names = {tensor.name for tensor in constants}
    body = onnx.ModelProto()
    body.CopyFrom(model)
    del body.graph.node[:]
    body.graph.node.extend(node for index, node in enumerate(model.graph.node) if index not in tail)
    del body.graph.initializer[:]
    body.graph.initializer.extend(t for t in model.graph.initializer if t.name not in constant_names)
    del body.graph.output[:]
    body.graph.output.extend([out for out in model.graph.output if out.name in raw])
    del body.graph.value_info[:]  # shape inference runs again in the converter
    return (
        body,
        [_copy(node) for index, node in enumerate(model.graph.node) if index in tail],
        [_copy(tensor) for tensor in constants],
        [_copy(out) for out in model.graph.output],
    )


def _copy(proto):
    copy = type(proto)()
    copy.CopyFrom(proto)
    return copy


# --------------------------------------------------------------------------- int8


def quantize_int8(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    *,
    calibration: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    params: Params | None = None,
    detector: Any = "whole-image",
    count: int | None = None,
    seed: int = 0,
    keep_float: Sequence[str] = (),
) -> dict[str, Any]:
    """`source` (a posecore fp32 export) -> int8 QDQ model at `destination`, calibrated on person
    crops (see the module docstring).

    calibration: None (the people of `params`' training split, `count` of them, default
    DEFAULT_CALIBRATION_PEOPLE, chosen with `seed`), a folder of images or a list of image files
    (boxes from `detector`: "whole-image", a detections .json, a detector .onnx or object; at most
    `count` people when given). keep_float: further node names to leave unquantized. Returns
    {"path", "precision", "size_mb", "size_ratio", "calibration": {"people", "images", "source"}}.
    """
    import onnx  # optional dependency (the export extra), imported on use
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static  # the same

    source, destination = resolve_path(source), resolve_path(destination)
    model = onnx.load(str(source))
    _check_float32(model, source)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < INT8_MIN_OPSET:
        raise ValueError(
            f"{source} has opset {opset}: per-channel int8 needs opset >= {INT8_MIN_OPSET} "
            "(export it with posecore.export_onnx(..., opset=17), the default)"
        )
    predictor = Predictor.from_onnx(source, device="cpu")
    samples = calibration_samples(predictor, calibration, params=params, detector=detector, count=count, seed=seed)
    reader = CropReader(predictor, samples, model.graph.input[0].name)
    if not reader.ready():
        raise ValueError(f"{source}: no calibration people were found in {reader.description}")
    raw = _raw_outputs(model)
    named = _named_nodes(model)
    _, tail, _, _ = _split_decode(named, raw)
    excluded = [node.name for node in named.graph.node if set(node.output) & set(raw)]
    excluded += [node.name for node in tail] + _input_layer(named) + list(keep_float)
    with tempfile.TemporaryDirectory() as folder, _quiet_quantizer():
        staged = Path(folder) / "named.onnx"
        staged.write_bytes(named.SerializeToString())
        quantized = Path(folder) / "quantized.onnx"
        quantize_static(
            str(staged),
            str(quantized),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=excluded,
        )
        result = onnx.load(str(quantized))
    described = f"{reader.people} person crops from {reader.images} images ({reader.description}), MinMax"
    _finish(result, model, {"precision": "int8", "calibration": described})
    onnx.checker.check_model(result)
    path = atomic_write(destination, result.SerializeToString())
    return {
        **_report(path, source, "int8"),
        "calibration": {"people": reader.people, "images": reader.images, "source": reader.description},
    }


ACTIVATIONS = ("Relu", "Sigmoid", "Mul", "Clip", "HardSigmoid", "HardSwish", "LeakyRelu", "Tanh")


def _input_layer(model) -> list[str]:
    """Names of the first convolution (the one reading the input image) and of its activation
    (e.g. SiLU's Sigmoid and Mul): left float32. Its three input channels gain little from int8
    (on a Zen 4 CPU at batch 1 RTMPose-t's first conv ran slower in int8) and the input keeps
    float precision into the first layer."""
    image = model.graph.input[0].name
    initializers = {tensor.name for tensor in model.graph.initializer}
    first = next((node for node in model.graph.node if node.op_type == "Conv" and node.input[0] == image), None)
    if first is None:
        return []
    layer, produced = [first.name], set(first.output)
    for node in model.graph.node:
        inputs = [name for name in node.input if name and name not in initializers]
        if node.op_type in ACTIVATIONS and inputs and all(name in produced for name in inputs):
            layer.append(node.name)
            produced.update(node.output)
    return layer


def _named_nodes(model):
    """A copy whose nodes all have names (nodes_to_exclude names them; the exporter leaves a few unnamed)."""
    import onnx  # optional dependency (the export extra), imported on use

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    taken = {node.name for node in copy.graph.node}
    for index, node in enumerate(copy.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
            while node.name in taken:
                node.name += "_"
            taken.add(node.name)
    return copy


class CropReader:
    """onnxruntime's CalibrationDataReader over (image, boxes) samples: Predictor.crops of each
    sample's people, fed CALIBRATION_BATCH at a time. Counts what it fed (people, images)."""

    def __init__(
        self,
        predictor,
        samples: Iterable[tuple[np.ndarray, np.ndarray]],
        input_name: str,
        batch: int = CALIBRATION_BATCH,
    ):
        self.predictor, self.input_name, self.batch = predictor, input_name, int(batch)
        self.samples = samples
        self.description = getattr(samples, "description", "given samples")
        self.people = self.images = 0
        self._batches = self._generate()
        self._ahead: dict[str, np.ndarray] | None = None

    def _generate(self) -> Iterator[dict[str, np.ndarray]]:
        pending: list[np.ndarray] = []
        for image, boxes in self.samples:
            if not len(boxes):
                continue
            inputs = self.predictor.crops(image, boxes)[0]
            self.images += 1
            self.people += len(inputs)
            pending.extend(inputs)
            while len(pending) >= self.batch:
                yield {self.input_name: np.stack(pending[: self.batch])}
                pending = pending[self.batch :]
        if pending:
            yield {self.input_name: np.stack(pending)}

    def ready(self) -> bool:
        """Whether there is a first batch (read ahead and kept for get_next)."""
        if self._ahead is None:
            self._ahead = next(self._batches, None)
        return self._ahead is not None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._ahead is not None:
            batch, self._ahead = self._ahead, None
            return batch
        return next(self._batches, None)

    def rewind(self) -> None:
        raise NotImplementedError("calibration runs once")


class _Samples:
    """An iterable of (image_bgr, boxes_xyxy) with a `description` in words."""

    def __init__(self, generate, description: str):
        self._generate, self.description = generate, description

    def __iter__(self):
        return iter(self._generate())


def calibration_samples(
    predictor,
    calibration: Any = None,
    *,
    params: Params | None = None,
    detector: Any = "whole-image",
    count: int | None = None,
    seed: int = 0,
) -> _Samples:
    """(image_bgr, boxes_xyxy [n, 4]) pairs to calibrate on, read lazily (see quantize_int8)."""
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"calibration count must be a positive integer, got {count!r}")
    if calibration is None:
        if params is None:
            raise ValueError(
                "int8 calibration needs person crops: give params (their training split's people) "
                "or calibration= a folder or list of images"
            )
        return _training_people(predictor, params, count or DEFAULT_CALIBRATION_PEOPLE, seed)
    return _image_files(calibration, detector, count, seed)


def _training_people(predictor, params: Params, count: int, seed: int) -> _Samples:
    params = load_params(params)
    people = load_people(params, "train")[0]
    if not len(people):
        raise ValueError(f"the training split of {params.data.root} has no people to calibrate on")
    chosen = np.sort(np.random.default_rng(seed).choice(len(people), min(count, len(people)), replace=False))
    boxes = np.asarray(people.bbox_xyxy[chosen], np.float64)
    # people without a box (MPII: centre and scale only): the box whose crop is theirs
    missing = ~np.isfinite(boxes).all(axis=1)
    half = np.asarray(people.bbox_scale[chosen], np.float64) / (2 * float(params.data.bbox_padding))
    centre = np.asarray(people.bbox_center[chosen], np.float64)
    boxes[missing] = np.concatenate([centre - half, centre + half], axis=1)[missing]
    by_image: dict[int, list[int]] = {}
    for row, person in enumerate(chosen):
        by_image.setdefault(int(people.path_index[person]), []).append(row)

    def generate():
        for path_number, rows in by_image.items():
            # as training and evaluation read them: stored pixels, EXIF orientation not applied
            yield read_image(people.path(path_number)), boxes[rows]

    split = f"{params.data.dataset} training split at {params.data.root}"
    return _Samples(generate, f"{len(chosen)} people of the {split}, seed {seed}")


def _image_files(calibration: Any, detector: Any, count: int | None, seed: int) -> _Samples:
    if isinstance(calibration, (str, os.PathLike)):
        source = open_source(calibration)
        if source.kind == "video":
            raise ValueError(f"calibration {source.path}: expected a folder of images, an image or a list of images")
        files, where = source.images, str(source.path)
    else:
        files = [resolve_path(path) for path in calibration]
        if not files:
            raise ValueError("calibration: the list of images is empty")
        where = f"{len(files)} listed images"
    detect = (
        build_detector(detector, score_threshold=MIN_BOX_SCORE)
        if _is_file_spec(detector, ".json")
        else build_detector(detector)
    )

    def boxes_of(index: int, path: Path, image: np.ndarray) -> np.ndarray:
        boxes = boxes_for_frame(detect, image, Frame(index, path.name))
        return boxes[boxes[:, 4] >= MIN_BOX_SCORE, :4] if len(boxes) else boxes[:, :4]

    def generate():
        found = []  # (file index, box) of every person, then a seeded choice of `count`
        for index, path in enumerate(files):
            try:
                image = read_image(path, apply_orientation=True)  # as inference reads a user's photos
            except ImageReadError as error:
                warnings.warn(f"calibration: skipping unreadable image {path} ({error})", stacklevel=3)
                continue
            boxes = boxes_of(index, path, image)
            if count is None:
                yield image, boxes
            else:
                found.extend((index, box) for box in boxes)
        if count is not None and found:
            keep = np.sort(np.random.default_rng(seed).choice(len(found), min(count, len(found)), replace=False))
            chosen: dict[int, list[np.ndarray]] = {}
            for i in keep:
                chosen.setdefault(found[i][0], []).append(found[i][1])
            for index, boxes in chosen.items():
                yield read_image(files[index], apply_orientation=True), np.stack(boxes)

    boxes_from = detector if isinstance(detector, str) else repr(detector)
    limit = f", at most {count} people (seed {seed})" if count is not None else ""
    return _Samples(generate, f"{where}, boxes from {boxes_from}{limit}")


def _is_file_spec(spec: Any, suffix: str) -> bool:
    return isinstance(spec, (str, os.PathLike)) and str(spec).lower().endswith(suffix)


@contextlib.contextmanager
def _quiet_quantizer():
    """onnxruntime's quantizer logs a pre-processing hint at WARNING on the root logger each run."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# --------------------------------------------------------------------------- shared


def _check_float32(model, path: Path) -> None:
    keys = {entry.key for entry in model.metadata_props}
    if "input_size" not in keys:
        raise ValueError(f"{path} has no posecore metadata: convert a file written by posecore.export_onnx")
    precision = next((json.loads(e.value) for e in model.metadata_props if e.key == "precision"), "fp32")
    if precision != "fp32":
        raise ValueError(f"{path} is already {precision}: convert the fp32 export")


def _raw_outputs(model) -> list[str]:
    """The model's own outputs (heatmaps / simcc_x, simcc_y), before any in-graph decode."""
    return [out.name for out in model.graph.output if out.name not in DECODE_OUTPUTS]


def _finish(proto, original, extra: dict[str, Any]) -> None:
    """The fp32 file's metadata_props (in order), doc string, IR version and opset, plus `extra`."""
    del proto.metadata_props[:]
    for entry in original.metadata_props:
        if entry.key not in extra:
            proto.metadata_props.add(key=entry.key, value=entry.value)
    for key, value in extra.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    proto.doc_string = f"{original.doc_string} ({extra['precision']})"
    # the lowest IR version that carries the opsets, as export_onnx writes (the quantizer may add
    # the com.microsoft domain, which does not change it)
    import onnx  # optional dependency (the export extra), imported on use

    proto.ir_version = max(
        original.ir_version,
        onnx.helper.find_min_ir_version_for([o for o in proto.opset_import if o.domain in ("", "ai.onnx")]),
    )


def _report(path: Path, source: Path, precision: str) -> dict[str, Any]:
    size = path.stat().st_size
    return {
        "path": str(path),
        "precision": precision,
        "size_mb": round(size / 2**20, 2),
        "size_ratio": round(size / source.stat().st_size, 4),
    }
