"""Synthetic brain lesions painted into phantoms and synthetic heads.

No lesion data set is reachable offline, so Delineo *synthesises* lesions for
training and for measuring detectors: :func:`add_lesions` paints irregular
lesions into an image and its tissue labels and returns the image, the label
map with value 4 ("Lesion", :data:`~engine.core.volume.BRAIN_LESION_LABELS`)
and one :class:`SyntheticLesion` descriptor per lesion.

How a lesion is made
--------------------
1. **Where.** A region is drawn (:data:`REGION_WEIGHTS`), then a centre voxel
   in it. Regions are approximated from the geometry of the MNI template:
   with ``u, v, w`` the position inside the bounding box of the brain along R,
   A and S (0..1) and ``depth`` the distance (mm) to the brain's outer
   surface,

   * ``cerebellum``: gray or white matter with ``w < 0.33``, ``v < 0.42`` and
     depth over 3 mm (in MNI space the cerebellum spans about y -90..-35 mm,
     z -65..-15 mm of a brain spanning y -104..70, z -72..80);
   * ``deep_nuclei``: gray matter deeper than 15 mm with ``|u - 0.5| < 0.22``,
     ``0.35 < v < 0.75`` and ``0.35 < w < 0.68`` (basal ganglia and thalamus);
   * ``periventricular``: white matter within 4 mm of a ventricle (CSF deeper
     than 12 mm), so the lesion touches the ventricle;
   * ``cortical``: gray or white matter 2-8 mm deep, outside the cerebellum
     box, so the lesion touches the cortex and often the sulcal CSF;
   * ``white_matter``: white matter deeper than 6 mm, outside the cerebellum box.

   A lesion never overlaps another one (nor touches it: one voxel apart at least).
2. **Shape.** One to four overlapping spheres (lobes; one below 6 mm), each
   radius modulated by a smooth random field (cubic interpolation of a coarse
   Gaussian lattice), which gives the signed depth ``delta(x)`` (mm, positive
   inside). The overall scale is searched (bisection) until the equivalent
   diameter of the labelled voxels is the drawn size (log-uniform in
   *sizes_mm*; accepted within 25 % of it and inside *sizes_mm*).
3. **Tissue only.** Label 4 is written only where the (possibly displaced)
   truth was gray or white matter: ventricles and sulcal CSF stay CSF, the
   background stays background.
4. **Partial volume.** The lesion occupies the fraction
   ``f = clip(0.5 + delta / h, 0, 1)`` of a voxel (``h`` the mean voxel size):
   a one-voxel ramp across the boundary. A voxel is labelled lesion where
   ``f >= 0.5``.
5. **Contrast.** Levels relative to the white-matter median of the image
   (:data:`LESION_LEVELS`), jittered by +-10 % per lesion, times a local
   estimate of the intensity non-uniformity (normalised-convolution of
   ``image / tissue median`` over gray and white matter, sigma 6 mm): T1 has a
   hypo-intense core, optionally an enhancing rim brighter than white matter;
   T2, FLAIR-like and PD have hyper-intense cores and oedema. Lesions of 6 mm
   and more may have oedema (the outer third of their depth) and, in T1, an
   enhancing rim.
6. **Noise.** The painted voxels are ``(1 - f) * image + f * level`` plus fresh
   Gaussian noise of standard deviation ``sigma * sqrt(1 - (1 - f)^2)``, where
   ``sigma`` is estimated from the image (median absolute deviation of the
   difference to the 6-neighbour mean inside white matter): the noise level is
   the same inside and outside the lesion.
7. **Mass effect** (optional, lesions of 8 mm and more): the surrounding brain
   (image and labels; nothing outside the brain moves) is pushed outwards by a
   radial displacement of up to *mass_effect_mm* at the lesion's boundary,
   decaying as ``(R / r)^2`` and to zero a lesion's reach further out.

Everything happens in the bounding box of each lesion, so a 1 mm template
volume with five lesions takes a few seconds (2-4 s measured on two cores).
The result depends only on the inputs and *seed*; applied with the same seed
to a whole head and to its skull-stripped twin (the same tissue labels), the
same lesions land in both.

**Held-out anatomy.** *avoid_k* keeps every voxel a lesion reads or writes
(lesion, mass effect, the INU estimate's margin) out of the slices
``k0 <= k < k1`` of the third array axis and computes the image statistics
without them: with ``avoid_k=HELD_OUT_SLAB`` (on the template grid; add the
padding on a synthetic head) the held-out slab is bit-for-bit untouched and
nothing of it leaks into a training lesion. *within_k* does the opposite:
every lesion lies entirely in the slab (held-out lesions in held-out anatomy).

Examples
--------
>>> from engine.data.phantom import synthesize_phantom            # doctest: +SKIP
>>> image, truth = synthesize_phantom("t1", seed=0)               # doctest: +SKIP
>>> out = add_lesions(image, truth, contrast="t1", count=5, seed=0)  # doctest: +SKIP
>>> image2, labels, found = out                                   # doctest: +SKIP
>>> sorted(labels.labels), len(found)                             # doctest: +SKIP
([0, 1, 2, 3, 4], 5)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..core.errors import DelineoError, GeometryMismatchError, ParameterError, unknown_name
from ..core.volume import BRAIN_LESION_LABELS, LESION_VALUE, LabelMap, Volume

__all__ = [
    "LESION_CONTRASTS",
    "LESION_LEVELS",
    "LESION_VALUE",
    "REGION_WEIGHTS",
    "SyntheticLesion",
    "add_lesions",
    "estimate_noise_sigma",
]

#: Sequences understood by :func:`add_lesions`.
LESION_CONTRASTS = ("t1", "t2", "flair", "pd")

#: (core, enhancing rim, oedema) intensity relative to the white-matter median. With the
#: phantom means (CSF, GM, WM) = T1 (0.30, 0.735, 1), T2 (1, 0.62, 0.45), PD (1, 0.84, 0.70):
#: a T1 core darker than gray matter and a rim brighter than white matter; T2/FLAIR/PD
#: cores and oedema brighter than both gray and white matter.
LESION_LEVELS: dict[str, tuple[float, float, float]] = {
    "t1": (0.45, 1.25, 0.66),
    "t2": (1.90, 1.90, 1.60),
    "flair": (1.80, 1.80, 1.55),
    "pd": (1.36, 1.36, 1.26),
}

#: Regions a lesion is drawn in, with their probabilities (see the module docstring).
REGION_WEIGHTS: dict[str, float] = {
    "white_matter": 0.35,
    "periventricular": 0.2,
    "cortical": 0.2,
    "deep_nuclei": 0.15,
    "cerebellum": 0.1,
}

_TISSUE = (2, 3)  # gray and white matter: where a lesion may be labelled
_INU_SIGMA_MM = 6.0
_ATTEMPTS = 60


@dataclass(frozen=True)
class SyntheticLesion:
    """What was painted: one synthetic lesion.

    Attributes
    ----------
    id : int
        1..N in the order painted.
    region : str
        The region its centre was drawn in (:data:`REGION_WEIGHTS`).
    centre_voxel, centre_mm : (float, float, float)
        The drawn centre (voxel index, and world RAS+ mm).
    target_diameter_mm, equivalent_diameter_mm : float
        The drawn size and the equivalent diameter of the labelled voxels.
    voxel_count : int
    volume_ml : float
    lobes : int
    enhancing_rim, oedema : bool
    mass_effect_mm : float
        Displacement at the lesion boundary (0: none).
    touches_ventricle, touches_cortex : bool
        Whether the lesion's labelled voxels border a ventricle / cortical gray matter.
    """

    id: int
    region: str
    centre_voxel: tuple[float, float, float]
    centre_mm: tuple[float, float, float]
    target_diameter_mm: float
    equivalent_diameter_mm: float
    voxel_count: int
    volume_ml: float
    lobes: int
    enhancing_rim: bool
    oedema: bool
    mass_effect_mm: float
    touches_ventricle: bool
    touches_cortex: bool

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = asdict(self)
        for key in ("centre_voxel", "centre_mm"):
            out[key] = [float(v) for v in out[key]]
        return out


# ---------------------------------------------------------------------------
# Image statistics
# ---------------------------------------------------------------------------
def estimate_noise_sigma(image: np.ndarray, mask: np.ndarray) -> float:
    """Noise standard deviation from the voxels of *mask* (robust, signal-independent).

    The difference between a voxel and the mean of its six neighbours has the
    variance ``sigma^2 (1 + 1/6)`` on a locally constant signal; its median
    absolute deviation (times 1.4826) over the interior of *mask* (eroded
    twice) gives ``sigma``.
    """
    x = np.asarray(image, np.float32)
    core = ndimage.binary_erosion(mask, iterations=2)
    core[[0, -1], :, :] = False
    core[:, [0, -1], :] = False
    core[:, :, [0, -1]] = False
    idx = np.nonzero(core)
    if idx[0].size < 50:
        return 0.0
    i, j, k = idx
    neigh = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
             + x[i, j, k - 1] + x[i, j, k + 1]) / 6.0
    res = x[i, j, k] - neigh
    mad = float(np.median(np.abs(res - np.median(res))))
    return 1.4826 * mad / math.sqrt(1.0 + 1.0 / 6.0)


def _k_allowed(nz: int, avoid_k: tuple[int, int] | None,
               within_k: tuple[int, int] | None) -> np.ndarray:
    ok = np.ones(nz, bool)
    if avoid_k is not None:
        ok[max(0, avoid_k[0]):max(0, avoid_k[1])] = False
    if within_k is not None:
        inside = np.zeros(nz, bool)
        inside[max(0, within_k[0]):max(0, within_k[1])] = True
        ok &= inside
    return ok


# ---------------------------------------------------------------------------
# Regions
# ---------------------------------------------------------------------------
def _regions(truth: np.ndarray, spacing: np.ndarray, k_ok: np.ndarray
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, tuple[slice, ...]]:
    """Candidate centre voxels (flat indices) per region, the ventricle and cortex masks."""
    brain = truth > 0
    box = ndimage.find_objects(brain.astype(np.uint8))[0]
    box = tuple(slice(max(0, s.start - 1), min(n, s.stop + 1))
                for s, n in zip(box, truth.shape, strict=True))
    t = truth[box]
    b = t > 0
    depth = ndimage.distance_transform_edt(b, sampling=spacing)
    lo = np.array([s.start for s in box], float)
    hi = np.array([s.stop - 1 for s in box], float)
    grids = np.ogrid[tuple(slice(s.start, s.stop) for s in box)]
    u, v, w = ((g - a) / max(c - a, 1.0) for g, a, c in zip(grids, lo, hi, strict=True))
    gm, wm, csf = t == 2, t == 3, t == 1
    cereb_box = (w < 0.33) & (v < 0.42)
    ventricles = csf & (depth > 12.0)
    near_vent = np.zeros_like(b)
    if ventricles.any():  # within 4 mm of a ventricle, computed around the ventricles only
        vbox = ndimage.find_objects(ventricles.astype(np.uint8))[0]
        pad = np.ceil(5.0 / spacing).astype(int)
        vbox = tuple(slice(max(0, s.start - p), min(n, s.stop + p))
                     for s, p, n in zip(vbox, pad, b.shape, strict=True))
        near_vent[vbox] = ndimage.distance_transform_edt(~ventricles[vbox],
                                                         sampling=spacing) <= 4.0
    cortex = gm & (depth <= 8.0) & ~cereb_box
    masks = {
        "cerebellum": (gm | wm) & cereb_box & (depth > 3.0) & (np.abs(u - 0.5) < 0.35),
        "deep_nuclei": gm & (depth > 15.0) & (np.abs(u - 0.5) < 0.22) & (v > 0.35)
        & (v < 0.75) & (w > 0.35) & (w < 0.68),
        "periventricular": wm & near_vent,
        "cortical": (gm | wm) & (depth >= 2.0) & (depth <= 8.0) & ~cereb_box,
        "white_matter": wm & (depth > 6.0) & ~cereb_box,
    }
    k_mask = k_ok[box[2]][None, None, :]
    out: dict[str, np.ndarray] = {}
    for name, m in masks.items():
        local = np.argwhere(m & k_mask) + lo.astype(int)
        out[name] = np.ravel_multi_index(local.T, truth.shape) if len(local) else \
            np.zeros(0, np.int64)
    vent_full = np.zeros(truth.shape, bool)
    vent_full[box] = ventricles
    cortex_full = np.zeros(truth.shape, bool)
    cortex_full[box] = cortex
    return out, vent_full, cortex_full, box


# ---------------------------------------------------------------------------
# One lesion's shape
# ---------------------------------------------------------------------------
def _smooth_noise(points_mm: np.ndarray, cell_mm: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in [-1, 1] at *points_mm* (N, 3): a cubic-interpolated lattice."""
    lo = points_mm.min(axis=0)
    extent = points_mm.max(axis=0) - lo
    n = np.maximum(4, np.ceil(extent / cell_mm).astype(int) + 4)
    lattice = rng.standard_normal(tuple(int(v) for v in n))
    coords = ((points_mm - lo) / cell_mm + 1.5).T
    field = ndimage.map_coordinates(lattice, coords, order=3, mode="nearest")
    peak = float(np.abs(field).max())
    return field / peak if peak > 0 else field


@dataclass
class _Shape:
    offsets_mm: np.ndarray  # (L, 3)
    radii_mm: np.ndarray  # (L,)
    amplitude: float
    noise_cell_mm: float
    noise_seed: int

    @property
    def extent_mm(self) -> float:
        return float(np.max(np.linalg.norm(self.offsets_mm, axis=1) + self.radii_mm))


def _draw_shape(diameter: float, rng: np.random.Generator) -> _Shape:
    r0 = diameter / 2.0
    lobes = 1 if diameter < 6.0 else int(rng.integers(1, 5))
    offsets = [np.zeros(3)]
    radii = [r0]
    for _ in range(lobes - 1):
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        offsets.append(direction * r0 * rng.uniform(0.35, 0.7))
        radii.append(r0 * rng.uniform(0.45, 0.75))
    amplitude = 0.08 if diameter < 5.0 else float(rng.uniform(0.1, 0.25))
    return _Shape(np.array(offsets), np.array(radii), amplitude,
                  max(1.5, 0.7 * r0), int(rng.integers(2**31)))


# ---------------------------------------------------------------------------
# The painter
# ---------------------------------------------------------------------------
def _box_around(centre: np.ndarray, half_vox: np.ndarray, shape: tuple[int, ...]
                ) -> tuple[slice, ...]:
    lo = np.floor(centre - half_vox).astype(int)
    hi = np.ceil(centre + half_vox).astype(int) + 1
    return tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, shape, strict=True))


def _check_inputs(image: Volume, truth: LabelMap, contrast: str, count: int | range,
                  sizes_mm: tuple[float, float]) -> tuple[int, ...]:
    if contrast not in LESION_LEVELS:
        raise ParameterError(unknown_name("lesion contrast", contrast, LESION_CONTRASTS))
    if not image.same_grid(truth):
        raise GeometryMismatchError("the tissue labels do not lie on the image grid",
                                    differences=image.grid_differences(truth))
    if image.array.ndim != 3:
        raise ParameterError("synthetic lesions need a 3-D image")
    lo, hi = (float(v) for v in sizes_mm)
    if not (0 < lo <= hi) or not math.isfinite(hi):
        raise ParameterError(f"lesion sizes {sizes_mm}: need 0 < min <= max (mm)")
    counts = tuple(count) if isinstance(count, range) else (int(count),)
    if not counts or min(counts) < 0:
        raise ParameterError(f"lesion count {count!r}: need a number or range of 0 or more")
    return counts


def add_lesions(
    image: Volume,
    truth: LabelMap,
    *,
    contrast: str,
    count: int | range,
    sizes_mm: tuple[float, float] = (2.0, 30.0),
    seed: int = 0,
    regions: dict[str, float] | None = None,
    oedema_probability: float = 0.6,
    rim_probability: float = 0.5,
    mass_effect_probability: float = 0.5,
    mass_effect_mm: float = 2.0,
    avoid_k: tuple[int, int] | None = None,
    within_k: tuple[int, int] | None = None,
) -> tuple[Volume, LabelMap, list[SyntheticLesion]]:
    """Paint synthetic lesions into *image* and *truth* (see the module docstring).

    Parameters
    ----------
    image : Volume
        A brain image (a phantom, a synthetic head or its skull-stripped twin).
    truth : LabelMap
        Its tissue labels 0/1/2/3 on the same grid.
    contrast : {"t1", "t2", "flair", "pd"}
        The sequence the image stands for: decides the lesions' intensities.
    count : int or range
        Number of lesions (a range: drawn from it). 0 gives a lesion-free volume:
        the image unchanged.
    sizes_mm : (min, max)
        Equivalent diameters (mm) the sizes are drawn from (log-uniform).
    seed : int
        Seed of every random choice.
    regions : dict, optional
        Region name -> weight (default :data:`REGION_WEIGHTS`).
    oedema_probability, rim_probability, mass_effect_probability : float
        Chance that a lesion of 6 mm or more has oedema, an enhancing rim (T1
        only), and (8 mm or more) a mass effect.
    mass_effect_mm : float
        Largest displacement of the surrounding tissue (drawn in [0.3, 1] x this,
        growing with size).
    avoid_k, within_k : (k0, k1), optional
        Keep every lesion out of / entirely inside the slices ``k0 <= k < k1``.

    Returns
    -------
    image : Volume
        float32, same grid and metadata plus ``metadata["lesions"]``.
    labels : LabelMap
        The tissue labels with 4 ("Lesion") in every lesion voxel, table
        :data:`~engine.core.volume.BRAIN_LESION_LABELS`.
    lesions : list of SyntheticLesion
        One descriptor per lesion, in painting order (``id`` 1..N).

    Raises
    ------
    ParameterError
        Unknown contrast or region, bad sizes or counts.
    GeometryMismatchError
        Image and labels on different grids.
    DelineoError
        A lesion could not be placed (no room for the requested size).
    """
    counts = _check_inputs(image, truth, contrast, count, sizes_mm)
    weights = dict(REGION_WEIGHTS if regions is None else regions)
    for name in weights:
        if name not in REGION_WEIGHTS:
            raise ParameterError(unknown_name("lesion region", name, REGION_WEIGHTS))
    if not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
        raise ParameterError("lesion region weights must be 0 or more, and not all 0")
    rng = np.random.default_rng(int(seed))
    n_lesions = int(rng.choice(counts)) if len(counts) > 1 else counts[0]

    values = np.array(image.array, dtype=np.float32, copy=True)
    labels = np.array(truth.array, dtype=np.uint8, copy=True)
    meta = dict(image.metadata)
    if n_lesions == 0:
        meta["lesions"] = []
        out = Volume(values, image.affine.copy(), modality=image.modality, metadata=meta)
        out.source = image.source
        return out, _label_map(labels, truth), []

    shape = labels.shape
    affine = np.asarray(image.affine, float)
    lin = affine[:3, :3]
    inv = np.linalg.inv(lin)
    spacing = np.sqrt((lin ** 2).sum(axis=0))
    h = float(np.prod(spacing) ** (1.0 / 3.0))
    voxel_mm3 = float(abs(np.linalg.det(lin)))
    k_ok = _k_allowed(shape[2], avoid_k, within_k)
    avoid = ~_k_allowed(shape[2], avoid_k, None)
    within = _k_allowed(shape[2], None, within_k)
    if not k_ok.any():
        raise ParameterError("avoid_k/within_k leave no slice for lesions")
    stats_mask = np.broadcast_to(k_ok[None, None, :], shape)
    medians = {}
    for lab in (1, 2, 3):
        sel = (labels == lab) & stats_mask
        medians[lab] = float(np.median(values[sel])) if sel.any() else float("nan")
    if not math.isfinite(medians[3]) or medians[3] <= 0:
        raise DelineoError("synthetic lesions need white matter (label 3) with a positive "
                           "median intensity")
    sigma = estimate_noise_sigma(values, (labels == 3) & stats_mask)
    candidates, ventricles, cortex, _ = _regions(labels, spacing, k_ok)
    names = [n for n in weights if weights[n] > 0 and len(candidates[n])]
    if not names:
        raise DelineoError("no room for lesions in the requested regions and slices")
    p = np.array([weights[n] for n in names], float)
    p /= p.sum()
    levels = LESION_LEVELS[contrast]
    lo_d, hi_d = (float(v) for v in sizes_mm)

    painted: list[SyntheticLesion] = []
    occupied = np.zeros(shape, bool)
    for lesion_id in range(1, n_lesions + 1):
        for _attempt in range(_ATTEMPTS):
            result = _try_lesion(
                rng, values, labels, occupied, names, p, candidates, lo_d, hi_d, affine,
                inv, spacing, h, voxel_mm3, avoid, within, medians, sigma, levels, contrast,
                oedema_probability, rim_probability, mass_effect_probability,
                mass_effect_mm, ventricles, cortex, lesion_id)
            if result is not None:
                painted.append(result)
                break
        else:
            raise DelineoError(f"could not place lesion {lesion_id} of {n_lesions} "
                               f"(sizes {lo_d:g}-{hi_d:g} mm): no room left")
    meta["lesions"] = [les.to_json() for les in painted]
    meta["lesion_contrast"] = contrast
    out = Volume(values, image.affine.copy(), modality=image.modality, metadata=meta)
    out.source = image.source
    return out, _label_map(labels, truth), painted


def _label_map(labels: np.ndarray, truth: LabelMap) -> LabelMap:
    out = LabelMap(labels, truth.affine.copy(), labels=BRAIN_LESION_LABELS,
                   metadata=dict(truth.metadata))
    out.source = truth.source
    return out


def _try_lesion(
    rng: np.random.Generator, values: np.ndarray, labels: np.ndarray, occupied: np.ndarray,
    names: list[str], p: np.ndarray, candidates: dict[str, np.ndarray], lo_d: float,
    hi_d: float, affine: np.ndarray, inv: np.ndarray, spacing: np.ndarray, h: float,
    voxel_mm3: float, avoid: np.ndarray, within: np.ndarray, medians: dict[int, float],
    sigma: float, levels: tuple[float, float, float], contrast: str,
    oedema_probability: float, rim_probability: float, mass_effect_probability: float,
    mass_effect_mm: float, ventricles: np.ndarray, cortex: np.ndarray, lesion_id: int,
) -> SyntheticLesion | None:
    """Draw and paint one lesion in place; None (nothing changed) when it does not fit.

    *avoid* marks the slices no voxel may be read from or written to; *within*
    the slices every changed voxel must lie in.
    """
    shape = labels.shape
    region = names[int(rng.choice(len(names), p=p))]
    flat = candidates[region][int(rng.integers(len(candidates[region])))]
    centre = np.array(np.unravel_index(int(flat), shape), float)
    diameter = float(math.exp(rng.uniform(math.log(lo_d), math.log(hi_d))))
    form = _draw_shape(diameter, rng)
    big = diameter >= 6.0
    oedema = big and rng.uniform() < oedema_probability
    rim = big and contrast == "t1" and rng.uniform() < rim_probability
    push = 0.0
    if diameter >= 8.0 and rng.uniform() < mass_effect_probability:
        push = float(mass_effect_mm * rng.uniform(0.3, 1.0) * min(1.0, diameter / 20.0))
    jitter = rng.uniform(0.9, 1.1, size=3)
    fresh_seed = int(rng.integers(2**31))

    s_max = 1.6
    reach = form.extent_mm * s_max * (1.0 + form.amplitude) + 2.0 * h
    margin = 3.0 * _INU_SIGMA_MM + (reach if push > 0 else 0.0)
    box = _box_around(centre, (reach + margin) / spacing, shape)
    if avoid[box[2]].any():
        return None
    origin = np.array([s.start for s in box], float)
    sub_shape = tuple(s.stop - s.start for s in box)
    idx = np.indices(sub_shape, dtype=np.float32).reshape(3, -1).T
    rel_mm = (idx + origin - centre) @ affine[:3, :3].T
    dist_c = np.linalg.norm(rel_mm, axis=1)

    # Mass effect: resample the box's image and labels before painting.
    sub_vals = values[box]
    sub_labs = labels[box]
    if push > 0 and not occupied[box].any():
        radius = diameter / 2.0
        outer = radius + reach
        profile = np.where(dist_c <= radius, dist_c / max(radius, 1e-6),
                           (radius / np.maximum(dist_c, 1e-6)) ** 2)
        taper = np.clip((outer - dist_c) / max(outer - radius, 1e-6), 0.0, 1.0) ** 2
        disp_mm = (push * profile * taper / np.maximum(dist_c, 1e-6))[:, None] * rel_mm
        disp_mm[sub_labs.reshape(-1) == 0] = 0.0  # only the brain moves, not what surrounds it
        src = (idx - disp_mm @ inv.T).T.reshape(3, *sub_shape)
        warped_vals = ndimage.map_coordinates(sub_vals, src, order=1, mode="nearest")
        warped_labs = ndimage.map_coordinates(sub_labs, src, order=0, mode="nearest")
    else:
        push = 0.0
        warped_vals, warped_labs = sub_vals, sub_labs

    allowed = np.isin(warped_labs, _TISSUE) & ~occupied[box]
    near = dist_c <= reach
    pts = rel_mm[near]
    grow = 1.0 + form.amplitude * _smooth_noise(pts, form.noise_cell_mm,
                                                np.random.default_rng(form.noise_seed))
    lobe_dist = [np.linalg.norm(pts - off, axis=1) for off in form.offsets_mm]
    allowed_near = allowed.reshape(-1)[near]

    def depth_near(scale: float) -> np.ndarray:
        best = np.full(len(pts), -np.inf)
        for d, r in zip(lobe_dist, form.radii_mm, strict=True):
            np.maximum(best, scale * r * grow - d, out=best)
        return best

    # Bisection on the scale for the drawn equivalent diameter.
    target_n = math.pi / 6.0 * diameter ** 3 / voxel_mm3
    lo_s, hi_s = 0.3, s_max
    if np.count_nonzero((depth_near(hi_s) >= 0) & allowed_near) < target_n:
        return None
    for _ in range(14):
        mid = 0.5 * (lo_s + hi_s)
        if np.count_nonzero((depth_near(mid) >= 0) & allowed_near) < target_n:
            lo_s = mid
        else:
            hi_s = mid
    options = []
    for scale in (lo_s, hi_s):
        n_s = int(np.count_nonzero((depth_near(scale) >= 0) & allowed_near))
        options.append((abs(n_s - target_n), scale))
    scale = min(options)[1]
    depth = np.full(len(rel_mm), -np.inf, np.float32)
    depth[near] = depth_near(scale)
    depth3 = depth.reshape(sub_shape)
    mask = (depth3 >= 0) & allowed
    # The tissue cut may split the lesion: keep its largest piece.
    comps, n_comp = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n_comp > 1:
        mask = comps == (1 + int(np.argmax(np.bincount(comps.ravel())[1:])))
    n = int(mask.sum())
    eq = (6.0 * n * voxel_mm3 / math.pi) ** (1.0 / 3.0)
    if n == 0 or not (lo_d - 1e-9 <= eq <= hi_d + 1e-9) or abs(eq - diameter) > 0.25 * diameter:
        return None
    # Keep lesions apart: no voxel of this lesion next to another one.
    grown = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool))
    if (grown & occupied[box]).any():
        return None

    # Intensities: levels by zone, times the local INU estimate.
    lab_med = np.zeros(256, np.float32)
    for lab, m in medians.items():
        lab_med[lab] = m if math.isfinite(m) else 0.0
    weight = (np.isin(warped_labs, _TISSUE) & ~occupied[box]).astype(np.float32)
    ratio = np.where(weight > 0, warped_vals / np.maximum(lab_med[warped_labs], 1e-6), 0.0)
    sig = _INU_SIGMA_MM / spacing
    num = ndimage.gaussian_filter(ratio.astype(np.float32) * weight, sig, mode="nearest")
    den = ndimage.gaussian_filter(weight, sig, mode="nearest")
    inu = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 1.0)
    q = depth3 / max(scale * diameter / 2.0, 1e-6)  # 0 at the edge, about 1 at the centre
    core_l, rim_l, oed_l = (float(lv * j) for lv, j in zip(levels, jitter, strict=True))
    level = np.full(sub_shape, core_l, np.float32)
    if oedema:
        rim_band = (q >= 0.33) & (q < 0.5)
        level[q < 0.33] = oed_l
    else:
        rim_band = q < 0.18
    if rim:
        level[rim_band] = rim_l
    level = ndimage.gaussian_filter(level, 0.6 * h / spacing, mode="nearest")
    target = level * medians[3] * inu
    # Partial volume: a one-voxel ramp across the boundary, in tissue, next to this piece.
    frac = np.clip(0.5 + depth3 / h, 0.0, 1.0) * (allowed & grown)
    frac[mask] = np.maximum(frac[mask], 0.5)
    frac[(depth3 >= 0) & ~mask] = 0.0
    frac = frac.astype(np.float32)
    fresh = np.random.default_rng(fresh_seed).standard_normal(sub_shape).astype(np.float32)
    painted = (1.0 - frac) * warped_vals + frac * target \
        + sigma * np.sqrt(np.clip(1.0 - (1.0 - frac) ** 2, 0.0, 1.0)) * fresh
    painted = np.where(frac > 0, np.abs(painted), warped_vals).astype(np.float32)
    new_labs = np.where(mask, LESION_VALUE, warped_labs).astype(np.uint8)
    changed = (painted != sub_vals) | (new_labs != sub_labs)
    if not within[box[2]].all():
        ks = np.nonzero(changed.any(axis=(0, 1)))[0] + box[2].start
        if ks.size and not within[ks].all():
            return None

    values[box] = painted
    labels[box] = new_labs
    occupied[box] |= mask
    touches_v = bool((grown & ventricles[box]).any())
    touches_c = bool((grown & cortex[box]).any())
    world = affine[:3, :3] @ centre + affine[:3, 3]
    return SyntheticLesion(
        id=lesion_id, region=region,
        centre_voxel=(float(centre[0]), float(centre[1]), float(centre[2])),
        centre_mm=(float(world[0]), float(world[1]), float(world[2])),
        target_diameter_mm=round(diameter, 4), equivalent_diameter_mm=float(eq),
        voxel_count=n, volume_ml=float(n * voxel_mm3 / 1000.0),
        lobes=len(form.radii_mm), enhancing_rim=bool(rim), oedema=bool(oedema),
        mass_effect_mm=round(push, 4), touches_ventricle=touches_v, touches_cortex=touches_c)
