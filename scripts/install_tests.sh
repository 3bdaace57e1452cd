#!/usr/bin/env bash
# What the tests need beyond scripts/install.sh, on a fresh machine. Run after scripts/install.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The official BraTS scorer, for tests/brats/test_official_agreement.py only: AGPL (never a dependency of the
# package) and it pins numpy 2.2, so it gets a virtual environment of its own, run as a program by the test.
BRATS_EVALUATION_VENV="${BRATS_EVALUATION_VENV:-/work/venvs/evaluator}"
if [ ! -x "$BRATS_EVALUATION_VENV/bin/brats-evaluate" ]; then
    python -m venv "$BRATS_EVALUATION_VENV"
    "$BRATS_EVALUATION_VENV/bin/python" -m pip install -q "brats-evaluation==0.0.10"
fi
