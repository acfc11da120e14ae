"""Crop geometry and the heatmap codecs (msra, dark, udp): reference conventions and round trips."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from posecore.codec import (
    HEATMAP_CODECS,
    DarkHeatmap,
    MSRAHeatmap,
    UDPHeatmap,
    build_codec,
    decode_heatmaps,
    encode_heatmaps,
    flip_back,
)
from posecore.geometry import affine_matrix, box_to_center_scale, heatmap_to_image, transform_points
from posecore.keypoints import COCO
from posecore.params import ParamsError, load_params

INPUT, HEATMAP = (192, 256), (48, 64)
HEATMAP_BY_NAME = {codec.name: codec for codec in HEATMAP_CODECS}


def _three_point_affine(center, scale, rotation, output_size, inverse=False):
    """The classic construction: centre, a point half a crop-width above it, and the point 90
    degrees from that, matched with cv2.getAffineTransform."""
    theta = np.deg2rad(rotation)
    up = np.array([0.0, -scale[0] * 0.5])
    rotated_up = np.array(
        [up[0] * np.cos(theta) - up[1] * np.sin(theta), up[0] * np.sin(theta) + up[1] * np.cos(theta)]
    )
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


@pytest.mark.parametrize("rotation", [0.0, 33.0])
def test_udp_affine_spans_the_box_with_pixel_centres(rotation):
    center, scale = np.array([311.3, 208.7]), np.array([180.0, 240.0])
    forward = affine_matrix(center, scale, rotation, INPUT, udp=True)
    backward = affine_matrix(center, scale, rotation, INPUT, inverse=True, udp=True)
    np.testing.assert_allclose(transform_points(center, forward), [95.5, 127.5], atol=1e-9)
    points = np.random.default_rng(0).uniform(0, 600, (20, 2))
    np.testing.assert_allclose(transform_points(transform_points(points, forward), backward), points, atol=1e-9)
    # same rotation sense as the classic crop; the box's edges land on the first and last pixel
    classic = affine_matrix(center, scale, rotation, INPUT)
    np.testing.assert_allclose(
        forward[:, :2] / np.linalg.norm(forward[:, :2], axis=1, keepdims=True),
        classic[:, :2] / np.linalg.norm(classic[:, :2], axis=1, keepdims=True),
        atol=1e-12,
    )
    if rotation == 0.0:
        corners = transform_points([center - scale / 2, center + scale / 2], forward)
        np.testing.assert_allclose(corners, [[0, 0], [191, 255]], atol=1e-9)


@pytest.mark.parametrize("udp", [False, True])
def test_heatmap_to_image_inverts_the_crop_at_heatmap_resolution(udp):
    rng = np.random.default_rng(1)
    centers = rng.uniform(100, 500, (4, 2))
    scales = np.stack([rng.uniform(50, 400, 4)] * 2, axis=1) * [1.0, 4 / 3]
    image_points = rng.uniform(0, 600, (4, 17, 2))
    heatmap_points = np.stack(
        [
            transform_points(p, affine_matrix(c, s, 0, HEATMAP, udp=udp))
            for p, c, s in zip(image_points, centers, scales)
        ]
    )
    np.testing.assert_allclose(
        heatmap_to_image(heatmap_points, centers, scales, HEATMAP, udp=udp), image_points, atol=1e-6
    )


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
    return np.exp(-((xs - xy[0]) ** 2 + (ys - xy[1]) ** 2) / (2 * sigma**2))


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
def test_msra_round_trip_lands_on_the_rounded_joint(method):
    codec = MSRAHeatmap(INPUT, HEATMAP, sigma=2.0, decode_method=method)
    joints = np.random.default_rng(2).uniform([32, 32], [160, 224], (17, 2))  # windows inside
    target, weight = codec.encode(joints, np.ones(17))
    np.testing.assert_array_equal(target, encode_heatmaps(joints, np.ones(17), INPUT, HEATMAP, 2.0)[0])
    coords, scores = codec.decode(target[None])
    np.testing.assert_array_equal(coords, decode_heatmaps(target[None], method)[0])
    decoded = codec.heatmap_to_input(coords)
    assert weight.all() and np.allclose(scores, 1.0)
    # the encoder rounds to the heatmap grid: at most half a cell (2 input px) per axis
    assert np.abs(decoded[0] - joints).max() <= 2.0 + 1e-6
    np.testing.assert_allclose(decoded[0], (joints / 4 + 0.5).astype(int) * 4, atol=1e-4)


def _sub_pixel_joints(codec, margin, count=200, seed=4):
    """Joints [count, 2] in input pixels whose heatmap position is at least `margin` from the border."""
    size = np.array(codec.heatmap_size)
    heatmap_xy = np.random.default_rng(seed).uniform(margin, size - 1 - margin, (count, 2))
    return heatmap_xy * codec.input_per_heatmap, heatmap_xy


@pytest.mark.parametrize("codec_class", [DarkHeatmap, UDPHeatmap])
@pytest.mark.parametrize("heatmap", [HEATMAP, (24, 32)])
def test_unbiased_round_trip_is_sub_pixel_exact(codec_class, heatmap):
    codec = codec_class(INPUT, heatmap, sigma=2.0)
    joints, heatmap_xy = _sub_pixel_joints(codec, margin=6)
    target, weight = codec.encode(joints, np.ones(len(joints)))
    coords, scores = codec.decode(target[None])
    assert weight.all() and scores.min() > 0.9
    assert np.abs(coords[0] - heatmap_xy).max() < 0.05
    np.testing.assert_allclose(codec.heatmap_to_input(coords[0]), joints, atol=0.05 * codec.input_per_heatmap.max())


@pytest.mark.parametrize("codec_class", [DarkHeatmap, UDPHeatmap])
def test_unbiased_decoding_takes_off_the_blur_pull_near_the_border(codec_class):
    codec = codec_class(INPUT, (12, 16), sigma=2.0)  # every joint is near the border
    joints, heatmap_xy = _sub_pixel_joints(codec, margin=1.5)
    target, _ = codec.encode(joints, np.ones(len(joints)))
    raw, _ = decode_heatmaps(target[None], codec.refinement, codec.dark_kernel)
    corrected, _ = codec.decode(target[None])
    raw_error, error = np.abs(raw[0] - heatmap_xy), np.abs(corrected[0] - heatmap_xy)
    assert raw_error.max() > 0.3 and error.max() < 0.12
    assert error.mean() < raw_error.mean() / 4


@pytest.mark.parametrize("name", [c.name for c in HEATMAP_CODECS])
def test_flip_back_with_the_codec_shift_finds_the_same_joint(name):
    codec = HEATMAP_BY_NAME[name](INPUT, HEATMAP, sigma=2.0)
    flip_index = COCO.flip_index()
    joints, _ = _sub_pixel_joints(codec, margin=6, count=17)
    target, _ = codec.encode(joints, np.ones(17))
    mirrored_joints = joints[flip_index].copy()
    mirrored_joints[:, 0] = INPUT[0] - 1 - mirrored_joints[:, 0]  # where a mirrored crop shows them
    mirrored, _ = codec.encode(mirrored_joints, np.ones(17))
    unflipped = codec.flip_back(torch.from_numpy(mirrored[None]), flip_index).numpy()
    expected, _ = codec.decode(target[None])
    got, _ = codec.decode(unflipped)
    tolerance = {"msra": 1.0, "dark": 0.01, "udp": 1e-4}[name]  # msra: its targets are grid-rounded
    assert np.abs(got - expected).max() <= tolerance
    if name != "msra":
        unshifted, _ = codec.decode(codec.flip_back(torch.from_numpy(mirrored[None]), flip_index, shift=False).numpy())
        assert (np.abs(unshifted - expected).max() > 0.2) == (name == "dark")


def test_fractional_flip_shift_interpolates_between_columns():
    heatmaps = torch.zeros(1, 1, 2, 6)
    heatmaps[..., 3] = 1.0
    moved = flip_back(heatmaps, [0], shift=0.75)  # mirrored peak at column 2 -> 2.75
    np.testing.assert_allclose(moved[0, 0, 0].numpy(), [0, 0, 0.25, 0.75, 0, 0])
    assert DarkHeatmap(INPUT, HEATMAP).flip_shift() == 0.75 and DarkHeatmap(INPUT, (12, 16)).flip_shift() == 0.9375
    assert MSRAHeatmap(INPUT, HEATMAP).flip_shift() == 1.0 and UDPHeatmap(INPUT, HEATMAP).flip_shift() == 0.0
    assert MSRAHeatmap(INPUT, HEATMAP).flip_shift(enabled=False) == 0.0


def test_build_codec_follows_the_params_and_refuses_contradictions():
    # a 12x16 heatmap for a 192x256 input is an oracle setting (no model has that stride)
    params = load_params(
        "fastpose", {"data.codec": "udp", "data.heatmap_size": [12, 16], "eval.dark_kernel": 5, "eval.oracle": True}
    )
    codec = build_codec(params)
    assert isinstance(codec, UDPHeatmap) and codec.heatmap_size == (12, 16) and codec.dark_kernel == 5
    np.testing.assert_allclose(codec.input_per_heatmap, [191 / 11, 255 / 15])
    assert build_codec(load_params("fastpose")).refinement == "default"  # today's decoding
    assert build_codec(load_params("fastpose", {"eval.decode": "dark"})).refinement == "dark"
    with pytest.raises(ParamsError, match="eval.decode 'dark' does not fit data.codec 'udp'"):
        load_params("fastpose", {"data.codec": "udp", "eval.decode": "dark"})
    with pytest.raises(ParamsError, match="data.codec must be one of"):
        load_params("fastpose", {"data.codec": "gaussian"})


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


@pytest.mark.parametrize(
    "name,decode", [("msra", "default"), ("msra", "dark"), ("dark", "default"), ("udp", "default")]
)
def test_torch_decode_is_the_numpy_decode(name, decode):
    """The ONNX-exportable twin (export's decoded outputs) decodes like evaluation does."""
    codec = HEATMAP_BY_NAME[name](INPUT, HEATMAP, sigma=2.0, decode_method=decode)
    rng = np.random.default_rng(5)
    maps = []
    for _ in range(4):  # noisy, smooth, partly outside: like a network's output
        target, _ = codec.encode(rng.uniform(-8, 200, (17, 2)), np.ones(17))
        noise = rng.normal(0, 0.05, target.shape).astype(np.float32)
        maps.append(0.8 * target + np.stack([cv2.GaussianBlur(n, (5, 5), 0) for n in noise]))
    heatmaps = np.stack(maps)
    heatmaps[0, 0] = -0.1  # no positive maximum: no location
    expected, expected_scores = codec.decode(heatmaps)
    coords, scores = codec.decode_torch(torch.from_numpy(heatmaps))
    np.testing.assert_array_equal(scores.numpy(), expected_scores)
    np.testing.assert_allclose(coords.numpy(), expected, atol=0 if (name, decode) == ("msra", "default") else 1e-4)
    assert not coords[0, 0].any()
