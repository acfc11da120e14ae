import pytest
import yaml

import posecore
from posecore.params import ParamsError, load_params, save_params


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


@pytest.mark.parametrize("overrides, words", [
    ({"train.lrr": 0.1}, ["'train.lrr'", "did you mean 'train.lr'"]),
    ({"data.rooot": "x"}, ["'data.rooot'", "'data.root'"]),
    ({"train.epochs": "ten"}, ["train.epochs", "integer"]),
    ({"eval.oracle": "yes"}, ["eval.oracle", "true or false"]),
    ({"data.input_size": [192]}, ["data.input_size", "(w, h)"]),
    ({"train.amp": "fp8"}, ["train.amp", "O0/O1/O2"]),
    ({"lr": 1}, ["dotted key"]),
])
def test_bad_keys_and_types_are_named(overrides, words):
    with pytest.raises(ParamsError) as info:
        load_params("demo", overrides)
    message = str(info.value)
    assert "demo.yaml" in message
    for word in words:
        assert word in message


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
    path.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(yaml.YAMLError):
        load_params(path)


def test_import_is_lazy_and_side_effect_free():
    import subprocess
    import sys
    code = "import sys, posecore; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert callable(posecore.load_params)
