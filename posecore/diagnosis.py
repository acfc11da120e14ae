"""Why a run's AP is what it is: Ronchi & Perona's error diagnosis on a run's evaluation.

`analyze(run_name, checkpoint="best")` (posecore.analyze) makes sure the run's eval/ holds that
checkpoint's evaluation (running posecore.evaluate when it does not), diagnoses its results file
against the val ground truth with posecore.error_analysis.analyze_coco (the rules of coco-analyze;
any COCO-style keypoint set: COCO, custom sets with their flip pairs, Halpe and COCO-WholeBody on
one part) and writes the analysis into eval/ (runs.EvalFiles.analysis). `read_analysis` reads it
back; `person_codes` maps its diagnosed detections onto a dataset's people for the pose browser.
MPII runs are scored by PCKh, whose curve and AUC evaluation writes into eval/'s metrics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from posecore.data import build_dataset, keypoint_ground_truth, uses_coco_layout
from posecore.data.annotations import person_box
from posecore.error_analysis import analyze_coco
from posecore.evaluation import eval_split, evaluate
from posecore.files import read_json, write_json
from posecore.params import Params, load_params
from posecore.runs import Run, find_checkpoint


def analyze(run_name: str, checkpoint: str | None = "best", part: str = "body") -> dict[str, Any]:
    """The error analysis of run `run_name`'s `checkpoint` ("best", "last" or a path; None: the
    evaluation eval/ already holds, e.g. the oracle's), written to eval/ and returned (the keys of
    posecore.error_analysis.analyze_coco, plus "run", "checkpoint" and "split"). `part`: the part of
    a whole-body set to analyse."""
    run = Run(run_name)
    evaluated = run.eval_metrics(required=checkpoint is None).get("settings", {})
    if checkpoint is not None:
        wanted = str(find_checkpoint(checkpoint, run_name))
        if evaluated.get("checkpoint") != wanted or not _results_exist(run):
            evaluate(run.params(), checkpoint, run_name=run_name, verbose=False)
    params = load_params(run.eval_params_path)
    if not uses_coco_layout(params.data.dataset):
        raise ValueError(
            f"run {run_name!r} is a {params.data.dataset} run: the error diagnosis needs COCO-style keypoints "
            f"and OKS; its PCKh curve and AUC are in eval/'s metrics (workbook.why_figure draws them)"
        )
    split = eval_split(params)
    dataset = build_dataset(params, split)
    ground_truth = keypoint_ground_truth(dataset.ann_file, dataset.info.dataset)
    analysis = analyze_coco(ground_truth, str(run.eval_files.results), dataset.info, part=part)
    analysis.update(run=run_name, checkpoint=run.eval_metrics()["settings"].get("checkpoint"), split=split)
    with run.lock("analysis"):
        write_json(run.eval_files.analysis, analysis)
    return analysis


def _results_exist(run: Run) -> bool:
    return run.eval_files.results.is_file()


def read_analysis(run_name: str) -> dict[str, Any] | None:
    """The run's saved error analysis, or None when it has none (not analysed, or an MPII run)."""
    path = Run(run_name).eval_files.analysis
    if not path.is_file():
        return None
    analysis = read_json(path)
    if not isinstance(analysis, dict) or "ap" not in analysis:
        raise ValueError(f"{path} is not an error analysis (no 'ap'): analyse the run again (posecore.analyze)")
    return analysis


def person_codes(analysis: dict[str, Any], dataset: Any, ground_truth: dict | None = None) -> list[str | None]:
    """Per person of `dataset` (the val split the analysis was made on): the joint codes of the
    detection diagnosed against that person (one character per analysed joint, the analysis'
    "codes"), or None for a person no detection was diagnosed against. People are matched to the
    ground truth's annotations by image and box (as posecore.data parses them)."""
    ground_truth = ground_truth or keypoint_ground_truth(dataset.ann_file, dataset.info.dataset)
    by_annotation = {record["gt_id"]: record["joints"] for record in analysis.get("detections", [])}
    boxes: dict[Any, list[tuple[int, np.ndarray]]] = {}
    sizes = {image["id"]: (image.get("width"), image.get("height")) for image in ground_truth.get("images", [])}
    for ann in ground_truth.get("annotations", []):
        if ann.get("id") in by_annotation:
            size = sizes.get(ann["image_id"])
            box = np.array(person_box(ann["bbox"], size if size and all(size) else None))
            boxes.setdefault(ann["image_id"], []).append((ann["id"], box))
    codes: list[str | None] = []
    for instance in dataset.instances:
        candidates = boxes.get(instance.image_id, [])
        if not candidates or instance.bbox_xyxy is None:
            codes.append(None)
            continue
        distance = [float(np.abs(box - instance.bbox_xyxy).sum()) for _, box in candidates]
        best = int(np.argmin(distance))
        codes.append(by_annotation[candidates[best][0]] if distance[best] < 1.0 else None)
    return codes


def analysis_params(run_name: str) -> Params:
    """The params the run's evaluation (and so its analysis) used."""
    return load_params(Run(run_name).eval_params_path)
