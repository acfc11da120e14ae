"""Poses on a user's images and videos: person detector -> batched top-down pose -> tracking ->
AlphaPose-format results, drawn frames and a summary.

`infer(params, checkpoint, source, detector=...)` (also `python -m posecore.infer`, the command
line in posecore/infer.py) reads `source` (one image, a folder of images sorted by name, or a video
file), finds people with the detector (posecore.detect), and hands their boxes to a
posecore.predictor.Predictor: it crops every person as training did, runs the pose model on the
crops of several frames at once and decodes the joints back to image pixels.

The pose model is either a PyTorch model with `checkpoint`'s weights (any file
posecore.load_checkpoint reads, or "best"/"last" of `run_name`; params None: the run's own) or a
posecore-exported `.onnx` (its metadata give the crop, the codec and the keypoint set); both go
through the same crops and the same decoding (Predictor.load).

OUT (out_dir) receives:
- results (runs.InferFiles.results): AlphaPose's list of {"image_id", "category_id": 1, "keypoints": [x, y, score] * K,
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
from tqdm.auto import tqdm

from posecore.data.sources import Source, open_source, read_frames
from posecore.detect import Frame, boxes_for_frame, build_detector, detector_note
from posecore.files import atomic_write, write_json
from posecore.params import Params, load_params
from posecore.predictor import Predictor
from posecore.runs import InferFiles, Run, default_run_name, outputs_root, resolve_path, run_lock
from posecore.smoothing import KeypointSmoother
from posecore.track import Tracker

VIDEO_CODEC = "mp4v"
DEFAULT_FPS = 25.0  # for videos whose container does not say
MAX_PENDING_FRAMES = 32  # frames held while their people fill a pose batch
PALETTE = (
    (75, 25, 230),
    (75, 180, 60),
    (25, 225, 255),
    (200, 130, 0),
    (48, 130, 245),
    (180, 30, 145),
    (240, 240, 70),
    (230, 50, 240),
    (60, 245, 210),
    (190, 190, 250),
    (128, 128, 0),
    (255, 190, 230),
    (40, 110, 170),
    (200, 250, 255),
    (0, 0, 128),
)  # BGR


# --------------------------------------------------------------------------- drawing


def track_colour(track_id: int) -> tuple[int, int, int]:
    return PALETTE[(int(track_id) - 1) % len(PALETTE)]


def draw_people_bgr(
    image_bgr: np.ndarray,
    boxes: np.ndarray,
    keypoints: np.ndarray,
    ids: np.ndarray,
    skeleton,
    min_score: float,
    fine_joints=(),
) -> np.ndarray:
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
        cv2.putText(
            canvas,
            str(int(track_id)),
            (x1 + 2, max(y1 - 4, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.5 * thickness,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    return canvas


# --------------------------------------------------------------------------- the pipeline


@dataclass
class _Pending:
    """A frame whose people wait for their pose batch."""

    frame: Frame
    image: np.ndarray
    boxes: np.ndarray  # [n, 5]
    inputs: np.ndarray  # [n, 3, H, W]
    centers: np.ndarray  # [n, 2]
    scales: np.ndarray  # [n, 2]


class _Pipeline:
    """Frames in, in order; people batched across frames through the pose model; then per frame
    tracking, results and drawing. `seconds` accumulates the time of each stage."""

    STAGES = ("read", "detect", "crop", "forward", "decode", "track", "write")

    def __init__(
        self,
        model: Predictor,
        params: Params,
        tracker: Any,
        writer: _Writer,
        batch_size: int,
        flip: bool,
        smoother: KeypointSmoother | None = None,
    ):
        self.model, self.params, self.tracker, self.writer = model, params, tracker, writer
        self.smoother = smoother  # One-Euro per track: frames come to _emit in order
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
        self.pending.append(_Pending(frame, image, boxes, *self.model.crops(image, boxes)))
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
        inputs, centers, scales = (
            np.concatenate([getattr(p, key) for p in self.pending]) for key in ("inputs", "centers", "scales")
        )
        started = time.perf_counter()
        outputs = [
            self.model.outputs(inputs[i : i + self.batch_size], self.flip)[0]
            for i in range(0, len(inputs), self.batch_size)
        ]
        self.forward_batches += len(outputs)
        started = self.tick("forward", started)
        starts = range(0, len(inputs), self.batch_size)
        keypoints = np.concatenate(
            [
                self.model.decode(output, centers[i : i + self.batch_size], scales[i : i + self.batch_size]).rows()
                for i, output in zip(starts, outputs)
            ]
        )
        self.tick("decode", started)
        return np.split(keypoints, np.cumsum(counts)[:-1])

    def _emit(self, pending: _Pending, keypoints: np.ndarray) -> None:
        started = time.perf_counter()
        boxes = pending.boxes
        ids = self.tracker.update(boxes, keypoints) if self.tracker else np.arange(1, len(boxes) + 1)
        self.track_ids.update(int(i) for i in ids)
        raw = keypoints
        if self.smoother is not None:  # the drawn and written keypoints; the raw ones are kept too
            keypoints = self.smoother.update(ids, raw)
        started = self.tick("track", started)
        self.results.extend(
            alphapose_results(pending.frame.label, boxes, keypoints, ids, raw if self.smoother else None)
        )
        self.writer.write(
            pending.frame,
            pending.image,
            lambda image: draw_people_bgr(
                image,
                boxes,
                keypoints,
                ids,
                self.model.info.skeleton,
                self.params.infer.draw_min_score,
                self.model.info.fine_joints(),
            ),
        )
        self.tick("write", started)


def infer(
    params: Params,
    checkpoint: str | os.PathLike,
    source: str | os.PathLike,
    detector: Any = "whole-image",
    out_dir: str | os.PathLike | None = None,
    track: bool | None = None,
    flip: bool = False,
    draw: bool = True,
    run_name: str | None = None,
    batch_size: int | None = None,
    device: Any = None,
    progress: bool = True,
    smoothing: str | None = None,
) -> dict[str, Any]:
    """Poses of every person in `source`; writes OUT (see the module docstring), returns the summary.

    params: Params or a name/path for posecore.load_params (None: the params of run `run_name`,
    or with an .onnx checkpoint the default infer/eval settings). checkpoint: a file in any format
    load_checkpoint reads, "best"/"last" of `run_name`, or a posecore .onnx. detector: see
    posecore.detect.build_detector. out_dir: default outputs/<run_name or infer-...>/infer/<source stem>.
    track: None = on for videos, off for images. flip: flip test. draw: write vis/ or the .mp4.
    batch_size: people per pose batch (default eval.batch_size). device: default posecore's choice
    (posecore.device.get_device) for a PyTorch model, the CPU for an .onnx (infer.threads: its
    onnxruntime threads). smoothing: "none" or "one_euro" (default infer.smoothing): tracked
    keypoints through the One-Euro filter (infer.smoothing_min_cutoff, infer.smoothing_beta) per
    track and joint, reset when a track is lost; the results keep the raw ones as keypoints_raw.
    """
    params = load_params(params) if params is not None else None
    threads = params.infer.threads if params is not None and params.infer.threads else None
    model = Predictor.load(checkpoint, params, run_name, device, threads)
    params = params or model.params or Params()  # an .onnx carries its model; the settings are then the defaults
    if smoothing is not None:
        params = load_params(params, {"infer.smoothing": smoothing})  # checked as a params value
    settings = params.infer
    detector = build_detector(detector, **_detector_options(detector, settings))
    src = open_source(source)
    track = src.kind == "video" if track is None else bool(track)
    out = (
        resolve_path(out_dir)
        if out_dir is not None
        else (Run(run_name or default_run_name("infer")).infer_files(src.stem).folder)
    )
    with _run_writer(out):  # what goes into a run folder holds its writer lock, as training does
        out.mkdir(parents=True, exist_ok=True)
        tracker = (
            Tracker(
                model.info.sigmas,
                settings.track_iou_weight,
                settings.track_min_similarity,
                settings.track_max_missed,
                settings.track_max_centre_distance,
            )
            if track
            else None
        )
        writer = _Writer(out, src, draw)
        smoother = None
        if settings.smoothing == "one_euro" and tracker is not None:  # smoothing follows tracks
            smoother = KeypointSmoother(
                settings.smoothing_min_cutoff,
                settings.smoothing_beta,
                fps=src.fps or DEFAULT_FPS,
                max_gap=settings.track_max_missed,
            )
        pipeline = _Pipeline(model, params, tracker, writer, int(batch_size or params.eval.batch_size), flip, smoother)
        skipped: list[str] = []
        frames = 0
        total = src.frame_count if src.kind == "video" else len(src.images)
        started_all = started = time.perf_counter()
        for frame, image in tqdm(
            read_frames(src),
            total=total or None,
            desc=f"infer {src.path.name}",
            unit="frame",
            disable=not progress,
            leave=False,
        ):
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
        atomic_write(InferFiles(out).results, json.dumps(pipeline.results))
        summary = _summary(src, out, outputs, model, detector, frames, pipeline, track, skipped, elapsed, flip)
        write_json(InferFiles(out).summary, summary)
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
        return {
            "classes": settings.person_class,
            "score_threshold": settings.detector_score_thr,
            "iou_threshold": settings.detector_nms_iou,
        }
    if suffix == ".json":
        return {"score_threshold": settings.detector_score_thr}
    return {}


def tracks_from_results(results: list[dict], joint: int) -> dict[int, dict]:
    """Inference result rows -> {idx: {"frame": int [T], "xy": [T, 2], "score": [T]}} for one joint.

    Frames are numbered by order of appearance of their image_id (for videos: the frame index).
    """
    order: dict[str, int] = {}
    tracks: dict[int, dict] = {}
    for row in results:
        frame = order.setdefault(row["image_id"], len(order))
        x, y, score = row["keypoints"][3 * joint : 3 * joint + 3]
        track = tracks.setdefault(int(row["idx"]), {"frame": [], "xy": [], "score": []})
        track["frame"].append(frame)
        track["xy"].append((x, y))
        track["score"].append(score)
    return {idx: {key: np.asarray(values) for key, values in track.items()} for idx, track in tracks.items()}


def alphapose_results(
    image_id: str, boxes: np.ndarray, keypoints: np.ndarray, ids: np.ndarray, raw: np.ndarray | None = None
) -> list[dict]:
    """One frame's people in AlphaPose's results form (see the module docstring); `raw` [n, K, 3]:
    the keypoints before smoothing, kept as "keypoints_raw" beside the smoothed "keypoints"."""
    rows = []
    for row, (box, points, track_id) in enumerate(zip(boxes, keypoints, ids)):
        x1, y1, x2, y2, box_score = (float(v) for v in box[:5])
        entry = {
            "image_id": image_id,
            "category_id": 1,
            "keypoints": [round(float(v), 4) for v in points.reshape(-1)],
            "score": round(float(points[:, 2].mean()) * box_score, 6),
            "box": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
            "idx": int(track_id),
        }
        if raw is not None:
            entry["keypoints_raw"] = [round(float(v), 4) for v in raw[row].reshape(-1)]
        rows.append(entry)
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
            self.video = cv2.VideoWriter(
                str(self.video_tmp), cv2.VideoWriter_fourcc(*VIDEO_CODEC), self.fps, (width, height)
            )
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


def _summary(
    src: Source,
    out: Path,
    outputs: dict,
    model: Predictor,
    detector: Any,
    frames: int,
    pipeline: _Pipeline,
    track: bool,
    skipped: list[str],
    elapsed: float,
    flip: bool,
) -> dict[str, Any]:
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
        "smoothing": _smoothing_text(pipeline.smoother, pipeline.params.infer.smoothing),
        "fps": {
            "detector": rate(frames, seconds["detect"]),
            "pose": rate(frames, pose),
            "end_to_end": rate(frames, elapsed),
        },
        "persons_per_s": {"pose": rate(persons, pose)},
        "ms_per_frame": {
            stage: round(1000 * spent / frames, 3) if frames else None for stage, spent in seconds.items()
        },
        # what the pose stage costs beyond the model's own batched forward
        "pose_overhead": round((pose - seconds["forward"]) / seconds["forward"], 4) if seconds["forward"] > 0 else None,
        "forward_batches": pipeline.forward_batches,
        "seconds": round(elapsed, 3),
        "out_dir": str(out),
        "results": str(InferFiles(out).results),
        **outputs,
        "notes": notes,
    }


def _smoothing_text(smoother: KeypointSmoother | None, asked: str) -> str:
    if smoother is not None:
        return f"one_euro (min_cutoff {smoother.min_cutoff:g} Hz, beta {smoother.beta:g}; raw keypoints kept)"
    return "none" if asked == "none" else f"none ({asked} follows tracks: tracking is off)"


def format_summary(summary: dict[str, Any]) -> str:
    fps = summary["fps"]
    lines = [
        f"{summary['source']}: {summary['frames']} frames, {summary['persons']} persons"
        + (f", {summary['tracks']} tracks" if summary["tracks"] is not None else ""),
        "frames/s: detector {}, pose stage {}, end to end {} ({} backend)".format(
            fps["detector"], fps["pose"], fps["end_to_end"], summary["pose_backend"]
        ),
        f"results: {summary['results']}",
    ]
    lines += [f"{key}: {summary[key]}" for key in ("video", "vis") if key in summary]
    lines += [f"skipped (unreadable): {', '.join(summary['skipped'])}"] if summary["skipped"] else []
    lines += [f"note: {note}" for note in summary["notes"]]
    return "\n".join(lines)
