#!/usr/bin/env bash
# The tests' install, after scripts/install.sh (the README's second command and CI, .ci/run): pytest and the
# clients the tests drive (MONAI Deploy App SDK, MONAI Label), the comparison packages of the benchmarks, the
# official BraTS scorer and Orthanc. Add a line here for anything a test needs; keep it out of scripts/install.sh
# (the user install).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python -m pip install -q -e ".[test,deploy,ct,anatomy,plot,clinical]"
# memcnn and iunets (engine="memcnn", the benchmarks' comparison) and MONAI Label declare torchvision, which does
# not import beside torch 2.13.0 and none of what the tests use needs it: install them without their
# dependencies, and MONAI Label's other requirements from scripts/monailabel_requirements.txt (its list, less
# torchvision, sam2, numpymaxflow and pydicom-seg). The constraint keeps torch, MONAI and NumPy as they are.
python -m pip install -q --no-deps "memcnn==1.5.2" "iunets==0.1" "monailabel==0.8.5" "pydicom-seg==0.4.1"
constraints="$(mktemp)"
python -m pip freeze | grep -iE '^(torch|monai|numpy)==' > "$constraints"
python -m pip install -q -r scripts/monailabel_requirements.txt -c "$constraints"
rm -f "$constraints"
# The official BraTS scorer, for tests/brats/test_official_agreement.py only: AGPL (never a dependency of the
# package) and it pins numpy 2.2, so it gets a virtual environment of its own, run as a program by the test.
BRATS_EVALUATION_VENV="${BRATS_EVALUATION_VENV:-$PWD/.venvs/brats-evaluation}"
if [ ! -x "$BRATS_EVALUATION_VENV/bin/brats-evaluate" ]; then
    python -m venv "$BRATS_EVALUATION_VENV"
    "$BRATS_EVALUATION_VENV/bin/python" -m pip install -q "brats-evaluation==0.0.10"
fi
# A real PACS for tests/clinical (tests/clinical/orthanc_server.py): Orthanc and its DICOMweb plugin, from Debian.
# The tests start their own server on free loopback ports; the Debian service is not wanted, so it is stopped and
# disabled if the package started it. Where apt is absent, the PACS tests skip and say why.
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q orthanc orthanc-dicomweb
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet orthanc 2>/dev/null; then
        $SUDO systemctl disable --now orthanc || true
    elif command -v service >/dev/null 2>&1; then
        $SUDO service orthanc stop >/dev/null 2>&1 || true
    fi
fi
