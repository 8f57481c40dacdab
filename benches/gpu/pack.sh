#!/usr/bin/env bash
# Here (no GPU needed): builds the release binary three ways and packs what the lent GPU machine
# needs into three ignored folders: .gpu (stripped, xz-compressed binaries (the GPU machine has no zstd), 12-16 MB each, about
# 48 MB together: within the 64 MiB a device call carries, with the working tree) and .gl
# (the Vulkan loader and GL dispatch libraries from ../shared/gpu) and .data (a 10 MB image-folder
# sample for the `train` section). Then, with the device tool:
#   run  command="bash benches/gpu/run.sh"  carry=[".gpu", ".gl", ".data"]
# The builds (each Burn feature set is compiled once, then cached in target/):
#   biofeedback          the default: Burn's kernel fusion on GPUs (feature `fusion`)
#   biofeedback-plain    --no-default-features: no fusion (every element-wise op its own kernel)
#   biofeedback-vulkan   --features vulkan: fusion and SPIR-V with cooperative matrices
# See docs/gpu.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p .gpu .gl
pack() {
  local name=$1
  shift
  cargo build --release -p biofeedback-trainer --bin biofeedback "$@"
  strip -o ".gpu/$name" target/release/biofeedback
  xz -9 -T0 -f ".gpu/$name"
}
pack biofeedback
pack biofeedback-plain --no-default-features
# SPIR-V's build has not been checked on every machine: without it run.sh measures the other two.
pack biofeedback-vulkan --features vulkan || echo "pack.sh: the vulkan build failed; packed the other two" >&2
# Cached: target/release/biofeedback is the default build again.
cargo build --release -p biofeedback-trainer --bin biofeedback
cp ../shared/gpu/*.deb .gl/
# The image-folder sample (10 MB of CIFAR-10 JPEGs) for run.sh's `train` section.
mkdir -p .data && cp -r ../shared/data/cifar10-folder-sample .data/
ls -la .gpu .gl
