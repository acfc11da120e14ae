"""Box <-> crop geometry of top-down pose estimation.

A person crop is described by `bbox_center` (x, y) and `bbox_scale` (w, h) in image pixels: the
region the network input covers, already padded and stretched to the input aspect ratio. The crop
transform is the classic one of HRNet, AlphaPose and mmpose 0.x (their `get_affine_transform`):
the centre maps to (out_w / 2, out_h / 2), the zoom is out_w / bbox_scale[0] on both axes, and a
positive rotation turns the image content counter-clockwise in the crop. Keeping that exact
convention is what makes upstream checkpoints score their numbers.

`udp=True` is UDP's unbiased convention instead (Huang et al., CVPR 2020, mmpose's
`get_udp_warp_matrix`): pixels are points, so the crop's first and last pixel centres (0 and
out - 1) span bbox_scale on each axis and the centre maps to ((out_w - 1) / 2, (out_h - 1) / 2).
Mirroring a crop then mirrors the image about the box centre exactly, and resizing between input
and heatmap introduces no half-pixel offset.
"""

from __future__ import annotations

import numpy as np

MAX_PIXELS = 1e6  # no image is this large: a coordinate or size read from a file beyond it is not pixels


def box_to_center_scale(bbox_xywh, aspect_ratio: float, padding: float = 1.25):
    """(x, y, w, h) box -> (bbox_center [2], bbox_scale [2]) in pixels.

    The box is grown along one axis to the input aspect ratio (w / h), then padded by `padding`.
    """
    x, y, w, h = (float(v) for v in np.asarray(bbox_xywh, dtype=np.float64)[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * padding, h * padding], dtype=np.float32)
    return center, scale


def affine_matrix(bbox_center, bbox_scale, rotation_deg: float, output_size, inverse: bool = False, udp: bool = False):
    """[2, 3] float64 matrix mapping image pixels to crop pixels (`inverse`: crop to image).

    `output_size` is (w, h) of the crop (input or heatmap size). Classic: only bbox_scale[0] sets
    the zoom, as in the references, so bbox_scale must have the output aspect ratio. `udp`: each
    axis has its own zoom (out - 1) / bbox_scale, applied after the rotation.
    """
    center = np.asarray(bbox_center, dtype=np.float64)[:2]
    scale = np.asarray(bbox_scale, dtype=np.float64)
    out_w, out_h = float(output_size[0]), float(output_size[1])
    theta = np.deg2rad(float(rotation_deg))
    cos, sin = np.cos(theta), np.sin(theta)
    if udp:
        zoom = np.array([(out_w - 1) / scale[0], (out_h - 1) / scale[1]])
        crop_center = np.array([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
    else:
        zoom = out_w / float(scale[0])
        crop_center = np.array([out_w * 0.5, out_h * 0.5])
    if inverse:
        linear = np.array([[cos, -sin], [sin, cos]]) / zoom  # zoom per column: undone first
        offset = center - linear @ crop_center
    else:
        linear = np.array([[cos, sin], [-sin, cos]]) * np.reshape(zoom, (-1, 1))  # per row
        offset = crop_center - linear @ center
    return np.concatenate([linear, offset[:, None]], axis=1)


def transform_points(points, matrix):
    """Apply a [2, 3] affine matrix to points [..., 2]; returns float64 [..., 2]."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def compose(outer, inner):
    """[2, 3] matrix of `outer` applied after `inner`."""
    outer3 = np.vstack([outer, [0.0, 0.0, 1.0]])
    inner3 = np.vstack([inner, [0.0, 0.0, 1.0]])
    return (outer3 @ inner3)[:2]


def heatmap_to_image(coords, bbox_center, bbox_scale, heatmap_size, udp: bool = False):
    """Heatmap pixel coords [N, K, 2] -> original image pixels [N, K, 2] (no rotation, test time).

    bbox_center, bbox_scale: [N, 2]; heatmap_size (w, h). The inverse of `affine_matrix` (same
    `udp` convention) at heatmap resolution, vectorized over instances.
    """
    coords = np.asarray(coords, dtype=np.float64)
    center = np.asarray(bbox_center, dtype=np.float64).reshape(-1, 1, 2)
    scale = np.asarray(bbox_scale, dtype=np.float64).reshape(-1, 1, 2)
    heatmap_w, heatmap_h = float(heatmap_size[0]), float(heatmap_size[1])
    if udp:
        spans = np.array([heatmap_w - 1, heatmap_h - 1])
        return (coords - spans * 0.5) * (scale / spans) + center
    pixels_per_cell = scale[..., :1] / heatmap_w
    half = np.array([heatmap_w * 0.5, heatmap_h * 0.5])
    return (coords - half) * pixels_per_cell + center
