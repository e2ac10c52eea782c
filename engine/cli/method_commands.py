"""Sub-commands ``segment`` and ``methods``.

``delineo-engine segment IMAGE -o OUT.nii.gz [--method NAME | --pipeline NAME]
[--param k=v ...] [--device auto|cpu|cuda] [--mask BRAINMASK] [--brain-mask FILE]
[--series S] [--force] [--json]`` runs a registered method, a named pipeline of
:mod:`engine.methods.pipeline`, or -- with neither -- the default pipeline
(:data:`~engine.methods.pipeline.DEFAULT_PIPELINE`, ``head``: brain extraction,
then the network inside the intracranial mask, then lesions, for a whole head as
it comes off the scanner), and writes its label map (0 background, 1 CSF, 2 GM,
3 WM, 4 lesion where a pipeline finds lesions -- the default does, and says how
many; ``--method brain_mask``: 1 intracranial) on the input's grid: the labels land voxel
for voxel on the input file, in its own orientation. With a pipeline the
``--param`` assignments are ``STEP.NAME=VALUE`` (or ``NAME=VALUE`` when only
one step has that parameter). Names, parameters, the device and the output
name are checked before the image is read. An image outside what the method
or pipeline was made for (:mod:`engine.methods.applicability`: CT, a single
slice, a field of view that is no head, ...) stops with exit status 3 before
any computation; ``--force`` runs anyway and records the reasons as
``"warnings"`` in the ``--json`` summary and in the label file itself (a
header extension and the NIfTI description, read back by every Delineo
command, e.g. ``export`` puts them into a DICOM SEG's series description).

Every result gets a plausibility report
(:mod:`engine.evaluation.plausibility`): the network's uncertainty, tissue
volumes against wide adult ranges, labels without signal, and a one-line
verdict -- "looks typical" or "review this" -- printed on stderr, kept in the
label file and in ``--json``; ``--uncertainty FILE`` writes the voxel
uncertainty map.

``delineo-engine methods`` lists the methods and their parameters;
``delineo-engine models`` says what each shipped network was trained on.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.errors import ParameterError
from ..core.params import describe, parse_assignments
from ..core.volume import INTRACRANIAL_LABELS, LabelMap, Volume
from ..io import load, load_labels, save
from ..methods.pipeline import DEFAULT_PIPELINE
from .common import (
    add_device,
    add_json,
    add_output_file,
    add_series,
    check_output_file,
    print_json,
    say,
    series_value,
    warn,
)
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment an image into CSF/GM/WM (and lesions) with a method or a pipeline",
        description="Run a segmentation method (--method) or pipeline (--pipeline; "
        f"without either, the default pipeline '{DEFAULT_PIPELINE}') on an image and write "
        "its label map (0 background, 1 CSF, 2 GM, 3 WM, 4 lesion) on the input's grid, in "
        "the input file's orientation. The default pipeline takes a whole head as it comes "
        "off the scanner: it extracts the brain (the intracranial mask) first, labels "
        "tissue only inside it and marks possible lesions (4; networks trained on "
        "synthetic lesions: review them, 'detect' measures them; --pipeline head+delineo "
        "for tissue alone); --method brain_mask writes that mask alone (1 = intracranial). "
        "Methods and pipelines without brain extraction need a skull-stripped image or "
        "--mask (else they use a rough half-Otsu foreground mask). Names, --param values, "
        "the device and the output names are checked before the image is read.",
    )
    p.add_argument("image", help="input image: NIfTI, DICOM file or folder, NRRD or MGH file")
    add_output_file(p, "output label map (.nii or .nii.gz; its folder must exist)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--method", help="method name (see 'delineo-engine methods')")
    what.add_argument("--pipeline",
                      help=f"pipeline name (default: {DEFAULT_PIPELINE}; "
                      "see 'delineo-engine pipelines --params')")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter (repeatable); with a pipeline write STEP.NAME=VALUE, "
                   "or NAME=VALUE when a single step has that parameter")
    add_device(p)
    p.add_argument("--mask", help="brain mask on the image's grid (non-zero = brain)")
    p.add_argument("--brain-mask", dest="brain_mask_out", metavar="FILE",
                   help="also write the intracranial mask found by brain extraction (NIfTI, "
                   "1 = intracranial) on the input's grid; only for pipelines that extract "
                   "the brain (the default one)")
    add_force(p)
    p.add_argument("--uncertainty", metavar="FILE",
                   help="also write the voxel uncertainty (normalised entropy of the "
                   "network's class probabilities, 0-1) as NIfTI on the input's grid")
    add_series(p, "IMAGE")
    add_json(p, "a summary (output, labels with voxel counts and volumes, runtime, warnings, "
             "plausibility)")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser(
        "methods",
        help="list the segmentation methods and their parameters",
        description="List every registered method: kind, summary and parameters with "
        "default, unit, valid range and description.",
    )
    add_json(p, "the methods")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser(
        "models",
        help="what each shipped network was trained on (its model card, in plain words)",
        description="For every shipped network: what it segments, its input, the data it "
        "was trained on (synthetic phantoms of one anatomy, the MNI152 template), what was "
        "held out, how it was trained and its validation figures on the training anatomy.",
    )
    add_json(p, "the model cards as shipped")
    p.set_defaults(func=cmd_models)


def pipeline_overrides(pipeline: Any, assignments: Sequence[str]) -> dict[int, dict[str, Any]]:
    """``{step index: {name: value}}`` from ``STEP.NAME=VALUE`` / ``NAME=VALUE`` strings.

    ``STEP`` is a step name of the pipeline or its 1-based position; a bare
    ``NAME`` must belong to exactly one step. Values are parsed and checked
    against the step's parameter ranges.
    """
    steps = list(pipeline.steps)
    names = {i: {info.name for info in describe(s.spec().params_type)}
             for i, s in enumerate(steps)}
    per_step: dict[int, list[str]] = {}
    for item in assignments:
        if "=" not in item:
            raise ParameterError(f"parameter {item!r} must be written as STEP.NAME=VALUE")
        key, _, value = item.partition("=")
        key = key.strip()
        if "." in key:
            step_key, _, name = key.rpartition(".")
            if step_key.isdigit() and 1 <= int(step_key) <= len(steps):
                index = int(step_key) - 1
            else:
                hits = [i for i, s in enumerate(steps) if s.name == step_key]
                if not hits:
                    raise ParameterError(
                        f"pipeline {pipeline.name} has no step {step_key!r}; its steps: "
                        + ", ".join(s.name for s in steps))
                index = hits[0]
        else:
            name = key
            hits = [i for i, known in names.items() if name in known]
            if len(hits) != 1:
                where = ("no step has" if not hits else
                         "several steps have (" + ", ".join(steps[i].name for i in hits) + ")")
                raise ParameterError(
                    f"{where} a parameter {name!r}; write STEP.{name}=VALUE "
                    f"(see 'delineo-engine pipelines --params')")
            index = hits[0]
        per_step.setdefault(index, []).append(f"{name}={value}")
    overrides: dict[int, dict[str, Any]] = {}
    for index, items in per_step.items():
        params_type = steps[index].spec().params_type
        keys = [item.partition("=")[0] for item in items]
        parsed = parse_assignments(params_type, items)
        overrides[index] = {k: getattr(parsed, k) for k in keys}
    return overrides


def add_force(p: argparse.ArgumentParser) -> None:
    """``--force``: run a method outside its declared use (the reasons become warnings)."""
    p.add_argument("--force", action="store_true",
                   help="run even when the image is outside what the method or pipeline "
                   "was made for (MR head, 0.5-3 mm voxels, 100-400 mm field of view, "
                   "a 3-D volume); the reasons are recorded as warnings")


def guard_applicability(volume: Volume, spec: Any, *, force: bool) -> list[str]:
    """Reasons *spec* does not fit *volume*; raise unless *force* (then they are warnings).

    Raises :class:`~engine.methods.applicability.NotApplicableError` (exit 3)
    with the reasons on one line, before any computation.
    """
    from ..methods.applicability import check_applicability, refusal

    reasons = check_applicability(volume, spec)
    if reasons and not force:
        raise refusal(reasons, "--force")
    for reason in reasons:
        warn(reason)
    return reasons


def plausibility(labels: LabelMap, probabilities: np.ndarray | None, image: Volume) -> Any:
    """The plausibility report of a result (see :mod:`engine.evaluation.plausibility`)."""
    from ..evaluation.plausibility import assess

    if probabilities is not None and probabilities.shape[1:] != labels.shape:
        probabilities = None
    return assess(labels, probabilities, image)


def save_uncertainty(image: Volume, probabilities: np.ndarray | None, path: Any) -> Any:
    """Write the voxel uncertainty map on *image*'s grid; refuse without probabilities."""
    from ..core.errors import DelineoError
    from ..evaluation.plausibility import uncertainty_map

    if probabilities is None:
        raise DelineoError("--uncertainty needs class probabilities, and this method gives "
                           "none (the networks and pipelines that start with one do)")
    umap = image.with_array(uncertainty_map(probabilities), modality="UNCERTAINTY")
    umap.metadata = {"description": "Delineo voxel uncertainty (normalised entropy)"}
    return save(umap, path)


def _brain_mask(args: argparse.Namespace, volume: Volume) -> np.ndarray | None:
    if not args.mask:
        return None
    return load_labels(args.mask, reference=volume).array > 0


def label_summary(labels: LabelMap) -> list[dict[str, Any]]:
    """Value, name, voxel count and volume (mL) of every non-zero label present."""
    ml = labels.voxel_volume_ml
    return [{"value": v, "name": labels.labels.name(v), "voxels": n,
             "volume_ml": round(n * ml, 3)}
            for v, n in sorted(labels.counts().items()) if v != 0]


def cmd_segment(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..methods import get_method
    from ..methods.pipeline import get_pipeline, run_pipeline

    if args.method:
        spec = get_method(args.method)
        params = parse_assignments(spec.params_type, args.param)
    else:
        pipe = get_pipeline(args.pipeline or DEFAULT_PIPELINE)
        overrides = pipeline_overrides(pipe, args.param)
    device = resolve_device(args.device)
    output = check_output_file(args.output)
    uncertainty_out = check_output_file(args.uncertainty) if args.uncertainty else None
    brain_mask_out = None
    if args.brain_mask_out:
        if args.method or not any(s.spec().kind == "extract" for s in pipe.steps):
            raise ParameterError(
                f"--brain-mask needs a pipeline that extracts the brain (such as "
                f"{DEFAULT_PIPELINE}); {args.method or pipe.name} does not (for the mask "
                f"alone: --method brain_mask)")
        brain_mask_out = check_output_file(args.brain_mask_out)
    volume = load(args.image, series=series_value(args.series))
    mask = _brain_mask(args, volume)
    warnings = guard_applicability(volume, spec if args.method else pipe,
                                   force=bool(getattr(args, "force", False)))
    summary: dict[str, Any] = {"input": args.image, "method": args.method, "pipeline": None}
    if args.method:
        start = time.perf_counter()
        with ProgressBar(spec.name) as bar:
            result = spec.run(volume, params, device=str(device), mask=mask, progress=bar)
        seconds = time.perf_counter() - start
        what, array, table = spec.name, result.labels.array, result.labels.labels
        probabilities = result.probabilities
    else:
        with ProgressBar(pipe.name) as bar:
            done = run_pipeline(volume, pipe, device=str(device), mask=mask,
                                overrides=overrides, progress=bar)
        seconds = done.seconds
        what, array, table = pipe.name, done.labels.array, done.labels.labels
        probabilities = done.segment_probabilities
        summary.update(pipeline=done.pipeline, description=done.description,
                       steps=[{"name": s.name, "seconds": round(s.seconds, 3)}
                              for s in done.steps])
        if done.brain_mask is not None:
            summary["intracranial_ml"] = round(
                float(done.brain_mask.sum()) * volume.voxel_volume_ml, 1)
            if "csf_contrast" in done.info:
                summary["csf_contrast"] = done.info["csf_contrast"]
                summary["csf_contrast_why"] = done.info.get("csf_contrast_why", "")
                summary["dark_rim_ml"] = done.info.get("dark_rim_ml", 0.0)
    labels = LabelMap.on_grid_of(volume, array, labels=table)
    if args.method:
        labels.metadata["method"] = spec.name
    else:
        labels.metadata["pipeline"] = done.pipeline
        labels.metadata["pipeline_description"] = done.description
    if warnings:
        labels.metadata["warnings"] = list(warnings)
    plausible = plausibility(labels, probabilities, volume)
    labels.metadata["plausibility"] = plausible.to_json()
    if uncertainty_out is not None:  # refused before anything is written
        summary["uncertainty"] = save_uncertainty(volume, probabilities, uncertainty_out)
    if brain_mask_out is not None and done.brain_mask is not None:
        mask_map = LabelMap.on_grid_of(volume, done.brain_mask.astype(np.uint8),
                                       labels=INTRACRANIAL_LABELS)
        mask_map.metadata["description"] = "intracranial mask (brain extraction)"
        summary["brain_mask"] = save(mask_map, brain_mask_out)
    out = save(labels, output)
    found = label_summary(labels)
    summary.update(output=out, device=str(device), seconds=round(seconds, 3), labels=found,
                   warnings=list(warnings), plausibility=plausible.to_json())
    if not args.method:
        say(f"{done.description}: "
            + "; ".join(f"{s.name} {s.seconds:.1f} s" for s in done.steps))
        if "intracranial_ml" in summary:
            passes = ("; bright CSF: a second pass on the inverted image"
                      if summary.get("csf_contrast") == "bright" else
                      f"; dark CSF: {summary['dark_rim_ml']:.0f} mL of it out to the inner "
                      "table added" if summary.get("dark_rim_ml") else "")
            say(f"intracranial volume {summary['intracranial_ml']:.0f} mL (brain extraction"
                f"{passes})")
    say(f"{what} on {device} in {seconds:.1f} s: "
        + ", ".join(f"{f['name']} {f['voxels']} voxels ({f['volume_ml']:.1f} mL)"
                    for f in found))
    from ..lesions.measure import LESION_VALUE, lesion_instances

    if LESION_VALUE in table.entries:
        n_lesions = int(lesion_instances(labels).max()) if (array == LESION_VALUE).any() else 0
        summary["lesions"] = n_lesions
        if n_lesions:
            say(f"{n_lesions} possible lesion{'s' if n_lesions > 1 else ''} (label "
                f"{LESION_VALUE}; networks trained on synthetic lesions): review "
                f"{'them' if n_lesions > 1 else 'it'}; `delineo-engine detect` lists and "
                "measures each")
    if plausible.typical:
        say(f"plausibility: {plausible.summary_line()}")
    else:
        warn(f"plausibility: {plausible.summary_line()}")
    if args.json:
        print_json(summary)
    else:
        print(out)
    return 0


def _method_facts() -> list[dict[str, Any]]:
    from ..methods import METHODS
    from ..methods.applicability import describe_applicability

    facts = []
    for name in sorted(METHODS):
        spec = METHODS[name]
        facts.append({
            "name": name,
            "kind": spec.kind,
            "summary": spec.summary,
            "made_for": describe_applicability(spec),
            "parameters": [
                {
                    "name": info.name,
                    "type": getattr(info.type, "__name__", str(info.type)),
                    "default": info.default,
                    "unit": info.unit,
                    "range": info.range_text(),
                    "doc": info.doc,
                }
                for info in describe(spec.params_type)
            ],
        })
    return facts


def cmd_methods(args: argparse.Namespace) -> int:
    facts = _method_facts()
    if args.json:
        print_json(facts)
        return 0
    for m in facts:
        print(f"{m['name']}  [{m['kind']}]")
        print(f"    {m['summary']}")
        print(f"    made for: {m['made_for']}")
        for prm in m["parameters"]:
            unit = f" {prm['unit']}" if prm["unit"] else ""
            rng = f"  {prm['range']}" if prm["range"] else ""
            print(f"    --param {prm['name']}={prm['default']}{unit}{rng}")
            if prm["doc"]:
                print(f"        {prm['doc']}")
        print()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..methods.brain_extraction import brain_extractor_facts
    from ..models.cards import card_facts, model_cards

    cards = model_cards()
    if args.json:
        print_json(cards)
        return 0
    if not cards:
        print("no shipped networks found (resources/models)")
        return 0
    for name, card in cards.items():
        print(name)
        for heading, text in card_facts(card)[1:]:
            print(f"    {heading}: {text}")
        print()
    print("brain_mask (brain extraction)")
    for heading, text in brain_extractor_facts():
        print(f"    {heading}: {text}")
    return 0
