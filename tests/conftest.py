# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared pytest set-up: make the collection importable by its FQCN, and the
test support package as ``tests.support``.

scripts/setup.sh links this working tree as
.cache/collections/ansible_collections/mailgw/postfix_tls, so module_utils
are imported exactly as Ansible imports them. The repository root on
sys.path makes ``tests.support`` (helpers shared by the unit and the
integration tests) importable from every test.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
# last, so that no directory of the repository shadows an installed package
if REPO not in sys.path:
    sys.path.append(REPO)
