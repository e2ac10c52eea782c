"""The classical reference detector on a phantom with seeded synthetic lesions.

Its sensitivity and false positives are measured (and reported in
docs/lesions.md), not asserted beyond a sane floor: it must find a large,
clearly contrasted lesion inside white matter, stay quiet on a lesion-free
phantom, and return a consistent instance map.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import ParameterError
from engine.data.lesions import add_lesions
from engine.data.phantom import mni_tissue_block, synthesize_phantom
from engine.evaluation.lesionwise import evaluate_case
from engine.lesions import detect_outliers, lesion_instances


@pytest.fixture(scope="module")
def phantom():
    return synthesize_phantom("t1", seed=0, block=mni_tissue_block())


def test_finds_a_large_white_matter_lesion(phantom) -> None:
    image, truth = phantom
    lesioned, labels, painted = add_lesions(
        image, truth, contrast="t1", count=1, seed=25, sizes_mm=(10.0, 14.0),
        regions={"white_matter": 1.0}, oedema_probability=0.0, rim_probability=0.0,
        mass_effect_probability=0.0)
    # A lesion inside white matter, touching neither cortex nor ventricle: the only kind
    # this reference can find (it misses many even of those: see docs/lesions.md).
    assert len(painted) == 1
    assert not (painted[0].touches_cortex or painted[0].touches_ventricle)
    found = detect_outliers(lesioned, contrast="t1", mask=np.asarray(truth.array) > 0)
    n = int(found.instances.max())
    assert n == len(found.confidences) >= 1
    assert all(0.0 <= c < 1.0 for c in found.confidences)
    assert np.array_equal(found.instances, lesion_instances(found.labels()))
    case = evaluate_case(found.labels(), labels, probabilities=found.lesion_probability)
    assert case.truth[0].detected
    assert case.truth[0].dice > 0.5
    assert case.n_false_positives <= 3


def test_quiet_on_a_lesion_free_phantom(phantom) -> None:
    image, truth = phantom
    found = detect_outliers(image, contrast="t1", mask=np.asarray(truth.array) > 0)
    assert int(found.instances.max()) <= 3
    assert found.score.same_grid(image) and found.tissue.same_grid(image)


def test_bad_parameters(phantom) -> None:
    image, _ = phantom
    with pytest.raises(ParameterError):
        detect_outliers(image, contrast="ct")
    with pytest.raises(ParameterError):
        detect_outliers(image, z_threshold=0.0)
    with pytest.raises(ParameterError):
        detect_outliers(image, shell_wm=1.5)
