# SPDX-License-Identifier: GPL-3.0-or-later
"""The oracle itself: hand-written entries whose Postfix verdict is known.

If these fail, the oracle's property tests mean nothing.
"""

import pytest

from .cases import SELF_CASES
from .conftest import explain


@pytest.mark.parametrize('case_id', [case[0] for case in SELF_CASES])
def test_known_entry_gets_its_verdict(oracle_results, case_id):
    result = oracle_results['self/' + case_id]
    assert result['verdict'] == result['expected'], explain(result)


def test_evidence_shows_what_postfix_read(oracle_results):
    """A used entry is backed by Postfix's own lookup result (smtp -v maps_find) with the
    value as written; a rejected one by the policy table diagnostic."""
    used = oracle_results['self/encrypt']
    assert used['lookup'] == [used['table_key'], 'encrypt'], explain(used)
    rejected = oracle_results['self/invalid-attribute']
    assert any('invalid attribute name: "bogus"' in line for line in rejected['evidence']), explain(rejected)
    assert rejected['reason'] == 'client TLS configuration problem', explain(rejected)


def test_levels_show_on_the_wire(oracle_results):
    """none delivers in plaintext, encrypt over TLS, verify stops at the untrusted
    certificate, fingerprint and secure with the right fingerprint/trust anchor verify."""
    none = oracle_results['self/none']
    assert none['status'] == 'sent' and none['peer'] and all(s['tls'] is None for s in none['peer']), explain(none)
    encrypt = oracle_results['self/encrypt']
    assert encrypt['status'] == 'sent' and encrypt['peer'] and all(s['tls'] for s in encrypt['peer']), explain(encrypt)
    verify = oracle_results['self/verify-untrusted']
    assert verify['status'] == 'deferred' and 'Server certificate not' in verify['reason'], explain(verify)
    for case in ('fingerprint-match', 'secure-tafile'):
        result = oracle_results['self/' + case]
        assert result['status'] == 'sent', explain(result)
        assert any('Verified TLS connection established' in line for line in result['evidence']), explain(result)


def test_parent_domain_entry_covers_subdomains(oracle_results):
    result = oracle_results['self/parent-domain']
    assert result['lookup'] and result['lookup'][0] == result['key'], explain(result)
    assert any(': not found' in line for line in result['evidence']), explain(result)


def test_bare_ipv6_next_hop_is_not_the_ipv6_form_key(oracle_results):
    """[::1]:PORT and [ipv6:::1]:PORT are different keys: a table that spells the other form
    is never consulted for this next hop."""
    result = oracle_results['self/bare-ipv6-vs-ipv6-form']
    assert result['table_key'].startswith('[ipv6:') and result['key'].startswith('[::1]'), result
    assert result['verdict'] == 'unmatched', explain(result)


@pytest.mark.parametrize('which', ['first', 'second', 'duplicated'])
def test_texthash_duplicate_key_makes_every_lookup_fail(oracle_results, which):
    """One duplicate key (here differing only in case) anywhere in a texthash table: the
    SMTP client cannot open the table and defers mail to every destination."""
    result = oracle_results['texthash/' + which]
    assert result['verdict'] == 'rejected', explain(result)
    assert any('duplicate entry' in line or 'lookup error' in line for line in result['evidence']), explain(result)


def test_a_protocol_gap_leaves_only_the_lowest_run(oracle_results):
    """"!SSLv2:!SSLv3:!TLSv1.1" (meant: "no TLS 1.1") negotiates TLSv1 with a peer that speaks
    TLS 1.3: OpenSSL uses only the lowest unbroken run of versions. The module refuses such a
    value as a lint (refused/protocols-gap in the property tests)."""
    gap = oracle_results['self/protocols-gap']
    assert gap['status'] == 'sent' and [s['tls'] for s in gap['peer']] == ['TLSv1'], explain(gap)
    no_gap = oracle_results['self/protocols-no-gap']
    assert no_gap['status'] == 'sent' and [s['tls'] for s in no_gap['peer']] == ['TLSv1.3'], explain(no_gap)


def test_dane_for_an_address_literal_never_finds_tlsa_records(oracle_results):
    """With DNSSEC lookups on, [IP] dane-only defers ("no TLSA records found") and [IP] dane
    delivers over unauthenticated TLS (level may); the module refuses both."""
    only = oracle_results['dane-literal/dane-only']
    assert only['status'] == 'deferred' and 'no TLSA records found' in only['reason'], explain(only)
    assert only['module'] == 'error' and 'address literal' in only['module_message'], explain(only)
    dane = oracle_results['dane-literal/dane']
    assert dane['status'] == 'sent' and any('Untrusted TLS connection established' in line
                                            for line in dane['evidence']), explain(dane)
    assert dane['module'] == 'lint' and 'silently uses level may' in dane['module_message'], explain(dane)
