"""Memory and speed benchmarks of the IUNet against the networks users would pick instead.

Run them from the repository root as modules, e.g. ``python -m benchmarks.compare --quick``; each writes its raw
results under ``benchmarks/results/`` (JSON) and renders its tables into the hand-written docs under ``docs/``
(``python -m benchmarks.render`` does that from the cached results without measuring; ``--check`` says whether the
docs are in sync). They import their shared helpers from this package, so ``python benchmarks/compare.py`` does not
work. The package exports the measuring helpers that the notebooks use; child processes started by
:func:`run_child` find the package from any working directory.
"""

from __future__ import annotations

from ._measure import MALLOC_ENV, measure_peak, measure_time, rss_bytes, run_child, set_mmap_threshold

__all__ = ["MALLOC_ENV", "measure_peak", "measure_time", "rss_bytes", "run_child", "set_mmap_threshold"]
