"""``monai-iunet segment`` and ``monai-iunet generate-exports`` (added to the console command by ``monai_iunet.cli``).

Bad inputs end with one line ``monai-iunet segment: error: ...`` naming the input, exit status 2, no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

__all__ = ["add_clinical_parsers"]


def _segment(args: argparse.Namespace) -> int:
    from monai_iunet.clinical.io import ClinicalInputError
    from monai_iunet.clinical.pipeline import DEFAULT_BUNDLE, segment

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # it logs every copied DICOM module at INFO
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
        )
    except ClinicalInputError as e:
        print(f"monai-iunet segment: error: {e}", file=sys.stderr)
        return 2
    volumes = ", ".join(f"{k} {v:.1f} mL" for k, v in report["volumes_ml"].items())
    print(f"wrote the segmentation to {args.output} ({volumes}; {report['timings']['total_s']:.1f} s)")
    return 0


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
        help="segment a brain tumour from four unregistered MR series (DICOM folders or image files)",
        description="Read T1, T1ce, T2 and FLAIR (DICOM series folders or NIfTI/NRRD/MHA files), register them rigidly "
        "to the reference series, run the bundle's network and write segmentation.nii.gz, segmentation.dcm "
        "(DICOM-SEG, when the reference is DICOM), report.json and overview.png on the reference series' grid. "
        "The inputs must be skull-stripped, or give --brain-mask.",
    )
    for name in ("t1", "t1ce", "t2", "flair"):
        seg.add_argument(f"--{name}", required=True, metavar="PATH", help=f"{name.upper()} series: folder or file")
    seg.add_argument("--output", required=True, metavar="DIR", help="output folder (appears only when complete)")
    seg.add_argument("--bundle", default=None, help="MONAI bundle with trained weights (default: bundles/brats_iunet)")
    seg.add_argument("--reference", default="t1ce", choices=("t1", "t1ce", "t2", "flair"), help="reference series")
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
