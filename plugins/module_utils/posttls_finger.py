# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Would mail to a destination be delivered at a TLS level? Postfix's ``posttls-finger`` answers.

Pure Python except ``PosttlsFinger.run`` (which runs the program through an
AnsibleModule).  What is Postfix's and where it is read from:

* the policy lookup (src/smtp/smtp_tls_policy.c ``tls_policy_lookup()``):
  a next hop with brackets or a port (``[host]``, ``[host]:port``,
  ``host:port``) is looked up once, verbatim; a domain is looked up as
  itself, then as each parent suffix that starts with a dot
  (``a.example.com``, ``.example.com``, ``.com``); every map of
  ``smtp_tls_policy_maps`` is asked in order for each key; no entry means
  the global ``smtp_tls_security_level``;
* the connection, MX selection, TLS handshake and certificate checks:
  ``posttls-finger`` (src/posttls-finger/posttls-finger.c), with the
  level, match names, trust anchors, protocols and cipher grade that the
  SMTP client would use, and main.cf (``MAIL_CONFIG``) for the rest;
* whether the SMTP client would defer, and its words
  (src/smtp/smtp_proto.c): a level that requires TLS defers when the
  server offers no STARTTLS ("TLS is required, but was not offered by
  host NAME[ADDR]"), refuses it ("TLS is required, but host NAME[ADDR]
  refused to start TLS: REPLY") or the handshake fails ("Cannot start
  TLS: handshake failure"); a level that requires a matching certificate
  (fingerprint, verify, secure, dane, dane-only) defers when the
  certificate is not matched ("Server certificate not verified").
  posttls-finger itself never defers (it exits 0 and only reports): that
  last step is this module's, from posttls-finger's report.

posttls-finger probes the first address it can connect to; the SMTP client
goes on to the next address after a TLS failure (src/smtp/smtp_connect.c
``smtp_connect_inet()``: a failed handshake, STARTTLS missing or refused, or
an unmatched certificate is not counted against ``smtp_mx_session_limit``,
only ``smtp_mx_address_limit`` ends the list).  So when the first server of
a domain would defer for a TLS reason, the other MX hosts are probed too
(``probe_one``): their names come from posttls-finger itself (``-v`` logs
each host it looks up, in MX preference order), each is probed as
``[HOST]:PORT`` with the next-hop keywords (``nexthop``, ``dot-nexthop`` in
the match list and ``servername``) replaced by the domain, which is what
the SMTP client checks them against, and the mail is delivered when one of
them would take it.  At ``dane``/``dane-only`` only when the MX RRset is
DNSSEC-validated (an insecure one holds for every host alike; each host has
its own TLSA records); the addresses of one MX host cannot be probed one by
one (posttls-finger stops at the first that connects).
"""

import re
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import fold_key, parent_domains, split_list
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import map_specs, maps_with_table
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_routing import (
    ROUTE_PARAMETERS,
    not_smtp,
    routes_for,
    service_commands,
    transport_parameters,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    SMTP_LEVEL_PARAMETERS,
    level_rank,
    parse_service_overrides,
    postfix_yes,
    tls_security_level,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import version_tuple

LEVELS = ('none', 'may', 'encrypt', 'dane', 'dane-only', 'fingerprint', 'verify', 'secure')
# tls_level.c: TLS_REQUIRED (encrypt and above) and TLS_MUST_MATCH (above encrypt)
REQUIRES_TLS = ('encrypt', 'dane', 'dane-only', 'fingerprint', 'verify', 'secure')
MUST_MATCH = ('dane', 'dane-only', 'fingerprint', 'verify', 'secure')
TRUST_WORDS = {'Anonymous': 'untrusted', 'Untrusted': 'untrusted', 'Trusted': 'trusted',
               'Verified': 'verified'}

_LINE_RE = re.compile(r'^posttls-finger: (?P<text>.*)$')
_CONNECTED_RE = re.compile(r'^Connected to (?P<namaddr>\S+?\[[^\]]*\]):(?P<port>\d+)$')
_FAILED_RE = re.compile(r'^Failed to establish session to (?P<dest>\S+) via (?P<host>\S+?)(?::(?P<port>\d+))?: '
                        r'(?P<reason>.*)$')
_LOOKUP_FAILED_RE = re.compile(r'^Destination address lookup failed: (?P<reason>.*)$')
_ESTABLISHED_RE = re.compile(r'^(?P<trust>Anonymous|Untrusted|Trusted|Verified) TLS connection established '
                             r'to (?P<namaddr>\S+?\[[^\]]*\]):(?P<port>\d+): (?P<details>.*)$')
_STARTTLS_REJECTED_RE = re.compile(r'^STARTTLS rejected: (?P<reply>.*)$')
_RELAY_RE = re.compile(r'^(?P<host>[^\[\]\s]+)\[[^\]]*\]:(?P<port>\d+)$')
_MX_HOST_RE = re.compile(r'^addr_one: host (?P<host>\S+)$')
_VERIFY_FAILED_RE = re.compile(r'^(?:server )?certificate verification failed for [^:]+(?::\d+)?: (?P<why>.*)$')


# main.cf parameters a probe reads (expanded): the policy lookup, the global level, what
# posttls-finger is given in place of the SMTP client's settings (finger_args) and what it
# cannot be given (unapplied_settings)
PROBE_PARAMETERS = SMTP_LEVEL_PARAMETERS + (
    'smtp_tls_policy_maps', 'smtp_tls_CAfile', 'smtp_tls_CApath', 'smtp_host_lookup',
    'inet_protocols', 'smtp_tls_protocols', 'smtp_tls_mandatory_protocols', 'smtp_tls_ciphers',
    'smtp_tls_mandatory_ciphers', 'smtp_tls_servername', 'smtp_tcp_port',
    'smtp_tls_verify_cert_match', 'smtp_tls_secure_cert_match',
    'smtp_tls_fingerprint_cert_match', 'smtp_mx_address_limit', 'smtp_dns_support_level',
    'smtp_tls_dane_insecure_mx_policy', 'disable_dns_lookups', 'smtp_tls_wrappermode',
    'smtp_tls_exclude_ciphers', 'smtp_tls_mandatory_exclude_ciphers',
    'mail_version') + ROUTE_PARAMETERS

DANE_LEVELS = ('dane', 'dane-only')
# what posttls-finger (-l dane-only) logs about the TLSA records and the MX RRset of the address it
# connects to (posttls-finger.c dane_host_level()), and what the SMTP client does then
# (smtp_tls_policy.c dane_init(), dane_incompat()): at dane the level it falls back to, at
# dane-only the words it defers the mail with
DANE_NOTES = {
    'MX RRset is insecure: try to encrypt': 'insecure-mx',
    'no TLSA records found, resorting to "secure"': 'no-tlsa',
    'no usable TLSA records found, resorting to "secure"': 'unusable-tlsa',
    'TLSA RRs found, MX RRset insecure: just encrypt': 'just-encrypt',
    'MX RRset insecure: log verified as trusted': 'half-dane',
}
MX_INSECURE_NOTES = ('insecure-mx', 'just-encrypt', 'half-dane')
DANE_FALLBACK = {'insecure-mx': 'may', 'no-tlsa': 'may', 'unusable-tlsa': 'encrypt', 'just-encrypt': 'encrypt'}
DANE_ONLY_REFUSAL = {'insecure-mx': 'non DNSSEC destination', 'no-tlsa': 'no TLSA records found',
                     'unusable-tlsa': 'TLSA records unusable'}
DANE_WHY = {'insecure-mx': 'the MX RRset is not DNSSEC-validated', 'no-tlsa': 'no TLSA records',
            'unusable-tlsa': 'no usable TLSA records', 'just-encrypt': 'the MX RRset is not DNSSEC-validated'}

# levels at which the SMTP client goes on to the next MX host after a TLS failure and the
# probe follows it; at dane/dane-only too unless the MX RRset is insecure (MX_INSECURE_NOTES:
# that holds for every host alike, and a host probed as [HOST] has no MX RRset)
MX_FALLBACK_LEVELS = ('encrypt', 'fingerprint', 'verify', 'secure', 'dane', 'dane-only')


class FingerError(Exception):
    """posttls-finger could not be run, or refused its arguments."""


# -- the policy the SMTP client would apply --------------------------------------------------

def policy_keys(destination):
    """The keys smtp_tls_policy_maps is asked for, in order, for mail to DESTINATION."""
    key = fold_key(destination.strip())
    if key.startswith('[') or ':' in key or not key:
        return [key]
    return [key] + parent_domains(key)


def find_policy(query, specs, destination):
    """(key, value, spec) of the entry the SMTP client would use for DESTINATION, or None.

    QUERY(spec, keys) returns {key: value} for the KEYS found in the map SPEC (postmap -q).
    Each key in lookup order is tried in every map in order (maps_find()).
    """
    keys = policy_keys(destination)
    answers = [(spec, query(spec, keys)) for spec in specs]
    for key in keys:
        for spec, found in answers:
            if key in found:
                return key, found[key], spec
    return None


GLOBAL_SOURCE = 'smtp_tls_security_level'


def planned_table(current, planned, exclusive=False):
    """{key: value} a table answers once PLANNED ({folded key: value, None = removed}) is
    written to it: CURRENT ({key: value} of the keys asked) with the planned entries
    replacing theirs; with EXCLUSIVE only the planned entries remain."""
    table = {} if exclusive else dict(current)
    for key, value in planned.items():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


def after_change(specs, answers, table, planned=None, exclusive=False):
    """(specs, answers) the SMTP client looks up once PLANNED is written to TABLE and TABLE
    is listed in smtp_tls_policy_maps (maps_with_table, planned_table); SPECS and ANSWERS
    as now (TABLE's included when it is not listed)."""
    after_answers = dict(answers)
    after_answers[table] = planned_table(answers.get(table, {}), planned or {}, exclusive)
    return maps_with_table(specs, table), after_answers


def answered_policy(specs, answers, destination):
    """find_policy over ANSWERS ({spec: {key: value}}, already asked of the tables):
    (key, value, spec) of the entry for DESTINATION, or None."""
    return find_policy(lambda spec, keys: answers.get(spec, {}), specs, destination)


def entry_level(value):
    """(level, problem) of a policy table value: problem is Postfix's complaint (the
    mail would defer with "client TLS configuration problem") and level None then."""
    try:
        return parse_entry(value)[0], None
    except ValueError as exc:
        return None, str(exc)


def destination_level(destination, specs, answers, global_level):
    """{level, source, key, problem} the SMTP client applies to DESTINATION.

    SPECS are the tables of smtp_tls_policy_maps in order, ANSWERS {spec: {key: value}}
    their entries (at least for the policy_keys of DESTINATION); no entry means
    GLOBAL_LEVEL (smtp_tls_security_level, legacy settings counted).
    """
    found = answered_policy(specs, answers, destination)
    if found is None:
        return {'level': global_level, 'source': GLOBAL_SOURCE, 'key': None, 'problem': None}
    key, value, spec = found
    level, problem = entry_level(value)
    if problem:
        problem = 'the entry "%s %s" in %s is invalid (%s): Postfix defers the mail' % (key, value, spec, problem)
    return {'level': level or 'invalid', 'source': spec, 'key': key, 'problem': problem}


def _lookups(client, specs, answers, after_specs, after_answers, table, global_before, global_after):
    """(next hop, (specs, answers, global level) now, (...) after the change) for a destination
    whose SMTP client CLIENT describes (level_changes). A transport whose master.cf service
    sets smtp_tls_policy_maps itself looks up its own tables: wiring TABLE into main.cf does
    not reach it, but a planned entry does when its tables list TABLE. A service that sets
    the level keeps it whatever main.cf says."""
    hop = client['next_hop'] if client else None
    level_before = (client or {}).get('level') or global_before
    level_after = (client or {}).get('level') or global_after
    own = (client or {}).get('specs')
    if own is None:
        return hop, (specs, answers, level_before), (after_specs, after_answers, level_after)
    return hop, (own, answers, level_before), (own, after_answers if table in own else answers, level_after)


def level_changes(destinations, specs, answers, global_before, table, planned=None, exclusive=False,
                  global_after=None, max_probes=50, client=None):
    """Per destination, the level now and after a planned change, and whether to probe it.

    SPECS and ANSWERS ({spec: {key: value}}, TABLE's included when it is not listed):
    smtp_tls_policy_maps now. The change: PLANNED ({folded key: value or None})
    written to TABLE (``type:name``; with EXCLUSIVE the table holds only those),
    TABLE listed in smtp_tls_policy_maps (maps_with_table), the global level
    GLOBAL_AFTER (None: unchanged). A destination is affected when its level after
    is stricter (level_rank) than now; the first MAX_PROBES affected ones that
    name a host are to be probed, ``not_probed`` says why the others are not.

    CLIENT(destination), when given, describes the SMTP client that takes the mail:
    {route, overridden, next_hop, specs (its own smtp_tls_policy_maps tables, or None),
    level (its own global level, or None), not_smtp (why no SMTP client takes it, or None)}
    (client_settings); without it the destination is its own next hop.
    """
    global_after = global_after or global_before
    after_specs, after_answers = after_change(specs, answers, table, planned, exclusive)
    items = []
    probes = 0
    for destination in destinations:
        found = client(destination) if client else None
        hop, now, then = _lookups(found, specs, answers, after_specs, after_answers, table,
                                  global_before, global_after)
        hop = hop or destination
        if found and found['not_smtp']:
            item = {'destination': destination, 'level_before': None, 'source_before': None, 'key_before': None,
                    'level': None, 'source': None, 'key': None, 'problems': [], 'affected': False,
                    'probe': False, 'not_probed': 'not probed: %s' % found['not_smtp']}
            item.update(route_fields(found['route']))
            items.append(item)
            continue
        before = destination_level(hop, *now)
        after = destination_level(hop, *then)
        item = {'destination': destination, 'next_hop': hop,
                'level_before': before['level'], 'source_before': before['source'], 'key_before': before['key'],
                'level': after['level'], 'source': after['source'], 'key': after['key'],
                'problems': [p for p in (before['problem'], after['problem']) if p]}
        if found:
            item.update(route_fields(found['route'], found['overridden']))
        item['affected'] = level_rank(item['level']) > level_rank(item['level_before'])
        item['probe'] = False
        if not item['affected']:
            if after['problem']:
                reason = after['problem']
            elif item['level'] == item['level_before']:
                reason = 'level stays %s' % item['level']
            elif level_rank(item['level']) == level_rank(item['level_before']):
                reason = 'level changes to %s, no stricter than %s' % (item['level'], item['level_before'])
            else:
                reason = 'level lowered to %s' % item['level']
            if hop != destination:
                via = found['route'].via if found else ''
                if via.startswith('relayhost'):
                    reason += ' (its mail goes to the relayhost %s, whose entry applies)' % hop
                else:
                    reason += ' (its mail goes to %s, %s, whose entry applies)' % (hop, via)
            item['not_probed'] = 'not probed: ' + reason
        elif destination.startswith('.'):
            item['not_probed'] = 'not probed: %s matches subdomains and names no host' % destination
        elif probes >= max_probes:
            item['not_probed'] = 'not probed: more than max=%d affected destinations' % max_probes
        else:
            probes += 1
            item['probe'] = True
            item['not_probed'] = None
        items.append(item)
    return items


def client_settings(transports, destination):
    """level_changes' CLIENT for DESTINATION from TRANSPORTS (routed already)."""
    route, params, overridden, why = transports.settings(destination)
    return {'route': route, 'overridden': overridden, 'next_hop': route.next_hop, 'not_smtp': why,
            'specs': map_specs(params.get('smtp_tls_policy_maps') or '')
            if 'smtp_tls_policy_maps' in overridden else None,
            'level': tls_security_level(params, 'smtp')
            if any(name in overridden for name in SMTP_LEVEL_PARAMETERS) else None}


def relay_next_hop(relay):
    """A relay as the log names it, ``HOST[ADDR]:PORT``, as the next hop ``[HOST]:PORT``;
    None for one that names no TCP port (``HOST[private/lmtp]``)."""
    match = _RELAY_RE.match(relay.strip())
    if not match:
        return None
    return '[%s]:%s' % (match.group('host'), match.group('port'))


def parse_entry(value):
    """A policy table value -> (level, {attribute: [values]}); Postfix's own token rules
    (whitespace or commas separate, ``name=value`` after the level).  Raises ValueError
    for a value Postfix would refuse (the mail would defer with "client TLS configuration problem")."""
    tokens = split_list(value, braces=False)
    if not tokens:
        raise ValueError('invalid empty policy')
    level = tokens[0].lower()
    if level not in LEVELS:
        raise ValueError('invalid security level "%s"' % tokens[0])
    attributes = {}
    for token in tokens[1:]:
        name, sep, val = token.partition('=')
        if not sep:
            raise ValueError('malformed attribute/value pair "%s"' % token)
        attributes.setdefault(name.lower(), []).append(val)
    return level, attributes


def mx_lookups(params):
    """Whether the SMTP client looks up MX records for a domain next hop (smtp_connect.c: not
    with smtp_dns_support_level = disabled, or with it empty and disable_dns_lookups = yes;
    then it looks the domain up as a host name)."""
    support = (params.get('smtp_dns_support_level') or '').strip().lower()
    if support:
        return support != 'disabled'
    return not postfix_yes(params.get('disable_dns_lookups'))


def finger_destination(destination, smtp_port=None, params=None):
    """DESTINATION as posttls-finger takes it; with the SMTP client's port when it has none,
    and in brackets when the SMTP client does no MX lookups (PARAMS: mx_lookups), as
    posttls-finger looks a bracketed name up as a host."""
    dest = destination.strip()
    if params is not None and not mx_lookups(params) and dest and not dest.startswith('['):
        host, sep, port = dest.partition(':')
        dest = '[%s]%s%s' % (host, sep, port)
    if smtp_port and smtp_port not in ('smtp', '25'):
        if dest.startswith('['):
            if dest.endswith(']'):
                dest += ':' + smtp_port
        elif ':' not in dest:
            dest += ':' + smtp_port
    return dest


def finger_args(destination, level, attributes=None, params=None, ca_file=None, ca_path=None,
                connect_timeout=None, command_timeout=None, nexthop=None):
    """The posttls-finger arguments (after the program) for one probe.

    ATTRIBUTES are the policy entry's (match, tafile, protocols, ciphers, servername);
    PARAMS the main.cf values (expanded) the SMTP client would use otherwise.
    NEXTHOP: the domain whose MX host DESTINATION (``[HOST]:PORT``) is; the next-hop
    keywords of the match list and servername then name it (nexthop_names).
    """
    attributes = attributes or {}
    params = params or {}
    if level in DANE_LEVELS:
        # dane-only: posttls-finger logs what it found of the TLSA records (at dane only with -v);
        # it tells dane and dane-only apart in nothing else, and the verdict is dane_verdict()'s.
        # -M: what the SMTP client does with an MX RRset that is not DNSSEC-validated; at
        # dane-only it defers, so may there makes posttls-finger say so
        policy = (params.get('smtp_tls_dane_insecure_mx_policy') or 'dane').strip().lower()
        args = ['-l', 'dane-only', '-M', 'may' if level == 'dane-only' else
                (policy if policy in ('may', 'encrypt', 'dane') else 'dane')]
    else:
        args = ['-l', level]
    args += connection_args(params, connect_timeout, command_timeout)
    if wrapper_mode(params):
        args.append('-w')
    if level != 'none':
        mandatory = level != 'may'
        protocols = _last(attributes.get('protocols'))
        if protocols is None:
            protocols = params.get('smtp_tls_mandatory_protocols' if mandatory else 'smtp_tls_protocols')
        if protocols:
            args += ['-p', protocols]
        grade = _last(attributes.get('ciphers'))
        if grade is None:
            grade = params.get('smtp_tls_mandatory_ciphers' if mandatory else 'smtp_tls_ciphers')
        if grade:
            args += ['-g', grade]
        if ca_file:
            args += ['-F', ca_file]
        if ca_path:
            args += ['-P', ca_path]
        if level in ('verify', 'secure'):
            for tafile in attributes.get('tafile', []):
                for name in split_list(tafile):
                    args += ['-A', name]
        # the keywords hostname and nexthop too: the TLS library resolves them (tls_client.c
        # tls_auth_enable(), 3.4 and later) from the host and next hop posttls-finger passes,
        # as it does for the SMTP client
        servername = _last(attributes.get('servername'))
        if servername is None:
            servername = params.get('smtp_tls_servername')
        if servername and nexthop:
            servername = nexthop_names([servername], nexthop)[0]
        if servername:
            args += ['-s', servername]
    args.append(finger_destination(destination, params.get('smtp_tcp_port'), params))
    names = match_names(level, attributes, params)
    args.extend(nexthop_names(names, nexthop) if nexthop else names)
    return args


def wrapper_mode(params):
    """Whether the SMTP client speaks TLS from the first byte (smtp_tls_wrappermode, SMTPS on
    port 465 style servers) instead of STARTTLS: posttls-finger's -w."""
    return postfix_yes(params.get('smtp_tls_wrappermode'))


def connection_args(params, connect_timeout=None, command_timeout=None):
    """The posttls-finger arguments for connecting as the SMTP client connects: the time
    limits, smtp_host_lookup and an inet_protocols of one family (from PARAMS)."""
    args = []
    if connect_timeout:
        args += ['-t', str(int(connect_timeout))]
    if command_timeout:
        args += ['-T', str(int(command_timeout))]
    lookup = params.get('smtp_host_lookup')
    if lookup:
        args += ['-h', ','.join(split_list(lookup))]
    family = (params.get('inet_protocols') or '').strip().lower()
    if family in ('ipv4', 'ipv6'):
        args += ['-a', family]
    return args


def nexthop_names(names, domain):
    """NAMES (match names, or a servername) with the keywords that mean the next hop replaced
    by DOMAIN: ``nexthop`` by DOMAIN, ``dot-nexthop`` by ``.DOMAIN`` (a pattern with a leading
    dot matches the subdomains, as dot-nexthop does). For probing an MX host of DOMAIN as
    ``[HOST]``, where posttls-finger's next hop would be HOST; ``hostname`` stays (HOST)."""
    out = []
    for name in names:
        word = name.lower()
        if word == 'nexthop':
            out.append(domain)
        elif word == 'dot-nexthop':
            out.append('.' + domain)
        else:
            out.append(name)
    return out


def mx_domain(destination):
    """(domain, port or None) of a next hop the SMTP client looks up MX records for
    (``domain`` or ``domain:port``, not ``[host]``, not an address); None otherwise."""
    dest = destination.strip()
    if not dest or dest.startswith('[') or dest.startswith('.'):
        return None
    host, sep, port = dest.partition(':')
    if not host or re.match(r'^[0-9.]+$', host):
        return None
    return fold_key(host), (port if sep else None)


def listing_args(destination, params=None, connect_timeout=None, command_timeout=None):
    """posttls-finger arguments that make it log the hosts it looks up for DESTINATION
    (``-v``: "addr_one: host NAME", in MX preference order) at the cost of one plaintext
    EHLO/QUIT session with the first server (``-c``: no chat log, ``-l none``)."""
    params = params or {}
    args = ['-v', '-c', '-l', 'none']
    args += connection_args(params, connect_timeout, command_timeout)
    args.append(finger_destination(destination, params.get('smtp_tcp_port')))
    return args


def looked_up_hosts(text):
    """The host names posttls-finger -v looked up addresses for, in its order (the MX hosts by
    preference; the domain itself when it has no MX), each once."""
    hosts = []
    for raw in (text or '').splitlines():
        match = _LINE_RE.match(raw)
        if not match:
            continue
        found = _MX_HOST_RE.match(match.group('text'))
        if found and found.group('host').lower() not in [h.lower() for h in hosts]:
            hosts.append(found.group('host'))
    return hosts


def _host_name(namaddr):
    """NAME of ``NAME[ADDR]`` (or of ``NAME[ADDR]:PORT``), lower case."""
    return (namaddr or '').split('[', 1)[0].lower()


def match_names(level, attributes, params=None):
    """The match arguments: the entry's match= values (split like Postfix does), else main.cf's."""
    params = params or {}
    values = attributes.get('match')
    if level == 'fingerprint':
        if values:
            return [v for value in values for v in value.split('|') if v]
        return split_list(params.get('smtp_tls_fingerprint_cert_match', ''))
    if level in ('verify', 'secure'):
        if values:
            return [v for value in values for v in value.split(':') if v]
        name = 'smtp_tls_verify_cert_match' if level == 'verify' else 'smtp_tls_secure_cert_match'
        return split_list(params.get(name, ''))
    return []


def _last(values):
    return values[-1] if values else None


# -- what posttls-finger reported --------------------------------------------------------------

class Report:
    """posttls-finger's output, read."""

    def __init__(self):
        self.lines = []
        self.connected = None        # NAME[ADDR]
        self.port = None
        self.failures = []           # connect / lookup failures, Postfix's words
        self.failed_hosts = []       # NAME[ADDR] of each address that did not connect
        self.ehlo = []
        self.starttls_offered = None
        self.starttls_rejected = None
        self.trust_word = None       # Anonymous / Untrusted / Trusted / Verified
        self.dane_note = None        # DANE_NOTES of the address connected to
        self.tls_details = None
        self.verify_problems = []
        self.warnings = []
        self.fatal = None


def parse_report(text):
    """Read posttls-finger's stdout (and stderr) into a Report."""
    report = Report()
    in_ehlo = False
    for raw in (text or '').splitlines():
        match = _LINE_RE.match(raw)
        if not match:
            continue
        text_ = match.group('text')
        report.lines.append(text_)
        m = _CONNECTED_RE.match(text_)
        if m:
            report.connected, report.port = m.group('namaddr'), int(m.group('port'))
            report.starttls_offered = False
            continue
        m = _FAILED_RE.match(text_)
        if m:
            report.failures.append(m.group('reason'))
            report.failed_hosts.append(m.group('host'))
            report.dane_note = None
            continue
        if text_ in DANE_NOTES and report.connected is None:
            report.dane_note = DANE_NOTES[text_]
            continue
        m = _LOOKUP_FAILED_RE.match(text_)
        if m:
            report.failures.append(m.group('reason'))
            continue
        if text_.startswith('> '):
            in_ehlo = text_[2:].split(' ')[0].upper() == 'EHLO' and report.trust_word is None
            continue
        if text_.startswith('< '):
            reply = text_[2:]
            if in_ehlo:
                report.ehlo.append(reply)
                word = reply[4:].split(' ')[0].upper() if len(reply) > 4 else ''
                if reply[:3] == '250' and word == 'STARTTLS':
                    report.starttls_offered = True
                if len(reply) > 3 and reply[3] == ' ':
                    in_ehlo = False
            continue
        m = _STARTTLS_REJECTED_RE.match(text_)
        if m:
            report.starttls_rejected = m.group('reply')
            continue
        m = _ESTABLISHED_RE.match(text_)
        if m:
            report.trust_word, report.tls_details = m.group('trust'), m.group('details')
            report.starttls_offered = True
            continue
        m = _VERIFY_FAILED_RE.match(text_)
        if m:
            report.verify_problems.append(m.group('why'))
            continue
        if text_.startswith('fatal: '):
            report.fatal = text_[len('fatal: '):]
        elif text_.startswith('warning: '):
            report.warnings.append(text_[len('warning: '):])
    return report


# Postfix before 3.6 (smtp_proto.c) defers an untrusted chain at the levels that need trust
# (dane, dane-only, verify, secure: TLS_MUST_TRUST) with its own words; 3.6 dropped them
UNTRUSTED_WORDS_BEFORE_3_6 = 'Server certificate not trusted'
MUST_TRUST = ('dane', 'dane-only', 'verify', 'secure')


def verdict(level, report, chat_logged=True, version=None):
    """{starttls, trust, would_defer, reason, reachable} of a probe at LEVEL, from REPORT.

    REASON is the SMTP client's status text when it would defer (smtp_proto.c), else
    posttls-finger's own summary line. VERSION (mail_version) picks the words of
    releases before 3.6 for an untrusted chain ("Server certificate not trusted").
    """
    result = {'starttls': report.starttls_offered, 'trust': 'none', 'would_defer': False, 'reason': '',
              'reachable': report.connected is not None}
    if report.fatal:
        result.update(would_defer=True, reason=report.fatal, starttls=None)
        return result
    if report.connected is None:
        # not even a TCP session: the mail is deferred at any level
        result.update(would_defer=True, starttls=None,
                      reason='; '.join(report.failures) or 'posttls-finger made no connection')
        return result
    host = report.connected
    if report.trust_word:
        result['trust'] = TRUST_WORDS[report.trust_word]
    if level in ('none', 'may'):
        if report.trust_word:
            result['reason'] = '%s TLS connection established to %s:%d' % (report.trust_word, host, report.port)
        elif level == 'may' and report.starttls_offered:
            result['reason'] = 'STARTTLS offered by host %s, but no TLS session: delivery falls back to ' \
                               'plaintext' % host
        else:
            result['reason'] = 'plaintext delivery to host %s' % host
        return result
    if not report.starttls_offered:
        result.update(would_defer=True, reason='TLS is required, but was not offered by host %s' % host)
    elif report.starttls_rejected is not None:
        result.update(would_defer=True,
                      reason='TLS is required, but host %s refused to start TLS: %s' % (host, report.starttls_rejected))
    elif report.trust_word is None:
        result.update(would_defer=True, reason='Cannot start TLS: handshake failure')
    elif level in MUST_MATCH and report.trust_word != 'Verified':
        why = '; '.join(report.verify_problems)
        words = 'Server certificate not verified'
        if level in MUST_TRUST and report.trust_word in ('Untrusted', 'Anonymous') and \
                version and version_tuple(version) < (3, 6):
            words = UNTRUSTED_WORDS_BEFORE_3_6
        result.update(would_defer=True, reason=words + (' (%s)' % why if why else ''))
    else:
        result['reason'] = '%s TLS connection established to %s:%d' % (report.trust_word, host, report.port)
    return result


def dane_configured(params):
    """Whether the SMTP client can do DANE with PARAMS (smtp_tls_policy.c dane_init()):
    smtp_dns_support_level = dnssec and dns among smtp_host_lookup."""
    support = (params.get('smtp_dns_support_level') or '').strip().lower()
    lookup = [item.lower() for item in split_list(params.get('smtp_host_lookup') or 'dns')]
    return support == 'dnssec' and 'dns' in lookup


def dane_verdict(level, report, version=None):
    """verdict() at LEVEL dane or dane-only, from posttls-finger's report at dane-only: what the
    SMTP client does with what posttls-finger found of the TLSA records and the MX RRset
    (REPORT.dane_note). Without usable TLSA records posttls-finger falls back to secure; the
    SMTP client at dane falls back to may (no records, or an insecure MX RRset) or encrypt
    (unusable records), and at dane-only defers."""
    note = report.dane_note
    if note is None or report.connected is None or report.fatal:
        return verdict(level, report, version=version)
    if note == 'half-dane':
        # the TLSA records matched, the session is logged as Trusted (the MX RRset is insecure)
        result = verdict(level, report, version=version)
        if report.trust_word == 'Trusted':
            result.update(would_defer=False, trust='trusted',
                          reason='Trusted TLS connection established to %s:%d (DANE, %s)'
                                 % (report.connected, report.port, 'the MX RRset is not DNSSEC-validated'))
        return result
    if level == 'dane-only':
        # the SMTP client does not even connect (the address's TLS policy is invalid): no session
        result = verdict('encrypt', report, version=version)
        result.update(would_defer=True, trust='none', reason=DANE_ONLY_REFUSAL.get(note, 'TLSA records unusable'))
        return result
    result = verdict(DANE_FALLBACK[note], report, version=version)
    result['reason'] += ' (dane: %s, so %s)' % (DANE_WHY[note], DANE_FALLBACK[note])
    return result


class PosttlsFinger:
    """``posttls-finger`` for one Postfix configuration directory (MAIL_CONFIG).

    Not a PostfixCommand: posttls-finger's ``-c`` disables chat logging, it does
    not name a configuration directory.
    """

    program = 'posttls-finger'

    def __init__(self, module, config_dir='/etc/postfix', commands=None):
        self.module = module
        self.config_dir = config_dir
        self.commands = [] if commands is None else commands
        self._binary = None

    @property
    def binary(self):
        if self._binary is None:
            self._binary = self.module.get_bin_path(self.program, required=True)
        return self._binary

    def run(self, args):
        """Run posttls-finger ARGS; returns its output (stdout then stderr)."""
        cmd = [self.binary] + list(args)
        self.commands.append(cmd)
        env = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C', 'MAIL_CONFIG': self.config_dir}
        try:
            rc, out, err = self.module.run_command(cmd, environ_update=env, handle_exceptions=False)
        except (OSError, IOError) as exc:
            raise FingerError('cannot run %s: %s' % (' '.join(cmd), exc))
        text = (out or '') + (err or '')
        if rc != 0 and 'posttls-finger: fatal:' not in text:
            raise FingerError('%s failed (exit status %s): %s' % (' '.join(cmd), rc, text.strip()))
        return text


# -- probing destinations ---------------------------------------------------------------------

def probe_options(ca_file=None, ca_path=None, connect_timeout=10, command_timeout=30):
    """The probe settings: trust anchors given as options (else each probe takes the
    smtp_tls_CAfile and smtp_tls_CApath its transport runs with) and the time limits."""
    return dict(ca_file=ca_file or None, ca_path=ca_path or None,
                connect_timeout=connect_timeout, command_timeout=command_timeout)


class Transports:
    """The route of each destination and the settings of the SMTP client that takes it:
    trivial-rewrite's transport and next hop (mail_routing.routes_for, transport_maps asked
    with postmap -q) and that transport's master.cf service, its ``-o`` overrides merged
    into main.cf's PARAMS (``postconf -Px``, ``postconf -M``: read once, when first needed)."""

    def __init__(self, postconf, postmap, params):
        self.postconf = postconf
        self.postmap = postmap
        self.params = params
        self.routes = {}
        self._overrides = None
        self._commands = None

    def route(self, destinations):
        """Work out the routes of DESTINATIONS (those not known yet). A transport table postmap
        cannot query leaves a note on the routes (routes_for), not an error."""
        new = [d for d in destinations if d not in self.routes]
        if new:
            self.routes.update(routes_for(new, self.params, self.postmap.answers))

    def overrides(self):
        if self._overrides is None:
            self._overrides = parse_service_overrides(self.postconf.output(['-P', '-x']))
        return self._overrides

    def commands(self):
        if self._commands is None:
            self._commands = service_commands(self.postconf.output(['-M']))
        return self._commands

    def settings(self, destination):
        """(route, params of its SMTP client, overridden names, why it is not an SMTP delivery
        or None) for DESTINATION (route() first)."""
        route = self.routes[destination]
        if route.transport != 'smtp' or route.next_hop is None:
            why = not_smtp(route, self.commands())
            if why:
                return route, self.params, [], why
        params, overridden = transport_parameters(route.transport, self.params, self.overrides())
        return route, params, overridden, None


def route_fields(route, overridden=()):
    """The result fields that say how mail to a destination is routed."""
    text = route.via
    if overridden:
        text += '; master.cf %s/unix sets %s' % (route.transport, ', '.join(overridden))
    return {'next_hop': route.next_hop, 'transport': route.transport,
            'route': '; '.join([text] + list(route.notes))}


def unrouted(destination, level, source, route, why):
    """The result for a destination whose mail the SMTP client does not deliver (not_smtp)."""
    result = {'destination': destination, 'level': level, 'level_source': source,
              'policy_key': None, 'policy': None, 'host': None, 'reachable': None, 'starttls': None,
              'trust': 'none', 'would_defer': False, 'tls': '', 'evidence': [], 'other_mx': [],
              'reason': 'not probed: %s' % why}
    result.update(route_fields(route))
    return result


def probe_one(finger, destination, level, source, entry, params, options, route=None, overridden=()):
    """One probe result (the shape of tls_probe's RV(destinations)) for DESTINATION.

    ENTRY is the policy entry (key, value) the SMTP client would use, or None; its
    attributes (match, tafile, protocols, ciphers, servername) go to posttls-finger.
    SOURCE ``option`` means LEVEL was given and wins over the entry's level;
    otherwise LEVEL is the entry's (or the global level without an entry).
    ROUTE (mail_routing.Route) names the next hop probed (else DESTINATION itself);
    PARAMS are the settings of the SMTP client that takes it (Transports.settings),
    OVERRIDDEN the names its master.cf service sets.
    """
    hop = route.next_hop if route else destination
    result = {'destination': destination, 'next_hop': hop, 'level': level, 'level_source': source,
              'policy_key': entry[0] if entry else None, 'policy': entry[1] if entry else None,
              'host': None, 'reachable': None, 'starttls': None, 'trust': 'none', 'would_defer': False, 'reason': '',
              'tls': '', 'evidence': []}
    if route:
        result.update(route_fields(route, overridden))
    options = dict(options, ca_file=options['ca_file'] or params.get('smtp_tls_CAfile') or None,
                   ca_path=options['ca_path'] or params.get('smtp_tls_CApath') or None)
    attributes = {}
    if entry:
        try:
            entry_level, attributes = parse_entry(entry[1])
        except ValueError as exc:
            result.update(would_defer=True,
                          reason='client TLS configuration problem (smtp_tls_policy_maps, next-hop '
                                 'destination "%s": %s)' % (entry[0], exc))
            return result
        if source != 'option':
            result['level'] = level = entry_level
    if wrapper_mode(params) and level in ('none', 'may'):
        # smtp_connect.c: the address is skipped with a warning, the mail is deferred
        result.update(would_defer=True, reason='smtp_tls_wrappermode requires "smtp_tls_security_level = '
                                               'encrypt" (or stronger); the level here is %s' % level)
        return result
    dane_off = None
    if level in DANE_LEVELS and not dane_configured(params):
        # smtp_tls_policy.c dane_init(): dane falls back to may, dane-only is a configuration error
        why = ('%s configured with dnssec lookups disabled (smtp_dns_support_level = %s, smtp_host_lookup = %s)'
               % (level, params.get('smtp_dns_support_level') or '', params.get('smtp_host_lookup') or ''))
        if level == 'dane-only':
            result.update(would_defer=True, reason='client TLS configuration problem (%s)' % why)
            return result
        dane_off = why
        level = 'may'
    args = finger_args(hop, level, attributes, params, options['ca_file'], options['ca_path'],
                       options['connect_timeout'], options['command_timeout'])
    report, found = _probe_session(finger, args, level, params)
    result.update(found)
    if dane_off:
        result['reason'] += ' (%s: the SMTP client falls back to may)' % dane_off
    result['evidence'] = report.lines + unapplied_settings(attributes, params, level)
    result['other_mx'] = []
    domain = mx_domain(hop)
    if result['would_defer'] and report.connected and level in MX_FALLBACK_LEVELS and domain \
            and mx_lookups(params) and report.dane_note not in MX_INSECURE_NOTES:
        _probe_other_mx(finger, result, report, domain, level, attributes, params, options)
    return result


def unapplied_settings(attributes, params, level):
    """Evidence lines naming what the SMTP client would apply at LEVEL and the probe does not
    (smtp_tls_policy.c set_cipher_grade): the entry's exclude= (which replaces main.cf's
    lists), else smtp_tls_exclude_ciphers and, at the levels that require TLS,
    smtp_tls_mandatory_exclude_ciphers; and connection_reuse=yes (through tlsproxy).
    posttls-finger starts TLS with the built-in exclusions (DEF_SMTP_TLS_EXCL_CIPH and
    DEF_SMTP_TLS_MAND_EXCL, both empty)."""
    attributes, params = attributes or {}, params or {}
    missed = []
    if level != 'none':
        if attributes.get('exclude'):
            exclude = _last(attributes['exclude'])
            if exclude:
                missed.append('exclude=%s' % exclude)
        else:
            names = ['smtp_tls_exclude_ciphers'] + (
                ['smtp_tls_mandatory_exclude_ciphers'] if level in REQUIRES_TLS else [])
            missed.extend('%s = %s' % (name, params[name].strip()) for name in names
                          if (params.get(name) or '').strip())
    if _last(attributes.get('connection_reuse')) == 'yes':
        missed.append('connection_reuse=yes (the SMTP client hands the TLS session to tlsproxy)')
    if not missed:
        return []
    return ['(not applied by the probe, posttls-finger has no option for it: %s; a handshake that '
            'succeeds here may still fail for the SMTP client)' % '; '.join(missed)]


def _probe_session(finger, args, level, params):
    """Run posttls-finger ARGS at LEVEL: (its Report, verdict() - dane_verdict() at the dane
    levels - with the session's host and TLS details)."""
    report = parse_report(finger.run(args))
    if report.connected and wrapper_mode(params):
        report.starttls_offered = True      # TLS from the first byte: a failure is the handshake's
    found = (dane_verdict if level in DANE_LEVELS else verdict)(level, report, version=params.get('mail_version'))
    found['host'] = '%s:%d' % (report.connected, report.port) if report.connected else None
    found['tls'] = report.tls_details or ''
    return report, found


def _probe_other_mx(finger, result, report, domain, level, attributes, params, options):
    """RESULT (probe_one's, which would defer at the first server that answered) after the MX
    hosts the SMTP client would try next: each other MX host of DOMAIN (name, port) in
    preference order, probed as [HOST]:PORT against the domain (nexthop_names), until one
    would take the mail or smtp_mx_address_limit addresses were tried."""
    name, port = domain
    text = finger.run(listing_args(result['next_hop'], params, options['connect_timeout'],
                                   options['command_timeout']))
    hosts = looked_up_hosts(text)
    skip = set([_host_name(report.connected)] + [_host_name(h) for h in report.failed_hosts])
    try:
        limit = int(params.get('smtp_mx_address_limit') or 5)
    except ValueError:
        limit = 5
    tried = len(report.failed_hosts) + 1
    result['evidence'] = result['evidence'] + ['(the MX hosts of %s in preference order: %s)'
                                               % (name, ', '.join(hosts) or 'none')]
    first = dict((k, result[k]) for k in ('host', 'starttls', 'trust', 'reason', 'tls'))
    for host in hosts:
        if host.lower() in skip:
            continue
        if limit and tried >= limit:
            result['evidence'].append('(smtp_mx_address_limit = %d: the SMTP client tries no further address)'
                                      % limit)
            break
        target = '[%s]' % host + (':%s' % port if port else '')
        args = finger_args(target, level, attributes, params, options['ca_file'], options['ca_path'],
                           options['connect_timeout'], options['command_timeout'], nexthop=name)
        other, found = _probe_session(finger, args, level, params)
        tried += len(other.failed_hosts) + (1 if other.connected else 0)
        found['mx'] = host
        result['other_mx'].append(found)
        result['evidence'] = result['evidence'] + ['(next MX host %s, probed as %s against %s)'
                                                   % (host, finger_destination(target, params.get('smtp_tcp_port')),
                                                      name)] + other.lines
        if not found['would_defer']:
            result.update(would_defer=False, host=found['host'], starttls=found['starttls'], trust=found['trust'],
                          tls=found['tls'],
                          reason='%s (the SMTP client goes on to it after %s would defer: %s)'
                                 % (found['reason'], first['host'], first['reason']))
            return
    # every MX host tried would defer: the mail is deferred with the words of the last one that answered
    answered = [found for found in result['other_mx'] if found['reachable']]
    if answered:
        last = answered[-1]
        result['reason'] = '%s (and %s before it: %s)' % (last['reason'], first['host'], first['reason']) \
            if last['host'] != first['host'] else last['reason']


def probe_destinations(finger, plan, transports, options, concurrency=4):
    """probe_one for each (destination, level, source, entry) of PLAN, CONCURRENCY at a
    time, each at its route and with its transport's settings (TRANSPORTS, routed already);
    the results in PLAN's order. A destination the SMTP client does not deliver gets
    unrouted(). Raises FingerError when posttls-finger cannot run."""
    if not plan:
        return []
    jobs = []
    for destination, level, source, entry in plan:
        route, params, overridden, why = transports.settings(destination)
        jobs.append((destination, level, source, entry, route, params, overridden, why))
    if any(job[-1] is None for job in jobs):
        finger.binary       # fail early (and once) when posttls-finger is not installed
    with ThreadPoolExecutor(max_workers=min(concurrency, len(plan))) as pool:
        futures = [pool.submit(unrouted, destination, level, source, route, why) if why else
                   pool.submit(probe_one, finger, destination, level, source, entry, params, options, route,
                               overridden)
                   for destination, level, source, entry, route, params, overridden, why in jobs]
        return [future.result() for future in futures]


def probe_plan(items, specs, answers, table, planned=None, exclusive=False, client=None):
    """(destination, level, source, entry) to probe for each item of level_changes marked
    ``probe``: at the level it gets after the change, with the entry it gets then (the planned
    one when the planned table answers), as the SMTP client would use them after the change.

    SPECS, ANSWERS, TABLE, PLANNED, EXCLUSIVE and CLIENT as given to level_changes.
    """
    after_specs, after_answers = after_change(specs, answers, table, planned, exclusive)
    plan = []
    for item in items:
        if not item.get('probe'):
            continue
        found = client(item['destination']) if client else None
        dummy, _now, then = _lookups(found, specs, answers, after_specs, after_answers, table, None, None)
        found = answered_policy(then[0], then[1], item.get('next_hop') or item['destination'])
        if found is None:
            plan.append((item['destination'], item['level'], 'smtp_tls_security_level', None))
        else:
            key, value, _spec = found
            plan.append((item['destination'], item['level'], 'policy table', (key, value)))
    return plan
