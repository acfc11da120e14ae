"""posecore.infer on images and videos: the two pose backends agree, AlphaPose-format results,
drawn output, bad input, and the CLI giving what the API gives.

One small FastPose (SE-ResNet-18 at 64 x 96, random weights with random BatchNorm statistics so
that its heatmaps have real peaks) serves every test, as a posecore checkpoint and as an ONNX
export.
"""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import posecore
from posecore.inference import infer, load_pose_model, person_crops, decode_people
from posecore.runs import REPO_ROOT

SMALL = {"model.depth": 18, "data.input_size": [64, 96], "data.heatmap_size": [16, 24]}
VIDEO_SIZE, VIDEO_FRAMES, VIDEO_FPS = (160, 120), 6, 10.0
PEOPLE = [[10, 10, 60, 110], [80, 5, 150, 115]]


def randomized_model(params, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = posecore.build_model(params)
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            module.reset_parameters()
        elif isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
    return model.eval()


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
def video(small):
    path = small[3] / "walk.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, VIDEO_SIZE)
    for i in range(VIDEO_FRAMES):
        writer.write(textured(VIDEO_SIZE, i))
    writer.release()
    return path


def test_onnx_backend_equals_pytorch_on_the_same_crops(small):
    params, checkpoint, onnx_path, _ = small
    image = textured((200, 150), 1)
    boxes = np.array([[*box, 0.9] for box in PEOPLE], np.float32)
    results = {}
    for backend in (checkpoint, onnx_path):
        model = load_pose_model(params, backend)
        inputs, centers, scales = person_crops(image, boxes, model)
        for flip in (False, True):
            heatmaps = model.heatmaps(inputs, flip)
            results[model.backend, flip] = decode_people(heatmaps, centers, scales, model)
    for flip in (False, True):
        torch_kp, onnx_kp = results["pytorch", flip], results["onnxruntime", flip]
        assert torch_kp[..., 2].max() > 0.01   # real peaks, not a flat map
        np.testing.assert_allclose(onnx_kp[..., :2], torch_kp[..., :2], atol=1e-3)
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
    dets.write_text(json.dumps([
        {"image_id": "b_people.jpg", "bbox": [10, 10, 50, 100], "score": 0.9, "category_id": 1},
        {"image_id": "b_people", "bbox": [80, 5, 70, 110], "score": 0.8, "category_id": 1}]))
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
        # every joint lies in the padded crop (box grown to 64:96 then x1.25) around the box
        crop_w = max(w, h * 64 / 96) * 1.25
        crop_h = crop_w * 96 / 64
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


def test_video_keeps_frames_size_fps_and_tracks(small, video, tmp_path):
    params, checkpoint, _, _ = small
    summary = infer(params, checkpoint, video, detector=PEOPLE, out_dir=tmp_path / "out", progress=False)
    assert summary["frames"] == VIDEO_FRAMES and summary["persons"] == 2 * VIDEO_FRAMES
    assert summary["tracks"] == 2
    capture = cv2.VideoCapture(str(tmp_path / "out" / "walk.mp4"))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == VIDEO_FRAMES
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == VIDEO_SIZE
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(VIDEO_FPS)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["image_id"] for r in results[:4]] == ["0.jpg", "0.jpg", "1.jpg", "1.jpg"]
    assert {r["idx"] for r in results[0::2]} == {1} and {r["idx"] for r in results[1::2]} == {2}


def test_onnx_checkpoint_needs_no_params_and_agrees(small, video, tmp_path):
    params, checkpoint, onnx_path, _ = small
    torch_run = infer(params, checkpoint, video, detector=PEOPLE, out_dir=tmp_path / "pt", draw=False,
                      progress=False)
    onnx_run = infer(None, onnx_path, video, detector=PEOPLE, out_dir=tmp_path / "onnx", draw=False,
                     progress=False)
    assert onnx_run["pose_backend"] == "onnxruntime" and torch_run["pose_backend"] == "pytorch"
    a = json.loads((tmp_path / "pt" / "results.json").read_text())
    b = json.loads((tmp_path / "onnx" / "results.json").read_text())
    np.testing.assert_allclose([r["keypoints"] for r in a], [r["keypoints"] for r in b], atol=1e-3)
    assert not (tmp_path / "onnx" / "walk.mp4").exists()


def test_unreadable_video_is_skipped(small, tmp_path):
    params, checkpoint, _, _ = small
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.warns(UserWarning, match="broken.mp4"):
        summary = infer(params, checkpoint, broken, out_dir=tmp_path / "out", progress=False)
    assert summary["frames"] == 0 and summary["skipped"] == ["broken.mp4"]
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == []


def test_bad_hand_given_box_names_the_frame(small, video, tmp_path):
    params, checkpoint, _, _ = small
    with pytest.raises(ValueError, match=r"on 0\.jpg: box 0 .* fully outside the 160 x 120 image"):
        infer(params, checkpoint, video, detector=[[500, 500, 600, 600]], out_dir=tmp_path, progress=False)


def test_cli_writes_what_the_api_writes(small, video, tmp_path):
    params, checkpoint, _, _ = small
    infer(params, checkpoint, video, detector=PEOPLE, out_dir=tmp_path / "api", draw=False, progress=False)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image_id": i, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 1.0}
                                 for i in range(VIDEO_FRAMES) for x1, y1, x2, y2 in PEOPLE]))
    overrides = [f"{key}={json.dumps(value)}" for key, value in SMALL.items()]
    command = [sys.executable, "-m", "posecore.infer", str(video), "--params", "fastpose",
               "--checkpoint", str(checkpoint), "--detector", str(boxes), "--out", str(tmp_path / "cli"),
               "--no-video", *[arg for o in overrides for arg in ("--set", o)]]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "6 frames, 12 persons, 2 tracks" in done.stdout
    api = json.loads((tmp_path / "api" / "results.json").read_text())
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    assert api == cli
