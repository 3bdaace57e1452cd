"""Progress bars with the time left, drawn only where someone watches them.

One decision for the whole package (:func:`progress_enabled`): a bar is drawn on stderr when stderr is a terminal,
and never into a pipe or a log file, where every redraw would be one more line. The environment variable
``MONAI_IUNET_PROGRESS`` overrides it for every command and bundle: ``off`` (or ``0``, ``false``) draws no bar even
at a terminal, ``on`` (or ``1``, ``true``) draws them even into a file, ``auto`` (the default) decides by the
terminal. Functions with a ``progress`` argument take ``True``/``False`` or the same words; ``None`` defers to
the environment variable. In a distributed run only rank 0 draws.

The bars are tqdm's (the default format shows ``[elapsed<remaining]``, the time left); :func:`progress_bar` makes
one with that decision, and :func:`logging_beside_bars` sends the log records of the root logger's console
handlers through ``tqdm.write`` while bars are shown, so that a log line never lands in the middle of a bar.

Example::

    from monai_iunet.progress import progress_bar

    for case in progress_bar(cases, desc="synthetic cases", unit="case"):
        ...
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from monai.utils import StrEnum, look_up_option
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from monai_iunet.errors import UserInputError

__all__ = [
    "PROGRESS_ENV",
    "ProgressMode",
    "logging_beside_bars",
    "progress_bar",
    "progress_enabled",
    "showing_progress",
]

PROGRESS_ENV = "MONAI_IUNET_PROGRESS"
"""The environment variable that turns the progress bars on or off (``on``, ``off`` or ``auto``)."""

_WORDS = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off", "": "auto"}


class ProgressMode(StrEnum):
    """When to draw progress bars: ``auto`` (stderr is a terminal), ``on`` (always), ``off`` (never)."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


def _mode(progress: bool | str | None) -> ProgressMode:
    """``progress`` (or, for ``None``, the environment variable) as a :class:`ProgressMode`."""
    if isinstance(progress, bool):
        return ProgressMode.ON if progress else ProgressMode.OFF
    where = f"the environment variable {PROGRESS_ENV}" if progress is None else "progress"
    word = str(os.environ.get(PROGRESS_ENV, "") if progress is None else progress).strip().lower()
    try:
        return ProgressMode(look_up_option(_WORDS.get(word, word), ProgressMode))
    except ValueError:
        raise UserInputError(
            f"{where} is {word!r}; use 'on', 'off' or 'auto' (bars only when stderr is a terminal)."
        ) from None


def _is_secondary_rank() -> bool:
    dist = sys.modules.get("torch.distributed")  # not imported: not a distributed run
    return bool(dist is not None and dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


def progress_enabled(progress: bool | str | None = None, stream: IO | None = None) -> bool:
    """Whether to draw a progress bar on ``stream``.

    Args:
        progress: ``True``/``"on"`` or ``False``/``"off"`` decide; ``"auto"`` draws when ``stream`` is a terminal;
            ``None`` (the default) reads :data:`PROGRESS_ENV` (unset: ``auto``).
        stream: where the bar would go (default: ``sys.stderr``).

    Raises:
        UserInputError: ``progress`` or the environment variable is none of the words above.
    """
    mode = _mode(progress)
    if mode == ProgressMode.OFF or _is_secondary_rank():
        return False
    if mode == ProgressMode.ON:
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False


def progress_bar(
    iterable: Iterable | None = None,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    progress: bool | str | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on stderr (counts, rate and time left), disabled unless :func:`progress_enabled` says to draw.

    A disabled bar is still a working ``tqdm``: it iterates ``iterable`` and accepts ``update``,
    ``set_postfix_str`` and ``close``, drawing nothing.

    Args:
        iterable: what to iterate over (or ``None`` and ``update()`` by hand).
        total: the number of steps (default: ``len(iterable)`` where it has one).
        desc: what is being done, shown before the bar.
        unit: what one step is (``"case"``, ``"study"``, ...).
        progress: see :func:`progress_enabled`.
        kwargs: other arguments of ``tqdm`` (``leave``, ``initial``, ``position``, ...).
    """
    kwargs.setdefault("dynamic_ncols", True)
    disable = not progress_enabled(progress, sys.stderr)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=disable, **kwargs)


@contextlib.contextmanager
def logging_beside_bars(enabled: bool = True) -> Iterator[None]:
    """While active (and ``enabled``), the root logger's console handlers write through ``tqdm.write``.

    A log record then appears above the bars instead of inside one; with ``enabled=False`` (no bar drawn) logging
    is left untouched.
    """
    if not enabled:
        yield
        return
    with logging_redirect_tqdm(loggers=[logging.getLogger()]):
        yield


@contextlib.contextmanager
def showing_progress(iterable: Iterable | None = None, **kwargs: Any) -> Iterator[tqdm]:
    """:func:`progress_bar` for the duration of a ``with`` block, closed at its end; while the bar is drawn, log
    records appear above it (:func:`logging_beside_bars`). ``kwargs``: those of :func:`progress_bar`."""
    bar = progress_bar(iterable, **kwargs)
    with logging_beside_bars(not bar.disable), bar:
        yield bar
