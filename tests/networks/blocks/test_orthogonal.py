import pytest
import torch

from monai_iunet.networks.blocks.orthogonal import orthogonal_matrix, skew_symmetric
from monai_iunet.networks.enums import OrthogonalMethod


@pytest.mark.parametrize("method", ["exp", "cayley"])
def test_special_orthogonal(method):
    theta = torch.randn(5, 8, 8, dtype=torch.float64)
    q = orthogonal_matrix(theta, method)
    eye = torch.eye(8, dtype=torch.float64)
    assert torch.allclose(q @ q.transpose(-1, -2), eye.expand_as(q), atol=1e-12)
    assert torch.allclose(torch.linalg.det(q), torch.ones(5, dtype=torch.float64), atol=1e-10)


@pytest.mark.parametrize("method", ["exp", "cayley"])
def test_symmetric_theta_gives_identity(method):
    a = torch.randn(4, 4, dtype=torch.float64)
    assert torch.allclose(orthogonal_matrix(a + a.T, method), torch.eye(4, dtype=torch.float64), atol=1e-12)


def test_exp_matches_matrix_exponential_of_skew_part():
    theta = torch.randn(6, 6, dtype=torch.float64)
    skew = skew_symmetric(theta)
    assert torch.allclose(skew, -skew.T)
    assert torch.allclose(orthogonal_matrix(theta, "exp"), torch.linalg.matrix_exp(theta - theta.T))


@pytest.mark.parametrize("method", ["exp", "cayley"])
def test_gradients_are_exact(method):
    theta = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: orthogonal_matrix(t, method), (theta,))


def test_methods_are_an_enum_that_plain_strings_select():
    theta = torch.randn(3, 3, dtype=torch.float64)
    by_member = orthogonal_matrix(theta, OrthogonalMethod.CAYLEY)
    assert torch.equal(orthogonal_matrix(theta, "cayley"), by_member)
    assert torch.equal(orthogonal_matrix(theta, " Cayley "), by_member)
    assert not torch.allclose(orthogonal_matrix(theta, "exp"), by_member)
    assert {m.value for m in OrthogonalMethod} == {"exp", "cayley"}


def test_bad_arguments():
    # the error names the argument and lists the choices (monai.utils.look_up_option)
    with pytest.raises(ValueError, match=r"method: .*'householder'.*Available options are .*('exp'|'cayley').*"):
        orthogonal_matrix(torch.zeros(2, 2), "householder")
    with pytest.raises(ValueError, match="cayley"):
        orthogonal_matrix(torch.zeros(2, 2), "householder")
    with pytest.raises(ValueError, match="shape"):
        orthogonal_matrix(torch.zeros(2, 3))
