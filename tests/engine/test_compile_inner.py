"""``compile_inner``: the modules inside the memory-efficient region run compiled, with the eager gradients, the
eager memory saving, hooks, the reconstruction guard, state dicts, copies and export unchanged."""

import copy
import pickle

import pytest
import torch

from monai_iunet import IUNet
from monai_iunet.engine import ReconstructionGuard, compiled_modules, uncompile_inner

from conftest import randomize_, saved_bytes


class CountingBackend:
    """A ``torch.compile`` backend that runs Dynamo's graphs as they are and counts them (hashable: an object)."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def net_and_input(size=8, **kwargs):
    net = randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=2, **kwargs), std=0.1)
    return net, torch.randn(1, 2, size, size, size)


def grads(net, x, model=None):
    net.zero_grad(set_to_none=True)
    (net if model is None else model)(x).square().mean().backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_compile_inner_compiles_the_residual_functions_in_place():
    torch._dynamo.reset()
    net, x = net_and_input()
    keys = list(net.state_dict())
    backend = CountingBackend()
    assert net.compile_inner(backend=backend) is net
    fns = [m.fn for m in net.modules() if hasattr(m, "fn")]
    assert compiled_modules(net) == fns and len(fns) == 8  # 2 blocks per side, 2 sides, 2 levels
    assert list(net.state_dict()) == keys  # same keys: checkpoints load either way
    grads(net, x)
    assert backend.graphs > 0  # the residual functions ran through torch.compile
    assert uncompile_inner(net) == fns and compiled_modules(net) == []


def test_compiled_inner_gradients_equal_eager_and_memory_saving_kept():
    torch._dynamo.reset()
    net, x = net_and_input(size=16)
    other = copy.deepcopy(net).compile_inner(backend="aot_eager")
    saved = {}
    for key, module in (("eager", net), ("compiled", other)):
        saved[key], _ = saved_bytes(module, x)
    assert saved["compiled"] == saved["eager"]  # the compiled calls save nothing beyond one block's backward step
    assert relative_error(grads(other, x), grads(net, x)) < 1e-6


def test_compiled_inner_under_torch_compile_and_functional_call():
    torch._dynamo.reset()
    net, x = net_and_input()
    other = copy.deepcopy(net).compile_inner(backend="aot_eager")
    model = torch.compile(other, backend="aot_eager")
    assert relative_error(grads(other, x, model), grads(net, x)) < 1e-6
    # substituted parameters reach the compiled residual functions: the backward differentiates at those
    scaled = {k: v * 1.1 for k, v in net.named_parameters()}

    def param_grads(module):
        weights = {k: v.detach().requires_grad_(True) for k, v in scaled.items()}
        torch.func.functional_call(module, weights, (x,)).square().mean().backward()
        return torch.cat([w.grad.flatten() for w in weights.values()])

    assert relative_error(param_grads(other), param_grads(net)) < 1e-6


def test_recompiles_once_per_level_and_grad_mode_whatever_the_input_size():
    torch._dynamo.reset()
    net, _ = net_and_input()
    backend = CountingBackend()
    net.compile_inner(backend=backend)
    with pytest.warns(UserWarning, match="padding"):
        for size in (8, 7, 8, 7):  # 7 is padded to 8 by the core: the blocks see the same shapes
            grads(net, torch.randn(1, 2, size, size, size))
    # one graph per level and grad mode (forward without a graph, recompute with one); couplings share them
    assert backend.graphs == 2 * 2
    grads(net, torch.randn(1, 2, 5, 5, 5))  # padded to 6: one more graph per level and grad mode, not per block
    assert backend.graphs == 2 * 2 * 2


def test_hooks_on_inner_modules_fire_and_guard_works():
    torch._dynamo.reset()
    guard = ReconstructionGuard(every=1, tolerance=1e-4, action="raise")
    net, x = net_and_input(guard=guard)
    backend = CountingBackend()
    net.compile_inner(backend=backend)
    calls = []
    conv = net.core.body[0].fn[0]
    handle = conv.register_forward_hook(lambda module, args, out: calls.append(torch.is_grad_enabled()))
    with pytest.warns(RuntimeWarning, match="hook"):
        grads(net, x)
    assert calls == [False, True]  # forward, and the backward's recompute (one evaluation of F per step)
    assert len(guard.errors) == 1 and guard.errors[0] < 1e-5
    handle.remove()
    grads(net, x)  # compiled again (the graphs the other couplings use), and no stale hook
    assert calls == [False, True]


def test_modules_with_dropout_stay_eager():
    def block(spatial_dims, channels, index):
        from monai_iunet.networks.blocks import AdditiveCoupling

        coupling = AdditiveCoupling(spatial_dims, channels)
        coupling.fn.append(torch.nn.Dropout(0.1))
        return coupling

    net = IUNet(3, 2, 2, channels=(4, 8), blocks=1, block_factory=block)
    with pytest.warns(RuntimeWarning, match="dropout"):
        net.compile_inner(backend="aot_eager")
    assert compiled_modules(net) == []


def test_copies_pickles_and_export_of_a_compiled_network():
    torch._dynamo.reset()
    net, x = net_and_input()
    net.compile_inner(backend="aot_eager")
    clone = pickle.loads(pickle.dumps(net))
    assert len(compiled_modules(clone)) == 8 and len(compiled_modules(copy.deepcopy(net))) == 8
    exported = net.for_export()
    assert compiled_modules(exported) == []
    scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_inductor_compiled_inner_gradients_equal_eager():
    torch._dynamo.reset()
    net, x = net_and_input()
    other = copy.deepcopy(net).compile_inner()  # inductor, the default backend
    model = torch.compile(other)
    assert relative_error(grads(other, x, model), grads(net, x)) < 1e-5
