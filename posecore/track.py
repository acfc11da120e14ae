"""Frame-to-frame person tracking for video inference: deterministic ids from boxes and poses.

Each frame, every live track is moved forward by its velocity (a constant-velocity guess, so a
person walking behind someone for a few frames is looked for where they should be), then
compared with every new person by

    similarity = iou_weight * IoU(boxes) + (1 - iou_weight) * OKS(poses)

(OKS as in posecore.metrics, scale = the mean box area). The Hungarian assignment (scipy) on
those similarities pairs tracks and people; pairs below `min_similarity` are not matched. A
person without a track gets a new id (1, 2, ... in the order given); a track not seen for more
than `max_missed` frames is dropped. No randomness: the same input gives the same ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from posecore.detect import box_iou
from posecore.metrics import oks_between

VELOCITY_SMOOTHING = 0.5  # weight of the newest displacement in the velocity estimate


@dataclass
class Track:
    track_id: int
    box: np.ndarray          # [4] x1, y1, x2, y2 where last seen
    keypoints: np.ndarray    # [K, 2] where last seen
    velocity: np.ndarray     # [2] pixels per frame (box centre)
    last_frame: int
    matches: int = 1

    def predicted(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(box [4], keypoints [K, 2]) moved to `frame` at the track's velocity."""
        shift = self.velocity * (frame - self.last_frame)
        return self.box + np.tile(shift, 2), self.keypoints + shift


class Tracker:
    """Assigns track ids to the people of consecutive frames (see the module docstring).

    sigmas: the keypoint set's OKS sigmas [K]. `update` must be called once per frame, in order,
    also for frames without people.
    """

    def __init__(self, sigmas: Sequence[float], iou_weight: float = 0.5, min_similarity: float = 0.3,
                 max_missed: int = 10):
        if not 0.0 <= iou_weight <= 1.0:
            raise ValueError(f"iou_weight must be in [0, 1], got {iou_weight}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.iou_weight = float(iou_weight)
        self.min_similarity = float(min_similarity)
        self.max_missed = int(max_missed)
        self.tracks: list[Track] = []
        self.frame = -1
        self.next_id = 1

    def update(self, boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """One frame's people -> their track ids int64 [N].

        boxes [N, 4+] (x1, y1, x2, y2, ...) and keypoints [N, K, 2+] in image pixels.
        """
        self.frame += 1
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.size == 0:
            boxes, keypoints = np.zeros((0, 4)), np.zeros((0, len(self.sigmas), 2))
        boxes, keypoints = boxes[:, :4], np.asarray(keypoints, dtype=np.float64)[..., :2]
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame <= self.max_missed]
        ids = np.zeros(len(boxes), dtype=np.int64)
        similarity = self.similarity(boxes, keypoints)
        matched = set()
        if similarity.size:
            rows, cols = linear_sum_assignment(-np.where(similarity >= self.min_similarity, similarity, 0.0))
            for t, p in zip(rows, cols):
                if similarity[t, p] >= self.min_similarity:
                    self._extend(self.tracks[t], boxes[p], keypoints[p])
                    ids[p] = self.tracks[t].track_id
                    matched.add(p)
        for p in range(len(boxes)):
            if p not in matched:
                self.tracks.append(Track(self.next_id, boxes[p], keypoints[p], np.zeros(2), self.frame))
                ids[p] = self.next_id
                self.next_id += 1
        return ids

    def similarity(self, boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """[T, N]: live tracks (predicted to this frame) against this frame's people."""
        if not self.tracks or not len(boxes):
            return np.zeros((len(self.tracks), len(boxes)))
        predicted = [t.predicted(self.frame) for t in self.tracks]
        track_boxes = np.stack([box for box, _ in predicted])
        track_points = np.stack([points for _, points in predicted])
        iou = box_iou(track_boxes, boxes)
        oks = oks_between(track_points, _areas(track_boxes), keypoints, _areas(boxes), self.sigmas)
        return self.iou_weight * iou + (1.0 - self.iou_weight) * oks

    def _extend(self, track: Track, box: np.ndarray, keypoints: np.ndarray) -> None:
        gap = self.frame - track.last_frame
        displacement = (_centre(box) - _centre(track.box)) / gap
        track.velocity = displacement if track.matches == 1 else (
            VELOCITY_SMOOTHING * displacement + (1.0 - VELOCITY_SMOOTHING) * track.velocity)
        track.box, track.keypoints, track.last_frame = box, keypoints, self.frame
        track.matches += 1


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) * 0.5, (box[1] + box[3]) * 0.5])
