"""Per-case, per-region scores of a BraTS label map against its reference: the one evaluator of the package.

Every number the package reports (training validation, the bundle's ``evaluate.json``, ``monai-iunet evaluate``,
the clinical report, the benchmarks) comes from :func:`evaluate_labels`. It scores **label maps** (not network
channels): each region (TC, WT, ET) is the union of label values given by the
:class:`~monai_iunet.brats.LabelConvention`, so the nesting ET ⊂ TC ⊂ WT of a written label map is what is scored.

Metrics per case and region (:data:`METRICS`):

- ``dice``: MONAI ``compute_dice(ignore_empty=False)`` (what ``DiceMetric(ignore_empty=False)`` computes).
- ``sensitivity``, ``specificity``: MONAI's confusion matrix (``get_confusion_matrix``), over the whole image.
- ``hd95``: the 95th percentile of the surface distances of both directions pooled together (MONAI
  ``get_edge_surface_distance``, surfaces of 6-connected erosion, distances in mm with the voxel spacing). This is
  the definition of the official BraTS package (``brats-evaluation`` 0.0.10); MONAI's
  ``HausdorffDistanceMetric(percentile=95)`` takes the larger of the two directed 95th percentiles instead, which
  is never smaller.
- ``nsd``: normalised surface Dice at :data:`NSD_TOLERANCE_MM` (1 mm) with MONAI ``compute_surface_dice`` (the
  definition of Nikolov et al. 2021, ``SurfaceDiceMetric``).
- ``lesionwise_dice``, ``lesionwise_hd95``, ``lesion_tp``, ``lesion_fp``, ``lesion_fn``: the BraTS 2023 lesion-wise
  rules, :mod:`monai_iunet.brats.lesions`.

Empty regions (per case and region; nothing is left out of a mean):

=============================== ==== ==== ===== =========== =========== =============== ===============
case                            Dice HD95 NSD   sensitivity specificity lesion-wise Dice lesion-wise HD95
=============================== ==== ==== ===== =========== =========== =============== ===============
reference and prediction empty  1    0    1     1           1           1               0
reference empty, prediction not 0    373  0     1           < 1         0               374 per FP lesion
prediction empty, reference not 0    373  0     0           1           0               374 per FN lesion
=============================== ==== ==== ===== =========== =========== =============== ===============

The 373 mm of an empty region is the value the official package writes for its infinite HD95; the 374 mm per
missed or spurious lesion is the BraTS 2023 lesion-wise penalty.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from monai.metrics import compute_confusion_matrix_metric, compute_dice, compute_surface_dice, get_confusion_matrix
from monai.metrics.utils import get_edge_surface_distance

from monai_iunet.brats.labels import REGION_ORDER, LabelConvention, Region, label_convention
from monai_iunet.brats.lesions import LesionRule, lesion_metrics, lesion_rules
from monai_iunet.errors import UserInputError

__all__ = [
    "EMPTY_HD95_MM",
    "METRICS",
    "NSD_TOLERANCE_MM",
    "LabelValueError",
    "check_label_values",
    "dice_and_hd95",
    "evaluate_labels",
    "region_metrics",
]

METRICS: tuple[str, ...] = (
    "dice",
    "sensitivity",
    "specificity",
    "hd95",
    "nsd",
    "lesionwise_dice",
    "lesionwise_hd95",
    "lesion_tp",
    "lesion_fp",
    "lesion_fn",
)
"""The metrics of one case and region, in the column order of ``monai-iunet evaluate``'s CSV."""

NSD_TOLERANCE_MM = 1.0
"""Tolerance of the normalised surface Dice, in mm."""

EMPTY_HD95_MM = 373.0
"""HD95 of a region empty in the reference or in the prediction (but not both), in mm."""


class LabelValueError(UserInputError):
    """A label map holds a value its label convention does not have."""


def _batch(mask: np.ndarray) -> torch.Tensor:
    """``(D, H, W)`` bool → ``(1, 1, D, H, W)`` float32 tensor, MONAI's metric input."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]


def _spacing(spacing: Sequence[float] | None, ndim: int) -> list[float]:
    return [1.0] * ndim if spacing is None else [float(s) for s in spacing]


@contextmanager
def _quiet_monai_deprecation() -> Iterator[None]:
    """MONAI 1.5-1.6's surface distances pass MONAI's own deprecated ``always_return_as_numpy`` to
    ``get_mask_edges``: a FutureWarning users can do nothing about."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        yield


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """The 95th percentile of the pooled surface distances of two non-empty masks, in mm."""
    with _quiet_monai_deprecation():
        _, distances, _ = get_edge_surface_distance(
            torch.from_numpy(np.asarray(pred, bool)),
            torch.from_numpy(np.asarray(ref, bool)),
            spacing=_spacing(spacing, pred.ndim),
            symmetric=True,
        )
    pooled = torch.cat([d.reshape(-1) for d in distances]).double().numpy()
    return float(np.percentile(pooled, 95)) if pooled.size else 0.0


def dice_and_hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> tuple[float, float]:
    """Dice and HD95 (mm) of two masks, with the empty-region conventions of the module docstring."""
    dice = float(compute_dice(_batch(pred), _batch(ref), include_background=True, ignore_empty=False).item())
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not (has_pred or has_ref):
        return dice, 0.0
    if not (has_pred and has_ref):
        return dice, EMPTY_HD95_MM
    return dice, hd95(pred, ref, spacing)


def _nsd(pred: np.ndarray, ref: np.ndarray, spacing: list[float], tolerance: float) -> float:
    has_pred, has_ref = bool(pred.any()), bool(ref.any())
    if not (has_pred and has_ref):
        return float(has_pred == has_ref)
    with _quiet_monai_deprecation():
        score = compute_surface_dice(_batch(pred), _batch(ref), [tolerance], include_background=True, spacing=spacing)
    return float(score.item())


def _confusion(pred: np.ndarray, ref: np.ndarray, outside: int) -> tuple[float, float]:
    counts = get_confusion_matrix(_batch(pred), _batch(ref), include_background=True)
    counts[..., 2] += outside  # the voxels cropped away are true negatives
    sensitivity = compute_confusion_matrix_metric("sensitivity", counts).item() if ref.any() else 1.0
    specificity = compute_confusion_matrix_metric("specificity", counts).item() if outside or not ref.all() else 1.0
    return float(sensitivity), float(specificity)


def region_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] | None = None,
    nsd_tolerance: float = NSD_TOLERANCE_MM,
    rule: LesionRule | None = None,
    outside: int = 0,
) -> dict[str, float]:
    """Every metric of :data:`METRICS` for one region of one case.

    Args:
        pred: predicted mask of the region, shape ``(D, H, W)``.
        ref: reference mask of the region, same shape.
        spacing: voxel size in mm per axis (default 1 mm).
        nsd_tolerance: NSD tolerance in mm.
        rule: the region's lesion rule (default: BraTS 2023).
        outside: voxels of the image outside ``pred`` and ``ref`` (a crop), all background in both: they count as
            true negatives for the specificity.
    """
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}.")
    dice, distance = dice_and_hd95(pred, ref, spacing)
    sensitivity, specificity = _confusion(pred, ref, outside)
    nsd = _nsd(pred, ref, _spacing(spacing, pred.ndim), nsd_tolerance)
    scores = {"dice": dice, "sensitivity": sensitivity, "specificity": specificity, "hd95": distance, "nsd": nsd}
    scores.update(lesion_metrics(pred, ref, spacing, rule))
    return {name: scores[name] for name in METRICS}


def _tumour_box(pred: np.ndarray, ref: np.ndarray, margin: int) -> tuple[slice, ...]:
    """The bounding box of every labelled voxel of both maps, grown by ``margin`` (one voxel if there is none).

    Every metric is the same on this crop as on the whole image (the specificity adds the voxels outside).
    """
    coords = np.nonzero((pred != 0) | (ref != 0))
    if not coords[0].size:
        return tuple(slice(0, 1) for _ in pred.shape)
    return tuple(slice(max(int(c.min()) - margin, 0), int(c.max()) + margin + 1) for c in coords)


def check_label_values(label: np.ndarray, convention: str | LabelConvention, case: str, what: str) -> None:
    """Raise :class:`LabelValueError` naming the case and the values if ``label`` has values outside ``convention``.

    Args:
        label: a label map.
        convention: its label convention.
        case: the case id, for the message.
        what: ``"prediction"`` or ``"reference"``, for the message.
    """
    convention = label_convention(convention)
    unexpected = convention.unexpected_values(np.asarray(label))
    if unexpected:
        raise LabelValueError(
            f"case {case}: the {what} has label value(s) {unexpected}, which the {convention.name} convention "
            f"(background 0, necrosis {convention.necrosis}, edema {convention.edema}, enhancing "
            f"{convention.enhancing}) does not have; pass the --convention of the files "
            "(brats2021: 1/2/4, brats2023: 1/2/3, msd: 2/1/3)."
        )


def evaluate_labels(
    pred: np.ndarray,
    ref: np.ndarray,
    convention: str | LabelConvention,
    spacing: Sequence[float] | None = None,
    case: str = "case",
    nsd_tolerance: float = NSD_TOLERANCE_MM,
    rules: Mapping[Region | str, LesionRule] | None = None,
) -> list[dict]:
    """Score one case's predicted label map against its reference label map, region by region.

    Args:
        pred: predicted label map, shape ``(D, H, W)`` (a leading channel of size 1 is dropped).
        ref: reference label map on the same grid.
        convention: label convention of both maps (``"brats2021"``, ``"brats2023"``, ``"msd"``).
        spacing: voxel size in mm per axis (default 1 mm).
        case: case id, for the rows and for error messages.
        nsd_tolerance: NSD tolerance in mm.
        rules: lesion rules per region (default: BraTS 2023).

    Returns:
        One row per region in the order ET, TC, WT: ``{"case", "region", *METRICS}`` with ``region`` lower-case,
        and ``reference_empty`` / ``prediction_empty`` (whether the region is empty in each, for the summary).

    Raises:
        LabelValueError: a map holds a value outside ``convention``.
    """
    pred, ref = np.squeeze(np.asarray(pred)), np.squeeze(np.asarray(ref))
    if pred.shape != ref.shape:
        raise UserInputError(
            f"case {case}: prediction shape {pred.shape} differs from reference shape {ref.shape}; score predictions "
            "on the reference's own grid (as the bundle's inference writes them)."
        )
    convention = label_convention(convention)
    check_label_values(pred, convention, case, "prediction")
    check_label_values(ref, convention, case, "reference")
    rule_of = lesion_rules(rules)
    box = _tumour_box(pred, ref, margin=max(r.dilation for r in rule_of.values()) + 2)
    outside = pred.size - pred[box].size
    pred_masks, ref_masks = convention.region_masks(pred[box]), convention.region_masks(ref[box])
    rows = []
    for region in sorted(REGION_ORDER, key=lambda r: r.value):  # et, tc, wt
        scores = region_metrics(pred_masks[region], ref_masks[region], spacing, nsd_tolerance, rule_of[region], outside)
        empty = {"reference_empty": not ref_masks[region].any(), "prediction_empty": not pred_masks[region].any()}
        rows.append({"case": case, "region": region.value, **scores, **empty})
    return rows
