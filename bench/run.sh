#!/usr/bin/env bash
# Measures warm/cold `get`, agent memory and socket throughput (see examples/bench.rs).
# Usage: bench/run.sh [RUNS]   — needs root (the fakes listen on 127.x.y.z:443) and a C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin docker-credential-acr
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(date -u +%F)"
cargo run --release --locked --example bench -- "${1:-300}"
