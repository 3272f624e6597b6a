#!/usr/bin/env python3
"""A plaintext SMTP server for the demo fleet: the "internal hop" on
127.0.0.1:10025 (a stand-in for a content filter such as CipherMail, or an
internal mail server).

It speaks no TLS (it does not offer STARTTLS), stores every message it
accepts under --spool, and with --reinject HOST:PORT hands the message back to
Postfix over plain SMTP, as CipherMail does on 127.0.0.1:10026; its own 250
reply then carries the queue id of the re-injected message ("queued as ID"),
so the gateway's log links the two.

Runs inside the gateway container (python3 from the image, standard library
only; works with Python 3.11 and 3.13).

    smtp_sink.py --listen 127.0.0.1:10025 --spool /var/tmp/mailgw-sink [--reinject 127.0.0.1:10026]
"""
import argparse
import os
import smtplib
import socketserver
import sys
import time


def parse_hostport(value):
    host, _sep, port = value.rpartition(":")
    return host, int(port)


class Handler(socketserver.StreamRequestHandler):
    timeout = 60

    def reply(self, line):
        self.wfile.write(line.encode("ascii") + b"\r\n")
        self.wfile.flush()

    def readline(self):
        line = self.rfile.readline(65536)
        if not line:
            raise EOFError
        return line.decode("latin-1").rstrip("\r\n")

    def handle(self):
        opts = self.server.opts
        self.reply("220 %s ESMTP mailgw demo sink (no TLS)" % opts.name)
        sender, rcpts = None, []
        try:
            while True:
                line = self.readline()
                verb = line.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    self.reply("250-%s" % opts.name)
                    self.reply("250 8BITMIME")
                elif verb == "HELO":
                    self.reply("250 %s" % opts.name)
                elif verb == "MAIL":
                    sender, rcpts = line.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                    self.reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    if sender is None:
                        self.reply("503 5.5.1 Error: need MAIL command")
                        continue
                    rcpts.append(line.split(":", 1)[1].strip().split(" ")[0].strip("<>"))
                    self.reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    if not rcpts:
                        self.reply("503 5.5.1 Error: need RCPT command")
                        continue
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    lines = []
                    while True:
                        data = self.readline()
                        if data == ".":
                            break
                        lines.append(data[1:] if data.startswith("..") else data)
                    self.reply(self.deliver(sender, rcpts, "\r\n".join(lines) + "\r\n"))
                    sender, rcpts = None, []
                elif verb == "RSET":
                    sender, rcpts = None, []
                    self.reply("250 2.0.0 Ok")
                elif verb == "NOOP":
                    self.reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    self.reply("221 2.0.0 Bye")
                    return
                else:
                    self.reply("502 5.5.2 Error: command not recognized")
        except (EOFError, OSError):
            return

    def deliver(self, sender, rcpts, message):
        opts = self.server.opts
        stamp = "%d.%d" % (time.time() * 1000, os.getpid())
        path = os.path.join(opts.spool, stamp + ".eml")
        with open(path + ".tmp", "w", encoding="latin-1") as handle:
            handle.write("X-Sink-Sender: %s\r\nX-Sink-Recipients: %s\r\n%s" % (sender, ",".join(rcpts), message))
        os.rename(path + ".tmp", path)
        if not opts.reinject:
            return "250 2.0.0 Ok: stored as %s" % stamp
        host, port = parse_hostport(opts.reinject)
        try:
            client = smtplib.SMTP(host, port, local_hostname=opts.name, timeout=30)
            try:
                client.ehlo()
                code, resp = client.mail(sender)
                if code != 250:
                    return "451 4.3.0 re-injection refused MAIL: %d %s" % (code, resp.decode("latin-1"))
                for rcpt in rcpts:
                    code, resp = client.rcpt(rcpt)
                    if code not in (250, 251):
                        return "451 4.3.0 re-injection refused RCPT: %d %s" % (code, resp.decode("latin-1"))
                code, resp = client.data(message.encode("latin-1"))
            finally:
                try:
                    client.quit()
                except smtplib.SMTPException:
                    pass
        except (OSError, smtplib.SMTPException) as exc:
            return "451 4.3.0 re-injection to %s failed: %s" % (opts.reinject, exc)
        text = resp.decode("latin-1")
        if code != 250:
            return "451 4.3.0 re-injection refused DATA: %d %s" % (code, text)
        return "250 2.0.0 Ok: re-injected to %s: %s" % (opts.reinject, text)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--listen", default="127.0.0.1:10025")
    parser.add_argument("--spool", default="/var/tmp/mailgw-sink")
    parser.add_argument("--reinject", default="")
    parser.add_argument("--name", default="sink.internal.test")
    opts = parser.parse_args(argv)
    os.makedirs(opts.spool, exist_ok=True)
    server = Server(parse_hostport(opts.listen), Handler)
    server.opts = opts
    sys.stdout.write("smtp_sink listening on %s\n" % opts.listen)
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
