"""The figures of ``docs/brats_comparison.md``: the models' predictions on one validation case, and the anatomy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monai_iunet.brats import BRATS2021, MODALITY_ORDER

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "docs" / "brats_comparison.png"
ANATOMY_FIGURE = ROOT / "docs" / "synthetic_mni152.png"

__all__ = ["anatomy_figure", "prediction_figure"]


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
