#!/usr/bin/python
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
---
module: postconf_info
short_description: Read Postfix parameters, services, version, map types and file facts in one call
version_added: 0.1.0
description:
  - Reads what a play needs to know about one Postfix instance before it decides anything, in one
    module call (one round trip to the host), with the real C(postconf) binary. Never changes
    anything.
  - Values of the named built-in parameters, as written (C($name) references kept) and expanded
    (C(postconf -x)), see RV(parameters) and RV(expanded).
  - Values of user-defined parameters such as CipherMail's C(maps_d_dir), which C(postconf) only
    shows while another value references them, see O(user_parameters).
  - The C(master.cf) services (C(postconf -M)) and their C(-o) parameter overrides
    (C(postconf -P)), the Postfix version (C(mail_version)) and the lookup table types this
    Postfix supports (C(postconf -m)).
  - C(stat)-like facts (exists, regular file, directory, readable, size) for named files and for
    the files that parameters name, such as the smtpd certificate and key, so a play can check
    them without a C(stat) task per file.
author:
  - mailgw.postfix_tls developers (!UNKNOWN)
options:
  config_dir:
    description:
      - Postfix configuration directory (C(postconf -c)), for multi-instance Postfix.
    type: path
    default: /etc/postfix
  parameters:
    description:
      - Names of parameters to read, for example V(smtp_tls_security_level). Each is reported
        with the value in effect - the one C(main.cf) sets, else Postfix's default.
      - A name that C(postconf) does not know is left out of RV(parameters) and RV(expanded) and
        listed in RV(unknown_parameters) (a parameter that a newer Postfix removed, or a typo).
    type: list
    elements: str
    default: []
  user_parameters:
    description:
      - Names of user-defined parameters to read, for example V(maps_d_dir). Postfix only shows
        such a name while another value references it; the module references it for this read
        only (a C(-o) override, nothing is written).
      - A name is reported in RV(parameters) and RV(expanded) when C(main.cf) sets it, and left
        out otherwise.
    type: list
    elements: str
    default: []
  files:
    description:
      - Absolute paths to report in RV(files), for example a certificate that a play is about to
        configure, or the directory a table is to be written to. Symbolic links are followed.
      - Taken as given (no C(~) or C($VAR) expansion), so RV(files) is keyed by exactly these
        strings.
    type: list
    elements: str
    default: []
  file_parameters:
    description:
      - Names of parameters (built-in or user-defined) whose expanded values name files or
        directories, for example V(smtpd_tls_cert_file), V(smtpd_tls_chain_files) or
        V(maps_d_dir). Each file is reported in RV(files), and the files of each name in
        RV(parameter_files).
      - The value of a name that ends in C(_files) is a Postfix list (split at commas and
        whitespace); any other value is one path. An empty or unset value names no file.
      - Names not given in O(parameters) or O(user_parameters) are read as built-in parameters.
    type: list
    elements: str
    default: []
  tls_policy_plan:
    description:
      - Also plan a M(mailgw.postfix_tls.tls_policy) task with these options, in the same round
        trip - what that module would change in check mode (nothing is written, not even a
        temporary file), with the same validation of every entry, the same checks against this
        Postfix and its configuration, and the same warnings. See RV(tls_policy_plan).
      - A play that reads the host with this module can tell whether the table task needs to run
        at all without a second module call; the role M(mailgw.postfix_tls.enforce_tls) does so.
      - A refused plan (an entry Postfix cannot use, a map type this Postfix lacks, ...) does not
        fail the read; RV(tls_policy_plan.failed) and RV(tls_policy_plan.msg) say why.
    type: dict
    suboptions:
      policies:
        description:
          - Destination to policy string (as in the table), V(null) to remove; as
            O(mailgw.postfix_tls.tls_policy#module:policies).
        type: dict
        required: true
      exclusive:
        description: As O(mailgw.postfix_tls.tls_policy#module:exclusive).
        type: bool
        default: false
      path:
        description:
          - As O(mailgw.postfix_tls.tls_policy#module:path). May reference parameters this call
            reads (O(parameters), O(user_parameters)) as C($name), C(${name}), C($(name)),
            C(${name?text}) (text when the value is not empty) and C(${name:text}) (text when it
            is empty), expanded with their values as Postfix does, so a path that depends on the
            host, such as V(${maps_d_dir}${maps_d_dir:/etc/postfix/maps.d}/${default_database_type}-tls-policy.map),
            is known in the same call.
        type: str
      map_type:
        description:
          - As O(mailgw.postfix_tls.tls_policy#module:map_type); parameter references as in
            O(tls_policy_plan.path).
        type: str
      owner:
        description: As O(mailgw.postfix_tls.tls_policy#module:owner).
        type: str
      group:
        description: As O(mailgw.postfix_tls.tls_policy#module:group).
        type: str
      mode:
        description: As O(mailgw.postfix_tls.tls_policy#module:mode).
        type: raw
  smtpd_key_pairs:
    description:
      - Also check, with the OpenSSL library of the target (through Python's C(ssl) module), that
        each certificate smtpd loads can be loaded with its key - the RSA pair
        (C(smtpd_tls_cert_file), C(smtpd_tls_key_file), which defaults to the certificate file)
        and the ECDSA pair (C(smtpd_tls_eccert_file), C(smtpd_tls_eckey_file)), as main.cf has
        them unless O(smtpd_key_pairs.cert_file) or O(smtpd_key_pairs.key_file) say otherwise.
      - A file that is not PEM, holds no certificate, a key that belongs to another certificate
        or an encrypted key (Postfix takes no passphrase) makes smtpd answer STARTTLS with
        C(454 4.7.0 TLS not available due to local problem). Files in C(smtpd_tls_chain_files)
        are not checked.
    type: dict
    suboptions:
      cert_file:
        description: The certificate file a later task sets as C(smtpd_tls_cert_file) (empty - main.cf's).
        type: str
        default: ''
      key_file:
        description: The key file a later task sets as C(smtpd_tls_key_file) (empty - main.cf's).
        type: str
        default: ''
  tls_policy_levels:
    description:
      - Also work out what M(mailgw.postfix_tls.tls_policy_levels) returns for these options, in
        the same round trip - the TLS level the SMTP client applies to each destination now and
        after the planned change, with O(tls_policy_levels.log) the mail log's plaintext next hops
        and clients, with O(tls_policy_levels.probe) the probes of the destinations made stricter.
        See RV(tls_policy_levels).
      - With O(tls_policy_plan), the planned table, its entries and O(tls_policy_plan.exclusive)
        are the plan's unless given here, so a play can read the host, plan the table and run its
        preflight in one module call; the role M(mailgw.postfix_tls.enforce_tls) does so.
      - A problem (an option the module would refuse, a table it cannot look up, a probe that
        cannot run) does not fail the read; RV(tls_policy_levels.failed) and
        RV(tls_policy_levels.msg) say why.
    type: dict
    suboptions:
      destinations:
        description:
          - As O(mailgw.postfix_tls.tls_policy_levels#module:destinations).
          - Unlike that module, the destinations of the planned entries (O(tls_policy_levels.policies)
            or the plan's) are destinations too, after these - a preflight looks at every destination
            whose entry the change writes or removes without listing them twice.
        type: list
        elements: str
        default: []
      policies:
        description:
          - As O(mailgw.postfix_tls.tls_policy_levels#module:policies).
          - Default - O(tls_policy_plan.policies), else none.
        type: dict
      exclusive:
        description:
          - As O(mailgw.postfix_tls.tls_policy_levels#module:exclusive).
          - Default - O(tls_policy_plan.exclusive), else V(false).
        type: bool
      table:
        description:
          - As O(mailgw.postfix_tls.tls_policy_levels#module:table).
          - Default - the table of O(tls_policy_plan) (its path and map type, parameter references
            expanded), else as that module's default.
        type: str
      level:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:level).
        type: str
        choices: [none, may, encrypt, dane, dane-only, fingerprint, verify, secure]
      smtpd_level:
        description:
          - The planned C(smtpd_tls_security_level). Used only to tell whether the change raises
            the SMTP server to V(encrypt) (O(tls_policy_levels.only_when_changing),
            RV(tls_policy_levels.change)), when it refuses clients that do not use STARTTLS. Default -
            unchanged.
        type: str
        choices: [none, may, encrypt]
      keep_stricter_level:
        description:
          - Keep today's C(smtp_tls_security_level) (C(smtpd_tls_security_level)) instead of
            O(tls_policy_levels.level) (O(tls_policy_levels.smtpd_level)) when it is stricter - the
            no-downgrade rule of the role M(mailgw.postfix_tls.enforce_tls). The level used is in
            RV(tls_policy_levels.level) (RV(tls_policy_levels.smtpd_level)).
        type: bool
        default: false
      only_when_changing:
        description:
          - Work out nothing (RV(tls_policy_levels.skipped)) when the change cannot give any
            destination another level nor raise the SMTP server to V(encrypt) - the planned table is
            what the table holds (RV(tls_policy_plan.table_differs) is false), it is listed in
            C(smtp_tls_policy_maps) and the planned levels are today's. Then no table is looked up,
            the log is not read and nothing is probed, so a converged host pays nothing for it.
          - Without O(tls_policy_plan), planned O(tls_policy_levels.policies) count as a change.
        type: bool
        default: false
      max:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:max).
        type: int
        default: 50
      log:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:log).
        type: bool
        default: false
      log_files:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:log_files).
        type: list
        elements: path
      log_source:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:log_source).
        type: str
        choices: [auto, file, journal]
        default: auto
      log_window:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:log_window).
        type: str
        default: 7d
      log_syslog_name:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:log_syslog_name).
        type: str
      probe:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:probe).
        type: bool
        default: false
      connect_timeout:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:connect_timeout).
        type: int
        default: 10
      command_timeout:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:command_timeout).
        type: int
        default: 30
      concurrency:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:concurrency).
        type: int
        default: 4
      ca_file:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:ca_file).
        type: path
      ca_path:
        description: As O(mailgw.postfix_tls.tls_policy_levels#module:ca_path).
        type: path
notes:
  - Runs C(postconf) five times (values as written, values expanded, C(-M), C(-P), C(-m)), all
    in the C locale; no C(postconf) call writes. O(tls_policy_plan) adds no C(postconf) run (what
    the plan needs is read with the rest) and no C(postmap) run. O(tls_policy_levels) adds, when
    it works the levels out, the C(postconf), C(postmap) and C(posttls-finger) runs of
    M(mailgw.postfix_tls.tls_policy_levels), less the parameters read with the rest.
  - Fails when C(postconf) cannot read the configuration (no C(main.cf) in O(config_dir),
    Postfix not installed), naming the command and its error.
attributes:
  check_mode:
    description: Reads only, so it runs unchanged in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is nothing to show.
    support: none
  platform:
    description: Needs the C(postconf) binary of Postfix on the target.
    support: full
    platforms: posix
seealso:
  - module: mailgw.postfix_tls.postconf
  - module: mailgw.postfix_tls.tls_policy
  - name: postconf(1)
    description: The Postfix configuration utility.
    link: https://www.postfix.org/postconf.1.html
'''

EXAMPLES = r'''
- name: Read the TLS settings, the services and the certificate files
  mailgw.postfix_tls.postconf_info:
    parameters:
      - smtp_tls_security_level
      - smtpd_tls_security_level
      - smtp_tls_policy_maps
      - default_database_type
    user_parameters: [maps_d_dir]
    file_parameters: [smtpd_tls_cert_file, smtpd_tls_key_file, smtpd_tls_chain_files]
  register: postfix

- name: Refuse to enforce incoming TLS without a readable certificate
  ansible.builtin.assert:
    that: postfix.files[item].readable and postfix.files[item].size > 0
  loop: "{{ postfix.parameter_files.smtpd_tls_cert_file }}"

- name: Is the content filter's re-injection service defined?
  ansible.builtin.debug:
    msg: "{{ '127.0.0.1:10026/inet' in postfix.services }}"

- name: Does this Postfix support lmdb tables?
  ansible.builtin.debug:
    msg: "{{ 'lmdb' in postfix.map_types }} (Postfix {{ postfix.version }})"

- name: Read, plan the table and run the preflight in one round trip
  mailgw.postfix_tls.postconf_info:
    parameters: [smtp_tls_security_level, smtpd_tls_security_level]
    tls_policy_plan:
      path: /etc/postfix/tls_policy
      policies:
        example.com: secure match=nexthop
        "[127.0.0.1]:10025": none
    tls_policy_levels:
      destinations: ["[relay.example.org]:587"]
      level: encrypt
      keep_stricter_level: true
      only_when_changing: true
      log: true
      probe: true
  register: host

- name: Stop when a destination would defer
  ansible.builtin.assert:
    that:
      - not host.tls_policy_levels.failed
      - host.tls_policy_levels.skipped or host.tls_policy_levels.deferring | length == 0
    fail_msg: "{{ host.tls_policy_levels.probes | selectattr('would_defer') | map(attribute='reason') | list }}"

- name: A second instance
  mailgw.postfix_tls.postconf_info:
    config_dir: /etc/postfix-out
    parameters: [smtp_tls_security_level]
'''

RETURN = r'''
config_dir:
  description: The configuration directory that was read.
  returned: success
  type: str
  sample: /etc/postfix
parameters:
  description:
    - The named parameters with their values as written (in C(main.cf), or Postfix's default),
      C($name) references not expanded.
  returned: success
  type: dict
  sample:
    smtp_tls_security_level: may
    smtpd_tls_key_file: $smtpd_tls_cert_file
    smtp_tls_policy_maps: hash:${maps_d_dir}/hash-tls-policy.map
    maps_d_dir: /etc/postfix/maps.d
expanded:
  description: The same parameters with C($name) references expanded (C(postconf -x)).
  returned: success
  type: dict
  sample:
    smtp_tls_security_level: may
    smtpd_tls_key_file: /etc/ssl/certs/ssl-cert-snakeoil.pem
    smtp_tls_policy_maps: hash:/etc/postfix/maps.d/hash-tls-policy.map
    maps_d_dir: /etc/postfix/maps.d
unknown_parameters:
  description: Names given in O(parameters) or O(file_parameters) that this Postfix does not know.
  returned: success
  type: list
  elements: str
  sample: []
services:
  description: The C(master.cf) services as C(SERVICE/TYPE), sorted.
  returned: success
  type: list
  elements: str
  sample: [127.0.0.1:10026/inet, cleanup/unix, smtp/inet, smtp/unix]
service_commands:
  description:
    - The command of each C(master.cf) service (C(postconf -M)), keyed by C(SERVICE/TYPE), for example
      C(smtpd) or C(postscreen) for a server, C(smtp) for an SMTP client transport.
  returned: success
  type: dict
  sample:
    smtp/inet: smtpd
    smtp/unix: smtp
    127.0.0.1:10026/inet: smtpd
service_parameters:
  description:
    - The C(-o) parameter overrides of the C(master.cf) services that have any
      (C(postconf -P)), keyed by C(SERVICE/TYPE), as written (not expanded).
  returned: success
  type: dict
  sample:
    127.0.0.1:10026/inet:
      content_filter: ""
      smtpd_tls_security_level: none
version:
  description: The Postfix version (C(mail_version)).
  returned: success
  type: str
  sample: 3.7.11
version_info:
  description: The Postfix version as a list of numbers, for comparisons.
  returned: success
  type: list
  elements: int
  sample: [3, 7, 11]
map_types:
  description: The lookup table types this Postfix supports (C(postconf -m)), sorted.
  returned: success
  type: list
  elements: str
  sample: [btree, cidr, environ, hash, inline, lmdb, texthash]
parameter_files:
  description: For each name in O(file_parameters), the paths its expanded value names.
  returned: success
  type: dict
  sample:
    smtpd_tls_cert_file: [/etc/ssl/certs/ssl-cert-snakeoil.pem]
    smtpd_tls_chain_files: []
tls_policy_plan:
  description:
    - With O(tls_policy_plan), what M(mailgw.postfix_tls.tls_policy) would do in check mode - its
      return values (RV(mailgw.postfix_tls.tls_policy#module:table_differs),
      RV(mailgw.postfix_tls.tls_policy#module:map), RV(mailgw.postfix_tls.tls_policy#module:path),
      RV(mailgw.postfix_tls.tls_policy#module:map_type), C(added), C(updated), C(removed), ...),
      with C(failed) and, when refused, C(msg) (and C(errors)).
    - When the table's directory does not exist, only C(failed=false), C(table_differs=true),
      C(directory_missing=true) and C(path) (the table is new; its entries are checked when it is
      written).
  returned: O(tls_policy_plan) given
  type: dict
  sample:
    failed: false
    table_differs: false
    map: hash:/etc/postfix/tls_policy
    path: /etc/postfix/tls_policy
    map_type: hash
    added: []
    updated: []
    removed: []
  contains:
    failed:
      description: Whether the plan was refused (nothing would be written).
      type: bool
    msg:
      description: Why the plan was refused, naming the value and the rule it breaks.
      type: str
      returned: refused
    table_differs:
      description: Whether the table task would change anything (true when refused).
      type: bool
    map:
      description: The table as C(TYPE:PATH).
      type: str
      returned: planned
    path:
      description: The table's path, its parameter references expanded.
      type: str
    directory_missing:
      description: The table's directory does not exist yet (the table is new).
      type: bool
      returned: the directory is missing
    changed_values:
      description:
        - For each destination the table task would update or remove, its value now (C(before))
          and after (C(after), null when removed), as
          RV(mailgw.postfix_tls.tls_policy#module:changed_values); the enforce_tls role warns
          about a policy lowered with it.
      type: dict
      returned: planned
smtpd_key_pairs:
  description: With O(smtpd_key_pairs), each certificate smtpd loads with its key.
  returned: O(smtpd_key_pairs) given
  type: list
  elements: dict
  contains:
    cert:
      description: The certificate file.
      type: str
    key:
      description: The key file (the certificate file when the key is in it).
      type: str
    problem:
      description: Why OpenSSL cannot load them together (its error), or null when it can or a
        file cannot be opened (RV(files) says why).
      type: str
tls_policy_levels:
  description:
    - With O(tls_policy_levels), what M(mailgw.postfix_tls.tls_policy_levels) returns for its
      options (RV(mailgw.postfix_tls.tls_policy_levels#module:destinations),
      RV(mailgw.postfix_tls.tls_policy_levels#module:affected),
      RV(mailgw.postfix_tls.tls_policy_levels#module:level_before),
      RV(mailgw.postfix_tls.tls_policy_levels#module:level), C(table), C(policy_maps), C(probes),
      C(deferring), C(log_relays), C(log_clients), C(log_clients_plaintext), C(log_tls_logged),
      C(log_sources), C(commands)), with C(failed), C(skipped), C(change), C(smtpd_level_before)
      and C(smtpd_level).
    - When skipped, only C(failed=false), C(skipped=true), C(skip_reason), C(change=null), the
      levels and the table.
  returned: O(tls_policy_levels) given
  type: dict
  sample:
    failed: false
    skipped: false
    change: smtp_tls_security_level goes from may to encrypt
    level_before: may
    level: encrypt
    smtpd_level_before: may
    smtpd_level: may
    table: hash:/etc/postfix/tls_policy
    destinations: []
    affected: []
    probes: []
    deferring: []
  contains:
    failed:
      description: Whether the levels could not be worked out (the read itself succeeded).
      type: bool
    msg:
      description: Why not, naming the option or the command.
      type: str
      returned: failed
    skipped:
      description:
        - Whether nothing was worked out - with O(tls_policy_levels.only_when_changing) the change
          alters no lookup, or the plan of O(tls_policy_plan) was refused (false when failed).
      type: bool
    skip_reason:
      description: Why nothing was worked out.
      type: str
      returned: skipped
    change:
      description:
        - What in the planned change can give a destination another level or raise the SMTP server
          to V(encrypt) (the first found), null when nothing does.
      type: str
      returned: not failed and the plan was not refused
    level_before:
      description: C(smtp_tls_security_level) now (obsolete settings counted).
      type: str
      returned: not failed and the plan was not refused
    level:
      description: C(smtp_tls_security_level) after the change (O(tls_policy_levels.keep_stricter_level) applied).
      type: str
      returned: not failed and the plan was not refused
    smtpd_level_before:
      description: C(smtpd_tls_security_level) now (obsolete settings counted).
      type: str
      returned: not failed and the plan was not refused
    smtpd_level:
      description: C(smtpd_tls_security_level) after the change (O(tls_policy_levels.keep_stricter_level) applied).
      type: str
      returned: not failed and the plan was not refused
files:
  description:
    - Facts of every path of O(files) and RV(parameter_files), keyed by the path as given.
      Symbolic links are followed.
  returned: success
  type: dict
  sample:
    /etc/ssl/certs/ssl-cert-snakeoil.pem:
      exists: true
      isreg: true
      isdir: false
      readable: true
      size: 1107
  contains:
    exists:
      description: Whether the path (after following links) exists.
      type: bool
    isreg:
      description: Whether it is a regular file.
      type: bool
    isdir:
      description: Whether it is a directory.
      type: bool
    readable:
      description: Whether the user the module runs as can read it.
      type: bool
    size:
      description: Size in bytes; 0 when it does not exist.
      type: int
'''

import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.policy_levels import (
    CHANGE_PARAMETERS,
    OPTIONS_SPEC,
    LevelsError,
    RaisingModule,
    check_input,
    levels,
    looked_up_keys,
    lookup_change,
    parameters_needed,
    resolve_table,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    SMTPD_CERTIFICATE_PARAMETERS,
    check_name,
    expand_references,
    key_pair_problem,
    planned_level,
    printable_result,
    smtpd_key_pairs,
    tls_security_level,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    Postconf,
    PostfixCommandError,
    Postmap,
    version_tuple,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import split_list, unique
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_configuration import (
    CROSS_CHECK_PARAMETERS,
    summarize_warnings,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_table import (
    TlsPolicyTable,
    TlsPolicyTableError,
    plan_params,
)

# What a tls_policy plan reads besides the caller's parameters (one postconf call
# for all): the table's wiring and type, and the configuration its checks need.
PLAN_PARAMETERS = ('smtp_tls_policy_maps', 'default_database_type', 'smtp_tls_fingerprint_cert_match') \
    + CROSS_CHECK_PARAMETERS

# A name that references the user-defined parameters for the read only
# (postconf shows a user-defined name only while some value references it).
REFERENCE_NAME = 'mailgw_postconf_info_reference'


def file_stat(path):
    """stat-like facts of PATH, links followed."""
    try:
        st = os.stat(path)
    except OSError:
        return {'exists': False, 'isreg': False, 'isdir': False, 'readable': False, 'size': 0}
    return {
        'exists': True,
        'isreg': stat.S_ISREG(st.st_mode),
        'isdir': stat.S_ISDIR(st.st_mode),
        'readable': os.access(path, os.R_OK),
        'size': st.st_size,
    }


def files_of(name, value):
    """The paths a parameter value names: a Postfix list for *_files, else one path."""
    value = (value or '').strip()
    if not value:
        return []
    if name.endswith('_files'):
        return split_list(value)
    return [value]


def read(postconf, builtin, user, also=()):
    """Values as written and expanded, version, services, their commands and overrides, map types:
    five postconf calls. ALSO: built-in names read with them for a plan (remembered,
    not returned)."""
    requested = builtin + user
    overrides = {REFERENCE_NAME: ' '.join('${%s}' % n for n in user)} if user else None
    raw = postconf.parameters(unique(requested + ['mail_version'] + list(also)), overrides=overrides)
    expanded = postconf.parameters(unique(requested + list(also)), expand=True, overrides=overrides)
    postconf.remember(raw, expand=False)
    postconf.remember(expanded, expand=True)
    if 'mail_version' in raw:
        postconf.remember({'mail_version': raw['mail_version']}, expand=True)   # no $name in it
    for name in also:
        if name not in requested:
            raw.pop(name, None)
            expanded.pop(name, None)
    version = raw.get('mail_version', '')
    if 'mail_version' not in requested:
        raw.pop('mail_version', None)
    services = sorted('%s/%s' % service for service in postconf.services())
    commands = dict(('%s/%s' % service, command) for service, command in postconf.service_commands().items())
    overrides = dict(('%s/%s' % service, settings)
                     for service, settings in postconf.service_overrides().items())
    map_types = sorted(postconf.map_types())
    return raw, expanded, version, services, commands, overrides, map_types


def plan_table(plan, values):
    """(path, map_type) of the tls_policy_plan options PLAN, their $name references expanded
    with VALUES (None where not given); ValueError names a reference VALUES lacks."""
    table = []
    for name in ('path', 'map_type'):
        try:
            table.append(expand_references(plan[name], values) if plan[name] else None)
        except KeyError as e:
            raise ValueError('tls_policy_plan: %s %r references $%s, which this call does not read: add it to '
                             'parameters or user_parameters' % (name, plan[name], e.args[0]))
    return tuple(table)


def plan_tls_policy(module, postconf, plan, values):
    """What mailgw.postfix_tls.tls_policy would do with PLAN's options, in check mode
    (module.check_mode is set: this module never writes). VALUES: the parameters read,
    expanded, for the references in path and map_type."""
    try:
        path, map_type = plan_table(plan, values)
    except ValueError as exc:
        return dict(failed=True, table_differs=True, msg=str(exc)), []
    options = dict(path=path, map_type=map_type)
    if options['path'] and not os.path.isdir(os.path.dirname(options['path'])):
        # a new directory (an earlier task creates it): the table is new
        return dict(failed=False, table_differs=True, directory_missing=True, path=options['path']), []
    params = plan_params(postconf.config_dir, policies=plan['policies'], exclusive=plan['exclusive'],
                         path=options['path'], map_type=options['map_type'] or None, owner=plan['owner'],
                         group=plan['group'], mode=plan['mode'])
    # a tafile that is not there refuses the plan as the table task would refuse it, unless
    # the play itself runs in check mode (an earlier task may create the file); the plan
    # itself always runs in check mode: this module never writes
    play_check_mode = module.check_mode
    module.check_mode = True
    table = TlsPolicyTable(module, params=params, diff=False, postconf=postconf,
                           play_check_mode=play_check_mode)
    try:
        result = dict(table.run(), failed=False)
    except TlsPolicyTableError as e:
        result = dict(e.result, failed=True, msg=e.msg, table_differs=True)
    return result, summarize_warnings(table.warnings)


def work_out_levels(module, postconf, options, plan, plan_result, values):
    """The tls_policy_levels option's result: what mailgw.postfix_tls.tls_policy_levels returns
    for OPTIONS, the table, its planned entries and exclusive taken from the tls_policy_plan
    options PLAN (and its result PLAN_RESULT) where OPTIONS does not give them. With
    only_when_changing, nothing is worked out (skipped) when the change cannot give a
    destination another level nor raise smtpd to encrypt. A problem is returned (failed, msg),
    never raised: the read itself succeeded."""
    p = dict(options)
    if p['policies'] is None:
        p['policies'] = plan['policies'] if plan else {}
    if p['exclusive'] is None:
        p['exclusive'] = plan['exclusive'] if plan else False
    # the destinations of the planned entries are destinations too, after the given ones
    # (not a key Postfix never looks up: an entry removed under it changes no level)
    p['destinations'] = list(p['destinations']) + looked_up_keys(p['policies'])
    if plan_result is not None and plan_result.get('failed'):
        return dict(failed=False, skipped=True, skip_reason='the tls_policy_plan was refused: %s'
                    % plan_result.get('msg', ''))
    if p['table'] is None and plan:
        try:
            path, map_type = plan_table(plan, values)
        except ValueError:
            path, map_type = None, None     # the plan failed and said why
        if path:
            p['table'] = '%s:%s' % (map_type, path) if map_type else path
    planned, errors = check_input(p, prefix='tls_policy_levels.')
    if errors:
        return dict(failed=True, msg='; '.join(errors))

    commands = []
    try:
        # what tells whether the change alters a lookup (read with the rest, main()); what the
        # levels, the log and the probes need only when it does
        params = postconf.parameters(CHANGE_PARAMETERS, expand=True)
    except PostfixCommandError as exc:
        return dict(failed=True, msg='cannot read the TLS settings in %s: %s' % (postconf.config_dir, exc))
    smtp_now, smtpd_now = tls_security_level(params, 'smtp'), tls_security_level(params, 'smtpd')
    p['level'] = planned_level(p['level'], smtp_now, 'smtp', p['keep_stricter_level'])
    smtpd_after = planned_level(p['smtpd_level'], smtpd_now, 'smtpd', p['keep_stricter_level'])
    info = dict(smtpd_level_before=smtpd_now, smtpd_level=smtpd_after)
    try:
        table = resolve_table(p['table'], params.get('smtp_tls_policy_maps', ''), postconf.config_dir,
                              params.get('default_database_type') or 'hash')[0]
    except ValueError as exc:
        return dict(info, failed=True, msg='tls_policy_levels.table: %s' % exc)
    # without a plan the entries of policies count as changing the table
    differs = bool(p['policies']) if plan_result is None else bool(plan_result.get('table_differs', True))
    change = lookup_change(params, table, differs, p['level'], smtpd_after if p['smtpd_level'] else None)
    info['change'] = change
    if p['only_when_changing'] and change is None:
        return dict(info, failed=False, skipped=True, level_before=smtp_now, level=p['level'], table=table,
                    skip_reason='nothing this change plans gives a destination another TLS level or raises '
                                'smtpd to encrypt')
    # a failure (a table postmap cannot read, a log or a program that is not there) is the
    # result's, not the read's: the read itself succeeded
    raising = RaisingModule(module)
    try:
        params = postconf.parameters(parameters_needed(p) + CHANGE_PARAMETERS, expand=True)
    except PostfixCommandError as exc:
        return dict(info, failed=True, msg='cannot read the TLS settings in %s: %s' % (postconf.config_dir, exc))
    try:
        result = levels(raising, postconf, Postmap(raising, postconf.config_dir, commands), p, params, planned,
                        commands)
    except LevelsError as exc:
        return dict(info, failed=True, msg=exc.msg, commands=commands, **exc.fields)
    result.pop('changed', None)
    return dict(result, failed=False, skipped=False, **info)


LEVELS_OPTIONS = dict(
    # the read plans from the role's inventory (policies, or the plan's): not from a file
    ((name, spec) for name, spec in OPTIONS_SPEC.items() if name != 'policies_src'),
    policies=dict(type='dict'),
    exclusive=dict(type='bool'),
    smtpd_level=dict(type='str', choices=['none', 'may', 'encrypt']),
    keep_stricter_level=dict(type='bool', default=False),
    only_when_changing=dict(type='bool', default=False),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_dir=dict(type='path', default='/etc/postfix'),
            parameters=dict(type='list', elements='str', default=[]),
            user_parameters=dict(type='list', elements='str', default=[]),
            files=dict(type='list', elements='str', default=[]),
            file_parameters=dict(type='list', elements='str', default=[]),
            tls_policy_plan=dict(type='dict', options=dict(
                policies=dict(type='dict', required=True),
                exclusive=dict(type='bool', default=False),
                path=dict(type='str'),
                map_type=dict(type='str'),
                owner=dict(type='str'),
                group=dict(type='str'),
                mode=dict(type='raw'),
            )),
            tls_policy_levels=dict(type='dict', options=LEVELS_OPTIONS),
            smtpd_key_pairs=dict(type='dict', no_log=False, options=dict(
                cert_file=dict(type='str', default=''),
                key_file=dict(type='str', default=''),
            )),
        ),
        supports_check_mode=True,
    )
    params = module.params
    config_dir = params['config_dir']
    errors = []
    for option in ('parameters', 'user_parameters', 'file_parameters'):
        for name in params[option]:
            problem = check_name(name)
            if problem:
                errors.append('%s: %s' % (option, problem))
    for path in params['files']:
        if not os.path.isabs(path):
            errors.append('files: %r is not an absolute path' % (path,))
    if errors:
        module.fail_json(msg='; '.join(errors))

    user = unique(params['user_parameters'])
    builtin = [n for n in unique(params['parameters'] + params['file_parameters']) if n not in user]
    # A plan (tls_policy_plan) reads through the same Postconf: what this read got
    # (values, master.cf services, map types) is not read again.
    postconf = Postconf(module, config_dir, cache=True)
    also = PLAN_PARAMETERS if params['tls_policy_plan'] is not None else ()
    if params['smtpd_key_pairs'] is not None:
        also = tuple(also) + SMTPD_CERTIFICATE_PARAMETERS
    if params['tls_policy_levels'] is not None:
        # whether the change alters a lookup is read with the rest, in the same postconf calls;
        # what the levels, the log and the probes need only when it does (work_out_levels)
        also = tuple(also) + CHANGE_PARAMETERS
    try:
        raw, expanded, version, services, commands, service_parameters, map_types = read(
            postconf, builtin, user, also)
    except PostfixCommandError as exc:
        module.fail_json(msg='postconf cannot read the configuration in %s: %s'
                             % (config_dir, (exc.stderr or exc.stdout or str(exc)).strip()),
                         cmd=exc.cmd, rc=exc.rc, stderr=exc.stderr, commands=postconf.commands)

    parameter_files = {}
    for name in unique(params['file_parameters']):
        parameter_files[name] = files_of(name, expanded.get(name))
    paths = unique(list(params['files']) + [p for name in parameter_files for p in parameter_files[name]])

    extra = {}
    if params['smtpd_key_pairs'] is not None:
        # read with the rest (also): the values are Postconf's cache
        pairs = params['smtpd_key_pairs']
        written = postconf.parameters(SMTPD_CERTIFICATE_PARAMETERS)
        in_effect = postconf.parameters(SMTPD_CERTIFICATE_PARAMETERS, expand=True)
        pair_files = dict((name, files_of(name, in_effect.get(name))) for name in SMTPD_CERTIFICATE_PARAMETERS)
        extra['smtpd_key_pairs'] = [
            dict(cert=cert, key=key, problem=key_pair_problem(cert, key))
            for cert, key in smtpd_key_pairs(written, pair_files, pairs['cert_file'], pairs['key_file'])]
    # a user-defined parameter main.cf does not set expands to nothing, as in Postfix
    values = dict.fromkeys(user, '')
    values.update(expanded)
    if params['tls_policy_plan'] is not None:
        extra['tls_policy_plan'], warnings = plan_tls_policy(module, postconf, params['tls_policy_plan'],
                                                             values)
        for warning in warnings:
            module.warn(printable_result(warning))
    if params['tls_policy_levels'] is not None:
        extra['tls_policy_levels'] = dict(dict(skipped=False), **work_out_levels(
            module, postconf, params['tls_policy_levels'], params['tls_policy_plan'], extra.get('tls_policy_plan'),
            values))

    # values and table lines with bytes that are not UTF-8 show them as \xNN
    module.exit_json(**printable_result(dict(
        changed=False,
        config_dir=config_dir,
        parameters=raw,
        expanded=expanded,
        unknown_parameters=[n for n in builtin if n not in raw],
        services=services,
        service_commands=commands,
        service_parameters=service_parameters,
        version=version,
        version_info=list(version_tuple(version)),
        map_types=map_types,
        parameter_files=parameter_files,
        files=dict((path, file_stat(path)) for path in paths),
        **extra
    )))


if __name__ == '__main__':
    main()
