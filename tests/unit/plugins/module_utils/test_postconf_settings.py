# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the pure steps of module_utils/postconf_settings (the postconf module and
tls_policy's main_cf): value text, unknown names, comparison, diff. The writes are tested
against the real postconf (tests/integration/modules/postconf, tls_policy/test_tls_policy_main_cf.py)."""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils import postconf_settings as ps


@pytest.mark.parametrize('raw, text', [
    ('encrypt', 'encrypt'),
    (True, 'yes'),
    (False, 'no'),
    (3, '3'),
    (['hash:/a', 'hash:/b'], 'hash:/a, hash:/b'),
    ('', ''),
])
def test_setting_text_main_cf(raw, text):
    assert ps.setting_text('smtp_tls_policy_maps', raw) == (text, None)


def test_setting_text_override_lists_have_no_blanks():
    assert ps.setting_text('smtpd_recipient_restrictions', ['permit_mynetworks', 'reject'], override=True) == \
        ('permit_mynetworks,reject', None)
    # a list parameter's value given as text, as postconf_info returns it
    assert ps.setting_text('smtpd_recipient_restrictions', 'permit_mynetworks, reject', override=True) == \
        ('permit_mynetworks,reject', None)


@pytest.mark.parametrize('name, raw, fragment', [
    ('smtp tls', 'x', "'smtp tls'"),
    ('smtp_tls_security_level', None, 'value of smtp_tls_security_level is null'),
    ('smtp_tls_policy_maps', 'hash:/a\nsmtpd_banner = x', 'smtp_tls_policy_maps'),
    ('smtp_tls_policy_maps', {'a': 1}, 'value of smtp_tls_policy_maps'),
])
def test_setting_text_refusals_name_the_value(name, raw, fragment):
    text, reason = ps.setting_text(name, raw)
    assert text is None and fragment in reason


def test_setting_text_items_must_name_one():
    assert ps.setting_text('mynetworks', ' , ', items='present') == \
        (None, 'value of mynetworks names no list item to make present')


def test_unknown_names_hint_and_remedy():
    known = {'smtp_tls_security_level', 'smtpd_tls_security_level'}
    [message] = ps.unknown_name_errors({'smtp_tls_securty_level': 'encrypt'}, {}, known, {})
    assert "'smtp_tls_securty_level' for main.cf" in message and "did you mean 'smtp_tls_security_level'" in message
    assert 'Set allow_unknown=true for a user-defined parameter' in message
    [message] = ps.unknown_name_errors({'x_y': '1'}, {}, known, {}, remedy='Set it elsewhere')
    assert 'Set it elsewhere for a user-defined parameter' in message


def test_unknown_names_referenced_or_removed_are_accepted():
    known = {'smtpd_client_restrictions', 'smtpd_restriction_classes'}
    explicit = {'smtpd_client_restrictions': '$mua_client_restrictions'}
    assert ps.unknown_name_errors({'mua_client_restrictions': 'permit'}, explicit, known, explicit) == []
    # removing a set name is always allowed
    assert ps.unknown_name_errors({'junk': None}, {'junk': '1'}, known, {'junk': '1'}) == []
    # a restriction class is a parameter the user defines
    desired = {'smtpd_restriction_classes': 'strict', 'strict': 'reject'}
    assert ps.unknown_name_errors(desired, {}, known, {}) == []
    # master.cf -o overrides are read only when a name is not accepted otherwise
    calls = []

    def overrides():
        calls.append(1)
        return ['$submission_client_restrictions']

    assert ps.unknown_name_errors({'submission_client_restrictions': 'permit'}, {}, known, {},
                                  override_values=overrides) == []
    assert calls == [1]
    assert ps.unknown_name_errors({'smtpd_client_restrictions': 'permit'}, {}, known, {},
                                  override_values=overrides) == []
    assert calls == [1]


def test_compare_settings_lists_item_by_item_and_removal():
    current = {'smtp_tls_policy_maps': 'hash:/a,hash:/b', 'smtp_tls_security_level': 'may', 'junk': '1'}
    params, changes = ps.compare_settings(
        {'smtp_tls_policy_maps': 'hash:/a, hash:/b', 'smtp_tls_security_level': 'encrypt'}, current,
        as_list={'smtp_tls_policy_maps'})
    assert changes == {'smtp_tls_security_level': 'encrypt'}
    assert params['smtp_tls_policy_maps'] == {'before': 'hash:/a,hash:/b', 'after': 'hash:/a,hash:/b'}
    params, changes = ps.compare_settings({'junk': None}, current, present=False)
    assert changes == {'junk': None} and params['junk'] == {'before': '1', 'after': None}


def test_settings_diff_only_changed_lines():
    params, changes = ps.compare_settings({'a_b': '1', 'c_d': '2'}, {'a_b': '1', 'c_d': '3'})
    assert ps.settings_diff('/etc/postfix/main.cf', params, changes) == {
        'before_header': '/etc/postfix/main.cf', 'after_header': '/etc/postfix/main.cf',
        'before': 'c_d = 3\n', 'after': 'c_d = 2\n'}
    params, changes = ps.compare_settings({'e_f': None}, {'e_f': 'x'}, present=False)
    assert ps.settings_diff('master.cf', params, changes, 'smtp/inet/') == {
        'before_header': 'master.cf', 'after_header': 'master.cf', 'before': 'smtp/inet/e_f = x\n', 'after': ''}
