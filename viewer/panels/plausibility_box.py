"""Is the selected result plausible? The verdict, the uncertainty layer, the next doubt.

Shown in the Methods dock under the result chooser. For the selected result
layer it shows the verdict of :func:`engine.evaluation.plausibility.assess`
("Looks typical" in green, "Review this" in orange with the reasons), lets the
reader show its uncertainty layer, and jumps the three views to the next
uncertain region not yet visited (most uncertain first; Segment → Next
Uncertain Region, ``U``).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.evaluation.plausibility import UncertainRegion

from ..cursor import Cursor
from ..layers import LabelLayer, LayerStack

__all__ = ["PlausibilityBox"]

_TYPICAL = "color: #9ccc65;"
_REVIEW = "color: #ffb74d;"
_MUTED = "color: #8a919c;"


class PlausibilityBox(QWidget):
    """Verdict, uncertainty toggle and "next uncertain region" for one result layer.

    Parameters
    ----------
    layers : LayerStack
    cursor : Cursor
        Moved to the centre of each uncertain region in turn.
    selected : callable
        Returns the result layer the reader has selected (or None).
    regions_of : callable
        ``regions_of(layer) -> list[UncertainRegion]``, most uncertain first.
    message : callable
        Shows a short note (the window's status bar).
    """

    def __init__(self, layers: LayerStack, cursor: Cursor,
                 selected: Callable[[], LabelLayer | None],
                 regions_of: Callable[[LabelLayer], list[UncertainRegion]],
                 message: Callable[[str], Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers = layers
        self.cursor = cursor
        self.selected = selected
        self.regions_of = regions_of
        self.message = message
        #: Regions visited per result layer (by identity of its label map).
        self._visited: dict[int, set[int]] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        self.verdict = QLabel("", self)
        self.verdict.setObjectName("plausibilityVerdict")
        self.verdict.setWordWrap(True)
        layout.addWidget(self.verdict)
        row = QHBoxLayout()
        self.show_uncertainty = QCheckBox("Show uncertainty", self)
        self.show_uncertainty.setObjectName("showUncertainty")
        self.show_uncertainty.setToolTip(
            "Show where the network hesitated: the normalised entropy of its class "
            "probabilities in bands (yellow some doubt, orange uncertain, red very uncertain)")
        self.next_button = QPushButton("Next Uncertain Region", self)
        self.next_button.setObjectName("nextUncertain")
        self.next_button.setToolTip("Move the views to the most uncertain region not yet "
                                    "visited (U)")
        row.addWidget(self.show_uncertainty)
        row.addWidget(self.next_button)
        layout.addLayout(row)
        self.show_uncertainty.toggled.connect(self._toggle_uncertainty)
        self.next_button.clicked.connect(self.next_region)
        self.refresh()

    # -- state -----------------------------------------------------------------------------
    def _uncertainty_layer(self, layer: LabelLayer | None) -> LabelLayer | None:
        if layer is None:
            return None
        name = layer.labelmap.metadata.get("uncertainty_layer")
        return next((lay for lay in self.layers.labels
                     if lay.role == "uncertainty" and lay.name == name), None)

    def refresh(self) -> None:
        """Show the verdict of the selected result (call when the selection changes)."""
        layer = self.selected()
        facts = layer.labelmap.metadata.get("plausibility") if layer is not None else None
        if not facts:
            self.verdict.setStyleSheet(_MUTED)
            self.verdict.setText("No plausibility report (run a pipeline)" if layer is None
                                 else "No plausibility report for this layer")
            self.verdict.setToolTip("")
        else:
            reasons = facts.get("reasons") or []
            typical = not reasons
            self.verdict.setStyleSheet(_TYPICAL if typical else _REVIEW)
            head = "✓ Looks typical" if typical else "⚠ Review this: " + "; ".join(reasons)
            self.verdict.setText(head)
            self.verdict.setToolTip(_details(facts))
        bands = self._uncertainty_layer(layer)
        self.show_uncertainty.blockSignals(True)
        self.show_uncertainty.setChecked(bool(bands is not None and bands.visible))
        self.show_uncertainty.blockSignals(False)
        self.show_uncertainty.setEnabled(bands is not None)
        has_regions = layer is not None and bool(self.regions_of(layer))
        self.next_button.setEnabled(has_regions)

    def _toggle_uncertainty(self, shown: bool) -> None:
        bands = self._uncertainty_layer(self.selected())
        if bands is not None:
            bands.set_visible(shown)

    # -- navigation --------------------------------------------------------------------------
    def next_region(self) -> UncertainRegion | None:
        """Move the cursor to the most uncertain region of the selected result not yet visited.

        After the last one the tour starts again from the first. Returns the region,
        or None when the selected result has no uncertain regions.
        """
        layer = self.selected()
        regions = self.regions_of(layer) if layer is not None else []
        if not regions:
            self.message("No uncertain regions in this result")
            return None
        visited = self._visited.setdefault(id(layer.labelmap), set())
        if len(visited) >= len(regions):
            visited.clear()
        region = next(r for r in regions if r.index not in visited)
        visited.add(region.index)
        self.cursor.set(region.centroid)
        self.message(f"Uncertain region {region.index + 1} of {len(regions)}: "
                     f"{region.voxels:,} voxels, mean uncertainty "
                     f"{region.mean_uncertainty:.2f} ({len(visited)} visited)")
        return region


def _details(facts: dict[str, Any]) -> str:
    """The tooltip: every figure of the report."""
    rows = [f"Labelled volume: {facts.get('labelled_ml', 0):.0f} mL"]
    for name, ml in (facts.get("volumes_ml") or {}).items():
        share = (facts.get("fractions") or {}).get(name, 0.0)
        rows.append(f"{name}: {ml:.0f} mL ({100 * share:.0f}%)")
    if facts.get("uncertainty_mean") is not None:
        rows.append(f"Uncertainty: mean {facts['uncertainty_mean']:.3f}, "
                    f"95th percentile {facts.get('uncertainty_p95', 0):.3f}, "
                    f"{100 * facts.get('uncertain_fraction', 0):.1f}% of voxels above 0.5")
    if facts.get("no_signal_fraction") is not None:
        rows.append(f"Labelled voxels without signal: "
                    f"{100 * facts['no_signal_fraction']:.1f}%")
    rows.append("Ranges: wide adult screening bounds (docs/pipelines.md, Plausibility)")
    return "<br>".join(html.escape(r) for r in rows)
