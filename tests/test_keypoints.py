import warnings

import pytest

from posecore.keypoints import (
    COCO,
    MPII,
    UNIFORM_SIGMA,
    KeypointSetError,
    coco_keypoint_category,
    from_coco_category,
    infer_flip_pairs,
    infer_upper_body,
    keypoint_info,
    keypoint_params,
)
from posecore.params import ParamsError, load_params, save_params

# One body, five spellings: (centre joints, then a left and a right joint per part).
PARTS = ["shoulder", "elbow", "hip"]
STYLES = {
    "snake": ["neck"] + [f"{side}_{p}" for p in PARTS for side in ("left", "right")],
    "short": ["neck"] + [f"{side}_{p}" for p in PARTS for side in ("l", "r")],
    "suffix": ["neck"] + [f"{p}_{side}" for p in PARTS for side in ("left", "right")],
    "camel": ["Neck"] + [f"{side}{p.title()}" for p in PARTS for side in ("L", "R")],
    "upper dash": ["NECK"] + [f"{side}-{p.upper()}" for p in PARTS for side in ("LEFT", "RIGHT")],
    "dotted": ["neck"] + [f"{p}.{side}" for p in PARTS for side in ("L", "R")],
}


@pytest.mark.parametrize("style", sorted(STYLES))
def test_flip_pairs_are_inferred_from_each_naming_style(style):
    names = STYLES[style]
    assert infer_flip_pairs(names) == ((1, 2), (3, 4), (5, 6))
    # right joint listed first, and the left/right order mixed within one set
    assert infer_flip_pairs(list(reversed(names))) == ((0, 1), (2, 3), (4, 5))


def test_inference_reproduces_the_builtin_sets():
    for info in (COCO, MPII):
        assert infer_flip_pairs(info.joint_names) == info.flip_pairs
        assert infer_upper_body(info.joint_names) == info.upper_body
    openpose = [
        "Nose",
        "Neck",
        "RShoulder",
        "RElbow",
        "RWrist",
        "LShoulder",
        "LElbow",
        "LWrist",
        "MidHip",
        "RHip",
        "RKnee",
        "RAnkle",
        "LHip",
        "LKnee",
        "LAnkle",
        "REye",
        "LEye",
        "REar",
        "LEar",
        "LBigToe",
        "LSmallToe",
        "LHeel",
        "RBigToe",
        "RSmallToe",
        "RHeel",
    ]
    pairs = {(openpose[a], openpose[b]) for a, b in infer_flip_pairs(openpose)}
    assert len(pairs) == 11 and ("RBigToe", "LBigToe") not in pairs and ("LBigToe", "RBigToe") in pairs
    assert [openpose[j] for j in infer_upper_body(openpose)][:3] == ["Nose", "Neck", "RShoulder"]
    assert "MidHip" not in [openpose[j] for j in infer_upper_body(openpose)]


def test_inference_refuses_to_guess():
    with pytest.raises(KeypointSetError, match="mirrors several joints"):
        infer_flip_pairs(["l_hip", "left_hip", "right_hip"])
    with pytest.warns(UserWarning, match=r"\['left_paw'\] look sided"):
        assert infer_flip_pairs(["nose", "left_paw"]) == ()
    assert infer_upper_body(["nose", "tail_tip"]) is None  # a tail is neither above nor below the waist


def category(names, skeleton=(), cid=7):
    return {"id": cid, "name": "person", "keypoints": list(names), "skeleton": [list(p) for p in skeleton]}


@pytest.mark.parametrize(
    "coco, words",
    [
        ({"categories": [{"id": 1, "name": "person"}]}, ["a.json", "id 1 ('person')", "no 'keypoints'", "skeleton"]),
        ({"images": []}, ["a.json", "no 'categories'"]),
        ({"categories": [category(["a"], cid=1), category(["b"], cid=2)]}, ["several categories", "id 1", "id 2"]),
    ],
)
def test_category_problems_name_the_file_and_the_fix(coco, words):
    with pytest.raises(KeypointSetError) as error:
        coco_keypoint_category(coco, "a.json")
    for word in words:
        assert word in str(error.value)


def test_category_skeleton_and_names_are_checked():
    names = ["neck", "left_hip", "right_hip"]
    with pytest.raises(KeypointSetError, match=r"a.json: category id 7.*entry 1 is \[0, 2\].*1 to 3.*0-based"):
        from_coco_category(category(names, [(1, 2), (0, 2)]), "a.json")
    with pytest.raises(KeypointSetError, match=r"entry 0 is \[1, 4\]"):
        from_coco_category(category(names, [(1, 4)]), "a.json")
    with pytest.raises(KeypointSetError, match=r"\['neck'\] appear more than once"):
        from_coco_category(category(names + ["neck"]), "a.json")
    info = from_coco_category(category(names, [(1, 2), (1, 3)]), "a.json")
    assert info.skeleton == ((0, 1), (0, 2)) and info.flip_pairs == ((1, 2),) and info.upper_body == (0,)


def custom_params(**overrides):
    return load_params("demo", {"data.dataset": "custom", **overrides})


BODY = ["neck", "left_shoulder", "right_shoulder", "mid_hip", "left_knee", "right_knee"]


def test_sigmas_are_required_and_explained():
    with pytest.raises(KeypointSetError) as error:
        keypoint_info(custom_params(), category(BODY), "a.json")
    message = str(error.value)
    for word in (
        "eval.sigmas",
        "OKS",
        "annotators",
        "nose 0.026",
        "eval.sigmas: uniform",
        str(UNIFORM_SIGMA),
        # COCO's values where the joint names match, a uniform start elsewhere
        f"[{UNIFORM_SIGMA}, 0.079, 0.079, {UNIFORM_SIGMA}, 0.087, 0.087]",
    ):
        assert word in message
    uniform = keypoint_info(custom_params(**{"eval.sigmas": "uniform"}), category(BODY), "a.json")
    assert uniform.sigmas == (UNIFORM_SIGMA,) * 6
    with pytest.raises(KeypointSetError, match=r"eval.sigmas needs 6 positive numbers.*'neck'"):
        keypoint_info(custom_params(**{"eval.sigmas": [0.05] * 17}), category(BODY), "a.json")


def test_overrides_by_name_or_index_and_their_errors():
    params = custom_params(
        **{
            "eval.sigmas": [0.05] * 6,
            "data.flip_pairs": [["left_knee", 5], [1, 2]],
            "data.upper_body": ["neck", 1, 2],
            "data.joint_weights": [1, 1, 1, 1, 2, 2],
        }
    )
    info = keypoint_info(params, category(BODY, [(1, 2)]), "a.json")
    assert info.flip_pairs == ((4, 5), (1, 2)) and info.upper_body == (0, 1, 2)
    assert info.joint_weights == (1.0, 1.0, 1.0, 1.0, 2.0, 2.0) and info.flip_index() == [0, 2, 1, 3, 5, 4]
    with pytest.raises(KeypointSetError, match=r"data.flip_pairs\[0\]: 'left_kne' is not a joint.*'left_knee'"):
        keypoint_info(
            custom_params(**{"eval.sigmas": "uniform", "data.flip_pairs": [["left_kne", 5]]}), category(BODY), "a.json"
        )
    with pytest.raises(KeypointSetError, match=r"data.upper_body\[0\]: index 6 is out of range"):
        keypoint_info(custom_params(**{"eval.sigmas": "uniform", "data.upper_body": [6]}), category(BODY), "a.json")
    with pytest.raises(KeypointSetError, match="'right_knee' is in more than one flip pair"):
        keypoint_info(
            custom_params(**{"eval.sigmas": "uniform", "data.flip_pairs": [[4, 5], [3, 5]]}), category(BODY), "a.json"
        )
    with pytest.raises(KeypointSetError, match=r"half_body_prob.*\['tail'\].*data.upper_body"):
        keypoint_info(
            custom_params(**{"eval.sigmas": "uniform", "data.half_body_prob": 0.3}), category(BODY + ["tail"]), "a.json"
        )


def test_recorded_set_rebuilds_from_saved_params_alone(tmp_path):
    params = custom_params(**{"eval.sigmas": "uniform", "data.upper_body": ["neck"]})
    info = keypoint_info(params, category(BODY, [(1, 2), (1, 3), (4, 5)]), "a.json")
    recorded = keypoint_params(params, info)
    assert recorded.model.num_joints == 6 and recorded.eval.sigmas == "uniform"
    assert recorded.data.skeleton[0] == ["neck", "left_shoulder"]
    save_params(recorded, tmp_path / "params.yaml")
    reloaded = load_params(tmp_path / "params.yaml")
    assert reloaded == recorded
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert keypoint_info(reloaded) == info
    with pytest.raises(KeypointSetError, match="b.json.*differ from data.joint_names"):
        keypoint_info(reloaded, category(BODY[::-1]), "b.json")
    with pytest.raises(KeypointSetError, match="run's saved params"):
        keypoint_info(custom_params(**{"eval.sigmas": "uniform"}))
    assert keypoint_params(load_params("demo"), COCO) == load_params("demo")


def test_params_check_the_new_keys():
    assert custom_params(**{"eval.sigmas": [1, 0.5]}).eval.sigmas == [1.0, 0.5]
    with pytest.raises(ParamsError, match="eval.sigmas must be a list of positive numbers.*'uniform'"):
        custom_params(**{"eval.sigmas": "unifrom"})
    with pytest.raises(ParamsError, match=r"\['coco', 'coco_wholebody', 'halpe136', 'halpe26', 'mpii', 'custom'\]"):
        load_params("demo", {"data.dataset": "coco17"})
    with pytest.raises(KeypointSetError, match="data.joint_names is for data.dataset custom"):
        keypoint_info(load_params("demo", {"data.joint_names": ["a"]}))
