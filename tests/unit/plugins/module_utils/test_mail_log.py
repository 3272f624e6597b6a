# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The mail log reader on real Postfix log lines.

REAL_LOG is an excerpt, in order and unchanged, of the maillog_file of the
private Postfix 3.7 instance of tests/integration/modules/tls_probe (the delivery
oracle with four loopback peers): three SMTP client processes interleaved,
deliveries that were deferred at encrypt/verify/secure, sent over TLS at each
trust, and one sent in plaintext (e4, level may, to the plaintext-only peer)
right after another process set up TLS to a different relay.  The lanes run
``smtp -v``, so the verbose ``send attr reason`` lines are there too.
"""

import datetime
import os

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_log import (
    Summary,
    busiest_plaintext_clients,
    parse_line,
    parse_time,
    summarize,
    tls_summary_logged,
    unlogged_tls_warnings,
    window_seconds,
)

REAL_LOG = '\n'.join([
    'Dec 04 18:07:11 oracle-mta postfix/smtpd[2111]: connect from unknown[127.0.0.1]',
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: send attr reason = TLS is required, but was '
     'not offered by host 127.104.200.2[127.104.200.2]'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: D65E423A1BF: to=<probe@e2.or1.oracle.test>, '
     'relay=127.104.200.2[127.104.200.2]:40828, delay=0.13, delays=0.03/0.05/0.04/0, dsn=4.7.4, '
     'status=deferred (TLS is required, but was not offered by host 127.104.200.2[127.104.200.2])'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: send attr reason = TLS is required, but was '
     'not offered by host 127.104.200.2[127.104.200.2]'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: send attr reason = TLS is required, but was '
     'not offered by host 127.104.200.1[127.104.200.1]'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: D425423A1BE: to=<probe@e1.or1.oracle.test>, '
     'relay=127.104.200.1[127.104.200.1]:40828, delay=0.22, delays=0.07/0.1/0.04/0, dsn=4.7.4, '
     'status=deferred (TLS is required, but was not offered by host 127.104.200.1[127.104.200.1])'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: send attr reason = TLS is required, but was '
     'not offered by host 127.104.200.1[127.104.200.1]'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: Untrusted TLS connection established to '
     '127.104.200.7[127.104.200.7]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) '
     'key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: send attr reason = Server certificate not '
     'verified'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: D849F23A1C4: to=<probe@e7.or1.oracle.test>, '
     'relay=127.104.200.7[127.104.200.7]:40828, delay=0.21, delays=0.03/0.12/0.06/0, dsn=4.7.5, '
     'status=deferred (Server certificate not verified)'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: send attr reason = Server certificate not '
     'verified'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: Untrusted TLS connection established to '
     '127.104.200.5[127.104.200.5]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) '
     'key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: D7C0023A1C2: to=<probe@e5.or1.oracle.test>, '
     'relay=127.104.200.5[127.104.200.5]:40828, delay=0.28, delays=0.03/0.14/0.11/0, dsn=2.0.0, '
     'status=sent (250 2.0.0 ok: delivered)'),
    'Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: send attr reason = ',
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: Untrusted TLS connection established to '
     '127.104.200.8[127.104.200.8]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) '
     'key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: D75C523A1C1: to=<probe@e4.or1.oracle.test>, '
     'relay=127.104.200.4[127.104.200.4]:40828, delay=0.29, delays=0.03/0.16/0.09/0.01, dsn=2.0.0, '
     'status=sent (250 2.0.0 ok: delivered)'),
    'Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: send attr reason = ',
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: Untrusted TLS connection established to '
     '127.104.200.6[127.104.200.6]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) '
     'key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: send attr reason = Server certificate not '
     'verified'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: D805923A1C3: to=<probe@e6.or1.oracle.test>, '
     'relay=127.104.200.6[127.104.200.6]:40828, delay=0.32, delays=0.03/0.25/0.05/0, dsn=4.7.5, '
     'status=deferred (Server certificate not verified)'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: send attr reason = Server certificate not '
     'verified'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: D88F123A1C5: to=<probe@e8.or1.oracle.test>, '
     'relay=127.104.200.8[127.104.200.8]:40828, delay=0.36, delays=0.03/0.19/0.12/0.02, dsn=2.0.0, '
     'status=sent (250 2.0.0 ok: delivered)'),
    'Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: send attr reason = ',
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: Trusted TLS connection established to '
     '127.104.200.13[127.104.200.13]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) '
     'key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: Untrusted TLS connection established to '
     '127.104.200.14[127.104.200.14]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) '
     'key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: send attr reason = Server certificate not '
     'verified'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: DF26923A1CB: to=<probe@e14.or1.oracle.test>, '
     'relay=127.104.200.14[127.104.200.14]:40828, delay=0.38, delays=0/0.31/0.07/0, dsn=4.7.5, '
     'status=deferred (Server certificate not verified)'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2168]: send attr reason = Server certificate not '
     'verified'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: DECDC23A1CA: to=<probe@e13.or1.oracle.test>, '
     'relay=127.104.200.13[127.104.200.13]:40828, delay=0.42, delays=0/0.27/0.14/0, dsn=2.0.0, '
     'status=sent (250 2.0.0 ok: delivered)'),
    'Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2163]: send attr reason = ',
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: Trusted TLS connection established to '
     '127.104.200.16[127.104.200.16]:40828: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) '
     'key-exchange X25519 server-signature ECDSA (prime256v1) server-digest SHA256'),
    ('Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: DFBD723A1CD: to=<probe@e16.or1.oracle.test>, '
     'relay=127.104.200.16[127.104.200.16]:40828, delay=0.47, delays=0/0.34/0.14/0, dsn=2.0.0, '
     'status=sent (250 2.0.0 ok: delivered)'),
    'Dec 04 18:07:12 oracle-mta postfix/or1/smtp[2152]: send attr reason = ',
    'Dec 04 18:07:12 oracle-mta postfix/qmgr[2108]: DA80323A1C7: removed',
]) + '\n'
NOW = datetime.datetime(2026, 12, 4, 20, 0, 0)


def hop(result, domain):
    return dict((h['destination'], h) for h in result['next_hops'])[domain]


def test_real_log_counts_tls_and_plaintext_per_next_hop():
    result = summarize(REAL_LOG.splitlines(), now=NOW)
    assert result['plaintext'] == ['e4.or1.oracle.test']
    plain = hop(result, 'e4.or1.oracle.test')
    assert (plain['sent'], plain['sent_tls'], plain['sent_plaintext']) == (1, 0, 1)
    assert plain['plaintext_relays'] == ['127.104.200.4[127.104.200.4]:40828']
    assert plain['would_defer_at_encrypt'] is True
    for domain, trust in (('e5.or1.oracle.test', 'untrusted'), ('e8.or1.oracle.test', 'untrusted'),
                          ('e13.or1.oracle.test', 'trusted'), ('e16.or1.oracle.test', 'trusted')):
        sent = hop(result, domain)
        assert (sent['sent'], sent['sent_tls'], sent['sent_plaintext']) == (1, 1, 0), sent
        assert sent['trust'][trust] == 1 and sent['would_defer_at_encrypt'] is False


def test_real_log_deferrals_keep_postfixs_words():
    result = summarize(REAL_LOG.splitlines(), now=NOW)
    deferred = hop(result, 'e1.or1.oracle.test')
    assert (deferred['sent'], deferred['deferred']) == (0, 1)
    assert deferred['deferred_reasons'] == [
        {'reason': 'TLS is required, but was not offered by host 127.104.200.1[127.104.200.1]', 'count': 1}]
    assert hop(result, 'e7.or1.oracle.test')['deferred_reasons'] == [
        {'reason': 'Server certificate not verified', 'count': 1}]


def test_relays_and_window():
    result = summarize(REAL_LOG.splitlines(), now=NOW)
    relays = dict((r['relay'], r) for r in result['relays'])
    relay = '127.104.200.4[127.104.200.4]:40828'
    assert relays[relay] == {'relay': relay, 'sent_tls': 0, 'sent_plaintext': 1, 'sent_unknown': 0}
    # the smtpd line (a connect) counts too
    assert (result['first'], result['last']) == ('2026-12-04 18:07:11', '2026-12-04 18:07:12')
    later = summarize(REAL_LOG.splitlines(), since=datetime.datetime(2026, 12, 4, 18, 7, 13), now=NOW)
    assert later['next_hops'] == [] and later['lines'] == 0


def test_other_instances_are_left_out():
    assert summarize(REAL_LOG.splitlines(), syslog_name='postfix-out', now=NOW)['next_hops'] == []
    assert len(summarize(REAL_LOG.splitlines(), syslog_name='postfix', now=NOW)['next_hops']) > 0


def _restamp(line, stamp):
    return stamp + line[len('Dec 04 18:07:12'):]


@pytest.mark.parametrize('stamp', ['Dec  4 18:07:12', '2026-12-04T18:07:12.123456+00:00',
                                   '2026-12-04T18:07:12+0000', '2026-12-04T18:07:12Z'])
def test_syslog_rsyslog_and_journal_timestamps(stamp):
    """The same real lines as rsyslog (traditional and ISO format) and journalctl -o short-iso write them."""
    lines = [_restamp(line, stamp) for line in REAL_LOG.splitlines()]
    result = summarize(lines, now=NOW)
    assert result['plaintext'] == ['e4.or1.oracle.test']
    assert parse_line(lines[0], NOW).time is not None


def test_tlsproxy_session_counts_for_a_reused_connection():
    lines = [
        'Dec  4 10:00:00 gw postfix/tlsproxy[10]: Verified TLS connection established to '
        'mx.example.com[192.0.2.1]:25: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)',
        'Dec  4 10:00:01 gw postfix/smtp[11]: ABC123: to=<a@example.com>, relay=mx.example.com[192.0.2.1]:25, '
        'conn_use=2, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok)',
        'Dec  4 10:00:02 gw postfix/smtp[12]: ABC124: to=<b@example.org>, orig_to=<b@alias.test>, '
        'relay=none, delay=30, delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to mx.example.org[192.0.2.2]:25: '
        'Connection timed out)',
    ]
    result = summarize(lines, now=NOW)
    assert hop(result, 'example.com')['trust']['verified'] == 1
    org = hop(result, 'example.org')
    assert org['relays'] == [] and org['deferred'] == 1


def test_year_is_the_one_that_is_not_in_the_future():
    assert parse_time('Dec 31 23:59:59', datetime.datetime(2027, 1, 1, 0, 5)).year == 2026
    assert parse_time('Jan  1 00:00:01', datetime.datetime(2027, 1, 1, 0, 5)).year == 2027
    assert parse_time('Foo  1 00:00:01', NOW) is None


@pytest.mark.parametrize('text, seconds', [('90m', 5400), ('24h', 86400), ('7d', 604800), ('3600', 3600),
                                           ('2w', 1209600)])
def test_window(text, seconds):
    assert window_seconds(text) == seconds


@pytest.mark.parametrize('text', ['', '0h', '-1d', '1y', 'soon'])
def test_bad_window_is_named(text):
    with pytest.raises(ValueError, match='window %r: a positive number' % text):
        window_seconds(text)


# smtpd lines of a Postfix 3.7 (bookworm) with smtpd_tls_loglevel = 1, unchanged: a plaintext
# message, two messages in one STARTTLS session, and on a second smtpd service (syslog_name
# postfix/submission) a STARTTLS session without mail, then a plaintext message.
SMTPD_LOG = """\
Dec 05 15:58:41 gateway postfix/smtpd[145]: connect from unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/smtpd[145]: A83B719654D: client=unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/smtpd[145]: disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5
Dec 05 15:58:41 gateway postfix/smtpd[145]: connect from unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/smtpd[145]: Anonymous TLS connection established from unknown[127.0.0.1]: TLSv1.3 \
with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256
Dec 05 15:58:41 gateway postfix/smtpd[145]: ABEA119654D: client=unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/smtpd[145]: AC74619654E: client=unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/smtpd[145]: disconnect from unknown[127.0.0.1] ehlo=2 starttls=1 mail=2 rcpt=2 data=2 quit=1 commands=10
Dec 05 15:58:41 gateway postfix/submission/smtpd[152]: connect from unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/submission/smtpd[152]: Anonymous TLS connection established from unknown[127.0.0.1]: \
TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256
Dec 05 15:58:41 gateway postfix/submission/smtpd[152]: disconnect from unknown[127.0.0.1] ehlo=1 starttls=1 quit=1 commands=3
Dec 05 15:58:41 gateway postfix/submission/smtpd[152]: connect from unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/submission/smtpd[152]: B120019654E: client=unknown[127.0.0.1]
Dec 05 15:58:41 gateway postfix/submission/smtpd[152]: disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5
"""
SMTPD_NOW = datetime.datetime(2026, 12, 5, 16, 0, 0)


def test_clients_with_and_without_tls():
    result = summarize(SMTPD_LOG.splitlines(), now=SMTPD_NOW)
    client, = result['clients']
    assert client == {'client': 'unknown[127.0.0.1]', 'address': '127.0.0.1', 'loopback': True, 'messages': 4,
                      'messages_tls': 2, 'messages_plaintext': 2, 'messages_unknown': 0,
                      'services': ['postfix/smtpd', 'postfix/submission/smtpd'],
                      'plaintext_services': ['postfix/smtpd', 'postfix/submission/smtpd']}
    assert result['plaintext_clients'] == ['unknown[127.0.0.1]']
    assert result['next_hops'] == [] and result['tls_logged'] == {'smtp': True, 'smtpd': True}


def test_remote_clients_port_logging_and_sni():
    """The same lines from a remote client, with smtpd_client_port_logging and an SNI name."""
    lines = [line.replace('unknown[127.0.0.1]', 'mail.example.net[192.0.2.7]:41234')
             .replace('[192.0.2.7]:41234: TLSv1.3', '[192.0.2.7]:41234 to gw.example: TLSv1.3')
             for line in SMTPD_LOG.splitlines()]
    result = summarize(lines, now=SMTPD_NOW)
    client, = result['clients']
    assert client['client'] == 'mail.example.net[192.0.2.7]'
    assert (client['address'], client['loopback']) == ('192.0.2.7', False)
    assert (client['messages_tls'], client['messages_plaintext']) == (2, 2)
    v6 = summarize([line.replace('unknown[127.0.0.1]', 'unknown[::1]') for line in SMTPD_LOG.splitlines()],
                   now=SMTPD_NOW)
    assert v6['clients'][0]['loopback'] is True


def test_a_session_without_its_connect_line_is_plaintext_until_tls():
    # a log window that starts mid-session: no TLS line seen, so the message counts as plaintext
    lines = SMTPD_LOG.splitlines()[5:8]
    assert summarize(lines, now=SMTPD_NOW)['clients'][0]['messages_plaintext'] == 2


def test_tls_log_levels():
    for level in ('1', '2', 'routine', 'summary', 'untrusted, summary', 'ssl-expert', '4'):
        assert tls_summary_logged(level), level
    for level in ('0', '', 'none', 'untrusted', 'peercert, certmatch'):
        assert not tls_summary_logged(level), level


def test_unlogged_tls_is_unknown_not_plaintext():
    summary = Summary(now=NOW, tls_logged={'smtp': False, 'smtpd': False})
    for line in REAL_LOG.splitlines() + SMTPD_LOG.splitlines():
        summary.feed(line)
    result = summary.result()
    assert result['plaintext'] == [] and result['plaintext_clients'] == []
    e5 = hop(result, 'e5.or1.oracle.test')
    assert (e5['sent'], e5['sent_tls'], e5['sent_plaintext'], e5['sent_unknown']) == (1, 0, 0, 1)
    assert e5['would_defer_at_encrypt'] is None
    assert result['clients'][0]['messages_unknown'] == 4 and result['clients'][0]['messages_plaintext'] == 0
    warnings = unlogged_tls_warnings(result['tls_logged'])
    assert len(warnings) == 2 and warnings[0].startswith('smtp_tls_loglevel is 0: Postfix logs no "TLS connection')
    assert 'smtpd_tls_loglevel = 1' in warnings[1]
    assert unlogged_tls_warnings(summarize(REAL_LOG.splitlines(), now=NOW)['tls_logged']) == []


def test_busiest_plaintext_clients():
    clients = [{'client': 'c%d[192.0.2.%d]' % (n, n), 'messages_plaintext': n % 4} for n in range(10)]
    listed, total = busiest_plaintext_clients(clients, 3)
    assert total == 7     # n % 4 == 0 sent nothing in plaintext
    assert [c['client'] for c in listed] == ['c3[192.0.2.3]', 'c7[192.0.2.7]', 'c2[192.0.2.2]']


class _Failed(Exception):
    pass


class _Module:
    """What read_mail_log uses of an AnsibleModule: no journalctl on this host."""

    def fail_json(self, msg, **kwargs):
        raise _Failed(msg)

    def get_bin_path(self, name, required=False):
        if required:
            raise _Failed('Failed to find required executable "%s"' % name)
        return None


def _with_alarm(func):
    import signal

    def expired(signum, frame):
        raise AssertionError('read_mail_log read a pipe and never returned')
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    try:
        return func()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_log_that_is_a_pipe_is_never_read(tmp_path):
    # maillog_file = /dev/stdout (containers): reading it to its end would wait for ever
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_log import read_mail_log
    fifo = str(tmp_path / 'stdout')
    os.mkfifo(fifo)
    log = tmp_path / 'mail.log'
    log.write_text('')
    fed = []

    class Summary:
        feed = fed.append
    assert _with_alarm(lambda: read_mail_log(_Module(), Summary, [fifo, str(log)])) == [str(log)]
    with pytest.raises(_Failed, match='is not a regular file .* reading it would never end$'):
        _with_alarm(lambda: read_mail_log(_Module(), Summary, [fifo], source='file'))
    with pytest.raises(_Failed, match='is not a regular file .* and there is no journalctl'):
        _with_alarm(lambda: read_mail_log(_Module(), Summary, [fifo]))
