"""Run the BraTS bundle's demo and write its numbers into docs/README.md and configs/metadata.json.

The README's "Performance" numbers and metadata.json's ``eval_metrics`` come from this script, never by hand:

    OMP_NUM_THREADS=1 python bundles/brats_iunet/scripts/bundle_numbers.py

It copies the bundle to a temporary folder (the repository's bundle stays clean), runs the demo command of the
README (``train_and_evaluate`` on the synthetic default data), times it, reads the metrics the run wrote
(``eval/metrics_summary.csv``, the evaluator's means over the validation cases) and the epoch of the best model
(``models/model.pt.json``), and replaces the text between
``<!-- bundle-numbers:begin -->`` and ``<!-- bundle-numbers:end -->`` in docs/README.md. ``--dry-run`` prints the
block instead of writing it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from monai_iunet.brats import REGION_ORDER

BUNDLE = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bundle-numbers:begin -->", "<!-- bundle-numbers:end -->"
REGIONS = tuple(str(region) for region in REGION_ORDER)
TABLE = ("dice", "sensitivity", "hd95", "nsd", "lesionwise_dice", "lesionwise_hd95")
METRICS = ("val_mean_dice", *(f"val_{m}_{r}" for m in ("dice", "sensitivity", "hd95") for r in REGIONS))
COMMAND = "OMP_NUM_THREADS=1 python bundles/brats_iunet/scripts/bundle_numbers.py"


def run_demo(root: Path) -> tuple[float, str]:
    """Run the demo in ``root`` (a copy of the bundle); returns the wall time in seconds and the output."""
    configs = root / "configs"
    cmd = [sys.executable, "-m", "monai.bundle", "run", "train_and_evaluate"]
    cmd += ["--config_file", str([str(configs / "train.json"), str(configs / "evaluate.json")])]
    cmd += ["--meta_file", str(configs / "metadata.json"), "--logging_file", str(configs / "logging.conf")]
    cmd += ["--bundle_root", str(root)]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"the demo failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return seconds, result.stdout + result.stderr


def read_results(root: Path) -> tuple[dict[str, float], dict, int]:
    """The metrics of the final evaluation, the best model's record, and the number of epochs trained."""
    with open(root / "eval" / "metrics_summary.csv") as f:
        metrics = {f"val_{row['metric']}_{row['region']}": float(row["mean"]) for row in csv.DictReader(f)}
    metrics["val_mean_dice"] = sum(metrics[f"val_dice_{r}"] for r in REGIONS) / len(REGIONS)
    record = json.loads((root / "models" / "model.pt.json").read_text())
    epochs = json.loads((root / "configs" / "train.json").read_text())["epochs"]
    return metrics, record, epochs


def numbers_block(metrics: dict[str, float], record: dict, epochs: int, seconds: float) -> str:
    """The markdown written between the README's markers."""

    def row(name: str, values: list[float]) -> str:
        cells = (f"{v:.2f}" if "hd95" in m else f"{v:.4f}" for m, v in zip(TABLE, values))
        return f"| {name} | " + " | ".join(cells) + " |"

    per_region = {r: [metrics[f"val_{m}_{r}"] for m in TABLE] for r in REGIONS}
    rows = "\n".join(row(r.upper(), per_region[r]) for r in REGIONS)
    means = [sum(per_region[r][i] for r in REGIONS) / len(REGIONS) for i in range(len(TABLE))]
    return (
        f"{BEGIN}\n"
        f"Written by `{COMMAND}` (torch {torch.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} when it started): the demo took "
        f"{seconds:.0f} s wall; the best model is from epoch {record['epoch']} of {epochs} "
        f"({record['metric']} {record['value']:.4f} in validation).\n\n"
        "Means over the validation cases (every case in every region; HD95 in mm, NSD at 1 mm, lesion-wise by the "
        "BraTS 2023 rules; docs/evaluation.md):\n\n"
        "| region | Dice | sensitivity | HD95 | NSD | lesion-wise Dice | lesion-wise HD95 |\n"
        "|---|---|---|---|---|---|---|\n"
        f"{rows}\n{row('mean', means)}\n"
        f"{END}"
    )


def write_numbers(block: str, metrics: dict[str, float]) -> None:
    """Replace the README's block and metadata.json's eval_metrics."""
    readme = BUNDLE / "docs" / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block to replace.")
    readme.write_text(pattern.sub(lambda _: block, text))
    meta_file = BUNDLE / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    meta["eval_metrics"] = {name: round(metrics[name], 4) for name in METRICS}
    meta_file.write_text(json.dumps(meta, indent=4) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the block, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "brats_iunet"
        shutil.copytree(BUNDLE, root, ignore=shutil.ignore_patterns("models", "eval", "data", "predictions"))
        seconds, _ = run_demo(root)
        metrics, record, epochs = read_results(root)
    block = numbers_block(metrics, record, epochs, seconds)
    print(block)
    if not args.dry_run:
        write_numbers(block, metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
