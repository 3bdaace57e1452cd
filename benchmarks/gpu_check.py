"""Ready for a GPU: the engine's CUDA correctness checks, and the memory and step time of the paper-sized models.

One script, meant to take under 8 minutes on one GPU:

1. **Checks**, each with its number, its tolerance and a verdict:

   - dropout RNG replay: a coupling with dropout, memory-efficient against ordinary autograd (float64), gradients
     equal and the RNG stream after backward the ordinary one (the recompute replays the device's RNG);
   - ``torch.autocast`` float16 with ``torch.amp.GradScaler``, and bfloat16, against float32: the memory-efficient
     gradients finite, the scale not reduced, within a tolerance of the float32 gradients and of ordinary autograd
     under the same autocast;
   - the corner suite of :mod:`benchmarks.engine_corners`, each corner run with the device as default device.

2. **One training step** (forward, ``DiceLoss(sigmoid=True)``, backward, Adam; batch 1, float32) at 160 × 192 × 128
   for iUNet-16/32/64 (the bundle's ``paper_iunet*.json``), MONAI SegResNet (the model zoo's BraTS config:
   init_filters 16, blocks_down (1, 2, 2, 4), blocks_up (1, 1, 1), dropout 0.2), the paper's BasicUNet baseline
   (``paper_unet.json``) and MONAI CheckpointUNet (width 16, as in ``docs/benchmarks.md``): peak memory
   (``torch.cuda.max_memory_allocated``, everything the step holds: parameters, input, target included) of the
   first step and of the later ones (Adam's moments resident), beside :func:`monai_iunet.planner.estimate_memory`'s
   prediction of each; step time with ``torch.utils.benchmark.Timer``. A model that runs out of memory is recorded
   as such, and the next one runs.

Results go to ``benchmarks/results/gpu_check_<device>.json`` (``_tiny`` added with ``--tiny``); the table is printed,
and :mod:`benchmarks.render` puts it into ``docs/benchmarks.md``. ``--device cpu --tiny`` runs the same code on
small models and volumes in seconds (peak RSS growth plus the resident tensors instead of CUDA memory): the tests do.

Usage::

    python -m benchmarks.gpu_check                          # on a GPU: about 5-8 minutes
    python -m benchmarks.gpu_check --device cpu --tiny      # the same path on CPU, in seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

__all__ = ["CHECKS", "MODELS", "run_checks", "measure_models", "table"]

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE, TINY_SHAPE = (160, 192, 128), (32, 32, 32)
TINY_SCALE = 0.25  # the widths of every model in --tiny
MiB = 2**20
F64 = torch.float64
#: a priori tolerances on the relative gradient error under autocast (float16: 10-bit mantissa, bfloat16: 7-bit)
AUTOCAST_TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 5e-2}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _grads(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])


def _rng_state(device: torch.device) -> torch.Tensor:
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def check_dropout(device: torch.device, side: int) -> dict:
    """Dropout in a coupling: memory-efficient gradients and RNG stream against ordinary autograd, float64."""
    from monai_iunet import IUNet

    from .engine_corners import _DropoutCoupling, _perturbed

    grads, states = {}, {}
    for me in (True, False):
        torch.manual_seed(0)
        net = IUNet(3, 2, 2, channels=(4, 8), blocks=2, block_factory=_DropoutCoupling, memory_efficient=me)
        net = _perturbed(net).to(device, F64)
        torch.manual_seed(1)
        net(torch.randn(1, 2, side, side, side, dtype=F64, device=device)).square().sum().backward()
        grads[me], states[me] = _grads(net), _rng_state(device)
    error, tolerance = _rel(grads[True], grads[False]), 1e-10
    same = torch.equal(states[True], states[False])
    stream = "the RNG stream after backward is the ordinary one" if same else "the RNG stream after backward differs"
    return {"check": "dropout RNG replay, float64", "value": error, "tolerance": tolerance, "detail": stream,
            "passed": error <= tolerance and same}  # fmt: skip


def _amp_grads(net: nn.Module, x, target, device: torch.device, dtype: torch.dtype | None) -> tuple[torch.Tensor, str]:
    """Gradients of one step under ``autocast(dtype)`` (float16 through a GradScaler); ``""`` or what went wrong."""
    net.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext():
        loss = nn.functional.binary_cross_entropy_with_logits(net(x).float(), target)
    if dtype != torch.float16:
        loss.backward()
        return _grads(net), ""
    opt = torch.optim.SGD(net.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler(device.type, init_scale=2.0**12)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    grads = _grads(net)
    scaler.step(opt)
    scaler.update()
    return grads, "" if scaler.get_scale() >= 2.0**12 else "; GradScaler found inf/NaN gradients and cut the scale"


def check_autocast(device: torch.device, side: int, dtype: torch.dtype) -> dict:
    """Memory-efficient gradients under autocast against float32 and against ordinary autograd under autocast."""
    from monai_iunet import IUNet

    from .engine_corners import _perturbed

    nets = {}
    for me in (False, True):
        torch.manual_seed(0)
        nets[me] = IUNet(3, 4, 3, channels=(8, 16, 32), blocks=2, memory_efficient=me).to(device)
    _perturbed(nets[False], 0.05)
    nets[True].load_state_dict(nets[False].state_dict())
    x = torch.randn(1, 4, side, side, side, device=device)
    target = (torch.rand(1, 3, side, side, side, device=device) > 0.5).float()
    # torch 2.13's oneDNN CPU convolutions give garbage gradients under bfloat16 autocast now and then (ordinary
    # autograd too; not with oneDNN off): the CPU smoke run checks the engine, not that kernel
    workaround = device.type == "cpu" and dtype == torch.bfloat16
    with torch.backends.mkldnn.flags(enabled=not workaround):
        reference, _ = _amp_grads(nets[False], x, target, device, None)
        ordinary, _ = _amp_grads(nets[False], x, target, device, dtype)
        ours, problem = _amp_grads(nets[True], x, target, device, dtype)
    problem += "; oneDNN off (CPU bfloat16)" if workaround else ""
    finite = bool(torch.isfinite(ours).all())
    vs_fp32, vs_ordinary = _rel(ours, reference), _rel(ours, ordinary)
    tolerance = AUTOCAST_TOLERANCE[dtype]
    name = "float16 + GradScaler" if dtype == torch.float16 else "bfloat16"
    return {
        "check": f"autocast {name} against float32",
        "value": vs_fp32,
        "tolerance": tolerance,
        "detail": f"ordinary autograd under the same autocast: {vs_ordinary:.1e}{problem}",
        "passed": finite and "GradScaler" not in problem and vs_fp32 <= tolerance and vs_ordinary <= tolerance,
    }


def check_corners(device: torch.device) -> list[dict]:
    """The corner suite of :mod:`benchmarks.engine_corners` with ``device`` as the default device."""
    from .engine_corners import CORNERS

    rows = []
    for name, corner in CORNERS.items():
        torch.manual_seed(0)
        try:
            with torch.device(device):
                rows.append({"check": f"corner {name}", "detail": corner(), "passed": True})
        except Exception as e:  # noqa: BLE001 - a failing corner is a result; the next one runs
            rows.append({"check": f"corner {name}", "detail": f"{type(e).__name__}: {e}"[:200], "passed": False})
    return rows


#: every check: ``(device, side of the volume) -> row(s)``
CHECKS: dict[str, Callable[[torch.device, int], dict | list[dict]]] = {
    "dropout": check_dropout,
    "float16": lambda device, side: check_autocast(device, side, torch.float16),
    "bfloat16": lambda device, side: check_autocast(device, side, torch.bfloat16),
    "corners": lambda device, side: check_corners(device),
}


def run_checks(device: torch.device, side: int) -> list[dict]:
    """Every check of :data:`CHECKS`; a check that raises is a failed row, not the end of the run."""
    rows = []
    for name, check in CHECKS.items():
        try:
            out = check(device, side)
        except Exception as e:  # noqa: BLE001 - report and go on
            out = {"check": name, "detail": f"{type(e).__name__}: {e}"[:200], "passed": False}
        rows += out if isinstance(out, list) else [out]
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _paper(name: str) -> Callable[[float], nn.Module]:
    from .paper_configs import build_paper_model

    return lambda scale: build_paper_model(name, width_scale=scale)[0]


def _checkpoint_unet(scale: float) -> nn.Module:
    from ._models import build_model

    return build_model("checkpoint-unet", width=max(2, round(16 * scale)), blocks=2)


#: the measured models: key -> (label, ``width scale -> network``)
MODELS: dict[str, tuple[str, Callable[[float], nn.Module]]] = {
    "iunet16": ("iUNet-16 (paper_iunet16.json)", _paper("iunet16")),
    "iunet32": ("iUNet-32 (paper_iunet32.json)", _paper("iunet32")),
    "iunet64": ("iUNet-64 (paper_iunet64.json)", _paper("iunet64")),
    "segresnet": ("MONAI SegResNet (zoo BraTS)", _paper("segresnet")),
    "basicunet": ("MONAI BasicUNet (paper_unet.json)", _paper("unet")),
    "checkpoint-unet": ("MONAI CheckpointUNet (width 16)", _checkpoint_unet),
}


def _peak(fn: Callable[[], object], device: torch.device, resident: int) -> int:
    """Peak memory while ``fn()`` runs: CUDA's peak allocation, or on CPU peak RSS growth plus ``resident``."""
    if device.type != "cuda":
        from ._measure import measure_peak

        return measure_peak(fn) + resident
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def _measure_model(entry: dict, net: nn.Module, shape: tuple, device: torch.device, min_run_time: float) -> None:
    """Fill ``entry`` with the planner's predictions, the measured peaks and the step time of ``net``."""
    from monai.losses import DiceLoss
    from torch.utils.benchmark import Timer

    from monai_iunet.planner import estimate_memory

    entry["params"] = sum(p.numel() for p in net.parameters())
    entry["planned_first_bytes"] = estimate_memory(net, shape, device=device.type, first_step=True)
    entry["planned_bytes"] = estimate_memory(net, shape, device=device.type)
    opt, loss_fn = torch.optim.Adam(net.parameters(), lr=1e-4), DiceLoss(sigmoid=True)
    x = torch.randn(shape, device=device)
    target = (torch.rand(1, 3, *shape[2:], device=device) > 0.5).float()
    resident = sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers(), x, target))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), target).backward()
        opt.step()

    entry["phase"] = "first step"
    entry["peak_first_bytes"] = _peak(step, device, resident)
    entry["phase"] = "later steps"
    timer = Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    timing: dict = {}
    entry["peak_bytes"] = _peak(lambda: timing.update(m=timer.blocked_autorange(min_run_time=min_run_time)), device,
                                resident + 2 * 4 * entry["params"])  # fmt: skip
    entry["step_s"], entry["timed_steps"] = timing["m"].median, len(timing["m"].times)
    del entry["phase"]


def measure_models(names: list[str], shape: tuple, device: torch.device, scale: float, min_run_time: float) -> list:
    """One row per model of :data:`MODELS`; a model that fails (out of memory, ...) gets ``error`` and the next runs."""
    rows = []
    for name in names:
        label, build = MODELS[name]
        entry: dict = {"model": name, "label": label}
        torch.manual_seed(0)
        try:
            with torch.device(device):
                net = build(scale)
            _measure_model(entry, net, shape, device, min_run_time)
        except torch.OutOfMemoryError:
            entry["error"] = f"out of memory ({entry.pop('phase', 'building the model')})"
        except Exception as e:  # noqa: BLE001 - report and go on with the other models
            entry["error"] = f"{type(e).__name__}: {e}"[:200]
            entry.pop("phase", None)
        net = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(entry)
        print(json.dumps(entry), flush=True)
    return rows


def _mib_error(measured: int | None, planned: int | None) -> list[str]:
    if not measured:
        return ["–", "–", "–"]
    error = f"{(planned - measured) / measured:+.0%}" if planned else "–"
    return [f"{measured / MiB:,.0f}", f"{planned / MiB:,.0f}" if planned else "–", error]


def table(results: dict) -> str:
    """The models' memory and step time beside the planner's predictions, then the checks."""
    lines = [
        f"{results['device']}, {'×'.join(map(str, results['shape'][2:]))}, batch 1, float32"
        + (" (`--tiny`: widths × 0.25)" if results["tiny"] else "")
        + f"; checks and measurements took {results['seconds']:.0f} s.",
        "",
        "| model | parameters | first step MiB | planner | error | later steps MiB | planner | error | step s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["models"]:
        if "error" in r:
            lines.append(f"| {r['label']} | {r.get('params', 0):,} | {r['error']} | | | | | | |")
            continue
        cells = _mib_error(r["peak_first_bytes"], r["planned_first_bytes"])
        cells += _mib_error(r["peak_bytes"], r["planned_bytes"])
        lines.append(f"| {r['label']} | {r['params']:,} | " + " | ".join(cells) + f" | {r['step_s']:.3f} |")
    lines += ["", "| check | result | tolerance | passed |", "|---|---|---:|:-:|"]
    for c in results["checks"]:
        value = f"{c['value']:.1e}; " if "value" in c else ""
        tolerance = f"{c['tolerance']:.0e}" if "tolerance" in c else "–"
        detail = (value + c.get("detail", "")).replace("|", "\\|")
        lines.append(f"| {c['check']} | {detail} | {tolerance} | {'yes' if c['passed'] else '**no**'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (with --tiny)")
    parser.add_argument("--tiny", action="store_true", help=f"{'x'.join(map(str, TINY_SHAPE))}, widths x 0.25")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--no-checks", action="store_true", help="measure the models only")
    parser.add_argument("--min-run-time", type=float, default=None, help="seconds of timed steps (default 3; tiny 0)")
    parser.add_argument("--output", help="the results JSON (default: benchmarks/results/gpu_check_<device>.json)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available here; run with --device cpu --tiny for the CPU smoke run.")
    if device.type == "cpu":
        from ._measure import set_mmap_threshold

        set_mmap_threshold(65536)  # RSS follows live memory (see benchmarks._measure)
    from .compare import device_description

    start = time.perf_counter()
    shape = (1, 4, *(TINY_SHAPE if args.tiny else SHAPE))
    checks = [] if args.no_checks else run_checks(device, 8 if args.tiny else 32)
    min_run_time = args.min_run_time if args.min_run_time is not None else (0.0 if args.tiny else 3.0)
    models = measure_models(args.models, shape, device, TINY_SCALE if args.tiny else 1.0, min_run_time)
    results = {
        "command": shlex.join(["python", "-m", "benchmarks.gpu_check", *(sys.argv[1:] if argv is None else argv)]),
        "device": device_description(args.device),
        "shape": list(shape),
        "tiny": args.tiny,
        "checks": checks,
        "models": models,
        "seconds": time.perf_counter() - start,
    }
    output = Path(args.output or RESULTS / f"gpu_check_{device.type}{'_tiny' if args.tiny else ''}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"wrote {output}; `python -m benchmarks.render` puts the table into docs/benchmarks.md")
    failed = [c for c in checks if not c["passed"]] + [m for m in models if "error" in m and "memory" not in m["error"]]
    return 1 if failed else 0  # a model out of memory is a result, not a failure


if __name__ == "__main__":
    raise SystemExit(main())
