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

Command line::

    python -m monai_iunet.planner estimate --shape 1 4 96 96 96 --channels 16 32 64 128
    python -m monai_iunet.planner fit --budget 8GiB --shape 1 4 160 192 128
    monai-iunet plan fit --budget 8GiB --shape 1 4 160 192 128     # the same, through the package's command
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = [
    "CPU_RUNTIME_OVERHEAD",
    "MemoryEstimate",
    "add_plan_parser",
    "conv_workspace_bytes",
    "estimate_memory",
    "explain_memory",
    "fit_channels",
    "main",
    "parse_bytes",
]

MiB = 2**20
GiB = 2**30

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


# --------------------------------------------------------------------------------------------------------------
# convolution workspace


def _uses_mkldnn(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    dtype: torch.dtype,
) -> bool:
    """PyTorch's rule for choosing oneDNN over its native CPU convolution (``ConvParams::use_mkldnn``)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype != torch.float32:
        return dtype in (torch.bfloat16, torch.float16)
    strided = any(s != 1 for s in stride)
    dilated = any(d != 1 for d in dilation)
    n = input_shape[0]
    if not (strided or dilated or n >= 16 or weight_shape[-1] != 1 or weight_shape[-2] != 1):
        if torch.get_num_threads() <= 1:
            return False
    return groups > 1 or (weight_shape[-1] > 3 and weight_shape[-2] > 3) or n > 1 or math.prod(input_shape[:4]) > 20480


def _conv_backend(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    transposed: bool,
    output_padding: Sequence[int],
    groups: int,
    dtype: torch.dtype,
) -> str:
    """``"mkldnn"``, ``"native"`` (im2col) or ``"other"``: the CPU kernel PyTorch picks for this convolution.

    Asks PyTorch itself (``torch._C._select_conv_backend`` on zero-stride tensors of these shapes, which allocate
    nothing) and falls back to a transcription of its rule.
    """
    select = getattr(torch._C, "_select_conv_backend", None)
    if select is not None:
        try:
            x = torch.empty((), dtype=dtype).expand(*input_shape)
            w = torch.empty((), dtype=dtype).expand(*weight_shape)
            name = str(select(x, w, None, stride, padding, dilation, transposed, output_padding, groups, None))
            name = name.rsplit(".", 1)[-1].lower()
            if name.startswith("mkldnn") or name == "???":  # MkldnnTranspose has no Python name
                return "mkldnn"
            if name.startswith("slow"):
                return "native"
            return "other"
        except (RuntimeError, TypeError):
            pass
    if _uses_mkldnn(input_shape, weight_shape, stride, dilation, groups, dtype):
        return "mkldnn"
    return "native"


def conv_workspace_bytes(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    output_shape: Sequence[int],
    stride: Sequence[int] = (1, 1, 1),
    padding: Sequence[int] = (0, 0, 0),
    dilation: Sequence[int] = (1, 1, 1),
    transposed: bool = False,
    output_padding: Sequence[int] = (0, 0, 0),
    groups: int = 1,
    dtype: torch.dtype = torch.float32,
) -> int:
    """Bytes a CPU convolution (forward or backward) allocates beyond its input and output tensors.

    Measured on torch 2.13 (``benchmarks/compare.py --calibrate-conv``): the native kernel unfolds the input
    into an im2col buffer of ``N · C_in · prod(kernel) × output voxels`` elements (none for a 1×1 kernel with
    stride 1 and no padding); its transposed form folds a buffer of ``N · C_out · prod(kernel) × input voxels``.
    oneDNN reorders the larger of input and output into its blocked layout.

    Args:
        input_shape, weight_shape, output_shape: ``(N, C, *S)`` shapes; the weight as ``torch.nn.functional``
            takes it.
        stride, padding, dilation, transposed, output_padding, groups: as in ``torch.nn.functional.conv*``.
        dtype: the tensors' dtype.
    """
    size = torch.empty((), dtype=dtype).element_size()
    backend = _conv_backend(
        input_shape, weight_shape, stride, padding, dilation, transposed, output_padding, groups, dtype
    )
    if backend == "mkldnn":
        return max(math.prod(input_shape), math.prod(output_shape)) * size
    if backend != "native":
        return 0
    kernel = math.prod(weight_shape[2:])
    if transposed:
        return output_shape[0] * weight_shape[1] * groups * kernel * math.prod(input_shape[2:]) * size
    if kernel == 1 and all(s == 1 for s in stride) and all(p == 0 for p in padding):
        return 0
    return input_shape[0] * input_shape[1] * kernel * math.prod(output_shape[2:]) * size


# --------------------------------------------------------------------------------------------------------------
# the symbolic step


class _LiveBytes(TorchDispatchMode):
    """Records the bytes of live tensors after every operation (tensors are freed when their storage dies).

    Storages shrunk in place (``storage.resize_(0)``, as memcnn frees the inputs of its blocks) are noticed by
    re-reading the size of every live storage after each operation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[weakref.ref, int]] = {}
        self.current = 0
        self.phase = "forward"
        self.peak = (0, 0, "forward", "-")  # (live, index of the op, phase, op)
        self.convs: list[tuple[int, int, str, str, tuple]] = []  # (live, index, phase, op, shapes/args)
        self.count = 0

    def _release(self, key: int) -> None:
        entry = self.live.pop(key, None)
        if entry is not None:
            self.current -= entry[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for key, (ref, nbytes) in list(self.live.items()):
            storage = ref()
            if storage is not None and storage.nbytes() != nbytes:
                self.live[key] = (ref, storage.nbytes())
                self.current += storage.nbytes() - nbytes
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, nbytes = id(storage), storage.nbytes()
                if key not in self.live:
                    self.live[key] = (weakref.ref(storage), nbytes)
                    self.current += nbytes
                    weakref.finalize(storage, self._release, key)
        self.count += 1
        if self.current > self.peak[0]:
            self.peak = (self.current, self.count, self.phase, str(func))
        if func is torch.ops.aten.convolution.default:
            x, w, _, stride, padding, dilation, transposed, output_padding, groups = args[:9]
            shapes = (tuple(x.shape), tuple(w.shape), tuple(out.shape), stride, padding, dilation, transposed)
            self.convs.append((self.current, self.count, self.phase, str(func), (*shapes, output_padding, groups)))
        elif func is torch.ops.aten.convolution_backward.default:
            grad_out, x, w, _, stride, padding, dilation, transposed, output_padding, groups = args[:10]
            shapes = (tuple(x.shape), tuple(w.shape), tuple(grad_out.shape), stride, padding, dilation, transposed)
            self.convs.append((self.current, self.count, self.phase, str(func), (*shapes, output_padding, groups)))
        return out


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
        tracker = _LiveBytes()
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


# --------------------------------------------------------------------------------------------------------------
# the widest IUNet that fits


def _channels(width: int, levels: int, growth: int) -> tuple[int, ...]:
    return tuple(width * growth**level for level in range(levels))


def _reachable(channels: Sequence[int], sigmas: Sequence[int]) -> bool:
    from monai_iunet.unet import split_channels

    try:
        split_channels(channels, sigmas)
    except ValueError:
        return False
    return min(channels) >= 2


def fit_channels(
    budget_bytes: int | float | str,
    input_shape: Sequence[int],
    out_channels: int = 3,
    levels: int = 4,
    growth: int = 2,
    *,
    strides: int | Sequence = 2,
    max_width: int = 1024,
    optimizer_states: int = 2,
    first_step: bool = False,
    device: str | torch.device = "cpu",
    **iunet_kwargs,
) -> tuple[int, ...]:
    """The widest IUNet ``channels = (w, growth·w, growth²·w, ...)`` whose predicted training step fits a budget.

    Widths are searched over the values for which the channel split is reachable (multiples of 4 for the
    default 3D, stride 2, doubling layout); networks are built on the ``"meta"`` device, so nothing of their size
    is allocated. The result fits by :func:`estimate_memory`, and the next reachable width does not.

    Args:
        budget_bytes: the memory budget: bytes, or a string such as ``"8GiB"`` or ``"500 MB"``.
        input_shape: ``(N, in_channels, *spatial)`` of one training batch.
        out_channels: output channels of the IUNet.
        levels: number of resolution levels.
        growth: channel factor from one level to the next.
        strides: downsampling strides, as for :class:`~monai_iunet.IUNet`.
        max_width: the widest first-level width considered.
        optimizer_states, first_step, device: see :func:`explain_memory`.
        iunet_kwargs: further :class:`~monai_iunet.IUNet` arguments (``blocks``, ``block_depth``, ``norm``, ...).

    Returns:
        the ``channels`` tuple to pass to :class:`~monai_iunet.IUNet`.

    Raises:
        ValueError: if even the narrowest reachable IUNet does not fit, naming what it needs.

    Examples::

        >>> fit_channels("8GiB", (1, 4, 160, 192, 128))   # a whole BraTS crop, batch 1
    """
    from monai_iunet.nets import IUNet

    budget = parse_bytes(budget_bytes)
    spatial_dims = len(input_shape) - 2
    strides_per_level = _sigmas(spatial_dims, levels, strides)
    widths = [w for w in range(2, max_width + 1) if _reachable(_channels(w, levels, growth), strides_per_level)]
    if not widths:
        raise ValueError(
            f"no width up to {max_width} gives reachable channels with levels={levels}, growth={growth}, "
            f"strides={strides}; increase max_width or change growth."
        )

    cache: dict[int, int] = {}

    def estimate(width: int) -> int:
        if width not in cache:
            with torch.device("meta"):
                net = IUNet(
                    spatial_dims,
                    int(input_shape[1]),
                    out_channels,
                    channels=_channels(width, levels, growth),
                    strides=strides,
                    **iunet_kwargs,
                )
            cache[width] = estimate_memory(
                net, input_shape, optimizer_states=optimizer_states, first_step=first_step, device=device
            )
        return cache[width]

    if estimate(widths[0]) > budget:
        raise ValueError(
            f"even the narrowest IUNet, channels={_channels(widths[0], levels, growth)}, needs about "
            f"{estimate(widths[0]) / GiB:.2f} GiB for input {tuple(input_shape)}, more than the budget of "
            f"{budget / GiB:.2f} GiB; train on smaller patches (and infer with SlidingWindowInferer) or use fewer "
            "levels."
        )
    # exponential search for the first width that does not fit, then bisection between the last two
    lo, hi = 0, 1
    while hi < len(widths) and estimate(widths[hi]) <= budget:
        lo, hi = hi, min(2 * hi, len(widths))
    hi = min(hi, len(widths))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if estimate(widths[mid]) <= budget:
            lo = mid
        else:
            hi = mid
    return _channels(widths[lo], levels, growth)


def _sigmas(spatial_dims: int, levels: int, strides) -> list[int]:
    """The product of the strides of each of the ``levels - 1`` downsamplings."""
    from monai_iunet.resampling import ensure_tuple_stride

    if isinstance(strides, int) or (
        len(strides) == spatial_dims and all(isinstance(s, int) for s in strides) and levels - 1 != spatial_dims
    ):
        strides = [strides] * (levels - 1)
    return [math.prod(ensure_tuple_stride(s, spatial_dims)) for s in strides]


# --------------------------------------------------------------------------------------------------------------
# command line

_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_UNITS["tib"] = 2**40
_UNITS.update({"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40})


def parse_bytes(value: int | float | str) -> int:
    """``8GiB``, ``"8 GB"``, ``"500MiB"``, ``"8g"`` (binary) or a number of bytes → bytes.

    Raises:
        ValueError: for an unknown unit or a non-positive amount.
    """
    if isinstance(value, (int, float)):
        amount = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if unit not in _UNITS:
            raise ValueError(f"cannot read a memory size from {value!r}; write e.g. '8GiB', '8 GB' or '500MiB'.")
        amount = float(match.group(1)) * _UNITS[unit]
    if amount <= 0:
        raise ValueError(f"a memory budget must be positive, got {value!r}.")
    return int(amount)


def _run_plan(args: argparse.Namespace) -> int:
    from monai_iunet.nets import IUNet

    shape = tuple(args.shape)
    if len(shape) < 3:
        raise ValueError(f"--shape takes N C and the spatial size, e.g. 1 4 96 96 96; got {shape}.")
    common = dict(blocks=args.blocks, block_depth=args.block_depth, memory_efficient=not args.no_memory_efficient)
    if args.action == "estimate":
        with torch.device("meta"):
            net = IUNet(len(shape) - 2, shape[1], args.out_channels, channels=tuple(args.channels), **common)
        est = explain_memory(net, shape, first_step=args.first_step, device=args.device)
        print(f"IUNet channels={tuple(args.channels)}, input {shape}, device {args.device}")
        print(est)
        if args.budget is not None:
            budget = parse_bytes(args.budget)
            verdict = "fits" if est.total <= budget else "does NOT fit"
            print(f"{verdict} in {budget / GiB:.2f} GiB")
        return 0
    if args.budget is None:
        raise ValueError("fit needs --budget, e.g. --budget 8GiB.")
    channels = fit_channels(
        args.budget,
        shape,
        args.out_channels,
        levels=args.levels,
        first_step=args.first_step,
        device=args.device,
        max_width=args.max_width,
        **common,
    )
    with torch.device("meta"):
        net = IUNet(len(shape) - 2, shape[1], args.out_channels, channels=channels, **common)
    est = explain_memory(net, shape, first_step=args.first_step, device=args.device)
    params = sum(p.numel() for p in net.parameters())
    print(f"widest IUNet for input {shape} within {parse_bytes(args.budget) / GiB:.2f} GiB on {args.device}:")
    print(f"  channels={channels} ({params:,} parameters)")
    print(est)
    return 0


def add_plan_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the planner's arguments to ``parser``; used by ``python -m monai_iunet.planner`` and ``monai-iunet plan``."""
    parser.add_argument("action", choices=("estimate", "fit"), help="predict one network's peak, or find the widest")
    parser.add_argument("--shape", type=int, nargs="+", required=True, metavar="N", help="input shape N C D H W")
    parser.add_argument("--budget", help="memory budget, e.g. 8GiB (fit; optional for estimate)")
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128], help="estimate: channels")
    parser.add_argument("--levels", type=int, default=4, help="fit: resolution levels (default: 4)")
    parser.add_argument("--max-width", type=int, default=1024, help="fit: widest first level tried (default: 1024)")
    parser.add_argument("--out-channels", type=int, default=3, help="output channels (default: 3)")
    parser.add_argument("--blocks", type=int, default=2, help="coupling blocks per level and side (default: 2)")
    parser.add_argument("--block-depth", type=int, default=1, help="conv units per block (default: 1)")
    parser.add_argument("--no-memory-efficient", action="store_true", help="ordinary autograd instead")
    parser.add_argument("--first-step", action="store_true", help="a fresh optimizer's first step")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.set_defaults(func=_run_plan)
    return parser


def add_plan_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``plan`` subcommand on an ``argparse`` subparsers object (``monai-iunet plan``)."""
    parser = subparsers.add_parser(
        "plan",
        help="predict the training memory of an IUNet, or the widest that fits a budget",
        description="Predict the peak memory of one IUNet training step (Adam, Dice loss) without running it, or "
        "find the widest IUNet whose step fits a memory budget.",
    )
    return add_plan_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m monai_iunet.planner {estimate,fit} ...``; returns the exit status."""
    parser = add_plan_arguments(argparse.ArgumentParser(prog="python -m monai_iunet.planner", description=__doc__))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:
        parser.error(str(e))


if __name__ == "__main__":
    raise SystemExit(main())
