"""Opening and saving files for the main window, off the GUI thread.

Every read or write is an engine call run by :class:`~viewer.workers.JobRunner`;
results come back as updates of the :class:`~viewer.layers.LayerStack`, errors
as a dialog naming the file and the problem (the application keeps running).
Nothing replaces an edited mask with unsaved changes without asking
(:meth:`IOController.confirm_discard`: save, discard or cancel).
A label map on another grid than the image is never overlaid silently: the
user sees what differs and chooses to resample it (nearest neighbour) or not.
A DICOM folder that holds several series opens the series dialog first: every
series with its description, modality, size and whether it reads, the largest
readable one preselected (the one the command line takes by default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine import io as engine_io
from engine.core.errors import DelineoError, GeometryMismatchError
from engine.core.volume import LabelMap, LabelTable, Volume
from engine.io.atomic import full_suffix
from engine.io.dicom import DicomSeriesInfo, list_series
from engine.io.nifti import NIFTI_SUFFIXES

from .dialogs import Dialogs
from .layers import LabelLayer, LayerStack
from .settings import Settings
from .workers import Job, JobRunner

__all__ = ["IOController", "describe_error"]

log = logging.getLogger(__name__)

EDITED_NAME = "Edited mask"
TRUTH_NAME = "Ground truth"
EDIT_OPACITY = 0.5
TRUTH_OPACITY = 0.4


def opened_message(path: Path, volume: Volume) -> str:
    """Status-bar text after opening: which DICOM series was taken, if there was a choice."""
    n_series = int(volume.metadata.get("n_series", 1))
    if n_series <= 1:
        return f"Opened {path.name}"
    desc = volume.metadata.get("series_description") or volume.metadata.get("series_uid", "")
    skipped = len(volume.metadata.get("skipped_series", []))
    unreadable = f"; {skipped} larger series could not be read" if skipped else ""
    return (
        f"Opened {path.name}: series '{desc}' ({volume.modality}, "
        f"{volume.metadata.get('n_slices', volume.shape[2])} slices), the largest of "
        f"{n_series} series that can be read{unreadable}"
    )


def default_series(infos: list[DicomSeriesInfo]) -> int:
    """Index of the series opened by default: the largest whose headers raise no objection.

    *infos* come largest first (:func:`~engine.io.dicom.list_series`), as the
    command line's default: the largest series that reads.
    """
    return next((i for i, info in enumerate(infos) if not info.problem), 0)


def describe_error(exc: BaseException, path: str | Path | None = None) -> str:
    """One line for the user: the file and the problem."""
    if isinstance(exc, DelineoError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"{exc.filename or path}: no such file or folder"
    if isinstance(exc, PermissionError):
        return f"{exc.filename or path}: permission denied"
    if isinstance(exc, MemoryError):
        return f"{path}: not enough memory to open this volume"
    where = f"{path}: " if path else ""
    return f"{where}unexpected error ({type(exc).__name__}: {exc})"


class IOController(QObject):
    """Loads images and label maps into a layer stack and saves the edited mask."""

    image_loaded = Signal()
    labels_loaded = Signal(object)  # the new LabelLayer
    saved = Signal(str)
    save_started = Signal(object)  # the LabelLayer whose snapshot is being written
    failed = Signal(str)  # the message shown to the user
    message = Signal(str)  # short status-bar text

    def __init__(self, layers: LayerStack, runner: JobRunner, dialogs: Dialogs,
                 settings: Settings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.layers = layers
        self.runner = runner
        self.dialogs = dialogs
        self.settings = settings
        self.current: Job | None = None

    # -- images --------------------------------------------------------------------
    def open_image(self, path: str | Path, then: Callable[[], None] | None = None, *,
                   series: int | str | None = None, choose: bool = True) -> Job:
        """Read *path* (NIfTI file, DICOM file or folder) and show it.

        A folder is first listed (in the worker); when it holds several DICOM
        series the series dialog asks which one (unless *choose* is False or a
        *series* is given: its index in :func:`~engine.io.dicom.list_series`
        order, or its UID).
        """
        path = Path(path)
        if choose and series is None and path.is_dir():
            return self._choose_series(path, then)

        def work(progress: Callable[[float, str], None], cancel: object) -> Volume:
            return engine_io.load(path, series=series, progress=progress,  # type: ignore[arg-type]
                                  cancel=cancel)

        def done(volume: Volume) -> None:
            self.show_image(volume, path=path, name=path.name)
            self.settings.add_recent(path)
            self.settings.last_dir = str(path.parent)
            self.message.emit(opened_message(path, volume))
            if then is not None:
                then()

        return self._submit(work, f"Opening {path.name}", done, path, "Could not open the image")

    def _choose_series(self, path: Path, then: Callable[[], None] | None) -> Job:
        """List the series of *path*; with several, ask which one to open."""

        def work(progress: Callable[[float, str], None],
                 cancel: object) -> list[DicomSeriesInfo]:
            return list_series(path, progress=progress, cancel=cancel)  # type: ignore[arg-type]

        def done(infos: list[DicomSeriesInfo]) -> None:
            if len(infos) <= 1:  # nothing to choose (or nothing at all: the reader says so)
                self.open_image(path, then, choose=False)
                return
            default = default_series(infos)
            index = self.dialogs.choose_series(path.name, infos, default)
            if index is None:
                self.message.emit(f"Opening {path.name} cancelled")
                return
            # The preselected row: let the reader take the largest series that *reads*
            # (pixel data that fails to decode shows only then), and say so.
            self.open_image(path, then, series=None if index == default else index,
                            choose=False)

        return self._submit(work, f"Listing the series in {path.name}", done, path,
                            "Could not open the image")

    def open_demo(self, then: Callable[[], None] | None = None) -> Job:
        """The MNI152 demo T1 with its tissue ground truth."""

        def work(progress: Callable[[float, str], None], cancel: object) -> tuple:
            from engine.data.mni import load_demo

            progress(0.1, "reading the MNI152 template")
            return load_demo()

        def done(result: tuple[Volume, LabelMap]) -> None:
            t1, truth = result
            self.show_image(t1, path=None, name="MNI152 2009a T1 (demo)")
            self.layers.add_labels(truth, name=f"{TRUTH_NAME} (MNI152 tissue)", role="truth",
                                   opacity=TRUTH_OPACITY)
            self.message.emit("Opened the demo brain: MNI152 2009a T1 with its tissue ground truth")
            if then is not None:
                then()

        return self._submit(work, "Opening the demo brain", done, None, "Could not open the demo")

    def show_image(self, volume: Volume, *, path: Path | None = None, name: str = "") -> None:
        """Show an image already in memory, with a new empty edited mask."""
        self.layers.set_image(volume, path=path, name=name)
        self.layers.add_labels(LabelMap.empty_like(volume), name=f"{EDITED_NAME} (new)",
                               role="edit", opacity=EDIT_OPACITY)
        self.image_loaded.emit()

    # -- label maps ------------------------------------------------------------------
    def open_labels(self, path: str | Path, role: str = "edit", *, resample: bool = False,
                    then: Callable[[], None] | None = None) -> Job | None:
        """Read a label map for the current image as the edited mask or ground truth."""
        path = Path(path)
        image = self.layers.image
        if image is None:
            self._report("Open an image first", "Labels belong to an image: open the image first.")
            return None
        reference = image.volume

        def work(progress: Callable[[float, str], None], cancel: object) -> LabelMap:
            progress(0.0, f"reading {path.name}")
            return engine_io.load_labels(path, reference=reference, resample=resample)

        def done(labelmap: LabelMap) -> None:
            if self.layers.image is None or self.layers.image.volume is not reference:
                log.info("%s: the image changed while it loaded; dropped", path.name)
                return
            layer = self._add_label_layer(labelmap, path, role)
            note = " (resampled onto the image grid)" if resample else ""
            self.message.emit(f"Opened {path.name} as {layer.name}{note}")
            self.settings.last_dir = str(path.parent)
            self.labels_loaded.emit(layer)
            if then is not None:
                then()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, GeometryMismatchError) and not resample:
                if self.dialogs.ask_resample(path.name, list(exc.differences)):
                    self.open_labels(path, role, resample=True, then=then)
                else:
                    self.message.emit(f"{path.name} was not opened (its grid differs)")
                return
            self._report("Could not open the label map", describe_error(exc, path))

        title = "Resampling" if resample else "Opening"
        return self._submit(work, f"{title} {path.name}", done, path, on_error=failed)

    def open_label_names(self, path: str | Path, layer: LabelLayer) -> Job:
        """Read label names and colours from *path* (ITK-SNAP label descriptions, a
        FreeSurfer lookup table, a 3D Slicer colour table) and give them to *layer*."""
        from engine.io.label_tables import fitted, read_label_table

        path = Path(path)
        present = {int(v) for v in layer.counts()} - {0}

        def work(progress: Callable[[float, str], None], cancel: object) -> LabelTable:
            progress(0.0, f"reading {path.name}")
            return fitted(read_label_table(path), present)

        def done(table: LabelTable) -> None:
            if layer not in self.layers.labels:
                log.info("%s: the layer was closed while the names loaded; dropped", path.name)
                return
            layer.set_label_table(table)
            if layer.role == "edit":
                layer.modified = True  # the names are saved with the mask
            self.settings.last_dir = str(path.parent)
            missing = sorted(present - set(table))
            note = (f"; {len(missing)} value(s) of the layer are not in it "
                    f"(shown as \"Label N\": {', '.join(map(str, missing[:5]))}"
                    f"{'…' if len(missing) > 5 else ''})" if missing else "")
            self.message.emit(f"Label names from {path.name} given to {layer.name}{note}")
            self.layers.layers_changed.emit()  # panels show the new names

        return self._submit(work, f"Reading label names from {path.name}", done, path,
                            "Could not read the label names")

    def _add_label_layer(self, labelmap: LabelMap, path: Path, role: str) -> LabelLayer:
        base = EDITED_NAME if role == "edit" else TRUTH_NAME if role == "truth" else "Result"
        display = {"opacity": EDIT_OPACITY if role == "edit" else TRUTH_OPACITY}
        return self.layers.add_labels(labelmap, name=f"{base}: {path.name}", role=role,
                                      path=path if role == "edit" else None, **display)

    # -- saving ------------------------------------------------------------------------
    def save_labels(self, path: str | Path, layer: LabelLayer | None = None) -> Job | None:
        """Write *layer* (default: the edited mask) to *path* in the image's geometry."""
        layer = layer or self.layers.edited
        if layer is None:
            self._report("Nothing to save", "There is no label layer to save.")
            return None
        path = Path(path)
        snapshot = layer.labelmap.with_array(layer.labelmap.array.copy())
        self.save_started.emit(layer)

        def work(progress: Callable[[float, str], None], cancel: object) -> Path:
            progress(0.0, f"writing {path.name}")
            return engine_io.save(snapshot, path)

        def done(written: Path) -> None:
            layer.path = Path(written)
            layer.modified = False
            if layer.role == "edit":
                layer.name = f"{EDITED_NAME}: {Path(written).name}"
                self.layers.layers_changed.emit()  # panels show the new name
            self.settings.last_dir = str(Path(written).parent)
            self.message.emit(f"Saved {Path(written).name}")
            self.saved.emit(str(written))

        return self._submit(work, f"Saving {path.name}", done, path, "Could not save the labels")

    def save_edited(self, *, ask: bool = False) -> Job | None:
        """Save the edited mask to its file; where the user says when it has none or *ask*.

        Returns the job, or None when nothing is saved (no mask, dialog cancelled).
        """
        layer = self.layers.edited
        if layer is None:
            return None
        path = layer.path
        # a mask opened from another format (a Slicer .seg.nrrd, a FreeSurfer .mgz) is
        # saved as NIfTI where the user says, never over its own file
        if ask or path is None or full_suffix(path) not in NIFTI_SUFFIXES:
            image = self.layers.image
            stem = Path(image.name).name.split(".")[0] if image else "labels"
            start = str(Path(self.settings.last_dir) / f"{stem}_labels.nii.gz")
            chosen = self.dialogs.save_file("Save labels as", start)
            if not chosen:
                return None
            path = Path(chosen)
        return self.save_labels(path, layer)

    # -- unsaved edits -----------------------------------------------------------------
    def confirm_discard(self, then: Callable[[], object] | None = None) -> bool:
        """Ask about unsaved edits; True when it is fine to drop the edited mask now.

        "Save" saves in the background and returns False; *then* runs once that
        save has succeeded (closing the window, opening the next image, ...).
        """
        edited = self.layers.edited
        if edited is None or not edited.modified:
            return True
        answer = self.dialogs.ask_unsaved(edited.name)
        if answer == "save":
            self._save_then(then)
            return False
        return answer == "discard"

    def _save_then(self, then: Callable[[], object] | None) -> None:
        job = self.save_edited()
        if then is None or job is None:
            return  # nothing to wait for (e.g. the file dialog was cancelled)

        def finished(*_args: object) -> None:
            if not job.done:
                return  # another job's message
            self.saved.disconnect(finished)
            self.failed.disconnect(finished)
            edited = self.layers.edited
            if job.succeeded and (edited is None or not edited.modified):
                then()

        self.saved.connect(finished)
        self.failed.connect(finished)

    # -- plumbing ----------------------------------------------------------------------
    def _submit(
        self,
        work: Callable,
        description: str,
        done: Callable,
        path: Path | None,
        title: str = "Error",
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Job:
        def error(exc: BaseException) -> None:
            if on_error is not None:
                on_error(exc)
            else:
                self._report(title, describe_error(exc, path))

        def cancelled() -> None:
            self.message.emit(f"{description}: cancelled")

        def guarded(result: object) -> None:
            try:
                done(result)
            except Exception as exc:  # a result the viewer cannot show
                log.exception("%s: could not display the result", description)
                self._report(title, describe_error(exc, path))

        job = self.runner.submit(work, description, on_result=guarded, on_error=error,
                                 on_cancelled=cancelled)
        self.current = job
        return job

    def _report(self, title: str, message: str) -> None:
        log.warning("%s: %s", title, message)
        self.failed.emit(message)
        self.dialogs.error(title, message)
