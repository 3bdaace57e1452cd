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

Run (about 45 minutes on a shared CPU), then render the report from the cached json::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/brats_comparison.py --data-dir /tmp/brats_mni152
    python benchmarks/brats_comparison.py --render --reading reading.md
    python benchmarks/brats_comparison.py --anatomy-figure    # docs/synthetic_mni152.png
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _measure import measure_peak, set_mmap_threshold  # noqa: E402
from paper_configs import build_paper_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "brats_comparison_cpu.json"
DOC = ROOT / "docs" / "brats_comparison.md"
FIGURE = ROOT / "docs" / "brats_comparison.png"
ANATOMY_FIGURE = ROOT / "docs" / "synthetic_mni152.png"
REGIONS = ("TC", "WT", "ET")  # channel order of ConvertToMultiChannelBasedOnBratsClassesd
PAPER_TABLE2 = {
    # Dice ET, WT, TC; sensitivity ET, WT, TC (BraTS 2018 validation set, 66 cases)
    "U-Net": (0.770, 0.901, 0.828, 0.776, 0.914, 0.813),
    "iUNet-16": (0.767, 0.900, 0.809, 0.779, 0.916, 0.798),
    "iUNet-32": (0.782, 0.899, 0.825, 0.773, 0.908, 0.824),
    "iUNet-64": (0.801, 0.898, 0.850, 0.796, 0.918, 0.829),
}
DEFAULT_MODELS = ("iunet16", "iunet32", "unet", "segresnet", "iunet_equal_memory")


def _datalist(data_dir: Path, num_train: int, num_val: int, size, seed: int) -> tuple[list, list]:
    """Generate (once) ``num_train + num_val`` MNI152 cases into ``data_dir``; return the two datalists."""
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
            "image": [str(c / f"{c.name}_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")],
            "label": str(c / f"{c.name}_seg.nii.gz"),
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
    for i, region in enumerate(REGIONS):
        scores[f"dice_{region}"] = float(np.nanmean(d[:, i]))
        scores[f"sensitivity_{region}"] = float(np.nanmean(s[:, i]))
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
    command = f"OMP_NUM_THREADS={threads} nice -n 10 python benchmarks/brats_comparison.py {shlex.join(argv)}"
    settings = {k: v for k, v in vars(args).items() if k not in ("render", "resume", "reading", "anatomy_figure")}
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
    _figure(val_cached[0], {n: np.load(data_dir / f"pred_{n}.npz")["pred"] for n in results["models"]}, results)
    return results


def _load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def _save(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def _figure(case: dict, preds: dict, results: dict) -> None:
    """Three orthogonal slices through the first validation case: FLAIR with the truth, then each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, label = case["image"].numpy(), case["label"].numpy()
    centre = np.argwhere(label[2] > 0).mean(0).astype(int) if label[2].any() else np.array(label.shape[1:]) // 2
    columns = [("truth", label)] + [(results["models"][n]["label"], p) for n, p in preds.items()]
    fig, axes = plt.subplots(3, len(columns), figsize=(2.6 * len(columns), 7.8))
    for row, axis in enumerate(range(3)):
        flair = np.rot90(np.take(image[0], centre[axis], axis=axis))
        for col, (title, seg) in enumerate(columns):
            ax = axes[row, col]
            ax.imshow(flair, cmap="gray")
            # BraTS colours: edema (WT only) green, non-enhancing core (TC only) red, enhancing tumour yellow
            s = [np.rot90(np.take(seg[c], centre[axis], axis=axis)) for c in range(3)]
            overlay = np.zeros((*s[0].shape, 4))
            overlay[s[1] > 0] = (0.1, 0.8, 0.1, 0.45)
            overlay[s[0] > 0] = (0.9, 0.1, 0.1, 0.55)
            overlay[s[2] > 0] = (1.0, 0.9, 0.0, 0.7)
            ax.imshow(overlay)
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=9)
    fig.suptitle("validation case 0, FLAIR; green edema (WT), red tumour core (TC), yellow enhancing (ET)", fontsize=9)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=90)
    plt.close(fig)


def _views(volume: np.ndarray, centre) -> list[np.ndarray]:
    """Axial, coronal and sagittal slices through ``centre`` of a volume on the generator's grid (axes: right to
    left, anterior to posterior, inferior to superior), oriented as a radiologist reads them."""
    i, j, k = (int(c) for c in centre)
    return [volume[:, :, k].T, volume[:, j, ::-1].T, volume[i, :, ::-1].T]


def anatomy_figure(path: Path = ANATOMY_FIGURE, seed: int = 0) -> Path:
    """Three orthogonal slices × four modalities and the labels of one 1 mm MNI152 case (the docs figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from monai_iunet.data.synthetic_anatomy import synthesize_mni152_case

    image, label = synthesize_mni152_case((240, 240, 155), seed=seed)
    centre = np.argwhere(label == 1).mean(0) if (label == 1).any() else np.array(label.shape) / 2
    names = ("FLAIR", "T1", "T1ce", "T2")
    fig, axes = plt.subplots(3, 5, figsize=(15, 9.6), facecolor="black")
    for row, view in enumerate(("axial", "coronal", "sagittal")):
        for col in range(5):
            ax = axes[row, col]
            m = col if col < 4 else 0
            sl = _views(image[m], centre)[row]
            ax.imshow(sl, cmap="gray", vmin=0, vmax=np.percentile(image[m][image[m] > 0], 99.5))
            if col == 4:
                seg = _views(label, centre)[row]
                overlay = np.zeros((*seg.shape, 4))
                overlay[seg == 2] = (0.1, 0.85, 0.1, 0.5)
                overlay[seg == 1] = (0.9, 0.1, 0.1, 0.6)
                overlay[seg == 4] = (1.0, 0.9, 0.0, 0.7)
                ax.imshow(overlay)
            ax.set_axis_off()
            title = names[col] if col < 4 else "FLAIR + labels"
            ax.set_title(f"{title}, {view}", color="white", fontsize=10)
    fig.suptitle(
        f"generate_synthetic_brats(anatomy='mni152'), case seed {seed}, 240 × 240 × 155 at 1 mm — labels: edema "
        "green, necrotic/non-enhancing core red, enhancing tumour yellow",
        color="white",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80, facecolor="black")
    plt.close(fig)
    return path


def _row(label: str, values) -> str:
    return f"| {label} | " + " | ".join("—" if v is None or math.isnan(v) else f"{v:.3f}" for v in values) + " |"


def render(results: dict) -> str:
    """``docs/brats_comparison.md``: a rendering of the results json (nothing in it is typed by hand)."""
    if not results.get("models"):
        return "# BraTS comparison\n\nNo results yet: run `benchmarks/brats_comparison.py`.\n"
    st = results["settings"]
    head = "| model | Dice ET | Dice WT | Dice TC | Sens. ET | Sens. WT | Sens. TC |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    ours = [head, rule]
    cost = [
        "| model | network | parameters | planned peak (MiB) | measured peak (MiB) | step time (s) | steps | "
        "epochs | capped |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in results["models"].values():
        ours.append(_row(m["label"], [m[f"{k}_{r}"] for k in ("dice", "sensitivity") for r in ("ET", "WT", "TC")]))
        widths = m["config"].get("channels") or m["config"].get("features") or [m["config"].get("init_filters")]
        cost.append(
            f"| {m['label']} | `{m['config']['_target_'].split('.')[-1]}` {tuple(widths)} | {m['params']:,} | "
            f"{m['planned_peak_bytes'] / 2**20:,.0f} | {m['measured_peak_bytes'] / 2**20:,.0f} | "
            f"{m['step_time_s']:.2f} | {m['steps']} | {m['epochs_completed']} | {'yes' if m['capped'] else 'no'} |"
        )
    paper = [head, rule] + [_row(k, v) for k, v in PAPER_TABLE2.items()]
    lines = [
        "# Does the iUNet segment as well as a U-Net? (CPU comparison on synthetic MNI152 brains)",
        "",
        "Written by `python benchmarks/brats_comparison.py --render` from "
        "`benchmarks/results/brats_comparison_cpu.json`, which this command produced:",
        "",
        f"    {results['command']}",
        "",
        "## Budget and setup",
        "",
        f"- data: {st['num_train']} training and {st['num_val']} validation cases of "
        '`generate_synthetic_brats(anatomy="mni152")` (MNI152 anatomy, 240 × 240 × 155 mm field of view) on a '
        f"{' × '.join(map(str, st['size']))} grid (≈ 2 mm), generated once into `{st['data_dir']}`, resampled to "
        f"{st['pixdim']:g} mm isotropic (`Spacingd`) for the CPU;",
        "- the same preprocessing for every model (foreground crop, per-channel z-score on the brain; training crops "
        f"of {st['crop']}³ voxels, {st['num_samples']} per case and step (positive:negative 2:1), flips, "
        "intensity scale/shift; random state reset per model so every model sees the same crops);",
        f"- the same loss (sigmoid Dice, as the bundle), optimiser (Adam, lr {st['lr']}, weight decay 1e-5, cosine "
        f"schedule), and budget: {st['epochs']} epochs or {st['cap_minutes']:g} min of training per model, "
        "whichever comes first;",
        f"- widths: {st['width_scale']:g} × the paper's (same structure: 5 levels, doubling, 2 couplings per level "
        "and side for the iUNets; 2 convolutions per level for the U-Net); SegResNet is the MONAI model-zoo BraTS "
        "configuration (blocks_down (1, 2, 2, 4), blocks_up (1, 1, 1), dropout 0.2) with init_filters 16 scaled the "
        "same way (at least 8: its GroupNorm has 8 groups); iUNet-64 is not in the CPU run (budget);",
        f"- validation: sliding-window inference (roi {st['crop']}³, overlap {st['overlap']:g}) on the whole "
        "validation volumes, "
        "sigmoid > 0.5, Dice and sensitivity per case (MONAI `DiceMetric`, `ConfusionMatrixMetric`), mean over cases;",
        f"- machine: 2 CPU cores shared with other jobs, {results['threads']} thread(s), `nice -n 10`, torch "
        f"{results['torch']}; "
        f"total wall clock {results.get('total_seconds', 0) / 60:.0f} min (including data loading).",
        "",
        "## Results on the synthetic validation cases",
        "",
        *ours,
        "",
        "## The paper's Table 2 (BraTS 2018 validation set, real data, GPU, full-size models)",
        "",
        *paper,
        "",
        "## Cost",
        "",
        "Planned peak: `monai_iunet.planner.estimate_memory` of one training step (CPU, batch "
        f"{st['num_samples']}, {st['crop']}³). Measured: peak RSS growth over the first training step "
        "in the benchmark's own process: a lower bound only (pages the previous models freed are reused; 0 means "
        "no growth), so read the planned column. Step time: median over the run (the CPU is shared: ±30 %).",
        "",
        *cost,
        "",
        *[f"- {m['label']}: `{m['command']}`" for m in results["models"].values() if "command" in m],
        "",
        "![predictions](brats_comparison.png)",
        "",
        "## Reading",
        "",
        *results.get("reading", ["(no reading recorded)"]),
        "",
    ]
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
    parser.add_argument("--render", action="store_true", help="only write docs/brats_comparison.md from the json")
    parser.add_argument("--reading", help="a markdown file with the reading of the results, stored in the json")
    parser.add_argument("--anatomy-figure", action="store_true", help="only write docs/synthetic_mni152.png")
    args = parser.parse_args(argv)
    if args.anatomy_figure:
        print(f"wrote {anatomy_figure(seed=args.seed)}")
        return 0
    if not args.render:
        run(args)
    if args.reading:  # the interpretation, kept in the json beside the numbers it reads
        results = _load()
        results["reading"] = Path(args.reading).read_text().strip().split("\n")
        _save(results)
    DOC.write_text(render(_load()))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
