"""Small argument helpers shared by the invertible layers and networks."""

from __future__ import annotations

from typing import Any

from monai.utils import ensure_tuple_rep

__all__ = ["ints_rep"]


def ints_rep(value: Any, num: int, minimum: int, error: str) -> tuple[int, ...]:
    """``value`` as ``num`` ints of at least ``minimum``; one int is repeated (:func:`monai.utils.ensure_tuple_rep`).

    Raises:
        ValueError: with the message ``error`` when ``value`` is neither one such int nor ``num`` of them.
    """
    try:
        result = tuple(int(v) for v in ensure_tuple_rep(value, num))
    except (TypeError, ValueError):
        result = None
    if result is None or any(v < minimum for v in result):
        raise ValueError(error)
    return result
