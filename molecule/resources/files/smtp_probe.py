#!/usr/bin/env python3
# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SMTP probes for the Molecule verifiers (standard library only).

Every subcommand prints one JSON object on stdout and exits 0 when it could
observe something (the verifier asserts on the JSON), non-zero only when the
probe itself is broken (bad arguments).

  send        one SMTP session: EHLO, optional STARTTLS, MAIL, RCPT, DATA;
              reports every reply, so a verifier can assert on the 530.
  wait-spool  wait (bounded) until a peer has stored a message with a token.
  wait-queue  wait (bounded) until a queued message is deferred with a
              reason, or report that it left the queue.
  queue       the Postfix queue as JSON (postqueue -j), for diagnostics.
  run         a list of steps (JSON) with expectations: SMTP sessions,
              submissions that must be delivered to a given peer (over TLS
              or not; "delivery_log": text the delivery's log line must
              hold), stay deferred for a given reason, or bounce (returned
              to the sender, "reason" in the status=bounced log line), in
              each case optionally after passing given content filters
              ("via"), queue flushes. "mail_options": ESMTP parameters of
              MAIL FROM (["REQUIRETLS"]).
              Every submission is sent first, then all outcomes are awaited
              together (bounded), so a verifier pays one container round
              trip per group of checks. Reports every step; "ok" is false
              when any expectation failed.
"""

import argparse
import base64
import glob
import uuid
import json
import os
import smtplib
import ssl
import subprocess
import sys
import time


def _reply(code, msg):
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return {"code": code, "text": msg}


def cmd_send(args):
    result = {"host": args.host, "port": args.port, "starttls_requested": args.starttls}
    try:
        smtp = smtplib.SMTP(args.host, args.port, local_hostname=args.helo, timeout=args.timeout)
    except (OSError, smtplib.SMTPException) as exc:
        result["error"] = "connect: %s: %s" % (type(exc).__name__, exc)
        return result
    try:
        result["ehlo"] = _reply(*smtp.ehlo())
        result["starttls_offered"] = smtp.has_extn("starttls")
        if args.starttls:
            # The gateway is reached as 127.0.0.1: check the chain (when a CA
            # file is given), not the name.
            ctx = ssl.create_default_context(cafile=args.cafile)
            ctx.check_hostname = False
            if not args.cafile:
                ctx.verify_mode = ssl.CERT_NONE
            try:
                code, msg = smtp.starttls(context=ctx)
                result["starttls"] = _reply(code, msg)
            except smtplib.SMTPResponseException as exc:
                result["starttls"] = _reply(exc.smtp_code, exc.smtp_error)
                return result
            except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
                result["starttls"] = {"code": None, "text": "%s: %s" % (type(exc).__name__, exc)}
                return result
            result["tls_version"] = smtp.sock.version()
            result["ehlo_after_tls"] = _reply(*smtp.ehlo())
        # ESMTP MAIL parameters (REQUIRETLS ...) are sent whether or not the
        # server announced them: the server's answer is the observation.
        result["mail"] = _reply(*smtp.mail(args.sender, list(getattr(args, "mail_options", None) or [])))
        if result["mail"]["code"] != 250:
            return result
        result["rcpt"] = [_reply(*smtp.rcpt(r)) for r in args.rcpt]
        if not any(r["code"] in (250, 251) for r in result["rcpt"]):
            return result
        body = (
            "From: <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@probe.test>\r\n\r\n"
            "mailgw molecule probe, token %s\r\n" % (
                args.sender, ", ".join("<%s>" % r for r in args.rcpt), args.token, args.token, args.token)
        )
        result["data"] = _reply(*smtp.data(body.encode("ascii")))
        text = result["data"]["text"]
        if result["data"]["code"] == 250 and "queued as " in text:
            result["queue_id"] = text.rsplit("queued as ", 1)[1].split()[0]
        return result
    except (OSError, smtplib.SMTPException) as exc:
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
        return result
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _spool_records(spool):
    out = []
    for path in sorted(glob.glob(os.path.join(spool, "*.json"))):
        try:
            with open(path) as fh:
                out.append(json.load(fh))
        except (OSError, ValueError):
            continue
    return out


def cmd_wait_spool(args):
    deadline = time.monotonic() + args.timeout
    while True:
        for record in _spool_records(args.spool):
            if args.token in record.get("data", ""):
                record["found"] = True
                record["waited"] = round(args.timeout - (deadline - time.monotonic()), 1)
                return record
        if time.monotonic() >= deadline:
            return {"found": False, "spool": args.spool, "token": args.token,
                    "queue": _queue(args.config_dir)}
        time.sleep(0.5)


def _queue(config_dir):
    argv = ["postqueue", "-j"]
    if config_dir:
        argv[1:1] = ["-c", config_dir]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    entries = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
    return entries


def cmd_wait_queue(args):
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        queue = _queue(args.config_dir)
        entry = next((e for e in queue if e.get("queue_id") == args.queue_id), None)
        if entry is None:
            return {"state": "gone", "queue_id": args.queue_id, "last_seen": last}
        last = entry
        reasons = [r.get("delay_reason", "") for r in entry.get("recipients", [])]
        if entry.get("queue_name") == "deferred" and any(args.reason in r for r in reasons):
            return {"state": "deferred", "queue_id": args.queue_id, "reasons": reasons, "entry": entry}
        if time.monotonic() >= deadline:
            return {"state": "timeout", "queue_id": args.queue_id, "reasons": reasons, "entry": entry}
        time.sleep(0.5)


STATE_FILE = "/var/lib/mailgw-test/submitted.json"
SPOOL_ROOT = "/var/spool/mailgw-test"


def _load_state():
    try:
        with open(STATE_FILE) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _save_state(state):
    os.makedirs(os.path.dirname(STATE_FILE), exist_ok=True)
    with open(STATE_FILE + ".tmp", "w") as fh:
        json.dump(state, fh, indent=1, sort_keys=True)
    os.rename(STATE_FILE + ".tmp", STATE_FILE)


def _all_spool_records():
    out = []
    for spool in sorted(glob.glob(os.path.join(SPOOL_ROOT, "*"))):
        out.extend(_spool_records(spool))
    return out


def _session(step, token):
    ns = argparse.Namespace(
        host=step.get("host", "127.0.0.1"), port=int(step.get("port", 25)),
        helo=step.get("helo", "probe.test"), starttls=step.get("starttls", True),
        cafile=step.get("cafile", "/etc/mailgw-test/tls/test-ca.crt") if step.get("starttls", True) else None,
        sender=step.get("sender", "probe@probe.test"), rcpt=[step["rcpt"]], token=token,
        mail_options=step.get("mail_options", []),
        timeout=float(step.get("timeout", 20)))
    return cmd_send(ns)


def _check_session(step, result):
    """Compare a session with step["expect"]: {stage: code, ...}, text, offered."""
    exp = step.get("expect", {})
    problems = []
    for stage in ("starttls", "mail", "data"):
        if stage in exp:
            got = result.get(stage)
            if stage == "data" and got is None:
                problems.append("no DATA reply (session ended earlier)")
            elif got is None or got.get("code") != exp[stage]:
                problems.append("%s: expected %s, got %s" % (stage, exp[stage], got))
    if "text" in exp:
        texts = " | ".join(str((result.get(s) or {}).get("text")) for s in ("starttls", "mail", "rcpt", "data")
                           if isinstance(result.get(s), dict))
        if exp["text"] not in texts:
            problems.append("reply text %r not found in %r" % (exp["text"], texts))
    if "starttls_offered" in exp and result.get("starttls_offered") != exp["starttls_offered"]:
        problems.append("STARTTLS offered: expected %s, got %s" % (exp["starttls_offered"], result.get("starttls_offered")))
    if result.get("error") and "error" not in exp:
        problems.append(result["error"])
    return problems


POSTFIX_LOG = "/var/log/postfix.log"
GONE_GRACE = 3.0


def _log_line(exp):
    """The Postfix log line about the recipient's host holding exp["log"], or None."""
    host = exp.get("log_host") or exp["rcpt_actual"].rpartition("@")[2] + "["
    try:
        with open(POSTFIX_LOG, errors="replace") as fh:
            for line in fh:
                if host in line and exp["log"] in line:
                    return line.split(": ", 1)[-1].strip()
    except OSError:
        return None
    return None


def _rcpt_log_line(rcpt, needle):
    """The last Postfix log line about the delivery to RCPT holding NEEDLE, or None."""
    found = None
    try:
        with open(POSTFIX_LOG, errors="replace") as fh:
            for line in fh:
                if "to=<%s>" % rcpt in line and needle in line:
                    found = line.split(": ", 1)[-1].strip()
    except OSError:
        return None
    return found


def _via_problems(exp, found):
    """What is wrong with the hops (content filters) exp["via"] the message had to pass."""
    problems = []
    for hop in exp.get("via", []):
        seen = [r for r in found if r["peer"] == hop]
        if not seen:
            problems.append("did not pass %s" % hop)
        elif seen[-1].get("relayed") is False:
            problems.append("%s could not pass it on: %s" % (hop, seen[-1].get("relay_error")))
    return problems


def _resolve(pending, timeout):
    """Wait until every pending expectation is decided or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        queue = _queue(None)
        records = _all_spool_records()
        for exp in pending:
            if exp.get("done"):
                continue
            token = exp["token"]
            found = [r for r in records if token in r.get("data", "")]
            # Match queue entries by the unique recipient, not the queue ID:
            # behind a content filter the re-injected copy has a new queue ID.
            entries = [e for e in queue
                       if any(r.get("address") == exp["rcpt_actual"] for r in e.get("recipients", []))]
            entries.sort(key=lambda e: e.get("queue_name") != "deferred")
            entry = entries[0] if entries else None
            reasons = [r.get("delay_reason", "") for r in (entry or {}).get("recipients", [])]
            where = ["%s (tls=%s)" % (r["peer"], r["tls"]) for r in found]
            # "Left the queue" counts only when it holds for a while: a message
            # moving between queue directories (incoming -> active) or a copy
            # being re-injected by a content filter can be missed by one scan.
            now = time.monotonic()
            if entry is None:
                exp.setdefault("gone_since", now)
            else:
                exp.pop("gone_since", None)
            gone = entry is None and now - exp["gone_since"] >= GONE_GRACE
            if exp["expect"] == "delivered":
                at_peer = [r for r in found if r["peer"] == exp["peer"]]
                if at_peer:
                    rec = at_peer[-1]
                    problems = []
                    if "tls" in exp and rec["tls"] != exp["tls"]:
                        problems.append("peer saw tls=%s, expected %s" % (rec["tls"], exp["tls"]))
                    if "sni" in exp and rec.get("sni") != exp["sni"]:
                        problems.append("peer saw SNI %r, expected %r" % (rec.get("sni"), exp["sni"]))
                    problems += _via_problems(exp, found)
                    rcpt_log = None
                    if exp.get("delivery_log"):
                        # the log may lag behind the peer's spool: undecided
                        # until the line is there (or the time is up)
                        rcpt_log = _rcpt_log_line(exp["rcpt_actual"], exp["delivery_log"])
                        if rcpt_log is None:
                            exp["last"] = {"delivered_to": where, "missing_log": exp["delivery_log"],
                                           "log": _rcpt_log_line(exp["rcpt_actual"], "status=")}
                            continue
                    if exp.get("via") and not problems:
                        problems_ok = " via %s" % ", ".join(exp["via"])
                    else:
                        problems_ok = ""
                    delivered = "delivered to %s%s, tls=%s %s" % (
                        rec["peer"], problems_ok, rec["tls"], rec.get("tls_version") or "")
                    if rcpt_log:
                        delivered += "; log: %s" % rcpt_log
                    exp.update(done=True, ok=not problems, detail="; ".join(problems) or delivered.strip())
                elif gone:
                    exp.update(done=True, ok=False, detail="left the queue but not delivered to %s; seen at: %s"
                               % (exp["peer"], where or "nowhere"))
                elif entry is not None and entry.get("queue_name") == "deferred" and exp.get("fresh", True):
                    exp.update(done=True, ok=False, detail="deferred instead: %s" % reasons)
            elif exp["expect"] == "bounced":
                # Returned to the sender: the recipient leaves the queue with
                # a status=bounced log line holding the reason (the bounce
                # notice itself is a new message to the sender).
                delivered = [r for r in found if "relayed" not in r]
                line = _rcpt_log_line(exp["rcpt_actual"], "status=bounced")
                if delivered:
                    exp.update(done=True, ok=False, detail="delivered instead, at %s" % where)
                elif line is not None:
                    problems = _via_problems(exp, found)
                    if exp["reason"] not in line:
                        problems.append("bounced for another reason: %s" % line)
                    exp.update(done=True, ok=not problems, detail="; ".join(problems) or (
                        "bounced%s; log: %s" % (" after passing %s" % ", ".join(exp["via"]) if exp.get("via") else "",
                                                line)))
                elif entry is not None and entry.get("queue_name") == "deferred" and exp.get("fresh", True):
                    exp.update(done=True, ok=False, detail="deferred instead: %s" % reasons)
            else:
                # A content filter (a relaying peer) passing the message on is
                # not a delivery.
                delivered = [r for r in found if "relayed" not in r]
                if delivered:
                    exp.update(done=True, ok=False, detail="delivered instead, at %s" % where)
                elif gone:
                    exp.update(done=True, ok=False, detail="left the queue without being deferred")
                elif entry is None:
                    pass
                elif entry.get("queue_name") == "deferred":
                    if any(exp["reason"] in r for r in reasons):
                        log_line = _log_line(exp) if exp.get("log") else None
                        via_problems = _via_problems(exp, found)
                        if exp.get("log") and log_line is None:
                            pass  # the log may lag behind the queue for a moment
                        elif via_problems:
                            exp.update(done=True, ok=False, detail="deferred: %s, but %s" % (
                                "; ".join(reasons), "; ".join(via_problems)))
                        else:
                            exp.update(done=True, ok=True, detail="deferred%s: %s%s" % (
                                " after passing %s" % ", ".join(exp["via"]) if exp.get("via") else "",
                                "; ".join(reasons), "; log: %s" % log_line if log_line else ""))
                    elif exp.get("fresh", True):
                        exp.update(done=True, ok=False, detail="deferred for another reason: %s" % reasons)
            if not exp.get("done"):
                exp["last"] = {"queue": entry, "seen_at": where}
        if all(e.get("done") for e in pending) or time.monotonic() >= deadline:
            break
        time.sleep(0.3)
    for exp in pending:
        if not exp.get("done"):
            exp.update(done=True, ok=False, detail="undecided after %ss: %s" % (timeout, json.dumps(exp.get("last"))))


def cmd_run(args):
    if args.steps_base64 is not None:
        steps = json.loads(base64.b64decode(args.steps_base64).decode("utf-8"))
    else:
        steps = json.loads(args.steps)
    state = _load_state()
    results = []
    pending = []

    def settle():
        if pending:
            _resolve(pending, args.timeout)
            for exp in pending:
                results.append({"index": exp["index"], "name": exp["name"], "ok": exp["ok"],
                                "detail": exp["detail"], "queue_id": exp["queue_id"],
                                "rcpt": exp["rcpt_actual"]})
            del pending[:]

    for index, step in enumerate(steps):
        kind = step["kind"]
        name = step.get("name", kind)
        if kind == "session":
            token = "%s-%s" % (name, uuid.uuid4().hex[:8])
            res = _session(step, token)
            problems = _check_session(step, res)
            results.append({"index": index, "name": name, "ok": not problems, "detail": "; ".join(problems) or "as expected",
                            "session": res})
        elif kind == "submit":
            tag = uuid.uuid4().hex[:10]
            token = "%s-%s" % (name, tag)
            local, _at, domain = step["rcpt"].rpartition("@")
            rcpt = "%s-%s@%s" % (local, tag, domain)
            res = _session(dict(step, rcpt=rcpt), token)
            if res.get("queue_id") is None:
                results.append({"index": index, "name": name, "ok": False, "detail": "not accepted by the gateway",
                                "session": res})
                continue
            state[name] = {"token": token, "queue_id": res["queue_id"], "rcpt": rcpt}
            _save_state(state)
            exp = dict(step, index=index, name=name, token=token, queue_id=res["queue_id"], rcpt_actual=rcpt,
                       fresh=True)
            pending.append(exp)
        elif kind == "await":
            settle()
            prev = state.get(step["of"])
            if prev is None:
                results.append({"index": index, "name": name, "ok": False, "detail": "no earlier submission named %s" % step["of"]})
                continue
            pending.append(dict(step, index=index, name=name, token=prev["token"], queue_id=prev["queue_id"],
                                rcpt_actual=prev["rcpt"], fresh=False))
        elif kind == "flush":
            settle()
            proc = subprocess.run(["postqueue", "-f"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True, check=False)
            results.append({"index": index, "name": name, "ok": proc.returncode == 0, "detail": proc.stdout.strip() or "flushed"})
        elif kind == "wait":
            settle()
        else:
            results.append({"index": index, "name": name, "ok": False, "detail": "unknown step kind %r" % kind})
    settle()
    results.sort(key=lambda r: r["index"])
    return {"ok": all(r["ok"] for r in results), "results": results,
            "summary": ["%s %s: %s" % ("PASS" if r["ok"] else "FAIL", r["name"], r["detail"]) for r in results]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    sub.required = True

    p = sub.add_parser("send")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=25)
    p.add_argument("--helo", default="probe.test")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--cafile")
    p.add_argument("--sender", default="probe@probe.test")
    p.add_argument("--rcpt", action="append", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--timeout", type=float, default=20)

    p = sub.add_parser("wait-spool")
    p.add_argument("--spool", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--config-dir")

    p = sub.add_parser("wait-queue")
    p.add_argument("--queue-id", required=True)
    p.add_argument("--reason", required=True)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--config-dir")

    p = sub.add_parser("run")
    steps = p.add_mutually_exclusive_group(required=True)
    steps.add_argument("--steps", help="JSON list of steps")
    steps.add_argument("--steps-base64", help="the same, base64-encoded (no quoting or templating on the way)")
    p.add_argument("--timeout", type=float, default=40, help="bound for awaiting outcomes")

    p = sub.add_parser("queue")
    p.add_argument("--config-dir")

    args = parser.parse_args(argv)
    if args.command == "send":
        out = cmd_send(args)
    elif args.command == "wait-spool":
        out = cmd_wait_spool(args)
    elif args.command == "wait-queue":
        out = cmd_wait_queue(args)
    elif args.command == "run":
        out = cmd_run(args)
    else:
        out = {"queue": _queue(args.config_dir)}
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
