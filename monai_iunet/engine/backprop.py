"""The memory-efficient backpropagation engine for compositions of invertible modules.

The engine knows one protocol: an invertible module has ``forward(x)`` and ``inverse(y)``. It runs a module's
forward without recording a graph and keeps only the output. In backward it walks the module from the output
towards the input: each step reconstructs its input from its output and back-propagates through that one step
(:func:`reconstruct`). Peak memory is therefore that of the output, its gradient and one step's working set,
however many steps there are (Gomez et al. 2017; paper §1).

A module may refine the default step by defining ``reconstruct(y, grad_y, grads) -> (x, grad_x)``; ``y`` and
``grad_y`` are then buffers owned by the engine that it may overwrite in place.
:class:`~monai_iunet.engine.invertible.InvertibleSequence` does so to walk its children, and additive couplings
to evaluate their residual function only once.

Parameter gradients are returned through autograd (the parameters are inputs of the engine's
``autograd.Function``), so ``loss.backward()``, ``torch.autograd.grad`` and DistributedDataParallel's gradient
hooks see them as usual. The engine never frees or overwrites a tensor it did not allocate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from monai_iunet.engine.guard import ReconstructionGuard

__all__ = [
    "MemoryEfficientFunction",
    "accumulate_grads",
    "memory_efficient_apply",
    "reconstruct",
    "trainable_parameters",
]


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` that require gradients, in a fixed order."""
    return [p for p in module.parameters() if p.requires_grad]


def accumulate_grads(
    grads: dict[nn.Parameter, torch.Tensor], params: Sequence[nn.Parameter], values: Iterable[torch.Tensor | None]
) -> None:
    """Add ``values`` to ``grads[param]`` (a parameter can occur in several steps)."""
    for param, value in zip(params, values):
        if value is None:
            continue
        if param in grads:
            grads[param] = grads[param] + value
        else:
            grads[param] = value


def reconstruct(
    module: nn.Module, y: torch.Tensor, grad_y: torch.Tensor, grads: dict[nn.Parameter, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One backward step through an invertible module: rebuild its input and its input's gradient.

    Uses ``module.reconstruct`` where the module defines it; otherwise computes ``x = module.inverse(y)``,
    re-runs ``module(x)`` with a graph and back-propagates ``grad_y`` through it.

    Args:
        module: an invertible module.
        y: the module's output, shape ``(N, C', *S')``; a buffer owned by the engine.
        grad_y: gradient of the loss with respect to ``y``; a buffer owned by the engine.
        grads: parameter gradients, accumulated in place.

    Returns:
        the module's input ``x`` and the gradient with respect to it.
    """
    fused = getattr(module, "reconstruct", None)
    if fused is not None:
        return fused(y, grad_y, grads)
    with torch.no_grad():
        x = module.inverse(y)
    del y
    params = trainable_parameters(module)
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        out = module(leaf)
    grad_x, *param_grads = torch.autograd.grad(out, [leaf, *params], grad_y, allow_unused=True)
    accumulate_grads(grads, params, param_grads)
    if grad_x is None:
        grad_x = torch.zeros_like(x)
    return x, grad_x


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


class MemoryEfficientFunction(torch.autograd.Function):
    """``y = module(x)`` without storing intermediates; backward reconstructs them from ``y``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, module: nn.Module, x: torch.Tensor, private: bool, guard: ReconstructionGuard | None, *params: nn.Parameter
    ) -> torch.Tensor:
        ctx.module = module
        ctx.private = private
        ctx.guard = guard
        ctx.reference = x.detach().clone() if guard is not None and guard.due() else None
        ctx.device_type = x.device.type
        ctx.autocast = _autocast_state(x.device.type)
        y = module(x)
        if y is x or y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            y = y.clone()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        (y,) = ctx.saved_tensors
        # Reconstruct in place in the output's own memory only when the caller declared the output private and
        # the graph is not retained for another backward; otherwise work on copies.
        own = ctx.private and not _graph_is_retained()
        if not own:
            y = y.clone()
        if own and grad_y.dtype == y.dtype and grad_y.is_contiguous():
            grad = grad_y
        else:
            grad = grad_y.to(y.dtype, copy=True).contiguous()
        del grad_y
        grads: dict[nn.Parameter, torch.Tensor] = {}
        enabled, dtype = ctx.autocast
        with torch.autocast(ctx.device_type, dtype=dtype, enabled=enabled):
            x_rec, grad_x = reconstruct(ctx.module, y, grad, grads)
        if ctx.reference is not None:
            reference, ctx.reference = ctx.reference, None
            ctx.guard.check(reference, x_rec)
        del x_rec
        param_grads = [grads.get(p) for p in trainable_parameters(ctx.module)]
        return (None, grad_x if ctx.needs_input_grad[1] else None, None, None, *param_grads)


def _graph_is_retained() -> bool:
    """Whether the running backward keeps the graph (``retain_graph=True``); assume so if torch cannot say."""
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    return True if keep_graph is None else bool(keep_graph())


def memory_efficient_apply(
    module: nn.Module, x: torch.Tensor, private_output: bool = False, guard: ReconstructionGuard | None = None
) -> torch.Tensor:
    """``module(x)`` with memory-efficient backpropagation when a gradient is needed.

    Args:
        module: an invertible module (``forward`` and ``inverse``).
        x: input tensor; it is never modified.
        private_output: the caller guarantees that the output and its gradient are used by nothing that
            still needs them when the backward pass reaches this module (e.g. the output only feeds a
            convolution). The backward pass then reconstructs in place in their memory instead of copying
            them, saving two activation copies. Leave it ``False`` for outputs handed to user code.
        guard: optional :class:`ReconstructionGuard` checking the reconstruction now and then.

    Returns:
        ``module(x)``, connected to ``x`` and to the module's parameters by the engine's backward.
    """
    params = trainable_parameters(module)
    exporting = torch.jit.is_tracing() or torch.compiler.is_compiling()
    if exporting or not torch.is_grad_enabled() or not (x.requires_grad or params):
        return module(x)
    return MemoryEfficientFunction.apply(module, x, private_output, guard, *params)
