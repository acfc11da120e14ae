"""posecore: the thin package behind the pose-estimation workbook notebooks.

The public API is loaded lazily so that `import posecore` is instant and has no side effects;
`posecore.train` imports the engine (and torch) on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "load_params": "params",
    "save_params": "params",
    "Params": "params",
    "ParamsError": "params",
    "build_dataset": "data",
    "build_model": "models",
    "load_checkpoint": "checkpoints",
    "load_model": "checkpoints",
    "train": "engine",
    "evaluate": "evaluation",
    "export_onnx": "export",
    "compare_runs": "experiments",
    "infer": "inference",
    "reproduce": "reproduce",
    "analyze": "diagnosis",
    "score_export": "deploy",
    "Predictor": "predictor",
    "Run": "runs",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        module = importlib.import_module(f"posecore.{_API[name]}")
        return getattr(module, name)
    try:  # submodules as attributes: posecore.metrics, posecore.viz, ...
        return importlib.import_module(f"posecore.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"posecore.{name}":
            raise
        raise AttributeError(f"module 'posecore' has no attribute {name!r}") from None
