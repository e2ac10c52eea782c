"""Pipelines end to end on the 1 mm demo volume: runtime per step and peak memory.

Run: ``python benchmarks/bench_pipeline.py [--pipelines cnn,cnn+rd,gmm] [--device cpu]``.

Each pipeline runs once on the MNI152 demo T1 (197 x 233 x 189) with the
ground-truth brain mask, exactly as ``delineo-engine segment --pipeline``
does minus file I/O. Printed per pipeline: total seconds, seconds of each
step, peak process RSS sampled during the run (and peak CUDA allocation on
CUDA), and the mean Dice over CSF/GM/WM so a speed-up that costs accuracy is
visible. The reference is the first pipeline of the list (ratios are its
time over each pipeline's time). Pipelines whose network weights are not
shipped are reported as skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine

from engine.core.errors import DelineoError
from engine.core.metrics import dice
from engine.data.mni import load_demo
from engine.methods.pipeline import PIPELINES, run_pipeline

DEFAULT = "cnn,cnn+rd,cnn+rd+ac,unet,gmm,reaction_diffusion"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default=DEFAULT, help=f"comma list (default {DEFAULT})")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    print(f"# {machine()}", flush=True)
    t1, truth = load_demo()
    mask = truth.array > 0
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    reference: tuple[str, float] | None = None
    for name in names:
        if name not in PIPELINES:
            print(f"# {name}: unknown pipeline, skipped", flush=True)
            continue
        try:
            result = run_pipeline(t1, name, device=args.device, mask=mask)
        except DelineoError as exc:
            print(f"# {name}: skipped ({exc})", flush=True)
            continue
        scores = [dice(result.labels.array, truth.array, k) for k in (1, 2, 3)]
        if reference is None:
            reference = (name, result.seconds)
        emit(f"pipeline {name} end to end on {result.device}", result.seconds, "s",
             ratio=reference[1] / result.seconds, reference=f"pipeline {reference[0]}")
        for step in result.steps:
            emit(f"pipeline {name} step {step.name}", step.seconds, "s")
        emit(f"pipeline {name} peak RSS", result.peak_rss_bytes / 2**20, "MiB")
        if result.peak_cuda_bytes is not None:
            emit(f"pipeline {name} peak CUDA allocation", result.peak_cuda_bytes / 2**20, "MiB")
        emit(f"pipeline {name} mean Dice CSF/GM/WM", float(np.mean(scores)), "")


if __name__ == "__main__":
    main()
