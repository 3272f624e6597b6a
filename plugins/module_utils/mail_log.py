# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Evidence from the mail log: which next hops got mail with TLS, and which in plaintext;
which clients sent mail with TLS, and which in plaintext.

Pure Python, no Ansible imports (read_mail_log takes the module it reports
through as an argument).  What the Postfix SMTP client logs (smtp(8),
src/tls/tls_misc.c ``tls_log_summary()``, src/global/log_adhoc.c):

* per TLS session, before the first delivery over it::

    postfix/smtp[PID]: Verified TLS connection established to HOST[ADDR]:PORT: TLSv1.3 with cipher ...

  (``Anonymous``, ``Untrusted``, ``Trusted`` or ``Verified``; with
  ``connection_reuse`` the handshake and this line are tlsproxy's);
* per recipient and attempt::

    postfix/smtp[PID]: QUEUEID: to=<RCPT>, relay=HOST[ADDR]:PORT, ..., status=sent (250 ...)

  (``relay=none`` when no server was reached).

A delivery went over TLS when the same SMTP client process (or tlsproxy)
logged a TLS session to that same relay before the status line; otherwise it
went in plaintext.  Deliveries in plaintext are the ones that would defer once
the level requires TLS (``encrypt`` and above).

And what the SMTP server logs (smtpd(8): smtpd.c, tls_misc.c), per session::

    postfix/smtpd[PID]: connect from HOST[ADDR]
    postfix/smtpd[PID]: Anonymous TLS connection established from HOST[ADDR]: TLSv1.3 with cipher ...
    postfix/smtpd[PID]: QUEUEID: client=HOST[ADDR]
    postfix/smtpd[PID]: disconnect from HOST[ADDR] ehlo=1 starttls=1 mail=1 ...

A message came in over TLS when its ``client=`` line follows a TLS line of the
same smtpd process in the same session (after its ``connect from``); otherwise
in plaintext. Clients that sent mail in plaintext are the ones
``smtpd_tls_security_level = encrypt`` turns away (530 until STARTTLS).

Postfix logs the TLS lines only when the TLS log level has its "summary" bit
(``smtp_tls_loglevel``/``smtpd_tls_loglevel`` 1 or more, or ``summary``: tls_misc.c,
``tls_log_summary()`` under TLS_LOG_SUMMARY). At Postfix's default, 0, nothing
tells a TLS delivery from a plaintext one: such deliveries and messages are
counted as of unknown TLS (``sent_unknown``, ``messages_unknown``), never as
plaintext, and ``tls_logged`` says which side logged.

Timestamps: traditional syslog (``Dec  4 18:07:12``, no year: the year that
does not put the line in the future), ISO 8601 as rsyslog's default format and
``journalctl -o short-iso`` write them, and Postfix's own maillog_file format.
"""

import datetime
import gzip
import os
import re

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import C_LOCALE

_PREFIX_RE = re.compile(r'^(?P<stamp>[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)\s+'
                        r'(?P<host>\S+)\s+(?P<prog>[^\s\[]+)\[(?P<pid>\d+)\]:\s(?P<text>.*)$')
_TLS_RE = re.compile(r'^(?P<trust>Anonymous|Untrusted|Trusted|Verified) TLS connection established to '
                     r'(?P<relay>\S+?\[[^\]]*\]:\d+): (?P<details>.*)$')
_STATUS_RE = re.compile(r'^(?P<qid>[0-9A-Za-z]+): to=<(?P<rcpt>[^>]*)>,(?:.*?) relay=(?P<relay>[^,]+),'
                        r'.* status=(?P<status>sent|deferred|bounced|expired|undeliverable|deliverable)'
                        r'(?: \((?P<reason>.*)\))?$')
_SERVER_TLS_RE = re.compile(r'^(?P<trust>Anonymous|Untrusted|Trusted|Verified) TLS connection established from '
                            r'(?P<client>\S+?\[[^\]]*\](?::\d+)?)(?: to \S+)?: ')
_CONNECT_RE = re.compile(r'^(?P<event>connect|disconnect) from (?P<client>\S+?\[[^\]]*\](?::\d+)?)(?:\s|$)')
_CLIENT_RE = re.compile(r'^(?P<qid>[0-9A-Za-z]+): client=(?P<client>\S+?\[[^\]]*\](?::\d+)?)(?:,|$)')
_MONTHS = dict((name, i + 1) for i, name in enumerate(
    ('Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec')))
TRUST_LEVELS = ('anonymous', 'untrusted', 'trusted', 'verified')
CLIENTS = ('smtp', 'lmtp')
SERVER = 'smtpd'
# main.cf parameters the log is read with: where it is, whose lines, whether TLS is logged
LOG_PARAMETERS = ('maillog_file', 'syslog_name', 'smtp_tls_loglevel', 'smtpd_tls_loglevel')
# TLS log level words and numbers that include TLS_LOG_SUMMARY (tls_misc.c, tls_log_table)
_SUMMARY_LOG_LEVELS = frozenset(('1', '2', '3', '4', '5', '6', '7', '8', '9', 'routine', 'debug', 'ssl-expert',
                                 'ssl-developer', 'summary'))


def tls_summary_logged(loglevel):
    """Whether a TLS log level (smtp_tls_loglevel, smtpd_tls_loglevel) logs the
    "TLS connection established" line: a level of 1 or more, or a list naming ``summary``."""
    words = re.split(r'[\s,|]+', str(loglevel or '').strip().lower())
    return any(word in _SUMMARY_LOG_LEVELS for word in words)


def unlogged_tls_warnings(tls_logged):
    """Warnings for the sides whose log cannot tell TLS from plaintext. TLS_LOGGED: a
    Summary's (and its result()'s) tls_logged, {'smtp': bool, 'smtpd': bool}."""
    out = []
    for side, what in (('smtp', 'deliveries (sent_unknown)'), ('smtpd', 'received messages (messages_unknown)')):
        if not tls_logged[side]:
            out.append('%s_tls_loglevel is 0: Postfix logs no "TLS connection established" line, so the mail log '
                       'cannot tell which %s went over TLS and which in plaintext. Set %s_tls_loglevel = 1 '
                       '(and read the log of the mail after that).' % (side, what, side))
    return out


class LogLine:
    """One parsed log line."""

    __slots__ = ('stamp', 'time', 'host', 'prog', 'pid', 'text')

    def __init__(self, stamp, time, host, prog, pid, text):
        self.stamp, self.time, self.host, self.prog, self.pid, self.text = stamp, time, host, prog, pid, text

    @property
    def service(self):
        """The last part of the program name: smtp, lmtp, tlsproxy, qmgr ..."""
        return self.prog.rsplit('/', 1)[-1]


def parse_time(stamp, now=None):
    """A timestamp as a naive local datetime, or None when it cannot be read."""
    now = now or datetime.datetime.now()
    if stamp[:1].isdigit():
        text = stamp
        if text.endswith('Z'):
            text = text[:-1] + '+00:00'
        text = re.sub(r'([+-]\d\d)(\d\d)$', r'\1:\2', text)
        # Python before 3.11 takes 3 or 6 fraction digits only
        text = re.sub(r'\.(\d+)', lambda m: '.' + (m.group(1) + '000000')[:6], text)
        try:
            value = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
        if value.tzinfo is not None:
            value = value.astimezone().replace(tzinfo=None)
        return value
    parts = stamp.split()
    try:
        month = _MONTHS[parts[0]]
        day = int(parts[1])
        hour, minute, second = (int(n) for n in parts[2].split(':'))
        value = datetime.datetime(now.year, month, day, hour, minute, second)
    except (KeyError, ValueError, IndexError):
        return None
    if value > now + datetime.timedelta(days=1):
        value = value.replace(year=now.year - 1)
    return value


def parse_line(line, now=None):
    """A LogLine, or None for a line that is not a syslog-style program line."""
    match = _PREFIX_RE.match(line.rstrip('\n'))
    if not match:
        return None
    return LogLine(match.group('stamp'), parse_time(match.group('stamp'), now), match.group('host'),
                   match.group('prog'), int(match.group('pid')), match.group('text'))


def recipient_domain(rcpt):
    return rcpt.rpartition('@')[2].lower() if '@' in rcpt else rcpt.lower()


def client_address(client):
    """The address of HOST[ADDR] or HOST[ADDR]:PORT (smtpd_client_port_logging)."""
    return client[client.find('[') + 1:client.rfind(']')]


def is_loopback(address):
    return address.startswith('127.') or address.lower() in ('::1', 'ipv6:::1')


def _new_client(client):
    """The counts of CLIENT, HOST[ADDR]."""
    address = client_address(client)
    return {'client': client, 'address': address, 'loopback': is_loopback(address),
            'messages': 0, 'messages_tls': 0, 'messages_plaintext': 0, 'messages_unknown': 0, 'services': [],
            'plaintext_services': []}


def busiest_plaintext_clients(clients, limit):
    """(at most LIMIT of CLIENTS (Summary.result()'s) that sent mail without TLS, the most
    such messages first, and how many there are in all)."""
    plaintext = sorted((c for c in clients if c['messages_plaintext']),
                       key=lambda c: (-c['messages_plaintext'], c['client']))
    return plaintext[:limit], len(plaintext)


def _new_hop(name):
    return {'destination': name, 'relays': [], 'sent': 0, 'sent_tls': 0, 'sent_plaintext': 0, 'sent_unknown': 0,
            'deferred': 0,
            'bounced': 0, 'trust': dict((t, 0) for t in TRUST_LEVELS), 'plaintext_relays': [],
            'deferred_reasons': {}, 'would_defer_at_encrypt': False}


class Summary:
    """Deliveries per next hop, fed line by line."""

    def __init__(self, since=None, syslog_name=None, now=None, max_reasons=5, tls_logged=None):
        self.since = since
        # whether the SMTP client (smtp) and server (smtpd) log their TLS sessions
        self.tls_logged = dict({'smtp': True, 'smtpd': True}, **(tls_logged or {}))
        self.syslog_name = syslog_name
        self.now = now
        self.max_reasons = max_reasons
        self.hops = {}
        self.relays = {}
        self.sessions = {}          # (prog, pid) -> (relay, trust)
        self.proxy_sessions = {}    # relay -> trust (tlsproxy, connection_reuse)
        self.clients = {}           # HOST[ADDR] -> messages received (smtpd)
        self.server_sessions = {}   # (prog, pid) -> TLS trust of the session, or None
        self.lines = 0
        self.first = None
        self.last = None

    def _ours(self, entry):
        if not self.syslog_name:
            return True
        return entry.prog.startswith(self.syslog_name + '/')

    def feed(self, line):
        entry = parse_line(line, self.now)
        if entry is None or not self._ours(entry):
            return
        service = entry.service
        if service not in CLIENTS and service not in ('tlsproxy', SERVER):
            return
        if self.since is not None and (entry.time is None or entry.time < self.since):
            return
        self.lines += 1
        if entry.time is not None:
            self.first = self.first or entry.time
            self.last = entry.time
        if service == SERVER:
            self._server(entry)
            return
        tls = _TLS_RE.match(entry.text)
        if tls:
            trust = tls.group('trust').lower()
            if service == 'tlsproxy':
                self.proxy_sessions[tls.group('relay')] = trust
            else:
                self.sessions[(entry.prog, entry.pid)] = (tls.group('relay'), trust)
            return
        if service == 'tlsproxy':
            return
        status = _STATUS_RE.match(entry.text)
        if status:
            self._status(entry, status)

    def _server(self, entry):
        """An smtpd line: a session starts or ends, turns to TLS, or hands a message over."""
        key = (entry.prog, entry.pid)
        connect = _CONNECT_RE.match(entry.text)
        if connect:
            if connect.group('event') == 'connect':
                self.server_sessions[key] = None
            else:
                self.server_sessions.pop(key, None)
            return
        tls = _SERVER_TLS_RE.match(entry.text)
        if tls:
            self.server_sessions[key] = tls.group('trust').lower()
            return
        received = _CLIENT_RE.match(entry.text)
        if not received:
            return
        name = received.group('client')
        name = name[:name.rfind(']') + 1]       # without the port of smtpd_client_port_logging
        client = self.clients.setdefault(name, _new_client(name))
        client['messages'] += 1
        if not self.tls_logged[SERVER]:
            client['messages_unknown'] += 1
        elif self.server_sessions.get(key):
            client['messages_tls'] += 1
        else:
            client['messages_plaintext'] += 1
            if entry.prog not in client['plaintext_services']:
                client['plaintext_services'].append(entry.prog)
        if entry.prog not in client['services']:
            client['services'].append(entry.prog)

    def _status(self, entry, status):
        relay = status.group('relay').strip()
        hop = self.hops.setdefault(recipient_domain(status.group('rcpt')), _new_hop(recipient_domain(status.group('rcpt'))))
        if relay != 'none' and relay not in hop['relays']:
            hop['relays'].append(relay)
        outcome = status.group('status')
        if outcome == 'deferred':
            hop['deferred'] += 1
            reason = status.group('reason') or ''
            if reason in hop['deferred_reasons'] or len(hop['deferred_reasons']) < self.max_reasons:
                hop['deferred_reasons'][reason] = hop['deferred_reasons'].get(reason, 0) + 1
            return
        if outcome in ('bounced', 'expired'):
            hop['bounced'] += 1
            return
        if outcome != 'sent' or relay == 'none':
            return
        trust = None
        session = self.sessions.get((entry.prog, entry.pid))
        if session and session[0] == relay:
            trust = session[1]
        elif relay in self.proxy_sessions:
            trust = self.proxy_sessions[relay]
        by_relay = self.relays.setdefault(relay, {'relay': relay, 'sent_tls': 0, 'sent_plaintext': 0,
                                                  'sent_unknown': 0})
        hop['sent'] += 1
        if not self.tls_logged['smtp']:
            hop['sent_unknown'] += 1
            by_relay['sent_unknown'] += 1
            hop['would_defer_at_encrypt'] = None        # the log cannot tell
        elif trust:
            hop['sent_tls'] += 1
            hop['trust'][trust] += 1
            by_relay['sent_tls'] += 1
        else:
            hop['sent_plaintext'] += 1
            by_relay['sent_plaintext'] += 1
            hop['would_defer_at_encrypt'] = True
            if relay not in hop['plaintext_relays']:
                hop['plaintext_relays'].append(relay)

    def result(self):
        hops = [self.hops[name] for name in sorted(self.hops)]
        for hop in hops:
            hop['deferred_reasons'] = [{'reason': r, 'count': n} for r, n in
                                       sorted(hop['deferred_reasons'].items(), key=lambda item: -item[1])]
        return {
            'next_hops': hops,
            'plaintext': [hop['destination'] for hop in hops if hop['sent_plaintext']],
            'relays': [self.relays[r] for r in sorted(self.relays)],
            'tls_logged': dict(self.tls_logged),
            'clients': [self.clients[c] for c in sorted(self.clients)],
            'plaintext_clients': [c for c in sorted(self.clients) if self.clients[c]['messages_plaintext']],
            'lines': self.lines,
            'first': self.first.isoformat(sep=' ') if self.first else None,
            'last': self.last.isoformat(sep=' ') if self.last else None,
        }


def summarize(lines, since=None, syslog_name=None, now=None):
    """Summary.result() of LINES (an iterable of log lines)."""
    summary = Summary(since=since, syslog_name=syslog_name, now=now)
    for line in lines:
        summary.feed(line)
    return summary.result()


_WINDOW_RE = re.compile(r'^\s*(\d+)\s*([smhdw]?)\s*$')
_UNITS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}


def window_seconds(text):
    """'90m', '24h', '7d', '3600' -> seconds; ValueError names the value and the rule."""
    match = _WINDOW_RE.match(text or '')
    if not match or int(match.group(1)) <= 0:
        raise ValueError('window %r: a positive number with an optional unit s, m, h, d or w (like 24h) '
                         'is required' % (text,))
    return int(match.group(1)) * _UNITS[match.group(2)]


def since_window(text, now=None):
    """The start of a window like '7d' before NOW (default: now); None for an empty window."""
    if not text:
        return None
    return (now or datetime.datetime.now()) - datetime.timedelta(seconds=window_seconds(text))


def summarize_mail_log(module, files, source='auto', since=None, syslog_name=None, params=None):
    """(Summary, sources read) of the mail log since SINCE.

    FILES default to Postfix's maillog_file in PARAMS (expanded main.cf
    values, LOG_PARAMETERS), else /var/log/mail.log; SYSLOG_NAME to its
    syslog_name, else postfix; its smtp_tls_loglevel and smtpd_tls_loglevel say
    whether TLS sessions are logged (a warning through MODULE for a side that does not
    log them). See read_mail_log for SOURCE.
    """
    params = params or {}
    files = files or [params.get('maillog_file') or '/var/log/mail.log']
    if syslog_name is None:
        syslog_name = params.get('syslog_name') or 'postfix'
    # a level not read (no postconf) is taken as logged
    logged = dict((side, tls_summary_logged(params[side + '_tls_loglevel']))
                  for side in ('smtp', 'smtpd') if side + '_tls_loglevel' in params)
    summary = Summary(since=since, syslog_name=syslog_name, tls_logged=logged)
    sources = read_mail_log(module, summary, files, source, since)
    for warning in unlogged_tls_warnings(summary.tls_logged):
        module.warn(warning)
    return summary, sources


def read_mail_log(module, summary, files, source='auto', since=None):
    """Feed SUMMARY from the mail log; return the sources read.

    FILES (plain or .gz) when SOURCE is 'file', or 'auto' and one of them
    exists; otherwise the journal (``journalctl`` lines of smtp, lmtp,
    tlsproxy and smtpd since SINCE, a datetime or None), reported as 'journal'.
    Failures go through MODULE.fail_json, naming the file or command.
    """
    sources = []
    # a pipe or a device (maillog_file = /dev/stdout in a container) never ends: not read
    irregular = [path for path in files if os.path.exists(path) and not os.path.isfile(path)]
    present = [path for path in files if os.path.isfile(path)]
    if source == 'file' or (source == 'auto' and present):
        missing = [path for path in files if path not in present and path not in irregular]
        if source == 'file' and missing:
            module.fail_json(msg='log_files: %s does not exist' % ', '.join(missing))
        if source == 'file' and irregular:
            module.fail_json(msg='log_files: %s is not a regular file (a pipe or a device, such as '
                                 'maillog_file = /dev/stdout): reading it would never end' % ', '.join(irregular))
        for path in present:
            opener = gzip.open if path.endswith('.gz') else open
            try:
                with opener(path, 'rb') as handle:
                    for raw in handle:
                        summary.feed(raw.decode('utf-8', 'replace'))
            except (OSError, IOError, EOFError) as exc:
                module.fail_json(msg='cannot read the mail log %s: %s' % (path, exc))
            sources.append(path)
        return sources
    journalctl = module.get_bin_path('journalctl', required=not irregular)
    if journalctl is None:
        module.fail_json(msg='the mail log %s is not a regular file (a pipe or a device, such as maillog_file = '
                             '/dev/stdout): reading it would never end, and there is no journalctl to read '
                             'instead' % ', '.join(irregular))
    cmd = [journalctl, '--no-pager', '-q', '-o', 'short-iso']
    if since is not None:
        cmd.append('--since=%s' % since.strftime('%Y-%m-%d %H:%M:%S'))
    cmd += ['_COMM=smtp', '_COMM=lmtp', '_COMM=tlsproxy', '_COMM=smtpd']
    rc, out, err = module.run_command(cmd, environ_update=C_LOCALE)
    if rc != 0:
        module.fail_json(msg='%s failed (exit status %d): %s' % (' '.join(cmd), rc, (err or out).strip()), cmd=cmd)
    for line in out.splitlines():
        summary.feed(line)
    sources.append('journal')
    return sources
