# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Jinja2 filters for Postfix TLS decisions that roles and playbooks make.

The role mailgw.postfix_tls.enforce_tls decides with these instead of
re-implementing Postfix rules in Jinja: the policy sources merged and checked,
the TLS level in effect (including the obsolete *_use_tls / *_enforce_tls
settings), the strictness of a level, Postfix list splitting and the new
smtp_tls_policy_maps value that lists a table. The Postfix knowledge they need
(key folding, list splitting) is imported from the collection's module_utils.
Documentation: the YAML file named after each filter in this directory.
"""

from collections.abc import Iterable, Mapping

import json
import os
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.validation import check_type_bool, check_type_list, check_type_str

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import parse_map_spec
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    LEVEL_RANKS,
    expand_references,
    level_rank,
    lowered_entries,
    planned_level,
    raises_smtpd_to_encrypt,
    smtpd_certificate_files,
    tls_security_level,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import fold_key, split_list
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.service_levels import (
    reinjection_candidates,
    service_level_notes,
    unenforced_smtpd_programs,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import PolicyError, build_policy

SIDES = tuple(LEVEL_RANKS)

POLICY_STATES = ('present', 'absent')


def _side(side):
    if side not in SIDES:
        raise AnsibleFilterError('side must be one of %s (the SMTP client or the SMTP server), got %r'
                                 % (', '.join(SIDES), side))
    return side


def _is_list(value):
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))


def _sources(sources):
    """(label, value) pairs of a mapping (name -> list) or a list of lists."""
    if isinstance(sources, Mapping):
        return list(sources.items())
    if _is_list(sources):
        return [('sources[%d]' % index, value) for index, value in enumerate(sources)]
    raise AnsibleFilterError('expected a mapping of variable names to lists of policy entries, '
                             'or a list of such lists, got %s' % type(sources).__name__)


def _entry_is_valid(entry):
    if not isinstance(entry, Mapping):
        return False
    destination = entry.get('destination')
    if not isinstance(destination, str) or not destination.strip():
        return False
    state = entry.get('state', 'present')
    if state not in POLICY_STATES:
        return False
    if state == 'absent':
        return True
    level = entry.get('level')
    return level is not None and str(level) != ''


def tls_policy_problems(sources):
    """The policy entries that are not usable, as [label, value] pairs.

    SOURCES maps variable names to their values (or is a list of lists).
    A value that is not a list is one problem labelled
    "NAME (must be a list of entries)"; in a list, each entry that is not a
    mapping with a non-empty string destination, a state of present or
    absent and (unless absent) a level is one problem labelled "NAME[INDEX]".
    """
    problems = []
    for label, value in _sources(sources):
        if not _is_list(value):
            problems.append([label + ' (must be a list of entries)', value])
            continue
        for index, entry in enumerate(value):
            if not _entry_is_valid(entry):
                problems.append(['%s[%d]' % (label, index), entry])
    return problems


def merge_tls_policies(sources, internal_nexthops=()):
    """Merge policy lists into one list of entries, lowest precedence first.

    Entries are keyed by the destination folded as Postfix folds table keys
    (ASCII letters to lower case). A later entry replaces an earlier one for
    the same key as a whole and keeps the earlier one's place. Each of
    INTERNAL_NEXTHOPS becomes a "level: none" entry before all sources, so
    any source can override it.
    """
    if not _is_list(internal_nexthops):
        raise AnsibleFilterError('internal_nexthops must be a list of next-hop destinations, got %r'
                                 % (internal_nexthops,))
    merged = {}
    for hop in internal_nexthops:
        merged[fold_key(str(hop))] = {'destination': hop, 'level': 'none'}
    for label, value in _sources(sources):
        if not _is_list(value):
            raise AnsibleFilterError('%s must be a list of policy entries, got %s'
                                     % (label, type(value).__name__))
        for index, entry in enumerate(value):
            if not isinstance(entry, Mapping) or 'destination' not in entry:
                raise AnsibleFilterError('%s[%d] is not a policy entry with a destination: %r'
                                         % (label, index, entry))
            merged[fold_key(str(entry['destination']))] = entry
    return list(merged.values())


def current_tls_level(parameters, side):
    """The TLS security level Postfix applies, from its parameter values.

    PARAMETERS maps parameter names to values (postconf -x output);
    SIDE is smtp (the client) or smtpd (the server). The level is
    SIDE_tls_security_level, lower-cased; when that is empty the obsolete
    settings count as Postfix reads them: smtp_enforce_tls=yes is verify
    (encrypt when smtp_tls_enforce_peername=no), smtpd_enforce_tls=yes is
    encrypt, SIDE_use_tls=yes is may, otherwise none. A missing parameter
    counts as empty.
    """
    side = _side(side)
    if not isinstance(parameters, Mapping):
        raise AnsibleFilterError('current_tls_level expects a mapping of parameter names to values, got %s'
                                 % type(parameters).__name__)
    return tls_security_level(parameters, side)


def tls_level_rank(level, side):
    """Strictness of LEVEL on SIDE (smtp or smtpd): 0 for none upwards, -1 when unknown."""
    return level_rank(level, _side(side))


def postfix_list(value):
    """Split a Postfix list value (commas and whitespace; {...} kept together)."""
    if value is None:
        return []
    if not isinstance(value, str):
        raise AnsibleFilterError('postfix_list expects a string, got %s' % type(value).__name__)
    return split_list(value)


def _spec_of(item):
    """(type, name) of a table list item, proxy: and other wrappers dropped
    (``proxy:hash:/etc/postfix/tls_policy`` -> ``('hash', '/etc/postfix/tls_policy')``)."""
    spec = parse_map_spec(item)
    return (spec.map_type, spec.name) if spec is not None else (None, item.split(':', 1)[-1])


def _path_of(item):
    return _spec_of(item)[1]


def policy_maps_with_table(current, table, current_expanded=None, table_expanded=None):
    """The smtp_tls_policy_maps value that lists TABLE.

    CURRENT is the value as main.cf writes it, CURRENT_EXPANDED the same
    value with $parameters expanded (postconf -x), TABLE the TYPE:PATH to
    list (as it should be written) and TABLE_EXPANDED its expanded form.
    When CURRENT already lists the table in either spelling it is returned
    unchanged. Otherwise TABLE comes first (Postfix uses the first table that
    has the key) followed by the tables already listed, minus those naming
    the same file under another type.
    """
    for name, text in (('current', current), ('table', table)):
        if not isinstance(text, str):
            raise AnsibleFilterError('policy_maps_with_table: %s must be a string, got %r' % (name, text))
    if not table.strip():
        raise AnsibleFilterError('policy_maps_with_table: the table must not be empty')
    if current_expanded is None:
        current_expanded = current
    if table_expanded is None:
        table_expanded = table
    raw = split_list(current)
    expanded = split_list(current_expanded)
    if len(expanded) != len(raw):
        expanded = raw
    if table in raw or table_expanded in expanded:
        return current
    # the same table through proxy: (or another wrapper) is listed already
    if any(_spec_of(item) == _spec_of(table) for item in raw) or \
            any(_spec_of(item) == _spec_of(table_expanded) for item in expanded):
        return current
    keep = [table]
    for item, item_expanded in zip(raw, expanded):
        if _path_of(item) != _path_of(table) and _path_of(item_expanded) != _path_of(table_expanded):
            keep.append(item)
    return ', '.join(keep)


# The suboptions of tls_policy's entries[] and the argument_spec type of each:
# the filter converts them as AnsibleModule would, so an entry gives the same
# policy through either shape.
ENTRY_TYPES = {
    'destination': 'str', 'level': 'str', 'state': 'str',
    'match': 'list', 'ciphers': 'str', 'protocols': 'list', 'exclude': 'list',
    'tafile': 'pathlist', 'servername': 'str', 'connection_reuse': 'bool', 'enable_rpk': 'bool',
}
POLICY_ATTRIBUTES = ('match', 'ciphers', 'protocols', 'exclude', 'tafile', 'servername',
                     'connection_reuse', 'enable_rpk')


def _entry_value(name, value):
    """VALUE converted as tls_policy's argument_spec converts entries[].NAME."""
    kind = ENTRY_TYPES[name]
    if value is None:
        return None
    if kind == 'str':
        return check_type_str(value, allow_conversion=True)
    if kind == 'bool':
        return check_type_bool(value)
    items = [check_type_str(item, allow_conversion=True) for item in check_type_list(value)]
    if kind == 'pathlist':
        items = [os.path.expanduser(os.path.expandvars(item)) for item in items]
    # without surrounding spaces, as tls_policy builds the entry ("a.example, b.example");
    # a control character stays (refused by the grammar)
    return [item.strip(' ') for item in items]


def tls_policy_values(entries):
    """The tls_policy ``policies`` mapping for a list in the ``entries`` shape.

    Each entry (destination, level, match, ciphers, protocols, exclude,
    tafile, servername, connection_reuse, enable_rpk, state) becomes
    ``destination: rendered policy`` (the table value the module writes for
    it), or ``destination: None`` for state=absent. Destinations are kept as
    given (the module folds and checks them). An entry the module would refuse
    raises AnsibleFilterError naming the entry, its destination, the value and
    the rule it breaks.
    """
    if not _is_list(entries):
        raise AnsibleFilterError('tls_policy_values expects a list of policy entries (the tls_policy '
                                 'entries shape), got %s' % type(entries).__name__)
    values = {}
    for index, entry in enumerate(entries):
        where = 'tls_policy_values: entries[%d]' % index
        if not isinstance(entry, Mapping):
            raise AnsibleFilterError('%s is not a policy entry (a mapping with destination and level): %r'
                                     % (where, entry))
        unknown = sorted(str(name) for name in entry if name not in ENTRY_TYPES)
        if unknown:
            raise AnsibleFilterError('%s (destination %r): unsupported option%s %s; an entry has %s'
                                     % (where, entry.get('destination'), 's' if len(unknown) > 1 else '',
                                        ', '.join(unknown), ', '.join(sorted(ENTRY_TYPES))))
        try:
            item = dict((name, _entry_value(name, entry.get(name))) for name in ENTRY_TYPES)
        except (TypeError, ValueError) as e:
            raise AnsibleFilterError('%s (destination %r): %s' % (where, entry.get('destination'), e))
        destination = item['destination']
        if destination is None or not destination.strip():
            raise AnsibleFilterError('%s has no destination (the policy table key): %r' % (where, entry))
        state = item['state'] or 'present'
        if state not in POLICY_STATES:
            raise AnsibleFilterError('%s destination %r: state %r must be present or absent'
                                     % (where, destination, state))
        if destination in values:
            raise AnsibleFilterError('%s destination %r is given twice' % (where, destination))
        if state == 'absent':
            values[destination] = None
            continue
        if not item['level']:
            raise AnsibleFilterError('%s destination %r: level is required when state is present'
                                     % (where, destination))
        try:
            # lint=True: the collection's own rules refuse the entry here as the module
            # would (with lint=False "none" with attributes would render as plain "none")
            policy = build_policy(item['level'], **dict((name, item[name]) for name in POLICY_ATTRIBUTES))
        except PolicyError as e:
            raise AnsibleFilterError('%s destination %r: %s' % (where, destination, e))
        values[destination] = policy.render()
    return values


def tls_preflight_report(levels, probes=None, mode='warn', host=None, incoming=None):
    """The enforce_tls preflight report from tls_policy_levels and tls_probe results.

    INCOMING: {'before': level, 'after': level} of smtpd_tls_security_level for this run
    (the role's decision), and 'unenforced': the smtpd programs the level does not reach
    (the decision's unenforced_smtpd_programs); when it rises to encrypt, the clients the
    mail log (LEVELS' log_clients) shows sent mail without TLS are the ones smtpd will
    refuse (_incoming_report).

    LEVELS is the registered result of mailgw.postfix_tls.tls_policy_levels
    (its ``destinations``, and with ``probe: true`` its ``probes``; a skipped
    task gives none), PROBES the registered result of tls_probe (its
    ``destinations``, or ``results[].destinations`` of a loop of tls_probe
    tasks). One item per
    destination of LEVELS, with the probe's findings merged in; a destination
    that cannot be reached at all defers at any level, so it is reported as
    unreachable, not as made to defer by this run.
    """
    levels = levels if isinstance(levels, Mapping) else {}
    probes = probes if isinstance(probes, Mapping) else {}
    if levels.get('failed'):
        # the levels could not be worked out (postconf_info's tls_policy_levels): nothing was checked
        summary = 'nothing was checked: the preflight could not run (%s)' % levels.get('msg', '')
        return dict(mode=mode, host=host, destinations=[], affected=[], would_defer=[], unreachable=[],
                    refused_clients=[], local_plaintext_clients=[], failed=True, unchecked=summary, summary=summary)
    found = {}
    for probe in levels.get('probes') or []:
        found[probe['destination']] = probe
    for result in [probes] + list(probes.get('results') or []):
        if isinstance(result, Mapping):
            for probe in result.get('destinations') or []:
                found[probe['destination']] = probe
    merged = []
    for item in levels.get('destinations') or []:
        probe = found.get(item['destination'], {})
        reason = probe.get('reason', item.get('not_probed'))
        reachable = probe.get('reachable')
        entry = dict(item)
        entry.update(
            probed=bool(probe), host=probe.get('host'), reachable=reachable,
            starttls=probe.get('starttls'), trust=probe.get('trust'),
            would_defer=bool(probe.get('would_defer', False)) and reachable is not False,
            reason=reason, line='%s at %s (%s)' % (item['destination'], item.get('level'), reason))
        merged.append(entry)
    bad = [entry for entry in merged if entry['would_defer']]
    affected = [entry['destination'] for entry in merged if entry.get('affected')]
    if bad:
        summary = '%d would defer: %s' % (len(bad), '; '.join(entry['line'] for entry in bad))
    else:
        summary = 'no destination would defer (%d affected)' % len(affected)
    refused, local, incoming_text, incoming_unchecked = _incoming_report(levels, incoming)
    unchecked = '; '.join(text for text in (_unchecked_by_preflight(levels), incoming_unchecked) if text) or None
    return dict(
        mode=mode, host=host, destinations=merged, affected=affected, failed=False,
        would_defer=[entry['destination'] for entry in bad],
        unreachable=[entry['destination'] for entry in merged if entry['reachable'] is False],
        refused_clients=refused, local_plaintext_clients=local,
        unchecked=unchecked,
        summary=summary + incoming_text + ('; NOTE: ' + unchecked if unchecked else ''),
    )


def _client_line(client):
    return '%s (%d message%s)' % (client['client'], client['messages_plaintext'],
                                  '' if client['messages_plaintext'] == 1 else 's')


def _incoming_report(levels, incoming):
    """(refused clients, local plaintext clients, summary text, what was not checked) for a
    run that raises smtpd_tls_security_level to encrypt: smtpd then answers a client that
    does not use STARTTLS "530 5.7.0 Must issue a STARTTLS command first". The clients are
    those of the mail log (tls_policy_levels' log_clients) that sent mail without TLS; those
    on this host (loopback) are reported apart: a content filter's re-injection reaches a
    service the role exempts, another local program sending to port 25 would be refused."""
    incoming = incoming if isinstance(incoming, Mapping) else {}
    before, after = incoming.get('before'), incoming.get('after')
    if not raises_smtpd_to_encrypt(before, after):
        return [], [], '', None
    rise = 'smtpd_tls_security_level rises from %s to encrypt: a client that does not use STARTTLS gets 530' % before
    if 'log_sources' not in levels:
        return [], [], '', (rise + ', and the preflight did not read the mail log (enforce_tls_preflight_log: true '
                            'lists the clients that sent mail without TLS)')
    if not (levels.get('log_tls_logged') or {}).get('smtpd', True):
        return [], [], '', (rise + ', and the mail log cannot say which clients did: smtpd_tls_loglevel is 0 (set '
                            'it to 1 and read the log of the mail after that)')
    plaintext = [c for c in levels.get('log_clients') or [] if c.get('messages_plaintext')]
    # a client whose plaintext mail all went to smtpd programs only unenforced services log
    # under (exempt, loopback-only, or kept below encrypt by their own -o) keeps working
    unenforced = set(incoming.get('unenforced') or [])
    reached = [c for c in plaintext if not (c.get('plaintext_services')
                                            and set(c['plaintext_services']) <= unenforced)]
    exempt = [c for c in plaintext if not c.get('loopback') and c not in reached]
    refused = [c for c in reached if not c.get('loopback')]
    # this host's plaintext to a service that stays below encrypt (the re-injection service
    # with a syslog_name of its own) is expected: not listed
    local = [c for c in reached if c.get('loopback')]
    more = max(0, int(levels.get('log_clients_plaintext') or 0) - len(plaintext))
    text = ''
    if refused:
        text += ('; %d client%s sent mail without TLS (mail log: %s) and would get 530 at smtpd_tls_security_level '
                 '= encrypt: %s%s' % (len(refused), '' if len(refused) == 1 else 's',
                                      ', '.join(levels.get('log_sources') or []),
                                      '; '.join(map(_client_line, refused)),
                                      ' (and %d more clients, not listed)' % more if more else ''))
    else:
        text += '; no other host sent mail without TLS (mail log: %s)' % ', '.join(levels.get('log_sources') or [])
    if exempt:
        text += ('; not refused: %s (sent only to %s, which incoming encrypt does not reach)'
                 % ('; '.join(map(_client_line, exempt)),
                    ', '.join(sorted(set(p for c in exempt for p in c['plaintext_services'])))))
    if local:
        text += ('; from this host without TLS: %s (a re-injection service in enforce_tls_reinjection_services is '
                 'exempt; another local program sending to port 25 would get 530)' % '; '.join(map(_client_line, local)))
    return [c['client'] for c in refused], [c['client'] for c in local], text, None


def _unchecked_by_preflight(levels):
    """What a preflight cannot have checked, or None: when the run raises the global
    smtp_tls_security_level, every destination without a policy entry gets the new level, and
    the preflight knows only the destinations it was given and, with the log read
    (tls_policy_levels' log_sources), the next hops the mail log shows took mail in plaintext."""
    before, after = levels.get('level_before'), levels.get('level')
    if not before or not after or level_rank(after) <= level_rank(before):
        return None
    text = ('smtp_tls_security_level rises from %s to %s for every destination without a policy entry, '
            'and the preflight probed only ' % (before, after))
    if 'log_sources' in levels and not (levels.get('log_tls_logged') or {}).get('smtp', True):
        return text + ('the destinations it was given: the mail log cannot say which next hops took mail in '
                       'plaintext (smtp_tls_loglevel is 0; set it to 1 and read the log of the mail after that)')
    if 'log_sources' in levels:
        return text + ('the destinations it was given and the next hops the mail log (%s) shows took mail in '
                       'plaintext: mail to a next hop not in the log was not checked'
                       % (', '.join(levels.get('log_sources') or []) or 'nothing readable'))
    return text + ('the destinations it was given (the policy entries, enforce_tls_preflight_destinations): '
                   'mail to any other next hop was not checked; enforce_tls_preflight_log: true adds the next '
                   'hops the mail log shows took mail in plaintext')


# -- enforce_tls_decision ------------------------------------------------------------

NO_CERTIFICATE = ('no smtpd certificate is configured (smtpd_tls_cert_file, smtpd_tls_eccert_file '
                  'and smtpd_tls_chain_files are empty)')

DECISION_SETTINGS = {
    # name: (type, default); the role's variables without the enforce_tls_ prefix
    'config_dir': (str, '/etc/postfix'),
    'outgoing_level': (str, 'may'),
    'incoming_level': (str, 'may'),
    'allow_downgrade': (bool, False),
    'layout': (str, 'postfix'),
    'map_type': (str, ''),
    'map_path': (str, ''),
    'maps_d_dir': (str, ''),
    'smtpd_cert_file': (str, ''),
    'smtpd_key_file': (str, ''),
    'skip_certificate_check': (bool, False),
    'reinjection_services': (list, []),
    'preflight': (str, 'warn'),
}


def _decision_settings(settings, caller='enforce_tls_decision'):
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError('%s expects a mapping of settings, got %s' % (caller, type(settings).__name__))
    unknown = sorted(set(settings) - set(DECISION_SETTINGS))
    if unknown:
        raise AnsibleFilterError('%s: unknown settings %s (known: %s)'
                                 % (caller, ', '.join(unknown), ', '.join(sorted(DECISION_SETTINGS))))
    out = {}
    for name, (kind, default) in DECISION_SETTINGS.items():
        value = settings.get(name, default)
        try:
            if kind is bool:
                value = check_type_bool(value)
            elif kind is list:
                value = [check_type_str(item) for item in check_type_list(value)]
            else:
                value = '' if value is None else check_type_str(value)
        except TypeError as e:
            raise AnsibleFilterError('%s: setting %s: %s' % (caller, name, e))
        out[name] = value
    return out


def _certificate_files(info, settings):
    """The files smtpd loads after the run (postconf_params.smtpd_certificate_files): the
    inventory's certificate and key, else the host's."""
    return smtpd_certificate_files(info.get('parameters') or {}, info.get('parameter_files') or {},
                                   settings['smtpd_cert_file'], settings['smtpd_key_file'])


def _file_problems(paths, facts):
    """What is wrong with each file, from postconf_info's stat-like facts (a path it
    could not look at counts as missing)."""
    problems = []
    for path in paths:
        fact = facts.get(path) or {'exists': False}
        if not fact.get('exists'):
            problems.append('%s does not exist' % path)
        elif not fact.get('isreg'):
            problems.append('%s is not a regular file' % path)
        elif not fact.get('readable'):
            problems.append('%s is not readable' % path)
        elif fact.get('size') == 0:
            problems.append('%s is empty' % path)
    return problems


def _unreadable(info, config_dir):
    detail = str(info.get('stderr') or info.get('msg') or '').strip()
    return ('enforce_tls_config_dir=%s: postconf cannot read the configuration (%s). Install Postfix '
            'first (postconf is looked for on PATH and in /sbin, /usr/sbin, /usr/local/sbin), or point '
            'enforce_tls_config_dir at the configuration directory of the instance.' % (config_dir, detail))


# The parameters a table path of the role may reference (expanded on the host).
TABLE_REFERENCES = ('maps_d_dir', 'default_database_type')


def _maps_d_dir_template(settings):
    """CipherMail's maps.d directory: the inventory's, else main.cf's maps_d_dir, else
    CONFIG_DIR/maps.d (a Postfix expression, expanded with the host's values)."""
    return settings['maps_d_dir'] or '${maps_d_dir}${maps_d_dir:%s/maps.d}' % settings['config_dir'].replace('$', '$$')


def _table_template(settings):
    """The table's path and map type as the role gives them to postconf_info's plan,
    with Postfix $name references for what depends on the host: the postfix layout
    CONFIG_DIR/tls_policy; the ciphermail layout MAPS_D_DIR/TYPE-tls-policy.map with
    maps_d_dir the inventory's, else main.cf's, else CONFIG_DIR/maps.d, and the type
    the inventory's, else default_database_type. An empty map type is left to
    tls_policy (the type smtp_tls_policy_maps lists, else default_database_type)."""
    if settings['map_path']:
        path = settings['map_path']
    elif settings['layout'] == 'ciphermail':
        path = '%s/%s-tls-policy.map' % (_maps_d_dir_template(settings),
                                         settings['map_type'] or '${default_database_type}')
    else:
        path = settings['config_dir'].replace('$', '$$') + '/tls_policy'
    map_type = settings['map_type'] or ('${default_database_type}' if settings['layout'] == 'ciphermail' else '')
    return dict(path=path, map_type=map_type)


def enforce_tls_table(settings):
    """The policy table the role mailgw.postfix_tls.enforce_tls writes, as postconf_info's
    tls_policy_plan takes it: path and map_type, with $name references to main.cf
    parameters where they depend on the host (SETTINGS as for enforce_tls_decision)."""
    return _table_template(_decision_settings(settings, 'enforce_tls_table'))


def enforce_tls_decision(info, settings):
    """What the role mailgw.postfix_tls.enforce_tls writes on one host, and what it refuses.

    INFO is the registered result of mailgw.postfix_tls.postconf_info as the
    role reads it (parameters, expanded, services, service_parameters,
    parameter_files, files, tls_policy_plan: a refused plan is a refusal; tls_policy_levels: a
    preflight that failed is one); SETTINGS the role's variables without the
    ``enforce_tls_`` prefix (DECISION_SETTINGS). Nothing is read or written:
    the same input gives the same decision, in check mode too.
    """
    if not isinstance(info, Mapping):
        raise AnsibleFilterError('enforce_tls_decision expects the registered result of '
                                 'mailgw.postfix_tls.postconf_info, got %s' % type(info).__name__)
    settings = _decision_settings(settings)
    config_dir = settings['config_dir']
    if not isinstance(info.get('parameters'), Mapping):
        # postconf could not read the configuration: nothing is decided, the role stops
        return dict(readable=False, refusals=[_unreadable(info, config_dir)], notes=[])
    parameters = info['parameters']
    expanded = info.get('expanded') or {}
    services = list(info.get('services') or [])
    files = info.get('files') or {}

    levels = {}
    level_params = {}
    notes = []
    for side, name in (('smtp', 'outgoing'), ('smtpd', 'incoming')):
        now = tls_security_level(expanded, side)
        requested = settings[name + '_level']
        final = planned_level(requested, now, side, keep_stricter=not settings['allow_downgrade'])
        keep = final != requested
        levels[name] = (now, final)
        parameter = side + '_tls_security_level'
        if not keep and str(parameters.get(parameter) or '').lower() != requested:
            level_params[parameter] = requested
        if keep and level_rank(requested, side) > level_rank(now, side):
            # opportunistic dane in place of mandatory encrypt (weaker_somewhere)
            notes.append('%s TLS stays at "%s": the requested enforce_tls_%s_level=%s is opportunistic TLS '
                         '(level may, with its plaintext fallback) for every destination without '
                         'DNSSEC-validated TLSA records, weaker than %s there. Set '
                         'enforce_tls_allow_downgrade=true to change it.'
                         % (name.capitalize(), now, name, requested, now))
        elif keep:
            notes.append('%s TLS stays at "%s": it is stricter than the requested enforce_tls_%s_level=%s. '
                         'Set enforce_tls_allow_downgrade=true to lower it.'
                         % (name.capitalize(), now, name, requested))
    outgoing_final = levels['outgoing'][1]
    incoming_final = levels['incoming'][1]

    # The table's path and type, and CipherMail's maps.d: the rules of _table_template
    # (which the read's plan was given), expanded here with the same values as
    # postconf_info expanded them. maps_d_dir is written to main.cf when the inventory
    # gives one or main.cf has none.
    ciphermail = settings['layout'] == 'ciphermail'
    maps_d_dir_host = str(expanded.get('maps_d_dir') or '').strip()
    values = dict.fromkeys(TABLE_REFERENCES, '')
    values.update((name, str(value)) for name, value in expanded.items())
    maps_d_dir = expand_references(_maps_d_dir_template(settings), values)
    template = _table_template(settings)
    map_path = expand_references(template['path'], values)
    map_type = expand_references(template['map_type'], values)
    map_dir = os.path.dirname(map_path)
    map_reference = ('%s:${maps_d_dir}/%s-tls-policy.map' % (map_type, map_type)
                     if ciphermail and not settings['map_path'] else '')

    cert_params = {}
    for parameter, setting in (('smtpd_tls_cert_file', 'smtpd_cert_file'), ('smtpd_tls_key_file', 'smtpd_key_file')):
        if settings[setting] and parameters.get(parameter) != settings[setting]:
            cert_params[parameter] = settings[setting]

    # master.cf re-injection services that need -o smtpd_tls_security_level=none
    exempt_already = [service for service, overrides in (info.get('service_parameters') or {}).items()
                      if isinstance(overrides, Mapping) and overrides.get('smtpd_tls_security_level') == 'none']
    exempt_services = []
    if incoming_final == 'encrypt':
        exempt_services = [service for service in settings['reinjection_services']
                           if service in services and service not in exempt_already]
    # The levels wait for a reload of their own when raising smtpd to encrypt could reach a
    # re-injection service: an -o override reaches new smtpd processes only after the master
    # re-read master.cf, and one already in master.cf may not have been read yet (a run that
    # stopped before its reload, a hand edit).
    levels_staged = bool(exempt_services) or (
        incoming_final == 'encrypt' and 'smtpd_tls_security_level' in level_params
        and any(service in services for service in settings['reinjection_services']))

    cert_files = _certificate_files(info, settings)
    cert_problems = _file_problems(cert_files, files)
    # files that are there but that OpenSSL cannot load as a certificate with its key
    # (postconf_info's smtpd_key_pairs): garbage, a key of another certificate, an encrypted key
    for pair in info.get('smtpd_key_pairs') or []:
        if isinstance(pair, Mapping) and pair.get('problem') and pair.get('cert') in cert_files:
            cert_problems.append('OpenSSL cannot load %s with the key %s (%s)'
                                 % (pair['cert'], pair.get('key') or pair['cert'], pair['problem']))
    cert_reason = '; '.join(cert_problems) if cert_files else NO_CERTIFICATE
    no_usable_certificate = not settings['skip_certificate_check'] and (not cert_files or bool(cert_problems))

    if outgoing_final in ('dane', 'dane-only') and str(expanded.get('smtp_dns_support_level') or '').lower() != 'dnssec':
        notes.append('smtp_tls_security_level=%s needs smtp_dns_support_level = dnssec (now "%s"): without it '
                     'Postfix cannot use DANE and falls back to a weaker level.'
                     % (outgoing_final, expanded.get('smtp_dns_support_level', '')))
    if incoming_final == 'may' and no_usable_certificate:
        notes.append('WARNING: smtpd_tls_security_level=may in %s, but %s. Postfix cannot offer working '
                     'STARTTLS, so mail from other servers arrives unencrypted. Configure a certificate and '
                     'key (enforce_tls_smtpd_cert_file, enforce_tls_smtpd_key_file), or set '
                     'enforce_tls_skip_certificate_check=true to silence this.' % (config_dir, cert_reason))
    if incoming_final == 'encrypt':
        notes.extend('%s is not a service in %s/master.cf: nothing to exempt from incoming TLS enforcement '
                     'there.' % (service, config_dir)
                     for service in settings['reinjection_services'] if service not in services)
        # an smtpd service with an empty -o content_filter is where a content filter hands mail
        # back (amavis: 127.0.0.1:10025/inet); at encrypt it refuses the filter's plaintext
        commands = info.get('service_commands') if isinstance(info.get('service_commands'), Mapping) else {}
        overrides = dict((service, dict(own)) for service, own in (info.get('service_parameters') or {}).items()
                         if isinstance(own, Mapping))
        for service in reinjection_candidates(overrides, commands, exempt=settings['reinjection_services']):
            notes.append('WARNING: %s in %s/master.cf looks like a content filter\'s re-injection service '
                         '(-o content_filter= with nothing after it, as amavis\'s 127.0.0.1:10025): at '
                         'smtpd_tls_security_level=encrypt it refuses mail the filter hands back without '
                         'STARTTLS ("530 5.7.0 Must issue a STARTTLS command first"). Add it to '
                         'enforce_tls_reinjection_services to exempt it.' % (service, config_dir))
    # master.cf -o overrides beat main.cf: services and transports the levels do not reach
    # (service_commands: postconf_info of an older collection does not return it)
    unenforced = []
    if isinstance(info.get('service_commands'), Mapping):
        after = dict(expanded, smtp_tls_security_level=outgoing_final, smtpd_tls_security_level=incoming_final)
        overrides = info.get('service_parameters') or {}
        notes.extend(service_level_notes(
            {'smtp': outgoing_final, 'smtpd': incoming_final}, after, overrides,
            info['service_commands'], config_dir, exempt=settings['reinjection_services'], table_path=map_path))
        # the smtpd programs (as logged) the incoming level does not reach: the preflight does
        # not count a client that sent plaintext only there
        unenforced = unenforced_smtpd_programs(incoming_final, after, overrides, info['service_commands'],
                                               exempt=settings['reinjection_services'])

    refusals = []
    plan = info.get('tls_policy_plan')
    if isinstance(plan, Mapping) and plan.get('failed'):
        # the table planned in the same read (postconf_info's tls_policy_plan) was refused
        # by tls_policy's checks: an entry Postfix cannot use, a map type it lacks, ...
        refusals.append('TLS policy table %s: %s' % (plan.get('path') or map_path, plan.get('msg', '')))
    elif isinstance(plan, Mapping) and isinstance(plan.get('changed_values'), Mapping) \
            and not settings['allow_downgrade']:
        # the no-downgrade rule of the global levels, as a warning for the table's entries:
        # an inventory change that lowers a destination is written (it is what the inventory
        # says), and said out loud, so a convergence check with --fail-on-warnings stops on it
        changed = dict((str(key), dict(value)) for key, value in plan['changed_values'].items()
                       if isinstance(value, Mapping))
        lowered = lowered_entries(changed, outgoing_final)
        if lowered:
            shown = ['%s %s -> %s' % (key, before, after or 'no entry (smtp_tls_security_level=%s)' % outgoing_final)
                     for key, before, after in lowered[:10]]
            notes.append('WARNING: this run lowers the TLS policy of %d destination%s in %s: %s%s. Mail to %s '
                         'is then sent with weaker TLS or in plaintext. Set enforce_tls_allow_downgrade=true '
                         'when that is intended.'
                         % (len(lowered), '' if len(lowered) == 1 else 's', plan.get('path') or map_path,
                            ', '.join(shown), ' (and %d more)' % (len(lowered) - 10) if len(lowered) > 10 else '',
                            'it' if len(lowered) == 1 else 'them'))
    levels_read = info.get('tls_policy_levels')
    if isinstance(levels_read, Mapping) and levels_read.get('failed'):
        # the preflight worked out in the same read (postconf_info's tls_policy_levels) could
        # not look the levels up, read the log or probe: at fail nothing is written unchecked,
        # at warn the change goes ahead with the warning
        problem = 'the preflight could not work out what this change does to mail on this host: %s' \
            % levels_read.get('msg', '')
        if settings['preflight'] == 'fail':
            refusals.append('Preflight (enforce_tls_preflight=fail): nothing was changed; %s. Fix that, or set '
                            'enforce_tls_preflight=warn (or off).' % problem)
        else:
            notes.append('WARNING: %s. Nothing was probed; the change goes ahead (enforce_tls_preflight=%s).'
                         % (problem[0].upper() + problem[1:], settings['preflight']))
    if incoming_final == 'encrypt' and no_usable_certificate:
        # at encrypt a missing certificate is an outage: smtpd answers STARTTLS with 454
        refusals.append('Refusing smtpd_tls_security_level=encrypt in %s: %s. Postfix would answer STARTTLS '
                        'with "454 4.7.0 TLS not available due to local problem" and accept no mail at all. '
                        'Configure a certificate and key (enforce_tls_smtpd_cert_file, '
                        'enforce_tls_smtpd_key_file) or set enforce_tls_skip_certificate_check=true.'
                        % (config_dir, cert_reason))

    return dict(
        readable=True,
        current_outgoing=levels['outgoing'][0],
        current_incoming=levels['incoming'][0],
        outgoing_final=outgoing_final,
        incoming_final=incoming_final,
        incoming_raised=raises_smtpd_to_encrypt(levels['incoming'][0], incoming_final),
        level_params=level_params,
        maps_d_dir=maps_d_dir,
        maps_d_dir_write=bool(settings['maps_d_dir']) or maps_d_dir_host == '',
        map_type=map_type,
        map_path=map_path,
        map_dir=map_dir,
        map_dir_missing=not (files.get(map_dir) or {'exists': True}).get('exists'),
        map_reference=map_reference,
        cert_params=cert_params,
        exempt_services=exempt_services,
        levels_staged=levels_staged,
        unenforced_smtpd_programs=unenforced,
        smtpd_cert_files=cert_files,
        cert_problems=cert_problems,
        cert_reason=cert_reason,
        notes=notes,
        refusals=refusals,
    )


# -- enforce_tls_input_problems ------------------------------------------------------

NEXTHOP = re.compile(r'^\S+$')
MASTER_SERVICE = re.compile(r'^[^/\s]+/(inet|unix|unix-dgram|fifo|pass)$')
ABSOLUTE_PATH = re.compile(r'^/[^$\s]*$')
PREFLIGHT_DESTINATION = re.compile(r'^[^\s,]+$')


def _json(value):
    return json.dumps(value, default=str)


def _all_match(values, pattern):
    return _is_list(values) and all(isinstance(v, str) and pattern.match(v) for v in values)


def _path_ok(value):
    return value == '' or (isinstance(value, str) and bool(ABSOLUTE_PATH.match(value)))


def _policy_value_problems(sources):
    """'LABEL[INDEX]: why' for each entry of SOURCES (shapes valid) that tls_policy_values
    refuses: an option it does not have, a value of the wrong type, a level or attribute the
    policy grammar refuses."""
    found = []
    for label, value in _sources(sources):
        for index, entry in enumerate(value):
            try:
                tls_policy_values([entry])
            except AnsibleFilterError as e:
                text = str(e)
                prefix = 'tls_policy_values: entries[0]'
                found.append('%s[%d]%s' % (label, index, text[len(prefix):] if text.startswith(prefix) else ': ' + text))
    return found


def enforce_tls_input_problems(sources, settings):
    """What is wrong with the role mailgw.postfix_tls.enforce_tls's input, one message
    per group of settings (an empty list when all is well).

    SOURCES are the policy lists (as for tls_policy_problems); SETTINGS maps
    the role's variables without the ``enforce_tls_`` prefix: internal_nexthops,
    reinjection_services, map_path, maps_d_dir, preflight,
    preflight_destinations, preflight_timeout, preflight_log_window,
    preflight_max, preflight_concurrency. Each message names the variable, the rule and the value.
    """
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError('enforce_tls_input_problems expects a mapping of settings, got %s'
                                 % type(settings).__name__)
    get = settings.get
    problems = []
    bad = tls_policy_problems(sources)
    if bad:
        listed = ''.join('%s: %s; ' % (label, _json(value)) for label, value in bad[:20])
        more = '(and %d more); ' % (len(bad) - 20) if len(bad) > 20 else ''
        problems.append('%d policy entr%s not valid: %s%seach entry must be a mapping with a non-empty '
                        '`destination` and, unless `state: absent`, a `level` (fields as in '
                        'mailgw.postfix_tls.tls_policy).'
                        % (len(bad), 'y is' if len(bad) == 1 else 'ies are', listed, more))
    else:
        # the entries' contents, as tls_policy_values (the read's arguments) would refuse them:
        # every one named by its variable and index, instead of the first stopping the read
        wrong = _policy_value_problems(sources)
        if wrong:
            problems.append('%d policy entr%s not valid: %s%s'
                            % (len(wrong), 'y is' if len(wrong) == 1 else 'ies are', '; '.join(wrong[:20]),
                               ' (and %d more)' % (len(wrong) - 20) if len(wrong) > 20 else ''))
    nexthops, services = get('internal_nexthops', []), get('reinjection_services', [])
    map_path, maps_d_dir = get('map_path', ''), get('maps_d_dir', '')
    preflight = get('preflight', 'off')
    destinations = get('preflight_destinations', [])
    timeout, window, limit = get('preflight_timeout', 10), get('preflight_log_window', ''), get('preflight_max', 0)
    concurrency = get('preflight_concurrency', 4)
    # one message per bad variable, naming its rule and its value (the good ones are not listed)
    checks = [
        (_all_match(nexthops, NEXTHOP), 'enforce_tls_internal_nexthops must be a list of next-hop strings '
         'like "[127.0.0.1]:10025"', nexthops),
        (_all_match(services, MASTER_SERVICE), 'enforce_tls_reinjection_services must be a list of master.cf '
         'services written NAME/TYPE like "127.0.0.1:10026/inet"', services),
        (_path_ok(map_path), 'enforce_tls_map_path must be empty or an absolute path without $variables', map_path),
        (_path_ok(maps_d_dir), 'enforce_tls_maps_d_dir must be empty or an absolute path without $variables',
         maps_d_dir),
        (preflight in ('off', 'warn', 'fail'), 'enforce_tls_preflight must be off, warn or fail', preflight),
        (_all_match(destinations, PREFLIGHT_DESTINATION), "enforce_tls_preflight_destinations must be a list of "
         "destinations in the policy table's key forms, like \"example.com\" or \"[mx.example.com]:25\", "
         "without spaces", destinations),
        (bool(re.match(r'^[1-9][0-9]*$', str(timeout))), 'enforce_tls_preflight_timeout must be a positive '
         'number of seconds', timeout),
        (bool(re.match(r'^([0-9]+[smhdw])?$', str(window))), 'enforce_tls_preflight_log_window must be a window '
         'like 12h or 7d, or empty', window),
        (bool(re.match(r'^[0-9]+$', str(limit))), 'enforce_tls_preflight_max must be a number of destinations',
         limit),
        (bool(re.match(r'^[1-9][0-9]*$', str(concurrency))), 'enforce_tls_preflight_concurrency must be a '
         'positive number of probes at a time', concurrency),
    ]
    problems.extend('Bad value: %s (got %s).' % (rule, _json(value)) for ok, rule, value in checks if not ok)
    mode = _special_mode_bits(get('map_mode'))
    if mode is not None:
        problems.append('Bad value: enforce_tls_map_mode %s gives the policy table and its index the setuid, '
                        'setgid or sticky bit (mode %s): an unquoted 644 in YAML is the decimal number 644, '
                        'which ansible-core 2.19 passes on as mode 01204; quote it, "0644" (got %s).'
                        % (_json(get('map_mode')), mode, _json(get('map_mode'))))
    return problems


def _special_mode_bits(mode):
    """The mode as octal text when MODE (a number, or a string of octal digits as Ansible reads
    it) sets bits above 0777, else None; symbolic modes and None pass."""
    if isinstance(mode, bool) or mode is None:
        return None
    if isinstance(mode, int):
        value = mode
    elif isinstance(mode, str) and re.match(r'^0?[0-7]{3,4}$', mode.strip()):
        value = int(mode.strip(), 8)
    else:
        return None
    return '0%o' % value if value & ~0o777 else None


class FilterModule:
    """mailgw.postfix_tls filters."""

    def filters(self):
        return {
            'tls_policy_problems': tls_policy_problems,
            'merge_tls_policies': merge_tls_policies,
            'current_tls_level': current_tls_level,
            'tls_level_rank': tls_level_rank,
            'postfix_list': postfix_list,
            'policy_maps_with_table': policy_maps_with_table,
            'tls_policy_values': tls_policy_values,
            'tls_preflight_report': tls_preflight_report,
            'enforce_tls_decision': enforce_tls_decision,
            'enforce_tls_input_problems': enforce_tls_input_problems,
            'enforce_tls_table': enforce_tls_table,
        }
