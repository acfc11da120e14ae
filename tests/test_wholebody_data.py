"""Halpe and COCO-WholeBody annotation layouts, read from files made of the real COCO samples."""

import json

import numpy as np
import pytest
from wholebody_files import make_halpe, make_wholebody

from posecore import charts, data
from posecore.data.layouts import as_coco_keypoints
from posecore.keypoints import keypoint_info
from posecore.params import load_params


def set_params(name, root, **overrides):
    joints = keypoint_info(name).num_joints
    return load_params(
        "fastpose",
        {"data.dataset": name, "model.num_joints": joints, "data.root": str(root), "data.workers": 0, **overrides},
    )


@pytest.fixture(scope="module")
def wholebody_root(coco_root, tmp_path_factory):
    return make_wholebody(coco_root, tmp_path_factory.mktemp("wholebody") / "coco")


def test_coco_wholebody_reads_133_joints_per_person_in_part_order(coco_root, wholebody_root):
    assert data.check_layout(wholebody_root, "coco_wholebody") == []
    body = data.build_dataset(load_params("fastpose", {"data.root": str(coco_root), "data.workers": 0}), "val")
    whole = data.build_dataset(set_params("coco_wholebody", wholebody_root), "val")
    assert whole.info.num_joints == 133 and len(whole) == len(body) > 0
    with open(wholebody_root / "annotations" / "coco_wholebody_val_v1.0.json") as f:
        entries = {(a["image_id"], tuple(a["keypoints"][:2])): a for a in json.load(f)["annotations"]}
    faces = 0
    for got, coco in zip(whole.instances, body.instances):
        assert got.joints.shape == (133, 2) and got.visible.shape == (133,)
        np.testing.assert_array_equal(got.joints[:17], coco.joints)
        entry = entries[(got.image_id, tuple(float(v) for v in coco.joints[0]))]
        for part, key in (
            ("foot", "foot_kpts"),
            ("face", "face_kpts"),
            ("lefthand", "lefthand_kpts"),
            ("righthand", "righthand_kpts"),
        ):
            expected = np.asarray(entry[key], dtype=np.float32).reshape(-1, 3)
            joints = whole.info.part_joints(part)
            np.testing.assert_allclose(got.joints[joints], expected[:, :2], atol=1e-3)
            np.testing.assert_array_equal(got.visible[joints], expected[:, 2] > 0)
        faces += bool(entry["face_valid"])
    assert 0 < faces < len(whole)  # some people have a face, some do not
    item = whole[0]
    assert tuple(item["target"].shape) == (133, 64, 48) and tuple(item["joints"].shape) == (133, 3)
    stats = data.annotation_stats(wholebody_root / "annotations" / "coco_wholebody_val_v1.0.json", "coco_wholebody")
    assert len(stats["joint_names"]) == len(stats["labelled_per_joint"]) == 133
    assert stats["labelled_per_joint"][23] == faces and stats["persons"] == len(whole)
    assert stats["parts"][2] == ["face", 23, 91]
    figure = charts.plot_dataset_stats({"val": stats})  # labelled joints per part, not 133 rows
    labels = [t.get_text() for t in figure.axes[1].get_yticklabels()]
    assert labels == ["body (17)", "foot (6)", "face (68)", "lefthand (21)", "righthand (21)"]
    assert figure.axes[1].patches[2].get_width() == pytest.approx(faces / len(whole))


def test_invalid_parts_are_unlabelled_and_broken_ones_counted(tmp_path):
    body = [10.0, 20.0, 2] * 17
    ann = {
        "id": 5,
        "image_id": 1,
        "category_id": 1,
        "bbox": [0, 0, 50, 80],
        "area": 4000,
        "iscrowd": 0,
        "keypoints": body,
        "num_keypoints": 17,
        "foot_kpts": [1.0, 2.0, 2] * 6,
        "foot_valid": False,
        "face_kpts": [3.0, 4.0, 1] * 68,
        "face_valid": True,
        "lefthand_kpts": [0] * 63,
        "lefthand_valid": False,
        "righthand_kpts": [5.0, 6.0, 2] * 21,
        "righthand_valid": True,
    }
    broken = dict(ann, id=6, face_kpts=[1.0, 2.0, 2] * 60)
    content = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
        "annotations": [ann, broken],
        "categories": [{"id": 1, "name": "person", "keypoints": ["nose"]}],
    }
    converted = as_coco_keypoints(content, "coco_wholebody", keypoint_info("coco_wholebody").joint_names)
    assert content["annotations"][0]["keypoints"] is body  # the input is untouched
    first = np.asarray(converted["annotations"][0]["keypoints"]).reshape(133, 3)
    assert (first[17:23] == 0).all() and (first[23:91, 2] == 1).all() and (first[112:, 2] == 2).all()
    assert converted["annotations"][0]["num_keypoints"] == 17 + 68 + 21
    assert len(converted["categories"][0]["keypoints"]) == 133
    path = tmp_path / "annotations" / "coco_wholebody_val_v1.0.json"
    path.parent.mkdir()
    path.write_text(json.dumps(content))
    bad = data.check_annotations(path, "coco_wholebody")
    assert bad.total == 2 and bad.count == 1
    assert "face_kpts is not 204 numbers (68 joints x (x, y, v)), got 180" in bad.reasons() and "[6]" in bad.reasons()


def test_halpe_layout_reads_136_joints_and_halpe26_the_first_26(coco_root, tmp_path):
    root = make_halpe(coco_root, tmp_path / "halpe")
    assert data.check_layout(root, "halpe136") == data.check_layout(root, "halpe26") == []
    full = data.build_dataset(set_params("halpe136", root), "val")
    short = data.build_dataset(set_params("halpe26", root), "val")
    assert len(full) == len(short) > 0
    assert full.instances[0].joints.shape == (136, 2) and short.instances[0].joints.shape == (26, 2)
    for a, b in zip(full.instances, short.instances):
        np.testing.assert_array_equal(a.joints[:26], b.joints)
        np.testing.assert_array_equal(a.visible[:26], b.visible)
    train = data.build_dataset(set_params("halpe26", root), "train")
    assert str(train.image_path(0)).startswith(str(root / "images" / "train2015"))
    assert str(short.image_path(0)).startswith(str(root / "images" / "val2017"))
    # a halpe26 file of 26-joint people reads too; other lengths are counted with the reason
    path = root / "annotations" / "halpe_val_v1.json"
    content = json.loads(path.read_text())
    content["annotations"][0]["keypoints"] = content["annotations"][0]["keypoints"][:78]
    content["annotations"][1]["keypoints"] = content["annotations"][1]["keypoints"][:60]
    path.write_text(json.dumps(content))
    bad = data.check_annotations(path, "halpe26")
    assert bad.count == 1 and "not 78 or 408 numbers" in bad.reasons()


@pytest.mark.parametrize(
    "name, words",
    [
        (
            "coco_wholebody",
            [
                "coco_wholebody_val_v1.0.json",
                "https://github.com/jin-s13/COCO-WholeBody",
                "https://cocodataset.org/#download",
                "val2017",
            ],
        ),
        (
            "halpe26",
            ["halpe_train_v1.json", "images/train2015", "https://github.com/Fang-Haoshu/Halpe-FullBody", "HICO-DET"],
        ),
    ],
)
def test_missing_files_are_listed_with_their_download_addresses(tmp_path, name, words):
    (tmp_path / "annotations").mkdir()
    problems = data.check_layout(tmp_path, name)
    assert len(problems) == 4
    assert all(word in " ".join(problems) for word in words)
    with pytest.raises(data.DataLayoutError, match="annotation file .* does not exist"):
        data.build_dataset(set_params(name, tmp_path), "val")


def test_prepare_data_checks_and_counts_the_whole_body_layout(wholebody_root, tmp_path, outputs):
    from posecore import workbook

    params = set_params("coco_wholebody", "")
    missing = workbook.prepare_dataset(params, str(tmp_path))
    assert not missing.ok and "jin-s13/COCO-WholeBody" in missing._repr_html_()
    check = workbook.prepare_dataset(params, str(wholebody_root))
    assert check.ok
    rows = workbook.annotation_checks("wb-checks", params, check).rows
    assert [row[0] for row in rows] == ["train", "val"]


def test_evaluation_ground_truth_scores_the_arrays_as_they_are(tmp_path):
    ann = {
        "id": 5,
        "image_id": 1,
        "category_id": 1,
        "bbox": [0, 0, 50, 80],
        "area": 4000,
        "iscrowd": 0,
        "keypoints": [10.0, 20.0, 2] * 17,
        "foot_kpts": [1.0, 2.0, 2] * 6,
        "foot_valid": False,
        "face_kpts": [0] * 204,
        "face_valid": False,
        "lefthand_kpts": [0] * 63,
        "righthand_kpts": [0] * 63,
    }
    content = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
        "annotations": [ann],
        "categories": [{"id": 1, "name": "person"}],
    }
    path = tmp_path / "wb.json"
    path.write_text(json.dumps(content))
    (gt,) = data.keypoint_ground_truth(path, "coco_wholebody")["annotations"]
    assert gt["num_keypoints"] == 23 and gt["keypoints"][3 * 17 : 3 * 23] == ann["foot_kpts"]
    trained = as_coco_keypoints(content, "coco_wholebody", keypoint_info("coco_wholebody").joint_names)
    assert trained["annotations"][0]["num_keypoints"] == 17
