#!/usr/bin/env python3
"""Live SMTP probes of a demo gateway, run inside its container (podman exec),
so every connection stays on the gateway's own loopback.

    probe.py LAYOUT        LAYOUT: postfix | ciphermail

Prints one line per probe, "[ok]" or "[FAIL]", and exits 1 when a probe
failed. Delivery results are read from Postfix's own log
(/var/log/mail.log, maillog_file) by queue id.

Probes:
  1. plaintext MAIL FROM on 127.0.0.1:25 is refused with 530 (incoming TLS enforced)
  2. over STARTTLS, mail to user@plain.example is accepted; delivery to the
     plaintext-only peer [127.0.0.2]:25 is deferred with "TLS is required,
     but was not offered" (outgoing TLS enforced)
  3. postfix layout: mail to user@internal.example is delivered to the
     internal hop [127.0.0.1]:10025 without TLS (policy entry "none")
     ciphermail layout: the same message passed the content filter hop
     [127.0.0.1]:10025 (sent) and was re-injected on 127.0.0.1:10026 without
     TLS (master.cf -o smtpd_tls_security_level=none) before it was deferred
"""
import re
import smtplib
import ssl
import sys
import time

LOG = "/var/log/mail.log"
GATEWAY = ("127.0.0.1", 25)
failures = 0


def report(ok, what, detail):
    global failures
    if not ok:
        failures += 1
    print("    [%s] %s\n           %s" % ("ok" if ok else "FAIL", what, detail))


def plaintext_mail():
    client = smtplib.SMTP(*GATEWAY, local_hostname="probe.demo.test", timeout=20)
    try:
        client.ehlo()
        offered = client.has_extn("starttls")
        code, resp = client.mail("probe@demo.test")
        return offered, code, resp.decode("latin-1")
    finally:
        client.close()


def send_over_tls(rcpt, subject):
    client = smtplib.SMTP(*GATEWAY, local_hostname="probe.demo.test", timeout=20)
    try:
        client.ehlo()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the demo certificate is self-signed
        client.starttls(context=context)
        version = client.sock.version()
        client.ehlo()
        client.mail("probe@demo.test")
        code, resp = client.rcpt(rcpt)
        if code != 250:
            return version, code, resp.decode("latin-1"), None
        msg = "From: probe@demo.test\r\nTo: %s\r\nSubject: %s\r\n\r\nmailgw demo probe\r\n" % (rcpt, subject)
        code, resp = client.data(msg.encode("ascii"))
        text = resp.decode("latin-1")
        match = re.search(r"queued as (\w+)", text)
        return version, code, text, match.group(1) if match else None
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            client.close()


def wait_for_status(queue_id, timeout=30):
    """First delivery attempt of queue_id: (relay, status, reason) from the log."""
    pattern = re.compile(r"\b%s: to=<[^>]*>,(?: orig_to=<[^>]*>,)? relay=(\S+), .*status=(\w+) \((.*)\)$" % re.escape(queue_id))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(LOG, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    found = pattern.search(line.rstrip("\n"))
                    if found:
                        return found.groups()
        except FileNotFoundError:
            pass
        time.sleep(0.5)
    return None, "unknown", "no delivery attempt logged within %d s" % timeout


def main(layout):
    offered, code, text = plaintext_mail()
    report(offered and code == 530 and "Must issue a STARTTLS command first" in text,
           "plaintext MAIL FROM on 127.0.0.1:25 is refused (STARTTLS offered: %s)" % ("yes" if offered else "no"),
           "%d %s" % (code, text))

    version, code, text, qid = send_over_tls("user@plain.example", "to the plaintext-only peer")
    report(code == 250 and qid is not None, "over STARTTLS (%s) mail to user@plain.example is accepted" % version,
           "%d %s" % (code, text))
    if qid is None:
        return
    if layout == "ciphermail":
        relay, status, reason = wait_for_status(qid)
        report(status == "sent" and relay.endswith(":10025"),
               "content filter hop [127.0.0.1]:10025 (no TLS, policy none) took it",
               "%s: relay=%s status=%s (%s)" % (qid, relay, status, reason))
        reinjected = re.search(r"queued as (\w+)", reason or "")
        report(reinjected is not None, "filter re-injected it on 127.0.0.1:10026 without TLS",
               "new queue id %s" % (reinjected.group(1) if reinjected else "missing"))
        if reinjected is None:
            return
        qid = reinjected.group(1)
    relay, status, reason = wait_for_status(qid)
    report(status == "deferred" and "TLS is required, but was not offered" in reason,
           "delivery to the plaintext-only peer [127.0.0.2]:25 is deferred",
           "%s: relay=%s status=%s (%s)" % (qid, relay, status, reason))

    if layout == "postfix":
        version, code, text, qid = send_over_tls("user@internal.example", "to the internal hop")
        if qid is None:
            report(False, "mail to user@internal.example is accepted", "%d %s" % (code, text))
            return
        relay, status, reason = wait_for_status(qid)
        report(status == "sent" and relay.endswith(":10025"),
               "mail to user@internal.example is delivered to the internal hop [127.0.0.1]:10025 (no TLS, policy none)",
               "%s: relay=%s status=%s (%s)" % (qid, relay, status, reason))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("postfix", "ciphermail"):
        sys.exit("usage: probe.py postfix|ciphermail")
    try:
        main(sys.argv[1])
    except (OSError, smtplib.SMTPException) as exc:
        report(False, "SMTP session with 127.0.0.1:25", "%s: %s" % (type(exc).__name__, exc))
    sys.exit(1 if failures else 0)
