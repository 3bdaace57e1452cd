#!/usr/bin/env bash
# The tests' install, after scripts/install.sh (the README's second command and CI, .ci/run): pytest and the
# clients the tests drive (MONAI Deploy App SDK, MONAI Label), and the comparison packages of the benchmarks.
# Add a line here for anything a test needs; keep it out of scripts/install.sh (the user install).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q -e ".[test,deploy,ct,anatomy,plot]"
# memcnn and iunets (engine="memcnn", the benchmarks' comparison) and MONAI Label declare torchvision, which does
# not import beside torch 2.13.0 and none of what the tests use needs it: install them without their
# dependencies, and MONAI Label's other requirements from scripts/monailabel_requirements.txt (its list, less
# torchvision and sam2). The constraint keeps torch, MONAI and NumPy as scripts/install.sh left them.
python -m pip install -q --no-deps "memcnn==1.5.2" "iunets==0.1" "monailabel==0.8.5" "pydicom-seg==0.4.1"
constraints="$(mktemp)"
python -m pip freeze | grep -iE '^(torch|monai|numpy)==' > "$constraints"
python -m pip install -q -r scripts/monailabel_requirements.txt -c "$constraints"
rm -f "$constraints"
