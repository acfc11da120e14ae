"""The interactive pose browser of visualize.ipynb: a run's val persons, ordered by error.

`PoseBrowser(params, run_name, checkpoint)` scores each val person against the run's eval
predictions (posecore.evaluation.person_errors), draws one person with posecore.viz, computes
one joint's heatmap on demand, and `widget()` wires ipywidgets controls to the drawing.
"""
from __future__ import annotations

import numpy as np
import torch

from posecore.checkpoints import load_model, with_trained_codec
from posecore.data import build_dataset, read_rgb
from posecore.evaluation import person_errors, resolve_checkpoint
from posecore.runs import run_dir
from posecore.viz import PoseFigure, heatmap_to_image_plane, plot_gallery, plot_pose


def person_view(dataset, errors: dict, index: int, show_gt: bool = True, show_pred: bool = True,
                heatmap: np.ndarray | None = None) -> dict:
    """`draw_people` arguments for dataset person `index`: its whole image with everyone on it.

    The chosen person's box is drawn; `heatmap` [H, W] is in image pixels (heatmap_to_image_plane).
    """
    inst = dataset.instances[int(index)]
    same_image = [i for i, other in enumerate(dataset.instances) if other.image_id == inst.image_id]
    gt = [np.concatenate([dataset.instances[i].joints, dataset.instances[i].visible[:, None]], 1)
          for i in same_image] if show_gt else []
    pred = [errors["pred"][i] for i in same_image if np.isfinite(errors["pred"][i]).all()] if show_pred else []
    box = inst.bbox_xyxy
    boxes = [(box[0], box[1], box[2] - box[0], box[3] - box[1])] if box is not None else []
    title = f"#{index} image {inst.image_id}: {errors['metric']} {errors['score'][index]:.2f}"
    return {"image": read_rgb(inst.image_path), "gt": gt, "pred": pred, "boxes": boxes,
            "heatmap": heatmap, "title": title}


def worst_predictions(dataset, errors: dict, count: int = 8, ncols: int = 4) -> PoseFigure:
    """A gallery of the `count` persons with the lowest OKS / PCKh, drawn on their images."""
    order = np.argsort(errors["score"], kind="stable")[:count]
    return plot_gallery([person_view(dataset, errors, int(i)) for i in order], dataset.info, ncols=ncols)


class PoseBrowser:
    """Browse a run's val persons: ground truth and predictions on their images, ordered by error,
    with one joint's heatmap computed on demand (the model's, or the encoded target with
    eval.oracle). `widget()` is the ipywidgets front end; `figure` / `gallery` work without one.
    """

    ORDERS = ("worst first", "best first", "dataset order")

    def __init__(self, params, run_name: str, checkpoint: str | None = None):
        self.checkpoint = resolve_checkpoint(checkpoint, params, run_name)
        self.params = params = with_trained_codec(params, self.checkpoint)
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

    def figure(self, position: int = 0, order: str = "worst first", show_gt: bool = True,
               show_pred: bool = True, joint: str = "none", score_thr: float = 0.2) -> PoseFigure:
        """One person's image at `position` of `order`; `joint` names the heatmap to overlay."""
        index = int(self.order(order)[int(position)])
        heatmap = None
        if joint != "none":
            inst = self.dataset.instances[index]
            hm = self.heatmaps(index)[self.dataset.info.joint_names.index(joint)]
            image_size = inst.image_size or read_rgb(inst.image_path).shape[1::-1]
            heatmap = heatmap_to_image_plane(hm, inst.bbox_center, inst.bbox_scale, image_size,
                                             udp=self.dataset.codec.udp)
        view = person_view(self.dataset, self.errors, index, show_gt, show_pred, heatmap)
        return plot_pose(view["image"], self.dataset.info, view["gt"], view["pred"], score_thr,
                         view["boxes"], view["heatmap"], view["title"])

    def gallery(self, count: int = 8, order: str = "worst first", ncols: int = 4) -> PoseFigure:
        """The first `count` persons of `order`, a static stand-in for the widget."""
        chosen = self.order(order)[:count]
        return plot_gallery([person_view(self.dataset, self.errors, int(i)) for i in chosen],
                            self.dataset.info, ncols=ncols)

    def widget(self):
        """ipywidgets.interactive over `figure`: image slider, order, toggles, joint, score threshold."""
        import ipywidgets as widgets

        return widgets.interactive(
            self.figure,
            position=widgets.IntSlider(0, 0, max(len(self) - 1, 0), description="image", continuous_update=False),
            order=widgets.Dropdown(options=self.ORDERS, value="worst first", description="order by"),
            show_gt=widgets.Checkbox(value=True, description="ground truth"),
            show_pred=widgets.Checkbox(value=True, description="prediction"),
            joint=widgets.Dropdown(options=("none", *self.dataset.info.joint_names), value="none",
                                   description="heatmap"),
            score_thr=widgets.FloatSlider(0.2, min=0.0, max=1.0, step=0.05, description="score ≥",
                                          continuous_update=False),
        )
