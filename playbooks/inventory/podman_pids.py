#!/usr/bin/env python
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Inventory script of the demo fleet: the PID of every running podman container, read once
when Ansible loads the inventory, as the variable ``demo_container_pids`` of all hosts
({container name: PID}).

group_vars/gateways/connection.yml picks each host's ``ansible_nsenter_pid`` from it (the
container named ``<demo_container_prefix>-<inventory_hostname>``), so a task does not run
``podman container inspect`` again for each host; a container missing from it (started
after the inventory was loaded) is still looked up per task there. Without podman the map
is empty. For real gateways remove this file together with connection.yml.
"""

import json
import subprocess
import sys


def container_pids():
    """{name: PID} of the running containers; empty without podman or containers."""
    try:
        ids = subprocess.run(['podman', 'ps', '--quiet', '--no-trunc'], capture_output=True, text=True,
                             timeout=60, check=False)
        if ids.returncode != 0 or not ids.stdout.split():
            return {}
        found = subprocess.run(['podman', 'container', 'inspect', '--format', '{{.Name}} {{.State.Pid}}']
                               + ids.stdout.split(), capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    pids = {}
    for line in found.stdout.splitlines():
        name, _sep, pid = line.strip().rpartition(' ')
        if name and pid.isdigit() and int(pid) > 0:
            pids[name.lstrip('/')] = int(pid)
    return pids


def main(argv):
    if len(argv) > 1 and argv[1] == '--host':
        print('{}')
        return 0
    print(json.dumps({'all': {'vars': {'demo_container_pids': container_pids()}},
                      '_meta': {'hostvars': {}}}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
