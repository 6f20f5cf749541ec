#!/usr/bin/env bash
# Prepares the GPU measurement (issue 16, item 3) on a machine without a GPU, so that a session
# lent one spends its device time measuring, not building: builds xtask with the `vulkan`
# backend (Burn's CubeCL with autotune and fusion, release profile) into `.gpu/xtask.gz`, and
# downloads Vulkan's and EGL's loaders (Debian packages, amd64) into `.gl/`, which the GPU
# machine may lack. Both folders are ignored by git; carry them to the GPU machine and run
# `xtask/gpu/measure.sh` there (see its header).
#
# Usage, from anywhere in the repository: xtask/gpu/prepare.sh
# A cold build takes about 20-25 minutes on 2 cores (Burn's wgpu stack); run no other cargo
# build meanwhile.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== cargo build --release -p xtask --features vulkan"
cargo build --release -p xtask --features vulkan
mkdir -p .gpu
# The device tool carries at most 64 MiB with the working tree: the binary is about 100 MB
# stripped, 26 MB gzipped (2026-12-01).
strip -o .gpu/xtask target/release/xtask
gzip -9 -f .gpu/xtask
ls -l .gpu/xtask.gz

echo "== Vulkan and EGL loaders (amd64 .deb files) into .gl/"
mkdir -p .gl /tmp/amd64/partial
apt_options=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
apt-get "${apt_options[@]}" update -qq
(cd .gl && apt-get "${apt_options[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 \
    libglx0 libgles2)
ls .gl
echo "ready: carry .gpu and .gl, run xtask/gpu/measure.sh on the GPU machine"
