"""Step time of the IUNet (memory-efficient and ordinary autograd) and iunets 0.1, measured interleaved in one process.

Interleaving the three models step by step keeps their ratios fair on a shared machine. 64^3, width 16,
channels (16, 32, 64, 128), batch 1, one Adam step; median of 3 after a warm-up.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/step_time_ab.py 8    # blocks per level
"""

import sys
import time
import warnings

import torch

warnings.filterwarnings("ignore")
from iunets import iUNet

from monai_iunet import IUNet

b = int(sys.argv[1])
torch.manual_seed(0)
x = torch.randn(1, 4, 64, 64, 64)
t = (torch.rand(1, 3, 64, 64, 64) > 0.5).float()
nets = {}
nets["me"] = IUNet(3, 4, 3, channels=(16, 32, 64, 128), blocks=b)
nets["ord"] = IUNet(3, 4, 3, channels=(16, 32, 64, 128), blocks=b, memory_efficient=False)
core = iUNet(16, architecture=(b,) * 4, dim=3, memory_efficient=True, verbose=0)
nets["iunets"] = torch.nn.Sequential(torch.nn.Conv3d(4, 16, 1), core, torch.nn.Conv3d(16, 3, 1))
opts = {k: torch.optim.Adam(n.parameters(), 1e-4) for k, n in nets.items()}


def step(k):
    opts[k].zero_grad()
    torch.nn.functional.binary_cross_entropy_with_logits(nets[k](x), t).backward()
    opts[k].step()


for k in nets:
    step(k)
ts = {k: [] for k in nets}
for r in range(3):
    for k in nets:
        t0 = time.perf_counter()
        step(k)
        ts[k].append(time.perf_counter() - t0)
med = {k: sorted(v)[1] for k, v in ts.items()}
print(
    "blocks",
    b,
    {k: round(v, 2) for k, v in med.items()},
    "me/ord",
    round(med["me"] / med["ord"], 2),
    "me/iunets",
    round(med["me"] / med["iunets"], 2),
)
