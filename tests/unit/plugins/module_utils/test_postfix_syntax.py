# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Postfix's whitespace, list splitting and key folding, defined once."""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import (
    LINE_BLANKS,
    LIST_SEPARATORS,
    SPACES,
    WHITESPACE,
    fold_key,
    parent_domains,
    split_list,
)


def test_character_classes():
    assert set(WHITESPACE) == set(' \t\n\v\f\r')
    assert set(LINE_BLANKS) == set(WHITESPACE) - {'\n'}
    assert set(SPACES) == set(' \t\r\n')
    assert set(LIST_SEPARATORS) == set(SPACES) | {','}


@pytest.mark.parametrize('value, items', [
    ('', []),
    (None, []),
    ('a, b,,c\td\ne', ['a', 'b', 'c', 'd', 'e']),
    ('proxy:hash:/a, inline:{ {x = y}, z=w } regexp:/r', ['proxy:hash:/a', 'inline:{ {x = y}, z=w }', 'regexp:/r']),
    ('check_policy_service { inet:127.0.0.1:10040, timeout=10s }, permit',
     ['check_policy_service', '{ inet:127.0.0.1:10040, timeout=10s }', 'permit']),
    ('a}b, c', ['a}b', 'c']),                       # a stray "}" is text
    ('{unclosed, a', ['{unclosed, a']),             # an open brace runs to the end
    ('a\vb', ['a\vb']),                             # VT and FF do not separate list items
])
def test_split_list_like_mystrtokq(value, items):
    assert split_list(value) == items


def test_split_list_without_braces_like_mystrtok():
    assert split_list('{a, b}', braces=False) == ['{a', 'b}']


def test_fold_key_is_ascii_only():
    assert fold_key('Example.COM') == 'example.com'
    assert fold_key('BÜCHER.De') == 'bÜcher.de'
    assert fold_key('\u212a') == '\u212a'          # KELVIN SIGN is not folded to "k"


@pytest.mark.parametrize('name, dotted, parents', [
    ('a.example.com', True, ['.example.com', '.com']),
    ('a.example.com', False, ['example.com', 'com']),
    ('.example.com', True, ['.com']),          # a parent key: its own parents
    ('example', True, []),
    ('a..b', True, ['..b', '.b']),              # as the C loops walk strchr(entry + 1, '.')
    ('a..b', False, ['.b']),
])
def test_parent_domains(name, dotted, parents):
    assert parent_domains(name, dotted) == parents
