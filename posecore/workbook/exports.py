"""export.ipynb's precisions: each export of the run scored (posecore.deploy) as one table kept
for report.html's ONNX export section."""

from __future__ import annotations

import os

from posecore.deploy import export_and_score
from posecore.params import Params
from posecore.report import Table, keep


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
