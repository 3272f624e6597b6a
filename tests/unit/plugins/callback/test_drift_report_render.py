# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The drift report's diff text: a task that changes two files (tls_policy with main_cf)
shows both, one after the other."""

from ansible_collections.mailgw.postfix_tls.plugins.callback.drift_report import render_diff


def test_a_list_of_diffs_renders_each_file():
    table = {'before': 'a.example may\n', 'after': 'a.example encrypt\n',
             'before_header': '/etc/postfix/tls_policy', 'after_header': '/etc/postfix/tls_policy'}
    main_cf = {'before': 'smtp_tls_security_level = may\n', 'after': 'smtp_tls_security_level = encrypt\n',
               'before_header': '/etc/postfix/main.cf', 'after_header': '/etc/postfix/main.cf'}
    text = render_diff([table, main_cf])
    assert text.index('--- before: /etc/postfix/tls_policy') < text.index('--- before: /etc/postfix/main.cf')
    assert '-a.example may\n+a.example encrypt\n' in text
    assert '-smtp_tls_security_level = may\n+smtp_tls_security_level = encrypt\n' in text
    # one dict renders the same as a list of one
    assert render_diff(main_cf) == render_diff([main_cf])
