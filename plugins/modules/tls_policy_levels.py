#!/usr/bin/python
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
---
module: tls_policy_levels
short_description: The TLS security level the Postfix SMTP client applies to each destination now, and after a planned change
version_added: 0.1.0
description:
  - Answers, for each destination, "which TLS security level does the Postfix SMTP client use
    for mail to it today, and which after this change?" and whether the change makes it
    stricter - the destinations to probe with M(mailgw.postfix_tls.tls_probe) before the change
    is written.
  - The lookup is the SMTP client's (C(tls_policy_lookup()) in C(src/smtp/smtp_tls_policy.c)) -
    a domain is looked up as itself, then as each parent C(.domain) (C(a.example.com),
    C(.example.com), C(.com)); a next hop with brackets or a port (C([host]:port)) only
    verbatim. Each key, in that order, is asked of every table of C(smtp_tls_policy_maps) in
    order (C(postmap -q), C(proxy:) dropped, C({...}) kept together); the first entry found
    wins; no entry means C(smtp_tls_security_level) (the obsolete C(smtp_enforce_tls) and
    C(smtp_use_tls) counted as Postfix counts them).
  - I(After) is the same lookup once the planned entries O(policies) are written to O(table)
    (only they, with O(exclusive)), O(table) is listed in C(smtp_tls_policy_maps) (first, when
    it is not listed yet) and the global level is O(level).
  - The next hops of C(relayhost) (all mail no C(transport_maps) entry routes otherwise goes
    there) are added as destinations, after O(destinations), and so is the next hop of each
    content filter (C(content_filter) in main.cf or a master.cf C(-o content_filter), for
    example C(smtp-amavis:[127.0.0.1]:10024)), routed through the filter's transport, whose
    master.cf C(-o) settings apply.
  - With O(log) the mail log is read as M(mailgw.postfix_tls.tls_log_summary) reads it, and the
    relays that took mail in plaintext are added as destinations (C([HOST]:PORT)).
  - With O(probe) the destinations marked RV(destinations[].probe) are also probed in the same
    run, as M(mailgw.postfix_tls.tls_probe) probes - each at the level and with the policy entry
    it gets after the change (a planned entry's C(match), C(protocols), C(ciphers), C(servername)
    and C(tafile) included) - and the findings are in RV(probes). One round trip on the gateway
    instead of this module and M(mailgw.postfix_tls.tls_probe) one after the other.
  - Reads only (with O(probe) posttls-finger says EHLO, STARTTLS and QUIT, it never sends mail);
    runs the same in check mode and never reports a change.
author:
  - mailgw.postfix_tls developers (!UNKNOWN)
options:
  destinations:
    description:
      - Next-hop destinations in the policy table's key forms - V(example.com) (mail routed by MX),
        V(sub.example.com), V([mx.example.com]:25), V(host:port), V(.example.com) (reported, never
        marked to probe - it names no host).
      - Checked like a policy table key; a key Postfix never looks up fails the module.
    type: list
    elements: str
    default: []
  policies:
    description:
      - The planned entries of O(table) - destination to policy as written in the table (for
        example V(verify match=hostname)), V(null) to remove the entry. The shape of the
        O(mailgw.postfix_tls.tls_policy#module:policies) option.
      - Keys are checked like O(destinations), values with the Postfix policy grammar; a value
        Postfix would refuse fails the module.
    type: dict
    default: {}
  policies_src:
    description:
      - The planned entries of O(table) read from a file on the managed host in the table's own
        format, as O(mailgw.postfix_tls.tls_policy#module:policies_src) reads it - the preflight
        of a table that module will be given as a file. An absolute path.
      - Its destinations are looked at as if listed in O(destinations) (after them), unlike those
        of O(policies).
      - Lines Postfix would ignore, a destination given twice and values Postfix would refuse
        fail the module, naming the file and line.
      - Mutually exclusive with O(policies).
    type: path
  exclusive:
    description:
      - The keys of O(table) that are not in O(policies) (or O(policies_src)) are checked as
        destinations too, since they lose their entry. After the change O(table) holds only the
        planned entries.
    type: bool
    default: false
  table:
    description:
      - The table the planned entries go to, V(TYPE:PATH) or an absolute V(PATH) (its type then as
        C(smtp_tls_policy_maps) lists it, else C(default_database_type)).
      - Default - the first key/value table file of C(smtp_tls_policy_maps) (the one
        M(mailgw.postfix_tls.tls_policy) edits without a path), else C(CONFIG_DIR/tls_policy)
        (the table of the C(mailgw.postfix_tls.enforce_tls) role).
    type: str
  level:
    description: The planned global C(smtp_tls_security_level). Default - unchanged.
    type: str
    choices: [none, may, encrypt, dane, dane-only, fingerprint, verify, secure]
  max:
    description:
      - Mark at most this many affected destinations to probe (RV(destinations[].probe)); the
        others are listed with the reason in RV(destinations[].not_probed).
    type: int
    default: 50
  log:
    description:
      - Also read the mail log and add the relays that took mail in plaintext, as
        V([HOST]:PORT), to the destinations; and return the SMTP clients the server received
        mail from (RV(log_clients)).
      - Postfix logs whether a delivery went over TLS only at C(smtp_tls_loglevel) 1 or more (and
        whether a received message did at C(smtpd_tls_loglevel) 1 or more); at 0 the log adds no
        destination and says so in a warning and in RV(log_tls_logged).
    type: bool
    default: false
  log_files:
    description:
      - With O(log) - the log files to read, in order; names ending in C(.gz) are read compressed.
      - Default - C(maillog_file) of O(config_dir) when it is set, else V(/var/log/mail.log).
    type: list
    elements: path
  log_source:
    description:
      - With O(log) - V(auto) reads the files and falls back to the journal when none exists;
        V(file) only the files (a missing one is an error); V(journal) only the journal.
    type: str
    choices: [auto, file, journal]
    default: auto
  log_window:
    description:
      - With O(log) - how far back to read, a number with an optional unit (V(s), V(m), V(h),
        V(d), V(w)); empty - the whole log.
    type: str
    default: 7d
  log_syslog_name:
    description:
      - With O(log) - count only the lines of programs logged as C(SYSLOG_NAME/...). Default -
        C(syslog_name) of O(config_dir).
    type: str
  probe:
    description:
      - Probe the destinations marked RV(destinations[].probe) with Postfix's C(posttls-finger) at
        the level and with the policy entry each gets after the change, as
        M(mailgw.postfix_tls.tls_probe) does; the findings are in RV(probes) and RV(deferring).
      - Needs C(posttls-finger) on the target only when there is something to probe.
    type: bool
    default: false
  connect_timeout:
    description: With O(probe) - seconds posttls-finger waits for a TCP connection.
    type: int
    default: 10
  command_timeout:
    description: With O(probe) - seconds posttls-finger waits for each SMTP reply and the TLS handshake.
    type: int
    default: 30
  concurrency:
    description: With O(probe) - destinations probed at the same time.
    type: int
    default: 4
  ca_file:
    description: With O(probe) - trusted CA certificates (PEM). Default - C(smtp_tls_CAfile) of O(config_dir).
    type: path
  ca_path:
    description: With O(probe) - directory of trusted CA certificates. Default - C(smtp_tls_CApath) of O(config_dir).
    type: path
  config_dir:
    description: Postfix configuration directory, for multi-instance Postfix.
    type: path
    default: /etc/postfix
notes:
  - Entries that are already in O(table) and not in O(policies) keep their value (unless
    O(exclusive)). The table's current entries are what C(postmap -q) answers when
    C(smtp_tls_policy_maps) lists it, else what its source file holds.
  - An entry Postfix cannot use makes the SMTP client defer the mail; its level is reported as
    V(invalid) with Postfix's complaint in RV(destinations[].problems).
  - Strictness is the collection's order of the levels - V(none), V(may), V(encrypt), V(dane),
    V(verify), then V(secure), V(dane-only) and V(fingerprint).
attributes:
  check_mode:
    description: Reads only, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
  platform:
    description: Needs C(postconf) and C(postmap) of Postfix on the target; C(journalctl) to read the journal.
    support: full
    platforms: posix
seealso:
  - module: mailgw.postfix_tls.tls_probe
    description: The same probe on its own, at the levels of today's configuration or at given levels.
  - module: mailgw.postfix_tls.tls_log_summary
  - module: mailgw.postfix_tls.tls_policy
  - module: mailgw.postfix_tls.postconf_info
    description: >-
      The same work in a read's round trip (its O(mailgw.postfix_tls.postconf_info#module:tls_policy_levels)
      option), with the table and entries of a planned M(mailgw.postfix_tls.tls_policy) task, and skipped
      when the change alters no lookup - how the role M(mailgw.postfix_tls.enforce_tls) runs its preflight.
'''

EXAMPLES = r'''
- name: Which destinations does raising the level to encrypt make stricter?
  mailgw.postfix_tls.tls_policy_levels:
    destinations: [example.com, sub.example.net, "[relay.example.org]:587"]
    policies:
      example.com: verify match=hostname:nexthop
      legacy.example: null
    table: hash:/etc/postfix/tls_policy
    level: encrypt
    log: true
    log_window: 7d
  register: levels

- name: Probe the affected ones at the level they will get
  mailgw.postfix_tls.tls_probe:
    destinations: "{{ levels.destinations | selectattr('probe') | selectattr('level', 'equalto', 'encrypt')
                      | map(attribute='destination') | list }}"
    level: encrypt
  when: levels.affected | length > 0

- name: The same in one call, each probed with the entry it gets (planned match= included)
  mailgw.postfix_tls.tls_policy_levels:
    destinations: [example.com, "[relay.example.org]:587"]
    policies:
      example.com: secure match=mx.example.com
    level: encrypt
    probe: true
    connect_timeout: 10
  register: preflight

- name: Stop when a destination would defer
  ansible.builtin.assert:
    that: preflight.deferring | length == 0
    fail_msg: "{{ preflight.probes | selectattr('would_defer') | map(attribute='reason') | list }}"
'''

RETURN = r'''
destinations:
  description: One result per destination (O(destinations) first, then the C(relayhost)'s next hops,
    then the log's, then the content filters'), in that order.
  returned: success
  type: list
  elements: dict
  sample:
    - destination: sub.example.com
      level_before: may
      source_before: hash:/etc/postfix/tls_policy
      key_before: .example.com
      level: verify
      source: hash:/etc/postfix/tls_policy
      key: sub.example.com
      affected: true
      probe: true
      not_probed: null
      problems: []
  contains:
    destination:
      description: The destination, as given.
      type: str
    next_hop:
      description:
        - The next hop the SMTP client uses for mail to it, whose policy entry applies - for a
          domain the one trivial-rewrite routes its mail to (the domain itself, the C(relayhost),
          a next hop in its class's transport setting or in C(transport_maps), as in
          M(mailgw.postfix_tls.tls_probe)); other destinations are their own.
        - A transport whose master.cf service sets C(smtp_tls_policy_maps) looks up its own
          tables (a planned entry counts only when they list the table), and one that sets its
          own level keeps it when C(level) is raised.
        - A transport that does not run the SMTP client gives null levels and V(affected=false).
      type: str
    transport:
      description: The master.cf service (transport) that takes the mail.
      type: str
    route:
      description: What decided the route (see RV(mailgw.postfix_tls.tls_probe#module:destinations[].route)).
      type: str
    level_before:
      description: The level the SMTP client applies now (V(invalid) for an entry it cannot use).
      type: str
    source_before:
      description: Where that level comes from - the table (V(TYPE:NAME)) or V(smtp_tls_security_level).
      type: str
    key_before:
      description: The table key that matched now (for example V(.example.com)), or null.
      type: str
    level:
      description: The level after the change.
      type: str
    source:
      description: Where the level after the change comes from.
      type: str
    key:
      description: The table key that matches after the change, or null.
      type: str
    affected:
      description: Whether the level after the change is stricter than now.
      type: bool
    probe:
      description: Whether to probe it - affected, names a host, and among the first O(max).
      type: bool
    not_probed:
      description: Why it is not to be probed (for example C(not probed - level stays may)), or null.
      type: str
    problems:
      description: Postfix's complaints about the entries that matched (they make it defer the mail).
      type: list
      elements: str
affected:
  description: The affected destinations, in order.
  returned: success
  type: list
  elements: str
  sample: [sub.example.com]
level_before:
  description: The global level now (C(smtp_tls_security_level), obsolete settings counted).
  returned: success
  type: str
  sample: may
level:
  description: The global level after the change.
  returned: success
  type: str
  sample: encrypt
table:
  description: The table the planned entries go to, V(TYPE:PATH).
  returned: success
  type: str
  sample: hash:/etc/postfix/tls_policy
policy_maps:
  description: The tables the SMTP client asks after the change, in order (C(proxy:) dropped).
  returned: success
  type: list
  elements: str
probes:
  description:
    - With O(probe) - one result per probed destination, in the order of RV(destinations), as
      M(mailgw.postfix_tls.tls_probe) returns them (its RV(mailgw.postfix_tls.tls_probe#module:destinations));
      C(level_source) is V(policy table) when an entry gives the level after the change, else
      V(smtp_tls_security_level), and C(policy_key) and C(policy) are that entry.
  returned: when O(probe) is true
  type: list
  elements: dict
  sample:
    - destination: sub.example.com
      level: verify
      level_source: policy table
      policy_key: sub.example.com
      policy: verify match=hostname
      host: mx.example.com[192.0.2.1]:25
      reachable: true
      starttls: true
      trust: untrusted
      would_defer: true
      reason: Server certificate not verified
      tls: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
      evidence: []
deferring:
  description: With O(probe) - the probed destinations that would defer, in order.
  returned: when O(probe) is true
  type: list
  elements: str
  sample: [sub.example.com]
log_relays:
  description:
    - With O(log) - deliveries per relay as M(mailgw.postfix_tls.tls_log_summary) returns them
      (C({relay, sent_tls, sent_plaintext, sent_unknown})); those with C(sent_plaintext) were added as
      destinations.
  returned: when O(log) is true
  type: list
  elements: dict
  sample: [{relay: "mx.example.com[192.0.2.1]:25", sent_tls: 0, sent_plaintext: 2, sent_unknown: 0}]
log_clients:
  description:
    - With O(log) - the SMTP clients the server received mail from without TLS (those
      C(smtpd_tls_security_level=encrypt) refuses), with the messages received with and without
      TLS, as M(mailgw.postfix_tls.tls_log_summary) returns them (its RV(mailgw.postfix_tls.tls_log_summary#module:clients)).
    - The 100 that sent the most messages in plaintext; RV(log_clients_plaintext) counts them all.
  returned: when O(log) is true
  type: list
  elements: dict
  sample:
    - {client: "mail.example.net[192.0.2.7]", address: 192.0.2.7, loopback: false, messages: 3, messages_tls: 2,
       messages_plaintext: 1, messages_unknown: 0, services: [postfix/smtpd], plaintext_services: [postfix/smtpd]}
log_clients_plaintext:
  description: With O(log) - how many clients sent mail without TLS (RV(log_clients) lists at most 100).
  returned: when O(log) is true
  type: int
  sample: 1
log_tls_logged:
  description:
    - With O(log) - whether the SMTP client (C(smtp)) and server (C(smtpd)) log their TLS sessions
      (C(*_tls_loglevel) 1 or more); where not, the log cannot tell TLS from plaintext.
  returned: when O(log) is true
  type: dict
  sample: {smtp: true, smtpd: true}
log_sources:
  description: With O(log) - what was read, file paths or C(journal).
  returned: when O(log) is true
  type: list
  elements: str
commands:
  description: The postconf, postmap (and with O(probe) posttls-finger) command lines run.
  returned: always
  type: list
  elements: list
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.policy_levels import (
    OPTIONS_SPEC,
    LevelsError,
    check_input,
    levels,
    looked_up_keys,
    parameters_needed,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import printable_result
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    Postconf,
    PostfixCommandError,
    Postmap,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(OPTIONS_SPEC, config_dir=dict(type='path', default='/etc/postfix')),
        supports_check_mode=True,
    )
    p = module.params
    planned, errors = check_input(p)
    if errors:
        module.fail_json(msg='; '.join(errors))
    if p['policies_src']:
        # the preflight of a table given as a file: its destinations are the ones to look at
        p['destinations'] = list(p['destinations']) + looked_up_keys(list(planned))

    commands = []
    postconf = Postconf(module, p['config_dir'], commands)
    postmap = Postmap(module, p['config_dir'], commands)
    try:
        params = postconf.parameters(parameters_needed(p), expand=True)
    except PostfixCommandError as exc:
        module.fail_json(msg='cannot read the TLS settings in %s: %s' % (p['config_dir'], exc),
                         cmd=exc.cmd, rc=exc.rc, stderr=exc.stderr, commands=commands)
    try:
        result = levels(module, postconf, postmap, p, params, planned, commands)
    except LevelsError as exc:
        module.fail_json(msg=printable_result(exc.msg), commands=commands, **printable_result(exc.fields))
    module.exit_json(**printable_result(result))


if __name__ == '__main__':
    main()
