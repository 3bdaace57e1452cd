"""Fill the tables of the benchmark docs from the results under ``benchmarks/results/``.

The docs (``docs/benchmarks.md``, ``docs/brats_comparison.md``, ``docs/ct_postprocessing.md``) are written by hand;
each measured table sits between two markers::

    <!-- table: memory -->
    (replaced by the renderer)
    <!-- /table -->

(each on a line of its own) and this module replaces what is between them with the table that :data:`TABLES`
makes from a results file. The benchmarks call it when they have written their results; to refresh the docs from
the cached results without measuring anything::

    python -m benchmarks.render            # rewrite the tables of every doc
    python -m benchmarks.render --check    # only say which docs are out of date (exit status 1)

A marker whose table has no results, a results file whose table has no marker, an unknown table name and a marker
left open are errors that name the doc and the table.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monai_iunet.errors import UserInputError

__all__ = ["TABLES", "Table", "TableMarkerError", "fill", "render_doc", "render_docs", "rewrite_docs"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: the markers, each on a line of its own (so that prose can name them in backticks)
START = re.compile(r"^<!-- table: ([\w-]+) -->$", re.MULTILINE)
END_LINE = re.compile(r"^<!-- /table -->$", re.MULTILINE)
END = "<!-- /table -->"


class TableMarkerError(UserInputError):
    """A doc's table markers do not match the results: a marker without results, results without a marker, ..."""


@dataclass(frozen=True)
class Table:
    """One table of a doc: the doc it lives in, the results file it is made from and the function that makes it.

    Attributes:
        doc: the markdown file, relative to the repository root.
        results: the results file, relative to ``benchmarks/results/``.
        make: ``results -> markdown``, the table (or tables) to put between the markers.
        command: what writes ``results`` (named in the error when they are missing).
    """

    doc: str
    results: str
    make: Callable[[dict], str]
    command: str


def _tables() -> dict[str, Table]:
    from . import _compare_tables as ct
    from . import brats_seeds, compile_speed, ct_comparison, engine_conditioning, gpu_check

    compare, fit = "compare_cpu.json", "fit_cpu.json"
    bench, brats, ct_doc = "docs/benchmarks.md", "docs/brats_comparison.md", "docs/ct_postprocessing.md"
    run_compare, run_fit = "python -m benchmarks.compare", "python -m benchmarks.fit_budget"
    run_ct = "python -m benchmarks.ct_comparison"
    seeds, run_seeds = "brats_seeds_cpu.json", "python -m benchmarks.brats_seeds"
    return {
        "one-step": Table(bench, compare, ct.main_tables, run_compare),
        "equal-params": Table(bench, compare, ct.equal_params_table, run_compare),
        "depth": Table(bench, compare, ct.depth_table, run_compare),
        "targets": Table(bench, compare, ct.targets_table, run_compare),
        "planner": Table(bench, compare, ct.planner_table, run_compare),
        "budget": Table(bench, fit, ct.volume_table, run_fit),
        "crop": Table(bench, fit, ct.crop_table, run_fit),
        "compile-speed": Table(
            bench, "compile_speed_cpu.json", compile_speed.table, "python -m benchmarks.compile_speed --profile"
        ),
        "gpu-check": Table(bench, "gpu_check_cuda.json", gpu_check.table, "python -m benchmarks.gpu_check"),
        "gpu-check-cpu-tiny": Table(
            bench, "gpu_check_cpu_tiny.json", gpu_check.table, "python -m benchmarks.gpu_check --device cpu --tiny"
        ),
        "brats-seeds": Table(brats, seeds, brats_seeds.table, run_seeds),
        "brats-seeds-details": Table(brats, seeds, brats_seeds.details_table, run_seeds),
        "ct-results": Table(ct_doc, "ct_postprocessing_cpu.json", ct_comparison.results_table, run_ct),
        "ct-training": Table(ct_doc, "ct_postprocessing_cpu.json", ct_comparison.training_table, run_ct),
        "engine-conditioning": Table(
            "docs/engine.md",
            "engine_conditioning.json",
            engine_conditioning.table,
            "python -m benchmarks.engine_conditioning",
        ),
    }


#: every table of the docs, by the name its markers use
TABLES: dict[str, Table] = _tables()


def fill(text: str, tables: dict[str, str], where: str = "the doc") -> str:
    """``text`` with what is between each pair of markers replaced by ``tables[name]`` (and a blank line each side).

    Args:
        text: a markdown document with ``<!-- table: NAME -->`` ... ``<!-- /table -->`` pairs.
        tables: the markdown of each table, by name; every one must have its markers in ``text``.
        where: how errors name the document.

    Raises:
        TableMarkerError: a marker is not closed, names a table not in ``tables``, or a table has no marker.
    """
    out, pos, seen = [], 0, set()
    while match := START.search(text, pos):
        name = match.group(1)
        close = END_LINE.search(text, match.end())
        end = close.start() if close else len(text)
        if close is None or START.search(text, match.end(), end):
            raise TableMarkerError(f"{where}: `<!-- table: {name} -->` is not closed; add `{END}` after its table.")
        if name not in tables:
            raise TableMarkerError(
                f"{where}: no table {name!r} to put between its markers; the tables for it are {sorted(tables)}."
            )
        out += [text[pos : match.end()], "\n\n", tables[name].strip("\n"), "\n\n"]
        pos, seen = end, seen | {name}
    missing = sorted(set(tables) - seen)
    if missing:
        raise TableMarkerError(
            f"{where} has no markers for the table(s) {missing}; put `<!-- table: NAME -->` and `{END}` where each "
            "goes."
        )
    return "".join(out) + text[pos:]


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def render_doc(doc: str, results_dir: Path = RESULTS, root: Path = ROOT) -> tuple[str, str]:
    """The current text of ``doc`` and the text with its tables rendered from the results in ``results_dir``.

    Raises:
        TableMarkerError: see :func:`fill`; also when the doc marks a table whose results file does not exist.
    """
    path = root / doc
    text = path.read_text()
    marked = set(START.findall(text))
    tables = {}
    for name, table in TABLES.items():
        if table.doc != doc:
            continue
        results = results_dir / table.results
        if results.exists():
            tables[name] = table.make(_load(results))
        elif name in marked:
            raise TableMarkerError(
                f"{doc}: table {name!r} needs {results}, which does not exist; run `{table.command}` (or remove "
                "its markers)."
            )
    return text, fill(text, tables, where=doc)


def render_docs(check: bool = False, results_dir: Path = RESULTS, root: Path = ROOT) -> list[str]:
    """Render the tables of every doc; the docs that changed (with ``check``, that would change; none written)."""
    changed = []
    for doc in sorted({t.doc for t in TABLES.values()}):
        old, new = render_doc(doc, results_dir, root)
        if new != old:
            changed.append(doc)
            if not check:
                (root / doc).write_text(new)
    return changed


def rewrite_docs() -> None:
    """Render every doc's tables (what a benchmark does when it has written its results) and say which changed."""
    print("rewrote", *render_docs() or ["nothing: the docs' tables were up to date"], flush=True)


def run_then_render(args: argparse.Namespace, run) -> int:
    """A benchmark's ending: ``run(args)`` unless ``--render`` asked only for the tables, then :func:`rewrite_docs`."""
    if not args.render:
        run(args)
    rewrite_docs()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a doc's tables are stale")
    args = parser.parse_args(argv)
    changed = render_docs(check=args.check)
    verb = "out of date" if args.check else "rewrote"
    print(f"{verb}: {', '.join(changed)}" if changed else "every doc's tables match the results")
    return 1 if changed and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
