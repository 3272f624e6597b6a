# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of playbooks/rollout.yml (loaded from the playbook's filter_plugins)."""

import json
import re


def rollout_deferrals(postqueue_json, reason_pattern):
    """Deferred recipients in `postqueue -j` output whose delay reason matches REASON_PATTERN.

    Returns [{key, queue_id, address, reason, line}]; key is "QUEUE_ID ADDRESS".
    """
    pattern = re.compile(reason_pattern)
    found = []
    for text in (postqueue_json or '').splitlines():
        text = text.strip()
        if not text:
            continue
        entry = json.loads(text)
        for rcpt in entry.get('recipients', []):
            reason = rcpt.get('delay_reason', '')
            if reason and pattern.search(reason):
                found.append({
                    'key': '%s %s' % (entry.get('queue_id'), rcpt.get('address')),
                    'queue_id': entry.get('queue_id'),
                    'address': rcpt.get('address'),
                    'reason': reason,
                    'line': '%s to %s: %s' % (entry.get('queue_id'), rcpt.get('address'), reason),
                })
    return found


def rollout_probe_line(result):
    """One line for a mailgw.postfix_tls.tls_probe result: destination, level and reason."""
    return '%s at %s (%s)' % (result.get('destination'), result.get('level'), result.get('reason'))


class FilterModule(object):
    """rollout_deferrals, rollout_probe_line."""

    def filters(self):
        return {'rollout_deferrals': rollout_deferrals, 'rollout_probe_line': rollout_probe_line}
