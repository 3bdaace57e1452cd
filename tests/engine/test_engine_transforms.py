"""The engine under torch.func: functional_call with substituted weights is exact on both engines, function
transforms are refused with an error naming the way out, and a non-finite input is reported as such."""

import pytest
import torch
from torch.func import functional_call

from monai_iunet import IUNet, ReconstructionGuard

from conftest import randomize_

ENGINES = [
    "default",
    pytest.param(
        "memcnn",
        marks=pytest.mark.skipif(
            not __import__("importlib").util.find_spec("memcnn"), reason="memcnn is not installed"
        ),
    ),
]


def net(engine="default", **kwargs):
    return randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=1, engine=engine, **kwargs), std=0.2).double()


def loss(y):
    return (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).square().sum()


@pytest.mark.parametrize("engine", ENGINES)
def test_functional_call_with_other_weights_is_exact(engine):
    model = net(engine)
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    weights = {k: (1.1 * v).detach().requires_grad_(True) for k, v in model.named_parameters()}
    grads = {}
    for me in (True, False):  # .backward(): memcnn refuses torch.autograd.grad
        model.core.memory_efficient = me
        loss(functional_call(model, weights, (x,))).backward()
        grads[me] = [w.grad for w in weights.values()]
        for w in weights.values():
            w.grad = None
    for name, a, b in zip(weights, grads[True], grads[False]):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), name
    assert all(p.grad is None for p in model.parameters())  # the module's own weights get nothing


def test_functional_call_with_weights_computed_from_others():
    """Weights that are functions of other tensors (meta-learning, EMA): the gradient reaches those tensors."""
    model = net()
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    scale = torch.tensor(1.1, dtype=torch.float64, requires_grad=True)
    grads = {}
    for me in (True, False):
        model.core.memory_efficient = me
        weights = {k: scale * v.detach() for k, v in model.named_parameters()}
        (grads[me],) = torch.autograd.grad(loss(functional_call(model, weights, (x,))), scale)
    assert torch.allclose(grads[True], grads[False], rtol=1e-9)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("transform", ["grad", "vjp", "jvp"])
def test_function_transforms_are_refused_naming_memory_efficient_false(engine, transform):
    model = net(engine)
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    weights = {k: v.detach() for k, v in model.named_parameters()}

    def f(w):
        return loss(functional_call(model, w, (x,)))

    def run():
        if transform == "grad":
            return torch.func.grad(f)(weights)
        if transform == "vjp":
            return torch.func.vjp(f, weights)[1](torch.tensor(1.0, dtype=torch.float64))
        return torch.func.jvp(lambda inp: loss(model(inp)), (x,), (torch.ones_like(x),))

    with pytest.raises(RuntimeError, match="function transforms.*memory_efficient=False"):
        run()
    model.core.memory_efficient = False  # the advice works
    run()


def test_nan_input_is_blamed_on_the_input_not_the_reconstruction():
    model = net(guard=ReconstructionGuard(every=1, action="raise"))
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    x[0, 0, 1, 2, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="input .* was not finite") as error:
        model(x).sum().backward()
    assert "reconstructed" not in str(error.value)


def test_non_finite_forward_is_blamed_on_the_forward():
    model = net(guard=ReconstructionGuard(every=1, action="warn"))
    with torch.no_grad():
        model.core.body[0].fn[-1].bias.fill_(1e308)  # the first block overflows to inf
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="forward pass .* produced non-finite values"):
        model(x).sum().backward()


def test_finite_drift_is_still_blamed_on_the_reconstruction():
    guard = ReconstructionGuard(every=1, tolerance=0.0, action="raise")
    model = randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=1, guard=guard), std=0.2)  # float32: some drift
    with pytest.raises(FloatingPointError, match="reconstructed the invertible core's input with relative error"):
        model(torch.randn(1, 2, 8, 8, 8)).sum().backward()
