"""The paper's BraTS models (Etmann et al. 2020, §4.2, Table 2) from the bundle's config overrides: parameters and
the planner's predicted peak training memory at the paper's crop, in float32 and with AMP.

The models are read from ``bundles/brats_iunet/configs/paper_*.json`` merged after ``train.json`` (what
``monai.bundle run`` does), so the numbers describe exactly what the configs train. Memory is
:func:`monai_iunet.planner.explain_memory` with ``device="cuda"`` semantics (no CPU convolution workspace, no CPU
runtime constant; compares with ``torch.cuda.max_memory_allocated``), batch 1, 160 × 192 × 128, Adam. AMP is
approximated by running the symbolic step under ``torch.autocast("cpu", dtype=torch.bfloat16)``: the same
2-byte activations for convolutions as CUDA's float16 autocast, float32 for normalisation and the loss.

Run::

    python -m benchmarks.paper_configs                  # print the table
    python -m benchmarks.paper_configs --write-readme   # and put it into bundles/brats_iunet/docs/README.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "bundles" / "brats_iunet" / "configs"
README = ROOT / "bundles" / "brats_iunet" / "docs" / "README.md"
PAPER_MODELS = ("iunet16", "iunet32", "iunet64", "unet")
PAPER_SHAPE = (1, 4, 160, 192, 128)
START, END = "<!-- paper-configs:start -->", "<!-- paper-configs:end -->"

__all__ = ["PAPER_MODELS", "build_paper_model", "network_config", "scaled_widths"]


def network_config(name: str) -> dict:
    """The ``network_def`` of ``paper_<name>.json`` merged after ``train.json``, as the bundle parses it."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / f"paper_{name}.json")])
    return parser.get_parsed_content("network_def", instantiate=False).get_config()


def scaled_widths(widths, scale: float, multiple: int = 1) -> list[int]:
    """``widths`` times ``scale``, rounded to a positive multiple of ``multiple``."""
    return [max(multiple, int(round(w * scale / multiple)) * multiple) for w in widths]


def _instantiate(config: dict) -> nn.Module:
    from monai.bundle import ConfigParser

    return ConfigParser({"net": config}).get_parsed_content("net")


def build_paper_model(
    name: str, width_scale: float = 1.0, budget_shape=PAPER_SHAPE, device: str = "cpu"
) -> tuple[nn.Module, dict]:
    """A model of the comparison: a paper config (widths times ``width_scale``), SegResNet, or the equal-memory iUNet.

    Args:
        name: ``"iunet16"``, ``"iunet32"``, ``"iunet64"``, ``"unet"`` (the paper configs), ``"segresnet"`` (the MONAI
            model-zoo BraTS SegResNet: init_filters 16, blocks_down (1, 2, 2, 4), blocks_up (1, 1, 1)) or
            ``"iunet_equal_memory"`` (the widest 5-level iUNet whose planned training step fits what the U-Net
            baseline needs at ``budget_shape``, found by :func:`monai_iunet.fit_channels`).
        width_scale: factor on every width (1 for the paper's models; 0.5 for the CPU comparison).
        budget_shape: ``(N, C, *spatial)`` of a training batch, for the equal-memory search.
        device: the device semantics of the equal-memory search (``"cpu"`` or ``"cuda"``).

    Returns:
        ``(network, info)``, info with ``label`` and ``config``.
    """
    from monai_iunet.planner import estimate_memory, fit_channels

    if name.startswith("iunet") and name[5:].isdigit():
        config = network_config(name)
        config["channels"] = scaled_widths(config["channels"], width_scale, multiple=4)
        label = f"iUNet-{name[5:]}" + ("" if width_scale == 1 else f" (w{config['channels'][0]})")
    elif name == "unet":
        config = network_config("unet")
        config["features"] = scaled_widths(config["features"], width_scale)
        label = "U-Net" + ("" if width_scale == 1 else f" (b{config['features'][0]})")
    elif name == "segresnet":
        filters = scaled_widths([16], width_scale, multiple=8)[0]  # its GroupNorm has 8 groups
        config = {
            "_target_": "monai.networks.nets.SegResNet",
            "blocks_down": [1, 2, 2, 4],
            "blocks_up": [1, 1, 1],
            "init_filters": filters,
            "in_channels": 4,
            "out_channels": 3,
            "dropout_prob": 0.2,
        }
        label = "SegResNet" + ("" if width_scale == 1 else f" (f{filters})")
    elif name == "iunet_equal_memory":
        unet, _ = build_paper_model("unet", width_scale)
        budget = estimate_memory(unet, budget_shape, device=device)
        config = network_config("iunet16")
        config["channels"] = list(fit_channels(budget, budget_shape, levels=5, blocks=2, device=device))
        label = f"iUNet-eqmem (w{config['channels'][0]})"
    else:
        raise ValueError(f"unknown model {name!r}; choose from {(*PAPER_MODELS, 'segresnet', 'iunet_equal_memory')}.")
    return _instantiate(config), {"label": label, "config": config}


def _estimate(net: nn.Module, amp: bool) -> int:
    from monai_iunet.planner import explain_memory

    if not amp:
        return explain_memory(net, PAPER_SHAPE, device="cuda").total
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return explain_memory(net, PAPER_SHAPE, device="cuda").total


def table() -> str:
    """The markdown table of the paper configs (and the equal-memory iUNet) with the command that wrote it."""
    from monai_iunet.planner import GiB

    rows = [
        "| model | config override | network | parameters | peak training memory, float32 | with AMP |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name in (*PAPER_MODELS, "iunet_equal_memory"):
        net, info = build_paper_model(name, device="cuda")  # real CPU weights: the planner copies them as fakes
        cfg = info["config"]
        widths = cfg.get("channels", cfg.get("features"))
        network = f"`{cfg['_target_'].split('.')[-1]}`, widths {tuple(widths)}"
        params = sum(p.numel() for p in net.parameters())
        fp32, amp = _estimate(net, amp=False), _estimate(net, amp=True)
        override = f"`paper_{name}.json`" if name in PAPER_MODELS else "(search, not a config)"
        rows.append(
            f"| {info['label']} | {override} | {network} | {params / 1e6:.2f} M | {fp32 / GiB:.2f} GiB "
            f"| {amp / GiB:.2f} GiB |"
        )
    command = "python -m benchmarks.paper_configs " + shlex.join(sys.argv[1:])
    note = (
        f'Batch 1, crop {PAPER_SHAPE[2]}×{PAPER_SHAPE[3]}×{PAPER_SHAPE[4]}, Adam, planner with `device="cuda"` '
        "semantics (compares with `torch.cuda.max_memory_allocated`; cuDNN workspace not included); AMP approximated "
        'by the same symbolic step under `torch.autocast("cpu", dtype=torch.bfloat16)`. iUNet-eqmem is the widest '
        "5-level iUNet that `monai_iunet.fit_channels` fits into the U-Net's float32 budget. Written by "
        f"`{command.strip()}`."
    )
    return "\n".join(rows) + "\n\n" + note + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write-readme", action="store_true", help=f"replace the table between {START} and {END}")
    args = parser.parse_args(argv)
    text = table()
    print(text)
    if args.write_readme:
        readme = README.read_text()
        if START not in readme or END not in readme:
            raise SystemExit(f"{README} has no {START} ... {END} section to fill.")
        head, rest = readme.split(START, 1)
        README.write_text(head + START + "\n" + text + END + rest.split(END, 1)[1])
        print(f"updated {README}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
