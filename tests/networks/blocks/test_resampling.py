import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_iunet import InvertibleDownsampling, InvertibleUpsampling
from monai_iunet.networks.blocks.resampling import dct_matrix, haar_matrix, separable_dct_matrix
from monai_iunet.networks.enums import OrthogonalMethod, ResamplingInit

PAPER_THETA = (math.pi / 4) * torch.tensor(
    [[0.0, 0.0, -1.0, -1.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
)


def haar_2d(x: torch.Tensor) -> torch.Tensor:
    """Reference 2D Haar transform of a (N, 1, H, W) image: average, and the three detail bands."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1) / 2


def same_up_to_order_and_sign(y: torch.Tensor, ref: torch.Tensor) -> bool:
    """Every channel of ``y`` equals some channel of ``ref`` or its negative, one-to-one."""
    remaining = list(range(ref.shape[1]))
    for i in range(y.shape[1]):
        match = [
            j
            for j in remaining
            if torch.allclose(y[:, i], ref[:, j], atol=1e-5) or torch.allclose(y[:, i], -ref[:, j], atol=1e-5)
        ]
        if not match:
            return False
        remaining.remove(match[0])
    return not remaining


@pytest.mark.parametrize(
    "spatial_dims,stride,shape",
    [(1, 2, (12,)), (2, 2, (8, 6)), (3, 2, (4, 6, 8)), (3, (1, 2, 2), (3, 4, 6)), (2, (3, 2), (9, 4))],
)
@pytest.mark.parametrize("method", ["exp", "cayley"])
@pytest.mark.parametrize("init", ["haar", "pixel_shuffle", "random"])
def test_downsampling_is_orthogonal_and_inverted(spatial_dims, stride, shape, method, init):
    strides = (stride,) * spatial_dims if isinstance(stride, int) else stride
    sigma = math.prod(strides)
    init = torch.randn(3, sigma, sigma) if init == "random" else init
    down = InvertibleDownsampling(spatial_dims, 3, stride, method=method, init=init).double()
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    y = down(x)
    assert y.shape == (2, 3 * sigma, *(s // t for s, t in zip(shape, strides)))
    assert torch.allclose(down.inverse(y), x, atol=1e-12)
    # orthogonal operator: the norm is preserved
    assert torch.allclose(y.norm(), x.norm())
    up = InvertibleUpsampling(spatial_dims, 3 * sigma, stride, method=method, init=init).double()
    assert torch.allclose(up(y), x, atol=1e-12)
    assert torch.allclose(up.inverse(x), y, atol=1e-12)


def test_paper_theta_reproduces_haar_transform():
    down = InvertibleDownsampling(2, 1, 2, init=PAPER_THETA)
    x = torch.randn(2, 1, 8, 10)
    assert same_up_to_order_and_sign(down(x), haar_2d(x))


@pytest.mark.parametrize("method", ["exp", "cayley"])
def test_symmetric_theta_gives_pixel_shuffle(method):
    a = torch.randn(4, 4)
    down = InvertibleDownsampling(2, 2, 2, method=method, init=a + a.T)
    x = torch.randn(1, 2, 6, 8)
    assert torch.allclose(down(x), F.pixel_unshuffle(x, 2), atol=1e-6)


def test_haar_init_is_the_haar_transform():
    x = torch.randn(1, 1, 8, 6)
    assert torch.allclose(InvertibleDownsampling(2, 1, 2, init="haar")(x), haar_2d(x), atol=1e-6)
    # 3D: the eight bands are separable products of 1D Haar along each axis
    x3 = torch.randn(1, 1, 4, 4, 4)
    y3 = InvertibleDownsampling(3, 1, 2, init="haar")(x3)
    low_pass = x3.reshape(1, 1, 2, 2, 2, 2, 2, 2).sum(dim=(3, 5, 7)) / math.sqrt(8)
    assert torch.allclose(y3[:, 0], low_pass[:, 0], atol=1e-6)
    h = haar_matrix((2, 2, 2))
    assert torch.allclose(h @ h.T, torch.eye(8, dtype=torch.float64), atol=1e-12)


def test_haar_matrix_is_only_haar_and_other_strides_are_named_dct():
    assert torch.equal(haar_matrix((1, 2)), separable_dct_matrix((1, 2)))
    with pytest.raises(ValueError, match="separable_dct_matrix"):
        haar_matrix((3, 2))
    dct = separable_dct_matrix((3, 1))
    assert torch.allclose(dct, dct_matrix(3)) and torch.allclose(dct @ dct.T, torch.eye(3, dtype=torch.float64))
    down = InvertibleDownsampling(2, 1, (3, 2), init="haar")  # init="haar" with stride 3: the DCT-II along that axis
    assert torch.allclose(down.matrix()[0].double(), separable_dct_matrix((3, 2)), atol=1e-6)


def test_kernels_are_per_channel():
    down = InvertibleDownsampling(2, 2, 2, init=torch.randn(2, 4, 4))
    x = torch.randn(1, 2, 4, 4)
    y = down(x)
    # each channel only feeds its own 4 output channels, and the two channels use different matrices
    y_first = down(torch.cat([x[:, :1], torch.zeros_like(x[:, 1:])], dim=1))
    assert torch.allclose(y_first[:, :4], y[:, :4]) and torch.count_nonzero(y_first[:, 4:]) == 0
    assert not torch.allclose(down.matrix()[0], down.matrix()[1])


def test_theta_is_learnable_and_gradient_reaches_it():
    down = InvertibleDownsampling(3, 2, 2, init=torch.randn(8, 8) * 0.1)
    down(torch.randn(1, 2, 4, 4, 4)).pow(2).mean().backward()
    assert down.theta.grad is not None and down.theta.grad.abs().sum() > 0
    fixed = InvertibleDownsampling(3, 2, 2, learnable=False)
    assert not list(fixed.parameters())


def test_options_from_json_config():
    opts = json.loads('{"method": "cayley", "init": "pixel_shuffle"}')
    down = InvertibleDownsampling(2, 1, [2, 2], **opts)
    x = torch.randn(1, 1, 4, 4)
    assert torch.allclose(down(x), F.pixel_unshuffle(x, 2))


def test_clear_errors():
    down = InvertibleDownsampling(3, 1, 2)
    message = r"spatial size \(5, 4, 4\) is not divisible by \(2, 2, 2\); crop to \(4, 4, 4\) or pad to \(6, 4, 4\)"
    with pytest.raises(ValueError, match=message):
        down(torch.zeros(1, 1, 5, 4, 4))
    with pytest.raises(ValueError, match=r"init: .*'wavelet'.*Available options are .*'pixel_shuffle'"):
        InvertibleDownsampling(2, 1, 2, init="wavelet")
    with pytest.raises(ValueError, match=r"method: .*'householder'.*Available options are .*'cayley'"):
        InvertibleDownsampling(2, 1, 2, method="householder")
    with pytest.raises(ValueError, match="shape"):
        InvertibleDownsampling(2, 1, 2, init=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="divisible"):
        InvertibleUpsampling(2, 6, 2)


@pytest.mark.parametrize("stride", [0, (2, 0), (2, 2, 2), "ab", (2, None)])
def test_stride_must_be_positive_ints_one_per_axis(stride):
    with pytest.raises(ValueError, match=r"stride must be a positive int or a sequence of 2 positive ints, got"):
        InvertibleDownsampling(2, 1, stride)
    with pytest.raises(ValueError, match=r"stride must be a positive int"):
        InvertibleUpsampling(2, 4, stride)


@pytest.mark.parametrize("stride", [2, (2, 2), [2, 2], torch.tensor([2, 2]), np.array([2, 2])])
def test_stride_spellings(stride):
    down = InvertibleDownsampling(2, 1, stride)
    assert down.stride == (2, 2) and all(type(s) is int for s in down.stride)


def test_options_as_enum_members_or_any_case():
    x = torch.randn(1, 1, 4, 4)
    ref = InvertibleDownsampling(2, 1, 2, method="cayley", init="pixel_shuffle")(x)
    by_enum = InvertibleDownsampling(2, 1, 2, method=OrthogonalMethod.CAYLEY, init=ResamplingInit.PIXEL_SHUFFLE)
    assert torch.equal(by_enum(x), ref)
    assert torch.equal(InvertibleDownsampling(2, 1, 2, method="CAYLEY", init="Pixel_Shuffle")(x), ref)
    assert by_enum.method == "cayley" and "method='cayley'" in repr(by_enum)
    assert not torch.allclose(InvertibleDownsampling(2, 1, 2, init=ResamplingInit.HAAR)(x), ref)
