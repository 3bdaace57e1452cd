"""The figure of ``docs/brats_comparison.md``: the synthetic MNI152 anatomy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monai_iunet.brats import BRATS2021, MODALITY_ORDER

ROOT = Path(__file__).resolve().parents[1]
ANATOMY_FIGURE = ROOT / "docs" / "synthetic_mni152.png"

__all__ = ["anatomy_figure"]


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
