"""Opaque regions under ``torch.compile``: the engines run eagerly there, so that a compiled network stays
memory-efficient (traced, the engine's ``autograd.Function`` would be inlined and AOT autograd would save every
block's activations again)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["opaque_to_compile"]

_F = TypeVar("_F", bound=Callable)


def opaque_to_compile(reason: str) -> Callable[[_F], _F]:
    """A decorator making a function an opaque region that ``torch.compile`` runs eagerly (one graph break):
    ``torch.compiler.disable`` with the reason Dynamo shows (torch < 2.7 takes no reason)."""
    try:
        return torch.compiler.disable(reason=reason)
    except TypeError:
        return torch.compiler.disable
