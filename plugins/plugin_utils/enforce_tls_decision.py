# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the role mailgw.postfix_tls.enforce_tls writes on one host, and what it refuses:
the filter mailgw.postfix_tls.enforce_tls_decision (plugins/filter/postfix_tls.py
imports this only when the filter is used, so the role's other tasks do not load it).

Pure: the host's facts come from postconf_info's result, the Postfix rules from the
collection's module_utils.
"""

from collections.abc import Mapping

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import maps_value_with_table
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    expand_references,
    level_rank,
    lowered_entries,
    planned_level,
    postfix_yes,
    raises_smtpd_to_encrypt,
    smtpd_certificate_files,
    tls_security_level,
    tlsproxy_add_command,
    tlsproxy_deferral,
    tlsproxy_service,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.service_levels import (
    reinjection_candidates,
    service_level_notes,
    unenforced_smtpd_programs,
)
from ansible_collections.mailgw.postfix_tls.plugins.plugin_utils.enforce_tls_settings import (
    TABLE_REFERENCES,
    decision_settings,
    maps_d_dir_template,
    table_template,
)

NO_CERTIFICATE = ('no smtpd certificate is configured (smtpd_tls_cert_file, smtpd_tls_eccert_file '
                  'and smtpd_tls_chain_files are empty)')


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


def _tlsproxy_problem(expanded, services, outgoing):
    """(Why the SMTP client cannot start TLS at all, the fix), or None: main.cf's
    smtp_tls_connection_reuse = yes hands every TLS connection (an entry without
    connection_reuse, the global level: smtp_tls_policy.c policy_create) to the tlsproxy
    service tlsproxy_service_name names (smtp_proto.c smtp_start_tls, tls_proxy_clnt.c);
    without it in master.cf (SERVICES: postconf_info's ``service/type`` list) the mail is
    deferred at level may too (the delivery oracle's tlsproxy rounds). Nothing at level none
    (OUTGOING), where the client never starts TLS."""
    if outgoing == 'none' or not postfix_yes(expanded.get('smtp_tls_connection_reuse')):
        return None
    name = tlsproxy_service(expanded)
    if '%s/unix' % name in services:
        return None
    return ('main.cf sets smtp_tls_connection_reuse = yes and master.cf has no %s service (tlsproxy_service_name): '
            'the SMTP client hands each TLS connection to it, %s.' % (name, tlsproxy_deferral(name)),
            'Add the service (%s), or set smtp_tls_connection_reuse = no.' % tlsproxy_add_command(name))


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
    settings = decision_settings(settings)
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

    # The table's path and type, and CipherMail's maps.d: the rules of table_template
    # (which the read's plan was given), expanded here with the same values as
    # postconf_info expanded them. maps_d_dir is written to main.cf when the inventory
    # gives one or main.cf has none.
    ciphermail = settings['layout'] == 'ciphermail'
    maps_d_dir_host = str(expanded.get('maps_d_dir') or '').strip()
    values = dict.fromkeys(TABLE_REFERENCES, '')
    values.update((name, str(value)) for name, value in expanded.items())
    maps_d_dir = expand_references(maps_d_dir_template(settings), values)
    template = table_template(settings)
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
    reuse_problem = _tlsproxy_problem(expanded, services, outgoing_final)
    if reuse_problem and levels['outgoing'][0] == 'none':
        # the run itself would make the SMTP client use TLS, and so tlsproxy
        refusals.append('Refusing smtp_tls_security_level=%s in %s: %s Raised from none, the level would '
                        'stop the mail to every server that offers STARTTLS. %s'
                        % ((outgoing_final, config_dir) + reuse_problem))
    elif reuse_problem:
        notes.append('WARNING: %s: %s This already defers the mail to every server that offers STARTTLS (the '
                     'run does not change that). %s' % ((config_dir,) + reuse_problem))
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

    # smtp_tls_policy_maps with the planned table in it (the table's written map replaces the
    # planned one in main_cf.yml), and whether the run writes anything at all: whatever changes
    # a lookup (the table, smtp_tls_policy_maps, the outgoing level), maps_d_dir, the table's
    # directory, the certificate files, master.cf services or the levels. Decided here, so a
    # converged host's last task (the include of change.yml) needs no filter of its own.
    plan = plan if isinstance(plan, Mapping) else {}
    current_maps = str(parameters.get('smtp_tls_policy_maps') or '')
    planned_map = str(plan.get('map') or '')
    policy_maps = None
    if planned_map:
        policy_maps = maps_value_with_table(current_maps, map_reference or planned_map,
                                            str(expanded.get('smtp_tls_policy_maps') or ''), planned_map)
    map_dir_missing = not (files.get(map_dir) or {'exists': True}).get('exists')
    writes = bool(
        plan.get('table_differs', True) or 'smtp_tls_security_level' in level_params
        or (policy_maps is not None and policy_maps != current_maps)
        or (ciphermail and (bool(settings['maps_d_dir']) or maps_d_dir_host == ''))
        or map_dir_missing or cert_params or exempt_services or level_params)

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
        map_dir_missing=map_dir_missing,
        map_reference=map_reference,
        policy_maps=policy_maps,
        writes=writes,
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
