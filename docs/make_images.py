"""Regenerate docs/images/ from a real `make demo` run: `make docs-images`, or

    .venv/bin/python docs/make_images.py [--run demo] [--out docs/images]

- report_predictions.png: the report's worst predictions (eval.ipynb keeps it as figures/eval_worst.png)
- infer_frames.png: infer.ipynb's annotated frames of the synthetic walking video (figures/infer_frames.png)
- pose_browser.png: visualize.ipynb's pose browser (`browser.widget()`) in JupyterLab, run on a live
  kernel and photographed by headless Chromium (Debian's /usr/bin/chromium driven by Playwright's
  Python package, as tests/test_browser.py does; nothing downloads a browser)

When the run lacks either figure, the demo runs first (`python -m posecore.demo --run RUN`, what
`make demo` runs; about 5 minutes on 2 CPU cores). The pose browser runs visualize.ipynb's cells up
to the widget only, so nothing is written into the run. Every PNG is scaled to at most --width
pixels and, when still over 280 KB, reduced to a palette, so that each stays under 300 KB.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's posecore, whatever the venv has installed

sys.path.insert(0, str(REPO / "tests"))  # lab_server: the private JupyterLab the browser tests use too
from lab_server import CHROMIUM, CHROMIUM_ARGS, launch_lab, stop_lab, wait_for_idle_kernel, wait_until_up  # noqa: E402

from posecore.runs import Run, outputs_root  # noqa: E402

WIDGET_CELL = "browser.widget()"
COPIED = {"report_predictions.png": "eval_worst.png", "infer_frames.png": "infer_frames.png"}
MAX_BYTES = 280_000


def save_small(png: bytes, path: Path, max_width: int) -> int:
    """Write `png` scaled to max_width, lossless when that is small enough, else as a palette PNG."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    candidates = [image] + [
        image.quantize(colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for colors in (256, 128, 64)
    ]
    for candidate in candidates:
        buffer = io.BytesIO()
        candidate.save(buffer, "PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES:
            path.write_bytes(buffer.getvalue())
            return buffer.tell()
    raise RuntimeError(f"{path.name} stays over {MAX_BYTES} bytes even with 64 colours; lower --width")


def ensure_demo(run: Run) -> None:
    missing = [name for name in COPIED.values() if not (run.figures_dir / name).is_file()]
    if not missing and run.eval_metrics(required=False):
        return
    print(f"[docs-images] {run.folder} lacks {', '.join(missing) or 'an evaluation'}: running the demo", flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))}
    subprocess.run([sys.executable, "-m", "posecore.demo", "--run", run.name], cwd=REPO, env=env, check=True)


# --- the pose browser in JupyterLab ---------------------------------------------------------------


def browser_notebook(run_name: str, folder: Path) -> Path:
    """visualize.ipynb's cells up to `browser.widget()` (the static views and the report, which
    write into the run, are left out), with papermill's parameters for the run."""
    import nbformat
    import papermill

    notebook = nbformat.read(REPO / "notebooks" / "visualize.ipynb", as_version=4)
    end = next(i for i, cell in enumerate(notebook.cells) if cell.source.strip() == WIDGET_CELL)
    notebook.cells = notebook.cells[: end + 1]
    trimmed = folder / "visualize-source.ipynb"
    nbformat.write(notebook, trimmed)
    target = folder / "notebooks" / "visualize.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(trimmed),
        str(target),
        parameters={"run_name": run_name, "checkpoint": "best"},
        prepare_only=True,
        progress_bar=False,
    )
    return target


def pose_browser_png(run_name: str, rank: int, joint: str, timeout_s: int = 600) -> bytes:
    """A screenshot of the `browser.widget()` cell after every cell above it ran in JupyterLab."""
    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="docs-images-") as temp:
        folder = Path(temp)
        browser_notebook(run_name, folder)
        lab = launch_lab(folder, folder / "lab", env={"POSECORE_OUTPUTS": str(outputs_root())})
        try:
            wait_until_up(lab, timeout_s=120)
            with sync_playwright() as playwright:
                context = playwright.chromium.launch_persistent_context(
                    str(folder / "profile"),
                    executable_path=CHROMIUM,
                    args=CHROMIUM_ARGS,
                    headless=True,
                    viewport={"width": 1200, "height": 1500},
                    device_scale_factor=1,
                )
                try:
                    page = context.new_page()
                    page.goto(f"{lab.url}/lab/tree/notebooks/visualize.ipynb?reset&token={lab.token}")
                    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
                    wait_for_idle_kernel(lab, "visualize.ipynb", timeout_s=120)
                    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
                    page.click("li.lm-MenuBar-item:has-text('Run')")
                    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
                    cell = page.locator(".jp-CodeCell", has_text=WIDGET_CELL)
                    figure = cell.locator(".jp-OutputArea img")
                    figure.first.wait_for(state="visible", timeout=timeout_s * 1000)
                    errors = [
                        text for text in page.locator(".jp-OutputArea-output").all_inner_texts() if "Traceback" in text
                    ]
                    if errors:
                        raise RuntimeError(f"a cell failed:\n{errors[0][-2000:]}")
                    _choose(page, cell, figure, rank, joint)
                    cell.scroll_into_view_if_needed()
                    page.wait_for_timeout(500)
                    return cell.screenshot()
                finally:
                    context.close()
        finally:
            stop_lab(lab)


def _choose(page, cell, figure, rank: int, joint: str) -> None:
    """Move the rank slider and the heatmap joint as a person would, waiting for each redraw."""

    def redraw(what: str, move) -> None:
        before = figure.first.get_attribute("src")
        move()
        deadline = time.monotonic() + 60
        while figure.first.get_attribute("src") == before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the pose browser did not redraw within 60 s after {what}")
            page.wait_for_timeout(100)
        page.wait_for_timeout(300)  # the new image is decoded; let it paint

    def type_rank() -> None:
        sliders = cell.locator(".widget-slider")
        readouts = [sliders.nth(i).locator(".widget-readout") for i in range(sliders.count())]
        readout = next(r for r in readouts if "." not in r.inner_text())  # rank: the integer slider
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(str(rank))
        page.keyboard.press("Enter")

    if rank != 1:
        redraw(f"rank {rank}", type_rank)
    select = cell.locator(f"select:has(option[value='{joint}'])")
    if joint and select.count() and select.input_value() != joint:
        redraw(f"heatmap joint {joint}", lambda: select.select_option(joint))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=os.environ.get("DEMO_RUN", "demo"), help="the demo run (default: demo)")
    parser.add_argument("--out", default=str(REPO / "docs" / "images"), help="where the PNGs go")
    parser.add_argument("--width", type=int, default=1000, help="largest width in pixels (default 1000)")
    parser.add_argument("--rank", type=int, default=1, help="the person the pose browser shows (1 = the worst)")
    parser.add_argument("--joint", default="left_wrist", help="the pose browser's heatmap joint")
    args = parser.parse_args(argv)

    run = Run(args.run)
    ensure_demo(run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, figure in COPIED.items():
        size = save_small((run.figures_dir / figure).read_bytes(), out / name, args.width)
        print(f"[docs-images] {out / name}: {size} bytes (from {run.figures_dir / figure})")
    size = save_small(pose_browser_png(args.run, args.rank, args.joint), out / "pose_browser.png", args.width)
    print(f"[docs-images] {out / 'pose_browser.png'}: {size} bytes (visualize.ipynb's browser.widget() in JupyterLab)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
