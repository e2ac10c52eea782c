"""``torch.compile`` of the networks (``Predictor.compile``, ``batch --compile``).

A small network of the ``delineo`` architecture keeps the compilation short
(about 17 s on one core with an empty inductor cache); the shipped networks
compile the same way (benchmarks/bench_batch_compile.py times them).
"""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters

from engine.batch import CaseConfig, collect_cases
from engine.batch.runner import _networks, _Worker
from engine.data.phantom import synthesize_phantom
from engine.methods import cnn
from engine.methods.lesion_step import LesionParams, lesion_networks
from engine.methods.pipeline import get_pipeline
from engine.models import build_model
from engine.models.predictor import Predictor

pytestmark = [
    pytest.mark.slow,  # compiles (inductor, a C++ compiler)
    # torch's own compiler stack touches torch.jit.script_method, which torch deprecates
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"
                               ":DeprecationWarning"),
]


def _small_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("delineo", base=4, depth=2, skip_channels=4)


def test_compiled_network_gives_the_eager_result_with_one_graph_for_every_size():
    net = _small_network()
    eager = Predictor(net, device="cpu", precision="float32", batch_size=4)
    compiled = Predictor(net, device="cpu", precision="float32", batch_size=4)
    torch._dynamo.reset()
    counters.clear()
    assert compiled.compile() and compiled.compiled and not eager.compiled
    assert compiled.compile_seconds > 0
    rng = np.random.default_rng(1)
    # sizes the warm-up did not have (in the band of a head's crop, see Predictor.compile):
    # non-square, square, one slice, a partial batch, a resampled grid, some slices only
    calls = [((150, 140, 9), {}), ((144, 144, 1), {}), ((136, 170, 16), {}),
             ((140, 150, 12), {"spacing": (1.0, 1.0, 2.0)})]
    for shape, kwargs in calls:
        image = rng.random(shape, dtype=np.float32)
        got, want = compiled.predict_array(image, **kwargs), eager.predict_array(image, **kwargs)
        assert got.compiled and not want.compiled
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
        assert np.array_equal(got.labels, want.labels)
    image = rng.random((150, 140, 9), dtype=np.float32)
    some = np.zeros(9, bool)
    some[[2, 6]] = True
    got, want = (p.predict_array(image, slices=some) for p in (compiled, eager))
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    compiled.tta = eager.tta = True
    got, want = (p.predict_array(image) for p in (compiled, eager))
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == 1  # compiled once, in compile()


def test_a_failed_compilation_leaves_the_network_eager(monkeypatch, caplog):
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("InductorError: no working C++ compiler found")

    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: Broken())
    net = _small_network()
    pred = Predictor(net, device="cpu", precision="float32", batch_size=4)
    with caplog.at_level(logging.WARNING, logger="engine.models.predictor"):
        assert pred.compile() is False
    assert "torch.compile failed, the network stays eager" in caplog.text
    assert "no working C++ compiler" in caplog.text
    assert not pred.compiled and pred.compile_seconds is None
    image = np.random.default_rng(2).random((24, 28, 5), dtype=np.float32)
    reference = Predictor(net, device="cpu", precision="float32", batch_size=4)
    got = pred.predict_array(image)
    assert not got.compiled
    assert np.array_equal(got.probabilities, reference.predict_array(image).probabilities)


def test_workers_compile_each_network_for_the_arithmetic_of_its_step():
    pipeline = get_pipeline("head+lesions")
    lesions = [s.name for s in pipeline.steps].index("lesions")
    networks = _networks(CaseConfig(pipeline="head+lesions"))
    default = LesionParams().precision
    assert default == "float32"  # the lesion step's threshold was chosen in float32
    assert {n: networks[n] for n in lesion_networks(True)} == dict.fromkeys(
        lesion_networks(True), default)
    tissue = [n for n in networks if n not in lesion_networks(True)]
    assert tissue and all(networks[n] == "auto" for n in tissue)
    changed = _networks(CaseConfig(pipeline="head+lesions",
                                   overrides={lesions: {"precision": "bfloat16",
                                                        "ensemble": False}}))
    assert {n: changed[n] for n in changed if n not in tissue} == {
        lesion_networks(False)[0]: "bfloat16"}
    method = cnn.CNN_SPECS[1]
    assert _networks(CaseConfig(method=method.name, params=method.params_type(
        precision="float32"))) == {method.name: "float32"}
    assert _networks(CaseConfig(method="gmm")) == {}


def test_a_compiling_worker_records_its_networks_and_writes_the_eager_labels(tmp_path,
                                                                             monkeypatch):
    volume, _ = synthesize_phantom(seed=3)
    centre = [n // 2 for n in volume.shape]
    block = volume.array[tuple(slice(c - h, c + h) for c, h in zip(centre, (24, 28, 20),
                                                                     strict=True))]
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(block, np.float32), np.eye(4)), path)
    cases = collect_cases([path])
    net = _small_network()
    labels = {}
    for compile_ in (False, True):
        # the worker's cached "delineo" is the small network (fresh, so not yet compiled)
        monkeypatch.setitem(cnn._PREDICTORS, ("delineo", "cpu"),
                            Predictor(net, device="cpu", batch_size=4, name="delineo"))
        config = CaseConfig(method="delineo", device="cpu", allow_outside_use=True,
                            compile=compile_)
        out = tmp_path / f"run{int(compile_)}"
        worker = _Worker(str(out), config, 1)
        assert worker.compiled == (["delineo"] if compile_ else [])
        result = worker.process(cases[0], 1)
        assert result.status == "done", result.error
        assert result.compiled == worker.compiled
        record = json.loads((out / "records" / f"{cases[0].case_id}.json").read_text())
        assert record["result"]["compiled"] == worker.compiled
        labels[compile_] = np.asarray(nib.load(result.output).dataobj)
    agree = float(np.mean(labels[True] == labels[False]))
    assert agree > 0.999, agree  # the same network; bfloat16 sums fused in another order
