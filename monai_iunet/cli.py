"""The ``monai-iunet`` console command.

Subcommands:

- ``generate-brats OUT``: write a synthetic BraTS-like dataset (BraTS 2018–2021 folder layout) into ``OUT``.
- ``run ...``: run a bundle, with the arguments of ``python -m monai.bundle run`` (:mod:`monai_iunet.bundle.run`).
- ``evaluate --pred DIR --ref DIR --convention C``: score predicted BraTS label maps (:mod:`monai_iunet.brats.cli`).
- ``segment ...`` / ``generate-exports OUT``: scanner series to a segmentation, synthetic scanner exports
  (:mod:`monai_iunet.clinical`; they need the ``clinical`` extra).
- ``plan ...``, ``bundle list`` / ``bundle copy NAME DIR``: memory planning, the bundles shipped with the package.

Every command runs through :func:`monai_iunet.errors.exit_status`: a
:class:`~monai_iunet.errors.UserInputError` ends it with one line ``monai-iunet <command>: error: ...`` and exit
status 2, so a subcommand only raises those. Nothing optional is imported before a command needs it, so that every
command (and ``--help``) works with the core install; one that needs an extra says which
(:func:`monai_iunet.errors.needs_extra`).

Example::

    monai-iunet generate-brats data/synthetic_brats --num-cases 20 --size 64 64 64
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from monai_iunet.errors import UserInputError, exit_status

__all__ = ["build_parser", "main"]


def _generate_brats(args: argparse.Namespace) -> int:
    from monai_iunet.data.synthetic_brats import generate_synthetic_brats

    if len(args.size) not in (1, 3) or len(args.spacing) not in (1, 3):
        raise UserInputError("--size and --spacing take one or three values.")
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)
    spacing = args.spacing[0] if len(args.spacing) == 1 else tuple(args.spacing)
    case_dirs = generate_synthetic_brats(
        args.out,
        num_cases=args.num_cases,
        spatial_size=size,
        spacing=spacing,
        seed=args.seed,
        num_unlabeled=args.num_unlabeled,
        prefix=args.prefix,
        layout=args.layout,
        anatomy=args.anatomy,
    )
    print(f"wrote {len(case_dirs)} synthetic BraTS cases to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``monai-iunet``: one subparser per subcommand, each with its ``func``."""
    from monai_iunet.brats.layouts import BRATS2021_LAYOUT, LAYOUTS

    parser = argparse.ArgumentParser(prog="monai-iunet", description="Invertible U-Nets (iUNets) for MONAI.")
    subparsers = parser.add_subparsers(dest="command", required=True)

    brats = subparsers.add_parser(
        "generate-brats",
        help="write a synthetic BraTS-like dataset",
        description="Write synthetic BraTS-like cases (FLAIR, T1, T1ce, T2 and tumour labels), by default in the BraTS "
        "folder layout <case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz with labels 1/2/4.",
    )
    brats.add_argument("out", help="output folder (created if missing)")
    brats.add_argument("--num-cases", type=int, default=10, help="number of cases (default: 10)")
    brats.add_argument(
        "--size", type=int, nargs="+", default=[64], metavar="N", help="volume size, one or three values (default: 64)"
    )
    brats.add_argument(
        "--spacing", type=float, nargs="+", default=[1.0], metavar="MM", help="voxel size in mm (default: 1.0)"
    )
    brats.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    brats.add_argument(
        "--num-unlabeled", type=int, default=0, help="how many of the cases get no label file (default: 0)"
    )
    brats.add_argument("--prefix", default="SynthBraTS", help="case-name prefix (default: SynthBraTS)")
    brats.add_argument(
        "--layout",
        choices=tuple(LAYOUTS),
        default=BRATS2021_LAYOUT.name,
        help="folder layout: BraTS 2018-2021, BraTS 2023 or Decathlon Task01 (default: brats2021)",
    )
    brats.add_argument(
        "--anatomy",
        choices=("ellipsoid", "mni152"),
        default="ellipsoid",
        help="brain model: lobed ellipsoids, or the MNI152 anatomy of nilearn's templates at BraTS's 240x240x155 mm "
        "field of view (use --size 240 240 155, or e.g. --size 120 120 78 --spacing 2 2 1.987) (default: ellipsoid)",
    )
    brats.set_defaults(func=_generate_brats)
    _add_plan_parser(subparsers)
    _add_run_parser(subparsers)
    _add_bundle_parser(subparsers)
    _add_clinical_parsers(subparsers)
    _add_evaluate_parser(subparsers)
    return parser


def _add_evaluate_parser(subparsers) -> None:
    """``evaluate``: score predicted BraTS label maps against references (:mod:`monai_iunet.brats.cli`)."""
    from monai_iunet.brats.cli import add_evaluate_parser

    add_evaluate_parser(subparsers)


def _add_clinical_parsers(subparsers) -> None:
    """``segment`` and ``generate-exports``: scanner series to a segmentation (:mod:`monai_iunet.clinical`)."""
    from monai_iunet.clinical.cli import add_clinical_parsers

    add_clinical_parsers(subparsers)


def _add_plan_parser(subparsers) -> None:
    """``plan``: predict an IUNet's training memory or the widest that fits a budget (:mod:`monai_iunet.planner`)."""
    from monai_iunet.planner.cli import add_plan_parser

    add_plan_parser(subparsers)


def _run(args: argparse.Namespace) -> int:
    from monai_iunet.bundle.run import run_bundle

    return run_bundle(args.args)


def _add_run_parser(subparsers) -> None:
    """``run``: MONAI's ``monai.bundle run`` with our errors in a line (:mod:`monai_iunet.bundle.run`)."""
    # every argument goes to MONAI's runner unchanged: no option of ours ("\0" prefix), --help included
    run = subparsers.add_parser(
        "run",
        help="run a bundle (same ids and overrides as python -m monai.bundle run)",
        add_help=False,
        prefix_chars="\0",
    )
    run.add_argument("args", nargs=argparse.REMAINDER)
    run.set_defaults(func=_run)


def _bundle(args: argparse.Namespace) -> int:
    from monai_iunet.bundle.shipped import copy_bundle, shipped_bundles

    if args.action == "list":
        for name, folder in shipped_bundles().items():
            print(f"{name}\t{folder}")
        return 0
    if not args.name or not args.dir:
        raise UserInputError("bundle copy takes a bundle NAME and a destination DIR (see: monai-iunet bundle list).")
    print(f"copied {args.name} to {copy_bundle(args.name, args.dir, overwrite=args.overwrite)}")
    return 0


def _add_bundle_parser(subparsers) -> None:
    """``bundle list`` / ``bundle copy NAME DIR``: the bundles shipped with the package (:mod:`.bundle.shipped`)."""
    bundle = subparsers.add_parser(
        "bundle",
        help="list the shipped bundles, or copy one into a folder",
        description="The MONAI bundles installed with monai-iunet: 'list' them, or 'copy NAME DIR' to get a bundle "
        "folder to run with python -m monai.bundle run (no clone of the repository needed).",
    )
    bundle.add_argument("action", choices=("list", "copy"))
    bundle.add_argument("name", nargs="?", help="bundle name, e.g. brats_iunet")
    bundle.add_argument("dir", nargs="?", help="destination folder (must not exist)")
    bundle.add_argument("--overwrite", action="store_true", help="copy into an existing folder")
    bundle.set_defaults(func=_bundle)


def _announce_run(argv: Sequence[str]) -> None:
    """Say on stderr what ``monai-iunet run`` does first: importing PyTorch and MONAI takes seconds to a minute,
    before the bundle's first log line; said before the parser is built, which imports them too."""
    if "--help" in argv or "-h" in argv:
        return
    target = argv[0] if argv and not argv[0].startswith("-") else "run"  # MONAI's default run id
    print(
        f"monai-iunet run {target}: loading PyTorch, MONAI and the bundle's configs (up to a minute on a busy "
        "machine)...",
        file=sys.stderr,
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``monai-iunet`` with ``argv`` (default: the command line); returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:
        _announce_run(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    return exit_status(args.func, args, prog=f"{parser.prog} {args.command}")


if __name__ == "__main__":
    raise SystemExit(main())
