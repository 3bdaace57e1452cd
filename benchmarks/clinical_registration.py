"""Clinical path benchmark: registration accuracy, Dice on scanner exports vs aligned cases, preprocessing time.

For synthetic scanner exports (:func:`monai_iunet.data.synthetic_exports.make_scanner_export`: T1, T2, FLAIR moved
by several degrees and millimetres, on their own grids, the T1ce as reference):

1. **Registration**: normalised cross-correlation (NCC) within the brain of each registered modality with the
   aligned truth (and of the unregistered one, resampled on the reference grid as it lies in scanner space), and
   the target registration error (TRE, mean over brain voxels of the distance between the found and the true
   motion of the point), per modality.
2. **Dice**: whole-tumour Dice of a trained bundle (``--bundle``) on the export (the whole ``segment`` pipeline,
   DICOM in) and on the aligned case (the truth modalities straight into the same network), against the truth.
3. **Time**: read, register and resample four series of ``--timing-size`` (default 256×256×150) with
   ``--threads`` (default 2) SimpleITK threads.

Usage (trained demo model: README command 1 into a copy of the bundle)::

    cp -r bundles/brats_iunet /tmp/brats_demo && OMP_NUM_THREADS=1 python -m monai.bundle run train_and_evaluate \\
        --config_file "['/tmp/brats_demo/configs/train.json','/tmp/brats_demo/configs/evaluate.json']" \\
        --bundle_root /tmp/brats_demo
    OMP_NUM_THREADS=1 python -m benchmarks.clinical_registration --bundle /tmp/brats_demo --cases 4
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from monai_iunet.brats import MODALITY_ORDER, Modality
from monai_iunet.clinical import BundleSegmenter, read_series, register_rigid, segment
from monai_iunet.clinical.preprocessing import resample_to_reference
from monai_iunet.data.synthetic_exports import make_scanner_export

MOVED = tuple(m for m in MODALITY_ORDER if m != Modality.T1CE)


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def _array(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    """Whole-tumour Dice of two WT masks by the package's evaluator (both empty: 1)."""
    from monai_iunet.brats.evaluation import dice_and_hd95

    return dice_and_hd95(np.asarray(a, bool), np.asarray(b, bool))[0]


def registration_accuracy(export: dict) -> dict[str, dict[str, float]]:
    """NCC (registered, unregistered) and TRE of each moved modality of one export."""
    reference = read_series(Modality.T1CE, export["dicom"][Modality.T1CE]).image
    mask = _array(export["truth"]["brain_mask"]) > 0
    motion = json.loads(Path(export["truth"]["motion"]).read_text())
    points = [reference.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in np.argwhere(mask)[::53]]
    out = {}
    for name in MOVED:
        moving = read_series(name, export["dicom"][name]).image
        result = register_rigid(reference, moving)
        m = motion[name]
        true = sitk.Euler3DTransform(m["centre_mm"], *np.deg2rad(m["angles_deg"]), m["translation_mm"])
        tre = [np.linalg.norm(np.subtract(result.transform.TransformPoint(p), true.TransformPoint(p))) for p in points]
        truth = _array(export["truth"][name])
        registered = sitk.GetArrayFromImage(resample_to_reference(moving, reference, result.transform))
        unregistered = sitk.GetArrayFromImage(resample_to_reference(moving, reference, sitk.Transform()))
        out[name] = {
            "ncc": _ncc(registered, truth, mask),
            "ncc_unregistered": _ncc(unregistered, truth, mask),
            "tre_mm": float(np.mean(tre)),
            "tre_max_mm": float(np.max(tre)),
            "failed": result.failed,
        }
    return out


def dice_export_vs_aligned(export: dict, segmenter: BundleSegmenter, workdir: Path) -> dict[str, float]:
    """Whole-tumour Dice of the bundle on the export (whole pipeline) and on the aligned truth modalities."""
    truth = _array(export["truth"]["seg"]) > 0
    segment(**export["dicom"], output=workdir / "out", segmenter=segmenter, overwrite=True)
    on_export = _array(workdir / "out" / "segmentation.nii.gz") > 0
    aligned = segmenter({m: export["truth"][m] for m in MODALITY_ORDER})  # (x, y, z)
    return {"dice_export": _dice(on_export, truth), "dice_aligned": _dice(np.transpose(aligned, (2, 1, 0)) > 0, truth)}


def preprocessing_time(size: tuple[int, int, int], threads: int, folder: Path) -> dict:
    """Wall and CPU seconds to read (DICOM), register and resample four series of ``size`` with ``threads`` ITK
    threads (the export is written to ``folder`` once and reused)."""
    dicom = {m: folder / "dicom" / m for m in MODALITY_ORDER}
    if not all(d.is_dir() for d in dicom.values()):
        dicom = make_scanner_export(folder, spatial_size=size, seed=100, formats=("dicom",))["dicom"]
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    wall: dict[str, float] = {"read": 0.0, "register": 0.0, "resample": 0.0}
    cpu = dict(wall)

    def timed(step, fn, *args):
        w, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        wall[step] += time.perf_counter() - w
        cpu[step] += time.process_time() - c
        return out

    series = {m: timed("read", read_series, m, dicom[m]) for m in dicom}
    reference = series[Modality.T1CE].image
    for name in MOVED:
        result = timed("register", register_rigid, reference, series[name].image)
        timed("resample", resample_to_reference, series[name].image, reference, result.transform)
    return {
        "wall_s": {**wall, "total": sum(wall.values())},
        "cpu_s": {**cpu, "total": sum(cpu.values())},
        "sizes": {m: list(s.image.GetSize()) for m, s in series.items()},
        "load_average": list(os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", help="bundle with trained weights (for the Dice comparison)")
    parser.add_argument("--cases", type=int, default=4, help="number of synthetic exports (default: 4)")
    parser.add_argument("--size", type=int, default=64, help="reference grid size of the exports (default: 64)")
    parser.add_argument("--timing-size", type=int, nargs=3, default=[256, 256, 150], help="series size for timing")
    parser.add_argument("--threads", type=int, default=2, help="SimpleITK threads for timing (default: 2)")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--timing-export", help="folder for the large export (kept and reused; default: temporary)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    results: dict = {"cases": []}
    segmenter = BundleSegmenter(args.bundle, device="cpu") if args.bundle else None
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.cases):
            export = make_scanner_export(Path(tmp) / f"case{seed}", spatial_size=args.size, seed=1000 + seed)
            case = {"seed": 1000 + seed, "registration": registration_accuracy(export)}
            if segmenter is not None:
                case.update(dice_export_vs_aligned(export, segmenter, Path(tmp) / f"case{seed}"))
            results["cases"].append(case)
            print(json.dumps(case))
        if not args.skip_timing:
            folder = Path(args.timing_export) if args.timing_export else Path(tmp) / "large"
            results["timing"] = preprocessing_time(tuple(args.timing_size), args.threads, folder)
            print(json.dumps(results["timing"]))

    print("\n| modality | NCC registered | NCC unregistered | TRE mean (mm) | TRE max (mm) |\n|---|---|---|---|---|")
    for name in MOVED if results["cases"] else ():
        rows = [c["registration"][name] for c in results["cases"]]
        mean = {k: np.mean([r[k] for r in rows]) for k in ("ncc", "ncc_unregistered", "tre_mm")}
        worst_ncc, worst_tre = min(r["ncc"] for r in rows), max(r["tre_max_mm"] for r in rows)
        print(
            f"| {name} | {mean['ncc']:.3f} (min {worst_ncc:.3f}) | {mean['ncc_unregistered']:.2f} | "
            f"{mean['tre_mm']:.2f} | {worst_tre:.2f} |"
        )
    if segmenter is not None:
        print("\n| case | WT Dice on export | WT Dice on aligned case | difference |\n|---|---|---|---|")
        for c in results["cases"]:
            diff = c["dice_export"] - c["dice_aligned"]
            print(f"| {c['seed']} | {c['dice_export']:.3f} | {c['dice_aligned']:.3f} | {diff:+.3f} |")
    if "timing" in results:
        t = results["timing"]
        print(f"\npreprocessing of four {'x'.join(map(str, args.timing_size))} series, {args.threads} threads:")
        for kind in ("wall_s", "cpu_s"):
            print(f"  {kind}: " + ", ".join(f"{k} {v:.1f} s" for k, v in t[kind].items()))
        print(f"  load average {t['load_average']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
