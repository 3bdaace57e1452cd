"""Memory and speed benchmarks of the IUNet against the networks users would pick instead.

Run them from the repository root as modules, e.g. ``python -m benchmarks.compare --quick``; each writes its raw
results under ``benchmarks/results/`` and its report under ``docs/``. ``python benchmarks/compare.py`` does not
work: the scripts import their shared helpers from this package. The helpers that notebooks and tests use:
"""

from __future__ import annotations

from ._measure import MALLOC_ENV, measure_peak, measure_time, rss_bytes, run_child, set_mmap_threshold

__all__ = ["MALLOC_ENV", "measure_peak", "measure_time", "rss_bytes", "run_child", "set_mmap_threshold"]
