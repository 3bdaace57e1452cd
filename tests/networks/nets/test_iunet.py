import io
import json
import warnings

import pytest
import torch
from monai.bundle import ConfigParser

from monai_iunet import InvertibleChannelMixing, IUNet
from monai_iunet.engine import NoInverseError
from monai_iunet.networks.nets import IUnet, Iunet, iunet

from conftest import randomize_


def test_shapes_and_aliases():
    assert IUnet is IUNet and Iunet is IUNet and iunet is IUNet
    net = IUNet(spatial_dims=3, in_channels=4, out_channels=3, channels=(8, 16, 32), blocks=1)
    assert net(torch.randn(2, 4, 16, 16, 16)).shape == (2, 3, 16, 16, 16)
    assert net(torch.randn(1, 4, 15, 17, 9)).shape == (1, 3, 15, 17, 9)  # padded and cropped back
    assert net.total_stride == (4, 4, 4)
    net2d = IUNet(spatial_dims=2, in_channels=1, out_channels=10, channels=(16, 32), blocks=2)
    assert net2d(torch.randn(1, 1, 12, 10)).shape == (1, 10, 12, 10)


def test_lift_and_projection_are_linear_around_the_core():
    net = IUNet(3, 4, 3, channels=(8, 16))
    assert net.lift.kernel_size == (1, 1, 1) and net.project.kernel_size == (1, 1, 1)
    x = torch.randn(1, 4, 8, 8, 8)
    # identity core at initialisation: the network is the composition of the two linear convs
    assert torch.allclose(net(x), net.project(net.lift(x)), atol=1e-5)
    assert "lift 4 -> 8" in net.layout() and "project 8 -> 3" in net.layout()


def test_memory_efficient_by_default():
    assert IUNet(3, 4, 3).core.memory_efficient is True


def test_wrong_input_channels_say_what_to_do():
    net = IUNet(3, 4, 3, channels=(8, 16))
    with pytest.raises(ValueError, match=r"in_channels=4.*got \(1, 3, 8, 8, 8\).*modalities"):
        net(torch.zeros(1, 3, 8, 8, 8))


def test_built_from_a_bundle_config():
    config = json.loads(
        '{"network_def": {"_target_": "monai_iunet.IUNet", "spatial_dims": 3, "in_channels": 4, "out_channels": 3,'
        ' "channels": [8, 16], "blocks": 1, "norm": "instance", "resampling_init": "pixel_shuffle",'
        ' "memory_efficient": true, "pad": "constant"},'
        ' "alias": {"_target_": "monai_iunet.networks.nets.IUNet", "spatial_dims": 2, "in_channels": 1,'
        ' "out_channels": 1, "channels": [4, 8]}}'
    )
    parser = ConfigParser(config)
    net = parser.get_parsed_content("network_def")
    assert isinstance(net, IUNet) and net(torch.zeros(1, 4, 8, 8, 8)).shape == (1, 3, 8, 8, 8)
    assert isinstance(parser.get_parsed_content("alias"), IUNet)


def test_torchscript_export_for_inference():
    net = randomize_(IUNet(3, 4, 3, channels=(8, 16), blocks=1), std=0.1).eval()
    x = torch.randn(1, 4, 8, 8, 8)
    traced = torch.jit.trace(net, x, check_trace=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with torch.no_grad():
        assert torch.allclose(loaded(x), net(x), atol=1e-5)


@pytest.mark.parametrize("channel_mixing", [False, True])
def test_onnx_export_for_inference(tmp_path, monkeypatch, channel_mixing):
    onnx = pytest.importorskip("onnx")
    net = randomize_(IUNet(3, 2, 1, channels=(8, 16), blocks=1, channel_mixing=channel_mixing), std=0.1).eval()
    assert channel_mixing == any(isinstance(m, InvertibleChannelMixing) for m in net.modules())
    path = tmp_path / "iunet.onnx"
    x = torch.randn(1, 2, 8, 8, 8)
    with torch.no_grad():
        expected = net(x)
    exported = net.for_export()

    def no_matrix_exp(*args, **kwargs):
        raise AssertionError("for_export() left a matrix exponential in the exported network (ONNX has none)")

    monkeypatch.setattr(torch.linalg, "matrix_exp", no_matrix_exp)
    with torch.no_grad():
        assert torch.allclose(exported(x), expected, atol=1e-6)
    torch.onnx.export(exported, (x,), str(path))
    onnx.checker.check_model(onnx.load(str(path)))


def test_scripted_with_channel_mixing_and_enum_options():
    net = IUNet(3, 2, 1, channels=(8, 16), blocks=1, channel_mixing=True, pad="reflect", resampling_method="cayley")
    net = randomize_(net, std=0.1).eval()
    scripted = torch.jit.script(net)  # scripts net.for_export(): frozen resampling and channel mixing
    for shape in ((1, 2, 8, 8, 8), (1, 2, 7, 8, 6)):
        x = torch.randn(shape)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the padding notice
            assert torch.allclose(scripted(x), net(x), atol=1e-5)


def test_layout_counts_every_parameter_the_optimiser_sees():
    net = IUNet(3, 4, 3, channels=(8, 16, 32), blocks=1, channel_mixing=True)
    total = sum(p.numel() for p in net.parameters())
    core = sum(p.numel() for p in net.core.parameters())
    lines = net.layout().splitlines()
    assert lines[-1] == f"IUNet: {total:,} parameters (lift {4 * 8 + 8} + core {core:,} + project {8 * 3 + 3})"
    assert f"{core:,} core parameters" in lines[-3] and core < total


def test_block_factory_and_its_deprecated_name():
    def make(spatial_dims, channels, index):
        return InvertibleChannelMixing(spatial_dims, channels)

    net = IUNet(2, 1, 2, channels=(4, 8), blocks=1, block_factory=make)
    with pytest.warns(DeprecationWarning, match="block_factory"):
        old = IUNet(2, 1, 2, channels=(4, 8), blocks=1, block=make)
    for n in (net, old):
        assert sum(isinstance(m, InvertibleChannelMixing) for m in n.modules()) == 4
    with pytest.raises(NoInverseError, match="block_factory"):
        IUNet(2, 1, 2, channels=(4, 8), block_factory=lambda d, c, i: torch.nn.Identity())


def test_init_identity_for_restoration():
    net = IUNet(3, 1, 1, channels=(8, 16)).init_identity()
    x = torch.randn(1, 1, 8, 8, 8)
    assert torch.allclose(net(x), x, atol=1e-5)
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        IUNet(3, 4, 3, channels=(8, 16)).init_identity()
