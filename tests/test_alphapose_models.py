"""posecore's FastPose (NUM_LAYERS, CONV_DIM) and FastPose_DUC against AlphaPose's own modules.

CI cannot fetch AlphaPose, so these tests pin what was verified against it (AlphaPose
c60106d, alphapose/models/fastpose.py and fastpose_duc.py with layers/SE_Resnet.py, Resnet.py,
DUC.py, built from the configs in tests/fixtures/alphapose as AlphaPose's builder does):
- the parameter count and the key layout (sha256 of the sorted "key shape" lines) of AlphaPose's
  state_dict, which posecore's state_dict renamed to AlphaPose's names must equal;
- the output of AlphaPose's model with `seeded` weights on a fixed input, which posecore must
  reproduce after loading those weights from an AlphaPose-format file.
The verification itself (max |diff| 0 at 256x192 and 64x48, bare and `module.` state_dicts)
is in the issue 23a report; it was run with AlphaPose's modules in a scratch environment.
"""

from __future__ import annotations

import hashlib
import zlib

import pytest
import torch
import yaml

from posecore import alphapose_config
from posecore.checkpoints import load_checkpoint, load_model
from posecore.models import build_model
from posecore.params import load_params
from tests.test_alphapose_config import DUC152, HALPE26, HALPE136

# posecore prefix -> AlphaPose's (the inverse of posecore.checkpoints' renaming)
TO_ALPHAPOSE = {"backbone.": "preact.", "head.final_layer.": "conv_out.", "head.": ""}
SE_PARTS = {".se.fc1.": ".se.fc.0.", ".se.fc2.": ".se.fc.2."}
# config -> (AlphaPose's parameter count, number of state_dict keys, layout hash)
ALPHAPOSE_MODELS = {
    HALPE26: (40_588_122, 348, "736cb4aeeaa75f97"),
    HALPE136: (42_052_296, 348, "9cb474ad4f5c3ab3"),
    DUC152: (83_199_825, 990, "6621d7d2f74dcc03"),
}
# AlphaPose's output on torch.randn(2, 3, 64, 48) (generator seed 0) with `seeded` weights:
# shape, sum, sum of |x|, out[0, 0, 0, :3]. 48 is no multiple of 32: the maps come out 16 x 16.
SEEDED_OUTPUTS = {
    HALPE136: (
        (2, 136, 16, 16),
        590.30212,
        6760.6484,
        [-0.016829440370202065, 0.07249073684215546, 0.023007728159427643],
    ),
    DUC152: ((2, 17, 16, 16), -212.53722, 1004.2295, [0.12414303421974182, 0.1864953488111496, 0.19383303821086884]),
}
# FastPose_DUC-50 on a plain ResNet, DUC convs (3, 2, 2): the DUC-152 config with these MODEL keys
PLAIN_DUC = {
    "BACKBONE": "resnet",
    "NUM_LAYERS": 50,
    "STAGE1": {"NUM_CONV": 3},
    "STAGE2": {"NUM_CONV": 2},
    "STAGE3": {"NUM_CONV": 2},
}
PLAIN_DUC_PINS = (
    35_202_641,
    362,
    "7ea04876cd94eea8",
    ((2, 17, 16, 16), -431.01511, 816.07587, [0.04547221586108208, 0.10916891694068909, 0.10586223006248474]),
)


def model_params(raw: dict, source: str):
    """The config's ModelParams, built without its dataset (the Halpe sets are issue 23b's)."""
    converted, _ = alphapose_config.convert(raw, source)
    return converted["model"]


def alphapose_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in model.state_dict().items():
        for ours, theirs in TO_ALPHAPOSE.items():
            if key.startswith(ours):
                key = theirs + key[len(ours) :]
                break
        for ours, theirs in SE_PARTS.items():
            key = key.replace(ours, theirs)
        state[key] = value
    return state


def layout_hash(state: dict[str, torch.Tensor]) -> str:
    text = "\n".join(f"{key} {tuple(value.shape)}" for key, value in sorted(state.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def seeded(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Values drawn from each AlphaPose key's crc32, so that both sides get the same weights
    whatever their module order; scaled to keep activations O(1) through ResNet-152."""
    out = {}
    for key, value in state.items():
        if not value.is_floating_point():
            out[key] = value.clone()
            continue
        generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        module, leaf = key.rsplit(".", 1)
        batch_norm = f"{module}.running_mean" in state
        if value.dim() > 1:
            out[key] = torch.randn(value.shape, generator=generator) / value[0].numel() ** 0.5
        elif batch_norm and leaf == "weight":
            out[key] = 0.2 + 0.3 * torch.rand(value.shape, generator=generator)
        elif batch_norm and leaf == "running_var":
            out[key] = 1 + torch.rand(value.shape, generator=generator)
        else:
            out[key] = 0.1 * torch.randn(value.shape, generator=generator)
    return out


def built(raw: dict, source: str, meta: bool = False) -> torch.nn.Module:
    """The config's posecore model with uninitialized weights (built on the meta device: the
    tests load every tensor, so initializing 40-80M parameters would be wasted time); `meta`:
    left there (shapes only)."""
    settings = model_params(raw, source)
    with torch.device("meta"):
        model = build_model(settings.pop("name"), **settings)
    return model if meta else model.to_empty(device="cpu")


def assert_reproduces(model: torch.nn.Module, pins: tuple, tmp_path, prefix: str = "") -> None:
    shape, total, absolute, first = pins
    path = tmp_path / "alphapose.pth"
    torch.save({prefix + k: v for k, v in seeded(alphapose_state(model)).items()}, path)
    report = load_checkpoint(model, path)
    assert report["format"] == "alphapose" and report["missing"] == report["unexpected"] == []
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.eval()(x)
    assert tuple(out.shape) == shape
    assert out[0, 0, 0, :3].tolist() == pytest.approx(first, abs=1e-5)
    assert out.sum().item() == pytest.approx(total, rel=1e-4, abs=1e-2)
    assert out.abs().sum().item() == pytest.approx(absolute, rel=1e-4)


@pytest.mark.parametrize("config", list(ALPHAPOSE_MODELS), ids=lambda path: path.stem)
def test_parameter_count_and_key_layout_are_alphapose(config):
    model = built(yaml.safe_load(config.read_text()), str(config), meta=True)
    count, keys, digest = ALPHAPOSE_MODELS[config]
    state = alphapose_state(model)
    assert sum(p.numel() for p in model.parameters()) == count
    assert len(state) == keys and layout_hash(state) == digest


@pytest.mark.parametrize("config", list(SEEDED_OUTPUTS), ids=lambda path: path.stem)
def test_alphapose_checkpoint_reproduces_alphapose_output(config, tmp_path):
    model = built(yaml.safe_load(config.read_text()), str(config))
    assert_reproduces(model, SEEDED_OUTPUTS[config], tmp_path, prefix="module.")


def test_fastpose_duc_on_a_plain_resnet(tmp_path):
    raw = yaml.safe_load(DUC152.read_text())
    raw["MODEL"].update(PLAIN_DUC)
    model = built(raw, "plain-duc")
    count, keys, digest, pins = PLAIN_DUC_PINS
    state = alphapose_state(model)
    assert sum(p.numel() for p in model.parameters()) == count
    assert len(state) == keys and layout_hash(state) == digest
    assert not any(".se." in key for key in state)
    assert_reproduces(model, pins, tmp_path)


def test_load_model_reads_an_alphapose_duc_checkpoint_through_its_config(tmp_path):
    params = load_params(DUC152, {"model.depth": 50, "model.duc_convs": [2, 1, 1]})  # smaller, same code
    path = tmp_path / "fastpose_duc.pth"
    weights = seeded(
        alphapose_state(
            built(
                yaml.safe_load(DUC152.read_text())
                | {
                    "MODEL": {
                        **yaml.safe_load(DUC152.read_text())["MODEL"],
                        "NUM_LAYERS": 50,
                        "STAGE1": {"NUM_CONV": 2},
                        "STAGE2": {"NUM_CONV": 1},
                    }
                },
                "duc50",
            )
        )
    )
    torch.save(weights, path)
    model, fmt = load_model(params, path)
    assert fmt == "alphapose" and type(model).__name__ == "FastPoseDUC" and not model.training
    loaded = alphapose_state(model)
    assert loaded.keys() == weights.keys() and all(torch.equal(weights[key], loaded[key]) for key in weights)


def test_a_checkpoint_of_another_alphapose_model_is_refused_with_the_fix(tmp_path):
    raw = yaml.safe_load(HALPE136.read_text())
    wide = tmp_path / "wide.pth"  # FastPose-50 with CONV_DIM 256
    torch.save(alphapose_state(built(raw, "wide")), wide)
    with pytest.raises(ValueError, match="model.conv_dim") as error:
        load_model(load_params(HALPE136, {"model.conv_dim": 128}), wide)
    assert "head.duc2.conv.weight" in str(error.value)
    raw["MODEL"] = {
        "TYPE": "FastPose_DUC",
        "BACKBONE": "resnet",
        "NUM_LAYERS": 50,
        **{f"STAGE{i}": {"NUM_CONV": 1} for i in (1, 2, 3)},
    }
    duc = tmp_path / "duc.pth"
    torch.save(alphapose_state(built(raw, "duc")), duc)
    with pytest.raises(ValueError, match="holds fastpose_duc .* build a fastpose_duc model"):
        load_checkpoint(built(yaml.safe_load(HALPE136.read_text()), "fastpose"), duc)
