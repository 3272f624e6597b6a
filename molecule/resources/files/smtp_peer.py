#!/usr/bin/env python3
# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Minimal SMTP peers for the Molecule scenarios (standard library only).

One process serves every peer listed in a JSON configuration file:

    [{"name": "tls-peer.test", "listen": "127.0.0.3", "port": 25,
      "cert": "/etc/mailgw-test/tls/tls-peer.crt", "key": "...",
      "spool": "/var/spool/mailgw-test/tls-peer"},
     {"name": "filter.test", "listen": "127.0.0.1", "port": 10025,
      "spool": "/var/spool/mailgw-test/filter", "relay_to": "127.0.0.1:10026"}]

A peer with "cert" and "key" offers STARTTLS; without them it offers none.
Every accepted message is written to the peer's spool directory as one JSON
record (envelope, whether the session was TLS, protocol, SNI, the data).
A peer with "relay_to" is a content filter: it passes each message on in
plaintext to HOST:PORT with smtplib and answers with the result, so a
rejection by the re-injection service shows up in the sender's queue.

The sockets are bound before the process detaches (--daemon), so a start
that cannot bind fails loudly and a successful start means every peer listens.
"""

import argparse
import json
import os
import signal
import smtplib
import socketserver
import ssl
import sys
import threading
import time

_local = threading.local()
_counter_lock = threading.Lock()
_counter = [0]


def _next_id():
    with _counter_lock:
        _counter[0] += 1
        return "%d-%d-%06d" % (os.getpid(), int(time.time() * 1000), _counter[0])


def _log(msg):
    sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def _sni_callback(sslobj, servername, ctx):
    _local.sni = servername
    return None


class PeerServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, peer):
        self.peer = peer
        self.tls_context = None
        if peer.get("cert"):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(peer["cert"], peer["key"])
            ctx.sni_callback = _sni_callback
            self.tls_context = ctx
        os.makedirs(peer["spool"], exist_ok=True)
        socketserver.TCPServer.__init__(self, (peer["listen"], int(peer["port"])), SMTPHandler)


class SMTPHandler(socketserver.StreamRequestHandler):
    timeout = 60

    def setup(self):
        socketserver.StreamRequestHandler.setup(self)
        self.peer = self.server.peer
        self.conn = self.request
        self.tls = None
        self.sni = None
        self.helo = None
        self._reset()

    def _reset(self):
        self.mail_from = None
        self.rcpt_to = []

    def reply(self, code, *lines):
        lines = lines or ("",)
        out = []
        for i, line in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            out.append("%d%s%s\r\n" % (code, sep, line))
        self.wfile.write("".join(out).encode("ascii"))
        self.wfile.flush()

    def handle(self):
        client = "%s:%s" % self.client_address
        self.reply(220, "%s ESMTP mailgw test peer" % self.peer["name"])
        while True:
            try:
                raw = self.rfile.readline(4096)
            except (OSError, ssl.SSLError) as exc:
                _log("%s: read from %s failed: %s" % (self.peer["name"], client, exc))
                return
            if not raw:
                return
            line = raw.decode("ascii", "replace").rstrip("\r\n")
            verb, _sep, arg = line.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "smtp_" + verb, None)
            if handler is None:
                self.reply(502, "5.5.2 Error: command not recognized")
                continue
            if handler(arg.strip()) is False:
                return

    def smtp_EHLO(self, arg):
        if not arg:
            self.reply(501, "5.5.4 Syntax: EHLO hostname")
            return
        self.helo = arg
        self._reset()
        lines = [self.peer["name"], "SIZE 10240000", "8BITMIME"]
        if self.server.tls_context is not None and self.tls is None:
            lines.append("STARTTLS")
        self.reply(250, *lines)

    def smtp_HELO(self, arg):
        if not arg:
            self.reply(501, "5.5.4 Syntax: HELO hostname")
            return
        self.helo = arg
        self._reset()
        self.reply(250, self.peer["name"])

    def smtp_STARTTLS(self, arg):
        if self.server.tls_context is None:
            self.reply(502, "5.5.1 Error: command not implemented")
            return
        if self.tls is not None:
            self.reply(554, "5.5.1 Error: TLS already active")
            return
        self.reply(220, "2.0.0 Ready to start TLS")
        _local.sni = None
        try:
            conn = self.server.tls_context.wrap_socket(self.request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            _log("%s: TLS handshake with %s:%s failed: %s"
                 % (self.peer["name"], self.client_address[0], self.client_address[1], exc))
            return False
        self.conn = conn
        self.sni = getattr(_local, "sni", None)
        self.tls = {"version": conn.version(), "cipher": conn.cipher()[0], "sni": self.sni}
        self.rfile = conn.makefile("rb")
        self.wfile = conn.makefile("wb")
        self.helo = None
        self._reset()

    def smtp_MAIL(self, arg):
        if self.helo is None:
            self.reply(503, "5.5.1 Error: send HELO/EHLO first")
            return
        if self.mail_from is not None:
            self.reply(503, "5.5.1 Error: nested MAIL command")
            return
        if not arg.upper().startswith("FROM:"):
            self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
            return
        self.mail_from = arg[5:].strip().split(" ")[0].strip("<>")
        self.reply(250, "2.1.0 Ok")

    def smtp_RCPT(self, arg):
        if self.mail_from is None:
            self.reply(503, "5.5.1 Error: need MAIL command")
            return
        if not arg.upper().startswith("TO:"):
            self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
            return
        self.rcpt_to.append(arg[3:].strip().split(" ")[0].strip("<>"))
        self.reply(250, "2.1.5 Ok")

    def smtp_DATA(self, arg):
        if not self.rcpt_to:
            self.reply(503, "5.5.1 Error: need RCPT command")
            return
        self.reply(354, "End data with <CR><LF>.<CR><LF>")
        chunks = []
        size = 0
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return False
            if raw in (b".\r\n", b".\n"):
                break
            if raw.startswith(b"."):
                raw = raw[1:]
            size += len(raw)
            if size > 10240000:
                self.reply(552, "5.3.4 Error: message too big")
                return False
            chunks.append(raw)
        data = b"".join(chunks)
        msg_id = _next_id()
        record = {
            "id": msg_id,
            "peer": self.peer["name"],
            "listen": "%s:%s" % (self.peer["listen"], self.peer["port"]),
            "client": self.client_address[0],
            "helo": self.helo,
            "mail_from": self.mail_from,
            "rcpt_to": list(self.rcpt_to),
            "tls": self.tls is not None,
            "tls_version": (self.tls or {}).get("version"),
            "tls_cipher": (self.tls or {}).get("cipher"),
            "sni": (self.tls or {}).get("sni"),
            "data": data.decode("utf-8", "replace"),
        }
        code, text = 250, "2.0.0 Ok: queued as %s" % msg_id
        relay_to = self.peer.get("relay_to")
        if relay_to:
            host, _sep, port = relay_to.rpartition(":")
            try:
                client = smtplib.SMTP(host, int(port), local_hostname=self.peer["name"], timeout=30)
                try:
                    refused = client.sendmail(self.mail_from, self.rcpt_to, data)
                finally:
                    try:
                        client.quit()
                    except (smtplib.SMTPException, OSError):
                        pass
                record["relayed"] = True
                record["relay_refused"] = {k: [v[0], v[1].decode("utf-8", "replace")] for k, v in refused.items()}
            except smtplib.SMTPResponseException as exc:
                record["relayed"] = False
                err = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
                record["relay_error"] = "%d %s" % (exc.smtp_code, err)
            except (smtplib.SMTPException, OSError) as exc:
                record["relayed"] = False
                record["relay_error"] = "%s: %s" % (type(exc).__name__, exc)
            if not record["relayed"]:
                code, text = 451, "4.3.0 Error: re-injection to %s failed: %s" % (relay_to, record["relay_error"])
        self._write_record(record)
        _log("%s: message %s from %s tls=%s relayed=%s" % (
            self.peer["name"], msg_id, self.client_address[0], record["tls"], record.get("relayed")))
        self._reset()
        self.reply(code, text)

    def _write_record(self, record):
        spool = self.peer["spool"]
        tmp = os.path.join(spool, ".%s.tmp" % record["id"])
        with open(tmp, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True)
        os.rename(tmp, os.path.join(spool, "%s.json" % record["id"]))

    def smtp_RSET(self, arg):
        self._reset()
        self.reply(250, "2.0.0 Ok")

    def smtp_NOOP(self, arg):
        self.reply(250, "2.0.0 Ok")

    def smtp_VRFY(self, arg):
        self.reply(252, "2.0.0 Cannot VRFY")

    def smtp_QUIT(self, arg):
        self.reply(221, "2.0.0 Bye")
        return False


def _daemonize(pidfile, logfile):
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    log = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    with open(pidfile + ".tmp", "w") as fh:
        fh.write("%d\n" % os.getpid())
    os.rename(pidfile + ".tmp", pidfile)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="JSON list of peers")
    parser.add_argument("--daemon", action="store_true")
    parser.add_argument("--pidfile", default="/run/mailgw-test-peers.pid")
    parser.add_argument("--log", default="/var/log/mailgw-test-peers.log")
    args = parser.parse_args(argv)
    with open(args.config) as fh:
        peers = json.load(fh)
    servers = []
    for peer in peers:
        try:
            servers.append(PeerServer(peer))
        except (OSError, ssl.SSLError) as exc:
            sys.stderr.write("cannot start peer %s on %s:%s: %s\n"
                             % (peer.get("name"), peer.get("listen"), peer.get("port"), exc))
            return 1
    if args.daemon:
        sys.stdout.flush()
        sys.stderr.flush()
        _daemonize(args.pidfile, args.log)
    signal.signal(signal.SIGTERM, lambda *_a: os._exit(0))
    threads = []
    for server in servers:
        _log("peer %s listening on %s:%s tls=%s relay_to=%s" % (
            server.peer["name"], server.peer["listen"], server.peer["port"],
            server.tls_context is not None, server.peer.get("relay_to")))
        t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
