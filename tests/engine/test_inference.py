"""The CNN predictor: geometry round trip, normalisation, batching, cancel, evaluate CLI."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from engine.cli import main
from engine.core.errors import ParameterError
from engine.core.jobs import Cancelled, CancelToken
from engine.core.tensors import robust_normalise
from engine.core.volume import LabelMap
from engine.data.phantom import synthesize_phantom, toy_tissue_block
from engine.io import load, load_labels, save
from engine.models import build_model
from engine.models import predictor as predictor_module
from engine.models.predictor import Predictor


class Oracle(nn.Module):
    """A fake network that thresholds the centre slice: lets tests check geometry exactly."""

    divisor = 8

    def forward(self, x: torch.Tensor, deep: bool = False) -> torch.Tensor:
        centre = x[:, x.shape[1] // 2]
        logits = torch.stack([0.3 - centre, centre - 0.3, 0 * centre - 9, 0 * centre - 9], 1)
        return [logits * 20] if deep else logits * 20


def _toy_image() -> tuple[np.ndarray, np.ndarray]:
    image, truth = synthesize_phantom("t1", noise=0.0, inu=0.0, seed=0,
                                      block=toy_tissue_block((40, 36, 20)))
    return image.array, truth.array


def test_lps_input_gives_a_mask_on_the_same_grid(tmp_path):
    array, _ = _toy_image()
    # store the RAS array in LPS voxel order (flip x and y), with an oblique-free LPS affine
    lps = array[::-1, ::-1, :].copy()
    affine = np.array([[-1.2, 0, 0, 30.0], [0, -1.0, 0, 20.0], [0, 0, 1.5, -10.0], [0, 0, 0, 1]])
    path = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(lps, affine), path)
    volume = load(path)
    assert volume.axcodes == ("R", "A", "S")
    result = Predictor(Oracle(), context=1, device="cpu", batch_size=4).predict(volume)
    assert result.labels.same_grid(volume)
    assert result.probabilities.shape == (4, *volume.shape)
    np.testing.assert_allclose(result.probabilities.sum(axis=0), 1.0, atol=1e-4)
    out = save(result.labels, tmp_path / "mask.nii.gz")
    written = nib.load(out)
    assert written.shape == lps.shape
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    # the oracle labels bright voxels 1: in file order they must sit where the image is bright
    mask = np.asarray(written.dataobj)
    bright = lps > 0.3 * lps.max()
    assert (mask[bright] == 1).mean() > 0.95
    assert (mask[lps < 0.1 * lps.max()] == 0).mean() > 0.99
    again = load_labels(out, reference=volume)
    np.testing.assert_array_equal(again.array, result.labels.array)


def test_non_isotropic_voxels_are_resampled_and_returned_on_the_input_grid():
    array, _ = _toy_image()
    coarse = array[::2, :, ::2]
    pred = Predictor(Oracle(), device="cpu").predict_array(coarse, (2.0, 1.0, 2.0))
    assert pred.labels.shape == coarse.shape
    assert pred.probabilities.shape == (4, *coarse.shape)


def test_robust_normalise_is_scale_invariant_and_keeps_air_at_zero():
    x = torch.zeros(40, 40, 20)
    x[10:30, 10:30, 5:15] = torch.linspace(0.2, 1.0, 20)[None, :, None]
    a = robust_normalise(x)
    b = robust_normalise(7.5 * x + 0.0)
    torch.testing.assert_close(a, b)
    assert float(a[0, 0, 0]) == 0.0
    assert 0.95 <= float(a.max()) <= 1.5


def test_batches_cancel_progress_and_mask():
    array, _ = _toy_image()
    seen = []
    pred = Predictor(Oracle(), device="cpu", batch_size=3)
    mask = np.zeros(array.shape, bool)
    mask[:, :, :10] = True
    out = pred.predict_array(array, mask=mask, progress=lambda f, m: seen.append(f))
    assert seen[-1] == pytest.approx(1.0) and len(seen) == 7  # 20 slices in batches of 3
    assert not out.labels[:, :, 10:].any()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        pred.predict_array(array, cancel=token)


def test_out_of_memory_halves_the_batch_for_one_call():
    calls = []
    limit = {"batch": 2}

    class Greedy(Oracle):
        def forward(self, x, deep=False):
            calls.append(x.shape[0])
            if x.shape[0] > limit["batch"]:
                raise torch.cuda.OutOfMemoryError("fake")
            return super().forward(x, deep)

    array, _ = _toy_image()
    pred = Predictor(Greedy(), device="cpu", batch_size=16)
    ref = Predictor(Oracle(), device="cpu", batch_size=16).predict_array(array)
    out = pred.predict_array(array)
    assert out.batch_size == 2 and calls[:3] == [16, 8, 4]
    np.testing.assert_array_equal(out.labels, ref.labels)
    # the next call starts again with the full batch (the memory may be free again)
    assert pred.batch_size == 16
    limit["batch"] = 16
    calls.clear()
    again = pred.predict_array(array)
    assert calls == [16, 4] and again.batch_size == 16  # 20 slices: 16 + 4
    np.testing.assert_array_equal(again.labels, ref.labels)


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")  # autocast, no GPU
def test_cuda_out_of_memory_runs_one_call_on_the_cpu_then_tries_the_gpu_again(monkeypatch):
    # No GPU here: "cuda" is simulated. Every transfer of the predictor goes through
    # _to_device, which records where it was sent and leaves the data in host memory;
    # the fake network runs out of memory while it sits on the full "GPU".
    where = {"model": None}
    state = {"gpu_full": True}
    seen = []

    def fake_to_device(obj, device):
        if isinstance(obj, nn.Module):
            where["model"] = torch.device(device)
        return obj

    class NeedsMemory(Oracle):
        def forward(self, x, deep=False):
            seen.append((where["model"].type, x.shape[0]))
            if where["model"].type == "cuda" and state["gpu_full"]:
                raise torch.cuda.OutOfMemoryError("fake: CUDA out of memory")
            return super().forward(x, deep)

    monkeypatch.setattr(predictor_module, "_to_device", fake_to_device)
    monkeypatch.setattr(predictor_module, "resolve_device", lambda d: torch.device("cuda"))
    array, _ = _toy_image()
    ref = Predictor(Oracle(), batch_size=8).predict_array(array)
    pred = Predictor(NeedsMemory(), device="cuda", batch_size=8)
    first = pred.predict_array(array)
    # the batch was halved down to one slice on the GPU, then the volume ran on the CPU
    assert [b for d, b in seen if d == "cuda"] == [8, 4, 2, 1]
    assert {d for d, _ in seen[4:]} == {"cpu"}
    assert first.device == "cpu" and first.batch_size == 8
    np.testing.assert_array_equal(first.labels, ref.labels)
    # the predictor still belongs to the GPU: the next call goes there again
    assert pred.device == torch.device("cuda") and pred.batch_size == 8
    state["gpu_full"] = False
    seen.clear()
    second = pred.predict_array(array)
    assert {d for d, _ in seen} == {"cuda"} and where["model"].type == "cuda"
    assert second.device == "cuda" and second.batch_size == 8
    np.testing.assert_array_equal(second.labels, ref.labels)


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")  # autocast, no GPU
def test_on_cuda_only_the_batches_visit_the_gpu(monkeypatch):
    # "cuda" is simulated as above: _to_device records every transfer and leaves the
    # data in host memory. The volume, its resampling and the stitched probabilities
    # must never be sent to the GPU -- only the network and one batch of slices at a
    # time, whose probabilities come straight back -- so GPU memory does not grow
    # with the volume.
    sent = []

    def fake_to_device(obj, device):
        sent.append((torch.device(device).type, None if isinstance(obj, nn.Module)
                     else tuple(obj.shape)))
        return obj

    monkeypatch.setattr(predictor_module, "_to_device", fake_to_device)
    monkeypatch.setattr(predictor_module, "resolve_device", lambda d: torch.device("cuda"))
    array, _ = _toy_image()
    spacing = (1.0, 1.0, 2.0)  # resampled to the 1 mm grid and back: that happens on the host
    ref = Predictor(Oracle(), device="cpu", batch_size=8).predict_array(array, spacing)
    sent.clear()
    pred = Predictor(Oracle(), device="cuda", batch_size=8).predict_array(array, spacing)
    assert pred.device == "cuda"
    np.testing.assert_array_equal(pred.labels, ref.labels)
    to_gpu = [shape for kind, shape in sent if kind == "cuda"]
    to_host = [shape for kind, shape in sent if kind == "cpu"]
    assert to_gpu[0] is None  # the network
    batches = to_gpu[1:]
    slices = 2 * array.shape[2]  # 2 mm slices on the 1 mm grid
    assert sum(b[0] for b in batches) == slices and max(b[0] for b in batches) == 8
    assert all(len(b) == 4 and b[1] == 3 for b in batches)  # (slices, 2c + 1, X, Y)
    # every batch's probabilities come back at once, four labels per slice
    assert [b[0] for b in to_host] == [b[0] for b in batches]
    assert all(b[1] == 4 for b in to_host)


def test_out_of_memory_on_the_cpu_at_one_slice_is_raised():
    class Hopeless(Oracle):
        def forward(self, x, deep=False):
            raise torch.cuda.OutOfMemoryError("fake")

    array, _ = _toy_image()
    with pytest.raises(torch.cuda.OutOfMemoryError):
        Predictor(Hopeless(), device="cpu", batch_size=4).predict_array(array)


def test_real_network_runs_end_to_end_on_cpu():
    array, _ = _toy_image()
    for name in ("unet", "delineo"):
        net = build_model(name, base=8)
        pred = Predictor(net, device="cpu", batch_size=8, tta=True).predict_array(array)
        assert pred.labels.shape == array.shape and pred.labels.max() <= 3


def test_a_single_slice_and_thin_volumes_are_segmented():
    from engine.core.metrics import confusion
    from engine.data.phantom import synthesize_phantom

    image, truth = synthesize_phantom("t1", noise=0.03, inu=0.2, seed=5)
    pred = Predictor.from_name("delineo", device="cpu")
    for k0, k1 in ((100, 101), (100, 103)):
        out = pred.predict_array(image.array[:, :, k0:k1], mask=truth.array[:, :, k0:k1] > 0)
        assert out.labels.shape == (*image.shape[:2], k1 - k0)
        conf = confusion(out.labels, truth.array[:, :, k0:k1], [1, 2, 3])
        assert np.mean([conf[v].dice for v in (1, 2, 3)]) > 0.9


def test_evaluate_command_on_a_prediction(tmp_path, capsys):
    _, truth = _toy_image()
    affine = np.eye(4)
    gt = save(LabelMap(truth, affine), tmp_path / "gt.nii.gz")
    pred = truth.copy()
    pred[pred == 2] = 3  # all GM wrong
    pr = save(LabelMap(pred, affine), tmp_path / "pred.nii.gz")
    assert main(["evaluate", str(pr), "--ground-truth", str(gt), "--slab", "8:12",
                 "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["whole"]["csf"] == 1.0 and table["whole"]["gm"] == 0.0
    assert 0 < table["whole"]["wm"] < 1 and "slab" in table
    assert main(["evaluate", str(pr), "--ground-truth", str(gt), "--slab", "1:99"]) == 2


def test_batchnorm_folding_keeps_the_outputs():
    from engine.models.predictor import fuse_batchnorm

    torch.manual_seed(0)
    for name in ("unet", "delineo"):
        net = build_model(name, base=8)
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2.0)
        net.eval()
        fused = fuse_batchnorm(net)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
        assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # original untouched
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(fused(x), net(x), rtol=1e-4, atol=1e-4)


def test_precision_names_and_what_auto_picks(monkeypatch):
    from engine.core.device import resolve_precision
    from engine.core.errors import ParameterError

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("float32", cuda) == torch.float32
    assert resolve_precision("bfloat16", cpu) == torch.bfloat16
    assert resolve_precision("auto", cuda) == torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", cpu) == torch.float32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", cpu) == torch.bfloat16
    with pytest.raises(ParameterError, match="precision must be one of"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ParameterError, match="precision must be one of"):
        Predictor(Oracle(), device="cpu", precision="half")


def test_bfloat16_gives_the_float32_segmentation_of_the_shipped_network():
    # The shipped network on 24 slices of a T1 phantom: bfloat16 arithmetic (the
    # default on a GPU and on CPUs with AMX) may move a few boundary voxels, not the
    # segmentation.
    from engine.core.metrics import dice

    image, truth = synthesize_phantom("t1", noise=0.03, inu=0.2, seed=11)
    array, ref = image.array[:, :, 70:94], truth.array[:, :, 70:94]
    pred = Predictor.from_name("delineo", device="cpu")
    pred.precision = "float32"
    full = pred.predict_array(array)
    pred.precision = "bfloat16"
    low = pred.predict_array(array)
    assert (full.precision, low.precision) == ("float32", "bfloat16")
    # measured: 99.95 % of the voxels agree, Dice within 0.0002, probabilities within 0.06
    assert np.mean(low.labels == full.labels) > 0.998
    for v in (1, 2, 3):
        assert abs(dice(low.labels, ref, v) - dice(full.labels, ref, v)) < 0.002
    assert np.abs(low.probabilities - full.probabilities).max() < 0.2


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5)])
def test_asking_for_some_slices_gives_those_of_a_whole_volume_call(spacing):
    """The shipped network on a phantom: the slices asked for get the probabilities of a
    whole-volume call (the intensity scale is the whole volume's, each slice's input
    window its own), also when the volume is resampled to 1 mm and back; the rest read
    as background, and the network runs on fewer slices."""
    array, _ = _toy_image()
    pred = Predictor.from_name("delineo", device="cpu", batch_size=4, precision="float32")
    whole = pred.predict_array(array, spacing)
    wanted = np.zeros(array.shape[2], bool)
    wanted[[3, 4, 11]] = True
    seen = []
    part = pred.predict_array(array, spacing, slices=wanted,
                              progress=lambda f, m: seen.append(m))
    np.testing.assert_allclose(part.probabilities[:, :, :, wanted],
                               whole.probabilities[:, :, :, wanted], atol=1e-5)
    np.testing.assert_array_equal(part.labels[:, :, wanted], whole.labels[:, :, wanted])
    far = np.ones(array.shape[2], bool)
    far[1:14] = False  # input slices 0 and 14.. share no network slice with the wanted
    assert (part.labels[:, :, far] == 0).all() and (whole.labels[:, :, far] > 0).any()
    assert np.allclose(part.probabilities[0][:, :, far], 1.0)
    # network slices run: the three asked for, or at 2.5 mm the two each is interpolated
    # from (network slices 8-11 and 28-29 of 50)
    assert seen[-1].endswith(f"/{3 if spacing[2] == 1.0 else 6}")
    with pytest.raises(ParameterError, match="one entry per axial slice"):
        pred.predict_array(array, spacing, slices=wanted[:-1])


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 1.0, 2.5)])
def test_one_class_alone_is_that_class_of_a_whole_call(spacing):
    """class_probability keeps one output class (the lesions step's lesion output): the
    same map as the class of predict_array, whole or on some slices, resampled or not
    (at 2.5 mm up to the rounding of the full call's renormalisation), and background
    (0 for a class other than 0) where no slice was asked for."""
    array, _ = _toy_image()
    tissue = Predictor.from_name("delineo", device="cpu", batch_size=4, precision="float32")
    whole = tissue.predict_array(array, spacing)
    tol = 0.0 if spacing[2] == 1.0 else 1e-6
    for k in (-1, 2, 0):
        one = tissue.class_probability(array, spacing, k)
        assert one.shape == array.shape and one.dtype == np.float32
        np.testing.assert_allclose(one, whole.probabilities[k], atol=tol, rtol=0)
    pred = Predictor.from_name("delineo_lesion_varied", device="cpu", batch_size=4,
                               precision="float32")
    np.testing.assert_allclose(pred.class_probability(array, spacing),
                               pred.predict_array(array, spacing).lesion_probability,
                               atol=tol, rtol=0)
    wanted = np.zeros(array.shape[2], bool)
    wanted[[3, 4, 11]] = True
    part = pred.predict_array(array, spacing, slices=wanted)
    lesion = pred.class_probability(array, spacing, slices=wanted)
    np.testing.assert_allclose(lesion, part.lesion_probability, atol=tol, rtol=0)
    far = np.ones(array.shape[2], bool)
    far[1:14] = False
    assert (lesion[:, :, far] == 0).all()
    assert np.allclose(pred.class_probability(array, spacing, 0, slices=wanted)[:, :, far], 1)
    with pytest.raises(ParameterError, match="one entry per axial slice"):
        pred.class_probability(array, spacing, slices=wanted[:-1])
