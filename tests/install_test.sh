#!/usr/bin/env bash
# Tests deploy/install.sh as the systemd unit and the container use it:
# installs into a scratch staging root (--root, --prefix /usr, --no-user),
# then checks files, modes, the unit's ExecStart, that the example configs
# parse with protoc and name every NodeConfig field, that a second run is
# harmless and keeps an existing kpxd.textpb, and that bad calls fail with
# one line. Prints one line per check; exits non-zero if any check failed.
#
# env: KPX_SOURCE_DIR  repository (default: this file's parent folder)
#      KPX_BIN_DIR     folder with the built kpxd and kpxctl
#                      (default: $KPX_SOURCE_DIR/build/gateway)
set -euo pipefail

src=${KPX_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
bin=${KPX_BIN_DIR:-$src/build/gateway}
install_sh=$src/deploy/install.sh

scratch=$(mktemp -d "${TMPDIR:-/tmp}/kpx-install-test.XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT
root=$scratch/root
mkdir "$root"

failed=0
checks=0

# check DESCRIPTION COMMAND...: runs COMMAND, prints "ok" or "FAIL".
check() {
  local what=$1
  shift
  checks=$((checks + 1))
  if "$@" >/dev/null 2>&1; then
    echo "ok   $what"
  else
    echo "FAIL $what"
    failed=$((failed + 1))
  fi
}

# mode_is MODE PATH: octal permission bits of PATH are MODE.
mode_is() {
  [[ -e $2 && $(stat -c %a "$2") == "$1" ]]
}

# parses MESSAGE FILE: FILE is a valid kpx.v1.MESSAGE in text format.
parses() {
  protoc -I "$src/proto" --encode="kpx.v1.$1" kpx/v1/config.proto <"$2" >/dev/null
}

# proto_fields MESSAGE: the field names of MESSAGE in config.proto.
proto_fields() {
  awk -v msg="$1" '
    $1 == "message" && $2 == msg { inside = 1; next }
    inside && /^}/ { exit }
    inside && /^[[:space:]]*(repeated[[:space:]]+)?[A-Za-z0-9_.]+[[:space:]]+[a-z_0-9]+[[:space:]]*=[[:space:]]*[0-9]+;/ {
      line = $0
      sub(/[[:space:]]*=.*/, "", line)
      n = split(line, w, /[[:space:]]+/)
      print w[n]
    }' "$src/proto/kpx/v1/config.proto"
}

# names_all_fields MESSAGE FILE: every field of MESSAGE is set in FILE
# (as "name:" or "name {", not in a comment).
names_all_fields() {
  local field fields
  fields=$(proto_fields "$1")
  [[ -n $fields ]] || return 1
  for field in $fields; do
    grep -Eq "^[[:space:]]*${field}[[:space:]]*[:{]" "$2" || {
      echo "missing field $field" >&2
      return 1
    }
  done
}

# one_line_error COMMAND...: COMMAND fails and says why in exactly one line.
one_line_error() {
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  ((rc != 0)) && [[ -n $err && $(wc -l <<<"$err") -eq 1 ]]
}

# Checks on the installed tree (they read $root, $unit, ... set below).
unit_exec_start_once() {
  [[ $(grep -c '^ExecStart=' "$unit") -eq 1 ]] && ! grep -q '^ExecStart=/usr/local' "$unit"
}
unit_user() {
  grep -qx 'User=kpx' "$unit" && grep -qx 'Group=kpx' "$unit"
}
unit_writes_state_only() {
  grep -qx 'ProtectSystem=strict' "$unit" && grep -qx 'ReadWritePaths=/var/lib/kpx' "$unit"
}
no_hidden_files() {
  [[ -z $(find "$1" -name '.*' -print -quit) ]]
}
has_every_role() {
  local role
  for role in EXPORTER IMPORTER AUDITOR OPERATOR; do
    grep -Eq "^[[:space:]]*roles: ${role}\$" "$1" || return 1
  done
}
lacks() {
  ! grep -q "$1" "$2"
}
folders_kept() {
  mode_is 750 "$root/etc/kpx" && mode_is 700 "$root/var/lib/kpx"
}
no_systemd_install() {
  local r=$scratch/root2
  "$install_sh" --root "$r" --no-user --no-systemd --bin-dir "$bin" &&
    test -x "$r/usr/local/bin/kpxd" && test ! -e "$r/etc/systemd/system/kpxd.service" &&
    test ! -e "$r/etc/systemd/system/kpxd@.service"
}
fails() {
  ! "$@"
}

echo "install_test: $install_sh into $root (binaries from $bin)"
check "kpxd and kpxctl are built in $bin" test -x "$bin/kpxd" -a -x "$bin/kpxctl"
check "protoc is available" command -v protoc

# ---- first install -----------------------------------------------------------------

run_install() {
  "$install_sh" --root "$root" --prefix /usr --no-user --bin-dir "$bin"
}
check "install.sh --root R --prefix /usr --no-user succeeds" run_install

unit=$root/etc/systemd/system/kpxd.service
example=$root/etc/kpx/kpxd.textpb.example
trust_example=$root/usr/share/kpx/trust-list.example.textpb

check "kpxd installed, mode 755" mode_is 755 "$root/usr/bin/kpxd"
check "kpxctl installed, mode 755" mode_is 755 "$root/usr/bin/kpxctl"
check "kpxd is the built binary" cmp -s "$bin/kpxd" "$root/usr/bin/kpxd"
check "kpxctl is the built binary" cmp -s "$bin/kpxctl" "$root/usr/bin/kpxctl"
check "installed kpxd and kpxctl print their version" bash -c \
  "'$root/usr/bin/kpxd' --version | grep -qE '^kpxd [0-9]+[.][0-9]+[.][0-9]+\$' &&
   '$root/usr/bin/kpxctl' --version | grep -qE '^kpxctl [0-9]+[.][0-9]+[.][0-9]+\$'"
check "pki.sh in share/kpx, mode 755" mode_is 755 "$root/usr/share/kpx/pki.sh"
check "pki.sh is deploy/pki.sh" cmp -s "$src/deploy/pki.sh" "$root/usr/share/kpx/pki.sh"
check "trust-list example in share/kpx" test -f "$trust_example"
check "operations.md in share/doc/kpx" test -f "$root/usr/share/doc/kpx/operations.md"
check "/etc/kpx is a folder, mode 750" mode_is 750 "$root/etc/kpx"
check "/var/lib/kpx is a folder, mode 700" mode_is 700 "$root/var/lib/kpx"
check "/var/lib/kpx/backups is a folder, mode 700" mode_is 700 "$root/var/lib/kpx/backups"
check "example config at /etc/kpx/kpxd.textpb.example" test -f "$example"
check "install.sh writes no /etc/kpx/kpxd.textpb" test ! -e "$root/etc/kpx/kpxd.textpb"
check "systemd unit at /etc/systemd/system/kpxd.service, mode 644" mode_is 644 "$unit"
check "unit ExecStart is /usr/bin/kpxd --config /etc/kpx/kpxd.textpb" \
  grep -qx 'ExecStart=/usr/bin/kpxd --config /etc/kpx/kpxd.textpb' "$unit"
check "unit has exactly one ExecStart and no /usr/local left in it" unit_exec_start_once
check "unit runs as User=kpx Group=kpx" unit_user
# shellcheck disable=SC2016 # $MAINPID is for systemd, not the shell
check "unit reloads with SIGHUP" grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit"
check "unit may write /var/lib/kpx only" unit_writes_state_only
template=$root/etc/systemd/system/kpxd@.service
check "template unit at /etc/systemd/system/kpxd@.service, mode 644" mode_is 644 "$template"
check "template ExecStart is /usr/bin/kpxd --config /etc/kpx/%i/kpxd.textpb" \
  grep -qx 'ExecStart=/usr/bin/kpxd --config /etc/kpx/%i/kpxd.textpb' "$template"
check "template may write its own /var/lib/kpx/%i only" \
  grep -qx 'ReadWritePaths=/var/lib/kpx/%i' "$template"
check "template hides the other Participants' folders" \
  grep -qx 'TemporaryFileSystem=/etc/kpx:ro /var/lib/kpx:ro' "$template"
check "template runs as User=kpx with the same sandbox" \
  diff <(grep -E '^(User|Group|NoNewPrivileges|ProtectSystem|CapabilityBoundingSet|SystemCallFilter|UMask)=' "$unit") \
  <(grep -E '^(User|Group|NoNewPrivileges|ProtectSystem|CapabilityBoundingSet|SystemCallFilter|UMask)=' "$template")
check "no temporary files left in the unit folder" no_hidden_files "$root/etc/systemd/system"

# ---- example configs ---------------------------------------------------------------

check "example config parses as kpx.v1.NodeConfig (protoc)" parses NodeConfig "$example"
check "example config sets every NodeConfig field" names_all_fields NodeConfig "$example"
check "example config sets every DeliveryConfig field" names_all_fields DeliveryConfig "$example"
check "example config gives each role (EXPORTER IMPORTER AUDITOR OPERATOR)" has_every_role "$example"
check "example config keeps the ledger under /var/lib/kpx" \
  grep -Eq '^data_dir: "/var/lib/kpx/' "$example"
check "trust-list example parses as kpx.v1.TrustList (protoc)" parses TrustList "$trust_example"
check "trust-list example holds no private key" lacks PRIVATE "$trust_example"
check "example config holds no private key" lacks PRIVATE "$example"

summary() {
  if ((failed > 0)); then
    echo "install_test: $failed of $checks checks FAILED"
    exit 1
  fi
  echo "install_test: all $checks checks passed"
}

if [[ ! -d $root/etc/kpx ]]; then
  echo "install_test: nothing installed; skipping the remaining checks"
  summary
fi

# ---- second run: harmless, keeps the operator's config ------------------------------

config=$root/etc/kpx/kpxd.textpb
printf '# the operator'"'"'s own config\nparticipant: "BW"\n' >"$config"
chmod 640 "$config"
cp -p "$config" "$scratch/config.before"
cp -p "$unit" "$scratch/unit.before"
check "install.sh runs a second time" run_install
check "second run keeps /etc/kpx/kpxd.textpb unchanged" cmp -s "$scratch/config.before" "$config"
check "second run keeps its mode" mode_is 640 "$config"
check "second run leaves the same unit" cmp -s "$scratch/unit.before" "$unit"
check "second run keeps /etc/kpx at 750 and /var/lib/kpx at 700" folders_kept
check "second run keeps the binaries at 755" mode_is 755 "$root/usr/bin/kpxd"

# ---- other options and refusals -----------------------------------------------------

check "--no-systemd installs no unit" no_systemd_install
check "missing binaries: one-line error" \
  one_line_error "$install_sh" --root "$scratch/root3" --no-user --bin-dir "$scratch/nothing-here"
check "staging root without --no-user: one-line error" \
  one_line_error "$install_sh" --root "$scratch/root4" --bin-dir "$bin"
check "relative --prefix: one-line error" \
  one_line_error "$install_sh" --root "$scratch/root5" --no-user --prefix usr --bin-dir "$bin"
check "unknown option is refused" fails "$install_sh" --frobnicate

summary
