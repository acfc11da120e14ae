"""The SimCC codec (`data.codec: simcc`): joints <-> one 1-D classification vector per axis.

SimCC (Li et al., ECCV 2022) and RTMPose (Jiang et al., 2023) predict, per joint, a vector over
x bins and one over y bins, `split_ratio` bins per input pixel: simcc_x [K, Wx] and simcc_y
[K, Wy] with Wx = round(input_w * split_ratio), Wy = round(input_h * split_ratio). This is
mmpose 1.x's SimCCLabel with Gaussian smoothing, number for number:

- encode: mu = round-half-even(joint * split_ratio) (numpy's around); the x (y) label is the
  unnormalized Gaussian exp(-(i - mu)^2 / (2 sigma^2)) over all bins (no window), sigma per axis
  (RTMPose at 256x192: (4.9, 5.66) bins); divided by sigma * sqrt(2 pi) only with `normalize`.
  The weight is the visibility as given; a joint with visibility < 0.5 gets all-zero labels and
  keeps its weight, one whose 3-sigma reach misses every bin gets weight 0 (labels kept).
- decode: argmax per axis divided by split_ratio = input pixels; the score is the smaller of the
  two maxima; where that score is <= 0 the location is -1 bins (-1 / split_ratio pixels).
- flip test: the mirrored input's vectors swap left/right joints and reverse x (mmpose's
  flip_vectors); no shift, as upstream. Averaged with the plain prediction.

The crop is the classic one (geometry.affine_matrix, udp=False), as mmpose's TopdownAffine
without UDP. Decoded coordinates are input pixels; `to_image` maps them to the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from posecore.codec.base import CODECS, CROP_TEXT, numbers_fit
from posecore.geometry import affine_matrix, heatmap_to_image


def simcc_size(input_size, split_ratio: float) -> tuple[int, int]:
    """(Wx, Wy): bins per axis for input_size (w, h), rounded as upstream (numpy's around)."""
    return tuple(int(np.around(size * split_ratio)) for size in input_size)


def encode_simcc(joints_xy, visible, input_size, sigma, split_ratio: float = 2.0, normalize: bool = False):
    """Joints [K, 2] in input pixels + visible [K] -> ((x labels float32 [K, Wx], y labels float32
    [K, Wy]), weight float32 [K]); see the module docstring."""
    joints = np.asarray(joints_xy, dtype=np.float64).reshape(-1, 2)
    weight = np.asarray(visible, dtype=np.float32).reshape(-1).copy()
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1)
    sigma = np.repeat(sigma, 2) if sigma.size == 1 else sigma
    bins = simcc_size(input_size, split_ratio)
    mu = np.around(joints * split_ratio).astype(np.int64)  # [K, 2] bins
    reach = sigma * 3
    low, high = mu - reach, mu + reach + 1  # [K, 2]
    labelled = weight >= 0.5
    outside = (low[:, 0] >= bins[0]) | (low[:, 1] >= bins[1]) | (high[:, 0] < 0) | (high[:, 1] < 0)
    weight[labelled & outside] = 0.0
    drawn = (labelled & ~outside).astype(np.float64)[:, None]
    labels = []
    for axis in (0, 1):
        grid = np.arange(bins[axis], dtype=np.float64)[None]
        profile = np.exp(-((grid - mu[:, axis : axis + 1]) ** 2) / (2 * sigma[axis] ** 2)) * drawn
        if normalize:
            profile /= sigma[axis] * np.sqrt(2 * np.pi)
        labels.append(profile.astype(np.float32))
    return (labels[0], labels[1]), weight


def decode_simcc(simcc_x, simcc_y, split_ratio: float = 2.0):
    """simcc_x [..., K, Wx], simcc_y [..., K, Wy] -> (coords float32 [..., K, 2] in input pixels,
    scores float32 [..., K]); see the module docstring."""
    simcc_x = np.asarray(simcc_x, dtype=np.float32)
    simcc_y = np.asarray(simcc_y, dtype=np.float32)
    if simcc_x.shape[:-1] != simcc_y.shape[:-1]:
        raise ValueError(f"simcc_x {simcc_x.shape} and simcc_y {simcc_y.shape} must agree but for the last axis")
    coords = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], axis=-1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    coords[scores <= 0] = -1
    return coords / np.float32(split_ratio), scores


def decode_simcc_torch(simcc_x: torch.Tensor, simcc_y: torch.Tensor, split_ratio: float = 2.0):
    """decode_simcc in ONNX-exportable torch ops: [N, K, Wx], [N, K, Wy] -> (coords [N, K, 2]
    input pixels, scores [N, K])."""
    max_x, index_x = simcc_x.max(dim=-1)
    max_y, index_y = simcc_y.max(dim=-1)
    scores = torch.minimum(max_x, max_y)
    coords = torch.stack([index_x, index_y], dim=-1).to(simcc_x.dtype)
    coords = torch.where((scores > 0).unsqueeze(-1), coords, torch.full_like(coords, -1.0))
    return coords / split_ratio, scores


def flip_simcc(simcc_x, simcc_y, flip_index):
    """Vectors [N, K, W*] of a mirrored input -> aligned with the plain input's (torch or numpy):
    left/right joints swapped, x reversed."""
    index = list(flip_index)
    if isinstance(simcc_x, torch.Tensor):
        return simcc_x[:, index].flip(-1), simcc_y[:, index]
    return np.asarray(simcc_x)[:, index, ::-1], np.asarray(simcc_y)[:, index]


@dataclass(frozen=True)
class SimCCLabel:
    """The simcc codec (the posecore.codec.Codec interface).

    input_size (w, h) in pixels, sigma (x, y) in bins, split_ratio bins per input pixel.
    """

    input_size: tuple[int, int]
    sigma: tuple[float, float] = (4.9, 5.66)
    split_ratio: float = 2.0
    normalize: bool = False
    decode_method: str = "default"

    name: ClassVar[str] = "simcc"
    udp: ClassVar[bool] = False
    decodes: ClassVar[tuple[str, ...]] = ("default",)
    output_names: ClassVar[tuple[str, ...]] = ("simcc_x", "simcc_y")  # the model predicts this pair
    metadata_keys: ClassVar[dict[str, str]] = {
        "simcc_sigma": "simcc: [x, y] Gaussian sigma of the training labels, in bins",
        "simcc_split_ratio": "simcc: bins per input pixel",
        "simcc_size": "simcc: [Wx, Wy], the lengths of simcc_x and simcc_y",
        "decode_method": "eval.decode of the export: 'default' (simcc decodes one way)",
    }
    required_metadata: ClassVar[tuple[str, ...]] = ("simcc_sigma", "simcc_split_ratio")
    default_loss: ClassVar[str] = "kl_discret"

    def __post_init__(self):
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        sigma = tuple(float(v) for v in np.broadcast_to(np.asarray(self.sigma, dtype=np.float64).reshape(-1), 2))
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "split_ratio", float(self.split_ratio))

    @classmethod
    def from_params(cls, params: Any) -> SimCCLabel:
        data = params.data
        return cls(
            tuple(data.input_size), tuple(data.simcc_sigma), data.simcc_split_ratio, decode_method=params.eval.decode
        )

    @classmethod
    def from_metadata(
        cls, metadata: dict, decode_method: str | None = None, dark_kernel: int | None = None
    ) -> SimCCLabel:
        """The codec an ONNX export's metadata (`metadata()` keys) describe; the decode options
        of heatmap codecs are accepted and have no effect (SimCC decodes one way)."""
        return cls(tuple(metadata["input_size"]), tuple(metadata["simcc_sigma"]), float(metadata["simcc_split_ratio"]))

    def metadata(self) -> dict[str, Any]:
        """What an ONNX export records of the codec: "codec" and its metadata_keys."""
        return {
            "codec": self.name,
            "simcc_sigma": list(self.sigma),
            "simcc_split_ratio": self.split_ratio,
            "simcc_size": list(self.simcc_size),
            "decode_method": self.decode_method,
        }

    @classmethod
    def check_metadata(cls, metadata: dict, fail) -> None:
        """Its keys' values in an export's metadata; fail(key, expected) on one that does not fit."""
        if not numbers_fit(metadata.get("simcc_sigma"), 2, low=1e-6, high=1e4):
            fail("simcc_sigma", "two positive numbers (x, y)")
        if not numbers_fit([metadata.get("simcc_split_ratio")], 1, low=1e-3, high=100):
            fail("simcc_split_ratio", "a positive number")
        if "simcc_size" in metadata:  # derived, for consumers without posecore: it must agree
            own = list(simcc_size(metadata["input_size"], metadata["simcc_split_ratio"]))
            if metadata["simcc_size"] != own:
                fail("simcc_size", f"{own} (input_size x simcc_split_ratio)")
        if metadata.get("decode_method", "default") not in cls.decodes:
            fail("decode_method", f"one of {list(cls.decodes)}")

    def output_shapes(self, num_joints: int) -> dict[str, tuple[int, ...]]:
        """{"simcc_x": (K, Wx), "simcc_y": (K, Wy)}."""
        wx, wy = self.simcc_size
        return {"simcc_x": (int(num_joints), wx), "simcc_y": (int(num_joints), wy)}

    def describe(self) -> dict[str, str]:
        """The crop and the decoding of "keypoints" / "scores" in words (export metadata)."""
        return {
            "crop": CROP_TEXT[False],
            "decode": (
                "argmax of simcc_x and of simcc_y per joint, divided by simcc_split_ratio "
                f"({self.split_ratio}) = input pixels; score = the smaller of the two maxima; "
                "(-1, -1) / simcc_split_ratio when that score <= 0"
            ),
        }

    @property
    def input_per_unit(self) -> np.ndarray:
        """[2] input pixels per unit of the decoded coordinates: they are input pixels."""
        return np.ones(2)

    @property
    def simcc_size(self) -> tuple[int, int]:
        """(Wx, Wy): the lengths of simcc_x and simcc_y."""
        return simcc_size(self.input_size, self.split_ratio)

    def crop_matrix(self, bbox_center, bbox_scale, rotation_deg: float = 0.0, inverse: bool = False):
        """[2, 3] affine, image pixels -> input pixels (`inverse`: back); the classic crop."""
        return affine_matrix(bbox_center, bbox_scale, rotation_deg, self.input_size, inverse, udp=False)

    def encode(self, joints_xy, visible):
        """Joints [K, 2] in input pixels + visible [K] -> ((target_x float32 [K, Wx], target_y
        float32 [K, Wy]), weight float32 [K])."""
        return encode_simcc(joints_xy, visible, self.input_size, self.sigma, self.split_ratio, self.normalize)

    def decode(self, output):
        """(simcc_x [..., K, Wx], simcc_y [..., K, Wy]) (numpy or torch) -> (coords float32
        [..., K, 2] in input pixels, scores float32 [..., K]); [K, ...] and [N, K, ...] alike."""
        simcc_x, simcc_y = (_numpy(part) for part in _pair(output))
        return decode_simcc(simcc_x, simcc_y, self.split_ratio)

    def decode_torch(self, output):
        """`decode` in ONNX-exportable torch ops: (simcc_x [N, K, Wx], simcc_y [N, K, Wy]) ->
        (coords [N, K, 2] input pixels, scores [N, K])."""
        simcc_x, simcc_y = _pair(output)
        return decode_simcc_torch(simcc_x, simcc_y, self.split_ratio)

    def to_image(self, coords, bbox_center, bbox_scale):
        """Input pixel coords [N, K, 2] -> image pixels [N, K, 2]; bbox_center, bbox_scale [N, 2]."""
        return heatmap_to_image(coords, bbox_center, bbox_scale, self.input_size, udp=False)

    def to_input(self, coords):
        """Decoded coords [..., 2] -> input pixels (float64): they already are."""
        return np.asarray(coords, dtype=np.float64)

    def flip_test(self, plain_out, mirrored_out, flip_index, shift: bool = True):
        """Merge the prediction of an input and of its mirror: the mirror's vectors flipped back
        (flip_simcc) and averaged with the plain ones; torch or numpy, tuple in, tuple out.
        `shift` is accepted for the common interface and ignored (SimCC flips without a shift)."""
        plain_x, plain_y = _pair(plain_out)
        mirrored_x, mirrored_y = flip_simcc(*_pair(mirrored_out), flip_index)
        return (plain_x + mirrored_x) * 0.5, (plain_y + mirrored_y) * 0.5

    def flip_shift(self, enabled: bool = True) -> float:
        return 0.0

    def heatmaps(self, output) -> np.ndarray:
        """A 2-D view for display: (simcc_x [..., K, Wx], simcc_y [..., K, Wy]) -> float32
        [..., K, Wy, Wx] on the crop at split_ratio x input resolution, each joint's y vector
        times its x vector, both clipped at 0 and scaled to a maximum of 1."""
        simcc_x, simcc_y = (_unit_peak(_numpy(part)) for part in _pair(output))
        return simcc_y[..., :, None] * simcc_x[..., None, :]


def _pair(output):
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise TypeError(
            "the simcc codec takes a pair (simcc_x, simcc_y); got "
            f"{type(output).__name__} (is data.codec simcc for a heatmap model?)"
        )
    return output[0], output[1]


def _unit_peak(vectors: np.ndarray) -> np.ndarray:
    """Vectors [..., W] clipped at 0 and divided by their maximum (left at 0 where it is 0)."""
    vectors = np.clip(vectors, 0, None)
    peak = vectors.max(axis=-1, keepdims=True)
    return vectors / np.where(peak > 0, peak, 1)


def _numpy(array):
    if isinstance(array, torch.Tensor):
        return array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float32)


CODECS[SimCCLabel.name] = SimCCLabel  # the registry line
