"""Oracle AP of each heatmap codec: encoded ground truth -> decode -> COCO AP, no model.

    .venv/bin/python benchmarks/codec_oracle.py [--root ../shared/samples/coco] [--input 192 256]
                                                [--heatmaps 48x64 12x16] [--codecs msra dark udp]

Runs posecore.evaluate with eval.oracle (GT boxes, the val split's own loader, no flip) on the COCO
val persons and on the train persons (the train annotations read as a val split, so they are
cropped and scored the same way), for every codec and heatmap size. The oracle is the ceiling of
encode + decode: what the codec's own rounding and decoding cost before any model.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from posecore.codec import HEATMAP_CODECS  # noqa: E402
from posecore.evaluation import evaluate  # noqa: E402
from posecore.params import load_params  # noqa: E402


def train_as_val(root: Path, scratch: Path) -> Path:
    """A COCO root whose val split is `root`'s train split (symlinks, nothing copied)."""
    (scratch / "annotations").mkdir(parents=True)
    os.symlink(
        root / "annotations" / "person_keypoints_train2017.json",
        scratch / "annotations" / "person_keypoints_val2017.json",
    )
    os.symlink(root / "train2017", scratch / "val2017")
    return scratch


def oracle_ap(root: Path, codec: str, input_size: list[int], heatmap_size: list[int]) -> tuple[float, int]:
    """(AP, persons) of the oracle on root's val split."""
    params = load_params(
        "fastpose",
        {
            "data.root": str(root),
            "data.workers": 0,
            "eval.oracle": True,
            "data.codec": codec,
            "data.input_size": input_size,
            "data.heatmap_size": heatmap_size,
        },
    )
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        metrics = evaluate(params, None, run_name=f"oracle-{codec}-{heatmap_size[0]}x{heatmap_size[1]}")
    return metrics["AP"], int(metrics["num_instances"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO.parent / "shared" / "samples" / "coco")
    parser.add_argument("--input", type=int, nargs=2, default=[192, 256], metavar=("W", "H"))
    parser.add_argument("--heatmaps", nargs="+", default=["48x64", "12x16"], metavar="WxH")
    parser.add_argument(
        "--codecs", nargs="+", default=[c.name for c in HEATMAP_CODECS], choices=[c.name for c in HEATMAP_CODECS]
    )
    args = parser.parse_args()
    if not (args.root / "annotations").is_dir():
        raise SystemExit(f"no COCO annotations under {args.root}: pass --root")
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["POSECORE_OUTPUTS"] = str(Path(scratch) / "outputs")  # run folders stay out of the repo
        splits = {"val": args.root.resolve(), "train": train_as_val(args.root.resolve(), Path(scratch) / "train")}
        print(f"oracle AP, input {args.input[0]}x{args.input[1]} (w x h), COCO persons of {args.root}")
        print(f"{'heatmap':>8s} {'codec':>6s} " + " ".join(f"{split:>14s}" for split in splits))
        for heatmap in args.heatmaps:
            heatmap_size = [int(v) for v in heatmap.lower().split("x")]
            for codec in args.codecs:
                cells = []
                for root in splits.values():
                    ap, persons = oracle_ap(root, codec, args.input, heatmap_size)
                    cells.append(f"{ap:.4f} ({persons:3d})")
                print(f"{heatmap:>8s} {codec:>6s} " + " ".join(f"{cell:>14s}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
