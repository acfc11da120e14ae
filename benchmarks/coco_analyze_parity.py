"""posecore.error_analysis against coco-analyze itself, on results with planted errors.

From the shared COCO samples' people (val2017, and train2017 for a larger ground truth) it builds a
seeded results file with planted jitter, inversions (single joints and whole people), swaps,
misses, duplicates with other scores, background false positives and people left undetected
(false negatives). It runs posecore.error_analysis.analyze_coco on it and coco-analyze
(matteorr/coco-analyze, in a scratch venv outside the project: run_reference.py there runs its
own COCOanalyze and analysisAPI code, patched only for Python 3) on the same two files, prints
both side by side with the differences, and exits non-zero past the acceptance tolerances (error
counts within 2 %, every stage's AP, AP50 and AP75 within 0.005).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/coco_analyze_parity.py [--sets val train] [--seeds 0]
        [--boxes] [--reference-python /work/scratch/cocoanalyze/bin/python]
        [--reference-script /work/scratch/cocoanalyze/run_reference.py] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from posecore.error_analysis import ERROR_TYPES, STAGES, analyze_coco
from posecore.keypoints import COCO

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "samples" / "coco"
SCRATCH = Path("/work/scratch/cocoanalyze")
COUNT_TOLERANCE = 0.02  # relative, per error type
AP_TOLERANCE = 0.005  # absolute, per stage and summary number
# what each labelled joint of a detected person becomes: good, jitter, miss, inversion, swap
JOINT_PLAN = (("good", 0.55), ("jitter", 0.2), ("miss", 0.08), ("inversion", 0.07), ("swap", 0.10))
SIMILARITY = {"good": (0.9, 1.0), "jitter": (0.55, 0.8), "miss": (0.0, 0.3)}  # ks drawn for each


# --------------------------------------------------------------------------- the planted file


def planted_results(gt: dict, seed: int = 0, boxes: bool = False) -> list[dict]:
    """A seeded COCO results list for the people of `gt` (a COCO keypoints dict): each labelled,
    non-crowd person is detected (or, 1 in 10, not: a false negative) with planted joint errors,
    1 in 7 also by a worse duplicate, 1 in 20 wholly mirrored; each image gets background false
    positives (a Poisson(1) number of people's shapes placed at random). `boxes`: every result also
    carries a detector-like `bbox` (its keypoints' box, 10 % wider each way), which then sets its area."""
    rng = np.random.default_rng(seed)
    people = [a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd")]
    by_image: dict[int, list[dict]] = {}
    for ann in people:
        by_image.setdefault(ann["image_id"], []).append(ann)
    results = []
    for ann in people:
        if rng.random() < 0.1:
            continue
        others = [o for o in by_image[ann["image_id"]] if o["id"] != ann["id"]]
        results.append(_result(ann, _planted_pose(ann, others, rng), rng.uniform(0.2, 1.0), rng))
        if rng.random() < 1 / 7:
            worse = _planted_pose(ann, others, rng, plan=(("jitter", 0.5), ("miss", 0.5)))
            results.append(_result(ann, worse, rng.uniform(0.2, 1.0), rng))
    templates = [_shape(ann) for ann in people]
    for image in gt["images"]:
        for _ in range(rng.poisson(1.0)):
            shape = templates[rng.integers(len(templates))] * rng.uniform(0.5, 1.5)
            corner = rng.uniform(0, 1, 2) * np.array([image["width"], image["height"]]) * 0.8
            results.append(_result({"image_id": image["id"]}, shape + corner, rng.uniform(0.05, 1.0), rng))
    if boxes:
        for r in results:
            xy = np.asarray(r["keypoints"]).reshape(-1, 3)[:, :2]
            low, high = xy.min(axis=0), xy.max(axis=0)
            pad = (high - low) * 0.1
            r["bbox"] = [round(float(v), 2) for v in (*(low - pad), *(high - low + 2 * pad))]
    return results


def _planted_pose(ann: dict, others: list[dict], rng: np.random.Generator, plan: tuple = JOINT_PLAN) -> np.ndarray:
    """[K, 2] a detection of `ann`: each labelled joint planted by `plan`, unlabelled joints near
    the box centre; 1 in 20 people then mirrored whole (left and right joints exchanged)."""
    triples = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    mirror = np.asarray(COCO.flip_index())
    x, y, w, h = ann["bbox"]
    pose = np.array([x + w / 2, y + h / 2]) + rng.normal(0, 1, (len(triples), 2)) * [w / 8, h / 8]
    kinds, weights = zip(*plan)
    for j in np.flatnonzero(triples[:, 2] > 0):
        kind = kinds[rng.choice(len(kinds), p=np.asarray(weights) / sum(weights))]
        target, sigma, area = triples[j, :2], COCO.sigmas[j], ann["area"]
        if kind == "inversion" and mirror[j] != j and triples[mirror[j], 2] > 0:
            target, sigma, kind = triples[mirror[j], :2], COCO.sigmas[mirror[j]], "good"
        elif kind == "swap":
            donors = [o for o in others if o["keypoints"][3 * j + 2] > 0]
            if donors:
                donor = donors[rng.integers(len(donors))]
                target = np.asarray(donor["keypoints"][3 * j : 3 * j + 2], dtype=np.float64)
                area, kind = donor["area"], "good"
        kind = kind if kind in SIMILARITY else "jitter"  # an inversion / swap with no donor
        ks = rng.uniform(*SIMILARITY[kind])
        distance = np.sqrt(-8 * sigma**2 * area * np.log(max(ks, 1e-12)))
        angle = rng.uniform(0, 2 * np.pi)
        pose[j] = target + distance * np.array([np.cos(angle), np.sin(angle)])
    if rng.random() < 0.05:
        pose = pose[mirror]
    return pose


def _shape(ann: dict) -> np.ndarray:
    """[K, 2] a person's labelled joints relative to its box corner (unlabelled at the box centre)."""
    triples = np.asarray(ann["keypoints"], dtype=np.float64).reshape(-1, 3)
    x, y, w, h = ann["bbox"]
    return np.where(triples[:, 2:] > 0, triples[:, :2] - [x, y], [w / 2, h / 2])


def _result(ann: dict, pose: np.ndarray, score: float, rng: np.random.Generator) -> dict:
    joint_scores = rng.uniform(0.1, 1.0, len(pose))
    keypoints = np.concatenate([np.round(pose, 2), joint_scores[:, None].round(3)], axis=1)
    return {
        "image_id": ann["image_id"],
        "category_id": 1,
        "keypoints": [float(v) for v in keypoints.ravel()],
        "score": round(float(score), 6),
    }


# --------------------------------------------------------------------------- the comparison


def reference(gt_file: Path, results_file: Path, python: str, script: str) -> dict:
    done = subprocess.run([python, script, str(gt_file), str(results_file)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"coco-analyze failed ({python} {script}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def compare(ours: dict, theirs: dict) -> list[str]:
    """Print both side by side; return the failures past the tolerances."""
    failures = []
    print(f"  {'error type':<12}{'posecore':>10}{'coco-analyze':>14}{'diff':>8}")
    for name in ERROR_TYPES:
        a, b = ours["errors"][name], theirs["errors"][name]
        print(f"  {name:<12}{a:>10}{b:>14}{a - b:>8}")
        if abs(a - b) > COUNT_TOLERANCE * max(b, 1):
            failures.append(f"{name} count {a} vs {b}")
    joint_diffs = sum(
        abs(ours["errors_per_joint"][j][e] - theirs["errors_per_joint"][j][e])
        for j in theirs["errors_per_joint"]
        for e in ERROR_TYPES
    )
    print(f"  per-joint counts differing: {joint_diffs}")
    print(f"\n  {'stage':<14}{'AP / AP50 / AP75 posecore':>28}{'coco-analyze':>26}{'max |diff|':>12}")
    for stage in STAGES:
        a, b = ours["ap"][stage], theirs["ap"][stage]
        worst = max(abs(a[k] - b[k]) for k in ("AP", "AP50", "AP75"))
        print(
            f"  {stage:<14}{a['AP']:>10.4f}{a['AP50']:>9.4f}{a['AP75']:>9.4f}"
            f"{b['AP']:>10.4f}{b['AP50']:>8.4f}{b['AP75']:>8.4f}{worst:>12.2e}"
        )
        if worst > AP_TOLERANCE:
            failures.append(f"{stage} AP differs by {worst:.4f}")
    fn_labelled = theirs["ap_false_neg_as_labelled"]
    print(
        f"  (coco-analyze's own stats label false_neg AP50 {fn_labelled['AP50']:.4f}, AP75 "
        f"{fn_labelled['AP75']:.4f}: its false-negative rows run in reverse OKS order)"
    )
    curve_diff = max(
        float(np.max(np.abs(np.asarray(ours["pr_curves"]["precision"][s]) - theirs["pr_075"][s]))) for s in STAGES
    )
    print(
        f"  PR curves at OKS .75, max |diff| over stages and recall levels: {curve_diff:.2e} "
        "(posecore's record rounds them to 6 decimals)"
    )
    failures += _detection_differences(ours, theirs)
    failures += _background_differences(ours["background"], theirs.get("background", {}))
    return failures


def _detection_differences(ours: dict, theirs: dict) -> list[str]:
    mine = {str(d["result"]): d for d in ours["detections"]}
    codes = sum(mine.get(k, {}).get("joints") != v["joints"] for k, v in theirs["detections"].items())
    extra = len(set(mine) - set(theirs["detections"]))
    scores = [abs(d["optimal_score"] - theirs["opt_scores"][k]) for k, d in mine.items()]
    print(
        f"  diagnosed detections: posecore {len(mine)}, coco-analyze {len(theirs['detections'])}; "
        f"joint codes differing: {codes + extra}; optimal scores max |diff| {max(scores, default=0):.1e} "
        "(rounded to 6 decimals)"
    )
    return [f"{codes + extra} detections' joint codes differ"] if codes + extra else []


def _background_differences(ours: dict, theirs: dict) -> list[str]:
    failures = []
    rows = [
        ("false positives", ours["false_positives"]["count"], theirs["false_positives"].get("count")),
        (
            "  high-scoring",
            ours["false_positives"]["high_score"]["count"],
            theirs["false_positives"].get("high_score_count"),
        ),
    ]
    rows += [
        (f"  {k}", v, theirs["false_positives"].get(k2, {}).get(k))
        for k2 in ("by_size", "by_people")
        for k, v in ours["false_positives"]["high_score"][k2].items()
    ]
    rows += [("false negatives", ours["false_negatives"]["count"], theirs["false_negatives"].get("count"))]
    rows += [
        (f"  {k2[3:]} {k}", v, theirs["false_negatives"].get(k2, {}).get(k))
        for k2 in ("by_size", "by_people", "by_keypoints")
        for k, v in ours["false_negatives"][k2].items()
    ]
    print(f"\n  {'background':<26}{'posecore':>10}{'coco-analyze':>14}")
    for name, a, b in rows:
        print(f"  {name:<26}{a:>10}{'-' if b is None else b:>14}")
        if b is not None and abs(a - b) > COUNT_TOLERANCE * max(b, 1):
            failures.append(f"background {name.strip()}: {a} vs {b}")
    for kind in ("false_positives", "false_negatives"):
        if "error" in theirs.get(kind, {}):
            print(f"  (coco-analyze's {kind} study failed: {theirs[kind]['error']})")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["val", "train"], choices=["val", "train"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--boxes", action="store_true", help="results carry a bbox (it sets their area)")
    parser.add_argument("--reference-python", default=str(SCRATCH / "bin" / "python"))
    parser.add_argument("--reference-script", default=str(SCRATCH / "run_reference.py"))
    parser.add_argument("--keep", type=Path, help="write the planted results files here")
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for split in args.sets:
            gt_file = SAMPLES / "annotations" / f"person_keypoints_{split}2017.json"
            for seed in args.seeds:
                results_file = folder / f"planted_{split}_seed{seed}{'_boxes' if args.boxes else ''}.json"
                planted = planted_results(json.loads(gt_file.read_text()), seed, args.boxes)
                results_file.write_text(json.dumps(planted))
                started = time.perf_counter()
                ours = analyze_coco(gt_file, results_file)
                ours_s = time.perf_counter() - started
                started = time.perf_counter()
                theirs = reference(gt_file, results_file, args.reference_python, args.reference_script)
                print(
                    f"\n== {split}2017, seed {seed}: {ours['counts']['results']} results, "
                    f"{ours['counts']['diagnosed']} diagnosed (posecore {ours_s:.2f} s, "
                    f"coco-analyze {time.perf_counter() - started:.1f} s)"
                )
                failures += [f"{split} seed {seed}: {f}" for f in compare(ours, theirs)]
    print("\n" + ("PASS: within tolerance" if not failures else "FAIL:\n  " + "\n  ".join(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
