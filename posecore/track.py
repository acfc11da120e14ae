"""Frame-to-frame person tracking for video inference: deterministic ids from boxes and poses.

Each frame, every live track is moved forward by its velocity (a constant-velocity guess, so a
person walking behind someone for a few frames is looked for where they should be; per axis the
velocity follows the box side that moves like the track, so a box cut by an occluder does not
slow it down), then
compared with every new person by

    similarity = iou_weight * IoU(boxes) + (1 - iou_weight) * OKS(poses)

(OKS as in posecore.metrics, scale = the mean box area). The Hungarian assignment (scipy) on
those similarities pairs tracks and people; pairs below `min_similarity` are not matched. A
second pass pairs the people and tracks left over by the distance between box centres (the
track's predicted one) in units of the taller box's height, up to `max_centre_distance`, for
boxes at most twice as tall as each other: it reconnects a person whose box changed shape (a
detector boxing only the visible part while they emerge from behind something), where the IoU
is low. A person without a track gets a new id (1, 2, ... in the order given); a track not seen
for more than `max_missed` frames is dropped. No randomness: the same input gives the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from posecore.detect import box_iou
from posecore.metrics import oks_between

VELOCITY_SMOOTHING = 0.5  # weight of the newest displacement in the velocity estimate
MAX_HEIGHT_RATIO = 2.0  # the second pass pairs boxes at most this much taller than each other


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # [4] x1, y1, x2, y2 where last seen
    keypoints: np.ndarray  # [K, 2] where last seen
    velocity: np.ndarray  # [2] pixels per frame (box centre)
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

    def __init__(
        self,
        sigmas: Sequence[float],
        iou_weight: float = 0.5,
        min_similarity: float = 0.3,
        max_missed: int = 10,
        max_centre_distance: float = 0.5,
    ):
        if not 0.0 <= iou_weight <= 1.0:
            raise ValueError(f"iou_weight must be in [0, 1], got {iou_weight}")
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.iou_weight = float(iou_weight)
        self.min_similarity = float(min_similarity)
        self.max_missed = int(max_missed)
        self.max_centre_distance = float(max_centre_distance)
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
        pairs = _assign(self.similarity(boxes, keypoints), self.min_similarity, larger_is_better=True)
        tracks_left = [t for t in range(len(self.tracks)) if t not in pairs]
        people_left = [p for p in range(len(boxes)) if p not in pairs.values()]
        distance = self.centre_distance([self.tracks[t] for t in tracks_left], boxes[people_left])
        for t, p in _assign(distance, self.max_centre_distance, larger_is_better=False).items():
            pairs[tracks_left[t]] = people_left[p]
        ids = np.zeros(len(boxes), dtype=np.int64)
        for t, p in pairs.items():
            self._extend(self.tracks[t], boxes[p], keypoints[p])
            ids[p] = self.tracks[t].track_id
        for p in range(len(boxes)):
            if p not in pairs.values():
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

    def centre_distance(self, tracks: list[Track], boxes: np.ndarray) -> np.ndarray:
        """[T, N]: predicted track centres to box centres in taller-box heights; inf for boxes
        more than MAX_HEIGHT_RATIO taller than each other."""
        if not tracks or not len(boxes):
            return np.zeros((len(tracks), len(boxes)))
        track_boxes = np.stack([t.predicted(self.frame)[0] for t in tracks])
        track_h, box_h = track_boxes[:, 3] - track_boxes[:, 1], boxes[:, 3] - boxes[:, 1]
        taller = np.maximum(track_h[:, None], box_h[None, :])
        shorter = np.minimum(track_h[:, None], box_h[None, :])
        offset = _centres(track_boxes)[:, None] - _centres(boxes)[None, :]
        distance = np.hypot(offset[..., 0], offset[..., 1]) / np.maximum(taller, 1e-6)
        return np.where(taller <= MAX_HEIGHT_RATIO * shorter, distance, np.inf)

    def _extend(self, track: Track, box: np.ndarray, keypoints: np.ndarray) -> None:
        edges = (box - track.box) / (self.frame - track.last_frame)  # x1, y1, x2, y2 per frame
        centre = (edges[:2] + edges[2:]) * 0.5
        if track.matches == 1:
            displacement = centre
        else:
            # A box cut by an occluder (or a frame edge) stops moving on that side, so its centre
            # moves at half speed: per axis, of the two sides and the centre, take the motion
            # closest to the track's velocity.
            options = np.stack([edges[:2], edges[2:], centre])  # [3, 2]
            closest = np.abs(options - track.velocity).argmin(axis=0)
            displacement = options[closest, [0, 1]]
        track.velocity = (
            displacement
            if track.matches == 1
            else (VELOCITY_SMOOTHING * displacement + (1.0 - VELOCITY_SMOOTHING) * track.velocity)
        )
        track.box, track.keypoints, track.last_frame = box, keypoints, self.frame
        track.matches += 1


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]], axis=1) * 0.5


def _assign(score: np.ndarray, threshold: float, larger_is_better: bool) -> dict[int, int]:
    """Hungarian assignment on score [T, N] -> {row: column} of the pairs within `threshold`."""
    if not score.size:
        return {}
    within = score >= threshold if larger_is_better else score <= threshold
    # pairs beyond the threshold cost as much as no pair, so they never displace a good one
    cost = np.where(within, -score if larger_is_better else score, 0.0 if larger_is_better else threshold + 1.0)
    rows, cols = linear_sum_assignment(cost)
    return {int(r): int(c) for r, c in zip(rows, cols) if within[r, c]}
