"""The workbook as a person sees it: visualize.ipynb and a two-device train.ipynb in a real JupyterLab,
and report.html, in Chromium.

A tiny oracle run (a few synthetic images, the encoded ground truth scored instead of a model) is
made in process; JupyterLab serves a papermill-prepared copy of visualize.ipynb on 127.0.0.1 with a
token, and headless Chromium (Debian's package, driven by Playwright's Python package; nothing
downloads a browser) runs all its cells. Screenshots of the pose browser's figure must change when
the person slider, the heatmap joint and the score threshold move. report.html is opened from disk
with every request recorded. Without Chromium or Playwright the tests skip and say which is missing.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest
from lab_server import CHROMIUM, CHROMIUM_ARGS, launch_lab, stop_lab, wait_for_idle_kernel, wait_until_up

from posecore.files import REPO_ROOT

pytestmark = pytest.mark.slow

RUN = "browser"
TRAIN_RUN = "browser-train"
# a pixel counts as changed when a channel moves by more than this (ignores anti-aliasing jitter)
PIXEL_STEP = 24
MIN_CHANGED_SHARE = 0.005


def _need_browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    pytest.importorskip(
        "playwright.sync_api", reason="Playwright's Python package is not installed (pip install playwright)"
    )


# --- a tiny oracle run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder for this module with its own POSECORE_OUTPUTS (set here, so JupyterLab's kernels
    inherit it even when the server starts before the run is made)."""
    _need_browser()
    root = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSECORE_OUTPUTS", str(root / "outputs"))
        yield root


@pytest.fixture(scope="module")
def tiny_run(workspace):
    """An oracle-evaluated run of tiny synthetic data."""
    from helpers import oracle_run

    return {"root": workspace, **oracle_run(workspace, RUN)}


# --- JupyterLab and Chromium ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(workspace, request):
    """JupyterLab on 127.0.0.1 (tests/lab_server.py) serving a papermill-prepared visualize.ipynb
    and train.ipynb; its kernels inherit this tree and the run's outputs. The server starts first
    and the run is made while it boots."""
    root_dir = workspace  # the notebooks (in notebooks/) and the run folders (in outputs/) side by side
    (root_dir / "notebooks").mkdir()
    server = launch_lab(root_dir, workspace / "lab")
    try:
        import papermill

        tiny_run = request.getfixturevalue("tiny_run")
        papermill.execute_notebook(
            str(REPO_ROOT / "notebooks" / "visualize.ipynb"),
            str(root_dir / "notebooks" / "visualize.ipynb"),
            parameters=tiny_run["notebook_parameters"],
            prepare_only=True,
            progress_bar=False,
        )
        train = {
            **tiny_run["notebook_parameters"],
            "run_name": TRAIN_RUN,
            "npus": 2,
            "epochs": 1,
            "overrides": {
                **tiny_run["notebook_parameters"]["overrides"],
                "eval.oracle": False,
                "train.batch_size": 2,
                "train.val_every": 1,
            },
        }
        papermill.execute_notebook(
            str(REPO_ROOT / "notebooks" / "train.ipynb"),
            str(root_dir / "notebooks" / "train.ipynb"),
            parameters=train,
            prepare_only=True,
            progress_bar=False,
        )
        try:
            wait_until_up(server)
        except RuntimeError as error:
            pytest.fail(str(error))
        yield server
    finally:
        stop_lab(server)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Headless Chromium with a fresh profile, shared by this module's pages."""
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 1400},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(chromium):
    """A new page that records console errors and every request."""
    page = chromium.new_page()
    page.console_errors = []
    page.requests = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(f"{m.text} ({m.location})"))
    page.on("pageerror", lambda e: page.console_errors.append(f"uncaught: {e}"))
    page.on("request", lambda r: page.requests.append(r.url))
    try:
        yield page
    finally:
        page.close()


# --- pixels --------------------------------------------------------------------------------------


def _pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _changed_share(before: np.ndarray, after: np.ndarray) -> float:
    """The share of pixels of one screen area where some channel moved by more than PIXEL_STEP."""
    assert before.shape == after.shape, f"screenshots of different sizes {before.shape} vs {after.shape}"
    return float((np.abs(after - before).max(-1) > PIXEL_STEP).mean())


# --- the pose browser in JupyterLab --------------------------------------------------------------

WIDGET_CELL = "browser.widget()"
FIGURE_JS = """(source) => {
    const cell = Array.from(document.querySelectorAll('.jp-CodeCell')).find(
        c => c.querySelector('.jp-InputArea-editor').textContent.trim() === source);
    if (!cell) return null;
    const img = Array.from(cell.querySelectorAll('.jp-OutputArea img')).find(
        i => i.complete && i.naturalWidth > 0 && i.getBoundingClientRect().width > 100);
    if (!img) return null;
    const box = img.getBoundingClientRect();
    return {src: img.src, x: box.x, y: box.y, width: box.width, height: box.height};
}"""


def _figure(page) -> dict | None:
    return page.evaluate(FIGURE_JS, WIDGET_CELL)


def _union(a: dict, b: dict) -> tuple[int, int, int, int]:
    """The page area (x0, y0, x1, y1) covered by the figure before or after a change."""
    return (
        int(min(a["x"], b["x"])),
        int(min(a["y"], b["y"])),
        int(max(a["x"] + a["width"], b["x"] + b["width"])),
        int(max(a["y"] + a["height"], b["y"] + b["height"])),
    )


def _redrawn(page, before: dict, what: str, timeout_s: float = 30.0) -> tuple[dict, float]:
    """Wait for the figure to be replaced after a control moved; (new figure, seconds it took)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        figure = _figure(page)
        if figure and figure["src"] != before["src"]:
            return figure, time.monotonic() - started
        page.wait_for_timeout(50)
    pytest.fail(f"the pose browser's figure did not change within {timeout_s:.0f} s after {what}")


def _wait_for_kernel(lab, notebook: str, timeout_s: float = 60.0) -> None:
    try:
        wait_for_idle_kernel(lab, notebook, timeout_s)
    except RuntimeError as error:
        pytest.fail(str(error))


def _run_all_cells(page, lab, shots: Path, notebook: str = "visualize.ipynb", timeout_s: int = 120) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # ?reset: only this notebook open (JupyterLab would restore the tabs of the test before)
    page.goto(f"{lab.url}/lab/tree/notebooks/{notebook}?reset&token={lab.token}")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=60_000)
    _wait_for_kernel(lab, notebook)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item[data-command='runmenu:run-all']")
    # every code cell numbered, none waiting ([*]): the static figures below the widget are drawn too
    try:
        page.wait_for_function(
            """() => {
            const prompts = Array.from(document.querySelectorAll(
                '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt'))
                .map(p => p.textContent.trim());
            return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
        }""",
            timeout=timeout_s * 1000,
        )
    except PlaywrightTimeout:
        page.screenshot(path=str(shots / "stuck.png"), full_page=True)
        prompts = page.evaluate(
            "() => Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')).map(p => p.textContent.trim())"
        )
        pytest.fail(
            f"{notebook} did not finish running in {timeout_s} s: prompts {prompts}, "
            f"screenshot {shots / 'stuck.png'}, server log {lab.log}"
        )


def _set_readout(page, slider, value: str) -> None:
    """Type a value into a slider's editable readout (what a person does for an exact value)."""
    readout = slider.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def test_pose_browser_figure_follows_every_control(lab, page, tmp_path):
    _run_all_cells(page, lab, tmp_path)
    errors = [
        o
        for o in page.evaluate(
            "() => Array.from(document.querySelectorAll('.jp-OutputArea-output')).map(e => e.textContent)"
        )
        if "Traceback" in o
    ]
    assert not errors, f"a cell failed:\n{errors[0][-2000:]}"
    deadline = time.monotonic() + 20
    while (figure := _figure(page)) is None and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.screenshot(path=str(tmp_path / "notebook.png"), full_page=True)
    assert figure is not None, (
        f"the pose browser shows its controls but no figure under them (screenshot {tmp_path / 'notebook.png'})"
    )
    cell = page.locator(".jp-CodeCell", has_text=WIDGET_CELL)
    cell.scroll_into_view_if_needed()  # run-all leaves the notebook scrolled to its end
    page.wait_for_timeout(200)
    figure = _figure(page)
    sliders = cell.locator(".widget-slider")
    readouts = [sliders.nth(i).locator(".widget-readout").inner_text() for i in range(sliders.count())]
    person = sliders.nth(next(i for i, r in enumerate(readouts) if "." not in r))
    threshold = sliders.nth(next(i for i, r in enumerate(readouts) if "." in r))
    joint = cell.locator("select:has(option[value='left_wrist'])")

    changes = {}
    moves = (
        ("the person slider moved", lambda: _set_readout(page, person, "2")),
        ("the heatmap joint changed", lambda: joint.select_option("left_wrist")),
        ("the score threshold moved", lambda: _set_readout(page, threshold, "1.0")),
    )
    for what, move in moves:
        before = _pixels(page.screenshot())
        previous = figure
        move()
        figure, seconds = _redrawn(page, figure, what)
        page.wait_for_timeout(100)  # the new image is decoded; let it paint
        after = _pixels(page.screenshot())
        x0, y0, x1, y1 = _union(previous, figure)
        changes[what] = (_changed_share(before[y0:y1, x0:x1], after[y0:y1, x0:x1]), seconds)
    page.screenshot(path=str(tmp_path / "notebook-after.png"), full_page=True)
    print(
        "pose browser: "
        + "; ".join(
            f"{what}: {share:.1%} of the figure's pixels changed, redrawn in {s:.2f} s"
            for what, (share, s) in changes.items()
        )
    )
    for what, (share, _) in changes.items():
        assert share > MIN_CHANGED_SHARE, f"{what}: only {share:.2%} of the figure's pixels changed"
    assert not page.console_errors, f"browser console errors: {page.console_errors}"


# --- train.ipynb with two devices ----------------------------------------------------------------


def test_train_notebook_with_two_devices_reads_as_the_record_of_the_run(lab, page, tmp_path):
    """Two workers train; the notebook shows one progress bar (no progress lines on stderr), the params
    and the run as tables, and a link that opens report.html inside JupyterLab."""
    _run_all_cells(page, lab, tmp_path, "train.ipynb", timeout_s=600)
    outputs = page.evaluate(
        "() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
        ".map(e => ({text: e.textContent, mime: e.getAttribute('data-mime-type')}))"
    )
    page.screenshot(path=str(tmp_path / "train.png"), full_page=True)
    failed = [o["text"] for o in outputs if "Traceback" in o["text"]]
    assert not failed, f"a cell failed:\n{failed[0][-2000:]}"
    train_cell = page.locator(".jp-CodeCell", has_text="posecore.train(")
    assert train_cell.locator(".widget-hprogress").count() == 1, (
        f"want one progress bar under the training cell (screenshot {tmp_path / 'train.png'})"
    )
    stderr = [o["text"] for o in outputs if o["mime"] == "application/vnd.jupyter.stderr"]
    drawn_bars = [text for text in stderr if "it/s" in text or "%|" in text]
    assert not drawn_bars, f"progress arrived as stderr lines: {drawn_bars[0][:300]}"
    captions = page.evaluate(
        "() => Array.from(document.querySelectorAll('.jp-OutputArea table caption')).map(c => c.textContent)"
    )
    assert any(c.startswith("Params") for c in captions) and f"Run {TRAIN_RUN}" in captions, captions
    link = page.locator(".jp-OutputArea a", has_text="report.html of run")
    assert link.count() == 1
    link.click()
    page.wait_for_selector(".lm-TabBar-tab:has-text('report.html')", timeout=30_000)
    page.screenshot(path=str(tmp_path / "train-report.png"), full_page=True)
    assert not page.console_errors, f"browser console errors: {page.console_errors}"


# --- report.html ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report_html(tiny_run) -> Path:
    """report.html of the tiny run after what the eval and visualize notebooks keep."""
    from posecore import workbook

    params = tiny_run["params"]
    workbook.results_table(RUN, params)
    workbook.per_joint_figure(RUN)
    workbook.threshold_figure(RUN)
    workbook.worst_predictions(RUN, params)
    workbook.keep(RUN, "viz_heatmap", workbook.PoseBrowser(params, RUN, None).figure(1, joint="left_wrist"))
    return workbook.write_report(RUN)


PAGE_ITEMS_JS = """() => Array.from(document.querySelectorAll('h1, h2, h3, h4, h5, h6, table, img')).map(e => {
    const box = e.getBoundingClientRect();
    const tag = e.tagName.toLowerCase();
    const text = tag === 'table' ? (e.caption ? e.caption.textContent : '') : e.textContent;
    return {tag, text: text.replace('¶', '').trim(), src: tag === 'img' ? e.getAttribute('src') : null,
            top: box.top + window.scrollY, shown: box.width > 0 && (tag !== 'img' || e.naturalWidth > 0)};
})"""


def _figure_files_by_bytes(folder: Path) -> dict[bytes, str]:
    return {path.read_bytes(): path.stem for path in (folder / "figures").glob("*.png")}


def _image_bytes(src: str, base: Path) -> bytes:
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    return (base / src).read_bytes()


def test_report_sections_hold_their_own_tables_and_figures_offline(report_html, page, tiny_run, tmp_path):
    """Each table and figure sits under its own section's heading (tables first), headings read as
    titles, no picture is shown twice, no absolute path is printed and nothing is fetched."""
    from posecore.files import read_json

    page.goto(report_html.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    where = f"(screenshot {tmp_path / 'report.png'})"
    fetched = [url for url in page.requests if not url.startswith(("file:", "data:"))]
    assert not fetched, f"report.html opened from disk requests the network: {fetched}"
    assert not page.console_errors, f"browser console errors: {page.console_errors}"

    folder = report_html.parent
    table_files = {read_json(path)["title"]: path.stem for path in (folder / "tables").glob("*.json")}
    figure_files = _figure_files_by_bytes(folder)
    items = sorted(page.evaluate(PAGE_ITEMS_JS), key=lambda item: item["top"])
    headings = [item for item in items if item["tag"][0] == "h"]
    assert headings and headings[0]["tag"] == "h1", f"the report starts without a title {where}"
    assert all(item["shown"] for item in items), f"an image or table is not shown {where}"
    section_level = min(int(h["tag"][1]) for h in headings[1:])
    slugs = {stem.replace("_", " ") for stem in (*table_files.values(), *figure_files.values())}
    assert not [h["text"] for h in headings if h["text"].lower() in slugs or "_" in h["text"]], (
        f"headings read as file names: {[h['text'] for h in headings]} {where}"
    )

    placed = []  # (file stem, kind, section heading)
    pictures = []
    section = headings[0]
    for item in items:
        if item["tag"][0] == "h" and int(item["tag"][1]) <= section_level:
            section = item
        elif item["tag"] == "table":
            placed.append((table_files.get(item["text"], f"table {item['text']!r}"), "table", section["text"]))
        elif item["tag"] == "img":
            picture = _image_bytes(item["src"], folder)
            pictures.append(_pixels(picture).tobytes())
            placed.append((figure_files.get(picture, "an unsaved image"), "figure", section["text"]))
    layout = "\n".join(f"  {kind} {stem} under {heading!r}" for stem, kind, heading in placed)
    assert placed and placed[0][:2] == ("eval_results", "table"), (
        f"the results against the seeds should come first:\n{layout}\n{where}"
    )
    assert not [p for p in placed if p[2] == headings[0]["text"]], (
        f"tables or figures under the page title instead of their section's heading:\n{layout}\n{where}"
    )
    sections: dict[str, set[str]] = {}
    for stem, _kind, heading in placed:
        sections.setdefault(stem.split("_", 1)[0], set()).add(heading)
    assert all(len(h) == 1 for h in sections.values()), f"a section's items under several headings:\n{layout}\n{where}"
    assert len({next(iter(h)) for h in sections.values()}) == len(sections), f"sections share a heading:\n{layout}"
    kinds = {}
    for _stem, kind, heading in placed:
        kinds.setdefault(heading, []).append(kind)
    assert all(k == sorted(k, key=lambda kind: kind != "table") for k in kinds.values()), (
        f"a section shows a figure before its table:\n{layout}\n{where}"
    )
    assert len(set(pictures)) == len(pictures), f"the same picture is shown twice:\n{layout}\n{where}"
    text = page.inner_text("body")
    assert str(tiny_run["root"]) not in text, f"report.html prints absolute paths of this machine {where}"
