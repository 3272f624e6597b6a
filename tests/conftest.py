"""Shared pytest set-up: make the collection importable by its FQCN.

scripts/setup.sh links this working tree as
.cache/collections/ansible_collections/mailgw/postfix_tls, so module_utils
are imported exactly as Ansible imports them.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
