"""Whole-volume CNN inference speed, achieved GFLOPS against this machine's dense peak.

Run: ``python benchmarks/bench_inference.py [--device cpu|cuda] [--threads N] [--tta]
[--networks unet,delineo] [--compile] [--onnx]`` (``--networks`` also takes weights
files, ``runs/x/delineo.safetensors``, to time a network before it is shipped).

Times :meth:`engine.models.predictor.Predictor.predict_array` on the 197 x 233 x 189
demo T1 for each shipped network (``resources/models``), or an untrained network of
the same architecture if the weights are missing: crop to the head, robust
normalisation, 2.5-D slices in batches, soft-max, full-size probabilities and the
arg-max label map -- everything ``segment`` does except reading and writing files.
Goals: <= 5 s on 2 CPU cores, <= 0.5 s on CUDA.

In the same run, for the issue's accounting of compute efficiency:

* the convolution FLOPs of one whole-volume call (``torch.utils.flop_counter``);
* the machine's dense peak: a 4096 x 4096 matrix product in float32 and in
  bfloat16, with the same threads (median of 5);
* three ways of running each network (five with both options below),
  interleaved so that the machine's drift
  falls on all of them alike (median of ``--repeats`` after one warm-up call):
  the reference -- float32 in PyTorch's default (contiguous) memory layout, the
  predictor before channels-last --, then the predictor at ``precision=float32``
  and ``bfloat16``, both channels-last (the line before them says which of the
  two its default, ``auto``, picks on this device); with ``--compile`` also
  the network compiled by :meth:`~engine.models.predictor.Predictor.compile`
  (``torch.compile``, dynamic shapes, what ``batch --compile`` runs) at the
  default precision (its compilation time is printed apart; it depends on
  inductor's on-disk cache, ``TORCHINDUCTOR_CACHE_DIR``); with ``--onnx`` also
  ONNX Runtime (CPU, float32) on the network exported to ONNX (needs
  ``onnxruntime`` and ``onnx``, which Delineo does not depend on).

Achieved GFLOPS = FLOPs / median time; each line also gives the ratio to the
reference and the fractions of the float32 and bfloat16 peaks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine, median

from engine.core.device import resolve_device, resolve_precision
from engine.models import build_model, count_parameters
from engine.models.predictor import Predictor
from engine.models.weights import models_dir


def _image() -> np.ndarray:
    try:
        from engine.data.mni import load_demo

        return load_demo()[0].array.astype(np.float32)
    except Exception:  # no template: a same-size synthetic head
        grid = np.indices((197, 233, 189)).astype(np.float32)
        r = np.sqrt(((grid[0] - 98) / 70) ** 2 + ((grid[1] - 116) / 90) ** 2
                    + ((grid[2] - 80) / 75) ** 2)
        return np.where(r < 1, 200 - 80 * r, 0).astype(np.float32)


class ContiguousFloat32(Predictor):
    """The reference: the predictor's forward pass in float32 and PyTorch's default
    (contiguous) memory layout, as it ran before channels-last and bfloat16."""

    def _place_model(self, device: torch.device) -> None:
        if self._model_device != device:
            self.model = self.model.to(device).to(memory_format=torch.contiguous_format)
            self._model_device = device

    def _forward(self, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
        logits = self.model(batch.contiguous())
        probs = logits.float().softmax(dim=1)
        if self.tta:
            flipped = self.model(batch.flip(-2).contiguous()).flip(-2)
            probs = 0.5 * (probs + flipped.float().softmax(dim=1))
        return probs


class OnnxRuntimeFloat32(Predictor):
    """The predictor with its forward passes run by ONNX Runtime (CPU, float32) on the
    network (batch normalisation folded, as the predictor runs it) exported to ONNX."""

    def export(self, folder: Path, threads: int) -> None:
        import onnxruntime

        path = folder / f"{self.name}.onnx"
        model = self.model.to(memory_format=torch.contiguous_format).eval()
        example = torch.zeros(2, 2 * self.context + 1, 64, 64)
        axes = {0: "slices", 2: "x", 3: "y"}
        torch.onnx.export(model, (example,), str(path), input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": axes, "logits": axes},
                          dynamo=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])

    def _run(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.session.run(None, {"x": batch.contiguous().numpy()})[0]
        return torch.from_numpy(logits).softmax(dim=1)

    def _forward(self, batch: torch.Tensor, device: torch.device) -> torch.Tensor:
        probs = self._run(batch)
        if self.tta:
            probs = 0.5 * (probs + self._run(batch.flip(-2)).flip(-2))
        return probs


def dense_peak_gflops(dtype: torch.dtype, device: torch.device, n: int = 4096) -> float:
    """GFLOPS of an n x n matrix product (2 n^3 FLOPs), median of 5 after a warm-up."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    times = []
    for i in range(6):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / median(times) / 1e9


def conv_flops(pred: Predictor, image: np.ndarray) -> float:
    """Convolution FLOPs of one whole-volume call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        pred.predict_array(image)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--networks", default="unet,delineo",
                        help="comma-separated shipped networks or weights files (.safetensors) "
                        "to time (default unet,delineo)")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile of the network (compiles for minutes)")
    parser.add_argument("--onnx", action="store_true",
                        help="also time ONNX Runtime on the exported network (CPU only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = _image()
    print(f"# {machine()}; image {image.shape}", flush=True)
    device = resolve_device(args.device)
    peak32 = dense_peak_gflops(torch.float32, device)
    peak16 = dense_peak_gflops(torch.bfloat16, device)
    emit("dense peak float32 (4096^2 matmul)", peak32, "GFLOPS")
    emit("dense peak bfloat16 (4096^2 matmul)", peak16, "GFLOPS",
         ratio=peak16 / peak32, reference="float32 peak")
    goal = "<= 0.5 s" if device.type == "cuda" else "<= 5 s on 2 cores"
    print(f"# precision 'auto' is {resolve_precision('auto', device)} on {device}", flush=True)
    for name in [n for n in args.networks.split(",") if n]:
        # a shipped network's name, or a weights file (e.g. a run of `train` to compare)
        custom = name.endswith(".safetensors")
        path = Path(name) if custom else models_dir() / f"{name}.safetensors"
        source = str(path) if custom else name
        if custom and not path.is_file():
            raise SystemExit(f"no weights file {path}")
        kwargs = {"device": args.device, "batch_size": args.batch_size, "tta": args.tta}
        if path.is_file():
            variants = {"reference float32 contiguous":
                        ContiguousFloat32.from_name(source, **kwargs)}
            for precision in ("float32", "bfloat16"):
                variants[f"channels-last {precision}"] = Predictor.from_name(
                    source, precision=precision, **kwargs)
            tag = "weights file" if custom else "shipped"
        else:
            net = build_model(name)
            variants = {"reference float32 contiguous": ContiguousFloat32(net, name=name,
                                                                          **kwargs)}
            for precision in ("float32", "bfloat16"):
                variants[f"channels-last {precision}"] = Predictor(
                    net, name=name, precision=precision, **kwargs)
            tag = "untrained"
        if args.compile:
            compiled = Predictor.from_name(source, **kwargs) if path.is_file() else Predictor(
                build_model(name), name=name, **kwargs)
            compiled.compile()  # as batch --compile does: dynamic shapes, on a small volume
            t0 = time.perf_counter()
            compiled.predict_array(image)
            emit(f"{name}: torch.compile, compilation (Predictor.compile)",
                 compiled.compile_seconds, "s")
            emit(f"{name}: torch.compile, first whole-volume call after it",
                 time.perf_counter() - t0, "s")
            variants["torch.compile auto"] = compiled
        if args.onnx:
            import tempfile

            onnx = OnnxRuntimeFloat32.from_name(source, **kwargs) if path.is_file() else \
                OnnxRuntimeFloat32(build_model(name), name=name, **kwargs)
            with tempfile.TemporaryDirectory() as folder:
                onnx.export(Path(folder), torch.get_num_threads())
            variants["ONNX Runtime float32"] = onnx
        flops = conv_flops(variants["channels-last float32"], image)
        params = count_parameters(variants["channels-last float32"].model)
        print(f"# {name} ({tag}, {params / 1e6:.2f} M params): {flops / 1e9:.1f} GFLOP of "
              "convolutions per volume", flush=True)
        for pred in variants.values():  # warm-up: oneDNN builds its kernels
            pred.predict_array(image)
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):
            for key, pred in variants.items():
                t0 = time.perf_counter()
                pred.predict_array(image)
                times[key].append(time.perf_counter() - t0)
        ref = median(times["reference float32 contiguous"])
        for key, values in times.items():
            t = median(values)
            gflops = flops / t / 1e9
            emit(f"{name} whole volume on {device}{' +TTA' if args.tta else ''}, {key}", t, "s",
                 ratio=ref / t, reference="reference (speed-up)", goal=goal)
            print(f"    {gflops:.0f} GFLOPS achieved = {gflops / peak32:.0%} of the float32 "
                  f"peak, {gflops / peak16:.0%} of the bfloat16 peak; runs "
                  + ", ".join(f"{v:.2f}" for v in values), flush=True)


if __name__ == "__main__":
    main()
