"""The shortcut table binds every key, the gestures are unambiguous, and the
Help reference and the user guide list exactly that table."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtGui import QKeySequence

from viewer.shortcuts import KEYS, MOUSE, find_gesture, reference_html, reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_is_bound_once():
    seen: dict[str, str] = {}
    for row in KEYS:
        for key in row.keys:
            text = QKeySequence(key).toString()
            assert text, f"{row.action}: {key!r} is not a valid key sequence"
            assert text not in seen, f"{key} bound to {seen.get(text)} and {row.action}"
            seen[text] = row.action
    assert len({row.action for row in KEYS}) == len(KEYS)


def test_gestures_are_unambiguous_and_found():
    pairs = [(row.button, row.modifiers) for row in MOUSE]
    assert len(pairs) == len(set(pairs))
    for row in MOUSE:
        assert find_gesture(row.button, row.modifiers) == row.gesture
    assert find_gesture("left", "Alt") is None
    assert find_gesture("left", "Shift") == "window_level"
    assert find_gesture("wheel", "Ctrl") == "zoom"


@pytest.mark.gui
def test_every_binding_has_a_handler_and_an_action(window):
    handlers = window._handlers()
    assert set(handlers) == {row.action for row in KEYS}
    for row in KEYS:
        action = window.actions_[row.action]
        assert [s.toString() for s in action.shortcuts()] == \
            [QKeySequence(k).toString() for k in row.keys]
        owner = window.grid if row.views_only else window
        assert action in owner.actions()


def test_reference_lists_every_row():
    html = reference_html()
    md = reference_markdown()
    for row in KEYS:
        assert row.text.replace("&", "").rstrip("…") in md
    for row in MOUSE:
        assert row.text.replace("|", "/") in md
        assert row.text.split("—")[0].strip()[:20] in html


def test_user_guide_embeds_the_generated_reference():
    guide = (ROOT / "docs" / "user-guide.md").read_text(encoding="utf-8")
    assert reference_markdown().strip() in guide, (
        "docs/user-guide.md is out of date: paste viewer.shortcuts.reference_markdown()")
