"""The errors several rooms raise, below all of them: params and AlphaPose configs (ParamsError),
keypoint sets (KeypointSetError), training and run folders (TrainingError, RunLockedError). Each
module that raises one re-exports it, so `posecore.params.ParamsError` and
`posecore.runs.RunLockedError` keep working."""

from __future__ import annotations


class ParamsError(ValueError):
    """A params file or override that does not fit the schema."""


class TrainingError(RuntimeError):
    """Training cannot go on (persistent non-finite loss, out of memory, a refused run folder)."""


class KeypointSetError(ValueError):
    """A keypoint set (annotation category or params entry) that cannot be used as given."""


class RunLockedError(RuntimeError):
    """Another process is writing the run folder."""
