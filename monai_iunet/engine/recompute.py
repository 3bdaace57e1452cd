"""What keeps the engine's recompute in backward invisible: the forward's RNG, running statistics, observers.

The memory-efficient engine evaluates every block a second time in backward. Like ``torch.utils.checkpoint``, it
must then be indistinguishable from the original pass:

- :class:`RngRecord` keeps the RNG state (CPU and the input's accelerator) each invertible submodule saw when
  its forward began, and the backward pass replays it before recomputing that module, so dropout or stochastic
  depth draw the same numbers (``preserve_rng_state``). The backward walks the blocks in reverse, so each one
  needs its own state, not just the state at the start of the forward.
- :class:`RunningStats` snapshots the running statistics of normalisation layers in training mode (batch norm,
  instance norm with ``track_running_stats``) before the recompute and restores them after, so they are updated
  once per forward, as ordinary autograd does.
- :func:`hooks_observe` says whether user hooks can see a module's output or its gradient; the engine then does
  not reuse that memory.
- :func:`recomputing` says whether the engine's backward is recomputing a module right now: a layer may then use
  a backward that saves less and is not differentiable twice, because the engine refuses higher-order gradients
  and function transforms anyway (the channels-last convolution of
  :class:`~monai_iunet.networks.blocks.low_memory_conv.Conv3dLowMemory` does).
- :func:`module_tensors` and :func:`using_tensors` keep the parameters and buffers the forward actually used:
  ``torch.func.functional_call`` substitutes them for the duration of the forward only, so the backward puts
  them back before it recomputes (as ``torch.utils.checkpoint`` does by keeping its inputs).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import torch
import torch.nn.modules.module as _module
from torch import nn
from torch.utils.checkpoint import get_device_states, set_device_states

from monai_iunet.engine.protocol import Invertible

__all__ = [
    "RngRecord",
    "RunningStats",
    "call_with_tensors",
    "global_module_hooks_exist",
    "hooks_observe",
    "module_tensors",
    "recomputing",
    "recomputing_scope",
    "replay_rng",
    "set_rng_state_to",
]

_T = TypeVar("_T")

_RngState = tuple[torch.Tensor, list[int], list[torch.Tensor]]

#: the record whose states the running backward replays (set by the engine's backward)
_REPLAYING: ContextVar[RngRecord | None] = ContextVar("monai_iunet_rng_replay", default=None)

#: whether the engine's backward is recomputing a module in this context (set by the engine around its recompute)
_RECOMPUTING: ContextVar[bool] = ContextVar("monai_iunet_recomputing", default=False)

_GLOBAL_HOOKS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_forward_hooks_with_kwargs",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


def _rng_state(x: torch.Tensor) -> _RngState:
    devices, states = get_device_states(x)
    return torch.get_rng_state(), devices, states


def _same_state(a: _RngState, b: _RngState) -> bool:
    # RNG states are real host tensors: compare them outside any tensor mode (the planner's FakeTensorMode); torch
    # has no public way to leave the active modes, so fall back to comparing in place if the private one goes away
    outside_modes = getattr(torch.utils._python_dispatch, "_disable_current_modes", contextlib.nullcontext)
    with outside_modes():
        return _equal_states(a, b)


def _equal_states(a: _RngState, b: _RngState) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and all(torch.equal(s, t) for s, t in zip(a[2], b[2]))


def _set_state(state: _RngState) -> None:
    cpu, devices, states = state
    torch.set_rng_state(cpu)
    if devices:
        set_device_states(devices, states)


class RngRecord:
    """The RNG state every invertible submodule of ``module`` saw when its forward began, for replay in backward.

    Used as a context manager around the engine's forward: it registers a forward pre-hook on each invertible
    submodule for the duration of the forward only. If the forward drew no random number at all (the RNG state is
    unchanged at the end), the per-module states are dropped and :meth:`replay` does nothing, so deterministic
    networks pay only for reading the state once per invertible module.

    Args:
        module: the invertible module the engine runs.
        x: its input; the RNG of its device is recorded besides the CPU's.
    """

    def __init__(self, module: nn.Module, x: torch.Tensor) -> None:
        self.module = module
        self.x = x
        self.states: dict[nn.Module, list[_RngState]] = {}
        self.devices: list[int] = []
        self._handles: list = []

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        self.states.setdefault(module, []).append(_rng_state(self.x))

    def __enter__(self) -> RngRecord:
        self._start = _rng_state(self.x)
        self.devices = self._start[1]
        invertible = [m for m in self.module.modules() if isinstance(m, Invertible)]
        self._handles = [m.register_forward_pre_hook(self._pre_hook) for m in invertible]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if _same_state(self._start, _rng_state(self.x)):
            self.states.clear()  # nothing random happened: nothing to replay
        del self._start
        self.x = None  # do not keep the input alive

    def __bool__(self) -> bool:
        return bool(self.states)

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Make :func:`replay_rng` replay this record's states (each once, latest call first) and restore the
        surrounding RNG state afterwards, as ``torch.random.fork_rng`` does."""
        self._pending = {module: list(states) for module, states in self.states.items()}
        token = _REPLAYING.set(self)
        try:
            with torch.random.fork_rng(devices=self.devices):
                yield
        finally:
            _REPLAYING.reset(token)
            self._pending = {}

    def pop(self, module: nn.Module) -> _RngState | None:
        """The state ``module`` saw at the start of its latest forward call not yet replayed, or ``None``."""
        pending = getattr(self, "_pending", {}).get(module)
        return pending.pop() if pending else None


def replay_rng(module: nn.Module) -> _RngState | None:
    """Set the RNG to the state ``module`` saw in forward, if a recording is being replayed; return that state.

    The engine's :func:`~monai_iunet.engine.backprop.reconstruct` calls it before recomputing a module; a module
    that evaluates random functions twice (its inverse, then its forward) sets the returned state again with
    :func:`set_rng_state_to`.
    """
    record = _REPLAYING.get()
    state = None if record is None else record.pop(module)
    if state is not None:
        _set_state(state)
    return state


def recomputing() -> bool:
    """Whether the memory-efficient engine's backward is recomputing a module in this context.

    Inside, no higher-order gradient is taken and no ``torch.func`` transform is active (the engine refuses both
    before it recomputes), so a layer may use a custom backward that is not differentiable twice.
    """
    return _RECOMPUTING.get()


@contextmanager
def recomputing_scope() -> Iterator[None]:
    """Mark the enclosed code as the engine's recompute (:func:`recomputing` is ``True`` inside)."""
    token = _RECOMPUTING.set(True)
    try:
        yield
    finally:
        _RECOMPUTING.reset(token)


def set_rng_state_to(state: _RngState | None) -> None:
    """Set the RNG to a state returned by :func:`replay_rng` (nothing if ``None``)."""
    if state is not None:
        _set_state(state)


class RunningStats:
    """Running statistics of the normalisation layers in training mode under ``module``, to restore after a recompute.

    A layer in training mode with ``track_running_stats`` (batch norm, instance norm) uses the batch statistics,
    exactly as in forward, and also updates ``running_mean``, ``running_var`` and ``num_batches_tracked``; the
    recompute must not update them a second time.
    """

    def __init__(self, module: nn.Module) -> None:
        self.saved = [
            (buffer, buffer.clone())
            for m in module.modules()
            if m.training and getattr(m, "track_running_stats", False)
            for buffer in m.buffers(recurse=False)
        ]

    def restore(self) -> None:
        """Put the snapshot back, without bumping the buffers' version counters: a recompute's graph may still be
        alive (memcnn differentiates it after this), and batch norm's backward node saves these buffers (it reads
        them only in eval mode, so restoring their values does not change its gradient)."""
        with torch.no_grad():
            for buffer, value in self.saved:
                buffer.data.copy_(value)


def global_module_hooks_exist() -> bool:
    """Whether any global module hook (``torch.nn.modules.module.register_module_forward_hook`` and the like) is
    registered; ``True`` if this version of torch does not say, so that callers stay on the safe side."""
    for name in _GLOBAL_HOOKS:
        hooks = getattr(_module, name, None)
        if hooks is None or len(hooks):
            return True
    return False


def hooks_observe(*modules: nn.Module) -> bool:
    """Whether user hooks may see the outputs or output gradients of ``modules``: forward or backward hooks on any
    of them (forward pre-hooks too, for a module whose *input* is the tensor in question), or any global hook."""
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return global_module_hooks_exist() or any(len(getattr(m, name, None) or ()) for m in modules for name in names)


def module_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters and buffers ``module`` holds right now, by name (what its forward uses)."""
    return {**dict(module.named_parameters()), **{k: v for k, v in module.named_buffers() if v is not None}}


class _Host(nn.Module):
    """Holds ``module`` so that ``torch.func.functional_call`` can substitute its tensors around any call."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


def call_with_tensors(module: nn.Module, tensors: dict[str, torch.Tensor], fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` while ``module`` holds ``tensors`` (from :func:`module_tensors`) instead of its own.

    Nothing is substituted when ``module`` holds exactly these tensors already (the usual case); otherwise, e.g.
    when the forward ran inside ``torch.func.functional_call`` with other weights, they are put back for the call
    with ``torch.func.functional_call`` itself, so the recompute uses the weights the forward used.
    """
    current = module_tensors(module)
    if current.keys() == tensors.keys() and all(current[k] is v for k, v in tensors.items()):
        return fn(*args)
    named = {f"module.{k}": v for k, v in tensors.items()}
    return torch.func.functional_call(_Host(module), named, (fn, *args), strict=False, tie_weights=True)
