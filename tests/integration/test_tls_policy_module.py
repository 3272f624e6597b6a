# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.tls_policy against the host's real postconf and postmap.

Each test has its own throwaway Postfix config directory (main.cf with
``maps_d_dir`` and ``smtp_tls_policy_maps``) and runs the module through the
real ``ansible`` / ``ansible-playbook`` commands. A logging ``postmap``
wrapper first in PATH records each invocation (it then runs the real
postmap), so tests can tell whether an index was built.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat
import subprocess
import textwrap

import pytest

from ansible_env import ad_hoc_command, ansible_env, run_module, run_playbook, tool

REAL_POSTMAP = '/usr/sbin/postmap'
REAL_POSTCONF = '/usr/sbin/postconf'
MODULE = 'mailgw.postfix_tls.tls_policy'

pytestmark = pytest.mark.skipif(not (os.access(REAL_POSTMAP, os.X_OK) and os.access(REAL_POSTCONF, os.X_OK)),
                                reason='needs the host postconf and postmap binaries')

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


class Env:
    """A Postfix config dir, a maps directory, and ways to run the module."""

    def __init__(self, tmp_path, map_type='hash'):
        self.tmp = tmp_path
        self.confdir = tmp_path / 'postfix'
        self.confdir.mkdir()
        self.maps_dir = tmp_path / 'maps.d'
        self.maps_dir.mkdir()
        self.map_type = map_type
        self.write_main_cf(map_type)
        (self.confdir / 'master.cf').write_text('')
        self.bindir = tmp_path / 'bin'
        self.bindir.mkdir()
        self.log = tmp_path / 'postmap.log'
        self.log.write_text('')
        shim = self.bindir / 'postmap'
        shim.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> "%s"\nexec %s "$@"\n' % (self.log, REAL_POSTMAP))
        shim.chmod(0o755)

    def write_main_cf(self, map_type, extra=''):
        (self.confdir / 'main.cf').write_text(textwrap.dedent('''\
            compatibility_level = 3.6
            maps_d_dir = %s
            smtp_tls_policy_maps = %s:${maps_d_dir}/%s-tls-policy.map
            ''') % (self.maps_dir, map_type, map_type) + extra)

    # -- observation ---------------------------------------------------------

    @property
    def table(self):
        return self.maps_dir / ('%s-tls-policy.map' % self.map_type)

    def index_files(self):
        suffixes = {'hash': ['.db'], 'btree': ['.db'], 'lmdb': ['.lmdb'], 'cdb': ['.cdb'], 'texthash': []}
        return [self.maps_dir / (self.table.name + s) for s in suffixes[self.map_type]]

    def snapshot(self):
        """Name, bytes, inode, mtime and mode of every file in the maps dir."""
        state = {}
        for name in sorted(os.listdir(self.maps_dir)):
            path = self.maps_dir / name
            st = path.stat()
            state[name] = (path.read_bytes(), st.st_ino, st.st_mtime_ns, st.st_mode)
        return state

    def builds(self):
        """postmap invocations that build an index (not queries)."""
        return [line for line in self.log.read_text().splitlines() if line and ' -q ' not in ' %s ' % line]

    def queries(self):
        return [line for line in self.log.read_text().splitlines() if ' -q ' in ' %s ' % line]

    def query(self, *keys, **kwargs):
        """Look keys up with the real postmap: {key: value} for keys found."""
        map_spec = '%s:%s' % (kwargs.get('map_type', self.map_type), kwargs.get('path', self.table))
        proc = subprocess.run([REAL_POSTMAP, '-c', str(self.confdir), '-q', '-', map_spec],
                              input=''.join(k + '\n' for k in keys), capture_output=True, text=True, check=False)
        assert 'fatal' not in proc.stderr, proc.stderr
        return dict(line.split('\t', 1) for line in proc.stdout.splitlines())

    # -- running Ansible -----------------------------------------------------

    def environ(self):
        return ansible_env(self.tmp, path_prefix=[self.bindir])

    def command(self, args, check=False, diff=False):
        args = dict(args)
        args.setdefault('config_dir', str(self.confdir))
        return ad_hoc_command(MODULE, args, check, diff)

    def run(self, args, check=False, diff=False):
        """Run the module once (see ansible_env.run_module); return its result (dict)."""
        args = dict(args)
        args.setdefault('config_dir', str(self.confdir))
        return run_module(MODULE, args, check, diff, env=self.environ(), cwd=str(self.tmp), tmp=self.tmp)

    def playbook(self, tasks, check=False, diff=False):
        """Run a generated playbook; return (per-task results, stats)."""
        return run_playbook(tasks, self.tmp, env=self.environ(), check=check, diff=diff, name='tls_policy')


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def make_env(tmp_path, map_type):
    return Env(tmp_path, map_type)


def assert_failed(result, *fragments):
    assert result.get('failed') is True, result
    for fragment in fragments:
        assert fragment in result['msg'], (fragment, result['msg'])


def warnings_of(result):
    return '\n'.join(result.get('warnings', []))


# --- creating and indexing, every file type ------------------------------------------

@pytest.mark.parametrize('map_type', ['hash', 'lmdb', 'cdb', 'texthash'])
def test_create_table_for_each_type_and_confirm_with_postmap(tmp_path, map_type):
    env = make_env(tmp_path, map_type)
    result = env.run({'entries': [
        {'destination': 'Example.com', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop'],
         'protocols': ['>=TLSv1.2']},
        {'destination': '[127.0.0.1]:10025', 'level': 'none'},
        {'destination': '.example.org', 'level': 'encrypt', 'ciphers': 'high', 'exclude': ['aNULL', 'MD5']},
    ]})
    assert result['changed'] is True, result
    assert result['added'] == ['example.com', '[127.0.0.1]:10025', '.example.org']
    assert result['updated'] == [] and result['removed'] == []
    assert result['map_type'] == map_type
    assert result['path'] == str(env.table)            # ${maps_d_dir} expanded by postconf -x
    assert result['map'] == '%s:%s' % (map_type, env.table)
    assert result['postmap_ran'] is (map_type != 'texthash')
    assert env.table.read_text() == (
        'example.com secure match=nexthop:dot-nexthop protocols=>=TLSv1.2\n'
        '[127.0.0.1]:10025 none\n'
        '.example.org encrypt ciphers=high exclude=aNULL:MD5\n')
    assert stat.S_IMODE(env.table.stat().st_mode) == 0o644
    assert (env.table.stat().st_uid, env.table.stat().st_gid) == (os.getuid(), os.getgid())
    for index in env.index_files():
        assert index.exists()
        assert stat.S_IMODE(index.stat().st_mode) == 0o644
        assert index.stat().st_mtime >= env.table.stat().st_mtime
    # what Postfix will see
    assert env.query('example.com', 'EXAMPLE.COM', '[127.0.0.1]:10025', '.example.org', 'other.example') == {
        'example.com': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        'EXAMPLE.COM': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        '[127.0.0.1]:10025': 'none',
        '.example.org': 'encrypt ciphers=high exclude=aNULL:MD5',
    }
    # nothing but the table and its index in the directory (no temp or lock files)
    assert sorted(os.listdir(env.maps_dir)) == sorted([env.table.name] + [i.name for i in env.index_files()])
    if map_type == 'texthash':
        assert env.builds() == []
    else:
        assert env.builds() == ['-c %s %s:%s' % (env.confdir, map_type, env.builds()[0].split(':', 1)[1])]
        assert len(env.queries()) == 1          # one batched postmap -q - for all entries

    # idempotence: the second run changes nothing and runs no postmap at all
    before = env.snapshot()
    log_before = env.log.read_text()
    again = env.run({'entries': [
        {'destination': 'example.com', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop'],
         'protocols': '>=TLSv1.2'},
        {'destination': '[127.0.0.1]:10025', 'level': 'none'},
        {'destination': '.EXAMPLE.org', 'level': 'encrypt', 'ciphers': 'high', 'exclude': 'aNULL:MD5'},
    ]})
    assert again['changed'] is False, again
    assert again['postmap_ran'] is False
    assert again['added'] == again['updated'] == again['removed'] == []
    assert env.snapshot() == before
    assert env.log.read_text() == log_before


def test_single_destination_with_maps_d_dir_resolution(env):
    result = env.run({'destination': '[relay.example.net]:587', 'level': 'fingerprint', 'match': [SHA256]})
    assert result['changed'] is True
    assert result['path'] == str(env.maps_dir / 'hash-tls-policy.map')
    assert env.query('[relay.example.net]:587') == {'[relay.example.net]:587': 'fingerprint match=' + SHA256}


def test_playbook_change_then_no_op(env):
    task = {'mailgw.postfix_tls.tls_policy': {'destination': 'example.com', 'level': 'verify',
                                              'config_dir': str(env.confdir)}}
    results, stats = env.playbook([task, task])
    assert [r['changed'] for r in results] == [True, False]
    assert stats['changed'] == 1 and stats['failures'] == 0


# --- editing keeps everything it does not manage --------------------------------------

def test_edit_keeps_comments_order_and_unmanaged_entries(env):
    env.table.write_text(SEEDED)
    result = env.run({'entries': [
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
    assert env.table.read_text() == (
        '# TLS policy for the gateway\n'
        '# (hand-maintained part below)\n'
        '\n'
        'partner.example   verify\n'
        '# the relay\n'
        '[relay.example.net]:587\tencrypt\n'
        'new.example encrypt\n')
    assert env.query('partner.example', '[relay.example.net]:587', 'old.example', 'new.example') == {
        'partner.example': 'verify', '[relay.example.net]:587': 'encrypt', 'new.example': 'encrypt'}


def test_unmanaged_duplicates_only_warn(env):
    env.table.write_text(SEEDED)
    result = env.run({'destination': '[relay.example.net]:587', 'level': 'encrypt'})
    assert result['duplicates'] == ['partner.example']
    assert 'Postfix uses the first' in warnings_of(result)
    assert env.table.read_text() == SEEDED            # nothing to change in the file ...
    assert result['postmap_ran'] is True              # ... but it had never been indexed
    assert result['changed'] is True


def test_semantically_equal_entry_is_not_rewritten(env):
    env.table.write_text('example.com SECURE,match=nexthop\n   , ciphers=HIGH\n')
    env.run({'destination': 'other.example', 'level': 'may'})
    before = env.table.read_text()
    result = env.run({'destination': 'example.com', 'level': 'secure', 'match': ['nexthop'], 'ciphers': 'high'})
    assert result['changed'] is False, result
    assert env.table.read_text() == before


def test_crlf_file_keeps_its_line_endings(env):
    env.table.write_bytes(b'# windows\r\na.example may\r\n')
    env.run({'destination': 'b.example', 'level': 'encrypt'})
    assert env.table.read_bytes() == b'# windows\r\na.example may\r\nb.example encrypt\r\n'
    assert env.query('a.example', 'b.example') == {'a.example': 'may', 'b.example': 'encrypt'}


def test_exclusive_removes_unlisted_entries_and_keeps_comments(env):
    env.table.write_text(SEEDED)
    result = env.run({'exclusive': True, 'entries': [
        {'destination': '[relay.example.net]:587', 'level': 'encrypt'},
        {'destination': 'fresh.example', 'level': 'dane'},
    ]})
    assert result['changed'] is True
    assert sorted(result['removed']) == ['old.example', 'partner.example']
    assert result['added'] == ['fresh.example']
    assert env.table.read_text() == (
        '# TLS policy for the gateway\n'
        '# (hand-maintained part below)\n'
        '\n'
        '# the relay\n'
        '[relay.example.net]:587\tencrypt\n'
        'fresh.example dane\n')
    assert env.query('partner.example', 'old.example', 'fresh.example') == {'fresh.example': 'dane'}
    again = env.run({'exclusive': True, 'entries': [
        {'destination': '[relay.example.net]:587', 'level': 'encrypt'},
        {'destination': 'fresh.example', 'level': 'dane'},
    ]})
    assert again['changed'] is False


def test_exclusive_with_no_entries_empties_the_table(env):
    env.table.write_text(SEEDED)
    result = env.run({'exclusive': True, 'entries': []})
    assert result['changed'] is True
    assert env.table.read_text() == '# TLS policy for the gateway\n# (hand-maintained part below)\n\n# the relay\n'
    assert env.query('partner.example', '[relay.example.net]:587') == {}


def test_absent_on_missing_file_creates_nothing(env):
    result = env.run({'destination': 'example.com', 'state': 'absent'})
    assert result['changed'] is False
    assert os.listdir(env.maps_dir) == []


# --- check mode, diff, backup ----------------------------------------------------------

def test_check_mode_writes_nothing_for_a_new_table(env):
    result = env.run({'destination': 'example.com', 'level': 'secure'}, check=True, diff=True)
    assert result['changed'] is True
    assert result['added'] == ['example.com']
    assert result['postmap_ran'] is True          # would run
    assert result['diff']['after'] == 'example.com secure\n'
    assert os.listdir(env.maps_dir) == []
    assert env.log.read_text() == ''


def test_check_mode_predicts_a_table_whose_directory_a_play_creates_first(env):
    path = env.maps_dir / 'maps.d' / 'tls_policy'
    args = {'destination': 'example.com', 'level': 'secure', 'path': str(path)}
    predicted = env.run(args, check=True, diff=True)
    assert predicted['changed'] is True, predicted
    assert predicted['added'] == ['example.com']
    assert predicted['diff']['after'] == 'example.com secure\n'
    assert any('does not exist (yet)' in w for w in predicted.get('warnings', [])), predicted
    assert not path.parent.exists()
    # A real run still refuses: it does not create directories.
    refused = env.run(args)
    assert refused.get('failed') and 'directory %s of the table' % path.parent in refused['msg']
    assert not path.parent.exists()
    # As in a play: the directory first, then the table.
    tasks = [{'ansible.builtin.file': {'path': str(path.parent), 'state': 'directory', 'mode': '0755'}},
             {'mailgw.postfix_tls.tls_policy': dict(args, config_dir=str(env.confdir))}]
    checked, stats = env.playbook(tasks, check=True)
    assert stats['failures'] == 0 and stats['changed'] == 2, (checked, stats)
    applied, stats = env.playbook(tasks)
    assert stats['failures'] == 0 and stats['changed'] == 2, (applied, stats)
    assert env.query('example.com', path=path) == {'example.com': 'secure'}


def test_check_mode_writes_nothing_for_an_edit(env):
    env.table.write_text(SEEDED)
    env.run({'destination': 'x.example', 'level': 'may'})     # build the index
    before = env.snapshot()
    log_before = env.log.read_text()
    result = env.run({'exclusive': True, 'entries': [{'destination': 'y.example', 'level': 'encrypt'}]},
                     check=True, diff=True)
    assert result['changed'] is True
    assert result['added'] == ['y.example']
    assert 'x.example' in result['removed']
    assert 'y.example encrypt' in result['diff']['after']
    assert env.snapshot() == before
    assert env.log.read_text() == log_before


def test_check_mode_reports_stale_index_without_building(env):
    env.run({'destination': 'example.com', 'level': 'may'})
    future = env.table.stat().st_mtime + 30
    os.utime(env.table, (future, future))
    before = env.snapshot()
    log_before = env.log.read_text()
    result = env.run({'destination': 'example.com', 'level': 'may'}, check=True)
    assert result['changed'] is True and result['postmap_ran'] is True
    assert env.snapshot() == before
    assert env.log.read_text() == log_before


def test_diff_shows_before_and_after(env):
    env.table.write_text('a.example may\n')
    result = env.run({'destination': 'a.example', 'level': 'encrypt'}, diff=True)
    assert result['diff'] == {'before': 'a.example may\n', 'after': 'a.example encrypt\n',
                              'before_header': str(env.table), 'after_header': str(env.table)}


def test_backup_keeps_the_previous_source(env):
    env.table.write_text('a.example may\n')
    result = env.run({'destination': 'a.example', 'level': 'encrypt', 'backup': True})
    backup = result['backup_file']
    assert os.path.dirname(backup) == str(env.maps_dir)
    with open(backup) as f:
        assert f.read() == 'a.example may\n'
    again = env.run({'destination': 'a.example', 'level': 'encrypt', 'backup': True})
    assert 'backup_file' not in again


# --- stale or missing index ------------------------------------------------------------

def test_stale_index_is_rebuilt_then_idempotent(env):
    env.run({'destination': 'example.com', 'level': 'may'})
    # someone edits the source by hand and forgets postmap
    env.table.write_text(env.table.read_text() + 'hand.example encrypt\n')
    future = env.table.stat().st_mtime + 30
    os.utime(env.table, (future, future))
    source_before = env.table.read_bytes()
    result = env.run({'destination': 'example.com', 'level': 'may'})
    assert result['changed'] is True and result['postmap_ran'] is True
    assert result['added'] == result['updated'] == []
    assert env.table.read_bytes() == source_before
    assert env.query('hand.example') == {'hand.example': 'encrypt'}
    assert env.index_files()[0].stat().st_mtime >= env.table.stat().st_mtime
    again = env.run({'destination': 'example.com', 'level': 'may'})
    assert again['changed'] is False and again['postmap_ran'] is False


def test_missing_index_is_rebuilt(env):
    env.run({'destination': 'example.com', 'level': 'may'})
    env.index_files()[0].unlink()
    result = env.run({'destination': 'example.com', 'level': 'may'})
    assert result['changed'] is True and result['postmap_ran'] is True
    assert env.query('example.com') == {'example.com': 'may'}


# --- attributes ---------------------------------------------------------------------------

def test_mode_applies_to_source_and_index(env):
    env.run({'destination': 'example.com', 'level': 'may', 'mode': '0640'})
    assert stat.S_IMODE(env.table.stat().st_mode) == 0o640
    assert stat.S_IMODE(env.index_files()[0].stat().st_mode) == 0o640
    again = env.run({'destination': 'example.com', 'level': 'may', 'mode': '0640'})
    assert again['changed'] is False


def test_index_gets_the_source_mode_back(env):
    env.run({'destination': 'example.com', 'level': 'may'})
    env.table.chmod(0o640)
    env.index_files()[0].chmod(0o600)
    result = env.run({'destination': 'example.com', 'level': 'encrypt'})
    assert result['changed'] is True
    assert stat.S_IMODE(env.table.stat().st_mode) == 0o640
    assert stat.S_IMODE(env.index_files()[0].stat().st_mode) == 0o640
    # and a wrong index mode alone is fixed (and reported) too
    env.index_files()[0].chmod(0o600)
    fix = env.run({'destination': 'example.com', 'level': 'encrypt'})
    assert fix['changed'] is True and fix['postmap_ran'] is False
    assert stat.S_IMODE(env.index_files()[0].stat().st_mode) == 0o640


def test_symlinked_source_stays_a_symlink(env):
    real = env.tmp / 'real-policy'
    real.write_text('a.example may\n')
    env.table.symlink_to(real)
    env.run({'destination': 'b.example', 'level': 'encrypt'})
    assert env.table.is_symlink()
    assert real.read_text() == 'a.example may\nb.example encrypt\n'
    assert env.index_files()[0].exists()
    assert env.query('b.example') == {'b.example': 'encrypt'}


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
    ({'destination': 'bücher.de', 'level': 'may'}, ['xn--bcher-kva.de']),
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
def test_bad_input_fails_and_leaves_files_byte_identical(env, args, fragments):
    env.table.write_text(SEEDED)
    env.run({'destination': 'seed.example', 'level': 'may'})
    before = env.snapshot()
    result = env.run(args)
    assert_failed(result, *fragments)
    assert env.snapshot() == before


def test_ciphers_choice_is_enforced_by_the_argument_spec(env):
    result = env.run({'destination': 'example.com', 'level': 'may', 'ciphers': 'strong'})
    assert_failed(result, 'ciphers', 'strong')


def test_unsupported_map_type_names_postconf_m(env):
    path = env.maps_dir / 'other'
    result = env.run({'destination': 'example.com', 'level': 'may', 'path': str(path), 'map_type': 'dbm'})
    assert_failed(result, 'map type dbm is not supported by this Postfix', 'postconf -m')
    assert os.listdir(env.maps_dir) == []


def test_missing_lmdb_support_names_the_package(tmp_path):
    env = make_env(tmp_path, 'lmdb')
    # A host without postfix-lmdb: postconf -m does not list lmdb (wrapper around the real postconf).
    shim = env.bindir / 'postconf'
    shim.write_text('#!/bin/sh\ncase " $* " in *" -m "*) %s "$@" | grep -vx lmdb; exit 0;; esac\n'
                    'exec %s "$@"\n' % (REAL_POSTCONF, REAL_POSTCONF))
    shim.chmod(0o755)
    result = env.run({'destination': 'example.com', 'level': 'may'})
    assert_failed(result, 'map type lmdb is not supported by this Postfix', 'postfix-lmdb')
    assert os.listdir(env.maps_dir) == []


def test_relative_path_is_refused(env):
    result = env.run({'destination': 'example.com', 'level': 'may', 'path': 'tls_policy'})
    assert_failed(result, "path 'tls_policy' must be absolute")


def test_path_is_required_without_smtp_tls_policy_maps(env):
    (env.confdir / 'main.cf').write_text('compatibility_level = 3.6\n')
    result = env.run({'destination': 'example.com', 'level': 'may'})
    assert_failed(result, 'path is required', 'smtp_tls_policy_maps')


def test_explicit_path_outside_main_cf_uses_default_database_type_and_warns(env):
    path = env.tmp / 'elsewhere'
    result = env.run({'destination': 'example.com', 'level': 'may', 'path': str(path)})
    assert result['changed'] is True
    assert result['map_type'] == 'hash'     # Debian's default_database_type
    assert 'not listed in smtp_tls_policy_maps' in warnings_of(result)
    assert env.query('example.com', path=str(path)) == {'example.com': 'may'}


def test_host_port_key_warns(env):
    result = env.run({'destination': 'example.com:25', 'level': 'encrypt'})
    assert result['changed'] is True
    assert "names 'example.com:25' verbatim" in warnings_of(result)
    bracketed = env.run({'destination': '[example.com]:25', 'level': 'encrypt'})
    assert 'verbatim' not in warnings_of(bracketed)


def test_postmap_failure_leaves_previous_source_and_index(tmp_path):
    env = make_env(tmp_path, 'lmdb')
    env.run({'destination': 'good.example', 'level': 'encrypt'})
    # A hand-added line with a key longer than LMDB allows makes the real postmap fail.
    env.table.write_text(env.table.read_text() + 'k' * 600 + ' may\n')
    before = env.snapshot()
    result = env.run({'destination': 'next.example', 'level': 'secure'})
    assert_failed(result, 'postmap failed', 'MDB_BAD_VALSIZE', 'left as they were')
    assert env.snapshot() == before
    assert env.query('good.example', 'next.example') == {'good.example': 'encrypt'}


def test_fingerprint_without_match_needs_a_default(env):
    # fingerprint without match and no smtp_tls_fingerprint_cert_match: refused up front
    result = env.run({'destination': 'example.com', 'level': 'fingerprint'})
    assert_failed(result, 'smtp_tls_fingerprint_cert_match')
    assert os.listdir(env.maps_dir) == []


# --- concurrency, scale, docs --------------------------------------------------------------

@pytest.mark.slow
def test_concurrent_runs_editing_different_entries_both_land(env):
    env.run({'destination': 'seed.example', 'level': 'may'})
    procs = []
    for n in range(4):
        procs.append(subprocess.Popen(
            env.command({'entries': [{'destination': 'host%d-%d.example' % (n, i), 'level': 'encrypt'}
                                     for i in range(20)]}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env.environ(), cwd=str(env.tmp)))
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, (out, err)
    keys = ['host%d-%d.example' % (n, i) for n in range(4) for i in range(20)]
    assert set(env.query(*keys)) == set(keys)
    assert env.table.read_text().count('\n') == 81
    assert sorted(os.listdir(env.maps_dir)) == ['hash-tls-policy.map', 'hash-tls-policy.map.db']


@pytest.mark.slow
def test_ten_thousand_entries_in_one_call(env):
    entries = [{'destination': 'host%05d.example' % i, 'level': 'secure' if i % 2 else 'encrypt'}
               for i in range(10000)]
    args_file = env.tmp / 'vars.json'
    args_file.write_text(json.dumps({'policy_entries': entries}))
    task = {'mailgw.postfix_tls.tls_policy': {'entries': '{{ policy_entries }}', 'exclusive': True,
                                              'config_dir': str(env.confdir)}}
    play = [{'name': 'big', 'hosts': 'localhost', 'gather_facts': False,
             'vars_files': [str(args_file)], 'tasks': [task, task]}]
    (env.tmp / 'big.yml').write_text(json.dumps(play))
    proc = subprocess.run([tool('ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(env.tmp / 'big.yml')],
                          capture_output=True, text=True, env=env.environ(), cwd=str(env.tmp), check=False)
    data = json.loads(proc.stdout)
    first, second = [t['hosts']['localhost'] for t in data['plays'][0]['tasks']]
    assert first['changed'] is True and len(first['added']) == 10000
    assert second['changed'] is False and second['postmap_ran'] is False
    assert len(env.builds()) == 1
    # verification is batched: a few postmap -q - processes, not one per key
    assert 1 <= len(env.queries()) <= 20
    assert env.query('host00000.example', 'host09999.example') == {
        'host00000.example': 'encrypt', 'host09999.example': 'secure'}


def test_ansible_doc_renders(env):
    proc = subprocess.run([tool('ansible-doc'), MODULE], capture_output=True, text=True, env=env.environ(), check=False)
    assert proc.returncode == 0, proc.stderr
    for option in ('destination', 'level', 'entries', 'exclusive', 'map_type', 'config_dir', 'postmap_ran'):
        assert option in proc.stdout


# --- refusals and recovery ---------------------------------------------------------------

@pytest.mark.parametrize('name', ['main.cf', 'hash-tls-policy.map.db', 'x\ny.map', 'a b.map'])
def test_paths_that_cannot_be_a_table_are_refused(env, name):
    env.run({'destination': 'seed.example', 'level': 'may'})
    before = env.snapshot()
    target = env.confdir / 'main.cf' if name == 'main.cf' else env.maps_dir / name
    result = env.run({'destination': 'new.example', 'level': 'encrypt', 'path': str(target)})
    assert_failed(result, 'path')
    assert env.snapshot() == before


@pytest.mark.parametrize('option, fragment', [
    ({'owner': 'no-such-user-tp'}, 'no-such-user-tp'),
    ({'mode': 'u=bogus'}, 'mode'),
])
def test_bad_owner_or_mode_fails_before_anything_is_replaced(env, option, fragment):
    env.run({'destination': 'seed.example', 'level': 'may'})
    before = env.snapshot()
    args = {'destination': 'new.example', 'level': 'encrypt'}
    args.update(option)
    result = env.run(args)
    assert_failed(result, fragment)
    assert env.snapshot() == before


def test_leftovers_of_an_interrupted_run_are_removed_and_the_index_rebuilt(env):
    env.run({'destination': 'seed.example', 'level': 'may'})
    for name in ('.hash-tls-policy.map.ab12cd34.tmp', '.hash-tls-policy.map.ab12cd34.tmp.db',
                 '__db..hash-tls-policy.map.ab12cd34.tmp.db'):
        (env.maps_dir / name).write_text('junk')
    (env.maps_dir / 'unrelated.tmp').write_text('keep me')
    result = env.run({'destination': 'seed.example', 'level': 'may'})
    assert result['changed'] is True and result['postmap_ran'] is True
    assert 'interrupted run' in warnings_of(result)
    assert sorted(os.listdir(env.maps_dir)) == ['hash-tls-policy.map', 'hash-tls-policy.map.db', 'unrelated.tmp']
    assert env.run({'destination': 'seed.example', 'level': 'may'})['changed'] is False
