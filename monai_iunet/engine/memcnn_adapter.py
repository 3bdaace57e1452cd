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

memcnn calls the block's ``inverse`` and ``forward`` again in backward. The adapter hands it functions that, when
called again, restore running statistics afterwards (batch norm is updated once per step, as with ordinary
autograd) and use the parameters the forward used (``torch.func.functional_call`` is exact); ``torch.func``
transforms are refused with an error naming ``memory_efficient=False``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextvars import ContextVar

import torch
from torch import nn

from monai_iunet.engine.backprop import refusing_function_transforms
from monai_iunet.engine.opaque import opaque_to_compile
from monai_iunet.engine.protocol import Invertible
from monai_iunet.engine.recompute import RunningStats, call_with_tensors, module_tensors

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


_FUNCTION_TRANSFORMS = (
    'engine="memcnn" does not support torch.func function transforms (grad, vjp, jvp, vmap of a gradient): '
    "memcnn computes its gradients outside the autograd graph. Build the network with memory_efficient=False (or "
    "set net.core.memory_efficient = False) to use them."
)


class MemcnnBlock(nn.Module):
    """One invertible block trained through memcnn's ``InvertibleCheckpointFunction`` inside :func:`memcnn_apply`.

    Outside :func:`memcnn_apply` it is the block itself. Its state dict holds the block's keys unchanged (no
    ``block.`` level), so checkpoints load across engines.

    Args:
        block: an invertible module (``forward`` and ``inverse``, same shape in and out).
    """

    def __init__(self, block: Invertible) -> None:
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
        forward, inverse = _recomputable(self.block)
        keep_input, num_bwd_passes, num_inputs = False, 1, 1
        with refusing_function_transforms(_FUNCTION_TRANSFORMS):
            (y,) = self._function.apply(
                forward, inverse, keep_input, num_bwd_passes, preserve_rng_state, num_inputs, x, *params
            )
        forward.forward_done = inverse.forward_done = True
        return y

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.block.inverse(y)


class _Call:
    """One of a block's methods as memcnn calls it: plainly in memcnn's forward; in its backward (after
    :attr:`forward_done` is set) with the tensors the forward used and its running statistics left untouched."""

    def __init__(self, block: nn.Module, method: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.block = block
        self.method = method
        self.tensors = module_tensors(block)
        self.forward_done = False

    def _quietly(self, t: torch.Tensor) -> torch.Tensor:
        stats = RunningStats(self.block)
        try:
            return self.method(t)
        finally:
            stats.restore()

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if not self.forward_done:
            return self.method(t)
        return call_with_tensors(self.block, self.tensors, self._quietly, t)


def _recomputable(block: Invertible) -> tuple[_Call, _Call]:
    """The block's ``forward`` and ``inverse`` wrapped for memcnn (see :class:`_Call`)."""
    return _Call(block, block.forward), _Call(block, block.inverse)


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
        if any(isinstance(m, Invertible) for m in child.modules() if m is not child):
            wrap_with_memcnn(child, skip)
        elif isinstance(child, Invertible) and not isinstance(child, skip):
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


@opaque_to_compile('engine="memcnn" runs eagerly inside torch.compile (one graph break)')
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
