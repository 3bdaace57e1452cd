"""Peak memory or step time of training steps, for one or more models (the measurements of ``03_memory.ipynb``).

Builds each benchmark model (:mod:`benchmarks._models`) at each ``[width, blocks, size]`` of the plan, runs one
warm-up training step (forward, ``DiceLoss``, backward, Adam step; batch 1, 4 → 3 channels, a cube of ``size``
voxels) and then measures with :mod:`benchmarks._measure`: ``memory`` is the peak RSS growth over the next step
(the Adam state already exists, so it is the activations, gradients and workspace), ``time`` the median of two
further steps, with one thread. Before each memory measurement the freed heap is handed back to the system
(``malloc_trim``), so that the configurations of one model can share a process. A configuration that fails gets an
``error`` entry instead. Prints one JSON list as its last line. Run it through :func:`benchmarks.run_child`, which
starts a fresh process and sets ``MALLOC_MMAP_THRESHOLD_`` for memory.

Usage::

    python -m benchmarks.memory_sweep memory '{"iunet": [[8, 2, 32], [8, 2, 48]], "unet": [[8, 2, 32]]}'
"""

from __future__ import annotations

import ctypes
import gc
import json
import sys

import torch
from monai.losses import DiceLoss

from ._measure import measure_peak, measure_time
from ._models import IN_CHANNELS, OUT_CHANNELS, build_model

__all__ = ["sweep"]


def _trim() -> None:
    """Return free heap memory to the system (glibc ``malloc_trim``), so that RSS is the live memory."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def sweep(what: str, plan: dict[str, list[list[int]]], threads: int = 1) -> list[dict]:
    """Measure ``what`` (``"memory"`` or ``"time"``) for each model of ``plan`` at its ``[width, blocks, size]``s."""
    torch.set_num_threads(threads)
    results = []
    for model, configs in plan.items():
        for width, blocks, size in configs:
            torch.manual_seed(0)
            net = build_model(model, width, blocks)
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
            loss_function = DiceLoss(sigmoid=True)
            x = torch.randn(1, IN_CHANNELS, size, size, size)
            target = (torch.rand(1, OUT_CHANNELS, size, size, size) > 0.5).float()

            def step(net=net, optimizer=optimizer, loss_function=loss_function, x=x, target=target) -> None:
                optimizer.zero_grad(set_to_none=True)
                loss_function(net(x), target).backward()
                optimizer.step()

            entry = dict(model=model, width=width, blocks=blocks, size=size)
            entry["params"] = sum(p.numel() for p in net.parameters())
            try:
                if what == "memory":
                    step()  # warm-up: one-off allocations and the Adam state
                    optimizer.zero_grad(set_to_none=True)  # the measured step allocates the gradients anew
                    gc.collect()
                    _trim()  # hand freed heap memory back, so the step cannot reuse it unseen
                    entry["peak_bytes"] = measure_peak(step)
                else:
                    entry["step_s"] = measure_time(step, steps=2, warmup=1)
            except (RuntimeError, ValueError) as e:  # e.g. a size too small for the model's downsampling
                entry["error"] = f"{type(e).__name__}: {e}"
            results.append(entry)
            del net, optimizer, step, x, target
            gc.collect()
    return results


if __name__ == "__main__":
    what, plan = sys.argv[1:]
    print(json.dumps(sweep(what, json.loads(plan))))
