"""Series identification (monai_iunet.clinical.series): tags first, descriptions second, ambiguity refused."""

from __future__ import annotations

import pydicom
import pytest

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.clinical.series import (
    AmbiguousSeriesError,
    MissingSeriesError,
    SeriesIdentificationError,
    SeriesInfo,
    choice_table,
    classify_series,
    identify_series,
)
from monai_iunet.errors import UserInputError


def _study() -> list[SeriesInfo]:
    """A Siemens-like study: localizer, the four, DWI and ADC, in scanner order."""
    return [
        SeriesInfo("1.1", "localizer", series_number=1, image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"), n_instances=9),
        SeriesInfo(
            "1.2",
            "t1_mprage_sag_p2_iso",
            series_number=2,
            echo_time=2.98,
            repetition_time=2300,
            inversion_time=900,
            acquisition_type="3D",
            n_instances=176,
        ),
        SeriesInfo("1.3", "t2_tse_tra", series_number=3, echo_time=98, repetition_time=5000, n_instances=30),
        SeriesInfo(
            "1.4",
            "t2_tirm_tra_dark-fluid",
            series_number=4,
            echo_time=81,
            repetition_time=9000,
            inversion_time=2500,
            n_instances=30,
        ),
        SeriesInfo(
            "1.5",
            "ep2d_diff_3scan_trace",
            series_number=5,
            echo_time=89,
            repetition_time=6000,
            b_value=1000,
            scanning_sequence="EP",
            n_instances=90,
        ),
        SeriesInfo(
            "1.6",
            "ep2d_diff_3scan_trace_ADC",
            series_number=6,
            image_type=("DERIVED", "PRIMARY", "DIFFUSION", "ADC"),
            n_instances=30,
        ),
        SeriesInfo(
            "1.7",
            "T1 MPRAGE POST GD",
            series_number=7,
            echo_time=2.98,
            repetition_time=2300,
            inversion_time=900,
            acquisition_type="3D",
            contrast_agent="Gadovist",
            n_instances=176,
        ),
    ]


def test_tags_decide_and_the_table_shows_the_choice():
    study = _study()
    chosen = identify_series(study)
    assert list(chosen) == list(MODALITY_ORDER)
    assert {m: s.series_uid for m, s in chosen.items()} == {
        Modality.FLAIR: "1.4",
        Modality.T1: "1.2",
        Modality.T1CE: "1.7",
        Modality.T2: "1.3",
    }
    table = choice_table(study, chosen)
    assert len(table.splitlines()) == len(study) + 1
    row = next(line for line in table.splitlines() if "POST GD" in line)
    assert "-> T1ce" in row and "1.7" in row
    assert "LOCALIZER" in next(line for line in table.splitlines() if line.startswith("1 "))


def test_tags_win_over_a_misleading_description():
    # a T2-weighted series called "T1 ..." by mistake: the echo and repetition times decide
    info = SeriesInfo("9", "T1 axial", echo_time=100, repetition_time=4000)
    result = classify_series(info)
    assert result.modality == Modality.T2 and result.by == "tags"
    assert any("description suggests T1" in r for r in result.reasons)
    # the contrast agent tag makes a T1-weighted series the T1ce whatever its name
    post = SeriesInfo("9", "t1_se_tra", echo_time=10, repetition_time=500, contrast_agent="Gd")
    assert classify_series(post).modality == Modality.T1CE


@pytest.mark.parametrize(
    "description, expected",
    [
        ("T1 synthetic", Modality.T1),  # the Deploy app's old rules missed these two
        ("T2 synthetic", Modality.T2),
        ("t1_mprage_sag_p2_iso", Modality.T1),
        ("T1 MPRAGE POST GD", Modality.T1CE),
        ("3D T1 +C", Modality.T1CE),
        ("T1 pre-contrast", Modality.T1),
        ("t2_tse_tra", Modality.T2),
        ("t2_tirm_tra_dark-fluid", Modality.FLAIR),
        ("AX FLAIR", Modality.FLAIR),
        ("AX T1 FLAIR", Modality.T1),
        ("SWI_Images", None),
        ("T2* GRE", None),
        ("3-plane localizer", None),
        ("ep2d_diff_b1000", None),
    ],
)
def test_descriptions_decide_without_tags(description, expected):
    assert classify_series(SeriesInfo("9", description)).modality == expected


def test_two_t1ce_candidates_are_refused_with_both_listed_and_an_override_resolves():
    study = _study() + [
        SeriesInfo(
            "1.8",
            "3D T1 +C",
            series_number=8,
            echo_time=3.1,
            repetition_time=8.2,
            acquisition_type="3D",
            contrast_agent="GADOVIST",
            n_instances=150,
        )
    ]
    with pytest.raises(AmbiguousSeriesError) as raised:
        identify_series(study)
    assert isinstance(raised.value, UserInputError)
    assert list(raised.value.candidates) == [Modality.T1CE]
    message = str(raised.value)
    assert "1.7" in message and "1.8" in message and "--t1ce SERIES_UID" in message
    assert identify_series(study, overrides={Modality.T1CE: "1.8"})[Modality.T1CE].series_uid == "1.8"


def test_originals_beat_reformats_and_3d_beats_2d():
    study = _study() + [
        SeriesInfo(
            "2.1",
            "T1 MPRAGE POST GD_MPR_tra",
            series_number=9,
            echo_time=2.98,
            repetition_time=2300,
            inversion_time=900,
            contrast_agent="Gadovist",
            image_type=("DERIVED", "SECONDARY", "MPR"),
            n_instances=160,
        ),
        SeriesInfo(
            "2.2",
            "t1_se_tra_post",
            series_number=10,
            echo_time=9,
            repetition_time=550,
            acquisition_type="2D",
            contrast_agent="Gadovist",
            n_instances=30,
        ),
    ]
    assert identify_series(study)[Modality.T1CE].series_uid == "1.7"


def test_missing_series_and_bad_overrides_are_named():
    study = [s for s in _study() if s.series_uid != "1.3"]
    with pytest.raises(MissingSeriesError, match=r"no T2 series found.*--t2 SERIES_UID") as raised:
        identify_series(study)
    assert raised.value.missing == (Modality.T2,)
    with pytest.raises(SeriesIdentificationError, match="--t1ce 9.9: no such series"):
        identify_series(_study(), overrides={Modality.T1CE: "9.9"})
    with pytest.raises(SeriesIdentificationError, match="same series"):
        identify_series(_study(), overrides={Modality.T1CE: "1.7", Modality.T1: "1.7"})


def test_from_dataset_reads_the_tags_a_header_carries():
    ds = pydicom.Dataset()
    ds.SeriesInstanceUID, ds.SeriesDescription, ds.Modality, ds.SeriesNumber = "1.2.3", "T1 post", "MR", "7"
    ds.EchoTime, ds.RepetitionTime, ds.InversionTime = "2.5", "2000", "900"
    ds.ContrastBolusAgent, ds.MRAcquisitionType, ds.ImageType = "Gd", "3D", ["ORIGINAL", "PRIMARY", "M"]
    ds.SequenceName, ds.ScanningSequence = "*tfl3d1", ["GR", "IR"]
    ds.add_new(0x00189087, "FD", 0.0)  # DiffusionBValue 0, as some scanners write on every series
    info = SeriesInfo.from_dataset(ds, n_instances=120, path="/x")
    assert (info.series_uid, info.series_number, info.n_instances, info.path) == ("1.2.3", 7, 120, "/x")
    assert (info.echo_time, info.repetition_time, info.inversion_time) == (2.5, 2000.0, 900.0)
    assert info.image_type == ("ORIGINAL", "PRIMARY", "M") and info.scanning_sequence == "GR\\IR"
    assert info.frame_of_reference_uid == "" and info.b_value == 0.0
    assert classify_series(info).modality == Modality.T1CE
    ds.DiffusionBValue = 1000.0
    assert classify_series(SeriesInfo.from_dataset(ds, 120)).kind == "diffusion"
