# -*- coding: utf-8 -*-
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Postfix lookup table types: which are indexed by postmap, and how a
``TYPE:NAME`` list such as ``smtp_tls_policy_maps`` is read.

Pure Python, no Ansible imports: the facts come from Postfix's
DATABASE_README and postmap(1).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

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

# Types whose NAME is not a file at all.
NON_FILE_TYPES = ('inline', 'static', 'fail', 'environ', 'internal', 'unix',
                  'nis', 'nisplus', 'ldap', 'mysql', 'pgsql', 'sqlite',
                  'memcache', 'socketmap', 'tcp', 'randmap', 'pipemap',
                  'unionmap', 'proxy')

# Key/value file types this collection edits (one ``KEY VALUE`` a line).
KEY_VALUE_FILE_TYPES = ('hash', 'btree', 'lmdb', 'cdb', 'texthash', 'dbm', 'sdbm')

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
_SEPARATORS = ' \t\r\n\v\f,'


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


def split_map_list(value):
    """Split a Postfix table list (whitespace and/or commas) into items.

    Text inside ``{ ... }`` (inline:{...}, unionmap:{...}) is kept together
    as Postfix does.
    """
    items = []
    current = []
    depth = 0
    for ch in value or '':
        if ch == '{':
            depth += 1
        elif ch == '}' and depth > 0:
            depth -= 1
        if depth == 0 and ch in _SEPARATORS:
            if current:
                items.append(''.join(current))
                current = []
            continue
        current.append(ch)
    if current:
        items.append(''.join(current))
    return items


class MapSpec(object):
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
    for item in split_map_list(value):
        spec = parse_map_spec(item)
        if spec is not None:
            specs.append(spec)
    return specs
