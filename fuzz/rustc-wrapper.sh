#!/usr/bin/env bash
# RUSTC_WRAPPER for fuzz/run.sh: keeps the SanitizerCoverage flags only on the crates the fuzz
# targets execute (this repository's crates and the parsers they call). The HTTP, TLS, async and
# keyring stacks are linked but never run by a target, so instrumenting them would only slow the
# build and add nothing the fuzzer could use.
rustc=$1
shift
name=
src=
prev=
for arg in "$@"; do
  [[ $prev == --crate-name ]] && name=$arg
  [[ $arg == *.rs ]] && src=$arg
  prev=$arg
done
case $name in
  serde | serde_core | serde_json | toml | toml_parser | toml_datetime | serde_spanned | winnow | \
    base64 | memchr | itoa | zmij | indexmap | hashbrown | url | idna | percent_encoding)
    exec "$rustc" "$@" ;;
esac
# Anything outside the registry is ours: the acr-* crates and the fuzz targets themselves.
if [[ -n $name && $src != */registry/src/* && $src != */git/checkouts/* ]]; then
  exec "$rustc" "$@"
fi
args=()
for arg in "$@"; do
  case $arg in
    -Cpasses=sancov-module | -Cllvm-args=-sanitizer-coverage-* | -Cllvm-args=-simplifycfg-*) ;;
    *) args+=("$arg") ;;
  esac
done
exec "$rustc" "${args[@]}"
