"""Synthetic BraTS-like cases: four MRI modalities of a skull-stripped brain with a glioma, and its label map.

The generator is the embedded default dataset of the BraTS bundle and the data of its tests, since no real dataset
can be downloaded on the machines this project targets. Every case is drawn from its own seeded random generator:

1. **Brain support**: an ellipsoid whose radius is modulated by a smooth random field, so that every brain has
   a different, lobed outline. Inside it, a cortical ribbon of grey matter, cerebrospinal fluid (CSF) at the
   outer rim and in two lateral ventricles, and white matter elsewhere.
2. **Tumour**: a blob at a random position in the brain, of random size, with a noise-perturbed outline and three
   nested compartments, labelled as in BraTS 2018–2021: necrotic core (label 1), enhancing rim (label 4) and
   peritumoural edema (label 2) reaching out into the brain.
3. **Contrasts** (relative intensities per tissue and modality, as on real scans): the enhancing rim is bright on
   T1ce, the necrotic core dark on T1 and T1ce and bright on T2, the edema bright on FLAIR and T2; CSF is dark on
   FLAIR and bright on T2; white matter is brighter than grey matter on T1 and darker on T2.
4. **Acquisition**: partial-volume blur (MONAI ``GaussianSmooth``), fine tissue texture, a smooth multiplicative
   bias field per modality, Gaussian noise, and an arbitrary global intensity scale per modality; the background
   outside the brain is exactly zero, as in skull-stripped BraTS data.

Cases are written in the BraTS 2018–2021 challenge folder layout, ``<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz``, or
in the BraTS 2023 or Medical Segmentation Decathlon layouts, with a BraTS-like affine (1 mm voxels by default, the
first two axes flipped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.transforms import GaussianSmooth
from monai.utils import ensure_tuple_rep

from monai_iunet.brats import (
    BRATS2021,
    BRATS2021_LAYOUT,
    LAYOUTS,
    MSD,
    MSD_LAYOUT,
    DatasetLayout,
    convert_labels,
    dataset_layout,
)
from monai_iunet.data.synthetic_anatomy import synthesize_mni152_case
from monai_iunet.data.synthetic_tissue import TISSUE_INTENSITIES, smooth_field
from monai_iunet.errors import UserInputError
from monai_iunet.progress import progress_bar

__all__ = ["generate_synthetic_brats", "synthesize_brats_case"]


def synthesize_brats_case(
    spatial_size: Sequence[int] | int = (64, 64, 64),
    seed: int | np.random.Generator | None = None,
    noise_std: float = 0.04,
    bias_strength: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one synthetic BraTS-like case.

    Args:
        spatial_size: shape of the volume (three sizes, or one for a cube); any sizes from about 16 voxels work.
        seed: seed or random generator; the same seed gives the same case.
        noise_std: standard deviation of the Gaussian noise, relative to the white-matter intensity on T1.
        bias_strength: standard deviation of the log of the multiplicative bias field.

    Returns:
        ``(image, label)``: ``image`` of shape ``(4, *spatial_size)``, float32, channels in
        :data:`~monai_iunet.brats.MODALITY_ORDER` (FLAIR, T1, T1ce, T2), zero outside the brain; ``label`` of shape
        ``spatial_size``, uint8, in the :data:`~monai_iunet.brats.BRATS2021` convention (0 background, 1 necrotic
        core, 2 edema, 4 enhancing tumour).
    """
    shape = tuple(int(s) for s in ensure_tuple_rep(spatial_size, 3))
    if len(shape) != 3 or min(shape) < 8:
        raise UserInputError(f"spatial_size must be three sizes of at least 8 voxels, got {spatial_size}.")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    size = np.asarray(shape, dtype=np.float32)
    grid = np.stack(np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij"))

    # brain: a lobed ellipsoid, with cortex, outer CSF and two ventricles
    centre = size / 2 + rng.uniform(-0.03, 0.03, 3) * size
    radii = size * rng.uniform([0.38, 0.33, 0.36], [0.44, 0.40, 0.42])
    r = np.sqrt((((grid - centre[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0))
    r = r + 0.06 * smooth_field(shape, rng, cells=4)
    brain = r < 1.0
    tissue = np.zeros(shape, dtype=np.int8)  # 0 background, 1 CSF, 2 grey matter, 3 white matter
    cortex_depth = 0.2 + 0.05 * smooth_field(shape, rng, cells=6)
    tissue[brain] = 3
    tissue[brain & (r > 1.0 - cortex_depth)] = 2
    tissue[brain & (r > 0.94)] = 1
    offset = np.array([0.0, 0.12, 0.0], dtype=np.float32) * size
    ventricle_radii = size * np.array([0.14, 0.05, 0.09], dtype=np.float32) * rng.uniform(0.8, 1.2)
    for side in (-1, 1):
        c = centre + side * offset
        rv = np.sqrt((((grid - c[:, None, None, None]) / ventricle_radii[:, None, None, None]) ** 2).sum(0))
        tissue[brain & (rv < 1.0)] = 1

    # tumour: a perturbed blob at a random position inside the brain, with necrosis, enhancing rim and edema
    inside = np.argwhere(r < 0.6)
    tumour_centre = inside[rng.integers(len(inside))].astype(np.float32)
    tumour_radius = min(shape) * rng.uniform(0.12, 0.19)
    d = np.sqrt(((grid - tumour_centre[:, None, None, None]) ** 2).sum(0)) / tumour_radius
    d = d + 0.18 * smooth_field(shape, rng, cells=5)
    core, rim = rng.uniform(0.35, 0.6), rng.uniform(0.3, 0.45)
    edema_extent = rng.uniform(1.4, 1.9)
    label = np.zeros(shape, dtype=np.uint8)
    label[brain & (d < edema_extent)] = BRATS2021.edema
    label[brain & (d < core + rim)] = BRATS2021.enhancing
    label[brain & (d < core)] = BRATS2021.necrosis

    # intensities: tissue means, partial-volume blur, texture, bias field, noise, scale
    means = np.asarray(list(TISSUE_INTENSITIES.values()), dtype=np.float32)  # (6, 4)
    index = np.zeros(shape, dtype=np.int64)  # rows of `means`; background handled by the mask
    index[tissue == 1] = 0
    index[tissue == 2] = 1
    index[tissue == 3] = 2
    index[label == BRATS2021.edema] = 3
    index[label == BRATS2021.enhancing] = 4
    index[label == BRATS2021.necrosis] = 5
    image = np.moveaxis(means[index], -1, 0) * brain  # (4, *shape)
    image = GaussianSmooth(sigma=0.6)(torch.from_numpy(image)).numpy()
    image = image * (1.0 + 0.04 * smooth_field(shape, rng, cells=max(shape) // 3))
    for channel in image:
        channel *= np.exp(bias_strength * smooth_field(shape, rng, cells=2))
        channel += noise_std * rng.standard_normal(shape).astype(np.float32)
        channel *= rng.uniform(300.0, 1500.0)
    image = np.clip(image, 0.0, None) * brain
    return image.astype(np.float32), label


def _write_case_folder(
    case_dir: Path, image: np.ndarray, label: np.ndarray | None, affine: np.ndarray, layout: DatasetLayout
) -> str:
    """Write one case of a BraTS layout: a NIfTI file per modality and, for a labelled case, the label."""
    case_dir.mkdir(parents=True, exist_ok=True)
    for stem, volume in zip(layout.file_stems(case_dir.name), image):
        nib.save(nib.Nifti1Image(volume, affine), case_dir / f"{stem}.nii.gz")
    if label is not None:
        nib.save(nib.Nifti1Image(label, affine), case_dir / f"{layout.label_stem(case_dir.name)}.nii.gz")
    return str(case_dir)


def generate_synthetic_brats(
    output_dir: str | os.PathLike,
    num_cases: int = 10,
    spatial_size: Sequence[int] | int = (64, 64, 64),
    spacing: Sequence[float] | float = 1.0,
    seed: int = 0,
    num_unlabeled: int = 0,
    prefix: str = "SynthBraTS",
    layout: str = BRATS2021_LAYOUT.name,
    anatomy: str = "ellipsoid",
    progress: bool | str | None = None,
    **kwargs,
) -> list[str]:
    """Write synthetic cases in one of the layouts of :data:`~monai_iunet.brats.LAYOUTS`.

    - ``"brats2021"`` (default): case folders ``<case>/<case>_{flair,t1,t1ce,t2}.nii.gz`` (float32) and, for labelled
      cases, ``<case>/<case>_seg.nii.gz`` (uint8, labels 1 necrosis, 2 edema, 4 enhancing).
    - ``"brats2023"``: ``<case>/<case>-{t2f,t1n,t1c,t2w,seg}.nii.gz``, enhancing tumour labelled 3.
    - ``"msd"``: Decathlon Task01 layout, ``imagesTr/<case>.nii.gz`` 4D (FLAIR, T1w, T1gd, T2w last),
      ``labelsTr/<case>.nii.gz`` (1 edema, 2 non-enhancing, 3 enhancing), unlabelled cases in ``imagesTs/``, and
      ``dataset.json``.

    Case ``i`` is named ``<prefix>_<i:05d>`` and depends only on ``(seed, i)``, so adding cases keeps the existing
    ones. The last ``num_unlabeled`` cases are written without a label (cases to infer).

    Args:
        output_dir: directory to write into (created if missing).
        num_cases: number of cases in total, labelled and unlabelled.
        spatial_size: volume shape, three sizes or one for a cube.
        spacing: voxel size in mm, three values or one.
        seed: base seed of the dataset.
        num_unlabeled: how many of the cases are written without a label.
        prefix: case-name prefix.
        layout: ``"brats2021"``, ``"brats2023"`` or ``"msd"``.
        anatomy: ``"ellipsoid"`` (lobed ellipsoid brains, :func:`synthesize_brats_case`) or ``"mni152"`` (the
            MNI152 anatomy of nilearn's templates in BraTS's 240 × 240 × 155 mm field of view,
            :func:`~monai_iunet.data.synthetic_anatomy.synthesize_mni152_case`; pass ``spacing`` from
            :func:`~monai_iunet.data.synthetic_anatomy.mni152_spacing` for a ``spatial_size`` other than BraTS's).
        progress: draw a progress bar over the cases: ``None`` (``MONAI_IUNET_PROGRESS``, else only at a
            terminal), ``"on"``, ``"off"``, ``"auto"`` or a bool (:mod:`monai_iunet.progress`).
        kwargs: further arguments of the case synthesiser (``noise_std``, ``bias_strength``).

    Returns:
        the written case folders (BraTS layouts) or 4D image files (MSD), in order.

    Example::

        >>> generate_synthetic_brats("data/synthetic_brats", num_cases=4, spatial_size=(48, 40, 36))
    """
    if str(layout).lower() not in LAYOUTS:
        raise UserInputError(f"layout must be one of {tuple(LAYOUTS)}, got {layout!r}.")
    if num_cases < 1 or not 0 <= num_unlabeled <= num_cases:
        raise UserInputError(
            f"need num_cases >= 1 and 0 <= num_unlabeled <= num_cases, got {num_cases}, {num_unlabeled}."
        )
    if anatomy not in ("ellipsoid", "mni152"):
        raise UserInputError(f"anatomy must be 'ellipsoid' or 'mni152', got {anatomy!r}.")
    synthesize = synthesize_mni152_case if anatomy == "mni152" else synthesize_brats_case
    spec = dataset_layout(layout)
    pixdim = np.asarray(ensure_tuple_rep(spacing, 3), dtype=np.float64)
    shape = np.asarray(ensure_tuple_rep(spatial_size, 3))
    affine = np.diag([-pixdim[0], -pixdim[1], pixdim[2], 1.0])  # BraTS files flip the first two axes
    affine[:3, 3] = [pixdim[0] * shape[0] / 2, pixdim[1] * shape[1] / 2, -pixdim[2] * shape[2] / 2]
    root = Path(output_dir)
    written, training, test = [], [], []
    for i in progress_bar(range(num_cases), desc="synthetic cases", unit="case", progress=progress):
        case = f"{prefix}_{i:05d}"
        image, label = synthesize(spatial_size, seed=np.random.default_rng([seed, i]), **kwargs)
        label = convert_labels(label, BRATS2021, spec.convention)
        labelled = i < num_cases - num_unlabeled
        if spec is MSD_LAYOUT:
            image_file = root / ("imagesTr" if labelled else "imagesTs") / f"{case}.nii.gz"
            image_file.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.moveaxis(image, 0, -1), affine), image_file)
            if labelled:
                (root / "labelsTr").mkdir(exist_ok=True)
                nib.save(nib.Nifti1Image(label, affine), root / "labelsTr" / f"{case}.nii.gz")
                training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
            else:
                test.append(f"./imagesTs/{case}.nii.gz")
            written.append(str(image_file))
            continue
        written.append(_write_case_folder(root / case, image, label if labelled else None, affine, spec))
    if spec is MSD_LAYOUT:
        description = {
            "name": "SyntheticBrainTumour",
            "description": "synthetic BraTS-like cases (monai_iunet.data.generate_synthetic_brats)",
            "tensorImageSize": "4D",
            "modality": {str(i): name for i, name in enumerate(spec.modality_names)},
            "labels": {
                "0": "background",
                str(MSD.edema): "edema",
                str(MSD.necrosis): "non-enhancing tumor",
                str(MSD.enhancing): "enhancing tumour",
            },
            "numTraining": len(training),
            "numTest": len(test),
            "training": training,
            "test": test,
        }
        (root / "dataset.json").write_text(json.dumps(description, indent=4))
    return written
