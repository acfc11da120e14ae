"""Training: `train(params, npus=1, run_name=None)` fills outputs/<run_name>/.

What training writes into the run folder is listed in posecore.runs.
Loss and learning rate: posecore.optim (`build_loss`: each seed's own loss, train.loss x
train.loss_weight; `schedule`: the LR of every optimizer step, multi-step or cosine, linear
warm-up, AlphaPose's DPG restart counted as its train.py counts it). train.ipynb plots the schedule
before training (posecore.charts.plot_lr_schedule).

Global batch and accumulation (posecore.optim.batch_plan): a step takes train.global_batch images
on any device count, as `accumulate` micro-batches per rank, exactly the batches of a run on
world x accumulate devices (data.step_order); each loss is scaled by 1/accumulate, DDP syncs the
gradients on the last micro-batch only (no_sync), the scaler, optimizer and LR schedule step once.

Determinism and resume: the sample order of epoch e is data.epoch_order(seed, e) (people shuffled,
or with data.group_by_image images shuffled and an image's people adjacent; contiguous slices per
rank, padded like DistributedSampler), augmentation depends on (seed, epoch, index) only, train.deterministic
(on for CPU runs by default) selects deterministic kernels, and checkpoints carry every RNG state.
So on CPU, a run killed at any point after its first checkpoint and started again (same run_name)
ends with bitwise the same weights as an uninterrupted run. last.pt is written atomically at the
end of every epoch. An interrupt or SIGTERM (posecore.stopping) stops after the current step and
writes last.pt at that step (epoch_step > 0: resuming skips the batches already seen), then raises
KeyboardInterrupt or SystemExit(143). Performance mode (train.max_steps > 0) writes no checkpoints.

One run folder has one writer (runs.run_lock). A resume checks the new params against the run's
(posecore.resume.check_resume) and records accepted changes in log.jsonl before params.yaml.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from posecore import data, device, distributed
from posecore.checkpoints import (
    CheckpointError,
    check_training_state,
    load_model,
    read_checkpoint,
    restore_rng,
    save_checkpoint,
    training_checkpoint,
)
from posecore.data.loading import workers_advice
from posecore.environment import write_run_records
from posecore.errors import TrainingError
from posecore.evaluation import primary_metric, validate
from posecore.files import append_jsonl, atomic_write, json_safe, jsonl_line, read_jsonl, write_json
from posecore.meter import StepMeter
from posecore.optim import batch_plan, build_loss, build_optimizer, schedule
from posecore.params import Params, TrainParams, check_model_geometry, load_params, save_params
from posecore.progress import progress_bar
from posecore.resume import check_resume
from posecore.runs import Run, default_run_name
from posecore.stopping import StopRequest, data_worker_init, stop_on_signals
from posecore.tensorboard_log import TensorBoardLog

_ADVICE_STEPS = 10  # steps after train.perf_warmup_steps that the advice is measured on


# --- public entry points ---------------------------------------------------------------------


def train(params: Params | str | os.PathLike, npus: int = 1, run_name: str | None = None) -> dict[str, Any]:
    """Train `params` (a Params, a params name or a yaml path) on `npus` devices of this machine.

    Writes outputs/<run_name>/ (default run name: <params.name>-<date>-<time>). Running again
    with the same run_name resumes from its checkpoints/last.pt with the params given now (saved
    over params.yaml: e.g. more train.epochs extends a run); with train.resume false a folder
    that already has a checkpoint is refused. npus > 1 starts one worker process per
    device through torch's elastic launcher (see posecore.distributed for multi-node runs).
    Returns rank 0's summary: run_dir, epochs, steps, loss, lr, images_per_s, data_wait,
    measured_steps, skipped_steps, best_metric, metrics, checkpoint, world_size, global_batch,
    accumulate, stopped.
    """
    distributed.check_main_guard("posecore.train")
    params = load_params(params)
    check_model_geometry(params)  # load_params leaves it out when eval.oracle is on
    device.check_device_count(npus)
    check_amp_backend(params.train)
    data.ensure_synthetic(params)
    params = data.resolve_keypoints(params, run_name)  # a custom keypoint set is saved with the run
    nodes = distributed.node_settings(params)
    global_batch, accumulate = batch_plan(params.train, npus * nodes.nnodes)  # an error if it does not divide
    if nodes.nnodes > 1 and not run_name:
        raise TrainingError(
            f"training on {nodes.nnodes} nodes needs a run_name, the same on every "
            f"node (they share its folder and rendezvous under its name)"
        )
    run = Run(run_name or default_run_name(params.name or params.model.name))
    folder = run.folder_made()
    with run.lock("training", node=nodes.node_rank):
        changed = check_resume(run, params, world_size=npus * nodes.nnodes)
        save_params(params, run.params_path)
        if changed and nodes.node_rank == 0:
            append_jsonl(
                run.log_path,
                {"type": "params_changed", "changed": changed, "time": datetime.now().isoformat(timespec="seconds")},
            )
        validates = 0 < params.train.val_every <= params.train.epochs
        write_run_records(
            folder,
            params,
            npus,
            nodes,
            ("train", "val") if validates else ("train",),
            extra={"global_batch": global_batch, "accumulate": accumulate},
        )
        return distributed.launch(
            train_worker, (str(folder),), npus, params, log_dir=run.logs_dir, job_name=folder.name
        )


def train_worker(run_folder: str) -> dict[str, Any]:
    """Train the run in `run_folder` (reads its params.yaml) on this rank; rank 0 returns the summary."""
    with device.deterministic_restored():
        return _Trainer(Path(run_folder)).run()


# --- pieces ----------------------------------------------------------------------------------


def prepare_model(params: Params, dev: torch.device, world: int) -> nn.Module:
    """The bare model (no DDP / compile wrappers) on `dev` with the weights params name, in
    training mode: SyncBN and channels_last per params."""
    model = load_model(params)[0].train()
    if params.train.sync_bn and world > 1:
        if dev.type == "cpu":
            raise TrainingError(
                "train.sync_bn needs NPU/GPU workers (torch's SyncBatchNorm does not "
                "run on CPU): set train.sync_bn: false for CPU runs"
            )
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(dev)
    if params.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def check_amp_backend(train: TrainParams) -> Any:
    """apex.amp when train.amp_backend is apex and AMP is on (None otherwise); a clear error without it."""
    if train.amp_backend != "apex" or train.amp == "off":
        return None
    if train.amp != "fp16":
        raise TrainingError(
            f"train.amp_backend: apex supports fp16 only, not train.amp: {train.amp}; "
            f"use train.amp_backend: torch for bf16"
        )
    try:
        from apex import amp  # optional dependency (NVIDIA apex), imported on use
    except ImportError as error:
        raise ImportError(
            "train.amp_backend: apex needs NVIDIA apex (apex.amp), which is not installed in this "
            "environment (Ascend torch_npu builds ship it); install apex or set "
            "train.amp_backend: torch to use torch.amp"
        ) from error
    return amp


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _wrap_model(bare: nn.Module, train: TrainParams, dev: torch.device, world: int) -> nn.Module:
    model = torch.compile(bare) if train.compile else bare
    if world > 1:
        device_ids = None if dev.type == "cpu" else [dev.index]
        model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    return model


@contextlib.contextmanager
def _out_of_memory_explained(dev: torch.device, params: Params):
    """An out-of-memory error of a training step becomes a TrainingError naming the fixes."""
    try:
        yield
    except RuntimeError as error:
        if device.is_out_of_memory(error):
            raise TrainingError(
                f"out of memory on {dev} at train.batch_size {params.train.batch_size} per device "
                f"(input {params.data.input_size}, amp {params.train.amp}): lower train.batch_size "
                f"(e.g. {max(1, params.train.batch_size // 2)}) or turn on train.amp; with "
                f"train.global_batch set, more micro-batches then keep the step's images"
            ) from error
        raise


class _Trainer:
    def __init__(self, folder: Path) -> None:
        self.folder, self.run_files = folder, Run.at(folder)
        self.params = load_params(self.run_files.params_path)
        self.train = self.params.train
        self.world, self.main = distributed.world_size(), distributed.is_main()
        self.device = device.get_device(distributed.local_rank())
        self.global_batch, self.accumulate = batch_plan(self.train, self.world)
        self.last_path, self.best_path = self.run_files.last_path, self.run_files.best_path
        _seed_everything(self.train.seed)
        device.set_deterministic(device.deterministic_setting(self.train.deterministic, self.device.type))
        self.apex = check_amp_backend(self.train)
        self.dataset = data.build_dataset(self.params, "train")
        self.loss = build_loss(self.params)
        self.bare = prepare_model(self.params, self.device, self.world)
        self.optimizer = build_optimizer(self.bare, self.train)
        self.scaler = device.grad_scaler("off" if self.apex else self.train.amp, self.train.loss_scale)
        if self.apex:
            loss_scale = self.train.loss_scale or "dynamic"
            self.bare, self.optimizer = self.apex.initialize(
                self.bare, self.optimizer, opt_level="O1", loss_scale=loss_scale
            )
        self.epoch = self.epoch_step = self.step = self.skipped = self.nan_streak = 0
        self.epoch_total = 0  # optimizer steps per epoch (the schedule's epoch length)
        self.lrs = schedule(self.train, 1)  # replaced by the run's schedule once the epoch length is known
        self.best_metric: float | None = None
        self.metrics: dict[str, float] = {}
        self.stop = StopRequest()
        self.lr = float(self.lrs[0])
        self._resume_or_start()
        self.board = TensorBoardLog(folder, self.params, self.step, enabled=self.main)
        self.model = _wrap_model(self.bare, self.train, self.device, self.world)
        # this invocation: every step, and the steps after train.perf_warmup_steps
        self.all_steps, self.measured = StepMeter(), StepMeter()
        self.epoch_loss = float("nan")

    # ---- state

    def _resume_or_start(self) -> None:
        log_path = self.run_files.log_path
        if not self.last_path.exists():
            if self.main:  # leftovers of an attempt that died before its first checkpoint
                for stale in (log_path, self.run_files.metrics_path, self.best_path):
                    stale.unlink(missing_ok=True)
            return
        checkpoint = read_checkpoint(self.last_path)
        check_training_state(checkpoint, self.last_path)
        try:
            self.bare.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            if self.apex:
                self.apex.load_state_dict(checkpoint["scaler"])
            elif self.scaler.is_enabled() and checkpoint["scaler"]:
                self.scaler.load_state_dict(checkpoint["scaler"])
            restore_rng(checkpoint["rng"])
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as error:
            raise CheckpointError(
                f"{self.last_path}: cannot resume from it ({type(error).__name__}: "
                f"{str(error)[:300]}); restore the file, or start the run again"
            ) from None
        self.epoch, self.epoch_step = checkpoint["epoch"], checkpoint["epoch_step"]
        self.step, self.skipped = checkpoint["step"], checkpoint["skipped_steps"]
        self.best_metric = checkpoint["best_metric"]
        self.metrics = self.run_files.metrics()
        if self.main:
            self._forget_records_after(log_path)
            print(
                f"resuming {self.folder.name} from {self.last_path} at epoch {self.epoch}"
                f"{f' step {self.epoch_step} of the epoch' if self.epoch_step else ''} "
                f"(global step {self.step})",
                flush=True,
            )

    def _forget_records_after(self, log_path: Path) -> None:
        """Drop log records of steps the resumed run will redo, so each step is logged once."""
        if not log_path.exists():
            return
        kept = [
            r
            for r in read_jsonl(log_path)
            if (r.get("type") == "val" and r.get("epoch", 0) < self.epoch)
            or (r.get("type") == "train" and r.get("step", 0) <= self.step)
            or r.get("type") not in ("val", "train")
        ]
        atomic_write(log_path, "".join(jsonl_line(r) for r in kept))

    def _checkpoint(self) -> dict[str, Any]:
        scaler = self.apex.state_dict() if self.apex else self.scaler.state_dict()
        return training_checkpoint(
            self.params,
            self.bare,
            self.optimizer,
            scaler,
            epoch=self.epoch,
            epoch_step=self.epoch_step,
            step=self.step,
            lr=self.lr,
            best_metric=self.best_metric,
            skipped_steps=self.skipped,
        )

    # ---- loop

    def run(self) -> dict[str, Any]:
        perf_mode = self.train.max_steps > 0
        last_epoch = min(self.train.epochs, self.epoch + 1) if perf_mode else self.train.epochs
        stopped = "done"
        launched = self.world > 1
        announce = (
            f"stopping after the current step and saving {self.last_path.name} (interrupt again to stop at once)"
            if self.main
            else None
        )
        with stop_on_signals(self.stop, announce, launched), contextlib.closing(self.board):
            while self.epoch < last_epoch:
                completed = self._train_epoch(perf_mode)
                if perf_mode or not completed:
                    stopped = "max_steps"
                    break
                self._end_epoch()
        return self._finish(stopped)

    def _loader(self, epoch: int) -> tuple[DataLoader, int]:
        """This rank's micro-batches of epoch `epoch` from step self.epoch_step on, and the epoch's
        optimizer steps (a last incomplete step is dropped: a batch of one breaks BatchNorm)."""
        batch_size = self.train.batch_size
        indices, total = data.step_order(
            self.dataset.image_groups(),
            self.train.seed,
            epoch,
            batch_size,
            self.world,
            distributed.rank(),
            self.accumulate,
            self.params.data.group_by_image,
        )
        if total == 0:
            raise TrainingError(
                f"the train split has {len(self.dataset)} samples, less than one optimizer step of "
                f"{self.global_batch} (train.global_batch: train.batch_size {batch_size} x "
                f"{self.world} devices x {self.accumulate} micro-batches): lower train.batch_size "
                f"or train.global_batch"
            )
        generator = torch.Generator().manual_seed(self.train.seed * 1_000_003 + epoch)
        loader = DataLoader(
            self.dataset,
            batch_size=batch_size,
            sampler=indices[self.epoch_step * self.accumulate * batch_size :],
            num_workers=self.params.data.workers,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=data_worker_init,
            generator=generator,
            drop_last=True,
        )
        return loader, total

    def _train_epoch(self, perf_mode: bool) -> bool:
        """Train the rest of epoch self.epoch; False when stopped early by train.max_steps."""
        epoch = self.epoch
        self.dataset.set_epoch(epoch)
        loader, total = self._loader(epoch)
        if total != self.epoch_total:
            self.lrs, self.epoch_total = schedule(self.train, total), total
        self.model.train()
        window, epoch_meter = StepMeter(), StepMeter()
        progress = progress_bar(
            total, self.epoch_step, f"epoch {epoch}", enabled=self.main, images_per_step=self.global_batch
        )
        batches = iter(loader)
        try:
            while self.epoch_step < total:
                started = time.perf_counter()
                loss, stop, wait = self._step(batches, epoch)
                elapsed = time.perf_counter() - started
                for meter in (window, epoch_meter):
                    meter.add(self.global_batch, wait, elapsed, loss)
                if self.all_steps.steps >= self.train.perf_warmup_steps:
                    self.measured.add(self.global_batch, wait, elapsed, loss)
                    if self.measured.steps == _ADVICE_STEPS and self.main:
                        self._advise_workers()
                self.all_steps.add(self.global_batch, wait, elapsed, loss)
                self.step += 1
                self.epoch_step += 1
                progress.update(1)
                progress.set_postfix(loss=f"{loss:.3g}", lr=f"{self.lr:.3g}", refresh=False)
                if self.step % self.train.log_every == 0 or self.epoch_step == total:
                    self._log_train(epoch, window)
                    window = StepMeter()
                if stop:
                    self._interrupted()
                if perf_mode and self.all_steps.steps >= self.train.max_steps:
                    return self.epoch_step == total
        finally:
            progress.close()
            self.epoch_loss = epoch_meter.summary()["loss"]
        if self.main:
            summary = epoch_meter.summary()
            print(
                f"epoch {epoch}: loss {summary['loss']:.6g}  lr {self.lr:.3g}  "
                f"{summary['images_per_s']:.1f} img/s  data wait {summary['data_wait']:.0%}  "
                f"skipped {self.skipped}",
                flush=True,
            )
        return True

    def _step(self, batches: Iterator[dict[str, torch.Tensor]], epoch: int) -> tuple[float, bool, float]:
        """One optimizer step over the next self.accumulate micro-batches of `batches`; returns
        (loss averaged over ranks, whether any rank asked to stop, seconds spent waiting for data)."""
        # the schedule counts optimizer steps
        self.lr = float(self.lrs[epoch * self.epoch_total + self.epoch_step])
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, wait = torch.zeros((), device=self.device), 0.0
        with _out_of_memory_explained(self.device, self.params):
            for micro in range(self.accumulate):
                waited = time.perf_counter()
                batch = next(batches)
                wait += time.perf_counter() - waited
                last = micro == self.accumulate - 1
                # DDP all-reduces the gradients once per step, in the last micro-batch's backward
                with contextlib.nullcontext() if last or self.world == 1 else self.model.no_sync():
                    loss_sum += self._forward_backward(batch, last).detach().float()
            # one collective per step: the mean loss and the stop vote, so all ranks decide alike
            shared = torch.stack([loss_sum, torch.tensor(float(self.stop.requested), device=self.device)])
            rank_loss_sum, stop_votes = distributed.all_reduce_sum(shared).tolist()
            mean_loss = rank_loss_sum / self.world
            self._count(self._optimizer_step(math.isfinite(mean_loss)))
        return mean_loss, stop_votes > 0, wait

    def _forward_backward(self, batch: dict[str, torch.Tensor], last: bool) -> torch.Tensor:
        """Forward and backward of one micro-batch (BatchNorm sees it as one rank's batch);
        returns its loss scaled by 1/accumulate, the share its gradients add to the step."""
        images = batch["image"].to(self.device, non_blocking=True)
        if self.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        target = batch["target"]  # a tensor, or the simcc codec's pair (collated to a list)
        target = (
            [part.to(self.device, non_blocking=True) for part in target]
            if isinstance(target, list)
            else target.to(self.device, non_blocking=True)
        )
        target_weight = batch["target_weight"].to(self.device, non_blocking=True)
        with device.autocast("off" if self.apex else self.train.amp):
            output = self.model(images)
        loss = self.loss(output, target, target_weight) / self.accumulate
        # backward even for a non-finite loss: DDP expects one backward per forward
        if self.apex:  # unscaled once, after the last micro-batch
            with self.apex.scale_loss(loss, self.optimizer, delay_unscale=not last) as scaled:
                scaled.backward()
        else:
            self.scaler.scale(loss).backward()
        return loss

    def _optimizer_step(self, loss_finite: bool) -> bool:
        """Step unless the (rank-averaged) gradients are not finite; True when it stepped."""
        if self.apex:  # apex skips overflowing steps itself
            self.optimizer.step()
            return loss_finite
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        parameters = [p for p in self.bare.parameters() if p.grad is not None]
        if self.train.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(parameters, self.train.grad_clip)
        else:
            norm = nn.utils.get_total_norm([p.grad for p in parameters])
        finite = loss_finite and bool(torch.isfinite(norm))
        if finite:
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)
            else:
                self.optimizer.step()
        if self.scaler.is_enabled():
            self.scaler.update()  # backs the dynamic scale off after an overflow
        return finite

    def _count(self, stepped: bool) -> None:
        if stepped:
            self.nan_streak = 0
            return
        self.skipped += 1
        self.nan_streak += 1
        limit = self.train.max_nan_steps
        if limit > 0 and self.nan_streak >= limit:
            kept = self.last_path if self.last_path.exists() else "none was written yet"
            raise TrainingError(
                f"the loss or gradients were NaN/inf for {self.nan_streak} consecutive steps "
                f"(train.max_nan_steps {limit}; epoch {self.epoch}, step {self.step}); stopped "
                f"without saving. The last good checkpoint is kept: {kept}. Lower train.lr, set "
                f"train.grad_clip, or train in fp32 / bf16 (train.amp)"
            )

    # ---- records

    def _advise_workers(self) -> None:
        devices_per_node = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        advice = workers_advice(
            self.measured.wait,
            self.measured.busy,
            self.measured.steps,
            self.train.batch_size * self.accumulate,
            self.params.data.workers,
            devices_per_node,
        )
        if advice:
            print(f"warning: {advice}", file=sys.stderr, flush=True)

    def _log_train(self, epoch: int, window: StepMeter) -> None:
        if self.main:
            record = {
                "type": "train",
                "epoch": epoch,
                "step": self.step,
                "lr": self.lr,
                **json_safe(window.summary()),
                "skipped": self.skipped,
            }
            append_jsonl(self.run_files.log_path, record)
            self.board.train(record)

    def _end_epoch(self) -> None:
        epoch = self.epoch
        self.epoch, self.epoch_step = epoch + 1, 0
        improved = False
        if self.train.val_every > 0 and self.epoch % self.train.val_every == 0:
            improved = self._validate(epoch)
        if self.main:
            checkpoint = self._checkpoint()
            if improved:  # best.pt first: a kill between the two writes then loses nothing
                save_checkpoint(self.best_path, checkpoint)
            save_checkpoint(self.last_path, checkpoint)
        if self._stop_agreed():
            raise self.stop.error()

    def _validate(self, epoch: int) -> bool:
        with torch.no_grad():
            self.metrics = validate(self.bare, self.params, out_dir=self.run_files.val_dir)
        self.model.train()
        if not self.main:
            return False
        name = primary_metric(self.params)
        value = self.metrics.get(name)
        record = {"epoch": epoch, "step": self.step, **self.metrics}
        append_jsonl(self.run_files.log_path, {"type": "val", **record})
        write_json(self.run_files.metrics_path, record)
        self.board.validation(record, self.run_files.val_dir)
        print(f"epoch {epoch} validation: {name} {value}", flush=True)
        improved = value is not None and math.isfinite(value) and (self.best_metric is None or value > self.best_metric)
        if improved:
            self.best_metric = float(value)
        return improved

    def _stop_agreed(self) -> bool:
        votes = torch.tensor([float(self.stop.requested)], device=self.device)
        return distributed.all_reduce_sum(votes).item() > 0

    def _interrupted(self) -> None:
        if self.main and self.train.max_steps == 0:
            save_checkpoint(self.last_path, self._checkpoint())
            print(
                f"saved {self.last_path} at epoch {self.epoch} step {self.epoch_step} of the "
                f"epoch; run again with the same run_name to resume",
                file=sys.stderr,
                flush=True,
            )
        raise self.stop.error()

    def _finish(self, stopped: str) -> dict[str, Any]:
        """Speed over the steps after train.perf_warmup_steps (over all steps if there are none)."""
        meter = self.measured if self.measured.steps else self.all_steps
        summary = meter.summary()
        result = {
            "run_dir": str(self.folder),
            "epochs": self.epoch,
            "steps": self.step,
            "loss": self.epoch_loss,
            "lr": self.lr,
            "images_per_s": summary["images_per_s"],
            "data_wait": summary["data_wait"],
            "measured_steps": meter.steps,
            "skipped_steps": self.skipped,
            "best_metric": self.best_metric,
            "metrics": self.metrics,
            "checkpoint": str(self.last_path) if self.last_path.exists() else None,
            "world_size": self.world,
            "global_batch": self.global_batch,
            "accumulate": self.accumulate,
            "stopped": stopped,
        }
        if self.main:
            record = {k: v for k, v in result.items() if k not in ("run_dir", "metrics", "checkpoint")}
            append_jsonl(self.run_files.log_path, json_safe({"type": "summary", **record}))
            print(
                f"{self.folder.name}: {self.step} steps, {summary['images_per_s']:.1f} img/s over "
                f"{meter.steps} measured steps (all devices), data wait "
                f"{summary['data_wait']:.0%}, {self.skipped} skipped",
                flush=True,
            )
        return result
