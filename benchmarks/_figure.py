"""The figure of ``docs/benchmarks.md``: peak memory against volume and depth, and the largest volume per budget."""

from __future__ import annotations

from pathlib import Path

from ._models import LABELS, MODELS

__all__ = ["plot_results"]

MiB, GiB = 2**20, 2**30


def _plot_sizes(ax, runs: dict) -> None:
    """Peak memory against the cube side, widths 16 and 32."""
    for model in MODELS:
        for width, style in ((16, "-"), (32, "--")):
            pts = sorted(
                (int(r["size"]), r["peak_bytes"] / MiB)
                for r in runs.values()
                if r["model"] == model
                and r["width"] == width
                and r["blocks"] == 2
                and "x" not in r["size"]
                and "peak_bytes" in r
            )
            if pts:
                color = f"C{MODELS.index(model)}"
                ax.plot(*zip(*pts), style, marker="o", color=color, label=LABELS[model] if width == 16 else None)
    ax.set(xlabel="cubic volume side (voxels)", ylabel="peak memory of one step (MiB)", yscale="log")
    ax.set_title("one training step, width 16 (—) and 32 (--)", fontsize=10)
    ax.legend(fontsize=7)


def _plot_depth(ax, runs: dict) -> None:
    """Peak memory against blocks per level, 64³, width 16."""
    for model in MODELS:
        pts = sorted(
            (r["blocks"], r["peak_bytes"] / MiB)
            for r in runs.values()
            if r["model"] == model and r["width"] == 16 and r["size"] == "64" and "peak_bytes" in r
        )
        if len({b for b, _ in pts}) > 1:
            ax.plot(*zip(*pts), marker="o", color=f"C{MODELS.index(model)}", label=LABELS[model])
    ax.set(xlabel="blocks per level", ylabel="peak memory (MiB)", xscale="log", xticks=[2, 4, 8])
    ax.set_xticklabels(["2", "4", "8"])
    ax.minorticks_off()
    ax.set_title("depth scaling, 64³, width 16", fontsize=10)
    ax.legend(fontsize=7)


def _plot_budgets(ax, fit: dict) -> None:
    """The largest cube per model and budget, width 16; predicted sizes hatched."""
    volumes = [v for v in fit["volumes"] if v["width"] == 16]
    budgets = sorted({b for v in volumes for b in v["budgets"]}, key=float)
    for i, b in enumerate(budgets):
        cells = [v["budgets"].get(b, {}) for v in volumes]
        bars = ax.bar(
            [j + 0.4 * i for j in range(len(volumes))],
            [c.get("size", 0) for c in cells],
            0.4,
            color=f"C{i}",
            label=f"{float(b) / GiB:g} GiB",
        )
        for bar, c in zip(bars, cells):
            if not c.get("measured"):
                bar.set_hatch("//")
                bar.set_alpha(0.6)
    ax.bar([0], [0], color="white", edgecolor="gray", hatch="//", label="predicted (hatched)")
    ax.set_xticks([j + 0.2 for j in range(len(volumes))])
    ax.set_xticklabels(
        [LABELS[v["model"]].split(" (")[0].replace("MONAI ", "") for v in volumes],
        rotation=40,
        ha="right",
        fontsize=7,
    )
    top = max((c.get("size", 0) for v in volumes for c in v["budgets"].values()), default=0)
    ax.set(ylabel="largest cubic side that trains", ylim=(0, 1.3 * top or 1))
    ax.set_title("largest volume within a budget, width 16", fontsize=10)
    ax.legend(fontsize=7)


def plot_results(runs: dict, fit: dict, path: Path) -> bool:
    """Draw the figure into ``path`` from ``compare``'s runs and ``fit_budget``'s results; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = 3 if fit.get("volumes") else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2))
    _plot_sizes(axes[0], runs)
    _plot_depth(axes[1], runs)
    if panels == 3:
        _plot_budgets(axes[2], fit)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
