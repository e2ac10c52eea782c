"""Display arithmetic: planes and orientation letters, windows, label colours."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from engine import display
from engine.core.volume import BRAIN_TISSUE_LABELS, Label, LabelTable
from engine.display import (
    CT_PRESETS,
    auto_window,
    drag_window,
    extract_slice,
    histogram,
    image_slice,
    label_lut,
    label_outline,
    label_rgba,
    label_volumes,
    looks_like_ct,
    percentile_window,
    plane_geometry,
    range_to_window,
    window_to_range,
)


def test_docstring_examples():
    result = doctest.testmod(display, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10
    assert result.failed == 0


@pytest.mark.parametrize(
    ("plane", "convention", "letters"),
    [
        ("axial", "radiological", "RLAP"),
        ("axial", "neurological", "LRAP"),
        ("coronal", "radiological", "RLSI"),
        ("coronal", "neurological", "LRSI"),
        ("sagittal", "radiological", "APSI"),
        ("sagittal", "neurological", "APSI"),
    ],
)
def test_orientation_letters(plane, convention, letters):
    geo = plane_geometry(plane, convention)
    got = "".join(geo.letters[e] for e in ("left", "right", "top", "bottom"))
    assert got == letters


def test_planes_show_the_two_other_axes_with_up_positive():
    for plane, normal in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        geo = plane_geometry(plane)
        assert geo.normal_axis == normal
        assert {geo.x_axis, geo.y_axis, normal} == {0, 1, 2}
        # y is anterior (axial) or superior (others): the higher array index is up.
        assert geo.letters["top"] in ("A", "S")


def test_flip_means_the_positive_direction_is_on_the_left():
    for plane in ("axial", "coronal", "sagittal"):
        for conv in ("radiological", "neurological"):
            geo = plane_geometry(plane, conv)
            positive = "RAS"[geo.x_axis]
            assert (geo.letters["left"] == positive) == geo.flip_x


def test_unknown_plane_or_convention():
    with pytest.raises(ValueError, match="plane"):
        plane_geometry("oblique")
    with pytest.raises(ValueError, match="convention"):
        plane_geometry("axial", "upside-down")


def test_extract_slice_rows_are_y_and_columns_are_x():
    a = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    ax = extract_slice(a, plane_geometry("axial"), 2)
    assert ax.shape == (5, 4)  # rows = A (axis 1), cols = R (axis 0)
    assert ax[3, 1] == a[1, 3, 2]
    cor = extract_slice(a, plane_geometry("coronal"), 1)
    assert cor.shape == (6, 4) and cor[5, 2] == a[2, 1, 5]
    sag = extract_slice(a, plane_geometry("sagittal"), 3)
    assert sag.shape == (6, 5) and sag[4, 0] == a[3, 0, 4]
    assert np.shares_memory(ax, a)  # a view, not a copy
    with pytest.raises(IndexError):
        extract_slice(a, plane_geometry("axial"), 6)


def test_image_slice_is_the_picture_the_figures_always_drew():
    # The comparison montage and the benchmark figure used their own slicer:
    # ``array[...].T[::-1, ::-1]`` (radiological, row 0 at the top). The shared
    # one must give the very same pixels.
    a = np.random.default_rng(3).random((5, 6, 7))
    old = {"axial": lambda i: a[:, :, i].T[::-1, ::-1],
           "coronal": lambda i: a[:, i, :].T[::-1, ::-1],
           "sagittal": lambda i: a[i, :, :].T[::-1, ::-1]}
    for plane, slicer in old.items():
        n = a.shape[plane_geometry(plane).normal_axis]
        for index in range(n):
            assert np.array_equal(image_slice(a, plane, index), slicer(index)), (plane, index)
    # neurological: the patient's right on the right, so only the rows turn over
    assert np.array_equal(image_slice(a, "axial", 2, convention="neurological"),
                          a[:, :, 2].T[::-1, :])
    with pytest.raises(IndexError):
        image_slice(a, "axial", 7)


def test_montage_pixels_are_unchanged_by_the_shared_slicer(tmp_path, monkeypatch):
    from matplotlib.image import imread

    from engine.core.volume import LabelMap, Volume
    from engine.evaluation import compare

    rng = np.random.default_rng(4)
    affine = np.diag([1.0, 1.2, 2.0, 1.0])
    volume = Volume(rng.random((18, 14, 10)).astype(np.float32), affine)
    truth = np.zeros((18, 14, 10), np.uint8)
    truth[3:15, 2:12, 2:8] = 1
    truth[6:12, 4:9, 3:6] = 2
    labels = LabelMap.on_grid_of(volume, truth)
    layers = {"shifted": labels.with_array(np.roll(truth, 2, axis=0))}
    new = imread(compare.montage(volume, layers, labels, tmp_path / "new.png"))

    def old_display_slice(array, plane, index):
        sl = {"axial": lambda: array[:, :, index], "coronal": lambda: array[:, index, :],
              "sagittal": lambda: array[index, :, :]}[plane]()
        return sl.T[::-1, ::-1]

    monkeypatch.setattr(compare, "image_slice", old_display_slice)
    old = imread(compare.montage(volume, layers, labels, tmp_path / "old.png"))
    assert new.shape == old.shape and np.array_equal(new, old)


def test_window_range_round_trip():
    lo, hi = window_to_range(400, 50)
    assert (lo, hi) == (-150, 250)
    assert range_to_window(lo, hi) == (400, 50)
    assert window_to_range(-5, 10) == (10, 10)  # negative widths collapse


def test_ct_presets_are_the_usual_hounsfield_windows():
    assert set(CT_PRESETS) == {"Brain", "Subdural", "Lung", "Bone", "Abdomen"}
    assert CT_PRESETS["Brain"].range == (0, 80)
    assert CT_PRESETS["Lung"].range == (-1350, 150)
    for preset in CT_PRESETS.values():
        assert preset.width > 0


def test_percentile_window_ignores_the_background():
    rng = np.random.default_rng(0)
    head = rng.normal(500, 50, size=20000)
    vol = np.concatenate([np.zeros(80000), head])
    lo, hi = percentile_window(vol)
    assert 300 < lo < 400 and 600 < hi < 700
    lo_all, _ = percentile_window(vol, ignore_background=False)
    assert lo_all == 0


def test_percentile_window_degenerate_inputs():
    assert percentile_window(np.full(10, 7.0)) == (7.0, 8.0)
    assert percentile_window(np.array([np.nan, np.nan])) == (0.0, 1.0)
    lo, hi = percentile_window(np.array([1.0, np.nan, 3.0]), 0, 100, ignore_background=False)
    assert (lo, hi) == (1.0, 3.0)


def test_auto_window_mr_and_ct():
    ct = np.concatenate([np.full(1000, -1000.0), np.linspace(-100, 1500, 1000)])
    assert looks_like_ct(ct)
    assert auto_window(ct, "unknown") == CT_PRESETS["Abdomen"].range
    assert auto_window(np.arange(100.0), "CT") == CT_PRESETS["Abdomen"].range
    mr = np.arange(1000.0)
    assert not looks_like_ct(mr)
    lo, hi = auto_window(mr, "MR")
    assert 0 < lo < 20 and 980 < hi < 1000


def test_percentile_window_samples_large_volumes():
    big = np.arange(3_000_000, dtype=np.float32)
    lo, hi = percentile_window(big, 0, 100, ignore_background=False, max_samples=1000)
    assert lo == 0 and hi > 2_990_000


def test_drag_window():
    levels = (0.0, 100.0)
    wider = drag_window(levels, 10, 0, data_range=(0, 512), pixels=512)
    assert range_to_window(*wider) == pytest.approx((110, 50))
    brighter = drag_window(levels, 0, -10, data_range=(0, 512), pixels=512)
    assert range_to_window(*brighter) == pytest.approx((100, 40))  # up = lower level
    assert range_to_window(*drag_window(levels, -1e6, 0, data_range=(0, 1)))[0] > 0


def test_histogram_counts_every_sampled_value():
    centres, counts = histogram(np.arange(10, dtype=np.uint8))
    assert counts.sum() == 10 and len(centres) == len(counts) == 10
    _centres, n = histogram(np.array([np.nan, 1.0, 2.0]))
    assert n.sum() == 2


def test_label_lut_colours_and_hides():
    lut = label_lut(BRAIN_TISSUE_LABELS, 4, hidden=[2])
    assert lut.dtype == np.uint8 and lut.shape == (4, 4)
    assert lut[0, 3] == 0 and lut[2, 3] == 0
    assert tuple(lut[3, :3]) == BRAIN_TISSUE_LABELS.color(3) and lut[3, 3] == 255


def test_label_lut_covers_values_outside_the_table():
    table = LabelTable.from_labels([Label(0, "bg", (0, 0, 0)), Label(1, "a", (1, 2, 3))])
    lut = label_lut(table, 1001, values=[1000])
    assert lut[1000, 3] == 255 and tuple(lut[1000, :3]) == table.color(1000)
    assert lut[500, 3] == 0


def test_outline_keeps_boundaries_only():
    m = np.zeros((7, 7), np.uint8)
    m[1:6, 1:6] = 1
    m[3, 3] = 2
    out = label_outline(m)
    assert out[1, 3] == 1 and out[2, 2] == 0
    assert out[3, 3] == 2 and out[2, 3] == 1  # neighbours of the odd pixel are edges too
    full = np.ones((3, 3), np.uint8)
    assert not label_outline(full).any()  # the slice edge is not a boundary
    with pytest.raises(ValueError):
        label_outline(np.zeros((2, 2, 2)))


def test_label_rgba():
    lut = label_lut(BRAIN_TISSUE_LABELS, 4)
    lab = np.array([[0, 1], [3, 9]], np.uint8)
    rgba = label_rgba(lab, lut)
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0 and rgba[1, 1, 3] == 0  # background, value beyond the LUT
    assert tuple(rgba[1, 0, :3]) == BRAIN_TISSUE_LABELS.color(3)
    block = np.zeros((5, 5), np.uint8)
    block[1:4, 1:4] = 2
    outlined = label_rgba(block, lut, outline=True)
    assert outlined[2, 2, 3] == 0 and outlined[1, 2, 3] == 255


def test_label_volumes_counts_and_millilitres():
    arr = np.array([0, 0, 1, 3, 3, 3], np.uint8)
    assert label_volumes(arr, 2.0) == {0: (2, 4.0), 1: (1, 2.0), 3: (3, 6.0)}
    wide = np.array([0, 70000, 70000], np.int32)
    assert label_volumes(wide, 1.0) == {0: (1, 1.0), 70000: (2, 2.0)}
