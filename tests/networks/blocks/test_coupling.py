import pytest
import torch
from torch import nn

from monai_iunet import AdditiveCoupling, InvertibleChannelMixing, InvertibleUNet
from monai_iunet.networks.blocks.low_memory_conv import Conv3dLowMemory

from conftest import randomize_


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("channels", [4, 5])
def test_identity_at_init_and_exact_inverse(flip, channels):
    block = AdditiveCoupling(3, channels, flip=flip).double()
    x = torch.randn(2, channels, 4, 5, 6, dtype=torch.float64)
    assert torch.equal(block(x), x)
    randomize_(block)
    y = block(x)
    assert not torch.allclose(y, x)
    assert torch.allclose(block.inverse(y), x, atol=1e-12)


def test_acts_on_half_of_the_channels_and_alternates():
    x = torch.randn(1, 6, 8, 8)
    a, b = randomize_(AdditiveCoupling(2, 6, flip=False)), randomize_(AdditiveCoupling(2, 6, flip=True))
    ya, yb = a(x), b(x)
    assert torch.equal(ya[:, 3:], x[:, 3:]) and not torch.allclose(ya[:, :3], x[:, :3])
    assert torch.equal(yb[:, :3], x[:, :3]) and not torch.allclose(yb[:, 3:], x[:, 3:])
    core = InvertibleUNet(2, (6,), blocks=3)
    assert [m.flip for m in core.body] == [False, True, False, True, False, True]


def test_residual_function_structure_and_zero_init():
    block = AdditiveCoupling(3, 8, depth=2)
    assert [type(m) for m in block.fn] == [Conv3dLowMemory, nn.LeakyReLU, nn.GroupNorm] * 2
    assert block.fn[2].num_groups == 1  # layer normalisation by default
    assert torch.count_nonzero(block.fn[-1].weight) == 0 and torch.count_nonzero(block.fn[-1].bias) == 0


@pytest.mark.parametrize("norm", ["instance", "batch", ("group", {"num_groups": 2}), "GROUP"])
def test_monai_norm_names(norm):
    block = randomize_(AdditiveCoupling(2, 4, norm=norm)).eval()
    x = torch.randn(2, 4, 6, 6)
    assert torch.allclose(block.inverse(block(x)), x, atol=1e-5)


def test_norm_without_affine_weight_is_rejected():
    with pytest.raises(ValueError, match="affine"):
        AdditiveCoupling(2, 4, norm=("instance", {"affine": False}))


def test_channel_mixing_is_orthogonal_and_invertible():
    mix = InvertibleChannelMixing(3, 6).double()
    x = torch.randn(1, 6, 3, 4, 5, dtype=torch.float64)
    assert torch.allclose(mix(x), x)
    randomize_(mix)
    y = mix(x)
    assert not torch.allclose(y, x)
    assert torch.allclose(y.norm(), x.norm()) and torch.allclose(mix.inverse(y), x, atol=1e-12)


class Scale(nn.Module):
    """A user-defined invertible block: per-channel positive scaling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.randn(1, channels, 1, 1) * 0.1)

    def forward(self, x):
        return x * self.log_scale.exp()

    def inverse(self, y):
        return y / self.log_scale.exp()


def test_user_blocks_train_memory_efficiently():
    def make(spatial_dims, channels, index):
        return Scale(channels)

    core = InvertibleUNet(2, (4, 8), blocks=1, block=make).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    assert torch.allclose(core.inverse(core(x)), x, atol=1e-12)
    grads = {}
    for me in (True, False):
        core.memory_efficient = me
        core.zero_grad()
        core(x).pow(2).sum().backward()
        grads[me] = [p.grad.clone() for p in core.parameters()]
    for a, b in zip(grads[True], grads[False]):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("shape", [(1, 16, 32, 32, 32), (1, 3, 5, 6, 7), (2, 4, 8, 8, 8)])
def test_low_memory_conv_equals_conv3d(shape):
    conv = Conv3dLowMemory(shape[1], 5, 3, padding=1)
    ref = torch.nn.Conv3d(shape[1], 5, 3, padding=1)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(*shape, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out, out_ref = conv(x), ref(x_ref)
    assert torch.allclose(out, out_ref, atol=1e-5)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4)
    assert torch.allclose(conv.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)
