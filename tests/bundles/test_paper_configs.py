"""The paper's BraTS models as config overrides of the BraTS bundle (Etmann et al. 2020, §4.2, Table 2).

Each ``paper_<model>.json`` is merged after ``train.json`` (and ``paper_<model>_inference.json`` after
``inference.json``) as ``monai.bundle run`` does; the networks are checked against the paper's description, and one
training step of the bundle's own network, loss and optimizer runs at a reduced size (32³ crops, narrow widths).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import BasicUNet
from torch import nn

from monai_iunet import IUNet

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "brats_iunet" / "configs"
IUNETS = {"iunet16": 16, "iunet32": 32, "iunet64": 64}
MODELS = (*IUNETS, "unet")


def _parser(name: str, base: str = "train.json") -> ConfigParser:
    suffix = "" if base == "train.json" else "_inference"
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / base), str(CONFIGS / f"paper_{name}{suffix}.json")])
    return parser


@pytest.mark.parametrize("name", MODELS)
def test_paper_config_matches_section_4_2(name):
    parser = _parser(name)
    assert parser["patch_size"] == [160, 192, 128] and parser["batch_size"] == 1
    with torch.device("meta"):
        net = parser.get_parsed_content("network_def")
    if name in IUNETS:
        w = IUNETS[name]
        assert isinstance(net, IUNet)
        assert net.core.channels == (w, 2 * w, 4 * w, 8 * w, 16 * w)  # 5 levels, channels doubling per level
        assert net.core.blocks == [2] * 5  # two additive couplings per level and side
        # a 1/4 split before each 2x2x2 invertible downsampling: k = channels[l + 1] / 8 = channels[l] / 4
        assert all(k == c // 4 for k, c in zip(net.core.splits, net.core.channels, strict=False))
        norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
        assert norms and all(m.num_groups == 1 for m in norms)  # layer normalisation
        assert all(s % t == 0 for s, t in zip(parser["patch_size"], net.total_stride, strict=True))
    else:
        assert isinstance(net, BasicUNet)  # 2 convs per level, max pooling, transposed convs: Çiçek's 3D U-Net
        convs = [m for m in net.modules() if isinstance(m, nn.Conv3d)]
        assert convs[0].out_channels == 24  # blowup 24 ...
        pools = [m for m in net.modules() if isinstance(m, nn.MaxPool3d)]
        assert len(pools) == 4  # ... 5 levels
        widths = sorted({m.out_channels for m in convs if m.kernel_size == (3, 3, 3)})
        assert widths == [24, 48, 96, 192, 384]  # ... doubled after each downsampling
        norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
        assert norms and all(m.num_groups == 1 for m in norms)


@pytest.mark.parametrize("name", MODELS)
def test_inference_override_builds_the_same_network(name):
    train, infer = _parser(name), _parser(name, "inference.json")
    assert infer["network_def"] == train["network_def"]
    assert infer["patch_size"] == train["patch_size"]
    assert infer.get_parsed_content("inferer#roi_size", instantiate=True) == [160, 192, 128]


@pytest.mark.parametrize("name", MODELS)
def test_one_training_step_at_reduced_size(name):
    torch.manual_seed(0)
    parser = _parser(name)
    parser["device"] = "$torch.device('cpu')"
    parser["patch_size"] = [32, 32, 32]
    key = "channels" if name in IUNETS else "features"
    widths = parser["network_def"][key]
    parser["network_def"][key] = [4 * c // widths[0] for c in widths]  # first width 4, same doubling
    net = parser.get_parsed_content("network")
    loss_fn = parser.get_parsed_content("loss")
    optimizer = parser.get_parsed_content("optimizer")
    x = torch.randn(1, 4, *parser["patch_size"])
    y = (torch.rand(1, 3, *parser["patch_size"]) > 0.7).float()
    before = [p.detach().clone() for p in net.parameters()]
    loss = loss_fn(net(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters() if p.requires_grad)
    optimizer.step()
    assert math.isfinite(loss.item())
    changed = sum(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    assert changed == len(before)


def test_planner_table_script(capsys):
    """``benchmarks/paper_configs.py`` builds every model of the comparison from the same override files."""
    from benchmarks import paper_configs

    net, info = paper_configs.build_paper_model("iunet32", width_scale=0.25)
    assert net.core.channels == (8, 16, 32, 64, 128) and info["label"].startswith("iUNet-32")
    net, info = paper_configs.build_paper_model("unet", width_scale=0.5)
    assert info["config"]["features"] == [12, 24, 48, 96, 192, 12]
    with pytest.raises(ValueError, match="unknown model"):
        paper_configs.build_paper_model("vnet")
