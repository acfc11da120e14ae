"""Deployment you can trust: every ONNX export of a run scored on the run's own val set.

`score_export(run_name, path)` (posecore.score_export) runs an export (any precision) through
Predictor.from_onnx with the run's eval protocol (its eval params: split, flip test, decoding),
compares its metric (AP for COCO-style sets, PCKh for MPII) with the PyTorch checkpoint it was
exported from, times it at batch 1 and 8 and weighs the file, and records one entry per precision
in the run's export.json (Run.export_scores_path): the metric under its usual name, `delta`
against PyTorch (the metric's own units), `latency_ms` per batch size, `size_mb`, and `flagged`
when it loses more than export.max_metric_drop points (AP x 100 / PCKh), which also warns.
`export_and_score(run_name, params, checkpoint, precisions)` exports each precision into the run
folder (Run.onnx_path) and scores it: what export.ipynb runs.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from typing import Any

import numpy as np

from posecore.evaluation import evaluate_predictor, primary_metric
from posecore.export import export_onnx
from posecore.files import read_json, write_json
from posecore.onnx_metadata import read_metadata
from posecore.params import Params, load_params
from posecore.predictor import Predictor
from posecore.runs import Run, resolve_path

LATENCY_BATCHES = (1, 8)
LATENCY_REPEATS = 10


def score_export(
    run_name: str, path: str | os.PathLike, threads: int | None = None, repeats: int = LATENCY_REPEATS
) -> dict[str, Any]:
    """One export of run `run_name` scored and recorded in export.json (see the module docstring);
    returns its entry. `threads`: onnxruntime intra-op threads (None: its default)."""
    run, path = Run(run_name), resolve_path(path)
    params = load_params(run.eval_params_path if run.eval_params_path.is_file() else run.params_path)
    metadata = read_metadata(path)
    precision = metadata.get("precision", "fp32")
    predictor = Predictor.from_onnx(path, params, device="cpu", threads=threads)
    name = primary_metric(params)
    value = evaluate_predictor(predictor, params)[name]
    reference = _pytorch_metric(run, params, metadata.get("checkpoint"), name)
    points = 100.0 if name != "PCKh" else 1.0  # AP is a fraction, PCKh a percentage
    drop = (reference - value) * points
    entry = {
        "precision": precision,
        "file": str(os.path.relpath(path, run.folder)),
        name: value,
        "pytorch": reference,
        "delta": value - reference,
        "latency_ms": {str(batch): _latency_ms(predictor, batch, repeats) for batch in LATENCY_BATCHES},
        "threads": threads,
        "size_mb": round(path.stat().st_size / 2**20, 2),
        "max_metric_drop": params.export.max_metric_drop,
        "flagged": bool(drop > params.export.max_metric_drop),
    }
    if entry["flagged"]:
        warnings.warn(
            f"{path}: the {precision} export loses {drop:.2f} {name} points against PyTorch "
            f"({value:.4g} vs {reference:.4g}; export.max_metric_drop {params.export.max_metric_drop}): "
            "do not ship it as if it were the same model",
            RuntimeWarning,
            stacklevel=2,
        )
    with run.lock("export scores"):
        scores = read_export_scores(run_name)
        scores[precision] = entry
        write_json(run.export_scores_path, scores)
    return entry


def read_export_scores(run_name: str) -> dict[str, dict]:
    """The run's export.json: {precision: entry} ({} without one)."""
    path = Run(run_name).export_scores_path
    scores = read_json(path) if path.is_file() else {}
    if not isinstance(scores, dict):
        kind = type(scores).__name__
        raise ValueError(f"{path}: expected {{precision: entry}}, got {kind}; delete it and score the exports again")
    return scores


def export_and_score(
    run_name: str,
    params: Params,
    checkpoint: str | os.PathLike | None,
    precisions: list[str] | tuple[str, ...] = ("fp32",),
    threads: int | None = None,
    exported: dict | None = None,
) -> dict[str, dict]:
    """Export `checkpoint` of run `run_name` at each precision into the run folder (keypoints
    decoded in the graph, as export.ipynb exports) and score each (score_export); fp16 and int8
    are converted from an fp32 export of the same weights. Returns {precision: entry}."""
    entries = {}
    for precision in dict.fromkeys(precisions):  # each once, in the order asked
        path = Run(run_name).onnx_path(precision)
        export_onnx(params, checkpoint, path, decode=True, run_name=run_name, precision=precision)
        entries[precision] = score_export(run_name, path, threads=threads)
    return entries


def _pytorch_metric(run: Run, params: Params, checkpoint_name: str | None, name: str) -> float:
    """The metric of the PyTorch checkpoint an export came from: the run's evaluation when it
    scored that file, else the checkpoint evaluated now with the same params."""
    evaluated = run.eval_metrics(required=False)
    scored = evaluated.get("settings", {}).get("checkpoint")
    if checkpoint_name and scored and os.path.basename(scored) == checkpoint_name and name in evaluated:
        return float(evaluated[name])
    if not checkpoint_name:  # exported from weights as built (or the oracle): nothing to compare with
        raise ValueError(f"{run.name}: the export names no checkpoint, so it has no PyTorch metric to compare with")
    path = run.checkpoints_dir / checkpoint_name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the export's checkpoint is not in run {run.name!r}; evaluate it first")
    return float(evaluate_predictor(Predictor.from_checkpoint(params, path, device="cpu"), params)[name])


def _latency_ms(predictor: Predictor, batch: int, repeats: int) -> float:
    """Median milliseconds of the export's forward on `batch` random crops (after a warm-up)."""
    width, height = predictor.input_size
    images = np.random.default_rng(0).standard_normal((batch, 3, height, width)).astype(np.float32)
    predictor.forward(images)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.forward(images)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)
