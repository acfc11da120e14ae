"""What training minimizes and how: the losses, the learning-rate schedule, the optimizer.

Loss (`build_loss(params)`: train.loss times train.loss_weight; each seed's own):
- joints_mse: mean over the batch, joints and pixels of ((output - target) * w)^2, w the joint's
  target weight. This is mmpose 0.x's JointsMSELoss(use_target_weight=True) (the Hourglass seed,
  loss_weight 1) and AlphaPose's MSELoss on masked heatmaps, which its train.py halves (the
  FastPose seed, loss_weight 0.5).
- keypoint_mse: mean of w * (output - target)^2: mmpose 1.x's KeypointMSELoss(use_target_weight=
  True) (HRNet, SimpleBaseline). It equals joints_mse for 0/1 weights and differs with
  data.joint_weights (w, not w^2).
- kl_discret: mmpose's KLDiscretLoss as RTMPose trains it (beta 10, label softmax with beta 10,
  target weights): per joint and axis the bin-mean of KL(softmax(10 * label) || softmax(10 *
  output)), times the joint's weight, summed over the batch and both axes, divided by K.
A stacked model's outputs (a list, e.g. Hourglass stacks) add their losses, as mmpose's TopDown
sums its stages.

Learning rate (`schedule(train, steps_per_epoch)`: the LR of every optimizer step of the run; the
engine reads its step's value from it): multi-step decay by lr_factor at the epochs in lr_steps
(torch's MultiStepLR stepped once per epoch, as AlphaPose and mmcv's step policy do), an optional
linear warm-up over the first warmup_iters optimizer steps from lr * warmup_ratio (mmcv's linear
warm-up), and AlphaPose's DPG phase: once epoch dpg_epoch (DPG_MILESTONE, 0-based) has finished,
the dataset turns DPG box jitter on and the LR restarts at train.lr under a new MultiStepLR (gamma
dpg_lr_factor, 0.1 in AlphaPose's train.py) whose milestones are DPG_STEP minus DPG_MILESTONE
(alphapose/opt.py rewrites them so at import, in every release) counted from its creation. With the
seed's 140, [160, 190]: epochs 141-160 at lr, 161-190 at lr * 0.1, 191-199 at lr * 0.01.
With train.lr_schedule cosine the LR is constant until epoch cosine_begin and then follows a
cosine, per optimizer step, from lr down to lr * min_lr_ratio at the last step (mmengine's
CosineAnnealingLR with convert_to_iter_based, as RTMPose trains); the linear warm-up applies to both.
`batch_plan` resolves the images of one optimizer step (train.global_batch) into micro-batches of
train.batch_size per device (train.accumulate).

Optimizers: adam, sgd (momentum) and adamw (decoupled weight decay; norm layers' parameters and
biases get none, as mmpose's paramwise_cfg norm_decay_mult=0, bias_decay_mult=0).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from posecore.codec import codec_class
from posecore.params import Params, ParamsError, TrainParams

Loss = Callable[..., torch.Tensor]


def joints_mse(
    output: torch.Tensor | list[torch.Tensor],
    target: torch.Tensor,
    target_weight: torch.Tensor,
    loss_weight: float = 1.0,
) -> torch.Tensor:
    """mean(((output - target) * w)^2) * loss_weight: output and target [N, K, H, W] (or a list of
    per-stack outputs, summed), target_weight [N, K] (or [N, K, 1]); computed in float32."""
    if isinstance(output, (list, tuple)):
        return sum(joints_mse(stack, target, target_weight, loss_weight) for stack in output)
    weight = target_weight.reshape(target.shape[0], target.shape[1], 1, 1).float()
    difference = (output.float() - target.float()) * weight
    return difference.pow(2).mean() * loss_weight


def keypoint_mse(
    output: torch.Tensor | list[torch.Tensor],
    target: torch.Tensor,
    target_weight: torch.Tensor,
    loss_weight: float = 1.0,
) -> torch.Tensor:
    """mean(w * (output - target)^2) * loss_weight (shapes as joints_mse); computed in float32."""
    if isinstance(output, (list, tuple)):
        return sum(keypoint_mse(stack, target, target_weight, loss_weight) for stack in output)
    weight = target_weight.reshape(target.shape[0], target.shape[1], 1, 1).float()
    return ((output.float() - target.float()).pow(2) * weight).mean() * loss_weight


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
        fitting = [b for b in range(1, train.global_batch + 1) if train.global_batch % (b * world) == 0][-3:]
        raise ParamsError(
            f"train.global_batch {train.global_batch} is not a whole number of micro-batches of "
            f"train.batch_size {train.batch_size} on {world} device(s) ({train.batch_size} x {world} "
            f"= {per_step} images per micro-batch step): use a train.batch_size that divides "
            f"{train.global_batch} / {world}, e.g. {fitting or [1]}, or another device count"
        )
    if train.accumulate and train.accumulate != accumulate:
        raise ParamsError(
            f"train.accumulate {train.accumulate} disagrees with train.global_batch "
            f"{train.global_batch} / (train.batch_size {train.batch_size} x {world} device(s)) = "
            f"{accumulate}: set train.accumulate: 0 (derived) or train.global_batch: 0"
        )
    return train.global_batch, accumulate


def simcc_loss(
    output: tuple[torch.Tensor, torch.Tensor],
    target: tuple[torch.Tensor, torch.Tensor],
    target_weight: torch.Tensor,
    loss_weight: float = 1.0,
    beta: float = 10.0,
    label_beta: float = 10.0,
    label_softmax: bool = True,
) -> torch.Tensor:
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
    return total / joints * loss_weight


LOSSES: dict[str, Loss] = {"joints_mse": joints_mse, "keypoint_mse": keypoint_mse, "kl_discret": simcc_loss}


def loss_name(params: Params) -> str:
    """train.loss with `auto` resolved: the codec's default loss (kl_discret for SimCC labels,
    joints_mse for heatmaps)."""
    if params.train.loss != "auto":
        return params.train.loss
    return codec_class(params.data.codec).default_loss


def build_loss(params: Params) -> Loss:
    """The callable training minimizes: loss(output, target, target_weight) -> scalar tensor, with
    `output` a tensor (or the simcc pair) or a list of per-stack outputs; train.loss x
    train.loss_weight (see the module docstring)."""
    function, weight = LOSSES[loss_name(params)], float(params.train.loss_weight)

    def loss(output, target, target_weight) -> torch.Tensor:
        return function(output, target, target_weight, loss_weight=weight)

    loss.__name__ = f"{function.__name__}_x{weight:g}"
    return loss


def schedule(train: TrainParams, steps_per_epoch: int) -> np.ndarray:
    """float64 [train.epochs x steps_per_epoch]: the LR of every optimizer step of the run, step s
    being step s % steps_per_epoch of epoch s // steps_per_epoch (see the module docstring)."""
    steps_per_epoch = int(steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    step = np.arange(train.epochs * steps_per_epoch)
    epoch = step // steps_per_epoch
    if train.lr_schedule == "cosine":
        lr = _cosine(train, epoch + (step % steps_per_epoch) / steps_per_epoch)
    else:
        decays = np.searchsorted(np.sort(train.lr_steps), epoch, side="right")
        lr = train.lr * train.lr_factor**decays
        if train.dpg_epoch >= 0:
            # AlphaPose's second MultiStepLR: created (count 0) when epoch dpg_epoch ends, with
            # milestones DPG_STEP - DPG_MILESTONE (alphapose/opt.py)
            milestones = np.sort(train.dpg_lr_steps) - train.dpg_epoch
            counted = np.searchsorted(milestones, epoch - train.dpg_epoch - 1, side="right")
            lr = np.where(epoch > train.dpg_epoch, train.lr * train.dpg_lr_factor**counted, lr)
    if train.warmup_iters:
        ramp = train.warmup_ratio + (1.0 - train.warmup_ratio) * step / train.warmup_iters
        lr = np.where(step < train.warmup_iters, lr * ramp, lr)
    return np.asarray(lr, dtype=np.float64)


def _cosine(train: TrainParams, epochs_done: np.ndarray) -> np.ndarray:
    """lr until cosine_begin, then cosine down to lr * min_lr_ratio at train.epochs."""
    done = np.clip((epochs_done - train.cosine_begin) / (train.epochs - train.cosine_begin), 0.0, 1.0)
    floor = train.lr * train.min_lr_ratio
    return floor + (train.lr - floor) * 0.5 * (1.0 + np.cos(np.pi * done))


def build_optimizer(model: nn.Module, train: TrainParams) -> torch.optim.Optimizer:
    if train.optimizer == "adamw":
        return torch.optim.AdamW(decay_groups(model, train.weight_decay), lr=train.lr)
    if train.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)


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
