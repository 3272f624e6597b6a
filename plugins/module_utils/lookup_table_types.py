# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Postfix lookup table types: which are indexed by postmap, how a
``TYPE:NAME`` list such as ``smtp_tls_policy_maps`` is read, and which
key/value table file of such a list a module edits.

Pure Python, no Ansible imports: the facts come from Postfix's
DATABASE_README and postmap(1); list splitting from postfix_syntax.
"""

import os
import re

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import WHITESPACE, split_list

# Types that postmap turns into an indexed file next to the source, with
# the file name suffixes postmap produces.
INDEXED_TYPES = {
    'hash': ('.db',),
    'btree': ('.db',),
    'lmdb': ('.lmdb',),
    'cdb': ('.cdb',),
    'dbm': ('.dir', '.pag'),
    'sdbm': ('.dir', '.pag'),
}

# Types read straight from the source file (nothing for postmap to build).
# texthash is a plain key/value file read when the daemon starts; regexp,
# pcre and cidr have their own pattern grammar.
SOURCE_READ_TYPES = ('texthash', 'regexp', 'pcre', 'cidr')

# Types whose source Postfix reads only when it is "cool": a file modified in this
# or the previous second may still be being written, so dict_thash_open (like
# dict_load_file_xt for main.cf) sleeps 0.3 s and reads it again, up to 2 s.
HOT_FILE_TYPES = ('texthash',)

# Types whose NAME is not a file at all.
NON_FILE_TYPES = ('inline', 'static', 'fail', 'environ', 'internal', 'unix',
                  'nis', 'nisplus', 'ldap', 'mysql', 'pgsql', 'sqlite',
                  'memcache', 'socketmap', 'tcp', 'randmap', 'pipemap',
                  'unionmap', 'proxy')

# Key/value file types this collection edits (one ``KEY VALUE`` a line):
# the choices of the tls_policy module's map_type.
KEY_VALUE_FILE_TYPES = ('hash', 'btree', 'lmdb', 'cdb', 'texthash', 'dbm', 'sdbm')

# Every suffix postmap adds to a source file name.
INDEX_SUFFIXES = tuple(sorted(set(suffix for suffixes in INDEXED_TYPES.values() for suffix in suffixes)))

# Files that are never lookup tables: Postfix's own configuration.
NOT_TABLES = ('main.cf', 'master.cf')

# Types that are optional plugins on common distributions: the package that
# provides them (Debian/Ubuntu and RHEL/Fedora use the same names).
TYPE_PACKAGES = {
    'lmdb': 'postfix-lmdb',
    'cdb': 'postfix-cdb',
    'pcre': 'postfix-pcre',
    'ldap': 'postfix-ldap',
    'mysql': 'postfix-mysql',
    'pgsql': 'postfix-pgsql',
    'sqlite': 'postfix-sqlite',
}

# Wrappers that forward to another table: proxy:hash:/path is hash:/path.
WRAPPER_TYPES = ('proxy',)

_TYPE_RE = re.compile(r'^[a-z][a-z0-9_]*$')


def is_indexed(map_type):
    """True when postmap builds an index file for this type."""
    return map_type in INDEXED_TYPES


def index_suffixes(map_type):
    """The suffixes postmap adds for an indexed type; () when not indexed."""
    return INDEXED_TYPES.get(map_type, ())


def index_paths(map_type, path):
    """The index files postmap creates for ``TYPE:path`` (may be empty)."""
    return [path + suffix for suffix in index_suffixes(map_type)]


def package_hint(map_type):
    """A sentence telling which package provides an optional type, or ''."""
    package = TYPE_PACKAGES.get(map_type)
    if package:
        return 'install the %s package' % package
    if map_type in ('hash', 'btree'):
        return ('this Postfix was built without Berkeley DB; '
                'use lmdb or cdb (or texthash) instead')
    return ''


class MapSpec:
    """One ``TYPE:NAME`` item of a table list."""

    __slots__ = ('map_type', 'name', 'wrappers', 'text')

    def __init__(self, map_type, name, wrappers=(), text=None):
        self.map_type = map_type
        self.name = name
        self.wrappers = tuple(wrappers)
        self.text = text if text is not None else '%s:%s' % (map_type, name)

    @property
    def is_file(self):
        return (self.map_type in INDEXED_TYPES or self.map_type in SOURCE_READ_TYPES) \
            and not self.name.startswith('{')

    @property
    def is_key_value_file(self):
        return self.is_file and self.map_type in KEY_VALUE_FILE_TYPES

    def __repr__(self):
        return 'MapSpec(%r)' % self.text

    def __eq__(self, other):
        return isinstance(other, MapSpec) and (self.map_type, self.name, self.wrappers) == \
            (other.map_type, other.name, other.wrappers)

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((self.map_type, self.name, self.wrappers))


def parse_map_spec(item):
    """Parse one ``TYPE:NAME`` item; None when it has no ``TYPE:`` prefix."""
    text = item.strip()
    rest = text
    wrappers = []
    while True:
        map_type, sep, name = rest.partition(':')
        if not sep or not _TYPE_RE.match(map_type.lower()):
            return None
        map_type = map_type.lower()
        if map_type in WRAPPER_TYPES and ':' in name and not name.startswith('{'):
            wrappers.append(map_type)
            rest = name
            continue
        return MapSpec(map_type, name, wrappers, text)


def parse_map_list(value):
    """Parse a table list into MapSpec objects (items without a type are skipped)."""
    specs = []
    for item in split_list(value):
        spec = parse_map_spec(item)
        if spec is not None:
            specs.append(spec)
    return specs


def map_specs(value):
    """smtp_tls_policy_maps (expanded) as a list of 'type:name' strings, proxy: dropped for postmap."""
    specs = []
    for item in split_list(value):
        if item.startswith('proxy:'):
            item = item[len('proxy:'):]
        specs.append(item)
    return specs


def maps_with_table(specs, table):
    """SPECS (map_specs of smtp_tls_policy_maps) once TABLE (``type:name``) is listed.

    Unchanged when TABLE is already listed (proxy: dropped, so ``proxy:hash:/x``
    lists ``hash:/x``); otherwise TABLE first (the first table with a key wins),
    followed by the listed tables minus those naming the same file under
    another type - the rule of maps_value_with_table on parsed specs.
    """
    if table in specs:
        return list(specs)
    name = table.partition(':')[2]
    return [table] + [spec for spec in specs if spec.partition(':')[2] != name]


def _spec_of(item):
    """(type, name) of a table list item, proxy: and other wrappers dropped
    (``proxy:hash:/etc/postfix/tls_policy`` -> ``('hash', '/etc/postfix/tls_policy')``)."""
    spec = parse_map_spec(item)
    return (spec.map_type, spec.name) if spec is not None else (None, item.split(':', 1)[-1])


def _path_of(item):
    return _spec_of(item)[1]


def maps_value_with_table(current, table, current_expanded=None, table_expanded=None):
    """The table list value (``smtp_tls_policy_maps`` as main.cf writes it) that lists TABLE
    (maps_with_table is the same rule on map_specs).

    CURRENT is the value as main.cf writes it, CURRENT_EXPANDED the same
    value with $parameters expanded (postconf -x), TABLE the TYPE:PATH to
    list (as it should be written) and TABLE_EXPANDED its expanded form.
    When CURRENT already lists the table in either spelling (or through
    proxy:) it is returned unchanged. Otherwise TABLE comes first (Postfix
    uses the first table that has the key) followed by the tables already
    listed, minus those naming the same file under another type. ValueError
    for an empty TABLE.
    """
    if not table.strip():
        raise ValueError('the table must not be empty')
    if current_expanded is None:
        current_expanded = current
    if table_expanded is None:
        table_expanded = table
    raw = split_list(current)
    expanded = split_list(current_expanded)
    if len(expanded) != len(raw):
        expanded = raw
    if table in raw or table_expanded in expanded:
        return current
    # the same table through proxy: (or another wrapper) is listed already
    if any(_spec_of(item) == _spec_of(table) for item in raw) or \
            any(_spec_of(item) == _spec_of(table_expanded) for item in expanded):
        return current
    keep = [table]
    for item, item_expanded in zip(raw, expanded):
        if _path_of(item) != _path_of(table) and _path_of(item_expanded) != _path_of(table_expanded):
            keep.append(item)
    return ', '.join(keep)


def source_path_problem(path, parameter='a table list'):
    """Why PATH cannot be the source file of a key/value table that PARAMETER names, or None."""
    bad = [ch for ch in path if ch in WHITESPACE + ',' or ord(ch) < 32 or ord(ch) == 127]
    if bad:
        return ('path %r contains %s; %s cannot name such a file'
                % (path, ', '.join(repr(ch) for ch in sorted(set(bad))), parameter))
    name = os.path.basename(path)
    if name in NOT_TABLES:
        return 'path %s is the Postfix configuration file %s, not a lookup table' % (path, name)
    for suffix in INDEX_SUFFIXES:
        if name.endswith(suffix):
            return ('path %s names an index file (%s); give the source file postmap builds it '
                    'from (%s)' % (path, suffix, path[:-len(suffix)]))
    return None


def choose_table(parameter, value, path=None, map_type=None, config_dir='/etc/postfix', warnings=None):
    """The key/value table file to edit among those PARAMETER (its VALUE) lists.

    With PATH: that file, its type from the list (MAP_TYPE must agree), or
    MAP_TYPE, or None (Postfix's default_database_type) when the list does not
    name it. Without PATH: the first key/value file of the list (of MAP_TYPE
    when given). Returns (path, map_type or None); what the task should know
    is appended to WARNINGS (a list). Raises ValueError with the reason when
    there is no such table or the task contradicts the list.
    """
    specs = parse_map_list(value)
    warnings = [] if warnings is None else warnings
    where = '%s in %s/main.cf' % (parameter, config_dir)
    if path:
        if not os.path.isabs(path):
            raise ValueError('path %r must be absolute' % path)
        path = os.path.normpath(path)
        matching = [s for s in specs if s.is_file and os.path.normpath(s.name) == path]
        if not matching:
            # the same file through a symbolic link (a linked directory or file): Postfix opens
            # the listed name and its index next to it, so that is the table to edit and index
            real = os.path.realpath(path)
            matching = [s for s in specs if s.is_file and os.path.isabs(s.name)
                        and os.path.realpath(s.name) == real]
            if matching:
                listed = os.path.normpath(matching[0].name)
                warnings.append('%s is %s, which %s lists (%s), through a symbolic link: editing it and '
                                'building its index as %s, the name Postfix opens'
                                % (path, listed, parameter, matching[0].text, listed))
                path = listed
        if matching:
            spec = matching[0]
            if spec.map_type not in KEY_VALUE_FILE_TYPES:
                raise ValueError('%s names %s as a %s table; this module edits key/value tables (%s)'
                                 % (parameter, path, spec.map_type, ', '.join(KEY_VALUE_FILE_TYPES)))
            if map_type and map_type != spec.map_type:
                raise ValueError('map_type=%s contradicts %s, which reads %s as %s (%s): Postfix would '
                                 'never see a %s index'
                                 % (map_type, parameter, path, spec.map_type, spec.text, map_type))
            return path, spec.map_type
        warnings.append('%s is not listed in %s (%s): Postfix ignores this table until %s lists it (fine '
                        'when a later task adds it, as the enforce_tls role does)'
                        % (path, parameter, value or 'empty', parameter))
        return path, map_type or None
    candidates = [s for s in specs if s.is_key_value_file and (map_type is None or s.map_type == map_type)]
    if not candidates:
        others = [s.text for s in specs if s.is_key_value_file]
        if others:
            raise ValueError('map_type=%s contradicts %s (%s), which names no %s table; give path to '
                             'manage another file' % (map_type, where, ', '.join(others), map_type))
        raise ValueError('path is required: %s (%s) names no key/value table file'
                         % (where, repr(value) if value else 'not set'))
    spec = candidates[0]
    if len(candidates) > 1:
        warnings.append('%s lists several tables (%s); editing the first, %s (give path to choose)'
                        % (parameter, ', '.join(s.text for s in candidates), spec.text))
    if not os.path.isabs(spec.name):
        raise ValueError('%s names %s with a relative path; give path' % (parameter, spec.text))
    return spec.name, spec.map_type
