"""Datasets on the real samples and on synthetic data: counts, geometry round trips, augmentation,
bad input. Corrupted copies live in tmp_path, never in the repo."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.io import loadmat
from torch.utils.data import DataLoader

from posecore import data as data_module
from posecore.codec import decode_heatmaps
from posecore.data import (
    DataLayoutError,
    build_dataset,
    check_layout,
    dpg_jitter,
    grouped_order,
    make_synthetic,
    read_image,
)
from posecore.geometry import affine_matrix, heatmap_to_image, transform_points
from posecore.keypoints import COCO
from posecore.params import load_params


def coco_params(root, **overrides):
    return load_params("fastpose", {"data.root": str(root), "data.workers": 0, **overrides})


def labelled_people(ann_file):
    anns = json.loads(ann_file.read_text())["annotations"]
    return [a for a in anns if not a["iscrowd"] and any(v > 0 for v in a["keypoints"][2::3])]


def image_joints_from_target(item, params):
    """Decode an item's target and map it back through its own (rotated) crop: [K, 2] image px."""
    coords, _ = decode_heatmaps(item["target"][None].numpy())
    stride = np.array(params.data.input_size) / np.array(params.data.heatmap_size)
    back = affine_matrix(
        item["bbox_center"].numpy(),
        item["bbox_scale"].numpy(),
        float(item["rotation"]),
        params.data.input_size,
        inverse=True,
    )
    return transform_points(coords[0] * stride, back)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("synthetic") / "coco", num_train=12, num_val=4, seed=3)


@pytest.fixture
def coco_copy(coco_root, tmp_path):
    """A writable copy of the val samples."""
    root = tmp_path / "coco"
    shutil.copytree(coco_root / "annotations", root / "annotations")
    shutil.copytree(coco_root / "val2017", root / "val2017")
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


# --------------------------------------------------------------------------- real samples


def test_coco_val_is_one_item_per_labelled_person(coco_root):
    params = coco_params(coco_root)
    dataset = build_dataset(params, "val")
    people = labelled_people(coco_root / "annotations" / "person_keypoints_val2017.json")
    assert len(dataset) == len(people) == 12
    item = dataset[0]
    assert item["image"].shape == (3, 256, 192) and item["image"].dtype == torch.float32
    assert item["target"].shape == (17, 64, 48) and item["target_weight"].shape == (17,)
    assert item["joints"].shape == (17, 3) and item["bbox_score"] == 1.0 and item["rotation"] == 0
    assert int(item["index"]) == 0 and item["area"] == pytest.approx(float(item["bbox_scale"].prod()))
    assert dataset.info is COCO and dataset.ann_file.endswith("person_keypoints_val2017.json")
    assert dataset.gt_mat is None and dataset.num_skipped == 0
    assert sorted(int(dataset[i]["image_id"]) for i in range(len(dataset))) == sorted(a["image_id"] for a in people)
    train = build_dataset(params, "train")
    assert len(train) == len(labelled_people(coco_root / "annotations" / "person_keypoints_train2017.json"))


def test_val_targets_decode_back_to_the_annotated_joints(coco_root):
    params = coco_params(coco_root)
    dataset = build_dataset(params, "val")
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    coords, _ = decode_heatmaps(batch["target"].numpy())
    joints = heatmap_to_image(
        coords, batch["bbox_center"].numpy(), batch["bbox_scale"].numpy(), params.data.heatmap_size
    )
    cell = batch["bbox_scale"][:, 0].numpy() / params.data.heatmap_size[0]  # image px per heatmap px
    used = batch["target_weight"].numpy() > 0
    error = np.abs(joints - batch["joints"][..., :2].numpy()).max(axis=2)
    assert used.sum() > 150
    assert (error[used] <= (cell[:, None] * 0.5 + 1e-3).repeat(17, 1)[used]).all()


@pytest.mark.parametrize("codec", ["dark", "udp"])
def test_unbiased_codec_targets_decode_to_the_sub_pixel_joint(coco_root, codec):
    """Rotated, scaled and flipped crops in the codec's own convention: the decoded target is
    the joint's exact heatmap position, not the grid-rounded one."""
    params = coco_params(coco_root, **{"data.codec": codec, "data.rot_prob": 1.0})
    dataset = build_dataset(params, "train")
    codec = dataset.codec
    size = np.array(params.data.heatmap_size)
    errors, flips = [], 0
    for index in range(0, len(dataset), 4):
        item = dataset[index]
        crop = codec.crop_matrix(item["bbox_center"].numpy(), item["bbox_scale"].numpy(), float(item["rotation"]))
        truth = transform_points(item["joints"][:, :2].numpy(), crop) / codec.input_per_heatmap
        interior = ((truth >= 6) & (truth <= size - 7)).all(axis=1) & (item["target_weight"].numpy() > 0)
        coords, _ = codec.decode(item["target"][None].numpy())
        errors.extend(np.abs(coords[0] - truth).max(axis=1)[interior])
        instance = dataset.instances[index]  # joints in image pixels change only when mirrored
        flips += int(
            not np.allclose(
                item["joints"][:, :2].numpy()[instance.visible > 0], instance.joints[instance.visible > 0], atol=1e-3
            )
        )
    assert len(errors) > 50 and max(errors) < 0.05 and flips > 0


def test_augmented_targets_map_back_within_one_heatmap_pixel(coco_root):
    params = coco_params(coco_root, **{"data.rot_prob": 1.0, "data.half_body_prob": 0.3})
    dataset = build_dataset(params, "train")
    rotations, flips = [], 0
    for epoch in range(2):
        dataset.set_epoch(epoch)
        for index in range(0, len(dataset), 3):
            item = dataset[index]
            forward = affine_matrix(
                item["bbox_center"].numpy(), item["bbox_scale"].numpy(), float(item["rotation"]), params.data.input_size
            )
            cells = transform_points(item["joints"][:, :2].numpy(), forward) / 4
            peak_inside = (cells >= 0).all(axis=1) & ((cells + 0.5).astype(int) < params.data.heatmap_size).all(axis=1)
            used = (item["target_weight"].numpy() > 0) & peak_inside  # else the peak is clipped
            cell = float(item["bbox_scale"][0]) / params.data.heatmap_size[0]
            error = np.abs(image_joints_from_target(item, params) - item["joints"][:, :2].numpy()).max(axis=1)
            assert (error[used] <= cell + 1e-3).all()
            rotations.append(float(item["rotation"]))
            original = dataset.instances[index].joints
            flips += int(
                not np.allclose(
                    item["joints"][:, :2].numpy()[dataset.instances[index].visible > 0],
                    original[dataset.instances[index].visible > 0],
                    atol=1e-3,
                )
            )
    assert np.abs(rotations).max() > 10 and flips > 5


def test_flipped_item_mirrors_and_swaps_joints(coco_root):
    params = coco_params(coco_root, **{"data.rot_prob": 0.0, "data.scale_factor": 0.0})
    dataset = build_dataset(params, "train")
    index = next(i for i in range(len(dataset)) if dataset.instances[i].visible.sum() >= 12)
    instance = dataset.instances[index]
    width = instance.image_size[0]
    flipped = None
    for epoch in range(20):
        dataset.set_epoch(epoch)
        item = dataset[index]
        if not np.allclose(item["bbox_center"].numpy(), instance.bbox_center):
            flipped = item
            break
    assert flipped is not None
    flip_index = COCO.flip_index()
    expected = instance.joints[flip_index].copy()
    expected[:, 0] = width - 1 - expected[:, 0]
    visible = instance.visible[flip_index] > 0
    np.testing.assert_allclose(flipped["joints"][:, :2].numpy()[visible], expected[visible], atol=1e-3)
    np.testing.assert_array_equal(flipped["joints"][:, 2].numpy(), visible.astype(np.float32))
    assert flipped["bbox_center"][0] == pytest.approx(width - 1 - instance.bbox_center[0], abs=1e-3)
    # the mirrored crop is the plain crop mirrored (one pixel of resampling shift at most)
    dataset.flip = False
    plain = dataset[index]["image"].numpy()
    mirrored = flipped["image"].numpy()[:, :, ::-1]
    assert np.abs(mirrored[:, :, 1:] - plain[:, :, :-1]).mean() < np.abs(mirrored - plain[:, ::-1]).mean()


def test_same_seed_epoch_index_gives_the_same_sample(coco_root):
    dataset = build_dataset(coco_params(coco_root), "train")
    dataset.set_epoch(3)
    first, again = dataset[5], dataset[5]
    assert all(torch.equal(first[k], again[k]) for k in first)
    dataset.set_epoch(4)
    assert not torch.equal(first["image"], dataset[5]["image"])


def test_half_body_crops_around_part_of_the_body(coco_root):
    params = coco_params(
        coco_root,
        **{
            "data.half_body_prob": 1.0,
            "data.half_body_min_joints": 8,
            "data.scale_factor": 0.0,
            "data.rot_prob": 0.0,
            "data.flip": False,
        },
    )
    dataset = build_dataset(params, "train")
    index = next(i for i in range(len(dataset)) if dataset.instances[i].visible.sum() > 12)
    instance = dataset.instances[index]
    smaller = 0
    for epoch in range(6):
        dataset.set_epoch(epoch)
        item = dataset[index]
        scale = item["bbox_scale"].numpy()
        assert scale[0] / scale[1] == pytest.approx(192 / 256, rel=1e-4)
        joints = instance.joints[instance.visible > 0]
        assert joints.min(0)[0] - 1 <= item["bbox_center"][0] <= joints.max(0)[0] + 1
        smaller += int(scale[0] < 0.9 * instance.bbox_scale[0])
    assert smaller >= 3


def test_dpg_jitters_boxes_after_dpg_epoch(coco_root):
    params = coco_params(
        coco_root, **{"train.dpg_epoch": 2, "data.scale_factor": 0.0, "data.rot_prob": 0.0, "data.flip": False}
    )
    dataset = build_dataset(params, "train")
    dataset.set_epoch(2)
    assert not dataset.dpg  # epoch dpg_epoch itself still trains without DPG, as AlphaPose
    before = [dataset[i]["bbox_center"].numpy() for i in range(10)]
    assert all(np.allclose(c, dataset.instances[i].bbox_center) for i, c in enumerate(before))
    dataset.set_epoch(3)
    assert dataset.dpg
    after = [dataset[i]["bbox_center"].numpy() for i in range(10)]
    assert sum(not np.allclose(c, dataset.instances[i].bbox_center, atol=0.5) for i, c in enumerate(after)) >= 7
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0, x1, y1 = dpg_jitter([100, 50, 300, 400], (640, 480), rng)
        assert x1 > x0 and y1 > y0 and x1 <= 640 and y1 <= 480


def test_test_split_uses_detector_boxes(coco_root):
    params = coco_params(
        coco_root,
        **{
            "data.det_file": str(coco_root / "detections" / "person_detections_val2017.json"),
            "data.det_score_thr": 0.5,
        },
    )
    detections = json.loads((coco_root / "detections" / "person_detections_val2017.json").read_text())
    kept = [d for d in detections if d["category_id"] == 1 and d["score"] >= 0.5]
    dataset = build_dataset(params, "test")
    assert len(dataset) == len(kept) > 0
    item = dataset[0]
    assert float(item["bbox_score"]) >= 0.5 and not item["joints"].any()
    assert dataset.ann_file.endswith("person_keypoints_val2017.json")
    relative = load_params(params, {"data.det_file": "detections/person_detections_val2017.json"})
    assert len(build_dataset(relative, "test")) == len(kept)  # resolved against data.root too


def test_mpii_center_scale_and_one_based_joints(mpii_root):
    params = load_params("hourglass", {"data.root": str(mpii_root), "data.workers": 0})
    dataset = build_dataset(params, "val")
    annotations = json.loads((mpii_root / "annotations" / "mpii_val.json").read_text())
    assert len(dataset) == len(annotations) and dataset.gt_mat is None
    for i, ann in enumerate(annotations):
        item = dataset[i]
        scale = ann["scale"] * 1.25
        np.testing.assert_allclose(
            item["bbox_center"].numpy(), [ann["center"][0] - 1, ann["center"][1] + 15 * ann["scale"] - 1], rtol=1e-6
        )
        np.testing.assert_allclose(item["bbox_scale"].numpy(), [scale * 200, scale * 200], rtol=1e-6)
        visible = np.asarray(ann["joints_vis"]) > 0
        np.testing.assert_allclose(
            item["joints"][:, :2].numpy()[visible], np.asarray(ann["joints"])[visible] - 1, atol=1e-4
        )
    assert item["image"].shape == (3, 384, 384) and item["target"].shape == (16, 96, 96)


# --------------------------------------------------------------------------- synthetic data


def test_synthetic_generation_is_deterministic_and_cached(tmp_path, synthetic_root):
    again = make_synthetic(tmp_path / "again", num_train=12, num_val=4, seed=3)
    for name in ("annotations/person_keypoints_train2017.json", "val2017/000001000001.jpg"):
        assert (again / name).read_bytes() == (synthetic_root / name).read_bytes()
    stamp = (again / "synthetic.json").stat().st_mtime_ns
    make_synthetic(again, num_train=12, num_val=4, seed=3)
    assert (again / "synthetic.json").stat().st_mtime_ns == stamp  # complete: skipped
    other = make_synthetic(tmp_path / "other", num_train=12, num_val=4, seed=4)
    assert (other / "val2017/000001000001.jpg").read_bytes() != (
        synthetic_root / "val2017/000001000001.jpg"
    ).read_bytes()


def test_synthetic_coco_loads_like_real_data(synthetic_root):
    assert check_layout(synthetic_root, "coco") == []
    gt = json.loads((synthetic_root / "annotations" / "person_keypoints_val2017.json").read_text())
    people = gt["annotations"]
    assert all(a["iscrowd"] == 0 and a["num_keypoints"] == sum(v > 0 for v in a["keypoints"][2::3]) for a in people)
    assert {v for a in people for v in a["keypoints"][2::3]} <= {0, 1, 2}
    params = load_params("demo", {"data.root": str(synthetic_root), "data.workers": 0})
    val = build_dataset(params, "val")
    assert len(val) == len(labelled_people(synthetic_root / "annotations" / "person_keypoints_val2017.json"))
    batch = next(iter(DataLoader(build_dataset(params, "train"), batch_size=8)))
    assert batch["image"].shape == (8, 3, 128, 96) and batch["target"].shape == (8, 17, 32, 24)
    # front-facing figures: the left shoulder is drawn on the image's right
    sides = [
        a["keypoints"][5 * 3] > a["keypoints"][6 * 3]
        for a in people
        if a["keypoints"][5 * 3 + 2] and a["keypoints"][6 * 3 + 2]
    ]
    assert np.mean(sides) > 0.8


def test_synthetic_mpii_has_an_official_gt_mat(tmp_path):
    root = make_synthetic(tmp_path / "mpii", dataset="mpii", num_train=4, num_val=4, seed=1)
    assert check_layout(root, "mpii") == []
    mat = loadmat(root / "annotations" / "mpii_gt_val.mat")
    val = json.loads((root / "annotations" / "mpii_val.json").read_text())
    n = len(val)
    assert mat["jnt_missing"].shape == (16, n) and mat["pos_gt_src"].shape == (16, 2, n)
    assert mat["headboxes_src"].shape == (2, 2, n)
    assert np.where(mat["dataset_joints"] == "head")[1][0] == 9
    np.testing.assert_allclose(mat["pos_gt_src"][:, :, 0], np.asarray(val[0]["joints"]), atol=1e-6)
    params = load_params(
        "hourglass",
        {"data.root": str(root), "data.workers": 0, "data.input_size": [128, 128], "data.heatmap_size": [32, 32]},
    )
    dataset = build_dataset(params, "val")
    assert len(dataset) == n and dataset.gt_mat.endswith("mpii_gt_val.mat")
    assert dataset[0]["target"].shape == (16, 32, 32)


# --------------------------------------------------------------------------- bad input


def test_missing_root_and_annotations_name_the_path_and_the_notebook(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as error:
        build_dataset(coco_params(missing), "val")
    assert str(missing) in str(error.value) and "prepare_data.ipynb" in str(error.value)
    assert "person_keypoints_val2017.json" in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataLayoutError) as error:
        build_dataset(coco_params(tmp_path / "empty"), "train")
    assert "person_keypoints_train2017.json" in str(error.value) and "cocodataset.org" in str(error.value)
    problems = check_layout(tmp_path / "empty", "mpii")
    assert len(problems) == 4 and all("human-pose.mpi-inf.mpg.de" in p for p in problems)
    with pytest.raises(ValueError, match="split"):
        build_dataset(coco_params(tmp_path / "empty"), "validation")


def test_unreadable_images_are_skipped_with_a_warning(coco_copy):
    images = sorted((coco_copy / "val2017").glob("*.jpg"))
    truncated, missing = images[1], images[2]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    missing.unlink()
    dataset = build_dataset(coco_params(coco_copy), "val")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [dataset[i] for i in range(len(dataset))]
    messages = " ".join(str(w.message) for w in caught)
    assert truncated.name in messages and missing.name in messages
    assert len(items) == len(dataset) and dataset.num_skipped >= 2
    bad = {str(truncated), str(missing)}
    assert all(dataset.image_path(int(item["index"])) not in bad for item in items)
    # the replacement is deterministic: the next readable sample
    first_bad = next(i for i in range(len(dataset)) if dataset.image_path(i) in bad)
    replacement = next(i for i in range(first_bad, len(dataset)) if dataset.image_path(i) not in bad)
    assert int(items[first_bad]["index"]) == replacement


def test_skip_count_is_shared_with_dataloader_workers(coco_copy):
    image = sorted((coco_copy / "val2017").glob("*.jpg"))[0]
    image.write_bytes(image.read_bytes()[:1000])
    dataset = build_dataset(coco_params(coco_copy), "val")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(DataLoader(dataset, batch_size=2, num_workers=2))
    assert sum(len(b["index"]) for b in batches) == len(dataset)
    assert dataset.num_skipped >= 1


def test_odd_images_and_boxes_are_handled(coco_copy):
    ann_file = coco_copy / "annotations" / "person_keypoints_val2017.json"
    gt = json.loads(ann_file.read_text())
    people = labelled_people(ann_file)
    gt["annotations"][0]["bbox"][2] = 0  # zero width
    gt["annotations"][1]["bbox"][3] = -5  # negative height
    gt["annotations"][2]["keypoints"][0:3] = [-50.0, 9000.0, 2]  # a joint outside the image
    gt["images"].append({"id": 1, "file_name": "000000000001.jpg", "width": 64, "height": 48})  # no people
    ann_file.write_text(json.dumps(gt))
    cv2.imwrite(str(coco_copy / "val2017" / "000000000001.jpg"), np.zeros((48, 64, 3), np.uint8))
    by_id = {img["id"]: img["file_name"] for img in gt["images"]}
    gray_path = coco_copy / "val2017" / by_id[gt["annotations"][3]["image_id"]]
    png_path = coco_copy / "val2017" / by_id[gt["annotations"][0]["image_id"]]
    gray = cv2.cvtColor(cv2.imread(str(gray_path)), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(gray_path), gray)
    ok, png = cv2.imencode(".png", cv2.imread(str(png_path)))
    png_path.write_bytes(png.tobytes())  # a PNG named .jpg
    assert read_image(gray_path).shape[2] == 3 and read_image(png_path).ndim == 3

    dataset = build_dataset(coco_params(coco_copy), "val")
    assert len(dataset) == len(people) - 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing here is a reason to skip an image
        items = [dataset[i] for i in range(len(dataset))]
    assert all(item["image"].shape == (3, 256, 192) for item in items) and dataset.num_skipped == 0
    outside = next(item for item in items if item["joints"][0, 1] > 5000)
    assert outside["target_weight"][0] == 0 and not outside["target"][0].any()


def test_synthetic_roots_are_made_only_by_ensure_synthetic(tmp_path, monkeypatch):

    made = []
    monkeypatch.setattr(
        data_module,
        "make_synthetic",
        lambda root, dataset: (
            made.append((root, dataset)) or make_synthetic(root, dataset=dataset, num_train=3, num_val=2)
        ),
    )
    params = load_params("demo", {"data.root": str(tmp_path / "synthetic_coco")})
    with pytest.raises(DataLayoutError, match="ensure_synthetic"):
        build_dataset(params, "val")  # reading never writes a dataset
    assert made == []
    assert data_module.ensure_synthetic(params) == tmp_path / "synthetic_coco"
    dataset = build_dataset(params, "val")
    assert made == [(tmp_path / "synthetic_coco", "coco")] and len(dataset) > 0
    data_module.ensure_synthetic(params)  # complete: left as it is
    assert len(made) == 1
    monkeypatch.setenv("POSECORE_OUTPUTS", str(tmp_path / "outputs"))
    data_module.ensure_synthetic(load_params("demo", {"data.root": ""}))
    assert made[-1] == (tmp_path / "outputs" / "data" / "synthetic_coco", "coco")


def test_grouped_order_keeps_images_together_and_shards_evenly():
    groups = [[0, 1, 2], [3], [4, 5], [6, 7, 8, 9], [10]]
    order = grouped_order(groups, seed=3, epoch=1)
    assert sorted(order) == list(range(11))
    assert order == grouped_order(groups, seed=3, epoch=1)  # a function of (seed, epoch)
    assert order != grouped_order(groups, seed=3, epoch=2)
    starts = [order.index(group[0]) for group in groups]
    assert all(order[s : s + len(g)] == g for s, g in zip(starts, groups))  # people stay adjacent
    shards = [grouped_order(groups, 3, 1, world=3, rank=r) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded like DistributedSampler
    assert sum(shards, []) == (order + order)[:12]  # contiguous slices
    loose = grouped_order(groups, 3, 1, group_by_image=False)
    assert sorted(loose) == list(range(11)) and loose != order


def test_people_of_one_image_share_one_decode(coco_root, monkeypatch):
    params = coco_params(coco_root)
    dataset = build_dataset(params, "val")
    group = next(g for g in dataset.image_groups() if len(g) >= 2)
    fresh = [build_dataset(params, "val")[i] for i in group]  # each from a cold cache
    calls = []
    real_read = data_module.dataset.read_image
    monkeypatch.setattr(data_module.dataset, "read_image", lambda *a, **k: calls.append(a) or real_read(*a, **k))
    items = [dataset[i] for i in group]
    assert len(calls) == 1
    for item, expected in zip(items, fresh):
        assert torch.equal(item["image"], expected["image"])
        assert torch.equal(item["target"], expected["target"])
    dataset[group[0]]
    assert len(calls) == 1
    other = next(g for g in dataset.image_groups() if g[0] not in group)
    dataset[other[0]]
    assert len(calls) == 2


# ----------------------------------------------------------------------------- annotations and detections


@pytest.fixture
def tiny_coco_copy(tiny, tmp_path):
    """A writable copy of the tiny synthetic COCO set, and params reading it."""
    import shutil

    root = Path(shutil.copytree(tiny().data.root, tmp_path / "coco"))
    return root, tiny(**{"data.root": str(root)})


def _edit_json(path, edit):
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def test_a_category_with_another_joint_count_is_an_error(tiny_coco_copy):
    from posecore.data import build_dataset

    root, params = tiny_coco_copy
    path = root / "annotations" / "person_keypoints_val2017.json"
    _edit_json(path, lambda c: c["categories"][0].update(keypoints=c["categories"][0]["keypoints"][:16]))
    with pytest.raises(
        ValueError,
        match=r"person_keypoints_val2017\.json: category 'person' has 16 "
        r"keypoints but the params have 17 joints",
    ):
        build_dataset(params, "val")


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("keypoints", list(range(48)), "48 keypoint values, not 51"),
        ("keypoints", None, "keypoints is not a list of numbers"),
        ("keypoints", ["x"] * 51, "keypoints is not a list of numbers"),
        ("bbox", [1, 2, 3], "bbox is not 4 finite numbers"),
        ("image_id", "0001", "image_id is not an integer"),
    ],
)
def test_bad_person_entries_are_counted_and_reported_once(tiny_coco_copy, outputs, field, value, reason):
    from posecore import workbook
    from posecore.data import build_dataset, check_annotations

    root, params = tiny_coco_copy
    path = root / "annotations" / "person_keypoints_val2017.json"
    total = len(json.loads(path.read_text())["annotations"])
    clean = len(build_dataset(params, "val"))
    _edit_json(path, lambda c: [c["annotations"][i].update({field: value}) for i in (0, 1)])
    ids = [a["id"] for a in json.loads(path.read_text())["annotations"][:2]]
    with pytest.warns(UserWarning) as caught:
        assert len(build_dataset(params, "val")) == clean - 2
    messages = [str(w.message) for w in caught if "person entries" in str(w.message)]
    assert len(messages) == 1 and f"skipped 2 of {total}" in messages[0] and reason in messages[0]
    assert f"ids {ids}" in messages[0]
    bad = check_annotations(path, "coco")
    assert bad.count == 2 and bad.examples == {next(iter(bad.counts)): ids}
    check = workbook.LayoutCheck(root, "coco", [], False)
    table = workbook.annotation_checks("prepared", params, check)
    assert table.rows[1][:4] == ["val", path.name, total, 2] and reason in table.rows[1][4]
    assert (outputs / "prepared" / "tables" / "data_annotation_checks.json").is_file()


def test_bad_mpii_entries_are_counted(tmp_path):
    from posecore.data import check_annotations

    path = tmp_path / "mpii_val.json"
    good = {
        "image": "000001.jpg",
        "center": [50.0, 60.0],
        "scale": 1.2,
        "joints": [[10.0, 20.0]] * 16,
        "joints_vis": [1] * 16,
    }
    path.write_text(
        json.dumps(
            [
                good,
                {**good, "joints": [[1.0, 2.0]] * 15},
                {**good, "scale": -1},
                {**good, "joints_vis": [1] * 17},
                {**good, "center": [1.0]},
            ]
        )
    )
    bad = check_annotations(path, "mpii")
    assert (bad.total, bad.count) == (5, 4)
    assert bad.examples["joints is not 16 (x, y) pairs of numbers"] == ["#1 (000001.jpg)"]
    assert set(bad.counts) >= {
        "scale is not a positive number",
        "joints_vis is not 16 numbers",
        "center is not 2 finite numbers",
    }


def _first_val_image(root):
    return json.loads((root / "annotations" / "person_keypoints_val2017.json").read_text())["images"][0]["id"]


@pytest.mark.parametrize(
    "entry, problem",
    [
        ("not a dict", "is not an object"),
        ({"bbox": [1, 2, 3, 4], "score": 1.0}, "has no 'image_id'"),
        ({"image_id": 1, "bbox": [1, 2, 3], "score": 1.0}, "bbox that is not 4 numbers"),
        ({"image_id": 1, "bbox": "1 2 3 4", "score": 1.0}, "bbox that is not 4 numbers"),
        ({"image_id": 1, "bbox": [1, 2, 3, float("nan")], "score": 1.0}, "non-finite bbox or score"),
        ({"image_id": 1, "bbox": [1, 2, 3, 4], "score": float("inf")}, "non-finite bbox or score"),
        ({"image_id": 1, "bbox": [1, 2, 3, 4], "score": "high"}, "score that is not a number"),
        ({"image_id": [1], "bbox": [1, 2, 3, 4], "score": 1.0}, "image_id that is neither"),
    ],
)
def test_malformed_detection_entries_name_file_and_index(tiny_coco_copy, tmp_path, entry, problem):
    from posecore.data import build_dataset

    root, params = tiny_coco_copy
    image_id = _first_val_image(root)
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([{"image_id": image_id, "bbox": [1, 2, 10, 20], "score": 0.9}, entry]))
    params = load_params(params, {"data.det_file": str(det_file), "eval.use_gt_boxes": False})
    with pytest.raises(ValueError, match=rf"dets\.json: entry 1 .*{problem}"):
        build_dataset(params, "test")


def test_zero_and_negative_detection_boxes_are_counted(tiny_coco_copy, tmp_path):
    from posecore.data import build_dataset

    root, params = tiny_coco_copy
    image_id = _first_val_image(root)
    boxes = [[1, 2, 10, 20], [1, 2, 0, 20], [1, 2, 10, -5], [3, 4, 12, 22]]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps([{"image_id": image_id, "bbox": b, "score": 0.9} for b in boxes]))
    params = load_params(params, {"data.det_file": str(det_file), "eval.use_gt_boxes": False})
    with pytest.warns(
        UserWarning,
        match=r"dets\.json: 2 of 4 detections have a box of zero or negative "
        r"width or height and were skipped \(entries \[1, 2\]\)",
    ):
        assert len(build_dataset(params, "test")) == 2
