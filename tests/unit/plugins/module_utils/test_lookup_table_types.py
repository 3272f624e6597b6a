# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Postfix lookup table types: index files per type, package hints, map lists,
which file of a table list a module edits."""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import (
    INDEX_SUFFIXES,
    KEY_VALUE_FILE_TYPES,
    choose_table,
    index_paths,
    is_indexed,
    package_hint,
    parse_map_list,
    parse_map_spec,
    source_path_problem,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import split_list


def test_index_files_per_type():
    assert index_paths('hash', '/t') == ['/t.db']
    assert index_paths('btree', '/t') == ['/t.db']
    assert index_paths('lmdb', '/t') == ['/t.lmdb']
    assert index_paths('cdb', '/t') == ['/t.cdb']
    assert index_paths('dbm', '/t') == ['/t.dir', '/t.pag']
    assert index_paths('sdbm', '/t') == ['/t.dir', '/t.pag']
    for unbuilt in ('texthash', 'inline', 'static', 'regexp', 'pcre', 'cidr'):
        assert not is_indexed(unbuilt)
        assert index_paths(unbuilt, '/t') == []


def test_package_hints():
    assert 'postfix-lmdb' in package_hint('lmdb')
    assert 'postfix-cdb' in package_hint('cdb')
    assert 'Berkeley DB' in package_hint('hash')


def test_map_list_parsing():
    value = 'proxy:hash:/etc/postfix/a, inline:{ {x = y}, z=w } regexp:/r,,lmdb:/m  texthash:/t'
    assert split_list(value) == ['proxy:hash:/etc/postfix/a', 'inline:{ {x = y}, z=w }',
                                 'regexp:/r', 'lmdb:/m', 'texthash:/t']
    specs = parse_map_list(value)
    assert [(s.map_type, s.name, s.wrappers) for s in specs] == [
        ('hash', '/etc/postfix/a', ('proxy',)), ('inline', '{ {x = y}, z=w }', ()),
        ('regexp', '/r', ()), ('lmdb', '/m', ()), ('texthash', '/t', ())]
    assert [s.is_key_value_file for s in specs] == [True, False, False, True, True]
    assert parse_map_spec('/no/type') is None
    assert parse_map_list('') == []


# ---------------------------------------------------------------------------
# which file of a table list
# ---------------------------------------------------------------------------

def choose(value, path=None, map_type=None):
    warnings = []
    result = choose_table('smtp_tls_policy_maps', value, path, map_type, '/etc/postfix', warnings)
    return result + (warnings,)


def test_choose_table_without_path_takes_the_first_key_value_file():
    assert choose('regexp:/etc/postfix/r, hash:/etc/postfix/t') == ('/etc/postfix/t', 'hash', [])
    path, map_type, warnings = choose('hash:/a, lmdb:/b')
    assert (path, map_type) == ('/a', 'hash')
    assert warnings == ['smtp_tls_policy_maps lists several tables (hash:/a, lmdb:/b); editing the first, '
                        'hash:/a (give path to choose)']
    assert choose('hash:/a, lmdb:/b', map_type='lmdb')[:2] == ('/b', 'lmdb')


@pytest.mark.parametrize('value, map_type, message', [
    ('', None, "path is required: smtp_tls_policy_maps in /etc/postfix/main.cf (not set) names no key/value"),
    ('regexp:/r', None, "names no key/value table file"),
    ('hash:/a', 'lmdb', 'map_type=lmdb contradicts smtp_tls_policy_maps in /etc/postfix/main.cf (hash:/a)'),
    ('hash:relative', None, 'smtp_tls_policy_maps names hash:relative with a relative path; give path'),
])
def test_choose_table_without_path_refuses(value, map_type, message):
    with pytest.raises(ValueError) as info:
        choose(value, map_type=map_type)
    assert message in str(info.value)


def test_choose_table_with_path():
    assert choose('proxy:lmdb:/etc/postfix/t', '/etc/postfix/./t') == ('/etc/postfix/t', 'lmdb', [])
    path, map_type, warnings = choose('hash:/a', '/b')
    assert (path, map_type) == ('/b', None)          # Postfix's default_database_type decides
    assert warnings[0].startswith('/b is not listed in smtp_tls_policy_maps (hash:/a)')
    assert choose('', '/b', 'cdb')[:2] == ('/b', 'cdb')
    for value, path, map_type, message in [
            ('hash:/a', 'a', None, "path 'a' must be absolute"),
            ('regexp:/a', '/a', None, 'names /a as a regexp table'),
            ('hash:/a', '/a', 'lmdb', 'map_type=lmdb contradicts smtp_tls_policy_maps, which reads /a as hash')]:
        with pytest.raises(ValueError) as info:
            choose(value, path, map_type)
        assert message in str(info.value)


@pytest.mark.parametrize('path, message', [
    ('/etc/postfix/tls policy', "contains ' '; smtp_tls_policy_maps cannot name such a file"),
    ('/etc/postfix/a,b', "contains ','"),
    ('/etc/postfix/main.cf', 'is the Postfix configuration file main.cf'),
    ('/etc/postfix/t.lmdb', 'names an index file (.lmdb); give the source file postmap builds it from (/etc/postfix/t)'),
    ('/etc/postfix/t.pag', 'names an index file (.pag)'),
])
def test_source_path_problems(path, message):
    assert message in source_path_problem(path, 'smtp_tls_policy_maps')


def test_a_good_source_path():
    assert source_path_problem('/etc/postfix/maps.d/tls-policy.map') is None
    assert set(INDEX_SUFFIXES) == {'.db', '.lmdb', '.cdb', '.dir', '.pag'}
    assert set(KEY_VALUE_FILE_TYPES) == {'hash', 'btree', 'lmdb', 'cdb', 'texthash', 'dbm', 'sdbm'}
