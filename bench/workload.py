# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deterministic benchmark inputs: policy entries, main.cf parameters, playbooks.

Everything here is pure (no I/O except writing the files it is asked to
write), so the same N always gives the same table and the two approaches
being compared write byte-identical lines.
"""

import json
import os
import time

# A realistic mix for a gateway that pins policy per partner: mostly
# encrypt/verify/secure for partner domains, some subdomain keys, relays by
# [host]:port, a few fingerprint pins and the internal 'none' hop.
_LEVEL_CYCLE = ('encrypt', 'secure', 'verify', 'encrypt', 'may', 'secure', 'fingerprint', 'dane')


def policy_entry(i):
    """Entry number i as tls_policy's entries[] element (module option names)."""
    level = _LEVEL_CYCLE[i % len(_LEVEL_CYCLE)]
    if i % 10 == 7:
        destination = '[mx%d.partner%05d.example.net]:25' % (i % 3, i)
    elif i % 10 == 3:
        destination = '.partner%05d.example.org' % i
    else:
        destination = 'partner%05d.example.com' % i
    entry = {'destination': destination, 'level': level}
    if level in ('secure', 'verify'):
        entry['match'] = ['nexthop', 'dot-nexthop'] if level == 'secure' else ['hostname']
    if level == 'fingerprint':
        digest = ''.join('%02X' % ((i * 7 + k * 13) % 256) for k in range(32))
        entry['match'] = [':'.join(digest[j:j + 2] for j in range(0, 64, 2))]
    if level != 'may' and i % 3 == 0:
        entry['protocols'] = ['>=TLSv1.2']
    if level == 'encrypt' and i % 5 == 0:
        entry['ciphers'] = 'high'
    return entry


def policy_entries(n):
    return [policy_entry(i) for i in range(n)]


def rendered_lines(entries):
    """(key, value) as the module writes them, rendered by the collection's own
    grammar so that the per-entry lineinfile approach writes identical lines."""
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
        build_policy, normalize_destination)
    names = ('match', 'ciphers', 'protocols', 'exclude', 'tafile', 'servername',
             'connection_reuse', 'enable_rpk')
    out = []
    for entry in entries:
        key, dummy = normalize_destination(entry['destination'])
        policy = build_policy(entry['level'], **dict((k, entry.get(k)) for k in names))
        out.append((key, policy.render()))
    return out


# 30 main.cf parameters a TLS hardening run sets (values valid for Postfix 3.7).
MAIN_CF_PARAMS = [
    ('smtp_tls_security_level', 'may'),
    ('smtpd_tls_security_level', 'may'),
    ('smtp_tls_loglevel', '1'),
    ('smtpd_tls_loglevel', '1'),
    ('smtp_tls_mandatory_protocols', '>=TLSv1.2'),
    ('smtpd_tls_mandatory_protocols', '>=TLSv1.2'),
    ('smtp_tls_protocols', '>=TLSv1.2'),
    ('smtpd_tls_protocols', '>=TLSv1.2'),
    ('smtp_tls_mandatory_ciphers', 'high'),
    ('smtpd_tls_mandatory_ciphers', 'high'),
    ('smtp_tls_ciphers', 'medium'),
    ('smtpd_tls_ciphers', 'medium'),
    ('smtp_tls_exclude_ciphers', 'aNULL, eNULL, MD5, RC4, 3DES'),
    ('smtpd_tls_exclude_ciphers', 'aNULL, eNULL, MD5, RC4, 3DES'),
    ('smtp_tls_mandatory_exclude_ciphers', 'aNULL, MD5'),
    ('smtpd_tls_mandatory_exclude_ciphers', 'aNULL, MD5'),
    ('tls_preempt_cipherlist', 'yes'),
    ('tls_ssl_options', 'NO_COMPRESSION, NO_RENEGOTIATION'),
    ('smtp_tls_note_starttls_offer', 'yes'),
    ('smtpd_tls_received_header', 'yes'),
    ('smtpd_tls_auth_only', 'yes'),
    ('smtp_tls_session_cache_timeout', '3600s'),
    ('smtpd_tls_session_cache_timeout', '3600s'),
    ('smtp_tls_connection_reuse', 'no'),
    ('smtp_tls_fingerprint_digest', 'sha256'),
    ('smtpd_tls_fingerprint_digest', 'sha256'),
    ('smtp_tls_secure_cert_match', 'nexthop, dot-nexthop'),
    ('smtp_tls_verify_cert_match', 'hostname'),
    ('smtp_tls_scert_verifydepth', '9'),
    ('smtpd_tls_ask_ccert', 'no'),
]
assert len(MAIN_CF_PARAMS) == 30

MINIMAL_MAIN_CF = """\
# minimal main.cf for the mailgw.postfix_tls benchmarks
compatibility_level = 3.6
myhostname = gateway.test
mydestination =
inet_protocols = ipv4
smtp_dns_support_level = disabled
smtp_tls_policy_maps = hash:{config_dir}/tls_policy
"""


def write_config_dir(config_dir):
    os.makedirs(config_dir)
    with open(os.path.join(config_dir, 'main.cf'), 'w') as f:
        f.write(MINIMAL_MAIN_CF.format(config_dir=config_dir))
    with open(os.path.join(config_dir, 'master.cf'), 'w') as f:
        f.write('smtp      inet  n       -       y       -       -       smtpd\n')
    settle_config_dir(config_dir)


# Postfix reads main.cf and master.cf only when their mtime is at least a second
# in the past (dict_load_file_xt: a file written in this or the previous second may
# still be being edited; it sleeps 0.3 s and looks again), so the first postconf
# after writing them waits up to 2 s.  A gateway's main.cf is older than that, so
# the benchmark's throwaway configuration is dated back before it is measured.
CONFIG_AGE_SECONDS = 60


def settle_config_dir(config_dir):
    then = time.time() - CONFIG_AGE_SECONDS
    for name in ('main.cf', 'master.cf'):
        os.utime(os.path.join(config_dir, name), (then, then))


def _dump(path, data):
    # JSON is valid YAML: no PyYAML needed, and large lists load fast.
    with open(path, 'w') as f:
        json.dump(data, f, indent=1)
    return path


def module_playbook(path, vars_file):
    """One tls_policy task with entries: (the collection's approach)."""
    return _dump(path, [{
        'name': 'tls_policy, one task, entries',
        'hosts': 'localhost',
        'gather_facts': False,
        'vars_files': [vars_file],
        'tasks': [{
            'name': 'bench tls_policy entries',
            'mailgw.postfix_tls.tls_policy': {
                'entries': '{{ bench_entries }}',
                'path': '{{ bench_config_dir }}/tls_policy',
                'map_type': 'hash',
                'config_dir': '{{ bench_config_dir }}',
            },
        }],
    }])


def write_table_source(path, mapping):
    """MAPPING (destination -> policy string) written as a table source file, one entry a line."""
    with open(path, 'w') as f:
        f.write('# bench: the policies mapping as a table source\n')
        for destination, policy in mapping.items():
            f.write('%s %s\n' % (destination, policy))
    return path


def policies_playbook(path, vars_file, shape='policies'):
    """One tls_policy task with policies: (destination -> policy string as in the table) or
    policies_src: (the path of that mapping as a table source on the target)."""
    return _dump(path, [{
        'name': 'tls_policy, one task, %s' % shape,
        'hosts': 'localhost',
        'gather_facts': False,
        'vars_files': [vars_file],
        'tasks': [{
            'name': 'bench tls_policy %s' % shape,
            'mailgw.postfix_tls.tls_policy': {
                shape: '{{ bench_policies }}',
                'path': '{{ bench_config_dir }}/tls_policy',
                'map_type': 'hash',
                'config_dir': '{{ bench_config_dir }}',
            },
        }],
    }])


def policy_values(entries):
    """The policies: mapping of entries (what the tls_policy_values filter gives):
    table key -> policy string, rendered by the collection's grammar."""
    return dict(rendered_lines(entries))


def lineinfile_playbook(path, vars_file):
    """One lineinfile per entry plus a postmap handler (what other roles do)."""
    return _dump(path, [{
        'name': 'lineinfile per entry, postmap handler',
        'hosts': 'localhost',
        'gather_facts': False,
        'vars_files': [vars_file],
        'tasks': [{
            'name': 'bench lineinfile per entry',
            'ansible.builtin.lineinfile': {
                'path': '{{ bench_config_dir }}/tls_policy',
                'regexp': '^{{ item.0 | regex_escape }}\\s',
                'line': '{{ item.0 }} {{ item.1 }}',
                'create': True,
                'mode': '0644',
            },
            'loop': '{{ bench_lines }}',
            'loop_control': {'label': '{{ item.0 }}'},
            'notify': 'bench postmap',
        }],
        'handlers': [{
            'name': 'bench postmap',
            'ansible.builtin.command': {
                'argv': ['postmap', '-c', '{{ bench_config_dir }}',
                         'hash:{{ bench_config_dir }}/tls_policy'],
            },
        }],
    }])


def postconf_module_playbook(path, vars_file):
    """30 parameters in one postconf call (params:)."""
    return _dump(path, [{
        'name': 'postconf, one task, params',
        'hosts': 'localhost',
        'gather_facts': False,
        'vars_files': [vars_file],
        'tasks': [{
            'name': 'bench postconf params',
            'mailgw.postfix_tls.postconf': {
                'params': '{{ bench_params }}',
                'config_dir': '{{ bench_config_dir }}',
            },
        }],
    }])


def postconf_command_playbook(path, vars_file, params):
    """30 `command: postconf -e` tasks (the linux-system-roles approach)."""
    tasks = [{
        'name': 'bench postconf -e %s' % name,
        'ansible.builtin.command': {
            'argv': ['postconf', '-c', '{{ bench_config_dir }}', '-e', '%s=%s' % (name, value)],
        },
    } for name, value in params]
    return _dump(path, [{
        'name': 'postconf -e, one task per parameter',
        'hosts': 'localhost',
        'gather_facts': False,
        'vars_files': [vars_file],
        'tasks': tasks,
    }])


def empty_playbook(path):
    return _dump(path, [{'name': 'baseline', 'hosts': 'localhost', 'gather_facts': False,
                         'tasks': []}])


def role_playbook(path, play_vars=None):
    """The role on group gateways; its variables are the group's (fleet_inventory),
    as in playbooks/site.yml and check.yml; PLAY_VARS override them."""
    play = {
        'name': 'enforce_tls on the fleet',
        'hosts': 'gateways',
        'gather_facts': False,
        'roles': [{'role': 'mailgw.postfix_tls.enforce_tls'}],
    }
    if play_vars:
        play['vars'] = play_vars
    return _dump(path, [play])


def ping_playbook(path):
    """The floor: one ansible.builtin.ping per host over the same connection."""
    return _dump(path, [{
        'name': 'one task per host (floor)',
        'hosts': 'gateways',
        'gather_facts': False,
        'tasks': [{'name': 'bench ping', 'ansible.builtin.ping': {}}],
    }])


# bench/run --connection: the connection plugin of each choice
CONNECTION_PLUGINS = {
    'nsenter': 'community.docker.nsenter',
    'nsenter-pipelined': 'nsenter_pipelined',
    'podman': 'containers.podman.podman',
}


def fleet_inventory(path, hosts, group_vars, connection='nsenter'):
    """hosts: [(inventory name, container name, container PID)] in group gateways.
    nsenter: community.docker.nsenter with ansible_nsenter_pid written per host
    (looked up once when the containers started, not per task as in the demo);
    nsenter-pipelined: the same with pipelining (bench/connection_plugins);
    podman: containers.podman.podman (podman exec per command)."""
    host_vars = {}
    for name, container, pid in hosts:
        if connection.startswith('nsenter'):
            host_vars[name] = {'ansible_nsenter_pid': pid}
        else:
            host_vars[name] = {'ansible_host': container}
    all_vars = {
        'ansible_connection': CONNECTION_PLUGINS[connection],
        'ansible_python_interpreter': '/usr/bin/python3',
    }
    return _dump(path, {'all': {
        'vars': all_vars,
        'children': {'gateways': {'hosts': host_vars, 'vars': group_vars}},
    }})


def role_vars(n_policies):
    return {
        'enforce_tls_incoming_level': 'may',
        'enforce_tls_outgoing_level': 'encrypt',
        'enforce_tls_policies': policy_entries(n_policies),
    }
