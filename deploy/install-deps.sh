#!/usr/bin/env bash
# Installs what kpx needs to build, test and run on Debian 12, with apt.
# Does nothing (quickly) when every package is already installed.
set -euo pipefail

usage() {
  echo "usage: deploy/install-deps.sh   (as root, or as a user who may sudo)" >&2
}

die() {
  echo "install-deps.sh: $*" >&2
  exit 1
}

readonly PACKAGES=(
  build-essential cmake pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libssl-dev librocksdb-dev libspdlog-dev prometheus-cpp-dev catch2
  # RE2: linear-time matching of trust-list certificate number patterns.
  libre2-dev
  # PKCS#11 signing keys (crypto/pkcs11.h): p11-kit's pkcs11.h header, and
  # SoftHSM2, the software token the test suite keeps keys in.
  libp11-kit-dev softhsm2
  # The HTTPS console and API (gateway/http_server.h); officers' password
  # hashes and second factors (crypto/password.h).
  libcpp-httplib-dev libsodium-dev liboath-dev
  # The printed certificate (gateway/certificate_pdf.h): cairo, pango and
  # the DejaVu fonts (Latin and Arabic), libqrencode; poppler-utils and
  # zbar-tools let the tests read the PDF's QR code back.
  libcairo2-dev libpango1.0-dev libqrencode-dev fonts-dejavu-core poppler-utils zbar-tools
  openssl iproute2 ca-certificates
  # CI (deploy/test.sh, docs/testing.md): the format check, the clang
  # build with thread-safety analysis, sanitizers and libFuzzer, ninja and
  # ccache for faster rebuilds, git to list the tracked sources.
  clang-14 libclang-rt-14-dev clang-format-14 ninja-build ccache git
  # The console's tests in a real browser (tests/browser/): Debian's
  # Chromium, driven by playwright-core from npm (below).
  chromium
)
readonly BROWSER_KIT=tests/browser

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

for tool in dpkg-query apt-get; do
  command -v "$tool" >/dev/null || die "$tool not found: this script is for Debian 12"
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  as_root=(false)  # only needed if something is missing
fi

apt_install() {
  [[ ${as_root[0]:-} != false ]] || die "not root and sudo is not available: run as root"
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@"
}

# Count the distinct packages dpkg reports as installed (one dpkg-query call;
# it complains about unknown names on stderr, which is fine).
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null |
  awk '$2 == "installed" { seen[$1] = 1 } END { print length(seen) }' || true)
if [[ ${installed:-0} -eq ${#PACKAGES[@]} ]]; then
  echo "install-deps.sh: all ${#PACKAGES[@]} packages already installed"
else
  echo "install-deps.sh: installing ${#PACKAGES[@]} packages with apt-get"
  apt_install "${PACKAGES[@]}"
fi

# playwright-core, at the version package-lock.json pins, for the browser
# tests; Node.js and npm from Debian if the machine has none.
if [[ ! -d $repo/$BROWSER_KIT/node_modules/playwright-core ]]; then
  command -v npm >/dev/null || apt_install nodejs npm
  echo "install-deps.sh: playwright-core from npm into $BROWSER_KIT/node_modules"
  (cd "$repo/$BROWSER_KIT" && npm ci --no-audit --no-fund --loglevel=error)
fi
