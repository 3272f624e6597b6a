# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_policy follows Postfix, not its own idea of the grammar (issue 13, items 3-6).

Against the host's real postconf and postmap in a sandbox: key forms Postfix
accepts are written (bare IPv6, UTF-8), entries Postfix cannot use are refused
with Postfix's reason, the checks that need the rest of the configuration
(fingerprint digest, DNSSEC, tafile inside the smtp chroot, texthash
duplicates, version gates) read it with postconf, and existing lines Postfix
cannot use are kept byte for byte, named in a warning and removable by name.
Which entries Postfix itself uses is proven by the delivery oracle
(tests/integration/oracle).
"""

import os

import pytest

from postfix_sandbox import (
    REALWORLD_TABLES,
    assert_failed,
    assert_ok,
    needs_postfix,
    warnings_of,
)
pytestmark = needs_postfix

SHA256 = '3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E'
MD5 = '3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1'


def add_main_cf(sandbox, text):
    sandbox.main_cf.write_text(sandbox.main_cf_text(text))


# -- keys -----------------------------------------------------------------------------------

def test_bare_ipv6_and_ipv6_prefixed_keys_are_two_entries(sandbox):
    assert_ok(sandbox.tls_policy({'entries': [
        {'destination': '[2001:DB8::1]:587', 'level': 'encrypt'},
        {'destination': '[ipv6:2001:db8::1]:587', 'level': 'secure'},
    ]}))
    assert sandbox.query('[2001:db8::1]:587', '[ipv6:2001:db8::1]:587') == {
        '[2001:db8::1]:587': 'encrypt', '[ipv6:2001:db8::1]:587': 'secure'}


def test_utf8_key_is_written_verbatim_with_the_a_label_warning(sandbox):
    result = assert_ok(sandbox.tls_policy({'destination': 'Bücher.de', 'level': 'encrypt'}))
    assert result['added'] == ['bücher.de']
    assert 'xn--bcher-kva.de' in warnings_of(result)
    assert 'bücher.de encrypt' in sandbox.table.read_text()
    assert sandbox.query('bücher.de') == {'bücher.de': 'encrypt'}


def test_existing_utf8_keys_are_folded_as_postfix_folds_them(sandbox):
    # postmap casefolds UTF-8 keys (smtputf8_enable=yes): "BÜCHER.de" is looked up as
    # "bücher.de", so that is the entry a task for bücher.de removes or updates
    sandbox.table.write_text('BÜCHER.de may\nother.example may\n')
    result = assert_ok(sandbox.tls_policy({'destination': 'bücher.de', 'level': 'encrypt'}))
    assert result['updated'] == ['bücher.de'], result
    assert sandbox.query('bücher.de') == {'bücher.de': 'encrypt'}
    assert assert_ok(sandbox.tls_policy({'destination': 'bücher.de', 'level': 'encrypt'}))['changed'] is False
    result = assert_ok(sandbox.tls_policy({'destination': 'bücher.de', 'state': 'absent'}))
    assert result['removed'] == ['bücher.de'] and sandbox.query('bücher.de') == {}


def test_a_texthash_table_with_utf8_keys_postfix_folds_together_is_refused(make_sandbox):
    # "straße.de" and "strasse.de" are one key to Postfix: a texthash duplicate, which makes the
    # SMTP client defer mail to every destination
    box = make_sandbox(map_type='texthash')
    box.table.write_text('straße.de may\nstrasse.de secure\n')
    before = box.table.read_text()
    assert_failed(box.tls_policy({'destination': 'other.example', 'level': 'may'}), "'strasse.de' on lines 1, 2")
    assert box.table.read_text() == before


@pytest.mark.parametrize('args, fragments', [
    ({'destination': 'a.example', 'level': 'may', 'exclude': ['-RC4']}, ["invalid unary '!+-@'"]),
    ({'destination': 'a.example', 'level': 'may', 'servername': '192.0.2.1'}, ['specifies an invalid hostname']),
    ({'destination': 'a.example', 'level': 'may', 'protocols': ['>=SSLv2']}, ['Invalid TLS protocol list']),
    ({'destination': '[123]', 'level': 'may'}, ['numeric hostname']),
    ({'destination': '*', 'level': 'encrypt'}, ['no wildcards']),
    ({'destination': 'a.example', 'level': 'none', 'ciphers': 'high'}, ['rule of this collection']),
    # exclusions OpenSSL selects no cipher with (the delivery oracle: deferred, "no cipher match")
    ({'destination': 'a.example', 'level': 'encrypt', 'ciphers': 'high', 'exclude': ['HIGH']},
     ['ciphers=high exclude=HIGH leaves no cipher', 'aNULL:-aNULL:HIGH:@STRENGTH:!HIGH:!eNULL',
      'error setting cipher grade']),
])
def test_entries_postfix_cannot_use_are_refused(sandbox, args, fragments):
    before = sandbox.snapshot()
    assert_failed(sandbox.tls_policy(args), *fragments)
    assert sandbox.snapshot() == before


def test_the_cipher_check_reads_the_grades_and_exclusions_of_main_cf(sandbox):
    # with the default tls_high_cipherlist, HIGH has ciphers besides AESGCM
    entry = {'level': 'secure', 'ciphers': 'high', 'exclude': ['AESGCM']}
    assert_ok(sandbox.tls_policy(dict(entry, destination='[mx.a.example]:25')))
    add_main_cf(sandbox, 'tls_high_cipherlist = aNULL:-aNULL:AESGCM:@STRENGTH\n')
    before = sandbox.snapshot()
    assert_failed(sandbox.tls_policy(dict(entry, destination='[mx.b.example]:25')), 'leaves no cipher',
                  'aNULL:-aNULL:AESGCM:@STRENGTH:!AESGCM:!aNULL')
    assert sandbox.snapshot() == before
    # the entry's grade from main.cf: smtp_tls_mandatory_ciphers above may
    add_main_cf(sandbox, 'tls_high_cipherlist = aNULL:-aNULL:AESGCM:@STRENGTH\nsmtp_tls_mandatory_ciphers = high\n')
    assert_failed(sandbox.tls_policy({'destination': '[mx.b.example]:25', 'level': 'encrypt',
                                      'exclude': ['AESGCM']}), 'exclude=AESGCM leaves no cipher')
    assert_ok(sandbox.tls_policy({'destination': '[mx.b.example]:25', 'level': 'encrypt', 'exclude': ['CAMELLIA']}))


def test_an_existing_line_without_a_cipher_is_named_and_kept(sandbox):
    # attribute names in any case, as Postfix reads them (strcasecmp)
    text = ('[mx.c.example]:25 encrypt ciphers=high exclude=HIGH\n[mx.d.example]:25 encrypt exclude=CAMELLIA\n'
            '[mx.i.example]:25 encrypt CIPHERS=high Exclude=HIGH\n')
    sandbox.table.write_text(text)
    result = assert_ok(sandbox.tls_policy({'destination': '[mx.e.example]:25', 'level': 'encrypt'}))
    warned = warnings_of(result)
    assert 'line 1: [mx.c.example]:25 encrypt ciphers=high exclude=HIGH: Postfix cannot use this entry' in warned
    assert 'line 3: [mx.i.example]:25 encrypt CIPHERS=high Exclude=HIGH: Postfix cannot use this entry' in warned
    assert 'leaves no cipher' in warned and 'mx.d.example' not in warned
    assert sandbox.table.read_text().startswith(text)


def test_empty_protocols_and_exclude_are_written(sandbox):
    assert_ok(sandbox.tls_policy({'destination': 'a.example', 'level': 'encrypt', 'protocols': [''], 'exclude': ['']}))
    assert sandbox.query('a.example') == {'a.example': 'encrypt protocols= exclude='}


def add_tlsproxy(sandbox):
    # connection_reuse=yes needs the service (Debian ships it commented out)
    sandbox.master_cf.write_text(sandbox.master_cf.read_text() + 'tlsproxy  unix  -       -       n       -       0       tlsproxy\n')


def test_an_entry_postfix_reads_differently_is_updated(sandbox):
    add_tlsproxy(sandbox)
    sandbox.seed('a.example encrypt servername=HOSTNAME\nb.example encrypt connection_reuse=no connection_reuse=yes\n')
    result = assert_ok(sandbox.tls_policy({'entries': [
        {'destination': 'a.example', 'level': 'encrypt', 'servername': 'hostname'},
        {'destination': 'b.example', 'level': 'encrypt', 'connection_reuse': True},
    ]}))
    assert result['updated'] == ['a.example']            # HOSTNAME is a literal SNI name
    assert sandbox.query('a.example', 'b.example') == {
        'a.example': 'encrypt servername=hostname',
        'b.example': 'encrypt connection_reuse=no connection_reuse=yes'}   # the last one wins: unchanged


# -- version gates ----------------------------------------------------------------------------

@pytest.mark.parametrize('version, args, fragment', [
    ('3.5.3', {'connection_reuse': True}, '3.4.14, 3.5.4 or 3.6'),
    ('3.4.13', {'connection_reuse': False}, '3.4.14, 3.5.4 or 3.6'),
    (None, {'enable_rpk': True}, 'Postfix 3.9'),
    ('3.5.9', {'protocols': ['>=TLSv1.2']}, 'Postfix 3.6'),
])
def test_features_newer_than_this_postfix_are_refused_at_patch_level(sandbox, version, args, fragment):
    if version:
        add_main_cf(sandbox, 'mail_version = %s\n' % version)
    assert_failed(sandbox.tls_policy(dict({'destination': 'a.example', 'level': 'encrypt'}, **args)), fragment)


def test_connection_reuse_on_a_fixed_patch_release_is_written(sandbox):
    add_main_cf(sandbox, 'mail_version = 3.5.4\n')
    add_tlsproxy(sandbox)
    result = assert_ok(sandbox.tls_policy({'destination': 'a.example', 'level': 'encrypt', 'connection_reuse': True}))
    assert 'tlsproxy' not in warnings_of(result)


def test_connection_reuse_without_the_tlsproxy_service_is_refused(sandbox):
    # the sandbox's master.cf has no tlsproxy service, as Debian's (commented out): the SMTP
    # client defers the mail ("connect to private/tlsproxy service"), at level may too
    entry = {'destination': '[mx.a.example]:25', 'level': 'may', 'connection_reuse': True}
    before = sandbox.snapshot()
    assert_failed(sandbox.tls_policy(entry), 'connection_reuse=yes needs the tlsproxy service in master.cf',
                  'connect to private/tlsproxy service')
    assert sandbox.snapshot() == before
    # in check mode a warning: an earlier task of the play may add the service
    result = assert_ok(sandbox.tls_policy(entry, check=True))
    assert result['changed'] is True and 'tlsproxy' in warnings_of(result)
    assert sandbox.snapshot() == before
    add_tlsproxy(sandbox)
    assert_ok(sandbox.tls_policy(entry))


def test_an_existing_line_reusing_connections_without_tlsproxy_is_named_and_kept(sandbox):
    text = '[mx.f.example]:25 may connection_reuse=no connection_reuse=yes\n[mx.g.example]:25 encrypt\n'
    sandbox.seed(text)
    result = assert_ok(sandbox.tls_policy({'destination': '[mx.h.example]:25', 'level': 'encrypt'}))
    warned = warnings_of(result)
    assert 'line 1: [mx.f.example]:25 may connection_reuse=no connection_reuse=yes: Postfix cannot use' in warned
    assert 'tlsproxy service' in warned and 'mx.g.example' not in warned
    assert sandbox.table.read_text().startswith(text)
    add_tlsproxy(sandbox)
    assert 'tlsproxy' not in warnings_of(assert_ok(sandbox.tls_policy({'destination': '[mx.h.example]:25',
                                                                      'level': 'encrypt'})))


@pytest.mark.parametrize('version, rewritten', [('3.7.11', True), ('3.10.1', False)])
def test_a_brace_form_entry_is_the_same_policy_only_where_postfix_reads_braces(sandbox, version, rewritten):
    # "{ match = nexthop }" is a malformed attribute/value pair before Postfix 3.10: the SMTP
    # client defers the mail, so the entry is rewritten, not left as "the same policy"
    add_main_cf(sandbox, 'mail_version = %s\n' % version)
    sandbox.table.write_text('brace.example secure { match = nexthop }\nother.example may\n')
    result = assert_ok(sandbox.tls_policy({'destination': 'brace.example', 'level': 'secure', 'match': ['nexthop']}))
    assert result['updated'] == (['brace.example'] if rewritten else []), result
    assert sandbox.table.read_text().splitlines()[0] == (
        'brace.example secure match=nexthop' if rewritten else 'brace.example secure { match = nexthop }')
    assert assert_ok(sandbox.tls_policy({'destination': 'brace.example', 'level': 'secure',
                                         'match': ['nexthop']}))['changed'] is False


# -- cross-checks with the configuration ------------------------------------------------------

def test_fingerprint_length_must_fit_smtp_tls_fingerprint_digest(sandbox):
    # compatibility_level 3.6: sha256
    assert_failed(sandbox.tls_policy({'destination': 'a.example', 'level': 'fingerprint', 'match': [MD5]}),
                  'smtp_tls_fingerprint_digest is sha256', 'all fingerprints unusable')
    assert_ok(sandbox.tls_policy({'destination': 'a.example', 'level': 'fingerprint', 'match': [SHA256]}))
    add_main_cf(sandbox, 'smtp_tls_fingerprint_digest = md5\n')
    assert_ok(sandbox.tls_policy({'destination': 'b.example', 'level': 'fingerprint', 'match': [MD5]}))


def test_dane_only_needs_dnssec_and_dane_warns(sandbox):
    assert_failed(sandbox.tls_policy({'destination': 'a.example', 'level': 'dane-only'}),
                  'smtp_dns_support_level = dnssec')
    result = assert_ok(sandbox.tls_policy({'destination': 'a.example', 'level': 'dane'}))
    assert 'silently uses level may' in warnings_of(result)
    add_main_cf(sandbox, 'smtp_dns_support_level = dnssec\n')
    result = assert_ok(sandbox.tls_policy({'destination': 'b.example', 'level': 'dane-only'}))
    assert 'smtp_dns_support_level' not in warnings_of(result)


def test_tafile_must_exist_where_the_smtp_client_opens_it(sandbox):
    ta = sandbox.tmp / 'ta.pem'
    assert_failed(sandbox.tls_policy({'destination': 'a.example', 'level': 'secure', 'tafile': [str(ta)]}),
                  'does not exist', 'error opening trust anchor file')
    ta.write_text('not checked here\n')
    assert_ok(sandbox.tls_policy({'destination': 'a.example', 'level': 'secure', 'tafile': [str(ta)]}))
    # chrooted smtp client: the file must be below queue_directory
    queue = sandbox.tmp / 'queue'
    queue.mkdir()
    add_main_cf(sandbox, 'queue_directory = %s\n' % queue)
    sandbox.master_cf.write_text(sandbox.master_cf.read_text().replace(
        'smtp      unix  -       -       n', 'smtp      unix  -       -       y'))
    assert_failed(sandbox.tls_policy({'destination': 'b.example', 'level': 'secure', 'tafile': [str(ta)]}),
                  'chroot', 'queue_directory = %s' % queue)
    inside = queue / str(ta).lstrip('/')
    inside.parent.mkdir(parents=True)
    inside.write_text('copy\n')
    assert_ok(sandbox.tls_policy({'destination': 'b.example', 'level': 'secure', 'tafile': [str(ta)]}))


def test_missing_tafile_is_a_warning_in_check_mode(sandbox):
    result = assert_ok(sandbox.tls_policy({'destination': 'a.example', 'level': 'secure',
                                           'tafile': [str(sandbox.tmp / 'later.pem')]}, check=True))
    assert 'check mode' in warnings_of(result)


# -- texthash duplicates ------------------------------------------------------------------------

def test_texthash_duplicate_keys_are_refused_until_the_key_is_managed(make_sandbox):
    sandbox = make_sandbox(map_type='texthash')
    sandbox.table.write_text('Example.com encrypt\nother.example may\nexample.COM secure\n')
    before = sandbox.snapshot()
    assert_failed(sandbox.tls_policy({'destination': 'new.example', 'level': 'may'}),
                  'duplicate keys', "'example.com' on lines 1, 3", 'every destination')
    assert sandbox.snapshot() == before
    result = assert_ok(sandbox.tls_policy({'destination': 'example.com', 'level': 'secure'}))
    assert result['updated'] == ['example.com']
    assert sandbox.table.read_text() == 'Example.com secure\nother.example may\n'


# -- existing lines Postfix cannot use ------------------------------------------------------------

def test_unusable_existing_lines_stay_are_named_and_can_be_removed(sandbox):
    text = ('*\tencrypt\n'
            '.bayern.de encrypt # mx has selfsigned cert\n'
            'example.com fingerprint match=51:e9:af:2e:...:2f\n'
            'good.example secure\n')
    sandbox.seed(text)
    result = assert_ok(sandbox.tls_policy({'destination': 'new.example', 'level': 'may'}))
    warnings = warnings_of(result)
    for line, fragment in ((1, 'no wildcards'), (2, 'malformed attribute/value pair "#"'),
                           (3, 'fingerprint')):
        assert 'line %d:' % line in warnings and fragment in warnings
    assert 'good.example' not in warnings
    assert sandbox.table.read_text() == text + 'new.example may\n'
    result = assert_ok(sandbox.tls_policy({'destination': '*', 'state': 'absent'}))
    assert result['removed'] == ['*']
    assert sandbox.table.read_text() == text.split('\n', 1)[1] + 'new.example may\n'


def test_a_real_table_is_kept_and_its_broken_lines_named(sandbox):
    with open(os.path.join(REALWORLD_TABLES, '03_jojoob_tls_policy-dane_2014'), 'rb') as f:
        text = f.read().decode('utf-8')
    sandbox.seed(text)
    result = assert_ok(sandbox.tls_policy({'destination': '[127.0.0.1]:10025', 'level': 'none'}))
    warnings = warnings_of(result)
    assert '.bayern.de' in warnings and 'bundeswehr.org' in warnings
    after = sandbox.table.read_text()
    assert after.startswith(text) and after[len(text):].split() == ['[127.0.0.1]:10025', 'none']
    assert sandbox.query('[127.0.0.1]:10025') == {'[127.0.0.1]:10025': 'none'}
