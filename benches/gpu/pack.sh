#!/usr/bin/env bash
# Here (no GPU needed): builds the release binary and packs what the lent GPU machine needs into
# two ignored folders, .gpu (the stripped, zstd-compressed binary, ~13 MB) and .gl (the Vulkan
# loader and GL dispatch libraries from ../shared/gpu). Then, with the device tool:
#   run  command="bash benches/gpu/run.sh"  carry=[".gpu", ".gl"]
# See docs/gpu.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cargo build --release --bin biofeedback
mkdir -p .gpu .gl
strip -o .gpu/biofeedback target/release/biofeedback
zstd -19 -f -q --rm .gpu/biofeedback
cp ../shared/gpu/*.deb .gl/
ls -la .gpu .gl
