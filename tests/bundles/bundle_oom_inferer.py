"""A test helper for the bundle scans tests: an inferer that runs out of memory on volumes above a size."""

from __future__ import annotations

import math

import torch
from monai.inferers import Inferer


class OutOfMemoryAbove(Inferer):
    """Raise ``torch.OutOfMemoryError`` for inputs of more than ``max_voxels`` voxels, else run ``inferer``."""

    def __init__(self, inferer: Inferer, max_voxels: int) -> None:
        self.inferer = inferer
        self.max_voxels = max_voxels

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs):
        if math.prod(inputs.shape[2:]) > self.max_voxels:
            raise torch.OutOfMemoryError(f"injected: cannot allocate {math.prod(inputs.shape) * 4} bytes")
        return self.inferer(inputs, network, *args, **kwargs)
