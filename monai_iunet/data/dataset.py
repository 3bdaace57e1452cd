"""A MONAI dataset whose errors name the case and the file, and which can skip broken cases in training."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from monai.data import CacheDataset
from monai.utils import str2bool

from monai_iunet.data.checks import BROKEN_CASE_ADVICE, BrokenCaseError, check_case
from monai_iunet.errors import LabelConventionError, exception_chain
from monai_iunet.progress import progress_enabled

__all__ = ["CaseDataset"]


def _root_cause(error: BaseException) -> BaseException:
    """The exception at the end of ``error``'s explicit chain (MONAI's Compose wraps transform errors)."""
    *_, cause = exception_chain(error, implicit=False)
    return cause


logger = logging.getLogger(__name__)


class CaseDataset(CacheDataset):
    """``monai.data.CacheDataset`` turning an error in loading or transforming a case into a :class:`BrokenCaseError`.

    The error names the case and the file at fault (found by re-reading the case's files with
    :func:`~monai_iunet.data.check_case` once something failed), says what is wrong, and what to do, instead of a
    bare traceback from deep inside a transform. With ``skip_broken=True`` a broken case is logged as a warning and
    the next case in the list is returned instead, so that a long training run does not die mid-epoch.

    With the default ``cache_rate=0.0`` nothing is cached and it behaves like ``monai.data.Dataset``; a positive
    ``cache_rate`` caches the deterministic transforms' results as ``CacheDataset`` does (a case that fails while
    the cache is filled is reported when it is first drawn).

    Args:
        data: datalist items ``{"image": ..., "label": ..., "case": ...}``.
        transform: transform applied to every item (a ``Compose`` when caching).
        skip_broken: replace a broken case by the next one, with a warning, instead of raising.
        label_values: label values besides 0 that the label files may hold, for the diagnosis.
        cache_rate: fraction of the cases to cache.
        num_workers: threads that fill the cache.
        progress: show MONAI's progress bar while filling the cache: ``None`` (``MONAI_IUNET_PROGRESS``, else only
            when stderr is a terminal), ``"on"``, ``"off"``, ``"auto"`` or a bool (:mod:`monai_iunet.progress`).
        advice: what the error about a broken case tells the user to do (default
            :data:`~monai_iunet.data.checks.BROKEN_CASE_ADVICE`).
        kwargs: other arguments of ``monai.data.CacheDataset``.
    """

    def __init__(
        self,
        data: Sequence,
        transform: Callable | None = None,
        skip_broken: bool = False,
        label_values: Sequence[int] | None = None,
        cache_rate: float = 0.0,
        num_workers: int | None = 1,
        progress: bool | str | None = None,
        advice: str = BROKEN_CASE_ADVICE,
        **kwargs: Any,
    ) -> None:
        self.skip_broken = str2bool(skip_broken)
        self.advice = advice
        self.label_values = label_values
        self._errors: dict[int, BrokenCaseError] = {}
        super().__init__(
            data=data,
            transform=transform,
            cache_rate=cache_rate,
            num_workers=num_workers,
            progress=progress_enabled(progress),
            **kwargs,
        )

    def _diagnose(self, index: int, error: BaseException) -> BrokenCaseError:
        item = self.data[index]
        problems = check_case(item, read_data=True, label_values=self.label_values)
        cause = _root_cause(error)
        reason = "; ".join(problems) if problems else f"{type(cause).__name__}: {cause}"
        diagnosis = BrokenCaseError(f"case {item.get('case', index)}: {reason}\n{self.advice}")
        diagnosis.__cause__ = error
        return diagnosis

    def _load_cache_item(self, idx: int):
        try:
            return super()._load_cache_item(idx)
        except Exception as e:
            if isinstance(_root_cause(e), LabelConventionError):
                raise _root_cause(e) from e  # valid labels of another convention: not a broken case to skip
            self._errors[idx] = self._diagnose(idx, e)
            return None

    def _transform(self, index: int):
        for offset in range(len(self.data)):
            i = (index + offset) % len(self.data)
            try:
                if i in self._errors:
                    raise self._errors[i]
                return super()._transform(i)
            except Exception as e:
                if isinstance(_root_cause(e), LabelConventionError):
                    raise _root_cause(e) from e  # valid labels of another convention: not a broken case to skip
                error = self._errors.setdefault(i, e if isinstance(e, BrokenCaseError) else self._diagnose(i, e))
                if not self.skip_broken:
                    raise error from error.__cause__
                logger.warning(f"skipping broken {error}")
        raise BrokenCaseError(f"every one of the {len(self.data)} cases is broken; see the warnings above.")
