"""The report of ``benchmarks/brats_comparison.py``: the markdown table beside the paper's Table 2, and the figures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from monai_iunet.brats import BRATS2021, MODALITY_ORDER, REGION_ORDER

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "brats_comparison_cpu.json"
DOC = ROOT / "docs" / "brats_comparison.md"
FIGURE = ROOT / "docs" / "brats_comparison.png"
ANATOMY_FIGURE = ROOT / "docs" / "synthetic_mni152.png"
REGIONS = tuple(region.name for region in REGION_ORDER)  # TC, WT, ET: the networks' channel order
PAPER_TABLE2 = {
    # Dice ET, WT, TC; sensitivity ET, WT, TC (BraTS 2018 validation set, 66 cases)
    "U-Net": (0.770, 0.901, 0.828, 0.776, 0.914, 0.813),
    "iUNet-16": (0.767, 0.900, 0.809, 0.779, 0.916, 0.798),
    "iUNet-32": (0.782, 0.899, 0.825, 0.773, 0.908, 0.824),
    "iUNet-64": (0.801, 0.898, 0.850, 0.796, 0.918, 0.829),
}


def prediction_figure(case: dict, preds: dict, results: dict) -> None:
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
    core = label == BRATS2021.necrosis
    centre = np.argwhere(core).mean(0) if core.any() else np.array(label.shape) / 2
    names = tuple(m.title for m in MODALITY_ORDER)
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
        "Written by `python -m benchmarks.brats_comparison --render` from "
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
