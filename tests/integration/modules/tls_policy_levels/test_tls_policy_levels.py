# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_policy_levels against a throwaway configuration read with the host's real postconf and postmap.

The levels before are what Postfix's own tables answer (postmap -q on the
hash table, an inline:{...} table and a proxy: one); the levels after are the
same lookup with the planned entries in the sandbox's table. The cases of the
old preflight script (roles/enforce_tls/files/preflight_levels.py, now
removed) are here too: global level raised, new entries, removed entries,
exclusive, .domain patterns and the probe limit.
"""

import datetime

import pytest

from postfix_sandbox import needs_postfix

MODULE = 'mailgw.postfix_tls.tls_policy_levels'
INLINE = 'inline:{ { [10.0.0.1]:25 = none }, { inline.example = verify } }'
TABLE = (
    '# the gateway policy\n'
    '.example.com encrypt\n'
    'kept.example may\n'
    'strict.example verify\n'
    'none.example none\n'
    '[127.0.0.1]:10025 none\n'
)

pytestmark = needs_postfix


@pytest.fixture
def box(sandbox):
    sandbox.seed(TABLE)
    with sandbox.main_cf.open('a') as handle:
        handle.write('smtp_tls_security_level = may\n')
    return sandbox


def levels(box, check=False, **args):
    """(result, {destination: item}) of one run; it must succeed and report no change."""
    result = box.run(MODULE, args, check=check)
    assert not result.get('failed'), result
    assert result['changed'] is False
    return result, dict((d['destination'], d) for d in result['destinations'])


def found_levels(box, **args):
    return levels(box, **args)[1]


def test_levels_before_and_after_follow_postfixs_lookup(box):
    box.real_postconf('-e', 'smtp_tls_policy_maps = proxy:%s, %s' % (box.map_spec, INLINE))
    before = box.snapshot()
    dests = ['sub.example.com', 'a.b.example.com', 'example.com', 'kept.example', 'new.example',
             '[10.0.0.1]:25', 'inline.example', '[127.0.0.1]:10025']
    for check in (False, True):
        result, found = levels(box, check=check, destinations=dests, level='encrypt',
                               policies={'Kept.example': 'verify match=hostname', 'new.example': 'secure'})
        assert result['level_before'] == 'may' and result['level'] == 'encrypt'
        # the parent-domain key covers the subdomains, not the domain itself
        assert found['sub.example.com']['level_before'] == 'encrypt'
        assert found['sub.example.com']['key_before'] == '.example.com'
        assert found['sub.example.com']['source_before'] == box.map_spec      # proxy: dropped
        assert found['a.b.example.com']['level_before'] == 'encrypt'
        assert (found['example.com']['level_before'], found['example.com']['level']) == ('may', 'encrypt')
        assert found['example.com']['source'] == 'smtp_tls_security_level' and found['example.com']['probe']
        assert (found['kept.example']['level_before'], found['kept.example']['level']) == ('may', 'verify')
        assert (found['new.example']['level_before'], found['new.example']['level']) == ('may', 'secure')
        assert found['new.example']['source'] == box.map_spec
        # the inline:{...} table is one table, asked with postmap like the others
        assert found['[10.0.0.1]:25']['level'] == 'none' and found['[10.0.0.1]:25']['source'] == INLINE
        assert found['inline.example']['level_before'] == 'verify'
        assert not found['[127.0.0.1]:10025']['affected']
        assert found['[127.0.0.1]:10025']['not_probed'] == 'not probed: level stays none'
        assert result['affected'] == ['example.com', 'kept.example', 'new.example']
        assert result['policy_maps'] == [box.map_spec, INLINE]
        assert box.snapshot() == before and box.leftovers() == []


def test_global_level_raised_entries_keep_theirs(box):
    found = found_levels(box, destinations=['[127.0.0.1]:10025', 'kept.example', 'new.example', 'strict.example'],
                         level='encrypt')
    assert found['new.example']['level_before'] == 'may' and found['new.example']['level'] == 'encrypt'
    assert found['new.example']['affected'] and found['new.example']['probe']
    for kept in ('[127.0.0.1]:10025', 'kept.example', 'strict.example'):
        assert not found[kept]['affected'], found[kept]
        assert found[kept]['source_before'] == box.map_spec == found[kept]['source'], found[kept]
    assert found['kept.example']['not_probed'] == 'not probed: level stays may'


def test_the_relayhost_is_a_destination_of_a_raised_global_level(box):
    # all mail no transport_maps entry routes otherwise goes to the relayhost: a raised
    # global level applies there first, with or without the log (hunt finding: a plaintext
    # relayhost passed the preflight at fail)
    box.real_postconf('-e', 'relayhost = [Relay.example]:587, [127.0.0.1]:10025')
    result, found = levels(box, destinations=['new.example'], level='encrypt')
    assert list(found) == ['new.example', '[relay.example]:587', '[127.0.0.1]:10025']
    relay = found['[relay.example]:587']
    assert (relay['level_before'], relay['level'], relay['affected']) == ('may', 'encrypt', True)
    # the table's "[127.0.0.1]:10025 none" keeps that relay at none
    assert not found['[127.0.0.1]:10025']['affected']
    assert result['affected'] == ['new.example', '[relay.example]:587']


def test_a_content_filter_next_hop_is_a_destination_through_its_transport(box):
    # amavis: all mail goes to [127.0.0.1]:10024 through smtp-amavis first; a raised global level
    # applies there unless smtp-amavis says otherwise (hunt finding: encrypt deferred every
    # message at the filter, the preflight said "0 affected")
    box.real_postconf('-e', 'content_filter = smtp-amavis:[127.0.0.1]:10024')
    box.real_postconf('-M', 'smtp-amavis/unix=smtp-amavis unix - - n - 2 smtp')
    result, found = levels(box, destinations=['new.example'], level='encrypt')
    hop = found['[127.0.0.1]:10024']
    assert (hop['level_before'], hop['level'], hop['affected']) == ('may', 'encrypt', True), hop
    assert hop['transport'] == 'smtp-amavis' and 'content_filter = smtp-amavis' in hop['route'], hop
    # the filter's transport keeps its own level: not affected
    box.real_postconf('-P', 'smtp-amavis/unix/smtp_tls_security_level=none')
    result, found = levels(box, destinations=['new.example'], level='encrypt')
    assert not found['[127.0.0.1]:10024']['affected'], found['[127.0.0.1]:10024']
    # an LMTP filter is no SMTP client: never affected
    box.real_postconf('-e', 'content_filter = lmtp:[127.0.0.1]:10024')
    result, found = levels(box, destinations=['new.example'], level='encrypt')
    assert not found['[127.0.0.1]:10024']['affected'], found['[127.0.0.1]:10024']


def test_removal_with_null(box):
    found = found_levels(box, destinations=['strict.example', 'none.example', 'sub.example.com'], level='encrypt',
                         policies={'strict.example': None, 'none.example': None, '.example.com': None})
    assert (found['strict.example']['level'], found['strict.example']['affected']) == ('encrypt', False)
    assert found['strict.example']['not_probed'] == 'not probed: level lowered to encrypt'
    assert (found['none.example']['level_before'], found['none.example']['level']) == ('none', 'encrypt')
    assert found['none.example']['affected'] and found['none.example']['source'] == 'smtp_tls_security_level'
    assert found['sub.example.com']['level'] == 'encrypt' and found['sub.example.com']['key'] is None


def test_exclusive_keeps_only_the_planned_entries(box):
    found = found_levels(box, destinations=['kept.example', 'strict.example', 'none.example', 'sub.example.com'],
                         level='may', exclusive=True, policies={'kept.example': 'encrypt'})
    assert found['kept.example']['level'] == 'encrypt' and found['kept.example']['affected']
    assert found['strict.example']['level'] == 'may' and not found['strict.example']['affected']
    assert found['none.example']['level'] == 'may' and found['none.example']['affected']
    assert found['sub.example.com']['level'] == 'may' and found['sub.example.com']['source'] == \
        'smtp_tls_security_level'


def test_exclusive_checks_the_keys_that_leave_the_table(box):
    """exclusive: the table's keys not planned lose their entry, so they are destinations even
    when not named: none.example goes from none to the global may (affected), the internal
    [127.0.0.1]:10025 too; strict.example from verify to may (not stricter)."""
    result, found = levels(box, destinations=[], level='may', exclusive=True, policies={'kept.example': 'encrypt'})
    assert set(found) == {'.example.com', 'strict.example', 'none.example', '[127.0.0.1]:10025'}
    assert found['none.example']['level_before'] == 'none' and found['none.example']['affected']
    assert found['[127.0.0.1]:10025']['affected'] and not found['strict.example']['affected']
    assert 'none.example' in result['affected']
    # without exclusive the unplanned keys keep their entries and are not looked at
    assert found_levels(box, destinations=[], level='may', policies={'kept.example': 'encrypt'}) == {}


def test_subdomain_patterns_and_the_limit_are_not_probed(box):
    found = found_levels(box, destinations=['.sub.test', 'a.test', 'b.test'], level='encrypt', max=1)
    assert found['.sub.test']['affected'] and not found['.sub.test']['probe']
    assert 'names no host' in found['.sub.test']['not_probed']
    assert found['a.test']['probe'] and not found['b.test']['probe']
    assert found['b.test']['not_probed'] == 'not probed: more than max=1 affected destinations'


def test_legacy_smtp_enforce_tls_is_the_level_now(box):
    box.real_postconf('-X', 'smtp_tls_security_level')
    box.real_postconf('-e', 'smtp_enforce_tls = yes')
    result, found = levels(box, destinations=['new.example'], level='encrypt')
    assert result['level_before'] == 'verify'
    assert found['new.example']['level_before'] == 'verify' and not found['new.example']['affected']


def test_a_planned_table_file_gives_what_the_mapping_gives_and_looks_at_its_destinations(box, tmp_path):
    """policies_src: the preflight of a table tls_policy will be given as a file. Its entries
    are planned exactly as the same mapping, and its destinations are looked at."""
    source = tmp_path / 'partners.table'
    source.write_text('# planned\nKept.example verify match=hostname\nnew.example\n  secure\n')
    mapping = {'Kept.example': 'verify match=hostname', 'new.example': 'secure'}
    dests = ['kept.example', 'new.example', 'strict.example']
    by_file, found = levels(box, destinations=['strict.example'], level='encrypt', policies_src=str(source),
                            exclusive=True)
    by_mapping, found_mapping = levels(box, destinations=dests, level='encrypt', policies=mapping, exclusive=True)
    assert found == found_mapping
    assert list(found)[:3] == ['strict.example', 'kept.example', 'new.example']    # named ones first
    assert (found['kept.example']['level_before'], found['kept.example']['level']) == ('may', 'verify')
    assert (found['new.example']['level'], found['new.example']['source']) == ('secure', box.map_spec)
    assert by_file['affected'] == by_mapping['affected']


@pytest.mark.parametrize('text, message', [
    ('a.example may\nA.EXAMPLE encrypt\n', "policies_src: SRC, line 2: 'A.EXAMPLE' is planned twice"),
    ('a.example verfy\n', "policies_src: SRC, line 1: 'a.example': the value 'verfy' is refused by Postfix"),
    ('a.example may\nnovalue\n', "policies_src: SRC, line 2: key 'novalue' has no value; Postfix ignores it"),
    (None, 'policies_src SRC cannot be read on this host: No such file or directory'),
])
def test_a_bad_table_file_is_named_with_its_line(box, tmp_path, text, message):
    source = tmp_path / 'partners.table'
    if text is not None:
        source.write_text(text)
    before = box.snapshot()
    result = box.run(MODULE, {'policies_src': str(source)})
    assert result.get('failed'), result
    assert message.replace('SRC', str(source)) in result['msg'], result['msg']
    assert box.snapshot() == before
    both = box.run(MODULE, {'policies_src': str(source), 'policies': {'a.example': 'may'}})
    assert both.get('failed') and 'policies_src and policies are mutually exclusive' in both['msg'], both


def test_a_table_not_listed_yet_goes_first(box, tmp_path):
    """The role's first run: its table does not exist yet and is put first in smtp_tls_policy_maps."""
    table = str(box.confdir / 'tls_policy')
    result, found = levels(box, destinations=['strict.example', 'kept.example'], table=table,
                           policies={'strict.example': 'may', 'kept.example': 'secure'})
    assert result['table'] == 'hash:%s' % table
    assert result['policy_maps'] == ['hash:%s' % table, box.map_spec]
    assert (found['strict.example']['level'], found['strict.example']['source']) == ('may', 'hash:%s' % table)
    assert found['kept.example']['affected'] and not found['strict.example']['affected']
    # an existing unlisted table: its source file holds the entries that stay
    (box.confdir / 'tls_policy').write_text('kept.example encrypt\n')
    found = found_levels(box, destinations=['kept.example'], table='texthash:%s' % table)
    assert found['kept.example']['level'] == 'encrypt' and found['kept.example']['affected']


def test_log_relays_that_took_mail_in_plaintext_become_destinations(box, tmp_path):
    """Real Postfix 3.7 log lines (the delivery oracle's maillog_file), stamped now."""
    stamp = datetime.datetime.now().strftime('%Y-%m-%dT%H:%M:%S.000000+00:00')
    lines = [
        ('%s oracle-mta postfix/smtp[2152]: Untrusted TLS connection established to '
         '127.104.200.7[127.104.200.7]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)'),
        ('%s oracle-mta postfix/smtp[2152]: D849F23A1C4: to=<probe@e7.oracle.test>, '
         'relay=127.104.200.7[127.104.200.7]:40828, delay=0.21, delays=0.03/0.12/0.06/0, dsn=2.0.0, '
         'status=sent (250 2.0.0 ok: delivered)'),
        ('%s oracle-mta postfix/smtp[2163]: D75C523A1C1: to=<probe@e4.oracle.test>, '
         'relay=127.104.200.4[127.104.200.4]:40828, delay=0.29, delays=0.03/0.16/0.09/0.01, dsn=2.0.0, '
         'status=sent (250 2.0.0 ok: delivered)'),
    ]
    log = tmp_path / 'postfix.log'
    log.write_text(''.join((line % stamp) + '\n' for line in lines))
    # the lines are of an SMTP client that logs its TLS sessions (smtp_tls_loglevel = 1)
    box.real_postconf('-e', 'maillog_file_prefixes = /var, /dev/stdout, %s' % tmp_path, 'maillog_file = %s' % log,
                      'smtp_tls_loglevel = 1')
    result, found = levels(box, destinations=['kept.example', '[127.104.200.4]:40828'], level='encrypt',
                           log=True, log_window='1h')
    assert result['log_sources'] == [str(log)]
    assert result['log_tls_logged'] == {'smtp': True, 'smtpd': False}
    assert result['log_clients'] == [] and result['log_clients_plaintext'] == 0
    assert result['log_relays'] == [
        {'relay': '127.104.200.4[127.104.200.4]:40828', 'sent_tls': 0, 'sent_plaintext': 1, 'sent_unknown': 0},
        {'relay': '127.104.200.7[127.104.200.7]:40828', 'sent_tls': 1, 'sent_plaintext': 0, 'sent_unknown': 0}]
    # the plaintext relay is a destination once (already given), the TLS one is not added
    assert [d['destination'] for d in result['destinations']] == ['kept.example', '[127.104.200.4]:40828']
    result, found = levels(box, destinations=[], level='encrypt', log=True, log_files=[str(log)],
                           log_source='file', log_window='1h')
    assert list(found) == ['[127.104.200.4]:40828']
    assert found['[127.104.200.4]:40828']['affected'] and found['[127.104.200.4]:40828']['probe']
    # at smtp_tls_loglevel = 0 (Postfix's default) the same lines place no delivery: nothing is added
    box.real_postconf('-e', 'smtp_tls_loglevel = 0')
    result, found = levels(box, destinations=[], level='encrypt', log=True, log_files=[str(log)],
                           log_source='file', log_window='1h')
    assert found == {} and result['log_tls_logged']['smtp'] is False
    assert [r['sent_unknown'] for r in result['log_relays']] == [1, 1]
    assert any('smtp_tls_loglevel is 0' in w for w in result['warnings']), result
    # outside the window, nothing
    old = tmp_path / 'old.log'
    old.write_text(''.join((line % '2020-01-01T00:00:00.000000+00:00') + '\n' for line in lines))
    result, found = levels(box, log=True, log_files=[str(old)], log_window='1h')
    assert result['log_relays'] == [] and found == {}


@pytest.mark.parametrize('args, message', [
    ({'destinations': ['two words']}, "destinations: destination 'two words': contains whitespace"),
    ({'policies': {'a.example': 'verfy'}}, "policies: 'a.example': the value 'verfy' is refused by Postfix: "
                                           'invalid security level "verfy"'),
    ({'policies': {'*.example': 'encrypt'}}, "policies: destination '*.example': smtp_tls_policy_maps has no "
                                             'wildcards'),
    ({'policies': {'a.example': 3}}, "policies: the value of 'a.example' must be a policy string"),
    ({'max': -1}, 'max: -1 is not allowed, it must be 0 or more'),
    ({'log': True, 'log_window': 'soon'}, "log_window 'soon': a positive number"),
    ({'table': 'regexp:/etc/postfix/x'}, "table: table 'regexp:/etc/postfix/x': the planned entries go to a "
                                         'key/value table file'),
    ({'table': 'tls_policy'}, "table: path 'tls_policy' must be absolute"),
    ({'log': True, 'log_source': 'file', 'log_files': ['/nonexistent/mail.log']},
     'log_files: /nonexistent/mail.log does not exist'),
])
def test_bad_input_is_named_and_nothing_changes(box, args, message):
    before = box.snapshot()
    result = box.run(MODULE, dict({'destinations': ['a.example']}, **args))
    assert result.get('failed'), result
    assert message in result['msg'], result['msg']
    assert box.snapshot() == before


def test_a_broken_table_is_named(box):
    box.real_postconf('-e', 'smtp_tls_policy_maps = hash:%s/missing' % box.maps_dir)
    result = box.run(MODULE, {'destinations': ['a.example']})
    assert result.get('failed') and 'cannot look up the TLS policy' in result['msg'], result
    assert '%s/missing' % box.maps_dir in result['msg']
