"""Evaluation: heatmaps -> keypoints in image pixels -> COCO AP / MPII PCKh, on one or many devices.

Each rank predicts a shard of the split, the per-instance keypoints are gathered on every rank
(all_gather_object), the shards' padding duplicates are dropped by dataset index, and
rank 0 scores them; the metrics are then broadcast so every rank returns the same dict. With one
device the same code runs without torch.distributed, so npus=N gives exactly the npus=1 numbers.

Test time follows the references, through posecore.predictor.Predictor on the dataset's crops:
heatmaps of the image, averaged with the un-flipped heatmaps of its mirror (eval.flip_test;
eval.shift_heatmap applies the codec's flip shift), decoded by the codec (data.codec;
eval.decode: dark for DARK on msra heatmaps) and mapped back through the codec's inverse crop
affine. COCO then rescoring + OKS-NMS and
COCOeval (plus AlphaPose's "gt mAP": GT boxes, no flip, no NMS, score mean + 1.25 x max, as gt_*
keys); MPII the official PCKh. The oracle (eval.oracle) decodes the encoded targets instead of a
model's output: the ceiling of encode + decode.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from posecore import metrics as M
from posecore.data import build_dataset, ensure_synthetic, keypoint_ground_truth, padded_shard, uses_coco_layout
from posecore.data.fingerprint import file_sha256
from posecore.data.layouts import wholebody_entry
from posecore.device import get_device
from posecore.distributed import check_main_guard, launch, local_rank, world_size
from posecore.distributed import rank as get_rank
from posecore.environment import record_evaluation
from posecore.files import atomic_write, json_safe, write_json
from posecore.keypoints import coco_keypoint_category
from posecore.params import Params, load_params, save_params
from posecore.predictor import Predictor, trained_params
from posecore.runs import EvalFiles, Run, default_run_name, find_checkpoint

log = logging.getLogger(__name__)

PRIMARY_METRIC = {
    "coco": "AP",
    "custom": "AP",
    "mpii": "PCKh",
    "halpe26": "AP",
    "halpe136": "AP",
    "coco_wholebody": "AP",
}
# Datasets scored part by part (COCO-WholeBody's protocol): <part>_AP / <part>_AR for each of the
# keypoint set's parts and the whole body; AP (and AP50 ... ARl) are the whole body's.
PART_PROTOCOL = ("coco_wholebody",)


# --------------------------------------------------------------------------- public API


def primary_metric(params: Params | str) -> str:
    """The metric that ranks checkpoints: "AP" for COCO-layout datasets, "PCKh" for MPII."""
    params = _as_params(params)
    return PRIMARY_METRIC[params.data.dataset]


def eval_split(params: Params) -> str:
    """COCO: "val" (GT boxes) or "test" (val images, data.det_file boxes); MPII: "val"."""
    if uses_coco_layout(params.data.dataset) and not params.eval.use_gt_boxes:
        if not params.data.det_file:
            raise ValueError(
                "eval.use_gt_boxes is false but data.det_file is empty: set data.det_file "
                "to a COCO-results json of person boxes, or eval.use_gt_boxes: true"
            )
        if params.eval.oracle:
            raise ValueError(
                "eval.oracle needs ground-truth boxes (detector boxes carry no targets): set eval.use_gt_boxes: true"
            )
        return "test"
    return "val"


def evaluate(
    params: Params | str | os.PathLike,
    checkpoint: str | os.PathLike | None,
    npus: int = 1,
    run_name: str | None = None,
    verbose: bool = True,
) -> dict[str, float]:
    """Evaluate a checkpoint on the val split; write outputs/<run>/eval/ and merge the metrics
    into outputs/<run>/metrics.json. Returns the flat metrics dict.

    verbose: also print the summary (the scorer's tables, speed) that the eval folder's log keeps
    (runs.EvalFiles.log); a notebook shows it as tables instead (workbook.metrics_table).

    checkpoint: a path (posecore, AlphaPose or mmpose format), "best" / "last" of the run, or None
    with eval.oracle. npus > 1 starts that many workers (posecore.distributed.launch).
    eval/ holds the files of runs.EvalFiles: the results and the gt protocol's (COCO-style sets)
    or the predictions (MPII), metrics, per-joint table, the scorer's log and, with npus > 1, the
    workers' logs/. The run's env.json records the evaluation: the checkpoint scored with its
    sha256, the split and its data fingerprint.
    """
    check_main_guard("posecore.evaluate")
    params = _as_params(params)
    checkpoint_path = resolve_checkpoint(checkpoint, params, run_name)
    eval_split(params)  # fail on bad settings before starting workers
    ensure_synthetic(params)
    params = trained_params(params, checkpoint_path, run_name)[0]  # keypoint set, trained codec
    run = Run(run_name or default_run_name(f"eval-{params.name or params.model.name}"))
    with run.lock("evaluation"):  # a training of the same run writes metrics.json too
        if not run.params_path.exists():
            save_params(params, run.params_path)
        out_dir = run.eval_dir
        # workers get plain values only: the resolved params travel as a file
        params_path = save_params(params, run.eval_params_path)
        metrics = launch(
            _evaluate_worker,
            (str(params_path), checkpoint_path, str(out_dir), verbose),
            npus,
            params,
            log_dir=out_dir / "logs",
        )
        merged = run.metrics()
        merged.update(metrics)
        write_json(run.metrics_path, json_safe(merged))
        record_evaluation(run.folder, params, checkpoint, checkpoint_path, npus, eval_split(params))
    return metrics


def validate(model: nn.Module, params: Params | str, out_dir: str | os.PathLike | None = None) -> dict[str, float]:
    """Evaluate `model` (maybe DDP-wrapped) on the val split from inside training, on every rank.

    Shards by torch.distributed rank when it is initialized; every rank returns the metrics.
    The model's train/eval mode is restored. Writes eval artifacts to `out_dir` when given.
    """
    params = _as_params(params)
    if params.eval.oracle:
        params = dataclasses.replace(params, eval=dataclasses.replace(params.eval, oracle=False))
    network = getattr(model, "module", model)
    was_training = network.training
    network.eval()
    try:
        device = next(network.parameters()).device
        return _evaluate_model(network, params, device, out_dir)
    finally:
        network.train(was_training)


def resolve_checkpoint(checkpoint: str | os.PathLike | None, params: Params, run_name: str | None) -> str | None:
    """ "best" / "last" -> outputs/<run>/checkpoints/<name>.pt; a path must exist; None = oracle."""
    if params.eval.oracle:
        if checkpoint is not None:
            log.warning("eval.oracle is on: the checkpoint %s is not used", checkpoint)
        return None
    if checkpoint is None:
        raise ValueError(
            "no checkpoint given: pass a path, 'best' or 'last' (or set eval.oracle: "
            "true to score the encoded ground truth)"
        )
    return str(find_checkpoint(checkpoint, run_name))


# --------------------------------------------------------------------------- workers


def _evaluate_worker(params_path: str, checkpoint: str | None, out_dir: str, verbose: bool = True) -> dict[str, float]:
    """One rank of `evaluate` (also the whole of it when npus == 1)."""
    params = load_params(params_path)
    device = get_device(local_rank())
    model = None if params.eval.oracle else Predictor.from_checkpoint(params, checkpoint, device).model
    extra = {"checkpoint": checkpoint, "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None}
    return _evaluate_model(model, params, device, out_dir, extra, verbose)


def evaluate_predictor(predictor: Predictor, params: Params) -> dict[str, float]:
    """Score `predictor` (e.g. Predictor.from_onnx of an export, posecore.score_export) on params'
    val split with params' eval protocol, in this process; writes nothing. Returns the flat metrics."""
    return _evaluate_model(predictor.model, params, predictor.device, None, predictor=predictor)


def _evaluate_model(
    model: nn.Module | None,
    params: Params,
    device: torch.device,
    out_dir: str | os.PathLike | None,
    extra: dict | None = None,
    verbose: bool = False,
    predictor: Predictor | None = None,
) -> dict[str, float]:
    rank, world = get_rank(), world_size()
    split = eval_split(params)
    dataset = build_dataset(params, split)
    local = predict(model, dataset, params, device, rank, world, predictor)
    gathered = _gather(local, world)
    bad = gathered.pop("bad")
    if bad:
        raise ValueError(
            f"non-finite heatmaps or keypoints (NaN or inf) for {len(bad)} instance(s), "
            f"images {bad[:10]}: the model diverged or the checkpoint is broken; "
            "nothing was scored"
        )
    outcome: dict[str, Any] = {}
    if rank == 0:
        try:
            outcome["metrics"] = score(gathered, dataset, params, out_dir, split, extra or {}, verbose)
        except Exception as error:  # the other ranks wait for the broadcast: tell them
            outcome["error"] = f"{type(error).__name__}: {error}"
            _broadcast(outcome, world)
            raise
    outcome = _broadcast(outcome, world)
    if "error" in outcome:
        raise RuntimeError(f"scoring failed on rank 0: {outcome['error']}")
    return outcome["metrics"]


def _broadcast(obj: dict, world: int) -> dict:
    if world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _gather(local: dict[str, Any], world: int) -> dict[str, Any]:
    """All ranks' predictions, in dataset order, each dataset index once."""
    parts = [local]
    if world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, local)
    merged = {key: np.concatenate([p[key] for p in parts]) for key in local if key not in ("bad", "timing")}
    _, first = np.unique(merged["index"], return_index=True)  # sorted by index, padding dropped
    merged = {key: value[first] for key, value in merged.items()}
    merged["bad"] = sorted({name for p in parts for name in p["bad"]})
    timings = [p["timing"] for p in parts]
    merged["timing"] = {
        "seconds": max(t["seconds"] for t in timings),
        "model_seconds": max(t["model_seconds"] for t in timings),
    }
    return merged


# --------------------------------------------------------------------------- inference


@torch.no_grad()
def predict(
    model: nn.Module | None,
    dataset: Any,
    params: Params,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
    predictor: Predictor | None = None,
) -> dict[str, Any]:
    """This rank's shard -> per-instance arrays: index [n], image_id [n], keypoints [n,K,3]
    (x, y in image pixels, score), plain [n,K,3] (no flip: the gt mAP protocol), bbox_score [n],
    area [n] (crop box area, the NMS scale); plus names of non-finite instances and timings.

    model None = the oracle (decode item["target"]). The model runs through a Predictor with the
    dataset's codec (the targets' own: the oracle decodes what was encoded); `predictor` (an
    ONNX export's, say) runs instead when given.
    """
    loader = _loader(dataset, params, rank, world)
    flip = _flip_used(params)
    if predictor is None:
        predictor = Predictor.from_model(model, params, codec=dataset.codec, device=device)
    out: dict[str, list] = {k: [] for k in ("index", "image_id", "keypoints", "plain", "bbox_score", "area")}
    bad: list[str] = []
    model_seconds = 0.0
    started = time.perf_counter()
    for batch in tqdm(loader, desc="eval", disable=rank != 0, leave=False):
        if predictor.forward is None:
            output = plain = batch["target"]  # the codec's targets: a tensor, or a pair (simcc)
        else:
            tick = time.perf_counter()
            output, plain = predictor.outputs(batch["image"], flip)  # waits for the device
            model_seconds += time.perf_counter() - tick
        index = batch["index"].numpy().astype(np.int64)
        poses = predictor.decode(output, batch["bbox_center"], batch["bbox_scale"])
        plain_poses = poses if plain is output else predictor.decode(plain, batch["bbox_center"], batch["bbox_scale"])
        bad.extend(_instance_name(dataset, batch, i) for i in np.flatnonzero(~poses.finite()))
        out["index"].append(index)
        out["image_id"].append(batch["image_id"].numpy().astype(np.int64))
        out["keypoints"].append(poses.rows())
        out["plain"].append(plain_poses.rows())
        out["bbox_score"].append(batch["bbox_score"].numpy().astype(np.float64))
        out["area"].append(batch["bbox_scale"].numpy().astype(np.float64).prod(axis=1))
    seconds = time.perf_counter() - started
    num_joints = dataset.info.num_joints
    empty = {
        "index": (0,),
        "image_id": (0,),
        "keypoints": (0, num_joints, 3),
        "plain": (0, num_joints, 3),
        "bbox_score": (0,),
        "area": (0,),
    }
    result: dict[str, Any] = {
        key: np.concatenate(value) if value else np.zeros(empty[key]) for key, value in out.items()
    }
    result["bad"] = bad
    result["timing"] = {"seconds": seconds, "model_seconds": model_seconds}
    return result


def _flip_used(params: Params) -> bool:
    """The oracle has no mirrored-image targets to average with, so it never flips."""
    return params.eval.flip_test and not params.eval.oracle


def _instance_name(dataset: Any, batch: dict, i: int) -> str:
    index = int(batch["index"][i])
    try:
        return os.path.basename(str(dataset.image_path(index)))
    except Exception:
        return f"image_id {int(batch['image_id'][i])}"


def _loader(dataset: Any, params: Params, rank: int, world: int) -> DataLoader:
    # Contiguous shards keep an image's people on one rank, where they share one decode; the
    # gather drops the padding by index.
    sampler = padded_shard(list(range(len(dataset))), world, rank)
    workers = params.data.workers
    return DataLoader(
        dataset,
        batch_size=params.eval.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=False,
        drop_last=False,
        persistent_workers=False,
    )


# --------------------------------------------------------------------------- scoring (rank 0)


def score(
    pred: dict[str, Any],
    dataset: Any,
    params: Params,
    out_dir: str | os.PathLike | None,
    split: str,
    extra: dict,
    verbose: bool = False,
) -> dict[str, float]:
    """Metrics of the gathered predictions; writes the eval artifacts when out_dir is given.
    The summary (tables, speed) goes to the log, and to stdout when `verbose`."""
    started = time.perf_counter()
    lines: list[str] = []
    if uses_coco_layout(params.data.dataset):
        metrics, details, per_joint, artifacts = _score_coco(pred, dataset, params, split, lines)
    else:
        metrics, details, per_joint, artifacts = _score_mpii(pred, dataset, params, lines)
    timing = pred["timing"]
    count = len(pred["index"])
    metrics["num_instances"] = count
    metrics["images_per_s"] = count / timing["seconds"] if timing["seconds"] > 0 else 0.0
    if timing["model_seconds"] > 0:
        metrics["model_images_per_s"] = count / timing["model_seconds"]
    metrics["scoring_s"] = time.perf_counter() - started
    lines.append(
        f"{count} instances, {metrics['images_per_s']:.1f} images/s end to end"
        + (f", {metrics['model_images_per_s']:.1f} images/s in the model" if "model_images_per_s" in metrics else "")
        + f"; scoring {metrics['scoring_s']:.2f} s"
    )
    for line in lines:
        log.info(line)
        if verbose:
            print(line, flush=True)
    if out_dir is not None:
        _write_artifacts(Path(out_dir), metrics, details, per_joint, artifacts, params, split, extra, lines)
    return metrics


def _score_coco(pred: dict, dataset: Any, params: Params, split: str, lines: list[str]):
    info = dataset.info
    keypoints, image_id = pred["keypoints"], pred["image_id"]
    M.check_finite(keypoints, [int(i) for i in image_id], "keypoints")
    person_scores = M.rescore(keypoints[..., 2], pred["bbox_score"], params.eval.in_vis_thr)
    keep = M.oks_nms_per_image(image_id, keypoints, person_scores, pred["area"], params.eval.oks_nms, info.sigmas)
    # the file's well-formed people (those the dataset read); Halpe / COCO-WholeBody people as flat
    # keypoints of the set's joints
    coco_gt = M.coco_from_dict(keypoint_ground_truth(dataset.ann_file, info.dataset))
    category_id = _keypoint_category_id(coco_gt, dataset)
    # COCO keeps pycocotools' own sigmas (bit for bit the published protocol) unless overridden
    sigmas = None if info.dataset == "coco" and not params.eval.sigmas else info.sigmas
    results = M.coco_results(image_id[keep], keypoints[keep], person_scores[keep], category_id)
    main, part_stats = _coco_eval(coco_gt, results, info, sigmas)
    metrics = {**main.stats, **part_stats}
    lines.append(
        f"COCO keypoints ({split}: {'GT' if split == 'val' else 'detector'} boxes, "
        f"flip test {_flip_used(params)}, OKS-NMS {params.eval.oks_nms}), "
        f"{len(results)} of {len(keypoints)} poses after NMS:\n{main.summary}"
    )
    artifacts = {"results": results}  # runs.EvalFiles attributes
    if part_stats:
        lines.append(
            "COCO-WholeBody per part (COCOeval on each part's joints with its sigmas): "
            + ", ".join(f"{key[:-3]} AP {value:.4f}" for key, value in part_stats.items() if key.endswith("_AP"))
        )
        # the same poses in COCO-WholeBody's own result layout (xtcocotools reads this one)
        artifacts["results_wholebody"] = [
            {**{k: v for k, v in r.items() if k != "keypoints"}, **wholebody_entry(r["keypoints"])} for r in results
        ]
    details = {
        "ap_per_oks": {f"{k:.2f}": v for k, v in main.ap_per_oks.items()},
        "oks_sigmas": "uniform" if params.eval.sigmas == "uniform" else list(info.sigmas),
    }
    if split == "val":
        gt_results = M.coco_results(image_id, pred["plain"], M.alphapose_gt_scores(pred["plain"][..., 2]), category_id)
        gt_eval, gt_parts = _coco_eval(coco_gt, gt_results, info, sigmas)
        metrics.update({f"gt_{k}": v for k, v in {**gt_eval.stats, **gt_parts}.items()})
        lines.append(
            "gt mAP protocol (AlphaPose validate_gt: GT boxes, no flip, no NMS, "
            f"score mean + 1.25 max): AP {gt_eval.stats['AP']:.4f}"
        )
        artifacts["gt_results"] = gt_results
        details["gt_ap_per_oks"] = {f"{k:.2f}": v for k, v in gt_eval.ap_per_oks.items()}
    per_joint = [
        {"joint": info.joint_names[row["joint"]], **{k: v for k, v in row.items() if k != "joint"}}
        for row in main.per_joint
    ]
    return metrics, details, per_joint, artifacts


def _coco_eval(coco_gt: Any, results: list[dict], info: Any, sigmas: Any) -> tuple[M.CocoKeypointEval, dict]:
    """COCOeval of `results`, and for a PART_PROTOCOL set its per-part AP / AR: (the whole body's
    evaluation, {"<part>_AP": ..., "<part>_AR": ..., "wholebody_AP": ...})."""
    if info.dataset not in PART_PROTOCOL:
        return M.coco_keypoint_eval(coco_gt, results, sigmas), {}
    parts = {name: info.part_joints(name) for name, _ in info.parts}
    parts["wholebody"] = list(range(info.num_joints))
    evals = M.coco_part_eval(coco_gt.dataset, results, parts, info.sigmas)
    return evals["wholebody"], {f"{name}_{key}": ev.stats[key] for name, ev in evals.items() for key in ("AP", "AR")}


def _keypoint_category_id(coco_gt: Any, dataset: Any) -> int:
    """The category the results are written in: COCO's person, or a custom file's keypoint category."""
    if dataset.info.dataset != "custom":
        return M.COCO_CATEGORY_ID
    return coco_keypoint_category(coco_gt.dataset, dataset.ann_file)["id"]


def _score_mpii(pred: dict, dataset: Any, params: Params, lines: list[str]):
    keypoints = pred["keypoints"]
    names = _mpii_image_names(dataset, pred["index"])
    predictions = [{"image": name, "keypoints": pose.tolist()} for name, pose in zip(names, keypoints)]
    artifacts = {"predictions": predictions}
    gt_mat = getattr(dataset, "gt_mat", None)
    if not gt_mat:
        warnings.warn(
            "MPII: no annotations/mpii_gt_val.mat (official head boxes) under data.root: "
            "PCKh cannot be computed; the predictions are still written",
            stacklevel=3,
        )
        return {}, {}, [], artifacts
    gt = M.load_mpii_gt(gt_mat)
    if gt.num_instances != len(keypoints) or not np.array_equal(pred["index"], np.arange(len(keypoints))):
        raise ValueError(
            f"{gt_mat} has {gt.num_instances} people but the val split gave "
            f"{len(keypoints)} (indices must be 0..N-1 in the annotation order); the "
            ".mat and the annotations json must describe the same people"
        )
    thr = params.eval.pckh_thr
    metrics = M.pckh(keypoints, gt, thr=thr)
    at_thr = M.pckh_per_joint(keypoints, gt, thr=thr)
    at_01 = M.pckh_per_joint(keypoints, gt, thr=0.1)
    counts = (~gt.jnt_missing).sum(axis=1)
    per_joint = [
        {"joint": name, "visible": int(c), f"PCKh@{thr:g}": at_thr[name], "PCKh@0.1": at_01[name]}
        for name, c in zip(gt.joint_names, counts)
    ]
    curve = M.pckh_curve(keypoints, gt)
    # the curve (mean and per joint, thresholds 0 .. 0.5 by 0.01) and its area, as the MPII
    # toolkit plots and reports them beside mmpose's PCKh@0.1 and PCKh
    metrics["PCKh_AUC"] = M.curve_auc(curve["thresholds"], curve["mean"])
    details = {
        "pckh_curve": {
            "thresholds": curve["thresholds"].tolist(),
            "mean": curve["mean"].tolist(),
            "per_joint": {name: curve["per_joint"][:, j].tolist() for j, name in enumerate(curve["joint_names"])},
        }
    }
    lines.append(f"MPII PCKh@{thr:g}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    return metrics, details, per_joint, artifacts


def _mpii_image_names(dataset: Any, index: np.ndarray) -> list[str]:
    """The annotation file's `image` field per instance (image file name as a fallback)."""
    try:
        with open(dataset.ann_file) as f:
            annotations = json.load(f)
        if len(annotations) == len(dataset):
            return [annotations[int(i)]["image"] for i in index]
    except (OSError, TypeError, KeyError, ValueError):
        pass
    return [os.path.basename(str(dataset.image_path(int(i)))) for i in index]


def _write_artifacts(
    out_dir: Path,
    metrics: dict,
    details: dict,
    per_joint: list[dict],
    artifacts: dict,
    params: Params,
    split: str,
    extra: dict,
    lines: list[str],
) -> None:
    files = EvalFiles(out_dir)
    for name, content in artifacts.items():
        atomic_write(getattr(files, name), json.dumps(content))
    settings = {
        "split": split,
        "dataset": params.data.dataset,
        "model": params.model.name,
        "oracle": params.eval.oracle,
        "flip_test": _flip_used(params),
        "shift_heatmap": params.eval.shift_heatmap,
        "codec": params.data.codec,
        "decode": params.eval.decode,
        "use_gt_boxes": params.eval.use_gt_boxes,
        "det_file": params.data.det_file,
        "in_vis_thr": params.eval.in_vis_thr,
        "oks_nms": params.eval.oks_nms,
        **extra,
    }
    write_json(files.metrics, json_safe({**metrics, **details, "settings": settings}))
    if per_joint:
        atomic_write(files.per_joint, _csv(per_joint))
    atomic_write(files.log, "\n".join(lines) + "\n")


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _as_params(params: Params | str | os.PathLike) -> Params:
    return params if isinstance(params, Params) else load_params(params)
