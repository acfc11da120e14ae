"""Shared test pieces: the tiny training params, a launchable gradient worker, another process
holding a run's lock, checkpoint weights.

Workers started by posecore.distributed.launch import `compute_gradients` by name (the spawn
start method hands them this process's sys.path, which holds tests/).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posecore import data, distributed
from posecore.checkpoints import load_model
from posecore.files import REPO_ROOT
from posecore.models import build_model
from posecore.optim import joints_mse
from posecore.params import load_params

# FastPose-18 on 32x32 crops with 8x8 heatmaps: a training step takes milliseconds on 2 cores.
TINY = {
    "model.depth": 18,
    "data.input_size": [32, 32],
    "data.heatmap_size": [8, 8],
    "data.workers": 0,
    "train.batch_size": 4,
    "train.val_every": 0,
    "train.log_every": 1,
}

# three epochs without an LR step on top of TINY: every tiny training run ends the same way
TRAIN = {
    "train.epochs": 3,
    "train.lr": 1e-3,
    "train.lr_steps": [100],
    "train.warmup_iters": 0,
    "train.perf_warmup_steps": 1,
}


def tiny_synthetic(folder: Path, num_train: int = 8) -> Path:
    """A small synthetic COCO-layout dataset (64x64 images, 2 val images) in folder/coco."""
    return data.make_synthetic(Path(folder) / "coco", "coco", num_train=num_train, num_val=2, image_size=64)


def tiny_params(root: Path, **overrides):
    """The demo params shrunk by TINY, reading `root`, with dotted `overrides` applied last."""
    return load_params("demo", {**TINY, "data.root": str(root), **overrides})


def oracle_run(folder: Path, run_name: str) -> dict:
    """tiny_synthetic data scored by the oracle (encoded ground truth, no model) as run `run_name`
    under the current POSECORE_OUTPUTS: what visualize.ipynb needs. Returns the params and the
    notebook parameters that reproduce them."""
    from posecore import evaluation, workbook

    root = tiny_synthetic(folder)
    overrides = {**TINY, "eval.oracle": True}
    params = workbook.notebook_params("fastpose", "demo", str(root), overrides)
    evaluation.evaluate(params, None, run_name=run_name)
    return {
        "params": params,
        "data_root": root,
        "notebook_parameters": {
            "model": "fastpose",
            "params": "demo",
            "run_name": run_name,
            "data_root": str(root),
            "overrides": overrides,
        },
    }


def compute_gradients(run_folder: str, global_batch: int, frozen_batchnorm: bool = False) -> dict[str, np.ndarray]:
    """Gradients of one training step on the first `global_batch` samples of epoch 0.

    Each rank takes its contiguous share of the batch, so 1 process and N processes (DDP) agree
    when BatchNorm does not depend on the split: `frozen_batchnorm` (BatchNorm in eval mode, on
    its running statistics; SyncBN does not run on CPU). Returns {parameter name: gradient}.
    """
    params = load_params(Path(run_folder) / "params.yaml")
    world, rank = distributed.world_size(), distributed.rank()
    if global_batch % world:
        raise ValueError(f"global_batch {global_batch} must divide by the world size {world}")
    torch.manual_seed(params.train.seed)
    bare = load_model(params)[0].train()
    model = nn.parallel.DistributedDataParallel(bare) if world > 1 else bare
    if frozen_batchnorm:
        for module in bare.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    dataset = data.build_dataset(params, "train")
    dataset.set_epoch(0)
    share = global_batch // world
    batch = torch.utils.data.default_collate([dataset[i] for i in range(rank * share, (rank + 1) * share)])
    joints_mse(model(batch["image"]), batch["target"], batch["target_weight"]).backward()
    return {name: p.grad.detach().cpu().numpy() for name, p in bare.named_parameters() if p.grad is not None}


def randomized_model(params, seed: int = 0) -> nn.Module:
    """params' model in eval mode with random weights and BatchNorm statistics (not the
    initialization, whose BN is an identity), so that conversions are really compared."""
    torch.manual_seed(seed)
    model = build_model(params)
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            module.reset_parameters()
        elif isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
            module.weight.data.copy_(0.5 + 0.5 * torch.rand(size, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(size, generator=generator))
    return model.eval()


def pycocotools_stats(gt_path, results_path, sigmas=None) -> list[float]:
    """pycocotools' own COCOeval (keypoints) of a results json against a ground-truth json: the
    10 summary stats (AP, AP50, ..., ARl); `sigmas` sets kpt_oks_sigmas (None: COCO's 17)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        evaluator = COCOeval(gt, gt.loadRes(str(results_path)), "keypoints")
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.array(sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return list(evaluator.stats)


def progress_worker(steps: int) -> int:
    """A launched worker that draws one epoch of training progress (rank 0 only, as the engine)."""
    from posecore.progress import progress_bar

    bar = progress_bar(steps, 0, "epoch 0", enabled=distributed.rank() == 0, images_per_step=8)
    for step in range(steps):
        bar.update(1)
        bar.set_postfix(loss=f"{1.0 / (step + 1):.3g}", lr="0.001", refresh=False)
    bar.close()
    return steps


def stand_in_pose_onnx(path: Path, params=None, fixed_batch: bool = False) -> Path:
    """A stand-in pose model at `path` with the outputs params' codec names and shapes (default:
    the demo's heatmaps [N, K, Hh, Wh]; the simcc pair for data.codec simcc): the image's mean
    colour mixed to K channels, times a fixed random pattern per joint; it carries the metadata
    posecore.export_onnx writes. Loads like an export; its outputs are not a trained model's.
    `fixed_batch`: batch 1, as export_onnx(dynamic_batch=False) writes it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from posecore.codec import build_codec
    from posecore.onnx_metadata import build_metadata, set_metadata

    params = params or load_params("demo")
    codec, (width, height), joints = build_codec(params), params.data.input_size, params.model.num_joints
    batch = 1 if fixed_batch else "n"
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["colour"]),
        helper.make_node("Conv", ["colour", "mix"], ["mixed"]),
    ]
    weights = [numpy_helper.from_array(rng.normal(size=(joints, 3, 1, 1)).astype(np.float32), "mix")]
    outputs = []
    for name, (_, *dims) in codec.output_shapes(joints).items():
        nodes += [
            helper.make_node("Reshape", ["mixed", f"{name}_rows"], [f"{name}_joints"]),
            helper.make_node("Mul", [f"{name}_joints", f"{name}_pattern"], [name]),
        ]
        weights += [
            numpy_helper.from_array(np.array([0, joints] + [1] * len(dims), np.int64), f"{name}_rows"),
            numpy_helper.from_array(rng.random((1, joints, *dims)).astype(np.float32), f"{name}_pattern"),
        ]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, joints, *dims]))
    graph = helper.make_graph(
        nodes,
        "pose",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, height, width])],
        outputs,
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    set_metadata(model, build_metadata(params, codec, list(codec.output_names), None, None))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def lock_holder(folder) -> subprocess.Popen:
    """Another process holding the training lock of `folder` (for 60 s, or until killed)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from posecore.runs import run_lock\n"
            "with run_lock(sys.argv[1], 'training'):\n    print('locked', flush=True); time.sleep(60)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert holder.stdout.readline().strip() == "locked"
    return holder


def checkpoint_weights(path) -> dict[str, torch.Tensor]:
    """The model state_dict of a posecore training checkpoint."""
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def processes_with_env(text: str) -> list[int]:
    """Live processes whose environment mentions `text` (a test's outputs folder)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if text.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]
