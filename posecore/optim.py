"""What training minimizes and how: the losses, the learning-rate schedule, the optimizer.

Loss (`loss_function(codec)` picks it by what the codec's models predict):
- heatmaps: HRNet/mmpose's JointsMSELoss with target weights, 0.5 * mean over joints of the MSE
  between weighted predicted and weighted target heatmaps (AlphaPose's 0.5 * MSE of masked
  heatmaps is the same number); hourglass stacks add their losses.
- simcc: mmpose's KLDiscretLoss as RTMPose trains it (beta 10, label softmax with beta 10, target
  weights): per joint and axis the bin-mean of KL(softmax(10 * label) || softmax(10 * output)),
  times the joint's weight, summed over the batch and both axes, divided by K.

The learning-rate schedule is described in posecore.engine's docstring (multi-step decay, linear
warm-up, AlphaPose's DPG restart); it counts optimizer steps. With train.lr_schedule cosine the LR
is constant until epoch cosine_begin and then follows a cosine, per optimizer step, from lr down
to lr * min_lr_ratio at the last step (mmengine's CosineAnnealingLR with convert_to_iter_based, as
RTMPose trains); the linear warm-up applies to both. `batch_plan` resolves the images of one
optimizer step (train.global_batch) into micro-batches of train.batch_size per device
(train.accumulate).

Optimizers: adam, sgd (momentum) and adamw (decoupled weight decay; norm layers' parameters and
biases get none, as mmpose's paramwise_cfg norm_decay_mult=0, bias_decay_mult=0).
"""
from __future__ import annotations

import bisect
import math

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


def simcc_loss(output: tuple[torch.Tensor, torch.Tensor], target: tuple[torch.Tensor, torch.Tensor],
               target_weight: torch.Tensor, beta: float = 10.0, label_beta: float = 10.0,
               label_softmax: bool = True) -> torch.Tensor:
    """KLDiscretLoss: output and target pairs (x [N, K, Wx], y [N, K, Wy]), target_weight [N, K];
    computed in float32 (see the module docstring)."""
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise TypeError(f"simcc_loss takes the model's pair (simcc_x, simcc_y), got {type(output).__name__}")
    joints = output[0].shape[1]
    weight = target_weight.reshape(-1).float()
    total = output[0].new_zeros((), dtype=torch.float32)
    for predicted, label in zip(output, target):
        log_p = torch.log_softmax(predicted.reshape(-1, predicted.shape[-1]).float() * beta, dim=1)
        label = label.reshape(-1, label.shape[-1]).float()
        if label_softmax:
            label = torch.softmax(label * label_beta, dim=1)
        divergence = torch.nn.functional.kl_div(log_p, label, reduction="none").mean(dim=1)
        total = total + (divergence * weight).sum()
    return total / joints


LOSSES = {"heatmaps": heatmap_loss, "simcc": simcc_loss}


def loss_function(codec):
    """The training loss for a codec's targets (its `output_kind`): heatmap_loss or simcc_loss."""
    return LOSSES[getattr(codec, "output_kind", "heatmaps")]


def learning_rate(train: TrainParams, epoch: int, step: int, epoch_progress: float = 0.0) -> float:
    """LR of global iteration `step` (0-based) in `epoch` (0-based), `epoch_progress` in [0, 1)
    of that epoch done (the cosine schedule is per iteration); see the module docstring."""
    if train.lr_schedule == "cosine":
        lr = _cosine(train, epoch + epoch_progress)
    else:
        if 0 <= train.dpg_epoch < epoch:
            decays = bisect.bisect_right(sorted(train.dpg_lr_steps), epoch - 1)
        else:
            decays = bisect.bisect_right(sorted(train.lr_steps), epoch)
        lr = train.lr * train.lr_factor ** decays
    if step < train.warmup_iters:
        lr *= train.warmup_ratio + (1.0 - train.warmup_ratio) * step / train.warmup_iters
    return lr


def _cosine(train: TrainParams, epochs_done: float) -> float:
    """lr until cosine_begin, then cosine down to lr * min_lr_ratio at train.epochs."""
    if epochs_done <= train.cosine_begin:
        return train.lr
    done = min(1.0, (epochs_done - train.cosine_begin) / (train.epochs - train.cosine_begin))
    floor = train.lr * train.min_lr_ratio
    return floor + (train.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * done))


def build_optimizer(model: nn.Module, train: TrainParams) -> torch.optim.Optimizer:
    if train.optimizer == "adamw":
        return torch.optim.AdamW(decay_groups(model, train.weight_decay), lr=train.lr)
    if train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum,
                           weight_decay=train.weight_decay)


NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: [with weight_decay, without]; without = the parameters of norm layers
    and every other `bias` (mmengine's norm_decay_mult=0, bias_decay_mult=0)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if parameter.requires_grad:
                exempt = isinstance(module, NORM_LAYERS) or name == "bias"
                (no_decay if exempt else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
