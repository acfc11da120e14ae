"""MSRA heatmap codec: joints <-> per-joint Gaussian heatmaps (HRNet / mmpose / AlphaPose style).

Encoding puts an unnormalized Gaussian (peak 1) at the joint rounded to the heatmap grid:
mu = int(joint / stride + 0.5) with stride = input_size / heatmap_size, drawn only inside the
3-sigma window [int(mu - 3 sigma), int(mu + 3 sigma + 1)). A joint is weighted 0 when it is
unlabelled or its window misses the heatmap. Decoding is argmax plus either the quarter-pixel step
toward the higher neighbour ("default") or DARK's Taylor refinement on the blurred log-heatmap.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DECODE_METHODS = ("default", "dark")


def heatmap_stride(input_size, heatmap_size) -> np.ndarray:
    """Input pixels per heatmap pixel [sx, sy]: input_size / heatmap_size, both (w, h)."""
    return np.array([input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]], dtype=np.float64)


def encode_heatmaps(joints_xy, visible, input_size, heatmap_size, sigma: float):
    """Joints [K, 2] in input pixels + visible [K] -> (target float32 [K, Hh, Wh], weight float32 [K])."""
    joints = np.asarray(joints_xy, dtype=np.float64).reshape(-1, 2)
    heatmap_w, heatmap_h = int(heatmap_size[0]), int(heatmap_size[1])
    stride = heatmap_stride(input_size, (heatmap_w, heatmap_h))
    radius = 3.0 * sigma
    # int() truncation toward zero, exactly as the references round
    mu = (joints / stride + 0.5).astype(np.int64)
    lower = (mu - radius).astype(np.int64)
    upper = (mu + radius + 1).astype(np.int64)
    inside = (lower[:, 0] < heatmap_w) & (lower[:, 1] < heatmap_h) & (upper[:, 0] >= 0) & (upper[:, 1] >= 0)
    weight = ((np.asarray(visible).reshape(-1) > 0) & inside).astype(np.float32)

    # The Gaussian is separable: one 1-D profile per axis, zero outside the 3-sigma window.
    profile_x = _profile(heatmap_w, mu[:, 0], lower[:, 0], upper[:, 0], sigma)
    profile_y = _profile(heatmap_h, mu[:, 1], lower[:, 1], upper[:, 1], sigma)
    profile_y *= weight[:, None]
    target = profile_y[:, :, None] * profile_x[:, None, :]
    return target, weight


def _profile(length: int, mu, lower, upper, sigma: float):
    """float32 [K, length]: exp(-(i - mu)^2 / (2 sigma^2)) for lower <= i < upper, else 0."""
    grid = np.arange(length, dtype=np.float32)[None]
    offset = grid - mu[:, None].astype(np.float32)
    profile = np.exp(offset * offset * np.float32(-0.5 / (sigma * sigma)))
    profile *= (grid >= lower[:, None]) & (grid < upper[:, None])
    return profile


def decode_heatmaps(heatmaps, method: str = "default", dark_kernel: int = 11):
    """Heatmaps [N, K, Hh, Wh] -> (coords float32 [N, K, 2] in heatmap pixels, scores float32 [N, K])."""
    if method not in DECODE_METHODS:
        raise ValueError(f"decode method must be one of {DECODE_METHODS}, got {method!r}")
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    coords, scores = _argmax(heatmaps)
    if method == "dark":
        coords = _taylor_refine(_log_blurred(heatmaps, dark_kernel), coords)
    else:
        coords = _quarter_offset(heatmaps, coords)
    return coords.astype(np.float32), scores


def flip_back(heatmaps, flip_index, shift: bool = True):
    """Un-flip heatmaps [N, K, H, W] predicted on mirrored inputs (torch in, torch out).

    Swaps left/right channels, mirrors W and, with `shift`, moves everything one pixel right:
    the references' compensation for mirroring about (W - 1) / 2 instead of W / 2.
    """
    flipped = heatmaps[:, list(flip_index)].flip(3)
    if shift:
        flipped[..., 1:] = flipped[..., :-1].clone()
    return flipped


def _argmax(heatmaps):
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    index = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, index[..., None], axis=2)[..., 0]
    coords = np.stack([index % w, index // w], axis=-1).astype(np.float64)
    coords *= (scores > 0)[..., None]  # an all-nonpositive map has no location
    return coords, scores.astype(np.float32)


def _peak_reader(heatmaps, coords):
    """(px, py, at): integer peaks [N, K] and at(dx, dy) -> values [N, K] beside them, clamped."""
    n, k, h, w = heatmaps.shape
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    flat = heatmaps.reshape(n, k, h * w)

    def at(dx, dy):
        index = np.clip(py + dy, 0, h - 1) * w + np.clip(px + dx, 0, w - 1)
        return np.take_along_axis(flat, index[..., None], axis=2)[..., 0]

    return px, py, at


def _quarter_offset(heatmaps, coords):
    h, w = heatmaps.shape[2:]
    px, py, at = _peak_reader(heatmaps, coords)
    inner = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    step = np.stack([np.sign(at(1, 0) - at(-1, 0)), np.sign(at(0, 1) - at(0, -1))], axis=-1)
    return coords + 0.25 * step * inner[..., None]


def _log_blurred(heatmaps, kernel: int):
    """DARK's modulation: Gaussian blur (zero border), rescale to the original max, log."""
    n, k, h, w = heatmaps.shape
    gap = kernel // 2
    # All maps stacked into one tall image, each followed by `gap` zero rows: one blur call
    # equals blurring every map with zero padding.
    tall = np.zeros((n * k, h + gap, w), dtype=np.float32)
    tall[:, :h] = heatmaps.reshape(n * k, h, w)
    tall = cv2.GaussianBlur(tall.reshape(-1, w), (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
    blurred = tall.reshape(n * k, h + gap, w)[:, :h].reshape(n, k, h, w)
    original_max = heatmaps.reshape(n, k, -1).max(axis=2)
    blurred_max = blurred.reshape(n, k, -1).max(axis=2)
    ratio = np.where(blurred_max > 0, original_max / np.where(blurred_max > 0, blurred_max, 1), 1)
    blurred *= ratio[..., None, None]
    return np.log(np.maximum(blurred, 1e-10))


def _taylor_refine(log_heatmaps, coords):
    """Second-order Taylor step at the integer maximum: x -= H^-1 grad (DARK)."""
    h, w = log_heatmaps.shape[2:]
    px, py, at = _peak_reader(log_heatmaps.astype(np.float64), coords)
    inner = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    center = at(0, 0)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxx = 0.25 * (at(2, 0) - 2 * center + at(-2, 0))
    dyy = 0.25 * (at(0, 2) - 2 * center + at(0, -2))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy * dxy
    usable = inner & (det != 0)
    safe_det = np.where(usable, det, 1.0)
    offset_x = -(dyy * dx - dxy * dy) / safe_det
    offset_y = -(dxx * dy - dxy * dx) / safe_det
    offset = np.stack([offset_x, offset_y], axis=-1) * usable[..., None]
    return coords + offset


@dataclass(frozen=True)
class MSRAHeatmap:
    """The codec as one object (mmpose's MSRAHeatmap): encode in and decode back to input pixels."""

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    decode_method: str = "default"
    dark_kernel: int = 11

    @property
    def stride(self) -> np.ndarray:
        return heatmap_stride(self.input_size, self.heatmap_size)

    def encode(self, joints_xy, visible):
        """Joints [K, 2] in input pixels -> (target [K, Hh, Wh], weight [K])."""
        return encode_heatmaps(joints_xy, visible, self.input_size, self.heatmap_size, self.sigma)

    def decode(self, heatmaps):
        """Heatmaps [N, K, Hh, Wh] -> (joints [N, K, 2] in input pixels, scores [N, K])."""
        coords, scores = decode_heatmaps(heatmaps, self.decode_method, self.dark_kernel)
        return coords * self.stride, scores
