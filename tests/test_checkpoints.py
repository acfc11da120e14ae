"""posecore.checkpoints against independent reference modules that have upstream's key layout.

The Ref* modules below are written from reading AlphaPose (alphapose/models/fastpose.py,
layers/SE_Resnet.py, SE_module.py, DUC.py) and mmpose 0.x (backbones/hourglass.py,
backbones/resnet.py, heads/topdown_heatmap_*_head.py): their attribute names, and so their
state_dict keys, are upstream's. Loading their weights must reproduce their outputs.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from posecore.checkpoints import CheckpointError, load_checkpoint, load_pretrained_backbone
from posecore.models import build_model


# --- AlphaPose FastPose ----------------------------------------------------------------------
class RefSELayer(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, channels), nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(self.avg_pool(x).flatten(1))[:, :, None, None]


class RefBlock(nn.Module):
    """Basic or bottleneck block, conv{i}/bn{i} names; `reduction` adds SE (AlphaPose)."""

    def __init__(self, cin, planes, stride=1, downsample=None, bottleneck=False, reduction=False):
        super().__init__()
        if bottleneck:
            specs = [(cin, planes, 1, 1), (planes, planes, 3, stride), (planes, 4 * planes, 1, 1)]
        else:
            specs = [(cin, planes, 3, stride), (planes, planes, 3, 1)]
        for i, (a, b, k, s) in enumerate(specs, 1):
            setattr(self, f"conv{i}", nn.Conv2d(a, b, k, s, k // 2, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(b))
        self.count = len(specs)
        self.downsample = downsample
        if reduction:
            self.se = RefSELayer(specs[-1][1])

    def forward(self, x):
        out = x
        for i in range(1, self.count + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            out = F.relu(out) if i < self.count else out
        if hasattr(self, "se"):
            out = self.se(out)
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def ref_res_layer(cin, cout, blocks, stride=1, bottleneck=False, se=False, last=False):
    """torchvision/AlphaPose make_layer, or mmpose ResLayer (downsample_first=not last):
    the first (last) block always exists and carries the projection."""
    planes = cout // 4 if bottleneck else cout
    down = None
    if stride != 1 or cin != cout:
        down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    project = RefBlock(cin, planes, stride, down, bottleneck, reduction=se and down is not None)
    if last:
        return nn.Sequential(*[RefBlock(cin, cin) for _ in range(blocks - 1)], project)
    return nn.Sequential(project, *[RefBlock(cout, planes, bottleneck=bottleneck) for _ in range(1, blocks)])


class RefResNet(nn.Module):
    def __init__(self, depth, se):
        super().__init__()
        blocks = {18: [2, 2, 2, 2], 50: [3, 4, 6, 3]}[depth]
        bottleneck = depth >= 50
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, n in enumerate(blocks):
            cout = 64 * 2**i * (4 if bottleneck else 1)
            setattr(self, f"layer{i + 1}", ref_res_layer(cin, cout, n, 1 if i == 0 else 2, bottleneck, se))
            cin = cout

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class RefDUC(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.pixel_shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.pixel_shuffle(self.relu(self.bn(self.conv(x))))


class RefFastPose(nn.Module):
    def __init__(self, depth, joints):
        super().__init__()
        self.preact = RefResNet(depth, se=True)
        self.suffle1 = nn.PixelShuffle(2)
        if depth == 18:  # AlphaPose's small head for the 512-channel backbone
            self.duc1, self.duc2 = RefDUC(128, 256), RefDUC(64, 128)
            self.conv_out = nn.Conv2d(32, joints, 3, padding=1)
        else:
            self.duc1, self.duc2 = RefDUC(512, 1024), RefDUC(256, 512)
            self.conv_out = nn.Conv2d(128, joints, 3, padding=1)

    def forward(self, x):
        return self.conv_out(self.duc2(self.duc1(self.suffle1(self.preact(x)))))


# --- mmpose 0.x HourglassNet + multi-stage head, ResNet + simple head ------------------------
class RefConvModule(nn.Module):
    def __init__(self, cin, cout, k, stride=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act else x


class RefHourglassModule(nn.Module):
    def __init__(self, depth, channels, blocks):
        super().__init__()
        self.up1 = ref_res_layer(channels[0], channels[0], blocks[0])
        self.low1 = ref_res_layer(channels[0], channels[1], blocks[0], stride=2)
        self.low2 = (
            RefHourglassModule(depth - 1, channels[1:], blocks[1:])
            if depth > 1
            else ref_res_layer(channels[1], channels[1], blocks[1])
        )
        self.low3 = ref_res_layer(channels[1], channels[0], blocks[0], last=True)

    def forward(self, x):
        return self.up1(x) + F.interpolate(self.low3(self.low2(self.low1(x))), scale_factor=2)


class RefHourglassNet(nn.Module):
    def __init__(self, stacks=1):
        super().__init__()
        channels, blocks = (256, 256, 384, 384, 384, 512), (2, 2, 2, 2, 2, 4)
        self.stacks = stacks
        self.stem = nn.Sequential(RefConvModule(3, 128, 7, 2), ref_res_layer(128, 256, 1, 2))
        self.hourglass_modules = nn.ModuleList(RefHourglassModule(5, channels, blocks) for _ in range(stacks))
        self.inters = ref_res_layer(256, 256, stacks - 1)
        self.conv1x1s = nn.ModuleList(RefConvModule(256, 256, 1, act=False) for _ in range(stacks - 1))
        self.out_convs = nn.ModuleList(RefConvModule(256, 256, 3) for _ in range(stacks))
        self.remap_convs = nn.ModuleList(RefConvModule(256, 256, 1, act=False) for _ in range(stacks - 1))

    def forward(self, x):
        inter, outs = self.stem(x), []
        for i in range(self.stacks):
            outs.append(self.out_convs[i](self.hourglass_modules[i](inter)))
            if i < self.stacks - 1:
                merged = self.conv1x1s[i](inter) + self.remap_convs[i](outs[-1])
                inter = self.inters[i](F.relu(merged))
        return outs


class RefMultiStageHead(nn.Module):
    def __init__(self, joints, stacks):
        super().__init__()
        self.multi_final_layers = nn.ModuleList(nn.Conv2d(256, joints, 1) for _ in range(stacks))

    def forward(self, feats):
        return [layer(f) for layer, f in zip(self.multi_final_layers, feats)]


class RefSimpleHead(nn.Module):
    def __init__(self, cin, joints):
        super().__init__()
        layers = []
        for _ in range(3):
            layers += [nn.ConvTranspose2d(cin, 256, 4, 2, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU()]
            cin = 256
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(256, joints, 1)

    def forward(self, x):
        return self.final_layer(self.deconv_layers(x))


class RefTopDown(nn.Module):
    def __init__(self, backbone, keypoint_head):
        super().__init__()
        self.backbone, self.keypoint_head = backbone, keypoint_head

    def forward(self, x):
        out = self.keypoint_head(self.backbone(x))
        return out[-1] if isinstance(out, list) else out


# --- helpers ---------------------------------------------------------------------------------
def randomized(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BN statistics that keep activations O(1) through a deep net."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                fan_in = (
                    m.weight[0].numel()
                    if not isinstance(m, nn.ConvTranspose2d)
                    else m.weight.shape[0] * m.weight[0, 0].numel() / 4
                )
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) / fan_in**0.5)
                if m.bias is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=generator))
            elif isinstance(m, nn.BatchNorm2d):
                shape = m.weight.shape
                m.weight.copy_(0.5 + 0.5 * torch.rand(shape, generator=generator))
                m.bias.copy_(0.1 * torch.randn(shape, generator=generator))
                m.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                m.running_var.copy_(1 + torch.rand(shape, generator=generator))
    return module.eval()


def assert_same_outputs(reference: nn.Module, model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        expected, actual = reference.eval()(x), model.eval()(x)
    assert expected.shape == actual.shape
    assert expected.std() > 1e-3  # a meaningful comparison, not two zero maps
    assert (expected - actual).abs().max().item() <= 1e-4


# --- upstream formats ------------------------------------------------------------------------
@pytest.mark.parametrize("depth, prefix", [(18, ""), (50, "module.")])
def test_alphapose_fastpose_state_dict_reproduces_the_reference(tmp_path, depth, prefix):
    reference = randomized(RefFastPose(depth, joints=17), seed=depth)
    path = tmp_path / "fast_res.pth"
    torch.save({prefix + k: v for k, v in reference.state_dict().items()}, path)
    model = build_model("fastpose", depth=depth)
    report = load_checkpoint(model, path)
    assert report["format"] == "alphapose"
    assert report["missing"] == report["unexpected"] == report["mismatched"] == []
    assert_same_outputs(reference, model, torch.randn(2, 3, 64, 64))


@pytest.fixture(scope="module")
def mmpose_hourglass():
    return randomized(RefTopDown(RefHourglassNet(), RefMultiStageHead(16, 1)), seed=1)


@pytest.mark.parametrize("version, stacks", [("0.x", 1), ("1.x", 2)])
def test_mmpose_hourglass_checkpoint_reproduces_the_reference(tmp_path, mmpose_hourglass, version, stacks):
    reference = (
        mmpose_hourglass
        if stacks == 1
        else randomized(RefTopDown(RefHourglassNet(stacks), RefMultiStageHead(16, stacks)), seed=stacks)
    )
    state = reference.state_dict()
    if version == "1.x":  # mmpose 1.x names the head `head` (CPMHead: multi_final_layers)
        state = {k.replace("keypoint_head.", "head.", 1): v for k, v in state.items()}
    path = tmp_path / "hourglass_mpii_384x384.pth"
    torch.save({"meta": {"epoch": 210, "mmpose_version": version}, "state_dict": state}, path)
    model = build_model("hourglass", num_stacks=stacks)
    assert load_checkpoint(model, path)["format"] == f"mmpose-{version}"
    assert_same_outputs(reference, model, torch.randn(1, 3, 128, 128))


def test_mmpose_simplebaseline_checkpoint_reproduces_the_reference(tmp_path):
    reference = randomized(RefTopDown(RefResNet(18, se=False), RefSimpleHead(512, 17)), seed=2)
    path = tmp_path / "res18_coco_256x192.pth"
    torch.save({"state_dict": reference.state_dict()}, path)
    model = build_model("simplebaseline", depth=18)
    load_checkpoint(model, path)
    assert_same_outputs(reference, model, torch.randn(2, 3, 64, 64))


def test_torchvision_resnet_initializes_the_backbone_as_alphapose_does(tmp_path):
    imagenet = randomized(RefResNet(18, se=False), seed=3)
    state = dict(imagenet.state_dict(), **{"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)})
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    model = build_model("fastpose", depth=18)
    load_pretrained_backbone(model, path)
    gates_before = build_model("fastpose", depth=18).backbone.layer2[0].se.fc1.weight.shape
    backbone = model.backbone.state_dict()
    for key, value in imagenet.state_dict().items():
        assert torch.equal(backbone[key], value), key
    assert backbone["layer2.0.se.fc1.weight"].shape == gates_before  # SE keeps its init
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.backbone.conv1(x), imagenet.conv1(x))
    with pytest.raises(CheckpointError, match="ResNet-50.*layer1.0.conv3.weight"):
        load_pretrained_backbone(build_model("fastpose", depth=50), path)
    with pytest.raises(CheckpointError, match="Hourglass has none"):
        load_checkpoint(build_model("hourglass", num_joints=2), path)


def test_own_checkpoint_round_trip_from_a_compiled_or_ddp_model(tmp_path):
    source = randomized(build_model("fastpose", depth=18), seed=4)
    path = tmp_path / "last.pt"
    torch.save(
        {
            "format": "posecore/1",
            "model_name": "fastpose",
            "num_joints": 17,
            "model": {"_orig_mod." + k: v for k, v in source.state_dict().items()},
            "epoch": 3,
            "step": 30,
            "rng": {"torch": torch.get_rng_state()},
        },
        path,
    )
    target = build_model("fastpose", depth=18)
    assert load_checkpoint(nn.DataParallel(target), path)["format"] == "posecore"
    assert_same_outputs(source, target, torch.randn(2, 3, 64, 64))


# --- refusals --------------------------------------------------------------------------------
class Malicious:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": Malicious(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused.*weights_only"):
        load_checkpoint(build_model("fastpose", depth=18), path)
    assert not marker.exists()


def test_missing_and_mismatched_keys_are_listed_and_strict_false_loads_the_rest(tmp_path):
    source = randomized(build_model("fastpose", depth=18), seed=5)
    state = source.state_dict()
    del state["backbone.layer3.1.bn2.weight"]
    state["head.duc1.conv.weight"] = torch.zeros(8, 128, 3, 3)
    state["head.extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    model = build_model("fastpose", depth=18)
    untouched = model.backbone.conv1.weight.clone()
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(model, path)
    for key in ("backbone.layer3.1.bn2.weight", "head.duc1.conv.weight", "head.extra.weight"):
        assert key in str(error.value)
    assert torch.equal(model.backbone.conv1.weight, untouched)  # strict failure loads nothing
    report = load_checkpoint(model, path, strict=False)
    assert report["missing"] == ["backbone.layer3.1.bn2.weight"]
    assert report["mismatched"] == ["head.duc1.conv.weight"]
    assert report["unexpected"] == ["head.extra.weight"]
    assert torch.equal(model.backbone.conv1.weight, source.backbone.conv1.weight)


def test_checkpoint_of_another_model_or_joint_count_names_both(tmp_path, mmpose_hourglass):
    path = tmp_path / "hourglass.pth"
    torch.save({"state_dict": mmpose_hourglass.state_dict()}, path)
    with pytest.raises(CheckpointError, match="hourglass with 16 joints.*model is fastpose"):
        load_checkpoint(build_model("fastpose", depth=18), path)
    alphapose = tmp_path / "fast_res18.pth"
    torch.save(RefFastPose(18, joints=17).state_dict(), alphapose)
    model = build_model("fastpose", depth=18, num_joints=14)
    with pytest.raises(CheckpointError, match="17 joints.*model has 14 joints"):
        load_checkpoint(model, alphapose)
    report = load_checkpoint(model, alphapose, strict=False)
    assert report["mismatched"] == ["head.final_layer.weight", "head.final_layer.bias"]


def test_unrecognized_files_are_clear_errors(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="unrecognized"):
        load_checkpoint(build_model("fastpose", depth=18), path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(build_model("fastpose", depth=18), tmp_path / "nothing.pt")


# --- the common ways to save --------------------------------------------------------------------
@pytest.fixture(scope="module")
def alphapose_weights():
    """(a randomized AlphaPose FastPose-18, a posecore FastPose-18 to load into)."""
    return randomized(RefFastPose(18, joints=17), seed=4), build_model("fastpose", depth=18)


@pytest.mark.parametrize(
    "saved",
    [
        lambda state: {"model": state},
        lambda state: {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]}, "epoch": 3},
        lambda state: {"state_dict": state, "meta": {"epoch": 3}},
        lambda state: {"net": state, "iteration": 1000},
        lambda state: {"module": state},
    ],
    ids=["model", "model+optimizer", "state_dict", "net", "module"],
)
def test_a_dict_holding_one_state_dict_loads_from_it(tmp_path, alphapose_weights, saved):
    reference, model = alphapose_weights
    path = tmp_path / "saved.pth"
    torch.save(saved(reference.state_dict()), path)
    with torch.no_grad():
        model.head.final_layer.weight.zero_()
    report = load_checkpoint(model, path)
    assert report["format"] == "alphapose" and report["missing"] == report["unexpected"] == []
    assert torch.equal(model.head.final_layer.weight, reference.state_dict()["conv_out.weight"])


def test_a_posecore_model_saved_as_model_state_dict_loads(tmp_path, alphapose_weights):
    reference, model = alphapose_weights
    torch.save({"model": model.state_dict(), "epoch": 1}, tmp_path / "mine.pth")
    again = build_model("fastpose", depth=18)
    assert load_checkpoint(again, tmp_path / "mine.pth")["format"] == "posecore"
    assert_same_outputs(model, again, torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize(
    "saved, words",
    [
        (
            lambda state: {"model": state, "net": state},
            "holds a state_dict under each of ['model', 'net']; expected a state_dict (text keys -> tensors), "
            "or a dict holding exactly one under 'model' / 'state_dict' / 'net' / 'module'",
        ),
        (
            lambda state: {"weights": [1, 2], "epoch": 3},
            "found a dict of {'weights': a list, 'epoch': an int}; expected a state_dict (text keys -> tensors)",
        ),
        (
            lambda state: {**state, "epoch": 3},
            "'epoch': an int",
        ),
        (
            lambda state: {"model": {"conv.weight": [1.0]}},
            "'model': a dict of 1 entries (0 tensors)",
        ),
    ],
)
def test_what_a_checkpoint_holds_is_said_when_it_is_not_weights(tmp_path, saved, words):
    path = tmp_path / "other.pth"
    torch.save(saved(RefFastPose(18, joints=17).state_dict()), path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(build_model("fastpose", depth=18), path)
    assert words in str(error.value) and "damaged" not in str(error.value), error.value
