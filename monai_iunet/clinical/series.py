"""Which series of an MR study is the T1, T1ce, T2 and FLAIR: DICOM tags first, descriptions second.

A study folder (or a PACS study) holds 8-20 series: localizers, diffusion and its ADC map, perfusion, reformats,
sometimes repeats, and the four a BraTS network reads. :func:`identify_series` finds those four from the header of
one instance per series (:class:`SeriesInfo`, so a DICOMweb client needs no pixel data):

1. series that cannot be one of the four are set aside, with the reason: not MR, a localizer (ImageType LOCALIZER,
   "localizer"/"scout"/"3-plane"), diffusion or perfusion (DIFFUSION/ADC/TRACEW in ImageType, a b-value, EPI
   read-out, "dwi"/"adc"/"perf"), other contrasts (SWI, T2*, angiography, spectroscopy) or too few instances;
2. the **tags** give the weighting where they can: FLAIR = inversion recovery with TI >= 1200 ms and TE >= 50 ms;
   T1 = TE < 30 ms with TR < 1000 ms or an inversion of 300-1500 ms (MPRAGE, BRAVO, T1-FLAIR); T2 = TE >= 60 ms and
   TR >= 1500 ms without inversion. A T1-weighted series with a ContrastBolusAgent is the T1ce (unless its
   description says "pre"/"native");
3. the **description** (SeriesDescription, ProtocolName, SequenceName) decides what the tags leave open
   ("t2_tirm_tra_dark-fluid" -> FLAIR, "T1 MPRAGE POST GD" -> T1ce, "T1 synthetic" -> T1);
4. per modality, originals win over derived series (reformats) and a 3D acquisition over 2D ones; two or more
   equally good candidates are **ambiguous**: :class:`AmbiguousSeriesError` lists them and says how to choose
   (``--t1ce SERIES_UID``); overrides are taken as given.

Example::

    infos = [SeriesInfo.from_dataset(pydicom.dcmread(f, stop_before_pixels=True), n_instances=n) for f, n in ...]
    chosen = identify_series(infos, overrides={Modality.T1CE: "1.2.3"})
    print(choice_table(infos, chosen))
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pydicom

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.clinical.io import ClinicalInputError

__all__ = [
    "AmbiguousSeriesError",
    "MissingSeriesError",
    "SeriesClassification",
    "SeriesIdentificationError",
    "SeriesInfo",
    "choice_table",
    "classify_series",
    "identify_series",
]

MIN_INSTANCES = 5
"""Fewer instances than this (a single-frame DICOM excepted) cannot be a 3D series of the four."""


class SeriesIdentificationError(ClinicalInputError):
    """The four series cannot be told apart in a study; the message lists the series and how to choose."""


class AmbiguousSeriesError(SeriesIdentificationError):
    """Two or more series are equally good candidates for one modality.

    Attributes:
        candidates: the candidates of each ambiguous modality.
    """

    def __init__(self, message: str, candidates: Mapping[Modality, Sequence[SeriesInfo]]):
        super().__init__(message)
        self.candidates = {m: tuple(c) for m, c in candidates.items()}


class MissingSeriesError(SeriesIdentificationError):
    """No series of the study is a candidate for one or more modalities.

    Attributes:
        missing: the modalities not found.
    """

    def __init__(self, message: str, missing: Sequence[Modality]):
        super().__init__(message)
        self.missing = tuple(missing)


def _float(value) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _b_value(ds: pydicom.Dataset) -> float | None:
    """DiffusionBValue (0018,9087), or the Siemens (0019,100C) / GE (0043,1039) private copies."""
    for tag in (0x00189087, 0x0019100C, 0x00431039):
        element = ds.get(tag)
        if element is not None and element.value not in (None, b""):
            value = element.value
            value = value[0] if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else value
            if isinstance(value, bytes):
                value = value.decode(errors="ignore").split("\\")[0]
            b = _float(value)
            if b is not None:
                return b % 1e9  # GE adds 1e9 as a flag
    return None


@dataclass(frozen=True)
class SeriesInfo:
    """What identification needs to know of one series: the header of one of its instances, and their number.

    Attributes:
        series_uid: SeriesInstanceUID (for image files without DICOM header: the file name).
        description: SeriesDescription.
        modality: the DICOM Modality (``"MR"``).
        series_number: SeriesNumber, or ``None``.
        protocol_name: ProtocolName.
        sequence_name: SequenceName (or PulseSequenceName), e.g. ``"*tfl3d1_16ns"``.
        scanning_sequence: ScanningSequence, e.g. ``"GR\\IR"``, ``"SE"``, ``"EP"``.
        acquisition_type: MRAcquisitionType, ``"2D"`` or ``"3D"`` (or ``""``).
        echo_time: EchoTime in ms.
        repetition_time: RepetitionTime in ms.
        inversion_time: InversionTime in ms.
        contrast_agent: ContrastBolusAgent (empty when none was given).
        b_value: diffusion b-value in s/mm² (standard or vendor tag).
        image_type: ImageType values, upper case (``("ORIGINAL", "PRIMARY", "M", "ND")``).
        n_instances: the number of instances (files) of the series.
        frame_of_reference_uid: FrameOfReferenceUID (empty when absent: a DICOM-SEG cannot then be written).
        study_uid: StudyInstanceUID.
        patient_id: PatientID.
        manufacturer: Manufacturer.
        path: where the series is (a folder or a file), when known.
        files: the series' files, when known.
    """

    series_uid: str
    description: str = ""
    modality: str = "MR"
    series_number: int | None = None
    protocol_name: str = ""
    sequence_name: str = ""
    scanning_sequence: str = ""
    acquisition_type: str = ""
    echo_time: float | None = None
    repetition_time: float | None = None
    inversion_time: float | None = None
    contrast_agent: str = ""
    b_value: float | None = None
    image_type: tuple[str, ...] = ()
    n_instances: int = 1
    frame_of_reference_uid: str = ""
    study_uid: str = ""
    patient_id: str = ""
    manufacturer: str = ""
    path: str | None = None
    files: tuple[str, ...] = ()

    @classmethod
    def from_dataset(cls, ds: pydicom.Dataset, n_instances: int = 1, path=None) -> SeriesInfo:
        """The :class:`SeriesInfo` of the series ``ds`` (one instance's header, pixel data not needed) belongs to.

        Args:
            ds: a header of one instance (``pydicom.dcmread(f, stop_before_pixels=True)`` or a DICOMweb metadata
                ``pydicom.Dataset.from_json``).
            n_instances: the number of instances of the series.
            path: where the series is, if on disk.
        """
        number = _float(ds.get("SeriesNumber"))
        sequence = _text(ds.get("SequenceName")) or _text(ds.get("PulseSequenceName"))
        return cls(
            series_uid=_text(ds.get("SeriesInstanceUID")),
            description=_text(ds.get("SeriesDescription")),
            modality=_text(ds.get("Modality")),
            series_number=None if number is None else int(number),
            protocol_name=_text(ds.get("ProtocolName")),
            sequence_name=sequence,
            scanning_sequence=_text(ds.get("ScanningSequence")),
            acquisition_type=_text(ds.get("MRAcquisitionType")).upper(),
            echo_time=_float(ds.get("EchoTime")),
            repetition_time=_float(ds.get("RepetitionTime")),
            inversion_time=_float(ds.get("InversionTime")),
            contrast_agent=_text(ds.get("ContrastBolusAgent")),
            b_value=_b_value(ds),
            image_type=tuple(v.strip().upper() for v in _text(ds.get("ImageType")).split("\\") if v.strip()),
            n_instances=int(n_instances),
            frame_of_reference_uid=_text(ds.get("FrameOfReferenceUID")),
            study_uid=_text(ds.get("StudyInstanceUID")),
            patient_id=_text(ds.get("PatientID")),
            manufacturer=_text(ds.get("Manufacturer")),
            path=None if path is None else str(path),
        )

    def replace(self, **changes) -> SeriesInfo:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    @property
    def text(self) -> str:
        """Description, protocol and sequence name, lower case, with ``_``/``-`` as spaces (what the rules read)."""
        joined = " | ".join(t for t in (self.description, self.protocol_name, self.sequence_name) if t)
        return re.sub(r"[_\-]+", " ", joined.lower())


@dataclass(frozen=True)
class SeriesClassification:
    """What :func:`classify_series` made of one series.

    Attributes:
        modality: the BraTS modality it is a candidate for, or ``None``.
        kind: a short name of what it is (``"T1ce"``, ``"localizer"``, ``"diffusion"``, ``"unknown"`` ...).
        by: ``"tags"``, ``"description"`` or ``""`` (what decided).
        reasons: why, in words.
    """

    modality: Modality | None
    kind: str
    by: str
    reasons: tuple[str, ...]


_WORDS = {
    "localizer": r"locali[sz]er|scout|survey|\bloc\b|aahead|3 ?plane|tri ?pilot|\bpilot\b",
    "diffusion": r"\bdwi\b|diff|\badc\b|trace|\bdti\b|tensor|\bfa\b|\bb ?\d{3,4}\b",
    "perfusion": r"perf|\bdsc\b|\bdce\b|\bpwi\b|\basl\b|pcasl|\bcbf\b|\bcbv\b|\bmtt\b|twist|bolus",
    "other contrast": r"\bswi\b|swan|t2 ?\*|t2 ?star|hemo|\bmra\b|\btof\b|angio|spectro|\bsvs\b|\bcsi\b|phase map",
}
_FLAIR = re.compile(r"flair|tirm|dark ?fluid")
_T2 = re.compile(r"\bt2(?:w|wi)?\b")
_T1 = re.compile(r"\bt1(?:w|wi|c|ce|gd)?\b|mp ?rage|spgr|bravo|\btfl|vibe|\btfe\b")
_POST = re.compile(r"\bpost\b|\bgd\b|gad|\+ ?c\b|\+ ?gd|contrast|kontrast|\bkm\b|\bce\b|\bt1 ?c(?:e)?\b|\bc\+")
_PRE = re.compile(r"\bpre\b|nativ|\bwo\b|without|\bno ?contrast")


def _excluded(info: SeriesInfo) -> tuple[str, str] | None:
    """``(kind, reason)`` when the series cannot be one of the four, else ``None``."""
    if info.modality and info.modality.upper() != "MR":
        return "not MR", f"Modality {info.modality}"
    types = set(info.image_type)
    if "LOCALIZER" in types:
        return "localizer", "ImageType LOCALIZER"
    if types & {"DIFFUSION", "ADC", "TRACEW", "FA", "EADC", "DWI"}:
        return "diffusion", f"ImageType {'/'.join(info.image_type)}"
    epi = "EP" in info.scanning_sequence.upper().split("\\")
    if info.b_value is not None and (info.b_value > 0 or epi):  # some scanners write b = 0 on every series
        return "diffusion", f"b-value {info.b_value:g}"
    if types & {"PERFUSION", "PERF"}:
        return "perfusion", f"ImageType {'/'.join(info.image_type)}"
    for kind, pattern in _WORDS.items():
        found = re.search(pattern, info.text)
        if found:
            return kind, f"description {found.group(0)!r}"
    if epi:
        return "EPI", "ScanningSequence EP (diffusion, perfusion or fMRI read-out)"
    if info.n_instances < MIN_INSTANCES and info.n_instances != 1:
        return "too few images", f"{info.n_instances} instances"
    return None


def _weighting_from_tags(info: SeriesInfo) -> tuple[Modality | None, str]:
    """The weighting from TE/TR/TI (T1 for both T1 and T1ce), with the reason; ``None`` when they leave it open."""
    te, tr, ti = info.echo_time, info.repetition_time, info.inversion_time
    if te is None or tr is None:
        return None, "no EchoTime/RepetitionTime"
    times = f"TE {te:g} ms, TR {tr:g} ms" + (f", TI {ti:g} ms" if ti else "")
    if ti:
        if ti >= 1200 and te >= 50:
            return Modality.FLAIR, f"{times}: fluid-attenuated inversion recovery"
        if 300 <= ti < 1500 and te < 30:
            return Modality.T1, f"{times}: T1-weighted inversion recovery"
        return None, f"{times}: an inversion recovery that is neither T1 nor FLAIR"
    if te < 30 and tr < 1000:
        return Modality.T1, f"{times}: T1-weighted"
    if te >= 60 and tr >= 1500:
        return Modality.T2, f"{times}: T2-weighted"
    return None, f"{times}: neither T1 nor T2 weighted (e.g. proton density)"


def _weighting_from_description(text: str) -> Modality | None:
    t1, flair = bool(_T1.search(text)), bool(_FLAIR.search(text))
    if t1:  # "AX T1 FLAIR" is a T1-weighted inversion recovery
        return Modality.T1
    if flair:
        return Modality.FLAIR
    if _T2.search(text):
        return Modality.T2
    return None


def _contrast(info: SeriesInfo) -> tuple[bool, str]:
    """Whether a T1-weighted series is post-contrast, with the reason (the tag first, the description second)."""
    pre, post = _PRE.search(info.text), _POST.search(info.text)
    if info.contrast_agent:
        if pre and not post:
            return False, f"ContrastBolusAgent {info.contrast_agent!r}, but the description says {pre.group(0)!r}"
        return True, f"ContrastBolusAgent {info.contrast_agent!r}"
    if post and not pre:
        return True, f"description {post.group(0)!r}"
    return False, "no contrast agent"


def classify_series(info: SeriesInfo) -> SeriesClassification:
    """What one series is: a candidate for a BraTS modality (and why), or set aside (and why)."""
    excluded = _excluded(info)
    if excluded is not None:
        return SeriesClassification(None, excluded[0], "tags" if "ImageType" in excluded[1] else "", (excluded[1],))
    weighting, reason = _weighting_from_tags(info)
    by, reasons = "tags", [reason]
    described = _weighting_from_description(info.text)
    if weighting is None:
        weighting, by = described, "description"
        if described is not None:
            reasons.append(f"description says {described.title}")
    elif described is not None and described != weighting:
        reasons.append(f"the description suggests {described.title}; the tags decide")
    if weighting is None:
        return SeriesClassification(None, "unknown", "", tuple(reasons + ["no weighting in tags or description"]))
    if weighting == Modality.T1:
        post, why = _contrast(info)
        reasons.append(why)
        weighting = Modality.T1CE if post else Modality.T1
    return SeriesClassification(weighting, weighting.title, by, tuple(reasons))


def _rank(info: SeriesInfo) -> tuple[int, int]:
    """Lower is better: originals before derived series, then 3D before 2D."""
    derived = int("DERIVED" in info.image_type or "SECONDARY" in info.image_type)
    return derived, 0 if info.acquisition_type == "3D" else 1


def _listing(infos: Sequence[SeriesInfo]) -> str:
    return "; ".join(
        f"{i.series_uid} (#{i.series_number if i.series_number is not None else '?'} "
        f"{i.description or 'no description'!r}, {i.acquisition_type or '?D'}, {i.n_instances} images)"
        for i in infos
    )


def _find(series: Sequence[SeriesInfo], modality: Modality, uid: str) -> SeriesInfo:
    for info in series:
        if uid in (info.series_uid, info.path) or (info.path and info.path.rstrip("/").endswith("/" + uid)):
            return info
    raise SeriesIdentificationError(
        f"--{modality.value} {uid}: no such series in the study; its series are: {_listing(series)}."
    )


def identify_series(
    series: Sequence[SeriesInfo], overrides: Mapping[Modality, str] | None = None
) -> dict[Modality, SeriesInfo]:
    """Find the T1, T1ce, T2 and FLAIR series of a study.

    Args:
        series: every series of the study.
        overrides: a SeriesInstanceUID (or, for image files, the file name) per modality, taken as given.

    Returns:
        the series of each modality, in :data:`~monai_iunet.brats.MODALITY_ORDER`.

    Raises:
        AmbiguousSeriesError: a modality has several equally good candidates (listed, with how to choose one).
        MissingSeriesError: a modality has no candidate (the study's series are listed).
        SeriesIdentificationError: an override names no series of the study, or one series is given twice.
    """
    overrides = {Modality(m): uid for m, uid in (overrides or {}).items()}
    chosen = {m: _find(series, m, uid) for m, uid in overrides.items()}
    taken = [c.series_uid for c in chosen.values()]
    if len(set(taken)) != len(taken):
        raise SeriesIdentificationError(f"the same series is given for two modalities: {overrides}.")
    candidates: dict[Modality, list[SeriesInfo]] = {m: [] for m in MODALITY_ORDER if m not in chosen}
    for info in series:
        modality = classify_series(info).modality
        if modality in candidates and info.series_uid not in taken:
            candidates[modality].append(info)
    ambiguous, missing = {}, []
    for modality, found in candidates.items():
        best = [i for i in found if _rank(i) == min(map(_rank, found))] if found else []
        if len(best) == 1:
            chosen[modality] = best[0]
        elif best:
            ambiguous[modality] = best
        else:
            missing.append(modality)
    if ambiguous:
        lines = [f"{m.title}: {len(c)} candidates: {_listing(c)}" for m, c in ambiguous.items()]
        how = " ".join(f"--{m.value} SERIES_UID" for m in ambiguous)
        raise AmbiguousSeriesError(
            "the study's series are ambiguous. " + " | ".join(lines) + f". Choose with {how}.", ambiguous
        )
    if missing:
        names = ", ".join(m.title for m in missing)
        raise MissingSeriesError(
            f"no {names} series found in the study. Its series: {_listing(series)}. "
            f"Name it with {' '.join(f'--{m.value} SERIES_UID' for m in missing)} if one of them is it.",
            missing,
        )
    return {m: chosen[m] for m in MODALITY_ORDER}


def choice_table(series: Sequence[SeriesInfo], chosen: Mapping[Modality, SeriesInfo] | None = None) -> str:
    """A plain-text table of the study's series: number, description, 2D/3D, TE/TR/TI, contrast, instances, what
    it was classified as and why, and which modality it was chosen for (``->``)."""
    chosen_by_uid = {info.series_uid: m for m, info in (chosen or {}).items()}
    header = ("#", "description", "acq", "TE/TR/TI ms", "agent", "n", "classified", "chosen", "series UID / reason")
    rows = [header]
    ordered = sorted(series, key=lambda i: (i.series_number is None, i.series_number or 0, i.series_uid))
    for info in ordered:
        result = classify_series(info)
        times = "/".join("-" if v is None else f"{v:g}" for v in (info.echo_time, info.repetition_time))
        times += f"/{info.inversion_time:g}" if info.inversion_time else ""
        pick = chosen_by_uid.get(info.series_uid)
        rows.append(
            (
                "" if info.series_number is None else str(info.series_number),
                info.description[:32],
                info.acquisition_type or "-",
                times,
                info.contrast_agent[:12] or "-",
                str(info.n_instances),
                result.kind + (f" ({result.by})" if result.by else ""),
                f"-> {pick.title}" if pick else "",
                info.series_uid if pick else "; ".join(result.reasons)[:70],
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
