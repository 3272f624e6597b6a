# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TLS levels master.cf services really run with, where their ``-o`` overrides undercut
main.cf's.

An ``-o name=value`` override in master.cf beats main.cf for that service's processes
(master_spawn passes it on the command line). So a level raised in main.cf does not reach:

- an SMTP server (``smtpd``) service with ``-o smtpd_tls_security_level=may`` (or ``none``,
  or the obsolete ``smtpd_use_tls``/``smtpd_enforce_tls`` when the level is empty): it
  accepts mail without TLS. ``smtpd_tls_wrappermode = yes`` turns TLS on before SMTP
  starts, whatever the level (smtpd.c), so such a service is never weaker than encrypt;
- an SMTP client (``smtp``) transport with ``-o smtp_tls_security_level=...`` weaker than
  main.cf's: every destination without a policy entry gets that level on this transport;
  with ``-o smtp_tls_policy_maps=...`` that does not list the policy table, the table's
  entries do not apply to its mail either. That holds for the transports remote mail takes
  by default (default_transport, relay_transport) and for any other one transport_maps or a
  sender-dependent map routes mail to; a content filter's transport (content_filter) hands
  mail to a filter on this host and is left alone.

Pure functions over what postconf_info reads: main.cf values (expanded), ``postconf -P``
overrides (as written) and ``postconf -M`` commands, each keyed by ``SERVICE/TYPE``.
"""

from __future__ import annotations

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import parse_map_list
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    SMTP_LEVEL_PARAMETERS,
    SMTPD_LEVEL_PARAMETERS,
    expand_references,
    level_rank,
    postfix_yes,
    tls_security_level,
    weaker_somewhere,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import split_list

# What tls_security_level reads on each side (the level, then the obsolete settings)
LEVEL_PARAMETERS = {'smtp': SMTP_LEVEL_PARAMETERS, 'smtpd': SMTPD_LEVEL_PARAMETERS}

# inet services whose address is the loopback: only this host reaches them
LOOPBACK_PREFIXES = ('127.', '[::1]:', '::1:', 'localhost:', '[127.')


def _expanded(value, values):
    """VALUE with $name references expanded from VALUES, or None when it names one they lack."""
    try:
        return expand_references(value, values)
    except (KeyError, ValueError):
        return None


def service_settings(service, overrides, values, names):
    """VALUES (main.cf, expanded) with SERVICE's ``-o`` overrides of NAMES (expanded too),
    and the names it overrides; None when an override cannot be expanded from VALUES."""
    own = overrides.get(service) or {}
    merged = dict(values)
    changed = []
    for name in names:
        if name in own:
            value = _expanded(own[name], values)
            if value is None:
                return None, []
            merged[name] = value
            changed.append(name)
    return merged, changed


def _is_loopback(service):
    return service.startswith(LOOPBACK_PREFIXES)


def weaker_smtpd_services(level, values, overrides, commands, exempt=()):
    """[(service, its level, the overrides that set it)] for the SMTP server services whose
    ``-o`` overrides leave them weaker than LEVEL (main.cf's smtpd level after the run):
    smtpd services of master.cf (inet, pass or unix), not in EXEMPT (the re-injection
    services) and not listening on the loopback only, without wrapper mode."""
    found = []
    wanted = level_rank(level, 'smtpd')
    names = LEVEL_PARAMETERS['smtpd'] + ('smtpd_tls_wrappermode',)
    for service in sorted(commands):
        if commands[service] != 'smtpd' or service in exempt or _is_loopback(service):
            continue
        settings, changed = service_settings(service, overrides, values, names)
        if settings is None or not [n for n in changed if n in LEVEL_PARAMETERS['smtpd']]:
            continue
        if postfix_yes(settings.get('smtpd_tls_wrappermode')):
            continue
        own = tls_security_level(settings, 'smtpd')
        if level_rank(own, 'smtpd') < wanted:
            found.append((service, own, dict((n, (overrides[service] or {})[n]) for n in changed)))
    return found


def reinjection_candidates(overrides, commands, exempt=()):
    """The inet smtpd services that look like a content filter's re-injection service (an
    ``-o content_filter=`` with nothing after it, as amavis's 127.0.0.1:10025) and keep no
    TLS level of their own, EXEMPT aside, sorted: at smtpd_tls_security_level=encrypt they
    refuse the mail the filter hands back without STARTTLS."""
    found = []
    for service, own in sorted((overrides or {}).items()):
        if not isinstance(own, dict) or not service.endswith('/inet') or commands.get(service) != 'smtpd':
            continue
        if 'content_filter' in own and not str(own['content_filter']).strip() \
                and 'smtpd_tls_security_level' not in own and service not in exempt:
            found.append(service)
    return found


def smtpd_program(service, values, overrides):
    """The program name SERVICE's smtpd logs under: its ``-o syslog_name`` (``$service_name``
    expanded), else main.cf's syslog_name, then ``/smtpd``; None when it cannot be expanded."""
    own = (overrides.get(service) or {}).get('syslog_name')
    if own is None:
        return '%s/smtpd' % (values.get('syslog_name') or 'postfix')
    name = _expanded(own, dict(values, service_name=service.rsplit('/', 1)[0], process_name='smtpd'))
    return '%s/smtpd' % name if name else None


def unenforced_smtpd_programs(level, values, overrides, commands, exempt=()):
    """The smtpd program names (as logged, ``postfix/submission/smtpd``) under which only
    services log that LEVEL (main.cf's smtpd level after the run) does not reach: exempt
    (re-injection), listening on the loopback only, or weaker by their own ``-o`` overrides
    (weaker_smtpd_services). A client that sent plaintext only there is not refused. A
    program shared with an enforced service, or one that cannot be worked out, is left out."""
    weaker = set(service for service, _own, _written in weaker_smtpd_services(level, values, overrides, commands))
    programs = {}
    for service in sorted(commands):
        if commands[service] != 'smtpd':
            continue
        program = smtpd_program(service, values, overrides)
        unenforced = service in exempt or _is_loopback(service) or service in weaker
        programs.setdefault(program, []).append(unenforced)
    return sorted(program for program, flags in programs.items() if program and all(flags))


def transport_name(value):
    """The master.cf service of a transport setting (``smtp:[relay]:587`` -> ``smtp``)."""
    return str(value or '').strip().split(':', 1)[0]


def remote_transports(values):
    """The transports main.cf sends remote mail through: default_transport, and
    relay_transport when relay_domains lists anything."""
    names = [transport_name(values.get('default_transport') or 'smtp')]
    if split_list(values.get('relay_domains') or ''):
        names.append(transport_name(values.get('relay_transport') or 'relay'))
    return [name for i, name in enumerate(names) if name and name not in names[:i]]


def content_filter_transports(values, overrides):
    """The transports content filters take mail through: main.cf's content_filter and every
    master.cf service's ``-o content_filter`` (``smtp-amavis:[127.0.0.1]:10024`` ->
    ``smtp-amavis``, $name references expanded from VALUES). Such a transport hands mail to a
    filter on this host that re-injects it; the levels are not for it."""
    names = [transport_name(values.get('content_filter'))]
    for own in overrides.values():
        if (own or {}).get('content_filter'):
            names.append(transport_name(_expanded(own['content_filter'], values)))
    return sorted(set(name for name in names if name))


def routed_smtp_transports(values, overrides, commands):
    """The other SMTP client transports of master.cf (unix services that run smtp): neither
    what remote mail takes by default (remote_transports) nor a content filter's
    (content_filter_transports). Mail reaches them where transport_maps, a sender-dependent
    map or an ``-o`` override routes it, which the configuration alone does not tell."""
    skip = set(remote_transports(values)) | set(content_filter_transports(values, overrides))
    return [service.rsplit('/', 1)[0] for service in sorted(commands)
            if commands[service] == 'smtp' and service.endswith('/unix') and service.rsplit('/', 1)[0] not in skip]


def lists_table(maps, table_path):
    """Whether the smtp_tls_policy_maps value MAPS lists the table at TABLE_PATH (under any
    type, proxy: or not)."""
    return any(spec.name == table_path for spec in parse_map_list(maps or ''))


def weaker_smtp_transports(level, values, overrides, commands, table_path=None, transports=None):
    """[(service, its level or None, the overrides, whether it bypasses the table)] for the
    SMTP client TRANSPORTS (default: those remote mail takes, remote_transports) whose ``-o``
    overrides set a level weaker than LEVEL (main.cf's after the run), or an
    smtp_tls_policy_maps that does not list TABLE_PATH (the policy table: its entries do not
    apply there)."""
    found = []
    names = LEVEL_PARAMETERS['smtp'] + ('smtp_tls_policy_maps',)
    for name in (remote_transports(values) if transports is None else transports):
        service = '%s/unix' % name
        if commands.get(service) != 'smtp':
            continue
        settings, changed = service_settings(service, overrides, values, names)
        if settings is None or not changed:
            continue
        own = None
        if [n for n in changed if n in LEVEL_PARAMETERS['smtp']]:
            own = tls_security_level(settings, 'smtp')
            if not weaker_somewhere(own, level, 'smtp'):
                own = None
        bypass = bool(table_path) and 'smtp_tls_policy_maps' in changed and not lists_table(
            settings.get('smtp_tls_policy_maps'), table_path)
        if own is not None or bypass:
            found.append((service, own, dict((n, overrides[service][n]) for n in changed), bypass))
    return found


def _written(own):
    return ' '.join('-o %s=%s' % (name, value) for name, value in sorted(own.items()))


def _transport_said(own, bypass, level, table_path):
    """What a weaker SMTP client transport does (weaker_smtp_transports' OWN and BYPASS)."""
    said = []
    if own is not None:
        said.append('sends mail to destinations without a policy entry at TLS level "%s", not the "%s" '
                    'of main.cf' % (own, level))
    if bypass:
        said.append('does not look up the policy table %s (its smtp_tls_policy_maps is its own)' % table_path)
    return ' and '.join(said)


def service_level_notes(levels, values, overrides, commands, config_dir, exempt=(), table_path=None):
    """Warnings (text) for the services weaker_smtpd_services and weaker_smtp_transports
    find (the transports remote mail takes, then the others: routed_smtp_transports).
    LEVELS: {'smtp': level, 'smtpd': level}, main.cf's after the run."""
    notes = []
    for service, own, written in weaker_smtpd_services(levels['smtpd'], values, overrides, commands, exempt):
        notes.append(
            'WARNING: %s/master.cf service %s runs smtpd with %s: it accepts mail at TLS level "%s", '
            'not the "%s" of main.cf (an -o override beats main.cf). Remove the override, or list the '
            'service in enforce_tls_reinjection_services when only a content filter delivers to it.'
            % (config_dir, service, _written(written), own, levels['smtpd']))
    weaker = weaker_smtp_transports(levels['smtp'], values, overrides, commands, table_path)
    for service, own, written, bypass in weaker:
        notes.append(
            'WARNING: %s/master.cf transport %s (the SMTP client remote mail takes) runs with %s: it %s '
            '(an -o override beats main.cf). Remove the override to enforce the levels on it.'
            % (config_dir, service, _written(written), _transport_said(own, bypass, levels['smtp'], table_path)))
    routed = weaker_smtp_transports(levels['smtp'], values, overrides, commands, table_path,
                                    routed_smtp_transports(values, overrides, commands))
    for service, own, written, bypass in routed:
        notes.append(
            'WARNING: %s/master.cf transport %s (an SMTP client for the mail transport_maps, a '
            'sender-dependent map or another *_transport setting sends there) runs with %s: it %s (an -o '
            'override beats main.cf). '
            'Remove the override to enforce the levels on it%s.'
            % (config_dir, service, _written(written), _transport_said(own, bypass, levels['smtp'], table_path),
               '' if bypass else ', or give the destinations routed to it policy entries'))
    return notes
