"""`python -m posecore.demo --run NAME`: the whole workbook on synthetic data, notebook by notebook.

Each notebook runs under papermill with its executed copy written to outputs/<run>/notebooks/;
the cells' printed output streams to this terminal. A failing cell stops the demo with that cell's
error and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from posecore.data import synthetic_root
from posecore.files import REPO_ROOT
from posecore.runs import Run

NOTEBOOKS = REPO_ROOT / "notebooks"
KERNEL = "python3"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(RuntimeError):
    """A notebook stopped on an error; the message names the notebook, the cell and the error."""


def run_notebook(name: str, run_name: str, parameters: dict[str, Any], stream: bool = True) -> Path:
    """Execute notebooks/<name>.ipynb with papermill into outputs/<run_name>/notebooks/<name>.ipynb.

    Raises NotebookFailed with the failing cell's number, source, error and traceback, or when the
    kernel dies (papermill would otherwise only say it "died").
    """
    import papermill  # optional dependency (the notebooks extra), imported on use
    from nbclient.exceptions import DeadKernelError  # (notebooks extra)
    from papermill.exceptions import PapermillExecutionError  # (notebooks extra)

    source = NOTEBOOKS / f"{name}.ipynb"
    if not source.is_file():
        raise FileNotFoundError(f"notebook {source} does not exist")
    output = Run(run_name).notebooks_dir / f"{name}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(REPO_ROOT),
            progress_bar=False,
            stdout_file=sys.stdout if stream else None,
            stderr_file=sys.stderr if stream else None,
        )
    except PapermillExecutionError as error:
        raise NotebookFailed(describe_failure(source, error, output)) from None
    except DeadKernelError as error:
        raise NotebookFailed(
            f"{source.name}: the kernel died ({error}); out of memory? partial output in {output}"
        ) from None
    return output


def describe_failure(source: Path, error: Any, output: Path) -> str:
    """A PapermillExecutionError as text: notebook, cell, ename: evalue, the cell and its traceback."""
    traceback = _ANSI.sub("", "\n".join(error.traceback or []))
    cell = "\n".join("    " + line for line in str(error.source).splitlines())
    return (
        f"{source.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue}\n"
        f"  cell source:\n{cell}\n{traceback}\n  executed notebook with the error: {output}"
    )


def demo_steps(run_name: str, params: str) -> list[tuple[str, dict[str, Any]]]:
    """(notebook, papermill parameters) in workbook order, all on the synthetic COCO-layout data
    (built by prepare_data at outputs/data/synthetic_coco, reused when complete)."""
    data_root = str(synthetic_root("coco"))
    common = {"model": "fastpose", "params": params, "run_name": run_name, "data_root": data_root}
    trained = {"run_name": run_name, "checkpoint": "best"}  # the run brings its params
    return [
        ("prepare_data", {**common, "synthetic": {}}),
        ("train", {**common, "npus": 1}),
        ("eval", trained),
        ("visualize", trained),
        ("export", trained),
        # source "": posecore's synthetic walking video with its detector-like boxes
        ("infer", {**trained, "source": "", "detector": ""}),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posecore.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="demo", help="run name: outputs/<run>/ (default: demo)")
    parser.add_argument("--params", default="demo", help="params name or path (default: demo)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    steps = demo_steps(args.run, args.params)
    timings = []
    for number, (name, parameters) in enumerate(steps, 1):
        print(f"\n[demo] {number}/{len(steps)} {name}.ipynb -> {Run(args.run).notebooks_dir}", flush=True)
        step_start = time.perf_counter()
        try:
            run_notebook(name, args.run, parameters)
        except NotebookFailed as error:
            print(f"\n[demo] FAILED: {error}", file=sys.stderr, flush=True)
            return 1
        timings.append((name, time.perf_counter() - step_start))

    metrics = Run(args.run).eval_metrics()
    print(
        "\n[demo] done in {:.0f} s ({})".format(
            time.perf_counter() - started, ", ".join(f"{n} {t:.0f} s" for n, t in timings)
        )
    )
    print("[demo] metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float))))
    print(f"[demo] report: {Run(args.run).report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
