"""Whole-volume CNN inference speed (the issue's goal: <= 5 s on 2 CPU cores, <= 0.5 s CUDA).

Run: ``python benchmarks/bench_inference.py [--device cpu|cuda] [--threads N] [--tta]``.
Times :meth:`engine.models.predictor.Predictor.predict_array` on the 197 x 233 x 189 demo
T1 for each shipped network (``resources/models``), or an untrained network
of the same architecture if the weights are missing: crop to the head, robust
normalisation, 2.5-D slices in batches, soft-max, full-size probabilities and
the arg-max label map -- everything ``segment`` does except reading and writing
files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine, median, timeit

from engine.models import build_model, count_parameters
from engine.models.predictor import Predictor
from engine.models.weights import models_dir


def _image() -> np.ndarray:
    try:
        from engine.data.mni import load_demo

        return load_demo()[0].array.astype(np.float32)
    except Exception:  # no template: a same-size synthetic head
        grid = np.indices((197, 233, 189)).astype(np.float32)
        r = np.sqrt(((grid[0] - 98) / 70) ** 2 + ((grid[1] - 116) / 90) ** 2
                    + ((grid[2] - 80) / 75) ** 2)
        return np.where(r < 1, 200 - 80 * r, 0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = _image()
    print(f"# {machine()}; image {image.shape}", flush=True)
    for name in ("unet", "delineo"):
        path = models_dir() / f"{name}.safetensors"
        if path.is_file():
            pred = Predictor.from_name(name, device=args.device, batch_size=args.batch_size,
                                       tta=args.tta)
            tag = "shipped"
        else:
            pred = Predictor(build_model(name), device=args.device,
                             batch_size=args.batch_size, tta=args.tta, name=name)
            tag = "untrained"
        params = count_parameters(pred.model)
        times = timeit(lambda p=pred: p.predict_array(image), repeats=args.repeats, warmup=1)
        goal = "<= 0.5 s" if pred.device.type == "cuda" else "<= 5 s on 2 cores"
        emit(f"{name} ({tag}, {params / 1e6:.2f} M params) whole volume on {pred.device}"
             f"{' +TTA' if args.tta else ''}", median(times), "s", goal=goal)


if __name__ == "__main__":
    main()
