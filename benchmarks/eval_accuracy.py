"""The accuracy table of docs/model.md in one command, for any tissue network weights.

For each ``--model`` (a shipped name or a weights file) and each case -- the four
phantoms that docs/model.md writes with ``delineo-engine synth`` (T1 3 % noise and
20 % INU seed 1, T1 9 %/40 % seed 2, T2 3 %/20 % seed 3, PD 3 %/20 % seed 4; the
training anatomy, with its held-out slab) and the MNI152 demo T1 -- the network
runs alone ("none") and given the true brain mask ("true brain"), as
``delineo-engine evaluate --method delineo [--mask-from-truth]`` runs it; printed
as Markdown: Dice of CSF, GM, WM and their mean, on the whole volume and on the
held-out slab k in [70, 90). ``--precision`` sets the networks' arithmetic
(default: the predictor's own, ``auto``); several values give one row each.

Run from the repository root (about 1 minute per model and precision on the 2-core
development machine)::

    .venv/bin/python benchmarks/eval_accuracy.py --model delineo --model runs/x/delineo.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import machine  # noqa: E402

#: (label, contrast, noise, INU, seed): the phantoms of docs/model.md's `synth` commands.
PHANTOMS = (("T1, 3 % noise, 20 % INU", "t1", 0.03, 0.20, 1),
            ("T1, 9 % noise, 40 % INU", "t1", 0.09, 0.40, 2),
            ("T2, 3 % noise, 20 % INU", "t2", 0.03, 0.20, 3),
            ("PD, 3 % noise, 20 % INU", "pd", 0.03, 0.20, 4))


def _short(model: str) -> str:
    """A shipped name as it is, a weights file as its folder and name."""
    path = Path(model)
    return model if not path.suffix else "/".join(path.parts[-2:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append",
                        help="network name or weights file (repeatable; default delineo)")
    parser.add_argument("--precision", default="auto",
                        help="comma-separated: auto, float32, bfloat16 (default auto)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from engine.cli.model_commands import dice_table
    from engine.data.mni import HELD_OUT_SLAB, load_demo
    from engine.data.phantom import synthesize_phantom
    from engine.models.predictor import Predictor

    models = args.model or ["delineo"]
    precisions = [p for p in args.precision.split(",") if p]
    predictors = {m: Predictor.from_name(m, device="cpu") for m in models}
    print(f"# {machine()}\n")
    cases = [(label, lambda c=c, n=n, i=i, s=s: synthesize_phantom(c, noise=n, inu=i, seed=s))
             for label, c, n, i, s in PHANTOMS]
    cases.append(("MNI152 T1 template (real)", load_demo))
    print("| case | mask | network | precision | CSF | GM | WM | **mean** | slab CSF | "
          "slab GM | slab WM | **slab mean** |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, make in cases:
        image, truth = make()
        ref = truth.array
        for mask in ("none", "true brain"):
            for model, pred in predictors.items():
                for precision in precisions:
                    pred.precision = precision
                    out = pred.predict_array(image.array, image.spacing,
                                             mask=ref > 0 if mask == "true brain" else None)
                    table = dice_table(out.labels, ref, HELD_OUT_SLAB)
                    w, s = table["whole"], table["slab"]
                    print(f"| {label} | {mask} | {_short(model)} | {out.precision} | "
                          f"{w['csf']:.3f} | {w['gm']:.3f} | {w['wm']:.3f} | "
                          f"**{w['mean']:.3f}** | {s['csf']:.3f} | {s['gm']:.3f} | "
                          f"{s['wm']:.3f} | **{s['mean']:.3f}** |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
