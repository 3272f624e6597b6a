#!/usr/bin/python
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r'''
---
module: postconf
short_description: Manage Postfix main.cf parameters and master.cf service overrides with postconf
version_added: 0.1.0
description:
  - Sets or removes explicit Postfix parameters in C(main.cf), or C(-o) overrides of one
    C(master.cf) service, using the real C(postconf) binary (argument lists, no shell).
    C(postconf) rewrites the file itself through a temporary file that it renames into place.
  - Reads the current explicit settings once, compares, and runs at most one C(postconf)
    invocation that writes. Nothing is run that writes in check mode.
  - Values of list parameters (lookup tables, restriction lists, domain, network, interface
    and protocol lists, see O(value)) are compared item by item, so C(a, b), C(a,b) and C(a b)
    are equal and an equal value is not rewritten. Other values are compared exactly, after
    removing leading and trailing whitespace (which Postfix ignores).
  - Unknown parameter names are refused with the closest known names, because Postfix
    ignores a misspelt parameter and the intended policy silently does not apply.
  - Reports whether the change needs a Postfix restart rather than a reload in RV(restart_required).
author:
  - mailgw.postfix_tls developers (!UNKNOWN)
options:
  name:
    description:
      - Name of one parameter to set or remove.
      - Must consist of letters, digits and C(_), and C(-) or C(.) after the first character (the
        per-transport parameters of a master.cf service such as C(smtp-amavis) are named after it,
        C(smtp-amavis_destination_recipient_limit)).
      - Mutually exclusive with O(params).
    type: str
  value:
    description:
      - Value for O(name) when O(state=present). Required then.
      - A string, a number, a boolean (written as C(yes) or C(no), the form of Postfix
        booleans) or a list of strings, which is written joined with C(", ") as Postfix lists
        are written. A value given as a list is always compared item by item.
      - Treated as lists (compared item by item, separators being commas and whitespace
        outside C({}) braces, as Postfix splits lists) are parameters whose names end in
        C(_maps), C(_restrictions), C(_domains), C(_networks), C(_interfaces), C(_protocols),
        C(_checks), C(_classes), C(_trust_anchor_file), C(_exclude_ciphers), C(_cert_match),
        C(_security_options), C(_mechanism_filter), C(_chain_files) or C(_pix_workarounds), and
        C(mydestination), C(mynetworks), C(smtpd_milters), C(non_smtpd_milters),
        C(postscreen_dnsbl_sites), C(postscreen_access_list) and a few other list parameters. Inside a braced item (a
        milter or policy service with its settings) the parts are compared split on commas and
        blanks as Postfix reads them, so C({ inet:127.0.0.1:8891, default_action=accept }) and
        C({inet:127.0.0.1:8891,default_action=accept}) are the same milter.
      - Leading and trailing whitespace is removed (Postfix drops it too).
      - Must not contain a newline, a carriage return, a NUL or any other control character
        except tab. For a service override (O(service)) it must not contain blanks either,
        since C(postconf -P) cannot write that; the items of a list parameter are written
        joined with C(",") instead (C("permit_sasl_authenticated, reject") as
        C(permit_sasl_authenticated,reject)).
      - C($) must start something Postfix can expand, as Postfix's own parser checks it,
        since Postfix refuses to read a C(main.cf) with a value it cannot expand ("macro
        processing error"). Accepted are C($$) (a literal C($)), C($name), C(${name}),
        "$(name)", C(${name?text}), C(${name:text}), C(${name?{text1}:{text2}}) and relational
        expressions such as C(${{$compatibility_level} <level {3.6} ? {yes}:{no}}); refused,
        naming the rule, are for example C(costs $ 5), C(${unclosed) and "$(touch x)".
        Parameters that Postfix does not expand when reading C(main.cf), such as
        C(mailbox_command) and C(smtpd_expansion_filter), are not checked.
      - Ansible reads C({{) as Jinja2, so write C(${ {) for a relational expression (Postfix
        allows the blank) or mark the value C(!unsafe).
      - Ignored when O(state=absent).
    type: raw
  params:
    description:
      - Several parameters at once, as a mapping of names to values (same rules as O(value)).
        They are read once and written with one C(postconf) invocation.
      - With O(state=present) every value must be set; a null value is refused (use C('')
        for an explicitly empty value, or O(state=absent) to remove).
      - With O(state=absent) the names are removed and the values are ignored.
      - Mutually exclusive with O(name).
    type: dict
  state:
    description:
      - V(present) sets the explicit value; V(absent) removes the explicit setting, so
        the Postfix default (or for a service, the main.cf value) applies again.
    type: str
    choices: [present, absent]
    default: present
  list_items:
    description:
      - How the value of a list parameter (one Postfix reads as a list, see O(value)) is applied
        with O(state=present).
      - V(exact) - the value is the whole list (the default).
      - V(present) - each item of the value is in the list; missing ones are added at the end,
        in the order given, and the items already there are kept as written. For adding a
        table to C(smtp_tls_policy_maps) or a cipher to C(smtpd_tls_exclude_ciphers) that
        other tasks or people also manage.
      - V(absent) - no item of the value is in the list; the other items are kept. Removing
        the last item leaves an explicitly empty value.
      - The list it starts from is the explicit value, or when the parameter is not set, the
        default C(postconf -d) shows (for a service, its C(-o) override, else the C(main.cf)
        value, else the default). A default that depends on C(compatibility_level)
        (C(smtpd_relay_restrictions), C(relay_domains)) starts from the list it gives on this
        host (C(postconf -x)), whose items are then written as they are. When nothing needs
        adding or removing, nothing is written, not even a default made explicit.
      - Refused for a parameter that is not a list, and with O(state=absent).
    type: str
    choices: [exact, present, absent]
    default: exact
  service:
    description:
      - A C(master.cf) service written C(SERVICE/TYPE), for example V(submission/inet) or
        V(127.0.0.1:10026/inet).
      - When given, O(name)/O(params) address that service's C(-o NAME=VALUE) overrides
        (C(postconf -P) and C(postconf -PX)) instead of C(main.cf).
      - The service must exist (as listed by C(postconf -M)); otherwise the module fails.
    type: str
  config_dir:
    description:
      - Postfix configuration directory (C(postconf -c)), for multi-instance Postfix.
      - It must exist and contain C(main.cf) (and C(master.cf) when O(service) is given).
    type: path
    default: /etc/postfix
  allow_unknown:
    description:
      - Accept a parameter name that Postfix does not know, such as a user-defined
        parameter that is not (yet) referenced by another value, for example CipherMail's
        C(maps_d_dir).
      - Without it, a name is accepted when C(postconf) knows it (built-in names, names of
        dynamically loaded map types, service-specific names derived from C(master.cf),
        restriction classes) or when it is referenced as C($name), C(${name}) or "$(name)"
        by an explicit value in C(main.cf) or by a value set in the same task.
      - Removing (O(state=absent)) an unknown name that is currently set is always accepted.
    type: bool
    default: false
notes:
  - O(state=absent) removes the explicit setting with C(postconf -X) or C(postconf -PX).
  - A change of C(inet_interfaces), C(inet_protocols), C(queue_directory), C(data_directory),
    C(mail_owner) or C(setgid_group) needs C(postfix stop) and C(postfix start); any other
    C(main.cf) change, and any change of a C(master.cf) C(-o) override, takes effect with
    C(postfix reload) (the master re-reads master.cf and restarts the changed service's
    processes). RV(restart_required) reports this.
  - The explicit settings are read from C(main.cf) as Postfix reads it (lines end at a newline
    only, continuation lines, comments; the last entry of a name wins), not from C(postconf -n),
    which collapses whitespace and omits user-defined parameters that nothing references.
    C(main.cf) may contain text that is not UTF-8; such bytes are kept and are shown as
    C(\\xNN) in RV(params) and the diff.
  - C(postconf) writes a new C(main.cf) or C(master.cf) and renames it into place, which
    leaves the file owned by root with mode 0644. The module puts the owner, group and mode
    the file had before back afterwards, so a restrictive mode such as 0640 is kept.
  - When the writing C(postconf) fails (full disk, read-only file system), the old file is
    left in place and the module fails with C(changed=false).
  - A C(main.cf) or C(master.cf) that is a symbolic link (into a configuration repository, say)
    is written through the link - C(postconf -e) itself would replace the link with a regular
    file and leave its target as it was. C(postconf) edits copies in a temporary directory beside
    the target, and the edited file is renamed over the target (atomic, owner and mode kept);
    the link stays.
attributes:
  check_mode:
    description: Reads only; nothing that writes is run.
    support: full
  diff_mode:
    description: Shows C(name = value) lines before and after.
    support: full
  platform:
    description: Needs the C(postconf) binary of Postfix on the target.
    support: full
    platforms: posix
seealso:
  - name: postconf(5)
    description: Postfix configuration parameters.
    link: https://www.postfix.org/postconf.5.html
  - name: postconf(1)
    description: The Postfix configuration utility.
    link: https://www.postfix.org/postconf.1.html
'''

EXAMPLES = r'''
- name: Require TLS for incoming mail
  mailgw.postfix_tls.postconf:
    name: smtpd_tls_security_level
    value: encrypt

- name: Set several TLS parameters with one postconf invocation
  mailgw.postfix_tls.postconf:
    params:
      smtp_tls_security_level: may
      smtp_tls_policy_maps: hash:${maps_d_dir}/hash-tls-policy.map
      maps_d_dir: /etc/postfix/maps.d
      smtpd_tls_protocols: [">=TLSv1.2"]

- name: CipherMail's user-defined directory parameter, before anything references it
  mailgw.postfix_tls.postconf:
    name: maps_d_dir
    value: /etc/postfix/maps.d
    allow_unknown: true

- name: The content filter's re-injection listener speaks no TLS
  mailgw.postfix_tls.postconf:
    service: 127.0.0.1:10026/inet
    name: smtpd_tls_security_level
    value: none

- name: Add the TLS policy table to smtp_tls_policy_maps, keeping the maps others put there
  mailgw.postfix_tls.postconf:
    name: smtp_tls_policy_maps
    value: hash:/etc/postfix/tls_policy
    list_items: present

- name: Stop excluding a cipher, whatever else is excluded
  mailgw.postfix_tls.postconf:
    name: smtpd_tls_exclude_ciphers
    value: [RC4]
    list_items: absent

- name: Listen on loopback only (needs a restart, not a reload)
  mailgw.postfix_tls.postconf:
    name: inet_interfaces
    value: [127.0.0.1, "::1"]
  notify: Restart postfix

- name: Back to the default TLS settings
  mailgw.postfix_tls.postconf:
    params:
      smtp_tls_security_level:
      smtpd_tls_security_level:
    state: absent

- name: Second Postfix instance
  mailgw.postfix_tls.postconf:
    config_dir: /etc/postfix-out
    name: smtp_tls_security_level
    value: encrypt
'''

RETURN = r'''
params:
  description:
    - For every parameter named in the task, its explicit value before and after the task
      (null when not explicitly set, so the default applies).
    - For a service, the values are the service's C(-o) overrides.
  returned: success
  type: dict
  sample:
    smtpd_tls_security_level:
      before: may
      after: encrypt
    smtp_tls_policy_maps:
      before: null
      after: hash:${maps_d_dir}/hash-tls-policy.map
restart_required:
  description:
    - Whether the change takes effect only after a Postfix stop and start (true), rather
      than a reload. False when nothing changed.
  returned: success
  type: bool
  sample: false
config_file:
  description: The file the settings live in (C(main.cf), or C(master.cf) for a service).
  returned: success
  type: str
  sample: /etc/postfix/main.cf
service:
  description: The service whose overrides were managed, as C(SERVICE/TYPE); null for main.cf.
  returned: success
  type: str
  sample: 127.0.0.1:10026/inet
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    check_name,
    check_setting,
    edit_list,
    is_list_parameter,
    parse_service_spec,
    restart_required,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_settings import (
    PostconfSettingsError,
    compare_settings,
    setting_text,
    settings_diff,
    unknown_name_errors,
    write_settings,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    Postconf,
    PostfixCommandError,
)


def desired_settings(module):
    """Validate the task's names and values before anything runs.

    Returns (desired, as_list): desired maps name -> text to write, or None
    for removal; as_list holds the names whose value was given as a list.
    """
    params = module.params
    present = params['state'] == 'present'
    overrides = params['service'] is not None
    if params['name'] is not None:
        if present and params['value'] is None:
            module.fail_json(msg='value is required when name is given and state=present '
                                 "(use '' for an empty value, or state=absent to remove %s)"
                                 % params['name'])
        requested = {params['name']: params['value']}
    else:
        requested = params['params']
        if not requested:
            module.fail_json(msg='params must name at least one parameter')

    errors = []
    desired = {}
    as_list = set()
    by_item = params['list_items'] != 'exact'
    if by_item and not present:
        module.fail_json(msg='list_items=%s applies to state=present (adding or removing list items); '
                             'state=absent removes the whole setting' % params['list_items'])
    for name, raw in requested.items():
        reason = check_name(name)
        if reason:
            errors.append(reason)
            continue
        if not present:
            desired[name] = None
            continue
        if by_item and not is_list_parameter(name):
            errors.append('list_items=%s needs a list parameter: Postfix does not read %s as a list'
                          % (params['list_items'], name))
            continue
        text, reason = setting_text(name, raw, overrides, params['list_items'] if by_item else None)
        if reason:
            errors.append(reason)
            continue
        desired[name] = text
        if isinstance(raw, (list, tuple)):
            as_list.add(name)
    if errors:
        module.fail_json(msg='; '.join(errors), errors=errors)
    return desired, as_list


def check_names_known(module, desired, current, known, explicit, postconf=None):
    """Fail with "did you mean" hints for names Postfix does not know (nor references: a
    user-defined parameter referenced from main.cf, the task's values or a master.cf -o
    override, ``-o smtpd_client_restrictions=$mua_client_restrictions``)."""
    if module.params['allow_unknown']:
        return

    def override_values():
        try:
            return [value for settings in postconf.service_overrides().values() for value in settings.values()]
        except PostfixCommandError as exc:
            module.fail_json(msg=str(exc), commands=postconf.commands)

    where = 'service %s' % module.params['service'] if module.params['service'] else 'main.cf'
    errors = unknown_name_errors(desired, current, known, explicit, where,
                                 override_values if postconf is not None else None)
    if errors:
        module.fail_json(msg=' '.join(errors), errors=errors)


def with_list_items(module, postconf, desired, current, explicit, service):
    """DESIRED (name -> the items given) as whole values: each list as it is (CURRENT's
    value, else for a service main.cf's, else Postfix's default) with the items present or
    absent (list_items). A list that already is so keeps its current value (None when not
    set), so that nothing is written."""
    mode = module.params['list_items']
    bases = {}
    for name in desired:
        if current.get(name) is not None:
            bases[name] = current[name]
        elif service and explicit.get(name) is not None:
            bases[name] = explicit[name]
    unset = sorted(name for name in desired if name not in bases)
    if unset:
        try:
            bases.update(postconf.parameters(unset, defaults=True))
            # a default that depends on compatibility_level (${{$compatibility_level} <level {1}
            # ? {} : {permit_mynetworks, ...}}) is one opaque item: start from what it gives here
            conditional = [name for name in unset if '${{' in (bases.get(name) or '')]
            if conditional:
                bases.update(postconf.parameters(conditional, expand=True))
        except PostfixCommandError as exc:
            module.fail_json(msg=str(exc), commands=postconf.commands)
    out = {}
    errors = []
    for name, items in desired.items():
        value = edit_list(bases.get(name), items, mode, separator=',' if service else ', ')
        if value is None:
            out[name] = current.get(name)
            continue
        reason = check_setting(name, value, bool(service))
        if reason:
            errors.append(reason)
        out[name] = value
    if errors:
        module.fail_json(msg='; '.join(errors), errors=errors)
    return out


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str'),
            value=dict(type='raw'),
            params=dict(type='dict'),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            list_items=dict(type='str', default='exact', choices=['exact', 'present', 'absent']),
            service=dict(type='str'),
            config_dir=dict(type='path', default='/etc/postfix'),
            allow_unknown=dict(type='bool', default=False),
        ),
        mutually_exclusive=[('name', 'params')],
        required_one_of=[('name', 'params')],
        required_by={'value': 'name'},
        supports_check_mode=True,
    )
    params = module.params
    present = params['state'] == 'present'

    # Everything that can be refused without running anything.
    desired, as_list = desired_settings(module)
    service = service_type = None
    if params['service'] is not None:
        try:
            service, service_type = parse_service_spec(params['service'])
        except ValueError as exc:
            module.fail_json(msg=str(exc))

    config_dir = os.path.abspath(params['config_dir'])
    if not os.path.isdir(config_dir):
        module.fail_json(msg='config_dir %s does not exist or is not a directory' % config_dir)
    postconf = Postconf(module, config_dir)
    postconf.find_binary()
    config_file = postconf.master_cf if service else postconf.main_cf
    for path in (postconf.main_cf, config_file):
        if not os.path.isfile(path):
            module.fail_json(msg='%s does not exist: config_dir %s is not a Postfix '
                                 'configuration directory' % (path, config_dir))

    # One read of the current state.
    try:
        explicit = postconf.read_main_cf()
        # Names postconf knows are only needed to refuse unknown ones.
        known = set() if params['allow_unknown'] else postconf.known_names()
        if service:
            services = postconf.services()
            if (service, service_type) not in services:
                module.fail_json(
                    msg='service %s not found in %s (postconf -M lists: %s)' % (
                        params['service'], postconf.master_cf,
                        ', '.join('%s/%s' % s for s in sorted(services)) or 'none'))
            current = postconf.service_overrides().get((service, service_type), {})
        else:
            current = explicit
    except (IOError, OSError) as exc:
        module.fail_json(msg='cannot read %s: %s' % (postconf.main_cf, exc))
    except PostfixCommandError as exc:
        module.fail_json(msg=str(exc), commands=postconf.commands)

    check_names_known(module, desired, current, known, explicit, postconf)
    if params['list_items'] != 'exact':
        desired = with_list_items(module, postconf, desired, current, explicit, service)

    # Compare.
    result_params, changes = compare_settings(desired, current, as_list, present)
    result = dict(
        changed=bool(changes),
        params=result_params,
        restart_required=bool(changes) and not service and restart_required(changes),
        config_file=config_file,
        service=params['service'],
    )
    if module._diff:
        result['diff'] = settings_diff(config_file, result_params, changes,
                                       '%s/%s/' % (service, service_type) if service else '')
    if not changes or module.check_mode:
        module.exit_json(**result)

    # At most one postconf invocation that writes (owner and mode kept, read back).
    try:
        warnings = write_settings(postconf, changes, present, service, service_type, as_list)
    except PostconfSettingsError as exc:
        result['changed'] = exc.changed
        module.fail_json(msg=exc.msg, **dict(result, **({'commands': exc.commands} if exc.commands else {})))
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
