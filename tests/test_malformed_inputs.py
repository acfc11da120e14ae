"""Property-based: every file posecore reads, mutated at random, either reads or fails with a
ValueError / OSError (or posecore's subclass) whose message names the file (params overrides:
the key). Readers are called the way posecore calls them (build_dataset per split,
DetectionsFile, load_params with overrides), and what they return is checked to be usable:
every person instance finite, with a positive box.

Bases: the real samples (../shared/samples, skipped when absent) and small synthetic sets.
The examples per reader are bounded and derandomized (the same mutations every run); a failure
prints the edits that made the file (tests/mutation.py) and hypothesis' reproduction blob.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import SAMPLES
from helpers import stand_in_pose_onnx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from mutation import VALUES, mutate

from posecore import data
from posecore.detect import DetectionsFile
from posecore.params import flat_params, load_params

# no shrinking: the edits a failing example made are printed (`note`), and shrinking a large file
# takes minutes
FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    print_blob=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def reads_or_names(read, *names: str):
    """read() -> its result, or None after a ValueError / OSError naming one of `names`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read()
    except (ValueError, OSError) as error:
        assert any(name in str(error) for name in names), f"{type(error).__name__} names none of {names}: {error}"
        return None


def check_instances(dataset) -> None:
    """What a reader returned is usable: finite boxes of positive size, finite joints (each person
    as PoseDataset hands it out)."""
    if dataset is None:
        return
    for inst in dataset.instances:
        assert np.isfinite(inst.bbox_center).all() and np.isfinite(inst.bbox_scale).all()
        assert (inst.bbox_scale > 0).all() and np.isfinite(inst.joints).all()
        assert np.isfinite(inst.visible).all() and np.isfinite(inst.bbox_score)
        assert isinstance(inst.image_path, str) and isinstance(inst.image_id, (int, np.integer))


def load(path: Path):
    return json.loads(path.read_text())


def write(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))  # NaN / Infinity as Python's json writes them
    return path


# --------------------------------------------------------------------------- bases


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("synthetic")
    return {
        dataset: data.make_synthetic(folder / dataset, dataset, num_train=3, num_val=2, image_size=64)
        for dataset in ("coco", "custom", "mpii")
    }


COCO_FILES = ("person_keypoints_train2017.json", "person_keypoints_val2017.json")


@pytest.fixture(scope="module")
def coco_bases(synthetic, tmp_path_factory) -> list[tuple[str, dict[str, dict]]]:
    """(dataset, {annotation file: content}) of the COCO-style sets: the real samples, synthetic
    coco / custom, and COCO-WholeBody and Halpe files made from the synthetic people."""
    from wholebody_files import make_halpe, make_wholebody

    from posecore.data.layouts import LAYOUTS

    folder = tmp_path_factory.mktemp("wholebody")
    roots = [
        ("coco", synthetic["coco"]),
        ("custom", synthetic["custom"]),
        ("coco_wholebody", make_wholebody(synthetic["coco"], folder / "wholebody")),
        ("halpe136", make_halpe(synthetic["coco"], folder / "halpe")),
    ]
    if (SAMPLES / "coco" / "annotations").is_dir():
        roots.insert(0, ("coco", SAMPLES / "coco"))
    return [(dataset, {name: load(root / name) for name in LAYOUTS[dataset].annotations}) for dataset, root in roots]


def coco_params(root: Path, dataset: str, **overrides):
    from posecore.keypoints import keypoint_info

    joints = {} if dataset == "custom" else {"model.num_joints": keypoint_info(dataset).num_joints}
    return load_params(
        "demo",
        {
            "data.root": str(root),
            "data.dataset": dataset,
            "data.workers": 0,
            "eval.sigmas": "uniform" if dataset == "custom" else [],
            **joints,
            **overrides,
        },
    )


# --------------------------------------------------------------------------- COCO keypoint files


@settings(FUZZ, max_examples=120)  # five bases: ~24 mutations each
@given(st.data())
def test_mutated_coco_files_read_or_name_the_file(coco_bases, tmp_path, outputs, data_draw):
    dataset, files = data_draw.draw(st.sampled_from(coco_bases), label="base")
    target = data_draw.draw(st.sampled_from(sorted(files)), label="file")
    root = tmp_path / "root"
    shutil.rmtree(root, ignore_errors=True)
    for name, content in files.items():
        write(root / name, mutate(data_draw, content) if name == target else content)
    params = coco_params(root, dataset)
    split = "train" if "train" in target else "val"
    name = Path(target).name
    check_instances(reads_or_names(lambda: data.build_dataset(params, split), name))
    path = root / target
    reads_or_names(lambda: data.check_annotations(path, dataset), name)
    reads_or_names(lambda: data.annotation_stats(path, dataset), name)
    reads_or_names(lambda: data.resolve_keypoints(params), *COCO_FILES)


# --------------------------------------------------------------------------- detections files


@pytest.fixture(scope="module")
def detection_bases(synthetic) -> list[tuple[Path, list]]:
    """(COCO root, detections) pairs: the real val detections, and boxes made from the synthetic
    val people."""
    val = load(synthetic["coco"] / "annotations" / COCO_FILES[1])
    made = [
        {"image_id": ann["image_id"], "category_id": 1, "bbox": ann["bbox"], "score": 0.9} for ann in val["annotations"]
    ]
    bases = [(synthetic["coco"], made)]
    real = SAMPLES / "coco" / "detections" / "person_detections_val2017.json"
    if real.is_file():
        bases.insert(0, (SAMPLES / "coco", load(real)[:40]))
    return bases


@FUZZ
@given(st.data())
def test_mutated_detection_files_read_or_name_the_file(detection_bases, tmp_path, outputs, data_draw):
    root, detections = data_draw.draw(st.sampled_from(detection_bases), label="base")
    path = write(tmp_path / "dets.json", mutate(data_draw, detections))
    params = coco_params(root, "coco", **{"data.det_file": str(path)})
    check_instances(reads_or_names(lambda: data.build_dataset(params, "test"), "dets.json"))
    reads_or_names(lambda: DetectionsFile(path).boxes_for(_frame_of(detections), (640, 480)), "dets.json")


def _frame_of(detections):
    from posecore.detect import Frame

    return Frame(index=0, name=f"{detections[0]['image_id']:012d}.jpg")


# --------------------------------------------------------------------------- MPII files


@pytest.fixture(scope="module")
def mpii_bases(synthetic) -> list[list]:
    bases = [load(synthetic["mpii"] / "annotations" / "mpii_val.json")]
    real = SAMPLES / "mpii" / "annotations" / "mpii_val.json"
    if real.is_file():
        bases.insert(0, load(real))
    return bases


@FUZZ
@given(st.data())
def test_mutated_mpii_files_read_or_name_the_file(mpii_bases, tmp_path, outputs, data_draw):
    base = data_draw.draw(st.sampled_from(mpii_bases), label="base")
    root = tmp_path / "root"
    shutil.rmtree(root, ignore_errors=True)
    path = write(root / "annotations" / "mpii_val.json", mutate(data_draw, base))
    write(root / "annotations" / "mpii_train.json", base)
    params = load_params("hourglass", {"data.root": str(root), "data.workers": 0})
    check_instances(reads_or_names(lambda: data.build_dataset(params, "val"), "mpii_val.json"))
    reads_or_names(lambda: data.check_annotations(path, "mpii"), "mpii_val.json")
    reads_or_names(lambda: data.annotation_stats(path, "mpii"), "mpii_val.json")


# --------------------------------------------------------------------------- params

YAML_BASES = (
    *sorted((Path(__file__).parent / "fixtures" / "alphapose").glob("*.yaml")),  # AlphaPose's own configs
    Path(__file__).parents[1] / "params" / "fastpose_coco.yaml",
    Path(__file__).parents[1] / "params" / "rtmpose_m_coco.yaml",
)


PARAM_KEYS = sorted(flat_params(load_params("demo")))


@FUZZ
@given(st.data())
def test_mutated_params_overrides_load_or_name_the_key(data_draw):
    key = data_draw.draw(st.sampled_from([*PARAM_KEYS, "train", "train.nope", "nope.lr", "train.lr.x"]), label="key")
    value = data_draw.draw(
        st.sampled_from([*VALUES, [float("nan")], [1e308, 1], [-1, -2], ["a", "b"], [[1, 2]], [[1, "x"]], [[0, 99]]]),
        label="value",
    )
    reads_or_names(lambda: load_params("demo", {key: value}), key)


@settings(FUZZ, max_examples=150)
@given(st.data())
def test_mutated_params_files_load_or_name_the_file(tmp_path, data_draw):
    """A params file or an AlphaPose config with its values mutated: params, or an error naming
    the file."""
    source = data_draw.draw(st.sampled_from([Path(__file__).parents[1] / "params" / "fastpose_coco.yaml", *YAML_BASES]))
    base = yaml.safe_load(source.read_text())
    path = tmp_path / "mutated.yaml"
    path.write_text(yaml.safe_dump(mutate(data_draw, base)))
    reads_or_names(lambda: load_params(path), "mutated.yaml")


YAML_PIECES = [": ", "- ", "[", "]", "{", "}", "'", '"', "&a ", "*a", "!!python/object:os.system ", "\t", "  ",
               "#", "? ", "|", ">", "%YAML 1.1\n", "---\n", "...\n", "\x00", "1e999", ".nan", "0x1F", "~", ",", "@",
               "`"]  # fmt: skip


@settings(FUZZ, max_examples=120)
@given(st.data())
def test_mutated_yaml_text_loads_or_names_the_file(tmp_path, data_draw):
    """A params file or AlphaPose config changed as text (pieces of YAML syntax put in, lines cut,
    duplicated or re-indented, bytes that are not UTF-8, brackets nested thousands deep): params,
    or a ParamsError naming the file (with line and column for a syntax error), never yaml's own
    errors, a RecursionError or a UnicodeDecodeError."""
    from posecore import alphapose_config
    from posecore.errors import ParamsError

    base = data_draw.draw(st.sampled_from(YAML_BASES), label="base")
    text = base.read_bytes()
    for _ in range(data_draw.draw(st.integers(1, 3), label="edits")):
        at = data_draw.draw(st.integers(0, len(text)), label="at")
        edit = data_draw.draw(st.sampled_from(["piece", "cut", "line twice", "indent", "bytes", "nesting"]))
        if edit == "piece":
            text = text[:at] + data_draw.draw(st.sampled_from(YAML_PIECES)).encode() + text[at:]
        elif edit == "cut":
            text = text[:at] + text[at + data_draw.draw(st.integers(1, 40), label="cut") :]
        elif edit in ("line twice", "indent"):
            start = text.rfind(b"\n", 0, at) + 1
            end = text.find(b"\n", at) + 1 or len(text)
            text = text[:start] + (text[start:end] if edit == "line twice" else b"   ") + text[start:]
        elif edit == "bytes":
            text = text[:at] + data_draw.draw(st.binary(min_size=1, max_size=4), label="bytes") + text[at:]
        else:
            depth = data_draw.draw(st.sampled_from([50, 3000]), label="depth")
            text = text[:at] + b"[" * depth + b"]" * depth + text[at:]
    path = tmp_path / "mutated.yaml"
    path.write_bytes(text)
    try:
        load_params(path)
    except ParamsError as error:
        assert "mutated.yaml" in str(error), error
        if "not valid YAML" in str(error):
            assert re.search(r"mutated\.yaml: line \d+, column \d+: not valid YAML", str(error)), error
    try:
        alphapose_config.mapping(str(path))
    except ParamsError as error:
        assert "mutated.yaml" in str(error), error


@pytest.mark.parametrize(
    "text, words",
    [
        (b"model:\n  name: [fastpose\n", "line 3, column 1: not valid YAML"),
        (b"model: {name: fastpose\ndata: 1\n", "not valid YAML"),
        (b"model: !!python/object/apply:os.system [ls]\n", "line 1, column 8: not valid YAML"),
        (b"model:\n  name: fastpose\xff\n", "line 2, column 17: byte 0xff is not UTF-8 text"),
        (b"model: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nests deeper than the YAML parser goes"),
        (b"- a\n- b\n", "expected a mapping of sections at the top level"),
    ],
)
def test_yaml_that_cannot_be_read_is_a_params_error_with_line_and_column(tmp_path, text, words):
    from posecore.errors import ParamsError

    path = tmp_path / "broken.yaml"
    path.write_bytes(text)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert str(error.value).startswith(f"{path}:") and words in str(error.value), error.value


# --------------------------------------------------------------------------- the reported cases


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: c["images"][1].update(id=[5]), ["images[1]", "id is a list", "expected an integer"]),
        (lambda c: c["images"][1].update(width={}), ["images[1]", "width is a dict", "positive number"]),
        (lambda c: c["images"].insert(2, 3.5), ["images[2] is 3.5", "expected an object"]),
        (lambda c: c["images"][0].pop("file_name"), ["images[0]", "file_name is null"]),
        (lambda c: c["images"][0].update(height=1e308), ["images[0]", "height is 1e+308"]),
        (lambda c: c.update(images={"a": 1}), ["'images' is a dict", "expected a list"]),
        (lambda c: c["images"].append(dict(c["images"][0])), ["repeats the id"]),
    ],
)
def test_unusable_image_entries_name_file_entry_and_key(synthetic, tmp_path, outputs, change, words):
    coco = load(synthetic["coco"] / "annotations" / COCO_FILES[1])
    change(coco)
    write(tmp_path / "annotations" / COCO_FILES[1], coco)
    with pytest.raises(ValueError) as error:
        data.build_dataset(coco_params(tmp_path, "coco"), "val")
    for word in [COCO_FILES[1], *words]:
        assert word in str(error.value)


def test_absurd_person_entries_are_skipped_and_counted(synthetic, tmp_path, outputs):
    coco = load(synthetic["coco"] / "annotations" / COCO_FILES[1])
    people = coco["annotations"]
    people[0]["bbox"][2] = float("inf")
    people[1]["keypoints"][3] = 1e308
    people[2]["image_id"] = [people[2]["image_id"]]
    people[3]["image_id"] = 10**400
    people.append(dict(people[4]))  # the same id twice
    write(tmp_path / "annotations" / COCO_FILES[1], coco)
    bad = data.check_annotations(tmp_path / "annotations" / COCO_FILES[1], "coco")
    assert bad.counts == {
        "bbox is not 4 finite numbers [x, y, w, h]": 1,
        "keypoint values beyond 1e+06 px": 1,
        "image_id is not an integer": 2,
        "id repeats an earlier entry's": 1,
    }
    with pytest.warns(UserWarning, match=r"skipped 5 of \d+ person entries"):
        dataset = data.build_dataset(coco_params(tmp_path, "coco"), "val")
    check_instances(dataset)
    assert len(dataset) == len(data.build_dataset(coco_params(synthetic["coco"], "coco"), "val")) - 4


# --------------------------------------------------------------------------- ONNX metadata


@pytest.fixture(scope="module")
def onnx_bases(tmp_path_factory):
    """Stand-in pose models (tests/helpers.stand_in_pose_onnx) with their metadata: the demo's
    heatmaps (dynamic batch), RTMPose's SimCC pair (batch 1)."""
    import onnx

    from posecore.onnx_metadata import read_metadata

    folder = tmp_path_factory.mktemp("onnx")
    paths = [
        stand_in_pose_onnx(folder / "heatmaps.onnx"),
        stand_in_pose_onnx(folder / "simcc.onnx", load_params("rtmpose"), fixed_batch=True),
    ]
    return [(onnx.load(str(path)), read_metadata(path)) for path in paths]


def graph_shapes(proto) -> dict[str, list]:
    """{input / output name: its dims without the batch} of a ModelProto."""
    return {
        value.name: [dim.dim_value for dim in value.type.tensor_type.shape.dim[1:]]
        for value in [*proto.graph.input, *proto.graph.output]
    }


@settings(FUZZ, max_examples=100)
@given(st.data())
def test_mutated_onnx_metadata_loads_or_names_the_file(onnx_bases, tmp_path, data_draw):
    """Metadata mutated at random: refused naming the file, or a Predictor whose input, outputs
    and joint count are the graph's (never metadata that contradict it, read as they are)."""
    import onnx

    from posecore.onnx_metadata import set_metadata
    from posecore.predictor import Predictor

    proto, metadata = data_draw.draw(st.sampled_from(onnx_bases), label="base")
    mutated = mutate(data_draw, metadata)
    set_metadata(proto, mutated if isinstance(mutated, dict) else {})
    path = tmp_path / "pose.onnx"
    onnx.save(proto, str(path))
    model = reads_or_names(lambda: Predictor.from_onnx(path, device="cpu"), "pose.onnx")
    set_metadata(proto, metadata)
    if model is not None:
        shapes = graph_shapes(proto)
        assert model.codec.input_size == tuple(mutated["input_size"]) and len(model.info.joint_names) > 0
        assert [3, *model.codec.input_size[::-1]] == shapes["image"]
        assert {name: list(shape) for name, shape in model.codec.output_shapes(model.num_joints).items()} == {
            name: shapes[name] for name in model.codec.output_names
        }
        assert np.isfinite(model.mean).all() and (model.std > 0).all() and model.bbox_padding > 0


def heatmap_metadata(**sizes):
    """Metadata changes with the heatmap stride that goes with them (consistent in themselves)."""
    from posecore.codec import codec_class

    def change(metadata):
        changed = {**metadata, **sizes}
        return {**changed, **codec_class(metadata["codec"])(changed["input_size"], changed["heatmap_size"]).metadata()}

    return change


def custom_joints(count: int):
    def change(metadata):
        names = [f"joint{i}" for i in range(count)]
        return {**metadata, "dataset": "custom", "joint_names": names, "flip_pairs": [], "skeleton": [],
                "oks_sigmas": [0.05] * count}  # fmt: skip

    return change


@pytest.mark.parametrize(
    "base, change, words",
    [
        (0, heatmap_metadata(heatmap_size=[48, 64]), "output 'heatmaps' is [N, 17, 32, 24] in the graph"),
        (0, heatmap_metadata(input_size=[192, 256], heatmap_size=[24, 32]), "the input is 'image' [N, 3, 128, 96]"),
        (0, custom_joints(5), "heatmaps [N, 5, 32, 24]"),
        (0, lambda m: {**m, "outputs": ["heatmaps", "keypoints"]}, "the list of outputs is ['heatmaps']"),
        (1, lambda m: {**m, "simcc_split_ratio": 3.0, "simcc_size": [576, 768]}, "simcc_x [N, 17, 576]"),
        (1, custom_joints(3), "simcc_x [N, 3, 384]"),
    ],
)
def test_onnx_metadata_contradicting_the_graph_is_refused_by_name(onnx_bases, tmp_path, base, change, words):
    """Metadata that agree with themselves but not with the graph: refused before any prediction,
    naming the file, what the graph has and what the metadata say."""
    import onnx

    from posecore.onnx_metadata import set_metadata
    from posecore.predictor import Predictor

    proto, metadata = onnx_bases[base]
    set_metadata(proto, change(metadata))
    path = tmp_path / "contradicting.onnx"
    onnx.save(proto, str(path))
    set_metadata(proto, metadata)
    with pytest.raises(ValueError, match="the metadata contradict the graph") as error:
        Predictor.from_onnx(path, device="cpu")
    assert "contradicting.onnx" in str(error.value) and words in str(error.value), error.value


@pytest.mark.parametrize("codec", [["msra"], {"name": "msra"}, 3, None, "nope"])
def test_an_unknown_codec_in_the_metadata_is_named(onnx_bases, tmp_path, codec):
    import onnx

    from posecore.onnx_metadata import set_metadata
    from posecore.predictor import Predictor

    proto, metadata = onnx_bases[0]
    set_metadata(proto, {**metadata, "codec": codec})
    onnx.save(proto, str(tmp_path / "codec.onnx"))
    set_metadata(proto, metadata)
    with pytest.raises(ValueError, match=r"codec.onnx: metadata codec is .*, expected one of"):
        Predictor.from_onnx(tmp_path / "codec.onnx", device="cpu")


def test_a_file_that_is_not_onnx_is_named(tmp_path):
    from posecore.predictor import Predictor

    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage that is no protobuf \xff\xfe")
    with pytest.raises(ValueError, match="broken.onnx is not an ONNX model"):
        Predictor.from_onnx(path, device="cpu")


# --------------------------------------------------------------------------- a run's checkpoint and records


@pytest.fixture(scope="module")
def run_base():
    """What a resumed run reads before it starts: last.pt (as the engine writes it, a small model
    standing in), params.yaml and env.json."""
    import torch

    from posecore.checkpoints import POSECORE_FORMAT, capture_rng

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, 3, 5, 5)).sum().backward()
    optimizer.step()
    checkpoint = {
        "format": POSECORE_FORMAT,
        "model_name": "fastpose",
        "num_joints": 17,
        "model": {f"head.{k}": v for k, v in model.state_dict().items()},
        "epoch": 2,
        "epoch_step": 0,
        "step": 8,
        "optimizer": optimizer.state_dict(),
        "scheduler": {"lr": 0.002},
        "scaler": {},
        "rng": capture_rng(),
        "best_metric": 0.5,
        "skipped_steps": 0,
    }
    params = load_params("demo")
    return checkpoint, params, {"world_size": 1, "npus": 1, "device_type": "cpu"}


@FUZZ
@given(st.data())
def test_mutated_run_files_resume_or_name_the_file(run_base, tmp_path, data_draw):
    import torch

    from posecore.checkpoints import read_checkpoint, split_checkpoint
    from posecore.errors import TrainingError
    from posecore.files import write_json
    from posecore.resume import check_resume
    from posecore.runs import Run

    checkpoint, params, env = run_base
    folder = tmp_path / "run"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "checkpoints").mkdir(parents=True)
    target = data_draw.draw(st.sampled_from(["last.pt", "env.json", "params.yaml"]), label="file")
    last = folder / "checkpoints" / "last.pt"
    torch.save(mutate(data_draw, checkpoint) if target == "last.pt" else checkpoint, last)
    write_json(folder / "env.json", mutate(data_draw, env) if target == "env.json" else env)
    saved = params.to_dict()
    (folder / "params.yaml").write_text(yaml.safe_dump(mutate(data_draw, saved) if target == "params.yaml" else saved))
    try:
        check_resume(Run.at(folder), params, world_size=1)
    except (ValueError, OSError, TrainingError) as error:  # TrainingError: refused changes, named by run
        assert target in str(error) or (isinstance(error, TrainingError) and str(folder) in str(error)), error
    if target == "last.pt":
        reads_or_names(lambda: split_checkpoint(read_checkpoint(last), last), "last.pt")


RECORDS = ("params.yaml", "env.json", "log.jsonl", "metrics.json", "eval/metrics.json", "notebooks/eval.ipynb")


@pytest.fixture(scope="module")
def run_records(synthetic) -> dict[str, Any]:
    """What a trained and evaluated run records (the files of RECORDS), as posecore writes them,
    on the synthetic COCO set: every key reproduce and compare_runs read."""
    import sys

    from posecore.data.fingerprint import data_fingerprint

    params = coco_params(synthetic["coco"], "coco")
    threads = {"per_worker": 1, "source": "dist.threads"}
    env = {
        "python": sys.version.split()[0],
        "packages": {"numpy": "2.0.0", "torch": "2.13.0"},
        "device_type": "cpu",
        "device_names": ["cpu"],
        "npus": 1,
        "nnodes": 1,
        "node_rank": 0,
        "world_size": 1,
        "git": {"commit": "abc", "dirty": False, "patch": None, "patch_sha256": None},
        "threads": {**threads, "interop": 2},
        "deterministic": True,
        "started": "2025-01-01T00:00:00",
        "data_fingerprint": data_fingerprint(params, ("train", "val")),
        "evaluations": [
            {"checkpoint": "last", "path": None, "sha256": None, "split": "val", "npus": 1, "threads": threads}
        ],
    }
    log = [
        {"type": "train", "epoch": 0, "step": 4, "loss": 0.01, "lr": 0.002, "images_per_s": 40.0, "skipped": 0},
        {"type": "val", "epoch": 0, "step": 4, "AP": 0.31},
        {"type": "params_changed", "changed": {"train.epochs": [1, 2]}, "time": "2025-01-01T00:01:00"},
        {"type": "summary", "epochs": 1, "steps": 4, "images_per_s": 41.0, "skipped_steps": 0, "stopped": None},
    ]
    notebook = {
        "cells": [],
        "metadata": {"papermill": {"parameters": {"checkpoint": "last", "npus": 1, "run_name": "run-a"}}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return {
        "params.yaml": params.to_dict(),
        "env.json": env,
        "log.jsonl": log,
        "metrics.json": {"epoch": 0, "step": 4, "AP": 0.31},
        "eval/metrics.json": {"AP": 0.3},
        "notebooks/eval.ipynb": notebook,
    }


@FUZZ
@given(st.data())
def test_mutated_run_records_compare_reproduce_or_name_the_file(run_records, outputs, monkeypatch, data_draw):
    """compare_runs / read_run, and reproduce's reading (the re-run plan, the drift check, the
    comparison of losses and metrics) over a run whose params.yaml, env.json, log.jsonl (lines of
    every type), metrics files or executed notebook were mutated: the answer, or an error naming
    the file."""
    from posecore import reproduce
    from posecore.experiments import compare_runs, read_run
    from posecore.params import load_params as load
    from posecore.runs import Run

    # "now" as the records say, without asking git and the package index (not what is tested)
    monkeypatch.setattr(reproduce, "git_state", lambda: {"commit": "abc", "dirty": False})
    monkeypatch.setattr(reproduce, "code_diff", lambda: "")
    monkeypatch.setattr(reproduce, "installed_packages", lambda: run_records["env.json"]["packages"])
    target = data_draw.draw(st.sampled_from(RECORDS), label="file")
    records = {**run_records, target: mutate(data_draw, run_records[target])}
    folder = outputs / "run-a"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "eval").mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(records["params.yaml"]))
    log = records["log.jsonl"] if isinstance(records["log.jsonl"], list) else [records["log.jsonl"]]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    for name in ("env.json", "metrics.json", "eval/metrics.json", "notebooks/eval.ipynb"):
        write(folder / name, records[name])
    name = target.split("/")[-1]
    row = reads_or_names(lambda: read_run("run-a"), name)
    if row is not None:
        assert row["run"] == "run-a" and isinstance(row["state"], str)
        reads_or_names(lambda: compare_runs(["run-a"]), name)
    run = Run.at(folder)
    plan = reads_or_names(lambda: reproduce.rerun_plan(folder, run.env()), name)
    if plan is not None:
        assert isinstance(plan["npus"], int) and plan["npus"] >= 1 and isinstance(plan["refusals"], list)
    reasons = reads_or_names(lambda: reproduce.drift(folder, run.env(), load(run.params_path)), name)
    assert reasons is None or all(isinstance(reason, str) for reason in reasons)
    result = reads_or_names(lambda: reproduce.compare(folder, folder), name)
    assert result is None or result["verdict"] == "identical"  # a run compared with itself


def _line(log: list, index: int, **changes) -> list:
    return [{**record, **changes} if n == index else record for n, record in enumerate(log)]


@pytest.mark.parametrize(
    "target, change, words",
    [
        ("env.json", lambda env: [env], "env.json: the top level is [{"),
        ("env.json", lambda env: {**env, "git": 3}, "env.json: git is 3 (int), expected an object"),
        ("env.json", lambda env: {**env, "evaluations": "x"}, "env.json: evaluations is 'x', expected a list"),
        ("env.json", lambda env: {**env, "nnodes": [2]}, "env.json: nnodes is [2] (list), expected an integer >= 1"),
        ("env.json", lambda env: {**env, "nnodes": "x"}, "env.json: nnodes is 'x', expected an integer >= 1"),
        (
            "env.json",
            lambda env: {**env, "evaluations": [{**env["evaluations"][0], "npus": 0}]},
            "env.json: evaluations[0].npus is 0 (int), expected an integer >= 1",
        ),
        (
            "env.json",
            lambda env: {**env, "git": {"commit": "abc", "patch": "../code.patch"}},
            "env.json: git.patch is '../code.patch', expected a file name or null",
        ),
        ("log.jsonl", lambda log: _line(log, 0, step={}), "log.jsonl: line 1 (train): step is {} (dict), expected an"),
        ("log.jsonl", lambda log: _line(log, 2, changed=1e308), "line 3 (params_changed): changed is 1e+308 (float)"),
        (
            "log.jsonl",
            lambda log: _line(log, 1, type=["val"]),
            "log.jsonl: line 2: type is ['val'] (list), expected one",
        ),
        (
            "log.jsonl",
            lambda log: [{k: v for k, v in log[0].items() if k != "step"}],
            "line 1 (train): step is missing",
        ),
        ("metrics.json", lambda metrics: [0.3], "metrics.json: the top level is [0.3] (list), expected an object"),
        ("notebooks/eval.ipynb", lambda notebook: "a string", "eval.ipynb: the top level is 'a string', expected a"),
        (
            "notebooks/eval.ipynb",
            lambda notebook: {"metadata": {"papermill": {"parameters": {"npus": "x"}}}},
            "eval.ipynb: metadata.papermill.parameters.npus is 'x', expected an integer >= 1",
        ),
    ],
)
def test_the_reported_run_records_are_named_with_file_key_and_type(run_records, outputs, target, change, words):
    from posecore import reproduce
    from posecore.experiments import read_run
    from posecore.records import RecordError
    from posecore.runs import Run

    folder = outputs / "run-a"
    (folder / "eval").mkdir(parents=True)
    (folder / "params.yaml").write_text(yaml.safe_dump(run_records["params.yaml"]))
    log = change(run_records["log.jsonl"]) if target == "log.jsonl" else run_records["log.jsonl"]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    for name in ("env.json", "metrics.json", "eval/metrics.json", "notebooks/eval.ipynb"):
        write(folder / name, change(run_records[name]) if name == target else run_records[name])
    reader = {
        "notebooks/eval.ipynb": lambda: reproduce.rerun_plan(folder, Run.at(folder).env()),
        "metrics.json": lambda: reproduce.compare_metrics(folder, folder),
    }.get(target, lambda: read_run("run-a"))
    with pytest.raises(RecordError) as error:
        reader()
    assert words in str(error.value) and str(folder) in str(error.value), error.value


def test_evaluation_scores_without_the_skipped_entries(synthetic, tmp_path, outputs):
    """Malformed people are left out of COCOeval's ground truth as they are out of the dataset:
    pycocotools never sees them (an unhashable image_id would stop it)."""
    import posecore

    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for subset in ("train2017", "val2017"):
        (root / subset).symlink_to(synthetic["coco"] / subset)
    coco = load(synthetic["coco"] / "annotations" / COCO_FILES[1])
    coco["annotations"][0]["image_id"] = [coco["annotations"][0]["image_id"]]
    coco["annotations"][1]["bbox"] = None
    write(root / "annotations" / COCO_FILES[1], coco)
    write(root / "annotations" / COCO_FILES[0], load(synthetic["coco"] / "annotations" / COCO_FILES[0]))
    with pytest.warns(UserWarning, match=r"skipped 2 of \d+ person entries"):
        metrics = posecore.evaluate(coco_params(root, "coco", **{"eval.oracle": True}), None, run_name="skipped")
    assert 0.5 < metrics["AP"] <= 1


# --------------------------------------------------------------------------- the people cache


@pytest.fixture(scope="module")
def cache_bases(synthetic) -> list[tuple[Any, str, Any]]:
    """(params, split, the people as parsed: People built from load_instances) of the cached
    splits: the real COCO train and val people, their detector boxes (test split) and the MPII
    val people; the synthetic COCO set without the samples."""
    from posecore.data.people import People

    cases = [(coco_params(synthetic["coco"], "coco"), "train")]
    if (SAMPLES / "coco" / "annotations").is_dir():
        detections = SAMPLES / "coco" / "detections" / "person_detections_val2017.json"
        cases = [
            (coco_params(SAMPLES / "coco", "coco"), "train"),
            (coco_params(SAMPLES / "coco", "coco"), "val"),
            (coco_params(SAMPLES / "coco", "coco", **{"data.det_file": str(detections)}), "test"),
            (load_params("hourglass", {"data.root": str(SAMPLES / "mpii"), "data.workers": 0}), "val"),
        ]
    bases = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the samples' skipped entries
        for params, split in cases:
            instances, info, ann_file, _ = data.load_instances(params, split)
            bases.append((params, split, People.from_instances(instances, info.num_joints), ann_file))
    return bases


CACHE_DAMAGE = ("truncate", "flip", "append", "dtype", "shape", "delete", "manifest edit", "garbage", "empty")


def damage_cache(draw, folder: Path) -> str:
    """One drawn change to a saved people folder: a file cut short, bits flipped, bytes appended,
    an array saved again as another dtype or shape, a file deleted, the manifest edited as JSON
    (tests/mutation.py), a file replaced by random bytes or emptied. Returns what was done."""
    from posecore.data.people import MANIFEST

    files = sorted(path.name for path in folder.iterdir())
    name = draw.draw(st.sampled_from([*files, *[MANIFEST] * 3]), label="file")  # the manifest a quarter of the time
    kind = draw.draw(st.sampled_from(CACHE_DAMAGE), label="damage")
    path = folder / name
    content = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(content[: draw.draw(st.integers(0, max(len(content) - 1, 0)), label="keep")])
    elif kind == "flip":
        changed = bytearray(content)
        for _ in range(draw.draw(st.integers(1, 3), label="flips")):
            at = draw.draw(st.integers(0, len(changed) - 1), label="at")
            changed[at] ^= 1 << draw.draw(st.integers(0, 7), label="bit")
        path.write_bytes(bytes(changed))
    elif kind == "append":
        path.write_bytes(content + b"\x00" * draw.draw(st.integers(1, 64), label="extra"))
    elif kind in ("dtype", "shape") and name.endswith(".npy"):
        array = np.load(path)
        if kind == "dtype":
            other = draw.draw(st.sampled_from(["float64", "float32", "int64", "int32", "uint8"]), label="dtype")
            array = array.astype(other if other != array.dtype.name else "float16")
        else:
            change = draw.draw(st.sampled_from(["extra row", "drop row", "flatten"]), label="shape change")
            array = {
                "extra row": lambda a: np.concatenate([a, a[:1] if len(a) else np.zeros((1, *a.shape[1:]), a.dtype)]),
                "drop row": lambda a: a[1:] if len(a) else a.reshape(-1, 1),
                "flatten": lambda a: a.reshape(-1) if a.ndim > 1 else a.reshape(-1, 1),
            }[change](array)
        np.save(path, array)
    elif kind == "delete":
        path.unlink()
    elif kind == "manifest edit" and name == MANIFEST:
        path.write_text(json.dumps(mutate(draw, json.loads(content))))
    else:  # garbage, empty (and the kinds above on a file they do not apply to)
        size = 0 if kind == "empty" else draw.draw(st.integers(1, 256), label="size")
        path.write_bytes(draw.draw(st.binary(min_size=size, max_size=size), label="bytes"))
    return f"{kind} {name}"


def assert_same_people(people, expected) -> None:
    for name, array in expected.arrays.items():
        np.testing.assert_array_equal(np.asarray(people.arrays[name]), array, err_msg=name)


@settings(FUZZ, max_examples=60)
@given(st.data())
def test_a_damaged_people_cache_loads_the_same_people_or_names_it(cache_bases, outputs, data_draw):
    """The property: whatever happened to the cache folder, load_people gives back exactly the
    people the annotation file holds (rebuilt, with a warning naming the folder) or an error
    naming the folder; never other people. A second load then reads the rebuilt cache."""
    params, split, expected, ann_file = data_draw.draw(st.sampled_from(cache_bases), label="base")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = data.load_people(params, split)[0].folder
    done = damage_cache(data_draw, folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            people, _, loaded_from, _ = data.load_people(params, split)
        except (ValueError, OSError) as error:
            assert str(folder) in str(error), f"{done}: {error}"
            return
    assert_same_people(people, expected)
    assert loaded_from == ann_file and people.folder == folder, done
    rebuilt = [str(w.message) for w in caught if "annotation cache" in str(w.message)]
    assert all(str(folder) in message for message in rebuilt), rebuilt
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_same_people(data.load_people(params, split)[0], expected)
    assert not [w for w in caught if "annotation cache" in str(w.message)], f"{done}: not rebuilt for good"
