"""Synthetic whole heads (monai_iunet.data.synthetic_head): anatomy, per-modality contrast, truth, brain extraction."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from monai_iunet.brats import MODALITY_ORDER
from monai_iunet.data.synthetic_head import TISSUE_CODES, head_to_image, synthesize_head_case


@pytest.fixture(scope="module")
def head():
    return synthesize_head_case(resolution_mm=4.0, seed=0)


def _mean(case, modality: str, tissue: str) -> float:
    return float(case["image"][MODALITY_ORDER.index(modality)][case["tissue"] == TISSUE_CODES[tissue]].mean())


def test_head_holds_every_tissue_and_the_truth_keeps_the_brain(head):
    shape = head["image"].shape[1:]
    assert head["image"].shape == (4, *shape) and head["label"].shape == shape == head["brain_mask"].shape
    present = set(np.unique(head["tissue"]).tolist())
    assert set(TISSUE_CODES.values()) <= present
    brain = head["brain_mask"] > 0
    assert brain[head["label"] > 0].all()  # the tumour is inside the brain mask
    assert set(np.unique(head["label"]).tolist()) == {0, 1, 2, 4}
    # the head around the brain: more than the brain, and air around it with Rician noise (not zero)
    head_voxels = head["tissue"] > 0
    assert head_voxels.sum() > 2.0 * brain.sum()
    air = head["image"][1][head["tissue"] == TISSUE_CODES["air"]]
    assert (air > 0).mean() > 0.99 and air.mean() < 0.1 * _mean(head, "t1", "fat")


def test_each_modality_has_the_contrast_of_its_tissues(head):
    for m in MODALITY_ORDER:  # cortical bone dark everywhere
        assert _mean(head, m, "bone") < 0.3 * _mean(head, m, "brain")
    for m in ("t1", "t2"):  # fat bright on T1 and T2
        assert _mean(head, m, "fat") > _mean(head, m, "brain")
    assert _mean(head, "t2", "csf") > 1.3 * _mean(head, "t2", "brain")  # CSF bright on T2
    for m in ("t1", "flair"):  # and dark on T1 and FLAIR
        assert _mean(head, m, "csf") < 0.8 * _mean(head, m, "brain")
    assert _mean(head, "t2", "vitreous") > _mean(head, "t2", "brain")


def test_head_to_image_keeps_the_physical_position(head):
    image = head_to_image(head["label"], head["affine"])
    assert image.GetSize() == head["label"].shape
    ijk = np.argwhere(head["label"] == 1)[0]
    ras = head["affine"] @ np.append(ijk, 1.0)
    lps = image.TransformIndexToPhysicalPoint([int(v) for v in ijk])
    np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-4)


@pytest.mark.slow
def test_deepbet_untuned_finds_the_brain_of_a_synthetic_head():
    from monai_iunet.clinical.brain_extraction import deepbet_brain_mask

    case = synthesize_head_case(resolution_mm=2.0, seed=1)
    mask = sitk.GetArrayFromImage(deepbet_brain_mask(head_to_image(case["image"][1], case["affine"]))) > 0
    truth = np.transpose(case["brain_mask"], (2, 1, 0)) > 0
    dice = 2.0 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice >= 0.95, dice


def test_without_nilearn_the_error_names_the_anatomy_extra(monkeypatch):
    import importlib.util

    from monai_iunet.errors import MissingExtraError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "nilearn" else find_spec(n, *a))
    with pytest.raises(MissingExtraError, match=r"'nilearn', which the extra \[anatomy\] installs"):
        synthesize_head_case(resolution_mm=4.0, seed=0)
