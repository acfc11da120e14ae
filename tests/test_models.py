"""posecore.models: shapes, exact sizes of the reference architectures, registry and builders."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import posecore
from posecore.models import MODELS, ResNet, SqueezeExcite, build_model, model_summary
from posecore.params import ModelParams, load_params


def _heatmaps(model: nn.Module, width: int, height: int, batch: int = 2) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(torch.randn(batch, 3, height, width))


@pytest.mark.parametrize(
    "name, kwargs, joints",
    [
        ("fastpose", {"depth": 18}, 17),
        ("fastpose", {"depth": 50, "num_joints": 14}, 14),
        ("simplebaseline", {"depth": 18}, 17),
        ("fastpose_duc", {"depth": 50, "backbone": "resnet", "duc_convs": [1, 1, 1]}, 17),
    ],
)
def test_resnet_models_give_quarter_resolution_heatmaps(name, kwargs, joints):
    out = _heatmaps(build_model(name, **kwargs), width=64, height=96)
    assert out.shape == (2, joints, 24, 16)
    assert torch.isfinite(out).all()


def test_stacked_hourglass_returns_every_stack_in_training_and_the_last_in_eval():
    model = build_model("hourglass", num_stacks=2, num_joints=5)
    with torch.no_grad():
        for stack, layer in enumerate(model.head.final_layers):  # constant maps: stack index
            layer.weight.zero_(), layer.bias.fill_(stack)
        stacks = model.train()(torch.randn(2, 3, 128, 128))
        last = model.eval()(torch.randn(1, 3, 128, 128))
    assert isinstance(stacks, list) and [s.shape for s in stacks] == [(2, 5, 32, 32)] * 2
    assert [s.unique().tolist() for s in stacks] == [[0.0], [1.0]]
    assert isinstance(last, torch.Tensor) and last.shape == (1, 5, 32, 32)
    assert last.unique().tolist() == [1.0]


def test_defaults_and_exact_parameter_counts_of_the_reference_architectures():
    fastpose = build_model("fastpose")
    assert (fastpose.backbone.depth, fastpose.num_joints) == (50, 17)
    assert sum(p.numel() for p in fastpose.parameters()) == 40_577_745
    hourglass = build_model("hourglass")
    assert hourglass.num_joints == 16
    assert sum(p.numel() for p in hourglass.parameters()) == 94_847_632
    assert sum(p.numel() for p in hourglass.backbone.parameters()) == 94_843_520
    # the single stack's unused upstream block must not leave DDP waiting for its gradients
    frozen = [name for name, p in hourglass.named_parameters() if not p.requires_grad]
    assert frozen and all(name.startswith("backbone.inters.") for name in frozen)


@pytest.mark.parametrize(
    "depth, gated_stages", [(18, ["layer2", "layer3", "layer4"]), (50, ["layer1", "layer2", "layer3", "layer4"])]
)
def test_se_gates_sit_on_the_projecting_first_block_of_a_stage_only(depth, gated_stages):
    backbone = ResNet(depth, se=True)
    gated = [name for name, m in backbone.named_modules() if isinstance(m, SqueezeExcite)]
    assert gated == [f"{stage}.0.se" for stage in gated_stages]
    for name in gated:
        block = backbone.get_submodule(name.removesuffix(".se"))
        assert block.downsample is not None
        width = block.se.fc1.in_features
        assert block.se.fc1.out_features == width  # AlphaPose uses no channel reduction
        assert block.se.fc1.bias is not None and block.se.fc2.bias is not None


def test_resnet_backbone_uses_torchvision_names():
    keys = set(build_model("simplebaseline", depth=50).state_dict())
    for key in (
        "backbone.conv1.weight",
        "backbone.bn1.running_var",
        "backbone.layer1.0.conv3.weight",
        "backbone.layer1.0.downsample.0.weight",
        "backbone.layer4.2.bn2.bias",
        "head.deconv_layers.0.weight",
        "head.final_layer.bias",
    ):
        assert key in keys
    assert not any(key.startswith("backbone.fc.") for key in keys)


def test_small_fastpose_head_scales_with_the_512_channel_backbone():
    model = build_model("fastpose", depth=34)
    assert model.head.duc1.conv.in_channels == 128 and model.head.duc1.conv.out_channels == 256
    assert model.head.duc2.conv.in_channels == 64 and model.head.final_layer.in_channels == 32
    assert build_model("fastpose", depth=18).head.final_layer.in_channels == 32


def test_model_summary_counts_fastpose_flops_without_running_it():
    model = build_model("fastpose")
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    summary = model_summary(model, (192, 256))
    assert summary["params"] == 40_577_745
    assert summary["gflops"] == pytest.approx(11.77, abs=0.01)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    half = model_summary(model, (96, 128))["gflops"]
    assert half == pytest.approx(summary["gflops"] / 4, rel=0.02)


@pytest.mark.parametrize("training", [True, False])
def test_model_summary_takes_tiny_inputs_in_either_mode_and_keeps_the_mode(training):
    model = build_model("fastpose", depth=18).train(training)
    tiny = model_summary(model, (32, 32))  # 1x1 backbone maps: batch-1 BN fails in train mode
    assert model.training is training
    assert tiny["gflops"] == pytest.approx(model_summary(model, (64, 64))["gflops"] / 4, rel=0.05)


def test_build_model_reads_params_and_kwargs_override_them():
    params = load_params("hourglass")
    params.model.num_joints = 7  # not a valid MPII setup (load_params refuses it), but a model
    assert build_model(params).head.final_layers[0].out_channels == 7
    model = build_model(ModelParams(name="fastpose", depth=18, num_joints=9), num_joints=3)
    assert model.backbone.depth == 18 and model.num_joints == 3
    assert isinstance(posecore.build_model("simplebaseline", depth=18), MODELS["simplebaseline"])


def test_unknown_model_and_unknown_option_are_errors_naming_the_choices():
    with pytest.raises(ValueError, match="fastpose.*hourglass.*simplebaseline"):
        build_model("fastpsoe")
    with pytest.raises(TypeError, match="depth"):
        build_model("hourglass", depth=50)
    with pytest.raises(ValueError, match="depth"):
        build_model("fastpose", depth=42)


def test_state_dict_round_trip_reproduces_outputs():
    source, target = build_model("fastpose", depth=18), build_model("fastpose", depth=18)
    x = torch.randn(2, 3, 64, 64)
    source.eval(), target.eval()
    with torch.no_grad():
        assert not torch.allclose(source(x), target(x))
        target.load_state_dict(source.state_dict())
        assert torch.equal(source(x), target(x))


def test_channels_last_and_bf16_autocast_agree_with_fp32():
    model = build_model("fastpose", depth=18).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        fast = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.allclose(fast, reference, atol=1e-4)
    assert low.dtype == torch.bfloat16
    scale = reference.abs().max()
    assert (low.float() - reference).abs().max() < 0.1 * scale


def test_forward_has_no_graph_breaks():
    explanation = torch._dynamo.explain(build_model("fastpose", depth=18).eval())(torch.randn(1, 3, 64, 64))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
