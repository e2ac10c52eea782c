"""Accuracy of brain extraction and of the whole-head pipeline on synthetic heads.

Synthetic whole heads (``engine.data.heads``: CSF rim, skull tables, marrow,
scalp fat, muscle and skin of random thickness and intensity, eyes, neck,
around the MNI brain) give the true intracranial mask. No head of a person is
used. Printed as Markdown:

1. intracranial Dice and volume of ``brain_mask`` (deepbet, then the CSF rim
   with dark fluid) per contrast and seed at 1 mm, and for T1 at 2 mm,
   1 x 1 x 3 mm and 20 degrees oblique;
2. the default pipeline ``head`` on the raw head against the same scan
   skull-stripped at the inner table (every voxel outside the true
   intracranial mask set to zero): tissue volumes and their differences;
   gray- and white-matter Dice against the synthetic truth for ``head`` and
   for the brain-only pipeline ``cnn`` on the raw head.

Run from the repository root::

    .venv/bin/python benchmarks/eval_brain_extraction.py [--seeds 101,102,103] [--tissue delineo]

``--tissue`` runs both pipelines with another tissue network (a network method:
``delineo``, ``delineo_lesion_varied`` -- the default pipeline's since
2026-12-07 -- or ``unet``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import machine, with_tissue  # noqa: E402

TISSUES = ((1, "CSF"), (2, "GM"), (3, "WM"))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(1, np.count_nonzero(a) + np.count_nonzero(b)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="101,102,103", help="synthetic head seeds")
    parser.add_argument("--contrasts", default="t1,t2,pd")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tissue", help="tissue network of both pipelines (default: each "
                        "pipeline's own)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from engine.data.heads import synthetic_head
    from engine.io.resample import regrid
    from engine.methods.brain_extraction import extract_brain
    from engine.methods.pipeline import run_pipeline

    seeds = [int(s) for s in args.seeds.split(",")]
    contrasts = args.contrasts.split(",")
    print(f"# {machine()}\n")
    print("## Intracranial mask (brain_mask) against the synthetic truth\n")
    print("| head | grid | Dice | volume found (mL) | true volume (mL) | dark rim added (mL) "
          "| seconds |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for contrast in contrasts:
        for seed in seeds:
            head = synthetic_head(contrast, seed=seed)
            cases = [("1 mm", head.image, head.intracranial)]
            if contrast == "t1" and seed == seeds[0]:
                truth = head.image.with_array(head.intracranial.astype(np.uint8))
                for label, spacing, degrees in (("2 mm", (2.0, 2.0, 2.0), 0.0),
                                                ("1 x 1 x 3 mm", (1.0, 1.0, 3.0), 0.0),
                                                ("1.2 mm, 20 deg oblique", (1.2, 1.2, 1.2),
                                                 20.0)):
                    cases.append((label, regrid(head.image, spacing, degrees=degrees),
                                  regrid(truth, spacing, degrees=degrees, order=0).array > 0))
            for label, image, truth_mask in cases:
                t0 = time.perf_counter()
                found = extract_brain(image, device="cpu")
                seconds = time.perf_counter() - t0
                ml = float(np.prod(image.spacing)) / 1000
                print(f"| {contrast.upper()} seed {seed} | {label} | "
                      f"{_dice(found.mask, truth_mask):.3f} | {found.intracranial_ml:.0f} | "
                      f"{truth_mask.sum() * ml:.0f} | {found.rim_ml:.0f} | {seconds:.1f} |",
                      flush=True)

    print("\n## Whole head against the same scan skull-stripped at the inner table\n")
    print("| head | input | CSF mL | GM mL | WM mL | GM Dice | WM Dice |")
    print("|---|---|---:|---:|---:|---:|---:|")
    diffs = []
    for contrast in contrasts:
        for seed in seeds[:1]:
            head = synthetic_head(contrast, seed=seed)
            stripped = head.image.with_array(
                np.where(head.intracranial, head.image.array, 0).astype(np.float32))
            truth = head.truth.array
            volumes = {}
            for label, image, pipeline in (("raw head, head", head.image, "head"),
                                           ("stripped, head", stripped, "head"),
                                           ("raw head, cnn (no extraction)", head.image,
                                            "cnn")):
                labels = run_pipeline(image, with_tissue(pipeline, args.tissue),
                                      device="cpu").labels.array
                vols = [np.count_nonzero(labels == v) / 1000 for v, _ in TISSUES]
                volumes[label] = vols
                print(f"| {contrast.upper()} seed {seed} | {label} | "
                      + " | ".join(f"{v:.0f}" for v in vols) + " | "
                      + " | ".join(f"{_dice(labels == v, truth == v):.3f}" for v in (2, 3))
                      + " |", flush=True)
            raw, ref = volumes["raw head, head"], volumes["stripped, head"]
            diffs.append((contrast, seed, [100 * (a - b) / b for a, b in zip(raw, ref,
                                                                             strict=True)]))
    print("\n| head | CSF difference | GM difference | WM difference |")
    print("|---|---:|---:|---:|")
    for contrast, seed, d in diffs:
        print(f"| {contrast.upper()} seed {seed} | " + " | ".join(f"{x:+.1f} %" for x in d)
              + " |")
    print("\nGoal: within 10 % (CSF) and 5 % (GM, WM).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
