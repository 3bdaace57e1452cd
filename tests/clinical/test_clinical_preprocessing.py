"""N4 bias-field correction, brain masks and grids (monai_iunet.clinical.preprocessing)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from monai_iunet.clinical import ClinicalInputError
from monai_iunet.clinical.preprocessing import apply_mask, n4_correct, read_brain_mask, same_grid
from monai_iunet.data import synthesize_brats_case


def _t1ce(size: int = 40) -> sitk.Image:
    image, _ = synthesize_brats_case(size, seed=0, bias_strength=0.0)
    out = sitk.GetImageFromArray(np.ascontiguousarray(image[2].transpose(2, 1, 0)))
    out.SetSpacing((1.2, 1.2, 1.5))
    return out


def test_n4_removes_a_smooth_bias_field():
    clean = _t1ce()
    array = sitk.GetArrayFromImage(clean)
    brain = array > 0
    z = np.linspace(-1.0, 1.0, array.shape[0])[:, None, None]
    bias = np.exp(0.4 * z) * np.ones_like(array)
    biased = sitk.GetImageFromArray((array * bias).astype(np.float32))
    biased.CopyInformation(clean)
    corrected = sitk.GetArrayFromImage(n4_correct(biased))
    assert corrected.shape == array.shape and np.all(corrected[~brain] == 0)
    # the applied field is log-linear along z with slope 0.4; what is left of it after correction:
    zz = np.broadcast_to(z, array.shape)[brain]
    slope = np.polyfit(zz, np.log(corrected[brain] / array[brain]), 1)[0]
    assert abs(slope) < 0.1 * 0.4


def test_brain_mask_must_be_on_the_reference_grid(tmp_path):
    reference = _t1ce()
    mask = sitk.Cast(reference > 0, sitk.sitkUInt8)
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    read = read_brain_mask(tmp_path / "mask.nii.gz", reference)
    assert same_grid(read, reference)
    masked = sitk.GetArrayFromImage(apply_mask(reference + 5.0, read))
    assert np.all(masked[sitk.GetArrayFromImage(mask) == 0] == 0)
    shifted = sitk.Image(mask)
    shifted.SetOrigin((3.0, 0.0, 0.0))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    with pytest.raises(ClinicalInputError, match="--brain-mask .*shifted.nii.gz.* another grid"):
        read_brain_mask(tmp_path / "shifted.nii.gz", reference)
    sitk.WriteImage(mask * 0, str(tmp_path / "empty.nii.gz"))
    with pytest.raises(ClinicalInputError, match="empty"):
        read_brain_mask(tmp_path / "empty.nii.gz", reference)
