# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The grammar against real policy tables (tests/data/realworld: 20 tables
from public repositories and the EFF STARTTLS Everywhere list).

Every entry is read as the Postfix SMTP client reads it; the entries Postfix
cannot use are exactly the ones known to be broken in those tables (a ``*``
key, a ``# comment`` after the level), the abbreviated fingerprints of the
Postfix documentation are reported, and every EFF policy can be declared.
"""

import glob
import json
import os

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    PolicyError,
    PolicyLint,
    build_policy,
    normalize_destination,
    parse_policy,
    same_policy,
)

REALWORLD = os.environ.get('MAILGW_REALWORLD_DIR', os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'data', 'realworld'))
TABLES = sorted(glob.glob(os.path.join(REALWORLD, 'tables', '*')))

assert TABLES, 'no real-world tables at %s' % REALWORLD

# (table, key) -> what is wrong, as Postfix sees it
UNUSABLE = {
    ('03_jojoob_tls_policy-dane_2014', '.bayern.de'): 'malformed attribute/value pair "#"',
    ('03_jojoob_tls_policy-dane_2014', 'bundeswehr.org'): 'malformed attribute/value pair "#"',
    ('06_csware_tls_policy-dane_2024-05-21', 'yahoo.co.jp'): 'malformed attribute/value pair "#"',
    ('06_csware_tls_policy-dane_2024-05-21', 'unitymedia.de'): 'malformed attribute/value pair "#"',
    ('08_103dotfm_radio-lineup_tls_policy', '*'): 'no wildcards',
    # abbreviated ("...") fingerprints of TLS_README: no usable fingerprint is left, which
    # Postfix 3.9 and later defer; 3.8 and older fall back to smtp_tls_fingerprint_cert_match
    ('17_postfix_TLS_README_policy_table', '[thumb.example.org]'): 'no fingerprints to match',
    ('19_postfix_TLS_README_fingerprint', 'example.com'): 'no fingerprints to match',
}
# (table, key) -> a warning about an entry Postfix uses
WARNED = {}


def test_abbreviated_fingerprints_are_warned_about_on_postfix_3_7():
    for (name, key), dummy in UNUSABLE.items():
        if not name.startswith(('17_', '19_')):
            continue
        entry = [e for e in read_table(os.path.join(REALWORLD, 'tables', name)).entries() if e.key == key][0]
        policy = parse_policy(entry.value, (3, 7, 11))
        assert 'malformed fingerprint value' in policy.warnings[0]
        assert 'smtp_tls_fingerprint_cert_match' in policy.warnings[-1]


def read_table(path):
    with open(path, 'rb') as f:
        return LookupTableSource.parse(f.read().decode('utf-8', 'surrogateescape'))


def problems(path):
    """(key, message) of each entry the grammar cannot accept, and of each warning."""
    name = os.path.basename(path)
    refused, warned = {}, {}
    for entry in read_table(path).entries():
        if not entry.value:
            continue
        try:
            normalize_destination(entry.key)
        except PolicyLint as e:
            refused[(name, entry.key)] = str(e)
        except PolicyError as e:
            refused[(name, entry.key)] = str(e)
        try:
            policy = parse_policy(entry.value)
        except PolicyError as e:
            refused[(name, entry.key)] = str(e)
            continue
        if policy.warnings:
            warned[(name, entry.key)] = ' '.join(policy.warnings)
    return refused, warned


def test_there_are_twenty_tables():
    assert len(TABLES) == 20


def test_exactly_the_known_broken_entries_are_refused_and_warned():
    refused, warned = {}, {}
    for path in TABLES:
        r, w = problems(path)
        refused.update(r)
        warned.update(w)
    assert set(refused) == set(UNUSABLE)
    for where, fragment in UNUSABLE.items():
        assert fragment in refused[where], (where, refused[where])
    assert set(warned) == set(WARNED)
    for where, fragment in WARNED.items():
        assert fragment in warned[where], (where, warned[where])


@pytest.mark.parametrize('path', TABLES, ids=[os.path.basename(p) for p in TABLES])
def test_redeclaring_every_usable_entry_is_no_change(path):
    """Each usable entry, declared again with its own level and attributes, is the same policy."""
    name = os.path.basename(path)
    for entry in read_table(path).entries():
        if not entry.value or (name, entry.key) in UNUSABLE or (name, entry.key) in WARNED:
            continue
        policy = parse_policy(entry.value)
        assert not policy.ignored
        kwargs = {}
        for attr, value in policy.attributes:
            if attr == 'match':
                kwargs['match'] = value.split('|' if policy.level == 'fingerprint' else ':')
            elif attr == 'tafile':
                kwargs.setdefault('tafile', []).append(value)
            else:
                kwargs[attr] = value
        again = build_policy(policy.level, lint=False, **kwargs)
        assert same_policy(entry.value, again.render()), (name, entry.key, entry.value)


def eff_policies():
    path = os.path.join(REALWORLD, 'eff_policy.json')
    if not os.path.exists(path):
        return []
    with open(path) as f:
        data = json.load(f)
    aliases = data.get('policy-aliases', {})
    out = []
    for domain, policy in sorted(data['policies'].items()):
        if 'policy-alias' in policy:
            policy = aliases[policy['policy-alias']]
        out.append((domain, policy))
    return out


def test_every_eff_policy_can_be_declared():
    """As starttls-policy-cli's Postfix generator renders them: enforce -> secure match=MXS."""
    policies = eff_policies()
    assert len(policies) > 800
    for domain, policy in policies:
        key, dummy = normalize_destination(domain)
        assert key == domain.lower()
        if policy.get('mode') != 'enforce':
            continue
        built = build_policy('secure', match=policy['mxs'])
        assert built.render() == 'secure match=' + ':'.join(policy['mxs'])
        assert parse_policy(built.render()).warnings == []
