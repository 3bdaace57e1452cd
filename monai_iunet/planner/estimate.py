"""Plan before training: predict the peak memory of a training step, and the widest IUNet that fits a budget.

:func:`estimate_memory` runs one training step (forward, loss, backward) of a copy of the network *symbolically*:
on fake tensors, which carry shapes and dtypes but no data and no memory (``torch._subclasses.FakeTensorMode``,
the machinery behind ``torch.compile``), at the full input size. A dispatch hook records, after every
operation, how many bytes of tensors are alive, so the prediction follows exactly what the network stores and
frees: for a memory-efficient IUNet that is the stored output of the core, its gradient and the largest block's
working set in the backward pass; for ordinary autograd it is every activation saved for backward. To that it
adds what the recorded operations do not show:

- parameters, buffers, the input and the target, and the optimizer's state (two parameter-sized moments for
  Adam) — everything resident while the step runs;
- the workspace of CPU convolutions, which is not a tensor of the step: PyTorch's native kernel unfolds the input
  into a ``C_in · k³ × voxels`` im2col buffer (56 MiB for 16 channels at 32³), oneDNN reorders the larger of input
  and output (:func:`conv_workspace_bytes`);
- a runtime constant on CPU (oneDNN primitive caches, thread-local buffers of the first backward pass), calibrated
  against measured RSS (``benchmarks/compare.py``).

:func:`fit_channels` searches the widest ``channels = (w, 2w, 4w, ...)`` whose estimate fits a budget.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from monai_iunet.planner.conv_workspace import conv_workspace_bytes
from monai_iunet.planner.live_bytes import LiveBytes
from monai_iunet.planner.units import MiB

__all__ = ["CPU_RUNTIME_OVERHEAD", "MemoryEstimate", "estimate_memory", "explain_memory", "soft_dice_loss"]

#: Resident memory a CPU training step adds beyond its tensors and convolution workspaces in a fresh process
#: (oneDNN primitive caches and scratchpads, buffers of the first backward pass, allocator slack); calibrated
#: against peak RSS growth measured with ``MALLOC_MMAP_THRESHOLD_=65536`` (see ``docs/benchmarks.md``).
CPU_RUNTIME_OVERHEAD = 24 * MiB


@dataclass
class MemoryEstimate:
    """The predicted peak memory of one training step and what it is made of, in bytes.

    Attributes:
        total: the predicted peak: ``resident + optimizer_state + step + workspace + overhead``.
        resident: parameters, buffers, input and target.
        optimizer_state: the optimizer's state while the peak happens (0 at the peak of a first step, whose
            optimizer has not allocated its state yet).
        step: tensors the step itself allocates that are alive at the peak (activations, stored outputs,
            gradients of activations and parameters).
        workspace: the convolution workspace at the peak (CPU).
        overhead: the runtime constant (:data:`CPU_RUNTIME_OVERHEAD` on CPU, 0 on GPU).
        phase: ``"forward"``, ``"backward"`` or ``"optimizer"``: where the peak happens.
        op: the operation at the peak.
    """

    total: int
    resident: int
    optimizer_state: int
    step: int
    workspace: int
    overhead: int
    phase: str
    op: str

    def __str__(self) -> str:
        rows = [
            f"predicted peak {self.total / MiB:,.0f} MiB ({self.phase}, at {self.op})",
            f"  parameters, buffers, input, target  {self.resident / MiB:10,.1f} MiB",
            f"  optimizer state                     {self.optimizer_state / MiB:10,.1f} MiB",
            f"  tensors allocated by the step       {self.step / MiB:10,.1f} MiB",
            f"  convolution workspace               {self.workspace / MiB:10,.1f} MiB",
            f"  runtime overhead                    {self.overhead / MiB:10,.1f} MiB",
        ]
        return "\n".join(rows)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sigmoid Dice loss with the memory behaviour of ``monai.losses.DiceLoss(sigmoid=True)``.

    MONAI's loss converts a tensor to a Python list (``torch.arange(...).tolist()``), which fake tensors cannot
    do; this surrogate makes the same intermediate tensors.
    """
    prob = torch.sigmoid(logits)
    axes = tuple(range(2, prob.ndim))
    tp = torch.sum(prob * target, dim=axes)
    fp = torch.sum(prob, dim=axes) - tp
    fn = torch.sum(target, dim=axes) - tp
    return (1.0 - (2.0 * tp + 1e-5) / (2.0 * tp + fp + fn + 1e-5)).mean()


def _fake_copy(net: nn.Module, mode) -> nn.Module:
    """A copy of ``net`` whose parameters and buffers are fake CPU tensors of the same shapes (no data copied)."""
    memo: dict[int, torch.Tensor] = {}
    for p in net.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
    for b in net.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    shadow = copy.deepcopy(net, memo)
    fakes: dict[int, torch.Tensor] = {}
    with mode:
        for module in shadow.modules():
            for name, p in list(module._parameters.items()):
                if p is not None:
                    if id(p) not in fakes:
                        fakes[id(p)] = nn.Parameter(torch.empty(p.shape, dtype=p.dtype), requires_grad=p.requires_grad)
                    module._parameters[name] = fakes[id(p)]
            for name, b in list(module._buffers.items()):
                if b is not None:
                    if id(b) not in fakes:
                        fakes[id(b)] = torch.zeros(b.shape, dtype=b.dtype)
                    module._buffers[name] = fakes[id(b)]
    return shadow


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def explain_memory(
    net: nn.Module,
    input_shape: Sequence[int],
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    optimizer_states: int = 2,
    first_step: bool = False,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> MemoryEstimate:
    """Predict the peak memory of one training step of ``net`` on an input of ``input_shape``, with its parts.

    The step is forward, ``loss_fn(output, target)``, backward and an optimizer step; the target has the
    output's shape. Nothing of the size of the input is computed or allocated: the step runs on fake tensors
    (see the module docstring), on a copy of ``net`` (``net`` itself is not touched).

    Args:
        net: the network, e.g. :class:`~monai_iunet.IUNet`; may live on any device, including ``"meta"``.
        input_shape: ``(N, C_in, *spatial)``.
        loss_fn: a loss that works on fake tensors (no ``.item()``/``.tolist()``); default
            :func:`soft_dice_loss`, which allocates what ``monai.losses.DiceLoss(sigmoid=True)`` does.
        optimizer_states: parameter-sized state tensors the optimizer keeps per parameter: 2 for Adam/AdamW,
            1 for SGD with momentum, 0 for plain SGD.
        first_step: predict the first step of a fresh optimizer, whose state is allocated only after the
            backward pass (what a one-step benchmark in a fresh process measures); by default the steady state,
            with the optimizer's state resident throughout.
        device: the device to predict for, default that of ``net``'s parameters (``"meta"`` counts as CPU).
            On ``"cuda"`` no convolution workspace (cuDNN's depends on the algorithm it picks) and no runtime
            constant are added: the result compares with ``torch.cuda.max_memory_allocated``.
        dtype: the input's dtype, default that of ``net``'s first floating-point parameter.

    Returns:
        a :class:`MemoryEstimate`; its ``total`` is the prediction in bytes.

    Raises:
        RuntimeError: if the step cannot run on fake tensors (a data-dependent operation such as ``.item()``).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    params = list(net.parameters())
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    device_type = torch.device(device).type
    if dtype is None:
        dtype = next((p.dtype for p in params if p.is_floating_point()), torch.get_default_dtype())
    input_shape = tuple(int(s) for s in input_shape)
    loss_fn = soft_dice_loss if loss_fn is None else loss_fn

    mode = FakeTensorMode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. padding notices and fake-tensor data_ptr deprecations
        shadow = _fake_copy(net, mode)
        shadow.train()
        with mode:
            x = torch.empty(input_shape, dtype=dtype)
        tracker = LiveBytes()
        try:
            with mode, tracker:
                out = shadow(x)
                target_shape, target_dtype = tuple(out.shape), out.dtype
            with mode:
                target = torch.empty(target_shape, dtype=target_dtype)
            with mode, tracker:
                loss = loss_fn(out, target)
                del out
                tracker.phase = "backward"
                loss.backward()
                del loss
        except Exception as e:  # noqa: BLE001 - report any failure of the symbolic run with its cause
            raise RuntimeError(
                f"estimate_memory could not run a training step of {type(net).__name__} on fake tensors "
                f"({type(e).__name__}: {e}); pass a loss_fn without data-dependent operations (.item(), .tolist())."
            ) from e
        after_backward = tracker.current
        trainable = [p for p in shadow.parameters() if p.requires_grad]

    param_bytes = _nbytes(shadow.parameters()) + _nbytes(shadow.buffers())
    resident = param_bytes + _nbytes([x, target])
    state = optimizer_states * _nbytes(trainable)
    cpu = device_type in ("cpu", "meta")
    overhead = CPU_RUNTIME_OVERHEAD if cpu else 0

    candidates = [(tracker.peak[0], 0, tracker.peak[2], tracker.peak[3])]
    if cpu:
        for live, _, phase, op, conv in tracker.convs:
            in_shape, w_shape, out_shape, stride, padding, dilation, transposed, output_padding, groups = conv
            ws = conv_workspace_bytes(
                in_shape, w_shape, out_shape, stride, padding, dilation, transposed, output_padding, groups, dtype
            )
            candidates.append((live, ws, phase, op))
    # the optimizer step: gradients (left after backward), the state it allocates on a first step, and the
    # per-parameter temporaries of its update (at most two of the largest parameter for Adam's for-loop on CPU;
    # a parameter-sized list for the foreach implementation on GPU)
    largest = max((p.numel() * p.element_size() for p in trainable), default=0)
    temporaries = 2 * largest if cpu else _nbytes(trainable)
    candidates.append((after_backward + (state if first_step else 0) + temporaries, 0, "optimizer", "optimizer step"))
    live, ws, phase, op = max(candidates, key=lambda c: c[0] + c[1])
    resident_state = state if (not first_step or phase == "optimizer") else 0
    if phase == "optimizer" and first_step:
        live -= state  # report the newly allocated state as optimizer state, not as the step's tensors
    return MemoryEstimate(
        total=resident + resident_state + live + ws + overhead,
        resident=resident,
        optimizer_state=resident_state,
        step=live,
        workspace=ws,
        overhead=overhead,
        phase=phase,
        op=op,
    )


def estimate_memory(net: nn.Module, input_shape: Sequence[int], **kwargs) -> int:
    """Predicted peak memory in bytes of one training step of ``net`` on an input of shape ``input_shape``.

    See :func:`explain_memory` for the method and the keyword arguments (``loss_fn``, ``optimizer_states``,
    ``first_step``, ``device``, ``dtype``), and ``docs/benchmarks.md`` for its accuracy against measurements.

    Examples::

        >>> from monai_iunet import IUNet
        >>> net = IUNet(spatial_dims=3, in_channels=4, out_channels=3, channels=(16, 32, 64, 128))
        >>> estimate_memory(net, (1, 4, 128, 128, 128)) / 2**30   # GiB
    """
    return explain_memory(net, input_shape, **kwargs).total
