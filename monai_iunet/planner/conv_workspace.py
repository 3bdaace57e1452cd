"""The workspace a CPU convolution allocates beyond its tensors: which kernel PyTorch picks, and its buffers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from monai_iunet.networks.blocks.low_memory_conv import NATIVE_CONV_LIMIT

__all__ = ["conv_workspace_bytes"]


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
    return (
        groups > 1
        or (weight_shape[-1] > 3 and weight_shape[-2] > 3)
        or n > 1
        or math.prod(input_shape[:4]) > NATIVE_CONV_LIMIT
    )


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

    Measured on torch 2.13 (peak RSS of single convolutions): the native kernel unfolds the input
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
