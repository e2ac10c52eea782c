"""Tissue accuracy on held-out anatomy: deformations no network was trained on.

Each case is the whole MNI template (the held-out slab included) given a new
shape by :func:`engine.data.anatomy.held_out_anatomy` -- 3-D pose and per-axis
scaling, hemisphere asymmetry, a large elastic warp of the ``"smooth"`` field
family (training draws the ``"spline"`` family), enlarged ventricles and
cortical atrophy -- then rendered as a phantom (3 % noise, 20 % INU) of each
contrast. On every case, side by side:

* each network (``--model``: a shipped name or a weights file), given the true
  brain mask and given nothing;
* the Gaussian mixture + MRF baseline (``gmm``) given the true brain mask and
  the sequence's tissue order (T1: CSF < GM < WM; T2 and PD: the reverse),
  which the networks are not told.

Printed as Markdown: Dice per tissue (the mean over the seeds, and the
worst), and the network's label changes along each axis over the truth's
(``engine.core.metrics.label_changes``, inside the brain; an excess along S,
across the axial slices, would be slice-to-slice streaks).

Run from the repository root::

    .venv/bin/python benchmarks/eval_anatomy.py [--seeds 1,2,3] [--contrasts t1,t2,pd]
        [--model delineo] [--model runs/x/delineo.safetensors] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import machine  # noqa: E402

TISSUES = ("CSF", "GM", "WM")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--contrasts", default="t1,t2,pd")
    parser.add_argument("--model", action="append",
                        help="network name or weights file (repeatable; default delineo)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto",
                        help="the networks' arithmetic: auto (default), float32 or bfloat16")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from engine.core.metrics import dice, label_changes
    from engine.data.anatomy import held_out_anatomy
    from engine.data.phantom import synthesize_phantom
    from engine.methods.baselines import GMMParams, run_gmm
    from engine.models.predictor import Predictor

    models = args.model or ["delineo"]
    predictors = {m: Predictor.from_name(m, device="cpu", precision=args.precision)
                  for m in models}
    seeds = [int(s) for s in args.seeds.split(",")]
    contrasts = args.contrasts.split(",")
    print(f"# {machine()}\n")
    # scores[(contrast, method, mask)] -> list of (csf, gm, wm) per seed
    scores: dict[tuple[str, str, str], list[list[float]]] = {}
    changes: dict[tuple[str, str], list[list[float]]] = {}
    for seed in seeds:
        t0 = time.perf_counter()
        block = held_out_anatomy(seed)
        for contrast in contrasts:
            image, truth = synthesize_phantom(contrast, seed=seed, block=block)
            ref = truth.array
            brain = ref > 0
            runs = [(m, "true brain") for m in predictors] + [(m, "none") for m in predictors]
            runs.append(("gmm", "true brain"))
            for method, mask in runs:
                given = brain if mask == "true brain" else None
                if method == "gmm":  # told the tissue order of the sequence (T1, or T2/PD)
                    order = GMMParams(contrast="t1" if contrast == "t1" else "t2")
                    labels = run_gmm(image, order, mask=given, device="cpu").labels.array
                else:
                    labels = predictors[method].predict(image, mask=given).labels.array
                row = [dice(labels, ref, v) for v in (1, 2, 3)]
                scores.setdefault((contrast, method, mask), []).append(row)
                if mask == "none" and method != "gmm":
                    region = brain | (labels > 0)
                    got, want = label_changes(labels, region), label_changes(ref, region)
                    changes.setdefault((contrast, method), []).append(
                        [g / w for g, w in zip(got, want, strict=True)])
            print(f"# seed {seed} {contrast} done ({time.perf_counter() - t0:.0f} s)",
                  flush=True)

    print(f"\n## Dice on held-out deformations (seeds {args.seeds}; mean, worst in brackets)\n")
    print("| contrast | method | mask | CSF | GM | WM | mean |")
    print("|---|---|---|---:|---:|---:|---:|")
    for (contrast, method, mask), rows in scores.items():
        arr = np.array(rows)
        cells = [f"{arr[:, i].mean():.3f} ({arr[:, i].min():.3f})" for i in range(3)]
        print(f"| {contrast.upper()} | {method} | {mask} | " + " | ".join(cells)
              + f" | **{arr.mean():.3f}** |")
    print("\n## Network labels: changes along each axis over the truth's (no mask; mean)\n")
    print("| contrast | network | along R | along A | along S (across axial slices) |")
    print("|---|---|---:|---:|---:|")
    for (contrast, method), rows in changes.items():
        arr = np.array(rows).mean(axis=0)
        print(f"| {contrast.upper()} | {method} | " + " | ".join(f"{v:.2f}" for v in arr) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
