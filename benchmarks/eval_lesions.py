"""Lesion detection against the goals of issue 14: the lesion network and the classical reference.

Run from the repository root (about 25 minutes on the 2-core development machine)::

    .venv/bin/python benchmarks/eval_lesions.py --out lesion_eval/

Every case is a fresh phantom of the MNI template (seeds never used by the
training pool; 3 % noise, 20 % INU) in one of four sequences (T1, T2, PD,
FLAIR-like), with lesions painted by :func:`engine.data.lesions.add_lesions`:

* **held-out anatomy**: lesions (2-15 mm; the slab is 20 mm thick) entirely
  inside the held-out slab k in [70, 90) (``within_k``), scored on the slab
  only -- anatomy and lesions the network never saw;
* **training anatomy**: lesions (2-30 mm) outside the slab (``avoid_k``),
  scored outside the slab -- fresh lesions and phantoms, but the anatomy the
  network was trained on;
* **lesion-free** volumes, scored on the slab (held-out) and outside it
  (training anatomy), and on the whole volume (the false positives of a whole
  scan);
* with ``--deformed N``: **held-out deformations**, N lesioned phantoms per
  sequence (3-6 lesions, 2-30 mm, anywhere in the brain) and one lesion-free
  one, each on a whole template given a shape no training run draws
  (:func:`engine.data.anatomy.held_out_anatomy`, shapes 1, 2, 3 as in
  ``eval_anatomy.py``), scored on the whole volume.

Both detectors run the way ``detect`` runs them on a skull-stripped image:
the network as ``cnn`` (the tissue network) then the ``lesions`` step; the
classical reference (:func:`engine.lesions.detect_outliers`) with the true
brain mask, as in docs/lesions.md. Sensitivity is reported by equivalent
diameter (< 3, 3-5, 5-10, >= 10 mm and >= 5 mm), with false positives per
lesion-free scan, the lesion-wise Dice (BraTS: all cases, a lesion-free case
without false positive scores 1; and the lesioned cases alone) and the CPM.

``--sweep`` also prints detection against threshold and minimum size on the
*training-anatomy* cases (with ``--ensemble``, of the mean only; then also
against the outline level at thresholds 0.9, 0.97 and ``--threshold``: how the
step's defaults were chosen; the held-out cases are never used to choose
anything). ``--heads N`` runs brain extraction, the tissue network and the
``lesions`` step on N synthetic whole heads per sequence (T1, T2, PD;
:func:`engine.data.heads.synthetic_head`, seeds 501...) with 3-6 lesions of
5-20 mm in the training anatomy, scored on the whole volume, plus one
lesion-free head per sequence (the tissue pipeline once, then each
``--lesion-model`` as the ``lesions`` step would run it). ``--tissue-pipeline
head`` runs, before the lesions step, the default pipeline's steps instead of
``cnn`` (and ``head+delineo`` on whole heads; every figure before 2026-12-07):
brain extraction, then the tissue network with a lesion output inside the
intracranial mask, whose lesion output the averaging step then takes instead
of running that network, as ``head`` does; the phantoms, skull-stripped,
then go through brain extraction too. ``--lesion-model``
evaluates another lesion network (a weights file). ``--tissue`` adds the tissue
Dice of ``cnn`` and ``cnn+lesions`` on the lesion-free volumes. ``--ensemble``
also scores the ``lesions`` step averaging the ``--lesion-model`` networks
(each later network only where the mean can still reach the threshold), checks
its lesions against the full mean of every network, and times it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import network_precision, write_report
from engine.core.device import PRECISIONS
from engine.core.metrics import confusion
from engine.data.heads import synthetic_head
from engine.data.lesions import add_lesions
from engine.data.mni import HELD_OUT_SLAB
from engine.data.phantom import FLAIR_MEANS, mni_tissue_block, synthesize_phantom
from engine.evaluation.lesionwise import evaluate_case, summarize
from engine.methods.lesion_step import (
    LESION_MODELS,
    LESION_VALUE,
    LesionParams,
    find_lesions,
    in_reach,
    reusable_output,
    threshold_lesions,
)
from engine.methods.pipeline import run_pipeline

CONTRASTS = ("t1", "t2", "pd", "flair")
BINS = (("<3 mm", 0.0, 3.0), ("3-5 mm", 3.0, 5.0), ("5-10 mm", 5.0, 10.0),
        (">=10 mm", 10.0, math.inf), (">=5 mm", 5.0, math.inf))
_BLOCK = None


def block() -> Any:
    global _BLOCK
    if _BLOCK is None:
        _BLOCK = mni_tissue_block()
    return _BLOCK


_SHAPES: dict[int, Any] = {}


def deformed(shape: int) -> Any:
    """The whole template with held-out deformation *shape* (cached)."""
    from engine.data.anatomy import held_out_anatomy

    if shape not in _SHAPES:
        _SHAPES[shape] = held_out_anatomy(shape)
    return _SHAPES[shape]


def make_case(contrast: str, seed: int, anatomy: str, lesions: bool) -> dict[str, Any]:
    """A phantom with (or without) lesions; *anatomy* 'held_out', 'training' or
    'deformed' (a held-out deformation of the whole template, shape 1 + seed % 3)."""
    means = FLAIR_MEANS if contrast == "flair" else None
    tissue = deformed(1 + seed % 3) if anatomy == "deformed" else block()
    image, truth = synthesize_phantom("t1" if contrast == "flair" else contrast, noise=0.03,
                                      inu=0.2, seed=seed, means=means, block=tissue)
    if anatomy == "held_out":
        kw = {"within_k": HELD_OUT_SLAB, "sizes_mm": (2.0, 15.0)}
    elif anatomy == "deformed":
        kw = {"sizes_mm": (2.0, 30.0)}
    else:
        kw = {"avoid_k": HELD_OUT_SLAB, "sizes_mm": (2.0, 30.0)}
    image, labels, found = add_lesions(image, truth, contrast=contrast,
                                       count=range(3, 7) if lesions else 0,
                                       seed=seed + 1, **kw)
    return {"name": f"{contrast}-{seed}{'' if lesions else '-free'}", "contrast": contrast,
            "image": image, "truth": truth, "labels": labels, "lesions": found,
            "anatomy": anatomy}


def region(shape: tuple[int, ...], where: str) -> np.ndarray:
    """Voxels scored: the slab ('held_out'), outside it ('training') or all ('whole',
    'deformed')."""
    keep = np.zeros(shape, bool)
    k0, k1 = HELD_OUT_SLAB
    if where == "held_out":
        keep[:, :, k0:k1] = True
    elif where == "training":
        keep[:] = True
        keep[:, :, k0:k1] = False
    else:
        keep[:] = True
    return keep


def score(pred_mask: np.ndarray, prob: np.ndarray | None, truth: np.ndarray, where: str,
          name: str) -> Any:
    keep = region(truth.shape, where)
    pred = np.where(keep & pred_mask, LESION_VALUE, 0).astype(np.uint8)
    gt = np.where(keep & (truth == LESION_VALUE), LESION_VALUE, 0).astype(np.uint8)
    p = None if prob is None else np.where(keep, prob, 0.0)
    return evaluate_case(pred, gt, spacing=(1.0, 1.0, 1.0), probabilities=p, name=name)


#: BraTS 2023's ground-truth volume threshold (gliomas): lesions of at most this
#: volume are left out of the second lesion-wise Dice (and predictions matching only
#: them are no false positives); the first scores every lesion.
BRATS_MIN_MM3 = 50.0


def _mean_dice(cases: list[Any], lesioned: bool) -> float:
    rows = [c.lesion_dice for c in cases if c.scored or not lesioned]
    return float(np.mean(rows)) if rows else math.nan


def table(cases: list[Any]) -> dict[str, Any]:
    s = summarize(cases)
    brats = [c.rescored(BRATS_MIN_MM3) for c in cases]
    lesions = [g for c in cases for g in c.scored]
    out = {"cases": len(cases), "lesion_free": s["n_lesion_free_cases"],
           "lesions": s["lesions"], "detected": s["detected"],
           "fp_per_lesion_free_scan": s["fp_per_lesion_free_scan"],
           "fp_per_scan": s["fp_per_scan"], "lesion_dice_all": s["lesion_dice"],
           "lesion_dice_lesioned": float(np.mean([c.lesion_dice for c in cases if c.scored]))
           if any(c.scored for c in cases) else math.nan,
           "lesion_dice_brats_all": _mean_dice(brats, False),
           "lesion_dice_brats_lesioned": _mean_dice(brats, True),
           "cpm": s["froc"]["cpm"], "by_size": {}}
    for name, lo, hi in BINS:
        rows = [g for g in lesions if lo <= g.equivalent_diameter_mm < hi]
        hit = sum(1 for g in rows if g.detected)
        dices = [g.dice for g in rows if g.detected]
        out["by_size"][name] = {"lesions": len(rows), "detected": hit,
                                "sensitivity": hit / len(rows) if rows else math.nan,
                                "dice_detected": float(np.mean(dices)) if dices else math.nan}
    return out


def fmt(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def markdown(rows: list[tuple[str, str, dict[str, Any]]]) -> str:
    head = ("| detector | anatomy | cases (lesion-free) | lesions | sens. <3 mm | sens. 3-5 mm "
            "| sens. 5-10 mm | sens. >=10 mm | **sens. >=5 mm** | **FP / lesion-free scan** "
            "| FP / scan | **lesion-wise Dice** (all / lesioned) "
            f"| lesion-wise Dice, lesions > {BRATS_MIN_MM3:g} mm³ (all / lesioned) | CPM |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for det, anat, t in rows:
        b = t["by_size"]

        def cell(key: str, b: dict[str, Any] = b) -> str:
            r = b[key]
            return f"{fmt(r['sensitivity'])} ({r['detected']}/{r['lesions']})"

        lines.append(f"| {det} | {anat} | {t['cases']} ({t['lesion_free']}) | {t['lesions']} "
                     f"| {cell('<3 mm')} | {cell('3-5 mm')} | {cell('5-10 mm')} "
                     f"| {cell('>=10 mm')} | {cell('>=5 mm')} "
                     f"| {fmt(t['fp_per_lesion_free_scan'])} | {fmt(t['fp_per_scan'])} "
                     f"| {fmt(t['lesion_dice_all'])} / {fmt(t['lesion_dice_lesioned'])} "
                     f"| {fmt(t['lesion_dice_brats_all'])} / "
                     f"{fmt(t['lesion_dice_brats_lesioned'])} | {fmt(t['cpm'])} |")
    return head + "\n".join(lines) + "\n"


def own_tissue(model: str, image: Any) -> np.ndarray | None:
    """Tissue labels of a lesion network that also outputs tissue (five classes), else None."""
    from engine.methods.cnn import cached_predictor

    pred = cached_predictor(model, "cpu")
    if len((getattr(pred, "card", {}) or {}).get("labels", {})) != 5:
        return None
    return pred.predict_array(image.array, image.spacing).labels  # its tissue labels


def tissue_dice(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    conf = confusion(labels, truth, [1, 2, 3])
    d = {"csf": conf[1].dice, "gm": conf[2].dice, "wm": conf[3].dice}
    d["mean"] = float(np.mean(list(d.values())))
    return {k: round(v, 4) for k, v in d.items()}


def ensemble_step(image: Any, tissue: Any, params: LesionParams, models: list[str],
                  mean: np.ndarray, brain: np.ndarray, args: argparse.Namespace,
                  name: str, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Lesion voxels and probability map of the lesions step averaging *models* (the
    later networks only on the slices where the mean can still reach the threshold),
    checked against the full *mean* (every network everywhere), thresholded and
    size-filtered as the step does (1 mm voxels). As in the pipeline, a network that was
    the tissue network (*info*: the tissue step's result info) is not run again: its
    output from the tissue step stands for it; then the step's lesions may differ from
    those of the full mean where the tissue step's pass (cropped from the whole image)
    and the step's own (cropped from the brain's box) differ: 2-604 voxels on 39 of 53
    cases on 2026-12-07 (docs/lesions.md)."""
    known = reusable_output(info, params, "cpu")
    labels, prob = find_lesions(image, tissue, params, device="cpu", model=models,
                                known=known)
    found = labels == LESION_VALUE
    full = threshold_lesions(mean, brain, args.threshold, args.min_size, 1.0,
                             outline=args.outline)
    if not np.array_equal(found, full):
        print(f"{'NOTE' if known else 'WARNING'} {name}: the step's lesions "
              f"({int(found.sum())} voxels) differ from those of the full mean "
              f"({int(full.sum())}) in {int((found ^ full).sum())} voxels"
              + (f" (reusing the tissue step's {', '.join(known)})" if known else ""),
              flush=True)
    return found, prob


def tissue_part(name: str, whole_head: bool) -> Any:
    """The steps before the lesions step: of ``cnn`` (``head+delineo`` on a whole head,
    brain extraction first) or of the default pipeline ``head``."""
    from engine.methods.pipeline import Pipeline, get_pipeline

    if name == "cnn":
        return get_pipeline("head+delineo" if whole_head else "cnn")
    pipe = get_pipeline(name)
    steps = tuple(s for s in pipe.steps if s.name != "lesions")
    return Pipeline(f"{name} (before lesions)", pipe.summary, steps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="write lesion_eval.json and lesion_eval.md here")
    ap.add_argument("--seeds", type=int, default=3, help="lesioned phantoms per contrast and "
                    "anatomy (default 3); lesion-free: 2 per contrast")
    ap.add_argument("--lesion-model", action="append",
                    help="lesion network: shipped name or weights file (repeatable; default: "
                    "the shipped ones, each alone and averaged as the lesions step does)")
    ap.add_argument("--threshold", type=float, default=LesionParams().min_probability)
    ap.add_argument("--min-size", type=float, default=LesionParams().min_lesion_mm3)
    ap.add_argument("--outline", type=float, default=LesionParams().outline_probability,
                    help="outline level of the lesions (hysteresis below --threshold)")
    ap.add_argument("--tta", action="store_true",
                    help="the lesions step's test-time mirroring (tta=True: the mean of the "
                    "image's and its left-right mirror's lesion probability)")
    ap.add_argument("--sweep", action="store_true",
                    help="detection vs threshold and minimum size, training anatomy only")
    ap.add_argument("--tissue", action="store_true",
                    help="tissue Dice of cnn vs cnn+lesions on the lesion-free volumes")
    ap.add_argument("--no-classical", action="store_true", help="skip the classical reference")
    ap.add_argument("--contrasts", default=",".join(CONTRASTS),
                    help="comma-separated sequences (default t1,t2,pd,flair)")
    ap.add_argument("--free", type=int, default=2,
                    help="lesion-free phantoms per contrast (default 2)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    ap.add_argument("--precision", choices=PRECISIONS,
                    help="arithmetic of the tissue and lesion networks (default: each step's "
                         "own: auto for the tissue network, float32 for the lesion network)")
    ap.add_argument("--deformed", type=int, default=0,
                    help="also N lesioned phantoms per sequence (and one lesion-free) on "
                    "held-out deformations of the whole template, scored on the whole volume")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score the mean probability of the --lesion-model networks "
                    "(thresholded and size-filtered as the lesions step does)")
    ap.add_argument("--heads", type=int, default=0,
                    help="also run head+lesions on N synthetic whole heads per sequence")
    ap.add_argument("--tissue-pipeline", choices=("cnn", "head"), default="cnn",
                    help="what runs before the lesions step: cnn (default; the tissue "
                    "network delineo, as cnn+lesions; on whole heads brain extraction first, "
                    "as head+lesions) or head (the default pipeline: brain extraction, the "
                    "tissue network with a lesion output inside the mask, whose output the "
                    "averaging step takes instead of running that network)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.lesion_model or list(LESION_MODELS)
    if args.lesion_model is None:
        args.ensemble = True  # the shipped step: both networks, and their mean
    from engine.lesions import detect_outliers

    specs = []
    for contrast in args.contrasts.split(","):
        ci = CONTRASTS.index(contrast)
        for s in range(args.seeds):
            specs.append((contrast, 7000 + 100 * ci + s, "held_out", True))
            specs.append((contrast, 8000 + 100 * ci + s, "training", True))
        for s in range(args.free):
            specs.append((contrast, 9000 + 100 * ci + s, "held_out", False))
        for s in range(args.deformed + 1 if args.deformed else 0):
            specs.append((contrast, 9500 + 100 * ci + s, "deformed", s < args.deformed))
    # the lesions step's parameters, the same for every case
    params = LesionParams(min_probability=args.threshold, min_lesion_mm3=args.min_size,
                          outline_probability=args.outline, tta=args.tta,
                          precision=args.precision or LesionParams().precision)
    results: dict[str, list[Any]] = {}
    records: list[dict[str, Any]] = []
    sweep_data: dict[str, list[Any]] = {}
    outline_data: list[Any] = []
    timing: dict[str, list[float]] = {"tissue_s": [], "classical_s": []}
    tissue_rows = []
    for contrast, seed, anatomy, lesions in specs:
        case = make_case(contrast, seed, anatomy, lesions)
        image, truth, gt = case["image"], case["truth"].array, case["labels"].array
        t0 = time.perf_counter()
        pipe = tissue_part(args.tissue_pipeline, whole_head=False)
        tissue = run_pipeline(image, pipe, device="cpu",
                              overrides=network_precision(pipe, args.precision))
        timing["tissue_s"].append(time.perf_counter() - t0)
        brain = tissue.labels.array > 0
        if anatomy == "deformed":
            wheres = ["deformed"]
        else:
            wheres = [anatomy] if lesions else ["held_out", "training", "whole"]
        net_voxels = []
        probs = []
        for model in models:
            t1 = time.perf_counter()
            labels, prob = find_lesions(image, tissue.labels, params, device="cpu",
                                        model=model)
            probs.append(prob)
            t2 = time.perf_counter()
            timing.setdefault(f"lesion_s|{model}", []).append(t2 - t1)
            net_mask = labels == LESION_VALUE
            net_voxels.append(int(net_mask.sum()))
            for where in wheres:
                results.setdefault(f"network ({model})|{where}", []).append(
                    score(net_mask, prob, gt, where, case["name"]))
            if args.sweep and not args.ensemble:  # with --ensemble: the mean only
                sweep_data.setdefault(model, []).append(
                    (prob, brain, gt, anatomy, lesions, case["name"]))
            if args.tissue and not lesions:
                row = {"case": case["name"], "model": model,
                       "cnn": tissue_dice(tissue.labels.array, truth),
                       "cnn+lesions": tissue_dice(labels, truth)}
                own = own_tissue(model, image)
                if own is not None:
                    row["own"] = tissue_dice(own, truth)
                tissue_rows.append(row)
        if args.ensemble and len(probs) > 1:
            mean = np.mean(probs, axis=0)
            t1 = time.perf_counter()
            ens, step_prob = ensemble_step(image, tissue.labels, params, models, mean, brain,
                                           args, case["name"], tissue.info)
            timing.setdefault("lesion_s|ensemble", []).append(time.perf_counter() - t1)
            net_voxels.append(int(ens.sum()))
            if args.sweep:
                sweep_data.setdefault("ensemble (mean of the networks)", []).append(
                    (mean, brain, gt, anatomy, lesions, case["name"]))
                outline_data.append((mean, probs[0], brain, gt, anatomy, lesions,
                                     case["name"]))
            for where in wheres:
                results.setdefault("network (ensemble)|" + where, []).append(
                    score(ens, step_prob, gt, where, case["name"]))
        if not args.no_classical:
            t3 = time.perf_counter()
            found = detect_outliers(image, contrast=contrast, mask=truth > 0)
            timing["classical_s"].append(time.perf_counter() - t3)
            cl_mask = found.instances > 0
            cl_prob = np.asarray(found.lesion_probability.array)
            for where in wheres:
                results.setdefault(f"classical|{where}", []).append(
                    score(cl_mask, cl_prob, gt, where, case["name"]))
        records.append({"case": case["name"], "anatomy": anatomy,
                        "lesions": [les.to_json() for les in case["lesions"]]})
        print(f"{case['name']:>14} {anatomy:>9}: {len(case['lesions'])} lesions, networks "
              f"{net_voxels} voxels; tissue {timing['tissue_s'][-1]:.1f} s", flush=True)

    for contrast in ("t1", "t2", "pd") if args.heads else ():
        for s in range(args.heads + 1):
            lesions = s < args.heads  # the last head of each sequence is lesion-free
            seed = 501 + 10 * ("t1", "t2", "pd").index(contrast) + s
            head = synthetic_head(contrast, seed=seed)
            image, gt_map, found = add_lesions(
                head.image, head.truth, contrast=contrast, count=range(3, 7) if lesions else 0,
                sizes_mm=(5.0, 20.0), seed=seed, avoid_k=HELD_OUT_SLAB)
            gt = gt_map.array
            t0 = time.perf_counter()
            # head+lesions, one lesion network after another: the lesions step sees the
            # image inside the labels of the whole-head pipeline (brain extraction, tissue)
            pipe = tissue_part(args.tissue_pipeline, whole_head=True)
            done = run_pipeline(image, pipe, device="cpu",
                                overrides=network_precision(pipe, args.precision))
            timing.setdefault("head_s", []).append(time.perf_counter() - t0)
            probs = []
            for model in models:
                labels, prob = find_lesions(image, done.labels, params, device="cpu",
                                            model=model)
                probs.append(prob)
                net_mask = labels == LESION_VALUE
                outside = int((net_mask & (gt == 0)).sum())
                results.setdefault(f"network ({model}, head+lesions)|heads", []).append(
                    score(net_mask, prob, gt, "whole", f"head-{contrast}-{seed}"))
                print(f"head {contrast}-{seed} ({model}): {len(found)} lesions, "
                      f"{int(net_mask.sum())} lesion voxels, {outside} of them outside the "
                      f"brain; brain extraction: {done.info.get('csf_contrast')} fluid",
                      flush=True)

            if args.ensemble and len(probs) > 1:
                ens, step_prob = ensemble_step(image, done.labels, params, models,
                                               np.mean(probs, axis=0), done.labels.array > 0,
                                               args,
                                               f"head-{contrast}-{seed}", done.info)
                results.setdefault("network (ensemble, head+lesions)|heads", []).append(
                    score(ens, step_prob, gt, "whole", f"head-{contrast}-{seed}"))
                print(f"head {contrast}-{seed} (ensemble): {int(ens.sum())} lesion voxels",
                      flush=True)

    rows = []
    groups = [("held_out", "held-out"), ("training", "training"), ("whole", "whole scan"),
              ("deformed", "held-out deformations")]
    ens = ["network (ensemble)"] if args.ensemble else []
    ens_heads = ["network (ensemble, head+lesions)"] if args.ensemble else []
    for det in ([f"network ({m})" for m in models] + ens + ["classical"]
                + [f"network ({m}, head+lesions)" for m in models] + ens_heads):
        for key, label in [*groups, ("heads", "whole heads")]:
            cases = results.get(f"{det}|{key}", [])
            if cases:
                rows.append((det, label, table(cases)))
    text = ("Lesion-free cases are scored on the slab (held-out), outside it (training) and "
            "on the whole volume (whole scan: lesion-free cases only).\n\n" + markdown(rows))
    text += (f"\nTime per volume (median, this machine, {torch.get_num_threads()} torch "
             "threads):")
    parts = []
    if timing["tissue_s"]:
        parts.append(f"tissue ({tissue_part(args.tissue_pipeline, False).describe()}) "
                     f"{np.median(timing['tissue_s']):.1f} s")
        parts += [f"lesion step ({m}) {np.median(timing[f'lesion_s|{m}']):.1f} s"
                  for m in models]
        if timing.get("lesion_s|ensemble"):
            parts.append(f"lesion step averaging the networks "
                         f"{np.median(timing['lesion_s|ensemble']):.1f} s")
    if timing["classical_s"]:
        parts.append(f"classical reference {np.median(timing['classical_s']):.1f} s")
    if timing.get("head_s"):
        parts.append(f"head (brain extraction, tissue) on a whole head "
                     f"{np.median(timing['head_s']):.1f} s")
    text += " " + ", ".join(parts) + "\n"
    if tissue_rows:
        text += "\nTissue Dice on the lesion-free volumes (whole volume):\n\n"
        text += ("| case | lesion network | cnn: CSF / GM / WM, mean | cnn + lesions step | "
                 "the lesion network's own tissue output |\n|---|---|---:|---:|---:|\n")

        def dices(d: dict[str, float] | None) -> str:
            if d is None:
                return "--"
            return f"{d['csf']:.4f} / {d['gm']:.4f} / {d['wm']:.4f}, **{d['mean']:.4f}**"

        for r in tissue_rows:
            text += (f"| {r['case']} | {r['model']} | {dices(r['cnn'])} | "
                     f"{dices(r['cnn+lesions'])} | {dices(r.get('own'))} |\n")
    if args.sweep:
        for m, data in sweep_data.items():
            text += f"\n{m}: " + sweep(data)
        for threshold in sorted({0.9, args.threshold, 0.97}) if outline_data else ():
            text += "\n" + outline_sweep(outline_data, threshold, args.min_size, len(models))
    print(text)
    if args.out:
        write_report(args.out, "lesion_eval", text,
                     {"rows": [{"detector": d, "anatomy": a, **t} for d, a, t in rows],
                      "timing": timing, "tissue": tissue_rows, "cases": records})
    return 0


def sweep(data: list[tuple[Any, ...]]) -> str:
    """Sensitivity and false positives against threshold and minimum size (training anatomy)."""
    lines = ["Threshold sweep, training anatomy only (lesioned cases scored outside the slab; "
             "lesion-free cases outside the slab too):\n",
             "| threshold | min size mm3 | sens. 3-5 mm | sens. >=5 mm | FP / lesion-free scan "
             "| lesion-wise Dice (lesioned) |", "|---:|---:|---:|---:|---:|---:|"]
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97):
        for min_size in (0.0, 6.0, 10.0):
            cases = []
            for prob, brain, gt, anatomy, lesions, name in data:
                if anatomy == "deformed" or (lesions and anatomy != "training"):
                    continue
                mask = threshold_lesions(prob, brain, threshold, min_size, 1.0)
                cases.append(score(mask, prob, gt, "training", name))
            t = table(cases)
            lines.append(f"| {threshold:g} | {min_size:g} | "
                         f"{fmt(t['by_size']['3-5 mm']['sensitivity'])} | "
                         f"{fmt(t['by_size']['>=5 mm']['sensitivity'])} | "
                         f"{fmt(t['fp_per_lesion_free_scan'])} | "
                         f"{fmt(t['lesion_dice_lesioned'])} |")
    return "\n".join(lines) + "\n"


def outline_sweep(data: list[tuple[Any, ...]], threshold: float, min_size: float,
                  n: int) -> str:
    """Lesion-wise Dice, detection and the second network's share of the brain's slices
    against the outline level (hysteresis below *threshold*; training anatomy only)."""
    lines = [f"Outline sweep at threshold {threshold:g}, min size {min_size:g} mm3, training "
             "anatomy only (as the threshold sweep); 'second network' is the share of the "
             "brain's axial slices the second of the networks must run on (median over the "
             "cases, lesion-free ones apart):\n",
             "| outline | sens. 3-5 mm | sens. >=5 mm | FP / lesion-free scan | lesion-wise Dice "
             "(lesioned) | Dice of found lesions 3-5 / 5-10 / >=10 mm | second network, "
             "lesioned / lesion-free |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for outline in (threshold, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5):
        if outline > threshold:
            continue
        cases, share = [], {True: [], False: []}
        for mean, first, brain, gt, anatomy, lesions, name in data:
            if anatomy == "deformed" or (lesions and anatomy != "training"):
                continue
            mask = threshold_lesions(mean, brain, threshold, min_size, 1.0, outline=outline)
            cases.append(score(mask, mean, gt, "training", name))
            # as the step decides where the second network runs
            reach = in_reach(first, brain, 1, n, threshold, outline)
            slices = brain.any(axis=(0, 1))
            share[lesions].append(reach.any(axis=(0, 1)).sum() / max(1, slices.sum()))
        t = table(cases)
        b = t["by_size"]
        lines.append(f"| {outline:g} | {fmt(b['3-5 mm']['sensitivity'])} | "
                     f"{fmt(b['>=5 mm']['sensitivity'])} | "
                     f"{fmt(t['fp_per_lesion_free_scan'])} | {fmt(t['lesion_dice_lesioned'])} | "
                     f"{fmt(b['3-5 mm']['dice_detected'])} / {fmt(b['5-10 mm']['dice_detected'])}"
                     f" / {fmt(b['>=10 mm']['dice_detected'])} | "
                     f"{float(np.median(share[True] or [math.nan])):.2f} / "
                     f"{float(np.median(share[False] or [math.nan])):.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
