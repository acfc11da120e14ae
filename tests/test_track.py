"""Tracking: stable ids through a crossing with an occlusion, new ids for newcomers, expiry."""

from __future__ import annotations

import numpy as np
import pytest

from posecore.keypoints import COCO
from posecore.track import Tracker

# a standing pose in box-relative coordinates (x, y in [0, 1]), COCO joint order
POSE = np.array(
    [
        [0.5, 0.08],
        [0.55, 0.06],
        [0.45, 0.06],
        [0.6, 0.08],
        [0.4, 0.08],
        [0.7, 0.22],
        [0.3, 0.22],
        [0.8, 0.4],
        [0.2, 0.4],
        [0.85, 0.55],
        [0.15, 0.55],
        [0.62, 0.55],
        [0.38, 0.55],
        [0.64, 0.75],
        [0.36, 0.75],
        [0.65, 0.95],
        [0.35, 0.95],
    ]
)


def person(x, y, w=60.0, h=150.0):
    box = np.array([x, y, x + w, y + h])
    return box, POSE * [w, h] + [x, y]


def crossing_scene(frames=40, occluded=range(18, 21), jitter=2.0, seed=0):
    """Two people walking towards each other at 8 px/frame, crossing around frame 19; the second
    one (walking left, behind) is not detected in `occluded` frames. Yields (boxes, keypoints,
    true ids) per frame, the people listed in a shuffled order."""
    rng = np.random.default_rng(seed)
    for t in range(frames):
        people = [(1, person(40 + 8 * t, 100 + 0.5 * t)), (2, person(352 - 8 * t, 110))]
        if t in occluded:
            people = people[:1]
        order = rng.permutation(len(people))
        boxes = np.stack([people[i][1][0] for i in order]) + rng.normal(0, jitter, (len(order), 4))
        points = np.stack([people[i][1][1] for i in order]) + rng.normal(0, jitter, (len(order), 17, 2))
        yield boxes, points, np.array([people[i][0] for i in order])


def id_switches(frames_ids, frames_truth):
    """Times a true person's track id differs from the id it had when last seen."""
    last, switches = {}, 0
    for ids, truth in zip(frames_ids, frames_truth):
        for track_id, who in zip(ids, truth):
            switches += who in last and last[who] != track_id
            last[who] = track_id
    return switches


def test_crossing_with_occlusion_keeps_ids():
    tracker = Tracker(COCO.sigmas, max_missed=5)
    all_ids, all_truth = [], []
    for boxes, points, truth in crossing_scene():
        all_ids.append(tracker.update(boxes, points))
        all_truth.append(truth)
    assert id_switches(all_ids, all_truth) == 0
    assert sorted({int(i) for ids in all_ids for i in ids}) == [1, 2]


def test_without_motion_prediction_the_scene_is_hard():
    """The scene is a real test: matching on last positions alone (a track frozen where it was
    last seen) loses the occluded person at the crossing."""

    class Frozen(Tracker):
        def _extend(self, track, box, keypoints):
            super()._extend(track, box, keypoints)
            track.velocity[:] = 0

    tracker = Frozen(COCO.sigmas, max_missed=5)
    results = [(tracker.update(boxes, points), truth) for boxes, points, truth in crossing_scene()]
    assert id_switches(*zip(*results)) > 0


def test_same_input_same_ids():
    runs = []
    for _ in range(2):
        tracker = Tracker(COCO.sigmas)
        runs.append([tracker.update(b, p).tolist() for b, p, _ in crossing_scene(seed=3)])
    assert runs[0] == runs[1]


def test_newcomers_empty_frames_and_expiry():
    tracker = Tracker(COCO.sigmas, max_missed=2)
    box, points = person(10, 10)
    far_box, far_points = person(300, 10)
    assert tracker.update(box[None], points[None]).tolist() == [1]
    assert tracker.update(np.stack([box, far_box]), np.stack([points, far_points])).tolist() == [1, 2]
    assert tracker.update(np.zeros((0, 4)), np.zeros((0, 17, 2))).tolist() == []
    assert tracker.update(far_box[None], far_points[None]).tolist() == [2]  # missed one frame: kept
    for _ in range(3):
        tracker.update(np.zeros((0, 4)), np.zeros((0, 17, 2)))
    assert tracker.update(box[None], points[None]).tolist() == [3]  # gone for 4 > 2 frames


def test_bad_weight_is_an_error():
    with pytest.raises(ValueError, match="iou_weight"):
        Tracker(COCO.sigmas, iou_weight=1.5)
