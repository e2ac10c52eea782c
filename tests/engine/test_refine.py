"""Click-to-refine (engine.editing.refine): grow, refine and box modes, local work, safe apply."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import ParameterError
from engine.core.jobs import Cancelled, CancelToken
from engine.core.volume import Volume
from engine.editing.refine import ClickRefineParams, refine_at


def _ball_scene(noise: float = 4.0) -> tuple[Volume, np.ndarray]:
    """A bright ball (radius 8 voxels) and a dim slab in a 48 x 48 x 40 volume."""
    rng = np.random.default_rng(1)
    i, j, k = np.indices((48, 48, 40))
    ball = (i - 16) ** 2 + (j - 24) ** 2 + (k - 20) ** 2 <= 8**2
    image = np.full(ball.shape, 20.0, np.float32)
    image[ball] = 100.0
    image[36:44, 8:40, 8:32] = 60.0
    image += rng.normal(0.0, noise, image.shape).astype(np.float32)
    return Volume(image, np.eye(4)), ball


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_click_grows_the_label_over_the_structure_only():
    volume, ball = _ball_scene()
    labels = np.zeros(volume.shape, np.uint8)
    labels[40, 20, 20] = 3  # another label elsewhere stays
    edit = refine_at(volume, labels, 2, seed=(16, 24, 20), device="cpu")
    assert edit.mode == "grow"
    assert np.array_equal(labels[edit.region], edit.before)  # the input is not changed
    diff = edit.apply_to(labels)
    assert diff is not None and diff.count == edit.changed
    assert _dice(labels == 2, ball) > 0.9
    assert labels[40, 20, 20] == 3
    assert not (labels[36:44] == 2).any()  # the slab was not taken
    diff.revert(labels)
    assert int((labels == 2).sum()) == 0


def test_work_stays_inside_the_reach():
    volume, _ = _ball_scene()
    labels = np.zeros(volume.shape, np.uint8)
    edit = refine_at(volume, labels, 1, seed=(16, 24, 20), device="cpu",
                     params=ClickRefineParams(reach=5.0))
    assert [s.stop - s.start for s in edit.region] == [11, 11, 11]
    assert edit.after.shape == (11, 11, 11)


def test_click_on_the_label_refines_its_boundary():
    volume, ball = _ball_scene()
    shifted = np.roll(ball, 3, axis=0)  # the label sits 3 voxels off the ball
    labels = np.where(shifted, 1, 0).astype(np.uint8)
    before = _dice(labels == 1, ball)
    edit = refine_at(volume, labels, 1, seed=(18, 24, 20), device="cpu",
                     params=ClickRefineParams(iterations=120))
    assert edit.mode == "refine"
    edit.apply_to(labels)
    assert _dice(labels == 1, ball) > max(before + 0.05, 0.9)


def test_refine_against_a_neighbouring_label():
    volume, ball = _ball_scene()
    labels = np.where(ball, 1, 2).astype(np.uint8)  # label 2 around the ball
    grown = np.roll(ball, 2, axis=1)
    labels[grown] = 1
    edit = refine_at(volume, labels, 1, seed=(16, 24, 20), device="cpu",
                     params=ClickRefineParams(iterations=120))
    assert edit.mode == "refine"
    edit.apply_to(labels)
    assert _dice(labels == 1, ball) > 0.9
    assert set(np.unique(labels)) == {1, 2}  # voxels that left label 1 went to label 2


def test_box_starts_the_contour():
    volume, ball = _ball_scene()
    labels = np.zeros(volume.shape, np.uint8)
    edit = refine_at(volume, labels, 2, box=((5, 12, 8), (28, 37, 33)), device="cpu")
    assert edit.mode == "box"
    assert [s.stop - s.start for s in edit.region] == [27, 29, 29]  # the box and 2 voxels
    edit.apply_to(labels)
    assert _dice(labels == 2, ball) > 0.9
    # the box bounds the result
    labels[:] = 0
    refine_at(volume, labels, 2, box=((5, 12, 8), (16, 37, 33)), device="cpu").apply_to(labels)
    assert labels[16:].max() == 0 and _dice(labels == 2, ball & (np.indices(ball.shape)[0] < 16)
                                            ) > 0.85


def test_apply_keeps_voxels_edited_meanwhile():
    volume, _ = _ball_scene()
    labels = np.zeros(volume.shape, np.uint8)
    edit = refine_at(volume, labels, 2, seed=(16, 24, 20), device="cpu")
    labels[16, 24, 20] = 5  # the user painted here while the worker ran
    diff = edit.apply_to(labels)
    assert labels[16, 24, 20] == 5
    assert diff.count == edit.changed - 1


def test_bad_requests_raise_parameter_errors():
    volume, _ = _ball_scene()
    labels = np.zeros(volume.shape, np.uint8)
    with pytest.raises(ParameterError, match="outside"):
        refine_at(volume, labels, 1, seed=(60, 0, 0))
    with pytest.raises(ParameterError, match="either"):
        refine_at(volume, labels, 1)
    with pytest.raises(ParameterError, match="above 0"):
        refine_at(volume, labels, 0, seed=(1, 1, 1))
    with pytest.raises(ParameterError, match="does not match"):
        refine_at(volume, labels[:-1], 1, seed=(1, 1, 1))


def test_cancel_stops_the_contour():
    volume, _ = _ball_scene()
    token = CancelToken()
    calls = []

    def progress(fraction: float, message: str) -> None:
        calls.append(fraction)
        if len(calls) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        refine_at(volume, np.zeros(volume.shape, np.uint8), 1, seed=(16, 24, 20),
                  device="cpu", progress=progress, cancel=token)
    assert len(calls) <= 4


def test_fine_spacing_gets_a_stable_time_step():
    volume, _ = _ball_scene()
    fine = Volume(volume.array, np.diag([0.4, 0.4, 0.4, 1.0]))
    edit = refine_at(fine, np.zeros(fine.shape, np.uint8), 1, seed=(16, 24, 20), device="cpu",
                     params=ClickRefineParams(reach=5.0, iterations=150))
    assert edit.changed > 0
