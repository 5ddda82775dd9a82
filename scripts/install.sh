#!/usr/bin/env bash
# Installs everything ebtk needs on a fresh Debian machine: the speech engines (apt), the CPU torch wheel,
# then ebtk with its tts + dev extras, constrained so that no other torch is ever pulled in.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
missing=""
for bin in flite espeak-ng sox; do command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"; done
if [ "${EBTK_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then missing="$missing chromium"; fi
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PY=${PYTHON:-python3}
if ! $PY -c "import torch" >/dev/null 2>&1; then
  $PY -m pip install -q torch==2.13.0
fi
TV=$($PY -c "import torch; print(torch.__version__.split('+')[0])")
PIN=$(mktemp); echo "torch==$TV" > "$PIN"
$PY -m pip install -q -c "$PIN" -e ".[tts,dev]"
rm -f "$PIN"
$PY -c "import torch, ebtk; print('ebtk', ebtk.__version__, 'torch', torch.__version__)"
