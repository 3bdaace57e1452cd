"""A bundle's ``models/model.pt`` with untrained weights moved away from the identity, for tests that run a bundle."""

from __future__ import annotations

from pathlib import Path

import torch
from monai.bundle import ConfigParser


def write_random_weights(bundle: Path, scale: float = 0.3, seed: int = 0) -> Path:
    """Write ``bundle/models/model.pt`` for the bundle's ``network_def``: its initial weights plus Gaussian noise, so
    that it predicts some tumour (the core is the identity at initialisation). Returns the file."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    network = parser.get_parsed_content("network_def")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * scale)
    (bundle / "models").mkdir(exist_ok=True)
    torch.save({"model": network.state_dict()}, bundle / "models" / "model.pt")
    return bundle / "models" / "model.pt"
