# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The TLS policy table as mailgw.postfix_tls.tls_policy manages it: the requested
entries validated (entries, policies or one destination), the table chosen from
smtp_tls_policy_maps, checked against this Postfix and its configuration, edited
in place and written in one transaction (TableTransaction), or in check mode only
planned. Shared by tls_policy and postconf_info (its tls_policy_plan option, the
plan of a converged host's read in the same round trip)."""

import os

from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import (
    LookupTableSource,
    policy_source_entries,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import (
    KEY_VALUE_FILE_TYPES,
    choose_table,
    package_hint,
    parse_map_list,
    source_path_problem,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_routing import (
    maybe_routed_elsewhere,
    routes_for,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    Postconf,
    PostfixCommandError,
    Postmap,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.table_transaction import (
    TableLock,
    TableTransaction,
    TableTransactionError,
    directory_problem,
    owner_group_problem,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_configuration import (
    CROSS_CHECK_PARAMETERS,
    configuration_checks,
    existing_line_problems,
    may_need_configuration,
    needs_configuration,
    needs_master,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    CIPHER_GRADES,
    LEVELS,
    PolicyError,
    build_policy,
    existing_entry_problems,
    invisible_key_problem,
    normalize_destination,
    parse_policy,
    removable_key,
    same_policy,
)

ATTRIBUTE_OPTIONS = ('match', 'ciphers', 'protocols', 'exclude', 'tafile', 'servername',
                     'connection_reuse', 'enable_rpk')


def _stripped_items(value):
    """A list option's items without surrounding spaces: Ansible splits a string given for a
    list on commas only, so "a.example, b.example" arrives as ['a.example', ' b.example'].
    Only spaces: a control character stays, and is refused by the grammar."""
    if isinstance(value, list):
        return [item.strip(' ') if isinstance(item, str) else item for item in value]
    return value


def entry_options(destination_required):
    return dict(
        destination=dict(type='str', required=destination_required),
        level=dict(type='str', choices=list(LEVELS)),
        match=dict(type='list', elements='str'),
        ciphers=dict(type='str', choices=list(CIPHER_GRADES)),
        protocols=dict(type='list', elements='str'),
        exclude=dict(type='list', elements='str'),
        tafile=dict(type='list', elements='path'),
        servername=dict(type='str'),
        connection_reuse=dict(type='bool'),
        enable_rpk=dict(type='bool'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
    )


def argument_spec():
    """tls_policy's options (without the file options add_file_common_args adds)."""
    spec = entry_options(destination_required=False)
    spec.update(
        entries=dict(type='list', elements='dict', options=entry_options(destination_required=True)),
        policies=dict(type='dict'),
        policies_src=dict(type='path'),
        exclusive=dict(type='bool', default=False),
        path=dict(type='path'),
        map_type=dict(type='str', choices=list(KEY_VALUE_FILE_TYPES)),
        config_dir=dict(type='path', default='/etc/postfix'),
        backup=dict(type='bool', default=False),
    )
    return spec


def plan_params(config_dir, **options):
    """tls_policy's parameters for a plan (postconf_info's tls_policy_plan) with OPTIONS
    (policies, exclusive, path, map_type, owner, group, mode): every other option at
    its default, as AnsibleModule would fill them, no backup, no SELinux or chattr
    attributes."""
    spec = dict(FILE_COMMON_ARGUMENTS, **argument_spec())
    params = dict((name, option.get('default')) for name, option in spec.items())
    params.update(options, config_dir=config_dir)
    return params


class TlsPolicyTableError(Exception):
    """A refused or failed run; RESULT is what the module returns with the message."""

    def __init__(self, msg, result):
        super(TlsPolicyTableError, self).__init__(msg)
        self.msg = msg
        self.result = result


class TlsPolicyTable:
    """One run of mailgw.postfix_tls.tls_policy on the TLS policy table.

    MODULE is the AnsibleModule (commands, file attributes, check mode);
    PARAMS the tls_policy options (the module's own, or those another module
    plans with: mailgw.postfix_tls.postconf_info). run() returns the result;
    a refusal raises TlsPolicyTableError (nothing was changed). Warnings are
    collected in ``warnings`` for the caller to give (summarize_warnings).
    In check mode nothing is written, not even a temporary file.
    """

    def __init__(self, module, params=None, diff=None, postconf=None, play_check_mode=None):
        self.module = module
        self.params = module.params if params is None else params
        self.diff = module._diff if diff is None else diff
        # whether the play runs in check mode, where a file an earlier task would create (a
        # tafile) is not there yet; a plan (postconf_info) runs in check mode in a real run too
        self.play_check_mode = module.check_mode if play_check_mode is None else play_check_mode
        # postconf_info passes its own (caching) Postconf: what it read is not read again
        self.postconf = postconf or Postconf(module, self.params['config_dir'])
        self.postmap = Postmap(module, self.params['config_dir'], commands=self.postconf.commands)
        self.warnings = []
        self.where = {}         # 'destination KEY: ' -> 'FILE, line N' for the entries of a policies_src
        self.maps_value = ''    # smtp_tls_policy_maps, expanded (resolve_map)
        self._version = None
        self.result = dict(changed=False, added=[], updated=[], removed=[], changed_values={},
                           postmap_ran=False, duplicates=[])

    def fail(self, msg, **kwargs):
        raise TlsPolicyTableError(msg, dict(self.result, **kwargs))

    # -- desired state -----------------------------------------------------------

    def desired_entries(self):
        """Validate every requested entry; returns [(key, rendered value or None, policy)]."""
        params = self.params
        shape = next((name for name in ('policies', 'policies_src') if params.get(name) is not None), 'entries')
        if params.get(shape) is not None:
            self.check_shape_options(shape)
            items = params['entries']
        else:
            if params['destination'] is None:
                self.fail('one of destination, entries, policies or policies_src is required')
            items = [params]
        if params['exclusive'] and params.get(shape) is None:
            self.fail('exclusive=true needs entries, policies or policies_src: the complete list of '
                      'entries the table should hold')
        if shape == 'policies':
            return self.desired_policies((destination, value, 'policies')
                                         for destination, value in params['policies'].items())
        if shape == 'policies_src':
            items, errors = self.source_policies(params['policies_src'])
            return self.desired_policies(items, errors)

        errors = []
        desired = []
        seen = {}
        for number, item in enumerate(items, 1):
            where = 'entries[%d]: ' % number if params['entries'] is not None else ''
            try:
                if item['state'] == 'absent':
                    # an existing line Postfix cannot use (a "*" key) must be removable by name
                    key, warnings = removable_key(item['destination'])
                else:
                    key, warnings = normalize_destination(item['destination'])
            except PolicyError as e:
                errors.append(where + str(e))
                continue
            self.warnings.extend(warnings)
            if key in seen:
                errors.append('%sdestination %r duplicates entries[%d] (%r): keys are case-insensitive'
                              % (where, item['destination'], seen[key][0], seen[key][1]))
                continue
            seen[key] = (number, item['destination'])
            if item['state'] == 'absent':
                desired.append((key, None, None))
                continue
            if not item['level']:
                errors.append('%sdestination %r: level is required when state is present' % (where, key))
                continue
            try:
                policy = build_policy(item['level'], **dict((name, _stripped_items(item[name]))
                                                            for name in ATTRIBUTE_OPTIONS))
            except PolicyError as e:
                errors.append('%sdestination %r: %s' % (where, key, e))
                continue
            desired.append((key, policy.render(), policy))
        self.fail_invalid(errors)
        return desired

    def check_shape_options(self, shape):
        """Refuse the single-entry options given with SHAPE (entries, policies, policies_src)."""
        params = self.params
        given = [name for name in ('destination', 'level') + ATTRIBUTE_OPTIONS if params[name] not in (None, [])]
        if given:
            self.fail('%s is mutually exclusive with %s: %s'
                      % (shape, ', '.join(given), 'put them inside each entry' if shape == 'entries'
                         else 'write them in the policy value of each destination'))
        if params['state'] != 'present':
            self.fail('state=%s applies to destination; %s'
                      % (params['state'], {
                          'entries': 'with entries, set state inside each entry',
                          'policies': 'with policies, a destination mapped to null is removed',
                          'policies_src': 'with policies_src, give exclusive=true to remove '
                                          'every entry the file does not list'}[shape]))

    def source_policies(self, source):
        """(destination, value, where) of every entry of SOURCE, a file on this host in the
        table's own format, and the lines Postfix would ignore as errors: the file says what
        the table holds, and such a line would be lost silently (a key given twice is refused
        by desired_policies)."""
        try:
            return policy_source_entries(source)
        except ValueError as e:
            self.fail('policies_src %s %s; nothing was changed'
                      % (source if os.path.isabs(source) else repr(source), e))

    def desired_policies(self, policies, errors=None):
        """POLICIES, (destination, table value or None to remove, where it was given) of the
        policies mapping or a policies_src file, validated exactly as the equivalent entries:
        the value is read with the grammar's strict reading (parse_policy(lint=True)), which
        applies build_policy's checks and rules and renders what the entry would write.
        ERRORS already found are reported with those of the values.
        Returns [(key, rendered value or None, policy)]."""
        errors = list(errors or ())
        desired = []
        seen = {}
        parsed = {}     # value -> Policy or PolicyError: a big table repeats few values
        for destination, value, where in policies:
            try:
                if value is None:
                    key, warnings = removable_key(destination)
                else:
                    key, warnings = normalize_destination(destination)
            except PolicyError as e:
                errors.append('%s: %s' % (where, e))
                continue
            self.warnings.extend(warnings)
            if key in seen:
                first, first_where = seen[key]
                errors.append('%s: destination %r duplicates %r%s: keys are case-insensitive'
                              % (where, destination, first,
                                 '' if first_where == where else ' (%s; Postfix would use the first)' % first_where))
                continue
            seen[key] = (destination, where)
            if where != 'policies':
                self.where['destination %r: ' % key] = where
            if value is None:
                desired.append((key, None, None))
                continue
            policy = parsed.get(value) if isinstance(value, str) else None
            if policy is None:
                try:
                    policy = parse_policy(value, lint=True)
                except PolicyError as e:
                    policy = e
                if isinstance(value, str):
                    parsed[value] = policy
            if isinstance(policy, PolicyError):
                errors.append('%s: destination %r, value %r: %s' % (where, destination, value, policy))
                continue
            desired.append((key, policy.render(), policy))
        self.fail_invalid(errors)
        return desired

    def located(self, texts):
        """TEXTS (errors that start 'destination KEY: ') with the file and line of a policies_src
        entry in front, so a problem in a large file can be found."""
        if not self.where:
            return texts
        found = []
        for text in texts:
            cut = text.find(': ') + 2
            where = self.where.get(text[:cut]) if text.startswith('destination ') and cut > 1 else None
            found.append('%s: %s' % (where, text) if where else text)
        return found

    def fail_invalid(self, errors):
        if errors:
            self.fail('invalid TLS policy entr%s, nothing was changed: %s'
                      % ('y' if len(errors) == 1 else 'ies', '; '.join(errors)), errors=errors)

    def postfix_version(self):
        if self._version is None:
            try:
                self._version = self.postconf.mail_version()
            except PostfixCommandError as e:
                self.fail(str(e))
        return self._version

    def check_postfix_support(self, desired):
        """Refuse features this Postfix does not have (at patch level), entries the rest of
        the configuration makes unusable, and fingerprint without fingerprints."""
        policies = [(key, policy) for key, value, policy in desired if policy is not None]
        errors = []
        if any(policy.features for key, policy in policies):
            version = self.postfix_version()
            for key, policy in policies:
                for missing in policy.unsupported_on(version):
                    errors.append('destination %r: %s; this Postfix is %s, which would defer the '
                                  'mail (invalid attribute name)'
                                  % (key, missing, '.'.join(map(str, version))))
        self.cross_check(policies, errors)
        errors = self.located(errors)
        if errors:
            self.fail('invalid TLS policy entr%s for this Postfix configuration, nothing was changed: %s'
                      % ('y' if len(errors) == 1 else 'ies', '; '.join(errors)), errors=errors)
        fingerprint_without_match = [key for key, value, policy in desired
                                     if policy is not None and policy.level == 'fingerprint'
                                     and not policy.get('match')]
        if fingerprint_without_match:
            default = self.postconf.value('smtp_tls_fingerprint_cert_match')
            if not default.strip():
                self.fail(self.located(['destination %r: level fingerprint without match, and '
                                        'smtp_tls_fingerprint_cert_match is empty: Postfix would defer the mail '
                                        '("configured at fingerprint security level, but with no fingerprints '
                                        'to match"); give match; nothing was changed' % fingerprint_without_match[0]])[0])

    def cross_check(self, policies, errors):
        """Checks against main.cf and master.cf, read (one postconf call each) only when needed."""
        if not needs_configuration(policies):
            return
        try:
            settings = self.postconf.parameters(CROSS_CHECK_PARAMETERS, expand=True)
            routes = self.routes(policies, settings)
            # a domain routed to another transport: whether that runs the SMTP client
            master_services = self.postconf.output(['-M']) if needs_master(policies, settings) or any(
                route.transport != 'smtp' for route in routes.values()) else ''
        except PostfixCommandError as e:
            self.fail(str(e))
        found_errors, warnings = configuration_checks(policies, settings, master_services,
                                                      check_mode=self.play_check_mode, routes=routes)
        errors.extend(found_errors)
        self.warnings.extend(warnings)     # not located: summarize_warnings groups them by destination

    def routes(self, policies, settings):
        """{key: mail_routing.Route} of the domain keys, as trivial-rewrite routes their mail
        (transport_maps asked with postmap -q, one query per table). Advisory: a table postmap
        cannot query leaves the route uncertain, and no warning is given for it."""
        keys = maybe_routed_elsewhere([key for key, policy in policies], settings)
        return routes_for(keys, settings, self.postmap.answers) if keys else {}

    # -- which table ---------------------------------------------------------------

    def resolve_map(self):
        """The table to edit (path, map type), from the task and smtp_tls_policy_maps."""
        map_type = self.params['map_type']
        maps_value = self.maps_value = self.read_parameter('smtp_tls_policy_maps')
        try:
            path, map_type = choose_table('smtp_tls_policy_maps', maps_value, self.params['path'], map_type,
                                          self.params['config_dir'], self.warnings)
        except ValueError as e:
            self.fail(str(e))
        if map_type is None:
            map_type = self.read_parameter('default_database_type', expand=False)
        if map_type not in KEY_VALUE_FILE_TYPES:
            self.fail('map type %r (default_database_type) is not one this module edits (%s); '
                      'give map_type' % (map_type, ', '.join(KEY_VALUE_FILE_TYPES)))
        try:
            supported = self.postconf.map_types()
        except PostfixCommandError as e:
            self.fail(str(e))
        if map_type not in supported:
            hint = package_hint(map_type)
            self.fail('map type %s is not supported by this Postfix (postconf -m lists: %s)%s'
                      % (map_type, ', '.join(sorted(supported)), '; ' + hint if hint else ''))
        return path, map_type

    def warn_shadowed(self, desired, path, map_type):
        """Warn about the entries a table listed before this one in smtp_tls_policy_maps answers
        first. The SMTP client asks each key form of a next hop in every table of the list, in
        order, before it tries the next form (maps_find in tls_policy_lookup_one), so an earlier
        table that answers a key (a regexp, another file) wins and this entry is never used.
        Each earlier table is asked once, with postmap -q; one postmap cannot query is named."""
        keys = [key for key, value, policy in desired if value is not None]
        if not keys:
            return
        specs = parse_map_list(self.maps_value)      # as resolve_map read it
        position = next((index for index, spec in enumerate(specs)
                         if spec.is_key_value_file and spec.map_type == map_type
                         and os.path.normpath(spec.name) == path), None)
        if not position:
            return      # the first table, or not listed (choose_table warned)
        table = '%s:%s' % (map_type, path)
        shadowed = set()
        for spec in specs[:position]:
            found = self.postmap.answers(spec, keys)
            if found is None:
                why = ''
                try:
                    if spec.map_type not in self.postconf.map_types():
                        hint = package_hint(spec.map_type)
                        why = ': this Postfix does not support the %s type (postconf -m)%s' % (
                            spec.map_type, '; ' + hint if hint else '')
                except PostfixCommandError:
                    pass
                self.warnings.append('%s, listed before %s in smtp_tls_policy_maps, cannot be queried with postmap '
                                     'here%s; whether it answers first for the managed destinations (so that '
                                     'Postfix never uses their entries in %s) was not checked'
                                     % (spec.text, table, why, path))
                continue
            for key in keys:
                if key in found and key not in shadowed:
                    shadowed.add(key)
                    self.warnings.append('destination %r: %s, listed before %s in smtp_tls_policy_maps, answers '
                                         'first (%s): Postfix uses that answer and never this entry; remove the '
                                         'key there or list %s first' % (key, spec.text, table, found[key], table))

    def read_parameter(self, name, expand=True):
        try:
            return self.postconf.value(name, expand=expand)
        except PostfixCommandError as e:
            self.fail(str(e))

    # -- run -------------------------------------------------------------------------

    def run(self):
        module = self.module
        if self.source_created_later():
            return self.result
        desired = self.desired_entries()
        path, map_type = self.resolve_map()
        problem = (source_path_problem(path, 'smtp_tls_policy_maps')
                   or owner_group_problem(self.params.get('owner'), self.params.get('group')))
        if problem:
            self.fail(problem)
        source = self.params.get('policies_src')
        if source and os.path.realpath(source) == os.path.realpath(path):
            self.fail('policies_src %s is the table itself (%s): give the file the table\'s entries are '
                      'taken from; nothing was changed' % (source, path))
        self.check_postfix_support(desired)
        self.warn_shadowed(desired, path, map_type)
        self.result.update(path=path, map_type=map_type, map='%s:%s' % (map_type, path))

        problem = directory_problem(path, module.check_mode, self.warnings)
        if problem:
            self.fail(problem)

        try:
            if module.check_mode:
                self.apply(desired, path, map_type)
            else:
                with TableLock(path):
                    self.apply(desired, path, map_type)
        except TableTransactionError as e:
            self.fail(str(e), **e.details)
        except (IOError, OSError) as e:
            self.fail('cannot update %s: %s' % (path, to_native(e)))
        self.result['table_differs'] = bool(self.result.get('changed'))
        return self.result

    def source_created_later(self):
        """In check mode, a policies_src that does not exist (yet): an earlier task of the play
        ships it, which a check run does not. Nothing can be compared, so the run predicts a
        change, with a warning, as for a table directory that does not exist yet; a real run
        fails if the file is still missing. Returns whether that is the case."""
        source = self.params.get('policies_src')
        if not (source and self.module.check_mode and os.path.isabs(source) and not os.path.lexists(source)):
            return False
        self.check_shape_options('policies_src')
        path, map_type = self.resolve_map()
        self.warnings.append('policies_src %s does not exist (yet): this check run assumes an earlier task '
                             'creates it and reports the table %s as changed without comparing entries; a '
                             'real run fails if the file is still missing' % (source, path))
        self.result.update(changed=True, table_differs=True, path=path, map_type=map_type,
                           map='%s:%s' % (map_type, path))
        return True

    def warn_unusable_lines(self, table, path, managed):
        """Existing lines Postfix cannot use stay as they are, with a warning naming each."""
        version = None
        for entry in table.entries():
            if not entry.value or entry.fkey in managed:
                continue
            if version is None:
                version = self.postfix_version()
            errors, dummy = existing_entry_problems(entry.key, entry.value, version or None)
            if not errors and may_need_configuration(entry.value):
                errors = self.existing_configuration_problems(entry.value, version or None)
            invisible = invisible_key_problem(entry.key)
            if invisible:
                # a lint (Postfix takes the line), but the entry is dead: a warning, as for an error
                self.warnings.append('%s, line %d: %s %s: this entry never matches (%s); remove it with '
                                     'state=absent and destination %r'
                                     % (path, entry.lineno, entry.key, entry.value, invisible, entry.key))
            if errors:
                self.warnings.append('%s, line %d: %s %s: Postfix cannot use this entry (%s); it is '
                                     'kept as it is, remove it with state=absent and destination %r'
                                     % (path, entry.lineno, entry.key, entry.value, '; '.join(errors),
                                        entry.key))

    def existing_configuration_problems(self, value, version):
        """tls_policy_configuration.existing_line_problems of an existing line's VALUE, with main.cf
        (the cross-checks' values, cached) and master.cf read only when needed; nothing when they
        cannot be read (the line is kept either way)."""
        try:
            return existing_line_problems(parse_policy(value, version),
                                          lambda: self.postconf.parameters(CROSS_CHECK_PARAMETERS, expand=True),
                                          lambda: self.postconf.output(['-M']))
        except (PolicyError, PostfixCommandError):
            return []

    def apply(self, desired, path, map_type):
        """Edit the table's text, then let a TableTransaction write it (not in check mode)."""
        module = self.module
        params = self.params
        table_file = TableTransaction(module, self.postmap, path, map_type, warnings=self.warnings,
                                      file_params=self.params)
        before = table_file.read()
        table = LookupTableSource.parse(before)
        table_file.clean_up()
        self.result['duplicates'] = table.duplicates()
        managed = set(key for key, value, policy in desired)
        self.warnings.extend(table.warnings(path, managed=managed))
        self.warn_unusable_lines(table, path, managed)

        def same(existing_value, wanted_value):
            # this Postfix's reading (mail_version asked only for a value written differently)
            return existing_value == wanted_value or same_policy(existing_value, wanted_value,
                                                                 self.postfix_version() or None)

        for status, keys in table.apply([(key, value) for key, value, policy in desired],
                                        exclusive=params['exclusive'], same=same).items():
            self.result[status].extend(keys)
        if map_type == 'texthash' and table.duplicates():
            # dict_thash opens the table without a duplicate flag in the SMTP client: one
            # duplicate key makes every lookup fail and defers mail to every destination
            lines = '; '.join('%r on lines %s' % (fkey, ', '.join(str(e.lineno) for e in table.occurrences(fkey)
                                                                  if e.value))
                              for fkey in table.duplicates())
            self.fail('texthash table %s has duplicate keys (%s): the Postfix SMTP client cannot use a '
                      'texthash table with a duplicate key at all and defers mail to every destination, '
                      'while postmap -q still answers; nothing was changed. Remove the copies, or manage '
                      'the key with this module, which keeps the first and removes the others' % (path, lines))
        after = table.render()
        if self.result['updated'] or self.result['removed']:
            # what Postfix used for each of them and what it uses after the run (None: no
            # entry), for a caller that warns about a policy lowered; parsed again only here
            previous = LookupTableSource.parse(before)
            wanted = dict((key, value) for key, value, policy in desired)
            for key in self.result['updated'] + self.result['removed']:
                entry = previous.lookup(key)
                self.result['changed_values'][key] = dict(before=entry.value if entry else None,
                                                          after=wanted.get(key))

        create = not table_file.exists and (any(value is not None for key, value, policy in desired)
                                            or params['exclusive'])
        if self.diff:
            self.result['diff'] = dict(before=before, after=after, before_header=path, after_header=path)
        expected = dict((key, value) for key, value, policy in desired)
        for key in self.result['removed']:
            expected[key] = None
        table_file.update(before, after, create, expected, same=same, backup=params['backup'],
                          result=self.result)
