#!/usr/bin/env bash
# kpx in one command: installs the build dependencies, builds kpx, starts a
# three-node federation (Botswana, United Arab Emirates, European Union) on
# loopback, and walks one Kimberley Process certificate from Botswana to the
# EU: submitted, delivered, confirmed, and checked in both ledgers.
# Then it adds an officer at BW and one at EU and prints their console
# addresses and credentials; from a terminal the nodes keep running until
# Enter is pressed, so that the console can be tried in a browser. The
# nodes are stopped on exit; their keys, ledgers and logs stay in the
# scratch folder.
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/quickstart.sh [SCRATCH_DIR]   (as root on Debian 12, or with sudo)
  SCRATCH_DIR  fresh folder for keys, ledgers and logs (default: mktemp -d)
  env: KPX_JOBS=N       parallel build jobs (default 2)
       KPX_SKIP_BUILD=1 skip apt and the build; use the kpxd and kpxctl in
                        KPX_BIN_DIR (default <repo>/build/gateway)
       KPX_QUICKSTART_STOP=1 stop the nodes at the end even from a terminal
EOF
}

readonly STATE_TIMEOUT=20 # seconds for each wait on a certificate's state

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
readonly here repo

section() {
  printf '\n== %s ==\n' "$*"
}

die() {
  echo "quickstart.sh: FAILED: $*" >&2
  exit 1
}

indent() {
  sed 's/^/    /'
}

case ${1:-} in
  -h | --help)
    usage
    exit 0
    ;;
  -*)
    usage
    exit 2
    ;;
esac
[[ $# -le 1 ]] || {
  usage
  exit 2
}

jobs=${KPX_JOBS:-2}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "KPX_JOBS must be a positive number, not '$jobs'"
export KPX_BIN_DIR=${KPX_BIN_DIR:-$repo/build/gateway}
kpxctl=$KPX_BIN_DIR/kpxctl

# ---- 1, 2: dependencies and build ----------------------------------------------

if [[ ${KPX_SKIP_BUILD:-0} == 1 ]]; then
  section "1-2/6 Skipping apt and the build (KPX_SKIP_BUILD=1)"
else
  section "1/6 Installing build dependencies with apt"
  "$here/install-deps.sh" || die "could not install the dependencies"

  section "2/6 Building kpx into $repo/build (-j$jobs)"
  cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo ||
    die "cmake could not configure the build"
  cmake --build "$repo/build" -j "$jobs" || die "the build failed"
fi
for tool in kpxd kpxctl; do
  [[ -x $KPX_BIN_DIR/$tool ]] || die "$KPX_BIN_DIR/$tool is missing after the build"
done

# ---- 3: federation ---------------------------------------------------------------

if [[ $# -eq 1 ]]; then
  scratch=$1
  mkdir -p -- "$scratch"
  scratch=$(cd -- "$scratch" && pwd)
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/kpx-quickstart.XXXXXX")
fi

on_exit() {
  local rc=$?
  "$here/local-federation.sh" stop "$scratch" >/dev/null 2>&1 || true
  if ((rc != 0)); then
    echo "quickstart.sh: nodes stopped; their logs: $scratch/*/kpxd.log" >&2
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "3/6 Starting three nodes: Botswana (BW), United Arab Emirates (AE), European Union (EU)"
echo "Each node gets its own TLS CA, signing key and RocksDB ledger under $scratch;"
echo "the shared trust list names all three. (deploy/local-federation.sh, deploy/pki.sh)"
"$here/local-federation.sh" start "$scratch" BW AE EU ||
  die "the federation did not start"

# Runs kpxctl as CODE's ROLE (exporter, importer or auditor), using the
# client certificate and node address from CODE/ROLE.env.
ctl() {
  local code=$1 role=$2
  shift 2
  (
    set -a
    # shellcheck source=/dev/null
    . "$scratch/$code/$role.env"
    set +a
    exec "$kpxctl" "$@"
  )
}

# Waits until `kpxctl cert get NUMBER` at CODE (read as ROLE) lists STATE.
wait_for_state() {
  local code=$1 role=$2 number=$3 state=$4
  local out="" deadline=$((SECONDS + STATE_TIMEOUT))
  while ((SECONDS < deadline)); do
    if out=$(ctl "$code" "$role" cert get "$number" 2>&1) && grep -qw -- "$state" <<<"$out"; then
      echo "  $code: $state"
      return 0
    fi
    sleep 0.5
  done
  echo "  last 'kpxctl cert get $number' at $code said:" >&2
  indent <<<"$out" >&2
  die "$code did not show $number as $state within ${STATE_TIMEOUT}s"
}

# ---- 4: submit -------------------------------------------------------------------

number="BW-$(date -u +%Y%m%d-%H%M%S)-$(printf '%04d' $((RANDOM % 10000)))"
issued_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
expires_at=$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)
cert=$scratch/certificate-$number.json
sed -e "s/@NUMBER@/$number/" -e "s/@ISSUED_AT@/$issued_at/" \
  -e "s/@EXPIRES_AT@/$expires_at/" "$here/examples/certificate.json" >"$cert"
if grep -q '@[A-Z_]*@' "$cert"; then
  die "$cert still has a placeholder"
fi

# Reads "KEY": "DIGITS" from the certificate (the int64 totals).
total() {
  sed -n "s/.*\"$1\": *\"\\([0-9]*\\)\".*/\\1/p" "$cert"
}
carats=$(total totalCaratsHundredths)
cents=$(total totalValueUsdCents)
parcels=$(sed -n 's/.*"numberOfParcels": *\([0-9]*\).*/\1/p' "$cert")

section "4/6 Botswana's exporter submits certificate $number"
echo "  BW -> EU, $parcels parcels of rough diamonds in 3 HS-code lines," \
  "$((carats / 100)).$(printf '%02d' $((carats % 100))) ct," \
  "USD $((cents / 100)).$(printf '%02d' $((cents % 100)))"
echo "  issued $issued_at, expires $expires_at; file: $cert"
echo "  \$ kpxctl cert submit $cert    (as BW-exporter)"
ctl BW exporter cert submit "$cert" | indent || die "kpxctl cert submit was refused"

# ---- 5: delivery -----------------------------------------------------------------

section "5/6 BW's node signs the certificate and delivers it to EU's node"
echo "  waiting for BW to record the delivery receipt and EU to record the certificate..."
wait_for_state BW exporter "$number" DELIVERED
wait_for_state EU importer "$number" RECEIVED

# ---- 6: confirmation -------------------------------------------------------------

section "6/6 The EU's importing authority confirms the shipment arrived"
echo "  \$ kpxctl cert confirm $number --as-declared    (as EU-importer)"
ctl EU importer cert confirm "$number" --as-declared | indent || die "kpxctl cert confirm was refused"
echo "  waiting for the signed import confirmation to reach BW..."
wait_for_state BW exporter "$number" CONFIRMED

# ---- results ---------------------------------------------------------------------

section "The certificate's journey, as BW's ledger records it"
ctl BW exporter cert get "$number" | indent || die "kpxctl cert get failed at BW"

section "Ledger checks (hash chains re-verified by each Participant's auditor)"
for code in BW EU; do
  echo "  $code:"
  ctl "$code" auditor ledger verify | indent || die "ledger verify failed at $code"
done

section "Operations: BW's node answers a standard health check and a Prometheus scrape"
echo "  $ kpxctl node health    (grpc.health.v1, as BW-auditor)"
ctl BW auditor node health | indent || die "BW's node is not SERVING"
metrics_port=$(sed -n 's/^metrics_listen: "127\.0\.0\.1:\([0-9]*\)"$/\1/p' "$scratch/BW/node.textpb")
[[ -n $metrics_port ]] || die "BW's node.textpb names no metrics port"
echo "  $ GET http://127.0.0.1:$metrics_port/metrics    (a few of the samples)"
exec 3<>"/dev/tcp/127.0.0.1/$metrics_port" || die "cannot reach BW's metrics endpoint"
printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
scrape=$(cat <&3)
exec 3<&-
grep -q '^kpx_ledger_head_sequence ' <<<"$scrape" || die "the metrics scrape has no kpx samples"
grep -E '^kpx_(ledger_head_sequence|outbox_depth|node_healthy|messages_sent_total|messages_received_total)|^kpx_certificates\{state="CONFIRMED"\}' \
  <<<"$scrape" | indent

section "The console: officers sign in from a browser (docs/console.md)"
# Adds an officer at CODE as its operator; prints "PASSWORD SECRET".
add_officer() {
  local code=$1 login=$2 name=$3 roles=$4 json
  json=$(ctl "$code" operator -o json officer add "$login" --name "$name" --office HQ \
    --roles "$roles") || die "kpxctl officer add $login failed at $code"
  printf '%s %s\n' "$(sed -n 's/.*"password":"\([^"]*\)".*/\1/p' <<<"$json")" \
    "$(sed -n 's/.*"totpSecret":"\([^"]*\)".*/\1/p' <<<"$json")"
}
console_url() {
  echo "https://127.0.0.1:$(sed -n 's/^console_listen: "127\.0\.0\.1:\([0-9]*\)"$/\1/p' \
    "$scratch/$1/node.textpb")/console/"
}
read -r bw_password bw_secret < <(add_officer BW k.mokgosi "K. Mokgosi" EXPORTER)
read -r eu_password eu_secret < <(add_officer EU a.peeters "A. Peeters" IMPORTER)
[[ -n $bw_secret && -n $eu_secret ]] || die "kpxctl officer add printed no credentials"
bw_url=$(console_url BW)
eu_url=$(console_url EU)
bw_hostport=${bw_url#https://}
bw_hostport=${bw_hostport%%/*}
sign_in_page=$(printf 'GET /console/sign-in HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' |
  openssl s_client -quiet -connect "$bw_hostport" 2>/dev/null | head -1 || true)
sign_in_page=${sign_in_page%$'\r'}
[[ $sign_in_page == "HTTP/1.1 200 OK" ]] ||
  die "BW's console did not answer its sign-in page: '$sign_in_page'"
cat <<EOF
  BW (exporting): $bw_url
     officer k.mokgosi  password $bw_password  second factor $bw_secret
  EU (importing): $eu_url
     officer a.peeters  password $eu_password  second factor $eu_secret
  The code to sign in with: add the second factor to an authenticator app, or
    $kpxctl officer code SECRET
  The browser warns about the certificate: it comes from this federation's own
  CA ($scratch/BW/ca.pem); accept it for 127.0.0.1.
EOF

section "Done"
cat <<EOF
Certificate $number went from Botswana to the EU and was confirmed;
both ledgers verify. Keys, ledgers and logs stay in
  $scratch
To run a federation yourself:
  deploy/local-federation.sh start DIR BW AE EU
  set -a; . DIR/BW/exporter.env; set +a; $kpxctl cert list
  deploy/local-federation.sh stop DIR
EOF
if [[ -t 0 && ${KPX_QUICKSTART_STOP:-0} != 1 ]]; then
  read -r -p "The nodes keep running for the console. Press Enter to stop them. " _ || true
fi
