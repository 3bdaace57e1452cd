"""Memory-efficient backpropagation through compositions of invertible modules (it knows only forward/inverse)."""

from __future__ import annotations

from monai_iunet.engine.backprop import (
    MemoryEfficientFunction,
    accumulate_grads,
    memory_efficient_apply,
    reconstruct,
    trainable_parameters,
)
from monai_iunet.engine.compiled import CompiledForward, compile_inner, compiled_modules, uncompile_inner
from monai_iunet.engine.guard import ReconstructionGuard
from monai_iunet.engine.invertible import InvertibleSequence, NoInverseError, check_invertible
from monai_iunet.engine.opaque import opaque_to_compile
from monai_iunet.engine.protocol import Invertible
from monai_iunet.engine.recompute import (
    RngRecord,
    RunningStats,
    call_with_tensors,
    hooks_observe,
    module_tensors,
    recomputing,
)

__all__ = [
    "CompiledForward",
    "Invertible",
    "InvertibleSequence",
    "MemoryEfficientFunction",
    "NoInverseError",
    "ReconstructionGuard",
    "RngRecord",
    "RunningStats",
    "accumulate_grads",
    "call_with_tensors",
    "check_invertible",
    "compile_inner",
    "compiled_modules",
    "hooks_observe",
    "memory_efficient_apply",
    "module_tensors",
    "opaque_to_compile",
    "reconstruct",
    "recomputing",
    "trainable_parameters",
    "uncompile_inner",
]
