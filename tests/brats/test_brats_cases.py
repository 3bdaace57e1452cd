"""The cases of a BraTS datalist to infer, and the names of their predictions."""

from __future__ import annotations

import pytest

from monai_iunet.brats.cases import select_cases
from monai_iunet.bundle import case_name_formatter
from monai_iunet.data import build_datalist, generate_synthetic_brats


def test_select_cases_and_formatter(tmp_path):
    generate_synthetic_brats(tmp_path, num_cases=4, spatial_size=12, num_unlabeled=1)
    datalist = build_datalist(tmp_path)
    assert [item["case"] for item in select_cases(datalist)] == ["SynthBraTS_00003"]
    everything = select_cases(datalist, "all")
    assert len(everything) == 4 and all("label" not in item for item in everything)
    with pytest.raises(ValueError, match="inference_subset must be one of"):
        select_cases(datalist, "test")
    datalist["testing"] = []
    with pytest.raises(ValueError, match="no 'testing' cases.*--inference_subset all"):
        select_cases(datalist)
    name = case_name_formatter({"filename_or_obj": everything[0]["image"][0]})["subject"]
    assert name == everything[0]["case"]
