"""Is a compiled memory-efficient training step faster than an eager one? Step time, memory, gradients, profile.

``torch.compile(net)`` alone runs the invertible core eagerly (an opaque region, :mod:`monai_iunet.engine.opaque`);
``net.compile_inner()`` compiles the modules the blocks call inside it (the couplings' residual functions). This
benchmark compares, for the IUNet 4 -> 3 with channels ``(w, 2w, 4w, 8w)``:

- **eager**: the memory-efficient network as built;
- **compiled**: ``torch.compile(net.compile_inner(backend=...), backend=...)``, same weights.

Time: one process (no malloc setting), the compiled network's first forward and backward (compilation) is timed,
its gradients are compared with the eager ones (same weights, same input), then ``--pairs`` training steps
(forward, BCE loss, backward, Adam) of the two networks alternate, so that a busy machine slows both alike; the
ratio reported is the median over pairs of compiled / eager. The load average is recorded before and after.
``--profile`` adds one profiled step of each (``torch.profiler``, top operators by self CPU time). Memory: a fresh
process per network with ``MALLOC_MMAP_THRESHOLD_=65536``, growth of peak RSS over the second step.

Usage::

    python -m benchmarks.compile_speed --size 64 --width 16 --blocks 4 --pairs 5 --profile
    python -m benchmarks.compile_speed --render    # only rewrite the docs' tables from the saved results
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

from ._measure import measure_peak, run_child

RESULTS = Path(__file__).parent / "results" / "compile_speed_cpu.json"
MIB = 2**20


def _setup(args: argparse.Namespace):
    import torch

    from monai_iunet import IUNet

    torch.manual_seed(0)
    channels = tuple(args.width * 2**i for i in range(4))
    net = IUNet(3, 4, 3, channels=channels, blocks=args.blocks)
    with torch.no_grad():  # away from the identity initialisation, so that gradients are not trivial
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(1, 4, *(args.size,) * 3)
    target = (torch.rand(1, 3, *(args.size,) * 3) > 0.5).float()
    return net, x, target


def _compiled(net, backend: str):
    import torch

    return torch.compile(net.compile_inner(backend=backend), backend=backend)


def _step_fn(model, params, x, target):
    import torch

    opt = torch.optim.Adam(params, lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.binary_cross_entropy_with_logits(model(x), target).backward()
        opt.step()

    return step


def _grads(model, net, x, target):
    import torch

    net.zero_grad(set_to_none=True)
    torch.nn.functional.binary_cross_entropy_with_logits(model(x), target).backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def _top_ops(step, rows: int) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    top = [{"op": e.key[:60], "self_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in events[:rows]]
    return [{"op": "(all operators)", "self_s": total / 1e6, "calls": None}, *top]


def run_time(args: argparse.Namespace) -> dict:
    """In the child process: compile time, gradient error, interleaved step times, optional profile."""
    eager, x, target = _setup(args)
    other = copy.deepcopy(eager)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    model = _compiled(other, args.backend)
    g_compiled = _grads(model, other, x, target)  # compiles forward and backward
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    g_eager = _grads(eager, eager, x, target)
    eager_first_s = time.perf_counter() - t0
    error = ((g_compiled - g_eager).norm() / g_eager.norm()).item()
    steps = {"eager": _step_fn(eager, eager.parameters(), x, target)}
    steps["compiled"] = _step_fn(model, other.parameters(), x, target)
    for step in steps.values():
        step()  # Adam's moments exist from here on
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for i in range(args.pairs):
        order = ("eager", "compiled") if i % 2 == 0 else ("compiled", "eager")
        for key in order:
            t0 = time.perf_counter()
            steps[key]()
            times[key].append(time.perf_counter() - t0)
        print(f"pair {i}: eager {times['eager'][-1]:.2f} s, compiled {times['compiled'][-1]:.2f} s", flush=True)
    result = {
        "compile_s": compile_s,
        "eager_first_s": eager_first_s,
        "grad_rel_error": error,
        "times": times,
        "ratio": statistics.median(c / e for c, e in zip(times["compiled"], times["eager"])),
        "load_before": load_before,
        "load_after": os.getloadavg(),
    }
    if args.profile:
        result["profile"] = {key: _top_ops(step, args.profile_rows) for key, step in steps.items()}
    return result


def run_memory(args: argparse.Namespace) -> dict:
    """In the child process (``MALLOC_MMAP_THRESHOLD_=65536``): peak RSS growth of the second training step."""
    net, x, target = _setup(args)
    model = _compiled(net, args.backend) if args.variant == "compiled" else net
    step = _step_fn(model, net.parameters(), x, target)
    step()
    return {"peak_bytes": measure_peak(step)}


def table(results: dict) -> str:
    """The docs' table: step time, compile time, memory and gradient error, compiled vs eager."""
    t, m, c = results["time"], results["memory"], results["config"]
    eager, comp = statistics.median(t["times"]["eager"]), statistics.median(t["times"]["compiled"])
    pairs = list(zip(t["times"]["compiled"], t["times"]["eager"]))
    lines = [
        f"IUNet 4 -> 3, channels {c['channels']}, {c['blocks']} blocks per level and side, {c['size']}³, batch 1, "
        f"float32, CPU ({c['threads']} threads), backend `{c['backend']}`; {len(t['times']['eager'])} interleaved "
        f"pairs of training steps, load average {t['load_before'][0]:.1f} before, {t['load_after'][0]:.1f} after.",
        "",
        "| | eager memory-efficient | compiled (`compile_inner` + `torch.compile`) | compiled / eager |",
        "|---|---:|---:|---:|",
        f"| step time, median | {eager:.2f} s | {comp:.2f} s | {t['ratio']:.2f} (median of pair ratios) |",
        f"| step time, fastest | {min(t['times']['eager']):.2f} s | {min(t['times']['compiled']):.2f} s "
        f"| {min(t['times']['compiled']) / min(t['times']['eager']):.2f} |",
        f"| ratio of each pair | | | {', '.join(f'{c / e:.2f}' for c, e in pairs)} |",
        f"| peak memory of a step | {m['eager'] / MIB:.1f} MiB | {m['compiled'] / MIB:.1f} MiB "
        f"| {m['compiled'] / m['eager']:.2f} |",
        f"| first forward + backward | {t['eager_first_s']:.1f} s | {t['compile_s']:.1f} s (compiling) | |",
        f"| gradient vs eager (relative norm) | | {t['grad_rel_error']:.1e} | |",
    ]
    if "profile" in t:
        source = f" (from {t['profile_from']})" if "profile_from" in t else ""
        lines += ["", f"Top operators by self CPU time in one profiled step of each{source} (seconds, calls):", ""]
        lines += ["| eager | s | calls | compiled | s | calls |", "|---|---:|---:|---|---:|---:|"]
        for a, b in zip(t["profile"]["eager"], t["profile"]["compiled"]):
            lines.append(
                f"| `{a['op']}` | {a['self_s']:.2f} | {a['calls'] or ''} | `{b['op']}` | {b['self_s']:.2f} "
                f"| {b['calls'] or ''} |"
            )
    return "\n".join(lines)


def _child_args(args: argparse.Namespace, variant: str, measure: str) -> list[str]:
    out = ["--child", "--variant", variant, "--measure", measure, "--size", str(args.size), "--width", str(args.width)]
    out += ["--blocks", str(args.blocks), "--pairs", str(args.pairs), "--backend", args.backend]
    return out + (["--profile"] if args.profile else [])


def run(args: argparse.Namespace) -> None:
    import torch

    timing = run_child("benchmarks.compile_speed", _child_args(args, "both", "time"), "time", timeout=args.timeout)
    memory = {
        v: run_child("benchmarks.compile_speed", _child_args(args, v, "memory"), "memory", timeout=args.timeout)
        for v in ("eager", "compiled")
    }
    for result in (timing, *memory.values()):
        if "error" in result:
            raise RuntimeError(f"a measurement failed: {result['error']}")
    config = {"size": args.size, "channels": [args.width * 2**i for i in range(4)], "blocks": args.blocks}
    config |= {"backend": args.backend, "threads": torch.get_num_threads(), "torch": torch.__version__}
    results = {"config": config, "time": timing, "memory": {v: r["peak_bytes"] for v, r in memory.items()}}
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


def main() -> int:
    from .render import run_then_render

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16, help="channels at full resolution (4 levels: w..8w)")
    parser.add_argument("--blocks", type=int, default=4, help="coupling blocks per level and side")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved eager/compiled training steps")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--profile", action="store_true", help="profile one step of each")
    parser.add_argument("--profile-rows", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--render", action="store_true", help="only rewrite the docs' tables from saved results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="eager", help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="time", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_time(args) if args.measure == "time" else run_memory(args)))
        return 0
    return run_then_render(args, run)


if __name__ == "__main__":
    raise SystemExit(main())
