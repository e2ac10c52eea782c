"""Volume loading: Delineo's validated readers against the raw libraries.

Run: ``python benchmarks/bench_io.py``. Prints the time to load the 1 mm demo
T1 (NIfTI, gzip) through ``engine.io.load`` and through plain nibabel, and a
DICOM series of the same size written with pydicom through
``engine.io.load`` and through plain pydicom (read + sort + stack).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "engine"))

from common import emit, machine, median, timeit

from engine.data.mni import ensure_template
from engine.io import load


def bench_nifti() -> None:
    path = ensure_template()["t1"]
    ours = median(timeit(lambda: load(path), repeats=5))
    ref = median(timeit(lambda: np.asanyarray(nib.load(path).dataobj), repeats=5))
    emit("load demo T1 NIfTI (197x233x189, gz)", ours * 1000, "ms", ratio=ours / ref,
         reference=f"nibabel alone {ref * 1000:.1f} ms")


def bench_dicom() -> None:
    import pydicom
    from dicom_factory import write_series  # tests/engine/dicom_factory.py

    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 2000, size=(256, 256, 120)).astype(np.int16)
    affine = np.diag([-0.8, -0.8, 1.5, 1.0])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_series(folder, volume, affine)

        def raw() -> np.ndarray:
            files = [pydicom.dcmread(p) for p in folder.rglob("*") if p.is_file()]
            files.sort(key=lambda d: float(d.ImagePositionPatient[2]))
            return np.stack([d.pixel_array for d in files], axis=-1)

        ours = median(timeit(lambda: load(folder), repeats=3))
        ref = median(timeit(raw, repeats=3))
        emit("load DICOM series (256x256x120 CT, 120 files)", ours * 1000, "ms",
             ratio=ours / ref, reference=f"bare pydicom read+sort+stack {ref * 1000:.0f} ms")


if __name__ == "__main__":
    print(f"# volume loading — {machine()}")
    bench_nifti()
    bench_dicom()
