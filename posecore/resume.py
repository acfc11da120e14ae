"""Resuming a run: whether the params given now may continue the run a folder holds."""

from __future__ import annotations

from posecore.checkpoints import check_training_state, read_checkpoint
from posecore.errors import TrainingError
from posecore.optim import batch_plan
from posecore.params import Params, ParamsError, load_params, resume_changes
from posecore.runs import Run


def check_resume(run: Run, params: Params, world_size: int) -> dict[str, list]:
    """Whether `run` may continue under `params` on `world_size` devices; called
    before anything of the run is written. Returns the accepted changes {key: [before, now]}.

    A run with a checkpoint is refused with train.resume false, and when a key that alters the
    model, the optimizer state's meaning or the data order differs from its params.yaml (or the
    world size from its env.json: the global batch), unless train.accept_changes lists that key.
    Another world size with the same train.global_batch keeps the steps' batches (more or fewer
    micro-batches per device: posecore.optim.batch_plan) and is accepted.
    """
    folder, last = run.folder, run.last_path
    if not last.exists():
        return {}
    if not params.train.resume:
        raise TrainingError(
            f"{folder} already has a checkpoint ({last}); train.resume is false, so it will not be "
            f"overwritten: pick another run_name, or set train.resume: true to continue that run"
        )
    check_training_state(read_checkpoint(last, mmap=True), last)  # a damaged last.pt: named now
    if not run.params_path.exists():
        return {}
    saved = load_params(run.params_path)
    accepted, refused = resume_changes(saved, params)
    env = run.env()
    before = env.get("world_size") if isinstance(env, dict) else None
    if before is not None and (isinstance(before, bool) or not isinstance(before, int) or before < 1):
        raise TrainingError(
            f"{run.env_path()}: world_size is {before!r}, expected a positive integer (the "
            "devices the run trained on); restore the file or set it"
        )
    if before not in (None, world_size):
        same_steps = 0 < params.train.global_batch == _global_batch(saved, before)
        changes = accepted if same_steps or "world_size" in params.train.accept_changes else refused
        changes["world_size"] = [before, world_size]
    if refused:
        listed = "\n".join(f"  {key}: {old!r} -> {new!r}" for key, (old, new) in refused.items())
        keys = ", ".join(f'"{key}"' for key in refused)
        raise TrainingError(
            f"run {folder.name!r} ({folder}) has a checkpoint made with other values of keys that "
            f"change the model, the optimizer state's meaning or the data order, so resuming would "
            f"mix two runs:\n{listed}\nNothing was written. Start a new run (another run_name), or "
            f"continue this one with the new values by accepting them explicitly (recorded in "
            f'{Run.PARAMS} and {Run.LOG}): overrides {{"train.accept_changes": [{keys}]}}'
        )
    if accepted:
        print(
            f"resuming {folder.name} with changed params: "
            + ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in accepted.items()),
            flush=True,
        )
    return accepted


def _global_batch(saved: Params, world_size: int) -> int | None:
    """The images per optimizer step the saved run trained with (None if its params no longer fit)."""
    try:
        return batch_plan(saved.train, world_size)[0]
    except ParamsError:
        return None
