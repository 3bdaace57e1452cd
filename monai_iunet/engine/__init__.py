"""Memory-efficient backpropagation through compositions of invertible modules (it knows only forward/inverse)."""

from __future__ import annotations

from monai_iunet.engine.backprop import (
    MemoryEfficientFunction,
    accumulate_grads,
    memory_efficient_apply,
    reconstruct,
    trainable_parameters,
)
from monai_iunet.engine.guard import ReconstructionGuard
from monai_iunet.engine.invertible import Invertible, InvertibleSequence, NoInverseError, check_invertible
from monai_iunet.engine.recompute import RngRecord, RunningStats, hooks_observe

__all__ = [
    "Invertible",
    "InvertibleSequence",
    "MemoryEfficientFunction",
    "NoInverseError",
    "ReconstructionGuard",
    "RngRecord",
    "RunningStats",
    "accumulate_grads",
    "check_invertible",
    "hooks_observe",
    "memory_efficient_apply",
    "reconstruct",
    "trainable_parameters",
]
