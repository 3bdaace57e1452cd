import os
import warnings

import pytest
import torch
from torch import nn

from monai_iunet import InvertibleUNet, IUNet

from conftest import finish_gloo, free_port, init_gloo, randomize_, run_processes, saved_bytes


def core_grads(core, x, memory_efficient, loss=lambda y: (y * torch.linspace(-1, 1, y.numel()).view_as(y).to(y)).sum()):
    core.memory_efficient = memory_efficient
    core.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    loss(core(x)).backward()
    return x.grad, [p.grad for p in core.parameters()]


@pytest.mark.parametrize("spatial_dims,channels,shape", [(2, (4, 8, 16), (8, 8)), (3, (4, 8), (4, 4, 6))])
def test_gradcheck_float64(spatial_dims, channels, shape):
    core = randomize_(InvertibleUNet(spatial_dims, channels, blocks=1, channel_mixing=True)).double()
    x = torch.randn(1, channels[0], *shape, dtype=torch.float64, requires_grad=True)
    params = tuple(core.parameters())

    # the parameters are inputs too: gradcheck perturbs them in place, so their gradients are checked as well
    def fn(inp, *_):
        return core(inp)

    assert torch.autograd.gradcheck(fn, (x, *params), atol=1e-6, rtol=1e-5, fast_mode=True)


def test_float32_3d_iunet_matches_ordinary_autograd():
    net = randomize_(IUNet(3, 4, 3, channels=(8, 16, 32), blocks=2), std=0.1)
    x = torch.randn(2, 4, 16, 16, 16)
    target = torch.rand(2, 3, 16, 16, 16)
    grads = {}
    for me in (True, False):
        net.core.memory_efficient = me
        net.zero_grad()
        torch.nn.functional.mse_loss(net(x), target).backward()
        grads[me] = torch.cat([p.grad.flatten() for p in net.parameters()])
    rel = (grads[True] - grads[False]).norm() / grads[False].norm()
    assert rel <= 1e-4


def saved_bytes_of_a_step(net, x):
    total, out = saved_bytes(net, x)
    out.sum().backward()
    return total


def test_saved_memory_does_not_grow_with_depth():
    x = torch.randn(1, 4, 16, 16, 16)
    saved = {}
    for me in (True, False):
        for blocks in (1, 4):
            saved[me, blocks] = saved_bytes_of_a_step(
                IUNet(3, 4, 3, channels=(8, 16), blocks=blocks, memory_efficient=me), x
            )
    assert saved[True, 4] == saved[True, 1]
    assert saved[False, 4] > 2 * saved[False, 1]  # ordinary autograd stores every block's activations
    assert saved[True, 4] < saved[False, 1]


def test_modules_around_the_core_keep_their_saved_tensors():
    core = randomize_(InvertibleUNet(3, (8, 16), blocks=2)).double()
    before = nn.Sequential(nn.Conv3d(2, 8, 3, padding=1), nn.ReLU()).double()  # ReLU saves the core's input
    after = nn.Conv3d(8, 1, 3, padding=1).double()
    x = torch.randn(2, 2, 8, 8, 8, dtype=torch.float64)
    grads = {}
    for me in (True, False):
        core.memory_efficient = me
        for m in (core, before, after):
            m.zero_grad()
        h = before(x)
        h_copy = h.detach().clone()
        y = core(h)
        out = after(torch.relu(y)) + y.mean()
        out.square().sum().backward()
        assert torch.equal(h, h_copy), "the core's input was modified"
        grads[me] = [p.grad.clone() for m in (before, core, after) for p in m.parameters()]
    for a, b in zip(grads[True], grads[False]):
        assert torch.allclose(a, b, atol=1e-10)


def test_output_modified_in_place_is_detected():
    core = randomize_(InvertibleUNet(2, (4, 8)))
    y = core(torch.randn(1, 4, 8, 8, requires_grad=True))
    y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_autograd_grad_and_second_backward():
    core = randomize_(InvertibleUNet(2, (4, 8))).double()
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    gx, gp = torch.autograd.grad(core(x).square().sum(), [x, core.body[0].fn[0].weight])
    assert gx.shape == x.shape and gp.abs().sum() > 0
    gx_ref, _ = core_grads(core, x.detach(), False, lambda y: y.square().sum())
    assert torch.allclose(gx, gx_ref, atol=1e-10)
    # a retained graph can be back-propagated again and gives the same gradient
    core.memory_efficient = True
    loss = core(x).square().sum()
    first = torch.autograd.grad(loss, x, retain_graph=True)[0]
    assert torch.allclose(torch.autograd.grad(loss, x)[0], first)


def test_fused_coupling_evaluates_its_function_once_in_backward():
    core = randomize_(InvertibleUNet(3, (8,), blocks=3))
    calls = []
    for block in core.body:
        block.fn.register_forward_hook(lambda m, i, o: calls.append(m))
    x = torch.randn(1, 8, 4, 4, 4, requires_grad=True)
    y = core(x)
    assert len(calls) == 6
    y.sum().backward()
    assert len(calls) == 12  # one evaluation per block in forward and one in backward


def test_autocast_bf16_cpu():
    net = randomize_(IUNet(3, 2, 2, channels=(8, 16), blocks=2), std=0.05)
    x = torch.randn(1, 2, 8, 8, 8)
    dtypes = []
    hook = net.core.body[0].fn[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    grads = {}
    for me in (True, False):
        net.core.memory_efficient = me
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
        y.float().square().mean().backward()
        grads[me] = torch.cat([p.grad.flatten() for p in net.parameters()])
    hook.remove()
    assert set(dtypes) == {torch.bfloat16}  # forward and backward recomputation both ran in bf16
    assert torch.isfinite(grads[True]).all()
    rel = (grads[True] - grads[False]).norm() / grads[False].norm()
    assert rel < 0.05


def test_memcnn_engine_matches_default_and_keeps_warning_filters():
    pytest.importorskip("memcnn")
    filters_before = list(warnings.filters)
    ref = randomize_(IUNet(3, 2, 2, channels=(8, 16), blocks=2)).double()
    other = IUNet(3, 2, 2, channels=(8, 16), blocks=2, engine="memcnn").double()
    assert warnings.filters == filters_before
    with torch.no_grad():
        for p, q in zip(other.parameters(), ref.parameters()):
            p.copy_(q)
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    h = x.clone()
    for net in (ref, other):
        net(x).square().sum().backward()
    assert torch.equal(x, h)
    for p, q in zip(other.parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10)


def _ddp_worker(rank, world, port, x, target, state, out_dir):
    init_gloo(rank, world, port)  # gives up after a minute if a rank is missing
    torch.manual_seed(0)
    net = IUNet(3, 2, 2, channels=(8, 16), blocks=2)
    net.load_state_dict(state)
    ddp = nn.parallel.DistributedDataParallel(net)
    part = slice(rank, rank + 1)
    torch.nn.functional.mse_loss(ddp(x[part]), target[part]).backward()
    torch.save([p.grad for p in net.parameters()], os.path.join(out_dir, f"grads{rank}.pt"))
    finish_gloo()


def test_distributed_data_parallel_gloo(tmp_path):
    net = randomize_(IUNet(3, 2, 2, channels=(8, 16), blocks=2), std=0.1)
    x, target = torch.randn(2, 2, 8, 8, 8), torch.randn(2, 2, 8, 8, 8)
    run_processes(_ddp_worker, 2, args=(2, free_port(), x, target, net.state_dict(), str(tmp_path)))
    torch.nn.functional.mse_loss(net(x), target).backward()  # same as the mean over the two ranks' losses
    for rank in range(2):
        grads = torch.load(tmp_path / f"grads{rank}.pt", weights_only=True)
        for g, p in zip(grads, net.parameters()):
            assert torch.allclose(g, p.grad, atol=1e-6)


def test_iunet_private_output_path_matches_and_survives_retained_graph():
    # IUNet lets the engine reconstruct in place in its core's output; a retained graph must make it copy instead
    net = randomize_(IUNet(3, 2, 2, channels=(8, 16), blocks=2), std=0.1).double()
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    net.core.memory_efficient = False
    ref = torch.autograd.grad(net(x).square().sum(), list(net.parameters()))
    net.core.memory_efficient = True
    loss = net(x).square().sum()
    first = torch.autograd.grad(loss, list(net.parameters()), retain_graph=True)
    second = torch.autograd.grad(loss, list(net.parameters()))
    plain = torch.autograd.grad(net(x).square().sum(), list(net.parameters()))
    for r, a, b, c in zip(ref, first, second, plain):
        assert (
            torch.allclose(a, r, atol=1e-10) and torch.allclose(b, r, atol=1e-10) and torch.allclose(c, r, atol=1e-10)
        )


def test_reconstruction_guard_measures_drift():
    from monai_iunet import ReconstructionGuard

    guard = ReconstructionGuard(every=2, tolerance=1e-4)
    net = randomize_(IUNet(3, 2, 2, channels=(8, 16), blocks=2, guard=guard), std=0.1)
    x = torch.randn(1, 2, 8, 8, 8)
    for _ in range(3):
        net(x).square().mean().backward()
    assert guard.calls == 3 and len(guard.errors) == 2  # checked passes 1 and 3
    assert 0 <= guard.errors[0] < 1e-5  # float32 reconstruction is accurate

    # an ill-conditioned network: huge coupling outputs make float32 reconstruction lose the small input
    strict = ReconstructionGuard(every=1, tolerance=1e-6, action="raise")
    bad = IUNet(3, 2, 2, channels=(8, 16), blocks=4, guard=strict)
    with torch.no_grad():
        for m in bad.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.bias.fill_(1e6)
    with pytest.raises(FloatingPointError, match="relative error"):
        bad(x * 1e-3).square().mean().backward()
    warn = ReconstructionGuard(every=1, tolerance=1e-6)
    bad.core.guard = warn
    with pytest.warns(RuntimeWarning, match="memory_efficient=False"):
        bad(x * 1e-3).square().mean().backward()
    with pytest.raises(ValueError, match="action"):
        ReconstructionGuard(action="ignore")
