# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Lookup table helpers shared by the unit and the integration tests.

Import as ``from tests.support.lookup_tables import postfix_view, apply_desired``
(tests/conftest.py puts the repository root on sys.path).

* ``postfix_view(text)``: what the collection's table reader says Postfix
  builds from TEXT; the integration test
  tests/integration/module_utils/test_lookup_table_postmap.py checks it
  against the real ``postmap -s``, so unit properties may use it as the
  model of Postfix.
* ``apply_desired(text, desired, exclusive)``: edit TEXT towards a desired
  state one key at a time (set / remove / remove_except, the steps of
  LookupTableSource.apply), keeping each key's status for the properties.
"""

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource


def postfix_view(text):
    """KEY -> VALUE as postmap builds it: first occurrence wins, entries without a value are skipped."""
    view = {}
    for entry in LookupTableSource.parse(text).entries():
        if entry.value and entry.fkey not in view:
            view[entry.fkey] = entry.value
    return view


def apply_desired(text, desired, exclusive=False):
    """Apply DESIRED (key -> value, None to remove) to TEXT; return (new text, key -> status).

    The status is what LookupTableSource.set returns ('added', 'updated', 'unchanged'), or 'removed' /
    'unchanged' for removals; with EXCLUSIVE every other key is removed too.
    """
    table = LookupTableSource.parse(text)
    statuses = {}
    for key, value in desired.items():
        if value is None:
            statuses[key] = 'removed' if table.remove(key) else 'unchanged'
        else:
            statuses[key] = table.set(key, value)
    if exclusive:
        for key in table.remove_except([k for k, v in desired.items() if v is not None]):
            statuses[key] = 'removed'
    return table.render(), statuses
