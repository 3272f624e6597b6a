# SPDX-License-Identifier: GPL-3.0-or-later
"""The oracle's results, computed once per test run.

One private Postfix instance answers every oracle question of a run
(cases.run_all, about 15 s).  Under pytest-xdist the first worker that needs
the results computes them under a file lock and leaves them as JSON in the
run's shared temporary directory; the other workers read that file instead
of starting their own instance.
"""

import json
import os

import pytest

from .instance import unavailable_reason


@pytest.fixture(scope='session')
def oracle_results(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    from . import cases
    run_id = os.environ.get('PYTEST_XDIST_TESTRUNUID')
    if not run_id:
        return cases.run_all()
    from filelock import FileLock
    shared = tmp_path_factory.getbasetemp().parent
    path = shared / ('mailgw-oracle-%s.json' % run_id)
    with FileLock(str(path) + '.lock'):
        if path.is_file():
            return json.loads(path.read_text())
        results = cases.run_all()
        path.write_text(json.dumps(results))
        return results


def explain(result):
    """A failure message: the entry, both verdicts and the log lines."""
    lines = ['entry: %s %s' % (result['key'], result['value']),
             'postfix: %s (%s: %s)' % (result['verdict'], result['status'], result['reason'])]
    if 'module' in result:
        lines.append('module: %s%s' % (result['module'], ': %s' % result['module_message']
                                       if result.get('module_message') else ''))
    lines.append('log:')
    lines.extend('  ' + line for line in result['evidence'])
    return '\n'.join(lines)
