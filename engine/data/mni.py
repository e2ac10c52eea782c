"""The demo and test brain: MNI ICBM152 2009a T1 with its tissue maps.

The files come from the ``nilearn`` wheel on PyPI, which ships the template's
T1 and its gray- and white-matter probability maps (197 x 233 x 189 voxels,
1 mm, RAS). Delineo obtains the wheel through the package registry
(``pip download``) -- or from an installed ``nilearn`` -- extracts the three
maps, checks their SHA-256 against pinned values and caches them in the user
cache directory together with the template's copyright notice.

Ground truth rule (BrainWeb labels 0 background, 1 CSF, 2 GM, 3 WM):

1. brain mask = holes filled in the morphological closing (ball of radius
   3 mm) of ``pGM + pWM > 0.1``;
2. inside the brain, ``pCSF = 1 - pGM - pWM`` (*CSF is brain minus GM minus
   WM*) and each voxel takes the tissue of highest probability among
   (pCSF, pGM, pWM); outside it is background.

Examples
--------
>>> t1, truth = load_demo()          # doctest: +SKIP
>>> t1.shape, truth.counts()[3]      # doctest: +SKIP
((197, 233, 189), 635537)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from functools import lru_cache
from importlib import util as importlib_util
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..core.errors import DelineoError
from ..core.jobs import report
from ..core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume
from ..io.atomic import file_sha256

__all__ = [
    "HELD_OUT_SLAB",
    "NILEARN_VERSION",
    "TEMPLATE_FILES",
    "build_ground_truth",
    "cache_dir",
    "ensure_template",
    "load_demo",
    "load_tissue_maps",
    "write_demo_data",
]

log = logging.getLogger(__name__)

NILEARN_VERSION = "0.14.1"
_WHEEL_DATA = "nilearn/datasets/data/"

#: name -> (file name inside the nilearn wheel, SHA-256 of that file)
TEMPLATE_FILES: dict[str, tuple[str, str]] = {
    "t1": (
        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    ),
    "gm": (
        "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
        "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    ),
    "wm": (
        "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
        "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    ),
}

#: Axial slab never used for training: voxel index k in [70, 90) on the
#: template file's third axis (world z from -2 mm to +17 mm).
HELD_OUT_SLAB = (70, 90)

#: Brain-mask rule parameters (see the module docstring).
TISSUE_THRESHOLD = 0.1
CLOSING_RADIUS_MM = 3

COPYRIGHT_NOTICE = """\
MNI ICBM152 non-linear symmetric 2009a template
(mni_icbm152_nlin_sym_09a), as shipped in the nilearn {version} wheel.

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre,
Montreal Neurological Institute, McGill University.

Permission to use, copy, modify, and distribute this software and its
documentation for any purpose and without fee is hereby granted, provided that
the above copyright notice appear in all copies. The authors and McGill
University make no representations about the suitability of this software for
any purpose. It is provided "as is" without express or implied warranty. The
authors are not responsible for any data loss, equipment damage, property
loss, or injury to subjects or patients resulting from the use or misuse of
this software package.

References:
  VS Fonov, AC Evans, K Botteron, CR Almli, RC McKinstry, DL Collins and BDCG,
  Unbiased average age-appropriate atlases for pediatric studies,
  NeuroImage 54(1), 2011.
  VS Fonov, AC Evans, RC McKinstry, CR Almli and DL Collins, Unbiased
  nonlinear average age-appropriate brain templates from birth to adulthood,
  NeuroImage 47, Supplement 1, 2009.
  DL Collins, AP Zijdenbos, WFC Baare and AC Evans, ANIMAL+INSECT: Improved
  Cortical Structure Segmentation, IPMI 1999.
"""


class DemoDataError(DelineoError):
    """The demo template could not be obtained or failed its checksum."""


def cache_dir() -> Path:
    """Folder where the template is cached (``DELINEO_CACHE_DIR`` overrides)."""
    override = os.environ.get("DELINEO_CACHE_DIR")
    if override:
        return Path(override) / "mni_icbm152_2009a"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("delineo")) / "mni_icbm152_2009a"


def _cached_ok(folder: Path) -> bool:
    return all(
        (folder / name).is_file() and file_sha256(folder / name) == sha
        for name, sha in TEMPLATE_FILES.values()
    ) and (folder / "COPYRIGHT.txt").is_file()


def _installed_nilearn_data() -> Path | None:
    spec = importlib_util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return folder if folder.is_dir() else None


def _download_wheel(dest: Path) -> Path:
    """``pip download`` the pinned nilearn wheel (package registry only)."""
    dest.mkdir(parents=True, exist_ok=True)
    existing = sorted(dest.glob(f"nilearn-{NILEARN_VERSION}-*.whl"))
    if existing:
        return existing[0]
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--only-binary=:all:", "--dest", str(dest), f"nilearn=={NILEARN_VERSION}",
    ]
    log.info("fetching the nilearn %s wheel from the package registry", NILEARN_VERSION)
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DemoDataError(f"could not run pip to fetch the demo template ({exc})") from None
    wheels = sorted(dest.glob(f"nilearn-{NILEARN_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr or done.stdout or "").strip().splitlines()
        reason = last[-1] if last else f"pip exited with status {done.returncode}"
        raise DemoDataError(
            f"could not download nilearn=={NILEARN_VERSION} from the package registry "
            f"for the demo template: {reason}"
        )
    return wheels[0]


def ensure_template(
    *, progress: Callable[[float, str], None] | None = None
) -> dict[str, Path]:
    """Paths of the cached template files (``t1``, ``gm``, ``wm``), fetching if needed."""
    folder = cache_dir()
    if _cached_ok(folder):
        return {key: folder / name for key, (name, _) in TEMPLATE_FILES.items()}
    folder.mkdir(parents=True, exist_ok=True)
    report(progress, 0.05, "looking for the MNI template")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        staging = Path(tmp)
        source = _installed_nilearn_data()
        if source is not None and all((source / n).is_file() for n, _ in TEMPLATE_FILES.values()):
            origin = f"installed nilearn package at {source.parent.parent.name}"
            for name, _ in TEMPLATE_FILES.values():
                shutil.copyfile(source / name, staging / name)
        else:
            report(progress, 0.1, f"downloading nilearn {NILEARN_VERSION} from PyPI")
            wheel = _download_wheel(folder / "wheels")
            origin = wheel.name
            report(progress, 0.8, "extracting the template")
            try:
                with zipfile.ZipFile(wheel) as zf:
                    for name, _ in TEMPLATE_FILES.values():
                        with zf.open(_WHEEL_DATA + name) as src:
                            (staging / name).write_bytes(src.read())
            except (zipfile.BadZipFile, KeyError) as exc:
                wheel.unlink(missing_ok=True)
                raise DemoDataError(
                    f"the nilearn wheel is damaged or lacks the template ({exc})"
                ) from None
        for name, sha in TEMPLATE_FILES.values():
            got = file_sha256(staging / name)
            if got != sha:
                raise DemoDataError(
                    f"{name} from {origin} has SHA-256 {got[:12]}…, expected {sha[:12]}…"
                )
        for name, _ in TEMPLATE_FILES.values():
            os.replace(staging / name, folder / name)
    shutil.rmtree(folder / "wheels", ignore_errors=True)  # the three maps are all we keep
    (folder / "COPYRIGHT.txt").write_text(COPYRIGHT_NOTICE.format(version=NILEARN_VERSION))
    (folder / "SOURCE.json").write_text(
        json.dumps(
            {"origin": origin, "nilearn_version": NILEARN_VERSION,
             "sha256": {n: s for n, s in TEMPLATE_FILES.values()}},
            indent=2,
        )
    )
    report(progress, 1.0, "template ready")
    return {key: folder / name for key, (name, _) in TEMPLATE_FILES.items()}


@lru_cache(maxsize=1)
def _tissue_maps_cached() -> tuple[Volume, np.ndarray, np.ndarray]:
    from ..io import load

    paths = ensure_template()
    t1 = load(paths["t1"])
    gm = load(paths["gm"])
    wm = load(paths["wm"])
    # The maps are stored as uint8 0..255 without scaling: probability = value / 255.
    return t1, gm.array.astype(np.float32) / 255.0, wm.array.astype(np.float32) / 255.0


@lru_cache(maxsize=1)
def _brain_and_truth_cached() -> tuple[np.ndarray, np.ndarray]:
    """Brain mask and ground truth of the template (computed once: ~2 s of morphology)."""
    _, gm, wm = _tissue_maps_cached()
    brain = brain_mask_from_maps(gm, wm)
    brain.flags.writeable = False
    truth = _truth_from(gm, wm, brain)
    truth.flags.writeable = False
    return brain, truth


def load_tissue_maps() -> tuple[Volume, dict[str, np.ndarray]]:
    """The T1 volume and float32 probability maps ``gm``, ``wm``, ``csf`` on its grid.

    ``csf`` is ``1 - gm - wm`` inside the brain mask and 0 outside; ``brain``
    is the brain mask. The arrays are fresh copies the caller may modify.
    """
    t1, gm, wm = _tissue_maps_cached()
    brain, _ = _brain_and_truth_cached()
    csf = np.where(brain, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0).astype(np.float32)
    return t1, {"gm": gm.copy(), "wm": wm.copy(), "csf": csf, "brain": brain.copy()}


def brain_mask_from_maps(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """The documented brain-mask rule applied to GM/WM probability maps (1 mm grid)."""
    r = CLOSING_RADIUS_MM
    grid = np.indices((2 * r + 1,) * 3) - r
    ball = (grid**2).sum(axis=0) <= r * r
    tissue = np.pad((gm + wm) > TISSUE_THRESHOLD, r + 1)
    closed = ndimage.binary_closing(tissue, structure=ball)
    closed = closed[(slice(r + 1, -(r + 1)),) * 3]
    return ndimage.binary_fill_holes(closed)


def build_ground_truth(gm: np.ndarray, wm: np.ndarray) -> np.ndarray:
    """Labels 0/1/2/3 from GM/WM probability maps by the documented rule."""
    template_gm, template_wm = _tissue_maps_cached()[1:]
    if np.array_equal(gm, template_gm) and np.array_equal(wm, template_wm):
        return _brain_and_truth_cached()[1].copy()  # the template's own maps: cached
    return _truth_from(gm, wm, brain_mask_from_maps(gm, wm))


def _truth_from(gm: np.ndarray, wm: np.ndarray, brain: np.ndarray) -> np.ndarray:
    csf = np.clip(1.0 - gm - wm, 0.0, 1.0)
    tissue = np.argmax(np.stack([csf, gm, wm]), axis=0).astype(np.uint8) + 1
    return np.where(brain, tissue, 0).astype(np.uint8)


def load_demo() -> tuple[Volume, LabelMap]:
    """The demo T1 (``uint8``, as in the file) and its ground-truth label map."""
    t1, _, _ = _tissue_maps_cached()
    truth_array = _brain_and_truth_cached()[1].copy()
    truth = LabelMap.on_grid_of(t1, truth_array, labels=BRAIN_TISSUE_LABELS)
    truth.metadata["description"] = "MNI152 2009a tissue ground truth (Delineo rule)"
    t1 = t1.with_array(t1.array, modality="MR")
    t1.metadata["description"] = "MNI ICBM152 2009a T1 (nilearn)"
    return t1, truth


def write_demo_data(out_dir: str | Path) -> dict[str, Path]:
    """Write ``mni152_t1.nii.gz``, ``mni152_tissue_labels.nii.gz`` and the notice."""
    from ..io import save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t1, truth = load_demo()
    paths = {
        "t1": save(t1, out / "mni152_t1.nii.gz"),
        "labels": save(truth, out / "mni152_tissue_labels.nii.gz"),
    }
    notice = out / "COPYRIGHT-MNI152.txt"
    notice.write_text(COPYRIGHT_NOTICE.format(version=NILEARN_VERSION))
    paths["copyright"] = notice
    return paths
