"""Each export scored: export_onnx at fp32 / fp16 / int8 into the run folder, posecore.score_export's
export.json entries (metric, delta against the PyTorch checkpoint, latency, size), and the flag on
an export that loses accuracy."""

from __future__ import annotations

import pytest

import posecore
from posecore.deploy import export_and_score, read_export_scores
from posecore.files import write_json
from posecore.onnx_metadata import read_metadata
from posecore.runs import Run


@pytest.fixture
def trained(tiny, outputs):
    """A tiny run trained one epoch and evaluated on its last checkpoint: its params."""
    params = tiny(**{"train.epochs": 1, "export.calibration_images": 4})
    posecore.train(params, run_name="deploy")
    posecore.evaluate(params, "last", run_name="deploy", verbose=False)
    return params


def test_every_precision_is_exported_scored_and_recorded(trained):
    run = Run("deploy")
    entries = export_and_score("deploy", trained, "last", ["fp32", "fp16", "int8"], threads=1)
    assert list(entries) == ["fp32", "fp16", "int8"] and read_export_scores("deploy") == entries
    pytorch = run.eval_metrics()["AP"]
    for precision, entry in entries.items():
        path = run.onnx_path(precision)
        assert path.is_file() and entry["file"] == path.name
        assert read_metadata(path).get("precision", "fp32") == precision
        assert entry["pytorch"] == pytest.approx(pytorch) and entry["delta"] == pytest.approx(entry["AP"] - pytorch)
        assert set(entry["latency_ms"]) == {"1", "8"} and all(ms > 0 for ms in entry["latency_ms"].values())
        assert entry["size_mb"] == pytest.approx(path.stat().st_size / 2**20, abs=0.01)
        assert not entry["flagged"] and entry["threads"] == 1
    # the same weights: fp16 scores what fp32 scores here, int8 within the tiny model's noise
    assert entries["fp16"]["AP"] == pytest.approx(entries["fp32"]["AP"], abs=0.01)
    assert entries["int8"]["size_mb"] < entries["fp32"]["size_mb"]


def test_an_export_that_loses_accuracy_is_flagged_and_warned(trained):
    run = Run("deploy")
    path = run.onnx_path("fp32")
    posecore.export_onnx(trained, "last", path, decode=True, run_name="deploy", parity_batch_sizes=())
    # the run's evaluation of that checkpoint said AP 0.9: the export is far below it
    metrics = run.eval_metrics()
    write_json(run.eval_files.metrics, {**metrics, "AP": 0.9})
    with pytest.warns(RuntimeWarning, match="the fp32 export loses .* AP points against PyTorch"):
        entry = posecore.score_export("deploy", path)
    assert entry["flagged"] and entry["pytorch"] == 0.9 and entry["delta"] < -0.5
    assert read_export_scores("deploy")["fp32"]["flagged"]
