"""Keypoints of one person with an exported posecore model: onnxruntime + numpy + OpenCV only.

    python examples/onnx_infer.py model.onnx image.jpg --box X Y W H [--out pose.png]

The box is the person's (x, y, w, h) in pixels, e.g. from a detector. Everything model-specific
comes from the file's metadata_props (JSON values): input_size, mean/std, bbox_padding, codec (crop
convention), heatmap_stride, skeleton. Keypoints: the "keypoints" output (decoded in the graph by
the model's codec) or, for msra models, argmax + quarter offset of the heatmaps.
"""

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort


def read_metadata(session):
    return {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}


def crop_matrix(box, meta):
    """[2, 3] affine, image -> input: box at the input aspect ratio, padded, centred (udp: pixel centres)."""
    in_w, in_h = meta["input_size"]
    x, y, w, h = box
    crop_w = max(w, h * in_w / in_h) * meta["bbox_padding"]  # the other side follows the ratio
    span = np.array([in_w, in_h], dtype=float) - (meta.get("codec") == "udp")
    zoom = span / [crop_w, crop_w * in_h / in_w]
    cx, cy = x + w / 2, y + h / 2
    return np.array([[zoom[0], 0, span[0] / 2 - zoom[0] * cx], [0, zoom[1], span[1] / 2 - zoom[1] * cy]])


def decode(heatmaps):
    """Heatmaps [N, K, H, W] -> (coords [N, K, 2] heatmap pixels, scores [N, K]): argmax, then a
    quarter pixel toward the higher neighbour off the border; (0, 0) if the maximum is <= 0."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    index = flat.argmax(axis=2)
    scores = flat.max(axis=2)
    x, y = index % w, index // w

    def at(offset):
        return np.take_along_axis(flat, np.clip(index + offset, 0, h * w - 1)[..., None], axis=2)[..., 0]

    step = np.stack([np.sign(at(1) - at(-1)), np.sign(at(w) - at(-w))], axis=-1)
    inside = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
    coords = np.stack([x, y], axis=-1) + 0.25 * step * inside[..., None]
    return coords * (scores > 0)[..., None], scores


def check_box(box, image_bgr):
    """A hand-given box (x, y, w, h) must be finite, have W and H > 0 and overlap the image."""
    (x, y, w, h), (height, width) = box, image_bgr.shape[:2]
    overlaps = x < width and y < height and x + w > 0 and y + h > 0
    if not (np.isfinite(box).all() and min(w, h) > 0 and overlaps):
        shown, size = " ".join(f"{v:g}" for v in box), f"{width} x {height}"
        raise SystemExit(f"--box {shown}: X Y W H must be finite pixels, W, H > 0, partly inside the {size} image")


def predict(session, image_bgr, box):
    """One person box -> (keypoints [K, 2] in image pixels, scores [K])."""
    meta = read_metadata(session)
    matrix = crop_matrix(box, meta)
    crop = cv2.warpAffine(image_bgr, matrix, tuple(meta["input_size"]), flags=cv2.INTER_LINEAR)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    image = ((rgb - meta["mean"]) / meta["std"]).astype(np.float32).transpose(2, 0, 1)[None]
    in_graph = "keypoints" in meta["outputs"]  # decoded by the model's own codec, in input pixels
    if not in_graph and meta.get("codec", "msra") != "msra":
        raise SystemExit(f"a {meta['codec']} model decodes in the graph only: export it with decode=True")
    outputs = session.run(meta["outputs"], {session.get_inputs()[0].name: image})
    coords, scores = outputs[-2:] if in_graph else decode(outputs[0])  # the last two: keypoints, scores
    input_xy = coords[0] if in_graph else coords[0] * meta["heatmap_stride"]
    inverse = cv2.invertAffineTransform(matrix)
    return input_xy @ inverse[:, :2].T + inverse[:, 2], scores[0]


def draw(image_bgr, keypoints, scores, skeleton, min_score=0.2):
    """Limbs and joints scoring at least `min_score`, drawn on a copy."""
    canvas, points = image_bgr.copy(), [tuple(int(round(v)) for v in p) for p in keypoints]
    for a, b in skeleton:
        if min(scores[a], scores[b]) >= min_score:
            cv2.line(canvas, points[a], points[b], (0, 200, 255), 2, cv2.LINE_AA)
    for point in (p for p, score in zip(points, scores) if score >= min_score):
        cv2.circle(canvas, point, 3, (0, 0, 255), -1, cv2.LINE_AA)
    return canvas


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model"), parser.add_argument("image")
    parser.add_argument("--box", type=float, nargs=4, required=True, metavar=("X", "Y", "W", "H"))
    parser.add_argument("--out", default="pose.png")
    args = parser.parse_args()
    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta, image = read_metadata(session), cv2.imread(args.image)
    if image is None:
        raise SystemExit(f"cannot read image {args.image}")
    check_box(args.box, image)
    keypoints, scores = predict(session, image, args.box)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(args.out, draw(image, keypoints, scores, meta["skeleton"])):
        raise SystemExit(f"cannot write {args.out} (use a .png name)")
    for name, (x, y), score in zip(meta["joint_names"], keypoints, scores):
        print(f"{name:>16s} {x:8.1f} {y:8.1f} {score:6.3f}")


if __name__ == "__main__":
    main()
