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

Each filter imports what it needs when it is called, not at the top: every task runs
in a worker process of its own, which loads this file again, and Ansible's collection
loader compiles each file of the collection it imports from source (no bytecode cache).
A role task that merges policies should not compile the decision, the preflight report
and the policy grammar. The decision and the preflight report live in plugin_utils.
"""

from collections.abc import Iterable, Mapping

import json
import os
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.validation import check_type_bool, check_type_list, check_type_str

# the sides of postconf_params.LEVEL_RANKS (the SMTP client and the SMTP server)
SIDES = ('smtp', 'smtpd')

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
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import fold_key

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
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import tls_security_level

    side = _side(side)
    if not isinstance(parameters, Mapping):
        raise AnsibleFilterError('current_tls_level expects a mapping of parameter names to values, got %s'
                                 % type(parameters).__name__)
    return tls_security_level(parameters, side)


def tls_level_rank(level, side):
    """Strictness of LEVEL on SIDE (smtp or smtpd): 0 for none upwards, -1 when unknown."""
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import level_rank

    return level_rank(level, _side(side))


def postfix_list(value):
    """Split a Postfix list value (commas and whitespace; {...} kept together)."""
    if value is None:
        return []
    if not isinstance(value, str):
        raise AnsibleFilterError('postfix_list expects a string, got %s' % type(value).__name__)
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import split_list

    return split_list(value)


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
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import maps_value_with_table

    try:
        return maps_value_with_table(current, table, current_expanded, table_expanded)
    except ValueError as e:
        raise AnsibleFilterError('policy_maps_with_table: %s' % e)


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
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import PolicyError, build_policy

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
    """The enforce_tls preflight report (plugin_utils.tls_preflight_report)."""
    from ansible_collections.mailgw.postfix_tls.plugins.plugin_utils.tls_preflight_report import tls_preflight_report as report

    return report(levels, probes, mode, host, incoming)


def enforce_tls_table(settings):
    """The policy table the role mailgw.postfix_tls.enforce_tls writes, as postconf_info's
    tls_policy_plan takes it: path and map_type, with $name references to main.cf
    parameters where they depend on the host (SETTINGS as for enforce_tls_decision)."""
    from ansible_collections.mailgw.postfix_tls.plugins.plugin_utils.enforce_tls_settings import decision_settings, table_template

    return table_template(decision_settings(settings, 'enforce_tls_table'))


def enforce_tls_decision(info, settings):
    """What the role mailgw.postfix_tls.enforce_tls writes on one host, and what it refuses
    (plugin_utils.enforce_tls_decision)."""
    from ansible_collections.mailgw.postfix_tls.plugins.plugin_utils.enforce_tls_decision import enforce_tls_decision as decide

    return decide(info, settings)


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
