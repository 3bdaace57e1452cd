"""The shared set-up of the BraTS architecture comparison (``docs/brats_comparison.md``): realistic synthetic
BraTS cases (the MNI152 anatomy), the preprocessing and the training loop that every model gets.

Every model sees the same cases, the same preprocessing (foreground crop, per-channel z-score on the brain, random
crops around tumour and brain, flips, intensity jitter: the random crops are identical for every model at one
seed, since the random state is reset before each), the same loss (the bundle's sigmoid Dice loss), the same
optimiser (Adam, cosine schedule), the same number of epochs and the same wall-clock cap. The cases are generated
once on a 2 mm grid (120 × 120 × 78 for BraTS's 240 × 240 × 155 mm) and resampled to 3 mm for training.

:mod:`benchmarks.brats_seeds` runs the comparison (several seeds per model, scored by the package's evaluator);
it replaced this module's earlier single-seed run, which scored the network's channels with MONAI's
``DiceMetric`` on the 3 mm grid. This module's own command draws the anatomy figure::

    python -m benchmarks.brats_comparison --anatomy-figure    # docs/synthetic_mni152.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ._brats_figures import anatomy_figure
from ._measure import measure_peak, set_mmap_threshold

__all__ = ["make_datalist", "make_transforms", "train_model"]


def make_datalist(data_dir: Path, num_train: int, num_val: int, size, seed: int) -> tuple[list, list]:
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


def make_transforms(crop: int, num_samples: int, pixdim: float):
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


def train_model(net, train_cached, random_tf, args, name: str) -> dict:
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anatomy-figure", action="store_true", help="write docs/synthetic_mni152.png")
    parser.add_argument("--seed", type=int, default=0, help="the case drawn for the figure")
    args = parser.parse_args(argv)
    if not args.anatomy_figure:
        parser.error("the comparison itself runs as `python -m benchmarks.brats_seeds`; here only --anatomy-figure")
    print(f"wrote {anatomy_figure(seed=args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
