import json
import warnings

import pytest
import torch

from monai_iunet import InvertibleUNet
from monai_iunet.networks.enums import BackpropEngine, PaddingMode
from monai_iunet.networks.nets.invertible_unet import blocks_per_level, per_level_strides, split_channels

from conftest import randomize_


def test_identity_at_init_and_invertible():
    core = InvertibleUNet(3, (8, 16, 32), blocks=2).double()
    x = torch.randn(1, 8, 8, 8, 8, dtype=torch.float64)
    assert torch.allclose(core(x), x, atol=1e-12)
    randomize_(core)
    y = core(x)
    assert not torch.allclose(y, x, atol=1e-2)
    assert torch.allclose(core.inverse(y), x, atol=1e-10)


def test_channel_split_derived_from_channels_and_strides():
    core = InvertibleUNet(3, (16, 32, 64, 128))
    assert core.splits == [4, 8, 16]  # 4 of 16 channels go down into 32 = 4 * 8
    assert split_channels((16, 32), [4]) == [8]
    aniso = InvertibleUNet(3, (8, 16), strides=(1, 2, 2))
    assert aniso.splits == [4] and aniso.total_stride == (1, 2, 2)
    per_level = InvertibleUNet(3, (8, 16, 32), strides=[(1, 2, 2), 2])
    assert per_level.total_stride == (2, 4, 4)


def test_unreachable_channels_name_the_nearest():
    with pytest.raises(ValueError, match=r"nearest reachable configuration is channels=\(16, 32, 64\)"):
        InvertibleUNet(3, (16, 30, 64))
    with pytest.raises(ValueError, match=r"channels=\(4, 24\)"):
        InvertibleUNet(3, (4, 40))  # at most (4 - 1) * 8 channels can go down


def test_layout_printout():
    core = InvertibleUNet(3, (16, 32, 64, 128), blocks=(1, 2, 2, 4))
    text = core.layout()
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["level", "scale", "channels", "blocks"]
    assert lines[1].split()[:6] == ["0", "1/1x1x1", "16", "1+1", "4", "12"]
    assert lines[4].split()[:4] == ["3", "1/8x8x8", "128", "4+4"]
    assert "total stride (8, 8, 8)" in text
    assert f"{sum(p.numel() for p in core.parameters()):,} core parameters" in lines[-1]
    assert "engine='default'" in lines[-1]


def test_ambiguous_strides_show_both_spellings():
    message = (
        r"strides=\(1, 2, 2\) is ambiguous with 4 levels in 3D: write strides=\(\(1, 1, 1\), \(2, 2, 2\), "
        r"\(2, 2, 2\)\) for one stride per level, or strides=\(\(1, 2, 2\), \(1, 2, 2\), \(1, 2, 2\)\) for one"
    )
    with pytest.raises(ValueError, match=message):
        per_level_strides((1, 2, 2), spatial_dims=3, levels=4)
    with pytest.raises(ValueError, match="ambiguous"):
        InvertibleUNet(3, (8, 16, 32, 64), strides=(1, 2, 2))
    # both spellings the message offers work, and equal strides are not ambiguous
    assert per_level_strides(((1, 1, 1), (2, 2, 2), (2, 2, 2)), 3, 4) == [(1, 1, 1), (2, 2, 2), (2, 2, 2)]
    assert per_level_strides(((1, 2, 2),) * 3, 3, 4) == [(1, 2, 2)] * 3
    assert per_level_strides((2, 2, 2), 3, 4) == [(2, 2, 2)] * 3
    assert per_level_strides((1, 2, 2), 3, 3) == [(1, 2, 2)] * 2  # 2 downsamplings: one per axis


def test_stride_and_blocks_errors():
    with pytest.raises(ValueError, match=r"one entry per downsampling \(len\(channels\) - 1 = 2\), got 3"):
        per_level_strides([2, 2, (1, 2)], 2, 3)
    with pytest.raises(ValueError, match="stride must be a positive int"):
        InvertibleUNet(2, (4, 8), strides=0)
    assert blocks_per_level(2, 3) == [2, 2, 2] and blocks_per_level([1, 0, 3], 3) == [1, 0, 3]
    for bad in ((1, 2), -1, "two"):
        with pytest.raises(
            ValueError, match=r"blocks must be one non-negative int or one per level \(len\(channels\) = 3\)"
        ):
            InvertibleUNet(2, (4, 8, 16), blocks=bad)


def test_options_list_their_choices():
    with pytest.raises(ValueError, match=r"engine: .*'torch'.*Available options are .*'memcnn'"):
        InvertibleUNet(2, (4, 8), engine="torch")
    with pytest.raises(ValueError, match=r"pad: .*'circular'.*Available options are .*'replicate'"):
        InvertibleUNet(2, (4, 8), pad="circular")
    # checked even when there is no resampling layer to check them (a single level)
    with pytest.raises(ValueError, match=r"resampling_method: .*'householder'.*'cayley'"):
        InvertibleUNet(2, (4,), resampling_method="householder")
    with pytest.raises(ValueError, match=r"resampling_init: .*'wavelet'.*'haar'"):
        InvertibleUNet(2, (4,), resampling_init="wavelet")


def test_options_as_enum_members_or_plain_strings():
    core = InvertibleUNet(2, (4, 8), pad=PaddingMode.REFLECT, engine=BackpropEngine.DEFAULT)
    assert core.pad == "reflect" and core.engine == "default"
    assert InvertibleUNet(2, (4, 8), pad="REFLECT").pad is PaddingMode.REFLECT
    assert InvertibleUNet(2, (4, 8), pad=None).pad is None
    x = torch.randn(1, 4, 5, 6)
    padded = randomize_(InvertibleUNet(2, (4, 8), pad=PaddingMode.REFLECT))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert padded(x).shape == x.shape


@pytest.mark.parametrize("pad", ["constant", "reflect", "replicate"])
def test_any_size_is_padded_and_cropped_back(pad):
    core = randomize_(InvertibleUNet(3, (8, 16, 32), pad=pad))
    x = torch.randn(1, 8, 9, 10, 7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = core(x)
        core(x)
    assert y.shape == x.shape
    assert sum("padding" in str(w.message) for w in caught) == 1  # warned once
    divisible = torch.randn(1, 8, 8, 8, 8)
    assert core(divisible).shape == divisible.shape


def test_no_padding_rejects_with_nearest_size():
    core = InvertibleUNet(3, (4, 8, 16, 32), pad=None)
    message = (
        r"\(155, 240, 240\) is not divisible by \(8, 8, 8\); crop to \(152, 240, 240\) or pad to \(160, 240, 240\)"
    )
    with pytest.raises(ValueError, match=message):
        core(torch.zeros(1, 4, 155, 240, 240))


def test_wrong_channels_are_rejected():
    with pytest.raises(ValueError, match="expected input of shape"):
        InvertibleUNet(2, (4, 8))(torch.zeros(1, 3, 8, 8))


@pytest.mark.parametrize("spatial_dims,channels", [(1, (4, 6, 10)), (2, (4, 8, 16))])
def test_lower_dimensions(spatial_dims, channels):
    core = randomize_(InvertibleUNet(spatial_dims, channels, blocks=1)).double()
    x = torch.randn(2, 4, *([8] * spatial_dims), dtype=torch.float64)
    assert torch.allclose(core.inverse(core(x)), x, atol=1e-10)


def test_every_option_works_from_json():
    cfg = json.loads(
        '{"spatial_dims": 3, "channels": [8, 16], "strides": [[1, 2, 2]], "blocks": [1, 2], "norm": "instance",'
        ' "act": ["leakyrelu", {"negative_slope": 0.1}], "channel_mixing": true, "resampling_method": "cayley",'
        ' "resampling_init": "pixel_shuffle", "pad": "reflect", "engine": "default"}'
    )
    core = randomize_(InvertibleUNet(**cfg)).double()
    x = torch.randn(1, 8, 3, 4, 6, dtype=torch.float64)
    assert torch.allclose(core.inverse(core(x)), x, atol=1e-10)
    assert any(type(m).__name__ == "InvertibleChannelMixing" for m in core.modules())
