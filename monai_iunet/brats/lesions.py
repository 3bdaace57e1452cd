"""Lesion-wise Dice, lesion-wise HD95 and lesion detection counts, as the BraTS 2023 rules define them.

Implemented from the published rules of the BraTS 2023 challenges (not from any scorer's code):

1. Lesions are the connected components of a region's mask (26-connectivity in 3D, ``scipy.ndimage.label``), in the
   reference and in the prediction.
2. Reference lesions smaller than the region's minimum size (:attr:`LesionRule.min_size` voxels) are ignored, and
   so are predicted components of that size that match no reference lesion: neither is counted.
3. Each reference lesion is dilated (:attr:`LesionRule.dilation` iterations of the 3×3×3 structuring element); the
   predicted components that intersect the dilated lesion are merged into that lesion's prediction. A reference
   lesion with a prediction is a true positive (TP), one without a false negative (FN); a predicted component that
   intersects no dilated reference lesion is a false positive (FP).
4. Each TP lesion gets the Dice and the HD95 of the lesion and its merged prediction; FN and FP lesions get Dice 0
   and HD95 :data:`LESION_HD95_PENALTY_MM` (374 mm, about the diagonal of the 240 × 240 × 155 mm BraTS field of
   view). The lesion-wise Dice (HD95) is the sum over lesions divided by ``TP + FN + FP``.
5. A region with no lesion in either (``TP + FN + FP = 0``) scores lesion-wise Dice 1 and HD95 0.

The Dice and HD95 of one lesion are those of :mod:`monai_iunet.brats.evaluation` (MONAI's metrics, HD95 in mm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from monai_iunet.brats.labels import REGION_ORDER, Region

__all__ = ["BRATS2023_LESION_RULES", "LESION_HD95_PENALTY_MM", "LesionRule", "lesion_metrics", "lesion_rules"]

LESION_HD95_PENALTY_MM = 374.0
"""HD95 of a missed (FN) or spurious (FP) lesion, in mm (BraTS 2023 rules)."""


@dataclass(frozen=True)
class LesionRule:
    """How one region's lesions are found and matched.

    Args:
        dilation: iterations of the 3×3×3 dilation of each reference lesion before matching.
        min_size: lesions (connected components) with fewer voxels are ignored.
    """

    dilation: int = 3
    min_size: int = 50


BRATS2023_LESION_RULES: dict[Region, LesionRule] = {r: LesionRule(dilation=3, min_size=50) for r in REGION_ORDER}
"""The BraTS 2023 adult glioma rules: dilation 3 voxels, minimum lesion size 50 voxels, for TC, WT and ET."""


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The component label image of ``mask`` and the voxel count of each component (index 0: background)."""
    labels, n = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, mask.ndim))
    return labels, np.bincount(labels.ravel(), minlength=n + 1)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``margin`` voxels (clipped to the image)."""
    coords = np.nonzero(mask)
    return tuple(slice(max(int(c.min()) - margin, 0), int(c.max()) + margin + 1) for c in coords)


def _match(
    ref_lesion: np.ndarray, pred_labels: np.ndarray, dilation: int
) -> tuple[tuple[slice, ...], np.ndarray, list[int]]:
    """The box around a reference lesion's dilation and the predicted components inside the dilated lesion."""
    box = _box(ref_lesion, dilation + 1)
    local = ref_lesion[box]
    dilated = (
        ndimage.binary_dilation(
            local, structure=ndimage.generate_binary_structure(local.ndim, local.ndim), iterations=dilation
        )
        if dilation
        else local
    )
    hits = np.unique(pred_labels[box][dilated])
    return box, local, [int(h) for h in hits if h]


def lesion_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None = None,
    rule: LesionRule | None = None,
) -> dict[str, float]:
    """Lesion-wise Dice and HD95 and the lesion counts of one region of one case (see the module docstring).

    Args:
        pred: the predicted mask of the region, shape ``(D, H, W)``, bool.
        ref: the reference mask of the region, same shape.
        spacing: voxel size in mm per axis (default 1 mm).
        rule: dilation and minimum size (default: :data:`BRATS2023_LESION_RULES`' rule, the same for each region).

    Returns:
        ``lesionwise_dice``, ``lesionwise_hd95`` (mm), ``lesion_tp``, ``lesion_fp``, ``lesion_fn``.
    """
    from monai_iunet.brats.evaluation import dice_and_hd95  # the one definition of a mask pair's Dice and HD95

    rule = rule or LesionRule()
    ref_labels, ref_sizes = _components(np.asarray(ref, bool))
    pred_labels, pred_sizes = _components(np.asarray(pred, bool))
    matched: set[int] = set()
    scores: list[tuple[float, float]] = []
    fn = 0
    for index in range(1, len(ref_sizes)):
        if ref_sizes[index] < rule.min_size:
            continue
        box, local, hits = _match(ref_labels == index, pred_labels, rule.dilation)
        if not hits:
            fn += 1
            continue
        matched.update(hits)
        # the merged prediction may reach outside the box: score on the box around lesion and prediction
        merged = np.isin(pred_labels, hits)
        box = _box(merged | (ref_labels == index), 1)
        scores.append(dice_and_hd95(merged[box], (ref_labels == index)[box], spacing))
    fp = sum(1 for i in range(1, len(pred_sizes)) if i not in matched and pred_sizes[i] >= rule.min_size)
    return _aggregate(scores, fn, fp)


def _aggregate(scores: Sequence[tuple[float, float]], fn: int, fp: int) -> dict[str, float]:
    tp = len(scores)
    total = tp + fn + fp
    if total == 0:
        dice, hd95 = 1.0, 0.0
    else:
        dice = sum(d for d, _ in scores) / total
        hd95 = (sum(h for _, h in scores) + LESION_HD95_PENALTY_MM * (fn + fp)) / total
    return {"lesionwise_dice": dice, "lesionwise_hd95": hd95, "lesion_tp": tp, "lesion_fp": fp, "lesion_fn": fn}


def lesion_rules(rules: Mapping[Region | str, LesionRule] | None = None) -> dict[Region, LesionRule]:
    """``rules`` by :class:`Region`, the BraTS 2023 rule for any region not given."""
    given = {Region(k): v for k, v in (rules or {}).items()}
    return {r: given.get(r, BRATS2023_LESION_RULES[r]) for r in REGION_ORDER}
