"""Does ``torch.compile`` keep the IUNet memory-efficient? Peak memory, gradients and step time, compiled vs eager.

Under ``torch.compile`` the memory-efficient engine is an opaque region that runs eagerly (one graph break on each
side of the core), so the compiled network should need the memory of the eager memory-efficient one, not that of
compiled ordinary autograd. Variants: eager and compiled (``inductor``, ``aot_eager``), memory-efficient and
ordinary autograd (``memory_efficient=False``).

Each measurement runs in a fresh process. Memory: growth of peak RSS over the second training step (forward,
loss, backward, Adam step; the first step compiles), with ``MALLOC_MMAP_THRESHOLD_=65536`` so that RSS follows
live memory; the gradients are re-allocated in the measured step, the Adam moments already exist. The same
process then compares the compiled gradients with the eager ones (same weights, same input, float32) and reports
the first step's time (compilation included). Step time (``--time-variants``): median of ``--steps`` steps after
the compiling step, in a process without the malloc setting, alternating with steps of the eager memory-efficient
network in the same process so that the ratio holds on a busy machine.

Usage::

    nice -n 10 python -m benchmarks.compile_memory                     # 48^3, width 16, blocks 4 (CPU)
    nice -n 10 python -m benchmarks.compile_memory --size 32 --blocks 2 --variants eager-me aot_eager-me
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ._measure import measure_peak, run_child

RESULTS = Path(__file__).parent / "results" / "compile_cpu.jsonl"

#: variant -> (compile backend or None for eager, memory_efficient)
VARIANTS = {
    "eager-me": (None, True),
    "inductor-me": ("inductor", True),
    "aot_eager-me": ("aot_eager", True),
    "eager-ordinary": (None, False),
    "inductor-ordinary": ("inductor", False),
    "aot_eager-ordinary": ("aot_eager", False),
}


def run_one(args: argparse.Namespace) -> dict:
    """Run in the child process: build the net, compile it if asked, measure; return the measurements."""
    import torch

    from monai_iunet import IUNet

    torch.manual_seed(0)
    backend, memory_efficient = VARIANTS[args.variant]
    channels = tuple(args.width * 2**i for i in range(4))
    net = IUNet(3, 4, 3, channels=channels, blocks=args.blocks, memory_efficient=memory_efficient)
    with torch.no_grad():  # away from the identity initialisation, so that gradients are not trivial
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model = net if backend is None else torch.compile(net, backend=backend)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(1, 4, *(args.size,) * 3)
    target = (torch.rand(1, 3, *(args.size,) * 3) > 0.5).float()

    step = _step_fn(model, opt, x, target)

    def grads(fn) -> torch.Tensor:
        net.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(fn(x), target).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()])

    result: dict = {}
    t0 = time.perf_counter()
    step()  # compiles
    result["first_step_s"] = time.perf_counter() - t0
    if args.measure == "memory":
        result["peak_bytes"] = measure_peak(step)
        if backend is not None:
            compiled, eager = grads(model), grads(net)
            result["grad_rel_error"] = ((compiled - eager).norm() / eager.norm()).item()
        return result
    # compiled and eager steps alternate in one process, so that a busy machine slows both alike
    eager_step = _step_fn(net, opt, x, target)
    eager_step()
    times: dict[str, list[float]] = {"step_s": [], "eager_step_s": []}
    for _ in range(args.steps):
        for key, fn in (("step_s", step), ("eager_step_s", eager_step)):
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    for key, values in times.items():
        result[key] = sorted(values)[len(values) // 2]
    return result


def _step_fn(model, opt, x, target):
    import torch

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), target).backward()
        opt.step()

    return step


def measure(variant: str, args: argparse.Namespace, what: str) -> dict:
    args_ = ["--child", "--variant", variant, "--measure", what, "--size", str(args.size)]
    args_ += ["--width", str(args.width), "--blocks", str(args.blocks), "--steps", str(args.steps)]
    return run_child("benchmarks.compile_memory", args_, what, timeout=args.timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--width", type=int, default=16, help="channels at full resolution (4 levels: w..8w)")
    parser.add_argument("--blocks", type=int, default=4, help="coupling blocks per level and side")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--time-variants", nargs="*", default=["inductor-me"], help="compiled variants timed against eager ME"
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="eager-me", help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_one(args)
        with open(RESULTS, "a") as f:  # raw numbers, one JSON object per measurement
            f.write(json.dumps({"variant": args.variant, "measure": args.measure, **result}) + "\n")
        print(json.dumps(result))
        return
    RESULTS.write_text("")

    mib = 2**20
    print(f"IUNet 4 -> 3, width {args.width}, blocks {args.blocks}, {args.size}^3, batch 1, float32, CPU\n")
    print("| variant | peak MiB | x eager ME | grad rel. error vs eager | first step s | step s (eager ME, same run) |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = {}
    for variant in args.variants:
        mem = measure(variant, args, "memory")
        timing = measure(variant, args, "time") if variant in args.time_variants else {}
        rows[variant] = (mem, timing)
        base = rows.get("eager-me", ({}, {}))[0].get("peak_bytes")
        if "error" in mem or "error" in timing:
            print(f"| {variant} | failed: {mem.get('error') or timing.get('error')} | | | | |", flush=True)
            continue
        ratio = f"{mem['peak_bytes'] / base:.2f}" if base else "-"
        error = f"{mem['grad_rel_error']:.1e}" if "grad_rel_error" in mem else "-"
        step = f"{timing['step_s']:.2f}" if "step_s" in timing else "-"
        if "eager_step_s" in timing:
            step += f" ({timing['eager_step_s']:.2f})"
        print(
            f"| {variant} | {mem['peak_bytes'] / mib:.0f} | {ratio} | {error} | {mem['first_step_s']:.1f} | {step} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
