# SPDX-License-Identifier: GPL-3.0-or-later
"""The oracle's results, computed once per test run and Postfix release.

One private Postfix instance answers every oracle question of a run
(cases.run_all, about 15 s) for each Postfix the tests know: the host's own
(Debian bookworm: 3.7), and the one in each other test image (in_image.py:
bullseye 3.5, trixie 3.10, sid 3.11; the same questions, the module run with
that image's python3).  Every oracle test runs once per release (its id
starts with the release's name).  Under pytest-xdist the first worker that
needs a release's results computes them under a file lock and leaves them as
JSON in the run's shared temporary directory; the other workers read that
file instead of starting their own instance.
"""

import json
import os

import pytest

from .in_image import OTHER_RELEASES
from .instance import unavailable_reason


# 'host': the host's Postfix binaries; else a suite of localhost/mailgw-postfix
RELEASES = ['host'] + [pytest.param(suite, marks=[pytest.mark.container, pytest.mark.slow])
                       for suite in OTHER_RELEASES]


def _compute(release, tmp):
    from . import cases
    if release == 'host':
        return cases.run_all()
    from .in_image import ImageUnavailable, run_in_image
    try:
        return run_in_image(release, tmp)
    except ImageUnavailable as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope='session', params=RELEASES)
def oracle_results(request, tmp_path_factory):
    release = request.param
    if release == 'host':
        reason = unavailable_reason()
        if reason:
            pytest.skip(reason)
    tmp = tmp_path_factory.mktemp('oracle-%s' % release)
    run_id = os.environ.get('PYTEST_XDIST_TESTRUNUID')
    if not run_id:
        return _compute(release, tmp)
    from filelock import FileLock
    shared = tmp_path_factory.getbasetemp().parent
    path = shared / ('mailgw-oracle-%s-%s.json' % (release, run_id))
    with FileLock(str(path) + '.lock'):
        if path.is_file():
            return json.loads(path.read_text())
        results = _compute(release, tmp)
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
