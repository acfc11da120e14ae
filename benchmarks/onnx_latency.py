"""CPU latency of PyTorch eager vs onnxruntime for an exported pose model (median ms).

    .venv/bin/python benchmarks/onnx_latency.py --params fastpose [--onnx FILE.onnx]
        [--checkpoint best.pt] [--batch-sizes 1 8] [--repeats 20] [--threads N]
        [--set data.input_size=[128,128] ...]

Without --onnx the model is exported first (to a temp folder) from --checkpoint, or with its
initial weights, which time the same. Prints a markdown table; timings are not a test.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import yaml

from posecore.export import export_onnx, latency_table
from posecore.params import load_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="fastpose", help="params name or path")
    parser.add_argument("--onnx", help="an exported file (default: export one now)")
    parser.add_argument("--checkpoint", help="weights to export when --onnx is not given")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="params override, YAML value, e.g. data.input_size=[128,128]",
    )
    args = parser.parse_args()
    overrides = dict(_override(text) for text in args.set)
    params = load_params(args.params, overrides)

    with tempfile.TemporaryDirectory() as folder:
        onnx_path = args.onnx
        if onnx_path is None:
            onnx_path = Path(folder) / f"{params.model.name}.onnx"
            export_onnx(params, args.checkpoint, onnx_path, parity_batch_sizes=())
        rows = latency_table(params, onnx_path, args.batch_sizes, repeats=args.repeats, threads=args.threads)

    w, h = params.data.input_size
    print(
        f"{params.model.name} ({params.name}), input {w}x{h}, {args.threads} threads, "
        f"median of {args.repeats}, torch {torch.__version__}, onnxruntime {_ort_version()}"
    )
    print("| batch | PyTorch eager (ms) | onnxruntime (ms) | speedup |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['batch']} | {row['pytorch_ms']:.1f} | {row['onnxruntime_ms']:.1f} | {row['speedup']:.2f}x |")


def _override(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"--set {text!r}: expected KEY=VALUE, e.g. data.input_size=[128,128]")
    return key, yaml.safe_load(value)


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


if __name__ == "__main__":
    main()
