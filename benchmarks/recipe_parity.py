"""How faithful is the recipe: posecore's training pieces against the seeds' own code.

    .venv/bin/python benchmarks/recipe_parity.py --alphapose AP --mmpose MM08 --mmpose1 MM1 --mmcv MMCV

AP is an AlphaPose checkout (master: alphapose/utils/presets/simple_transform.py, utils/transforms.py,
utils/bbox.py, utils/config.py, opt.py; its config loader needs `easydict` on the path), MM08 mmpose
at tag v0.8.0 (datasets/pipelines/top_down_transform.py, core/post_processing/post_transforms.py,
models/losses/mse_loss.py), MM1 mmpose 1.x (models/losses/heatmap_loss.py) and MMCV mmcv v1.1.6
(runner/hooks/lr_updater.py, hook.py), the mmcv mmpose v0.8.0 requires (>= 1.1.1, < 1.2). Only those
files are loaded, with the package imports around them stubbed (AlphaPose's RoI-align extension, the
registries, torchvision's to_tensor): nothing is built or installed. CI cannot fetch them; the tests
pin what this verified. Data: ../shared/samples (COCO train people, MPII people).

For each piece it prints the difference:
- crops and targets for given Augments (scale, rotation, flip, DPG-moved box) against AlphaPose's
  SimpleTransform.__call__ (FastPose, COCO) and mmpose v0.8.0's TopDownRandomFlip ->
  TopDownGetRandomScaleRotation -> TopDownAffine -> TopDownGenerateTarget (Hourglass, MPII), their
  random draws replaced by the Augment's values;
- the draws' distributions: two-sample KS tests over 10,000 draws (scale, rotation, DPG's box edges
  and patch size) and the flip / rotation / patch rates;
- the LR of every optimizer step of the 200-epoch FastPose run (AlphaPose's opt.py + train.py loop
  with torch's MultiStepLR) and of the 210-epoch Hourglass run (mmcv's StepLrUpdaterHook with 500
  linear warm-up iterations);
- the loss on the same tensors (AlphaPose's 0.5 * MSELoss of masked heatmaps, mmpose v0.8.0's
  JointsMSELoss summed over stacks, mmpose 1.x's KeypointMSELoss);
- 20 optimizer steps from the same weights on the same batches: posecore.train against the seed's
  loss + optimizer + scheduler loop, beside the float noise floor (the seed loop at 1 and 2 threads).
Exits non-zero past the acceptance tolerances.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import sys
import tempfile
import types
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import stats
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from posecore import data, optim  # noqa: E402
from posecore.checkpoints import load_model  # noqa: E402
from posecore.data import Augment  # noqa: E402
from posecore.data.dataset import dpg_jitter  # noqa: E402
from posecore.params import load_params  # noqa: E402
from posecore.runs import Run  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
DRAWS = 10_000
COCO_TRAIN_PEOPLE = 149_813  # COCO train2017 people posecore (and AlphaPose) train on
MPII_TRAIN_PEOPLE = 22_246  # mmpose's mpii_train.json


# --------------------------------------------------------------------------- loading upstream files


def _package(name: str, path: Path | None = None) -> types.ModuleType:
    module = sys.modules.get(name) or types.ModuleType(name)
    module.__path__ = [str(path)] if path else []
    sys.modules[name] = module
    return module


def _load(name: str, file: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Registry:
    """Stands in for the seeds' registries: register_module is a pass-through decorator."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def register_module(self, *args, **kwargs):
        if args and isinstance(args[0], type):
            return args[0]
        return lambda cls: cls


def load_alphapose(root: Path) -> types.SimpleNamespace:
    _package("alphapose", root / "alphapose")
    _package("alphapose.utils", root / "alphapose" / "utils")
    _package("alphapose.utils.presets", root / "alphapose" / "utils" / "presets")
    roi = types.ModuleType("alphapose.utils.roi_align")  # a compiled extension, unused by training
    roi.RoIAlign = lambda *args, **kwargs: None
    sys.modules["alphapose.utils.roi_align"] = roi
    transforms = _load("alphapose.utils.transforms", root / "alphapose/utils/transforms.py")
    bbox = _load("alphapose.utils.bbox", root / "alphapose/utils/bbox.py")
    simple = _load("alphapose.utils.presets.simple_transform", root / "alphapose/utils/presets/simple_transform.py")
    config = _load("alphapose.utils.config", root / "alphapose/utils/config.py")
    return types.SimpleNamespace(root=root, transforms=transforms, bbox=bbox, simple=simple, config=config)


def load_mmpose08(root: Path) -> types.SimpleNamespace:
    for name, sub in (
        ("mmpose", ""),
        ("mmpose.core", "core"),
        ("mmpose.datasets", "datasets"),
        ("mmpose.datasets.pipelines", "datasets/pipelines"),
        ("mmpose.models", "models"),
        ("mmpose.models.losses", "models/losses"),
    ):
        _package(name, root / "mmpose" / sub)
    post = _load("mmpose.core.post_processing", root / "mmpose/core/post_processing/post_transforms.py")
    for name in ("mmpose.datasets.registry", "mmpose.models.registry"):
        module = types.ModuleType(name)
        module.PIPELINES = module.LOSSES = _Registry()
        sys.modules[name] = module
    pipeline = _load(
        "mmpose.datasets.pipelines.top_down_transform", root / "mmpose/datasets/pipelines/top_down_transform.py"
    )
    losses = _load("mmpose.models.losses.mse_loss", root / "mmpose/models/losses/mse_loss.py")
    return types.SimpleNamespace(post=post, pipeline=pipeline, losses=losses)


def load_mmpose1_loss(root: Path):
    registry = types.ModuleType("mmpose1_registry")
    registry.MODELS = _Registry()
    source = (root / "mmpose/models/losses/heatmap_loss.py").read_text()
    module = types.ModuleType("mmpose1_heatmap_loss")
    sys.modules["mmpose.registry"] = registry
    exec(compile(source, str(root / "mmpose/models/losses/heatmap_loss.py"), "exec"), module.__dict__)  # noqa: S102
    return module.KeypointMSELoss


def load_mmcv_lr(root: Path):
    _package("mmcv", root / "mmcv")
    utils = types.ModuleType("mmcv.utils")
    utils.Registry = _Registry
    sys.modules["mmcv.utils"] = utils
    _package("mmcv.runner", root / "mmcv/runner")
    _package("mmcv.runner.hooks", root / "mmcv/runner/hooks")
    _load("mmcv.runner.hooks.hook", root / "mmcv/runner/hooks/hook.py")
    return _load("mmcv.runner.hooks.lr_updater", root / "mmcv/runner/hooks/lr_updater.py")


class _Scripted:
    """A stand-in for `np` / `random` inside an upstream module: the random calls it makes return
    the given values in order (so the seed's own code runs with the Augment's parameters); every
    other attribute is the real module's."""

    def __init__(self, real, **queues) -> None:
        self._real, self._queues = real, {name: list(values) for name, values in queues.items()}
        if hasattr(real, "random") and not callable(real.random):  # numpy: np.random.<fn>
            self.random = _Scripted(real.random, **queues)

    def __getattr__(self, name):
        if name in self._queues:
            return lambda *args, **kwargs: self._queues[name].pop(0)
        return getattr(self._real, name)


@contextlib.contextmanager
def _patched(module, **names):
    before = {name: getattr(module, name) for name in names}
    for name, value in names.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(module, name, value)


# --------------------------------------------------------------------------- crops and targets


def _augments(count: int, rng: np.random.Generator, sf: float, rf: float, dpg: bool) -> list[dict]:
    """Seeded augmentation parameters within the seeds' clip ranges."""
    chosen = []
    for _ in range(count):
        rotation = float(np.clip(rng.normal(0, rf), -2 * rf, 2 * rf)) if rng.random() < 0.6 else 0.0
        chosen.append(
            {
                "scale": float(np.clip(rng.normal(1, sf), 1 - sf, 1 + sf)),
                "rotation": rotation,
                "flip": bool(rng.random() < 0.5),
                "dpg": dpg and bool(rng.random() < 0.5),
            }
        )
    return chosen


def _alphapose_labels(ap, ann_file: Path) -> list[dict]:
    """AlphaPose's Mscoco labels (mscoco.py _check_load_keypoints's filters and its bbox helpers)
    in posecore's person order: images by id, annotations in file order."""
    coco = json.loads(ann_file.read_text())
    images = {image["id"]: image for image in coco["images"]}
    by_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    labels = []
    for image_id in sorted(images):
        image = images[image_id]
        for obj in by_image.get(image_id, []):
            if obj.get("iscrowd", 0) or max(obj["keypoints"]) == 0:
                continue
            xmin, ymin, xmax, ymax = ap.bbox.bbox_clip_xyxy(
                ap.bbox.bbox_xywh_to_xyxy(obj["bbox"]), image["width"], image["height"]
            )
            if obj["area"] <= 0 or xmax <= xmin or ymax <= ymin or obj["num_keypoints"] == 0:
                continue
            joints = np.zeros((17, 3, 2), np.float32)
            keypoints = np.asarray(obj["keypoints"], np.float32).reshape(17, 3)
            joints[:, 0, 0], joints[:, 1, 0] = keypoints[:, 0], keypoints[:, 1]
            joints[:, :2, 1] = np.minimum(1, keypoints[:, 2:3])
            if joints[:, 0, 1].sum() < 1:
                continue
            labels.append(
                {
                    "bbox": (xmin, ymin, xmax, ymax),
                    "width": image["width"],
                    "height": image["height"],
                    "joints_3d": joints,
                    "image_id": image_id,
                }
            )
    return labels


class _CocoDatasetInfo:
    joint_pairs = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
    num_joints_half_body = 8
    prob_half_body = -1
    upper_body_ids = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
    lower_body_ids = (11, 12, 13, 14, 15, 16)


def crops_fastpose(ap, coco_root: Path, people: int, seed: int) -> dict:
    params = load_params("fastpose", {"data.root": str(coco_root), "data.workers": 0})
    dataset = data.build_dataset(params, "train")
    labels = _alphapose_labels(ap, coco_root / "annotations/person_keypoints_train2017.json")
    assert len(labels) == len(dataset), (len(labels), len(dataset))
    for index, label in enumerate(labels):  # the same people with the same boxes
        instance = dataset.instances[index]
        assert instance.image_id == label["image_id"]
        np.testing.assert_allclose(instance.bbox_xyxy, label["bbox"], atol=1e-4)
    transform = ap.simple.SimpleTransform(
        _CocoDatasetInfo(),
        scale_factor=0.3,
        add_dpg=True,
        input_size=(256, 192),
        output_size=(64, 48),
        rot=40,
        sigma=2,
        train=True,
        loss_type="MSELoss",
    )
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(dataset), size=people, replace=len(dataset) < people)
    rows = []
    for index, draw in zip(chosen, _augments(people, rng, 0.3, 40, dpg=True)):
        label = labels[index]
        box = None
        if draw["dpg"]:
            box = dpg_jitter(label["bbox"], (label["width"], label["height"]), rng)
        augment = Augment(box_xyxy=box, scale=draw["scale"], rotation=draw["rotation"], flip=draw["flip"])
        ours = dataset.sample(int(index), augment)
        # AlphaPose: addDPG returns the given box; randn -> scale, random() -> rotation / flip decisions
        randn = [(draw["scale"] - 1) / 0.3] + ([draw["rotation"] / 40] if draw["rotation"] else [])
        uniform = [0.0 if draw["rotation"] else 0.9, 0.9 if draw["flip"] else 0.1]
        src = cv2.cvtColor(cv2.imread(dataset.image_path(int(index))), cv2.COLOR_BGR2RGB)
        fake_np = _Scripted(np, randn=randn, rand=[0.5] * 2)
        fake_random = _Scripted(random, random=uniform)
        with _patched(
            ap.simple,
            np=fake_np,
            random=fake_random,
            addDPG=lambda bbox, w, h, box=box: list(box) if box is not None else bbox,
        ):
            transform._add_dpg = box is not None
            theirs = transform(
                src, {key: (value.copy() if isinstance(value, np.ndarray) else value) for key, value in label.items()}
            )
        assert not fake_np.random._queues["randn"] and not fake_random._queues["random"], "draws left over"
        image_diff = (ours["image"] - theirs[0]).abs().numpy() * 255.0  # std 1: grey levels
        rows.append(
            {
                "index": int(index),
                "grey_mean": float(image_diff.mean()),
                "grey_max": float(image_diff.max()),
                "target_max": float((ours["target"] - theirs[1]).abs().max()),
                "weights_equal": bool(torch.equal(ours["target_weight"], theirs[2].reshape(-1))),
                "augment": augment,
            }
        )
    return _crop_summary("FastPose / COCO vs AlphaPose SimpleTransform", rows)


def _mpii_db(entry: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mmpose v0.8.0 TopDownMpiiDataset._get_db for one json entry: centre moved down 15 * scale,
    scale x 1.25, both made 0-based (center - 1, joints - 1); scale in 200-pixel units."""
    center = np.array(entry["center"], dtype=np.float64)
    scale = np.array([entry["scale"], entry["scale"]], dtype=np.float64)
    if center[0] != -1:
        center[1] = center[1] + 15 * scale[1]
        scale = scale * 1.25
    center = center - 1
    joints = np.zeros((16, 3), np.float32)
    visible = np.zeros((16, 3), np.float32)
    joints[:, :2] = np.array(entry["joints"])[:, :2] - 1
    visible[:, :2] = np.array(entry["joints_vis"])[:, None]
    return center, scale, joints, visible


def crops_hourglass(mm, mpii_root: Path, people: int, seed: int) -> dict:
    # the samples hold MPII's val split only; sample() crops any split alike for a given Augment
    params = load_params("hourglass", {"data.root": str(mpii_root), "data.workers": 0})
    dataset = data.build_dataset(params, "val")
    entries = json.loads((mpii_root / "annotations/mpii_val.json").read_text())
    assert len(entries) == len(dataset), "MPII people differ"
    ann_info = {
        "image_size": np.array([384, 384]),
        "heatmap_size": np.array([96, 96]),
        "num_joints": 16,
        "flip_pairs": [[0, 5], [1, 4], [2, 3], [10, 15], [11, 14], [12, 13]],
        "joint_weights": np.ones((16, 1), np.float32),
        "use_different_joint_weights": False,
    }
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(dataset), size=people, replace=len(dataset) < people)
    rows = []
    for index, draw in zip(chosen, _augments(people, rng, 0.5, 40, dpg=False)):
        augment = Augment(scale=draw["scale"], rotation=draw["rotation"], flip=draw["flip"])
        ours = dataset.sample(int(index), augment)
        center, scale, joints, visible = _mpii_db(entries[int(index)])
        np.testing.assert_allclose(dataset.instances[int(index)].bbox_center, center, atol=1e-3)
        src = cv2.cvtColor(cv2.imread(dataset.image_path(int(index))), cv2.COLOR_BGR2RGB)  # mmcv imread 'rgb'
        results = {
            "img": src,
            "joints_3d": joints,
            "joints_3d_visible": visible,
            "center": center,
            "scale": scale,
            "rotation": 0,
            "ann_info": ann_info,
        }
        rand = [0.0 if draw["flip"] else 1.0, 0.0 if draw["rotation"] else 1.0]
        randn = [(draw["scale"] - 1) / 0.5, draw["rotation"] / 40]
        fake_np = _Scripted(np, rand=rand, randn=randn)
        with _patched(mm.pipeline, np=fake_np):
            results = mm.pipeline.TopDownRandomFlip(flip_prob=0.5)(results)
            results = mm.pipeline.TopDownGetRandomScaleRotation(rot_factor=40, scale_factor=0.5)(results)
        results = mm.pipeline.TopDownAffine()(results)
        # ToTensor (torchvision's to_tensor: HWC uint8 -> CHW / 255) + NormalizeTensor
        image = torch.from_numpy(np.ascontiguousarray(results["img"]).transpose(2, 0, 1)).float() / 255.0
        image = (image - torch.tensor(mean).float()[:, None, None]) / torch.tensor(std).float()[:, None, None]
        results = mm.pipeline.TopDownGenerateTarget(sigma=2)(results)
        grey = (ours["image"] - image).abs().numpy() * (std[:, None, None] * 255.0)
        rows.append(
            {
                "index": int(index),
                "grey_mean": float(grey.mean()),
                "grey_max": float(grey.max()),
                "target_max": float((ours["target"] - torch.from_numpy(results["target"])).abs().max()),
                "weights_equal": bool(
                    np.array_equal(ours["target_weight"].numpy(), results["target_weight"].reshape(-1))
                ),
                "augment": augment,
            }
        )
    return _crop_summary("Hourglass / MPII vs mmpose v0.8.0 pipeline", rows)


def _crop_summary(title: str, rows: list[dict]) -> dict:
    per_person = [row["grey_mean"] for row in rows]
    summary = {
        "title": title,
        "people": len(rows),
        "grey_mean": float(np.mean(per_person)),
        "grey_worst_person": float(np.max(per_person)),
        "target_max": float(max(row["target_max"] for row in rows)),
        "weights_equal": all(row["weights_equal"] for row in rows),
    }
    print(
        f"{title}: {len(rows)} people; crop |diff| mean {summary['grey_mean']:.4f} grey levels "
        f"(worst person {summary['grey_worst_person']:.4f}); target max |diff| {summary['target_max']:.2e}; "
        f"target weights equal: {summary['weights_equal']}"
    )
    worst = max(rows, key=lambda row: row["grey_mean"])
    print(f"  worst person {worst['index']}: {worst['augment']}")
    return summary


# --------------------------------------------------------------------------- draw distributions


def draws(ap, mm, coco_root: Path, seed: int) -> dict:
    params = load_params("fastpose", {"data.root": str(coco_root), "data.workers": 0, "train.dpg_epoch": 0})
    dataset = data.build_dataset(params, "train")
    dataset.set_epoch(1)  # after the DPG epoch: box jitter on
    person = next(i for i in range(len(dataset)) if dataset.instances[i].visible.sum() <= 8)  # no half-body draw
    instance = dataset.instances[person]
    x0, y0, x1, y1 = (float(v) for v in instance.bbox_xyxy)
    width, height = instance.image_size
    ours = {"scale": [], "rotation": [], "flip": [], "dpg": []}
    for draw in range(DRAWS):
        dataset.seed = seed + draw  # independent draws for one person
        augment = dataset.draw_augment(person)
        ours["scale"].append(augment.scale)
        ours["rotation"].append(augment.rotation)
        ours["flip"].append(augment.flip)
        ours["dpg"].append(augment.box_xyxy)
    # AlphaPose: addDPG itself, and SimpleTransform's scale / rotation / flip draws, seen through
    # get_affine_transform's arguments and flip_joints_3d's calls
    random.seed(seed)
    np.random.seed(seed)
    theirs = {"scale": [], "rotation": [], "flip": [], "dpg": []}
    for _ in range(DRAWS):
        theirs["dpg"].append(tuple(ap.transforms.addDPG([x0, y0, x1, y1], width, height)))
    transform = ap.simple.SimpleTransform(
        _CocoDatasetInfo(),
        scale_factor=0.3,
        add_dpg=False,
        input_size=(256, 192),
        output_size=(64, 48),
        rot=40,
        sigma=2,
        train=True,
        loss_type="MSELoss",
    )
    base = ap.bbox._box_to_center_scale(x0, y0, x1 - x0, y1 - y0, 192 / 256)[1]
    flipped = []

    def affine(center, scale, rot, output_size, *args, **kwargs):
        theirs["scale"].append(float(scale[0] / base[0]))
        theirs["rotation"].append(float(rot))
        return real_affine(center, scale, rot, output_size, *args, **kwargs)

    def flip_joints(*args):
        flipped.append(True)
        return real_flip(*args)

    real_affine, real_flip = ap.simple.get_affine_transform, ap.simple.flip_joints_3d
    tiny = np.zeros((int(height), int(width), 3), np.uint8)
    joints = np.zeros((17, 3, 2), np.float32)
    with _patched(ap.simple, get_affine_transform=affine, flip_joints_3d=flip_joints):
        for _ in range(DRAWS):
            before = len(flipped)
            transform(tiny, {"bbox": [x0, y0, x1, y1], "joints_3d": joints.copy(), "width": width, "height": height})
            theirs["flip"].append(len(flipped) > before)
    results = {}
    results.update(_ks("FastPose scale", ours["scale"], theirs["scale"]))
    results.update(_ks("FastPose rotation", ours["rotation"], theirs["rotation"]))
    results.update(_rate("FastPose flip", ours["flip"], theirs["flip"]))
    results.update(_rate("FastPose rotated", np.array(ours["rotation"]) != 0, np.array(theirs["rotation"]) != 0))
    ours_box, theirs_box = np.array(ours["dpg"]), np.array(theirs["dpg"])
    box_size = np.array([x1 - x0, y1 - y0, x1 - x0, y1 - y0])
    for edge, name in enumerate(("x0", "y0", "x1", "y1")):
        results.update(
            _ks(
                f"DPG {name} offset",
                (ours_box[:, edge] - [x0, y0, x1, y1][edge]) / box_size[edge],
                (theirs_box[:, edge] - [x0, y0, x1, y1][edge]) / box_size[edge],
            )
        )
    patch = lambda boxes: (boxes[:, 2] - boxes[:, 0]) / (x1 - x0)  # noqa: E731
    results.update(_ks("DPG box width ratio", patch(ours_box), patch(theirs_box)))
    # mmpose v0.8.0 (Hourglass): TopDownGetRandomScaleRotation and TopDownRandomFlip themselves
    hourglass = load_params("hourglass", {"data.root": str(SAMPLES / "mpii"), "data.workers": 0})
    mpii = data.build_dataset(hourglass, "val")
    ours_h = {"scale": [], "rotation": [], "flip": []}
    for draw in range(DRAWS):
        mpii.seed = seed + draw
        augment = mpii.draw_augment(0)
        ours_h["scale"].append(augment.scale)
        ours_h["rotation"].append(augment.rotation)
        ours_h["flip"].append(augment.flip)
    np.random.seed(seed)
    scale_rotation = mm.pipeline.TopDownGetRandomScaleRotation(rot_factor=40, scale_factor=0.5)
    flip = mm.pipeline.TopDownRandomFlip(flip_prob=0.5)
    theirs_h = {"scale": [], "rotation": [], "flip": []}
    info = {"flip_pairs": [[0, 5]]}
    for _ in range(DRAWS):
        center = np.array([10.0, 10.0])
        out = flip(
            {
                "img": np.zeros((4, 40, 3), np.uint8),
                "joints_3d": np.zeros((16, 3)),
                "joints_3d_visible": np.zeros((16, 3)),
                "center": center,
                "ann_info": info,
            }
        )
        theirs_h["flip"].append(out["center"][0] != 10.0)
        out = scale_rotation({"scale": np.array([1.0, 1.0])})
        theirs_h["scale"].append(float(out["scale"][0]))
        theirs_h["rotation"].append(float(out["rotation"]))
    results.update(_ks("Hourglass scale", ours_h["scale"], theirs_h["scale"]))
    results.update(_ks("Hourglass rotation", ours_h["rotation"], theirs_h["rotation"]))
    results.update(_rate("Hourglass flip", ours_h["flip"], theirs_h["flip"]))
    return results


def _ks(name: str, ours, theirs) -> dict:
    # both in float32: AlphaPose's scale is float32, and the clip's point masses at 1 +- factor
    # must fall on the same value
    result = stats.ks_2samp(np.asarray(ours, np.float32), np.asarray(theirs, np.float32))
    print(f"  {name:24s} KS D {result.statistic:.4f}, p {result.pvalue:.3g} ({len(ours)} vs {len(theirs)} draws)")
    return {name: float(result.pvalue)}


def _rate(name: str, ours, theirs) -> dict:
    a, b = np.mean(np.asarray(ours, bool)), np.mean(np.asarray(theirs, bool))
    pooled = (a + b) / 2
    z = (a - b) / np.sqrt(max(pooled * (1 - pooled), 1e-12) * 2 / len(ours))
    p = float(2 * stats.norm.sf(abs(z)))
    print(f"  {name:24s} rate {a:.4f} vs {b:.4f}, two-proportion p {p:.3g}")
    return {name: p}


# --------------------------------------------------------------------------- schedules


def alphapose_schedule(ap, steps_per_epoch: int) -> tuple[np.ndarray, object]:
    """The LR of every step of AlphaPose's scripts/train.py loop on the seed config: alphapose/opt.py
    loads the config (update_config) and rewrites DPG_STEP as offsets from DPG_MILESTONE; train.py
    steps MultiStepLR(LR_STEP, LR_FACTOR) after each epoch and, after epoch DPG_MILESTONE, resets
    the LR and starts MultiStepLR(DPG_STEP, gamma=0.1)."""
    config_file = ap.root / "configs/coco/resnet/256x192_res50_lr1e-3_1x.yaml"
    with (
        tempfile.TemporaryDirectory() as folder,
        contextlib.chdir(folder),
        _patched(sys, argv=["train.py", "--cfg", str(config_file)]),
        _patched(torch.cuda, device_count=lambda: 1),
    ):
        opt = _load("alphapose.opt", ap.root / "alphapose/opt.py")
        for handler in list(opt.logger.handlers):
            opt.logger.removeHandler(handler)
            handler.close()
    cfg = opt.cfg
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=cfg.TRAIN.LR)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.TRAIN.LR_STEP, gamma=cfg.TRAIN.LR_FACTOR)
    lrs = []
    for epoch in range(cfg.TRAIN.BEGIN_EPOCH, cfg.TRAIN.END_EPOCH):
        lrs += [optimizer.param_groups[0]["lr"]] * steps_per_epoch
        optimizer.step()
        scheduler.step()
        if epoch == cfg.TRAIN.DPG_MILESTONE:
            for group in optimizer.param_groups:
                group["lr"] = cfg.TRAIN.LR
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.TRAIN.DPG_STEP, gamma=0.1)
    return np.array(lrs), cfg


def mmcv_schedule(lr_updater, steps_per_epoch: int, epochs: int = 210) -> np.ndarray:
    """mmcv's StepLrUpdaterHook as mmpose v0.8.0's Hourglass config builds it (policy step, step
    [170, 200], linear warm-up over 500 iterations from 0.001), driven by a runner's hook calls."""
    hook = lr_updater.StepLrUpdaterHook(step=[170, 200], warmup="linear", warmup_iters=500, warmup_ratio=0.001)
    runner = types.SimpleNamespace(
        optimizer=torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=5e-4),
        epoch=0,
        iter=0,
        data_loader=range(steps_per_epoch),
    )
    hook.before_run(runner)
    lrs = []
    for epoch in range(epochs):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        for _ in range(steps_per_epoch):
            hook.before_train_iter(runner)
            lrs.append(runner.optimizer.param_groups[0]["lr"])
            runner.iter += 1
    return np.array(lrs)


def schedules(ap, lr_updater) -> dict:
    results = {}
    coco_steps = data.steps_per_epoch(COCO_TRAIN_PEOPLE, 32, 8)
    theirs, cfg = alphapose_schedule(ap, coco_steps)
    ours = optim.schedule(load_params("fastpose").train, coco_steps)
    results["fastpose_lr_max_rel"] = _compare_lrs(
        f"FastPose LR, {len(ours)} steps ({coco_steps}/epoch; opt.py's DPG_STEP {list(cfg.TRAIN.DPG_STEP)})",
        ours,
        theirs,
    )
    mpii_steps = data.steps_per_epoch(MPII_TRAIN_PEOPLE, 32, 8)
    theirs = mmcv_schedule(lr_updater, mpii_steps)
    ours = optim.schedule(load_params("hourglass").train, mpii_steps)
    results["hourglass_lr_max_rel"] = _compare_lrs(
        f"Hourglass LR, {len(ours)} steps ({mpii_steps}/epoch)", ours, theirs
    )
    return results


def _compare_lrs(name: str, ours: np.ndarray, theirs: np.ndarray) -> float:
    if ours.shape != theirs.shape:
        print(f"{name}: step counts differ {ours.shape} vs {theirs.shape}")
        return float("inf")
    relative = np.abs(ours - theirs) / theirs
    changes = np.flatnonzero(np.diff(theirs) != 0) + 1
    print(
        f"{name}: max relative difference {relative.max():.2e}; the seed's LR changes at steps "
        f"{changes[:3].tolist()}...{changes[-3:].tolist()} ({len(changes)} changes)"
    )
    return float(relative.max())


# --------------------------------------------------------------------------- losses


def losses(mm, keypoint_mse_loss) -> dict:
    generator = torch.Generator().manual_seed(0)
    output = torch.rand(8, 17, 64, 48, generator=generator)
    target = torch.rand(8, 17, 64, 48, generator=generator)
    weight = (torch.rand(8, 17, generator=generator) > 0.3).float()
    weighted = weight * torch.rand(8, 17, generator=generator) * 2  # joint weights beside 0/1
    results = {}
    # AlphaPose scripts/train.py: criterion = nn.MSELoss() (models/criterion.py registers it);
    # loss = 0.5 * criterion(output.mul(label_masks), labels.mul(label_masks)), masks [N, K, 1, 1]
    masks = weight[:, :, None, None]
    theirs = 0.5 * nn.MSELoss()(output.mul(masks), target.mul(masks))
    ours = optim.build_loss(load_params("fastpose"))(output, target, weight)
    results["fastpose"] = _compare_loss("FastPose (AlphaPose 0.5 * MSELoss)", ours, theirs)
    # mmpose v0.8.0: TopDown.forward_train adds JointsMSELoss(use_target_weight=True) over the stages
    criterion = mm.losses.JointsMSELoss(use_target_weight=True)
    stacks = [output, torch.rand(8, 17, 64, 48, generator=generator)]
    for name, weights in (("0/1 weights", weight), ("joint weights", weighted)):
        theirs = sum(criterion(stack, target, weights[:, :, None]) for stack in stacks)
        ours = optim.build_loss(load_params("hourglass", {"model.num_stacks": 2}))(stacks, target, weights)
        results[f"hourglass {name}"] = _compare_loss(
            f"Hourglass, 2 stacks, {name} (mmpose v0.8.0 JointsMSELoss)", ours, theirs
        )
    criterion = keypoint_mse_loss(use_target_weight=True)
    for name, weights in (("0/1 weights", weight), ("joint weights", weighted)):
        theirs = criterion(output, target, weights)
        ours = optim.build_loss(load_params("hrnet"))(output, target, weights)
        results[f"hrnet {name}"] = _compare_loss(
            f"HRNet / SimpleBaseline, {name} (mmpose 1.x KeypointMSELoss)", ours, theirs
        )
    return results


def _compare_loss(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> float:
    difference = abs(float(ours) - float(theirs))
    print(f"{name}: posecore {float(ours):.8f}, seed {float(theirs):.8f}, |diff| {difference:.2e}")
    return difference


# --------------------------------------------------------------------------- 20 optimizer steps


def _seed_loop(
    model: nn.Module, batches: list[dict], lr: float, lr_steps: list[int], steps_per_epoch: int, threads: int
) -> tuple[list[float], dict]:
    """AlphaPose's train() + main loop on the given batches: Adam(LR), loss = 0.5 * MSELoss of
    masked heatmaps, zero_grad / backward / step per batch, MultiStepLR stepped per epoch."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=lr_steps, gamma=0.1)
        criterion = nn.MSELoss()
        model.train()
        per_step = []
        for step, batch in enumerate(batches):
            masks = batch["target_weight"][:, :, None, None]
            output = model(batch["image"])
            loss = 0.5 * criterion(output.mul(masks), batch["target"].mul(masks))
            per_step.append(loss.item())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if (step + 1) % steps_per_epoch == 0:
                scheduler.step()
        return per_step, {k: v.detach().clone() for k, v in model.state_dict().items()}
    finally:
        torch.set_num_threads(before)


def training_steps(coco_root: Path, steps: int = 20) -> dict:
    overrides = {
        "data.root": str(coco_root),
        "data.workers": 0,
        "model.depth": 18,
        "data.input_size": [64, 96],
        "data.heatmap_size": [16, 24],
        "train.batch_size": 8,
        "train.global_batch": 0,
        "train.lr": 1e-3,
        "train.val_every": 0,
        "train.log_every": 1,
        "train.deterministic": True,
        "dist.threads": 1,
    }
    params = load_params("fastpose", overrides)
    dataset = data.build_dataset(params, "train")
    steps_per_epoch = data.steps_per_epoch(len(dataset), 8)
    epochs = -(-steps // steps_per_epoch)
    lr_steps = [1]  # one decay inside the run, as MultiStepLR steps it
    with tempfile.TemporaryDirectory() as folder, _patched(os, environ={**os.environ, "POSECORE_OUTPUTS": folder}):
        torch.manual_seed(0)
        initial = load_model(params)[0]
        start = Path(folder) / "initial.pt"
        torch.save(initial.state_dict(), start)
        params = load_params(
            params, {"model.init_checkpoint": str(start), "train.epochs": epochs, "train.lr_steps": lr_steps}
        )
        import posecore

        result = posecore.train(params, run_name="recipe-parity")
        run = Run("recipe-parity")
        ours_losses = [r["loss"] for r in run.log() if r.get("type") == "train"]
        ours_state = torch.load(run.last_path, map_location="cpu", weights_only=False)["model"]
        # the same batches: posecore's epoch order and augmentation, read back through the dataset
        batches = []
        for epoch in range(epochs):
            dataset.set_epoch(epoch)
            order, total = data.step_order(
                dataset.image_groups(), params.train.seed, epoch, 8, group_by_image=params.data.group_by_image
            )
            for step in range(total):
                items = [dataset[i] for i in order[step * 8 : (step + 1) * 8]]
                batches.append(
                    {key: torch.stack([item[key] for item in items]) for key in ("image", "target", "target_weight")}
                )
        runs = {}
        for threads in (1, 2):
            model = load_model(params)[0]
            runs[threads] = _seed_loop(model, batches, 1e-3, lr_steps, steps_per_epoch, threads)
    seed_losses, seed_state = runs[1]
    weights = [name for name, _ in initial.named_parameters()]  # trained weights, not BN statistics

    def largest(state: dict) -> float:
        return max(float((state[name] - seed_state[name]).abs().max()) for name in weights)

    weight_diff, floor = largest(ours_state), largest(runs[2][1])
    loss_diff = float(np.max(np.abs(np.array(ours_losses) - np.array(seed_losses))))
    loss_floor = float(np.max(np.abs(np.array(runs[2][0]) - np.array(seed_losses))))
    print(
        f"{result['steps']} optimizer steps (FastPose-18, {steps_per_epoch} per epoch, LR decay after epoch 1): "
        f"per-step loss max |diff| {loss_diff:.2e}, weights max |diff| {weight_diff:.2e}; the float noise floor "
        f"(the seed loop at 1 vs 2 threads): loss {loss_floor:.2e}, weights {floor:.2e}"
    )
    return {"loss_diff": loss_diff, "weight_diff": weight_diff, "noise_floor": floor}


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alphapose", type=Path, required=True)
    parser.add_argument("--mmpose", type=Path, required=True, help="mmpose at v0.8.0")
    parser.add_argument("--mmpose1", type=Path, required=True, help="mmpose 1.x")
    parser.add_argument("--mmcv", type=Path, required=True, help="mmcv at v1.1.6")
    parser.add_argument("--samples", type=Path, default=SAMPLES)
    parser.add_argument("--people", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-steps", action="store_true", help="leave out the 20 training steps")
    args = parser.parse_args()
    ap, mm = load_alphapose(args.alphapose), load_mmpose08(args.mmpose)
    keypoint_mse_loss, lr_updater = load_mmpose1_loss(args.mmpose1), load_mmcv_lr(args.mmcv)
    failures = []
    print("== crops and targets for given Augments")
    for summary in (
        crops_fastpose(ap, args.samples / "coco", args.people, args.seed),
        crops_hourglass(mm, args.samples / "mpii", args.people, args.seed),
    ):
        if (
            summary["grey_mean"] > 0.5
            or summary["grey_worst_person"] > 1.5
            or summary["target_max"] > 1e-5
            or not summary["weights_equal"]
        ):
            failures.append(summary["title"])
    print(f"== draw distributions ({DRAWS} draws each)")
    failures += [name for name, p in draws(ap, mm, args.samples / "coco", args.seed).items() if p <= 1e-3]
    print("== learning rate of every optimizer step")
    failures += [name for name, rel in schedules(ap, lr_updater).items() if rel > 1e-12]
    print("== the loss on the same tensors")
    failures += [name for name, diff in losses(mm, keypoint_mse_loss).items() if diff > 1e-5]
    if not args.skip_steps:
        print("== 20 optimizer steps from the same weights on the same batches")
        steps = training_steps(args.samples / "coco")
        if steps["weight_diff"] > max(10 * steps["noise_floor"], 1e-6):
            failures.append("training steps")
    print("FAILED: " + ", ".join(failures) if failures else "all pieces within tolerance")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
