#!/usr/bin/env python3
# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Turn the bare Postfix image into a test gateway with SMTP peers.

Runs inside the gateway container (one call from the Molecule prepare step,
so the slow per-task container round trips are paid once). Configuration is
one JSON object:

  certs             make_certs.sh specs (NAME:CA:DNSNAME[,DNSNAME...])
  peers             smtp_peer.py peers: name, listen, port (25), cert (a
                    certificate NAME from certs), relay_to
  transport         transport map: {destination: nexthop}
  postconf          main.cf settings on top of the base settings below
  postconf_remove   main.cf settings to remove (back to Postfix defaults)
  master_cf_append  text appended to master.cf (services such as CipherMail's
                    re-injection listener)
  mkdirs            extra directories to create
  files             files of the starting state: [{path, content, postmap}],
                    postmap (a map type such as "hash") indexes the file

The container has loopback only. The gateway listens on 127.0.0.1 (not all
addresses, so peers can use port 25 on 127.0.0.2, 127.0.0.3, ...); names of
peers come from /etc/hosts (the platform's etc_hosts), routes from the
transport map. Postfix runs in daemon mode (the container's main process is
not Postfix, so the role may stop and start it).
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TLS_DIR = "/etc/mailgw-test/tls"
SPOOL_DIR = "/var/spool/mailgw-test"
PEERS_JSON = "/etc/mailgw-test/peers.json"
PIDFILE = "/run/mailgw-test-peers.pid"

BASE_POSTCONF = {
    "inet_interfaces": "127.0.0.1",
    "maillog_file": "/var/log/postfix.log",
    "transport_maps": "texthash:/etc/postfix/transport",
    "smtp_tls_CAfile": TLS_DIR + "/test-ca.crt",
    "smtp_tls_loglevel": "1",
    "smtpd_tls_loglevel": "1",
    # A deferred probe stays deferred while a verifier watches it; verifiers
    # flush explicitly with postqueue -f.
    "minimal_backoff_time": "1h",
    "maximal_backoff_time": "2h",
    "queue_run_delay": "1h",
}


def run(argv, **kwargs):
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise SystemExit("command failed (%d): %s\n%s" % (proc.returncode, " ".join(argv), proc.stdout))
    return proc.stdout


def write_file(path, content, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(content)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def wait_listening(host, port, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise SystemExit("nothing listens on %s:%s after %ss: %s" % (host, port, timeout, exc))
            time.sleep(0.2)


def stop_peers():
    try:
        with open(PIDFILE) as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 15)
    except OSError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    os.unlink(PIDFILE)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-json", required=True)
    args = parser.parse_args(argv)
    cfg = json.loads(args.config_json)
    done = []

    for d in [TLS_DIR, SPOOL_DIR] + cfg.get("mkdirs", []):
        os.makedirs(d, exist_ok=True)

    for f in cfg.get("files", []):
        write_file(f["path"], f["content"])
        if f.get("postmap"):
            run(["postmap", "%s:%s" % (f["postmap"], f["path"])])
        done.append("wrote %s%s" % (f["path"], " (postmap %s)" % f["postmap"] if f.get("postmap") else ""))

    run(["sh", os.path.join(HERE, "make_certs.sh"), TLS_DIR] + cfg.get("certs", []))
    done.append("certificates: %s" % ", ".join(sorted(f for f in os.listdir(TLS_DIR) if f.endswith(".crt"))))

    postconf = dict(BASE_POSTCONF)
    postconf.update(cfg.get("postconf", {}))
    run(["postconf", "-e"] + ["%s=%s" % kv for kv in sorted(postconf.items())])
    if cfg.get("postconf_remove"):
        run(["postconf", "-X"] + cfg["postconf_remove"])
    # Outside a chroot every service reads /etc/hosts and the test CA directly.
    run(["postconf", "-F", "*/*/chroot = n"])
    if cfg.get("master_cf_append"):
        with open("/etc/postfix/master.cf") as fh:
            master = fh.read()
        marker = "# mailgw-test services\n"
        if marker not in master:
            write_file("/etc/postfix/master.cf", master.rstrip("\n") + "\n" + marker + cfg["master_cf_append"])
    done.append("main.cf: " + run(["postconf", "-n"]).replace("\n", "; "))

    lines = ["# Written by the Molecule prepare step: test domain -> peer"]
    lines += ["%s %s" % kv for kv in sorted(cfg.get("transport", {}).items())]
    write_file("/etc/postfix/transport", "\n".join(lines) + "\n")

    peers = []
    for p in cfg.get("peers", []):
        entry = {"name": p["name"], "listen": p["listen"], "port": int(p.get("port", 25)),
                 "spool": os.path.join(SPOOL_DIR, p["name"])}
        if p.get("cert"):
            entry["cert"] = os.path.join(TLS_DIR, p["cert"] + ".crt")
            entry["key"] = os.path.join(TLS_DIR, p["cert"] + ".key")
        if p.get("relay_to"):
            entry["relay_to"] = p["relay_to"]
        peers.append(entry)
    write_file(PEERS_JSON, json.dumps(peers, indent=1) + "\n")

    if stop_peers():
        done.append("stopped earlier peers")
    run(["python3", os.path.join(HERE, "smtp_peer.py"), "--config", PEERS_JSON,
         "--daemon", "--pidfile", PIDFILE, "--log", "/var/log/mailgw-test-peers.log"])

    # inet_interfaces and master.cf services need a full restart.
    if subprocess.run(["postfix", "status"], stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL, check=False).returncode == 0:
        run(["postfix", "stop"])
        done.append("stopped Postfix")
    run(["postfix", "start"])
    wait_listening("127.0.0.1", 25)
    for p in peers:
        wait_listening(p["listen"], p["port"])
    done.append("listening: gateway 127.0.0.1:25, peers " + ", ".join(
        "%s %s:%s%s" % (p["name"], p["listen"], p["port"], " (STARTTLS)" if "cert" in p else "") for p in peers))
    json.dump({"changed": True, "done": done}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
