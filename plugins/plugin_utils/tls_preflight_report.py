# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The enforce_tls preflight report: the filter mailgw.postfix_tls.tls_preflight_report
(plugins/filter/postfix_tls.py imports this only when the filter is used).
"""

from collections.abc import Mapping

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    level_rank,
    raises_smtpd_to_encrypt,
)


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
