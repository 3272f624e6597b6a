#!/bin/sh
# Runs inside a demo gateway container (podman exec) before the playbook:
# what a real gateway has before the TLS recipes are applied.
#
#   prepare-gateway.sh LAYOUT FQDN        LAYOUT: postfix | ciphermail
#
# - a self-signed certificate and key for smtpd (the inventory points
#   enforce_tls_smtpd_cert_file/key_file at them)
# - routing: plain.example goes to the plaintext-only peer on [127.0.0.2]:25;
#   internal.example (postfix layout) to the internal hop [127.0.0.1]:10025
# - ciphermail layout: CipherMail's wiring, i.e. every message passes through
#   the content filter on [127.0.0.1]:10025, which re-injects on
#   127.0.0.1:10026, and an existing ${maps_d_dir}/hash-tls-policy.map with
#   an entry added by hand (the role must keep it)
# Safe to run twice.
set -eu
layout="$1"
fqdn="$2"

postconf -e "myhostname=$fqdn" "transport_maps=texthash:/etc/postfix/transport"

mkdir -p /etc/postfix/tls
if [ ! -s /etc/postfix/tls/gateway.key ] || [ ! -s /etc/postfix/tls/gateway.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=$fqdn" \
    -addext "subjectAltName=DNS:$fqdn" \
    -keyout /etc/postfix/tls/gateway.key -out /etc/postfix/tls/gateway.crt 2>/dev/null
fi
chmod 0600 /etc/postfix/tls/gateway.key

case "$layout" in
  postfix)
    printf '%s\n' \
      "plain.example     smtp:[127.0.0.2]:25" \
      "internal.example  smtp:[127.0.0.1]:10025" > /etc/postfix/transport
    ;;
  ciphermail)
    printf '%s\n' "plain.example     smtp:[127.0.0.2]:25" > /etc/postfix/transport
    mkdir -p /etc/postfix/maps.d
    if [ ! -e /etc/postfix/maps.d/hash-tls-policy.map ]; then
      printf '%s\n' \
        "# TLS policy (CipherMail). Entries below were added by hand." \
        "legacy-partner.example encrypt" > /etc/postfix/maps.d/hash-tls-policy.map
      postmap hash:/etc/postfix/maps.d/hash-tls-policy.map
    fi
    postconf -e 'maps_d_dir=/etc/postfix/maps.d' \
      'smtp_tls_policy_maps=hash:${maps_d_dir}/hash-tls-policy.map' \
      'content_filter=smtp:[127.0.0.1]:10025'
    postconf -M '127.0.0.1:10026/inet=127.0.0.1:10026 inet n - n - - smtpd'
    postconf -P '127.0.0.1:10026/inet/content_filter=' \
      '127.0.0.1:10026/inet/receive_override_options=no_unknown_recipient_checks,no_header_body_checks' \
      '127.0.0.1:10026/inet/mynetworks=127.0.0.0/8' \
      '127.0.0.1:10026/inet/smtpd_recipient_restrictions=permit_mynetworks,reject'
    ;;
  *)
    echo "prepare-gateway.sh: unknown layout '$layout' (postfix or ciphermail)" >&2
    exit 2
    ;;
esac

postfix check
# master.cf gained a service and inet_interfaces may have changed: restart.
postfix stop >/dev/null 2>&1 || true
postfix start >/dev/null 2>&1
