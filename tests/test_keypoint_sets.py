"""The whole-body keypoint sets (Halpe-26, Halpe-136, COCO-WholeBody) as published.

Spot values, counts and sums pinned here were checked against mmpose 1.x's
configs/_base_/datasets/{halpe26,halpe,coco_wholebody}.py (every name, pair, link, sigma and joint
weight equal) and AlphaPose's Halpe_26 / Halpe_136 / coco_wholebody flip pairs (the same sets).
"""

import pytest

from posecore.keypoints import COCO, DATASETS, KeypointInfo, from_record, keypoint_info
from posecore.params import ParamsError, load_params

SETS = ("halpe26", "halpe136", "coco_wholebody")
# joints, flip pairs, skeleton links, sum of the sigmas (mmpose's tables)
COUNTS = {"halpe26": (26, 11, 27, 1.73), "halpe136": (136, 61, 67, 3.562), "coco_wholebody": (133, 61, 65, 3.861)}


@pytest.mark.parametrize("name", SETS)
def test_counts_and_the_coco_body_they_start_with(name):
    info = keypoint_info(name)
    joints, pairs, links, sigma_sum = COUNTS[name]
    assert (info.num_joints, len(info.flip_pairs), len(info.skeleton)) == (joints, pairs, links)
    assert len(info.sigmas) == len(info.joint_weights) == len(set(info.joint_names)) == joints
    assert sum(info.sigmas) == pytest.approx(sigma_sum, abs=1e-9)
    assert info.joint_names[:17] == COCO.joint_names and info.sigmas[:17] == COCO.sigmas
    assert info.flip_pairs[:8] == COCO.flip_pairs
    assert (
        DATASETS[name] is info
        and keypoint_info(load_params("fastpose", {"data.dataset": name, "model.num_joints": joints})) == info
    )


@pytest.mark.parametrize("name", SETS)
def test_flips_mirror_names_and_the_skeleton(name):
    info = keypoint_info(name)
    index = info.flip_index()
    assert sorted(index) == list(range(info.num_joints))
    assert [index[j] for j in index] == list(range(info.num_joints))  # an involution
    joints = [j for pair in info.flip_pairs for j in pair]
    assert len(joints) == len(set(joints))  # each joint in one pair at most
    swap = {"left": "right", "right": "left"}
    for a, b in info.flip_pairs:
        left, right = info.joint_names[a], info.joint_names[b]
        if not left.startswith("face-"):
            assert "_".join(swap.get(w, w) for w in left.split("_")) == right
    links = {frozenset(link) for link in info.skeleton}
    assert {frozenset((index[a], index[b])) for a, b in info.skeleton} == links
    assert all(0 <= j < info.num_joints for link in info.skeleton for j in link)
    assert [info.joint_names[j] for j in info.upper_body if "hip" in info.joint_names[j]] == []


def test_halpe_values():
    h26, h136 = keypoint_info("halpe26"), keypoint_info("halpe136")
    assert h26.joint_names[17:] == (
        "head",
        "neck",
        "hip",
        "left_big_toe",
        "right_big_toe",
        "left_small_toe",
        "right_small_toe",
        "left_heel",
        "right_heel",
    )
    assert h26.sigmas[17:] == (0.026, 0.026, 0.066) + (0.079,) * 6
    assert h26.flip_pairs[8:] == ((20, 21), (22, 23), (24, 25))
    assert h26.joint_weights[17:] == (1.0, 1.0, 1.2) + (1.5,) * 6
    assert (18, 19) in h26.skeleton and (11, 12) not in h26.skeleton  # through neck and mid-hip
    assert h136.joint_names[:26] == h26.joint_names and h136.skeleton[:27] == h26.skeleton
    assert h136.sigmas[17:26] == (0.08,) * 3 + (0.089,) * 6 and set(h136.sigmas[26:]) == {0.015}
    assert set(h136.joint_weights) == {1.0}
    names = h136.joint_names
    assert (names[26], names[93], names[94], names[114], names[115], names[135]) == (
        "face-0",
        "face-67",
        "left_hand_root",
        "left_pinky_finger4",
        "right_hand_root",
        "right_pinky_finger4",
    )
    for pair in (
        (26, 42),
        (33, 35),
        (43, 52),
        (57, 61),
        (62, 71),
        (66, 73),
        (74, 80),
        (86, 90),
        (91, 93),
        (94, 115),
        (114, 135),
    ):
        assert pair in h136.flip_pairs
    assert (9, 95) in h136.skeleton and (94, 95) not in h136.skeleton  # fingers hang from the wrist
    assert dict(h136.parts) == {
        "body": (0, 20),
        "foot": (20, 26),
        "face": (26, 94),
        "lefthand": (94, 115),
        "righthand": (115, 136),
    }


def test_coco_wholebody_values():
    info = keypoint_info("coco_wholebody")
    sigmas = info.sigmas
    assert sigmas[17:23] == (0.068, 0.066, 0.066, 0.092, 0.094, 0.094)
    assert (sigmas[23], sigmas[31], sigmas[39], sigmas[70], sigmas[90]) == (0.042, 0.020, 0.045, 0.034, 0.008)
    assert sigmas[91:112] == sigmas[112:133]
    assert (sigmas[91], sigmas[95], sigmas[100], sigmas[111]) == (0.029, 0.047, 0.018, 0.031)
    assert info.joint_names[17:23] == (
        "left_big_toe",
        "left_small_toe",
        "left_heel",
        "right_big_toe",
        "right_small_toe",
        "right_heel",
    )
    for pair in (
        (17, 20),
        (19, 22),
        (23, 39),
        (30, 32),
        (40, 49),
        (54, 58),
        (59, 68),
        (63, 70),
        (71, 77),
        (78, 82),
        (83, 87),
        (88, 90),
        (91, 112),
        (111, 132),
    ):
        assert pair in info.flip_pairs
    assert not {j for pair in info.flip_pairs for j in pair} & {31, 50, 53, 56, 74, 80, 85, 89}  # centre line
    assert info.skeleton[:19] == COCO.skeleton and info.skeleton[19] == (15, 17)
    assert (91, 92) in info.skeleton and (9, 92) not in info.skeleton
    parts = dict(info.parts)
    assert list(parts) == ["body", "foot", "face", "lefthand", "righthand"]
    assert [stop - start for start, stop in parts.values()] == [17, 6, 68, 21, 21]
    assert info.part_joints("face") == list(range(23, 91))
    assert COCO.part_joints("body") == list(range(17))
    with pytest.raises(KeyError, match="no part 'tail'"):
        info.part_joints("tail")


@pytest.mark.parametrize("name", SETS)
def test_usable_as_dataset_and_recorded(name):
    info = keypoint_info(name)
    params = load_params("fastpose", {"data.dataset": name, "model.num_joints": info.num_joints})
    assert params.data.dataset == name
    with pytest.raises(ParamsError, match=f"model.num_joints: {info.num_joints}"):
        load_params("fastpose", {"data.dataset": name})  # still 17 joints
    assert from_record(info.record(), "export") is info
    assert isinstance(info, KeypointInfo)


@pytest.mark.parametrize(
    "name, dataset, joints, model",
    [
        ("halpe26_fastpose", "halpe26", 26, "fastpose"),
        ("simplebaseline_coco_wholebody", "coco_wholebody", 133, "simplebaseline"),
    ],
)
def test_whole_body_params_files(name, dataset, joints, model):
    params = load_params(name)
    assert (params.data.dataset, params.model.num_joints, params.model.name) == (dataset, joints, model)
    assert params.data.input_size == [192, 256] and keypoint_info(params).num_joints == joints
