"""posecore.Predictor: one crop (the dataset's), one forward, flip test and decode for PyTorch
and ONNX; a run's model loads as it was trained (its params.yaml, keypoint set, codec).

A tiny FastPose trained one epoch on synthetic COCO-layout data is the run; its ONNX export the
second backend.
"""

from __future__ import annotations

import gc
import os
import tracemalloc
import weakref

import numpy as np
import pytest
import torch

import posecore
from posecore.data import build_dataset, read_image
from posecore.models import final_output
from posecore.predictor import Poses, Predictor
from posecore.runs import Run

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory, one_thread):
    """(run name, outputs root, onnx path): one epoch of the tiny params, exported."""
    from helpers import TRAIN, tiny_params

    outputs = tmp_path_factory.mktemp("predictor")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSECORE_OUTPUTS", str(outputs))
        params = tiny_params(tiny_root, **{**TRAIN, "train.epochs": 1, "data.codec": "udp"})
        posecore.train(params, run_name="tiny")
        onnx_path = outputs / "tiny" / "model.onnx"
        posecore.export_onnx(load_run_params("tiny"), "last", onnx_path, run_name="tiny", parity_batch_sizes=())
    return "tiny", outputs, onnx_path


def load_run_params(name):
    return Run(name).params()


@pytest.fixture
def in_run(trained, monkeypatch):
    monkeypatch.setenv("POSECORE_OUTPUTS", str(trained[1]))
    return trained


def val_people(params):
    """(BGR image, boxes [n, 4] xyxy, dataset items) of the first val image's people."""
    dataset = build_dataset(params, "val")
    first = dataset.instances[0].image_id
    chosen = [i for i, inst in enumerate(dataset.instances) if inst.image_id == first]
    boxes = np.array([dataset.instances[i].bbox_xyxy for i in chosen], np.float64)
    return read_image(dataset.instances[chosen[0]].image_path), boxes, [dataset[i] for i in chosen]


def test_the_crop_is_the_datasets(in_run):
    predictor = Predictor.from_run("tiny", "last", device="cpu")
    image, boxes, items = val_people(predictor.params)
    inputs, centers, scales = predictor.crops(image, boxes)
    np.testing.assert_allclose(centers, np.stack([item["bbox_center"].numpy() for item in items]), atol=1e-4)
    np.testing.assert_allclose(scales, np.stack([item["bbox_scale"].numpy() for item in items]), atol=1e-4)
    np.testing.assert_allclose(inputs, np.stack([item["image"].numpy() for item in items]), atol=1e-5)


def test_from_run_is_the_run_as_trained(in_run):
    predictor = Predictor.from_run("tiny", "last", device="cpu")
    run = Run("tiny")
    assert predictor.params == run.params() and predictor.codec.name == "udp"  # the run's codec
    assert predictor.checkpoint == run.last_path and predictor.checkpoint_format == "posecore"
    # the same model through a params name given again: data.codec comes from the checkpoint
    again = Predictor.from_checkpoint(
        posecore.load_params(run.params(), {"data.codec": "msra"}), "last", device="cpu", run_name="tiny"
    )
    assert again.codec.name == "udp"
    image, boxes, _ = val_people(predictor.params)
    for flip in (False, True):
        mine, theirs = predictor(image, boxes, flip), again(image, boxes, flip)
        assert isinstance(mine, Poses) and mine.keypoints.dtype == np.float32
        assert mine.keypoints.shape == (len(boxes), predictor.num_joints, 2)
        assert mine.scores.shape == (len(boxes), predictor.num_joints)
        np.testing.assert_array_equal(mine.keypoints, theirs.keypoints)
    empty = predictor(image, np.zeros((0, 4)))
    assert empty.keypoints.shape == (0, predictor.num_joints, 2) and len(empty) == 0


def test_pytorch_and_onnx_give_the_same_keypoints(in_run):
    _, _, onnx_path = in_run
    torch_predictor = Predictor.from_run("tiny", "last", device="cpu")
    onnx_predictor = Predictor.from_onnx(onnx_path)
    assert onnx_predictor.codec == torch_predictor.codec and onnx_predictor.info == torch_predictor.info
    image, boxes, _ = val_people(torch_predictor.params)
    for flip in (False, True):
        mine, theirs = torch_predictor(image, boxes, flip), onnx_predictor(image, boxes, flip)
        assert np.median(np.abs(mine.keypoints - theirs.keypoints)) < 1e-3
        np.testing.assert_allclose(mine.scores, theirs.scores, atol=1e-4)
    # flipping changes something: the flip test is really run
    assert not np.array_equal(torch_predictor(image, boxes, True).scores, torch_predictor(image, boxes).scores)


def test_the_export_carries_the_flip_tests_setting(in_run, tmp_path):
    from posecore.onnx_metadata import read_metadata

    _, _, onnx_path = in_run
    assert read_metadata(onnx_path)["shift_heatmap"] is True and Predictor.from_onnx(onnx_path).shift
    assert read_metadata(onnx_path)["flip_shift"] == 0.0  # udp: the mirrored heatmap is aligned
    unshifted = posecore.load_params(load_run_params("tiny"), {"eval.shift_heatmap": False})
    path = tmp_path / "unshifted.onnx"
    posecore.export_onnx(unshifted, "last", path, run_name="tiny", parity_batch_sizes=())
    assert read_metadata(path)["shift_heatmap"] is False
    assert Predictor.from_onnx(path).shift is False  # the export's own setting
    assert Predictor.from_onnx(path, load_run_params("tiny")).shift is True  # params given win


def test_loading_refuses_what_it_cannot_resolve(in_run, tmp_path):
    with pytest.raises(ValueError, match="needs params .* or run_name"):
        Predictor.load("some.pt")
    with pytest.raises(FileNotFoundError, match="run 'tiny' has no best checkpoint"):
        Predictor.from_run("tiny", "best")  # validation was off: no best.pt
    with pytest.raises(FileNotFoundError, match="is not a run"):
        Predictor.from_run("never-trained")
    with pytest.raises(FileNotFoundError, match=r"pose model .*missing\.onnx does not exist"):
        Predictor.from_onnx(tmp_path / "missing.onnx")
    oracle = Predictor.from_model(None, Run("tiny").params())
    with pytest.raises(ValueError, match="only decodes"):
        oracle.outputs(np.zeros((1, 3, 32, 32), np.float32))


def test_final_output_takes_the_last_stack_only_from_a_list():
    stacks = [torch.zeros(1), torch.ones(1)]
    assert final_output(stacks) is stacks[1]
    simcc = (torch.zeros(1), torch.ones(1))  # RTMPose's (x, y) pair is one output
    assert final_output(simcc) is simcc and final_output(stacks[0]) is stacks[0]


def test_decode_marks_non_finite_joints_and_keeps_the_rest():
    params = posecore.load_params("demo", {"data.input_size": [32, 32], "data.heatmap_size": [8, 8]})
    predictor = Predictor.from_model(None, params)
    heatmaps = np.zeros((2, 17, 8, 8), np.float32)
    heatmaps[:, :, 3, 5] = 1.0
    heatmaps[1, 4, 0, 0] = np.nan
    poses = predictor.decode(heatmaps, np.full((2, 2), 16.0), np.full((2, 2), 32.0))
    assert np.isnan(poses.scores[1, 4]) and np.isfinite(np.delete(poses.scores[1], 4)).all()
    assert poses.finite().tolist() == [True, False]
    assert poses.rows().shape == (2, 17, 3)


def _rss_and_threads() -> tuple[int, int]:
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return rss, len(os.listdir("/proc/self/task"))


def test_a_dropped_onnx_predictor_frees_its_session_without_the_garbage_collector(tmp_path):
    """50 predictors made and dropped with the collector off: each session (its memory and its
    thread pool) goes with its Predictor, by reference counting alone: no reference cycle."""
    from helpers import stand_in_pose_onnx

    paths = [
        stand_in_pose_onnx(tmp_path / "dynamic.onnx"),
        stand_in_pose_onnx(tmp_path / "fixed.onnx", fixed_batch=True),
    ]
    image, boxes = np.zeros((64, 64, 3), np.uint8), np.array([[4, 4, 40, 60], [10, 0, 30, 30]])
    for path in paths:  # warm-up: onnxruntime's own one-time allocations
        Predictor.from_onnx(path, device="cpu")(image, boxes)
    sessions = []
    gc.collect()
    gc.disable()
    try:
        rss, threads = _rss_and_threads()
        for n in range(50):
            predictor = Predictor.from_onnx(paths[n % 2], device="cpu")
            predictor(image, boxes)  # a fixed-batch export runs person by person
            sessions.append(weakref.ref(predictor.forward.session))
            del predictor
        grown, threads_now = (now - before for now, before in zip(_rss_and_threads(), (rss, threads)))
        alive = sum(session() is not None for session in sessions)
    finally:
        gc.enable()
    assert alive == 0 and threads_now <= 1, f"{alive} sessions and {threads_now} threads outlived their Predictor"
    assert grown < 20 * 2**20, f"RSS grew {grown / 2**20:.1f} MB over 50 predictors"


def test_decoding_goes_in_chunks_of_people_with_bounded_memory(monkeypatch):
    """A batch decodes chunk by chunk (DECODE_CHUNK_BYTES of output at a time): the same poses
    as in one go, with the codec's temporaries (udp's blurred maps, ...) a few chunks in size,
    not a few batches."""
    from posecore import predictor as predictor_module
    from posecore.codec import UDPHeatmap
    from posecore.keypoints import keypoint_info

    codec = UDPHeatmap((1024, 1024), (256, 256), 2.0)
    predictor = Predictor(None, codec, keypoint_info("coco"), [0, 0, 0], [1, 1, 1], 1.25, "numpy")
    heatmaps = np.random.default_rng(0).random((8, 4, 256, 256), dtype=np.float32)  # 8 MB
    heatmaps[3, 1, 5, 5] = np.nan
    centers, scales = np.full((8, 2), 300.0), np.full((8, 2), 500.0)
    peaks = {}
    for chunk in (2**40, 2**20):  # everything at once, then 1 MB: one person
        monkeypatch.setattr(predictor_module, "DECODE_CHUNK_BYTES", chunk)
        tracemalloc.start()
        poses = predictor.decode(heatmaps, centers, scales)
        peaks[chunk] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        if chunk == 2**40:
            whole = poses
    np.testing.assert_array_equal(poses.keypoints, whole.keypoints)
    np.testing.assert_array_equal(poses.scores, whole.scores)
    assert np.isnan(poses.scores[3, 1]) and np.isfinite(np.delete(poses.scores.ravel(), 3 * 4 + 1)).all()
    assert peaks[2**20] < heatmaps.nbytes < peaks[2**40] / 3, {k: v / 2**20 for k, v in peaks.items()}
