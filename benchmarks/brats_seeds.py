"""iUNet vs U-Net over several seeds, scored by the package's evaluator (label maps, original grid, lesion-wise).

The set-up of :mod:`benchmarks.brats_comparison` (synthetic MNI152 cases, preprocessing, loss, optimiser: its
``make_datalist``, ``make_transforms`` and ``train_model``), repeated for each seed (network initialisation and
training crops; the cases stay the same), and scored with :func:`monai_iunet.brats.evaluate_labels`: each
validation prediction is inverted (``Invertd``) from the 3 mm training grid to the case's own 2 mm grid, turned
into a BraTS label map, and scored against the reference label file. Each seed's mean over the cases is
summarised as mean ± sd over the seeds (:func:`summarise`), and each iUNet's Dice difference from the U-Net is
compared with the seed spread (:func:`spread_verdicts`). Writes ``benchmarks/results/brats_seeds_cpu.json`` (or
``--output``) after every run (seeds outer, models inner); :mod:`benchmarks.render` puts its tables between
``<!-- table: brats-seeds -->`` (and ``brats-seeds-details``) and ``<!-- /table -->`` in docs/brats_comparison.md::

    OMP_NUM_THREADS=1 nice -n 5 python -m benchmarks.brats_seeds --data-dir work/brats_seeds
    python -m benchmarks.brats_seeds --render

The seeds can run in parallel processes (``--seeds 0 --output work/seeds_s0.json``, ...), whose files ``--merge``
then adds to one results file.
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
from monai_iunet.errors import UserInputError

from .brats_comparison import make_datalist, make_transforms, train_model
from .paper_configs import build_paper_model

__all__ = ["details_table", "merge", "run", "spread_verdicts", "summarise", "table"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "brats_seeds_cpu.json"
TABLE_REGIONS = (Region.ET, Region.TC, Region.WT)  # the order of the BraTS papers' tables


def _evaluate(predict, val_cached, fixed) -> list[dict]:
    """The evaluator's rows of every validation case, on the case's own grid.

    Args:
        predict: ``item -> (3, H, W, D)`` TC/WT/ET probabilities on the training grid of the cached ``item``.
        val_cached: the preprocessed validation cases (with their transforms' record).
        fixed: the validation preprocessing, which ``Invertd`` undoes.
    """
    from monai.transforms import Invertd

    from monai_iunet.brats import evaluate_labels
    from monai_iunet.brats.scoring import load_label
    from monai_iunet.data import case_name
    from monai_iunet.transforms import ConvertBratsChannelsToLabels

    invert = Invertd("pred", transform=fixed, orig_keys="image", nearest_interp=False)
    to_labels = ConvertBratsChannelsToLabels(label_convention=BRATS2021)
    rows: list[dict] = []
    with torch.no_grad():
        for item in val_cached:
            pred = invert({"image": item["image"], "pred": predict(item)})["pred"]
            label_map = np.asarray(to_labels(torch.as_tensor(pred) > 0.5))[0]
            path = item["label"].meta["filename_or_obj"]
            ref, _, spacing = load_label(path)
            rows += evaluate_labels(label_map, ref, BRATS2021, spacing, case_name(path))
    return rows


def _network_rows(net, val_cached, fixed, crop: int, overlap: float) -> list[dict]:
    """The evaluator's rows of ``net``'s sliding-window predictions."""
    from monai.inferers import SlidingWindowInferer

    inferer = SlidingWindowInferer(roi_size=(crop,) * 3, sw_batch_size=4, overlap=overlap)
    net.eval()
    return _evaluate(lambda item: torch.sigmoid(inferer(item["image"][None], net))[0], val_cached, fixed)


def _ceiling_rows(val_cached, fixed) -> list[dict]:
    """The evaluator's rows of the reference itself sent through the training grid and back: what a perfect
    prediction on the 3 mm grid scores on the cases' own grids."""
    return _evaluate(lambda item: item["label"].float(), val_cached, fixed)  # a MetaTensor: Invertd needs one


def _means(rows: list[dict]) -> dict[str, float]:
    return {
        f"{m}_{r}": float(np.mean([x[m] for x in rows if x["region"] == r]))
        for m in ("dice", "sensitivity", "hd95", "nsd", "lesionwise_dice", "lesionwise_hd95")
        for r in TABLE_REGIONS
    }


def _one_run(name: str, seed: int, data: tuple, args: argparse.Namespace) -> dict:
    """Train ``name`` from ``seed`` and score it: the run's record in the results file."""
    train_cached, random_tf, val_cached, val_fixed = data
    torch.manual_seed(seed)
    net, info = build_paper_model(name, width_scale=args.width_scale)
    args.seed = seed
    trained = train_model(net, train_cached, random_tf, args, f"{name} seed {seed}")
    t0 = time.perf_counter()
    rows = _network_rows(net, val_cached, val_fixed, args.crop, args.overlap)
    return {
        "model": name,
        "label": info["label"],
        "seed": seed,
        "params": sum(p.numel() for p in net.parameters()),
        **{k: trained[k] for k in ("steps", "capped", "train_seconds", "step_time_s", "epoch_losses")},
        "eval_seconds": time.perf_counter() - t0,
        "means": _means(rows),
        "rows": rows,
    }


def _command() -> str:
    return (
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} nice -n 5 python -m benchmarks.brats_seeds "
        + shlex.join(sys.argv[1:])
    )


def _data(args: argparse.Namespace, train: bool = True) -> tuple:
    """The cached training cases (none unless ``train``), the random training transforms, the cached validation
    cases and their preprocessing."""
    from monai.data import CacheDataset
    from monai.transforms import Compose, EnsureTyped

    train_items, val_items = make_datalist(Path(args.data_dir), args.num_train, args.num_val, args.size, 0)
    fixed, random_tf = make_transforms(args.crop, args.num_samples, args.pixdim)
    # validation keeps the transforms' record (track_meta) so that Invertd can map predictions back
    val_fixed = Compose([*fixed.transforms[:-1], EnsureTyped(["image", "label"], dtype=torch.float32)])
    train_cached = list(CacheDataset(train_items, transform=fixed, num_workers=0, progress=False)) if train else []
    val_cached = list(CacheDataset(val_items, transform=val_fixed, num_workers=0, progress=False))
    return train_cached, random_tf, val_cached, val_fixed


def ceiling(args: argparse.Namespace) -> dict:
    """Score the validation references sent through the training grid and back; add them to ``--output``
    (``"ceiling"``), which the tables show as the best a prediction on the training grid can reach."""
    _, _, val_cached, val_fixed = _data(args, train=False)
    output = Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {"command": _command(), "runs": {}}
    rows = _ceiling_rows(val_cached, val_fixed)
    results["ceiling"] = {"means": _means(rows), "rows": rows}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    return results


def run(args: argparse.Namespace) -> dict:
    """Every seed of every model (seeds outer, so that a run stopped early has every model at the same seeds)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.perf_counter()
    output = Path(args.output)
    if args.ceiling:
        return ceiling(args)
    data = _data(args)
    results = {
        "command": _command(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("render", "output", "seed", "merge", "ceiling")},
        "torch": torch.__version__,
        "runs": {},
    }
    for seed in args.seeds:
        for name in args.models:
            run_ = results["runs"][f"{name}_s{seed}"] = _one_run(name, seed, data, args)
            print(f"  {name} seed {seed}: {run_['means']} ({time.perf_counter() - start:.0f} s)", flush=True)
            results["total_seconds"] = time.perf_counter() - start
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(results, indent=1) + "\n")
    return results


def merge(output: Path, others: list[Path]) -> dict:
    """Add the runs of the results files ``others`` (e.g. seeds run in parallel processes) to ``output`` (a new
    file if it does not exist).

    The merged file keeps every run, every producing command (``"commands"``) and the first ``"ceiling"``; a run
    that two files share (same model and seed) is an error, since they would silently replace each other.
    """
    results = json.loads(Path(output).read_text()) if Path(output).exists() else {"runs": {}, "commands": []}
    commands = results.pop("commands", [results.get("command")])
    for path in others:
        other = json.loads(Path(path).read_text())
        twice = sorted(set(results["runs"]) & set(other["runs"]))
        if twice:
            raise UserInputError(
                f"{path} and {output} both hold the runs {twice}; merge only files of other models or seeds."
            )
        results["runs"].update(other["runs"])
        if "ceiling" in other:
            results.setdefault("ceiling", other["ceiling"])
        commands += other.get("commands", [other.get("command")])
        results.setdefault("settings", other.get("settings"))
        results.setdefault("torch", other.get("torch"))
        results["total_seconds"] = max(results.get("total_seconds", 0), other.get("total_seconds", 0))
    results["commands"] = commands
    results["command"] = " && ".join(c for c in commands if c)
    Path(output).write_text(json.dumps(results, indent=1) + "\n")
    return results


def summarise(results: dict) -> dict[str, dict]:
    """Per model (in the order of the runs): its label, seeds, parameters, steps, median step time, and mean and sd
    over its seeds of each seed's mean over the cases, by ``"<metric>_<region>"``.

    The sd is the sample sd (``ddof=1``); NaN with one seed.
    """
    models: dict[str, list[dict]] = {}
    for r in results["runs"].values():
        models.setdefault(r["model"], []).append(r)
    out = {}
    for name, runs in models.items():
        keys = runs[0]["means"]
        values = {k: np.array([r["means"][k] for r in runs], dtype=float) for k in keys}
        out[name] = {
            "label": runs[0]["label"],
            "seeds": [r["seed"] for r in runs],
            "params": runs[0]["params"],
            "steps": [r["steps"] for r in runs],
            "capped": sum(bool(r["capped"]) for r in runs),
            "step_time_s": float(np.median([r["step_time_s"] for r in runs])) if "step_time_s" in runs[0] else None,
            "mean": {k: float(v.mean()) for k, v in values.items()},
            "sd": {k: float(v.std(ddof=1)) if len(v) > 1 else float("nan") for k, v in values.items()},
        }
    return out


def _cell(mean: float, sd: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if np.isfinite(sd) else f"{mean:.{digits}f} (one seed)"


def _header(cols) -> list[str]:
    names = {"dice": "Dice", "hd95": "HD95 (mm)", "lesionwise_dice": "lesion-wise Dice"}
    return [
        "| model | seeds | " + " | ".join(f"{names[m]} {g.upper()}" for m, g in cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]


def table(results: dict) -> str:
    """Mean ± sd over seeds of each model's per-case means: Dice and HD95 per region, and whether each iUNet's
    Dice differs from the U-Net's by more than the seed spread."""
    stats = summarise(results)
    cols = [(m, g) for m in ("dice", "hd95") for g in TABLE_REGIONS]
    lines = _header(cols)
    for s in stats.values():
        cells = [_cell(s["mean"][f"{m}_{g}"], s["sd"][f"{m}_{g}"], 1 if m == "hd95" else 3) for m, g in cols]
        lines.append(f"| {s['label']} | {len(s['seeds'])} | " + " | ".join(cells) + " |")
    if "ceiling" in results:
        means = results["ceiling"]["means"]
        cells = [f"{means[f'{m}_{g}']:.{1 if m == 'hd95' else 3}f}" for m, g in cols]
        lines.append("| reference through the 3 mm grid (ceiling) | – | " + " | ".join(cells) + " |")
    verdicts = spread_verdicts(stats)
    return "\n".join(lines) + ("\n\n" + "\n".join(f"- {v}" for v in verdicts) if verdicts else "")


def details_table(results: dict) -> str:
    """Lesion-wise Dice (mean ± sd over seeds), parameters, training steps and step time of every model."""
    stats = summarise(results)
    cols = [("lesionwise_dice", g) for g in TABLE_REGIONS]
    head, rule = _header(cols)
    lines = [head + " parameters | steps per seed | capped runs | median step (s) |", rule + "---:|---|---:|---:|"]
    for s in stats.values():
        cells = [_cell(s["mean"][f"{m}_{g}"], s["sd"][f"{m}_{g}"], 3) for m, g in cols]
        step = "" if s["step_time_s"] is None else f"{s['step_time_s']:.2f}"
        steps = ", ".join(str(n) for n in s["steps"])
        lines.append(
            f"| {s['label']} | {len(s['seeds'])} | "
            + " | ".join(cells)
            + f" | {s['params']:,} | {steps} | {s['capped']} | {step} |"
        )
    return "\n".join(lines)


def spread_verdicts(stats: dict[str, dict], reference: str = "unet") -> list[str]:
    """For each iUNet model, its Dice difference from ``reference`` per region, and whether it exceeds the seed
    spread: ``|difference| > sd_iunet + sd_reference``, i.e. the two mean ± sd ranges do not overlap.

    Returns:
        one sentence per iUNet model; none without the reference model.
    """
    if reference not in stats:
        return []
    ref = stats[reference]
    out = []
    for name, s in stats.items():
        if not name.startswith("iunet"):
            continue
        parts = []
        for g in TABLE_REGIONS:
            key = f"dice_{g}"
            diff, spread = s["mean"][key] - ref["mean"][key], s["sd"][key] + ref["sd"][key]
            if not np.isfinite(spread):
                verdict = "one seed: no spread to compare with"
            else:
                verdict = f"{'exceeds' if abs(diff) > spread else 'within'} the seed spread {spread:.3f}"
            parts.append(f"{g.upper()} {diff:+.3f} ({verdict})")
        out.append(f"Dice {s['label']} − {ref['label']}: " + ", ".join(parts) + ".")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="work/brats_seeds")
    parser.add_argument("--output", default=str(RESULTS), help="the results file (the docs render the default)")
    parser.add_argument("--num-train", type=int, default=24)
    parser.add_argument("--num-val", type=int, default=6)
    parser.add_argument("--size", type=int, nargs=3, default=(120, 120, 78))
    parser.add_argument("--pixdim", type=float, default=3.0)
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--overlap", type=float, default=0.0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cap-minutes", type=float, default=60.0)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width-scale", type=float, default=0.5)
    parser.add_argument("--models", nargs="+", default=["iunet16", "unet", "segresnet", "iunet32"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--render", action="store_true", help="only render the doc's tables from the json")
    parser.add_argument("--ceiling", action="store_true", help="only score the references through the 3 mm grid")
    parser.add_argument("--merge", nargs="+", type=Path, help="only add these results files' runs to --output")
    args = parser.parse_args(argv)
    from .render import run_then_render

    if args.merge:
        merge(Path(args.output), args.merge)
        args.render = True
    return run_then_render(args, run)


if __name__ == "__main__":
    raise SystemExit(main())
