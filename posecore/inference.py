"""Poses on a user's images and videos: person detector -> batched top-down pose -> tracking ->
AlphaPose-format results, drawn frames and a summary.

`infer(params, checkpoint, source, detector=...)` (also `python -m posecore.infer`, the CLI in
`main`) reads `source` (one image, a folder of images sorted by name, or a video file), finds
people with the detector (posecore.detect), crops every person as training did (box grown to the
input aspect ratio times bbox_padding), runs the pose model on the crops of several frames at
once, decodes the heatmaps with posecore.codec and maps the joints back to image pixels.

The pose model is either params' PyTorch model with `checkpoint`'s weights (any file
posecore.load_checkpoint reads, or "best"/"last" of `run_name`) or a posecore-exported `.onnx`
(its metadata_props give input size, mean/std, padding, heatmap size and the keypoint set); both
go through the same crops and the same decoding.

OUT (out_dir) receives:
- results.json: AlphaPose's list of {"image_id", "category_id": 1, "keypoints": [x, y, score] * K,
  "score", "box": [x, y, w, h], "idx"}; image_id is the file name for images and "<frame>.jpg"
  for video frames (from 0); score = mean joint score x box score; idx = the track id on videos
  (1, 2, ...), the person's number in its image otherwise.
- vis/<image stem>.jpg per image, or <video stem>.mp4 (same size, frame count and fps), people
  drawn in their track's colour with the id printed.
- summary.json: frames, persons, tracks, frames/s of the detector, the pose stage and end to end.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from posecore.detect import Frame, boxes_for_frame, build_detector, detector_note
from posecore.codec import HeatmapCodec
from posecore.data.sources import Source, open_source, read_frames
from posecore.geometry import box_to_center_scale
from posecore.keypoints import KeypointInfo
from posecore.runs import atomic_write, default_run_name, outputs_root, resolve_path, run_dir, run_lock, write_json

VIDEO_CODEC = "mp4v"
DEFAULT_FPS = 25.0            # for videos whose container does not say
MAX_PENDING_FRAMES = 32       # frames held while their people fill a pose batch
PALETTE = ((75, 25, 230), (75, 180, 60), (25, 225, 255), (200, 130, 0), (48, 130, 245),
           (180, 30, 145), (240, 240, 70), (230, 50, 240), (60, 245, 210), (190, 190, 250),
           (128, 128, 0), (255, 190, 230), (40, 110, 170), (200, 250, 255), (0, 0, 128))  # BGR


# --------------------------------------------------------------------------- pose backends

@dataclass
class PoseModel:
    """A pose network with what is needed to feed it and read it: both backends share this."""

    backend: str                   # "pytorch" | "onnxruntime"
    info: KeypointInfo
    codec: HeatmapCodec            # crop convention, decoding, flip shift: the training run's
    mean: np.ndarray               # [3] RGB
    std: np.ndarray                # [3] RGB
    bbox_padding: float
    run: Any                       # float32 [N, 3, H, W] -> float32 [N, K, Hh, Wh] (numpy)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.codec.input_size

    def heatmaps(self, images: np.ndarray, flip: bool, shift: bool = True) -> np.ndarray:
        """float32 [N, K, Hh, Wh]; with `flip` averaged with the un-flipped heatmaps of the
        mirrored crops (the references' flip test, re-aligned by the codec's flip shift)."""
        heatmaps = self.run(images)
        if flip:
            import torch

            mirrored = torch.from_numpy(self.run(np.ascontiguousarray(images[..., ::-1])))
            heatmaps = (heatmaps + self.codec.flip_back(mirrored, self.info.flip_index(), shift).numpy()) * 0.5
        return heatmaps


def load_pose_model(params: Any, checkpoint: str | os.PathLike, run_name: str | None = None,
                    device: Any = None) -> PoseModel:
    """The PyTorch model of `params` with `checkpoint`'s weights, or an exported .onnx; on `device`
    (default: posecore's choice; onnxruntime uses CUDA when the device is a GPU and its provider
    is installed, else the CPU)."""
    import torch

    from posecore.device import get_device

    device = torch.device(device) if device is not None else get_device()
    if str(checkpoint).lower().endswith(".onnx"):
        return _onnx_pose_model(resolve_path(checkpoint), device, params)
    return _torch_pose_model(params, checkpoint, run_name, device)


def _torch_pose_model(params: Any, checkpoint: Any, run_name: str | None, device: Any) -> PoseModel:
    import torch

    from posecore.checkpoints import find_checkpoint, load_model, with_trained_codec
    from posecore.codec import build_codec
    from posecore.data import resolve_keypoints
    from posecore.keypoints import keypoint_info

    if params is None:
        raise ValueError(f"checkpoint {checkpoint}: a PyTorch checkpoint needs params (the model it was "
                         "trained with); only a posecore-exported .onnx carries its own")
    path = find_checkpoint(checkpoint, run_name)
    params = with_trained_codec(resolve_keypoints(params, run_name), path)
    model, _ = load_model(params, path, device)

    @torch.no_grad()
    def run(images: np.ndarray) -> np.ndarray:
        out = model(torch.from_numpy(images).to(device))
        out = out[-1] if isinstance(out, (list, tuple)) else out
        return out.float().cpu().numpy()

    data = params.data
    return PoseModel("pytorch", keypoint_info(params), build_codec(params),
                     np.asarray(data.mean, np.float32), np.asarray(data.std, np.float32),
                     float(data.bbox_padding), run)


def _onnx_pose_model(path: Path, device: Any, params: Any) -> PoseModel:
    """An exported model; its metadata give everything but eval.decode / eval.dark_kernel when
    params are given (else the export's own decoding)."""
    import onnxruntime as ort

    from posecore.codec import ALL_CODECS
    from posecore.export import check_pose_metadata, read_metadata
    from posecore.keypoints import from_record

    if not path.is_file():
        raise FileNotFoundError(f"pose model {path} does not exist")
    metadata = read_metadata(path)
    check_pose_metadata(metadata, path)
    info = from_record(metadata, str(path))
    decoding = (params.eval.decode, params.eval.dark_kernel) if params is not None else ()
    # exports from before codecs were msra
    codec = ALL_CODECS[metadata.get("codec", "msra")].from_metadata(metadata, *decoding)
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), providers=providers)
    input_name = session.get_inputs()[0].name
    fixed_batch = session.get_inputs()[0].shape[0]

    def run(images: np.ndarray) -> np.ndarray:
        if isinstance(fixed_batch, int) and fixed_batch != len(images):
            return np.concatenate([run(images[i:i + fixed_batch]) for i in range(0, len(images), fixed_batch)])
        return session.run(["heatmaps"], {input_name: np.ascontiguousarray(images, np.float32)})[0]

    return PoseModel("onnxruntime", info, codec, np.asarray(metadata["mean"], np.float32),
                     np.asarray(metadata["std"], np.float32), float(metadata["bbox_padding"]), run)


# --------------------------------------------------------------------------- crops and decoding

def person_crops(image_bgr: np.ndarray, boxes: np.ndarray, model: PoseModel
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes [n, 5+] (x1, y1, x2, y2, ...) -> (inputs float32 [n, 3, H, W] normalized RGB,
    bbox_center [n, 2], bbox_scale [n, 2]), cropped as in training and evaluation."""
    from posecore.data import normalize_crop

    in_w, in_h = model.input_size
    inputs = np.empty((len(boxes), 3, in_h, in_w), np.float32)
    centers = np.zeros((len(boxes), 2), np.float32)
    scales = np.zeros((len(boxes), 2), np.float32)
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=np.float64)[:, :4]):
        centers[i], scales[i] = box_to_center_scale((x1, y1, x2 - x1, y2 - y1), in_w / in_h, model.bbox_padding)
        matrix = model.codec.crop_matrix(centers[i], scales[i])
        crop = cv2.warpAffine(image_bgr, matrix, (in_w, in_h), flags=cv2.INTER_LINEAR)
        normalize_crop(crop, model.mean, model.std, out=inputs[i])
    return inputs, centers, scales


def decode_people(heatmaps: np.ndarray, centers: np.ndarray, scales: np.ndarray, model: PoseModel) -> np.ndarray:
    """Heatmaps [n, K, Hh, Wh] -> keypoints float64 [n, K, 3] (x, y in image pixels, score), as
    evaluation decodes them (the model's codec)."""
    coords, scores = model.codec.decode(heatmaps)
    xy = model.codec.heatmap_to_image(coords, centers, scales)
    return np.concatenate([xy, scores[..., None]], axis=-1).astype(np.float64)


# --------------------------------------------------------------------------- drawing

def track_colour(track_id: int) -> tuple[int, int, int]:
    return PALETTE[(int(track_id) - 1) % len(PALETTE)]


def draw_people_bgr(image_bgr: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, ids: np.ndarray,
                    skeleton, min_score: float, fine_joints=()) -> np.ndarray:
    """A copy of the frame with each person's box, limbs and joints (score >= min_score) in the
    colour of its id, and the id printed above the box. `fine_joints` (KeypointInfo.fine_joints:
    faces, hands) are drawn with one-pixel links and dots, the body's limbs thicker with white joints."""
    canvas = image_bgr.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    fine = set(int(j) for j in fine_joints)
    for box, points, track_id in zip(boxes, keypoints, ids):
        colour = track_colour(track_id)
        x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 1, cv2.LINE_AA)
        shown = points[:, 2] >= min_score
        xy = [(int(round(x)), int(round(y))) for x, y in points[:, :2]]
        for a, b in skeleton:
            if shown[a] and shown[b]:
                cv2.line(canvas, xy[a], xy[b], colour, 1 if a in fine or b in fine else thickness + 1, cv2.LINE_AA)
        for joint, (point, ok) in enumerate(zip(xy, shown)):
            if ok and joint in fine:
                cv2.circle(canvas, point, 1, colour, -1, cv2.LINE_AA)
            elif ok:
                cv2.circle(canvas, point, thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.putText(canvas, str(int(track_id)), (x1 + 2, max(y1 - 4, 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * thickness, colour, thickness, cv2.LINE_AA)
    return canvas


# --------------------------------------------------------------------------- the pipeline

@dataclass
class _Pending:
    """A frame whose people wait for their pose batch."""

    frame: Frame
    image: np.ndarray
    boxes: np.ndarray          # [n, 5]
    inputs: np.ndarray         # [n, 3, H, W]
    centers: np.ndarray        # [n, 2]
    scales: np.ndarray         # [n, 2]


class _Pipeline:
    """Frames in, in order; people batched across frames through the pose model; then per frame
    tracking, results and drawing. `seconds` accumulates the time of each stage."""

    STAGES = ("read", "detect", "crop", "forward", "decode", "track", "write")

    def __init__(self, model: PoseModel, params: Any, tracker: Any, writer: "_Writer", batch_size: int,
                 flip: bool):
        self.model, self.params, self.tracker, self.writer = model, params, tracker, writer
        self.batch_size, self.flip = batch_size, flip
        self.pending: list[_Pending] = []
        self.results: list[dict] = []
        self.track_ids: set[int] = set()
        self.forward_batches = 0
        self.seconds = dict.fromkeys(self.STAGES, 0.0)

    def tick(self, stage: str, started: float) -> float:
        """Add the time since `started` to `stage`; returns now."""
        now = time.perf_counter()
        self.seconds[stage] += now - started
        return now

    def add(self, frame: Frame, image: np.ndarray, boxes: np.ndarray) -> None:
        started = time.perf_counter()
        self.pending.append(_Pending(frame, image, boxes, *person_crops(image, boxes, self.model)))
        self.tick("crop", started)
        people = sum(len(p.boxes) for p in self.pending)
        if people >= self.batch_size or len(self.pending) >= MAX_PENDING_FRAMES:
            self.flush()

    def flush(self) -> None:
        keypoints = self._poses()
        for pending, people in zip(self.pending, keypoints):
            self._emit(pending, people)
        self.pending = []

    def _poses(self) -> list[np.ndarray]:
        """Keypoints [n, K, 3] of each pending frame, all people through the model in batches."""
        counts = [len(p.boxes) for p in self.pending]
        if not sum(counts):
            return [np.zeros((0, self.model.info.num_joints, 3)) for _ in counts]
        inputs, centers, scales = (np.concatenate([getattr(p, key) for p in self.pending])
                                   for key in ("inputs", "centers", "scales"))
        started = time.perf_counter()
        evaluation = self.params.eval
        heatmaps = np.concatenate([self.model.heatmaps(inputs[i:i + self.batch_size], self.flip,
                                                       evaluation.shift_heatmap)
                                   for i in range(0, len(inputs), self.batch_size)])
        self.forward_batches += -(-len(inputs) // self.batch_size)
        started = self.tick("forward", started)
        keypoints = decode_people(heatmaps, centers, scales, self.model)
        self.tick("decode", started)
        return np.split(keypoints, np.cumsum(counts)[:-1])

    def _emit(self, pending: _Pending, keypoints: np.ndarray) -> None:
        started = time.perf_counter()
        boxes = pending.boxes
        ids = self.tracker.update(boxes, keypoints) if self.tracker else np.arange(1, len(boxes) + 1)
        self.track_ids.update(int(i) for i in ids)
        started = self.tick("track", started)
        self.results.extend(alphapose_results(pending.frame.label, boxes, keypoints, ids))
        self.writer.write(pending.frame, pending.image, lambda image: draw_people_bgr(
            image, boxes, keypoints, ids, self.model.info.skeleton, self.params.infer.draw_min_score,
            self.model.info.fine_joints()))
        self.tick("write", started)


def infer(params: Any, checkpoint: str | os.PathLike, source: str | os.PathLike,
          detector: Any = "whole-image", out_dir: str | os.PathLike | None = None,
          track: bool | None = None, flip: bool = False, draw: bool = True,
          run_name: str | None = None, batch_size: int | None = None, device: Any = None,
          progress: bool = True) -> dict[str, Any]:
    """Poses of every person in `source`; writes OUT (see the module docstring), returns the summary.

    params: Params or a name/path for posecore.load_params (None is allowed with an .onnx
    checkpoint; then the infer/eval settings are the defaults). checkpoint: a file in any format
    load_checkpoint reads, "best"/"last" of `run_name`, or a posecore .onnx. detector: see
    posecore.detect.build_detector. out_dir: default outputs/<run_name or infer-...>/infer/<source stem>.
    track: None = on for videos, off for images. flip: flip test. draw: write vis/ or the .mp4.
    batch_size: people per pose batch (default eval.batch_size). device: see load_pose_model.
    """
    from tqdm.auto import tqdm

    from posecore.params import Params, load_params
    from posecore.track import Tracker

    params = load_params(params) if params is not None else None
    model = load_pose_model(params, checkpoint, run_name, device)
    params = params or Params()   # an .onnx carries its model; the settings are then the defaults
    settings = params.infer
    detector = build_detector(detector, **_detector_options(detector, settings))
    src = open_source(source)
    track = src.kind == "video" if track is None else bool(track)
    out = resolve_path(out_dir) if out_dir is not None else (
        run_dir(run_name or default_run_name("infer")) / "infer" / src.stem)
    with _run_writer(out):   # what goes into a run folder holds its writer lock, as training does
        out.mkdir(parents=True, exist_ok=True)
        tracker = Tracker(model.info.sigmas, settings.track_iou_weight, settings.track_min_similarity,
                          settings.track_max_missed, settings.track_max_centre_distance) if track else None
        writer = _Writer(out, src, draw)
        pipeline = _Pipeline(model, params, tracker, writer, int(batch_size or params.eval.batch_size), flip)
        skipped: list[str] = []
        frames = 0
        total = src.frame_count if src.kind == "video" else len(src.images)
        started_all = started = time.perf_counter()
        for frame, image in tqdm(read_frames(src), total=total or None, desc=f"infer {src.path.name}",
                                 unit="frame", disable=not progress, leave=False):
            started = pipeline.tick("read", started)
            if image is None:
                skipped.append(frame.label)
                continue
            frames += 1
            boxes = boxes_for_frame(detector, image, frame)
            pipeline.tick("detect", started)
            pipeline.add(frame, image, boxes)
            started = time.perf_counter()
        pipeline.flush()
        elapsed = time.perf_counter() - started_all
        if src.kind == "video" and frames == 0:
            warnings.warn(f"skipping video {src.path}: OpenCV cannot read any frame of it", stacklevel=2)
            skipped.append(src.path.name)
        outputs = writer.close()
        atomic_write(out / "results.json", json.dumps(pipeline.results))
        summary = _summary(src, out, outputs, model, detector, frames, pipeline, track, skipped, elapsed, flip)
        write_json(out / "summary.json", summary)
        if progress:
            print(format_summary(summary), flush=True)
        return summary


def _run_writer(out: Path) -> contextlib.AbstractContextManager:
    """The writer lock of the run folder `out` lies in (outputs/<run>/...), or nothing for a
    folder outside the runs."""
    try:
        relative = out.resolve().relative_to(outputs_root().resolve())
    except ValueError:
        return contextlib.nullcontext()
    return run_lock(outputs_root() / relative.parts[0], "inference") if relative.parts else contextlib.nullcontext()


def _detector_options(spec: Any, settings: Any) -> dict[str, Any]:
    suffix = Path(str(spec)).suffix.lower() if isinstance(spec, (str, os.PathLike)) else ""
    if suffix == ".onnx":
        return {"classes": settings.person_class, "score_threshold": settings.detector_score_thr,
                "iou_threshold": settings.detector_nms_iou}
    if suffix == ".json":
        return {"score_threshold": settings.detector_score_thr}
    return {}


def tracks_from_results(results: list[dict], joint: int) -> dict[int, dict]:
    """results.json rows -> {idx: {"frame": int [T], "xy": [T, 2], "score": [T]}} for one joint.

    Frames are numbered by order of appearance of their image_id (for videos: the frame index).
    """
    order: dict[str, int] = {}
    tracks: dict[int, dict] = {}
    for row in results:
        frame = order.setdefault(row["image_id"], len(order))
        x, y, score = row["keypoints"][3 * joint:3 * joint + 3]
        track = tracks.setdefault(int(row["idx"]), {"frame": [], "xy": [], "score": []})
        track["frame"].append(frame)
        track["xy"].append((x, y))
        track["score"].append(score)
    return {idx: {key: np.asarray(values) for key, values in track.items()} for idx, track in tracks.items()}


def alphapose_results(image_id: str, boxes: np.ndarray, keypoints: np.ndarray, ids: np.ndarray) -> list[dict]:
    """One frame's people in AlphaPose's results form (see the module docstring)."""
    rows = []
    for box, points, track_id in zip(boxes, keypoints, ids):
        x1, y1, x2, y2, box_score = (float(v) for v in box[:5])
        rows.append({
            "image_id": image_id,
            "category_id": 1,
            "keypoints": [round(float(v), 4) for v in points.reshape(-1)],
            "score": round(float(points[:, 2].mean()) * box_score, 6),
            "box": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
            "idx": int(track_id),
        })
    return rows


class _Writer:
    """Drawn output: vis/<stem>.jpg per image, or one .mp4 for a video (written to a temp file and
    renamed when complete)."""

    def __init__(self, out: Path, source: Source, draw: bool):
        self.out, self.source, self.draw = out, source, draw
        self.video: cv2.VideoWriter | None = None
        self.video_tmp = out / f".{source.stem}.partial.mp4"
        self.fps = source.fps or DEFAULT_FPS
        self.frames = 0

    def write(self, frame: Frame, image: np.ndarray, render) -> None:
        if not self.draw:
            return
        canvas = render(image)
        if self.source.kind != "video":
            ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {frame.label}")
            atomic_write(self.out / "vis" / f"{Path(frame.label).stem}.jpg", encoded.tobytes())
            return
        if self.video is None:
            height, width = image.shape[:2]
            self.video = cv2.VideoWriter(str(self.video_tmp), cv2.VideoWriter_fourcc(*VIDEO_CODEC),
                                         self.fps, (width, height))
            if not self.video.isOpened():
                raise RuntimeError(f"OpenCV cannot write {self.video_tmp} with codec {VIDEO_CODEC!r}")
        self.video.write(canvas)
        self.frames += 1

    def close(self) -> dict[str, str]:
        if not self.draw:
            return {}
        if self.source.kind != "video":
            return {"vis": str(self.out / "vis")}
        if self.video is None:
            return {}
        self.video.release()
        final = self.out / f"{self.source.stem}.mp4"
        os.replace(self.video_tmp, final)
        return {"video": str(final)}


def _summary(src: Source, out: Path, outputs: dict, model: PoseModel, detector: Any, frames: int,
             pipeline: _Pipeline, track: bool, skipped: list[str], elapsed: float, flip: bool) -> dict[str, Any]:
    seconds = pipeline.seconds
    pose = seconds["crop"] + seconds["forward"] + seconds["decode"]
    persons = len(pipeline.results)

    def rate(count: int, spent: float) -> float | None:
        return round(count / spent, 2) if spent > 0 else None

    notes = list(getattr(detector, "notes", lambda: [])())
    note = detector_note(detector)
    if note:
        notes.append(note)
    return {
        "source": str(src.path),
        "kind": src.kind,
        "frames": frames,
        "persons": persons,
        "tracks": len(pipeline.track_ids) if track else None,
        "skipped": skipped,
        "detector": repr(detector),
        "pose_backend": model.backend,
        "keypoint_set": model.info.dataset,
        "joint_names": list(model.info.joint_names),
        "keypoints": model.info.record(),
        "flip": flip,
        "fps": {"detector": rate(frames, seconds["detect"]), "pose": rate(frames, pose),
                "end_to_end": rate(frames, elapsed)},
        "persons_per_s": {"pose": rate(persons, pose)},
        "ms_per_frame": {stage: round(1000 * spent / frames, 3) if frames else None
                         for stage, spent in seconds.items()},
        # what the pose stage costs beyond the model's own batched forward
        "pose_overhead": round((pose - seconds["forward"]) / seconds["forward"], 4)
        if seconds["forward"] > 0 else None,
        "forward_batches": pipeline.forward_batches,
        "seconds": round(elapsed, 3),
        "out_dir": str(out),
        "results": str(out / "results.json"),
        **outputs,
        "notes": notes,
    }


def format_summary(summary: dict[str, Any]) -> str:
    fps = summary["fps"]
    lines = [f"{summary['source']}: {summary['frames']} frames, {summary['persons']} persons"
             + (f", {summary['tracks']} tracks" if summary["tracks"] is not None else ""),
             "frames/s: detector {}, pose stage {}, end to end {} ({} backend)".format(
                 fps["detector"], fps["pose"], fps["end_to_end"], summary["pose_backend"]),
             f"results: {summary['results']}"]
    lines += [f"{key}: {summary[key]}" for key in ("video", "vis") if key in summary]
    lines += [f"skipped (unreadable): {', '.join(summary['skipped'])}"] if summary["skipped"] else []
    lines += [f"note: {note}" for note in summary["notes"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """`python -m posecore.infer SOURCE --checkpoint CKPT [...]`: infer() from a shell."""
    import argparse

    import yaml

    parser = argparse.ArgumentParser(prog="python -m posecore.infer",
                                     description="Poses of every person in an image, a folder of images or a video.")
    parser.add_argument("source", help="an image, a folder of images (sorted by name) or a video file")
    parser.add_argument("--checkpoint", required=True,
                        help="posecore / AlphaPose / mmpose checkpoint, best or last of --run-name, or a posecore .onnx")
    parser.add_argument("--params", default=None,
                        help="params name in params/ or a path (default: fastpose; not needed with an .onnx)")
    parser.add_argument("--detector", default="whole-image",
                        help="whole-image (default), a detections .json (COCO results) or a YOLO person detector .onnx")
    parser.add_argument("--out", default=None, help="output folder (default: outputs/<run>/infer/<source stem>)")
    parser.add_argument("--run-name", default=None, help="run whose best/last checkpoint to use; default output run")
    parser.add_argument("--no-track", action="store_true", help="number people per frame instead of tracking them")
    parser.add_argument("--no-video", action="store_true", help="write no drawn output (no .mp4, no vis/)")
    parser.add_argument("--flip", action="store_true", help="flip test: average with the mirrored crops")
    parser.add_argument("--batch-size", type=int, default=None, help="people per pose batch (default eval.batch_size)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="params override, e.g. --set infer.detector_score_thr=0.4 (repeatable; YAML values)")
    args = parser.parse_args(argv)

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item!r}: expected KEY=VALUE, e.g. infer.track_max_missed=5")
        overrides[key.strip()] = yaml.safe_load(value)
    onnx_only = str(args.checkpoint).lower().endswith(".onnx") and args.params is None
    from posecore.params import load_params

    params = None if onnx_only and not overrides else load_params(args.params or "fastpose", overrides)
    infer(params, args.checkpoint, args.source, detector=args.detector, out_dir=args.out,
          track=False if args.no_track else None, flip=args.flip, draw=not args.no_video,
          run_name=args.run_name, batch_size=args.batch_size)
    return 0
