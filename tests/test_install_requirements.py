"""README command 1's install (``scripts/install.sh``: CPU torch, ``.[standard]``, deepbet) brings nothing CUDA.

The requirement set is resolved offline, from ``setup.cfg`` and the metadata of the installed distributions (CI has
run both install scripts). torch itself is left out: scripts/install.sh installs its CPU build from PyTorch's CPU
index and stops if a CUDA build or an ``nvidia-*`` package came in.
"""

from __future__ import annotations

from install_requirements import CUDA_PACKAGE, closure, install_sh_packages, setup_requirements

TORCH = frozenset({"torch"})


def test_readme_install_requires_no_cuda_package():
    installed, missing = closure(setup_requirements("standard"), skip=TORCH)
    no_deps, missing_no_deps = closure(install_sh_packages(), follow=False, skip=TORCH)
    assert not missing | missing_no_deps, f"not installed, cannot follow their requirements: {missing}; run install.sh"
    assert {"simpleitk", "pydicom", "highdicom", "scipy", "deepbet", "fill-voids"} <= installed | no_deps
    assert sorted(n for n in installed | no_deps if CUDA_PACKAGE.match(n)) == []


def test_the_check_finds_the_cuda_packages_of_the_deploy_extra():
    """The MONAI Deploy App SDK (the tests' install) pulls Holoscan, CuPy and cuda-python: what the check above
    would report, had it come into the user install."""
    installed, _ = closure(setup_requirements("deploy"), skip=TORCH)
    assert {"holoscan", "cupy"} & {n.split("-cu")[0].split("-cuda")[0] for n in installed}
    assert any(CUDA_PACKAGE.match(n) for n in installed)
