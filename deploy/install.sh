#!/usr/bin/env bash
# Installs a built kpx (kpxd, kpxctl) as a system service. The systemd unit,
# the container recipe (deploy/container/Dockerfile) and tests/install_test.sh
# all install through this script.
#
# What goes where (ROOT defaults to /, PREFIX to /usr/local):
#   ROOT/PREFIX/bin/kpxd, kpxctl                 mode 755
#   ROOT/PREFIX/share/kpx/pki.sh                 PKI generator (deploy/pki.sh)
#   ROOT/PREFIX/share/kpx/trust-list.example.textpb
#   ROOT/PREFIX/share/doc/kpx/operations.md      (docs/operations.md)
#   ROOT/etc/kpx/                                mode 750, root:kpx
#   ROOT/etc/kpx/kpxd.textpb.example             commented kpx.v1.NodeConfig
#   ROOT/etc/systemd/system/kpxd.service         ExecStart = PREFIX/bin/kpxd
#   ROOT/etc/systemd/system/kpxd@.service        the same, one node per Participant CODE
#                                                (/etc/kpx/CODE, /var/lib/kpx/CODE)
#   ROOT/var/lib/kpx/                            mode 700, kpx:kpx (ledger)
#   ROOT/var/lib/kpx/backups/                    mode 700, kpx:kpx (kpxctl node backup)
# and, unless --no-user, the system user and group kpx.
#
# Safe to run again (for example after an upgrade): it replaces the
# binaries, the examples and the unit, and never touches an existing
# /etc/kpx/kpxd.textpb, keys or ledger.
set -euo pipefail

usage() {
  cat >&2 <<'EOF'
usage: deploy/install.sh [--prefix DIR] [--root DIR] [--bin-dir DIR] [--no-user] [--no-systemd]
  --prefix DIR   installation prefix (default /usr/local)
  --root DIR     staging root, like DESTDIR: everything goes under DIR
                 (default /); with a root other than /, --no-user is required
  --bin-dir DIR  folder holding the built kpxd and kpxctl
                 (default <repo>/build/gateway)
  --no-user      do not create the kpx user and group, and chown nothing
  --no-systemd   do not install the systemd unit
Run as root unless --no-user is given and ROOT is writable by you.
EOF
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

# Runs a command; on failure stops with the first line it printed.
run() {
  local out
  if ! out=$("$@" 2>&1); then
    die "$1 failed: ${out%%$'\n'*}"
  fi
}

readonly USER_NAME=kpx
readonly CONFIG_DIR=/etc/kpx
readonly STATE_DIR=/var/lib/kpx
readonly UNIT_PATH=/etc/systemd/system/kpxd.service
readonly TEMPLATE_PATH=/etc/systemd/system/kpxd@.service
readonly UNIT_EXEC_DEFAULT=/usr/local/bin/kpxd

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
readonly here repo

# ---- arguments -------------------------------------------------------------------

prefix=/usr/local
root=/
bin_dir=$repo/build/gateway
make_user=1
install_unit=1

# Takes the value of an option given as "--opt VALUE" or "--opt=VALUE".
need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --prefix | --root | --bin-dir)
      need_value "$@"
      case $1 in
        --prefix) prefix=$2 ;;
        --root) root=$2 ;;
        --bin-dir) bin_dir=$2 ;;
      esac
      shift 2
      ;;
    --prefix=* | --root=* | --bin-dir=*)
      opt=${1%%=*}
      need_value "$opt" "${1#*=}"
      case $opt in
        --prefix) prefix=${1#*=} ;;
        --root) root=${1#*=} ;;
        --bin-dir) bin_dir=${1#*=} ;;
      esac
      shift
      ;;
    --no-user)
      make_user=0
      shift
      ;;
    --no-systemd)
      install_unit=0
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "install.sh: unknown argument '$1'" >&2
      usage
      exit 2
      ;;
  esac
done

# The prefix ends up in the unit's ExecStart line and in a sed expression:
# keep it a plain absolute path.
[[ $prefix =~ ^/[A-Za-z0-9._/+-]*$ ]] ||
  die "--prefix must be an absolute path without spaces or special characters, not '$prefix'"
prefix=${prefix%/}
[[ -n $prefix ]] || die "--prefix must not be /"

# ---- checks ----------------------------------------------------------------------

for tool in kpxd kpxctl; do
  [[ -f $bin_dir/$tool && -x $bin_dir/$tool ]] ||
    die "$bin_dir/$tool not found or not executable (build first, or pass --bin-dir)"
done
src_pki=$repo/deploy/pki.sh
src_config=$repo/deploy/config/kpxd.example.textpb
src_trust=$repo/deploy/config/trust-list.example.textpb
src_unit=$repo/deploy/systemd/kpxd.service
src_template=$repo/deploy/systemd/kpxd@.service
src_doc=$repo/docs/operations.md
for f in "$src_pki" "$src_config" "$src_trust" "$src_doc"; do
  [[ -f $f ]] || die "$f is missing from the source tree"
done
if ((install_unit)); then
  for u in "$src_unit" "$src_template"; do
    [[ -f $u ]] || die "$u is missing from the source tree"
    grep -q "^ExecStart=$UNIT_EXEC_DEFAULT " "$u" ||
      die "$u has no 'ExecStart=$UNIT_EXEC_DEFAULT ...' line to adapt to the prefix"
  done
fi

mkdir -p -- "$root" 2>/dev/null || die "cannot create the staging root $root"
root=$(cd -- "$root" && pwd)
# Staged paths are "$dest/etc/kpx" etc.; for the real root, dest is empty.
if [[ $root == / ]]; then
  dest=
else
  dest=$root
fi
readonly dest

if ((make_user)); then
  [[ -z $dest ]] ||
    die "--root $root needs --no-user: the kpx user is created on the machine that runs kpxd"
  [[ $(id -u) -eq 0 ]] || die "creating the kpx user needs root: run with sudo, or pass --no-user"
  for tool in getent useradd groupadd chown; do
    command -v "$tool" >/dev/null || die "$tool not found"
  done
fi

# ---- user and group --------------------------------------------------------------

if ((make_user)); then
  if getent passwd "$USER_NAME" >/dev/null; then
    echo "install.sh: user $USER_NAME exists"
  else
    if getent group "$USER_NAME" >/dev/null; then
      group_args=(--gid "$USER_NAME")
    else
      group_args=(--user-group)
    fi
    run useradd --system "${group_args[@]}" --home-dir "$STATE_DIR" --no-create-home \
      --shell /usr/sbin/nologin --comment "kpx node (kpxd)" "$USER_NAME"
    echo "install.sh: created system user $USER_NAME"
  fi
fi

# ---- files -----------------------------------------------------------------------

run install -d -m 755 "$dest$prefix/bin" "$dest$prefix/share/kpx" "$dest$prefix/share/doc/kpx"
run install -m 755 "$bin_dir/kpxd" "$bin_dir/kpxctl" "$dest$prefix/bin/"
run install -m 755 "$src_pki" "$dest$prefix/share/kpx/pki.sh"
run install -m 644 "$src_trust" "$dest$prefix/share/kpx/trust-list.example.textpb"
run install -m 644 "$src_doc" "$dest$prefix/share/doc/kpx/operations.md"

run install -d -m 750 "$dest$CONFIG_DIR"
run install -d -m 700 "$dest$STATE_DIR" "$dest$STATE_DIR/backups"
run install -m 640 "$src_config" "$dest$CONFIG_DIR/kpxd.textpb.example"

# install_unit SOURCE PATH: the unit with ExecStart and Documentation
# rewritten for the prefix, replaced in one rename.
install_unit_file() {
  local src=$1 path=$2
  unit_tmp=$(mktemp "$dest${path%/*}/.kpxd.unit.XXXXXX")
  trap 'rm -f -- "$unit_tmp"' EXIT
  sed -e "s#^ExecStart=$UNIT_EXEC_DEFAULT #ExecStart=$prefix/bin/kpxd #" \
    -e "s#^Documentation=file:/usr/local/#Documentation=file:$prefix/#" "$src" >"$unit_tmp"
  grep -q "^ExecStart=$prefix/bin/kpxd " "$unit_tmp" ||
    die "could not set the unit's ExecStart to $prefix/bin/kpxd"
  chmod 644 "$unit_tmp"
  mv -f -- "$unit_tmp" "$dest$path"
  trap - EXIT
}

if ((install_unit)); then
  run install -d -m 755 "$dest${UNIT_PATH%/*}"
  install_unit_file "$src_unit" "$UNIT_PATH"
  install_unit_file "$src_template" "$TEMPLATE_PATH"
fi

if ((make_user)); then
  run chown root:"$USER_NAME" "$CONFIG_DIR" "$CONFIG_DIR/kpxd.textpb.example"
  run chown "$USER_NAME:$USER_NAME" "$STATE_DIR" "$STATE_DIR/backups"
fi

# ---- done ------------------------------------------------------------------------

echo "install.sh: installed kpxd and kpxctl in $dest$prefix/bin"
if [[ -e $dest$CONFIG_DIR/kpxd.textpb ]]; then
  echo "install.sh: kept the existing $dest$CONFIG_DIR/kpxd.textpb"
fi
if ((install_unit)) && [[ -z $dest ]]; then
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    run systemctl daemon-reload
  fi
  if [[ ! -e $CONFIG_DIR/kpxd.textpb ]]; then
    cat <<EOF
install.sh: next: write $CONFIG_DIR/kpxd.textpb (start from $CONFIG_DIR/kpxd.textpb.example,
  see docs/operations.md), put the keys and trust list in $CONFIG_DIR (root:$USER_NAME, 640),
  then: systemctl enable --now kpxd
EOF
  fi
fi
