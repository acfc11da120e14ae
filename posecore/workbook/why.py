"""eval.ipynb's "Why" section and compare.ipynb's error breakdowns: what the error analysis
(posecore.analyze, Ronchi & Perona's diagnosis) says a run's AP is made of, as figures and tables
kept for report.html's "Why" section (names starting "why_").

COCO-style runs: the precision-recall curves at OKS .75 with each correction's gain filled, the
error types per joint, and the AP gained by fixing each error type. MPII runs (scored by PCKh,
not OKS): the PCKh curve of every joint and its AUC instead.
"""

from __future__ import annotations

from typing import Any

from posecore import charts
from posecore.data import uses_coco_layout
from posecore.diagnosis import analysis_params, analyze, read_analysis
from posecore.error_analysis import CORRECTION_ORDER, ERROR_TYPES, STAGES, pr_curves
from posecore.experiments import Comparison
from posecore.report import Table, keep
from posecore.runs import Run
from posecore.workbook.record import Note

# the error analysis' stages in words (what each AP row has fixed, cumulatively)
STAGE_WORDS = {
    "baseline": "as predicted",
    "miss": "+ misses fixed",
    "swap": "+ swaps fixed",
    "inversion": "+ inversions fixed",
    "jitter": "+ jitter fixed",
    "score": "+ optimal scores",
    "background_fp": "+ no background false positives",
    "false_neg": "+ no false negatives",
}


def error_analysis(run_name: str) -> Note:
    """Diagnose the evaluation eval/ holds (posecore.analyze: written into eval/, where the
    figures and tables below read it) and say what was diagnosed; for an MPII run, that its Why
    is the PCKh curve."""
    if not uses_coco_layout(analysis_params(run_name).data.dataset):
        return Note("MPII is scored by PCKh, not OKS: the PCKh curve of every joint and its AUC below.")
    analysis = analyze(run_name, checkpoint=None)
    counts = analysis["counts"]
    return Note(
        f"{counts['diagnosed']} of the {counts['analysed']} detections analysed were matched to a person and "
        f"diagnosed joint by joint ({analysis['keypoint_set']} joints, coco-analyze's rules: people of at least "
        f"32x32 px, the 20 best detections per image)."
    )


def why_figure(run_name: str):
    """COCO-style: the precision-recall curves at OKS .75, each correction's gain filled (the
    paper's figure, why_curves.png); MPII: every joint's PCKh curve with the AUC (why_pckh.png)."""
    analysis = read_analysis(run_name)
    if analysis is None:
        curve = _pckh_curve(run_name)
        if curve is None:
            return _no_pckh(run_name)
        auc = Run(run_name).eval_metrics().get("PCKh_AUC")
        figure = charts.plot_pckh_curves(curve["thresholds"], curve["mean"], curve.get("per_joint", {}), auc)
        return keep(run_name, "why_pckh", figure)
    recall, precision = pr_curves(analysis)
    return keep(run_name, "why_curves", charts.plot_error_curves(recall, precision, analysis["ap"]))


def errors_per_joint_figure(run_name: str):
    """COCO-style: the share of each joint's labels that are jitter, inversions, swaps and misses
    (why_joints.png); MPII: a Note (the PCKh curves are per joint)."""
    analysis = read_analysis(run_name)
    if analysis is None:
        return Note("PCKh has no error types: the curves above are per joint.")
    return keep(run_name, "why_joints", charts.plot_errors_per_joint(analysis["errors_per_joint"], ERROR_TYPES[1:]))


def why_table(run_name: str) -> Table | Note:
    """COCO-style: the AP of each stage and what each correction gains (why_gains); MPII: PCKh at
    0.1 and at the params' threshold per joint with the AUC (why_pckh)."""
    analysis = read_analysis(run_name)
    if analysis is None:
        return _pckh_table(run_name)
    ap, rows = analysis["ap"], []
    for previous, stage in zip((None, *STAGES), STAGES):
        gain = "" if previous is None else _points(ap[stage]["AP"] - ap[previous]["AP"])
        rows.append([STAGE_WORDS[stage], *(_points(ap[stage][key]) for key in ("AP", "AP50", "AP75")), gain])
    counts = analysis["errors"]
    note = (
        f"{analysis['counts']['diagnosed']} detections diagnosed: "
        + ", ".join(f"{counts[kind]} {kind}" for kind in ERROR_TYPES)
        + f" joints; {analysis['background']['false_positives']['count']} background false positives, "
        f"{analysis['background']['false_negatives']['count']} people never detected"
    )
    columns = ["stage", "AP", "AP50", "AP75", "AP gained"]
    table = Table(columns, rows, title="AP gained by fixing each error type in turn", note=note)
    return keep(run_name, "why_gains", table)


def error_comparison(run_name: str, comparison: Comparison) -> Table | Note:
    """compare.ipynb: the compared runs' error breakdowns side by side (each run's saved analysis):
    the joints of each error type and the AP each correction gains (compare_errors)."""
    analyses = {name: read_analysis(name) for name in comparison.names}
    analysed = {name: analysis for name, analysis in analyses.items() if analysis is not None}
    if not analysed:
        return Note("No compared run has an error analysis yet: run eval.ipynb (its Why section) on them.")
    rows = [[f"{kind} joints", *(a["errors"][kind] for a in analysed.values())] for kind in ERROR_TYPES]
    rows.append(["AP as predicted", *(_points(a["ap"]["baseline"]["AP"]) for a in analysed.values())])
    for previous, stage in zip(("baseline", *CORRECTION_ORDER), (*CORRECTION_ORDER, "score")):
        rows.append([f"AP gained: {STAGE_WORDS[stage][2:]}", *(_gain(a, previous, stage) for a in analysed.values())])
    missing = [name for name, analysis in analyses.items() if analysis is None]
    title = "Error breakdowns side by side" + (f" (no analysis yet: {', '.join(missing)})" if missing else "")
    return keep(run_name, "compare_errors", Table(["", *analysed], rows, title=title))


def _gain(analysis: dict, previous: str, stage: str) -> float:
    return _points(analysis["ap"][stage]["AP"] - analysis["ap"][previous]["AP"])


def _points(value: float) -> float:
    """An AP fraction in percentage points, rounded for the tables."""
    return round(100.0 * float(value), 2)


def _pckh_curve(run_name: str) -> dict | None:
    """The eval metrics' PCKh curve; None when the evaluation could not compute PCKh (no official
    head boxes under data.root)."""
    return Run(run_name).eval_metrics().get("pckh_curve")


def _no_pckh(run_name: str) -> Note:
    return Note(
        f"Run {run_name}'s evaluation has no PCKh (no annotations/mpii_gt_val.mat with the official head "
        "boxes under data.root): nothing to break down."
    )


def _pckh_table(run_name: str) -> Table | Note:
    metrics = Run(run_name).eval_metrics()
    curve = _pckh_curve(run_name)
    if curve is None:
        return _no_pckh(run_name)
    thresholds = [round(t, 2) for t in curve["thresholds"]]
    shown = [t for t in (0.1, 0.2, 0.3, 0.5) if t in thresholds]
    rows = [
        [name, *(_rounded(values[thresholds.index(t)]) for t in shown)] for name, values in curve["per_joint"].items()
    ]
    rows.append(["mean (official)", *(_rounded(curve["mean"][thresholds.index(t)]) for t in shown)])
    title = f"PCKh per joint at several thresholds; AUC over 0 .. 0.5: {_rounded(metrics.get('PCKh_AUC'))}"
    return keep(run_name, "why_pckh_table", Table(["joint", *(f"PCKh@{t:g}" for t in shown)], rows, title=title))


def _rounded(value: Any) -> Any:
    return round(float(value), 2) if isinstance(value, (int, float)) else value
