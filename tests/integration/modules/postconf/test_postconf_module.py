# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.postconf against the host's real postconf.

Each test works in its own sandbox (tests/integration/conftest.py): a
throwaway Postfix config directory with main.cf and master.cf. Single module
calls run the module file directly with its arguments and the check/diff
flags as JSON on stdin (``sandbox.postconf`` -> ``ansible_env.run_module``);
tests of plays, check mode and --diff across tasks, and ``ignore_errors``
matrices run the real ``ansible-playbook``. The ``postconf_calls`` fixture
puts a recording ``postconf`` first in PATH (it runs the real one), so tests
can count the calls that write.

The reliability tests of this module are beside this file:
test_postconf_{bad_input,check_mode,concurrency,faults,permissions}.py.
"""

import concurrent.futures
import os
import subprocess

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import macro_syntax_error

from ansible_env import tool
from postfix_sandbox import POSTCONF, REAL_POSTCONF, assert_failed, needs_postfix

pytestmark = needs_postfix

# --- main.cf: set, change, no-op, remove ----------------------------------------------


def test_set_new_parameter(sandbox, postconf_calls):
    result = sandbox.postconf({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert result['changed'] is True
    assert result['params'] == {'smtp_tls_security_level': {'before': None, 'after': 'encrypt'}}
    assert result['restart_required'] is False
    assert result['config_file'] == str(sandbox.main_cf)
    assert sandbox.explicit('smtp_tls_security_level') == 'encrypt'
    assert 'smtp_tls_security_level = encrypt\n' in sandbox.main_cf.read_text()
    assert len(postconf_calls.writes()) == 1
    # the rest of main.cf is untouched
    assert sandbox.main_cf.read_text().startswith(sandbox.main_cf_text())


def test_change_existing_parameter(sandbox):
    result = sandbox.postconf({'name': 'smtpd_tls_security_level', 'value': 'encrypt'})
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': 'encrypt'}
    assert sandbox.explicit('smtpd_tls_security_level') == 'encrypt'
    assert 'smtpd_tls_security_level = may' not in sandbox.main_cf.read_text()


def test_same_value_is_a_no_op_and_writes_nothing(sandbox, postconf_calls):
    before = sandbox.snapshot()
    result = sandbox.postconf({'name': 'smtpd_tls_security_level', 'value': 'may'})
    assert result['changed'] is False
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': 'may'}
    assert sandbox.snapshot() == before
    assert postconf_calls.writes() == []


def test_set_then_repeat_is_idempotent(sandbox):
    assert sandbox.postconf({'name': 'smtp_tls_loglevel', 'value': '1'})['changed'] is True
    after_first = sandbox.snapshot()
    assert sandbox.postconf({'name': 'smtp_tls_loglevel', 'value': 1})['changed'] is False
    assert sandbox.snapshot() == after_first


LIST_SPELLINGS = [
    '127.0.0.0/8, [::1]/128',
    '127.0.0.0/8 [::1]/128',
    ' 127.0.0.0/8,[::1]/128 ',
    ['127.0.0.0/8', '[::1]/128'],
]


def test_list_value_equal_under_postfix_splitting_is_not_rewritten(sandbox, postconf_calls):
    # main.cf has "mynetworks = 127.0.0.0/8,[::1]/128"
    before = sandbox.snapshot()
    results, stats = sandbox.playbook([
        sandbox.task(POSTCONF, {'name': 'mynetworks', 'value': value}, ignore_errors=False)
        for value in LIST_SPELLINGS])
    assert [r['changed'] for r in results] == [False] * len(LIST_SPELLINGS), results
    assert stats['failures'] == 0
    assert sandbox.snapshot() == before
    assert postconf_calls.writes() == []


def test_list_with_other_items_is_rewritten_joined_with_comma_space(sandbox):
    result = sandbox.postconf({'name': 'mynetworks', 'value': ['127.0.0.0/8', '192.0.2.0/24']})
    assert result['changed'] is True
    assert 'mynetworks = 127.0.0.0/8, 192.0.2.0/24\n' in sandbox.main_cf.read_text()


def test_scalar_whitespace_difference_is_a_change(sandbox):
    result = sandbox.postconf({'name': 'smtpd_banner', 'value': '$myhostname ESMTP'})
    assert result['changed'] is True
    assert result['params']['smtpd_banner'] == {'before': '$myhostname  ESMTP',
                                                'after': '$myhostname ESMTP'}


def test_remove_parameter_then_no_op(sandbox):
    result = sandbox.postconf({'name': 'smtpd_tls_security_level', 'state': 'absent'})
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': None}
    assert sandbox.explicit('smtpd_tls_security_level') is None
    assert 'smtpd_tls_security_level' not in sandbox.main_cf.read_text()
    before = sandbox.snapshot()
    again = sandbox.postconf({'name': 'smtpd_tls_security_level', 'state': 'absent'})
    assert again['changed'] is False
    assert sandbox.snapshot() == before


def test_empty_value_is_set_explicitly(sandbox):
    result = sandbox.postconf({'name': 'relayhost', 'value': ''})
    assert result['changed'] is True
    assert result['params']['relayhost'] == {'before': None, 'after': ''}
    assert 'relayhost = \n' in sandbox.main_cf.read_text()
    assert sandbox.postconf({'name': 'relayhost', 'value': ''})['changed'] is False


def test_boolean_is_written_as_yes_no(sandbox):
    sandbox.postconf({'name': 'smtpd_tls_auth_only', 'value': True})
    assert sandbox.explicit('smtpd_tls_auth_only') == 'yes'


# --- params: several names, one read, one write ----------------------------------------

def test_params_batch_is_one_write(sandbox, postconf_calls):
    params = {
        'smtpd_tls_security_level': 'encrypt',      # changed
        'smtp_tls_security_level': 'may',           # new
        'smtp_tls_loglevel': '1',                   # new
        'mynetworks': ['127.0.0.0/8', '[::1]/128'],  # equal already
    }
    result = sandbox.postconf({'params': params})
    assert result['changed'] is True
    assert result['params'] == {
        'smtpd_tls_security_level': {'before': 'may', 'after': 'encrypt'},
        'smtp_tls_security_level': {'before': None, 'after': 'may'},
        'smtp_tls_loglevel': {'before': None, 'after': '1'},
        'mynetworks': {'before': '127.0.0.0/8,[::1]/128', 'after': '127.0.0.0/8,[::1]/128'},
    }
    writes = postconf_calls.writes()
    assert len(writes) == 1, writes
    assert 'mynetworks' not in writes[0]
    assert sandbox.explicit('smtpd_tls_security_level') == 'encrypt'
    assert sandbox.explicit('smtp_tls_security_level') == 'may'
    assert sandbox.explicit('smtp_tls_loglevel') == '1'
    assert sandbox.explicit('mynetworks') == '127.0.0.0/8,[::1]/128'

    before = sandbox.snapshot()
    again = sandbox.postconf({'params': params})
    assert again['changed'] is False
    assert sandbox.snapshot() == before
    assert len(postconf_calls.writes()) == 1


def test_params_absent_ignores_values_and_removes_in_one_write(sandbox, postconf_calls):
    result = sandbox.postconf({'params': {'smtpd_tls_security_level': None, 'smtpd_banner': 'ignored',
                                          'smtp_tls_security_level': None},
                               'state': 'absent'})
    assert result['changed'] is True
    assert result['params'] == {
        'smtpd_tls_security_level': {'before': 'may', 'after': None},
        'smtpd_banner': {'before': '$myhostname  ESMTP', 'after': None},
        'smtp_tls_security_level': {'before': None, 'after': None},
    }
    assert len(postconf_calls.writes()) == 1
    text = sandbox.main_cf.read_text()
    assert 'smtpd_tls_security_level' not in text and 'smtpd_banner' not in text


def test_check_mode_changes_nothing_and_reports_the_change(sandbox, postconf_calls):
    before = sandbox.snapshot()
    result = sandbox.postconf({'params': {'smtpd_tls_security_level': 'encrypt',
                                          'smtp_tls_security_level': 'encrypt'}},
                              check=True, diff=True)
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': 'encrypt'}
    assert sandbox.snapshot() == before  # bytes, inode and mtime; no temp file left
    assert postconf_calls.writes() == []
    assert postconf_calls.calls()  # it did read


def test_check_mode_removal_writes_nothing(sandbox, postconf_calls):
    before = sandbox.snapshot()
    result = sandbox.postconf({'name': 'smtpd_tls_security_level', 'state': 'absent'}, check=True)
    assert result['changed'] is True
    assert sandbox.snapshot() == before
    assert postconf_calls.writes() == []


def test_diff_shows_main_cf_lines(sandbox):
    result = sandbox.postconf({'params': {'smtpd_tls_security_level': 'encrypt',
                                          'smtp_tls_security_level': 'may',
                                          'mynetworks': '127.0.0.0/8, [::1]/128'}}, diff=True)
    diff = result['diff']
    assert diff['before'] == 'smtpd_tls_security_level = may\n'
    assert diff['after'] == ('smtp_tls_security_level = may\n'
                             'smtpd_tls_security_level = encrypt\n')
    assert diff['before_header'] == str(sandbox.main_cf)


def test_diff_of_removal(sandbox):
    result = sandbox.postconf({'name': 'smtpd_banner', 'state': 'absent'}, diff=True, check=True)
    assert result['diff']['before'] == 'smtpd_banner = $myhostname  ESMTP\n'
    assert result['diff']['after'] == ''


def test_playbook_check_diff_then_apply_then_idempotent(sandbox):
    # smtp_tls_policy_maps as main.cf has it already
    task = dict(sandbox.task(POSTCONF, {'params': {'smtpd_tls_security_level': 'encrypt',
                                                   'smtpd_tls_protocols': ['>=TLSv1.2'],
                                                   'smtp_tls_policy_maps': 'hash:${maps_d_dir}/tls-policy.map'}},
                             ignore_errors=False), name='TLS settings')
    before = sandbox.snapshot()
    results, stats = sandbox.playbook([task], check=True, diff=True)
    assert stats['changed'] == 1 and stats['failures'] == 0
    assert 'smtpd_tls_protocols = >=TLSv1.2\n' in results[0]['diff']['after']
    assert sandbox.snapshot() == before

    results, stats = sandbox.playbook([task])
    assert stats['changed'] == 1 and stats['failures'] == 0
    assert sandbox.explicit('smtpd_tls_protocols') == '>=TLSv1.2'

    results, stats = sandbox.playbook([task], diff=True)
    assert stats['changed'] == 0 and stats['failures'] == 0


# --- master.cf service overrides -------------------------------------------------------

def test_service_override_set_noop_remove(sandbox, postconf_calls):
    svc = '127.0.0.1:10026/inet'
    result = sandbox.postconf({'service': svc, 'name': 'smtpd_tls_security_level', 'value': 'encrypt'},
                              diff=True)
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'none', 'after': 'encrypt'}
    assert result['restart_required'] is False
    assert result['config_file'] == str(sandbox.master_cf)
    assert result['diff']['before'] == '127.0.0.1:10026/inet/smtpd_tls_security_level = none\n'
    assert result['diff']['after'] == '127.0.0.1:10026/inet/smtpd_tls_security_level = encrypt\n'
    assert '127.0.0.1:10026/inet/smtpd_tls_security_level = encrypt' in sandbox.real_postconf('-P')
    assert len(postconf_calls.writes()) == 1
    # main.cf is not touched by a service override
    assert sandbox.main_cf.read_text() == sandbox.main_cf_text()

    before = sandbox.snapshot()
    again = sandbox.postconf({'service': svc, 'name': 'smtpd_tls_security_level', 'value': 'encrypt'})
    assert again['changed'] is False
    assert sandbox.snapshot() == before

    removed = sandbox.postconf({'service': svc, 'name': 'content_filter', 'state': 'absent'})
    assert removed['changed'] is True
    assert removed['params']['content_filter'] == {'before': '', 'after': None}
    assert 'content_filter' not in sandbox.real_postconf('-P')
    assert sandbox.postconf({'service': svc, 'name': 'content_filter',
                             'state': 'absent'})['changed'] is False


def test_service_override_batch_is_one_write(sandbox, postconf_calls):
    result = sandbox.postconf({'service': 'submission/inet',
                               'params': {'smtpd_tls_security_level': 'encrypt',
                                          'smtpd_sasl_auth_enable': 'yes',
                                          'syslog_name': 'postfix/submission'}})
    assert result['changed'] is True
    assert len(postconf_calls.writes()) == 1
    overrides = sandbox.real_postconf('-P')
    assert 'submission/inet/smtpd_sasl_auth_enable = yes' in overrides
    assert 'submission/inet/syslog_name = postfix/submission' in overrides


def test_service_override_list_given_as_text_is_written_without_blanks(sandbox, postconf_calls):
    """A list parameter's override given as "a, b" (as postconf -P and postconf_info show it)
    is the list a,b: it used to be refused for its blanks, even when it was already there."""
    svc = 'submission/inet'
    value = 'permit_sasl_authenticated, reject'
    result = sandbox.postconf({'service': svc, 'name': 'smtpd_client_restrictions', 'value': value})
    assert result['changed'] is True, result
    assert '%s/smtpd_client_restrictions = permit_sasl_authenticated,reject' % svc in sandbox.real_postconf('-P')
    writes = len(postconf_calls.writes())
    for again in (value, 'permit_sasl_authenticated,reject', ['permit_sasl_authenticated', 'reject']):
        result = sandbox.postconf({'service': svc, 'name': 'smtpd_client_restrictions', 'value': again})
        assert result['changed'] is False, (again, result)
    assert len(postconf_calls.writes()) == writes


def test_service_override_check_mode(sandbox, postconf_calls):
    before = sandbox.snapshot()
    result = sandbox.postconf({'service': 'submission/inet', 'name': 'smtpd_tls_security_level',
                               'value': 'encrypt'}, check=True, diff=True)
    assert result['changed'] is True
    assert result['diff']['after'] == 'submission/inet/smtpd_tls_security_level = encrypt\n'
    assert sandbox.snapshot() == before
    assert postconf_calls.writes() == []


def test_nonexistent_service_fails_clearly(sandbox, postconf_calls):
    before = sandbox.snapshot()
    result = sandbox.postconf({'service': '127.0.0.1:10099/inet', 'name': 'smtpd_tls_security_level',
                               'value': 'none'})
    assert_failed(result, 'service 127.0.0.1:10099/inet not found', 'master.cf',
                  '127.0.0.1:10026/inet')
    assert sandbox.snapshot() == before
    assert postconf_calls.writes() == []


def test_unknown_name_fails_with_did_you_mean(sandbox, postconf_calls):
    before = sandbox.snapshot()
    result = sandbox.postconf({'name': 'smtp_tls_polcy_maps', 'value': 'hash:/etc/postfix/tls_policy'})
    assert_failed(result, "unknown Postfix parameter 'smtp_tls_polcy_maps'",
                  "did you mean 'smtp_tls_policy_maps'", 'allow_unknown')
    assert sandbox.snapshot() == before
    assert postconf_calls.writes() == []


def test_per_transport_parameter_of_a_service_with_a_dash_is_set_and_removed(sandbox):
    # amavisd-new's README: smtp-amavis_destination_recipient_limit = 1 (postconf knows the name
    # because master.cf has the smtp-amavis transport)
    sandbox.real_postconf('-M', 'smtp-amavis/unix=smtp-amavis unix - - n - 2 smtp')
    args = {'name': 'smtp-amavis_destination_recipient_limit', 'value': '1'}
    result = sandbox.postconf(args)
    assert result['changed'] is True, result
    assert sandbox.real_postconf('-h', 'smtp-amavis_destination_recipient_limit').strip() == '1'
    assert sandbox.postconf(args)['changed'] is False
    result = sandbox.postconf({'name': 'smtp-amavis_destination_recipient_limit', 'state': 'absent'})
    assert result['changed'] is True and 'smtp-amavis_destination' not in sandbox.main_cf.read_text()


def test_a_parameter_a_master_cf_override_references_is_known(sandbox):
    # Debian's master.cf template: submission -o smtpd_client_restrictions=$mua_client_restrictions;
    # the user-defined parameter is what the operator sets (before: refused as unknown, with the
    # hint to set smtpd_client_restrictions globally, which would reject inbound mail)
    sandbox.real_postconf('-M', 'submission/inet=submission inet n - y - - smtpd')
    sandbox.real_postconf('-P', 'submission/inet/smtpd_client_restrictions=$mua_client_restrictions')
    result = sandbox.postconf({'name': 'mua_client_restrictions', 'value': 'permit_sasl_authenticated, reject'})
    assert result['changed'] is True, result
    assert sandbox.real_postconf('-h', 'mua_client_restrictions').strip() == 'permit_sasl_authenticated, reject'


@pytest.mark.parametrize('args', [{'name': 'smtpd_banner', 'value': 'costs $$ 5'},
                                  {'name': 'smtpd_banner', 'state': 'absent'}])
def test_a_value_postfix_cannot_expand_can_be_repaired_or_removed(sandbox, args):
    # "costs $ 5" makes every postconf listing fail ("macro processing error"), and Postfix's
    # daemons with it; the task that repairs or removes it must not fail on it too
    sandbox.main_cf.write_text(sandbox.main_cf_text() + 'smtpd_banner = costs $ 5\n')
    result = sandbox.postconf(args)
    assert result['changed'] is True and not result.get('failed'), result
    assert sandbox.real_postconf('-h', 'smtpd_banner').strip() in ('costs $$ 5', '$myhostname ESMTP $mail_name')


def test_unknown_service_override_name_fails(sandbox):
    result = sandbox.postconf({'service': 'submission/inet', 'name': 'smtpd_tls_securty_level',
                               'value': 'encrypt'})
    assert_failed(result, "did you mean 'smtpd_tls_security_level'", 'submission/inet')


def test_unknown_removal_of_unset_name_fails(sandbox):
    result = sandbox.postconf({'name': 'smtpd_tls_securty_level', 'state': 'absent'})
    assert_failed(result, "did you mean 'smtpd_tls_security_level'")


def test_removal_of_set_unknown_name_is_accepted(sandbox):
    sandbox.main_cf.write_text(sandbox.main_cf_text() + 'smtpd_tls_securty_level = encrypt\n')
    result = sandbox.postconf({'name': 'smtpd_tls_securty_level', 'state': 'absent'})
    assert result['changed'] is True
    assert 'securty' not in sandbox.main_cf.read_text()


LEGITIMATE = [
    ('smtp_tls_policy_maps', 'lmdb:/etc/postfix/tls_policy'),
    ('tls_high_cipherlist', 'ECDHE+AESGCM:!aNULL'),
    ('maillog_file', '/dev/stdout'),
    ('lmdb_map_size', '16777216'),                        # dynamically loaded map type
    ('relay_destination_concurrency_limit', '5'),         # derived from master.cf "relay"
    ('smtpd_tls_mandatory_protocols', '>=TLSv1.2'),
]


def test_legitimate_names_are_accepted(sandbox):
    results, stats = sandbox.playbook(
        [sandbox.task(POSTCONF, {'name': name, 'value': value}) for name, value in LEGITIMATE], check=True)
    for (name, dummy), result in zip(LEGITIMATE, results):
        assert result.get('failed') is not True, (name, result)
        assert result['changed'] is True, (name, result)
    assert stats['failures'] == 0


def test_referenced_user_defined_name_is_accepted(sandbox):
    # maps_d_dir is referenced by smtp_tls_policy_maps = hash:${maps_d_dir}/...
    result = sandbox.postconf({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d/tls'})
    assert result['changed'] is True
    assert sandbox.explicit('maps_d_dir') == '/etc/postfix/maps.d/tls'


def test_name_referenced_in_the_same_call_is_accepted(sandbox):
    sandbox.main_cf.write_text('compatibility_level = 3.6\n')
    result = sandbox.postconf({'params': {
        'smtp_tls_policy_maps': 'hash:${maps_d_dir}/hash-tls-policy.map',
        'maps_d_dir': '/etc/postfix/maps.d'}})
    assert result['changed'] is True
    assert sandbox.explicit('maps_d_dir') == '/etc/postfix/maps.d'


def test_unreferenced_user_defined_name_needs_allow_unknown(sandbox):
    sandbox.main_cf.write_text('compatibility_level = 3.6\n')
    result = sandbox.postconf({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d'})
    assert_failed(result, "unknown Postfix parameter 'maps_d_dir'")
    assert sandbox.main_cf.read_text() == 'compatibility_level = 3.6\n'

    result = sandbox.postconf({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d',
                               'allow_unknown': True})
    assert result['changed'] is True
    assert 'maps_d_dir = /etc/postfix/maps.d\n' in sandbox.main_cf.read_text()
    # postconf -n hides unused parameters; the module still sees the value
    before = sandbox.snapshot()
    again = sandbox.postconf({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d',
                              'allow_unknown': True})
    assert again['changed'] is False
    assert sandbox.snapshot() == before


def test_restriction_class_is_a_known_name(sandbox):
    result = sandbox.postconf({'params': {'smtpd_restriction_classes': 'tls_only',
                                          'tls_only': 'reject_plaintext_session'}})
    assert result['changed'] is True
    assert sandbox.explicit('tls_only') == 'reject_plaintext_session'


# --- refused input: nothing runs, nothing changes ------------------------------------

# Each case: task arguments and fragments the error message must contain.
REFUSED = [
    ({'name': 'smtp_tls_security_level', 'value': 'may\nsmtpd_tls_security_level = none'},
     ['newline', 'smtp_tls_security_level']),
    ({'name': 'smtp_tls_security_level', 'value': 'may\r'},
     ['carriage return', 'smtp_tls_security_level']),
    ({'name': 'smtp_tls_security_level', 'value': 'may\x00'},
     ['NUL', 'smtp_tls_security_level']),
    ({'name': 'smtp_tls_security_level', 'value': ['may', 'x\ny']},
     ['newline', 'smtp_tls_security_level']),
    ({'params': {'smtp_tls_security_level': 'encrypt',
                 'smtpd_tls_security_level': 'encrypt\nx = y'}},
     ['newline', 'smtpd_tls_security_level']),
    ({'name': '-smtp_tls_security_level', 'value': 'encrypt'},
     ['invalid parameter name', 'letters, digits']),
    ({'name': 'smtp_tls_security_level=x', 'value': 'encrypt'},
     ['invalid parameter name', 'letters, digits']),
    ({'name': 'a b', 'value': 'encrypt'}, ['invalid parameter name']),
    ({'name': 'smtp_tls_security_level\n', 'value': 'encrypt'}, ['invalid parameter name']),
    ({'params': {'smtpd_tls_security_level': None, 'smtp_tls_loglevel': '1'}},
     ['smtpd_tls_security_level', 'null', 'state=absent']),
    ({'params': {'smtp_tls_loglevel': {'nested': 1}}}, ['smtp_tls_loglevel', 'expected a string']),
    ({'name': 'smtpd_tls_security_level'}, ['value is required']),
    ({'name': 'a', 'value': 'b', 'params': {'c': 'd'}}, ['mutually exclusive']),
    ({'service': 'submission', 'name': 'smtpd_tls_security_level', 'value': 'none'},
     ['SERVICE/TYPE']),
    ({'service': 'submission/tcp', 'name': 'smtpd_tls_security_level', 'value': 'none'},
     ["unknown service type 'tcp'"]),
    ({'service': 'submission/inet', 'name': 'smtpd_banner', 'value': 'a b'},
     ['whitespace', 'smtpd_banner']),
    ({'name': 'smtpd_banner', 'value': '$(touch x)'},
     ['smtpd_banner', "'$(touch x)'", 'attribute name syntax error', 'letters, digits']),
    ({'name': 'smtp_tls_policy_maps', 'value': ['hash:${maps_d_dir/policy']},
     ['smtp_tls_policy_maps', 'truncated']),
    ({'params': {'smtpd_tls_security_level': 'encrypt', 'smtpd_banner': 'costs $ 5'}},
     ['smtpd_banner', 'empty macro name', '"$$"']),
    ({'service': 'submission/inet', 'name': 'smtpd_tls_security_level', 'value': '${level'},
     ['smtpd_tls_security_level', 'truncated']),
    ({'name': 'smtpd_banner', 'value': 'gw\x0cx'}, ['smtpd_banner', 'control character']),
    ({'name': 'smtpd_banner', 'value': 'gw\x0bx'}, ['smtpd_banner', 'control character']),
]


def test_refused_input_runs_nothing_and_changes_nothing(sandbox, postconf_calls):
    """Bad names, values and specs are refused before postconf runs at all."""
    before = sandbox.snapshot()
    tasks = [sandbox.task(POSTCONF, args) for args, dummy in REFUSED]
    results, stats = sandbox.playbook(tasks)
    assert len(results) == len(REFUSED)
    for (args, fragments), result in zip(REFUSED, results):
        assert result.get('failed') is True, (args, result)
        for fragment in fragments:
            assert fragment in result['msg'], (args, fragment, result['msg'])
    assert sandbox.snapshot() == before  # byte-identical, same inode and mtime
    assert postconf_calls.calls() == []


# --- $ macros: the module refuses exactly what Postfix cannot expand -----------------

# Checked one by one against the real postconf below; each is a value of
# smtpd_banner (a parameter Postfix expands when it reads main.cf).
MACRO_CORPUS = [
    'hash:${maps_d_dir}/x', '$myhostname ESMTP $mail_name', '${config_directory}/tls',
    '$(name)', '${ name }', '$$', '$$(touch x)', 'a$$b', '${a}}', '$(a))', '$_',
    '${name?x}', '${name:x}', '${name?{x}:{y}}', '${name?{x}:y:z}', '${a? {x} : {y} }',
    '${a?(}', '$(a?{x}:{y})', '${{a}=={b}}', '${{a} == {b}?{x}:{y}}', '${ {1}=={2}}',
    '${{3}==level {3} ? {a} : {b}}', '${{3.6.1} <level {3}}', '${{ 3.6} <level {3.6}}',
    '${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}',
    '$(touch x)', '${unclosed', '$(a', '$(a}', '${a?${b}', '$', 'x$', 'a $ b', '$-x',
    '${}', '$\u00e9', '${name x}', '${a(}', '${a)}', '$((a))', '${a?$(c d)}',
    '${a?{x}:{$(c d)}}', '${a?$}', '${name?{x} z}', '${name:{x}z}', '${a?{x}:{y}:{z}}',
    '${{a}?{b}}', '${{1}}', '${{a}==b}', '${{1}!=LEVEL{2}}', '${{1}==}', '${{1}=={2} x}',
    '${{a} <level {3.6}}', '${{3.} <level {3}}', '${{99999999999999999999}<{1}}',
]
# postconf's own display warnings about {} in list-like text are not macro errors.
_NOT_MACRO_WARNINGS = ('undefined parameter', 'unused parameter', "missing '}'",
                       "syntax error after '}'")


def _postconf_refuses(confdir, value):
    confdir.mkdir()
    (confdir / 'master.cf').write_text('')
    (confdir / 'main.cf').write_text('compatibility_level = 3.6\nsmtpd_banner = %s\n' % value)
    proc = subprocess.run([REAL_POSTCONF, '-c', str(confdir), '-h', 'smtpd_banner'],
                          capture_output=True, text=True, check=False)
    warnings = [line for line in proc.stderr.splitlines()
                if not any(w in line for w in _NOT_MACRO_WARNINGS)]
    return proc.returncode != 0 or bool(warnings), proc.stderr


def _random_macro_values(count, seed):
    import random
    tokens = ['$', '$', '$$', '{', '}', '(', ')', '?', ':', 'a', 'b_1', ' ', '==', '<',
              '<level', '3.6', '1', '${', '$(', '${a}', '$a', '${{1}=={2}', '?{', '}:{',
              'level', 'x']
    rng = random.Random(seed)
    values = []
    while len(values) < count:
        value = ''.join(rng.choice(tokens) for dummy in range(rng.randint(1, 8))).strip()
        if value:
            values.append(value)
    return values


def test_macro_check_agrees_with_the_real_postconf(tmp_path):
    """Our mac_parse/mac_expand model and postconf agree, value by value."""
    values = MACRO_CORPUS + _random_macro_values(150, seed=3)
    # postconf sleeps a second before it exits on a fatal error: run them side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        verdicts = list(pool.map(lambda item: _postconf_refuses(tmp_path / str(item[0]), item[1]),
                                 enumerate(values)))
    disagree = []
    for value, (refused, stderr) in zip(values, verdicts):
        reason = macro_syntax_error(value)
        if refused != (reason is not None):
            disagree.append('%r: postconf %s (%s), module %s'
                            % (value, 'refuses' if refused else 'accepts', stderr.strip(),
                               reason or 'accepts'))
    assert not disagree, '\n'.join(disagree)


def test_expandable_macro_values_are_written_and_idempotent(sandbox):
    # "${ {" rather than "${{", which Ansible would take for a Jinja2 expression.
    values = ['${ {$compatibility_level} <level {3.6} ? {md5} : {sha256}}',
              '$myhostname ESMTP ${mail_name?{$mail_name}:{Postfix}} $$5']
    tasks = []
    for value in values:
        task = sandbox.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}, ignore_errors=False)
        tasks += [task, task]
    results, dummy = sandbox.playbook(tasks)
    assert [r['changed'] for r in results] == [True, False] * len(values), results
    assert sandbox.explicit('smtpd_banner') == values[-1]
    sandbox.real_postconf()      # Postfix reads the whole main.cf without a fatal error


# --- how main.cf is read: "\n" only, any bytes ------------------------------------------

@pytest.mark.parametrize('char', ['\x85', '\u2028', '\u2029'])
def test_unicode_line_separators_in_a_value_round_trip(sandbox, char):
    value = 'gw%srelayhost = [evil.example]' % char
    task = sandbox.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}, ignore_errors=False)
    results, dummy = sandbox.playbook([task, task])
    assert [r['changed'] for r in results] == [True, False], results
    assert sandbox.real_postconf('-h', 'smtpd_banner').rstrip('\n') == value
    assert sandbox.real_postconf('-n', 'relayhost') == ''


def test_continuation_lines_are_read_as_postfix_reads_them(sandbox):
    sandbox.main_cf.write_text(sandbox.main_cf_text() + 'smtpd_banner = $myhostname\n\tESMTP\n')
    result = sandbox.postconf({'name': 'smtpd_banner', 'value': '$myhostname\tESMTP'})
    assert result['changed'] is False, result
    result = sandbox.postconf({'name': 'smtpd_banner', 'value': '$myhostname ESMTP'})
    assert result['changed'] is True
    assert result['params']['smtpd_banner']['before'] == '$myhostname\tESMTP'


def test_main_cf_that_is_not_utf8(sandbox):
    latin1 = b'# Gr\xfc\xdfe aus M\xfcnchen\nmyorigin = m\xfcnchen.example\n'
    sandbox.main_cf.write_bytes(sandbox.main_cf.read_bytes() + latin1)
    result = sandbox.postconf({'params': {'smtpd_banner': 'gateway', 'myorigin': 'muenchen.example'}},
                              diff=True)
    assert result['changed'] is True, result
    assert result['params']['myorigin'] == {'before': 'm\\xfcnchen.example',
                                            'after': 'muenchen.example'}
    assert 'myorigin = m\\xfcnchen.example' in result['diff']['before']
    data = sandbox.main_cf.read_bytes()
    assert b'# Gr\xfc\xdfe aus M\xfcnchen\n' in data
    assert sandbox.explicit('smtpd_banner') == 'gateway'
    again = sandbox.postconf({'params': {'smtpd_banner': 'gateway', 'myorigin': 'muenchen.example'}})
    assert again['changed'] is False, again
    assert sandbox.main_cf.read_bytes() == data


def test_missing_config_dir(sandbox):
    missing = sandbox.tmp / 'no-such-postfix'
    result = sandbox.postconf({'name': 'smtp_tls_security_level', 'value': 'may',
                               'config_dir': str(missing)})
    assert_failed(result, str(missing), 'does not exist')
    assert not missing.exists()


def test_config_dir_without_main_cf(sandbox):
    empty = sandbox.tmp / 'empty'
    empty.mkdir()
    result = sandbox.postconf({'name': 'smtp_tls_security_level', 'value': 'may',
                               'config_dir': str(empty)})
    assert_failed(result, str(empty / 'main.cf'), 'does not exist')
    assert os.listdir(empty) == []


# --- restart versus reload ----------------------------------------------------------

def test_restart_required_for_inet_interfaces(sandbox):
    result = sandbox.postconf({'name': 'inet_interfaces', 'value': ['127.0.0.1', '::1']})
    assert result['changed'] is True
    assert result['restart_required'] is True
    assert sandbox.explicit('inet_interfaces') == '127.0.0.1, ::1'
    again = sandbox.postconf({'name': 'inet_interfaces', 'value': '127.0.0.1,::1'})
    assert again['changed'] is False
    assert again['restart_required'] is False


def test_restart_required_in_batch_and_not_for_tls(sandbox):
    result = sandbox.postconf({'params': {'smtpd_tls_security_level': 'encrypt',
                                          'inet_protocols': 'ipv4'}}, check=True)
    assert result['restart_required'] is True
    result = sandbox.postconf({'params': {'smtpd_tls_security_level': 'encrypt'}}, check=True)
    assert result['restart_required'] is False


# --- documentation ---------------------------------------------------------------------

def test_ansible_doc_renders(sandbox):
    proc = subprocess.run([tool('ansible-doc'), POSTCONF], capture_output=True, text=True,
                          env=sandbox.environ(), check=False)
    assert proc.returncode == 0, proc.stderr
    assert 'ERROR' not in proc.stderr and 'WARNING' not in proc.stderr, proc.stderr
    assert 'restart_required' in proc.stdout
    assert 'allow_unknown' in proc.stdout
