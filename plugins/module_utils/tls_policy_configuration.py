# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Cross-checks of TLS policy entries against the rest of the Postfix configuration.

Pure Python, no Ansible imports. An entry can be grammatically fine and
still make the SMTP client defer mail because of main.cf or master.cf:

* a ``fingerprint`` digest whose length does not fit
  ``smtp_tls_fingerprint_digest`` (tls_policy_grammar.configuration_problems);
* ``dane``/``dane-only`` without DNSSEC lookups (``smtp_dns_support_level``)
  or without DNS lookups at all (``smtp_host_lookup``): Postfix logs
  "dane-only configured with dnssec lookups disabled" and defers
  ``dane-only`` (``dane`` silently falls back);
* a ``tafile`` the smtp client cannot open: it reads the file when the policy
  is looked up, inside its chroot (master.cf chroot column ``y``, rooted at
  ``queue_directory``), as ``mail_owner``;
* ``dane``/``dane-only`` for an address literal (``[192.0.2.1]``): no TLSA
  records are ever found for an IP next hop (tls_policy_grammar.key_level_problems);
* ``connection_reuse=yes`` without the ``tlsproxy`` service in master.cf (Debian ships it
  commented out), or rather the service ``tlsproxy_service_name`` names: the SMTP client
  connects to ``private/$tlsproxy_service_name`` (tls_proxy_clnt.c) and defers the mail
  when nothing listens there, at level may too; an entry without ``connection_reuse``
  (above level none) takes main.cf's ``smtp_tls_connection_reuse`` (smtp_tls_policy.c
  policy_create), so with that at ``yes`` it needs the service too;
* ``ciphers=``/``exclude=`` that leave the SMTP client no cipher: its cipher list
  (the grade's ``tls_*_cipherlist`` with ``:!`` and each exclusion, smtp_tls_policy.c
  set_cipher_grade and tls_misc.c tls_set_ciphers) is asked of OpenSSL through Python's
  ``ssl`` on the host; when it selects no TLS 1.2 cipher Postfix logs "error setting
  cipher grade" and "no cipher match" and aborts TLS (``ciphers=high exclude=HIGH``, or
  ``exclude=HIGH`` at grade medium with OpenSSL 3, whose MEDIUM is empty);
* an entry for a domain whose mail trivial-rewrite sends to another next hop
  (mail_routing): the ``relayhost`` when no ``transport_maps`` entry routes
  the domain otherwise, a next hop in ``default_transport``, or a
  ``transport_maps`` entry with one (``example.com smtp:[relay.example.net]:587``,
  also through a parent-domain or ``*`` key): the SMTP client looks up that
  next hop's entry, never this one; or a domain whose mail no SMTP client
  takes: in ``mydestination`` (``local_transport``), ``virtual_mailbox_domains``
  (``virtual_transport``) or ``virtual_alias_domains`` (refused unless an alias
  rewrote the address), or routed to ``discard``, ``lmtp``, ... (a warning,
  ``route_warnings``; only when the route holds for all mail: no
  sender-dependent relayhost or default transport, every table readable with
  ``postmap -q``).

``configuration_checks`` returns ``(errors, warnings)``; every message names
the destination, the parameter and the fix.
"""

import grp
import os
import pwd
import re

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_routing import (
    LOCAL,
    ROUTE_PARAMETERS,
    VIRTUAL,
    is_domain,
    not_smtp,
    service_commands,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    master_entries,
    parse_services,
    postfix_yes,
    tlsproxy_add_command,
    tlsproxy_deferral,
    tlsproxy_service,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import fold_key
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    configuration_problems,
    key_level_problems,
)

# main.cf values of the SMTP client's cipher list (smtp_cipher_list); Postfix 3.12 has no
# low and export grades (an unknown name is left out of the read)
CIPHER_PARAMETERS = ('smtp_tls_ciphers', 'smtp_tls_mandatory_ciphers', 'smtp_tls_exclude_ciphers',
                     'smtp_tls_mandatory_exclude_ciphers', 'tls_high_cipherlist', 'tls_medium_cipherlist',
                     'tls_low_cipherlist', 'tls_export_cipherlist', 'tls_null_cipherlist')
# main.cf values the cross-checks read (one ``postconf -x -h`` call)
CROSS_CHECK_PARAMETERS = ('smtp_tls_fingerprint_digest', 'smtp_dns_support_level',
                          'smtp_host_lookup', 'queue_directory', 'mail_owner', 'tlsproxy_service_name',
                          'smtp_tls_connection_reuse') \
    + ROUTE_PARAMETERS + CIPHER_PARAMETERS
# tls_misc.c tls_set_ciphers: exclusions are split on commas, blanks and colons
CIPHER_SEPARATORS = re.compile(r'[,\s:]+')


def needs_configuration(policies):
    """Whether any (key, Policy) pair needs the configuration read at all (main.cf: every
    entry for a domain, for the relayhost check; every entry above level none, for
    smtp_tls_connection_reuse)."""
    return any(_checked(policy) or policy.level != 'none' or is_domain(key) for key, policy in policies)


def needs_master(policies, settings=None):
    """Whether any (key, Policy) pair needs master.cf read (``postconf -M``), with main.cf
    SETTINGS when they were read (smtp_tls_connection_reuse)."""
    return any(policy.get('tafile') or _reuses_connections(policy, settings) for key, policy in policies)


def _checked(policy):
    return policy.level in ('fingerprint', 'dane', 'dane-only') or bool(policy.get('tafile')) \
        or _sets_ciphers(policy)


def _sets_ciphers(policy):
    return bool(policy.get('ciphers') or policy.get('exclude'))


def smtp_cipher_list(policy, settings):
    """The OpenSSL cipher list the SMTP client sets for POLICY with main.cf SETTINGS
    (CIPHER_PARAMETERS, expanded), or None at level none or for a grade main.cf has no list
    for (the grammar refuses those).

    smtp_tls_policy.c set_cipher_grade: the entry's ``ciphers`` grade, else smtp_tls_ciphers
    at level may and smtp_tls_mandatory_ciphers above it; the entry's ``exclude`` replaces
    smtp_tls_exclude_ciphers (and above may smtp_tls_mandatory_exclude_ciphers); encrypt
    also excludes eNULL, the levels that authenticate the server aNULL. tls_misc.c
    tls_set_ciphers: the grade's tls_GRADE_cipherlist, then ``:!NAME`` for each exclusion.
    """
    level = policy.level
    if level == 'none':
        return None
    given = policy.get('ciphers')
    if level == 'may':
        grade = given[0] if given else settings.get('smtp_tls_ciphers', '')
        main_cf = [settings.get('smtp_tls_exclude_ciphers', '')]
        also = ''
    else:
        grade = given[0] if given else settings.get('smtp_tls_mandatory_ciphers', '')
        main_cf = [settings.get('smtp_tls_exclude_ciphers', ''), settings.get('smtp_tls_mandatory_exclude_ciphers', '')]
        also = 'eNULL' if level == 'encrypt' else 'aNULL'
    base = (settings.get('tls_%s_cipherlist' % (grade or '').strip().lower()) or '').strip()
    if not base:
        return None
    exclusions = ' '.join(policy.get('exclude') or main_cf) + ' ' + also
    return base + ''.join(':!' + name for name in CIPHER_SEPARATORS.split(exclusions) if name)


def cipher_problems(policy, settings):
    """Why the SMTP client's cipher list for POLICY selects no cipher with this host's
    OpenSSL (asked through Python's ssl, SSL_CTX_set_cipher_list: it fails without a TLS 1.2
    cipher, as Postfix's SSL_set_cipher_list does), or nothing when it selects one or
    cannot be asked."""
    if not _sets_ciphers(policy):
        return []
    cipher_list = smtp_cipher_list(policy, settings)
    if cipher_list is None:
        return []
    try:
        import ssl
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    except (ImportError, AttributeError, ValueError):
        return []
    try:
        context.set_ciphers(cipher_list)
    except ssl.SSLError:
        # checked with Postfix 3.7 and OpenSSL 3.0: deferred at may too (no plaintext retry)
        return ['%s leaves no cipher: the SMTP client\'s cipher list %s selects none with %s (Python\'s ssl '
                'on this host), so Postfix logs "error setting cipher grade" and "no cipher match", aborts '
                'TLS and defers the mail ("Cannot start TLS: handshake failure"), at level %s too. Exclude '
                'less, or choose another grade (ciphers=)'
                % (' '.join('%s=%s' % (name, value) for name, value in policy.attributes
                            if name in ('ciphers', 'exclude')),
                   cipher_list, ssl.OPENSSL_VERSION, policy.level)]
    return []


def _reuses_connections(policy, settings=None):
    """Whether the SMTP client hands POLICY's TLS connections to tlsproxy: the entry's
    connection_reuse (the last one wins when an existing line repeats it), else main.cf's
    smtp_tls_connection_reuse (SETTINGS, when given; smtp_tls_policy.c policy_create);
    never at level none."""
    if policy.level == 'none':
        return False
    values = policy.get('connection_reuse')
    if values:
        return values[-1].lower() == 'yes'
    return bool(settings) and postfix_yes(settings.get('smtp_tls_connection_reuse'))


def no_tlsproxy_message(settings, by_default=False):
    """Why connection_reuse=yes cannot work, naming the service main.cf SETTINGS point at;
    BY_DEFAULT: the entry reuses connections because main.cf's smtp_tls_connection_reuse says so.

    Checked with Postfix 3.7 on Debian, whose master.cf has the service commented out (3.5 to
    3.11): deferred at level may too; the delivery oracle's tlsproxy rounds (no service, one of
    another name, main.cf naming a missing one, smtp_tls_connection_reuse = yes) on 3.5, 3.7,
    3.10 and 3.11."""
    name = tlsproxy_service(settings)
    add = tlsproxy_add_command(name)
    if by_default:
        cause = ('main.cf sets smtp_tls_connection_reuse = yes and the entry does not say connection_reuse, '
                 'so the SMTP client hands its TLS connections to the %s service, which master.cf lacks: it'
                 % name)
        fix = 'Add the service (%s), or give the entry connection_reuse=no' % add
        also = ', as all its TLS mail'
    elif name == 'tlsproxy':
        cause = ('connection_reuse=yes needs the tlsproxy service in master.cf, which Debian ships commented '
                 'out (#tlsproxy unix - - y - 0 tlsproxy): without it the SMTP client')
        fix = 'Add it (%s), or leave connection_reuse out' % add
        also = ''
    else:
        cause = ('connection_reuse=yes needs the service tlsproxy_service_name names, %s, in master.cf: the '
                 'SMTP client connects to private/%s, and without it' % (name, name))
        fix = ('Add it (%s), set tlsproxy_service_name to the tlsproxy service master.cf has, or leave '
               'connection_reuse out' % add)
        also = ''
    return '%s %s%s. %s' % (cause, tlsproxy_deferral(name), also, fix)


# the attributes whose use in an existing line existing_line_problems checks; Postfix reads
# attribute names case-insensitively (smtp_tls_policy.c strcasecmp)
_LINE_CHECKED_ATTRIBUTES = ('ciphers', 'exclude', 'connection_reuse')


def may_need_configuration(value):
    """Whether an existing line's VALUE may name an attribute existing_line_problems checks (a
    cheap test on the text, before parsing it: false positives only cost a parse)."""
    lowered = value.lower()
    return any(name in lowered for name in _LINE_CHECKED_ATTRIBUTES)


def existing_line_problems(policy, read_settings, read_master_services):
    """Why main.cf or master.cf leave an existing line's POLICY unusable: ciphers or exclude
    that leave no cipher, connection_reuse=yes without the tlsproxy service. READ_SETTINGS()
    and READ_MASTER_SERVICES() are called only when needed."""
    problems = cipher_problems(policy, read_settings()) if _sets_ciphers(policy) else []
    if _reuses_connections(policy):
        # the line's own connection_reuse=yes (main.cf's default is not a line's problem)
        settings = read_settings()
        if not has_tlsproxy(read_master_services(), tlsproxy_service(settings)):
            problems.append(no_tlsproxy_message(settings))
    return problems


def smtp_client_services(master_services):
    """(``service/type``, chroot) of the master.cf services that run the smtp client,
    from ``postconf -M`` output."""
    return [('%s/%s' % (fields[0], fields[1]), fields[4]) for fields in master_entries(master_services)
            if len(fields) >= 8 and fields[7] == 'smtp' and fields[1] == 'unix']


def has_tlsproxy(master_services, name='tlsproxy'):
    """Whether ``postconf -M`` output lists the unix service NAME (the tlsproxy service the
    SMTP client connects to, tlsproxy_service)."""
    return (name, 'unix') in parse_services(master_services)


def readable_by(path, user):
    """Whether USER can read PATH by its mode bits (the smtp client runs as mail_owner).

    True when it cannot be told (no such user, no such file): no warning then.
    """
    try:
        st = os.stat(path)
        account = pwd.getpwnam(user)
    except (OSError, KeyError):
        return True
    if account.pw_uid == 0 or st.st_mode & 0o004:
        return True
    if st.st_uid == account.pw_uid:
        return bool(st.st_mode & 0o400)
    groups = set([account.pw_gid] + [g.gr_gid for g in grp.getgrall() if user in g.gr_mem])
    return bool(st.st_gid in groups and st.st_mode & 0o040)


def _dns_problems(policy, settings):
    lookup = settings.get('smtp_host_lookup', 'dns')
    if policy.level not in ('dane', 'dane-only') or 'dns' in lookup.replace(',', ' ').split():
        return [], []
    text = ('level %s needs DNS lookups, but smtp_host_lookup = %s: Postfix logs "%s '
            'configured with dnssec lookups disabled"; add dns to smtp_host_lookup'
            % (policy.level, lookup, policy.level))
    return ([text], []) if policy.level == 'dane-only' else ([], [text])


def route_warnings(policies, routes, commands=None):
    """Warnings for the domain entries Postfix never looks up because trivial-rewrite sends the
    domain's mail elsewhere (ROUTES: {key: mail_routing.Route}): to the relayhost, a next hop
    in default_transport or in a transport_maps entry (the SMTP client looks up that next
    hop's entry), to a transport that does not run the SMTP client (local delivery for a
    domain in mydestination, virtual for virtual_mailbox_domains, discard, lmtp, ...;
    COMMANDS: mail_routing.service_commands of master.cf, None when it was not read), or
    nowhere (virtual_alias_domains). Only routes that hold for all mail (no sender-dependent
    map, every table asked) are warned about."""
    warnings = []
    for key, policy in policies:
        route = routes.get(key)
        if route is None or not route.certain:
            continue
        if route.source == 'alias':
            warnings.append('destination %r: %s; an address a virtual alias rewrites is routed by its new '
                            'domain, so Postfix never looks up this entry' % (key, route.via))
            continue
        why = not_smtp(route, commands) if commands is not None and route.transport != 'smtp' else None
        if why:
            warnings.append('destination %r: %s, and %s: Postfix never looks up this entry' % (key, route.via, why))
            continue
        if commands is None and route.source in (LOCAL, VIRTUAL):
            continue            # whether local_transport or virtual_transport runs the SMTP client is not known
        if route.next_hop is None or fold_key(route.next_hop) == fold_key(key) \
                or route.source in ('domain', 'own'):
            continue
        hop = route.next_hop
        if route.source == 'relayhost':
            warnings.append('destination %r: relayhost = %s and no transport_maps entry routes it otherwise: '
                            'Postfix sends its mail to the relayhost and looks up its entry (%s), never this '
                            "one; mail to this domain gets the relayhost's TLS level. Key the entry as the "
                            'relayhost is written, or route the domain with transport_maps' % (key, hop, hop))
        elif route.source == 'transport_maps':
            table, found_key, value = route.entry
            warnings.append("destination %r: transport_maps (%s) routes this domain to %s%s: the SMTP client's "
                            'next hop is %s and Postfix looks up its entry, never this one; key the entry as %s'
                            % (key, table, value.strip(), '' if found_key == fold_key(key) else
                               ' (key %s)' % found_key, hop, hop))
        else:
            warnings.append("destination %r: %s routes its mail to %s: the SMTP client's next hop is "
                            '%s and Postfix looks up its entry, never this one; key the entry as %s'
                            % (key, route.via, hop, hop, hop))
    return warnings


def _tafile_problems(key, policy, settings, chrooted, check_mode, exists, readable):
    errors, warnings = [], []
    queue = settings.get('queue_directory', '')
    owner = settings.get('mail_owner', 'postfix')
    for tafile in policy.get('tafile'):
        where = os.path.join(queue, tafile.lstrip('/')) if chrooted and queue else tafile
        if not exists(where):
            if chrooted and queue:
                text = ('destination %r: tafile %s: the smtp client (master.cf %s, chroot y) '
                        'opens it inside its chroot, queue_directory = %s, where %s does not '
                        'exist: Postfix would defer the mail ("error opening trust anchor '
                        'file"); copy the file there, or set the chroot column to n'
                        % (key, tafile, ', '.join(chrooted), queue, where))
            else:
                text = ('destination %r: tafile %s does not exist: Postfix would defer the '
                        'mail ("error opening trust anchor file"); create it first'
                        % (key, tafile))
            if check_mode:
                warnings.append(text + ' (check mode: an earlier task may create it)')
            else:
                errors.append(text)
        elif not readable(where, owner):
            warnings.append('destination %r: tafile %s is not readable by mail_owner %s, '
                            'the smtp client\'s user: Postfix would defer the mail'
                            % (key, where, owner))
    return errors, warnings


def configuration_checks(policies, settings, master_services, check_mode=False,
                         exists=os.path.exists, readable=readable_by, routes=None):
    """Check (key, Policy) pairs against main.cf SETTINGS (CROSS_CHECK_PARAMETERS,
    expanded) and master.cf (``postconf -M`` output); ROUTES ({key: mail_routing.Route}
    of the domain keys) for route_warnings.

    Returns ``(errors, warnings)``. In check mode a missing tafile is a warning
    (an earlier task of the play may create it).
    """
    errors, warnings = [], []
    chrooted = [name for name, chroot in smtp_client_services(master_services) if chroot == 'y']
    for key, policy in policies:
        if not _checked(policy):
            continue
        found_errors, found_warnings = configuration_problems(policy, settings)
        dns_errors, dns_warnings = _dns_problems(policy, settings)
        cipher_errors = cipher_problems(policy, settings)
        # a new entry's lint is a refusal, as in the grammar's strict reading
        level_errors, level_lints = key_level_problems(key, policy)
        errors.extend('destination %r: %s' % (key, text)
                      for text in level_errors + level_lints + found_errors + dns_errors + cipher_errors)
        warnings.extend('destination %r: %s' % (key, text) for text in found_warnings + dns_warnings)
        found_errors, found_warnings = _tafile_problems(key, policy, settings, chrooted, check_mode,
                                                        exists, readable)
        errors.extend(found_errors)
        warnings.extend(found_warnings)
    warnings.extend(route_warnings(policies, routes or {},
                                   service_commands(master_services) if master_services else None))
    if not has_tlsproxy(master_services, tlsproxy_service(settings)):
        for by_default in (False, True):
            reusing = [key for key, policy in policies if _reuses_connections(policy, settings)
                       and bool(policy.get('connection_reuse')) != by_default]
            if not reusing:
                continue
            # in check mode a warning: an earlier task of the play may add the service
            text = 'destination %r%s: %s' % (reusing[0], ' (and %d more)' % (len(reusing) - 1)
                                             if len(reusing) > 1 else '', no_tlsproxy_message(settings, by_default))
            (warnings if check_mode else errors).append(text)
    return errors, warnings


DESTINATION_MESSAGE = re.compile(r'^destination (\'(?:[^\'\\]|\\.)*\'|"(?:[^"\\]|\\.)*"): (.*)$', re.S)


def summarize_warnings(warnings, shown=5):
    """WARNINGS with the messages that differ only in the destination they name
    ("destination 'KEY': TEXT") given once: "N destinations ('A', 'B', ... and M more):
    TEXT". A table of thousands of entries gives a few readable warnings, not one
    per entry; the order of first appearance is kept and repeats are dropped."""
    order, keys = [], {}
    for warning in warnings:
        match = DESTINATION_MESSAGE.match(warning)
        if match is None:
            if warning not in keys:
                keys[warning] = None
                order.append(warning)
            continue
        text = match.group(2)
        if text not in keys:
            keys[text] = []
            order.append(text)
        if match.group(1) not in keys[text]:
            keys[text].append(match.group(1))
    out = []
    for item in order:
        names = keys[item]
        if names is None:
            out.append(item)
        elif len(names) == 1:
            out.append('destination %s: %s' % (names[0], item))
        else:
            more = ' and %d more' % (len(names) - shown) if len(names) > shown else ''
            out.append('%d destinations (%s%s): %s' % (len(names), ', '.join(names[:shown]), more, item))
    return out
