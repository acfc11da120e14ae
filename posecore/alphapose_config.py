"""AlphaPose experiment configs (its configs/<dataset>/<backbone>/*.yaml) read as posecore params.

An AlphaPose config is recognised by its upper-case sections (DATASET, DATA_PRESET, MODEL, TRAIN).
`params.load_params(path)` calls `convert` on such a file: it returns the posecore params mapping
that `load_params` validates as usual, plus one line per AlphaPose key saying where it went
(logged at INFO by load_params; `mapping(path)` returns the lines). The file is read with
posecore.files.read_yaml, as params files are (yaml.safe_load: nothing in it is evaluated).

What posecore reads:
- MODEL: TYPE FastPose (NUM_LAYERS, CONV_DIM 128 / 256) and FastPose_DUC (BACKBONE se-resnet /
  resnet, NUM_LAYERS, STAGE1-3 NUM_CONV); PRETRAINED / TRY_LOAD become model.init_checkpoint.
- DATA_PRESET: NUM_JOINTS, IMAGE_SIZE and HEATMAP_SIZE (AlphaPose writes (h, w); posecore (w, h)),
  SIGMA; TYPE must be 'simple' (heatmaps).
- DATASET.TRAIN: TYPE (Mscoco, Halpe_26, Halpe_136, coco_wholebody), ROOT and its AUG.
- TRAIN: BATCH_SIZE (per device in both), END_EPOCH, OPTIMIZER, LR, LR_FACTOR, LR_STEP,
  DPG_MILESTONE, DPG_STEP (posecore's train.dpg_* take AlphaPose's values as they are and decay
  where alphapose/opt.py + scripts/train.py do: after the DPG_STEP epochs, with train.py's gamma 0.1).
- LOSS: TYPE MSELoss, which AlphaPose's train.py halves: train.loss joints_mse, loss_weight 0.5.
Every AlphaPose config trains with uniform shuffling and full-resolution decodes (posecore's
data.group_by_image and data.reduced_decode stay off).
What posecore does not have (deformable convolutions, regression / combined losses, other model
types or datasets) is a ParamsError naming the AlphaPose key and its value. Keys that change
nothing in posecore (the detector, the test split's files, unused model keys) are listed as
ignored, with the reason.
"""

from __future__ import annotations

from typing import Any

from posecore.errors import ParamsError
from posecore.files import read_yaml

SECTIONS = ("DATASET", "DATA_PRESET", "MODEL", "TRAIN")
DATASET_TYPES = {"Mscoco": "coco", "Halpe_26": "halpe26", "Halpe_136": "halpe136", "coco_wholebody": "coco_wholebody"}
MODEL_TYPES = {"FastPose": "fastpose", "FastPose_DUC": "fastpose_duc"}
BACKBONES = ("se-resnet", "resnet")
# AlphaPose key -> posecore key, for keys whose value carries over unchanged
AUG_KEYS = {
    "FLIP": "data.flip",
    "ROT_FACTOR": "data.rot_factor",
    "SCALE_FACTOR": "data.scale_factor",
    "NUM_JOINTS_HALF_BODY": "data.half_body_min_joints",
}
TRAIN_KEYS = {
    "BATCH_SIZE": "train.batch_size",
    "END_EPOCH": "train.epochs",
    "LR": "train.lr",
    "LR_FACTOR": "train.lr_factor",
    "LR_STEP": "train.lr_steps",
    "DPG_MILESTONE": "train.dpg_epoch",
    "DPG_STEP": "train.dpg_lr_steps",
}
# keys read elsewhere by AlphaPose that change nothing posecore computes, with the reason
IGNORED = {
    "MODEL.NUM_DECONV_FILTERS": "FastPose / FastPose_DUC do not use it",
    "MODEL.FINAL_CONV_KERNEL": "AlphaPose's FastPose_DUC does not read it (its conv_out is 3x3)",
    "TRAIN.WORLD_SIZE": "AlphaPose's step is BATCH_SIZE x the GPUs it sees, as posecore's with "
    "train.global_batch 0 (batch_size x devices); set train.global_batch to fix it",
    "DATASET.TRAIN.IMG_PREFIX": "posecore reads the dataset's official layout under data.root",
    "DATASET.TRAIN.ANN": "posecore reads the dataset's official layout under data.root",
}


def is_alphapose_config(raw: Any) -> bool:
    """True for a mapping with any of AlphaPose's upper-case sections at the top level."""
    return isinstance(raw, dict) and any(section in raw for section in SECTIONS)


def mapping(path: str) -> list[str]:
    """The lines saying where each AlphaPose key of the config at `path` went."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected an AlphaPose config (a mapping of sections), got {type(raw).__name__}")
    return convert(raw, str(path))[1]


def convert(raw: dict, source: str) -> tuple[dict[str, Any], list[str]]:
    """AlphaPose config mapping -> (posecore params mapping, mapping lines).

    Raises ParamsError naming `source`, the AlphaPose key and its value for what posecore lacks.
    """
    reader = _Reader(source)
    missing = [section for section in ("DATASET", "DATA_PRESET", "MODEL") if section not in raw]
    if missing:
        raise ParamsError(
            f"{source}: an AlphaPose config needs the sections DATASET, DATA_PRESET and MODEL; {missing} missing"
        )
    for section, value in raw.items():
        handler = _SECTION_READERS.get(section)
        if handler is None:
            raise ParamsError(
                f"{source}: unknown AlphaPose section {section!r}; posecore reads {sorted(_SECTION_READERS)}"
            )
        handler(reader, reader.section(section, value))
    return reader.params, reader.lines


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.params: dict[str, Any] = {}
        self.lines: list[str] = []

    def fail(self, key: str, value: Any, why: str) -> None:
        raise ParamsError(f"{self.source}: AlphaPose {key}: {value!r}: {why}")

    def section(self, key: str, value: Any) -> dict:
        if not isinstance(value, dict):
            self.fail(key, value, "expected a mapping")
        return value

    def set(self, key: str, value: Any, target: str, converted: Any = None, note: str = "") -> None:
        converted = value if converted is None else converted
        section, name = target.split(".")
        self.params.setdefault(section, {})[name] = converted
        shown = "" if converted == value and type(converted) is type(value) else f" {converted!r}"
        self.lines.append(f"{key} {value!r} -> {target}{shown}{note}")

    def ignore(self, key: str, value: Any, why: str) -> None:
        self.lines.append(f"{key} {value!r}: ignored ({why})")

    def check_keys(self, section: str, values: dict, known: set[str]) -> None:
        unknown = [key for key in values if key not in known]
        if unknown:
            key = f"{section}.{unknown[0]}"
            self.fail(
                key, values[unknown[0]], f"not an AlphaPose key posecore reads; known in {section}: {sorted(known)}"
            )


def _model(reader: _Reader, model: dict) -> None:
    model_type = model.get("TYPE")
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
        reader.fail("MODEL.TYPE", model_type, f"posecore has AlphaPose's {sorted(MODEL_TYPES)} only")
    for key in ("DCN", "STAGE_WITH_DCN"):
        if key in model:
            reader.fail(
                f"MODEL.{key}",
                model[key],
                "deformable convolutions (DCN) are not in posecore; use the config of the model without DCN",
            )
    known = {
        "TYPE",
        "NUM_LAYERS",
        "PRETRAINED",
        "TRY_LOAD",
        "NUM_DECONV_FILTERS",
        "FINAL_CONV_KERNEL",
        "CONV_DIM",
        "BACKBONE",
        "STAGE1",
        "STAGE2",
        "STAGE3",
        "TRT",
    }
    reader.check_keys("MODEL", model, known)
    reader.set("MODEL.TYPE", model_type, "model.name", MODEL_TYPES[model_type])
    if "NUM_LAYERS" not in model:
        reader.fail("MODEL.NUM_LAYERS", None, "missing: the ResNet depth (50, 101, 152)")
    reader.set("MODEL.NUM_LAYERS", model["NUM_LAYERS"], "model.depth")
    if model_type == "FastPose":
        _fastpose(reader, model)
    else:
        _fastpose_duc(reader, model)
    _initial_weights(reader, model)
    for key in ("NUM_DECONV_FILTERS", "FINAL_CONV_KERNEL"):
        if key in model:
            reader.ignore(f"MODEL.{key}", model[key], IGNORED[f"MODEL.{key}"])
    if "TRT" in model:
        reader.ignore("MODEL.TRT", model["TRT"], "TensorRT is AlphaPose's; posecore exports ONNX")


def _fastpose(reader: _Reader, model: dict) -> None:
    for key in ("BACKBONE", "STAGE1", "STAGE2", "STAGE3"):
        if key in model:
            reader.ignore(f"MODEL.{key}", model[key], "FastPose does not read it (FastPose_DUC does)")
    conv_dim = model.get("CONV_DIM", 128)
    if conv_dim not in (128, 256):
        reader.fail("MODEL.CONV_DIM", conv_dim, "FastPose's last DUC width is 128 or 256")
    reader.set("MODEL.CONV_DIM" if "CONV_DIM" in model else "MODEL.CONV_DIM (default)", conv_dim, "model.conv_dim")


def _fastpose_duc(reader: _Reader, model: dict) -> None:
    backbone = model.get("BACKBONE")
    if backbone not in BACKBONES:
        reader.fail("MODEL.BACKBONE", backbone, f"posecore's FastPose_DUC backbones are {list(BACKBONES)}")
    reader.set("MODEL.BACKBONE", backbone, "model.backbone")
    convs = []
    for stage in ("STAGE1", "STAGE2", "STAGE3"):
        value = model.get(stage)
        if not isinstance(value, dict) or set(value) != {"NUM_CONV"}:
            reader.fail(f"MODEL.{stage}", value, "FastPose_DUC needs {NUM_CONV: n} for STAGE1-3")
        convs.append(value["NUM_CONV"])
    reader.set("MODEL.STAGE1-3.NUM_CONV", convs, "model.duc_convs")
    if "CONV_DIM" in model:
        reader.ignore("MODEL.CONV_DIM", model["CONV_DIM"], "FastPose_DUC's last DUC width is always 256")


def _initial_weights(reader: _Reader, model: dict) -> None:
    pretrained, try_load = model.get("PRETRAINED") or "", model.get("TRY_LOAD") or ""
    if pretrained and try_load:
        reader.fail("MODEL.TRY_LOAD", try_load, "set only one of PRETRAINED and TRY_LOAD")
    if pretrained:
        reader.set("MODEL.PRETRAINED", pretrained, "model.init_checkpoint")
    elif try_load:
        reader.set("MODEL.TRY_LOAD", try_load, "model.init_checkpoint")
        reader.set("MODEL.TRY_LOAD", True, "model.skip_mismatched_head")
    for key in ("PRETRAINED", "TRY_LOAD"):
        if key in model and not model[key]:
            reader.ignore(f"MODEL.{key}", model[key], "empty")


def _data_preset(reader: _Reader, preset: dict) -> None:
    for key in ("LOSS_TYPE", "NORM_TYPE"):
        if key in preset:
            reader.fail(
                f"DATA_PRESET.{key}",
                preset[key],
                "regression outputs are not in posecore (it trains heatmaps with the MSE loss)",
            )
    reader.check_keys("DATA_PRESET", preset, {"TYPE", "SIGMA", "NUM_JOINTS", "IMAGE_SIZE", "HEATMAP_SIZE"})
    if preset.get("TYPE", "simple") != "simple":
        reader.fail("DATA_PRESET.TYPE", preset["TYPE"], "posecore reads 'simple' (heatmap) presets only")
    if "NUM_JOINTS" not in preset:
        reader.fail("DATA_PRESET.NUM_JOINTS", None, "missing: the model's joint count")
    reader.set("DATA_PRESET.NUM_JOINTS", preset["NUM_JOINTS"], "model.num_joints")
    for key, target in (("IMAGE_SIZE", "data.input_size"), ("HEATMAP_SIZE", "data.heatmap_size")):
        size = preset.get(key)
        if not isinstance(size, list) or len(size) != 2:
            reader.fail(f"DATA_PRESET.{key}", size, "expected [height, width]")
        reader.set(f"DATA_PRESET.{key}", size, target, [size[1], size[0]], note=" ((h, w) -> (w, h))")
    if "SIGMA" in preset:
        reader.set("DATA_PRESET.SIGMA", preset["SIGMA"], "data.sigma")


def _dataset(reader: _Reader, dataset: dict) -> None:
    reader.check_keys("DATASET", dataset, {"TRAIN", "VAL", "TEST"})
    if "TRAIN" not in dataset:
        reader.fail("DATASET.TRAIN", None, "missing: the training set's TYPE, ROOT and AUG")
    train = reader.section("DATASET.TRAIN", dataset["TRAIN"])
    kind = train.get("TYPE")
    if not isinstance(kind, str) or kind not in DATASET_TYPES:
        reader.fail("DATASET.TRAIN.TYPE", kind, f"posecore reads AlphaPose's {sorted(DATASET_TYPES)}")
    reader.check_keys("DATASET.TRAIN", train, {"TYPE", "ROOT", "IMG_PREFIX", "ANN", "AUG"})
    reader.set("DATASET.TRAIN.TYPE", kind, "data.dataset", DATASET_TYPES[kind])
    root = train.get("ROOT")
    if root is not None:
        if not isinstance(root, str):
            reader.fail("DATASET.TRAIN.ROOT", root, "expected one folder")
        reader.set("DATASET.TRAIN.ROOT", root, "data.root", _plain_path(root))
    for key in ("IMG_PREFIX", "ANN"):
        if key in train:
            reader.ignore(f"DATASET.TRAIN.{key}", train[key], IGNORED[f"DATASET.TRAIN.{key}"])
    _augmentation(reader, reader.section("DATASET.TRAIN.AUG", train.get("AUG", {})))
    for split in ("VAL", "TEST"):
        if split in dataset:
            _other_split(reader, split, reader.section(f"DATASET.{split}", dataset[split]), kind)


def _augmentation(reader: _Reader, aug: dict) -> None:
    reader.check_keys("DATASET.TRAIN.AUG", aug, {*AUG_KEYS, "PROB_HALF_BODY"})
    for key, target in AUG_KEYS.items():
        if key in aug:
            reader.set(f"DATASET.TRAIN.AUG.{key}", aug[key], target)
    if "PROB_HALF_BODY" in aug:  # AlphaPose turns half-body crops off with a negative probability
        probability = aug["PROB_HALF_BODY"]
        off = isinstance(probability, (int, float)) and probability < 0
        reader.set("DATASET.TRAIN.AUG.PROB_HALF_BODY", probability, "data.half_body_prob", 0.0 if off else probability)


def _other_split(reader: _Reader, split: str, values: dict, train_type: str) -> None:
    """VAL / TEST name the same set as TRAIN (TEST as '<TYPE>_det' with detector boxes)."""
    kind = values.get("TYPE")
    if kind not in (train_type, f"{train_type}_det"):
        reader.fail(
            f"DATASET.{split}.TYPE",
            kind,
            f"posecore validates and tests on the training set's "
            f"keypoint set ({train_type!r} or {train_type + '_det'!r})",
        )
    for key, value in values.items():
        why = (
            "posecore evaluates on the dataset's val split; data.det_file names detector boxes"
            if key == "DET_FILE"
            else "posecore reads the dataset's official layout under data.root"
        )
        reader.ignore(f"DATASET.{split}.{key}", value, "the same keypoint set" if key == "TYPE" else why)


def _train(reader: _Reader, train: dict) -> None:
    reader.check_keys("TRAIN", train, {*TRAIN_KEYS, "OPTIMIZER", "BEGIN_EPOCH", "WORLD_SIZE"})
    optimizer = train.get("OPTIMIZER", "adam")
    if optimizer != "adam":
        reader.fail(
            "TRAIN.OPTIMIZER", optimizer, "posecore reads AlphaPose's 'adam' (its 'rmsprop' is not in posecore)"
        )
    reader.set("TRAIN.OPTIMIZER", optimizer, "train.optimizer")
    for key, target in TRAIN_KEYS.items():
        if key in train:
            reader.set(f"TRAIN.{key}", train[key], target)
    if train.get("BEGIN_EPOCH", 0) != 0:
        reader.fail(
            "TRAIN.BEGIN_EPOCH",
            train["BEGIN_EPOCH"],
            "posecore starts at epoch 0 and continues a run from its last checkpoint (train.resume); set 0",
        )
    if "WORLD_SIZE" in train:
        reader.ignore("TRAIN.WORLD_SIZE", train["WORLD_SIZE"], IGNORED["TRAIN.WORLD_SIZE"])
    if "DPG_STEP" in train:  # train.py's second MultiStepLR hard-codes gamma 0.1, whatever LR_FACTOR is
        reader.set("TRAIN.DPG_STEP", train["DPG_STEP"], "train.dpg_lr_factor", 0.1, note=" (train.py's gamma)")


def _loss(reader: _Reader, loss: dict) -> None:
    if loss.get("TYPE") != "MSELoss":
        reader.fail(
            "LOSS.TYPE",
            loss.get("TYPE"),
            "posecore trains heatmaps with 'MSELoss' only (regression and combined losses are not in posecore)",
        )
    reader.check_keys("LOSS", loss, {"TYPE"})
    # scripts/train.py computes 0.5 * MSELoss(output * mask, target * mask)
    reader.set("LOSS.TYPE", "MSELoss", "train.loss", "joints_mse")
    reader.set("LOSS.TYPE", "MSELoss", "train.loss_weight", 0.5, note=" (train.py's 0.5 factor)")


def _detector(reader: _Reader, values: dict) -> None:
    for key, value in values.items():
        reader.ignore(f"DETECTOR.{key}", value, "posecore's person boxes come from infer.* and data.det_file")


def _test(reader: _Reader, values: dict) -> None:
    for key, value in values.items():
        reader.ignore(f"TEST.{key}", value, "posecore decodes with its codec (data.codec, eval.decode)")


def _plain_path(root: str) -> str:
    """'./data/coco/' -> 'data/coco' (relative paths in params are relative to the repository)."""
    root = root.rstrip("/") or root
    return root[2:] if root.startswith("./") else root


_SECTION_READERS = {
    "DATASET": _dataset,
    "DATA_PRESET": _data_preset,
    "MODEL": _model,
    "TRAIN": _train,
    "LOSS": _loss,
    "DETECTOR": _detector,
    "TEST": _test,
}
