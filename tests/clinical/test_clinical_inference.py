"""The clinical segmenter writes label maps in the label convention its bundle is configured with."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from clinical_data import make_bundle_with_weights

from monai_iunet.brats import BRATS2021, BRATS2023, MODALITY_ORDER, convert_labels
from monai_iunet.clinical import BundleSegmenter
from monai_iunet.data import synthesize_brats_case


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("case")
    image, _ = synthesize_brats_case(32, seed=3)
    files = {}
    for name, volume in zip(MODALITY_ORDER, image):
        files[name] = str(root / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(volume, np.eye(4)), files[name])
    return files


def test_label_convention_comes_from_the_bundle(tmp_path, case_files):
    bundle = make_bundle_with_weights(tmp_path / "bundle")
    default = BundleSegmenter(bundle, device="cpu")
    assert default.labels == BRATS2021
    label_2021 = default(case_files)
    assert set(np.unique(label_2021)) <= {0, *BRATS2021.values}
    assert (label_2021 == BRATS2021.enhancing).any()  # the test needs enhancing tumour to tell 4 from 3

    config = bundle / "configs" / "inference.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "label_convention": "brats2023"}))
    consecutive = BundleSegmenter(bundle, device="cpu")
    assert consecutive.labels == BRATS2023
    np.testing.assert_array_equal(consecutive(case_files), convert_labels(label_2021, BRATS2021, BRATS2023))
    # an override names the convention too
    assert BundleSegmenter(bundle, device="cpu", overrides={"label_convention": "msd"}).labels.name == "msd"
