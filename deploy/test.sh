#!/usr/bin/env bash
# Installs the build dependencies, builds kpx into <repo>/build and runs the
# whole test suite with CTest, one test at a time. Exits with CTest's status.
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/test.sh   (as root on Debian 12, or with sudo)
  env: KPX_JOBS=N   parallel build jobs (default 2)
EOF
}

die() {
  echo "test.sh: $*" >&2
  exit 1
}

case ${1:-} in
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    usage
    exit 2
    ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
readonly here repo
jobs=${KPX_JOBS:-2}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "KPX_JOBS must be a positive number, not '$jobs'"

echo "== Installing build dependencies =="
"$here/install-deps.sh"

echo "== Building into $repo/build (-j$jobs) =="
cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$repo/build" -j "$jobs"

echo "== Running the tests =="
log=$repo/build/ctest.log
rc=0
ctest --test-dir "$repo/build" --output-on-failure --no-tests=error -j1 2>&1 |
  tee "$log" || rc=$?

echo "== Summary =="
# CTest's own closing lines: the pass rate and the list of failed tests.
sed -n -e '/No tests were found/p' -e '/tests passed, /,$p' "$log"
if ((rc == 0)); then
  echo "test.sh: all tests passed"
else
  echo "test.sh: FAILED (ctest exit $rc); full output in $log" >&2
fi
exit "$rc"
