"""Person detectors: the letterbox against Ultralytics' procedure, the three YOLO ONNX layouts on
tiny constant graphs that 'detect' planted boxes, NMS against OpenCV's, detections-file id forms
and their errors, and the checks on hand-given boxes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from posecore.detect import (
    DetectionsFile,
    FixedBoxes,
    Frame,
    OnnxDetector,
    WholeImageDetector,
    boxes_for_frame,
    build_detector,
    letterbox,
    nms,
)

LANDSCAPE = (1280, 720)  # (w, h)
PORTRAIT = (481, 853)  # odd sizes: the resized width / height needs rounding


def ultralytics_canvas(image, input_size):
    """The letterbox as Ultralytics writes it: resize by r, copyMakeBorder with 114, centred."""
    h, w = image.shape[:2]
    in_w, in_h = input_size
    r = min(in_w / w, in_h / h)
    new_w, new_h = int(round(w * r)), int(round(h * r))
    dw, dh = (in_w - new_w) / 2, (in_h - new_h) / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    # image point p lands at p * (new size / size) + (left, top) in the canvas
    return canvas, (new_w / w, new_h / h), (left, top)


def noise_image(size, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)


def planted_boxes(size):
    """Three people in image pixels (x1, y1, x2, y2), one touching the right/bottom border."""
    w, h = size
    return np.array(
        [[0.1 * w, 0.2 * h, 0.3 * w, 0.9 * h], [0.45 * w, 0.1 * h, 0.6 * w, 0.7 * h], [0.8 * w, 0.5 * h, w, h]]
    )


def to_input(boxes, scale, offset):
    boxes = np.asarray(boxes, dtype=np.float64).copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * scale[0] + offset[0]
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * scale[1] + offset[1]
    return boxes


def constant_model(path, output, input_shape, metadata=None):
    """An ONNX model whose only output is `output` (it reads its input, as a real one would)."""
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["planted", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        [
            numpy_helper.from_array(output.astype(np.float32), "planted"),
            numpy_helper.from_array(np.zeros((), np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def anchor_count(input_size):
    return sum((input_size[0] // s) * (input_size[1] // s) for s in (8, 16, 32))


def yolov8_output(person_boxes, input_size, num_classes=3):
    """[1, 4 + C, N]: the people (class 0), a near-duplicate of the first (NMS must drop it), a
    class-2 object and a low-score person (both must be ignored)."""
    n = anchor_count(input_size)
    out = np.zeros((4 + num_classes, n), np.float32)
    rows = [(box, 0, 0.9 - 0.1 * i) for i, box in enumerate(person_boxes)]
    rows += [(person_boxes[0] + [2, 1, 2, 1], 0, 0.6), (person_boxes[1] + 40, 2, 0.95), (person_boxes[2] - 30, 0, 0.1)]
    for column, (box, cls, score) in enumerate(rows):
        out[:4, 10 * column + 3] = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]]
        out[4 + cls, 10 * column + 3] = score
    return out[None]


def yolov5_output(person_boxes, input_size, num_classes=3):
    """[1, 3N, 5 + C] with the same content as yolov8_output (objectness x class score)."""
    v8 = yolov8_output(person_boxes, input_size, num_classes)[0].T
    out = np.zeros((3 * anchor_count(input_size), 5 + num_classes), np.float32)
    out[: len(v8), :4] = v8[:, :4]
    out[: len(v8), 4] = v8[:, 4:].max(axis=1) > 0
    out[: len(v8), 5:] = v8[:, 4:]
    return out[None]


def end2end_output(person_boxes, input_size):
    out = np.zeros((300, 6), np.float32)
    for i, box in enumerate(person_boxes):
        out[i] = [*box, 0.9 - 0.1 * i, 0]
    out[len(person_boxes)] = [*(person_boxes[0] + 5), 0.97, 3]  # another class
    return out[None]


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT, (200, 150)], ids=["landscape", "portrait", "upscaled"])
def test_letterbox_is_ultralytics(size):
    image = noise_image(size)
    expected, scale, offset = ultralytics_canvas(image, (640, 384))
    canvas, fit = letterbox(image, (640, 384))
    np.testing.assert_array_equal(canvas, expected)
    assert fit.scale == pytest.approx(scale) and fit.offset == offset


@pytest.mark.parametrize("size", [LANDSCAPE, PORTRAIT], ids=["landscape", "portrait"])
@pytest.mark.parametrize("layout", ["yolov8", "yolov5", "end2end"])
def test_onnx_layouts_report_planted_boxes(tmp_path, layout, size):
    image = noise_image(size)
    truth = planted_boxes(size)
    if layout == "yolov8":  # fixed square input
        input_size, input_shape, metadata = (640, 640), [1, 3, 640, 640], None
    elif layout == "yolov5":  # dynamic input: the size comes from Ultralytics' imgsz ([h, w])
        input_size, input_shape, metadata = (320, 256), [1, 3, "height", "width"], {"imgsz": "[256, 320]"}
    else:  # rectangular fixed input
        input_size, input_shape, metadata = (640, 384), [1, 3, 384, 640], None
    _, scale, offset = ultralytics_canvas(image, input_size)
    in_boxes = to_input(truth, scale, offset)
    output = {"yolov8": yolov8_output, "yolov5": yolov5_output, "end2end": end2end_output}[layout](in_boxes, input_size)
    detector = OnnxDetector(
        constant_model(tmp_path / "det.onnx", output, input_shape, metadata), score_threshold=0.25, iou_threshold=0.5
    )
    assert detector.layout == layout and detector.input_size == input_size
    boxes = detector.detect(image)
    assert boxes.dtype == np.float32 and boxes.shape == (3, 5)
    np.testing.assert_allclose(boxes[:, :4], truth, atol=1.0)
    np.testing.assert_allclose(boxes[:, 4], [0.9, 0.8, 0.7], atol=1e-6)


def test_onnx_boxes_are_clipped_to_the_image(tmp_path):
    size, input_size = (400, 300), (640, 640)
    _, scale, offset = ultralytics_canvas(noise_image(size), input_size)
    # reaching into the grey padding above and left of the image
    in_boxes = to_input(np.array([[-30.0, -20.0, 100.0, 200.0]]), scale, offset)
    output = end2end_output(in_boxes, input_size)
    detector = OnnxDetector(constant_model(tmp_path / "det.onnx", output, [1, 3, 640, 640]))
    np.testing.assert_allclose(detector.detect(noise_image(size))[:, :4], [[0, 0, 100, 200]], atol=1e-3)


def test_onnx_unknown_layout_names_shapes_and_supported_layouts(tmp_path):
    path = constant_model(tmp_path / "odd.onnx", np.zeros((1, 10, 10), np.float32), [1, 3, 64, 64])
    with pytest.raises(ValueError) as error:
        OnnxDetector(path)
    message = str(error.value)
    assert "odd.onnx" in message and "[1, 3, 64, 64]" in message and "[1, 10, 10]" in message
    assert all(name in message for name in ("yolov8", "yolov5", "end2end"))


def test_onnx_dynamic_input_without_imgsz_needs_input_size(tmp_path):
    output = end2end_output(np.array([[10.0, 10.0, 50.0, 60.0]]), (64, 64))
    path = constant_model(tmp_path / "dyn.onnx", output, [1, 3, "h", "w"])
    with pytest.raises(ValueError, match="input_size"):
        OnnxDetector(path)
    assert OnnxDetector(path, input_size=(64, 64)).input_size == (64, 64)


def test_nms_keeps_what_opencv_keeps():
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.uniform(0, 200, (40, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (40, 2))], axis=1)
        scores = rng.permutation(40) / 40 + 0.01
        ours = nms(boxes, scores, 0.45)
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        theirs = cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, 0.45)
        assert sorted(ours.tolist()) == sorted(np.asarray(theirs).reshape(-1).tolist())
        assert np.all(np.diff(scores[ours]) <= 0)  # best first


def test_nms_drops_only_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    # box 1 overlaps box 0 with IoU 9/11 = 0.82; box 3 equals box 0 but scores higher
    assert nms(boxes, np.array([0.8, 0.9, 0.5, 0.95]), 0.5).tolist() == [3, 2]
    assert nms(boxes, np.array([0.8, 0.9, 0.5, 0.95]), 0.85).tolist() == [3, 1, 2]


def write_detections(path, entries):
    path.write_text(json.dumps(entries))
    return path


def test_detections_file_image_id_forms(tmp_path):
    entries = [
        {"image_id": "000000397133.jpg", "bbox": [10, 20, 30, 40], "score": 0.9, "category_id": 1},
        {"image_id": 397133, "bbox": [50, 20, 30, 40], "score": 0.8},  # COCO integer id
        {"image_id": "street", "bbox": [1, 2, 3, 4], "score": 0.7},  # name without extension
        {"image_id": 0, "bbox": [5, 5, 10, 10], "score": 0.6},  # video frame 0
        {"image_id": "1.jpg", "bbox": [6, 6, 10, 10], "score": 0.5},  # video frame 1, AlphaPose
        {"image_id": "street.png", "bbox": [0, 0, 5, 5], "score": 0.4, "category_id": 3},  # not a person
        {"image_id": "street.png", "bbox": [0, 0, 0, 5], "score": 0.4},  # zero width
        {"image_id": "street.png", "bbox": [0, 0, 5, -1], "score": 0.4},  # negative height
        {"image_id": "street.png", "bbox": [500, 500, 5, 5], "score": 0.4},  # outside a 200 x 100 image
    ]
    detector = build_detector(write_detections(tmp_path / "dets.json", entries))
    assert isinstance(detector, DetectionsFile)
    image = np.zeros((100, 200, 3), np.uint8)
    coco = [[10, 20, 40, 60, 0.9], [50, 20, 80, 60, 0.8]]  # by file name and by integer id
    np.testing.assert_allclose(boxes_for_frame(detector, image, Frame(0, "000000397133.jpg")), coco, atol=1e-6)
    np.testing.assert_allclose(detector.boxes_for(Frame(3, "000000397133.png"), (200, 100)), coco[1:], atol=1e-6)
    np.testing.assert_allclose(boxes_for_frame(detector, image, Frame(0, "street.jpg")), [[1, 2, 4, 6, 0.7]], atol=1e-6)
    np.testing.assert_allclose(boxes_for_frame(detector, image, Frame(0)), [[5, 5, 15, 15, 0.6]], atol=1e-6)
    np.testing.assert_allclose(boxes_for_frame(detector, image, Frame(1)), [[6, 6, 16, 16, 0.5]], atol=1e-6)
    assert boxes_for_frame(detector, image, Frame(2)).shape == (0, 5)
    report = detector.report
    assert (report.entries, report.other_category, report.empty_box) == (9, 1, 2)
    assert report.outside_frame == 0  # "street.png" entries never looked up
    np.testing.assert_allclose(
        detector.boxes_for(Frame(5, "street.png"), (200, 100)), [[1, 2, 4, 6, 0.7]], atol=1e-6
    )  # and the box at (500, 500) is dropped
    assert detector.report.outside_frame == 1
    notes = "\n".join(detector.notes())
    assert "2 of 9 boxes have zero or negative" in notes and "1 boxes lie outside" in notes


@pytest.mark.parametrize(
    "entries, problem",
    [
        ([], "is empty"),
        ({"image_id": 1}, "expected a JSON list"),
        ([{"image_id": 1, "bbox": [1, 2, 3, 4], "score": 1}, 7], "entry 1 is not an object"),
        ([{"image_id": 1, "score": 1}], "entry 0 has no 'bbox'"),
        ([{"image_id": 1, "bbox": [1, 2, 3], "score": 1}], "entry 0 has a bbox that is not 4 numbers"),
        ([{"image_id": 1, "bbox": [1, 2, 3, "4"], "score": 1}], "entry 0 has a bbox that is not 4 numbers"),
        ([{"image_id": 1, "bbox": [1, 2, 3, 4], "score": float("nan")}], "entry 0 has a non-finite"),
        ([{"image_id": 1.5, "bbox": [1, 2, 3, 4], "score": 1}], "entry 0 has an image_id"),
        ([{"image_id": 1, "bbox": [1, 2, 3, 4], "score": None}], "entry 0 has a score that is not a number"),
    ],
)
def test_detections_file_errors_name_file_and_entry(tmp_path, entries, problem):
    path = write_detections(tmp_path / "bad.json", entries)
    with pytest.raises(ValueError, match=problem) as error:
        DetectionsFile(path)
    assert "bad.json" in str(error.value)


def test_detections_file_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        build_detector(path)


@pytest.mark.parametrize(
    "box, problem",
    [
        ([10, 10, 10, 50], "zero or negative size"),
        ([10, 60, 50, 10], "zero or negative size"),
        ([10, 10, float("inf"), 50], "not finite"),
        ([300, 10, 350, 50], "fully outside"),
        ([-50, -50, -10, -10], "fully outside"),
    ],
)
def test_hand_given_boxes_are_checked(box, problem):
    image = np.zeros((100, 200, 3), np.uint8)
    with pytest.raises(ValueError, match=problem):
        boxes_for_frame(FixedBoxes([box]), image, Frame(0, "a.jpg"))


def test_fixed_boxes_and_user_detectors_are_clipped():
    image = np.zeros((100, 200, 3), np.uint8)
    np.testing.assert_allclose(
        boxes_for_frame(build_detector([[-5, 10, 250, 90]]), image, Frame(0)), [[0, 10, 200, 90, 1]]
    )

    class Mine:
        def detect(self, image_bgr):
            return np.array([[10, 10, 60, 90, 0.5]])

    mine = Mine()
    assert build_detector(mine) is mine
    np.testing.assert_allclose(boxes_for_frame(mine, image, Frame(0)), [[10, 10, 60, 90, 0.5]])
    np.testing.assert_allclose(build_detector("whole-image").detect(image), [[0, 0, 200, 100, 1]])
    assert isinstance(build_detector(None), WholeImageDetector)


def test_build_detector_rejects_unknown_specs(tmp_path):
    with pytest.raises(ValueError, match="expected 'whole-image'"):
        build_detector("yolo.pt")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        build_detector(tmp_path / "missing.onnx")
