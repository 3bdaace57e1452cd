"""The requirement sets of the installs, read offline: ``setup.cfg`` and ``scripts/install.sh`` of the checkout,
followed through the metadata (``Requires-Dist``) of the distributions installed in this environment."""

from __future__ import annotations

import configparser
import importlib.metadata as md
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

__all__ = ["CUDA_PACKAGE", "REPO", "closure", "install_sh_packages", "setup_requirements"]

REPO = Path(__file__).resolve().parents[1]
CUDA_PACKAGE = re.compile(r"^(nvidia-.*|cupy.*|holoscan.*|cuda-.*)$")
"""Canonical names of CUDA packages: NVIDIA's libraries, CuPy, Holoscan, cuda-python and its parts."""


def setup_requirements(*extras: str) -> list[str]:
    """``install_requires`` of ``setup.cfg`` plus the requirements of ``extras``."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    sections = [cfg["options"]["install_requires"]] + [cfg["options.extras_require"][e] for e in extras]
    return [line.strip() for text in sections for line in text.splitlines() if line.strip()]


def install_sh_packages() -> list[str]:
    """The pinned packages ``scripts/install.sh`` installs besides the package (``"name==version"``)."""
    return re.findall(r'"([A-Za-z0-9_.\-]+==[0-9][^"]*)"', (REPO / "scripts" / "install.sh").read_text())


def closure(requirements: list[str], follow: bool = True, skip: frozenset[str] = frozenset()) -> tuple[set, set]:
    """The distributions ``requirements`` bring in, through the installed distributions' metadata.

    Args:
        requirements: PEP 508 requirement strings.
        follow: follow each installed distribution's own requirements (``False``: as ``pip install --no-deps``).
        skip: canonical names not to follow (nor report).

    Returns:
        ``(installed, missing)``: canonical names reached that are installed here, and those that are not (whose
        requirements could not be followed).
    """
    installed, missing, done = set(), set(), set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in skip or (name, frozenset(req.extras)) in done:
            continue
        done.add((name, frozenset(req.extras)))
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            missing.add(name)
            continue
        installed.add(name)
        for line in (dist.requires or []) if follow else []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return installed, missing
