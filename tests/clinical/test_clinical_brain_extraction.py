"""Brain extraction decisions and mask handling (monai_iunet.clinical.brain_extraction)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from monai_iunet.clinical.brain_extraction import (
    decide_skull_strip,
    fill_brain_mask,
    looks_skull_stripped,
    tumour_outside_mask,
)
from monai_iunet.errors import UserInputError


def _image(array: np.ndarray, spacing: float = 1.0) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing([spacing] * 3)
    return image


def _ball(shape=(40, 40, 40), radius=12.0) -> np.ndarray:
    grid = np.indices(shape) - (np.asarray(shape) // 2)[:, None, None, None]
    return np.sqrt((grid**2).sum(0)) < radius


def test_auto_extracts_from_a_whole_head_and_not_from_a_stripped_brain():
    brain = _ball()
    stripped = _image(brain * 500.0)
    noisy = _image(brain * 500.0 + np.abs(np.random.default_rng(0).normal(0, 10, brain.shape)))
    assert looks_skull_stripped(stripped)[0] and not looks_skull_stripped(noisy)[0]
    keep = decide_skull_strip(stripped, "auto")
    assert not keep.extract and "already skull-stripped" in keep.reason
    extract = decide_skull_strip(noisy, "auto")
    assert extract.extract and extract.method == "deepbet" and "whole-head" in extract.reason
    # a zeroed background around a head the size of a head is still a head
    assert not looks_skull_stripped(_image(brain * 500.0, spacing=8.0))[0]
    assert not decide_skull_strip(noisy, "none").extract
    assert not decide_skull_strip(noisy, "deepbet", brain_mask_given=True).extract
    with pytest.raises(ValueError, match="auto"):
        decide_skull_strip(noisy, "bet2")


def test_fill_keeps_a_dark_tumour_at_the_surface_and_drops_islands():
    mask = _ball()
    mask[20:26, 20:26, 20:26] = False  # a hole inside
    mask[18:22, 29:33, 18:22] = False  # a pit at the surface (a dark tumour the extractor left out)
    mask[2:4, 2:4, 2:4] = True  # an island
    filled = sitk.GetArrayFromImage(fill_brain_mask(_image(mask.astype(np.uint8))))
    assert filled[20:26, 20:26, 20:26].all() and filled[18:22, 29:31, 18:22].all()
    assert not filled[2:4, 2:4, 2:4].any()
    assert filled.sum() < 1.1 * _ball().sum()


def test_tumour_outside_mask_is_the_fraction_cut():
    mask = _image(_ball().astype(np.uint8))
    wt = np.zeros((40, 40, 40), bool)
    wt[18:22, 18:22, 18:22] = True
    assert tumour_outside_mask(mask, wt) == 0.0
    wt[18:22, 18:22, 0:4] = True  # as much outside as inside
    assert tumour_outside_mask(mask, wt) == pytest.approx(0.5)
    assert tumour_outside_mask(mask, np.zeros_like(wt)) == 0.0


def test_decide_is_a_user_error_when_deepbet_is_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_deepbet(name, *args, **kwargs):
        if name == "deepbet":
            raise ImportError("No module named 'deepbet'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_deepbet)
    noisy = _image(np.abs(np.random.default_rng(0).normal(0, 10, (20, 20, 20))) + 1)
    with pytest.raises(UserInputError, match="pip install --no-deps deepbet"):
        decide_skull_strip(noisy, "auto")
