"""The tables of ``docs/benchmarks.md`` made from the results of ``compare`` and ``fit_budget``.

Each public function takes a results file's content (``results/compare_cpu.json`` or ``results/fit_cpu.json``) and
returns the markdown that :mod:`benchmarks.render` puts between that table's markers; the prose around the tables
is written by hand in the doc.
"""

from __future__ import annotations

from ._models import LABELS, MODELS

__all__ = [
    "crop_table",
    "depth_table",
    "equal_params_table",
    "main_tables",
    "planner_table",
    "targets_table",
    "volume_table",
]

MiB, GiB = 2**20, 2**30


def _mib(value) -> str:
    return f"{value / MiB:,.0f}" if isinstance(value, (int, float)) else "–"


def _size_label(size: str) -> str:
    return f"{size}³" if "x" not in size else size.replace("x", "×")


def _size_key(size: str) -> tuple:
    parts = [int(s) for s in size.split("x")]
    return (len(parts), parts[0] if len(parts) == 1 else sum(parts))


def _main_size(size: str) -> bool:
    """Cubic sizes of 64 and up make the main tables (smaller ones and crops appear in the planner table)."""
    return "x" not in size and int(size) >= 64


def _main_tables(runs: dict) -> list[str]:
    lines = []
    groups = sorted(
        {(r["size"], r["width"]) for r in runs.values() if r["blocks"] == 2 and _main_size(r["size"])},
        key=lambda g: (_size_key(g[0]), g[1]),
    )
    for size, width in groups:
        rows = {
            r["model"]: r
            for r in runs.values()
            if r["size"] == size and r["width"] == width and r["blocks"] == 2 and not r.get("probe")
        }
        if sum("peak_bytes" in r for r in rows.values()) < 2:
            continue
        ref = rows.get("segresnet", {}).get("peak_bytes")
        lines += [
            f"### {_size_label(size)}, width {width}",
            "",
            "| model | parameters | peak MiB | × SegResNet | step s |",
            "|---|---:|---:|---:|---:|",
        ]
        for model in MODELS:
            r = rows.get(model)
            if r is None:
                continue
            if "peak_bytes" not in r:
                lines.append(f"| {LABELS[model]} | – | failed: {r.get('memory_error', '?')[:60]} | | |")
                continue
            ratio = f"{r['peak_bytes'] / ref:.2f}" if ref else "–"
            step = f"{r['step_s']:.2f}" if "step_s" in r else "–"
            lines.append(f"| {LABELS[model]} | {r['params']:,} | {_mib(r['peak_bytes'])} | {ratio} | {step} |")
        lines.append("")
    return lines


def _equal_params_table(runs: dict) -> list[str]:
    """All networks with 3.5–7 M parameters (MONAI's at width 16, the IUNet at width 48), per size."""
    lines = []
    for size in ("64", "96", "128"):
        rows = [
            r
            for r in runs.values()
            if r["size"] == size and r["blocks"] == 2 and 3.5e6 <= r.get("params", 0) <= 7e6 and "peak_bytes" in r
        ]
        if len({r["model"] for r in rows}) < 2 or not any(r["model"] == "iunet" for r in rows):
            continue
        lines += [f"**{size}³**", "", "| model | width | parameters | peak MiB | step s |", "|---|---:|---:|---:|---:|"]
        for r in sorted(rows, key=lambda r: r["peak_bytes"]):
            step = f"{r['step_s']:.2f}" if "step_s" in r else "–"
            lines.append(
                f"| {LABELS[r['model']]} | {r['width']} | {r['params']:,} | {_mib(r['peak_bytes'])} | {step} |"
            )
        lines.append("")
    return lines


def _depth_table(runs: dict) -> list[str]:
    rows = [r for r in runs.values() if r["size"] == "64" and r["width"] == 16 and "peak_bytes" in r]
    depths = sorted({r["blocks"] for r in rows})
    models = [m for m in MODELS if len({r["blocks"] for r in rows if r["model"] == m}) > 1]
    if len(depths) < 2 or not models:
        return []
    head = " | ".join(f"blocks {b}: peak MiB (− param/grad/Adam) / step s" for b in depths)
    lines = ["| model | " + head + " |", "|---|" + "---:|" * len(depths)]
    for model in models:
        cells = []
        for b in depths:
            r = next((r for r in rows if r["model"] == model and r["blocks"] == b), None)
            if r is None:
                cells.append("–")
                continue
            state = 3 * 4 * r["params"]  # gradient and two Adam moments, allocated in the first step
            step = f"{r['step_s']:.2f}" if "step_s" in r else "–"
            cells.append(f"{_mib(r['peak_bytes'])} ({_mib(r['peak_bytes'] - state)}) / {step}")
        lines.append(f"| {LABELS[model]} | " + " | ".join(cells) + " |")
    return lines + [""]


def _measured(runs: dict, model: str, width: int, blocks: int, size: str, field: str) -> float | None:
    """One figure of a run; ``"peak_minus_state"`` is the peak less gradient and Adam moments (12 bytes/parameter)."""
    r = runs.get(f"{model}|w{width}|b{blocks}|{size}", {})
    if field == "peak_minus_state":
        return r["peak_bytes"] - 12 * r["params"] if "peak_bytes" in r and "params" in r else None
    return r.get(field)


#: the targets of the project: (what, numerator, denominator, the largest ratio that meets it), each measurement
#: given as (model, width, blocks, size, field)
TARGETS = [
    *(
        (
            f"IUNet peak / SegResNet peak, {s}³ width {w}",
            ("iunet", w, 2, s, "peak_bytes"),
            ("segresnet", w, 2, s, "peak_bytes"),
            0.4,
        )
        for s, w in (("64", 16), ("96", 32), ("96", 16), ("128", 16))
    ),
    *(
        (
            f"IUNet peak / iunets peak, {s}³ width {w}",
            ("iunet", w, 2, s, "peak_bytes"),
            ("iunets", w, 2, s, "peak_bytes"),
            0.75,
        )
        for s, w in (("64", 16), ("96", 32))
    ),
    *(
        (
            f"IUNet total / iunets total (with weights, input, target), {s}³ width {w}",
            ("iunet", w, 2, s, "total_bytes"),
            ("iunets", w, 2, s, "total_bytes"),
            0.70,
        )
        for s, w in (("64", 16), ("96", 32))
    ),
    (
        "IUNet (peak − param/grad/Adam), blocks 8 / blocks 2, 64³ width 16",
        ("iunet", 16, 8, "64", "peak_minus_state"),
        ("iunet", 16, 2, "64", "peak_minus_state"),
        1.10,
    ),
    (
        "IUNet step time memory-efficient / autograd, blocks 8",
        ("iunet", 16, 8, "64", "step_s"),
        ("iunet-autograd", 16, 8, "64", "step_s"),
        1.35,
    ),
    (
        "IUNet step time / iunets step time, 64³ width 16",
        ("iunet", 16, 2, "64", "step_s"),
        ("iunets", 16, 2, "64", "step_s"),
        0.85,
    ),
]


def _targets(runs: dict) -> list[str]:
    lines = ["| target | measured | met |", "|---|---:|:-:|"]
    for text, numerator, denominator, limit in TARGETS:
        a, b = _measured(runs, *numerator), _measured(runs, *denominator)
        if a and b:
            value = a / b
            lines.append(f"| {text} (≤ {limit}) | {value:.2f} | {'yes' if value <= limit else '**no**'} |")
    return lines + [""] if len(lines) > 2 else []


def _estimates(runs: dict) -> list[str]:
    rows = [r for r in runs.values() if "estimate_bytes" in r and "total_bytes" in r]
    rows.sort(key=lambda r: (MODELS.index(r["model"]), _size_key(r["size"]), r["width"], r["blocks"]))
    lines = [
        "| model | size | width | blocks | measured MiB | predicted MiB | error | peak in |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        err = (r["estimate_bytes"] - r["total_bytes"]) / r["total_bytes"]
        lines.append(
            f"| {LABELS[r['model']]} | {_size_label(r['size'])} | {r['width']} | {r['blocks']} | "
            f"{_mib(r['total_bytes'])} | {_mib(r['estimate_bytes'])} | {err:+.0%} | {r.get('estimate_phase', '')} |"
        )
    return lines


def _budget_cell(c: dict | None) -> str:
    """One cell of the budget table: the largest side, whether measured, and the planner's answer."""
    if c is None:
        return "–"
    tag = "measured" if c["measured"] else "predicted"
    cell = f"**{c['size']}³** ({tag})" if c["measured"] else f"{c['size']}³ ({tag})"
    return cell + (f"; planner: {c['planner']}³" if c.get("planner") else "")


def _volume_table(volumes: list[dict], budgets: list[str]) -> list[str]:
    head = " | ".join(f"{float(b) / GiB:g} GiB" for b in budgets)
    lines = ["| model | width | parameters | " + head + " |", "|---|---:|---:|" + "---:|" * len(budgets)]
    for v in sorted(volumes, key=lambda v: (MODELS.index(v["model"]), v["width"])):
        cells = [_budget_cell(v["budgets"].get(b)) for b in budgets]
        lines.append(f"| {LABELS[v['model']]} | {v['width']} | {v.get('params', 0):,} | " + " | ".join(cells) + " |")
    return lines + [""]


def _crop_table(crop: dict) -> list[str]:
    lines = [
        "| budget | channels | parameters | predicted peak | check |",
        "|---:|---|---:|---:|---|",
    ]
    for row in crop["rows"]:
        lines.append(
            f"| {float(row['budget']) / GiB:g} GiB | {tuple(row['channels'])} | {row['params']:,} | "
            f"{row['estimate_bytes'] / GiB:.2f} GiB | {row.get('check', 'predicted only')} |"
        )
    return lines + [""]


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


def main_tables(compare: dict) -> str:
    """One table per (size, width) of the main grid: every model's parameters, peak, ratio to SegResNet, step."""
    return _join(_main_tables(compare["runs"]))


def equal_params_table(compare: dict) -> str:
    """The networks with 3.5-7 M parameters, per size, sorted by peak memory."""
    return _join(_equal_params_table(compare["runs"]))


def depth_table(compare: dict) -> str:
    """Peak memory and step time against blocks per level, 64³, width 16."""
    return _join(_depth_table(compare["runs"]))


def targets_table(compare: dict) -> str:
    """The project's memory and speed targets, measured."""
    return _join(_targets(compare["runs"]))


def planner_table(compare: dict) -> str:
    """The planner's prediction beside every measured total."""
    return _join(_estimates(compare["runs"]))


def volume_table(fit: dict) -> str:
    """The largest cubic volume per model and budget."""
    volumes = fit["volumes"]
    return _join(_volume_table(volumes, sorted({b for v in volumes for b in v["budgets"]}, key=float)))


def crop_table(fit: dict) -> str:
    """The widest IUNet for the BraTS crop per budget, with its check."""
    return _join(_crop_table(fit["crop"]))
