#!/usr/bin/env bash
# kpx's CI: installs the build dependencies, then runs every safety net as
# a stage, each with a header and its wall time, and a table of all stages
# at the end (docs/testing.md):
#
#   format      clang-format --dry-run --Werror over every tracked *.cc/*.h
#   build       gcc build into build/ (RelWithDebInfo)
#   test        the whole CTest suite on that build
#   asan-build  clang build into build-asan/: -Wthread-safety as errors,
#               ASan + LSan + UBSan, and the libFuzzer targets (KPX_FUZZ)
#   asan-test   the whole CTest suite on the sanitizer build (kpxd and
#               kpxctl run by the tests are the sanitizer-built ones)
#   fuzz        each fuzzer replays its seed corpus, then fuzzes for
#               KPX_FUZZ_SECONDS (a fresh corpus in a temporary folder)
#
# Every stage runs (one whose build failed is reported as skipped); the
# script exits non-zero if any stage failed.
set -uo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/test.sh [STAGE...]   (as root on Debian 12, or with sudo)
  stages: format build test asan-build asan-test fuzz (default: all)
  env: KPX_JOBS=N           parallel build jobs (default 2)
       KPX_FUZZ_SECONDS=N   fuzzing time per target (default 10)
       ccache is used when installed (CCACHE_DISABLE=1 to turn it off)
EOF
}

die() {
  echo "test.sh: $*" >&2
  exit 2
}

readonly ALL_STAGES=(format build test asan-build asan-test fuzz)
stages=()
for arg in "$@"; do
  case $arg in
    -h | --help)
      usage
      exit 0
      ;;
    format | build | test | asan-build | asan-test | fuzz) stages+=("$arg") ;;
    *)
      usage
      exit 2
      ;;
  esac
done
((${#stages[@]})) || stages=("${ALL_STAGES[@]}")

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
readonly here repo
jobs=${KPX_JOBS:-2}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "KPX_JOBS must be a positive number, not '$jobs'"
fuzz_seconds=${KPX_FUZZ_SECONDS:-10}
[[ $fuzz_seconds =~ ^[1-9][0-9]*$ ]] ||
  die "KPX_FUZZ_SECONDS must be a positive number, not '$fuzz_seconds'"
readonly FUZZERS=(fuzz_receive fuzz_deliver_response fuzz_evidence fuzz_trust_lists fuzz_certificate_json fuzz_text_config fuzz_pem fuzz_text fuzz_http_api)

# Sanitizer settings for everything the sanitizer build runs, child
# processes (kpxd, kpxctl) included.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:check_initialization_order=1:strict_string_checks=1:detect_odr_violation=2
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$repo/tests/lsan.supp:print_suppressions=0

# ---- stage bookkeeping

declare -A result seconds
run_stage() {  # run_stage NAME FUNCTION
  local name=$1 start rc
  echo
  echo "==== stage $name ===="
  start=$(date +%s.%N)
  "$2"
  rc=$?
  seconds[$name]=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if ((rc == 0)); then result[$name]=passed; else result[$name]="FAILED ($rc)"; fi
  echo "==== stage $name: ${result[$name]} in ${seconds[$name]} s ===="
}
skip_stage() {  # skip_stage NAME WHY
  echo
  echo "==== stage $1: skipped ($2) ===="
  result[$1]="skipped ($2)"
  seconds[$1]=0.0
}
wanted() {
  local s
  for s in "${stages[@]}"; do [[ $s == "$1" ]] && return 0; done
  return 1
}

launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

# ---- stages

stage_deps() { "$here/install-deps.sh"; }

stage_format() {
  local tool files bad=()
  tool=$(command -v clang-format-14 || command -v clang-format) || {
    echo "clang-format not found" >&2
    return 1
  }
  if git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
    mapfile -t files < <(git -C "$repo" ls-files -- '*.cc' '*.h')
  else
    mapfile -t files < <(cd "$repo" && find . -name build\* -prune -o \( -name '*.cc' -o -name '*.h' \) -print)
  fi
  echo "$tool --dry-run --Werror over ${#files[@]} files"
  local f
  for f in "${files[@]}"; do
    "$tool" --dry-run --Werror "$repo/$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if ((${#bad[@]})); then
    echo "not formatted with .clang-format (fix: clang-format -i FILE):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    return 1
  fi
  echo "all ${#files[@]} files formatted"
}

stage_build() {
  cmake -S "$repo" -B "$repo/build" "${generator[@]}" "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
    cmake --build "$repo/build" -j "$jobs"
}

run_ctest() {  # run_ctest BUILD-DIR
  local log=$1/ctest.log rc=0
  ctest --test-dir "$1" --output-on-failure --no-tests=error -j "$jobs" 2>&1 | tee "$log" || rc=$?
  # CTest's own closing lines: the pass rate and the list of failed tests.
  echo "---- summary ($1)"
  sed -n -e '/No tests were found/p' -e '/tests passed, /,$p' "$log"
  ((rc == 0)) || echo "ctest exit $rc; full output in $log" >&2
  return "$rc"
}

stage_test() { run_ctest "$repo/build"; }

stage_asan_build() {
  local cxx
  cxx=$(command -v clang++-14 || command -v clang++) || {
    echo "clang++ not found" >&2
    return 1
  }
  # -O1 with line tables only: readable sanitizer stacks at a fraction of
  # the cost of -O0 -g (docs/testing.md has the measurements).
  cmake -S "$repo" -B "$repo/build-asan" "${generator[@]}" "${launcher[@]}" \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=Debug \
    "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -gline-tables-only" \
    -DKPX_SANITIZE=ON -DKPX_FUZZ=ON &&
    cmake --build "$repo/build-asan" -j "$jobs"
}

stage_asan_test() { run_ctest "$repo/build-asan"; }

stage_fuzz() {
  local dir=$repo/build-asan/tests/fuzz artifacts=$repo/build-asan/fuzz-artifacts
  local work failed=() f
  work=$(mktemp -d "${TMPDIR:-/tmp}/kpx-fuzz-XXXXXX") || return 1
  mkdir -p "$artifacts"
  for f in "${FUZZERS[@]}"; do
    local seeds=$repo/tests/fuzz/corpus/$f
    echo "---- $f: replaying $(find "$seeds" -type f | wc -l) seeds"
    if ! TMPDIR=$work "$dir/$f" -runs=0 -artifact_prefix="$artifacts/$f-" "$seeds" \
      >"$work/$f.replay.log" 2>&1; then
      tail -n 60 "$work/$f.replay.log"
      failed+=("$f (seed replay)")
      continue
    fi
    echo "---- $f: fuzzing for ${fuzz_seconds} s"
    mkdir -p "$work/corpus-$f"
    if ! TMPDIR=$work "$dir/$f" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 \
      -timeout=30 -print_final_stats=1 -artifact_prefix="$artifacts/$f-" \
      "$work/corpus-$f" "$seeds" >"$work/$f.log" 2>&1; then
      tail -n 80 "$work/$f.log"
      failed+=("$f (see $artifacts)")
      continue
    fi
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "$work/$f.log" |
      tr '\n' ' '
    echo "corpus $(find "$work/corpus-$f" -type f | wc -l) new inputs"
  done
  rm -rf "$work"
  if ((${#failed[@]})); then
    echo "fuzzers that found a problem: ${failed[*]}" >&2
    echo "reproduce: $dir/FUZZER ARTIFACT (docs/testing.md)" >&2
    return 1
  fi
}

# ---- run

run_stage deps stage_deps
[[ ${result[deps]} == passed ]] || {
  echo "test.sh: cannot install the build dependencies" >&2
  exit 1
}
order=(deps)
for s in "${ALL_STAGES[@]}"; do
  wanted "$s" || continue
  order+=("$s")
  case $s in
    format) run_stage format stage_format ;;
    build) run_stage build stage_build ;;
    test)
      if wanted build && [[ ${result[build]} != passed ]]; then
        skip_stage test "build failed"
      else
        run_stage test stage_test
      fi
      ;;
    asan-build) run_stage asan-build stage_asan_build ;;
    asan-test | fuzz)
      if wanted asan-build && [[ ${result[asan-build]} != passed ]]; then
        skip_stage "$s" "asan-build failed"
      else
        run_stage "$s" "stage_${s//-/_}"
      fi
      ;;
  esac
done

echo
echo "==== stage times ===="
failures=0
total=0
for s in "${order[@]}"; do
  printf '  %-11s %8s s  %s\n' "$s" "${seconds[$s]}" "${result[$s]}"
  total=$(awk -v a="$total" -v b="${seconds[$s]}" 'BEGIN { printf "%.1f", a + b }')
  [[ ${result[$s]} == passed ]] || failures=$((failures + 1))
done
printf '  %-11s %8s s\n' total "$total"
echo "stages: $((${#order[@]} - failures)) passed, $failures failed"
if ((failures == 0)); then
  echo "test.sh: all stages passed"
  exit 0
fi
echo "test.sh: FAILED: $failures stage(s) did not pass" >&2
exit 1
