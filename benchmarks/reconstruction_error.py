"""Reconstruction error of a trained IUNet: how well its core inverts, in float32 and under bf16 autocast.

Memory-efficient gradients are only as good as the inverse (Behrmann et al. 2020). This loads the BraTS bundle's
trained checkpoint, runs validation cases through it and reports, relative to the norm of the core's input:

- ``inverse(forward(h))`` of the core, evaluated in float32 and under CPU bf16 autocast;
- the engine's own reconstruction during a training step, measured by :class:`monai_iunet.ReconstructionGuard`.

Usage (after the main job has trained ``bundles/brats_iunet/models/model.pt``)::

    python -m benchmarks.reconstruction_error --bundle_root bundles/brats_iunet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from monai_iunet import ReconstructionGuard


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle_root", default="bundles/brats_iunet")
    parser.add_argument("--ckpt", default=None, help="default: <bundle_root>/models/model.pt")
    parser.add_argument("--cases", type=int, default=4)
    args = parser.parse_args()
    root = Path(args.bundle_root)

    config = ConfigParser()
    config.read_config([str(root / "configs" / "train.json"), str(root / "configs" / "evaluate.json")])
    config["bundle_root"] = str(root)
    net = config.get_parsed_content("network_def")
    ckpt = Path(args.ckpt) if args.ckpt else root / "models" / "model.pt"
    net.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    net.eval()
    dataset = config.get_parsed_content("validate#dataset")

    rows = {"float32": [], "bf16 autocast": []}
    guards = {"float32": ReconstructionGuard(every=1, tolerance=1.0), "bf16 autocast": ReconstructionGuard(1, 1.0)}
    for i in range(min(args.cases, len(dataset))):
        image = dataset[i]["image"][None].float()
        # crop to a size the core takes without padding: with padding, inverse(forward) is exact only inside
        image = image[(..., *(slice(0, s - s % f) for s, f in zip(image.shape[2:], net.total_stride)))]
        for name, enabled in (("float32", False), ("bf16 autocast", True)):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                h = net.lift(image)
                rows[name].append(relative(net.core.inverse(net.core(h)).float(), h.float()))
            # the engine's reconstruction in a real backward pass
            net.core.guard = guards[name]
            net.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
                out = net(image)
            out.float().sigmoid().mean().backward()
            net.core.guard = None

    print(f"checkpoint {ckpt}, {len(rows['float32'])} validation cases, input {tuple(image.shape)}\n")
    print("| precision | core inverse(forward(h)) rel. error, max | engine reconstruction in backward, max |")
    print("|---|---|---|")
    for name in rows:
        print(f"| {name} | {max(rows[name]):.2e} | {max(guards[name].errors):.2e} |")


if __name__ == "__main__":
    main()
