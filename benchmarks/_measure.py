"""Measurement helpers shared by the benchmarks: peak memory of one step, step time, fresh child processes.

Memory on CPU is the growth of peak RSS over the measured call, read from ``/proc/self/status`` after resetting
the high-water mark through ``/proc/self/clear_refs``. Run it with ``MALLOC_MMAP_THRESHOLD_=65536`` in the
environment (:func:`run_child` with ``what="memory"`` does so): glibc then serves large tensors with ``mmap`` and
returns them on free, so RSS follows live memory instead of its free lists. Time is measured in a process
without that setting, because ``mmap`` for every large tensor makes steps slower. On GPU memory is
``torch.cuda.max_memory_allocated`` above what was allocated before the call.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "MALLOC_ENV",
    "measure_peak",
    "measure_time",
    "rss_bytes",
    "run_child",
    "set_mmap_threshold",
]

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
ROOT = Path(__file__).resolve().parents[1]


def rss_bytes(field: str = "VmRSS") -> int:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def set_mmap_threshold(nbytes: int) -> bool:
    """Set glibc's mmap threshold in this process (``mallopt(M_MMAP_THRESHOLD, nbytes)``); False if impossible.

    ``set_mmap_threshold(65536)`` is what ``MALLOC_MMAP_THRESHOLD_=65536`` does at startup; 32 MiB is the ceiling
    glibc's own dynamic threshold grows to, which approximates the default behaviour for timing.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, int(nbytes)))  # M_MMAP_THRESHOLD = -3
    except (OSError, AttributeError):
        return False


def measure_peak(fn: Callable[[], object], device: str = "cpu") -> int:
    """Peak memory growth in bytes while ``fn()`` runs.

    Args:
        fn: the call to measure, e.g. one training step.
        device: ``"cpu"`` (peak RSS growth) or a CUDA device (``torch.cuda.max_memory_allocated`` growth).
    """
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    before = rss_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM to the current RSS
        f.write("5")
    fn()
    return rss_bytes("VmHWM") - before


def measure_time(fn: Callable[[], object], steps: int = 3, warmup: int = 1, device: str = "cpu") -> float:
    """Median wall time in seconds of ``steps`` calls of ``fn()`` after ``warmup`` calls."""
    cuda = str(device).startswith("cuda")
    if cuda:
        import torch
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run_child(module: str, args: Sequence[str], what: str = "memory", timeout: float | None = None) -> dict:
    """Run ``python -m module *args`` in a fresh process and parse the JSON object on its last stdout line.

    The child finds the ``benchmarks`` package from any working directory (the repository root is put first on its
    ``PYTHONPATH``).

    Args:
        module: the benchmark module (e.g. ``"benchmarks.compare"``), which must print one JSON object as its last
            line.
        args: command-line arguments for it.
        what: ``"memory"`` sets ``MALLOC_MMAP_THRESHOLD_=65536``; anything else removes it (a child that
            measures both sets the threshold itself, see :func:`set_mmap_threshold`).
        timeout: seconds before the child is killed.

    Returns:
        the parsed object, or ``{"error": ...}`` with the child's last stderr line (or ``"timeout"``).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if what == "memory":
        env.update(MALLOC_ENV)
    else:
        for key in MALLOC_ENV:
            env.pop(key, None)
    try:
        out = subprocess.run(
            [sys.executable, "-m", module, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit code {out.returncode}"}
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": "no result printed"}
