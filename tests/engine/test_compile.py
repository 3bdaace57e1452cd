"""torch.compile keeps the engine an opaque, memory-efficient region: the compiled network saves as little for
backward as the eager memory-efficient one, and its gradients are the eager ones."""

import torch

from monai_iunet import IUNet

from conftest import randomize_, saved_bytes


def saved_bytes_and_grads(fn, net, x):
    """Bytes of the tensors autograd saves for backward during ``fn(x)``, and the parameter gradients."""
    net.zero_grad(set_to_none=True)
    total, out = saved_bytes(fn, x)
    out.square().mean().backward()
    return total, torch.cat([p.grad.flatten() for p in net.parameters()])


def test_compiled_network_stays_memory_efficient():
    torch._dynamo.reset()
    x = torch.randn(1, 2, 16, 16, 16)
    saved, grads = {}, {}
    for me in (True, False):
        net = randomize_(IUNet(3, 2, 2, channels=(8, 16), blocks=1, memory_efficient=me), std=0.1)
        compiled = torch.compile(net, backend="aot_eager")
        saved[me, "eager"], grads[me, "eager"] = saved_bytes_and_grads(net, net, x)
        saved[me, "compiled"], grads[me, "compiled"] = saved_bytes_and_grads(compiled, net, x)
    # compiled memory-efficient saves what eager memory-efficient saves, far less than compiled ordinary autograd
    assert saved[True, "compiled"] == saved[True, "eager"]
    assert saved[True, "compiled"] < 0.6 * saved[False, "compiled"]
    for me in (True, False):
        g, ref = grads[me, "compiled"], grads[me, "eager"]
        assert (g - ref).norm() / ref.norm() < 1e-5
