"""export.ipynb's sections: the parity and latency tables, the standalone example, and each
precision exported and scored (posecore.deploy) as one table kept for report.html's ONNX export
section."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from posecore.data import (
    build_dataset,
)
from posecore.deploy import export_and_score
from posecore.files import REPO_ROOT
from posecore.params import Params
from posecore.report import Table, keep, run_relative
from posecore.runs import Run, run_dir

# --- export --------------------------------------------------------------------------------------


def parity_table(exported: dict) -> Table:
    """onnxruntime against PyTorch: max abs difference per batch size and output."""
    parity = exported.get("parity") or {}
    rows = [
        [batch, name, diff, "yes" if diff <= parity.get("tolerance", 0) else "NO"]
        for batch, diffs in (parity.get("batches") or {}).items()
        for name, diff in diffs.items()
    ]
    rows += [
        ["people, Predictor", f"keypoints (median px), {case}", found["median_px"], "yes" if found["ok"] else "NO"]
        for case, found in (parity.get("predictor") or {}).items()
    ]
    folder = Path(exported["path"]).parent  # the run folder, where the export notebook writes
    weights = run_relative(exported["checkpoint"], folder) if exported.get("checkpoint") else "as built (no checkpoint)"
    note = (
        f"{Path(exported['path']).name}: opset {exported['opset']}, input {exported['input_shape']}, "
        f"outputs {exported['output_names']}, {exported['size_mb']} MB, weights {weights}. Outputs: "
        f"random inputs; keypoints: Predictor.from_checkpoint against Predictor.from_onnx on one "
        f"image, crop to decode"
    )
    return Table(
        ["batch", "output", "max abs diff", "within tolerance"],
        rows,
        title="ONNX parity (onnxruntime vs PyTorch)",
        note=note,
    )


def latency_rows_table(rows: list[dict]) -> Table:
    """posecore.export.latency_table rows as a table."""
    columns = list(rows[0]) if rows else ["batch", "pytorch_ms", "onnxruntime_ms", "speedup", "threads"]
    return Table(columns, [[row[c] for c in columns] for row in rows], title="CPU latency, median ms")


def onnx_example(run_name: str, params: Params, onnx_path: str | Path) -> Table:
    """Run examples/onnx_infer.py (onnxruntime + numpy + OpenCV only) on the first val person;
    its drawing goes to figures/export_example.png and its printout into the returned table."""
    instance = build_dataset(params, "val").instances[0]
    x0, y0, x1, y1 = _person_box(instance, params.data.bbox_padding)
    out = Run(run_name).figures_dir / "export_example.png"
    command = [
        sys.executable,
        str(REPO_ROOT / "examples" / "onnx_infer.py"),
        str(onnx_path),
        instance.image_path,
        "--box",
        *(f"{v:.1f}" for v in (x0, y0, x1 - x0, y1 - y0)),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"examples/onnx_infer.py failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    rows = [line.split() for line in done.stdout.splitlines() if line.strip()]
    folder = run_dir(run_name)
    shell = " ".join(run_relative(part, folder) if Path(part).is_absolute() else part for part in command[1:])
    return keep(
        run_name,
        "export_example",
        Table(
            ["joint", "x", "y", "score"],
            rows,
            title="Standalone onnxruntime example",
            note=f"in the run folder: python {shell}",
        ),
    )


def _person_box(instance, padding: float) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 of a val person: its box, or for a set without boxes (MPII) the box its crop
    grows from (bbox_scale / padding around bbox_center), so that the example crops the same."""
    if instance.bbox_xyxy is not None:
        return tuple(float(v) for v in instance.bbox_xyxy)
    half = np.asarray(instance.bbox_scale, np.float64) / padding / 2
    center = np.asarray(instance.bbox_center, np.float64)
    return (*(center - half).tolist(), *(center + half).tolist())


def export_scores(
    run_name: str,
    params: Params,
    checkpoint: str | os.PathLike | None,
    precisions: list[str],
    exported: dict | None = None,
) -> Table:
    """Export the run at each of `precisions` (fp32, fp16, int8), score each on the val set and show
    them: the metric, its change against PyTorch, latency at batch 1 and 8, file size; an export
    that loses more than export.max_metric_drop points is marked (and was warned about). Kept as
    export_scores (the entries are the run's export.json). `exported`: the fp32 export's report
    when the notebook made it just before (scored as it is)."""
    entries = export_and_score(run_name, params, checkpoint, precisions, exported=exported)
    metric = next(key for key in next(iter(entries.values())) if key in ("AP", "PCKh"))
    rows, flagged = [], []
    for row, (precision, entry) in enumerate(entries.items()):
        latency = entry["latency_ms"]
        mark = "  LOSES ACCURACY" if entry["flagged"] else ""
        rows.append([f"{precision}{mark}", entry[metric], entry["delta"], latency["1"], latency["8"], entry["size_mb"]])
        if entry["flagged"]:
            flagged.append(row)
    columns = ["precision", metric, "delta vs PyTorch", "ms, batch 1", "ms, batch 8", "MB"]
    note = (
        f"{metric} on the run's val set through Predictor.from_onnx with the run's eval protocol; latency: the "
        f"export's forward on the CPU (median); bold: lost more than export.max_metric_drop "
        f"({params.export.max_metric_drop} points)"
    )
    table = Table(columns, rows, title="Each export scored", note=note, digits=4, highlight=flagged)
    return keep(run_name, "export_scores", table)
