"""Heatmap codecs: joints <-> per-joint Gaussian heatmaps, one class per convention (`data.codec`).

Each owns the crop transform (image -> input pixels), the input-to-heatmap scale, the encoding,
the decoding, the mapping of decoded heatmap pixels back to the image and the shift that
re-aligns a flip-test heatmap (the posecore.codec.Codec interface).

- `msra` (HRNet / AlphaPose / mmpose's MSRAHeatmap; the default): the classic crop, stride =
  input_size / heatmap_size, an unnormalized Gaussian (peak 1) at the joint rounded to the grid,
  mu = int(joint / stride + 0.5), drawn inside the 3-sigma window [int(mu - 3 sigma),
  int(mu + 3 sigma + 1)); decoded by argmax plus a quarter pixel toward the higher neighbour.
  The rounding bounds accuracy once heatmaps are coarse.
- `dark` (Zhang et al., CVPR 2020; mmpose's MSRAHeatmap with `unbiased=True`): the same crop and
  stride, the Gaussian centred at the sub-pixel joint / stride (same window), decoded by DARK's
  Taylor step on the blurred log-heatmap.
- `udp` (Huang et al., CVPR 2020; mmpose's UDPHeatmap): UDP's crop (geometry.affine_matrix with
  udp=True), heatmap = input * (heatmap - 1) / (input - 1), the Gaussian at the sub-pixel joint,
  decoded like `dark`. A mirrored crop is then exactly the mirrored heatmap: no flip shift.

(The simcc codec, 1-D labels per axis instead of heatmaps, is posecore.codec.simcc.)

`dark` and `udp` take second differences over one pixel (as UDP computes the Taylor step, so it
also works one pixel from the border) and take off the pull of DARK's zero-padded blur near the
border (HeatmapCodec._border_pull). `eval.decode: dark` is DARK exactly as published (two-pixel
second differences), for decoding MSRA heatmaps. A joint is weighted 0 when it is unlabelled or
its 3-sigma window misses the heatmap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import cv2
import numpy as np
import torch

from posecore.codec.base import CODECS, CROP_TEXT, check_decode, numbers_fit
from posecore.geometry import affine_matrix, heatmap_to_image

DECODE_METHODS = ("default", "dark", "dark_udp")  # refinements after the argmax
TAYLOR_REACH = {"dark": 2, "dark_udp": 1}  # pixels the second differences span


def heatmap_stride(input_size, heatmap_size) -> np.ndarray:
    """Input pixels per heatmap pixel [sx, sy]: input_size / heatmap_size, both (w, h)."""
    return np.array([input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]], dtype=np.float64)


def encode_heatmaps(joints_xy, visible, input_size, heatmap_size, sigma: float):
    """MSRA: joints [K, 2] in input pixels + visible [K] -> (target float32 [K, Hh, Wh], weight float32 [K])."""
    joints = np.asarray(joints_xy, dtype=np.float64).reshape(-1, 2)
    stride = heatmap_stride(input_size, heatmap_size)
    return gaussian_heatmaps(joints / stride, visible, heatmap_size, sigma, subpixel=False)


def gaussian_heatmaps(centers, visible, heatmap_size, sigma: float, subpixel: bool):
    """Joints [K, 2] in heatmap pixels + visible [K] -> (target float32 [K, Hh, Wh], weight float32 [K]).

    The Gaussian's window is centred on the rounded joint; its peak is the rounded joint (MSRA)
    or, with `subpixel`, the joint itself (DARK, UDP).
    """
    centers = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    heatmap_w, heatmap_h = int(heatmap_size[0]), int(heatmap_size[1])
    radius = 3.0 * sigma
    # int() truncation toward zero, exactly as the references round
    mu = (centers + 0.5).astype(np.int64)
    lower = (mu - radius).astype(np.int64)
    upper = (mu + radius + 1).astype(np.int64)
    inside = (lower[:, 0] < heatmap_w) & (lower[:, 1] < heatmap_h) & (upper[:, 0] >= 0) & (upper[:, 1] >= 0)
    weight = ((np.asarray(visible).reshape(-1) > 0) & inside).astype(np.float32)

    peak = centers if subpixel else mu
    # The Gaussian is separable: one 1-D profile per axis, zero outside the 3-sigma window.
    profile_x = _profile(heatmap_w, peak[:, 0], lower[:, 0], upper[:, 0], sigma)
    profile_y = _profile(heatmap_h, peak[:, 1], lower[:, 1], upper[:, 1], sigma)
    profile_y *= weight[:, None]
    target = profile_y[:, :, None] * profile_x[:, None, :]
    return target, weight


def _profile(length: int, peak, lower, upper, sigma: float):
    """float32 [K, length]: exp(-(i - peak)^2 / (2 sigma^2)) for lower <= i < upper, else 0."""
    grid = np.arange(length, dtype=np.float32)[None]
    offset = grid - peak[:, None].astype(np.float32)
    profile = np.exp(offset * offset * np.float32(-0.5 / (sigma * sigma)))
    profile *= (grid >= lower[:, None]) & (grid < upper[:, None])
    return profile


def decode_heatmaps(heatmaps, method: str = "default", dark_kernel: int = 11):
    """Heatmaps [N, K, Hh, Wh] -> (coords float32 [N, K, 2] in heatmap pixels, scores float32 [N, K]).

    method: "default" (argmax + quarter step), "dark" (DARK's Taylor step as published: second
    differences over two pixels, off a two-pixel border) or "dark_udp" (the same step as UDP
    computes it: one-pixel differences, anywhere but the outermost pixels).
    """
    if method not in DECODE_METHODS:
        raise ValueError(f"decode method must be one of {DECODE_METHODS}, got {method!r}")
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    coords, scores = _argmax(heatmaps)
    if method in TAYLOR_REACH:
        coords = _taylor_refine(_log_blurred(heatmaps, dark_kernel), coords, TAYLOR_REACH[method])
    else:
        coords = _quarter_offset(heatmaps, coords)
    return coords.astype(np.float32), scores


def flip_back(heatmaps, flip_index, shift: float = 1.0):
    """Un-flip heatmaps [N, K, H, W] predicted on mirrored inputs (torch in, torch out).

    Swaps left/right channels, mirrors W and moves everything `shift` heatmap pixels right (a
    fraction by linear interpolation; the first column keeps its value). MSRA's one-pixel shift
    is the references' compensation for mirroring about (W - 1) / 2 instead of W / 2.
    """
    flipped = heatmaps[:, list(flip_index)].flip(3)
    whole = int(math.floor(shift))
    fraction = float(shift) - whole
    if whole:
        flipped[..., whole:] = flipped[..., :-whole].clone()
    if fraction:
        flipped[..., 1:] = flipped[..., 1:] * (1 - fraction) + flipped[..., :-1] * fraction
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


def _taylor_refine(log_heatmaps, coords, reach: int):
    """coords [N, K, 2] moved by DARK's Newton step on the log-heatmaps [N, K, H, W] (float64)."""
    px, py, at = _peak_reader(log_heatmaps.astype(np.float64), coords)
    return coords + taylor_offset(at, px, py, log_heatmaps.shape[2:], reach, np)


def taylor_offset(at, x, y, shape, reach: int, xp):
    """DARK's Newton step [N, K, 2] from the peaks (x, y) [N, K] of log-heatmaps of `shape` (H, W),
    `at(dx, dy)` reading the values beside the peaks; second differences over `reach` pixels (DARK
    2, UDP 1), zero where the stencil does not fit inside the map. `xp` is numpy or torch: the one
    copy of the maths for evaluation (numpy) and the ONNX graph (torch).

    With reach 1 (the dark and udp codecs) the step is taken only where the quadratic model has
    a maximum (negative definite Hessian) and at most one pixel: on a flat or noisy map (an
    untrained model) it would otherwise jump anywhere. DARK as published (reach 2) has no guard.
    """
    height, width = shape
    inner = (x >= reach) & (x < width - reach) & (y >= reach) & (y < height - reach)
    center = at(0, 0)
    dxx = (at(reach, 0) - 2 * center + at(-reach, 0)) / (reach * reach)
    dyy = (at(0, reach) - 2 * center + at(0, -reach)) / (reach * reach)
    dx = 0.5 * (at(1, 0) - at(-1, 0))
    dy = 0.5 * (at(0, 1) - at(0, -1))
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = dxx * dyy - dxy * dxy
    usable = inner & (det != 0)
    if reach == 1:
        usable = usable & (dxx < 0) & (det > 0)
    safe_det = xp.where(usable, det, xp.ones_like(det))
    offset = xp.stack([-(dyy * dx - dxy * dy) / safe_det, -(dxx * dy - dxy * dx) / safe_det], -1)
    if reach == 1:
        offset = xp.clip(offset, -1.0, 1.0)
    return xp.where(usable[..., None], offset, xp.zeros_like(offset))


def _ideal_gaussians(coords, heatmap_size, sigma: float):
    """Unit Gaussians [N, K, Hh, Wh] centred at coords [N, K, 2] (numpy or torch, float32)."""
    xp = torch if isinstance(coords, torch.Tensor) else np
    width, height = int(heatmap_size[0]), int(heatmap_size[1])
    grid_x = xp.arange(width, dtype=xp.float32)
    grid_y = xp.arange(height, dtype=xp.float32)
    profile_x = xp.exp(-((grid_x - coords[..., 0:1]) ** 2) / (2 * sigma * sigma))  # [N, K, Wh]
    profile_y = xp.exp(-((grid_y - coords[..., 1:2]) ** 2) / (2 * sigma * sigma))  # [N, K, Hh]
    return profile_y[..., :, None] * profile_x[..., None, :]


# --------------------------------------------------------------------------- torch twins (ONNX)


def decode_heatmaps_torch(heatmaps, method: str = "default", dark_kernel: int = 11):
    """decode_heatmaps in ONNX-exportable torch ops (opset >= 11, no Python branches on values).

    heatmaps [N, K, H, W] -> (coords [N, K, 2] heatmap pixels (x, y), scores [N, K] maxima).
    """
    if method not in DECODE_METHODS:
        raise ValueError(f"decode method must be one of {DECODE_METHODS}, got {method!r}")
    height, width = heatmaps.shape[-2:]
    scores, index = heatmaps.flatten(2).max(dim=2)
    x = (index % width).to(heatmaps.dtype)
    y = torch.div(index, width, rounding_mode="floor").to(heatmaps.dtype)
    if method in TAYLOR_REACH:
        log_heatmaps = _log_blurred_torch(heatmaps, dark_kernel)
        at = _peak_reader_torch(log_heatmaps, x, y)
        offset = taylor_offset(at, x, y, (height, width), TAYLOR_REACH[method], torch).to(heatmaps.dtype)
    else:
        at = _peak_reader_torch(heatmaps, x, y)
        step = torch.stack([torch.sign(at(1, 0) - at(-1, 0)), torch.sign(at(0, 1) - at(0, -1))], dim=2)
        inside = (x > 1) & (x < width - 1) & (y > 1) & (y < height - 1)
        offset = 0.25 * step * inside.unsqueeze(2).to(heatmaps.dtype)
    coords = torch.stack([x, y], dim=2) + offset
    return coords * (scores > 0).unsqueeze(2).to(heatmaps.dtype), scores


def _peak_reader_torch(heatmaps, x, y):
    """at(dx, dy) -> values [N, K] beside the peaks (x, y float [N, K]), clamped to the map."""
    height, width = heatmaps.shape[-2:]
    flat = heatmaps.flatten(2)

    def at(dx: int, dy: int):
        # clamped as floats: an integer Clip needs opset 12
        index = (y + dy).clamp(0, height - 1) * width + (x + dx).clamp(0, width - 1)
        return flat.gather(2, index.long().unsqueeze(2)).squeeze(2)

    return at


def _log_blurred_torch(heatmaps, kernel: int):
    """_log_blurred with a conv (cv2's kernel, zero padding)."""
    n, k, height, width = heatmaps.shape
    weights = torch.from_numpy(cv2.getGaussianKernel(kernel, 0).astype(np.float32)).to(heatmaps.dtype)
    maps = heatmaps.reshape(-1, 1, height, width)
    blurred = torch.nn.functional.conv2d(maps, weights.reshape(1, 1, kernel, 1), padding=(kernel // 2, 0))
    blurred = torch.nn.functional.conv2d(blurred, weights.reshape(1, 1, 1, kernel), padding=(0, kernel // 2))
    blurred = blurred.reshape(heatmaps.shape)
    original_max = heatmaps.flatten(2).max(dim=2)[0]
    blurred_max = blurred.flatten(2).max(dim=2)[0]
    positive = blurred_max > 0
    ratio = torch.where(
        positive,
        original_max / torch.where(positive, blurred_max, torch.ones_like(blurred_max)),
        torch.ones_like(blurred_max),
    )
    return torch.log((blurred * ratio[..., None, None]).clamp(min=1e-10))


# --------------------------------------------------------------------------- codec objects


@dataclass(frozen=True)
class HeatmapCodec:
    """What every codec does; the codecs below differ in the class attributes and the flip shift.

    `decode_method` is eval.decode: "default" decodes the codec's own way; "dark" (DARK decoding
    as published, e.g. of an MSRA-trained checkpoint) is an override only the MSRA codec takes.
    """

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0
    decode_method: str = "default"
    dark_kernel: int = 11

    name: ClassVar[str] = ""
    output_names: ClassVar[tuple[str, ...]] = ("heatmaps",)  # the model predicts heatmaps [N, K, Hh, Wh]
    metadata_keys: ClassVar[dict[str, str]] = {
        "heatmap_size": "heatmap codecs: [w, h] of the heatmaps",
        "sigma": "heatmap codecs: Gaussian sigma of the training targets, heatmap pixels (dark / udp decoding uses it)",
        "decode_method": "eval.decode of the export: 'default' (the codec's own decoding) or 'dark'",
        "dark_kernel": "heatmap codecs: blur kernel of the Taylor decoding (dark / udp)",
        "heatmap_stride": (
            "heatmap codecs: [sx, sy] input pixels per heatmap pixel: input_size / heatmap_size "
            "((input_size - 1) / (heatmap_size - 1) for the udp codec)"
        ),
    }
    required_metadata: ClassVar[tuple[str, ...]] = ("heatmap_size",)  # older exports lack the others
    default_loss: ClassVar[str] = "joints_mse"
    udp: ClassVar[bool] = False  # crop convention (geometry.affine_matrix)
    subpixel: ClassVar[bool] = False  # Gaussian peak at the joint, not the rounded joint
    own_decode: ClassVar[str] = "default"
    decodes: ClassVar[tuple[str, ...]] = ("default", "dark")

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "heatmap_size", tuple(int(v) for v in self.heatmap_size))
        check_decode(self.name, self.decode_method)

    @classmethod
    def from_params(cls, params: Any) -> HeatmapCodec:
        """data.input_size, data.heatmap_size, data.sigma; eval.decode, eval.dark_kernel."""
        data, evaluation = params.data, params.eval
        return cls(
            tuple(data.input_size), tuple(data.heatmap_size), data.sigma, evaluation.decode, evaluation.dark_kernel
        )

    @classmethod
    def from_metadata(
        cls, metadata: dict, decode_method: str | None = None, dark_kernel: int | None = None
    ) -> HeatmapCodec:
        """The codec an ONNX export's metadata (`metadata()` keys) describe; decode_method /
        dark_kernel override the export's (eval.decode of other params). Exports from before
        the codec was recorded carry no sigma: msra decoding does not use it."""
        return cls(
            tuple(metadata["input_size"]),
            tuple(metadata["heatmap_size"]),
            float(metadata.get("sigma", 2.0)),
            decode_method or metadata.get("decode_method", "default"),
            int(dark_kernel or metadata.get("dark_kernel", 11)),
        )

    def metadata(self) -> dict[str, Any]:
        """What an ONNX export records of the codec: "codec" and its metadata_keys."""
        return {
            "codec": self.name,
            "heatmap_size": list(self.heatmap_size),
            "sigma": self.sigma,
            "decode_method": self.decode_method,
            "dark_kernel": self.dark_kernel,
            "heatmap_stride": self.input_per_heatmap.tolist(),
        }

    @classmethod
    def check_metadata(cls, metadata: dict, fail) -> None:
        """Its keys' values in an export's metadata; fail(key, expected) on one that does not fit."""
        # udp maps pixel centres, (input - 1) / (heatmap - 1): a heatmap side of 1 has no stride
        smallest = 2 if cls.udp else 1
        if not numbers_fit(metadata.get("heatmap_size"), 2, integer=True, low=smallest, high=65536):
            fail("heatmap_size", f"two integers (w, h) of at least {smallest}")
        if "heatmap_stride" in metadata:  # derived, for consumers without posecore: it must agree
            own = cls(metadata["input_size"], metadata["heatmap_size"]).input_per_heatmap
            stride = metadata["heatmap_stride"]
            if not numbers_fit(stride, 2, low=1e-9, high=1e9) or not np.allclose(stride, own, rtol=1e-6):
                fail("heatmap_stride", f"{own.tolist()} (input_size and heatmap_size)")
        if "sigma" in metadata and not numbers_fit([metadata["sigma"]], 1, low=1e-6, high=1e3):
            fail("sigma", "a positive number")
        if metadata.get("decode_method", "default") not in cls.decodes:
            fail("decode_method", f"one of {list(cls.decodes)}")
        kernel = metadata.get("dark_kernel", 11)
        if not numbers_fit([kernel], 1, integer=True, low=1, high=999) or kernel % 2 == 0:
            fail("dark_kernel", "an odd positive integer")

    def output_shapes(self, num_joints: int) -> dict[str, tuple[int, ...]]:
        """{"heatmaps": (K, Hh, Wh)}."""
        return {"heatmaps": (int(num_joints), self.heatmap_size[1], self.heatmap_size[0])}

    def describe(self) -> dict[str, str]:
        """The crop and the decoding of "keypoints" / "scores" in words (export metadata)."""
        return {
            "crop": CROP_TEXT[self.udp],
            "decode": DECODE_TEXT[self.refinement].format(kernel=self.dark_kernel, sigma=self.sigma),
        }

    @property
    def input_per_unit(self) -> np.ndarray:
        """[2] input pixels per unit of the decoded coordinates (heatmap pixels here)."""
        return self.input_per_heatmap

    def heatmaps(self, output) -> np.ndarray:
        """The heatmaps [..., K, Hh, Wh] of a model output (numpy or torch) as float32 numpy, for display."""
        if isinstance(output, torch.Tensor):
            output = output.detach().float().cpu().numpy()
        return np.asarray(output, dtype=np.float32)

    @property
    def refinement(self) -> str:
        """The decode_heatmaps method this codec decodes with."""
        return self.own_decode if self.decode_method == "default" else self.decode_method

    @property
    def input_per_heatmap(self) -> np.ndarray:
        """[2] input pixels per heatmap pixel (x, y): heatmap coords times this = input pixels."""
        if self.udp:
            return (np.array(self.input_size, dtype=np.float64) - 1) / (np.array(self.heatmap_size) - 1)
        return heatmap_stride(self.input_size, self.heatmap_size)

    def flip_shift(self, enabled: bool = True) -> float:
        """Heatmap pixels a mirrored prediction moves right after the mirror (eval.shift_heatmap)."""
        return 1.0 if enabled else 0.0

    def crop_matrix(self, bbox_center, bbox_scale, rotation_deg: float = 0.0, inverse: bool = False):
        """[2, 3] affine, image pixels -> input pixels (`inverse`: back)."""
        return affine_matrix(bbox_center, bbox_scale, rotation_deg, self.input_size, inverse, udp=self.udp)

    def encode(self, joints_xy, visible):
        """Joints [K, 2] in input pixels + visible [K] -> (target float32 [K, Hh, Wh], weight float32 [K])."""
        if not self.subpixel:  # bit for bit the references' MSRA targets
            return encode_heatmaps(joints_xy, visible, self.input_size, self.heatmap_size, self.sigma)
        centers = np.asarray(joints_xy, dtype=np.float64).reshape(-1, 2) / self.input_per_heatmap
        return gaussian_heatmaps(centers, visible, self.heatmap_size, self.sigma, subpixel=True)

    def decode(self, heatmaps):
        """Heatmaps [N, K, Hh, Wh] -> (coords float32 [N, K, 2] in heatmap pixels, scores [N, K])."""
        coords, scores = decode_heatmaps(heatmaps, self.refinement, self.dark_kernel)
        if self.subpixel:
            coords = coords - self._border_pull(coords) * (scores > 0)[..., None]
        return coords, scores

    def _border_pull(self, coords):
        """[N, K, 2] how far decoding moves an ideal target centred at `coords`.

        The modulation's zero-padded blur pulls a peak near the border toward the centre (at a
        12 x 16 heatmap every joint is near it); the pull measured on the codec's own Gaussian at
        the decoded position is taken off. It is zero in the interior.
        """
        ideal = _ideal_gaussians(np.asarray(coords, dtype=np.float32), self.heatmap_size, self.sigma)
        decoded, _ = decode_heatmaps(ideal, self.refinement, self.dark_kernel)
        return decoded - coords

    def decode_torch(self, heatmaps):
        """`decode` in ONNX-exportable torch ops: heatmaps [N, K, Hh, Wh] -> (coords, scores)."""
        coords, scores = decode_heatmaps_torch(heatmaps, self.refinement, self.dark_kernel)
        if self.subpixel:
            ideal = _ideal_gaussians(coords, self.heatmap_size, self.sigma)
            decoded, _ = decode_heatmaps_torch(ideal, self.refinement, self.dark_kernel)
            coords = coords - (decoded - coords) * (scores > 0).unsqueeze(2).to(coords.dtype)
        return coords, scores

    def heatmap_to_input(self, coords):
        """Heatmap pixel coords [..., 2] -> input pixels [..., 2] (float64)."""
        return np.asarray(coords, dtype=np.float64) * self.input_per_heatmap

    def to_image(self, coords, bbox_center, bbox_scale):
        """Decoded coords [N, K, 2] (heatmap pixels) -> image pixels [N, K, 2] (float64) through
        the inverse crop of each person; bbox_center, bbox_scale [N, 2]."""
        return heatmap_to_image(coords, bbox_center, bbox_scale, self.heatmap_size, udp=self.udp)

    def flip_back(self, heatmaps, flip_index, shift: bool = True):
        """Heatmaps [N, K, H, W] (torch) of mirrored inputs -> aligned with the unmirrored ones."""
        return flip_back(heatmaps, flip_index, self.flip_shift(shift))

    def flip_test(self, plain, mirrored, flip_index, shift: bool = True):
        """The flip test's merged output (torch [N, K, H, W]): the mean of the plain heatmaps and
        those of the mirrored inputs, flipped back (`shift`: eval.shift_heatmap)."""
        return (plain + self.flip_back(mirrored, flip_index, shift)) * 0.5


@dataclass(frozen=True)
class MSRAHeatmap(HeatmapCodec):
    """MSRA: the classic crop and stride, Gaussians at the rounded joint, quarter-pixel decoding."""

    name: ClassVar[str] = "msra"


@dataclass(frozen=True)
class DarkHeatmap(HeatmapCodec):
    """DARK: the classic crop and stride, sub-pixel Gaussian centres, Taylor decoding."""

    name: ClassVar[str] = "dark"
    subpixel: ClassVar[bool] = True
    own_decode: ClassVar[str] = "dark_udp"
    decodes: ClassVar[tuple[str, ...]] = ("default",)

    def flip_shift(self, enabled: bool = True) -> float:
        # A joint at input x sits at (input_w - 1 - x) in the mirrored crop, i.e. at heatmap
        # W - 1/stride - x/stride: mirrored back it lands 1 - 1/stride pixels left of x/stride.
        return 1.0 - 1.0 / self.input_per_heatmap[0] if enabled else 0.0


@dataclass(frozen=True)
class UDPHeatmap(HeatmapCodec):
    """UDP: the unbiased crop and heatmap grid, sub-pixel Gaussian centres, Taylor decoding."""

    name: ClassVar[str] = "udp"
    udp: ClassVar[bool] = True
    subpixel: ClassVar[bool] = True
    own_decode: ClassVar[str] = "dark_udp"
    decodes: ClassVar[tuple[str, ...]] = ("default",)

    def flip_shift(self, enabled: bool = True) -> float:
        return 0.0  # the mirrored crop's heatmap, mirrored, is already aligned


HEATMAP_CODECS = (MSRAHeatmap, DarkHeatmap, UDPHeatmap)
for _codec in HEATMAP_CODECS:  # the registry lines
    CODECS[_codec.name] = _codec


DECODE_TEXT = {
    "default": (
        "argmax per heatmap; +-0.25 toward the higher neighbour in x and y when "
        "1 < x < W-1 and 1 < y < H-1; (0, 0) when the maximum <= 0; times heatmap_stride "
        "= input pixels; score = maximum"
    ),
    "dark": (
        "argmax per heatmap; DARK: Gaussian blur (kernel {kernel}, zero border) rescaled to the "
        "maximum, log, one Newton step with second differences over two pixels when "
        "2 <= x < W-2 and 2 <= y < H-2; (0, 0) when the maximum <= 0; times heatmap_stride = "
        "input pixels; score = maximum"
    ),
    "dark_udp": (
        "argmax per heatmap; Gaussian blur (kernel {kernel}, zero border) rescaled to the "
        "maximum, log, one Newton step with one-pixel differences when 1 <= x < W-1 and "
        "1 <= y < H-1; minus what the same steps move a unit Gaussian (sigma {sigma}) centred "
        "at the result; (0, 0) when the maximum <= 0; times heatmap_stride = input pixels; "
        "score = maximum"
    ),
}  # the decoding in words, by refinement
