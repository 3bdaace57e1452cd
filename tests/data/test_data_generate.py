"""Generating a missing dataset: only when needed, atomically, once per distributed run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monai_iunet.data import ensure_generated, is_missing_or_empty

from conftest import finish_gloo, free_port, init_gloo, run_processes


def _write_cases(folder: Path, n: int = 2) -> None:
    folder.mkdir()
    for i in range(n):
        (folder / f"case{i}.txt").write_text(str(i))


def test_generates_missing_and_empty_folders_and_leaves_others_alone(tmp_path):
    calls = []

    def generate(folder: Path) -> None:
        calls.append(folder)
        _write_cases(folder)

    target = tmp_path / "sub" / "data"
    assert ensure_generated(target, generate) == target
    assert sorted(p.name for p in target.iterdir()) == ["case0.txt", "case1.txt"]
    assert calls[0].parent == target.parent and calls[0] != target  # written aside, then renamed into place
    empty = tmp_path / "empty"
    empty.mkdir()
    ensure_generated(empty, generate)
    assert len(list(empty.iterdir())) == 2
    (target / "case1.txt").unlink()
    ensure_generated(target, generate)  # not empty: left as it is
    assert [p.name for p in target.iterdir()] == ["case0.txt"] and len(calls) == 2
    assert is_missing_or_empty(tmp_path / "nowhere") and not is_missing_or_empty(target)


def test_a_failed_generation_leaves_nothing_behind(tmp_path):
    def generate(folder: Path) -> None:
        _write_cases(folder, 1)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ensure_generated(tmp_path / "data", generate)
    assert list(tmp_path.iterdir()) == []


def test_needs_generating_decides_and_may_refuse(tmp_path):
    target = tmp_path / "data"
    _write_cases(target, 1)

    def refuse(folder: Path) -> bool:
        raise FileNotFoundError(f"{folder} holds files but no index")

    with pytest.raises(FileNotFoundError, match="no index"):
        ensure_generated(target, _write_cases, refuse)
    with pytest.raises(FileExistsError, match="holds files but is not the dataset"):  # never replaces files
        ensure_generated(target, _write_cases, lambda folder: True)
    assert [p.name for p in target.iterdir()] == ["case0.txt"] and len(list(tmp_path.iterdir())) == 1


def _generate_on_rank(rank: int, world: int, port: int, root: str, fail: bool) -> None:
    init_gloo(rank, world, port)
    target = Path(root) / "data"

    def generate(folder: Path) -> None:
        if fail:
            raise OSError("cannot write")
        _write_cases(folder)
        (Path(root) / f"generated_by_rank{rank}").touch()

    try:
        ensure_generated(target, generate)
        outcome = {"cases": sorted(p.name for p in target.iterdir())}
    except Exception as e:
        outcome = {"error": f"{type(e).__name__}: {e}"}
    (Path(root) / f"rank{rank}.json").write_text(json.dumps(outcome))
    finish_gloo()


def test_distributed_rank_zero_generates_and_the_others_wait(tmp_path):
    run_processes(_generate_on_rank, 2, args=(2, free_port(), str(tmp_path), False))
    outcomes = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert outcomes == [{"cases": ["case0.txt", "case1.txt"]}] * 2  # rank 1 saw the whole dataset
    assert sorted(p.name for p in tmp_path.glob("generated_by_*")) == ["generated_by_rank0"]


def test_distributed_failure_on_rank_zero_fails_every_rank_instead_of_hanging(tmp_path):
    run_processes(_generate_on_rank, 2, args=(2, free_port(), str(tmp_path), True))
    outcomes = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert outcomes[0] == {"error": "OSError: cannot write"}
    assert outcomes[1]["error"].startswith("RuntimeError: rank 0 failed to generate the dataset")
    assert not (tmp_path / "data").exists()
