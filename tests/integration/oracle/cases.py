# SPDX-License-Identifier: GPL-3.0-or-later
"""What the oracle tests ask Postfix, and running it all in one instance.

``run_all()`` starts one private instance and runs three rounds:

* ``self``: hand-written lines with known Postfix verdicts (the oracle's own
  validation, tests/integration/oracle/test_oracle_self.py);
* ``texthash``: a texthash table with a duplicate key;
* ``property``: the curated module entries (CURATED, every level and
  attribute, every key form) and entries generated with hypothesis
  (seeded, bounded).  Entries the module accepts are written by the real
  tls_policy module into one table; entries it refuses are written by hand
  into a second table listed after it in smtp_tls_policy_maps.

The result is a JSON-able dict {case id: result}; conftest.py shares it
between pytest-xdist workers, so one instance serves the whole run.
"""

import os
import sys

from .instance import Oracle
from .module_side import grammar, view_line
from .peer import certificate_digest

# -- curated module entries: (id, key form, level, attributes) ------------------------
# {CERT} is the peer certificate (an existing absolute tafile), {FP} its sha256
# fingerprint, {FP_LOWER} the same in lower case without colons, {FP_OTHER} a
# different sha256 fingerprint, {FP_MD5} its md5 fingerprint, {FP_DIGEST} its
# fingerprint in the instance's smtp_tls_fingerprint_digest. A Postfix before 3.6
# (md5 by default) cannot use a sha256 fingerprint: the module refuses those there.

CURATED = [
    ('none', 'ip', 'none', {}),
    ('may', 'ip', 'may', {}),
    ('may-ciphers-high', 'ip', 'may', {'ciphers': 'high'}),
    ('may-ciphers-medium', 'ip', 'may', {'ciphers': 'medium'}),
    ('may-ciphers-low', 'ip', 'may', {'ciphers': 'low'}),
    ('may-ciphers-export', 'ip', 'may', {'ciphers': 'export'}),
    ('may-ciphers-null', 'ip', 'may', {'ciphers': 'null'}),
    ('may-protocols-exclusions', 'ip', 'may', {'protocols': ['!SSLv2', '!SSLv3']}),
    ('may-protocols-range', 'ip', 'may', {'protocols': ['>=TLSv1.2']}),
    ('may-protocols-empty', 'ip', 'may', {'protocols': ''}),
    ('may-exclude', 'ip', 'may', {'exclude': ['RC4', 'aNULL']}),
    ('may-exclude-empty', 'ip', 'may', {'exclude': ''}),
    ('encrypt', 'ip', 'encrypt', {}),
    ('encrypt-ciphers-high', 'ip', 'encrypt', {'ciphers': 'high'}),
    ('encrypt-protocols-list', 'ip', 'encrypt', {'protocols': ['TLSv1.2', 'TLSv1.3']}),
    ('encrypt-protocols-bounds', 'ip', 'encrypt', {'protocols': '>=TLSv1.2:<=TLSv1.3'}),
    ('encrypt-protocols-tlsv1', 'ip', 'encrypt', {'protocols': ['TLSv1']}),
    ('encrypt-protocols-hex', 'ip', 'encrypt', {'protocols': ['>=0x0303']}),
    ('encrypt-exclude', 'ip', 'encrypt', {'exclude': ['3DES', 'kRSA']}),
    ('encrypt-servername-hostname', 'host-bracket', 'encrypt', {'servername': 'hostname'}),
    ('encrypt-servername-nexthop', 'domain', 'encrypt', {'servername': 'nexthop'}),
    ('encrypt-servername-name', 'ip', 'encrypt', {'servername': 'mx.example.test'}),
    ('encrypt-connection-reuse-yes', 'ip', 'encrypt', {'connection_reuse': True}),
    ('encrypt-connection-reuse-no', 'ip', 'encrypt', {'connection_reuse': False}),
    ('encrypt-everything', 'ip', 'encrypt', {'ciphers': 'medium', 'protocols': ['!SSLv2', '!SSLv3'],
                                             'exclude': ['3DES'], 'servername': 'hostname',
                                             'connection_reuse': False}),
    ('dane', 'domain', 'dane', {}),
    ('dane-ciphers', 'ip', 'dane', {'ciphers': 'high', 'protocols': ['>=TLSv1.2']}),
    ('dane-only', 'ip', 'dane-only', {}),
    ('fingerprint', 'ip', 'fingerprint', {'match': ['{FP}']}),
    ('fingerprint-lowercase-nocolon', 'ip', 'fingerprint', {'match': ['{FP_LOWER}']}),
    ('fingerprint-two', 'ip', 'fingerprint', {'match': ['{FP_OTHER}', '{FP}']}),
    ('fingerprint-everything', 'ip', 'fingerprint', {'match': ['{FP}'], 'ciphers': 'high',
                                                     'protocols': ['>=TLSv1.2'], 'exclude': ['3DES'],
                                                     'servername': 'hostname', 'connection_reuse': True}),
    ('verify', 'ip', 'verify', {}),
    ('verify-match-keywords', 'domain', 'verify', {'match': ['hostname', 'nexthop', 'dot-nexthop']}),
    ('verify-match-names', 'ip', 'verify', {'match': ['oracle-peer.test', '.example.test']}),
    ('verify-tafile', 'ip', 'verify', {'tafile': ['{CERT}'], 'match': ['oracle-peer.test']}),
    ('verify-everything', 'host-bracket-port', 'verify', {
        'match': ['nexthop', 'oracle-peer.test'], 'tafile': ['{CERT}'], 'ciphers': 'high',
        'protocols': ['>=TLSv1.2'], 'exclude': ['3DES'], 'servername': 'nexthop',
        'connection_reuse': False}),
    ('secure', 'ip', 'secure', {}),
    ('secure-tafile', 'ip', 'secure', {'tafile': ['{CERT}', '{CERT}'], 'match': ['oracle-peer.test']}),
    ('secure-match-subdomain', 'parent', 'secure', {'match': ['.oracle.test']}),
] + [('key-%s' % form, form, 'encrypt', {}) for form in Oracle.KEY_FORMS]

# -- hand-written lines the module refuses: (id, key form, value) ----------------------
# The module reads each with parse_policy; the property: an error is rejected
# by Postfix, a lint ("rule of this collection") is used by Postfix.

REFUSED_LINES = [
    ('bogus-attribute', 'ip', 'encrypt bogus=1'),
    ('bad-level', 'ip', 'encrpyt'),
    ('empty-ciphers', 'ip', 'encrypt ciphers='),
    ('bad-grade', 'ip', 'encrypt ciphers=bogus'),
    ('exclude-unary', 'ip', 'encrypt exclude=-RC4'),
    ('exclude-bang', 'ip', 'encrypt exclude=!RC4'),
    ('servername-numeric', 'ip', 'encrypt servername=192.0.2.1'),
    ('servername-twice', 'ip', 'encrypt servername=hostname servername=nexthop'),
    ('ciphers-twice', 'ip', 'encrypt ciphers=high ciphers=high'),
    ('match-at-encrypt', 'ip', 'encrypt match=nexthop'),
    ('tafile-at-encrypt', 'ip', 'encrypt tafile={CERT}'),
    ('empty-match', 'ip', 'verify match='),
    ('protocols-sslv2-bound', 'ip', 'encrypt protocols=>=SSLv2'),
    ('protocols-unknown', 'ip', 'encrypt protocols=!bogus'),
    ('protocols-none-left', 'ip', 'encrypt protocols=TLSv1.3:!TLSv1.3'),
    ('protocols-crossed-bounds', 'ip', 'encrypt protocols=>=TLSv1.3:<=TLSv1.2'),
    ('protocols-sslv3-only', 'ip', 'encrypt protocols=SSLv3'),
    ('protocols-gap', 'ip', 'encrypt protocols=!SSLv2:!SSLv3:!TLSv1.1'),
    ('protocols-gap-list', 'ip', 'may protocols=TLSv1:TLSv1.2:TLSv1.3'),
    ('ciphers-null-at-encrypt', 'ip', 'encrypt ciphers=null'),
    ('exclude-all', 'ip', 'encrypt exclude=ALL'),
    # exclusions that leave the grade no cipher: the module asks OpenSSL (tls_policy_configuration);
    # HIGH out of grade high leaves nothing anywhere, out of medium with OpenSSL 3 (MEDIUM empty)
    ('exclude-the-whole-grade', 'ip', 'encrypt ciphers=high exclude=HIGH'),
    ('exclude-high-at-medium', 'ip', 'may exclude=HIGH'),
    ('connection-reuse-bad', 'ip', 'encrypt connection_reuse=maybe'),
    ('enable-rpk-on-3.7', 'ip', 'encrypt enable_rpk=yes'),
    ('brace-form-on-3.7', 'ip', 'encrypt { servername = hostname }'),
    # 3.10 and later split brace-form protocols and exclusions on blanks and commas too
    ('brace-form-list-values', 'ip', 'encrypt { protocols = !SSLv2, !SSLv3 } { exclude = aNULL, MD5 }'),
    ('malformed-pair', 'ip', 'encrypt foo'),
    ('fingerprint-short', 'ip', 'fingerprint match=AA:BB'),
    ('fingerprint-md5-with-sha256-digest', 'ip', 'fingerprint match={FP_MD5}'),
    ('fingerprint-no-match', 'ip', 'fingerprint'),
    ('match-dot', 'ip', 'verify match=.'),
    ('tafile-missing', 'ip', 'verify tafile=/nonexistent/oracle-ta.pem'),
    ('tafile-relative', 'ip', 'secure tafile=oracle-ta.pem'),
    ('dane-only-without-dnssec', 'ip', 'dane-only'),
    ('none-with-attribute', 'ip', 'none ciphers=high'),
]

# -- real-world values: every distinct policy value of the published tables -------------
# (tests/data/realworld/tables, see tests/data/README.md), each under a key of this
# instance in the form of the first key it appears with; (id, key form, value, where).

REALWORLD_TABLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                'data', 'realworld', 'tables')


def _key_form(key):
    if key.startswith('['):
        return 'host-bracket-port' if ']:' in key else 'host-bracket'
    return 'parent' if key.startswith('.') else 'domain'


def realworld_lines():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource
    seen, out = set(), []
    for name in sorted(os.listdir(REALWORLD_TABLES)):
        with open(os.path.join(REALWORLD_TABLES, name), 'rb') as handle:
            table = LookupTableSource.parse(handle.read().decode('utf-8', 'surrogateescape'))
        for entry in table.entries():
            value = ' '.join(entry.value.split())
            if not value or value in seen:
                continue
            seen.add(value)
            out.append(('%02d' % len(out), _key_form(entry.key), value, '%s: %s' % (name, entry.key)))
    return out


REALWORLD_LINES = realworld_lines()

# -- self-validation: (id, key form, value, expected Postfix verdict) ------------------

SELF_CASES = [
    ('invalid-attribute', 'ip-port', 'encrypt bogus=1', 'rejected'),
    ('encrypt', 'ip', 'encrypt', 'used'),
    ('none', 'ip', 'none', 'used'),
    ('exclude-unary', 'ip', 'encrypt exclude=-RC4', 'rejected'),
    ('verify-untrusted', 'ip', 'verify', 'used'),
    # in the instance's smtp_tls_fingerprint_digest (md5 by default before Postfix 3.6)
    ('fingerprint-match', 'ip', 'fingerprint match={FP_DIGEST}', 'used'),
    ('secure-tafile', 'ip', 'secure tafile={CERT} match=oracle-peer.test', 'used'),
    ('parent-domain', 'parent', 'encrypt', 'used'),
    ('none-attribute', 'ip', 'none ciphers=high', 'ignored'),
    ('bad-port', 'ip', 'encrypt', 'unroutable'),         # key routed as [ADDR]:0, see run_self
    ('bare-ipv6-vs-ipv6-form', 'ipv6-bare', 'encrypt', 'unmatched'),   # table says [ipv6:...]
    # a protocol gap: OpenSSL negotiates only the lowest unbroken run (TLSv1 here), not TLSv1.3
    ('protocols-gap', 'ip', 'encrypt protocols=!SSLv2:!SSLv3:!TLSv1.1', 'used'),
    ('protocols-no-gap', 'ip', 'encrypt protocols=!SSLv2:!SSLv3:!TLSv1:!TLSv1.1', 'used'),
]

# DANE for an address literal, in a lane with DNSSEC lookups on (smtp_dns_support_level =
# dnssec): Postfix finds no TLSA records for an IP next hop; dane-only defers, dane is may.
DANE_LITERAL_CASES = [
    ('dane-only', 'ip', 'dane-only'),
    ('dane', 'ip', 'dane'),
]
DANE_LANE = ['smtp_dns_support_level=dnssec', 'smtp_host_lookup=dns,native']

# connection_reuse=yes: the SMTP client hands the connection to the tlsproxy service,
# connecting to private/$tlsproxy_service_name (tls_proxy_clnt.c). One round per master.cf
# and main.cf set-up (the instance's master.cf has tlsproxy): (id, services removed, services
# added, main.cf settings, [(case id, key form, value)]); each value once with
# connection_reuse=no, which never needs the service (the control).
TLSPROXY_ROUNDS = [
    # Debian's master.cf: the service is commented out
    ('missing', ['tlsproxy/unix'], [], {},
     [('encrypt', 'ip', 'encrypt connection_reuse=yes'), ('may', 'ip', 'may connection_reuse=yes'),
      ('verify', 'host-bracket', 'verify match=oracle-peer.test connection_reuse=yes'),
      ('encrypt-no', 'ip', 'encrypt connection_reuse=no')]),
    # the service under another name, and main.cf saying so
    ('renamed', ['tlsproxy/unix'], ['tlsproxy2/unix=tlsproxy2 unix - - n - 0 tlsproxy'],
     {'tlsproxy_service_name': 'tlsproxy2'},
     [('encrypt', 'ip', 'encrypt connection_reuse=yes'), ('may', 'ip', 'may connection_reuse=yes')]),
    # tlsproxy in master.cf, but main.cf names another service
    ('misnamed', [], [], {'tlsproxy_service_name': 'no-such-tlsproxy'},
     [('encrypt', 'ip', 'encrypt connection_reuse=yes'), ('encrypt-no', 'ip', 'encrypt connection_reuse=no')]),
    # main.cf reuses connections for every entry that does not say otherwise, without the service
    ('by-default', ['tlsproxy/unix'], [], {'smtp_tls_connection_reuse': 'yes'},
     [('encrypt', 'ip', 'encrypt'), ('may', 'ip', 'may'), ('verify', 'host-bracket', 'verify match=oracle-peer.test'),
      ('encrypt-no', 'ip', 'encrypt connection_reuse=no'), ('none', 'ip', 'none')]),
]
TLSPROXY_CASES = ['%s/%s' % (round_id, case[0]) for round_id, _x, _y, _z, cases in TLSPROXY_ROUNDS for case in cases]

GENERATED_EXAMPLES = 120
GENERATED_SEED = 13


def _fill(text, subst):
    for name, value in subst.items():
        text = text.replace('{%s}' % name, value)
    return text


def _fill_attrs(attrs, subst):
    out = {}
    for name, value in attrs.items():
        if isinstance(value, list):
            out[name] = [_fill(v, subst) for v in value]
        elif isinstance(value, str):
            out[name] = _fill(value, subst)
        else:
            out[name] = value
    return out


def render_raw(level, attrs):
    """A table value for module options, written the way a person would."""
    tokens = [level]
    for name in grammar.ATTRIBUTES:
        if name not in attrs or attrs[name] is None:
            continue
        value = attrs[name]
        if name == 'match':
            tokens.append('match=' + ('|' if level == 'fingerprint' else ':').join(value))
        elif name == 'tafile':
            tokens.extend('tafile=' + item for item in value)
        elif isinstance(value, list):
            tokens.append('%s=%s' % (name, ':'.join(value)))
        elif isinstance(value, bool):
            tokens.append('%s=%s' % (name, 'yes' if value else 'no'))
        else:
            tokens.append('%s=%s' % (name, value))
    return ' '.join(tokens)


def classify_params(key, level, attrs, version):
    """The module's verdict on module options: ('accepts'|'error'|'lint', message, key, value)."""
    try:
        folded, _warnings = grammar.normalize_destination(key)
        policy = grammar.build_policy(level, **attrs)
    except grammar.PolicyLint as exc:
        return 'lint', str(exc), None, None
    except grammar.PolicyError as exc:
        return 'error', str(exc), None, None
    except TypeError as exc:
        return 'error', str(exc), None, None
    missing = policy.unsupported_on(version) if hasattr(policy, 'unsupported_on') else []
    if missing:
        return 'error', '; '.join(missing), None, None
    return 'accepts', None, folded, policy.render()


def classify_line(key, value, version):
    """The module's reading of a table line: ('accepts'|'error'|'lint', message)."""
    view = view_line(key, value, version)
    if not view.accepted:
        return ('lint' if 'rule of this collection' in (view.message or '') else 'error'), view.message
    try:
        policy = grammar.parse_policy(value, version)
        warnings = list(policy.warnings)
    except TypeError:
        warnings = []
    if any('rule of this collection' not in w for w in warnings):
        return 'error', '; '.join(warnings)
    if warnings:
        return 'lint', '; '.join(warnings)
    return 'accepts', None


def line_to_params(value, version):
    """Module options for a table value the grammar reads as fine (None if it does not)."""
    try:
        policy = grammar.parse_policy(value, version)
    except grammar.PolicyError:
        return None
    params = {'level': policy.level}
    for name, text in policy.attributes:
        if name == 'match':
            params['match'] = [part for part in text.split('|' if policy.level == 'fingerprint' else ':')
                               if part]
        elif name == 'tafile':
            params.setdefault('tafile', []).append(text)
        elif name in ('connection_reuse', 'enable_rpk'):
            params[name] = text.lower() == 'yes'
        elif name in grammar.ATTRIBUTES:
            params[name] = text
    return params


def generated_params(count=GENERATED_EXAMPLES, seed=GENERATED_SEED):
    """COUNT module entries drawn by hypothesis (derandomized: the same every run)."""
    from hypothesis import HealthCheck, given, seed as hseed, settings
    from hypothesis import strategies as st

    names = st.sampled_from(['nexthop', 'hostname', 'dot-nexthop', 'oracle-peer.test', '.example.test',
                             '.', 'mx_1.example.test'])
    prints = st.sampled_from(['{FP}', '{FP_LOWER}', '{FP_OTHER}', '{FP_MD5}', 'AA:BB', 'ZZ:11'])
    protocol_token = st.sampled_from(['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3', '!TLSv1', '!TLSv1.1',
                                      '!SSLv3', '!SSLv2', '>=TLSv1.2', '<=TLSv1.3', '>=TLSv1.3',
                                      '<=TLSv1.2', 'SSLv3', '>=SSLv2', '>=0x0303', '!bogus'])
    exclude_token = st.sampled_from(['RC4', '3DES', 'aNULL', 'kRSA', 'MD5', '-RC4', '!MD5', 'ALL', 'eNULL'])
    level = st.sampled_from(list(grammar.LEVELS))

    @st.composite
    def entry(draw):
        lvl = draw(level)
        attrs = {}
        if draw(st.booleans()):
            attrs['ciphers'] = draw(st.sampled_from(['high', 'medium', 'low', 'export', 'null']))
        if draw(st.booleans()):
            attrs['protocols'] = draw(st.lists(protocol_token, min_size=0, max_size=3))
            if not attrs['protocols']:
                attrs['protocols'] = ''
        if draw(st.booleans()):
            attrs['exclude'] = draw(st.lists(exclude_token, min_size=1, max_size=2))
        if draw(st.integers(0, 3)) == 0:
            attrs['servername'] = draw(st.sampled_from(['hostname', 'nexthop', 'HOSTNAME',
                                                        'mx.example.test', '192.0.2.1', 'a_b.test']))
        if draw(st.integers(0, 3)) == 0:
            attrs['connection_reuse'] = draw(st.booleans())
        if lvl == 'fingerprint' or draw(st.integers(0, 5)) == 0:
            pool = prints if lvl == 'fingerprint' else names
            attrs['match'] = draw(st.lists(pool, min_size=1, max_size=2))
        if lvl in ('verify', 'secure') and draw(st.integers(0, 3)) == 0:
            attrs['tafile'] = [draw(st.sampled_from(['{CERT}', '/nonexistent/oracle-ta.pem']))]
        form = draw(st.sampled_from(['ip', 'ip', 'ip', 'domain', 'parent', 'host-bracket-port', 'ipv6-bare']))
        return form, lvl, attrs

    drawn = []

    @hseed(seed)
    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(entry())
    def collect(item):
        drawn.append(item)

    collect()
    return drawn[:count]


def run_all(keep=False, generated=None):
    """Everything the oracle tests need, from one private instance.

    GENERATED: the generated module entries (generated_params(); given by a
    caller that draws them where hypothesis is installed, see in_image.py).
    """
    results = {}
    with Oracle(keep=keep) as oracle:
        version = oracle.mail_version()
        subst = {
            'CERT': oracle.cert,
            'FP': certificate_digest(oracle.cert),
            'FP_LOWER': certificate_digest(oracle.cert).replace(':', '').lower(),
            'FP_OTHER': ':'.join(['5A'] * 32),
            'FP_MD5': certificate_digest(oracle.cert, 'md5'),
            'FP_DIGEST': certificate_digest(oracle.cert, oracle.parameter('smtp_tls_fingerprint_digest')),
        }
        results['_meta'] = {'version': list(version), 'fingerprint': subst['FP']}
        run_self(oracle, subst, results)
        run_texthash(oracle, results)
        run_dane_literal(oracle, version, results)
        run_tlsproxy(oracle, version, results)
        run_property(oracle, subst, version, results, generated)
    return results


def _record(verdict, **extra):
    data = dict(key=verdict.key, value=verdict.value, verdict=verdict.verdict, status=verdict.status,
                reason=verdict.reason, lookup=list(verdict.lookup) if verdict.lookup else None,
                evidence=verdict.evidence)
    data.update(extra)
    return data


def run_self(oracle, subst, results):
    entries, table, expected = [], [], []
    for case_id, form, value, want in SELF_CASES:
        key = oracle.make_key(form)
        value = _fill(value, subst)
        line_key = key
        if case_id == 'bad-port':
            key = line_key = key + ':0'
        if case_id == 'bare-ipv6-vs-ipv6-form':
            line_key = key.replace('[', '[ipv6:', 1)
        entries.append((key, value))
        table.append('%s %s' % (line_key, value))
        expected.append((case_id, want, line_key))
    path = os.path.join(oracle.tables, 'self-%d' % (oracle.round + 1))
    oracle.write_table(path, table)
    verdicts = oracle.ask(entries, writer=lambda *args: None, path=path)
    for (case_id, want, line_key), verdict in zip(expected, verdicts):
        results['self/' + case_id] = _record(verdict, expected=want, table_key=line_key,
                                             peer=_peer_sessions(oracle, verdict))


def _peer_sessions(oracle, verdict):
    route_address = None
    for line in verdict.evidence:
        if 'relay=' in line:
            route_address = line.split('relay=', 1)[1].split(',', 1)[0]
    sessions = []
    if route_address and '[' in route_address:
        addr, _sep, port = route_address.split('[', 1)[1].partition(']:')
        sessions = oracle.peers.sessions_for(addr, port) if port.isdigit() else []
    return sessions


def run_texthash(oracle, results):
    one, two = oracle.make_key('ip'), oracle.make_key('ip-port')
    # the duplicate differs only in case: the key of one is a host name
    three = oracle.make_key('host-bracket')
    lines = ['%s encrypt' % one, '%s may' % two, '%s encrypt' % three, '%s none' % three.upper()]
    path = os.path.join(oracle.tables, 'texthash-%d' % (oracle.round + 1))
    oracle.write_table(path, lines, map_type='texthash')
    verdicts = oracle.ask([(one, 'encrypt'), (two, 'may'), (three, 'encrypt')],
                          writer=lambda *args: None, path=path, map_type='texthash')
    for name, verdict in zip(('first', 'second', 'duplicated'), verdicts):
        results['texthash/' + name] = _record(verdict)


def run_dane_literal(oracle, version, results):
    """DANE_LITERAL_CASES in a DNSSEC lane, with the module's verdict on each as a new entry
    (the grammar and its key/level check, as the module's configuration checks apply it)."""
    entries, info = [], []
    for case_id, form, value in DANE_LITERAL_CASES:
        key = oracle.make_key(form)
        view = view_line(key, value, version)
        errors, lints = grammar.key_level_problems(key, grammar.parse_policy(value, version))
        message = '; '.join(errors + lints) or view.message
        kind = 'error' if errors else 'lint' if lints else ('accepts' if view.accepted else 'error')
        entries.append((key, value))
        info.append((case_id, kind, message))
    verdicts = oracle.ask(entries, lane_options=DANE_LANE)
    for (case_id, kind, message), verdict in zip(info, verdicts):
        results['dane-literal/' + case_id] = _record(verdict, module=kind, module_message=message,
                                                     peer=_peer_sessions(oracle, verdict))


def run_tlsproxy(oracle, version, results):
    """TLSPROXY_ROUNDS: each value as a table line the module reads (classify_line) and, when
    the grammar takes it, as an entry the module writes with its checks against the instance's
    master.cf and main.cf (write_with_module); then asked of Postfix in that set-up. The
    instance's master.cf and main.cf are put back after each round."""
    for round_id, removed, added, settings, round_cases in TLSPROXY_ROUNDS:
        for service in removed:
            oracle.postconf('-MX', service)
        for service in added:
            oracle.postconf('-M', service)
        for name, value in sorted(settings.items()):
            oracle.postconf('-e', '%s = %s' % (name, value))
        try:
            entries, info, module_items, raw_lines = [], [], [], []
            for case_id, form, value in round_cases:
                key = oracle.make_key(form)
                kind, message, _params = add_line(key, value, version, module_items, raw_lines)
                entries.append((key, value))
                info.append(dict(id='tlsproxy/%s/%s' % (round_id, case_id), module=kind, module_message=message))
            ask_through_module(oracle, entries, info, module_items, raw_lines, results)
        finally:
            for name in sorted(settings):
                oracle.postconf('-X', name)
            for service in added:
                oracle.postconf('-MX', service.split('=', 1)[0])
            for service in removed:
                oracle.postconf('-M', '%s=%s unix - - n - 0 tlsproxy' % (service, service.split('/', 1)[0]))


def run_property(oracle, subst, version, results, generated=None):
    cases = []          # (case id, key form, level, attributes)
    for case_id, form, level, attrs in CURATED:
        cases.append(('curated/' + case_id, form, level, _fill_attrs(attrs, subst)))
    if generated is None:
        generated = generated_params()
    for number, (form, level, attrs) in enumerate(generated):
        cases.append(('generated/%03d' % number, form, level, _fill_attrs(attrs, subst)))
    module_items, raw_lines, entries, info = [], [], [], []
    for case_id, form, level, attrs in cases:
        key = oracle.make_key(form)
        kind, message, folded, value = classify_params(key, level, attrs, version)
        if kind == 'accepts':
            item = dict(destination=key, level=level)
            item.update(attrs)
            module_items.append(item)
            entries.append((key, value))
        else:
            value = render_raw(level, attrs)
            raw_lines.append('%s %s' % (key, value))
            entries.append((key, value))
        info.append(dict(id=case_id, module=kind, module_message=message, params=dict(attrs, level=level)))
    # table lines, as the module reads an existing line: the refused ones and the real-world values
    lines = [('refused/' + case_id, form, _fill(value, subst), {}) for case_id, form, value in REFUSED_LINES]
    lines += [('realworld/' + case_id, form, value, {'where': where})
              for case_id, form, value, where in REALWORLD_LINES]
    for case_id, form, value, extra in lines:
        key = oracle.make_key(form)
        kind, message, params = add_line(key, value, version, module_items, raw_lines)
        entries.append((key, value))
        info.append(dict(id=case_id, module=kind, module_message=message, params=params, **extra))

    # a relative tafile is opened from the smtp client's working directory, the queue
    # directory: put one there, so the lint's claim ("Postfix accepts it when the file
    # exists there") is what gets tested
    with open(oracle.cert) as source, open(os.path.join(oracle.queue, 'oracle-ta.pem'), 'w') as target:
        target.write(source.read())
    ask_through_module(oracle, entries, info, module_items, raw_lines, results)


def add_line(key, value, version, module_items, raw_lines):
    """A table line KEY VALUE as the module reads an existing line (classify_line): when the
    grammar reads it as fine, a module entry (module_items: would the module, with its checks
    against the live configuration, write it? ask_through_module lets it decide), else a line
    of the hand-written table (raw_lines). Returns (kind, message, module params or None)."""
    kind, message = classify_line(key, value, version)
    params = line_to_params(value, version) if kind == 'accepts' else None
    if params is not None:
        item = dict(destination=key)
        item.update(params)
        module_items.append(item)
    else:
        raw_lines.append('%s %s' % (key, value))
    return kind, message, params


def ask_through_module(oracle, entries, info, module_items, raw_lines, results):
    """Write MODULE_ITEMS with the tls_policy module into one table and RAW_LINES by hand into
    a second one listed after it, ask Postfix about ENTRIES ((key, value), one INFO dict each,
    with its result id) and put each verdict in RESULTS. The module may refuse more when it runs
    (checks against the live configuration): those entries move to the hand-written table and
    count as refusals by the module."""
    module_path = os.path.join(oracle.tables, 'module-%d' % (oracle.round + 1))
    raw_path = os.path.join(oracle.tables, 'raw-%d' % (oracle.round + 1))
    refused = dict((item['destination'], message)
                   for item, message in write_with_module(oracle, module_items, module_path))
    for data, (key, value) in zip(info, entries):
        if key in refused:
            data['module'] = 'lint' if 'rule of this collection' in refused[key] else 'error'
            data['module_message'] = 'module run: ' + refused[key]
            raw_lines.append('%s %s' % (key, value))
    oracle.write_table(raw_path, raw_lines)
    verdicts = oracle.ask(entries, writer=lambda *args: None, path=module_path,
                          extra_maps=['hash:%s' % raw_path])
    for data, verdict in zip(info, verdicts):
        results[data.pop('id')] = _record(verdict, **data)


def write_with_module(oracle, items, path):
    """Write ITEMS with the tls_policy module (entries, exclusive); drop the entries the
    module refuses when it runs (one at a time), return [(item, message)] for those."""
    from .module_side import module_writer
    refused = []
    remaining = list(items)
    for _attempt in range(len(items) + 1):
        writer = module_writer(remaining)
        writer.config_dir = oracle.conf
        try:
            writer(path, 'hash', None)
            return refused
        except AssertionError:
            result = writer.result or {}
        message = result.get('msg') or ''
        errors = result.get('errors') or []
        culprits = []
        for error in errors or [message]:
            for item in remaining:
                if repr(item['destination'].lower()) in error or repr(item['destination']) in error:
                    culprits.append((item, error))
                    break
        if not culprits:
            raise AssertionError('the tls_policy module refused the oracle table without naming an '
                                 'entry: %s' % message)
        for item, error in culprits:
            if item in remaining:
                remaining.remove(item)
                refused.append((item, error))
    raise AssertionError('the tls_policy module kept refusing the oracle table')


if __name__ == '__main__':      # python -m tests.integration.oracle.cases: print every result
    import json
    json.dump(run_all(keep='--keep' in sys.argv), sys.stdout, indent=1, default=str)
