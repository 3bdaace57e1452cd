"""monai-iunet: fully invertible U-Nets (iUNets) for MONAI, trained with memory-efficient backpropagation.

The names below are imported when first used (PEP 562), so that ``import monai_iunet`` (and with it the
``monai-iunet`` command, which prints what it is doing before it loads PyTorch and MONAI) starts at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "monai_iunet.engine": ("InvertibleSequence", "ReconstructionGuard", "memory_efficient_apply"),
    "monai_iunet.networks.blocks": (
        "AdditiveCoupling",
        "InvertibleChannelMixing",
        "InvertibleDownsampling",
        "InvertibleUpsampling",
        "orthogonal_matrix",
    ),
    "monai_iunet.networks.nets": ("InvertibleSkip", "InvertibleUNet", "IUNet", "IUnet", "Iunet", "iunet"),
    "monai_iunet.planner": ("estimate_memory", "fit_channels"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "AdditiveCoupling",
    "IUNet",
    "IUnet",
    "Iunet",
    "InvertibleChannelMixing",
    "InvertibleDownsampling",
    "InvertibleSequence",
    "InvertibleSkip",
    "InvertibleUNet",
    "InvertibleUpsampling",
    "ReconstructionGuard",
    "estimate_memory",
    "fit_channels",
    "iunet",
    "memory_efficient_apply",
    "orthogonal_matrix",
]

if TYPE_CHECKING:
    from monai_iunet.engine import InvertibleSequence, ReconstructionGuard, memory_efficient_apply
    from monai_iunet.networks.blocks import (
        AdditiveCoupling,
        InvertibleChannelMixing,
        InvertibleDownsampling,
        InvertibleUpsampling,
        orthogonal_matrix,
    )
    from monai_iunet.networks.nets import InvertibleSkip, InvertibleUNet, IUNet, IUnet, Iunet, iunet
    from monai_iunet.planner import estimate_memory, fit_channels


def __getattr__(name: str) -> Any:
    """Import an exported name, or a subpackage (``monai_iunet.engine``), on first use."""
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
