"""The paper's CT post-processing comparison (Etmann et al. 2020, §4.1, Table 1, Fig. 6) at a CPU-sized scale.

A 3D iUNet and a MONAI 3D U-Net of comparable size learn to map FBP reconstructions of undersampled, noisy
parallel-beam scans of foam phantoms to the phantoms, with the same data, the same batches in the same order, the
same optimiser and the same wall-clock budget each. Then both restore the whole test volumes, scored with MONAI's
PSNR and SSIM. The script writes its results to ``benchmarks/results/ct_postprocessing_cpu.json`` (whose tables
:mod:`benchmarks.render` puts into ``docs/ct_postprocessing.md``; the text there is written by hand) and
``docs/ct_postprocessing.png`` (one test slice: FBP, U-Net, iUNet, truth, as the paper's Fig. 6).

The two architectures, as in the paper:

- **3D iUNet**: ``monai_iunet.IUNet``, a linear lifting 1 → ``blowup`` channels, the invertible core with
  ``blocks`` additive coupling blocks per level and side (each acting on half of the channels), layer norm, and a
  linear projection back to one channel. The core starts as the identity and the lifting/projection are initialised
  as each other's inverse, so the whole network starts as the identity map (paper §4.1).
- **3D U-Net**: MONAI's ``DynUNet`` (the classic 3D U-Net of Çiçek et al.: two convolutions per level at every
  resolution, the first level at full resolution, strided convolutions down, transposed convolutions up), with
  ``blowup`` channels before the first downsampling, doubling per level, layer norm (GroupNorm with one group).

Training is interleaved: each round draws one batch, and every model whose budget is not spent takes one Adam step on
it; a model's budget is charged only with its own step times. The machine's other load thus falls on both models
alike, and both see the same batches in the same order.

Usage::

    python -m benchmarks.ct_comparison                        # the documented run, about 20 minutes on 2 cores
    python -m benchmarks.ct_comparison --budget_s 20 --num_train 4 --num_test 2 --spatial_size 32 --results /tmp/ct.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from monai.data import DataLoader, Dataset, load_decathlon_datalist
from monai.metrics import PSNRMetric, SSIMMetric
from monai.networks.nets import DynUNet
from monai.transforms import Compose, EnsureTyped, LoadImaged, RandFlipd, RandRotate90d, RandSpatialCropd
from monai.utils import set_determinism
from torch import nn

from monai_iunet import IUNet
from monai_iunet.data.foam_ct import ensure_foam_ct_dataset

RESULTS = Path(__file__).resolve().parent / "results" / "ct_postprocessing_cpu.json"

__all__ = ["evaluate", "make_iunet", "make_unet", "results_table", "train_interleaved", "training_table"]


def make_iunet(blowup: int, scales: int, blocks: int) -> IUNet:
    """The 3D iUNet, initialised as the identity map (core: zero-initialised couplings; lift/project: inverses)."""
    return IUNet(3, 1, 1, channels=[blowup * 2**level for level in range(scales)], blocks=blocks).init_identity()


def make_unet(blowup: int, scales: int) -> DynUNet:
    """The classic 3D U-Net (MONAI ``DynUNet``): two 3x3x3 convolutions per level, layer norm, channels doubling."""
    return DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=1,
        kernel_size=[3] * scales,
        strides=[1] + [2] * (scales - 1),
        upsample_kernel_size=[2] * (scales - 1),
        filters=[blowup * 2**level for level in range(scales)],
        norm_name=("group", {"num_groups": 1}),
    )


def train_interleaved(
    models: dict[str, nn.Module], loader: DataLoader, budget_s: float, lr: float, log: Callable[[str], None]
) -> dict[str, dict]:
    """Train every model on the same batches until each has used ``budget_s`` seconds of its own step time."""
    optimisers = {name: torch.optim.Adam(m.parameters(), lr=lr) for name, m in models.items()}
    stats = {name: {"seconds": 0.0, "steps": 0, "loss": float("nan")} for name in models}
    loss_fn = nn.MSELoss()
    next_report = 0.0
    while any(s["seconds"] < budget_s for s in stats.values()):
        for batch in loader:
            x, y = batch["image"], batch["label"]
            for name, model in models.items():
                s = stats[name]
                if s["seconds"] >= budget_s:
                    continue
                start = time.perf_counter()
                optimisers[name].zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                optimisers[name].step()
                s["seconds"] += time.perf_counter() - start
                s["steps"] += 1
                s["loss"] = 0.9 * s["loss"] + 0.1 * loss.item() if s["steps"] > 1 else loss.item()
                if not np.isfinite(s["loss"]):
                    raise FloatingPointError(f"{name}: the training loss is {s['loss']} at step {s['steps']}.")
            elapsed = min(s["seconds"] for s in stats.values())
            if elapsed >= next_report:
                log(
                    "  ".join(
                        f"{n}: {s['steps']} steps {s['seconds']:.0f}s loss {s['loss']:.4f}" for n, s in stats.items()
                    )
                )
                next_report += 30.0
            if all(s["seconds"] >= budget_s for s in stats.values()):
                break
    return stats


@torch.no_grad()
def evaluate(models: dict[str, nn.Module], test_data: list[dict]) -> tuple[dict[str, tuple[float, float]], dict]:
    """Mean PSNR and SSIM of every model, and of the FBP input itself, over the whole test volumes."""
    metrics = {name: (PSNRMetric(max_val=1.0), SSIMMetric(spatial_dims=3, data_range=1.0)) for name in ["FBP", *models]}
    outputs: dict[str, torch.Tensor] = {}
    for index, item in enumerate(test_data):
        x, y = item["image"][None], item["label"][None]
        for name in metrics:
            pred = x if name == "FBP" else models[name].eval()(x)
            for metric in metrics[name]:
                metric(pred, y)
            if index == 0:
                outputs[name] = pred[0, 0]
        if index == 0:
            outputs["truth"] = y[0, 0]
    scores = {name: tuple(float(m.aggregate().item()) for m in pair) for name, pair in metrics.items()}
    return scores, outputs


def save_figure(outputs: dict[str, torch.Tensor], panels: list[tuple[str, str]], path: str) -> None:
    """One slice through the first test volume per panel, on a common grey scale (as the paper's Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (key, title) in zip(axes, panels):
        volume = outputs[key].numpy()
        ax.imshow(volume[:, :, volume.shape[2] // 2].T, cmap="gray", vmin=0.0, vmax=1.0, origin="lower")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def results_table(results: dict) -> str:
    """SSIM and PSNR of both models per (scales, blowup), in the form of the paper's Table 1."""
    lines = [
        "| scales | channel blowup | 3D U-Net SSIM | 3D U-Net PSNR | 3D iUNet SSIM | 3D iUNet PSNR |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['scales']} | {r['blowup']} | {r['unet'][1]:.3f} | {r['unet'][0]:.2f} | "
            f"{r['iunet'][1]:.3f} | {r['iunet'][0]:.2f} |"
        )
    return "\n".join(lines)


def training_table(results: dict) -> str:
    """Steps taken within the budget, seconds, final smoothed training loss and parameters of every model."""
    lines = [
        "| scales | blowup | model | parameters | steps | seconds | training MSE |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        for key, label in (("unet", "3D U-Net"), ("iunet", "3D iUNet")):
            s = r[f"{key}_train"]
            lines.append(
                f"| {r['scales']} | {r['blowup']} | {label} | {r[f'{key}_params']:,} | {s['steps']} | "
                f"{s['seconds']:.0f} | {s['loss']:.4f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="data/foam_ct_benchmark", help="dataset folder (generated if empty)")
    parser.add_argument(
        "--results",
        default=str(RESULTS),
        help="the results JSON; the PNG goes beside it unless it is "
        "the default, whose figure is docs/ct_postprocessing.png and whose tables go into the doc",
    )
    parser.add_argument("--spatial_size", type=int, default=64)
    parser.add_argument("--num_train", type=int, default=32)
    parser.add_argument("--num_test", type=int, default=8)
    parser.add_argument("--num_angles", type=int, default=16)
    parser.add_argument("--photons", type=float, default=1000.0)
    parser.add_argument("--crop", type=int, default=32, help="training crop size (0: whole volumes)")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--scales", type=int, default=4)
    parser.add_argument("--blowups", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--blocks", type=int, default=4, help="iUNet coupling blocks per level and side")
    parser.add_argument("--budget_s", type=float, default=270.0, help="training seconds per model")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    parser.add_argument("--workers", type=int, default=2, help="processes generating the dataset")
    args = parser.parse_args(argv)
    command = shlex.join(["python", "-m", "benchmarks.ct_comparison", *(argv if argv is not None else sys.argv[1:])])

    torch.set_num_threads(args.threads)
    set_determinism(seed=args.seed)
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)  # noqa: E731
    t0 = time.time()
    datalist_path = ensure_foam_ct_dataset(
        args.data_dir,
        num_train=args.num_train,
        num_val=0,
        num_test=args.num_test,
        spatial_size=args.spatial_size,
        seed=args.seed,
        num_workers=args.workers,
        num_angles=args.num_angles,
        photons=args.photons,
    )
    with open(datalist_path) as f:
        generator = json.load(f)["generator"]
    expected = {"num_angles": args.num_angles, "photons": args.photons, "spatial_size": [args.spatial_size] * 3}
    if any(generator.get(k) != v for k, v in expected.items()) or generator.get("seed") != args.seed:
        raise ValueError(f"{args.data_dir} holds a dataset generated with {generator}; use another --data_dir.")
    log(f"dataset ready in {time.time() - t0:.0f}s: {datalist_path}")

    load = [LoadImaged(keys=["image", "label"], ensure_channel_first=True, image_only=True)]
    load.append(EnsureTyped(keys=["image", "label"], dtype=torch.float32, track_meta=False))
    augment = (
        [RandSpatialCropd(keys=["image", "label"], roi_size=[args.crop] * 3, random_size=False)] if args.crop else []
    )
    augment += [RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=axis) for axis in range(3)]
    augment += [
        RandRotate90d(keys=["image", "label"], prob=0.5, spatial_axes=axes) for axes in ((0, 1), (0, 2), (1, 2))
    ]
    train_files = load_decathlon_datalist(datalist_path, True, "training")
    test_files = load_decathlon_datalist(datalist_path, True, "test")
    train_volumes = [Compose(load)(item) for item in train_files]  # cached: only the augmentation runs per step
    train_ds = Dataset(train_volumes, transform=Compose(augment))
    loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, num_workers=0)
    test_data = [Compose(load)(item) for item in test_files]

    rows, load = [], []
    outputs: dict[str, torch.Tensor] = {}
    for blowup in args.blowups:
        torch.manual_seed(args.seed)
        models = {"unet": make_unet(blowup, args.scales), "iunet": make_iunet(blowup, args.scales, args.blocks)}
        log(f"blowup {blowup}: training for {args.budget_s:.0f}s each")
        load.append(os.getloadavg()[0])
        stats = train_interleaved(models, loader, args.budget_s, args.lr, log)
        load.append(os.getloadavg()[0])
        scores, outputs = evaluate(models, test_data)
        log(f"blowup {blowup}: " + ", ".join(f"{n} SSIM {s[1]:.3f} PSNR {s[0]:.2f}" for n, s in scores.items()))
        row = {"scales": args.scales, "blowup": blowup, "fbp": scores["FBP"]}
        for name, model in models.items():
            row[name] = scores[name]
            row[f"{name}_train"] = stats[name]
            row[f"{name}_params"] = sum(p.numel() for p in model.parameters())
        rows.append(row)

    results = Path(args.results)
    default = results.resolve() == RESULTS
    figure = RESULTS.parents[2] / "docs" / "ct_postprocessing.png" if default else results.with_suffix(".png")
    results.parent.mkdir(parents=True, exist_ok=True)
    save_figure(
        outputs, [("FBP", "FBP"), ("unet", "3D U-Net"), ("iunet", "3D iUNet"), ("truth", "ground truth")], str(figure)
    )
    settings = {k: v for k, v in vars(args).items() if k not in ("data_dir", "results")}
    record = {"command": command, "settings": settings, "torch": torch.__version__, "threads": torch.get_num_threads()}
    record.update(load_average=[min(load), max(load)], elapsed_s=time.time() - t0, rows=rows)
    results.write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {results} and {figure} ({time.time() - t0:.0f}s in all)")
    if default:
        from .render import render_docs

        log(f"rewrote {render_docs() or 'nothing: the tables were up to date'}")


if __name__ == "__main__":
    main()
