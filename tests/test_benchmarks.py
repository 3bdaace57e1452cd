"""The benchmark harness and the renderer of the docs' tables: what the docs report is only as right as these."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import fit_budget, gpu_check, measure_peak, run_child
from benchmarks.render import TableMarkerError, fill, render_doc, render_docs
from monai_iunet import IUNet

ROOT = Path(__file__).resolve().parents[1]

MiB = 2**20


def test_fit_line_recovers_intercept_and_slope():
    points = [(v, 30e6 + 2.5 * v) for v in (64**3, 96**3, 128**3)]
    a, b = fit_budget.fit_line(points)
    assert a == pytest.approx(30e6)
    assert b == pytest.approx(2.5)


def test_largest_side_is_the_last_multiple_of_16_inside_the_budget():
    assert fit_budget.largest_side(0.0, 1.0, 96**3) == 96
    assert fit_budget.largest_side(0.0, 1.0, 96**3 - 1) == 80
    assert fit_budget.largest_side(1000.0, 1.0, 500) == 0
    a, b = 50e6, 300.0
    side = fit_budget.largest_side(a, b, 8 * 2**30)
    assert a + b * side**3 <= 8 * 2**30 < a + b * (side + 16) ** 3


def test_measure_peak_sees_a_transient_allocation():

    def allocate() -> None:
        t = torch.ones(64 * MiB // 4)  # 64 MiB, freed on return
        assert t.sum() > 0

    assert measure_peak(allocate) >= 60 * MiB
    assert measure_peak(lambda: None) < 8 * MiB


def test_compare_child_measures_one_step():
    args = ["--child", "--model", "iunet", "--width", 8, "--blocks", 1, "--size", 16, "--measure", "memory"]
    out = run_child("benchmarks.compare", args, "memory", timeout=300)
    assert "error" not in out, out
    net = IUNet(3, 4, 3, channels=(8, 16, 32, 64), blocks=1)
    assert out["params"] == sum(p.numel() for p in net.parameters())
    assert 0 < out["peak_bytes"] < out["total_bytes"]
    bad = run_child("benchmarks.compare", ["--child", "--model", "nonsense"], "memory", timeout=60)
    assert "error" in bad


class _FakeRunner:
    """Stands in for fit_budget.Runner: memory grows linearly with the width."""

    def __init__(self, per_width: float) -> None:
        self.per_width = per_width
        self.calls: list[int] = []

    def measure(self, model: str, width: int, size: str, estimate: bool = False, steps: int = 1) -> dict:
        self.calls.append(width)
        return {"total_bytes": width * self.per_width}


@pytest.mark.parametrize("start, widest", [(124, 124), (116, 124), (132, 124)])
def test_verify_width_brackets_the_widest_fitting_width(start, widest):
    runner = _FakeRunner(per_width=2**30 / 126)  # widths up to 126 fit 1 GiB
    args = type("Args", (), {"max_probes": 4})()
    check = fit_budget.verify_width(start, 2**30, "32x32x32", (1, 4, 32, 32, 32), args, runner)
    assert f"widest that fits: {widest}" in check
    assert {widest, widest + 4} <= set(runner.calls)
    assert ("planner's answer" in check) == (start == widest)


def test_renderer_replaces_only_what_is_between_the_markers():
    text = (
        "# Title\n\nProse that `<!-- table: a -->` names in backticks.\n\n<!-- table: a -->\nstale\n<!-- /table -->\n"
        "\nMore prose.\n<!-- table: b -->\n<!-- /table -->\nEnd.\n"
    )
    out = fill(text, {"a": "| x |\n|---|\n| 1 |", "b": "| y |"})
    assert out == (
        "# Title\n\nProse that `<!-- table: a -->` names in backticks.\n\n<!-- table: a -->\n\n| x |\n|---|\n| 1 |\n\n"
        "<!-- /table -->\n\nMore prose.\n<!-- table: b -->\n\n| y |\n\n<!-- /table -->\nEnd.\n"
    )
    assert fill(out, {"a": "| x |\n|---|\n| 1 |", "b": "| y |"}) == out  # rendering twice changes nothing


@pytest.mark.parametrize(
    "text, tables, words",
    [
        ("prose\n", {"memory": "| t |"}, "no markers for the table(s) ['memory']"),
        ("<!-- table: memory -->\n| t |\n", {"memory": "| t |"}, "is not closed"),
        (
            "<!-- table: a -->\n<!-- table: b -->\n<!-- /table -->\n",
            {"a": "", "b": ""},
            "`<!-- table: a -->` is not closed",
        ),
        ("<!-- table: typo -->\n<!-- /table -->\n", {}, "no table 'typo'"),
    ],
)
def test_renderer_names_a_missing_marker_or_table(text, tables, words):
    with pytest.raises(TableMarkerError, match=re.escape(words)):
        fill(text, tables, where="docs/x.md")


def test_renderer_names_the_command_when_a_marked_table_has_no_results(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.md").write_text("<!-- table: depth -->\n<!-- /table -->\n")
    with pytest.raises(
        TableMarkerError, match="compare_cpu.json, which does not exist; run `python -m benchmarks.compare`"
    ):
        render_doc("docs/benchmarks.md", results_dir=tmp_path / "results", root=tmp_path)


def test_committed_docs_are_in_sync_with_the_committed_results():
    assert render_docs(check=True) == [], "run `python -m benchmarks.render` and commit the docs"


def test_gpu_check_runs_on_cpu_in_tiny_mode(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--tiny", "--output", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["tiny"] and results["shape"] == [1, 4, 32, 32, 32]
    assert [m["model"] for m in results["models"]] == list(gpu_check.MODELS)
    for m in results["models"]:
        assert "error" not in m, m
        assert m["params"] > 0 and m["step_s"] > 0 and m["timed_steps"] >= 1
        assert 0 < m["planned_first_bytes"] <= m["planned_bytes"] and m["peak_first_bytes"] > 0 and m["peak_bytes"] > 0
    checks = {c["check"]: c for c in results["checks"]}
    assert {"dropout RNG replay, float64", "autocast float16 + GradScaler against float32"} <= set(checks)
    assert sum(name.startswith("corner ") for name in checks) >= 6
    assert all(c["passed"] for c in checks.values()), [c for c in checks.values() if not c["passed"]]
    table = gpu_check.table(results)
    assert all(m["label"] in table for m in results["models"]) and table.count("| yes |") == len(checks)


def test_memory_trace_finds_the_peak_of_a_step():
    from benchmarks.memory_trace import report, trace_step

    records = trace_step("iunet", size=16, width=4)
    phases = {r.phase for r in records}
    assert phases == {"forward", "backward", "optimizer"}
    peak = max(records, key=lambda r: r.high_water)
    assert peak.high_water >= max(r.rss_after for r in records) and max(r.live for r in records) > 0
    assert all(r.temporary >= 0 for r in records)
    assert f"at operation {peak.index}" in report(records)
