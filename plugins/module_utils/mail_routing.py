# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where Postfix sends a remote domain's mail: the transport and the next hop.

trivial-rewrite decides it (resolve.c, transport.c) and the SMTP client then
looks up the TLS policy of that next hop, not of the recipient domain:

1. The default: ``default_transport`` (``transport`` or ``transport:nexthop``),
   or ``relay_transport`` for a domain in ``relay_domains`` (matched as
   match_list/match_hostname match a domain list), and as next hop the
   ``relayhost`` when one is set, else the domain; a next hop in the
   transport setting wins over both. Local and virtual domains are not
   modelled, nor are sender-dependent relayhosts and default transports
   (a route notes them: it may not hold for every sender).
2. ``transport_maps``, when it has an entry, overrides that (update_entry):
   ``transport:nexthop`` sets both; ``transport`` or ``transport:`` sets the
   transport and resets the next hop to the recipient domain (so such an entry
   bypasses the relayhost); ``:nexthop`` keeps the transport; ``:`` changes
   nothing. The keys are tried in Postfix's order (mail_addr_find): the
   recipient address, then the domain, then its parent domains (``.parent``,
   or ``parent`` when ``parent_domain_matches_subdomains`` lists transport_maps),
   then ``*``; each key in every table of the list before the next key. Pattern
   tables (regexp, pcre, cidr) are asked only with the address and ``*``.
3. The transport's master.cf service runs the delivery: service_commands and
   not_smtp say whether it is the SMTP client, transport_parameters merges its
   ``-o`` overrides (``postconf -Px``) into main.cf's settings.

Pure functions but for reading ``/file`` items of relay_domains: the caller runs
``postmap -q`` through the QUERY callback of routes_for (transport_queries says
what to ask each transport table, choose_transport_entry picks Postfix's answer).
"""

from __future__ import annotations

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import parse_map_list, parse_map_spec
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import master_entries
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import (
    fold_key,
    parent_domains,
    split_list,
)

# main.cf settings the route of a domain depends on
ROUTE_PARAMETERS = ('relayhost', 'transport_maps', 'default_transport', 'parent_domain_matches_subdomains',
                    'relay_domains', 'relay_transport',
                    'sender_dependent_relayhost_maps', 'sender_dependent_default_transport_maps')

# Table types maps_find() skips for a partial key (no DICT_FLAG_FIXED): they are matched
# against the whole recipient address (and ``*``) only.
PATTERN_TABLE_TYPES = ('regexp', 'pcre', 'cidr')

# The recipient the routing is worked out for: transport_maps may route single
# addresses, and pattern tables see only whole addresses. A local part that no
# table is likely to name, so a table's rule for the domain is what answers.
ROUTED_LOCAL_PART = 'tls-probe'

WILDCARD = '*'

# update_entry(): with these transports the next hop is the reason text, never a host
NO_NEXT_HOP_TRANSPORTS = ('error', 'retry')


def is_domain(destination):
    """Whether DESTINATION is a recipient domain (``example.com``), or its subdomains
    (``.example.com``): routed by trivial-rewrite. ``[host]`` and ``host:port`` are next
    hops of their own."""
    destination = (destination or '').strip()
    return bool(destination.strip('.')) and not destination.startswith('[') and ':' not in destination


def transport_keys(domain, parent_matches_subdomains=False):
    """[(key, pattern_tables_too)] in the order trivial-rewrite asks transport_maps for a
    recipient in DOMAIN: the address, the domain, its parents, the wildcard. For
    ``.example.com`` (any subdomain) the keys a subdomain's lookup reaches after its own
    name: the parents from example.com up (no address: it names no one domain)."""
    domain = domain.strip().lower()
    if domain.startswith('.'):
        name = domain[1:] if parent_matches_subdomains else domain
        keys = [(name, False)]
    else:
        name = domain
        keys = [('%s@%s' % (ROUTED_LOCAL_PART, domain), True), (domain, False)]
    keys.extend((parent, False) for parent in parent_domains(name, dotted=not parent_matches_subdomains))
    keys.append((WILDCARD, True))
    return keys


def parent_style(params, name='transport_maps'):
    """Whether parent_domain_matches_subdomains lists NAME (then ``example.com`` matches its
    subdomains; otherwise only ``.example.com`` does)."""
    return name in [item.lower() for item in split_list(params.get('parent_domain_matches_subdomains') or '')]


def transport_specs(params):
    """The tables of transport_maps (MapSpec list, proxy: unwrapped by the spec)."""
    return parse_map_list(params.get('transport_maps') or '')


def transport_queries(domains, params):
    """{spec text: (spec, [keys])}: what to ask each transport_maps table (postmap -q) about
    DOMAINS, each table only the keys Postfix would ask it."""
    specs = transport_specs(params)
    style = parent_style(params)
    queries = {}
    for spec in specs:
        keys = {}           # ordered, without repeats (a table of thousands of domains)
        for domain in domains:
            for key, pattern_too in transport_keys(domain, style):
                if pattern_too or spec.map_type not in PATTERN_TABLE_TYPES:
                    keys.setdefault(key, None)
        queries[spec.text] = (spec, list(keys))
    return queries


def choose_transport_entry(domain, params, answers, specs=None, style=None):
    """Postfix's transport_maps answer for DOMAIN: (table, key, value) or None.
    ANSWERS: {spec text: {key: value}} from the tables (transport_queries); SPECS and
    STYLE (transport_specs, parent_style of PARAMS) when the caller has them already."""
    specs = transport_specs(params) if specs is None else specs
    style = parent_style(params) if style is None else style
    if not specs:
        return None
    for key, pattern_too in transport_keys(domain, style):
        for spec in specs:
            if not pattern_too and spec.map_type in PATTERN_TABLE_TYPES:
                continue
            value = (answers.get(spec.text) or {}).get(key)
            if value is not None:
                return spec.text, key, value
    return None


def split_transport(value):
    """``transport:nexthop`` -> (transport, nexthop); a missing part is ''."""
    transport, _sep, nexthop = (value or '').strip().partition(':')
    return transport.strip(), nexthop.strip()


class Route:
    """Where a recipient domain's mail goes: TRANSPORT (a master.cf service name), NEXT_HOP
    (whose TLS policy entry the SMTP client looks up) and VIA (what decided it, in words)."""

    def __init__(self, domain, transport, next_hop, via, notes=(), source=None, entry=None):
        self.domain = domain
        self.transport = transport
        self.next_hop = next_hop
        self.via = via
        self.notes = list(notes)
        # what set the next hop: 'domain', 'relayhost', 'default_transport', 'transport_maps'
        # or 'own'; for transport_maps ENTRY is (table, key, value)
        self.source = source
        self.entry = entry

    @property
    def certain(self):
        """Whether the route holds for all mail to the domain (no sender-dependent map, every
        transport table asked)."""
        return not self.notes

    def __repr__(self):
        return 'Route(%r, %r, %r, %r)' % (self.domain, self.transport, self.next_hop, self.via)

    def __eq__(self, other):
        return isinstance(other, Route) and (self.domain, self.transport, self.next_hop, self.via) == (
            other.domain, other.transport, other.next_hop, other.via)


# -- relay_domains: which domains take relay_transport (domain_list, match_ops.c) ----------

def _read_text(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'surrogateescape')
    except (IOError, OSError):
        return None


def relay_domain_patterns(value, read_file=_read_text):
    """relay_domains as Postfix's match_list parses it: [(negated, pattern)] where a pattern is
    a MapSpec (``type:table``) or a casefolded name; ``/file`` items are replaced by the
    file's patterns (READ_FILE(path) -> text, or None when it cannot be read: then
    (negated, None), a pattern whose lookups fail)."""
    patterns = []

    def parse(text, negated):
        for item in split_list(text):
            neg = negated
            while item.startswith('!'):
                neg, item = not neg, item[1:]
            if item.startswith('/'):
                content = read_file(item)
                if content is None:
                    patterns.append((neg, None))
                else:
                    for line in content.splitlines():
                        if line.strip() and not line.lstrip().startswith('#'):
                            parse(line, neg)
                continue
            spec = parse_map_spec(item) if not item.startswith('[') else None
            patterns.append((neg, spec if spec is not None else fold_key(item)))
    parse(value or '', False)
    return patterns


def relay_domain_keys(domain, spec, parent):
    """The keys match_hostname asks a relay_domains table SPEC for DOMAIN: the name, then (fixed
    tables only) its parents, ``parent`` with PARENT (relay_domains in
    parent_domain_matches_subdomains, the default) else ``.parent``."""
    name = fold_key(domain.strip())
    if spec.map_type in PATTERN_TABLE_TYPES:
        return [name]
    return [name] + parent_domains(name, dotted=not parent)


def _relay_name(domain):
    """The name matched against relay_domains for DOMAIN (``.example.com``: a name under it)."""
    name = fold_key(domain.strip())
    return ROUTED_LOCAL_PART + name if name.startswith('.') else name


def relay_domain_match(domain, patterns, parent, answers):
    """Whether DOMAIN is in relay_domains (match_list_match over PATTERNS, relay_domain_patterns):
    True, False, or None when a table could not be asked or a file read (Postfix then defers).
    ANSWERS: {spec text: {key: value}} of the tables; a ``.example.com`` domain stands for its
    subdomains (a name under it is matched)."""
    name = _relay_name(domain)
    for negated, pattern in patterns:
        if pattern is None:
            return None
        if isinstance(pattern, str):
            matched = name == pattern or (
                name.endswith('.' + pattern) if parent else (pattern.startswith('.') and name.endswith(pattern)))
        else:
            found = answers.get(pattern.text)
            if found is None:
                return None
            matched = any(key in found for key in relay_domain_keys(name, pattern, parent))
        if matched:
            return not negated
    return False


def default_route(domain, params, relay=False):
    """The route before transport_maps (resolve.c, a remote domain: RELAY says it is in
    relay_domains (relay_transport), else the default class (default_transport))."""
    name = 'relay_transport' if relay else 'default_transport'
    transport, nexthop = split_transport(params.get(name) or ('relay' if relay else 'smtp'))
    relayhost = (params.get('relayhost') or '').strip()
    notes = []
    for sender_map in ('sender_dependent_default_transport_maps', 'sender_dependent_relayhost_maps'):
        if (params.get(sender_map) or '').strip():
            notes.append('%s is set: mail from some senders may take another route than this one' % sender_map)
    if nexthop:
        return Route(domain, transport, nexthop, '%s = %s' % (name, params.get(name)), notes, 'default_transport')
    if relayhost:
        return Route(domain, transport, relayhost, 'relayhost = %s' % relayhost, notes, 'relayhost')
    return Route(domain, transport, domain, 'the domain itself (its MX hosts)', notes, 'domain')


def route_domain(domain, params, answers, specs=None, style=None, relay=False):
    """The Route of mail to DOMAIN (a recipient domain, is_domain) as trivial-rewrite resolves
    it, from PARAMS (ROUTE_PARAMETERS, expanded) and ANSWERS (the transport_maps lookups,
    {spec text: {key: value}}); RELAY: DOMAIN is in relay_domains. A destination that is not
    a domain is its own next hop."""
    if not is_domain(domain):
        return Route(domain, split_transport(params.get('default_transport') or 'smtp')[0], domain,
                     'a next hop of its own', source='own')
    route = default_route(domain, params, relay)
    found = choose_transport_entry(domain, params, answers, specs, style)
    if found is None:
        return route
    table, key, value = found
    transport, nexthop = split_transport(value)
    via = 'transport_maps (%s: %s %s)' % (table, key, value.strip())
    if not transport:                       # ":nexthop" keeps the transport, ":" changes nothing
        if nexthop:
            return Route(domain, route.transport, nexthop, via, route.notes, 'transport_maps', found)
        return route
    if transport in NO_NEXT_HOP_TRANSPORTS:        # the next hop is the reason text
        return Route(domain, transport, None, via, route.notes, 'transport_maps', found)
    return Route(domain, transport, nexthop or domain, via, route.notes, 'transport_maps', found)


def may_reroute(params):
    """Whether PARAMS can send a domain's mail anywhere but to the domain itself (a relayhost,
    transport_maps, relay_domains, a next hop in default_transport or relay_transport)."""
    return any((params.get(name) or '').strip() for name in ('relayhost', 'transport_maps', 'relay_domains')) \
        or any(split_transport(params.get(name) or '')[1] for name in ('default_transport', 'relay_transport'))


def routes_for(destinations, params, query):
    """{destination: Route} for DESTINATIONS (route_domain). QUERY(spec, keys) asks one
    transport_maps table (a MapSpec) for KEYS with postmap -q: {key: value}, or None when
    the table cannot be asked (the route is then worked out without it, with a note)."""
    domains = [d for d in destinations if is_domain(d)]
    answers, notes = {}, []
    if domains:
        for text, (spec, keys) in transport_queries(domains, params).items():
            found = query(spec, keys)
            if found is None:
                notes.append('transport_maps table %s could not be asked (postmap -q): the route is '
                             'worked out without it' % text)
            answers[text] = found or {}
    relay_patterns = relay_domain_patterns(params.get('relay_domains')) if domains else []
    relay_parent = parent_style(params, 'relay_domains')
    relay_answers = {}
    for _negated, pattern in relay_patterns:
        if pattern is not None and not isinstance(pattern, str) and pattern.text not in relay_answers:
            keys = dict.fromkeys(key for domain in domains
                                 for key in relay_domain_keys(_relay_name(domain), pattern, relay_parent))
            relay_answers[pattern.text] = query(pattern, list(keys))
    routes = {}
    specs, style = transport_specs(params), parent_style(params)
    for destination in destinations:
        if not is_domain(destination):
            routes[destination] = route_domain(destination, params, answers)
            continue
        relay = relay_domain_match(destination, relay_patterns, relay_parent, relay_answers)
        route = route_domain(destination, params, answers, specs, style, relay=bool(relay))
        route.notes.extend(notes)
        if relay is None:
            route.notes.append('relay_domains could not be read (a table postmap -q cannot ask, or a '
                               'file): whether the domain takes relay_transport is not known')
        elif relay and route.source == 'default_transport':
            route.via += ' (the domain is in relay_domains)'
        elif relay and route.source in ('relayhost', 'domain'):
            route.via += ' (the domain is in relay_domains: relay_transport = %s)' % (
                params.get('relay_transport') or 'relay')
        routes[destination] = route
    return routes


# -- the transport's master.cf service ---------------------------------------------

def service_commands(master_text):
    """{service name: command} of the ``unix`` services in ``postconf -M`` output (the
    transports trivial-rewrite can name)."""
    return dict((fields[0], fields[7]) for fields in master_entries(master_text)
                if len(fields) >= 8 and fields[1] == 'unix')


def not_smtp(route, commands):
    """Why mail on ROUTE is not delivered by the SMTP client (so no smtp TLS policy applies),
    or None when it is. COMMANDS: service_commands."""
    transport = route.transport
    command = commands.get(transport)
    if command == 'smtp':
        return None
    if command is None:
        return ('its transport %s is not a master.cf unix service: Postfix defers the mail '
                '("mail transport unavailable")' % transport)
    if route.next_hop is None or command in ('error', 'discard'):
        return 'its transport %s (master.cf command %s) delivers no mail over SMTP' % (transport, command)
    return ('its transport %s runs %s, not the SMTP client: the smtp_tls_* settings and '
            'smtp_tls_policy_maps do not apply' % (transport, command))


def transport_parameters(transport, params, overrides):
    """PARAMS (main.cf) with the ``-o`` overrides of TRANSPORT's master.cf unix service
    (OVERRIDES: parse_service_overrides of ``postconf -Px``): the settings that service's
    SMTP client runs with. Also returns the overridden names among PARAMS' keys."""
    own = overrides.get((transport, 'unix')) or {}
    merged = dict(params)
    changed = sorted(name for name in own if name in params and own[name] != params[name])
    merged.update((name, own[name]) for name in changed)
    return merged, changed
