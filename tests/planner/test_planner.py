import os
import subprocess
import sys
import textwrap

import pytest
import torch

from monai_iunet import IUNet
from monai_iunet.cli import main as monai_iunet_main
from monai_iunet.planner import (
    CPU_RUNTIME_OVERHEAD,
    conv_workspace_bytes,
    estimate_memory,
    explain_memory,
    fit_channels,
    parse_bytes,
    soft_dice_loss,
)
from monai_iunet.planner.conv_workspace import _uses_mkldnn
from monai_iunet.planner.live_bytes import LiveBytes

MiB = 2**20


def small_net(width: int = 8, blocks: int = 1, **kwargs) -> IUNet:
    return IUNet(3, 4, 3, channels=(width, 2 * width), blocks=blocks, **kwargs)


def test_monotone_in_size_and_width():
    net = small_net(8)
    sizes = [estimate_memory(net, (1, 4, s, s, s)) for s in (16, 32, 48)]
    assert sizes[0] < sizes[1] < sizes[2]
    widths = [estimate_memory(small_net(w), (1, 4, 32, 32, 32)) for w in (4, 8, 16)]
    assert widths[0] < widths[1] < widths[2]


def test_memory_efficient_estimate_does_not_grow_with_blocks_but_autograd_does():
    shape = (1, 4, 32, 32, 32)
    copy_bytes = 8 * 32**3 * 4  # one activation at the first level

    def parts(blocks: int, memory_efficient: bool):
        net = small_net(8, blocks, memory_efficient=memory_efficient)
        state = 4 * sum(p.numel() * 4 for p in net.parameters())  # parameter, gradient, two Adam moments
        return explain_memory(net, shape).total, state

    (shallow, s_state), (deep, d_state) = parts(1, True), parts(4, True)
    assert deep - d_state <= shallow - s_state + 0.1 * copy_bytes
    (shallow, s_state), (deep, d_state) = parts(1, False), parts(4, False)
    assert deep - d_state > shallow - s_state + 6 * copy_bytes  # stores the activations of every block


def test_symbolic_step_matches_the_real_step_tensor_by_tensor():
    """The fake-tensor run allocates what the real step allocates: compare the peaks of live tensors."""
    net = small_net(8, blocks=2)
    shape = (1, 4, 16, 16, 16)
    predicted = explain_memory(net, shape, first_step=True)

    real = small_net(8, blocks=2)
    real.load_state_dict(net.state_dict())
    x, target = torch.randn(shape), (torch.rand(1, 3, *shape[2:]) > 0.5).float()
    tracker = LiveBytes()
    with tracker:
        loss = soft_dice_loss(real(x), target)
        loss.backward()
        del loss
    assert predicted.phase == "backward"
    assert predicted.step == pytest.approx(tracker.peak[0], rel=0.02)


def test_estimate_leaves_the_network_alone():
    net = small_net(8)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    estimate_memory(net, (1, 4, 16, 16, 16))
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with torch.device("meta"):
        meta = small_net(8)
    assert estimate_memory(meta, (1, 4, 16, 16, 16)) == estimate_memory(net, (1, 4, 16, 16, 16))


def test_steady_state_counts_the_optimizer_state():
    net = small_net(16)
    shape = (1, 4, 16, 16, 16)
    first, steady = explain_memory(net, shape, first_step=True), explain_memory(net, shape)
    adam = 2 * sum(p.numel() * 4 for p in net.parameters())
    assert steady.optimizer_state == adam
    assert steady.total >= first.total
    sgd = explain_memory(net, shape, optimizer_states=0)
    assert sgd.total < steady.total


def test_conv_workspace_models_native_im2col_and_onednn():
    # batch 1, N*C*D*H = 8*16*16 <= 20480: the native kernel and its C_in * 27 x voxels im2col buffer
    assert not _uses_mkldnn((1, 8, 16, 16, 16), (8, 8, 3, 3, 3), (1, 1, 1), (1, 1, 1), 1, torch.float32)
    native = conv_workspace_bytes((1, 8, 16, 16, 16), (8, 8, 3, 3, 3), (1, 8, 16, 16, 16), padding=(1, 1, 1))
    assert native == 8 * 27 * 16**3 * 4
    # a batch of two goes to oneDNN, which reorders the larger tensor
    onednn = conv_workspace_bytes((2, 8, 16, 16, 16), (16, 8, 3, 3, 3), (2, 16, 16, 16, 16), padding=(1, 1, 1))
    assert onednn == 2 * 16 * 16**3 * 4
    # a 1x1 convolution with stride 1 (native kernel: batch 1, small) needs no im2col buffer
    assert not _uses_mkldnn((1, 4, 8, 8, 8), (16, 4, 1, 1, 1), (1, 1, 1), (0, 0, 0), 1, torch.float32)
    assert conv_workspace_bytes((1, 4, 8, 8, 8), (16, 4, 1, 1, 1), (1, 16, 8, 8, 8)) == 0


@pytest.mark.skipif(not hasattr(torch._C, "_select_conv_backend"), reason="needs torch's backend selector")
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("channels", [4, 16, 32])
@pytest.mark.parametrize("size", [16, 32, 48])
@pytest.mark.parametrize("kernel", [1, 3])
def test_transcribed_backend_rule_agrees_with_torch(batch, channels, size, kernel):
    x = torch.empty(()).expand(batch, channels, size, size, size)
    w = torch.empty(()).expand(channels, channels, kernel, kernel, kernel)
    pad = (kernel // 2,) * 3
    chosen = torch._C._select_conv_backend(x, w, None, (1, 1, 1), pad, (1, 1, 1), False, (0, 0, 0), 1, None)
    rule = _uses_mkldnn(tuple(x.shape), tuple(w.shape), (1, 1, 1), (1, 1, 1), 1, torch.float32)
    assert rule == ("Mkldnn" in str(chosen))


def test_fit_channels_is_the_widest_that_fits():
    shape = (1, 4, 32, 32, 32)

    def estimate(width: int) -> int:
        with torch.device("meta"):
            net = IUNet(3, 4, 3, channels=(width, 2 * width), blocks=1)
        return estimate_memory(net, shape)

    budget = (estimate(12) + estimate(16)) // 2
    channels = fit_channels(budget, shape, levels=2, blocks=1, max_width=24)
    assert channels == (12, 24)
    assert estimate(channels[0]) <= budget < estimate(channels[0] + 4)  # widths step by 4 in 3D (split 2w/8)
    assert fit_channels(estimate(24) + 1, shape, levels=2, blocks=1, max_width=24) == (24, 48)


def test_fit_channels_says_when_nothing_fits():
    with pytest.raises(ValueError, match="narrowest IUNet.*more than the budget"):
        fit_channels("1MiB", (1, 4, 64, 64, 64), levels=2, blocks=1)


def test_parse_bytes():
    assert parse_bytes("8GiB") == 8 * 2**30
    assert parse_bytes("8 GB") == 8 * 10**9
    assert parse_bytes("1.5g") == int(1.5 * 2**30)
    assert parse_bytes(1000) == 1000
    for bad in ("8 parsecs", "-1GiB", 0):
        with pytest.raises(ValueError):
            parse_bytes(bad)


def main(argv: list[str]) -> int:
    return monai_iunet_main(["plan", *argv])


def test_command_line(capsys):
    assert main(["estimate", "--shape", "1", "4", "16", "16", "16", "--channels", "8", "16", "--budget", "1GiB"]) == 0
    out = capsys.readouterr().out
    assert "predicted peak" in out and "fits in 1.00 GiB" in out
    fit = ["fit", "--shape", "1", "4", "16", "16", "16", "--budget", "80MiB", "--levels", "2", "--max-width", "32"]
    assert main(fit) == 0
    assert "channels=(" in capsys.readouterr().out
    assert main(["fit", "--shape", "1", "4", "16", "16", "16"]) == 2  # no budget
    assert capsys.readouterr().err.strip() == "monai-iunet plan: error: fit needs --budget, e.g. --budget 8GiB."


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads peak RSS from /proc")
def test_estimate_is_close_to_a_measured_cpu_step():
    """Peak RSS growth of a real step (fresh process, MALLOC_MMAP_THRESHOLD_=65536) against the prediction."""
    script = textwrap.dedent(
        """
        import json, torch
        from monai.losses import DiceLoss
        from monai_iunet import IUNet
        net = IUNet(3, 4, 3, channels=(16, 32), blocks=2)
        opt = torch.optim.Adam(net.parameters())
        x, t = torch.randn(1, 4, 48, 48, 48), (torch.rand(1, 3, 48, 48, 48) > 0.5).float()
        resident = sum(p.numel() * 4 for p in net.parameters()) + (x.numel() + t.numel()) * 4
        def rss(field):
            return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(field))
        before = rss("VmRSS")
        open("/proc/self/clear_refs", "w").write("5")
        DiceLoss(sigmoid=True)(net(x), t).backward()
        opt.step()
        print(json.dumps(rss("VmHWM") - before + resident))
        """
    )
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    measured = int(out.stdout.strip().splitlines()[-1])
    predicted = estimate_memory(IUNet(3, 4, 3, channels=(16, 32), blocks=2), (1, 4, 48, 48, 48), first_step=True)
    assert abs(predicted - measured) <= 0.3 * measured + CPU_RUNTIME_OVERHEAD / 2, (predicted / MiB, measured / MiB)
