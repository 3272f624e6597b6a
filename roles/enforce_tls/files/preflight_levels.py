# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Preflight of mailgw.postfix_tls.enforce_tls: which destinations does this run make stricter?

Run on the gateway (ansible.builtin.script) with one argument, a base64 JSON
request:

    {"config_dir": "/etc/postfix",
     "destinations": ["[plain-peer.test]:25", "example.com"],
     "entries": [{"destination": "example.com", "level": "verify"},   # the policy entries the role writes
                 {"destination": "gone.example", "state": "absent"}],
     "global_before": "may",       # the outgoing level now (legacy settings counted); null: read it
     "global_after": "encrypt",    # the outgoing level after the change
     "exclusive": false,           # entries not listed are removed from the table
     "max": 50}                    # probe at most this many affected destinations

For each destination it finds the level it gets now (its entry in the first
table of the current smtp_tls_policy_maps that has one, via postmap -q as the
SMTP client looks it up; else the global level) and the level it gets after
the change, and whether that is stricter ("affected"). Read-only. Prints
{"destinations": [{destination, level_before, source_before, level, affected,
probe, not_probed}]}: probe is true for the first MAX affected destinations
that name a host (not a .domain pattern); not_probed says why not.
The role then probes the affected ones with mailgw.postfix_tls.tls_probe.
"""

import base64
import json
import os
import re
import subprocess
import sys

RANKS = {'none': 0, 'may': 1, 'encrypt': 2, 'dane': 3, 'verify': 4,
         'secure': 5, 'dane-only': 5, 'fingerprint': 5}
SBIN = ('/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin')


def command(name):
    for directory in SBIN:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    return name


def postconf(config_dir, *names):
    out = subprocess.run([command('postconf'), '-c', config_dir, '-xh'] + list(names),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=True)
    return dict(zip(names, out.stdout.splitlines()))


def split_list(value):
    return [item for item in re.split(r'[\s,]+', value or '') if item]


def table_level(config_dir, tables, destination):
    """(level, table) of DESTINATION's first entry in TABLES, or (None, None)."""
    for table in tables:
        proc = subprocess.run([command('postmap'), '-c', config_dir, '-q', destination, table],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.split()[0].lower(), table
    return None, None


def main():
    request = json.loads(base64.b64decode(sys.argv[1]).decode('utf-8'))
    config_dir = request['config_dir']
    settings = postconf(config_dir, 'smtp_tls_security_level', 'smtp_tls_policy_maps')
    global_now = (request.get('global_before') or settings['smtp_tls_security_level'] or 'none').lower()
    global_after = (request.get('global_after') or global_now).lower()
    entries = dict((str(e['destination']).lower(), None if e.get('state') == 'absent' else e.get('level'))
                   for e in request.get('entries') or [])
    tables = split_list(settings['smtp_tls_policy_maps'])
    items = []
    for destination in request.get('destinations') or []:
        now, table = table_level(config_dir, tables, destination)
        key = destination.lower()
        if key in entries:
            after = entries[key] or global_after
        elif now and not request.get('exclusive'):
            after = now
        else:
            after = global_after
        item = {'destination': destination, 'level_before': now or global_now,
                'source_before': table or 'smtp_tls_security_level', 'level': after.lower()}
        item['affected'] = RANKS.get(item['level'], 0) > RANKS.get(item['level_before'], 0)
        if not item['affected']:
            item['probe'] = False
            item['not_probed'] = ('not probed: level stays %s' % item['level'] if item['level'] == item['level_before']
                                  else 'not probed: level lowered to %s' % item['level'])
        elif destination.startswith('.'):
            item['probe'] = False
            item['not_probed'] = 'not probed: %s matches subdomains and names no host' % destination
        elif len([i for i in items if i['probe']]) >= int(request.get('max', 50)):
            item['probe'] = False
            item['not_probed'] = 'not probed: more than enforce_tls_preflight_max affected destinations'
        else:
            item['probe'] = True
            item['not_probed'] = None
        items.append(item)
    print(json.dumps({'destinations': items}))


if __name__ == '__main__':
    main()
