# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where Postfix sends a remote domain's mail: the transport and the next hop.

trivial-rewrite decides it (resolve.c, transport.c) and the SMTP client then
looks up the TLS policy of that next hop, not of the recipient domain:

1. The address class (resolve.c), tested in this order: a domain in
   ``mydestination`` is local (``local_transport``), one in
   ``virtual_alias_domains`` is refused unless virtual aliasing rewrote the
   address ("User unknown in virtual alias table", the ``error`` transport;
   transport_maps is not asked), one in ``virtual_mailbox_domains`` takes
   ``virtual_transport``; these three are string lists (the name itself, tables
   asked with the name). A domain in ``relay_domains`` (a domain list:
   match_list/match_hostname, parent domains too) takes ``relay_transport``,
   any other ``default_transport``; for these two the next hop is the
   ``relayhost`` when one is set, else the domain. A next hop in the transport
   setting (``transport:nexthop``) wins. Sender-dependent relayhosts and
   default transports are not modelled (a route notes them: it may not hold
   for every sender).
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

Pure functions but for reading ``/file`` items of the domain lists: the caller runs
``postmap -q`` through the QUERY callback of routes_for (transport_queries says
what to ask each transport table, choose_transport_entry picks Postfix's answer).
"""

from __future__ import annotations

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import parse_map_list, parse_map_spec
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import parse_service_commands
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import (
    fold_key,
    parent_domains,
    split_list,
)

# main.cf settings the route of a domain depends on
ROUTE_PARAMETERS = ('relayhost', 'transport_maps', 'default_transport', 'parent_domain_matches_subdomains',
                    'relay_domains', 'relay_transport', 'mydestination', 'local_transport',
                    'virtual_alias_domains', 'virtual_mailbox_domains', 'virtual_transport',
                    'sender_dependent_relayhost_maps', 'sender_dependent_default_transport_maps')

# trivial-rewrite's address classes of a recipient domain (resolve.c), in the order it tests
# them: (class, the main.cf list that puts a domain in it, whether that is a domain list
# (parent domains match; else a string list: the name only), the class's transport setting
# and its built-in default). The default class is every other domain.
LOCAL, ALIAS, VIRTUAL, RELAY, DEFAULT = 'local', 'virtual alias', 'virtual mailbox', 'relay', 'default'
CLASS_LISTS = ((LOCAL, 'mydestination', False, 'local_transport', 'local'),
               (ALIAS, 'virtual_alias_domains', False, None, 'error'),
               (VIRTUAL, 'virtual_mailbox_domains', False, 'virtual_transport', 'virtual'),
               (RELAY, 'relay_domains', True, 'relay_transport', 'relay'))
CLASS_LIST_NAMES = dict((cls, name) for cls, name, _dom, _setting, _default in CLASS_LISTS)
CLASS_TRANSPORTS = dict((cls, (setting, default)) for cls, _list, _dom, setting, default in CLASS_LISTS)
CLASS_TRANSPORTS[DEFAULT] = ('default_transport', 'smtp')
# what trivial-rewrite gives a virtual alias domain's address that no alias rewrote
ALIAS_REASON = '5.1.1 User unknown in virtual alias table'

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


# -- the domain lists: mydestination, virtual_*_domains, relay_domains (match_list.c) --------

def _read_text(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'surrogateescape')
    except (IOError, OSError):
        return None


def list_patterns(value, read_file=_read_text):
    """A domain or string list (mydestination, relay_domains, ...) as Postfix's match_list
    parses it: [(negated, pattern)] where a pattern is a MapSpec (``type:table``) or a
    casefolded name; ``/file`` items are replaced by the file's patterns (READ_FILE(path) ->
    text, or None when it cannot be read: then (negated, None), a pattern whose lookups
    fail)."""
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


def list_keys(domain, spec, parent=None):
    """The keys a list's table SPEC is asked for DOMAIN: a string list (PARENT None) asks the
    name only (match_string); a domain list asks the name, then (fixed tables only) its
    parents (match_hostname), ``parent`` with PARENT true (the list is in
    parent_domain_matches_subdomains, as relay_domains is by default) else ``.parent``."""
    name = fold_key(domain.strip())
    if parent is None or spec.map_type in PATTERN_TABLE_TYPES:
        return [name]
    return [name] + parent_domains(name, dotted=not parent)


def _list_name(domain):
    """The name matched against the lists for DOMAIN (``.example.com``: a name under it;
    resolve_local strips one trailing dot)."""
    name = fold_key(domain.strip())
    if name.endswith('.') and not name.endswith('..'):
        name = name[:-1]
    return ROUTED_LOCAL_PART + name if name.startswith('.') else name


def list_match(domain, patterns, answers, parent=None):
    """Whether DOMAIN is in a list (match_list_match over PATTERNS, list_patterns): True,
    False, or None when a table could not be asked or a file read (Postfix then defers).
    PARENT: None for a string list (exact names), else whether parent domains match as
    ``parent`` (domain list). ANSWERS: {spec text: {key: value}} of the tables; a
    ``.example.com`` domain stands for its subdomains (a name under it is matched)."""
    name = _list_name(domain)
    for negated, pattern in patterns:
        if pattern is None:
            return None
        if isinstance(pattern, str):
            if parent is None:
                matched = name == pattern
            else:
                matched = name == pattern or (
                    name.endswith('.' + pattern) if parent else (pattern.startswith('.') and name.endswith(pattern)))
        else:
            found = answers.get(pattern.text)
            if found is None:
                return None
            matched = any(key in found for key in list_keys(name, pattern, parent))
        if matched:
            return not negated
    return False


class AddressClasses:
    """Which address class trivial-rewrite puts a recipient domain in (CLASS_LISTS, tested in
    resolve.c's order), from PARAMS (expanded); the lists' tables are asked through QUERY
    (spec, keys) -> {key: value} or None, once per table for all DOMAINS."""

    def __init__(self, params, domains, query, read_file=_read_text):
        self.lists = []
        for cls, name, domain_list, _setting, _default in CLASS_LISTS:
            parent = parent_style(params, name) if domain_list else None
            self.lists.append((cls, name, parent, list_patterns(params.get(name), read_file)))
        self.answers = {}
        for _cls, _name, parent, patterns in self.lists:
            for _negated, pattern in patterns:
                if pattern is None or isinstance(pattern, str) or pattern.text in self.answers:
                    continue
                keys = dict.fromkeys(key for domain in domains
                                     for key in list_keys(_list_name(domain), pattern, parent))
                self.answers[pattern.text] = query(pattern, list(keys)) if keys else {}

    def of(self, domain):
        """(class, the list that put DOMAIN there or None); class None when a list could not
        be read (the domain's class is not known)."""
        for cls, name, parent, patterns in self.lists:
            matched = list_match(domain, patterns, self.answers, parent)
            if matched is None:
                return None, name
            if matched:
                return cls, name
        return DEFAULT, None


def class_route(domain, params, cls=DEFAULT):
    """The route before transport_maps (resolve.c) of DOMAIN in address class CLS: the class's
    transport (a next hop in it wins); for the relay and default classes the relayhost, else
    the domain; for the local and virtual mailbox classes the domain; a virtual alias domain
    goes to the error transport."""
    if cls == ALIAS:
        return Route(domain, 'error', None, 'the domain is in virtual_alias_domains: an address no virtual '
                     'alias rewrote is refused (%s)' % ALIAS_REASON, source='alias')
    name, default = CLASS_TRANSPORTS[cls]
    value = (params.get(name) or '').strip() or default
    transport, nexthop = split_transport(value)
    notes = []
    if cls in (RELAY, DEFAULT):
        maps = (('sender_dependent_default_transport_maps',) if cls == DEFAULT else ()) + (
            'sender_dependent_relayhost_maps',)
        for sender_map in maps:
            if (params.get(sender_map) or '').strip():
                notes.append('%s is set: mail from some senders may take another route than this one' % sender_map)
    if cls in (LOCAL, VIRTUAL):
        where = 'the domain is in %s: %s = %s' % (CLASS_LIST_NAMES[cls], name, value)
        hop = None if transport in NO_NEXT_HOP_TRANSPORTS else nexthop or domain
        return Route(domain, transport, hop, where, notes, cls)
    if transport in NO_NEXT_HOP_TRANSPORTS:        # the next hop is the reason text
        return Route(domain, transport, None, '%s = %s' % (name, value), notes, 'default_transport')
    relayhost = (params.get('relayhost') or '').strip()
    if nexthop:
        return Route(domain, transport, nexthop, '%s = %s' % (name, value), notes, 'default_transport')
    if relayhost:
        return Route(domain, transport, relayhost, 'relayhost = %s' % relayhost, notes, 'relayhost')
    return Route(domain, transport, domain, 'the domain itself (its MX hosts)', notes, 'domain')


def route_domain(domain, params, answers, specs=None, style=None, cls=DEFAULT):
    """The Route of mail to DOMAIN (a recipient domain, is_domain) as trivial-rewrite resolves
    it, from PARAMS (ROUTE_PARAMETERS, expanded), its address class CLS (AddressClasses) and
    ANSWERS (the transport_maps lookups, {spec text: {key: value}}; not asked for a virtual
    alias domain). A destination that is not a domain is its own next hop."""
    if not is_domain(domain):
        return Route(domain, split_transport(params.get('default_transport') or 'smtp')[0], domain,
                     'a next hop of its own', source='own')
    route = class_route(domain, params, cls)
    if cls == ALIAS:
        return route
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
    """Whether PARAMS can send a remote domain's mail anywhere but to the domain itself (a
    relayhost, transport_maps, relay_domains, a next hop in default_transport or
    relay_transport)."""
    return any((params.get(name) or '').strip() for name in ('relayhost', 'transport_maps', 'relay_domains')) \
        or any(split_transport(params.get(name) or '')[1] for name in ('default_transport', 'relay_transport'))


def maybe_routed_elsewhere(destinations, params):
    """The domains among DESTINATIONS whose mail PARAMS may send elsewhere than to the domain
    itself over the default transport (routes_for works out where): all of them when
    may_reroute, or when mydestination or virtual_*_domains has a table or a file (asked
    only then); else those these lists name. Cheap for a table of thousands of entries on a
    host that routes nothing."""
    domains = [d for d in destinations if is_domain(d)]
    if may_reroute(params):
        return domains
    names = set()
    for _cls, name, domain_list, _setting, _default in CLASS_LISTS:
        if domain_list:
            continue            # relay_domains: may_reroute said no
        for _negated, pattern in list_patterns(params.get(name), read_file=lambda path: None):
            if not isinstance(pattern, str):
                return domains           # a table, or a /file (read by routes_for)
            names.add(pattern)
    return [d for d in domains if _list_name(d) in names] if names else []


def routes_for(destinations, params, query):
    """{destination: Route} for DESTINATIONS (route_domain). QUERY(spec, keys) asks one table
    (a MapSpec: transport_maps, or a table in mydestination, virtual_*_domains or
    relay_domains) for KEYS with postmap -q: {key: value}, or None when the table cannot be
    asked (the route is then worked out without it, with a note)."""
    domains = [d for d in destinations if is_domain(d)]
    answers, notes = {}, []
    if domains:
        for text, (spec, keys) in transport_queries(domains, params).items():
            found = query(spec, keys)
            if found is None:
                notes.append('transport_maps table %s could not be asked (postmap -q): the route is '
                             'worked out without it' % text)
            answers[text] = found or {}
    classes = AddressClasses(params, domains, query) if domains else None
    routes = {}
    specs, style = transport_specs(params), parent_style(params)
    for destination in destinations:
        if not is_domain(destination):
            routes[destination] = route_domain(destination, params, answers)
            continue
        cls, listed = classes.of(destination)
        route = route_domain(destination, params, answers, specs, style, cls=cls or DEFAULT)
        if cls != ALIAS:
            route.notes.extend(notes)
        if cls is None:
            route.notes.append('%s could not be read (a table postmap -q cannot ask, or a file): the '
                               "domain's address class, and so its transport, is not known" % listed)
        elif cls == RELAY and route.source == 'default_transport':
            route.via += ' (the domain is in relay_domains)'
        elif cls == RELAY and route.source in ('relayhost', 'domain'):
            route.via += ' (the domain is in relay_domains: relay_transport = %s)' % (
                params.get('relay_transport') or 'relay')
        elif cls in (LOCAL, VIRTUAL) and route.source == 'transport_maps':
            route.via += ' (the domain is in %s)' % listed
        routes[destination] = route
    return routes


# -- the transport's master.cf service ---------------------------------------------

def service_commands(master_text):
    """{service name: command} of the ``unix`` services in ``postconf -M`` output (the
    transports trivial-rewrite can name)."""
    return dict((name, command) for (name, kind), command in parse_service_commands(master_text).items()
                if kind == 'unix')


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
