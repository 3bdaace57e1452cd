"""iUNet vs U-Net over several seeds, scored by the package's evaluator (label maps, original grid, lesion-wise).

The set-up of :mod:`benchmarks.brats_comparison` (same synthetic MNI152 cases, preprocessing, loss, optimiser and
budget; its ``_datalist``, ``_transforms`` and ``_train``), repeated for each seed (network initialisation and
training crops; the cases stay the same), and scored with :func:`monai_iunet.brats.evaluate_labels`: each
validation prediction is inverted (``Invertd``) from the 3 mm training grid to the case's own 2 mm grid, turned
into a BraTS label map, and scored against the reference label file. Writes
``benchmarks/results/brats_seeds_cpu.json``, whose table :mod:`benchmarks.render` puts between
``<!-- table: brats-seeds -->`` and ``<!-- /table -->`` in docs/brats_comparison.md::

    OMP_NUM_THREADS=1 nice -n 10 python -m benchmarks.brats_seeds --data-dir /tmp/brats_mni152_seeds
    python -m benchmarks.brats_seeds --render
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from monai_iunet.brats import BRATS2021, Region

from .brats_comparison import _datalist, _train, _transforms
from .paper_configs import build_paper_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "brats_seeds_cpu.json"
TABLE_METRICS = ("dice", "hd95", "lesionwise_dice")
TABLE_REGIONS = (Region.ET, Region.TC, Region.WT)  # the order of the BraTS papers' tables


def _evaluate(net, val_cached, fixed, crop: int, overlap: float) -> list[dict]:
    """The evaluator's rows of every validation case, on the case's own grid."""
    from monai.inferers import SlidingWindowInferer
    from monai.transforms import Invertd

    from monai_iunet.brats import evaluate_labels
    from monai_iunet.brats.scoring import load_label
    from monai_iunet.data import case_name
    from monai_iunet.transforms import ConvertBratsChannelsToLabels

    inferer = SlidingWindowInferer(roi_size=(crop,) * 3, sw_batch_size=4, overlap=overlap)
    invert = Invertd("pred", transform=fixed, orig_keys="image", nearest_interp=False)
    to_labels = ConvertBratsChannelsToLabels(label_convention=BRATS2021)
    net.eval()
    rows: list[dict] = []
    with torch.no_grad():
        for item in val_cached:
            probs = torch.sigmoid(inferer(item["image"][None], net))[0]
            pred = invert({"image": item["image"], "pred": probs})["pred"]
            label_map = np.asarray(to_labels(torch.as_tensor(pred) > 0.5))[0]
            path = item["label"].meta["filename_or_obj"]
            ref, _, spacing = load_label(path)
            rows += evaluate_labels(label_map, ref, BRATS2021, spacing, case_name(path))
    return rows


def _means(rows: list[dict]) -> dict[str, float]:
    return {
        f"{m}_{r}": float(np.mean([x[m] for x in rows if x["region"] == r]))
        for m in ("dice", "sensitivity", "hd95", "nsd", "lesionwise_dice", "lesionwise_hd95")
        for r in TABLE_REGIONS
    }


def run(args: argparse.Namespace) -> dict:
    from monai.data import CacheDataset
    from monai.transforms import Compose, EnsureTyped

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.perf_counter()
    train_items, val_items = _datalist(Path(args.data_dir), args.num_train, args.num_val, args.size, 0)
    fixed, random_tf = _transforms(args.crop, args.num_samples, args.pixdim)
    # validation keeps the transforms' record (track_meta) so that Invertd can map predictions back
    val_fixed = Compose([*fixed.transforms[:-1], EnsureTyped(["image", "label"], dtype=torch.float32)])
    train_cached = list(CacheDataset(train_items, transform=fixed, num_workers=0, progress=False))
    val_cached = list(CacheDataset(val_items, transform=val_fixed, num_workers=0, progress=False))
    results = {
        "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} nice -n 10 python -m "
        f"benchmarks.brats_seeds {shlex.join(sys.argv[1:])}",
        "settings": {k: v for k, v in vars(args).items() if k != "render"},
        "torch": torch.__version__,
        "runs": {},
    }
    for name in args.models:
        for seed in args.seeds:
            torch.manual_seed(seed)
            net, info = build_paper_model(name, width_scale=args.width_scale)
            args.seed = seed
            trained = _train(net, train_cached, random_tf, args, f"{name} seed {seed}")
            rows = _evaluate(net, val_cached, val_fixed, args.crop, args.overlap)
            results["runs"][f"{name}_s{seed}"] = {
                "model": name,
                "label": info["label"],
                "seed": seed,
                "params": sum(p.numel() for p in net.parameters()),
                "steps": trained["steps"],
                "capped": trained["capped"],
                "means": _means(rows),
                "rows": rows,
            }
            print(f"  {name} seed {seed}: {results['runs'][f'{name}_s{seed}']['means']}", flush=True)
            results["total_seconds"] = time.perf_counter() - start
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return results


def table(results: dict) -> str:
    """Mean ± sd over seeds of each model's per-case means, per region, and whether the differences exceed it."""
    models: dict[str, list[dict]] = {}
    for r in results["runs"].values():
        models.setdefault(r["model"], []).append(r)
    cols = [(m, g) for m in TABLE_METRICS for g in TABLE_REGIONS]
    lines = ["| model | seeds | " + " | ".join(f"{m} {g.upper()}" for m, g in cols) + " |"]
    lines.append("|---|---:|" + "---:|" * len(cols))
    stats = {}
    for name, runs in models.items():
        values = {c: np.array([r["means"][f"{c[0]}_{c[1]}"] for r in runs]) for c in cols}
        stats[name] = {c: (v.mean(), v.std(ddof=1) if len(v) > 1 else float("nan")) for c, v in values.items()}
        cells = [
            f"{mu:.2f} ± {sd:.2f}" if "hd95" in c[0] else f"{mu:.3f} ± {sd:.3f}" for c, (mu, sd) in stats[name].items()
        ]
        lines.append(f"| {runs[0]['label']} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + _spread(stats, cols)


def _spread(stats: dict, cols) -> str:
    """Which Dice differences between the first two models exceed the larger of their seed sds."""
    names = list(stats)
    if len(names) < 2:
        return ""
    a, b = names[:2]
    verdicts = []
    for c in cols:
        if c[0] != "dice":
            continue
        (ma, sa), (mb, sb) = stats[a][c], stats[b][c]
        verdicts.append(f"{c[1].upper()} {ma - mb:+.3f} ({'exceeds' if abs(ma - mb) > max(sa, sb) else 'within'})")
    return f"Dice difference {a} − {b} vs the larger seed sd: " + ", ".join(verdicts) + "."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="/tmp/brats_mni152_seeds")
    parser.add_argument("--num-train", type=int, default=12)
    parser.add_argument("--num-val", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=3, default=(120, 120, 78))
    parser.add_argument("--pixdim", type=float, default=3.0)
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--overlap", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--cap-minutes", type=float, default=2.0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width-scale", type=float, default=0.5)
    parser.add_argument("--models", nargs="+", default=["iunet16", "unet"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--render", action="store_true", help="only render the doc's tables from the json")
    args = parser.parse_args(argv)
    if not args.render:
        run(args)
    from .render import render_docs

    print("rewrote", *render_docs() or ["nothing: the docs' tables were up to date"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
