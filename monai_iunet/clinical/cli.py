"""``monai-iunet segment`` and ``monai-iunet generate-exports`` (added to the console command by ``monai_iunet.cli``).

Bad inputs end with one line ``monai-iunet segment: error: ...`` naming the input, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.clinical.pacs_cli import add_cohort_parser, add_dicomweb_arguments

__all__ = ["add_clinical_parsers"]


def _segment(args: argparse.Namespace) -> int:
    from monai_iunet.clinical.io import ClinicalInputError
    from monai_iunet.clinical.pacs_cli import segment_dicomweb
    from monai_iunet.clinical.pipeline import DEFAULT_BUNDLE, segment

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # it logs every copied DICOM module at INFO
    if args.study is not None:
        return _segment_study(args)
    if args.dicomweb:
        try:
            return segment_dicomweb(args)
        except ClinicalInputError as e:
            print(f"monai-iunet segment: error: {e}", file=sys.stderr)
            return 2
    missing = [f"--{m}" for m in MODALITY_ORDER if getattr(args, m) is None]
    if missing:
        print(
            f"monai-iunet segment: error: {', '.join(missing)} missing; give all four series, --study DIR, or "
            "--dicomweb URL --study-uid UID.",
            file=sys.stderr,
        )
        return 2
    try:
        report = segment(
            t1=args.t1,
            t1ce=args.t1ce,
            t2=args.t2,
            flair=args.flair,
            output=args.output,
            bundle=args.bundle or DEFAULT_BUNDLE,
            reference=args.reference,
            save_preprocessed=args.save_preprocessed,
            brain_mask=args.brain_mask,
            n4=args.n4,
            device=args.device,
            series_uids=args.series_uid,
            overwrite=args.overwrite,
            allow_mixed_studies=args.allow_mixed_studies,
            accept_failed_registration=args.accept_failed_registration,
            skull_strip=args.skull_strip,
        )
    except ClinicalInputError as e:
        print(f"monai-iunet segment: error: {e}", file=sys.stderr)
        return 2
    _print_summary(args.output, report)
    return 0


def _print_summary(output: str, report: dict) -> None:
    volumes = ", ".join(f"{k} {v:.1f} mL" for k, v in report["volumes_ml"].items())
    print(f"wrote the segmentation to {output} ({volumes}; {report['timings']['total_s']:.1f} s)")
    skull = report.get("skull_strip", {})
    if skull:
        print(f"brain extraction: {skull['method'] if skull['extract'] else 'none'} ({skull['reason']})")
    for name, why in report.get("not_written", {}).items():
        print(f"not written: {name}: {why}")


def _segment_study(args: argparse.Namespace) -> int:
    """``segment --study DIR``: identify the four series (``--t1ce SERIES_UID`` ... override), print the choice."""
    from monai_iunet.clinical.io import ClinicalInputError
    from monai_iunet.clinical.pipeline import DEFAULT_BUNDLE
    from monai_iunet.clinical.study import segment_study

    overrides = {m: getattr(args, m) for m in MODALITY_ORDER if getattr(args, m)}
    try:
        report = segment_study(
            args.study,
            args.output,
            overrides=overrides,
            show=print,
            bundle=args.bundle or DEFAULT_BUNDLE,
            reference=args.reference,
            save_preprocessed=args.save_preprocessed,
            brain_mask=args.brain_mask,
            n4=args.n4,
            device=args.device,
            overwrite=args.overwrite,
            allow_mixed_studies=args.allow_mixed_studies,
            accept_failed_registration=args.accept_failed_registration,
            skull_strip=args.skull_strip,
        )
    except ClinicalInputError as e:
        print(f"monai-iunet segment: error: {e}", file=sys.stderr)
        return 2
    _print_summary(args.output, report)
    return 0


def _add_study_arguments(seg: argparse.ArgumentParser) -> None:
    """``--study`` and ``--skull-strip`` of ``segment``."""
    seg.add_argument(
        "--study",
        metavar="DIR",
        help="a study folder as the scanner exported it: the four series are identified from DICOM tags and "
        "descriptions (the choice is printed; --t1/--t1ce/--t2/--flair SERIES_UID override it)",
    )
    seg.add_argument(
        "--skull-strip",
        default="auto",
        choices=("auto", "deepbet", "none"),
        help="brain extraction: auto (default: when the reference is not skull-stripped), deepbet, or none",
    )


def _generate_exports(args: argparse.Namespace) -> int:
    from monai_iunet.data.synthetic_exports import make_scanner_export

    if len(args.size) not in (1, 3):
        raise ValueError("--size takes one or three values.")
    result = make_scanner_export(
        args.out,
        spatial_size=args.size[0] if len(args.size) == 1 else tuple(args.size),
        seed=args.seed,
        motion_degrees=args.motion_degrees,
        motion_mm=args.motion_mm,
        formats=args.formats,
        patient_id=args.patient_id,
    )
    print(json.dumps({k: result[k] for k in ("dicom", "nifti", "truth")}, indent=2))
    return 0


def add_clinical_parsers(subparsers) -> None:
    """Add ``segment`` and ``generate-exports`` to the subparsers of ``monai-iunet``."""
    seg = subparsers.add_parser(
        "segment",
        help="segment a brain tumour from four unregistered MR series (DICOM folders or image files) or a study folder",
        description="Read T1, T1ce, T2 and FLAIR (DICOM series folders or NIfTI/NRRD/MHA files), register them rigidly "
        "to the reference series, run the bundle's network and write segmentation.nii.gz, segmentation.dcm "
        "(DICOM-SEG, when the reference is DICOM), report.json and overview.png on the reference series' grid. "
        "Or give --study DIR: the series are identified in the study folder. Whole-head series are brain-extracted "
        "(deepbet; --skull-strip).",
    )
    for name in MODALITY_ORDER:
        seg.add_argument(
            f"--{name}",
            metavar="PATH",
            help=f"{name.title} series: folder or file (with --study or --dicomweb: its SERIES_UID)",
        )
    _add_study_arguments(seg)
    seg.add_argument("--output", required=True, metavar="DIR", help="output folder (appears only when complete)")
    seg.add_argument("--bundle", default=None, help="MONAI bundle with trained weights (default: bundles/brats_iunet)")
    seg.add_argument(
        "--reference", default=str(Modality.T1CE), choices=[str(m) for m in MODALITY_ORDER], help="reference series"
    )
    seg.add_argument("--save-preprocessed", action="store_true", help="also write the registered modalities")
    seg.add_argument("--brain-mask", metavar="PATH", help="brain mask on the reference series' grid")
    seg.add_argument("--n4", action="store_true", help="N4 bias-field correction before registration")
    seg.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    seg.add_argument("--series-uid", nargs="+", default=[], metavar="UID", help="series to take from folders")
    seg.add_argument("--overwrite", action="store_true", help="replace results already in DIR")
    seg.add_argument("--allow-mixed-studies", action="store_true", help="go on when PatientID/StudyInstanceUID differ")
    seg.add_argument(
        "--accept-failed-registration", action="store_true", help="go on (with a warning) when a registration fails"
    )
    add_dicomweb_arguments(seg)
    seg.set_defaults(func=_segment)

    gen = subparsers.add_parser(
        "generate-exports",
        help="write a synthetic scanner export (four unregistered MR series) and its truth",
        description="Turn a synthetic BraTS-like case into a scanner export: DICOM series and NIfTI files of T1, T1ce, "
        "T2 and FLAIR with known rigid patient motion and their own grids, plus the aligned truth in OUT/truth.",
    )
    gen.add_argument("out", help="output folder")
    gen.add_argument("--size", type=int, nargs="+", default=[64], metavar="N", help="reference grid size (1 mm)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    gen.add_argument("--motion-degrees", type=float, default=6.0, help="typical rotation per axis (default: 6)")
    gen.add_argument("--motion-mm", type=float, default=6.0, help="typical translation per axis (default: 6)")
    gen.add_argument("--formats", nargs="+", choices=("dicom", "nifti"), default=["dicom", "nifti"])
    gen.add_argument("--patient-id", default="SYNTH-0001", help="PatientID of the series")
    gen.set_defaults(func=_generate_exports)

    add_cohort_parser(subparsers)
