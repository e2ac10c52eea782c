"""Child process of test_recovery.py: the app, offscreen, paints and then waits to be killed.

``python recovery_child.py IMAGE LABELS|- EXPECTED.npy``: opens IMAGE (and
LABELS as the edited mask), draws three brush strokes and one fill with real
mouse events, saves the mask to EXPECTED.npy, starts a fourth stroke that is
never finished (button still down), prints ``ready`` and waits.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1])]

import numpy as np  # noqa: E402
from PySide6.QtCore import QEvent, QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from viewer.app import create_application  # noqa: E402
from viewer.main_window import MainWindow  # noqa: E402
from viewer.settings import Settings  # noqa: E402


class NoQuestions:
    """The child expects no dialog: any question is written to stderr and answered "no"."""

    def __getattr__(self, name: str):
        def answer(*args: object) -> None:
            sys.stderr.write(f"unexpected dialog: {name}{args}\n")

        return answer


def pixel_of(view, ijk) -> QPoint:
    """Viewport pixel of the centre of voxel *ijk* in a SliceView."""
    geo = view.geometry_
    sx, sy = view._spacing
    point = QPointF((ijk[geo.x_axis] + 0.5) * sx, (ijk[geo.y_axis] + 0.5) * sy)
    return view.canvas.mapFromScene(view.viewbox.mapViewToScene(point))


def mouse(widget: QWidget, kind: str, pos: QPoint) -> None:
    """A left-button press, move (button held) or release at *pos*."""
    etype = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease}[kind]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    event = QMouseEvent(etype, QPointF(pos), QPointF(widget.mapToGlobal(pos)),
                        none if kind == "move" else left, none if kind == "release" else left,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(view, start: QPoint, end: QPoint, steps: int = 4) -> None:
    port = view.canvas.viewport()
    mouse(port, "press", start)
    for n in range(1, steps + 1):
        mouse(port, "move", start + (end - start) * (n / steps))
    mouse(port, "release", end)


def click(view, pos: QPoint) -> None:
    mouse(view.canvas.viewport(), "press", pos)
    mouse(view.canvas.viewport(), "release", pos)


def main() -> None:
    image, labels, expected = sys.argv[1:4]
    app = create_application()
    settings = Settings(QSettings(str(Path(expected).with_suffix(".ini")),
                                  QSettings.Format.IniFormat))
    window = MainWindow(settings=settings, dialogs=NoQuestions())
    window.resize(1200, 800)
    window.show()

    def paint() -> None:
        window.grid.render_pending()
        ax = window.views["axial"]
        k = window.cursor.position[2]
        window.set_tool("brush")
        window.edits.set_options(brush_size_mm=3.0)
        for label, a, b in ((1, (3, 4), (20, 6)), (2, (5, 20), (18, 25)), (3, (12, 3), (12, 26))):
            window.select_label(label)
            drag(ax, pixel_of(ax, (*a, k)), pixel_of(ax, (*b, k)))
        window.set_tool("fill")
        window.select_label(4)
        click(ax, pixel_of(ax, (2, 28, k)))
        np.save(expected, window.edits.labels)
        window.set_tool("brush")  # a stroke under way when the process dies
        port = ax.canvas.viewport()
        mouse(port, "press", pixel_of(ax, (4, 12, k)))
        mouse(port, "move", pixel_of(ax, (20, 14, k)))
        sys.stdout.write("ready\n")
        sys.stdout.flush()

    if labels == "-":
        window.image_shown.connect(paint)
        window.open_paths(image)
    else:
        window.io.labels_loaded.connect(lambda _layer: paint())
        window.open_paths(image, labels)
    app.exec()


if __name__ == "__main__":
    main()
