"""The benchmark harness: what docs/benchmarks.md reports is only as right as these helpers."""

from __future__ import annotations

import pytest
import torch

from benchmarks import _report, fit_budget, measure_peak, run_child
from monai_iunet import IUNet

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


def test_docs_benchmarks_md_is_the_template_filled_from_the_cached_results(tmp_path, monkeypatch):
    committed = (_report.DOCS / "benchmarks.md").read_text()
    monkeypatch.setattr(_report, "DOCS", tmp_path)
    monkeypatch.setattr(_report, "plot_results", lambda runs, fit, path: True)  # the figure is not compared
    (tmp_path / "benchmarks.md").write_text(committed)  # what follows the end marker is kept
    _report.write_report("cpu")
    assert (tmp_path / "benchmarks.md").read_text() == committed


def test_report_leaves_out_sections_without_results_and_keeps_what_follows_the_marker(tmp_path, monkeypatch):
    monkeypatch.setattr(_report, "DOCS", tmp_path)
    monkeypatch.setattr(_report, "RESULTS", tmp_path / "no_results")
    monkeypatch.setattr(_report, "plot_results", lambda runs, fit, path: False)
    (tmp_path / "benchmarks.md").write_text(f"old report\n{_report.END_MARKER}\n## Compiled engine\n\nkept\n")
    text = _report.write_report("cpu")[0].read_text()
    assert "old report" not in text and text.endswith(f"{_report.END_MARKER}\n## Compiled engine\n\nkept\n")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## How it is measured", "## One training step", "## Notes", "## Compiled engine"]
    assert "$" not in text.replace("$ ", "")  # every placeholder filled
