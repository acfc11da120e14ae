"""What inference reads: one image, a folder of images (sorted by name) or a video, frame by frame."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from posecore.data.dataset import ImageReadError, read_image
from posecore.detect import Frame
from posecore.runs import resolve_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Source:
    """What `infer` reads: kind "image" | "folder" | "video", with its files / capture facts."""

    path: Path
    kind: str
    images: list[Path] = field(default_factory=list)
    fps: float = 0.0
    frame_count: int = 0  # the container's count (may be approximate); 0 when unknown

    @property
    def stem(self) -> str:
        return self.path.stem if self.kind != "folder" else self.path.name


def open_source(source: str | os.PathLike) -> Source:
    """Classify `source`: a folder (its images sorted by name), an image file, or else a video."""
    path = resolve_path(source)
    if not path.exists():
        raise FileNotFoundError(f"source {path} does not exist (expected an image, a folder of images or a video file)")
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not images:
            raise FileNotFoundError(f"source folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return Source(path, "folder", images)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Source(path, "image", [path])
    capture = cv2.VideoCapture(str(path))
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    return Source(path, "video", fps=fps if math.isfinite(fps) and fps > 0 else 0.0, frame_count=max(count, 0))


def read_frames(source: Source) -> Iterator[tuple[Frame, np.ndarray | None]]:
    """(frame, BGR image) in order; the image is None for an unreadable image file."""
    if source.kind == "video":
        capture = cv2.VideoCapture(str(source.path))
        try:
            index = 0
            while capture.isOpened():
                ok, image = capture.read()
                if not ok:
                    break
                yield Frame(index), image
                index += 1
        finally:
            capture.release()
        return
    for index, path in enumerate(source.images):
        try:
            image = read_image(path, apply_orientation=True)  # as photo viewers and detectors show it
        except ImageReadError as error:
            warnings.warn(f"skipping unreadable image {path} ({error})", stacklevel=2)
            image = None
        yield Frame(index, path.name), image
