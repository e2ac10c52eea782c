"""Sub-commands ``synth``, ``train`` and ``evaluate`` (the networks and their data)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import GeometryMismatchError, ParameterError
from ..data.contrasts import CONTRASTS
from ..models import MODEL_NAMES
from .common import (
    add_device,
    add_json,
    add_output_file,
    add_output_folder,
    add_series,
    check_output_file,
    check_output_folder,
    choice,
    owned_folder,
    print_json,
    series_value,
)
from .progress import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write one synthetic brain phantom and its ground truth",
        description="Render a phantom from the MNI tissue maps (fuzzy tissue model): "
        "contrast, Rician noise (% of the brightest tissue), INU (peak-to-peak % over the "
        "brain), blur. Writes DIR/phantom.nii.gz, DIR/truth.nii.gz and DIR/phantom.json.",
    )
    add_output_folder(p, "output folder (created if missing)")
    p.add_argument("--contrast", default="t1", type=choice("contrast", CONTRASTS),
                   metavar="{" + ",".join(CONTRASTS) + "}", help="tissue contrast (default t1)")
    p.add_argument("--noise", type=float, default=3.0, help="noise in %%, 0-100 (default 3)")
    p.add_argument("--inu", type=float, default=20.0, help="INU in %%, 0-200 (default 20)")
    p.add_argument("--blur", type=float, default=0.0, help="Gaussian blur sigma in mm")
    p.add_argument("--deform", action="store_true", help="random in-plane deformation")
    p.add_argument("--seed", type=int, default=0)
    add_json(p, "the written paths and the phantom's parameters")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "train",
        help="train a segmentation network on synthetic phantoms",
        description="Train a network of engine.models on phantoms synthesised on the fly "
        "(the held-out slab k in [70, 90) is never used). Writes DIR/<model>.safetensors, "
        "its JSON model card and DIR/checkpoint.safetensors. Every option is checked before "
        "DIR is created; a run that fails removes the folder it created (a checkpoint, "
        "kept for --resume, keeps it). --recipe NAME trains the shipped weights' whole "
        "recipe instead (every stage; docs/model.md).",
    )
    models = sorted(MODEL_NAMES)
    p.add_argument("--model", type=choice("model", models),
                   metavar="{" + ",".join(models) + "}",
                   help="the network to train (required without --recipe)")
    p.add_argument("--steps", type=int,
                   help="optimiser steps, at least 1 (required without --recipe)")
    p.add_argument("--recipe", metavar="NAME",
                   help="train the shipped weights NAME (delineo or unet) by their recorded "
                   "recipe, every stage in turn (earlier stages into DIR/<stage>/, the last "
                   "into DIR); only --out, --threads, --device, --resume and --json go with it")
    add_output_folder(p, "output folder (created if missing)")
    add_device(p)
    p.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint")
    # Recipe options default to None: fresh runs fill in TRAIN_DEFAULTS, --resume the
    # checkpoint's own values (a resumed run cannot silently change the recipe).
    p.add_argument("--batch-size", type=int, help="patches per step (default 32)")
    p.add_argument("--volumes-per-step", type=int, help="phantoms drawn per step (default 4)")
    p.add_argument("--optimizer", type=choice("optimizer", ("adamw", "sgd")),
                   metavar="{adamw,sgd}", help="default adamw")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default 2e-3 AdamW, 2e-2 SGD)")
    p.add_argument("--lambda-tv", type=float, help="weight of the TV term (default 0.02)")
    p.add_argument("--base", type=int, help="channels of the first stage (default 16)")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--val-every", type=int,
                   help="validate every N steps (default 1000; 0: never)")
    p.add_argument("--checkpoint-every", type=int, help="default 500")
    p.add_argument("--anatomy", type=choice("anatomy", ("template", "varied")),
                   metavar="{template,varied}",
                   help="template: the MNI brain under small in-plane warps; varied: also "
                   "3-D pose, per-axis scaling, asymmetry, large elastic warps, enlarged "
                   "ventricles and cortical atrophy (engine.data.anatomy) (default template)")
    p.add_argument("--anatomy-pool", type=int,
                   help="with --anatomy varied: varied anatomies held at once (default 8)")
    p.add_argument("--anatomy-refresh", type=int,
                   help="with --anatomy varied: replace one every N steps (default 25)")
    p.add_argument("--volume-resolution", type=float, metavar="P",
                   help="probability that a patch is also seen as on a coarser grid in all "
                   "three directions (2-3 mm isotropic or 2-4 mm thick along one axis, "
                   "brought back to 1 mm) (default 0: in-plane only)")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="start from these weights (a .safetensors file of the same network "
                   "and --base, e.g. a finished run's) instead of a random initialisation")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--data", default="mni", type=choice("data", ("mni", "toy")),
                   help=argparse.SUPPRESS)
    add_json(p, "a final summary (weights, parameters, steps, last validation)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate",
        help="per-label Dice of a segmentation (or of a method run on an image)",
        description="Compare a label map with the ground truth, or run --method on an image "
        "first. Prints Dice of CSF, GM, WM and their mean on the whole volume and on the "
        "held-out slab.",
    )
    p.add_argument("input", help="prediction label map, or image with --method")
    p.add_argument("--ground-truth", required=True, help="label map 0/1/2/3")
    p.add_argument("--method", help="segment INPUT with this method first (e.g. delineo)")
    p.add_argument("--slab", default="70:90", help="k0:k1 slab on the third axis (or 'none')")
    p.add_argument("--mask-from-truth", action="store_true",
                   help="with --method: give the method the true brain mask (truth > 0)")
    p.add_argument("--tta", action="store_true", help="with --method: CNN test-time mirroring")
    add_device(p)
    add_series(p, "INPUT (with --method)")
    add_output_file(p, "with --method: also write the prediction here (.nii or .nii.gz)",
                    required=False)
    from .method_commands import add_force

    add_force(p)
    lesions = p.add_argument_group(
        "lesion-wise evaluation",
        "With --lesions: BraTS-style lesion-wise Dice and HD95 (26-connected lesions, ground "
        "truth merged by --dilation; a missed or spurious lesion counts Dice 0, HD95 374 mm), "
        "detection sensitivity by size (<5, 5-10, >=10 mm equivalent diameter), false "
        "positives per scan, and the FROC curve with the LUNA16 CPM.")
    lesions.add_argument("--lesions", action="store_true",
                         help="evaluate lesions (label --lesion-value) instead of tissue Dice")
    lesions.add_argument("--probabilities", metavar="PROB",
                         help="lesion probability map (0-1) on the grid of INPUT: the "
                         "confidence of each predicted lesion (default: 1 for all)")
    lesions.add_argument("--confidence", default="mean", type=choice("confidence",
                                                                     ("mean", "max")),
                         metavar="{mean,max}",
                         help="confidence of a lesion from --probabilities (default mean)")
    lesions.add_argument("--dilation", type=int, default=1,
                         help="voxel dilations merging nearby ground-truth lesions (default 1)")
    lesions.add_argument("--lesion-value", type=int, default=4,
                         help="label value of lesions (default 4; 0: every non-zero value)")
    # Optional here (the tissue evaluation writes no folder), hence its own dest: the
    # required --out DIR of the folder-writing commands keeps its one meaning.
    lesions.add_argument("--out", metavar="DIR", dest="lesion_out",
                         help="also write DIR/lesionwise.json, lesionwise.md and froc.png "
                         "(created if missing)")
    add_json(p, "the Dice table (with --method also the warnings --force overrode; with "
                "--lesions the lesion-wise summary)")
    p.set_defaults(func=cmd_evaluate)


def cmd_synth(args: argparse.Namespace) -> int:
    from ..data.phantom import synthesize_phantom
    from ..io import save

    if not 0 <= args.noise <= 100 or not 0 <= args.inu <= 200:
        raise ParameterError("--noise must be in [0, 100] % and --inu in [0, 200] %")
    if args.blur < 0:
        raise ParameterError("--blur must be 0 or more")
    out = check_output_folder(args.out)
    image, truth = synthesize_phantom(args.contrast, noise=args.noise / 100, inu=args.inu / 100,
                                      seed=args.seed, blur=args.blur, deform=args.deform)
    with owned_folder(out):
        out.mkdir(parents=True, exist_ok=True)
        p_img = save(image, out / "phantom.nii.gz")
        p_gt = save(truth, out / "truth.nii.gz")
        p_meta = out / "phantom.json"
        p_meta.write_text(json.dumps(image.metadata["phantom"], indent=2) + "\n")
    if args.json:
        print_json({"image": p_img, "truth": p_gt, "metadata": p_meta,
                    "phantom": image.metadata["phantom"]})
    else:
        print(f"wrote {p_img} and {p_gt}")
    return 0


#: Recipe defaults of a fresh ``train`` run.
TRAIN_DEFAULTS = {"batch_size": 32, "volumes_per_step": 4, "optimizer": "adamw",
                  "lambda_tv": 0.02, "base": 16, "seed": 0, "val_every": 1000,
                  "checkpoint_every": 500, "anatomy": "template", "anatomy_pool": 8,
                  "anatomy_refresh": 25, "volume_resolution": 0.0, "init": ""}


def _train_config(args: argparse.Namespace) -> Any:
    """The TrainConfig of the command line (recipe from the checkpoint with --resume)."""
    from ..models.training import TrainConfig, checkpoint_config

    if args.resume:
        ckpt = Path(args.out) / "checkpoint.safetensors"
        if not ckpt.is_file():
            raise ParameterError(f"--resume: no checkpoint in {args.out}")
        stored = checkpoint_config(ckpt)
        base = {"batch_size": stored.batch_size, "volumes_per_step": stored.volumes_per_step,
                "optimizer": stored.optimizer, "lambda_tv": stored.lambda_tv,
                "base": stored.model_args.get("base", 16), "seed": stored.seed,
                "val_every": stored.val_every, "checkpoint_every": stored.checkpoint_every,
                "lr": stored.lr, "anatomy": stored.anatomy,
                "anatomy_pool": stored.anatomy_pool, "anatomy_refresh": stored.anatomy_refresh,
                "volume_resolution": stored.volume_resolution, "init": stored.init}
    else:
        base = dict(TRAIN_DEFAULTS)
    values = {k: (getattr(args, k) if getattr(args, k) is not None else base.get(k))
              for k in (*TRAIN_DEFAULTS, "lr")}
    if values["lr"] is None:
        values["lr"] = 2e-2 if values["optimizer"] == "sgd" else 2e-3
    return TrainConfig(
        model=args.model, model_args={"base": values["base"]}, steps=args.steps,
        batch_size=values["batch_size"], volumes_per_step=values["volumes_per_step"],
        optimizer=values["optimizer"], lr=values["lr"], lambda_tv=values["lambda_tv"],
        seed=values["seed"], device=args.device, data=args.data,
        val_every=values["val_every"], checkpoint_every=values["checkpoint_every"],
        threads=args.threads, anatomy=values["anatomy"], anatomy_pool=values["anatomy_pool"],
        anatomy_refresh=values["anatomy_refresh"],
        volume_resolution=values["volume_resolution"], init=values["init"],
    )


def _check_recipe(config: Any, args: argparse.Namespace) -> None:
    """Refuse values the training loop would only trip over later."""
    base = config.model_args.get("base", 16)
    if base < 1:
        raise ParameterError(f"--base {base} must be at least 1")
    if config.val_every < 0 or config.checkpoint_every < 1:
        raise ParameterError("--val-every must be 0 or more and --checkpoint-every at least 1")
    if config.lambda_tv < 0:
        raise ParameterError("--lambda-tv must be 0 or more")
    if args.threads < 0:
        raise ParameterError("--threads must be 0 or more")
    if config.anatomy_pool < 1 or config.anatomy_refresh < 1:
        raise ParameterError("--anatomy-pool and --anatomy-refresh must be at least 1")


#: ``train`` options that a recipe sets itself.
_RECIPE_SET = ("model", "steps", *TRAIN_DEFAULTS, "lr")


def _cmd_train_recipe(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..models.recipes import recipe_configs, train_recipe

    given = [k for k in _RECIPE_SET if getattr(args, k) is not None]
    if args.data != "mni":
        given.append("data")
    if given:
        raise ParameterError("--recipe sets the whole recipe; drop "
                             + ", ".join("--" + k.replace("_", "-") for k in given))
    if args.threads < 0:
        raise ParameterError("--threads must be 0 or more")
    plan = recipe_configs(args.recipe, args.out, threads=args.threads, device=args.device)
    resolve_device(args.device)
    out = check_output_folder(args.out)
    command = "delineo-engine " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with owned_folder(out, keep_files=True), ProgressBar(f"train --recipe {args.recipe}") as bar:
        card = train_recipe(args.recipe, out, threads=args.threads, device=args.device,
                            resume=args.resume, command=command, progress=bar)
    model = plan[-1][1].model
    weights = out / f"{model}.safetensors"
    if args.json:
        print_json({"weights": weights, "card": weights.with_suffix(".json"),
                    "recipe": args.recipe, "stages": [str(folder) for _, _, folder in plan],
                    "model": model, "parameters": card["parameters"],
                    "steps": card["training"]["steps"],
                    "validation": card["validation"][-1] if card["validation"] else None})
        return 0
    print(f"wrote {weights} (recipe {args.recipe}, {len(plan)} stage(s))")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..models.training import train

    if args.recipe is not None:
        return _cmd_train_recipe(args)
    missing = [o for o in ("model", "steps") if getattr(args, o) is None]
    if missing:
        raise ParameterError("train needs " + " and ".join("--" + o for o in missing)
                             + " (or --recipe NAME)")
    config = _train_config(args).validated()
    _check_recipe(config, args)
    resolve_device(config.device)
    out = check_output_folder(args.out)
    command = "delineo-engine " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    with owned_folder(out, keep_files=True), ProgressBar(f"train {args.model}") as bar:
        card = train(config, out, resume=args.resume, command=command, progress=bar)
    weights = out / f"{args.model}.safetensors"
    last = card["validation"][-1] if card["validation"] else None
    if args.json:
        print_json({"weights": weights, "card": weights.with_suffix(".json"),
                    "checkpoint": out / "checkpoint.safetensors", "model": args.model,
                    "parameters": card["parameters"], "steps": card["training"]["steps"],
                    "seconds": card["training"]["seconds_this_run"],
                    "loss_last_smoothed": card["training"]["loss_last_smoothed"],
                    "validation": last})
        return 0
    print(f"wrote {weights} ({card['parameters']} parameters, "
          f"{card['training']['steps']} steps)")
    if last is not None:
        print("validation (held-out slab excluded):", json.dumps(last))
    return 0


def _parse_slab(text: str) -> tuple[int, int] | None:
    if text.lower() == "none":
        return None
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise ParameterError(f"--slab {text!r}: write k0:k1, e.g. 70:90") from None
    if not 0 <= a < b:
        raise ParameterError(f"--slab {text!r}: need 0 <= k0 < k1")
    return a, b


def dice_table(pred: np.ndarray, truth: np.ndarray,
               slab: tuple[int, int] | None) -> dict[str, Any]:
    """Dice of CSF/GM/WM and their mean on the whole volume and on the slab."""
    from ..core.metrics import confusion

    def row(p: np.ndarray, t: np.ndarray) -> dict[str, float]:
        c = confusion(p, t, [1, 2, 3])
        d = {"csf": c[1].dice, "gm": c[2].dice, "wm": c[3].dice}
        d["mean"] = float(np.mean(list(d.values())))
        return {k: round(v, 4) for k, v in d.items()}

    out = {"whole": row(pred, truth)}
    if slab is not None:
        out["slab"] = row(pred[:, :, slab[0]:slab[1]], truth[:, :, slab[0]:slab[1]])
    return out


def _run_method(name: str, image: Any, mask: np.ndarray | None, device: str,
                tta: bool) -> Any:
    """Run the registered method *name* with its default parameters."""
    from ..methods.cnn import CNNParams
    from ..methods.registry import get_method

    spec = get_method(name)
    params = CNNParams(tta=tta) if spec.kind == "cnn" else spec.default_params()
    with ProgressBar(name) as bar:
        return spec.run(image, params, device=device, mask=mask, progress=bar)


def _evaluate_lesions(args: argparse.Namespace) -> int:
    """``evaluate --lesions``: the lesion-wise report of one prediction."""
    from ..evaluation.lesionwise import evaluate_case, lesionwise_markdown, summarize
    from ..evaluation.lesionwise import write_lesionwise as write_report
    from ..io import load, load_labels

    given = [opt for opt, value in (("--method", args.method), ("-o/--output", args.output),
                                    ("--mask-from-truth", args.mask_from_truth),
                                    ("--tta", args.tta), ("--series", args.series)) if value]
    if given:
        raise ParameterError(f"{', '.join(given)} do not apply with --lesions")
    if args.dilation < 0:
        raise ParameterError(f"--dilation {args.dilation} must be 0 or more")
    if args.lesion_value < 0:
        raise ParameterError(f"--lesion-value {args.lesion_value} must be 0 or more")
    out = check_output_folder(args.lesion_out) if args.lesion_out else None
    truth = load_labels(args.ground_truth)
    pred = load_labels(args.input)
    if not pred.same_grid(truth):
        raise GeometryMismatchError("the prediction does not lie on the ground truth's grid",
                                    differences=truth.grid_differences(pred), path=args.input)
    prob = None
    if args.probabilities:
        prob = load(args.probabilities)
        if not prob.same_grid(truth):
            raise GeometryMismatchError("the probability map does not lie on the ground "
                                        "truth's grid", differences=truth.grid_differences(prob),
                                        path=args.probabilities)
    case = evaluate_case(pred, truth, probabilities=prob, confidence=args.confidence,
                         lesion_value=args.lesion_value, dilation=args.dilation,
                         name=Path(args.input).name)
    summary = summarize([case])
    written: list[Path] = []
    if out is not None:
        with owned_folder(out):
            out.mkdir(parents=True, exist_ok=True)
            written = write_report(summary, out)
    if args.json:
        print_json({**summary, "written": [str(p) for p in written]})
        return 0
    print(lesionwise_markdown(summary), end="")
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..core.device import resolve_device
    from ..io import load, load_labels, save
    from ..methods.registry import get_method

    if args.lesions:
        return _evaluate_lesions(args)
    lesion_only = [opt for opt, value in (
        ("--probabilities", args.probabilities), ("--out", args.lesion_out),
        ("--dilation", args.dilation != 1), ("--lesion-value", args.lesion_value != 4),
        ("--confidence", args.confidence != "mean")) if value]
    if lesion_only:
        raise ParameterError(f"{', '.join(lesion_only)} only apply with --lesions")
    slab = _parse_slab(args.slab)
    if not args.method:
        given = [opt for opt, value in (("-o/--output", args.output),
                                        ("--mask-from-truth", args.mask_from_truth),
                                        ("--tta", args.tta), ("--series", args.series))
                 if value]
        if given:
            raise ParameterError(f"{', '.join(given)} only apply with --method")
    else:
        get_method(args.method)
        device = str(resolve_device(args.device))
    output = check_output_file(args.output) if args.output else None
    truth = load_labels(args.ground_truth)
    if slab is not None and slab[1] > truth.shape[2]:
        raise ParameterError(f"--slab {args.slab} lies outside the volume "
                             f"({truth.shape[2]} slices on the third axis)")
    seconds = None
    if args.method:
        image = load(args.input, series=series_value(args.series))
        from .method_commands import guard_applicability

        warnings = guard_applicability(image, get_method(args.method),
                                       force=bool(getattr(args, "force", False)))
        mask = truth.array > 0 if args.mask_from_truth else None
        result = _run_method(args.method, image, mask, device, args.tta)
        pred = result.labels
        seconds = result.info.get("seconds")
        if output is not None:
            save(pred, output)
    else:
        pred = load_labels(args.input)
    if pred.shape != truth.shape:
        raise GeometryMismatchError(
            f"prediction shape {pred.shape} differs from the ground truth's {truth.shape}",
            differences=[f"shape {pred.shape} vs {truth.shape}"], path=args.input)
    table = dice_table(np.asarray(pred.array), np.asarray(truth.array), slab)
    if seconds is not None:
        table["seconds"] = round(float(seconds), 2)
    if args.method:
        table["warnings"] = list(warnings)
    if args.json:
        print_json(table)
        return 0
    print(f"{'region':8s} {'CSF':>7s} {'GM':>7s} {'WM':>7s} {'mean':>7s}")
    for region in ("whole", "slab"):
        if region in table:
            r = table[region]
            print(f"{region:8s} {r['csf']:7.4f} {r['gm']:7.4f} {r['wm']:7.4f} {r['mean']:7.4f}")
    if seconds is not None:
        print(f"segmentation time: {seconds:.2f} s")
    if output is not None:
        print(f"prediction written to {output}")
    return 0
