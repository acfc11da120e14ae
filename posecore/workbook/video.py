"""infer.ipynb's sections: its inputs, the summary of posecore.infer, annotated frames and keypoint
trajectories."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from posecore import viz
from posecore.data import (
    make_synthetic_video,
    read_rgb,
)
from posecore.files import read_json
from posecore.inference import track_colour, tracks_from_results
from posecore.keypoints import from_record
from posecore.report import Table
from posecore.runs import outputs_root

# --- infer ---------------------------------------------------------------------------------------


def infer_inputs(source: str | None, detector: str | None) -> dict[str, str]:
    """The infer notebook's source and detector. An empty source is posecore's synthetic walking
    video (written now under <outputs>/data/synthetic_video), whose detections file is then the
    detector unless one is given; an empty detector is otherwise whole-image mode."""
    if source:
        return {"source": str(source), "detector": detector or "whole-image"}
    paths = make_synthetic_video(outputs_root() / "data" / "synthetic_video")
    return {"source": str(paths["video"]), "detector": detector or str(paths["detections"])}


def infer_table(summary: dict) -> Table:
    """posecore.infer's summary: counts, frames/s per stage and ms per frame."""
    fps, ms = summary["fps"], summary["ms_per_frame"]
    rows = [
        ["frames", summary["frames"]],
        ["persons", summary["persons"]],
        ["tracks", "n/a (no tracking)" if summary["tracks"] is None else summary["tracks"]],
        ["keypoint smoothing", summary.get("smoothing", "none")],
        ["detector frames/s", fps["detector"]],
        ["pose stage frames/s", fps["pose"]],
        ["end-to-end frames/s", fps["end_to_end"]],
        ["pose overhead beyond the forward", summary["pose_overhead"]],
        *[[f"{stage} ms/frame", value] for stage, value in ms.items()],
    ]
    note = " ".join(
        [
            f"{summary['source']} with {summary['detector']}, {summary['pose_backend']} pose model;",
            f"results in {summary['results']}.",
            *summary["notes"],
        ]
    )
    return Table(
        ["", "value"], [[name, "n/a" if value is None else value] for name, value in rows], title="Inference", note=note
    )


def infer_frames(summary: dict, count: int = 4):
    """A few evenly spaced frames of the drawn output (the .mp4 of a video, vis/ of images)."""
    if "video" in summary:
        frames = read_video_frames(summary["video"], count)
    else:
        files = sorted(Path(summary.get("vis", "")).glob("*.jpg"))
        picked = files[:: max(1, -(-len(files) // count))][:count] if files else []
        frames = [(path.name, read_rgb(path)) for path in picked]
    items = [{"image": image, "title": name} for name, image in frames]
    return viz.plot_gallery(items, from_record(summary["keypoints"], summary["results"]), ncols=min(count, 4), size=3.5)


TRAJECTORY_JOINTS = ("nose", "head_top", "neck", "thorax")  # the first one a keypoint set has


def infer_trajectories(summary: dict, joint: str | None = None):
    """Per-person paths of `joint` through the source (see viz.plot_trajectories), over the middle
    frame of the drawn video when there is one. None: the first of TRAJECTORY_JOINTS the model's
    keypoint set has, else its first joint."""
    names = summary["joint_names"]
    if joint is None:
        joint = next((name for name in TRAJECTORY_JOINTS if name in names), names[0])
    if joint not in names:
        raise ValueError(f"joint {joint!r} is not one of the model's joints {names}")
    tracks = tracks_from_results(read_json(summary["results"]), names.index(joint))
    colors = {idx: tuple(c / 255.0 for c in reversed(track_colour(idx))) for idx in tracks}
    middle = read_video_frames(summary["video"], 1) if "video" in summary else []
    return viz.plot_trajectories(tracks, joint, colors, middle[0][1] if middle else None)


def read_video_frames(path: str | Path, count: int) -> list[tuple[str, np.ndarray]]:
    """(name "frame <i>", RGB image) of `count` evenly spaced frames of a video (the middle one for 1)."""
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = [total // 2] if count == 1 else np.linspace(0, max(total - 1, 0), count).round().astype(int)
        frames = []
        for index in dict.fromkeys(int(i) for i in wanted):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, image = capture.read()
            if ok:
                frames.append((f"frame {index}", cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
        return frames
    finally:
        capture.release()
