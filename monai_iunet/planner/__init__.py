"""Plan before training: predict the peak memory of a training step, and the widest IUNet that fits a budget.

:func:`estimate_memory` / :func:`explain_memory` run one training step symbolically on fake tensors and follow
the bytes alive after every operation (:mod:`~monai_iunet.planner.estimate`); :func:`fit_channels` searches the
widest IUNet within a budget (:mod:`~monai_iunet.planner.fit`). On the command line::

    monai-iunet plan estimate --shape 1 4 96 96 96 --channels 16 32 64 128
    monai-iunet plan fit --budget 8GiB --shape 1 4 160 192 128
"""

from __future__ import annotations

from monai_iunet.planner.conv_workspace import conv_workspace_bytes
from monai_iunet.planner.estimate import (
    CPU_RUNTIME_OVERHEAD,
    MemoryEstimate,
    estimate_memory,
    explain_memory,
    soft_dice_loss,
)
from monai_iunet.planner.fit import fit_channels
from monai_iunet.planner.units import GiB, MiB, parse_bytes

__all__ = [
    "CPU_RUNTIME_OVERHEAD",
    "GiB",
    "MemoryEstimate",
    "MiB",
    "conv_workspace_bytes",
    "estimate_memory",
    "explain_memory",
    "fit_channels",
    "parse_bytes",
    "soft_dice_loss",
]
