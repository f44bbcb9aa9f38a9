#!/usr/bin/env bash
# Writes the keys and configs for deploy/container/compose.yaml: a
# three-Participant federation (Botswana BW, United Arab Emirates AE,
# European Union EU), one container each.
#
# Runs deploy/pki.sh into DIR and adapts its output to containers:
#   DIR/CODE/node/            mounted read-only at /etc/kpx in kpx-CODE:
#     kpxd.textpb             peer_listen "0.0.0.0:7400", authority_listen
#                             "0.0.0.0:7401", metrics_listen "0.0.0.0:9464",
#                             data_dir "/var/lib/kpx/ledger" (the volume)
#     node.pem, node.key, ca.pem, signing.key, signing.pub
#     trust-list.textpb       this Participant's copy of the trust list
#   DIR/trust-list.textpb     the federation's trust list; endpoints are
#                             the compose services: kpx-bw:7400, kpx-ae:7400,
#                             kpx-eu:7400
#   DIR/CODE/{exporter,importer,auditor,operator}.{pem,key,env}, ca.key
#                             stay on the host, outside the containers; the
#                             .env files point kpxctl at the authority port
#                             compose publishes on 127.0.0.1 (BW 7401,
#                             AE 7411, EU 7421)
# Certificates keep their names (node.bw.kpx ...): nodes check them through
# tls_server_name, so container host names need not match.
#
# The node folders are given to the container user (uid/gid 10001 in the
# image), so this runs as root. With user-namespaced (rootless) Docker, set
# KPX_CONTAINER_UID and KPX_CONTAINER_GID to the host ids that uid 10001
# maps to.
#
# Like pki.sh, for demonstrations and tests: the keys are unencrypted and
# made on one machine. Each real Participant makes its own (docs/operations.md).
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/container/make-federation.sh DIR   (as root)
  then: KPX_FED_DIR=DIR docker compose -p kpx -f deploy/container/compose.yaml up -d --build
  env: KPX_KEY_ALG                           passed to deploy/pki.sh
       KPX_CONTAINER_UID, KPX_CONTAINER_GID  owner of DIR/*/node (default 10001)
EOF
}

die() {
  echo "make-federation.sh: $*" >&2
  exit 1
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
readonly here repo

# Participants, in compose.yaml's order, and the host port compose publishes
# each one's authority listener (kpxctl) on.
readonly CODES=(BW AE EU)
declare -rA AUTH_HOST_PORT=([BW]=7401 [AE]=7411 [EU]=7421)
readonly ROLES=(exporter importer auditor operator)
# Ports inside each container.
readonly PEER_PORT=7400 AUTH_PORT=7401 METRICS_PORT=9464

case ${1:-} in
  -h | --help)
    usage
    exit 0
    ;;
esac
[[ $# -eq 1 ]] || {
  usage
  exit 2
}

uid=${KPX_CONTAINER_UID:-10001}
gid=${KPX_CONTAINER_GID:-10001}
[[ $uid =~ ^[0-9]+$ && $gid =~ ^[0-9]+$ ]] ||
  die "KPX_CONTAINER_UID and KPX_CONTAINER_GID must be numbers"
if [[ $(id -u) -ne 0 && $(id -u) != "$uid" ]]; then
  die "run as root (sudo): the node folders must be owned by the container user, uid $uid"
fi

# pki.sh needs distinct ports; these are placeholders that are rewritten.
specs=()
declare -A placeholder=()
for i in "${!CODES[@]}"; do
  code=${CODES[$i]}
  placeholder[$code]=$((17400 + 10 * i))
  specs+=("$code:${placeholder[$code]}:$((17401 + 10 * i))")
done
"$repo/deploy/pki.sh" "$1" "${specs[@]}"
dir=$(cd -- "$1" && pwd)

# The federation's trust list: endpoints are the compose services.
sed_args=()
for code in "${CODES[@]}"; do
  sed_args+=(-e "s/^  endpoint: \"127\\.0\\.0\\.1:${placeholder[$code]}\"\$/  endpoint: \"kpx-${code,,}:$PEER_PORT\"/")
done
sed -i "${sed_args[@]}" "$dir/trust-list.textpb"
for code in "${CODES[@]}"; do
  grep -q "^  endpoint: \"kpx-${code,,}:$PEER_PORT\"\$" "$dir/trust-list.textpb" ||
    die "could not set $code's endpoint in $dir/trust-list.textpb"
done

for code in "${CODES[@]}"; do
  src=$dir/$code
  node=$src/node
  mkdir -m 750 "$node"

  # kpxd.textpb: pki.sh's node.textpb, listening on every interface of the
  # container, with the ledger in the volume and the trust list beside it.
  sed -e "s|^peer_listen: .*|peer_listen: \"0.0.0.0:$PEER_PORT\"|" \
    -e "s|^authority_listen: .*|authority_listen: \"0.0.0.0:$AUTH_PORT\"|" \
    -e 's|^data_dir: .*|data_dir: "/var/lib/kpx/ledger"|' \
    -e 's|^trust_list_file: .*|trust_list_file: "trust-list.textpb"|' \
    -e '/^#* *metrics_listen:/d' \
    -e "s|^# kpx.v1.NodeConfig for Participant .*|# kpx.v1.NodeConfig for Participant $code in a container, written by deploy/container/make-federation.sh.|" \
    "$src/node.textpb" >"$node/kpxd.textpb"
  echo "metrics_listen: \"0.0.0.0:$METRICS_PORT\"" >>"$node/kpxd.textpb"
  rm "$src/node.textpb"
  protoc -I "$repo/proto" --encode=kpx.v1.NodeConfig kpx/v1/config.proto \
    <"$node/kpxd.textpb" >/dev/null || die "$node/kpxd.textpb does not parse"

  mv "$src/node.pem" "$src/node.key" "$src/signing.key" "$src/signing.pub" "$node/"
  cp "$src/ca.pem" "$dir/trust-list.textpb" "$node/"

  # kpxctl on the host reaches the published authority port.
  for role in "${ROLES[@]}"; do
    sed -i "s|^KPX_NODE=.*|KPX_NODE=127.0.0.1:${AUTH_HOST_PORT[$code]}|" "$src/$role.env"
  done

  chmod 640 "$node"/*
  chmod 600 "$node/node.key" "$node/signing.key"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R "$uid:$gid" "$node"
  fi
done

cat <<EOF
make-federation.sh: BW, AE and EU in $dir
  start:   KPX_FED_DIR=$dir docker compose -p kpx -f $repo/deploy/container/compose.yaml up -d --build
  kpxctl:  set -a; . $dir/BW/exporter.env; set +a; kpxctl cert list
  A changed trust list ($dir/trust-list.textpb) must be copied into every
  $dir/CODE/node/ and the nodes reloaded (docker compose -p kpx ... kill -s HUP).
EOF
