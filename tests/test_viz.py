"""posecore.viz: the artists drawn match the keypoints, overlays keep the image shape, PNGs render headless."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from posecore import charts, data, viz
from posecore.keypoints import COCO, MPII


def _skeletons(fig):
    return [c for ax in fig.axes for c in ax.collections if c.get_gid() == viz.SKELETON_GID]


def _person(info, visible, rng):
    keypoints = np.zeros((info.num_joints, 3))
    keypoints[:, :2] = rng.uniform(10, 90, (info.num_joints, 2))
    keypoints[visible, 2] = 1
    return keypoints


def test_skeleton_has_one_segment_per_visible_limb():
    rng = np.random.default_rng(0)
    hidden = [0, 9, 15]  # nose, left wrist, left ankle
    keypoints = _person(COCO, [j for j in range(17) if j not in hidden], rng)
    expected = [(a, b) for a, b in COCO.skeleton if a not in hidden and b not in hidden]
    fig = viz.plot_pose(np.zeros((100, 100, 3), np.uint8), COCO, gt=[keypoints])
    (lines,) = _skeletons(fig)
    assert len(lines.get_segments()) == len(expected) < len(COCO.skeleton)
    first = lines.get_segments()[0]
    np.testing.assert_allclose(first, keypoints[list(expected[0]), :2])


def test_predicted_joints_below_score_threshold_are_hidden():
    rng = np.random.default_rng(1)
    pred = _person(MPII, list(range(16)), rng)
    pred[:, 2] = np.linspace(0.05, 0.95, 16)
    gt = _person(MPII, list(range(16)), rng)
    fig = viz.plot_pose(np.zeros((100, 100, 3), np.uint8), MPII, gt=[gt], pred=[pred], score_thr=0.5)
    gt_lines, pred_lines = _skeletons(fig)
    assert len(gt_lines.get_segments()) == len(MPII.skeleton)
    kept = [(a, b) for a, b in MPII.skeleton if pred[a, 2] > 0.5 and pred[b, 2] > 0.5]
    assert len(pred_lines.get_segments()) == len(kept)
    joints = fig.axes[0].collections[-1].get_offsets()
    assert len(joints) == int((pred[:, 2] > 0.5).sum())


def test_gallery_lays_out_one_panel_per_item_and_blanks_the_rest():
    rng = np.random.default_rng(2)
    items = [
        {"image": np.zeros((40, 30, 3), np.uint8), "gt": [_person(COCO, range(17), rng)], "title": f"#{i}"}
        for i in range(5)
    ]
    fig = viz.plot_gallery(items, COCO, ncols=3)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:5]] == [f"#{i}" for i in range(5)]
    assert len(_skeletons(fig)) == 5


def test_heatmap_overlay_keeps_image_shape_and_marks_the_peak():
    image = np.full((120, 80, 3), 128, np.uint8)
    heatmap = np.zeros((32, 24), np.float32)
    heatmap[8, 18] = 1.0  # peak at heatmap (x=18, y=8) -> image x≈60, y≈30
    out = viz.heatmap_overlay(image, heatmap, alpha=0.8)
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - image).sum(-1)
    y, x = np.unravel_index(changed.argmax(), changed.shape)
    assert abs(x - 18.5 * 80 / 24) < 5 and abs(y - 8.5 * 120 / 32) < 5
    assert changed[0, 0] == 0  # cold pixels keep the photo
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        viz.heatmap_overlay(image[..., 0], heatmap)


def test_dataset_stats_count_people_joints_and_boxes(tmp_path):
    keypoints = np.zeros((17, 3))
    keypoints[:5, 2] = 2
    ann = {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 64} for i in (1, 2, 3)],
        "annotations": [
            {"image_id": 1, "bbox": [0, 0, 10, 20], "keypoints": keypoints.ravel().tolist(), "num_keypoints": 5},
            {"image_id": 1, "bbox": [0, 0, 30, 40], "keypoints": keypoints.ravel().tolist(), "num_keypoints": 5},
            {"image_id": 2, "bbox": [0, 0, 5, 5], "keypoints": [0] * 51, "num_keypoints": 0},
        ],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(ann))
    stats = data.annotation_stats(path, "coco")
    assert stats["persons"] == 2 and stats["images"] == 3
    assert stats["persons_per_image"] == {0: 2, 2: 1}
    assert stats["labelled_per_joint"] == [2] * 5 + [0] * 12
    np.testing.assert_allclose(stats["box_sizes"], [[10, 20], [30, 40]])
    fig = charts.plot_dataset_stats({"val": stats})
    assert len(fig.axes) == 3
    assert [p.get_height() for p in fig.axes[0].patches] == pytest.approx([2 / 3, 1 / 3])


def test_dataset_stats_on_real_mpii_sample(mpii_root):
    stats = data.annotation_stats(mpii_root / "annotations" / "mpii_val.json", "mpii")
    assert stats["persons"] == 5 and len(stats["labelled_per_joint"]) == 16
    assert (np.asarray(stats["box_sizes"]) > 0).all()


def test_training_curves_plot_logged_losses():
    records = [{"step": s, "loss": 1.0 / (s + 1), "lr": 1e-3} for s in range(0, 50, 10)]
    records.append({"epoch": 1, "AP": 0.3})  # validation rows have no loss
    fig = charts.plot_training_curves(records)
    (loss_line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(loss_line.get_ydata(), [r["loss"] for r in records[:-1]])


def test_runs_curves_overlay_each_runs_loss_and_metric():
    logs = {
        "a": [{"type": "train", "step": s, "loss": 1.0 / s} for s in (1, 2, 3)]
        + [{"type": "val", "epoch": 0, "step": 3, "AP": 0.2}],
        "b": [
            {"type": "train", "step": 1, "loss": 0.5},
            {"type": "train", "step": 2, "loss": None},
            {"type": "val", "epoch": 0, "step": 2, "AP": 0.4},
            {"type": "val", "epoch": 1, "AP": 0.6},
        ],
    }
    fig = charts.plot_runs_curves(logs, "AP")
    loss_lines, metric_lines = fig.axes[0].get_lines(), fig.axes[1].get_lines()
    assert [line.get_label() for line in loss_lines] == ["a", "b"]
    np.testing.assert_allclose(loss_lines[0].get_ydata(), [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(loss_lines[1].get_xdata(), [1])  # a skipped window (loss None) is left out
    np.testing.assert_allclose(metric_lines[1].get_xdata(), [0, 1])
    np.testing.assert_allclose(metric_lines[1].get_ydata(), [0.4, 0.6])
    assert metric_lines[0].get_color() == loss_lines[0].get_color()


def test_renders_png_headless_without_pyplot(tmp_path):
    """A fresh interpreter with no display draws and saves a figure, and never loads pyplot."""
    code = (
        "import sys, numpy as np\n"
        "from posecore import viz\n"
        "from posecore.keypoints import COCO\n"
        "k = np.ones((17, 3)); k[:, :2] = np.random.default_rng(0).uniform(0, 50, (17, 2))\n"
        "fig = viz.plot_pose(np.zeros((60, 50, 3), np.uint8), COCO, gt=[k], heatmap=np.ones((8, 6)))\n"
        f"viz.save_figure(fig, {str(tmp_path / 'f.png')!r})\n"
        "png = fig._repr_png_()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "print(len(png))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "MPLBACKEND": "", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    data = (tmp_path / "f.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int(done.stdout) > 1000


def test_whole_body_faces_and_hands_are_drawn_thin_and_filtered_by_part():
    from posecore.keypoints import keypoint_info

    info = keypoint_info("coco_wholebody")
    keypoints = _person(info, list(range(info.num_joints)), np.random.default_rng(3))
    fig = viz.plot_pose(np.zeros((100, 100, 3), np.uint8), info, gt=[keypoints])
    (body,) = _skeletons(fig)
    (fine,) = [c for ax in fig.axes for c in ax.collections if c.get_gid() == viz.FINE_GID]
    assert len(body.get_segments()) == 19 + 6 and len(fine.get_segments()) == 40  # hands: 2 x 20 links
    assert fine.get_linewidths()[0] == pytest.approx(viz.FINE_WIDTH * body.get_linewidths()[0])
    dots = sorted(len(c.get_offsets()) for c in fig.axes[0].collections if c.get_gid() is None)
    assert dots == [23, 110]  # body + feet dots, face + hand dots (small)
    face = viz.only_parts(keypoints, info, ["face"])
    assert (face[23:91, 2] == 1).all() and np.isneginf(np.delete(face[:, 2], range(23, 91))).all()
    assert (keypoints[:, 2] == 1).all()  # the input is untouched
    fig = viz.plot_pose(
        np.zeros((100, 100, 3), np.uint8), info, pred=[viz.only_parts(keypoints, info, ["lefthand"])], score_thr=0.0
    )
    assert len(_skeletons(fig)[0].get_segments()) == 0
    assert viz.only_parts(keypoints, info, ()).tolist() == keypoints.tolist()
    with pytest.raises(KeyError, match="no part 'tail'"):
        viz.only_parts(keypoints, info, ["tail"])


def test_inference_drawing_thins_fine_joints():
    from posecore.inference import draw_people_bgr

    canvas = np.zeros((400, 400, 3), np.uint8)
    keypoints = np.array([[50, 100, 1.0], [350, 100, 1.0], [50, 300, 1.0], [350, 300, 1.0]])
    boxes, ids = np.array([[0, 0, 1, 1]]), np.array([1])
    body = draw_people_bgr(canvas, boxes, keypoints[None], ids, [(0, 1)], 0.1, fine_joints=())
    thin = draw_people_bgr(canvas, boxes, keypoints[None], ids, [(0, 1)], 0.1, fine_joints=(0, 1))
    row = slice(90, 111)
    assert 0 < (thin[row].sum(axis=2) > 0).sum() < (body[row].sum(axis=2) > 0).sum()
    assert (thin[row] == 255).all(axis=2).sum() == 0  # no white joint discs on fine joints
