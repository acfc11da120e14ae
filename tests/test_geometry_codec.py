"""Crop geometry and the MSRA heatmap codec: reference conventions and round trips."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from posecore.codec import MSRAHeatmap, decode_heatmaps, encode_heatmaps, flip_back
from posecore.geometry import affine_matrix, box_to_center_scale, heatmap_to_image, transform_points
from posecore.keypoints import COCO

INPUT, HEATMAP = (192, 256), (48, 64)


def _three_point_affine(center, scale, rotation, output_size, inverse=False):
    """The classic construction: centre, a point half a crop-width above it, and the point 90
    degrees from that, matched with cv2.getAffineTransform."""
    theta = np.deg2rad(rotation)
    up = np.array([0.0, -scale[0] * 0.5])
    rotated_up = np.array([up[0] * np.cos(theta) - up[1] * np.sin(theta),
                           up[0] * np.sin(theta) + up[1] * np.cos(theta)])
    src = np.array([center, center + rotated_up, np.zeros(2)], dtype=np.float32)
    dst_center = np.array([output_size[0] * 0.5, output_size[1] * 0.5])
    dst = np.array([dst_center, dst_center + [0, -output_size[0] * 0.5], np.zeros(2)], dtype=np.float32)
    for points in (src, dst):
        direction = points[0] - points[1]
        points[2] = points[1] + [-direction[1], direction[0]]
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


@pytest.mark.parametrize("rotation", [0.0, 27.5, -63.0, 180.0])
def test_affine_matrix_is_the_classic_transform(rotation):
    center, scale = np.array([311.3, 208.7]), np.array([180.0, 240.0])
    for inverse in (False, True):
        expected = _three_point_affine(center, scale, rotation, INPUT, inverse)
        got = affine_matrix(center, scale, rotation, INPUT, inverse=inverse)
        np.testing.assert_allclose(got, expected, atol=2e-3)
    forward = affine_matrix(center, scale, rotation, INPUT)
    backward = affine_matrix(center, scale, rotation, INPUT, inverse=True)
    points = np.random.default_rng(0).uniform(0, 600, (20, 2))
    np.testing.assert_allclose(transform_points(transform_points(points, forward), backward), points, atol=1e-9)
    np.testing.assert_allclose(transform_points(center, forward), [96.0, 128.0], atol=1e-9)


def test_box_to_center_scale_pads_to_the_input_aspect_ratio():
    center, scale = box_to_center_scale([10, 20, 30, 200], 0.75, padding=1.25)
    np.testing.assert_allclose(center, [25, 120])
    np.testing.assert_allclose(scale, [150 * 1.25, 200 * 1.25])  # too thin: widened
    _, scale = box_to_center_scale([0, 0, 300, 100], 0.75)
    np.testing.assert_allclose(scale, [300 * 1.25, 400 * 1.25])  # too wide: heightened


def test_heatmap_to_image_inverts_the_crop_at_heatmap_resolution():
    rng = np.random.default_rng(1)
    centers = rng.uniform(100, 500, (4, 2))
    scales = np.stack([rng.uniform(50, 400, 4)] * 2, axis=1) * [1.0, 4 / 3]
    image_points = rng.uniform(0, 600, (4, 17, 2))
    heatmap_points = np.stack([transform_points(p, affine_matrix(c, s, 0, HEATMAP))
                               for p, c, s in zip(image_points, centers, scales)])
    np.testing.assert_allclose(heatmap_to_image(heatmap_points, centers, scales, HEATMAP), image_points, atol=1e-6)


def test_encode_puts_a_unit_peak_at_the_rounded_joint():
    joints = np.array([[50.0, 70.0], [101.9, 30.2], [-40.0, 10.0], [191.0, 255.0], [60.0, 60.0], [-5.0, 100.0]])
    visible = np.array([1, 1, 1, 1, 0, 1])
    target, weight = encode_heatmaps(joints, visible, INPUT, HEATMAP, sigma=2.0)
    assert target.shape == (6, 64, 48) and target.dtype == np.float32 and weight.dtype == np.float32
    np.testing.assert_array_equal(weight, [1, 1, 0, 1, 0, 1])
    for k, (x, y) in enumerate([(13, 18), (25, 8)]):  # int(joint / 4 + 0.5)
        assert target[k, y, x] == pytest.approx(1.0)
        assert np.unravel_index(target[k].argmax(), target[k].shape) == (y, x)
        assert target[k, y, x + 1] == pytest.approx(np.exp(-1 / 8), rel=1e-5)
        assert target[k, y, x + 7] == 0.0  # outside the 3-sigma window
    assert not target[2].any() and not target[4].any()
    assert target[3, 63, 47] == pytest.approx(np.exp(-2 / 8))  # mu = (48, 64): just outside the map
    assert target[5].any()  # x = -1.25 px: the clipped Gaussian still reaches the heatmap


def _gaussian(xy, size=HEATMAP, sigma=2.0):
    xs, ys = np.arange(size[0]), np.arange(size[1])[:, None]
    return np.exp(-((xs - xy[0]) ** 2 + (ys - xy[1]) ** 2) / (2 * sigma ** 2))


def test_default_decode_steps_a_quarter_toward_the_higher_neighbour():
    heatmaps = np.stack([_gaussian((20.3, 30.0)), _gaussian((20.0, 30.0)), _gaussian((0.2, 30.0))])[None]
    coords, scores = decode_heatmaps(heatmaps, "default")
    np.testing.assert_allclose(coords[0], [[20.25, 30.0], [20.0, 30.0], [0.0, 30.0]])
    assert scores.shape == (1, 3) and scores[0, 1] == pytest.approx(1.0)
    empty, _ = decode_heatmaps(np.zeros((1, 1, 64, 48)), "default")
    np.testing.assert_array_equal(empty, 0)


def test_dark_decode_recovers_sub_pixel_positions():
    truth = np.array([[20.3, 30.7], [10.55, 40.2], [33.9, 12.15]])
    heatmaps = np.stack([_gaussian(p) for p in truth])[None]
    dark, _ = decode_heatmaps(heatmaps, "dark", dark_kernel=11)
    default, _ = decode_heatmaps(heatmaps, "default")
    assert np.abs(dark[0] - truth).max() < 0.05
    assert np.abs(dark[0] - truth).max() < np.abs(default[0] - truth).max()
    with pytest.raises(ValueError, match="decode method"):
        decode_heatmaps(heatmaps, "soft-argmax")


@pytest.mark.parametrize("method", ["default", "dark"])
def test_codec_round_trip(method):
    codec = MSRAHeatmap(INPUT, HEATMAP, sigma=2.0, decode_method=method)
    joints = np.random.default_rng(2).uniform([32, 32], [160, 224], (17, 2))  # windows inside
    target, weight = codec.encode(joints, np.ones(17))
    decoded, scores = codec.decode(target[None])
    assert weight.all() and np.allclose(scores, 1.0)
    # the encoder rounds to the heatmap grid: at most half a cell (2 input px) per axis
    assert np.abs(decoded[0] - joints).max() <= 2.0 + 1e-6
    np.testing.assert_allclose(decoded[0], (joints / 4 + 0.5).astype(int) * 4, atol=1e-4)


def test_flip_back_unflips_a_mirrored_prediction():
    flip_index = COCO.flip_index()
    rng = np.random.default_rng(3)
    joints = rng.uniform([20, 20], [170, 236], (17, 2))
    original, _ = encode_heatmaps(joints, np.ones(17), INPUT, HEATMAP, 2.0)
    mirrored_joints = joints[flip_index].copy()
    mirrored_joints[:, 0] = INPUT[0] - 1 - mirrored_joints[:, 0]  # what the net sees on a flipped input
    mirrored, _ = encode_heatmaps(mirrored_joints, np.ones(17), INPUT, HEATMAP, 2.0)
    unflipped = flip_back(torch.from_numpy(mirrored[None]), flip_index, shift=True).numpy()
    expected, _ = decode_heatmaps(original[None])
    got, _ = decode_heatmaps(unflipped)
    assert np.abs(got - expected).max() <= 1.0  # right joint channels, right place (grid rounding)
    plain = flip_back(torch.from_numpy(mirrored[None]), flip_index, shift=False)
    shifted = flip_back(torch.from_numpy(mirrored[None]), flip_index, shift=True)
    assert torch.equal(shifted[..., 1:], plain[..., :-1])
    assert torch.equal(flip_back(plain, flip_index, shift=False), torch.from_numpy(mirrored[None]))
