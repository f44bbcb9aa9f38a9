#!/usr/bin/env bash
# Runs a federation of kpx nodes on this machine's loopback, one kpxd per
# Participant code, each with its own PKI, ledger and log under DIR.
#
#   start DIR CODE...  picks free ports, runs deploy/pki.sh into DIR, starts
#                      DIR/CODE/node.textpb in the background (log
#                      DIR/CODE/kpxd.log, pid DIR/CODE/kpxd.pid) and waits
#                      until every node says "listening".
#   stop DIR           SIGTERM to every node under DIR, SIGKILL after 10 s.
#
# kpxd comes from $KPX_BIN_DIR (default: <repo>/build/gateway). Use a node as
# one of its authorities with: set -a; . DIR/BW/exporter.env; set +a; kpxctl ...
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/local-federation.sh start DIR CODE...   e.g. start /tmp/fed BW AE EU
       deploy/local-federation.sh stop DIR
  env: KPX_BIN_DIR  folder holding kpxd (default <repo>/build/gateway)
       KPX_KEY_ALG  signing key algorithm, passed to deploy/pki.sh
EOF
}

die() {
  echo "local-federation.sh: $*" >&2
  exit 1
}

readonly START_TIMEOUT=20 # seconds for all nodes to say "listening"
readonly STOP_TIMEOUT=10  # seconds between SIGTERM and SIGKILL

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
readonly here repo

# True while PID runs (a zombie, left by a parent that does not reap, is
# not running).
alive() {
  local pid=$1 stat
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    stat=$(</proc/"$pid"/stat) || return 1
    stat=${stat##*) } # fields after "pid (comm) "
    [[ ${stat:0:1} != Z ]]
  fi
}

# True if PID is a kpxd running CODE's node.textpb (so that a recycled pid
# is left alone).
is_our_node() {
  local pid=$1 code=$2 cmdline
  [[ -r /proc/$pid/cmdline ]] || return 0 # cannot tell: trust the pid file
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ $cmdline == *kpxd*--config*"/$code/node.textpb"* ]]
}

# Prints N distinct TCP ports in 20000-60999 that nothing listens on.
pick_ports() {
  local n=$1 port tries=0
  local -A taken=()
  while read -r port; do
    taken[$port]=1
  done < <(ss -ltnH | awk '{ n = split($4, a, ":"); print a[n] }')
  while ((n > 0)); do
    ((++tries <= 1000)) || die "could not find $1 free ports"
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 41000))
    [[ -z ${taken[$port]:-} ]] || continue
    taken[$port]=1
    echo "$port"
    ((n -= 1))
  done
}

# Prints the last lines of a node's log, indented.
show_log_tail() {
  local log=$1
  echo "--- last lines of $log:" >&2
  if [[ -s $log ]]; then
    tail -n 20 "$log" | sed 's/^/    /' >&2
  else
    echo "    (empty)" >&2
  fi
}

# ---- stop ----------------------------------------------------------------------

stop_federation() {
  local dir=$1
  local pidfile pid code
  local -a pids=() pidfiles=()
  [[ -d $dir ]] || die "no such folder: $dir"
  for pidfile in "$dir"/*/kpxd.pid; do
    [[ -e $pidfile ]] || continue
    pid=$(<"$pidfile")
    code=${pidfile%/kpxd.pid}
    code=${code##*/}
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && is_our_node "$pid" "$code"; then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    pidfiles+=("$pidfile")
  done
  if ((${#pidfiles[@]} == 0)); then
    echo "local-federation.sh: no nodes under $dir"
    return 0
  fi

  local deadline=$((SECONDS + STOP_TIMEOUT)) left
  while :; do
    left=()
    for pid in "${pids[@]}"; do
      if alive "$pid"; then left+=("$pid"); fi
    done
    ((${#left[@]} > 0)) || break
    if ((SECONDS >= deadline)); then
      echo "local-federation.sh: SIGKILL to ${left[*]} (still running after ${STOP_TIMEOUT}s)" >&2
      kill -KILL "${left[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "${pidfiles[@]}"
  echo "local-federation.sh: stopped ${#pids[@]} node(s) under $dir"
}

# ---- start ---------------------------------------------------------------------

start_federation() {
  local dir=$1
  shift
  local -a codes=("$@")
  local kpxd=${KPX_BIN_DIR:-$repo/build/gateway}/kpxd
  [[ -x $kpxd ]] || die "kpxd not found at $kpxd (build first, or set KPX_BIN_DIR)"
  command -v ss >/dev/null || die "ss not found (run deploy/install-deps.sh)"

  local code
  for code in "${codes[@]}"; do
    [[ ! -e $dir/$code/kpxd.pid ]] ||
      die "$dir/$code/kpxd.pid exists: run 'stop $dir' first, or use a fresh folder"
  done
  [[ ! -e $dir/trust-list.textpb ]] ||
    die "$dir already holds a federation's keys and ledgers: use a fresh folder"

  local -a ports specs=()
  # Per node: peer, authority, metrics and console port.
  mapfile -t ports < <(pick_ports $((4 * ${#codes[@]})))
  ((${#ports[@]} == 4 * ${#codes[@]})) || die "could not pick free ports"
  local i
  for i in "${!codes[@]}"; do
    specs+=("${codes[$i]}:${ports[4 * i]}:${ports[4 * i + 1]}:${ports[4 * i + 2]}:${ports[4 * i + 3]}")
  done
  "$here/pki.sh" "$dir" "${specs[@]}"
  dir=$(cd "$dir" && pwd)

  # Start every node, then wait for all of them together.
  local node_dir
  for code in "${codes[@]}"; do
    node_dir=$dir/$code
    "$kpxd" --config "$node_dir/node.textpb" </dev/null >"$node_dir/kpxd.log" 2>&1 &
    echo $! >"$node_dir/kpxd.pid"
  done

  local deadline=$((SECONDS + START_TIMEOUT)) pid waiting
  while :; do
    waiting=()
    for code in "${codes[@]}"; do
      node_dir=$dir/$code
      grep -q listening "$node_dir/kpxd.log" && continue
      pid=$(<"$node_dir/kpxd.pid")
      if ! alive "$pid"; then
        echo "local-federation.sh: kpxd for $code exited before it was listening" >&2
        show_log_tail "$node_dir/kpxd.log"
        stop_federation "$dir" >/dev/null
        exit 1
      fi
      waiting+=("$code")
    done
    ((${#waiting[@]} > 0)) || break
    if ((SECONDS >= deadline)); then
      echo "local-federation.sh: not listening after ${START_TIMEOUT}s: ${waiting[*]}" >&2
      for code in "${waiting[@]}"; do
        show_log_tail "$dir/$code/kpxd.log"
      done
      stop_federation "$dir" >/dev/null
      exit 1
    fi
    sleep 0.1
  done

  echo "local-federation.sh: ${#codes[@]} node(s) listening under $dir"
  for i in "${!codes[@]}"; do
    printf '  %-3s peer 127.0.0.1:%-5s  authority 127.0.0.1:%-5s  metrics 127.0.0.1:%-5s  console https://127.0.0.1:%s/  log %s\n' \
      "${codes[$i]}" "${ports[4 * i]}" "${ports[4 * i + 1]}" "${ports[4 * i + 2]}" \
      "${ports[4 * i + 3]}" "$dir/${codes[$i]}/kpxd.log"
  done
}

# ---- main ------------------------------------------------------------------------

case ${1:-} in
  start)
    [[ $# -ge 3 ]] || {
      usage
      exit 2
    }
    shift
    start_federation "$@"
    ;;
  stop)
    [[ $# -eq 2 ]] || {
      usage
      exit 2
    }
    stop_federation "$2"
    ;;
  -h | --help)
    usage
    ;;
  *)
    usage
    exit 2
    ;;
esac
