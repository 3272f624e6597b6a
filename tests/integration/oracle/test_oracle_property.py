# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 13, item 2: the module's grammar against Postfix itself, both directions.

* Every entry the module accepts (a curated set across every level,
  attribute and key form, plus entries generated with hypothesis, seeded
  and bounded) is written by the real tls_policy module and used by Postfix.
* Every entry the module refuses is rejected by Postfix (or its next hop can
  never be looked up), or the refusal is a documented lint: its message says
  "rule of this collection, Postfix accepts it", and then Postfix does use it.
* Both, for every distinct policy value of the real-world tables
  (tests/data/realworld/tables), as the module reads an existing line.
* connection_reuse=yes with the tlsproxy service missing from master.cf, under
  another name (tlsproxy_service_name), or main.cf naming one master.cf lacks;
  entries that reuse connections because main.cf's smtp_tls_connection_reuse says so.

Postfix's verdicts come from one private instance per Postfix release: the
host's and those of the test images (conftest.py; cases.run_all, see
instance.py for how entries are classified).
"""

import pytest

from .cases import CURATED, REALWORLD_LINES, REFUSED_LINES, TLSPROXY_CASES
from .conftest import explain

POSTFIX_REFUSES = ('rejected', 'unroutable', 'unmatched', 'ignored')
POSTFIX_USES = ('used', 'ignored')


def defers_as_the_module_says(result):
    """A fingerprint entry the module refuses saying Postfix never authenticates the
    peer with it or defers the mail, and Postfix, using it, defers the delivery for
    the peer's certificate (the oracle's peer has the certificate the curated
    fingerprints name: an entry that can match delivers).

    Postfix before 3.6 logs nothing for a fingerprint it cannot use (a length that is
    not the one of smtp_tls_fingerprint_digest, whose default was md5 before 3.6; a
    value of no digest's length; "..." in an abbreviated one): it uses the entry and
    defers every delivery with "Server certificate not verified" (3.6 and later also
    warn "all fingerprints unusable" or "malformed fingerprint value", which the
    oracle reads as a rejection).
    """
    message = result['module_message'] or ''
    return (result['value'].split()[:1] == ['fingerprint']
            and ('never authenticates the peer' in message or 'defer' in message)
            and result['status'] == 'deferred'
            and result['reason'].startswith('Server certificate not'))


def check(result):
    """None when module and Postfix agree, else the reason they do not."""
    module, postfix = result['module'], result['verdict']
    if module == 'accepts':
        if postfix != 'used':
            return 'the module accepts this entry, but Postfix does not use it (%s)' % postfix
    elif module == 'error':
        if postfix not in POSTFIX_REFUSES and not defers_as_the_module_says(result):
            return 'the module refuses this entry as one Postfix cannot use, but Postfix uses it'
    elif module == 'lint':
        if 'rule of this collection' not in (result['module_message'] or ''):
            return 'a lint must say it is the collection\'s rule'
        if postfix not in POSTFIX_USES:
            return 'the module refuses this entry as a lint ("Postfix accepts it"), but Postfix ' \
                   'does not use it (%s): it is an error, say so' % postfix
    else:
        return 'unknown module verdict %r' % module
    return None


@pytest.mark.parametrize('case_id', [case[0] for case in CURATED])
def test_curated_entry(oracle_results, case_id):
    result = oracle_results['curated/' + case_id]
    problem = check(result)
    assert problem is None, '%s\n%s' % (problem, explain(result))


@pytest.mark.parametrize('case_id', [case[0] for case in REFUSED_LINES])
def test_refused_line(oracle_results, case_id):
    result = oracle_results['refused/' + case_id]
    problem = check(result)
    assert problem is None, '%s\n%s' % (problem, explain(result))


@pytest.mark.parametrize('case_id', TLSPROXY_CASES)
def test_connection_reuse_and_the_tlsproxy_service(oracle_results, case_id):
    """connection_reuse=yes in a master.cf without the tlsproxy service (Debian's), with the
    service under the name tlsproxy_service_name gives, with main.cf naming a service master.cf
    lacks, and entries without connection_reuse when main.cf's smtp_tls_connection_reuse is
    yes: the module refuses exactly what Postfix defers."""
    result = oracle_results['tlsproxy/' + case_id]
    problem = check(result)
    assert problem is None, '%s\n%s' % (problem, explain(result))
    if case_id.endswith('-no') or case_id.endswith('/none'):
        assert result['module'] == 'accepts'


@pytest.mark.parametrize('case_id', [case[0] for case in REALWORLD_LINES])
def test_real_world_value(oracle_results, case_id):
    result = oracle_results['realworld/' + case_id]
    problem = check(result)
    assert problem is None, '%s (%s)\n%s' % (problem, result['where'], explain(result))


def test_generated_entries(oracle_results):
    generated = dict((key, value) for key, value in oracle_results.items() if key.startswith('generated/'))
    assert len(generated) >= 100
    problems = []
    for case_id, result in sorted(generated.items()):
        problem = check(result)
        if problem:
            problems.append('%s: %s\n%s' % (case_id, problem, explain(result)))
    assert not problems, '%d of %d generated entries disagree:\n\n%s' % (
        len(problems), len(generated), '\n\n'.join(problems))


def test_curated_set_covers_every_level_and_attribute():
    from .module_side import grammar
    levels = set(case[2] for case in CURATED)
    assert levels == set(grammar.LEVELS)
    attributes = set(name for case in CURATED for name in case[3])
    assert attributes >= set(grammar.ATTRIBUTES) - {'enable_rpk'}   # enable_rpk: Postfix 3.9+, refused on 3.7
