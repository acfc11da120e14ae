"""AlphaPose experiment configs read as posecore params (posecore.alphapose_config).

The fixtures are three of AlphaPose's own config files (tests/fixtures/alphapose/README.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from posecore import alphapose_config
from posecore.params import ParamsError, flat_params, load_params

FIXTURES = Path(__file__).parent / "fixtures" / "alphapose"
DUC152 = FIXTURES / "coco_256x192_res152_lr1e-3_1x-duc.yaml"
HALPE26 = FIXTURES / "halpe26_256x192_res50_lr1e-3_1x.yaml"
HALPE136 = FIXTURES / "halpe136_256x192_res50_lr1e-3_2x.yaml"


def test_fastpose_duc_config_reads_every_mapped_key():
    params = load_params(DUC152)
    assert params.name == DUC152.stem
    model, data, train = params.model, params.data, params.train
    assert (model.name, model.depth, model.backbone, model.duc_convs) == ("fastpose_duc", 152, "se-resnet", [4, 2, 1])
    assert model.num_joints == 17 and data.dataset == "coco" and data.root == "data/coco"
    assert data.input_size == [192, 256] and data.heatmap_size == [48, 64]  # (h, w) -> (w, h)
    assert (data.sigma, data.flip, data.rot_factor, data.scale_factor) == (2.0, True, 40.0, 0.3)
    assert (data.half_body_prob, data.half_body_min_joints) == (0.0, 8)  # PROB_HALF_BODY -1: off
    assert (train.batch_size, train.epochs, train.optimizer, train.lr) == (32, 200, "adam", 1e-3)
    assert (train.lr_steps, train.lr_factor) == ([90, 120], 0.1)
    assert (train.dpg_epoch, train.dpg_lr_steps) == (140, [160, 190])


def test_params_file_mirrors_the_alphapose_duc_config():
    mirrored, read = flat_params(load_params("fastpose_duc152_coco")), flat_params(load_params(DUC152))
    differing = {key for key in read if read[key] != mirrored[key]}
    assert differing == {"name", "data.workers"}


def test_halpe136_config_has_the_wide_fastpose_head():
    params = load_params(HALPE136)
    assert (params.model.name, params.model.depth, params.model.conv_dim) == ("fastpose", 50, 256)
    assert params.model.num_joints == 136 and params.data.dataset == "halpe136"
    assert (params.data.rot_factor, params.data.scale_factor, params.data.half_body_prob) == (45.0, 0.35, 0.3)
    assert (params.train.epochs, params.train.dpg_epoch) == (270, 210)


def test_halpe26_config_reads_as_halpe26_with_26_joints():
    params = load_params(HALPE26)
    assert params.data.dataset == "halpe26" and params.model.num_joints == 26
    assert (params.model.name, params.model.conv_dim) == ("fastpose", 128)
    assert params.data.half_body_min_joints == 11 and params.train.batch_size == 48
    # params/halpe26_fastpose.yaml, written from the same AlphaPose config by hand, agrees
    mirrored, read = flat_params(load_params("halpe26_fastpose")), flat_params(params)
    assert {key for key in read if read[key] != mirrored[key]} == {"name", "data.workers"}


def test_load_params_logs_where_each_key_went(caplog):
    with caplog.at_level(logging.INFO, logger="posecore.params"):
        load_params(DUC152, {"train.epochs": 3})
    text = caplog.text
    assert "MODEL.TYPE 'FastPose_DUC' -> model.name 'fastpose_duc'" in text
    assert "DATA_PRESET.IMAGE_SIZE [256, 192] -> data.input_size [192, 256]" in text
    assert "MODEL.FINAL_CONV_KERNEL 1: ignored" in text and "DETECTOR.NAME 'yolo': ignored" in text
    lines = alphapose_config.mapping(str(DUC152))  # the same lines, returned
    assert len(lines) > 30 and all(line in text for line in lines)


def test_overrides_apply_on_top_of_an_alphapose_config():
    params = load_params(DUC152, {"train.epochs": 3, "model.duc_convs": [2, 2, 1]})
    assert params.train.epochs == 3 and params.model.duc_convs == [2, 2, 1]


def _edited(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load(DUC152.read_text())
    edit(raw)
    path = tmp_path / "edited.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda raw: raw["MODEL"].update(DCN={"MODULATED": False}, STAGE_WITH_DCN=[False, True, True, True]),
            ["MODEL.DCN", "deformable"],
        ),
        (lambda raw: raw["LOSS"].update(TYPE="Combined"), ["LOSS.TYPE", "'Combined'"]),
        (
            lambda raw: raw["DATA_PRESET"].update(LOSS_TYPE="L1JointRegression"),
            ["DATA_PRESET.LOSS_TYPE", "'L1JointRegression'", "regression"],
        ),
        (lambda raw: raw["MODEL"].update(TYPE="SimplePose"), ["MODEL.TYPE", "'SimplePose'", "FastPose_DUC"]),
        (lambda raw: raw["MODEL"].update(BACKBONE="shuffle"), ["MODEL.BACKBONE", "'shuffle'", "se-resnet"]),
        (lambda raw: raw["MODEL"].pop("STAGE2"), ["MODEL.STAGE2", "NUM_CONV"]),
        (lambda raw: raw["DATASET"]["TRAIN"].update(TYPE="ConcatDataset"), ["DATASET.TRAIN.TYPE", "'ConcatDataset'"]),
        (lambda raw: raw["DATASET"]["VAL"].update(TYPE="Halpe_26"), ["DATASET.VAL.TYPE", "'Halpe_26'"]),
        (
            lambda raw: raw["DATASET"]["TRAIN"]["AUG"].update(COLOR_FACTOR=0.2),
            ["DATASET.TRAIN.AUG.COLOR_FACTOR", "0.2"],
        ),
        (lambda raw: raw["TRAIN"].update(OPTIMIZER="rmsprop"), ["TRAIN.OPTIMIZER", "'rmsprop'"]),
        (lambda raw: raw["DATA_PRESET"].update(TYPE="simple_smpl"), ["DATA_PRESET.TYPE", "'simple_smpl'"]),
        (lambda raw: raw.update(SMPL={}), ["SMPL", "section"]),
        (lambda raw: raw["MODEL"].update(TYPE=["FastPose"]), ["MODEL.TYPE", "['FastPose']"]),
        (lambda raw: raw["DATASET"]["TRAIN"].update({7: "x"}), ["DATASET.TRAIN.7", "'x'"]),
        (lambda raw: raw["MODEL"].update(STAGE1={"NUM_CONV": "4"}), ["model.duc_convs", "MODEL.STAGE1-3.NUM_CONV"]),
        # a value posecore refuses names the AlphaPose key it came from
        (lambda raw: raw["DATA_PRESET"].update(SIGMA=-1), ["data.sigma", "DATA_PRESET.SIGMA -1"]),
        (lambda raw: raw["MODEL"].update(NUM_LAYERS=34), ["model.depth", "MODEL.NUM_LAYERS 34"]),
        (
            lambda raw: raw["DATA_PRESET"].update(HEATMAP_SIZE=[32, 24]),
            ["data.heatmap_size", "DATA_PRESET.HEATMAP_SIZE"],
        ),
    ],
)
def test_what_posecore_lacks_is_an_error_naming_key_and_value(tmp_path, edit, words):
    path = _edited(tmp_path, edit)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    message = str(error.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_fastpose_conv_dim_is_128_or_256(tmp_path):
    def to_fastpose(raw, conv_dim):
        raw["MODEL"] = {"TYPE": "FastPose", "NUM_LAYERS": 101, "CONV_DIM": conv_dim}

    assert load_params(_edited(tmp_path, lambda raw: to_fastpose(raw, 256))).model.conv_dim == 256
    with pytest.raises(ParamsError, match="MODEL.CONV_DIM: 64"):
        load_params(_edited(tmp_path, lambda raw: to_fastpose(raw, 64)))


def test_posecore_params_files_are_not_taken_for_alphapose():
    assert not alphapose_config.is_alphapose_config({"model": {"name": "fastpose"}})
    assert alphapose_config.is_alphapose_config(yaml.safe_load(DUC152.read_text()))
