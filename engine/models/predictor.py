"""The CNN predictor: a :class:`~engine.core.volume.Volume` in, tissue probabilities and labels out.

Steps of :meth:`Predictor.predict`:

1. resample to the networks' 1 mm grid if the voxels are not ~1 mm (the
   probabilities are interpolated back at the end);
2. crop to the head's bounding box (found on a 4x down-sampled copy, so
   noise in the air does not widen it), padded to the network's divisor;
3. normalise intensities robustly
   (:func:`engine.core.tensors.robust_normalise`; the training synthesiser
   scales its patches with the same :func:`~engine.core.tensors.robust_scale`);
4. run axial slices -- each with its neighbours as channels (2.5-D) -- in
   batches on the chosen device, optionally averaging with the left-right
   mirrored input (test-time augmentation); ``slices`` asks for some axial
   slices only (the later lesion networks run only where a lesion is still in
   reach, :mod:`engine.methods.lesion_step`);
   only the batch and its probabilities visit that device: the volume, the
   stitched probabilities and every resampling stay in host memory (the
   output device is always the CPU), so GPU memory holds the network and one
   batch whatever the size of the volume; the network runs in channels-last
   memory layout, in bfloat16 where the device computes it natively (a GPU,
   or a CPU with AMX tiles; ``precision``) and in float32 elsewhere;
5. return per-label probabilities ``(4, *volume.shape)`` and the arg-max label
   map 0/1/2/3 on the input's grid. A network with a fifth, lesion output (the
   lesion networks, ``train-lesions --classes tissue+lesion``) returns the four
   tissue probabilities too -- the lesion probability added to CSF, GM and WM in
   proportion to theirs -- and tissue labels: a voxel whose most likely class
   is the lesion is labelled with its most likely tissue. The lesion output
   itself comes apart (``Prediction.lesion_probability``), for the ``lesions``
   step (:mod:`engine.methods.lesion_step`); lesions are never found by an
   arg-max.

:meth:`Predictor.compile` runs the network through ``torch.compile`` from
then on (inductor, dynamic shapes: one compilation for every volume size and
batch), for batch workers that segment many volumes (``batch --compile``).

Out of memory halves the batch until it fits; CUDA out of memory at one
slice per batch runs that volume on the CPU. Both last one call: the next
volume starts again on the chosen device with the full batch. Progress is
reported per batch and :class:`~engine.core.jobs.CancelToken` is polled
between batches.

Weights are read by :mod:`engine.models.weights` from ``safetensors`` files
only (no pickled code is ever unpickled); the JSON model card beside them
names the architecture.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual torch alias
from torch import nn

from ..core.device import resolve_device, resolve_precision
from ..core.errors import ParameterError
from ..core.jobs import CancelToken, check_cancel, report
from ..core.memory import reusing_freed_memory
from ..core.steps import SegmentationResult
from ..core.tensors import FOREGROUND_FRACTION, quantile, robust_normalise
from ..core.volume import BRAIN_TISSUE_LABELS, LabelMap, Volume
from .weights import load_model

__all__ = ["Prediction", "Predictor", "fuse_batchnorm"]

log = logging.getLogger(__name__)

#: Grid the networks were trained on (mm).
NETWORK_SPACING_MM = 1.0

#: Axial size (voxels of the network's grid) of the volume :meth:`Predictor.compile`
#: compiles on: that of a whole head's crop at 1 mm.
WARM_UP_SIZE = (176, 208)

#: Classes of a tissue segmentation (background, CSF, GM, WM): the labels a prediction
#: gives; a network's further outputs (a lesion probability) are not arg-maxed.
TISSUE_CLASSES = 4

#: Where the volume, the stitched probabilities and the results live, whatever
#: device computes the forward passes.
OUTPUT_DEVICE = torch.device("cpu")


# ---------------------------------------------------------------------------
# Batch normalisation folding
# ---------------------------------------------------------------------------
def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ``Conv2d -> BatchNorm2d`` pair of ``nn.Sequential`` containers (eval only).

    The arithmetic is unchanged up to rounding; inference saves one pass over
    every feature map. Returns a fused copy; *model* is left untouched.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = copy.deepcopy(model).eval()
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
    return fused


# ---------------------------------------------------------------------------
# Predictor
# ---------------------------------------------------------------------------
def _to_device(obj: Any, device: torch.device) -> Any:
    """``obj.to(device)`` for a tensor or a module: every transfer of the predictor."""
    return obj.to(device)


def _head_box(x: torch.Tensor, divisor: int, margin: int = 6) -> tuple[slice, slice, slice]:
    """Bounding box of the head on a 4x average-pooled copy (noise-robust)."""
    top = quantile(x, 0.999)
    # pool by 4 along each axis that has at least 4 voxels (a single slice stays one)
    kernel = tuple(4 if n >= 4 else 1 for n in x.shape)
    coarse = F.avg_pool3d(x[None, None], kernel, stride=kernel, ceil_mode=True)[0, 0]
    fg = coarse > FOREGROUND_FRACTION * top
    if not bool(fg.any()):
        return slice(0, x.shape[0]), slice(0, x.shape[1]), slice(0, x.shape[2])
    out = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        idx = torch.nonzero(fg.any(dim=other[1]).any(dim=other[0])).flatten()
        k = kernel[axis]
        lo = max(0, int(idx.min()) * k - margin)
        hi = min(x.shape[axis], (int(idx.max()) + 1) * k + margin)
        out.append(slice(lo, hi))
    return tuple(out)  # type: ignore[return-value]


def _network_slices(wanted: np.ndarray, n_net: int) -> np.ndarray:
    """Booleans over the *n_net* axial slices of the network's grid: those that the
    *wanted* slices of the input grid are interpolated from (trilinear,
    ``align_corners=False``, as :meth:`Predictor._probabilities` resamples back)."""
    n_in = wanted.shape[0]
    need = np.zeros(n_net, bool)
    i = np.flatnonzero(wanted)
    if n_in == n_net:
        need[i] = True
        return need
    src = np.clip((i + 0.5) * (n_net / n_in) - 0.5, 0.0, None)
    lo = np.minimum(np.floor(src).astype(int), n_net - 1)
    need[lo] = True
    need[np.minimum(lo + 1, n_net - 1)] = True
    return need


def _argmax_uint8(probs: np.ndarray) -> np.ndarray:
    """``probs.argmax(axis=0)`` as uint8, without numpy's int64 temporary (a whole head's
    labels would need 8 bytes a voxel); ties keep the first class, as argmax does."""
    labels = np.zeros(probs.shape[1:], np.uint8)
    best = probs[0].copy()
    for k in range(1, probs.shape[0]):
        better = probs[k] > best
        labels[better] = k
        np.maximum(best, probs[k], out=best)
    return labels


def _tissue_labels(probs: np.ndarray) -> np.ndarray:
    """The arg-max label map of *probs*, tissue classes only: a voxel whose most likely
    class is a further output (a lesion) is brain, labelled with its most likely tissue
    (CSF, GM or WM); finding lesions is the ``lesions`` step's."""
    labels = _argmax_uint8(probs)
    if probs.shape[0] > TISSUE_CLASSES:
        extra = labels >= TISSUE_CLASSES
        if extra.any():
            labels[extra] = 1 + _argmax_uint8(probs[1:TISSUE_CLASSES][:, extra])
    return labels


def _fold_into_tissue(probs: np.ndarray) -> None:
    """In place: the probability of the further outputs (a lesion) added to CSF, GM and
    WM in proportion to theirs (a lesion is brain tissue of a kind the network does not
    tell), so that ``probs[:4]`` are tissue probabilities summing to 1; the further
    channels are left as they are. Two volumes of temporaries at most."""
    extra = probs[TISSUE_CLASSES:].sum(axis=0)
    factor = probs[1:TISSUE_CLASSES].sum(axis=0)
    flat = factor <= 1e-6  # no tissue evidence at all: the further mass split evenly
    np.maximum(factor, 1e-6, out=factor)
    np.divide(extra, factor, out=factor)
    np.add(factor, 1.0, out=factor)  # each tissue class grows by 1 + extra / tissue
    for k in range(1, TISSUE_CLASSES):
        np.multiply(probs[k], factor, out=probs[k])
    if flat.any():
        np.divide(extra, 3.0, out=extra)
        for k in range(1, TISSUE_CLASSES):
            np.copyto(probs[k], extra, where=flat)


@dataclass
class Prediction:
    """Raw output of :meth:`Predictor.predict_array`."""

    probabilities: np.ndarray
    labels: np.ndarray
    seconds: float
    device: str
    batch_size: int
    precision: str  # "float32" or "bfloat16": the arithmetic of the forward passes
    compiled: bool = False  # the forward passes ran the torch.compile-d network
    #: A network with a lesion output: that output's probability as the network gave it
    #: (the tissue probabilities took it in), for the ``lesions`` step; else None.
    lesion_probability: np.ndarray | None = None


class Predictor:
    """Runs a 2.5-D segmentation network over a whole volume.

    Parameters
    ----------
    model : nn.Module
        A network of :data:`engine.models.MODELS`; the predictor runs a copy
        in eval mode with batch normalisation folded into the convolutions.
    context : int
        Neighbouring slices on each side given as channels
        (``in_channels = 2 * context + 1``).
    device : str or torch.device
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    batch_size : int
        Slices per forward pass (halved automatically on CUDA OOM).
    tta : bool
        Average with the left-right mirrored prediction.
    name : str
        For messages.
    precision : str
        ``"auto"`` (bfloat16 where the device computes it natively, see
        :func:`engine.core.device.fast_bfloat16`; float32 elsewhere), ``"float32"`` or
        ``"bfloat16"``.
        Resolved per call, so a volume that falls back to the CPU gets the
        CPU's arithmetic.
    """

    def __init__(self, model: nn.Module, *, context: int = 1, device: str | torch.device = "auto",
                 batch_size: int = 16, tta: bool = False, name: str = "cnn",
                 precision: str = "auto") -> None:
        self.model = fuse_batchnorm(model)
        self.context = int(context)
        self.device = resolve_device(device)
        self.batch_size = max(1, int(batch_size))
        self.tta = bool(tta)
        self.name = name
        resolve_precision(precision, self.device)  # refuse a bad name now
        self.precision = precision
        self.divisor = int(getattr(model, "divisor", 8))
        self._model_device: torch.device | None = None
        self._place_model(self.device)
        self._compiled: nn.Module | None = None
        self._compiled_on: torch.device | None = None
        self.compile_seconds: float | None = None

    @classmethod
    def from_name(cls, name_or_path: str | Path, **kwargs: Any) -> Predictor:
        """Predictor of a shipped model name (``unet``, ``delineo``) or weights file."""
        model, card = load_model(name_or_path)
        context = int(card.get("input", {}).get("context", 1))
        kwargs.setdefault("name", card.get("name", str(name_or_path)))
        pred = cls(model, context=context, **kwargs)
        pred.card = card
        return pred

    def _place_model(self, device: torch.device) -> None:
        if self._model_device != device:
            # channels-last: oneDNN's and cuDNN's fastest layout for 2-D convolutions
            self.model = _to_device(self.model, device).to(memory_format=torch.channels_last)
            self._model_device = device

    # -- compilation ---------------------------------------------------------------
    @property
    def compiled(self) -> bool:
        """Whether the forward passes run the ``torch.compile``-d network."""
        return self._compiled is not None

    def _compiled_for(self, device: torch.device) -> bool:
        """Whether forward passes on *device* run the compiled network (it was compiled
        for :attr:`device`; a CPU fallback after CUDA out of memory runs eager)."""
        return self._compiled is not None and device == self._compiled_on

    def compile(self, *, warm_up: bool = True) -> bool:
        """Run the network through ``torch.compile`` (inductor, dynamic shapes) from now on.

        The compilation happens here, on a random volume of a head's axial size
        (*warm_up*), not in the first real call: about 40 s for ``delineo`` on a 2-core CPU, a few
        seconds when inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``) already
        holds it; :attr:`compile_seconds` records it. Shapes are dynamic, so
        volumes of any size, partial batches and :meth:`predict_array`'s *slices*
        reuse the one compiled graph (a batch of one slice is run as two: size 1
        would compile a graph of its own), within one band of sizes: inductor's
        CPU kernels for a mean over a feature map change at 4096 values (a guard
        at half and at quarter resolution), so the warm-up takes the axial size of
        a whole head's crop at 1 mm (:data:`WARM_UP_SIZE`), and a volume whose
        crop is at most about 128 x 128 voxels (a partial field of view), or more
        than about 256 x 256, compiles a graph of its own, once for each band.
        Changing :attr:`precision` compiles again at the next call; a volume that
        falls back to the CPU after CUDA runs out of memory runs eager.

        Where compilation fails (no C++ compiler, a device inductor does not
        support), a warning is logged and the network stays eager: the results
        are the same either way, up to the rounding of fused arithmetic. Returns
        whether the network is compiled.
        """
        if self._compiled is not None:
            return True
        t0 = time.perf_counter()
        self._compiled = torch.compile(self.model, dynamic=True)
        self._compiled_on = self.device
        if warm_up:
            # The axial size of a 1 mm head's crop: inductor's kernels for the mean over a
            # feature map differ above and below 4096 values (guards at half and quarter
            # resolution), so the warm-up must fall where real volumes do. Two different
            # sizes (equal ones would share one symbol, and a later volume compile again).
            d = self.divisor
            sizes = (WARM_UP_SIZE[0] // d * d, WARM_UP_SIZE[1] // d * d)
            dummy = np.random.default_rng(0).random((*sizes, self.batch_size + 2),
                                                    dtype=np.float32)
            try:
                self.predict_array(dummy)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                self._compiled = None
                log.warning("%s: torch.compile failed, the network stays eager: %s",
                            self.name, " ".join(str(exc).split())[:300])
                return False
        self.compile_seconds = time.perf_counter() - t0
        return True

    # -- the network over slices ------------------------------------------------
    def _forward(self, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
        low = resolve_precision(self.precision, device) == torch.bfloat16
        compiled = self._compiled_for(device)
        net = self._compiled if compiled else self.model
        single = compiled and batch.shape[0] == 1
        if single:  # size 1 is specialised by the compiler: run it as a batch of two
            batch = batch.expand(2, *batch.shape[1:])
        batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
            logits = net(batch)
            if self.tta:
                logits_f = net(batch.flip(-2)).flip(-2)
        if single:
            logits = logits[:1]
            if self.tta:
                logits_f = logits_f[:1]
        probs = logits.float().softmax(dim=1)
        if self.tta:
            probs = 0.5 * (probs + logits_f.float().softmax(dim=1))
        return probs

    def _run_slices(self, vol: torch.Tensor, device: torch.device,
                    progress: Callable[[float, str], None] | None,
                    cancel: CancelToken | None,
                    only: torch.Tensor | None = None,
                    keep: int | None = None) -> tuple[torch.Tensor, int]:
        """Probabilities ``(K, X, Y, Z)`` of a normalised, padded volume, and the batch used.

        *only* (sorted slice indices) computes those axial slices alone; the
        others read as background (probability 1 of class 0). A slice's output
        depends on its own input window only, so the computed ones are those of
        the whole volume. *keep* (a class index) stores that class alone
        (``K`` = 1).

        Out of memory halves the batch for the rest of this call; at one
        slice per batch the error propagates (:meth:`predict_array` then
        retries on the CPU).
        """
        nx, ny, nz = vol.shape
        c = self.context
        background = keep is None or keep == 0  # class 0 is among those stored
        todo = torch.arange(nz) if only is None else only.to(torch.long)
        padded = F.pad(vol.permute(2, 0, 1)[None, None], (0, 0, 0, 0, c, c),
                       mode="replicate")[0, 0]  # (Z + 2c, X, Y)
        out = None
        start = 0
        batch = self.batch_size
        total = int(todo.numel())
        # the same activations batch after batch: keep freed ones for reuse (see there)
        with reusing_freed_memory():
            while start < total:
                check_cancel(cancel)
                stop = min(total, start + batch)
                idx = todo[start:stop].to(vol.device)
                window = idx[:, None] + torch.arange(2 * c + 1, device=vol.device)[None]
                x = padded[window]  # (b, 2c+1, X, Y)
                probs = None
                try:
                    with torch.inference_mode():
                        probs = _to_device(self._forward(_to_device(x, device), device),
                                           OUTPUT_DEVICE)
                except torch.cuda.OutOfMemoryError:
                    if batch == 1:
                        raise
                if probs is None:  # out of memory (outside the except block, which holds memory)
                    batch //= 2
                    log.warning("%s: out of memory on %s; batch size %d for this volume",
                                self.name, device, batch)
                    torch.cuda.empty_cache()
                    continue
                if keep is not None:
                    probs = probs[:, keep:keep + 1]
                if out is None:
                    maker = torch.empty if only is None else torch.zeros
                    out = maker((probs.shape[1], nz, nx, ny), dtype=torch.float32,
                                device=OUTPUT_DEVICE)
                    if only is not None and background:
                        out[0] = 1.0
                out[:, idx.to(OUTPUT_DEVICE)] = probs.permute(1, 0, 2, 3)
                start = stop
                report(progress, start / total, f"{self.name}: slice {start}/{total}")
        if out is None:  # no slice asked for: background everywhere
            out = torch.zeros((self._classes() if keep is None else 1, nz, nx, ny),
                              dtype=torch.float32)
            if background:
                out[0] = 1.0
        return out.permute(0, 2, 3, 1), batch

    def _classes(self) -> int:
        """Number of output classes of the network."""
        return int((getattr(self.model, "config", None) or {}).get("n_classes", 4))

    def predict_array(
        self,
        array: np.ndarray,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        *,
        mask: np.ndarray | None = None,
        slices: np.ndarray | None = None,
        progress: Callable[[float, str], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> Prediction:
        """Probabilities and labels of a canonical (RAS+) array with voxel *spacing*.

        *slices* (booleans along the array's last axis) asks for those axial
        slices only: the network runs on the slices of its own grid that they
        are interpolated from, with the intensity scale of the whole volume, so
        their probabilities are those of a whole-volume call; the other slices
        read as background (probability 1 of class 0).

        CUDA out of memory even at one slice per batch runs *this* volume on
        the CPU; the next call tries :attr:`device` again, with the full
        :attr:`batch_size` (a fallback changes neither).
        """
        t0 = time.perf_counter()
        slices = self._check_slices(array, slices)
        probs, batch, used = self._with_fallback(array, spacing, progress, cancel, slices)
        lesion = labels = None
        if probs.shape[0] > TISSUE_CLASSES:
            # A lesion output: kept as the network gave it (a view, never changed below);
            # the tissue probabilities take it in, so that they and the labels stay those
            # of a tissue segmentation.
            if mask is None:
                labels = _tissue_labels(probs)
            lesion = probs[-1]
            _fold_into_tissue(probs)
            probs = probs[:TISSUE_CLASSES]
        if mask is not None:
            # A brain mask says which voxels are tissue, as for the classical methods:
            # outside it is background, inside it the most likely of CSF/GM/WM.
            # In place, without fancy indexing: a whole head's probabilities are large.
            outside = ~np.asarray(mask, bool)
            sums = probs[1:].sum(axis=0)
            flat = sums <= 1e-6  # no tissue evidence at all: CSF, GM, WM equally likely
            np.maximum(sums, 1e-6, out=sums)
            for k in range(1, probs.shape[0]):
                np.divide(probs[k], sums, out=probs[k])
                np.copyto(probs[k], np.float32(1.0 / 3.0), where=flat)
                np.copyto(probs[k], np.float32(0.0), where=outside)
            np.copyto(probs[0], outside)
            del sums, flat
        if labels is None:
            labels = _argmax_uint8(probs)
        dtype = resolve_precision(self.precision, used)
        return Prediction(probs, labels, time.perf_counter() - t0, str(used), batch,
                          str(dtype).removeprefix("torch."),
                          self._compiled_for(used), lesion)

    def class_probability(
        self,
        array: np.ndarray,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        k: int = -1,
        *,
        slices: np.ndarray | None = None,
        progress: Callable[[float, str], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> np.ndarray:
        """The probability of output class *k* alone (default the last: a lesion
        network's lesion), float32 on the array's grid: what
        ``predict_array(array, spacing, slices=slices).probabilities[k]`` gives (up to
        float rounding where the input is resampled), holding one class instead of
        all of them -- the lesions step's way to run a network over a few slices."""
        keep = int(k) % self._classes()
        slices = self._check_slices(array, slices)
        probs, _batch, _used = self._with_fallback(array, spacing, progress, cancel, slices,
                                                   keep)
        return probs[0]

    @staticmethod
    def _check_slices(array: np.ndarray, slices: np.ndarray | None) -> np.ndarray | None:
        if slices is None:
            return None
        slices = np.asarray(slices, bool)
        if slices.shape != (np.shape(array)[2],):
            raise ParameterError(f"slices must have one entry per axial slice "
                                 f"({np.shape(array)[2]}), not shape {slices.shape}")
        return slices

    def _with_fallback(
        self,
        array: np.ndarray,
        spacing: tuple[float, float, float],
        progress: Callable[[float, str], None] | None,
        cancel: CancelToken | None,
        slices: np.ndarray | None,
        keep: int | None = None,
    ) -> tuple[np.ndarray, int, torch.device]:
        """:meth:`_probabilities` on :attr:`device`; CUDA out of memory even at one slice
        per batch runs this volume on the CPU. Returns the probabilities, the batch and the
        device used."""
        used: torch.device | None = self.device
        try:
            probs, batch = self._probabilities(array, spacing, self.device, progress, cancel,
                                               slices, keep)
        except torch.cuda.OutOfMemoryError:
            if self.device.type == "cpu":
                raise
            used = None  # retry outside the except block: its traceback holds device memory
        if used is None:
            torch.cuda.empty_cache()
            log.warning("%s: out of memory on %s; this volume runs on the CPU",
                        self.name, self.device)
            used = torch.device("cpu")
            probs, batch = self._probabilities(array, spacing, used, progress, cancel, slices,
                                               keep)
        return probs, batch, used

    def _probabilities(
        self,
        array: np.ndarray,
        spacing: tuple[float, float, float],
        device: torch.device,
        progress: Callable[[float, str], None] | None,
        cancel: CancelToken | None,
        slices: np.ndarray | None = None,
        keep: int | None = None,
    ) -> tuple[np.ndarray, int]:
        """``(K, *array.shape)`` probabilities, the forward passes on *device*, and the batch used.

        Everything but the batches stays on :data:`OUTPUT_DEVICE`. *keep* (a class
        index) keeps that class alone: ``(1, *array.shape)``.
        """
        self._place_model(device)
        shape = tuple(array.shape)
        x = torch.nan_to_num(torch.as_tensor(np.ascontiguousarray(array), dtype=torch.float32))
        sp = np.asarray(spacing, float)
        resampled = bool(np.any(np.abs(sp - NETWORK_SPACING_MM) > 0.05 * NETWORK_SPACING_MM))
        if resampled:
            size = tuple(max(1, round(n * s / NETWORK_SPACING_MM)) for n, s in zip(shape, sp,
                                                                                   strict=True))
            x = F.interpolate(x[None, None], size=size, mode="trilinear",
                              align_corners=False)[0, 0]
        box = _head_box(x, self.divisor)
        crop = x[box]
        nx, ny, _ = crop.shape
        d = self.divisor
        px, py = (-nx) % d, (-ny) % d
        crop = robust_normalise(crop)
        crop = F.pad(crop, (0, 0, py // 2, py - py // 2, px // 2, px - px // 2))
        only = None
        if slices is not None:
            need = _network_slices(slices, x.shape[2])
            z0, z1 = box[2].start, box[2].stop
            only = torch.as_tensor(np.flatnonzero(need[z0:z1]))
        probs_crop, batch = self._run_slices(crop, device, progress, cancel, only, keep)
        probs_crop = probs_crop[:, px // 2:px // 2 + nx, py // 2:py // 2 + ny]
        full = torch.zeros((probs_crop.shape[0], *x.shape), dtype=torch.float32)
        if keep in (None, 0):
            full[0] = 1.0  # outside the head's box: background
        full[(slice(None), *box)] = probs_crop
        if resampled:
            full = F.interpolate(full[None], size=shape, mode="trilinear",
                                 align_corners=False)[0]
            if keep is None:
                full = full / full.sum(dim=0, keepdim=True).clamp_min(1e-6)
        return full.numpy(), batch

    def predict(
        self,
        volume: Volume,
        *,
        mask: np.ndarray | None = None,
        progress: Callable[[float, str], None] | None = None,
        cancel: CancelToken | None = None,
    ) -> SegmentationResult:
        """Segment *volume* into background/CSF/GM/WM on its own grid.

        A network with a lesion output also gives, in ``info["network_lesion_probability"]``,
        that output's probability on the volume's grid as the network gave it, which a
        ``lesions`` step after it uses instead of running the network again."""
        if volume.array.ndim != 3 or min(volume.shape) < 1:
            raise ParameterError("the CNN needs a 3-D image")
        report(progress, 0.0, f"{self.name}: preparing")
        pred = self.predict_array(volume.array, volume.spacing, mask=mask, progress=progress,
                                  cancel=cancel)
        labels = LabelMap.on_grid_of(volume, pred.labels, labels=BRAIN_TISSUE_LABELS)
        labels.metadata["description"] = f"{self.name} tissue segmentation"
        report(progress, 1.0, f"{self.name}: done in {pred.seconds:.1f} s")
        info = {"model": self.name, "seconds": pred.seconds, "device": pred.device,
                "batch_size": pred.batch_size, "tta": self.tta,
                "precision": pred.precision, "compiled": pred.compiled}
        if pred.lesion_probability is not None:
            # Taken by a later ``lesions`` step that averages this network (it then does
            # not run it again): engine.methods.lesion_step.NETWORK_LESION_KEY.
            info["network_lesion_probability"] = pred.lesion_probability
        return SegmentationResult(labels=labels, probabilities=pred.probabilities, info=info)
