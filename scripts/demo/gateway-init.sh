#!/bin/sh
# PID 1 of a demo gateway container. Postfix runs as a daemon (not
# "postfix start-fg"), so the role's restart (postfix stop; postfix start)
# does not end the container; its log goes to /var/log/mail.log, which the
# demo's probes read. The network namespace has only loopback (podman
# --network none): the gateway listens on 127.0.0.1, its peers on other
# loopback addresses in the same namespace.
postconf -e "maillog_file=/var/log/mail.log" "inet_interfaces=127.0.0.1"
postfix start
trap 'postfix stop; exit 0' TERM INT
while :; do
  sleep 3600 &
  wait $!
done
