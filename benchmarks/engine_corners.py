"""The memory-efficient engine in the corners real training code reaches, measured against ordinary
autograd (``memory_efficient=False``) through the same perturbed weights, float64, small volumes.

Each row prints what happens now: an error (and its first words) or the largest deviation from ordinary
autograd. Runs in well under a minute on one CPU core.

Usage::

    nice -n 10 python -m benchmarks.engine_corners
"""

from __future__ import annotations

import torch
from torch import nn

from monai_iunet import InvertibleUNet, IUNet
from monai_iunet.networks.blocks.coupling import AdditiveCoupling

F64 = torch.float64


def _perturbed(module: nn.Module, std: float = 0.3) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def double_backward() -> str:
    core = _perturbed(InvertibleUNet(2, (4, 8), blocks=1)).double()
    x = torch.randn(1, 4, 8, 8, dtype=F64, requires_grad=True)
    try:
        torch.autograd.grad(core(x).square().sum(), x, create_graph=True)
    except RuntimeError as e:
        return f"raises RuntimeError: {str(e)[:60]}..."
    return "no error"


def running_stats() -> str:
    results = {}
    for me in (True, False):
        torch.manual_seed(0)
        net = _perturbed(IUNet(3, 2, 2, channels=(4, 8), blocks=1, norm="batch", memory_efficient=me)).double()
        x = torch.randn(2, 2, 8, 8, 8, dtype=F64)
        net(x).square().sum().backward()
        net.eval()
        results[me] = net.core.body[0].fn[2].num_batches_tracked.item(), net(x).detach()
    return (
        f"num_batches_tracked {results[True][0]} (ordinary {results[False][0]}), eval output max difference "
        f"{(results[True][1] - results[False][1]).abs().max().item():.1e}"
    )


class _DropoutCoupling(AdditiveCoupling):
    def __init__(self, spatial_dims: int, channels: int, index: int) -> None:
        super().__init__(spatial_dims, channels, flip=bool(index % 2))
        self.fn.append(nn.Dropout(0.3))


def dropout() -> str:
    grads = {}
    for me in (True, False):
        torch.manual_seed(0)
        net = IUNet(3, 2, 2, channels=(4, 8), blocks=2, block_factory=_DropoutCoupling, memory_efficient=me)
        net = _perturbed(net).double()
        torch.manual_seed(1)
        net(torch.randn(1, 2, 8, 8, 8, dtype=F64)).square().sum().backward()
        grads[me] = torch.cat([p.grad.flatten() for p in net.parameters()])
    return f"gradient relative error {_rel(grads[True], grads[False]):.1e}"


def hook_on_core() -> str:
    net = _perturbed(IUNet(3, 2, 2, channels=(4, 8), blocks=2)).double()
    kept = []
    net.core.register_forward_hook(lambda m, i, o: kept.append((o, o.detach().clone())))
    net(torch.randn(1, 2, 8, 8, 8, dtype=F64)).square().sum().backward()
    out, copy = kept[0]
    return f"hook's tensor max change after backward {(out.detach() - copy).abs().max().item():.2g}"


def memcnn_input() -> str:
    core = _perturbed(InvertibleUNet(3, (4, 8), blocks=1, engine="memcnn"))
    x = torch.randn(1, 4, 8, 8, 8)
    size = x.untyped_storage().size()
    with torch.no_grad():
        core(x)
    return f"caller's input storage {size} bytes before, {x.untyped_storage().size()} after no_grad forward"


def dtype_round_trip() -> str:
    net = _perturbed(IUNet(3, 2, 2, channels=(4, 8, 16), blocks=1)).float().double()
    x = torch.randn(1, 4, 8, 8, 8, dtype=F64)
    with torch.no_grad():
        error = (net.core.inverse(net.core(x)) - x).abs().max().item()
    return f"float64 core inverse max error {error:.1e}"


CORNERS = {
    "1 double backward (create_graph=True)": double_backward,
    "2 batch norm running statistics": running_stats,
    "3 dropout in a user block": dropout,
    "4 forward hook on net.core keeps the output": hook_on_core,
    '5 engine="memcnn" under no_grad': memcnn_input,
    "6 IUNet(...).float().double()": dtype_round_trip,
}


def main() -> None:
    torch.manual_seed(0)
    print("| corner | now |\n|---|---|")
    for name, fn in CORNERS.items():
        try:
            result = fn()
        except Exception as e:  # report, do not stop: each row is independent
            result = f"{type(e).__name__}: {e}"
        print(f"| {name} | {result} |", flush=True)


if __name__ == "__main__":
    main()
