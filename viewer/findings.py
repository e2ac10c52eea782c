"""The lesion findings of the edited mask, kept up to date while it is edited (no Qt).

A finding is one connected lesion of the edited mask: a 26-connected
component of label :data:`~engine.lesions.LESION_VALUE` (4, "Lesion"),
measured by :func:`engine.lesions.measure_lesions` (volume, the RANO axial
diameters and their end points, tissue, confidence). :class:`FindingsModel`
keeps the list in step with the mask:

* **Bounded re-measurement.** An edit says which box of voxels changed
  (:meth:`FindingsModel.invalidate`); only the lesions near that box are found
  and measured again (:meth:`FindingsModel.prepare` grows the box by the
  measuring shell and by every lesion it touches, until no lesion crosses its
  border), each in a crop around it. A brush stroke costs milliseconds
  whatever the size of the volume; a whole new mask is measured once (the
  panel does that in the background).
* **Stable numbers and review states.** Each finding has a number that stays
  while the mask is edited (lesion ids of :func:`~engine.lesions.lesion_instances`
  change whenever a lesion grows past another): a re-found lesion takes the
  number, status and origin of the old lesion it overlaps most. The first
  measurement of a mask numbers its lesions 1..N by decreasing volume, as
  :func:`~engine.lesions.lesion_instances` does; lesions that appear later get
  the next numbers.
* **Review.** A finding is *pending*, *accepted* or *rejected*.
  :meth:`FindingsModel.reject_diff` is the change that removes a finding from
  the mask -- each voxel takes the nearest label around the lesion (the
  tissue it sits in, or background) -- for the editing session to apply as
  one undo step. A rejected finding stays in the list (not in the mask);
  when an undo brings its voxels back it returns with the status it had, and
  when it leaves the mask again (a redo) it is rejected again.
* **Confidence** is the mean of a lesion probability map inside the lesion
  (:meth:`FindingsModel.set_sources`), for the lesions found in the mask when
  it was opened. A lesion painted afterwards has none (``None``); the
  threshold counts it as 1.0 (:attr:`FindingRow.threshold_confidence`).

The model emits ``changed`` (an :class:`engine.core.events.Event`) after the
rows changed; :mod:`viewer.panels.findings_panel` shows them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from engine.core.events import DeclaredEvent
from engine.core.jobs import CancelToken
from engine.core.volume import LabelMap, Volume
from engine.editing.kernels import Diff
from engine.lesions import LESION_VALUE, SHELL_MM, Finding, measure_lesions

__all__ = [
    "ACCEPTED",
    "PENDING",
    "REJECTED",
    "FindingRow",
    "FindingsModel",
    "LesionVoxels",
    "Remeasure",
]

log = logging.getLogger(__name__)

BBox = tuple[slice, slice, slice]

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
#: Lesions are 26-connected, as :func:`engine.lesions.lesion_instances` joins them by default.
_STRUCTURE = np.ones((3, 3, 3), bool)
#: Lesions erased by hand that an undo may bring back with their number (the newest kept).
_GONE_KEPT = 64


@dataclass(frozen=True)
class LesionVoxels:
    """Where one connected lesion lies.

    Attributes
    ----------
    box : tuple of three slices
        Its tight bounding box (array indices).
    mask : ndarray of bool
        Its voxels within the box.
    first : int
        Flat index of its first voxel in the array (orders lesions of equal volume).
    """

    box: BBox
    mask: np.ndarray
    first: int

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self.mask))

    def overlap(self, other: LesionVoxels) -> int:
        """Number of voxels the two lesions share."""
        inter = [slice(max(a.start, b.start), min(a.stop, b.stop))
                 for a, b in zip(self.box, other.box, strict=True)]
        if any(s.start >= s.stop for s in inter):
            return 0
        mine = tuple(slice(s.start - b.start, s.stop - b.start)
                     for s, b in zip(inter, self.box, strict=True))
        theirs = tuple(slice(s.start - b.start, s.stop - b.start)
                       for s, b in zip(inter, other.box, strict=True))
        return int(np.count_nonzero(self.mask[mine] & other.mask[theirs]))


@dataclass
class FindingRow:
    """One finding of the list.

    Attributes
    ----------
    number : int
        Stable while the mask is edited; also the ``id`` of :attr:`finding`.
    finding : Finding
        Its latest measurement (voxel indices in the whole array).
    voxels : LesionVoxels
        Its voxels at that measurement.
    status : str
        ``"pending"``, ``"accepted"`` or ``"rejected"``.
    present : bool
        The lesion is in the mask (False for a rejected finding).
    drawn : bool
        It appeared after the mask's first measurement (painted by hand): no confidence.
    before_reject : str
        The status a rejected finding returns to when an undo brings it back.
    was_rejected : bool
        It was rejected once: leaving the mask again (a redo) rejects it again.
    """

    number: int
    finding: Finding
    voxels: LesionVoxels
    status: str = PENDING
    present: bool = True
    drawn: bool = False
    before_reject: str = PENDING
    was_rejected: bool = False

    @property
    def confidence(self) -> float | None:
        return self.finding.confidence

    @property
    def threshold_confidence(self) -> float:
        """The confidence the threshold compares: 1.0 for a lesion without one."""
        conf = self.finding.confidence
        return 1.0 if conf is None or not math.isfinite(conf) else float(conf)


def _grow(box: BBox, by: Sequence[int] | int, shape: Sequence[int]) -> BBox:
    n = [by] * 3 if isinstance(by, int) else list(by)
    return tuple(slice(max(0, s.start - p), min(size, s.stop + p))  # type: ignore[return-value]
                 for s, p, size in zip(box, n, shape, strict=True))


def _union(a: BBox, b: BBox) -> BBox:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop))  # type: ignore[return-value]
                 for x, y in zip(a, b, strict=True))


def _meets(a: BBox, b: BBox) -> bool:
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b, strict=True))


def _voxels_in(box: BBox) -> int:
    return int(np.prod([s.stop - s.start for s in box]))


def _full(shape: Sequence[int]) -> BBox:
    return tuple(slice(0, int(n)) for n in shape)  # type: ignore[return-value]


def _normalise(box: BBox | None, shape: Sequence[int]) -> BBox:
    if box is None:
        return _full(shape)
    return tuple(slice(*s.indices(int(n))[:2])  # type: ignore[return-value]
                 for s, n in zip(box, shape, strict=True))


def _shell_pad(image: Volume) -> list[int]:
    """Voxels around a lesion that its measurement reads (the shell, plus one)."""
    return [math.ceil(SHELL_MM / s) + 1 for s in image.spacing]


def _shifted(finding: Finding, offset: np.ndarray) -> Finding:
    """*finding* measured in a crop, with its voxel indices in the whole array."""
    def move(p: Iterable[float]) -> tuple[float, float, float]:
        x, y, z = (float(v) + float(o) for v, o in zip(p, offset, strict=True))
        return (x, y, z)

    return dataclasses.replace(
        finding,
        voxel_centroid=move(finding.voxel_centroid),
        slice_index=int(finding.slice_index + offset[finding.slice_axis]),
        axial_diameter_ends=(move(finding.axial_diameter_ends[0]),
                             move(finding.axial_diameter_ends[1])),
        perpendicular_diameter_ends=(move(finding.perpendicular_diameter_ends[0]),
                                     move(finding.perpendicular_diameter_ends[1])))


class Remeasure:
    """One bounded re-measurement: the lesions inside :attr:`region`, found and measured.

    Made by :meth:`FindingsModel.prepare` (in the GUI thread); :meth:`run` may
    run in a worker thread after :meth:`detach`, which copies the edited mask;
    :meth:`FindingsModel.adopt` takes the result back.
    """

    def __init__(self, labels: np.ndarray, image: Volume, tissue: LabelMap | None,
                 tissue_is_mask: bool, probability: np.ndarray | None, region: BBox,
                 replaced: set[int], lesion_value: int, generation: int) -> None:
        self.labels = labels
        self.image = image
        self.tissue = tissue
        self.tissue_is_mask = tissue_is_mask
        self.probability = probability
        self.region = region
        #: Numbers of the findings this re-measurement replaces.
        self.replaced = replaced
        self.lesion_value = lesion_value
        self.generation = generation

    @property
    def voxels(self) -> int:
        """Size of the region searched for lesions."""
        return _voxels_in(self.region)

    def detach(self) -> Remeasure:
        """Work on a copy of the edited mask (the mask may change while a worker runs)."""
        self.labels = self.labels.copy()
        return self

    def run(self, cancel: CancelToken | None = None) -> list[tuple[LesionVoxels, Finding]]:
        """Find the lesions in the region and measure each in a crop around it."""
        region, labels = self.region, self.labels
        found, n = ndimage.label(labels[region] == self.lesion_value, structure=_STRUCTURE)
        if n == 0:
            return []
        origin = np.array([s.start for s in region])
        out: list[tuple[LesionVoxels, Finding]] = []
        for number, box in enumerate(ndimage.find_objects(found), start=1):
            if cancel is not None:
                cancel.check()
            if box is None:
                continue
            mask = found[box] == number
            start = origin + [s.start for s in box]
            whole = tuple(slice(int(a), int(a) + s.stop - s.start)
                          for a, s in zip(start, box, strict=True))
            first = int(np.ravel_multi_index(tuple(np.argwhere(mask)[0] + start), labels.shape))
            voxels = LesionVoxels(whole, mask, first)  # type: ignore[arg-type]
            out.append((voxels, self.measure(voxels)))
        return out

    def measure(self, voxels: LesionVoxels) -> Finding:
        """:func:`~engine.lesions.measure_lesions` of one lesion, in a crop of the volume.

        The crop holds the lesion and its shell, so the result is what a
        measurement of the whole volume gives; other lesions in the crop are
        left out of the shell as they are there.
        """
        image, labels = self.image, self.labels
        crop = _grow(voxels.box, _shell_pad(image), labels.shape)
        offset = np.array([s.start for s in crop])
        lab = labels[crop]
        instances = np.where(lab == self.lesion_value, 2, 0).astype(np.int32)
        inner = tuple(slice(b.start - c.start, b.stop - c.start)
                      for b, c in zip(voxels.box, crop, strict=True))
        instances[inner][voxels.mask] = 1
        affine = image.affine.copy()
        affine[:3, 3] = image.affine[:3, :3] @ offset + image.affine[:3, 3]
        volume = Volume(image.array[crop], affine)
        tissue = None
        if self.tissue is not None:
            source = labels if self.tissue_is_mask else self.tissue.array
            values = np.array(source[crop])
            values[values == self.lesion_value] = 0  # never "Lesion" as the tissue around
            tissue = LabelMap(values, affine, labels=self.tissue.labels)
        probability = None if self.probability is None else self.probability[crop]
        finding = measure_lesions(instances, volume, tissue=tissue, probability=probability)[0]
        return _shifted(finding, offset)


class FindingsModel:
    """The findings of one edited mask (see the module doc).

    Parameters
    ----------
    lesion_value : int
        The label value of lesions (4, "Lesion").
    """

    changed = DeclaredEvent("The findings changed: rows, measurements or review states.")

    def __init__(self, lesion_value: int = LESION_VALUE) -> None:
        self.lesion_value = int(lesion_value)
        self.mask: LabelMap | None = None
        self.image: Volume | None = None
        self.tissue: LabelMap | None = None
        self.probability: np.ndarray | None = None
        #: The findings, by number: lesions in the mask and rejected findings.
        self.rows: list[FindingRow] = []
        self._gone: list[FindingRow] = []
        self._pending: BBox | None = None
        self._next_number = 1
        self._first_pass = True
        #: Bumped by :meth:`set_target`: a re-measurement of an older mask is dropped.
        self.generation = 0

    # -- what is measured ------------------------------------------------------------------
    def set_target(self, mask: LabelMap | None, image: Volume | None, *,
                   tissue: LabelMap | None = None,
                   probability: np.ndarray | None = None) -> None:
        """Follow a new edited mask: forget every finding; the whole mask is to be measured.

        *tissue* names the tissue around each lesion (the edited mask itself
        when it holds tissue labels); *probability* is a lesion probability
        map on the same grid (its mean inside a lesion is the confidence).
        """
        self.generation += 1
        usable = mask is not None and image is not None and mask.shape == image.shape
        self.mask = mask if usable else None
        self.image = image if usable else None
        self.tissue = tissue if usable and tissue is not None and \
            tissue.shape == image.shape else None  # type: ignore[union-attr]
        self.probability = self._checked(probability)
        self.rows = []
        self._gone = []
        self._next_number = 1
        self._first_pass = True
        self._pending = _full(self.mask.shape) if self.mask is not None else None
        self.changed.emit()

    def set_sources(self, *, tissue: LabelMap | None = None,
                    probability: np.ndarray | None = None) -> None:
        """Another tissue map or probability map: measure again, keeping numbers and states."""
        if self.mask is None:
            return
        self.tissue = tissue if tissue is not None and tissue.shape == self.mask.shape else None
        self.probability = self._checked(probability)
        self.invalidate(None)

    def _checked(self, probability: np.ndarray | None) -> np.ndarray | None:
        if probability is None or self.mask is None:
            return None
        probability = np.asarray(probability)
        if probability.shape != self.mask.shape:
            log.warning("lesion probability map of shape %s ignored: the mask is %s",
                        probability.shape, self.mask.shape)
            return None
        return probability

    def invalidate(self, box: BBox | None) -> None:
        """Voxels of the mask inside *box* changed (None: anywhere)."""
        if self.mask is None:
            return
        box = _normalise(box, self.mask.shape)
        self._pending = box if self._pending is None else _union(self._pending, box)

    @property
    def pending(self) -> bool:
        """Some change of the mask is not measured yet."""
        return self._pending is not None

    # -- re-measuring ------------------------------------------------------------------------
    def prepare(self) -> Remeasure | None:
        """The re-measurement the pending changes need (None: nothing pending).

        The region is the changed box grown by the measuring shell, then by
        every lesion whose box (grown by one voxel) meets it, until none does:
        every lesion found inside it is whole, every lesion outside it keeps
        its voxels and its surroundings.
        """
        if self._pending is None or self.mask is None or self.image is None:
            return None
        shape = self.mask.shape
        region = _grow(self._pending, _shell_pad(self.image), shape)
        self._pending = None
        replaced: set[int] = set()
        present = [row for row in self.rows if row.present]
        grew = True
        while grew:
            grew = False
            for row in present:
                if row.number not in replaced and _meets(_grow(row.voxels.box, 1, shape), region):
                    replaced.add(row.number)
                    region = _union(region, row.voxels.box)
                    grew = True
        return Remeasure(self.mask.array, self.image, self.tissue,
                         self.tissue is self.mask, self.probability, region, replaced,
                         self.lesion_value, self.generation)

    def update(self) -> bool:
        """Measure the pending changes now, in this thread; True when the rows changed."""
        work = self.prepare()
        if work is None:
            return False
        return self.adopt(work, work.run())

    def adopt(self, work: Remeasure, found: list[tuple[LesionVoxels, Finding]]) -> bool:
        """Take the result of *work* into the rows (dropped if the mask was replaced since)."""
        if work.generation != self.generation:
            return False
        old = [row for row in self.rows if row.number in work.replaced and row.present]
        candidates = [row for row in self.rows if not row.present] + self._gone
        taken: dict[int, FindingRow] = {}
        # Each lesion found takes the number of the old lesion it overlaps most; then of a
        # rejected or erased one (an undo brought it back); then a new number.
        for pool in (old, candidates):
            pairs = sorted(((v.overlap(row.voxels), n, row) for n, (v, _) in enumerate(found)
                            if n not in taken for row in pool), key=lambda t: (-t[0], t[1]))
            used: set[int] = {row.number for row in taken.values()}
            for overlap, n, row in pairs:
                if overlap > 0 and n not in taken and row.number not in used:
                    taken[n] = row
                    used.add(row.number)
        new = sorted((n for n in range(len(found)) if n not in taken),
                     key=lambda n: (-found[n][0].count, found[n][0].first))
        kept = {row.number for row in taken.values()}
        for row in old:
            if row.number not in kept:
                row.present = False
                if row.was_rejected and row.status != REJECTED:  # the rejection redone
                    row.before_reject, row.status = row.status, REJECTED
                if row.status != REJECTED:  # erased by hand: leaves the list
                    self.rows.remove(row)
                    self._gone = [*self._gone, row][-_GONE_KEPT:]
        for n, row in taken.items():
            voxels, finding = found[n]
            self._fill(row, voxels, finding)
            if not row.present:
                row.present = True
                if row.status == REJECTED:
                    row.status = row.before_reject
            if row in self._gone:
                self._gone.remove(row)
                self.rows.append(row)
        for n in new:
            voxels, finding = found[n]
            row = FindingRow(self._next_number, finding, voxels, drawn=not self._first_pass)
            self._next_number += 1
            self._fill(row, voxels, finding)
            self.rows.append(row)
        self.rows.sort(key=lambda row: row.number)
        self._first_pass = False
        self.changed.emit()
        return True

    @staticmethod
    def _fill(row: FindingRow, voxels: LesionVoxels, finding: Finding) -> None:
        row.voxels = voxels
        row.finding = dataclasses.replace(
            finding, id=row.number, confidence=None if row.drawn else finding.confidence)

    # -- review -------------------------------------------------------------------------------
    def row(self, number: int) -> FindingRow | None:
        """The finding numbered *number*, or None."""
        return next((row for row in self.rows if row.number == number), None)

    def set_status(self, number: int, status: str) -> None:
        """Mark a finding in the mask pending or accepted (rejecting is :meth:`reject_diff`)."""
        if status not in (PENDING, ACCEPTED):
            raise ValueError(f"status must be {PENDING!r} or {ACCEPTED!r}, not {status!r}")
        row = self.row(number)
        if row is not None and row.present and row.status != status:
            row.status = status
            self.changed.emit()

    def reject_diff(self, number: int) -> Diff | None:
        """The change that removes finding *number* from the mask, and mark it rejected.

        Each of its voxels takes the label of the nearest voxel around that is
        no lesion (the tissue it lies in, or background). The mask is not
        changed here: apply the diff as one undo step
        (:meth:`engine.editing.session.EditingSession.apply_diff`). None when
        the finding is not in the mask.
        """
        row = self.row(number)
        if row is None or not row.present or self.mask is None or self.image is None:
            return None
        labels = self.mask.array
        box = row.voxels.box
        mask = row.voxels.mask & (labels[box] == self.lesion_value)
        if not mask.any():
            return None
        crop = _grow(box, 2, labels.shape)
        around = labels[crop]
        lesion = around == self.lesion_value
        inner = tuple(slice(b.start - c.start, b.stop - c.start)
                      for b, c in zip(box, crop, strict=True))
        if lesion.all():
            fill = np.zeros(int(mask.sum()), labels.dtype)
        else:
            _, nearest = ndimage.distance_transform_edt(lesion, sampling=self.image.spacing,
                                                        return_indices=True)
            values = around[tuple(nearest)]
            fill = values[inner][mask].astype(labels.dtype)
        diff = Diff(tuple((s.start, s.stop) for s in box), mask,  # type: ignore[arg-type]
                    labels[box][mask].copy(), fill)
        row.before_reject = row.status
        row.status = REJECTED
        row.was_rejected = True
        self.changed.emit()
        return diff

    def undo_reject_mark(self, number: int) -> None:
        """The rejection of *number* could not be applied: give it its status back."""
        row = self.row(number)
        if row is not None and row.present and row.status == REJECTED:
            row.status = row.before_reject
            row.was_rejected = False
            self.changed.emit()
