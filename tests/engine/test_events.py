"""Plain events (engine.core.events): weak bound methods, handles, and emission that a
failing listener cannot stop."""

from __future__ import annotations

import gc
import logging

import pytest

from engine.core.events import Connection, DeclaredEvent, Event


class Model:
    changed = DeclaredEvent("Something changed; called with a number.")
    renamed = DeclaredEvent("The name changed.")


class Listener:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_changed(self, value: int) -> None:
        self.seen.append(value)


@pytest.mark.listener_errors
def test_every_listener_runs_even_when_one_raises(caplog):
    model, seen = Model(), []

    def broken(value):
        raise RuntimeError(f"listener broke on {value}")

    model.changed.connect(lambda v: seen.append(("first", v)))
    model.changed.connect(broken)
    model.changed.connect(lambda v: seen.append(("last", v)))
    with caplog.at_level(logging.ERROR, logger="engine.core.events"):
        model.changed.emit(7)  # does not raise
    assert seen == [("first", 7), ("last", 7)]
    [record] = caplog.records
    assert "Model.changed" in record.getMessage() and record.exc_info is not None
    assert "listener broke on 7" in str(record.exc_info[1])


def test_bound_methods_are_held_weakly_and_vanish_with_their_object():
    model, listener = Model(), Listener()
    handle = model.changed.connect(listener.on_changed)
    model.changed.emit(1)
    assert listener.seen == [1] and len(model.changed) == 1
    del listener
    gc.collect()
    assert len(model.changed) == 0 and not handle.connected
    model.changed.emit(2)  # nobody left, nothing raised


def test_lambdas_are_held_until_their_handle_disconnects():
    model, seen = Model(), []
    handle = model.changed.connect(lambda v: seen.append(v))  # nothing else holds the lambda
    gc.collect()
    model.changed.emit(1)
    assert isinstance(handle, Connection) and handle.connected
    handle.disconnect()
    handle.disconnect()  # harmless twice
    model.changed.emit(2)
    assert seen == [1] and len(model.changed) == 0


def test_disconnect_by_callback_and_connecting_twice_connects_once():
    model, listener, seen = Model(), Listener(), []
    first = model.changed.connect(listener.on_changed)
    assert model.changed.connect(listener.on_changed) is first  # a new bound-method object
    model.changed.connect(seen.append)
    model.changed.emit(1)
    model.changed.disconnect(listener.on_changed)
    model.changed.emit(2)
    model.changed.disconnect(seen.append)
    model.changed.emit(3)
    assert listener.seen == [1] and seen == [1, 2]
    with pytest.raises(TypeError, match="callable"):
        model.changed.connect(42)


def test_a_listener_disconnected_during_an_emission_is_not_called():
    model, seen = Model(), []
    later = None

    def first(value):
        seen.append(("first", value))
        later.disconnect()
        model.changed.connect(lambda v: seen.append(("new", v)))  # waits for the next emit

    model.changed.connect(first)
    later = model.changed.connect(lambda v: seen.append(("later", v)))
    model.changed.emit(1)
    assert seen == [("first", 1)]
    model.changed.emit(2)
    assert seen == [("first", 1), ("first", 2), ("new", 2)]


def test_declared_events_belong_to_each_instance():
    a, b, seen = Model(), Model(), []
    assert a.changed is a.changed and a.changed is not b.changed
    assert a.changed is not a.renamed
    a.changed.connect(seen.append)
    b.changed.emit(5)
    a.changed.emit(6)
    assert seen == [6]
    assert Model.changed.doc.startswith("Something changed") and a.changed.name == "Model.changed"
    plain = Event("plain")
    plain.connect(seen.append)
    plain.emit(7)
    assert seen == [6, 7] and plain.listeners == [seen.append]


def test_held_emissions_are_made_once_with_the_last_arguments_at_the_outermost_end():
    event, seen = Event("e"), []
    event.connect(seen.append)
    with event.held():
        event.emit(1)
        with event.held():
            event.emit(2)
        assert seen == []  # the inner block's end is not the outermost
        event.emit(3)
    assert seen == [3]
    with event.held():
        pass  # nothing emitted: nothing made
    event.emit(4)  # and outside a block, at once
    assert seen == [3, 4]


def test_a_held_emission_is_made_even_when_the_block_raises():
    event, seen = Event("e"), []
    event.connect(lambda: seen.append("called"))

    def failing_step() -> None:
        with event.held():
            event.emit()
            raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        failing_step()
    assert seen == ["called"]
