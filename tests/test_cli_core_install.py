"""Every ``monai-iunet`` command works with the core install; one that needs an extra says which, exit status 2.

The commands run in one fresh interpreter whose import system hides every installed package outside the core
install (``install_requires`` of setup.cfg and their requirements, through the installed metadata: not SimpleITK,
pydicom, highdicom, matplotlib, scikit-image, nilearn, MONAI Deploy, ...) as if it were not installed.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from install_requirements import closure, setup_requirements
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]

# a meta-path finder in front of all others: the extras' packages are "not installed"; `import monai` walks its own
# subpackages, so MONAI Deploy (monai.deploy, installed into monai's folder) is hidden the way MONAI skips a package
# whose optional dependency is missing (OptionalImportError). Each command's exit status and stderr are printed as
# JSON.
CORE_INSTALL = textwrap.dedent(
    """
    import contextlib, importlib.abc, io, json, sys

    import importlib.util

    EXTRAS = set(json.loads(sys.argv[2]))

    class Missing(importlib.abc.Loader):  # found, so that probes (torch's find_spec) go on; importing fails

        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

        def exec_module(self, module):
            pass

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "monai.deploy" or name.startswith("monai.deploy."):
                raise sys.modules["monai.utils.module"].OptionalImportError(f"No module named {name!r}")
            if name.split(".")[0] in EXTRAS:
                return importlib.util.spec_from_loader(name, Missing())
            return None

    sys.meta_path.insert(0, NotInstalled())
    from monai_iunet.cli import main

    results = []
    for argv in json.loads(sys.argv[1]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                status = main(argv)
            except SystemExit as e:  # --help
                status = e.code
        results.append([status, err.getvalue()])
    print(json.dumps(results))
    """
)

WORK = [
    ["--help"],
    ["segment", "--help"],
    ["generate-exports", "--help"],
    ["plan", "--help"],
    ["evaluate", "--help"],
    ["cohort", "--help"],
    ["run", "--help"],
    ["bundle", "list"],
    ["bundle", "copy", "brats_iunet", "brats"],
    ["plan", "estimate", "--shape", "1", "4", "16", "16", "16", "--channels", "8", "16"],
    ["generate-brats", "data", "--num-cases", "1", "--size", "16"],
]
NEED_EXTRAS = {
    "clinical": [
        ["segment", "--t1", "a", "--t1ce", "b", "--t2", "c", "--flair", "d", "--output", "out"],
        ["generate-exports", "out"],
    ],
    "anatomy": [["generate-brats", "out", "--num-cases", "1", "--size", "16", "--anatomy", "mni152"]],
}


def _not_core_modules() -> list[str]:
    """Top-level modules installed here whose distributions are all outside the core install."""
    core, _ = closure(setup_requirements())
    return sorted(
        module
        for module, dists in md.packages_distributions().items()
        if module.isidentifier()
        and module not in sys.stdlib_module_names
        and module != "monai_iunet"
        and not any(canonicalize_name(d) in core for d in dists)
    )


def test_every_command_works_with_the_core_install_or_names_its_extra(tmp_path):
    commands = WORK + [argv for group in NEED_EXTRAS.values() for argv in group]
    hidden = _not_core_modules()
    assert {"SimpleITK", "pydicom", "highdicom", "matplotlib", "nilearn", "pandas"} <= set(hidden)
    assert not {"scipy", "torch", "monai", "nibabel", "numpy"} & set(hidden)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", CORE_INSTALL, json.dumps(commands), json.dumps(hidden)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    outcomes = dict(zip(map(tuple, commands), json.loads(result.stdout.strip().splitlines()[-1])))
    for argv in WORK:
        status, stderr = outcomes[tuple(argv)]
        assert status in (0, None) and "Traceback" not in stderr, (argv, stderr)
    assert (tmp_path / "brats" / "configs" / "inference.json").is_file()
    assert len(list((tmp_path / "data").glob("*/*_seg.nii.gz"))) == 1
    for extra, group in NEED_EXTRAS.items():
        for argv in group:
            status, stderr = outcomes[tuple(argv)]
            package = stderr.split("'")[1] if "'" in stderr else "?"
            assert status == 2, (argv, stderr)
            assert stderr.splitlines() == [
                f"monai-iunet {argv[0]}: error: this needs the optional package {package!r}, which the extra "
                f'[{extra}] installs: pip install "monai-iunet[{extra}]".'
            ]
    assert not (tmp_path / "out").exists()
