"""posecore's synthetic people: drawn figures written in the COCO or MPII layout.

`make_synthetic(root, dataset)` writes a small deterministic dataset (the CPU demo's data and the
tests'); `draw_scene` makes one image and its people; `make_synthetic_video` writes a short video
of people walking and crossing, with detector-like boxes (inference's demo and tests). Nothing
here runs unless called.

dataset "custom" writes the same figures with a keypoint set of its own (CUSTOM_JOINTS: COCO's
body without the face, plus neck and mid-hip, in another order and skeleton) as a COCO-format
category: the template of a user's own keypoint dataset (`data.dataset: custom`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from posecore.data.annotations import MPII_PIXEL_STD, check_layout
from posecore.files import read_json, write_json
from posecore.keypoints import DATASETS, keypoint_info
from posecore.metrics import save_mpii_gt

log = logging.getLogger(__name__)

SYNTHETIC_VERSION = 1
_MANIFEST = "synthetic.json"
_SKIN_TONES = ((60, 90, 150), (90, 140, 200), (120, 170, 225), (150, 190, 235), (40, 60, 100))
# The custom set's joints in file order -> the drawn figure's point each one marks.
CUSTOM_JOINTS = {
    "neck": "thorax",
    "mid_hip": "pelvis",
    "left_shoulder": "left_shoulder",
    "left_elbow": "left_elbow",
    "left_wrist": "left_wrist",
    "right_shoulder": "right_shoulder",
    "right_elbow": "right_elbow",
    "right_wrist": "right_wrist",
    "left_hip": "left_hip",
    "left_knee": "left_knee",
    "left_ankle": "left_ankle",
    "right_hip": "right_hip",
    "right_knee": "right_knee",
    "right_ankle": "right_ankle",
}
CUSTOM_SKELETON = (
    ("neck", "mid_hip"),
    ("neck", "left_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("neck", "right_shoulder"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("mid_hip", "left_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("mid_hip", "right_hip"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)
# OKS sigmas for it (what eval.sigmas needs): COCO's for the joints it shares with COCO, the
# shoulders' for the neck and the hips' for the mid-hip.
CUSTOM_SIGMAS = (0.079, 0.107, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062, 0.107, 0.087, 0.089, 0.107, 0.087, 0.089)


def make_synthetic(
    root, dataset: str = "coco", num_train: int = 700, num_val: int = 80, seed: int = 0, image_size=256
) -> Path:
    """Write a deterministic synthetic dataset of drawn people in the official layout; returns root.

    COCO layout: annotations/person_keypoints_{train,val}2017.json, train2017/, val2017/ (dataset
    "custom": the same with the CUSTOM_JOINTS keypoint category).
    MPII layout: annotations/mpii_{train,val}.json, annotations/mpii_gt_val.mat, images/.
    `num_train` / `num_val` count images (1-4 people each, ~2.2 on average); `image_size` is an
    int or (w, h). A folder that already holds a complete dataset made with the same arguments
    is left as it is.
    """
    if dataset not in ("coco", "custom", "mpii"):
        whole_body = (
            " (posecore's drawn figures have no feet, faces or hands: set data.root to the "
            "dataset in its layout, see posecore.data.check_layout)"
            if dataset in DATASETS
            else ""
        )
        raise ValueError(f"synthetic data: dataset must be 'coco', 'custom' or 'mpii', got {dataset!r}{whole_body}")
    root = Path(root)
    size = (int(image_size), int(image_size)) if np.isscalar(image_size) else tuple(int(v) for v in image_size)
    settings = {
        "version": SYNTHETIC_VERSION,
        "dataset": dataset,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "seed": int(seed),
        "image_size": list(size),
    }
    manifest = root / _MANIFEST
    if manifest.is_file() and not check_layout(root, dataset):
        try:
            if read_json(manifest).get("settings") == settings:
                return root
        except (OSError, ValueError):
            pass  # a damaged manifest: regenerate
    counts = {}
    for split_number, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        rng = np.random.default_rng((int(seed), split_number))
        scenes = []
        for _ in tqdm(range(int(count)), desc=f"synthetic {dataset} {split}", leave=False):
            image, people = draw_scene(rng, size)
            scenes.append((image, people))
        if dataset != "mpii":
            counts[split] = _write_coco_split(root, split, scenes, size, _coco_category(dataset))
        else:
            counts[split] = _write_mpii_split(root, split, scenes)
    # written last: its presence marks a complete dataset
    write_json(manifest, {"settings": settings, "people": counts})
    log.info("synthetic %s dataset in %s: %s people", dataset, root, counts)
    return root


def draw_scene(rng, size) -> tuple[np.ndarray, list[dict]]:
    """One synthetic image (BGR uint8 [H, W, 3]) and its people.

    Each person: "points" {name: (x, y)} for the COCO and MPII joints, "visibility" {name: 0/1/2}
    (0 outside the image, 1 hidden by a later person or an occluder, 2 visible), "bbox" [x, y, w, h],
    "area" (silhouette pixels), "head_box" [x0, y0, x1, y1].
    """
    width, height = size
    image = _background(rng, width, height)
    owner = np.zeros((height, width), np.uint8)  # 0 background, p + 1 person p, 255 occluder
    people = []
    count = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.25, 0.1]))
    placed: list[float] = []
    for p in range(count):
        person_height = rng.uniform(0.28, 0.8) * height
        for _ in range(10):  # spread people out; some overlap is wanted (occlusion)
            x = rng.uniform(0.1, 0.9) * width
            if all(abs(x - other) > 0.25 * person_height for other in placed):
                break
        placed.append(x)
        y = rng.uniform(0.4 * person_height, height - 0.25 * person_height)
        points = _figure_points(rng, person_height, (x, y))
        mask = np.zeros((height, width), np.uint8)
        _draw_figure(image, mask, points, person_height, rng)
        owner[mask > 0] = p + 1
        pixels = cv2.countNonZero(mask)
        if pixels == 0:
            continue
        left, top, box_w, box_h = cv2.boundingRect(mask)
        radius = points.pop("head_radius")
        cx, cy = points["head_center"]
        people.append(
            {
                "points": points,
                "mask_pixels": int(pixels),
                "id": p + 1,
                "bbox": [float(left), float(top), float(box_w), float(box_h)],
                "head_box": [cx - radius, cy - radius, cx + radius, cy + radius],
            }
        )
    for _ in range(int(rng.random() < 0.35) + int(rng.random() < 0.1)):
        _draw_occluder(rng, image, owner, people)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2, 8))
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    for person in people:
        person["visibility"] = {name: _visibility(owner, person["id"], xy) for name, xy in person["points"].items()}
        person["area"] = float(person.pop("mask_pixels"))
    return image, people


# Walkers of the synthetic video, back to front: (start x, end x, pelvis y, height) as fractions
# of the frame. The first passes behind the pillar; the other two cross, the last one in front.
_VIDEO_WALKERS = ((0.06, 0.72, 0.40, 0.36), (0.90, 0.12, 0.70, 0.60), (0.12, 0.86, 0.74, 0.64))
_VIDEO_PILLAR = (0.36, 0.46, 0.60)  # x0, x1, bottom y: in front of the first walker only
_VIDEO_MISS_BELOW = 0.35  # the fake detector misses people less visible than this


def make_synthetic_video(
    folder, num_frames: int = 48, size=(640, 480), fps: float = 12.0, seed: int = 0, name: str = "walk"
) -> dict[str, Path]:
    """A short video of drawn people walking across the frame, and detections that behave like a
    person detector's; returns {"video", "detections", "truth"} paths in `folder`.

    Three people: one walks behind a pillar (hidden for a few frames), two cross each other.
    <name>.mp4 (mp4v, `fps`, `size` (w, h)); <name>_detections.json in COCO-results form with
    image_id "<frame>.jpg": the visible part of each person's box, edges jittered by ~1.5 px,
    nobody under 35% visible, the front walker missed in one frame, and one false positive;
    <name>_truth.json: per frame and person the track id (1-3), COCO keypoints [x, y, v] * 17
    (v: 2 visible, 1 hidden, 0 outside), the visible box and fraction, plus the missed frame and
    the false positive. Deterministic for a given seed.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = int(size[0]), int(size[1])
    rng = np.random.default_rng((int(seed), 2))
    background = _background(rng, width, height)
    pillar = (int(_VIDEO_PILLAR[0] * width), int(_VIDEO_PILLAR[1] * width), int(_VIDEO_PILLAR[2] * height))
    pillar_colour = tuple(float(c) for c in rng.uniform(40, 200, 3))
    missed_frame, false_frame = round(0.25 * (num_frames - 1)), round(0.8 * (num_frames - 1))
    false_box = [0.8 * width, 0.08 * height, 0.1 * width, 0.2 * height]
    info = keypoint_info("coco")
    video_path, partial = folder / f"{name}.mp4", folder / f".{name}.partial.mp4"
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {partial} (mp4v)")
    detections, truth = [], []
    for frame in tqdm(range(int(num_frames)), desc=f"synthetic video {name}", leave=False):
        progress = frame / max(num_frames - 1, 1)
        image = background.copy()
        owner = np.zeros((height, width), np.uint8)  # 0 background, p person p, 255 pillar
        walkers = []
        for p, (x0, x1, y, h) in enumerate(_VIDEO_WALKERS, 1):
            person_rng = np.random.default_rng((int(seed), 3, p))  # the same figure every frame
            points = _figure_points(person_rng, h * height, ((x0 + (x1 - x0) * progress) * width, y * height))
            mask = np.zeros((height, width), np.uint8)
            _draw_figure(image, mask, points, h * height, person_rng)
            owner[mask > 0] = p
            walkers.append((p, points, cv2.countNonZero(mask)))
            if p == 1:
                cv2.rectangle(image, (pillar[0], 0), (pillar[1], pillar[2]), pillar_colour, -1)
                owner[: pillar[2] + 1, pillar[0] : pillar[1] + 1] = 255
        noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(3.0)
        writer.write(np.clip(image + noise, 0, 255).astype(np.uint8))
        for p, points, pixels in walkers:
            visible = (owner == p).astype(np.uint8)
            fraction = cv2.countNonZero(visible) / max(pixels, 1)
            left, top, box_w, box_h = cv2.boundingRect(visible)
            keypoints = [
                v
                for joint in info.joint_names
                for v in (*(round(c, 2) for c in points[joint]), _visibility(owner, p, points[joint]))
            ]
            truth.append(
                {
                    "frame": frame,
                    "id": p,
                    "keypoints": keypoints,
                    "visible_fraction": round(fraction, 3),
                    "bbox": [float(left), float(top), float(box_w), float(box_h)],
                }
            )
            if fraction < _VIDEO_MISS_BELOW or (p == len(_VIDEO_WALKERS) and frame == missed_frame):
                continue
            x0, y0, x1, y1 = np.array([left, top, left + box_w, top + box_h]) + rng.normal(0, 1.5, 4)
            detections.append(
                {
                    "image_id": f"{frame}.jpg",
                    "category_id": 1,
                    "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                    "score": round(float(np.clip(0.5 + 0.45 * fraction + rng.normal(0, 0.02), 0, 1)), 3),
                }
            )
        if frame == false_frame:
            detections.append({"image_id": f"{frame}.jpg", "category_id": 1, "bbox": false_box, "score": 0.5})
    writer.release()
    os.replace(partial, video_path)
    paths = {
        "video": video_path,
        "detections": folder / f"{name}_detections.json",
        "truth": folder / f"{name}_truth.json",
    }
    write_json(paths["detections"], detections)
    write_json(
        paths["truth"],
        {
            "size": [width, height],
            "fps": float(fps),
            "frames": int(num_frames),
            "people": truth,
            "missed": {"frame": missed_frame, "id": len(_VIDEO_WALKERS)},
            "false_positive": {"frame": false_frame, "bbox": false_box},
        },
    )
    return paths


def _background(rng, width: int, height: int) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # linear gradient between two colours
        angle = rng.uniform(0, 2 * np.pi)
        xs = np.linspace(0, 1, width, dtype=np.float32)[None]
        ys = np.linspace(0, 1, height, dtype=np.float32)[:, None]
        t = xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle))
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
        first, second = rng.uniform(0, 255, 3).astype(np.float32), rng.uniform(0, 255, 3).astype(np.float32)
        image = first + t[..., None] * (second - first)
    elif kind == 1:  # smooth colour blobs
        coarse = rng.uniform(0, 255, (rng.integers(3, 9), rng.integers(3, 9), 3)).astype(np.float32)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    else:  # flat colour with texture noise
        image = rng.uniform(0, 255, 3) + 20 * rng.standard_normal((height, width, 3), dtype=np.float32)
    image = np.clip(image, 0, 255, dtype=np.float32)
    for _ in range(rng.integers(2, 10)):  # clutter
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        a = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        b = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        shape = rng.integers(3)
        if shape == 0:
            cv2.rectangle(image, a, b, colour, -1 if rng.random() < 0.5 else int(rng.integers(1, 4)))
        elif shape == 1:
            cv2.circle(image, a, int(rng.uniform(3, 0.15 * width)), colour, -1)
        else:
            cv2.line(image, a, b, colour, int(rng.integers(1, 5)), cv2.LINE_AA)
    return image


def _figure_points(rng, h: float, pelvis_xy) -> dict:
    """Named joints of a front-facing figure (its left on the image right) in image pixels."""
    body = rng.uniform(0.85, 1.2)
    torso = 0.30 * h
    head_radius = 0.07 * h
    local = {
        "pelvis": (0.0, 0.0),
        "thorax": (0.0, -torso),
        "left_hip": (0.075 * h * body, 0.0),
        "right_hip": (-0.075 * h * body, 0.0),
        "left_shoulder": (0.115 * h * body, -torso),
        "right_shoulder": (-0.115 * h * body, -torso),
    }
    head = np.array([0.0, -torso - 0.05 * h - head_radius])
    local["head_center"] = tuple(head)
    local["head_top"] = (0.0, head[1] - head_radius)
    local["upper_neck"] = (0.0, 0.5 * (-torso + head[1] + head_radius))
    yaw = rng.uniform(-0.45, 0.45) * head_radius
    local["nose"] = (head[0] + yaw, head[1] + 0.2 * head_radius)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        local[f"{side}_eye"] = (head[0] + sign * 0.38 * head_radius + yaw, head[1] - 0.15 * head_radius)
        local[f"{side}_ear"] = (head[0] + sign * 0.95 * head_radius + 0.3 * yaw, head[1])
        # arms: angle from hanging straight down, positive = away from the body
        shoulder = np.array(local[f"{side}_shoulder"])
        upper_angle = rng.uniform(-0.25, 2.7)
        fore_angle = upper_angle + rng.uniform(-1.5, 1.5)
        elbow = shoulder + 0.17 * h * np.array([sign * np.sin(upper_angle), np.cos(upper_angle)])
        wrist = elbow + 0.16 * h * np.array([sign * np.sin(fore_angle), np.cos(fore_angle)])
        hip = np.array(local[f"{side}_hip"])
        thigh_angle = rng.uniform(-0.12, 0.6)
        shin_angle = thigh_angle + rng.uniform(-0.6, 0.4)
        knee = hip + 0.25 * h * rng.uniform(0.6, 1.0) * np.array([sign * np.sin(thigh_angle), np.cos(thigh_angle)])
        ankle = knee + 0.24 * h * np.array([sign * np.sin(shin_angle), np.cos(shin_angle)])
        local.update(
            {
                f"{side}_elbow": tuple(elbow),
                f"{side}_wrist": tuple(wrist),
                f"{side}_knee": tuple(knee),
                f"{side}_ankle": tuple(ankle),
            }
        )
    lean = float(np.clip(rng.normal(0, 0.2), -0.6, 0.6))
    cos, sin = np.cos(lean), np.sin(lean)
    rotate = np.array([[cos, -sin], [sin, cos]])
    offset = np.asarray(pelvis_xy, dtype=np.float64)
    points = {name: tuple(float(v) for v in rotate @ np.asarray(xy) + offset) for name, xy in local.items()}
    points["head_radius"] = head_radius
    return points


def _draw_figure(image, mask, points, h: float, rng) -> None:
    """Paint the figure on `image` and its silhouette on `mask`."""
    shirt = tuple(float(c) for c in rng.uniform(20, 255, 3))
    sleeve = tuple(0.75 * c for c in shirt)
    pants = tuple(float(c) for c in rng.uniform(20, 220, 3))
    shin = tuple(min(255.0, 0.6 * c + 60) for c in pants)
    skin = tuple(float(c) + rng.uniform(-15, 15) for c in _SKIN_TONES[rng.integers(len(_SKIN_TONES))])
    dark = tuple(float(c) for c in rng.uniform(0, 60, 3))
    limb = max(2, int(round(0.055 * h)))
    thin = max(2, int(round(0.045 * h)))

    def pt(name):
        x, y = points[name]
        return int(round(x)), int(round(y))

    def line(a, b, colour, thickness):
        cv2.line(image, pt(a), pt(b), colour, thickness, cv2.LINE_AA)
        cv2.line(mask, pt(a), pt(b), 255, thickness)

    def disc(centre, radius, colour):
        centre = (int(round(centre[0])), int(round(centre[1])))
        cv2.circle(image, centre, max(1, int(round(radius))), colour, -1, cv2.LINE_AA)
        cv2.circle(mask, centre, max(1, int(round(radius))), 255, -1)

    for side in ("left", "right"):
        line(f"{side}_hip", f"{side}_knee", pants, limb)
        line(f"{side}_knee", f"{side}_ankle", shin, thin)
        disc(points[f"{side}_ankle"], 0.035 * h, dark)
    torso = np.array([pt("left_shoulder"), pt("right_shoulder"), pt("right_hip"), pt("left_hip")], np.int32)
    cv2.fillPoly(image, [torso], shirt, cv2.LINE_AA)
    cv2.fillPoly(mask, [torso], 255)
    line("thorax", "upper_neck", skin, thin)
    for side in ("left", "right"):
        line(f"{side}_shoulder", f"{side}_elbow", sleeve, limb)
        line(f"{side}_elbow", f"{side}_wrist", skin, thin)
        disc(points[f"{side}_wrist"], 0.03 * h, tuple(0.8 * c for c in skin))
    radius = points["head_radius"]
    ear = tuple(0.8 * c for c in skin)
    disc(points["left_ear"], 0.28 * radius, ear)
    disc(points["right_ear"], 0.28 * radius, ear)
    disc(points["head_center"], radius, skin)
    hair = (points["head_center"][0], points["head_center"][1] - 0.75 * radius)
    cv2.ellipse(
        image,
        (int(hair[0]), int(hair[1])),
        (max(1, int(0.8 * radius)), max(1, int(0.35 * radius))),
        0,
        0,
        360,
        dark,
        -1,
        cv2.LINE_AA,
    )
    for side in ("left", "right"):
        disc(points[f"{side}_eye"], max(1.0, 0.14 * radius), (20.0, 20.0, 20.0))
    disc(points["nose"], max(1.0, 0.14 * radius), (40.0, 40.0, 170.0))


def _draw_occluder(rng, image, owner, people) -> None:
    if not people:
        return
    person = people[rng.integers(len(people))]
    names = [n for n in person["points"] if n not in ("head_center",)]
    cx, cy = person["points"][names[rng.integers(len(names))]]
    half = rng.uniform(0.08, 0.2) * person["bbox"][3] + 3
    colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
    stamp = np.zeros(owner.shape, np.uint8)
    a = (int(cx - half * rng.uniform(0.5, 1.5)), int(cy - half))
    b = (int(cx + half * rng.uniform(0.5, 1.5)), int(cy + half))
    if rng.random() < 0.5:
        cv2.rectangle(image, a, b, colour, -1)
        cv2.rectangle(stamp, a, b, 255, -1)
    else:
        axes = (max(1, (b[0] - a[0]) // 2), max(1, (b[1] - a[1]) // 2))
        cv2.ellipse(image, (int(cx), int(cy)), axes, 0, 0, 360, colour, -1)
        cv2.ellipse(stamp, (int(cx), int(cy)), axes, 0, 0, 360, 255, -1)
    owner[stamp > 0] = 255


def _visibility(owner, person_id: int, xy) -> int:
    height, width = owner.shape
    x, y = xy
    if not (0 <= x < width and 0 <= y < height):
        return 0
    xi, yi = int(x), int(y)
    window = owner[max(0, yi - 1) : yi + 2, max(0, xi - 1) : xi + 2]
    return 2 if (window == person_id).any() else 1


def _write_image(path: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    # regenerable files: the manifest written last is what marks the set complete
    path.write_bytes(encoded.tobytes())


def _coco_category(dataset: str) -> dict:
    """The keypoint category a COCO-layout synthetic dataset is written with."""
    if dataset == "custom":
        names = list(CUSTOM_JOINTS)
        return {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": names,
            "skeleton": [[names.index(a) + 1, names.index(b) + 1] for a, b in CUSTOM_SKELETON],
        }
    info = keypoint_info("coco")
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(info.joint_names),
        "skeleton": [[a + 1, b + 1] for a, b in info.skeleton],
    }


def _write_coco_split(root: Path, split: str, scenes, size, category: dict) -> int:
    # the figure's point each joint marks (the built-in COCO joints are figure points themselves)
    points = [CUSTOM_JOINTS.get(name, name) for name in category["keypoints"]]
    subset = f"{split}2017"
    (root / subset).mkdir(parents=True, exist_ok=True)
    first_id = 1 if split == "train" else 1_000_001
    images, annotations = [], []
    for i, (image, people) in enumerate(scenes):
        image_id = first_id + i
        file_name = f"{image_id:012d}.jpg"
        _write_image(root / subset / file_name, image)
        images.append({"id": image_id, "file_name": file_name, "width": size[0], "height": size[1]})
        for person in people:
            keypoints = []
            for name in points:
                v = person["visibility"][name]
                x, y = person["points"][name] if v else (0.0, 0.0)
                keypoints += [round(x, 2), round(y, 2), v]
            num_keypoints = sum(1 for name in points if person["visibility"][name])
            if num_keypoints == 0:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [round(v, 2) for v in person["bbox"]],
                    "area": person["area"],
                    "num_keypoints": num_keypoints,
                    "keypoints": keypoints,
                }
            )
    categories = [category]
    write_json(
        root / "annotations" / f"person_keypoints_{subset}.json",
        {
            "info": {"description": "posecore synthetic people", "version": SYNTHETIC_VERSION},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        },
    )
    return len(annotations)


def _write_mpii_split(root: Path, split: str, scenes) -> int:
    info = keypoint_info("mpii")
    (root / "images").mkdir(parents=True, exist_ok=True)
    first = 1 if split == "train" else 500_000_001
    entries, heads = [], []
    for i, (image, people) in enumerate(scenes):
        name = f"{first + i:09d}.jpg"
        _write_image(root / "images" / name, image)
        for person in people:
            labelled = [person["visibility"][j] > 0 for j in info.joint_names]
            if sum(labelled) < 4:
                continue
            # MATLAB 1-based pixels; MPII writes -1 for joints it has no position for
            joints = [
                [round(person["points"][j][0] + 1, 2), round(person["points"][j][1] + 1, 2)] if ok else [-1.0, -1.0]
                for j, ok in zip(info.joint_names, labelled)
            ]
            x, y, w, h = person["bbox"]
            scale = max(w, h) / MPII_PIXEL_STD
            # the loaders move the centre down by 15 px per unit scale: store it that much higher
            center = [x + w * 0.5 + 1, y + h * 0.5 - 15 * scale + 1]
            entries.append(
                {
                    "image": name,
                    "center": [round(c, 2) for c in center],
                    "scale": round(scale, 4),
                    "joints": joints,
                    "joints_vis": [int(v) for v in labelled],
                }
            )
            heads.append([[c + 1 for c in person["head_box"][:2]], [c + 1 for c in person["head_box"][2:]]])
    write_json(root / "annotations" / f"mpii_{split}.json", entries)
    if split == "val":
        num_joints = info.num_joints
        joints = np.array([e["joints"] for e in entries], dtype=np.float64).reshape(-1, num_joints, 2)
        visible = np.array([e["joints_vis"] for e in entries], dtype=np.float64).reshape(-1, num_joints)
        save_mpii_gt(
            root / "annotations" / "mpii_gt_val.mat",
            joints,
            visible,
            np.array(heads, dtype=np.float64).reshape(-1, 2, 2),
        )
    return len(entries)
