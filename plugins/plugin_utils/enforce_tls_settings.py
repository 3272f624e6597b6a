# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The enforce_tls role's settings as its filters take them, and the policy table's
path and map type they give (with Postfix $name references where they depend on the host).

Controller-side, for the filters mailgw.postfix_tls.enforce_tls_table and
enforce_tls_decision (plugins/filter/postfix_tls.py), which import it only when used.
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.validation import check_type_bool, check_type_list, check_type_str

DECISION_SETTINGS = {
    # name: (type, default); the role's variables without the enforce_tls_ prefix
    'config_dir': (str, '/etc/postfix'),
    'outgoing_level': (str, 'may'),
    'incoming_level': (str, 'may'),
    'allow_downgrade': (bool, False),
    'layout': (str, 'postfix'),
    'map_type': (str, ''),
    'map_path': (str, ''),
    'maps_d_dir': (str, ''),
    'smtpd_cert_file': (str, ''),
    'smtpd_key_file': (str, ''),
    'skip_certificate_check': (bool, False),
    'reinjection_services': (list, []),
    'preflight': (str, 'warn'),
}


def decision_settings(settings, caller='enforce_tls_decision'):
    """SETTINGS (the role's variables without the enforce_tls_ prefix) checked and completed:
    every name of DECISION_SETTINGS, with its default when missing, converted to its type
    (a boolean, a list of strings, else a string; None is ''). An unknown name or a value of
    the wrong type raises AnsibleFilterError naming CALLER, the filter that was called."""
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError('%s expects a mapping of settings, got %s' % (caller, type(settings).__name__))
    unknown = sorted(set(settings) - set(DECISION_SETTINGS))
    if unknown:
        raise AnsibleFilterError('%s: unknown settings %s (known: %s)'
                                 % (caller, ', '.join(unknown), ', '.join(sorted(DECISION_SETTINGS))))
    out = {}
    for name, (kind, default) in DECISION_SETTINGS.items():
        value = settings.get(name, default)
        try:
            if kind is bool:
                value = check_type_bool(value)
            elif kind is list:
                value = [check_type_str(item) for item in check_type_list(value)]
            else:
                value = '' if value is None else check_type_str(value)
        except TypeError as e:
            raise AnsibleFilterError('%s: setting %s: %s' % (caller, name, e))
        out[name] = value
    return out


# The parameters a table path of the role may reference (expanded on the host).
TABLE_REFERENCES = ('maps_d_dir', 'default_database_type')


def maps_d_dir_template(settings):
    """CipherMail's maps.d directory: the inventory's, else main.cf's maps_d_dir, else
    CONFIG_DIR/maps.d (a Postfix expression, expanded with the host's values)."""
    return settings['maps_d_dir'] or '${maps_d_dir}${maps_d_dir:%s/maps.d}' % settings['config_dir'].replace('$', '$$')


def table_template(settings):
    """The table's path and map type as the role gives them to postconf_info's plan,
    with Postfix $name references for what depends on the host: the postfix layout
    CONFIG_DIR/tls_policy; the ciphermail layout MAPS_D_DIR/TYPE-tls-policy.map with
    maps_d_dir the inventory's, else main.cf's, else CONFIG_DIR/maps.d, and the type
    the inventory's, else default_database_type. An empty map type is left to
    tls_policy (the type smtp_tls_policy_maps lists, else default_database_type)."""
    if settings['map_path']:
        path = settings['map_path']
    elif settings['layout'] == 'ciphermail':
        path = '%s/%s-tls-policy.map' % (maps_d_dir_template(settings),
                                         settings['map_type'] or '${default_database_type}')
    else:
        path = settings['config_dir'].replace('$', '$$') + '/tls_policy'
    map_type = settings['map_type'] or ('${default_database_type}' if settings['layout'] == 'ciphermail' else '')
    return dict(path=path, map_type=map_type)
