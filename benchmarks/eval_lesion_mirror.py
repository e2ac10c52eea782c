"""Mirror symmetry against the lesion networks' false findings: measured, not shipped.

Run from the repository root after ``eval_lesion_fusion.py`` has filled its cache
(about 15 minutes on the 2-core development machine; without the cache the
networks run first, about 25 minutes more)::

    .venv/bin/python benchmarks/eval_lesion_mirror.py --cache fusion_cache/ --out mirror/

The default pipeline's false findings on the synthetic brains come in
left-right pairs (docs/lesions.md, *What it finds and misses*). Two cues that a
found lesion is its side's copy of normal anatomy rather than a lesion are
scored on the cases of ``eval_lesion_fusion.py`` (the same seeds and scoring),
at the shipped rule (the mean of the two networks at 0.95, outlined to 0.7):

* **pair rule**: a lesion is dropped when the mean lesion probability reaches
  *pair level* within *r* voxels of its mirror image, outside its own
  footprint grown by *r* voxels (its own halo is not its partner);
* **intensity asymmetry**: for every lesion, the mean over its voxels of how
  far the image lies outside the range of the image in the 5 x 5 x 5
  neighbourhood of the mirror voxel (tolerating a misalignment of 2 voxels),
  over the brain's interquartile intensity range; listed by kind (lesion /
  false finding) and anatomy.

The mirror is the sagittal plane through the middle of the brain's left-right
extent: every case here is axis-aligned in the template's grid. The template
(MNI ICBM152 2009a *symmetric*) is exactly left-right symmetric, and so are the
held-out slab, the training anatomy and the whole heads built on it; only the
held-out deformations (hemisphere asymmetry, elastic warps) are not, and they
are the test of whether a cue would carry to a real brain. The image of each
case is drawn again from its seed (the cache holds the probabilities, the
brain and the truth); inside the brain it is the image the networks saw.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import eval_lesion_fusion as fusion
from benchmarks import eval_lesions as ev
from benchmarks.common import write_report
from engine.core.morphology import label
from engine.data.heads import synthetic_head
from engine.data.lesions import add_lesions
from engine.data.mni import HELD_OUT_SLAB

_BALL = ndimage.generate_binary_structure(3, 1)


def case_image(spec: tuple[str, int, str, bool]) -> np.ndarray:
    """The image of one of ``eval_lesion_fusion``'s cases, drawn again from its seed."""
    contrast, seed, anatomy, lesioned = spec
    if anatomy == "heads":
        head = synthetic_head(contrast, seed=seed)
        image, _, _ = add_lesions(head.image, head.truth, contrast=contrast,
                                  count=range(3, 7) if lesioned else 0, sizes_mm=(5.0, 20.0),
                                  seed=seed, avoid_k=HELD_OUT_SLAB)
        return np.asarray(image.array, np.float32)
    return np.asarray(ev.make_case(contrast, seed, anatomy, lesioned)["image"].array,
                      np.float32)


#: The shipped rule: the two networks' mean at 0.95, outlined to 0.7.
SHIPPED = fusion.RULES["mean 0.95 (shipped)"]


def mirror_source(brain: np.ndarray) -> np.ndarray:
    """For each index along the first (left-right) axis, the index it mirrors across the
    sagittal plane through the middle of the brain's extent."""
    xs = np.nonzero(brain.any(axis=(1, 2)))[0]
    return xs[0] + xs[-1] - np.arange(brain.shape[0])


def mirror(a: np.ndarray, source: np.ndarray) -> np.ndarray:
    """*a* reflected by :func:`mirror_source`'s *source*; 0 where the reflection leaves
    the volume."""
    ok = (source >= 0) & (source < a.shape[0])
    out = np.zeros_like(a)
    out[ok] = a[source[ok]]
    return out


def partner_level(mean: np.ndarray, own: np.ndarray, source: np.ndarray, r: int) -> float:
    """The highest mean lesion probability within *r* voxels of *own*'s mirror image,
    outside *own* grown by *r* voxels."""
    grown = ndimage.binary_dilation(own, _BALL, iterations=r)
    there = ndimage.binary_dilation(mirror(own, source), _BALL, iterations=r) & ~grown
    return float(mean[there].max()) if there.any() else 0.0


def pair_rule(level: float, r: int = 3) -> fusion.Rule:
    def rule(p1: np.ndarray, p2: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found, mean = SHIPPED(p1, p2, brain)
        comp, n = label(found, 26)
        source = mirror_source(brain)
        keep = [False] + [partner_level(mean, comp == i, source, r) < level
                          for i in range(1, n + 1)]
        return np.asarray(keep)[comp], mean
    return rule


def asymmetry_rows(case: dict[str, Any], image: np.ndarray) -> list[dict[str, Any]]:
    """Every lesion the shipped rule finds in the case's scored region, with its kind,
    size and intensity asymmetry."""
    p1, p2 = case["p1"].astype(np.float32), case["p2"].astype(np.float32)
    brain, gt = case["brain"], case["gt"]
    found, _ = SHIPPED(p1, p2, brain)
    found &= fusion.scored_region(case)
    comp, n = label(found, 26)
    other = mirror(image, mirror_source(brain))
    low = ndimage.minimum_filter(other, size=5)
    high = ndimage.maximum_filter(other, size=5)
    outside = np.maximum(0.0, np.maximum(low - image, image - high))
    q1, q3 = np.percentile(image[brain], [25, 75])
    near = ndimage.binary_dilation(gt, iterations=2)
    rows = []
    for i in range(1, n + 1):
        own = comp == i
        kind = "lesion" if (own & gt).any() else "false" if not (own & near).any() else "near"
        rows.append({"case": case["name"], "anatomy": case["anatomy"], "kind": kind,
                     "diameter_mm": (6 * int(own.sum()) / math.pi) ** (1 / 3),
                     "asymmetry": float(outside[own].mean() / (q3 - q1))})
    return rows


def asymmetry_markdown(rows: list[dict[str, Any]]) -> str:
    out = ["| anatomy | kind | count | asymmetry: min | 10 % | median | below 0.05 "
           "| below 0.2 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for anatomy in ("training", "held_out", "deformed", "heads"):
        for kind in ("lesion", "false"):
            v = np.array([r["asymmetry"] for r in rows
                          if r["anatomy"] == anatomy and r["kind"] == kind])
            if v.size == 0:
                out.append(f"| {anatomy} | {kind} | 0 | | | | | |")
                continue
            out.append(f"| {anatomy} | {kind} | {v.size} | {v.min():.3f} "
                       f"| {np.percentile(v, 10):.3f} | {np.median(v):.3f} "
                       f"| {int((v < 0.05).sum())} | {int((v < 0.2).sum())} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, required=True,
                    help="eval_lesion_fusion.py's cache of the networks' probabilities")
    ap.add_argument("--out", type=Path, help="write mirror.md and mirror.json here")
    args = ap.parse_args(argv)
    rules = {"mean 0.95 (shipped)": SHIPPED,
             "mean 0.95, pair 0.9 dropped": pair_rule(0.9),
             "mean 0.95, pair 0.5 dropped": pair_rule(0.5)}
    cases, rows = [], []
    for spec in fusion.specs():
        case = fusion.load_or_run(spec, args.cache)
        image = case_image(spec)
        if image.shape != case["gt"].shape:
            raise SystemExit(f"{case['name']}: drawn image {image.shape} is not the cached "
                             f"case's {case['gt'].shape}")
        rows += asymmetry_rows(case, image)
        cases.append(case)
    text = fusion.score_rules(cases, rules) + "\n" + asymmetry_markdown(rows)
    print(text)
    if args.out:
        write_report(args.out, "mirror", text, {"lesions": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
