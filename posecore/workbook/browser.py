"""The interactive pose browser of visualize.ipynb: a run's val persons, ranked by error.

`PoseBrowser(params, run_name, checkpoint)` scores each val person against the run's eval
predictions (posecore.scoring.person_errors), draws one person with posecore.viz (zoomed to
that person, whose ground truth and prediction are drawn strongly over the others' faint ones),
computes one joint's heatmap on demand, and `widget()` shows the drawing under ipywidgets
controls, redrawing it once per change. When the run has an error analysis (posecore.analyze), an
`error` filter keeps the people with a joint of that error type (jitter, inversion, swap, miss) and
rings those joints in the error's colour.
"""

from __future__ import annotations

import html
import logging

import numpy as np

from posecore.data import build_dataset, read_rgb
from posecore.diagnosis import person_codes, read_analysis
from posecore.error_analysis import ERROR_CODES, ERROR_TYPES
from posecore.evaluation import resolve_checkpoint
from posecore.params import Params
from posecore.predictor import Predictor, trained_params
from posecore.runs import Run
from posecore.scoring import person_errors
from posecore.viz import PoseFigure, figure_png, heatmap_to_image_plane, person_view, plot_gallery, plot_pose

log = logging.getLogger(__name__)


def worst_predictions(dataset, errors: dict, count: int = 8, ncols: int = 4) -> PoseFigure:
    """A gallery of the `count` persons with the lowest OKS / PCKh, each panel zoomed to its person."""
    order = np.argsort(errors["score"], kind="stable")[:count]
    return plot_gallery(
        [person_view(dataset, errors, int(i), rank=f"{n}.") for n, i in enumerate(order, 1)], dataset.info, ncols=ncols
    )


class PoseBrowser:
    """Browse a run's val persons: ground truth and predictions on their images, ranked by error,
    with one joint's heatmap computed on demand (the model's, or the encoded target with
    eval.oracle). `widget()` is the ipywidgets front end; `figure` / `gallery` work without one.
    Ranks count from 1 in the chosen order.
    """

    ORDERS = ("worst first", "best first", "dataset order")
    ERRORS = ("any", *ERROR_TYPES[1:])  # the error filter: no filter, or one joint error type

    def __init__(self, params: Params, run_name: str, checkpoint: str | None = None):
        self.checkpoint = resolve_checkpoint(checkpoint, params, run_name)
        self.params = params = trained_params(params, self.checkpoint, run_name)[0]
        self.dataset = build_dataset(params, "val")
        self.errors = person_errors(self.dataset, Run(run_name).eval_dir, params.eval.pckh_thr)
        self._predictor: Predictor | None = None
        analysis = read_analysis(run_name)
        # per person: the joint codes of the detection diagnosed against it (None: not diagnosed)
        self.codes = person_codes(analysis, self.dataset) if analysis else None
        self._analysed_joints = analysis["joints"] if analysis else []

    def __len__(self) -> int:
        return len(self.dataset)

    def order(self, by: str = "worst first", error: str = "any") -> np.ndarray:
        """Dataset indices [N] in the requested order; `error` (one of ERRORS) keeps the people
        with at least one joint of that error type in the run's error analysis."""
        if by not in self.ORDERS:
            raise ValueError(f"order must be one of {self.ORDERS}, got {by!r}")
        if by == "dataset order":
            ranked = np.arange(len(self.dataset))
        else:
            ranked = np.argsort(self.errors["score"], kind="stable")
            ranked = ranked if by == "worst first" else ranked[::-1]
        if error == "any":
            return ranked
        if error not in self.ERRORS:
            raise ValueError(f"error must be one of {self.ERRORS}, got {error!r}")
        if self.codes is None:
            raise ValueError("the run has no error analysis: run posecore.analyze (eval.ipynb's Why section) first")
        code = _code_of(error)
        return np.array([i for i in ranked if self.codes[i] and code in self.codes[i]], dtype=np.int64)

    def error_marks(self, index: int, kinds: tuple[str, ...]) -> dict[str, np.ndarray]:
        """{error kind: points [M, 2]}: person `index`'s predicted joints diagnosed as `kinds`."""
        codes = self.codes[int(index)] if self.codes is not None else None
        prediction = self.errors["pred"][int(index)]
        if not codes or not np.isfinite(prediction).all():
            return {}
        names = list(self.dataset.info.joint_names)
        joints = [names.index(name) for name in self._analysed_joints]  # a whole-body set's part
        marks = {}
        for kind in kinds:
            hit = [joint for joint, code in zip(joints, codes) if code == _code_of(kind)]
            if hit:
                marks[kind] = prediction[hit, :2]
        return marks

    def order_label(self, by: str) -> str:
        """How `by` reads to a person, e.g. "worst OKS first"."""
        return by if by == "dataset order" else by.replace(" ", f" {self.errors['metric']} ", 1)

    def heatmaps(self, index: int) -> np.ndarray:
        """Heatmaps [K, Hh, Wh] of dataset person `index`: the model's output, or the target (oracle),
        as the codec shows it (SimCC: each joint's y vector times its x vector, [K, Wy, Wx])."""
        item = self.dataset[int(index)]
        if self.checkpoint is None:
            return self.dataset.codec.heatmaps(item["target"])
        if self._predictor is None:
            self._predictor = Predictor.from_checkpoint(self.params, self.checkpoint, device="cpu")
        return self._predictor.codec.heatmaps(self._predictor.outputs(item["image"][None])[0])[0]

    def figure(
        self,
        rank: int = 1,
        order: str = "worst first",
        show_gt: bool = True,
        show_pred: bool = True,
        joint: str | None = "none",
        score_thr: float = 0.2,
        others: bool = True,
        parts: tuple[str, ...] = (),
        error: str = "any",
    ) -> PoseFigure:
        """The person at `rank` (1 = first) of `order`; `joint` names the heatmap to overlay
        ("none": no heatmap; None: left_wrist, else the keypoint set's first joint); `others`
        draws the other people of the image faint; `parts` shows only those parts of a
        whole-body set (e.g. ("lefthand", "righthand"); () = all joints); `error` (ERRORS)
        ranks only the people with a joint of that error type and rings those joints ("any":
        everyone, every erroneous joint ringed when the run has an error analysis)."""
        chosen = self.order(order, error)
        if not 1 <= int(rank) <= len(chosen):
            raise ValueError(f"rank must be 1..{len(chosen)} (the val persons{_filtered(error)}), got {rank}")
        index = int(chosen[int(rank) - 1])
        heatmap, label = None, "heatmap"
        names = self.dataset.info.joint_names
        if joint is None:
            joint = "left_wrist" if "left_wrist" in names else names[0]
        if joint != "none":
            if joint not in names:
                raise ValueError(f"joint must be 'none' or one of {list(names)}, got {joint!r}")
            inst = self.dataset.instances[index]
            source = "encoded ground truth" if self.checkpoint is None else "model output"
            image_size = inst.image_size or read_rgb(inst.image_path).shape[1::-1]
            heatmap = heatmap_to_image_plane(
                self.heatmaps(index)[names.index(joint)],
                inst.bbox_center,
                inst.bbox_scale,
                image_size,
                udp=self.dataset.codec.udp,
            )
            label = f"{joint} heatmap ({source})"
        view = person_view(self.dataset, self.errors, index, show_gt, show_pred, others, heatmap, parts=tuple(parts))
        return plot_pose(
            view["image"],
            self.dataset.info,
            view["gt"],
            view["pred"],
            score_thr,
            view["boxes"],
            view["heatmap"],
            view["title"],
            faint_gt=view["faint_gt"],
            faint_pred=view["faint_pred"],
            view_box=view["view_box"],
            heatmap_label=label,
            marks=self.error_marks(index, self.ERRORS[1:] if error == "any" else (error,)) if show_pred else None,
        )

    def part_choices(self) -> list[tuple[str, tuple[str, ...]]]:
        """The part filter's choices: (label, parts) for all joints, then each part of a
        whole-body set (body, foot, face, hands); only "all joints" for sets without parts."""
        names = [name for name, _ in self.dataset.info.parts]
        choices = [("all joints", ())] + [(name, (name,)) for name in names]
        if {"lefthand", "righthand"} <= set(names):
            choices.append(("both hands", ("lefthand", "righthand")))
        return choices

    def gallery(
        self, count: int = 8, order: str = "worst first", ncols: int = 4, parts: tuple[str, ...] = ()
    ) -> PoseFigure:
        """The first `count` persons of `order`, each panel zoomed to its person (only `parts`
        of a whole-body set when given)."""
        chosen = self.order(order)[:count]
        return plot_gallery(
            [
                person_view(self.dataset, self.errors, int(i), rank=f"{n}.", parts=tuple(parts))
                for n, i in enumerate(chosen, 1)
            ],
            self.dataset.info,
            ncols=ncols,
        )

    def widget(self):
        """The browser as ipywidgets: controls above an image of `figure`, redrawn once per change.

        The figure is an `ipywidgets.Image` holding the PNG, so it shows in any widget front end
        (JupyterLab, Notebook 7, VS Code) without an output-capture round trip; a failing redraw
        shows its error under the controls instead of vanishing into the kernel log.
        """
        import ipywidgets as widgets  # optional dependency (the notebooks extra), imported on use

        count = len(self)
        rank = widgets.IntSlider(1, min=1, max=max(count, 1), description="rank", continuous_update=False)
        rank_of = widgets.Label()
        order = widgets.Dropdown(
            options=[(self.order_label(by), by) for by in self.ORDERS], value="worst first", description="sorted"
        )
        show_gt = widgets.Checkbox(value=True, description="ground truth", indent=False)
        show_pred = widgets.Checkbox(value=True, description="prediction", indent=False)
        others = widgets.Checkbox(value=True, description="other people (faint)", indent=False)
        joint = widgets.Dropdown(
            options=[("no heatmap", "none"), *[(n, n) for n in self.dataset.info.joint_names]],
            value="none",
            description="heatmap",
        )
        score_thr = widgets.FloatSlider(
            0.2, min=0.0, max=1.0, step=0.05, description="min score", continuous_update=False
        )
        parts = widgets.Dropdown(
            options=self.part_choices(),
            value=(),
            description="parts",
            layout=widgets.Layout(display="" if self.dataset.info.parts else "none"),
        )
        errors = widgets.Dropdown(
            options=[(kind if kind != "any" else "any person", kind) for kind in self.ERRORS],
            value="any",
            description="errors",
            layout=widgets.Layout(display="" if self.codes is not None else "none"),
        )
        image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        problem = widgets.HTML()

        def redraw(change=None) -> None:
            shown = len(self.order(order.value, errors.value))
            rank.max = max(shown, 1)
            rank_of.value = f"of {shown}{_filtered(errors.value)}, {self.order_label(order.value)}"
            try:
                figure = self.figure(
                    rank.value,
                    order.value,
                    show_gt.value,
                    show_pred.value,
                    joint.value,
                    score_thr.value,
                    others.value,
                    parts.value,
                    errors.value,
                )
            except Exception as error:  # a callback's exception would otherwise only reach the kernel log
                log.exception("pose browser redraw failed")
                problem.value = f"<pre style='color:#b00020'>{html.escape(f'{type(error).__name__}: {error}')}</pre>"
                return
            problem.value = ""
            image.value = figure_png(figure)

        for control in (rank, order, show_gt, show_pred, others, joint, score_thr, parts, errors):
            control.observe(redraw, names="value")
        redraw()
        return widgets.VBox(
            [
                widgets.HBox([rank, rank_of]),
                order,
                widgets.HBox([show_gt, show_pred, others]),
                joint,
                score_thr,
                parts,
                errors,
                problem,
                image,
            ]
        )


def _code_of(kind: str) -> str:
    """The one-character code of an error kind in an analysis' joint codes (ERROR_CODES)."""
    return next(code for code, name in ERROR_CODES.items() if name == kind)


def _filtered(error: str) -> str:
    return "" if error == "any" else f" with a {error}"
