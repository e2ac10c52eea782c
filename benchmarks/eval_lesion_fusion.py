"""Other ways to combine the two lesion networks than the lesions step's voxel-wise mean.

Run from the repository root (about 25 minutes on the 2-core development machine)::

    .venv/bin/python benchmarks/eval_lesion_fusion.py --cache fusion_cache/ --out fusion/

The cases are those of ``eval_lesions.py --tissue-pipeline head --deformed 2
--heads 2`` (the same seeds, phantoms and synthetic whole heads, the same
scoring; held-out anatomy, training anatomy, whole lesion-free scans,
held-out deformations, whole heads). For each case the default pipeline's
steps before the lesions step run once (brain extraction, the tissue network
``delineo_lesion_varied``, whose lesion output the step reuses), then
``delineo_lesion`` everywhere in the brain's box; both lesion probabilities
are kept (``--cache``: one ``.npz`` per case, so that the rules can be scored
again without running the networks). Then each rule is scored:

* ``mean t``: the step's rule (a voxel-wise mean of at least *t*, outlined to
  0.7); ``mean 0.95`` is the shipped default and reproduces its figures;
* ``consensus hi/lo``: candidates are the pieces of the voxel-wise *maximum*
  of the two at or above 0.8 that hold a voxel of at least *hi* (one network
  sure somewhere); a candidate is a lesion when the other network also
  reaches *lo* somewhere in it (the smaller of the two networks' maxima over
  the piece is at least *lo*): agreement on the candidate, not voxel by voxel.

It also lists, for every ground-truth lesion of 5 mm and more and every false
candidate of either network (a 26-connected piece of the maximum at or above
0.8 that is not within 2 voxels of a lesion), each network's highest
probability inside it: whether a rule on the two probabilities can separate
the lesions the step misses from the false findings it keeps.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import eval_lesions as ev
from benchmarks.common import write_report
from engine.core.morphology import label
from engine.data.heads import synthetic_head
from engine.data.lesions import add_lesions
from engine.data.mni import HELD_OUT_SLAB
from engine.methods.lesion_step import (
    LESION_MODELS,
    NETWORK_LESION_KEY,
    LesionParams,
    find_lesions,
    threshold_lesions,
)
from engine.methods.pipeline import run_pipeline

GROUPS = ("training", "held_out", "whole", "deformed", "heads")
Rule = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def specs() -> list[tuple[str, int, str, bool]]:
    """``(contrast, seed, anatomy, lesioned)`` of eval_lesions' cases at its defaults with
    ``--deformed 2 --heads 2`` (anatomy 'heads': a synthetic whole head)."""
    out = []
    for ci, contrast in enumerate(ev.CONTRASTS):
        for s in range(3):
            out.append((contrast, 7000 + 100 * ci + s, "held_out", True))
            out.append((contrast, 8000 + 100 * ci + s, "training", True))
        for s in range(2):
            out.append((contrast, 9000 + 100 * ci + s, "held_out", False))
        for s in range(3):
            out.append((contrast, 9500 + 100 * ci + s, "deformed", s < 2))
    for ci, contrast in enumerate(("t1", "t2", "pd")):
        for s in range(3):
            out.append((contrast, 501 + 10 * ci + s, "heads", s < 2))
    return out


def run_case(contrast: str, seed: int, anatomy: str, lesioned: bool) -> dict[str, Any]:
    """Both networks' lesion probabilities on one case, as the default pipeline runs them."""
    if anatomy == "heads":
        head = synthetic_head(contrast, seed=seed)
        image, gt_map, _ = add_lesions(head.image, head.truth, contrast=contrast,
                                       count=range(3, 7) if lesioned else 0,
                                       sizes_mm=(5.0, 20.0), seed=seed, avoid_k=HELD_OUT_SLAB)
        name, gt = f"head-{contrast}-{seed}", gt_map.array
    else:
        case = ev.make_case(contrast, seed, anatomy, lesioned)
        image, gt = case["image"], case["labels"].array
        name = case["name"] + ("-def" if anatomy == "deformed" else "")
    tissue = run_pipeline(image, ev.tissue_part("head", whole_head=anatomy == "heads"),
                          device="cpu")
    if tissue.info.get("model") != LESION_MODELS[1]:
        raise SystemExit(f"the default pipeline's tissue network is {tissue.info.get('model')}, "
                         f"not {LESION_MODELS[1]}: this benchmark needs updating")
    _, p1 = find_lesions(image, tissue.labels, LesionParams(), device="cpu",
                         model=LESION_MODELS[0])
    return {"name": name, "anatomy": anatomy, "lesioned": lesioned,
            "p1": p1.astype(np.float16),
            "p2": np.asarray(tissue.info[NETWORK_LESION_KEY], np.float16),
            "brain": tissue.labels.array > 0, "gt": gt == ev.LESION_VALUE}


def load_or_run(spec: tuple[str, int, str, bool], cache: Path | None) -> dict[str, Any]:
    contrast, seed, anatomy, lesioned = spec
    path = None if cache is None else cache / f"{contrast}-{seed}-{anatomy}.npz"
    if path is not None and path.is_file():
        z = np.load(path)
        return {"name": str(z["name"]), "anatomy": anatomy, "lesioned": lesioned,
                **{k: z[k] for k in ("p1", "p2", "brain", "gt")}}
    t0 = time.perf_counter()
    case = run_case(*spec)
    print(f"{case['name']:>18} {anatomy:>9}: {time.perf_counter() - t0:.1f} s", flush=True)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **case)
    return case


def mean_rule(t: float) -> Rule:
    def rule(p1: np.ndarray, p2: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = (p1.astype(np.float32) + p2) / 2
        return threshold_lesions(mean, brain, t, 0.0, 1.0, outline=0.7), mean
    return rule


def consensus_rule(hi: float, lo: float, outline: float = 0.8) -> Rule:
    def rule(p1: np.ndarray, p2: np.ndarray, brain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p1, p2 = p1.astype(np.float32), p2.astype(np.float32)
        pieces = threshold_lesions(np.maximum(p1, p2), brain, hi, 0.0, 1.0, outline=outline)
        comp, n = label(pieces, 26)
        if n == 0:
            return pieces, np.zeros(p1.shape, np.float32)
        index = np.arange(1, n + 1)
        agree = np.minimum(ndimage.maximum(p1, comp, index), ndimage.maximum(p2, comp, index))
        keep = np.concatenate([[False], agree >= lo])
        score = np.concatenate([[0.0], agree]).astype(np.float32)
        return keep[comp], score[comp]  # confidence: the weaker network's maximum
    return rule


RULES: dict[str, Rule] = {
    "mean 0.9": mean_rule(0.9),
    "mean 0.95 (shipped)": mean_rule(0.95),
    **{f"consensus {hi:g}/{lo:g}": consensus_rule(hi, lo)
       for hi, lo in ((0.95, 0.8), (0.95, 0.9), (0.99, 0.9), (0.99, 0.95))},
}


def wheres(case: dict[str, Any]) -> list[str]:
    if case["anatomy"] in ("deformed", "heads"):
        return [case["anatomy"]]
    return [case["anatomy"]] if case["lesioned"] else ["held_out", "training", "whole"]


def scored_region(case: dict[str, Any]) -> np.ndarray:
    """Where a case's pieces are listed: the slab or outside it for a lesioned phantom,
    the whole volume otherwise."""
    lesioned_phantom = case["lesioned"] and case["anatomy"] in ("held_out", "training")
    return ev.region(case["gt"].shape, case["anatomy"] if lesioned_phantom else "whole")


def score_rules(cases: list[dict[str, Any]], rules: dict[str, Rule] | None = None) -> str:
    """A Markdown table of each rule's lesion-wise figures by anatomy (*rules*: default
    :data:`RULES`)."""
    lines = ["| rule | anatomy | sens. 3-5 mm | **sens. >= 5 mm** | **FP / lesion-free scan** "
             "| lesion-wise Dice (all) | CPM |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, rule in (RULES if rules is None else rules).items():
        res: dict[str, list[Any]] = {g: [] for g in GROUPS}
        for case in cases:
            mask, prob = rule(case["p1"], case["p2"], case["brain"])
            gt = np.where(case["gt"], ev.LESION_VALUE, 0).astype(np.uint8)
            for w in wheres(case):
                res[w].append(ev.score(mask, prob, gt, "whole" if w in ("deformed", "heads")
                                      else w, case["name"]))
        for g in GROUPS:
            if not res[g]:
                continue
            t = ev.table(res[g])
            b = t["by_size"]
            cell = [f"{ev.fmt(b[k]['sensitivity'])} ({b[k]['detected']}/{b[k]['lesions']})"
                    for k in ("3-5 mm", ">=5 mm")]
            lines.append(f"| {name} | {g} | {cell[0]} | {cell[1]} | "
                         f"{ev.fmt(t['fp_per_lesion_free_scan'])} | {ev.fmt(t['lesion_dice_all'])} "
                         f"| {ev.fmt(t['cpm'])} |")
    return "\n".join(lines) + "\n"


def pieces(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every scored ground-truth lesion and every false candidate, with both networks'
    highest probability inside it and whether the shipped rule finds it."""
    rows = []
    shipped = RULES["mean 0.95 (shipped)"]
    for case in cases:
        keep = scored_region(case)
        gt = case["gt"] & keep
        p1, p2 = case["p1"].astype(np.float32), case["p2"].astype(np.float32)
        found = shipped(p1, p2, case["brain"])[0] & keep
        # ground-truth lesions merged as the lesion-wise evaluation merges them
        merged, n = label(ndimage.binary_dilation(gt, ndimage.generate_binary_structure(3, 2)),
                          26)
        merged = np.where(gt, merged, 0)
        near = ndimage.binary_dilation(gt, iterations=2)
        candidates, m = label(threshold_lesions(np.maximum(p1, p2), case["brain"], 0.8, 0.0,
                                                1.0) & keep, 26)
        for kind, comp, count in (("lesion", merged, n), ("false", candidates, m)):
            for i in range(1, count + 1):
                inside = comp == i
                if not inside.any() or (kind == "false" and (inside & near).any()):
                    continue
                rows.append({"case": case["name"], "anatomy": case["anatomy"], "kind": kind,
                             "diameter_mm": (6 * int(inside.sum()) / math.pi) ** (1 / 3),
                             "p1": float(p1[inside].max()), "p2": float(p2[inside].max()),
                             "found": bool((found & ndimage.binary_dilation(inside)).any())})
    return rows


def pieces_markdown(rows: list[dict[str, Any]]) -> str:
    """The lesions of >= 5 mm the shipped rule misses and the false candidates, by how
    sure each network is."""
    missed = [r for r in rows if r["kind"] == "lesion" and r["diameter_mm"] >= 5
              and not r["found"]]
    false = [r for r in rows if r["kind"] == "false"]
    found_lesions = [r for r in rows if r["kind"] == "lesion" and r["diameter_mm"] >= 5
                     and r["found"]]
    out = ["| piece | count | both >= 0.9 | one >= 0.9, other 0.5-0.9 | one >= 0.9, other "
           "< 0.5 | neither >= 0.9 |", "|---|---:|---:|---:|---:|---:|"]
    for title, group in (("lesions >= 5 mm found", found_lesions),
                         ("lesions >= 5 mm missed", missed),
                         ("false candidates kept", [r for r in false if r["found"]]),
                         ("false candidates dropped", [r for r in false if not r["found"]])):
        hi = [max(r["p1"], r["p2"]) for r in group]
        lo = [min(r["p1"], r["p2"]) for r in group]
        both = sum(a >= 0.9 and b >= 0.9 for a, b in zip(hi, lo, strict=True))
        mid = sum(a >= 0.9 and 0.5 <= b < 0.9 for a, b in zip(hi, lo, strict=True))
        low = sum(a >= 0.9 and b < 0.5 for a, b in zip(hi, lo, strict=True))
        out.append(f"| {title} | {len(group)} | {both} | {mid} | {low} "
                   f"| {sum(a < 0.9 for a in hi)} |")
    out += ["", "Lesions of 5 mm and more the shipped rule misses (highest probability inside "
            "the lesion):", "", f"| case | anatomy | diameter (mm) | {LESION_MODELS[0]} "
            f"| {LESION_MODELS[1]} |", "|---|---|---:|---:|---:|"]
    out += [f"| {r['case']} | {r['anatomy']} | {r['diameter_mm']:.1f} | {r['p1']:.3f} "
            f"| {r['p2']:.3f} |" for r in missed]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, help="keep (and reuse) both networks' lesion "
                    "probabilities here, one .npz per case")
    ap.add_argument("--out", type=Path, help="write fusion.md and fusion.json here")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = [load_or_run(spec, args.cache) for spec in specs()]
    text = score_rules(cases)
    rows = pieces(cases)
    text += "\n" + pieces_markdown(rows)
    print(text)
    if args.out:
        write_report(args.out, "fusion", text, {"pieces": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
