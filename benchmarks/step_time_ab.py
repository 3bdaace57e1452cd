"""Step time of the IUNet (memory-efficient, ordinary autograd) and iunets 0.1, interleaved in one process.

Running the three models step by step in turn keeps their ratios fair on a shared machine. 64³, width 16,
channels (16, 32, 64, 128), batch 1, BCE loss, one Adam step; median of 3 steps after a warm-up.

Usage::

    OMP_NUM_THREADS=1 python -m benchmarks.step_time_ab --blocks 8
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from monai_iunet import IUNet


def build(blocks: int) -> dict[str, torch.nn.Module]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from iunets import iUNet

        core = iUNet(16, architecture=(blocks,) * 4, dim=3, memory_efficient=True, verbose=0)
    return {
        "memory-efficient": IUNet(3, 4, 3, channels=(16, 32, 64, 128), blocks=blocks),
        "ordinary autograd": IUNet(3, 4, 3, channels=(16, 32, 64, 128), blocks=blocks, memory_efficient=False),
        "iunets 0.1": torch.nn.Sequential(torch.nn.Conv3d(4, 16, 1), core, torch.nn.Conv3d(16, 3, 1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = (args.size,) * 3
    x, target = torch.randn(1, 4, *shape), (torch.rand(1, 3, *shape) > 0.5).float()
    nets = build(args.blocks)
    optimizers = {name: torch.optim.Adam(net.parameters(), 1e-4) for name, net in nets.items()}

    def step(name: str) -> float:
        start = time.perf_counter()
        optimizers[name].zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(nets[name](x), target).backward()
        optimizers[name].step()
        return time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in nets:  # warm-up
            step(name)
        times: dict[str, list[float]] = {name: [] for name in nets}
        for _ in range(args.steps):
            for name in nets:
                times[name].append(step(name))
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"blocks {args.blocks}, {args.size}^3, threads {torch.get_num_threads()}")
    for name, seconds in median.items():
        print(f"  {name}: {seconds:.2f} s")
    me = median["memory-efficient"]
    print(f"  ME / ordinary {me / median['ordinary autograd']:.2f}, ME / iunets {me / median['iunets 0.1']:.2f}")


if __name__ == "__main__":
    main()
