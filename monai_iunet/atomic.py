"""Writing a file or folder so that a reader sees either the old one or the whole new one: :func:`atomic_path`.

Used for the generated datasets (:func:`monai_iunet.data.ensure_generated`), the clinical results folder
(:func:`monai_iunet.clinical.outputs.atomic_output_dir`) and the records beside checkpoints
(:mod:`monai_iunet.bundle.checkpoints`).

Example::

    with atomic_path("results/report.json") as tmp:
        tmp.write_text(json.dumps(report))
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike, install: Callable[[Path, Path], object] = os.replace) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write a file or folder into; it becomes ``path`` when the block succeeds.

    The sibling (``.<name>.<pid>-<random>.partial`` in the same folder, so on the same file system) does not exist
    when the block starts; the block creates it as a file or a folder. When the block ends without an exception,
    ``install(sibling, path)`` puts it into place: by default ``os.replace``, which replaces a file or an empty
    folder in one step and raises ``OSError`` for a folder that holds files. Whatever is left of the sibling is
    removed in any case, so a failed or interrupted write leaves ``path`` as it was.

    Args:
        path: the file or folder to write; its parent folder is created if missing.
        install: moves the finished sibling to ``path`` (e.g. merging into an existing folder).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.parent / f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    try:
        yield partial
        install(partial, path)
    finally:
        _remove(partial)
