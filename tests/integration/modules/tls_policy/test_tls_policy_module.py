# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.tls_policy against the host's real postconf and postmap.

Each test works in its own sandbox (tests/integration/conftest.py): a
throwaway Postfix config directory whose main.cf lists the policy table
through ``maps_d_dir`` in ``smtp_tls_policy_maps``. Single module calls run
the module file directly with its arguments as JSON on stdin
(``sandbox.tls_policy`` -> ``ansible_env.run_module``); tests of plays,
check mode across tasks and Jinja-templated arguments run the real
``ansible-playbook``. The ``postmap_calls`` fixture puts a recording
``postmap`` first in PATH (it runs the real one), so tests can tell whether
an index was built and how many lookups verified it.

The reliability tests of this module are beside this file:
test_tls_policy_{bad_input,check_mode,concurrency,faults,permissions}.py.
"""

import json
import os
import stat
import subprocess
import time

import pytest

from ansible_env import tool
from postfix_sandbox import REAL_POSTCONF, TLS_POLICY, assert_failed, needs_postfix, warnings_of

pytestmark = needs_postfix

SHA256 = '3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E'

SEEDED = (
    '# TLS policy for the gateway\n'
    '# (hand-maintained part below)\n'
    '\n'
    'partner.example   secure\n'
    '    match=nexthop:dot-nexthop\n'
    '# the relay\n'
    '[relay.example.net]:587\tencrypt\n'
    'old.example may\n'
    'Partner.Example none\n'
)


# --- creating and indexing, every file type ------------------------------------------

@pytest.mark.parametrize('map_type', ['hash', 'lmdb', 'cdb', 'texthash'])
def test_create_table_for_each_type_and_confirm_with_postmap(make_sandbox, map_type):
    sandbox = make_sandbox(map_type=map_type)
    postmap_calls = sandbox.record('postmap')
    started = int(time.time())
    result = sandbox.tls_policy({'entries': [
        {'destination': 'Example.com', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop'],
         'protocols': ['>=TLSv1.2']},
        {'destination': '[127.0.0.1]:10025', 'level': 'none'},
        {'destination': '.example.org', 'level': 'encrypt', 'ciphers': 'high', 'exclude': ['aNULL', 'MD5']},
    ]})
    assert result['changed'] is True, result
    assert result['added'] == ['example.com', '[127.0.0.1]:10025', '.example.org']
    assert result['updated'] == [] and result['removed'] == []
    assert result['map_type'] == map_type
    assert result['path'] == str(sandbox.table)            # ${maps_d_dir} expanded by postconf -x
    assert result['map'] == '%s:%s' % (map_type, sandbox.table)
    assert result['postmap_ran'] is (map_type != 'texthash')
    assert sandbox.table.read_text() == (
        'example.com secure match=nexthop:dot-nexthop protocols=>=TLSv1.2\n'
        '[127.0.0.1]:10025 none\n'
        '.example.org encrypt ciphers=high exclude=aNULL:MD5\n')
    assert stat.S_IMODE(sandbox.table.stat().st_mode) == 0o644
    # dated when it was written (texthash is verified dated back, then given its time again)
    assert sandbox.table.stat().st_mtime >= started
    assert (sandbox.table.stat().st_uid, sandbox.table.stat().st_gid) == (os.getuid(), os.getgid())
    for index in sandbox.index_files():
        assert index.exists()
        assert stat.S_IMODE(index.stat().st_mode) == 0o644
        assert index.stat().st_mtime >= sandbox.table.stat().st_mtime
    # what Postfix will see
    assert sandbox.query('example.com', 'EXAMPLE.COM', '[127.0.0.1]:10025', '.example.org', 'other.example') == {
        'example.com': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        'EXAMPLE.COM': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        '[127.0.0.1]:10025': 'none',
        '.example.org': 'encrypt ciphers=high exclude=aNULL:MD5',
    }
    # nothing but the table and its index in the directory (no temp or lock files)
    assert sorted(os.listdir(sandbox.maps_dir)) == sorted([sandbox.table.name] + [i.name for i in sandbox.index_files()])
    if map_type == 'texthash':
        assert postmap_calls.builds() == []
    else:
        assert postmap_calls.builds() == ['-c %s %s:%s' % (sandbox.confdir, map_type, postmap_calls.builds()[0].split(':', 1)[1])]
        assert len(postmap_calls.queries()) == 1          # one batched postmap -q - for all entries

    # idempotence: the second run changes nothing and runs no postmap at all
    before = sandbox.snapshot()
    calls_before = postmap_calls.calls()
    again = sandbox.tls_policy({'entries': [
        {'destination': 'example.com', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop'],
         'protocols': '>=TLSv1.2'},
        {'destination': '[127.0.0.1]:10025', 'level': 'none'},
        {'destination': '.EXAMPLE.org', 'level': 'encrypt', 'ciphers': 'high', 'exclude': 'aNULL:MD5'},
    ]})
    assert again['changed'] is False, again
    assert again['postmap_ran'] is False
    assert again['added'] == again['updated'] == again['removed'] == []
    assert sandbox.snapshot() == before
    assert postmap_calls.calls() == calls_before


def test_single_destination_with_maps_d_dir_resolution(sandbox):
    result = sandbox.tls_policy({'destination': '[relay.example.net]:587', 'level': 'fingerprint', 'match': [SHA256]})
    assert result['changed'] is True
    assert result['path'] == str(sandbox.maps_dir / 'tls-policy.map')
    assert sandbox.query('[relay.example.net]:587') == {'[relay.example.net]:587': 'fingerprint match=' + SHA256}


def test_playbook_change_then_no_op(sandbox):
    task = {TLS_POLICY: {'destination': 'example.com', 'level': 'verify',
                         'config_dir': str(sandbox.confdir)}}
    results, stats = sandbox.playbook([task, task])
    assert [r['changed'] for r in results] == [True, False]
    assert stats['changed'] == 1 and stats['failures'] == 0


# --- editing keeps everything it does not manage --------------------------------------

def test_edit_keeps_comments_order_and_unmanaged_entries(sandbox):
    sandbox.table.write_text(SEEDED)
    result = sandbox.tls_policy({'entries': [
        {'destination': 'partner.example', 'level': 'verify'},        # duplicated key: first updated
        {'destination': 'new.example', 'level': 'encrypt'},
        {'destination': 'old.example', 'state': 'absent'},
    ]})
    assert result['changed'] is True, result
    assert result['added'] == ['new.example']
    assert result['updated'] == ['partner.example']
    assert result['removed'] == ['old.example']
    assert result['duplicates'] == ['partner.example']
    assert 'partner.example' in warnings_of(result) and 'lines 4, 9' in warnings_of(result)
    assert sandbox.table.read_text() == (
        '# TLS policy for the gateway\n'
        '# (hand-maintained part below)\n'
        '\n'
        'partner.example   verify\n'
        '# the relay\n'
        '[relay.example.net]:587\tencrypt\n'
        'new.example encrypt\n')
    assert sandbox.query('partner.example', '[relay.example.net]:587', 'old.example', 'new.example') == {
        'partner.example': 'verify', '[relay.example.net]:587': 'encrypt', 'new.example': 'encrypt'}


def test_unmanaged_duplicates_only_warn(sandbox):
    sandbox.table.write_text(SEEDED)
    result = sandbox.tls_policy({'destination': '[relay.example.net]:587', 'level': 'encrypt'})
    assert result['duplicates'] == ['partner.example']
    assert 'Postfix uses the first' in warnings_of(result)
    assert sandbox.table.read_text() == SEEDED            # nothing to change in the file ...
    assert result['postmap_ran'] is True              # ... but it had never been indexed
    assert result['changed'] is True


def test_semantically_equal_entry_is_not_rewritten(sandbox):
    sandbox.table.write_text('example.com SECURE,match=nexthop\n   , ciphers=HIGH\n')
    sandbox.tls_policy({'destination': 'other.example', 'level': 'may'})
    before = sandbox.table.read_text()
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'secure', 'match': ['nexthop'], 'ciphers': 'high'})
    assert result['changed'] is False, result
    assert sandbox.table.read_text() == before


def test_crlf_file_keeps_its_line_endings(sandbox):
    sandbox.table.write_bytes(b'# windows\r\na.example may\r\n')
    sandbox.tls_policy({'destination': 'b.example', 'level': 'encrypt'})
    assert sandbox.table.read_bytes() == b'# windows\r\na.example may\r\nb.example encrypt\r\n'
    assert sandbox.query('a.example', 'b.example') == {'a.example': 'may', 'b.example': 'encrypt'}


def test_exclusive_removes_unlisted_entries_and_keeps_comments(sandbox):
    sandbox.table.write_text(SEEDED)
    result = sandbox.tls_policy({'exclusive': True, 'entries': [
        {'destination': '[relay.example.net]:587', 'level': 'encrypt'},
        {'destination': 'fresh.example', 'level': 'dane'},
    ]})
    assert result['changed'] is True
    assert sorted(result['removed']) == ['old.example', 'partner.example']
    assert result['added'] == ['fresh.example']
    # what Postfix used for each (the first of the duplicates, its continuation line joined) and after
    assert result['changed_values'] == {'old.example': {'before': 'may', 'after': None},
                                        'partner.example': {'before': 'secure    match=nexthop:dot-nexthop',
                                                            'after': None}}
    assert sandbox.table.read_text() == (
        '# TLS policy for the gateway\n'
        '# (hand-maintained part below)\n'
        '\n'
        '# the relay\n'
        '[relay.example.net]:587\tencrypt\n'
        'fresh.example dane\n')
    assert sandbox.query('partner.example', 'old.example', 'fresh.example') == {'fresh.example': 'dane'}
    again = sandbox.tls_policy({'exclusive': True, 'entries': [
        {'destination': '[relay.example.net]:587', 'level': 'encrypt'},
        {'destination': 'fresh.example', 'level': 'dane'},
    ]})
    assert again['changed'] is False and again['changed_values'] == {}


def test_exclusive_with_no_entries_empties_the_table(sandbox):
    sandbox.table.write_text(SEEDED)
    result = sandbox.tls_policy({'exclusive': True, 'entries': []})
    assert result['changed'] is True
    assert sandbox.table.read_text() == '# TLS policy for the gateway\n# (hand-maintained part below)\n\n# the relay\n'
    assert sandbox.query('partner.example', '[relay.example.net]:587') == {}


def test_absent_on_missing_file_creates_nothing(sandbox):
    result = sandbox.tls_policy({'destination': 'example.com', 'state': 'absent'})
    assert result['changed'] is False
    assert os.listdir(sandbox.maps_dir) == []


@pytest.mark.parametrize('check', [False, True])
@pytest.mark.parametrize('args', [{'destination': 'new.example', 'level': 'may'},
                                  {'destination': 'bank.example', 'state': 'absent'}])
def test_an_index_without_its_source_is_refused(sandbox, args, check):
    # the source is gone (a restore, a mistaken rm) but Postfix still uses the index: a table
    # written from nothing would silently drop the entries it enforces
    sandbox.table.write_text('bank.example secure match=nexthop\ngov.example secure\n')
    assert sandbox.tls_policy({'destination': 'gov.example', 'level': 'secure'})['postmap_ran'] is True
    sandbox.table.unlink()
    before = sorted(os.listdir(sandbox.maps_dir))
    result = sandbox.tls_policy(args, check=check)
    assert_failed(result, '%s does not exist, but its index %s.db does' % (sandbox.table, sandbox.table))
    assert 'postmap -s hash:%s' % sandbox.table in result['msg']
    assert sorted(os.listdir(sandbox.maps_dir)) == before
    assert sandbox.query('bank.example', 'gov.example') == {
        'bank.example': 'secure match=nexthop', 'gov.example': 'secure'}


# --- check mode, diff, backup ----------------------------------------------------------

def test_check_mode_writes_nothing_for_a_new_table(sandbox, postmap_calls):
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'secure'}, check=True, diff=True)
    assert result['changed'] is True
    assert result['added'] == ['example.com']
    assert result['postmap_ran'] is True          # would run
    assert result['diff']['after'] == 'example.com secure\n'
    assert os.listdir(sandbox.maps_dir) == []
    assert postmap_calls.calls() == []


def test_check_mode_predicts_a_table_whose_directory_a_play_creates_first(sandbox):
    path = sandbox.maps_dir / 'maps.d' / 'tls_policy'
    args = {'destination': 'example.com', 'level': 'secure', 'path': str(path)}
    predicted = sandbox.tls_policy(args, check=True, diff=True)
    assert predicted['changed'] is True, predicted
    assert predicted['added'] == ['example.com']
    assert predicted['diff']['after'] == 'example.com secure\n'
    assert any('does not exist (yet)' in w for w in predicted.get('warnings', [])), predicted
    assert not path.parent.exists()
    # A real run still refuses: it does not create directories.
    refused = sandbox.tls_policy(args)
    assert refused.get('failed') and 'directory %s of the table' % path.parent in refused['msg']
    assert not path.parent.exists()
    # As in a play: the directory first, then the table.
    tasks = [{'ansible.builtin.file': {'path': str(path.parent), 'state': 'directory', 'mode': '0755'}},
             {TLS_POLICY: dict(args, config_dir=str(sandbox.confdir))}]
    checked, stats = sandbox.playbook(tasks, check=True)
    assert stats['failures'] == 0 and stats['changed'] == 2, (checked, stats)
    applied, stats = sandbox.playbook(tasks)
    assert stats['failures'] == 0 and stats['changed'] == 2, (applied, stats)
    assert sandbox.query('example.com', path=path) == {'example.com': 'secure'}


def test_check_mode_writes_nothing_for_an_edit(sandbox, postmap_calls):
    sandbox.table.write_text(SEEDED)
    sandbox.tls_policy({'destination': 'x.example', 'level': 'may'})     # build the index
    before = sandbox.snapshot()
    calls_before = postmap_calls.calls()
    result = sandbox.tls_policy({'exclusive': True, 'entries': [{'destination': 'y.example', 'level': 'encrypt'}]},
                                check=True, diff=True)
    assert result['changed'] is True
    assert result['added'] == ['y.example']
    assert 'x.example' in result['removed']
    assert 'y.example encrypt' in result['diff']['after']
    assert sandbox.snapshot() == before
    assert postmap_calls.calls() == calls_before


def test_check_mode_reports_stale_index_without_building(sandbox, postmap_calls):
    sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    future = sandbox.table.stat().st_mtime + 30
    os.utime(sandbox.table, (future, future))
    before = sandbox.snapshot()
    calls_before = postmap_calls.calls()
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may'}, check=True)
    assert result['changed'] is True and result['postmap_ran'] is True
    assert sandbox.snapshot() == before
    assert postmap_calls.calls() == calls_before


def test_diff_shows_before_and_after(sandbox):
    sandbox.table.write_text('a.example may\n')
    result = sandbox.tls_policy({'destination': 'a.example', 'level': 'encrypt'}, diff=True)
    assert result['diff'] == {'before': 'a.example may\n', 'after': 'a.example encrypt\n',
                              'before_header': str(sandbox.table), 'after_header': str(sandbox.table)}


def test_bytes_that_are_not_utf8_are_kept_and_shown_through_ansible(sandbox):
    """A Latin-1 comment and a Latin-1 key line (postmap ignores it as "non-UTF-8 input"):
    the edit keeps their bytes, and the result, diff and warnings come back through the real
    ansible-playbook with the bytes shown as \\xNN (the strings read with surrogate escapes
    once made Ansible refuse the result after the table was written: failed, changed false)."""
    raw = b'# caf\xe9\nb\xe9b\xe9.example may\na.example encrypt\n'
    sandbox.table.write_bytes(raw)
    task = {TLS_POLICY: {'destination': 'c.example', 'level': 'may', 'config_dir': str(sandbox.confdir)}}
    results, stats = sandbox.playbook([task], diff=True)
    assert stats['failures'] == 0 and results[0]['changed'] is True, results
    assert sandbox.table.read_bytes() == raw + b'c.example may\n'
    assert results[0]['diff']['before'] == '# caf\\xe9\nb\\xe9b\\xe9.example may\na.example encrypt\n', results
    assert 'b\\xe9b\\xe9.example may: Postfix cannot use this entry' in warnings_of(results[0])
    assert sandbox.query('a.example', 'c.example') == {'a.example': 'encrypt', 'c.example': 'may'}
    # and the next run is a no-op, not a failure
    results, stats = sandbox.playbook([task], diff=True)
    assert stats['failures'] == 0 and results[0]['changed'] is False, results


def test_a_key_with_a_byte_order_mark_is_warned_about_and_removable(sandbox):
    """An editor's byte order mark before the first line is part of its key: postmap and
    Postfix take the line, and no next hop ever matches it (encrypt silently not applied)."""
    sandbox.table.write_bytes(b'\xef\xbb\xbfexample.com encrypt\nother.example may\n')
    result = sandbox.tls_policy({'destination': 'other.example', 'level': 'may'})   # builds the index
    assert 'line 1: \ufeffexample.com encrypt: this entry never matches' in warnings_of(result)
    assert 'U+FEFF' in warnings_of(result)
    assert sandbox.query('example.com') == {}     # what Postfix finds for the next hop: nothing
    result = sandbox.tls_policy({'destination': '\ufeffexample.com', 'state': 'absent'})
    assert result['changed'] is True and result['removed'] == ['\ufeffexample.com']
    assert sandbox.table.read_bytes() == b'other.example may\n'


def test_a_list_option_given_as_text_with_blanks_after_the_commas(sandbox):
    # Ansible splits "a, b" on commas only: the items are written without the blanks
    result = sandbox.tls_policy({'destination': 'x.example', 'level': 'secure',
                                 'match': 'nexthop, dot-nexthop', 'protocols': '>=TLSv1.2, <=TLSv1.3'})
    assert result['changed'] is True, result
    assert sandbox.query('x.example') == {'x.example': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2:<=TLSv1.3'}


def test_backup_keeps_the_previous_source(sandbox):
    sandbox.table.write_text('a.example may\n')
    result = sandbox.tls_policy({'destination': 'a.example', 'level': 'encrypt', 'backup': True})
    backup = result['backup_file']
    assert os.path.dirname(backup) == str(sandbox.maps_dir)
    with open(backup) as f:
        assert f.read() == 'a.example may\n'
    again = sandbox.tls_policy({'destination': 'a.example', 'level': 'encrypt', 'backup': True})
    assert 'backup_file' not in again


# --- stale or missing index ------------------------------------------------------------

def test_stale_index_is_rebuilt_then_idempotent(sandbox):
    sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    # someone edits the source by hand and forgets postmap
    sandbox.table.write_text(sandbox.table.read_text() + 'hand.example encrypt\n')
    future = sandbox.table.stat().st_mtime + 30
    os.utime(sandbox.table, (future, future))
    source_before = sandbox.table.read_bytes()
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    assert result['changed'] is True and result['postmap_ran'] is True
    assert result['added'] == result['updated'] == []
    assert sandbox.table.read_bytes() == source_before
    assert sandbox.query('hand.example') == {'hand.example': 'encrypt'}
    assert sandbox.index_files()[0].stat().st_mtime >= sandbox.table.stat().st_mtime
    again = sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    assert again['changed'] is False and again['postmap_ran'] is False


def test_missing_index_is_rebuilt(sandbox):
    sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    sandbox.index_files()[0].unlink()
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    assert result['changed'] is True and result['postmap_ran'] is True
    assert sandbox.query('example.com') == {'example.com': 'may'}


def test_an_index_of_the_other_berkeley_db_type_or_empty_is_rebuilt(make_sandbox):
    # hash: and btree: both write PATH.db: after main.cf switched the type, the old .db is
    # newer than the source but Postfix cannot open it ("unexpected file type or format")
    box = make_sandbox(map_type='btree')
    box.table.write_text('example.com may\n')
    box.real_postmap('hash:%s' % box.table)
    assert box.real_postmap('-q', 'example.com', 'btree:%s' % box.table).returncode != 0
    result = box.tls_policy({'destination': 'example.com', 'level': 'may'})
    assert result['changed'] is True and result['postmap_ran'] is True, result
    assert box.query('example.com') == {'example.com': 'may'}
    assert box.tls_policy({'destination': 'example.com', 'level': 'may'})['changed'] is False
    # an empty index file, newer than the source
    index = box.index_files()[0]
    index.write_bytes(b'')
    result = box.tls_policy({'destination': 'example.com', 'level': 'may'})
    assert result['postmap_ran'] is True and box.query('example.com') == {'example.com': 'may'}


@pytest.mark.parametrize('linked', ['directory', 'file'])
def test_a_path_through_a_symbolic_link_is_the_listed_table(make_sandbox, tmp_path, linked):
    # smtp_tls_policy_maps lists lmdb:MAPS/tls_policy; the task names it through a linked
    # directory or a linked file: the listed table (its type, its index) is what gets edited
    box = make_sandbox(map_type='lmdb')
    box.table.write_text('a.example may\n')
    if linked == 'directory':
        os.symlink(str(box.maps_dir), str(tmp_path / 'link'))
        path = tmp_path / 'link' / box.table.name
    else:
        path = tmp_path / 'policy-link'
        os.symlink(str(box.table), str(path))
    result = box.tls_policy({'destination': 'a.example', 'level': 'secure', 'path': str(path)})
    assert result['changed'] is True and result['map'] == 'lmdb:%s' % box.table, result
    assert 'through a symbolic link' in warnings_of(result)
    assert box.query('a.example') == {'a.example': 'secure'}
    assert sorted(p.name for p in box.maps_dir.iterdir()) == [box.table.name, box.table.name + '.lmdb']
    assert box.tls_policy({'destination': 'a.example', 'level': 'secure', 'path': str(path)})['changed'] is False


# --- attributes ---------------------------------------------------------------------------

def test_mode_applies_to_source_and_index(sandbox):
    sandbox.tls_policy({'destination': 'example.com', 'level': 'may', 'mode': '0640'})
    assert stat.S_IMODE(sandbox.table.stat().st_mode) == 0o640
    assert stat.S_IMODE(sandbox.index_files()[0].stat().st_mode) == 0o640
    again = sandbox.tls_policy({'destination': 'example.com', 'level': 'may', 'mode': '0640'})
    assert again['changed'] is False


def test_index_gets_the_source_mode_back(sandbox):
    sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    sandbox.table.chmod(0o640)
    sandbox.index_files()[0].chmod(0o600)
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'encrypt'})
    assert result['changed'] is True
    assert stat.S_IMODE(sandbox.table.stat().st_mode) == 0o640
    assert stat.S_IMODE(sandbox.index_files()[0].stat().st_mode) == 0o640
    # and a wrong index mode alone is fixed (and reported) too
    sandbox.index_files()[0].chmod(0o600)
    fix = sandbox.tls_policy({'destination': 'example.com', 'level': 'encrypt'})
    assert fix['changed'] is True and fix['postmap_ran'] is False
    assert stat.S_IMODE(sandbox.index_files()[0].stat().st_mode) == 0o640


def test_symlinked_source_stays_a_symlink(sandbox):
    real = sandbox.tmp / 'real-policy'
    real.write_text('a.example may\n')
    sandbox.table.symlink_to(real)
    sandbox.tls_policy({'destination': 'b.example', 'level': 'encrypt'})
    assert sandbox.table.is_symlink()
    assert real.read_text() == 'a.example may\nb.example encrypt\n'
    assert sandbox.index_files()[0].exists()
    assert sandbox.query('b.example') == {'b.example': 'encrypt'}


# --- bad input: clear errors, nothing on disk changes -------------------------------------

@pytest.mark.parametrize('args, fragments', [
    ({'destination': 'example.com', 'level': 'encrypt', 'match': ['nexthop']},
     ['example.com', "['nexthop']", 'attribute "match" invalid at security level "encrypt"']),
    ({'destination': 'example.com', 'level': 'secure', 'match': ['a.example b.example']},
     ["'a.example b.example'", 'separate tokens']),
    ({'destination': 'example.com', 'level': 'dane', 'tafile': ['/etc/ta.pem']},
     ['/etc/ta.pem', 'tafile']),
    ({'destination': 'example.com', 'level': 'none', 'ciphers': 'high'}, ["'high'", 'level none']),
    ({'destination': 'example.com', 'level': 'may', 'protocols': ['TLSv1.4']}, ["'TLSv1.4'"]),
    ({'destination': 'exa mple.com', 'level': 'may'}, ["'exa mple.com'", 'whitespace']),
    ({'destination': '[ipv6:2001:db8::zz]', 'level': 'may'}, ['not a valid IPv6']),
    ({'destination': 'example.com'}, ['level is required']),
    ({'destination': 'example.com', 'level': 'may', 'enable_rpk': True}, ['enable_rpk', 'Postfix 3.9']),
    ({'entries': [{'destination': 'a.example', 'level': 'may'},
                  {'destination': 'A.Example', 'level': 'encrypt'}]}, ["'A.Example'", 'entries[1]']),
    ({'entries': [{'destination': 'ok.example', 'level': 'may'},
                  {'destination': 'bad.example', 'level': 'may', 'match': ['x']}]},
     ['entries[2]', 'bad.example']),
    ({'exclusive': True, 'destination': 'example.com', 'level': 'may'}, ['exclusive=true needs entries']),
    ({'destination': 'example.com', 'level': 'may', 'map_type': 'dbm'},
     ['map_type=dbm contradicts smtp_tls_policy_maps']),
])
def test_bad_input_fails_and_leaves_files_byte_identical(sandbox, args, fragments):
    sandbox.table.write_text(SEEDED)
    sandbox.tls_policy({'destination': 'seed.example', 'level': 'may'})
    before = sandbox.snapshot()
    result = sandbox.tls_policy(args)
    assert_failed(result, *fragments)
    assert sandbox.snapshot() == before


def test_ciphers_choice_is_enforced_by_the_argument_spec(sandbox):
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may', 'ciphers': 'strong'})
    assert_failed(result, 'ciphers', 'strong')


def test_unsupported_map_type_names_postconf_m(sandbox):
    path = sandbox.maps_dir / 'other'
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may', 'path': str(path), 'map_type': 'dbm'})
    assert_failed(result, 'map type dbm is not supported by this Postfix', 'postconf -m')
    assert os.listdir(sandbox.maps_dir) == []


def test_missing_lmdb_support_names_the_package(make_sandbox):
    sandbox = make_sandbox(map_type='lmdb')
    # A host without postfix-lmdb: postconf -m does not list lmdb (wrapper around the real postconf).
    sandbox.shim('postconf', 'case " $* " in *" -m "*) %s "$@" | grep -vx lmdb; exit 0;; esac\n'
                             'exec %s "$@"\n' % (REAL_POSTCONF, REAL_POSTCONF))
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    assert_failed(result, 'map type lmdb is not supported by this Postfix', 'postfix-lmdb')
    assert os.listdir(sandbox.maps_dir) == []


def test_relative_path_is_refused(sandbox):
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may', 'path': 'tls_policy'})
    assert_failed(result, "path 'tls_policy' must be absolute")


def test_path_is_required_without_smtp_tls_policy_maps(sandbox):
    (sandbox.confdir / 'main.cf').write_text('compatibility_level = 3.6\n')
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may'})
    assert_failed(result, 'path is required', 'smtp_tls_policy_maps')


def test_explicit_path_outside_main_cf_uses_default_database_type_and_warns(sandbox):
    path = sandbox.tmp / 'elsewhere'
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'may', 'path': str(path)})
    assert result['changed'] is True
    assert result['map_type'] == 'hash'     # Debian's default_database_type
    assert 'not listed in smtp_tls_policy_maps' in warnings_of(result)
    assert sandbox.query('example.com', path=str(path)) == {'example.com': 'may'}


def test_host_port_key_warns(sandbox):
    result = sandbox.tls_policy({'destination': 'example.com:25', 'level': 'encrypt'})
    assert result['changed'] is True
    assert "names 'example.com:25' verbatim" in warnings_of(result)
    bracketed = sandbox.tls_policy({'destination': '[example.com]:25', 'level': 'encrypt'})
    assert 'verbatim' not in warnings_of(bracketed)


def test_postmap_failure_leaves_previous_source_and_index(make_sandbox):
    sandbox = make_sandbox(map_type='lmdb')
    sandbox.tls_policy({'destination': 'good.example', 'level': 'encrypt'})
    # A hand-added line with a key longer than LMDB allows makes the real postmap fail.
    sandbox.table.write_text(sandbox.table.read_text() + 'k' * 600 + ' may\n')
    before = sandbox.snapshot()
    result = sandbox.tls_policy({'destination': 'next.example', 'level': 'secure'})
    assert_failed(result, 'postmap failed', 'MDB_BAD_VALSIZE', 'left as they were')
    assert sandbox.snapshot() == before
    assert sandbox.query('good.example', 'next.example') == {'good.example': 'encrypt'}


def test_fingerprint_without_match_needs_a_default(sandbox):
    # fingerprint without match and no smtp_tls_fingerprint_cert_match: refused up front
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'fingerprint'})
    assert_failed(result, 'smtp_tls_fingerprint_cert_match')
    assert os.listdir(sandbox.maps_dir) == []


# --- scale, docs --------------------------------------------------------------

@pytest.mark.slow
def test_ten_thousand_entries_in_one_call(sandbox, postmap_calls):
    entries = [{'destination': 'host%05d.example' % i, 'level': 'secure' if i % 2 else 'encrypt'}
               for i in range(10000)]
    args_file = sandbox.tmp / 'vars.json'
    args_file.write_text(json.dumps({'policy_entries': entries}))
    # the entries reach the module through Jinja, from a vars file
    task = sandbox.task(TLS_POLICY, {'entries': '{{ policy_entries }}', 'exclusive': True}, ignore_errors=False)
    (first, second), dummy = sandbox.playbook([task, task], vars_files=[args_file])
    assert first['changed'] is True and len(first['added']) == 10000
    assert second['changed'] is False and second['postmap_ran'] is False
    assert len(postmap_calls.builds()) == 1
    # verification is batched: a few postmap -q - processes, not one per key
    assert 1 <= len(postmap_calls.queries()) <= 20
    assert sandbox.query('host00000.example', 'host09999.example') == {
        'host00000.example': 'encrypt', 'host09999.example': 'secure'}


def test_ansible_doc_renders(sandbox):
    proc = subprocess.run([tool('ansible-doc'), TLS_POLICY], capture_output=True, text=True, env=sandbox.environ(), check=False)
    assert proc.returncode == 0, proc.stderr
    for option in ('destination', 'level', 'entries', 'exclusive', 'map_type', 'config_dir', 'postmap_ran'):
        assert option in proc.stdout


# --- refusals and recovery ---------------------------------------------------------------

@pytest.mark.parametrize('name', ['main.cf', 'tls-policy.map.db', 'x\ny.map', 'a b.map'])
def test_paths_that_cannot_be_a_table_are_refused(sandbox, name):
    sandbox.tls_policy({'destination': 'seed.example', 'level': 'may'})
    before = sandbox.snapshot()
    target = sandbox.confdir / 'main.cf' if name == 'main.cf' else sandbox.maps_dir / name
    result = sandbox.tls_policy({'destination': 'new.example', 'level': 'encrypt', 'path': str(target)})
    assert_failed(result, 'path')
    assert sandbox.snapshot() == before


@pytest.mark.parametrize('option, fragment', [
    ({'owner': 'no-such-user-tp'}, 'no-such-user-tp'),
    ({'mode': 'u=bogus'}, 'mode'),
])
def test_bad_owner_or_mode_fails_before_anything_is_replaced(sandbox, option, fragment):
    sandbox.tls_policy({'destination': 'seed.example', 'level': 'may'})
    before = sandbox.snapshot()
    args = {'destination': 'new.example', 'level': 'encrypt'}
    args.update(option)
    result = sandbox.tls_policy(args)
    assert_failed(result, fragment)
    assert sandbox.snapshot() == before


def test_leftovers_of_an_interrupted_run_are_removed_and_the_index_rebuilt(sandbox):
    sandbox.tls_policy({'destination': 'seed.example', 'level': 'may'})
    for name in ('.tls-policy.map.ab12cd34.tmp', '.tls-policy.map.ab12cd34.tmp.db',
                 '__db..tls-policy.map.ab12cd34.tmp.db'):
        (sandbox.maps_dir / name).write_text('junk')
    (sandbox.maps_dir / 'unrelated.tmp').write_text('keep me')
    # check mode predicts the real run (it used to say "no change") and removes nothing
    before = sandbox.snapshot()
    predicted = sandbox.tls_policy({'destination': 'seed.example', 'level': 'may'}, check=True)
    assert predicted['changed'] is True and predicted['postmap_ran'] is True, predicted
    assert 'would remove temporary files of an interrupted run' in warnings_of(predicted)
    assert sandbox.snapshot() == before and len(os.listdir(sandbox.maps_dir)) == 6
    result = sandbox.tls_policy({'destination': 'seed.example', 'level': 'may'})
    assert result['changed'] is True and result['postmap_ran'] is True
    assert 'removed temporary files of an interrupted run' in warnings_of(result)
    assert sorted(os.listdir(sandbox.maps_dir)) == ['tls-policy.map', 'tls-policy.map.db', 'unrelated.tmp']
    assert sandbox.tls_policy({'destination': 'seed.example', 'level': 'may'})['changed'] is False
