# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The table parser against the real postmap, property-based (hypothesis).

The unit properties (tests/unit/test_policy_table.py,
tests/unit/test_reliability_properties.py) check the editor against its own
reading of a file.  These check that reading against Postfix: for arbitrary
files of comments, blank lines, continuation lines (also VT/FF/CR
whitespace), duplicates and key-only lines, the entries the parser reports
are exactly what ``postmap`` builds (``postmap -s``), and after applying a
desired state the index holds exactly the desired entries plus the
untouched ones.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import subprocess

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.policy_table import LookupTable, fold_key

from reliability_helpers import HAVE_POSTFIX, REAL_POSTMAP

pytestmark = pytest.mark.skipif(not HAVE_POSTFIX, reason='needs the host postmap')

ORACLE = settings(max_examples=60, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

KEYS = ['a', 'A', 'b', '[h]:25', '[H]:25', '.d.example', 'c-1']
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


def parser_view(text):
    view = {}
    for entry in LookupTable.parse(text).entries():
        if entry.value and entry.fkey not in view:
            view[entry.fkey] = entry.value
    return view


class Postmap(object):
    def __init__(self, directory):
        self.confdir = directory / 'postfix'
        self.confdir.mkdir(exist_ok=True)
        (self.confdir / 'main.cf').write_text('compatibility_level = 3.6\n')
        self.table = directory / 'table'

    def view(self, text):
        """What postmap builds from TEXT: {key: value} (postmap -s)."""
        self.table.write_bytes(text.encode('utf-8', 'surrogateescape'))
        spec = 'hash:%s' % self.table
        build = subprocess.run([REAL_POSTMAP, '-c', str(self.confdir), spec], capture_output=True, text=True, check=False)
        assert build.returncode == 0, build.stderr
        # bytes, not text=True: universal newlines would turn a CR inside a value into a line break
        dump = subprocess.run([REAL_POSTMAP, '-c', str(self.confdir), '-s', spec], capture_output=True, check=False)
        assert dump.returncode == 0, dump.stderr
        out = dump.stdout.decode('utf-8', 'surrogateescape')
        return dict(item.split('\t', 1) for item in out.split('\n') if item)


@pytest.fixture
def postmap(tmp_path):
    return Postmap(tmp_path)


@ORACLE
@given(text=files)
@example(text='k v\n  cont\n# c\n\tmore\n')
@example(text='  orphan\nk v\nk dup\nK upper\nkeyonly\n')
@example(text='k v\r\n\x0bcont\r\n\x0cmore\r')
def test_parser_sees_the_entries_postmap_builds(postmap, text):
    assert parser_view(text) == postmap.view(text)


@ORACLE
@given(text=files, wanted=desired, exclusive=st.booleans())
def test_edited_table_holds_desired_and_untouched_entries_for_postfix(postmap, text, wanted, exclusive):
    before = postmap.view(text)
    table = LookupTable.parse(text)
    for key, value in wanted.items():
        if value is None:
            table.remove(key)
        else:
            table.set(key, value)
    keep = [k for k, v in wanted.items() if v is not None]
    if exclusive:
        table.remove_except(keep)
    expected = {} if exclusive else dict(before)
    for key, value in wanted.items():
        expected.pop(fold_key(key), None)
        if value is not None:
            expected[fold_key(key)] = value
    result = table.render()
    assert postmap.view(result) == expected
    # and a second application changes nothing
    again = LookupTable.parse(result)
    for key, value in wanted.items():
        assert (again.remove(key) == 0) if value is None else (again.set(key, value) == 'unchanged')
    if exclusive:
        assert again.remove_except(keep) == []
    assert again.render() == result
