"""Widgets listening to the plain events of the Qt-free models, for as long as they live.

The models (:mod:`viewer.layers`, :class:`engine.editing.session.EditingSession`)
emit :class:`engine.core.events.Event` objects; Qt signals stay inside the
widgets. A widget subscribes with :func:`subscribe`, which connects the
listener and disconnects it when the widget's C++ object is destroyed (its
``destroyed`` signal) -- so a closed panel or a removed view never receives
an event again, even when its listener is a lambda the event holds strongly::

    subscribe(self, layers.layers_changed, self.rebuild)
    subscribe(self, session.selected_label_changed, lambda _v: self.sync_labels())
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject

from engine.core.events import Connection, Event

__all__ = ["subscribe"]


_HANDLES = "_delineo_event_connections"


def subscribe(owner: QObject, event: Event, callback: Callable[..., Any]) -> Connection:
    """Connect *callback* to *event* until *owner* is destroyed; returns the handle.

    The handle may also be disconnected earlier (e.g. when the widget stops
    showing a layer). One ``destroyed`` hook per owner disconnects all of its
    handles.
    """
    connection = event.connect(callback)
    handles: list[Connection] | None = getattr(owner, _HANDLES, None)
    if handles is None:
        handles = []
        setattr(owner, _HANDLES, handles)
        # The slot holds only the list of handles, never the owner: nothing keeps it alive.
        owner.destroyed.connect(lambda *_args, hs=handles: _disconnect_all(hs))
    handles[:] = [h for h in handles if h.connected]
    handles.append(connection)
    return connection


def _disconnect_all(handles: list[Connection]) -> None:
    for handle in handles:
        handle.disconnect()
    handles.clear()
