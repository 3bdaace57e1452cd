"""The last lines of a bundle run: which model was evaluated, its scores, and where every output was written."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from monai_iunet.brats.metrics import format_brats_metrics
from monai_iunet.bundle.checkpoints import read_model_record

__all__ = ["print_run_summary"]


def _path(path: Any) -> str:
    return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else os.path.abspath(path)


def _describe_csvs(names: list[str]) -> str:
    if not names:
        return "none written"
    raw = [n for n in names if n.endswith("_raw.csv")]
    others = [n for n in names if not n.endswith("_raw.csv") and not n.endswith("_summary.csv")]
    text = ", ".join(others)
    if raw:
        text += f"{', ' if text else ''}{len(raw)} per-case <metric>_raw.csv and their <metric>_summary.csv"
    return text


def print_run_summary(
    metrics: Mapping[str, Any],
    model_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_cases: int | None = None,
    epochs: int | None = None,
) -> str:
    """Print (and return) the table of Dice and sensitivity per region and where the model and outputs are.

    Args:
        metrics: the evaluator's ``state.metrics``.
        model_path: the evaluated model (its epoch is read from the record written beside it).
        output_dir: where the metrics CSVs and TensorBoard logs are.
        num_cases: number of cases evaluated.
        epochs: number of training epochs of the run, if it trained.
    """
    record = read_model_record(model_path)
    if record is not None:
        of = f" of {epochs}" if epochs else ""
        source = f"epoch {record['epoch']}{of}, the best {record['metric']} ({record['value']:.4f}) in validation"
    else:
        source = "epoch not recorded"
    cases = f" on {num_cases} validation case(s)" if num_cases is not None else ""
    csvs = sorted(f for f in os.listdir(output_dir) if f.endswith(".csv")) if os.path.isdir(output_dir) else []
    events = os.path.isdir(output_dir) and any(f.startswith("events.out.tfevents") for f in os.listdir(output_dir))
    lines = [
        f"Evaluation of the model from {source}{cases}:",
        format_brats_metrics(metrics),
        "",
        f"{'model':<18}{_path(model_path)}",
        f"{'metrics CSVs':<18}{_path(output_dir)}/ ({_describe_csvs(csvs)})",
        f"{'TensorBoard logs':<18}"
        + (f"{_path(output_dir)}/ (tensorboard --logdir {_path(output_dir)})" if events else "none written"),
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    return text
