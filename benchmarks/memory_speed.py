"""Peak memory and step time of one IUNet training step: memory-efficient engine vs ordinary autograd vs memcnn.

Each configuration runs in a fresh process. Memory is the growth of peak RSS over one training step (forward,
loss, backward, Adam step) on CPU, measured with ``MALLOC_MMAP_THRESHOLD_=65536`` so that RSS follows live
memory instead of glibc's free lists; on GPU it is ``torch.cuda.max_memory_allocated``. Time is the median of
``--steps`` steps after one warm-up step, measured in a separate process without the malloc setting.

Usage::

    python -m benchmarks.memory_speed                 # 64^3, blocks 2 and 8, all engines
    python -m benchmarks.memory_speed --size 96 --channels 32 64 128 256 --blocks 2
"""

from __future__ import annotations

import argparse
import json

from ._measure import measure_peak, measure_time, run_child

VARIANTS = {
    "memory-efficient": dict(memory_efficient=True, engine="default"),
    "ordinary autograd": dict(memory_efficient=False),
    "memcnn": dict(memory_efficient=True, engine="memcnn"),
}


def run_one(args: argparse.Namespace) -> dict:
    """Run in the child process: build the net, do the steps, return the measurements."""
    import torch

    from monai_iunet import IUNet

    torch.manual_seed(0)
    device = torch.device(args.device)
    net = IUNet(3, 4, 3, channels=args.channels, blocks=args.blocks_per_level, **VARIANTS[args.variant]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(1, 4, *(args.size,) * 3, device=device)
    target = (torch.rand(1, 3, *(args.size,) * 3, device=device) > 0.5).float()
    params = sum(p.numel() for p in net.parameters())

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), target)
        loss.backward()
        opt.step()

    result = {"params": params}
    if args.measure == "memory":
        state_bytes = params * 4 * 3  # gradient + two Adam moments, allocated during the first step
        result.update(peak_bytes=measure_peak(step, args.device), state_bytes=state_bytes)
    else:
        result["step_s"] = measure_time(step, steps=args.steps, warmup=1, device=args.device)
    return result


def measure(variant: str, blocks: int, args: argparse.Namespace, what: str) -> dict:
    args_ = [
        "--child",
        "--variant",
        variant,
        "--measure",
        what,
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--device",
        args.device,
        "--blocks",
        str(blocks),
        "--channels",
        *map(str, args.channels),
    ]
    return run_child("benchmarks.memory_speed", args_, what)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-time", action="store_true", help="measure memory only")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="memory-efficient", help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.blocks_per_level = args.blocks[0]
        print(json.dumps(run_one(args)))
        return

    mib = 2**20
    shape = f"{args.size}^3, batch 1, float32, {args.device}"
    print(f"3D IUNet 4 -> 3 channels, channels {tuple(args.channels)}, {shape}\n")
    print("| blocks/level | variant | params | peak MiB | peak - param/grad/Adam MiB | step s |")
    print("|---|---|---|---|---|---|")
    for blocks in args.blocks:
        for variant in args.variants:
            mem = measure(variant, blocks, args, "memory")
            timing = {} if args.no_time else measure(variant, blocks, args, "time")
            if "error" in mem:
                print(f"| {blocks} | {variant} | - | failed: {mem['error']} | | |")
                continue
            step = f"{timing['step_s']:.2f}" if "step_s" in timing else "-"
            print(
                f"| {blocks} | {variant} | {mem['params']:,} | {mem['peak_bytes'] / mib:.0f} | "
                f"{(mem['peak_bytes'] - mem['state_bytes']) / mib:.0f} | {step} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
