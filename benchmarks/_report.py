"""Write ``docs/benchmarks.md`` and ``docs/benchmarks.png`` from the results of ``compare`` and ``fit_budget``.

The prose is ``templates/benchmarks.md.in``; this module fills in its tables from ``results/*.json``. To rewrite the
report from the cached results without measuring anything: ``python -m benchmarks._report``.
"""

from __future__ import annotations

import json
from pathlib import Path
from string import Template

from ._figure import plot_results
from ._models import LABELS, MODELS

__all__ = ["write_report"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOCS = ROOT / "docs"
TEMPLATE = HERE / "templates" / "benchmarks.md.in"
#: the line that ends the generated report; what follows it is kept when the report is rewritten
END_MARKER = "<!-- end of the report written by benchmarks/_report.py; what follows is kept when it is rewritten -->"
DEVICE_NOTES = {
    "cpu": "Every number here is CPU; on a GPU re-run the same commands with `--device cuda` (memory is then "
    "`torch.cuda.max_memory_allocated`). Step times were taken with no other job on the machine; memory figures do "
    "not depend on load.",
    "gpu": "Memory is `torch.cuda.max_memory_allocated` growth.",
}
DEFAULT_FIT_METHOD = (
    "Largest cubic volume (side divisible by 16) whose training step fits the budget (total: growth plus resident "
    "parameters, input and target)."
)
MiB, GiB = 2**20, 2**30


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


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


def _equal_params(runs: dict) -> str:
    """A sentence pairing the UNet and the IUNet at similar parameter counts."""
    params = {(r["model"], r["width"]): r["params"] for r in runs.values() if "params" in r and r["blocks"] == 2}
    pairs = []
    for (model, width), count in sorted(params.items()):
        if model == "unet":
            pairs.append(f"UNet width {width}: {count / 1e6:.2f} M")
        if model == "iunet":
            pairs.append(f"IUNet width {width}: {count / 1e6:.2f} M")
        if model == "segresnet":
            pairs.append(f"SegResNet width {width}: {count / 1e6:.2f} M")
    return "parameters — " + ", ".join(pairs) if pairs else "see the parameter column"


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


def _estimates(runs: dict) -> tuple[list[str], dict]:
    rows = [r for r in runs.values() if "estimate_bytes" in r and "total_bytes" in r]
    rows.sort(key=lambda r: (MODELS.index(r["model"]), _size_key(r["size"]), r["width"], r["blocks"]))
    lines = [
        "| model | size | width | blocks | measured MiB | predicted MiB | error | peak in |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    errors: dict[str, list[float]] = {}
    for r in rows:
        err = (r["estimate_bytes"] - r["total_bytes"]) / r["total_bytes"]
        errors.setdefault(r["model"], []).append(err)
        lines.append(
            f"| {LABELS[r['model']]} | {_size_label(r['size'])} | {r['width']} | {r['blocks']} | "
            f"{_mib(r['total_bytes'])} | {_mib(r['estimate_bytes'])} | {err:+.0%} | {r.get('estimate_phase', '')} |"
        )
    return (lines + [""] if rows else []), errors


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


def _volume_comparisons(volumes: list[dict], budgets: list[str]) -> list[str]:
    """The memory-efficient IUNet's largest volume against SegResNet's and iunets', per budget."""
    by_model = {(v["model"], v["width"]): v for v in volumes}
    lines = []
    for b in budgets:
        ours = by_model.get(("iunet", 16), {}).get("budgets", {}).get(b)
        for other in ("segresnet", "iunets"):
            theirs = by_model.get((other, 16), {}).get("budgets", {}).get(b)
            if ours and theirs and ours["size"] and theirs["size"]:
                lines.append(
                    f"- {float(b) / GiB:g} GiB: the memory-efficient IUNet trains on {ours['size']}³, "
                    f"{LABELS[other]} on {theirs['size']}³ — {(ours['size'] / theirs['size']) ** 3:.1f}× the "
                    "voxels at equal width."
                )
    return lines


def _adam_remark(volumes: list[dict]) -> list[str]:
    """Whether Adam's moments, resident from the second step on, move any measured size out of its budget."""
    measured = [(v, b, c) for v in volumes for b, c in v["budgets"].items() if c.get("measured")]
    if not measured:
        return []
    flipped = [
        f"{LABELS[v['model']]} at {float(b) / GiB:g} GiB"
        for v, b, c in measured
        if c["measured_bytes"] + 8 * v.get("params", 0) > float(b)
    ]
    most = max(8 * v.get("params", 0) for v, _, _ in measured)
    verdict = (
        "that moves none of the measured sizes above."
        if not flipped
        else "with them these no longer fit: " + ", ".join(flipped) + "."
    )
    return [
        "- Sizes come from a first step. From the second step on Adam's two moments (8 bytes per parameter, "
        f"at most {most / MiB:.0f} MiB here) are resident too; " + verdict
    ]


def _crop_table(crop: dict) -> list[str]:
    lines = [
        f"Widest IUNet (channels (w, 2w, 4w, 8w), blocks 2, Adam) for a whole {crop['shape_label']} crop, "
        "batch 1, proposed by `fit_channels`:",
        "",
        "| budget | channels | parameters | predicted peak | check |",
        "|---:|---|---:|---:|---|",
    ]
    for row in crop["rows"]:
        lines.append(
            f"| {float(row['budget']) / GiB:g} GiB | {tuple(row['channels'])} | {row['params']:,} | "
            f"{row['estimate_bytes'] / GiB:.2f} GiB | {row.get('check', 'predicted only')} |"
        )
    return lines + [""]


def _fit_tables(fit: dict) -> list[str]:
    lines = []
    volumes = fit.get("volumes", [])
    if volumes:
        budgets = sorted({b for v in volumes for b in v["budgets"]}, key=float)
        lines += _volume_table(volumes, budgets) + _volume_comparisons(volumes, budgets) + _adam_remark(volumes)
        lines.append("")
        notes = [f"- {LABELS[v['model']]}, width {v['width']}: {v['notes']}" for v in volumes if v.get("notes")]
        lines += notes + ([""] if notes else [])
    if fit.get("crop"):
        lines += _crop_table(fit["crop"])
    return lines


def _fill(template: str, blocks: dict[str, list[str] | None], inline: dict[str, str]) -> list[str]:
    """The lines of ``template`` with its placeholders filled.

    A line that is only ``$name`` with ``name`` in ``blocks`` becomes those lines (none for an empty list); other
    ``$name`` are replaced by ``inline[name]``. A section (from one ``## `` heading to the next) with a block that is
    ``None`` (nothing measured for it) is left out.
    """
    sections: list[list[str]] = [[]]
    for line in template.split("\n"):
        if line.startswith("## "):
            sections.append([])
        sections[-1].append(line)
    lines: list[str] = []
    for section in sections:
        names = [line[1:] for line in section if line[1:] in blocks and line.startswith("$")]
        if any(blocks[name] is None for name in names):
            continue
        for line in section:
            if line.startswith("$") and line[1:] in blocks:
                lines += blocks[line[1:]] or []
            else:
                lines.append(Template(line).substitute(inline))
    return lines


def _planner_blocks(runs: dict) -> dict[str, list[str] | None]:
    est_lines, errors = _estimates(runs)
    if not est_lines:
        return {"planner_summary": None, "planner_table": None}
    summary = [
        f"{LABELS[model]}: worst {max(errs, key=abs):+.0%} over {len(errs)} runs" for model, errs in errors.items()
    ]
    return {"planner_summary": ["; ".join(summary) + "."], "planner_table": est_lines}


def _kept_tail(path: Path) -> str:
    """What follows :data:`END_MARKER` in the current report (sections other scripts or people wrote), or a newline."""
    text = path.read_text() if path.exists() else ""
    return text.split(END_MARKER, 1)[1] if END_MARKER in text else "\n"


def write_report(device: str = "cpu") -> list[Path]:
    """Rewrite ``docs/benchmarks.md`` and its plot (``docs/benchmarks_<device>.*`` for a GPU) from the results.

    The text is ``templates/benchmarks.md.in`` with the tables filled in; whatever follows :data:`END_MARKER` in the
    existing report is kept.
    """
    kind = device.split(":")[0]
    compare = _load(f"compare_{kind}.json")
    fit = _load(f"fit_{kind}.json")
    runs = compare.get("runs", {})
    meta = compare.get("meta", {})
    DOCS.mkdir(exist_ok=True)
    stem = "benchmarks" if kind == "cpu" else f"benchmarks_{kind}"  # a GPU run keeps the CPU report
    png = DOCS / f"{stem}.png"
    path = DOCS / f"{stem}.md"
    has_plot = plot_results(runs, fit, png)
    commands = meta.get("commands", []) + fit.get("commands", [])
    fit_lines = _fit_tables(fit)
    blocks = {
        "commands": commands or ["python -m benchmarks.compare", "python -m benchmarks.fit_budget"],
        "main_tables": _main_tables(runs),
        "plot": [f"![peak memory vs volume, depth scaling and largest volume]({png.name})", ""] if has_plot else [],
        "equal_params_table": _equal_params_table(runs) or None,
        "depth_table": _depth_table(runs) or None,
        "targets_table": _targets(runs) or None,
        **_planner_blocks(runs),
        "fit_method": [fit.get("method", DEFAULT_FIT_METHOD)],
        "fit_tables": fit_lines or None,
    }
    inline = {
        "device": meta.get("device", "unknown"),
        "device_note": DEVICE_NOTES["cpu" if kind == "cpu" else "gpu"],
        "equal_params": _equal_params(runs),
    }
    md = _fill(TEMPLATE.read_text(), blocks, inline)
    path.write_text("\n".join(md) + "\n" + END_MARKER + _kept_tail(path))
    return [path, png] if has_plot else [path]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Rewrite docs/benchmarks.md from benchmarks/results/ (no measuring).")
    parser.add_argument("--device", default="cpu", help="whose results: cpu (default) or cuda")
    print("wrote", *write_report(parser.parse_args().device))
