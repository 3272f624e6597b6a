#!/usr/bin/python
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
---
module: tls_log_summary
short_description: Count deliveries and received mail with and without TLS from the Postfix mail log
version_added: 0.1.0
description:
  - Reads the mail log over a window and returns, per recipient domain (the next hop of mail
    routed by MX), how many deliveries went over TLS (and at which trust) and how many in
    plaintext. Those delivered in plaintext would defer once the outgoing level is V(encrypt)
    or stricter - the destinations to probe with M(mailgw.postfix_tls.tls_probe) or to give a
    policy entry before enforcing.
  - A delivery went over TLS when the same SMTP client process (or C(tlsproxy)) logged
    C(... TLS connection established to HOST[ADDR]:PORT) for the relay of its C(status=sent)
    line; otherwise it went in plaintext.
  - Also returns, per client, how many messages the SMTP server (C(smtpd)) received over TLS and
    how many in plaintext (RV(clients)) - those sent in plaintext would get C(530) once the
    incoming level is V(encrypt). A message came over TLS when the same smtpd process logged
    C(... TLS connection established from HOST[ADDR]) in the session of its C(client=) line.
  - Postfix logs those TLS lines only at C(smtp_tls_loglevel) (client) and C(smtpd_tls_loglevel)
    (server) 1 or more; at its default, 0, the log cannot tell TLS from plaintext. The module
    reads both levels from O(config_dir) and then counts such mail as of unknown TLS
    (C(sent_unknown), C(messages_unknown), RV(tls_logged)) with a warning, never as plaintext.
    A level raised within the window leaves the older mail counted as plaintext.
  - Reads only; runs the same in check mode.
author:
  - mailgw.postfix_tls developers (!UNKNOWN)
options:
  log_files:
    description:
      - Log files to read, in order (older first, for example V(/var/log/mail.log.1) then
        V(/var/log/mail.log)); names ending in C(.gz) are read compressed.
      - Default - C(maillog_file) of O(config_dir) when it is set, else V(/var/log/mail.log).
    type: list
    elements: path
  source:
    description:
      - V(auto) reads the files and falls back to the journal (C(journalctl)) when none exists;
        V(file) only the files (a missing one is an error); V(journal) only the journal.
    type: str
    choices: [auto, file, journal]
    default: auto
  window:
    description:
      - How far back to read, a number with an optional unit (V(s), V(m), V(h), V(d), V(w)), for
        example V(24h) or V(7d). Empty - the whole log.
    type: str
    default: 7d
  syslog_name:
    description:
      - Count only the lines of programs logged as C(SYSLOG_NAME/...) (multi-instance Postfix).
        Default - C(syslog_name) of O(config_dir).
    type: str
  config_dir:
    description: Postfix configuration directory, for C(maillog_file) and C(syslog_name).
    type: path
    default: /etc/postfix
notes:
  - Lines are attributed to the recipient domain; mail routed by a transport or relayhost shows
    the relay it went to in RV(next_hops[].relays).
  - Traditional syslog timestamps have no year; the year that does not put a line in the
    future is taken. Reading the journal needs C(journalctl) and read access to it.
attributes:
  check_mode:
    description: Reads only, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
  platform:
    description: Needs C(postconf) of Postfix on the target; C(journalctl) for the journal.
    support: full
    platforms: posix
seealso:
  - module: mailgw.postfix_tls.tls_probe
'''

EXAMPLES = r'''
- name: Which destinations got mail in plaintext in the last week?
  mailgw.postfix_tls.tls_log_summary:
    log_files: [/var/log/mail.log.1, /var/log/mail.log]
    window: 7d
  register: evidence

- name: Probe them at encrypt before enforcing it
  mailgw.postfix_tls.tls_probe:
    destinations: "{{ evidence.plaintext }}"
    level: encrypt

- name: Which other hosts sent mail without STARTTLS (refused once smtpd_tls_security_level = encrypt)?
  ansible.builtin.debug:
    msg: "{{ evidence.clients | rejectattr('loopback') | selectattr('messages_plaintext') | map(attribute='client') }}"
'''

RETURN = r'''
next_hops:
  description: One entry per recipient domain with a delivery attempt in the window, sorted.
  returned: success
  type: list
  elements: dict
  sample:
    - destination: example.com
      relays: ["mx.example.com[192.0.2.1]:25"]
      sent: 3
      sent_tls: 2
      sent_plaintext: 1
      sent_unknown: 0
      deferred: 0
      bounced: 0
      trust: {anonymous: 0, untrusted: 1, trusted: 1, verified: 0}
      plaintext_relays: ["mx.example.com[192.0.2.1]:25"]
      deferred_reasons: []
      would_defer_at_encrypt: true
  contains:
    destination:
      description: The recipient domain.
      type: str
    relays:
      description: The servers mail went to (C(HOST[ADDR]:PORT)).
      type: list
      elements: str
    sent:
      description: Deliveries (C(status=sent)).
      type: int
    sent_tls:
      description: Deliveries over TLS.
      type: int
    sent_plaintext:
      description: Deliveries in plaintext.
      type: int
    sent_unknown:
      description: Deliveries the log cannot place (C(smtp_tls_loglevel) 0, see RV(tls_logged)).
      type: int
    deferred:
      description: Deferred attempts.
      type: int
    bounced:
      description: Bounced or expired recipients.
      type: int
    trust:
      description: TLS deliveries by the trust Postfix logged (anonymous, untrusted, trusted, verified).
      type: dict
    plaintext_relays:
      description: The relays that took mail in plaintext.
      type: list
      elements: str
    deferred_reasons:
      description: Up to five deferral reasons (Postfix's words) with their counts, most frequent first.
      type: list
      elements: dict
    would_defer_at_encrypt:
      description:
        - Whether some mail went in plaintext, so it would defer at V(encrypt).
        - Null when the log cannot tell (C(smtp_tls_loglevel) 0).
      type: bool
plaintext:
  description: The recipient domains with at least one plaintext delivery.
  returned: success
  type: list
  elements: str
  sample: [example.com]
relays:
  description: Deliveries per relay, C({relay, sent_tls, sent_plaintext, sent_unknown}), sorted by relay.
  returned: success
  type: list
  elements: dict
clients:
  description:
    - One entry per SMTP client the server received mail from in the window (C(client=) lines of
      C(smtpd)), sorted by C(HOST[ADDR]).
  returned: success
  type: list
  elements: dict
  sample:
    - client: mail.example.net[192.0.2.7]
      address: 192.0.2.7
      loopback: false
      messages: 3
      messages_tls: 2
      messages_plaintext: 1
      messages_unknown: 0
      services: [postfix/smtpd]
      plaintext_services: [postfix/smtpd]
  contains:
    client:
      description: The client as smtpd logs it, C(HOST[ADDR]) (without a port).
      type: str
    address:
      description: Its IP address.
      type: str
    loopback:
      description: Whether it is this host (C(127.0.0.0/8), C(::1)) - a content filter's re-injection, or a local program.
      type: bool
    messages:
      description: Messages received (C(client=) lines).
      type: int
    messages_tls:
      description: Received in a TLS session.
      type: int
    messages_plaintext:
      description: Received without TLS.
      type: int
    messages_unknown:
      description: Not placed, the server logs no TLS lines (C(smtpd_tls_loglevel) 0).
      type: int
    services:
      description: The smtpd programs that received them, as logged (C(postfix/smtpd), C(postfix/submission/smtpd)).
      type: list
      elements: str
    plaintext_services:
      description: The smtpd programs that received its messages without TLS.
      type: list
      elements: str
plaintext_clients:
  description: The clients (C(HOST[ADDR])) with at least one message received without TLS.
  returned: success
  type: list
  elements: str
  sample: ["mail.example.net[192.0.2.7]"]
tls_logged:
  description:
    - Whether the SMTP client (C(smtp)) and server (C(smtpd)) log their TLS sessions (their
      C(*_tls_loglevel) is 1 or more); where not, TLS and plaintext cannot be told apart.
  returned: success
  type: dict
  sample: {smtp: true, smtpd: false}
sources:
  description: What was read - file paths, or C(journal).
  returned: success
  type: list
  elements: str
  sample: [/var/log/mail.log]
lines:
  description: SMTP/LMTP client, tlsproxy and smtpd lines counted in the window.
  returned: success
  type: int
first:
  description: Time of the first counted line (local time), or null.
  returned: success
  type: str
last:
  description: Time of the last counted line (local time), or null.
  returned: success
  type: str
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_log import (
    LOG_PARAMETERS,
    since_window,
    summarize_mail_log,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    Postconf,
    PostfixCommandError,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log_files=dict(type='list', elements='path'),
            source=dict(type='str', choices=['auto', 'file', 'journal'], default='auto'),
            window=dict(type='str', default='7d'),
            syslog_name=dict(type='str'),
            config_dir=dict(type='path', default='/etc/postfix'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        since = since_window(p['window'])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    params = {}
    # Where the log is and whose lines (unless given), and whether TLS sessions are logged at
    # all; without postconf (a log read elsewhere) the log is taken as logging them.
    if not p['log_files'] or p['syslog_name'] is None or module.get_bin_path('postconf'):
        try:
            params = Postconf(module, p['config_dir']).parameters(list(LOG_PARAMETERS), expand=True)
        except PostfixCommandError as exc:
            module.fail_json(msg='cannot read %s in %s: %s' % (', '.join(LOG_PARAMETERS), p['config_dir'], exc))
    else:
        module.warn('postconf not found: smtp_tls_loglevel and smtpd_tls_loglevel are not known, so a delivery '
                    'or message without a TLS line is counted as plaintext')
    summary, sources = summarize_mail_log(module, p['log_files'], p['source'], since, p['syslog_name'], params)
    module.exit_json(changed=False, sources=sources, **summary.result())


if __name__ == '__main__':
    main()
