"""``monai-iunet plan {estimate,fit}``: the planner on the command line."""

from __future__ import annotations

import argparse

import torch

from monai_iunet.errors import UserInputError
from monai_iunet.networks.nets import IUNet
from monai_iunet.planner.estimate import explain_memory
from monai_iunet.planner.fit import fit_channels
from monai_iunet.planner.units import GiB, parse_bytes

__all__ = ["add_plan_parser"]


def _run_plan(args: argparse.Namespace) -> int:
    shape = tuple(args.shape)
    if len(shape) < 3:
        raise UserInputError(f"--shape takes N C and the spatial size, e.g. 1 4 96 96 96; got {shape}.")
    common = dict(blocks=args.blocks, block_depth=args.block_depth, memory_efficient=not args.no_memory_efficient)
    if args.action == "estimate":
        try:
            with torch.device("meta"):
                net = IUNet(len(shape) - 2, shape[1], args.out_channels, channels=tuple(args.channels), **common)
        except ValueError as e:  # the network's own check of the arguments
            raise UserInputError(str(e)) from e
        est = explain_memory(net, shape, first_step=args.first_step, device=args.device)
        print(f"IUNet channels={tuple(args.channels)}, input {shape}, device {args.device}")
        print(est)
        if args.budget is not None:
            budget = parse_bytes(args.budget)
            verdict = "fits" if est.total <= budget else "does NOT fit"
            print(f"{verdict} in {budget / GiB:.2f} GiB")
        return 0
    if args.budget is None:
        raise UserInputError("fit needs --budget, e.g. --budget 8GiB.")
    channels = fit_channels(
        args.budget,
        shape,
        args.out_channels,
        levels=args.levels,
        first_step=args.first_step,
        device=args.device,
        max_width=args.max_width,
        **common,
    )
    with torch.device("meta"):
        net = IUNet(len(shape) - 2, shape[1], args.out_channels, channels=channels, **common)
    est = explain_memory(net, shape, first_step=args.first_step, device=args.device)
    params = sum(p.numel() for p in net.parameters())
    print(f"widest IUNet for input {shape} within {parse_bytes(args.budget) / GiB:.2f} GiB on {args.device}:")
    print(f"  channels={channels} ({params:,} parameters)")
    print(est)
    return 0


def add_plan_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the planner's arguments to ``parser`` (``monai-iunet plan``)."""
    parser.add_argument("action", choices=("estimate", "fit"), help="predict one network's peak, or find the widest")
    parser.add_argument("--shape", type=int, nargs="+", required=True, metavar="N", help="input shape N C D H W")
    parser.add_argument("--budget", help="memory budget, e.g. 8GiB (fit; optional for estimate)")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128], help="estimate: channels")
    parser.add_argument("--levels", type=int, default=4, help="fit: resolution levels (default: 4)")
    parser.add_argument("--max-width", type=int, default=1024, help="fit: widest first level tried (default: 1024)")
    parser.add_argument("--out-channels", type=int, default=3, help="output channels (default: 3)")
    parser.add_argument("--blocks", type=int, default=2, help="coupling blocks per level and side (default: 2)")
    parser.add_argument("--block-depth", type=int, default=1, help="conv units per block (default: 1)")
    parser.add_argument("--no-memory-efficient", action="store_true", help="ordinary autograd instead")
    parser.add_argument("--first-step", action="store_true", help="a fresh optimizer's first step")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.set_defaults(func=_run_plan)
    return parser


def add_plan_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``plan`` subcommand on an ``argparse`` subparsers object (``monai-iunet plan``)."""
    parser = subparsers.add_parser(
        "plan",
        help="predict the training memory of an IUNet, or the widest that fits a budget",
        description="Predict the peak memory of one IUNet training step (Adam, Dice loss) without running it, or "
        "find the widest IUNet whose step fits a memory budget.",
    )
    return add_plan_arguments(parser)
