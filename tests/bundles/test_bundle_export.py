"""TorchScript export of IUNet: scripted and traced models take every size the eager network takes."""

from __future__ import annotations

import io

import pytest
import torch

from monai_iunet import IUNet


def _network(**kwargs) -> IUNet:
    torch.manual_seed(0)
    net = IUNet(3, 4, 3, **{"channels": (8, 16, 32), "blocks": 1, **kwargs})
    with torch.no_grad():
        for p in net.parameters():  # away from the identity initialisation, so that every block matters
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _reloaded(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


@pytest.mark.parametrize("kwargs", [{}, {"strides": ((1, 2, 2), 2), "pad": "replicate", "blocks": 2}])
def test_scripted_and_traced_match_eager_at_any_size(kwargs):
    net = _network(**kwargs)
    scripted = _reloaded(torch.jit.script(net))  # IUNet.__prepare_scriptable__ scripts for_export()
    traced = _reloaded(torch.jit.trace(net.for_export(), torch.randn(1, 4, 16, 16, 16)))
    for shape in [(1, 4, 16, 16, 16), (1, 4, 19, 21, 23), (2, 4, 9, 8, 13)]:
        x = torch.randn(shape)
        with torch.no_grad():
            expected = net(x)
            torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(traced(x), expected, rtol=1e-5, atol=1e-5)


def test_script_leaves_the_training_network_unchanged():
    net = _network().train()
    torch.jit.script(net)
    assert net.training and net.core.memory_efficient  # scripting worked on a copy (for_export)


def test_scripted_unpadded_network_rejects_other_sizes():
    scripted = torch.jit.script(_network(pad=None))
    assert scripted(torch.randn(1, 4, 8, 8, 8)).shape == (1, 3, 8, 8, 8)
    with pytest.raises(Exception, match="not divisible"):
        scripted(torch.randn(1, 4, 9, 8, 8))
