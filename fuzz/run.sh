#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer on stable Rust, then runs each for a bounded time.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s, all targets)
#
# No nightly and no cargo-fuzz: libfuzzer-sys links libFuzzer (built from source with the C++
# compiler), and the coverage instrumentation is LLVM's SanitizerCoverage pass, which stable
# rustc runs through the stable `-C passes` and `-C llvm-args` flags. These are the flags of
# cargo-fuzz's `-s none` build; unlike it, rustc-wrapper.sh instruments only the crates a target
# runs, and the single codegen unit and link-dead-code are left out: the build takes a third of
# the time. (`cargo fuzz run -s none <target>` works on stable too, with a slower build.)
# Inputs in fuzz/regressions/<target>/ (past crashes) are replayed first; fuzz/seeds/<target>/
# starts each run, fuzz/dicts/<target>.dict (if any) names the tokens of the format, and
# fuzz/corpus/<target>/ (not committed) keeps what the fuzzer learns.
# Exits non-zero when any target crashes; the crashing input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

secs=${1:-20}
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
shift $(($# > 0 ? 1 : 0))
if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\([a-z_]*\)"$/\1/p' Cargo.toml | grep -v '^acr-fuzz$')
fi

triple=$(rustc -vV | sed -n 's/^host: //p')
flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cllvm-args=-sanitizer-coverage-stack-depth
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
  --cfg fuzzing
)
# --target keeps these flags away from build scripts and proc macros, which cannot link libFuzzer;
# the wrapper keeps them off the dependencies that no target runs.
build_start=$SECONDS
RUSTFLAGS="${flags[*]} ${RUSTFLAGS:-}" RUSTC_WRAPPER="$PWD/rustc-wrapper.sh" cargo build --release \
  --target "$triple" --target-dir target --bins
echo "fuzz: build took $((SECONDS - build_start)) s"

failed=()
summary=()
for t in "${targets[@]}"; do
  bin=target/$triple/release/$t
  [[ -x $bin ]] || { echo "fuzz: no target named $t" >&2; exit 2; }
  mkdir -p "corpus/$t" "artifacts/$t"
  log=artifacts/$t/last-run.log
  if compgen -G "regressions/$t/*" >/dev/null; then
    if ! "$bin" regressions/"$t"/* >"$log" 2>&1; then
      tail -n 30 "$log"
      echo "fuzz: $t: a past crash in fuzz/regressions/$t/ crashes again (log: fuzz/$log)"
      failed+=("$t")
      summary+=("$(printf '%-18s %-8s' "$t" REGRESS)")
      continue
    fi
  fi
  extra=()
  [[ -d seeds/$t ]] && extra+=("seeds/$t")
  [[ -f dicts/$t.dict ]] && extra+=("-dict=dicts/$t.dict")
  echo "fuzz: $t for $secs s"
  status=ok
  "$bin" "corpus/$t" "${extra[@]}" -max_total_time="$secs" -timeout=10 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1 || status=CRASH
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  size=$(find "corpus/$t" -type f | wc -l)
  if [[ $status != ok ]]; then
    grep -v '^#' "$log" | tail -n 40
    input=$(grep -o 'artifacts/[^ ]*' "$log" | tail -n 1)
    echo "fuzz: $t failed (crash, timeout or out of memory); input: fuzz/$input (log: fuzz/$log)"
    failed+=("$t")
  fi
  summary+=("$(printf '%-18s %-8s %12s execs %8s/s  corpus %5s' \
    "$t" "$status" "${execs:-?}" "${rate:-?}" "$size")")
done

printf '%s\n' "fuzz: summary (${secs} s per target)" "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
