"""Wall-clock timing and peak memory of one call.

Memory is measured in a separate call from timing, because tracing allocations
slows the traced code. The peak is the largest of three lower bounds:

* Python and numpy allocations traced by `tracemalloc`,
* growth of the resident set size, sampled every millisecond (catches torch CPU tensors,
  which tracemalloc does not see; Linux only),
* ``torch.cuda.max_memory_allocated`` when CUDA is in use.
"""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any, TypeVar

Result = TypeVar("Result")

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def timed(function: Callable[[], Result], synchronize: Callable[[], None] | None = None) -> tuple[Result, float]:
    """Call ``function`` once; return its result and the wall-clock seconds it took.

    ``synchronize`` runs before the clock stops (for example ``torch.cuda.synchronize``).
    """
    start = time.perf_counter()
    result = function()
    if synchronize is not None:
        synchronize()
    return result, time.perf_counter() - start


def peak_memory(function: Callable[[], Any]) -> int:
    """Call ``function`` once and return its peak extra memory in bytes (see the module docstring)."""
    cuda = _cuda_module()
    if cuda is not None:
        cuda.synchronize()
        cuda.reset_peak_memory_stats()
        cuda_start = cuda.memory_allocated()

    sampler = _ResidentSetSampler()
    already_tracing = tracemalloc.is_tracing()
    if not already_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    traced_start, _ = tracemalloc.get_traced_memory()
    sampler.start()
    try:
        function()
    finally:
        sampler.stop()
        _, traced_peak = tracemalloc.get_traced_memory()
        if not already_tracing:
            tracemalloc.stop()

    peak = max(traced_peak - traced_start, sampler.growth)
    if cuda is not None:
        cuda.synchronize()
        peak = max(peak, cuda.max_memory_allocated() - cuda_start)
    return int(peak)


def _cuda_module():
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda if torch.cuda.is_available() and torch.cuda.is_initialized() else None


class _ResidentSetSampler:
    """Polls the resident set size in a background thread and keeps the largest growth."""

    def __init__(self, interval: float = 0.001):
        self.interval = interval
        self.growth = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = _resident_bytes()

    def start(self) -> None:
        if self._baseline is None:
            return
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        current = _resident_bytes()
        if current is not None and self._baseline is not None:
            self.growth = max(self.growth, current - self._baseline)


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None
