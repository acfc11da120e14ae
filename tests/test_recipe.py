"""The seeds' training recipe, piece by piece: what benchmarks/recipe_parity.py verified against
AlphaPose's and mmpose's own code, pinned here (CI cannot fetch them).

The pinned crops and targets are the outputs of AlphaPose's SimpleTransform.__call__ and mmpose
v0.8.0's TopDownRandomFlip -> TopDownGetRandomScaleRotation -> TopDownAffine ->
TopDownGenerateTarget for the same people and parameters (benchmarks/recipe_parity.py, whose
crops agree with posecore's to 0.0002 grey levels on average over 40 people each).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from posecore import data, optim
from posecore.data import Augment
from posecore.data.dataset import center_scale_to_box, half_body_box
from posecore.geometry import box_to_center_scale
from posecore.params import ParamsError, load_params


@pytest.fixture(scope="module")
def coco_train(coco_root):
    return data.build_dataset(load_params("fastpose", {"data.root": str(coco_root), "data.workers": 0}), "train")


# --- one code path ------------------------------------------------------------------------------


def test_getitem_is_sample_of_the_drawn_augment(coco_root):
    params = load_params(
        "fastpose", {"data.root": str(coco_root), "data.workers": 0, "train.dpg_epoch": 0, "data.half_body_prob": 1.0}
    )
    dataset = data.build_dataset(params, "train")
    dataset.set_epoch(1)  # DPG on, half-body on: every kind of draw
    kinds = set()
    for index in range(0, len(dataset), 7):
        augment = dataset.draw_augment(index)
        item, again = dataset[index], dataset.sample(index, augment)
        for key, value in item.items():
            assert torch.equal(value, again[key]), key
        kinds.update(
            {"box": augment.box_xyxy is not None, "flip": augment.flip, "rotation": augment.rotation != 0}.items()
        )
    assert {("box", True), ("flip", True), ("rotation", True), ("flip", False)} <= kinds


def test_identity_augment_is_the_evaluation_crop(coco_root, coco_train):
    assert Augment() == Augment(box_xyxy=None, scale=1.0, rotation=0.0, flip=False)
    evaluation = data.build_dataset(load_params("fastpose", {"data.root": str(coco_root)}), "val")
    for dataset in (coco_train, evaluation):
        plain = dataset.sample(3)
        assert torch.equal(plain["image"], dataset.sample(3, Augment())["image"])
    assert torch.equal(evaluation[2]["image"], evaluation.sample(2, Augment())["image"])
    # the annotated box given explicitly is the identity too
    box = tuple(float(v) for v in coco_train.instances[3].bbox_xyxy)
    assert torch.allclose(
        coco_train.sample(3, Augment(box_xyxy=box))["image"], coco_train.sample(3)["image"], atol=1e-6
    )


def test_augment_refuses_what_is_not_a_crop():
    for bad, key in (
        ({"scale": 0.0}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"box_xyxy": (10, 10, 5, 20)}, "box_xyxy"),
        ({"rotation": float("inf")}, "rotation"),
    ):
        with pytest.raises(ValueError, match=f"Augment.{key}"):
            Augment(**bad)


def test_half_body_box_gives_back_its_centre_and_scale():
    rng = np.random.default_rng(3)
    joints = rng.uniform(50, 250, size=(17, 2))
    half = half_body_box(joints, np.ones(17), np.arange(17) < 11, 0.75, rng)
    center, scale = box_to_center_scale(_xywh(center_scale_to_box(*half, 1.25)), 0.75, 1.25)
    np.testing.assert_allclose(center, half[0], rtol=1e-6)
    np.testing.assert_allclose(scale, half[1], rtol=1e-6)


def _xywh(box):
    return box[0], box[1], box[2] - box[0], box[3] - box[1]


# --- crops and targets as the seeds make them --------------------------------------------------

# person index: (Augment, image mean, image[0, 100, 50], image[2, 200, 150], heatmap argmax per
# joint, heatmap sum, target weights), from AlphaPose's SimpleTransform on the same person
ALPHAPOSE_CROPS = {
    5: (
        Augment(scale=1.2, rotation=25.0, flip=True),
        0.031559,
        0.146941,
        0.210196,
        [882, 833, 928, 0, 1071, 885, 1172, 742, 1226, 599, 984, 1659, 1754, 1853, 1998, 2143, 2337],
        401.300629,
        [1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    ),
    11: (
        Augment(box_xyxy=(520.0, 80.0, 630.0, 230.0), scale=0.8),
        -0.225831,
        -0.229529,
        -0.468235,
        [1044, 856, 0, 911, 0, 1583, 1512, 2639, 2363, 1570, 2471, 0, 0, 0, 0, 0, 0],
        173.728729,
        [1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0],
    ),
}


@pytest.mark.parametrize("index", sorted(ALPHAPOSE_CROPS))
def test_fastpose_crop_and_target_equal_alphapose(coco_train, index):
    augment, mean, pixel_a, pixel_b, argmax, total, weights = ALPHAPOSE_CROPS[index]
    item = coco_train.sample(index, augment)
    image, target = item["image"], item["target"]
    assert float(image.mean()) == pytest.approx(mean, abs=2e-6)
    assert float(image[0, 100, 50]) == pytest.approx(pixel_a, abs=2e-6)
    assert float(image[2, 200, 150]) == pytest.approx(pixel_b, abs=2e-6)
    assert target.reshape(17, -1).argmax(1).tolist() == argmax
    assert float(target.sum()) == pytest.approx(total, abs=1e-3)
    assert item["target_weight"].int().tolist() == weights


def test_hourglass_crop_and_target_equal_mmpose_080(mpii_root):
    dataset = data.build_dataset(load_params("hourglass", {"data.root": str(mpii_root)}), "val")
    item = dataset.sample(2, Augment(scale=1.3, rotation=-30.0, flip=True))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    grey = (item["image"].numpy() * std[:, None, None] + mean[:, None, None]) * 255
    # mmpose's uint8 crop: mean 80.084113, pixel (300, 200) RGB (170, 154, 138), (100, 50) black
    assert grey.mean() == pytest.approx(80.084113, abs=1e-3)
    np.testing.assert_allclose(grey[:, 300, 200], [170, 154, 138], atol=1e-3)
    np.testing.assert_allclose(grey[:, 100, 50], [0, 0, 0], atol=1e-3)
    assert item["target"].reshape(16, -1).argmax(1).tolist() == [
        0,
        6572,
        5330,
        4747,
        6278,
        0,
        5039,
        3511,
        3416,
        2751,
        4677,
        4478,
        3706,
        3316,
        3703,
        3706,
    ]
    assert float(item["target"].sum()) == pytest.approx(351.138031, abs=1e-3)
    assert item["target_weight"].int().tolist() == [0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]


# --- the draws follow the seeds' distributions --------------------------------------------------


def test_draws_follow_the_seeds_distributions(coco_train):
    """AlphaPose: scale x clip(N(1, sf), 1 - sf, 1 + sf); rotation clip(N(0, rf), +-2 rf) with
    probability 0.6; flip with probability 0.5 (benchmarks/recipe_parity.py: KS p > 0.06 against
    AlphaPose's own draws over 10,000 each)."""
    saved = coco_train.seed
    draws = []
    try:
        for seed in range(2000):
            coco_train.seed = seed
            draws.append(coco_train.draw_augment(0))
    finally:
        coco_train.seed = saved
    scale = np.array([a.scale for a in draws])
    rotation = np.array([a.rotation for a in draws])
    inside = scale[(scale > 0.7) & (scale < 1.3)]
    assert stats.kstest(inside, stats.truncnorm(-1, 1, loc=1, scale=0.3).cdf).pvalue > 1e-3
    clipped = np.mean((scale == 0.7) | (scale == 1.3))
    assert clipped == pytest.approx(2 * stats.norm.sf(1), abs=0.035)
    turned = rotation[rotation != 0]
    assert len(turned) / len(draws) == pytest.approx(0.6, abs=0.035)
    assert stats.kstest(turned[np.abs(turned) < 80], stats.truncnorm(-2, 2, scale=40).cdf).pvalue > 1e-3
    assert np.mean([a.flip for a in draws]) == pytest.approx(0.5, abs=0.035)


def test_dpg_jitter_follows_alphapose(coco_root):
    """addDPG: 15% a sub-patch of the box (uniform scale in (0.85, 1)), else each edge moved by
    N(mu, sigma) x box size, with AlphaPose's fitted (mu, sigma) per edge."""
    rng = np.random.default_rng(0)
    box, size = (100.0, 50.0, 300.0, 450.0), (1000, 1000)
    boxes = np.array([data.dpg_jitter(box, size, rng) for _ in range(4000)])
    widths = boxes[:, 2] - boxes[:, 0]
    patches = np.isclose(boxes[:, 3] - boxes[:, 1], (widths - 1) * 2 + 1)  # a patch keeps the aspect
    assert patches.mean() == pytest.approx(0.15, abs=0.02)
    moved = boxes[~patches]
    for edge, (mu, sigma), extent in zip(
        range(4), ((-0.0142, 0.1158), (0.0043, 0.068), (0.0154, 0.1337), (-0.0013, 0.0711)), (200, 400, 200, 400)
    ):
        offsets = (moved[:, edge] - box[edge]) / extent
        assert stats.kstest(offsets, stats.norm(mu, sigma).cdf).pvalue > 1e-3


# --- the seed params and the schedule ----------------------------------------------------------


def test_seed_params_train_as_the_seeds():
    for name in (
        "fastpose",
        "hourglass",
        "hrnet",
        "simplebaseline",
        "rtmpose",
        "fastpose_duc152_coco",
        "halpe26_fastpose",
        "simplebaseline_coco_wholebody",
    ):
        params = load_params(name)
        assert not params.data.group_by_image and not params.data.reduced_decode, name
    demo = load_params("demo")
    assert demo.data.group_by_image and demo.data.reduced_decode
    assert optim.loss_name(load_params("fastpose")) == "joints_mse"
    assert load_params("fastpose").train.loss_weight == 0.5
    assert (optim.loss_name(load_params("hourglass")), load_params("hourglass").train.loss_weight) == (
        "joints_mse",
        1.0,
    )
    assert optim.loss_name(load_params("hrnet")) == optim.loss_name(load_params("simplebaseline")) == "keypoint_mse"
    with pytest.raises(ParamsError, match="train.loss must be one of"):
        load_params("fastpose", {"train.loss": "l1"})


def test_hourglass_schedule_is_mmcv_step_with_linear_warmup():
    """mmcv v1.1.6 StepLrUpdaterHook(step=[170, 200], warmup='linear', warmup_iters=500,
    warmup_ratio=0.001) at 86 steps an epoch (MPII train on 8 x 32), values its hook set."""
    lrs = optim.schedule(load_params("hourglass").train, 86)
    assert lrs.shape == (210 * 86,)
    expected = {
        0: 5e-7,
        1: 5e-4 * (1 - (1 - 1 / 500) * 0.999),
        250: 5e-4 * (1 - 0.5 * 0.999),
        499: 5e-4 * (1 - 0.999 / 500),
        500: 5e-4,
        14619: 5e-4,
        14620: 5e-5,
        17199: 5e-5,
        17200: 5e-6,
        18059: 5e-6,
    }
    for step, value in expected.items():
        assert lrs[step] == pytest.approx(value, rel=1e-12), step


def test_dpg_lr_factor_is_alphapose_gamma():
    params = load_params("fastpose", {"train.lr_factor": 0.5, "train.epochs": 200})
    per_epoch = optim.schedule(params.train, 1)
    assert per_epoch[139] == pytest.approx(1e-3 * 0.25) and per_epoch[141] == 1e-3
    assert per_epoch[161] == pytest.approx(1e-4) and per_epoch[191] == pytest.approx(1e-5)


# --- the loss on the same tensors ---------------------------------------------------------------


def _loss_inputs():
    generator = torch.Generator().manual_seed(0)
    output = torch.rand(8, 17, 64, 48, generator=generator)
    target = torch.rand(8, 17, 64, 48, generator=generator)
    weight = (torch.rand(8, 17, generator=generator) > 0.3).float()
    weighted = weight * torch.rand(8, 17, generator=generator) * 2
    second_stack = torch.rand(8, 17, 64, 48, generator=generator)
    return output, target, weight, weighted, second_stack


def test_each_seed_loss_equals_the_seeds_code():
    """The values AlphaPose's 0.5 * MSELoss, mmpose v0.8.0's JointsMSELoss (over 2 stacks) and
    mmpose 1.x's KeypointMSELoss gave on these tensors (benchmarks/recipe_parity.py)."""
    output, target, weight, weighted, second = _loss_inputs()
    fastpose = optim.build_loss(load_params("fastpose"))
    assert float(fastpose(output, target, weight)) == pytest.approx(0.05581481, abs=1e-7)
    hourglass = optim.build_loss(load_params("hourglass", {"model.num_stacks": 2}))
    assert float(hourglass([output, second], target, weight)) == pytest.approx(0.22334969, abs=1e-7)
    assert float(hourglass([output, second], target, weighted)) == pytest.approx(0.31080592, abs=1e-7)
    hrnet = optim.build_loss(load_params("hrnet"))
    assert float(hrnet(output, target, weight)) == pytest.approx(0.11162963, abs=1e-7)
    assert float(hrnet(output, target, weighted)) == pytest.approx(0.11584181, abs=1e-7)


# --- train.ipynb's schedule figure ----------------------------------------------------------------


def test_lr_schedule_figure_shows_the_engine_schedule_and_marks_a_resume(tiny, outputs):
    from posecore import workbook
    from posecore.files import append_jsonl
    from posecore.runs import Run

    params = tiny(**{"train.lr_steps": [1], "train.epochs": 3})
    figure = workbook.lr_schedule(params, npus=1, run_name="sched")
    steps = data.steps_per_epoch(len(data.build_dataset(params, "train")), params.train.batch_size)
    line = figure.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), optim.schedule(params.train, steps))
    assert len(figure.axes[0].lines) == 1  # a new run: no resume mark
    Run("sched").folder_made()
    append_jsonl(Run("sched").log_path, {"type": "train", "epoch": 1, "step": steps + 1, "loss": 1.0})
    marked = workbook.lr_schedule(params, npus=1, run_name="sched").axes[0]
    assert marked.lines[-1].get_xdata()[0] == pytest.approx((steps + 1) / steps)
