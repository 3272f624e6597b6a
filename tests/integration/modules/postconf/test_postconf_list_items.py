# Copyright (c) 2026, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.postconf with list_items: list items added or removed, the rest kept.

Against the host's real postconf, in a sandbox (tests/integration/conftest.py) whose
main.cf lists one table in smtp_tls_policy_maps. What Postfix then reads is asked from
postconf itself (postconf -n, -h, -P).
"""

import pytest

from postfix_sandbox import assert_failed, needs_postfix

pytestmark = needs_postfix

TABLE = 'hash:/etc/postfix/tls_policy'


def test_an_item_is_added_at_the_end_and_the_others_kept(sandbox, postconf_calls):
    first = sandbox.explicit('smtp_tls_policy_maps')
    result = sandbox.postconf({'name': 'smtp_tls_policy_maps', 'value': TABLE, 'list_items': 'present'}, diff=True)
    assert result['changed'] is True
    assert result['params']['smtp_tls_policy_maps'] == {'before': first, 'after': '%s, %s' % (first, TABLE)}
    assert sandbox.explicit('smtp_tls_policy_maps') == '%s, %s' % (first, TABLE)
    assert result['diff']['before'] == 'smtp_tls_policy_maps = %s\n' % first
    assert result['diff']['after'] == 'smtp_tls_policy_maps = %s, %s\n' % (first, TABLE)
    assert len(postconf_calls.writes()) == 1
    # again, and with the item spelt as a list: nothing to add, nothing written
    before = sandbox.snapshot()
    for value in (TABLE, [TABLE], ' %s ' % TABLE):
        again = sandbox.postconf({'name': 'smtp_tls_policy_maps', 'value': value, 'list_items': 'present'})
        assert again['changed'] is False, again
    assert sandbox.snapshot() == before
    assert len(postconf_calls.writes()) == 1


def test_an_unset_list_starts_from_postfix_default(sandbox):
    default = sandbox.real_postconf('-d', '-h', 'mydestination').rstrip('\n')
    assert default and sandbox.explicit('mydestination') is None
    result = sandbox.postconf({'name': 'mydestination', 'value': 'example.org', 'list_items': 'present'})
    assert result['changed'] is True
    assert result['params']['mydestination'] == {'before': None, 'after': '%s, example.org' % default}
    assert sandbox.explicit('mydestination') == '%s, example.org' % default


def test_an_item_the_default_has_writes_nothing(sandbox, postconf_calls):
    """localhost is in mydestination's default: the default is not made explicit."""
    assert 'localhost' in sandbox.real_postconf('-d', '-h', 'mydestination').replace(',', ' ').split()
    before = sandbox.snapshot()
    result = sandbox.postconf({'name': 'mydestination', 'value': 'localhost', 'list_items': 'present'})
    assert result['changed'] is False
    assert result['params']['mydestination'] == {'before': None, 'after': None}
    assert sandbox.snapshot() == before and postconf_calls.writes() == []


def test_a_default_that_depends_on_the_compatibility_level_is_the_list_it_gives(sandbox):
    # smtpd_relay_restrictions' default is ${{$compatibility_level} <level {1} ? {} : {permit_mynetworks,
    # permit_sasl_authenticated, defer_unauth_destination}}: one opaque item as written; removing
    # permit_mynetworks must remove it from what Postfix applies (it was a silent no-op)
    assert '${{' in sandbox.real_postconf('-d', '-h', 'smtpd_relay_restrictions')
    assert sandbox.explicit('smtpd_relay_restrictions') is None
    result = sandbox.postconf({'name': 'smtpd_relay_restrictions', 'value': 'permit_mynetworks',
                               'list_items': 'absent'})
    assert result['changed'] is True, result
    assert sandbox.real_postconf('-x', '-h', 'smtpd_relay_restrictions').strip() == \
        'permit_sasl_authenticated, defer_unauth_destination'
    # an item the effective list has is not added twice
    assert sandbox.postconf({'name': 'smtpd_relay_restrictions', 'value': 'defer_unauth_destination',
                             'list_items': 'present'})['changed'] is False


def test_items_are_removed_and_the_rest_kept(sandbox):
    sandbox.postconf({'name': 'smtpd_tls_exclude_ciphers', 'value': 'aNULL eNULL, RC4  MD5'})
    result = sandbox.postconf({'name': 'smtpd_tls_exclude_ciphers', 'value': ['RC4', 'eNULL', '3DES'],
                               'list_items': 'absent'})
    assert result['changed'] is True
    assert sandbox.explicit('smtpd_tls_exclude_ciphers') == 'aNULL, MD5'
    assert sandbox.postconf({'name': 'smtpd_tls_exclude_ciphers', 'value': 'RC4',
                             'list_items': 'absent'})['changed'] is False
    # the last items gone: explicitly empty, not removed (that is state=absent)
    emptied = sandbox.postconf({'name': 'smtpd_tls_exclude_ciphers', 'value': 'aNULL, MD5', 'list_items': 'absent'})
    assert emptied['params']['smtpd_tls_exclude_ciphers'] == {'before': 'aNULL, MD5', 'after': ''}
    assert sandbox.explicit_main_cf()['smtpd_tls_exclude_ciphers'] == ''


def test_a_milter_with_its_settings_separated_otherwise_is_the_same_item(sandbox, postconf_calls):
    """Postfix splits a braced milter's settings on commas and blanks alike (milter.c): adding
    the same milter spelt "a,b" (as a master.cf override must be) would run it twice per message."""
    milter = '{ inet:127.0.0.1:8891, default_action=accept }'
    sandbox.postconf({'name': 'smtpd_milters', 'value': milter})
    writes = len(postconf_calls.writes())
    before = sandbox.snapshot()
    for spelt in ('{ inet:127.0.0.1:8891,default_action=accept }', '{inet:127.0.0.1:8891 default_action=accept}'):
        result = sandbox.postconf({'name': 'smtpd_milters', 'value': spelt, 'list_items': 'present'})
        assert result['changed'] is False, result
    assert sandbox.snapshot() == before and len(postconf_calls.writes()) == writes
    assert sandbox.explicit('smtpd_milters') == milter
    # and removed whatever the spelling
    sandbox.postconf({'name': 'smtpd_milters', 'value': 'inet:127.0.0.1:11332', 'list_items': 'present'})
    result = sandbox.postconf({'name': 'smtpd_milters', 'value': '{inet:127.0.0.1:8891,default_action=accept}',
                               'list_items': 'absent'})
    assert result['changed'] is True
    assert sandbox.explicit('smtpd_milters') == 'inet:127.0.0.1:11332'


def test_lmtp_and_tlsproxy_lists_are_lists(sandbox, postconf_calls):
    """*_security_options and *_exclude_ciphers are lists for every client and server: the
    lmtp_ and tlsproxy_ names were compared as strings ("Postfix does not read ... as a list")."""
    sandbox.postconf({'name': 'lmtp_sasl_security_options', 'value': 'noplaintext noanonymous'})
    writes = len(postconf_calls.writes())
    result = sandbox.postconf({'name': 'lmtp_sasl_security_options', 'value': 'noplaintext, noanonymous'})
    assert result['changed'] is False and len(postconf_calls.writes()) == writes
    result = sandbox.postconf({'name': 'tlsproxy_tls_exclude_ciphers', 'value': 'RC4', 'list_items': 'present'})
    assert result['changed'] is True, result
    # the default is $smtpd_tls_exclude_ciphers: the list starts from what it gives
    assert sandbox.real_postconf('-x', '-h', 'tlsproxy_tls_exclude_ciphers').rstrip('\n').endswith('RC4')


def test_check_mode_writes_nothing_and_reports_the_list_it_would_write(sandbox, postconf_calls):
    first = sandbox.explicit('smtp_tls_policy_maps')
    before = sandbox.snapshot()
    result = sandbox.postconf({'name': 'smtp_tls_policy_maps', 'value': TABLE, 'list_items': 'present'},
                              check=True, diff=True)
    assert result['changed'] is True
    assert result['params']['smtp_tls_policy_maps']['after'] == '%s, %s' % (first, TABLE)
    assert result['diff']['after'] == 'smtp_tls_policy_maps = %s, %s\n' % (first, TABLE)
    assert sandbox.snapshot() == before and postconf_calls.writes() == []


def test_several_parameters_in_one_write(sandbox, postconf_calls):
    result = sandbox.postconf({'params': {'smtp_tls_policy_maps': TABLE, 'smtpd_tls_exclude_ciphers': ['aNULL']},
                               'list_items': 'present'})
    assert result['changed'] is True and len(postconf_calls.writes()) == 1
    assert sandbox.explicit('smtpd_tls_exclude_ciphers') == 'aNULL'
    assert sandbox.explicit('smtp_tls_policy_maps').endswith(', ' + TABLE)


def test_a_service_override_starts_from_main_cf_and_is_written_without_blanks(sandbox):
    """submission/inet has no override: its list starts from main.cf's value (what it uses
    now), and the override is written "a,b" (postconf -P cannot write blanks)."""
    sandbox.postconf({'name': 'smtpd_tls_exclude_ciphers', 'value': 'aNULL, eNULL'})
    result = sandbox.postconf({'service': 'submission/inet', 'name': 'smtpd_tls_exclude_ciphers',
                               'value': ['RC4', 'MD5'], 'list_items': 'present'})
    assert result['changed'] is True
    assert 'submission/inet/smtpd_tls_exclude_ciphers = aNULL,eNULL,RC4,MD5' in sandbox.real_postconf('-P')
    assert sandbox.explicit('smtpd_tls_exclude_ciphers') == 'aNULL, eNULL'
    removed = sandbox.postconf({'service': 'submission/inet', 'name': 'smtpd_tls_exclude_ciphers',
                                'value': 'eNULL, 3DES', 'list_items': 'absent'})
    assert removed['params']['smtpd_tls_exclude_ciphers'] == {'before': 'aNULL,eNULL,RC4,MD5', 'after': 'aNULL,RC4,MD5'}
    # a whole list for an override (list_items=exact) is written without blanks too
    exact = sandbox.postconf({'service': 'submission/inet', 'name': 'smtpd_tls_exclude_ciphers',
                              'value': ['aNULL', 'RC4']})
    assert exact['changed'] is True
    assert 'submission/inet/smtpd_tls_exclude_ciphers = aNULL,RC4' in sandbox.real_postconf('-P')


@pytest.mark.parametrize('args, fragments', [
    ({'name': 'smtpd_tls_security_level', 'value': 'encrypt', 'list_items': 'present'},
     ['list_items=present needs a list parameter: Postfix does not read smtpd_tls_security_level as a list']),
    ({'params': {'smtp_tls_policy_maps': TABLE, 'smtp_tls_loglevel': '1'}, 'list_items': 'absent'},
     ['Postfix does not read smtp_tls_loglevel as a list']),
    ({'name': 'smtp_tls_policy_maps', 'state': 'absent', 'list_items': 'absent'},
     ['list_items=absent applies to state=present']),
    ({'name': 'smtp_tls_policy_maps', 'value': ' , ', 'list_items': 'present'},
     ['value of smtp_tls_policy_maps names no list item to make present']),
])
def test_refused_before_anything_is_written(sandbox, postconf_calls, args, fragments):
    before = sandbox.snapshot()
    assert_failed(sandbox.postconf(args), *fragments)
    assert sandbox.snapshot() == before and postconf_calls.writes() == []
