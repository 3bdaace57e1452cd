"""The PACS side of the command line: ``monai-iunet segment --dicomweb URL --study-uid UID [--store]`` and
``monai-iunet cohort`` (added by :mod:`monai_iunet.clinical.cli`).

Credentials are read from ``$MONAI_IUNET_DICOMWEB_TOKEN`` or ``--auth-file`` (a path, never the secret itself).
"""

from __future__ import annotations

import argparse
import logging

__all__ = ["add_cohort_parser", "add_dicomweb_arguments", "segment_dicomweb"]


def _add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    from monai_iunet.clinical.dicomweb import TOKEN_ENV

    parser.add_argument(
        "--auth-file",
        metavar="PATH",
        help=f"file with the PACS credentials: a bearer token, or 'Header: value' lines (default: ${TOKEN_ENV})",
    )
    parser.add_argument("--ca-bundle", metavar="PATH", help="CA certificates to verify the server's TLS with")


def _connect(args: argparse.Namespace):
    from monai_iunet.clinical.dicomweb import connect

    return connect(args.dicomweb, auth_file=args.auth_file, verify=args.ca_bundle or True)


def add_dicomweb_arguments(seg: argparse.ArgumentParser) -> None:
    """Add ``--dicomweb``, ``--study-uid``, ``--store`` and the connection options to the ``segment`` parser."""
    group = seg.add_argument_group(
        "a study on a PACS (DICOMweb)",
        "With --dicomweb the four series are found in the study (give --t1ce SERIES_UID etc. to choose one) and "
        "fetched by WADO-RS; --store sends the DICOM-SEG and the volumes SR back into the study by STOW-RS.",
    )
    group.add_argument("--dicomweb", metavar="URL", help="DICOMweb root of the PACS (e.g. http://host:8042/dicom-web)")
    group.add_argument("--study-uid", metavar="UID", help="StudyInstanceUID of the study to segment")
    group.add_argument("--store", action="store_true", help="store the SEG and SR into the study (STOW-RS)")
    _add_connection_arguments(group)


def _overrides(args: argparse.Namespace) -> dict:
    from monai_iunet.brats import Modality

    return {m: getattr(args, m.value) for m in Modality if getattr(args, m.value, None)}


def _skull_strip(args: argparse.Namespace) -> dict:
    """``skull_strip`` for :func:`~monai_iunet.clinical.segment` when ``--skull-strip`` was given (else its default)."""
    return {"skull_strip": args.skull_strip} if getattr(args, "skull_strip", None) else {}


def segment_dicomweb(args: argparse.Namespace) -> int:
    """``segment --dicomweb``: segment one PACS study, optionally storing the results back. Exit status 0."""
    from monai_iunet.clinical.dicomweb import DICOMwebStudy
    from monai_iunet.clinical.io import ClinicalInputError
    from monai_iunet.clinical.pipeline import DEFAULT_BUNDLE
    from monai_iunet.clinical.study_sources import PacsStudy, segment_study_source

    if not args.study_uid:
        raise ClinicalInputError("--dicomweb needs --study-uid UID (the study to segment).")
    source = PacsStudy(DICOMwebStudy(_connect(args), args.study_uid))
    report = segment_study_source(
        source,
        args.output,
        store=args.store,
        overwrite=args.overwrite,
        overrides=_overrides(args),
        bundle=args.bundle or DEFAULT_BUNDLE,
        reference=args.reference,
        device=args.device,
        n4=args.n4,
        accept_failed_registration=args.accept_failed_registration,
        **_skull_strip(args),
    )
    volumes = ", ".join(f"{k} {v:.1f} mL" for k, v in report["volumes_ml"].items())
    stored = f"; stored version {report['pacs']['version']} into the study" if "pacs" in report else ""
    print(f"wrote the segmentation to {args.output} ({volumes}{stored})")
    return 0


def _cohort(args: argparse.Namespace) -> int:
    from monai_iunet.clinical.cohort import run_cohort, studies_from_args
    from monai_iunet.clinical.pipeline import DEFAULT_BUNDLE

    logging.getLogger("highdicom").setLevel(logging.WARNING)
    sources = studies_from_args(
        dicomweb=_connect(args) if args.dicomweb else None,
        query=args.query,
        uid_csv=args.uids,
        studies_dir=args.studies,
    )
    summary = run_cohort(
        sources,
        args.output,
        store=args.store,
        overwrite=args.overwrite,
        retry_failed=args.retry_failed,
        bundle=args.bundle or DEFAULT_BUNDLE,
        device=args.device,
        n4=args.n4,
        **_skull_strip(args),
    )
    return 0 if summary["failed"] == 0 else 1


def add_cohort_parser(subparsers) -> None:
    """Add ``cohort`` to the subparsers of ``monai-iunet``."""
    cohort = subparsers.add_parser(
        "cohort",
        help="segment every study of a cohort (PACS query, UID list or folder of studies) into one table",
        description="Segment each study (its four series found automatically) into OUT/<study>/, one folder per "
        "study that appears only when complete, and write OUT/cohort.csv (volumes, series chosen, registration, "
        "warnings, status, time, change from the patient's previous study). A failing study is recorded with its "
        "reason and the others go on; run the same command again to finish an interrupted cohort (finished "
        "studies are skipped). Exit status 1 when some study failed.",
    )
    where = cohort.add_mutually_exclusive_group(required=True)
    where.add_argument("--dicomweb", metavar="URL", help="DICOMweb root of the PACS")
    where.add_argument("--studies", metavar="DIR", help="a folder of study folders (DICOM files)")
    which = cohort.add_mutually_exclusive_group()
    which.add_argument(
        "--query", nargs="+", metavar="KEYWORD=VALUE", help="QIDO-RS study filters, e.g. 'StudyDescription=*glioma*'"
    )
    which.add_argument("--uids", metavar="CSV", help="CSV file with a StudyInstanceUID column (or one UID a line)")
    cohort.add_argument("--output", required=True, metavar="OUT", help="cohort folder (resumable)")
    cohort.add_argument("--store", action="store_true", help="store each SEG and SR into its study (STOW-RS)")
    cohort.add_argument("--overwrite", action="store_true", help="store a new version where results already exist")
    cohort.add_argument("--retry-failed", action="store_true", help="redo the studies that failed in an earlier run")
    cohort.add_argument("--bundle", default=None, help="MONAI bundle with trained weights (default: brats_iunet)")
    cohort.add_argument("--device", default=None, help="cpu or cuda (default: the bundle's choice)")
    cohort.add_argument("--n4", action="store_true", help="N4 bias-field correction before registration")
    cohort.add_argument(
        "--skull-strip",
        default=None,
        choices=("auto", "deepbet", "none"),
        help="brain extraction, as for segment (default: segment's, auto)",
    )
    _add_connection_arguments(cohort)
    cohort.set_defaults(func=_cohort)
