"""What fits in a memory budget: the largest cubic volume per model, and the widest IUNet for a BraTS crop.

For each model (width 16 by default) the total memory of one training step (peak RSS growth plus parameters,
input and target; see ``compare.py``) is measured at 64³ and 96³ (or taken from ``compare.py``'s results) and
fitted as ``a + b · voxels`` — activations grow with the volume, parameters and runtime caches do not. That line
predicts the largest side ``s`` (a multiple of 16) that fits each budget. Budgets up to ``--verify-max`` are then
checked by measurement: a step at ``s`` and at ``s + 16`` (moving down or up by 16 until the pair brackets the
budget, at most ``--max-probes`` steps). A size is reported as *measured* only when a step at ``s`` was measured
inside the budget and one at ``s + 16`` outside it; everything else is *predicted* from the fitted line, refitted
through every size measured so far (so the 8 GiB probes anchor the 24 GiB extrapolation). The CPU machine has
24 GiB of RAM in all, so the 24 GiB budget is always predicted there.

For the IUNet the planner's answer (``estimate_memory``, bisection over sides divisible by 16) is listed next to
it, and :func:`monai_iunet.planner.fit_channels` proposes the widest IUNet for a 160×192×128 crop; the planner's
accuracy at that shape is checked by measuring widths 16 and 32 there.

Usage::

    python -m benchmarks.fit_budget --quick        # IUNet and SegResNet, predicted only (a few minutes)
    python -m benchmarks.fit_budget                # all models, 8 GiB checked by measurement (hours on 2 CPUs)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ._measure import run_child
from ._models import MODELS
from .compare import estimate as planner_estimate

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MiB, GiB = 2**20, 2**30
CROP = (160, 192, 128)


def _load(path: Path, default: dict) -> dict:
    return json.loads(path.read_text()) if path.exists() else default


def _save(path: Path, data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable"):
                return int(line.split()[1]) * 1024
    return 0


class Runner:
    """Runs memory measurements through ``compare.py``'s child mode and keeps them in its results file."""

    def __init__(self, device: str, timeout: float) -> None:
        self.device = device
        self.timeout = timeout
        self.path = RESULTS / f"compare_{device.split(':')[0]}.json"
        self.results = _load(self.path, {"meta": {}, "runs": {}})

    def key(self, model: str, width: int, size: str, steps: int = 1) -> str:
        return f"{model}|w{width}|b2|{size}" + (f"|steps{steps}" if steps > 1 else "")

    def get(self, model: str, width: int, size: str, steps: int = 1) -> dict | None:
        return self.results["runs"].get(self.key(model, width, size, steps))

    def measure(self, model: str, width: int, size: str, estimate: bool = False, steps: int = 1) -> dict:
        """Measure (or reuse) the memory of the first ``steps`` steps at ``size`` (``"96"`` or ``"160x192x128"``).

        ``steps=2`` includes a step with Adam's moments resident, as in the rest of training; the difference from
        one step (8 bytes per parameter when the peak is in the backward pass) matters only for wide networks.
        """
        entry = self.get(model, width, size, steps)
        if entry and "total_bytes" in entry and (not estimate or "estimate_bytes" in entry):
            return entry
        args = ["--child", "--model", model, "--width", width, "--blocks", 2, "--size", size, "--device", self.device]
        args += ["--memory-steps", steps]
        print(f"  measuring {model} width {width} at {size} ({steps} step(s)) ...", flush=True)
        t0 = time.time()
        entry = {"model": model, "width": width, "blocks": 2, "size": size}
        result = run_child("benchmarks.compare", [*args, "--measure", "memory"], "memory", timeout=self.timeout)
        entry.update(result if "error" not in result else {"memory_error": result["error"]})
        if estimate:
            entry.update(planner_estimate(model, width, 2, size, self.device))
        entry["when"] = time.strftime("%Y-%m-%d %H:%M")
        entry["measure_s"] = round(time.time() - t0)
        entry["probe"] = True  # a budget search's measurement: not one of compare.py's tables
        self.results = _load(self.path, {"meta": {}, "runs": {}})  # compare.py may have written meanwhile
        self.results["runs"][self.key(model, width, size, steps)] = entry
        _save(self.path, self.results)
        total = entry.get("total_bytes")
        print(f"    -> {total / MiB:,.0f} MiB" if total else f"    -> {entry.get('memory_error')}", flush=True)
        return entry


def fit_line(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares ``total = a + b · voxels`` through ``(voxels, total)`` points."""
    n = len(points)
    mx = sum(v for v, _ in points) / n
    my = sum(t for _, t in points) / n
    var = sum((v - mx) ** 2 for v, _ in points)
    b = sum((v - mx) * (t - my) for v, t in points) / var
    return my - b * mx, b


def largest_side(a: float, b: float, budget: int, step: int = 16) -> int:
    """The largest multiple of ``step`` whose cube fits ``a + b · s³ <= budget`` (0 if none)."""
    if b <= 0:
        return 0
    side = int((max(budget - a, 0) / b) ** (1 / 3)) // step * step
    while side > 0 and a + b * side**3 > budget:
        side -= step
    while a + b * (side + step) ** 3 <= budget:
        side += step
    return side


def measured_points(runner: Runner, model: str, width: int) -> list[tuple[int, int]]:
    """Every cubic size from 64³ up measured for ``model`` at ``width``: the probes of a smaller budget make the
    line that predicts a larger one an interpolation over a wider range (the 64-128³ fit alone under-predicts
    networks whose fixed costs are small next to their activations, e.g. CheckpointUNet by 20 % at 400³)."""
    points = []
    for entry in runner.results["runs"].values():
        size = str(entry["size"])
        if (entry["model"], entry["width"], entry["blocks"], entry.get("memory_steps", 1)) != (model, width, 2, 1):
            continue
        if size.isdigit() and int(size) >= 64 and "total_bytes" in entry:
            points.append((int(size) ** 3, entry["total_bytes"]))
    return points


def planner_side(width: int, budget: int, hint: int) -> int:
    """The largest side (multiple of 16) for which ``estimate_memory`` of the IUNet fits ``budget``."""
    import torch

    from monai_iunet import IUNet
    from monai_iunet.planner import estimate_memory

    with torch.device("meta"):
        net = IUNet(3, 4, 3, channels=(width, 2 * width, 4 * width, 8 * width), blocks=2)
    cache: dict[int, int] = {}

    def fits(side: int) -> bool:
        if side not in cache:
            cache[side] = estimate_memory(net, (1, 4, side, side, side))
        return cache[side] <= budget

    lo, hi = max(16, hint - 32), hint + 32
    while lo > 16 and not fits(lo):
        lo = max(16, lo - 64)
    while fits(hi):
        lo, hi = hi, hi + 64
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def volumes(args: argparse.Namespace, runner: Runner) -> list[dict]:
    out = []
    for model in args.models:
        for width in args.widths:
            print(f"{model}, width {width}", flush=True)
            for size in ("64", "96"):  # the least the line needs; every other measured size joins it
                entry = runner.get(model, width, size)
                if entry is None or "total_bytes" not in entry:
                    runner.measure(model, width, size)
            if len(measured_points(runner, model, width)) < 2:
                out.append({"model": model, "width": width, "budgets": {}, "notes": "could not be measured"})
                continue
            params = (runner.get(model, width, "64") or {}).get("params", 0)
            row = {"model": model, "width": width, "params": params, "budgets": {}}
            for budget in sorted(args.budgets):
                a, b = fit_line(measured_points(runner, model, width))
                side = largest_side(a, b, budget)
                cell = {"size": side, "measured": False, "predicted_bytes": a + b * side**3, "fit": [a, b]}
                if budget <= args.verify_max and not args.quick:
                    cell.update(verify(model, width, side, budget, a, b, args, runner))
                if model == "iunet":
                    cell["planner"] = planner_side(width, budget, side)
                row["budgets"][str(budget)] = cell
                print(f"  {budget / GiB:g} GiB: {cell}", flush=True)
            out.append(row)
    return out


def bracket(measure, start: int, step: int, budget: int, max_probes: int) -> tuple[int, dict, dict] | str:
    """Walk from ``start`` in steps of ``step`` until ``measure(x)`` fits ``budget`` at ``x`` and not at ``x + step``.

    Args:
        measure: ``x -> entry`` with ``total_bytes`` (or an error), or a string saying why ``x`` cannot be measured.
        start: the predicted largest ``x``; step: the granularity; max_probes: measurements at most.

    Returns:
        ``(x, entry at x, entry at x + step)``, or a note saying why no bracket was found.
    """
    entries: dict[int, dict] = {}
    current = start
    for _ in range(max_probes):
        if current <= 0:
            break
        entry = measure(current)
        if isinstance(entry, str):
            return entry
        if "total_bytes" not in entry:
            return f"measurement at {current} failed: {entry.get('memory_error')}"
        entries[current] = entry
        inside = entry["total_bytes"] <= budget
        low = current if inside else current - step
        if low in entries and low + step in entries:
            if entries[low]["total_bytes"] <= budget < entries[low + step]["total_bytes"]:
                return low, entries[low], entries[low + step]
        current = current + step if inside else current - step
    return "not bracketed within --max-probes measurements: " + ", ".join(
        f"{x}: {e['total_bytes'] / GiB:.2f} GiB" for x, e in sorted(entries.items())
    )


def verify(model: str, width: int, side: int, budget: int, a: float, b: float, args, runner: Runner) -> dict:
    """Bracket the largest fitting cubic side by measurement around the prediction ``side``."""

    def measure(s: int) -> dict | str:
        if a + b * s**3 + 2 * GiB > _mem_available():
            return f"not enough free RAM to measure {s}³"
        return runner.measure(model, width, str(s))

    found = bracket(measure, side, 16, budget, args.max_probes)
    if isinstance(found, str):
        return {"note": found}
    size, inside, _ = found
    return {"size": size, "measured": True, "measured_bytes": inside["total_bytes"]}


def verify_width(width: int, budget: int, size: str, shape: tuple, args, runner: Runner) -> str:
    """Bracket the widest IUNet (widths in steps of 4) that trains within ``budget`` by measuring two steps each.

    Two steps, because from the second on Adam's moments are resident during the backward pass (8 bytes per
    parameter: 270 MiB at width 124), which ``fit_channels`` plans for and a first step does not show.
    """
    import torch

    from monai_iunet import IUNet
    from monai_iunet.planner import explain_memory

    found = bracket(lambda w: runner.measure("iunet", w, size, steps=2), width, 4, budget, args.max_probes)
    if isinstance(found, str):
        return found
    widest, inside, outside = found
    pair = (widest, widest + 4)
    with torch.device("meta"):
        nets = [IUNet(3, 4, 3, channels=(w, 2 * w, 4 * w, 8 * w), blocks=2) for w in pair]
    planned = [explain_memory(net, shape) for net in nets]
    verdict = "the planner's answer" if widest == width else f"the planner proposed {width}"
    return (
        f"**measured** (two steps): width {pair[0]} {inside['total_bytes'] / GiB:.2f} GiB (planner "
        f"{planned[0].total / GiB:.2f}), width {pair[1]} {outside['total_bytes'] / GiB:.2f} GiB (planner "
        f"{planned[1].total / GiB:.2f}) — widest that fits: {widest}, {verdict}"
    )


def crop(args: argparse.Namespace, runner: Runner) -> dict:
    import torch

    from monai_iunet import IUNet
    from monai_iunet.planner import explain_memory, fit_channels

    shape = (1, 4, *CROP)
    size = "x".join(map(str, CROP))
    checks = []
    for width in (16, 32) if not args.quick else (16,):
        entry = runner.measure("iunet", width, size, estimate=True)
        if "total_bytes" in entry and "estimate_bytes" in entry:
            err = (entry["estimate_bytes"] - entry["total_bytes"]) / entry["total_bytes"]
            checks.append(f"width {width}: measured {entry['total_bytes'] / GiB:.2f} GiB, planner {err:+.0%}")
    rows = []
    for budget in args.budgets:
        channels = fit_channels(budget, shape, 3, levels=4, blocks=2)
        with torch.device("meta"):
            net = IUNet(3, 4, 3, channels=channels, blocks=2)
        est = explain_memory(net, shape)
        check = "predicted; planner checked at this shape — " + "; ".join(checks) if checks else "predicted"
        if budget <= args.verify_max and not args.quick:
            check = verify_width(channels[0], budget, size, shape, args, runner)
        rows.append(
            {
                "budget": str(budget),
                "channels": list(channels),
                "params": sum(p.numel() for p in net.parameters()),
                "estimate_bytes": est.total,
                "check": check,
            }
        )
        print(f"crop {CROP}, {budget / GiB:g} GiB: {channels}, predicted {est.total / GiB:.2f} GiB", flush=True)
    return {"shape": list(CROP), "shape_label": "×".join(map(str, CROP)), "rows": rows}


def main() -> None:
    from monai_iunet.planner import parse_bytes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", nargs="+", default=["8GiB", "24GiB"])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--widths", type=int, nargs="+", default=[16])
    parser.add_argument("--verify-max", default="8GiB", help="measure budgets up to this (default: 8GiB)")
    parser.add_argument("--max-probes", type=int, default=3, help="measurements per model and budget (default: 3)")
    parser.add_argument("--quick", action="store_true", help="IUNet and SegResNet, no verification")
    parser.add_argument("--no-crop", action="store_true", help="skip the BraTS-crop width search")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement (default: 3600)")
    args = parser.parse_args()
    args.budgets = [parse_bytes(b) for b in args.budgets]
    args.verify_max = parse_bytes(args.verify_max)
    if args.quick:
        args.models = [m for m in args.models if m in ("iunet", "segresnet")]
    runner = Runner(args.device, args.timeout)
    path = RESULTS / f"fit_{args.device.split(':')[0]}.json"
    fit = _load(path, {})
    start = time.time()
    new = volumes(args, runner)
    done = {(v["model"], v["width"]) for v in new}
    fit["volumes"] = [v for v in fit.get("volumes", []) if (v["model"], v["width"]) not in done] + new
    if not args.no_crop:
        fit["crop"] = crop(args, runner)
    command = "python -m benchmarks.fit_budget " + " ".join(sys.argv[1:])
    fit["commands"] = sorted(set(fit.get("commands", [])) | {command.strip()})
    _save(path, fit)
    print(f"{time.time() - start:.0f} s", flush=True)
    from .compare import write_docs

    write_docs(args.device)


if __name__ == "__main__":
    main()
