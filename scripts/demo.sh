#!/usr/bin/env bash
# The main job: a local fleet of Postfix gateways in podman containers, the
# TLS recipes applied with playbooks/site.yml and the example inventory
# (playbooks/inventory), and a report per gateway with live SMTP probes.
#
#   scripts/demo.sh up      (re)create the fleet, print the preflight report per
#                           gateway (playbooks/preflight.yml, check mode), apply
#                           site.yml, report, apply again (must change
#                           nothing), run the drift check
#   scripts/demo.sh down    remove the fleet's containers
#   scripts/demo.sh fleet   only (re)create and prepare the containers
#                           (no playbook; the convergence tests use this)
#   scripts/demo.sh probe   only the report per gateway (levels, policy table,
#                           live SMTP probes) of the running fleet
#
# Environment: MAILGW_DEMO_PREFIX (container name prefix, default mailgw-demo),
# MAILGW_DEMO_HOSTS (a subset of the fleet, e.g. "edge-1 cm-1").
#
# Network: every gateway runs with --network none, i.e. only its own loopback.
# Its peers live in the same network namespace: the plaintext-only peer is a
# second Postfix container (--network container:GATEWAY) on 127.0.0.2:25,
# the internal hop / content filter the Molecule scenarios' SMTP peer
# (molecule/resources/files/smtp_peer.py) on 127.0.0.1:10025 inside the gateway
# container. The probes are the Molecule scenarios' too (smtp_probe.py run),
# run inside the gateway (podman exec); both are mounted at /opt/mailgw-test.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

PREFIX="${MAILGW_DEMO_PREFIX:-mailgw-demo}"
STATE="$CACHE/demo/$PREFIX"
INVENTORY="$ROOT/playbooks/inventory"
# The SMTP peer and probe of the Molecule scenarios, mounted read-only
TEST_FILES="$ROOT/molecule/resources/files"

# inventory name, Debian suite of the image, layout. Mirrors
# playbooks/inventory: hosts.yml and group_vars (postfix_gateways /
# ciphermail_gateways).
FLEET=(
  "edge-1 bookworm postfix"
  "edge-2 trixie postfix"
  "cm-1 trixie ciphermail"
)

log() { printf '[demo] %s\n' "$*" >&2; }
die() { printf '[demo] ERROR: %s\n' "$*" >&2; exit 1; }

selected() {
  # The fleet entries named in MAILGW_DEMO_HOSTS (default: all)
  local entry name want
  for entry in "${FLEET[@]}"; do
    name="${entry%% *}"
    if [ -z "${MAILGW_DEMO_HOSTS:-}" ]; then
      echo "$entry"
    else
      for want in $MAILGW_DEMO_HOSTS; do
        [ "$want" = "$name" ] && echo "$entry"
      done
    fi
  done
  return 0
}

host_names() { selected | awk '{print $1}' | paste -sd' ' -; }

remove_fleet() {
  local entry name
  for entry in "${FLEET[@]}"; do
    name="$PREFIX-${entry%% *}"
    # the peer shares the gateway's network namespace: remove it first
    podman rm -f -t 0 --ignore "$name-peer" >/dev/null
    podman rm -f -t 0 --ignore "$name" >/dev/null
  done
}

wait_for() {
  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit="$1" what="$2" i
  shift 2
  for ((i = 0; i < limit * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "timed out after ${limit}s waiting for $what"
}

start_gateway() {
  local host="$1" suite="$2" layout="$3"
  local gw="$PREFIX-$host" image="$IMAGE_REPO:$suite"
  # the internal hop (postfix layout) or content filter (ciphermail layout,
  # re-injecting on 127.0.0.1:10026): plaintext SMTP on 127.0.0.1:10025
  local hop
  hop="$(hop_name "$layout")"
  local peers='[{"name": "'"$hop"'", "listen": "127.0.0.1", "port": 10025,
    "spool": "/var/spool/mailgw-test/'"$hop"'"'
  [ "$layout" = ciphermail ] && peers+=', "relay_to": "127.0.0.1:10026"'
  peers+='}]'

  podman run -d --name "$gw" --hostname "$host.demo.test" --network none \
    --label "org.mailgw.demo=$PREFIX" \
    -v "$ROOT/scripts/demo:/opt/mailgw-demo:ro" \
    -v "$TEST_FILES:/opt/mailgw-test:ro" \
    "$image" /opt/mailgw-demo/gateway-init.sh >/dev/null
  wait_for 30 "Postfix in $gw" podman exec "$gw" postfix status
  podman exec "$gw" /opt/mailgw-demo/prepare-gateway.sh "$layout" "$host.demo.test"
  wait_for 30 "Postfix in $gw after preparation" podman exec "$gw" postfix status

  # smtp_peer.py binds its sockets before it detaches: when this returns, it listens
  podman exec "$gw" sh -c 'mkdir -p /etc/mailgw-demo && printf "%s\n" "$1" >/etc/mailgw-demo/peers.json &&
    python3 /opt/mailgw-test/smtp_peer.py --config /etc/mailgw-demo/peers.json --daemon \
      --pidfile /run/mailgw-demo-peers.pid --log /var/log/mailgw-demo-peers.log' sh "$peers"
  # the plaintext-only peer: Postfix on 127.0.0.2:25 that offers no STARTTLS
  podman run -d --name "$gw-peer" --network "container:$gw" \
    --label "org.mailgw.demo=$PREFIX" "$image" sh -c '
      set -e
      # Postfix insists that inet_interfaces are interface addresses; an
      # explicit master.cf endpoint binds 127.0.0.2 without that check.
      postconf -MX smtp/inet
      postconf -M "127.0.0.2:25/inet=127.0.0.2:25 inet n - y - - smtpd"
      postconf -e myhostname=plain-peer.demo.test smtpd_tls_security_level=none \
        smtpd_discard_ehlo_keywords=starttls mydestination=plain.example local_recipient_maps=
      exec postfix start-fg' >/dev/null
  wait_for 30 "listeners 127.0.0.1:10025 and 127.0.0.2:25 in $gw" \
    podman exec "$gw" sh -c 'ss -Hltn | grep -q "127.0.0.1:10025 " && ss -Hltn | grep -q "127.0.0.2:25 "'
}

fleet_up() {
  local entries entry host suite layout pids=() names=() i rc=0
  mapfile -t entries < <(selected)
  [ "${#entries[@]}" -gt 0 ] || die "MAILGW_DEMO_HOSTS='${MAILGW_DEMO_HOSTS:-}' names no host of the fleet ($(for e in "${FLEET[@]}"; do printf '%s ' "${e%% *}"; done))"
  for entry in "${entries[@]}"; do
    read -r host suite layout <<<"$entry"
    podman image exists "$IMAGE_REPO:$suite" || die "image $IMAGE_REPO:$suite is missing: run ./run images"
  done
  remove_fleet
  mkdir -p "$STATE"
  for entry in "${entries[@]}"; do
    read -r host suite layout <<<"$entry"
    log "starting $PREFIX-$host (Debian $suite, layout $layout) and its plaintext-only peer"
    ( start_gateway "$host" "$suite" "$layout" ) >"$STATE/start-$host.log" 2>&1 &
    pids+=("$!")
    names+=("$host")
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      rc=1
      log "starting ${names[$i]} failed:"
      sed 's/^/    /' "$STATE/start-${names[$i]}.log" >&2
    fi
  done
  [ "$rc" -eq 0 ] || die "the fleet did not come up"
}

run_site() {
  # run_site LOGFILE: apply site.yml to the selected hosts, output in LOGFILE
  local logfile="$1"
  ansible-playbook -i "$INVENTORY" "$ROOT/playbooks/site.yml" \
    -e "demo_container_prefix=$PREFIX" --limit "$(host_names | tr ' ' ',')" >"$logfile" 2>&1
}

recap() { sed -n '/^PLAY RECAP/,/^$/p' "$1" | sed '/^$/d'; }

# The plaintext-only peer every gateway routes plain.example to
# (prepare-gateway.sh): the preflight must predict that it would defer.
PREFLIGHT_DESTINATIONS='["[127.0.0.2]:25"]'

run_preflight() {
  # run_preflight LOGFILE: playbooks/preflight.yml (the role in check mode with
  # its preflight) on the selected hosts; one JSON report per host in
  # $STATE/preflight
  local logfile="$1"
  rm -rf "$STATE/preflight" && mkdir -p "$STATE/preflight"
  ansible-playbook -i "$INVENTORY" "$ROOT/playbooks/preflight.yml" \
    -e "demo_container_prefix=$PREFIX" --limit "$(host_names | tr ' ' ',')" \
    -e "{\"enforce_tls_preflight_destinations\": $PREFLIGHT_DESTINATIONS}" \
    -e "rollout_report_dir=$STATE/preflight" >"$logfile" 2>&1
}

print_preflight() {
  # print_preflight HOST: the preflight report of HOST; fails unless it
  # predicts that mail to the plaintext-only peer would defer
  python3 - "$STATE/preflight/$1.preflight.json" <<'PY'
import json, sys
try:
    with open(sys.argv[1]) as handle:
        report = json.load(handle)
except OSError as err:
    print("    [FAIL] no preflight report: %s" % err)
    sys.exit(1)
print("    %s" % report["summary"])
for d in report["destinations"]:
    if d["affected"]:
        verdict = ("would defer" if d["would_defer"] else "unreachable" if d["reachable"] is False
                   else "not probed" if not d["probed"] else "ok")
        print("      %-26s %s -> %-8s %-11s %s" % (d["destination"], d["level_before"], d["level"], verdict, d["reason"]))
ok = "[127.0.0.2]:25" in report["would_defer"]
print("    [%s] the preflight predicts the deferral to the plaintext-only peer [127.0.0.2]:25" % ("ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)
PY
}

# The SMTP peer on 127.0.0.1:10025 (spool and probe expectations use the name)
hop_name() { if [ "$1" = ciphermail ]; then echo content-filter.demo.test; else echo internal-hop.demo.test; fi; }

probe_steps() {
  # probe_steps LAYOUT: the smtp_probe.py steps (JSON) of the report. The
  # gateway's certificate is self-signed: STARTTLS without a CA file (cafile null).
  local layout="$1" hop
  hop="$(hop_name "$layout")"
  local plaintext='{"kind": "session", "name": "plaintext MAIL FROM on 127.0.0.1:25 is refused with 530 (STARTTLS offered)",
    "starttls": false, "rcpt": "user@plain.example",
    "expect": {"starttls_offered": true, "mail": 530, "text": "5.7.0 Must issue a STARTTLS command first"}}'
  local deferred='"rcpt": "user@plain.example", "cafile": null, "expect": "deferred",
    "reason": "TLS is required, but was not offered by host 127.0.0.2[127.0.0.2]"'
  if [ "$layout" = ciphermail ]; then
    printf '[%s, %s]\n' "$plaintext" '{"kind": "submit",
      "name": "over STARTTLS mail to user@plain.example passes the content filter [127.0.0.1]:10025 (policy none), is re-injected on 127.0.0.1:10026 without TLS (-o smtpd_tls_security_level=none), and its delivery to the plaintext-only peer [127.0.0.2]:25 is deferred",
      '"$deferred"', "via": ["'"$hop"'"]}'
  else
    printf '[%s, %s, %s]\n' "$plaintext" '{"kind": "submit",
      "name": "over STARTTLS mail to user@plain.example is accepted; its delivery to the plaintext-only peer [127.0.0.2]:25 is deferred",
      '"$deferred"'}' '{"kind": "submit",
      "name": "mail to user@internal.example is delivered to the internal hop [127.0.0.1]:10025 without TLS (policy none)",
      "rcpt": "user@internal.example", "cafile": null, "expect": "delivered", "peer": "'"$hop"'", "tls": false}'
  fi
}

# smtp_probe.py's JSON report as one "[ok]"/"[FAIL]" line per probe; fails when one failed
print_probes() {
  python3 -c '
import json, sys
report = json.load(sys.stdin)
for result in report["results"]:
    print("    [%s] %s\n           %s" % ("ok" if result["ok"] else "FAIL", result["name"], result["detail"]))
sys.exit(0 if report["ok"] else 1)'
}

report_gateway() {
  local host="$1" suite="$2" layout="$3" gw="$PREFIX-$host"
  local version maps table rc=0
  version="$(podman exec "$gw" postconf -h mail_version)"
  printf '\n== %s  (container %s: Debian %s, Postfix %s, layout %s)\n' "$host" "$gw" "$suite" "$version" "$layout"
  echo "  effective levels (postconf):"
  podman exec "$gw" postconf smtp_tls_security_level smtpd_tls_security_level smtp_tls_policy_maps | sed 's/^/    /'
  if [ "$layout" = ciphermail ]; then
    podman exec "$gw" postconf maps_d_dir content_filter | sed 's/^/    /'
    echo "  re-injection service (postconf -P):"
    podman exec "$gw" postconf -P '127.0.0.1:10026/inet/smtpd_tls_security_level' | sed 's/^/    /'
  fi
  maps="$(podman exec "$gw" postconf -x -h smtp_tls_policy_maps)"
  table="${maps#*:}"
  echo "  policy table ${table}:"
  podman exec "$gw" cat "$table" | sed '/^[[:space:]]*$/d; s/^/    /'
  echo "  live SMTP probes (inside the gateway's network namespace):"
  podman exec "$gw" python3 /opt/mailgw-test/smtp_probe.py run --steps "$(probe_steps "$layout")" | print_probes || rc=1
  echo "  the plaintext-only peer saw (its log):"
  podman logs "$gw-peer" 2>&1 | grep -E 'disconnect from' | tail -n 1 | sed 's/^.*postfix/    postfix/'
  return $rc
}

up() {
  local entries entry host suite layout failed=0
  fleet_up
  mapfile -t entries < <(selected)

  log "preflight: playbooks/preflight.yml in check mode (log: $STATE/preflight.log)"
  run_preflight "$STATE/preflight.log" || { tail -n 40 "$STATE/preflight.log" >&2; die "preflight.yml failed (full log: $STATE/preflight.log)"; }
  echo
  echo "================ preflight per gateway (before any change) ================"
  for entry in "${entries[@]}"; do
    read -r host suite layout <<<"$entry"
    printf '\n== %s\n' "$host"
    print_preflight "$host" || failed=1
  done
  echo

  log "applying playbooks/site.yml to $(host_names) (log: $STATE/site-1.log)"
  if ! run_site "$STATE/site-1.log"; then
    tail -n 40 "$STATE/site-1.log" >&2
    die "site.yml failed (full log: $STATE/site-1.log)"
  fi
  echo
  echo "First run of playbooks/site.yml:"
  recap "$STATE/site-1.log" | sed 's/^/  /'

  echo
  echo "================ report per gateway ================"
  for entry in "${entries[@]}"; do
    read -r host suite layout <<<"$entry"
    report_gateway "$host" "$suite" "$layout" || failed=1
  done

  echo
  echo "================ second run: nothing may change ================"
  log "applying playbooks/site.yml again (log: $STATE/site-2.log)"
  run_site "$STATE/site-2.log" || { tail -n 40 "$STATE/site-2.log" >&2; die "second site.yml run failed"; }
  recap "$STATE/site-2.log" | sed 's/^/  /'
  if recap "$STATE/site-2.log" | grep -qE 'changed=[1-9]'; then
    echo "  second run CHANGED something: not idempotent"
    failed=1
  else
    echo "  second run: changed=0 on every gateway"
  fi

  echo
  echo "================ convergence check (playbooks/check-drift) ================"
  local drc=0
  "$ROOT/playbooks/check-drift" --report-dir "$STATE/drift-report" -i "$INVENTORY" \
    -e "demo_container_prefix=$PREFIX" --limit "$(host_names | tr ' ' ',')" >"$STATE/check.log" 2>&1 || drc=$?
  sed -n '/^DRIFT REPORT/,$p' "$STATE/check.log" | sed 's/^/  /'
  [ "$drc" -eq 0 ] || { echo "  check-drift exit status $drc (log: $STATE/check.log)"; failed=1; }

  echo
  if [ "$failed" -eq 0 ]; then
    echo "demo: all probes passed, second run changed nothing, fleet converged."
  else
    echo "demo: FAILED (see above; logs in $STATE)"
  fi
  echo "Containers: $(podman ps --filter "label=org.mailgw.demo=$PREFIX" --format '{{.Names}}' | sort | paste -sd' ' -)"
  local teardown="./run destroy" env=""
  [ "$PREFIX" = mailgw-demo ] || { env="MAILGW_DEMO_PREFIX=$PREFIX "; teardown="${env}scripts/demo.sh down"; }
  echo "Try: podman exec -it $PREFIX-${entries[0]%% *} sh     Probes again: ${env}scripts/demo.sh probe     Tear down: $teardown"
  return "$failed"
}

probe() {
  local entries entry host suite layout failed=0
  mapfile -t entries < <(selected)
  for entry in "${entries[@]}"; do
    read -r host suite layout <<<"$entry"
    report_gateway "$host" "$suite" "$layout" || failed=1
  done
  return "$failed"
}

case "${1:-}" in
  up) up ;;
  probe) probe ;;
  fleet) fleet_up; log "fleet up: $(host_names) (prefix $PREFIX)" ;;
  down) remove_fleet; log "fleet removed (prefix $PREFIX)" ;;
  help|-h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" ;;
  *) echo "usage: scripts/demo.sh up|down|fleet|probe|help" >&2; exit 2 ;;
esac
