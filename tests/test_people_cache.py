"""People as flat arrays and the annotation cache: the same items as the parsed instances, one
parse per file content, invalidation, warnings kept, one builder among concurrent processes."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_params, tiny_synthetic

from posecore import data
from posecore.data import People, build_dataset, cache, load_instances, load_people


@pytest.fixture
def own_cache(outputs) -> Path:
    """The cache root of a fresh outputs folder (the `outputs` fixture's POSECORE_OUTPUTS)."""
    return outputs / "cache"


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return tiny_synthetic(tmp_path_factory.mktemp("synthetic"), num_train=4)


def _copy_dataset(root: Path, folder: Path) -> Path:
    return Path(shutil.copytree(root, folder / "coco"))


def _count_parses(monkeypatch) -> list:
    calls: list = []
    real = cache.load_instances

    def counted(params, split):
        calls.append(split)
        return real(params, split)

    monkeypatch.setattr(cache, "load_instances", counted)
    return calls


def _assert_same_people(people, instances) -> None:
    assert len(people) == len(instances) > 0
    for mine, theirs in zip(people, instances):
        assert mine.image_path == theirs.image_path and mine.image_id == theirs.image_id
        assert mine.image_size == theirs.image_size and mine.bbox_score == theirs.bbox_score
        for key in ("bbox_center", "bbox_scale", "joints", "visible", "bbox_xyxy"):
            a, b = getattr(mine, key), getattr(theirs, key)
            assert (a is None) == (b is None), key
            if a is not None:
                np.testing.assert_array_equal(a, np.asarray(b, np.float32), err_msg=key)


def test_cached_people_are_the_parsed_instances_and_the_file_is_parsed_once(synthetic_root, own_cache, monkeypatch):
    params = tiny_params(synthetic_root)
    calls = _count_parses(monkeypatch)
    first = build_dataset(params, "train")
    second = build_dataset(params, "train")
    assert calls == ["train"]  # the second build mapped the cache
    assert isinstance(second.instances, People) and second.instances.folder is not None
    assert isinstance(second.instances.joints, np.memmap)
    assert second.instances.folder.parent == own_cache / "people"
    _assert_same_people(second.instances, load_instances(params, "train")[0])
    # the items are those of a dataset built on the parsed instances
    instances, info, ann_file, gt_mat = load_instances(params, "train")
    plain = data.PoseDataset(instances, info, params, train=True, ann_file=str(ann_file), gt_mat=gt_mat, split="train")
    for dataset in (first, second, plain):
        dataset.set_epoch(1)
    for index in (0, 5, len(plain) - 1):
        for key, value in plain[index].items():
            assert torch.equal(second[index][key], value), key
    assert [list(g) for g in second.image_groups()] == [list(g) for g in plain.image_groups()]
    assert build_dataset(params, "val") and calls == ["train", "val"]


def test_a_changed_file_is_parsed_again(synthetic_root, tmp_path, own_cache, monkeypatch):
    root = _copy_dataset(synthetic_root, tmp_path)
    params = tiny_params(root)
    calls = _count_parses(monkeypatch)
    before = build_dataset(params, "train")
    ann_file = root / "annotations" / "person_keypoints_train2017.json"
    coco = json.loads(ann_file.read_text())
    dropped = coco["annotations"].pop(0)
    ann_file.write_text(json.dumps(coco))
    after = build_dataset(params, "train")
    assert calls == ["train", "train"] and len(after) == len(before) - 1
    assert int(dropped["image_id"]) in set(before.instances.image_id.tolist())
    # an augmentation-only change keeps the cache; a box-changing one does not
    build_dataset(tiny_params(root, **{"data.rot_factor": 10.0, "data.workers": 3}), "train")
    assert len(calls) == 2
    build_dataset(tiny_params(root, **{"data.bbox_padding": 1.5}), "train")
    assert len(calls) == 3


def test_skipped_entries_are_reported_on_every_load(synthetic_root, tmp_path, own_cache):
    root = _copy_dataset(synthetic_root, tmp_path)
    ann_file = root / "annotations" / "person_keypoints_train2017.json"
    coco = json.loads(ann_file.read_text())
    coco["annotations"][0]["bbox"] = [1, 2]
    ann_file.write_text(json.dumps(coco))
    params = tiny_params(root)
    for _ in range(2):  # parsed, then cached
        with pytest.warns(UserWarning, match=r"skipped 1 of .*bbox is not 4 finite numbers"):
            build_dataset(params, "train")


def test_concurrent_builders_parse_once_and_share_the_result(synthetic_root, own_cache, monkeypatch):
    params = tiny_params(synthetic_root)
    calls: list = []
    real = cache.load_instances

    def slow(params, split):
        calls.append(split)
        time.sleep(0.5)  # the others arrive while this one parses
        return real(params, split)

    monkeypatch.setattr(cache, "load_instances", slow)
    results: list = [None] * 3

    def build(slot: int) -> None:
        results[slot] = load_people(params, "train")[0]

    threads = [threading.Thread(target=build, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == ["train"]
    assert {str(people.folder) for people in results} == {str(results[0].folder)}
    assert not [p for p in (own_cache / "people").iterdir() if p.name.endswith(".tmp")]


def test_an_unwritable_cache_parses_without_it(synthetic_root, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("POSECORE_OUTPUTS", str(blocker / "outputs"))
    with pytest.warns(UserWarning, match="annotation cache off"):
        dataset = build_dataset(tiny_params(synthetic_root), "train")
    assert dataset.instances.folder is None and len(dataset) > 0


def test_cache_root_follows_the_outputs_root(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv("POSECORE_OUTPUTS", str(tmp_path / "outputs"))
    assert cache.cache_root() == tmp_path / "outputs" / "cache"
    dataset = build_dataset(tiny_params(synthetic_root), "train")
    assert dataset.instances.folder.parent == tmp_path / "outputs" / "cache" / "people"


def test_people_arrays_hold_any_joint_count_and_travel_mapped(tmp_path):
    rng = np.random.default_rng(0)
    joints = 136  # Halpe-FullBody
    instances = [
        data.Instance(
            image_path=f"/images/{i // 2}.jpg",
            image_id=i // 2,
            image_size=(640, 480) if i % 3 else None,
            bbox_center=rng.random(2).astype(np.float32),
            bbox_scale=rng.random(2).astype(np.float32),
            joints=rng.random((joints, 2)).astype(np.float32),
            visible=(rng.random(joints) > 0.5).astype(np.float32),
            bbox_xyxy=rng.random(4).astype(np.float32) if i % 2 else None,
            bbox_score=float(rng.random()),
        )
        for i in range(7)
    ]
    people = People.from_instances(instances, joints)
    assert people.joints.shape == (7, joints, 2) and people.num_joints == joints
    _assert_same_people(people, instances)
    people.save(tmp_path / "people", {"format": 1})
    mapped = People.open(tmp_path / "people")
    _assert_same_people(mapped, instances)
    assert [list(g) for g in data.sampling.ImageGroups(*mapped.image_groups())] == [[0, 1], [2, 3], [4, 5], [6]]
    travelled = pickle.loads(pickle.dumps(mapped))
    assert isinstance(travelled.joints, np.memmap) and len(pickle.dumps(mapped)) < 1000
    _assert_same_people(travelled, instances)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert people[-1].image_path == "/images/3.jpg" and people.image_path(2) == "/images/1.jpg"


def _replace_with_the_val_cache(folder: Path) -> None:
    """A whole, valid cache of other people copied over this one."""
    val = next(p for p in folder.parent.iterdir() if p.name.startswith("coco-val-") and p.is_dir())
    shutil.rmtree(folder)
    shutil.copytree(val, folder)


def _flip_last_byte(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[-1] ^= 0x40
    path.write_bytes(bytes(content))


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda f: _flip_last_byte(f / "bbox_scale.npy"), "bbox_scale.npy does not match its hash"),
        (lambda f: (f / "joints.npy").write_bytes((f / "joints.npy").read_bytes()[:-8]), "joints.npy is"),
        (
            lambda f: np.save(f / "image_id.npy", np.load(f / "image_id.npy").astype(np.int32)),
            "image_id.npy holds int32",
        ),
        (lambda f: np.save(f / "visible.npy", np.load(f / "visible.npy")[1:]), "visible.npy holds uint8"),
        (lambda f: (f / "path_index.npy").unlink(), "path_index.npy is missing"),
        (lambda f: (f / "manifest.json").write_text('{"people": 3'), "manifest.json is not JSON"),
        (lambda f: (f / "manifest.json").unlink(), "has no manifest.json"),
        (lambda f: _replace_with_the_val_cache(f), "its meta is not the format-2 record of this key"),
    ],
)
def test_a_cache_that_does_not_verify_is_rebuilt_with_a_warning_naming_it(synthetic_root, own_cache, damage, words):
    params = tiny_params(synthetic_root)
    folder = load_people(params, "train")[0].folder
    load_people(params, "val")
    damage(folder)
    with pytest.warns(UserWarning, match="does not verify") as caught:
        people = load_people(params, "train")[0]
    message = next(str(w.message) for w in caught if "does not verify" in str(w.message))
    assert str(folder) in message and words in message and "rebuilt it from" in message
    assert people.folder == folder
    _assert_same_people(people, load_instances(params, "train")[0])
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]  # nothing half-written left
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt folder verifies: no second rebuild
        load_people(params, "train")


def test_hashes_are_read_on_the_first_load_of_settled_files_in_a_process(synthetic_root, own_cache, monkeypatch):
    from posecore.data import people as people_module

    hashed: list = []
    real = people_module.file_hash
    monkeypatch.setattr(people_module, "file_hash", lambda path: hashed.append(path.name) or real(path))
    monkeypatch.setattr(cache, "_VERIFIED", {})
    params = tiny_params(synthetic_root)
    folder = load_people(params, "train")[0].folder
    hashed.clear()
    load_people(params, "train")  # files written a moment ago: their time stamps may not have ticked yet
    assert len(hashed) == len(data.people.FIELDS)
    monkeypatch.setattr(cache, "SETTLED_NS", 0)  # as if written long ago
    load_people(params, "train")
    hashed.clear()
    load_people(params, "train")
    assert hashed == []  # verified once in this process: shapes, dtypes and sizes only
    # a file replaced since (another inode, new time stamps) is hashed again, and its change found
    replaced = folder / "bbox_center.npy"
    centers = np.load(replaced)
    centers[0, 0] += 1
    np.save(folder / "new.npy", centers)
    (folder / "new.npy").rename(replaced)
    with pytest.warns(UserWarning, match="bbox_center.npy does not match its hash"):
        people = load_people(params, "train")[0]
    assert "bbox_center.npy" in hashed
    _assert_same_people(people, load_instances(params, "train")[0])


def test_values_the_parser_never_writes_do_not_verify(tmp_path):
    from posecore.data.people import CacheMismatch

    rng = np.random.default_rng(0)
    instances = [
        data.Instance(
            f"/images/{i}.jpg", i, (640, 480), rng.random(2) + 1, rng.random(2) + 1, rng.random((3, 2)), np.ones(3)
        )
        for i in range(4)
    ]
    good = People.from_instances(instances, 3)
    assert good.value_problem() is None
    for field, value, words in [
        ("joints", np.nan, "joints of person 2 is not finite"),
        ("bbox_scale", -1.0, "bbox_scale of person 2 is not positive"),
        ("path_index", 7, "path_index of person 2 is not an image path number in [0, 4)"),
        ("visible", 3, "visible of person 2 is not 0 or 1"),
        ("bbox_score", np.inf, "bbox_score of person 2 is not a finite number"),
    ]:
        arrays = {name: np.array(array) for name, array in good.arrays.items()}
        arrays[field][2] = value
        bad = People(arrays)
        assert words in bad.value_problem()
        bad.save(tmp_path / field, {"format": 1})  # a manifest that matches the bad values
        People.open(tmp_path / field)  # headers and sizes fit: mapped
        with pytest.raises(CacheMismatch, match=re.escape(words)) as error:
            People.open(tmp_path / field, verify=True)
        assert str(tmp_path / field) in str(error.value)


def test_a_worker_mapping_a_damaged_folder_is_told_which(synthetic_root, own_cache):
    from posecore.data.people import CacheMismatch

    people = load_people(tiny_params(synthetic_root), "train")[0]
    pickled = pickle.dumps(people)
    (people.folder / "joints.npy").write_bytes(b"\x93NUMPY")
    with pytest.raises(CacheMismatch, match="joints.npy has no readable .npy header") as error:
        pickle.loads(pickled)
    assert str(people.folder) in str(error.value)
