"""float32 accuracy of the memory-efficient gradients near the identity: a seeded search over configurations.

For each seed a random small IUNet near its identity initialisation (channel mixing on or off, resampling
initialised as Haar, pixel shuffle or a random ``theta``, 1-3 blocks per level, weights perturbed by a random
scale) is differentiated three ways: float64 ordinary autograd (the reference), float32 ordinary autograd and
float32 memory-efficient. Each float32 gradient is compared with the reference in three ways:

- ``tensor``: the worst relative error of one parameter tensor, ``|g - g64| / |g64|`` (what flags a gradient that
  is nearly zero: its error is round-off of the *other* terms, divided by a tiny norm);
- ``block``: the worst error of a block's parameters relative to that block's gradient norm;
- ``network``: the error of all parameters relative to the whole gradient's norm (one optimiser parameter group:
  what the update sees).

Usage::

    python -m benchmarks.engine_conditioning --seeds 300      # about 2 minutes on 2 CPU cores

writes ``benchmarks/results/engine_conditioning.json`` and prints the worst cases.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "engine_conditioning.json"


def config(seed: int) -> dict:
    """A random configuration near the identity (every choice drawn from ``seed``)."""
    rng = random.Random(seed)
    return {
        "seed": seed,
        "channel_mixing": rng.random() < 0.5,
        "resampling_init": rng.choice(["haar", "pixel_shuffle", "tensor"]),
        "blocks": rng.randint(1, 3),
        "std": 10 ** rng.uniform(-4, -1),
        "channels": rng.choice([(4, 8), (4, 8, 16), (8, 16)]),
    }


def build(cfg: dict):
    from monai_iunet import IUNet

    torch.manual_seed(cfg["seed"])
    init = cfg["resampling_init"]
    if init == "tensor":
        init = 0.5 * torch.randn(8, 8)
    net = IUNet(
        3,
        2,
        2,
        channels=cfg["channels"],
        blocks=cfg["blocks"],
        channel_mixing=cfg["channel_mixing"],
        resampling_init=init,
    )
    with torch.no_grad():
        for p in net.parameters():
            p.add_(cfg["std"] * torch.randn_like(p))
    return net.double()


def gradients(net, x: torch.Tensor, target: torch.Tensor, memory_efficient: bool) -> dict[str, torch.Tensor]:
    net.core.memory_efficient = memory_efficient
    net.zero_grad(set_to_none=True)
    torch.nn.functional.mse_loss(net(x), target).backward()
    return {k: p.grad.detach().double().clone() for k, p in net.named_parameters()}


def block_of(name: str) -> str:
    """The block a parameter belongs to: its name up to the module that owns it (``core.body.5.fn``)."""
    return name.rsplit(".", 2)[0]


def errors(grads: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict:
    tensor = {k: ((grads[k] - ref[k]).norm() / ref[k].norm().clamp_min(1e-300)).item() for k in ref}
    blocks: dict[str, list[str]] = {}
    for k in ref:
        blocks.setdefault(block_of(k), []).append(k)
    block = {
        b: (
            sum((grads[k] - ref[k]).square().sum() for k in ks).sqrt() / sum(ref[k].square().sum() for k in ks).sqrt()
        ).item()
        for b, ks in blocks.items()
    }
    diff = torch.cat([(grads[k] - ref[k]).flatten() for k in ref]).norm()
    network = (diff / torch.cat([ref[k].flatten() for k in ref]).norm()).item()
    worst = max(tensor, key=tensor.get)
    return {
        "tensor": tensor[worst],
        "tensor_name": worst,
        "tensor_share_of_gradient": (ref[worst].norm() / torch.cat([r.flatten() for r in ref.values()]).norm()).item(),
        "block": max(block.values()),
        "network": network,
    }


def run(cfg: dict) -> dict:
    from monai_iunet import ReconstructionGuard

    net = build(cfg)
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(cfg["seed"]))
    target = torch.rand(1, 2, 8, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(cfg["seed"] + 1))
    ref = gradients(net, x, target, memory_efficient=False)
    net.float()
    guard = ReconstructionGuard(every=1, tolerance=float("inf"))
    net.core.guard = guard
    out = {"config": {k: v for k, v in cfg.items()}}
    out["ordinary"] = errors(gradients(net, x.float(), target.float(), False), ref)
    out["memory_efficient"] = errors(gradients(net, x.float(), target.float(), True), ref)
    out["reconstruction_error"] = guard.errors[-1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=300)
    parser.add_argument("--start", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [run(config(seed)) for seed in range(args.start, args.start + args.seeds)]
    summary = {}
    for engine in ("ordinary", "memory_efficient"):
        summary[engine] = {m: max(r[engine][m] for r in runs) for m in ("tensor", "block", "network")}
    worst = max(runs, key=lambda r: r["memory_efficient"]["tensor"])
    result = {
        "seeds": [args.start, args.start + args.seeds],
        "summary": summary,
        "worst_tensor_case": worst,
        "runs": runs,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"summary": summary, "worst_tensor_case": worst}, indent=1))


if __name__ == "__main__":
    main()
