"""Findings reports: self-contained HTML, PDF pages, and the TID 1500 DICOM SR read back."""

from __future__ import annotations

import base64
import io
import re

import highdicom as hd
import numpy as np
import pydicom
import pytest
from matplotlib import image as mpimg
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from engine.core.errors import ParameterError
from engine.core.volume import BRAIN_TISSUE_LABELS, Label, LabelMap, canonicalize
from engine.data.phantom import synthesize_phantom, toy_tissue_block
from engine.io.dicom import read_dicom
from engine.lesions import lesion_instances, measure_lesions
from engine.reports import write_report
from engine.reports.content import NO_LESIONS
from engine.reports.sr import build_findings_sr

try:
    from tests.engine import dicom_factory as fac
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    import dicom_factory as fac  # type: ignore[no-redef]

LESION_LABELS = BRAIN_TISSUE_LABELS.with_label(Label(4, "Lesion", (230, 30, 30)))
CARD = {
    "name": "delineo-unet-small",
    "software": {"delineo": "0.1.0"},
    "training": {"data_recipe": {"source": "MNI ICBM152 2009a GM/WM maps"}, "steps": 4000},
}
BIG, SMALL = ((32, 30, 12), 3), ((29, 37, 12), 2)  # two balls inside the toy white matter
APPLICABILITY = "the image looks like a T2; the model was trained on T1 images"


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((grid[a] - centre[a]) ** 2 for a in range(3)) <= radius ** 2


@pytest.fixture(scope="module")
def case():
    """A small T1 phantom with two dark lesions painted into the white matter."""
    image, truth = synthesize_phantom("t1", noise=0.02, inu=0.0, seed=4,
                                      block=toy_tissue_block((64, 64, 24)))
    lesions = ball(image.shape, *BIG) | ball(image.shape, *SMALL)
    assert (truth.array[lesions] == 3).all()
    arr = truth.array.copy()
    arr[lesions] = 4
    values = image.array.copy()
    values[lesions] *= 0.5
    image = image.with_array(values)
    labels = LabelMap(arr, truth.affine, labels=LESION_LABELS)
    findings = measure_lesions(lesion_instances(labels), image, tissue=truth)
    assert len(findings) == 2
    return image, labels, truth, findings


def pdf_pages(data: bytes) -> int:
    """Page count of a PDF: its page objects, checked against the page tree's /Count."""
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    counts = [int(n) for n in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", data)
              + re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", data)]
    assert counts == [pages]
    return pages


# ---------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------
def test_html_report_is_self_contained_with_tables_and_key_images(case, tmp_path):
    image, labels, _, findings = case
    image = image.with_array(image.array)  # a copy of the metadata, for the identifier
    image.metadata["patient_name"] = "Doe^Jane"
    out = write_report(tmp_path / "report.html", image=image, labels=labels, findings=findings,
                       model_card=CARD, warnings=[APPLICABILITY])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no stray files
    text = out.read_text()
    # tissue volumes from the label map
    counts = labels.counts()
    for value, name in ((1, "CSF"), (2, "Gray matter"), (3, "White matter"), (4, "Lesion")):
        ml = counts[value] * labels.voxel_volume_ml
        assert f"<td>{value}</td><td class=\"text\">{name}</td><td>{counts[value]}</td>" \
               f"<td>{ml:.2f}</td>" in text
    # findings table: one row per lesion, with the measured numbers
    body = text.split('id="findings"')[1]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([\d.]+)</td><td>([\d.]+)</td>", body)
    assert [(int(r[0]), float(r[1]), float(r[2])) for r in rows] == [
        (f.id, round(f.volume_ml, 3), round(f.axial_diameter_mm, 1)) for f in findings]
    assert body.count("White matter") >= 2
    # one embedded PNG per lesion, nothing fetched from anywhere
    images = re.findall(r'<img class="key-image"[^>]*src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == len(findings)
    assert not re.search(r'(src|href)="(?!data:)', text)
    assert "http://" not in text and "https://" not in text
    for payload in images:
        png = base64.b64decode(payload)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        rgb = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
        red = (rgb[..., 0] > 0.9) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)
        yellow = (rgb[..., 0] > 0.9) & (rgb[..., 1] > 0.8) & (rgb[..., 2] < 0.3)
        cyan = (rgb[..., 0] < 0.3) & (rgb[..., 1] > 0.8) & (rgb[..., 2] > 0.9)
        assert red.sum() > 20 and yellow.sum() > 10 and cyan.sum() > 10
    # warnings come before the numbers; the model card is summarised
    assert text.index(APPLICABILITY) < text.index('id="findings"')
    assert 'class="warnings"' in text
    for fact in ("delineo-unet-small", "Delineo 0.1.0", "MNI ICBM152 2009a GM/WM maps"):
        assert fact in text
    assert NO_LESIONS not in text
    # no patient identifier unless asked for
    assert "Doe^Jane" not in text
    write_report(tmp_path / "named.html", image=image, labels=labels, findings=findings,
                 model_card=None, include_identifiers=True)
    named = (tmp_path / "named.html").read_text()
    assert "Doe^Jane" in named and "No model card" in named


def test_report_without_lesions_says_so(case, tmp_path):
    image, _, truth, _ = case
    labels = LabelMap(truth.array, truth.affine, labels=LESION_LABELS)
    findings = measure_lesions(lesion_instances(labels), image)
    assert findings == []
    html_path = write_report(tmp_path / "none.html", image=image, labels=labels,
                             findings=findings, model_card=CARD)
    text = html_path.read_text()
    assert "No lesions" in text and "<img" not in text
    assert "<td>3</td><td class=\"text\">White matter</td>" in text
    pdf = write_report(tmp_path / "none.pdf", image=image, labels=labels, findings=findings,
                       model_card=CARD).read_bytes()
    assert pdf.startswith(b"%PDF") and pdf_pages(pdf) == 1


def test_the_report_names_every_network_of_the_recorded_pipeline(case, tmp_path):
    """A label map made by a pipeline records its description; the report's Model section
    then names its brain extraction, tissue network and lesion networks (the first alone
    where the lesions step ran with ensemble=False), not "no model card"."""
    from engine.methods.lesion_step import LESION_MODELS
    from engine.methods.pipeline import get_pipeline
    from engine.reports.export import made_by_cards

    described = {"pipeline": "head+lesions",
                 "pipeline_description": get_pipeline("head+lesions").describe()}
    cards = made_by_cards(described)
    assert [c["name"] for c in cards] == ["deepbet (brain extraction)", "delineo",
                                          *LESION_MODELS]
    one = get_pipeline("cnn+lesions").with_params({2: {"ensemble": False}}).describe()
    assert [c["name"] for c in made_by_cards({"pipeline_description": one})] == [
        "delineo", LESION_MODELS[0]]
    assert [c["name"] for c in made_by_cards({"method": "unet"})] == ["unet"]
    assert made_by_cards({"method": "gmm"}) == [] and made_by_cards({}) == []
    image, labels, _, findings = case
    text = write_report(tmp_path / "made.html", image=image, labels=labels,
                        findings=findings, model_card=cards).read_text()
    model = text[text.index("<h2>Model</h2>"):text.index("<h2>Tissue volumes</h2>")]
    for name in ("deepbet (brain extraction)", "delineo", *LESION_MODELS):
        assert f'<td class="text">{name}</td>' in model
    assert "No model card" not in model and "real scans, not synthetic" in model



def test_a_card_that_continued_earlier_weights_says_so():
    from engine.reports.content import model_card_summary

    card = {"name": "n", "training": {"steps": 800, "initialised_from": {
        "file": "delineo.safetensors", "sha256": "ab" * 32}}}
    assert dict(model_card_summary(card))["Training steps"] == (
        "800 (continuing the weights delineo.safetensors, sha256 abababababab..., "
        "trained before)")
    assert dict(model_card_summary({"training": {"steps": 800}}))["Training steps"] == "800"


# ---------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------
def test_pdf_report_has_a_page_per_lesion(case, tmp_path):
    image, labels, _, findings = case
    path = write_report(tmp_path / "report.pdf", image=image, labels=labels, findings=findings,
                        model_card=CARD, warnings=[APPLICABILITY])
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert pdf_pages(data) == 1 + len(findings)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pdf"]
    # format given explicitly wins over the suffix
    other = write_report(tmp_path / "report.out", image=image, labels=labels,
                         findings=findings[:1], model_card=None, format="pdf")
    assert pdf_pages(other.read_bytes()) == 2


def test_report_rejects_findings_of_another_map_and_unknown_formats(case, tmp_path):
    image, labels, _, findings = case
    arr = labels.array.copy()
    arr[ball(arr.shape, *SMALL)] = 3  # lesion 2 is gone from this map
    with pytest.raises(ParameterError, match="do not match"):
        write_report(tmp_path / "r.html", image=image, labels=labels.with_array(arr),
                     findings=findings, model_card=None)
    with pytest.raises(ParameterError, match="format"):
        write_report(tmp_path / "r.doc", image=image, labels=labels, findings=findings,
                     model_card=None, format="docx")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# DICOM SR (TID 1500)
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory):
    """An MR series (factory-written), its SEG (WM = 1, Lesion = 2, highdicom) and findings."""
    folder = tmp_path_factory.mktemp("dicom")
    shape = (32, 28, 8)
    affine = fac.axial_affine(step=3.0, spacing=(0.8, 0.8))
    grid = np.indices(shape)
    big = (((grid[0] - 16) * 0.8 / 4.8) ** 2 + ((grid[1] - 12) * 0.8 / 3.2) ** 2
           + ((grid[2] - 4) * 3.0 / 3.0) ** 2) <= 1 + 1e-9
    small = ball(shape, (8, 20, 3), 2) & (np.abs(grid[2] - 3) <= 0)
    seg_file = np.zeros(shape, np.uint8)
    seg_file[4:28, 4:24, 1:7] = 1
    seg_file[big | small] = 2
    data = np.where(big | small, 600.0, np.where(seg_file == 1, 300.0, 0.0))
    paths = fac.write_series(folder / "mr", data, affine, modality="MR")
    frame_of_reference = generate_uid()

    def patient(ds):
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Ph^A", "P1", "", "O"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
        ds.StudyDate, ds.StudyTime = "20260101", "120000"
        ds.FrameOfReferenceUID = frame_of_reference

    for p in paths:
        fac.rewrite(p, patient)
    volume = read_dicom(folder / "mr")
    canon, canon_affine, _ = canonicalize(seg_file, affine)
    assert np.allclose(canon_affine, volume.affine, atol=1e-3)
    labels = LabelMap.on_grid_of(
        volume, np.select([canon == 2, canon == 1], [4, 3], 0).astype(np.uint8),
        labels=LESION_LABELS)
    findings = measure_lesions(lesion_instances(labels), volume)
    sources = sorted((pydicom.dcmread(p) for p in paths),
                     key=lambda ds: float(ds.ImagePositionPatient[2]))
    algorithm = hd.AlgorithmIdentificationSequence(
        name="delineo-test", version="0.1.0", family=codes.cid7162.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number, segment_label=name,
            segmented_property_category=category, segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm)
        for number, name, category, kind in (
            (1, "White matter", codes.SCT.Tissue, codes.SCT.WhiteMatter),
            (2, "Lesion", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Lesion))]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=np.stack([seg_file[:, :, k].T for k in range(shape[2])]),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=50,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Delineo",
        manufacturer_model_name="test", software_versions="0.1.0", device_serial_number="0")
    seg.save_as(folder / "seg.dcm")
    return pydicom.dcmread(folder / "seg.dcm"), sources, findings, folder


def test_sr_measurement_report_reads_back(dicom_case):
    seg, sources, findings, folder = dicom_case
    first = findings[0]
    assert (first.axial_diameter_mm, first.perpendicular_diameter_mm) == (
        pytest.approx(9.6), pytest.approx(6.4))
    sr = build_findings_sr(findings, seg_dataset=seg, source_images=sources,
                           algorithm="delineo-unet", version="0.1.0",
                           tracking_uids={1: "1.2.826.0.1.3680043.8.498.1"})
    sr.save_as(folder / "sr.dcm")
    raw = pydicom.dcmread(folder / "sr.dcm")
    assert raw.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert raw.StudyInstanceUID == seg.StudyInstanceUID and raw.PatientID == "P1"
    assert raw.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    # the SEG and the source images are the evidence, by series and instance
    evidence = {(str(s.SeriesInstanceUID), str(i.ReferencedSOPInstanceUID))
                for e in raw.CurrentRequestedProcedureEvidenceSequence
                for s in e.ReferencedSeriesSequence for i in s.ReferencedSOPSequence}
    assert (str(seg.SeriesInstanceUID), str(seg.SOPInstanceUID)) in evidence
    assert {(str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)) for ds in sources} <= evidence

    report = hd.sr.srread(folder / "sr.dcm")
    groups = report.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(findings)
    for group, finding in zip(groups, findings, strict=True):
        assert group.tracking_identifier == f"Lesion {finding.id}"
        assert group.finding_type == codes.SCT.Lesion
        assert group.reference_type == codes.DCM.ReferencedSegment
        ref = group.referenced_segment[0]
        sop = ref.ReferencedSOPSequence[0]
        assert sop.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert sop.ReferencedSOPClassUID == seg.SOPClassUID
        assert sop.ReferencedSegmentNumber == 2  # the segment labelled "Lesion"
        assert group.referenced_segment[1].value == sources[0].SeriesInstanceUID
        got = {m.name.meaning: m for m in group.get_measurements()}
        assert set(got) == {"Volume", "Long axis", "Perpendicular Axis", "Diameter"}
        expect = {"Volume": (finding.volume_ml, "ml"),
                  "Long axis": (finding.axial_diameter_mm, "mm"),
                  "Perpendicular Axis": (finding.perpendicular_diameter_mm, "mm"),
                  "Diameter": (finding.diameter_3d_mm, "mm")}
        for name, (value, unit) in expect.items():
            assert got[name].value == pytest.approx(value, rel=1e-6)
            assert got[name].unit.value == unit and got[name].unit.scheme_designator == "UCUM"
        assert got["Diameter"].derivation == codes.SCT.Maximum
    assert str(groups[0].tracking_uid) == "1.2.826.0.1.3680043.8.498.1"
    assert len({str(g.tracking_uid) for g in groups}) == len(groups)


def test_sr_refuses_what_it_cannot_report(dicom_case):
    seg, sources, findings, _ = dicom_case
    kwargs = {"seg_dataset": seg, "source_images": sources, "algorithm": "a", "version": "1"}
    with pytest.raises(ParameterError, match="no lesions"):
        build_findings_sr([], **kwargs)
    with pytest.raises(ParameterError, match="no segment 7"):
        build_findings_sr(findings, **kwargs, segment_number=7)
    with pytest.raises(ParameterError, match="not a DICOM SEG"):
        build_findings_sr(findings, **{**kwargs, "seg_dataset": sources[0]})
    other = pydicom.dcmread(io.BytesIO(_saved(sources[0])))
    other.SeriesInstanceUID = generate_uid()
    with pytest.raises(ParameterError, match="not made on the given source series"):
        build_findings_sr(findings, **{**kwargs, "source_images": [other]})
    unlabelled = pydicom.dcmread(io.BytesIO(_saved(seg)))
    unlabelled.SegmentSequence[1].SegmentLabel = "Tumour"
    with pytest.raises(ParameterError, match="no segment labelled 'Lesion'"):
        build_findings_sr(findings, **{**kwargs, "seg_dataset": unlabelled})
    # an explicit per-lesion mapping is honoured
    sr = build_findings_sr(findings, **{**kwargs, "seg_dataset": unlabelled},
                           segment_number={f.id: 2 for f in findings})
    groups = hd.sr.Comprehensive3DSR.from_dataset(sr).content \
        .get_volumetric_roi_measurement_groups()
    assert [g.referenced_segment[0].ReferencedSOPSequence[0].ReferencedSegmentNumber
            for g in groups] == [2] * len(findings)


def _saved(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()
