"""The widest IUNet ``channels = (w, 2w, 4w, ...)`` whose training step fits a memory budget."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from monai_iunet.errors import UserInputError
from monai_iunet.networks.nets import IUNet
from monai_iunet.networks.nets.invertible_unet import per_level_strides, split_channels
from monai_iunet.planner.estimate import estimate_memory
from monai_iunet.planner.units import GiB, parse_bytes

__all__ = ["fit_channels"]


def _channels(width: int, levels: int, growth: int) -> tuple[int, ...]:
    return tuple(width * growth**level for level in range(levels))


def _reachable(channels: Sequence[int], sigmas: Sequence[int]) -> bool:
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
    budget = parse_bytes(budget_bytes)
    spatial_dims = len(input_shape) - 2
    strides_per_level = [math.prod(s) for s in per_level_strides(strides, spatial_dims, levels)]
    widths = [w for w in range(2, max_width + 1) if _reachable(_channels(w, levels, growth), strides_per_level)]
    if not widths:
        raise UserInputError(
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
        raise UserInputError(
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
