#!/usr/bin/env bash
# Generates everything a set of kpx nodes needs to run on this machine: per
# Participant a TLS CA, a node certificate, client certificates for its four
# authority clients, a message-signing key, kpxctl env files and
# node.textpb; and one trust-list.textpb naming them all. For local
# federations and tests, not for production keys (private keys are written
# unencrypted).
#
# Layout written (for each SPEC, with CODE = BW as example):
#   OUT_DIR/trust-list.textpb          kpx.v1.TrustList, version 1 (each
#                                       Participant with office HQ; EU also
#                                       ANR and PRG and an import_policy
#                                       refusing mixed, undisclosed origin)
#   OUT_DIR/BW/ca.key, ca.pem           TLS CA (EC P-256), CN "kpx CA BW"
#   OUT_DIR/BW/node.key, node.pem       node TLS identity, CN node.bw.kpx
#   OUT_DIR/BW/signing.key, signing.pub message-signing key (PKCS#8 / SPKI)
#   OUT_DIR/BW/{exporter,importer,auditor,operator}.{key,pem,env}
#                                       authority client certs (CN BW-exporter
#                                       etc., roles EXPORTER, IMPORTER,
#                                       AUDITOR, OPERATOR), kpxctl env files
#   OUT_DIR/BW/node.textpb              kpx.v1.NodeConfig
#
# A SPEC may add a fourth port, CODE:PEER_PORT:AUTH_PORT:METRICS_PORT, for
# metrics_listen "127.0.0.1:METRICS_PORT", and a fifth for console_listen
# "127.0.0.1:CONSOLE_PORT" (the HTTPS console). Without them node.textpb
# leaves metrics_listen and console_listen unset (defaults 127.0.0.1:9464
# and 127.0.0.1:8443, which only one node per machine can bind: give each
# node its own ports, or set them to "off").
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/pki.sh OUT_DIR CODE:PEER_PORT:AUTH_PORT[:METRICS_PORT[:CONSOLE_PORT]]...
  e.g. deploy/pki.sh /tmp/fed BW:7400:7401 EU:7410:7411
       deploy/pki.sh /tmp/fed BW:7400:7401:9464 EU:7410:7411:9465
  env: KPX_KEY_ALG=ed25519|ecdsa-p256   signing key algorithm (default ed25519)
EOF
}

die() {
  echo "pki.sh: $*" >&2
  exit 1
}

readonly CA_DAYS=3650  # 10 years
readonly CERT_DAYS=730 # 2 years
readonly ROLES=(exporter importer auditor operator)

here=${BASH_SOURCE[0]%/*}
[[ $here != "${BASH_SOURCE[0]}" ]] || here=.
repo=$(cd "$here/.." && pwd)
readonly repo

# Runs openssl quietly; on failure shows what it said and stops.
ssl() {
  local err
  if ! err=$(openssl "$@" 2>&1 >/dev/null); then
    die "openssl $1 failed: $err"
  fi
}

# Names for common Participant codes; others get "Participant CODE".
declare -rA PARTICIPANT_NAMES=(
  [AE]="United Arab Emirates" [AO]="Angola" [AU]="Australia" [BE]="Belgium"
  [BW]="Botswana" [CA]="Canada" [CD]="Democratic Republic of the Congo"
  [CH]="Switzerland" [CN]="China" [EU]="European Union" [GB]="United Kingdom"
  [IL]="Israel" [IN]="India" [JP]="Japan" [LS]="Lesotho" [NA]="Namibia"
  [RU]="Russian Federation" [SG]="Singapore" [SL]="Sierra Leone"
  [TZ]="Tanzania" [US]="United States of America" [ZA]="South Africa"
  [ZW]="Zimbabwe"
)

# Writes a here-document on stdin to FILE (builtins only: this machine's
# process creation is slow and pki.sh runs in tests).
write_file() {
  local content
  IFS= read -r -d '' content || true
  printf '%s' "$content" >"$1"
}

# Prints FILE as a protobuf text-format string, one quoted literal per line
# each ending in \n and indented by INDENT; adjacent literals concatenate.
textpb_string() {
  local file=$1 indent=$2 line
  while IFS= read -r line; do
    line=${line//\\/\\\\}
    line=${line//\"/\\\"}
    printf '%s"%s\\n"\n' "$indent" "$line"
  done <"$file"
}

# Checks that FILE parses as kpx.v1.MESSAGE, using protoc itself.
validate() {
  local message=$1 file=$2 err
  if ! err=$(protoc -I "$repo/proto" --encode="kpx.v1.$message" \
    kpx/v1/config.proto <"$file" 2>&1 >/dev/null); then
    die "$file is not a valid kpx.v1.$message: $err"
  fi
}

# Issues a P-256 key and certificate signed by DIR/ca: NAME.key, NAME.pem.
issue_cert() {
  local dir=$1 name=$2 cn=$3
  shift 3
  ssl req -config /dev/null -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc \
    -keyout "$dir/$name.key" -out "$dir/$name.pem" \
    -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -days "$CERT_DAYS" -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:false" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "subjectKeyIdentifier=hash" \
    -addext "authorityKeyIdentifier=keyid:always" \
    "$@"
}

# ---- arguments ---------------------------------------------------------------

if [[ $# -ge 1 && ($1 == -h || $1 == --help) ]]; then
  usage
  exit 0
fi
if [[ $# -lt 2 ]]; then
  usage
  exit 2
fi
out_arg=$1
shift

case ${KPX_KEY_ALG:-ed25519} in
  ed25519)
    genpkey_args=(-algorithm ed25519)
    alg_enum=ED25519
    ;;
  ecdsa-p256)
    genpkey_args=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256
      -pkeyopt ec_param_enc:named_curve)
    alg_enum=ECDSA_P256_SHA256
    ;;
  *) die "KPX_KEY_ALG must be ed25519 or ecdsa-p256, not '$KPX_KEY_ALG'" ;;
esac

command -v openssl >/dev/null || die "openssl not found (run deploy/install-deps.sh)"
command -v protoc >/dev/null || die "protoc not found (run deploy/install-deps.sh)"

codes=()
peer_ports=()
auth_ports=()
metrics_ports=() # "" where the SPEC gives none
console_ports=() # ditto
declare -A seen_codes=() seen_ports=()
for spec in "$@"; do
  [[ $spec =~ ^([A-Z]{2}):([0-9]{1,5}):([0-9]{1,5})(:([0-9]{1,5})(:([0-9]{1,5}))?)?$ ]] ||
    die "bad SPEC '$spec': want CODE:PEER_PORT:AUTH_PORT[:METRICS_PORT[:CONSOLE_PORT]] with a two-letter CODE, e.g. BW:7400:7401"
  code=${BASH_REMATCH[1]}
  peer=$((10#${BASH_REMATCH[2]}))
  auth=$((10#${BASH_REMATCH[3]}))
  metrics=
  [[ -z ${BASH_REMATCH[5]} ]] || metrics=$((10#${BASH_REMATCH[5]}))
  console=
  [[ -z ${BASH_REMATCH[7]} ]] || console=$((10#${BASH_REMATCH[7]}))
  [[ -z ${seen_codes[$code]:-} ]] || die "Participant $code given twice"
  seen_codes[$code]=1
  ((peer >= 1 && peer <= 65535)) || die "peer port $peer in '$spec' is out of range"
  for port in "$peer" "$auth" ${metrics:+"$metrics"} ${console:+"$console"}; do
    # 0 (authority and metrics only): any free port; the node logs the one it bound.
    ((port >= 0 && port <= 65535)) || die "port $port in '$spec' is out of range"
    ((port == 0)) && continue
    [[ -z ${seen_ports[$port]:-} ]] || die "port $port is used twice"
    seen_ports[$port]=1
  done
  codes+=("$code")
  peer_ports+=("$peer")
  auth_ports+=("$auth")
  metrics_ports+=("$metrics")
  console_ports+=("$console")
done

mkdir -p -- "$out_arg"
out=$(cd -- "$out_arg" && pwd)
readonly out
# The env files hold unquoted absolute paths, so keep them plain.
[[ $out =~ ^[A-Za-z0-9._/+@%,=-]+$ ]] ||
  die "OUT_DIR '$out' has spaces or shell metacharacters; choose a plainer path"
[[ ! -e $out/trust-list.textpb ]] ||
  die "$out/trust-list.textpb exists; refusing to overwrite a PKI"
for code in "${codes[@]}"; do
  [[ ! -e $out/$code ]] || die "$out/$code exists; refusing to overwrite its keys"
done

# ---- one Participant -----------------------------------------------------------

# Fills OUT_DIR/CODE/ with the Participant's keys, certificates, env files
# and node.textpb.
make_participant() {
  local code=$1 peer=$2 auth=$3 metrics=$4 console=$5
  local dir=$out/$code
  local server_name="node.${code,,}.kpx"

  # TLS CA: EC P-256 (Ed25519 TLS certificates are poorly supported by gRPC).
  ssl req -config /dev/null -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -noenc -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$CA_DAYS" \
    -subj "/CN=kpx CA $code" \
    -addext "basicConstraints=critical,CA:true" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"

  # Node identity: served on both listeners and presented to peers.
  issue_cert "$dir" node "$server_name" \
    -addext "subjectAltName=DNS:$server_name,DNS:localhost,IP:127.0.0.1" \
    -addext "extendedKeyUsage=serverAuth,clientAuth"

  # Authority clients (kpxctl users) and their env files.
  local role
  for role in "${ROLES[@]}"; do
    issue_cert "$dir" "$role" "$code-$role" -addext "extendedKeyUsage=clientAuth"
    write_file "$dir/$role.env" <<EOF
# kpxctl as $code-$role: set -a; . $dir/$role.env; set +a
KPX_NODE=127.0.0.1:$auth
KPX_CERT=$dir/$role.pem
KPX_KEY=$dir/$role.key
KPX_CA=$dir/ca.pem
KPX_SERVER_NAME=$server_name
EOF
  done

  # Message-signing key, and its public key in DER for the key id (below).
  ssl genpkey "${genpkey_args[@]}" -out "$dir/signing.key"
  ssl pkey -in "$dir/signing.key" -pubout -out "$dir/signing.pub"
  ssl pkey -pubin -in "$dir/signing.pub" -outform DER -out "$dir/.signing.der"

  write_file "$dir/node.textpb" <<EOF
# kpx.v1.NodeConfig for Participant $code, written by deploy/pki.sh.
# Relative paths resolve against this file's folder.
participant: "$code"
data_dir: "data"
peer_listen: "127.0.0.1:$peer"
authority_listen: "127.0.0.1:$auth"
tls_cert_file: "node.pem"
tls_key_file: "node.key"
authority_client_ca_file: "ca.pem"
signing_key_file: "signing.key"
trust_list_file: "../trust-list.textpb"
authority_name: "$code KP authority"
authority_clients { common_name: "$code-exporter" roles: EXPORTER }
authority_clients { common_name: "$code-importer" roles: IMPORTER }
authority_clients { common_name: "$code-auditor" roles: AUDITOR }
authority_clients { common_name: "$code-operator" roles: OPERATOR }
# Defaults, shown for reference:
# delivery { initial_backoff_ms: 500 max_backoff_ms: 60000 batch_size: 256 rpc_timeout_ms: 10000 stuck_after_hours: 168 }
# overdue_days: 15
EOF
  if [[ -n $metrics ]]; then
    printf 'metrics_listen: "127.0.0.1:%s"\n' "$metrics" >>"$dir/node.textpb"
  else
    printf '# metrics_listen: "127.0.0.1:9464" (default; one node per machine)\n' >>"$dir/node.textpb"
  fi
  if [[ -n $console ]]; then
    printf 'console_listen: "127.0.0.1:%s"\n' "$console" >>"$dir/node.textpb"
  else
    printf '# console_listen: "127.0.0.1:8443" (default; one node per machine)\n' >>"$dir/node.textpb"
  fi
  validate NodeConfig "$dir/node.textpb"
}

# Prints the trust list's block for the Participant at index I of codes.
trust_list_block() {
  local i=$1
  local code=${codes[$i]}
  local dir=$out/$code
  echo "participants {"
  echo "  code: \"$code\""
  echo "  name: \"${PARTICIPANT_NAMES[$code]:-Participant $code}\""
  echo "  endpoint: \"127.0.0.1:${peer_ports[$i]}\""
  echo "  tls_server_name: \"node.${code,,}.kpx\""
  echo "  tls_ca_pem:"
  textpb_string "$dir/ca.pem" "    "
  echo "  status: ACTIVE"
  # Issuing offices (certificates name one in issuing_office): HQ for every
  # Participant; the EU has several authorities, two of them listed here.
  echo "  offices { code: \"HQ\" name: \"$code KP authority\" }"
  if [[ $code == EU ]]; then
    echo "  offices { code: \"ANR\" name: \"Antwerp Diamond Office (FPS Economy)\" }"
    echo "  offices { code: \"PRG\" name: \"Prague KP authority (Customs)\" }"
    # Since 1 March 2025 the EU refuses mixed, undisclosed origin and wants
    # the origin of mixed lines broken down (../shared/KP.md).
    echo "  import_policy { refuse_mixed_undisclosed: true require_origin_shares: true }"
  fi
  echo "  signing_keys {"
  echo "    key_id: \"${key_ids[$i]}\""
  echo "    algorithm: $alg_enum"
  echo "    public_key_pem:"
  textpb_string "$dir/signing.pub" "      "
  echo "  }"
  echo "}"
}

# ---- main ------------------------------------------------------------------------

dirs=()
for code in "${codes[@]}"; do
  dirs+=("$out/$code")
done
mkdir "${dirs[@]}"

# Participants are independent: make them in parallel, then check them all.
pids=()
for i in "${!codes[@]}"; do
  make_participant "${codes[$i]}" "${peer_ports[$i]}" "${auth_ports[$i]}" "${metrics_ports[$i]}" \
    "${console_ports[$i]}" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
((failed == 0)) || exit 1 # the failed job said why

# Key ids: lowercase hex SHA-256 of each signing key's SubjectPublicKeyInfo
# DER, all in one sha256sum call.
ders=()
for code in "${codes[@]}"; do
  ders+=("$out/$code/.signing.der")
done
key_ids=()
while read -r sum _; do
  key_ids+=("$sum")
done < <(sha256sum "${ders[@]}")
((${#key_ids[@]} == ${#codes[@]})) || die "could not compute the signing key ids"
rm "${ders[@]}"

{
  echo "# kpx.v1.TrustList written by deploy/pki.sh for: ${codes[*]}"
  echo "version: 1"
  for i in "${!codes[@]}"; do
    trust_list_block "$i"
  done
} >"$out/trust-list.textpb"
validate TrustList "$out/trust-list.textpb"

keys=()
for code in "${codes[@]}"; do
  keys+=("$out/$code"/*.key)
done
chmod 600 "${keys[@]}"

echo "pki.sh: ${#codes[@]} Participant(s) (${codes[*]}), ${alg_enum} signing keys, in $out"
