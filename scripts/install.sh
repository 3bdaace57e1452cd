#!/usr/bin/env bash
# The README's first command: install this package with what the main job, the `monai-iunet` commands and the
# clinical path use, on a fresh CPU machine, and nothing CUDA. The tests' extras (MONAI Deploy App SDK, MONAI
# Label, memcnn, iunets, pytest, ...) are installed by scripts/install_tests.sh; CI (.ci/run) runs both.
# On a GPU machine see the README ("On a GPU"): the CUDA torch wheel first, then `pip install -e ".[standard]"`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned and CPU-only: PyPI's default Linux torch wheel pulls CUDA libraries (several GB). The CPU
# build comes from PyTorch's CPU index (TORCH_INDEX_URL); where that index cannot be reached, pip's configured
# index must serve the CPU build, which the check below enforces.
TORCH_INDEX_URL="${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"
if [ -n "$TORCH_INDEX_URL" ] && python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" "$TORCH_INDEX_URL/" 2>/dev/null; then
    python -m pip install -q "torch==2.13.0" --index-url "$TORCH_INDEX_URL"
else
    python -m pip install -q "torch==2.13.0"
fi
python -m pip install -q -e ".[standard]"
# brain extraction for whole-head studies (monai-iunet segment --skull-strip): deepbet ships its weights in the
# wheel; without --no-deps it would pull customtkinter (its GUI), which the library does not use
python -m pip install -q --no-deps "deepbet==1.0.2" "fill_voids==2.1.2" "connected-components-3d==4.1.1" \
    "fastremap==1.21.0"
python - <<'PY'
import importlib.metadata as md
import sys

import torch

cuda = sorted({d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith("nvidia-")})
if torch.version.cuda or cuda:
    sys.exit(
        f"scripts/install.sh: a CUDA build of torch ({torch.__version__}) or CUDA libraries ({', '.join(cuda)}) are "
        "installed on this CPU install; in a fresh environment, set TORCH_INDEX_URL to an index that serves the CPU "
        "torch wheel and run it again."
    )
PY
