# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's preflight (enforce_tls_preflight) against a real Postfix container.

The container (bookworm, Postfix 3.7) runs two SMTP peers on its loopback
(molecule/resources/files/smtp_peer.py): 127.0.0.2:2525 offers no STARTTLS,
127.0.0.3:2525 offers STARTTLS with a self-signed certificate. The preflight
probes them with posttls-finger at the level the run would give them; the
report is the fact enforce_tls_preflight_report. At warn the role reports and
goes on; at fail it writes nothing and names every destination that would
defer, with Postfix's reason. The input checks run on localhost (no container).
"""

import json
import os
import subprocess

import pytest
import yaml

from ansible_env import REPO, ansible_env, tool
from test_enforce_tls_role import IMAGE_SYSTEMD, _gateway

PLAIN = '[127.0.0.2]:2525'
SELF_SIGNED = '[127.0.0.3]:2525'
PEER = os.path.join(REPO, 'molecule', 'resources', 'files', 'smtp_peer.py')

pytestmark = [pytest.mark.container, pytest.mark.slow]


def _with_peers(gateways):
    """The gateways of GATEWAYS (a _gateway generator), each with the two SMTP peers running."""
    for gw in gateways:
        with open(PEER, 'rb') as handle:
            peer = handle.read().decode('utf-8')
        peers = [{'name': 'plain', 'listen': '127.0.0.2', 'port': 2525, 'spool': '/var/tmp/plain'},
                 {'name': 'tls', 'listen': '127.0.0.3', 'port': 2525, 'spool': '/var/tmp/tls',
                  'cert': '/root/peer.crt', 'key': '/root/peer.key'}]
        script = ('cat > /root/smtp_peer.py <<"PEER_EOF"\n%s\nPEER_EOF\n'
                  "printf '%%s' '%s' > /root/peers.json\n"
                  'openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=peer.test '
                  '-keyout /root/peer.key -out /root/peer.crt 2>/dev/null\n'
                  'python3 /root/smtp_peer.py --config /root/peers.json --daemon --pidfile /run/peers.pid '
                  '--log /var/log/peers.log\n') % (peer, json.dumps(peers))
        gw.sh(script)
        gw.take_before()
        yield gw


@pytest.fixture
def gateway(tmp_path):
    yield from _with_peers(_gateway(tmp_path))


@pytest.fixture
def systemd_gateway(tmp_path):
    """bookworm under systemd (Postfix started by its units), with the peers."""
    yield from _with_peers(_gateway(tmp_path, image=IMAGE_SYSTEMD, systemd=True))


def _report(result):
    """The fact enforce_tls_preflight_report as the run left it: the decision sets it from
    the preflight the read worked out (empty when the preflight is off, or the run changes
    no policy lookup)."""
    found = [r for n, r in result.tasks
             if n == 'Decide levels, policy table, wiring and certificates' and 'ansible_facts' in r]
    if found:
        return found[-1]['ansible_facts']['enforce_tls_preflight_report']
    raise AssertionError('no task set enforce_tls_preflight_report')


def test_warn_reports_the_destination_that_would_defer_and_goes_on(gateway):
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt',
                        'enforce_tls_preflight_destinations': [PLAIN, SELF_SIGNED],
                        'enforce_tls_preflight_concurrency': 2})
    applied = gateway.play()
    assert applied.rc == 0, applied.failed or applied.output[-4000:]
    # the probes ran two at a time, as asked
    read = applied.result_of('Read the Postfix settings, services and files')
    assert read['invocation']['module_args']['tls_policy_levels']['concurrency'] == 2
    report = _report(applied)
    assert report['mode'] == 'warn'
    assert report['would_defer'] == [PLAIN]
    assert sorted(report['affected']) == sorted([PLAIN, SELF_SIGNED])
    by_name = {d['destination']: d for d in report['destinations']}
    assert by_name[PLAIN]['level_before'] == 'may' and by_name[PLAIN]['level'] == 'encrypt'
    assert by_name[PLAIN]['starttls'] is False
    assert by_name[PLAIN]['reason'] == 'TLS is required, but was not offered by host 127.0.0.2[127.0.0.2]'
    assert by_name[SELF_SIGNED]['starttls'] is True and by_name[SELF_SIGNED]['trust'] == 'untrusted'
    assert by_name[SELF_SIGNED]['would_defer'] is False
    assert any(m.startswith('Preflight on gw: 1 would defer: %s at encrypt' % PLAIN) for m in applied.messages())
    # ... and the change went ahead
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'


def test_a_raised_global_level_says_what_the_preflight_did_not_check(gateway):
    """may -> encrypt applies to every destination without an entry; with no destinations and
    no policy entries at all the preflight still runs (it has the levels) and its report, and
    the line it prints, say that mail to other next hops was not checked."""
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_internal_nexthops': []})
    applied = gateway.play(check=True)
    assert applied.rc == 0, applied.failed or applied.output[-4000:]
    report = _report(applied)
    assert report['destinations'] == [] and report['would_defer'] == []
    assert report['unchecked'].startswith('smtp_tls_security_level rises from may to encrypt for every destination '
                                          'without a policy entry'), report
    line, = [m for m in applied.messages() if str(m).startswith('Preflight on gw: ')]
    assert line.startswith('Preflight on gw: no destination would defer (0 affected); NOTE: smtp_tls_security_level '
                           'rises from may to encrypt'), line
    assert 'enforce_tls_preflight_log: true' in line
    # a run that raises no global level has nothing to add
    gateway.group_vars({'enforce_tls_outgoing_level': 'may', 'enforce_tls_preflight_destinations': [SELF_SIGNED],
                        'enforce_tls_policies': [{'destination': SELF_SIGNED, 'level': 'encrypt'}]})
    report = _report(gateway.play(check=True))
    assert report['unchecked'] is None and report['affected'] == [SELF_SIGNED], report


def test_fail_writes_nothing_and_names_every_destination(gateway):
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt',
                        'enforce_tls_preflight': 'fail',
                        'enforce_tls_preflight_destinations': [PLAIN],
                        # a stricter entry is probed without being listed
                        'enforce_tls_policies': [{'destination': SELF_SIGNED, 'level': 'verify'}]})
    for msg in gateway.refused():
        assert msg.startswith('Preflight (enforce_tls_preflight=fail): nothing was changed on gw; 2 would defer: '), msg
        assert '%s at encrypt (TLS is required, but was not offered by host 127.0.0.2[127.0.0.2])' % PLAIN in msg
        assert '%s at verify (Server certificate not verified (self-signed certificate))' % SELF_SIGNED in msg


def test_fail_lets_a_safe_change_through(gateway):
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_preflight': 'fail',
                        'enforce_tls_preflight_destinations': [SELF_SIGNED, PLAIN],
                        # the plaintext-only peer keeps working through its own entry
                        'enforce_tls_policies': [{'destination': PLAIN, 'level': 'may'}]})
    applied = gateway.converge()
    report = _report(applied)
    assert report['would_defer'] == [] and report['affected'] == [SELF_SIGNED], report
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'


def test_a_preflight_that_cannot_run_refuses_at_fail_and_warns_at_warn(gateway):
    """Without posttls-finger (a distribution that leaves it out) nothing can be probed. The
    read still succeeds: at fail the role refuses, naming the program, and writes nothing; at
    warn it warns and goes ahead."""
    gateway.sh('mv /usr/sbin/posttls-finger /usr/sbin/posttls-finger.off')
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_preflight': 'fail',
                        'enforce_tls_preflight_destinations': [PLAIN]})
    for msg in gateway.refused():
        assert msg.startswith('Preflight (enforce_tls_preflight=fail): nothing was changed; the preflight could not '
                              'work out what this change does to mail on this host: posttls-finger is not '
                              'installed on this host'), msg
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_preflight_destinations': [PLAIN]})
    applied = gateway.play()
    assert applied.rc == 0, applied.failed
    assert [m for m in applied.messages() if str(m).startswith(
        'WARNING: The preflight could not work out what this change does to mail on this host: posttls-finger '
        'is not installed')], applied.messages()
    report = _report(applied)
    assert report['failed'] is True and report['destinations'] == [] and report['would_defer'] == []
    assert report['summary'].startswith('nothing was checked: the preflight could not run (posttls-finger is not '
                                        'installed'), report
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'


def test_off_probes_nothing(gateway):
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_preflight': 'off',
                        'enforce_tls_preflight_destinations': [PLAIN]})
    applied = gateway.play()
    assert applied.rc == 0, applied.failed
    assert _report(applied)['destinations'] == []
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'


def _deliver_to_plain_test(gw, log_setup, restart, read_log):
    """Real Postfix log lines of a plaintext delivery: LOG_SETUP (where Postfix logs), then
    plain.test routed to the plaintext-only peer [127.0.0.2]:2525 with smtp_tls_loglevel = 1
    (at Postfix's default, 0, the log has no TLS lines to tell plaintext from TLS), RESTART,
    one message to u@plain.test, and READ_LOG (a command printing the log) until it shows
    status=sent (30 s; the log is shown when it does not)."""
    gw.sh("%s && postconf -e transport_maps=texthash:/etc/postfix/transport smtp_tls_loglevel=1 "
          "&& echo 'plain.test smtp:[127.0.0.2]:2525' > /etc/postfix/transport && %s "
          "&& printf 'Subject: t\\n\\nhello\\n' | sendmail -f a@gw.test u@plain.test "
          "&& for i in $(seq 60); do %s | grep -q 'status=sent' && exit 0; sleep 0.5; done; %s | tail -n 30; exit 1"
          % (log_setup, restart, read_log, read_log))


def test_log_evidence_adds_the_next_hops_that_took_mail_in_plaintext(gateway):
    # real Postfix log lines: a message to plain.test delivered in plaintext to [127.0.0.2]:2525
    _deliver_to_plain_test(gateway, 'postconf -e maillog_file=/var/log/postfix.log', 'postfix stop && postfix start',
                           'cat /var/log/postfix.log')
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_preflight_log': True})
    applied = gateway.play(check=True)
    assert applied.rc == 0, json.dumps(applied.result_of('Read the Postfix settings, services and files'))[-3000:]
    report = _report(applied)
    assert report['affected'] == [PLAIN], report
    assert report['would_defer'] == [PLAIN], report
    # The same log read at smtp_tls_loglevel = 0: it cannot say the delivery was in plaintext,
    # so it adds no next hop, and the report says what that leaves unchecked.
    gateway.sh('postconf -e smtp_tls_loglevel=0')
    unlogged = _report(gateway.play(check=True))
    assert unlogged['affected'] == [] and 'smtp_tls_loglevel is 0' in unlogged['unchecked'], unlogged


def test_log_evidence_from_the_journal(systemd_gateway):
    """A gateway as Debian 12 installs it: no maillog_file and no syslog daemon, so Postfix logs
    through syslog(3) to journald only and there is no /var/log/mail.log. The preflight reads
    the journal (journalctl) and finds the next hop that took mail in plaintext."""
    gw = systemd_gateway
    _deliver_to_plain_test(gw, 'postconf -X maillog_file', 'systemctl restart postfix@- && test ! -e /var/log/mail.log',
                           'journalctl -q --no-pager _COMM=smtp')
    gw.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_preflight_log': True})
    checked = gw.play(check=True)
    read = checked.result_of('Read the Postfix settings, services and files')
    assert checked.rc == 0, json.dumps(read)[-3000:]
    report = _report(checked)
    assert report['affected'] == [PLAIN], report
    assert report['would_defer'] == [PLAIN], report
    assert read['tls_policy_levels']['log_sources'] == ['journal'], read['tls_policy_levels']


SEND = """python3 - <<'SEND_EOF'
import smtplib, ssl
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
for source, tls, port in (('192.0.2.10', False, 25), ('192.0.2.11', True, 25), ('127.0.0.1', False, 25),
                          ('192.0.2.12', False, 2626)):
    session = smtplib.SMTP('127.0.0.1', port, source_address=(source, 0))
    if tls:
        session.starttls(context=context)
    session.sendmail('a@client.test', ['root@localhost'], 'Subject: t\\n\\nhello\\n')
    session.quit()
SEND_EOF"""


def test_raising_smtpd_names_the_clients_that_sent_without_tls(gateway):
    """smtpd raised to encrypt refuses clients that do not use STARTTLS. With the log, the
    preflight names them from real smtpd log lines: 192.0.2.10 sent in plaintext (refused at
    fail, and after a warn run it gets 530 on the wire), 192.0.2.11 used STARTTLS, 127.0.0.1
    (this host) is reported apart, and 192.0.2.12 sent in plaintext only to a port whose own
    -o keeps it at may (logged as postfix/legacy/smtpd): not refused, and still taken after."""
    gateway.make_certificate()
    gateway.sh('for a in 10 11 12; do ip addr add 192.0.2.$a/32 dev lo || exit 1; done '
               '&& postconf -e maillog_file=/var/log/postfix.log smtpd_tls_loglevel=1 mydestination=localhost '
               'smtpd_tls_cert_file=/etc/postfix/tls/gw.crt smtpd_tls_key_file=/etc/postfix/tls/gw.key '
               '&& postconf -Me "2626/inet=2626 inet n - y - - smtpd -o syslog_name=postfix/legacy '
               '-o smtpd_tls_security_level=may" '
               # the master exits a moment after "postfix stop" returns
               '&& postfix stop && while postfix status 2>/dev/null; do sleep 0.2; done && postfix start')
    gateway.sh(SEND + '\n')
    gateway.sh("for i in $(seq 60); do [ $(grep -c ': client=' /var/log/postfix.log) = 4 ] && exit 0; sleep 0.5; done; "
               'cat /var/log/postfix.log; exit 1')
    gateway.take_before()
    settings = {'enforce_tls_incoming_level': 'encrypt', 'enforce_tls_preflight_log': True,
                'enforce_tls_smtpd_cert_file': '/etc/postfix/tls/gw.crt',
                'enforce_tls_smtpd_key_file': '/etc/postfix/tls/gw.key'}
    gateway.group_vars(dict(settings, enforce_tls_preflight='fail'))
    for msg in gateway.refused():
        assert msg.startswith('Preflight (enforce_tls_preflight=fail): nothing was changed on gw; no destination '
                              'would defer (0 affected); 1 client sent mail without TLS (mail log: '
                              '/var/log/postfix.log) and would get 530 at smtpd_tls_security_level = encrypt: '
                              'unknown[192.0.2.10] (1 message); not refused: '), msg
        assert '; from this host without TLS: unknown[127.0.0.1] (1 message)' in msg
        assert ('not refused: unknown[192.0.2.12] (1 message) (sent only to postfix/legacy/smtpd, which incoming '
                'encrypt does not reach)') in msg
        assert 'Make these clients use STARTTLS' in msg and '192.0.2.11' not in msg
    gateway.group_vars(settings)
    applied = gateway.play()
    assert applied.rc == 0, applied.failed
    report = _report(applied)
    assert report['refused_clients'] == ['unknown[192.0.2.10]'], report
    assert report['local_plaintext_clients'] == ['unknown[127.0.0.1]'], report
    assert gateway.postconf('smtpd_tls_security_level') == 'encrypt'
    # What the preflight said, on the wire: the client that sent in plaintext is now refused.
    out = gateway.sh("python3 -c \"import smtplib; s = smtplib.SMTP('127.0.0.1', 25, source_address=('192.0.2.10', 0)); "
                     "s.ehlo(); print(s.mail('a@client.test'))\"")
    assert "530" in out and 'Must issue a STARTTLS command first' in out, out
    legacy = gateway.sh("python3 -c \"import smtplib; s = smtplib.SMTP('127.0.0.1', 2626, "
                        "source_address=('192.0.2.12', 0)); s.ehlo(); print(s.mail('a@client.test'))\"")
    assert legacy.startswith('(250'), legacy


@pytest.mark.parametrize('variables, named', [
    ({'enforce_tls_preflight_destinations': ['ok.example', 'two words']}, 'enforce_tls_preflight_destinations'),
    ({'enforce_tls_preflight_destinations': 'example.com'}, 'enforce_tls_preflight_destinations'),
    ({'enforce_tls_preflight': 'maybe'}, 'enforce_tls_preflight'),
    ({'enforce_tls_preflight_timeout': 0}, 'enforce_tls_preflight_timeout'),
    ({'enforce_tls_preflight_concurrency': 0}, 'enforce_tls_preflight_concurrency'),
])
def test_bad_preflight_input_is_refused_before_anything_is_read(tmp_path, variables, named):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False,
                                         'roles': [{'role': 'mailgw.postfix_tls.enforce_tls'}]}]))
    varfile = tmp_path / 'vars.yml'
    varfile.write_text(yaml.safe_dump(dict(variables, enforce_tls_config_dir=str(tmp_path / 'no-such-dir'))))
    proc = subprocess.run([tool('ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(playbook),
                           '-e', '@%s' % varfile], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=ansible_env(tmp_path), check=False)
    assert proc.returncode != 0
    tasks = [(task['task']['name'], result) for play in json.loads(proc.stdout)['plays']
             for task in play['tasks'] for result in task['hosts'].values()]
    failed = [(name, result.get('msg', '')) for name, result in tasks if result.get('failed')]
    (name, msg), = failed
    # the role's argument spec, or its refusal of bad input with the read skipped
    # (nothing read), never a later task
    assert name.endswith('Refuse a change Postfix cannot work with or the preflight finds would defer mail') \
        or 'Validating arguments against arg spec' in name, failed
    assert [result.get('skipped') for n, result in tasks
            if n.endswith('Read the Postfix settings, services and files')] in ([], [True]), tasks
    assert named in str(msg)
