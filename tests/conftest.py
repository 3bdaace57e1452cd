"""Shared test helpers: a seeded RNG for every test, non-trivial parameters, and multi-process runs that cannot hang."""

from __future__ import annotations

import datetime
import functools
import multiprocessing
import os
import socket
import time
from collections.abc import Callable

import pytest
import torch
import torch.distributed as dist

#: the longest a multi-process test may run (about 10-20 s on an idle 2-core machine; spawned processes import MONAI,
#: which takes many seconds each under load), and what ``init_process_group`` waits at most for a missing rank
PROCESS_TIMEOUT_S = 300.0
RENDEZVOUS_TIMEOUT_S = 60.0


#: test modules that run whole bundles end to end in subprocesses (minutes each): marked ``slow`` as a whole
SLOW_MODULES = ("bundles/test_bundle_brats.py", "bundles/test_bundle_ct.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of :data:`SLOW_MODULES` ``slow``, so that ``-m "not slow"`` gives a quick subset."""
    for item in items:
        if item.path.as_posix().endswith(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)


#: what makes the progress bars draw in a test, and draw every step (tqdm's rate limit off), so that what a bar
#: shows can be asserted: ``MONAI_IUNET_PROGRESS=on`` and tqdm's ``TQDM_*`` defaults (for subprocesses too)
PROGRESS_DRAWN_ENV = {"MONAI_IUNET_PROGRESS": "on", "TQDM_MININTERVAL": "0", "TQDM_MINITERS": "1"}


@pytest.fixture(autouse=True)
def _progress_by_terminal(monkeypatch):
    """Every test starts with the progress bars decided by the terminal (none under pytest), whatever the caller's
    ``MONAI_IUNET_PROGRESS``."""
    monkeypatch.delenv("MONAI_IUNET_PROGRESS", raising=False)


def draw_progress(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """From now on in this test, progress bars are drawn on stderr, every step, in this process and its
    subprocesses (:data:`PROGRESS_DRAWN_ENV`; tqdm reads its ``TQDM_*`` variables when imported); returns that
    environment."""
    import tqdm

    for name, value in PROGRESS_DRAWN_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("monai_iunet.progress.tqdm", functools.partial(tqdm.tqdm, mininterval=0, miniters=1))
    return dict(PROGRESS_DRAWN_ENV)


@pytest.fixture
def progress_drawn(monkeypatch) -> dict[str, str]:
    """Progress bars drawn on stderr, every step, for the whole test (:func:`draw_progress`)."""
    return draw_progress(monkeypatch)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def randomize_(module: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Move every parameter away from its identity initialisation so tests see a non-trivial network."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module


def saved_bytes(fn: Callable, *args) -> tuple[int, object]:
    """Bytes of the tensors autograd saves for backward during ``fn(*args)``, and what ``fn`` returned."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*args)
    return total, out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_gloo(rank: int, world_size: int, port: int) -> None:
    """In a worker: join a gloo process group on ``127.0.0.1:port``, giving up after ``RENDEZVOUS_TIMEOUT_S``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(
        "gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=RENDEZVOUS_TIMEOUT_S)
    )


def finish_gloo() -> None:
    """In a worker: wait for every rank, then leave the process group.

    A rank that destroys its group while another still talks to it (the store lives in rank 0) can leave that rank
    waiting forever; the barrier first makes the teardown symmetric.
    """
    dist.barrier()
    dist.destroy_process_group()


def run_processes(target: Callable, nprocs: int, args: tuple = (), timeout: float = PROCESS_TIMEOUT_S) -> None:
    """Run ``target(rank, *args)`` in ``nprocs`` fresh (spawned) processes and fail the test if any rank fails.

    Unlike ``torch.multiprocessing.spawn(join=True)`` this never waits forever: when one rank exits with an error
    the others are killed at once, and all are killed after ``timeout`` seconds.
    """
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=target, args=(rank, *args), daemon=True) for rank in range(nprocs)]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    try:
        while any(p.is_alive() for p in processes) and time.monotonic() < deadline:
            if any(p.exitcode not in (None, 0) for p in processes):
                break
            time.sleep(0.05)
        codes = {rank: p.exitcode for rank, p in enumerate(processes)}
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join(5)
    failed = {rank: code for rank, code in codes.items() if code not in (None, 0)}
    if failed:
        pytest.fail(f"rank(s) {sorted(failed)} failed with exit code(s) {failed}; the others were stopped")
    hung = [rank for rank, code in codes.items() if code is None]
    if hung:
        pytest.fail(f"rank(s) {hung} still running after {timeout:.0f} s; killed")
