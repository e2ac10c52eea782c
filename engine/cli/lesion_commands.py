"""Sub-commands ``detect`` (lesions and their findings) and ``train-lesions``.

``delineo-engine detect IMAGE --out DIR [--pipeline NAME] [--param STEP.NAME=VALUE ...]
[--device D] [--series S] [--force] [--json]`` runs a lesion pipeline
(default ``head``, the default pipeline: brain extraction, the tissue network
with a lesion output, the largest brain component, then the lesion networks;
``head+lesions`` has the tissue network ``delineo`` instead, ``cnn+lesions``
skips brain extraction for an image already skull-stripped) and writes

* ``DIR/lesions.nii.gz``: lesion instances ``1..N`` (by decreasing volume) on
  the input's grid, in the input file's orientation;
* ``DIR/labels.nii.gz``: the tissue labels with 4 ("Lesion") in every lesion;
* ``DIR/findings.json`` and ``DIR/findings.csv``: one entry per lesion
  (:func:`engine.lesions.measure.write_findings`): centroid (voxel and world
  mm), volume, the RANO diameters, the 3-D diameter, mean intensity and
  contrast against the surrounding tissue, the tissue it lies in and a
  confidence 0-1 (the mean lesion probability of the networks inside it).

``delineo-engine train-lesions --out DIR --steps N [...]`` trains the lesion
network (:mod:`engine.models.lesion_training`) and writes
``DIR/<name>.safetensors`` with its model card.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

import numpy as np

from ..core.errors import ParameterError
from .common import (
    add_device,
    add_json,
    add_output_folder,
    add_series,
    check_output_folder,
    choice,
    owned_folder,
    print_json,
    say,
    series_value,
)
from .progress import ProgressBar

#: The pipeline ``detect`` runs when none is named: the default pipeline, which
#: ends in the lesions step.
DEFAULT_DETECT_PIPELINE = "head"


def register(sub: argparse._SubParsersAction) -> None:
    from .method_commands import add_force

    p = sub.add_parser(
        "detect",
        help="find brain lesions: an instance map and the findings (JSON, CSV)",
        description="Find lesions in a brain MR image and measure them. Runs a lesion "
        f"pipeline (default '{DEFAULT_DETECT_PIPELINE}', the default pipeline: brain "
        "extraction, tissue by a network with a lesion output, then the two lesion "
        "networks averaged; it takes whole heads and skull-stripped images) "
        "and writes "
        "DIR/lesions.nii.gz (lesion instances 1..N by decreasing volume, on the input's grid "
        "and in the input file's orientation), DIR/labels.nii.gz (tissue labels with 4 = "
        "lesion), DIR/findings.json and DIR/findings.csv (per lesion: centroid in voxels "
        "and world mm, volume, longest axial diameter and the perpendicular one, 3-D "
        "diameter, mean intensity, contrast against the surrounding tissue, tissue, "
        "confidence 0-1). The lesion networks were trained on synthetic lesions only "
        "(docs/lesions.md).",
    )
    p.add_argument("image", help="input image: NIfTI, DICOM file or folder, NRRD or MGH file")
    add_output_folder(p, "output folder (created if missing)")
    p.add_argument("--pipeline", default=DEFAULT_DETECT_PIPELINE,
                   help=f"a pipeline that ends in the lesions step (default "
                   f"{DEFAULT_DETECT_PIPELINE}; head+lesions: the tissue network delineo; "
                   "cnn+lesions for a skull-stripped image without brain extraction)")
    p.add_argument("--param", action="append", default=[], metavar="STEP.NAME=VALUE",
                   help="set a step's parameter (repeatable), e.g. lesions.min_probability=0.6")
    add_device(p)
    add_force(p)
    add_series(p, "IMAGE")
    add_json(p, "a summary (outputs, lesions with their main measurements, timings, "
             "warnings)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser(
        "train-lesions",
        help="train the lesion network on synthetic lesions",
        description="Train the lesion network (engine.models.lesion_training): a pool of "
        "synthetic phantoms with synthetic lesions (never in the held-out slab k in "
        "[70, 90), which is cut out of every pool volume), then 2.5-D patches drawn from it "
        "with fresh augmentation. Writes DIR/<name>.safetensors, its JSON model card and "
        "DIR/checkpoint.safetensors (for --resume).",
    )
    add_output_folder(p, "output folder (created if missing)")
    p.add_argument("--steps", type=int, required=True, help="optimiser steps (at least 1)")
    p.add_argument("--classes", default=None,
                   type=choice("classes", ("lesion", "tissue+lesion")),
                   metavar="{lesion,tissue+lesion}",
                   help="outputs: background/lesion (a dedicated network; default) or "
                   "background/CSF/GM/WM/lesion (the tissue network with a lesion output)")
    p.add_argument("--init", help="start from these shipped weights (e.g. delineo)")
    p.add_argument("--base", type=int, help="channels of the first stage (default 8)")
    p.add_argument("--batch-size", type=int, help="patches per step (default 16)")
    p.add_argument("--pool-volumes", type=int, help="pool volumes (default 64)")
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-3)")
    p.add_argument("--lesion-free-fraction", type=float,
                   help="share of pool volumes without any lesion (default 0.25)")
    p.add_argument("--lesion-fraction", type=float,
                   help="share of patches centred on a lesion, in volumes with lesions "
                   "(default 0.5)")
    p.add_argument("--head-fraction", type=float,
                   help="share of pool volumes that are synthetic whole heads seen through a "
                   "perturbed brain mask (default 0)")
    p.add_argument("--anatomy", default=None, type=choice("anatomy", ("template", "varied")),
                   metavar="{template,varied}",
                   help="pool phantoms on the template (default) or, for three of four, on a "
                   "new 3-D shape of it (rotation, scaling, asymmetry, elastic warp, enlarged "
                   "ventricles, atrophy; each block outside the held-out slab varied alone)")
    p.add_argument("--varied-share", type=float,
                   help="with --anatomy varied: share of the pool phantoms on a new shape "
                   "(default 0.75)")
    p.add_argument("--head-contrasts", default=None, type=_head_contrasts, metavar="SEQ,...",
                   help="sequences of the whole heads, drawn uniformly, e.g. t1,t2,pd,flair "
                   "(default t1,t2,pd)")
    p.add_argument("--pool-contrasts", default=None, type=_contrast_shares,
                   metavar="SEQ=SHARE,...",
                   help="sequence shares of the pool phantoms, e.g. "
                   "t1=0.3,t2=0.2,pd=0.15,flair=0.35 (default t1=0.35,t2=0.25,pd=0.2,"
                   "flair=0.2; normalised)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--name", help="name of the weights file (default lesion)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint")
    add_device(p)
    p.add_argument("--toy", action="store_true", help=argparse.SUPPRESS)
    add_json(p, "a final summary (weights, parameters, steps, seconds)")
    p.set_defaults(func=cmd_train_lesions)


# ---------------------------------------------------------------------------
# train-lesions
# ---------------------------------------------------------------------------
def _contrast_shares(text: str) -> dict[str, float]:
    """``t1=0.3,flair=0.35`` -> a dict of sequence shares (checked by the config)."""
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.strip().partition("=")
        try:
            out[name.strip().lower()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"{item!r}: expected SEQUENCE=SHARE, "
                                             "e.g. flair=0.35")
    return out


def _head_contrasts(text: str) -> tuple[str, ...]:
    """``t1,t2,pd,flair`` -> the head sequences in the default's order (checked by the config)."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected sequences, e.g. t1,t2,pd,flair")
    order = ("pd", "t1", "t2")  # the shipped recipe's order: its pool stays the same
    return tuple(sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n)))


def _lesion_config(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from ..models.lesion_training import LesionTrainConfig, lesion_checkpoint_config

    if args.resume:
        ckpt = Path(args.out) / "checkpoint.safetensors"
        if not ckpt.is_file():
            raise ParameterError(f"--resume: no checkpoint in {args.out}")
        base = lesion_checkpoint_config(ckpt)
    else:
        base = LesionTrainConfig()
        if args.classes == "tissue+lesion":  # the tissue network's own architecture
            base.model_args = {"base": 16, "skip_channels": 16}
    model_args = dict(base.model_args)
    if args.base is not None:
        if args.base < 1:
            raise ParameterError(f"--base {args.base} must be at least 1")
        model_args = {"base": args.base, "skip_channels": args.base}
    values = {"classes": args.classes, "init": args.init, "batch_size": args.batch_size,
              "pool_volumes": args.pool_volumes, "lr": args.lr, "seed": args.seed,
              "name": args.name, "lesion_free_fraction": args.lesion_free_fraction,
              "lesion_fraction": args.lesion_fraction, "head_fraction": args.head_fraction,
              "anatomy": args.anatomy, "pool_contrasts": args.pool_contrasts,
              "varied_share": args.varied_share, "head_contrasts": args.head_contrasts}
    config = LesionTrainConfig(**{**base.__dict__, "model_args": model_args,
                                  "steps": args.steps, "device": args.device,
                                  "threads": args.threads})
    for key, value in values.items():
        if value is not None:
            setattr(config, key, value)
    if args.threads < 0:
        raise ParameterError("--threads must be 0 or more")
    return config.validated()


def cmd_train_lesions(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..models.lesion_training import train_lesion

    config = _lesion_config(args)
    resolve_device(config.device)
    out = check_output_folder(args.out)
    command = "delineo-engine " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with owned_folder(out, keep_files=True), ProgressBar(f"train {config.name}") as bar:
        card = train_lesion(config, out, resume=args.resume, command=command, toy=args.toy,
                            progress=bar)
    weights = out / f"{config.name}.safetensors"
    summary = {"weights": weights, "card": weights.with_suffix(".json"),
               "checkpoint": out / "checkpoint.safetensors", "parameters": card["parameters"],
               "steps": card["training"]["steps"],
               "seconds": card["training"]["seconds_this_run"],
               "pool_seconds": card["training"]["pool_seconds"],
               "loss_last_smoothed": card["training"]["loss_last_smoothed"]}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {weights} ({card['parameters']} parameters, "
              f"{card['training']['steps']} steps, {summary['seconds']:.0f} s)")
    return 0


# ---------------------------------------------------------------------------
# detect
# ---------------------------------------------------------------------------
def _lesion_pipeline(name: str) -> Any:
    from ..methods.pipeline import get_pipeline

    pipe = get_pipeline(name)
    if not any(step.name == "lesions" for step in pipe.steps):
        raise ParameterError(f"pipeline {pipe.name} finds no lesions; detect needs one with "
                             "a lesions step (head, head+lesions, cnn+lesions)")
    return pipe


def instance_map(volume: Any, instances: np.ndarray) -> Any:
    """The instance map as a label map on *volume*'s grid: 0 background, ``i`` "Lesion i"."""
    from ..core.volume import BRAIN_LESION_LABELS, Label, LabelMap, LabelTable

    n = int(instances.max()) if instances.size else 0
    colour = BRAIN_LESION_LABELS.color(4)
    table = LabelTable.from_labels([Label(0, "Background", (0, 0, 0))]
                                   + [Label(i, f"Lesion {i}", colour)
                                      for i in range(1, n + 1)])
    dtype = np.uint8 if n < 256 else np.uint16
    out = LabelMap.on_grid_of(volume, instances.astype(dtype), labels=table)
    out.metadata["description"] = f"Delineo lesion instances (1..{n}, by decreasing volume)"
    return out


def cmd_detect(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..core.volume import BRAIN_LESION_LABELS, LabelMap
    from ..io import load, save
    from ..lesions.measure import lesion_instances, measure_lesions, write_findings
    from ..methods.lesion_step import findings_source
    from ..methods.pipeline import run_pipeline
    from .method_commands import guard_applicability, pipeline_overrides

    pipe = _lesion_pipeline(args.pipeline)
    overrides = pipeline_overrides(pipe, args.param)
    device = resolve_device(args.device)
    out = check_output_folder(args.out)
    volume = load(args.image, series=series_value(args.series))
    warnings = guard_applicability(volume, pipe, force=bool(args.force))
    with ProgressBar(pipe.name) as bar:
        done = run_pipeline(volume, pipe, device=str(device), overrides=overrides,
                            progress=bar)
    t0 = time.perf_counter()
    labels = LabelMap.on_grid_of(volume, done.labels.array, labels=BRAIN_LESION_LABELS)
    labels.metadata["pipeline"] = done.pipeline
    labels.metadata["pipeline_description"] = done.description
    if warnings:
        labels.metadata["warnings"] = list(warnings)
    instances = lesion_instances(labels)
    probability = done.info.get("lesion_probability")
    findings = measure_lesions(instances, volume, tissue=labels, probability=probability)
    measure_seconds = time.perf_counter() - t0
    inst_map = instance_map(volume, instances)
    if warnings:
        inst_map.metadata["warnings"] = list(warnings)
    with owned_folder(out):
        out.mkdir(parents=True, exist_ok=True)
        paths = {"lesions": save(inst_map, out / "lesions.nii.gz"),
                 "labels": save(labels, out / "labels.nii.gz")}
        paths["findings_json"], paths["findings_csv"] = write_findings(
            findings, out, source=findings_source(args.image, done))
    seconds = done.seconds + (time.perf_counter() - t0)
    steps = [{"name": s.name, "seconds": round(s.seconds, 3)} for s in done.steps]
    summary = {
        "input": args.image, "pipeline": done.pipeline, "description": done.description,
        "outputs": paths, "device": str(device), "seconds": round(seconds, 3),
        "steps": steps, "measure_seconds": round(measure_seconds, 3),
        "peak_rss_bytes": done.peak_rss_bytes, "warnings": list(warnings),
        "n_lesions": len(findings),
        "lesions": [{"id": f.id, "volume_ml": f.volume_ml,
                     "axial_diameter_mm": f.axial_diameter_mm,
                     "perpendicular_diameter_mm": f.perpendicular_diameter_mm,
                     "world_centroid_mm": f.world_centroid_mm, "tissue": f.tissue,
                     "confidence": f.confidence} for f in findings],
    }
    if args.json:
        print_json(summary)
        return 0
    say(f"{done.description}: " + "; ".join(f"{s['name']} {s['seconds']:.1f} s"
                                             for s in steps)
        + f"; measuring {measure_seconds:.1f} s")
    if not findings:
        print(f"no lesion found; wrote {out}")
        return 0
    print(f"{len(findings)} lesion(s); wrote {paths['lesions']} and {paths['findings_csv']}")
    for f in findings:
        conf = "" if f.confidence is None else f", confidence {f.confidence:.2f}"
        print(f"  {f.id}: {f.volume_ml * 1000:.0f} mm3, {f.axial_diameter_mm:.1f} x "
              f"{f.perpendicular_diameter_mm:.1f} mm, {f.tissue or 'tissue unknown'}{conf}")
    return 0
