#!/usr/bin/python
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
---
module: tls_policy
short_description: Manage entries of the Postfix SMTP client TLS policy table
version_added: 0.1.0
description:
  - Adds, changes and removes entries of the lookup table named by the Postfix parameter
    C(smtp_tls_policy_maps), one destination at a time or a whole list in one call.
  - Every entry is validated before anything is written. Postfix defers mail for a destination
    whose policy entry it cannot use ("client TLS configuration problem", or a failed TLS
    handshake) and only notices when mail is waiting; this module refuses such entries instead,
    with a message that names the value and the rule it breaks and quotes what Postfix would log.
    The rules are read from the Postfix sources and checked against a running Postfix (see
    docs/tls_policy.md for each rule and the Postfix behaviour behind it).
  - A few values Postfix would accept but that cannot do what they say (attributes at level
    V(none), a relative O(tafile), a keyword-like O(servername) in upper case, ...) are refused
    as rules of this collection; those messages end with C(rule of this collection, Postfix
    accepts it) and the reason.
  - "Checks that need the rest of the configuration read it with C(postconf): fingerprints must
    have the length of C(smtp_tls_fingerprint_digest) (md5 before compatibility_level 3.6,
    sha256 from it); V(dane-only) needs C(smtp_dns_support_level=dnssec) (V(dane) without it
    only warns, Postfix silently uses V(may)); a O(tafile) must exist where the smtp client
    opens it, below C(queue_directory) when master.cf chroots the smtp service; features are
    checked against C(mail_version) at patch level. An entry for a domain whose mail Postfix
    routes elsewhere (the C(relayhost), a next hop in a transport setting or C(transport_maps)),
    or to no SMTP client (C(mydestination), C(virtual_alias_domains), C(virtual_mailbox_domains)
    with C(virtual_transport=virtual), C(transport_maps) to C(discard:)), is never looked up: it
    is written with a warning that says where the mail goes."
  - An entry that a table listed before this one in C(smtp_tls_policy_maps) also answers (a
    C(regexp:) table, another file) is never used, since the SMTP client asks every table in order
    for each key; it is written with a warning that names the earlier table and its answer
    (each earlier table is asked once with C(postmap -q)).
  - Existing lines Postfix cannot use (a C(*) key, a C(# comment) after the level, abbreviated
    fingerprints) are kept byte for byte and named in a warning; O(state=absent) removes them by
    their key.
  - Editing keeps comments, blank lines, continuation lines, line endings, the order of entries
    and every entry the task does not manage, byte for byte. A changed entry is rewritten where it
    is; a new entry is appended.
  - For indexed types (V(hash), V(btree), V(lmdb), V(cdb), V(dbm), V(sdbm)) the index is rebuilt
    with C(postmap) only when the source changed or the index is missing or older than the source,
    and the result is checked with C(postmap -q). Nothing is built for V(texthash).
  - "Writes are atomic and leave the previous working state on any failure: the new source is
    written to a temporary file in the same directory, C(postmap) builds the index from that
    file, the index is queried, and only then the index and afterwards the source are renamed
    into place (so Postfix never sees a source newer than its index)."
  - Concurrent runs against the same directory are serialized with a lock (C(flock) on the
    directory itself, so no lock file is created; for a table that is a symbolic link into
    another directory, on that directory too).
author:
  - mailgw.postfix_tls maintainers (@mailgw)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written in check mode, not even a temporary or lock file.
      - When the table's directory does not exist yet (an earlier task of the play creates
        it, which a check run does not), check mode reports the table as created, with a
        warning; a real run fails in that case.
      - The same for an O(policies_src) file that does not exist yet (an earlier task ships it) -
        check mode reports the table as changed without comparing entries, with a warning.
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  destination:
    description:
      - The policy table key, the next-hop destination exactly as Postfix looks it up (see
        docs/tls_policy.md), folded to lower case as Postfix does.
      - "V(example.com) (a recipient domain, mail routed by MX), V(.example.com) (its subdomains),
        V([mx.example.com]), V([mx.example.com]:587), V([192.0.2.1]:25),
        V([ipv6:2001:db8::1]), V([ipv6:2001:db8::1]:587), the bare V([2001:db8::1]:587) (a
        different key from the C(ipv6:) form: spell it as the transport or relayhost does), or
        V(relay.example.com:587)."
      - "UTF-8 domains are written verbatim, with a warning: Postfix converts no lookup key between
        UTF-8 and A-labels, so the C(xn--) spelling needs its own entry (SMTPUTF8_README)."
      - Keys Postfix never looks up are refused (C(*), all-numeric names such as V(123), invalid
        addresses, trailing dots); with O(state=absent) any single table key is accepted, so such
        existing lines can be removed.
      - An unbracketed V(host:port) key is accepted with a warning, because Postfix only looks it
        up when a transport or relayhost names it verbatim.
      - Mutually exclusive with O(entries), O(policies) and O(policies_src).
    type: str
  level:
    description:
      - The TLS security level for O(destination). Required when O(state=present).
    type: str
    choices: [none, may, encrypt, dane, dane-only, fingerprint, verify, secure]
  match:
    description:
      - Certificate match strategy. At level V(verify) and V(secure) host names, V(.domain) or the
        keywords V(hostname), V(nexthop), V(dot-nexthop), joined with C(:) in the table.
      - At level V(fingerprint) certificate or public key fingerprints (hex bytes, optionally
        separated by C(:)), joined with C(|) in the table.
      - Invalid at any other level.
    type: list
    elements: str
  ciphers:
    description:
      - Minimum cipher grade. Invalid at level V(none).
    type: str
    choices: [high, medium, low, export, 'null']
  protocols:
    description:
      - TLS protocols to include or exclude, as a list or a C(:)-separated string, for example
        V(!SSLv2:!SSLv3) or, with Postfix 3.6 and later, the range form V(>=TLSv1.2) and
        V(<=TLSv1.3).
      - Protocol names are SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3, optionally prefixed with
        C(!); bounds C(>=) and C(<=) take None, SSLv3 .. TLSv1.3 or a hex version (V(>=0x0303)).
        As in Postfix a later bound overrides an earlier one and an exclusion beats an inclusion;
        a list that leaves no protocol OpenSSL offers (SSLv2 and SSLv3 are gone) is refused.
      - V("") (or V([""])) writes C(protocols=), the empty value that overrides main.cf for this
        destination. Invalid at level V(none).
    type: list
    elements: str
  exclude:
    description:
      - OpenSSL cipher names to exclude, as a list or a C(:)-separated string, without a leading
        C(!), C(+), C(-) or C(@) (Postfix adds the C(!) itself and aborts TLS for those).
      - V("") writes C(exclude=), the empty value that overrides main.cf. Invalid at level V(none).
    type: list
    elements: str
  tafile:
    description:
      - Trust anchor files (absolute paths). Only valid at level V(verify) and V(secure).
    type: list
    elements: path
  servername:
    description:
      - The SNI name to send, a host name (ASCII, not all-numeric such as V(192.0.2.1)) or one of
        the keywords V(hostname) and V(nexthop), which Postfix compares case-sensitively (the value
        is written as given). Postfix 3.4 and later. Invalid at level V(none).
    type: str
  connection_reuse:
    description:
      - Whether to reuse TLS connections (C(connection_reuse=yes)). Postfix 3.4.14, 3.5.4, 3.6 and
        later (3.4.0-3.4.13 and 3.5.0-3.5.3 reject it). V(true) needs the C(tlsproxy) service in
        master.cf (the service C(tlsproxy_service_name) names), which Debian ships commented out;
        without it the SMTP client defers the mail (at level V(may) too), so the entry is refused
        (a warning in check mode). Invalid at level V(none).
      - Not set, the entry takes main.cf's C(smtp_tls_connection_reuse); when that is C(yes) and the
        service is missing the entry is refused the same way (give V(false), or add the service).
    type: bool
  enable_rpk:
    description:
      - Whether to request raw public keys (C(enable_rpk=yes)). Postfix 3.9 and later.
        Invalid at level V(none).
    type: bool
  state:
    description:
      - Whether the entry for O(destination) should exist. With O(entries), use the O(entries[].state)
        of each entry instead.
    type: str
    choices: [present, absent]
    default: present
  entries:
    description:
      - Several entries managed in one call (one read, one write, one C(postmap)).
      - Mutually exclusive with O(destination) and its attribute options, and with O(policies)
        (the cheap shape of the same list for large tables) and O(policies_src).
      - Two entries for the same destination (after case folding) are an error.
    type: list
    elements: dict
    suboptions:
      destination:
        description:
          - The policy table key, see O(destination).
        type: str
        required: true
      level:
        description:
          - The TLS security level, see O(level). Required when O(entries[].state=present).
        type: str
        choices: [none, may, encrypt, dane, dane-only, fingerprint, verify, secure]
      match:
        description:
          - See O(match).
        type: list
        elements: str
      ciphers:
        description:
          - See O(ciphers).
        type: str
        choices: [high, medium, low, export, 'null']
      protocols:
        description:
          - See O(protocols).
        type: list
        elements: str
      exclude:
        description:
          - See O(exclude).
        type: list
        elements: str
      tafile:
        description:
          - See O(tafile).
        type: list
        elements: path
      servername:
        description:
          - See O(servername).
        type: str
      connection_reuse:
        description:
          - See O(connection_reuse).
        type: bool
      enable_rpk:
        description:
          - See O(enable_rpk).
        type: bool
      state:
        description:
          - Whether this entry should exist.
        type: str
        choices: [present, absent]
        default: present
  policies:
    description:
      - Several entries managed in one call, as a mapping of each destination (the table key,
        see O(destination)) to its policy written as the table value, for example
        V(secure match=nexthop:dot-nexthop protocols=>=TLSv1.2); C(null) removes the
        destination (like O(entries[].state=absent)).
      - The cheap shape for large tables - Ansible validates one dictionary of strings instead
        of a list of dictionaries with eleven suboptions, which at 10,000 entries is most of the
        task's time. The filter P(mailgw.postfix_tls.tls_policy_values#filter) turns a list in the
        O(entries) shape into this mapping.
      - Each value is read as the Postfix SMTP client reads a table value and validated exactly
        as the equivalent O(entries) element (same errors, rules of this collection, version
        gates and checks against the configuration); the value written is the one that element
        writes, so switching a table between O(entries) and O(policies) changes nothing.
        Values only a table line can hold are refused (attributes after V(none), TLSRPT
        attributes).
      - Two destinations that differ only in case are an error naming both.
      - Mutually exclusive with O(entries), O(policies_src) and with O(destination) and its
        attribute options.
    type: dict
  policies_src:
    description:
      - Several entries managed in one call, read from a file B(on the managed host) in the policy
        table's own format - one C(destination policy) entry per logical line, C(#) comments,
        blank lines and continuation lines as Postfix reads a table source - for example a table
        another tool generates or a package installs. The file itself is not changed; the table at
        O(path) is edited as with O(policies).
      - The cheapest shape for very large tables - the task's arguments do not grow with the
        table, so Ansible neither templates nor sends the entries.
      - Each entry is validated exactly as the same destination and value given in O(policies)
        (same errors, rules, version gates, configuration checks and warnings); errors name the
        file and the line. Lines Postfix would ignore (a key without a value, a line that starts with
        whitespace before the first entry) and a destination given twice are refused, so no line
        of the file is silently lost.
      - There is no way to remove a destination from the file; with O(exclusive) the table
        holds exactly the file's entries.
      - An absolute path. A file that cannot be read fails the task. The file cannot be the table
        itself (O(path)).
      - Mutually exclusive with O(entries), O(policies) and with O(destination) and its attribute
        options.
    type: path
  exclusive:
    description:
      - With O(entries), O(policies) or O(policies_src), remove every entry of the table that is not listed there
        (comments and blank lines are kept), so an inventory can own the whole table.
    type: bool
    default: false
  path:
    description:
      - The table source file.
      - Default is the file named by C(smtp_tls_policy_maps) in C(main.cf), read with
        C(postconf -c CONFIG_DIR -x -h smtp_tls_policy_maps) so variables such as
        C(${maps_d_dir}) are expanded as Postfix expands them. The first key/value file entry of
        the list is used (of type O(map_type) when that is given).
      - The module fails asking for O(path) when it is not given and C(smtp_tls_policy_maps)
        names no such file.
    type: path
  map_type:
    description:
      - The lookup table type.
      - Default is the type of the C(smtp_tls_policy_maps) entry for O(path), else the Postfix
        C(default_database_type).
      - The module fails when this Postfix does not support the type (C(postconf -m)), naming the
        package that provides it, and when it contradicts the type C(smtp_tls_policy_maps) uses
        for O(path).
    type: str
    choices: [hash, btree, lmdb, cdb, texthash, dbm, sdbm]
  config_dir:
    description:
      - The Postfix configuration directory, passed as C(-c) to C(postconf) and C(postmap).
    type: path
    default: /etc/postfix
  backup:
    description:
      - Create a backup file including the timestamp information so you can get the original
        file back if you somehow clobbered it incorrectly.
    type: bool
    default: false
  main_cf:
    description:
      - C(main.cf) parameters to set once the table is written and indexed, for example
        C(smtp_tls_policy_maps) naming the table, in the same task - the safe order (Postfix is
        never pointed at a table that is not built yet) without a second task and round trip.
      - A mapping of parameter names to values, as O(mailgw.postfix_tls.postconf#module:params) takes
        them (with V(state=present) and V(list_items=exact)) - a value may be a string, a number, a boolean (written V(yes) or V(no)) or a list (joined with
        C(", ")); list values are compared item by item; every name and value is checked the same
        way (unknown names with "did you mean", values Postfix could not read).
      - Checked before anything is written - a bad name or value fails the task with the table
        untouched. Compared with C(main.cf) after the table and written with one C(postconf -e) run
        when something differs (owner and mode of C(main.cf) kept, the file read back). When the
        table was written but C(main.cf) cannot be, the task fails saying so.
      - The table's own checks (where O(path) defaults from, tables listed before it, the values
        of the cross-checks) read C(main.cf) as it is before these parameters are set.
      - RV(main_cf) reports what was (or in check mode would be) set; with O(main_cf) the task
        reports a change when the table or C(main.cf) changes (RV(table_differs) only for the table).
    type: dict
notes:
  - A new table file is created with mode V(0644) unless O(mode) is given. O(mode), O(owner) and
    O(group) apply to the source file; the index files always get the owner, group and mode of the
    source.
  - "Duplicate keys already in the file are reported as warnings and in RV(duplicates) (Postfix uses
    the first one). When the module manages a duplicated key it updates the first occurrence and
    removes the later ones, which Postfix never uses."
  - "A V(texthash) table with a duplicate key (also one differing only in case) is refused: the
    Postfix SMTP client then cannot use the table at all and defers mail to every destination,
    while C(postmap -q) still answers. Manage the key with this module (it keeps the first) or
    remove the copies."
  - V(texthash) tables are read by Postfix daemons when they start; run C(postfix reload) after a
    change.
  - In check mode RV(postmap_ran) tells whether C(postmap) would run.
seealso:
  - name: Postfix TLS README, TLS policy table
    description: The table format and the meaning of each security level.
    link: https://www.postfix.org/TLS_README.html#client_tls_policy
  - name: postconf(5) smtp_tls_policy_maps
    description: The parameter naming the table.
    link: https://www.postfix.org/postconf.5.html#smtp_tls_policy_maps
"""

EXAMPLES = r"""
- name: Require a verified certificate for example.com (table from smtp_tls_policy_maps)
  mailgw.postfix_tls.tls_policy:
    destination: example.com
    level: secure
    match: [nexthop, dot-nexthop]
    protocols: ">=TLSv1.2"

- name: No TLS on the content filter hop (CipherMail re-injection)
  mailgw.postfix_tls.tls_policy:
    destination: "[127.0.0.1]:10025"
    level: none

- name: Pin a relay by fingerprint
  mailgw.postfix_tls.tls_policy:
    destination: "[relay.example.net]:587"
    level: fingerprint
    match:
      - "3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E"

- name: Own the whole table of a second instance
  mailgw.postfix_tls.tls_policy:
    config_dir: /etc/postfix-out
    path: /etc/postfix-out/tls_policy
    map_type: lmdb
    exclusive: true
    entries:
      - destination: example.com
        level: secure
      - destination: .example.com
        level: verify
        match: [dot-nexthop]
      - destination: "[127.0.0.1]:10025"
        level: none

- name: A large table in the cheap argument shape (destination -> table value, null removes)
  mailgw.postfix_tls.tls_policy:
    exclusive: true
    policies:
      example.com: secure match=nexthop:dot-nexthop protocols=>=TLSv1.2
      .example.com: verify match=dot-nexthop
      "[127.0.0.1]:10025": none
      old.example.org: null

- name: The same mapping from a list in the entries shape
  mailgw.postfix_tls.tls_policy:
    policies: "{{ partner_entries | mailgw.postfix_tls.tls_policy_values }}"

- name: Own the table with the entries of a file another tool wrote on the gateway
  mailgw.postfix_tls.tls_policy:
    policies_src: /etc/postfix/tls_policy.d/partners.generated
    exclusive: true

- name: Remove an entry
  mailgw.postfix_tls.tls_policy:
    destination: old.example.org
    state: absent

- name: Write the table, then point main.cf at it and enforce TLS, in one task
  mailgw.postfix_tls.tls_policy:
    path: /etc/postfix/tls_policy
    map_type: hash
    policies:
      example.com: secure match=nexthop:dot-nexthop
      "[127.0.0.1]:10025": none
    main_cf:
      smtp_tls_policy_maps: hash:/etc/postfix/tls_policy
      smtp_tls_security_level: encrypt
  notify: Reload Postfix
"""

RETURN = r"""
added:
  description: Destinations (table keys) that were added.
  returned: always
  type: list
  elements: str
  sample: ["example.com"]
updated:
  description: Destinations whose entry was rewritten (or whose later duplicates were removed).
  returned: always
  type: list
  elements: str
  sample: ["[127.0.0.1]:10025"]
removed:
  description: Destinations that were removed (with O(exclusive), also the unlisted ones).
  returned: always
  type: list
  elements: str
  sample: ["old.example.org"]
changed_values:
  description:
    - For each destination in RV(updated) and RV(removed), the value of the line Postfix used
      before (C(before)) and the value after the run (C(after), null when removed), so that a
      play can tell a policy lowered (C(secure) to C(may)) from one raised.
  returned: always
  type: dict
  sample: {"partner.example": {"before": "secure match=mx.partner.example", "after": "may"},
           "old.example.org": {"before": "encrypt", "after": null}}
table_differs:
  description:
    - Whether the table (its entries, its index, its owner, group or mode) differed from what the
      task asks for; the same as C(changed) (without O(main_cf)), but kept when a task overrides
      C(changed) with C(changed_when), for example a plan run in check mode with C(changed_when) false.
  returned: success
  type: bool
  sample: false
postmap_ran:
  description: Whether C(postmap) rebuilt the index (in check mode, whether it would).
  returned: always
  type: bool
  sample: true
path:
  description: The table source file.
  returned: always
  type: str
  sample: /etc/postfix/maps.d/hash-tls-policy.map
map_type:
  description: The lookup table type.
  returned: always
  type: str
  sample: hash
map:
  description: The table as Postfix names it, C(TYPE:PATH).
  returned: always
  type: str
  sample: hash:/etc/postfix/maps.d/hash-tls-policy.map
duplicates:
  description: Keys that occurred more than once in the file before the change (Postfix uses the first).
  returned: always
  type: list
  elements: str
  sample: []
main_cf:
  description: The O(main_cf) parameters, as M(mailgw.postfix_tls.postconf) reports them.
  returned: success, when O(main_cf) is given
  type: dict
  contains:
    changed:
      description: Whether C(main.cf) changed (in check mode, would change).
      type: bool
      sample: true
    params:
      description: For each parameter, its value before and after (null when not set).
      type: dict
      sample: {"smtp_tls_policy_maps": {"before": null, "after": "hash:/etc/postfix/tls_policy"}}
    restart_required:
      description:
        - Whether a changed parameter takes effect only after C(postfix stop) and C(postfix start)
          (for example C(inet_interfaces)), not a reload.
      type: bool
      sample: false
    config_file:
      description: The C(main.cf) written.
      type: str
      sample: /etc/postfix/main.cf
backup_file:
  description: Name of the backup file that was created.
  returned: changed and O(backup=true)
  type: str
  sample: /etc/postfix/tls_policy.12345.2025-01-01@12:00:00~
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import printable_result
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_settings import (
    MainCfSettings,
    PostconfSettingsError,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_configuration import summarize_warnings
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_table import (
    TlsPolicyTable,
    TlsPolicyTableError,
    argument_spec,
)


def wire_main_cf(module, main_cf, result):
    """After the table: main.cf's parameters (the main_cf option) compared and, unless in check
    mode, written in one postconf run; RESULT (the table's) gets main_cf, changed and diff."""
    try:
        settings = main_cf.apply(module.check_mode, module._diff)
    except PostconfSettingsError as e:
        table = ('the TLS policy table %s was written and indexed, but ' % result['map']
                 if result.get('changed') else '')
        main_changed = ('main.cf was replaced and does not hold what was asked' if e.changed
                        else 'main.cf was not changed')
        module.fail_json(msg=printable_result('%smain_cf could not be set (%s): %s'
                                              % (table, main_changed, e.msg)),
                         **printable_result(dict(result, changed=bool(result.get('changed') or e.changed),
                                                 commands=e.commands or [])))
    for warning in settings.pop('warnings'):
        module.warn(warning)
    settings_diff = settings.pop('diff', None)
    if settings['changed']:
        result['changed'] = True
        if settings_diff is not None:
            result['diff'] = [result['diff'], settings_diff] if 'diff' in result else settings_diff
    result['main_cf'] = settings
    return result


def main():
    spec = argument_spec()
    spec['main_cf'] = dict(type='dict')
    module = AnsibleModule(
        argument_spec=spec,
        mutually_exclusive=[('destination', 'entries'), ('destination', 'policies'), ('entries', 'policies'),
                            ('destination', 'policies_src'), ('entries', 'policies_src'),
                            ('policies', 'policies_src')],
        supports_check_mode=True,
        add_file_common_args=True,
    )
    table = TlsPolicyTable(module)
    main_cf = None
    if module.params['main_cf']:
        # checked before anything is written: a bad name or value changes nothing
        try:
            main_cf = MainCfSettings(table.postconf, module.params['main_cf'])
        except PostconfSettingsError as e:
            module.fail_json(msg=printable_result('%s; nothing was changed' % e.msg), commands=e.commands or [])
    try:
        result = table.run()
    except TlsPolicyTableError as e:
        for warning in summarize_warnings(table.warnings):
            module.warn(printable_result(warning))
        module.fail_json(msg=printable_result(e.msg), **printable_result(e.result))
    for warning in summarize_warnings(table.warnings):
        module.warn(printable_result(warning))
    if main_cf is not None:
        result = wire_main_cf(module, main_cf, result)
    # a table with bytes that are not UTF-8 (kept as they are) shows them as \xNN
    module.exit_json(**printable_result(result))


if __name__ == '__main__':
    main()
