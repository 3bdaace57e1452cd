"""The paper's engine as an alternative: memcnn's ``InvertibleModuleWrapper`` around each invertible block.

memcnn (Gomez et al. 2017) keeps the memory trick in a wrapper around one invertible module. This adapter walks a
composition of invertible modules and wraps its leaves, the blocks that contain no other invertible module; it
knows only the forward/inverse protocol.
"""

from __future__ import annotations

import warnings

from torch import nn

__all__ = ["import_memcnn", "wrap_with_memcnn"]


def import_memcnn():
    """Import memcnn without letting it change the global warning filters, or say how to install it."""
    try:
        with warnings.catch_warnings():  # memcnn installs a global UserWarning filter on import; undo it
            import memcnn
    except ImportError as e:
        raise ImportError('engine="memcnn" needs memcnn: pip install --no-deps memcnn') from e
    return memcnn


def _is_invertible(module: nn.Module) -> bool:
    return callable(getattr(module, "inverse", None))


def wrap_with_memcnn(module: nn.Module, skip: tuple[type, ...] = ()) -> nn.Module:
    """Replace, in place, every invertible leaf block under ``module`` by a memcnn ``InvertibleModuleWrapper``.

    Args:
        module: a composition of invertible modules.
        skip: module types left unwrapped (e.g. cheap orthogonal resampling layers).

    Returns:
        ``module`` itself.
    """
    memcnn = import_memcnn()
    for name, child in module.named_children():
        if any(_is_invertible(m) for m in child.modules() if m is not child):
            wrap_with_memcnn(child, skip)
        elif _is_invertible(child) and not isinstance(child, skip):
            setattr(module, name, memcnn.InvertibleModuleWrapper(child, keep_input=False, keep_input_inverse=False))
    return module
