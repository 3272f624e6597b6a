#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (as root): apt packages, the
# pinned virtual environment, the collection link. Fast when already done.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

APT_PACKAGES=(podman runc debootstrap postfix postfix-lmdb postfix-cdb swaks
              openssl rsync git ca-certificates uidmap slirp4netns)

log() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
  echo "setup: must run as root (apt packages, podman, host postfix)" >&2
  exit 1
fi

# setup.sh [apt|venv]: only one part (./run overlaps the venv with the image
# build, which needs the apt packages); no argument: everything.
part="${1:-all}"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "$part" != venv ] && [ "${#missing[@]}" -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # postfix asks how to configure itself; the host copy is only used for its
  # postconf/postmap binaries against throwaway config directories.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$part" != apt ] || exit 0

mkdir -p "$CACHE"
req_hash="$(sha256sum "$ROOT/requirements-dev.txt" | cut -c1-16)"
if [ ! -f "$VENV/.req-$req_hash" ]; then
  # A complete venv from an earlier requirements-dev.txt (it has a .req-*
  # mark) is brought up to date in place: pip installs only what changed, and
  # the tools stay usable meanwhile. (A pin removed from the file leaves its
  # package behind: delete .cache/venv to start clean.) Otherwise a new one.
  if compgen -G "$VENV/.req-*" >/dev/null && "$VENV/bin/python" -c '' 2>/dev/null; then
    log "updating the virtual environment in $VENV (requirements-dev.txt changed)"
  else
    log "creating virtual environment in $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  fi
  "$VENV/bin/pip" install -q -r "$ROOT/requirements-dev.txt" 2>&1 | { grep -v "^WARNING: Location" || true; }; [ "${PIPESTATUS[0]}" = 0 ]
  rm -f "$VENV"/.req-*
  touch "$VENV/.req-$req_hash"
fi

# Make the working tree importable as ansible_collections.mailgw.postfix_tls
mkdir -p "$COLLECTIONS_DIR/ansible_collections/mailgw"
link="$COLLECTIONS_DIR/ansible_collections/mailgw/postfix_tls"
if [ "$(readlink "$link" 2>/dev/null)" != "$ROOT" ]; then
  rm -rf "$link"
  ln -s "$ROOT" "$link"
fi
