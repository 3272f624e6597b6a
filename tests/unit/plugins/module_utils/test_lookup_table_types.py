# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Postfix lookup table types: index files per type, package hints, map lists."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import (
    index_paths,
    is_indexed,
    package_hint,
    parse_map_list,
    parse_map_spec,
    split_map_list,
)



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
    assert split_map_list(value) == ['proxy:hash:/etc/postfix/a', 'inline:{ {x = y}, z=w }',
                                     'regexp:/r', 'lmdb:/m', 'texthash:/t']
    specs = parse_map_list(value)
    assert [(s.map_type, s.name, s.wrappers) for s in specs] == [
        ('hash', '/etc/postfix/a', ('proxy',)), ('inline', '{ {x = y}, z=w }', ()),
        ('regexp', '/r', ()), ('lmdb', '/m', ()), ('texthash', '/t', ())]
    assert [s.is_key_value_file for s in specs] == [True, False, False, True, True]
    assert parse_map_spec('/no/type') is None
    assert parse_map_list('') == []
