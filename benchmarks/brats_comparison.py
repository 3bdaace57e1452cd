"""Does the iUNet segment as well as a U-Net? iUNet-16/32, the paper's 3D U-Net baseline and MONAI's SegResNet,
trained the same way on realistic synthetic BraTS cases (the MNI152 anatomy), scored with the paper's Table 2 columns.

Every model sees the same cases, the same preprocessing (foreground crop, per-channel z-score on the brain,
random crops around tumour and brain, flips, intensity jitter: the random crops are identical for every model,
since the random state is reset before each), the same loss (the bundle's sigmoid Dice loss), the same optimiser
(Adam, cosine schedule), the same number of epochs and the same wall-clock cap. Validation runs sliding-window
inference on whole validation volumes and reports Dice and sensitivity for ET, WT and TC per case (mean over cases),
parameters, the peak memory of a training step (planner estimate and measured RSS growth) and the median step time.

The cases are generated once on a 2 mm grid (120 × 120 × 78 for BraTS's 240 × 240 × 155 mm), resampled to 3 mm for
training, and every width is scaled by ``--width-scale`` (default 1/2: iUNet-16 trains as channels (8, 16, 32, 64,
128), the U-Net with blowup 12): the same structure as the paper's models, sized for a shared CPU. The paper-sized
models are in ``bundles/brats_iunet/configs/paper_*.json``.

The results go to ``benchmarks/results/brats_comparison_cpu.json``, and its tables into ``docs/brats_comparison.md``
(:mod:`benchmarks.render`; the text around them is written by hand). Run (about 45 minutes on a shared CPU)::

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.brats_comparison --data-dir /tmp/brats_mni152
    python -m benchmarks.brats_comparison --anatomy-figure    # docs/synthetic_mni152.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from monai_iunet.brats import REGION_ORDER

from ._brats_figures import anatomy_figure, prediction_figure
from ._measure import measure_peak, set_mmap_threshold
from .paper_configs import build_paper_model

__all__ = ["cost_table", "results_table", "run"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "brats_comparison_cpu.json"
DEFAULT_MODELS = ("iunet16", "iunet32", "unet", "segresnet", "iunet_equal_memory")


def _datalist(data_dir: Path, num_train: int, num_val: int, size, seed: int) -> tuple[list, list]:
    """Generate (once) ``num_train + num_val`` MNI152 cases into ``data_dir``; return the two datalists."""
    from monai_iunet.brats import BRATS2021_LAYOUT
    from monai_iunet.data import generate_synthetic_brats
    from monai_iunet.data.synthetic_anatomy import mni152_spacing

    total = num_train + num_val
    cases = sorted(p for p in data_dir.glob("SynthBraTS_*") if (p / f"{p.name}_seg.nii.gz").exists())
    if len(cases) < total:
        t0 = time.perf_counter()
        generate_synthetic_brats(
            data_dir, num_cases=total, spatial_size=size, spacing=mni152_spacing(size), seed=seed, anatomy="mni152"
        )
        print(f"generated {total} cases in {time.perf_counter() - t0:.0f} s", flush=True)
        cases = sorted(data_dir.glob("SynthBraTS_*"))
    items = [
        {
            "image": [str(c / f"{stem}.nii.gz") for stem in BRATS2021_LAYOUT.file_stems(c.name)],
            "label": str(c / f"{BRATS2021_LAYOUT.label_stem(c.name)}.nii.gz"),
        }
        for c in cases[:total]
    ]
    return items[:num_train], items[num_train:]


def _transforms(crop: int, num_samples: int, pixdim: float):
    """The shared preprocessing (deterministic part, cached) and the random training part."""
    from monai import transforms as mt

    keys = ["image", "label"]
    fixed = mt.Compose(
        [
            mt.LoadImaged(keys, image_only=True, ensure_channel_first=True),
            mt.ConvertToMultiChannelBasedOnBratsClassesd("label"),
            mt.Spacingd(keys, pixdim=(pixdim,) * 3, mode=("bilinear", "nearest")),
            mt.CropForegroundd(keys, source_key="image", allow_smaller=True),
            mt.NormalizeIntensityd("image", nonzero=True, channel_wise=True),
            mt.EnsureTyped(keys, dtype=torch.float32, track_meta=False),
        ]
    )
    random = mt.Compose(
        [
            mt.SpatialPadd(keys, spatial_size=(crop,) * 3),
            mt.RandCropByPosNegLabeld(
                keys, label_key="label", spatial_size=(crop,) * 3, pos=2, neg=1, num_samples=num_samples
            ),
            *(mt.RandFlipd(keys, prob=0.5, spatial_axis=a) for a in range(3)),
            mt.RandScaleIntensityd("image", factors=0.1, prob=1.0),
            mt.RandShiftIntensityd("image", offsets=0.1, prob=1.0),
        ]
    )
    return fixed, random


def _train(net, train_cached, random_tf, args, name: str) -> dict:
    """Train ``net`` for ``args.epochs`` epochs or until the wall-clock cap; returns timings and memory."""
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceLoss
    from monai.utils import set_determinism

    set_determinism(seed=args.seed)
    loader = DataLoader(Dataset(train_cached, transform=random_tf), batch_size=1, shuffle=True, num_workers=0)
    loss_fn = DiceLoss(smooth_nr=0, smooth_dr=1e-5, squared_pred=True, sigmoid=True)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=1e-5)
    planned = args.epochs * len(train_cached)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=planned)
    net.train()
    times, losses, step, peak = [], [], 0, None
    start = time.perf_counter()
    capped = False

    def one_step(batch):
        x, y = batch["image"], batch["label"]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        sched.step()
        return float(loss)

    for epoch in range(args.epochs):
        epoch_losses = []
        for batch in loader:
            t0 = time.perf_counter()
            if peak is None:
                set_mmap_threshold(65536)  # RSS follows live memory for the measured first step
                first: dict = {}
                peak = measure_peak(lambda b=batch, o=first: o.setdefault("loss", one_step(b)))
                set_mmap_threshold(32 * 2**20)
                value = first["loss"]
            else:
                value = one_step(batch)
            times.append(time.perf_counter() - t0)
            epoch_losses.append(value)
            step += 1
            if time.perf_counter() - start > args.cap_minutes * 60:
                capped = True
                break
        losses.append(float(np.mean(epoch_losses)))
        print(f"  {name} epoch {epoch + 1}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        if capped:
            break
    return {
        "steps": step,
        "planned_steps": planned,
        "epochs_completed": len(losses) - (1 if capped else 0),
        "capped": capped,
        "train_seconds": time.perf_counter() - start,
        "step_time_s": float(np.median(times[2:] if len(times) > 4 else times)),
        "measured_peak_bytes": int(peak or 0),
        "epoch_losses": losses,
    }


def _evaluate(net, val_cached, crop: int, overlap: float) -> tuple[dict, np.ndarray]:
    """Dice and sensitivity per region over the validation cases; the first case's prediction for the figure."""
    from monai.inferers import SlidingWindowInferer
    from monai.metrics import ConfusionMatrixMetric, DiceMetric

    inferer = SlidingWindowInferer(roi_size=(crop,) * 3, sw_batch_size=4, overlap=overlap)
    dice = DiceMetric(include_background=True, reduction="none", ignore_empty=False)
    sens = ConfusionMatrixMetric(
        include_background=True, metric_name="sensitivity", compute_sample=True, reduction="none"
    )
    net.eval()
    first = None
    t0 = time.perf_counter()
    with torch.no_grad():
        for item in val_cached:
            x, y = item["image"][None], item["label"][None]
            pred = (torch.sigmoid(inferer(x, net)) > 0.5).float()
            dice(pred, y)
            sens(pred, y)
            if first is None:
                first = pred[0].to(torch.uint8).numpy()
    d = dice.aggregate().numpy()  # (cases, 3) TC, WT, ET
    s = sens.aggregate()[0].numpy()
    scores = {}
    for i, region in enumerate(REGION_ORDER):
        scores[f"dice_{region.name}"] = float(np.nanmean(d[:, i]))
        scores[f"sensitivity_{region.name}"] = float(np.nanmean(s[:, i]))
    scores["eval_seconds"] = time.perf_counter() - t0
    return scores, first


def run(args: argparse.Namespace) -> dict:
    from monai.data import CacheDataset

    from monai_iunet.planner import estimate_memory

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    t_start = time.perf_counter()
    data_dir = Path(args.data_dir)
    train_items, val_items = _datalist(data_dir, args.num_train, args.num_val, args.size, args.seed)
    fixed, random_tf = _transforms(args.crop, args.num_samples, args.pixdim)
    train_cached = list(CacheDataset(train_items, transform=fixed, num_workers=0, progress=False))
    val_cached = list(CacheDataset(val_items, transform=fixed, num_workers=0, progress=False))
    print(f"data ready in {time.perf_counter() - t_start:.0f} s", flush=True)
    results = _load() if args.resume else {}
    threads, argv = os.environ.get("OMP_NUM_THREADS", ""), sys.argv[1:]
    command = f"OMP_NUM_THREADS={threads} nice -n 10 python -m benchmarks.brats_comparison {shlex.join(argv)}"
    settings = {k: v for k, v in vars(args).items() if k not in ("render", "resume", "anatomy_figure")}
    if not results:  # a resumed run adds models; the first run's command and settings stay the report's
        results.update({"command": command, "settings": settings, "torch": torch.__version__})
        results["threads"] = torch.get_num_threads()
    results.setdefault("models", {})
    shape = (args.num_samples, 4, args.crop, args.crop, args.crop)
    preds = {}
    for name in args.models:
        key = name + args.tag
        if key in results["models"] and args.resume:
            continue
        torch.manual_seed(args.seed)
        net, info = build_paper_model(name, width_scale=args.width_scale, budget_shape=shape)
        info["params"] = sum(p.numel() for p in net.parameters())
        info["planned_peak_bytes"] = estimate_memory(net, shape, device="cpu")
        if args.tag:
            info["label"] += f" [{args.tag.strip('_')}]"
            info["command"] = command
        print(f"{key}: {info['label']} {info['params']:,} parameters", flush=True)
        info.update(_train(net, train_cached, random_tf, args, key))
        scores, first = _evaluate(net, val_cached, args.crop, args.overlap)
        info.update(scores)
        preds[key] = first
        results["models"][key] = info
        results["total_seconds"] = results.get("total_seconds", 0) + time.perf_counter() - t_start
        t_start = time.perf_counter()
        _save(results)
        np.savez_compressed(data_dir / f"pred_{key}.npz", pred=first)
        print(f"  {key}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
    results["figure_case"] = val_items[0]["image"][0]
    _save(results)
    prediction_figure(
        val_cached[0], {n: np.load(data_dir / f"pred_{n}.npz")["pred"] for n in results["models"]}, results
    )
    return results


def _load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def _save(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


#: the paper's Table 2 columns: Dice, then sensitivity, each ET, WT, TC
_COLUMNS = [(k, r.name) for k in ("dice", "sensitivity") for r in reversed(REGION_ORDER)]


def _cells(values) -> str:
    return " | ".join("—" if v is None or math.isnan(v) else f"{v:.3f}" for v in values)


def results_table(results: dict) -> str:
    """Dice and sensitivity per region (ET, WT, TC, the paper's column order) of every model."""
    head = " | ".join(("Dice" if k == "dice" else "Sens.") + f" {r}" for k, r in _COLUMNS)
    lines = [f"| model | {head} |", "|---|" + "---:|" * len(_COLUMNS)]
    for m in results["models"].values():
        lines.append(f"| {m['label']} | " + _cells(m[f"{k}_{r}"] for k, r in _COLUMNS) + " |")
    return "\n".join(lines)


def cost_table(results: dict) -> str:
    """Parameters, planned and measured peak memory, step time and how far each model trained."""
    lines = [
        "| model | network | parameters | planned peak (MiB) | measured peak (MiB) | step time (s) | steps | "
        "epochs | capped |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in results["models"].values():
        config = m["config"]
        widths = config.get("channels") or config.get("features") or [config.get("init_filters")]
        lines.append(
            f"| {m['label']} | `{config['_target_'].split('.')[-1]}` {tuple(widths)} | {m['params']:,} | "
            f"{m['planned_peak_bytes'] / 2**20:,.0f} | {m['measured_peak_bytes'] / 2**20:,.0f} | "
            f"{m['step_time_s']:.2f} | {m['steps']} | {m['epochs_completed']} | {'yes' if m['capped'] else 'no'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="/tmp/brats_mni152", help="where the synthetic cases are generated")
    parser.add_argument("--num-train", type=int, default=60)
    parser.add_argument("--num-val", type=int, default=15)
    parser.add_argument("--size", type=int, nargs=3, default=(120, 120, 78), help="grid of the 240x240x155 mm FOV")
    parser.add_argument("--pixdim", type=float, default=3.0, help="voxel size (mm) the cases are resampled to")
    parser.add_argument("--crop", type=int, default=32, help="training crop and sliding-window size (voxels)")
    parser.add_argument("--num-samples", type=int, default=1, help="crops per case per step (the batch size)")
    parser.add_argument("--overlap", type=float, default=0.0, help="sliding-window overlap at validation")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cap-minutes", type=float, default=5.0, help="wall-clock cap on each model's training")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width-scale", type=float, default=0.5, help="factor on the paper's widths for CPU")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="keep models already in the results json")
    parser.add_argument("--tag", default="", help="suffix of the models' keys, for extra runs with other settings")
    parser.add_argument("--render", action="store_true", help="only render the doc's tables from the json")
    parser.add_argument("--anatomy-figure", action="store_true", help="only write docs/synthetic_mni152.png")
    args = parser.parse_args(argv)
    if args.anatomy_figure:
        print(f"wrote {anatomy_figure(seed=args.seed)}")
        return 0
    if not args.render:
        run(args)
    from .render import render_docs

    print("rewrote", *render_docs() or ["nothing: the docs' tables were up to date"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
