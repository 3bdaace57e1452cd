import pytest
import torch
from torch import nn

from monai_iunet import IUNet
from monai_iunet.engine import recomputing
from monai_iunet.engine.recompute import recomputing_scope
from monai_iunet.networks.blocks.low_memory_conv import NATIVE_CONV_LIMIT, Conv3dLowMemory

from conftest import randomize_

# one volume above the native-kernel limit (channels * depth * height = 25600 > 20480): oneDNN takes it
LARGE = (1, 16, 40, 40, 4)
CHANNELS_LAST = torch.channels_last_3d


def _pair(channels: int) -> tuple[Conv3dLowMemory, nn.Conv3d]:
    conv = Conv3dLowMemory(channels, 5, 3, padding=1)
    ref = nn.Conv3d(channels, 5, 3, padding=1)
    ref.load_state_dict(conv.state_dict())
    return conv, ref


def test_large_volume_is_above_the_native_limit():
    assert LARGE[1] * LARGE[2] * LARGE[3] > NATIVE_CONV_LIMIT


def test_without_graph_runs_channels_last_with_the_same_result():
    conv, ref = _pair(LARGE[1])
    x = torch.randn(*LARGE)
    with torch.no_grad():
        out, expected = conv(x), ref(x)
    assert out.is_contiguous(memory_format=CHANNELS_LAST) and not out.is_contiguous()
    assert torch.allclose(out, expected, atol=1e-5)


def test_recompute_runs_channels_last_and_gives_pytorchs_gradients():
    conv, ref = _pair(LARGE[1])
    base = torch.randn(1, 2 * LARGE[1], *LARGE[2:])
    x = base[:, LARGE[1] :].requires_grad_(False).clone().requires_grad_(True)  # a contiguous half, as in a coupling
    x_ref = x.detach().clone().requires_grad_(True)
    assert not recomputing()
    with recomputing_scope():
        assert recomputing()
        out = conv(x)
    assert not recomputing()
    assert out.is_contiguous(memory_format=CHANNELS_LAST)
    expected = ref(x_ref)
    assert torch.allclose(out, expected, atol=1e-5)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4)
    assert torch.allclose(conv.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)
    assert torch.allclose(conv.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-3)


def test_channels_last_paths_under_torch_compile():
    """Inside ``torch.compile`` (``compile_inner``) the path without a graph is traced whole (oneDNN's runtime
    switch, which cannot be traced, no longer breaks the graph at each convolution); the recompute's path gives
    PyTorch's gradients there too."""
    conv, ref = _pair(LARGE[1])
    x = torch.randn(*LARGE)
    whole = torch.compile(conv, backend="aot_eager", fullgraph=True)  # fullgraph: a graph break raises
    with torch.no_grad():
        out, expected = whole(x), ref(x)
    assert out.is_contiguous(memory_format=CHANNELS_LAST)
    assert torch.allclose(out, expected, atol=1e-5)
    compiled = torch.compile(conv, backend="aot_eager")
    x = x.requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    with recomputing_scope():
        out = compiled(x)
    expected = ref(x_ref)
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-4)
    assert torch.allclose(conv.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-3)


def test_recompute_keeps_only_the_input_for_backward():
    # the channels-last copy is made again in backward: what the graph saves is the input itself
    conv, _ = _pair(LARGE[1])
    x = torch.randn(*LARGE, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t), recomputing_scope():
        conv(x)
    big = [t for t in saved if t.numel() == x.numel()]
    assert len(big) == 1 and big[0].data_ptr() == x.data_ptr()


@pytest.mark.parametrize("what", ["ordinary autograd", "double backward", "autocast"])
def test_outside_the_recompute_the_convolution_is_pytorchs(what):
    conv, ref = _pair(LARGE[1])
    x = torch.randn(*LARGE, requires_grad=True)
    if what == "autocast":
        with recomputing_scope(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert conv(x).dtype == torch.bfloat16  # autocast: PyTorch's conv, not the float32 channels-last one
        return
    out = conv(x)
    assert out.is_contiguous() and out.grad_fn.name() == "ConvolutionBackward0"
    if what == "double backward":
        (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
        (second,) = torch.autograd.grad(grad.square().sum(), x)
        (grad_ref,) = torch.autograd.grad(ref(x).square().sum(), x, create_graph=True)
        assert torch.allclose(second, torch.autograd.grad(grad_ref.square().sum(), x)[0], rtol=1e-4, atol=1e-3)


def test_memory_efficient_iunet_on_a_large_volume_matches_autograd():
    # full resolution above the native limit (channels-last in forward, inverse and recompute), level 2 below it
    nets = {}
    for me in (True, False):
        torch.manual_seed(0)
        nets[me] = randomize_(IUNet(3, 2, 2, channels=(8, 16), blocks=2, memory_efficient=me), std=0.1)
    nets[False].load_state_dict(nets[True].state_dict())
    x = torch.randn(1, 2, 80, 80, 4)
    grads = {}
    for me, net in nets.items():
        net(x).square().mean().backward()
        grads[me] = torch.cat([p.grad.flatten() for p in net.parameters()])
    error = (grads[True] - grads[False]).norm() / grads[False].norm()
    assert error < 1e-4
