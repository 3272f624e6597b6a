# SPDX-License-Identifier: GPL-3.0-or-later
"""A private Postfix instance that tells whether it uses TLS policy entries.

The host's Postfix binaries run with their own configuration, queue and data
directories (a throwaway directory under /tmp), in a private mount namespace
(``unshare -m``) where /etc/hosts, /etc/nsswitch.conf and /etc/resolv.conf
are replaced by files of the instance: host names of test next hops resolve
to loopback addresses, and nothing is ever resolved through DNS.  The system
Postfix instance (/etc/postfix, /var/spool/postfix, /var/lib/postfix) is not
touched: no file there is read for writing, and its master is never started.

One round (``Oracle.ask``) takes policy entries (key and value), and

1. writes them into a policy table (by hand, or by the collection's
   ``tls_policy`` module through a callback), and points
   ``smtp_tls_policy_maps`` at it;
2. adds a new smtp service to master.cf for this round (``-v``, so the SMTP
   client logs every policy lookup and its result), a transport map entry
   per entry that routes a unique recipient domain to a next hop spelled
   exactly like the entry's key, and host names / listeners for it;
3. reloads the instance, submits one message per entry over SMTP (null
   sender: no bounce ever leaves), waits until each has a delivery status,
   and classifies each entry from the instance's log (maillog_file):

   ``used``       the SMTP client looked the entry up, read its value and
                  applied it: delivered, or deferred for a TLS reason such as
                  "Server certificate not verified";
   ``rejected``   Postfix refused the entry (the ``smtp_tls_policy_maps``
                  diagnostics, "client TLS configuration problem", a table
                  lookup error, or the TLS library refusing a protocol,
                  cipher or SNI setting of the entry);
   ``ignored``    looked up, but Postfix warned that it ignores part of it
                  (attributes at level none, an invalid match name);
   ``unmatched``  the lookup never found the entry (wrong key form);
   ``unroutable`` the SMTP client cannot use a next hop spelled like the key
                  at all ("bad network port", "valid hostname ... required"),
                  so no mail ever looks the entry up;
   ``unknown``    no delivery status within the time limit.

Every verdict carries the log lines it is based on.
"""

import atexit
import ipaddress
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

from .peer import PeerPool, make_certificate

POSTFIX = shutil.which('postfix', path='/usr/sbin:/usr/bin:/sbin:/bin')
POSTCONF = shutil.which('postconf', path='/usr/sbin:/usr/bin:/sbin:/bin')
POSTMAP = shutil.which('postmap', path='/usr/sbin:/usr/bin:/sbin:/bin')
POSTSUPER = shutil.which('postsuper', path='/usr/sbin:/usr/bin:/sbin:/bin')
UNSHARE = shutil.which('unshare', path='/usr/bin:/usr/sbin:/bin:/sbin')
DAEMON_DIR = '/usr/lib/postfix/sbin'


def unavailable_reason():
    """Why an oracle instance cannot run here, or None."""
    missing = [name for name, path in (('postfix', POSTFIX), ('postconf', POSTCONF), ('postmap', POSTMAP),
                                       ('postsuper', POSTSUPER)) if not path]
    if missing:
        return 'the Postfix delivery oracle needs the host Postfix binaries (%s missing)' % ', '.join(missing)
    if not UNSHARE:
        return 'the Postfix delivery oracle needs unshare(1) (util-linux) for a private /etc/hosts'
    if os.geteuid() != 0:
        return 'the Postfix delivery oracle starts a private Postfix instance and needs root'
    return None


class OracleError(RuntimeError):
    pass


class Verdict(object):
    """What Postfix did with one entry."""

    __slots__ = ('key', 'value', 'verdict', 'status', 'reason', 'lookup', 'evidence', 'queue_id',
                 'recipient', 'nexthop')

    def __init__(self, key, value, recipient, nexthop):
        self.key, self.value = key, value
        self.recipient, self.nexthop = recipient, nexthop
        self.verdict = 'unknown'
        self.status = None        # sent / deferred / bounced
        self.reason = None        # the text in parentheses of the status line
        self.lookup = None        # (key, value) Postfix found, or None
        self.evidence = []        # log lines
        self.queue_id = None

    @property
    def line(self):
        return '%s %s' % (self.key, self.value)

    def explain(self):
        head = '%-9s %s %s' % (self.verdict, self.key, self.value)
        return '\n'.join([head] + ['    ' + line for line in self.evidence])

    def __repr__(self):
        return 'Verdict(%r, %r -> %s)' % (self.key, self.value, self.verdict)


# -- log parsing ---------------------------------------------------------------------

_LOG_RE = re.compile(r'^\S+\s+(?:\S+\s+\S+\s+)?\S+ (?P<prog>[^\s\[]+)\[(?P<pid>\d+)\]: (?P<text>.*)$')
_STATUS_RE = re.compile(r'^(?P<qid>[0-9A-Za-z]+): to=<(?P<rcpt>[^>]*)>,.* status=(?P<status>sent|deferred|bounced|expired)'
                        r' \((?P<reason>.*)\)$')
_FOUND_RE = re.compile(r'^maps_find: smtp_tls_policy_maps: (?P<map>[a-z0-9]+:\S+?)(?:\([^)]*\))?: (?P<key>.*?) = (?P<value>.*)$')
_NOTFOUND_RE = re.compile(r'^maps_find: smtp_tls_policy_maps: (?P<key>.*): (?P<what>not found|search aborted)$')

# Warnings that say Postfix refuses (part of) the entry.  Policy table
# diagnostics (smtp_tls_policy.c) all start with the table title.
_REJECT_PATTERNS = [
    re.compile(r'smtp_tls_policy_maps, next-hop destination "[^"]*": (?!ignoring attribute)'),
    re.compile(r'smtp_tls_policy_maps.*lookup error'),
    re.compile(r'lookup error for "'),
    re.compile(r'Invalid TLS protocol list'),
    re.compile(r'invalid cipher grade'),
    re.compile(r"invalid unary '!\+-@' in cipher exclusion"),
    re.compile(r'error setting cipher grade'),
    re.compile(r'ignoring too long SNI hostname'),
    re.compile(r'error setting SNI hostname'),
    re.compile(r'all fingerprints unusable'),
    re.compile(r'all trust anchors unusable'),
    re.compile(r'all TLSA records unusable'),
    re.compile(r'configured at fingerprint security level, but with no fingerprints'),
    re.compile(r'malformed fingerprint'),
    re.compile(r'(?:error|problem) (?:loading|reading|opening).*(?:trust|anchor|tafile|PEM)', re.I),
    re.compile(r'configured with dnssec lookups disabled'),
    re.compile(r'security level is invalid'),
    re.compile(r'client TLS configuration problem'),
    re.compile(r'TLS policy lookup'),
    re.compile(r'Temporary lookup error'),
    re.compile(r'is unavailable'),
    re.compile(r'unsupported dictionary type'),
    re.compile(r'duplicate entry'),
    # local configuration the TLS library cannot use at all (not the peer's fault)
    re.compile(r'no protocols available'),
    re.compile(r'no cipher(?:s| match)'),
]
_IGNORE_PATTERNS = [
    re.compile(r'ignoring attribute "[^"]*" with TLS disabled'),
    re.compile(r'ignoring invalid match name'),
    re.compile(r'could not configure peer name checks'),
    # a protocol bound OpenSSL does not know is dropped with a warning (tls_client.c CARP_VERSION)
    re.compile(r'error (?:setting|clearing) (?:min|max)imum TLS version'),
]
# "error loading match name" is not listed: OpenSSL refuses an IP address as a
# host name to check, which happens for the keyword "hostname" with an IP next hop.
# Warnings that belong to the entry but do not make Postfix refuse it:
# "dane" without DNSSEC falls back to "may" (smtp_tls_policy.c dane_incompat).
_FALLBACK_OK = [
    re.compile(r': dane configured with dnssec lookups disabled'),
]


def _is_warning(text):
    return text.startswith('warning: ') or text.startswith('error: ') or text.startswith('fatal: ')


def classify(verdict, lines):
    """Set verdict.verdict from the smtp process lines of this delivery."""
    verdict.evidence = list(lines)
    found = []
    notfound = []
    for line in lines:
        match = _LOG_RE.match(line)
        text = match.group('text') if match else line
        m = _FOUND_RE.match(text)
        if m:
            found.append((m.group('key'), m.group('value')))
            continue
        m = _NOTFOUND_RE.match(text)
        if m:
            notfound.append(m.group('key'))
    if found:
        verdict.lookup = found[-1]
    texts = []
    for line in lines:
        match = _LOG_RE.match(line)
        texts.append(match.group('text') if match else line)
    warnings = [t for t in texts if _is_warning(t)]
    rejected = [t for t in warnings if any(p.search(t) for p in _REJECT_PATTERNS)
                and not any(p.search(t) for p in _FALLBACK_OK)]
    ignored = [t for t in warnings if any(p.search(t) for p in _IGNORE_PATTERNS)]
    status_reason = verdict.reason or ''
    if verdict.status == 'fatal':
        verdict.verdict = 'unroutable'
    elif rejected or 'client TLS configuration problem' in status_reason \
            or 'lookup error' in status_reason or 'Cannot start TLS: handshake failure' in status_reason:
        # the oracle's peer takes every protocol and cipher (peer.py): a handshake that fails
        # is the policy's doing (no cipher or protocol left), whatever else was logged
        verdict.verdict = 'rejected'
    elif verdict.status is None:
        verdict.verdict = 'unknown'
    elif not found:
        verdict.verdict = 'unmatched'
    elif ignored:
        verdict.verdict = 'ignored'
    else:
        verdict.verdict = 'used'
    # keep the evidence short: the lines that decide, then the status line
    deciding = [line for line in lines
                if _FOUND_RE.match(_text(line)) or _text(line).startswith('fatal: ') or _NOTFOUND_RE.match(_text(line)) or _is_warning(_text(line))
                or _STATUS_RE.match(_text(line)) or 'TLS connection established' in line]
    verdict.evidence = deciding or list(lines[-5:])
    return verdict


def _text(line):
    match = _LOG_RE.match(line)
    return match.group('text') if match else line


# -- key routing -----------------------------------------------------------------------

_SERVICES = {'smtp': 25, 'submission': 587, 'submissions': 465, 'smtps': 465, 'lmtp': 24}


def _port_number(port, default):
    if port is None or port == '':
        return default
    if port.isdigit():
        return int(port)
    if port in _SERVICES:
        return _SERVICES[port]
    try:
        return socket.getservbyname(port, 'tcp')
    except OSError:
        raise OracleError('port %r of a test key is neither a number nor a known service' % port)


def _ip(text):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class Route(object):
    """How a message reaches the next hop spelled like a key."""

    def __init__(self, nexthop, address, port, hostnames):
        self.nexthop = nexthop          # transport next hop, verbatim the key (or a subdomain of it)
        self.address = address          # loopback address the peer listens on
        self.port = port
        self.hostnames = hostnames      # names that must resolve to address


class Oracle(object):
    """A private Postfix instance plus loopback peers; see the module docstring."""

    def __init__(self, base=None, keep=False, round_timeout=60.0):
        self.keep = keep
        self.round_timeout = round_timeout
        self.base = base or tempfile.mkdtemp(prefix='mailgw-oracle-', dir='/tmp')
        os.chmod(self.base, 0o755)
        self.conf = os.path.join(self.base, 'conf')
        self.queue = os.path.join(self.base, 'queue')
        self.data = os.path.join(self.base, 'data')
        self.tables = os.path.join(self.base, 'tables')
        self.etc = os.path.join(self.base, 'etc')
        self.log = os.path.join(self.base, 'log', 'maillog')
        self.round = 0
        self.counter = 0
        self.hosts = {}
        self.transport_lines = []
        self.log_offset = 0
        self.master_pid = None
        self.started = False
        # a /16 of the loopback range for this instance, and a port for its peers
        seed = os.getpid() ^ int(time.time() * 1000)
        self.net = 100 + seed % 150
        self.port = 20000 + (seed // 150) % 30000
        self.submit_address = '127.%d.255.254' % self.net
        self.submit_port = None
        self.peers = None
        self.version = None
        # the DNS server of the instance's test names (serve_dns), on port 53 of this address
        self.nameserver = '127.%d.255.53' % self.net
        self.dns = None

    def mail_version(self):
        """(major, minor, patch) of the host Postfix."""
        if self.version is None:
            out = self._run([POSTCONF, '-c', self.conf, '-h', 'mail_version']).stdout.strip()
            self.version = tuple(int(part) for part in re.findall(r'[0-9]+', out)[:3])
        return self.version

    def parameter(self, name):
        """A main.cf parameter of the instance, expanded (postconf -x -h)."""
        return self._run([POSTCONF, '-c', self.conf, '-x', '-h', name]).stdout.strip()

    def postconf(self, *args):
        """Run postconf on the instance's configuration (``-e``, ``-X``, ``-M`` ... ARGS); the
        next round's reload makes a change live."""
        return self._run([POSTCONF, '-c', self.conf] + list(args))

    # -- set-up -------------------------------------------------------------------

    def _run(self, argv, check=True, **kwargs):
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
        if check and proc.returncode != 0:
            raise OracleError('%s failed (rc %d): %s%s' % (' '.join(argv), proc.returncode,
                                                           proc.stdout, proc.stderr))
        return proc

    # ports handed out on a shared address (::1) by this process: a released port can come
    # back from the next bind, and two keys of one round must never name the same next hop
    _ports_taken = set()

    def _free_port(self, address):
        family = socket.AF_INET6 if ':' in address else socket.AF_INET
        for _attempt in range(100):
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((address, 0))
                port = sock.getsockname()[1]
            if (address, port) not in Oracle._ports_taken:
                Oracle._ports_taken.add((address, port))
                return port
        raise OracleError('no unused port on %s' % address)

    def start(self):
        try:
            return self._start()
        except BaseException:
            self.started = self.started or bool(self.master_pid)
            self.stop()
            raise

    def _start(self):
        for directory in (self.conf, self.data, self.tables, self.etc, os.path.dirname(self.log)):
            os.makedirs(directory, exist_ok=True)
        uid, gid = _ids('postfix')
        os.chown(self.data, uid, gid)
        os.chmod(self.data, 0o700)
        os.makedirs(self.queue, exist_ok=True)
        os.chmod(self.queue, 0o755)
        postdrop_gid = _group('postdrop')
        for name, group, mode in (('active', None, 0o700), ('bounce', None, 0o700), ('corrupt', None, 0o700),
                                  ('defer', None, 0o700), ('deferred', None, 0o700), ('flush', None, 0o700),
                                  ('hold', None, 0o700), ('incoming', None, 0o700), ('private', None, 0o700),
                                  ('maildrop', postdrop_gid, 0o730), ('public', postdrop_gid, 0o710),
                                  ('saved', None, 0o700), ('trace', None, 0o700)):
            path = os.path.join(self.queue, name)
            os.makedirs(path, exist_ok=True)
            os.chown(path, uid, gid if group is None else group)
            os.chmod(path, mode)
        os.makedirs(os.path.join(self.queue, 'pid'), exist_ok=True)
        os.chmod(os.path.join(self.queue, 'pid'), 0o755)

        self.cert, self.key = make_certificate(self.base)
        os.chmod(self.key, 0o644)
        self.peers = PeerPool(self.cert, self.key)
        self.submit_port = self._free_port(self.submit_address)
        # the default smtp port of this instance (keys without a port)
        for _attempt in range(20):
            try:
                self.peers.listen('127.%d.0.1' % self.net, self.port)
                break
            except OSError:
                self.port = 20000 + (self.port + 7919 - 20000) % 30000
        else:
            raise OracleError('no free port for the oracle peers on 127.%d.0.1' % self.net)

        with open(os.path.join(self.etc, 'hosts'), 'w') as handle:
            handle.write(self._hosts_text())
        with open(os.path.join(self.etc, 'nsswitch.conf'), 'w') as handle:
            handle.write('passwd: files\ngroup: files\nshadow: files\nhosts: files\nservices: files\n'
                         'networks: files\nprotocols: files\n')
        with open(os.path.join(self.etc, 'resolv.conf'), 'w') as handle:
            # nothing answers there unless a test calls serve_dns(); main.cf disables DNS lookups
            # except in a round's lane that enables them (ask(lane_options=...))
            # trust-ad: glibc passes the server's AD bit on (dns.py: DNSSEC as a validating resolver says it)
            handle.write('# the oracle instance\'s own DNS server (serve_dns)\nnameserver %s\noptions trust-ad\n'
                         % self.nameserver)
        open(os.path.join(self.tables, 'empty'), 'w').close()
        open(os.path.join(self.conf, 'transport'), 'w').close()
        open(self.log, 'a').close()
        with open(os.path.join(self.conf, 'main.cf'), 'w') as handle:
            handle.write(self._main_cf())
        with open(os.path.join(self.conf, 'master.cf'), 'w') as handle:
            handle.write(self._master_cf())
        # quick-start: skip postfix-script's check-fatal/check-warn, which run
        # post-install against the shared postfix-files (and chown system paths)
        open(os.path.join(self.queue, 'quick-start'), 'w').close()
        self._run(self.namespace_argv() + [POSTFIX, '-c', self.conf, 'start'])
        self.started = True
        atexit.register(self.stop)      # a script that dies without stop() leaves no instance behind
        pidfile = os.path.join(self.queue, 'pid', 'master.pid')
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with open(pidfile) as handle:
                    self.master_pid = int(handle.read().split()[0])
                break
            except (OSError, ValueError, IndexError):
                time.sleep(0.1)
        else:
            raise OracleError('the oracle Postfix instance did not start:\n%s' % self.read_log_tail())
        self._wait_for(lambda: self._can_connect(self.submit_address, self.submit_port), 20,
                       'the oracle smtpd on %s:%d' % (self.submit_address, self.submit_port))
        return self

    def _main_cf(self):
        return '\n'.join([
            '# private Postfix instance of the mailgw.postfix_tls delivery oracle (tests/integration/oracle)',
            'compatibility_level = 3.6',
            'queue_directory = %s' % self.queue,
            'data_directory = %s' % self.data,
            'mail_owner = postfix',
            'setgid_group = postdrop',
            'myhostname = oracle-mta.test',
            'mydomain = oracle-mta.test',
            'myorigin = $myhostname',
            'mydestination =',
            'relay_domains =',
            'local_transport = error:5.1.1 the oracle delivers nothing locally',
            'alias_maps =',
            'alias_database =',
            'biff = no',
            'inet_interfaces = loopback-only',
            'inet_protocols = all',
            'mynetworks = 127.0.0.0/8 [::1]/128',
            'smtpd_relay_restrictions = permit_mynetworks, reject',
            'smtpd_peername_lookup = no',
            'smtputf8_enable = yes',
            'transport_maps = texthash:%s/transport' % self.conf,
            'smtp_dns_support_level = disabled',
            'smtp_host_lookup = native',
            'smtp_tcp_port = %d' % self.port,
            'smtp_tls_security_level = may',
            'smtp_tls_loglevel = 1',
            'smtp_tls_policy_maps = hash:%s/empty' % self.tables,
            'smtp_connection_cache_on_demand = no',
            'smtp_connect_timeout = 5s',
            'smtp_helo_timeout = 10s',
            'smtp_starttls_timeout = 10s',
            'smtp_tls_session_cache_database =',
            'minimal_backoff_time = 3600s',
            'maximal_backoff_time = 7200s',
            'queue_run_delay = 3600s',
            'delay_warning_time = 0',
            'default_destination_concurrency_limit = 1',
            'maillog_file = %s' % self.log,
            'maillog_file_prefixes = %s' % self.base,
            'import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C',
            '',
        ])

    def _master_cf(self):
        service = '%-12s %-5s %-2s %-2s %-2s %-5s %-5s %s'
        rows = [
            ('%s:%d' % (self.submit_address, self.submit_port), 'inet', 'n', '-', 'n', '-', '-', 'smtpd'),
            ('cleanup', 'unix', 'n', '-', 'n', '-', '0', 'cleanup'),
            ('qmgr', 'unix', 'n', '-', 'n', '300', '1', 'qmgr'),
            ('tlsmgr', 'unix', '-', '-', 'n', '1000?', '1', 'tlsmgr'),
            ('rewrite', 'unix', '-', '-', 'n', '-', '-', 'trivial-rewrite'),
            ('bounce', 'unix', '-', '-', 'n', '-', '0', 'bounce'),
            ('defer', 'unix', '-', '-', 'n', '-', '0', 'bounce'),
            ('trace', 'unix', '-', '-', 'n', '-', '0', 'bounce'),
            ('verify', 'unix', '-', '-', 'n', '-', '1', 'verify'),
            ('flush', 'unix', 'n', '-', 'n', '1000?', '0', 'flush'),
            ('proxymap', 'unix', '-', '-', 'n', '-', '-', 'proxymap'),
            ('smtp', 'unix', '-', '-', 'n', '-', '-', 'smtp'),
            ('tlsproxy', 'unix', '-', '-', 'n', '-', '0', 'tlsproxy'),
            ('showq', 'unix', 'n', '-', 'n', '-', '-', 'showq'),
            ('error', 'unix', '-', '-', 'n', '-', '-', 'error'),
            ('retry', 'unix', '-', '-', 'n', '-', '-', 'error'),
            ('discard', 'unix', '-', '-', 'n', '-', '-', 'discard'),
            ('anvil', 'unix', '-', '-', 'n', '-', '1', 'anvil'),
            ('scache', 'unix', '-', '-', 'n', '-', '1', 'scache'),
            ('postlog', 'unix-dgram', 'n', '-', 'n', '-', '1', 'postlogd'),
        ]
        return '\n'.join(service % row for row in rows) + '\n'

    def _hosts_text(self):
        lines = ['127.0.0.1 localhost', '::1 localhost ip6-localhost']
        for name, address in sorted(self.hosts.items()):
            lines.append('%s %s' % (address, name))
        return '\n'.join(lines) + '\n'

    def _write_hosts(self):
        # in place: the namespace sees this inode through a bind mount
        with open(os.path.join(self.etc, 'hosts'), 'r+b') as handle:
            handle.truncate(0)
            handle.write(self._hosts_text().encode('utf-8'))

    @staticmethod
    def _can_connect(address, port):
        try:
            with socket.create_connection((address, port), timeout=1):
                return True
        except OSError:
            return False

    def _wait_for(self, predicate, seconds, what):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise OracleError('timed out waiting for %s\n%s' % (what, self.read_log_tail()))

    def read_log_tail(self, size=4000):
        try:
            with open(self.log, 'rb') as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - size))
                return handle.read().decode('utf-8', 'replace')
        except OSError:
            return '(no log)'

    def stop(self):
        atexit.unregister(self.stop)
        if self.started:
            self._run([POSTFIX, '-c', self.conf, 'stop'], check=False)
            if self.master_pid:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and _alive(self.master_pid):
                    time.sleep(0.1)
                if _alive(self.master_pid):
                    try:
                        os.killpg(self.master_pid, signal.SIGKILL)
                    except OSError:
                        pass
            self.started = False
        if self.peers:
            self.peers.close()
        if self.dns:
            self.dns.close()
            self.dns = None
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
            self.keep = True        # once

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- DNS and the instance's view of /etc ----------------------------------------

    def serve_dns(self):
        """Start the instance's DNS server (idempotent); returns its Zone. Only the SMTP
        client of a lane with ``smtp_dns_support_level=enabled`` asks it."""
        from .dns import DnsServer
        if self.dns is None:
            self.dns = DnsServer(self.nameserver)
        return self.dns.zone

    def add_mx(self, domain, exchangers):
        """MX records for DOMAIN: EXCHANGERS is [(preference, host name, loopback address)];
        each host name resolves to its address (/etc/hosts of the instance, and an A record)."""
        zone = self.serve_dns()
        for preference, host, address in exchangers:
            zone.add(domain, 'MX', (preference, host))
            zone.add(host, 'A', address)
            self.hosts[host.lower()] = address
        self._write_hosts()

    def add_tlsa(self, host, port, usage, selector, mtype, data):
        """A TLSA record for HOST's PORT (_PORT._tcp.HOST): DATA in hex."""
        self.serve_dns().add('_%d._tcp.%s' % (int(port), host), 'TLSA', (usage, selector, mtype, data))

    def namespace_argv(self):
        """A command prefix that runs a command with the instance's /etc/hosts,
        /etc/nsswitch.conf and /etc/resolv.conf (a private mount namespace): the instance's
        master is started through it, and a probe that must resolve the instance's test names
        as Postfix does runs through it too."""
        script = ('set -e; mount --make-rprivate / 2>/dev/null || true; '
                  'for f in hosts nsswitch.conf resolv.conf; do mount --bind "$1/$f" "/etc/$f"; done; '
                  'shift; exec "$@"')
        return [UNSHARE, '-m', '--propagation', 'private', 'sh', '-c', script, 'oracle-ns', self.etc]

    # -- routing ------------------------------------------------------------------

    def _new_address(self):
        self.counter += 1
        n = self.counter
        if n >= 250 * 250:
            raise OracleError('the oracle ran out of loopback addresses')
        return '127.%d.%d.%d' % (self.net, 1 + n // 250, 1 + n % 250)

    KEY_FORMS = ('ip', 'ip-port', 'ip-service', 'ip-unbracketed', 'host-bracket', 'host-bracket-port',
                 'domain', 'domain-upper', 'parent', 'host-port', 'ipv6-bare', 'ipv6-bare-noport', 'ipv6',
                 'utf8-domain', 'utf8-parent', 'underscore-domain')

    def make_key(self, form='ip'):
        """A fresh policy key of FORM that this instance can route to a loopback peer."""
        self.counter += 1
        n = self.counter
        address = '127.%d.%d.%d' % (self.net, 1 + n // 250, 1 + n % 250)
        if form == 'ip':
            return '[%s]' % address
        if form == 'ip-port':
            return '[%s]:%d' % (address, self.port + 1)
        if form == 'ip-service':
            return '[%s]:submission' % address
        if form == 'ip-unbracketed':
            return address
        if form == 'host-bracket':
            return '[h%d.oracle.test]' % n
        if form == 'host-bracket-port':
            return '[h%d.oracle.test]:%d' % (n, self.port)
        if form == 'domain':
            return 'd%d.oracle.test' % n
        if form == 'domain-upper':
            return 'D%d.Oracle.TEST' % n
        if form == 'parent':
            return '.p%d.oracle.test' % n
        if form == 'host-port':
            return 'h%d.oracle.test:%d' % (n, self.port)
        if form in ('ipv6-bare', 'ipv6'):
            port = self._free_port('::1')
            return ('[::1]:%d' if form == 'ipv6-bare' else '[ipv6:::1]:%d') % port
        if form == 'ipv6-bare-noport':
            return '[::1]'
        if form == 'utf8-domain':
            return 'd%d.b\u00fccher.oracle.test' % n
        if form == 'utf8-parent':
            return '.p%d.b\u00fccher.oracle.test' % n
        if form == 'underscore-domain':
            return '_d%d.oracle.test' % n
        raise ValueError('unknown key form %r (one of %s)' % (form, ', '.join(self.KEY_FORMS)))

    def route(self, key):
        """A Route whose next hop is spelled like KEY (a policy table key)."""
        if key.startswith('['):
            close = key.find(']')
            if close < 0:
                raise OracleError('key %r: no "]"' % key)
            inner, rest = key[1:close], key[close + 1:]
            port = _port_number(rest[1:] if rest.startswith(':') else None, self.port)
            host = inner[5:] if inner.lower().startswith('ipv6:') else inner
            ip = _ip(host)
            if ip is not None:
                if not ip.is_loopback:
                    raise OracleError('key %r: the oracle only contacts loopback addresses' % key)
                return Route(key, str(ip), port, [])
            return Route(key, self._new_address(), port, [host])
        if key.startswith('.'):
            name = 'sub%d%s' % (self.counter + 1, key)
            return Route(name, self._new_address(), self.port, [name])
        if ':' in key:
            host, _sep, port = key.rpartition(':')
            ip = _ip(host)
            if ip is not None:
                if not ip.is_loopback:
                    raise OracleError('key %r: the oracle only contacts loopback addresses' % key)
                return Route(key, str(ip), _port_number(port, self.port), [])
            return Route(key, self._new_address(), _port_number(port, self.port), [host])
        ip = _ip(key)
        if ip is not None:
            if not ip.is_loopback:
                raise OracleError('key %r: the oracle only contacts loopback addresses' % key)
            return Route(key, str(ip), self.port, [])
        return Route(key, self._new_address(), self.port, [key])

    # -- a round -------------------------------------------------------------------

    def table_path(self, name='policy'):
        """A fresh table path for the next round."""
        return os.path.join(self.tables, '%s-%d' % (name, self.round + 1))

    def write_table(self, path, lines, map_type='hash'):
        """Write LINES (key value strings) by hand; build the index for postmap types."""
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(''.join(line + '\n' for line in lines))
        os.chmod(path, 0o644)
        if map_type not in ('texthash',):
            proc = self._run([POSTMAP, '-c', self.conf, '%s:%s' % (map_type, path)], check=False)
            return proc.stderr
        return ''

    def ask(self, entries, writer=None, map_type='hash', path=None, extra_maps=(), lane_options=(), own_routes=None):
        """Classify ENTRIES, a list of (key, value) pairs; returns a list of Verdict.

        writer(path, map_type, entries) writes the table (the tls_policy
        module, say); without one the lines are written by hand.  Each key
        must be unique in the round.  LANE_OPTIONS: ``name=value`` overrides of
        the round's smtp service (``smtp_dns_support_level=enabled`` for MX lookups).
        OWN_ROUTES: {key: Route} for keys the caller routes itself (its own peers listen there).
        """
        self.round += 1
        lane = 'or%d' % self.round
        path = path or os.path.join(self.tables, 'policy-%d' % self.round)
        verdicts = []
        routes = []
        own_routes = own_routes or {}
        for key, value in entries:
            route = own_routes.get(key) or self.route(key)
            recipient = 'probe@e%d.%s.oracle.test' % (len(verdicts) + 1, lane)
            verdicts.append(Verdict(key, value, recipient, route.nexthop))
            routes.append(route)
            for name in route.hostnames:
                self.hosts[name.lower()] = route.address
                try:
                    ascii_name = name.encode('idna').decode('ascii').lower()
                    self.hosts[ascii_name] = route.address
                except UnicodeError:
                    pass
            if key in own_routes:
                continue
            try:
                self.peers.listen(route.address, route.port)
            except (OSError, OverflowError) as exc:
                # no peer (port 0, 65536, taken): Postfix's verdict on the entry still shows in the log
                verdicts[-1].evidence.append('(oracle: no peer on %s port %s: %s)' % (route.address, route.port, exc))
        if writer is None:
            self.write_table(path, ['%s %s' % (key, value) for key, value in entries], map_type)
        else:
            writer(path, map_type, entries)
        self._write_hosts()
        with open(os.path.join(self.conf, 'transport'), 'a', encoding='utf-8') as handle:
            for verdict in verdicts:
                handle.write('%s %s:%s\n' % (verdict.recipient.split('@')[1], lane, verdict.nexthop))
        maps = ', '.join(['%s:%s' % (map_type, path)] + list(extra_maps))
        self._run([POSTCONF, '-c', self.conf, '-e', 'smtp_tls_policy_maps = %s' % maps])
        with open(os.path.join(self.conf, 'master.cf'), 'a') as handle:
            handle.write('%-12s unix  -  -  n  -  20  smtp -v\n  -o syslog_name=postfix/%s\n' % (lane, lane))
            for option in lane_options:
                handle.write('  -o %s\n' % option)
        self._run([POSTFIX, '-c', self.conf, 'reload'])
        socket_path = os.path.join(self.queue, 'private', lane)
        self._wait_for(lambda: os.path.exists(socket_path), 20, 'the %s service after reload' % lane)
        # the smtpd listener is recreated too; wait until it answers again
        self._wait_for(lambda: self._can_connect(self.submit_address, self.submit_port), 20, 'smtpd after reload')
        self.submit(verdicts)
        self.collect(verdicts, lane)
        self._run([POSTSUPER, '-c', self.conf, '-d', 'ALL'], check=False)
        return verdicts

    def submit(self, verdicts):
        with smtplib.SMTP(self.submit_address, self.submit_port, local_hostname='oracle-client.test',
                          timeout=30) as client:
            for verdict in verdicts:
                body = ('From: oracle@oracle-client.test\r\nTo: %s\r\nSubject: %s\r\n\r\n%s %s\r\n'
                        % (verdict.recipient, verdict.key, verdict.key, verdict.value))
                client.mail('')
                code, msg = client.rcpt(verdict.recipient)
                if code != 250:
                    raise OracleError('the oracle smtpd refused %s: %d %s' % (verdict.recipient, code, msg))
                code, msg = client.data(body.encode('utf-8'))
                if code != 250:
                    raise OracleError('the oracle smtpd refused the message for %s: %d %s'
                                      % (verdict.recipient, code, msg))
                match = re.search(r'queued as ([0-9A-Za-z]+)', msg.decode('ascii', 'replace'))
                verdict.queue_id = match.group(1) if match else None

    def _read_new_lines(self):
        with open(self.log, 'rb') as handle:
            handle.seek(self.log_offset)
            data = handle.read()
        end = data.rfind(b'\n') + 1
        self.log_offset += end
        return data[:end].decode('utf-8', 'replace').splitlines()

    def collect(self, verdicts, lane):
        """Wait for a status line per message; classify from the lines of its smtp process
        (and of tlsproxy, which runs the TLS handshake for connection_reuse=yes)."""
        by_rcpt = dict((v.recipient, v) for v in verdicts)
        pending = set(by_rcpt)
        groups = {}
        per_pid = {}
        proxy_lines = []
        prog = 'postfix/%s/smtp' % lane
        deadline = time.monotonic() + self.round_timeout

        def consume(lines):
            for line in lines:
                match = _LOG_RE.match(line)
                if not match:
                    continue
                text = match.group('text')
                pid = match.group('pid')
                own = match.group('prog') == prog
                if match.group('prog').endswith('/tlsproxy'):
                    proxy_lines.append(line)
                    continue
                if own:
                    per_pid.setdefault(pid, []).append(line)
                if own and text.startswith('fatal: '):
                    # the smtp client gave up on the next hop itself ("bad network port",
                    # "valid hostname or network address required"): the key is never looked up
                    for rcpt in _recipients_in(per_pid.get(pid, [])):
                        if rcpt in pending:
                            verdict = by_rcpt[rcpt]
                            verdict.status, verdict.reason = 'fatal', text[len('fatal: '):]
                            groups[rcpt] = per_pid.pop(pid, [])
                            pending.discard(rcpt)
                    continue
                status = _STATUS_RE.match(text)
                if status and status.group('rcpt') in by_rcpt:
                    # the lane's smtp process, or qmgr ("delivery temporarily suspended")
                    rcpt = status.group('rcpt')
                    group = per_pid.pop(pid, []) if own else [line]
                    if by_rcpt[rcpt].status is None:
                        by_rcpt[rcpt].status = status.group('status')
                        by_rcpt[rcpt].reason = status.group('reason')
                        groups[rcpt] = group
                        pending.discard(rcpt)

        while pending and time.monotonic() < deadline:
            lines = self._read_new_lines()
            if not lines:
                time.sleep(0.1)
                continue
            consume(lines)
        time.sleep(0.2)
        consume(self._read_new_lines())     # stragglers, e.g. tlsproxy lines
        for rcpt, verdict in by_rcpt.items():
            if rcpt not in groups:
                classify(verdict, ['(no delivery status within %ds)' % self.round_timeout])
                continue
            group = groups[rcpt]
            relay = _relay_of(group)
            if relay:
                group = [line for line in proxy_lines if relay in line and _is_warning(_text(line))] + group
            classify(verdict, group)
        return verdicts


def _relay_of(lines):
    """'[ADDR]:PORT' of the relay in a status line, or None."""
    for line in reversed(lines):
        match = re.search(r'relay=[^,\[]*(\[[^\]]+\]:\d+)', line)
        if match:
            return match.group(1)
    return None


_RCPT_ATTR_RE = re.compile(r'input attribute value: (\S+@\S+\.oracle\.test)$')


def _recipients_in(lines):
    found = []
    for line in lines:
        match = _RCPT_ATTR_RE.search(line)
        if match and match.group(1) not in found:
            found.append(match.group(1))
    return found


def _ids(user):
    import pwd
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _group(name):
    import grp
    return grp.getgrnam(name).gr_gid


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
