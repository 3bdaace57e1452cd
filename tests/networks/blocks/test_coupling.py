import pytest
import torch
from torch import nn

from monai_iunet import AdditiveCoupling, InvertibleChannelMixing, InvertibleUNet
from monai_iunet.engine import NoInverseError
from monai_iunet.networks.blocks.low_memory_conv import Conv3dLowMemory
from monai_iunet.networks.enums import OrthogonalMethod

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


def test_channel_mixing_checks_its_method_at_construction():
    with pytest.raises(ValueError, match=r"method: .*'householder'.*Available options are .*'exp'"):
        InvertibleChannelMixing(3, 4, method="householder")
    mix = InvertibleChannelMixing(2, 4, method="CAYLEY")
    assert mix.method == OrthogonalMethod.CAYLEY and "method='cayley'" in repr(mix)


def test_channel_mixing_freeze_keeps_the_map_without_matrix_exp(monkeypatch):
    mix = randomize_(InvertibleChannelMixing(3, 5)).double()
    x = torch.randn(1, 5, 2, 3, 4, dtype=torch.float64)
    y = mix(x)
    mix.freeze()

    def no_matrix_exp(*args, **kwargs):
        raise AssertionError("a frozen channel mixing must not compute matrix_exp")

    monkeypatch.setattr(torch.linalg, "matrix_exp", no_matrix_exp)
    assert torch.equal(mix(x), y) and torch.allclose(mix.inverse(y), x, atol=1e-12)
    assert "frozen=True" in repr(mix) and "frozen_matrix" not in mix.state_dict()


def test_norm_and_act_specifiers_as_monai_factories_take_them():
    act_args = {"negative_slope": 0.2}
    block = AdditiveCoupling(2, 4, norm=["group", {"num_groups": 2}], act=("leakyrelu", act_args))
    assert block.fn[2].num_groups == 2 and block.fn[1].negative_slope == 0.2 and block.fn[1].inplace
    assert act_args == {"negative_slope": 0.2}  # the caller's dict is not changed
    assert AdditiveCoupling(2, 4, norm="instance").fn[2].affine  # affine turned on so it can start at zero
    with pytest.raises(TypeError, match="Layer specifiers"):
        AdditiveCoupling(2, 4, norm=("group", 2))


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

    core = InvertibleUNet(2, (4, 8), blocks=1, block_factory=make).double()
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


def test_block_factory_modules_are_checked_for_inverse():
    def conv(spatial_dims, channels, index):
        return nn.Conv2d(channels, channels, 3, padding=1)  # no inverse()

    with pytest.raises(NoInverseError, match=r"block_factory\(2, 4, 0\).*Conv2d without inverse\(\)"):
        InvertibleUNet(2, (4, 8), blocks=1, block_factory=conv)


def test_block_is_a_deprecated_name_of_block_factory():
    calls = []

    def make(spatial_dims, channels, index):
        calls.append((spatial_dims, channels, index))
        return Scale(channels)

    with pytest.warns(DeprecationWarning, match="block_factory"):
        core = InvertibleUNet(2, (4, 8), blocks=1, block=make)
    assert sum(isinstance(m, Scale) for m in core.modules()) == 4
    assert not any(isinstance(m, AdditiveCoupling) for m in core.modules())
    assert calls == [(2, 4, 0), (2, 8, 1), (2, 8, 2), (2, 4, 3)]
    with pytest.raises(ValueError, match="once"):
        InvertibleUNet(2, (4, 8), blocks=1, block=make, block_factory=lambda *a: Scale(a[1]))


def test_backward_step_can_free_the_residual_output_first():
    # the coupling's backward step lets F's output go before differentiating F, from its gradient edge; a torch
    # that stops accepting edges in autograd.grad would silently cost one activation more: make that visible
    from monai_iunet.networks.blocks import coupling

    assert coupling._GRAD_FROM_EDGES
    block = AdditiveCoupling(3, 4).double()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 4, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    y = block(x)
    grad_y = torch.randn_like(y)
    reference = torch.autograd.grad(y, [x, *block.parameters()], grad_y)
    grads = {}
    x_rec, grad_x = block.reconstruct(y.detach().clone(), grad_y.clone(), grads)
    assert torch.allclose(x_rec, x, atol=1e-12) and torch.allclose(grad_x, reference[0], atol=1e-12)
    for p, g in zip(block.parameters(), reference[1:]):
        assert torch.allclose(grads[p], g, atol=1e-12)
