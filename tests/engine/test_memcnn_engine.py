"""engine="memcnn": memcnn only ever sees tensors the engine owns, and it matches the default engine."""

import pytest
import torch

from monai_iunet import InvertibleUNet, IUNet

from conftest import randomize_

memcnn = pytest.importorskip("memcnn")
import memcnn.models.revop as revop  # noqa: E402


def nets(**kwargs):
    ref = randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=1, **kwargs), std=0.2).double()
    other = IUNet(3, 2, 2, channels=(4, 8), blocks=1, engine="memcnn", **kwargs).double()
    other.load_state_dict(ref.state_dict())  # the same keys on both engines
    return ref, other


def test_state_dict_keys_are_the_same_on_both_engines():
    ref, other = nets()
    assert list(other.state_dict()) == list(ref.state_dict())
    back = IUNet(3, 2, 2, channels=(4, 8), blocks=1).double()
    back.load_state_dict(other.state_dict())
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(back(x), ref(x)) and torch.equal(other(x), ref(x))
    # checkpoints written with memcnn's own wrapper (a "_fn." level) still load
    old = {k.replace("core.body.0.", "core.body.0._fn."): v for k, v in ref.state_dict().items()}
    IUNet(3, 2, 2, channels=(4, 8), blocks=1, engine="memcnn").double().load_state_dict(old)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "view"])
def test_caller_input_is_never_freed(mode):
    core = randomize_(InvertibleUNet(3, (4, 8), blocks=1, engine="memcnn"))
    base = torch.randn(2, 4, 8, 8, 8)
    copy = base.clone()
    x = base[:1] if mode == "view" else base
    with torch.inference_mode() if mode == "inference_mode" else torch.no_grad():
        y = core(x)
    assert base.untyped_storage().size() == copy.untyped_storage().size()
    assert torch.equal(base, copy)
    core.engine = "default"
    with torch.no_grad():
        assert torch.allclose(y.detach(), core(x), atol=1e-6)


def test_gradients_match_ordinary_autograd_and_memory_efficient_false_bypasses_memcnn(monkeypatch):
    calls = []
    original = revop.InvertibleCheckpointFunction.apply
    monkeypatch.setattr(revop.InvertibleCheckpointFunction, "apply", lambda *a: calls.append(1) or original(*a))
    ref, other = nets()
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    ref.core.memory_efficient = False
    ref(x).square().sum().backward()
    for me in (True, False):
        calls.clear()
        other.zero_grad()
        other.core.memory_efficient = me
        h = x.clone()
        other(x).square().sum().backward()
        assert torch.equal(x, h)
        assert bool(calls) == me  # memory_efficient=False never reaches memcnn
        for p, q in zip(other.parameters(), ref.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-10)


def test_cpu_autocast_runs_memcnn_blocks_in_float32():
    ref = randomize_(IUNet(3, 2, 2, channels=(4, 8), blocks=1), std=0.1)
    other = IUNet(3, 2, 2, channels=(4, 8), blocks=1, engine="memcnn")
    other.load_state_dict(ref.state_dict())
    x = torch.randn(1, 2, 8, 8, 8)
    ref(x).float().square().mean().backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = other(x)
    y.float().square().mean().backward()
    grads = [torch.cat([p.grad.flatten() for p in n.parameters()]) for n in (other, ref)]
    assert torch.isfinite(grads[0]).all()
    assert (grads[0] - grads[1]).norm() / grads[1].norm() < 0.05  # lift and projection ran in bfloat16


def test_jit_trace_of_a_memcnn_network():
    _, other = nets()
    other.eval()
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64)
    traced = torch.jit.trace(other, x, check_trace=False)
    with torch.no_grad():
        assert torch.allclose(traced(x), other(x), atol=1e-12)


def test_double_backward_raises_naming_memory_efficient_false():
    _, other = nets()
    x = torch.randn(1, 2, 8, 8, 8, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="memory_efficient=False"):
        torch.autograd.grad(other(x).square().sum(), x, create_graph=True)


@pytest.mark.parametrize("norm", ["batch", ("instance", {"track_running_stats": True})], ids=str)
def test_running_statistics_are_updated_once(norm):
    ref, other = nets(norm=norm)
    x = torch.randn(2, 2, 8, 8, 8, dtype=torch.float64)
    ref.core.memory_efficient = False
    for model in (ref, other):
        model(x).square().sum().backward()
    stats = {k: v for k, v in ref.state_dict().items() if "running" in k or "num_batches" in k}
    assert stats
    for key, value in stats.items():
        assert torch.allclose(other.state_dict()[key], value, rtol=0, atol=1e-12), key
    for p, q in zip(other.parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10)
