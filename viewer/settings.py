"""Persistent user settings (``QSettings``): convention, layout, recent files, undo memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings

from engine.display import CONVENTIONS

if TYPE_CHECKING:
    from engine.pacs.client import PacsServer

__all__ = ["DEFAULT_HISTORY_MB", "MAX_RECENT", "Settings"]

MAX_RECENT = 10
DEFAULT_HISTORY_MB = 256
MIN_HISTORY_MB = 16
MAX_HISTORY_MB = 16384


class Settings:
    """Typed access to the application's ``QSettings``.

    Pass a ``QSettings`` (tests use an INI file in a temporary folder);
    by default the platform's native store for organisation and application
    "Delineo" is used.
    """

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store if store is not None else QSettings("Delineo", "Delineo")

    # -- display -----------------------------------------------------------------
    @property
    def convention(self) -> str:
        value = str(self.store.value("display/convention", "radiological"))
        return value if value in CONVENTIONS else "radiological"

    @convention.setter
    def convention(self, value: str) -> None:
        if value not in CONVENTIONS:
            raise ValueError(f"unknown convention {value!r}")
        self.store.setValue("display/convention", value)

    @property
    def layout(self) -> str:
        return str(self.store.value("display/layout", "2x2"))

    @layout.setter
    def layout(self, value: str) -> None:
        self.store.setValue("display/layout", value)

    # -- files -------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.store.value("files/recent", [])
        if isinstance(value, str):  # QSettings returns a lone entry as a string
            value = [value]
        return [str(v) for v in (value or []) if str(v)]

    def add_recent(self, path: str | Path) -> None:
        text = str(Path(path).resolve())
        items = [p for p in self.recent_files() if p != text]
        self.store.setValue("files/recent", [text, *items][:MAX_RECENT])

    def remove_recent(self, path: str) -> None:
        self.store.setValue("files/recent", [p for p in self.recent_files() if p != path])

    def clear_recent(self) -> None:
        self.store.setValue("files/recent", [])

    @property
    def last_dir(self) -> str:
        return str(self.store.value("files/last_dir", str(Path.home())))

    @last_dir.setter
    def last_dir(self, value: str) -> None:
        self.store.setValue("files/last_dir", value)

    # -- editing -----------------------------------------------------------------
    @property
    def history_mb(self) -> int:
        """Memory budget of the undo history, in MiB (default 256)."""
        try:
            value = int(self.store.value("editing/history_mb", DEFAULT_HISTORY_MB))
        except (TypeError, ValueError):
            value = DEFAULT_HISTORY_MB
        return min(MAX_HISTORY_MB, max(MIN_HISTORY_MB, value))

    @history_mb.setter
    def history_mb(self, value: int) -> None:
        self.store.setValue("editing/history_mb", int(min(MAX_HISTORY_MB,
                                                          max(MIN_HISTORY_MB, int(value)))))

    # -- window ------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.store.value("window/geometry"), self.store.value("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.store.setValue("window/geometry", geometry)
        self.store.setValue("window/state", state)

    # -- PACS servers (never a password or token: those are asked per session) ------------
    def pacs_servers(self) -> list[PacsServer]:
        """The servers of File → Open from PACS (name, URL, auth kind, user)."""
        from engine.pacs.client import PacsServer

        raw = self.store.value("pacs/servers", "[]")
        try:
            items = json.loads(str(raw))
        except ValueError:
            return []
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and item.get("name") and item.get("url"):
                out.append(PacsServer(name=str(item["name"]), url=str(item["url"]),
                                      auth_kind=str(item.get("auth_kind", "none")),
                                      user=str(item.get("user", ""))))
        return out

    def save_pacs_server(self, server: PacsServer) -> None:
        """Add *server* (or replace the one of that name); no secret is stored."""
        servers = [s for s in self.pacs_servers() if s.name != server.name] + [server]
        self.store.setValue("pacs/servers", json.dumps(
            [{"name": s.name, "url": s.url, "auth_kind": s.auth_kind, "user": s.user}
             for s in servers]))

