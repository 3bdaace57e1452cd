"""atomic_path: a reader sees the old file or folder, or the whole new one; a failed write leaves nothing."""

from __future__ import annotations

import pytest

from monai_iunet.atomic import atomic_path


def test_a_file_is_replaced_only_when_the_write_succeeds(tmp_path):
    target = tmp_path / "sub" / "record.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and not tmp.exists()
        tmp.write_text("1")
        assert not target.exists()
    assert target.read_text() == "1"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            tmp.write_text("2")
            raise RuntimeError("killed")
    assert target.read_text() == "1"
    assert [p.name for p in target.parent.iterdir()] == ["record.json"]


def test_a_folder_is_moved_into_place_and_never_over_files(tmp_path):
    target = tmp_path / "data"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "case.txt").write_text("a")
    assert (target / "case.txt").read_text() == "a"
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "other.txt").write_text("b")
    assert [p.name for p in target.iterdir()] == ["case.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
