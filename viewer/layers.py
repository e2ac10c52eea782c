"""The layer model: one image and a stack of label layers, without Qt.

Views and panels subscribe to the layers' plain events
(:class:`engine.core.events.Event`: a failing listener does not stop the
others; bound methods are held weakly; ``connect`` returns a handle) and
never poke at each other; widgets subscribe through
:func:`viewer.subscriptions.subscribe`, which disconnects them when they are
destroyed. A label layer holds a
:class:`~engine.core.volume.LabelMap` and how it is drawn (visibility, opacity,
filled or outline, hidden labels); the colour look-up table and the voxel
counts are cached and rebuilt only when something they depend on changes.

Roles: ``"edit"`` is the mask the user edits (one per image, created empty if
none is opened), ``"truth"`` the ground truth (at most one), ``"result"`` any
number of method results, ``"difference"`` the false-positive / false-negative
overlay of the edited mask against the ground truth (at most one; kept up to
date by :mod:`viewer.edit_session`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from engine.core.events import DeclaredEvent
from engine.core.volume import LabelMap, LabelTable, Volume
from engine.display import auto_window, histogram, label_lut, label_volumes

__all__ = ["BBox", "ImageLayer", "LabelLayer", "LayerStack", "drawing_order"]

log = logging.getLogger(__name__)

#: A box of voxels in canonical array order: one slice per axis.
BBox = tuple[slice, slice, slice]

ROLES = ("edit", "truth", "result", "difference", "uncertainty")

#: Drawing rank of each role, bottom to top: the mask being edited is drawn over the
#: filled references and method results; only outlines (which cover no area) and its own
#: differences go above it.
DRAW_RANK = {"truth": 0, "result": 1, "uncertainty": 1, "edit": 2, "difference": 4}
#: Rank of a reference or result drawn as an outline: over the edited mask.
OUTLINE_RANK = 3


def drawing_order(layers: list[LabelLayer]) -> list[LabelLayer]:
    """*layers* bottom to top as drawn: by :data:`DRAW_RANK` (outlines over the edited
    mask, see :data:`OUTLINE_RANK`), then in list order."""
    def rank(layer: LabelLayer) -> int:
        if layer.outline and layer.role in ("truth", "result", "uncertainty"):
            return OUTLINE_RANK
        return DRAW_RANK.get(layer.role, 1)

    return [lay for _, _, lay in sorted((rank(lay), n, lay) for n, lay in enumerate(layers))]


def _value_range(array: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values, without copying when all are finite."""
    if array.size == 0:
        return 0.0, 1.0
    lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        finite = array[np.isfinite(array)]
        if finite.size == 0:
            return 0.0, 1.0
        lo, hi = float(finite.min()), float(finite.max())
    return lo, hi


class ImageLayer:
    """The image shown in grey levels under the label layers."""

    #: The display window changed; called with ``(low, high)``.
    levels_changed = DeclaredEvent("The display window changed; called with (low, high).")
    #: The colour look-up table changed; called with it (or None for grey).
    lut_changed = DeclaredEvent("The colour table changed; called with it or None.")

    def __init__(self, volume: Volume, *, path: Path | None = None, name: str = "") -> None:
        self.volume = volume
        self.path = path
        self.name = name or (path.name if path else volume.metadata.get("description", "image"))
        self.data_range = _value_range(volume.array)
        self.default_levels = auto_window(volume.array, volume.modality)
        self.levels: tuple[float, float] = self.default_levels
        #: ``(n, 3)`` uint8 colour look-up table, or None for plain grey.
        self.lut: np.ndarray | None = None
        self._histogram: tuple[np.ndarray, np.ndarray] | None = None

    def set_levels(self, low: float, high: float) -> None:
        low, high = float(low), float(high)
        if high <= low:
            high = low + max(1e-6, abs(low) * 1e-6)
        if (low, high) != self.levels:
            self.levels = (low, high)
            self.levels_changed.emit(self.levels)

    def reset_levels(self) -> None:
        self.set_levels(*self.default_levels)

    def set_lut(self, lut: np.ndarray | None) -> None:
        self.lut = lut
        self.lut_changed.emit(lut)

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Cached ``(bin centres, counts)`` of the voxel values."""
        if self._histogram is None:
            self._histogram = histogram(self.volume.array)
        return self._histogram

    def value_at(self, ijk: tuple[int, int, int]) -> float:
        return float(self.volume.array[ijk])


class LabelLayer:
    """A label map and how it is drawn."""

    #: Display properties changed (visibility, opacity, outline, colours); called with the layer.
    display_changed = DeclaredEvent("How the layer is drawn changed; called with the layer.")
    #: Voxels changed: called with a :data:`BBox` or None for "everywhere".
    data_changed = DeclaredEvent("Voxels changed; called with a box or None (everywhere).")

    def __init__(
        self,
        labelmap: LabelMap,
        *,
        name: str,
        role: str = "result",
        path: Path | None = None,
        opacity: float = 0.5,
        outline: bool = False,
        visible: bool = True,
        counts: dict[int, tuple[int, float]] | None = None,
    ) -> None:
        """*counts*: the label volumes of *labelmap*'s array when already counted (in a
        worker thread), so that the GUI thread does not count them again."""
        if role not in ROLES:
            raise ValueError(f"unknown layer role {role!r}; expected one of {ROLES}")
        self.labelmap = labelmap
        self.name = name
        self.role = role
        self.path = path
        self.visible = visible
        self.opacity = float(opacity)
        self.outline = outline
        self.hidden: set[int] = set()
        self.modified = False
        self._lut: np.ndarray | None = None
        self._counts: dict[int, tuple[int, float]] | None = None if counts is None else dict(counts)

    # -- display ---------------------------------------------------------------
    def set_visible(self, visible: bool) -> None:
        if visible != self.visible:
            self.visible = bool(visible)
            self.display_changed.emit(self)

    def set_opacity(self, opacity: float) -> None:
        opacity = float(min(1.0, max(0.0, opacity)))
        if opacity != self.opacity:
            self.opacity = opacity
            self.display_changed.emit(self)

    def set_outline(self, outline: bool) -> None:
        if outline != self.outline:
            self.outline = bool(outline)
            self.display_changed.emit(self)

    def set_label_visible(self, value: int, visible: bool) -> None:
        before = set(self.hidden)
        if visible:
            self.hidden.discard(int(value))
        else:
            self.hidden.add(int(value))
        if self.hidden != before:
            self._lut = None
            self.display_changed.emit(self)

    def set_label_table(self, table: LabelTable) -> None:
        """Replace the label table (names and colours), e.g. after adding a label."""
        self.labelmap.labels = table
        self._lut = None
        self.display_changed.emit(self)

    @property
    def lut(self) -> np.ndarray:
        """RGBA look-up table covering every value in the table and the mask."""
        if self._lut is None:
            present = self.counts().keys()
            top = max([0, *self.labelmap.labels, *present])
            self._lut = label_lut(
                self.labelmap.labels, top + 1, values=present, hidden=self.hidden
            )
        return self._lut

    # -- data ------------------------------------------------------------------
    def counts(self) -> dict[int, tuple[int, float]]:
        """Cached ``{value: (voxels, mL)}`` of the values present."""
        if self._counts is None:
            self._counts = label_volumes(self.labelmap.array, self.labelmap.voxel_volume_ml)
        return self._counts

    def set_counts(self, counts: dict[int, tuple[int, float]]) -> None:
        """The label volumes of the array as it is now, counted elsewhere (the array was
        just made a copy of another layer's, whose counts these are)."""
        self._counts = dict(counts)

    def notify_changed(self, bbox: BBox | None = None) -> None:
        """Say that voxels inside *bbox* (None: anywhere) were changed."""
        self._counts = None
        if self._lut is not None and bbox is not None:
            region = self.labelmap.array[bbox]
            if region.size and int(region.max()) >= self._lut.shape[0]:
                self._lut = None
        else:
            self._lut = None
        self.data_changed.emit(bbox)

    def label_at(self, ijk: tuple[int, int, int]) -> int:
        return int(self.labelmap.array[ijk])


class LayerStack:
    """The image and its label layers, bottom to top, plus global overlay settings."""

    #: The image was replaced (every label layer was removed first); called with it.
    image_changed = DeclaredEvent("The image was replaced; called with the new ImageLayer.")
    #: A label layer was added or removed, or the order changed.
    layers_changed = DeclaredEvent("A label layer was added or removed.")
    #: Global overlay settings changed (opacity, all labels shown).
    overlay_changed = DeclaredEvent("The global overlay opacity or visibility changed.")

    def __init__(self) -> None:
        self.image: ImageLayer | None = None
        self.labels: list[LabelLayer] = []
        self.global_opacity = 1.0
        self.labels_shown = True

    # -- image -----------------------------------------------------------------
    def set_image(self, volume: Volume, *, path: Path | None = None, name: str = "") -> ImageLayer:
        self.labels.clear()
        self.image = ImageLayer(volume, path=path, name=name)
        self.image_changed.emit(self.image)
        self.layers_changed.emit()
        return self.image

    # -- label layers ------------------------------------------------------------
    def add_labels(
        self,
        labelmap: LabelMap,
        *,
        name: str,
        role: str = "result",
        path: Path | None = None,
        **display: Any,
    ) -> LabelLayer:
        """Add a layer on top; an ``edit`` or ``truth`` layer replaces the previous one."""
        if self.image is None:
            raise RuntimeError("open an image before its label maps")
        if labelmap.shape != self.image.volume.shape:
            raise ValueError(
                f"label map shape {labelmap.shape} differs from the image {self.image.volume.shape}"
            )
        if (role == "truth" and "outline" not in display and self.edited is not None
                and self.edited.labelmap.array.any()):
            # With a mask to correct, the reference is an outline: the mask stays visible.
            display["outline"] = True
        layer = LabelLayer(labelmap, name=name, role=role, path=path, **display)
        if role in ("edit", "truth", "difference"):
            old = self.by_role(role)
            if old is not None:
                self.labels[self.labels.index(old)] = layer
                self.layers_changed.emit()
                return layer
        if role == "edit":
            self.labels.insert(0, layer)
        elif role == "truth":
            at = 1 if self.edited is not None else 0
            self.labels.insert(at, layer)
        else:
            self.labels.append(layer)
        self.layers_changed.emit()
        return layer

    def remove(self, layer: LabelLayer) -> None:
        if layer in self.labels:
            self.labels.remove(layer)
            self.layers_changed.emit()

    def by_role(self, role: str) -> LabelLayer | None:
        return next((lay for lay in self.labels if lay.role == role), None)

    @property
    def edited(self) -> LabelLayer | None:
        """The mask being edited."""
        return self.by_role("edit")

    @property
    def ground_truth(self) -> LabelLayer | None:
        return self.by_role("truth")

    # -- global overlay settings --------------------------------------------------
    def set_global_opacity(self, opacity: float) -> None:
        opacity = float(min(1.0, max(0.0, opacity)))
        if opacity != self.global_opacity:
            self.global_opacity = opacity
            self.overlay_changed.emit()

    def set_labels_shown(self, shown: bool) -> None:
        if shown != self.labels_shown:
            self.labels_shown = bool(shown)
            self.overlay_changed.emit()

    def effective_opacity(self, layer: LabelLayer) -> float:
        """Opacity a layer is drawn with (0 when hidden)."""
        if not (self.labels_shown and layer.visible):
            return 0.0
        return layer.opacity * self.global_opacity
