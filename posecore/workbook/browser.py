"""The interactive pose browser of visualize.ipynb: a run's val persons, ranked by error.

`PoseBrowser(params, run_name, checkpoint)` scores each val person against the run's eval
predictions (posecore.scoring.person_errors), draws one person with posecore.viz (zoomed to
that person, whose ground truth and prediction are drawn strongly over the others' faint ones),
computes one joint's heatmap on demand, and `widget()` shows the drawing under ipywidgets
controls, redrawing it once per change.
"""

from __future__ import annotations

import html
import logging

import numpy as np

from posecore.data import build_dataset, read_rgb
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

    def __init__(self, params: Params, run_name: str, checkpoint: str | None = None):
        self.checkpoint = resolve_checkpoint(checkpoint, params, run_name)
        self.params = params = trained_params(params, self.checkpoint, run_name)[0]
        self.dataset = build_dataset(params, "val")
        self.errors = person_errors(self.dataset, Run(run_name).eval_dir, params.eval.pckh_thr)
        self._predictor: Predictor | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def order(self, by: str = "worst first") -> np.ndarray:
        """Dataset indices [N] in the requested order."""
        if by not in self.ORDERS:
            raise ValueError(f"order must be one of {self.ORDERS}, got {by!r}")
        if by == "dataset order":
            return np.arange(len(self.dataset))
        ranked = np.argsort(self.errors["score"], kind="stable")
        return ranked if by == "worst first" else ranked[::-1]

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
    ) -> PoseFigure:
        """The person at `rank` (1 = first) of `order`; `joint` names the heatmap to overlay
        ("none": no heatmap; None: left_wrist, else the keypoint set's first joint); `others`
        draws the other people of the image faint; `parts` shows only those parts of a
        whole-body set (e.g. ("lefthand", "righthand"); () = all joints)."""
        if not 1 <= int(rank) <= len(self):
            raise ValueError(f"rank must be 1..{len(self)} (the val persons), got {rank}")
        index = int(self.order(order)[int(rank) - 1])
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
        image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        problem = widgets.HTML()

        def redraw(change=None) -> None:
            rank_of.value = f"of {count}, {self.order_label(order.value)}"
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
                )
            except Exception as error:  # a callback's exception would otherwise only reach the kernel log
                log.exception("pose browser redraw failed")
                problem.value = f"<pre style='color:#b00020'>{html.escape(f'{type(error).__name__}: {error}')}</pre>"
                return
            problem.value = ""
            image.value = figure_png(figure)

        for control in (rank, order, show_gt, show_pred, others, joint, score_thr, parts):
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
                problem,
                image,
            ]
        )
