"""PoseBrowser without a front end: the widget holds a PNG of the figure and redraws it once per
control change; figures name the person once, zoom to it and draw it over the others' faint poses.
(tests/test_browser.py checks the same widget as a person sees it, in JupyterLab in Chromium.)"""

from __future__ import annotations

import pytest
from helpers import oracle_run

from posecore import viz, workbook

RUN = "browse"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose-browser")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POSECORE_OUTPUTS", str(root / "outputs"))
        browser = workbook.PoseBrowser(oracle_run(root, RUN)["params"], RUN, None)
        assert len(browser) >= 2, "the tiny dataset should hold several persons"
        yield browser


def _parts(widget) -> dict:
    """The browser widget's controls by description, plus its image and its rank label."""
    import ipywidgets as widgets

    def walk(w):
        yield w
        for child in getattr(w, "children", ()):
            yield from walk(child)

    found = list(walk(widget))
    parts = {w.description: w for w in found if getattr(w, "description", "")}
    parts["image"] = next(w for w in found if isinstance(w, widgets.Image))
    parts["rank of"] = next(w for w in found if isinstance(w, widgets.Label))
    return parts


def _zoomed(view: tuple, box: tuple, margin: float = 0.3) -> bool:
    """The view spans at most the box grown by `margin` of its size on each side (plus a pixel)."""
    return view[1] - view[0] <= (box[1] - box[0]) * (1 + 2 * margin) + 1.0


def test_widget_shows_the_figure_and_redraws_once_per_change(browser, monkeypatch):
    drawn = []
    figure = browser.figure
    monkeypatch.setattr(browser, "figure", lambda *args: drawn.append(args) or figure(*args))
    parts = _parts(browser.widget())
    image = parts["image"]
    assert len(drawn) == 1 and bytes(image.value).startswith(PNG), "the widget shows no figure"
    assert parts["rank of"].value == f"of {len(browser)}, worst OKS first"
    # in this order each change shows on the figure; the toggles after them may not (nothing left to hide)
    visible = {"rank": 2, "sorted": "best first", "heatmap": "left_wrist", "min score": 1.0, "ground truth": False}
    toggles = {"prediction": False, "other people (faint)": False}
    for description, value in {**visible, **toggles}.items():
        before, shown = len(drawn), bytes(image.value)
        parts[description].value = value
        assert len(drawn) == before + 1, f"changing {description!r} redrew {len(drawn) - before} times"
        assert description not in visible or bytes(image.value) != shown, f"{description!r} left the figure as it was"
    assert parts["rank of"].value == f"of {len(browser)}, best OKS first"


def test_figure_names_the_person_once_and_zooms_to_it(browser):
    index = int(browser.order("worst first")[0])
    inst = browser.dataset.instances[index]
    fig = browser.figure(1)
    ax = fig.axes[0]
    title = ax.get_title()
    assert title.startswith(f"image {inst.image_id}, ") and "#" not in title and "OKS" in title
    (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
    bx0, by0, bx1, by1 = inst.bbox_xyxy
    assert x0 <= bx0 and bx1 <= x1 and y0 <= by0 and by1 <= y1, "the view must hold the person's box"
    assert _zoomed((x0, x1), (bx0, bx1)) and _zoomed((y0, y1), (by0, by1))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ground truth", "prediction"]


def test_subject_is_drawn_strongly_and_the_others_faint_or_hidden(browser):
    crowded = next(
        rank
        for rank in range(1, len(browser) + 1)
        if sum(
            other.image_id == browser.dataset.instances[int(browser.order()[rank - 1])].image_id
            for other in browser.dataset.instances
        )
        > 1
    )
    skeletons = [c for c in browser.figure(crowded).axes[0].collections if c.get_gid() == viz.SKELETON_GID]
    strong = [c for c in skeletons if c.get_alpha() in (None, 1.0)]
    faint = [c for c in skeletons if c.get_alpha() == viz.FAINT_ALPHA]
    assert len(strong) == 2 and len(faint) >= 2  # the subject's ground truth and prediction; others' both
    alone = [c for c in browser.figure(crowded, others=False).axes[0].collections if c.get_gid() == viz.SKELETON_GID]
    assert len(alone) == 2


def test_heatmap_has_its_joint_named_on_a_colour_bar(browser):
    fig = browser.figure(1, joint="left_wrist")
    colorbar = fig.axes[-1]
    assert len(fig.axes) == 2 and "left_wrist" in colorbar.get_ylabel()
    with pytest.raises(ValueError, match="joint must be 'none' or one of"):
        browser.figure(1, joint="tail")
    with pytest.raises(ValueError, match=rf"rank must be 1..{len(browser)}"):
        browser.figure(0)


def test_gallery_panels_zoom_to_their_person(browser):
    fig = browser.gallery(count=len(browser))
    order = browser.order("worst first")
    for rank, (ax, index) in enumerate(zip(fig.axes, order), 1):
        inst = browser.dataset.instances[int(index)]
        (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
        bx0, by0, bx1, by1 = inst.bbox_xyxy
        assert x0 <= bx0 and bx1 <= x1 and _zoomed((x0, x1), (bx0, bx1)) and _zoomed((y0, y1), (by0, by1))
        assert ax.get_title().startswith(f"{rank}. image {inst.image_id}, ")
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ground truth", "prediction"]
