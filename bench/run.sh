#!/usr/bin/env bash
# Measures warm/cold `get`, agent memory and socket throughput (see examples/bench.rs).
# Usage: bench/run.sh [RUNS]   — needs root (the fakes listen on 127.x.y.z:443) and a C compiler;
# the ECR peer is timed when Debian's amazon-ecr-credential-helper is installed (scripts/test
# installs it). The exec'd probes are timed by bench/runner.c, round-robin, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
# The bench program first: a cargo build of the root package after scripts/build could put the
# dynamically linked client back in target/release.
cargo build --release --locked --example bench
scripts/build
ls -l target/release/docker-credential-acr target/release/docker-credential-acr-engine
size target/release/docker-credential-acr
# scripts/build links the client statically on Linux with glibc: no program interpreter.
if [ "$(uname -s)" = Linux ] && readelf -lW target/release/docker-credential-acr | grep -q INTERP; then
    echo "bench/run.sh: the client is linked dynamically (scripts/build links it statically)" >&2
    exit 1
fi
# The client links no engine code: no tokio, reqwest, rustls or zbus symbol in it.
if strings target/release/docker-credential-acr | grep -E '(tokio|reqwest|rustls|zbus)-[0-9]' >/dev/null; then
    echo "bench/run.sh: the client binary links engine code" >&2
    exit 1
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(date -u +%F)"
target/release/examples/bench "${1:-300}"
