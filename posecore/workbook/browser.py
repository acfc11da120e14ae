"""The interactive pose browser of visualize.ipynb: a run's val persons, ranked by error.

`PoseBrowser(params, run_name, checkpoint)` scores each val person against the run's eval
predictions (posecore.evaluation.person_errors), draws one person with posecore.viz (zoomed to
that person, whose ground truth and prediction are drawn strongly over the others' faint ones),
computes one joint's heatmap on demand, and `widget()` shows the drawing under ipywidgets
controls, redrawing it once per change.
"""
from __future__ import annotations

import html
import logging

import numpy as np
import torch

from posecore.checkpoints import load_model, with_trained_codec
from posecore.data import build_dataset, read_rgb, resolve_keypoints
from posecore.evaluation import person_errors, resolve_checkpoint
from posecore.runs import run_dir
from posecore.viz import (PoseFigure, figure_png, heatmap_to_image_plane, only_parts, plot_gallery, plot_pose,
                          zoom_box)

log = logging.getLogger(__name__)


def _keypoints(inst) -> np.ndarray:
    """A ground-truth person as [K, 3] rows of (x, y, visibility)."""
    return np.concatenate([inst.joints, inst.visible[:, None]], 1)


def person_view(dataset, errors: dict, index: int, show_gt: bool = True, show_pred: bool = True,
                others: bool = True, heatmap: np.ndarray | None = None, rank: str = "",
                parts: tuple[str, ...] = ()) -> dict:
    """`draw_people` arguments for dataset person `index`, zoomed to that person.

    The subject's ground truth and prediction are drawn strongly; with `others` the other people
    of the same image are drawn faint. `heatmap` [H, W] is in image pixels
    (heatmap_to_image_plane). The title names the person once: image id and which person of the
    image, then its score; `rank` (e.g. "3.") goes in front. `parts` (names of dataset.info.parts,
    e.g. ("face",)) shows only those joints of the whole-body sets; () shows all.
    """
    info = dataset.info

    def shown(keypoints):
        return only_parts(keypoints, info, parts)

    inst = dataset.instances[int(index)]
    same_image = [i for i, other in enumerate(dataset.instances) if other.image_id == inst.image_id]
    rest = [i for i in same_image if i != index] if others else []
    matched = [i for i in (index, *rest) if np.isfinite(errors["pred"][i]).all()]
    image = read_rgb(inst.image_path)
    box = inst.bbox_xyxy
    score = f"{errors['metric']} {errors['score'][index]:.2f}" if index in matched else "no matching prediction"
    person = f"person {same_image.index(index) + 1} of {len(same_image)}" if len(same_image) > 1 else "one person"
    return {"image": image,
            "gt": [shown(_keypoints(inst))] if show_gt else [],
            "pred": [shown(errors["pred"][index])] if show_pred and index in matched else [],
            "faint_gt": [shown(_keypoints(dataset.instances[i])) for i in rest] if show_gt else [],
            "faint_pred": [shown(errors["pred"][i]) for i in rest if i in matched] if show_pred else [],
            "boxes": [(box[0], box[1], box[2] - box[0], box[3] - box[1])] if box is not None else [],
            "view_box": zoom_box(box, image.shape) if box is not None else None,
            "heatmap": heatmap,
            "title": f"{rank + ' ' if rank else ''}image {inst.image_id}, {person}: {score}"}


def worst_predictions(dataset, errors: dict, count: int = 8, ncols: int = 4) -> PoseFigure:
    """A gallery of the `count` persons with the lowest OKS / PCKh, each panel zoomed to its person."""
    order = np.argsort(errors["score"], kind="stable")[:count]
    return plot_gallery([person_view(dataset, errors, int(i), rank=f"{n}.") for n, i in enumerate(order, 1)],
                        dataset.info, ncols=ncols)


class PoseBrowser:
    """Browse a run's val persons: ground truth and predictions on their images, ranked by error,
    with one joint's heatmap computed on demand (the model's, or the encoded target with
    eval.oracle). `widget()` is the ipywidgets front end; `figure` / `gallery` work without one.
    Ranks count from 1 in the chosen order.
    """

    ORDERS = ("worst first", "best first", "dataset order")

    def __init__(self, params, run_name: str, checkpoint: str | None = None):
        self.checkpoint = resolve_checkpoint(checkpoint, params, run_name)
        self.params = params = with_trained_codec(resolve_keypoints(params, run_name), self.checkpoint)
        self.dataset = build_dataset(params, "val")
        self.errors = person_errors(self.dataset, run_dir(run_name, create=False) / "eval", params.eval.pckh_thr)
        self._model = None

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
        """Heatmaps [K, Hh, Wh] of dataset person `index`: the model's output, or the target (oracle)."""
        item = self.dataset[int(index)]
        if self.checkpoint is None:
            return item["target"].numpy()
        if self._model is None:
            self._model = load_model(self.params, self.checkpoint)[0]
        with torch.no_grad():
            output = self._model(item["image"][None])
        return output[-1][0].numpy() if isinstance(output, (list, tuple)) else output[0].numpy()

    def figure(self, rank: int = 1, order: str = "worst first", show_gt: bool = True,
               show_pred: bool = True, joint: str = "none", score_thr: float = 0.2,
               others: bool = True, parts: tuple[str, ...] = ()) -> PoseFigure:
        """The person at `rank` (1 = first) of `order`; `joint` names the heatmap to overlay
        ("none": no heatmap); `others` draws the other people of the image faint; `parts` shows
        only those parts of a whole-body set (e.g. ("lefthand", "righthand"); () = all joints)."""
        if not 1 <= int(rank) <= len(self):
            raise ValueError(f"rank must be 1..{len(self)} (the val persons), got {rank}")
        index = int(self.order(order)[int(rank) - 1])
        heatmap, label = None, "heatmap"
        if joint != "none":
            names = self.dataset.info.joint_names
            if joint not in names:
                raise ValueError(f"joint must be 'none' or one of {list(names)}, got {joint!r}")
            inst = self.dataset.instances[index]
            source = "encoded ground truth" if self.checkpoint is None else "model output"
            image_size = inst.image_size or read_rgb(inst.image_path).shape[1::-1]
            heatmap = heatmap_to_image_plane(self.heatmaps(index)[names.index(joint)], inst.bbox_center,
                                             inst.bbox_scale, image_size, udp=self.dataset.codec.udp)
            label = f"{joint} heatmap ({source})"
        view = person_view(self.dataset, self.errors, index, show_gt, show_pred, others, heatmap, parts=tuple(parts))
        return plot_pose(view["image"], self.dataset.info, view["gt"], view["pred"], score_thr, view["boxes"],
                         view["heatmap"], view["title"], faint_gt=view["faint_gt"],
                         faint_pred=view["faint_pred"], view_box=view["view_box"], heatmap_label=label)

    def part_choices(self) -> list[tuple[str, tuple[str, ...]]]:
        """The part filter's choices: (label, parts) for all joints, then each part of a
        whole-body set (body, foot, face, hands); only "all joints" for sets without parts."""
        names = [name for name, _ in self.dataset.info.parts]
        choices = [("all joints", ())] + [(name, (name,)) for name in names]
        if {"lefthand", "righthand"} <= set(names):
            choices.append(("both hands", ("lefthand", "righthand")))
        return choices

    def gallery(self, count: int = 8, order: str = "worst first", ncols: int = 4,
                parts: tuple[str, ...] = ()) -> PoseFigure:
        """The first `count` persons of `order`, each panel zoomed to its person (only `parts`
        of a whole-body set when given)."""
        chosen = self.order(order)[:count]
        return plot_gallery([person_view(self.dataset, self.errors, int(i), rank=f"{n}.", parts=tuple(parts))
                             for n, i in enumerate(chosen, 1)], self.dataset.info, ncols=ncols)

    def widget(self):
        """The browser as ipywidgets: controls above an image of `figure`, redrawn once per change.

        The figure is an `ipywidgets.Image` holding the PNG, so it shows in any widget front end
        (JupyterLab, Notebook 7, VS Code) without an output-capture round trip; a failing redraw
        shows its error under the controls instead of vanishing into the kernel log.
        """
        import ipywidgets as widgets

        count = len(self)
        rank = widgets.IntSlider(1, min=1, max=max(count, 1), description="rank", continuous_update=False)
        rank_of = widgets.Label()
        order = widgets.Dropdown(options=[(self.order_label(by), by) for by in self.ORDERS], value="worst first",
                                 description="sorted")
        show_gt = widgets.Checkbox(value=True, description="ground truth", indent=False)
        show_pred = widgets.Checkbox(value=True, description="prediction", indent=False)
        others = widgets.Checkbox(value=True, description="other people (faint)", indent=False)
        joint = widgets.Dropdown(options=[("no heatmap", "none"), *[(n, n) for n in self.dataset.info.joint_names]],
                                 value="none", description="heatmap")
        score_thr = widgets.FloatSlider(0.2, min=0.0, max=1.0, step=0.05, description="min score",
                                        continuous_update=False)
        parts = widgets.Dropdown(options=self.part_choices(), value=(), description="parts",
                                 layout=widgets.Layout(display="" if self.dataset.info.parts else "none"))
        image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        problem = widgets.HTML()

        def redraw(change=None) -> None:
            rank_of.value = f"of {count}, {self.order_label(order.value)}"
            try:
                figure = self.figure(rank.value, order.value, show_gt.value, show_pred.value, joint.value,
                                     score_thr.value, others.value, parts.value)
            except Exception as error:  # a callback's exception would otherwise only reach the kernel log
                log.exception("pose browser redraw failed")
                problem.value = f"<pre style='color:#b00020'>{html.escape(f'{type(error).__name__}: {error}')}</pre>"
                return
            problem.value = ""
            image.value = figure_png(figure)

        for control in (rank, order, show_gt, show_pred, others, joint, score_thr, parts):
            control.observe(redraw, names="value")
        redraw()
        return widgets.VBox([widgets.HBox([rank, rank_of]), order, widgets.HBox([show_gt, show_pred, others]),
                             joint, score_thr, parts, problem, image])
