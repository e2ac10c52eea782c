"""Tables (Markdown, CSV) and figures (PNG) of :mod:`engine.evaluation.benchmark.run`.

Means over slices and tissues go through :func:`engine.core.metrics.finite_mean`;
the case-study table gives, beside the mean HD95, how many slice-tissue pairs
were left out of it because a method missed the tissue (infinite HD95).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...core.metrics import confusion, finite_mean
from ...core.volume import LabelMap
from ...display import image_slice
from ..tables import Column, markdown_table, write_csv
from .records import TISSUES, BenchmarkResult, CaseSlice, SliceScore, save_png, write_text

__all__ = ["CASE_COLUMNS", "case_rows", "slice_rows", "write_all"]

CASE_COLUMNS: list[Column] = [
    ("method", "method", "{}"),
    ("dice_csf", "Dice CSF", "{:.3f}"),
    ("dice_gm", "Dice GM", "{:.3f}"),
    ("dice_wm", "Dice WM", "{:.3f}"),
    ("dice_mean", "Dice mean", "{:.3f}"),
    ("accuracy", "accuracy", "{:.3f}"),
    ("sensitivity", "sensitivity", "{:.3f}"),
    ("specificity", "specificity", "{:.3f}"),
    ("hd95_mm", "HD95 (mm)", "{:.2f}"),
    ("hd95_misses", "HD95 misses", "{:d}"),
    ("seconds_per_slice", "s / slice", "{:.3f}"),
    ("seconds_per_volume", "s / volume", "{:.1f}"),
    ("peak_memory_mb", "peak RSS (MB)", "{:.0f}"),
]


def slice_rows(per_method: Mapping[str, list[SliceScore]],
               cases: Sequence[CaseSlice]) -> list[dict[str, Any]]:
    """One row per method and case-study slice: the slice's draw and its Dice per tissue."""
    rows = []
    for name, scores in per_method.items():
        for s in scores:
            case = cases[s.index]
            rows.append({
                "method": name, "slice": s.index, "k": case.k, "contrast": case.contrast,
                "noise_pct": round(100 * case.noise, 2), "inu_pct": round(100 * case.inu, 2),
                **{f"dice_{v}": s.dice[v] for v in TISSUES},
                "dice_mean": finite_mean(s.dice.values()).mean,
                "accuracy": s.accuracy, "seconds": s.seconds,
            })
    return rows


def case_rows(per_method: Mapping[str, list[SliceScore]],
              volume_seconds: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per method: means over slices (and tissues), best mean Dice first.

    ``hd95_mm`` is the mean over the slice-tissue pairs with a finite HD95;
    ``hd95_misses`` counts the pairs left out (the method missed the tissue).
    """
    rows = []
    for name, scores in per_method.items():
        dice = {v: finite_mean(s.dice[v] for s in scores).mean for v in TISSUES}
        hd95 = finite_mean(s.hd95[v] for s in scores for v in TISSUES)
        rows.append({
            "method": name,
            "dice_csf": dice[1], "dice_gm": dice[2], "dice_wm": dice[3],
            "dice_mean": finite_mean(dice.values()).mean,
            "accuracy": finite_mean(s.accuracy for s in scores).mean,
            "sensitivity": finite_mean(s.sensitivity[v] for s in scores for v in TISSUES).mean,
            "specificity": finite_mean(s.specificity[v] for s in scores for v in TISSUES).mean,
            "hd95_mm": hd95.mean,
            "hd95_misses": hd95.misses,
            "seconds_per_slice": float(np.median([s.seconds for s in scores])),
            "seconds_per_volume": float(volume_seconds.get(name, float("nan"))),
            "peak_memory_mb": max(s.peak_bytes for s in scores) / 1024**2,
        })
    rows.sort(key=lambda r: -r["dice_mean"] if math.isfinite(r["dice_mean"]) else 0)
    return rows


def _plot_sweeps(rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    files = []
    for method in sorted({r["method"] for r in rows}):
        params = sorted({r["parameter"] for r in rows if r["method"] == method})
        fig, axes = plt.subplots(1, len(params), figsize=(3.2 * len(params), 2.8), squeeze=False)
        for ax, pname in zip(axes[0], params, strict=True):
            sel = [r for r in rows if r["method"] == method and r["parameter"] == pname]
            xs = [r["value"] for r in sel]
            ax.plot(xs, [r["mean_dice"] for r in sel], "o-", color="tab:blue")
            ax.set_xlabel(pname)
            ax.set_ylabel("mean Dice", color="tab:blue")
            twin = ax.twinx()
            twin.plot(xs, [r["seconds_per_slice"] for r in sel], "s--", color="tab:orange")
            twin.set_ylabel("s / slice", color="tab:orange")
        fig.suptitle(f"{method}: parameter analysis")
        fig.tight_layout()
        files.append(save_png(fig, out / f"parameters_{method.replace('+', '_')}.png"))
        plt.close(fig)
    return files


def _plot_grid(rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    noises = sorted({r["noise_pct"] for r in rows})
    inus = sorted({r["inu_pct"] for r in rows})
    cols = min(4, len(methods))
    nrows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 2.8 * nrows), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    for ax, method in zip(axes.ravel(), methods, strict=False):
        grid = np.full((len(inus), len(noises)), np.nan)
        for r in rows:
            if r["method"] == method:
                grid[inus.index(r["inu_pct"]), noises.index(r["noise_pct"])] = r["mean_dice"]
        im = ax.imshow(grid, vmin=0.4, vmax=1.0, cmap="viridis", origin="lower", aspect="auto")
        for (y, x), v in np.ndenumerate(grid):
            ax.text(x, y, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.75 else "black")
        ax.set_xticks(range(len(noises)), [f"{n:g}" for n in noises])
        ax.set_yticks(range(len(inus)), [f"{i:g}" for i in inus])
        ax.set_xlabel("noise (%)")
        ax.set_ylabel("INU (%)")
        ax.set_title(method, fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="mean Dice")
    path = save_png(fig, out / "robustness.png")
    plt.close(fig)
    return [path]


def _figure(case: CaseSlice, preds: Mapping[str, LabelMap], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    table = case.truth.labels
    lut = np.zeros((4, 4))
    for v in TISSUES:
        lut[v, :3] = np.array(table.color(v)) / 255
        lut[v, 3] = 0.6
    panels = [("image", None), ("ground truth", case.truth), *preds.items()]
    cols = min(6, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False,
                             facecolor="black")
    img = image_slice(case.image.array, "axial", 0)
    lo, hi = np.percentile(img[img > 0], [1, 99.5]) if (img > 0).any() else (0, 1)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (title, lm) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        if lm is not None:
            ax.imshow(lut[image_slice(lm.array, "axial", 0)], interpolation="nearest")
            if title != "ground truth":
                counts = confusion(lm.array, case.truth.array, TISSUES)
                dice = finite_mean(c.dice for c in counts.values()).mean
                title = f"{title}\nDice {dice:.3f}"
        ax.set_title(title, color="white", fontsize=8)
    fig.suptitle(f"axial k={case.k}, {case.contrast.upper()}, noise {100 * case.noise:.1f} %, "
                 f"INU {100 * case.inu:.0f} %", color="white", fontsize=9)
    fig.tight_layout()
    path = save_png(fig, out / "figure.png")
    plt.close(fig)
    return path


def write_all(result: BenchmarkResult, cases: Sequence[CaseSlice], figure_case: CaseSlice,
              preds: Mapping[str, LabelMap], config: Any, device: str) -> list[Path]:
    """Write the CSV tables, the PNG figures and ``report.md`` into ``result.out_dir``."""
    out = result.out_dir
    files = [
        write_csv(result.case_rows, out / "case_study.csv"),
        write_csv(result.slice_rows, out / "case_study_slices.csv"),
        write_csv(result.sweep_rows, out / "parameters.csv"),
        write_csv(result.grid_rows, out / "robustness.csv"),
    ]
    if result.sweep_rows:
        files += _plot_sweeps(result.sweep_rows, out)
    if result.grid_rows:
        files += _plot_grid(result.grid_rows, out)
    files.append(_figure(figure_case, preds, out))
    sweep_md = markdown_table(result.sweep_rows, [
        ("method", "method", "{}"), ("parameter", "parameter", "{}"), ("value", "value", "{:g}"),
        ("mean_dice", "mean Dice", "{:.3f}"), ("seconds_per_slice", "s / slice", "{:.3f}"),
        ("note", "note", "{}")])
    grid_md = markdown_table(result.grid_rows, [
        ("method", "method", "{}"), ("noise_pct", "noise (%)", "{:g}"),
        ("inu_pct", "INU (%)", "{:g}"), ("mean_dice", "mean Dice", "{:.3f}")])
    contrasts = {c: sum(1 for x in cases if x.contrast == c) for c in ("t1", "t2", "pd")}
    text = (
        "# Delineo benchmark\n\n"
        f"Device: {device}. {len(cases)} axial slices of 256 × 256 "
        f"({contrasts['t1']} T1, {contrasts['t2']} T2, {contrasts['pd']} PD; noise "
        f"{min(c.noise for c in cases) * 100:.1f}–{max(c.noise for c in cases) * 100:.1f} %, "
        f"INU {min(c.inu for c in cases) * 100:.0f}–{max(c.inu for c in cases) * 100:.0f} %), "
        f"seed {config.seed}. Every method segments inside the ground-truth brain mask. "
        "Runtime per slice is the median; per volume is one 197 × 233 × 189 T1 phantom "
        "(3 % noise, 20 % INU); peak RSS is the process's resident memory during a run. "
        f"HD95 is the mean over the {len(TISSUES) * len(cases)} slice-tissue pairs with a "
        "finite distance; *HD95 misses* counts the pairs left out because the method "
        "missed the tissue on that slice.\n\n"
        "## Case study\n\n" + markdown_table(result.case_rows, CASE_COLUMNS)
        + "\n## Parameter analysis\n\n" + sweep_md
        + "\n## Robustness (mean Dice, T1)\n\n" + grid_md
        + "\n![robustness](robustness.png)\n\n![figure](figure.png)\n"
    )
    files.append(write_text(out / "report.md", text))
    return files
