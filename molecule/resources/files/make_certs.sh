#!/bin/sh
# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Test certificates for the Molecule scenarios, made with openssl at prepare time.
#
#   make_certs.sh OUTDIR SPEC...      SPEC = NAME:CA:DNSNAME[,DNSNAME...]
#
# CA is "test" (the CA the gateway trusts through smtp_tls_CAfile) or "rogue"
# (a CA nobody trusts). Writes OUTDIR/{test,rogue}-ca.{crt,key} once and
# OUTDIR/NAME.{crt,key} per SPEC. Existing files are kept, so a second run
# changes nothing.
set -eu
out="$1"
shift
mkdir -p "$out"
cd "$out"

ca() {
  [ -s "$1-ca.crt" ] && return 0
  # A config of its own rather than -addext: OpenSSL 1.1.1 (bullseye) would add
  # the extensions on top of its openssl.cnf's v3_ca ones, and a certificate
  # with basicConstraints twice is refused by every verifier.
  printf '%s\n' '[req]' 'distinguished_name = dn' 'x509_extensions = v3_ca' 'prompt = no' \
    '[dn]' "CN = mailgw $1 CA" \
    '[v3_ca]' 'basicConstraints = critical,CA:TRUE' 'keyUsage = critical,keyCertSign,cRLSign' \
    'subjectKeyIdentifier = hash' > "$1-ca.cnf"
  openssl req -x509 -config "$1-ca.cnf" -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1-ca.key" -out "$1-ca.crt" -days 30 2>/dev/null
  rm -f "$1-ca.cnf"
}

ca test
ca rogue

for spec in "$@"; do
  name="${spec%%:*}"
  rest="${spec#*:}"
  issuer="${rest%%:*}"
  names="${rest#*:}"
  [ -s "$name.crt" ] && continue
  san="$(printf '%s' "$names" | sed 's/^/DNS:/; s/,/,DNS:/g')"
  cn="${names%%,*}"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA "$issuer-ca.crt" -CAkey "$issuer-ca.key" \
    -CAcreateserial -days 30 -out "$name.crt" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
  chmod 600 "$name.key"
done
