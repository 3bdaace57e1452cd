import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def randomize_(module: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """Move every parameter away from its identity initialisation so tests see a non-trivial network."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * std)
    return module
