# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lookup table source editing: byte-for-byte preservation, in-place edits,
duplicates, Postfix's continuation rules; plus property tests."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource, split_lines
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import fold_key, utf8_fold_key
from tests.support.lookup_tables import apply_desired, postfix_view

SAMPLE = (
    '# TLS policy, managed in part by Ansible\n'
    '\n'
    'Example.COM   secure match=nexthop\n'
    '    ciphers=high\n'
    '# partner relay\n'
    '[relay.example.net]:587\tencrypt\n'
    '.example.org may\n'
    'example.com none\n'
    '[127.0.0.1]:10025 none'
)


def parse(text):
    return LookupTableSource.parse(text)


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

def test_round_trip_is_byte_identical():
    assert parse(SAMPLE).render() == SAMPLE


@pytest.mark.parametrize('text', [
    '', '\n', 'a b', 'a b\n', 'a b\r\n# c\r\n\r\n', '  orphan\nk v\n', '\ufffd\udcff b\n',
    'k\n  v\n', '#only\n', 'a\tb\n\n\n', 'k v\r',
])
def test_round_trip_edge_cases(text):
    assert parse(text).render() == text


def test_entries_keys_values_and_first_wins():
    table = parse(SAMPLE)
    assert table.keys() == ['example.com', '[relay.example.net]:587', '.example.org', '[127.0.0.1]:10025']
    assert table.lookup('EXAMPLE.com').value == 'secure match=nexthop    ciphers=high'
    assert table.lookup('example.com').key == 'Example.COM'
    assert table.duplicates() == ['example.com']
    assert [e.lineno for e in table.occurrences('example.com')] == [3, 8]


def test_continuation_spans_comments_and_blank_lines_like_readllines():
    # postmap -s texthash: 'a' -> 'b  cont  more', 'c' -> 'd x y'
    table = parse('a b\n# c\n  cont\n\n  more\nc d\n  \n x y\n')
    assert table.lookup('a').value == 'b  cont  more'
    assert table.lookup('c').value == 'd x y'


def test_crlf_is_whitespace_at_end_of_value():
    table = parse('x\tverify\r\ny may\r\n')
    assert table.lookup('x').value == 'verify'
    assert table.newline == '\r\n'


def test_problems_postfix_would_ignore():
    table = parse(' lead x\n cont\nk v\nnovalue\n')
    assert table.problems() == [
        (1, 'logical line must not start with whitespace; Postfix ignores it'),
        (4, "key 'novalue' has no value; Postfix ignores it (expected format: key whitespace value)"),
    ]
    assert table.keys() == ['k', 'novalue']


def test_fold_key_is_ascii_only():
    assert fold_key('ÄB.Example') == 'Äb.example'
    assert fold_key('ABC') == 'abc'


def test_split_lines_splits_on_newline_only():
    assert split_lines('a\x0bb\x0c\nc\u2028d') == ['a\x0bb\x0c\n', 'c\u2028d']


# ---------------------------------------------------------------------------
# editing
# ---------------------------------------------------------------------------

def test_unchanged_set_keeps_bytes():
    table = parse(SAMPLE)
    assert table.set('[relay.example.net]:587', 'encrypt') == 'unchanged'
    assert table.render() == SAMPLE


def test_changed_entry_stays_in_place_keeping_key_spelling_and_separator():
    table = parse('a may\nB.example\t\tencrypt\nc may\n')
    assert table.set('b.example', 'secure') == 'updated'
    assert table.render() == 'a may\nB.example\t\tsecure\nc may\n'


def test_update_drops_continuation_lines_but_keeps_comments_between():
    table = parse('k secure\n# note\n  match=nexthop\nz may\n')
    assert table.set('k', 'verify') == 'updated'
    assert table.render() == 'k verify\n# note\nz may\n'


def test_new_entry_is_appended_adding_a_missing_final_newline():
    table = parse('a may')
    assert table.set('B', 'none') == 'added'
    assert table.render() == 'a may\nB none\n'


def test_appended_entry_uses_crlf_and_tab_when_the_file_does():
    table = parse('a\tmay\r\n')
    table.set('b', 'none')
    assert table.render() == 'a\tmay\r\nb\tnone\r\n'


def test_added_to_empty_file():
    table = parse('')
    table.set('a', 'may')
    assert table.render() == 'a may\n'


def test_remove_takes_continuations_and_keeps_comments():
    table = parse('# head\nk secure\n# note\n  match=nexthop\nz may\n')
    assert table.remove('K') == 1
    assert table.render() == '# head\n# note\nz may\n'
    assert table.remove('k') == 0


def test_set_on_duplicated_key_updates_first_and_removes_later_ones():
    table = parse('d may\nx none\nd encrypt\n  ciphers=high\nD secure\n')
    assert table.duplicates() == ['d']
    assert table.set('d', 'verify') == 'updated'
    assert table.render() == 'd verify\nx none\n'
    assert table.duplicates() == []


def test_set_on_duplicated_key_with_right_first_value_still_removes_dead_copies():
    table = parse('d may\nd encrypt\n')
    assert table.set('d', 'may') == 'updated'
    assert table.render() == 'd may\n'


def test_remove_removes_every_occurrence():
    table = parse('d may\nx none\nd encrypt\n')
    assert table.remove('d') == 2
    assert table.render() == 'x none\n'


def test_same_callback_decides_equality():
    table = parse('k SECURE\n')
    assert table.set('k', 'secure', same=lambda old, new: old.lower() == new) == 'unchanged'
    assert table.render() == 'k SECURE\n'


def test_remove_except_keeps_comments_and_listed_keys():
    table = parse('# c\na may\nb none\n\nC encrypt\n')
    assert table.remove_except(['c', 'A']) == ['b']
    assert table.render() == '# c\na may\n\nC encrypt\n'


@pytest.mark.parametrize('key, value', [
    ('a b', 'may'), ('', 'may'), ('#a', 'may'), ('a', ''), ('a', 'may\nb none'), ('a', ' may'),
])
def test_set_refuses_text_that_would_break_the_line_structure(key, value):
    with pytest.raises(ValueError):
        parse('').set(key, value)


def test_ten_thousand_entries_parse_and_edit():
    text = ''.join('host%05d.example may\n' % i for i in range(10000))
    table = parse(text)
    assert len(table) == 10000
    for i in range(0, 10000, 2):
        table.set('host%05d.example' % i, 'encrypt')
    removed = table.remove_except(['host%05d.example' % i for i in range(0, 10000, 2)])
    assert len(removed) == 5000
    assert table.render().count('\n') == 5000


# ---------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------

_KEY_CHARS = 'abcdefgXYZ.-[]:019'
keys = st.text(alphabet=_KEY_CHARS, min_size=1, max_size=8).filter(lambda k: k[0] != '#')
values = st.text(alphabet='abcz=:!|,. \t', min_size=1, max_size=12).map(lambda v: 'v' + v.strip(' \t'))
endings = st.sampled_from(['\n', '\r\n'])
whitespace = st.text(alphabet=' \t\r\x0b\x0c', min_size=1, max_size=3)

comment_line = st.builds(lambda lead, body, nl: lead + '#' + body + nl,
                         st.sampled_from(['', ' ', '\t']), st.text(max_size=10).filter(lambda t: '\n' not in t), endings)
blank_line = st.builds(lambda ws, nl: ws + nl, st.text(alphabet=' \t\r', max_size=3), endings)
continuation_line = st.builds(lambda ws, body, nl: ws + body + nl, whitespace, values, endings)
entry_line = st.builds(lambda k, ws, v, nl: k + ws + v + nl, keys, whitespace, values, endings)
any_line = st.one_of(comment_line, blank_line, continuation_line, entry_line,
                     st.text(alphabet='ab \t\r#\udcff\u00e9', max_size=8).map(lambda t: t + '\n'))


@st.composite
def table_files(draw):
    lines = draw(st.lists(any_line, max_size=25))
    text = ''.join(lines)
    if text and draw(st.booleans()):
        text = text.rstrip('\n')        # no final newline
    return text


desired_states = st.dictionaries(
    keys.map(lambda k: k.lower()),
    st.one_of(st.none(), values), max_size=6)


def _strip_ending(line):
    # A final line without newline gets the file's newline when an entry is
    # appended after it; compare lines without their terminator.
    line = line[:-1] if line.endswith('\n') else line
    return line[:-1] if line.endswith('\r') else line


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(table_files())
def test_property_parse_render_round_trip(text):
    assert LookupTableSource.parse(text).render() == text


@PROPERTY_SETTINGS
@given(table_files(), desired_states, st.booleans())
def test_property_second_application_changes_nothing(text, desired, exclusive):
    once, dummy = apply_desired(text, desired, exclusive)
    twice, statuses = apply_desired(once, desired, exclusive)
    assert twice == once
    assert set(statuses.values()) <= {'unchanged'}


@PROPERTY_SETTINGS
@given(table_files(), desired_states)
def test_property_result_holds_the_desired_state(text, desired):
    result, dummy = apply_desired(text, desired)
    table = LookupTableSource.parse(result)
    for key, value in desired.items():
        if value is None:
            assert key not in table
        else:
            assert [e.value for e in table.occurrences(key)] == [value]


@PROPERTY_SETTINGS
@given(table_files(), desired_states)
def test_property_unmanaged_entries_are_never_altered(text, desired):
    before = LookupTableSource.parse(text)
    result, dummy = apply_desired(text, desired)
    after = LookupTableSource.parse(result)
    lines_before = [_strip_ending(line) for line in split_lines(text)]
    lines_after = [_strip_ending(line) for line in split_lines(result)]
    for entry in before.entries():
        if entry.fkey in desired:
            continue
        # same logical value, same occurrences, and its physical lines still there verbatim
        assert [e.value for e in after.occurrences(entry.fkey)] == \
            [e.value for e in before.occurrences(entry.fkey)]
        for index in [entry.start] + entry.continuations:
            assert lines_before[index] in lines_after
    # comments are never dropped
    comments = [line for line in lines_before if line.lstrip(' \t\r\x0b\x0c').startswith('#')]
    for line in comments:
        assert line in lines_after


def test_a_key_without_value_is_not_a_duplicate_postfix_would_warn_about():
    table = parse('k\nk may\n')
    assert table.duplicates() == []
    assert table.set('k', 'encrypt') == 'updated'      # the valueless line is the one rewritten
    assert table.render() == 'k encrypt\n'


# ---------------------------------------------------------------------------
# properties over bytes and hostile text: any file survives a round trip,
# set() changes exactly one key as Postfix reads the file, or is refused
# ---------------------------------------------------------------------------

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def decode(data):
    return data.decode('utf-8', 'surrogateescape')


def encode(text):
    return text.encode('utf-8', 'surrogateescape')


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
    assert encode(LookupTableSource.parse(decode(data)).render()) == data


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
    table = LookupTableSource.parse(text)
    try:
        table.set(key, value)
    except ValueError:
        assert table.render() == text
        return
    expected = dict(before)
    expected[utf8_fold_key(key)] = value
    assert postfix_view(table.render()) == expected


@SETTINGS
@given(table_bytes, hostile_text)
def test_remove_removes_exactly_one_key(data, key):
    text = decode(data)
    table = LookupTableSource.parse(text)
    table.remove(key)
    expected = dict((k, v) for k, v in postfix_view(text).items() if k != utf8_fold_key(key))
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
    table = LookupTableSource.parse(text)
    owned = set()
    for entry in table.entries():
        if entry.fkey in managed:
            owned.add(entry.start)
            owned.update(entry.continuations)
    return [line.rstrip('\n') for index, line in enumerate(split_lines(text)) if index not in owned]


@SETTINGS
@given(structured, desired, st.booleans())
def test_unmanaged_lines_keep_their_order(text, wanted, exclusive):
    table = LookupTableSource.parse(text)
    for key, value in wanted.items():
        if value is None:
            table.remove(key)
        else:
            table.set(key, value)
    managed = set(utf8_fold_key(k) for k in wanted)
    if exclusive:
        managed.update(table.remove_except([k for k, v in wanted.items() if v is not None]))
    before = _unmanaged_lines(text, managed)
    after = _unmanaged_lines(table.render(), managed)
    if before and not text.endswith('\n') and after != before:
        # an unterminated final line is completed (with CR LF in a CR LF file) before an append
        assert after[-1] == before[-1] + '\r'
        after[-1] = before[-1]
    assert after == before


def test_apply_reports_what_changed():
    table = parse('a may\nb may\nB encrypt\nc none\n')
    changes = table.apply([('a', 'encrypt'), ('b', 'may'), ('d', 'dane'), ('x', None), ('c', None)])
    assert changes == {'added': ['d'], 'updated': ['a', 'b'], 'removed': ['c']}
    assert table.render() == 'a encrypt\nb may\nd dane\n'
    table = parse('a may\nold none\n# kept\n')
    assert table.apply([('a', 'may')], exclusive=True) == {'added': [], 'updated': [], 'removed': ['old']}
    assert table.render() == 'a may\n# kept\n'


def test_warnings_name_duplicates_and_ignored_lines():
    table = parse('  orphan\nk may\nk encrypt\nnovalue\n')
    assert table.warnings('/t', managed={'k'}) == [
        "/t: key 'k' occurs on lines 2, 3; Postfix uses the first; the later ones are removed",
        '/t, line 1: logical line must not start with whitespace; Postfix ignores it',
        "/t, line 4: key 'novalue' has no value; Postfix ignores it (expected format: key whitespace value)"]
    assert table.warnings('/t')[0] == "/t: key 'k' occurs on lines 2, 3; Postfix uses the first"
