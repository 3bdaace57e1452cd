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

The recompute is invisible (:mod:`monai_iunet.engine.recompute`): it replays each module's forward RNG state,
leaves running statistics as the forward left them, and reuses the output's memory only when the caller allows it
and no hook can see it. What it cannot do, it refuses: higher-order gradients (``create_graph=True``) raise an
error naming ``memory_efficient=False``, and so do function transforms (``torch.func.grad``, ``vjp``, ``jvp``,
``vmap`` with a gradient). Under ``torch.func.functional_call`` the backward recomputes with the parameters the
forward used, not the module's own. Under ``torch.compile`` the engine is an opaque region that runs eagerly
(a graph break), so a compiled network stays memory-efficient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from monai.utils import deprecated_arg
from torch import nn

from monai_iunet.engine.opaque import opaque_to_compile
from monai_iunet.engine.protocol import Invertible
from monai_iunet.engine.recompute import (
    RngRecord,
    RunningStats,
    call_with_tensors,
    module_tensors,
    recomputing_scope,
    replay_rng,
    set_rng_state_to,
)

if TYPE_CHECKING:
    from monai_iunet.engine.guard import ReconstructionGuard

__all__ = [
    "MemoryEfficientFunction",
    "accumulate_grads",
    "deprecated_private_output",
    "memory_efficient_apply",
    "reconstruct",
    "trainable_parameters",
]


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``module`` that require gradients, in a fixed order (inside
    ``torch.func.functional_call``: the tensors substituted for them)."""
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
    module: Invertible, y: torch.Tensor, grad_y: torch.Tensor, grads: dict[nn.Parameter, torch.Tensor]
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
    rng = replay_rng(module)  # the RNG state this module saw in forward, when the forward drew random numbers
    fused = getattr(module, "reconstruct", None)
    if fused is not None:
        return fused(y, grad_y, grads)
    with torch.no_grad():
        x = module.inverse(y)
    del y
    params = trainable_parameters(module)
    set_rng_state_to(rng)
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


_FUNCTION_TRANSFORMS = (
    "memory-efficient backpropagation does not support torch.func function transforms (grad, vjp, jvp, "
    "vmap of a gradient, jacrev/jacfwd): its backward reconstructs activations outside the autograd graph. "
    "Build the network with memory_efficient=False (or set net.core.memory_efficient = False) to use them; "
    "torch.func.functional_call alone (without a transform) is supported."
)

_DOUBLE_BACKWARD = (
    "memory-efficient backpropagation does not support higher-order gradients (create_graph=True, e.g. gradient "
    "penalties or meta-learning): its backward reconstructs activations outside the autograd graph, so second "
    "derivatives would be wrong. Build the network with memory_efficient=False (or set net.core.memory_efficient = "
    "False for that step) to differentiate twice."
)


class MemoryEfficientFunction(torch.autograd.Function):
    """``y = module(x)`` without storing intermediates; backward reconstructs them from ``y``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        module: Invertible,
        x: torch.Tensor,
        reuse_output_memory: bool,
        guard: ReconstructionGuard | None,
        preserve_rng_state: bool,
        *params: nn.Parameter,
    ) -> torch.Tensor:
        ctx.module = module
        ctx.params = params  # what the forward used: under functional_call, not the module's own parameters
        ctx.tensors = module_tensors(module)
        ctx.reuse = reuse_output_memory
        ctx.guard = guard
        ctx.reference = x.detach().clone() if guard is not None and guard.due() else None
        ctx.device_type = x.device.type
        ctx.autocast = _autocast_state(x.device.type)
        ctx.rng = None
        if preserve_rng_state:
            with RngRecord(module, x) as record:
                y = module(x)
            ctx.rng = record if record else None
        else:
            y = module(x)
        if y is x or y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            y = y.clone()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):  # type: ignore[override]
        if torch.is_grad_enabled():  # autograd runs backward in grad mode only for create_graph=True
            raise RuntimeError(_DOUBLE_BACKWARD)
        (y,) = ctx.saved_tensors
        # Reconstruct in place in the output's own memory only when the caller allowed it and the graph is not
        # retained for another backward; otherwise work on copies.
        own = ctx.reuse and not _graph_is_retained()
        if not own:
            y = y.clone()
        if own and grad_y.dtype == y.dtype and grad_y.is_contiguous():
            grad = grad_y
        else:
            grad = grad_y.to(y.dtype, copy=True).contiguous()
        del grad_y
        reference, ctx.reference = ctx.reference, None
        output_finite = None if reference is None else bool(torch.isfinite(y).all())
        grads: dict[nn.Parameter, torch.Tensor] = {}
        x_rec, grad_x = call_with_tensors(ctx.module, ctx.tensors, _reconstruct_invisibly, ctx, y, grad, grads)
        del y, grad
        if reference is not None:
            ctx.guard.check(reference, x_rec, output_finite=output_finite)
        del x_rec
        param_grads = [grads.get(p) for p in ctx.params]
        return (None, grad_x if ctx.needs_input_grad[1] else None, None, None, None, *param_grads)


def _reconstruct_invisibly(
    ctx, y: torch.Tensor, grad: torch.Tensor, grads: dict[nn.Parameter, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`reconstruct` under the forward's autocast state and RNG, leaving running statistics untouched."""
    enabled, dtype = ctx.autocast
    stats = RunningStats(ctx.module)
    try:
        with torch.autocast(ctx.device_type, dtype=dtype, enabled=enabled), _replaying(ctx.rng), recomputing_scope():
            return reconstruct(ctx.module, y, grad, grads)
    finally:
        stats.restore()  # the recompute must not update running statistics a second time


def _replaying(record: RngRecord | None):
    return record.replaying() if record is not None else contextlib.nullcontext()


def _graph_is_retained() -> bool:
    """Whether the running backward keeps the graph (``retain_graph=True``); assume so if torch cannot say.

    Uses a private autograd call (``tests/engine/test_engine_corners.py`` checks it still exists and answers);
    the fallback, copying instead of reusing the output's memory, is always correct.
    """
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    if keep_graph is None:
        return True
    try:
        return bool(keep_graph())
    except RuntimeError:
        return True


_COMPILE_REASON = (
    "the memory-efficient engine runs eagerly inside torch.compile (one graph break) so that the compiled network "
    "stays memory-efficient; compile with fullgraph=False, or build the network with memory_efficient=False to "
    "compile it into one graph (ordinary autograd memory)"
)


@opaque_to_compile(_COMPILE_REASON)
def _apply_opaque(
    module: nn.Module,
    x: torch.Tensor,
    reuse_output_memory: bool,
    guard: ReconstructionGuard | None,
    preserve_rng_state: bool,
    params: list[nn.Parameter],
) -> torch.Tensor:
    # torch.compile must not trace into the engine: traced, the Function would be inlined into the compiled graph
    # and AOT autograd would save every block's activations again, so under compile this runs eagerly
    with refusing_function_transforms(_FUNCTION_TRANSFORMS):
        return MemoryEfficientFunction.apply(module, x, reuse_output_memory, guard, preserve_rng_state, *params)


@contextlib.contextmanager
def refusing_function_transforms(message: str):
    """Turn PyTorch's error for an ``autograd.Function`` under a ``torch.func`` transform (it names only
    ``setup_context``) into ``message``, which says what to do."""
    try:
        yield
    except RuntimeError as error:
        if "setup_context" in str(error) or "functorch" in str(error):
            raise RuntimeError(message) from error
        raise


#: ``private_output=`` is the deprecated name of ``reuse_output_memory=`` (a ``DeprecationWarning``, then renamed)
deprecated_private_output = deprecated_arg(
    name="private_output",
    since="0.2.0",
    new_name="reuse_output_memory",
    msg_suffix="use reuse_output_memory=... instead.",
    warning_category=DeprecationWarning,
)


@deprecated_private_output
def memory_efficient_apply(
    module: Invertible,
    x: torch.Tensor,
    reuse_output_memory: bool = False,
    guard: ReconstructionGuard | None = None,
    preserve_rng_state: bool = True,
    private_output: bool | None = None,
) -> torch.Tensor:
    """``module(x)`` with memory-efficient backpropagation when a gradient is needed.

    Args:
        module: an invertible module (``forward`` and ``inverse``).
        x: input tensor of any shape the module takes; it is never modified.
        reuse_output_memory: the caller guarantees that the output and its gradient are used by nothing that
            still needs them when the backward pass reaches this module (e.g. the output only feeds a convolution,
            and no hook can see it). The backward pass then reconstructs in place in their memory instead of
            copying them, saving two activation copies. It is ignored when the graph is retained. Leave it
            ``False`` for outputs handed to user code.
        guard: optional :class:`ReconstructionGuard` checking the reconstruction now and then.
        preserve_rng_state: replay, when the backward pass recomputes a module, the RNG state it saw in forward
            (needed for dropout or stochastic depth inside the blocks). Recording costs a few milliseconds per
            forward; states are kept only if the forward drew random numbers. ``False`` skips recording.
        private_output: deprecated name of ``reuse_output_memory``.

    Returns:
        ``module(x)``, connected to ``x`` and to the module's parameters by the engine's backward, same shape as
        ``module(x)``.

    Raises:
        RuntimeError: under a ``torch.func`` transform (``grad``, ``vjp``, ``jvp``), and in backward for
            higher-order gradients (``create_graph=True``); both messages name ``memory_efficient=False``.
    """
    params = trainable_parameters(module)
    if torch.jit.is_tracing() or not torch.is_grad_enabled() or not (x.requires_grad or params):
        return module(x)
    return _apply_opaque(module, x, reuse_output_memory, guard, preserve_rng_state, params)
