"""Keypoint metadata as data: joint names, left/right flip pairs, skeleton, OKS sigmas.

One `KeypointInfo` per dataset. Everything downstream (flip augmentation, half-body,
OKS, drawing, ONNX metadata) reads these tables instead of hard-coding indices.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KeypointInfo:
    dataset: str
    joint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    upper_body: tuple[int, ...]
    sigmas: tuple[float, ...]  # OKS per-joint falloff (COCO's); MPII borrows the closest COCO joints
    joint_weights: tuple[float, ...]

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def flip_index(self) -> list[int]:
        """Permutation that maps joint j to its mirror (identity for centre joints)."""
        index = list(range(self.num_joints))
        for left, right in self.flip_pairs:
            index[left], index[right] = right, left
        return index


COCO = KeypointInfo(
    dataset="coco",
    joint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
        (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    upper_body=tuple(range(11)),
    sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),
    joint_weights=(1.0,) * 5 + (1.0,) * 2 + (1.2,) * 2 + (1.5,) * 2 + (1.0,) * 2 + (1.2,) * 2 + (1.5,) * 2,
)

# MPII order as in the official annotations: r_ankle=0 ... l_wrist=15.
MPII = KeypointInfo(
    dataset="mpii",
    joint_names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
        "pelvis", "thorax", "upper_neck", "head_top",
        "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
        (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
    ),
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    sigmas=(
        0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.107, 0.079, 0.079, 0.026,
        0.062, 0.072, 0.079, 0.079, 0.072, 0.062,
    ),
    joint_weights=(1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5),
)

DATASETS: dict[str, KeypointInfo] = {"coco": COCO, "mpii": MPII}


def keypoint_info(dataset: str) -> KeypointInfo:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASETS)}") from None


def check_num_joints(params) -> KeypointInfo:
    """params' keypoint set, after checking that model.num_joints matches it (the model's head
    has one heatmap per joint)."""
    info = keypoint_info(params.data.dataset)
    if params.model.num_joints != info.num_joints:
        raise ValueError(f"model.num_joints is {params.model.num_joints} but {info.dataset} has "
                         f"{info.num_joints} joints; fix model.num_joints in the params")
    return info
