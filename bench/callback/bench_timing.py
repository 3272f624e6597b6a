# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark timing callback: per host and task, when it was queued and when
its result arrived, whether it changed, the number of loop items and the
module's postmap_ran.  Written as JSON to $BENCH_TIMING_FILE at the end of
the playbook.  Used only by bench/run (ANSIBLE_CALLBACK_PLUGINS=bench/callback,
ANSIBLE_CALLBACKS_ENABLED=bench_timing)."""

DOCUMENTATION = r"""
name: bench_timing
type: aggregate
short_description: per host and task timings for bench/run
description:
  - Records when each task was started for each host and when its result came back.
  - Writes JSON to the file named by the environment variable BENCH_TIMING_FILE.
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""

import json
import os
import time

from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_timing'
    CALLBACK_NEEDS_ENABLED = True   # bench/run names it in ANSIBLE_CALLBACKS_ENABLED

    def __init__(self, display=None, options=None):
        super().__init__(display=display, options=options)
        self.started = {}
        self.records = []
        self.playbook_start = time.time()

    def v2_playbook_on_start(self, playbook):
        self.playbook_start = time.time()

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result, status):
        now = time.time()
        host = result._host.get_name()
        task = result._task
        res = result._result
        start = self.started.pop((host, task._uuid), None)
        items = res.get('results') if isinstance(res.get('results'), list) else None
        record = dict(
            host=host,
            task=task.get_name(),
            action=task.action,
            handler=isinstance(task, Handler),
            status=status,
            changed=bool(res.get('changed')),
            start=start,
            end=now,
            seconds=(now - start) if start is not None else None,
            items=len(items) if items is not None else None,
            items_changed=sum(1 for r in items if isinstance(r, dict) and r.get('changed')) if items else None,
        )
        if 'postmap_ran' in res:
            record['postmap_ran'] = bool(res['postmap_ran'])
        if status == 'failed':
            record['msg'] = str(res.get('msg', ''))[:2000]
        self.records.append(record)

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('BENCH_TIMING_FILE')
        if not path:
            return
        summary = dict((h, stats.summarize(h)) for h in sorted(stats.processed))
        with open(path, 'w') as f:
            json.dump(dict(start=self.playbook_start, end=time.time(), tasks=self.records,
                           stats=summary), f)
