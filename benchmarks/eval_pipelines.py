"""Does refinement earn its place? Pipelines on the evaluation phantoms and the real template.

Run: ``python benchmarks/eval_pipelines.py [--pipelines cnn,cnn+rd,cnn+rd+ac,unet]
[--cases t1_n3_inu20,t1_n9_inu40,t2_n3_inu20,pd_n3_inu20,mni] [--out DIR]``.

Cases are full 197 x 233 x 189 volumes: phantoms rendered by
:func:`engine.data.phantom.synthesize_phantom` (the same files
``delineo-engine synth --out DIR --contrast C --noise N --inu I --seed S`` writes)
and the MNI152 T1 template with its ground truth. Every pipeline runs with
the true brain mask (ground truth > 0), as in the methods' accuracy tables.
Printed, per case and pipeline: mean Dice over CSF/GM/WM, Dice on the
held-out slab k in [70, 90), mean HD95 and ASSD (mm), runtime; then, per
refinement step, how much it changed mean Dice and HD95 on average. With
``--out`` the rows are also written as CSV.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.core.metrics import confusion, evaluate_labels
from engine.data.mni import load_demo
from engine.data.phantom import synthesize_phantom
from engine.methods.pipeline import run_pipeline

#: name -> (contrast, noise, INU, seed), as ``delineo-engine synth DIR --contrast C
#: --noise N% --inu I% --seed S`` writes them (docs/model.md).
CASES = {
    "t1_n3_inu20": ("t1", 0.03, 0.20, 1),
    "t1_n9_inu40": ("t1", 0.09, 0.40, 2),
    "t2_n3_inu20": ("t2", 0.03, 0.20, 3),
    "pd_n3_inu20": ("pd", 0.03, 0.20, 4),
}
SLAB = (70, 90)


def load_case(name: str):
    if name == "mni":
        return load_demo()
    contrast, noise, inu, seed = CASES[name]
    return synthesize_phantom(contrast, noise=noise, inu=inu, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default="cnn,cnn+rd,cnn+rd+ac,unet")
    parser.add_argument("--cases", default=",".join([*CASES, "mni"]))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    pipelines = [p for p in args.pipelines.split(",") if p]
    rows = []
    print("| case | pipeline | mean Dice | slab Dice | CSF | GM | WM | HD95 mm | ASSD mm "
          "| time s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for case in [c for c in args.cases.split(",") if c]:
        image, truth = load_case(case)
        mask = truth.array > 0
        for name in pipelines:
            res = run_pipeline(image, name, device=args.device, mask=mask)
            pred = res.labels.array
            per = evaluate_labels(pred, truth.array, (1, 2, 3), spacing=truth.spacing)
            k0, k1 = SLAB
            slab = confusion(pred[:, :, k0:k1], truth.array[:, :, k0:k1], (1, 2, 3))
            row = {
                "case": case, "pipeline": name,
                "dice": float(np.mean([per[k]["dice"] for k in (1, 2, 3)])),
                "slab_dice": float(np.mean([slab[k].dice for k in (1, 2, 3)])),
                "csf": per[1]["dice"], "gm": per[2]["dice"], "wm": per[3]["dice"],
                "hd95": float(np.mean([per[k]["hd95"] for k in (1, 2, 3)])),
                "assd": float(np.mean([per[k]["assd"] for k in (1, 2, 3)])),
                "seconds": res.seconds,
            }
            rows.append(row)
            print(f"| {case} | {name} | {row['dice']:.4f} | {row['slab_dice']:.4f} | "
                  f"{row['csf']:.3f} | {row['gm']:.3f} | {row['wm']:.3f} | {row['hd95']:.2f} | "
                  f"{row['assd']:.3f} | {row['seconds']:.1f} |", flush=True)
    print()
    for before, after in (("cnn", "cnn+rd"), ("cnn+rd", "cnn+rd+ac")):
        pairs = [(a, b) for a in rows for b in rows
                 if a["case"] == b["case"] and a["pipeline"] == before
                 and b["pipeline"] == after]
        if pairs:
            dd = np.mean([b["dice"] - a["dice"] for a, b in pairs])
            dh = np.mean([b["hd95"] - a["hd95"] for a, b in pairs])
            print(f"{before} -> {after}: mean Dice change {dd:+.4f}, mean HD95 change "
                  f"{dh:+.2f} mm over {len(pairs)} cases")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        with (args.out / "pipelines.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
