"""Codecs: joints <-> what a model predicts, one class per convention (`data.codec`).

- base: the `Codec` interface, the registry `CODECS` (name -> class) and the lookups the rest of
  posecore uses (`build_codec`, `check_decode`, `codec_class`, `codec_from_metadata`), so that no
  other module names a codec
- heatmap: msra, dark and udp (Gaussian heatmaps) and their numpy / torch decoders
- simcc: SimCC / RTMPose's 1-D classification labels per axis

Build one with `build_codec(params)`; the dataset, evaluation, export, the Predictor and
inference all use that object, so a run decodes the way it was trained.
"""

from __future__ import annotations

from posecore.codec.base import (
    CODECS,
    LEGACY_CODEC,
    Codec,
    build_codec,
    check_decode,
    checkpoint_codec_name,
    codec_class,
    codec_from_metadata,
    metadata_codec_name,
)
from posecore.codec.heatmap import (
    DECODE_METHODS,
    HEATMAP_CODECS,
    DarkHeatmap,
    HeatmapCodec,
    MSRAHeatmap,
    UDPHeatmap,
    decode_heatmaps,
    decode_heatmaps_torch,
    encode_heatmaps,
    flip_back,
    gaussian_heatmaps,
    heatmap_stride,
    taylor_offset,
)
from posecore.codec.simcc import SimCCLabel, decode_simcc, decode_simcc_torch, encode_simcc, flip_simcc, simcc_size

__all__ = [
    "CODECS",
    "DECODE_METHODS",
    "HEATMAP_CODECS",
    "LEGACY_CODEC",
    "Codec",
    "DarkHeatmap",
    "HeatmapCodec",
    "MSRAHeatmap",
    "SimCCLabel",
    "UDPHeatmap",
    "build_codec",
    "check_decode",
    "checkpoint_codec_name",
    "codec_class",
    "codec_from_metadata",
    "decode_heatmaps",
    "decode_heatmaps_torch",
    "decode_simcc",
    "decode_simcc_torch",
    "encode_heatmaps",
    "encode_simcc",
    "flip_back",
    "flip_simcc",
    "gaussian_heatmaps",
    "heatmap_stride",
    "metadata_codec_name",
    "simcc_size",
    "taylor_offset",
]
