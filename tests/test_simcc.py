"""The simcc codec (mmpose's SimCCLabel), the KL-discretised loss and the cosine schedule.

Pinned values were verified against mmpose 1.3.2's SimCCLabel (input (192, 256), sigma (4.9,
5.66), split ratio 2, normalize off; and sigma 6 with normalize on) on the inputs below: labels,
weights and decoded coordinates matched exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posecore.codec import SimCCLabel, build_codec, decode_simcc
from posecore.optim import build_loss, loss_name, schedule, simcc_loss
from posecore.params import ParamsError, load_params

# in bounds, the origin, the far corner, 3 sigma off the left edge twice, the centre, beyond
# the bottom right, beyond the right, just inside the bottom, unlabelled
JOINTS = np.array(
    [
        [10.25, 20.75],
        [0.0, 0.0],
        [191.9, 255.9],
        [-8.0, 100.0],
        [-10.0, 30.0],
        [96.25, 128.75],
        [200.0, 300.0],
        [250.0, 50.0],
        [50.0, 262.0],
        [33.3, 44.4],
    ],
    dtype=np.float32,
)
VISIBLE = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 0], dtype=np.float32)


def _codec(**kwargs) -> SimCCLabel:
    return SimCCLabel((192, 256), **kwargs)


def _decode_inputs():
    rng = np.random.default_rng(5)
    simcc_x = rng.normal(size=(3, 10, 384)).astype(np.float32)
    simcc_y = rng.normal(size=(3, 10, 512)).astype(np.float32)
    simcc_y[0, 0] = -1.0  # a non-positive maximum
    return simcc_x, simcc_y


def test_encode_matches_simcc_label():
    (target_x, target_y), weight = _codec().encode(JOINTS, VISIBLE)
    assert target_x.shape == (10, 384) and target_y.shape == (10, 512) and target_x.dtype == np.float32
    np.testing.assert_array_equal(weight, [1, 1, 1, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(target_x.argmax(1), [20, 0, 383, 0, 0, 192, 0, 0, 100, 0])
    np.testing.assert_array_equal(target_y.argmax(1), [42, 0, 511, 0, 0, 258, 0, 0, 511, 0])
    np.testing.assert_allclose(
        target_x.sum(1), [12.282309, 6.641239, 5.641239, 0, 0, 12.282478, 0, 0, 12.282479, 0], rtol=1e-6
    )
    np.testing.assert_allclose(
        target_y.sum(1), [14.187516, 7.593759, 6.593758, 0, 0, 14.187515, 0, 0, 0.19161029, 0], rtol=1e-6
    )
    # the unnormalized Gaussian over every bin at the rounded joint (20.5 * 2 -> 41 -> 42 is
    # numpy's round-half-even of 41.5)
    bins = np.arange(512)
    np.testing.assert_allclose(target_y[0], np.exp(-((bins - 42) ** 2) / (2 * 5.66**2)), rtol=1e-6, atol=1e-30)


def test_encode_normalized_and_scalar_sigma():
    (target_x, target_y), weight = _codec(sigma=6.0, normalize=True).encode(JOINTS, VISIBLE)
    np.testing.assert_array_equal(weight, [1, 1, 1, 1, 0, 1, 0, 0, 1, 0])  # sigma 6 reaches x = -8
    np.testing.assert_allclose(target_x.max(1)[:4], [0.06649038, 0.06649038, 0.06557329, 0.00189933], rtol=1e-6)
    np.testing.assert_allclose(target_y.sum(1)[[0, 1, 8]], [1.0, 0.5332452, 0.01850073], rtol=1e-6)


def test_decode_matches_simcc_label():
    simcc_x, simcc_y = _decode_inputs()
    coords, scores = _codec().decode((simcc_x, simcc_y))
    assert coords.shape == (3, 10, 2) and scores.shape == (3, 10) and coords.dtype == np.float32
    np.testing.assert_array_equal(
        coords[:, :3],
        [
            [[-0.5, -0.5], [127.5, 128.5], [17.5, 108.0]],
            [[76.5, 122.0], [103.0, 253.5], [75.5, 230.0]],
            [[131.5, 68.5], [3.0, 203.0], [173.0, 114.0]],
        ],
    )
    np.testing.assert_allclose(
        scores[:, :3],
        [[-1.0, 3.111913, 3.064624], [2.7556198, 2.8572505, 2.941012], [2.7238283, 2.7503862, 2.7826922]],
        rtol=1e-6,
    )
    assert coords.sum() == 6857.0 and scores.sum() == pytest.approx(82.56467, rel=1e-6)
    # [K, W] in -> [K, 2] out; torch in -> the same numbers
    single, single_scores = _codec().decode((simcc_x[1], simcc_y[1]))
    np.testing.assert_array_equal(single, coords[1])
    np.testing.assert_array_equal(single_scores, scores[1])
    from_torch, _ = _codec().decode([torch.from_numpy(simcc_x), torch.from_numpy(simcc_y)])
    np.testing.assert_array_equal(from_torch, coords)


def test_decode_torch_equals_decode():
    simcc_x, simcc_y = _decode_inputs()
    coords, scores = _codec().decode((simcc_x, simcc_y))
    torch_coords, torch_scores = _codec().decode_torch((torch.from_numpy(simcc_x), torch.from_numpy(simcc_y)))
    np.testing.assert_array_equal(torch_coords.numpy(), coords)
    np.testing.assert_array_equal(torch_scores.numpy(), scores)


def test_encode_decode_round_trip_within_half_a_bin():
    rng = np.random.default_rng(0)
    joints = rng.uniform([0, 0], [191.7, 255.7], size=(17, 2))
    targets, weight = _codec().encode(joints, np.ones(17))
    coords, scores = _codec().decode(targets)
    assert np.all(weight == 1) and np.all(scores == 1.0)
    assert np.abs(coords - joints).max() <= 0.25 + 1e-6  # 2 bins per pixel: half a bin


def test_flip_test_realigns_a_mirrored_prediction():
    codec = _codec()
    flip_index = [0, 2, 1]  # joints 1 and 2 are a left/right pair
    joints = np.array([[40.0, 50.0], [60.5, 100.0], [150.0, 30.0]])
    # the mirrored crop: x -> (Wx - 1) / split - x, left and right swapped
    mirrored = joints[flip_index].copy()
    mirrored[:, 0] = (384 - 1) / 2 - mirrored[:, 0]
    plain, _ = codec.encode(joints, np.ones(3))
    flipped, _ = codec.encode(mirrored, np.ones(3))
    for to in (np.asarray, torch.from_numpy):
        merged = codec.flip_test(
            tuple(to(part[None]) for part in plain), tuple(to(part[None]) for part in flipped), flip_index
        )
        assert isinstance(merged, tuple) and merged[0].shape == (1, 3, 384)
        coords, _ = codec.decode(merged)
        np.testing.assert_allclose(coords[0], np.round(joints * 2) / 2)


def test_to_image_inverts_the_crop():
    codec = _codec()
    center, scale = np.array([320.0, 240.0]), np.array([150.0, 200.0])
    image_points = np.array([[300.0, 200.0], [250.5, 330.25]])
    matrix = codec.crop_matrix(center, scale)
    input_points = image_points @ matrix[:, :2].T + matrix[:, 2]
    back = codec.to_image(input_points[None], center[None], scale[None])
    np.testing.assert_allclose(back[0], image_points, atol=1e-9)


def test_params_build_the_simcc_codec_and_check_the_pairing():
    params = load_params("rtmpose", {"model.variant": "t", "data.simcc_sigma": [6.0]})
    codec = build_codec(params)
    assert isinstance(codec, SimCCLabel) and codec.sigma == (6.0, 6.0) and codec.simcc_size == (384, 512)
    assert loss_name(params) == "kl_discret" and loss_name(load_params("fastpose")) == "joints_mse"
    assert loss_name(load_params("rtmpose", {"train.loss": "auto"})) == "kl_discret"
    with pytest.raises(ParamsError, match="train.loss 'joints_mse' does not fit data.codec 'simcc'"):
        load_params("rtmpose", {"train.loss": "joints_mse"})
    with pytest.raises(ParamsError, match="data.codec: simcc"):
        load_params("rtmpose", {"data.codec": "msra"})
    with pytest.raises(ParamsError, match="predicts heatmaps"):
        load_params("fastpose", {"data.codec": "simcc"})
    with pytest.raises(ParamsError, match="simcc_sigma"):
        load_params("rtmpose", {"data.simcc_sigma": [1.0, 2.0, 3.0]})
    with pytest.raises(ParamsError, match="eval.decode"):
        load_params("rtmpose", {"eval.decode": "dark"})


def _kl_discret(output, target, weight, beta=10.0):
    """KLDiscretLoss written out per joint, as a reference for the vectorized loss."""
    total = 0.0
    for pred, label in zip(output, target):
        for n in range(pred.shape[0]):
            for k in range(pred.shape[1]):
                p = torch.softmax(label[n, k].double() * beta, 0)
                log_q = torch.log_softmax(pred[n, k].double() * beta, 0)
                kl = torch.where(p > 0, p * (torch.log(p) - log_q), torch.zeros_like(p)).mean()
                total += float(kl) * float(weight[n, k])
    return total / pred.shape[1]


def test_simcc_loss_is_kl_discret_loss():
    generator = torch.Generator().manual_seed(0)
    output = (torch.randn(2, 3, 20, generator=generator), torch.randn(2, 3, 24, generator=generator))
    target = (torch.rand(2, 3, 20, generator=generator), torch.rand(2, 3, 24, generator=generator))
    weight = torch.tensor([[1.0, 0.0, 1.0], [0.5, 1.0, 1.0]])
    loss = simcc_loss(output, target, weight)
    assert loss.item() == pytest.approx(_kl_discret(output, target, weight), rel=1e-5)
    scaled = build_loss(load_params("rtmpose", {"train.loss_weight": 2.0}))(output, target, weight)
    assert scaled.item() == pytest.approx(2 * loss.item(), rel=1e-6)
    assert simcc_loss(target, target, weight).item() < loss.item()
    with pytest.raises(TypeError, match="pair"):
        simcc_loss(output[0], target, weight)


def test_cosine_schedule_with_warmup():
    train = load_params("rtmpose").train
    assert train.optimizer == "adamw" and train.epochs == 420
    lrs = schedule(train, 1000)  # 1000 steps an epoch: the warm-up ends inside epoch 0
    assert lrs.shape == (420_000,)
    assert lrs[0] == pytest.approx(0.004 * 1e-5)
    assert lrs[500] == pytest.approx(0.004 * (1e-5 + (1 - 1e-5) * 0.5))
    assert lrs[100_000] == lrs[210_000] == 0.004
    middle = lrs[315_000]
    assert middle == pytest.approx(0.004 * 0.05 + 0.004 * 0.95 * 0.5)
    # per iteration: half-way through epoch 315 is past the middle
    assert lrs[315_500] < middle
    assert lrs[-1] == pytest.approx(0.004 * 0.05, rel=1e-4)
    expected = 0.0002 + 0.0038 * 0.5 * (1 + math.cos(math.pi * 100.25 / 210))
    assert lrs[310_250] == pytest.approx(expected)
    with pytest.raises(ParamsError, match="cosine_begin"):
        load_params("rtmpose", {"train.cosine_begin": 420})


def test_adamw_leaves_norm_layers_and_biases_undecayed():
    from posecore.models import build_model
    from posecore.optim import build_optimizer

    model = build_model("rtmpose", variant="t")
    optimizer = build_optimizer(model, load_params("rtmpose").train)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay, free = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and free["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    free_names = {names[id(p)] for p in free["params"]}
    assert "backbone.stem.0.bn.weight" in free_names and "head.final_layer.bias" in free_names
    assert "backbone.stage1.1.attention.fc.bias" in free_names
    assert not any(names[id(p)].endswith(("conv.weight", "gau.uv.weight", "mlp.0.g")) for p in free["params"])
    assert len(decay["params"]) + len(free["params"]) == len(list(model.parameters()))


def test_decode_rejects_mismatched_axes():
    with pytest.raises(ValueError, match="simcc_x"):
        decode_simcc(np.zeros((2, 3, 8)), np.zeros((2, 4, 8)))
    with pytest.raises(TypeError, match="pair"):
        _codec().decode(np.zeros((2, 3, 8)))


def test_heatmaps_view_peaks_at_the_joint():
    codec = _codec()
    targets, _ = codec.encode(JOINTS[:2], np.ones(2))
    view = codec.heatmaps(tuple(torch.from_numpy(part) for part in targets))
    assert view.shape == (2, 512, 384) and view.max() == pytest.approx(1.0)
    assert np.unravel_index(view[0].argmax(), view[0].shape) == (42, 20)  # (y, x) bins of (10.25, 20.75)
    assert codec.heatmaps((-np.ones((1, 8)), np.ones((1, 6)))).max() == 0.0


def test_metadata_round_trip():
    codec = _codec(sigma=(4.0, 5.0), split_ratio=3.0)
    metadata = {"input_size": [192, 256], **codec.metadata()}
    assert metadata["codec"] == "simcc" and metadata["simcc_size"] == [576, 768]
    assert SimCCLabel.from_metadata(metadata) == codec
    assert np.array_equal(codec.input_per_unit, [1.0, 1.0])
