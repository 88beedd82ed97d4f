#!/usr/bin/env bash
# Build (once) the suite's Python environment and print its python's path on stdout.
#
# The environment lives outside the checkout, under
#   ${SUITE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mamba-ablation-suite}/envs/<key>
# where <key> hashes requirements/pins.txt, SETUP_VERSION (bump it when the install steps below
# change what gets installed) and the base interpreter, so any change of pins builds a fresh
# environment beside the old one. A stamp file is written only after a
# complete install: an interrupted install is wiped and redone, never half-used.
#
# mmcv's built wheel is kept in wheels/mmcv-<ver>_torch-<ver>_<cpu|cuXY>_<pyXY>/: pip's own wheel
# cache keys only by the source archive and would hand back a wheel built for another torch.
#
# SUITE_PYTHON=/path/to/python: build on top of that interpreter (its torch, e.g. a CUDA build on
# a cluster, is used as is: the venv sees its site-packages and phase 1 is skipped).
# Progress goes to stderr; each phase's full pip output goes to <env>.log.
#
# --print-path: print where the environment's python is, or will be once built (the same key and
# cache as above), and exit; nothing is built or written.
set -euo pipefail
SETUP_VERSION=1

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
pins="$root/requirements/pins.txt"
# The environment's pins: pins.txt above its optional section (the trackers of --vis, installed
# on first use by runs/tracking/tracker_runs.py), which is left out of the key and of every install here.
env_pins() { sed '/^# --- optional/,$d' "$pins"; }
cache=${SUITE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mamba-ablation-suite}
base_py=${SUITE_PYTHON:-}
if [ -z "$base_py" ]; then
  base_py=$(command -v python3.11 || true)
  [ -n "$base_py" ] || { echo "setup: python3.11 not found; install it or set SUITE_PYTHON" >&2; exit 1; }
fi
"$base_py" -c 'import sys; assert sys.version_info[:2] >= (3, 9)' 2>/dev/null ||
  { echo "setup: $base_py is not a usable Python (need >= 3.9)" >&2; exit 1; }

key=$( { env_pins; echo "setup v$SETUP_VERSION"; echo "${SUITE_PYTHON:+$("$base_py" -c 'import sys,torch; print(sys.executable, torch.__version__)')}"; "$base_py" -V; } | sha256sum | cut -c1-12)
env_dir="$cache/envs/$key"
log="$env_dir.log"
py="$env_dir/bin/python"
if [ "${1:-}" = --print-path ]; then
  echo "$py"
  exit 0
fi

if [ -f "$env_dir/.complete" ]; then
  echo "$py"
  exit 0
fi

mkdir -p "$cache/envs" "$cache/wheels"
# One installer at a time per environment (two shells running setup at once).
exec 9>"$env_dir.lock"
flock 9
if [ -f "$env_dir/.complete" ]; then echo "$py"; exit 0; fi

start=$SECONDS
say() { printf '[setup %4ds] %s\n' $((SECONDS - start)) "$*" >&2; }
pin() { env_pins | grep -v 'build-only' | sed -n "s/^$1==\([^ ]*\).*$/\1/p"; }
build_pin() { env_pins | sed -n "s/^$1==\([^ ]*\) *# build-only.*$/\1/p"; }
run_logged() {
  # Run a command with its output in the log; on failure show the log's tail and stop.
  if ! "$@" >>"$log" 2>&1; then
    echo "setup: FAILED: $*" >&2
    tail -n 40 "$log" >&2
    echo "setup: full log: $log" >&2
    exit 1
  fi
}
# Constraints for every pip call: the pins, minus torch (phase 1 owns it; SUITE_PYTHON brings its own).
constraints="$env_dir.constraints.txt"

say "building environment $env_dir (log: $log)"
rm -rf "$env_dir"
: >"$log"
if [ -n "${SUITE_PYTHON:-}" ]; then
  "$base_py" -m venv --system-site-packages "$env_dir"
else
  "$base_py" -m venv "$env_dir"
fi
env_pins | grep -v -E '^(torch|torchvision)==|build-only' >"$constraints"
pip_install() { run_logged "$py" -m pip install --disable-pip-version-check -c "$constraints" "$@"; }

say "phase 1/6: torch $(pin torch), torchvision $(pin torchvision)"
run_logged "$py" -m pip install --disable-pip-version-check --upgrade "pip==24.3.1"
if [ -z "${SUITE_PYTHON:-}" ]; then
  pip_install "torch==$(pin torch)" "torchvision==$(pin torchvision)"
fi
read -r torch_ver cuda_tag < <("$py" -c '
import torch
cuda = torch.cuda.is_available() and torch.version.cuda
print(torch.__version__.split("+")[0], ("cu" + torch.version.cuda.replace(".", "")) if cuda else "cpu")')
say "torch $torch_ver, ops for: $cuda_tag"

say "phase 2/6: build tools"
pip_install setuptools wheel ninja psutil numpy

mmcv_ver=$(pin mmcv)
pytag=$("$py" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
wheel_dir="$cache/wheels/mmcv-${mmcv_ver}_torch-${torch_ver}_${cuda_tag}_${pytag}"
if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
  say "phase 3/6: building mmcv $mmcv_ver with ops from source (11-20 min on 2 cores; once per torch version)"
  build=$(mktemp -d)
  run_logged "$py" -m pip install --disable-pip-version-check "setuptools==$(build_pin setuptools)"
  # --no-build-isolation: mmcv's setup.py imports torch to decide which ops to compile.
  run_logged "$py" -m pip download --no-deps --no-binary :all: --no-build-isolation "mmcv==$mmcv_ver" -d "$build"
  tar -xzf "$build"/mmcv-"$mmcv_ver".tar.gz -C "$build"
  # torch >= 2.14's headers require C++20; mmcv 2.1.0 hard-codes -std=c++17 (build fails with
  # "C++20 or later compatible compiler is required").
  if "$py" -c 'import sys, torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 14))'; then
    sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-$mmcv_ver/setup.py"
  fi
  ( cd "$build/mmcv-$mmcv_ver" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "$py" -m pip wheel --no-deps --no-build-isolation -v -w "$build/dist" . >>"$log" 2>&1 ) &
  builder=$!
  while kill -0 "$builder" 2>/dev/null; do
    sleep 30
    kill -0 "$builder" 2>/dev/null &&
      say "  ... mmcv compiling, step $(grep -o '\[[0-9]*/[0-9]*\]' "$log" | tail -n 1 || true)"
  done
  if ! wait "$builder"; then
    echo "setup: FAILED building mmcv" >&2; tail -n 40 "$log" >&2; echo "setup: full log: $log" >&2; exit 1
  fi
  mkdir -p "$wheel_dir.tmp"
  cp "$build"/dist/mmcv-*.whl "$wheel_dir.tmp/"
  rm -rf "$wheel_dir" && mv "$wheel_dir.tmp" "$wheel_dir"
  rm -rf "$build"
  pip_install setuptools
else
  say "phase 3/6: mmcv $mmcv_ver wheel from cache ($wheel_dir)"
fi
pip_install --no-deps "$wheel_dir"/mmcv-*.whl

say "phase 4/6: mmengine, mmdet, mmsegmentation, mmpretrain and the rest"
pip_install "$wheel_dir"/mmcv-*.whl mmengine mmdet mmsegmentation mmpretrain \
  opencv-python ftfy regex pandas matplotlib tabulate PyWavelets pycocotools scipy pytest

say "phase 5/6: mamba-ssm $(pin mamba-ssm)"
pip_install einops transformers huggingface_hub packaging
# --no-cache-dir: pip would otherwise hand a kernel-less wheel built here to a GPU machine later.
# MAMBA_FORCE_BUILD: build from source rather than fetch a prebuilt wheel.
if [ "$cuda_tag" = cpu ] || ! command -v nvcc >/dev/null; then
  export MAMBA_SKIP_CUDA_BUILD=TRUE
fi
MAMBA_FORCE_BUILD=TRUE pip_install --no-cache-dir --no-build-isolation --no-deps "mamba-ssm==$(pin mamba-ssm)"

say "phase 6/6: test references (official MambaVision package, timm)"
pip_install timm
pip_install --no-deps "mambavision==$(pin mambavision)"

run_logged "$py" -c 'import torch, torchvision, mmcv, mmcv.ops, mmdet, mmseg, mmpretrain, pandas, pywt, pycocotools'
touch "$env_dir/.complete"
say "environment ready in $((SECONDS - start)) s: $py"
echo "$py"
