"""What training minimizes and how: the heatmap loss, the learning-rate schedule, the optimizer.

Loss: HRNet/mmpose's JointsMSELoss with target weights, 0.5 * mean over joints of the MSE between
weighted predicted and weighted target heatmaps (AlphaPose's 0.5 * MSE of masked heatmaps is the
same number); hourglass stacks add their losses. The learning-rate schedule is described in
posecore.engine's docstring (multi-step decay, linear warm-up, AlphaPose's DPG restart); it counts
optimizer steps. `batch_plan` resolves the images of one optimizer step (train.global_batch) into
micro-batches of train.batch_size per device (train.accumulate).
"""
from __future__ import annotations

import bisect

import torch
from torch import nn

from posecore.params import ParamsError, TrainParams


def heatmap_loss(output: torch.Tensor | list[torch.Tensor], target: torch.Tensor,
                 target_weight: torch.Tensor) -> torch.Tensor:
    """JointsMSELoss: output and target [N, K, H, W] (or a list of per-stack outputs, summed),
    target_weight [N, K] (or [N, K, 1]); computed in float32."""
    if isinstance(output, (list, tuple)):
        return sum(heatmap_loss(stack, target, target_weight) for stack in output)
    weight = target_weight.reshape(target.shape[0], target.shape[1], 1, 1).float()
    difference = (output.float() - target.float()) * weight
    return 0.5 * difference.pow(2).mean()


def batch_plan(train: TrainParams, world: int) -> tuple[int, int]:
    """(global batch, accumulate): the images of one optimizer step over all `world` devices and
    the micro-batches of train.batch_size each device runs per step.

    train.global_batch 0 takes batch_size x world x accumulate (accumulate 0 counts as 1);
    otherwise accumulate = global_batch / (batch_size x world), which must divide evenly and
    agree with a train.accumulate that is set. A ParamsError names the numbers and a fix.
    """
    per_step = train.batch_size * world
    if not train.global_batch:
        accumulate = train.accumulate or 1
        return per_step * accumulate, accumulate
    accumulate, rest = divmod(train.global_batch, per_step)
    if rest or not accumulate:
        fitting = [b for b in range(1, train.global_batch + 1)
                   if train.global_batch % (b * world) == 0][-3:]
        raise ParamsError(
            f"train.global_batch {train.global_batch} is not a whole number of micro-batches of "
            f"train.batch_size {train.batch_size} on {world} device(s) ({train.batch_size} x {world} "
            f"= {per_step} images per micro-batch step): use a train.batch_size that divides "
            f"{train.global_batch} / {world}, e.g. {fitting or [1]}, or another device count")
    if train.accumulate and train.accumulate != accumulate:
        raise ParamsError(
            f"train.accumulate {train.accumulate} disagrees with train.global_batch "
            f"{train.global_batch} / (train.batch_size {train.batch_size} x {world} device(s)) = "
            f"{accumulate}: set train.accumulate: 0 (derived) or train.global_batch: 0")
    return train.global_batch, accumulate


def learning_rate(train: TrainParams, epoch: int, step: int) -> float:
    """LR of global iteration `step` (0-based) in `epoch` (0-based); see the module docstring."""
    if 0 <= train.dpg_epoch < epoch:
        decays = bisect.bisect_right(sorted(train.dpg_lr_steps), epoch - 1)
    else:
        decays = bisect.bisect_right(sorted(train.lr_steps), epoch)
    lr = train.lr * train.lr_factor ** decays
    if step < train.warmup_iters:
        lr *= train.warmup_ratio + (1.0 - train.warmup_ratio) * step / train.warmup_iters
    return lr


def build_optimizer(model: nn.Module, train: TrainParams) -> torch.optim.Optimizer:
    if train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum,
                           weight_decay=train.weight_decay)
