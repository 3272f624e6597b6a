# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Property tests that complement tests/unit/test_policy_table.py (which
already checks the text round trip, idempotence, the desired state and that
unmanaged entries keep their values):

* any file as BYTES (invalid UTF-8, NUL, CR, VT/FF, NEL, U+2028) survives a
  parse/render round trip unchanged;
* setting any key to any value either is refused or changes exactly that
  key in the table as Postfix reads it: no value can create, hide or alter
  another entry;
* the lines that do not belong to managed entries keep their order;
* a policy built from arbitrary attribute text is refused, or renders as one
  line of single-space separated tokens that reads back to itself;
* a destination is refused, or becomes a single lower-case ASCII token.

(Two grammar defects found while writing these, non-ASCII host names in
match/servername and stripped line breaks around protocols/exclude, are
fixed; their regression tests live in tests/unit/test_tls_policy_grammar.py.)
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.policy_table import (
    LookupTable,
    fold_key,
    split_lines,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    LEVELS,
    PolicyError,
    build_policy,
    normalize_destination,
    parse_policy,
    same_policy,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(data):
    return data.decode('utf-8', 'surrogateescape')


def encode(text):
    return text.encode('utf-8', 'surrogateescape')


def postfix_view(text):
    """KEY -> VALUE as postmap builds it: first occurrence wins, entries without a value are skipped."""
    view = {}
    for entry in LookupTable.parse(text).entries():
        if entry.value and entry.fkey not in view:
            view[entry.fkey] = entry.value
    return view


# Bytes that matter to a line-oriented reader, plus ordinary text.
FRAGMENTS = [b'\n', b'\r\n', b'\r', b' ', b'\t', b'\x0b', b'\x0c', b'#', b'key', b'Key', b'value',
             b'=', b',', b'[h]:25', b'\x00', b'\xff', b'\xc3\xa9', b'\xc2\x85', b'\xe2\x80\xa8',
             b'\xe2\x80\xa9', b'\x1c']
table_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(b''.join),
)


@SETTINGS
@given(table_bytes)
@example(b'k v\r\n  cont\x0b\r\n#c\xff\n\xc2\x85 x\n')
def test_any_bytes_round_trip_unchanged(data):
    assert encode(LookupTable.parse(decode(data)).render()) == data


hostile_text = st.one_of(
    st.text(max_size=12),
    st.lists(st.sampled_from(['a', 'B', '.', '#', ' ', '\t', '\n', '\r', '\x00', '\x0b', '\x0c',
                              '\x85', '\u2028', '=', ',', 'key', 'value', '[x]:25']),
             max_size=8).map(''.join),
)


@SETTINGS
@given(table_bytes, hostile_text, hostile_text)
@example(b'a x\n', 'b', 'y\nc z')
@example(b'a x', 'b', 'y')
@example(b'a x\r', 'a\x0bb', 'y')
@example(b'  orphan\n', 'k', 'v')
def test_set_changes_exactly_one_key_or_is_refused(data, key, value):
    text = decode(data)
    before = postfix_view(text)
    table = LookupTable.parse(text)
    try:
        table.set(key, value)
    except ValueError:
        assert table.render() == text
        return
    expected = dict(before)
    expected[fold_key(key)] = value
    assert postfix_view(table.render()) == expected


@SETTINGS
@given(table_bytes, hostile_text)
def test_remove_removes_exactly_one_key(data, key):
    text = decode(data)
    table = LookupTable.parse(text)
    table.remove(key)
    expected = dict((k, v) for k, v in postfix_view(text).items() if k != fold_key(key))
    assert postfix_view(table.render()) == expected


# Line-structured files over a small key pool, so that edits hit existing entries.
KEYS = ['a', 'A', 'b', '[h]:25', '.d.example', 'c']
line = st.one_of(
    st.builds(lambda k, ws, v: k + ws + v, st.sampled_from(KEYS), st.sampled_from([' ', '\t', '  ']),
              st.sampled_from(['may', 'encrypt', 'secure match=x', 'v\r'])),
    st.sampled_from(['', '# comment', '  # indented comment', ' \t', '  continued', '\tmore=1',
                     'a', 'orphan\r']),
)
structured = st.builds(lambda lines, ending, final: ending.join(lines) + (ending if final else ''),
                       st.lists(line, max_size=15), st.sampled_from(['\n', '\r\n']), st.booleans())
desired = st.dictionaries(st.sampled_from(KEYS + ['new', 'New2']),
                          st.one_of(st.none(), st.sampled_from(['may', 'dane', 'secure match=y'])),
                          max_size=4)


def _unmanaged_lines(text, managed):
    table = LookupTable.parse(text)
    owned = set()
    for entry in table.entries():
        if entry.fkey in managed:
            owned.add(entry.start)
            owned.update(entry.continuations)
    return [line.rstrip('\n') for index, line in enumerate(split_lines(text)) if index not in owned]


@SETTINGS
@given(structured, desired, st.booleans())
def test_unmanaged_lines_keep_their_order(text, wanted, exclusive):
    table = LookupTable.parse(text)
    for key, value in wanted.items():
        if value is None:
            table.remove(key)
        else:
            table.set(key, value)
    managed = set(fold_key(k) for k in wanted)
    if exclusive:
        managed.update(table.remove_except([k for k, v in wanted.items() if v is not None]))
    before = _unmanaged_lines(text, managed)
    after = _unmanaged_lines(table.render(), managed)
    if before and not text.endswith('\n') and after != before:
        # an unterminated final line is completed (with CR LF in a CR LF file) before an append
        assert after[-1] == before[-1] + '\r'
        after[-1] = before[-1]
    assert after == before


# ---------------------------------------------------------------------------
# the policy grammar
# ---------------------------------------------------------------------------

HOSTILE = ['\n', '\r', '\x00', ' ', '\t', ',', '=', '{', '}', '|', ':', '\x0b', '\x85', '\u2028',
           '$(id)', '`id`', ';', '#', '\u212a', '\u017f', 'é']


def spoiled(valid):
    """A valid value, or the same value with something hostile inserted."""
    return st.one_of(
        st.sampled_from(valid),
        st.builds(lambda v, junk, pos: v[:pos % (len(v) + 1)] + junk + v[pos % (len(v) + 1):],
                  st.sampled_from(valid), st.sampled_from(HOSTILE), st.integers(0, 40)),
        st.text(max_size=10),
    )


FINGERPRINT = ':'.join(['AB'] * 32)
policy_args = st.fixed_dictionaries({
    'level': spoiled(list(LEVELS)),
    'match': st.one_of(st.none(), st.lists(spoiled(['nexthop', 'dot-nexthop', '.example.com', 'mx.example.com',
                                                    FINGERPRINT]), max_size=3)),
    'ciphers': st.one_of(st.none(), spoiled(['high', 'medium'])),
    'protocols': st.one_of(st.none(), spoiled(['>=TLSv1.2', '!SSLv2:!SSLv3', 'TLSv1.3']),
                           st.lists(spoiled(['!SSLv2', '>=TLSv1.2']), max_size=3)),
    'exclude': st.one_of(st.none(), spoiled(['aNULL', 'MD5:RC4'])),
    'tafile': st.one_of(st.none(), st.lists(spoiled(['/etc/ssl/ta.pem']), max_size=2)),
    'servername': st.one_of(st.none(), spoiled(['hostname', 'nexthop', 'mx.example.com'])),
    'connection_reuse': st.one_of(st.none(), st.booleans(), spoiled(['yes', 'no'])),
    'enable_rpk': st.one_of(st.none(), st.booleans(), spoiled(['yes', 'no'])),
})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_args)
def test_a_built_policy_is_one_line_of_tokens_that_reads_back(args):
    try:
        policy = build_policy(**args)
    except PolicyError:
        return
    text = policy.render()
    for ch in '\n\r\x00\x0b\x0c\t,{}':
        assert ch not in text, (args, text)
    assert text == text.strip() and '  ' not in text
    assert len(text.split(' ')) == 1 + len(policy.attributes)
    assert parse_policy(text).render() == text
    assert same_policy(text, text)
    table = LookupTable.parse('a.example may\n')
    table.set('example.com', text)
    assert postfix_view(table.render()) == {'a.example': 'may', 'example.com': text}


@SETTINGS
@given(st.one_of(st.text(max_size=30), spoiled(['example.com', '.example.com', '[mx.example.com]:587',
                                                '[ipv6:2001:db8::1]', '[192.0.2.1]:25'])))
def test_a_destination_is_refused_or_becomes_one_ascii_token(destination):
    try:
        key, dummy = normalize_destination(destination)
    except PolicyError as e:
        assert str(e)
        return
    assert key.isascii() and key == key.lower()
    assert key and key[0] != '#'
    assert not any(ch in ' \t\r\n\v\f,' or ord(ch) < 32 or ord(ch) == 127 for ch in key)
    table = LookupTable.parse('other.example may\n')
    table.set(key, 'encrypt')
    assert postfix_view(table.render()) == {'other.example': 'may', key: 'encrypt'}
