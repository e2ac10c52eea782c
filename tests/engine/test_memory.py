"""engine.core.memory: the peak meter and the C allocator's handling of freed memory.

Page faults, not times, are what these count: the kernel's own tally of the pages it
had to hand the process afresh (``ru_minflt``), which the machine's load does not move.
"""

from __future__ import annotations

import json
import mmap
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.core import memory
from engine.core.memory import PeakMemory, release_free_memory, reusing_freed_memory

glibc = pytest.mark.skipif(memory._glibc() is None, reason="glibc's allocator only")

_LOOP = """
import json, resource, sys, threading
import torch
from engine.core import memory
from engine.core.memory import reusing_freed_memory

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(4, 32, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.Conv2d(32, 4, 3, padding=1)).eval()
x = torch.randn(4, 4, 256, 256)  # each layer's output 32 MiB or more: above glibc's
                                 # largest dynamic mmap threshold


def faults():
    # minor page faults of three more batches, after a first one
    with torch.inference_mode():
        net(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            net(x)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def run(out):
    out["outside"] = faults()
    with reusing_freed_memory() as active:
        out["active"] = active
        out["inside"] = faults()
        with reusing_freed_memory():  # nested: the outer block's setting stays
            out["nested"] = faults()
    out["depth"] = memory._reusing
    out["after"] = faults()


main, worker = {}, {}
run(main)
thread = threading.Thread(target=run, args=(worker,))
thread.start()
thread.join()
print(json.dumps({"main": main, "worker": worker}))
"""


@glibc
def test_a_network_run_batch_after_batch_reuses_its_freed_activations() -> None:
    """In the main thread (the command line, a batch worker) the batches after the first
    fault in at most a fifth of the fresh pages (mostly none); a worker thread's
    allocator arena cannot hold blocks that large, so there only part of them are
    reused; after the block, fresh pages again. Run in a process of its own, whose main
    thread is the main thread."""
    done = subprocess.run([sys.executable, "-c", _LOOP], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    main, worker = figures["main"], figures["worker"]
    fresh = 3 * 4 * 32 * 256 * 256 * 4 // (2 << 20)  # three batches' first layer, 2 MiB pages
    assert main["active"] and main["outside"] >= fresh and main["after"] >= fresh
    # measured: 0, 4.1k or (now and then: a 16 MiB block faulted in again per batch)
    # 12.3k faults inside against 103k outside
    assert main["inside"] <= main["outside"] // 5
    assert main["nested"] <= main["outside"] // 5
    assert main["depth"] == 0 and worker["depth"] == 0
    assert worker["inside"] < 0.8 * worker["outside"]


def test_without_glibc_the_block_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    with reusing_freed_memory() as active:
        assert not active
    assert not release_free_memory()


def test_peak_memory_sees_a_block_allocated_and_freed_inside() -> None:
    size = 96 << 20
    with PeakMemory(interval_s=0.001) as peak:
        # fresh pages from the kernel: the allocator may hold enough freed memory, left
        # by earlier tests in this process, to serve a block without any new page
        block = mmap.mmap(-1, size)
        np.frombuffer(block, np.uint8)[:] = 1
        # held for many sampling intervals, with the interpreter free for the sampler:
        # the peak of a block that lives shorter than one interval can be missed
        time.sleep(0.05)
        block.close()
    assert peak.increase_bytes >= 0.9 * size
