"""Whole-head study benchmark: series identification, brain extraction and tumour Dice, study folder in.

For synthetic whole-head studies (:func:`monai_iunet.data.synthetic_study.make_head_study`: localizer, T1, DWI, ADC,
T1ce, T2, FLAIR of a head built on the MNI152 anatomy, vendor-like headers, patient motion between series):

1. **Identification**: the four series :func:`~monai_iunet.clinical.segment_study` chose vs the truth, and the
   refusal of a study with a second post-contrast T1 (the message is printed).
2. **Brain extraction**: Dice of the pipeline's ``brain_mask.nii.gz`` (deepbet, auto-decided) with the truth.
3. **Tumour Dice**: TC/WT/ET Dice of the whole pipeline (the study folder in, nothing else given) and of the same
   case skull-stripped and aligned (the truth modalities straight into the same network), against the truth.
4. **Time**: wall and CPU time (this process, all threads) per step, from the report.

Usage (trained demo model: README command 1 into a copy of the bundle)::

    OMP_NUM_THREADS=1 python -m benchmarks.whole_head_study --bundle /tmp/brats_demo --studies 4 --out /tmp/heads
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from monai_iunet.brats import BRATS2021, MODALITY_ORDER, REGION_ORDER, LabelConvention
from monai_iunet.clinical import AmbiguousSeriesError, BundleSegmenter, segment_study
from monai_iunet.data.synthetic_study import make_head_study


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks by the package's evaluator (both empty: 1; docs/evaluation.md)."""
    from monai_iunet.brats.evaluation import dice_and_hd95

    return dice_and_hd95(np.asarray(a, bool), np.asarray(b, bool))[0]


def _array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _region_dice(label: np.ndarray, truth: np.ndarray, convention: LabelConvention) -> dict[str, float]:
    """TC/WT/ET Dice of a label map in ``convention`` against a BraTS 2018-2021 truth."""
    found, true = convention.region_masks(label), BRATS2021.region_masks(truth)
    return {r.name: _dice(found[r], true[r]) for r in REGION_ORDER}


def run_study(seed: int, out: Path, segmenter: BundleSegmenter, voxel_scale: float, resolution: float) -> dict:
    t = time.perf_counter()
    study = make_head_study(out / f"study{seed}", seed=seed, voxel_scale=voxel_scale, resolution_mm=resolution)
    generate_s = time.perf_counter() - t
    result_dir = out / f"result{seed}"
    shutil.rmtree(result_dir, ignore_errors=True)
    report = segment_study(out / f"study{seed}" / "dicom", result_dir, segmenter=segmenter, show=print)
    truth = study["truth"]
    identified = all(report["series"][m]["SeriesInstanceUID"] == study["series"][m] for m in report["series"])
    label = _array(result_dir / "segmentation.nii.gz")
    seg = _array(truth["seg"])
    aligned = np.transpose(segmenter({m: truth[m] for m in MODALITY_ORDER}), (2, 1, 0))
    return {
        "seed": seed,
        "manufacturer": study["manufacturer"],
        "size": report["reference_grid"]["size"],
        "identified": identified,
        "skull_strip": report["skull_strip"],
        "brain_dice": _dice(_array(result_dir / "brain_mask.nii.gz") > 0, _array(truth["brain_mask"]) > 0),
        "dice_pipeline": _region_dice(label, seg, segmenter.labels),
        "dice_aligned": _region_dice(aligned, seg, segmenter.labels),
        "written": report["written"],
        "not_written": report["not_written"],
        "timings": {**report["timings"], "generate_s": generate_s},
    }


def ambiguous_refusal(out: Path, voxel_scale: float, resolution: float) -> str:
    make_head_study(out / "ambiguous", seed=99, voxel_scale=voxel_scale, resolution_mm=resolution, extra_t1ce=True)
    try:
        segment_study(out / "ambiguous" / "dicom", out / "ambiguous_result", bundle="unused", show=print)
    except AmbiguousSeriesError as e:
        assert not (out / "ambiguous_result").exists()
        return str(e)
    raise RuntimeError("the ambiguous study was not refused")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle with trained models/model.pt")
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--voxel-scale", type=float, default=1.0, help="1: a 256 x 256 x 150 T1ce")
    parser.add_argument("--resolution", type=float, default=1.5, help="voxel size of the synthetic head (mm)")
    parser.add_argument("--out", default="/tmp/whole_head_study")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    refusal = ambiguous_refusal(out, 3.0, 3.0)
    print("ambiguous study refused:", refusal)
    segmenter = BundleSegmenter(args.bundle, device="cpu")
    results = []
    for seed in range(args.first_seed, args.first_seed + args.studies):
        results.append(run_study(seed, out, segmenter, args.voxel_scale, args.resolution))
        print(json.dumps(results[-1], indent=1))
        (out / "results.json").write_text(json.dumps({"studies": results, "refusal": refusal}, indent=2))
    print("| study | vendor | identified | brain Dice | WT pipeline / aligned | TC | ET |")
    for r in results:
        p, a = r["dice_pipeline"], r["dice_aligned"]
        print(
            f"| {r['seed']} | {r['manufacturer']} | {r['identified']} | {r['brain_dice']:.3f} | "
            + " | ".join(f"{p[k]:.3f} / {a[k]:.3f} ({p[k] - a[k]:+.3f})" for k in ("WT", "TC", "ET"))
            + " |"
        )


if __name__ == "__main__":
    main()
