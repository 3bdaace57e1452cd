"""The results on the reference series' grid: NIfTI label map, DICOM Segmentation (highdicom), overview figure,
and the output folder that appears only when complete."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from monai_iunet.brats import REGION_ORDER, LabelConvention, TumourPart
from monai_iunet.clinical.io import ClinicalInputError

__all__ = [
    "NEOPLASM",
    "OUTPUT_NAMES",
    "atomic_output_dir",
    "label_image",
    "region_volumes_ml",
    "write_dicom_seg",
    "write_overview",
]

OUTPUT_NAMES = (
    "segmentation.nii.gz",
    "segmentation.dcm",
    "volumes_sr.dcm",
    "brain_mask.nii.gz",
    "report.json",
    "overview.png",
    "preprocessed",
)
"""What the pipeline writes into its output folder."""

NEOPLASM = ("108369006", "Neoplasm")
"""The SNOMED CT segmented property type of every region's DICOM-SEG segment."""


def region_volumes_ml(label: sitk.Image, convention: LabelConvention) -> dict[str, float]:
    """Volume of each region (``{"TC": ..., "WT": ..., "ET": ...}``) in mL (voxel count × voxel volume / 1000).

    Args:
        label: the label map, in ``convention``.
        convention: the label convention of ``label``.
    """
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    masks = convention.region_masks(sitk.GetArrayViewFromImage(label))
    return {region.name: float(mask.sum()) * voxel_ml for region, mask in masks.items()}


def label_image(label_xyz: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A label map in voxel order ``(x, y, z)`` as a uint8 image with ``reference``'s geometry."""
    if tuple(label_xyz.shape) != tuple(reference.GetSize()):
        raise RuntimeError(f"the label map has shape {label_xyz.shape}, the reference grid {reference.GetSize()}.")
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(label_xyz, (2, 1, 0)).astype(np.uint8)))
    image.CopyInformation(reference)
    return image


def write_dicom_seg(
    label: sitk.Image, convention: LabelConvention, reference_files: Sequence[str], path: str | os.PathLike
) -> None:
    """Write a DICOM Segmentation (binary, one segment per region TC/WT/ET) referencing the reference series.

    Args:
        label: the label map on the reference series' grid (slice ``k`` is ``reference_files[k]``).
        convention: the label convention of ``label``.
        reference_files: the reference series' DICOM files, in slice order.
        path: the ``.dcm`` file to write.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    import monai_iunet

    sources = [pydicom.dcmread(f) for f in reference_files]
    masks = convention.region_masks(sitk.GetArrayFromImage(label))  # each (z, y, x)
    # (frames, rows, cols, segments)
    pixels = np.stack([masks[region] for region in REGION_ORDER], axis=-1).astype(np.uint8)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="monai-iunet BraTS iUNet", version=monai_iunet.__version__, family=codes.cid7162.ArtificialIntelligence
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"{region.title} ({region.name})",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=hd.sr.CodedConcept(NEOPLASM[0], "SCT", NEOPLASM[1]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[codes.SCT.Brain],
        )
        for number, region in enumerate(REGION_ORDER, start=1)
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=300,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="monai-iunet",
        manufacturer_model_name="brats_iunet",
        software_versions=monai_iunet.__version__,
        device_serial_number="0",
        series_description="iUNet tumour segmentation",
        omit_empty_frames=False,
    )
    seg.save_as(str(path))


def write_overview(
    reference: sitk.Image, label: sitk.Image, convention: LabelConvention, path: str | os.PathLike, title: str = ""
) -> None:
    """Three orthogonal slices (in the reference grid's axes) through the tumour centre, labels overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    image = sitk.GetArrayFromImage(reference)  # (z, y, x)
    lab = sitk.GetArrayFromImage(label)
    tumour = np.argwhere(lab > 0)
    centre = tumour.mean(0).round().astype(int) if len(tumour) else np.asarray(lab.shape) // 2
    sx, sy, sz = reference.GetSpacing()
    overlay = np.zeros(lab.shape, np.uint8)
    parts = (TumourPart.EDEMA, TumourPart.NECROSIS, TumourPart.ENHANCING)  # the colours of the overlay, in order
    for value, part in enumerate(parts, start=1):
        overlay[lab == convention.value(part)] = value
    cmap = ListedColormap([(0, 0, 0, 0), (0.2, 0.8, 0.2, 0.45), (0.95, 0.2, 0.2, 0.6), (1.0, 0.85, 0.1, 0.6)])
    views = [
        (f"axial (k = {centre[0]})", image[centre[0]], overlay[centre[0]], sy / sx),
        (f"coronal (j = {centre[1]})", image[:, centre[1]], overlay[:, centre[1]], sz / sx),
        (f"sagittal (i = {centre[2]})", image[:, :, centre[2]], overlay[:, :, centre[2]], sz / sy),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    vmax = float(np.percentile(image[image > 0], 99.5)) if (image > 0).any() else 1.0
    for ax, (name, plane, over, aspect) in zip(axes, views):
        ax.imshow(plane, cmap="gray", vmin=0, vmax=vmax, origin="lower", aspect=aspect, interpolation="nearest")
        ax.imshow(over, cmap=cmap, vmin=0, vmax=3, origin="lower", aspect=aspect, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i)) for i in (1, 2, 3)]
    fig.legend(handles, [str(part) for part in parts], loc="lower center", ncol=3, frameon=False)
    fig.suptitle(title or "segmentation on the reference series")
    fig.savefig(str(path), dpi=100)
    plt.close(fig)


@contextmanager
def atomic_output_dir(output: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """A temporary folder next to ``output`` to write the results in; moved into ``output`` only on success.

    Raises:
        ClinicalInputError: ``output`` already holds results and ``overwrite`` is false, or is a file.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise ClinicalInputError(f"--output {output}: is a file; give a folder.")
    existing = [n for n in OUTPUT_NAMES if (output / n).exists()]
    if existing and not overwrite:
        raise ClinicalInputError(
            f"--output {output}: already holds results ({', '.join(existing)}); pass --overwrite or another folder."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the results folder is not
    try:
        yield tmp
        if not output.exists():
            os.replace(tmp, output)
            return
        for name in OUTPUT_NAMES:
            old = output / name
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
        for item in tmp.iterdir():
            os.replace(item, output / item.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
