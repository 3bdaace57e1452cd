#!/usr/bin/env bash
# Install this package and everything its bundles, benchmarks, notebooks and tests use, on a fresh machine (CPU).
# The README's first command and CI (.ci/run) both call this script, so that they install the same things.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first, pinned: without the pin the extras below could pull a multi-GB CUDA build. Where the default index
# serves CUDA wheels, add: --index-url https://download.pytorch.org/whl/cpu
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[all]"
# memcnn and iunets declare torchvision, which does not import beside torch 2.13.0; neither needs it
python -m pip install -q --no-deps "memcnn==1.5.2" "iunets==0.1"
# brain extraction for whole-head studies (monai-iunet segment --skull-strip): deepbet ships its weights in the
# wheel; without --no-deps it would pull customtkinter (its GUI), which the library does not use
python -m pip install -q --no-deps "deepbet==1.0.2" "fill_voids==2.1.2" "connected-components-3d==4.1.1" \
    "fastremap==1.21.0"
