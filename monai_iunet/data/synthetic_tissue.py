"""What the synthetic BraTS generators share: the tissues' contrasts per modality, and smooth random fields.

Both the ellipsoid brains of :mod:`~monai_iunet.data.synthetic_brats` and the MNI152 anatomy of
:mod:`~monai_iunet.data.synthetic_anatomy` draw their intensities and their smooth deformations from here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from monai_iunet.brats import TumourPart

__all__ = ["TISSUE_INTENSITIES", "smooth_field"]

TISSUE_INTENSITIES: dict[str, tuple[float, float, float, float]] = {
    # tissue:         FLAIR  T1    T1ce  T2
    "csf": (0.15, 0.25, 0.25, 1.00),
    "grey_matter": (0.55, 0.55, 0.55, 0.62),
    "white_matter": (0.45, 0.80, 0.80, 0.40),
    TumourPart.EDEMA: (0.95, 0.45, 0.47, 0.88),
    TumourPart.ENHANCING: (0.75, 0.50, 1.35, 0.70),
    TumourPart.NECROSIS: (0.60, 0.28, 0.20, 0.98),
}
"""Mean intensity of each tissue per modality (in :data:`~monai_iunet.brats.MODALITY_ORDER`), before bias field,
noise and scaling."""


def smooth_field(shape: Sequence[int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """A smooth random field of unit standard deviation: Gaussian noise on a coarse grid, upsampled trilinearly.

    Args:
        shape: spatial shape of the field.
        rng: random generator.
        cells: number of grid cells along each axis of the coarse grid (larger gives finer structure).
    """
    coarse = torch.from_numpy(rng.standard_normal((1, 1, *(cells + 1 for _ in shape))).astype(np.float32))
    field = torch.nn.functional.interpolate(coarse, size=tuple(shape), mode="trilinear", align_corners=True)[0, 0]
    field = field.numpy()
    return (field - field.mean()) / (field.std() + 1e-8)
