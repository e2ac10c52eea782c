"""Segmentation → Export… in the viewer: the same engine export as the command line, run in a
worker; DICOM formats are offered only for an image read from DICOM."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from engine.core.volume import BRAIN_LESION_LABELS, LabelMap
from engine.io import load
from engine.io.dicom.seg import read_dicom_seg
from tests.engine.dicom_factory import write_series


def _dicom_image(folder):
    data = np.random.default_rng(5).normal(100, 5, (20, 22, 8)).astype(np.int16)
    affine = np.diag([0.9, 0.9, 2.0, 1.0])
    paths = write_series(folder, data, affine, modality="MR")
    frame = generate_uid()
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID = frame
        ds.PatientName, ds.PatientID, ds.StudyID = "Test^Phantom", "P1", "S1"
        ds.PatientBirthDate = ds.PatientSex = ds.StudyDate = ds.StudyTime = ""
        ds.AccessionNumber = ds.ReferringPhysicianName = ""
        ds.save_as(path)
    return load(folder)


def _mask(image):
    lab = np.zeros(image.shape, np.uint8)
    lab[3:12, 4:15, 2:6] = 2
    lab[14:18, 5:9, 3:6] = 4
    return LabelMap.on_grid_of(image, lab, labels=BRAIN_LESION_LABELS)


def test_export_dialog_writes_seg_and_sr_read_back_voxel_exact(qtbot, tmp_path):
    from viewer.export_dialog import ExportDialog
    from viewer.workers import JobRunner

    image = _dicom_image(tmp_path / "series")
    mask = _mask(image)
    runner = JobRunner()
    written = []
    dialog = ExportDialog(mask, image, runner, start_dir=str(tmp_path),
                          on_done=written.append)
    qtbot.addWidget(dialog)
    dialog.choose("DICOM SEG + SR (lesion measurements)")
    dialog.path_edit.setText(str(tmp_path / "mask.dcm"))
    job = dialog.export()
    qtbot.waitUntil(lambda: job.done or bool(written), timeout=60000)
    assert written and written[0].files == [tmp_path / "mask.dcm", tmp_path / "mask_sr.dcm"]
    back = read_dicom_seg(tmp_path / "mask.dcm", image)
    assert np.array_equal(back.array, mask.array)
    seg = hd.seg.segread(tmp_path / "mask.dcm")
    assert {d.segment_label for d in seg.SegmentSequence} == {"Gray matter", "Lesion"}
    groups = hd.sr.srread(tmp_path / "mask_sr.dcm").content \
        .get_volumetric_roi_measurement_groups()
    assert len(groups) == 1
    runner.shutdown(5000)


def test_export_dialog_offers_dicom_only_for_a_dicom_image(qtbot, tmp_path):
    from viewer.export_dialog import CHOICES, NOT_DICOM, ExportDialog
    from viewer.workers import JobRunner

    image = _dicom_image(tmp_path / "series")
    from engine.io import save

    save(image, tmp_path / "image.nii.gz")
    nifti = load(tmp_path / "image.nii.gz")
    runner = JobRunner()
    errors = []
    dialog = ExportDialog(_mask(nifti), nifti, runner, start_dir=str(tmp_path),
                          on_error=errors.append)
    qtbot.addWidget(dialog)
    model = dialog.format_box.model()
    for i, (_text, fmt, _sr, _suffix) in enumerate(CHOICES):
        item = model.item(i)
        assert item.isEnabled() == (not fmt.startswith("dicom"))
        if fmt.startswith("dicom"):
            assert item.toolTip() == NOT_DICOM
    assert CHOICES[dialog.format_box.currentIndex()][1] == "seg.nrrd"
    dialog.choose("NIfTI label map")
    assert dialog.output_path().name == "segmentation.nii.gz"
    job = dialog.export()
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    assert not errors and np.array_equal(load(tmp_path / "segmentation.nii.gz").array,
                                         _mask(nifti).array)
    # the names of what the mask holds, for ITK-SNAP beside that NIfTI file
    from engine.io.label_tables import read_label_table

    dialog.choose("Label names for ITK-SNAP (.txt)")
    assert dialog.output_path().name == "segmentation.txt"
    job = dialog.export()
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    names = read_label_table(tmp_path / "segmentation.txt")
    held = sorted({0, *np.unique(_mask(nifti).array).tolist()})
    assert not errors and list(names) == held
    assert [names.name(v) for v in held] == [_mask(nifti).labels.name(v) for v in held]
    runner.shutdown(5000)


# -- File → Open from PACS… against a real Orthanc ------------------------------------------
def _stored_series(orthanc, tmp_path, patient_id):
    from engine.pacs.client import PacsAuth, PacsClient
    from tests.engine.orthanc import PASSWORD, USER

    folder = tmp_path / patient_id
    _dicom_image(folder)
    for path in folder.rglob("*"):
        if path.is_file():
            ds = pydicom.dcmread(path)
            ds.PatientID, ds.SeriesDescription = patient_id, "AX T1 viewer"
            ds.save_as(path)
    client = PacsClient(orthanc.url, auth=PacsAuth(USER, PASSWORD))
    stored = client.store([p for p in folder.rglob("*") if p.is_file()])
    assert stored.failed == []
    return folder, client


def _browser(window, orthanc, url=None):
    from tests.engine.orthanc import PASSWORD, USER

    browser = window.show_pacs_browser()
    form = browser.servers
    form.name_edit.setText("test")
    form.url_edit.setText(url or orthanc.url)
    form.auth_box.setCurrentText("basic")
    form.user_edit.setText(USER)
    form.save_server()
    form.secret_edit.setText(PASSWORD)
    return browser


def test_open_from_pacs_shows_the_series_like_a_dicom_folder(window, qtbot, orthanc, tmp_path,
                                                             settings):
    folder, _client = _stored_series(orthanc, tmp_path, "VIEW1")
    browser = _browser(window, orthanc)
    # the server list keeps no secret
    assert "password" not in str(settings.store.value("pacs/servers")).lower()
    assert settings.pacs_servers()[0].user and browser.servers.server().url == orthanc.url
    browser.patient_id.setText("VIEW1")
    job = browser.search()
    qtbot.waitUntil(lambda: job.done, timeout=30000)
    assert len(browser.rows) == 1 and browser.table.item(0, 4).text() == "AX T1 viewer"
    job = browser.open_selected()
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    qtbot.waitUntil(lambda: window.layers.image is not None, timeout=10000)
    shown = window.layers.image.volume
    expected = load(folder)
    assert np.array_equal(shown.array, expected.array)
    assert np.allclose(shown.affine, expected.affine)
    assert shown.source.header.series_uid == expected.source.header.series_uid


def test_cancelled_retrieval_keeps_the_open_image(window, qtbot, orthanc, tmp_path,
                                                  synthetic_volume):
    _stored_series(orthanc, tmp_path, "VIEW2")
    window.io.show_image(synthetic_volume(), name="before")
    before = window.layers.image
    browser = _browser(window, orthanc)
    browser.patient_id.setText("VIEW2")
    job = browser.search()
    qtbot.waitUntil(lambda: job.done, timeout=30000)
    job = browser.open_selected()
    job.cancel()  # before or while the worker retrieves: it must stop and clean up
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    assert window.layers.image is before
    assert not any(p.is_file() for p in browser.session_root.rglob("*"))


def test_wrong_url_gives_a_one_line_error(window, qtbot, orthanc, monkeypatch):
    shown = []
    monkeypatch.setattr(window.dialogs, "error", lambda title, text: shown.append(text),
                        raising=False)
    browser = _browser(window, orthanc, url=orthanc.url.rsplit(":", 1)[0] + ":1/dicom-web")
    job = browser.search()
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    assert len(shown) == 1 and "\n" not in shown[0] and shown[0]
    assert window.isVisible()


def test_send_to_pacs_stores_seg_and_sr_in_the_study(window, qtbot, orthanc, tmp_path):
    from viewer.export_dialog import SendToPacsDialog

    folder, client = _stored_series(orthanc, tmp_path, "VIEW3")
    image = load(folder)
    mask = _mask(image)  # gray matter and one painted lesion
    sent = []
    dialog = SendToPacsDialog(mask, image, window.runner, window.settings, on_done=sent.append)
    qtbot.addWidget(dialog)
    form = _browser(window, orthanc).servers  # the same server list and fields
    dialog.servers.reload()
    dialog.servers.server_box.setCurrentText("test")
    dialog.servers.secret_edit.setText(form.secret_edit.text())
    job = dialog.send()
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    assert sent == [["DICOM SEG", "DICOM SR"]]
    study = image.source.header.study_uid
    modalities = sorted(r.modality for r in client.find_series(study_uid=study))
    assert modalities == ["MR", "SEG", "SR"]


def test_refused_login_gives_a_one_line_error(window, qtbot, orthanc, monkeypatch):
    shown = []
    monkeypatch.setattr(window.dialogs, "error", lambda title, text: shown.append(text),
                        raising=False)
    browser = _browser(window, orthanc)
    browser.servers.secret_edit.setText("wrong-password")
    job = browser.search()
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    assert len(shown) == 1 and "\n" not in shown[0]
    assert "wrong-password" not in shown[0] and browser.rows == []
