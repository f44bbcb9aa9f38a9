#!/usr/bin/env bash
# Regenerates the seed corpora under tests/fuzz/corpus/ (committed; run
# this only to change them). Inputs are public test data: the PEM seeds'
# keys are throwaway keys made here, used by no node. Timestamps match the
# fuzzers' fixed clock (2027-01-01T12:00:00Z, tests/fuzz/fuzz_util.h).
# Seeds are named *.seed so that no ignore rule (*.pem, *.key) hides them.
# Needs openssl and protoc (deploy/install-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
corpus=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

readonly ISSUED=1798675200   # 2026-12-31T00:00:00Z
readonly EXPIRES=1803859200  # 2027-03-01T00:00:00Z
readonly NOW=1798804800      # 2027-01-01T12:00:00Z

# Empties a corpus folder but for its regression-*.seed files: inputs that
# once found a bug, kept as they were found.
fresh() {
  mkdir -p "$1"
  find "$1" -type f ! -name 'regression-*' -delete
}

# ---- fuzz_pem: certificates, chains and keys, valid and damaged
pem=$corpus/fuzz_pem
fresh "$pem"
q() { "$@" 2>/dev/null; }
q openssl req -x509 -newkey ed25519 -nodes -keyout "$pem/key-ed25519-pkcs8.seed" \
  -out "$pem/cert-ed25519.seed" -subj "/CN=node.bw.kpx/O=Fuzz Seed" -days 3650
openssl pkey -in "$pem/key-ed25519-pkcs8.seed" -pubout -out "$pem/pub-ed25519.seed"
openssl ecparam -name prime256v1 -genkey -noout -out "$pem/key-ec-p256.seed"
openssl pkey -in "$pem/key-ec-p256.seed" -pubout -out "$pem/pub-ec-p256.seed"
q openssl req -x509 -key "$pem/key-ec-p256.seed" -out "$tmp/ca.crt" -subj "/CN=Fuzz Seed CA" \
  -days 3650 -addext basicConstraints=critical,CA:TRUE
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/leaf.key"
openssl req -new -key "$tmp/leaf.key" -subj "/CN=node.eu.kpx" -out "$tmp/leaf.csr"
q openssl x509 -req -in "$tmp/leaf.csr" -CA "$tmp/ca.crt" -CAkey "$pem/key-ec-p256.seed" \
  -CAcreateserial -days 365 -out "$tmp/leaf.crt"
{ cat "$tmp/leaf.crt"; echo "#CA"; cat "$tmp/ca.crt"; } >"$pem/chain-leaf-ca.seed"
{ cat "$tmp/leaf.crt"; echo "#CA"; cat "$pem/cert-ed25519.seed"; } >"$pem/chain-wrong-ca.seed"
q openssl req -x509 -newkey ed25519 -keyout /dev/null -nodes -out "$pem/two-cn.seed" \
  -subj "/CN=node.bw.kpx/CN=node.evil.kpx" -days 30
head -c 300 "$pem/cert-ed25519.seed" >"$pem/truncated-cert.seed"
sed '3s/./!/5' "$pem/cert-ed25519.seed" >"$pem/damaged-base64.seed"
q openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:1024 -out "$pem/rsa-key-refused.seed"
chmod 644 "$pem"/*

# ---- fuzz_certificate_json: kpxctl submit files
json=$corpus/fuzz_certificate_json
fresh "$json"
sed -e 's/@NUMBER@/BW-2026-0001/' -e 's/@ISSUED_AT@/2026-12-31T00:00:00Z/' \
  -e 's/@EXPIRES_AT@/2027-03-01T00:00:00Z/' "$repo/deploy/examples/certificate.json" \
  >"$json/valid.seed"
sed -e 's/@NUMBER@/US-2026-0001/' -e 's/@ISSUED_AT@/2026-12-31T00:00:00Z/' \
  -e 's/@EXPIRES_AT@/2027-03-01T00:00:00Z/' "$repo/deploy/examples/certificate-us-mixed.json" \
  >"$json/valid-us-mixed.seed"
sed -e '/"title"/d' -e '/"statement"/d' -e '/"type"/d' "$json/valid.seed" \
  >"$json/defaults-filled.seed"
sed -e 's/"totalCaratsHundredths": "250975"/"totalCaratsHundredths": "250976"/' \
  "$json/valid.seed" >"$json/bad-total.seed"
sed -e 's/"7102 21"/"7102.29"/' "$json/valid.seed" >"$json/bad-hs-code.seed"
sed -e 's/"importingParticipant": "EU"/"importingParticipant": "VE"/' \
  "$json/valid.seed" >"$json/suspended-importer.seed"
sed -e 's/"shareBasisPoints": 1000/"shareBasisPoints": 900/' \
  "$json/valid.seed" >"$json/bad-origin-shares.seed"
sed -e 's/"origin": { "countries": \[{ "country": "BW" }\] }/"origin": { "mixedUndisclosed": true }/' \
  "$json/valid.seed" >"$json/mixed-undisclosed-to-eu.seed"
sed -e 's/"caratsHundredths": "125040"/"caratsHundredths": "-125040"/' \
  "$json/valid.seed" >"$json/negative-carats.seed"
sed -e 's/"issuingOffice": "HQ"/"issuingOffice": "ANR"/' \
  "$json/valid.seed" >"$json/wrong-office.seed"
head -c 400 "$json/valid.seed" >"$json/truncated.seed"

# ---- fuzz_text_config: trust lists and node configurations
text=$corpus/fuzz_text_config
fresh "$text"
cp "$repo/deploy/config/trust-list.example.textpb" "$text/trust-list-example.seed"
cp "$repo/deploy/config/kpxd.example.textpb" "$text/kpxd-example.seed"
openssl genpkey -algorithm ed25519 -out "$tmp/sign.key"
openssl pkey -in "$tmp/sign.key" -pubout -out "$tmp/sign.pub"
key_id=$(openssl pkey -pubin -in "$tmp/sign.pub" -outform DER | sha256sum | cut -d' ' -f1)
pub=$(awk '{ printf "%s\\n", $0 }' "$tmp/sign.pub")
cat >"$text/trust-list-small.seed" <<TXT
version: 1
participants {
  code: "BW"
  name: "Botswana"
  endpoint: "127.0.0.1:7400"
  status: ACTIVE
  signing_keys {
    key_id: "$key_id"
    algorithm: ED25519
    public_key_pem: "$pub"
    not_before { seconds: $ISSUED }
    not_after { seconds: $EXPIRES }
  }
}
participants { code: "VE" name: "Venezuela" status: SUSPENDED }
TXT
sed -e "s/$key_id/${key_id%?}0/" "$text/trust-list-small.seed" >"$text/trust-list-wrong-key-id.seed"
sed -e 's/code: "VE"/code: "BW"/' "$text/trust-list-small.seed" >"$text/trust-list-duplicate.seed"
cat >"$text/kpxd-minimal.seed" <<'TXT'
participant: "BW"
tls_cert_file: "node.pem"
tls_key_file: "node.key"
authority_client_ca_file: "ca.pem"
signing_key_file: "signing.key"
trust_list_file: "trust-list.textpb"
authority_clients { common_name: "BW-exporter" roles: EXPORTER }
TXT
sed -e '/signing_key_file/d' "$text/kpxd-minimal.seed" >"$text/kpxd-missing-field.seed"

# ---- fuzz_receive: a mode byte, then a MessageBody or a DeliverRequest
recv=$corpus/fuzz_receive
fresh "$recv"
encode() {  # encode TYPE MODE-BYTE-OCTAL OUT < textpb
  { printf "\\$2"; protoc -I "$repo/proto" -I /usr/include --encode="$1" \
    kpx/v1/message.proto kpx/v1/service.proto; } >"$3"
}
certificate() {  # certificate EXPORTER IMPORTER NUMBER
  cat <<TXT
certificate {
  title: "Kimberley Process Certificate" statement: KPCS type: STANDARD
  number: "$3" exporting_participant: "$1" importing_participant: "$2"
  issued_at { seconds: $ISSUED } expires_at { seconds: $EXPIRES }
  issuing_office: "HQ" validating_official: "Government Diamond Valuator"
  exporter { name: "Okavango Diamond Company" address: "Gaborone" country: "BW" }
  importer { name: "Emirates Rough DMCC" address: "Almas Tower, Dubai" country: "AE" }
  lines { hs_code: "7102.31" national_code: "71023100" carats_hundredths: 125050
          value_usd_cents: 31262500
          origin { countries { country: "BW" share_basis_points: 7500 }
                   countries { country: "NA" share_basis_points: 2500 } } }
  lines { hs_code: "7102.21" carats_hundredths: 40000 value_usd_cents: 1800000
          origin { mixed_undisclosed: true } }
  number_of_parcels: 14 total_carats_hundredths: 165050 total_value_usd_cents: 33062500
  shipment { seal_numbers: "BWS-000731" transport_document: "AWB 176-12345675" }
}
TXT
}
# Mode byte: bits 0-1 mode, 2-3 peer (BW EU VE AE), 4 twice, 5 BW's key,
# 6 re-signed.
certificate BW AE BW-2026-0001 | encode kpx.v1.MessageBody 002 "$recv/certificate-bw.seed"
certificate BW AE BW-2026-0001 | encode kpx.v1.MessageBody 022 "$recv/certificate-twice.seed"
certificate BW AE BW-2026-0001 | encode kpx.v1.MessageBody 102 "$recv/certificate-resigned.seed"
certificate BW AE BW-2026-0001 | encode kpx.v1.MessageBody 122 \
  "$recv/certificate-resigned-and-original.seed"
certificate EU AE EU-2026-0001 | encode kpx.v1.MessageBody 006 "$recv/certificate-eu.seed"
certificate VE AE VE-2026-0001 | encode kpx.v1.MessageBody 012 "$recv/certificate-suspended.seed"
certificate EU AE EU-2026-0002 | encode kpx.v1.MessageBody 046 "$recv/certificate-wrong-key.seed"
certificate BW EU BW-2026-0002 | encode kpx.v1.MessageBody 002 "$recv/certificate-not-for-us.seed"
{ echo "header { message_id: \"0123456789abcdef0123456789abcdef\" sender: \"BW\""
  echo "  recipient: \"AE\" created_at { seconds: $NOW } kind: CERTIFICATE }"
  certificate BW AE BW-2026-0003; } | encode kpx.v1.MessageBody 001 "$recv/full-header.seed"
encode kpx.v1.MessageBody 002 "$recv/confirmation.seed" <<'TXT'
confirmation {
  certificate_number: "AE-2026-0001" number_of_parcels: 2
  lines { hs_code: "7102.31" carats_hundredths: 125050 value_usd_cents: 31262500 }
  seals_intact: true office: "HQ" official: "Border Officer"
  importing_authority: "Botswana KP Authority"
}
TXT
echo 'rejection { certificate_number: "AE-2026-0001" reason: "parcel count differs" }' |
  encode kpx.v1.MessageBody 002 "$recv/rejection.seed"
echo 'rejection { certificate_number: "AE-2026-0002" reason: "not ours" }' |
  encode kpx.v1.MessageBody 002 "$recv/rejection-wrong-peer.seed"
echo 'cancellation { certificate_number: "BW-2026-0001" reason: "issued in error" }' |
  encode kpx.v1.MessageBody 002 "$recv/cancellation.seed"
echo "receipt { message_id: \"0123456789abcdef0123456789abcdef\" ledger_sequence: 1 }" |
  encode kpx.v1.MessageBody 002 "$recv/receipt.seed"
echo 'messages { body: "\022\004\022\002BW" signer: "BW" key_id: "00" algorithm: ED25519 signature: "x" }' |
  encode kpx.v1.DeliverRequest 000 "$recv/deliver-request-forged.seed"
# ---- fuzz_deliver_response: a flag byte, then a DeliverResponse
resp=$corpus/fuzz_deliver_response
fresh "$resp"
esc() { od -An -v -to1 | tr -d ' \n' | sed 's/\([0-7]\{3\}\)/\\\1/g'; }
encode_response() {  # encode_response FLAG-BYTE-OCTAL OUT < textpb
  { printf "\\$1"; protoc -I "$repo/proto" -I /usr/include --encode=kpx.v1.DeliverResponse \
    kpx/v1/message.proto kpx/v1/service.proto; } >"$2"
}
# Leaf of entry 1: sequence 1, RECEIVED_MESSAGE, an entry hash, a digest (bit 2 fills it).
leaf=$({ printf '\0\0\0\0\0\0\0\001\002'; head -c 32 /dev/zero | tr '\0' 'e';
  head -c 32 /dev/zero; } | esc)
head_body=$(echo "tree_head { tree_size: 1 root_hash: \"$(head -c 32 /dev/zero | tr '\0' 'r')\" }" |
  protoc -I "$repo/proto" -I /usr/include --encode=kpx.v1.MessageBody kpx/v1/message.proto | esc)
# Flags: bit 0 EU signs the head, 1 results fitted, 2 real digests, 3 head proves result 0.
echo "results { leaf: \"$leaf\" } tree_head { body: \"$head_body\" }" |
  encode_response 017 "$resp/receipt-proved.seed"
echo "results { leaf: \"$leaf\" inclusion_path: \"$(head -c 32 /dev/zero | tr '\0' 'p')\" }
  tree_head { body: \"$head_body\" }" | encode_response 007 "$resp/receipt-wrong-path.seed"
echo "results { leaf: \"$leaf\" } tree_head { body: \"$head_body\" signer: \"EU\" signature: \"x\" }" |
  encode_response 002 "$resp/head-unsigned.seed"
echo 'results { code: 3 error: "bad HS code \033[2J" } results { code: 99 error: "" }' |
  encode_response 002 "$resp/refusals.seed"
echo 'results { code: 14 error: "overloaded" }' | encode_response 000 "$resp/wrong-count.seed"
echo "results { leaf: \"$leaf\" } tree_head { body: \"$head_body\" }
  consistency_path: \"short\" tree_heads { body: \"$head_body\" signer: \"AE\" }" |
  encode_response 013 "$resp/gossip-and-consistency.seed"

# ---- fuzz_evidence: a mode byte, then a bundle (even) or an edit script
# of (2-byte offset, XOR byte) over the valid bundle the harness makes (odd)
ev=$corpus/fuzz_evidence
fresh "$ev"
printf '\001' >"$ev/unchanged.seed"
printf '\001\000\010\001' >"$ev/flip-one.seed"
printf '\001\377\377\012' >"$ev/append.seed"
printf '\000\012\003abc' >"$ev/garbage.seed"

# ---- fuzz_trust_lists: a flag byte, then a GetTrustListsResponse
tl=$corpus/fuzz_trust_lists
fresh "$tl"
list() {  # list TEXT: a serialized kpx.v1.TrustList, escaped for text format
  echo "$1" | protoc -I "$repo/proto" -I /usr/include --encode=kpx.v1.TrustList \
    kpx/v1/config.proto | esc
}
encode_lists() {  # encode_lists FLAG-BYTE-OCTAL OUT < textpb
  { printf "\\$1"; protoc -I "$repo/proto" -I /usr/include --encode=kpx.v1.GetTrustListsResponse \
    kpx/v1/config.proto kpx/v1/service.proto; } >"$2"
}
suspend_eu=$(list 'version: 2 participants { code: "BW" status: ACTIVE offices { code: "HQ" name: "BW" } }
  participants { code: "EU" status: SUSPENDED }')
# Flags: bit 1 next version numbers and publishers, bit 0 signed by two publishers.
echo "versions { trust_list: \"$suspend_eu\" }" | encode_lists 003 "$tl/next-signed.seed"
echo "versions { trust_list: \"$suspend_eu\" }" | encode_lists 002 "$tl/next-unsigned.seed"
echo "versions { trust_list: \"$suspend_eu\" } versions { trust_list: \"$suspend_eu\" }" |
  encode_lists 003 "$tl/two-versions.seed"
echo "versions { trust_list: \"$(list 'version: 9 threshold: 3')\" signatures { key_id: \"00\" signature: \"x\" } }" |
  encode_lists 001 "$tl/bad-threshold.seed"
printf '\000\012\003abc' >"$tl/garbage.seed"

# ---- fuzz_http_api: method, path, query lines, empty line, body
api=$corpus/fuzz_http_api
fresh "$api"
{ printf 'POST\n/api/v1/certificates\n\n{"requestId": "seed-1", "certificate": '
  cat "$corpus/fuzz_certificate_json/valid.seed"; printf '}'; } >"$api/submit.seed"
printf 'GET\n/api/v1/certificates\nstate=DELIVERED\npageSize=10\noverdue=true\nissued_from=2026-12-01T00:00:00Z\n\n' \
  >"$api/list.seed"
printf 'GET\n/api/v1/certificates\ncolor=red\n\n' >"$api/list-unknown-parameter.seed"
printf 'GET\n/api/v1/certificates/BW/2026/0001\n\n' >"$api/get.seed"
printf 'GET\n/api/v1/certificates/BW-1:trace\n\n' >"$api/trace.seed"
printf 'GET\n/api/v1/certificates/BW-1:evidence\n\n' >"$api/evidence.seed"
printf 'POST\n/api/v1/certificates/BW-1:confirm\n\n{"findings": {"official": "A. Peeters", "lines": [{"hsCode": "7102.31", "caratsHundredths": "125040"}]}, "receivedAt": "2027-01-01T10:00:00Z"}' \
  >"$api/confirm-found.seed"
printf 'POST\n/api/v1/certificates/BW-1:reject\n\n{"number": "BW-2", "reason": "x"}' >"$api/reject-other-number.seed"
printf 'POST\n/api/v1/certificates/BW-1:void\n\n{"reasonCode": "ISSUED_IN_ERROR", "reason": "typo"}' >"$api/void.seed"
printf 'GET\n/api/v1/outbox\nstuck_only=true\n\n' >"$api/outbox.seed"
printf 'POST\n/api/v1/ledger:verify\n\n' >"$api/verify.seed"
printf 'DELETE\n/api/v1/peers\n\n' >"$api/wrong-method.seed"
printf 'POST\n/api/v1/certificates/\xff\xfe:cancel\n\n{"reason": "\xc3\x28"}' >"$api/bad-utf8.seed"

echo "Seeds written under $corpus"
