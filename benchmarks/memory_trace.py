"""Where the peak of one training step is: live tensors, kernel temporaries and code pages, operation by operation.

:mod:`benchmarks.compare` measures the growth of peak RSS over a first training step. This breaks that number down
in the same setting (fresh process, ``MALLOC_MMAP_THRESHOLD_=65536``, the same models and step): a dispatch mode
follows every aten operation of the step and records

- the bytes of live tensors after it (:class:`monai_iunet.planner.live_bytes.LiveBytes`: what Python can see);
- the resident set before and after it and its high-water mark during it (``/proc/self/status``, the mark reset
  before each operation), so a kernel's own temporaries (e.g. oneDNN's copies into its blocked layout), which no
  tensor shows, appear as the gap between the mark and the larger of the two;
- the file-backed resident set (``RssFile``): code pages of the libraries that the step runs for the first time.

It prints the operation at the step's peak with its neighbours, the operations with the largest temporaries and
how much each part contributes at the peak. Tracing slows the step down by a few times; the peak it finds is within
a few MiB of what :mod:`benchmarks.compare` measures (the trace itself takes some memory).

Usage::

    MALLOC_MMAP_THRESHOLD_=65536 python -m benchmarks.memory_trace --model iunet --size 64 --width 16
    MALLOC_MMAP_THRESHOLD_=65536 python -m benchmarks.memory_trace --model iunets --size 64 --width 16
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

__all__ = ["OpRecord", "trace_step"]

MiB = 2**20
FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def _status() -> dict[str, int]:
    with open("/proc/self/status") as f:
        return {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in f) if k in FIELDS}


@dataclass
class OpRecord:
    """One aten operation of the step; byte counts are growth over the start of the step."""

    index: int
    phase: str
    op: str
    live: int  # bytes of live tensors after the operation
    rss_before: int
    rss_after: int
    high_water: int  # the largest resident set during the operation
    file: int  # file-backed resident set (code pages) before the operation

    @property
    def temporary(self) -> int:
        """What the kernel held during the operation beyond its inputs and outputs."""
        return self.high_water - max(self.rss_before, self.rss_after)


def trace_step(model: str, size: int, width: int, blocks: int = 2) -> list[OpRecord]:
    """Run one training step of benchmark model ``model`` (forward, DiceLoss, backward, Adam) under the trace."""
    import torch
    from monai.losses import DiceLoss

    from monai_iunet.planner.live_bytes import LiveBytes

    from ._models import IN_CHANNELS, OUT_CHANNELS, build_model

    torch.manual_seed(0)
    net = build_model(model, width, blocks)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = DiceLoss(sigmoid=True)
    x = torch.randn(1, IN_CHANNELS, size, size, size)
    target = (torch.rand(1, OUT_CHANNELS, size, size, size) > 0.5).float()
    records: list[OpRecord] = []
    clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY)

    class Trace(LiveBytes):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            os.write(clear_refs, b"5")  # reset the high-water mark to the current resident set
            before = _status()
            out = super().__torch_dispatch__(func, types, args, kwargs)
            after = _status()
            records.append(
                OpRecord(
                    len(records),
                    self.phase,
                    str(func),
                    self.current,
                    before["VmRSS"] - start["VmRSS"],
                    after["VmRSS"] - start["VmRSS"],
                    after["VmHWM"] - start["VmRSS"],
                    before["RssFile"] - start["RssFile"],
                )
            )
            return out

    mode = Trace()
    start = _status()
    try:
        with mode:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), target)
            mode.phase = "backward"
            loss.backward()
            mode.phase = "optimizer"
            opt.step()
    finally:
        os.close(clear_refs)
    return records


def report(records: list[OpRecord], context: int = 4) -> str:
    """The step's peak, its neighbourhood, the largest kernel temporaries and the parts of the peak."""
    peak = max(records, key=lambda r: r.high_water)
    lines = [
        f"peak RSS growth {peak.high_water / MiB:.1f} MiB at operation {peak.index} ({peak.phase}, {peak.op})",
        f"  live tensors after it {peak.live / MiB:.1f} MiB, its own temporaries {peak.temporary / MiB:.1f} MiB, "
        f"code pages paged in so far {peak.file / MiB:.1f} MiB, the rest (allocator, Python, trace) "
        f"{(peak.high_water - peak.temporary - peak.live - peak.file) / MiB:.1f} MiB",
        f"  largest live tensors: {max(r.live for r in records) / MiB:.1f} MiB; code pages at the end: "
        f"{records[-1].file / MiB:.1f} MiB",
        "",
        "| # | phase | operation | live MiB | RSS before | high-water during | temporaries |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    lines += [_row(r) for r in records[max(0, peak.index - context) : peak.index + context // 2 + 1]]
    lines += ["", "largest kernel temporaries:", ""]
    lines += [
        "| # | phase | operation | live MiB | RSS before | high-water during | temporaries |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    lines += [_row(r) for r in sorted(records, key=lambda r: r.temporary, reverse=True)[:8]]
    return "\n".join(lines)


def _row(r: OpRecord) -> str:
    return (
        f"| {r.index} | {r.phase} | {r.op} | {r.live / MiB:.1f} | {r.rss_before / MiB:.1f} | "
        f"{r.high_water / MiB:.1f} | {r.temporary / MiB:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="iunet")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=2)
    args = parser.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != "65536":
        print("note: without MALLOC_MMAP_THRESHOLD_=65536 the resident set follows glibc's free lists, not live memory")
    print(report(trace_step(args.model, args.size, args.width, args.blocks)))


if __name__ == "__main__":
    main()
