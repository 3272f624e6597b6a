# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bench/run --connection nsenter-pipelined: community.docker.nsenter with pipelining.

community.docker.nsenter declares has_pipelining = False, so Ansible runs every module
over it as a file: mkdir of a temporary directory, the AnsiballZ file through `tee`,
chmod, python, rm (and `echo ~` first when that directory is under ~): five commands
per module run, whatever ANSIBLE_PIPELINING says.
Its exec_command already hands in_data to the command's stdin (put_file relies on it),
which is all pipelining needs, so this subclass only says so: one command per module
run, as over ssh with pipelining on. For the benchmark only (not part of the collection).
"""
from __future__ import annotations

DOCUMENTATION = '''
name: nsenter_pipelined
short_description: community.docker.nsenter with pipelining (bench/run only)
description:
  - community.docker.nsenter, with pipelining declared (one command per module run).
options:
  nsenter_pid:
    description: PID to attach with using nsenter.
    type: int
    required: true
    vars:
      - name: ansible_nsenter_pid
'''

from ansible_collections.community.docker.plugins.connection.nsenter import Connection as _NsenterConnection


class Connection(_NsenterConnection):
    transport = 'nsenter_pipelined'
    has_pipelining = True
