"""Person detectors for inference: one protocol, several sources of boxes.

A detector is any object with `detect(image_bgr) -> float32 [N, 5]`: one row per person,
(x1, y1, x2, y2, score) in the pixels of `image_bgr` (uint8 BGR [H, W, 3]). `build_detector(spec)`
turns what a user has into one:

- "whole-image": the frame itself as the only box (mmpose's whole-image mode).
- a `.json` of detections in COCO-results form: `DetectionsFile`.
- an `.onnx` YOLO person detector run with onnxruntime: `OnnxDetector` (layouts in its docstring).
- boxes given by hand, an array [N, 4] or [N, 5] of (x1, y1, x2, y2[, score]): `FixedBoxes`.
- any object with a `detect` method (a user's own detector), used as it is.

A detections file knows boxes per image, not per pixel content, so the inference loop asks every
detector through `boxes_for_frame(detector, image_bgr, frame)`: detectors with a `boxes_for(frame)`
method get the frame's identity, the others its pixels. Boxes from hand-given and user detectors
are checked (`check_boxes`): a non-finite, empty or fully-outside box is an error naming it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from posecore.files import finite_number
from posecore.geometry import MAX_PIXELS

WHOLE_IMAGE = "whole-image"
PERSON_CATEGORY_ID = 1  # COCO's person category in results files
LETTERBOX_GREY = 114
# output strides of the YOLO heads: P3-P5, and P3-P6 for the "-p6" / 1280 models
YOLO_STRIDES = ((8, 16, 32), (8, 16, 32, 64))
SUPPORTED_LAYOUTS = (
    "yolov8: output [1, 4 + C, N], rows cx, cy, w, h (letterboxed input pixels) then C class "
    "scores, no objectness; N = anchor points (8400 at 640 x 640) (YOLOv8, YOLO11)",
    "yolov5: output [1, N, 5 + C], columns cx, cy, w, h, objectness, C class scores; "
    "N = 3 anchors per point (25200 at 640 x 640)",
    "end2end: output [1, K, 6], rows x1, y1, x2, y2, score, class after NMS inside the model "
    "(YOLOv10, YOLO26, `export(nms=True)`)",
)


class Detector(Protocol):
    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        """uint8 BGR [H, W, 3] -> float32 [N, 5] (x1, y1, x2, y2, score) in image pixels."""


@dataclass(frozen=True)
class Frame:
    """Which picture a detector is looking at: `name` is the image file name (None for a video
    frame), `index` the frame number in a video (from 0) or the image's position in its folder."""

    index: int
    name: str | None = None

    @property
    def label(self) -> str:
        """The frame's name in results: the file name, or "<index>.jpg" for a video frame (as
        AlphaPose writes it)."""
        return self.name if self.name is not None else f"{self.index}.jpg"


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 5), dtype=np.float32)


# --------------------------------------------------------------------------- simple detectors


class WholeImageDetector:
    """The whole frame as one person box with score 1 (mmpose's whole-image inference)."""

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        height, width = image_bgr.shape[:2]
        return np.array([[0.0, 0.0, width, height, 1.0]], dtype=np.float32)

    def __repr__(self) -> str:
        return "WholeImageDetector()"


class FixedBoxes:
    """The same hand-given boxes in every frame: [N, 4] or [N, 5] of (x1, y1, x2, y2[, score])."""

    def __init__(self, boxes: Any):
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim == 1:
            boxes = boxes[None]
        if boxes.ndim != 2 or boxes.shape[1] not in (4, 5) or len(boxes) == 0:
            raise ValueError(
                f"hand-given boxes must be [N, 4] or [N, 5] rows of (x1, y1, x2, y2[, score]), got shape {boxes.shape}"
            )
        if boxes.shape[1] == 4:
            boxes = np.concatenate([boxes, np.ones((len(boxes), 1))], axis=1)
        self.boxes = boxes.astype(np.float32)

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        return self.boxes.copy()

    def __repr__(self) -> str:
        return f"FixedBoxes({len(self.boxes)} boxes)"


def check_boxes(boxes: Any, image_size: tuple[int, int], source: str) -> np.ndarray:
    """A detector's output as float32 [N, 5], or a ValueError naming `source` and the bad row.

    Rows must be finite, have x2 > x1 and y2 > y1, and overlap the image (w, h) = image_size;
    the boxes are then clipped to the image.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return empty_boxes()
    if boxes.ndim != 2 or boxes.shape[1] != 5:
        raise ValueError(
            f"{source}: detect() must return an array [N, 5] of (x1, y1, x2, y2, score), got shape {boxes.shape}"
        )
    width, height = image_size
    for row, (x1, y1, x2, y2, score) in enumerate(boxes):
        problem = None
        if not np.isfinite([x1, y1, x2, y2, score]).all():
            problem = "is not finite"
        elif x2 <= x1 or y2 <= y1:
            problem = "has zero or negative size (rows are x1, y1, x2, y2, score: x2 > x1 and y2 > y1)"
        elif x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            problem = f"lies fully outside the {width} x {height} image"
        if problem:
            raise ValueError(f"{source}: box {row} {[round(float(v), 2) for v in (x1, y1, x2, y2, score)]} {problem}")
    return clip_boxes(boxes, image_size).astype(np.float32)


def clip_boxes(boxes: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Boxes [N, 5+] with x in [0, w] and y in [0, h] (a copy)."""
    boxes = np.array(boxes, copy=True)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, image_size[0])
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, image_size[1])
    return boxes


def boxes_for_frame(detector: Detector | DetectionsFile, image_bgr: np.ndarray, frame: Frame) -> np.ndarray:
    """Boxes float32 [N, 5] of one frame from any detector (see the module docstring)."""
    lookup = getattr(detector, "boxes_for", None)
    if lookup is not None:
        return lookup(frame, image_size=(image_bgr.shape[1], image_bgr.shape[0]))
    boxes = detector.detect(image_bgr)
    if isinstance(detector, (WholeImageDetector, OnnxDetector)):
        return boxes
    return check_boxes(boxes, (image_bgr.shape[1], image_bgr.shape[0]), f"detector {detector!r} on {frame.label}")


# --------------------------------------------------------------------------- detections file


@dataclass
class DetectionsReport:
    """What a detections file held and what of it was used."""

    entries: int = 0
    other_category: int = 0
    below_threshold: int = 0
    empty_box: int = 0  # zero or negative width / height
    outside_frame: int = 0  # no overlap with the frame they belong to
    used: int = 0
    frames_with_entries: int = 0
    frames_matched: set = field(default_factory=set)

    def lines(self, path: Path) -> list[str]:
        notes = []
        if self.empty_box:
            notes.append(
                f"{path}: {self.empty_box} of {self.entries} boxes have zero or negative width/height and were dropped"
            )
        if self.outside_frame:
            notes.append(f"{path}: {self.outside_frame} boxes lie outside their frame and were dropped")
        unmatched = self.frames_with_entries - len(self.frames_matched)
        if unmatched:
            notes.append(
                f"{path}: {unmatched} of {self.frames_with_entries} image_ids matched no "
                "frame of the source (image_id: file name with or without extension, "
                'COCO integer id, or video frame index / "<frame>.jpg")'
            )
        return notes


class DetectionsFile:
    """Person boxes read from a COCO-results json: a list of {"image_id", "bbox": [x, y, w, h],
    "score", "category_id"} (category_id optional; entries of other categories are skipped).

    `image_id` names the picture: for images its file name (with or without extension) or its
    COCO integer id (the digits of the file name, 000000397133.jpg -> 397133); for video frames
    the frame index counted from 0, as an int or as "<frame>.jpg" (AlphaPose's form); a frame gets
    the boxes of every image_id that names it. Every
    entry is checked when the file is read; a malformed one is an error naming the file and the
    entry's index. Boxes of zero or negative size, and boxes outside their frame, are dropped and
    counted (`report`, `notes()`).
    """

    def __init__(self, path: str | os.PathLike, score_threshold: float = 0.0, category_id: int = PERSON_CATEGORY_ID):
        self.path = Path(path)
        self.score_threshold = float(score_threshold)
        self.report = DetectionsReport()
        self._boxes: dict[Any, list[list[float]]] = {}
        entries = self._read()
        self.report.entries = len(entries)
        for index, entry in enumerate(entries):
            key, box = self._parse(entry, index, category_id)
            if box is not None:
                self._boxes.setdefault(key, []).append(box)
        self.report.frames_with_entries = len(self._boxes)

    def _read(self) -> list:
        try:
            with open(self.path) as f:
                entries = json.load(f)
        except OSError as error:
            raise FileNotFoundError(f"detections file {self.path}: {error.strerror or error}") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"detections file {self.path} is not valid JSON ({error})") from None
        if not isinstance(entries, list):
            raise ValueError(
                f"detections file {self.path}: expected a JSON list of COCO results "
                f'({{"image_id", "bbox": [x, y, w, h], "score"}}), got a '
                f"{type(entries).__name__}"
            )
        if not entries:
            raise ValueError(
                f"detections file {self.path} is empty: it holds no detections; use "
                f"detector='{WHOLE_IMAGE}' or a detector .onnx instead"
            )
        return entries

    def _parse(self, entry: Any, index: int, category_id: int):
        """(key, [x1, y1, x2, y2, score] or None when the entry is skipped)."""
        image_id, (x, y, w, h), score = check_detection(entry, index, self.path)
        if entry.get("category_id", category_id) != category_id:
            self.report.other_category += 1
            return None, None
        if score < self.score_threshold:
            self.report.below_threshold += 1
            return None, None
        if w <= 0 or h <= 0:
            self.report.empty_box += 1
            return None, None
        return image_id, [x, y, x + w, y + h, float(score)]

    def boxes_for(self, frame: Frame, image_size: tuple[int, int]) -> np.ndarray:
        """float32 [N, 5] boxes of `frame`, clipped to image_size (w, h); [0, 5] when none."""
        keys = [key for key in frame_keys(frame) if key in self._boxes]
        if not keys:
            return empty_boxes()
        self.report.frames_matched.update(keys)
        boxes = np.asarray([box for key in keys for box in self._boxes[key]], dtype=np.float64)
        width, height = image_size
        inside = (boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < width) & (boxes[:, 1] < height)
        self.report.outside_frame += int((~inside).sum())
        self.report.used += int(inside.sum())
        return clip_boxes(boxes[inside], image_size).astype(np.float32)

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        raise TypeError(
            f"{self.path} holds boxes per image_id, not per picture: call "
            "boxes_for(Frame(...), image_size) or posecore.detect.boxes_for_frame"
        )

    def notes(self) -> list[str]:
        return self.report.lines(self.path)

    def __repr__(self) -> str:
        return f"DetectionsFile({str(self.path)!r})"


def frame_keys(frame: Frame) -> list[Any]:
    """The image_id values that name `frame` in a detections file (all of them count)."""
    if frame.name is None:
        return [frame.index, f"{frame.index}.jpg", str(frame.index)]
    stem = Path(frame.name).stem
    keys: list[Any] = [frame.name, stem]
    if stem.isdigit():
        keys.append(int(stem))
    return keys


def check_detection(entry: Any, index: int, path: str | os.PathLike) -> tuple[int | str, list[float], float]:
    """Entry `index` of a COCO-results detections file as (image_id, [x, y, w, h], score), or a
    ValueError naming the file and the entry: a dict with an image_id (integer or file name), a
    bbox of 4 finite numbers and a finite score. Boxes of zero or negative size pass: callers
    count and report them. The one check of detection entries (inference and the `test` split)."""

    def fail(problem: str):
        raise ValueError(f"detections file {path}: entry {index} {problem}: {json.dumps(entry)[:200]}")

    if not isinstance(entry, dict):
        fail("is not an object with image_id, bbox and score")
    for key in ("image_id", "bbox", "score"):
        if key not in entry:
            fail(f"has no {key!r}")
    image_id = entry["image_id"]
    if (
        isinstance(image_id, bool)
        or not isinstance(image_id, (int, str))
        or (isinstance(image_id, int) and abs(image_id) >= 2**63)
        or image_id == ""
    ):
        fail("has an image_id that is neither an integer nor a file name")
    bbox, score = entry["bbox"], entry["score"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        fail("has a bbox that is not 4 numbers [x, y, w, h]")
    if not _is_number(score):
        fail("has a score that is not a number")
    if not all(finite_number(v) for v in [*bbox, score]):  # NaN, inf, ints beyond float's range
        fail("has a non-finite bbox or score")
    if not all(abs(v) <= MAX_PIXELS for v in bbox):
        fail(f"has a bbox beyond {MAX_PIXELS:.0e} px")
    return image_id, [float(v) for v in bbox], float(score)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- ONNX YOLO detector


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the detector input: resized by `scale` (x, y) and shifted by
    `offset` (left, top) pixels. Image point p <-> input point p * scale + offset."""

    scale: tuple[float, float]
    offset: tuple[int, int]

    def to_image(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Boxes [N, 4] in input pixels -> image pixels."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.offset[0]) / self.scale[0]
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.offset[1]) / self.scale[1]
        return boxes


def letterbox(image_bgr: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Fit an image into input_size (w, h) as Ultralytics' LetterBox(auto=False) does.

    Scale by r = min(in_w / w, in_h / h) (upscaling too), size round(w r) x round(h r), bilinear,
    centred on 114 grey with left = round(pad_w / 2 - 0.1), top = round(pad_h / 2 - 0.1). The
    returned mapping uses the actual per-axis resize factors (round(w r) / w), so boxes map back
    exactly; Ultralytics' scale_boxes divides both axes by r, which differs by under a pixel.
    """
    height, width = image_bgr.shape[:2]
    in_w, in_h = input_size
    ratio = min(in_w / width, in_h / height)
    new_w, new_h = int(round(width * ratio)), int(round(height * ratio))
    left, top = int(round((in_w - new_w) / 2 - 0.1)), int(round((in_h - new_h) / 2 - 0.1))
    resized = (
        image_bgr
        if (new_w, new_h) == (width, height)
        else cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    canvas = np.full((in_h, in_w, 3), LETTERBOX_GREY, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox((new_w / width, new_h / height), (left, top))


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy class-agnostic NMS: indices [M] of the kept boxes, best score first.

    A box is dropped when its IoU with a kept, better-scored box exceeds `iou_threshold`.
    Equal scores keep the lower index first (stable order).
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep = []
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        order = rest[box_iou(boxes[best : best + 1], boxes[rest])[0] <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU [N, M] of boxes_a [N, 4+] and boxes_b [M, 4+] (x1, y1, x2, y2)."""
    a = np.asarray(boxes_a, dtype=np.float64)[:, None, :4]
    b = np.asarray(boxes_b, dtype=np.float64)[None, :, :4]
    width = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    height = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]).clip(0) * (a[..., 3] - a[..., 1]).clip(0)
    area_b = (b[..., 2] - b[..., 0]).clip(0) * (b[..., 3] - b[..., 1]).clip(0)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


class OnnxDetector:
    """A YOLO person detector exported to ONNX, run with onnxruntime (CUDA when its provider is
    installed, else CPU).

    Input [1, 3, H, W] RGB in [0, 1], letterboxed (`letterbox`); H, W from the input shape, else
    from Ultralytics' `imgsz` metadata ([h, w]), else `input_size` (w, h) must be given. The
    output layout is recognised from the first output's shape on a trial run (SUPPORTED_LAYOUTS):
    the anchor count N of the yolov8/yolov5 layouts follows from the input size. A person's score
    is the highest score among `classes` (times the objectness for yolov5); boxes under
    `score_threshold` are dropped, then class-agnostic NMS at `iou_threshold`, at most
    `max_detections` kept; boxes are mapped back through the letterbox and clipped to the image.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        classes: int | Sequence[int] = 0,
        score_threshold: float = 0.25,
        iou_threshold: float = 0.7,
        max_detections: int = 300,
        input_size: tuple[int, int] | None = None,
        providers: Sequence[str] | None = None,
    ):
        import onnxruntime as ort  # optional dependency (the export extra), imported on use

        self.path = Path(path)
        self.classes = [int(classes)] if np.isscalar(classes) else [int(c) for c in classes]
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        if providers is None:
            available = ort.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.session = ort.InferenceSession(str(self.path), providers=list(providers))
        except Exception as error:
            raise ValueError(f"detector {self.path} cannot be loaded by onnxruntime: {error}") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if "float16" in model_input.type else np.float32
        self.input_size = tuple(input_size) if input_size else self._input_size()
        self.layout = self._recognise_layout()

    def _shapes(self) -> str:
        inputs = ", ".join(f"{i.name} {i.shape}" for i in self.session.get_inputs())
        outputs = ", ".join(f"{o.name} {o.shape}" for o in self.session.get_outputs())
        return f"inputs: {inputs}; outputs: {outputs}"

    def _input_size(self) -> tuple[int, int]:
        shape = self.session.get_inputs()[0].shape
        if len(shape) != 4 or shape[1] != 3:
            raise ValueError(self._unsupported(f"the input must be [1, 3, H, W], got {shape}"))
        height, width = shape[2:]
        if isinstance(height, int) and isinstance(width, int):
            return width, height
        imgsz = self.session.get_modelmeta().custom_metadata_map.get("imgsz", "")
        sizes = [int(v) for v in re.findall(r"\d+", imgsz)]
        if len(sizes) == 1:
            sizes *= 2
        if len(sizes) == 2:
            return sizes[1], sizes[0]  # Ultralytics writes imgsz as [h, w]
        raise ValueError(
            f"detector {self.path} has a dynamic input size and no 'imgsz' metadata: "
            f"pass input_size=(w, h) ({self._shapes()})"
        )

    def _recognise_layout(self) -> str:
        width, height = self.input_size
        trial = self._run(np.full((height, width, 3), LETTERBOX_GREY, np.uint8))
        shape = trial.shape
        anchors = {sum((width // s) * (height // s) for s in strides) for strides in YOLO_STRIDES}
        if len(shape) == 3 and shape[0] == 1:
            _, rows, cols = shape
            if cols in anchors and rows > 4:
                return "yolov8"
            if rows in {3 * n for n in anchors} and cols > 5:
                return "yolov5"
            if cols == 6:
                return "end2end"
        raise ValueError(self._unsupported(f"its first output is {list(shape)} for a {width} x {height} input"))

    def _unsupported(self, problem: str) -> str:
        layouts = "\n  ".join(SUPPORTED_LAYOUTS)
        return (
            f"detector {self.path} has an unsupported layout: {problem} ({self._shapes()}). "
            f"Supported (input [1, 3, H, W] float RGB in [0, 1]):\n  {layouts}"
        )

    def _run(self, canvas_bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(canvas_bgr, cv2.COLOR_BGR2RGB)
        blob = (rgb.transpose(2, 0, 1)[None].astype(np.float32) / 255.0).astype(self.input_dtype)
        return np.asarray(self.session.run(None, {self.input_name: blob})[0], dtype=np.float32)

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        canvas, fit = letterbox(image_bgr, self.input_size)
        boxes, scores = self._decode(self._run(canvas)[0])
        keep = scores >= self.score_threshold
        boxes, scores = boxes[keep], scores[keep]
        if self.layout != "end2end":
            kept = nms(boxes, scores, self.iou_threshold)
            boxes, scores = boxes[kept], scores[kept]
        order = np.argsort(-scores, kind="stable")[: self.max_detections]
        image_size = (image_bgr.shape[1], image_bgr.shape[0])
        mapped = np.concatenate([fit.to_image(boxes[order]), scores[order, None]], axis=1)
        mapped = clip_boxes(mapped, image_size)
        nonempty = (mapped[:, 2] > mapped[:, 0]) & (mapped[:, 3] > mapped[:, 1])
        return mapped[nonempty].astype(np.float32)

    def _decode(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One image's raw output -> (boxes [N, 4] x1, y1, x2, y2 in input pixels, scores [N])."""
        if self.layout == "end2end":
            person = np.isin(output[:, 5].round().astype(np.int64), self.classes)
            return output[person, :4].astype(np.float64), output[person, 4].astype(np.float64)
        if self.layout == "yolov8":
            rows = output.T  # [N, 4 + C]
            scores = rows[:, [4 + c for c in self.classes]].max(axis=1)
        else:
            rows = output  # [N, 5 + C]
            scores = rows[:, 4] * rows[:, [5 + c for c in self.classes]].max(axis=1)
        cx, cy, w, h = (rows[:, i].astype(np.float64) for i in range(4))
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return boxes, scores.astype(np.float64)

    def __repr__(self) -> str:
        return f"OnnxDetector({str(self.path)!r}, layout={self.layout!r})"


# --------------------------------------------------------------------------- factory


def build_detector(spec: Any = WHOLE_IMAGE, **options: Any) -> Detector | DetectionsFile:
    """A detector from `spec`: "whole-image", a .json detections file, a .onnx YOLO model, an
    array of boxes [N, 4|5] (x1, y1, x2, y2[, score]) or any object with `detect`.

    `options` go to the chosen class (DetectionsFile: score_threshold; OnnxDetector: classes,
    score_threshold, iou_threshold, max_detections, input_size, providers).
    """
    if hasattr(spec, "detect") or hasattr(spec, "boxes_for"):
        return spec
    if spec is None or (isinstance(spec, str) and spec == WHOLE_IMAGE):
        return WholeImageDetector()
    if isinstance(spec, (str, os.PathLike)):
        path = Path(os.path.expanduser(str(spec)))
        suffix = path.suffix.lower()
        if suffix not in (".json", ".onnx"):
            raise ValueError(
                f"detector {str(spec)!r}: expected '{WHOLE_IMAGE}', a detections .json "
                "(COCO results) or a person detector .onnx"
            )
        if not path.is_file():
            raise FileNotFoundError(f"detector file {path} does not exist")
        if suffix == ".json":
            return DetectionsFile(path, **options)
        return OnnxDetector(path, **options)
    if isinstance(spec, (list, tuple, np.ndarray)):
        return FixedBoxes(spec)
    raise TypeError(
        f"detector {spec!r}: expected '{WHOLE_IMAGE}', a .json / .onnx path, boxes "
        "[N, 4|5] or an object with detect(image_bgr) -> [N, 5]"
    )


def detector_note(detector: Any) -> str | None:
    """A hint for users running whole-image mode on pictures with several people."""
    if isinstance(detector, WholeImageDetector):
        return (
            "whole-image mode: each frame is one person box. For pictures with several people "
            "pass detector=<detections .json> (COCO results: image_id, bbox [x, y, w, h], "
            "score) or a YOLO person detector exported to .onnx (e.g. Ultralytics "
            "`yolo export model=yolov8n.pt format=onnx`)"
        )
    return None
