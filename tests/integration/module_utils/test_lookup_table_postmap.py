# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lookup table reader against the real postmap, property-based (hypothesis).

The unit properties (tests/unit/plugins/module_utils/test_lookup_table_source.py)
check the editor against its own reading of a file, through
``tests.support.lookup_tables.postfix_view``.  These check that reading
against Postfix: for arbitrary files of comments, blank lines, continuation
lines (also VT/FF/CR whitespace), duplicates and key-only lines, the entries
the reader reports are exactly what ``postmap`` builds (``postmap -s`` in a
sandbox, tests/integration/conftest.py), and after applying a desired state
the index holds exactly the desired entries plus the untouched ones.
"""

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import utf8_fold_key as fold_key

from postfix_sandbox import needs_postfix
from tests.support.lookup_tables import apply_desired, postfix_view

pytestmark = needs_postfix

ORACLE = settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# UTF-8 keys too: postmap casefolds them (smtputf8_enable=yes): BÜCHER is bücher, ß is ss
KEYS = ['a', 'A', 'b', '[h]:25', '[H]:25', '.d.example', 'c-1', 'Bücher.example', 'BÜCHER.example',
        'straße.example', 'Strasse.example']
WS = [' ', '\t', '  ', ' \t', '\x0b', '\x0c']
VALUES = ['may', 'encrypt', 'secure match=x', 'v\r', 'x,y  z', 'a=b=c', '#notacomment']
line = st.one_of(
    st.builds(lambda k, ws, v: k + ws + v, st.sampled_from(KEYS), st.sampled_from(WS), st.sampled_from(VALUES)),
    st.builds(lambda ws, v: ws + v, st.sampled_from(WS), st.sampled_from(VALUES)),     # continuation
    st.sampled_from(['', '# comment', '  # indented comment', ' \t', '\r', 'a', 'b ', '#']),
)
files = st.builds(lambda lines, ending, final: ending.join(lines) + (ending if final else ''),
                  st.lists(line, max_size=14), st.sampled_from(['\n', '\r\n']), st.booleans())
desired = st.dictionaries(st.sampled_from(KEYS + ['new', 'New.Example']),
                          st.one_of(st.none(), st.sampled_from(['may', 'dane', 'secure match=y'])),
                          max_size=4).filter(lambda d: len(set(fold_key(k) for k in d)) == len(d))
# (the module refuses two entries for one key: keys are case-insensitive)


def postmap_view(sandbox, text):
    """What postmap builds from TEXT: {key: value} (the sandbox's hash table, postmap -s)."""
    return sandbox.seed(text).dump()


@ORACLE
@given(text=files)
@example(text='k v\n  cont\n# c\n\tmore\n')
@example(text='  orphan\nk v\nk dup\nK upper\nkeyonly\n')
@example(text='k v\r\n\x0bcont\r\n\x0cmore\r')
def test_parser_sees_the_entries_postmap_builds(sandbox, text):
    assert postfix_view(text) == postmap_view(sandbox, text)


@ORACLE
@given(text=files, wanted=desired, exclusive=st.booleans())
def test_edited_table_holds_desired_and_untouched_entries_for_postfix(sandbox, text, wanted, exclusive):
    before = postmap_view(sandbox, text)
    result, dummy = apply_desired(text, wanted, exclusive)
    expected = {} if exclusive else dict(before)
    for key, value in wanted.items():
        expected.pop(fold_key(key), None)
        if value is not None:
            expected[fold_key(key)] = value
    assert postmap_view(sandbox, result) == expected
    # and a second application changes nothing
    again = LookupTableSource.parse(result)
    for key, value in wanted.items():
        assert (again.remove(key) == 0) if value is None else (again.set(key, value) == 'unchanged')
    if exclusive:
        assert again.remove_except([k for k, v in wanted.items() if v is not None]) == []
    assert again.render() == result
