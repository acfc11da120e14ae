"""Data for top-down pose models: annotation parsing, the dataset, epoch order, synthetic people.

- annotations: COCO / MPII / detector-box files -> person `Instance`s, layout checks, statistics
- validate: the entry-by-entry checks of annotation files (named errors, `BadEntries`)
- people, cache: the people of a split as flat arrays (`People`), parsed once per file and
  memory-mapped from <outputs>/cache (`load_people`)
- dataset: `PoseDataset`, one person crop + heatmap target per item, with the references' augmentation
- sampling: the epoch order (an image's people adjacent), padded per-rank shards, micro-batches
- synthetic: posecore's drawn-people dataset in the COCO or MPII layout, and a walking-people video

`build_dataset` only reads the dataset (it may save the parse of an annotation file under the cache
root, derived data safe to delete). Synthetic data is written by explicit calls: `make_synthetic`, or
`ensure_synthetic(params)`, which training, evaluation and the prepare-data notebook call first.
"""

from __future__ import annotations

from pathlib import Path

from posecore.data.annotations import (
    COCO_LAYOUT,
    MPII_LAYOUT,
    PREPARE_NOTEBOOK,
    SPLITS,
    BadEntries,
    DataLayoutError,
    Instance,
    annotation_stats,
    check_annotations,
    check_layout,
    dataset_root,
    is_synthetic_root,
    keypoint_ground_truth,
    load_instances,
    resolve_keypoints,
    synthetic_root,
    uses_coco_layout,
)
from posecore.data.cache import cache_root, load_people
from posecore.data.dataset import (
    Augment,
    ImageReadError,
    PoseDataset,
    crop_input,
    dpg_jitter,
    half_body_box,
    normalize_crop,
    read_image,
    read_rgb,
)
from posecore.data.people import People
from posecore.data.sampling import epoch_order, grouped_order, padded_shard, step_order, steps_per_epoch
from posecore.data.synthetic import draw_scene, make_synthetic, make_synthetic_video
from posecore.params import Params

__all__ = [
    "Augment",
    "COCO_LAYOUT",
    "MPII_LAYOUT",
    "PREPARE_NOTEBOOK",
    "SPLITS",
    "DataLayoutError",
    "ImageReadError",
    "Instance",
    "PoseDataset",
    "annotation_stats",
    "build_dataset",
    "check_layout",
    "dataset_root",
    "dpg_jitter",
    "draw_scene",
    "ensure_synthetic",
    "epoch_order",
    "grouped_order",
    "half_body_box",
    "load_instances",
    "make_synthetic",
    "make_synthetic_video",
    "crop_input",
    "normalize_crop",
    "padded_shard",
    "read_image",
    "read_rgb",
    "step_order",
    "steps_per_epoch",
    "resolve_keypoints",
    "synthetic_root",
    "uses_coco_layout",
    "keypoint_ground_truth",
    "BadEntries",
    "check_annotations",
    "People",
    "cache_root",
    "load_people",
]


def build_dataset(params: Params, split: str) -> PoseDataset:
    """The `train` / `val` / `test` split of params.data as a PoseDataset (see load_instances); the
    people are parsed once per annotation file and memory-mapped from then on (data.cache)."""
    people, info, ann_file, gt_mat = load_people(params, split)
    return PoseDataset(people, info, params, train=split == "train", ann_file=str(ann_file), gt_mat=gt_mat, split=split)


def ensure_synthetic(params: Params) -> Path:
    """The dataset folder of params.data, generating posecore's synthetic dataset there first when
    it is a synthetic root (data.root "" or a folder named synthetic*) that is not complete yet.

    The one place where reading a dataset may write one: callers that start runs (training,
    evaluation, the notebooks) call it before building datasets; a complete folder is left as is.
    """
    root = dataset_root(params.data)
    if is_synthetic_root(root) and check_layout(root, params.data.dataset):
        make_synthetic(root, dataset=params.data.dataset)
    return root
