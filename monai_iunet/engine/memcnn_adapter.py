"""The paper's engine as an alternative: memcnn's invertible checkpoint around each invertible block.

memcnn (Gomez et al. 2017) keeps the memory trick in a wrapper around one invertible module. This adapter walks a
composition of invertible modules and wraps its leaves, the blocks that contain no other invertible module, in
:class:`MemcnnBlock`; it knows only the forward/inverse protocol.

memcnn frees the storage of every wrapped block's input in forward and rebuilds it in backward. The adapter
therefore lets memcnn run only inside :func:`memcnn_apply`, which hands the composition a copy that the engine
owns; everywhere else (``memory_efficient=False``, ``no_grad``/``inference_mode``, ``inverse``,
``torch.jit.trace``) a :class:`MemcnnBlock` is its block. Under CPU autocast memcnn's blocks run in float32, as
memcnn does under CUDA autocast (its recompute cannot follow CPU autocast). The wrapper adds no level to the
state dict, so weights move freely between ``engine="memcnn"`` and the default engine.
"""

from __future__ import annotations

import warnings
from contextvars import ContextVar

import torch
from torch import nn

from monai_iunet.engine.backprop import _opaque_to_compile

__all__ = ["MemcnnBlock", "import_memcnn", "memcnn_apply", "wrap_with_memcnn"]

#: ``preserve_rng_state`` of the running :func:`memcnn_apply`; ``None`` outside it (memcnn stays off)
_ACTIVE: ContextVar[bool | None] = ContextVar("monai_iunet_memcnn_active", default=None)


def import_memcnn():
    """Import memcnn without letting it change the global warning filters, or say how to install it."""
    try:
        with warnings.catch_warnings():  # memcnn installs a global UserWarning filter on import; undo it
            import memcnn
            import memcnn.models.revop  # noqa: F401
    except ImportError as e:
        raise ImportError('engine="memcnn" needs memcnn: pip install --no-deps memcnn') from e
    return memcnn


def _is_invertible(module: nn.Module) -> bool:
    return callable(getattr(module, "inverse", None))


class MemcnnBlock(nn.Module):
    """One invertible block trained through memcnn's ``InvertibleCheckpointFunction`` inside :func:`memcnn_apply`.

    Outside :func:`memcnn_apply` it is the block itself. Its state dict holds the block's keys unchanged (no
    ``block.`` level), so checkpoints load across engines.

    Args:
        block: an invertible module (``forward`` and ``inverse``, same shape in and out).
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block
        self._function = import_memcnn().models.revop.InvertibleCheckpointFunction
        if hasattr(self, "register_state_dict_post_hook"):
            self.register_state_dict_post_hook(_drop_level)
            self.register_load_state_dict_pre_hook(_add_level)
        else:  # torch < 2.5: the same hooks under their private names
            self._register_state_dict_hook(_drop_level)
            self._register_load_state_dict_pre_hook(_add_level, with_module=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        preserve_rng_state = _ACTIVE.get()
        if preserve_rng_state is None:
            return self.block(x)
        if x._is_view():  # memcnn frees the whole storage of its input: never that of a larger tensor
            x = x.clone()
        params = [p for p in self.block.parameters() if p.requires_grad]
        keep_input, num_bwd_passes, num_inputs = False, 1, 1
        (y,) = self._function.apply(
            self.block.forward,
            self.block.inverse,
            keep_input,
            num_bwd_passes,
            preserve_rng_state,
            num_inputs,
            x,
            *params,
        )
        return y

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.block.inverse(y)


def _drop_level(module: MemcnnBlock, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    inner = prefix + "block."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner) :]] = state_dict.pop(key)


def _add_level(module: MemcnnBlock, state_dict: dict, prefix: str, *args) -> None:
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + "block.")]:
        rest = key[len(prefix) :]
        rest = rest[len("_fn.") :] if rest.startswith("_fn.") else rest  # memcnn's own wrapper's level
        state_dict[prefix + "block." + rest] = state_dict.pop(key)


def wrap_with_memcnn(module: nn.Module, skip: tuple[type, ...] = ()) -> nn.Module:
    """Replace, in place, every invertible leaf block under ``module`` by a :class:`MemcnnBlock`.

    Args:
        module: a composition of invertible modules.
        skip: module types left unwrapped (e.g. cheap orthogonal resampling layers).

    Returns:
        ``module`` itself.
    """
    import_memcnn()
    for name, child in module.named_children():
        if any(_is_invertible(m) for m in child.modules() if m is not child):
            wrap_with_memcnn(child, skip)
        elif _is_invertible(child) and not isinstance(child, skip):
            setattr(module, name, MemcnnBlock(child))
    return module


class _RefuseDoubleBackward(torch.autograd.Function):
    """Identity whose backward refuses ``create_graph=True``: memcnn's gradients are not differentiable."""

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if torch.is_grad_enabled():  # autograd runs backward in grad mode only for create_graph=True
            raise RuntimeError(
                'engine="memcnn" does not support higher-order gradients (create_graph=True): memcnn computes '
                "its gradients outside the autograd graph. Build the network with memory_efficient=False to "
                "differentiate twice."
            )
        return grad


@_opaque_to_compile('engine="memcnn" runs eagerly inside torch.compile (one graph break)')
def memcnn_apply(module: nn.Module, x: torch.Tensor, preserve_rng_state: bool = True) -> torch.Tensor:
    """``module(x)`` with memcnn's memory-efficient backpropagation through the :class:`MemcnnBlock` inside it.

    Without a gradient to compute, or while tracing, the blocks run plainly. memcnn frees the inputs of its
    blocks, so the composition gets a copy of ``x``; ``x`` itself is never modified.

    Args:
        module: a composition of invertible modules prepared by :func:`wrap_with_memcnn`.
        x: input tensor; never modified or freed.
        preserve_rng_state: let memcnn replay each block's RNG state when it recomputes the block in backward.

    Returns:
        ``module(x)``; under CPU autocast computed, and returned, in float32.
    """
    if torch.jit.is_tracing() or not torch.is_grad_enabled():
        return module(x)
    owned = x.clone()  # memcnn frees its first block's input: never the caller's tensor (or a view's base)
    token = _ACTIVE.set(bool(preserve_rng_state))
    try:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # memcnn's backward recomputes without CPU autocast (it only handles CUDA autocast, by running
            # in float32): run its blocks in float32 here too, so forward and recompute agree
            with torch.autocast("cpu", enabled=False):
                return _RefuseDoubleBackward.apply(module(owned.float()))
        return _RefuseDoubleBackward.apply(module(owned))
    finally:
        _ACTIVE.reset(token)
