"""Help → About the Networks: what each shipped network was trained on, from its card.

One tab per network with the rows of :func:`engine.models.cards.card_facts`:
what it segments, its input, the (synthetic, one-anatomy) training data, what
was held out, how it was trained, and its validation figures -- marked as
figures on the training anatomy. :func:`training_anatomy_note` is the line the
window shows when the open image *is* that anatomy (the demo brain), where any
score is flattering.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engine.core.volume import Volume

__all__ = ["ModelInfoDialog", "is_training_anatomy", "training_anatomy_note"]


#: The MNI152 2009a template grid (1 mm, RAS): a volume on it is the training anatomy.
_TEMPLATE_SHAPE = (197, 233, 189)
_TEMPLATE_AFFINE = np.array([[1.0, 0, 0, -98.0], [0, 1.0, 0, -134.0], [0, 0, 1.0, -72.0],
                             [0, 0, 0, 1.0]])


def is_training_anatomy(volume: Volume | None) -> bool:
    """True when *volume* is the anatomy the networks learnt: the MNI152 demo brain, a
    phantom or synthetic head made from it, or any image on the template's own grid."""
    if volume is None:
        return False
    text = str(volume.metadata.get("description", ""))
    if text.startswith(("MNI ICBM152 2009a", "Delineo phantom", "Delineo synthetic head")):
        return True
    return (tuple(volume.shape) == _TEMPLATE_SHAPE
            and np.allclose(volume.affine, _TEMPLATE_AFFINE, atol=1e-3))


def training_anatomy_note(volume: Volume | None) -> str:
    """The warning shown with scores on the training anatomy ("" for any other image)."""
    if not is_training_anatomy(volume):
        return ""
    return ("This image is the anatomy the networks were trained on (the MNI152 template): "
            "their scores here are flattering; expect lower ones on other brains.")


def _facts_html(facts: list[tuple[str, str]]) -> str:
    rows = "".join(
        f"<tr><td style='color:#8a919c; padding:2px 12px 2px 0; vertical-align:top'>"
        f"{html.escape(h)}</td><td style='padding:2px 0'>{html.escape(t)}</td></tr>"
        for h, t in facts)
    return f"<table>{rows}</table>"


class ModelInfoDialog(QDialog):
    """The model cards of the shipped networks, one tab each."""

    def __init__(self, parent: QWidget | None = None,
                 cards: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelInfoDialog")
        self.setWindowTitle("About the Networks")
        self.resize(760, 520)
        layout = QVBoxLayout(self)
        intro = QLabel("Delineo's own networks were trained on synthetic data only: "
                       "phantoms rendered from one anatomy, the MNI152 template; their "
                       "figures below are on that anatomy. Brain extraction of whole heads "
                       "uses deepbet, a network its authors trained on real T1 scans.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        # here, not at the top: these modules import torch, which the window's start
        # does not need (benchmarks/bench_viewer.py, first display)
        from engine.methods.brain_extraction import brain_extractor_facts
        from engine.models.cards import card_facts, model_cards

        self.tabs = QTabWidget(self)
        cards = model_cards() if cards is None else cards
        pages = [(name, card_facts(card)) for name, card in cards.items()]
        if cards:
            pages.append(("brain extraction", brain_extractor_facts()))
        for name, facts in pages:
            label = QLabel(_facts_html(facts))
            label.setWordWrap(True)
            label.setTextFormat(Qt.TextFormat.RichText)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            area = QScrollArea(self.tabs)
            area.setWidget(label)
            area.setWidgetResizable(True)
            self.tabs.addTab(area, name)
        if not cards:
            self.tabs.addTab(QLabel("No shipped networks found (resources/models)."), "—")
        layout.addWidget(self.tabs)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
