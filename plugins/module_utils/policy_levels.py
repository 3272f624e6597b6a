# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The TLS level the Postfix SMTP client applies to each destination now and after a
planned change, worked out on the target: what the module tls_policy_levels returns, and
postconf_info's tls_policy_levels option in the read's round trip.

``levels(module, postconf, postmap, options, params)`` does the work; OPTIONS are the
module's options (OPTIONS_SPEC), PARAMS the expanded parameters of PARAMETERS (plus
LOG_PARAMETERS with ``log``, PROBE_PARAMETERS with ``probe``). It raises LevelsError with
the message and what to return beside it. ``lookup_change`` says, from what a read has
already got, whether a planned change can give any destination another level at all (or
raise smtpd to encrypt), so a read that finds nothing to change skips the work.
"""

from __future__ import absolute_import, division, print_function

import os

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import (
    policy_source_entries,
    read_table_file,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import (
    KEY_VALUE_FILE_TYPES,
    choose_table,
    map_specs,
    maps_with_table,
    parse_map_list,
    parse_map_spec,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_routing import ROUTE_PARAMETERS, Route
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    SMTP_LEVEL_PARAMETERS,
    SMTPD_LEVEL_PARAMETERS,
    raises_smtpd_to_encrypt,
    tls_security_level,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import PostfixCommandError
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import fold_key, split_list
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    LEVELS,
    PolicyError,
    PolicyLint,
    normalize_destination,
    parse_policy,
    removable_key,
)

PARAMETERS = SMTP_LEVEL_PARAMETERS + ('smtp_tls_policy_maps', 'default_database_type', 'content_filter') \
    + ROUTE_PARAMETERS
# What lookup_change and resolve_table read (expanded): whether a run changes a lookup,
# decided before anything else is read (parameters_needed)
CHANGE_PARAMETERS = SMTP_LEVEL_PARAMETERS + SMTPD_LEVEL_PARAMETERS + ('smtp_tls_policy_maps', 'default_database_type')
TABLE_NAME = 'tls_policy'
# log_clients lists at most this many clients
LOG_CLIENTS_MAX = 100

# The options of tls_policy_levels (config_dir aside), as an argument_spec.
OPTIONS_SPEC = dict(
    destinations=dict(type='list', elements='str', default=[]),
    policies=dict(type='dict', default={}),
    policies_src=dict(type='path'),
    exclusive=dict(type='bool', default=False),
    table=dict(type='str'),
    level=dict(type='str', choices=list(LEVELS)),
    max=dict(type='int', default=50),
    log=dict(type='bool', default=False),
    log_files=dict(type='list', elements='path'),
    log_source=dict(type='str', choices=['auto', 'file', 'journal'], default='auto'),
    log_window=dict(type='str', default='7d'),
    log_syslog_name=dict(type='str'),
    probe=dict(type='bool', default=False),
    connect_timeout=dict(type='int', default=10),
    command_timeout=dict(type='int', default=30),
    concurrency=dict(type='int', default=4),
    ca_file=dict(type='path'),
    ca_path=dict(type='path'),
)


class LevelsError(Exception):
    """The levels cannot be worked out: MSG, and FIELDS to return beside it (cmd, rc, ...)."""

    def __init__(self, msg, **fields):
        super(LevelsError, self).__init__(msg)
        self.msg = msg
        self.fields = fields


class RaisingModule(object):
    """MODULE as levels() and its helpers use it, except that a failure raises LevelsError
    instead of ending the run (fail_json, get_bin_path of a required program): for a module
    whose own job succeeded when the levels could not be worked out (postconf_info's read)."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def fail_json(self, msg, **fields):
        raise LevelsError(msg, **fields)

    def get_bin_path(self, arg, required=False, opt_dirs=None):
        path = self._module.get_bin_path(arg, False, opt_dirs)
        if required and not path:
            raise LevelsError('%s is not installed on this host (looked for in PATH and in /sbin, /usr/sbin, '
                              '/usr/local/sbin)' % arg)
        return path


def relayhost_next_hops(value):
    """The next hops of a relayhost value (``[relay.example]:587``, ``relay.example``, a list
    from Postfix 3.5), as policy table keys Postfix looks up; [] when there is none or one
    is no next hop Postfix could look up."""
    hops = []
    for hop in split_list(value or ''):
        try:
            hops.append(check_key(hop))
        except PolicyError:
            continue
    return hops


def content_filter_routes(params, overrides):
    """{next hop: Route} of the content filters mail goes through first: main.cf's
    ``content_filter`` and every master.cf ``-o content_filter`` (OVERRIDES, ``postconf -Px``),
    ``smtp-amavis:[127.0.0.1]:10024`` -> ``[127.0.0.1]:10024`` through the ``smtp-amavis``
    transport (its ``-o`` settings apply). A filter without a next hop is left out."""
    values = [('content_filter = %s' % params.get('content_filter'), params.get('content_filter'))]
    for service, own in sorted(overrides.items()):
        if (own or {}).get('content_filter'):
            name = '/'.join(service) if isinstance(service, tuple) else service
            values.append(('master.cf %s -o content_filter=%s' % (name, own['content_filter']), own['content_filter']))
    routes = {}
    for via, value in values:
        transport, _sep, hop = str(value or '').strip().partition(':')
        if not transport or not hop:
            continue
        try:
            key = check_key(hop)
        except PolicyError:
            continue
        routes.setdefault(key, Route(key, transport, hop, via, source='own'))
    return routes


def parameters_needed(options):
    """The parameters levels() reads for OPTIONS, in one postconf call."""
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_log import LOG_PARAMETERS
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.posttls_finger import PROBE_PARAMETERS

    return tuple(dict.fromkeys(PARAMETERS + (LOG_PARAMETERS if options['log'] else ())
                               + (PROBE_PARAMETERS if options['probe'] else ())))


def check_key(destination, removing=False):
    """The folded key of DESTINATION; PolicyError when Postfix never looks it up."""
    try:
        return (removable_key if removing else normalize_destination)(destination)[0]
    except PolicyLint:
        return fold_key(destination)        # a collection rule only: Postfix looks it up


def looked_up_keys(keys):
    """The KEYS (policy table keys, in order) that Postfix looks up: a key only a removal
    accepts names no destination, so no level changes under it."""
    found = []
    for key in keys:
        try:
            check_key(key)
        except PolicyError:
            continue
        found.append(key)
    return found


def check_input(p, prefix=''):
    """(planned {key: value}, errors) of the options P; PREFIX names the option they are in."""
    errors = []
    if p['max'] < 0:
        errors.append('%smax: %d is not allowed, it must be 0 or more' % (prefix, p['max']))
    for name in ('connect_timeout', 'command_timeout', 'concurrency'):
        if p[name] < 1:
            errors.append('%s%s: %d is not allowed, it must be at least 1' % (prefix, name, p[name]))
    for destination in p['destinations']:
        try:
            check_key(destination)
        except PolicyError as exc:
            errors.append('%sdestinations: %s' % (prefix, exc))
    planned = {}
    items = [(destination, value, 'policies') for destination, value in p['policies'].items()]
    if p.get('policies_src'):
        if p['policies']:
            errors.append('%spolicies_src and policies are mutually exclusive: give the planned entries in one '
                          'of them' % prefix)
        else:
            try:
                found, problems = policy_source_entries(p['policies_src'])
                items = [(destination, value, 'policies_src: ' + where) for destination, value, where in found]
                errors.extend('%spolicies_src: %s' % (prefix, problem) for problem in problems)
            except ValueError as exc:
                errors.append('%spolicies_src %s %s' % (prefix, p['policies_src'], exc))
    for destination, value, where in items:
        try:
            key = check_key(destination, removing=value is None)
        except PolicyError as exc:
            errors.append('%s%s: %s' % (prefix, where, exc))
            continue
        if value is not None:
            if not isinstance(value, str):
                errors.append('%s%s: the value of %r must be a policy string as written in the table '
                              '(for example "encrypt") or null to remove the entry, got %r'
                              % (prefix, where, destination, value))
                continue
            try:
                parse_policy(value)
            except PolicyError as exc:
                errors.append('%s%s: %r: the value %r is refused by Postfix: %s'
                              % (prefix, where, destination, value, exc))
                continue
        if key in planned and (planned[key] != value or p.get('policies_src')):
            errors.append('%s%s: %r is planned twice%s (keys are case-insensitive)'
                          % (prefix, where, destination, '' if p.get('policies_src') else ' with different values'))
        planned[key] = value
    if p['log'] and p['log_window']:
        from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_log import window_seconds

        try:
            window_seconds(p['log_window'])
        except ValueError as exc:
            errors.append('%slog_%s' % (prefix, exc))
    return planned, errors


def resolve_table(option, maps_value, config_dir, default_type):
    """The planned table as TYPE:PATH, spelled as smtp_tls_policy_maps lists it when it does."""
    listed = [s for s in parse_map_list(maps_value) if s.is_key_value_file]
    if option:
        spec = parse_map_spec(option)
        map_type, path = (spec.map_type, spec.name) if spec is not None else (None, option)
        if map_type is not None and map_type not in KEY_VALUE_FILE_TYPES:
            raise ValueError('table %r: the planned entries go to a key/value table file (%s), not %s'
                             % (option, ', '.join(KEY_VALUE_FILE_TYPES), map_type))
        path, map_type = choose_table('smtp_tls_policy_maps', maps_value, path=path, map_type=map_type,
                                      config_dir=config_dir)
    elif listed:
        path, map_type = choose_table('smtp_tls_policy_maps', maps_value, config_dir=config_dir)
    else:
        path, map_type = os.path.join(config_dir, TABLE_NAME), None
    map_type = map_type or default_type
    for spec in listed:
        if spec.map_type == map_type and os.path.normpath(spec.name) == os.path.normpath(path):
            return '%s:%s' % (map_type, spec.name), path
    return '%s:%s' % (map_type, path), path


def lookup_change(params, table, table_differs, level_after, smtpd_after=None):
    """Why a planned change can alter what the SMTP client or server does, or None when it
    cannot: with the expanded PARAMS (smtp_tls_policy_maps and the level parameters read),
    TABLE (TYPE:PATH, resolve_table) whose planned entries differ from its content
    (TABLE_DIFFERS), LEVEL_AFTER the planned smtp_tls_security_level and SMTPD_AFTER the
    planned smtpd_tls_security_level (None: not planned).

    A destination's level can change only when the table's entries change, the table gets
    listed in smtp_tls_policy_maps (maps_with_table: a table already listed keeps its place)
    or the global level changes; the clients smtpd accepts only when it rises to encrypt."""
    if table_differs:
        return 'the table %s changes' % table
    specs = map_specs(params.get('smtp_tls_policy_maps', ''))
    if maps_with_table(specs, table) != specs:
        return 'smtp_tls_policy_maps gets %s' % table
    now = tls_security_level(params, 'smtp')
    if level_after and level_after != now:
        return 'smtp_tls_security_level goes from %s to %s' % (now, level_after)
    before = tls_security_level(params, 'smtpd')
    if raises_smtpd_to_encrypt(before, smtpd_after):
        return 'smtpd_tls_security_level goes from %s to encrypt' % before
    return None


def read_source(path):
    """The table source PATH parsed, or None when it cannot be read."""
    try:
        return read_table_file(path)
    except (IOError, OSError):
        return None


def source_entries(source, keys):
    """{key: value} of KEYS in the parsed table SOURCE (the first entry with a value), {} without one."""
    if source is None:
        return {}
    found = {}
    for key in keys:
        for entry in source.occurrences(key):
            if entry.value:
                found[key] = entry.value
                break
    return found


def read_log(module, p, params):
    """(the Summary result, sources) of the mail log, read as tls_log_summary reads it."""
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_log import since_window, summarize_mail_log

    summary, sources = summarize_mail_log(module, p['log_files'], p['log_source'], since_window(p['log_window']),
                                          p['log_syslog_name'], params)
    return summary.result(), sources


def levels(module, postconf, postmap, p, params, planned, commands):
    """What tls_policy_levels returns for the options P (check_input gave PLANNED) with the
    expanded PARAMS (parameters_needed) of postconf's configuration; COMMANDS: the list the
    Postconf and Postmap record their command lines in. Raises LevelsError."""
    # the log reader and the probes, imported only here: a read that works nothing out (a
    # converged host) does not load them
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_log import busiest_plaintext_clients
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.posttls_finger import (
        FingerError,
        PosttlsFinger,
        Transports,
        client_settings,
        level_changes,
        policy_keys,
        probe_destinations,
        probe_options,
        probe_plan,
        relay_next_hop,
    )

    config_dir = postconf.config_dir
    maps_value = params.get('smtp_tls_policy_maps', '')
    try:
        table, table_path = resolve_table(p['table'], maps_value, config_dir,
                                          params.get('default_database_type') or 'hash')
    except ValueError as exc:
        raise LevelsError('%s%s' % ('table: ' if p['table'] else '', exc))

    result = {}
    destinations = list(p['destinations'])
    # the relayhost takes all mail no transport_maps entry routes otherwise: a raised
    # global level applies to it first (with the log off, nothing else would name it)
    destinations += relayhost_next_hops(params.get('relayhost'))
    if p['log']:
        log, sources = read_log(module, p, params)
        relays = log['relays']
        # only the clients that sent without TLS (those an incoming encrypt refuses), the busiest
        # first, at most LOG_CLIENTS_MAX: a public MX sees many thousands of clients
        clients, total = busiest_plaintext_clients(log['clients'], LOG_CLIENTS_MAX)
        result.update(log_relays=relays, log_sources=sources, log_tls_logged=log['tls_logged'],
                      log_clients=clients, log_clients_plaintext=total)
        destinations += [hop for hop in (relay_next_hop(r['relay']) for r in relays if r['sent_plaintext']) if hop]
    specs = map_specs(maps_value)
    # The table's source file, read once: for the keys an exclusive run removes, and
    # for the entries of a table smtp_tls_policy_maps does not list (postmap -q is
    # not asked about it).
    source = read_source(table_path) if p['exclusive'] or table not in specs else None
    if p['exclusive']:
        # keys that leave the table fall back to the next table or the global level
        if source is not None:
            planned_keys = set(fold_key(key) for key in planned)
            destinations += [key for key in source.keys() if key not in planned_keys]
    seen = set()
    unique = []
    for destination in destinations:
        if fold_key(destination) not in seen:
            seen.add(fold_key(destination))
            unique.append(destination)

    # the next hop trivial-rewrite routes each destination's mail to (relayhost,
    # transport_maps), and the settings of the SMTP client that takes it (master.cf -o)
    transports = Transports(postconf, postmap, params)
    clients = {}
    try:
        # a content filter's next hop gets all mail first, through the filter's transport
        # (the levels apply there unless its -o settings say otherwise)
        filters = content_filter_routes(params, transports.overrides())
        for key, route in filters.items():
            if fold_key(key) not in seen:
                seen.add(fold_key(key))
                unique.append(key)
                transports.routes[key] = route
        transports.route(unique)
        for destination in unique:
            clients[destination] = client_settings(transports, destination)
    except PostfixCommandError as exc:
        raise LevelsError('cannot read the routing in %s: %s' % (config_dir, exc),
                          cmd=exc.cmd, rc=exc.rc, stderr=exc.stderr)
    keys = []
    seen = set()
    for destination in unique:
        for key in policy_keys(clients[destination]['next_hop'] or destination):
            if key not in seen:
                seen.add(key)
                keys.append(key)
    own_specs = [spec for c in clients.values() for spec in (c['specs'] or []) if spec not in specs]
    answers = {}
    try:
        for spec in specs + own_specs:
            if spec not in answers and keys:
                map_type, _sep, name = spec.partition(':')
                answers[spec] = postmap.query(map_type, name, keys)[0]
    except PostfixCommandError as exc:
        raise LevelsError('cannot look up the TLS policy in %s (smtp_tls_policy_maps = %s): %s'
                          % (config_dir, maps_value, exc), cmd=exc.cmd, rc=exc.rc, stderr=exc.stderr)
    if table not in answers:
        answers[table] = source_entries(source, keys)

    global_before = tls_security_level(params, 'smtp')
    items = level_changes(unique, specs, answers, global_before, table, planned, p['exclusive'],
                          p['level'], p['max'], client=clients.get)
    result.update(changed=False, destinations=items, affected=[i['destination'] for i in items if i['affected']],
                  level_before=global_before, level=p['level'] or global_before, table=table,
                  policy_maps=maps_with_table(specs, table), commands=commands)
    if p['probe']:
        # each marked destination at the level and with the entry it gets after the change
        plan = probe_plan(items, specs, answers, table, planned, p['exclusive'], client=clients.get)
        options = probe_options(p['ca_file'], p['ca_path'], p['connect_timeout'], p['command_timeout'])
        try:
            probes = probe_destinations(PosttlsFinger(module, config_dir, commands), plan, transports,
                                        options, p['concurrency'])
        except FingerError as exc:
            raise LevelsError(str(exc))
        result.update(probes=probes, deferring=[r['destination'] for r in probes if r['would_defer']])
    return result
