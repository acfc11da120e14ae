"""What every codec provides (`Codec`), the registry of codecs by name (`CODECS`), and the lookups
the rest of posecore uses instead of naming a codec.

A codec owns everything about a model's output convention: the crop (image -> input pixels), the
training targets, the decoding (numpy for evaluation, torch for the ONNX graph), the flip test,
the way decoded coordinates go back to the image, what an ONNX export records of it and its words
for the export's metadata. Adding a codec is one module in this package that defines the class
and fills its registry line, `CODECS[MyCodec.name] = MyCodec`, plus its import in
posecore/codec/__init__.py; data.codec, the export, the Predictor, evaluation and training then
use it without naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from posecore.files import finite_number

# The params' default codec (data.codec). Exports and checkpoints from before posecore recorded
# the codec were trained with it too.
DEFAULT_CODEC = LEGACY_CODEC = "msra"


@runtime_checkable
class Codec(Protocol):
    """The codec interface (posecore.codec.heatmap's HeatmapCodec family, posecore.codec.simcc's
    SimCCLabel). Shapes: N people, K joints; `output` is a model's output as the model returns it
    (a heatmap tensor [N, K, Hh, Wh], or a tuple such as SimCC's (x [N, K, Wx], y [N, K, Wy])),
    numpy or torch."""

    name: ClassVar[str]  # the data.codec value
    output_names: ClassVar[tuple[str, ...]]  # the model outputs' ONNX names, in order
    # the metadata keys an export records for this codec (besides input_size) -> what they mean
    metadata_keys: ClassVar[dict[str, str]]
    required_metadata: ClassVar[tuple[str, ...]]  # those from_metadata cannot do without
    decodes: ClassVar[tuple[str, ...]]  # the eval.decode values it takes ("default": its own)
    default_loss: ClassVar[str]  # train.loss "auto" for it (posecore.optim.LOSSES)
    udp: ClassVar[bool]  # crop convention: UDP's unbiased crop, or the classic one
    input_size: tuple[int, int]  # (w, h) of the network input

    @classmethod
    def from_params(cls, params: Any) -> Codec: ...

    @classmethod
    def from_metadata(
        cls, metadata: dict, decode_method: str | None = None, dark_kernel: int | None = None
    ) -> Codec: ...

    def metadata(self) -> dict[str, Any]:
        """What an export records of the codec: "codec" and its metadata_keys' values."""

    @classmethod
    def check_metadata(cls, metadata: dict, fail: Callable[[str, str], None]) -> None:
        """Check the values of its own keys in an export's metadata (input_size is checked
        before); fail(key, expected) on one that does not fit."""

    def output_shapes(self, num_joints: int) -> dict[str, tuple[int, ...]]:
        """{output name: its shape without the batch} for K = num_joints (checked against a graph)."""

    def describe(self) -> dict[str, str]:
        """{"crop": ..., "decode": ...}: the crop and the decoding in words, for the export's metadata."""

    @property
    def input_per_unit(self) -> np.ndarray:
        """[2] input pixels per unit of the decoded coordinates."""

    def crop_matrix(self, bbox_center, bbox_scale, rotation_deg: float = 0.0, inverse: bool = False) -> np.ndarray:
        """[2, 3] affine, image pixels -> input pixels (`inverse`: back)."""

    def encode(self, joints_xy, visible) -> tuple[Any, np.ndarray]:
        """Joints [K, 2] in input pixels + visible [K] -> (target, weight float32 [K])."""

    def decode(self, output) -> tuple[np.ndarray, np.ndarray]:
        """output -> (coords float32 [N, K, 2] in decoded units, scores float32 [N, K])."""

    def decode_torch(self, output) -> tuple[Any, Any]:
        """`decode` in ONNX-exportable torch ops."""

    def to_image(self, coords, bbox_center, bbox_scale) -> np.ndarray:
        """Decoded coords [N, K, 2] -> image pixels [N, K, 2] through each person's inverse crop."""

    def flip_shift(self, enabled: bool = True) -> float:
        """How far the flip test moves a mirrored-back prediction (eval.shift_heatmap)."""

    def flip_test(self, plain, mirrored, flip_index, shift: bool = True) -> Any:
        """The merged output of an input's and its mirror's outputs (torch in, torch out)."""

    def heatmaps(self, output) -> np.ndarray:
        """A 2-D view [..., K, H, W] float32 of an output, for display."""


# name -> codec class; each codec module fills its own line
CODECS: dict[str, type[Codec]] = {}


def codec_class(name: Any, what: str = "data.codec") -> type[Codec]:
    """The registered codec called `name`; a ValueError naming `what` and the known codecs."""
    if not isinstance(name, str) or name not in CODECS:
        raise ValueError(f"{what} must be one of {tuple(CODECS)}, got {name!r}")
    return CODECS[name]


def check_decode(codec: str, decode: str) -> None:
    """ValueError naming data.codec / eval.decode when the pair is unknown or contradictory."""
    allowed = codec_class(codec).decodes
    if decode not in allowed:
        raise ValueError(
            f"eval.decode {decode!r} does not fit data.codec {codec!r} (allowed: "
            f"{allowed}; 'default' decodes the way the codec encodes)"
        )


def build_codec(params: Any) -> Codec:
    """The codec of a Params (data.codec): each codec class reads its own keys (from_params)."""
    return codec_class(params.data.codec).from_params(params)


def metadata_codec_name(metadata: dict) -> Any:
    """The codec an export's metadata name (exports from before it was recorded: LEGACY_CODEC)."""
    return metadata.get("codec", LEGACY_CODEC)


def codec_from_metadata(metadata: dict, decode_method: str | None = None, dark_kernel: int | None = None) -> Codec:
    """The codec an export's metadata describe; decode_method / dark_kernel override its decoding."""
    return codec_class(metadata_codec_name(metadata), "metadata codec").from_metadata(
        metadata, decode_method, dark_kernel
    )


def checkpoint_codec_name(saved_params: dict) -> Any:
    """data.codec of a posecore checkpoint's saved params mapping (older ones: LEGACY_CODEC)."""
    data = saved_params.get("data", {}) if isinstance(saved_params, dict) else {}
    return data.get("codec", LEGACY_CODEC) if isinstance(data, dict) else LEGACY_CODEC


CROP_TEXT = {
    False: (
        "box (x, y, w, h) -> centre (x + w/2, y + h/2); widen w or h to the input aspect ratio, "
        "times bbox_padding = crop size in pixels; affine warp scaling crop width to input width, "
        "centre to input centre"
    ),
    True: (
        "box (x, y, w, h) -> centre (x + w/2, y + h/2); widen w or h to the input aspect ratio, "
        "times bbox_padding = crop size in pixels; affine warp scaling crop width to input width - 1 "
        "and crop height to input height - 1 (pixel centres span the crop), centre to "
        "(input size - 1) / 2"
    ),
}  # the crop in words, by crop convention (Codec.udp)


def numbers_fit(values: Any, count: int, integer: bool = False, low: float = -np.inf, high: float = np.inf) -> bool:
    """`values` is a list of `count` finite numbers (integers) in [low, high] (metadata checks)."""
    kinds = (int,) if integer else (int, float)
    return (
        isinstance(values, list)
        and len(values) == count
        and all(
            isinstance(v, kinds) and not isinstance(v, bool) and finite_number(v) and low <= v <= high for v in values
        )
    )
