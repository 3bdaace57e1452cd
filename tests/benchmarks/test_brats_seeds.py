"""The seed benchmark's summary: mean ± sd over seeds, the spread verdicts, the rendered tables, merging results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import brats_seeds
from monai_iunet.errors import UserInputError

REGIONS = ("et", "tc", "wt")


def _run(model: str, label: str, seed: int, dice: dict[str, float], hd95: float = 10.0) -> dict:
    means = {}
    for r in REGIONS:
        means.update({f"dice_{r}": dice[r], f"hd95_{r}": hd95 + seed, f"lesionwise_dice_{r}": dice[r] / 2})
    return {
        "model": model,
        "label": label,
        "seed": seed,
        "params": 1000,
        "steps": 10 + seed,
        "capped": seed == 2,
        "step_time_s": 0.5,
        "means": means,
    }


def _results() -> dict:
    """iUNet: ET far above the U-Net, TC inside the spread, WT equal; SegResNet with one seed."""
    iunet = [
        {"et": 0.80, "tc": 0.60, "wt": 0.70},
        {"et": 0.82, "tc": 0.40, "wt": 0.70},
        {"et": 0.84, "tc": 0.50, "wt": 0.70},
    ]
    unet = [
        {"et": 0.50, "tc": 0.45, "wt": 0.70},
        {"et": 0.52, "tc": 0.55, "wt": 0.70},
        {"et": 0.54, "tc": 0.50, "wt": 0.70},
    ]
    runs = {}
    for seed in range(3):
        runs[f"iunet16_s{seed}"] = _run("iunet16", "iUNet-16", seed, iunet[seed])
        runs[f"unet_s{seed}"] = _run("unet", "U-Net", seed, unet[seed])
    runs["segresnet_s0"] = _run("segresnet", "SegResNet", 0, {"et": 0.1, "tc": 0.2, "wt": 0.3})
    return {"command": "python -m benchmarks.brats_seeds", "runs": runs, "total_seconds": 5.0}


def test_summarise_gives_mean_and_sample_sd_over_the_seeds():
    stats = brats_seeds.summarise(_results())
    assert list(stats) == ["iunet16", "unet", "segresnet"]
    iunet = stats["iunet16"]
    assert iunet["seeds"] == [0, 1, 2] and iunet["steps"] == [10, 11, 12] and iunet["capped"] == 1
    assert iunet["mean"]["dice_et"] == pytest.approx(0.82)
    assert iunet["sd"]["dice_et"] == pytest.approx(np.std([0.80, 0.82, 0.84], ddof=1))
    assert iunet["sd"]["dice_tc"] == pytest.approx(0.1)
    assert iunet["mean"]["hd95_wt"] == pytest.approx(11.0) and iunet["sd"]["hd95_wt"] == pytest.approx(1.0)
    assert np.isnan(stats["segresnet"]["sd"]["dice_et"])  # one seed: no spread


def test_spread_verdicts_compare_each_iunet_with_the_unet():
    verdicts = brats_seeds.spread_verdicts(brats_seeds.summarise(_results()))
    assert len(verdicts) == 1  # SegResNet is not an iUNet; the U-Net is the reference
    text = verdicts[0]
    assert text.startswith("Dice iUNet-16 − U-Net:")
    assert "ET +0.300 (exceeds the seed spread 0.040)" in text
    assert "TC +0.000 (within the seed spread 0.150)" in text
    assert "WT +0.000 (within the seed spread 0.000)" in text
    stats = brats_seeds.summarise(_results())
    assert brats_seeds.spread_verdicts({"iunet16": stats["iunet16"]}) == []


def test_tables_show_mean_sd_and_seed_counts():
    results = _results()
    table = brats_seeds.table(results)
    rows = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert "| iUNet-16 | 3 | 0.820 ± 0.020 |" in rows["| iUNet-16"]
    assert "0.100 (one seed)" in rows["| SegResNet"] and "| 1 |" in rows["| SegResNet"]
    assert "exceeds the seed spread" in table
    assert "ceiling" not in table
    results["ceiling"] = {"means": _run("ref", "", 0, {"et": 0.9, "tc": 0.95, "wt": 0.875}, hd95=1.0)["means"]}
    ceiling = brats_seeds.table(results).splitlines()[5]
    assert ceiling == "| reference through the 3 mm grid (ceiling) | – | 0.900 | 0.950 | 0.875 | 1.0 | 1.0 | 1.0 |"
    details = brats_seeds.details_table(results)
    assert "| iUNet-16 | 3 | 0.410 ± 0.010 |" in details and "| 10, 11, 12 | 1 | 0.50 |" in details


def test_merge_adds_the_runs_of_another_file_and_refuses_duplicates(tmp_path):
    results = _results()
    main, other = tmp_path / "main.json", tmp_path / "other.json"
    extra = {"command": "python -m benchmarks.brats_seeds --models iunet32", "total_seconds": 2.0, "runs": {}}
    extra["runs"]["iunet32_s0"] = _run("iunet32", "iUNet-32", 0, {"et": 0.9, "tc": 0.9, "wt": 0.9})
    extra["ceiling"] = {"means": {}, "rows": []}
    main.write_text(json.dumps(results))
    other.write_text(json.dumps(extra))
    merged = brats_seeds.merge(main, [other])
    assert "iunet32_s0" in merged["runs"] and len(merged["runs"]) == 8 and merged["ceiling"] == extra["ceiling"]
    # the files come from processes run side by side: the wall clock is the longest one's
    assert merged["commands"] == [results["command"], extra["command"]] and merged["total_seconds"] == 5.0
    assert json.loads(main.read_text()) == merged
    with pytest.raises(UserInputError, match="iunet32_s0"):
        brats_seeds.merge(main, [other])
    new = brats_seeds.merge(tmp_path / "new.json", [other])  # a new file: the runs of the merged ones
    assert list(new["runs"]) == ["iunet32_s0"] and new["command"] == extra["command"]
