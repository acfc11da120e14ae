"""posecore.infer on images and videos: the two pose backends agree, AlphaPose-format results,
drawn output, ids on posecore's synthetic walking video, bad input, and the CLI giving what the
API gives.

One small FastPose (SE-ResNet-18 at 32 x 64, random weights with random BatchNorm statistics so
that its heatmaps have real peaks) serves every test, as a posecore checkpoint and as an ONNX
export. The video is the generator's: three people, one hidden behind a pillar for 3-4 frames,
two crossing, with its detector-like boxes (jitter, a missed frame, a false positive).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from helpers import randomized_model

import posecore
from posecore.codec import codec_class
from posecore.data import make_synthetic_video
from posecore.detect import box_iou
from posecore.files import REPO_ROOT
from posecore.inference import infer
from posecore.onnx_metadata import read_metadata, set_metadata
from posecore.predictor import Predictor
from posecore.smoothing import mean_acceleration, result_tracks

SMALL = {"model.depth": 18, "data.input_size": [32, 64], "data.heatmap_size": [8, 16]}
VIDEO_SIZE, VIDEO_FRAMES, VIDEO_FPS = (320, 240), 24, 10.0
PEOPLE = [[10, 10, 60, 110], [80, 5, 150, 115]]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(params, checkpoint path, onnx path, folder for sources)."""
    folder = tmp_path_factory.mktemp("infer")
    params = posecore.load_params("fastpose", SMALL)
    model = randomized_model(params)
    checkpoint = folder / "small.pt"
    torch.save(model.state_dict(), checkpoint)
    onnx_path = folder / "small.onnx"
    posecore.export_onnx(params, checkpoint, onnx_path, parity_batch_sizes=())
    return params, checkpoint, onnx_path, folder


def textured(size, seed):
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    return cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip(small):
    """The synthetic walking video: {"video", "detections", "truth"} paths."""
    return make_synthetic_video(small[3] / "clip", num_frames=VIDEO_FRAMES, size=VIDEO_SIZE, fps=VIDEO_FPS)


@pytest.fixture(scope="module")
def clip_run(small, clip):
    """posecore.infer (PyTorch backend) on the clip with its detections: (summary, results)."""
    params, checkpoint, _, folder = small
    summary = infer(
        params, checkpoint, clip["video"], detector=clip["detections"], out_dir=folder / "clip_out", progress=False
    )
    return summary, json.loads(Path(summary["results"]).read_text())


@pytest.fixture(scope="module")
def onnx_clip_run(small, clip):
    """The same with the ONNX export and no params: (summary, results)."""
    _, _, onnx_path, folder = small
    summary = infer(
        None,
        onnx_path,
        clip["video"],
        detector=clip["detections"],
        out_dir=folder / "onnx_out",
        draw=False,
        progress=False,
    )
    return summary, json.loads(Path(summary["results"]).read_text())


def id_switches(results: list[dict], truth: dict) -> tuple[int, set]:
    """(times a true person's idx changed, idx values of boxes that match nobody) on the clip."""
    last, switches, strays = {}, 0, set()
    for frame in range(truth["frames"]):
        rows = [r for r in results if r["image_id"] == f"{frame}.jpg"]
        people = [p for p in truth["people"] if p["frame"] == frame]
        if not rows:
            continue
        iou = box_iou(
            *[
                np.array([[x, y, x + w, y + h] for x, y, w, h in boxes])
                for boxes in ([r["box"] for r in rows], [p["bbox"] for p in people])
            ]
        )
        for row, overlaps in zip(rows, iou):
            if overlaps.max() < 0.5:
                strays.add(row["idx"])
                continue
            who = people[int(overlaps.argmax())]["id"]
            switches += who in last and last[who] != row["idx"]
            last[who] = row["idx"]
    return switches, strays


def with_codec(onnx_path, codec: str, sigma: float, path):
    """A copy of an exported file whose metadata name another codec (the network is the same):
    the codec's keys as it writes them (its sigma, its heatmap stride)."""
    proto = onnx.load(str(onnx_path))
    metadata = read_metadata(onnx_path)
    own = codec_class(codec)(metadata["input_size"], metadata["heatmap_size"], sigma).metadata()
    set_metadata(proto, {**metadata, **own})
    onnx.save(proto, str(path))
    return path


# msra decodes by argmax: the backends agree exactly. udp's Taylor step on the log of a random
# network's flat heatmaps turns float32 differences (~1e-7) into ~1e-3 px; trained peaks are sharp.
@pytest.mark.parametrize("codec, tolerance", [("msra", 1e-3), ("udp", 5e-3)])
def test_onnx_backend_equals_pytorch_on_the_same_crops(small, tmp_path, codec, tolerance):
    params, checkpoint, onnx_path, _ = small
    params = posecore.load_params(params, {"data.codec": codec, "data.sigma": 1.5})
    onnx_path = with_codec(onnx_path, codec, 1.5, tmp_path / f"{codec}.onnx")
    image = textured((200, 150), 1)
    boxes = np.array([[*box, 0.9] for box in PEOPLE], np.float32)
    results = {}
    codecs = [Predictor.from_onnx(onnx_path).codec]  # from the file's metadata alone
    for backend in (checkpoint, onnx_path):
        model = Predictor.load(backend, params)
        codecs.append(model.codec)
        inputs, centers, scales = model.crops(image, boxes)
        for flip in (False, True):
            results[model.backend, flip] = model.predict_crops(inputs, centers, scales, flip).rows()
            called = model(image, boxes, flip)  # the same through the whole pipeline, in float32
            assert called.keypoints.dtype == np.float32 and called.keypoints.shape == (len(boxes), 17, 2)
            np.testing.assert_allclose(called.keypoints, results[model.backend, flip][..., :2], atol=1e-3)
    assert codecs[0] == codecs[1] == codecs[2] and codecs[0].name == codec and codecs[0].sigma == 1.5
    for flip in (False, True):
        torch_kp, onnx_kp = results["pytorch", flip], results["onnxruntime", flip]
        assert torch_kp[..., 2].max() > 0.01  # real peaks, not a flat map
        np.testing.assert_allclose(onnx_kp[..., :2], torch_kp[..., :2], atol=tolerance)
        np.testing.assert_allclose(onnx_kp[..., 2], torch_kp[..., 2], atol=1e-4)


def test_image_folder_results_vis_and_unreadable_images(small, tmp_path):
    params, checkpoint, _, folder = small
    images = tmp_path / "photos"
    images.mkdir()
    cv2.imwrite(str(images / "b_people.jpg"), textured((200, 150), 2))
    cv2.imwrite(str(images / "c_portrait.png"), textured((120, 180), 3))
    (images / "a_broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (images / "notes.txt").write_text("ignored")
    dets = tmp_path / "dets.json"
    dets.write_text(
        json.dumps(
            [
                {"image_id": "b_people.jpg", "bbox": [10, 10, 50, 100], "score": 0.9, "category_id": 1},
                {"image_id": "b_people", "bbox": [80, 5, 70, 110], "score": 0.8, "category_id": 1},
            ]
        )
    )
    with pytest.warns(UserWarning, match="a_broken.jpg"):
        summary = infer(params, checkpoint, images, detector=dets, out_dir=tmp_path / "out", progress=False)
    assert summary["frames"] == 2 and summary["persons"] == 2 and summary["skipped"] == ["a_broken.jpg"]
    assert summary["tracks"] is None
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["image_id"] for r in results] == ["b_people.jpg", "b_people.jpg"]
    assert [r["idx"] for r in results] == [1, 2]
    for row, box_score in zip(results, (0.9, 0.8)):
        assert row["category_id"] == 1 and len(row["keypoints"]) == 17 * 3
        keypoints = np.array(row["keypoints"]).reshape(17, 3)
        assert row["score"] == pytest.approx(keypoints[:, 2].mean() * box_score, abs=1e-5)
        x, y, w, h = row["box"]
        # every joint lies in the padded crop (box grown to the input aspect, then x1.25) around the box
        (in_w, in_h), padding = params.data.input_size, params.data.bbox_padding
        crop_w = max(w, h * in_w / in_h) * padding
        crop_h = crop_w * in_h / in_w
        assert np.all(np.abs(keypoints[:, 0] - (x + w / 2)) <= crop_w / 2 + 1e-3)
        assert np.all(np.abs(keypoints[:, 1] - (y + h / 2)) <= crop_h / 2 + 1e-3)
    vis = tmp_path / "out" / "vis"
    assert sorted(p.name for p in vis.iterdir()) == ["b_people.jpg", "c_portrait.jpg"]
    # the portrait has no boxes in the file: written unchanged (the same JPEG encoding)
    original = cv2.imread(str(images / "c_portrait.png"))
    unchanged = cv2.imencode(".jpg", original, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    assert (vis / "c_portrait.jpg").read_bytes() == unchanged
    drawn = cv2.imread(str(vis / "b_people.jpg")).astype(int)
    assert np.abs(drawn - cv2.imread(str(images / "b_people.jpg")).astype(int)).max() > 100
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["persons"] == 2 and saved["fps"]["pose"] > 0


def test_video_keeps_frames_size_fps_and_ids(clip, clip_run):
    summary, results = clip_run
    detections = json.loads(clip["detections"].read_text())
    truth = json.loads(clip["truth"].read_text())
    hidden = {p["frame"] for p in truth["people"] if p["id"] == 1 and p["visible_fraction"] < 0.35}
    assert len(hidden) >= 3  # the scene is a real test: a person missing for several frames
    assert summary["frames"] == VIDEO_FRAMES and summary["persons"] == len(detections)
    capture = cv2.VideoCapture(summary["video"])
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == VIDEO_FRAMES
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == VIDEO_SIZE
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(VIDEO_FPS)
    assert [r["image_id"] for r in results[:3]] == ["0.jpg"] * 3
    switches, strays = id_switches(results, truth)
    assert switches == 0
    assert summary["tracks"] == 4 and len(strays) == 1  # the three people and the false positive


def test_onnx_checkpoint_needs_no_params_and_agrees(clip_run, onnx_clip_run):
    (summary, results), (onnx_summary, onnx_results) = clip_run, onnx_clip_run
    assert onnx_summary["pose_backend"] == "onnxruntime" and summary["pose_backend"] == "pytorch"
    assert [(r["image_id"], r["idx"]) for r in onnx_results] == [(r["image_id"], r["idx"]) for r in results]
    np.testing.assert_allclose([r["keypoints"] for r in onnx_results], [r["keypoints"] for r in results], atol=1e-3)
    assert "video" not in onnx_summary and not list(Path(onnx_summary["out_dir"]).glob("*.mp4"))


def test_one_euro_smoothing_calms_the_keypoints_and_keeps_the_tracks(small, clip, clip_run):
    """infer.smoothing one_euro: the same people and ids, the drawn / written keypoints smoothed
    per track, the raw ones kept beside them (equal to the unsmoothed run's)."""
    params, checkpoint, _, folder = small
    summary, results = clip_run
    smoothed_params = posecore.load_params(params, {"infer.threads": 1})
    smoothed_summary = infer(
        smoothed_params,
        checkpoint,
        clip["video"],
        detector=clip["detections"],
        out_dir=folder / "smooth_out",
        draw=False,
        progress=False,
        smoothing="one_euro",
    )
    smoothed = json.loads(Path(smoothed_summary["results"]).read_text())
    assert smoothed_summary["smoothing"].startswith("one_euro") and summary["smoothing"] == "none"
    assert [(r["image_id"], r["idx"]) for r in smoothed] == [(r["image_id"], r["idx"]) for r in results]
    np.testing.assert_allclose([r["keypoints_raw"] for r in smoothed], [r["keypoints"] for r in results], atol=1e-3)
    assert "keypoints_raw" not in results[0]
    before = mean_acceleration(result_tracks(results))
    after = mean_acceleration(result_tracks(smoothed))
    assert after <= 0.5 * before, (before, after)
    # a still image has no tracks to follow: smoothing stays off and says why
    image = folder / "still.png"
    cv2.imwrite(str(image), textured((120, 100), 3))
    still = infer(
        params, checkpoint, image, out_dir=folder / "still_out", draw=False, progress=False, smoothing="one_euro"
    )
    assert still["smoothing"].startswith("none (one_euro follows tracks")
    with pytest.raises(posecore.ParamsError, match="infer.smoothing must be one of"):
        infer(params, checkpoint, image, out_dir=folder / "bad", progress=False, smoothing="kalman")


def test_unreadable_video_is_skipped(small, tmp_path):
    params, checkpoint, _, _ = small
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.warns(UserWarning, match="broken.mp4"):
        summary = infer(params, checkpoint, broken, out_dir=tmp_path / "out", progress=False)
    assert summary["frames"] == 0 and summary["skipped"] == ["broken.mp4"]
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == []


def test_bad_hand_given_box_names_the_frame(small, clip, tmp_path):
    params, checkpoint, _, _ = small
    with pytest.raises(ValueError, match=r"on 0\.jpg: box 0 .* fully outside the 320 x 240 image"):
        infer(params, checkpoint, clip["video"], detector=[[500, 500, 600, 600]], out_dir=tmp_path, progress=False)


def test_cli_writes_what_the_api_writes(small, clip, onnx_clip_run, tmp_path):
    _, _, onnx_path, _ = small
    summary, results = onnx_clip_run
    command = [
        sys.executable,
        "-m",
        "posecore.infer",
        str(clip["video"]),
        "--checkpoint",
        str(onnx_path),
        "--detector",
        str(clip["detections"]),
        "--out",
        str(tmp_path / "cli"),
        "--no-video",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{VIDEO_FRAMES} frames, {summary['persons']} persons, 4 tracks" in done.stdout
    assert json.loads((tmp_path / "cli" / "results.json").read_text()) == results


def test_trajectories_follow_each_id_and_break_at_missed_frames(clip_run):
    from posecore import viz
    from posecore.inference import tracks_from_results

    summary, results = clip_run
    nose = summary["joint_names"].index("nose")
    tracks = tracks_from_results(results, nose)
    assert sorted(tracks) == [1, 2, 3, 4]
    one = tracks[1]  # the person behind the pillar: missed frames leave a gap
    assert np.diff(one["frame"]).max() > 1
    rows = [r for r in results if r["idx"] == 1]
    np.testing.assert_allclose(one["xy"], [r["keypoints"][3 * nose : 3 * nose + 2] for r in rows])
    figure = viz.plot_trajectories(tracks, "nose", {i: (0.1 * i, 0.2, 0.3) for i in tracks})
    over_time = figure.axes[1]
    drawn = [line for line in over_time.get_lines() if len(line.get_xdata())]
    parts = sum(1 + int((np.diff(t["frame"]) > 1).sum()) for t in tracks.values())
    assert len(drawn) == parts


def test_real_photos_with_a_detector_file(small, coco_root, tmp_path):
    """The shared COCO val photos with a real detector's boxes (COCO integer image ids): every box
    above the score threshold comes back in results.json, in image pixels, with its score."""
    params, checkpoint, _, _ = small
    detections = coco_root / "detections" / "person_detections_val2017.json"
    summary = infer(
        params, checkpoint, coco_root / "val2017", detector=detections, out_dir=tmp_path, draw=False, progress=False
    )
    threshold = params.infer.detector_score_thr
    expected = sorted(
        (f"{d['image_id']:012d}.jpg", *(round(v, 1) for v in d["bbox"]))
        for d in json.loads(detections.read_text())
        if d["score"] >= threshold
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert summary["frames"] == 4 and len(results) == len(expected) > 0
    reported = sorted((r["image_id"], *r["box"]) for r in results)
    for (name, *box), (got_name, *got_box) in zip(expected, reported):
        assert got_name == name
        np.testing.assert_allclose(got_box, box, atol=1.0)
