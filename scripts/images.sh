#!/usr/bin/env bash
# Build (or reuse) the Postfix container images from Debian packages with
# debootstrap + podman import: no registry needed. The tag is a hash of the
# inputs (the build function below, images/packages.txt, the suite), so a
# second run with unchanged inputs reuses the image and rebuilds nothing.
#
#   scripts/images.sh [SUITE ...]     default: bullseye bookworm trixie sid bookworm-systemd
#   scripts/images.sh --print-tag SUITE
#
# SUITE-systemd is the same Postfix with systemd as PID 1 (the packages of
# images/packages-systemd.txt added; run it with `podman run --systemd=always
# IMAGE`): Postfix is started by its Debian units (postfix@-.service), as on a
# gateway, so the role's systemd handlers (enforce_tls_service_manager=systemd)
# are tested against a real systemctl. Its main.cf logs to /var/log/postfix.log
# (Postfix's postlog service) instead of /dev/stdout, which only start-fg has.
#
# bullseye has Postfix 3.5 (Python 3.9), bookworm 3.7, trixie 3.10, sid 3.11 at
# the time of writing. sid moves: the package versions an image got are kept in
# the image (/etc/mailgw-image-packages, and labels org.mailgw.postfix,
# org.mailgw.python3, org.mailgw.openssl) and printed on every run, so a rebuild
# that brought other versions is visible in the log.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

image_tag() {
  # The inputs: the build recipe (the build function's text, as bash prints
  # it), the package list and the suite.
  local suite="$1"
  local h
  h="$( { declare -f build; cat "$ROOT/images/packages.txt"; echo "$suite"
          case "$suite" in *-systemd) cat "$ROOT/images/packages-systemd.txt" ;; esac
        } | sha256sum | cut -c1-12)"
  echo "$IMAGE_REPO:$suite-$h"
}

mirror() {
  # The mirror apt already uses (deb822 or classic sources list), read at run time.
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m="$(awk '$1=="deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)"
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

build() {
  local suite="$1" tag rootfs pkgs release_suite="${1%-systemd}" systemd=no cmd='["postfix", "start-fg"]'
  case "$suite" in *-systemd) systemd=yes; cmd='["/sbin/init"]' ;; esac
  tag="$(image_tag "$suite")"
  if podman image exists "$tag"; then
    echo "[images] $tag (cached)" >&2
    return 0
  fi
  echo "[images] building $tag with debootstrap (about a minute)" >&2
  rootfs="$(mktemp -d "$CACHE/rootfs-$suite.XXXXXX")"
  trap 'rm -rf "$rootfs"' RETURN
  pkgs="$(grep -v '^\s*#' "$ROOT/images/packages.txt" | grep -v '^\s*$' | paste -sd, -)"
  if [ "$systemd" = yes ]; then
    pkgs="$pkgs,$(grep -v '^\s*#' "$ROOT/images/packages-systemd.txt" | grep -v '^\s*$' | paste -sd, -)"
  fi
  if ! debootstrap --variant=minbase --include="$pkgs" "$release_suite" "$rootfs" "$(mirror)" \
        > "$CACHE/debootstrap-$suite.log" 2>&1; then
    tail -n 30 "$CACHE/debootstrap-$suite.log" >&2
    echo "[images] debootstrap of $suite failed (log: $CACHE/debootstrap-$suite.log)" >&2
    return 1
  fi
  # A usable Postfix out of the box: local delivery off, no DNS needed, logs to stdout.
  # compatibility_level: the newest level this Postfix knows, so postfix check
  # stays quiet: 2 on 3.5 (the "3.6" form came with 3.6), 3.6 on 3.6 to 3.10,
  # the release itself from 3.11 on (3.11 asks for compatibility_level=3.11).
  chroot "$rootfs" /usr/bin/env MAILGW_SYSTEMD="$systemd" /bin/sh -c '
    set -e
    release="$(postconf -h mail_version | cut -d. -f1,2)"
    case "$release" in
      3.[0-5]) level=2 ;;
      3.[6-9]|3.10) level=3.6 ;;
      *) level="$release" ;;
    esac
    postconf -e "myhostname=gateway.test" "mydestination=" "inet_interfaces=all" \
      "inet_protocols=ipv4" "maillog_file=/dev/stdout" "smtp_dns_support_level=disabled" \
      "smtputf8_enable=no" "compatibility_level=$level" "mynetworks=127.0.0.0/8"
    if [ "$MAILGW_SYSTEMD" = yes ]; then
      # /dev/stdout works only under start-fg; systemd starts Postfix in the background.
      # No getty on a container console, no unit that needs hardware.
      postconf -e "maillog_file=/var/log/postfix.log"
      systemctl mask getty@tty1.service console-getty.service systemd-logind.service \
        systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
    fi
    rm -f /etc/hostname
    dpkg-query -W -f "\${Package} \${Version}\n" > /etc/mailgw-image-packages
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
  '
  local pfx py ssl
  pfx="$(awk '$1=="postfix" {print $2}' "$rootfs/etc/mailgw-image-packages")"
  py="$(awk '$1=="python3" {print $2}' "$rootfs/etc/mailgw-image-packages")"
  ssl="$(awk '$1=="openssl" {print $2}' "$rootfs/etc/mailgw-image-packages")"
  tar -C "$rootfs" -c . | podman import \
     --change "CMD $cmd" \
     --change "LABEL org.mailgw.suite=$suite" \
     --change "LABEL org.mailgw.postfix=$pfx" \
     --change "LABEL org.mailgw.python3=$py" \
     --change "LABEL org.mailgw.openssl=$ssl" - "$tag" >/dev/null
  # Stable alias for humans and Molecule (points at the current inputs' image)
  podman tag "$tag" "$IMAGE_REPO:$suite"
  echo "[images] built $tag" >&2
}

if [ "${1:-}" = "--print-tag" ]; then image_tag "$2"; exit 0; fi

mkdir -p "$CACHE"
suites=("$@")
[ "${#suites[@]}" -gt 0 ] || suites=(bullseye bookworm trixie sid bookworm-systemd)
# The suites are built side by side: debootstrap mostly waits on downloads
# and dpkg, so four builds take little longer than one.
pids=()
for s in "${suites[@]}"; do
  build "$s" &
  pids+=("$!")
done
failed=0
for p in "${pids[@]}"; do
  wait "$p" || failed=1
done
[ "$failed" = 0 ] || { echo "[images] an image build failed (see above)" >&2; exit 1; }
for s in "${suites[@]}"; do
  # keep the alias pointing at the image of the current inputs
  podman tag "$(image_tag "$s")" "$IMAGE_REPO:$s"
  # what the image got (sid moves: a rebuild shows here)
  podman image inspect --format \
    "[images] $s: postfix {{index .Labels \"org.mailgw.postfix\"}}, python3 {{index .Labels \"org.mailgw.python3\"}}, openssl {{index .Labels \"org.mailgw.openssl\"}}" \
    "$(image_tag "$s")" >&2
done
# Remove images of older inputs so the cache does not grow without bound; not
# forced: an image a container still uses (another checkout's running
# scenario) stays until the next run.
for s in "${suites[@]}"; do
  keep="$(image_tag "$s")"
  # SUITE-HASH only: bookworm's old tags, not bookworm-systemd's
  podman images --format '{{.Repository}}:{{.Tag}}' | grep -E "^$IMAGE_REPO:$s-[0-9a-f]{12}\$" | grep -vx "$keep" \
    | xargs -r -n1 podman rmi >/dev/null 2>&1 || true
done
