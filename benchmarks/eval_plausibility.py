"""Does the plausibility verdict pass good results and flag failures? Synthetic data only.

Run: ``python benchmarks/eval_plausibility.py [--pipeline cnn]``.

The default pipeline runs on the MNI demo brain (training anatomy), on
synthetic phantoms (T1, T2, PD and random contrasts, 1, 2, 3 and 1 x 1 x 3 mm
voxels, deformed anatomy) and on synthetic whole heads
(:func:`engine.data.heads.synthetic_head`: skull, scalp, eyes and neck around
the template brain) with and without everything outside the brain. Printed as
a Markdown table: labelled volume, mean uncertainty, the share of uncertain
voxels, labels without signal and the verdict of
:func:`engine.evaluation.plausibility.assess`. No scan of a person is used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.volume import Volume
from engine.data.heads import synthetic_head
from engine.data.mni import load_demo
from engine.data.phantom import synthesize_phantom
from engine.evaluation.plausibility import assess
from engine.io.resample import resample_to
from engine.methods.pipeline import DEFAULT_PIPELINE, run_pipeline


def resampled(vol: Volume, mm: float | tuple[float, float, float]) -> Volume:
    """*vol* resampled (linear) onto a grid of *mm* voxels over the same field of view."""
    step_mm = np.broadcast_to(np.asarray(mm, float), (3,))
    step = np.diag([*step_mm, 1.0])
    step[:3, 3] = vol.affine[:3, 3]
    extent = np.array(vol.shape) * vol.spacing
    shape = tuple(int(e // m) for e, m in zip(extent, step_mm, strict=True))
    ref = Volume(np.zeros(shape, np.float32), step)
    return Volume(resample_to(vol, ref), step, modality="MR")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", default=DEFAULT_PIPELINE)
    args = parser.parse_args()

    def row(name: str, vol: Volume) -> None:
        result = run_pipeline(vol, args.pipeline)
        rep = assess(result.labels, result.segment_probabilities, vol)
        mean = "-" if rep.uncertainty_mean is None else f"{rep.uncertainty_mean:.3f}"
        share = "-" if rep.uncertain_fraction is None else f"{100 * rep.uncertain_fraction:.1f}"
        print(f"| {name} | {rep.labelled_ml:.0f} | {mean} | {share} | "
              f"{100 * (rep.no_signal_fraction or 0):.1f} | {rep.verdict} |", flush=True)

    print("| case | labelled mL | mean uncertainty | uncertain % | no signal % | verdict |")
    print("|---|---:|---:|---:|---:|---|")
    row("MNI demo (training anatomy)", load_demo()[0])
    for contrast in ("t1", "t2", "pd"):
        phantom = synthesize_phantom(contrast, seed=11)[0]
        row(f"phantom {contrast.upper()} 1 mm", phantom)
        row(f"phantom {contrast.upper()} 2 mm", resampled(phantom, 2.0))
        row(f"phantom {contrast.upper()} 3 mm", resampled(phantom, 3.0))
        row(f"phantom {contrast.upper()} 1x1x3 mm", resampled(phantom, (1.0, 1.0, 3.0)))
        row(f"phantom {contrast.upper()} deformed",
            synthesize_phantom(contrast, seed=12, deform=True)[0])
    for seed in (21, 22):
        row(f"phantom random contrast (seed {seed})", synthesize_phantom("random", seed=seed)[0])
    for contrast in ("t1", "t2", "pd"):
        head = synthetic_head(contrast, seed=5)
        row(f"synthetic head {contrast.upper()}", head.image)
        row(f"same head {contrast.upper()}, skull-stripped", head.brain_image)


if __name__ == "__main__":
    main()
