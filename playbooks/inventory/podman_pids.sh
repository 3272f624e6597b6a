#!/usr/bin/env bash
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Inventory script of the demo fleet: the PID of every running podman
# container, read once when Ansible loads the inventory, as the variable
# demo_container_pids of all hosts ({container name: PID}).
#
# group_vars/gateways/connection.yml picks each host's ansible_nsenter_pid
# from it (the container named <demo_container_prefix>-<inventory_hostname>),
# so a task does not run "podman container inspect" again for each host; a
# container missing from it (started after the inventory was loaded) is still
# looked up per task there. Without podman the map is empty. For real gateways
# remove this file together with connection.yml.
set -u
if [ "${1:-}" = "--host" ]; then
  echo '{}'
  exit 0
fi
pids=""
if command -v podman >/dev/null 2>&1; then
  ids="$(timeout 60 podman ps --quiet --no-trunc 2>/dev/null)" || ids=""
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086  # one argument per container ID
    while read -r name pid; do
      case "$pid" in '' | *[!0-9]* | 0) continue ;; esac
      case "$name" in '' | *[!A-Za-z0-9_.-]*) continue ;; esac
      pids="${pids:+$pids, }\"$name\": $pid"
    done < <(timeout 60 podman container inspect --format '{{.Name}} {{.State.Pid}}' $ids 2>/dev/null)
  fi
fi
printf '{"all": {"vars": {"demo_container_pids": {%s}}}, "_meta": {"hostvars": {}}}\n' "$pids"
