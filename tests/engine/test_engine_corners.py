"""The memory-efficient engine in the corners real training code reaches: each case either matches ordinary
autograd through the same weights (float64, perturbed weights) or raises an error that says what to do."""

import pytest
import torch
import torch.nn.modules.module as module_hooks
from torch import nn

from monai_iunet import InvertibleUNet, IUNet
from monai_iunet.engine import InvertibleSequence, backprop, memory_efficient_apply
from monai_iunet.engine.recompute import RngRecord, global_module_hooks_exist
from monai_iunet.networks.blocks.coupling import AdditiveCoupling

from conftest import randomize_


def step(net, x, memory_efficient, seed=None):
    """One forward/backward with the core's engine switched; returns the parameter gradients."""
    net_core = net.core if isinstance(net, IUNet) else net
    net_core.memory_efficient = memory_efficient
    net.zero_grad(set_to_none=True)
    if seed is not None:
        torch.manual_seed(seed)
    y = net(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).square().sum().backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_double_backward_raises_naming_memory_efficient_false():
    core = randomize_(InvertibleUNet(2, (4, 8), blocks=1)).double()
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="memory_efficient=False"):
        torch.autograd.grad(core(x).square().sum(), x, create_graph=True)
    core.memory_efficient = False  # the advice in the message works
    (g,) = torch.autograd.grad(core(x).square().sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), x)
    assert gg.abs().sum() > 0


@pytest.mark.parametrize(
    "norm", ["batch", ("instance", {"track_running_stats": True}), ("batch", {"momentum": None})], ids=str
)
def test_running_statistics_are_updated_once(norm):
    net = randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=1, norm=norm), std=0.2).double()
    x = torch.randn(2, 2, 8, 8, 8, dtype=torch.float64)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    results = {}
    for me in (True, False):
        net.load_state_dict(start)
        grads = step(net, x, me)
        buffers = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}
        results[me] = grads, buffers
    assert results[True][1], "the network has running statistics"
    assert rel(results[True][0], results[False][0]) < 1e-10
    for key, value in results[False][1].items():
        assert torch.allclose(results[True][1][key], value, rtol=0, atol=1e-12), key
    if "batch" in str(norm):  # instance norm does not count batches
        assert all(v.item() == 1 for k, v in results[True][1].items() if "num_batches" in k)
    assert any(not torch.equal(v, start[k]) for k, v in results[True][1].items())  # the forward did update them


class DropoutCoupling(AdditiveCoupling):
    """An additive coupling whose residual function ends with dropout (a user's block)."""

    def __init__(self, spatial_dims, channels, index):
        super().__init__(spatial_dims, channels, flip=bool(index % 2))
        self.fn.append(nn.Dropout(0.3))


def test_dropout_in_blocks_replays_the_forward_rng():
    net = randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=2, block_factory=DropoutCoupling)).double()
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    grads, after = {}, {}
    for me in (True, False):
        grads[me] = step(net, x, me, seed=1)
        after[me] = torch.rand(4)  # the backward leaves the RNG stream as ordinary autograd does
    assert rel(grads[True], grads[False]) < 1e-12
    assert torch.equal(after[True], after[False])
    # the opt-out skips the replay, and then the recompute draws different numbers
    net.core.preserve_rng_state = False
    assert rel(step(net, x, True, seed=1), grads[False]) > 1e-3


def test_rng_record_keeps_states_only_when_the_forward_draws_random_numbers():
    x = torch.randn(1, 4, 4, 4)
    plain = InvertibleSequence(AdditiveCoupling(2, 4), AdditiveCoupling(2, 4, flip=True))
    with RngRecord(plain, x) as record:
        plain(x)
    assert not record
    random = InvertibleSequence(DropoutCoupling(2, 4, 0), DropoutCoupling(2, 4, 1))
    with RngRecord(random, x) as record:
        random(x)
    assert record and set(record.states) == {random, random[0], random[1]}
    assert not random[0]._forward_pre_hooks  # the recording hooks are gone after the forward


def test_weight_shared_block_used_twice_replays_each_call():
    block = DropoutCoupling(2, 4, 0).double()
    randomize_(block)
    seq = InvertibleSequence(block, DropoutCoupling(2, 4, 1).double(), block)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    grads = {}
    for me in (True, False):
        seq.zero_grad(set_to_none=True)
        x.grad = None
        torch.manual_seed(3)
        y = memory_efficient_apply(seq, x) if me else seq(x)
        y.square().sum().backward()
        grads[me] = torch.cat([x.grad.flatten(), *[p.grad.flatten() for p in seq.parameters()]])
    assert rel(grads[True], grads[False]) < 1e-12


def _spy_reuse(monkeypatch):
    seen = []
    original = backprop._apply_opaque

    def spy(module, x, reuse_output_memory, *args):
        seen.append(reuse_output_memory)
        return original(module, x, reuse_output_memory, *args)

    monkeypatch.setattr(backprop, "_apply_opaque", spy)
    return seen


def test_hooks_on_the_core_see_an_untouched_output(monkeypatch):
    seen = _spy_reuse(monkeypatch)
    net = randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=2)).double()
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    reference = step(net, x, False)
    step(net, x, True)
    assert seen == [True]  # nothing observes the core's output: IUNet lets the engine reuse its memory

    kept = []

    def keep(module, args, out):
        kept.append((out, out.detach().clone()))

    observers = [
        lambda: net.core.register_forward_hook(keep),
        lambda: net.project.register_forward_pre_hook(lambda m, args: keep(m, args, args[0])),
        lambda: module_hooks.register_module_forward_hook(
            lambda m, args, out: keep(m, args, out) if m is net.core else None
        ),
    ]
    for register in observers:
        kept.clear()
        handle = register()
        try:
            grads = step(net, x, True)
        finally:
            handle.remove()
        assert seen[-1] is False
        out, copy = kept[0]
        assert torch.equal(out.detach(), copy), "a hook's tensor was overwritten in backward"
        assert rel(grads, reference) < 1e-12


def test_private_output_is_a_deprecated_name():
    core = randomize_(InvertibleUNet(2, (4, 8), blocks=1))
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    with pytest.warns(DeprecationWarning, match="reuse_output_memory"):
        core(x, private_output=True).sum().backward()
    with pytest.warns(DeprecationWarning, match="reuse_output_memory"):
        memory_efficient_apply(core.body, x, private_output=False)


def test_float64_stays_exact_after_a_float32_round_trip():
    net = randomize_(IUNet(3, 2, 2, channels=(4, 8, 16), blocks=1)).float().double()
    x = torch.randn(1, 4, 8, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        error = (net.core.inverse(net.core(x)) - x).abs().max().item()
        down = net.core.body[1].inner[0]
        matrix = down.matrix()
    assert error < 1e-12
    eye = torch.eye(matrix.shape[-1], dtype=torch.float64)
    assert torch.allclose(matrix @ matrix.transpose(-1, -2), eye.expand_as(matrix), atol=1e-14)


def test_private_autograd_calls_the_engine_relies_on_still_answer():
    # a torch upgrade that removes or changes these would silently make the engine copy (safe but slower):
    # this test makes such an upgrade visible
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    assert keep_graph is not None
    answers = []

    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            answers.append(backprop._graph_is_retained())
            return g

    x = torch.randn(3, requires_grad=True)
    y = Probe.apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert answers == [True, False]

    assert not global_module_hooks_exist()
    handle = module_hooks.register_module_forward_hook(lambda *args: None)
    try:
        assert global_module_hooks_exist()
    finally:
        handle.remove()
