"""Reproducible runs: complete records in env.json, and posecore.reproduce's verdicts.

One tiny CPU run (a few steps, then an evaluation) is trained per module; the refusal tests change
one record or data file, call reproduce, and put the original back.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
from helpers import tiny_params, tiny_synthetic

import posecore
from posecore import distributed
from posecore.data.fingerprint import data_fingerprint, file_sha256, fingerprint_changes
from posecore.environment import installed_packages
from posecore.params import ParamsError, load_params
from posecore.reproduce import main as reproduce_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(outputs root, params, data root) of run "orig": a few training steps, then `evaluate` of last.pt."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("reproduce")
    data_root = tiny_synthetic(root / "data", num_train=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSECORE_OUTPUTS", str(root / "outputs"))
        params = tiny_params(data_root, **{"train.epochs": 1})
        posecore.train(params, run_name="orig")
        posecore.evaluate(params, "last", run_name="orig")
        yield root / "outputs", params, data_root
    torch.set_num_threads(before)


@pytest.fixture
def outputs_of(trained, monkeypatch):
    monkeypatch.setenv("POSECORE_OUTPUTS", str(trained[0]))
    return trained[0]


def test_env_json_lists_packages_platform_threads_data_and_the_scored_checkpoint(trained, outputs_of):
    env = json.loads((outputs_of / "orig" / "env.json").read_text())
    assert env["packages"]["numpy"] == np.__version__ and env["packages"] == installed_packages()
    assert env["packages"]["torch"] == torch.__version__ and len(env["packages"]) > 20
    assert env["python"] and env["platform"]["machine"]
    assert env["threads"]["per_worker"] == 1 and env["deterministic"] is True
    train = env["data_fingerprint"]["train"]
    assert train["annotations"]["name"] == "person_keypoints_train2017.json"
    assert train["annotations"]["size"] > 0 and len(train["annotations"]["sha256"]) == 64
    assert train["images"]["count"] == 4 and env["data_fingerprint"]["val"]["images"]["count"] == 2
    (evaluation,) = env["evaluations"]
    checkpoint = outputs_of / "orig" / "checkpoints" / "last.pt"
    assert evaluation["checkpoint"] == "last" and evaluation["split"] == "val"
    assert evaluation["sha256"] == file_sha256(checkpoint)
    scored = json.loads((outputs_of / "orig" / "eval" / "metrics.json").read_text())
    assert scored["settings"]["checkpoint_sha256"] == evaluation["sha256"]
    assert (outputs_of / "orig" / "code.patch").is_file() == bool(env["git"]["dirty"])


def test_an_export_of_the_run_is_recorded_with_both_hashes(trained, outputs_of, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    posecore.export_onnx(trained[1], "last", onnx_path, run_name="orig", parity_batch_sizes=())
    env = json.loads((outputs_of / "orig" / "env.json").read_text())
    (export,) = env["exports"]
    assert export["onnx"] == str(onnx_path) and export["onnx_sha256"] == file_sha256(onnx_path)
    assert export["sha256"] == env["evaluations"][0]["sha256"]  # the same last.pt


def test_reproduce_is_identical_bit_for_bit(trained, outputs_of):
    result = posecore.reproduce("orig")
    assert result["verdict"] == "identical", result
    assert result["run"] == "orig-reproduce-1" and result["reasons"] == []
    before = torch.load(outputs_of / "orig" / "checkpoints" / "last.pt", weights_only=True)["model"]
    after = torch.load(outputs_of / "orig-reproduce-1" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert result["metrics"]["equal"] and result["metrics"]["keys"] > 3
    assert result["losses"]["steps"] >= 2 and result["losses"]["equal"]
    assert result["losses"]["steps_reproduced"] == result["losses"]["steps"]
    assert json.loads((outputs_of / "orig" / "reproduce.json").read_text())["run"] == "orig-reproduce-1"
    assert "Reproduction of orig: identical" in (outputs_of / "orig" / "report.html").read_text()


def test_a_changed_keypoint_in_the_train_annotations_is_refused_before_training(trained, outputs_of):
    ann_file = trained[2] / "annotations" / "person_keypoints_train2017.json"
    original = ann_file.read_bytes()
    content = json.loads(original)
    content["annotations"][0]["keypoints"][0] += 1
    ann_file.write_text(json.dumps(content))
    try:
        result = posecore.reproduce("orig", as_run="orig-after-edit")
    finally:
        ann_file.write_bytes(original)
    assert result["verdict"] == "refused" and result["run"] is None
    assert any("person_keypoints_train2017.json" in reason for reason in result["reasons"]), result["reasons"]
    assert not (outputs_of / "orig-after-edit").exists()


def test_a_recorded_package_version_is_named_with_both_versions(trained, outputs_of, capsys):
    env_file = outputs_of / "orig" / "env.json"
    original = env_file.read_text()
    env = json.loads(original)
    env["packages"]["numpy"] = "0.0.1"
    env["git"]["commit"] = "0" * 40
    env_file.write_text(json.dumps(env))
    try:
        status = reproduce_cli(["orig"])
        result = json.loads((outputs_of / "orig" / "reproduce.json").read_text())
    finally:
        env_file.write_text(original)
    assert status == 2 and result["verdict"] == "refused"
    assert f"packages: numpy 0.0.1 recorded, {np.__version__} installed" in result["reasons"]
    assert any(reason.startswith("code: commit 0000000000 recorded") for reason in result["reasons"])
    printed = capsys.readouterr().out
    assert "refused" in printed and "numpy 0.0.1 recorded" in printed


def test_fingerprint_names_what_changed_in_an_image_folder(tmp_path):
    root = tiny_synthetic(tmp_path, num_train=3)
    params = tiny_params(root)
    recorded = data_fingerprint(params, ("train", "val"))
    assert fingerprint_changes(recorded, data_fingerprint(params, ("train", "val"))) == []
    image = next((root / "train2017").iterdir())
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    (reason,) = fingerprint_changes(recorded, data_fingerprint(params, ("train", "val")))
    assert "train images in train2017/" in reason and "modification times" in reason
    shutil.copy(image, root / "train2017" / "extra.jpg")
    (reason,) = fingerprint_changes(recorded, data_fingerprint(params, ("train", "val")))
    assert "3 files recorded, 4 now" in reason


def test_threads_per_worker_follow_params_then_the_process_then_omp_then_cores(monkeypatch, tmp_path):
    params = tiny_params(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert distributed.worker_threads(load_params(params, {"dist.threads": 5}), 2)["per_worker"] == 5
    assert distributed.worker_threads(params, 1, in_process=True)["per_worker"] == torch.get_num_threads()
    assert distributed.worker_threads(params, 2)["per_worker"] == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    cores = len(os.sched_getaffinity(0))
    assert distributed.worker_threads(params, 2) == {
        "per_worker": max(1, cores // 2),
        "source": f"{cores} cores / 2 workers",
    }
    with pytest.raises(ParamsError, match="train.deterministic"):
        load_params(params, {"train.deterministic": "yes"})
    with pytest.raises(ParamsError, match="dist.threads"):
        load_params(params, {"dist.threads": -1})


@pytest.mark.slow
def test_the_reproduce_notebook_shows_the_reproduction_next_to_its_original(trained, outputs_of):
    from posecore import demo

    executed = demo.run_notebook("reproduce", "orig", {"run_name": "orig", "as_run": "orig-nb"}, stream=False)
    shown = json.dumps([cell.get("outputs") for cell in json.loads(executed.read_text())["cells"]])
    assert "Reproduction of orig: identical" in shown and "orig-nb" in shown
    assert "report.html of run orig" in shown  # the notebook ends with a link to the report
    assert json.loads((outputs_of / "orig-nb" / "reproduce.json").read_text())["verdict"] == "identical"
    compared = json.loads((outputs_of / "orig" / "tables" / "compare_runs.json").read_text())
    assert [row[0] for row in compared["rows"]] == ["orig", "orig-nb"]
