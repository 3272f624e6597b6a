# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_log_summary on the log of a real Postfix: the counts are what the deliveries were.

The private instance of conftest.py delivered one message per (peer, level); its
maillog_file is read by the module and held against the delivery status of each
message (the oracle's verdicts) and against the peers: only the plaintext-only peer
at level may took mail in plaintext.
"""

import os

from ansible_env import run_module


def _summary(probe_world, **args):
    result = run_module('mailgw.postfix_tls.tls_log_summary',
                        dict({'config_dir': probe_world.config_dir, 'window': '1h'}, **args))
    assert not result.get('failed'), result
    return result


def test_counts_agree_with_the_deliveries(probe_world):
    """Default log: the instance's maillog_file; its syslog_name (postfix) selects the lines."""
    result = _summary(probe_world)
    assert result['sources'] == [probe_world.log] and result['changed'] is False
    hops = dict((hop['destination'], hop) for hop in result['next_hops'])
    for case, verdict in probe_world.verdicts.items():
        hop = hops[verdict.recipient.split('@')[1]]
        why = '%s: postfix %s (%s)\n%r' % (case, verdict.status, verdict.reason, hop)
        if verdict.status == 'sent':
            assert hop['sent'] == 1 and hop['deferred'] == 0, why
            plaintext = case == ('plaintext', 'may')
            assert (hop['sent_plaintext'], hop['sent_tls']) == ((1, 0) if plaintext else (0, 1)), why
            assert hop['would_defer_at_encrypt'] is plaintext, why
        else:
            assert hop['sent'] == 0 and hop['deferred'] == 1, why
            assert hop['deferred_reasons'] == [{'reason': verdict.reason, 'count': 1}], why
    plaintext_domain = probe_world.verdicts[('plaintext', 'may')].recipient.split('@')[1]
    assert result['plaintext'] == [plaintext_domain]


def test_trust_is_what_postfix_logged(probe_world):
    result = _summary(probe_world, log_files=[probe_world.log], source='file')
    hops = dict((hop['destination'], hop) for hop in result['next_hops'])

    def trust(kind, level):
        counts = hops[probe_world.verdicts[(kind, level)].recipient.split('@')[1]]['trust']
        return [name for name, count in counts.items() if count]
    assert trust('match', 'verify') == trust('match', 'secure') == ['verified']
    assert trust('match', 'encrypt') == trust('mismatch', 'encrypt') == trust('match', 'may') == ['trusted']
    assert trust('untrusted', 'encrypt') == trust('untrusted', 'may') == ['untrusted']
    assert trust('plaintext', 'may') == []


def test_log_evidence_feeds_the_probe(probe_world):
    """The destinations the log shows in plaintext, probed at encrypt: they would defer."""
    result = _summary(probe_world)
    probe = run_module('mailgw.postfix_tls.tls_probe', {
        'config_dir': probe_world.config_dir, 'level': 'encrypt', 'destinations': [probe_world.keys[('plaintext', 'may')]], 'connect_timeout': 5})
    assert len(result['plaintext']) == 1 and probe['deferring'] == [probe_world.keys[('plaintext', 'may')]], probe


def test_other_syslog_name_and_empty_window(probe_world):
    assert _summary(probe_world, syslog_name='postfix-out')['next_hops'] == []
    assert _summary(probe_world, window='')['lines'] > 0


def test_bad_window_and_missing_file_are_named(probe_world, tmp_path):
    result = run_module('mailgw.postfix_tls.tls_log_summary', {
        'config_dir': probe_world.config_dir, 'window': 'soon'})
    assert result.get('failed') and "window 'soon': a positive number" in result['msg'], result
    missing = str(tmp_path / 'mail.log')
    result = run_module('mailgw.postfix_tls.tls_log_summary', {
        'config_dir': probe_world.config_dir, 'log_files': [missing], 'source': 'file'})
    assert result.get('failed') and result['msg'] == 'log_files: %s does not exist' % missing, result


def test_tls_log_levels_come_from_the_configuration(probe_world, tmp_path):
    """The instance logs the SMTP client's TLS sessions (smtp_tls_loglevel = 1), its smtpd's
    not (smtpd_tls_loglevel is Postfix's default, 0): tls_logged says so, with a warning."""
    result = _summary(probe_world)
    assert result['tls_logged'] == {'smtp': True, 'smtpd': False}
    assert any(w.startswith('smtpd_tls_loglevel is 0') for w in result.get('warnings', [])), result
    assert not any(w.startswith('smtp_tls_loglevel') for w in result.get('warnings', []))


def test_without_tls_log_lines_nothing_counts_as_plaintext(probe_world, tmp_path):
    """The same real log, read for a configuration at smtp_tls_loglevel = 0 (Postfix's
    default): Postfix would not have logged the TLS lines, so no delivery is placed. Before,
    every delivery of such a gateway counted as plaintext and would_defer_at_encrypt."""
    conf = tmp_path / 'conf'
    conf.mkdir()
    main_cf = open(os.path.join(probe_world.config_dir, 'main.cf')).read()
    (conf / 'main.cf').write_text(main_cf + '\nsmtp_tls_loglevel = 0\n')
    result = run_module('mailgw.postfix_tls.tls_log_summary', {'config_dir': str(conf), 'window': '1h'})
    assert not result.get('failed'), result
    assert result['tls_logged'] == {'smtp': False, 'smtpd': False}
    assert result['plaintext'] == [] and result['next_hops'], result
    for hop in result['next_hops']:
        assert hop['sent_plaintext'] == hop['sent_tls'] == 0 and hop['sent_unknown'] == hop['sent'], hop
        assert hop['would_defer_at_encrypt'] is (None if hop['sent'] else False), hop
    assert any(w.startswith('smtp_tls_loglevel is 0: Postfix logs no "TLS connection established" line')
               for w in result['warnings']), result
