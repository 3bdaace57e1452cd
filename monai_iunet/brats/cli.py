"""``monai-iunet evaluate``: score a folder of BraTS predictions against references (:mod:`.scoring`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from monai_iunet.brats.evaluation import NSD_TOLERANCE_MM
from monai_iunet.brats.labels import CONVENTIONS

__all__ = ["add_evaluate_parser", "run_evaluate"]


def run_evaluate(args: argparse.Namespace) -> int:
    """Score ``args.pred`` against ``args.ref``, write the per-case CSV and its summary, print the table."""
    from monai_iunet.brats.scoring import SUMMARY_COLUMNS, evaluate_folders, format_summary, summarize, write_csv

    rows = evaluate_folders(args.pred, args.ref, args.convention, nsd_tolerance=args.nsd_tolerance)
    output = write_csv(rows, args.output)
    summary = summarize(rows)
    summary_path = output.with_name(f"{output.stem}_summary.csv")
    write_csv(summary, summary_path, columns=SUMMARY_COLUMNS)
    print(f"{len(rows) // 3} case(s), {args.convention} labels; mean ± sd (median) per region:")
    print(format_summary(summary))
    print(f"per-case metrics: {output}\nsummary: {summary_path}")
    return 0


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``evaluate`` to the ``monai-iunet`` subparsers and return its parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score predicted BraTS label maps against references (Dice, HD95, NSD, lesion-wise)",
        description="Score every reference label map under --ref against the prediction of the same case under "
        "--pred (<case>.nii.gz, <case>_seg.nii.gz or <case>-seg.nii.gz; BraTS case folders work) on ET, TC and WT: "
        "Dice, sensitivity, specificity, HD95 (mm), NSD, BraTS 2023 lesion-wise Dice and HD95, lesion counts. "
        "Writes one CSV row per case and region, a <output>_summary.csv and prints the table.",
    )
    parser.add_argument("--pred", required=True, help="folder of predicted label maps")
    parser.add_argument("--ref", required=True, help="folder of reference label maps")
    parser.add_argument(
        "--convention", required=True, choices=tuple(CONVENTIONS), help="label values of both: 1/2/4, 1/2/3 or MSD"
    )
    parser.add_argument("--output", type=Path, default=Path("metrics.csv"), help="per-case CSV (default: metrics.csv)")
    parser.add_argument(
        "--nsd-tolerance",
        type=float,
        default=NSD_TOLERANCE_MM,
        metavar="MM",
        help=f"normalised surface Dice tolerance in mm (default: {NSD_TOLERANCE_MM})",
    )
    parser.set_defaults(func=run_evaluate)
    return parser
