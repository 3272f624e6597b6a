# SPDX-License-Identifier: GPL-3.0-or-later
"""The oracle by hand (python -m tests.integration.oracle.ask): one entry whose
verdict depends on the Postfix release, asked of the host's Postfix (3.7) and
of the bullseye image's (3.5) with --image."""

import json
import os
import subprocess
import sys

import pytest

from .instance import unavailable_reason

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
RANGE = 'range.test encrypt protocols=>=TLSv1.2'


def ask(*args):
    proc = subprocess.run([sys.executable, '-m', 'tests.integration.oracle.ask', '--json'] + list(args),
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=300, check=False)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)['entries']


def test_the_host_postfix_uses_the_protocol_range():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    rc, [entry] = ask(RANGE)
    assert rc == 0 and entry['agree'], entry
    assert entry['postfix'] == 'used' and entry['status'] == 'sent', entry
    assert entry['module'] == 'accepts', entry


@pytest.mark.container
@pytest.mark.slow
def test_postfix_3_5_rejects_the_protocol_range_and_the_module_says_so():
    rc, [entry] = ask('--image', 'bullseye', RANGE)
    assert rc == 0 and entry['agree'], entry
    assert entry['postfix'] == 'rejected', entry
    assert any('Invalid TLS protocol list' in line for line in entry['evidence']), entry
    assert entry['module'] == 'refuses' and 'needs Postfix 3.6 or later; this Postfix is 3.5' in \
        entry['module_message'], entry
