"""One training step of the IUNet against what users would pick instead: peak memory, step time, parameters.

The step is forward, ``monai.losses.DiceLoss(sigmoid=True)``, backward and an Adam step, batch 1, float32,
4 → 3 channels (BraTS). Every measurement runs in a fresh process (:mod:`benchmarks._measure`): memory is the growth of
peak RSS over the first step with ``MALLOC_MMAP_THRESHOLD_=65536`` (``torch.cuda.max_memory_allocated`` on GPU),
time the median of ``--steps`` steps after a warm-up step in another process without that setting. Next to each
IUNet measurement stands the prediction of :func:`monai_iunet.planner.estimate_memory`, made without running the
step. Results accumulate in ``benchmarks/results/compare_<device>.json``; ``docs/benchmarks.png`` is redrawn and the
tables of ``docs/benchmarks.md`` are rendered from them (:mod:`benchmarks.render`; the text is written by hand).

Usage::

    python -m benchmarks.compare --quick              # 64^3, width 16, all models: < 3 min on 2 idle CPU cores
    python -m benchmarks.compare                      # 64^3/96^3/128^3, widths 16 and 32, depth 2/4/8

``--quick`` measures memory and time in one process per model (memory first, with the mmap threshold set
through ``mallopt``; then it is raised to 32 MiB, glibc's own ceiling, and that first step serves as the
warm-up of the timed ones), prints its table and keeps it in ``results/quick_<device>.json``, leaving the full
results and ``docs/benchmarks.md`` alone.

More::

    python -m benchmarks.compare                      # 64^3/96^3/128^3, widths 16 and 32, depth 2/4/8
    python -m benchmarks.compare --sizes 96 --widths 32 --models iunet segresnet --no-time
    python -m benchmarks.compare --resume             # keep what is measured, add what is missing
    python -m benchmarks.compare --only-estimate      # recompute the planner's predictions only
    python -m benchmarks.compare --retime             # keep the memory figures, time every step again
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from ._measure import measure_peak, measure_time, run_child, set_mmap_threshold
from ._models import BLOCK_MODELS, IN_CHANNELS, MODELS, OUT_CHANNELS, build_model

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MiB = 2**20

#: (size, widths) of the full run's main table; 128^3 only at width 16 on CPU (tens of seconds per step)
FULL_GRID = ((64, (16, 32)), (96, (16, 32)), (128, (16,)))
DEPTHS = (2, 4, 8)
#: the IUNet at about the parameters of MONAI's UNet, SegResNet and DynUNet at width 16 (~5 M)
EQUAL_PARAMS = (("iunet", 48, 2, 64), ("iunet", 48, 2, 96))
#: models whose prediction is reported (the planner is for IUNets; the others show how general it is)
ESTIMATED = MODELS


def key(model: str, width: int, blocks: int, size: int | tuple[int, ...]) -> str:
    """The results-file key of one configuration."""
    size = "x".join(map(str, size)) if isinstance(size, tuple) else str(size)
    return f"{model}|w{width}|b{blocks}|{size}"


def _shape(size: str) -> tuple[int, ...]:
    parts = tuple(int(s) for s in str(size).split("x"))
    return parts * 3 if len(parts) == 1 else parts


def estimate(model: str, width: int, blocks: int, size, device: str = "cpu") -> dict:
    """The planner's prediction for one configuration (in this process: nothing is allocated or computed)."""
    import torch

    from monai_iunet.planner import explain_memory

    try:
        with torch.device("meta"):
            net = build_model(model, width, blocks)
        t0 = time.perf_counter()
        est = explain_memory(net, (1, IN_CHANNELS, *_shape(size)), first_step=True, device=device)
    except Exception as e:  # report and go on with the other models
        return {"estimate_error": f"{type(e).__name__}: {e}"[:200]}
    return {
        "estimate_bytes": est.total,
        "estimate_step_bytes": est.step,
        "estimate_workspace_bytes": est.workspace,
        "estimate_overhead_bytes": est.overhead,
        "estimate_resident_bytes": est.resident + est.optimizer_state,
        "estimate_phase": est.phase,
        "estimate_s": time.perf_counter() - t0,
    }


def run_one(args: argparse.Namespace) -> dict:
    """In the child process: build the model, run the steps, return the measurement."""
    import torch
    from monai.losses import DiceLoss

    torch.manual_seed(0)
    device = torch.device(args.device)
    net = build_model(args.model, args.width, args.blocks).to(device)
    shape = (1, IN_CHANNELS, *_shape(args.size))
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = DiceLoss(sigmoid=True)
    x = torch.randn(shape, device=device)
    target = (torch.rand(1, OUT_CHANNELS, *shape[2:], device=device) > 0.5).float()
    params = sum(p.numel() for p in net.parameters())
    resident = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers(), x, target))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), target)
        loss.backward()
        opt.step()

    if args.measure == "time":
        return {"params": params, "step_s": measure_time(step, steps=args.steps, warmup=1, device=args.device)}
    if args.measure == "both" and not set_mmap_threshold(65536):  # --quick: one process per model
        raise RuntimeError("cannot set glibc's mmap threshold; run without --quick")
    # the first step; with --memory-steps 2 also one with Adam's moments resident
    peak = measure_peak(lambda: [step() for _ in range(args.memory_steps)], args.device)
    out = {"params": params, "peak_bytes": peak, "resident_bytes": resident, "total_bytes": peak + resident}
    if args.memory_steps > 1:
        out["memory_steps"] = args.memory_steps
    if args.measure == "both":  # the memory step doubles as the warm-up of the timed ones
        set_mmap_threshold(32 * MiB)
        out["step_s"] = measure_time(step, steps=args.steps, warmup=0, device=args.device)
    return out


def measure(model: str, width: int, blocks: int, size, what: str, args: argparse.Namespace) -> dict:
    """Run one measurement (``"memory"`` or ``"time"``) in a fresh process."""
    child = ["--child", "--model", model, "--width", width, "--blocks", blocks, "--size", size]
    child += ["--measure", what, "--steps", args.steps, "--device", args.device]
    return run_child("benchmarks.compare", child, what, timeout=args.timeout)


def device_description(device: str) -> str:
    """The processor (or GPU) and the torch version, for the report."""
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    cpu = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def results_path(device: str, quick: bool = False) -> Path:
    """``results/compare_<device>.json``; ``--quick`` keeps its own file and leaves the full results alone."""
    return RESULTS / f"{'quick' if quick else 'compare'}_{device.split(':')[0]}.json"


def load_results(device: str, quick: bool = False) -> dict:
    """The accumulated results for ``device`` (``{"meta": ..., "runs": {key: {...}}}``)."""
    path = results_path(device, quick)
    if path.exists():
        return json.loads(path.read_text())
    return {"meta": {}, "runs": {}}


def save_results(results: dict, device: str, quick: bool = False) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = results_path(device, quick)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return path


def plan(args: argparse.Namespace) -> list[tuple[str, int, int, object]]:
    """The configurations to run: (model, width, blocks, size)."""
    models = args.models or list(MODELS)
    runs: list[tuple[str, int, int, object]] = []
    if args.quick:
        return [(m, 16, 2, 64) for m in models]
    if args.sizes or args.widths:
        sizes = args.sizes or [64]
        widths = args.widths or [16]
        runs += [(m, w, b, s) for s in sizes for w in widths for b in args.blocks or [2] for m in models]
        return runs
    for size, widths in FULL_GRID:
        runs += [(m, w, 2, size) for w in widths for m in models]
    runs += [(m, 16, b, 64) for b in DEPTHS if b != 2 for m in BLOCK_MODELS if m in models]
    runs += [run for run in EQUAL_PARAMS if run[0] in models]
    return runs


def _memory(model: str, width: int, blocks: int, size, what: str, args: argparse.Namespace) -> dict:
    """A memory measurement, its error (if any) under ``memory_error``."""
    result = measure(model, width, blocks, size, what, args)
    return {"memory_error": result.pop("error"), **result} if "error" in result else result


def run_entry(model: str, width: int, blocks: int, size, old: dict, args: argparse.Namespace) -> dict:
    """Measure (or keep from ``old``, as the flags say) one configuration's memory, prediction and step time."""
    keep = args.resume or args.only_estimate or args.retime
    entry = dict(old) if keep else {}
    entry.update(model=model, width=width, blocks=blocks, size=str(size))
    if args.quick and not args.only_estimate:
        entry.update(_memory(model, width, blocks, size, "both" if not args.no_time else "memory", args))
    elif not args.only_estimate and not (keep and "total_bytes" in old):
        entry.pop("memory_error", None)
        entry.update(_memory(model, width, blocks, size, "memory", args))
    if not args.no_estimate and model in ESTIMATED and (model == "iunet" or not args.quick):
        entry.update(estimate(model, width, blocks, size, args.device))
    timed = not (args.no_time or args.only_estimate or args.quick)
    if timed and not (keep and "step_s" in old and not args.retime):
        timing = measure(model, width, blocks, size, "time", args)
        entry.update(timing if "error" not in timing else {"time_error": timing["error"]})
    entry["when"] = time.strftime("%Y-%m-%d %H:%M")
    return entry


def table_row(entry: dict) -> str:
    """One line of the progress table."""
    peak = f"{entry['peak_bytes'] / MiB:.0f}" if "peak_bytes" in entry else entry.get("memory_error", "-")
    total = f"{entry['total_bytes'] / MiB:.0f}" if "total_bytes" in entry else "-"
    pred = f"{entry['estimate_bytes'] / MiB:.0f}" if "estimate_bytes" in entry else "-"
    step = f"{entry['step_s']:.2f}" if "step_s" in entry else entry.get("time_error", "-")
    params = f"{entry['params']:,}" if "params" in entry else "-"
    model, width, blocks, size = entry["model"], entry["width"], entry["blocks"], entry["size"]
    return f"| {model} | {width} | {blocks} | {size} | {params} | {peak} | {total} | {pred} | {step} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="64^3, width 16, all models: under 3 minutes")
    parser.add_argument("--models", nargs="+", choices=MODELS, help="subset of models (default: all)")
    parser.add_argument("--sizes", nargs="+", help="cubic sizes (e.g. 64 96) or DxHxW (e.g. 160x192x128)")
    parser.add_argument("--widths", type=int, nargs="+", help="first-level widths (default with --sizes: 16)")
    parser.add_argument("--blocks", type=int, nargs="+", help="blocks per level (default with --sizes: 2)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step (default: 3)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-time", action="store_true", help="measure memory (and predictions) only")
    parser.add_argument("--no-estimate", action="store_true", help="skip the planner's predictions")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per child process (default: 1800)")
    parser.add_argument("--no-report", action="store_true", help="leave docs/benchmarks.md and its figure alone")
    parser.add_argument("--resume", action="store_true", help="keep measurements already in the results file")
    parser.add_argument("--only-estimate", action="store_true", help="recompute predictions only, measure nothing")
    parser.add_argument("--retime", action="store_true", help="keep memory measurements, measure step times again")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--size", default="64", help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="memory", help=argparse.SUPPRESS)
    parser.add_argument("--memory-steps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.blocks = args.blocks[0] if args.blocks else 2
        print(json.dumps(run_one(args)))
        return

    results = load_results(args.device, args.quick)
    results["meta"].update(device=device_description(args.device), device_kind=args.device.split(":")[0])
    start = time.time()
    print("| model | width | blocks | size | params | peak MiB | total MiB | predicted MiB | step s |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for model, width, blocks, size in plan(args):
        old = results["runs"].get(key(model, width, blocks, size), {})
        if args.only_estimate and not old:
            continue
        entry = run_entry(model, width, blocks, size, old, args)
        results["runs"][key(model, width, blocks, size)] = entry
        save_results(results, args.device, args.quick)
        print(table_row(entry), flush=True)
    print(f"\n{time.time() - start:.0f} s", flush=True)
    if args.quick:
        print(f"(results in {results_path(args.device, True)}; docs/benchmarks.md comes from the full run)")
    elif not args.no_report:
        command = "python -m benchmarks.compare " + " ".join(sys.argv[1:])
        results["meta"].setdefault("commands", [])
        if command.strip() not in results["meta"]["commands"]:
            results["meta"]["commands"].append(command.strip())
        save_results(results, args.device)
        write_docs(args.device)


def write_docs(device: str) -> None:
    """Redraw ``docs/benchmarks.png`` and render the docs' tables, from the CPU results (a GPU run keeps its json)."""
    if not device.startswith("cpu"):
        print(f"results in {results_path(device)}; docs/benchmarks.md shows the CPU results")
        return
    from ._figure import plot_results
    from .render import render_docs

    fit_path = RESULTS / "fit_cpu.json"
    fit = json.loads(fit_path.read_text()) if fit_path.exists() else {}
    if plot_results(load_results("cpu")["runs"], fit, HERE.parent / "docs" / "benchmarks.png"):
        print("wrote docs/benchmarks.png")
    print("rewrote", *render_docs() or ["nothing: the docs' tables were up to date"])


if __name__ == "__main__":
    main()
