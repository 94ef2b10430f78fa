#!/usr/bin/env bash
# Measures warm/cold `get`, agent memory and socket throughput (see examples/bench.rs).
# Usage: bench/run.sh [RUNS]   — needs root (the fakes listen on 127.x.y.z:443) and a C compiler;
# the ECR peer is timed when Debian's amazon-ecr-credential-helper is installed (scripts/test
# installs it). The exec'd probes are timed by bench/runner.c, round-robin, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin docker-credential-acr --bin docker-credential-acr-engine
ls -l target/release/docker-credential-acr target/release/docker-credential-acr-engine
size target/release/docker-credential-acr
# The client links no engine code: no tokio, reqwest, rustls or zbus symbol in it.
if nm -D target/release/docker-credential-acr | grep -iE 'tokio|reqwest|rustls|zbus' >/dev/null ||
    strings target/release/docker-credential-acr | grep -E '(tokio|reqwest|rustls|zbus)-[0-9]' >/dev/null; then
    echo "bench/run.sh: the client binary links engine code" >&2
    exit 1
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(date -u +%F)"
cargo run --release --locked --example bench -- "${1:-300}"
