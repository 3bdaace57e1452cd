"""The foam-phantom CT post-processing dataset: pairs of (FBP reconstruction, ground truth) saved as NIfTI.

Each volume is a foam phantom (:mod:`monai_iunet.data.foam`) and the FBP reconstruction of its simulated,
undersampled and noisy parallel-beam scan (:mod:`monai_iunet.data.ct`), as in the iUNet paper's §4.1. The dataset is
written in the Medical Segmentation Decathlon layout that :func:`monai.data.load_decathlon_datalist` reads::

    <output_dir>/dataset.json           {"training": [{"image": "fbp/foam_000.nii.gz", "label": "truth/..."}], ...}
    <output_dir>/fbp/foam_000.nii.gz    the network input
    <output_dir>/truth/foam_000.nii.gz  the target

Every volume has its own seed derived from ``seed`` (numpy ``SeedSequence``), so a dataset is reproducible and its
volumes are independent; volume ``i`` is the same whatever the number of workers.

Command line::

    python -m monai_iunet.data.foam_ct --output_dir data/foam_ct --num_train 40 --spatial_size 64
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from monai.utils import ensure_tuple_rep

from monai_iunet.data.ct import simulate_fbp
from monai_iunet.data.foam import generate_foam_phantom
from monai_iunet.data.generate import ensure_generated, is_missing_or_empty
from monai_iunet.errors import InputNotFoundError, UserInputError
from monai_iunet.progress import progress_bar

__all__ = ["DATALIST_NAME", "make_foam_ct_pair", "generate_foam_ct_dataset", "ensure_foam_ct_dataset"]

DATALIST_NAME = "dataset.json"


def make_foam_ct_pair(
    spatial_size: Sequence[int] | int = 64,
    seed: int | np.random.SeedSequence | None = None,
    phantom_kwargs: dict[str, Any] | None = None,
    **ct_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """One foam phantom and the FBP reconstruction of its simulated scan.

    Args:
        spatial_size: volume size per axis (int for a cube).
        seed: seed of the phantom, the scan geometry and the noise.
        phantom_kwargs: passed to :func:`~monai_iunet.data.foam.generate_foam_phantom`.
        ct_kwargs: passed to :func:`~monai_iunet.data.ct.simulate_fbp` (``num_angles``, ``photons``, ...).

    Returns:
        ``(fbp, truth)``, float32 arrays of shape ``spatial_size``.
    """
    rng = np.random.default_rng(seed)
    truth, _ = generate_foam_phantom(spatial_size, seed=rng, **(phantom_kwargs or {}))
    return simulate_fbp(truth, seed=rng, **ct_kwargs), truth


def _write_pair(args: tuple[str, str, tuple[int, ...], np.random.SeedSequence, dict, dict]) -> None:
    output_dir, name, size, seed, phantom_kwargs, ct_kwargs = args
    fbp, truth = make_foam_ct_pair(size, seed, phantom_kwargs, **ct_kwargs)
    for folder, volume in (("fbp", fbp), ("truth", truth)):
        nib.save(nib.Nifti1Image(volume, np.eye(4)), os.path.join(output_dir, folder, f"{name}.nii.gz"))


def generate_foam_ct_dataset(
    output_dir: str,
    num_train: int = 16,
    num_val: int = 4,
    num_test: int = 4,
    spatial_size: Sequence[int] | int = 32,
    seed: int = 0,
    num_workers: int = 0,
    phantom_kwargs: dict[str, Any] | None = None,
    progress: bool | str | None = None,
    **ct_kwargs: Any,
) -> str:
    """Write a foam CT dataset of ``num_train + num_val + num_test`` NIfTI pairs and its ``dataset.json``.

    Args:
        output_dir: folder to write into (created if missing).
        num_train: number of training volumes (``"training"`` in the datalist).
        num_val: number of validation volumes (``"validation"``).
        num_test: number of test volumes (``"test"``).
        spatial_size: volume size per axis (int for a cube).
        seed: dataset seed; each volume's seed is derived from it.
        num_workers: worker processes (0: in this process).
        phantom_kwargs: passed to :func:`~monai_iunet.data.foam.generate_foam_phantom`.
        progress: draw a progress bar over the volumes: ``None`` (``MONAI_IUNET_PROGRESS``, else only at a
            terminal), ``"on"``, ``"off"``, ``"auto"`` or a bool (:mod:`monai_iunet.progress`).
        ct_kwargs: passed to :func:`~monai_iunet.data.ct.simulate_fbp` (``num_angles``, ``photons``, ...).

    Returns:
        the path of ``dataset.json``.
    """
    counts = {"training": num_train, "validation": num_val, "test": num_test}
    if any(n < 0 for n in counts.values()) or sum(counts.values()) == 0:
        raise UserInputError(f"the numbers of volumes must be non-negative and not all zero, got {counts}.")
    size = tuple(int(s) for s in ensure_tuple_rep(spatial_size, 3))
    for folder in ("fbp", "truth"):
        os.makedirs(os.path.join(output_dir, folder), exist_ok=True)
    names = [f"foam_{i:03d}" for i in range(sum(counts.values()))]
    seeds = np.random.SeedSequence(seed).spawn(len(names))
    jobs = [(output_dir, name, size, s, phantom_kwargs or {}, ct_kwargs) for name, s in zip(names, seeds)]
    with contextlib.ExitStack() as stack:
        if num_workers > 0:
            pool = ProcessPoolExecutor(num_workers, initializer=torch.set_num_threads, initargs=(1,))
            written = stack.enter_context(pool).map(_write_pair, jobs)
        else:
            written = map(_write_pair, jobs)
        for _ in progress_bar(written, total=len(jobs), desc="foam CT volumes", unit="volume", progress=progress):
            pass

    datalist: dict[str, Any] = {
        "name": "foam_ct",
        "description": "Foam phantoms (Pelt et al. 2018) and FBP reconstructions of undersampled noisy parallel-beam "
        "CT, generated by monai_iunet.data.foam_ct",
        "generator": {"spatial_size": size, "seed": seed, "phantom_kwargs": phantom_kwargs or {}, **ct_kwargs},
    }
    start = 0
    for key, n in counts.items():
        datalist[key] = [
            {"image": f"fbp/{name}.nii.gz", "label": f"truth/{name}.nii.gz", "case": name}
            for name in names[start : start + n]
        ]
        start += n
    path = os.path.join(output_dir, DATALIST_NAME)
    with open(path, "w") as f:
        json.dump(datalist, f, indent=2)
    return path


def ensure_foam_ct_dataset(dataset_dir: str, **kwargs: Any) -> str:
    """The path of ``dataset_dir/dataset.json``, generating the dataset first where ``dataset_dir`` is missing or empty.

    Used by the CT post-processing bundle, so that it runs out of the box; an existing dataset is never modified.
    The dataset is generated aside and renamed into place, once per distributed run (see
    :func:`~monai_iunet.data.ensure_generated`).

    Args:
        dataset_dir: the dataset folder.
        kwargs: passed to :func:`generate_foam_ct_dataset` when the dataset is generated.

    Raises:
        FileNotFoundError: ``dataset_dir`` holds files but no ``dataset.json``.
    """

    def needs_generating(folder: Path) -> bool:
        if (folder / DATALIST_NAME).is_file():
            return False
        if not is_missing_or_empty(folder):
            raise InputNotFoundError(
                f"{str(folder)!r} holds files but no {DATALIST_NAME}: write one in the Decathlon layout, "
                '{"training": [{"image": "<fbp>.nii.gz", "label": "<truth>.nii.gz"}, ...], "validation": [...], '
                '"test": [...]} with paths relative to the folder, or point dataset_dir at a missing or empty folder '
                "to generate the default foam phantom dataset there."
            )
        return True

    folder = ensure_generated(
        dataset_dir,
        lambda partial: generate_foam_ct_dataset(str(partial), **kwargs),
        needs_generating,
        description="the foam CT dataset",
    )
    return os.path.join(str(folder), DATALIST_NAME)


if __name__ == "__main__":
    import fire

    fire.Fire(generate_foam_ct_dataset)
