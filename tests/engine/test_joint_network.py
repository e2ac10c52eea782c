"""One network for tissue and lesions: the default pipeline's tissue network has a lesion
output, and the lesions step takes that output instead of running the network again."""

from __future__ import annotations

import numpy as np
import pytest

from engine.core.errors import ParameterError
from engine.core.volume import BRAIN_LESION_LABELS, BRAIN_TISSUE_LABELS, LabelMap
from engine.methods import lesion_step
from engine.methods.cnn import cached_predictor
from engine.methods.lesion_step import (
    LESION_MODELS,
    NETWORK_LESION_KEY,
    LesionParams,
    find_lesions,
    reusable_output,
)
from engine.methods.pipeline import DEFAULT_PIPELINE, PIPELINES, Pipeline, Step, run_pipeline
from engine.methods.registry import METHODS

try:
    from tests.engine.test_lesion_model import _lesion_phantom
except ImportError:  # tests/engine is on sys.path (pytest "prepend" import mode)
    from test_lesion_model import _lesion_phantom  # type: ignore[no-redef]

JOINT = "delineo_lesion_varied"


@pytest.fixture(scope="module")
def slab():
    """The 50-slice T2 slab with one 12 mm white-matter lesion of the lesion-step tests,
    its labels with the lesion and its tissue labels."""
    image, labels, _ = _lesion_phantom()
    tissue = LabelMap(np.where(labels.array == 4, 3, labels.array).astype(np.uint8),
                      image.affine.copy(), labels=BRAIN_TISSUE_LABELS)
    return image, labels, tissue


def test_the_default_pipeline_segments_tissue_with_the_joint_network_then_lesions():
    steps = PIPELINES[DEFAULT_PIPELINE].steps
    assert DEFAULT_PIPELINE == "head"
    assert [s.name for s in steps] == ["brain_mask", JOINT, "largest_component", "lesions"]
    # the tissue step runs in the lesions step's arithmetic, so its output is reused
    assert steps[1].params["precision"] == LesionParams().precision
    assert JOINT in LESION_MODELS and METHODS[JOINT].kind == "cnn"
    # head+lesions keeps the tissue network delineo
    assert [s.name for s in PIPELINES["head+lesions"].steps][1] == "delineo"


def test_a_network_with_a_lesion_output_gives_tissue_labels_and_its_raw_lesion_output(slab):
    """Tissue labels and tissue probabilities (the lesion probability taken in by CSF,
    GM and WM in proportion to theirs), and the lesion output apart, as the network gave
    it, with or without a brain mask."""
    image, _, tissue = slab
    pred = cached_predictor(JOINT, "cpu")
    pred.precision = "float32"
    raw = np.stack([pred.class_probability(image.array, image.spacing, k) for k in range(5)])
    free = pred.predict_array(image.array, image.spacing)
    assert free.probabilities.shape == (4, *image.shape)
    np.testing.assert_allclose(free.probabilities.sum(axis=0), 1.0, atol=1e-5)
    assert free.lesion_probability is not None
    np.testing.assert_array_equal(free.lesion_probability, raw[4])
    # the tissue classes grow in proportion: their ratios and the background stay
    np.testing.assert_array_equal(free.probabilities[0], raw[0])
    scale = (raw[1] + raw[2] + raw[3] + raw[4]) / np.maximum(raw[1] + raw[2] + raw[3], 1e-6)
    np.testing.assert_allclose(free.probabilities[2], raw[2] * scale, atol=1e-5)
    assert free.labels.max() <= 3  # never the lesion class: that is the lesions step's
    best = np.argmax(raw, axis=0)
    assert np.array_equal(free.labels[best < 4], best[best < 4])
    # a voxel most likely lesion is brain, labelled with its most likely tissue
    lesion = best == 4
    assert lesion.sum() > 500  # the 12 mm lesion
    assert np.array_equal(free.labels[lesion], 1 + np.argmax(raw[1:4][:, lesion], axis=0))
    assert free.lesion_probability[tissue.array == 0].mean() < 0.01
    # with a brain mask: tissue renormalised inside it, the lesion output as it was
    brain = tissue.array > 0
    masked = pred.predict_array(image.array, image.spacing, mask=brain)
    np.testing.assert_array_equal(masked.lesion_probability, raw[4])
    assert (masked.labels[~brain] == 0).all() and (masked.labels[brain] > 0).all()
    np.testing.assert_array_equal(masked.labels[brain],
                                  1 + np.argmax(raw[1:4][:, brain], axis=0))
    # as a method: tissue labels, the lesion output in the result's info
    result = pred.predict(image, mask=brain)
    assert result.labels.labels == BRAIN_TISSUE_LABELS
    assert result.probabilities.shape[0] == 4
    np.testing.assert_array_equal(result.info[NETWORK_LESION_KEY], raw[4])
    # a tissue network without a lesion output gives none
    assert cached_predictor("delineo", "cpu").predict_array(
        image.array[:, :, :8], image.spacing).lesion_probability is None


def test_reusable_only_for_a_network_of_the_step_in_its_arithmetic_and_mirroring():
    prob = np.zeros((4, 4, 4), np.float32)
    info = {"model": JOINT, "precision": "float32", "tta": False, NETWORK_LESION_KEY: prob}
    params = LesionParams()
    assert reusable_output(info, params, "cpu") == {JOINT: prob}
    assert reusable_output({**info, "precision": "bfloat16"}, params, "cpu") == {}
    assert reusable_output({**info, "tta": True}, params, "cpu") == {}
    assert reusable_output(info, LesionParams(tta=True), "cpu") == {}
    assert reusable_output({**info, "model": "delineo"}, params, "cpu") == {}
    # the first network alone (ensemble off) does not average the joint network
    assert reusable_output(info, LesionParams(ensemble=False), "cpu") == {}
    assert reusable_output({k: v for k, v in info.items() if k != NETWORK_LESION_KEY},
                           params, "cpu") == {}


def test_a_known_output_stands_for_running_that_network(slab):
    """Given the second network's output, the step runs only the first, where a lesion is
    still in reach; the lesions and their confidences are those of running both."""
    image, _, tissue = slab
    params = LesionParams()
    both, p_both = find_lesions(image, tissue, params, device="cpu")
    _, p_joint = find_lesions(image, tissue, params, device="cpu", model=JOINT)
    messages: list[str] = []
    known, p_known = find_lesions(image, tissue, params, device="cpu", known={JOINT: p_joint},
                                  progress=lambda f, m: messages.append(m))
    assert (both == 4).sum() > 500  # the 12 mm lesion
    assert np.array_equal(known, both)
    inside = both == 4
    np.testing.assert_allclose(p_known[inside], p_both[inside], atol=1e-6)
    assert any(m.endswith("output of the tissue step") for m in messages)
    ran = [m for m in messages if m.startswith(f"lesion network {LESION_MODELS[0]} on ")]
    n_ran, n_all = (int(w) for w in ran[0].split(" on ")[1].split(" slices")[0].split(" of "))
    assert 0 < n_ran < n_all  # the other network ran on a part of the slices only
    with pytest.raises(ParameterError, match="shape"):
        find_lesions(image, tissue, params, device="cpu", known={JOINT: p_joint[:, :, 1:]})


def test_the_lesions_step_takes_the_tissue_steps_lesion_output(slab, monkeypatch):
    """The default pipeline's composition on a skull-stripped slab: the joint network is
    not run again, and the lesions match those of running both lesion networks."""
    image, lab, _ = slab
    pipe = Pipeline("joint", "test", (PIPELINES["head"].steps[1], Step("largest_component"),
                                      Step("lesions")))
    result = run_pipeline(image, pipe, device="cpu")
    assert result.info["lesion_networks_reused"] == [JOINT]
    assert NETWORK_LESION_KEY not in result.info
    assert result.labels.labels == BRAIN_LESION_LABELS
    found = result.labels.array == 4
    truth = lab.array == 4
    assert 2 * (found & truth).sum() / (found.sum() + truth.sum()) > 0.6
    # without reuse the step runs both networks on the image masked to the brain and
    # cropped to its box: nearly the same lesions (here, without brain extraction, the
    # tissue step saw the phantom's background too; measured: 84 voxels of ~1,150 differ)
    monkeypatch.setattr(lesion_step, "reusable_output", lambda *a, **k: {})
    again = run_pipeline(image, pipe, device="cpu")
    assert again.info["lesion_networks_reused"] == []
    other = again.labels.array == 4
    assert 2 * (found & other).sum() / (found.sum() + other.sum()) > 0.9
    assert np.array_equal(result.labels.array[~(found | other)],
                          again.labels.array[~(found | other)])
