"""What the workbook notebooks call, in one namespace: `from posecore import workbook`.

- sections: `notebook_params` (every notebook's parameters; `run_params` for the notebooks after
  training: a run's own params) and the blocks of prepare_data, train and eval; comparison.py
  (compare, reproduce, the run index), exports.py (export), video.py (infer): one block of helpers
  per notebook
  (compare.ipynb's: comparison_table, differing_params_table, comparison_notes, comparison_curves;
  infer.ipynb's: infer_inputs, infer_table, infer_frames, infer_trajectories; reproduce.ipynb's:
  reproduction_table, reproduction_runs)
- report (posecore.report, below the workbook so that commands like reproduce add to it too): `Table`,
  `keep` (a figure or table into the run folder) and `write_report` (report.html)
- browser: `PoseBrowser`, the interactive keypoint browser of visualize.ipynb
- record: `params_table`, `run_summary`, `report_link`, `run_figure`, `Note`: notebooks as the record of a run
- exports: export.ipynb's `export_scores` (each precision exported and scored)
- why: eval.ipynb's "Why" section (`error_analysis`, `why_figure`, `errors_per_joint_figure`,
  `why_table`) and compare.ipynb's `error_comparison`: what the error analysis says
"""

from __future__ import annotations

from posecore.report import Table, keep, reference_table, run_path, write_report
from posecore.workbook.browser import PoseBrowser
from posecore.workbook.comparison import (
    comparison_curves,
    comparison_notes,
    comparison_table,
    differing_params_table,
    reproduction_runs,
    reproduction_table,
    run_index,
)
from posecore.workbook.exports import export_scores, latency_rows_table, onnx_example, parity_table
from posecore.workbook.record import Link, Note, params_table, report_link, run_figure, run_summary
from posecore.workbook.sections import (
    LayoutCheck,
    annotation_checks,
    checkpoint_for,
    dataset_gallery,
    dataset_params,
    dataset_statistics,
    eval_metrics,
    lr_schedule,
    metrics_table,
    notebook_params,
    per_joint_figure,
    per_joint_table,
    prepare_dataset,
    results_table,
    run_of,
    run_params,
    threshold_figure,
    training_curves,
    training_log,
    validation_history,
    validation_table,
    worst_predictions,
)
from posecore.workbook.video import infer_frames, infer_inputs, infer_table, infer_trajectories
from posecore.workbook.why import error_analysis, error_comparison, errors_per_joint_figure, why_figure, why_table

__all__ = [
    "export_scores",
    "error_analysis",
    "error_comparison",
    "errors_per_joint_figure",
    "why_figure",
    "why_table",
    "Link",
    "Note",
    "params_table",
    "report_link",
    "run_summary",
    "LayoutCheck",
    "PoseBrowser",
    "Table",
    "checkpoint_for",
    "comparison_curves",
    "comparison_notes",
    "comparison_table",
    "dataset_gallery",
    "dataset_params",
    "dataset_statistics",
    "differing_params_table",
    "eval_metrics",
    "infer_frames",
    "infer_inputs",
    "infer_table",
    "infer_trajectories",
    "keep",
    "latency_rows_table",
    "lr_schedule",
    "notebook_params",
    "metrics_table",
    "onnx_example",
    "parity_table",
    "per_joint_figure",
    "per_joint_table",
    "prepare_dataset",
    "reference_table",
    "reproduction_runs",
    "reproduction_table",
    "results_table",
    "run_figure",
    "run_index",
    "run_of",
    "run_params",
    "run_path",
    "threshold_figure",
    "training_curves",
    "training_log",
    "validation_history",
    "validation_table",
    "worst_predictions",
    "write_report",
    "annotation_checks",
]
