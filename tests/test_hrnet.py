"""HRNet and SimpleBaseline-R50 as mmpose 1.x builds them, their params files and checkpoints.

The pinned figures were verified against mmpose 1.3.2's own modules (HRNet / ResNet backbones,
HeatmapHead) with benchmarks/mmpose_parity.py: equal parameter counts, mmpose's modules load
posecore's state_dict strictly (same names and shapes: the layout digests below), and the seeded
outputs agree exactly (max abs diff 0 at 256x192, also for HRNet-W48). CI cannot import mmpose,
so the tests pin what was verified: counts, layouts and HRNet-W32's output on seeded weights.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from helpers import randomized_model, tiny_params, tiny_synthetic

import posecore
from posecore.checkpoints import CheckpointError, load_model, load_pretrained_backbone, split_checkpoint
from posecore.export import check_parity, export_onnx
from posecore.models import HRNet, build_model
from posecore.params import ParamsError, load_params

# benchmarks/mmpose_parity.py: posecore = mmpose parameter counts and state_dict layouts
PARAMETERS = {("hrnet", 32): 28_536_113, ("hrnet", 48): 63_595_745, ("simplebaseline", 50): 33_999_697}
LAYOUTS = {  # sha256 of the sorted "key (shape)" lines, and the key count
    "hrnet": ("3c3a94e00a1fdf73b6e8e512937c5f5d20afa2ce5e8d9173726802bf3a8a43a6", 1754),
    "simplebaseline": ("3165fb863a3069551f76155314c93b46087676b401f7b2f5b08d3481df0c0c29", 338),
}
# mmpose's HRNet-W32 + HeatmapHead with helpers.randomized_model(load_params("hrnet")) weights on
# torch.randn(1, 3, 128, 96, generator seed 1): sum, abs sum, out[0, 0, 0, :4]
W32_OUTPUT = (-1927.125854, 8864.931641, [-0.595912, -0.570079, -0.735273, -0.730198])
TEST_INPUT = (1, 3, 128, 96)


def layout_digest(state: dict[str, torch.Tensor]) -> str:
    lines = sorted(f"{key} {tuple(value.shape)}" for key, value in state.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# HRNet runs hundreds of small ops: on a shared 2-core machine two OpenMP threads stall at every
# op's barrier (a training step 20x slower than with one)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def w32():
    """(params, seeded HRNet-W32, its output on the seeded test input)."""
    params = load_params("hrnet")
    model = randomized_model(params)
    with torch.no_grad():
        out = model(torch.randn(*TEST_INPUT, generator=torch.Generator().manual_seed(1)))
    return params, model, out


@pytest.mark.parametrize(
    "name, overrides, size", [("hrnet", {}, 32), ("hrnet", {"model.width": 48}, 48), ("simplebaseline", {}, 50)]
)
def test_parameter_counts_are_mmposes(name, overrides, size):
    params = load_params(name, overrides)
    model = build_model(params)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[(name, size)]
    assert params.data.input_size == [192, 256] and params.data.heatmap_size == [48, 64]


@pytest.mark.parametrize("name", ["hrnet", "simplebaseline"])
def test_state_dict_layout_is_mmposes(name):
    state = build_model(load_params(name)).state_dict()
    assert (layout_digest(state), len(state)) == LAYOUTS[name]


def test_hrnet_names_follow_mmpose_and_the_last_module_fuses_one_output():
    keys = set(build_model("hrnet").state_dict())
    for key in (
        "backbone.conv1.weight",
        "backbone.bn2.running_var",
        "backbone.layer1.0.downsample.0.weight",
        "backbone.layer1.3.conv3.weight",
        "backbone.transition1.0.0.weight",
        "backbone.transition1.1.0.0.weight",
        "backbone.transition3.3.0.1.running_mean",
        "backbone.stage2.0.branches.1.3.conv2.weight",
        "backbone.stage2.0.fuse_layers.0.1.0.weight",
        "backbone.stage3.3.fuse_layers.2.0.1.0.weight",
        "backbone.stage4.2.fuse_layers.0.3.1.bias",
        "head.final_layer.weight",
    ):
        assert key in keys, key
    assert not any(
        k.startswith(("backbone.stage4.2.fuse_layers.1.", "backbone.transition2.0.", "head.deconv_layers."))
        for k in keys
    )


def test_hrnet_w32_reproduces_mmposes_seeded_output(w32):
    _, _, out = w32
    total, absolute, first = W32_OUTPUT
    assert out.shape == (1, 17, 32, 24)
    assert out.sum().item() == pytest.approx(total, rel=1e-4)
    assert out.abs().sum().item() == pytest.approx(absolute, rel=1e-4)
    np.testing.assert_allclose(out[0, 0, 0, :4].numpy(), first, atol=1e-4)


@pytest.mark.parametrize("layout", ["mmpose-1.x", "hrnet-official"])
def test_upstream_hrnet_checkpoints_load_through_load_model(w32, tmp_path, layout):
    params, model, out = w32
    state = model.state_dict()
    if layout == "mmpose-1.x":
        checkpoint = {"meta": {"mmpose_version": "1.3.2"}, "state_dict": state}
    else:  # the HRNet repository's pose_hrnet: no prefixes, final_layer; saved from DataParallel
        checkpoint = {
            "module." + key.removeprefix("backbone.").removeprefix("head."): value for key, value in state.items()
        }
    torch.save(checkpoint, tmp_path / "pose_hrnet_w32_256x192.pth")
    loaded, fmt = load_model(params, tmp_path / "pose_hrnet_w32_256x192.pth")
    assert fmt == layout and isinstance(loaded, HRNet) and not loaded.training
    with torch.no_grad():
        again = loaded(torch.randn(*TEST_INPUT, generator=torch.Generator().manual_seed(1)))
    assert torch.allclose(again, out, atol=1e-5)


def test_a_checkpoint_that_does_not_fit_names_its_missing_and_unexpected_keys(w32, tmp_path):
    params, model, _ = w32
    state = dict(model.state_dict())
    del state["backbone.stage3.1.branches.2.0.conv1.weight"]
    state["backbone.stage5.0.weight"] = torch.zeros(1)
    torch.save({"state_dict": state, "meta": {}}, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as error:
        load_model(params, tmp_path / "broken.pth")
    assert "backbone.stage3.1.branches.2.0.conv1.weight" in str(error.value)
    assert "backbone.stage5.0.weight" in str(error.value)
    with pytest.raises(CheckpointError, match="model.width"):  # W32 weights into a W48 model
        torch.save({"state_dict": model.state_dict()}, tmp_path / "w32.pth")
        load_model(load_params("hrnet", {"model.width": 48}), tmp_path / "w32.pth")


def test_imagenet_hrnet_initializes_the_backbone_and_drops_the_classifier(tmp_path):
    source = randomized_model(load_params("hrnet", {"model.width": 18}))
    # the classification HRNet: this backbone's names, plus its own head and stage 4's other outputs
    extra = {
        "incre_modules.0.0.conv1.weight": torch.zeros(32, 18, 1, 1),
        "classifier.weight": torch.zeros(1000, 2048),
        "final_layer.0.weight": torch.zeros(2048, 1024, 1, 1),
        "stage4.2.fuse_layers.1.0.0.0.weight": torch.zeros(36, 18, 3, 3),
    }
    torch.save({**source.backbone.state_dict(), **extra}, tmp_path / "hrnet_w18_imagenet.pth")
    model = build_model("hrnet", width=18)
    head_before = model.head.final_layer.weight.clone()
    report = load_pretrained_backbone(model, tmp_path / "hrnet_w18_imagenet.pth")
    assert report["format"] == "hrnet-imagenet" and sorted(report["unexpected"]) == sorted(extra)
    loaded = model.backbone.state_dict()
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert torch.equal(model.head.final_layer.weight, head_before)
    with pytest.raises(CheckpointError, match="HRNet-W32 backbone.*model.width"):
        load_pretrained_backbone(build_model("hrnet", width=32), tmp_path / "hrnet_w18_imagenet.pth")


def test_mmpose_simplebaseline_r50_key_layout_is_recognised():
    state = build_model(load_params("simplebaseline")).state_dict()
    fmt, found = split_checkpoint({"state_dict": state, "meta": {"epoch": 210}})
    assert fmt == "mmpose-1.x" and found.keys() == state.keys()


def test_params_files_shortcuts_and_their_checks():
    hrnet = load_params("hrnet", {"model.width": 48})
    assert (hrnet.model.name, hrnet.model.width, hrnet.train.lr, hrnet.train.lr_steps) == (
        "hrnet",
        48,
        5e-4,
        [170, 200],
    )
    assert load_params("hrnet", {"data.codec": "udp"}).data.codec == "udp"
    assert load_params("simplebaseline").model.depth == 50
    with pytest.raises(ParamsError, match="model.width"):
        load_params("hrnet", {"model.width": 40})
    with pytest.raises(ParamsError, match="multiples of 32 for hrnet"):
        load_params("hrnet", {"data.input_size": [200, 256], "data.heatmap_size": [50, 64]})
    with pytest.raises(ValueError, match="width"):
        HRNet(width=40)


def test_hrnet_trains_evaluates_and_exports_through_the_common_paths(tmp_path, outputs):
    root = tiny_synthetic(tmp_path, num_train=4)
    params = tiny_params(root, **{"model.name": "hrnet", "model.width": 18, "train.epochs": 1, "train.warmup_iters": 0})
    result = posecore.train(params, run_name="hrnet")
    assert np.isfinite(result["loss"]) and result["steps"] > 0
    metrics = posecore.evaluate(params, "last", run_name="hrnet")
    assert "AP" in metrics and 0.0 <= metrics["AP"] <= 1.0
    report = export_onnx(params, "last", tmp_path / "hrnet.onnx", run_name="hrnet", parity_batch_sizes=(1, 2))
    assert report["parity_max_abs_diff"] <= 1e-4
    model, _ = load_model(params, result["checkpoint"])
    assert check_parity(model, tmp_path / "hrnet.onnx", batch_sizes=(3,))["max_abs_diff"] <= 1e-4
