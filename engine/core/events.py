"""Plain events: how a Qt-free model tells its listeners that something happened.

A model declares its events as class attributes; every instance gets its own
:class:`Event`. A listener is any callable, connected with
:meth:`Event.connect`, which returns a :class:`Connection` -- the handle that
disconnects it again::

    class Counter:
        changed = DeclaredEvent("The count changed; called with the new count.")

        def __init__(self) -> None:
            self.count = 0

        def add(self) -> None:
            self.count += 1
            self.changed.emit(self.count)

    counter = Counter()
    handle = counter.changed.connect(lambda n: print("now", n))
    counter.add()          # prints "now 1"
    handle.disconnect()

Rules every listener can rely on:

* **Bound methods are held weakly.** ``event.connect(widget.refresh)`` does
  not keep *widget* alive: once it is garbage-collected, its listener is gone
  by itself. Every other callable (a lambda, a closure, a function) is held
  strongly until its handle is disconnected (or ``event.disconnect(callback)``
  is called with the same object).
* **One failing listener does not stop the others.** :meth:`Event.emit` calls
  every listener in the order they were connected; an exception is logged
  (``logging.exception``, with the event's name) and the next listener is
  called. ``emit`` itself never raises a listener's exception.
* A listener disconnected while an event is being emitted is not called
  any more, even by that emission; one connected meanwhile waits for the next.
* Connecting the same callable twice connects it once (and returns the same
  handle).
* Inside ``with event.held():`` emissions are gathered and made once when the
  outermost block ends, with the last emission's arguments: for events whose
  listeners read the model again (a change made of several steps is announced
  once).

Qt stays out of the engine: widgets of the viewer subscribe to these events
and disconnect when they are destroyed (:func:`viewer.subscriptions.subscribe`).

Examples
--------
>>> class Model:
...     changed = DeclaredEvent("Something changed.")
>>> model, seen = Model(), []
>>> handle = model.changed.connect(seen.append)
>>> model.changed.emit(1); handle.disconnect(); model.changed.emit(2)
>>> seen
[1]
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Connection", "DeclaredEvent", "Event"]

log = logging.getLogger(__name__)


def _weak_method(callback: Callable[..., Any],
                 on_dead: Callable[[Any], None]) -> weakref.WeakMethod | None:
    """A weak reference to *callback* if it is a bound method of a weak-referenceable object."""
    if not inspect.ismethod(callback):
        return None
    try:
        return weakref.WeakMethod(callback, on_dead)
    except TypeError:  # the object has no __weakref__ slot: hold the method strongly
        return None


class Connection:
    """One listener of one :class:`Event`: what :meth:`Event.connect` returns.

    Holds the event weakly, so a handle kept by a listener does not keep the
    model alive.
    """

    __slots__ = ("__weakref__", "_event", "_strong", "_weak")

    def __init__(self, event: Event, callback: Callable[..., Any]) -> None:
        self._event: weakref.ref[Event] | None = weakref.ref(event)
        self._weak = _weak_method(callback, self._owner_gone)
        self._strong: Callable[..., Any] | None = None if self._weak is not None else callback

    def _owner_gone(self, _ref: object) -> None:
        self.disconnect()

    @property
    def callback(self) -> Callable[..., Any] | None:
        """The listener, or None once disconnected (or its object was collected)."""
        if self._event is None:
            return None
        if self._weak is not None:
            return self._weak()
        return self._strong

    @property
    def connected(self) -> bool:
        return self.callback is not None

    def disconnect(self) -> None:
        """Stop calling the listener (harmless when already disconnected)."""
        event = self._event() if self._event is not None else None
        self._event = None
        self._strong = None
        if event is not None:
            event._forget(self)

    def matches(self, callback: Callable[..., Any]) -> bool:
        """True when this connection calls *callback* (the same function or bound method)."""
        mine = self.callback
        if mine is None:
            return False
        if inspect.ismethod(mine) and inspect.ismethod(callback):
            return mine.__self__ is callback.__self__ and mine.__func__ is callback.__func__
        return mine is callback or mine == callback

    def __repr__(self) -> str:
        state = "connected" if self.connected else "disconnected"
        return f"<Connection {state} {self.callback!r}>"


class Event:
    """Listeners called in order by :meth:`emit`; see the module's rules.

    Parameters
    ----------
    name : str
        Shown in the log when a listener fails.
    doc : str
        What the event means and what it is called with.
    """

    def __init__(self, name: str = "event", doc: str = "") -> None:
        self.name = name
        self.doc = doc
        self._connections: list[Connection] = []
        self._holds = 0
        self._pending: tuple[Any, ...] | None = None

    def connect(self, callback: Callable[..., Any]) -> Connection:
        """Call *callback* with the event's arguments from now on; returns its handle."""
        if not callable(callback):
            raise TypeError(f"{self.name}: a listener must be callable, not {callback!r}")
        for connection in self._connections:
            if connection.matches(callback):
                return connection
        connection = Connection(self, callback)
        self._connections.append(connection)
        return connection

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        """Disconnect *callback* (nothing happens if it is not connected); None: every listener."""
        for connection in list(self._connections):
            if callback is None or connection.matches(callback):
                connection.disconnect()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Gather the emissions made inside the block; make one, with the last one's
        arguments, when the outermost block ends (even when it ends with an exception)."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            if self._holds == 0 and self._pending is not None:
                args, self._pending = self._pending, None
                self.emit(*args)

    def emit(self, *args: Any) -> None:
        """Call every listener with *args*; a failing one is logged and the others still run.
        While :meth:`held`, only remember *args*."""
        if self._holds:
            self._pending = args
            return
        for connection in list(self._connections):
            callback = connection.callback
            if callback is None:
                continue
            try:
                callback(*args)
            except Exception:
                log.exception("a listener of %s failed: %r", self.name, callback)

    def _forget(self, connection: Connection) -> None:
        if connection in self._connections:
            self._connections.remove(connection)

    @property
    def listeners(self) -> list[Callable[..., Any]]:
        """The callables connected now, in calling order."""
        return [cb for cb in (c.callback for c in self._connections) if cb is not None]

    def __len__(self) -> int:
        return len(self.listeners)

    def __repr__(self) -> str:
        return f"<Event {self.name} ({len(self)} listeners)>"


class DeclaredEvent:
    """A class attribute declaring an event: each instance gets its own :class:`Event`.

    Parameters
    ----------
    doc : str
        What the event means and what its listeners are called with.
    """

    def __init__(self, doc: str = "") -> None:
        self.doc = doc
        self.name = "event"
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object | None, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        event = Event(f"{type(obj).__name__}.{self.name}", self.doc)
        obj.__dict__[self.name] = event  # later lookups find the instance's own event
        return event
