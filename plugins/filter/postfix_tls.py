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

import os

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.validation import check_type_bool, check_type_list, check_type_str

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    LEVEL_RANKS,
    level_rank,
    tls_security_level,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import fold_key, split_list
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


def _path_of(item):
    return item.split(':', 1)[-1]


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
    return items


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


def tls_preflight_report(levels, probes=None, mode='warn', host=None):
    """The enforce_tls preflight report from tls_policy_levels and tls_probe results.

    LEVELS is the registered result of mailgw.postfix_tls.tls_policy_levels
    (its ``destinations``; a skipped task gives none), PROBES the registered
    result of tls_probe (its ``destinations``, or ``results[].destinations``
    of a loop of tls_probe tasks). One item per
    destination of LEVELS, with the probe's findings merged in; a destination
    that cannot be reached at all defers at any level, so it is reported as
    unreachable, not as made to defer by this run.
    """
    levels = levels if isinstance(levels, Mapping) else {}
    probes = probes if isinstance(probes, Mapping) else {}
    found = {}
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
    return dict(
        mode=mode, host=host, destinations=merged, affected=affected,
        would_defer=[entry['destination'] for entry in bad],
        unreachable=[entry['destination'] for entry in merged if entry['reachable'] is False],
        summary=summary,
    )


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
        }
