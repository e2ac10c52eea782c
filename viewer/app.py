"""``delineo``: start the Qt application.

``delineo [IMAGE] [--labels MASK] [--ground-truth GT] [--demo]``. With no
image, the MNI152 demo brain opens with its tissue ground truth.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType

__all__ = ["PRELOADED", "apply_theme", "build_parser", "configure_pyqtgraph", "create_application",
           "main", "preload_libraries"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="delineo",
        description="Delineo: view, segment and correct medical images. With no image, "
        "opens the MNI152 demo brain with its tissue ground truth.",
    )
    parser.add_argument("image", nargs="?", help="NIfTI file, DICOM file or DICOM folder")
    parser.add_argument("--labels", metavar="MASK", help="label map to edit")
    parser.add_argument("--ground-truth", metavar="GT",
                        help="ground-truth label map (shown as its own layer)")
    parser.add_argument("--demo", action="store_true",
                        help="open the demo brain (MNI152 T1 + tissue ground truth)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help=argparse.SUPPRESS)
    return parser


def configure_pyqtgraph() -> None:
    """pyqtgraph's global options, set once: arrays are (row, column) images."""
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


def apply_theme(app: object) -> None:
    """Fusion style with a dark palette, as imaging workstations use."""
    from PySide6.QtGui import QColor, QPalette

    app.setStyle("Fusion")  # type: ignore[attr-defined]
    pal = QPalette()
    role = QPalette.ColorRole
    colours = {
        role.Window: "#2b2e33", role.WindowText: "#e1e4e8", role.Base: "#1f2226",
        role.AlternateBase: "#272a2f", role.ToolTipBase: "#2b2e33", role.ToolTipText: "#e1e4e8",
        role.Text: "#e1e4e8", role.Button: "#33373d", role.ButtonText: "#e1e4e8",
        role.BrightText: "#ff6b6b", role.Highlight: "#3d7bd9", role.HighlightedText: "#ffffff",
        role.Link: "#6aa7ff", role.PlaceholderText: "#80868f", role.Mid: "#3a3e45",
        role.Dark: "#1a1c20", role.Light: "#454a52", role.Shadow: "#111214",
    }
    for key, value in colours.items():
        pal.setColor(key, QColor(value))
    disabled = QPalette.ColorGroup.Disabled
    for key in (role.WindowText, role.Text, role.ButtonText):
        pal.setColor(disabled, key, QColor("#70757d"))
    app.setPalette(pal)  # type: ignore[attr-defined]


#: The large libraries the window's modules import, loaded before Qt is: once PySide6 is
#: imported, its import hook reads the source of every module imported after it (looking
#: for its ``__feature__`` switches). torch is not among them: the window does not need it
#: to show the image; the Methods dock's modules import it in a thread after the first
#: display (``benchmarks/bench_viewer.py`` measures the first display, the complete window
#: and the window's longest pause between them).
#: (``engine.surfaces`` for scikit-image's marching cubes, which it loads lazily.)
PRELOADED = ("numpy", "scipy.ndimage", "scipy.spatial", "nibabel", "pydicom", "requests",
             "OpenGL.GL", "engine.surfaces")


def preload_libraries() -> None:
    """Import :data:`PRELOADED` now, if Qt is not loaded yet (then it is too late to
    matter); a library that fails to import is left for its own import to report."""
    if "PySide6" in sys.modules:
        return
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except Exception:  # reported (or worked around) where the library is used
            log.debug("preloading %s failed", name, exc_info=True)


def create_application(argv: Sequence[str] | None = None) -> object:
    """The ``QApplication`` (created once), themed, with pyqtgraph configured.

    The engine's large libraries are imported first (:func:`preload_libraries`).
    """
    preload_libraries()
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setApplicationName("Delineo")
        app.setOrganizationName("Delineo")
        app.setApplicationDisplayName("Delineo")
        apply_theme(app)
    configure_pyqtgraph()
    return app


def _install_excepthook(window: object) -> None:
    """Unexpected errors in the event loop: log them, tell the user, keep running."""
    from PySide6.QtWidgets import QMessageBox

    showing = False

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        nonlocal showing
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(kind, exc, tb)))
        if showing or issubclass(kind, KeyboardInterrupt):
            return
        showing = True
        try:
            QMessageBox.critical(window, "Unexpected error",  # type: ignore[arg-type]
                                 f"{kind.__name__}: {exc}\n\nDetails are in the log.")
        finally:
            showing = False

    sys.excepthook = hook


NO_DISPLAY = (
    "delineo: no display found (DISPLAY and WAYLAND_DISPLAY are not set), so there is "
    "nowhere to show the window. Run it in a desktop session, over 'ssh -X', or on a "
    "virtual screen for screenshots and tests (DELINEO_VIRTUAL_SCREEN=1 bash "
    "packaging/run-app.sh, or xvfb-run -a delineo); without a display use the command "
    "line: delineo-engine --help."
)


def display_problem(environ: Mapping[str, str] | None = None,
                    platform: str | None = None) -> str | None:
    """The one-line message when there is no display to open a window on, else None.

    On Linux (X11 or Wayland) a window needs ``DISPLAY`` or ``WAYLAND_DISPLAY``;
    an explicit ``QT_QPA_PLATFORM`` (e.g. ``offscreen`` in the tests) is taken
    as the caller's choice. Other systems always have a display.
    """
    env = os.environ if environ is None else environ
    if (platform or sys.platform) != "linux" or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return NO_DISPLAY


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``delineo``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = display_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    if args.image and args.demo:
        parser.error("give an IMAGE or --demo, not both")
    if (args.labels or args.ground_truth) and not (args.image or args.demo):
        parser.error("--labels and --ground-truth need an IMAGE (or --demo)")
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_application()
    from .main_window import MainWindow

    window = MainWindow()
    _install_excepthook(window)
    window.show()
    window.open_paths(args.image, args.labels, args.ground_truth, demo=args.demo)
    return int(app.exec())  # type: ignore[attr-defined]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
