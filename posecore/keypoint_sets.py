"""The whole-body keypoint sets as published: Halpe-26, Halpe-136 (Halpe-FullBody) and
COCO-WholeBody (133), with joint names, skeleton, flip pairs, OKS sigmas and the parts they split into.

The numbers are the datasets' own (the values mmpose 1.x keeps in configs/_base_/datasets/
halpe26.py, halpe.py and coco_wholebody.py, which follow the Halpe-FullBody and xtcocotools
evaluation code); AlphaPose's Halpe_26, Halpe_136 and coco_wholebody datasets flip the same pairs.
The face is the 68-point iBUG layout and each hand 21 points (root, then four per finger), so
those tables are built from the layouts rather than written out point by point.

`parts` name each set's joint ranges: COCO-WholeBody's evaluation scores every part with its own
keypoints and sigmas (body, foot, face, lefthand, righthand), and drawing and the browser use them
to thin and filter faces and hands. posecore.keypoints builds them from COCO's body
(`whole_body_sets`) and registers them beside coco and mpii; this module imports nothing of
posecore's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# ---------------------------------------------------------------- the shared building blocks

FEET_HALPE = ("left_big_toe", "right_big_toe", "left_small_toe", "right_small_toe", "left_heel", "right_heel")
FEET_WHOLEBODY = ("left_big_toe", "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel")
FACE = tuple(f"face-{i}" for i in range(68))
FINGERS = ("thumb", "forefinger", "middle_finger", "ring_finger", "pinky_finger")


def hand_names(side: str) -> tuple[str, ...]:
    """The 21 joints of one hand: '<side>_hand_root', then <finger>1..4 for each finger, base to tip."""
    return (f"{side}_hand_root",) + tuple(f"{side}_{finger}{n}" for finger in FINGERS for n in range(1, 5))


# Mirror pairs within the 68-point face (0-based face indices): jaw line, brows, nose base, eyes,
# outer lips, inner lips. The nose bridge and tip (27-30), the nose base's centre (33), the lip
# centres (51, 57, 62, 66) and the chin (8) are on the centre line.
FACE_FLIP = (
    *((i, 16 - i) for i in range(8)),  # jaw 0..16
    *((17 + i, 26 - i) for i in range(5)),  # brows 17..26
    (31, 35),
    (32, 34),  # nose base
    (36, 45),
    (37, 44),
    (38, 43),
    (39, 42),
    (40, 47),
    (41, 46),  # eyes
    (48, 54),
    (49, 53),
    (50, 52),
    (55, 59),
    (56, 58),  # outer lips
    (60, 64),
    (61, 63),
    (65, 67),  # inner lips
)

# The published sigmas beyond COCO's 17 body joints.
HALPE26_EXTRA_SIGMAS = (0.026, 0.026, 0.066) + (0.079,) * 6  # head, neck, hip, feet
HALPE136_EXTRA_SIGMAS = (0.08,) * 3 + (0.089,) * 6 + (0.015,) * 110  # head/neck/hip, feet, face + hands
WHOLEBODY_FOOT_SIGMAS = (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
WHOLEBODY_FACE_SIGMAS = (
    0.042,
    0.043,
    0.044,
    0.043,
    0.040,
    0.035,
    0.031,
    0.025,
    0.020,
    0.023,
    0.029,
    0.032,
    0.037,
    0.038,
    0.043,
    0.041,
    0.045,
    0.013,
    0.012,
    0.011,
    0.011,
    0.012,
    0.012,
    0.011,
    0.011,
    0.013,
    0.015,
    0.009,
    0.007,
    0.007,
    0.007,
    0.012,
    0.009,
    0.008,
    0.016,
    0.010,
    0.017,
    0.011,
    0.009,
    0.011,
    0.009,
    0.007,
    0.013,
    0.008,
    0.011,
    0.012,
    0.010,
    0.034,
    0.008,
    0.008,
    0.009,
    0.008,
    0.008,
    0.007,
    0.010,
    0.008,
    0.009,
    0.009,
    0.009,
    0.007,
    0.007,
    0.008,
    0.011,
    0.008,
    0.008,
    0.008,
    0.010,
    0.008,
)
WHOLEBODY_HAND_SIGMAS = (  # the same 21 values for either hand
    0.029,
    0.022,
    0.035,
    0.037,
    0.047,
    0.026,
    0.025,
    0.024,
    0.035,
    0.018,
    0.024,
    0.022,
    0.026,
    0.017,
    0.021,
    0.021,
    0.032,
    0.020,
    0.019,
    0.022,
    0.031,
)

# Halpe: COCO's 17, then head, neck, mid-hip and the six foot points. Its body links go through
# the neck and the mid-hip instead of COCO's shoulder-shoulder / hip-hip / shoulder-hip links.
HALPE_BODY_SKELETON = (
    (15, 13),
    (13, 11),
    (11, 19),
    (16, 14),
    (14, 12),
    (12, 19),
    (17, 18),
    (18, 19),
    (18, 5),
    (5, 7),
    (7, 9),
    (18, 6),
    (6, 8),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (15, 20),
    (15, 22),
    (15, 24),
    (16, 21),
    (16, 23),
    (16, 25),
)
HALPE_UPPER = tuple(range(11)) + (17, 18)  # AlphaPose's lower body: hips, knees, ankles, mid-hip, feet
WHOLEBODY_FOOT_SKELETON = ((15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22))


def _shift(pairs, offset: int) -> tuple[tuple[int, int], ...]:
    return tuple((a + offset, b + offset) for a, b in pairs)


def _hands_flip(left: int) -> tuple[tuple[int, int], ...]:
    """Left hand joint i <-> right hand joint i (the right hand follows the left's 21)."""
    return tuple((left + i, left + 21 + i) for i in range(21))


def _hand_skeleton(start: int, root: int) -> tuple[tuple[int, int], ...]:
    """Each finger of the hand whose joints start at `start` as a chain from `root` (the hand
    root, or the body's wrist where the set links it so) through its four joints."""
    links = []
    for finger in range(5):
        first = start + 1 + 4 * finger
        links += [(root, first), (first, first + 1), (first + 1, first + 2), (first + 2, first + 3)]
    return tuple(links)


def whole_body_sets(coco: Any) -> dict[str, Any]:
    """{"halpe26", "halpe136", "coco_wholebody"} -> KeypointInfo, built on `coco` (the COCO-17
    KeypointInfo, whose body every one of them starts with)."""
    hands = hand_names("left") + hand_names("right")
    halpe26 = dataclasses.replace(
        coco,
        dataset="halpe26",
        joint_names=coco.joint_names + ("head", "neck", "hip") + FEET_HALPE,
        flip_pairs=coco.flip_pairs + ((20, 21), (22, 23), (24, 25)),
        skeleton=HALPE_BODY_SKELETON,
        upper_body=HALPE_UPPER,
        sigmas=coco.sigmas + HALPE26_EXTRA_SIGMAS,
        joint_weights=coco.joint_weights + (1.0, 1.0, 1.2) + (1.5,) * 6,
        parts=(("body", (0, 20)), ("foot", (20, 26))),
    )
    halpe136 = dataclasses.replace(
        halpe26,
        dataset="halpe136",
        joint_names=halpe26.joint_names + FACE + hands,
        flip_pairs=halpe26.flip_pairs + _shift(FACE_FLIP, 26) + _hands_flip(94),
        # the fingers hang from the body's wrists (9, 10), not from the hand roots; the face has no links
        skeleton=HALPE_BODY_SKELETON + _hand_skeleton(94, root=9) + _hand_skeleton(115, root=10),
        upper_body=HALPE_UPPER + tuple(range(26, 136)),
        sigmas=coco.sigmas + HALPE136_EXTRA_SIGMAS,
        joint_weights=(1.0,) * 136,
        parts=(
            ("body", (0, 20)),
            ("foot", (20, 26)),
            ("face", (26, 94)),
            ("lefthand", (94, 115)),
            ("righthand", (115, 136)),
        ),
    )
    wholebody = dataclasses.replace(
        coco,
        dataset="coco_wholebody",
        joint_names=coco.joint_names + FEET_WHOLEBODY + FACE + hands,
        flip_pairs=coco.flip_pairs + ((17, 20), (18, 21), (19, 22)) + _shift(FACE_FLIP, 23) + _hands_flip(91),
        skeleton=coco.skeleton + WHOLEBODY_FOOT_SKELETON + _hand_skeleton(91, root=91) + _hand_skeleton(112, root=112),
        upper_body=tuple(range(11)) + tuple(range(23, 133)),
        sigmas=(coco.sigmas + WHOLEBODY_FOOT_SIGMAS + WHOLEBODY_FACE_SIGMAS + WHOLEBODY_HAND_SIGMAS * 2),
        joint_weights=(1.0,) * 133,
        # the order of the official file's keypoints, foot_kpts, face_kpts, lefthand_kpts, righthand_kpts
        parts=(
            ("body", (0, 17)),
            ("foot", (17, 23)),
            ("face", (23, 91)),
            ("lefthand", (91, 112)),
            ("righthand", (112, 133)),
        ),
    )
    return {info.dataset: info for info in (halpe26, halpe136, wholebody)}
