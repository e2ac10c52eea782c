"""Tissue accuracy at other resolutions, and 3-D consistency of the tissue network.

Synthetic phantoms of the MNI anatomy (the tissue network's training
anatomy: expect these figures to flatter it) at 1 mm, resampled to 2 mm
isotropic and to 1 x 1 x 3 mm (linear for the image, nearest neighbour for the
truth), run through the brain-only pipeline ``cnn`` (the phantoms have no
skull). Printed as Markdown:

1. Dice per tissue on each grid, and its difference from the 1 mm case; beside
   it the 1 mm result carried to the coarser grid the way the truth is
   (nearest neighbour) and scored there: what the grid alone costs, so that
   the rest of the difference is the network's, on the coarser input. Each
   coarser grid twice: *point-sampled* (the 1 mm image interpolated at the
   coarse voxel centres: partial volume and noise of a 1 mm voxel) and
   *voxel-averaged* (the 1 mm image first averaged over each coarse voxel's
   extent, as an acquisition at that voxel size integrates the signal:
   partial volume of the coarse voxel, and noise averaged with it);
2. label changes between neighbouring voxels along each axis (R, A, S) in the
   result against the truth's own (``engine.core.metrics.label_changes``): a
   network that works on axial slices and flickers from slice to slice has an
   excess of changes along S;
3. the same on the MNI demo T1 (the averaged template of real brains, the
   network's training anatomy) through the default pipeline, over the whole
   brain and over its top 30 mm (the vertex, where a real brain once showed
   streaks of CSF from slice to slice), and its Dice per tissue.

Run from the repository root::

    .venv/bin/python benchmarks/eval_consistency.py [--contrasts t1,t2,pd] [--seed 11] \
        [--tissue delineo_lesion_varied]

``--tissue`` runs ``cnn`` and the default pipeline with another tissue network
(a network method); ``--model WEIGHTS`` runs ``cnn`` with a weights file of the
``delineo`` network in place of the shipped one (candidate weights of a training
run), and ``--no-demo`` leaves out part 3.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import machine, network_precision, with_tissue  # noqa: E402

GRIDS = (("1 mm", None, False), ("2 mm", (2.0, 2.0, 2.0), False),
         ("1 x 1 x 3 mm", (1.0, 1.0, 3.0), False),
         ("2 mm, voxel-averaged", (2.0, 2.0, 2.0), True),
         ("1 x 1 x 3 mm, voxel-averaged", (1.0, 1.0, 3.0), True))


def voxel_averaged(image: Any, spacing: tuple[float, float, float]) -> Any:
    """*image* (a 1 mm Volume) averaged over a box of *spacing* mm around each voxel
    centre -- the integral of the voxels' piecewise-constant signal over the box: for
    2 mm weights 1/4, 1/2, 1/4 along an axis, for 3 mm 1/3 each -- so that sampling it
    at a coarser grid's centres gives what a voxel of that size would have measured."""
    from scipy import ndimage

    out = np.asarray(image.array, np.float32)
    for axis, (size, step) in enumerate(zip(spacing, image.spacing, strict=True)):
        width = size / float(step)  # the box in voxels of the image
        half = width / 2.0
        reach = int(np.ceil(half - 0.5))
        offsets = np.arange(-reach, reach + 1)
        # the overlap of voxel [k - 1/2, k + 1/2] with the box [-half, half]
        weights = np.clip(np.minimum(offsets + 0.5, half) - np.maximum(offsets - 0.5, -half),
                          0.0, None)
        out = ndimage.correlate1d(out, weights / weights.sum(), axis=axis, mode="nearest")
    return image.with_array(out.astype(np.float32))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contrasts", default="t1,t2,pd")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision",
                        help="the networks' arithmetic: auto, float32 or bfloat16 (default: "
                             "each step's own)")
    parser.add_argument("--tissue", help="tissue network of both pipelines (default: each "
                        "pipeline's own)")
    parser.add_argument("--model", metavar="WEIGHTS",
                        help="a delineo weights file that `cnn` runs instead of the shipped "
                             "network")
    parser.add_argument("--no-demo", action="store_true",
                        help="leave out the MNI demo T1 through the default pipeline")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from engine.core.metrics import dice, label_changes
    from engine.data.phantom import synthesize_phantom
    from engine.io.resample import regrid
    from engine.methods.pipeline import run_pipeline

    if args.model:  # the step's cache of loaded networks, filled with the candidate
        from engine.methods import cnn
        from engine.models.predictor import Predictor

        if args.tissue not in (None, "delineo"):
            raise SystemExit("--model replaces the delineo network; leave out --tissue")
        cnn._PREDICTORS[("delineo", "cpu")] = Predictor.from_name(args.model, device="cpu")

    print(f"# {machine()}\n")
    dice_rows, change_rows = [], []
    for contrast in [c for c in args.contrasts.split(",") if c]:
        image, truth = synthesize_phantom(contrast, seed=args.seed)
        base: list[float] | None = None
        fine = None
        for name, spacing, averaged in GRIDS:
            if spacing is None:
                img, ref = image, truth.array
            else:
                img = regrid(voxel_averaged(image, spacing) if averaged else image, spacing)
                ref = regrid(truth, spacing, order=0).array
            labels = run_pipeline(img, with_tissue("cnn", args.tissue), device="cpu",
                                  overrides=network_precision("cnn", args.precision)
                                  ).labels.array
            scores = [dice(labels, ref, v) for v in (1, 2, 3)]
            if fine is None:
                fine, grid = labels, scores
            else:
                carried = regrid(truth.with_array(fine), spacing, order=0).array
                grid = [dice(carried, ref, v) for v in (1, 2, 3)]
            base = scores if base is None else base
            delta = " | ".join(f"{s - b:+.3f}" for s, b in zip(scores, base, strict=True))
            alone = " | ".join(f"{g - b:+.3f}" for g, b in zip(grid, base, strict=True))
            dice_rows.append(f"| {contrast.upper()} | {name} | "
                             + " | ".join(f"{s:.3f}" for s in scores) + f" | {delta} | "
                             + alone + " |")
            brain = (ref > 0) | (labels > 0)
            got, want = label_changes(labels, brain), label_changes(ref, brain)
            change_rows.append(f"| {contrast.upper()} | {name} | "
                               + " | ".join(f"{g / w:.2f}" for g, w in zip(got, want,
                                                                          strict=True))
                               + " |")
            print(f"# {contrast} {name} done", flush=True)
    print("\n## Dice of `cnn` per grid (phantoms of the training anatomy)\n")
    print("| contrast | grid | CSF | GM | WM | CSF vs 1 mm | GM vs 1 mm | WM vs 1 mm | "
          "grid alone: CSF | grid alone: GM | grid alone: WM |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(dice_rows))
    print("\n## Label changes along each axis, result / truth\n")
    print("| contrast | grid | along R | along A | along S (across axial slices) |")
    print("|---|---|---:|---:|---:|")
    print("\n".join(change_rows))
    if args.no_demo:
        return 0
    print("\n## MNI demo T1 (training anatomy), default pipeline: label changes, "
          "result / truth\n")
    print("| region | along R | along A | along S (across axial slices) |")
    print("|---|---:|---:|---:|")
    from engine.data.mni import load_demo
    from engine.methods.pipeline import DEFAULT_PIPELINE

    t1, truth = load_demo()
    labels = run_pipeline(t1, with_tissue(DEFAULT_PIPELINE, args.tissue), device="cpu",
                          overrides=network_precision(DEFAULT_PIPELINE, args.precision)
                          ).labels.array
    ref = truth.array
    brain = (ref > 0) | (labels > 0)
    top = int(np.nonzero(brain.any(axis=(0, 1)))[0].max())
    vertex = brain.copy()
    vertex[:, :, :top - 29] = False  # the top 30 slices of 1 mm
    for name, region in (("whole brain", brain), ("vertex (top 30 mm)", vertex)):
        got, want = label_changes(labels, region), label_changes(ref, region)
        print(f"| {name} | " + " | ".join(f"{g / w:.2f}" for g, w in zip(got, want,
                                                                       strict=True)) + " |")
    scores = [dice(labels, ref, v) for v in (1, 2, 3)]
    print(f"\nDice of the default pipeline on the demo T1: CSF {scores[0]:.3f}, "
          f"GM {scores[1]:.3f}, WM {scores[2]:.3f} (mean {np.mean(scores):.3f}); "
          f"{int(np.count_nonzero(labels == 4))} voxels labelled lesion")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
