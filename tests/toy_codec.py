"""A toy codec written the way a new codec is added: this one module plus its registry line
(`register`). It trains on MSRA-like Gaussian heatmaps and decodes by the soft-argmax (the
heatmap's centre of mass above half its peak), in numpy and in ONNX-exportable torch.
tests/test_codec_interface.py exports, predicts and evaluates with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from posecore.codec import CODECS, gaussian_heatmaps
from posecore.codec.base import CROP_TEXT, numbers_fit
from posecore.geometry import affine_matrix, heatmap_to_image


@dataclass(frozen=True)
class CentroidHeatmap:
    """Gaussian heatmaps at the sub-pixel joint; decoded by the centre of mass of each heatmap's
    values above half its peak. input_size, heatmap_size (w, h); sigma in heatmap pixels."""

    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float = 2.0

    name: ClassVar[str] = "centroid"
    output_names: ClassVar[tuple[str, ...]] = ("heatmaps",)
    metadata_keys: ClassVar[dict[str, str]] = {
        "heatmap_size": "centroid: [w, h] of the heatmaps",
        "sigma": "centroid: Gaussian sigma, heatmap pixels",
    }
    required_metadata: ClassVar[tuple[str, ...]] = ("heatmap_size", "sigma")
    decodes: ClassVar[tuple[str, ...]] = ("default",)
    default_loss: ClassVar[str] = "joints_mse"
    udp: ClassVar[bool] = False

    @classmethod
    def from_params(cls, params: Any) -> CentroidHeatmap:
        return cls(tuple(params.data.input_size), tuple(params.data.heatmap_size), params.data.sigma)

    @classmethod
    def from_metadata(
        cls, metadata: dict, decode_method: str | None = None, dark_kernel: int | None = None
    ) -> CentroidHeatmap:
        return cls(tuple(metadata["input_size"]), tuple(metadata["heatmap_size"]), float(metadata["sigma"]))

    def metadata(self) -> dict[str, Any]:
        return {"codec": self.name, "heatmap_size": list(self.heatmap_size), "sigma": self.sigma}

    @classmethod
    def check_metadata(cls, metadata: dict, fail) -> None:
        if not numbers_fit(metadata.get("heatmap_size"), 2, integer=True, low=1, high=4096):
            fail("heatmap_size", "two positive integers (w, h)")
        if not numbers_fit([metadata.get("sigma")], 1, low=1e-3, high=100):
            fail("sigma", "a positive number")

    def output_shapes(self, num_joints: int) -> dict[str, tuple[int, ...]]:
        return {"heatmaps": (int(num_joints), self.heatmap_size[1], self.heatmap_size[0])}

    def describe(self) -> dict[str, str]:
        return {
            "crop": CROP_TEXT[False],
            "decode": "centre of mass of each heatmap above half its maximum, "
            "times input_size / heatmap_size; score = maximum",
        }

    @property
    def input_per_unit(self) -> np.ndarray:
        return np.array([self.input_size[0] / self.heatmap_size[0], self.input_size[1] / self.heatmap_size[1]])

    def crop_matrix(self, bbox_center, bbox_scale, rotation_deg: float = 0.0, inverse: bool = False):
        return affine_matrix(bbox_center, bbox_scale, rotation_deg, self.input_size, inverse)

    def encode(self, joints_xy, visible):
        centers = np.asarray(joints_xy, dtype=np.float64).reshape(-1, 2) / self.input_per_unit
        return gaussian_heatmaps(centers, visible, self.heatmap_size, self.sigma, subpixel=True)

    def decode(self, output):
        coords, scores = self.decode_torch(torch.as_tensor(np.asarray(output, dtype=np.float32)))
        return coords.numpy(), scores.numpy()

    def decode_torch(self, output):
        n, k, height, width = output.shape
        flat = output.reshape(n, k, height * width)
        scores = flat.max(dim=2)[0]
        weights = torch.relu(flat - 0.5 * scores.unsqueeze(2))
        total = weights.sum(dim=2).clamp(min=1e-12)
        grid_x = torch.arange(width, dtype=output.dtype).repeat(height)
        grid_y = torch.arange(height, dtype=output.dtype).repeat_interleave(width)
        coords = torch.stack([(weights * grid_x).sum(dim=2) / total, (weights * grid_y).sum(dim=2) / total], dim=2)
        return coords, scores

    def to_image(self, coords, bbox_center, bbox_scale):
        return heatmap_to_image(coords, bbox_center, bbox_scale, self.heatmap_size)

    def flip_shift(self, enabled: bool = True) -> float:
        return 0.0  # sub-pixel Gaussians mirror onto themselves up to the crop's half pixel

    def flip_test(self, plain, mirrored, flip_index, shift: bool = True):
        return (plain + mirrored[:, list(flip_index)].flip(3)) * 0.5

    def heatmaps(self, output) -> np.ndarray:
        return np.asarray(output.detach().cpu().numpy() if isinstance(output, torch.Tensor) else output, np.float32)


def register(registry: dict = CODECS) -> None:
    """The registry line."""
    registry[CentroidHeatmap.name] = CentroidHeatmap
