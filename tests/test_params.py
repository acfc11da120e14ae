import dataclasses
import typing

import pytest
import yaml

import posecore
from posecore import params as params_module
from posecore.params import ParamsError, load_params, resume_changes, save_params


def test_seed_configs_match_references():
    fast = load_params("fastpose")
    assert fast.name == "fastpose_coco"
    assert fast.data.input_size == [192, 256] and fast.data.heatmap_size == [48, 64]
    assert fast.data.mean == [0.406, 0.457, 0.480] and fast.data.std == [1.0, 1.0, 1.0]
    assert (fast.train.lr, fast.train.lr_steps, fast.train.epochs) == (1e-3, [90, 120], 200)
    assert (fast.train.dpg_epoch, fast.train.dpg_lr_steps) == (140, [160, 190])
    assert fast.train.batch_size == 32 and fast.data.rot_factor == 40 and fast.data.scale_factor == 0.3

    hg = load_params("hourglass")
    assert hg.model.name == "hourglass" and hg.model.num_joints == 16
    assert hg.data.input_size == [384, 384] and hg.data.heatmap_size == [96, 96]
    assert (hg.train.lr, hg.train.warmup_iters, hg.train.warmup_ratio) == (5e-4, 500, 0.001)
    assert hg.train.lr_steps == [170, 200] and hg.train.epochs == 210 and hg.train.val_every == 10
    assert hg.data.std == [0.229, 0.224, 0.225] and hg.data.scale_factor == 0.5


def test_overrides_and_path_loading(tmp_path):
    p = load_params("demo", {"train.lr": 5e-4, "data.root": "/data/coco", "train.epochs": 3})
    assert (p.train.lr, p.data.root, p.train.epochs) == (5e-4, "/data/coco", 3)
    path = tmp_path / "mine.yaml"
    path.write_text("model: {name: simplebaseline, depth: 18}\ntrain: {lr: 1}\n")
    q = load_params(str(path))
    assert q.name == "mine" and q.train.lr == 1.0 and isinstance(q.train.lr, float)


def test_round_trip_is_identical(tmp_path):
    p = load_params("fastpose", {"train.amp": "O1", "eval.oracle": True})
    assert p.train.amp == "fp16"  # apex alias resolved once, at load time
    save_params(p, tmp_path / "params.yaml")
    assert load_params(tmp_path / "params.yaml") == p
    assert load_params(p) == p and load_params(p) is not p


def _refused_naming(overrides: dict, words: list[str]) -> None:
    """load_params("demo", overrides) raises a ParamsError naming the file and every word."""
    with pytest.raises(ParamsError) as info:
        load_params("demo", overrides)
    message = str(info.value)
    assert "demo.yaml" in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"train.lrr": 0.1}, ["'train.lrr'", "did you mean 'train.lr'"]),
        ({"data.rooot": "x"}, ["'data.rooot'", "'data.root'"]),
        ({"train.epochs": "ten"}, ["train.epochs", "integer"]),
        ({"eval.oracle": "yes"}, ["eval.oracle", "true or false"]),
        ({"data.input_size": [192]}, ["data.input_size", "(w, h)"]),
        ({"train.amp": "fp8"}, ["train.amp", "O0/O1/O2"]),
        ({"lr": 1}, ["dotted key"]),
    ],
)
def test_bad_keys_and_types_are_named(overrides, words):
    _refused_naming(overrides, words)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"train": {"batchsize": 4}}))
    with pytest.raises(ParamsError, match=r"bad.yaml.*'train\.batchsize'.*'train\.batch_size'"):
        load_params(path)


def test_unknown_name_lists_known():
    with pytest.raises(ParamsError, match="fastpose_coco"):
        load_params("fastpose_cocoo")


def test_yaml_cannot_run_code(tmp_path):
    path = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    path.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ParamsError, match=r"evil\.yaml: line 1, column 8: not valid YAML .*python/object/apply"):
        load_params(path)
    assert not marker.exists()


def test_import_is_lazy_and_side_effect_free():
    import subprocess
    import sys

    code = "import sys, posecore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert callable(posecore.load_params)


# ----------------------------------------------------------------------------- params at the door


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"train.epochs": 0}, ["train.epochs", "> 0"]),
        ({"train.batch_size": -4}, ["train.batch_size", "> 0"]),
        ({"train.lr": float("nan")}, ["train.lr", "finite"]),
        ({"train.lr": float("inf")}, ["train.lr", "finite"]),
        ({"train.lr": "1e-3"}, ["train.lr", "write it with a dot"]),
        ({"train.lr": 0.0}, ["train.lr", "> 0"]),
        ({"train.log_every": 0}, ["train.log_every", "> 0"]),
        ({"train.momentum": 1.5}, ["train.momentum", "[0, 1]"]),
        ({"train.lr_steps": [90, -1]}, ["train.lr_steps", "each value", "-1"]),
        ({"train.seed": -1}, ["train.seed", "[0, 4294967295]"]),
        ({"train.dpg_epoch": -2}, ["train.dpg_epoch", ">= -1"]),
        ({"train.accept_changes": ["train.lrr"]}, ["train.accept_changes", "did you mean 'train.lr'"]),
        ({"data.workers": -1}, ["data.workers", ">= 0"]),
        ({"data.sigma": 0.0}, ["data.sigma", "> 0"]),
        ({"data.std": [1.0, 0.0, 1.0]}, ["data.std", "> 0"]),
        ({"data.rot_prob": 2.0}, ["data.rot_prob", "[0, 1]"]),
        ({"data.dataset": "lsp"}, ["data.dataset", "'coco'"]),
        ({"model.name": "fastpos"}, ["model.name", "did you mean 'fastpose'"]),
        ({"model.depth": 20}, ["model.depth", "ResNet depth"]),
        ({"model.num_stacks": 0}, ["model.num_stacks", "> 0"]),
        ({"model.num_joints": 16}, ["model.num_joints is 16", "'coco' has 17"]),
        ({"data.input_size": [100, 128]}, ["data.input_size [100, 128]", "multiples of 32", "[96, 128]"]),
        ({"data.heatmap_size": [48, 64]}, ["data.heatmap_size [48, 64]", "[96, 128] / 4 = [24, 32]"]),
        ({"data.input_size": [0, 128]}, ["data.input_size", "> 0"]),
        ({"dist.nnodes": 2, "dist.node_rank": 2}, ["dist.node_rank 2", "below dist.nnodes 2"]),
        ({"dist.master_port": 70000}, ["dist.master_port", "[1, 65535]"]),
        ({"eval.dark_kernel": 10}, ["eval.dark_kernel", "odd"]),
        ({"eval.oks_nms": -0.1}, ["eval.oks_nms", "[0, 1]"]),
        ({"eval.batch_size": 0}, ["eval.batch_size", "> 0"]),
    ],
)
def test_bad_values_are_refused_at_load_naming_the_key(overrides, words):
    _refused_naming(overrides, words)


def test_the_oracle_may_use_any_heatmap_size_but_training_may_not(outputs):
    import posecore

    coarse = load_params("demo", {"eval.oracle": True, "data.heatmap_size": [6, 8]})
    with pytest.raises(ParamsError, match=r"data\.heatmap_size \[6, 8\] must be .* = \[24, 32\]"):
        posecore.train(coarse, run_name="coarse")
    assert not (outputs / "coarse").exists()


def test_hourglass_needs_inputs_in_multiples_of_128():
    with pytest.raises(ParamsError, match=r"multiples of 128 for hourglass.*\[128, 128\]"):
        load_params("hourglass", {"data.input_size": [96, 128], "data.heatmap_size": [24, 32]})
    assert load_params("hourglass", {"data.input_size": [128, 256], "data.heatmap_size": [32, 64]})


def test_every_numeric_key_has_a_range():
    numeric = []
    for section, section_type in typing.get_type_hints(params_module.Params).items():
        if not dataclasses.is_dataclass(section_type):
            continue
        for key, hint in typing.get_type_hints(section_type).items():
            base = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
            if base in (int, float):
                numeric.append(f"{section}.{key}")
    assert numeric and sorted(numeric) == sorted(params_module.NUMBER_RANGES)


def test_model_geometry_matches_the_models():
    import inspect

    import torch

    from posecore import models

    assert sorted(params_module.MODEL_GEOMETRY) == sorted(models.MODELS)
    assert tuple(sorted(models.RESNET_BLOCKS)) == params_module.RESNET_DEPTHS
    for name in ("fastpose", "simplebaseline"):
        stride, multiple = params_module.MODEL_GEOMETRY[name]
        network = models.build_model(name, depth=18).eval()
        with torch.no_grad():
            assert network(torch.zeros(1, 3, 2 * multiple, multiple)).shape[-2:] == (
                2 * multiple // stride,
                multiple // stride,
            )
            off = multiple + multiple // 2  # off the multiple the heatmaps are not input / stride
            assert network(torch.zeros(1, 3, multiple, off)).shape[-1] != off // stride
    # Hourglass: a stride-4 stem, then `downsample_times` halvings that must divide evenly
    halvings = inspect.signature(models.HourglassNet).parameters["downsample_times"].default
    assert params_module.MODEL_GEOMETRY["hourglass"] == (4, 4 * 2**halvings)


# ----------------------------------------------------------------------------- resume changes


def test_resume_changes_sort_harmless_from_refused():
    saved = load_params("demo")
    accepted, refused = resume_changes(
        saved,
        load_params(
            "demo",
            {
                "train.epochs": 20,
                "data.workers": 0,
                "eval.flip_test": False,
                "train.log_every": 5,
                "train.batch_size": 16,
                "model.depth": 34,
                "train.seed": 1,
            },
        ),
    )
    assert accepted == {
        "train.epochs": [10, 20],
        "data.workers": [2, 0],
        "eval.flip_test": [True, False],
        "train.log_every": [10, 5],
    }
    assert refused == {"train.batch_size": [32, 16], "model.depth": [18, 34], "train.seed": [0, 1]}
    opted_in = load_params("demo", {"train.batch_size": 16, "train.accept_changes": ["train.batch_size"]})
    accepted, refused = resume_changes(saved, opted_in)
    assert refused == {} and accepted["train.batch_size"] == [32, 16]
