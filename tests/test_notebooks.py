"""The tutorials in ``notebooks/``: each runs top to bottom in a fresh kernel and shows what its text promises.

The notebooks are stored without outputs; this module executes them in memory with nbclient (nothing is written
back; a failing cell raises ``CellExecutionError`` naming it) and then checks what they printed and drew: the
figures, and the numbers each notebook is about (reconstruction errors, gradient differences, memory ratios, Dice).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbclient
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 900
NUMBER = r"([-+]?\d*\.?\d+(?:e[-+]?\d+)?)"

#: per notebook: the fewest figures it must draw, and (pattern, low, high) for what it prints: the pattern must occur,
#: and every number it captures must lie in [low, high]
EXPECTED = {
    "01_invertible_resampling": (
        7,
        [
            (
                rf"max reconstruction error \|inverse\(forward\(x\)\) - x\|: pixel shuffle {NUMBER}, Haar {NUMBER}",
                0,
                1e-5,
            ),
            (rf"max difference to Haar after reordering: matrix {NUMBER}, channels {NUMBER}", 0, 1e-4),
            (rf"learned downsampling on the 512² image: max reconstruction error {NUMBER}", 0, 1e-5),
        ],
    ),
    "02_quick_start": (
        3,
        [
            (rf"gradient entries; relative difference {NUMBER}", 0, 1e-4),
            (rf"relative error of inverse\(forward\(z\)\): {NUMBER}", 0, 1e-4),
            (rf"mean: +TC {NUMBER} +WT {NUMBER} +ET {NUMBER}", 0.3, 1.0),
        ],
    ),
    "03_memory": (
        2,
        [
            (rf"48³: memory-efficient / ordinary autograd = {NUMBER}", 0.05, 0.95),
            (rf"64³: memory-efficient / ordinary autograd = {NUMBER}", 0.05, 0.95),
            (r"memory_efficient=True on a GPU:\n\S", 0, 0),
        ],
    ),
    "04_brats_bundle": (
        2,
        [
            (rf"Dice from the files: TC {NUMBER}  WT {NUMBER}  ET {NUMBER}", 0.3, 1.0),
            (rf"cases x 3 regions, files vs evaluation: {NUMBER}", 0, 1e-6),
            (r"predictions: \['\w+_seg\.nii\.gz'", 0, 0),
        ],
    ),
}


def test_every_notebook_has_expectations():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path):
    notebook = json.loads(path.read_text())
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{path.name} cell {index} has outputs; clear them before committing "
                "(e.g. jupyter nbconvert --clear-output --inplace)"
            )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_its_results(path: Path, monkeypatch: pytest.MonkeyPatch):
    # The kernel inherits this environment. One intra-op thread: the workloads are tiny, and on a shared CI
    # machine two oversubscribed threads are many times slower than one. Figures go to the inline backend
    # even where the CI sets MPLBACKEND=Agg.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    text = "".join(out.get("text", "") for out in outputs if out.get("output_type") == "stream")
    figures, checks = EXPECTED[path.stem]
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= figures, f"{path.name} drew {len(images)} figures, expected at least {figures}"
    for pattern, low, high in checks:
        match = re.search(pattern, text)
        assert match, f"{path.name} printed nothing matching {pattern!r}; its output:\n{text[-3000:]}"
        values = [float(v) for v in match.groups()]
        assert all(low <= v <= high for v in values), f"{path.name}: {match.group(0)!r} outside [{low}, {high}]"
